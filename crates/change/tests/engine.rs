//! The change engine on real resources: files on disk, a real `redis-server` (Debian
//! package `redis-server`) on a port free at test time, and commands. Predictive,
//! standard and selective rollback; verification; rollback order; the high-cost override;
//! anomalous operations; bad input.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harbinger_actuate::redis::{RedisClient, Reply};
use harbinger_change::anomaly::AnomalyKind;
use harbinger_change::risk::ChangeRiskModel;
use harbinger_change::store::ChangeStatus;
use harbinger_change::{ApplyOptions, ChangeEngine, ChangeError, EngineConfig, template};
use harbinger_core::ManualClock;
use serde_json::{Value, json};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const T0: i64 = 1_780_000_000_000; // a weekday, 10:13 UTC
const DAY: i64 = 86_400_000;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn redis(dir: &Path) -> (Proc, String) {
    assert!(Path::new(REDIS_SERVER).exists(), "{REDIS_SERVER} not found: apt-get install redis-server");
    let port = free_port();
    let child = Command::new(REDIS_SERVER)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = RedisClient::connect(&addr, Duration::from_secs(1)).await
            && c.command(&["PING"]).await.ok() == Some(Reply::Status("PONG".into()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "redis-server on {addr} did not answer PING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (proc, addr)
}

async fn cmd(addr: &str, args: &[&str]) -> Reply {
    RedisClient::connect(addr, Duration::from_secs(2)).await.unwrap().command(args).await.unwrap()
}

async fn get(addr: &str, key: &str) -> Option<String> {
    match cmd(addr, &["GET", key]).await {
        Reply::Bulk(b) => b.map(|b| String::from_utf8(b).unwrap()),
        other => panic!("GET {key}: {other:?}"),
    }
}

async fn config(addr: &str, param: &str) -> String {
    match cmd(addr, &["CONFIG", "GET", param]).await {
        Reply::Array(Some(v)) => v[1].as_text().unwrap(),
        other => panic!("CONFIG GET {param}: {other:?}"),
    }
}

fn engine(dir: &Path, clock: Arc<ManualClock>, alert: Option<String>) -> ChangeEngine {
    let cfg = EngineConfig { parallelism: 2, risk_threshold: 1.0, alert_webhook: alert };
    ChangeEngine::open(&dir.join("data"), ChangeRiskModel::embedded_default(), clock, cfg).unwrap()
}

/// Writes `value` the way the file resource writes JSON (pretty, trailing newline), so a
/// restored file can be compared byte for byte.
fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap() + "\n").unwrap();
}

fn write_template(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const WEB_BEFORE: &str = r#"{"server": {"port": 8080, "workers": 4}, "legacy": true}"#;

fn setup_web(dir: &Path) -> Vec<u8> {
    write_json(&dir.join("web.json"), &serde_json::from_str(WEB_BEFORE).unwrap());
    std::fs::read(dir.join("web.json")).unwrap()
}

/// A change of the web file and the cache, with `validation` and `post_apply` YAML lists.
fn web_and_cache(addr: &str, validation: &str, post_apply: &str) -> String {
    format!(
        r#"
stack: shop
resources:
  - id: cache
    kind: redis
    endpoint: "{addr}"
    keys: [feature:checkout, old:key]
    config: [maxmemory-policy]
    criticality: 3
    desired:
      keys: {{"feature:checkout": "on", "new:key": "1"}}
      config: {{maxmemory-policy: allkeys-lru}}
  - id: web
    kind: file
    path: web.json
    depends_on: [cache]
    criticality: 2
    desired:
      content: {{server: {{port: 9090, workers: 8}}}}
validation: {validation}
post_apply: {post_apply}
"#
    )
}

async fn seed_cache(addr: &str) {
    cmd(addr, &["SET", "feature:checkout", "off"]).await;
    cmd(addr, &["SET", "old:key", "keep-me"]).await;
    cmd(addr, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]).await;
}

async fn assert_cache_as_seeded(addr: &str) {
    assert_eq!(get(addr, "feature:checkout").await.as_deref(), Some("off"));
    assert_eq!(get(addr, "old:key").await.as_deref(), Some("keep-me"));
    assert_eq!(get(addr, "new:key").await, None);
    assert_eq!(config(addr, "maxmemory-policy").await, "noeviction");
}

/// An HTTP server that records the JSON bodies POSTed to it.
async fn alert_sink() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/alert",
        axum::routing::post(move |body: String| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alert", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn predictive_rollback_leaves_files_and_redis_exactly_as_before_and_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let (_redis, addr) = redis(tmp.path()).await;
    seed_cache(&addr).await;
    let before = setup_web(tmp.path());
    let (url, alerts) = alert_sink().await;
    let e = engine(tmp.path(), Arc::new(ManualClock::new(T0)), Some(url));
    // The staged web config must keep port 8080: the change moves it to 9090.
    let validation = r#"
  - {name: staged web keeps port 8080, type: command, run: [sh, -c, 'grep -q "\"port\": 8080" "$0"', "{staged:web}"]}
  - {name: staged cache answers, type: command, run: [sh, -c, 'test -n "$0"', "{staged:cache}"]}"#;
    let t = template::read(&write_template(tmp.path(), "change.yaml", &web_and_cache(&addr, validation, "[]"))).unwrap();
    let r = e.apply(t, ApplyOptions::default()).await.unwrap();

    assert_eq!(r.status, ChangeStatus::Rejected, "{}", r.reason);
    assert!(r.reason.starts_with("predictive rollback: staged validation failed: staged web keeps port 8080"), "{}", r.reason);
    assert_eq!(r.analysis.validation.len(), 2);
    assert_eq!(r.analysis.validation[1].outcome, harbinger_change::validate::Outcome::Passed, "the staged Redis existed");
    assert!(r.applied.is_empty());
    let rb = r.rollback.unwrap();
    assert_eq!(rb.kind, "predictive");
    assert!(rb.verified);
    // The exact prior state.
    assert_eq!(std::fs::read(tmp.path().join("web.json")).unwrap(), before);
    assert_cache_as_seeded(&addr).await;
    let a = alerts.lock().unwrap().clone();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["event"], "change_rejected");
    assert_eq!(a[0]["change"], "c-1");
    let rec = e.store().change("c-1").unwrap().unwrap();
    assert_eq!(rec.status, ChangeStatus::Rejected);
    let log = e.store().log(Some("c-1"), None).unwrap();
    let steps: Vec<&str> = log.iter().map(|l| l.step.as_str()).collect();
    assert!(
        steps.contains(&"snapshot") && steps.contains(&"stage") && steps.contains(&"validate") && steps.contains(&"alert"),
        "{steps:?}"
    );
    assert!(!steps.contains(&"apply"), "{steps:?}");
}

#[tokio::test]
async fn standard_rollback_after_a_failing_post_apply_check_restores_in_reverse_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (_redis, addr) = redis(tmp.path()).await;
    seed_cache(&addr).await;
    let before = setup_web(tmp.path());
    let e = engine(tmp.path(), Arc::new(ManualClock::new(T0)), None);
    let post = r#"
  - {name: live web still has the legacy login, type: command, run: [sh, -c, 'grep -q legacy "$0"', "{live:web}"]}"#;
    let t = template::read(&write_template(tmp.path(), "change.yaml", &web_and_cache(&addr, "[]", post))).unwrap();
    let r = e.apply(t, ApplyOptions::default()).await.unwrap();

    assert_eq!(r.status, ChangeStatus::RolledBack, "{}", r.reason);
    assert!(r.reason.contains("post-apply check failed: live web still has the legacy login"), "{}", r.reason);
    assert_eq!(r.applied, vec!["cache", "web"], "dependencies first");
    let rb = r.rollback.unwrap();
    assert_eq!(rb.kind, "standard");
    assert_eq!(rb.order, vec![vec!["web".to_string()], vec!["cache".to_string()]], "dependents restored first");
    assert!(rb.verified && rb.restored.iter().all(|x| x.ok && x.verified), "{rb:?}");
    assert_eq!(std::fs::read(tmp.path().join("web.json")).unwrap(), before);
    assert_cache_as_seeded(&addr).await;
    // Durations are on record for the next simulation.
    let log = e.store().log(Some("c-1"), None).unwrap();
    assert_eq!(log.iter().filter(|l| l.step == "rollback" && l.outcome == "ok").count(), 2);
    assert_eq!(log.iter().filter(|l| l.step == "verify" && l.outcome == "ok").count(), 2);
}

#[tokio::test]
async fn selective_rollback_leaves_the_other_resources_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_redis, addr) = redis(tmp.path()).await;
    seed_cache(&addr).await;
    let before = setup_web(tmp.path());
    let e = engine(tmp.path(), Arc::new(ManualClock::new(T0)), None);
    let t = template::read(&write_template(tmp.path(), "change.yaml", &web_and_cache(&addr, "[]", "[]"))).unwrap();
    let r = e.apply(t, ApplyOptions::default()).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Applied, "{}", r.reason);
    assert_eq!(get(&addr, "new:key").await.as_deref(), Some("1"));
    assert_eq!(get(&addr, "old:key").await, None, "a managed key absent from the desired state is deleted");
    let changed_web = std::fs::read(tmp.path().join("web.json")).unwrap();
    assert_ne!(changed_web, before);

    let rb = e.rollback("c-1", &["cache".to_string()]).await.unwrap();
    assert_eq!(rb.kind, "selective");
    assert!(rb.verified);
    assert_cache_as_seeded(&addr).await;
    assert_eq!(std::fs::read(tmp.path().join("web.json")).unwrap(), changed_web, "web stays changed");
    assert_eq!(e.store().change("c-1").unwrap().unwrap().status, ChangeStatus::PartiallyRolledBack);

    let rb = e.rollback("c-1", &["web".to_string()]).await.unwrap();
    assert!(rb.verified);
    assert_eq!(std::fs::read(tmp.path().join("web.json")).unwrap(), before);
    assert_eq!(e.store().change("c-1").unwrap().unwrap().status, ChangeStatus::RolledBack);

    let err = e.rollback("c-1", &["nope".to_string()]).await.unwrap_err();
    assert!(matches!(err, ChangeError::UnknownResource { .. }), "{err}");
    assert!(err.to_string().contains("\"nope\"") && err.to_string().contains("cache, web"), "{err}");
    assert!(matches!(e.rollback("c-9", &[]).await.unwrap_err(), ChangeError::UnknownChange(_)));
}

#[tokio::test]
async fn a_restore_that_does_not_verify_is_reported_path_by_path() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("state.json"), r#"{"replicas": 3, "image": "v1"}"#).unwrap();
    // A restore command with a bug: it writes the snapshot with replicas off by one.
    let t = r#"
stack: deploy
resources:
  - id: svc
    kind: exec
    read: [sh, -c, 'cat state.json']
    apply: [sh, -c, 'cat > state.json']
    restore: [sh, -c, 'sed "s/\"replicas\":3/\"replicas\":4/" > state.json']
    desired: {replicas: 5, image: v2}
"#;
    let e = engine(d, Arc::new(ManualClock::new(T0)), None);
    let r = e.apply(template::read(&write_template(d, "c.yaml", t)).unwrap(), ApplyOptions::default()).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Applied, "{}", r.reason);
    let rb = e.rollback(&r.change, &[]).await.unwrap();
    assert!(!rb.verified);
    let x = &rb.restored[0];
    assert!(x.ok && !x.verified, "{x:?}");
    assert_eq!(x.differences, vec!["/replicas: expected 3, found 4".to_string()]);
    assert_eq!(e.store().change(&r.change).unwrap().unwrap().status, ChangeStatus::RollbackFailed);
    let text = harbinger_change::render::rollback(&rb, harbinger_change::render::Style::new(false));
    assert!(
        text.contains("NOT verified") && text.contains("/replicas: expected 3, found 4") && text.contains("verification failed"),
        "{text}"
    );
}

#[tokio::test]
async fn rollback_order_on_a_crafted_graph() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for f in ["db", "cache", "app", "web", "docs"] {
        write_json(&d.join(format!("{f}.json")), &json!({"v": 1}));
    }
    // web -> app -> {db, cache}; docs alone. db (criticality 3, two dependents) has more
    // impact than cache (criticality 1) and docs (no dependents).
    let t = r#"
stack: g
resources:
  - {id: db, kind: file, path: db.json, criticality: 3, desired: {content: {v: 2}}}
  - {id: cache, kind: file, path: cache.json, criticality: 1, desired: {content: {v: 2}}}
  - {id: docs, kind: file, path: docs.json, criticality: 0, desired: {content: {v: 2}}}
  - {id: app, kind: file, path: app.json, depends_on: [db, cache], desired: {content: {v: 2}}}
  - {id: web, kind: file, path: web.json, depends_on: [app], desired: {content: {v: 2}}}
"#;
    let e = engine(d, Arc::new(ManualClock::new(T0)), None);
    let tp = write_template(d, "c.yaml", t);
    let a = e.whatif(template::read(&tp).unwrap()).await.unwrap();
    let order: Vec<Vec<&str>> = a.rollback.order.iter().map(|s| s.iter().map(String::as_str).collect()).collect();
    assert_eq!(order, vec![vec!["web"], vec!["app"], vec!["db", "cache", "docs"]]);
    assert_eq!(a.apply_order[0], vec!["cache", "db", "docs"]);
    let r = e.apply(template::read(&tp).unwrap(), ApplyOptions::default()).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Applied, "{}", r.reason);
    let rb = e.rollback(&r.change, &[]).await.unwrap();
    assert_eq!(rb.order, a.rollback.order);
    let restored: Vec<&str> = rb.restored.iter().map(|x| x.resource.as_str()).collect();
    assert_eq!(restored, vec!["web", "app", "db", "cache", "docs"]);
    for f in ["db", "cache", "app", "web", "docs"] {
        let v: Value = serde_json::from_slice(&std::fs::read(d.join(format!("{f}.json"))).unwrap()).unwrap();
        assert_eq!(v, json!({"v": 1}), "{f}");
    }
}

#[tokio::test]
async fn a_high_rollback_cost_needs_the_override() {
    let tmp = tempfile::tempdir().unwrap();
    let before = setup_web(tmp.path());
    let t = r#"
stack: shop
rollback: {high_cost: true, reason: "migrates the sessions table"}
resources:
  - {id: web, kind: file, path: web.json, desired: {content: {server: {port: 8080, workers: 6}}}}
"#;
    let tp = write_template(tmp.path(), "c.yaml", t);
    let e = engine(tmp.path(), Arc::new(ManualClock::new(T0)), None);
    let a = e.whatif(template::read(&tp).unwrap()).await.unwrap();
    assert!(a.rollback.high_cost);
    assert!(a.rollback.risk >= 0.6, "{}", a.rollback.risk);
    assert_eq!(a.rollback.high_cost_reasons, vec!["change: high rollback cost: migrates the sessions table"]);

    let r = e.apply(template::read(&tp).unwrap(), ApplyOptions::default()).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Rejected);
    assert!(r.reason.contains("--override") && r.reason.contains("migrates the sessions table"), "{}", r.reason);
    assert_eq!(std::fs::read(tmp.path().join("web.json")).unwrap(), before);

    let r = e.apply(template::read(&tp).unwrap(), ApplyOptions { override_high_cost: true, force: false }).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Applied, "{}", r.reason);
    let v: Value = serde_json::from_slice(&std::fs::read(tmp.path().join("web.json")).unwrap()).unwrap();
    assert_eq!(v["server"]["workers"], 6);
}

#[tokio::test]
async fn an_anomalous_operation_is_flagged_and_a_forced_change_pre_provisions_its_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    setup_web(tmp.path());
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(tmp.path(), clock.clone(), None);
    let change = |workers: u32, extra: &str| {
        format!(
            "stack: shop\nresources:\n  - {{id: web, kind: file, path: web.json, desired: {{content: {{server: {{port: 8080, workers: {workers}}}{extra}}}}}}}\n"
        )
    };
    // A history of the usual operation: the worker count, once a day.
    for (i, w) in [5, 6, 7, 8].into_iter().enumerate() {
        clock.set(T0 + i as i64 * DAY);
        let tp = write_template(tmp.path(), "c.yaml", &change(w, ""));
        let r = e.apply(template::read(&tp).unwrap(), ApplyOptions::default()).await.unwrap();
        assert_eq!(r.status, ChangeStatus::Applied, "change {i}: {}", r.reason);
        assert!(r.analysis.anomalies.is_empty(), "{:?}", r.analysis.anomalies);
    }
    clock.set(T0 + 4 * DAY);
    let tp = write_template(tmp.path(), "c.yaml", &change(8, ", auth: {secret_key: abc, mode: open}"));
    let a = e.whatif(template::read(&tp).unwrap()).await.unwrap();
    assert!(a.baseline.warm);
    assert_eq!(a.anomalies.len(), 1, "{:?}", a.anomalies);
    assert_eq!(a.anomalies[0].kind, AnomalyKind::NewPath);
    assert_eq!(a.anomalies[0].path.as_deref(), Some("/content/auth"));
    assert_eq!(a.risk.features.anomalies, 1, "a flagged operation feeds the change-risk score");

    let r = e.apply(template::read(&tp).unwrap(), ApplyOptions::default()).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Rejected);
    assert!(r.reason.contains("anomalous operation") && r.reason.contains("--force"), "{}", r.reason);
    let r = e.apply(template::read(&tp).unwrap(), ApplyOptions { override_high_cost: false, force: true }).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Applied, "{}", r.reason);
    assert_eq!(r.pre_provisioned.len(), 1, "{:?}", r.pre_provisioned);
    assert!(
        r.pre_provisioned[0].starts_with("web: snapshot") && r.pre_provisioned[0].contains("prior state ready at"),
        "{:?}",
        r.pre_provisioned
    );
}

#[tokio::test]
async fn bad_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup_web(d);
    let e = engine(d, Arc::new(ManualClock::new(T0)), None);
    // Syntax: file and line.
    let p = write_template(d, "bad.yaml", "stack: s\nresources:\n  - id: a\n    kind: [file\n");
    let err = template::read(&p).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:", p.display())) && err.contains(":4:") || err.contains(":5:"), "{err}");
    // A cycle, named.
    let cyc = "stack: s\nresources:\n  - {id: a, kind: file, path: web.json, depends_on: [b]}\n  - {id: b, kind: file, path: web.json, depends_on: [a]}\n";
    let err = e.whatif(template::read(&write_template(d, "cyc.yaml", cyc)).unwrap()).await.unwrap_err();
    assert_eq!(err.to_string(), "dependency cycle: a -> b -> a");
    // An unknown dependency.
    let unk = "stack: s\nresources:\n  - {id: a, kind: file, path: web.json, depends_on: [zz]}\n";
    let err = template::read(&write_template(d, "unk.yaml", unk)).unwrap_err().to_string();
    assert!(err.contains("resource \"a\": depends_on: unknown resource \"zz\""), "{err}");
    // A path outside the kind's change profile.
    let out = "stack: s\nresources:\n  - {id: a, kind: file, path: web.json, desired: {content: {}, mode: \"0600\"}}\n";
    let err = e.whatif(template::read(&write_template(d, "out.yaml", out)).unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("resource \"a\" (file): the change touches /mode outside"), "{err}");
    // An unknown key of a kind.
    let key = "stack: s\nresources:\n  - {id: a, kind: file, pth: web.json}\n";
    let err = template::read(&write_template(d, "key.yaml", key)).unwrap_err().to_string();
    assert!(err.contains("resource \"a\"") && err.contains("pth"), "{err}");
}

#[tokio::test]
async fn a_restore_that_cannot_reach_the_resource_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let (redis_proc, addr) = redis(tmp.path()).await;
    seed_cache(&addr).await;
    setup_web(tmp.path());
    let e = engine(tmp.path(), Arc::new(ManualClock::new(T0)), None);
    let t = template::read(&write_template(tmp.path(), "change.yaml", &web_and_cache(&addr, "[]", "[]"))).unwrap();
    let r = e.apply(t, ApplyOptions::default()).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Applied, "{}", r.reason);
    drop(redis_proc);
    let rb = e.rollback("c-1", &["cache".to_string()]).await.unwrap();
    assert!(!rb.verified);
    assert!(!rb.restored[0].ok);
    assert!(rb.restored[0].detail.contains(&addr) && rb.restored[0].detail.contains("connect"), "{:?}", rb.restored[0]);
    let rec = e.store().change("c-1").unwrap().unwrap();
    assert_eq!(rec.status, ChangeStatus::RollbackFailed);
    assert!(rec.resources.iter().all(|r| !r.restored), "nothing recorded as restored");
}

#[tokio::test]
async fn applied_and_rolled_back_changes_are_recorded_as_events_for_the_failure_model() {
    use harbinger_core::{EventKind, EventStore};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_json(&d.join("api.json"), &json!({"version": "1.4.0", "pool": 16}));
    write_json(&d.join("flags.json"), &json!({"beta": false}));
    let t = r#"
stack: api
resources:
  - {id: api, kind: file, path: api.json, host: h003, desired: {content: {version: "1.5.0", pool: 16}}}
  - {id: flags, kind: file, path: flags.json, host: h004, desired: {content: {beta: true}}}
"#;
    let events = Arc::new(harbinger_store::MemoryStore::default());
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(d, clock.clone(), None).with_events(events.clone());
    let r = e.apply(template::read(&write_template(d, "c.yaml", t)).unwrap(), ApplyOptions::default()).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Applied, "{}", r.reason);
    clock.advance(60_000);
    e.rollback(&r.change, &["flags".to_string()]).await.unwrap();
    let got = events.events(0, i64::MAX).await.unwrap();
    let kinds: Vec<(EventKind, Option<&str>, Option<&str>)> =
        got.iter().map(|e| (e.kind, e.resource.as_deref(), e.host.as_ref().map(|h| h.as_str()))).collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::DeployStarted, Some("api"), Some("h003")),
            (EventKind::DeploySucceeded, Some("api"), Some("h003")),
            (EventKind::ConfigChanged, Some("flags"), Some("h004")),
            (EventKind::RolledBack, Some("flags"), Some("h004")),
        ]
    );
    assert_eq!(got[0].from, Some(json!("1.4.0")));
    assert_eq!(got[0].to, Some(json!("1.5.0")));
    assert_eq!(got[2].changes[0].path, "/content/beta");
    assert_eq!(got[3].ts, T0 + 60_000);
    assert_eq!(got[0].extra["change"], "c-1");
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { files_under(&p, out) } else { out.push(p) }
    }
}

#[tokio::test]
async fn a_snapshot_whose_checksum_fails_is_not_restored_and_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup_web(d);
    let e = engine(d, Arc::new(ManualClock::new(T0)), None);
    let t = "stack: s\nresources:\n  - {id: web, kind: file, path: web.json, desired: {content: {server: {port: 1, workers: 1}}}}\n";
    let r = e.apply(template::read(&write_template(d, "c.yaml", t)).unwrap(), ApplyOptions::default()).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Applied, "{}", r.reason);
    let changed = std::fs::read(d.join("web.json")).unwrap();
    let mut snaps = Vec::new();
    files_under(&d.join("data/snapshots/changes"), &mut snaps);
    assert!(!snaps.is_empty());
    for p in &snaps {
        let mut bytes = std::fs::read(p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(p, bytes).unwrap();
    }
    let rb = e.rollback(&r.change, &[]).await.unwrap();
    assert!(!rb.verified && !rb.restored[0].ok, "{rb:?}");
    let detail = &rb.restored[0].detail;
    assert!(detail.contains("snapshot 1 cannot be read") && detail.contains("web"), "{detail}");
    assert_eq!(std::fs::read(d.join("web.json")).unwrap(), changed, "nothing written from a corrupt snapshot");
}

#[tokio::test]
async fn http_and_metric_validation_tests_judge_what_they_get() {
    use harbinger_change::template::TestSpec;
    use harbinger_change::validate::{Outcome, TestContext, run};
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok: ready" }))
        .route("/down", axum::routing::get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no") }))
        .route(
            "/api/v1/query",
            axum::routing::get(|q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                let v = if q.0.get("query").is_some_and(|q| q.contains("127.0.0.1:7000")) { "250" } else { "5" };
                axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"instance": "x"}, "value": [1, v]}]}}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut ctx = TestContext::default();
    ctx.staged.insert("cache".into(), "127.0.0.1:7000".into());
    ctx.live.insert("cache".into(), "127.0.0.1:6379".into());
    let http = |url: String, body: Option<&str>| TestSpec::Http {
        name: "h".into(),
        url,
        expect_status: 200,
        expect_body: body.map(Into::into),
        timeout: None,
    };
    assert_eq!(run(&http(format!("{base}/healthz"), Some("ready")), &ctx).await.outcome, Outcome::Passed);
    let r = run(&http(format!("{base}/healthz"), Some("green")), &ctx).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.detail.contains("does not contain \"green\""), "{}", r.detail);
    let r = run(&http(format!("{base}/down"), None), &ctx).await;
    assert!(r.outcome == Outcome::Failed && r.detail.contains("status 503, expected 200"), "{}", r.detail);
    let metric =
        |q: &str| TestSpec::Metric { name: "m".into(), url: base.clone(), query: q.into(), min: None, max: Some(100.0), timeout: None };
    let r = run(&metric("mem{instance=\"{staged:cache}\"}"), &ctx).await;
    assert!(r.outcome == Outcome::Failed && r.detail.contains("= 250, outside [-inf, 100]"), "{}", r.detail);
    assert_eq!(run(&metric("mem{instance=\"{live:cache}\"}"), &ctx).await.outcome, Outcome::Passed);
    let r = run(&metric("mem{instance=\"{staged:web}\"}"), &ctx).await;
    assert!(r.outcome == Outcome::Skipped && r.detail.contains("unknown resource \"web\""), "{}", r.detail);
}

/// A change that cascades from a resource with an expensive rollback (a data migration)
/// to the resources depending on it is flagged as such, and needs the override.
#[tokio::test]
async fn a_cascade_from_a_data_migration_is_flagged_and_needs_the_override() {
    let tmp = tempfile::tempdir().unwrap();
    setup_web(tmp.path());
    write_json(&tmp.path().join("db.json"), &json!({"schema": 3}));
    let t = r#"
stack: shop
resources:
  - {id: db, kind: file, path: db.json, rollback: {high_cost: true, reason: "migrates the orders table"}, desired: {content: {schema: 4}}}
  - {id: web, kind: file, path: web.json, depends_on: [db], desired: {content: {server: {port: 8080, workers: 6}}}}
"#;
    let tp = write_template(tmp.path(), "c.yaml", t);
    let e = engine(tmp.path(), Arc::new(ManualClock::new(T0)), None);
    let a = e.whatif(template::read(&tp).unwrap()).await.unwrap();
    assert!(a.rollback.high_cost);
    assert_eq!(a.rollback.high_cost_reasons.len(), 2, "{:?}", a.rollback.high_cost_reasons);
    assert!(
        a.rollback.high_cost_reasons[1].starts_with("cascade: web changed together with db")
            && a.rollback.high_cost_reasons[1].contains("cannot undo db"),
        "{:?}",
        a.rollback.high_cost_reasons
    );
    let r = e.apply(template::read(&tp).unwrap(), ApplyOptions::default()).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Rejected);
    assert!(r.reason.contains("cascade: web"), "{}", r.reason);
    let r = e.apply(template::read(&tp).unwrap(), ApplyOptions { override_high_cost: true, force: false }).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Applied, "an administrator's override: {}", r.reason);
}

/// A change submitted ahead of deployment whose dry run on the shadow copies fails its
/// validation: nothing live moves, the change is held with its rollback resources
/// pre-provisioned (a standby copy of each resource's last good state), and the operator
/// is alerted.
#[tokio::test]
async fn a_negative_prediction_holds_the_change_pre_provisions_its_rollback_and_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let (_redis, addr) = redis(tmp.path()).await;
    seed_cache(&addr).await;
    let before = setup_web(tmp.path());
    let (url, alerts) = alert_sink().await;
    let e = engine(tmp.path(), Arc::new(ManualClock::new(T0)), Some(url));
    let validation = r#"
  - {name: staged web keeps port 8080, type: command, run: [sh, -c, 'grep -q "\"port\": 8080" "$0"', "{staged:web}"]}"#;
    let t = template::read(&write_template(tmp.path(), "change.yaml", &web_and_cache(&addr, validation, "[]"))).unwrap();
    let r = e.submit(t, harbinger_change::predict::SubmitOptions::default()).await.unwrap();

    assert_eq!(r.prediction, harbinger_change::predict::Prediction::Negative);
    assert_eq!(r.status, ChangeStatus::Held, "{}", r.reason);
    assert!(r.reasons.iter().any(|x| x.contains("staged web keeps port 8080")), "{:?}", r.reasons);
    assert!(r.apply.is_none());
    // Nothing live moved.
    assert_eq!(std::fs::read(tmp.path().join("web.json")).unwrap(), before);
    assert_cache_as_seeded(&addr).await;
    // The way back is ready: a standby copy of each resource's current state.
    assert_eq!(r.pre_provisioned.len(), 2, "{:?}", r.pre_provisioned);
    assert!(r.pre_provisioned.iter().all(|p| p.contains("prior state ready at")), "{:?}", r.pre_provisioned);
    let standby = e.held(&r.change);
    assert_eq!(standby.len(), 2, "{standby:?}");
    let web_copy = standby.iter().find(|l| l.ends_with(".json")).expect("the web file's standby copy");
    let copy: Value = serde_json::from_slice(&std::fs::read(web_copy).unwrap()).unwrap();
    assert_eq!(copy["server"]["port"], 8080, "the standby copy holds the last good state");
    let redis_copy = standby.iter().find(|l| !l.ends_with(".json")).expect("the cache's standby copy");
    assert_eq!(get(redis_copy, "old:key").await.as_deref(), Some("keep-me"), "a standby Redis with the prior keys");
    // The operator was told, and the record says held.
    let a = alerts.lock().unwrap().clone();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["event"], "change_predicted_negative");
    assert_eq!(e.store().change(&r.change).unwrap().unwrap().status, ChangeStatus::Held);
    // A held change cannot be rolled back (nothing was applied); its resources are freed.
    assert!(matches!(e.rollback(&r.change, &[]).await, Err(ChangeError::NotApplied { .. })));
    assert_eq!(e.release(&r.change), 2);
    assert!(!Path::new(web_copy).exists(), "released standby copies are removed");
}

/// A change predicted positive is applied and the live stack watched: when it deviates
/// from the prediction (a check that passed starts failing), the change is rolled back to
/// the last good state at once and the operator alerted.
#[tokio::test]
async fn a_positive_change_that_deviates_live_is_rolled_back_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (_redis, addr) = redis(tmp.path()).await;
    seed_cache(&addr).await;
    let before = setup_web(tmp.path());
    let (url, alerts) = alert_sink().await;
    let e = engine(tmp.path(), Arc::new(ManualClock::new(T0)), Some(url));
    let flag = tmp.path().join("error-spike");
    let post = format!(
        r#"
  - {{name: no error spike, type: command, run: [sh, -c, 'test ! -e "$0"', "{}"]}}"#,
        flag.display()
    );
    let t = template::read(&write_template(tmp.path(), "change.yaml", &web_and_cache(&addr, "[]", &post))).unwrap();
    let opts = harbinger_change::predict::SubmitOptions {
        monitor_for: Duration::from_secs(20),
        monitor_every: Duration::from_millis(100),
        override_high_cost: false,
    };
    let spike = {
        let flag = flag.clone();
        let web = tmp.path().join("web.json");
        tokio::spawn(async move {
            // Once the change is live, the error rate jumps.
            let deadline = Instant::now() + Duration::from_secs(15);
            while !std::fs::read_to_string(&web).is_ok_and(|s| s.contains("9090")) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::fs::write(&flag, "500s").unwrap();
        })
    };
    let started = Instant::now();
    let r = e.submit(t, opts).await.unwrap();
    spike.await.unwrap();

    assert_eq!(r.prediction, harbinger_change::predict::Prediction::Positive, "{:?}", r.reasons);
    assert_eq!(r.apply.as_ref().map(|a| a.status), Some(ChangeStatus::Applied), "it was applied first");
    assert_eq!(r.status, ChangeStatus::RolledBack, "{}", r.reason);
    assert!(r.reason.contains("deviated from the prediction: no error spike"), "{}", r.reason);
    assert!(started.elapsed() < Duration::from_secs(15), "rolled back at the deviation, not at the end of the watch");
    assert!(r.monitor.len() >= 2 && r.monitor.last().unwrap().outcome == harbinger_change::validate::Outcome::Failed);
    assert!(r.rollback.as_ref().is_some_and(|rb| rb.verified));
    assert_eq!(std::fs::read(tmp.path().join("web.json")).unwrap(), before);
    assert_cache_as_seeded(&addr).await;
    let a = alerts.lock().unwrap().clone();
    assert_eq!(a.iter().filter(|x| x["event"] == "change_deviated").count(), 1, "{a:?}");
    assert_eq!(e.store().change(&r.change).unwrap().unwrap().status, ChangeStatus::RolledBack);
}

/// A positive change that behaves stays applied after the watch.
#[tokio::test]
async fn a_positive_change_that_behaves_stays() {
    let tmp = tempfile::tempdir().unwrap();
    setup_web(tmp.path());
    let e = engine(tmp.path(), Arc::new(ManualClock::new(T0)), None);
    let text = "stack: shop\nresources:\n  - {id: web, kind: file, path: web.json, desired: {content: {server: {port: 8080, workers: 9}}}}\npost_apply:\n  - {name: web has workers, type: command, run: [sh, -c, 'grep -q workers \"$0\"', \"{live:web}\"]}\n";
    let t = template::read(&write_template(tmp.path(), "c.yaml", text)).unwrap();
    let opts = harbinger_change::predict::SubmitOptions {
        monitor_for: Duration::from_millis(400),
        monitor_every: Duration::from_millis(100),
        override_high_cost: false,
    };
    let r = e.submit(t, opts).await.unwrap();
    assert_eq!(r.status, ChangeStatus::Applied, "{}", r.reason);
    assert!(r.reason.contains("behaved as predicted"), "{}", r.reason);
    assert!(r.monitor.len() >= 3, "{:?}", r.monitor);
    assert!(std::fs::read_to_string(tmp.path().join("web.json")).unwrap().contains("\"workers\": 9"));
}

/// Templates dropped into a watched directory are submitted once each and moved to
/// `done/` with their report, or with the error that refused them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_directory_submits_each_template_once() {
    let tmp = tempfile::tempdir().unwrap();
    setup_web(tmp.path());
    let e = Arc::new(engine(tmp.path(), Arc::new(ManualClock::new(T0)), None));
    let watch = tmp.path().join("incoming");
    std::fs::create_dir_all(&watch).unwrap();
    let good = format!(
        "stack: shop\nresources:\n  - {{id: web, kind: file, path: {}, desired: {{content: {{server: {{port: 8080, workers: 6}}}}}}}}\n",
        tmp.path().join("web.json").display()
    );
    std::fs::write(watch.join("a.yaml"), good).unwrap();
    std::fs::write(watch.join("b.yaml"), "stack: [unclosed").unwrap();
    std::fs::write(watch.join("notes.txt"), "not a template").unwrap();
    let done = watch.join("done");
    let stop = {
        let done = done.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !(done.join("a.yaml.report.json").exists() && done.join("b.yaml.error.txt").exists()) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let opts = harbinger_change::predict::SubmitOptions { monitor_for: Duration::ZERO, ..Default::default() };
    harbinger_change::predict::watch_dir(e.clone(), watch.clone(), Duration::from_millis(50), opts, stop).await;

    let report: Value = serde_json::from_slice(&std::fs::read(done.join("a.yaml.report.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "applied", "{report}");
    assert_eq!(report["prediction"], "positive");
    assert!(std::fs::read_to_string(tmp.path().join("web.json")).unwrap().contains("\"workers\": 6"));
    let err = std::fs::read_to_string(done.join("b.yaml.error.txt")).unwrap();
    assert!(err.contains("b.yaml"), "the error names the file: {err}");
    assert!(!watch.join("a.yaml").exists() && !watch.join("b.yaml").exists(), "submitted files are moved");
    assert!(watch.join("notes.txt").exists(), "other files are left alone");
    assert_eq!(e.store().changes(None).unwrap().len(), 1, "each template submitted once");
}

/// Starts HAProxy from `deploy/haproxy/canary.cfg.tmpl` in front of `live`; answers the
/// process, the frontend and the runtime API socket.
async fn canary_haproxy(dir: &Path, live: &str) -> (Proc, String, PathBuf) {
    const HAPROXY: &str = "/usr/sbin/haproxy";
    assert!(Path::new(HAPROXY).exists(), "{HAPROXY} not found: apt-get install haproxy");
    let sock = dir.join("haproxy.sock");
    let front = format!("127.0.0.1:{}", free_port());
    let cfg = include_str!("../../../deploy/haproxy/canary.cfg.tmpl")
        .replace("{{stats_socket}}", &sock.display().to_string())
        .replace("{{bind}}", &front)
        .replace("{{live}}", live);
    std::fs::write(dir.join("haproxy.cfg"), cfg).unwrap();
    let child = Command::new(HAPROXY)
        .arg("-db")
        .arg("-f")
        .arg(dir.join("haproxy.cfg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(sock.exists() && std::net::TcpStream::connect(&front).is_ok()) {
        assert!(Instant::now() < deadline, "haproxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc(child), front, sock)
}

/// A static HTTP server (`python3 -m http.server`) on a free port.
async fn http_server(dir: &Path) -> (Proc, String) {
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "python3 http.server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc(child), addr)
}

fn canary_config(sock: &Path, scope: &str, marker: &Path, app: &Path, cache: &str) -> harbinger_change::canary::Checked {
    let text = format!(
        r#"
id = "full"
scope = "{scope}"
[haproxy]
api = "{sock}"
backend = "be_app"
live = ["v1"]
[shadow]
command = ["sh", "-c", "echo \"$0 $1\" > {marker}; exec python3 -m http.server \"$2\" --bind 127.0.0.1", "{{config:app}}", "{{data:cache}}", "{{port}}"]
health_path = "/"
[[shadow.config]]
id = "app"
live = "{app}"
set = {{ "/server/workers" = 8 }}
[[shadow.data]]
id = "cache"
live = "{cache}"
[analysis]
steps = [50]
interval = "1s"
count = 1
sample_every = "100ms"
min_samples = 3
[[analysis.kpi]]
name = "error_rate"
critical = true
min_delta = 0.01
"#,
        sock = sock.display(),
        marker = marker.display(),
        app = app.display(),
    );
    harbinger_change::canary::CanaryConfig::parse(&text, "test").unwrap().check().unwrap()
}

/// A full shadow stack (scope `data`): the configuration file copied with the change, a
/// Redis replica of the live store in sync before any traffic, both handed to the shadow
/// instances; on promotion the replica becomes a primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_shadow_stack_copies_configuration_and_data_and_promotes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (_redis, cache) = redis(tmp.path()).await;
    seed_cache(&cache).await;
    setup_web(tmp.path());
    let (_v1, v1) = http_server(tmp.path()).await;
    let (_haproxy, front, sock) = canary_haproxy(tmp.path(), &v1).await;
    let marker = tmp.path().join("marker");
    let checked = canary_config(&sock, "data", &marker, &tmp.path().join("web.json"), &cache);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, url) = (stop.clone(), format!("http://{front}/"));
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _r = c.get(&url).send().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let records = tmp.path().join("rollouts");
    let clock = Arc::new(ManualClock::new(T0));
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        harbinger_change::canary::run(checked, clock, &records, std::future::pending(), None),
    )
    .await
    .expect("the rollout ends")
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    let r = &done.record;
    assert_eq!(r.decision.as_deref(), Some("promoted"), "{:#?}", r.events);
    assert_eq!(r.scale.scope, harbinger_plan::rollout::ChangeScope::Data);
    assert!(r.scale.full_stack);
    let copy = r.copies.iter().find(|c| c.id == "config:app").expect("the configuration copy");
    let data = r.copies.iter().find(|c| c.id == "data:cache").expect("the data replica");
    // The instances were given both.
    let given = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(given.trim(), format!("{} {}", copy.endpoint, data.endpoint));
    // The copy is the live configuration with the change; the live file is untouched.
    let v: Value = serde_json::from_slice(&std::fs::read(&copy.endpoint).unwrap()).unwrap();
    assert_eq!((v["server"]["workers"].clone(), v["server"]["port"].clone(), v["legacy"].clone()), (json!(8), json!(8080), json!(true)));
    let live: Value = serde_json::from_slice(&std::fs::read(tmp.path().join("web.json")).unwrap()).unwrap();
    assert_eq!(live["server"]["workers"], 4);
    // The replica holds the live data and, promoted, takes writes of its own.
    assert_eq!(get(&data.endpoint, "old:key").await.as_deref(), Some("keep-me"));
    let role = RedisClient::connect(&data.endpoint, Duration::from_secs(1)).await.unwrap().role().await.unwrap();
    assert_eq!(role, "master");
    let kinds: Vec<&str> = r.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"copied") && kinds.contains(&"copy_promoted"), "{kinds:?}");
    done.processes.stop_all().await;
}

/// A rollout stopped by the operator rolls back and removes the shadow stack's copies:
/// the data replica is shut down and the configuration copies deleted. With scope below
/// `data` the shadow stack shares the live store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_removes_the_copies_and_a_smaller_scope_shares_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (_redis, cache) = redis(tmp.path()).await;
    setup_web(tmp.path());
    let (_v1, v1) = http_server(tmp.path()).await;
    let (_haproxy, _front, sock) = canary_haproxy(tmp.path(), &v1).await;
    for scope in ["data", "config"] {
        let marker = tmp.path().join(format!("marker-{scope}"));
        let checked = canary_config(&sock, scope, &marker, &tmp.path().join("web.json"), &cache);
        let records = tmp.path().join(format!("rollouts-{scope}"));
        let stop = async {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !marker.exists() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let done = tokio::time::timeout(
            Duration::from_secs(60),
            harbinger_change::canary::run(checked, Arc::new(ManualClock::new(T0)), &records, stop, None),
        )
        .await
        .expect("the rollout ends")
        .unwrap();
        let r = &done.record;
        assert_eq!(r.decision.as_deref(), Some("rolled_back"), "{scope}: {:#?}", r.events);
        assert!(r.events.iter().any(|e| e.kind == "rollback" && e.detail.contains("stopped by the operator")));
        let given = std::fs::read_to_string(&marker).unwrap();
        let copy = r.copies.iter().find(|c| c.id == "config:app").expect("the configuration copy");
        assert!(!Path::new(&copy.endpoint).exists(), "{scope}: the configuration copy is removed");
        match scope {
            "data" => {
                let data = r.copies.iter().find(|c| c.id == "data:cache").expect("the data replica");
                assert!(given.contains(&data.endpoint) && data.endpoint != cache);
                assert!(RedisClient::connect(&data.endpoint, Duration::from_millis(300)).await.is_err(), "the replica is stopped");
            }
            _ => {
                assert!(!r.copies.iter().any(|c| c.id == "data:cache"), "no data copy below scope data");
                assert!(given.trim().ends_with(&cache), "the shadow stack shares the live store: {given}");
            }
        }
    }
}
