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

/// A child process killed (and reaped) on drop.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _k = self.0.kill();
        let _w = self.0.wait();
    }
}

fn wait_tcp(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// KPIs from metrics the services send to harbinger (remote write), not only from HAProxy:
/// version 2 answers 30 ms slower; its instances report their latency under their own ids,
/// version 1 under `v1`; `harbinger rollout run` reads both from `serve`'s
/// `GET /api/v1/samples`, judges the latency KPI, and rolls back. The record is then
/// served by `serve` (`rollout status --url`).
#[test]
fn kpis_sent_to_harbinger_judge_a_slower_version_and_roll_it_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let serve = common::Serve::start(&data, &[]);
    let write = format!("{}/api/v1/write", serve.url);
    let v1 = format!("127.0.0.1:{}", common::free_port());
    let port = v1.rsplit_once(':').expect("port").1.to_string();
    let _v1 = Kill(
        Command::new(common::bin())
            .args(["demo-backend", "--port", &port, "--name", "v1", "--report", &write, "--report-host", "v1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("v1"),
    );
    wait_tcp(&v1);
    let sock = tmp.path().join("haproxy.sock");
    let front = format!("127.0.0.1:{}", common::free_port());
    let cfg = include_str!("../../../deploy/haproxy/canary.cfg.tmpl")
        .replace("{{stats_socket}}", &sock.display().to_string())
        .replace("{{bind}}", &front)
        .replace("{{live}}", &v1);
    std::fs::write(tmp.path().join("haproxy.cfg"), cfg).expect("haproxy.cfg");
    let _haproxy = Kill(
        Command::new("/usr/sbin/haproxy")
            .arg("-db")
            .arg("-f")
            .arg(tmp.path().join("haproxy.cfg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy"),
    );
    wait_tcp(&front);
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "haproxy's runtime API socket did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let spec = tmp.path().join("rollout.toml");
    let bin = common::bin().display().to_string();
    std::fs::write(
        &spec,
        format!(
            r#"
id = "slow-v2"
scope = "config"
[haproxy]
api = "{sock}"
backend = "be_app"
live = ["v1"]
[shadow]
command = ["{bin}", "demo-backend", "--port", "{{port}}", "--name", "v2", "--delay-ms", "30", "--report", "{write}", "--report-host", "{{shadow}}"]
health_path = "/"
[analysis]
steps = [50]
interval = "2s"
count = 1
sample_every = "200ms"
min_samples = 3
harbinger_url = "{url}"
[[analysis.kpi]]
name = "latency"
source = "harbinger"
metric = "http_latency_ms"
critical = true
tolerance = 0.2
min_delta = 5.0
"#,
            sock = sock.display(),
            url = serve.url,
        ),
    )
    .expect("rollout.toml");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, url) = (stop.clone(), format!("http://{front}/"));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut s) = std::net::TcpStream::connect(url.trim_start_matches("http://").trim_end_matches('/')) {
                    use std::io::{Read as _, Write as _};
                    let _w = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
                    let mut sink = Vec::new();
                    let _r = s.read_to_end(&mut sink);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let out = Command::new(common::bin())
        .arg("--data-dir")
        .arg(&data)
        .args(["rollout", "run"])
        .arg(&spec)
        .arg("--json")
        .output()
        .expect("rollout run");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().expect("load");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rec: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().expect("a line")).expect("JSON");
    assert_eq!(rec["decision"], "rolled_back", "{rec}");
    assert_eq!(rec["scale"]["instances"], 1, "a configuration change gets one instance");
    let j = &rec["judgements"][0];
    let m = &j["judgement"]["metrics"][0];
    assert_eq!((m["name"].as_str(), m["verdict"].as_str()), (Some("latency"), Some("fail")), "{j}");
    let (base, canary) = (m["baseline_median"].as_f64().expect("baseline"), m["canary_median"].as_f64().expect("canary"));
    assert!(canary > base + 20.0, "version 2's reported latency is ~30 ms above version 1's: {base} vs {canary}");
    let w = &j["windows"][0];
    assert!(w["baseline"].as_array().expect("b").len() >= 3 && w["canary"].as_array().expect("c").len() >= 3, "{w}");

    let status = Command::new(common::bin()).args(["rollout", "status", "slow-v2", "--url", &serve.url]).output().expect("status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success() && text.contains("slow-v2: rolled_back"), "{text}{}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains("latency") && text.contains("FAIL"), "{text}");
    assert_eq!(serve.terminate(), 0);
}
