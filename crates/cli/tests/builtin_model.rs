//! `harbinger serve` started where there is no `models/default` (here: the test's own
//! directory, `crates/cli`) serves the default model built into the binary.

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
    let serve = Serve::start(&data, &[]);
    let (code, body) = get(&format!("{}/api/v1/risk", serve.url));
    assert_eq!(code, 200, "risk is served, not 503: {body}");
    let risks: serde_json::Value = serde_json::from_str(&body).expect("json");
    let first = &risks.as_array().expect("a list")[0];
    let built_in: serde_json::Value = serde_json::from_str(harbinger_model::EMBEDDED_DEFAULT).expect("model json");
    assert_eq!(first["model_version"], built_in["version"], "scored by the built-in model: {first}");
    assert!(first["risk"].as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)), "{first}");
    assert_eq!(serve.terminate(), 0);
}
