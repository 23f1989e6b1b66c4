//! The exec actuator with real `sh -c` scripts: stdin JSON, argument templates, exit-code
//! mapping, the creation report, timeouts killing the whole process group, bounded
//! output, a missing program.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use harbinger_actuate::exec::{ExecActuator, ExecConfig};
use harbinger_actuate::layers::Timeout;
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_core::{JournalStatus, Resource};
use harbinger_engine::{Actuator, ActuatorRequest};
use harbinger_plan::ActionKind;

fn shadow() -> Shadow {
    Shadow {
        id: "db-3@h042#1000".into(),
        resource: "db-3".into(),
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
        id: "db-3".into(),
        kind: "database".into(),
        host: "h017".into(),
        criticality: 3,
        cpu_cores: 1.0,
        mem_gb: 1.0,
        depends_on: vec![],
        state: serde_json::json!({"endpoint": "10.0.0.17:6379"}),
    }
}

fn create() -> ActuatorRequest {
    let s = shadow();
    ActuatorRequest {
        key: "create:db-3@h042#1000".into(),
        attempt: 2,
        action: ActionKind::CreateShadow { shadow: s.clone() },
        shadow: s,
        resource: Some(resource()),
    }
}

fn retire() -> ActuatorRequest {
    let s = shadow();
    ActuatorRequest {
        key: "retire:db-3@h042#1000".into(),
        attempt: 1,
        action: ActionKind::RetireShadow { shadow: s.id.clone(), state: ShadowState::Retired },
        shadow: s,
        resource: None,
    }
}

/// `sh -c script` with `$1...` from `args`.
fn sh(script: &str, args: &[&str]) -> ExecConfig {
    let mut all = vec!["-c".to_string(), script.to_string(), "sh".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    ExecConfig::new("sh", all).timeout(Duration::from_secs(10))
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
async fn stdin_carries_the_request_as_json_and_args_are_templated() {
    let dir = tempfile::tempdir().unwrap();
    let stdin = dir.path().join("stdin.json");
    let args = dir.path().join("args");
    let cfg = sh(
        r#"cat > "$STDIN_FILE"; echo "$1|$2|$3|$4|$5|$6|$7" > "$ARGS_FILE""#,
        &["{action}", "{key}", "{shadow}", "{resource}", "{host}", "{primary}", "{unknown}"],
    )
    .env("STDIN_FILE", stdin.to_str().unwrap())
    .env("ARGS_FILE", args.to_str().unwrap());
    let out = ExecActuator::new(cfg).apply(&create()).await;
    assert_eq!(out.status, JournalStatus::Applied, "{}", out.detail);
    assert_eq!(out.detail, "exit 0");

    let body: serde_json::Value = serde_json::from_slice(&std::fs::read(&stdin).unwrap()).unwrap();
    assert_eq!(body["key"], "create:db-3@h042#1000");
    assert_eq!(body["attempt"], 2);
    assert_eq!(body["action"]["type"], "create_shadow");
    assert_eq!(body["action"]["shadow"]["id"], "db-3@h042#1000");
    assert_eq!(body["shadow"]["host"], "h042");
    assert_eq!(body["resource"]["state"]["endpoint"], "10.0.0.17:6379");
    assert_eq!(
        std::fs::read_to_string(&args).unwrap().trim(),
        "create_shadow|create:db-3@h042#1000|db-3@h042#1000|db-3|h042|h017|{unknown}"
    );
}

#[tokio::test]
async fn exit_codes_map_to_outcomes() {
    let cases = [
        ("echo created it; exit 0", JournalStatus::Applied, "created it"),
        ("exit 0", JournalStatus::Applied, "exit 0"),
        ("echo was there; exit 3", JournalStatus::AlreadyApplied, "was there"),
        ("exit 3", JournalStatus::AlreadyApplied, "exit 3: already applied"),
        ("echo maintenance window; exit 4", JournalStatus::Skipped, "maintenance window"),
        ("echo out; echo disk full >&2; exit 7", JournalStatus::Failed, "`sh` exited with code 7: disk full"),
        ("echo only stdout; exit 1", JournalStatus::Failed, "`sh` exited with code 1: only stdout"),
        ("kill -9 $$", JournalStatus::Failed, "`sh` killed by signal 9"),
    ];
    for (script, status, detail) in cases {
        let out = ExecActuator::new(sh(script, &[])).apply(&retire()).await;
        assert_eq!((out.status, out.detail.as_str()), (status, detail), "{script}");
        assert_eq!(out.endpoint, None);
    }
}

#[tokio::test]
async fn a_creation_reports_its_endpoint_and_state_on_the_last_line() {
    let script = r#"echo "replica starting"; echo '{"endpoint":"10.0.0.5:6380","state":"syncing"}'"#;
    let out = ExecActuator::new(sh(script, &[])).apply(&create()).await;
    assert_eq!(out.status, JournalStatus::Applied);
    assert_eq!(out.endpoint.as_deref(), Some("10.0.0.5:6380"));
    assert_eq!(out.reached, Some(ShadowState::Syncing));

    let out = ExecActuator::new(sh(r#"echo '{"endpoint":"10.0.0.5:6380"}'; exit 3"#, &[])).apply(&create()).await;
    assert_eq!(out.status, JournalStatus::AlreadyApplied);
    assert_eq!(out.endpoint.as_deref(), Some("10.0.0.5:6380"));
    assert_eq!(out.reached, None);

    // Only creations report; a report on another line than the last is just text.
    let out = ExecActuator::new(sh(script, &[])).apply(&retire()).await;
    assert_eq!((out.endpoint, out.reached), (None, None));
    let out = ExecActuator::new(sh(r#"echo '{"endpoint":"x:1"}'; echo done"#, &[])).apply(&create()).await;
    assert_eq!(out.endpoint, None);
}

#[tokio::test]
async fn a_timeout_kills_the_process_group_grandchildren_included() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let cfg =
        sh(r#"sleep 30 & echo $! > "$1"; echo working >&2; sleep 30"#, &[pidfile.to_str().unwrap()]).timeout(Duration::from_millis(500));
    let start = Instant::now();
    let out = ExecActuator::new(cfg).apply(&create()).await;
    let took = start.elapsed();
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.starts_with("`sh` timed out after 500ms, process group killed"), "{}", out.detail);
    assert!(out.detail.contains("working"), "stderr is kept: {}", out.detail);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let grandchild = read_pid(&pidfile);
    assert!(wait_gone(grandchild).await, "the forked `sleep 30` ({grandchild}) survived");
}

#[tokio::test]
async fn a_dropped_apply_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let exec =
        ExecActuator::new(sh(r#"sleep 30 & echo $! > "$1"; sleep 30"#, &[pidfile.to_str().unwrap()]).timeout(Duration::from_secs(60)));
    let out = Timeout::new(exec, Duration::from_millis(300)).apply(&create()).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.contains("timed out after 300ms"), "{}", out.detail);
    let grandchild = read_pid(&pidfile);
    assert!(wait_gone(grandchild).await, "the forked `sleep 30` ({grandchild}) survived the dropped future");
}

#[tokio::test]
async fn output_is_bounded() {
    let out = ExecActuator::new(sh("head -c 200000 /dev/zero | tr '\\0' x; echo; echo end", &[])).apply(&retire()).await;
    assert_eq!(out.status, JournalStatus::Applied);
    assert!(out.detail.len() < 4096 + 64, "{} bytes", out.detail.len());
    assert!(out.detail.starts_with("[… ") && out.detail.ends_with("end"), "{}…", &out.detail[..40]);

    let cfg = sh("head -c 200000 /dev/zero | tr '\\0' e >&2; exit 9", &[]).output_limit(100);
    let out = ExecActuator::new(cfg).apply(&retire()).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.len() < 200, "{} bytes: {}", out.detail.len(), out.detail);
    assert!(out.detail.contains("bytes dropped"), "{}", out.detail);
}

#[tokio::test]
async fn a_background_daemon_holding_stdout_does_not_hang_the_action() {
    // The script exits at once but leaves a child with its stdout open.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let start = Instant::now();
    let out = ExecActuator::new(sh(r#"sleep 5 & echo $! > "$1"; echo started"#, &[pidfile.to_str().unwrap()])).apply(&retire()).await;
    assert_eq!(out.status, JournalStatus::Applied);
    assert_eq!(out.detail, "started");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    let daemon = read_pid(&pidfile);
    assert!(!gone(daemon), "what the command started on purpose keeps running");
    let _ = std::process::Command::new("kill").arg(daemon.to_string()).status();
}

#[tokio::test]
async fn a_missing_program_fails_naming_it() {
    let out = ExecActuator::new(ExecConfig::new("/nonexistent/harbinger-provision", ["{key}"])).apply(&create()).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.contains("/nonexistent/harbinger-provision"), "{}", out.detail);
    assert_eq!(ExecActuator::new(ExecConfig::new("true", Vec::<String>::new())).name(), "exec");
}
