//! End to end with real components: `harbinger demo canary --json` puts HAProxy in front
//! of version 1 of a small HTTP service, starts version 2 beside it as a shadow stack,
//! splits a bounded load between them, judges them on HAProxy's statistics, and promotes
//! version 2 or rolls it back. These tests hold the story to what the backends saw (the
//! load generator counts the answers of each version), to the record written for the
//! rollout, and to `harbinger rollout status`.
//!
//! Needs `haproxy` (Debian package; `.ci/run` installs it).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs `harbinger demo canary --json --dir DIR EXTRA` (bounded by 90 s) and parses the
/// last line.
fn demo(dir: &Path, extra: &[&str]) -> Value {
    let mut child = Command::new(common::bin())
        .args(["demo", "canary", "--json", "--dir"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start harbinger demo canary");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _k = child.kill();
            let _w = child.wait();
            panic!("harbinger demo canary did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo canary failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().expect("a last line")).expect("the last line is JSON")
}

fn record(dir: &Path, report: &Value) -> Value {
    let id = report["rollout"].as_str().expect("rollout id");
    serde_json::from_slice(&std::fs::read(dir.join("rollouts").join(format!("{id}.json"))).expect("the record")).expect("JSON record")
}

fn status(data: &Path, id: &str) -> String {
    let out = Command::new(common::bin()).arg("--data-dir").arg(data).args(["rollout", "status", id]).output().expect("rollout status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_healthy_version_is_judged_at_each_step_and_promoted() {
    let data = tempfile::tempdir().expect("tempdir");
    let report = demo(&data.path().join("rollouts"), &[]);
    assert_eq!(report["decision"], "promoted", "{report}");
    let judgements = report["judgements"].as_array().expect("judgements");
    let shares: Vec<u64> = judgements.iter().map(|j| j["share"].as_u64().expect("share")).collect();
    assert_eq!(shares, [5, 5, 25, 25, 50, 50], "two passing judgements at each step: {report}");
    assert!(judgements.iter().all(|j| j["verdict"] == "pass"), "{report}");
    // Over the whole run version 2 served between the first and the last step's share.
    let seen = report["traffic_share_seen"].as_f64().expect("share seen");
    assert!((0.10..0.45).contains(&seen), "share served by version 2: {seen}: {report}");
    let answers = &report["answers"];
    assert!(answers["v2"].as_u64().expect("v2") > 100, "{report}");
    assert_eq!(answers["failed"], 0, "no request failed: {report}");
    assert_eq!(answers["errors"], 0, "no error answer: {report}");
    assert_eq!(report["alert_events"], serde_json::json!(["rollout_promoted"]), "{report}");
    assert!(report["rollback_ms"].is_null());

    let rec = record(data.path(), &report);
    assert_eq!(rec["rollout"]["phase"], "promoted");
    assert_eq!(rec["rollout"]["share"], 100);
    assert_eq!(rec["scale"]["scope"], "version");
    for j in rec["judgements"].as_array().expect("judgements") {
        for w in j["windows"].as_array().expect("windows") {
            let (b, c) = (w["baseline"].as_array().expect("b").len(), w["canary"].as_array().expect("c").len());
            assert!(b >= 5 && c >= 5, "every KPI window holds samples of both stacks: {w}");
        }
    }
    let kinds: Vec<&str> = rec["events"].as_array().expect("events").iter().map(|e| e["kind"].as_str().expect("kind")).collect();
    assert!(kinds.contains(&"promoted") && kinds.contains(&"old_retired"), "{kinds:?}");

    let text = status(data.path(), report["rollout"].as_str().expect("id"));
    assert!(text.contains(": promoted (phase promoted, shadow share 100 %)"), "{text}");
    assert_eq!(text.matches("error_rate").count(), 6, "one error_rate line per judgement: {text}");
    assert!(text.contains("steps 5 % -> 25 % -> 50 % then 100 %"), "{text}");
}

#[test]
fn a_bad_version_fails_its_first_judgement_and_is_rolled_back_with_evidence_and_an_alert() {
    let data = tempfile::tempdir().expect("tempdir");
    let report = demo(&data.path().join("rollouts"), &["--bad-version"]);
    assert_eq!(report["decision"], "rolled_back", "{report}");
    let judgements = report["judgements"].as_array().expect("judgements");
    assert_eq!(judgements.len(), 1, "{report}");
    assert_eq!(judgements[0]["verdict"], "fail");
    assert_eq!(judgements[0]["share"], 5);
    // Version 2 got its 5 % and no more.
    let seen = report["traffic_share_seen"].as_f64().expect("share seen");
    assert!((0.02..0.09).contains(&seen), "share served by version 2: {seen}: {report}");
    let rollback_ms = report["rollback_ms"].as_f64().expect("rollback_ms");
    assert!(rollback_ms < 1000.0, "traffic back on version 1 within 1 s: {rollback_ms} ms");
    assert_eq!(report["answers"]["failed"], 0, "requests in flight on version 2 were drained, not cut: {report}");
    assert_eq!(report["alert_events"], serde_json::json!(["rollout_rolled_back"]), "{report}");
    let evidence = report["alert_evidence"].as_str().expect("the alert carries the judgement");
    assert!(evidence.contains("critical KPI failed: error_rate"), "{evidence}");

    let rec = record(data.path(), &report);
    let m = &rec["judgements"][0]["judgement"]["metrics"];
    let err = m.as_array().expect("metrics").iter().find(|m| m["name"] == "error_rate").expect("error_rate");
    assert_eq!(err["verdict"], "fail");
    assert!(err["p_value"].as_f64().expect("p") < 0.05, "{err}");
    assert!(err["canary_median"].as_f64().expect("canary") > err["baseline_median"].as_f64().expect("baseline"), "{err}");
    let kinds: Vec<&str> = rec["events"].as_array().expect("events").iter().map(|e| e["kind"].as_str().expect("kind")).collect();
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap_or_else(|| panic!("no {k} in {kinds:?}"));
    assert!(
        pos("rollback") < pos("shadow_removed") && pos("shadow_removed") < pos("alert_sent"),
        "traffic first, then removal, then alert: {kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "shadow_stopped").count(), 2, "both instances stopped: {kinds:?}");

    let text = status(data.path(), report["rollout"].as_str().expect("id"));
    assert!(text.contains(": rolled_back (phase rolled_back, shadow share 0 %)"), "{text}");
    assert!(text.contains("rollback: all traffic back on the live stack"), "{text}");
    assert!(text.contains("FAIL"), "{text}");
}

#[test]
fn status_of_an_unknown_or_malformed_id_names_it() {
    let data = tempfile::tempdir().expect("tempdir");
    for (id, says) in [("nope", "no rollout \"nope\""), ("../etc", "rollout id \"../etc\"")] {
        let out = Command::new(common::bin()).arg("--data-dir").arg(data.path()).args(["rollout", "status", id]).output().expect("run");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
}
