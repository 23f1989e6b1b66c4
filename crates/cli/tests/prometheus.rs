//! A real Prometheus remote-writes into `harbinger serve`; the samples land in the store.
//!
//! Needs the `prometheus` binary (Debian package `prometheus`; `.ci/run` installs it), or
//! its path in `HARBINGER_PROMETHEUS_BIN`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Serve, free_port, get};
use harbinger_core::{MetricStore, SeriesKey};
use harbinger_store::{EmbeddedConfig, EmbeddedStore};

fn prometheus_bin() -> PathBuf {
    if let Ok(p) = std::env::var("HARBINGER_PROMETHEUS_BIN") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/prometheus", "/usr/local/bin/prometheus"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("prometheus not found: apt-get install prometheus (bash .ci/run installs it), or set HARBINGER_PROMETHEUS_BIN");
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _k = self.0.kill();
        let _w = self.0.wait();
    }
}

#[test]
fn prometheus_remote_writes_into_harbinger() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("harbinger-data");
    let serve = Serve::start(&data, &[]);

    let prom_port = free_port();
    let cfg = tmp.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n\
             remote_write:\n  - url: {url}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n",
            url = serve.url
        ),
    )
    .expect("write prometheus.yml");
    let prom = Killed(
        Command::new(prometheus_bin())
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", tmp.path().join("prom-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prometheus"),
    );

    // Wait until harbinger has received Prometheus' own `up` series, and a few scrapes of it.
    let instance = format!("127.0.0.1:{prom_port}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let ingested = loop {
        let (code, body) = get(&format!("{}/metrics", serve.url));
        assert_eq!(code, 200, "{body}");
        let n: f64 = body
            .lines()
            .find(|l| l.starts_with("harbinger_samples_ingested_total{source=\"remote_write\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if n >= 500.0 {
            break n;
        }
        assert!(Instant::now() < deadline, "only {n} samples arrived from Prometheus in 90 s");
        std::thread::sleep(Duration::from_millis(500));
    };
    let (_, health) = get(&format!("{}/healthz", serve.url));
    let health: serde_json::Value = serde_json::from_str(&health).expect("healthz json");
    assert!(health["series"].as_u64().is_some_and(|s| s > 50), "{health}");
    drop(prom);

    assert_eq!(serve.terminate(), 0, "clean exit on SIGTERM");

    // The samples are in the store on disk: reopen it and read Prometheus' `up` series.
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
    let store = EmbeddedStore::open(EmbeddedConfig::new(&data)).expect("reopen the store");
    let up = rt.block_on(store.range(&SeriesKey::new(&instance, "up"), 0, i64::MAX)).expect("`up` series stored");
    assert!(up.len() >= 2, "several scrapes of `up` stored, got {}", up.len());
    assert!(up.values.iter().all(|v| *v == 1.0), "Prometheus was up: {:?}", up.values);
    let series = rt.block_on(store.series()).expect("series");
    assert!(series.iter().any(|k| k.metric.as_str().starts_with("prometheus_http_requests_total{")), "labelled series kept apart");
    let stats = rt.block_on(store.stats()).expect("stats");
    assert!(stats.samples as f64 >= ingested, "all {ingested} acknowledged samples survived the restart ({} on disk)", stats.samples);
}

/// The shipped alerting rules (`deploy/prometheus/harbinger-alerts.yml`) load in
/// Prometheus (checked with `promtool`, from the same Debian package) and use only metric
/// names harbinger exports.
#[test]
fn the_shipped_alerting_rules_are_valid_and_name_exported_metrics() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/harbinger-alerts.yml");
    let promtool = prometheus_bin().with_file_name("promtool");
    let out = Command::new(&promtool).args(["check", "rules"]).arg(&rules).output().expect("run promtool");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("SUCCESS: 3 rules found"), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let exported = harbinger_api::telemetry::Telemetry::new();
    exported.set_host_states(&[harbinger_core::HostState {
        host: "h1".into(),
        risk: 0.5,
        failure_probability: 0.5,
        imminence: 1.0,
        alerting: false,
        cleared_at: None,
    }]);
    exported.circuit_open.get_or_create(&harbinger_engine::telemetry::StepLabel { actuator: "redis", step: 0 }).set(0);
    let exposition = exported.encode();
    let yaml = std::fs::read_to_string(&rules).expect("rules");
    for name in yaml.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("harbinger_")) {
        assert!(exposition.contains(&format!("{name}{{")), "{name} is not exported:\n{exposition}");
    }
}

/// `harbinger import prometheus` reads a real Prometheus (scraping itself every second)
/// over its HTTP API into a dataset that reads back; unreachable servers, bad times and
/// bad selectors fail with clear messages.
#[test]
fn import_prometheus_reads_a_real_server_into_a_dataset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let prom_port = free_port();
    let cfg = tmp.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let _prom = Killed(
        Command::new(prometheus_bin())
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", tmp.path().join("prom-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prometheus"),
    );
    let url = format!("http://127.0.0.1:{prom_port}");

    // Wait for at least 5 scrapes of `up`.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = get(&format!("{url}/api/v1/query?query=count_over_time(up[1m])"));
        let n = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse::<f64>().ok()))
            .unwrap_or(0.0);
        if code == 200 && n >= 5.0 {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus did not scrape itself 5 times in 60 s: {code} {body}");
        std::thread::sleep(Duration::from_millis(500));
    }

    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let events = tmp.path().join("events.jsonl");
    std::fs::write(
        &events,
        format!("{{\"ts\": {}, \"kind\": \"deploy_started\", \"host\": \"127.0.0.1\", \"deployment\": \"d-1\"}}\n", now_ms - 5_000),
    )
    .expect("events");
    let out = tmp.path().join("imported");
    let (code, stdout, stderr) = common::run(&[
        "import",
        "prometheus",
        "--url",
        &url,
        "--start",
        "now-1m",
        "--end",
        "now",
        "--step",
        "1s",
        "--events",
        events.to_str().expect("utf-8"),
        "--format",
        "csv",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("hosts             1"), "{stdout}");

    let (ds, _) = harbinger_dataset::read_dataset(&out, harbinger_dataset::LoadOptions::default()).expect("the import reads back");
    let hosts: Vec<&str> = ds.hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(hosts, ["127.0.0.1"], "instance without its port");
    let up = ds.metrics.iter().find(|s| s.key.metric.as_str() == "up").expect("`up` imported");
    assert!(up.len() >= 5 && up.values.iter().all(|v| *v == 1.0), "{up:?}");
    assert!(up.timestamps.windows(2).all(|w| w[1] - w[0] == 1_000), "1 s step: {:?}", up.timestamps);
    assert!(ds.metrics.len() > 50, "Prometheus' own series: {}", ds.metrics.len());
    assert!(
        ds.metrics
            .iter()
            .any(|s| s.key.metric.as_str().starts_with("prometheus_http_requests_total{") && s.key.metric.as_str().contains("handler=")),
        "labels other than job/instance folded into the name"
    );
    assert!(ds.metrics.iter().all(|s| s.values.iter().all(|v| v.is_finite())), "no NaN or infinities");
    assert_eq!(ds.events.len(), 1);
    assert_eq!(ds.events[0].deployment.as_deref(), Some("d-1"));
    assert!(ds.resources.is_empty() && ds.failures.is_empty());

    // The import loads into a store like any dataset.
    let data_dir = tmp.path().join("harbinger-data");
    let (code, stdout, stderr) =
        common::run(&["--data-dir", data_dir.to_str().expect("utf-8"), "ingest", "--data", out.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // A selector, chunked: 60 s at 1 ms steps is 60,001 points per series, six requests.
    let out2 = tmp.path().join("up-only");
    let (code, stdout, stderr) = common::run(&[
        "import",
        "prometheus",
        "--url",
        &url,
        "--start",
        "now-1m",
        "--end",
        "now",
        "--step",
        "1ms",
        "--match",
        "up",
        "--out",
        out2.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("requests          6"), "{stdout}");
    let (ds, _) = harbinger_dataset::read_dataset(&out2, harbinger_dataset::LoadOptions::default()).expect("reads back");
    assert_eq!(ds.metrics.len(), 1);
    assert!(ds.metrics[0].len() > 4_000, "{} samples at 1 ms", ds.metrics[0].len());

    // Errors: a bad selector (Prometheus' message), a bad time, nobody listening.
    let bad = |args: &[&str]| {
        let mut full = vec!["import", "prometheus", "--out", "/nonexistent/never-written"];
        full.extend_from_slice(args);
        let (code, stdout, stderr) = common::run(&full);
        assert_ne!(code, 0, "{args:?} should fail: {stdout}");
        stderr
    };
    let e = bad(&["--url", &url, "--start", "now-1m", "--end", "now", "--match", "up{"]);
    assert!(e.contains("bad_data") && e.contains("400"), "{e}");
    let e = bad(&["--url", &url, "--start", "yesterday", "--end", "now"]);
    assert!(e.contains("--start") && e.contains("invalid time"), "{e}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let e = bad(&["--url", &dead, "--start", "now-1m", "--end", "now", "--timeout", "5s"]);
    assert!(e.contains("cannot reach Prometheus"), "{e}");
    let e = bad(&["--url", &url, "--start", "now-1m", "--end", "now", "--match", "no_such_metric_anywhere"]);
    assert!(e.contains("no samples"), "{e}");
}
