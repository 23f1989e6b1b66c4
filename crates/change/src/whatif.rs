//! What-if analysis, pure: from a template, the resources' current states and the change
//! history, the update stack, the impact (changed resources and their dependents), the
//! change-risk score, anomalous operations and the rollback plan. No I/O: the engine
//! ([`crate::engine`]) reads the states, stages the change and runs the validation tests
//! around it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ChangeError;
use crate::anomaly::{Anomaly, Baseline};
use crate::graph::Graph;
use crate::risk::{ChangeFeatures, ChangeRiskModel, RiskScore};
use crate::simulate::{RollbackPlan, SimResource, simulate};
use crate::store::LogEntry;
use crate::template::Template;
use crate::types::{AppliedChange, UpdateOp};
use crate::validate::TestResult;

/// Resources a change moves and those that depend on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    /// Resources with at least one operation.
    pub changed: Vec<String>,
    /// Resources that depend on a changed one (directly or not) and are not changed.
    pub dependents: Vec<String>,
}

/// The change-risk part of an analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRisk {
    /// Score in [0, 1] with the factors that make it.
    #[serde(flatten)]
    pub score: RiskScore,
    /// `low` (< 0.2), `medium` (< 0.5), `high`.
    pub level: String,
    /// The features the score was computed from.
    pub features: ChangeFeatures,
}

/// What a change would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The stack.
    pub stack: String,
    /// The template's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The update stack, in apply order (dependencies first), then by resource and path.
    pub update_stack: Vec<UpdateOp>,
    /// Impact.
    pub impact: Impact,
    /// Change-risk score.
    pub risk: ChangeRisk,
    /// Validation tests on the staging copies (empty until the engine runs them).
    pub validation: Vec<TestResult>,
    /// Operations that deviate from the stack's baseline.
    pub anomalies: Vec<Anomaly>,
    /// How many applied changes the baseline was learned from, and whether that is enough.
    pub baseline: BaselineInfo,
    /// The rollback plan.
    pub rollback: RollbackPlan,
    /// Apply order: stages of changed resources, dependencies first.
    pub apply_order: Vec<Vec<String>>,
}

/// The baseline an analysis compared against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineInfo {
    /// Applied changes of the stack on record.
    pub changes: usize,
    /// Whether there are enough to flag anomalies.
    pub warm: bool,
}

/// Inputs of [`analyse`] besides the template.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisInputs<'a> {
    /// Each resource's current state.
    pub current: &'a BTreeMap<String, Value>,
    /// Each resource's change profile.
    pub profiles: &'a BTreeMap<String, Vec<String>>,
    /// Applied changes of the stack, oldest first.
    pub history: &'a [AppliedChange],
    /// The change log (durations and outcomes of past steps).
    pub log: &'a [LogEntry],
    /// The change-risk model.
    pub model: &'a ChangeRiskModel,
    /// Now, ms since epoch (time of day matters to the baseline).
    pub now_ms: i64,
    /// Restores run at once at most.
    pub parallelism: usize,
}

/// Each resource's state after the change: the template's desired parts over the current
/// state.
///
/// # Errors
/// [`ChangeError::OutsideProfile`] for a desired path a change of that kind may not touch.
pub fn targets(t: &Template, inputs: &AnalysisInputs<'_>) -> Result<BTreeMap<String, Value>, ChangeError> {
    let mut out = BTreeMap::new();
    for r in &t.resources {
        let current = inputs.current.get(&r.id).cloned().unwrap_or(Value::Object(Default::default()));
        let profile = inputs.profiles.get(&r.id).cloned().unwrap_or_default();
        let target = match &r.desired {
            None => current,
            Some(d) => crate::diff::target_state(&current, d, &profile).map_err(|paths| ChangeError::OutsideProfile {
                resource: r.id.clone(),
                kind: r.spec.kind().to_string(),
                paths,
                profile,
            })?,
        };
        out.insert(r.id.clone(), target);
    }
    Ok(out)
}

/// The dependency graph of a template.
///
/// # Errors
/// [`ChangeError::Cycle`].
pub fn graph_of(t: &Template) -> Result<Graph, ChangeError> {
    Graph::new(t.resources.iter().map(|r| (r.id.as_str(), r.depends_on.iter().map(String::as_str)))).map_err(ChangeError::Cycle)
}

/// What the rollback simulation covers: each changed resource with its state now, its
/// state after the change and its change profile.
pub fn sim_resources(
    t: &Template,
    changed: &BTreeSet<String>,
    inputs: &AnalysisInputs<'_>,
    targets: &BTreeMap<String, Value>,
) -> Vec<SimResource> {
    let empty = Value::Object(Default::default());
    t.resources
        .iter()
        .filter(|r| changed.contains(&r.id))
        .map(|r| SimResource {
            id: r.id.clone(),
            kind: r.spec.kind().to_string(),
            criticality: r.criticality,
            current: inputs.current.get(&r.id).cloned().unwrap_or_else(|| empty.clone()),
            target: targets.get(&r.id).cloned().unwrap_or_else(|| empty.clone()),
            profile: inputs.profiles.get(&r.id).cloned().unwrap_or_default(),
        })
        .collect()
}

/// Analyses a change (see the module docs).
///
/// # Errors
/// A cycle, or a desired path outside a kind's change profile.
pub fn analyse(t: &Template, inputs: &AnalysisInputs<'_>) -> Result<Analysis, ChangeError> {
    let graph = graph_of(t)?;
    let targets = targets(t, inputs)?;
    let empty = Value::Object(Default::default());
    let mut per_resource: BTreeMap<&str, Vec<UpdateOp>> = BTreeMap::new();
    for r in &t.resources {
        let ops = crate::diff::diff(&r.id, inputs.current.get(&r.id).unwrap_or(&empty), &targets[&r.id]);
        if !ops.is_empty() {
            per_resource.insert(&r.id, ops);
        }
    }
    let changed: BTreeSet<String> = per_resource.keys().map(|s| s.to_string()).collect();
    let apply_order = graph.stages(&changed);
    let update_stack: Vec<UpdateOp> =
        apply_order.iter().flatten().flat_map(|id| per_resource.get(id.as_str()).cloned().unwrap_or_default()).collect();
    let dependents = graph.dependents_of(changed.iter());
    let impact = Impact { changed: changed.iter().cloned().collect(), dependents: dependents.iter().cloned().collect() };

    let baseline = Baseline::learn(inputs.history);
    let anomalies = baseline.flag(&t.stack, &update_stack, inputs.now_ms);
    let baseline_info =
        BaselineInfo { changes: inputs.history.iter().filter(|c| c.stack == t.stack).count(), warm: baseline.is_warm(&t.stack) };

    let criticality: BTreeMap<String, u8> = t.resources.iter().map(|r| (r.id.clone(), r.criticality)).collect();
    let features = ChangeFeatures::from_ops(&update_stack, &criticality, dependents.len(), anomalies.len());
    let mut score = inputs.model.score(&features);
    if !anomalies.is_empty() {
        // History has no flagged operations to learn their weight from: each one doubles
        // the odds of a bad change.
        let n = anomalies.len() as f64;
        let p = score.score.clamp(1e-9, 1.0 - 1e-9);
        let logit = (p / (1.0 - p)).ln() + n * std::f64::consts::LN_2;
        score.score = 1.0 / (1.0 + (-logit).exp());
        score.factors.insert(0, crate::risk::Factor { name: "anomalies".to_string(), value: n, contribution: n * std::f64::consts::LN_2 });
    }
    let level = if score.score < 0.2 {
        "low"
    } else if score.score < 0.5 {
        "medium"
    } else {
        "high"
    };

    let sim = sim_resources(t, &changed, inputs, &targets);
    let irreversible = t.rollback.irreversible || t.resources.iter().any(|r| changed.contains(&r.id) && r.rollback.irreversible);
    let mut high_cost_reasons = t.high_cost_reasons();
    // A cascade: resources changed together with one they depend on whose rollback is
    // expensive (a data migration): restoring them cannot undo it.
    for r in t.resources.iter().filter(|r| changed.contains(&r.id) && (r.rollback.high_cost || r.rollback.irreversible)) {
        let cascade: Vec<String> = graph.dependents(&r.id).into_iter().filter(|d| changed.contains(d)).collect();
        if !cascade.is_empty() {
            high_cost_reasons.push(format!(
                "cascade: {} changed together with {}, which they depend on and whose rollback is expensive: rolling them back cannot undo {}",
                cascade.join(", "),
                r.id,
                r.id
            ));
        }
    }
    let rollback = simulate(&graph, &sim, inputs.log, inputs.parallelism, high_cost_reasons, irreversible);
    Ok(Analysis {
        stack: t.stack.clone(),
        description: t.description.clone(),
        update_stack,
        impact,
        risk: ChangeRisk { score, level: level.to_string(), features },
        validation: Vec::new(),
        anomalies,
        baseline: baseline_info,
        rollback,
        apply_order,
    })
}
