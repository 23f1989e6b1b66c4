//! The code behind every in-process figure of BENCHMARKS.md runs in the suite: each
//! `harbinger bench` subcommand that needs no outside peer, on tiny inputs. Figures are not
//! checked (timing belongs to the benchmarks); the section must come out complete.
//! (`bench failover` is the demo's code, run by `tests/demo.rs`; the peers of `bench grpc`
//! and `bench ingest` are run by their scripts: here each runs harbinger's side alone.)

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

#[test]
fn bench_soak_drives_every_kind_and_reports_memory_and_outcomes() {
    let (code, out, err) =
        run(&["--log-level", "warn", "bench", "soak", "--minutes", "0.1", "--rate", "40", "--hosts", "40", "--interval", "2s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("### Soak: 6 s of mixed load and faults against `harbinger serve`"), "{out}");
    assert!(out.contains("Memory rule: flat when"), "{out}");
    assert_eq!(row(&out, "server crashed")[0], "no", "{out}");
    assert!(row(&out, "unexpected outcomes / requests")[0].starts_with("**0** / "), "{out}");
    let rss = row(&out, "RSS after the warm-up");
    assert!(number(rss[0]) > 1.0, "{out}");
    assert!(row(&out, "RSS trend after the warm-up")[0].ends_with(" MiB/min"), "{out}");
    // Six seconds have no steady state: the figures are there, the rule is not applied.
    assert!(row(&out, "memory flat")[0].starts_with("not judged"), "{out}");
    assert_eq!(row(&out, "stop after the soak (SIGTERM)")[0].split(" in ").next(), Some("exit 0"), "{out}");
    assert_eq!(row(&out, "verdict")[0], "**pass**", "{out}");
    // The valid kinds answer, with latencies.
    let ingest = row(&out, "valid remote write");
    assert!(ingest[2].contains("204 × "), "{out}");
    assert!(number(ingest[4]) > 0.0 && number(ingest[5]) > 0.0, "p50 and p99: {out}");
    assert!(row(&out, "gRPC ScoreHosts")[2].contains("OK × "), "{out}");
    // The over-time table has a row per interval and one at the end.
    let header = out.lines().position(|l| l.starts_with("| t (s) | RSS (MiB)")).unwrap_or_else(|| panic!("no over-time table: {out}"));
    assert!(out.lines().skip(header + 2).take_while(|l| l.starts_with('|')).count() >= 3, "{out}");
    // Progress on stderr every interval.
    assert!(err.contains("soak ") && err.contains("MiB"), "{err}");
}

#[test]
fn bench_ingest_reports_parquet_decode_and_http_figures() {
    let (code, out, err) = run(&[
        "--log-level",
        "warn",
        "bench",
        "ingest",
        "--hosts",
        "2",
        "--days",
        "0.2",
        "--requests",
        "16",
        "--series-per-request",
        "20",
        "--runs",
        "1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("16 requests x 20 series x 1 samples (320 samples"), "{out}");
    for figure in ["Parquet read + validate + store", "remote-write decode + store, 1 thread", "remote-write over HTTP, harbinger"] {
        assert!(number(row(&out, figure)[0]) > 0.0, "{figure}: {out}");
    }
}

#[test]
fn bench_grpc_scores_the_stored_hosts_with_no_failed_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("harbinger.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n", dir.path().join("data").display().to_string())).expect("config");
    let fleet = dir.path().join("fleet");
    let fleet_s = fleet.display().to_string();
    let (code, out, err) = run(&["--log-level", "warn", "synth", "--hosts", "12", "--days", "1", "--seed", "3", "--out", &fleet_s]);
    assert_eq!(code, 0, "{out}{err}");
    let config_s = config.display().to_string();
    let (code, out, err) = run(&["--config", &config_s, "--log-level", "warn", "ingest", "--data", &fleet_s]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&[
        "--config",
        &config_s,
        "--log-level",
        "warn",
        "bench",
        "grpc",
        "--seconds",
        "0.3",
        "--runs",
        "1",
        "--rate",
        "50",
        "--batch",
        "5",
        "--concurrency",
        "2",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Workload: 12 hosts,"), "{out}");
    assert!(number(row(&out, "Ping (empty RPC), the ceiling")[0]) > 0.0, "{out}");
    assert!(number(row(&out, "ScoreHosts, batches of 5")[0]) > 0.0, "{out}");
    assert_eq!(row(&out, "ScoreHosts 1 host at 50 req/s: failed requests")[0], "0 [0]", "{out}");
}
