//! The `exec` resource kind with `sh` scripts in a temp dir that keep the state in a JSON
//! file: round trip, restore, staging, failing and slow commands.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harbinger_actuate::resource::{ResourceDriver, ResourceError, ResourceSpec, driver_for};
use serde_json::{Value, json};

const SCRIPT: &str = r#"#!/bin/sh
set -e
case "$1" in
  read) if [ -f state.json ]; then cat state.json; else echo '{}'; fi ;;
  apply) cat > state.json.tmp; mv state.json.tmp state.json; echo "apply $MODE" >> log ;;
  restore) cat > state.json.tmp; mv state.json.tmp state.json; echo "restore $MODE" >> log ;;
  stage) mkdir -p staged; cat > staged/state.json; echo "$PWD/staged"; echo "more output" ;;
  unstage) rm -rf "$2"; echo "unstage $2" >> log ;;
  fail) echo "first line" >&2; echo "something broke" >&2; exit 3 ;;
  garbage) echo "this is not json" ;;
esac
"#;

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("state.sh"), SCRIPT).unwrap();
    tmp
}

fn argv(verb: &str) -> Value {
    json!(["sh", "state.sh", verb])
}

fn driver(dir: &Path, extra: Value) -> Arc<dyn ResourceDriver> {
    let mut spec = json!({"kind": "exec", "read": argv("read"), "apply": argv("apply"), "env": {"MODE": "test"}, "timeout": "5s"});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let spec: ResourceSpec = serde_json::from_value(spec).unwrap();
    driver_for("svc", &spec, dir).unwrap()
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default()
}

#[tokio::test]
async fn state_round_trips_through_the_commands() {
    let tmp = setup();
    let d = driver(tmp.path(), json!({}));
    assert_eq!(d.kind(), "exec");
    assert_eq!(d.profile(), vec![String::new()]);
    assert_eq!(d.read().await.unwrap(), json!({}));
    let state = json!({"replicas": 3, "ratio": 0.5, "name": "ünï", "tags": ["a", "b"], "nested": {"x": null}});
    d.write(&state).await.unwrap();
    assert_eq!(d.read().await.unwrap(), state);
    // Without a restore command, restoring runs apply.
    d.write_restore(&json!({"replicas": 1})).await.unwrap();
    assert_eq!(d.read().await.unwrap(), json!({"replicas": 1}));
    assert_eq!(log(tmp.path()), "apply test\napply test\n", "env reaches the commands");
    assert!(d.stage(&state).await.unwrap().is_none(), "no stage command: not stageable");
}

#[tokio::test]
async fn write_restore_runs_the_restore_command() {
    let tmp = setup();
    let d = driver(tmp.path(), json!({"restore": argv("restore"), "profile": ["/replicas"]}));
    assert_eq!(d.profile(), vec!["/replicas".to_string()]);
    d.write(&json!({"replicas": 5})).await.unwrap();
    d.write_restore(&json!({"replicas": 2})).await.unwrap();
    assert_eq!(d.read().await.unwrap(), json!({"replicas": 2}));
    assert_eq!(log(tmp.path()), "apply test\nrestore test\n");
}

#[tokio::test]
async fn stage_prints_a_location_and_unstage_runs_on_drop() {
    let tmp = setup();
    let d = driver(tmp.path(), json!({"stage": argv("stage"), "unstage": argv("unstage")}));
    d.write(&json!({"v": 1})).await.unwrap();
    let staged = d.stage(&json!({"v": 2})).await.unwrap().unwrap();
    let at = tmp.path().join("staged");
    assert_eq!(Path::new(&staged.location).canonicalize().unwrap(), at.canonicalize().unwrap());
    let held: Value = serde_json::from_str(&std::fs::read_to_string(at.join("state.json")).unwrap()).unwrap();
    assert_eq!(held, json!({"v": 2}));
    assert_eq!(d.read().await.unwrap(), json!({"v": 1}), "live untouched");
    let location = staged.location.clone();
    drop(staged);
    assert!(!at.exists(), "unstage removed the copy");
    assert!(log(tmp.path()).contains(&format!("unstage {location}\n")), "{}", log(tmp.path()));
}

#[tokio::test]
async fn a_failing_command_is_named_with_its_status_and_stderr() {
    let tmp = setup();
    let d = driver(tmp.path(), json!({"apply": argv("fail")}));
    let err = d.write(&json!({})).await.unwrap_err();
    assert!(matches!(err, ResourceError::Io { op: "write", .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("sh state.sh fail") && msg.contains("code 3") && msg.contains("something broke"), "{msg}");

    let d = driver(tmp.path(), json!({"read": argv("garbage")}));
    let msg = d.read().await.unwrap_err().to_string();
    assert!(msg.contains("sh state.sh garbage") && msg.contains("no JSON") && msg.contains("this is not json"), "{msg}");

    let d = driver(tmp.path(), json!({"read": ["./no-such-program"]}));
    let msg = d.read().await.unwrap_err().to_string();
    assert!(msg.contains("no-such-program"), "{msg}");
}

#[tokio::test]
async fn a_command_past_the_timeout_is_killed_with_its_group() {
    let tmp = setup();
    let d = driver(tmp.path(), json!({"read": ["sh", "-c", "sleep 30 & echo $! > sleeper.pid; wait"], "timeout": "300ms"}));
    let start = Instant::now();
    let err = d.read().await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert!(err.to_string().contains("timed out"), "{err}");
    let pid = std::fs::read_to_string(tmp.path().join("sleeper.pid")).unwrap().trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // Gone, or a zombie waiting to be reaped: either way no longer running.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')) {
            break;
        }
        assert!(Instant::now() < deadline, "the background sleep {pid} still runs: {stat}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn bad_specs_are_refused() {
    let tmp = setup();
    for (extra, what) in [
        (json!({"read": []}), "read"),
        (json!({"timeout": "soon"}), "timeout"),
        (json!({"profile": ["replicas"]}), "profile"),
        (json!({"unstage": argv("unstage")}), "unstage"),
    ] {
        let mut spec = json!({"kind": "exec", "read": argv("read"), "apply": argv("apply")});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let spec: ResourceSpec = serde_json::from_value(spec).unwrap();
        let err = driver_for("svc", &spec, tmp.path()).unwrap_err();
        assert!(matches!(err, ResourceError::Spec { .. }) && err.to_string().contains(what), "{what}: {err}");
    }
}
