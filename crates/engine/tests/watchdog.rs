//! The watchdog over real TCP endpoints: a primary that stops answering is failed over to
//! its ready shadow; one without a shadow takes the standard path.

use std::sync::Arc;
use std::time::Duration;

use harbinger_core::shadow::ShadowState;
use harbinger_core::{Host, InventoryStore, ManualClock, Resource, ShadowStore, Stores};
use harbinger_engine::watchdog::Check;
use harbinger_engine::{Engine, EngineConfig, EngineParts, LogActuator, Telemetry, Watchdog, WatchdogConfig};
use harbinger_store::MemoryStore;

fn host(id: &str, zone: &str) -> Host {
    Host { host: id.into(), zone: zone.into(), rack: String::new(), cpu_cores: 16.0, mem_gb: 64.0 }
}

fn res(id: &str, on: &str, endpoint: &str) -> Resource {
    Resource {
        id: id.into(),
        kind: "service".into(),
        host: on.into(),
        criticality: 3,
        cpu_cores: 1.0,
        mem_gb: 1.0,
        depends_on: vec![],
        state: serde_json::json!({ "endpoint": endpoint, "health": "tcp" }),
    }
}

#[tokio::test]
async fn a_dead_primary_fails_over_to_its_shadow_and_one_without_takes_the_standard_path() {
    let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let b = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (ea, eb) = (a.local_addr().expect("addr").to_string(), b.local_addr().expect("addr").to_string());
    let store = Arc::new(MemoryStore::default());
    store.put_hosts(&[host("a1", "a"), host("b1", "b"), host("c1", "c")]).await.expect("hosts");
    store.put_resources(&[res("api-1", "a1", &ea), res("db-1", "b1", &eb)]).await.expect("resources");
    let parts = EngineParts {
        stores: Stores::from_backend(store.clone()),
        scorer: None,
        actuator: Arc::new(LogActuator),
        clock: Arc::new(ManualClock::new(1_000_000)),
        telemetry: Arc::new(Telemetry::new()),
    };
    let (engine, _) = Engine::open(parts, EngineConfig::default()).await.expect("open");
    let shadow = engine.create(&"api-1".into(), "ops").await.expect("create")[0].shadow.clone().expect("shadow");
    assert_eq!(shadow.state, ShadowState::Ready);

    let cfg = WatchdogConfig { interval: Duration::from_millis(10), timeout: Duration::from_millis(200), fall: 2, window: 3 };
    let mut dog = Watchdog::new(engine.clone(), cfg);
    assert!(dog.round().await.is_empty(), "both answer");
    drop(a); // api-1's primary dies: connections are refused
    assert!(dog.round().await.is_empty(), "one failed check of two needed");
    let f = dog.round().await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].host.as_str(), f[0].resource.as_str()), ("a1", "api-1"));
    assert!(f[0].evidence.contains("refused"), "{}", f[0].evidence);
    let kinds: Vec<&str> = f[0].report.decisions.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["failover", "shadow_promoted"], "{:?}", f[0].report.decisions);
    let st = engine.status(&harbinger_engine::StatusFilter::default()).await.expect("status");
    let done = st.decisions.last().expect("decisions");
    assert_eq!((done.kind.as_str(), done.resource.as_ref().map(|r| r.as_str())), ("failover_done", Some("api-1")), "{done:?}");
    assert!(done.reason.contains("a1 declared down ") && done.reason.contains("promote:"), "the timings and the actions: {}", done.reason);
    let promoted = store.shadow(&shadow.id).await.expect("read").expect("shadow");
    assert_eq!(promoted.state, ShadowState::Promoted);
    let moved = store.resources().await.expect("resources").into_iter().find(|r| r.id == "api-1").expect("api-1");
    assert_eq!(moved.host.as_str(), shadow.host.as_str(), "the resource now runs where its shadow was");
    assert_eq!(moved.state.get("endpoint"), None, "the log actuator gave no address: the dead one is dropped");
    assert!(dog.round().await.is_empty(), "a1 is down: no longer watched");

    // db-1 has no shadow: the standard path provisions one elsewhere and promotes it.
    drop(b);
    dog.round().await;
    let f = dog.round().await;
    assert_eq!(f.len(), 1);
    let d = &f[0].report.decisions;
    assert!(d[0].kind == "failover" && d[0].reason.contains("has no shadow: standard path"), "{d:?}");
    assert!(d.iter().any(|d| d.kind == "shadow_planned"), "{d:?}");
    assert!(d.iter().any(|d| d.kind == "shadow_promoted"), "{d:?}");
    let moved = store.resources().await.expect("resources").into_iter().find(|r| r.id == "db-1").expect("db-1");
    assert_ne!(moved.host.as_str(), "b1");
}

#[tokio::test]
async fn checks_name_what_failed() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let e = l.local_addr().expect("addr").to_string();
    let t = Duration::from_millis(300);
    assert_eq!(Check::Tcp.run(&e, t).await, Ok(()));
    // Accepts but never answers: HTTP and Redis checks time out.
    let err = Check::Redis.run(&e, t).await.expect_err("silent");
    assert_eq!(err, "no answer within 300 ms");
    let err = Check::Http("/".into()).run(&e, t).await.expect_err("silent");
    assert_eq!(err, "no answer within 300 ms");
    drop(l);
    let err = Check::Tcp.run(&e, t).await.expect_err("closed");
    assert!(err.starts_with(&format!("connect {e}: ")), "{err}");

    // Redis answers +PONG and keeps the connection open: healthy at once, not a timeout.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let e = l.local_addr().expect("addr").to_string();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut c, _)) = l.accept().await else { break };
            let mut buf = [0u8; 64];
            let _n = tokio::io::AsyncReadExt::read(&mut c, &mut buf).await;
            let reply: &[u8] = if buf.starts_with(b"PING") { b"+PONG\r\n" } else { b"-ERR unknown\r\n" };
            let _w = tokio::io::AsyncWriteExt::write_all(&mut c, reply).await;
            held.push(c);
        }
    });
    let started = std::time::Instant::now();
    assert_eq!(Check::Redis.run(&e, t).await, Ok(()));
    assert!(started.elapsed() < t, "answered before the timeout");
    server.abort();
}
