//! The engine over a memory store: manual requests, alerts, risk ticks, failing
//! actuators and resuming a journal.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use harbinger_core::shadow::{Cause, ShadowState};
use harbinger_core::{
    Event, HostExplanation, HostId, HostRisk, HostState, HostTransition, Intent, InventoryStore, JournalStatus, ManualClock, ModelInfo,
    Resource, ResourceId, RiskScorer, SampleBatch, ScoreError, ShadowStore, Stores, TimestampMs, TransitionKind,
};
use harbinger_engine::{
    Actuator, ActuatorOutcome, ActuatorRequest, Engine, EngineConfig, EngineError, EngineParts, LogActuator, StatusFilter, Telemetry,
};
use harbinger_plan::{Action, ActionKind, Budget};
use harbinger_store::MemoryStore;

/// Scores set by the test; `tick` answers the queued transitions.
#[derive(Debug, Default)]
struct FakeScorer {
    states: Mutex<Vec<HostState>>,
    transitions: Mutex<Vec<HostTransition>>,
}

impl FakeScorer {
    fn set(&self, host: &str, risk: f64, alerting: bool, at: TimestampMs, entered: Option<bool>) {
        let mut s = self.states.lock().expect("lock");
        s.retain(|h| h.host.as_str() != host);
        s.push(HostState {
            host: host.into(),
            risk,
            failure_probability: risk,
            imminence: 1.0,
            alerting,
            cleared_at: (!alerting).then_some(at),
        });
        if let Some(e) = entered {
            self.transitions.lock().expect("lock").push(HostTransition {
                host: host.into(),
                at,
                kind: if e { TransitionKind::Entered } else { TransitionKind::Cleared },
                risk,
                failure_probability: risk,
            });
        }
    }
}

impl RiskScorer for FakeScorer {
    fn observe_samples(&self, _: &SampleBatch) {}
    fn observe_events(&self, _: &[Event]) {}
    fn tick(&self, _now: TimestampMs) -> Vec<HostTransition> {
        std::mem::take(&mut *self.transitions.lock().expect("lock"))
    }
    fn host_states(&self) -> Vec<HostState> {
        self.states.lock().expect("lock").clone()
    }
    fn score_hosts(&self, hosts: &[HostId]) -> Result<Vec<HostRisk>, ScoreError> {
        Err(ScoreError::UnknownHost(hosts[0].clone()))
    }
    fn score_all(&self) -> Vec<HostRisk> {
        Vec::new()
    }
    fn explain_host(&self, host: &HostId) -> Result<HostExplanation, ScoreError> {
        Err(ScoreError::UnknownHost(host.clone()))
    }
    fn model_info(&self) -> ModelInfo {
        ModelInfo { version: "fake".into(), horizon_ms: 3_600_000, learner: "none".into(), harbinger_version: "test".into() }
    }
    fn reload(&self, _: Option<&std::path::Path>) -> Result<ModelInfo, ScoreError> {
        Ok(self.model_info())
    }
}

/// Fails every action the first `fail` times, then applies.
#[derive(Debug, Default)]
struct Flaky {
    fail: usize,
    calls: AtomicUsize,
    keys: Mutex<Vec<String>>,
}

#[async_trait]
impl Actuator for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        self.keys.lock().expect("lock").push(req.key.clone());
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
            return ActuatorOutcome::new(JournalStatus::Failed, "connection refused");
        }
        ActuatorOutcome::new(JournalStatus::Applied, "done")
    }
}

fn host(id: &str, zone: &str, cpu: f64) -> harbinger_core::Host {
    harbinger_core::Host { host: id.into(), zone: zone.into(), rack: String::new(), cpu_cores: cpu, mem_gb: 64.0 }
}

fn res(id: &str, on: &str, crit: u8, cpu: f64) -> Resource {
    Resource {
        id: id.into(),
        kind: "database".into(),
        host: on.into(),
        criticality: crit,
        cpu_cores: cpu,
        mem_gb: 4.0,
        depends_on: vec![],
        state: serde_json::Value::Null,
    }
}

struct Fixture {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    scorer: Arc<FakeScorer>,
    telemetry: Arc<Telemetry>,
}

async fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::default());
    store.put_hosts(&[host("a1", "a", 16.0), host("a2", "a", 16.0), host("b1", "b", 16.0), host("c1", "c", 2.0)]).await.expect("hosts");
    store
        .put_resources(&[res("db-1", "a1", 3, 2.0), res("db-2", "a1", 3, 2.0), res("web-1", "a1", 0, 1.0), res("huge", "a2", 3, 64.0)])
        .await
        .expect("resources");
    Fixture {
        store,
        clock: Arc::new(ManualClock::new(1_000_000)),
        scorer: Arc::new(FakeScorer::default()),
        telemetry: Arc::new(Telemetry::new()),
    }
}

impl Fixture {
    async fn engine_with(&self, actuator: Arc<dyn Actuator>, cfg: EngineConfig) -> (Engine, harbinger_engine::ResumeReport) {
        let parts = EngineParts {
            stores: Stores::from_backend(self.store.clone()),
            scorer: Some(self.scorer.clone()),
            actuator,
            clock: self.clock.clone(),
            telemetry: self.telemetry.clone(),
        };
        Engine::open(parts, cfg).await.expect("open")
    }

    async fn engine(&self) -> Engine {
        self.engine_with(Arc::new(LogActuator), EngineConfig::default()).await.0
    }
}

#[tokio::test]
async fn a_manual_create_places_a_ready_shadow_in_another_zone_and_refuses_bad_requests() {
    let f = fixture().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("decisions.jsonl");
    let cfg = EngineConfig { decision_log: Some(log.clone()), ..EngineConfig::default() };
    let (engine, resumed) = f.engine_with(Arc::new(LogActuator), cfg).await;
    assert_eq!((resumed.shadows, resumed.resumed.len()), (0, 0));

    let done = engine.create(&"db-1".into(), "alice").await.expect("create");
    assert_eq!(done.len(), 1);
    let s = done[0].shadow.clone().expect("shadow");
    assert_eq!((s.state, s.host.as_str(), done[0].status), (ShadowState::Ready, "b1", JournalStatus::DryRun));
    assert_eq!(s.causes, vec![Cause::Manual { by: "alice".into() }]);
    assert!(done[0].detail.starts_with("would create shadow db-1@b1#"), "{}", done[0].detail);

    // The same request again is a duplicate; nothing changes.
    let e = engine.create(&"db-1".into(), "bob").await.expect_err("duplicate");
    assert!(matches!(&e, EngineError::Duplicate { shadow, state: ShadowState::Ready, .. } if *shadow == s.id), "{e}");
    let e = engine.create(&"nope".into(), "alice").await.expect_err("unknown");
    assert_eq!(e.to_string(), r#"unknown resource "nope""#);
    // 64 cores fit nowhere.
    let e = engine.create(&"huge".into(), "alice").await.expect_err("no capacity");
    assert!(matches!(e, EngineError::NotPlaced { .. }), "{e}");
    assert!(e.to_string().starts_with("no shadow of huge: "), "{e}");

    let st = engine.status(&StatusFilter::default()).await.expect("status");
    assert_eq!(st.shadows.len(), 1, "only the placed one exists");
    assert_eq!(st.counts.get(&ShadowState::Ready), Some(&1));
    assert_eq!(st.pending_actions, 0);
    let stored = f.store.shadows().await.expect("stored");
    assert_eq!(stored, st.shadows, "the store holds what the engine reports");
    let lines = std::fs::read_to_string(&log).expect("decision log");
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(lines.contains(r#""kind":"shadow_planned""#) && lines.contains(r#""resource":"db-1""#), "{lines}");
    let metrics = f.telemetry.encode();
    assert!(metrics.contains(r#"harbinger_shadow_decisions_total{kind="shadow_planned"} 1"#), "{metrics}");
    assert!(metrics.contains("harbinger_shadows_live 1"), "{metrics}");
    assert!(metrics.contains(r#"harbinger_actuator_actions_total{actuator="log",outcome="dry_run"} 1"#), "{metrics}");
}

#[tokio::test]
async fn promotion_needs_a_ready_shadow() {
    let f = fixture().await;
    let engine = f.engine().await;
    let e = engine.promote(&"ghost".into(), "ops").await.expect_err("unknown");
    assert_eq!(e.to_string(), r#"unknown shadow "ghost""#);
    let s = engine.create(&"db-2".into(), "ops").await.expect("create")[0].shadow.clone().expect("shadow");
    let done = engine.promote(&s.id, "ops").await.expect("promote");
    assert_eq!(done.shadow.as_ref().map(|s| s.state), Some(ShadowState::Promoted));
    assert_eq!(done.decision.kind, "shadow_promoted");
    let e = engine.promote(&s.id, "ops").await.expect_err("twice");
    assert!(matches!(e, EngineError::NotReady { state: ShadowState::Promoted, .. }), "{e}");
    assert_eq!(e.to_string(), format!("shadow {} is promoted; only a ready shadow can be promoted", s.id));
}

#[tokio::test]
async fn alerts_create_shadows_once_per_fingerprint_and_resolving_retires_them() {
    let f = fixture().await;
    let engine = f.engine().await;
    let firing = br#"{"version":"4","status":"firing","alerts":[
        {"status":"firing","labels":{"alertname":"DiskFilling","instance":"a1:9100"},"annotations":{"summary":"disk"},"fingerprint":"fp1"}]}"#;
    let r = engine.alerts(firing).await.expect("firing");
    assert_eq!((r.received, r.firing, r.duplicates), (1, 1, 0));
    let planned: Vec<_> = r.decisions.iter().filter(|d| d.kind == "shadow_planned").filter_map(|d| d.resource.clone()).collect();
    assert_eq!(planned, [ResourceId::new("db-1"), ResourceId::new("db-2")], "the critical resources of a1: {:?}", r.decisions);

    // Alertmanager repeats firing alerts: deduplicated on the fingerprint.
    let again = engine.alerts(firing).await.expect("repeat");
    assert_eq!((again.firing, again.duplicates, again.decisions.len()), (0, 1, 0));
    assert_eq!(engine.status(&StatusFilter { live: true, ..StatusFilter::default() }).await.expect("status").shadows.len(), 2);

    let resolved = br#"{"alerts":[{"status":"resolved","labels":{"instance":"a1:9100"},"fingerprint":"fp1"}]}"#;
    let r = engine.alerts(resolved).await.expect("resolved");
    assert_eq!(r.resolved, 1);
    let st = engine.status(&StatusFilter::default()).await.expect("status");
    assert!(st.shadows.iter().all(|s| s.state == ShadowState::Retired), "{:?}", st.shadows);
    let metrics = f.telemetry.encode();
    assert!(metrics.contains(r#"harbinger_alerts_received_total{status="duplicate"} 1"#), "{metrics}");

    // Malformed payloads change nothing.
    let e = engine.alerts(br#"{"alerts":[{"status":"weird"}]}"#).await.expect_err("bad");
    assert!(matches!(e, EngineError::Alerts(_)), "{e}");
    assert_eq!(engine.status(&StatusFilter::default()).await.expect("status").shadows, st.shadows);
}

#[tokio::test]
async fn a_host_entering_the_alert_state_gets_shadows_at_the_tick_and_loses_them_after_the_grace() {
    let f = fixture().await;
    let cfg = EngineConfig { budget: Budget { retire_grace_ms: 60_000, ..Budget::default() }, ..EngineConfig::default() };
    let (engine, _) = f.engine_with(Arc::new(LogActuator), cfg).await;
    let quiet = engine.tick().await.expect("tick");
    assert!(quiet.decisions.is_empty() && quiet.executed.is_empty());

    f.scorer.set("a1", 0.95, true, 1_000_000, Some(true));
    f.scorer.set("b1", 0.01, false, 0, None);
    let t = engine.tick().await.expect("tick");
    assert_eq!(t.transitions.len(), 1);
    let created: Vec<_> = t.executed.iter().filter_map(|e| e.shadow.as_ref()).map(|s| (s.resource.as_str().to_string(), s.state)).collect();
    assert_eq!(created, [("db-1".to_string(), ShadowState::Ready), ("db-2".to_string(), ShadowState::Ready)]);

    // Clear; inside the grace nothing moves, after it the risk-held shadows retire.
    f.clock.set(1_010_000);
    f.scorer.set("a1", 0.05, false, 1_010_000, Some(false));
    let t = engine.tick().await.expect("tick");
    assert!(t.executed.is_empty(), "inside the grace: {:?}", t.decisions);
    f.clock.set(1_080_000);
    let t = engine.tick().await.expect("tick");
    assert_eq!(t.executed.len(), 2);
    assert!(t.executed.iter().all(|e| e.shadow.as_ref().map(|s| s.state) == Some(ShadowState::Retired)));
}

#[tokio::test]
async fn a_failing_actuator_marks_a_create_failed_and_retried_keys_count_attempts() {
    let f = fixture().await;
    let flaky = Arc::new(Flaky { fail: 1, ..Flaky::default() });
    let (engine, _) = f.engine_with(flaky.clone(), EngineConfig::default()).await;
    let done = engine.create(&"db-1".into(), "ops").await.expect("create answers the outcome");
    assert_eq!(done[0].status, JournalStatus::Failed);
    assert_eq!(done[0].shadow.as_ref().map(|s| s.state), Some(ShadowState::Failed));
    // A failed shadow is not live: a new request plans a fresh one, which the actuator applies.
    let done = engine.create(&"db-1".into(), "ops").await.expect("create again");
    assert_eq!((done[0].status, done[0].shadow.as_ref().map(|s| s.state)), (JournalStatus::Applied, Some(ShadowState::Ready)));
    let metrics = f.telemetry.encode();
    assert!(metrics.contains(r#"harbinger_actuator_actions_total{actuator="flaky",outcome="failed"} 1"#), "{metrics}");
}

#[tokio::test]
async fn pending_journal_entries_are_performed_once_at_open() {
    let f = fixture().await;
    // A previous run journaled a creation and died before the actuator answered.
    let engine = f.engine().await;
    let probe = engine.create(&"db-1".into(), "ops").await.expect("create")[0].clone();
    let mut shadow = probe.shadow.clone().expect("shadow");
    drop(engine);
    shadow.id = "db-2@b1#1000000".into();
    shadow.resource = "db-2".into();
    shadow.state = ShadowState::Planned;
    let action = Action {
        key: format!("create:{}", shadow.id),
        kind: ActionKind::CreateShadow { shadow: shadow.clone() },
        decision: probe.decision.clone(),
    };
    let intent = Intent {
        key: action.key.clone(),
        shadow: shadow.id.clone(),
        action: serde_json::to_value(&action).expect("json"),
        at: 1_000_000,
        create: Some(shadow.clone()),
    };
    f.store.begin(intent).await.expect("begin");
    let flaky = Arc::new(Flaky::default());
    let (engine, report) = f.engine_with(flaky.clone(), EngineConfig::default()).await;
    assert_eq!(report.resumed.len(), 1);
    assert_eq!(report.resumed[0].shadow.as_ref().map(|s| s.state), Some(ShadowState::Ready));
    assert_eq!(flaky.keys.lock().expect("lock").as_slice(), std::slice::from_ref(&action.key), "the actuator is called with the same key");
    assert!(f.store.pending().await.expect("pending").is_empty());
    drop(engine);
    let (_engine, report) = f.engine_with(flaky.clone(), EngineConfig::default()).await;
    assert!(report.resumed.is_empty(), "nothing twice");
    assert_eq!(report.shadows, 2);
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
}

/// Creates shadows that report `syncing` at an endpoint, and in sync after `polls` asks.
#[derive(Debug, Default)]
struct Replicating {
    polls: AtomicUsize,
}

#[async_trait]
impl Actuator for Replicating {
    fn name(&self) -> &'static str {
        "replicating"
    }
    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let mut o = ActuatorOutcome::new(JournalStatus::Applied, "replica started");
        if matches!(req.action, ActionKind::CreateShadow { .. }) {
            o.reached = Some(ShadowState::Syncing);
            o.endpoint = Some("127.0.0.1:7001".into());
        }
        o
    }
    async fn sync_state(&self, _: &harbinger_core::shadow::Shadow, _: Option<&Resource>) -> Result<ShadowState, String> {
        if self.polls.fetch_add(1, Ordering::SeqCst) == 0 { Ok(ShadowState::Syncing) } else { Ok(ShadowState::Ready) }
    }
}

#[tokio::test]
async fn a_syncing_shadow_becomes_ready_when_the_actuator_says_it_is_in_sync() {
    let f = fixture().await;
    let (engine, _) = f.engine_with(Arc::new(Replicating::default()), EngineConfig::default()).await;
    let s = engine.create(&"db-1".into(), "ops").await.expect("create")[0].shadow.clone().expect("shadow");
    assert_eq!((s.state, s.endpoint.as_deref()), (ShadowState::Syncing, Some("127.0.0.1:7001")));
    let e = engine.promote(&s.id, "ops").await.expect_err("not ready yet");
    assert!(matches!(e, EngineError::NotReady { state: ShadowState::Syncing, .. }), "{e}");
    let t = engine.tick().await.expect("tick");
    assert!(t.decisions.is_empty(), "still syncing: {:?}", t.decisions);
    let t = engine.tick().await.expect("tick");
    assert_eq!(t.decisions.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(), ["shadow_ready"]);
    assert!(t.decisions[0].reason.ends_with("(serving at 127.0.0.1:7001)"), "{}", t.decisions[0].reason);
    let stored = f.store.shadow(&s.id).await.expect("stored").expect("shadow");
    assert_eq!(stored.state, ShadowState::Ready, "persisted");
    engine.promote(&s.id, "ops").await.expect("ready now");
}

/// An engine over `store` with the log actuator, default settings and no scorer.
async fn without_scorer(store: &Arc<MemoryStore>, clock: Arc<ManualClock>) -> Engine {
    let parts = EngineParts {
        stores: Stores::from_backend(store.clone()),
        scorer: None,
        actuator: Arc::new(LogActuator),
        clock,
        telemetry: Arc::new(Telemetry::new()),
    };
    Engine::open(parts, EngineConfig::default()).await.expect("open").0
}

#[tokio::test]
async fn a_resource_failed_over_and_back_fails_over_again() {
    let store = Arc::new(MemoryStore::default());
    store.put_hosts(&[host("a1", "a", 16.0), host("b1", "b", 16.0)]).await.expect("hosts");
    store.put_resources(&[res("db", "a1", 3, 2.0)]).await.expect("resources");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let engine = without_scorer(&store, clock.clone()).await;
    let on = || async { store.resources().await.expect("resources")[0].host.to_string() };
    // a1 -> b1, b1 -> a1, then a1 down again: each time to the shadow on the other host.
    for (i, (down, to)) in [("a1", "b1"), ("b1", "a1"), ("a1", "b1")].into_iter().enumerate() {
        clock.set(1_000_000 + 60_000 * (i as i64 + 1));
        let s = engine.create(&"db".into(), "ops").await.expect("create")[0].shadow.clone().expect("shadow");
        assert_eq!((s.primary.as_str(), s.host.as_str()), (down, to));
        let report = engine.host_failed(&down.into(), "test").await.expect("failover");
        let kinds: Vec<&str> = report.decisions.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(kinds, ["failover", "shadow_promoted"], "{down} down: {:?}", report.decisions);
        assert_eq!(on().await, to, "{down} down");
        engine.set_up(&down.into(), true).await;
    }
    let promoted = store.shadows().await.expect("shadows").iter().filter(|s| s.state == ShadowState::Promoted).count();
    assert_eq!(promoted, 3);
}

#[tokio::test]
async fn shadows_no_longer_live_are_deleted_once_older_than_the_history_kept() {
    let f = fixture().await;
    let hour = 3_600_000;
    let cfg = EngineConfig { history_ms: Some(2 * hour), ..EngineConfig::default() };
    let (engine, _) = f.engine_with(Arc::new(LogActuator), cfg).await;
    let old = engine.create(&"db-1".into(), "ops").await.expect("create")[0].shadow.clone().expect("shadow");
    engine.promote(&old.id, "ops").await.expect("promote");
    f.clock.set(1_000_000 + 2 * hour);
    let recent = engine.create(&"db-2".into(), "ops").await.expect("create")[0].shadow.clone().expect("shadow");
    engine.promote(&recent.id, "ops").await.expect("promote");
    let live = engine.create(&"web-1".into(), "ops").await.expect("create")[0].shadow.clone().expect("shadow");
    // One tick later than the history kept for `old` only.
    f.clock.set(1_000_000 + 2 * hour + 60_000);
    engine.tick().await.expect("tick");
    let ids = |shadows: Vec<harbinger_core::shadow::Shadow>| shadows.into_iter().map(|s| s.id.to_string()).collect::<Vec<_>>();
    let mut kept = vec![recent.id.to_string(), live.id.to_string()];
    kept.sort();
    assert_eq!(ids(engine.status(&StatusFilter::default()).await.expect("status").shadows), kept, "in memory");
    assert_eq!(ids(f.store.shadows().await.expect("shadows")), kept, "in the store");
    let journal = f.store.journal(0, 100).await.expect("journal");
    assert!(journal.iter().all(|e| !e.key.contains(old.id.as_str())), "{journal:?}");
    assert!(journal.iter().any(|e| e.key.contains(recent.id.as_str())), "{journal:?}");
}

#[tokio::test]
async fn a_host_down_fails_its_resource_over_even_with_a_live_shadow_of_its_previous_host() {
    let store = Arc::new(MemoryStore::default());
    store.put_hosts(&[host("a1", "a", 16.0), host("b1", "b", 16.0), host("c1", "c", 16.0)]).await.expect("hosts");
    store.put_resources(&[res("db", "a1", 3, 2.0)]).await.expect("resources");
    let engine = without_scorer(&store, Arc::new(ManualClock::new(1_000_000))).await;
    let old = engine.create(&"db".into(), "ops").await.expect("create")[0].shadow.clone().expect("shadow");
    assert_eq!(old.primary.as_str(), "a1");
    // The inventory moves db to c1; its shadow still copies it from a1 when c1 goes down.
    store.put_resources(&[res("db", "c1", 3, 2.0)]).await.expect("resources");
    engine.reload_inventory().await.expect("reload");
    let report = engine.host_failed(&"c1".into(), "test").await.expect("failover");
    let first = &report.decisions[0];
    assert!(first.kind == "failover" && first.reason.contains("has no shadow: standard path"), "{:?}", report.decisions);
    assert!(report.decisions.iter().any(|d| d.kind == "shadow_promoted"), "{:?}", report.decisions);
    let on = store.resources().await.expect("resources")[0].host.to_string();
    assert_ne!(on, "c1", "db left the dead host");
}
