//! [`Engine`]: risk ticks, plans, and the journaled executor, over one shadow store.
//!
//! Every path that may change shadows (the tick, an operator's create or promote, an
//! Alertmanager webhook) takes the engine's lock, builds a [`PlanInput`] from the
//! inventory, the risk the last tick left and the shadows that exist, asks the pure
//! planner, and performs the plan's actions one by one:
//!
//! 1. journal the action (and a new shadow) as pending, unless its key was journaled
//!    before ([`ShadowStore::begin`](harbinger_core::ShadowStore::begin));
//! 2. call the actuator;
//! 3. record the outcome and the shadow's new state in one transaction.
//!
//! A crash between 1 and 3 leaves a pending entry; [`Engine::open`] performs it again
//! (actuators are idempotent by key), so no shadow is lost or created twice.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::{Duration, Instant};

use harbinger_core::shadow::{Cause, Shadow, ShadowState, transition};
use harbinger_core::{
    Begun, Clock, Event, EventKind, Finish, Host, HostId, HostState, HostTransition, Intent, JournalEntry, JournalStatus, Resource,
    ResourceId, RiskScorer, ShadowId, StoreError, Stores, TimestampMs, TransitionKind,
};
use harbinger_plan::{Action, ActionKind, Budget, Decision, HostView, Plan, PlanInput, ResourceView, Trigger, kind, plan};
use serde::Serialize;
use tokio::sync::{Mutex, broadcast};

use harbinger_snapshot::{SnapshotConfig, SnapshotError, SnapshotMeta, SnapshotStore};

use crate::actuator::{Actuator, ActuatorOutcome, ActuatorRequest, describe};
use crate::alerts::{self, PayloadError};
use crate::telemetry::{AlertLabel, KindLabel, OutcomeLabel, Telemetry};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The planner's limits and thresholds.
    pub budget: Budget,
    /// Where decisions are appended as JSON lines (`decisions.jsonl`); `None`: nowhere.
    pub decision_log: Option<PathBuf>,
    /// A failing action is tried at most this many times (once per plan that repeats it).
    pub max_attempts: u32,
    /// Decisions kept in memory for `GET /shadow/status`.
    pub recent_decisions: usize,
    /// Where delta snapshots of resource state are taken before changes; `None`: none.
    pub snapshots: Option<SnapshotConfig>,
    /// Shadows no longer live (promoted, retired, expired, failed) and finished journal
    /// entries are deleted, from memory and the store, this long after their last change
    /// (checked once per [`PRUNE_EVERY_MS`] of the clock); `None`: kept for ever. The
    /// decision log keeps every decision either way.
    pub history_ms: Option<i64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            budget: Budget::default(),
            decision_log: None,
            max_attempts: 5,
            recent_decisions: 1000,
            snapshots: None,
            history_ms: None,
        }
    }
}

/// Why an engine call was refused or failed. Each variant maps to one HTTP status and one
/// gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The inventory has no such resource.
    #[error("unknown resource {}", harbinger_core::ids::echo(.0.as_str()))]
    UnknownResource(ResourceId),
    /// No shadow has this id.
    #[error("unknown shadow {}", harbinger_core::ids::echo(.0.as_str()))]
    UnknownShadow(ShadowId),
    /// A create for a resource that already has a live shadow made by hand.
    #[error("resource {resource} already has live shadow {shadow} ({state}) created by hand")]
    Duplicate {
        /// The resource.
        resource: ResourceId,
        /// Its live shadow.
        shadow: ShadowId,
        /// That shadow's state.
        state: ShadowState,
    },
    /// A promotion of a shadow that is not ready.
    #[error("shadow {shadow} is {state}; only a ready shadow can be promoted")]
    NotReady {
        /// The shadow.
        shadow: ShadowId,
        /// Its state.
        state: ShadowState,
    },
    /// The planner placed no shadow (no capacity anywhere, below the minimum, ...).
    #[error("no shadow of {resource}: {reason}")]
    NotPlaced {
        /// The resource.
        resource: ResourceId,
        /// The planner's reason.
        reason: String,
    },
    /// A malformed Alertmanager payload.
    #[error(transparent)]
    Alerts(#[from] PayloadError),
    /// A malformed request.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The shadow store failed.
    #[error("shadow store: {0}")]
    Store(#[from] StoreError),
    /// The actuator failed an action asked for by hand.
    #[error("actuator {actuator} failed {key}: {detail}")]
    Actuator {
        /// The actuator.
        actuator: &'static str,
        /// The action's key.
        key: String,
        /// What it said.
        detail: String,
    },
    /// The snapshot store refused or failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Snapshots are not configured.
    #[error("snapshots are not configured")]
    NoSnapshots,
    /// A worker task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One action performed (or found journaled before), with its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Executed {
    /// Idempotency key.
    pub key: String,
    /// Outcome.
    pub status: JournalStatus,
    /// The actuator's words.
    pub detail: String,
    /// Why it was done.
    pub decision: Decision,
    /// The shadow after the action.
    pub shadow: Option<Shadow>,
}

/// What [`Engine::open`] found in the journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResumeReport {
    /// Shadows loaded.
    pub shadows: usize,
    /// Pending actions performed again.
    pub resumed: Vec<Executed>,
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TickReport {
    /// The tick's time.
    pub now: TimestampMs,
    /// Hosts that entered or left the alerting state.
    pub transitions: Vec<HostTransition>,
    /// Every decision of the plan.
    pub decisions: Vec<Decision>,
    /// The actions performed.
    pub executed: Vec<Executed>,
}

/// What a webhook did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertReport {
    /// Alerts in the payload.
    pub received: usize,
    /// New firing alerts.
    pub firing: usize,
    /// Resolved alerts.
    pub resolved: usize,
    /// Firing alerts already known by fingerprint (ignored).
    pub duplicates: usize,
    /// The decisions taken.
    pub decisions: Vec<Decision>,
}

/// Which shadows [`Engine::status`] lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusFilter {
    /// Only this shadow.
    pub id: Option<ShadowId>,
    /// Only shadows of this resource.
    pub resource: Option<ResourceId>,
    /// Only shadows whose primary or host is this host.
    pub host: Option<HostId>,
    /// Only shadows in this state.
    pub state: Option<ShadowState>,
    /// Only live shadows.
    pub live: bool,
}

/// The shadows and the recent decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Status {
    /// The engine's clock now.
    pub now: TimestampMs,
    /// The actuator in use.
    pub actuator: &'static str,
    /// Shadows matching the filter, by id.
    pub shadows: Vec<Shadow>,
    /// Every shadow counted by state.
    pub counts: BTreeMap<ShadowState, usize>,
    /// The latest decisions about the matching shadows' resources (or all, unfiltered),
    /// oldest first.
    pub decisions: Vec<Decision>,
    /// Actions journaled and not finished.
    pub pending_actions: usize,
}

#[derive(Debug, Default)]
struct State {
    hosts: Vec<Host>,
    resources: BTreeMap<ResourceId, Resource>,
    shadows: BTreeMap<ShadowId, Shadow>,
    risk: BTreeMap<HostId, HostState>,
    firing: BTreeSet<String>,
    down: BTreeSet<HostId>,
    recent: VecDeque<Decision>,
    log: Option<std::fs::File>,
    /// Clock time of the last snapshot expiry pass.
    last_expiry: Option<TimestampMs>,
    /// Clock time of the last pass deleting old history ([`EngineConfig::history_ms`]).
    last_prune: Option<TimestampMs>,
    /// The planner's views of `hosts` and `resources`, kept between plans (a plan per
    /// tick cloned thousands of names); dropped when either changes, and each plan's risk,
    /// alert and up fields written afresh.
    views: Option<Views>,
}

/// `st`'s hosts and resources as the planner sees them, the fields a plan sets (risk,
/// alerting, up) at their defaults.
fn build_views(st: &State) -> Views {
    Views { hosts: st.hosts.iter().map(HostView::from).collect(), resources: st.resources.values().map(ResourceView::from).collect() }
}

/// The shadows a plan is given: the live ones, and a promotion whose resource the engine
/// has not moved yet (the resource's latest promotion, the resource still on the
/// shadow's primary, which is down), so the planner does not fail it over twice. Earlier
/// promotions are history, left out: a resource failed over and back fails over again
/// when its host goes down, and a plan does not copy every promotion since the start.
fn plan_shadows(st: &State) -> Vec<Shadow> {
    let later = |a: &Shadow, b: &Shadow| (a.updated_at, &a.id) > (b.updated_at, &b.id);
    let in_flight = |s: &Shadow| {
        // The planner fails over only resources of hosts that are down.
        st.down.contains(&s.primary)
            && st.resources.get(&s.resource).is_some_and(|r| r.host == s.primary)
            && !st.shadows.values().any(|o| o.state == ShadowState::Promoted && o.resource == s.resource && later(o, s))
    };
    st.shadows.values().filter(|s| s.is_live() || (s.state == ShadowState::Promoted && in_flight(s))).cloned().collect()
}

/// Whether two views agree but for the fields a plan sets (the check in [`Engine::plan`]).
fn statics_equal(a: &Views, b: &Views) -> bool {
    let host = |h: &HostView| (h.id.clone(), h.zone.clone(), h.rack.clone(), h.cpu_cores.to_bits(), h.mem_gb.to_bits());
    a.hosts.iter().map(host).eq(b.hosts.iter().map(host)) && a.resources == b.resources
}

/// The hosts and resources as the planner sees them.
#[derive(Debug, Default, PartialEq)]
struct Views {
    hosts: Vec<HostView>,
    resources: Vec<ResourceView>,
}

#[derive(Debug)]
struct Inner {
    stores: Stores,
    scorer: Option<Arc<dyn RiskScorer>>,
    actuator: Arc<dyn Actuator>,
    clock: Arc<dyn Clock>,
    telemetry: Arc<Telemetry>,
    cfg: EngineConfig,
    state: Mutex<State>,
    queue: StdMutex<Vec<Trigger>>,
    events: broadcast::Sender<Executed>,
    snapshots: Option<Arc<SnapshotStore>>,
}

/// How often (engine clock) snapshots past their TTL are removed.
pub const EXPIRY_EVERY_MS: i64 = 60 * 60_000;

/// How often (engine clock) shadows and journal entries older than
/// [`EngineConfig::history_ms`] are deleted.
pub const PRUNE_EVERY_MS: i64 = 60 * 60_000;

/// Whether a pass done every `every` ms of the clock, last at `last`, is due at `now`
/// (also when the clock went back).
fn due(last: Option<TimestampMs>, now: TimestampMs, every: i64) -> bool {
    last.is_none_or(|last| now - last >= every || now < last)
}

/// The engine. Cheap to clone; every clone is the same engine.
#[derive(Debug, Clone)]
pub struct Engine(Arc<Inner>);

/// The parts an engine is built from.
#[derive(Debug, Clone)]
pub struct EngineParts {
    /// The stores (inventory and shadows are read from them).
    pub stores: Stores,
    /// The live scorer; without one, risk never triggers anything.
    pub scorer: Option<Arc<dyn RiskScorer>>,
    /// Who performs the actions.
    pub actuator: Arc<dyn Actuator>,
    /// The engine's clock (wall clock in `serve`, virtual in replay).
    pub clock: Arc<dyn Clock>,
    /// Own metrics.
    pub telemetry: Arc<Telemetry>,
}

fn shadow_of(kind: &ActionKind) -> &ShadowId {
    match kind {
        ActionKind::CreateShadow { shadow } => &shadow.id,
        ActionKind::RetireShadow { shadow, .. }
        | ActionKind::ExpireShadow { shadow }
        | ActionKind::PromoteShadow { shadow }
        | ActionKind::AddCause { shadow, .. }
        | ActionKind::DropCause { shadow, .. } => shadow,
    }
}

/// The shadow after `kind` with `outcome`: a pure function, so resuming gives the same.
fn effect(before: &Shadow, kind: &ActionKind, outcome: &ActuatorOutcome, now: TimestampMs) -> Shadow {
    let mut s = before.clone();
    // Moves the lifecycle refuses leave the shadow as it is (a resumed action may find
    // it already moved).
    let go = |s: &mut Shadow, to: ShadowState| {
        let _moved = transition(s, to, now, None);
    };
    if !outcome.succeeded() {
        if matches!(kind, ActionKind::CreateShadow { .. }) {
            go(&mut s, ShadowState::Failed);
        }
        return s;
    }
    match kind {
        ActionKind::CreateShadow { .. } => {
            if outcome.endpoint.is_some() {
                s.endpoint.clone_from(&outcome.endpoint);
            }
            let target = outcome.reached.unwrap_or(ShadowState::Ready);
            for next in [ShadowState::Provisioning, ShadowState::Syncing, ShadowState::Ready] {
                if s.state == target || !s.is_live() {
                    break;
                }
                go(&mut s, next);
            }
        }
        ActionKind::RetireShadow { state, .. } => go(&mut s, *state),
        ActionKind::ExpireShadow { .. } => go(&mut s, ShadowState::Expired),
        ActionKind::PromoteShadow { .. } => go(&mut s, ShadowState::Promoted),
        ActionKind::AddCause { cause, .. } => {
            if !s.causes.contains(cause) {
                s.causes.push(cause.clone());
                s.updated_at = now;
            }
        }
        ActionKind::DropCause { cause, .. } => {
            if s.causes.contains(cause) {
                s.causes.retain(|c| c != cause);
                s.updated_at = now;
            }
        }
    }
    s
}

/// The trigger a change event means, if any: deployments of a resource, configuration
/// changes and announced maintenance.
pub fn event_trigger(e: &Event) -> Option<Trigger> {
    let wanted = matches!(e.kind, EventKind::DeployStarted | EventKind::ConfigChanged | EventKind::HostMaintenance);
    if !wanted || (e.resource.is_none() && e.host.is_none()) {
        return None;
    }
    Some(Trigger::Event {
        kind: e.kind.as_str().to_string(),
        id: e.deployment.clone().unwrap_or_else(|| format!("{}@{}", e.kind.as_str(), e.ts)),
        host: e.host.clone(),
        resource: e.resource.as_deref().map(ResourceId::new),
    })
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Engine {
    /// Loads the inventory and the shadows, performs the actions the journal holds as
    /// pending (a previous run stopped between journaling and recording an outcome), and
    /// returns the engine.
    ///
    /// # Errors
    /// The stores cannot be read or written, or the decision log cannot be opened.
    pub async fn open(parts: EngineParts, cfg: EngineConfig) -> Result<(Engine, ResumeReport), EngineError> {
        let log = match &cfg.decision_log {
            Some(p) => Some(std::fs::OpenOptions::new().create(true).append(true).open(p).map_err(|source| StoreError::Io {
                op: "open decision log",
                path: p.clone(),
                source,
            })?),
            None => None,
        };
        let snapshots = match &cfg.snapshots {
            Some(c) => Some(Arc::new(SnapshotStore::open(c.clone())?)),
            None => None,
        };
        let (events, _) = broadcast::channel(1024);
        let engine = Engine(Arc::new(Inner {
            stores: parts.stores,
            scorer: parts.scorer,
            actuator: parts.actuator,
            clock: parts.clock,
            telemetry: parts.telemetry,
            cfg,
            state: Mutex::new(State { log, ..State::default() }),
            queue: StdMutex::new(Vec::new()),
            events,
            snapshots,
        }));
        engine.reload_inventory().await?;
        let mut st = engine.0.state.lock().await;
        for s in engine.0.stores.shadows.shadows().await? {
            for c in &s.causes {
                if let (true, Cause::Alert { fingerprint }) = (s.is_live(), c) {
                    st.firing.insert(fingerprint.clone());
                }
            }
            st.shadows.insert(s.id.clone(), s);
        }
        let mut report = ResumeReport { shadows: st.shadows.len(), resumed: Vec::new() };
        let now = engine.0.clock.now_ms();
        for entry in engine.0.stores.shadows.pending().await? {
            let ex = match serde_json::from_value::<Action>(entry.action.clone()) {
                Ok(action) => engine.run(&mut st, &action, &entry, now).await?,
                Err(e) => {
                    let detail = format!("cannot read the journaled action: {e}");
                    engine.finish(&entry, JournalStatus::Failed, detail.clone(), now, None).await?;
                    tracing::error!(key = %entry.key, "{detail}");
                    continue;
                }
            };
            tracing::info!(key = %ex.key, status = %ex.status, "resumed a journaled action");
            report.resumed.push(ex);
        }
        engine.update_gauges(&st);
        drop(st);
        Ok((engine, report))
    }

    /// Reads hosts and resources from the inventory store again.
    ///
    /// # Errors
    /// The inventory cannot be read.
    pub async fn reload_inventory(&self) -> Result<(), EngineError> {
        let hosts = self.0.stores.inventory.hosts().await?;
        let resources = self.0.stores.inventory.resources().await?;
        let mut st = self.0.state.lock().await;
        st.hosts = hosts;
        st.resources = resources.into_iter().map(|r| (ResourceId::new(&r.id), r)).collect();
        st.views = None;
        Ok(())
    }

    /// Own metrics.
    pub fn telemetry(&self) -> &Telemetry {
        &self.0.telemetry
    }

    /// The actuator's name.
    pub fn actuator(&self) -> &'static str {
        self.0.actuator.name()
    }

    /// A stream of every action performed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Executed> {
        self.0.events.subscribe()
    }

    /// Change events: queues the triggers they mean (deployments, configuration changes,
    /// maintenance) for the next tick, and, before a deployment or configuration change
    /// of a known resource, takes a delta snapshot of the parts of its state the change
    /// profile of its kind names. Answers the `snapshot_taken` decisions. A snapshot that
    /// fails is logged and skipped: the events are already stored.
    pub async fn observe_events(&self, events: &[Event]) -> Vec<Decision> {
        for h in events.iter().filter(|e| e.kind == EventKind::HostRecovered).filter_map(|e| e.host.as_ref()) {
            self.set_up(h, true).await;
        }
        let t: Vec<Trigger> = events.iter().filter_map(event_trigger).collect();
        if !t.is_empty() {
            lock(&self.0.queue).extend(t);
        }
        let Some(store) = self.0.snapshots.clone() else { return Vec::new() };
        let changes: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::DeployStarted | EventKind::ConfigChanged) && e.resource.is_some())
            .collect();
        if changes.is_empty() {
            return Vec::new();
        }
        let now = self.0.clock.now_ms();
        let mut st = self.0.state.lock().await;
        let mut jobs = Vec::new();
        for e in changes {
            let Some(r) = e.resource.as_deref().and_then(|r| st.resources.get(&ResourceId::new(r))) else { continue };
            let what = e.deployment.clone().map_or_else(|| e.kind.as_str().to_string(), |d| format!("{} {d}", e.kind.as_str()));
            jobs.push((r.clone(), what));
        }
        let taken = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(r, what)| {
                    let meta = store.take(&r.id, &r.kind, &r.state, now);
                    (r, what, meta)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let taken = match taken {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "snapshot task failed");
                return Vec::new();
            }
        };
        let mut decisions = Vec::new();
        for (r, what, meta) in taken {
            match meta {
                Ok(m) => decisions.push(Decision {
                    ts: now,
                    kind: "snapshot_taken".to_string(),
                    host: r.host.clone(),
                    resource: Some(ResourceId::new(&r.id)),
                    target_host: None,
                    reason: format!(
                        "before {what}: snapshot {} of {} ({}; {} bytes)",
                        m.seq,
                        r.id,
                        match (m.parent, m.stored_paths.is_empty()) {
                            (None, _) => format!("full: {}", m.stored_paths.join(", ")),
                            (Some(p), true) => format!("delta: nothing changed since snapshot {p}"),
                            (Some(p), false) => format!("delta on snapshot {p}: {}", m.stored_paths.join(", ")),
                        },
                        m.bytes
                    ),
                    shadow: None,
                    priority: None,
                    cause: None,
                }),
                Err(e) => tracing::error!(error = %e, resource = %r.id, "snapshot before a change failed"),
            }
        }
        self.record(&mut st, &decisions);
        decisions
    }

    /// The snapshots of a resource, oldest first.
    ///
    /// # Errors
    /// [`EngineError::NoSnapshots`]; [`SnapshotError::UnknownResource`] when it has none.
    pub async fn snapshots(&self, resource: &ResourceId) -> Result<Vec<SnapshotMeta>, EngineError> {
        let store = self.0.snapshots.clone().ok_or(EngineError::NoSnapshots)?;
        let r = resource.as_str().to_string();
        tokio::task::spawn_blocking(move || store.list(&r))
            .await
            .map_err(|e| EngineError::Internal(format!("snapshot task: {e}")))?
            .map_err(EngineError::from)
    }

    /// A primary host failed (the watchdog saw it, or an operator says so): marks it down
    /// and plans at once. Ready shadows of its resources are promoted (the actuator
    /// switches traffic); resources without a live shadow take the standard path, said
    /// plainly: a shadow is provisioned elsewhere now and promoted when ready. The host
    /// stays down until a `host_recovered` event or [`Engine::set_up`].
    ///
    /// # Errors
    /// The shadow store failed.
    pub async fn host_failed(&self, host: &HostId, evidence: &str) -> Result<TickReport, EngineError> {
        let now = self.0.clock.now_ms();
        let mut st = self.0.state.lock().await;
        let fresh = st.down.insert(host.clone());
        let mut notes = Vec::new();
        let mut triggers = Vec::new();
        if fresh {
            for id in st.resources.iter().filter(|(_, r)| r.host == *host).map(|(id, _)| id) {
                // A live shadow of it copied from another host (the resource moved since)
                // is retired by the plan, not promoted: the standard path then.
                if st.shadows.values().any(|s| s.is_live() && s.resource == *id && s.primary == *host) {
                    continue;
                }
                notes.push(Decision {
                    ts: now,
                    kind: kind::FAILOVER.to_string(),
                    host: host.clone(),
                    resource: Some(id.clone()),
                    target_host: None,
                    reason: format!(
                        "primary {host} is down ({evidence}) and {id} has no shadow: standard path, a copy is provisioned elsewhere now and promoted when ready"
                    ),
                    shadow: None,
                    priority: None,
                    cause: None,
                });
                triggers.push(Trigger::Manual { resource: id.clone(), by: format!("failover of {host}") });
            }
            tracing::warn!(%host, %evidence, without_shadow = triggers.len(), "primary host down: failing over");
        }
        let p = self.plan(&mut st, now, triggers);
        let mut executed = self.execute(&mut st, &p).await?;
        let mut decisions = notes;
        decisions.extend(p.decisions());
        decisions.extend(self.poll_syncing(&mut st, now).await?);
        if p.created() > 0 {
            // Standard path: copies provisioned just now that are already ready are
            // promoted at once rather than at the next tick.
            let again = self.plan(&mut st, now, Vec::new());
            executed.extend(self.execute(&mut st, &again).await?);
            decisions.extend(again.decisions());
        }
        self.record(&mut st, &decisions);
        Ok(TickReport { now, transitions: Vec::new(), decisions, executed })
    }

    /// Records that the failover of `resource`'s primary `host` is done: the time from its
    /// first failed check to the host declared down, and from then to the failover's
    /// actions done, with the outcome of each action of `report`.
    pub async fn failover_done(&self, host: &HostId, resource: &ResourceId, detect: Duration, act: Duration, report: &TickReport) {
        let now = self.0.clock.now_ms();
        let outcomes: Vec<String> = report.executed.iter().map(|e| format!("{} {}", e.key, e.status.as_str())).collect();
        let d = Decision {
            ts: now,
            kind: kind::FAILOVER_DONE.to_string(),
            host: host.clone(),
            resource: Some(resource.clone()),
            target_host: None,
            reason: format!(
                "{host} declared down {} ms after the first failed check of {resource}; failover actions done {} ms later ({})",
                detect.as_millis(),
                act.as_millis(),
                if outcomes.is_empty() { "no action".to_string() } else { outcomes.join(", ") }
            ),
            shadow: None,
            priority: None,
            cause: None,
        };
        let mut st = self.0.state.lock().await;
        self.record(&mut st, std::slice::from_ref(&d));
    }

    /// After a promotion the shadow is the resource: it now runs on the shadow's host, at
    /// the shadow's endpoint (persisted in the inventory; without one the stale endpoint
    /// is dropped).
    async fn move_resource(&self, st: &mut State, promoted: &Shadow) -> Result<(), EngineError> {
        let Some(r) = st.resources.get_mut(&promoted.resource) else { return Ok(()) };
        r.host = promoted.host.clone();
        st.views = None;
        if let Some(obj) = r.state.as_object_mut() {
            match &promoted.endpoint {
                Some(e) => obj.insert("endpoint".into(), serde_json::Value::String(e.clone())),
                // The old address is the dead primary's: without the new one the
                // resource is not health-checked until the inventory says where it is.
                None => obj.remove("endpoint"),
            };
        }
        let r = r.clone();
        self.0.stores.inventory.put_resources(std::slice::from_ref(&r)).await?;
        tracing::info!(resource = %r.id, host = %r.host, endpoint = ?promoted.endpoint, "resource moved to its promoted shadow");
        Ok(())
    }

    /// Resources whose primary the watchdog checks: those with an `endpoint` in their
    /// state, on hosts that are up, with the check their state asks for.
    pub async fn watched(&self) -> Vec<(Resource, String)> {
        let st = self.0.state.lock().await;
        st.resources
            .values()
            .filter(|r| !st.down.contains(&r.host))
            .filter_map(|r| r.state.get("endpoint").and_then(|e| e.as_str()).map(|e| (r.clone(), e.to_string())))
            .collect()
    }

    /// Marks a host failed (`up == false`: its ready shadows are promoted at the next
    /// tick) or back in service.
    pub async fn set_up(&self, host: &HostId, up: bool) {
        let mut st = self.0.state.lock().await;
        if up {
            st.down.remove(host);
        } else {
            st.down.insert(host.clone());
        }
    }

    /// One engine tick at the clock's now: advances every host's risk and alert state,
    /// plans with the transitions and the queued triggers, performs the plan.
    ///
    /// # Errors
    /// The shadow store failed (the plan's remaining actions are not performed; the next
    /// tick plans them again).
    pub async fn tick(&self) -> Result<TickReport, EngineError> {
        let started = Instant::now();
        let now = self.0.clock.now_ms();
        let (transitions, states) = match self.0.scorer.clone() {
            Some(s) => tokio::task::spawn_blocking(move || (s.tick(now), s.host_states()))
                .await
                .map_err(|e| EngineError::Internal(format!("risk tick: {e}")))?,
            None => (Vec::new(), Vec::new()),
        };
        let mut st = self.0.state.lock().await;
        st.risk = states.into_iter().map(|s| (s.host.clone(), s)).collect();
        if self.0.scorer.is_some() {
            self.0.telemetry.set_host_states(st.risk.values());
        }
        let mut triggers: Vec<Trigger> = transitions
            .iter()
            .map(|t| match t.kind {
                TransitionKind::Entered => Trigger::HostAlert { host: t.host.clone(), risk: t.risk, probability: t.failure_probability },
                TransitionKind::Cleared => Trigger::HostCleared { host: t.host.clone() },
            })
            .collect();
        triggers.append(&mut lock(&self.0.queue));
        // Expiry reads every snapshot's header: once per EXPIRY_EVERY_MS of the engine's
        // clock is plenty for TTLs of days (and keeps replay from decoding them every tick).
        let expiry_due = due(st.last_expiry, now, EXPIRY_EVERY_MS);
        if let Some(store) = self.0.snapshots.clone().filter(|s| expiry_due && s.config().ttl_ms.is_some()) {
            st.last_expiry = Some(now);
            match tokio::task::spawn_blocking(move || store.expire(now)).await {
                Ok(Ok(r)) if !r.removed.is_empty() => {
                    tracing::info!(removed = r.removed.len(), rebased = r.rebased.len(), "snapshots expired")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "snapshot expiry failed"),
                Err(e) => tracing::error!(error = %e, "snapshot expiry task failed"),
            }
        }
        if let Some(keep) = self.0.cfg.history_ms
            && due(st.last_prune, now, PRUNE_EVERY_MS)
        {
            st.last_prune = Some(now);
            self.prune(&mut st, now.saturating_sub(keep)).await;
        }
        let p = self.plan(&mut st, now, triggers);
        let executed = self.execute(&mut st, &p).await?;
        let mut decisions = p.decisions();
        decisions.extend(self.poll_syncing(&mut st, now).await?);
        self.record(&mut st, &decisions);
        self.0.telemetry.engine_tick_seconds.observe(started.elapsed().as_secs_f64());
        Ok(TickReport { now, transitions, decisions, executed })
    }

    /// Deletes the shadows no longer live whose last change was before `before`, from
    /// memory and the store, and the journal entries finished before it. A store that
    /// fails is logged; the next pass tries again.
    async fn prune(&self, st: &mut State, before: TimestampMs) {
        st.shadows.retain(|_, s| s.is_live() || s.updated_at >= before);
        match self.0.stores.shadows.prune(before).await {
            Ok((0, 0)) => {}
            Ok((shadows, entries)) => tracing::info!(shadows, entries, before, "old shadows and journal entries deleted"),
            Err(e) => tracing::error!(error = %e, "deleting old shadows and journal entries failed"),
        }
    }

    /// An operator asks for a shadow of `resource`. Answers the actions taken about it.
    ///
    /// # Errors
    /// [`EngineError::UnknownResource`]; [`EngineError::Duplicate`] when a live shadow made
    /// by hand exists; [`EngineError::NotPlaced`] with the planner's reason when nothing
    /// fits. In those cases nothing changes.
    pub async fn create(&self, resource: &ResourceId, by: &str) -> Result<Vec<Executed>, EngineError> {
        let by = if by.trim().is_empty() { "operator" } else { by.trim() };
        let now = self.0.clock.now_ms();
        let mut st = self.0.state.lock().await;
        if !st.resources.contains_key(resource) {
            return Err(EngineError::UnknownResource(resource.clone()));
        }
        if let Some(s) = st
            .shadows
            .values()
            .find(|s| s.is_live() && s.resource == *resource && s.causes.iter().any(|c| matches!(c, Cause::Manual { .. })))
        {
            return Err(EngineError::Duplicate { resource: resource.clone(), shadow: s.id.clone(), state: s.state });
        }
        let trigger = Trigger::Manual { resource: resource.clone(), by: by.to_string() };
        let p = self.plan(&mut st, now, vec![trigger]);
        let about = |d: &Decision| d.resource.as_ref() == Some(resource);
        let placed =
            p.actions.iter().any(|a| about(&a.decision) && matches!(a.kind, ActionKind::CreateShadow { .. } | ActionKind::AddCause { .. }));
        if !placed {
            let reason = p.skipped.iter().find(|d| about(d)).map_or_else(|| "the planner placed nothing".to_string(), |d| d.reason.clone());
            return Err(EngineError::NotPlaced { resource: resource.clone(), reason });
        }
        let executed = self.execute(&mut st, &p).await?;
        self.record(&mut st, &p.decisions());
        Ok(executed.into_iter().filter(|e| about(&e.decision)).collect())
    }

    /// An operator promotes a ready shadow: it takes over from its primary.
    ///
    /// # Errors
    /// [`EngineError::UnknownShadow`]; [`EngineError::NotReady`] unless the shadow is
    /// ready (nothing changes); [`EngineError::Actuator`] when the actuator failed.
    pub async fn promote(&self, id: &ShadowId, by: &str) -> Result<Executed, EngineError> {
        let by = if by.trim().is_empty() { "operator" } else { by.trim() };
        let now = self.0.clock.now_ms();
        let mut st = self.0.state.lock().await;
        let s = st.shadows.get(id).cloned().ok_or_else(|| EngineError::UnknownShadow(id.clone()))?;
        if s.state != ShadowState::Ready {
            return Err(EngineError::NotReady { shadow: id.clone(), state: s.state });
        }
        let cause = Cause::Manual { by: by.to_string() };
        let decision = Decision {
            ts: now,
            kind: kind::SHADOW_PROMOTED.to_string(),
            host: s.primary.clone(),
            resource: Some(s.resource.clone()),
            target_host: Some(s.host.clone()),
            reason: format!("promoted by hand by {by}: {} takes over {} from {}", s.host, s.resource, s.primary),
            shadow: Some(id.clone()),
            priority: Some(s.priority),
            cause: Some(cause),
        };
        let action = Action { key: format!("promote:{id}"), kind: ActionKind::PromoteShadow { shadow: id.clone() }, decision };
        let ex = self.perform(&mut st, &action, now).await?;
        self.record(&mut st, std::slice::from_ref(&action.decision));
        self.update_gauges(&st);
        if matches!(ex.status, JournalStatus::Failed | JournalStatus::Skipped) {
            return Err(EngineError::Actuator { actuator: self.0.actuator.name(), key: ex.key, detail: ex.detail });
        }
        Ok(ex)
    }

    /// An Alertmanager webhook: firing alerts ask for shadows, resolved ones release them.
    /// A firing alert whose fingerprint is already firing is a duplicate and ignored.
    ///
    /// # Errors
    /// [`EngineError::Alerts`] for a malformed payload (nothing changes); store failures.
    pub async fn alerts(&self, body: &[u8]) -> Result<AlertReport, EngineError> {
        let alerts = alerts::parse(body)?;
        let now = self.0.clock.now_ms();
        let mut st = self.0.state.lock().await;
        let mut report = AlertReport { received: alerts.len(), ..AlertReport::default() };
        let mut triggers = Vec::new();
        let mut new_firing = Vec::new();
        for a in &alerts {
            let status = if a.firing {
                if st.firing.contains(&a.fingerprint) || new_firing.contains(&a.fingerprint) {
                    report.duplicates += 1;
                    self.0.telemetry.alerts_received.get_or_create(&AlertLabel { status: "duplicate" }).inc();
                    continue;
                }
                new_firing.push(a.fingerprint.clone());
                report.firing += 1;
                "firing"
            } else {
                st.firing.remove(&a.fingerprint);
                report.resolved += 1;
                "resolved"
            };
            self.0.telemetry.alerts_received.get_or_create(&AlertLabel { status }).inc();
            triggers.push(a.trigger());
        }
        if triggers.is_empty() {
            return Ok(report);
        }
        let p = self.plan(&mut st, now, triggers);
        self.execute(&mut st, &p).await?;
        // A firing alert that placed nothing is not remembered, so a resend tries again.
        for fp in new_firing {
            let cause = Cause::Alert { fingerprint: fp.clone() };
            if st.shadows.values().any(|s| s.is_live() && s.causes.contains(&cause)) {
                st.firing.insert(fp);
            }
        }
        report.decisions = p.decisions();
        self.record(&mut st, &report.decisions);
        Ok(report)
    }

    /// The shadows matching `filter`, counts by state and the recent decisions.
    ///
    /// # Errors
    /// The journal cannot be read.
    pub async fn status(&self, filter: &StatusFilter) -> Result<Status, EngineError> {
        let pending_actions = self.0.stores.shadows.pending().await?.len();
        let st = self.0.state.lock().await;
        let mut counts = BTreeMap::new();
        for s in st.shadows.values() {
            *counts.entry(s.state).or_insert(0) += 1;
        }
        let shadows: Vec<Shadow> = st
            .shadows
            .values()
            .filter(|s| filter.id.as_ref().is_none_or(|id| *id == s.id))
            .filter(|s| filter.resource.as_ref().is_none_or(|r| *r == s.resource))
            .filter(|s| filter.host.as_ref().is_none_or(|h| *h == s.host || *h == s.primary))
            .filter(|s| filter.state.is_none_or(|x| x == s.state))
            .filter(|s| !filter.live || s.is_live())
            .cloned()
            .collect();
        let filtered = filter.id.is_some() || filter.resource.is_some() || filter.host.is_some() || filter.state.is_some();
        let resources: BTreeSet<&ResourceId> = shadows.iter().map(|s| &s.resource).collect();
        let decisions = st
            .recent
            .iter()
            .filter(|d| {
                !filtered || d.resource.as_ref().is_some_and(|r| resources.contains(r)) || filter.resource.as_ref() == d.resource.as_ref()
            })
            .cloned()
            .collect();
        Ok(Status { now: self.0.clock.now_ms(), actuator: self.0.actuator.name(), shadows, counts, decisions, pending_actions })
    }

    /// Asks the actuator how every `syncing` shadow stands; moves those in sync to
    /// `ready` (a `shadow_ready` decision) and those that cannot get there to `failed`.
    async fn poll_syncing(&self, st: &mut State, now: TimestampMs) -> Result<Vec<Decision>, EngineError> {
        let syncing: Vec<Shadow> = st.shadows.values().filter(|s| s.state == ShadowState::Syncing).cloned().collect();
        let mut out = Vec::new();
        for s in syncing {
            let resource = st.resources.get(&s.resource).cloned();
            let next = match self.0.actuator.sync_state(&s, resource.as_ref()).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(shadow = %s.id, error = %e, "cannot tell whether the shadow is in sync");
                    continue;
                }
            };
            let (kind, reason) = match next {
                ShadowState::Ready => ("shadow_ready", format!("{} is in sync with {} on {}", s.id, s.resource, s.primary)),
                ShadowState::Failed => ("shadow_failed", format!("{} cannot get in sync with {} on {}", s.id, s.resource, s.primary)),
                _ => continue,
            };
            let mut after = s.clone();
            if transition(&mut after, next, now, None).is_err() {
                continue;
            }
            self.0.stores.shadows.put_shadow(&after).await?;
            let mut d = Decision {
                ts: now,
                kind: kind.to_string(),
                host: s.primary.clone(),
                resource: Some(s.resource.clone()),
                target_host: Some(s.host.clone()),
                reason,
                shadow: Some(s.id.clone()),
                priority: Some(s.priority),
                cause: None,
            };
            if let Some(e) = &after.endpoint {
                d.reason.push_str(&format!(" (serving at {e})"));
            }
            st.shadows.insert(after.id.clone(), after);
            out.push(d);
        }
        if !out.is_empty() {
            self.update_gauges(st);
        }
        Ok(out)
    }

    /// The planner's decision on `st` at `now` given `triggers`: its input built from the
    /// kept views ([`State::views`]), the risk, alert and up fields as they are now.
    fn plan(&self, st: &mut State, now: TimestampMs, triggers: Vec<Trigger>) -> Plan {
        let mut views = st.views.take().unwrap_or_else(|| build_views(st));
        // Debug builds (the tests) check that the kept views are what they would be built.
        debug_assert!(statics_equal(&views, &build_views(st)), "the planner's kept views went stale");
        for v in &mut views.hosts {
            let r = st.risk.get(&v.id);
            v.risk = r.map_or(0.0, |r| r.risk);
            v.failure_probability = r.map_or(0.0, |r| r.failure_probability);
            v.imminence = r.map_or(1.0, |r| r.imminence);
            v.alerting = r.is_some_and(|r| r.alerting);
            v.alert_cleared_at = r.and_then(|r| r.cleared_at);
            v.up = !st.down.contains(&v.id);
        }
        let shadows = plan_shadows(st);
        let input = PlanInput { now, hosts: views.hosts, resources: views.resources, shadows, triggers, budget: self.0.cfg.budget.clone() };
        let p = plan(&input);
        st.views = Some(Views { hosts: input.hosts, resources: input.resources });
        p
    }

    async fn execute(&self, st: &mut State, p: &Plan) -> Result<Vec<Executed>, EngineError> {
        let mut out = Vec::with_capacity(p.actions.len());
        for a in &p.actions {
            out.push(self.perform(st, a, p.now).await?);
        }
        self.update_gauges(st);
        Ok(out)
    }

    /// Journals `a` and runs it, unless its key was journaled before.
    async fn perform(&self, st: &mut State, a: &Action, now: TimestampMs) -> Result<Executed, EngineError> {
        let id = shadow_of(&a.kind).clone();
        let create = match &a.kind {
            ActionKind::CreateShadow { shadow } => Some(shadow.clone()),
            _ => None,
        };
        let action = serde_json::to_value(a).map_err(|e| EngineError::Internal(format!("encoding action {}: {e}", a.key)))?;
        let intent = Intent { key: a.key.clone(), shadow: id.clone(), action, at: now, create: create.clone() };
        let entry = match self.0.stores.shadows.begin(intent).await? {
            Begun::Existing(e) => {
                return Ok(Executed {
                    key: e.key,
                    status: e.status,
                    detail: format!("journaled before: {}", e.detail),
                    decision: a.decision.clone(),
                    shadow: st.shadows.get(&id).cloned(),
                });
            }
            Begun::Started(e) => e,
        };
        if let Some(s) = create {
            // New, or a failed creation begun again: the planned shadow, as stored.
            st.shadows.insert(id, s);
        }
        self.run(st, a, &entry, now).await
    }

    /// Calls the actuator for a pending entry and records the outcome.
    async fn run(&self, st: &mut State, a: &Action, entry: &JournalEntry, now: TimestampMs) -> Result<Executed, EngineError> {
        let Some(before) = st.shadows.get(&entry.shadow).cloned() else {
            let detail = format!("shadow {} no longer exists", entry.shadow);
            let e = self.finish(entry, JournalStatus::Skipped, detail, now, None).await?;
            return Ok(Executed { key: e.key, status: e.status, detail: e.detail, decision: a.decision.clone(), shadow: None });
        };
        let outcome = if entry.attempts > self.0.cfg.max_attempts {
            ActuatorOutcome::new(JournalStatus::Failed, format!("gave up after {} attempts", self.0.cfg.max_attempts))
        } else {
            let req = ActuatorRequest {
                key: entry.key.clone(),
                attempt: entry.attempts,
                action: a.kind.clone(),
                shadow: before.clone(),
                resource: st.resources.get(&before.resource).cloned(),
            };
            if matches!(a.kind, ActionKind::AddCause { .. } | ActionKind::DropCause { .. }) {
                // Bookkeeping only: nothing to do in the world.
                ActuatorOutcome::new(JournalStatus::Applied, describe(&req))
            } else {
                self.0.actuator.apply(&req).await
            }
        };
        let status = if outcome.status == JournalStatus::Pending { JournalStatus::Failed } else { outcome.status };
        let after = effect(&before, &a.kind, &outcome, now);
        let e = self.finish(entry, status, outcome.detail.clone(), now, Some(after.clone())).await?;
        st.shadows.insert(after.id.clone(), after.clone());
        self.0.telemetry.actions.get_or_create(&OutcomeLabel { actuator: self.0.actuator.name(), outcome: status.as_str() }).inc();
        if status == JournalStatus::Failed {
            tracing::warn!(key = %e.key, attempt = e.attempts, detail = %e.detail, "action failed");
        }
        if matches!(a.kind, ActionKind::PromoteShadow { .. }) && after.state == ShadowState::Promoted {
            self.move_resource(st, &after).await?;
        }
        let ex = Executed { key: e.key, status, detail: e.detail, decision: a.decision.clone(), shadow: Some(after) };
        // No subscribers is fine.
        let _sent = self.0.events.send(ex.clone());
        Ok(ex)
    }

    async fn finish(
        &self,
        entry: &JournalEntry,
        status: JournalStatus,
        detail: String,
        at: TimestampMs,
        shadow: Option<Shadow>,
    ) -> Result<JournalEntry, EngineError> {
        Ok(self.0.stores.shadows.finish(Finish { key: entry.key.clone(), status, detail, at, shadow }).await?)
    }

    /// Keeps decisions for status, counts them, and appends them to the decision log.
    fn record(&self, st: &mut State, decisions: &[Decision]) {
        if decisions.is_empty() {
            return;
        }
        let mut lines = Vec::new();
        for d in decisions {
            self.0.telemetry.decisions.get_or_create(&KindLabel { kind: d.kind.clone() }).inc();
            if let Ok(mut line) = serde_json::to_vec(d) {
                line.push(b'\n');
                lines.extend_from_slice(&line);
            }
            st.recent.push_back(d.clone());
        }
        while st.recent.len() > self.0.cfg.recent_decisions {
            st.recent.pop_front();
        }
        if let Some(f) = st.log.as_mut()
            && let Err(e) = f.write_all(&lines)
        {
            tracing::error!(error = %e, "cannot append to the decision log");
        }
    }

    fn update_gauges(&self, st: &State) {
        let live = st.shadows.values().filter(|s| s.is_live()).count();
        self.0.telemetry.shadows_live.set(i64::try_from(live).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbinger_core::JournalStatus;

    fn shadow(state: ShadowState) -> Shadow {
        Shadow {
            id: "db@b1#1".into(),
            resource: "db".into(),
            primary: "a1".into(),
            host: "b1".into(),
            state,
            causes: vec![Cause::Manual { by: "x".into() }],
            priority: 0.5,
            cpu_cores: 1.0,
            mem_gb: 1.0,
            created_at: 1,
            updated_at: 1,
            last_used_at: 1,
            expires_at: None,
            endpoint: None,
        }
    }

    #[test]
    fn effects_follow_the_outcome() {
        let planned = shadow(ShadowState::Planned);
        let create = ActionKind::CreateShadow { shadow: planned.clone() };
        let ok = ActuatorOutcome::new(JournalStatus::DryRun, "");
        assert_eq!(effect(&planned, &create, &ok, 5).state, ShadowState::Ready);
        let syncing = ActuatorOutcome { reached: Some(ShadowState::Syncing), ..ok.clone() };
        assert_eq!(effect(&planned, &create, &syncing, 5).state, ShadowState::Syncing);
        let failed = ActuatorOutcome::new(JournalStatus::Failed, "boom");
        assert_eq!(effect(&planned, &create, &failed, 5).state, ShadowState::Failed);
        let ready = shadow(ShadowState::Ready);
        let retire = ActionKind::RetireShadow { shadow: ready.id.clone(), state: ShadowState::Retired };
        assert_eq!(effect(&ready, &retire, &failed, 5).state, ShadowState::Ready, "a failed retire leaves it");
        assert_eq!(effect(&ready, &retire, &ok, 5).state, ShadowState::Retired);
        // Resuming an action whose effect already landed changes nothing.
        let retired = effect(&ready, &retire, &ok, 5);
        assert_eq!(effect(&retired, &retire, &ok, 9), retired);
        let add = ActionKind::AddCause { shadow: ready.id.clone(), cause: Cause::Risk { host: "a1".into() } };
        let with = effect(&ready, &add, &ok, 7);
        assert_eq!((with.causes.len(), with.updated_at), (2, 7));
        assert_eq!(effect(&with, &add, &ok, 8), with, "adding twice is a no-op");
    }

    #[test]
    fn change_events_become_triggers() {
        let e = |kind: EventKind, resource: Option<&str>| Event {
            ts: 10,
            kind,
            deployment: Some("d-1".into()),
            resource: resource.map(str::to_string),
            host: None,
            from: None,
            to: None,
            changes: Vec::new(),
            extra: serde_json::Map::new(),
        };
        assert_eq!(
            event_trigger(&e(EventKind::DeployStarted, Some("db"))),
            Some(Trigger::Event { kind: "deploy_started".into(), id: "d-1".into(), host: None, resource: Some("db".into()) })
        );
        assert_eq!(event_trigger(&e(EventKind::DeploySucceeded, Some("db"))), None);
        assert_eq!(event_trigger(&e(EventKind::ConfigChanged, None)), None, "names nothing");
    }
}
