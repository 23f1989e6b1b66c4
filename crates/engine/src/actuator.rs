//! Actuators: how the engine acts on the world. The executor calls one for every action
//! it has journaled; the actuator does it (or says why not) and answers an outcome.
//!
//! Actuators must be idempotent by [`ActuatorRequest::key`]: after a crash the executor
//! calls again with the same key for every action that was begun and never finished.
//!
//! Built in here: [`LogActuator`], the dry run, which records what it would do.

use async_trait::async_trait;
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_core::{JournalStatus, Resource};
use harbinger_plan::ActionKind;

/// One action for an actuator.
#[derive(Debug, Clone, PartialEq)]
pub struct ActuatorRequest {
    /// Idempotency key: the same key means the same action.
    pub key: String,
    /// 1 for the first attempt; more when a failed action is tried again or resumed.
    pub attempt: u32,
    /// What to do.
    pub action: ActionKind,
    /// The shadow acted on, as it is before the action.
    pub shadow: Shadow,
    /// The resource it copies, when the inventory knows it.
    pub resource: Option<Resource>,
}

/// What an actuator answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ActuatorOutcome {
    /// `Applied`, `AlreadyApplied`, `Skipped`, `DryRun` or `Failed` (`Pending` is read as
    /// `Failed`).
    pub status: JournalStatus,
    /// What was done, or why not.
    pub detail: String,
    /// For a creation that succeeded: the state the shadow reached (`Ready` when the copy
    /// is in sync at once, `Syncing` while replication catches up; the engine then asks
    /// [`Actuator::sync_state`] at each tick).
    pub reached: Option<ShadowState>,
    /// For a creation: where the copy serves (`host:port`), recorded on the shadow.
    pub endpoint: Option<String>,
}

impl ActuatorOutcome {
    /// A successful outcome of `status` with `detail`.
    pub fn new(status: JournalStatus, detail: impl Into<String>) -> Self {
        ActuatorOutcome { status, detail: detail.into(), reached: None, endpoint: None }
    }

    /// A failed outcome with `detail`.
    pub fn failed(detail: impl Into<String>) -> Self {
        Self::new(JournalStatus::Failed, detail)
    }

    /// Whether the action took effect (applied, already applied, or a dry run).
    pub fn succeeded(&self) -> bool {
        matches!(self.status, JournalStatus::Applied | JournalStatus::AlreadyApplied | JournalStatus::DryRun)
    }
}

/// Something that performs shadow actions.
#[async_trait]
pub trait Actuator: Send + Sync + std::fmt::Debug {
    /// Short name for logs and metrics (`log`, `exec`, `haproxy`, ...).
    fn name(&self) -> &'static str;
    /// Performs `req`, idempotently by its key. Never panics; failures are outcomes.
    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome;

    /// Where a `syncing` shadow stands, asked at every engine tick: `Ready` once the copy
    /// is in sync (e.g. a Redis replica's initial sync is done and its lag is small),
    /// `Syncing` while not, `Failed` when it cannot get there; `Err` when it cannot tell
    /// now (asked again next tick). The default: ready (nothing to wait for).
    async fn sync_state(&self, shadow: &Shadow, resource: Option<&Resource>) -> Result<ShadowState, String> {
        let _unused = (shadow, resource);
        Ok(ShadowState::Ready)
    }
}

/// The dry run: logs what it would do and reports `dry_run`. A created shadow counts as
/// ready at once, so the rest of the lifecycle (retirement, promotion) runs as it would.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogActuator;

/// What an action would do, in words.
pub fn describe(req: &ActuatorRequest) -> String {
    let s = &req.shadow;
    match &req.action {
        ActionKind::CreateShadow { .. } => {
            format!("would create shadow {} of {} (primary {}) on {}", s.id, s.resource, s.primary, s.host)
        }
        ActionKind::RetireShadow { state, .. } => format!("would retire shadow {} on {} ({state})", s.id, s.host),
        ActionKind::ExpireShadow { .. } => format!("would expire shadow {} on {}", s.id, s.host),
        ActionKind::PromoteShadow { .. } => {
            format!("would promote shadow {} on {} to serve {} instead of {}", s.id, s.host, s.resource, s.primary)
        }
        ActionKind::AddCause { cause, .. } => format!("shadow {} is now also held by {}", s.id, cause.key()),
        ActionKind::DropCause { cause, .. } => format!("shadow {} is no longer held by {}", s.id, cause.key()),
    }
}

#[async_trait]
impl Actuator for LogActuator {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let detail = describe(req);
        tracing::info!(target: "harbinger::actuator", actuator = "log", key = %req.key, attempt = req.attempt, "{detail}");
        let reached = matches!(req.action, ActionKind::CreateShadow { .. }).then_some(ShadowState::Ready);
        ActuatorOutcome { status: JournalStatus::DryRun, detail, reached, endpoint: None }
    }
}
