//! The HTTP risk and admin routes over a test scorer, samples and events reaching the
//! scorer, and the bearer token on the mutating routes (on and off).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use harbinger_api::{AppState, Telemetry};
use harbinger_core::{Event, HostExplanation, HostId, HostRisk, ModelInfo, RiskScorer, SampleBatch, ScoreError, Stores};
use harbinger_ingest::remote_write::{encode, prompb};
use harbinger_store::{Limits, MemoryStore};

/// Knows h1 and h2; reload bumps the version.
#[derive(Debug, Default)]
struct TestScorer {
    version: Mutex<u32>,
    samples: AtomicUsize,
    events: AtomicUsize,
}

impl TestScorer {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            version: Arc::from(format!("v{}", *self.version.lock().expect("lock") + 1)),
            horizon_ms: 3_600_000,
            learner: "logistic".into(),
            harbinger_version: "test".into(),
        }
    }
}

impl RiskScorer for TestScorer {
    fn tick(&self, _now: harbinger_core::TimestampMs) -> Vec<harbinger_core::HostTransition> {
        Vec::new() // fixed scores: nothing to advance
    }
    fn host_states(&self) -> Vec<harbinger_core::HostState> {
        Vec::new()
    }
    fn observe_samples(&self, batch: &SampleBatch) {
        self.samples.fetch_add(batch.sample_count(), Ordering::SeqCst);
    }
    fn observe_events(&self, events: &[Event]) {
        self.events.fetch_add(events.len(), Ordering::SeqCst);
    }
    fn score_hosts(&self, hosts: &[HostId]) -> Result<Vec<HostRisk>, ScoreError> {
        let v = self.info().version;
        hosts
            .iter()
            .map(|h| match h.as_str() {
                "h1" | "h2" => Ok(HostRisk {
                    host: h.clone(),
                    at: 5,
                    risk: if h.as_str() == "h1" { 0.7 } else { 0.1 },
                    failure_probability: 0.5,
                    horizon_ms: 3_600_000,
                    anomaly: 0.0,
                    confidence: 1.0,
                    criticality: 1,
                    alerting: false,
                    factors: vec![],
                    model_version: v.clone(),
                }),
                _ => Err(ScoreError::UnknownHost(h.clone())),
            })
            .collect()
    }
    fn score_all(&self) -> Vec<HostRisk> {
        self.score_hosts(&[HostId::new("h1"), HostId::new("h2")]).unwrap_or_default()
    }
    fn explain_host(&self, host: &HostId) -> Result<HostExplanation, ScoreError> {
        Err(ScoreError::UnknownHost(host.clone()))
    }
    fn model_info(&self) -> ModelInfo {
        self.info()
    }
    fn reload(&self, _dir: Option<&std::path::Path>) -> Result<ModelInfo, ScoreError> {
        *self.version.lock().expect("lock") += 1;
        Ok(self.info())
    }
}

struct Server {
    url: String,
    store: Arc<MemoryStore>,
    scorer: Arc<TestScorer>,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    async fn start(token: Option<&str>, with_model: bool) -> Self {
        Self::start_with(token, with_model, false).await
    }

    async fn start_with(token: Option<&str>, with_model: bool, protect_reads: bool) -> Self {
        let store = Arc::new(MemoryStore::new(Limits::default()));
        let scorer = Arc::new(TestScorer::default());
        let mut state = AppState::new(Stores::from_backend(store.clone()), Arc::new(Telemetry::new()), 1 << 20);
        state.scorer = with_model.then(|| scorer.clone() as Arc<dyn RiskScorer>);
        state.token = token.map(Arc::from);
        state.protect_reads = protect_reads;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(harbinger_api::serve(listener, state, async move {
            let _stop = rx.await;
        }));
        Self { url, store, scorer, client: reqwest::Client::new(), stop: Some(tx) }
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, String, Option<String>) {
        let url = format!("{}{path}", self.url);
        let mut rb = if method == "GET" { self.client.get(url) } else { self.client.post(url).body(body) };
        if path == "/api/v1/write" {
            rb = rb.header("Content-Encoding", "snappy").header("Content-Type", "application/x-protobuf");
        }
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        let r = rb.send().await.expect("send");
        let www = r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_string);
        (r.status().as_u16(), r.text().await.expect("body"), www)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _sent = tx.send(());
        }
    }
}

fn write_body() -> Vec<u8> {
    encode(&prompb::WriteRequest {
        timeseries: vec![prompb::TimeSeries {
            labels: vec![
                prompb::Label { name: "__name__".into(), value: "cpu_util".into() },
                prompb::Label { name: "instance".into(), value: "h1".into() },
            ],
            samples: vec![prompb::Sample { value: 0.5, timestamp: 1_000 }, prompb::Sample { value: 0.6, timestamp: 2_000 }],
        }],
    })
}

async fn stored(store: &MemoryStore) -> u64 {
    harbinger_core::MetricStore::stats(store).await.expect("stats").samples
}

const EVENT: &str = "{\"ts\": 1700000000000, \"kind\": \"deploy_started\", \"host\": \"h1\"}\n";

#[tokio::test]
async fn risk_route_scores_hosts_and_names_unknown_ones() {
    let s = Server::start(None, true).await;
    let (code, body, _) = s.send("GET", "/api/v1/risk?host=h2&host=h1", None, vec![]).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v[0]["host"], "h2");
    assert_eq!(v[1]["risk"], 0.7);
    assert_eq!(v[1]["model_version"], "v1");
    let (_, body, _) = s.send("GET", "/api/v1/risk?host=h1,h2", None, vec![]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).expect("json").as_array().map(Vec::len), Some(2));
    let (_, body, _) = s.send("GET", "/api/v1/risk", None, vec![]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).expect("json").as_array().map(Vec::len), Some(2), "all hosts");

    let (code, body, _) = s.send("GET", "/api/v1/risk?host=h9", None, vec![]).await;
    assert_eq!((code, body.as_str()), (404, "unknown host \"h9\"\n"));
    let (code, body, _) = s.send("GET", "/api/v1/risk?hots=h1", None, vec![]).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"hots\""), "{body}");
    let (code, _, _) = s.send("GET", "/api/v1/risk?host=", None, vec![]).await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn without_a_model_risk_and_reload_are_503_and_ingest_works() {
    let s = Server::start(None, false).await;
    assert_eq!(s.send("GET", "/api/v1/risk?host=h1", None, vec![]).await.0, 503);
    assert_eq!(s.send("POST", "/api/v1/admin/reload", None, vec![]).await.0, 503);
    assert_eq!(s.send("POST", "/api/v1/write", None, write_body()).await.0, 204);
    assert_eq!(stored(&s.store).await, 2);
}

#[tokio::test]
async fn accepted_samples_and_events_reach_the_scorer() {
    let s = Server::start(None, true).await;
    assert_eq!(s.send("POST", "/api/v1/write", None, write_body()).await.0, 204);
    let (code, body, _) = s.send("POST", "/api/v1/events", None, EVENT.as_bytes().to_vec()).await;
    assert_eq!((code, body.as_str()), (200, "{\"accepted\":1}"));
    assert_eq!(s.scorer.samples.load(Ordering::SeqCst), 2);
    assert_eq!(s.scorer.events.load(Ordering::SeqCst), 1);
}

/// Regression: samples the store refused (here a series whose metric name is over the
/// byte limit) were still fed to the live scorer, which grew state per refused host.
#[tokio::test]
async fn only_stored_samples_reach_the_scorer() {
    let s = Server::start(None, true).await;
    let long = prompb::TimeSeries {
        labels: vec![
            prompb::Label { name: "__name__".into(), value: "m".repeat(5_000) },
            prompb::Label { name: "instance".into(), value: "h-refused".into() },
        ],
        samples: vec![prompb::Sample { value: 1.0, timestamp: 1_000 }],
    };
    let valid = prompb::TimeSeries {
        labels: vec![
            prompb::Label { name: "__name__".into(), value: "cpu_util".into() },
            prompb::Label { name: "instance".into(), value: "h1".into() },
        ],
        samples: vec![prompb::Sample { value: 0.5, timestamp: 1_000 }, prompb::Sample { value: 0.6, timestamp: 2_000 }],
    };
    let req = prompb::WriteRequest { timeseries: vec![long, valid] };
    let (code, body, _) = s.send("POST", "/api/v1/write", None, encode(&req)).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("key_too_long"), "{body}");
    assert_eq!(stored(&s.store).await, 2, "the valid series is stored");
    assert_eq!(s.scorer.samples.load(Ordering::SeqCst), 2, "and only it reaches the scorer");
}

#[tokio::test]
async fn with_a_token_the_post_routes_need_it_and_reads_stay_open() {
    let s = Server::start(Some("s3cret"), true).await;
    for (path, body) in [("/api/v1/write", write_body()), ("/api/v1/events", EVENT.as_bytes().to_vec()), ("/api/v1/admin/reload", vec![])] {
        let (code, text, www) = s.send("POST", path, None, body.clone()).await;
        assert_eq!(code, 401, "{path}: {text}");
        assert_eq!(www.as_deref(), Some("Bearer"), "{path}");
        assert!(text.contains("authorization: Bearer <token>"), "{text}");
        let (code, text, _) = s.send("POST", path, Some("guess"), body).await;
        assert_eq!((code, text.as_str()), (401, "invalid bearer token\n"), "{path}");
    }
    assert_eq!(stored(&s.store).await, 0, "nothing stored without the token");
    assert_eq!(s.scorer.samples.load(Ordering::SeqCst), 0);
    assert_eq!(s.send("GET", "/api/v1/risk?host=h1", None, vec![]).await.0, 200, "reads are open");
    assert_eq!(s.send("GET", "/healthz", None, vec![]).await.0, 200);
    assert_eq!(s.send("GET", "/metrics", None, vec![]).await.0, 200);

    assert_eq!(s.send("POST", "/api/v1/write", Some("s3cret"), write_body()).await.0, 204);
    assert_eq!(s.send("POST", "/api/v1/events", Some("s3cret"), EVENT.as_bytes().to_vec()).await.0, 200);
    let (code, body, _) = s.send("POST", "/api/v1/admin/reload", Some("s3cret"), vec![]).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((v["previous"]["version"].as_str(), v["current"]["version"].as_str()), (Some("v1"), Some("v2")));
    assert_eq!(stored(&s.store).await, 2);
}

#[tokio::test]
async fn without_a_token_the_post_routes_are_open() {
    let s = Server::start(None, true).await;
    assert_eq!(s.send("POST", "/api/v1/write", None, write_body()).await.0, 204);
    let (code, body, _) = s.send("POST", "/api/v1/admin/reload", None, vec![]).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn with_protect_reads_the_read_routes_need_the_token_and_health_stays_open() {
    let s = Server::start_with(Some("s3cret"), true, true).await;
    for path in ["/api/v1/risk?host=h1", "/metrics", "/shadow/status", "/api/v1/snapshots?resource=r"] {
        let (code, text, _) = s.send("GET", path, None, vec![]).await;
        assert_eq!(code, 401, "{path}: {text}");
        let (code, _, _) = s.send("GET", path, Some("guess"), vec![]).await;
        assert_eq!(code, 401, "{path}");
        let (code, text, _) = s.send("GET", path, Some("s3cret"), vec![]).await;
        assert_ne!(code, 401, "{path}: {text}");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(s.send("GET", path, None, vec![]).await.0, 200, "{path}");
    }
}
