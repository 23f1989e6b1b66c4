//! harbinger-model: from host metrics and change history to calibrated, explained
//! failure risk.
//!
//! # Layout
//! - [`features`]: the incremental feature state of a host (one code path for batch and
//!   live), and the fleet signal.
//! - [`runner`]: drives every host of a dataset on a virtual clock, from a dataset in memory
//!   or fed as the metrics file is read; [`survey`]: what training needs to know of the
//!   samples first (span, step, metric ranges, seasons), from memory or one pass over the file.
//! - [`learn`]: the logistic model and the forest (fitted with linfa), isotonic
//!   calibration, PR-AUC; [`boost`]: histogram gradient-boosted trees.
//! - [`model`]: the artifact (`model.json`), risk policy and hysteresis.
//! - [`train`]: the batch training job ([`train::train_stream`] for fleets larger than memory); [`eval`]: the evaluation job and the contract's
//!   scoring rule; [`card`]: the model card.
//! - [`threshold`]: the host bootstrap the alert-threshold choice is checked with.
//! - [`step`]: the one risk step (risk and alert state at a tick) that live scoring, `eval`,
//!   replay and the threshold choice share.
//! - [`live`]: the live scorer behind `serve` (implements `harbinger_core::RiskScorer`).
//! - [`rules`]: the Prometheus-style alerting-rules baseline the model is compared with.
//!
//! Nothing here reads or writes model files: `harbinger-registry` loads and saves
//! artifacts and keeps the registry.
//!
//! Start with [`train::train`] and [`eval::evaluate`].

pub mod boost;
pub mod card;
pub mod eval;
pub mod features;
pub mod learn;
pub mod live;
pub mod model;
pub mod rules;
pub mod runner;
mod spill;
pub mod step;
pub mod survey;
pub mod threshold;
pub mod train;

pub use eval::{Alert, EvalOptions, EvalOutput, EvalTick, Summary, evaluate, evaluate_ticks, summarize, write_output};
pub use live::{LiveScorer, ModelSource};
pub use model::{EMBEDDED_DEFAULT, Model, ModelError, RiskPolicy};
pub use rules::{RuleSet, RulesError, RulesOptions, RulesOutput, evaluate_rules};
pub use step::{Observation, Step, advance, risk_step};
pub use survey::Survey;
pub use train::{Blocks, LearnerChoice, Mitigation, OpenStream, Rows, TrainError, TrainOptions, Trained, train, train_stream};
