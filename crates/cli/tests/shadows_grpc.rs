//! `harbinger shadows` (the gRPC client of `ShadowService`): the binary against an
//! in-process gRPC server over a real engine (memory store, `log` actuator), and against
//! `harbinger serve`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Serve, run, write_inventory};
use harbinger_core::{Host, InventoryStore, ManualClock, Resource, Stores};
use harbinger_engine::{Engine, EngineConfig, EngineParts, LogActuator, Telemetry};
use harbinger_store::MemoryStore;
use serde_json::Value;

fn host(id: &str, zone: &str) -> Host {
    Host { host: id.into(), zone: zone.into(), rack: String::new(), cpu_cores: 16.0, mem_gb: 64.0 }
}

fn res(id: &str, on: &str, cpu: f64) -> Resource {
    Resource {
        id: id.into(),
        kind: "database".into(),
        host: on.into(),
        criticality: 3,
        cpu_cores: cpu,
        mem_gb: 4.0,
        depends_on: vec![],
        state: serde_json::Value::Null,
    }
}

/// A gRPC server on 127.0.0.1:0 with an engine over hosts a1 (zone a) and b1 (zone b) and
/// resources db-1, db-2 on a1 and `huge` (fits nowhere); `token` required when given.
/// Runs until the runtime is dropped.
fn grpc_server(rt: &tokio::runtime::Runtime, token: Option<&str>) -> String {
    rt.block_on(async {
        let store = Arc::new(MemoryStore::new(harbinger_store::Limits::default()));
        store.put_hosts(&[host("a1", "a"), host("b1", "b")]).await.expect("hosts");
        store.put_resources(&[res("db-1", "a1", 2.0), res("db-2", "a1", 2.0), res("huge", "a1", 64.0)]).await.expect("resources");
        let stores = Stores::from_backend(store);
        let telemetry = Arc::new(Telemetry::new());
        let parts = EngineParts {
            stores: stores.clone(),
            scorer: None,
            actuator: Arc::new(LogActuator),
            clock: Arc::new(ManualClock::new(1_700_000_000_000)),
            telemetry: telemetry.clone(),
        };
        let (engine, _) = Engine::open(parts, EngineConfig::default()).await.expect("engine");
        let mut state = harbinger_grpc::GrpcState::new(stores, None, telemetry);
        state.engine = Some(engine);
        state.auth = harbinger_grpc::auth::Auth::new(token.map(Arc::from));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(harbinger_grpc::serve(listener, state, None, std::future::pending()));
        addr
    })
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// `harbinger shadows --addr ADDR ARGS`, (exit code, stdout, stderr).
fn shadows(addr: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["shadows", "--addr", addr];
    all.extend_from_slice(args);
    run(&all)
}

/// The whole operator flow through the CLI, for any server whose inventory has db-1 on a
/// host of zone a, `huge` that fits nowhere and no resource "nope".
fn operator_flow(addr: &str, token: &str) {
    let ok = |args: &[&str]| {
        let (code, out, err) = shadows(addr, args);
        assert_eq!(code, 0, "shadows {args:?}: {err}");
        out
    };
    let fails = |args: &[&str], text: &str| {
        let (code, out, err) = shadows(addr, args);
        assert_ne!(code, 0, "shadows {args:?} should fail: {out}");
        assert!(err.contains(text), "shadows {args:?}: {err}");
    };

    let out = ok(&["list"]);
    assert!(out.starts_with("id  resource  primary  host  state  causes  priority\n"), "{out}");
    assert!(out.contains("0 shadows listed; all shadows: none; 0 pending actions; actuator log"), "{out}");

    let out = ok(&["create", "db-1", "--by", "alice", "--token", token, "--json"]);
    let v = json(&out);
    let shadow = &v["actions"][0]["shadow"];
    assert_eq!(
        (shadow["state"].as_str(), shadow["resource"].as_str(), shadow["primary"].as_str()),
        (Some("ready"), Some("db-1"), Some("a1")),
        "{v}"
    );
    assert!(!shadow["host"].as_str().unwrap_or("a").starts_with('a'), "another zone: {v}");
    assert_eq!(shadow["causes"][0]["key"], "manual:alice");
    assert_eq!(v["actions"][0]["status"], "dry_run");
    let id = shadow["id"].as_str().expect("id").to_string();

    let out = ok(&["list", "--live"]);
    let row = out.lines().nth(1).unwrap_or_default();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.first().copied(), Some(id.as_str()), "{out}");
    let on = shadow["host"].as_str().unwrap_or_default();
    assert_eq!(cells.get(1..6), Some(&["db-1", "a1", on, "ready", "manual:alice"][..]), "{out}");
    assert!(cells.get(6).is_some_and(|p| p.parse::<f64>().is_ok_and(|p| p > 0.0)), "a priority: {out}");
    assert!(out.contains("1 shadow listed; all shadows: 1 ready;"), "{out}");
    let out = ok(&["list", "--state", "promoted", "--json"]);
    assert_eq!(json(&out)["shadows"].as_array().map(Vec::len), Some(0), "{out}");
    let out = ok(&["show", &id]);
    assert!(out.contains(&format!("id         {id}\n")) && out.contains("state      ready (live)\n"), "{out}");
    assert!(out.contains("decisions about db-1, oldest first:") && out.contains("shadow_planned"), "{out}");

    // Refusals: the server's code and message, a non-zero exit, nothing changed.
    fails(&["create", "db-1", "--token", token], "ALREADY_EXISTS: resource db-1 already has live shadow");
    fails(&["create", "nope", "--token", token], "NOT_FOUND: unknown resource \"nope\"");
    fails(&["create", "huge", "--token", token], "FAILED_PRECONDITION: no shadow of huge: ");
    fails(&["promote", "ghost", "--token", token], "NOT_FOUND: unknown shadow \"ghost\"");
    fails(&["show", "ghost"], "NOT_FOUND: unknown shadow \"ghost\"");
    fails(&["list", "--state", "sideways"], "INVALID_ARGUMENT: `state` \"sideways\" is not a shadow state");
    fails(&["create", "db-2"], "UNAUTHENTICATED");

    let out = ok(&["promote", &id, "--by", "ops", "--token", token]);
    assert!(out.starts_with(&format!("dry_run promote:{id}: ")), "{out}");
    assert!(out.contains(": promoted\n") && out.contains("shadow_promoted: promoted by hand by ops"), "{out}");
    fails(&["promote", &id, "--token", token], "FAILED_PRECONDITION: shadow");
    let v = json(&ok(&["show", &id, "--json"]));
    assert_eq!((v["shadow"]["state"].as_str(), v["shadow"]["live"].as_bool()), (Some("promoted"), Some(false)), "{v}");
}

#[test]
fn shadows_cli_lists_creates_shows_and_promotes_against_a_grpc_server() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let addr = grpc_server(&rt, Some("t0ken"));
    operator_flow(&addr, "t0ken");

    // Without a server: a connection error naming the address, non-zero.
    let port = common::free_port();
    let (code, _, err) = shadows(&format!("127.0.0.1:{port}"), &["list", "--timeout", "2s"]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    rt.shutdown_timeout(Duration::from_secs(5));
}

fn served_data_dir(tmp: &Path) -> std::path::PathBuf {
    let ds = tmp.join("fleet");
    let hosts = [("a1", "a", 16.0), ("a2", "a", 16.0), ("b1", "b", 16.0), ("c1", "c", 16.0)];
    let resources = [("db-1", "a1", 3, 2.0), ("db-2", "a1", 3, 2.0), ("huge", "a1", 3, 100.0)]
        .map(|(id, h, c, cpu)| (id.to_string(), h.to_string(), c, cpu))
        .to_vec();
    write_inventory(&ds, &hosts, &resources);
    let data = tmp.join("data");
    let (code, _, err) = run(&["--data-dir", data.to_str().expect("utf-8"), "ingest", "--data", ds.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    data
}

#[test]
fn shadows_cli_against_serve() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = served_data_dir(tmp.path());
    let cfg = tmp.path().join("harbinger.toml");
    std::fs::write(&cfg, "[auth]\ntoken = \"t0ken\"\n").expect("config");
    let serve = Serve::start(&data, &["--config", cfg.to_str().expect("utf-8")]);
    operator_flow(&serve.grpc, "t0ken");
    assert_eq!(serve.terminate(), 0);
}
