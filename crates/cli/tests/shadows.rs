//! Shadows through a running `harbinger serve`: operators' requests and their errors, a
//! real Alertmanager's webhooks, and `kill -9` during a burst of creations.
//!
//! The Alertmanager test needs `prometheus-alertmanager` (Debian package of that name;
//! `.ci/run` installs it), or its path in `HARBINGER_ALERTMANAGER_BIN`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Serve, free_port, get, post_json, run, write_inventory};
use serde_json::{Value, json};

const HOSTS: [(&str, &str, f64); 6] =
    [("a1", "a", 64.0), ("a2", "a", 64.0), ("b1", "b", 64.0), ("b2", "b", 64.0), ("c1", "c", 64.0), ("c2", "c", 64.0)];

/// A data directory with the inventory ingested: `n` critical resources (1 core) spread
/// over the hosts, `web-0` (criticality 0) on a1 and `huge` (100 cores, fits nowhere).
fn data_dir(tmp: &Path, n: usize) -> PathBuf {
    let ds = tmp.join("fleet");
    let mut resources: Vec<(String, String, u8, f64)> =
        (0..n).map(|i| (format!("db-{i:02}"), HOSTS[i % HOSTS.len()].0.to_string(), 3, 1.0)).collect();
    resources.push(("web-0".into(), "a1".into(), 0, 1.0));
    resources.push(("huge".into(), "a1".into(), 3, 100.0));
    write_inventory(&ds, &HOSTS, &resources);
    let data = tmp.join("data");
    let (code, _, stderr) = run(&["--data-dir", data.to_str().expect("utf-8"), "ingest", "--data", ds.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    data
}

fn status(serve: &Serve, query: &str) -> Value {
    let (code, body) = get(&format!("{}/shadow/status{query}", serve.url));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status json")
}

fn zone(host: &str) -> &str {
    &host[..1]
}

#[test]
fn operators_create_list_and_promote_shadows_and_bad_requests_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = data_dir(tmp.path(), 2);
    let serve = Serve::start(&data, &[]);
    let url = |p: &str| format!("{}{p}", serve.url);

    let (code, body) = post_json(&url("/shadow/create"), &json!({"resource": "db-00", "by": "alice"}));
    assert_eq!(code, 201, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let shadow = &v["actions"][0]["shadow"];
    assert_eq!((shadow["state"].as_str(), shadow["primary"].as_str()), (Some("ready"), Some("a1")), "{v}");
    let on = shadow["host"].as_str().expect("host");
    assert_ne!(zone(on), "a", "another zone than the primary: {on}");
    assert_eq!(v["actions"][0]["status"], "dry_run", "the log actuator");
    let id = shadow["id"].as_str().expect("id").to_string();

    // Errors name the reason and change nothing.
    let cases: [(&str, Value, u16, &str); 6] = [
        ("/shadow/create", json!({"resource": "db-00", "by": "bob"}), 409, "already has live shadow"),
        ("/shadow/create", json!({"resource": "nope"}), 404, "unknown resource \"nope\""),
        ("/shadow/create", json!({"resource": "huge"}), 409, "no shadow of huge: "),
        ("/shadow/create", json!({"resourse": "db-01"}), 400, "unknown field `resourse`"),
        ("/shadow/promote", json!({"id": "ghost"}), 404, "unknown shadow \"ghost\""),
        ("/shadow/promote", json!({"id": ""}), 400, "`id` is empty"),
    ];
    for (path, body, want, text) in cases {
        let (code, got) = post_json(&url(path), &body);
        assert_eq!(code, want, "{path} {body}: {got}");
        assert!(got.contains(text), "{path} {body}: {got}");
    }
    let st = status(&serve, "");
    assert_eq!(st["shadows"].as_array().map(Vec::len), Some(1), "{st}");
    assert_eq!(st["actuator"], "log");
    let (code, body) = get(&url("/shadow/status?state=sideways"));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown state \"sideways\""), "{body}");

    let (code, body) = post_json(&url("/shadow/promote"), &json!({"id": id, "by": "alice"}));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""state":"promoted""#), "{body}");
    let (code, body) = post_json(&url("/shadow/promote"), &json!({"id": id}));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("is promoted; only a ready shadow can be promoted"), "{body}");
    let st = status(&serve, "?resource=db-00");
    let kinds: Vec<&str> = st["decisions"].as_array().expect("decisions").iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["shadow_planned", "shadow_promoted"], "{st}");
    let (_, metrics) = get(&url("/metrics"));
    assert!(metrics.contains(r#"harbinger_shadow_decisions_total{kind="shadow_promoted"} 1"#), "{metrics}");
    assert_eq!(serve.terminate(), 0);
    let log = std::fs::read_to_string(data.join("decisions.jsonl")).expect("decision log");
    assert_eq!(log.lines().count(), 2, "{log}");
}

fn alertmanager_bin() -> PathBuf {
    if let Ok(p) = std::env::var("HARBINGER_ALERTMANAGER_BIN") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/prometheus-alertmanager", "/usr/local/bin/alertmanager", "/usr/bin/alertmanager"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("alertmanager not found: apt-get install prometheus-alertmanager (bash .ci/run installs it), or set HARBINGER_ALERTMANAGER_BIN");
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _k = self.0.kill();
        let _w = self.0.wait();
    }
}

/// Polls `f` every 200 ms until it answers `Some`, for at most `secs`.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rfc3339(offset_s: i64) -> String {
    let out = Command::new("date").args(["-u", "-d", &format!("{offset_s} seconds"), "+%Y-%m-%dT%H:%M:%SZ"]).output().expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_real_alertmanager_webhook_creates_shadows_and_its_resolution_retires_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = data_dir(tmp.path(), 6);
    let serve = Serve::start(&data, &[]);
    let am_port = free_port();
    let cfg = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: harbinger\n  group_by: ['alertname', 'instance']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: harbinger\n    webhook_configs:\n      - url: {}/api/v1/alerts\n        send_resolved: true\n",
            serve.url
        ),
    )
    .expect("alertmanager.yml");
    let _am = Killed(
        Command::new(alertmanager_bin())
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", tmp.path().join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start alertmanager"),
    );
    let am = format!("http://127.0.0.1:{am_port}");
    wait_for(30, "alertmanager to be ready", || (get(&format!("{am}/-/ready")).0 == 200).then_some(()));

    // An alert about host b1 (its critical resources: db-02 and db-08 are on b1... with 6
    // hosts and 6 resources, db-02 only).
    let alert = |ends: i64| {
        json!([{"labels": {"alertname": "DiskFilling", "instance": "b1:9100", "severity": "page"},
                "annotations": {"summary": "disk on b1 will be full in 2 h"},
                "startsAt": rfc3339(-10), "endsAt": rfc3339(ends)}])
    };
    let (code, body) = post_json(&format!("{am}/api/v2/alerts"), &alert(3600));
    assert_eq!(code, 200, "{body}");
    let shadows = wait_for(30, "a shadow from the webhook", || {
        let st = status(&serve, "?live=true");
        let s = st["shadows"].as_array().cloned().unwrap_or_default();
        (!s.is_empty()).then_some(s)
    });
    assert_eq!(shadows.len(), 1, "{shadows:?}");
    let s = &shadows[0];
    assert_eq!((s["resource"].as_str(), s["primary"].as_str(), s["state"].as_str()), (Some("db-02"), Some("b1"), Some("ready")));
    assert_ne!(zone(s["host"].as_str().expect("host")), "b", "another zone");
    assert_eq!(s["causes"][0]["type"], "alert", "{s}");
    let (_, metrics) = get(&format!("{}/metrics", serve.url));
    assert!(metrics.contains(r#"harbinger_alerts_received_total{status="firing"} 1"#), "{metrics}");

    // Resolve it: Alertmanager sends the resolution, the shadow only the alert held retires.
    let (code, body) = post_json(&format!("{am}/api/v2/alerts"), &alert(-1));
    assert_eq!(code, 200, "{body}");
    wait_for(30, "the resolved webhook to retire the shadow", || {
        let st = status(&serve, "");
        (st["shadows"][0]["state"] == "retired").then_some(())
    });
    let st = status(&serve, "?resource=db-02");
    let kinds: Vec<&str> = st["decisions"].as_array().expect("decisions").iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["shadow_planned", "shadow_retired"], "{st}");
    assert_eq!(serve.terminate(), 0);
}

#[test]
fn kill_9_during_a_burst_of_creations_loses_and_duplicates_no_shadow() {
    const N: usize = 48;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = data_dir(tmp.path(), N);
    let serve = Serve::start(&data, &[]);
    let pid = serve.child.id();
    let create = format!("{}/shadow/create", serve.url);

    // 48 creations, 6 at a time; the server is killed with SIGKILL after the 12th answer.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let answered: Vec<(String, u16)> = rt.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(6));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..N {
            let (client, sem, done, create) = (client.clone(), sem.clone(), done.clone(), create.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire().await.expect("permit");
                let r = format!("db-{i:02}");
                let code = match client.post(&create).body(json!({"resource": r, "by": "burst"}).to_string()).send().await {
                    Ok(resp) => resp.status().as_u16(),
                    Err(_) => 0,
                };
                if code != 0 && done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == 12 {
                    let _k = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                }
                (r, code)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    let created: Vec<&str> = answered.iter().filter(|(_, c)| *c == 201).map(|(r, _)| r.as_str()).collect();
    assert!(created.len() >= 12, "at least the answers before the kill: {answered:?}");
    assert!(answered.iter().all(|(_, c)| [0, 201].contains(c)), "only successes or dropped connections: {answered:?}");
    assert!(answered.iter().any(|(_, c)| *c == 0), "the kill came during the burst: {answered:?}");
    drop(serve);

    // Restart: every acknowledged shadow is there, none twice, nothing left pending.
    let serve = Serve::start(&data, &[]);
    let st = status(&serve, "");
    assert_eq!(st["pending_actions"], 0, "pending actions were resumed: {st}");
    let shadows = st["shadows"].as_array().expect("shadows").clone();
    let mut per_resource = std::collections::BTreeMap::<String, usize>::new();
    for s in &shadows {
        assert_eq!(s["state"], "ready", "{s}");
        *per_resource.entry(s["resource"].as_str().expect("resource").to_string()).or_default() += 1;
    }
    for r in &created {
        assert_eq!(per_resource.get(*r), Some(&1), "{r} acknowledged before the kill: exactly one shadow ({per_resource:?})");
    }
    assert!(per_resource.values().all(|n| *n == 1), "no resource has two shadows: {per_resource:?}");

    // Asking again for all of them: the ones that exist are duplicates, the rest are created.
    let create = format!("{}/shadow/create", serve.url);
    for i in 0..N {
        let r = format!("db-{i:02}");
        let (code, body) = post_json(&create, &json!({"resource": r, "by": "burst"}));
        let want = if per_resource.contains_key(&r) { 409 } else { 201 };
        assert_eq!(code, want, "{r}: {body}");
    }
    let st = status(&serve, "");
    assert_eq!(st["shadows"].as_array().map(Vec::len), Some(N), "one shadow per resource: {st}");
    assert_eq!(serve.terminate(), 0);
}

#[test]
fn a_deployment_event_takes_a_delta_snapshot_of_the_resource_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = data_dir(tmp.path(), 2);
    let serve = Serve::start(&data, &[]);
    let events = |body: &str| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async {
            let r = reqwest::Client::new().post(format!("{}/api/v1/events", serve.url)).body(body.to_string()).send().await.expect("post");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        })
    };
    let (code, body) = get(&format!("{}/api/v1/snapshots?resource=db-01", serve.url));
    assert_eq!((code, body.as_str()), (200, "[]"), "none yet");
    let (code, body) = events(r#"{"ts": 1796000000000, "kind": "deploy_started", "deployment": "d-7", "resource": "db-01", "host": "a2"}"#);
    assert_eq!(code, 200, "{body}");
    let (code, body) = events(r#"{"ts": 1796000060000, "kind": "config_changed", "resource": "db-01", "host": "a2"}"#);
    assert_eq!(code, 200, "{body}");
    let (code, body) = get(&format!("{}/api/v1/snapshots?resource=db-01", serve.url));
    assert_eq!(code, 200, "{body}");
    let snaps: Vec<Value> = serde_json::from_str(&body).expect("json");
    assert_eq!(snaps.len(), 2, "{body}");
    assert_eq!((snaps[0]["seq"].as_u64(), snaps[0]["parent"].is_null()), (Some(1), true), "a full base first");
    assert_eq!(snaps[0]["stored_paths"][0], "/config", "the database profile's paths: {body}");
    assert_eq!(snaps[1]["parent"], 1, "then a delta: {body}");
    assert_eq!(snaps[1]["stored_paths"].as_array().map(Vec::len), Some(0), "nothing changed in between: {body}");
    assert!(data.join("snapshots").is_dir());
    let st = status(&serve, "?resource=db-01");
    // The deployment also asks for a shadow of the critical resource at the next tick,
    // which may or may not have run yet.
    let reasons: Vec<&str> = st["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["kind"] == "snapshot_taken")
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert_eq!(reasons.len(), 2, "{st}");
    assert!(reasons[0].starts_with("before deploy_started d-7: snapshot 1 of db-01 (full: /config, /parameters, /schema_version;"), "{st}");
    assert!(reasons[1].starts_with("before config_changed: snapshot 2 of db-01 (delta: nothing changed since snapshot 1;"), "{st}");
    let (code, body) = get(&format!("{}/api/v1/snapshots", serve.url));
    assert_eq!((code, body.trim()), (400, "`resource` is required"));
    assert_eq!(serve.terminate(), 0);
}
