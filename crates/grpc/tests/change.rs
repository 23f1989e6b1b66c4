//! `ChangeService` over a real server on 127.0.0.1:0 and a real change engine (a temporary
//! data directory, the embedded change-risk model) on a JSON file resource: Simulate,
//! Apply, Rollback back to the same bytes, ListChanges and GetChange; auth on the mutating
//! calls; bad templates; rejected changes as OK answers; an apply that outlives its
//! client's deadline; Submit (a change submitted ahead of deployment: held when its dry
//! run fails, applied when positive); health, reflection and a server without the change
//! engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use harbinger_change::risk::ChangeRiskModel;
use harbinger_change::{ChangeEngine, EngineConfig};
use harbinger_core::{Stores, SystemClock};
use harbinger_engine::Telemetry;
use harbinger_grpc::client::{Clients, connect};
use harbinger_grpc::{GrpcState, Limits, auth::Auth, pb};
use harbinger_store::MemoryStore;
use tokio::sync::oneshot;
use tonic::Code;

/// The file's first content, written as the file resource writes JSON (2-space indents,
/// sorted keys, a final newline), so a restore gives back the same bytes.
const ORIGINAL: &str = "{\n  \"server\": {\n    \"port\": 8080,\n    \"workers\": 4\n  }\n}\n";

struct Server {
    clients: Clients,
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), harbinger_grpc::ServeError>>>,
}

struct Options<'a> {
    token: Option<&'a str>,
    data_dir: Option<&'a Path>,
    max_message_bytes: usize,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self { token: None, data_dir: None, max_message_bytes: Limits::default().max_message_bytes }
    }
}

impl Server {
    async fn start(o: Options<'_>) -> Self {
        let store = Arc::new(MemoryStore::new(harbinger_store::Limits::default()));
        let mut state = GrpcState::new(Stores::from_backend(store), None, Arc::new(Telemetry::new()));
        if let Some(dir) = o.data_dir {
            let engine = ChangeEngine::open(dir, ChangeRiskModel::embedded_default(), Arc::new(SystemClock), EngineConfig::default())
                .expect("change engine");
            state.change = Some(Arc::new(engine));
        }
        state.auth = Auth::new(o.token.map(Arc::from));
        state.limits.max_message_bytes = o.max_message_bytes;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(harbinger_grpc::serve(listener, state, None, async move {
            let _stopped = rx.await;
        }));
        let clients = connect(&addr, o.token, None).await.expect("connect");
        Self { clients, addr, stop: Some(tx), task: Some(task) }
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

/// A data directory and a work directory holding `app.json` ([`ORIGINAL`]).
struct Dirs {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    work: PathBuf,
}

impl Dirs {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        std::fs::write(work.join("app.json"), ORIGINAL).expect("app.json");
        Self { _tmp: tmp, data, work }
    }

    fn base(&self) -> String {
        self.work.display().to_string()
    }

    fn app(&self) -> String {
        std::fs::read_to_string(self.work.join("app.json")).expect("read app.json")
    }
}

/// Raises the workers from 4 to 8 (the file's path relative to the template's directory),
/// with `extra` appended (validation tests).
fn template(extra: &str) -> String {
    format!(
        "stack: shop\ndescription: more web workers\nresources:\n  - id: web-config\n    kind: file\n    path: app.json\n    desired:\n      content: {{server: {{port: 8080, workers: 8}}}}\n{extra}"
    )
}

fn simulate_req(t: &str, base: &str) -> pb::SimulateRequest {
    pb::SimulateRequest { template: t.into(), format: String::new(), base_dir: base.into() }
}

fn apply_req(t: &str, base: &str) -> pb::ApplyRequest {
    pb::ApplyRequest { template: t.into(), format: String::new(), base_dir: base.into(), override_high_cost: false, force: false }
}

fn submit_req(t: &str, base: &str, monitor_for: &str) -> pb::SubmitRequest {
    pb::SubmitRequest {
        template: t.into(),
        format: String::new(),
        base_dir: base.into(),
        monitor_for: monitor_for.into(),
        monitor_every: String::new(),
        override_high_cost: false,
    }
}

fn rollback_req(change: &str, resources: &[&str]) -> pb::RollbackRequest {
    pb::RollbackRequest { change: change.into(), resources: resources.iter().map(|r| r.to_string()).collect() }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_apply_list_and_roll_back_a_file_change() {
    let d = Dirs::new();
    let s = Server::start(Options { data_dir: Some(&d.data), ..Options::default() }).await;
    let mut c = s.clients.change.clone();

    // Simulate: the update stack and the rollback plan; nothing moves.
    let r = c.simulate(simulate_req(&template(""), &d.base())).await.expect("simulate").into_inner();
    let a = r.analysis.expect("analysis");
    assert_eq!((a.stack.as_str(), a.description.as_str()), ("shop", "more web workers"));
    let ops: Vec<_> = a
        .update_stack
        .iter()
        .map(|o| (o.resource.as_str(), o.path.as_str(), o.op.as_str(), o.from_json.as_str(), o.to_json.as_str()))
        .collect();
    assert_eq!(ops, vec![("web-config", "/content/server/workers", "replace", "4", "8")]);
    assert_eq!(a.changed, vec!["web-config"]);
    assert!((0.0..=1.0).contains(&a.risk_score), "{}", a.risk_score);
    assert!(["low", "medium", "high"].contains(&a.risk_level.as_str()), "{}", a.risk_level);
    assert!(!a.risk_factors.is_empty());
    let rb = a.rollback.as_ref().expect("rollback plan");
    assert_eq!(rb.order.iter().map(|s| s.resources.clone()).collect::<Vec<_>>(), vec![vec!["web-config".to_string()]]);
    assert!(rb.estimate_p50_s > 0.0 && rb.estimate_p90_s >= rb.estimate_p50_s, "{rb:?}");
    assert!(!rb.high_cost);
    let full = json(&r.json);
    assert_eq!(full["update_stack"][0]["to"], 8);
    assert_eq!(full["rollback"]["order"][0][0], "web-config");
    assert_eq!(d.app(), ORIGINAL, "Simulate moves nothing");

    // Apply: the file changes.
    let r = c.apply(apply_req(&template(""), &d.base())).await.expect("apply").into_inner();
    assert_eq!((r.change.as_str(), r.status.as_str()), ("c-1", "applied"), "{}", r.reason);
    assert_eq!(r.applied, vec!["web-config"]);
    assert!(r.rollback.is_none());
    assert_eq!(json(&r.json)["status"], "applied");
    assert_eq!(json(&d.app())["server"]["workers"], 8);

    // Listed, with its log.
    let list = c.list_changes(pb::ListChangesRequest::default()).await.expect("list").into_inner();
    let ids: Vec<_> = list.changes.iter().map(|c| (c.id.as_str(), c.stack.as_str(), c.status.as_str())).collect();
    assert_eq!(ids, vec![("c-1", "shop", "applied")]);
    assert_eq!(list.changes[0].resources.len(), 1);
    assert_eq!(list.changes[0].base_dir, d.base());
    assert!(c.list_changes(pb::ListChangesRequest { stack: "other".into() }).await.expect("list").into_inner().changes.is_empty());
    let got = c.get_change(pb::GetChangeRequest { change: "c-1".into() }).await.expect("get").into_inner();
    assert_eq!(got.change.as_ref().map(|c| c.ops.len()), Some(1));
    let steps: Vec<_> = got.log.iter().map(|e| e.step.as_str()).collect();
    assert!(steps.contains(&"snapshot") && steps.contains(&"apply"), "{steps:?}");

    // Unknown change or resource: NOT_FOUND.
    let e = c.rollback(rollback_req("c-99", &[])).await.expect_err("unknown change");
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    assert!(e.message().contains("c-99"), "{}", e.message());
    let e = c.get_change(pb::GetChangeRequest { change: "c-99".into() }).await.expect_err("unknown change");
    assert_eq!(e.code(), Code::NotFound);
    let e = c.rollback(rollback_req("c-1", &["db"])).await.expect_err("unknown resource");
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    let e = c.rollback(rollback_req(" ", &[])).await.expect_err("empty change");
    assert_eq!(e.code(), Code::InvalidArgument);

    // Rollback: the same bytes back.
    let r = c.rollback(rollback_req("c-1", &[])).await.expect("rollback").into_inner();
    assert_eq!((r.change.as_str(), r.status.as_str()), ("c-1", "rolled_back"), "{r:?}");
    let done = r.rollback.expect("what ran");
    assert!(done.verified, "{done:?}");
    assert_eq!(done.kind, "standard");
    assert_eq!(done.restored.iter().map(|x| (x.resource.as_str(), x.ok, x.verified)).collect::<Vec<_>>(), vec![("web-config", true, true)]);
    assert_eq!(json(&r.json)["verified"], true);
    assert_eq!(json(&d.app()), json(ORIGINAL));
    assert_eq!(d.app(), ORIGINAL);
    let got = c.get_change(pb::GetChangeRequest { change: "c-1".into() }).await.expect("get").into_inner();
    assert_eq!(got.change.map(|c| c.status), Some("rolled_back".to_string()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_apply_and_rollback_need_the_token_when_one_is_set() {
    let d = Dirs::new();
    let s = Server::start(Options { token: Some("s3cret"), data_dir: Some(&d.data), ..Options::default() }).await;
    let anon = connect(&s.addr, None, None).await.expect("connect");
    let e = anon.change.clone().apply(apply_req(&template(""), &d.base())).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    let wrong = connect(&s.addr, Some("guess"), None).await.expect("connect");
    let e = wrong.change.clone().apply(apply_req(&template(""), &d.base())).await.expect_err("wrong token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    assert_eq!(d.app(), ORIGINAL, "refused applies move nothing");
    // Simulate runs the template's commands and reads its files: it needs the token too.
    let e = anon.change.clone().simulate(simulate_req(&template(""), &d.base())).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    s.clients.change.clone().simulate(simulate_req(&template(""), &d.base())).await.expect("simulate with the token");
    // Reads need none.
    assert!(anon.change.clone().list_changes(pb::ListChangesRequest::default()).await.expect("list").into_inner().changes.is_empty());

    let r = s.clients.change.clone().apply(apply_req(&template(""), &d.base())).await.expect("with the token").into_inner();
    assert_eq!(r.status, "applied", "{}", r.reason);
    let e = anon.change.clone().rollback(rollback_req(&r.change, &[])).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    let got = anon.change.clone().get_change(pb::GetChangeRequest { change: r.change.clone() }).await.expect("reads are open");
    assert_eq!(got.into_inner().change.map(|c| c.status), Some("applied".to_string()));
    s.clients.change.clone().rollback(rollback_req(&r.change, &[])).await.expect("with the token");
    assert_eq!(d.app(), ORIGINAL);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_templates_and_requests_are_refused_with_fitting_codes() {
    let d = Dirs::new();
    let s = Server::start(Options { data_dir: Some(&d.data), max_message_bytes: 8 << 20, ..Options::default() }).await;
    let mut c = s.clients.change.clone();
    let refused = |r: Result<tonic::Response<pb::SimulateResponse>, tonic::Status>| {
        let e = r.expect_err("refused");
        (e.code(), e.message().to_string())
    };

    // A syntax error names the line (the `kind` key is indented one space too far).
    let bad = "stack: shop\nresources:\n  - id: web-config\n     kind: file\n";
    let (code, msg) = refused(c.simulate(simulate_req(bad, &d.base())).await);
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.starts_with("template.yaml:4:"), "{msg}");
    let (code, msg) = refused(
        c.simulate(pb::SimulateRequest { format: "json".into(), ..simulate_req("{\"stack\": \"shop\",\n\"resources\": [}", "") }).await,
    );
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.starts_with("template.json:2:"), "{msg}");
    // Apply refuses the same way, and records nothing.
    let e = c.apply(apply_req(bad, &d.base())).await.expect_err("syntax");
    assert_eq!(e.code(), Code::InvalidArgument);
    // A valid document that is not a change.
    let (code, msg) = refused(c.simulate(simulate_req("stack: shop\nresources:\n  - {id: a, path: x.json}\n", &d.base())).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("missing key `kind`"), "{msg}");
    // A dependency cycle.
    let cycle = "stack: shop\nresources:\n  - {id: a, kind: file, path: a.json, depends_on: [b]}\n  - {id: b, kind: file, path: b.json, depends_on: [a]}\n";
    let (code, msg) = refused(c.simulate(simulate_req(cycle, &d.base())).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("dependency cycle"), "{msg}");
    // A desired path outside the kind's change profile.
    let outside = "stack: shop\nresources:\n  - {id: a, kind: file, path: app.json, desired: {mode: 420}}\n";
    let (code, msg) = refused(c.simulate(simulate_req(outside, &d.base())).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("outside the kind's change profile"), "{msg}");

    // base_dir: needed for relative paths, absolute, a directory.
    let (code, msg) = refused(c.simulate(simulate_req(&template(""), "")).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("relative paths") && msg.contains("app.json"), "{msg}");
    let (code, msg) = refused(c.simulate(simulate_req(&template(""), "work")).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("not an absolute path"), "{msg}");
    let missing = d.work.join("missing").display().to_string();
    let (code, msg) = refused(c.simulate(simulate_req(&template(""), &missing)).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("is not a directory"), "{msg}");
    // An absolute path needs no base_dir.
    let abs = template("").replace("path: app.json", &format!("path: {}", d.work.join("app.json").display()));
    c.simulate(simulate_req(&abs, "")).await.expect("absolute paths need no base_dir");

    // Over the template limit (the message limit of this server is larger).
    let big = format!("{}#{}\n", template(""), "x".repeat(harbinger_grpc::change::MAX_TEMPLATE_BYTES));
    let (code, msg) = refused(c.simulate(simulate_req(&big, &d.base())).await);
    assert_eq!(code, Code::ResourceExhausted);
    assert!(msg.contains("4194304 bytes"), "{msg}");

    // A resource that cannot be reached: UNAVAILABLE.
    let redis = "stack: cache\nresources:\n  - {id: r, kind: redis, endpoint: \"127.0.0.1:1\", keys: [k], desired: {keys: {k: v}}}\n";
    let (code, msg) = refused(c.simulate(simulate_req(redis, "")).await);
    assert_eq!(code, Code::Unavailable, "{msg}");
    assert!(msg.contains("\"r\""), "{msg}");

    let list = c.list_changes(pb::ListChangesRequest::default()).await.expect("list").into_inner();
    assert!(list.changes.is_empty(), "refused requests record nothing: {list:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_change_is_an_ok_answer_and_cannot_be_rolled_back() {
    let d = Dirs::new();
    let s = Server::start(Options { data_dir: Some(&d.data), ..Options::default() }).await;
    let mut c = s.clients.change.clone();
    let failing = template("validation:\n  - {name: config loads, type: command, run: [/bin/false]}\n");
    let r = c.apply(apply_req(&failing, &d.base())).await.expect("an OK answer").into_inner();
    assert_eq!(r.status, "rejected", "{r:?}");
    assert!(r.reason.starts_with("predictive rollback: staged validation failed: config loads"), "{}", r.reason);
    let v = r
        .analysis
        .as_ref()
        .map(|a| a.validation.iter().map(|t| (t.name.as_str(), t.r#type.as_str(), t.outcome.as_str())).collect::<Vec<_>>());
    assert_eq!(v, Some(vec![("config loads", "command", "failed")]));
    assert_eq!(r.rollback.as_ref().map(|x| (x.kind.as_str(), x.verified)), Some(("predictive", true)));
    assert_eq!(d.app(), ORIGINAL, "nothing live moved");

    let e = c.rollback(rollback_req(&r.change, &[])).await.expect_err("never applied");
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    let list = c.list_changes(pb::ListChangesRequest::default()).await.expect("list").into_inner();
    assert_eq!(list.changes.iter().map(|c| c.status.as_str()).collect::<Vec<_>>(), vec!["rejected"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_finishes_after_its_client_gave_up() {
    let d = Dirs::new();
    let s = Server::start(Options { data_dir: Some(&d.data), ..Options::default() }).await;
    let mut c = s.clients.change.clone();
    let slow = template("validation:\n  - {name: slow check, type: command, run: [sleep, \"1\"]}\n");
    let mut req = tonic::Request::new(apply_req(&slow, &d.base()));
    req.set_timeout(Duration::from_millis(300));
    let e = c.apply(req).await.expect_err("past the deadline");
    assert!(matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled), "{e:?}");
    // The apply goes on to the end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = c.list_changes(pb::ListChangesRequest::default()).await.expect("list").into_inner();
        if let Some(ch) = list.changes.first() {
            assert_eq!((ch.id.as_str(), ch.status.as_str()), ("c-1", "applied"), "{}", ch.reason);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the apply never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(json(&d.app())["server"]["workers"], 8);
    // A second apply (nothing to change now) waits for none and records nothing.
    let r = c.apply(apply_req(&template(""), &d.base())).await.expect("apply").into_inner();
    assert_eq!(r.status, "applied");
    assert!(r.reason.starts_with("nothing to change"), "{}", r.reason);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_and_a_server_without_the_change_engine() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    async fn health(s: &Server) -> ServingStatus {
        let mut h = tonic_health::pb::health_client::HealthClient::new(s.clients.channel.clone());
        h.check(tonic_health::pb::HealthCheckRequest { service: "harbinger.v1.ChangeService".into() })
            .await
            .expect("health")
            .into_inner()
            .status()
    }

    let d = Dirs::new();
    let s = Server::start(Options { data_dir: Some(&d.data), ..Options::default() }).await;
    assert_eq!(health(&s).await, ServingStatus::Serving);
    let mut refl = ServerReflectionClient::new(s.clients.channel.clone());
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut resp = refl.server_reflection_info(tokio_stream::iter([req])).await.expect("reflection").into_inner();
    let msg = resp.message().await.expect("ok").expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else { panic!("list expected") };
    assert!(list.service.iter().any(|s| s.name == "harbinger.v1.ChangeService"), "{:?}", list.service);
    s.stop().await;

    let s = Server::start(Options::default()).await;
    assert_eq!(health(&s).await, ServingStatus::NotServing);
    let mut c = s.clients.change.clone();
    let e = c.simulate(simulate_req(&template(""), &d.base())).await.expect_err("no change engine");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().starts_with("the change engine is not running"), "{}", e.message());
    let e = c.list_changes(pb::ListChangesRequest::default()).await.expect_err("no change engine");
    assert_eq!(e.code(), Code::Unavailable);
    let e = c.apply(apply_req(&template(""), &d.base())).await.expect_err("no change engine");
    assert_eq!(e.code(), Code::Unavailable);
    // Request errors still come first.
    let e = c.get_change(pb::GetChangeRequest::default()).await.expect_err("empty");
    assert_eq!(e.code(), Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_run_one_at_a_time() {
    let d = Dirs::new();
    std::fs::write(d.work.join("other.json"), ORIGINAL).expect("other.json");
    let s = Server::start(Options { data_dir: Some(&d.data), ..Options::default() }).await;
    let slow = "validation:\n  - {name: slow check, type: command, run: [sleep, \"0.5\"]}\n";
    let first = template(slow);
    let second = template(slow).replace("stack: shop", "stack: other").replace("path: app.json", "path: other.json");
    let (mut c1, mut c2) = (s.clients.change.clone(), s.clients.change.clone());
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(c1.apply(apply_req(&first, &d.base())), c2.apply(apply_req(&second, &d.base())));
    let elapsed = started.elapsed();
    let (a, b) = (a.expect("first").into_inner(), b.expect("second").into_inner());
    assert_eq!((a.status.as_str(), b.status.as_str()), ("applied", "applied"), "{} / {}", a.reason, b.reason);
    let mut ids = vec![a.change, b.change];
    ids.sort();
    assert_eq!(ids, vec!["c-1", "c-2"], "each change gets its own id");
    assert!(elapsed >= Duration::from_secs(1), "the two applies ran one after the other: {elapsed:?}");
    let list = s.clients.change.clone().list_changes(pb::ListChangesRequest::default()).await.expect("list").into_inner();
    assert_eq!(list.changes.len(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_whose_dry_run_fails_is_held_with_its_rollback_pre_provisioned() {
    let d = Dirs::new();
    let s = Server::start(Options { data_dir: Some(&d.data), ..Options::default() }).await;
    let mut c = s.clients.change.clone();
    let failing = template("validation:\n  - {name: config loads, type: command, run: [/bin/false]}\n");
    let r = c.submit(submit_req(&failing, &d.base(), "")).await.expect("an OK answer").into_inner();
    assert_eq!((r.prediction.as_str(), r.status.as_str()), ("negative", "held"), "{r:?}");
    assert!(r.reasons.iter().any(|x| x.contains("validation on the shadow copies failed: config loads")), "{:?}", r.reasons);
    assert!(r.reason.starts_with("predicted negative, not applied"), "{}", r.reason);
    assert!(!r.pre_provisioned.is_empty(), "{r:?}");
    // The standby copy of the file's last good state, allocated on the server.
    assert_eq!(r.held.len(), 1, "{:?}", r.held);
    let copy = std::fs::read_to_string(&r.held[0]).expect("the standby copy exists");
    assert_eq!(json(&copy), json(ORIGINAL), "the standby copy holds the last good state");
    assert_eq!((r.monitor_checks, r.monitor_failed, r.rolled_back, r.rollback_verified), (0, 0, false, false));
    let full = json(&r.json);
    assert_eq!((full["status"].as_str(), full["prediction"].as_str()), (Some("held"), Some("negative")));
    assert_eq!(full["change"], r.change.as_str());
    assert_eq!(d.app(), ORIGINAL, "nothing live moved");

    // Recorded held; it cannot be rolled back (nothing was applied).
    let got = c.get_change(pb::GetChangeRequest { change: r.change.clone() }).await.expect("get").into_inner();
    assert_eq!(got.change.map(|c| c.status), Some("held".to_string()));
    let e = c.rollback(rollback_req(&r.change, &[])).await.expect_err("never applied");
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_positive_submit_is_applied() {
    let d = Dirs::new();
    let s = Server::start(Options { data_dir: Some(&d.data), ..Options::default() }).await;
    let mut c = s.clients.change.clone();
    let r = c.submit(submit_req(&template(""), &d.base(), "0s")).await.expect("submit").into_inner();
    assert_eq!((r.prediction.as_str(), r.status.as_str()), ("positive", "applied"), "{r:?}");
    assert!(r.reasons.is_empty(), "{:?}", r.reasons);
    assert_eq!(r.change, "c-1");
    assert!(r.held.is_empty(), "{:?}", r.held);
    assert_eq!((r.monitor_checks, r.monitor_failed, r.rolled_back), (0, 0, false), "monitor_for 0s: not watched");
    let full = json(&r.json);
    assert_eq!(full["apply"]["status"], "applied");
    assert_eq!(full["apply"]["applied"], serde_json::json!(["web-config"]));
    assert_eq!(json(&d.app())["server"]["workers"], 8);
    let list = c.list_changes(pb::ListChangesRequest::default()).await.expect("list").into_inner();
    assert_eq!(list.changes.iter().map(|c| (c.id.as_str(), c.status.as_str())).collect::<Vec<_>>(), vec![("c-1", "applied")]);

    // Watched briefly: every round of the post-apply checks is counted.
    let more = template("post_apply:\n  - {name: still up, type: command, run: [/bin/true]}\n").replace("workers: 8", "workers: 12");
    let r = c
        .submit(pb::SubmitRequest { monitor_every: "100ms".into(), ..submit_req(&more, &d.base(), "350ms") })
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(r.status, "applied", "{r:?}");
    assert!(r.reason.contains("behaved as predicted"), "{}", r.reason);
    assert!(r.monitor_checks >= 2 && r.monitor_failed == 0, "{r:?}");
    assert_eq!(json(&d.app())["server"]["workers"], 12);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_refuses_bad_durations_and_needs_the_token() {
    let d = Dirs::new();
    let s = Server::start(Options { token: Some("s3cret"), data_dir: Some(&d.data), ..Options::default() }).await;
    let mut c = s.clients.change.clone();
    let e = c.submit(submit_req(&template(""), &d.base(), "soon")).await.expect_err("not a duration");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().starts_with("`monitor_for` \"soon\" is not a duration"), "{}", e.message());
    let e = c
        .submit(pb::SubmitRequest { monitor_every: "0s".into(), ..submit_req(&template(""), &d.base(), "") })
        .await
        .expect_err("zero monitor_every");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("`monitor_every`"), "{}", e.message());

    let anon = connect(&s.addr, None, None).await.expect("connect");
    let e = anon.change.clone().submit(submit_req(&template(""), &d.base(), "0s")).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    let wrong = connect(&s.addr, Some("guess"), None).await.expect("connect");
    let e = wrong.change.clone().submit(submit_req(&template(""), &d.base(), "0s")).await.expect_err("wrong token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    assert_eq!(d.app(), ORIGINAL, "refused submissions move nothing");
    let list = c.list_changes(pb::ListChangesRequest::default()).await.expect("list").into_inner();
    assert!(list.changes.is_empty(), "refused submissions record nothing: {list:?}");
    s.stop().await;
}
