//! The model registry end to end: `train --publish` and `models publish` two small models
//! trained on the sample fleet, `serve` pointed at the registry entry, and `models
//! promote` / `rollback` followed by SIGHUP / ReloadModel switching the served version.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Serve, run};
use harbinger_grpc::pb;

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fleet-sample").display().to_string()
}

/// A small forest (seconds to train): `--learner random-forest` so that the seed, and so
/// the version, differs between the two models.
fn train(extra: &[&str], seed: &str) -> String {
    let data = sample();
    let mut args = vec![
        "--log-level",
        "warn",
        "train",
        "--data",
        &data,
        "--tick",
        "15m",
        "--trees",
        "4",
        "--learner",
        "random-forest",
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "train: {out}\n{err}");
    out
}

/// `models --registry REG ARGS`, returning (exit code, stdout, stderr).
fn models(reg: &str, args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["--log-level", "warn", "models", "--registry", reg];
    a.extend_from_slice(args);
    run(&a)
}

async fn served_version(c: &harbinger_grpc::client::Clients) -> String {
    c.admin.clone().get_model(pb::GetModelRequest {}).await.expect("GetModel").into_inner().version
}

#[test]
fn serve_follows_promotions_and_rollbacks_in_the_registry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let reg_dir = tmp.path().join("reg");
    let reg = reg_dir.display().to_string();

    // 1. Train and publish in one go (no --out), then train to a directory and publish it.
    let out = train(&["--publish", "failure", "--registry", &reg], "1");
    let v1 = out
        .lines()
        .find_map(|l| l.strip_prefix("model ")?.strip_suffix(&format!(" published as failure in {reg} (current)")))
        .unwrap_or_else(|| panic!("publish line in {out}"))
        .to_string();
    let m2 = tmp.path().join("m2").display().to_string();
    let out = train(&["--out", &m2], "2");
    assert!(out.contains("written to") && !out.contains("published"), "{out}");
    let (code, out, err) = models(&reg, &["publish", "failure", &m2]);
    assert_eq!(code, 0, "{err}");
    let v2 = out.trim().strip_prefix("published failure ").unwrap_or_else(|| panic!("{out}")).to_string();
    assert_ne!(v1, v2, "two seeds, two versions");
    let (code, out, _) = models(&reg, &["publish", "failure", &m2]);
    assert_eq!((code, out.trim()), (0, format!("failure {v2} is already published with identical contents; nothing changed").as_str()));

    let (code, out, err) = models(&reg, &["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("JSON list");
    let rows: Vec<(&str, bool)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|v| (v["version"].as_str().unwrap_or(""), v["current"].as_bool().unwrap_or(false)))
        .collect();
    assert_eq!(rows, [(v1.as_str(), true), (v2.as_str(), false)], "oldest first, the first published is current");
    assert_eq!(list[0]["learner"], "random_forest");
    assert_eq!(list[0]["dataset"], "synth-20h-7d-seed3");
    let (code, out, _) = models(&reg, &["list"]);
    assert_eq!(code, 0);
    let current_line = out.lines().find(|l| l.contains(&v1)).unwrap_or_default();
    assert!(current_line.starts_with(&format!("failure  {v1}  *  ")), "{out}");
    let (code, out, _) = models(&reg, &["show", "failure", &v2]);
    assert_eq!(code, 0);
    assert!(out.starts_with(&format!("# Model card: harbinger failure model {v2}\n")), "{out}");

    // 2. serve the registry entry: it loads CURRENT.
    let cfg = tmp.path().join("harbinger.toml");
    std::fs::write(&cfg, format!("[model]\ndir = {:?}\n", reg_dir.join("failure").display().to_string())).expect("config");
    let s = Serve::start(&tmp.path().join("data"), &["--config", cfg.to_str().expect("utf-8")]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let c = harbinger_grpc::client::connect(&s.grpc, None, None).await.expect("connect");
        assert_eq!(served_version(&c).await, v1);

        // 3. promote + SIGHUP switches to v2.
        let (code, out, err) = models(&reg, &["promote", "failure", &v2]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with(&format!("failure: {v1} -> {v2}")), "{out}");
        assert_eq!(served_version(&c).await, v1, "nothing changes before the reload");
        let hup = Command::new("kill").args(["-HUP", &s.child.id().to_string()]).status().expect("kill");
        assert!(hup.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while served_version(&c).await != v2 {
            assert!(Instant::now() < deadline, "SIGHUP did not switch to the promoted version within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // 4. rollback + ReloadModel (the configured entry) goes back to v1.
        let (code, out, err) = models(&reg, &["rollback", "failure"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with(&format!("failure: rolled back {v2} -> {v1}")), "{out}");
        let r = c.admin.clone().reload_model(pb::ReloadModelRequest::default()).await.expect("ReloadModel").into_inner();
        assert_eq!((r.previous.map(|m| m.version), r.current.map(|m| m.version)), (Some(v2.clone()), Some(v1.clone())));
    });

    // 5. Refusals name what and where, and change nothing.
    let (code, _, err) = models(&reg, &["rm", "failure", &v1]);
    assert_ne!(code, 0);
    assert!(err.contains(&reg) && err.contains(&format!("failure {v1} is the current version")), "{err}");
    let (code, _, err) = models(&reg, &["promote", "failure", "no-such-version"]);
    assert_ne!(code, 0);
    assert!(err.contains(&reg) && err.contains("\"failure\" has no version \"no-such-version\""), "{err}");
    let (code, _, err) = models(&reg, &["show", "nothing-here"]);
    assert_ne!(code, 0);
    assert!(err.contains("no model named \"nothing-here\""), "{err}");
    let (code, _, err) = models(&reg, &["publish", "../escape", &m2]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid name \"../escape\""), "{err}");
    assert!(!tmp.path().join("escape").exists());
    let (code, _, err) = models(&reg, &["publish", "other", tmp.path().to_str().expect("utf-8")]);
    assert_ne!(code, 0);
    assert!(err.contains("is not a usable model artifact") && err.contains("model.json"), "{err}");

    // 6. A version that is not current can go.
    let (code, out, err) = models(&reg, &["rm", "failure", &v2]);
    assert_eq!((code, out.trim()), (0, format!("removed failure {v2}").as_str()), "{err}");
    let (_, out, _) = models(&reg, &["list", "failure", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out).expect("JSON list");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(s.terminate(), 0, "clean exit on SIGTERM");
}

#[test]
fn one_corrupt_current_does_not_hide_the_other_entries() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let reg = tmp.path().join("registry");
    let reg_s = reg.to_str().expect("utf-8");
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default");
    for name in ["alpha", "beta"] {
        let (code, _, err) = models(reg_s, &["publish", name, default.to_str().expect("utf-8")]);
        assert_eq!(code, 0, "{err}");
    }
    std::fs::write(reg.join("alpha").join("CURRENT"), "../../etc\n").expect("corrupt");
    let (code, out, err) = models(reg_s, &["list"]);
    assert_ne!(code, 0, "a broken entry is an error");
    assert!(out.contains("beta"), "the healthy entry is still listed:\n{out}");
    assert!(err.contains("error: alpha:") && err.contains("1 of 2 registry entries cannot be listed"), "{err}");
    let (code, _, err) = models(reg_s, &["list", "alpha"]);
    assert_ne!(code, 0);
    assert!(err.contains("CURRENT"), "{err}");
}
