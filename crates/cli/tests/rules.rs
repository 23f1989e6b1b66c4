//! `harbinger eval --baseline prometheus-rules` end to end on the shipped sample fleet.

mod common;

use std::collections::HashSet;
use std::path::Path;

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fleet-sample")
}

/// `(host, timestamp)` rows of a CSV with those two leading columns and a header.
fn rows(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .skip(1)
        .map(|l| {
            let mut c = l.split(',');
            let host = c.next().expect("host column").to_string();
            let ts = c.next().expect("timestamp column").parse().expect("integer timestamp");
            (host, ts)
        })
        .collect()
}

#[test]
fn rules_baseline_writes_alerts_and_a_summary_consistent_with_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("rules");
    let (d, o) = (sample().display().to_string(), out_dir.display().to_string());
    let (code, out, err) =
        common::run(&["--log-level", "warn", "eval", "--data", &d, "--baseline", "prometheus-rules", "--out", &o, "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let s: serde_json::Value = serde_json::from_str(&out).expect("summary JSON on stdout");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).expect("summary.json")).expect("json");
    assert_eq!(written, s);
    assert_eq!((s["hosts"].as_u64(), s["failures"].as_u64()), (Some(20), Some(17)));
    assert!(s.get("model_version").is_none(), "no model produced these alerts");

    let text = std::fs::read_to_string(out_dir.join("alerts.csv")).expect("alerts.csv");
    assert!(text.starts_with("host,timestamp,score\n"), "{text}");
    assert!(text.lines().skip(1).all(|l| l.ends_with(",1.000000")), "rules alert with score 1");
    let alerts = rows(&text);
    assert_eq!(alerts.len() as u64, s["alerts"].as_u64().expect("alerts"));
    assert!(!alerts.is_empty(), "the default rules fire on the sample fleet");
    assert!(alerts.windows(2).all(|w| w[0].1 <= w[1].1), "alerts in time order");
    let inventory = std::fs::read_to_string(sample().join("hosts.csv")).expect("hosts.csv");
    let hosts: HashSet<&str> = inventory.lines().skip(1).filter_map(|l| l.split(',').next()).collect();
    assert_eq!(hosts.len(), 20);
    assert!(alerts.iter().all(|(h, _)| hosts.contains(h.as_str())), "every alert names a host of hosts.csv");

    // The contract rule recomputed here from the two files.
    let failures = rows(&std::fs::read_to_string(sample().join("failures.csv")).expect("failures.csv"));
    let six_h = 6 * 3_600_000;
    let false_alarms = alerts.iter().filter(|(h, t)| !failures.iter().any(|(fh, ft)| fh == h && *ft > *t && ft - t <= six_h)).count();
    let predicted = failures.iter().filter(|(fh, ft)| alerts.iter().any(|(h, t)| h == fh && *t >= ft - six_h && *t <= ft - 60_000)).count();
    assert_eq!(s["false_alarms"].as_u64(), Some(false_alarms as u64));
    assert_eq!(s["predicted"].as_u64(), Some(predicted as u64));
    let precision = (alerts.len() - false_alarms) as f64 / alerts.len() as f64;
    assert!((s["precision"].as_f64().expect("precision") - precision).abs() < 1e-12);
    let recall = predicted as f64 / failures.len() as f64;
    assert!((s["recall"].as_f64().expect("recall") - recall).abs() < 1e-12);
}

#[test]
fn a_rule_file_replaces_the_defaults_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = sample().display().to_string();
    // One rule that is certain to fire: memory above 10 % for 5 minutes, on every host.
    let file = dir.path().join("rules.toml");
    std::fs::write(&file, "[[rules]]\nalert = \"AnyMemory\"\nmetric = \"mem_util\"\nabove = 0.1\n\n[[rules]]\nalert = \"Fans\"\nmetric = \"fan_rpm\"\nbelow = 100\n")
        .expect("write");
    let (f, o) = (file.display().to_string(), dir.path().join("out").display().to_string());
    let (code, out, err) =
        common::run(&["--log-level", "warn", "eval", "--data", &d, "--baseline", "prometheus-rules", "--rules", &f, "--out", &o]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("eval of baseline prometheus-rules") && out.contains("rule AnyMemory"), "{out}");
    assert!(out.contains("rule Fans") && out.contains("skipped (no fan_rpm in the dataset)"), "{out}");
    assert!(!out.contains("HostHighCpu"), "the file replaced the default rules: {out}");
    let alerts = rows(&std::fs::read_to_string(dir.path().join("out/alerts.csv")).expect("alerts.csv"));
    let alerted: HashSet<&str> = alerts.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(alerted.len(), 20, "every host's memory is above 10 %");

    std::fs::write(&file, "[[rules]]\nalert = \"Broken\"\nmetric = \"mem_util\"\nabove = 0.9\nfor = \"a while\"\n").expect("write");
    let (code, _, err) =
        common::run(&["--log-level", "warn", "eval", "--data", &d, "--baseline", "prometheus-rules", "--rules", &f, "--out", &o]);
    assert_ne!(code, 0);
    assert!(err.contains("rules.toml") && err.contains("\"Broken\"") && err.contains("`for`"), "{err}");
}
