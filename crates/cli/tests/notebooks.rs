//! The notebooks under `notebooks/` run headless (nbclient and the python3 kernel, installed
//! by `scripts/test.sh`) on real inputs made here: a registry with two model versions and
//! an evaluation's output over `datasets/fleet-sample`. Each must run to the end and draw
//! at least one figure.

mod common;

use std::path::Path;
use std::process::Command;

use common::run;

#[test]
fn every_notebook_runs_headless_and_draws() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root");
    let tmp = tempfile::tempdir().expect("tempdir");
    let reg = tmp.path().join("registry");
    let out = tmp.path().join("eval");
    let data = root.join("datasets/fleet-sample");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let (code, _, err) = run(&["models", "--registry", &s(&reg), "publish", "failure", &s(&root.join("models/default"))]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["train", "--data", &s(&data), "--trees", "4", "--publish", "failure", "--registry", &s(&reg)]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        run(&["eval", "--data", &s(&data), "--model", &s(&root.join("models/default")), "--out", &s(&out), "--trace-every", "10m"]);
    assert_eq!(code, 0, "{err}");

    let ran = Command::new("python3")
        .arg(root.join("tests/notebooks/run.py"))
        .arg(tmp.path().join("executed"))
        .env("HARBINGER_ROOT", &root)
        .env("HARBINGER_DATASET", &data)
        .env("HARBINGER_REGISTRY", &reg)
        .env("HARBINGER_MODEL_NAME", "failure")
        .env("HARBINGER_REPLAY_OUT", &out)
        .output()
        .expect("python3 (install: apt-get install python3; pip install nbclient nbformat ipykernel polars matplotlib)");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "notebooks failed:\n{stdout}\n{stderr}");
    for nb in ["analyse_replay.ipynb", "compare_models.ipynb", "explore_dataset.ipynb"] {
        assert!(stdout.lines().any(|l| l.starts_with("ok   ") && l.contains(nb)), "{nb} did not run:\n{stdout}\n{stderr}");
    }
}
