//! Change risk: the probability that a change goes bad, learned from deployment history.
//!
//! A change (a deployment or a configuration change in `events.jsonl`, or a new update
//! stack about to be applied) is described by a few [`ChangeFeatures`]: how many leaves it
//! moves, how far numbers move, how big a version bump it is, how critical the resources
//! are and how many resources depend on them. A [`ChangeRiskModel`] is an L2-regularised
//! logistic regression on the standardised features, fitted on labelled history
//! ([`label_history`]: a deployment is bad when it failed, was rolled back, or a
//! `bad_deploy` failure hit its host within 6 h), so its score is a probability, and each
//! score comes with the per-feature contributions (log-odds) that explain it.
//!
//! # Layout
//! - [`ChangeFeatures`]: the features, from a history [`Event`] or from [`UpdateOp`]s.
//! - [`ResourceGraph`]: criticality and transitive dependents from `resources.json`.
//! - [`label_history`]: labelled changes from events and failures.
//! - [`ChangeRiskModel::fit`] / [`ChangeRiskModel::fit_dataset`]: fitting, with a
//!   [`Calibration`] report on a held-out time split (the last 30% of rows by time).
//! - [`ChangeRiskModel::score`]: a [`RiskScore`] with its [`Factor`]s.
//! - [`ChangeRiskModel::embedded_default`]: the model fitted on `datasets/fleet-train`,
//!   shipped as `models/change-risk.json` (regenerate with
//!   `cargo test -p harbinger-change --test risk -- --ignored regenerate_change_risk_model`).
//!
//! Start at [`ChangeRiskModel::fit_dataset`] and [`ChangeRiskModel::score`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use harbinger_core::event::parse_events_jsonl;
use harbinger_core::{Event, EventKind, Failure, HostId, Resource};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::UpdateOp;

/// The feature names, in the order of [`ChangeFeatures::values`] and of the model's vectors.
pub const FEATURE_NAMES: [&str; 8] =
    ["ops", "resources", "version_bump", "magnitude", "criticality", "blast_radius", "deploy", "anomalies"];

/// How long after a change a `bad_deploy` failure on its host (or a rollback of its
/// resource, for configuration changes) still marks the change as bad: 6 h.
pub const LABEL_WINDOW_MS: i64 = 6 * 3_600_000;

/// The largest [`ChangeFeatures::magnitude`]: ln(100), a factor of 100. A number that
/// crosses or leaves zero (0 → 5, −1 → 1) counts as this much.
pub const MAGNITUDE_CAP: f64 = 2.0 * std::f64::consts::LN_10;

/// The L2 penalty of [`ChangeRiskModel::fit`] (linfa's `alpha`, on the summed log loss of
/// standardised features; the intercept is not penalised).
pub const DEFAULT_ALPHA: f64 = 1.0;

/// The share of rows, latest by time, held out to measure calibration.
pub const HOLDOUT_FRACTION: f64 = 0.3;

/// Bins of the reliability table (equal counts of held-out rows).
pub const RELIABILITY_BINS: usize = 5;

/// The version of the model file layout.
pub const MODEL_FORMAT: u32 = 1;

/// Standardised feature values are clamped to ±this, so one extreme input cannot
/// dominate the score without bound.
const STD_CLAMP: f64 = 20.0;

/// Iterations of linfa's L-BFGS solver (it converges in far fewer on these sizes).
const MAX_ITERATIONS: u64 = 500;

/// The model fitted on `datasets/fleet-train`.
const EMBEDDED_MODEL: &str = include_str!("../../../models/change-risk.json");

/// Something went wrong reading history or fitting a model.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    /// The OS failed to read a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line of an input file could not be accepted.
    #[error("{path} line {line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The history holds only good or only bad changes: nothing to learn from.
    #[error(
        "cannot fit the change-risk model: {rows} labelled changes, {positives} bad and {} good; \
         need at least one of each",
        .rows - .positives
    )]
    OneClass {
        /// Labelled changes.
        rows: usize,
        /// Bad ones among them.
        positives: usize,
    },
    /// The solver failed.
    #[error("cannot fit the change-risk model: {0}")]
    Fit(String),
    /// A model file does not hold together.
    #[error("invalid change-risk model: {0}")]
    Model(String),
}

// ---------------------------------------------------------------------------------------
// Features
// ---------------------------------------------------------------------------------------

/// What a change looks like to the risk model. All counts are of the change itself.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ChangeFeatures {
    /// Leaf changes (update-stack entries, or `changes` of an event; at least 1 for an
    /// event).
    pub ops: usize,
    /// Distinct resources changed.
    pub resources: usize,
    /// The largest version bump: 0 none, 1 patch (or any other difference of two
    /// semver-like versions with equal major and minor), 2 minor, 3 major — or a version
    /// that is added, removed or not semver-like (`latest` → `abc123`), counted as major
    /// because nothing says it is compatible. Downgrades count like upgrades.
    pub version_bump: u8,
    /// The largest |ln(to/from)| over numeric leaves whose value changes, capped at
    /// [`MAGNITUDE_CAP`] (which is also the value for a number crossing or leaving
    /// zero); 0 when no number changes.
    pub magnitude: f64,
    /// The highest criticality (0 best effort .. 3 critical) of the changed resources;
    /// an unknown resource counts as 0.
    pub criticality: u8,
    /// Resources that depend, directly or transitively, on a changed resource (the
    /// changed ones themselves excluded).
    pub blast_radius: usize,
    /// The change moves a version (a deployment) rather than configuration only.
    pub deploy: bool,
    /// Operations flagged as anomalous against the stack's baseline (see
    /// [`crate::anomaly`]); always 0 in history, so the fitted model gives it no weight.
    pub anomalies: usize,
}

impl ChangeFeatures {
    /// The features of a history event: `deploy_started` (a deployment) or
    /// `config_changed`; `None` for any other kind. The version bump comes from the
    /// event's `from`/`to` and any `/version` change; criticality and blast radius from
    /// `graph`.
    pub fn from_event(ev: &Event, graph: &ResourceGraph) -> Option<Self> {
        let deploy = match ev.kind {
            EventKind::DeployStarted => true,
            EventKind::ConfigChanged => false,
            _ => return None,
        };
        let mut version_bump = 0;
        if deploy && (ev.from.is_some() || ev.to.is_some()) {
            version_bump = version_bump_of(ev.from.as_ref(), ev.to.as_ref());
        }
        let mut magnitude: f64 = 0.0;
        for c in &ev.changes {
            if is_version_path(&c.path) {
                version_bump = version_bump.max(version_bump_of(c.from.as_ref(), c.to.as_ref()));
            }
            if let (Some(a), Some(b)) = (&c.from, &c.to)
                && let Some(m) = numeric_magnitude(a, b)
            {
                magnitude = magnitude.max(m);
            }
        }
        let resource = ev.resource.as_deref();
        Some(Self {
            ops: ev.changes.len().max(1),
            resources: usize::from(resource.is_some()),
            version_bump,
            magnitude,
            criticality: resource.map_or(0, |r| graph.criticality_of(r)),
            blast_radius: resource.map_or(0, |r| graph.blast_radius([r])),
            deploy,
            anomalies: 0,
        })
    }

    /// The features of a new change's update stack. `criticality` maps resource ids to
    /// 0..3 (missing ids count as 0); `blast_radius` (transitive dependents of the changed
    /// resources, e.g. from [`ResourceGraph::blast_radius`]) and `anomalies` (flagged
    /// operations) are the caller's. A version leaf is a path whose last segment is
    /// `version` (`/version`, `/image/version`); the change is a deployment when one of
    /// them moves.
    pub fn from_ops(ops: &[UpdateOp], criticality: &BTreeMap<String, u8>, blast_radius: usize, anomalies: usize) -> Self {
        let mut version_bump = 0;
        let mut magnitude: f64 = 0.0;
        let mut resources = BTreeSet::new();
        for op in ops {
            resources.insert(op.resource.as_str());
            if is_version_path(&op.path) {
                version_bump = version_bump.max(version_bump_of(non_null(&op.from), non_null(&op.to)));
            }
            if let Some(m) = numeric_magnitude(&op.from, &op.to) {
                magnitude = magnitude.max(m);
            }
        }
        Self {
            ops: ops.len(),
            resources: resources.len(),
            version_bump,
            magnitude,
            criticality: resources.iter().map(|r| criticality.get(*r).copied().unwrap_or(0)).max().unwrap_or(0),
            blast_radius,
            deploy: version_bump > 0,
            anomalies,
        }
    }

    /// The values in [`FEATURE_NAMES`] order (`deploy` as 0 or 1).
    pub fn values(&self) -> [f64; 8] {
        [
            self.ops as f64,
            self.resources as f64,
            f64::from(self.version_bump),
            self.magnitude,
            f64::from(self.criticality),
            self.blast_radius as f64,
            if self.deploy { 1.0 } else { 0.0 },
            self.anomalies as f64,
        ]
    }
}

fn non_null(v: &Value) -> Option<&Value> {
    if v.is_null() { None } else { Some(v) }
}

/// The last segment of a JSON pointer is `version`.
fn is_version_path(path: &str) -> bool {
    path.rsplit('/').next() == Some("version")
}

/// A version as text: strings as they are, numbers as written (`14.2`).
fn version_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `[major, minor, patch]` of `1.4.2`, `v2.0`, `3.1.0-rc.1+build` (pre-release and build
/// ignored; missing parts are 0; a fourth part and beyond are ignored).
fn parse_semver(s: &str) -> Option<[u64; 3]> {
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    let core = s.split(['-', '+']).next().unwrap_or(s);
    if core.is_empty() {
        return None;
    }
    let mut out = [0u64; 3];
    for (i, part) in core.split('.').enumerate() {
        let n: u64 = part.parse().ok()?;
        if let Some(slot) = out.get_mut(i) {
            *slot = n;
        }
    }
    Some(out)
}

/// The bump between two versions (see [`ChangeFeatures::version_bump`]).
fn version_bump_of(from: Option<&Value>, to: Option<&Value>) -> u8 {
    let (a, b) = (from.and_then(version_text), to.and_then(version_text));
    match (a, b) {
        (None, None) => 0,
        (Some(a), Some(b)) if a == b => 0,
        (Some(a), Some(b)) => match (parse_semver(&a), parse_semver(&b)) {
            (Some(x), Some(y)) if x[0] != y[0] => 3,
            (Some(x), Some(y)) if x[1] != y[1] => 2,
            (Some(_), Some(_)) => 1,
            _ => 3,
        },
        _ => 3,
    }
}

/// |ln(to/from)| of two numbers, capped; `None` unless both are numbers.
fn numeric_magnitude(from: &Value, to: &Value) -> Option<f64> {
    let (a, b) = (from.as_f64()?, to.as_f64()?);
    if !(a.is_finite() && b.is_finite()) {
        return None;
    }
    if a == b {
        return Some(0.0);
    }
    if (a > 0.0 && b > 0.0) || (a < 0.0 && b < 0.0) {
        return Some((b / a).ln().abs().min(MAGNITUDE_CAP));
    }
    Some(MAGNITUDE_CAP)
}

// ---------------------------------------------------------------------------------------
// Resource graph
// ---------------------------------------------------------------------------------------

/// What the risk features need from `resources.json`: criticality and who depends on whom.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceGraph {
    criticality: BTreeMap<String, u8>,
    /// resource → resources that name it in `depends_on`.
    dependents: BTreeMap<String, BTreeSet<String>>,
}

impl ResourceGraph {
    /// Builds the graph from the inventory.
    pub fn from_resources(resources: &[Resource]) -> Self {
        let mut g = Self::default();
        for r in resources {
            g.criticality.insert(r.id.clone(), r.criticality.min(3));
            for d in &r.depends_on {
                g.dependents.entry(d.clone()).or_default().insert(r.id.clone());
            }
        }
        g
    }

    /// Criticality by resource id (for [`ChangeFeatures::from_ops`]).
    pub fn criticality(&self) -> &BTreeMap<String, u8> {
        &self.criticality
    }

    /// The criticality of one resource; 0 when unknown.
    pub fn criticality_of(&self, resource: &str) -> u8 {
        self.criticality.get(resource).copied().unwrap_or(0)
    }

    /// Resources that depend, directly or transitively, on any of `changed`, excluding
    /// the changed resources themselves. Cycles are tolerated.
    pub fn blast_radius<'a>(&self, changed: impl IntoIterator<Item = &'a str>) -> usize {
        let roots: BTreeSet<&str> = changed.into_iter().collect();
        let mut seen: BTreeSet<&str> = roots.clone();
        let mut stack: Vec<&str> = roots.iter().copied().collect();
        let mut count = 0;
        while let Some(r) = stack.pop() {
            for d in self.dependents.get(r).into_iter().flatten() {
                if seen.insert(d.as_str()) {
                    count += 1;
                    stack.push(d.as_str());
                }
            }
        }
        count
    }
}

// ---------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------

/// A deployment or a configuration change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// `deploy_started`.
    Deploy,
    /// `config_changed`.
    Config,
}

/// A change of history with its features and whether it went bad.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledChange {
    /// When it started, ms since epoch.
    pub ts: i64,
    /// Deployment or configuration change.
    pub kind: ChangeKind,
    /// The deployment id, or for a configuration change its resource (`""` if none).
    pub id: String,
    /// Its features.
    pub features: ChangeFeatures,
    /// It went bad (see [`label_history`]).
    pub bad: bool,
}

/// Labels the changes of a history, in time order.
///
/// - A deployment (`deploy_started`) is bad when the same deployment id gets a
///   `deploy_failed` or `rolled_back` event (at any time), or its host has a failure of
///   kind `bad_deploy` within [`LABEL_WINDOW_MS`] (6 h) after the start.
/// - A `config_changed` event is bad when a `bad_deploy` failure follows on its host
///   within 6 h, or a `rolled_back` event names the same resource within 6 h.
///
/// Other events only serve as evidence.
pub fn label_history(events: &[Event], failures: &[Failure], graph: &ResourceGraph) -> Vec<LabelledChange> {
    let mut bad_deployments: BTreeSet<&str> = BTreeSet::new();
    let mut rollbacks: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for ev in events {
        if matches!(ev.kind, EventKind::DeployFailed | EventKind::RolledBack)
            && let Some(d) = &ev.deployment
        {
            bad_deployments.insert(d.as_str());
        }
        if ev.kind == EventKind::RolledBack
            && let Some(r) = &ev.resource
        {
            rollbacks.entry(r.as_str()).or_default().push(ev.ts);
        }
    }
    let mut bad_failures: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for f in failures.iter().filter(|f| f.kind == "bad_deploy") {
        bad_failures.entry(f.host.as_str()).or_default().push(f.timestamp);
    }
    let within = |times: Option<&Vec<i64>>, ts: i64| times.is_some_and(|t| t.iter().any(|&x| x >= ts && x <= ts + LABEL_WINDOW_MS));

    let mut out = Vec::new();
    for ev in events {
        let Some(features) = ChangeFeatures::from_event(ev, graph) else { continue };
        let host_failed = within(ev.host.as_ref().and_then(|h| bad_failures.get(h.as_str())), ev.ts);
        let (kind, id, bad) = match ev.kind {
            EventKind::DeployStarted => {
                let id = ev.deployment.clone().unwrap_or_default();
                let bad = host_failed || ev.deployment.as_deref().is_some_and(|d| bad_deployments.contains(d));
                (ChangeKind::Deploy, id, bad)
            }
            _ => {
                let id = ev.resource.clone().unwrap_or_default();
                let rolled = within(ev.resource.as_deref().and_then(|r| rollbacks.get(r)), ev.ts);
                (ChangeKind::Config, id, host_failed || rolled)
            }
        };
        out.push(LabelledChange { ts: ev.ts, kind, id, features, bad });
    }
    out.sort_by_key(|c| c.ts);
    out
}

// ---------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------

/// Counts of what the model was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// The dataset's name (`dataset.json`, else the directory name), when fitted from one.
    pub dataset: Option<String>,
    /// Labelled changes fitted on (all of them: the shipped coefficients are a refit on
    /// every row after the held-out calibration was measured).
    pub rows: usize,
    /// Bad changes among them.
    pub positives: usize,
    /// Deployments among the rows.
    pub deploys: usize,
    /// Bad deployments.
    pub deploy_positives: usize,
    /// Configuration changes among the rows.
    pub configs: usize,
    /// Bad configuration changes.
    pub config_positives: usize,
    /// Features with no variation in the rows: their coefficient is 0, so they do not
    /// move the score (e.g. `anomalies`, always 0 in history).
    pub constant_features: Vec<String>,
}

/// One bin of the reliability table: held-out rows with similar predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lowest prediction in the bin.
    pub lo: f64,
    /// Highest prediction in the bin.
    pub hi: f64,
    /// Mean prediction.
    pub mean_predicted: f64,
    /// Share of bad changes among the bin's rows.
    pub observed_rate: f64,
    /// Rows in the bin.
    pub count: usize,
}

/// How well probabilities from a model fitted on the first 70% of rows (by time) match
/// what happened in the last 30%.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Rows the split model was fitted on.
    pub train_rows: usize,
    /// Held-out rows.
    pub test_rows: usize,
    /// The first held-out row's timestamp (ms since epoch).
    pub split_ts: i64,
    /// Bad changes among the held-out rows.
    pub test_positives: usize,
    /// Share of bad changes among the held-out rows.
    pub base_rate: f64,
    /// Mean squared error of the predicted probabilities (lower is better).
    pub brier: f64,
    /// The Brier score of always predicting the training rows' base rate: a model worth
    /// having scores below it.
    pub brier_reference: f64,
    /// Mean negative log-likelihood (natural log).
    pub log_loss: f64,
    /// Area under the ROC curve (ties count half); `None` when the held-out rows hold
    /// one class only.
    pub auc: Option<f64>,
    /// Up to [`RELIABILITY_BINS`] bins of equal counts, by prediction.
    pub reliability: Vec<ReliabilityBin>,
}

/// Options of [`ChangeRiskModel::fit_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// L2 penalty ([`DEFAULT_ALPHA`]).
    pub alpha: f64,
    /// Share of rows, latest by time, held out for the calibration report
    /// ([`HOLDOUT_FRACTION`]).
    pub holdout_fraction: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self { alpha: DEFAULT_ALPHA, holdout_fraction: HOLDOUT_FRACTION }
    }
}

/// A fitted change-risk model: logistic regression on standardised [`ChangeFeatures`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRiskModel {
    /// File layout version ([`MODEL_FORMAT`]).
    pub format: u32,
    /// [`FEATURE_NAMES`].
    pub feature_names: Vec<String>,
    /// Training mean of each feature.
    pub means: Vec<f64>,
    /// Training standard deviation of each feature (1 for a constant feature).
    pub stds: Vec<f64>,
    /// Log-odds per standardised unit of each feature.
    pub coefficients: Vec<f64>,
    /// Log-odds at the training means.
    pub intercept: f64,
    /// The L2 penalty it was fitted with.
    pub alpha: f64,
    /// Training range `[min, max]` of each feature. A value outside is clamped to it
    /// before scoring, so a change far larger than any in history is scored like the
    /// largest seen instead of being extrapolated (empty: no clamping).
    #[serde(default)]
    pub ranges: Vec<[f64; 2]>,
    /// What it was fitted on. The coefficients come from a fit on all rows.
    pub summary: TrainingSummary,
    /// The held-out report: a model fitted the same way on the first 70% of rows by time,
    /// scored on the last 30%. `None` when that split cannot be fitted (its first part
    /// holds one class only) or leaves no rows to test.
    pub calibration: Option<Calibration>,
}

/// One feature's part in a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// The feature ([`FEATURE_NAMES`]).
    pub name: String,
    /// Its raw value.
    pub value: f64,
    /// Log-odds it adds: coefficient × standardised value (positive raises the risk
    /// above that of an average change).
    pub contribution: f64,
}

/// A change's risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskScore {
    /// Probability that the change goes bad, 0..1.
    pub score: f64,
    /// Every feature's contribution, largest |contribution| first.
    pub factors: Vec<Factor>,
}

struct Fitted {
    means: Vec<f64>,
    stds: Vec<f64>,
    coefficients: Vec<f64>,
    intercept: f64,
    constant: Vec<bool>,
}

impl Fitted {
    fn logit(&self, x: &[f64; 8]) -> f64 {
        let mut z = self.intercept;
        for (j, v) in x.iter().enumerate() {
            z += self.coefficients[j] * standardise(*v, self.means[j], self.stds[j]);
        }
        z
    }
}

fn standardise(v: f64, mean: f64, std: f64) -> f64 {
    ((v - mean) / std).clamp(-STD_CLAMP, STD_CLAMP)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn fit_rows(rows: &[LabelledChange], alpha: f64) -> Result<Fitted, RiskError> {
    let n = rows.len();
    let k = FEATURE_NAMES.len();
    let values: Vec<[f64; 8]> = rows.iter().map(|r| r.features.values()).collect();
    let mut means = vec![0.0; k];
    let mut stds = vec![1.0; k];
    let mut constant = vec![false; k];
    for j in 0..k {
        let mean = values.iter().map(|v| v[j]).sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v[j] - mean).powi(2)).sum::<f64>() / n as f64;
        means[j] = mean;
        if var.sqrt() > 1e-9 {
            stds[j] = var.sqrt();
        } else {
            constant[j] = true;
        }
    }
    let mut x = Array2::<f64>::zeros((n, k));
    for (i, v) in values.iter().enumerate() {
        for j in 0..k {
            x[[i, j]] = standardise(v[j], means[j], stds[j]);
        }
    }
    let y = Array1::from_iter(rows.iter().map(|r| r.bad));
    let fitted = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(MAX_ITERATIONS)
        .fit(&Dataset::new(x, y))
        .map_err(|e| RiskError::Fit(e.to_string()))?;
    // linfa's "positive" class is the more frequent one; flip so the score is P(bad).
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let coefficients = fitted.params().iter().zip(&constant).map(|(w, &c)| if c { 0.0 } else { sign * w }).collect::<Vec<f64>>();
    Ok(Fitted { means, stds, coefficients, intercept: sign * fitted.intercept(), constant })
}

fn roc_auc(scored: &[(f64, bool)]) -> Option<f64> {
    let pos = scored.iter().filter(|s| s.1).count();
    let neg = scored.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks over ties (Mann-Whitney U).
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += avg_rank * sorted[i..=j].iter().filter(|s| s.1).count() as f64;
        i = j + 1;
    }
    let (p, q) = (pos as f64, neg as f64);
    Some((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * q))
}

fn calibration(model: &Fitted, train: &[LabelledChange], test: &[LabelledChange]) -> Calibration {
    let scored: Vec<(f64, bool)> = test.iter().map(|r| (sigmoid(model.logit(&r.features.values())), r.bad)).collect();
    let n = scored.len() as f64;
    let positives = scored.iter().filter(|s| s.1).count();
    let y = |b: bool| if b { 1.0 } else { 0.0 };
    let train_rate = train.iter().filter(|r| r.bad).count() as f64 / train.len() as f64;
    let brier = scored.iter().map(|(p, b)| (p - y(*b)).powi(2)).sum::<f64>() / n;
    let brier_reference = scored.iter().map(|(_, b)| (train_rate - y(*b)).powi(2)).sum::<f64>() / n;
    let log_loss = scored
        .iter()
        .map(|(p, b)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if *b { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / n;
    let mut sorted = scored.clone();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bins = RELIABILITY_BINS.min(sorted.len());
    let mut reliability = Vec::with_capacity(bins);
    for b in 0..bins {
        let (lo, hi) = (b * sorted.len() / bins, (b + 1) * sorted.len() / bins);
        let part = &sorted[lo..hi];
        if part.is_empty() {
            continue;
        }
        let c = part.len() as f64;
        reliability.push(ReliabilityBin {
            lo: part[0].0,
            hi: part[part.len() - 1].0,
            mean_predicted: part.iter().map(|s| s.0).sum::<f64>() / c,
            observed_rate: part.iter().filter(|s| s.1).count() as f64 / c,
            count: part.len(),
        });
    }
    Calibration {
        train_rows: train.len(),
        test_rows: test.len(),
        split_ts: test.first().map_or(0, |r| r.ts),
        test_positives: positives,
        base_rate: positives as f64 / n,
        brier,
        brier_reference,
        log_loss,
        auc: roc_auc(&scored),
        reliability,
    }
}

fn one_class(rows: &[LabelledChange]) -> bool {
    let pos = rows.iter().filter(|r| r.bad).count();
    pos == 0 || pos == rows.len()
}

impl ChangeRiskModel {
    /// Fits with the default options: see [`ChangeRiskModel::fit_with`].
    ///
    /// # Errors
    /// [`RiskError::OneClass`] when `history` has no bad or no good change (or is empty);
    /// [`RiskError::Fit`] when the solver fails.
    pub fn fit(history: &[LabelledChange]) -> Result<Self, RiskError> {
        Self::fit_with(history, FitOptions::default())
    }

    /// Fits a model on `history`. Rows are ordered by time; a model fitted on the first
    /// `1 - holdout_fraction` of them is scored on the rest for the [`Calibration`]
    /// report, then the shipped coefficients are refitted on all rows (so they use every
    /// bad change, of which there are few; the report describes the method, measured on
    /// data the split model never saw). The fit is deterministic.
    ///
    /// # Errors
    /// [`RiskError::OneClass`] when `history` has no bad or no good change (or is empty);
    /// [`RiskError::Fit`] when the solver fails.
    pub fn fit_with(history: &[LabelledChange], opts: FitOptions) -> Result<Self, RiskError> {
        let positives = history.iter().filter(|r| r.bad).count();
        if history.is_empty() || one_class(history) {
            return Err(RiskError::OneClass { rows: history.len(), positives });
        }
        let mut rows = history.to_vec();
        rows.sort_by_key(|r| r.ts);

        let n_train = ((rows.len() as f64) * (1.0 - opts.holdout_fraction.clamp(0.0, 1.0))).ceil() as usize;
        let (train, test) = rows.split_at(n_train.min(rows.len()));
        let calibration = if test.is_empty() || one_class(train) {
            tracing::warn!(train = train.len(), test = test.len(), "change-risk held-out split cannot be measured");
            None
        } else {
            let split = fit_rows(train, opts.alpha)?;
            Some(calibration(&split, train, test))
        };

        let full = fit_rows(&rows, opts.alpha)?;
        let count = |kind: ChangeKind, bad: bool| rows.iter().filter(|r| r.kind == kind && (!bad || r.bad)).count();
        let summary = TrainingSummary {
            dataset: None,
            rows: rows.len(),
            positives,
            deploys: count(ChangeKind::Deploy, false),
            deploy_positives: count(ChangeKind::Deploy, true),
            configs: count(ChangeKind::Config, false),
            config_positives: count(ChangeKind::Config, true),
            constant_features: FEATURE_NAMES.iter().zip(&full.constant).filter(|(_, c)| **c).map(|(n, _)| n.to_string()).collect(),
        };
        Ok(Self {
            format: MODEL_FORMAT,
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            means: full.means,
            stds: full.stds,
            coefficients: full.coefficients,
            intercept: full.intercept,
            alpha: opts.alpha,
            ranges: (0..FEATURE_NAMES.len())
                .map(|j| {
                    let col = rows.iter().map(|r| r.features.values()[j]);
                    [col.clone().fold(f64::INFINITY, f64::min), col.fold(f64::NEG_INFINITY, f64::max)]
                })
                .collect(),
            summary,
            calibration,
        })
    }

    /// Reads a dataset directory (`events.jsonl`; `failures.csv` and `resources.json`
    /// when present; the name from `dataset.json` when present — metrics are not read),
    /// labels its history with [`label_history`] and fits with [`ChangeRiskModel::fit`].
    ///
    /// # Errors
    /// [`RiskError::Io`] for an unreadable file (including a missing `events.jsonl`),
    /// [`RiskError::Parse`] naming the file and line of bad input, and the errors of
    /// [`ChangeRiskModel::fit`].
    pub fn fit_dataset(dir: &Path) -> Result<Self, RiskError> {
        let history = read_history(dir)?;
        let mut model = Self::fit(&history.changes)?;
        model.summary.dataset = Some(history.name);
        Ok(model)
    }

    /// Parses a model file and checks that it holds together.
    ///
    /// # Errors
    /// [`RiskError::Model`] for invalid JSON, another format version, other feature names,
    /// vectors of the wrong length, or non-finite or non-positive standard deviations.
    pub fn from_json(text: &str) -> Result<Self, RiskError> {
        let m: Self = serde_json::from_str(text).map_err(|e| RiskError::Model(format!("line {}: {e}", e.line())))?;
        if m.format != MODEL_FORMAT {
            return Err(RiskError::Model(format!("format {} (this build reads format {MODEL_FORMAT})", m.format)));
        }
        if m.feature_names.iter().map(String::as_str).ne(FEATURE_NAMES) {
            return Err(RiskError::Model(format!("features [{}], expected [{}]", m.feature_names.join(", "), FEATURE_NAMES.join(", "))));
        }
        let k = FEATURE_NAMES.len();
        for (name, v) in [("means", &m.means), ("stds", &m.stds), ("coefficients", &m.coefficients)] {
            if v.len() != k {
                return Err(RiskError::Model(format!("`{name}` has {} values, expected {k}", v.len())));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(RiskError::Model(format!("`{name}` holds a non-finite value")));
            }
        }
        if m.stds.iter().any(|s| *s <= 0.0) {
            return Err(RiskError::Model("`stds` holds a value ≤ 0".into()));
        }
        if !m.intercept.is_finite() {
            return Err(RiskError::Model("`intercept` is not finite".into()));
        }
        Ok(m)
    }

    /// The model shipped in `models/change-risk.json`, fitted on `datasets/fleet-train`.
    pub fn embedded_default() -> Self {
        Self::from_json(EMBEDDED_MODEL).expect("models/change-risk.json is valid: the test embedded_model_matches_a_refit checks it")
    }

    /// The probability that a change with features `f` goes bad, and why.
    pub fn score(&self, f: &ChangeFeatures) -> RiskScore {
        let values = f.values();
        let mut z = self.intercept;
        let mut factors = Vec::with_capacity(values.len());
        for (j, v) in values.iter().enumerate() {
            let (mean, std, coef) = (
                self.means.get(j).copied().unwrap_or(0.0),
                self.stds.get(j).copied().unwrap_or(1.0),
                self.coefficients.get(j).copied().unwrap_or(0.0),
            );
            let clamped = match self.ranges.get(j) {
                Some([lo, hi]) if lo <= hi => v.clamp(*lo, *hi),
                _ => *v,
            };
            let contribution = coef * standardise(clamped, mean, std);
            z += contribution;
            factors.push(Factor { name: FEATURE_NAMES[j].to_string(), value: *v, contribution });
        }
        factors.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        RiskScore { score: sigmoid(z), factors }
    }
}

// ---------------------------------------------------------------------------------------
// Reading history
// ---------------------------------------------------------------------------------------

/// A dataset's labelled history.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The dataset's name (`dataset.json`, else the directory name).
    pub name: String,
    /// Its labelled changes, in time order.
    pub changes: Vec<LabelledChange>,
}

/// Reads and labels a dataset's history (see [`ChangeRiskModel::fit_dataset`]).
///
/// # Errors
/// [`RiskError::Io`] for an unreadable file, [`RiskError::Parse`] naming the file and line.
pub fn read_history(dir: &Path) -> Result<History, RiskError> {
    let read = |path: &Path| std::fs::read_to_string(path).map_err(|source| RiskError::Io { path: path.to_path_buf(), source });

    let events_path = dir.join("events.jsonl");
    let text = read(&events_path)?;
    let mut events = parse_events_jsonl(&text, &events_path.display().to_string()).map_err(|e| RiskError::Parse {
        path: events_path.clone(),
        line: e.line,
        reason: e.reason,
    })?;
    events.sort_by_key(|e| e.ts);

    let failures_path = dir.join("failures.csv");
    let failures = if failures_path.exists() { parse_failures(&read(&failures_path)?, &failures_path)? } else { Vec::new() };

    let resources_path = dir.join("resources.json");
    let resources: Vec<Resource> = if resources_path.exists() {
        serde_json::from_str(&read(&resources_path)?).map_err(|e| RiskError::Parse {
            path: resources_path.clone(),
            line: e.line(),
            reason: e.to_string(),
        })?
    } else {
        Vec::new()
    };

    let meta_path = dir.join("dataset.json");
    let mut name = None;
    if meta_path.exists() {
        let v: Value = serde_json::from_str(&read(&meta_path)?).map_err(|e| RiskError::Parse {
            path: meta_path.clone(),
            line: e.line(),
            reason: e.to_string(),
        })?;
        name = v.get("name").and_then(Value::as_str).map(str::to_string);
    }
    let name = name.unwrap_or_else(|| dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()));

    let graph = ResourceGraph::from_resources(&resources);
    Ok(History { name, changes: label_history(&events, &failures, &graph) })
}

/// `failures.csv`: header with `host`, `timestamp`, `kind` (extra columns ignored).
fn parse_failures(text: &str, path: &Path) -> Result<Vec<Failure>, RiskError> {
    let err = |line: usize, reason: String| RiskError::Parse { path: path.to_path_buf(), line, reason };
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else { return Ok(Vec::new()) };
    let cols: Vec<&str> = header.split(',').map(|c| c.trim().trim_matches('"')).collect();
    let col = |name: &str| {
        cols.iter().position(|c| *c == name).ok_or_else(|| err(1, format!("missing column `{name}` (found: {})", cols.join(", "))))
    };
    let (h, t, k) = (col("host")?, col("timestamp")?, col("kind")?);
    let mut out = Vec::new();
    for (i, raw) in lines {
        if raw.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.split(',').map(|c| c.trim().trim_matches('"')).collect();
        let get = |j: usize, name: &str| fields.get(j).copied().ok_or_else(|| err(i + 1, format!("missing `{name}` value")));
        let host = get(h, "host")?;
        let ts = get(t, "timestamp")?;
        let timestamp: i64 = ts.parse().map_err(|_| err(i + 1, format!("`timestamp` must be an integer (ms since epoch), got {ts:?}")))?;
        out.push(Failure { host: HostId::new(host), timestamp, kind: get(k, "kind")?.to_string() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn semver_bumps() {
        let b = |a: &str, c: &str| version_bump_of(Some(&json!(a)), Some(&json!(c)));
        assert_eq!(b("1.4.2", "1.4.2"), 0);
        assert_eq!(b("1.4.2", "1.4.3"), 1);
        assert_eq!(b("1.4.2", "1.5.0"), 2);
        assert_eq!(b("v1.4.2", "2.0.0"), 3);
        assert_eq!(b("2.0.0", "1.9.9"), 3);
        assert_eq!(b("1.4.2-rc.1", "1.4.2"), 1);
        assert_eq!(b("latest", "abc123"), 3);
        assert_eq!(version_bump_of(Some(&json!(14.2)), Some(&json!(14.3))), 2);
        assert_eq!(version_bump_of(None, Some(&json!("1.0.0"))), 3);
        assert_eq!(version_bump_of(None, None), 0);
    }

    #[test]
    fn magnitudes() {
        let m = |a: Value, b: Value| numeric_magnitude(&a, &b);
        assert!((m(json!(16), json!(64)).unwrap() - 4f64.ln()).abs() < 1e-12);
        assert!((m(json!(64), json!(16)).unwrap() - 4f64.ln()).abs() < 1e-12);
        assert_eq!(m(json!(0), json!(5)), Some(MAGNITUDE_CAP));
        assert_eq!(m(json!(1), json!(1_000_000)), Some(MAGNITUDE_CAP));
        assert_eq!(m(json!("a"), json!(5)), None);
        assert_eq!(m(json!(3), json!(3)), Some(0.0));
    }

    #[test]
    fn auc_counts_ties_half() {
        assert_eq!(roc_auc(&[(0.1, false), (0.9, true)]), Some(1.0));
        assert_eq!(roc_auc(&[(0.5, false), (0.5, true)]), Some(0.5));
        assert_eq!(roc_auc(&[(0.9, false), (0.1, true)]), Some(0.0));
        assert_eq!(roc_auc(&[(0.9, false)]), None);
    }

    #[test]
    fn failures_csv_errors_name_the_line() {
        let p = Path::new("f/failures.csv");
        let ok = parse_failures("host,timestamp,kind,extra\nh1,5,bad_deploy,x\n\n", p).unwrap();
        assert_eq!(ok, vec![Failure { host: HostId::new("h1"), timestamp: 5, kind: "bad_deploy".into() }]);
        let e = parse_failures("host,timestamp,kind\nh1,5,oom\nh2,soon,oom\n", p).unwrap_err();
        assert_eq!(e.to_string(), "f/failures.csv line 3: `timestamp` must be an integer (ms since epoch), got \"soon\"");
        let e = parse_failures("host,kind\n", p).unwrap_err();
        assert_eq!(e.to_string(), "f/failures.csv line 1: missing column `timestamp` (found: host, kind)");
    }
}
