//! Rollout records for the tests of the routes that serve them (HTTP and gRPC).

use std::path::Path;

use harbinger_plan::judge::{Direction, Judgement, KpiSpec, MetricVerdict, Verdict as KpiVerdict};
use harbinger_plan::rollout::{
    ChangeScope, JudgementRecord, KpiWindow, Rollout, RolloutEvent, RolloutRecord, RolloutSpec, ShadowInstance, Verdict, shadow_scale,
};

/// A KPI spec: higher is worse, weight 1, tolerance 0.1.
pub fn kpi(name: &str, critical: bool) -> KpiSpec {
    KpiSpec { name: name.into(), direction: Direction::HigherIsWorse, weight: 1.0, critical, tolerance: 0.1, min_delta: 0.0 }
}

/// Rollout `r-1`: rolled back at its first judgement (two KPIs: latency passed, the
/// critical error rate failed), with its sample windows and events.
/// A rolled-back rollout record with one judgement of two KPIs, sample windows and events.
pub fn rolled_back() -> RolloutRecord {
    let spec = RolloutSpec { steps: vec![5, 25, 50], interval_ms: 2_000, count: 3, ..RolloutSpec::default() };
    let (mut state, _) = Rollout::start(spec).expect("a valid spec");
    state.on_judgement(Verdict::Fail, "error_rate failed");
    let latency = MetricVerdict {
        name: "latency_ms".into(),
        verdict: KpiVerdict::Pass,
        baseline_n: 5,
        canary_n: 5,
        baseline_median: Some(20.0),
        canary_median: Some(21.0),
        p_value: Some(0.42),
        u: Some(14.5),
        deviation: Some(0.05),
        weight: 1.0,
        critical: false,
        reason: "median 21 vs 20 within 10 %".into(),
    };
    let errors = MetricVerdict {
        name: "error_rate".into(),
        verdict: KpiVerdict::Fail,
        baseline_n: 5,
        canary_n: 5,
        baseline_median: Some(0.0),
        canary_median: Some(0.2),
        p_value: Some(0.004),
        u: Some(25.0),
        // The baseline median is 0: no relative deviation.
        deviation: None,
        weight: 1.0,
        critical: true,
        reason: "median 0.2 vs 0 beyond 0, p 0.004 < 0.05".into(),
    };
    let judgement = Judgement {
        metrics: vec![latency, errors],
        score: 50.0,
        pass: false,
        failed_critical: vec!["error_rate".into()],
        reason: "critical KPI error_rate failed".into(),
    };
    RolloutRecord {
        id: "r-1".into(),
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_004_000,
        backend: "web".into(),
        live: vec!["web-1".into(), "web-2".into()],
        shadow: vec![
            ShadowInstance { id: "r-1-1".into(), endpoint: "127.0.0.1:9101".into() },
            ShadowInstance { id: "r-1-2".into(), endpoint: "127.0.0.1:9102".into() },
        ],
        copies: Vec::new(),
        scale: shadow_scale(ChangeScope::Version, 2, 5),
        kpis: vec![kpi("latency_ms", false), kpi("error_rate", true)],
        rollout: state,
        judgements: vec![JudgementRecord {
            index: 1,
            at_ms: 1_700_000_002_000,
            window_start_ms: 1_700_000_000_000,
            window_end_ms: 1_700_000_002_000,
            share: 5,
            verdict: Verdict::Fail,
            judgement,
            windows: vec![
                KpiWindow {
                    name: "latency_ms".into(),
                    baseline: vec![19.0, 20.0, 20.5, 21.0, 20.0],
                    canary: vec![21.0, 20.5, 22.0, 21.0, 20.0],
                },
                KpiWindow { name: "error_rate".into(), baseline: vec![0.0; 5], canary: vec![0.2, 0.25, 0.2, 0.1, 0.3] },
            ],
        }],
        events: vec![
            RolloutEvent { ts: 1_700_000_000_000, kind: "scaled".into(), detail: "2 instances".into() },
            RolloutEvent { ts: 1_700_000_000_500, kind: "share".into(), detail: "5 %".into() },
            RolloutEvent { ts: 1_700_000_002_000, kind: "judgement".into(), detail: "1: fail".into() },
            RolloutEvent { ts: 1_700_000_002_010, kind: "rollback".into(), detail: "error_rate failed".into() },
        ],
        decision: Some("rolled_back".into()),
        live_requests: 950,
        shadow_requests: 50,
        rollback_ms: Some(12.5),
    }
}

/// Rollout `r-2`: started after `r-1`, no judgement yet, no decision.
/// A rollout still progressing, newer than [`rolled_back`], with no judgement yet.
pub fn progressing() -> RolloutRecord {
    let (state, _) = Rollout::start(RolloutSpec::default()).expect("a valid spec");
    RolloutRecord {
        id: "r-2".into(),
        created_ms: 1_700_000_100_000,
        updated_ms: 1_700_000_100_000,
        backend: "web".into(),
        live: vec!["web-1".into()],
        shadow: Vec::new(),
        copies: Vec::new(),
        scale: shadow_scale(ChangeScope::Config, 1, 5),
        kpis: vec![kpi("latency_ms", false)],
        rollout: state,
        judgements: Vec::new(),
        events: Vec::new(),
        decision: None,
        live_requests: 0,
        shadow_requests: 0,
        rollback_ms: None,
    }
}

/// Writes `r` as `<dir>/<id>.json`, as the controller does.
pub fn write(dir: &Path, r: &RolloutRecord) {
    std::fs::create_dir_all(dir).expect("rollouts dir");
    std::fs::write(dir.join(format!("{}.json", r.id)), serde_json::to_vec_pretty(r).expect("serialisable")).expect("write the record");
}
