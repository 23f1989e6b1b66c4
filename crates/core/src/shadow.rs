//! Shadows: a passive copy of a resource on another host, its lifecycle and why it exists.

use std::fmt;

use crate::{HostId, ResourceId, ShadowId, TimestampMs};
use serde::{Deserialize, Serialize};

/// Where a shadow is in its lifecycle.
///
/// ```text
/// planned -> provisioning -> syncing -> ready -> promoted
///                               ^---------'        (resync after lag)
/// any live state -> expired | retired | failed
/// ```
///
/// The first four states are *live* (the shadow holds capacity and counts against the
/// budget); the other four are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowState {
    /// Decided by the planner, nothing done yet.
    Planned,
    /// The executor is allocating the copy on the target host.
    Provisioning,
    /// The copy is catching up with the primary.
    Syncing,
    /// The copy is in sync and can take over.
    Ready,
    /// The copy took over from a failed primary (terminal).
    Promoted,
    /// The copy outlived its time to live (terminal).
    Expired,
    /// The copy was removed because it is no longer needed (terminal).
    Retired,
    /// The copy was lost, e.g. its host went down (terminal).
    Failed,
}

impl ShadowState {
    /// Planned, provisioning, syncing or ready: the shadow holds capacity and budget.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Planned | Self::Provisioning | Self::Syncing | Self::Ready)
    }

    /// Whether the lifecycle allows moving from `self` to `next`. Staying in the same
    /// state is always allowed (an idempotent no-op), even for terminal states.
    pub fn can_move_to(self, next: ShadowState) -> bool {
        use ShadowState::*;
        if self == next {
            return true;
        }
        match (self, next) {
            (Planned, Provisioning) | (Provisioning, Syncing) | (Syncing, Ready) | (Ready, Syncing) | (Ready, Promoted) => true,
            (from, Expired | Retired | Failed) => from.is_live(),
            _ => false,
        }
    }

    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Provisioning => "provisioning",
            Self::Syncing => "syncing",
            Self::Ready => "ready",
            Self::Promoted => "promoted",
            Self::Expired => "expired",
            Self::Retired => "retired",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for ShadowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a shadow exists. A shadow keeps a list; it lives while any of them holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Cause {
    /// The primary host entered the alerting state; holds until it has been clear for
    /// `Budget::retire_grace_ms`.
    Risk {
        /// The alerting host (the shadow's primary).
        host: HostId,
    },
    /// An Alertmanager alert; holds until the alert resolves.
    Alert {
        /// Alertmanager fingerprint.
        fingerprint: String,
    },
    /// A change event: deployment of a critical resource, security config change,
    /// maintenance window. Holds until idle scale-down or expiry.
    Event {
        /// Event kind, e.g. `deploy_started`, `config_changed`, `host_maintenance`.
        kind: String,
        /// Event id, e.g. a deployment id.
        id: String,
    },
    /// An operator asked for it. Holds until idle scale-down or expiry.
    Manual {
        /// Who asked.
        by: String,
    },
}

impl Cause {
    /// A short stable key (`risk:h017`, `alert:<fingerprint>`, `event:deploy_started:d-41`,
    /// `manual:alice`), used in idempotency keys and reasons.
    pub fn key(&self) -> String {
        match self {
            Cause::Risk { host } => format!("risk:{host}"),
            Cause::Alert { fingerprint } => format!("alert:{fingerprint}"),
            Cause::Event { kind, id } => format!("event:{kind}:{id}"),
            Cause::Manual { by } => format!("manual:{by}"),
        }
    }
}

/// One passive copy of a resource on a host other than its primary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shadow {
    /// Unique id, `{resource}@{host}#{created_at}` for shadows this planner creates.
    pub id: ShadowId,
    /// The resource copied.
    pub resource: ResourceId,
    /// The host the resource runs on (the one that may fail).
    pub primary: HostId,
    /// The host the shadow lives on.
    pub host: HostId,
    /// Lifecycle state.
    pub state: ShadowState,
    /// Why it exists, oldest first, without duplicates.
    pub causes: Vec<Cause>,
    /// Priority when it was planned; the lowest is pre-empted first when the budget is full.
    pub priority: f64,
    /// CPU it holds on `host` (copied from the resource).
    pub cpu_cores: f64,
    /// Memory it holds on `host`, GB (copied from the resource).
    pub mem_gb: f64,
    /// When it was planned.
    pub created_at: TimestampMs,
    /// Last change of state or causes.
    pub updated_at: TimestampMs,
    /// Last time it was used (read, synced against, or tested); drives idle scale-down.
    pub last_used_at: TimestampMs,
    /// When it expires regardless of its causes; `None` never.
    pub expires_at: Option<TimestampMs>,
    /// Where the copy serves (`host:port`), once an actuator has provisioned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl Shadow {
    /// Whether the shadow is live (see [`ShadowState::is_live`]).
    pub fn is_live(&self) -> bool {
        self.state.is_live()
    }
}

/// A lifecycle move the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionError {
    /// The shadow.
    pub shadow: ShadowId,
    /// Its current state.
    pub from: ShadowState,
    /// The state asked for.
    pub to: ShadowState,
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shadow {} cannot move from {} to {}", self.shadow, self.from, self.to)
    }
}

impl std::error::Error for TransitionError {}

/// Moves `shadow` to `next` at time `at`, adding `cause` to its causes when given and new.
///
/// Returns whether anything changed (state or causes); `updated_at` is set to `at` only
/// then. Moving to the current state is an idempotent no-op, so replaying a journal is
/// safe.
///
/// # Errors
/// [`TransitionError`] naming the shadow, its state and the state asked for, when the
/// lifecycle does not allow the move; the shadow is left untouched.
pub fn transition(shadow: &mut Shadow, next: ShadowState, at: TimestampMs, cause: Option<Cause>) -> Result<bool, TransitionError> {
    if !shadow.state.can_move_to(next) {
        return Err(TransitionError { shadow: shadow.id.clone(), from: shadow.state, to: next });
    }
    let mut changed = shadow.state != next;
    shadow.state = next;
    if let Some(c) = cause.filter(|c| !shadow.causes.contains(c)) {
        shadow.causes.push(c);
        changed = true;
    }
    if changed {
        shadow.updated_at = at;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ShadowState::*;

    const ALL: [ShadowState; 8] = [Planned, Provisioning, Syncing, Ready, Promoted, Expired, Retired, Failed];

    fn shadow(state: ShadowState) -> Shadow {
        Shadow {
            id: "db-3@h042#1000".into(),
            resource: "db-3".into(),
            primary: "h017".into(),
            host: "h042".into(),
            state,
            causes: vec![Cause::Risk { host: "h017".into() }],
            priority: 0.5,
            cpu_cores: 2.0,
            mem_gb: 8.0,
            created_at: 1_000,
            updated_at: 1_000,
            last_used_at: 1_000,
            expires_at: None,
            endpoint: None,
        }
    }

    #[test]
    fn live_states_are_the_first_four() {
        let live: Vec<_> = ALL.into_iter().filter(|s| s.is_live()).collect();
        assert_eq!(live, [Planned, Provisioning, Syncing, Ready]);
    }

    #[test]
    fn lifecycle_moves() {
        let allowed: Vec<(ShadowState, ShadowState)> =
            ALL.into_iter().flat_map(|a| ALL.into_iter().map(move |b| (a, b))).filter(|&(a, b)| a != b && a.can_move_to(b)).collect();
        let expected = [
            (Planned, Provisioning),
            (Planned, Expired),
            (Planned, Retired),
            (Planned, Failed),
            (Provisioning, Syncing),
            (Provisioning, Expired),
            (Provisioning, Retired),
            (Provisioning, Failed),
            (Syncing, Ready),
            (Syncing, Expired),
            (Syncing, Retired),
            (Syncing, Failed),
            (Ready, Syncing),
            (Ready, Promoted),
            (Ready, Expired),
            (Ready, Retired),
            (Ready, Failed),
        ];
        assert_eq!(allowed, expected);
        for s in ALL {
            assert!(s.can_move_to(s), "{s} -> {s} is an idempotent no-op");
        }
    }

    #[test]
    fn transition_changes_state_and_time() {
        let mut s = shadow(Syncing);
        assert_eq!(transition(&mut s, Ready, 2_000, None), Ok(true));
        assert_eq!((s.state, s.updated_at), (Ready, 2_000));
        // Resync after lag.
        assert_eq!(transition(&mut s, Syncing, 3_000, None), Ok(true));
        assert_eq!(s.state, Syncing);
    }

    #[test]
    fn same_state_is_a_no_op_unless_a_cause_is_new() {
        let mut s = shadow(Ready);
        assert_eq!(transition(&mut s, Ready, 5_000, None), Ok(false));
        assert_eq!(s.updated_at, 1_000, "untouched");
        assert_eq!(transition(&mut s, Ready, 5_000, Some(Cause::Risk { host: "h017".into() })), Ok(false));
        let manual = Cause::Manual { by: "alice".into() };
        assert_eq!(transition(&mut s, Ready, 6_000, Some(manual.clone())), Ok(true));
        assert_eq!(s.causes.last(), Some(&manual));
        assert_eq!(s.updated_at, 6_000);
        let mut done = shadow(Retired);
        assert_eq!(transition(&mut done, Retired, 7_000, None), Ok(false));
    }

    #[test]
    fn refused_moves_name_the_shadow_and_leave_it_alone() {
        let mut s = shadow(Syncing);
        let e = transition(&mut s, Provisioning, 2_000, None).expect_err("no going back");
        assert_eq!(e.to_string(), "shadow db-3@h042#1000 cannot move from syncing to provisioning");
        assert_eq!(e, TransitionError { shadow: "db-3@h042#1000".into(), from: Syncing, to: Provisioning });
        assert_eq!((s.state, s.updated_at), (Syncing, 1_000));
        let mut p = shadow(Promoted);
        let e = transition(&mut p, Retired, 2_000, None).expect_err("terminal");
        assert_eq!(e.to_string(), "shadow db-3@h042#1000 cannot move from promoted to retired");
        let mut planned = shadow(Planned);
        assert!(transition(&mut planned, Promoted, 2_000, None).is_err(), "only a ready shadow is promoted");
    }

    #[test]
    fn causes_serialise_tagged_and_have_keys() {
        let c = Cause::Event { kind: "deploy_started".into(), id: "d-41".into() };
        assert_eq!(serde_json::to_string(&c).unwrap_or_default(), r#"{"type":"event","kind":"deploy_started","id":"d-41"}"#);
        assert_eq!(c.key(), "event:deploy_started:d-41");
        assert_eq!(Cause::Risk { host: "h1".into() }.key(), "risk:h1");
        assert_eq!(Cause::Alert { fingerprint: "ab12".into() }.key(), "alert:ab12");
        assert_eq!(Cause::Manual { by: "bob".into() }.key(), "manual:bob");
        assert_eq!(serde_json::to_string(&ShadowState::Provisioning).unwrap_or_default(), "\"provisioning\"");
    }
}
