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
