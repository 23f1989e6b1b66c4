//! Time scales follow the data: synthetic fleets sampled every 15 s, every minute and
//! once a day train and evaluate with the same commands, and the model records the scales
//! it was trained with. Also the split by failures, and a held-out part of the hosts.

mod common;

use std::path::Path;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Synth → train → eval for one sampling step; returns the train output, the model.json
/// value and the eval summary.
fn round_trip(dir: &Path, step: &str, hosts: &str, days: &str, horizon: &str) -> (String, serde_json::Value, serde_json::Value) {
    let data = dir.join(format!("data-{step}"));
    let model = dir.join(format!("model-{step}"));
    let (code, out, err) = common::run(&["synth", "--out", &s(&data), "--hosts", hosts, "--days", days, "--step", step, "--seed", "5"]);
    assert_eq!(code, 0, "synth {step}: {out}\n{err}");
    let (code, train_out, err) =
        common::run(&["--log-level", "warn", "train", "--data", &s(&data), "--out", &s(&model), "--horizon", horizon, "--trees", "8"]);
    assert_eq!(code, 0, "train {step}: {train_out}\n{err}");
    assert!(model.join("model.json").is_file(), "model written for {step}");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).expect("model.json")).expect("json");
    let card = std::fs::read_to_string(model.join("MODEL_CARD.md")).expect("card");
    assert!(card.contains("- Time scales: data step"), "{card}");
    // The card and the artifact also record the threshold rule with its bootstrap
    // settings, and the detector the anomaly features were computed with.
    assert!(
        card.contains("- Alert threshold chosen on the held-back part: the most held-back recall with precision >= 0.85")
            && card.contains("10th percentile of 200 resamples of the held-back hosts"),
        "{card}"
    );
    assert!(card.contains("- Anomaly detector: ") && card.contains("warmup 250"), "{card}");
    assert!(m["card"]["threshold_rule"].as_str().is_some_and(|r| r.contains("candidate")), "{}", m["card"]);
    assert_eq!(m["schema"]["detector"]["warmup"], 250, "{step}: the detector's parameters are in the schema");
    let ev = dir.join(format!("eval-{step}"));
    let (code, out, err) =
        common::run(&["--log-level", "warn", "eval", "--data", &s(&data), "--model", &s(&model), "--out", &s(&ev), "--json"]);
    assert_eq!(code, 0, "eval {step}: {out}\n{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).expect("summary JSON");
    (train_out, m, summary)
}

fn train_rows(out: &str) -> (u64, u64, u64, u64) {
    // "  rows         train N (P failure rows), held back M (Q)"
    let line = out.lines().find(|l| l.trim_start().starts_with("rows")).expect("rows line");
    let nums: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty()).map(|t| t.parse().expect("number")).collect();
    (nums[0], nums[1], nums[2], nums[3])
}

#[test]
fn fleets_at_15_seconds_a_minute_and_a_day_train_and_evaluate() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (step, hosts, days, horizon, step_ms) in
        [("15s", "40", "3", "6h", 15_000), ("1m", "40", "4", "6h", 60_000), ("1d", "60", "300", "14d", 86_400_000)]
    {
        let (out, m, summary) = round_trip(dir.path(), step, hosts, days, horizon);
        let (train, train_pos, held, held_pos) = train_rows(&out);
        assert!(train_pos > 0 && train_pos < train, "{step}: rows of both classes in training: {out}");
        assert!(held_pos > 0 && held_pos < held, "{step}: rows of both classes held back: {out}");
        assert!(out.contains("before the split (training)"), "{out}");
        let scales = &m["schema"]["scales"];
        assert_eq!(scales["step_ms"], step_ms, "{step}: {scales}");
        if step == "1d" {
            assert_eq!(scales["bucket_ms"], 86_400_000, "{scales}");
            assert_eq!(scales["warning_ms"], 14 * 86_400_000_i64, "{scales}");
        } else {
            // Minute-level data and the default horizon: today's scales.
            assert_eq!(scales["bucket_ms"], 300_000);
            assert_eq!(scales["stale_ms"], 600_000);
            assert_eq!(scales["mid_ms"], 3_600_000);
            assert_eq!(scales["warning_ms"], 21_600_000);
        }
        assert!(summary["failures"].as_u64().expect("failures") > 0, "{step}: {summary}");
        assert!(summary["recall"].as_f64().expect("recall") > 0.0, "{step}: {summary}");
    }
}

#[test]
fn old_models_without_time_scales_still_score_minute_data() {
    // The shipped default model predates the field: it loads with today's scales.
    let text = std::fs::read_to_string(common::repo().join("models/default/model.json")).expect("default model");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert!(v["schema"].get("scales").is_none(), "the shipped model has no recorded scales");
    let m = harbinger_registry::load(&common::repo().join("models/default")).expect("loads");
    assert!(m.schema.scales.is_reference());
    assert_eq!(m.schema.scales, harbinger_model::features::TimeScales::reference());
}

#[test]
fn a_split_with_too_few_failures_is_refused_with_advice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (code, out, err) = common::run(&["synth", "--out", &s(&data), "--hosts", "40", "--days", "4", "--step", "1m", "--seed", "5"]);
    assert_eq!(code, 0, "{out}\n{err}");
    // Keep only the first three failures.
    let f = data.join("failures.csv");
    let text = std::fs::read_to_string(&f).expect("failures");
    let kept: Vec<&str> = text.lines().take(4).collect();
    std::fs::write(&f, kept.join("\n") + "\n").expect("write");
    let model = dir.path().join("m");
    let (code, out, err) = common::run(&["--log-level", "warn", "train", "--data", &s(&data), "--out", &s(&model), "--trees", "4"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("3 failures") && err.contains("fewer than 2 in a part"), "{err}");
    assert!(!model.join("model.json").exists());
}

#[test]
fn the_host_parts_are_disjoint_and_cover_the_fleet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (code, out, err) = common::run(&["synth", "--out", &s(&data), "--hosts", "40", "--days", "4", "--step", "1m", "--seed", "5"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let model = dir.path().join("m");
    let (code, out, err) =
        common::run(&["--log-level", "warn", "train", "--data", &s(&data), "--out", &s(&model), "--trees", "4", "--hosts-part", "train"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).expect("model")).expect("json");
    let trained_hosts = m["card"]["hosts"].as_u64().expect("hosts");
    let ev = dir.path().join("ev");
    let (code, out, err) = common::run(&[
        "--log-level",
        "warn",
        "eval",
        "--data",
        &s(&data),
        "--model",
        &s(&model),
        "--out",
        &s(&ev),
        "--json",
        "--hosts-part",
        "holdout",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).expect("json");
    let held_hosts = summary["hosts"].as_u64().expect("hosts");
    assert_eq!(trained_hosts + held_hosts, 40, "{trained_hosts} + {held_hosts}");
    assert!(held_hosts >= 4 && trained_hosts >= 20, "{trained_hosts} / {held_hosts}");
    let (code, _, err) = common::run(&[
        "eval",
        "--data",
        &s(&data),
        "--model",
        &s(&model),
        "--out",
        &s(&ev),
        "--hosts-part",
        "holdout",
        "--holdout-hosts",
        "1.5",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--holdout-hosts"), "{err}");
}

/// The Backblaze drive set (daily SMART attributes, real failures), read in place from
/// `../shared/datasets/backblaze-train` when present: a 14-day model trains on a subset of
/// the drives with scales derived from the daily step, and both it and the SMART rule
/// baseline evaluate. The full run, on drives unseen in training, is `bench/backblaze.sh`.
#[test]
fn backblaze_drives_train_and_evaluate_at_a_daily_step() {
    let data = common::repo().join("../shared/datasets/backblaze-train");
    if !data.join("metrics.parquet").is_file() {
        eprintln!("skipped: no Backblaze dataset at {}", data.display());
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("model");
    // About 12 % of the drives (the `holdout` part of a 0.12 host split), to stay fast.
    let subset = ["--hosts-part", "holdout", "--holdout-hosts", "0.12"];
    let mut args = vec!["--log-level", "warn", "train", "--data", data.to_str().expect("utf-8"), "--out", model.to_str().expect("utf-8")];
    args.extend(["--horizon", "14d", "--trees", "8", "--target-precision", "0.5"]);
    args.extend(subset);
    let (code, out, err) = common::run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    let (train, train_pos, held, held_pos) = train_rows(&out);
    assert!(train_pos > 0 && train_pos < train && held_pos > 0 && held_pos < held, "{out}");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).expect("model")).expect("json");
    assert_eq!(m["schema"]["scales"]["step_ms"], 86_400_000, "the step of dataset.json");
    assert_eq!(m["schema"]["scales"]["warning_ms"], 14 * 86_400_000_i64);
    let ev = dir.path().join("eval");
    let mut args = vec!["--log-level", "warn", "eval", "--data", data.to_str().expect("utf-8"), "--model", model.to_str().expect("utf-8")];
    args.extend(["--out", ev.to_str().expect("utf-8"), "--json"]);
    args.extend(subset);
    let (code, out, err) = common::run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    let s: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(s["failures"].as_u64().expect("failures") > 100, "{s}");
    assert!(s["recall"].as_f64().expect("recall") > 0.2, "{s}");
    // The SMART rule baseline through the rules mechanism, on the same drives.
    let rules = common::repo().join("bench/smart-rules.toml");
    let rv = dir.path().join("rules");
    let mut args = vec!["--log-level", "warn", "eval", "--data", data.to_str().expect("utf-8"), "--baseline", "prometheus-rules"];
    args.extend(["--rules", rules.to_str().expect("utf-8"), "--tick", "1d", "--warning", "14d", "--out", rv.to_str().expect("utf-8")]);
    args.extend(["--json"]);
    args.extend(subset);
    let (code, out, err) = common::run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    let r: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r["failures"], s["failures"], "the same drives");
    assert!(r["alerts"].as_u64().expect("alerts") > 0, "{r}");
}
