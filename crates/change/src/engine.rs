//! The change engine: reads resources, stages changes and runs validation tests on the
//! staging copies, applies with a snapshot first, and rolls back.
//!
//! Every modification goes through one gate ([`ChangeEngine::apply`]):
//! 1. analysis ([`crate::whatif::analyse`]); a change with a high rollback cost needs
//!    `override_high_cost`, a negative analysis (change risk at or above the threshold,
//!    anomalous operations, a rollback simulation problem) needs `force` — and then the
//!    rollback resources are pre-provisioned (snapshots materialised and verified, staging
//!    copies holding the prior state) before anything moves;
//! 2. a delta snapshot of every changed resource ([`harbinger_snapshot::SnapshotStore`]);
//! 3. staging: the change is applied to a staging copy of each changed resource and the
//!    validation tests run on them. A failure is a **predictive rollback**: the staging
//!    copies are discarded, nothing live has moved, the live state is verified against the
//!    snapshot, the change is recorded `rejected` and administrators are alerted;
//! 4. apply, stage by stage in dependency order; then the post-apply checks. An apply
//!    error or a failing check is a **standard rollback**: every resource written is
//!    restored from its snapshot in reverse dependency order and verified;
//! 5. the change record and the change log hold every step with its outcome and duration.
//!
//! [`ChangeEngine::rollback`] restores chosen resources of an applied change (**selective
//! rollback**) or all of them. Restores of one stage run in parallel up to
//! `parallelism`, the highest impact (criticality × (1 + dependents)) first; each restored
//! resource is read back and compared with its snapshot, and any difference is reported
//! path by path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use harbinger_actuate::resource::{ResourceDriver, Staged, driver_for};
use harbinger_core::{Clock, Event, EventKind, EventStore};
use harbinger_snapshot::{ChangeProfile, Profiles, SnapshotConfig, SnapshotStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ChangeError;
use crate::risk::ChangeRiskModel;
use crate::simulate::{impact, rollback_order, round3};
use crate::store::{ChangeRecord, ChangeStatus, ChangeStore, ChangedResource, LogEntry, StackRecord};
use crate::template::Template;
use crate::validate::{Outcome, TestContext, TestResult, run_all};
use crate::whatif::{Analysis, AnalysisInputs, analyse, graph_of};

/// Engine settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Writes and restores run at once at most (within a stage).
    pub parallelism: usize,
    /// A change-risk score at or above this is a negative analysis.
    pub risk_threshold: f64,
    /// Where to POST alerts (rejections, rollbacks, failed verifications) as JSON.
    pub alert_webhook: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { parallelism: 4, risk_threshold: 0.5, alert_webhook: None }
    }
}

/// What an apply may override.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Apply a change whose rollback is expensive or irreversible.
    pub override_high_cost: bool,
    /// Apply despite a negative analysis (rollback resources are pre-provisioned).
    pub force: bool,
}

/// A template with its resources read.
pub struct Loaded {
    /// The template.
    pub template: Template,
    /// Drivers by resource id.
    pub drivers: BTreeMap<String, Arc<dyn ResourceDriver>>,
    /// Current states (resources that could be read).
    pub current: BTreeMap<String, Value>,
    /// Whether each resource could be read.
    pub health: BTreeMap<String, Result<(), String>>,
    /// Change profiles by resource id.
    pub profiles: BTreeMap<String, Vec<String>>,
}

/// One resource restored by a rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restored {
    /// Resource id.
    pub resource: String,
    /// Whether the write of the snapshot succeeded.
    pub ok: bool,
    /// What happened.
    pub detail: String,
    /// How long it took.
    pub duration_ms: f64,
    /// Whether the resource, read back, equals the snapshot.
    pub verified: bool,
    /// Where it differs (empty when verified).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
}

/// A rollback's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackReport {
    /// `predictive`, `standard`, `selective`.
    pub kind: String,
    /// The order it ran in.
    pub order: Vec<Vec<String>>,
    /// Each resource.
    pub restored: Vec<Restored>,
    /// Whether every resource was restored and verified.
    pub verified: bool,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// The change id (`c-<n>`).
    pub change: String,
    /// Outcome.
    pub status: ChangeStatus,
    /// Why it ended that way.
    pub reason: String,
    /// The analysis it ran on (validation results included).
    pub analysis: Analysis,
    /// Post-apply checks.
    pub post_apply: Vec<TestResult>,
    /// Resources written.
    pub applied: Vec<String>,
    /// Rollback resources made ready before a forced change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_provisioned: Vec<String>,
    /// The rollback, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackReport>,
}

/// The change and stack a log entry belongs to.
#[derive(Debug, Clone, Copy)]
struct Cx<'a> {
    change: &'a str,
    stack: &'a str,
}

/// The change engine over a data directory.
pub struct ChangeEngine {
    /// Rollback resources pre-provisioned for held changes (standby copies of the last
    /// good state), by change id: allocated and idle until [`ChangeEngine::release`] or
    /// the engine is dropped.
    held: std::sync::Mutex<BTreeMap<String, Vec<Staged>>>,
    events: Option<Arc<dyn EventStore>>,
    store: ChangeStore,
    snapshots: SnapshotStore,
    model: ChangeRiskModel,
    clock: Arc<dyn Clock>,
    cfg: EngineConfig,
}

impl std::fmt::Debug for ChangeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeEngine").field("store", &self.store.path()).field("cfg", &self.cfg).finish()
    }
}

fn ms_since(t: Instant) -> f64 {
    round3(t.elapsed().as_secs_f64() * 1000.0)
}

impl ChangeEngine {
    /// Opens the engine's stores under `data_dir` (`changes.redb`, `snapshots/changes/`).
    ///
    /// # Errors
    /// The store or the snapshot directory cannot be opened.
    pub fn open(data_dir: &Path, model: ChangeRiskModel, clock: Arc<dyn Clock>, cfg: EngineConfig) -> Result<Self, ChangeError> {
        let store = ChangeStore::open(data_dir)?;
        let mut scfg = SnapshotConfig::new(data_dir.join("snapshots").join("changes"));
        // Reads already hold only the profiled parts: a snapshot keeps the whole of it.
        scfg.profiles = Profiles::with_kinds(BTreeMap::new(), ChangeProfile::whole_state());
        let snapshots = SnapshotStore::open(scfg)?;
        Ok(ChangeEngine { held: std::sync::Mutex::new(BTreeMap::new()), events: None, store, snapshots, model, clock, cfg })
    }

    /// Records every change that moves a live resource as events in `events` (the
    /// service's event store): `deploy_started` and `deploy_succeeded`/`deploy_failed` when
    /// a change moves a `version`, `config_changed` otherwise, `rolled_back` for each
    /// resource restored — with the resource, its `host` and the paths changed, so the
    /// failure model's deployment features see them.
    pub fn with_events(mut self, events: Arc<dyn EventStore>) -> Self {
        self.events = Some(events);
        self
    }

    async fn record_events(&self, events: Vec<Event>) {
        let Some(store) = &self.events else { return };
        if events.is_empty() {
            return;
        }
        if let Err(e) = store.append_events(&events).await {
            tracing::warn!(target: "harbinger::change", "change events not recorded in the event store: {e}");
        }
    }

    /// The events of an apply that wrote `applied` (and restored `restored`).
    fn apply_events(
        &self,
        t: &Template,
        rec: &ChangeRecord,
        started_ms: i64,
        applied: &[String],
        ok: bool,
        restored: &[String],
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let end = self.clock.now_ms();
        for rid in applied {
            let Some(decl) = t.resource(rid) else { continue };
            let ops: Vec<&crate::types::UpdateOp> = rec.ops.iter().filter(|o| &o.resource == rid).collect();
            let version = ops.iter().find(|o| o.path.ends_with("/version"));
            let changes: Vec<harbinger_core::event::Change> = ops
                .iter()
                .map(|o| harbinger_core::event::Change {
                    path: o.path.clone(),
                    from: (o.op != crate::types::Op::Add).then(|| o.from.clone()),
                    to: (o.op != crate::types::Op::Remove).then(|| o.to.clone()),
                })
                .collect();
            let mut base = Event::new(started_ms, EventKind::ConfigChanged);
            base.resource = Some(rid.clone());
            base.host = decl.host.clone().map(Into::into);
            base.extra.insert("change".to_string(), Value::String(rec.id.clone()));
            base.extra.insert("stack".to_string(), Value::String(rec.stack.clone()));
            match version {
                Some(v) => {
                    let mut start = base.clone();
                    start.kind = EventKind::DeployStarted;
                    start.deployment = Some(format!("{}:{rid}", rec.id));
                    start.from = Some(v.from.clone());
                    start.to = Some(v.to.clone());
                    start.changes = changes;
                    let mut done = start.clone();
                    done.ts = end;
                    done.kind = if ok { EventKind::DeploySucceeded } else { EventKind::DeployFailed };
                    done.changes = Vec::new();
                    out.push(start);
                    out.push(done);
                }
                None => {
                    base.changes = changes;
                    out.push(base);
                }
            }
        }
        for rid in restored {
            let mut e = Event::new(end, EventKind::RolledBack);
            e.resource = Some(rid.clone());
            e.host = t.resource(rid).and_then(|d| d.host.clone()).map(Into::into);
            e.deployment = Some(format!("{}:{rid}", rec.id));
            e.extra.insert("change".to_string(), Value::String(rec.id.clone()));
            e.extra.insert("stack".to_string(), Value::String(rec.stack.clone()));
            out.push(e);
        }
        out
    }

    /// The change store.
    pub fn store(&self) -> &ChangeStore {
        &self.store
    }

    /// The change-risk model.
    pub fn model(&self) -> &ChangeRiskModel {
        &self.model
    }

    /// Builds the drivers of a template and reads every resource (concurrently).
    ///
    /// # Errors
    /// A resource spec that cannot be used, or a cycle.
    pub async fn load(&self, template: Template) -> Result<Loaded, ChangeError> {
        graph_of(&template)?;
        let mut drivers = BTreeMap::new();
        let mut profiles = BTreeMap::new();
        for r in &template.resources {
            let d = driver_for(&r.id, &r.spec, &template.base_dir)?;
            // Keys the change names are read (and snapshotted) too, so a restore puts back
            // a key the change overwrote and deletes one it created.
            if let Some(desired) = &r.desired {
                d.manage_state(desired);
            }
            profiles.insert(r.id.clone(), d.profile());
            drivers.insert(r.id.clone(), d);
        }
        let reads = futures_util::future::join_all(drivers.iter().map(|(id, d)| async move { (id.clone(), d.read().await) })).await;
        let mut current = BTreeMap::new();
        let mut health = BTreeMap::new();
        for (id, r) in reads {
            match r {
                Ok(v) => {
                    current.insert(id.clone(), v);
                    health.insert(id, Ok(()));
                }
                Err(e) => {
                    health.insert(id, Err(e.to_string()));
                }
            }
        }
        Ok(Loaded { template, drivers, current, health, profiles })
    }

    /// The pure analysis of a loaded template.
    ///
    /// # Errors
    /// A resource that could not be read, a cycle, a path outside a change profile, the
    /// store.
    pub fn analyse(&self, l: &Loaded) -> Result<Analysis, ChangeError> {
        if let Some((id, Err(e))) = l.health.iter().find(|(_, h)| h.is_err()) {
            return Err(ChangeError::Unreadable { resource: id.clone(), detail: e.clone() });
        }
        let history = self.store.history(&l.template.stack)?;
        let log = self.store.log(None, None)?;
        analyse(
            &l.template,
            &AnalysisInputs {
                current: &l.current,
                profiles: &l.profiles,
                history: &history,
                log: &log,
                model: &self.model,
                now_ms: self.clock.now_ms(),
                parallelism: self.cfg.parallelism,
            },
        )
    }

    /// Stages the change of every changed resource (the staging copies are returned: keep
    /// them while tests run) and runs the validation tests on them.
    async fn stage_and_validate(
        &self,
        l: &Loaded,
        a: &Analysis,
    ) -> Result<(Vec<Staged>, Vec<TestResult>, Vec<(String, f64, String)>), ChangeError> {
        let targets = crate::whatif::targets(&l.template, &self.inputs_for(l, &[], &[]))?;
        let mut staged = Vec::new();
        let mut ctx = self.test_context(l);
        let mut steps = Vec::new();
        for id in a.apply_order.iter().flatten() {
            let t = Instant::now();
            let d = &l.drivers[id];
            match d.stage(&targets[id]).await? {
                Some(s) => {
                    ctx.staged.insert(id.clone(), s.location.clone());
                    steps.push((id.clone(), ms_since(t), format!("staged at {}", s.location)));
                    staged.push(s);
                }
                None => steps.push((id.clone(), ms_since(t), format!("{} resource cannot be staged", d.kind()))),
            }
        }
        let results = run_all(&l.template.validation, &ctx).await;
        Ok((staged, results, steps))
    }

    fn inputs_for<'a>(&'a self, l: &'a Loaded, history: &'a [crate::types::AppliedChange], log: &'a [LogEntry]) -> AnalysisInputs<'a> {
        AnalysisInputs {
            current: &l.current,
            profiles: &l.profiles,
            history,
            log,
            model: &self.model,
            now_ms: self.clock.now_ms(),
            parallelism: self.cfg.parallelism,
        }
    }

    fn test_context(&self, l: &Loaded) -> TestContext {
        TestContext {
            staged: BTreeMap::new(),
            live: l.drivers.iter().map(|(id, d)| (id.clone(), d.location())).collect(),
            depends_on: l.template.resources.iter().map(|r| (r.id.clone(), r.depends_on.clone())).collect(),
            health: l.health.clone(),
            workdir: l.template.base_dir.clone(),
        }
    }

    /// What-if: the analysis, with the change staged and the validation tests run on the
    /// staging copies (discarded afterwards). Nothing live moves.
    ///
    /// # Errors
    /// As [`ChangeEngine::analyse`]; staging errors.
    pub async fn whatif(&self, template: Template) -> Result<Analysis, ChangeError> {
        let l = self.load(template).await?;
        let mut a = self.analyse(&l)?;
        let (staged, results, _) = self.stage_and_validate(&l, &a).await?;
        drop(staged);
        a.validation = results;
        Ok(a)
    }

    fn log_entry(
        &self,
        cx: Cx<'_>,
        step: &str,
        resource: Option<(&str, &str)>,
        outcome: &str,
        duration_ms: f64,
        detail: String,
    ) -> LogEntry {
        LogEntry {
            ts_ms: self.clock.now_ms(),
            change: cx.change.to_string(),
            stack: cx.stack.to_string(),
            step: step.to_string(),
            resource: resource.map(|r| r.0.to_string()),
            kind: resource.map(|r| r.1.to_string()),
            outcome: outcome.to_string(),
            duration_ms,
            detail,
        }
    }

    /// Applies a change through the gate described in the module docs.
    ///
    /// # Errors
    /// Errors before anything was decided (the template, a resource that cannot be read, a
    /// cycle, the store). Everything after is in the report: a rejected or rolled-back
    /// change is an `Ok` report with that status.
    pub async fn apply(&self, template: Template, opts: ApplyOptions) -> Result<ApplyReport, ChangeError> {
        let l = self.load(template).await?;
        let started_ms = self.clock.now_ms();
        let mut analysis = self.analyse(&l)?;
        let t = &l.template;
        let id = self.store.next_change_id()?;
        let cx = Cx { change: &id, stack: &t.stack };
        let kinds: BTreeMap<String, String> = l.drivers.iter().map(|(k, d)| (k.clone(), d.kind().to_string())).collect();
        let mut log: Vec<LogEntry> = Vec::new();
        let mut report = ApplyReport {
            change: id.clone(),
            status: ChangeStatus::Rejected,
            reason: String::new(),
            analysis: analysis.clone(),
            post_apply: Vec::new(),
            applied: Vec::new(),
            pre_provisioned: Vec::new(),
            rollback: None,
        };
        let mut record = ChangeRecord {
            id: id.clone(),
            stack: t.stack.clone(),
            ts_ms: self.clock.now_ms(),
            description: t.description.clone(),
            status: ChangeStatus::Rejected,
            reason: String::new(),
            ops: analysis.update_stack.clone(),
            resources: Vec::new(),
            template: t.raw.clone(),
            base_dir: t.base_dir.clone(),
        };

        if analysis.update_stack.is_empty() {
            report.status = ChangeStatus::Applied;
            report.reason = "nothing to change: every resource already holds the desired state".to_string();
            return Ok(report);
        }
        // Refusals before anything moves.
        let mut refusal = None;
        if analysis.rollback.high_cost && !opts.override_high_cost {
            refusal = Some(format!(
                "rollback is expensive ({}); apply with --override to accept",
                analysis.rollback.high_cost_reasons.join("; ")
            ));
        }
        let negative = self.negative_reasons(&analysis);
        if refusal.is_none() && !negative.is_empty() && !opts.force {
            refusal = Some(format!(
                "analysis is negative ({}); apply with --force to go ahead with rollback resources pre-provisioned",
                negative.join("; ")
            ));
        }
        if let Some(reason) = refusal {
            log.push(self.log_entry(cx, "reject", None, "ok", 0.0, reason.clone()));
            return self.finish(report, record, log, ChangeStatus::Rejected, reason).await;
        }

        // Snapshots.
        self.snapshot_all(cx, &l, &analysis, &mut record, &mut log)?;

        // Pre-provisioned rollback resources for a forced change.
        let provisioned = if negative.is_empty() {
            Vec::new()
        } else {
            self.pre_provision(cx, &l, &record, &mut report.pre_provisioned, &mut log).await?
        };

        // Stage and validate.
        let (staged, validation, stage_steps) = match self.stage_and_validate(&l, &analysis).await {
            Ok(x) => x,
            Err(e) => {
                let reason = format!("staging failed: {e}");
                log.push(self.log_entry(cx, "stage", None, "failed", 0.0, reason.clone()));
                let rb =
                    self.restore(cx, &l, &record, &record.resources.iter().map(|r| r.id.clone()).collect(), "predictive", &mut log).await;
                report.rollback = Some(rb);
                return self.finish(report, record, log, ChangeStatus::Rejected, reason).await;
            }
        };
        for (rid, ms, detail) in stage_steps {
            log.push(self.log_entry(cx, "stage", Some((&rid, &kinds[&rid])), "ok", ms, detail));
        }
        for r in &validation {
            log.push(self.log_entry(cx, "validate", None, r.outcome.as_str(), r.duration_ms, format!("{}: {}", r.name, r.detail)));
        }
        drop(staged);
        analysis.validation = validation.clone();
        report.analysis = analysis.clone();
        let failed: Vec<&TestResult> = validation.iter().filter(|r| r.outcome == Outcome::Failed).collect();
        if !failed.is_empty() {
            // Predictive rollback: nothing live moved; check it is so.
            let reason = format!(
                "predictive rollback: staged validation failed: {}",
                failed.iter().map(|r| format!("{} ({})", r.name, r.detail)).collect::<Vec<_>>().join("; ")
            );
            let rb = self.verify_only(cx, &l, &record, &mut log).await;
            report.rollback = Some(rb);
            return self.finish(report, record, log, ChangeStatus::Rejected, reason).await;
        }

        // Apply, stage by stage.
        let targets = crate::whatif::targets(t, &self.inputs_for(&l, &[], &[]))?;
        let mut written: BTreeSet<String> = BTreeSet::new();
        let mut apply_error = None;
        'stages: for stage in &analysis.apply_order {
            for chunk in stage.chunks(self.cfg.parallelism.max(1)) {
                let results = futures_util::future::join_all(chunk.iter().map(|rid| {
                    let d = l.drivers[rid].clone();
                    let target = &targets[rid];
                    async move {
                        let started = Instant::now();
                        let r = d.write(target).await;
                        (rid.clone(), r, ms_since(started))
                    }
                }))
                .await;
                for (rid, r, ms) in results {
                    // A failed write may have half-happened: it is restored too.
                    written.insert(rid.clone());
                    match r {
                        Ok(()) => {
                            report.applied.push(rid.clone());
                            log.push(self.log_entry(cx, "apply", Some((&rid, &kinds[&rid])), "ok", ms, "applied".to_string()));
                        }
                        Err(e) => {
                            log.push(self.log_entry(cx, "apply", Some((&rid, &kinds[&rid])), "failed", ms, e.to_string()));
                            apply_error.get_or_insert(format!("apply of {rid} failed: {e}"));
                        }
                    }
                }
                if apply_error.is_some() {
                    break 'stages;
                }
            }
        }
        let mut reason = apply_error;
        if reason.is_none() {
            let ctx = self.test_context(&l);
            let checks = run_all(&t.post_apply, &ctx).await;
            for r in &checks {
                log.push(self.log_entry(cx, "check", None, r.outcome.as_str(), r.duration_ms, format!("{}: {}", r.name, r.detail)));
            }
            let failed: Vec<String> =
                checks.iter().filter(|r| r.outcome == Outcome::Failed).map(|r| format!("{} ({})", r.name, r.detail)).collect();
            report.post_apply = checks;
            if !failed.is_empty() {
                reason = Some(format!("post-apply check failed: {}", failed.join("; ")));
            }
        }
        drop(provisioned);
        match reason {
            None => {
                let stack = StackRecord {
                    name: t.stack.clone(),
                    last_change: id.clone(),
                    updated_ms: self.clock.now_ms(),
                    template: t.raw.clone(),
                };
                self.store.put_stack(&stack)?;
                self.record_events(self.apply_events(t, &record, started_ms, &report.applied, true, &[])).await;
                let n = report.applied.len();
                self.finish(report, record, log, ChangeStatus::Applied, format!("applied to {n} resources; checks passed")).await
            }
            Some(why) => {
                let rb = self.restore(cx, &l, &record, &written, "standard", &mut log).await;
                for r in &mut record.resources {
                    r.restored = rb.restored.iter().any(|x| x.resource == r.id && x.ok);
                }
                let restored: Vec<String> = rb.restored.iter().filter(|x| x.ok).map(|x| x.resource.clone()).collect();
                let written: Vec<String> = written.iter().cloned().collect();
                self.record_events(self.apply_events(t, &record, started_ms, &written, false, &restored)).await;
                let status = if rb.verified { ChangeStatus::RolledBack } else { ChangeStatus::RollbackFailed };
                let reason = if rb.verified {
                    format!("standard rollback: {why}; {} resources restored and verified", rb.restored.len())
                } else {
                    format!("standard rollback did not verify after: {why}")
                };
                report.rollback = Some(rb);
                self.finish(report, record, log, status, reason).await
            }
        }
    }

    fn negative_reasons(&self, a: &Analysis) -> Vec<String> {
        let mut out = Vec::new();
        if a.risk.score.score >= self.cfg.risk_threshold {
            out.push(format!("change risk {:.2} >= {:.2}", a.risk.score.score, self.cfg.risk_threshold));
        }
        for an in &a.anomalies {
            out.push(format!("anomalous operation: {}", an.reason));
        }
        for p in &a.rollback.simulation_problems {
            out.push(format!("rollback simulation: {p}"));
        }
        out
    }

    fn snapshot_state(&self, stack: &str, cr: &ChangedResource, current: &Value) -> Result<Value, ChangeError> {
        Ok(self.snapshots.restore(&format!("{stack}/{}", cr.id), cr.snapshot, current)?)
    }

    async fn finish(
        &self,
        mut report: ApplyReport,
        mut record: ChangeRecord,
        mut log: Vec<LogEntry>,
        status: ChangeStatus,
        reason: String,
    ) -> Result<ApplyReport, ChangeError> {
        report.status = status;
        report.reason = reason.clone();
        record.status = status;
        record.reason = reason.clone();
        if status != ChangeStatus::Applied {
            let event = match status {
                ChangeStatus::Rejected => "change_rejected",
                ChangeStatus::Held => "change_predicted_negative",
                ChangeStatus::RollbackFailed => "rollback_failed",
                _ => "change_rolled_back",
            };
            if let Some(e) = self.alert(event, &record).await {
                log.push(e);
            }
        }
        self.store.put_change(&record)?;
        self.store.append_log(&log)?;
        Ok(report)
    }

    async fn alert(&self, event: &str, rec: &ChangeRecord) -> Option<LogEntry> {
        let url = self.cfg.alert_webhook.as_deref()?;
        let body = serde_json::json!({
            "event": event, "change": rec.id, "stack": rec.stack, "status": rec.status.as_str(),
            "reason": rec.reason, "ts": self.clock.now_ms(),
        });
        let started = Instant::now();
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).no_proxy().build();
        let r = match client {
            Ok(c) => c
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| if r.status().is_success() { Ok(r.status().as_u16()) } else { Err(format!("status {}", r.status())) }),
            Err(e) => Err(e.to_string()),
        };
        let (outcome, detail) = match r {
            Ok(s) => ("ok", format!("{event} posted to {url}: {s}")),
            Err(e) => {
                tracing::warn!(target: "harbinger::change", change = %rec.id, %url, "alert not delivered: {e}");
                ("failed", format!("{event} to {url}: {e}"))
            }
        };
        Some(self.log_entry(Cx { change: &rec.id, stack: &rec.stack }, "alert", None, outcome, ms_since(started), detail))
    }

    /// Reads every changed resource and compares it with its snapshot (predictive
    /// rollback: nothing was written, so this must hold).
    async fn verify_only(&self, cx: Cx<'_>, l: &Loaded, rec: &ChangeRecord, log: &mut Vec<LogEntry>) -> RollbackReport {
        let stack = cx.stack;
        let mut restored = Vec::new();
        for cr in &rec.resources {
            let started = Instant::now();
            let (verified, differences) = self.verify(stack, cr, &l.drivers[&cr.id], &l.current[&cr.id]).await;
            log.push(self.log_entry(
                cx,
                "verify",
                Some((&cr.id, &cr.kind)),
                if verified { "ok" } else { "failed" },
                ms_since(started),
                differences.join("; "),
            ));
            restored.push(Restored {
                resource: cr.id.clone(),
                ok: true,
                detail: "staged copy discarded; live resource untouched".to_string(),
                duration_ms: ms_since(started),
                verified,
                differences,
            });
        }
        let verified = restored.iter().all(|r| r.verified);
        RollbackReport {
            kind: "predictive".to_string(),
            order: vec![rec.resources.iter().map(|r| r.id.clone()).collect()],
            restored,
            verified,
        }
    }

    async fn verify(&self, stack: &str, cr: &ChangedResource, d: &Arc<dyn ResourceDriver>, hint: &Value) -> (bool, Vec<String>) {
        let want = match self.snapshot_state(stack, cr, hint) {
            Ok(v) => v,
            Err(e) => return (false, vec![format!("snapshot cannot be read: {e}")]),
        };
        match d.read().await {
            Ok(now) if harbinger_snapshot::exact_eq(&now, &want) => (true, Vec::new()),
            Ok(now) => (false, crate::diff::describe_mismatch(&want, &now, 20)),
            Err(e) => (false, vec![format!("cannot read back: {e}")]),
        }
    }

    /// Restores `which` of a change from its snapshots, in rollback order, and verifies.
    async fn restore(
        &self,
        cx: Cx<'_>,
        l: &Loaded,
        rec: &ChangeRecord,
        which: &BTreeSet<String>,
        kind: &str,
        log: &mut Vec<LogEntry>,
    ) -> RollbackReport {
        let stack = cx.stack;
        let graph = graph_of(&l.template).unwrap_or_default();
        let crit: BTreeMap<String, u8> = l.template.resources.iter().map(|r| (r.id.clone(), r.criticality)).collect();
        let order = rollback_order(&graph, which, &crit);
        let by_id: BTreeMap<&str, &ChangedResource> = rec.resources.iter().map(|r| (r.id.as_str(), r)).collect();
        let mut restored = Vec::new();
        for stage in &order {
            for chunk in stage.chunks(self.cfg.parallelism.max(1)) {
                let results =
                    futures_util::future::join_all(chunk.iter().filter_map(|rid| by_id.get(rid.as_str()).copied()).map(|cr| async move {
                        let started = Instant::now();
                        let d = &l.drivers[&cr.id];
                        let hint = l.current.get(&cr.id).cloned().unwrap_or(Value::Null);
                        let write = match self.snapshot_state(stack, cr, &hint) {
                            Ok(state) => d.write_restore(&state).await.map_err(|e| e.to_string()),
                            Err(e) => Err(format!("snapshot {} cannot be read: {e}", cr.snapshot)),
                        };
                        let write_ms = ms_since(started);
                        let (verified, differences) = match &write {
                            Ok(()) => self.verify(stack, cr, d, &hint).await,
                            Err(_) => (false, Vec::new()),
                        };
                        (cr, write, write_ms, verified, differences, ms_since(started))
                    }))
                    .await;
                for (cr, write, write_ms, verified, differences, total_ms) in results {
                    let ok = write.is_ok();
                    let detail = match &write {
                        Ok(()) => format!("restored snapshot {}", cr.snapshot),
                        Err(e) => e.clone(),
                    };
                    log.push(self.log_entry(
                        cx,
                        "rollback",
                        Some((&cr.id, &cr.kind)),
                        if ok { "ok" } else { "failed" },
                        write_ms,
                        detail.clone(),
                    ));
                    if ok {
                        log.push(self.log_entry(
                            cx,
                            "verify",
                            Some((&cr.id, &cr.kind)),
                            if verified { "ok" } else { "failed" },
                            round3(total_ms - write_ms),
                            if verified { "equals the snapshot".to_string() } else { differences.join("; ") },
                        ));
                    }
                    restored.push(Restored { resource: cr.id.clone(), ok, detail, duration_ms: total_ms, verified, differences });
                }
            }
        }
        let verified = restored.iter().all(|r| r.ok && r.verified);
        RollbackReport { kind: kind.to_string(), order, restored, verified }
    }

    /// Rolls back an applied change: the named resources (selective), or all of them.
    ///
    /// # Errors
    /// [`ChangeError::UnknownChange`], [`ChangeError::UnknownResource`], a change that was
    /// never applied, the recorded template or a resource that cannot be loaded.
    pub async fn rollback(&self, change: &str, resources: &[String]) -> Result<RollbackReport, ChangeError> {
        let mut rec = self.store.change(change)?.ok_or_else(|| ChangeError::UnknownChange(change.to_string()))?;
        if matches!(rec.status, ChangeStatus::Rejected | ChangeStatus::Held) {
            return Err(ChangeError::NotApplied { change: change.to_string(), status: rec.status.as_str().to_string() });
        }
        let known: BTreeSet<String> = rec.resources.iter().map(|r| r.id.clone()).collect();
        for r in resources {
            if !known.contains(r) {
                return Err(ChangeError::UnknownResource {
                    change: change.to_string(),
                    resource: r.clone(),
                    known: known.iter().cloned().collect(),
                });
            }
        }
        let which: BTreeSet<String> = if resources.is_empty() { known.clone() } else { resources.iter().cloned().collect() };
        let text = serde_json::to_string(&rec.template).map_err(|e| ChangeError::Corrupt(format!("change {change}: template: {e}")))?;
        let template = crate::template::parse(&text, Path::new(&format!("change {change}.json")), &rec.base_dir)?;
        let l = self.load(template).await?;
        let mut log = Vec::new();
        let kind = if which.len() == known.len() { "standard" } else { "selective" };
        let rb = self.restore(Cx { change, stack: &rec.stack }, &l, &rec, &which, kind, &mut log).await;
        for r in &mut rec.resources {
            if rb.restored.iter().any(|x| x.resource == r.id && x.ok) {
                r.restored = true;
            }
        }
        let restored: Vec<String> = rb.restored.iter().filter(|x| x.ok).map(|x| x.resource.clone()).collect();
        self.record_events(self.apply_events(&l.template, &rec, self.clock.now_ms(), &[], true, &restored)).await;
        let all_restored = rec.resources.iter().all(|r| r.restored);
        rec.status = if !rb.verified {
            ChangeStatus::RollbackFailed
        } else if all_restored {
            ChangeStatus::RolledBack
        } else {
            ChangeStatus::PartiallyRolledBack
        };
        rec.reason = format!("{kind} rollback of {}", which.iter().cloned().collect::<Vec<_>>().join(", "));
        if !rb.verified
            && let Some(e) = self.alert("rollback_failed", &rec).await
        {
            log.push(e);
        }
        self.store.put_change(&rec)?;
        self.store.append_log(&log)?;
        Ok(rb)
    }

    /// Makes the rollback resources of `record`'s resources ready: each snapshot read back
    /// (verified) and, where the kind can hold one, a standby copy holding the prior state.
    /// Says what was made in `lines`.
    async fn pre_provision(
        &self,
        cx: Cx<'_>,
        l: &Loaded,
        record: &ChangeRecord,
        lines: &mut Vec<String>,
        log: &mut Vec<LogEntry>,
    ) -> Result<Vec<Staged>, ChangeError> {
        let mut provisioned = Vec::new();
        for cr in &record.resources {
            let started = Instant::now();
            let state = self.snapshot_state(&record.stack, cr, &l.current[&cr.id])?;
            let line = match l.drivers[&cr.id].stage(&state).await {
                Ok(Some(s)) => {
                    let line = format!("{}: snapshot {} verified; prior state ready at {}", cr.id, cr.snapshot, s.location);
                    provisioned.push(s);
                    line
                }
                Ok(None) => format!("{}: snapshot {} verified (kind cannot hold a standby copy)", cr.id, cr.snapshot),
                Err(e) => format!("{}: snapshot {} verified; standby copy failed: {e}", cr.id, cr.snapshot),
            };
            lines.push(line);
            log.push(self.log_entry(
                cx,
                "provision",
                Some((&cr.id, &cr.kind)),
                "ok",
                ms_since(started),
                "rollback resources ready".to_string(),
            ));
        }
        Ok(provisioned)
    }

    /// Takes a snapshot of every resource `analysis` would change and lists them on
    /// `record`.
    fn snapshot_all(
        &self,
        cx: Cx<'_>,
        l: &Loaded,
        analysis: &Analysis,
        record: &mut ChangeRecord,
        log: &mut Vec<LogEntry>,
    ) -> Result<(), ChangeError> {
        let kinds: BTreeMap<String, String> = l.drivers.iter().map(|(k, d)| (k.clone(), d.kind().to_string())).collect();
        for rid in analysis.apply_order.iter().flatten() {
            let started = Instant::now();
            let meta = self.snapshots.take(&format!("{}/{rid}", l.template.stack), &kinds[rid], &l.current[rid], self.clock.now_ms())?;
            record.resources.push(ChangedResource { id: rid.clone(), kind: kinds[rid].clone(), snapshot: meta.seq, restored: false });
            log.push(self.log_entry(
                cx,
                "snapshot",
                Some((rid, &kinds[rid])),
                "ok",
                ms_since(started),
                format!("snapshot seq {}", meta.seq),
            ));
        }
        Ok(())
    }

    /// A change submitted ahead of deployment (a predicted change): see [`crate::predict`].
    ///
    /// # Errors
    /// As [`ChangeEngine::apply`] before anything was decided.
    pub async fn submit(
        &self,
        template: Template,
        opts: crate::predict::SubmitOptions,
    ) -> Result<crate::predict::SubmitReport, ChangeError> {
        use crate::predict::{Prediction, SubmitReport};
        // 1. The change on the shadow (staging) copies only, and its analysis.
        let l = self.load(template.clone()).await?;
        let mut analysis = self.analyse(&l)?;
        let (staged, validation, _) = self.stage_and_validate(&l, &analysis).await?;
        drop(staged);
        analysis.validation = validation;
        let mut reasons = self.negative_reasons(&analysis);
        for r in analysis.validation.iter().filter(|r| r.outcome == Outcome::Failed) {
            reasons.push(format!("validation on the shadow copies failed: {} ({})", r.name, r.detail));
        }
        if analysis.rollback.high_cost && !opts.override_high_cost {
            reasons.push(format!("rollback is expensive ({})", analysis.rollback.high_cost_reasons.join("; ")));
        }
        let prediction = if reasons.is_empty() { Prediction::Positive } else { Prediction::Negative };
        let mut out = SubmitReport {
            change: String::new(),
            prediction,
            reasons: reasons.clone(),
            analysis: analysis.clone(),
            status: ChangeStatus::Held,
            reason: String::new(),
            pre_provisioned: Vec::new(),
            apply: None,
            monitor: Vec::new(),
            rollback: None,
        };
        if analysis.update_stack.is_empty() {
            out.status = ChangeStatus::Applied;
            out.reason = "nothing to change: every resource already holds the desired state".into();
            return Ok(out);
        }
        if prediction == Prediction::Negative {
            // 2a. Negative: hold it, with the way back ready, and tell the operator.
            let t = &l.template;
            let id = self.store.next_change_id()?;
            let cx = Cx { change: &id, stack: &t.stack };
            let mut log = vec![self.log_entry(cx, "predict", None, "negative", 0.0, reasons.join("; "))];
            let mut record = ChangeRecord {
                id: id.clone(),
                stack: t.stack.clone(),
                ts_ms: self.clock.now_ms(),
                description: t.description.clone(),
                status: ChangeStatus::Held,
                reason: String::new(),
                ops: analysis.update_stack.clone(),
                resources: Vec::new(),
                template: t.raw.clone(),
                base_dir: t.base_dir.clone(),
            };
            self.snapshot_all(cx, &l, &analysis, &mut record, &mut log)?;
            let mut lines = Vec::new();
            let standby = self.pre_provision(cx, &l, &record, &mut lines, &mut log).await?;
            if let Ok(mut held) = self.held.lock() {
                held.insert(id.clone(), standby);
            }
            let reason = format!("predicted negative, not applied; rollback resources pre-provisioned: {}", reasons.join("; "));
            let report = ApplyReport {
                change: id.clone(),
                status: ChangeStatus::Held,
                reason: String::new(),
                analysis,
                post_apply: Vec::new(),
                applied: Vec::new(),
                pre_provisioned: lines.clone(),
                rollback: None,
            };
            let report = self.finish(report, record, log, ChangeStatus::Held, reason.clone()).await?;
            out.change = id;
            out.reason = report.reason;
            out.pre_provisioned = lines;
            return Ok(out);
        }
        // 2b. Positive: apply (snapshots first: the pre-provisioned last good state), then
        // watch the live stack behave as predicted.
        let report = self.apply(template, ApplyOptions { override_high_cost: opts.override_high_cost, force: false }).await?;
        out.change = report.change.clone();
        out.status = report.status;
        out.reason = report.reason.clone();
        out.pre_provisioned = report.pre_provisioned.clone();
        let applied = report.status == ChangeStatus::Applied;
        out.apply = Some(report);
        if !applied || opts.monitor_for.is_zero() {
            return Ok(out);
        }
        let t = &l.template;
        let ctx = self.test_context(&l);
        // A watch longer than a day is cut to a day (and `Instant` cannot overflow).
        let watch = opts.monitor_for.min(std::time::Duration::from_secs(86_400));
        let deadline = Instant::now() + watch;
        let mut deviation = None;
        while Instant::now() < deadline {
            tokio::time::sleep(opts.monitor_every.min(deadline.saturating_duration_since(Instant::now()))).await;
            let round = run_all(&t.post_apply, &ctx).await;
            let failed: Vec<String> =
                round.iter().filter(|r| r.outcome == Outcome::Failed).map(|r| format!("{} ({})", r.name, r.detail)).collect();
            out.monitor.extend(round);
            if !failed.is_empty() {
                deviation = Some(failed.join("; "));
                break;
            }
        }
        let Some(why) = deviation else {
            out.reason = format!("{}; the live stack behaved as predicted for {:?}", out.reason, opts.monitor_for);
            return Ok(out);
        };
        // 3. Deviation: back to the last good state at once.
        let rb = self.rollback(&out.change, &[]).await?;
        let mut rec = self.store.change(&out.change)?.ok_or_else(|| ChangeError::UnknownChange(out.change.clone()))?;
        rec.reason = format!("the live stack deviated from the prediction: {why}; {}", rec.reason);
        self.store.put_change(&rec)?;
        let mut log = Vec::new();
        if let Some(e) = self.alert("change_deviated", &rec).await {
            log.push(e);
        }
        self.store.append_log(&log)?;
        out.status = rec.status;
        out.reason = rec.reason;
        out.rollback = Some(rb);
        Ok(out)
    }

    /// Frees the rollback resources pre-provisioned for held change `change`; answers how
    /// many standby copies there were.
    pub fn release(&self, change: &str) -> usize {
        self.held.lock().ok().and_then(|mut h| h.remove(change)).map_or(0, |v| v.len())
    }

    /// The standby copies pre-provisioned for held change `change`: where each is.
    pub fn held(&self, change: &str) -> Vec<String> {
        self.held.lock().ok().and_then(|h| h.get(change).map(|v| v.iter().map(|s| s.location.clone()).collect())).unwrap_or_default()
    }

    /// The impact ranking used to order restores (for reports).
    pub fn impact_of(l: &Loaded, id: &str) -> f64 {
        let g = graph_of(&l.template).unwrap_or_default();
        impact(&g, id, l.template.resource(id).map(|r| r.criticality).unwrap_or(1))
    }
}
