//! The redis actuator against real `redis-server` processes (Debian package
//! `redis-server`): a replica syncs, takes the data, is promoted when the primary is
//! killed, and is stopped when retired.
//!
//! Every server runs on 127.0.0.1 on a port free at test time, in a temp dir, and is
//! killed at the end (a Drop guard); every wait polls with a deadline.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harbinger_actuate::redis::{RedisActuator, RedisClient, RedisConfig, Reply};
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_core::{JournalStatus, Resource};
use harbinger_engine::{Actuator, ActuatorOutcome, ActuatorRequest};
use harbinger_plan::ActionKind;
use serde_json::json;

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const TIMEOUT: Duration = Duration::from_secs(5);

fn require(path: &str, package: &str) {
    assert!(Path::new(path).exists(), "{path} not found: install the Debian package `{package}` (apt-get install {package})");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A process killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Proc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A primary `redis-server` on `port`, answering PING.
async fn start_primary(dir: &Path, port: u16) -> Proc {
    require(REDIS_SERVER, "redis-server");
    use std::os::unix::process::CommandExt;
    let child = Command::new(REDIS_SERVER)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--repl-diskless-sync-delay", "0", "--dir"])
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("primary.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start redis-server");
    let proc = Proc(child);
    let addr = format!("127.0.0.1:{port}");
    until("the primary answers PING", Duration::from_secs(10), || async {
        let mut c = RedisClient::connect(&addr, TIMEOUT).await.ok()?;
        (c.command(&["PING"]).await.ok()? == Reply::Status("PONG".into())).then_some(())
    })
    .await;
    proc
}

/// Polls `f` until it answers `Some`, at most `bound`.
async fn until<T, F, Fut>(what: &str, bound: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {bound:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn resource(endpoint: Option<&str>) -> Resource {
    let mut state = json!({"haproxy": {"backend": "be_redis", "primary": "primary", "shadow": "shadow"}});
    if let Some(e) = endpoint {
        state["endpoint"] = json!(e);
    }
    serde_json::from_value(json!({"id": "cache-1", "kind": "redis", "host": "h1", "criticality": 3, "state": state})).unwrap()
}

fn shadow(id: &str, endpoint: Option<&str>) -> Shadow {
    serde_json::from_value(json!({
        "id": id, "resource": "cache-1", "primary": "h1", "host": "h2", "state": "planned",
        "causes": [{"type": "manual", "by": "test"}], "priority": 1.0, "cpu_cores": 1.0, "mem_gb": 1.0,
        "created_at": 0, "updated_at": 0, "last_used_at": 0, "expires_at": null, "endpoint": endpoint,
    }))
    .unwrap()
}

fn request(kind: &str, shadow: &Shadow, resource: Option<&Resource>) -> ActuatorRequest {
    let id = shadow.id.clone();
    let action = match kind {
        "create" => ActionKind::CreateShadow { shadow: shadow.clone() },
        "promote" => ActionKind::PromoteShadow { shadow: id },
        "retire" => ActionKind::RetireShadow { shadow: id, state: ShadowState::Retired },
        "expire" => ActionKind::ExpireShadow { shadow: id },
        other => panic!("no action {other}"),
    };
    ActuatorRequest { key: format!("{kind}:{}", shadow.id), attempt: 1, action, shadow: shadow.clone(), resource: resource.cloned() }
}

fn actuator(dir: &Path) -> RedisActuator {
    let mut config = RedisConfig::new(dir.join("shadows"));
    config.timeout = TIMEOUT;
    RedisActuator::new(config)
}

fn assert_status(out: &ActuatorOutcome, status: JournalStatus) {
    assert_eq!(out.status, status, "outcome: {out:?}");
}

async fn refused(addr: &str) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_syncs_and_takes_over_when_the_primary_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let primary_addr = format!("127.0.0.1:{port}");
    let mut primary = start_primary(tmp.path(), port).await;
    let mut c = RedisClient::connect(&primary_addr, TIMEOUT).await.unwrap();
    for i in 0..1000 {
        let (k, v) = (format!("key:{i}"), format!("value:{i}"));
        assert_eq!(c.command(&["SET", &k, &v]).await.unwrap(), Reply::Status("OK".into()));
    }

    let act = actuator(tmp.path());
    let res = resource(Some(&primary_addr));
    let mut sh = shadow("cache-1@h2#1", None);

    let out = act.apply(&request("create", &sh, Some(&res))).await;
    assert_status(&out, JournalStatus::Applied);
    assert_eq!(out.reached, Some(ShadowState::Syncing));
    let endpoint = out.endpoint.clone().expect("an endpoint");
    assert!(endpoint.starts_with("127.0.0.1:") && endpoint != primary_addr, "{endpoint}");
    sh.endpoint = Some(endpoint.clone());

    // The same action again: the same replica.
    let again = act.apply(&request("create", &sh, Some(&res))).await;
    assert_status(&again, JournalStatus::AlreadyApplied);
    assert_eq!(again.endpoint.as_deref(), Some(endpoint.as_str()));

    until("the replica is in sync", Duration::from_secs(20), || async {
        (act.sync_state(&sh, Some(&res)).await.ok()? == ShadowState::Ready).then_some(())
    })
    .await;
    let mut r = RedisClient::connect(&endpoint, TIMEOUT).await.unwrap();
    assert_eq!(r.command(&["DBSIZE"]).await.unwrap(), Reply::Integer(1000));
    assert_eq!(r.command(&["GET", "key:999"]).await.unwrap(), Reply::Bulk(Some(b"value:999".to_vec())));
    assert_eq!(r.role().await.unwrap(), "slave");

    primary.kill();
    until("the replica sees its link down", Duration::from_secs(10), || async {
        (act.sync_state(&sh, Some(&res)).await.ok()? == ShadowState::Syncing).then_some(())
    })
    .await;

    let out = act.apply(&request("promote", &sh, Some(&res))).await;
    assert_status(&out, JournalStatus::Applied);
    assert!(out.detail.contains("promoted to master"), "{}", out.detail);
    eprintln!("promote: {}", out.detail);
    let mut r = RedisClient::connect(&endpoint, TIMEOUT).await.unwrap();
    assert_eq!(r.role().await.unwrap(), "master");
    assert_eq!(r.command(&["SET", "after", "failover"]).await.unwrap(), Reply::Status("OK".into()));
    assert_eq!(r.command(&["DBSIZE"]).await.unwrap(), Reply::Integer(1001));

    let out = act.apply(&request("promote", &sh, Some(&res))).await;
    assert_status(&out, JournalStatus::AlreadyApplied);

    let out = act.apply(&request("retire", &sh, Some(&res))).await;
    assert_status(&out, JournalStatus::Applied);
    assert!(out.detail.contains("SHUTDOWN NOSAVE"), "{}", out.detail);
    until("the replica's port is closed", Duration::from_secs(5), || async { refused(&endpoint).await.then_some(()) }).await;
    assert!(!act.replica_dir(&sh.id).exists(), "the replica's directory is removed");
    let out = act.apply(&request("expire", &sh, Some(&res))).await;
    assert_status(&out, JournalStatus::AlreadyApplied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_of_a_dead_primary_stays_syncing_and_dies_with_the_actuator() {
    require(REDIS_SERVER, "redis-server");
    let tmp = tempfile::tempdir().unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    let act = actuator(tmp.path());
    let res = resource(Some(&dead));
    let mut sh = shadow("cache-1@h2#2", None);

    let out = act.apply(&request("create", &sh, Some(&res))).await;
    assert_status(&out, JournalStatus::Applied);
    let endpoint = out.endpoint.expect("an endpoint");
    sh.endpoint = Some(endpoint.clone());

    // Bounded check: asked 20 times over 2 s, never ready.
    for _ in 0..20 {
        assert_eq!(act.sync_state(&sh, Some(&res)).await, Ok(ShadowState::Syncing));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    drop(act);
    until("the replica is killed with the actuator", Duration::from_secs(5), || async { refused(&endpoint).await.then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_actuator_finds_the_running_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let primary_addr = format!("127.0.0.1:{port}");
    let _primary = start_primary(tmp.path(), port).await;
    let res = resource(Some(&primary_addr));
    let sh = shadow("cache-1@h2#3", None);

    let first = actuator(tmp.path());
    let out = first.apply(&request("create", &sh, Some(&res))).await;
    assert_status(&out, JournalStatus::Applied);
    let endpoint = out.endpoint.expect("an endpoint");

    // As after a restart of harbinger with the same data_dir: no second replica.
    let second = actuator(tmp.path());
    let out = second.apply(&request("create", &sh, Some(&res))).await;
    assert_status(&out, JournalStatus::AlreadyApplied);
    assert_eq!(out.endpoint.as_deref(), Some(endpoint.as_str()));
    assert_eq!(second.endpoint_of(&sh.id).await.as_deref(), Some(endpoint.as_str()));

    let out = second.apply(&request("retire", &sh, Some(&res))).await;
    assert_status(&out, JournalStatus::Applied);
    until("the replica's port is closed", Duration::from_secs(5), || async { refused(&endpoint).await.then_some(()) }).await;
}

#[tokio::test]
async fn refusals_name_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let sh = shadow("cache-1@h2#4", None);

    // No redis-server at the configured path: failed, naming the package.
    let mut config = RedisConfig::new(tmp.path());
    config.redis_server = "/nonexistent/redis-server".into();
    let act = RedisActuator::new(config);
    let dead = format!("127.0.0.1:{}", free_port());
    let out = act.apply(&request("create", &sh, Some(&resource(Some(&dead))))).await;
    assert_status(&out, JournalStatus::Failed);
    assert!(out.detail.contains("/nonexistent/redis-server") && out.detail.contains("Debian package redis-server"), "{}", out.detail);

    // No primary endpoint, no resource: skipped, saying why.
    let act = actuator(tmp.path());
    let out = act.apply(&request("create", &sh, Some(&resource(None)))).await;
    assert_status(&out, JournalStatus::Skipped);
    assert!(out.detail.contains("state.endpoint"), "{}", out.detail);
    let out = act.apply(&request("create", &sh, None)).await;
    assert_status(&out, JournalStatus::Skipped);

    // Nothing runs for the shadow: its recorded endpoint is unreachable -> Err.
    let gone = shadow("cache-1@h2#4", Some(&dead));
    let err = act.sync_state(&gone, None).await.unwrap_err();
    assert!(err.contains(&dead), "{err}");
    let out = act.apply(&request("promote", &gone, None)).await;
    assert_status(&out, JournalStatus::Failed);
    assert!(out.detail.contains(&dead), "{}", out.detail);
    assert!(act.sync_state(&shadow("x", None), None).await.is_err());
    let out = act.apply(&request("retire", &gone, None)).await;
    assert_status(&out, JournalStatus::AlreadyApplied);
}
