//! Rollback simulation: in what order a change would be undone, how long that would take,
//! what it needs, and how risky it is — computed before anything is touched.
//!
//! - **Order**: reverse dependency order (dependents are restored before what they
//!   depend on), in stages of independent resources that may run in parallel; within a
//!   stage, the highest impact first (criticality × (1 + dependents)).
//! - **Duration**: p50 and p90 of recorded durations of the same step on the same kind
//!   (`rollback`, else `apply`, from the change log); a kind with fewer than 3 records
//!   uses a default ([`default_duration_ms`]). A stage of `n` resources with parallelism
//!   `p` takes `ceil(n / p)` times its slowest kind; stages add up.
//! - **Rollback risk**: `1 − Π (1 − p_r)` over the changed resources, with `p_r` the
//!   kind's failure rate (restores that failed or did not verify, from the log, Laplace
//!   smoothed towards the kind's prior [`prior_failure`]) scaled by `1 + criticality / 3`,
//!   plus 0.2 when restoring the snapshot onto the changed state does not reproduce the
//!   current state exactly (the simulation); at least 0.6 for a change with a high
//!   rollback cost and 0.9 for an irreversible one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::Graph;
use crate::store::LogEntry;

/// Default duration of one restore, by kind, when the log has too few records.
pub fn default_duration_ms(kind: &str) -> (f64, f64) {
    match kind {
        "file" => (20.0, 100.0),
        "redis" => (50.0, 250.0),
        _ => (500.0, 3000.0),
    }
}

/// Prior probability that restoring a resource of `kind` fails.
pub fn prior_failure(kind: &str) -> f64 {
    match kind {
        "file" => 0.01,
        "redis" => 0.02,
        _ => 0.05,
    }
}

/// One resource the simulation covers.
#[derive(Debug, Clone)]
pub struct SimResource {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// 0..3.
    pub criticality: u8,
    /// State now (what a rollback must restore).
    pub current: Value,
    /// State after the change.
    pub target: Value,
    /// The kind's change profile (the parts a snapshot captures).
    pub profile: Vec<String>,
}

/// The rollback plan of a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackPlan {
    /// Stages, in the order they run; the resources of a stage may run in parallel.
    pub order: Vec<Vec<String>>,
    /// Estimated duration, median.
    pub estimate_p50_s: f64,
    /// Estimated duration, 90th percentile.
    pub estimate_p90_s: f64,
    /// Where the estimate comes from, e.g. `history: file n=12; default: exec`.
    pub estimate_basis: String,
    /// Rollback-risk score in [0, 1].
    pub risk: f64,
    /// Whether rolling back is expensive (needs `--override` to apply).
    pub high_cost: bool,
    /// Why it is expensive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub high_cost_reasons: Vec<String>,
    /// What a rollback needs: snapshots and their sizes, staging copies.
    pub resources_needed: Vec<String>,
    /// Resources whose snapshot would not restore the current state exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub simulation_problems: Vec<String>,
    /// Restores run at once at most.
    pub parallelism: usize,
}

/// The impact of a resource: criticality × (1 + number of dependents).
pub fn impact(graph: &Graph, id: &str, criticality: u8) -> f64 {
    f64::from(criticality.max(1)) * (1.0 + graph.dependents(id).len() as f64)
}

/// Orders `ids` for a rollback: reverse dependency stages, highest impact first within a
/// stage.
pub fn rollback_order(graph: &Graph, ids: &BTreeSet<String>, criticality: &BTreeMap<String, u8>) -> Vec<Vec<String>> {
    let mut stages = graph.stages(ids);
    stages.reverse();
    for s in &mut stages {
        // Impact computed once per resource (a dependents walk each), highest first.
        let mut keyed: Vec<(f64, String)> =
            s.drain(..).map(|id| (impact(graph, &id, criticality.get(&id).copied().unwrap_or(1)), id)).collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        s.extend(keyed.into_iter().map(|(_, id)| id));
    }
    stages
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Simulates the rollback of a change over `resources` (the changed ones).
pub fn simulate(
    graph: &Graph,
    resources: &[SimResource],
    log: &[LogEntry],
    parallelism: usize,
    high_cost_reasons: Vec<String>,
    irreversible: bool,
) -> RollbackPlan {
    let parallelism = parallelism.max(1);
    let ids: BTreeSet<String> = resources.iter().map(|r| r.id.clone()).collect();
    let crit: BTreeMap<String, u8> = resources.iter().map(|r| (r.id.clone(), r.criticality)).collect();
    let kinds: BTreeMap<&str, &str> = resources.iter().map(|r| (r.id.as_str(), r.kind.as_str())).collect();
    let order = rollback_order(graph, &ids, &crit);

    // Durations and failure rates by kind, from the log.
    let mut durations: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut apply_durations: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut restores: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for e in log {
        let Some(kind) = e.kind.as_deref() else { continue };
        match e.step.as_str() {
            "rollback" => {
                durations.entry(kind).or_default().push(e.duration_ms);
                let r = restores.entry(kind).or_default();
                r.0 += 1;
                r.1 += usize::from(e.outcome != "ok");
            }
            "verify" if e.outcome != "ok" => restores.entry(kind).or_default().1 += 1,
            "apply" => apply_durations.entry(kind).or_default().push(e.duration_ms),
            _ => {}
        }
    }
    let mut basis: BTreeMap<&str, String> = BTreeMap::new();
    let mut per_kind: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for kind in kinds.values() {
        let recorded = durations.get(kind).filter(|d| d.len() >= 3).or_else(|| apply_durations.get(kind).filter(|d| d.len() >= 3));
        let est = match recorded {
            Some(d) => {
                let mut d = d.clone();
                d.sort_by(f64::total_cmp);
                basis.insert(kind, format!("history: {kind} n={}", d.len()));
                (quantile(&d, 0.5), quantile(&d, 0.9))
            }
            None => {
                basis.insert(kind, format!("default: {kind}"));
                default_duration_ms(kind)
            }
        };
        per_kind.insert(kind, est);
    }
    let (mut p50, mut p90) = (0.0, 0.0);
    for stage in &order {
        let rounds = stage.len().div_ceil(parallelism) as f64;
        let slowest = stage
            .iter()
            .filter_map(|id| kinds.get(id.as_str()))
            .filter_map(|k| per_kind.get(k))
            .fold((0.0f64, 0.0f64), |acc, e| (acc.0.max(e.0), acc.1.max(e.1)));
        p50 += rounds * slowest.0;
        p90 += rounds * slowest.1;
    }

    // The simulation: does restoring the captured current state onto the changed state give
    // the current state back exactly?
    let mut problems = Vec::new();
    let mut needed = Vec::new();
    let mut survive = 1.0;
    for r in resources {
        let bytes = serde_json::to_vec(&r.current).map(|b| b.len()).unwrap_or(0);
        needed.push(format!("snapshot of {} ({} kind, {bytes} bytes of state)", r.id, r.kind));
        let restored_ok = restore_simulation(&r.kind, &r.profile, &r.current, &r.target);
        if !restored_ok {
            problems.push(format!("{}: restoring the snapshot onto the changed state does not give the current state back", r.id));
        }
        let (n, failed) = restores.get(r.kind.as_str()).copied().unwrap_or((0, 0));
        // Laplace smoothing: the prior counts as 10 observations.
        let rate = (failed as f64 + 10.0 * prior_failure(&r.kind)) / (n as f64 + 10.0);
        let mut p = rate * (1.0 + f64::from(r.criticality) / 3.0);
        if !restored_ok {
            p += 0.2;
        }
        survive *= 1.0 - p.min(1.0);
    }
    let mut risk = 1.0 - survive;
    let high_cost = !high_cost_reasons.is_empty();
    if high_cost {
        risk = risk.max(0.6);
    }
    if irreversible {
        risk = risk.max(0.9);
    }
    let basis = basis.into_values().collect::<Vec<_>>().join("; ");
    RollbackPlan {
        order,
        estimate_p50_s: round3(p50 / 1000.0),
        estimate_p90_s: round3(p90 / 1000.0),
        estimate_basis: basis,
        risk: round3(risk.clamp(0.0, 1.0)),
        high_cost,
        high_cost_reasons,
        resources_needed: needed,
        simulation_problems: problems,
        parallelism,
    }
}

/// Rounds to 3 decimals (stable JSON output).
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Captures the profiled parts of `current` as a snapshot would, puts them back into
/// `target` as a restore would, and checks the result is `current`, bit for bit. It fails
/// when a part cannot be put back (a pointer through a non-object) or when the change
/// moved something outside the profile, which a restore would not undo.
fn restore_simulation(kind: &str, profile: &[String], current: &Value, target: &Value) -> bool {
    let Ok(profile) = harbinger_snapshot::ChangeProfile::new(kind, profile.iter().cloned()) else { return false };
    let captured = harbinger_snapshot::capture(&profile, current);
    match harbinger_snapshot::apply(&captured, target) {
        Ok(v) => harbinger_snapshot::exact_eq(&v, current),
        Err(_) => false,
    }
}
