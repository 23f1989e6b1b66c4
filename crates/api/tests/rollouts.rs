//! The rollout routes over a real socket, on rollout records written as JSON to a
//! temporary directory: `GET /api/v1/rollouts/{id}` (200 with the record, 404, 400 for an
//! id that cannot name a rollout), `GET /api/v1/rollouts` (newest first), 503 without a
//! rollouts directory, and the token when reads are protected.

use std::path::Path;
use std::sync::Arc;

use harbinger_api::{AppState, Telemetry};
use harbinger_core::Stores;
use harbinger_plan::judge::{Direction, Judgement, KpiSpec, MetricVerdict, Verdict as KpiVerdict};
use harbinger_plan::rollout::{
    ChangeScope, JudgementRecord, KpiWindow, Rollout, RolloutEvent, RolloutRecord, RolloutSpec, ShadowInstance, Verdict, shadow_scale,
};
use harbinger_store::{Limits, MemoryStore};

struct Server {
    url: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    async fn start(rollouts_dir: Option<&Path>, token: Option<&str>) -> Self {
        let store = Arc::new(MemoryStore::new(Limits::default()));
        let mut state = AppState::new(Stores::from_backend(store), Arc::new(Telemetry::new()), 1 << 20);
        state.rollouts_dir = rollouts_dir.map(Path::to_path_buf);
        state.token = token.map(Arc::from);
        state.protect_reads = token.is_some();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(harbinger_api::serve(listener, state, async move {
            let _stop = rx.await;
        }));
        Self { url, client: reqwest::Client::new(), stop: Some(tx), task: Some(task) }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut rb = self.client.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        let r = rb.send().await.expect("send");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _sent = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("server ran cleanly");
        }
    }
}

fn kpi(name: &str, critical: bool) -> KpiSpec {
    KpiSpec { name: name.into(), direction: Direction::HigherIsWorse, weight: 1.0, critical, tolerance: 0.1, min_delta: 0.0 }
}

/// Rollout `r-1`: rolled back at its first judgement (two KPIs: latency passed, the
/// critical error rate failed), with its sample windows and events.
fn rolled_back() -> RolloutRecord {
    let spec = RolloutSpec { steps: vec![5, 25, 50], interval_ms: 2_000, count: 3, ..RolloutSpec::default() };
    let (mut state, _) = Rollout::start(spec).expect("a valid spec");
    state.on_judgement(Verdict::Fail, "error_rate failed");
    let latency = MetricVerdict {
        name: "latency_ms".into(),
        verdict: KpiVerdict::Pass,
        baseline_n: 5,
        canary_n: 5,
        baseline_median: Some(20.0),
        canary_median: Some(21.0),
        p_value: Some(0.42),
        u: Some(14.5),
        deviation: Some(0.05),
        weight: 1.0,
        critical: false,
        reason: "median 21 vs 20 within 10 %".into(),
    };
    let errors = MetricVerdict {
        name: "error_rate".into(),
        verdict: KpiVerdict::Fail,
        baseline_n: 5,
        canary_n: 5,
        baseline_median: Some(0.0),
        canary_median: Some(0.2),
        p_value: Some(0.004),
        u: Some(25.0),
        // The baseline median is 0: no relative deviation.
        deviation: None,
        weight: 1.0,
        critical: true,
        reason: "median 0.2 vs 0 beyond 0, p 0.004 < 0.05".into(),
    };
    let judgement = Judgement {
        metrics: vec![latency, errors],
        score: 50.0,
        pass: false,
        failed_critical: vec!["error_rate".into()],
        reason: "critical KPI error_rate failed".into(),
    };
    RolloutRecord {
        id: "r-1".into(),
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_004_000,
        backend: "web".into(),
        live: vec!["web-1".into(), "web-2".into()],
        shadow: vec![
            ShadowInstance { id: "r-1-1".into(), endpoint: "127.0.0.1:9101".into() },
            ShadowInstance { id: "r-1-2".into(), endpoint: "127.0.0.1:9102".into() },
        ],
        copies: Vec::new(),
        scale: shadow_scale(ChangeScope::Version, 2, 5),
        kpis: vec![kpi("latency_ms", false), kpi("error_rate", true)],
        rollout: state,
        judgements: vec![JudgementRecord {
            index: 1,
            at_ms: 1_700_000_002_000,
            window_start_ms: 1_700_000_000_000,
            window_end_ms: 1_700_000_002_000,
            share: 5,
            verdict: Verdict::Fail,
            judgement,
            windows: vec![
                KpiWindow {
                    name: "latency_ms".into(),
                    baseline: vec![19.0, 20.0, 20.5, 21.0, 20.0],
                    canary: vec![21.0, 20.5, 22.0, 21.0, 20.0],
                },
                KpiWindow { name: "error_rate".into(), baseline: vec![0.0; 5], canary: vec![0.2, 0.25, 0.2, 0.1, 0.3] },
            ],
        }],
        events: vec![
            RolloutEvent { ts: 1_700_000_000_000, kind: "scaled".into(), detail: "2 instances".into() },
            RolloutEvent { ts: 1_700_000_000_500, kind: "share".into(), detail: "5 %".into() },
            RolloutEvent { ts: 1_700_000_002_000, kind: "judgement".into(), detail: "1: fail".into() },
            RolloutEvent { ts: 1_700_000_002_010, kind: "rollback".into(), detail: "error_rate failed".into() },
        ],
        decision: Some("rolled_back".into()),
        live_requests: 950,
        shadow_requests: 50,
        rollback_ms: Some(12.5),
    }
}

/// Rollout `r-2`: started after `r-1`, no judgement yet, no decision.
fn progressing() -> RolloutRecord {
    let (state, _) = Rollout::start(RolloutSpec::default()).expect("a valid spec");
    RolloutRecord {
        id: "r-2".into(),
        created_ms: 1_700_000_100_000,
        updated_ms: 1_700_000_100_000,
        backend: "web".into(),
        live: vec!["web-1".into()],
        shadow: Vec::new(),
        copies: Vec::new(),
        scale: shadow_scale(ChangeScope::Config, 1, 5),
        kpis: vec![kpi("latency_ms", false)],
        rollout: state,
        judgements: Vec::new(),
        events: Vec::new(),
        decision: None,
        live_requests: 0,
        shadow_requests: 0,
        rollback_ms: None,
    }
}

fn write(dir: &Path, r: &RolloutRecord) {
    std::fs::create_dir_all(dir).expect("rollouts dir");
    std::fs::write(dir.join(format!("{}.json", r.id)), serde_json::to_vec_pretty(r).expect("serialisable")).expect("write the record");
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("JSON")
}

#[tokio::test]
async fn a_rollout_record_is_served_whole_and_listed_newest_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rollouts");
    // Before the directory exists: no rollouts yet.
    let s = Server::start(Some(&dir), None).await;
    assert_eq!(s.get("/api/v1/rollouts", None).await, (200, "[]".to_string()));

    let r1 = rolled_back();
    write(&dir, &r1);
    write(&dir, &progressing());
    std::fs::write(dir.join("notes.txt"), "not a record").expect("notes");
    std::fs::write(dir.join("broken.json"), "{").expect("broken");

    let (code, body) = s.get("/api/v1/rollouts/r-1", None).await;
    assert_eq!(code, 200, "{body}");
    let back: RolloutRecord = serde_json::from_str(&body).expect("a rollout record");
    assert_eq!(back, r1, "the record comes back as it was written");
    let v = json(&body);
    assert_eq!(v["rollout"]["phase"], "rolled_back");
    assert_eq!(v["judgements"][0]["windows"][1]["canary"], serde_json::json!([0.2, 0.25, 0.2, 0.1, 0.3]));
    assert_eq!(v["judgements"][0]["judgement"]["metrics"][1]["deviation"], serde_json::Value::Null);
    assert_eq!(v["rollback_ms"], 12.5);

    let (code, body) = s.get("/api/v1/rollouts", None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json(&body),
        serde_json::json!([
            {"id": "r-2", "created_ms": 1_700_000_100_000_i64, "updated_ms": 1_700_000_100_000_i64, "phase": "progressing",
             "share": 5, "judgements": 0, "decision": null},
            {"id": "r-1", "created_ms": 1_700_000_000_000_i64, "updated_ms": 1_700_000_004_000_i64, "phase": "rolled_back",
             "share": 0, "judgements": 1, "decision": "rolled_back"},
        ])
    );

    // A damaged record is left out of the list, but asking for it is a 500.
    let (code, body) = s.get("/api/v1/rollouts/broken", None).await;
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("the record of rollout \"broken\" is not valid"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn unknown_and_bad_ids_are_404_and_400_and_no_directory_is_503() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rollouts");
    write(&dir, &rolled_back());
    let s = Server::start(Some(&dir), None).await;
    assert_eq!(s.get("/api/v1/rollouts/r-9", None).await, (404, "no rollout \"r-9\"\n".to_string()));
    // `..%2Fx` is one path segment, `../x` once decoded.
    let (code, body) = s.get("/api/v1/rollouts/..%2Fx", None).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.starts_with("rollout id \"../x\": use 1 to 64 letters"), "{body}");
    let (code, body) = s.get("/api/v1/rollouts/.hidden", None).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.get(&format!("/api/v1/rollouts/{}", "a".repeat(1_000)), None).await;
    assert_eq!(code, 400);
    assert!(body.contains(&format!("\"{}\"", "a".repeat(64))) && !body.contains(&"a".repeat(65)), "{body}");
    s.stop().await;

    let s = Server::start(None, None).await;
    for path in ["/api/v1/rollouts", "/api/v1/rollouts/r-1"] {
        assert_eq!(s.get(path, None).await, (503, "this server keeps no rollout records\n".to_string()), "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn with_protect_reads_the_rollout_routes_need_the_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rollouts");
    write(&dir, &rolled_back());
    let s = Server::start(Some(&dir), Some("s3cret")).await;
    for path in ["/api/v1/rollouts", "/api/v1/rollouts/r-1"] {
        assert_eq!(s.get(path, None).await.0, 401, "{path}");
        assert_eq!(s.get(path, Some("s3cret")).await.0, 200, "{path}");
    }
    s.stop().await;
}
