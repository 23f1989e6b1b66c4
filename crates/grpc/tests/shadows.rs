//! `ShadowService` over a real server on 127.0.0.1:0 and a real engine (memory store, the
//! `log` dry-run actuator, a manual clock): create, duplicates and unknown resources,
//! promotion, status filters, WatchShadows, auth on the mutating calls, health and
//! reflection, and a server without the engine.

use std::sync::Arc;
use std::time::Duration;

use harbinger_core::{Host, InventoryStore, ManualClock, Resource, Stores};
use harbinger_engine::{Engine, EngineConfig, EngineParts, LogActuator, Telemetry};
use harbinger_grpc::client::{Clients, connect};
use harbinger_grpc::{GrpcState, auth::Auth, pb};
use harbinger_store::MemoryStore;
use tokio::sync::oneshot;
use tonic::Code;

const NOW: i64 = 1_000_000;

fn host(id: &str, zone: &str, cpu: f64) -> Host {
    Host { host: id.into(), zone: zone.into(), rack: String::new(), cpu_cores: cpu, mem_gb: 64.0 }
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

/// Hosts a1, a2 (zone a), b1 (zone b) and a small c1 (zone c); resources db-1, db-2 and
/// web-1 on a1, and `huge` (64 cores: fits nowhere) on a2.
async fn engine(stores: Stores, store: &MemoryStore) -> Engine {
    store.put_hosts(&[host("a1", "a", 16.0), host("a2", "a", 16.0), host("b1", "b", 16.0), host("c1", "c", 2.0)]).await.expect("hosts");
    store
        .put_resources(&[res("db-1", "a1", 3, 2.0), res("db-2", "a1", 3, 2.0), res("web-1", "a1", 0, 1.0), res("huge", "a2", 3, 64.0)])
        .await
        .expect("resources");
    let parts = EngineParts {
        stores,
        scorer: None,
        actuator: Arc::new(LogActuator),
        clock: Arc::new(ManualClock::new(NOW)),
        telemetry: Arc::new(Telemetry::new()),
    };
    Engine::open(parts, EngineConfig::default()).await.expect("engine").0
}

struct Server {
    clients: Clients,
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), harbinger_grpc::ServeError>>>,
}

impl Server {
    async fn start(token: Option<&str>, with_engine: bool) -> Self {
        let store = Arc::new(MemoryStore::new(harbinger_store::Limits::default()));
        let stores = Stores::from_backend(store.clone());
        let mut state = GrpcState::new(stores.clone(), None, Arc::new(Telemetry::new()));
        if with_engine {
            state.engine = Some(engine(stores, &store).await);
        }
        state.auth = Auth::new(token.map(Arc::from));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(harbinger_grpc::serve(listener, state, None, async move {
            let _stopped = rx.await;
        }));
        let clients = connect(&addr, token, None).await.expect("connect");
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

fn create(resource: &str, by: &str) -> pb::CreateShadowRequest {
    pb::CreateShadowRequest { resource: resource.into(), requested_by: by.into() }
}

fn promote(id: &str) -> pb::PromoteShadowRequest {
    pb::PromoteShadowRequest { id: id.into(), requested_by: "ops".into() }
}

/// Creates a shadow of `resource` and returns it.
async fn created(c: &Clients, resource: &str) -> pb::Shadow {
    let r = c.shadow.clone().create_shadow(create(resource, "alice")).await.expect("created").into_inner();
    r.actions.into_iter().find_map(|a| a.shadow).expect("a shadow")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_places_a_ready_shadow_in_another_zone_and_refuses_bad_requests() {
    let s = Server::start(None, true).await;
    let mut c = s.clients.shadow.clone();

    let r = c.create_shadow(create("db-1", "alice")).await.expect("created").into_inner();
    assert_eq!(r.actions.len(), 1, "{r:?}");
    let a = &r.actions[0];
    assert_eq!(a.status, "dry_run", "the log actuator performs nothing");
    assert!(a.key.starts_with("create:"), "{}", a.key);
    assert!(a.detail.starts_with("would create shadow db-1@b1#"), "{}", a.detail);
    let d = a.decision.as_ref().expect("decision");
    assert_eq!(
        (d.kind.as_str(), d.host.as_str(), d.resource.as_deref(), d.target_host.as_deref()),
        ("shadow_planned", "a1", Some("db-1"), Some("b1"))
    );
    assert_eq!(d.ts_ms, NOW);
    assert_eq!(d.cause.as_ref().map(|c| c.key.as_str()), Some("manual:alice"));
    let sh = a.shadow.as_ref().expect("shadow");
    assert_eq!(
        (sh.state(), sh.live, sh.resource.as_str(), sh.primary.as_str(), sh.host.as_str()),
        (pb::ShadowState::Ready, true, "db-1", "a1", "b1")
    );
    assert_eq!(d.shadow.as_deref(), Some(sh.id.as_str()));
    assert_eq!((sh.cpu_cores, sh.mem_gb, sh.created_at_ms), (2.0, 4.0, NOW));
    assert_eq!(sh.causes.len(), 1);
    assert_eq!((sh.causes[0].r#type.as_str(), sh.causes[0].by.as_str()), ("manual", "alice"));

    // The same request again: the live shadow made by hand exists.
    let e = c.create_shadow(create("db-1", "bob")).await.expect_err("duplicate");
    assert_eq!(e.code(), Code::AlreadyExists, "{}", e.message());
    assert_eq!(e.message(), format!("resource db-1 already has live shadow {} (ready) created by hand", sh.id));

    let e = c.create_shadow(create("nope", "alice")).await.expect_err("unknown");
    assert_eq!((e.code(), e.message()), (Code::NotFound, r#"unknown resource "nope""#));
    let e = c.create_shadow(create("  ", "alice")).await.expect_err("empty");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "`resource` is empty"));
    // 64 cores fit nowhere: the planner's reason.
    let e = c.create_shadow(create("huge", "alice")).await.expect_err("no capacity");
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    assert!(e.message().starts_with("no shadow of huge: "), "{}", e.message());

    let st = c.get_shadow_status(pb::ShadowStatusRequest::default()).await.expect("status").into_inner();
    assert_eq!(st.shadows.len(), 1, "refused requests changed nothing");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_needs_a_known_ready_shadow() {
    let s = Server::start(None, true).await;
    let mut c = s.clients.shadow.clone();
    let e = c.promote_shadow(promote("ghost")).await.expect_err("unknown");
    assert_eq!((e.code(), e.message()), (Code::NotFound, r#"unknown shadow "ghost""#));
    let e = c.promote_shadow(promote("")).await.expect_err("empty");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "`id` is empty"));

    let sh = created(&s.clients, "db-2").await;
    let done = c.promote_shadow(promote(&sh.id)).await.expect("promoted").into_inner();
    assert_eq!(done.key, format!("promote:{}", sh.id));
    assert_eq!(done.shadow.as_ref().map(|s| (s.state(), s.live)), Some((pb::ShadowState::Promoted, false)));
    let d = done.decision.expect("decision");
    assert_eq!((d.kind.as_str(), d.cause.map(|c| c.key)), ("shadow_promoted", Some("manual:ops".to_string())));

    // Promoted is not ready: refused, nothing changes.
    let e = c.promote_shadow(promote(&sh.id)).await.expect_err("twice");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(e.message(), format!("shadow {} is promoted; only a ready shadow can be promoted", sh.id));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_filters_shadows_and_counts_every_one() {
    let s = Server::start(None, true).await;
    let mut c = s.clients.shadow.clone();
    let one = created(&s.clients, "db-1").await;
    let two = created(&s.clients, "db-2").await;
    c.promote_shadow(promote(&two.id)).await.expect("promoted");

    let all = c.get_shadow_status(pb::ShadowStatusRequest::default()).await.expect("status").into_inner();
    let ids: Vec<&str> = all.shadows.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [one.id.as_str(), two.id.as_str()], "by id");
    assert_eq!(all.counts.get("ready"), Some(&1));
    assert_eq!(all.counts.get("promoted"), Some(&1));
    assert_eq!((all.actuator.as_str(), all.now_ms, all.pending_actions), ("log", NOW, 0));
    let kinds: Vec<&str> = all.decisions.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["shadow_planned", "shadow_planned", "shadow_promoted"], "oldest first");

    let status = |f: fn(&mut pb::ShadowStatusRequest)| {
        let mut req = pb::ShadowStatusRequest::default();
        f(&mut req);
        let mut c = c.clone();
        async move { c.get_shadow_status(req).await.map(|r| r.into_inner()) }
    };
    let ids = |r: &pb::ShadowStatusResponse| r.shadows.iter().map(|s| s.resource.clone()).collect::<Vec<_>>();

    let r = status(|r| r.resource = Some("db-1".into())).await.expect("by resource");
    assert_eq!(ids(&r), ["db-1"]);
    assert_eq!(r.counts.get("promoted"), Some(&1), "counts cover every shadow");
    assert!(r.decisions.iter().all(|d| d.resource.as_deref() == Some("db-1")), "{:?}", r.decisions);
    assert_eq!(ids(&status(|r| r.live_only = true).await.expect("live")), ["db-1"]);
    assert_eq!(ids(&status(|r| r.state = Some("promoted".into())).await.expect("state")), ["db-2"]);
    assert_eq!(ids(&status(|r| r.state = Some("SHADOW_STATE_READY".into())).await.expect("enum name")), ["db-1"]);
    assert_eq!(ids(&status(|r| r.host = Some("a1".into())).await.expect("primary")), ["db-1", "db-2"]);
    assert_eq!(ids(&status(|r| r.host = Some("b1".into())).await.expect("shadow host")), ["db-1", "db-2"]);
    assert!(status(|r| r.host = Some("c1".into())).await.expect("no match").shadows.is_empty());
    let by_id = pb::ShadowStatusRequest { id: Some(two.id.clone()), ..Default::default() };
    let r = s.clients.shadow.clone().get_shadow_status(by_id).await.expect("by id").into_inner();
    assert_eq!(ids(&r), ["db-2"]);

    let e = status(|r| r.state = Some("gone".into())).await.expect_err("unknown state");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("`state` \"gone\" is not a shadow state"), "{}", e.message());
    let e = status(|r| r.resource = Some(" ".into())).await.expect_err("empty filter");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "`resource` is empty"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shadows_streams_actions_made_after_the_call_and_ends_at_shutdown() {
    let s = Server::start(None, true).await;
    let mut stream = s.clients.shadow.clone().watch_shadows(pb::WatchShadowsRequest {}).await.expect("watch").into_inner();
    let sh = created(&s.clients, "db-1").await;
    let a = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an action within 10 s")
        .expect("ok")
        .expect("not ended");
    assert_eq!(a.status, "dry_run");
    assert_eq!(a.shadow.map(|s| s.id), Some(sh.id.clone()));
    assert_eq!(a.decision.map(|d| d.kind), Some("shadow_planned".to_string()));

    s.clients.shadow.clone().promote_shadow(promote(&sh.id)).await.expect("promoted");
    let a = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("in time").expect("ok").expect("more");
    assert_eq!(a.key, format!("promote:{}", sh.id));

    s.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("the stream ends with the server");
    assert!(!matches!(end, Ok(Some(_))), "no more actions: {end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_promote_need_the_token_when_one_is_set() {
    let s = Server::start(Some("s3cret"), true).await;
    let anon = connect(&s.addr, None, None).await.expect("connect");
    let e = anon.shadow.clone().create_shadow(create("db-1", "eve")).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    let wrong = connect(&s.addr, Some("guess"), None).await.expect("connect");
    let e = wrong.shadow.clone().create_shadow(create("db-1", "eve")).await.expect_err("wrong token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    // Reads need none.
    let st = anon.shadow.clone().get_shadow_status(pb::ShadowStatusRequest::default()).await.expect("status");
    assert!(st.into_inner().shadows.is_empty(), "refused creations made nothing");

    let sh = created(&s.clients, "db-1").await;
    let e = anon.shadow.clone().promote_shadow(promote(&sh.id)).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    s.clients.shadow.clone().promote_shadow(promote(&sh.id)).await.expect("with the token");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_engine_every_call_is_unavailable_and_health_says_so() {
    let s = Server::start(None, false).await;
    let mut c = s.clients.shadow.clone();
    let unavailable = |r: Result<(), tonic::Status>| {
        let e = r.expect_err("no engine");
        assert_eq!((e.code(), e.message()), (Code::Unavailable, "the engine is not running"));
    };
    unavailable(c.create_shadow(create("db-1", "alice")).await.map(drop));
    unavailable(c.promote_shadow(promote("x")).await.map(drop));
    unavailable(c.get_shadow_status(pb::ShadowStatusRequest::default()).await.map(drop));
    unavailable(c.watch_shadows(pb::WatchShadowsRequest {}).await.map(drop));
    // Request errors still come first.
    let e = c.create_shadow(create("", "alice")).await.expect_err("empty");
    assert_eq!(e.code(), Code::InvalidArgument);

    let mut health = tonic_health::pb::health_client::HealthClient::new(s.clients.channel.clone());
    let st = health
        .check(tonic_health::pb::HealthCheckRequest { service: "harbinger.v1.ShadowService".into() })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(st.status(), tonic_health::pb::health_check_response::ServingStatus::NotServing);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_list_the_shadow_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let s = Server::start(None, true).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.clients.channel.clone());
    let st = health
        .check(tonic_health::pb::HealthCheckRequest { service: "harbinger.v1.ShadowService".into() })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(st.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);

    let mut refl = ServerReflectionClient::new(s.clients.channel.clone());
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut resp = refl.server_reflection_info(tokio_stream::iter([req])).await.expect("reflection").into_inner();
    let msg = resp.message().await.expect("ok").expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else { panic!("list expected") };
    assert!(list.service.iter().any(|s| s.name == "harbinger.v1.ShadowService"), "{:?}", list.service);

    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol("harbinger.v1.ShadowService".into())),
    };
    let mut resp = refl.server_reflection_info(tokio_stream::iter([req])).await.expect("reflection").into_inner();
    let msg = resp.message().await.expect("ok").expect("one response");
    assert!(matches!(msg.message_response, Some(MessageResponse::FileDescriptorResponse(_))), "{msg:?}");
    s.stop().await;
}
