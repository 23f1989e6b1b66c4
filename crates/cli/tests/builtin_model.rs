//! `harbinger serve` started where there is no `models/default` (here: the test's own
//! directory, `crates/cli`) serves the default model built into the binary, and exports
//! every host's risk as gauges on `/metrics`.

mod common;

use std::path::Path;

use common::{Serve, get, run};

#[test]
fn serve_without_a_model_directory_scores_with_the_built_in_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fleet-sample");
    let data = tmp.path().join("data");
    assert!(!Path::new("models/default/model.json").exists(), "the test runs where no model directory is");
    let (code, _, stderr) = run(&["--data-dir", data.to_str().expect("utf-8"), "ingest", "--data", fleet.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let cfg = tmp.path().join("harbinger.toml");
    std::fs::write(&cfg, "[engine]\ntick = \"200ms\"\n").expect("config");
    let serve = Serve::start(&data, &["--config", cfg.to_str().expect("utf-8")]);
    let (code, body) = get(&format!("{}/api/v1/risk", serve.url));
    assert_eq!(code, 200, "risk is served, not 503: {body}");
    let risks: serde_json::Value = serde_json::from_str(&body).expect("json");
    let first = &risks.as_array().expect("a list")[0];
    let built_in: serde_json::Value = serde_json::from_str(harbinger_model::EMBEDDED_DEFAULT).expect("model json");
    assert_eq!(first["model_version"], built_in["version"], "scored by the built-in model: {first}");
    assert!(first["risk"].as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)), "{first}");

    // After an engine tick, every host's risk, probability and alert state are gauges.
    let hosts = std::fs::read_to_string(fleet.join("hosts.csv")).expect("hosts.csv").lines().skip(1).filter(|l| !l.is_empty()).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let metrics = loop {
        let (_, m) = get(&format!("{}/metrics", serve.url));
        if m.lines().filter(|l| l.starts_with("harbinger_host_risk{")).count() == hosts {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no per-host gauges after 20 s:\n{m}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    for family in ["harbinger_host_failure_probability{", "harbinger_host_alerting{"] {
        assert_eq!(metrics.lines().filter(|l| l.starts_with(family)).count(), hosts, "{family}");
    }
    assert_eq!(serve.terminate(), 0);
}
