//! `harbinger train` and `harbinger eval` end to end on the shipped sample fleet.

mod common;

use std::path::Path;

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fleet-sample").display().to_string()
}

#[test]
fn train_then_eval_writes_the_model_card_alerts_and_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("model");
    let m = model.display().to_string();
    let (code, out, err) =
        common::run(&["--log-level", "warn", "train", "--data", &sample(), "--out", &m, "--tick", "15m", "--trees", "4"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("written to") && out.contains("held back"), "{out}");
    assert!(model.join("model.json").is_file());
    let card = std::fs::read_to_string(model.join("MODEL_CARD.md")).expect("card");
    assert!(card.contains("synth-20h-7d-seed3") && card.contains("Split by time"), "{card}");

    let out_dir = dir.path().join("eval");
    let o = out_dir.display().to_string();
    let (code, out, err) =
        common::run(&["--log-level", "warn", "eval", "--data", &sample(), "--model", &m, "--out", &o, "--tick", "5m", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let s: serde_json::Value = serde_json::from_str(&out).expect("summary JSON on stdout");
    assert_eq!(s["failures"], 17);
    assert_eq!(s["hosts"], 20);
    let alerts = std::fs::read_to_string(out_dir.join("alerts.csv")).expect("alerts.csv");
    assert!(alerts.starts_with("host,timestamp,score\n"));
    assert_eq!(alerts.lines().count() as u64 - 1, s["alerts"].as_u64().expect("alerts"));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(written, s);
}

#[test]
fn train_refuses_data_without_failures_and_eval_names_a_corrupt_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("nofail");
    std::fs::create_dir(&data).expect("mkdir");
    for f in ["hosts.csv", "resources.json", "metrics.parquet", "events.jsonl", "dataset.json"] {
        std::fs::copy(Path::new(&sample()).join(f), data.join(f)).expect("copy");
    }
    let d = data.display().to_string();
    let out = dir.path().join("m").display().to_string();
    let (code, _, err) = common::run(&["--log-level", "warn", "train", "--data", &d, "--out", &out]);
    assert_ne!(code, 0);
    assert!(err.contains("no failures") && err.contains("cannot be learned"), "{err}");
    assert!(!Path::new(&out).join("model.json").exists(), "no useless model is written");

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    std::fs::write(bad.join("model.json"), "not json").expect("write");
    let b = bad.display().to_string();
    let e = dir.path().join("e").display().to_string();
    let (code, _, err) = common::run(&["--log-level", "warn", "eval", "--data", &d, "--model", &b, "--out", &e]);
    assert_ne!(code, 0);
    assert!(err.contains("model.json") && err.contains("corrupt"), "{err}");
}
