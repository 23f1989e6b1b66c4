//! harbinger-plan: the pure planner, from fleet risk to shadow decisions.
//!
//! Every tick the engine hands [`plan`] the fleet as it sees it ([`HostView`]s with
//! risk, [`ResourceView`]s), what happened since the last tick ([`Trigger`]s: hosts
//! entering or leaving the alerting state, Alertmanager alerts, change events, operator
//! requests), the [`Shadow`]s that exist and the [`Budget`]. It answers a [`Plan`]: the
//! [`Action`]s an executor journals and performs (create, retire, expire or promote a
//! shadow, add or drop one of its causes), each with an idempotency key and the
//! [`Decision`] behind it, plus the decisions that carry no action (skips). Decisions
//! are the lines of `decisions.jsonl`.
//!
//! The planner is a pure function: no I/O, no clock (time is `PlanInput::now`), no
//! randomness, no hash-map order. The same input, in any order, gives the same plan.
//!
//! # Layout
//! - `harbinger_core::shadow` (re-exported here): a shadow, its lifecycle
//!   ([`ShadowState::can_move_to`], [`transition`]) and its [`Cause`]s; they live in core
//!   because the shadow store persists them.
//! - [`input`]: what a plan is computed from ([`PlanInput`]).
//! - [`judge`]: the canary judge's statistics: the Mann-Whitney U test and the verdict of
//!   a canary against its baseline, KPI by KPI ([`judge::judge`]).
//! - [`rollout`]: a shadow-stack rollout as a state machine (traffic steps, judgements,
//!   promotion, rollback), its record, and the rule that sizes a shadow stack.
//! - [`output`]: what it answers ([`Plan`], [`Action`], [`Decision`]).
//! - [`planner`]: the rules: upkeep of existing shadows, demand, priority, placement,
//!   budget and pre-emption. Its module header lists the choices the rules leave open.
//! - `place`: free capacity per host and the candidate order (internal).
//! - [`bench`](mod@bench): a synthetic fleet to time the planner on ([`synthetic_fleet`]).
//!
//! - [`dry_run`]: the planner over a run of ticks with every action applied as the `log`
//!   actuator would (what `eval` writes to `decisions.jsonl`).
//!
//! Start with [`planner`] and [`plan`].

pub mod bench;
pub mod dry_run;
pub mod input;
pub mod judge;
pub mod output;
mod place;
pub mod planner;
pub mod rollout;

pub use bench::synthetic_fleet;
pub use dry_run::{DryRun, HostTick};
pub use harbinger_core::shadow::{Cause, Shadow, ShadowState, TransitionError, transition};
pub use input::{Budget, HostView, PlanInput, ResourceView, Trigger};
pub use output::{Action, ActionKind, Decision, Plan, kind};
pub use planner::plan;
