//! Training, evaluation, the artifact and the live scorer on a small synthetic fleet.

use std::sync::{Arc, OnceLock};

use harbinger_core::{HostId, ManualClock, RiskScorer, SampleBatch, SeriesKey, SeriesSamples};
use harbinger_dataset::Dataset;
use harbinger_dataset::synth::{SynthParams, generate};
use harbinger_model::learn::ForestParams;
use harbinger_model::{EvalOptions, LearnerChoice, LiveScorer, Model, ModelError, TrainError, TrainOptions, evaluate, train};

fn fleet(seed: u64) -> Dataset {
    generate(&SynthParams { hosts: 30, days: 5.0, seed, ..SynthParams::default() }).expect("valid params").dataset
}

fn opts() -> TrainOptions {
    TrainOptions {
        forest: ForestParams { trees: 8, ..ForestParams::default() },
        tick_ms: 15 * 60_000,
        trained_at_ms: 1_700_000_000_000,
        dataset_name: "test fleet".into(),
        ..TrainOptions::default()
    }
}

/// One model trained once for all tests of this file.
fn model() -> &'static (Dataset, Model) {
    static M: OnceLock<(Dataset, Model)> = OnceLock::new();
    M.get_or_init(|| {
        let ds = fleet(5);
        let m = train(&ds, &opts(), &|_, _| {}).expect("the fleet has failures on both sides of the split").model;
        (ds, m)
    })
}

#[test]
fn an_imminence_model_is_stacked_saved_checked_and_explained() {
    let (ds, plain) = model();
    // `auto`: the logistic model and the forest, the other one stacked as a companion.
    let o = TrainOptions { short_horizon_ms: Some(2 * 3_600_000), learner: LearnerChoice::Auto, ..opts() };
    let m = train(ds, &o, &|_, _| {}).expect("train").model;
    let im = m.imminence.as_ref().expect("an imminence model");
    assert_eq!(im.horizon_ms, 2 * 3_600_000);
    assert_eq!(m.card.learners.len(), 2, "both learners were compared");
    assert_eq!(im.companions.len(), 1, "the one not leading joins the stack");
    assert_ne!(im.companions[0].learner.name(), m.learner.name());
    assert!(
        matches!(&im.learner, harbinger_model::model::Learner::Logistic(l) if l.weights.len() == m.schema.len()),
        "{}",
        im.learner.name()
    );
    assert!(m.card.imminence.is_some());
    assert_ne!(m.version, plain.version, "the stack is part of the version");
    let json = m.to_json().expect("json");
    let card = harbinger_model::card::render(&m);
    assert!(card.contains("imminence model") && card.contains("Stacked with it"), "{card}");
    let back = Model::parse("m/model.json".into(), &json).expect("parse");
    assert_eq!(
        back.imminence.as_ref().map(|i| (i.horizon_ms, i.learner.name(), i.companions.len())),
        Some((im.horizon_ms, im.learner.name(), im.companions.len()))
    );
    // Scores are probabilities (the same after the round trip, to JSON's last ulps), and
    // the contributions exist for every feature.
    let k = m.schema.len();
    for seed in 0..10u32 {
        let row: Vec<f64> = (0..k).map(|j| f64::from((seed * 17 + j as u32 * 5) % 11) / 5.0 - 1.0).collect();
        let (mut r1, mut r2) = (row.clone(), row);
        let (a, b) = (m.assess(&mut r1, true), back.assess(&mut r2, false));
        assert!((0.0..=1.0).contains(&a.probability));
        assert!((a.probability - b.probability).abs() < 1e-9);
        assert_eq!(a.contributions.as_ref().map(Vec::len), Some(k));
    }
    // A short horizon not below the horizon is refused.
    let bad = TrainOptions { short_horizon_ms: Some(o.horizon_ms), ..opts() };
    assert!(matches!(train(ds, &bad, &|_, _| {}), Err(TrainError::Options(_))));
    // A stack with the wrong width is refused on load, naming the file.
    let mut v: serde_json::Value = serde_json::from_str(&json).expect("json");
    v["imminence"]["stack"]["weights"] = serde_json::json!([1.0]);
    let e = Model::parse("m/model.json".into(), &v.to_string()).expect_err("bad stack");
    assert!(e.to_string().contains("model.json") && e.to_string().contains("inputs (main"), "{e}");
}

#[test]
fn train_refuses_a_dataset_without_failures() {
    let mut ds = fleet(5);
    ds.failures.clear();
    let e = train(&ds, &opts(), &|_, _| {}).expect_err("no failures");
    assert!(matches!(e, TrainError::NoFailures));
    assert!(e.to_string().contains("cannot be learned"), "{e}");
}

#[test]
fn training_is_deterministic_and_the_artifact_round_trips() {
    let (ds, m) = model();
    let again = train(ds, &opts(), &|_, _| {}).expect("train").model;
    assert_eq!(again.version, m.version, "same data and seed, same model");
    assert_eq!(again.learner, m.learner);
    let json = m.to_json().expect("json");
    let back = Model::parse("m/model.json".into(), &json).expect("parse");
    assert_eq!(back, *m, "the artifact round trips whole");
    assert_eq!(back.to_json().expect("json"), json, "and writes the same bytes again");
    assert_eq!((&back.version, &back.schema, back.learner.name()), (&m.version, &m.schema, m.learner.name()));
    // JSON keeps floats to the last few ulps: the reloaded model scores the same.
    let k = m.schema.len();
    for seed in 0..20u32 {
        let row: Vec<f64> = (0..k).map(|j| f64::from((seed * 31 + j as u32 * 7) % 13) / 6.0 - 1.0).collect();
        let (mut a, mut b) = (row.clone(), row);
        let (pa, pb) = (m.assess(&mut a, false).probability, back.assess(&mut b, false).probability);
        assert!((pa - pb).abs() < 1e-9, "{pa} vs {pb}");
    }
    let card = harbinger_model::card::render(m);
    assert!(card.contains(&m.version) && card.contains("test fleet") && card.contains("PR-AUC"), "{card}");
    // The split is by time and the threshold sits strictly inside (0, 1).
    assert!(m.card.split_ms > m.card.span_ms.0 && m.card.split_ms < m.card.span_ms.1);
    assert!(m.policy.alert_threshold > 0.0 && m.policy.alert_threshold < 1.0);
    assert!(m.card.learners.len() == 1 && m.learner.name() == "random_forest", "the default keeps the forest alone");
}

#[test]
fn corrupt_and_incompatible_model_files_are_refused_with_their_names() {
    let (_, m) = model();
    let path = std::path::PathBuf::from("some/dir/model.json");
    let e = Model::parse(path.clone(), "{\"format\": \"harbinger-failure-model\", \"format_ver").expect_err("truncated");
    assert!(matches!(e, ModelError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");

    let mut v = serde_json::to_value(m).expect("json");
    v["format_version"] = 99.into();
    v["harbinger_version"] = "9.9.9".into();
    let e = Model::parse(path.clone(), &v.to_string()).expect_err("incompatible");
    let msg = e.to_string();
    assert!(matches!(e, ModelError::Incompatible { found: 99, .. }), "{msg}");
    assert!(msg.contains("format version 99") && msg.contains("9.9.9") && msg.contains(env!("CARGO_PKG_VERSION")), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");

    // A tree pointing outside itself is corrupt, not a panic at scoring time.
    let mut v = serde_json::to_value(m).expect("json");
    if v["learner"]["kind"] == "random_forest" {
        v["learner"]["trees"][0]["nodes"][0]["l"] = 1_000_000.into();
        v["learner"]["trees"][0]["nodes"][0]["f"] = 0.into();
    } else {
        v["learner"]["weights"] = serde_json::json!([1.0]);
    }
    assert!(matches!(Model::parse(path.clone(), &v.to_string()), Err(ModelError::Corrupt { .. })));

    let e = Model::parse_bytes(path.clone(), &[b'{', 0xff, b'}']).expect_err("not UTF-8");
    assert!(matches!(&e, ModelError::Corrupt { reason, .. } if reason.contains("not UTF-8")), "{e}");
    assert!(e.to_string().contains("some/dir/model.json"), "{e}");
}

#[test]
fn eval_is_deterministic_and_alerts_enter_once() {
    let (_, m) = model();
    let ds = fleet(6);
    let a = evaluate(&ds, m, EvalOptions { tick_ms: 5 * 60_000, ..EvalOptions::default() }, &|_| {}).expect("eval");
    let b = evaluate(&ds, m, EvalOptions { tick_ms: 5 * 60_000, ..EvalOptions::default() }, &|_| {}).expect("eval");
    assert_eq!(a.alerts, b.alerts);
    assert_eq!(a.summary, b.summary);
    assert_eq!(a.summary.failures, ds.failures.len());
    assert!(a.summary.recall.is_some());
    assert!(a.alerts.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(a.alerts.iter().all(|x| x.score >= m.policy.alert_threshold && x.score <= 1.0));
    assert!(!a.alerts.is_empty(), "the fleet has predictable failures: some alert must be raised");
    // "Once": traced at every tick, each alert row is a host ENTERING the alerting state
    // (alerting now, not at the previous tick), and every entry has exactly one row.
    let traced = evaluate(&ds, m, EvalOptions { tick_ms: 5 * 60_000, trace_every_ms: Some(5 * 60_000), ..EvalOptions::default() }, &|_| {})
        .expect("eval");
    assert_eq!(traced.alerts, a.alerts, "tracing changes nothing");
    let mut by_host: std::collections::BTreeMap<&str, Vec<(i64, bool)>> = std::collections::BTreeMap::new();
    for p in &traced.trace {
        by_host.entry(p.host.as_str()).or_default().push((p.timestamp, p.alerting));
    }
    let mut entries: Vec<(String, i64)> = Vec::new();
    for (host, points) in &mut by_host {
        points.sort();
        let mut was = false;
        for &(t, alerting) in points.iter() {
            if alerting && !was {
                entries.push((host.to_string(), t));
            }
            was = alerting;
        }
    }
    let mut rows: Vec<(String, i64)> = a.alerts.iter().map(|x| (x.host.as_str().to_string(), x.timestamp)).collect();
    rows.sort();
    entries.sort();
    assert_eq!(rows, entries, "one alert row per entry into the alerting state, none while it stays");
    // Lowering the threshold can only add alerts.
    let low = evaluate(
        &ds,
        m,
        EvalOptions { tick_ms: 5 * 60_000, alert_threshold: Some(0.05), clear_threshold: Some(0.03), trace_every_ms: None },
        &|_| {},
    )
    .expect("eval");
    assert!(low.summary.alerts >= a.summary.alerts);
    let dir = tempfile::tempdir().expect("tempdir");
    harbinger_model::write_output(dir.path(), &a).expect("write");
    let csv = std::fs::read_to_string(dir.path().join("alerts.csv")).expect("alerts");
    assert!(csv.starts_with("host,timestamp,score\n"));
    assert_eq!(csv.lines().count(), a.alerts.len() + 1);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).expect("summary")).expect("json");
    for k in ["recall", "precision", "false_alarms_per_host_day", "lead_time_median_min", "lead_time_p10_min", "lead_time_p90_min"] {
        assert!(s.get(k).is_some(), "summary.json lacks {k}");
    }
    assert!(!dir.path().join("trace.csv").exists(), "no trace unless asked for");
}

#[test]
fn eval_trace_matches_the_alerts() {
    let (_, m) = model();
    let ds = fleet(6);
    let every = 15 * 60_000;
    let opts = EvalOptions { tick_ms: 5 * 60_000, trace_every_ms: Some(every), ..EvalOptions::default() };
    let out = evaluate(&ds, m, opts, &|_| {}).expect("eval");
    let plain = evaluate(&ds, m, EvalOptions { trace_every_ms: None, ..opts }, &|_| {}).expect("eval");
    assert_eq!(out.alerts, plain.alerts, "tracing does not change decisions");
    assert!(!out.trace.is_empty());
    assert!(out.trace.iter().all(|p| p.timestamp % every == 0));
    assert!(out.trace.iter().all(|p| p.probability.is_finite() && (0.0..=1.0).contains(&p.risk)));
    // Every alert is followed, at the next traced step, by the host still alerting (it
    // clears only after 30 minutes below the clear threshold). That step is traced for
    // every alert except those raised after the last traced step.
    assert!(!out.alerts.is_empty(), "the fleet has predictable failures: some alert must be raised");
    let last_traced = out.trace.iter().map(|p| p.timestamp).max().expect("a trace");
    let mut checked = 0;
    for a in &out.alerts {
        let next = (a.timestamp / every + 1) * every;
        match out.trace.iter().find(|p| p.host == a.host && p.timestamp == next) {
            Some(p) => {
                assert!(p.alerting, "{} not alerting at {} after alert at {}", a.host, next, a.timestamp);
                checked += 1;
            }
            // A host that failed right after its alert is silent at the next traced step.
            None if ds.failures.iter().any(|f| f.host == a.host && f.timestamp > a.timestamp && f.timestamp <= next) => {}
            None => assert!(next > last_traced, "{} has no trace point at {next}, after its alert at {}", a.host, a.timestamp),
        }
    }
    assert!(checked > 0, "no alert was followed by a traced step");
    let dir = tempfile::tempdir().expect("tempdir");
    harbinger_model::write_output(dir.path(), &out).expect("write");
    let csv = std::fs::read_to_string(dir.path().join("trace.csv")).expect("trace");
    assert!(csv.starts_with("host,timestamp,probability,anomaly,risk,confidence,alerting\n"));
    assert_eq!(csv.lines().count(), out.trace.len() + 1);
}

#[test]
fn live_scores_are_finite_with_missing_metrics_and_unknown_hosts_are_refused() {
    let (ds, m) = model();
    let clock = Arc::new(ManualClock::new(0));
    let live = LiveScorer::new(m.clone(), no_reload(), clock.clone(), None, None);
    live.set_inventory(&ds.hosts, &ds.resources);
    // h000 gets every metric for 8 hours (warm after 6), h001 only one metric.
    let t0 = ds.metrics[0].timestamps[0];
    let mut full = Vec::new();
    let mut partial = Vec::new();
    for s in ds.metrics.iter().filter(|s| s.key.host.as_str() == "h000" || s.key.host.as_str() == "h001") {
        let mut part = SeriesSamples::new(s.key.clone());
        for (&t, &v) in s.timestamps.iter().zip(&s.values) {
            if t < t0 + 8 * 3_600_000 {
                part.push(t, v);
            }
        }
        if s.key.host.as_str() == "h000" {
            full.push(part);
        } else if s.key.metric.as_str() == m.schema.metrics[0].name {
            partial.push(part);
        }
    }
    live.observe_samples(&SampleBatch { series: full });
    live.observe_samples(&SampleBatch { series: partial });
    clock.set(t0 + 8 * 3_600_000);
    let ids = [HostId::new("h000"), HostId::new("h001")];
    let r = live.score_hosts(&ids).expect("known hosts");
    for x in &r {
        for v in [x.risk, x.failure_probability, x.anomaly, x.confidence] {
            assert!(v.is_finite() && (0.0..=1.0).contains(&v), "{x:?}");
        }
        assert!(x.factors.iter().all(|f| f.value.is_finite() && f.contribution.is_finite()), "{x:?}");
        assert_eq!(&*x.model_version, m.version.as_str());
    }
    assert!(r[1].confidence < r[0].confidence, "fewer metrics, less confidence: {} vs {}", r[1].confidence, r[0].confidence);
    // A host in the inventory that never sent data is scored with zero confidence.
    let silent = live.score_hosts(&[HostId::new("h002")]).expect("inventory host");
    assert_eq!(silent[0].confidence, 0.0);
    assert!(silent[0].risk.is_finite());
    // Unknown and empty ids.
    let e = live.score_hosts(&[HostId::new("nope")]).expect_err("unknown");
    assert!(matches!(e, harbinger_core::ScoreError::UnknownHost(_)));
    assert!(matches!(live.score_hosts(&[HostId::new("")]), Err(harbinger_core::ScoreError::Invalid(_))));
    // Explanations list every feature.
    let ex = live.explain_host(&ids[0]).expect("explain");
    assert_eq!(ex.all_factors.len(), m.schema.len());
    assert!(ex.history.is_empty(), "reads record no history: only the engine tick does");
    live.tick(t0 + 8 * 3_600_000);
    let ex = live.explain_host(&ids[0]).expect("explain");
    assert_eq!(ex.history.len(), 1, "one tick, one point");
    assert_eq!(ex.history[0].at, t0 + 8 * 3_600_000);
    // NaN samples are ignored, not propagated.
    let mut nan = SeriesSamples::new(SeriesKey::new("h000", m.schema.metrics[0].name.as_str()));
    nan.push(t0 + 8 * 3_600_000 + 60_000, f64::NAN);
    live.observe_samples(&SampleBatch { series: vec![nan] });
    assert!(live.score_hosts(&ids[..1]).expect("score")[0].risk.is_finite());
}

/// The one risk step: a dataset fed minute by minute into the live scorer, ticked by a
/// manual clock, enters the alerting state at the same hosts and times as `eval`; reads
/// between ticks (scores, explanations) change nothing.
#[test]
fn live_ticks_and_eval_give_the_same_alert_transitions_and_polling_changes_none() {
    use harbinger_core::TransitionKind;
    let (ds, m) = model();
    let o = EvalOptions::default();
    let eval = evaluate(ds, m, o, &|_| {}).expect("eval");
    let mut expected: Vec<(i64, String)> = eval.alerts.iter().map(|a| (a.timestamp, a.host.to_string())).collect();
    expected.sort();
    assert!(expected.len() >= 3, "the fleet gives alerts to compare: {expected:?}");

    let clock = Arc::new(ManualClock::new(0));
    let scorers: Vec<LiveScorer> =
        (0..2).map(|_| LiveScorer::new(m.clone(), no_reload(), clock.clone(), o.alert_threshold, o.clear_threshold)).collect();
    for s in &scorers {
        s.set_inventory(&ds.hosts, &ds.resources);
    }
    let (start, end) = ds.metrics.iter().fold((i64::MAX, i64::MIN), |(lo, hi), s| {
        (lo.min(*s.timestamps.first().unwrap_or(&lo)), hi.max(*s.timestamps.last().unwrap_or(&hi)))
    });
    let tick = 60_000;
    let mut feed = Feed::new(ds);
    let mut got: Vec<Vec<(i64, String)>> = vec![Vec::new(); 2];
    let mut t = start.div_euclid(tick) * tick + tick;
    let mut polled = 0;
    while t <= end {
        let (events, batch) = feed.until(t);
        clock.set(t);
        for (i, s) in scorers.iter().enumerate() {
            s.observe_events(&events);
            s.observe_samples(&batch);
            for tr in s.tick(t) {
                if tr.kind == TransitionKind::Entered {
                    got[i].push((tr.at, tr.host.to_string()));
                }
            }
        }
        // The second scorer is read between ticks, as clients would.
        if (t / tick) % 7 == 0 {
            let all = scorers[1].score_all();
            polled += all.len();
            for r in all.iter().take(3) {
                scorers[1].explain_host(&r.host).expect("explain");
            }
        }
        t += tick;
    }
    assert!(polled > 1_000, "the second scorer was read {polled} times");
    for g in &mut got {
        g.sort();
    }
    assert_eq!(got[0], expected, "live ticks and eval enter alerts at the same hosts and times");
    assert_eq!(got[1], got[0], "reads between ticks do not change the transitions");
}

/// Rows whose outcome a mitigation cut short (a failover, drain or promotion within the
/// horizon, and no failure) are left out, counted in the card; rows before a failure
/// stay, mitigated or not.
#[test]
fn rows_cut_short_by_a_mitigation_are_left_out_of_training() {
    use harbinger_model::Mitigation;
    let (ds, plain) = model();
    let o = TrainOptions { keep_rows: true, ..opts() };
    let base = train(ds, &o, &|_, _| {}).expect("train");
    assert_eq!(base.model.card.censored_rows, 0, "no mitigation, nothing left out");
    let rows = base.rows.as_ref().expect("rows kept");
    let split = plain.card.split_ms;
    let horizon = o.horizon_ms;
    // A host that never fails, mitigated 12 h into the held-back part (its whole
    // horizon lies there, where every row is kept: no sampling), and a failing host
    // mitigated 1 h before its failure.
    let healthy =
        ds.hosts.iter().map(|h| h.host.as_str()).find(|h| !ds.failures.iter().any(|f| f.host.as_str() == *h)).expect("a healthy host");
    let failing = ds.failures.iter().find(|f| f.timestamp > split + horizon + 3_600_000).expect("a failure in the held-back part");
    let (m_healthy, m_failing) = (split + 12 * 3_600_000, failing.timestamp - 3_600_000);
    let o2 = TrainOptions {
        mitigations: vec![
            Mitigation { host: HostId::new(healthy), ts: m_healthy },
            Mitigation { host: failing.host.clone(), ts: m_failing },
        ],
        ..o.clone()
    };
    let cut = train(ds, &o2, &|_, _| {}).expect("train");
    let cut_rows = cut.rows.as_ref().expect("rows kept");
    let idx = |h: &str| rows.hosts.iter().position(|x| x == h).expect("host numbered") as u32;
    let (hi, fi) = (idx(healthy), idx(failing.host.as_str()));
    let kept: std::collections::BTreeSet<(u32, i64)> = cut_rows.holdout_at.iter().copied().collect();
    let removed: Vec<(u32, i64, bool)> =
        rows.holdout_at.iter().zip(&rows.holdout_y).filter(|(at, _)| !kept.contains(at)).map(|(&(h, t), &y)| (h, t, y)).collect();
    assert_eq!(kept.len() + removed.len(), rows.holdout_at.len(), "nothing was added");
    assert_eq!(cut.model.card.censored_rows, removed.len(), "the card counts the rows left out");
    // Every row of the healthy host whose horizon holds the mitigation is gone ...
    let in_window = |t: i64, m: i64| t < m && m - t <= horizon;
    let healthy_window = rows.holdout_at.iter().filter(|&&(h, t)| h == hi && in_window(t, m_healthy)).count();
    assert!(healthy_window >= 20, "6 h of 15-minute rows: {healthy_window}");
    assert_eq!(removed.iter().filter(|r| r.0 == hi).count(), healthy_window);
    // ... the failing host loses only healthy rows before its last 6 h, never a failure row ...
    assert!(
        removed.iter().all(|&(h, t, y)| !y && (h == hi && in_window(t, m_healthy) || h == fi && in_window(t, m_failing))),
        "{removed:?}"
    );
    assert!(removed.iter().any(|r| r.0 == fi), "the failing host's earlier healthy rows are left out too");
    assert_eq!(rows.holdout_y.iter().filter(|&&y| y).count(), cut_rows.holdout_y.iter().filter(|&&y| y).count(), "failure rows stay");
    // ... and the card says so.
    let card = harbinger_model::card::render(&cut.model);
    assert!(card.contains(&format!("Rows left out because a mitigation cut their outcome short: {}", removed.len())), "{card}");
}

#[test]
fn a_fleet_whose_hosts_come_and_go_is_split_by_host() {
    use harbinger_model::train::SplitBy;
    use std::collections::BTreeSet;
    // Two thirds of the hosts first report after the middle of the data (as drives sampled
    // over their last weeks do): a split by time would hold most of them back whole.
    let mut ds = fleet(5);
    let (start, end) = harbinger_model::runner::data_span(&ds).expect("samples");
    let late = start + (end - start) * 11 / 20;
    let late_hosts: BTreeSet<HostId> = ds.hosts.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, h)| h.host.clone()).collect();
    for s in ds.metrics.iter_mut().filter(|s| late_hosts.contains(&s.key.host)) {
        let keep: Vec<bool> = s.timestamps.iter().map(|&t| t >= late).collect();
        let mut k = keep.iter();
        s.timestamps.retain(|_| *k.next().expect("a flag per sample"));
        let mut k = keep.iter();
        s.values.retain(|_| *k.next().expect("a flag per sample"));
    }
    ds.failures.retain(|f| !late_hosts.contains(&f.host) || f.timestamp > late + 6 * 3_600_000);
    let o = TrainOptions { keep_rows: true, ..opts() };
    let auto = train(&ds, &o, &|_, _| {}).expect("failures on training and held-back hosts");
    let timed = train(&ds, &TrainOptions { split: SplitBy::Time, ..o.clone() }, &|_, _| {}).expect("a time split");
    assert_eq!(timed.model.card.held_back_hosts, None, "split by time when asked");
    let held = auto.model.card.held_back_hosts.expect("auto splits by host here");
    let rows = auto.rows.as_ref().expect("rows kept");
    let train_hosts: BTreeSet<u32> = rows.train_at.iter().map(|r| r.0).collect();
    let held_hosts: BTreeSet<u32> = rows.holdout_at.iter().map(|r| r.0).collect();
    assert!(train_hosts.is_disjoint(&held_hosts), "no host trains and is held back");
    assert!(!train_hosts.is_empty() && held_hosts.len() <= held && held > 0 && held < ds.hosts.len(), "{held} of {}", ds.hosts.len());
    // Both parts cover the whole period: rows before and after the time split's point.
    let split = timed.model.card.split_ms;
    for at in [&rows.train_at, &rows.holdout_at] {
        assert!(at.iter().any(|r| r.1 < split) && at.iter().any(|r| r.1 > split), "rows on both sides of {split}");
    }
    let (tr, ho) = auto.model.card.split_failures.expect("failures counted");
    let on_held = |f: &&harbinger_core::Failure| {
        rows.hosts.iter().position(|h| h == f.host.as_str()).is_some_and(|i| held_hosts.contains(&(i as u32)))
    };
    assert_eq!(ho, ds.failures.iter().filter(on_held).count(), "held-back failures are those of held-back hosts");
    assert!(tr >= 2 && ho >= 2, "{tr} / {ho}");
    let card = harbinger_model::card::render(&auto.model);
    assert!(card.contains(&format!("Split by host: {held} of {} hosts held back", ds.hosts.len())), "{card}");
    // The default fleet (every host from the start) is still split by time.
    assert_eq!(model().1.card.held_back_hosts, None);
}

/// The engine tick from assessments made ahead ([`RiskScorer::prepare_ticks`]: a block of
/// ticks' input, every host's rows, the fleet signal and the model's assessment of each
/// row) equals the tick computed at the tick: a scorer fed 30 ticks at a time, each block
/// prepared before the block before it ticks (as replay does), gives the transitions and
/// host states of one fed tick by tick, also after a reload, between a block's preparing
/// and its ticks, to another model reading the same inputs (whose assessments the
/// prepared ones are not). A block's samples come one entry per series across its ticks,
/// one of them out of tick order ([`series_major`]).
#[test]
fn ticks_prepared_a_block_ahead_tick_as_ticks_fed_one_by_one_and_a_reload_between_is_seen() {
    let (ds, m) = model();
    // The other model: the same inputs, every probability halved.
    let dir = tempfile::tempdir().expect("tmp");
    let mut other = m.clone();
    other.calibration.y.iter_mut().for_each(|y| *y *= 0.5);
    std::fs::write(dir.path().join("model.json"), other.to_json().expect("json")).expect("write");
    let source = harbinger_model::ModelSource::new(dir.path(), |d| {
        let path = d.join("model.json");
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        Model::parse(path, &text).map_err(|e| e.to_string())
    });
    let clock = Arc::new(ManualClock::new(0));
    let [one, ahead] = [0, 1].map(|_| LiveScorer::new(m.clone(), source.clone(), clock.clone(), None, None));
    for s in [&one, &ahead] {
        s.set_inventory(&ds.hosts, &ds.resources);
    }
    let (start, end) = ds.metrics.iter().fold((i64::MAX, i64::MIN), |(lo, hi), s| {
        (lo.min(*s.timestamps.first().unwrap_or(&lo)), hi.max(*s.timestamps.last().unwrap_or(&hi)))
    });
    let tick = 60_000;
    let ticks: Vec<i64> = (start.div_euclid(tick) + 1..=end.div_euclid(tick)).map(|i| i * tick).collect();
    let mut feed = Feed::new(ds);
    let reload_at = ticks[ticks.len() / 2 + 7];
    let states = |s: &LiveScorer| -> Vec<(String, u64, u64, bool)> {
        s.host_states().into_iter().map(|h| (h.host.to_string(), h.risk.to_bits(), h.failure_probability.to_bits(), h.alerting)).collect()
    };
    let (mut entered, mut alerting_seen) = (0, false);
    let blocks: Vec<&[i64]> = ticks.chunks(30).collect();
    let mut prepare = |block: &[i64]| {
        let inputs: Vec<_> = block.iter().map(|&t| feed.until(t)).collect();
        let events: Vec<_> = inputs.iter().map(|(e, _)| e.clone()).collect();
        let batches: Vec<_> = inputs.iter().map(|(_, b)| b.clone()).collect();
        assert!(ahead.prepare_ticks(block, &events, &series_major(&batches)));
        inputs
    };
    let mut next = prepare(blocks[0]);
    for (b, block) in blocks.iter().enumerate() {
        let inputs = std::mem::replace(&mut next, blocks.get(b + 1).map_or_else(Vec::new, |n| prepare(n)));
        for (&t, (events, batch)) in block.iter().zip(inputs) {
            clock.set(t);
            if t == reload_at {
                for s in [&one, &ahead] {
                    s.reload(Some(dir.path())).expect("reload");
                }
            }
            one.observe_events(&events);
            one.observe_samples(&batch);
            let a = one.tick(t);
            let b = ahead.tick(t);
            assert_eq!(a, b, "transitions at {t}");
            let sa = states(&one);
            assert_eq!(sa, states(&ahead), "host states at {t}");
            entered += a.iter().filter(|tr| tr.kind == harbinger_core::TransitionKind::Entered).count();
            alerting_seen |= t > reload_at && sa.iter().any(|s| s.3);
        }
    }
    assert!(entered >= 3, "the fleet gives alerts to compare: {entered}");
    assert!(alerting_seen, "hosts alert after the reload too");
}

/// Ticks' batches as one entry per series across them (as replay gives a block), except
/// the first series, whose ticks come last to first: the scorer must put its samples back
/// in tick order.
fn series_major(batches: &[SampleBatch]) -> SampleBatch {
    let mut merged: Vec<SeriesSamples> = Vec::new();
    let mut at: std::collections::HashMap<harbinger_core::SeriesKey, usize> = std::collections::HashMap::new();
    let first = batches.iter().find_map(|b| b.series.first()).map(|s| s.key.clone());
    let order = batches.iter().flat_map(|b| &b.series).filter(|s| Some(&s.key) != first.as_ref());
    let backwards = batches.iter().rev().flat_map(|b| &b.series).filter(|s| Some(&s.key) == first.as_ref());
    for s in backwards.chain(order) {
        let i = *at.entry(s.key.clone()).or_insert_with(|| {
            merged.push(SeriesSamples::new(s.key.clone()));
            merged.len() - 1
        });
        merged[i].timestamps.extend(&s.timestamps);
        merged[i].values.extend(&s.values);
    }
    assert!(merged.first().is_some_and(|s| !s.timestamps.is_sorted()), "the first entry is out of order");
    SampleBatch { series: merged }
}

/// A dataset's input tick by tick, as a live scorer is fed it.
struct Feed<'a> {
    ds: &'a Dataset,
    cursors: Vec<usize>,
    next_event: usize,
}

impl<'a> Feed<'a> {
    fn new(ds: &'a Dataset) -> Self {
        Feed { ds, cursors: vec![0; ds.metrics.len()], next_event: 0 }
    }

    /// The events and samples after the previous call, up to and including `t`.
    fn until(&mut self, t: i64) -> (Vec<harbinger_core::Event>, SampleBatch) {
        let ds = self.ds;
        let mut events = Vec::new();
        while self.next_event < ds.events.len() && ds.events[self.next_event].ts <= t {
            events.push(ds.events[self.next_event].clone());
            self.next_event += 1;
        }
        let mut batch = SampleBatch::default();
        for (s, c) in ds.metrics.iter().zip(&mut self.cursors) {
            let from = *c;
            while *c < s.timestamps.len() && s.timestamps[*c] <= t {
                *c += 1;
            }
            if *c > from {
                batch.series.push(SeriesSamples {
                    key: s.key.clone(),
                    timestamps: s.timestamps[from..*c].to_vec(),
                    values: s.values[from..*c].to_vec(),
                });
            }
        }
        (events, batch)
    }
}

/// Scorers under test never reload: their source refuses to.
fn no_reload() -> harbinger_model::ModelSource {
    harbinger_model::ModelSource::new(std::path::Path::new("unused"), |d| Err(format!("no model at {} in this test", d.display())))
}

/// Writes `ds` to a dataset directory, its metrics in time order (`write_dataset`) or,
/// with `by_host`, host by host (a file far from time order, as some exporters write).
fn written(ds: &Dataset, by_host: bool) -> tempfile::TempDir {
    use polars::prelude::*;
    let dir = tempfile::tempdir().expect("tmp");
    harbinger_dataset::write_dataset(ds, dir.path(), harbinger_dataset::MetricsFormat::Parquet).expect("write");
    if by_host {
        let (mut t, mut h, mut m, mut v) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for s in &ds.metrics {
            for (ts, x) in s.timestamps.iter().zip(&s.values) {
                t.push(*ts);
                h.push(s.key.host.as_str());
                m.push(s.key.metric.as_str());
                v.push(*x);
            }
        }
        let n = t.len();
        let cols = vec![
            Column::new("timestamp".into(), t),
            Column::new("host".into(), h),
            Column::new("metric".into(), m),
            Column::new("value".into(), v),
        ];
        let mut df = DataFrame::new(n, cols).expect("frame");
        let mut f = std::fs::File::create(dir.path().join("metrics.parquet")).expect("create");
        ParquetWriter::new(&mut f).with_row_group_size(Some(100_000)).finish(&mut df).expect("parquet");
    }
    dir
}

fn trained_as_read(dir: &std::path::Path) -> (harbinger_model::Survey, Model) {
    let (survey, trained) = trained_as_read_with(dir, &opts());
    (survey, trained.model)
}

/// Trains on the dataset in `dir` read as the features are computed, counting the times
/// the metrics file is opened for a block of hosts.
fn trained_as_read_with(dir: &std::path::Path, o: &TrainOptions) -> (harbinger_model::Survey, harbinger_model::Trained) {
    let (survey, trained, _) = trained_as_read_counted(dir, o);
    (survey, trained)
}

/// As [`trained_as_read_with`], with the times training opened the metrics file.
fn trained_as_read_counted(dir: &std::path::Path, o: &TrainOptions) -> (harbinger_model::Survey, harbinger_model::Trained, usize) {
    let (base, report) = harbinger_dataset::read_inventory(dir).expect("inventory");
    let hosts: Vec<HostId> = base.hosts.iter().map(|h| h.host.clone()).collect();
    let opened = std::cell::Cell::new(0);
    let mut open = |keep: Option<&[HostId]>| {
        opened.set(opened.get() + 1);
        harbinger_dataset::MetricStream::open(&report.metrics_file, &hosts, keep, Default::default())
    };
    let survey = harbinger_model::Survey::scan(base.meta.as_ref(), &mut open(None).expect("open"), |_| {}).expect("scan");
    opened.set(0);
    let trained = harbinger_model::train_stream(&base, &survey, &mut open, o, &|_, _| {}).expect("train");
    (survey, trained, opened.get())
}

/// A fleet computed a block of hosts at a time (the first block: the hosts the fleet
/// signal is taken from; the later ones given that signal) trains the model one block
/// over the whole fleet gives, read from the file or held in memory; a memory budget
/// too small for any block is refused with the figures it was measured from.
#[test]
fn a_fleet_computed_a_block_of_hosts_at_a_time_trains_the_model_of_one_block() {
    let (ds, _) = model();
    let o = TrainOptions { fleet_reference_hosts: 12, ..opts() };
    let whole = train(ds, &o, &|_, _| {}).expect("train");
    assert_eq!((whole.blocks.count, whole.blocks.largest), (1, 30));
    let other = train(ds, &opts(), &|_, _| {}).expect("train").model;
    assert_ne!(whole.model.version, other.version, "the fleet signal of 12 hosts is not that of all 30");
    let dir = written(ds, false);
    for (blocked, from_file) in [(train(ds, &TrainOptions { block_hosts: Some(7), ..o.clone() }, &|_, _| {}).expect("train"), false), {
        let (_, trained, opened) = trained_as_read_counted(dir.path(), &TrainOptions { block_hosts: Some(7), ..o.clone() });
        // Read once: the later blocks read the rows the first one spilled for them.
        assert_eq!(opened, 1, "the metrics file opened once for the features");
        (trained, true)
    }] {
        // 12 reference hosts, then 18 in three blocks of 6.
        assert_eq!((blocked.blocks.count, blocked.blocks.first, blocked.blocks.largest), (4, 12, 12), "from the file: {from_file}");
        let (a, b) = (&blocked.model, &whole.model);
        assert_eq!(a.version, b.version, "from the file: {from_file}");
        assert_eq!(a.learner, b.learner);
        assert_eq!(a.calibration, b.calibration);
        assert_eq!(a.policy, b.policy);
        assert_eq!((a.card.train_rows, a.card.holdout_rows), (b.card.train_rows, b.card.holdout_rows));
        assert_eq!(a.card.holdout_summary, b.card.holdout_summary);
    }
    let tiny = TrainOptions { memory_budget: Some(1 << 20), ..o.clone() };
    let err = train(ds, &tiny, &|_, _| {}).expect_err("a megabyte holds no block").to_string();
    assert!(err.contains("memory budget of 1 MiB leaves no room") && err.contains("raise it to at least"), "{err}");
    // A budget that holds the fleet twice over computes it in the first block and the rest at once.
    let roomy = train(ds, &TrainOptions { memory_budget: Some(64 << 30), ..o }, &|_, _| {}).expect("train");
    assert_eq!((roomy.blocks.count, roomy.model.version.as_str()), (2, whole.model.version.as_str()));
}

#[test]
fn a_model_trained_as_the_file_is_read_equals_the_model_trained_on_the_dataset_in_memory() {
    let (ds, m) = model();
    for by_host in [false, true] {
        let dir = written(ds, by_host);
        let (survey, streamed) = trained_as_read(dir.path());
        assert_eq!(survey.lateness_ms > 0, by_host, "a file out of time order is measured as such");
        assert_eq!(streamed.version, m.version, "by host: {by_host}");
        assert_eq!(streamed.learner, m.learner);
        assert_eq!(streamed.policy, m.policy);
        assert_eq!(streamed.schema, m.schema);
        let (a, b) = (&streamed.card, &m.card);
        assert_eq!(
            (a.train_rows, a.train_positives, a.holdout_rows, a.holdout_positives),
            (b.train_rows, b.train_positives, b.holdout_rows, b.holdout_positives)
        );
        assert_eq!(a.holdout_summary, b.holdout_summary);
    }
}

/// A large sample batch is fed host by host on the thread pool: hosts out of order, a
/// host's series split over several entries of the batch and interleaved with other
/// hosts' give the same scores, tick by tick, as every series fed on its own in order.
#[test]
fn a_large_batch_fed_in_parallel_scores_as_its_series_fed_one_by_one() {
    let (ds, m) = model();
    let clock = Arc::new(ManualClock::new(0));
    let [one, big] = [0, 1].map(|_| LiveScorer::new(m.clone(), no_reload(), clock.clone(), None, None));
    for s in [&one, &big] {
        s.set_inventory(&ds.hosts, &ds.resources);
    }
    let start = ds.metrics.iter().filter_map(|s| s.timestamps.first()).min().copied().expect("samples");
    let end = ds.metrics.iter().filter_map(|s| s.timestamps.last()).max().copied().expect("samples");
    let hour = 3_600_000;
    let mut t = start.div_euclid(hour) * hour + hour;
    let mut compared = 0;
    while t <= end + hour {
        // The hour's samples of each series, in two halves.
        let cut = |s: &SeriesSamples, from: i64, to: i64| {
            let (a, b) = (s.timestamps.partition_point(|&x| x <= from), s.timestamps.partition_point(|&x| x <= to));
            SeriesSamples { key: s.key.clone(), timestamps: s.timestamps[a..b].to_vec(), values: s.values[a..b].to_vec() }
        };
        let mid = t - hour / 2;
        let mut batch = SampleBatch::default();
        for half in [(t - hour, mid), (mid, t)] {
            // Hosts in reverse order; each host's first halves before any second half.
            for s in ds.metrics.iter().rev() {
                batch.series.push(cut(s, half.0, half.1));
            }
        }
        assert!(batch.series.len() >= 256, "the batch is large enough to be fed in parallel: {}", batch.series.len());
        clock.set(t);
        big.observe_samples(&batch);
        for s in &ds.metrics {
            one.observe_samples(&SampleBatch { series: vec![cut(s, t - hour, t)] });
        }
        assert_eq!(one.tick(t), big.tick(t), "transitions at {t}");
        let (a, b) = (one.score_all(), big.score_all());
        assert_eq!(a, b, "scores at {t}");
        compared += a.iter().filter(|r| r.confidence > 0.0).count();
        t += hour;
    }
    assert!(compared > 1_000, "warm scores compared: {compared}");
}
