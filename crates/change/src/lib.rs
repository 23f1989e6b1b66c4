//! harbinger-change: change safety. A change is a template of the desired state of a
//! stack's resources; harbinger previews it (`whatif`), stages it and runs validation
//! tests on the staging copy, applies it with a snapshot first, and rolls it back —
//! predictively (staged validation failed: nothing live is touched), after a failure
//! (standard), or for chosen resources only (selective).
//!
//! # Where to start
//! - [`template`]: the change template (YAML or JSON) and its parser.
//! - [`engine::ChangeEngine`]: `whatif`, `apply`, `rollback` over real resources
//!   (`harbinger_actuate::resource`: files, Redis, commands).
//! - [`whatif::analyse`]: the pure analysis — update stack ([`diff`]), dependency graph
//!   ([`graph`]), change-risk score ([`risk`]), anomalous operations ([`anomaly`]) and the
//!   rollback simulation ([`simulate`]).
//! - [`canary`]: shadow-stack rollouts on live traffic through HAProxy: provision, split,
//!   judge (Mann-Whitney per KPI), promote or roll back ([`canary::run`]).
//! - [`predict`]: changes submitted ahead of deployment: dry run on the shadow copies,
//!   held with rollback resources pre-provisioned when negative, applied and monitored when
//!   positive ([`ChangeEngine::submit`], [`predict::watch_dir`]).
//! - [`store`]: stacks, change records and the change log.
//! - [`render`]: the plan as text for a person, or as JSON.

pub mod anomaly;
pub mod canary;
pub mod diff;
pub mod engine;
pub mod graph;
pub mod predict;
pub mod render;
pub mod risk;
pub mod simulate;
pub mod store;
pub mod template;
pub mod types;
pub mod validate;
pub mod whatif;

pub use engine::{ApplyOptions, ApplyReport, ChangeEngine, EngineConfig, RollbackReport};
pub use types::{AppliedChange, Op, UpdateOp};

/// Why a change could not be analysed, applied or rolled back.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The template.
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    /// A dependency cycle.
    #[error(transparent)]
    Cycle(graph::CycleError),
    /// A desired path outside the kind's change profile.
    #[error("resource {resource:?} ({kind}): the change touches {} outside the kind's change profile {profile:?}", .paths.join(", "))]
    OutsideProfile {
        /// Resource id.
        resource: String,
        /// Its kind.
        kind: String,
        /// The offending paths.
        paths: Vec<String>,
        /// The profile.
        profile: Vec<String>,
    },
    /// A resource.
    #[error(transparent)]
    Resource(#[from] harbinger_actuate::resource::ResourceError),
    /// A resource that could not be read.
    #[error("cannot read the current state of {resource:?}: {detail}")]
    Unreadable {
        /// Resource id.
        resource: String,
        /// Why.
        detail: String,
    },
    /// The change store.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A snapshot (e.g. one whose checksum fails).
    #[error(transparent)]
    Snapshot(#[from] harbinger_snapshot::SnapshotError),
    /// No such change.
    #[error("unknown change {0:?}")]
    UnknownChange(String),
    /// A resource the change did not touch.
    #[error("change {change:?} did not change resource {resource:?} (it changed: {})", .known.join(", "))]
    UnknownResource {
        /// The change.
        change: String,
        /// The resource asked for.
        resource: String,
        /// What it did change.
        known: Vec<String>,
    },
    /// A change that was never applied cannot be rolled back.
    #[error("change {change:?} was {status}: nothing to roll back")]
    NotApplied {
        /// The change.
        change: String,
        /// Its status.
        status: String,
    },
    /// A stored record that does not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}
