//! The Python client (grpcio, stubs generated from `proto/` with grpcio-tools) scores hosts
//! and simulates a change against a running `harbinger serve` with the default model: the
//! contract works from outside Rust. Needs `python3` with `grpcio` and `grpcio-tools`
//! (scripts/test.sh installs them); `HARBINGER_PYTHON` names another interpreter.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Serve, run};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

#[test]
fn the_python_client_scores_hosts_against_serve() {
    let python = std::env::var("HARBINGER_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import grpc, grpc_tools"]).output();
    let ok = probe.as_ref().is_ok_and(|o| o.status.success());
    assert!(ok, "{python} with grpcio and grpcio-tools is needed (scripts/test.sh installs them): {probe:?}");

    let model = std::env::var_os("HARBINGER_TEST_MODEL").map_or_else(|| repo().join("models/default"), PathBuf::from);
    assert!(model.join("model.json").exists(), "{} has no model.json", model.display());
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let fleet = repo().join("datasets/fleet-sample");
    let (code, out, err) = run(&["--data-dir", data.to_str().expect("utf-8"), "ingest", "--data", fleet.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "ingest: {out}{err}");
    let cfg = tmp.path().join("harbinger.toml");
    std::fs::write(&cfg, format!("[model]\ndir = {:?}\n[auth]\ntoken = \"py-t0ken\"\n", model.display().to_string())).expect("config");
    let serve = Serve::start(&data, &["--config", cfg.to_str().expect("utf-8")]);

    let out = Command::new(&python)
        .arg(repo().join("tests/python/test_grpc_client.py"))
        .args(["--grpc", &serve.grpc, "--token", "py-t0ken"])
        .output()
        .expect("run the Python tests");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Python client tests failed:\n{stderr}");
    assert!(stderr.contains("Ran 7 tests") && stderr.contains("OK"), "all seven Python tests ran:\n{stderr}");
    assert_eq!(serve.terminate(), 0);
}
