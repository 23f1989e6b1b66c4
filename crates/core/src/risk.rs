//! Risk: what the scoring side of harbinger answers, as plain values.
//!
//! [`HostRisk`] is one host's assessment at one moment; [`RiskScorer`] is the
//! object-safe interface the servers (HTTP, gRPC) and the CLI use to ask for it and to
//! feed the live pipeline. The implementation lives in `harbinger-model`; servers only
//! see this trait, so tests can substitute their own.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Event, HostId, SampleBatch, TimestampMs};

/// One reason behind a score: a named feature, its value and how much it pushed the
/// failure probability up (positive) or down (negative), in log-odds units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// Feature name, e.g. `mem_util.tte_h` or `deploy.since_h`.
    pub name: String,
    /// The value seen for this host at this moment; NaN when the input was missing (only
    /// in a full explanation, never among the top factors).
    pub value: f64,
    /// Contribution to the failure log-odds; the list is sorted by |contribution|.
    pub contribution: f64,
}

/// A host's risk at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRisk {
    /// The host.
    pub host: HostId,
    /// Data time the assessment refers to (ms since epoch).
    pub at: TimestampMs,
    /// Combined risk in [0, 1]: failure probability weighted by criticality, plus anomaly.
    pub risk: f64,
    /// Calibrated probability that the host fails within `horizon_ms` after `at`.
    pub failure_probability: f64,
    /// Horizon of `failure_probability`, in milliseconds.
    pub horizon_ms: i64,
    /// Current anomaly score in [0, 1] (streaming detectors, max over metrics).
    pub anomaly: f64,
    /// Confidence in [0, 1]: the share of the model's inputs that were present and warm.
    pub confidence: f64,
    /// Highest criticality (0..=3) of the resources placed on the host.
    pub criticality: u8,
    /// Whether the host is in the alerting state (hysteresis applied).
    pub alerting: bool,
    /// Top contributing factors, largest |contribution| first.
    pub factors: Vec<Factor>,
    /// Version of the model that produced the score.
    pub model_version: Arc<str>,
}

/// How a host's alert state changed at an engine tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// The host entered the alerting state (risk held at or above the alert threshold).
    Entered,
    /// The host left it: risk stayed below the clear threshold long enough, or the host
    /// fell silent.
    Cleared,
}

/// A host's alert-state transition, emitted as a value by an engine tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostTransition {
    /// The host.
    pub host: HostId,
    /// The tick's time (the engine's clock).
    pub at: TimestampMs,
    /// Entered or cleared.
    pub kind: TransitionKind,
    /// Risk at that tick (0 for a host that fell silent).
    pub risk: f64,
    /// Failure probability at that tick.
    pub failure_probability: f64,
}

/// A host's risk and alert state as the last engine tick left them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    /// The host.
    pub host: HostId,
    /// Risk at the last tick (0 when silent or never ticked).
    pub risk: f64,
    /// Failure probability at the last tick (0 when silent or never ticked).
    pub failure_probability: f64,
    /// How soon the failure is expected, in [0, 1] (1 = within the model's short horizon,
    /// and when unknown).
    #[serde(default = "one")]
    pub imminence: f64,
    /// In the alerting state.
    pub alerting: bool,
    /// When it last left the alerting state.
    pub cleared_at: Option<TimestampMs>,
}

/// One point of a host's recent risk history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskPoint {
    /// Data time.
    pub at: TimestampMs,
    /// Combined risk.
    pub risk: f64,
    /// Failure probability.
    pub failure_probability: f64,
    /// Anomaly score.
    pub anomaly: f64,
}

/// The full explanation of one host's score: every factor plus recent history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostExplanation {
    /// The current score (its `factors` are the top few).
    pub risk: HostRisk,
    /// Every feature of the model with its value and contribution, largest |contribution| first.
    pub all_factors: Vec<Factor>,
    /// Recent history, oldest first.
    pub history: Vec<RiskPoint>,
}

/// Identity of the loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model version string (unique per trained artifact).
    pub version: Arc<str>,
    /// Failure horizon the model predicts, in milliseconds.
    pub horizon_ms: i64,
    /// The learner kept at training (`logistic` or `random_forest`).
    pub learner: String,
    /// harbinger version that trained it.
    pub harbinger_version: String,
}

/// Why a score could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The host is neither in the inventory nor has it sent any data.
    #[error("unknown host {}", crate::ids::echo(.0.as_str()))]
    UnknownHost(HostId),
    /// The request itself is malformed (empty host id, too many hosts, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Loading or using the model failed.
    #[error("model: {0}")]
    Model(String),
}

/// The scoring side of harbinger, as seen by servers and clients.
///
/// Implementations are cheap to call concurrently; `reload` swaps the model without
/// failing calls that are in flight.
pub trait RiskScorer: Send + Sync + std::fmt::Debug {
    /// Feed accepted samples to the live pipeline (called after the store accepted them).
    fn observe_samples(&self, batch: &SampleBatch);
    /// Feed accepted events (deploys, config changes, maintenance).
    fn observe_events(&self, events: &[Event]);
    /// Feeds the input of several coming ticks at once, for a caller that knows it ahead
    /// (replay): `ticks` ascending; `events[i]` is what
    /// [`observe_events`](Self::observe_events) would have been given just before the tick
    /// at `ticks[i]`, and `samples` holds the samples of all the ticks: each sample is one
    /// [`observe_samples`](Self::observe_samples) would have been given (after that tick's
    /// events) just before the first of `ticks` at or after its timestamp, a tick's samples
    /// in the order of `samples` (entries in order, then samples in order; a series may
    /// have several entries). Samples after the last tick are fed after it. The scorer may
    /// then work host by host across the ticks (far fewer cache misses than tick by tick);
    /// each [`tick`](Self::tick) at one of `ticks` must then give what it would have given
    /// fed tick by tick. Reads between those ticks may see later input. The next ticks'
    /// input may be fed before the last of these ticks were ticked (replay prepares one
    /// block of ticks while the block before it ticks); a call for ticks already prepared
    /// replaces them. Returns `false` (having done nothing) when the scorer does not do
    /// this: feed it tick by tick.
    fn prepare_ticks(&self, ticks: &[TimestampMs], events: &[Vec<Event>], samples: &SampleBatch) -> bool {
        let _ = (ticks, events, samples);
        false
    }
    /// Advances every host's risk and alert state to `now` (the engine's clock) and returns
    /// the transitions. The only call that moves alert state: reads never do.
    fn tick(&self, now: TimestampMs) -> Vec<HostTransition>;
    /// Every known host's risk and alert state as the last [`tick`](Self::tick) left them.
    fn host_states(&self) -> Vec<HostState>;
    /// Score the given hosts now. Unknown hosts give [`ScoreError::UnknownHost`]. Pure: the
    /// alert state is the one the last tick left.
    fn score_hosts(&self, hosts: &[HostId]) -> Result<Vec<HostRisk>, ScoreError>;
    /// Score every known host.
    fn score_all(&self) -> Vec<HostRisk>;
    /// The full factor breakdown and recent history of one host.
    fn explain_host(&self, host: &HostId) -> Result<HostExplanation, ScoreError>;
    /// The loaded model.
    fn model_info(&self) -> ModelInfo;
    /// Load the model in `dir` (or the configured model directory when `None`) and swap it in.
    fn reload(&self, dir: Option<&std::path::Path>) -> Result<ModelInfo, ScoreError>;
}

fn one() -> f64 {
    1.0
}
