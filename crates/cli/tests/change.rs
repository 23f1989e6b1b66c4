//! `whatif`, `apply`, `rollback` and `changes` from the command line, on the sample change
//! shipped under `datasets/changes/` (copied: `apply` writes to its files).

mod common;

use std::path::{Path, PathBuf};

use common::run;
use serde_json::Value;

fn sample(tmp: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/changes/shop");
    let dst = tmp.join("shop");
    std::fs::create_dir_all(dst.join("live")).expect("mkdir");
    for f in ["change.yaml", "live/web.json", "live/worker.yaml", "live/flags.toml"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
    dst
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

#[test]
fn whatif_on_the_shipped_sample_prints_the_plan_and_json() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let shop = sample(tmp.path());
    let data = tmp.path().join("data");
    let change = shop.join("change.yaml");
    let before = std::fs::read(shop.join("live/web.json")).expect("read");

    let (code, out, err) = run(&["--data-dir", s(&data), "whatif", "--change", s(&change), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let ops = v["update_stack"].as_array().expect("update_stack");
    assert_eq!(ops.len(), 6, "{out}");
    for op in ops {
        for k in ["resource", "path", "from", "to", "op"] {
            assert!(op.get(k).is_some(), "{k} missing in {op}");
        }
    }
    assert!(ops.iter().any(|o| o["resource"] == "web" && o["path"] == "/content/legacy_login" && o["op"] == "remove"));
    assert!(ops.iter().any(|o| o["path"] == "/content/server/workers" && o["from"] == 4 && o["to"] == 8));
    let score = v["risk"]["score"].as_f64().expect("risk.score");
    assert!((0.0..=1.0).contains(&score));
    assert!(!v["risk"]["factors"].as_array().expect("factors").is_empty());
    let validation = v["validation"].as_array().expect("validation");
    assert_eq!(validation.len(), 3);
    assert!(validation.iter().all(|t| t["outcome"] == "passed"), "{validation:?}");
    assert_eq!(v["anomalies"], serde_json::json!([]));
    let rb = &v["rollback"];
    assert_eq!(rb["order"], serde_json::json!([["web"], ["worker"], ["flags"]]));
    for k in ["estimate_p50_s", "estimate_p90_s", "risk"] {
        assert!(rb[k].as_f64().is_some(), "rollback.{k}: {rb}");
    }
    assert_eq!(rb["high_cost"], false);

    let (code, out, err) = run(&["--data-dir", s(&data), "whatif", "--change", s(&change)]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "Change to stack \"shop\"",
        "~ /content/server/workers: 4 → 8",
        "- /content/legacy_login: true",
        "✓ passed",
        "Change risk",
        "Rollback plan",
        "stage 1: web",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    assert!(!out.contains('\x1b'), "no colours off a terminal");
    assert_eq!(std::fs::read(shop.join("live/web.json")).expect("read"), before, "what-if touches nothing");
}

#[test]
fn apply_then_rollback_from_the_command_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let shop = sample(tmp.path());
    let data = tmp.path().join("data");
    let change = shop.join("change.yaml");
    let before: Value = serde_json::from_slice(&std::fs::read(shop.join("live/web.json")).expect("read")).expect("json");

    let (code, out, err) = run(&["--data-dir", s(&data), "apply", "--change", s(&change)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("change c-1: applied"), "{out}");
    let after: Value = serde_json::from_slice(&std::fs::read(shop.join("live/web.json")).expect("read")).expect("json");
    assert_eq!(after["server"]["workers"], 8);
    assert!(std::fs::read_to_string(shop.join("live/flags.toml")).expect("read").contains("new_checkout = true"));

    let (code, out, err) = run(&["--data-dir", s(&data), "rollback", "--change", "c-1", "--resource", "web"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("selective rollback") && out.contains("every restored resource equals its snapshot"), "{out}");
    let restored: Value = serde_json::from_slice(&std::fs::read(shop.join("live/web.json")).expect("read")).expect("json");
    assert_eq!(restored, before);
    assert!(std::fs::read_to_string(shop.join("live/flags.toml")).expect("read").contains("new_checkout = true"), "flags stay changed");

    let (code, out, _) = run(&["--data-dir", s(&data), "changes"]);
    assert_eq!(code, 0);
    assert!(out.contains("c-1") && out.contains("partially_rolled_back"), "{out}");
    let (code, out, _) = run(&["--data-dir", s(&data), "changes", "--change", "c-1"]);
    assert_eq!(code, 0);
    for step in ["snapshot", "stage", "validate", "apply", "check", "rollback", "verify"] {
        assert!(out.contains(step), "{step} missing in the log:\n{out}");
    }

    let (code, _, err) = run(&["--data-dir", s(&data), "rollback", "--change", "c-7"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown change \"c-7\""), "{err}");
    let bad = shop.join("bad.yaml");
    std::fs::write(&bad, "stack: shop\nresources:\n  - id: x\n    kind: file\n   path: oops\n").expect("write");
    let (code, _, err) = run(&["--data-dir", s(&data), "whatif", "--change", s(&bad)]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{}:5:", bad.display())), "{err}");
}
