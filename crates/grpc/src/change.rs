//! `ChangeService`: change safety (`harbinger-change`) over gRPC — `Simulate` (what-if),
//! `Apply`, `Rollback`, `ListChanges`, `GetChange`, mirroring the CLI's `whatif`, `apply`,
//! `rollback` and `changes`; `Submit`, a change submitted ahead of deployment
//! ([`harbinger_change::predict`], as the server's `change.watch_dir` takes them); and
//! `GetRollout`, `ListRollouts`, the records of shadow-stack rollouts ([`crate::rollout`];
//! open reads that need no change engine).
//!
//! Templates arrive as text with the directory their relative paths resolve against
//! ([`parse_template`]). `Simulate`, `Apply`, `Submit` and `Rollback` need the bearer token
//! (a template's resources are read, its commands run and its URLs probed on the server,
//! even by a what-if); `ListChanges` and `GetChange` are open reads. `Apply`, `Submit` and
//! `Rollback` run one at a time (the state's change lock), and in a task of their own: once
//! started they finish even when the client goes away or its deadline passes, so a change
//! is never left half-applied (or applied and unwatched) by a disconnect. A change that was
//! rejected, held or rolled back is an OK answer with that status; errors are the engine's
//! [`ChangeError`]s before anything was decided (codes in [`crate::error::change_code`]).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use harbinger_actuate::resource::ResourceSpec;
use harbinger_change::engine::Restored;
use harbinger_change::predict::{Prediction, SubmitOptions, SubmitReport};
use harbinger_change::store::{ChangeRecord, ChangedResource, LogEntry};
use harbinger_change::template::{Template, TestSpec};
use harbinger_change::validate::{Outcome, TestResult};
use harbinger_change::whatif::Analysis;
use harbinger_change::{ApplyOptions, ChangeEngine, ChangeError, RollbackReport, UpdateOp};
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::service::{GrpcState, blocking};
use crate::{GrpcError, convert, pb};

/// Largest change template accepted, bytes (4 MiB); larger ones are RESOURCE_EXHAUSTED.
pub const MAX_TEMPLATE_BYTES: usize = 4 << 20;

/// Longest watch a `Submit` may ask for (24 h): the call, and the change lock, last as long.
pub const MAX_MONITOR_FOR: Duration = Duration::from_secs(24 * 3600);

/// `ChangeService`.
#[derive(Clone, Debug)]
pub struct ChangeApi(pub GrpcState);

fn engine_of(st: &GrpcState) -> Result<Arc<ChangeEngine>, GrpcError> {
    st.change.clone().ok_or(GrpcError::NoChangeEngine)
}

/// Parses a request's template: `format` is `yaml`, `json` or empty (JSON when the text
/// starts with `{`, else YAML); `base_dir` is the absolute directory relative paths
/// resolve against, or empty when the template has none (then `/`). Errors name the
/// template as `template.yaml` or `template.json` with the line and column.
///
/// Does not check that `base_dir` exists (the handlers do, off the runtime threads).
///
/// # Errors
/// [`GrpcError::TooLarge`] over [`MAX_TEMPLATE_BYTES`]; [`GrpcError::Invalid`] for an
/// empty template, an unknown format, a relative `base_dir`, or relative paths without
/// one; [`GrpcError::Change`] (INVALID_ARGUMENT) for a template that does not parse or
/// does not describe a valid change.
pub fn parse_template(text: &str, format: &str, base_dir: &str) -> Result<Template, GrpcError> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(GrpcError::TooLarge(format!(
            "`template` is {} bytes, over the limit of {MAX_TEMPLATE_BYTES} bytes (4 MiB)",
            text.len()
        )));
    }
    if text.trim().is_empty() {
        return Err(GrpcError::Invalid("`template` is empty".into()));
    }
    let starts_like_json = text.trim_start().starts_with('{');
    let json = match format.trim().to_ascii_lowercase().as_str() {
        "" => starts_like_json,
        "json" => true,
        "yaml" | "yml" => false,
        other => {
            return Err(GrpcError::Invalid(format!(
                "`format` {}: expected \"yaml\" or \"json\" (or empty: sniffed from the text)",
                harbinger_core::ids::echo(other)
            )));
        }
    };
    // The parser takes text starting with `{` for JSON; a YAML flow mapping is told apart
    // by a document marker on its first line (line numbers stay the same).
    let (name, text) = match (json, starts_like_json) {
        (true, _) => ("template.json", Cow::Borrowed(text)),
        (false, true) => ("template.yaml", Cow::Owned(format!("--- {text}"))),
        (false, false) => ("template.yaml", Cow::Borrowed(text)),
    };
    let base = base_dir.trim();
    let base_path = if base.is_empty() { PathBuf::from("/") } else { PathBuf::from(base) };
    if !base_path.is_absolute() {
        return Err(GrpcError::Invalid(format!(
            "`base_dir` {} is not an absolute path (the server's working directory means nothing to a client)",
            harbinger_core::ids::echo(base)
        )));
    }
    let template = harbinger_change::template::parse(&text, Path::new(name), &base_path).map_err(ChangeError::from)?;
    if base.is_empty() {
        let relative = relative_paths(&template);
        if !relative.is_empty() {
            let more = if relative.len() > 3 { format!(" and {} more", relative.len() - 3) } else { String::new() };
            return Err(GrpcError::Invalid(format!(
                "the template has relative paths ({}{more}) and `base_dir` is empty: give the absolute directory they resolve against",
                relative.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            )));
        }
    }
    Ok(template)
}

/// Whether a command needs a working directory: its program is a relative path
/// (`bin/check`), or an argument starts with `./` or `../`.
fn relative_command(argv: &[String]) -> Option<&str> {
    let program = argv.first().filter(|p| p.contains('/') && !p.starts_with('/'));
    let arg = argv.iter().find(|a| matches!(a.as_str(), "." | "..") || a.starts_with("./") || a.starts_with("../"));
    program.or(arg).map(String::as_str)
}

/// The relative paths of a template, described: file resources' paths, and commands
/// (exec resources, command tests) that name relative paths.
fn relative_paths(t: &Template) -> Vec<String> {
    let mut out = Vec::new();
    for r in &t.resources {
        match &r.spec {
            ResourceSpec::File(f) if f.path.is_relative() => {
                out.push(format!("resource {:?}: path {:?}", r.id, f.path.display().to_string()))
            }
            ResourceSpec::Exec(e) => {
                let commands = [Some(&e.read), Some(&e.apply), e.restore.as_ref(), e.stage.as_ref(), e.unstage.as_ref()];
                if let Some(p) = commands.into_iter().flatten().find_map(|c| relative_command(c)) {
                    out.push(format!("resource {:?}: command path {p:?}", r.id));
                }
            }
            _ => {}
        }
    }
    for test in t.validation.iter().chain(&t.post_apply) {
        if let TestSpec::Command { name, run, .. } = test
            && let Some(p) = relative_command(run)
        {
            out.push(format!("test {name:?}: command path {p:?}"));
        }
    }
    out
}

/// [`parse_template`], then checks that `base_dir`, when given, is a directory.
async fn template_of(text: &str, format: &str, base_dir: &str) -> Result<Template, GrpcError> {
    let t = parse_template(text, format, base_dir)?;
    if !base_dir.trim().is_empty() {
        let is_dir = tokio::fs::metadata(&t.base_dir).await.is_ok_and(|m| m.is_dir());
        if !is_dir {
            return Err(GrpcError::Invalid(format!("`base_dir` {:?} is not a directory on the server", t.base_dir.display().to_string())));
        }
    }
    Ok(t)
}

/// A request's duration field: empty is `default`, else a humantime duration ("30s",
/// "5m", "1h 30m").
fn duration_field(field: &str, value: &str, default: Duration) -> Result<Duration, GrpcError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(default);
    }
    humantime::parse_duration(v).map_err(|e| {
        GrpcError::Invalid(format!(
            "`{field}` {} is not a duration ({e}); use e.g. \"500ms\", \"30s\", \"5m\"",
            harbinger_core::ids::echo(v)
        ))
    })
}

/// The options of a `Submit`: the request's durations, or the server's defaults
/// (`change.monitor_for`, `change.monitor_every`).
///
/// # Errors
/// [`GrpcError::Invalid`], naming the field, for a value that is not a duration, a
/// `monitor_for` over [`MAX_MONITOR_FOR`], or a zero `monitor_every`.
pub fn submit_options(st: &GrpcState, req: &pb::SubmitRequest) -> Result<SubmitOptions, GrpcError> {
    let monitor_for = duration_field("monitor_for", &req.monitor_for, st.change_monitor_for)?;
    let monitor_every = duration_field("monitor_every", &req.monitor_every, st.change_monitor_every)?;
    if monitor_for > MAX_MONITOR_FOR {
        return Err(GrpcError::Invalid(format!(
            "`monitor_for` {} is over the limit of 24h (the call lasts as long as the watch)",
            harbinger_core::ids::echo(req.monitor_for.trim())
        )));
    }
    if monitor_every.is_zero() {
        return Err(GrpcError::Invalid(format!(
            "`monitor_every` {} must be above zero",
            harbinger_core::ids::echo(req.monitor_every.trim())
        )));
    }
    Ok(SubmitOptions { monitor_for, monitor_every, override_high_cost: req.override_high_cost })
}

fn to_json<T: Serialize>(what: &str, v: &T) -> Result<String, GrpcError> {
    serde_json::to_string(v).map_err(|e| GrpcError::Internal(format!("{what} as JSON: {e}")))
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn update_op(o: &UpdateOp) -> pb::UpdateOp {
    pb::UpdateOp {
        resource: o.resource.clone(),
        path: o.path.clone(),
        op: o.op.as_str().to_string(),
        from_json: o.from.to_string(),
        to_json: o.to.to_string(),
    }
}

fn stages(s: &[Vec<String>]) -> Vec<pb::Stage> {
    s.iter().map(|r| pb::Stage { resources: r.clone() }).collect()
}

fn test_result(r: &TestResult) -> pb::ValidationResult {
    pb::ValidationResult {
        name: r.name.clone(),
        r#type: r.kind.clone(),
        outcome: r.outcome.as_str().to_string(),
        detail: r.detail.clone(),
        duration_ms: r.duration_ms,
    }
}

/// The wire form of an analysis.
pub fn analysis(a: &Analysis) -> pb::ChangeAnalysis {
    let rb = &a.rollback;
    pb::ChangeAnalysis {
        stack: a.stack.clone(),
        description: a.description.clone().unwrap_or_default(),
        update_stack: a.update_stack.iter().map(update_op).collect(),
        changed: a.impact.changed.clone(),
        dependents: a.impact.dependents.clone(),
        risk_score: a.risk.score.score,
        risk_level: a.risk.level.clone(),
        risk_factors: a
            .risk
            .score
            .factors
            .iter()
            .map(|f| pb::Factor { name: f.name.clone(), value: f.value, contribution: f.contribution })
            .collect(),
        validation: a.validation.iter().map(test_result).collect(),
        anomalies: a
            .anomalies
            .iter()
            .map(|x| pb::ChangeAnomaly {
                kind: x.kind.as_str().to_string(),
                resource: x.resource.clone().unwrap_or_default(),
                path: x.path.clone().unwrap_or_default(),
                reason: x.reason.clone(),
            })
            .collect(),
        baseline_changes: len_u32(a.baseline.changes),
        baseline_warm: a.baseline.warm,
        rollback: Some(pb::RollbackPlan {
            order: stages(&rb.order),
            estimate_p50_s: rb.estimate_p50_s,
            estimate_p90_s: rb.estimate_p90_s,
            risk: rb.risk,
            high_cost: rb.high_cost,
            high_cost_reasons: rb.high_cost_reasons.clone(),
            estimate_basis: rb.estimate_basis.clone(),
            resources_needed: rb.resources_needed.clone(),
            simulation_problems: rb.simulation_problems.clone(),
            parallelism: len_u32(rb.parallelism),
        }),
        apply_order: stages(&a.apply_order),
    }
}

fn restored(r: &Restored) -> pb::RestoredResource {
    pb::RestoredResource {
        resource: r.resource.clone(),
        ok: r.ok,
        detail: r.detail.clone(),
        duration_ms: r.duration_ms,
        verified: r.verified,
        differences: r.differences.clone(),
    }
}

/// The wire form of a rollback that ran.
pub fn rollback_result(r: &RollbackReport) -> pb::RollbackResult {
    pb::RollbackResult {
        kind: r.kind.clone(),
        order: stages(&r.order),
        restored: r.restored.iter().map(restored).collect(),
        verified: r.verified,
    }
}

fn changed_resource(r: &ChangedResource) -> pb::ChangedResource {
    pb::ChangedResource { id: r.id.clone(), kind: r.kind.clone(), snapshot: r.snapshot, restored: r.restored }
}

/// The wire form of a change record.
pub fn record(r: &ChangeRecord) -> pb::ChangeRecord {
    pb::ChangeRecord {
        id: r.id.clone(),
        stack: r.stack.clone(),
        ts_ms: r.ts_ms,
        description: r.description.clone().unwrap_or_default(),
        status: r.status.as_str().to_string(),
        reason: r.reason.clone(),
        ops: r.ops.iter().map(update_op).collect(),
        resources: r.resources.iter().map(changed_resource).collect(),
        template_json: r.template.to_string(),
        base_dir: r.base_dir.display().to_string(),
    }
}

fn log_entry(e: &LogEntry) -> pb::ChangeLogEntry {
    pb::ChangeLogEntry {
        ts_ms: e.ts_ms,
        change: e.change.clone(),
        stack: e.stack.clone(),
        step: e.step.clone(),
        resource: e.resource.clone().unwrap_or_default(),
        kind: e.kind.clone().unwrap_or_default(),
        outcome: e.outcome.clone(),
        duration_ms: e.duration_ms,
        detail: e.detail.clone(),
    }
}

/// The status a rollback leaves its change in when the record cannot be read back.
fn status_of(r: &RollbackReport) -> &'static str {
    match (r.verified, r.kind.as_str()) {
        (false, _) => "rollback_failed",
        (true, "selective") => "partially_rolled_back",
        (true, _) => "rolled_back",
    }
}

fn prediction_str(p: Prediction) -> &'static str {
    match p {
        Prediction::Positive => "positive",
        Prediction::Negative => "negative",
    }
}

/// The wire form of a submission: `held` are the standby copies of a held change
/// ([`ChangeEngine::held`]), `json` the report as JSON.
pub fn submit_response(r: &SubmitReport, held: Vec<String>, json: String) -> pb::SubmitResponse {
    // The rollback after a deviation, else the gate's own while applying.
    let rollback = r.rollback.as_ref().or_else(|| r.apply.as_ref().and_then(|a| a.rollback.as_ref()));
    pb::SubmitResponse {
        change: r.change.clone(),
        prediction: prediction_str(r.prediction).to_string(),
        reasons: r.reasons.clone(),
        status: r.status.as_str().to_string(),
        reason: r.reason.clone(),
        pre_provisioned: r.pre_provisioned.clone(),
        held,
        monitor_checks: len_u32(r.monitor.len()),
        monitor_failed: len_u32(r.monitor.iter().filter(|t| t.outcome == Outcome::Failed).count()),
        rolled_back: rollback.is_some(),
        rollback_verified: rollback.is_some_and(|rb| rb.verified),
        json,
    }
}

fn joined<T>(r: Result<Result<T, ChangeError>, tokio::task::JoinError>, what: &str) -> Result<T, GrpcError> {
    r.map_err(|e| GrpcError::Internal(format!("{what} task: {e}")))?.map_err(GrpcError::from)
}

#[tonic::async_trait]
impl pb::change_service_server::ChangeService for ChangeApi {
    async fn simulate(&self, request: Request<pb::SimulateRequest>) -> Result<Response<pb::SimulateResponse>, Status> {
        // Not a read: the template's exec commands and command tests run, its files are
        // read (their contents come back in the update stack) and its URLs are probed.
        self.0.auth.check(request.metadata())?;
        let req = request.into_inner();
        let template = template_of(&req.template, &req.format, &req.base_dir).await?;
        let engine = engine_of(&self.0)?;
        let a = engine.whatif(template).await.map_err(GrpcError::from)?;
        let json = to_json("the analysis", &a)?;
        Ok(Response::new(pb::SimulateResponse { analysis: Some(analysis(&a)), json }))
    }

    async fn apply(&self, request: Request<pb::ApplyRequest>) -> Result<Response<pb::ApplyResponse>, Status> {
        self.0.auth.check(request.metadata())?;
        let req = request.into_inner();
        let template = template_of(&req.template, &req.format, &req.base_dir).await?;
        let engine = engine_of(&self.0)?;
        let opts = ApplyOptions { override_high_cost: req.override_high_cost, force: req.force };
        // Waiting for the running apply or rollback may be abandoned (nothing happened
        // yet); once this one starts, it runs to the end in its own task.
        let one_at_a_time = self.0.change_lock.clone().lock_owned().await;
        let task = tokio::spawn(async move {
            let _held = one_at_a_time;
            let r = engine.apply(template, opts).await;
            match &r {
                Ok(rep) => tracing::info!(change = %rep.change, stack = %rep.analysis.stack, status = rep.status.as_str(),
                    reason = %rep.reason, "change applied (gRPC Apply)"),
                Err(e) => tracing::info!(error = %e, "change not applied (gRPC Apply)"),
            }
            r
        });
        let report = joined(task.await, "apply")?;
        let json = to_json("the apply report", &report)?;
        Ok(Response::new(pb::ApplyResponse {
            change: report.change.clone(),
            status: report.status.as_str().to_string(),
            reason: report.reason.clone(),
            analysis: Some(analysis(&report.analysis)),
            post_apply: report.post_apply.iter().map(test_result).collect(),
            applied: report.applied.clone(),
            pre_provisioned: report.pre_provisioned.clone(),
            rollback: report.rollback.as_ref().map(rollback_result),
            json,
        }))
    }

    async fn submit(&self, request: Request<pb::SubmitRequest>) -> Result<Response<pb::SubmitResponse>, Status> {
        self.0.auth.check(request.metadata())?;
        let req = request.into_inner();
        let opts = submit_options(&self.0, &req)?;
        let template = template_of(&req.template, &req.format, &req.base_dir).await?;
        let engine = engine_of(&self.0)?;
        // As Apply: waiting for the running change may be abandoned; once this one starts
        // (dry run, apply, watch, rollback), it runs to the end in its own task.
        let one_at_a_time = self.0.change_lock.clone().lock_owned().await;
        let task = tokio::spawn(async move {
            let _held = one_at_a_time;
            let r = engine.submit(template, opts).await;
            match &r {
                Ok(rep) => tracing::info!(change = %rep.change, stack = %rep.analysis.stack, prediction = prediction_str(rep.prediction),
                    status = rep.status.as_str(), reason = %rep.reason, "change submitted (gRPC Submit)"),
                Err(e) => tracing::info!(error = %e, "change not submitted (gRPC Submit)"),
            }
            r.map(|rep| {
                let standby = if rep.change.is_empty() { Vec::new() } else { engine.held(&rep.change) };
                (rep, standby)
            })
        });
        let (report, held) = joined(task.await, "submit")?;
        let json = to_json("the submit report", &report)?;
        Ok(Response::new(submit_response(&report, held, json)))
    }

    async fn rollback(&self, request: Request<pb::RollbackRequest>) -> Result<Response<pb::RollbackResponse>, Status> {
        self.0.auth.check(request.metadata())?;
        let req = request.into_inner();
        let change = convert::required("change", &req.change)?.to_string();
        let resources = req
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| convert::required(&format!("resources[{i}]"), r).map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?;
        let engine = engine_of(&self.0)?;
        let one_at_a_time = self.0.change_lock.clone().lock_owned().await;
        let id = change.clone();
        let task = tokio::spawn(async move {
            let _held = one_at_a_time;
            let report = engine.rollback(&id, &resources).await?;
            let rec = match engine.store().change(&id) {
                Ok(rec) => rec,
                Err(e) => {
                    tracing::warn!(change = %id, error = %e, "rolled back, but the change record cannot be read back");
                    None
                }
            };
            tracing::info!(change = %id, kind = %report.kind, verified = report.verified, "change rolled back (gRPC Rollback)");
            Ok((report, rec))
        });
        let (report, rec) = joined(task.await, "rollback")?;
        let json = to_json("the rollback report", &report)?;
        let (status, reason) = match rec {
            Some(r) => (r.status.as_str().to_string(), r.reason),
            None => (status_of(&report).to_string(), String::new()),
        };
        Ok(Response::new(pb::RollbackResponse { change, status, reason, rollback: Some(rollback_result(&report)), json }))
    }

    async fn list_changes(&self, request: Request<pb::ListChangesRequest>) -> Result<Response<pb::ListChangesResponse>, Status> {
        self.0.auth.check_read(request.metadata())?;
        let stack = request.into_inner().stack.trim().to_string();
        let engine = engine_of(&self.0)?;
        let list = blocking(move || engine.store().changes((!stack.is_empty()).then_some(stack.as_str())))
            .await?
            .map_err(ChangeError::from)
            .map_err(GrpcError::from)?;
        Ok(Response::new(pb::ListChangesResponse { changes: list.iter().map(record).collect() }))
    }

    async fn get_change(&self, request: Request<pb::GetChangeRequest>) -> Result<Response<pb::GetChangeResponse>, Status> {
        self.0.auth.check_read(request.metadata())?;
        let req = request.into_inner();
        let id = convert::required("change", &req.change)?.to_string();
        let engine = engine_of(&self.0)?;
        let (rec, log) = blocking(move || -> Result<_, ChangeError> {
            let rec = engine.store().change(&id)?.ok_or_else(|| ChangeError::UnknownChange(id.clone()))?;
            let log = engine.store().log(Some(&id), None)?;
            Ok((rec, log))
        })
        .await?
        .map_err(GrpcError::from)?;
        Ok(Response::new(pb::GetChangeResponse { change: Some(record(&rec)), log: log.iter().map(log_entry).collect() }))
    }

    async fn get_rollout(&self, request: Request<pb::GetRolloutRequest>) -> Result<Response<pb::Rollout>, Status> {
        self.0.auth.check_read(request.metadata())?;
        let id = request.into_inner().id;
        Ok(Response::new(crate::rollout::get(&self.0, id).await?))
    }

    async fn list_rollouts(&self, request: Request<pb::ListRolloutsRequest>) -> Result<Response<pb::ListRolloutsResponse>, Status> {
        self.0.auth.check_read(request.metadata())?;
        Ok(Response::new(crate::rollout::list(&self.0).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn code(r: Result<Template, GrpcError>) -> (Code, String) {
        let e = r.expect_err("refused");
        (e.code(), e.to_string())
    }

    const YAML: &str = "stack: s\nresources:\n  - {id: a, kind: file, path: /tmp/a.json, desired: {content: {x: 1}}}\n";

    #[test]
    fn formats_are_sniffed_or_given() {
        let t = parse_template(YAML, "", "").expect("yaml");
        assert_eq!((t.stack.as_str(), t.base_dir.as_path()), ("s", Path::new("/")));
        let json = r#"{"stack": "s", "resources": [{"id": "a", "kind": "file", "path": "/tmp/a.json"}]}"#;
        assert_eq!(parse_template(json, "", "").expect("json").resources.len(), 1);
        assert_eq!(parse_template(json, "json", "").expect("json").resources.len(), 1);
        // A YAML flow mapping is not JSON, but starts like it.
        let flow = "{stack: s, resources: [{id: a, kind: file, path: /tmp/a.json}]}";
        assert_eq!(parse_template(flow, "yaml", "").expect("yaml flow").stack, "s");
        let (c, m) = code(parse_template(flow, "", ""));
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.starts_with("template.json:1:"), "{m}");
        let (c, m) = code(parse_template(YAML, "toml", ""));
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.contains("`format` \"toml\""), "{m}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let bad = "stack: s\nresources:\n  - id: a\n   kind: file\n";
        let (c, m) = code(parse_template(bad, "", "/tmp"));
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.starts_with("template.yaml:4:"), "{m}");
        let (c, m) = code(parse_template("stack: s\nresources: []\nbogus: 1\n", "yaml", "/tmp"));
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.contains("bogus"), "{m}");
        let (c, _) = code(parse_template("  \n", "", ""));
        assert_eq!(c, Code::InvalidArgument);
    }

    #[test]
    fn base_dir_must_be_absolute_and_is_needed_for_relative_paths() {
        let rel = "stack: s\nresources:\n  - {id: a, kind: file, path: conf/a.json}\nvalidation:\n  - {name: check, type: command, run: [python3, ./check.py]}\n";
        let (c, m) = code(parse_template(rel, "", ""));
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.contains("resource \"a\": path \"conf/a.json\"") && m.contains("test \"check\": command path \"./check.py\""), "{m}");
        let t = parse_template(rel, "", "/srv/shop").expect("with a base");
        assert_eq!(t.base_dir, Path::new("/srv/shop"));
        let (c, m) = code(parse_template(rel, "", "srv/shop"));
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.contains("`base_dir` \"srv/shop\" is not an absolute path"), "{m}");
        let exec = "stack: s\nresources:\n  - {id: e, kind: exec, read: [bin/read], apply: [/bin/true]}\n";
        let (_, m) = code(parse_template(exec, "", ""));
        assert!(m.contains("resource \"e\": command path \"bin/read\""), "{m}");
    }

    #[test]
    fn submit_durations_default_to_the_server_and_are_checked() {
        let mut st = crate::GrpcState::new(
            harbinger_core::Stores::from_backend(Arc::new(harbinger_store::MemoryStore::new(harbinger_store::Limits::default()))),
            None,
            Arc::new(harbinger_api::Telemetry::new()),
        );
        st.change_monitor_for = Duration::from_secs(90);
        st.change_monitor_every = Duration::from_secs(3);
        let req = |f: &str, e: &str| pb::SubmitRequest { monitor_for: f.into(), monitor_every: e.into(), ..Default::default() };
        let o = submit_options(&st, &req("", "")).expect("defaults");
        assert_eq!((o.monitor_for, o.monitor_every, o.override_high_cost), (Duration::from_secs(90), Duration::from_secs(3), false));
        let o = submit_options(&st, &pb::SubmitRequest { override_high_cost: true, ..req("0s", " 250ms ") }).expect("given");
        assert_eq!((o.monitor_for, o.monitor_every, o.override_high_cost), (Duration::ZERO, Duration::from_millis(250), true));
        assert_eq!(submit_options(&st, &req("1h 30m", "")).expect("compound").monitor_for, Duration::from_secs(5400));
        for (f, e, field) in [
            ("soon", "", "`monitor_for` \"soon\""),
            ("", "5", "`monitor_every` \"5\""),
            ("", "0s", "`monitor_every` \"0s\""),
            ("25h", "", "`monitor_for` \"25h\""),
        ] {
            let err = submit_options(&st, &req(f, e)).expect_err("refused");
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(err.to_string().starts_with(field), "{err}");
        }
    }

    #[test]
    fn oversized_templates_are_refused_naming_the_limit() {
        let big = format!("{YAML}#{}\n", "x".repeat(MAX_TEMPLATE_BYTES));
        let (c, m) = code(parse_template(&big, "", ""));
        assert_eq!(c, Code::ResourceExhausted);
        assert!(m.contains("limit of 4194304 bytes (4 MiB)"), "{m}");
    }
}
