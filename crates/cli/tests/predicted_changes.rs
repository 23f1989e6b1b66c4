//! Predicted changes through a running `harbinger serve`: templates renamed into
//! `change.watch_dir` are submitted (dry run on the shadow copies, then applied or held)
//! and moved to `done/` with their report.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Serve;
use serde_json::Value;

/// The live file's first content.
const LIVE: &str = "{\n  \"server\": {\n    \"port\": 8080,\n    \"workers\": 4\n  }\n}\n";

/// A template raising the workers of the file at `path` to `workers`, with `extra`
/// appended (validation tests).
fn template(path: &Path, workers: u32, extra: &str) -> String {
    format!(
        "stack: shop\ndescription: more web workers\nresources:\n  - id: web-config\n    kind: file\n    path: {}\n    desired:\n      content: {{server: {{port: 8080, workers: {workers}}}}}\n{extra}",
        path.display()
    )
}

/// Writes `text` beside `dir` and renames it in as `name` (never read half-written).
fn drop_in(dir: &Path, name: &str, text: &str) {
    let staging = dir.parent().expect("parent").join(format!(".{name}.tmp"));
    std::fs::write(&staging, text).expect("write the template");
    std::fs::rename(&staging, dir.join(name)).expect("rename into the watched directory");
}

/// Waits (at most 30 s) for `path`, then reads it as JSON.
fn wait_for_report(path: &Path, error: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        if let Ok(e) = std::fs::read_to_string(error) {
            panic!("the submission was refused: {e}");
        }
        assert!(Instant::now() < deadline, "no {} within 30 s", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Written in one call after the file moved to done/: retry a torn read briefly.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).expect("read the report");
        match serde_json::from_str(&text) {
            Ok(v) => return v,
            Err(e) => assert!(Instant::now() < deadline, "the report is not JSON ({e}): {text}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("JSON")
}

#[test]
fn serve_submits_templates_renamed_into_the_watch_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let incoming = tmp.path().join("incoming");
    std::fs::create_dir_all(&incoming).expect("incoming");
    let live = tmp.path().join("web.json");
    let held_live = tmp.path().join("other.json");
    std::fs::write(&live, LIVE).expect("web.json");
    std::fs::write(&held_live, LIVE).expect("other.json");
    let config = tmp.path().join("harbinger.toml");
    std::fs::write(
        &config,
        format!("[change]\nwatch_dir = {:?}\nwatch_every = \"100ms\"\nmonitor_for = \"0s\"\n", incoming.display().to_string()),
    )
    .expect("config");
    let serve = Serve::start(&data, &["--config", config.to_str().expect("utf-8 path")]);
    let done: PathBuf = incoming.join("done");

    // Positive: applied to the live file.
    drop_in(&incoming, "more-workers.yaml", &template(&live, 8, ""));
    let report = wait_for_report(&done.join("more-workers.yaml.report.json"), &done.join("more-workers.yaml.error.txt"));
    assert_eq!(report["prediction"], "positive", "{report}");
    assert_eq!(report["status"], "applied", "{report}");
    assert_eq!(report["apply"]["applied"], serde_json::json!(["web-config"]), "{report}");
    assert_eq!(read_json(&live)["server"]["workers"], 8, "the live file changed");
    assert!(done.join("more-workers.yaml").exists(), "the template moved to done/");
    assert!(!incoming.join("more-workers.yaml").exists());

    // Negative (its validation fails on the shadow copy): held, the live file unchanged.
    let failing = template(&held_live, 16, "validation:\n  - {name: config loads, type: command, run: [/bin/false]}\n");
    drop_in(&incoming, "risky.yaml", &failing);
    let report = wait_for_report(&done.join("risky.yaml.report.json"), &done.join("risky.yaml.error.txt"));
    assert_eq!((report["prediction"].as_str(), report["status"].as_str()), (Some("negative"), Some("held")), "{report}");
    assert!(!report["pre_provisioned"].as_array().expect("pre_provisioned").is_empty(), "{report}");
    assert_eq!(std::fs::read_to_string(&held_live).expect("read"), LIVE, "nothing live moved");

    assert_eq!(serve.terminate(), 0, "a clean stop on SIGTERM");
}
