//! The `redis` resource kind against real `redis-server` processes (Debian package
//! `redis-server`): keys and parameters round trip, unmanaged parameters are refused,
//! staging on a server of its own, and unreachable servers.
//!
//! Every server runs on 127.0.0.1 on a port free at test time, in a temp dir, and is
//! killed at the end (a Drop guard); every wait polls with a deadline.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harbinger_actuate::redis::{RedisClient, Reply};
use harbinger_actuate::resource::redis::{RedisResource, RedisSpec};
use harbinger_actuate::resource::{ResourceDriver, ResourceError, ResourceSpec, driver_for};
use serde_json::{Value, json};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const TIMEOUT: Duration = Duration::from_secs(5);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A process killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `redis-server` on a free port answering PING, and its address.
async fn start_server(dir: &Path) -> (Proc, String) {
    assert!(Path::new(REDIS_SERVER).exists(), "{REDIS_SERVER} not found: install the Debian package redis-server");
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let child = Command::new(REDIS_SERVER)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir"])
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(format!("redis-{port}.log")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start redis-server");
    let proc = Proc(child);
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers(&addr).await {
        assert!(Instant::now() < deadline, "redis-server on {addr} did not answer PING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (proc, addr)
}

async fn answers(addr: &str) -> bool {
    match RedisClient::connect(addr, Duration::from_millis(200)).await {
        Ok(mut c) => c.command(&["PING"]).await.ok() == Some(Reply::Status("PONG".into())),
        Err(_) => false,
    }
}

async fn cmd(addr: &str, args: &[&str]) -> Reply {
    RedisClient::connect(addr, TIMEOUT).await.unwrap().command(args).await.unwrap()
}

async fn config_get(addr: &str, param: &str) -> String {
    match cmd(addr, &["CONFIG", "GET", param]).await {
        Reply::Array(Some(items)) => items[1].as_text().unwrap(),
        other => panic!("CONFIG GET {param}: {other:?}"),
    }
}

fn driver(spec: Value) -> Arc<dyn ResourceDriver> {
    let mut spec = spec;
    spec["kind"] = json!("redis");
    spec["timeout"] = json!("5s");
    let spec: ResourceSpec = serde_json::from_value(spec).unwrap();
    driver_for("cache", &spec, Path::new(".")).unwrap()
}

#[tokio::test]
async fn keys_and_config_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr) = start_server(tmp.path()).await;
    cmd(&addr, &["SET", "a", "1"]).await;
    cmd(&addr, &["SET", "unmanaged", "x"]).await;
    let d = driver(json!({"endpoint": addr, "keys": ["a", "b"], "config": ["maxmemory-policy", "hz"]}));
    assert_eq!(d.profile(), vec!["/keys".to_string(), "/config".to_string()]);
    let snapshot = d.read().await.unwrap();
    assert_eq!(snapshot, json!({"keys": {"a": "1"}, "config": {"maxmemory-policy": "noeviction", "hz": "10"}}));

    // Change: a new value, a new declared key, a key only the state names, both parameters.
    let desired = json!({
        "keys": {"a": "2", "b": "ünï code", "c": "from the state"},
        "config": {"maxmemory-policy": "allkeys-lru", "hz": "20"}
    });
    d.manage_state(&desired);
    assert_eq!(d.read().await.unwrap(), snapshot, "c does not exist yet: still absent");
    d.write(&desired).await.unwrap();
    assert_eq!(d.read().await.unwrap(), desired);
    assert_eq!(config_get(&addr, "hz").await, "20");

    // Restore: b and c did not exist, so they are deleted.
    d.write_restore(&snapshot).await.unwrap();
    assert_eq!(d.read().await.unwrap(), snapshot);
    assert_eq!(cmd(&addr, &["EXISTS", "b", "c"]).await, Reply::Integer(0));
    assert_eq!(cmd(&addr, &["GET", "unmanaged"]).await, Reply::Bulk(Some(b"x".to_vec())), "unmanaged keys are left alone");
}

#[tokio::test]
async fn manage_keys_widens_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr) = start_server(tmp.path()).await;
    cmd(&addr, &["SET", "extra", "old"]).await;
    let spec: RedisSpec = serde_json::from_value(json!({"endpoint": addr, "timeout": "5s"})).unwrap();
    let r = RedisResource::new("cache", &spec).unwrap();
    assert_eq!(r.read().await.unwrap(), json!({"keys": {}, "config": {}}));
    r.manage_keys(["extra".to_string()]);
    let snapshot = r.read().await.unwrap();
    assert_eq!(snapshot, json!({"keys": {"extra": "old"}, "config": {}}));
    r.write(&json!({"keys": {"extra": "new"}, "config": {}})).await.unwrap();
    r.write(&snapshot).await.unwrap();
    assert_eq!(cmd(&addr, &["GET", "extra"]).await, Reply::Bulk(Some(b"old".to_vec())));
}

#[tokio::test]
async fn a_managed_key_absent_from_the_state_is_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr) = start_server(tmp.path()).await;
    cmd(&addr, &["SET", "a", "1"]).await;
    cmd(&addr, &["SET", "b", "2"]).await;
    let d = driver(json!({"endpoint": addr, "keys": ["a", "b"]}));
    d.write(&json!({"keys": {"b": "3"}, "config": {}})).await.unwrap();
    assert_eq!(d.read().await.unwrap(), json!({"keys": {"b": "3"}, "config": {}}));
    assert_eq!(cmd(&addr, &["EXISTS", "a"]).await, Reply::Integer(0));
}

#[tokio::test]
async fn bad_states_and_other_types_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr) = start_server(tmp.path()).await;
    cmd(&addr, &["LPUSH", "list", "x"]).await;
    let d = driver(json!({"endpoint": addr, "keys": ["a"], "config": ["hz"]}));
    let before = d.read().await.unwrap();

    let err = d.write(&json!({"keys": {}, "config": {"maxmemory": "1"}})).await.unwrap_err();
    assert!(matches!(err, ResourceError::State { .. }), "{err}");
    assert!(err.to_string().contains("maxmemory") && err.to_string().contains("not declared"), "{err}");

    let err = d.write(&json!({"keys": {"a": 5}, "config": {}})).await.unwrap_err();
    assert!(matches!(err, ResourceError::State { .. }) && err.to_string().contains("/keys/a"), "{err}");
    let err = d.write(&json!({"keys": {}, "other": {}})).await.unwrap_err();
    assert!(matches!(err, ResourceError::State { .. }), "{err}");
    assert_eq!(d.read().await.unwrap(), before, "refused writes change nothing");

    let list = driver(json!({"endpoint": addr, "keys": ["list"]}));
    let err = list.read().await.unwrap_err();
    assert!(matches!(err, ResourceError::Io { .. }), "{err}");
    assert!(err.to_string().contains("\"list\"") && err.to_string().contains("list: only string"), "{err}");
}

#[tokio::test]
async fn staging_starts_a_server_of_its_own_and_stops_it_on_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr) = start_server(tmp.path()).await;
    cmd(&addr, &["SET", "a", "live"]).await;
    let d = driver(json!({"endpoint": addr, "keys": ["a"], "config": ["maxmemory-policy"]}));
    let live = d.read().await.unwrap();
    let desired = json!({"keys": {"a": "staged", "b": "new"}, "config": {"maxmemory-policy": "allkeys-lfu"}});
    let staged = d.stage(&desired).await.unwrap().unwrap();
    let at = staged.location.clone();
    assert!(at.starts_with("127.0.0.1:") && at != addr, "{at}");
    assert_eq!(d.read().await.unwrap(), live, "live untouched");
    assert_eq!(cmd(&at, &["GET", "a"]).await, Reply::Bulk(Some(b"staged".to_vec())));
    assert_eq!(cmd(&at, &["GET", "b"]).await, Reply::Bulk(Some(b"new".to_vec())));
    assert_eq!(config_get(&at, "maxmemory-policy").await, "allkeys-lfu");
    assert_eq!(config_get(&addr, "maxmemory-policy").await, "noeviction");
    drop(staged);
    let deadline = Instant::now() + Duration::from_secs(5);
    while RedisClient::connect(&at, Duration::from_millis(200)).await.is_ok() {
        assert!(Instant::now() < deadline, "staging server on {at} still accepts connections");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn staging_on_a_given_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (_live, addr) = start_server(tmp.path()).await;
    let (_staging, staging) = start_server(tmp.path()).await;
    let d = driver(json!({"endpoint": addr, "keys": ["a"], "staging": staging}));
    let staged = d.stage(&json!({"keys": {"a": "s"}, "config": {}})).await.unwrap().unwrap();
    assert_eq!(staged.location, staging);
    assert_eq!(cmd(&staging, &["GET", "a"]).await, Reply::Bulk(Some(b"s".to_vec())));
    assert_eq!(cmd(&addr, &["EXISTS", "a"]).await, Reply::Integer(0));
    drop(staged);
    assert!(answers(&staging).await, "a given staging server is not stopped");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_named() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = driver(json!({"endpoint": addr, "keys": ["a"]}));
    for err in [d.read().await.unwrap_err(), d.write(&json!({"keys": {}})).await.unwrap_err()] {
        assert!(matches!(err, ResourceError::Io { .. }), "{err}");
        assert!(err.to_string().contains(&addr) && err.to_string().starts_with("resource cache:"), "{err}");
    }
    let spec: ResourceSpec = serde_json::from_value(json!({"kind": "redis", "endpoint": "nohostport"})).unwrap();
    assert!(matches!(driver_for("cache", &spec, Path::new(".")), Err(ResourceError::Spec { .. })));
}
