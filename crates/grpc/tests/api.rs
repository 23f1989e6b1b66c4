//! The gRPC API over a real server on 127.0.0.1:0, with a test scorer: status codes for
//! bad requests, deadlines, auth on and off, ingest, reloads under load, WatchRisk, health
//! and reflection, and shutdown with a stream open.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harbinger_core::{
    Event, Factor, HostExplanation, HostId, HostRisk, ModelInfo, RiskPoint, RiskScorer, SampleBatch, ScoreError, SeriesKey, Stores,
};
use harbinger_grpc::client::{Clients, connect};
use harbinger_grpc::{GrpcState, Limits, auth::Auth, pb};
use harbinger_store::MemoryStore;
use tokio::sync::oneshot;
use tonic::Code;

/// Knows hosts h1..h3 plus `slow` (which takes 2 s to score); risks are settable; the
/// model version counts reloads; reloading from the directory "broken" fails.
#[derive(Debug)]
struct TestScorer {
    risks: Mutex<HashMap<String, f64>>,
    version: Mutex<Arc<str>>,
    reloads: AtomicUsize,
    samples_seen: AtomicUsize,
    events_seen: AtomicUsize,
}

impl TestScorer {
    fn new() -> Arc<Self> {
        let risks = [("h1", 0.9), ("h2", 0.1), ("h3", 0.3), ("slow", 0.0)].map(|(h, r)| (h.to_string(), r));
        Arc::new(Self {
            risks: Mutex::new(risks.into_iter().collect()),
            version: Mutex::new(Arc::from("v1")),
            reloads: AtomicUsize::new(0),
            samples_seen: AtomicUsize::new(0),
            events_seen: AtomicUsize::new(0),
        })
    }

    fn set_risk(&self, host: &str, r: f64) {
        self.risks.lock().expect("lock").insert(host.into(), r);
    }

    fn risk_of(&self, host: &HostId, version: &Arc<str>) -> Result<HostRisk, ScoreError> {
        let r = *self.risks.lock().expect("lock").get(host.as_str()).ok_or_else(|| ScoreError::UnknownHost(host.clone()))?;
        if host.as_str() == "slow" {
            std::thread::sleep(Duration::from_secs(2));
        }
        Ok(HostRisk {
            host: host.clone(),
            at: 1_700_000_000_000,
            risk: r,
            failure_probability: r / 2.0,
            horizon_ms: 3_600_000,
            anomaly: 0.25,
            confidence: 0.8,
            criticality: 2,
            alerting: r >= 0.5,
            factors: vec![Factor { name: "mem_util.tte_h".into(), value: 3.0, contribution: 1.5 }],
            model_version: version.clone(),
        })
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
        self.samples_seen.fetch_add(batch.sample_count(), Ordering::SeqCst);
    }
    fn observe_events(&self, events: &[Event]) {
        self.events_seen.fetch_add(events.len(), Ordering::SeqCst);
    }
    fn score_hosts(&self, hosts: &[HostId]) -> Result<Vec<HostRisk>, ScoreError> {
        // One model version per request, as the real scorer does.
        let v = self.version.lock().expect("lock").clone();
        hosts.iter().map(|h| self.risk_of(h, &v)).collect()
    }
    fn score_all(&self) -> Vec<HostRisk> {
        let v = self.version.lock().expect("lock").clone();
        let mut hosts: Vec<String> = self.risks.lock().expect("lock").keys().filter(|h| *h != "slow").cloned().collect();
        hosts.sort();
        hosts.iter().filter_map(|h| self.risk_of(&HostId::new(h), &v).ok()).collect()
    }
    fn explain_host(&self, host: &HostId) -> Result<HostExplanation, ScoreError> {
        let risk = self.score_hosts(std::slice::from_ref(host))?.remove(0);
        Ok(HostExplanation {
            all_factors: vec![risk.factors[0].clone(), Factor { name: "deploy.since_h".into(), value: 40.0, contribution: -0.2 }],
            history: vec![RiskPoint { at: risk.at - 60_000, risk: 0.5, failure_probability: 0.2, anomaly: 0.1 }],
            risk,
        })
    }
    fn model_info(&self) -> ModelInfo {
        ModelInfo {
            version: self.version.lock().expect("lock").clone(),
            horizon_ms: 3_600_000,
            learner: "logistic".into(),
            harbinger_version: "test".into(),
        }
    }
    fn reload(&self, dir: Option<&std::path::Path>) -> Result<ModelInfo, ScoreError> {
        if dir.is_some_and(|d| d.ends_with("broken")) {
            return Err(ScoreError::Model("broken/model.json: no such file".into()));
        }
        let n = self.reloads.fetch_add(1, Ordering::SeqCst) + 2;
        *self.version.lock().expect("lock") = Arc::from(format!("v{n}"));
        Ok(self.model_info())
    }
}

struct Server {
    clients: Clients,
    addr: String,
    stores: Stores,
    scorer: Arc<TestScorer>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), harbinger_grpc::ServeError>>>,
}

impl Server {
    async fn start(token: Option<&str>, limits: Limits, with_model: bool) -> Self {
        let stores = Stores::from_backend(Arc::new(MemoryStore::new(harbinger_store::Limits::default())));
        let scorer = TestScorer::new();
        let dyn_scorer: Option<Arc<dyn RiskScorer>> = with_model.then(|| scorer.clone() as Arc<dyn RiskScorer>);
        let mut state = GrpcState::new(stores.clone(), dyn_scorer, Arc::new(harbinger_api::Telemetry::new()));
        state.limits = limits;
        state.auth = Auth::new(token.map(Arc::from));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(harbinger_grpc::serve(listener, state, None, async move {
            let _stopped = rx.await;
        }));
        let clients = connect(&addr, token, None).await.expect("connect");
        Self { clients, addr, stores, scorer, stop: Some(tx), task: Some(task) }
    }

    async fn open() -> Self {
        Self::start(None, Limits::default(), true).await
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _sent = tx.send(());
        }
        let task = self.task.take().expect("running");
        let r = tokio::time::timeout(Duration::from_secs(20), task).await.expect("server stopped within 20 s");
        r.expect("server task").expect("server returned Ok");
    }
}

fn score_req(hosts: &[&str]) -> pb::ScoreHostsRequest {
    pb::ScoreHostsRequest { hosts: hosts.iter().map(|h| h.to_string()).collect() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_hosts_answers_in_request_order_with_every_field() {
    let s = Server::open().await;
    let r = s.clients.risk.clone().score_hosts(score_req(&["h3", "h1"])).await.expect("scored").into_inner();
    assert_eq!(r.model_version, "v1");
    let hosts: Vec<&str> = r.risks.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(hosts, ["h3", "h1"]);
    let h1 = &r.risks[1];
    assert_eq!((h1.risk, h1.failure_probability, h1.horizon_ms, h1.criticality, h1.alerting), (0.9, 0.45, 3_600_000, 2, true));
    assert_eq!((h1.anomaly, h1.confidence, h1.at_ms), (0.25, 0.8, 1_700_000_000_000));
    assert_eq!(h1.factors[0].name, "mem_util.tte_h");

    let e = s.clients.risk.clone().explain_host(pb::ExplainHostRequest { host: "h1".into() }).await.expect("explained");
    let e = e.into_inner();
    assert_eq!(e.risk.map(|r| r.host), Some("h1".to_string()));
    assert_eq!(e.all_factors.len(), 2);
    assert_eq!(e.history[0].risk, 0.5);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_fitting_status_codes() {
    let s = Server::start(None, Limits { max_hosts_per_request: 3, max_message_bytes: 1024 }, true).await;
    let mut risk = s.clients.risk.clone();

    let e = risk.score_hosts(score_req(&["h1", "nope"])).await.expect_err("unknown host");
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("\"nope\""), "{}", e.message());

    let e = risk.score_hosts(score_req(&[])).await.expect_err("empty");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "`hosts` is empty: give at least one host id"));
    let e = risk.score_hosts(score_req(&["h1", " "])).await.expect_err("empty id");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "`hosts[1]` is an empty host id"));

    let e = risk.score_hosts(score_req(&["h1", "h2", "h3", "h1"])).await.expect_err("too many");
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("limit is 3"), "{}", e.message());

    let big = "x".repeat(2_000);
    let e = risk.score_hosts(score_req(&[&big])).await.expect_err("oversized");
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(e.message().contains("grpc.max_message_bytes"), "{}", e.message());

    let e = risk.explain_host(pb::ExplainHostRequest { host: String::new() }).await.expect_err("empty host");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = risk.explain_host(pb::ExplainHostRequest { host: "h404".into() }).await.expect_err("unknown");
    assert_eq!(e.code(), Code::NotFound);

    let e = risk.watch_risk(pb::WatchRiskRequest { threshold: 1.5, ..Default::default() }).await.expect_err("bad threshold");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = risk.watch_risk(pb::WatchRiskRequest { interval_ms: 5, ..Default::default() }).await.expect_err("interval too short");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = risk.watch_risk(pb::WatchRiskRequest { hosts: vec!["ghost".into()], ..Default::default() }).await.expect_err("unknown host");
    assert_eq!(e.code(), Code::NotFound);
    s.stop().await;
}

/// An HTTP/2 connection as a tower service for `tonic::client::Grpc`, with no timer of
/// its own: tonic's `Channel` gives up at a call's deadline itself (CANCELLED "Timeout
/// expired"), racing the server's answer by the server's small margin; this client waits
/// for whatever the server answers.
#[derive(Clone)]
struct H2(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower::Service<tonic::codegen::http::Request<tonic::body::Body>> for H2 {
    type Response = tonic::codegen::http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, hyper::Error>> + Send>>;
    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, req: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_past_its_deadline_is_deadline_exceeded() {
    let s = Server::open().await;
    let tcp = tokio::net::TcpStream::connect(&s.addr).await.expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp)).await.expect("h2");
    tokio::spawn(conn);
    let origin = format!("http://{}", s.addr).parse().expect("uri");
    let mut grpc = tonic::client::Grpc::with_origin(H2(send), origin);
    grpc.ready().await.expect("ready");
    // `slow` takes 2 s; the deadline is 500 ms (sent as `grpc-timeout`). The server gives
    // up first and answers DEADLINE_EXCEEDED, however late the answer arrives here.
    let mut req = tonic::Request::new(score_req(&["slow"]));
    req.set_timeout(Duration::from_millis(500));
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/harbinger.v1.RiskService/ScoreHosts");
    let codec = tonic_prost::ProstCodec::<pb::ScoreHostsRequest, pb::ScoreHostsResponse>::default();
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(30), grpc.unary(req, path, codec)).await.expect("an answer within 30 s");
    let e = answer.expect_err("too slow");
    assert_eq!(e.code(), Code::DeadlineExceeded, "{}", e.message());
    assert!(e.message().contains("deadline of 500ms"), "{}", e.message());
    assert!(started.elapsed() < Duration::from_millis(1_900), "answered before the handler's 2 s: {:?}", started.elapsed());
    // The server still answers other calls.
    let ok = s.clients.risk.clone().score_hosts(score_req(&["h2"])).await.expect("scored");
    assert_eq!(ok.into_inner().risks.len(), 1);
    s.stop().await;
}

fn batch(host: &str, ts: &[i64]) -> pb::SampleBatch {
    pb::SampleBatch {
        series: vec![pb::Series {
            host: host.into(),
            metric: "cpu_util".into(),
            timestamps_ms: ts.to_vec(),
            values: ts.iter().map(|t| (*t % 100) as f64 / 100.0).collect(),
        }],
    }
}

async fn push(clients: &Clients, batches: Vec<pb::SampleBatch>) -> Result<pb::PushMetricsResponse, tonic::Status> {
    clients.ingest.clone().push_metrics(tokio_stream::iter(batches)).await.map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_metrics_stores_counts_and_feeds_the_scorer() {
    let s = Server::open().await;
    let r = push(&s.clients, vec![batch("h1", &[1_000, 2_000, 3_000]), batch("h1", &[2_500, 4_000])]).await.expect("pushed");
    assert_eq!((r.batches, r.accepted), (2, 4));
    assert_eq!(r.rejected.get("out_of_order"), Some(&1));
    let stored = s.stores.metrics.range(&SeriesKey::new("h1", "cpu_util"), 0, i64::MAX).await.expect("range");
    assert_eq!(stored.timestamps, vec![1_000, 2_000, 3_000, 4_000]);
    assert_eq!(s.scorer.samples_seen.load(Ordering::SeqCst), 5, "every pushed batch is observed");

    let bad =
        pb::SampleBatch { series: vec![pb::Series { host: "h1".into(), metric: "m".into(), timestamps_ms: vec![1], values: vec![] }] };
    let e = push(&s.clients, vec![batch("h2", &[1_000]), bad]).await.expect_err("mismatch");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.message(), "batch 1, series[0]: 1 timestamps but 0 values for h1/m");
    s.stop().await;
}

fn event(kind: pb::EventKind, host: &str) -> pb::Event {
    pb::Event { ts_ms: 1_700_000_000_000, kind: kind as i32, host: host.into(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_events_is_all_or_nothing() {
    let s = Server::open().await;
    let mut ingest = s.clients.ingest.clone();
    let e = ingest
        .push_events(pb::PushEventsRequest {
            events: vec![event(pb::EventKind::DeployStarted, "h1"), event(pb::EventKind::Unspecified, "h1")],
        })
        .await
        .expect_err("unspecified kind");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "events[1]: `kind` 0 is not a known event kind"));
    assert!(s.stores.events.events(0, i64::MAX).await.expect("events").is_empty(), "nothing stored");

    let r = ingest
        .push_events(pb::PushEventsRequest {
            events: vec![event(pb::EventKind::DeployStarted, "h1"), event(pb::EventKind::DeploySucceeded, "h1")],
        })
        .await
        .expect("stored")
        .into_inner();
    assert_eq!(r.accepted, 2);
    assert_eq!(s.stores.events.events(0, i64::MAX).await.expect("events").len(), 2);
    assert_eq!(s.scorer.events_seen.load(Ordering::SeqCst), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_mutating_calls_need_it_and_reads_stay_open() {
    let s = Server::start(Some("s3cret"), Limits::default(), true).await;
    let anon = connect(&s.addr, None, None).await.expect("connect");
    let wrong = connect(&s.addr, Some("guess"), None).await.expect("connect");

    for c in [&anon, &wrong] {
        let e = push(c, vec![batch("h1", &[1_000])]).await.expect_err("no token");
        assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
        let mut ingest = c.ingest.clone();
        let e = ingest.push_events(pb::PushEventsRequest { events: vec![event(pb::EventKind::RolledBack, "h1")] }).await;
        assert_eq!(e.expect_err("no token").code(), Code::Unauthenticated);
        let e = c.admin.clone().reload_model(pb::ReloadModelRequest::default()).await.expect_err("no token");
        assert_eq!(e.code(), Code::Unauthenticated);
        // Reads need no token.
        let r = c.risk.clone().score_hosts(score_req(&["h1"])).await.expect("reads are open");
        assert_eq!(r.into_inner().risks.len(), 1);
        c.admin.clone().ping(pb::PingRequest {}).await.expect("ping is open");
    }
    assert_eq!(s.stores.metrics.stats().await.expect("stats").samples, 0, "nothing stored without the token");
    assert_eq!(s.scorer.reloads.load(Ordering::SeqCst), 0);

    // The right token (the server's own clients carry it) is accepted.
    let r = push(&s.clients, vec![batch("h1", &[1_000])]).await.expect("token accepted");
    assert_eq!(r.accepted, 1);
    let r = s.clients.admin.clone().reload_model(pb::ReloadModelRequest::default()).await.expect("reload");
    assert_eq!(r.into_inner().current.map(|m| m.version), Some("v2".to_string()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_mutating_calls_are_open() {
    let s = Server::open().await;
    let r = push(&s.clients, vec![batch("h1", &[1_000])]).await.expect("no token needed");
    assert_eq!(r.accepted, 1);
    let r = s.clients.admin.clone().reload_model(pb::ReloadModelRequest::default()).await.expect("reload");
    assert_eq!(r.into_inner().previous.map(|m| m.version), Some("v1".to_string()));
    s.stop().await;
}

/// Waits (at most 20 s) until a load loop has been answered by model `version`.
async fn served(seen: &Mutex<std::collections::BTreeSet<String>>, version: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !seen.lock().expect("lock").contains(version) {
        assert!(std::time::Instant::now() < deadline, "no request was answered by {version} within 20 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_fail_no_request() {
    let s = Server::open().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let mut risk = s.clients.risk.clone();
        let (stop, seen) = (stop.clone(), seen.clone());
        loops.push(tokio::spawn(async move {
            let (mut ok, mut errors) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match risk.score_hosts(score_req(&["h1", "h2", "h3"])).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        assert!(r.risks.iter().all(|x| x.model_version == r.model_version), "one model per request");
                        seen.lock().expect("lock").insert(r.model_version);
                        ok += 1;
                    }
                    Err(e) => errors.push(e),
                }
            }
            (ok, errors)
        }));
    }
    // Each model (v1, then five reloads: v2..v6) answers the load before the next reload.
    let mut admin = s.clients.admin.clone();
    served(&seen, "v1").await;
    for n in 2..=6 {
        let r = admin.reload_model(pb::ReloadModelRequest::default()).await.expect("reload").into_inner();
        assert_eq!(r.current.map(|m| m.version), Some(format!("v{n}")));
        served(&seen, &format!("v{n}")).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for l in loops {
        let (ok, errors) = l.await.expect("client loop");
        assert!(errors.is_empty(), "failed requests during reloads: {errors:?}");
        total += ok;
    }
    assert!(total >= 6, "{total} requests");
    let m = admin.get_model(pb::GetModelRequest {}).await.expect("model").into_inner();
    assert_eq!(m.version, "v6");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_keeps_the_old_model() {
    let s = Server::open().await;
    let mut admin = s.clients.admin.clone();
    let e = admin.reload_model(pb::ReloadModelRequest { dir: "/models/broken".into() }).await.expect_err("broken");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().starts_with("model reload failed, still serving model v1: "), "{}", e.message());
    assert_eq!(admin.get_model(pb::GetModelRequest {}).await.expect("model").into_inner().version, "v1");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_model_scoring_is_unavailable_and_ingest_works() {
    let s = Server::start(None, Limits::default(), false).await;
    let e = s.clients.risk.clone().score_hosts(score_req(&["h1"])).await.expect_err("no model");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().starts_with("no failure model is loaded"), "{}", e.message());
    let r = push(&s.clients, vec![batch("h1", &[1_000])]).await.expect("ingest works");
    assert_eq!(r.accepted, 1);
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.clients.channel.clone());
    let st = health
        .check(tonic_health::pb::HealthCheckRequest { service: "harbinger.v1.RiskService".into() })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(st.status(), tonic_health::pb::health_check_response::ServingStatus::NotServing);
    s.stop().await;
}

async fn next_update(stream: &mut tonic::Streaming<pb::RiskUpdate>) -> (String, f64, bool) {
    let u = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an update within 10 s")
        .expect("stream ok")
        .expect("stream open");
    let r = u.risk.expect("risk");
    (r.host, r.risk, u.cleared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_risk_streams_hosts_crossing_the_threshold() {
    let s = Server::open().await;
    let mut stream = s
        .clients
        .risk
        .clone()
        .watch_risk(pb::WatchRiskRequest { threshold: 0.5, interval_ms: 100, ..Default::default() })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(next_update(&mut stream).await, ("h1".into(), 0.9, false), "the initial set: only h1 is above 0.5");
    s.scorer.set_risk("h2", 0.8);
    assert_eq!(next_update(&mut stream).await, ("h2".into(), 0.8, false));
    s.scorer.set_risk("h1", 0.2);
    assert_eq!(next_update(&mut stream).await, ("h1".into(), 0.2, true));

    // Shutting down ends the open stream instead of waiting for it.
    s.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("stream ends");
    assert!(!matches!(end, Ok(Some(_))), "no more updates after shutdown: {end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let s = Server::open().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.clients.channel.clone());
    for svc in ["", "harbinger.v1.RiskService", "harbinger.v1.IngestService", "harbinger.v1.AdminService"] {
        let st = health.check(tonic_health::pb::HealthCheckRequest { service: svc.into() }).await.expect("health").into_inner();
        assert_eq!(st.status(), tonic_health::pb::health_check_response::ServingStatus::Serving, "{svc:?}");
    }

    let mut refl = ServerReflectionClient::new(s.clients.channel.clone());
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut resp = refl.server_reflection_info(tokio_stream::iter([req])).await.expect("reflection").into_inner();
    let msg = resp.message().await.expect("ok").expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else { panic!("list expected") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for svc in ["harbinger.v1.RiskService", "harbinger.v1.IngestService", "harbinger.v1.AdminService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == svc), "{svc} in {names:?}");
    }

    // v1alpha, which older clients ask, lists the same.
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut refl = ServerReflectionClient::new(s.clients.channel.clone());
        let req = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
        let mut resp = refl.server_reflection_info(tokio_stream::iter([req])).await.expect("v1alpha reflection").into_inner();
        let msg = resp.message().await.expect("ok").expect("one response");
        let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else { panic!("list expected") };
        let alpha: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        let not_reflection = |v: &[String]| v.iter().filter(|n| !n.starts_with("grpc.reflection.")).cloned().collect::<Vec<_>>();
        assert_eq!(not_reflection(&alpha), not_reflection(&names), "v1alpha and v1 list the same services");
        assert!(alpha.iter().any(|n| n == "grpc.reflection.v1alpha.ServerReflection"), "{alpha:?}");
    }
    s.stop().await;
}

/// With strict hosts, gRPC treats an unknown host as HTTP does: its samples are refused as
/// `unknown_host`, the rest of the batch is stored; an event about it refuses the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_hosts_refuse_unknown_hosts_like_http_and_keep_the_rest() {
    let stores = Stores::from_backend(Arc::new(MemoryStore::new(harbinger_store::Limits::default())));
    let telemetry = Arc::new(harbinger_api::Telemetry::new());
    let mut state = GrpcState::new(stores.clone(), None, telemetry.clone());
    state.strict_hosts = Some(Arc::new(std::collections::HashSet::from([harbinger_core::HostId::new("h1")])));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(harbinger_grpc::serve(listener, state, None, async move {
        let _stopped = rx.await;
    }));
    let clients = connect(&addr, None, None).await.expect("connect");
    let r = push(&clients, vec![batch("h1", &[1_000, 2_000]), batch("ghost", &[1_000, 2_000, 3_000])]).await.expect("pushed");
    assert_eq!((r.batches, r.accepted, r.rejected.get("unknown_host")), (2, 2, Some(&3)));
    assert!(stores.metrics.range(&SeriesKey::new("ghost", "cpu_util"), 0, i64::MAX).await.is_err(), "nothing of ghost stored");
    assert!(telemetry.encode().contains(r#"harbinger_samples_rejected_total{reason="unknown_host"} 3"#));
    let e = clients
        .ingest
        .clone()
        .push_events(pb::PushEventsRequest {
            events: vec![event(pb::EventKind::DeployStarted, "h1"), event(pb::EventKind::DeployStarted, "ghost")],
        })
        .await
        .expect_err("unknown host");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("events[1]: unknown host \"ghost\""), "{}", e.message());
    assert!(stores.events.events(0, i64::MAX).await.expect("events").is_empty(), "nothing stored");
    let _sent = tx.send(());
    tokio::time::timeout(Duration::from_secs(20), task).await.expect("stopped").expect("task").expect("ok");
}

/// A codec that sends and receives raw bytes, to put garbage on the wire.
#[derive(Clone, Copy, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

#[tokio::test]
async fn a_request_that_is_not_protobuf_is_invalid_argument() {
    let s = Server::open().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", s.addr)).expect("uri").connect().await.expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/harbinger.v1.RiskService/ScoreHosts");
    // Field 1 with wire type 7 (no such type): not a protobuf message.
    let e = grpc.unary(tonic::Request::new(vec![0x0f, 0xff, 0xff]), path, Raw).await.expect_err("garbage");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("failed to decode Protobuf message"), "{}", e.message());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_protect_reads_reads_need_the_token_and_ping_stays_open() {
    let stores = Stores::from_backend(Arc::new(MemoryStore::new(harbinger_store::Limits::default())));
    let scorer = TestScorer::new();
    let mut state = GrpcState::new(stores, Some(scorer as Arc<dyn RiskScorer>), Arc::new(harbinger_api::Telemetry::new()));
    state.auth = Auth::new(Some(Arc::from("s3cret"))).protecting_reads(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(harbinger_grpc::serve(listener, state, None, async move {
        let _stopped = rx.await;
    }));
    let anon = connect(&addr, None, None).await.expect("connect");
    let e = anon.risk.clone().score_hosts(score_req(&["h1"])).await.expect_err("read needs the token");
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = anon.admin.clone().get_model(pb::GetModelRequest {}).await.expect_err("read needs the token");
    assert_eq!(e.code(), Code::Unauthenticated);
    anon.admin.clone().ping(pb::PingRequest {}).await.expect("ping stays open");
    let ok = connect(&addr, Some("s3cret"), None).await.expect("connect");
    let r = ok.risk.clone().score_hosts(score_req(&["h1"])).await.expect("with the token");
    assert_eq!(r.into_inner().risks.len(), 1);
    let _sent = tx.send(());
    tokio::time::timeout(Duration::from_secs(20), task).await.expect("stops").expect("join").expect("served");
}
