//! A shadow-stack rollout as a pure state machine: traffic steps, judgements, promotion
//! and rollback, and the rule that sizes the shadow stack.
//!
//! A rollout runs a new version of a stack (the *shadow stack*) beside the live one and
//! moves traffic to it in steps, the way an Argo Rollouts canary with an
//! `AnalysisTemplate` does:
//!
//! 1. [`Rollout::start`] sends the first step's share of traffic to the shadow stack.
//! 2. Every `interval` the controller compares the two stacks' KPIs
//!    ([`judge`](crate::judge)) and feeds the [`Verdict`] to [`Rollout::on_judgement`].
//! 3. `count` passing judgements in a row at a step move to the next step; after the last
//!    step all traffic goes to the shadow stack ([`Step::Promote`]) and the old stack is
//!    retired or kept as a warm standby ([`AfterPromote`]).
//! 4. More than `failure_limit` failed judgements (0 by default: the first failure)
//!    roll back at once: no traffic to the shadow, all to the live stack, the shadow
//!    stack deprovisioned, the administrators alerted ([`Step::Rollback`] and the steps
//!    after it). More than `inconclusive_limit` judgements in a row without data roll back
//!    too: a shadow that cannot be judged is not promoted.
//!
//! Everything here is a value: the controller (`harbinger_change::canary`) performs the
//! [`Step`]s through the actuators, with time from its clock.
//!
//! [`shadow_scale`] is the sizing rule: a configuration change gets one instance, a new
//! version of a service more, a change that touches data the full stack.

use serde::{Deserialize, Serialize};

/// What happens to the old (live) stack after a promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterPromote {
    /// Stop it: its processes are stopped once no traffic goes to it.
    #[default]
    Retire,
    /// Keep it running with no traffic, ready to take traffic back.
    Standby,
}

/// How a rollout progresses (the analysis part of the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutSpec {
    /// Shares of traffic (percent) sent to the shadow stack, one per step, increasing,
    /// each in 1..=99. Promotion sends 100 after the last one.
    pub steps: Vec<u32>,
    /// Time between judgements, in milliseconds.
    pub interval_ms: u64,
    /// Passing judgements in a row needed at each step before the next one.
    pub count: u32,
    /// Failed judgements tolerated; one more rolls back.
    pub failure_limit: u32,
    /// Judgements in a row without data tolerated; one more rolls back.
    pub inconclusive_limit: u32,
    /// The old stack after a promotion.
    pub after_promote: AfterPromote,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            steps: vec![5, 25, 50],
            interval_ms: 1_000,
            count: 3,
            failure_limit: 0,
            inconclusive_limit: 2,
            after_promote: AfterPromote::Retire,
        }
    }
}

impl RolloutSpec {
    /// Checks the steps and counts.
    ///
    /// # Errors
    /// A sentence naming the field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("steps: at least one traffic share is needed".into());
        }
        for (i, s) in self.steps.iter().enumerate() {
            if !(1..=99).contains(s) {
                return Err(format!("steps[{i}] = {s}: a share must be in 1..=99 percent"));
            }
            if i > 0 && *s <= self.steps[i - 1] {
                return Err(format!("steps[{i}] = {s}: shares must increase (previous {})", self.steps[i - 1]));
            }
        }
        if self.interval_ms == 0 {
            return Err("interval: must be above zero".into());
        }
        if self.count == 0 {
            return Err("count: at least one judgement per step".into());
        }
        Ok(())
    }

    /// Judgements a rollout that passes every one of them takes.
    pub fn judgements_to_promote(&self) -> u64 {
        self.steps.len() as u64 * u64::from(self.count)
    }
}

/// One judgement's outcome, as the state machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The shadow stack is equal or better.
    Pass,
    /// The shadow stack is worse.
    Fail,
    /// Not enough data on one side to judge.
    Inconclusive,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Traffic is being split and judged.
    Progressing,
    /// All traffic is on the shadow stack.
    Promoted,
    /// All traffic is back on the live stack and the shadow stack is gone.
    RolledBack,
}

impl Phase {
    /// Whether nothing more happens.
    pub fn is_final(self) -> bool {
        !matches!(self, Phase::Progressing)
    }
}

/// An effect the controller performs, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Send `share` percent of the traffic to the shadow stack, the rest to the live one.
    SetShare {
        /// Percent, 0..=100.
        share: u32,
        /// Why.
        reason: String,
    },
    /// The shadow stack is now the live stack.
    Promote {
        /// Why.
        reason: String,
    },
    /// Stop the old stack (after a promotion).
    RetireOld,
    /// Keep the old stack running without traffic (after a promotion).
    KeepStandby,
    /// The rollout failed: the steps after this one undo it.
    Rollback {
        /// Why, with the evidence.
        reason: String,
    },
    /// Stop and remove the shadow stack (after a rollback).
    DeprovisionShadow,
    /// Tell the administrators.
    Alert {
        /// `rollout_rolled_back` or `rollout_promoted`.
        event: String,
        /// Why.
        reason: String,
    },
}

/// The state of one rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// How it progresses.
    pub spec: RolloutSpec,
    /// Where it is.
    pub phase: Phase,
    /// The current step (index into `spec.steps`).
    pub step: usize,
    /// The share of traffic (percent) the shadow stack is meant to get now.
    pub share: u32,
    /// Passing judgements in a row at this step.
    pub passes_in_step: u32,
    /// Failed judgements so far.
    pub failures: u32,
    /// Judgements without data in a row.
    pub inconclusive_run: u32,
    /// Judgements so far.
    pub judgements: u32,
}

impl Rollout {
    /// A rollout at its first step, and the step that sends it its first share.
    ///
    /// # Errors
    /// The spec is not valid ([`RolloutSpec::validate`]).
    pub fn start(spec: RolloutSpec) -> Result<(Self, Vec<Step>), String> {
        spec.validate()?;
        let share = spec.steps[0];
        let r =
            Rollout { spec, phase: Phase::Progressing, step: 0, share, passes_in_step: 0, failures: 0, inconclusive_run: 0, judgements: 0 };
        let n = r.spec.steps.len();
        Ok((r, vec![Step::SetShare { share, reason: format!("step 1 of {n}: {share} % of the traffic to the shadow stack") }]))
    }

    /// Advances on one judgement; answers the steps to perform. A rollout that is over
    /// ignores further judgements (no steps).
    pub fn on_judgement(&mut self, verdict: Verdict, why: &str) -> Vec<Step> {
        if self.phase.is_final() {
            return Vec::new();
        }
        self.judgements += 1;
        let n = self.spec.steps.len();
        match verdict {
            Verdict::Fail => {
                self.failures += 1;
                self.passes_in_step = 0;
                self.inconclusive_run = 0;
                if self.failures > self.spec.failure_limit {
                    return self.roll_back(format!(
                        "judgement {} failed at {} % ({} failed, limit {}): {why}",
                        self.judgements, self.share, self.failures, self.spec.failure_limit
                    ));
                }
                Vec::new()
            }
            Verdict::Inconclusive => {
                self.inconclusive_run += 1;
                if self.inconclusive_run > self.spec.inconclusive_limit {
                    return self.roll_back(format!(
                        "{} judgements in a row without data at {} % (limit {}): {why}",
                        self.inconclusive_run, self.share, self.spec.inconclusive_limit
                    ));
                }
                Vec::new()
            }
            Verdict::Pass => {
                self.inconclusive_run = 0;
                self.passes_in_step += 1;
                if self.passes_in_step < self.spec.count {
                    return Vec::new();
                }
                self.passes_in_step = 0;
                if self.step + 1 < n {
                    self.step += 1;
                    self.share = self.spec.steps[self.step];
                    return vec![Step::SetShare {
                        share: self.share,
                        reason: format!(
                            "step {} of {n}: {} passing judgements in a row at {} %, now {} %",
                            self.step + 1,
                            self.spec.count,
                            self.spec.steps[self.step - 1],
                            self.share
                        ),
                    }];
                }
                self.phase = Phase::Promoted;
                let reason = format!(
                    "{} passing judgements in a row at each of {n} steps (last {} %): all traffic to the shadow stack",
                    self.spec.count, self.share
                );
                self.share = 100;
                let old = match self.spec.after_promote {
                    AfterPromote::Retire => Step::RetireOld,
                    AfterPromote::Standby => Step::KeepStandby,
                };
                vec![
                    Step::SetShare { share: 100, reason: reason.clone() },
                    Step::Promote { reason: reason.clone() },
                    old,
                    Step::Alert { event: "rollout_promoted".into(), reason },
                ]
            }
        }
    }

    /// Rolls back now (an operator's request or an error in the controller).
    pub fn abort(&mut self, why: &str) -> Vec<Step> {
        if self.phase.is_final() {
            return Vec::new();
        }
        self.roll_back(format!("aborted at {} %: {why}", self.share))
    }

    fn roll_back(&mut self, reason: String) -> Vec<Step> {
        self.phase = Phase::RolledBack;
        self.share = 0;
        vec![
            Step::Rollback { reason: reason.clone() },
            Step::SetShare { share: 0, reason: "rollback: all traffic to the live stack".into() },
            Step::DeprovisionShadow,
            Step::Alert { event: "rollout_rolled_back".into(), reason },
        ]
    }
}

/// What a change touches, for [`shadow_scale`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeScope {
    /// Configuration only (files).
    Config,
    /// A new version of a service (its command or binary).
    Version,
    /// Data: a store, a schema, a migration.
    Data,
}

impl ChangeScope {
    /// The scope of a change from the kinds of the resources it touches: `redis` (or any
    /// resource marked as data) is data; `process`, `exec` and `service` are a version;
    /// anything else (`file`) is configuration. The widest scope wins.
    pub fn of<'a>(touched: impl IntoIterator<Item = (&'a str, bool)>) -> ChangeScope {
        touched
            .into_iter()
            .map(|(kind, data)| match kind {
                _ if data => ChangeScope::Data,
                "redis" => ChangeScope::Data,
                "process" | "exec" | "service" => ChangeScope::Version,
                _ => ChangeScope::Config,
            })
            .max()
            .unwrap_or(ChangeScope::Config)
    }
}

/// How big the shadow stack is, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowScale {
    /// The scope it was sized for.
    pub scope: ChangeScope,
    /// Instances of the live stack.
    pub live_instances: u32,
    /// Service instances in the shadow stack.
    pub instances: u32,
    /// The first share of traffic (percent).
    pub first_share: u32,
    /// Whether the data resources are copied too (the full stack).
    pub full_stack: bool,
    /// The rule, with its inputs.
    pub reason: String,
}

/// The largest first share a configuration change gets.
pub const CONFIG_MAX_FIRST_SHARE: u32 = 5;

/// Sizes the shadow stack for a change of `scope` to a stack of `live_instances` service
/// instances whose rollout's first step is `first_step` percent:
///
/// | scope | instances | first share | data copied |
/// |---|---|---|---|
/// | config | 1 | min(first step, 5 %) | no |
/// | version | max(2, ⌈live / 2⌉), at most max(live, 2) | first step | no |
/// | data | live (at least 1) | first step | yes (full stack) |
pub fn shadow_scale(scope: ChangeScope, live_instances: u32, first_step: u32) -> ShadowScale {
    let live = live_instances.max(1);
    let (instances, first_share, full_stack) = match scope {
        ChangeScope::Config => (1, first_step.min(CONFIG_MAX_FIRST_SHARE), false),
        ChangeScope::Version => (live.div_ceil(2).max(2).min(live.max(2)), first_step, false),
        ChangeScope::Data => (live, first_step, true),
    };
    let reason = match scope {
        ChangeScope::Config => format!(
            "configuration change: a minimal shadow (1 instance of {live_instances}, first share min({first_step}, {CONFIG_MAX_FIRST_SHARE}) = {first_share} %)"
        ),
        ChangeScope::Version => {
            format!("new version of a service: max(2, ⌈{live_instances} / 2⌉) = {instances} instances, first share {first_share} %")
        }
        ChangeScope::Data => {
            format!("change touching data: the full stack ({instances} instances and its data), first share {first_share} %")
        }
    };
    ShadowScale { scope, live_instances, instances, first_share, full_stack, reason }
}

/// Whether `id` can name a rollout (and its record file `<id>.json`): 1 to 64 bytes of
/// letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A shadow instance of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowInstance {
    /// Its id, also its server name in the load balancer: `<rollout>-<n>`.
    pub id: String,
    /// Where it serves, `addr:port`.
    pub endpoint: String,
}

/// The samples one KPI gave in one judgement's window, per stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiWindow {
    /// The KPI.
    pub name: String,
    /// The live stack's samples.
    pub baseline: Vec<f64>,
    /// The shadow stack's samples.
    pub canary: Vec<f64>,
}

/// One judgement of a rollout, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgementRecord {
    /// 1 for the first.
    pub index: u32,
    /// When it was made.
    pub at_ms: i64,
    /// The window its samples come from: `[window_start_ms, window_end_ms)`.
    pub window_start_ms: i64,
    /// End of the window.
    pub window_end_ms: i64,
    /// The shadow stack's share of the traffic during the window (percent).
    pub share: u32,
    /// What the state machine made of it.
    pub verdict: Verdict,
    /// The judge's answer: per KPI the medians, U, p-value, deviation and verdict.
    pub judgement: crate::judge::Judgement,
    /// The samples judged, per KPI.
    pub windows: Vec<KpiWindow>,
}

/// Something that happened in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutEvent {
    /// When.
    pub ts: i64,
    /// `scaled`, `provisioned`, `share`, `judgement`, `promoted`, `rollback`,
    /// `shadow_removed`, `shadow_stopped`, `old_retired`, `old_standby`, `alert_sent`,
    /// `alert_failed`, `alert_skipped`, `error`.
    pub kind: String,
    /// What, with the values.
    pub detail: String,
}

/// Everything about one rollout: what `GET /api/v1/rollouts/{id}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// Its id.
    pub id: String,
    /// When it started.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
    /// The load balancer backend both stacks serve in.
    pub backend: String,
    /// The live stack's servers.
    pub live: Vec<String>,
    /// The shadow stack's instances.
    pub shadow: Vec<ShadowInstance>,
    /// The shadow stack's copies of the live stack's configuration files (the path of the
    /// copy) and, for a full stack, of its data stores (the replica's endpoint).
    #[serde(default)]
    pub copies: Vec<ShadowInstance>,
    /// How the shadow stack was sized.
    pub scale: ShadowScale,
    /// The KPIs judged.
    pub kpis: Vec<crate::judge::KpiSpec>,
    /// The state machine.
    pub rollout: Rollout,
    /// Every judgement, oldest first.
    pub judgements: Vec<JudgementRecord>,
    /// Every event, oldest first.
    pub events: Vec<RolloutEvent>,
    /// `promoted` or `rolled_back` once over.
    pub decision: Option<String>,
    /// Requests the live stack answered while the rollout progressed.
    pub live_requests: u64,
    /// Requests the shadow stack answered while the rollout progressed.
    pub shadow_requests: u64,
    /// From the failed judgement to all traffic back on the live stack, when rolled back.
    pub rollback_ms: Option<f64>,
}

impl RolloutRecord {
    /// The share of the requests the shadow stack answered while the rollout progressed.
    #[allow(clippy::cast_precision_loss)]
    pub fn shadow_share_seen(&self) -> f64 {
        let total = self.live_requests + self.shadow_requests;
        if total == 0 { 0.0 } else { self.shadow_requests as f64 / total as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(steps: &[u32], count: u32) -> RolloutSpec {
        RolloutSpec { steps: steps.to_vec(), count, ..RolloutSpec::default() }
    }

    #[test]
    fn passing_judgements_walk_the_steps_and_promote() {
        let (mut r, first) = Rollout::start(spec(&[5, 50], 2)).expect("a valid spec");
        assert!(matches!(first.as_slice(), [Step::SetShare { share: 5, .. }]));
        assert!(r.on_judgement(Verdict::Pass, "ok").is_empty());
        let next = r.on_judgement(Verdict::Pass, "ok");
        assert!(matches!(next.as_slice(), [Step::SetShare { share: 50, .. }]), "{next:?}");
        assert_eq!(r.share, 50);
        assert!(r.on_judgement(Verdict::Pass, "ok").is_empty());
        let done = r.on_judgement(Verdict::Pass, "ok");
        assert!(
            matches!(done.as_slice(), [Step::SetShare { share: 100, .. }, Step::Promote { .. }, Step::RetireOld, Step::Alert { .. }]),
            "{done:?}"
        );
        assert_eq!(r.phase, Phase::Promoted);
        assert_eq!(u64::from(r.judgements), r.spec.judgements_to_promote());
        assert!(r.on_judgement(Verdict::Fail, "late").is_empty(), "a promoted rollout ignores judgements");
    }

    #[test]
    fn standby_keeps_the_old_stack() {
        let (mut r, _) = Rollout::start(RolloutSpec { after_promote: AfterPromote::Standby, ..spec(&[10], 1) }).expect("a valid spec");
        let done = r.on_judgement(Verdict::Pass, "ok");
        assert!(done.contains(&Step::KeepStandby) && !done.contains(&Step::RetireOld), "{done:?}");
    }

    #[test]
    fn the_first_failure_rolls_back_traffic_first() {
        let (mut r, _) = Rollout::start(spec(&[5, 25], 3)).expect("a valid spec");
        r.on_judgement(Verdict::Pass, "ok");
        let steps = r.on_judgement(Verdict::Fail, "error_rate 0.2 > 0.01 (p 1e-5)");
        assert_eq!(r.phase, Phase::RolledBack);
        assert_eq!(r.share, 0);
        match steps.as_slice() {
            [Step::Rollback { reason }, Step::SetShare { share: 0, .. }, Step::DeprovisionShadow, Step::Alert { event, .. }] => {
                assert!(reason.contains("judgement 2 failed at 5 %") && reason.contains("error_rate 0.2"), "{reason}");
                assert_eq!(event, "rollout_rolled_back");
            }
            other => panic!("{other:?}"),
        }
        assert!(r.abort("again").is_empty());
    }

    #[test]
    fn the_failure_limit_tolerates_failures_and_resets_the_run() {
        let (mut r, _) = Rollout::start(RolloutSpec { failure_limit: 1, ..spec(&[5], 2) }).expect("a valid spec");
        r.on_judgement(Verdict::Pass, "ok");
        assert!(r.on_judgement(Verdict::Fail, "bad").is_empty());
        assert_eq!(r.passes_in_step, 0, "a failure breaks the run of passes");
        r.on_judgement(Verdict::Pass, "ok");
        assert_eq!(r.phase, Phase::Progressing);
        let second = r.on_judgement(Verdict::Fail, "bad");
        assert!(matches!(second.first(), Some(Step::Rollback { .. })));
    }

    #[test]
    fn judgements_without_data_roll_back_past_the_limit() {
        let (mut r, _) = Rollout::start(RolloutSpec { inconclusive_limit: 1, ..spec(&[5], 1) }).expect("a valid spec");
        assert!(r.on_judgement(Verdict::Inconclusive, "no canary samples").is_empty());
        let steps = r.on_judgement(Verdict::Inconclusive, "no canary samples");
        assert_eq!(r.phase, Phase::RolledBack, "{steps:?}");
    }

    #[test]
    fn bad_specs_name_the_field() {
        for (s, field) in [
            (spec(&[], 1), "steps"),
            (spec(&[0], 1), "steps[0]"),
            (spec(&[100], 1), "steps[0]"),
            (spec(&[20, 10], 1), "steps[1]"),
            (spec(&[5], 0), "count"),
            (RolloutSpec { interval_ms: 0, ..spec(&[5], 1) }, "interval"),
        ] {
            let e = Rollout::start(s).expect_err("an invalid spec");
            assert!(e.starts_with(field), "{e}");
        }
    }

    #[test]
    fn the_scope_of_a_change_is_its_widest_resource() {
        assert_eq!(ChangeScope::of([("file", false)]), ChangeScope::Config);
        assert_eq!(ChangeScope::of([("file", false), ("process", false)]), ChangeScope::Version);
        assert_eq!(ChangeScope::of([("exec", false), ("redis", false)]), ChangeScope::Data);
        assert_eq!(ChangeScope::of([("file", true)]), ChangeScope::Data);
        assert_eq!(ChangeScope::of(std::iter::empty()), ChangeScope::Config);
    }

    #[test]
    fn the_scaling_rule() {
        let c = shadow_scale(ChangeScope::Config, 8, 10);
        assert_eq!((c.instances, c.first_share, c.full_stack), (1, 5, false));
        assert!(c.reason.contains("min(10, 5) = 5"), "{}", c.reason);
        assert_eq!(shadow_scale(ChangeScope::Config, 8, 2).first_share, 2);
        let v = shadow_scale(ChangeScope::Version, 8, 10);
        assert_eq!((v.instances, v.first_share, v.full_stack), (4, 10, false));
        assert_eq!(shadow_scale(ChangeScope::Version, 1, 10).instances, 2);
        assert_eq!(shadow_scale(ChangeScope::Version, 3, 10).instances, 2);
        let d = shadow_scale(ChangeScope::Data, 8, 10);
        assert_eq!((d.instances, d.first_share, d.full_stack), (8, 10, true));
        assert_eq!(shadow_scale(ChangeScope::Data, 0, 10).instances, 1);
        assert!(d.reason.contains("full stack"));
    }
}
