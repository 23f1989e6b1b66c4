//! `harbinger serve` with the real default model (`models/default`, trained from
//! `datasets/fleet-sample`; `HARBINGER_TEST_MODEL` names another) over gRPC: the `score` command, auth, and model reloads (SIGHUP
//! and ReloadModel) under a load of ScoreHosts calls with no failed request.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Serve, copy_model, run};
use harbinger_grpc::pb;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// `models/default`, or the model directory in `HARBINGER_TEST_MODEL`.
fn default_model() -> PathBuf {
    let dir = std::env::var_os("HARBINGER_TEST_MODEL").map_or_else(|| repo().join("models/default"), PathBuf::from);
    assert!(
        dir.join("model.json").exists(),
        "{} has no model.json: train it with `harbinger train --data datasets/fleet-sample --out models/default`",
        dir.display()
    );
    dir
}

/// A data dir with the sample fleet ingested, and a config file pointing at `model_dir`.
fn setup(tmp: &Path, model_dir: &Path, token: Option<&str>) -> (PathBuf, PathBuf) {
    let data = tmp.join("data");
    let fleet = repo().join("datasets/fleet-sample");
    let (code, out, err) = run(&["--data-dir", data.to_str().expect("utf-8"), "ingest", "--data", fleet.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "ingest: {out}{err}");
    let cfg = tmp.join("harbinger.toml");
    let mut text = format!("[model]\ndir = {:?}\n", model_dir.display().to_string());
    if let Some(t) = token {
        text.push_str(&format!("[auth]\ntoken = {t:?}\n"));
    }
    std::fs::write(&cfg, text).expect("write config");
    (data, cfg)
}

fn serve(data: &Path, cfg: &Path) -> Serve {
    Serve::start(data, &["--config", cfg.to_str().expect("utf-8")])
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

#[test]
fn score_prints_a_table_json_and_the_status_of_a_bad_request() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, cfg) = setup(tmp.path(), &default_model(), None);
    let s = serve(&data, &cfg);

    let (code, out, err) = run(&["score", "--addr", &s.grpc, "h001", "h007"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("host  risk"), "{out}");
    assert!(lines[1].starts_with("h001 ") && lines[2].starts_with("h007 "), "{out}");
    assert!(lines[3].starts_with("model "), "{out}");
    for l in &lines[1..3] {
        assert!(l.ends_with("no recent data") || l.contains('='), "a host's factors, or why it has none: {out}");
    }

    let (code, out, err) = run(&["score", "--addr", &s.grpc, "--json", "h003"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let r = &v["risks"][0];
    assert_eq!(r["host"], "h003");
    for field in ["risk", "failure_probability", "anomaly", "confidence"] {
        let x = r[field].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&x), "{field} = {x} in {out}");
    }
    assert!(r["horizon_ms"].as_i64().is_some_and(|h| h > 0), "{out}");
    // Top factors name what drives the score with the value seen. The sample fleet is
    // older than the store's retention (its samples are refused as too old): a host
    // without recent data has confidence 0 and no factors, never made-up `0.000` values.
    let factors = r["factors"].as_array().expect("factors");
    if r["confidence"].as_f64() == Some(0.0) {
        assert!(factors.is_empty(), "no recent data, no factors: {out}");
    } else {
        assert!(!factors.is_empty() && factors.iter().all(|f| f["value"].is_f64()), "top factors named with their values: {out}");
    }
    assert_eq!(v["model_version"], r["model_version"]);

    let (code, out, err) = run(&["score", "--addr", &s.grpc, "h001", "no-such-host"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("NOT_FOUND") && err.contains("no-such-host"), "{err}");
    let (code, _, err) = run(&["score", "--addr", "127.0.0.1:1", "h001"]);
    assert_ne!(code, 0);
    assert!(err.contains("127.0.0.1:1"), "the address is named: {err}");
    assert_eq!(s.terminate(), 0, "clean exit on SIGTERM");
}

#[test]
fn with_a_token_pushes_and_reloads_need_it_over_grpc_and_http() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, cfg) = setup(tmp.path(), &default_model(), Some("t0ken"));
    let s = serve(&data, &cfg);
    let rt = rt();
    rt.block_on(async {
        let anon = harbinger_grpc::client::connect(&s.grpc, None, None).await.expect("connect");
        let batch = pb::SampleBatch {
            series: vec![pb::Series { host: "h001".into(), metric: "cpu_util".into(), timestamps_ms: vec![1], values: vec![0.5] }],
        };
        let e = anon.ingest.clone().push_metrics(tokio_stream::iter([batch.clone()])).await.expect_err("no token");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let e = anon.admin.clone().reload_model(pb::ReloadModelRequest::default()).await.expect_err("no token");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let r = anon.risk.clone().score_hosts(pb::ScoreHostsRequest { hosts: vec!["h001".into()] }).await;
        assert_eq!(r.expect("reads are open").into_inner().risks.len(), 1);

        let authed = harbinger_grpc::client::connect(&s.grpc, Some("t0ken"), None).await.expect("connect");
        let r = authed.admin.clone().reload_model(pb::ReloadModelRequest::default()).await.expect("token accepted");
        let r = r.into_inner();
        assert_eq!(r.previous.map(|m| m.version), r.current.map(|m| m.version), "same artifact, same version");

        let client = reqwest::Client::new();
        let post = |token: Option<&str>| {
            let mut rb = client.post(format!("{}/api/v1/admin/reload", s.url));
            if let Some(t) = token {
                rb = rb.header("Authorization", format!("Bearer {t}"));
            }
            rb.send()
        };
        assert_eq!(post(None).await.expect("send").status().as_u16(), 401);
        assert_eq!(post(Some("t0ken")).await.expect("send").status().as_u16(), 200);
        let r = client.get(format!("{}/api/v1/risk?host=h001", s.url)).send().await.expect("send");
        assert_eq!(r.status().as_u16(), 200, "HTTP reads are open");
    });
    assert_eq!(s.terminate(), 0);
}

async fn version(c: &harbinger_grpc::client::Clients) -> String {
    c.admin.clone().get_model(pb::GetModelRequest {}).await.expect("GetModel").into_inner().version
}

/// Waits (at most 30 s) until a load loop was answered by model `version`.
async fn answered_by(answered: &std::sync::Mutex<std::collections::BTreeSet<String>>, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answered.lock().expect("lock").contains(version) {
        assert!(Instant::now() < deadline, "no request was answered by {version} within 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn reloads_by_sighup_and_rpc_under_load_fail_no_request() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = tmp.path().join("model");
    copy_model(&default_model(), &model, "reload-test-a");
    let (data, cfg) = setup(tmp.path(), &model, None);
    let s = serve(&data, &cfg);
    let rt = rt();
    let (ok, errors, seen) = rt.block_on(async {
        let c = harbinger_grpc::client::connect(&s.grpc, None, None).await.expect("connect");
        assert_eq!(version(&c).await, "reload-test-a");
        let stop = Arc::new(AtomicBool::new(false));
        // Versions that answered so far, for the test to wait on.
        let answered = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::<String>::new()));
        let mut loops = Vec::new();
        for i in 0..3 {
            let mut risk = c.risk.clone();
            let (stop, answered) = (stop.clone(), answered.clone());
            loops.push(tokio::spawn(async move {
                let hosts: Vec<String> = (0..20).map(|h| format!("h{:03}", (h + i) % 20)).collect();
                let (mut ok, mut errors, mut seen) = (0usize, Vec::new(), std::collections::BTreeSet::new());
                while !stop.load(Ordering::SeqCst) {
                    match risk.score_hosts(pb::ScoreHostsRequest { hosts: hosts.clone() }).await {
                        Ok(r) => {
                            let r = r.into_inner();
                            assert_eq!(r.risks.len(), 20);
                            answered.lock().expect("lock").insert(r.model_version.clone());
                            seen.insert(r.model_version);
                            ok += 1;
                        }
                        Err(e) => errors.push(format!("{:?}: {}", e.code(), e.message())),
                    }
                }
                (ok, errors, seen)
            }));
        }
        // 1. SIGHUP reloads the configured directory, now holding version b.
        answered_by(&answered, "reload-test-a").await;
        copy_model(&default_model(), &model, "reload-test-b");
        let hup = Command::new("kill").args(["-HUP", &s.child.id().to_string()]).status().expect("kill");
        assert!(hup.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while version(&c).await != "reload-test-b" {
            assert!(Instant::now() < deadline, "SIGHUP did not reload the model within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // 2. ReloadModel switches to another directory beside the configured one (a copy of
        //    the committed default model); a directory elsewhere is refused, with one message
        //    whether it exists or not.
        answered_by(&answered, "reload-test-b").await;
        for elsewhere in [default_model(), PathBuf::from("/etc"), PathBuf::from("/no/such/dir")] {
            let e = c
                .admin
                .clone()
                .reload_model(pb::ReloadModelRequest { dir: elsewhere.display().to_string() })
                .await
                .expect_err("outside the model directories");
            assert_eq!(e.code(), tonic::Code::FailedPrecondition);
            assert!(e.message().contains("is not a directory under"), "{}", e.message());
        }
        let other = tmp.path().join("other");
        copy_model(&default_model(), &other, "reload-test-c");
        let r = c
            .admin
            .clone()
            .reload_model(pb::ReloadModelRequest { dir: other.display().to_string() })
            .await
            .expect("ReloadModel")
            .into_inner();
        assert_eq!(r.previous.map(|m| m.version).as_deref(), Some("reload-test-b"));
        let default_version = r.current.map(|m| m.version).unwrap_or_default();
        assert_eq!(default_version, "reload-test-c");
        // 3. A broken model is refused and the served one stays.
        let broken = tmp.path().join("broken");
        std::fs::create_dir_all(&broken).expect("mkdir");
        std::fs::write(broken.join("model.json"), "{").expect("write");
        let e = c
            .admin
            .clone()
            .reload_model(pb::ReloadModelRequest { dir: broken.display().to_string() })
            .await
            .expect_err("broken model refused");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.message().contains(&default_version), "{}", e.message());
        answered_by(&answered, &default_version).await;
        stop.store(true, Ordering::SeqCst);
        let (mut ok, mut errors, mut seen) = (0, Vec::new(), std::collections::BTreeSet::new());
        for l in loops {
            let (o, e, s) = l.await.expect("client loop");
            ok += o;
            errors.extend(e);
            seen.extend(s);
        }
        assert_eq!(version(&c).await, default_version);
        (ok, errors, seen)
    });
    assert!(
        errors.is_empty(),
        "{} of {} requests failed during reloads: {:?}",
        errors.len(),
        ok + errors.len(),
        &errors[..errors.len().min(5)]
    );
    // Each version answered the load: the first, the one SIGHUP loaded, the one
    // ReloadModel loaded (versions the test wrote into the files, found in answers).
    for v in ["reload-test-a", "reload-test-b", "reload-test-c"] {
        assert!(seen.contains(v), "no score came from {v}: {seen:?}");
    }
    assert_eq!(s.terminate(), 0);
}
