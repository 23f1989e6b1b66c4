//! What the planner answers: actions for the executor, each with the decision behind it,
//! and the decisions that carry no action.

use harbinger_core::{HostId, ResourceId, ShadowId, TimestampMs};
use serde::{Deserialize, Serialize};

use harbinger_core::shadow::{Cause, Shadow, ShadowState};

/// The `kind` values of [`Decision`].
pub mod kind {
    /// A new shadow is planned (with a [`CreateShadow`](super::ActionKind::CreateShadow)).
    pub const SHADOW_PLANNED: &str = "shadow_planned";
    /// A demand or a promotion that cannot be met, or a trigger naming something unknown.
    pub const SHADOW_SKIPPED: &str = "shadow_skipped";
    /// A live shadow retired to make room for a higher-priority demand.
    pub const SHADOW_PREEMPTED: &str = "shadow_preempted";
    /// A live shadow retired: its causes no longer hold, it is idle, stale, or its host
    /// is down (then it ends `failed`).
    pub const SHADOW_RETIRED: &str = "shadow_retired";
    /// A live shadow passed its time to live.
    pub const SHADOW_EXPIRED: &str = "shadow_expired";
    /// A ready shadow is chosen to take over from its failed primary.
    pub const SHADOW_PROMOTED: &str = "shadow_promoted";
    /// A primary is down and one of its resources fails over (precedes the promotion).
    pub const FAILOVER: &str = "failover";
    /// A failover's actions are done: how long detection and action took (watchdog).
    pub const FAILOVER_DONE: &str = "failover_done";
    /// An existing live shadow gains a cause instead of a duplicate being created.
    pub const CAUSE_ADDED: &str = "cause_added";
    /// A cause that ended (a resolved alert) is removed from a shadow that stays.
    pub const CAUSE_DROPPED: &str = "cause_dropped";
}

/// One line of `decisions.jsonl`: what was decided about a resource or host, and why.
///
/// Field order in JSON: `ts`, `kind`, `host`, `resource`, `target_host`, `reason`, then
/// the optional extras, which are left out when empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Time of the plan.
    pub ts: TimestampMs,
    /// One of the [`kind`] constants.
    pub kind: String,
    /// The primary the decision is about; empty when a trigger names no known host.
    pub host: HostId,
    /// The resource, when the decision is about one.
    pub resource: Option<ResourceId>,
    /// The host a shadow is (or would be) on.
    pub target_host: Option<HostId>,
    /// Why, with the values and thresholds that decided it.
    pub reason: String,
    /// The shadow acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowId>,
    /// The shadow's or the demand's priority, rounded to 4 decimals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<f64>,
    /// The cause that led to the decision (the strongest, when there are several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

impl Decision {
    pub(crate) fn new(ts: TimestampMs, kind: &str, host: HostId, reason: String) -> Self {
        Decision { ts, kind: kind.to_string(), host, resource: None, target_host: None, reason, shadow: None, priority: None, cause: None }
    }

    pub(crate) fn resource(mut self, r: &ResourceId) -> Self {
        self.resource = Some(r.clone());
        self
    }

    pub(crate) fn target(mut self, h: &HostId) -> Self {
        self.target_host = Some(h.clone());
        self
    }

    pub(crate) fn shadow(mut self, s: &ShadowId) -> Self {
        self.shadow = Some(s.clone());
        self
    }

    pub(crate) fn priority(mut self, p: f64) -> Self {
        self.priority = Some((p * 1e4).round() / 1e4);
        self
    }

    pub(crate) fn cause(mut self, c: &Cause) -> Self {
        self.cause = Some(c.clone());
        self
    }

    /// A decision about an existing shadow: its primary, resource, host, id and priority.
    pub(crate) fn about(ts: TimestampMs, kind: &str, s: &Shadow, reason: String) -> Self {
        Decision::new(ts, kind, s.primary.clone(), reason).resource(&s.resource).target(&s.host).shadow(&s.id).priority(s.priority)
    }
}

/// What the executor should do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActionKind {
    /// Create this shadow (state `planned`).
    CreateShadow {
        /// The new shadow.
        shadow: Shadow,
    },
    /// End a live shadow in `state`: `retired`, or `failed` when its host is down.
    RetireShadow {
        /// The shadow.
        shadow: ShadowId,
        /// The terminal state to move it to.
        state: ShadowState,
    },
    /// Move a live shadow to `expired`.
    ExpireShadow {
        /// The shadow.
        shadow: ShadowId,
    },
    /// Promote a ready shadow: it takes over from its failed primary.
    PromoteShadow {
        /// The shadow.
        shadow: ShadowId,
    },
    /// Add a cause to a live shadow (no-op if it already has it).
    AddCause {
        /// The shadow.
        shadow: ShadowId,
        /// The cause.
        cause: Cause,
    },
    /// Remove a cause that ended from a live shadow that stays (no-op if absent).
    DropCause {
        /// The shadow.
        shadow: ShadowId,
        /// The cause.
        cause: Cause,
    },
}

/// One step for the executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Idempotency key: the same action planned twice has the same key, so the executor
    /// performs it once (`create:{shadow}`, `retire:{shadow}`, `expire:{shadow}`,
    /// `promote:{shadow}`, `cause:{shadow}:{cause}@{now}`, `drop:{shadow}:{cause}@{now}`).
    pub key: String,
    /// What to do.
    pub kind: ActionKind,
    /// Why.
    pub decision: Decision,
}

/// The planner's answer for one tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The time of the plan.
    pub now: TimestampMs,
    /// Actions, in the order they must be performed.
    pub actions: Vec<Action>,
    /// Decisions without an action: skipped demands, failovers (the promotion that
    /// follows is an action) and promotions that must wait for a shadow to be ready.
    pub skipped: Vec<Decision>,
    /// For each entry of `skipped`, how many actions had been decided before it; lets
    /// [`Plan::decisions`] restore the order of decision.
    #[serde(default)]
    pub skipped_at: Vec<usize>,
}

impl Plan {
    /// Every decision (those of the actions and the skipped ones) in the order they were
    /// made: the lines the engine appends to `decisions.jsonl`.
    pub fn decisions(&self) -> Vec<Decision> {
        let mut out = Vec::with_capacity(self.actions.len() + self.skipped.len());
        let mut skipped = self.skipped.iter().zip(self.skipped_at.iter().copied().chain(std::iter::repeat(usize::MAX))).peekable();
        for (i, a) in self.actions.iter().enumerate() {
            while let Some((d, _)) = skipped.next_if(|(_, at)| *at <= i) {
                out.push(d.clone());
            }
            out.push(a.decision.clone());
        }
        out.extend(skipped.map(|(d, _)| d.clone()));
        out
    }

    /// Number of shadows the plan creates.
    pub fn created(&self) -> usize {
        self.actions.iter().filter(|a| matches!(a.kind, ActionKind::CreateShadow { .. })).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(kind: &str, n: i64) -> Decision {
        Decision::new(n, kind, HostId::new("h1"), format!("#{n}"))
    }

    fn act(n: i64) -> Action {
        Action { key: format!("k{n}"), kind: ActionKind::PromoteShadow { shadow: "s".into() }, decision: d(kind::SHADOW_PROMOTED, n) }
    }

    #[test]
    fn decisions_follow_the_order_of_decision() {
        let plan = Plan {
            now: 0,
            actions: vec![act(1), act(3), act(4)],
            skipped: vec![d(kind::SHADOW_SKIPPED, 0), d(kind::SHADOW_SKIPPED, 2), d(kind::SHADOW_SKIPPED, 5)],
            skipped_at: vec![0, 1, 3],
        };
        let order: Vec<i64> = plan.decisions().iter().map(|d| d.ts).collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn decision_json_has_a_fixed_field_order_and_drops_empty_extras() {
        let line = Decision::new(7, kind::SHADOW_SKIPPED, HostId::new("h1"), "why".into()).priority(0.123456);
        assert_eq!(
            serde_json::to_string(&line).unwrap_or_default(),
            r#"{"ts":7,"kind":"shadow_skipped","host":"h1","resource":null,"target_host":null,"reason":"why","priority":0.1235}"#
        );
    }
}
