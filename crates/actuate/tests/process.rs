//! The process actuator with real processes (`python3 -m http.server`, `sh`): create,
//! health-checked endpoint, idempotent create, promote, retire, SIGKILL after the stop
//! timeout, commands that exit at once or never get healthy, kill on drop.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use harbinger_actuate::process::{HealthCheck, ProcessActuator, ProcessConfig, ProcessError};
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_core::{JournalStatus, Resource, ShadowId};
use harbinger_engine::{Actuator, ActuatorRequest};
use harbinger_plan::ActionKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn shadow() -> Shadow {
    Shadow {
        id: "web-1@h042#1000".into(),
        resource: "web-1".into(),
        primary: "h017".into(),
        host: "h042".into(),
        state: ShadowState::Planned,
        causes: vec![],
        priority: 0.5,
        cpu_cores: 1.0,
        mem_gb: 1.0,
        created_at: 1000,
        updated_at: 1000,
        last_used_at: 1000,
        expires_at: None,
        endpoint: None,
    }
}

fn resource() -> Resource {
    Resource {
        id: "web-1".into(),
        kind: "service".into(),
        host: "h017".into(),
        criticality: 3,
        cpu_cores: 1.0,
        mem_gb: 1.0,
        depends_on: vec![],
        state: serde_json::json!({"endpoint": "10.0.0.17:8080"}),
    }
}

fn request(kind: &str) -> ActuatorRequest {
    let s = shadow();
    let id = s.id.clone();
    let action = match kind {
        "create" => ActionKind::CreateShadow { shadow: s.clone() },
        "retire" => ActionKind::RetireShadow { shadow: id.clone(), state: ShadowState::Retired },
        "expire" => ActionKind::ExpireShadow { shadow: id.clone() },
        "promote" => ActionKind::PromoteShadow { shadow: id.clone() },
        _ => unreachable!(),
    };
    ActuatorRequest { key: format!("{kind}:{id}"), attempt: 1, action, shadow: s, resource: Some(resource()) }
}

fn http_server(dir: &Path) -> ProcessConfig {
    ProcessConfig::new(["python3", "-m", "http.server", "{port}", "--bind", "{host_addr}", "--directory", dir.to_str().unwrap()])
        .health(HealthCheck::Http { path: "/".into() })
        .health_timeout(Duration::from_secs(15))
        .stop_timeout(Duration::from_secs(5))
}

/// The status line of `GET /` at `endpoint`.
async fn get(endpoint: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(endpoint).await?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).lines().next().unwrap_or_default().to_string())
}

/// Whether `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) == Some("Z"),
    }
}

async fn wait_gone(pid: u32) -> bool {
    for _ in 0..100 {
        if gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn create_serves_a_healthy_endpoint_and_retire_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let act = ProcessActuator::new(http_server(dir.path())).unwrap();
    let id: ShadowId = shadow().id;

    let out = act.apply(&request("create")).await;
    assert_eq!(out.status, JournalStatus::Applied, "{}", out.detail);
    assert_eq!(out.reached, Some(ShadowState::Ready));
    let endpoint = out.endpoint.clone().unwrap();
    assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
    assert!(get(&endpoint).await.unwrap().contains(" 200 "), "the endpoint answers HTTP");
    assert_eq!(act.sync_state(&shadow(), None).await, Ok(ShadowState::Ready));
    let pid = act.pid(&id).await.unwrap();

    let again = act.apply(&request("create")).await;
    assert_eq!(again.status, JournalStatus::AlreadyApplied, "{}", again.detail);
    assert_eq!(again.endpoint.as_deref(), Some(endpoint.as_str()));
    assert_eq!(act.pid(&id).await, Some(pid), "no second process");

    let promoted = act.apply(&request("promote")).await;
    assert_eq!(promoted.status, JournalStatus::Applied);
    assert!(promoted.detail.starts_with("nothing to do"), "{}", promoted.detail);

    let retired = act.apply(&request("retire")).await;
    assert_eq!(retired.status, JournalStatus::Applied, "{}", retired.detail);
    assert!(retired.detail.contains("exited on SIGTERM"), "{}", retired.detail);
    assert!(get(&endpoint).await.is_err(), "the port is closed");
    assert!(wait_gone(pid).await);
    assert_eq!(act.pid(&id).await, None);
    assert_eq!(act.apply(&request("retire")).await.status, JournalStatus::AlreadyApplied);
    assert_eq!(act.sync_state(&shadow(), None).await, Ok(ShadowState::Failed));
    assert_eq!(act.apply(&request("promote")).await.status, JournalStatus::Failed);
}

#[tokio::test]
async fn templates_take_the_host_address_and_the_primary_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let script = format!(
        "echo {{endpoint_primary}} {{host_addr}} {{shadow}} > {}; exec python3 -m http.server {{port}} --bind {{host_addr}} --directory {}",
        seen.display(),
        dir.path().display()
    );
    let cfg = ProcessConfig::new(["sh", "-c", &script]).host_addr("h042", "127.0.0.2").health_timeout(Duration::from_secs(15));
    let act = ProcessActuator::new(cfg).unwrap();
    let out = act.apply(&request("create")).await;
    assert_eq!(out.status, JournalStatus::Applied, "{}", out.detail);
    let endpoint = out.endpoint.unwrap();
    assert!(endpoint.starts_with("127.0.0.2:"), "{endpoint}");
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "10.0.0.17:8080 127.0.0.2 web-1@h042#1000");

    let mut expired = request("expire");
    expired.resource = None;
    assert_eq!(act.apply(&expired).await.status, JournalStatus::Applied);

    // Without the primary's endpoint in the inventory the template cannot be rendered.
    let mut no_endpoint = request("create");
    no_endpoint.resource = None;
    let out = act.apply(&no_endpoint).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.contains("{endpoint_primary}"), "{}", out.detail);
}

#[tokio::test]
async fn a_command_that_exits_at_once_fails_with_its_stderr() {
    let cfg = ProcessConfig::new(["sh", "-c", "echo cannot listen on {port}: permission denied >&2; exit 2"]);
    let out = ProcessActuator::new(cfg).unwrap().apply(&request("create")).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.contains("exited (exit status: 2) before it was healthy"), "{}", out.detail);
    assert!(out.detail.contains("permission denied"), "{}", out.detail);

    let cfg = ProcessConfig::new(["/nonexistent/harbinger-svc", "{port}"]);
    let out = ProcessActuator::new(cfg).unwrap().apply(&request("create")).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.contains("/nonexistent/harbinger-svc"), "{}", out.detail);
}

#[tokio::test]
async fn a_command_that_never_gets_healthy_fails_after_the_timeout_and_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, forked) = (dir.path().join("leader"), dir.path().join("forked"));
    let script =
        format!("sleep 30 & echo $! > {}; echo $$ > {}; echo warming up >&2; exec sleep 30 # {{port}}", forked.display(), leader.display());
    let cfg = ProcessConfig::new(["sh", "-c", &script]).health_timeout(Duration::from_millis(500));
    let act = ProcessActuator::new(cfg).unwrap();
    let start = std::time::Instant::now();
    let out = act.apply(&request("create")).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.contains("not healthy at 127.0.0.1:") && out.detail.contains("within 500ms"), "{}", out.detail);
    assert!(out.detail.contains("process group killed") && out.detail.contains("warming up"), "{}", out.detail);
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    for pid in [read_pid(&leader), read_pid(&forked)] {
        assert!(wait_gone(pid).await, "{pid} survived");
    }
    assert_eq!(act.pid(&shadow().id).await, None);
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_after_the_stop_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!("trap '' TERM; exec python3 -m http.server {{port}} --bind 127.0.0.1 --directory {}", dir.path().display());
    let cfg = ProcessConfig::new(["sh", "-c", &script]).health_timeout(Duration::from_secs(15)).stop_timeout(Duration::from_millis(300));
    let act = ProcessActuator::new(cfg).unwrap();
    let out = act.apply(&request("create")).await;
    assert_eq!(out.status, JournalStatus::Applied, "{}", out.detail);
    let pid = act.pid(&shadow().id).await.unwrap();
    let out = act.apply(&request("retire")).await;
    assert_eq!(out.status, JournalStatus::Applied);
    assert!(out.detail.contains("no exit within 300ms of SIGTERM; killed"), "{}", out.detail);
    assert!(wait_gone(pid).await);
}

#[tokio::test]
async fn dropping_the_actuator_kills_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let act = ProcessActuator::new(http_server(dir.path())).unwrap();
    let out = act.apply(&request("create")).await;
    assert_eq!(out.status, JournalStatus::Applied, "{}", out.detail);
    let pid = act.pid(&shadow().id).await.unwrap();
    drop(act);
    assert!(wait_gone(pid).await, "{pid} survived the actuator");
}

#[test]
fn configurations_that_cannot_work_are_refused() {
    assert_eq!(ProcessActuator::new(ProcessConfig::new(Vec::<String>::new())).unwrap_err(), ProcessError::EmptyCommand);
    assert_eq!(ProcessActuator::new(ProcessConfig::new(["redis-server"])).unwrap_err(), ProcessError::NoPort);
    assert!(ProcessActuator::new(ProcessConfig::new(["redis-server"]).port(6390)).is_ok());
}
