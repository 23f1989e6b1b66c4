//! The binary end to end: synth, ingest, serve, config, and their errors.

mod common;

use std::path::Path;

use common::{Serve, get, run, run_env};

fn read_all(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn synth_is_reproducible_and_ingest_reports_counts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for out in [&a, &b] {
        let (code, stdout, stderr) =
            run(&["synth", "--out", out.to_str().expect("utf-8"), "--hosts", "6", "--days", "2", "--step", "5m", "--seed", "3"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.starts_with(&format!("wrote {}: 6 hosts", out.display())), "{stdout}");
    }
    assert!(read_all(&a) == read_all(&b), "same seed, same bytes");
    let (_, _, _) = run(&[
        "synth",
        "--out",
        tmp.path().join("c").to_str().expect("utf-8"),
        "--hosts",
        "6",
        "--days",
        "2",
        "--step",
        "5m",
        "--seed",
        "4",
    ]);
    assert!(read_all(&a) != read_all(&tmp.path().join("c")), "another seed, another fleet");

    let data = tmp.path().join("store");
    let ingest = |json: bool| {
        let mut args = vec!["--data-dir", data.to_str().expect("utf-8"), "ingest", "--data", a.to_str().expect("utf-8")];
        if json {
            args.push("--json");
        }
        run(&args)
    };
    let (code, stdout, stderr) = ingest(true);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    let rows = v["load"]["metric_rows"].as_u64().expect("rows");
    let stored = v["ingest"]["samples"]["accepted"].as_u64().expect("stored");
    let missing = v["ingest"]["missing_values"].as_u64().expect("missing");
    assert_eq!(stored + missing, rows, "every row is stored or counted as missing");
    assert_eq!(v["ingest"]["hosts"], 6);
    assert_eq!(v["ingest"]["series"], 48, "6 hosts x 8 metrics");

    // Ingesting again stores nothing twice.
    let (code, stdout, _) = ingest(false);
    assert_eq!(code, 0);
    assert!(stdout.contains("samples stored    0\n"), "{stdout}");
    let rejected: u64 = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("samples rejected  "))
        .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(rejected, stored, "every sample is refused as duplicate or older than the stored ones: {stdout}");

    // What ingest wrote, serve reads.
    let serve = Serve::start(&data, &[]);
    let (code, body) = get(&format!("{}/healthz", serve.url));
    assert_eq!(code, 200);
    let h: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(h["samples"].as_u64(), Some(stored));
    assert_eq!(h["series"], 48);

    // While serve holds the directory, a second writer is refused, naming it.
    let (code, _, stderr) = ingest(false);
    assert_eq!(code, 1);
    assert!(stderr.contains("in use by another harbinger process"), "{stderr}");
    assert_eq!(serve.terminate(), 0);
}

#[test]
fn ingest_refuses_a_bad_dataset_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ds = tmp.path().join("ds");
    std::fs::create_dir_all(&ds).expect("mkdir");
    std::fs::write(ds.join("hosts.csv"), "host,zone,rack,cpu_cores,mem_gb\nh1,z,,8,32\n").expect("w");
    std::fs::write(ds.join("metrics.csv"), "timestamp,host,metric,value\n1000,h1,cpu,0.5\n2000,h1,cpu,1e999x\n").expect("w");
    let data = tmp.path().join("store");
    let (code, _, stderr) = run(&["--data-dir", data.to_str().expect("utf-8"), "ingest", "--data", ds.to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("metrics.csv line 3: `value` is not a number: \"1e999x\""), "{stderr}");
    assert!(!data.join("samples").exists(), "the store was not even opened");

    // With --skip-invalid-rows the good row goes in and the bad one is reported.
    let (code, stdout, stderr) =
        run(&["--data-dir", data.to_str().expect("utf-8"), "ingest", "--skip-invalid-rows", "--data", ds.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("samples stored    1\n"), "{stdout}");
    assert!(stdout.contains("invalid rows      1 skipped; first: "), "{stdout}");
}

#[test]
fn config_defaults_and_errors() {
    let (code, stdout, _) = run(&["check-config"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("127.0.0.1:8080"), "{stdout}");
    assert!(stdout.contains("./harbinger-data"), "{stdout}");

    let (code, _, stderr) = run(&["--log-format", "yaml", "check-config"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid `log.format`"), "{stderr}");

    let tmp = tempfile::tempdir().expect("tempdir");
    let f = tmp.path().join("h.toml");
    std::fs::write(&f, "[http]\naddr = 8080\n").expect("w");
    let (code, _, stderr) = run(&["--config", f.to_str().expect("utf-8"), "check-config"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("h.toml") && stderr.contains("addr"), "{stderr}");

    let (code, _, stderr) = run(&["synth", "--out", tmp.path().join("x").to_str().expect("utf-8"), "--hosts", "0"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("hosts"), "{stderr}");
}

#[test]
fn json_logs_are_json() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ds = tmp.path().join("ds");
    let (code, _, stderr) = run(&["synth", "--out", ds.to_str().expect("utf-8"), "--hosts", "2", "--days", "1", "--step", "10m"]);
    assert_eq!(code, 0, "{stderr}");
    let data = tmp.path().join("store");
    let (code, _, stderr) =
        run(&["--log-format", "json", "--data-dir", data.to_str().expect("utf-8"), "ingest", "--data", ds.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> =
        stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.iter().any(|v| v["level"] == "INFO" && v["fields"]["message"] == "embedded store opened"), "{stderr}");
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // `harbinger check-config | head -0`: the reader is gone before the first write.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_harbinger"))
        .arg("check-config")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run harbinger");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Retention is judged by the server's clock: recorded history older than
/// `store.retention` is refused as `too_old` (with a note saying how to keep it), while a
/// fleet that ends now is kept whole under the defaults.
#[test]
fn default_retention_refuses_old_history_and_keeps_a_fleet_that_ends_now() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (old, recent) = (tmp.path().join("old"), tmp.path().join("recent"));
    let synth = |out: &Path, extra: &[&str]| {
        let mut args = vec!["synth", "--out", out.to_str().expect("utf-8"), "--hosts", "2", "--days", "1", "--step", "5m"];
        args.extend_from_slice(extra);
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
    };
    synth(&old, &[]);
    synth(&recent, &["--end-now"]);
    let ingest = |data: &Path, store: &str| {
        let store = tmp.path().join(store);
        let args = ["--data-dir", store.to_str().expect("utf-8"), "ingest", "--json", "--data", data.to_str().expect("utf-8")];
        let (code, stdout, stderr) = run_env(&args, &[]);
        assert_eq!(code, 0, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
        v["ingest"]["samples"].clone()
    };
    let o = ingest(&old, "s1");
    assert_eq!(o["accepted"], 0, "2023 data is older than 30 days before now: {o}");
    assert!(o["rejected"]["too_old"].as_u64().is_some_and(|n| n > 500), "{o}");
    let r = ingest(&recent, "s2");
    assert!(r["accepted"].as_u64().is_some_and(|n| n > 500), "{r}");
    assert!(r["rejected"].get("too_old").is_none() && r["rejected"].get("future").is_none(), "{r}");

    let store = tmp.path().join("s3");
    let args = ["--data-dir", store.to_str().expect("utf-8"), "ingest", "--data", old.to_str().expect("utf-8")];
    let (_, stdout, _) = run_env(&args, &[]);
    assert!(stdout.contains("store.retention = \"forever\""), "the note says how to keep history: {stdout}");
    let (_, _, stderr) = run(&["synth", "--out", tmp.path().join("x").to_str().expect("utf-8"), "--start-ms", "0", "--end-now"]);
    assert!(stderr.contains("cannot both be given"), "{stderr}");
}

/// `eval` drives the shadow planner on its virtual clock and writes `decisions.jsonl`:
/// the contract's fields, in time order, shadows on another host than their primary,
/// failovers when a primary fails, and the same bytes on a second run.
#[test]
fn eval_writes_the_decisions_the_log_actuator_would_have_taken() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut outputs = Vec::new();
    for run_no in 0..2 {
        let out = tmp.path().join(format!("e{run_no}"));
        let data = repo.join("datasets/fleet-sample");
        let model = repo.join("models/default");
        let (code, stdout, stderr) = run(&[
            "eval",
            "--data",
            data.to_str().expect("utf-8"),
            "--model",
            model.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("shadows the log actuator would have created"), "{stdout}");
        outputs.push(std::fs::read_to_string(out.join("decisions.jsonl")).expect("decisions.jsonl"));
    }
    assert_eq!(outputs[0], outputs[1], "deterministic");
    let lines: Vec<serde_json::Value> = outputs[0].lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let mut last = i64::MIN;
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for d in &lines {
        for key in ["ts", "kind", "host", "resource", "target_host", "reason"] {
            assert!(d.get(key).is_some(), "{key} missing in {d}");
        }
        let ts = d["ts"].as_i64().expect("ts");
        assert!(ts >= last, "time order");
        last = ts;
        *kinds.entry(d["kind"].as_str().expect("kind").to_string()).or_default() += 1;
        if d["kind"] == "shadow_planned" {
            assert_ne!(d["host"], d["target_host"], "a shadow never sits on its primary: {d}");
        }
    }
    assert!(kinds.get("shadow_planned").is_some_and(|n| *n >= 5), "{kinds:?}");
    assert!(kinds.get("failover").is_some_and(|n| *n >= 1), "{kinds:?}");
    assert_eq!(kinds.get("failover"), kinds.get("shadow_promoted"), "each failover promotes one shadow: {kinds:?}");
    // The model's short-horizon learner sets each host's imminence (0.5 to 1), not a constant.
    let imminence: Vec<f64> = lines
        .iter()
        .filter(|d| d["kind"] == "shadow_planned")
        .filter_map(|d| d["reason"].as_str()?.split("imminence ").nth(1)?.split(')').next()?.parse().ok())
        .collect();
    assert_eq!(imminence.len(), kinds["shadow_planned"], "every planned shadow states its imminence");
    assert!(imminence.iter().all(|i| (0.5..=1.0).contains(i)), "{imminence:?}");
    assert!(imminence.iter().any(|i| *i < 0.99), "imminence comes from the model: {imminence:?}");
}

#[test]
fn a_misspelt_harbinger_variable_is_named_with_what_was_meant() {
    let (code, _, stderr) = run_env(&["check-config"], &[("HARBINGER_AUTH_TOKN", "secret")]);
    assert_eq!(code, 0, "a warning, not an error: {stderr}");
    assert!(
        stderr.contains("unknown environment variable ignored; did you mean HARBINGER_AUTH_TOKEN?")
            && stderr.contains("HARBINGER_AUTH_TOKN"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "the value is never printed: {stderr}");
}

#[test]
fn a_missing_model_is_named_once_with_its_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = common::repo().join("datasets/fleet-sample");
    let missing = dir.path().join("no-model");
    let out = dir.path().join("out");
    let args = [
        "eval",
        "--data",
        data.to_str().expect("utf-8"),
        "--model",
        missing.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ];
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 1, "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(line.contains(&format!("model file {}", missing.join("model.json").display())), "{stderr}");
    assert_eq!(line.matches("os error 2").count(), 1, "the OS error is said once: {line}");
    // A registry entry whose CURRENT names nothing: the registry says so, once.
    std::fs::create_dir_all(&missing).expect("mkdir");
    std::fs::write(missing.join("CURRENT"), "v9\n").expect("write");
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 1, "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(line.contains("CURRENT is corrupt") && line.contains("names version v9"), "{stderr}");
    assert_eq!(line.matches("names version v9").count(), 1, "{line}");
}
