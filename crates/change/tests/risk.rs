//! The change-risk model: features, labels, fitting on fleet-train, the shipped model file.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use harbinger_change::risk::{
    ChangeFeatures, ChangeKind, ChangeRiskModel, FEATURE_NAMES, LabelledChange, MAGNITUDE_CAP, ResourceGraph, RiskError, label_history,
};
use harbinger_change::{Op, UpdateOp};
use harbinger_core::{Event, EventKind, Failure, HostId, Resource};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fleet_train() -> PathBuf {
    repo().join("datasets/fleet-train")
}

fn op(resource: &str, path: &str, from: Value, to: Value) -> UpdateOp {
    let op = match (from.is_null(), to.is_null()) {
        (true, _) => Op::Add,
        (_, true) => Op::Remove,
        _ => Op::Replace,
    };
    UpdateOp { resource: resource.into(), path: path.into(), from, to, op }
}

/// Rewrites `models/change-risk.json` from `datasets/fleet-train`:
/// `cargo test -p harbinger-change --test risk -- --ignored regenerate_change_risk_model`
#[test]
#[ignore = "rewrites models/change-risk.json"]
fn regenerate_change_risk_model() {
    let model = ChangeRiskModel::fit_dataset(&fleet_train()).unwrap();
    let text = serde_json::to_string_pretty(&model).unwrap() + "\n";
    std::fs::write(repo().join("models/change-risk.json"), text).unwrap();
    println!("{}", serde_json::to_string_pretty(&model.calibration).unwrap());
}

#[test]
fn embedded_model_matches_a_refit() {
    let shipped = ChangeRiskModel::embedded_default();
    let refit = ChangeRiskModel::fit_dataset(&fleet_train()).unwrap();
    assert_eq!(shipped.summary, refit.summary, "models/change-risk.json is stale: run the ignored test regenerate_change_risk_model");
    let close = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    assert!(close(&shipped.coefficients, &refit.coefficients), "{:?} vs {:?}", shipped.coefficients, refit.coefficients);
    assert!(close(&shipped.means, &refit.means));
    assert!(close(&shipped.stds, &refit.stds));
    assert!((shipped.intercept - refit.intercept).abs() < 1e-6);
    assert_eq!(shipped.summary.dataset.as_deref(), Some("synth-150h-7d-seed1"));
    assert_eq!(shipped.summary.constant_features, vec!["resources".to_string(), "anomalies".to_string()]);
}

#[test]
fn held_out_calibration_on_fleet_train() {
    let model = ChangeRiskModel::embedded_default();
    let cal = model.calibration.as_ref().unwrap();
    assert_eq!(cal.train_rows + cal.test_rows, model.summary.rows);
    assert!(cal.test_positives > 0);
    let auc = cal.auc.unwrap();
    assert!(auc > 0.5, "held-out AUC {auc}");
    assert!(cal.brier < cal.brier_reference, "Brier {} vs base-rate reference {}", cal.brier, cal.brier_reference);
    assert_eq!(cal.reliability.iter().map(|b| b.count).sum::<usize>(), cal.test_rows);
    assert!(cal.reliability.windows(2).all(|w| w[0].mean_predicted <= w[1].mean_predicted));
}

#[test]
fn major_deploy_of_critical_hub_outranks_small_config_change_of_leaf() {
    let model = ChangeRiskModel::embedded_default();
    let crit: BTreeMap<String, u8> = [("db-1".to_string(), 3), ("cache-9".to_string(), 0)].into();
    let major = ChangeFeatures::from_ops(&[op("db-1", "/version", json!("1.4.2"), json!("2.0.0"))], &crit, 20, 0);
    let config = ChangeFeatures::from_ops(&[op("cache-9", "/config/ttl_s", json!(60), json!(90))], &crit, 0, 0);
    let (hi, lo) = (model.score(&major), model.score(&config));
    assert!(hi.score > lo.score, "major deploy {} vs config change {}", hi.score, lo.score);
    for s in [&hi, &lo] {
        assert!((0.0..=1.0).contains(&s.score));
        assert_eq!(s.factors.len(), FEATURE_NAMES.len());
        assert!(s.factors.windows(2).all(|w| w[0].contribution.abs() >= w[1].contribution.abs()));
        // The contributions and the intercept make up the log-odds.
        let z = model.intercept + s.factors.iter().map(|f| f.contribution).sum::<f64>();
        assert!((1.0 / (1.0 + (-z).exp()) - s.score).abs() < 1e-12);
    }
    let json = serde_json::to_value(&hi).unwrap();
    assert!(json["factors"][0]["name"].is_string() && json["score"].is_f64());
}

#[test]
fn from_ops_computes_version_bump_and_magnitude() {
    let crit: BTreeMap<String, u8> = [("api".to_string(), 2), ("web".to_string(), 1)].into();
    let ops = [
        op("api", "/version", json!("1.4.2"), json!("1.5.0")),
        op("api", "/config/pool_size", json!(16), json!(64)),
        op("web", "/config/timeout_ms", json!(1000), json!(750)),
        op("web", "/config/name", json!("a"), json!("b")),
        op("web", "/config/new_knob", Value::Null, json!(3)),
    ];
    let f = ChangeFeatures::from_ops(&ops, &crit, 4, 1);
    assert_eq!(f.ops, 5);
    assert_eq!(f.resources, 2);
    assert_eq!(f.version_bump, 2);
    assert!((f.magnitude - 4f64.ln()).abs() < 1e-12, "{}", f.magnitude);
    assert_eq!(f.criticality, 2);
    assert_eq!((f.blast_radius, f.anomalies), (4, 1));
    assert!(f.deploy);

    let bump = |a: Value, b: Value| ChangeFeatures::from_ops(&[op("x", "/image/version", a, b)], &BTreeMap::new(), 0, 0).version_bump;
    assert_eq!(bump(json!("1.4.2"), json!("1.4.3")), 1);
    assert_eq!(bump(json!("v1.4.2"), json!("v2.0.0")), 3);
    assert_eq!(bump(json!("2.0.0"), json!("1.9.0")), 3);
    assert_eq!(bump(json!("latest"), json!("sha-1f2e")), 3);
    assert_eq!(bump(json!("1.4.2"), json!("1.4.2")), 0);

    let cfg = ChangeFeatures::from_ops(&[op("x", "/config/replicas", json!(0), json!(3))], &BTreeMap::new(), 0, 0);
    assert_eq!((cfg.version_bump, cfg.deploy, cfg.criticality), (0, false, 0));
    assert_eq!(cfg.magnitude, MAGNITUDE_CAP);
    assert_eq!(ChangeFeatures::from_ops(&[], &BTreeMap::new(), 0, 0).magnitude, 0.0);
}

fn resource(id: &str, crit: u8, deps: &[&str]) -> Resource {
    serde_json::from_value(json!({"id": id, "kind": "service", "host": "h1", "criticality": crit, "depends_on": deps})).unwrap()
}

#[test]
fn blast_radius_counts_transitive_dependents_once() {
    let g = ResourceGraph::from_resources(&[
        resource("db", 3, &[]),
        resource("api", 2, &["db"]),
        resource("web", 1, &["api", "db"]),
        resource("batch", 0, &["db"]),
        resource("lone", 0, &[]),
    ]);
    assert_eq!(g.blast_radius(["db"]), 3);
    assert_eq!(g.blast_radius(["api"]), 1);
    assert_eq!(g.blast_radius(["api", "web"]), 0);
    assert_eq!(g.blast_radius(["lone", "nope"]), 0);
    assert_eq!(g.criticality_of("db"), 3);
    assert_eq!(g.criticality_of("nope"), 0);
}

fn event(ts: i64, kind: EventKind, deployment: Option<&str>, resource: &str, host: &str) -> Event {
    let mut e = Event::new(ts, kind);
    e.deployment = deployment.map(str::to_string);
    e.resource = Some(resource.into());
    e.host = Some(HostId::new(host));
    e
}

#[test]
fn labels_follow_the_rules() {
    const H: i64 = 3_600_000;
    let mut d1 = event(0, EventKind::DeployStarted, Some("d-1"), "api", "h1");
    d1.from = Some(json!("1.0.0"));
    d1.to = Some(json!("2.0.0"));
    let events = vec![
        d1,
        event(5 * 60_000, EventKind::DeployFailed, Some("d-1"), "api", "h1"),
        event(10 * H, EventKind::DeployStarted, Some("d-2"), "api", "h2"), // bad_deploy failure 5 h later
        event(30 * H, EventKind::DeployStarted, Some("d-3"), "api", "h3"), // failure 7 h later: too late
        event(50 * H, EventKind::ConfigChanged, None, "web", "h4"),        // rolled back 2 h later
        event(52 * H, EventKind::RolledBack, Some("d-9"), "web", "h4"),
        event(60 * H, EventKind::ConfigChanged, None, "web", "h4"), // oom, not bad_deploy
        event(61 * H, EventKind::HostMaintenance, None, "web", "h4"),
    ];
    let fail = |host: &str, ts: i64, kind: &str| Failure { host: HostId::new(host), timestamp: ts, kind: kind.into() };
    let failures = vec![fail("h2", 15 * H, "bad_deploy"), fail("h3", 37 * H, "bad_deploy"), fail("h4", 61 * H, "oom")];
    let g = ResourceGraph::from_resources(&[resource("api", 2, &[]), resource("web", 1, &["api"])]);
    let labelled = label_history(&events, &failures, &g);
    let got: Vec<(&str, ChangeKind, bool)> = labelled.iter().map(|c| (c.id.as_str(), c.kind, c.bad)).collect();
    assert_eq!(
        got,
        vec![
            ("d-1", ChangeKind::Deploy, true),
            ("d-2", ChangeKind::Deploy, true),
            ("d-3", ChangeKind::Deploy, false),
            ("web", ChangeKind::Config, true),
            ("web", ChangeKind::Config, false),
        ]
    );
    let f = labelled[0].features;
    assert_eq!((f.version_bump, f.deploy, f.criticality, f.blast_radius, f.ops), (3, true, 2, 1, 1));
}

fn row(ts: i64, bad: bool) -> LabelledChange {
    LabelledChange { ts, kind: ChangeKind::Config, id: "r".into(), features: ChangeFeatures { ops: 1, ..Default::default() }, bad }
}

#[test]
fn fit_refuses_one_class_history() {
    let good: Vec<LabelledChange> = (0..40).map(|i| row(i, false)).collect();
    let e = ChangeRiskModel::fit(&good).unwrap_err();
    assert!(matches!(e, RiskError::OneClass { rows: 40, positives: 0 }));
    assert_eq!(e.to_string(), "cannot fit the change-risk model: 40 labelled changes, 0 bad and 40 good; need at least one of each");
    let bad: Vec<LabelledChange> = (0..3).map(|i| row(i, true)).collect();
    assert_eq!(
        ChangeRiskModel::fit(&bad).unwrap_err().to_string(),
        "cannot fit the change-risk model: 3 labelled changes, 3 bad and 0 good; need at least one of each"
    );
    assert!(matches!(ChangeRiskModel::fit(&[]).unwrap_err(), RiskError::OneClass { rows: 0, positives: 0 }));
}

#[test]
fn fit_dataset_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = ChangeRiskModel::fit_dataset(dir.path()).unwrap_err();
    assert!(matches!(e, RiskError::Io { .. }) && e.to_string().contains("events.jsonl"), "{e}");

    std::fs::write(dir.path().join("events.jsonl"), "{\"ts\": 1, \"kind\": \"config_changed\"}\n{\"ts\": 2, \"kind\": \"exploded\"}\n")
        .unwrap();
    let e = ChangeRiskModel::fit_dataset(dir.path()).unwrap_err();
    let path = dir.path().join("events.jsonl");
    assert!(e.to_string().starts_with(&format!("{} line 2: unknown event kind \"exploded\"", path.display())), "{e}");

    std::fs::write(dir.path().join("events.jsonl"), "{\"ts\": 1, \"kind\": \"config_changed\"}\n").unwrap();
    std::fs::write(dir.path().join("resources.json"), "[\n  {\"id\": \"a\",\n   \"criticality\": \"high\"}\n]").unwrap();
    let e = ChangeRiskModel::fit_dataset(dir.path()).unwrap_err();
    assert!(matches!(&e, RiskError::Parse { line: 3, .. }), "{e}");
    assert!(e.to_string().starts_with(&format!("{} line 3:", dir.path().join("resources.json").display())), "{e}");

    std::fs::remove_file(dir.path().join("resources.json")).unwrap();
    let e = ChangeRiskModel::fit_dataset(dir.path()).unwrap_err();
    assert!(matches!(e, RiskError::OneClass { rows: 1, positives: 0 }), "{e}");
}

#[test]
fn model_files_are_checked() {
    let model = ChangeRiskModel::embedded_default();
    let mut v = serde_json::to_value(&model).unwrap();
    assert_eq!(ChangeRiskModel::from_json(&v.to_string()).unwrap(), model);
    v["coefficients"] = json!([1.0, 2.0]);
    let e = ChangeRiskModel::from_json(&v.to_string()).unwrap_err();
    assert_eq!(e.to_string(), "invalid change-risk model: `coefficients` has 2 values, expected 8");
    let mut v = serde_json::to_value(&model).unwrap();
    v["format"] = json!(7);
    let e = ChangeRiskModel::from_json(&v.to_string()).unwrap_err();
    assert_eq!(e.to_string(), "invalid change-risk model: format 7 (this build reads format 1)");
}

#[test]
fn fleet_sample_fits_too() {
    let model = ChangeRiskModel::fit_dataset(&repo().join("datasets/fleet-sample")).unwrap();
    assert!(model.summary.positives > 0 && model.summary.rows > model.summary.positives);
    assert!(model.coefficients.iter().all(|c| c.is_finite()));
}

#[test]
fn sizes_beyond_the_history_are_scored_like_the_largest_seen_not_extrapolated() {
    let m = ChangeRiskModel::embedded_default();
    let (lo, hi) = (m.ranges[0][0], m.ranges[0][1]);
    assert!(lo <= hi);
    let base = ChangeFeatures { ops: hi as usize, resources: 1, deploy: true, version_bump: 2, ..Default::default() };
    let huge = ChangeFeatures { ops: 2_001, resources: 1_000, ..base };
    let (a, b) = (m.score(&base).score, m.score(&huge).score);
    assert!((a - b).abs() < 1e-12, "a 2,001-op change scores {b}, the largest seen {a}");
    assert!(b > 0.01, "{b}");
}
