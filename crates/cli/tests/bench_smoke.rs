//! The code behind every in-process figure of BENCHMARKS.md runs in the suite: each
//! `harbinger bench` subcommand that needs no outside peer, on tiny inputs. Figures are not
//! checked (timing belongs to the benchmarks); the section must come out complete.
//! (`bench failover` is the demo's code, run by `tests/demo.rs`; `bench grpc` and
//! `bench ingest` against peers are run by their scripts.)

mod common;

/// Runs `harbinger ARGS` from the repository root (where `models/default` and
/// `datasets/` are, as for the bench scripts): exit code, stdout, stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let o = std::process::Command::new(common::bin())
        .args(args)
        .current_dir(root)
        .env_remove("HARBINGER_CONFIG")
        .output()
        .expect("run harbinger");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The value cells of the section's table rows whose label starts with `row`.
fn row<'a>(out: &'a str, label: &str) -> Vec<&'a str> {
    let line = out.lines().find(|l| l.starts_with(&format!("| {label}"))).unwrap_or_else(|| panic!("no row starting {label:?} in:\n{out}"));
    line.trim_matches('|').split('|').map(str::trim).skip(1).collect()
}

/// The first number in a cell (`**12.3 ms** [..]` gives 12.3).
fn number(cell: &str) -> f64 {
    let s: String =
        cell.trim_start_matches(|c: char| !c.is_ascii_digit()).chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    s.parse().unwrap_or_else(|_| panic!("no number in {cell:?}"))
}

#[test]
fn bench_tick_reports_a_steady_tick_and_its_risk_step() {
    let (code, out, err) = run(&["--log-level", "warn", "bench", "tick", "--hosts", "60", "--runs", "3", "--window", "2h"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("### Engine tick, 60 hosts"), "{out}");
    let steady = row(&out, "steady tick, median of 3");
    assert!(number(steady[0]) > 0.0, "{out}");
    assert_eq!(steady[0].matches(',').count(), 2, "three runs listed: {out}");
    assert!(number(row(&out, "of which the risk step")[0]) > 0.0, "{out}");
}

#[test]
fn bench_score_reports_a_throughput() {
    let (code, out, err) = run(&["--log-level", "warn", "bench", "score", "--seconds", "1", "--runs", "1", "--batch", "10"]);
    assert_eq!(code, 0, "{out}{err}");
    let cells = row(&out, "host-scores per second, one core");
    assert!(number(cells[0]) > 0.0, "{out}");
    assert_eq!(cells[1], ">= 100 k", "{out}");
}

#[test]
fn bench_change_reports_the_analysis_and_round_trips() {
    let (code, out, err) =
        run(&["--log-level", "warn", "bench", "change", "--resources", "200", "--changed", "20", "--repeat", "1", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["resources"], 200, "{v}");
    assert_eq!(v["changed"], 20, "{v}");
    assert!(v["update_stack"].as_u64().is_some_and(|n| n >= 20), "each changed resource is in the update stack: {v}");
    assert!(v["change_risk"].as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)), "{v}");
    for part in ["whatif_default", "rollback", "snapshots", "files"] {
        assert!(v[part].as_object().is_some_and(|o| !o.is_empty()), "{part} measured: {v}");
    }
}
