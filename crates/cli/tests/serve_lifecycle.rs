//! `harbinger serve` over its life: SIGINT stops it cleanly with the store synced; a
//! reload that fails (SIGHUP or `POST /api/v1/admin/reload`) keeps the old model serving;
//! started with no configuration in an empty directory outside the repository, it scores
//! hosts with the model built into the binary.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Serve, copy_model, get, post, remote_write, repo};

/// The samples of `host`/`metric` a running server returns, or its status.
fn samples(url: &str, host: &str, metric: &str) -> Result<usize, (u16, String)> {
    let (code, body) = get(&format!("{url}/api/v1/samples?host={host}&metric={metric}&from=0&to={}", i64::MAX));
    if code != 200 {
        return Err((code, body));
    }
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    Ok(v["samples"].as_array().expect("samples").len())
}

/// With `store.sync_interval = 1h` acknowledged samples sit in the store's write buffer
/// until a sync: SIGINT must stop the server (exit 0) with them written, where SIGKILL
/// (the control) loses them.
#[test]
fn sigint_stops_serve_with_exit_0_and_the_store_synced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("harbinger.toml");
    std::fs::write(&cfg, "[store]\nsync_interval = \"1h\"\n").expect("config");
    let cfg = cfg.to_str().expect("utf-8");
    let run_and_stop = |data: &Path, signal: &str| -> i32 {
        let mut s = Serve::spawn(Serve::command(data, &["--config", cfg]), true);
        assert_eq!(remote_write(&s.url, "sigint-h1", "cpu_util", 50), 204, "acknowledged");
        s.signal(signal);
        let code = s.wait_exit(Duration::from_secs(20));
        if signal == "INT" {
            let err = s.wait_for_stderr("stopped cleanly", Duration::from_secs(5));
            assert!(err.contains("SIGINT received, shutting down"), "the shutdown is logged:\n{err}");
        }
        code
    };
    let read_back = |data: &Path| {
        let s = Serve::start(data, &["--config", cfg]);
        let n = samples(&s.url, "sigint-h1", "cpu_util");
        assert_eq!(s.terminate(), 0);
        n
    };

    let data = tmp.path().join("data");
    assert_eq!(run_and_stop(&data, "INT"), 0, "SIGINT is a clean stop");
    assert_eq!(read_back(&data), Ok(50), "every acknowledged sample was synced on SIGINT");

    let control = tmp.path().join("control");
    assert_eq!(run_and_stop(&control, "KILL"), -1, "SIGKILL: no exit code");
    let lost = read_back(&control);
    assert!(matches!(lost, Err((404, _)) | Ok(0)), "SIGKILL loses the unsynced samples (the test can see a loss): {lost:?}");
}

/// The risk of `host` as served: (model version, HTTP status).
fn served_version(url: &str, host: &str) -> (String, u16) {
    let (code, body) = get(&format!("{url}/api/v1/risk?host={host}"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    (v[0]["model_version"].as_str().unwrap_or(&body).to_string(), code)
}

#[test]
fn a_failing_reload_by_sighup_or_http_keeps_the_old_model_serving() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = tmp.path().join("model");
    copy_model(&repo().join("models/default"), &model, "lifecycle-a");
    let cfg = tmp.path().join("harbinger.toml");
    std::fs::write(&cfg, format!("[model]\ndir = {:?}\n", model.display().to_string())).expect("config");
    let data = tmp.path().join("data");
    let s = Serve::spawn(Serve::command(&data, &["--config", cfg.to_str().expect("utf-8")]), true);
    assert_eq!(remote_write(&s.url, "life-h1", "cpu_util", 30), 204);
    assert_eq!(served_version(&s.url, "life-h1"), ("lifecycle-a".into(), 200));

    // A broken model.json (written whole, as a deploy would).
    let broken = model.join("model.json.tmp");
    std::fs::write(&broken, "{\"format\": \"harbinger-failure-model\"").expect("write");
    std::fs::rename(&broken, model.join("model.json")).expect("rename");

    // SIGHUP: the failure is logged, the old model keeps serving.
    s.signal("HUP");
    let err = s.wait_for_stderr("SIGHUP: model reload failed", Duration::from_secs(30));
    let line = err.lines().find(|l| l.contains("SIGHUP: model reload failed")).expect("the line");
    assert!(line.contains("lifecycle-a") && line.contains("model.json"), "names the model kept and the file: {line}");
    assert_eq!(served_version(&s.url, "life-h1"), ("lifecycle-a".into(), 200));

    // HTTP: 500 with the reason, the old model keeps serving.
    let (code, body) = post(&format!("{}/api/v1/admin/reload", s.url), &[], Vec::new());
    assert_eq!(code, 500, "{body}");
    assert!(body.starts_with("model reload failed, still serving model lifecycle-a: ") && body.contains("model.json"), "{body}");
    assert_eq!(served_version(&s.url, "life-h1"), ("lifecycle-a".into(), 200));

    // Mended, the same two reloads work (so the failures above were the model's).
    copy_model(&repo().join("models/default"), &model, "lifecycle-b");
    s.signal("HUP");
    s.wait_for_stderr("SIGHUP: model reloaded", Duration::from_secs(30));
    assert_eq!(served_version(&s.url, "life-h1"), ("lifecycle-b".into(), 200));
    copy_model(&repo().join("models/default"), &model, "lifecycle-c");
    let (code, body) = post(&format!("{}/api/v1/admin/reload", s.url), &[], Vec::new());
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((v["previous"]["version"].as_str(), v["current"]["version"].as_str()), (Some("lifecycle-b"), Some("lifecycle-c")));
    assert_eq!(served_version(&s.url, "life-h1"), ("lifecycle-c".into(), 200));
    assert_eq!(s.terminate(), 0);
}

/// No flag but the listening addresses (free ports), no config file, no `HARBINGER_*`
/// variable, in an empty directory outside the repository: the state goes to
/// `./harbinger-data` there, and hosts are scored by the built-in default model.
#[test]
fn serve_with_no_configuration_in_an_empty_directory_scores_with_the_built_in_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path().canonicalize().expect("canonical");
    assert!(!cwd.starts_with(repo()), "{} lies outside the repository", cwd.display());
    assert_eq!(std::fs::read_dir(&cwd).expect("ls").count(), 0, "empty");
    let mut cmd = Command::new(common::bin());
    cmd.args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"]).current_dir(&cwd);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HARBINGER_") {
            cmd.env_remove(k);
        }
    }
    let s = Serve::spawn(cmd, true);
    assert!(cwd.join("harbinger-data").is_dir(), "the state directory defaults to ./harbinger-data");
    assert_eq!(remote_write(&s.url, "fresh-h1", "cpu_util", 30), 204);
    let built_in: serde_json::Value = serde_json::from_str(harbinger_model::EMBEDDED_DEFAULT).expect("model json");
    let version = built_in["version"].as_str().expect("version").to_string();
    let (code, body) = get(&format!("{}/api/v1/risk?host=fresh-h1", s.url));
    assert_eq!(code, 200, "{body}");
    let risk: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(risk[0]["model_version"].as_str(), Some(version.as_str()), "{body}");
    assert!(risk[0]["risk"].as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)), "{body}");
    // The gRPC client too.
    let (code, out, err) = common::run(&["score", "--addr", &s.grpc, "fresh-h1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("fresh-h1 ")) && out.contains(&version), "{out}");
    assert!(s.stderr().contains("serving the built-in default model"), "{}", s.stderr());
    assert_eq!(s.terminate(), 0);
}

#[test]
fn label_sets_refused_by_the_series_limit_do_not_grow_the_series_cache_past_twice_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = common::Serve::command(&dir.path().join("data"), &[]);
    cmd.env("HARBINGER_STORE_MAX_SERIES", "10");
    let s = common::Serve::spawn(cmd, false);
    // 6,000 distinct hosts: 10 series are stored, the rest refused by the limit.
    for batch in 0..60 {
        use harbinger_ingest::remote_write::{encode, prompb};
        let body = encode(&prompb::WriteRequest {
            timeseries: (0..100)
                .map(|i| prompb::TimeSeries {
                    labels: vec![
                        prompb::Label { name: "__name__".into(), value: "cpu_util".into() },
                        prompb::Label { name: "instance".into(), value: format!("invented-{batch:03}-{i:03}") },
                    ],
                    samples: vec![prompb::Sample { timestamp: common::now_ms(), value: 0.5 }],
                })
                .collect(),
        });
        let (code, body) = common::post(
            &format!("{}/api/v1/write", s.url),
            &[("content-encoding", "snappy"), ("content-type", "application/x-protobuf")],
            body,
        );
        assert!(code == 204 || code == 400, "{code} {body}");
    }
    let (code, metrics) = common::get(&format!("{}/metrics", s.url));
    assert_eq!(code, 200);
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
    };
    assert_eq!(gauge("harbinger_store_series "), 10.0);
    let entries = gauge("harbinger_remote_write_cache_entries ");
    assert!(entries <= f64::from(harbinger_cli::serve::series_cache_entries(10) as u32), "{entries} cached label sets");
    assert!(entries > 0.0, "the cache is used");
    assert_eq!(s.terminate(), 0);
}

/// A (re)started server warms its scorer from the store's segments, not only from the hot
/// windows: with a 15 s scrape a hot window holds 1,024 samples (4.3 h), less than the
/// features' 6 h warm-up, and hosts used to be scored with confidence 0 (never alerting)
/// until hours of new samples had arrived.
#[test]
fn a_started_server_scores_a_15_second_fleet_with_full_confidence_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (fleet, data) = (tmp.path().join("fleet"), tmp.path().join("data"));
    let (fleet_s, data_s) = (fleet.to_str().expect("utf-8"), data.to_str().expect("utf-8"));
    let (code, _, err) =
        common::run(&["synth", "--out", fleet_s, "--hosts", "3", "--days", "1", "--step", "15s", "--seed", "3", "--end-now"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = common::run(&["--data-dir", data_s, "ingest", "--data", fleet_s]);
    assert_eq!(code, 0, "{out}\n{err}");
    let s = Serve::start(&data, &[]);
    let (code, body) = get(&format!("{}/api/v1/risk", s.url));
    assert_eq!(code, 200, "{body}");
    let hosts: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    let now = common::now_ms();
    // Hosts reporting until the end (a synthetic failure can silence one for a while).
    let live: Vec<&serde_json::Value> = hosts.iter().filter(|h| h["at"].as_i64().is_some_and(|at| now - at < 5 * 60_000)).collect();
    assert!(!live.is_empty(), "{body}");
    for h in live {
        assert_eq!(h["confidence"], 1.0, "every metric warm from the stored history: {h}");
    }
    assert_eq!(s.terminate(), 0);
}
