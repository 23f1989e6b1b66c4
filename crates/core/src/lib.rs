//! harbinger-core: the domain types and the traits every other crate speaks.
//!
//! No I/O, no async runtime. Everything here is a value or a trait.
//!
//! # Layout
//! - [`ids`]: `HostId`, `ResourceId`, `ShadowId`, `DeploymentId`, `MetricName`, `SeriesKey` and
//!   the millisecond timestamp type.
//! - [`sample`]: columnar batches of samples (`SeriesSamples`, `SampleBatch`) and append reports.
//! - [`event`]: deployment and change events (`events.jsonl`) with validation.
//! - [`inventory`]: hosts, resources (with dependency-graph validation) and failures.
//! - [`risk`]: `HostRisk` and the `RiskScorer` trait servers use to ask for scores.
//! - [`shadow`]: shadows (passive copies of resources on other hosts), their lifecycle and
//!   causes.
//! - [`journal`]: the action journal the engine writes before and after every actuator call.
//! - [`clock`]: the `Clock` trait; decision logic never reads the wall clock itself.
//! - [`time`]: timestamps as text (the one RFC 3339 parser and formatter).
//! - [`store`]: one storage trait per kind of data (`MetricStore`, `EventStore`,
//!   `InventoryStore`, `FailureStore`, `ShadowStore`) and their error type.
//!
//! Start with [`store`]: it is the contract the data plane is built around.

pub mod clock;
pub mod event;
pub mod ids;
pub mod inventory;
pub mod journal;
pub mod risk;
pub mod sample;
pub mod shadow;
pub mod store;
pub mod time;

pub use clock::{Clock, ManualClock, ScaledClock, SystemClock};
pub use event::{Event, EventError, EventKind};
pub use ids::{DeploymentId, HostId, MetricName, ResourceId, SeriesKey, ShadowId, TimestampMs};
pub use inventory::{Failure, Host, InventoryError, Resource};
pub use journal::{Begun, Finish, Intent, JournalEntry, JournalStatus};
pub use risk::{
    Factor, HostExplanation, HostRisk, HostState, HostTransition, ModelInfo, RiskPoint, RiskScorer, ScoreError, TransitionKind,
};
pub use sample::{AppendReport, RejectReason, SampleBatch, SeriesSamples};
pub use store::{EventStore, FailureStore, InventoryStore, MetricStore, ShadowStore, StoreError, StoreStats, Stores};
