//! The model artifact and risk: what `train` writes, `serve` and `eval` load, and how a
//! feature row becomes a calibrated probability, a risk and an alert.
//!
//! Pure: an artifact is parsed and checked from bytes ([`Model::parse_bytes`]) and written
//! as JSON ([`Model::to_json`]); the files (and the registry) are `harbinger-registry`'s.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::boost::Boosted;
use crate::features::FeatureSchema;
use crate::learn::{Calibration, Forest, Logistic, Prep, Tree};

/// Identifies the file type.
pub const FORMAT: &str = "harbinger-failure-model";
/// Bumped whenever the artifact layout or feature semantics change.
pub const FORMAT_VERSION: u32 = 4;
/// This harbinger's version.
pub const HARBINGER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// An artifact cannot be used: what is wrong, naming where it came from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The file is not a valid model artifact.
    #[error("model file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the position where serde found it.
        reason: String,
    },
    /// The artifact was written by an incompatible version.
    #[error(
        "model file {path} has format version {found} (written by harbinger {found_by}); this is harbinger {ours} which reads format version {FORMAT_VERSION}: retrain it with `harbinger train`"
    )]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u32,
        /// The harbinger version that wrote it.
        found_by: String,
        /// Our version.
        ours: &'static str,
    },
}

/// The fitted learner kept at training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Learner {
    /// Logistic regression.
    Logistic(Logistic),
    /// Forest of decision trees.
    RandomForest(Forest),
    /// Gradient-boosted trees.
    BoostedTrees(Boosted),
}

impl Learner {
    /// `logistic` or `random_forest`.
    pub fn name(&self) -> &'static str {
        match self {
            Learner::Logistic(_) => "logistic",
            Learner::RandomForest(_) => "random_forest",
            Learner::BoostedTrees(_) => "boosted_trees",
        }
    }

    /// Raw (uncalibrated) score of an imputed row, with contributions if asked.
    pub fn raw(&self, prep: &Prep, row: &[f64], contrib: Option<&mut [f64]>) -> f64 {
        match self {
            Learner::Logistic(m) => m.score(prep, row, contrib),
            Learner::RandomForest(f) => f.score(row, contrib),
            Learner::BoostedTrees(b) => b.score(row, contrib),
        }
    }

    /// Shape checks against a schema of `k` features (for loading untrusted files).
    fn check(&self, k: usize) -> Result<(), String> {
        match self {
            Learner::Logistic(l) if l.weights.len() != k => {
                Err(format!("logistic has {} weights, the schema {k} features", l.weights.len()))
            }
            Learner::Logistic(_) => Ok(()),
            Learner::RandomForest(f) => check_trees(&f.trees, k),
            Learner::BoostedTrees(b) if b.trees.is_empty() || !b.base.is_finite() => {
                Err("boosted model has no trees or a non-finite base".into())
            }
            Learner::BoostedTrees(b) => check_trees(&b.trees, k),
        }
    }
}

/// How probability, anomaly and criticality combine into risk, and when to alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskPolicy {
    /// Risk at or above which a host enters the alerting state.
    pub alert_threshold: f64,
    /// Risk below which an alerting host counts as clear.
    pub clear_threshold: f64,
    /// How long risk must stay below `clear_threshold` before the alert ends (ms).
    pub clear_after_ms: i64,
    /// How long risk must stay at or above `alert_threshold` before the host enters the
    /// alerting state (ms; 0 = at once). Like a Prometheus rule's `for:`, it lets
    /// short-lived look-alikes (a deploy rolled back, a burst that stops) resolve first.
    #[serde(default)]
    pub enter_after_ms: i64,
    /// Weight of the anomaly score (kept small: anomaly alone is not a forecast).
    pub anomaly_weight: f64,
    /// Exponent on the survival probability `1 − p` by the host's highest resource
    /// criticality 0..=3: 1 leaves the probability as it is, larger raises it, so critical
    /// hosts come first without ever hiding a likely failure on an unimportant one.
    pub criticality_exponent: [f64; 4],
    /// Below this confidence (share of warm inputs) a host does not enter the alerting state.
    pub min_confidence: f64,
}

impl Default for RiskPolicy {
    fn default() -> Self {
        RiskPolicy {
            alert_threshold: 0.5,
            clear_threshold: 0.3,
            clear_after_ms: 30 * 60_000,
            enter_after_ms: 0,
            anomaly_weight: 0.1,
            criticality_exponent: [1.0, 1.05, 1.1, 1.2],
            min_confidence: 0.5,
        }
    }
}

impl RiskPolicy {
    /// This policy with the alert and clear thresholds replaced where given; the clear
    /// threshold never exceeds the alert threshold.
    pub fn with_thresholds(&self, alert: Option<f64>, clear: Option<f64>) -> Self {
        let mut p = self.clone();
        if let Some(a) = alert {
            p.alert_threshold = a;
        }
        if let Some(c) = clear {
            p.clear_threshold = c;
        }
        p.clear_threshold = p.clear_threshold.min(p.alert_threshold);
        p
    }

    /// Risk in [0, 1] from failure probability, anomaly and criticality.
    pub fn risk(&self, p: f64, anomaly: f64, criticality: u8) -> f64 {
        let w = self.criticality_exponent[usize::from(criticality.min(3))];
        let a = if anomaly.is_finite() { anomaly.clamp(0.0, 1.0) } else { 0.0 };
        let p = if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 };
        1.0 - (1.0 - p).powf(w) * (1.0 - self.anomaly_weight * a)
    }
}

/// Alerting state of one host (hysteresis).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    /// In the alerting state.
    pub alerting: bool,
    /// Since when risk has been below the clear threshold while alerting.
    pub below_since: Option<i64>,
    /// Since when risk has been at or above the alert threshold while not alerting.
    #[serde(default)]
    pub above_since: Option<i64>,
}

impl AlertState {
    /// Takes one risk observation; returns true when the host ENTERS the alerting state:
    /// risk at or above `p.alert_threshold` with `confidence >= p.min_confidence`, held
    /// for `p.enter_after_ms`.
    pub fn step(&mut self, now: i64, risk: f64, confidence: f64, p: &RiskPolicy) -> bool {
        if self.alerting {
            if risk < p.clear_threshold {
                let since = *self.below_since.get_or_insert(now);
                if now - since >= p.clear_after_ms {
                    *self = AlertState::default();
                }
            } else {
                self.below_since = None;
            }
            false
        } else if risk >= p.alert_threshold && confidence >= p.min_confidence {
            let since = *self.above_since.get_or_insert(now);
            if now - since >= p.enter_after_ms {
                *self = AlertState { alerting: true, below_since: None, above_since: None };
                true
            } else {
                false
            }
        } else {
            self.above_since = None;
            false
        }
    }
}

/// Figures of one learner on the held-back data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerFigures {
    /// `logistic` or `random_forest`.
    pub learner: String,
    /// Average precision (PR-AUC) of the raw score on held-back rows.
    pub pr_auc: f64,
    /// Log loss of the calibrated probability on held-back rows.
    pub log_loss: f64,
    /// Fit time, seconds.
    pub fit_seconds: f64,
}

/// What the model card says: data, split, figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardFacts {
    /// Dataset name (dataset.json) or directory.
    pub dataset: String,
    /// Hosts in the dataset.
    pub hosts: usize,
    /// First and last sample time.
    pub span_ms: (i64, i64),
    /// Training rows are before this time (labels included); held-back rows after.
    pub split_ms: i64,
    /// Failures by kind in the dataset.
    pub failures_by_kind: Vec<(String, usize)>,
    /// Training rows (after negative sampling) and positives among them.
    pub train_rows: usize,
    /// Positives among training rows.
    pub train_positives: usize,
    /// Held-back rows.
    pub holdout_rows: usize,
    /// Positives among held-back rows.
    pub holdout_positives: usize,
    /// Rows left out because a mitigation cut the outcome short.
    pub censored_rows: usize,
    /// Both learners on held-back data; the kept one first.
    pub learners: Vec<LearnerFigures>,
    /// Event-level figures on the held-back period at the chosen threshold.
    pub holdout_summary: serde_json::Value,
    /// Most important features (name, importance).
    pub top_features: Vec<(String, f64)>,
    /// Seconds: feature extraction, fitting, whole job.
    pub seconds: (f64, f64, f64),
    /// The short-horizon companion's figures on held-back data, when there is one.
    #[serde(default)]
    pub imminence: Option<ImminenceFacts>,
    /// Failures in the training and the held-back part (absent in older models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_failures: Option<(usize, usize)>,
    /// How the alert threshold was chosen: the rule and its settings (absent in older
    /// models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_rule: Option<String>,
    /// Under a split by host: the hosts held back over the whole period (`None`: a split
    /// by time at `split_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_back_hosts: Option<usize>,
}

fn logistic_name() -> String {
    "logistic".into()
}

/// Held-back figures of the imminence model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImminenceFacts {
    /// Its horizon (ms).
    pub horizon_ms: i64,
    /// Its learner (`logistic` or `boosted_trees`).
    #[serde(default = "logistic_name")]
    pub learner: String,
    /// PR-AUC of the short-horizon learner on its own labels.
    pub pr_auc_short: f64,
    /// PR-AUC of the stacked score on the main horizon's labels.
    pub pr_auc_stacked: f64,
}

/// A further learner for the model's own horizon, stacked with the main one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Companion {
    /// The learner.
    pub learner: Learner,
    /// Its raw score to P(failure within the model's horizon).
    pub calibration: Calibration,
}

/// The stack: a model of failure within a shorter horizon (default 2 h) and any further
/// learners for the main horizon, combined with the main learner by a logistic model
/// fitted on the held-back rows. Fast precursors (overheating, a bad deploy) fill only a
/// small part of a 6 h label window, and a learner for the whole window gives them little
/// weight; learners of different kinds err on different hosts.
///
/// The stacking logistic is fitted on held-back outcomes, so its output is the
/// probability itself: no isotonic step after it, which would pool the highest scores
/// into one level and leave the alert threshold nothing to choose between there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imminence {
    /// The shorter horizon (ms).
    pub horizon_ms: i64,
    /// Learner on the same features, for failure within `horizon_ms`.
    pub learner: Learner,
    /// Its raw score to P(failure within `horizon_ms`).
    pub calibration: Calibration,
    /// Further learners for the main horizon.
    #[serde(default)]
    pub companions: Vec<Companion>,
    /// Scaling of the stack's inputs, the log-odds of the calibrated probabilities in the
    /// order `[main, companions…, short]`.
    pub stack_prep: Prep,
    /// Stacking weights, same order.
    pub stack: Logistic,
}

impl Imminence {
    /// The combined probability from the members' calibrated probabilities, in stack
    /// order.
    pub fn combine(&self, probs: &[f64]) -> f64 {
        let z: Vec<f64> = probs.iter().map(|&p| Self::logit(p)).collect();
        self.stack.score(&self.stack_prep, &z, None).clamp(0.0, 1.0)
    }

    /// A stacking input: the log-odds of a calibrated probability, kept off ±∞.
    pub fn logit(p: f64) -> f64 {
        let p = if p.is_finite() { p.clamp(1e-4, 1.0 - 1e-4) } else { 0.5 };
        (p / (1.0 - p)).ln()
    }

    /// Width of the stack: the main learner, the companions and the short learner.
    pub fn width(&self) -> usize {
        self.companions.len() + 2
    }

    /// Weight of stack input `j` per standardised unit (for contributions).
    fn weight(&self, j: usize) -> f64 {
        self.stack.weights.get(j).copied().unwrap_or(0.0) / self.stack_prep.sd.get(j).copied().unwrap_or(1.0)
    }
}

/// A trained failure model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] at training.
    pub format_version: u32,
    /// harbinger version that trained it.
    pub harbinger_version: String,
    /// Unique version of this artifact.
    pub version: String,
    /// When it was trained (ms since epoch).
    pub trained_at_ms: i64,
    /// Failure horizon (ms).
    pub horizon_ms: i64,
    /// Inputs.
    pub schema: FeatureSchema,
    /// Imputation and scaling.
    pub prep: Prep,
    /// The learner.
    pub learner: Learner,
    /// Raw score to probability.
    pub calibration: Calibration,
    /// Companion for a shorter horizon, stacked with the main learner (absent in models
    /// trained without one).
    #[serde(default)]
    pub imminence: Option<Imminence>,
    /// Risk and alerting.
    pub policy: RiskPolicy,
    /// Model card facts.
    pub card: CardFacts,
    /// Feature names, computed once.
    #[serde(skip)]
    pub names: std::sync::OnceLock<Vec<String>>,
}

#[derive(Deserialize)]
struct Header {
    format: String,
    format_version: u32,
    #[serde(default)]
    harbinger_version: String,
}

/// One scored row.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Calibrated failure probability within the horizon.
    pub probability: f64,
    /// Anomaly score (the host's `host.anomaly_max` feature, 0 when absent).
    pub anomaly: f64,
    /// Share of the model's metrics present and warm.
    pub confidence: f64,
    /// Per-feature contributions to the raw score, if asked for.
    pub contributions: Option<Vec<f64>>,
    /// Calibrated probability of failure within the imminence model's shorter horizon
    /// (2 h by default), when the model has one.
    pub short_probability: Option<f64>,
}

impl Assessment {
    /// How soon the failure is expected, in [0.5, 1]: `(1 + r) / 2` with `r` the share of
    /// the horizon's failure probability that falls within the shorter horizon
    /// (`min(1, p_short / p)`). A failure expected within the short horizon weighs twice
    /// one expected only later; 1 when the model has no imminence learner or `p` is 0.
    pub fn imminence(&self) -> f64 {
        match self.short_probability {
            Some(ps) if self.probability > 0.0 && ps.is_finite() => 0.5 + 0.5 * (ps / self.probability).clamp(0.0, 1.0),
            _ => 1.0,
        }
    }
}

/// The text of the default model (`models/default/model.json`), built into the binary so
/// that `serve` has a model wherever it is started.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../models/default/model.json");

impl Model {
    /// The default model built into the binary ([`EMBEDDED_DEFAULT`]).
    ///
    /// # Errors
    /// Never for a binary that passed its tests; [`ModelError`] if the embedded text were
    /// not a model this version reads.
    pub fn embedded_default() -> Result<Self, ModelError> {
        Self::parse(PathBuf::from("<built in>/model.json"), EMBEDDED_DEFAULT)
    }

    /// [`Model::parse`] of bytes: text that is not UTF-8 is [`ModelError::Corrupt`].
    ///
    /// # Errors
    /// As [`Model::parse`].
    pub fn parse_bytes(path: PathBuf, bytes: &[u8]) -> Result<Self, ModelError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse(path, text),
            Err(e) => Err(ModelError::Corrupt { path, reason: format!("it is not UTF-8 text ({e})") }),
        }
    }

    /// Parses and checks the text of a `model.json`; `path` names it in errors. A file
    /// that parses is safe to score with: shapes and tree links are checked.
    ///
    /// # Errors
    /// [`ModelError::Corrupt`] or [`ModelError::Incompatible`] naming `path`.
    pub fn parse(path: PathBuf, text: &str) -> Result<Self, ModelError> {
        let header: Header = serde_json::from_str(text).map_err(|e| ModelError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        if header.format != FORMAT {
            return Err(ModelError::Corrupt { path, reason: format!("format is {:?}, expected {FORMAT:?}", header.format) });
        }
        if header.format_version != FORMAT_VERSION {
            return Err(ModelError::Incompatible {
                path,
                found: header.format_version,
                found_by: header.harbinger_version,
                ours: HARBINGER_VERSION,
            });
        }
        let m: Model = serde_json::from_str(text).map_err(|e| ModelError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        m.check().map_err(|reason| ModelError::Corrupt { path, reason })?;
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        self.schema.scales.validate()?;
        let k = self.schema.len();
        if self.prep.fill.len() != k || self.prep.mean.len() != k || self.prep.sd.len() != k {
            return Err(format!("imputation has {} columns, the schema {k}", self.prep.fill.len()));
        }
        self.learner.check(k)?;
        if self.calibration.x.is_empty() || self.calibration.x.len() != self.calibration.y.len() {
            return Err("calibration table is empty or uneven".into());
        }
        if let Some(im) = &self.imminence {
            im.learner.check(k).map_err(|e| format!("short-horizon model: {e}"))?;
            let w = im.width();
            if im.stack.weights.len() != w || im.stack_prep.mean.len() != w || im.stack_prep.sd.len() != w || im.stack_prep.fill.len() != w
            {
                return Err(format!("the stacking model does not have {w} inputs (main, {} companions, short)", im.companions.len()));
            }
            for (i, c) in im.companions.iter().enumerate() {
                c.learner.check(k).map_err(|e| format!("companion {i}: {e}"))?;
            }
            let tables =
                std::iter::once(("short-horizon", &im.calibration)).chain(im.companions.iter().map(|c| ("companion", &c.calibration)));
            for (name, c) in tables {
                if c.x.is_empty() || c.x.len() != c.y.len() {
                    return Err(format!("{name} calibration table is empty or uneven"));
                }
            }
        }
        let p = &self.policy;
        if !(p.clear_threshold <= p.alert_threshold && p.alert_threshold > 0.0 && p.alert_threshold < 1.0) {
            return Err(format!("thresholds alert {} clear {} are not 0 < clear <= alert < 1", p.alert_threshold, p.clear_threshold));
        }
        Ok(())
    }

    /// The artifact as `model.json` text (what [`Model::parse`] reads back, bit for bit).
    ///
    /// # Errors
    /// serde_json's, should a field ever fail to serialise.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }

    /// Feature names in vector order.
    pub fn feature_names(&self) -> &[String] {
        self.names.get_or_init(|| self.schema.names())
    }

    /// Scores a raw feature row (NaN = missing; imputed in place).
    pub fn assess(&self, row: &mut [f64], want_contributions: bool) -> Assessment {
        let cov = row[self.schema.coverage_index()];
        let confidence = if cov.is_finite() { cov.clamp(0.0, 1.0) } else { 0.0 };
        let anomaly_i = self.schema.anomaly_index();
        let anomaly = if row[anomaly_i].is_finite() { row[anomaly_i] } else { 0.0 };
        self.prep.impute(row);
        let mut contributions = want_contributions.then(|| vec![0.0; row.len()]);
        let raw = self.learner.raw(&self.prep, row, contributions.as_deref_mut());
        let p_main = self.calibration.apply(raw).clamp(0.0, 1.0);
        let mut short_probability = None;
        let probability = match &self.imminence {
            None => p_main,
            Some(im) => {
                let mut probs = Vec::with_capacity(im.width());
                probs.push(p_main);
                let mut part = contributions.as_ref().map(|c| vec![0.0; c.len()]);
                if let Some(c) = contributions.as_mut() {
                    let w = im.weight(0);
                    c.iter_mut().for_each(|v| *v *= w);
                }
                let members = im.companions.iter().map(|c| (&c.learner, &c.calibration)).chain([(&im.learner, &im.calibration)]);
                for (j, (l, cal)) in members.enumerate() {
                    probs.push(cal.apply(l.raw(&self.prep, row, part.as_deref_mut())));
                    if let (Some(c), Some(p)) = (contributions.as_mut(), part.as_ref()) {
                        let w = im.weight(j + 1);
                        for (a, b) in c.iter_mut().zip(p) {
                            *a += w * b;
                        }
                    }
                }
                // The imminence learner is the last member.
                short_probability = probs.last().copied();
                im.combine(&probs)
            }
        };
        Assessment { probability, anomaly, confidence, contributions, short_probability }
    }
}

/// Every tree non-empty, every split on a known feature with children after it, every
/// value finite.
fn check_trees(trees: &[Tree], k: usize) -> Result<(), String> {
    for (ti, t) in trees.iter().enumerate() {
        let n = t.nodes.len();
        if n == 0 {
            return Err(format!("tree {ti} is empty"));
        }
        for (i, nd) in t.nodes.iter().enumerate() {
            let leaf = nd.f == u32::MAX;
            if !leaf && ((nd.f as usize) >= k || nd.l as usize >= n || nd.r as usize >= n || nd.l as usize <= i || nd.r as usize <= i) {
                return Err(format!("tree {ti} node {i} points outside the tree or the features"));
            }
            if !nd.v.is_finite() || !nd.t.is_finite() {
                return Err(format!("tree {ti} node {i} holds a non-finite value"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imminence_is_the_share_of_the_probability_within_the_short_horizon() {
        let a = |p: f64, ps: Option<f64>| Assessment {
            probability: p,
            anomaly: 0.0,
            confidence: 1.0,
            contributions: None,
            short_probability: ps,
        };
        assert_eq!(a(0.8, None).imminence(), 1.0, "no imminence learner");
        assert_eq!(a(0.0, Some(0.3)).imminence(), 1.0, "nothing expected");
        assert_eq!(a(0.8, Some(0.8)).imminence(), 1.0, "all of it within the short horizon");
        assert_eq!(a(0.8, Some(0.9)).imminence(), 1.0, "capped");
        assert_eq!(a(0.8, Some(0.2)).imminence(), 0.625);
        assert_eq!(a(0.8, Some(0.0)).imminence(), 0.5, "only later within the horizon");
        assert_eq!(a(0.8, Some(f64::NAN)).imminence(), 1.0);
    }

    #[test]
    fn the_default_model_reports_its_short_horizon_probability() {
        let m = Model::embedded_default().expect("embedded model");
        let mut row = vec![f64::NAN; m.schema.len()];
        let a = m.assess(&mut row, false);
        assert!(a.short_probability.is_some_and(|p| (0.0..=1.0).contains(&p)), "{:?}", a.short_probability);
        assert!((0.5..=1.0).contains(&a.imminence()));
    }

    #[test]
    fn hysteresis_enters_once_and_clears_after_a_quiet_spell() {
        let p = RiskPolicy::default();
        let mut s = AlertState::default();
        assert!(!s.step(0, 0.4, 1.0, &p));
        assert!(s.step(60_000, 0.6, 1.0, &p), "enters");
        assert!(!s.step(120_000, 0.7, 1.0, &p), "no second entry while alerting");
        assert!(!s.step(180_000, 0.2, 1.0, &p));
        assert!(!s.step(240_000, 0.6, 1.0, &p), "a dip shorter than clear_after does not end it");
        assert!(s.alerting);
        assert!(!s.step(300_000, 0.1, 1.0, &p));
        assert!(!s.step(300_000 + p.clear_after_ms, 0.1, 1.0, &p));
        assert!(!s.alerting, "cleared after a quiet spell");
        assert!(!s.step(400_000 + p.clear_after_ms, 0.9, 0.2, &p), "not while inputs are cold");
        assert!(s.step(400_000 + p.clear_after_ms, 0.9, 1.0, &p), "enters again");
    }

    #[test]
    fn entry_waits_for_risk_held_for_enter_after() {
        let p = RiskPolicy { enter_after_ms: 10 * 60_000, ..RiskPolicy::default() };
        let mut s = AlertState::default();
        assert!(!s.step(0, 0.9, 1.0, &p), "not at once");
        assert!(!s.step(9 * 60_000, 0.9, 1.0, &p), "9 minutes are not enough");
        assert!(!s.step(10 * 60_000, 0.2, 1.0, &p), "a dip restarts the wait");
        assert!(!s.step(11 * 60_000, 0.9, 1.0, &p));
        assert!(!s.step(20 * 60_000, 0.9, 1.0, &p));
        assert!(s.step(21 * 60_000, 0.9, 1.0, &p), "held for 10 minutes: enters");
        assert!(s.alerting);
    }

    #[test]
    fn risk_grows_with_probability_criticality_and_anomaly() {
        let p = RiskPolicy::default();
        assert!(p.risk(0.6, 0.0, 3) > p.risk(0.6, 0.0, 0));
        // Criticality orders hosts; it never discounts a probable failure.
        for c in 0..=3 {
            assert!(p.risk(0.9, 0.0, c) >= 0.9 - 1e-12, "criticality {c}");
        }
        assert!(p.risk(0.6, 1.0, 0) > p.risk(0.6, 0.0, 0));
        assert!(p.risk(0.0, 1.0, 3) < p.alert_threshold, "anomaly alone does not alert");
    }

    /// README: Risk = 1 − (1 − p)^c · (1 − 0.1 · anomaly), c = 1, 1.05, 1.1, 1.2 by the
    /// highest criticality (0–3). Values computed by hand (Python floats).
    #[test]
    fn risk_is_the_readme_formula() {
        let p = RiskPolicy::default();
        assert_eq!((p.anomaly_weight, p.criticality_exponent), (0.1, [1.0, 1.05, 1.1, 1.2]));
        let close = |got: f64, want: f64, what: &str| assert!((got - want).abs() < 1e-12, "{what}: {got} != {want}");
        close(p.risk(0.5, 0.0, 0), 0.5, "p alone at criticality 0");
        close(p.risk(0.5, 0.0, 3), 0.564_724_718_351_937_9, "1 - 0.5^1.2");
        close(p.risk(0.2, 1.0, 1), 0.287_988_520_308_377_2, "1 - 0.8^1.05 * 0.9");
        close(p.risk(0.3, 0.3, 2), 0.344_791_416_413_643_97, "1 - 0.7^1.1 * 0.97");
        close(p.risk(0.0, 1.0, 2), 0.1, "anomaly alone: 1 - 0.9");
        close(p.risk(0.0, 0.5, 0), 0.05, "1 - 0.95");
        close(p.risk(1.0, 0.0, 0), 1.0, "a certain failure");
        close(p.risk(0.5, 0.0, 9), p.risk(0.5, 0.0, 3), "criticality above 3 counts as 3");
        // Out-of-range inputs are clamped; NaN counts as 0 (no evidence), never poisons risk.
        close(p.risk(1.7, -2.0, 0), 1.0, "p clamped to 1");
        close(p.risk(0.5, 4.0, 0), 1.0 - 0.5 * 0.9, "anomaly clamped to 1");
        close(p.risk(f64::NAN, 0.5, 2), 0.05, "NaN probability is 0: anomaly alone");
        close(p.risk(f64::NAN, f64::NAN, 2), 0.0, "NaN probability and anomaly");
        close(p.risk(0.5, f64::NAN, 0), 0.5, "NaN anomaly is 0");
        close(p.risk(f64::INFINITY, 0.0, 0), 0.0, "a non-finite probability is no evidence");
    }
}
