//! The planner over a run of ticks with the `log` actuator's outcome: every action
//! succeeds as a dry run. `eval` (and replay) use it to write `decisions.jsonl`: what the
//! service would have decided, tick by tick, on a recorded dataset.
//!
//! A created shadow is taken through provisioning and syncing to ready at once (the log
//! actuator reports each step done); retire, expire and promote move it to their state;
//! causes are added and dropped. The shadows are kept between ticks, so upkeep (grace,
//! expiry, idle scale-down) runs as it would live.

use std::collections::BTreeMap;

use harbinger_core::shadow::{Shadow, ShadowState, transition};
use harbinger_core::{Host, HostId, HostTransition, Resource, ShadowId, TimestampMs, TransitionKind};

use crate::input::{Budget, HostView, PlanInput, ResourceView, Trigger};
use crate::output::{ActionKind, Decision, Plan};
use crate::planner::plan;

/// One host's state at a tick, as the risk step left it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostTick {
    /// Combined risk (0 when silent).
    pub risk: f64,
    /// Failure probability (0 when silent).
    pub probability: f64,
    /// How soon the failure is expected, in [0, 1] (1 when unknown).
    pub imminence: f64,
    /// In the alerting state.
    pub alerting: bool,
}

/// The planner driven tick by tick, with every action applied as the log actuator would.
#[derive(Debug)]
pub struct DryRun {
    hosts: Vec<HostView>,
    index: BTreeMap<HostId, usize>,
    resources: Vec<ResourceView>,
    shadows: BTreeMap<ShadowId, Shadow>,
    budget: Budget,
    decisions: Vec<Decision>,
}

impl DryRun {
    /// A run over an inventory. Hosts not in `hosts` that appear in transitions are
    /// ignored (they have no capacity or failure domain to plan with).
    pub fn new(hosts: &[Host], resources: &[Resource], budget: Budget) -> Self {
        let hosts: Vec<HostView> = hosts.iter().map(HostView::from).collect();
        let index = hosts.iter().enumerate().map(|(i, h)| (h.id.clone(), i)).collect();
        let resources = resources.iter().map(ResourceView::from).collect();
        DryRun { hosts, index, resources, shadows: BTreeMap::new(), budget, decisions: Vec::new() }
    }

    /// One tick: updates each inventory host from `state(host)`, turns the transitions
    /// into triggers, plans, and applies the plan. Plans only when something can change
    /// (a transition, or live shadows whose upkeep may be due).
    pub fn tick(&mut self, now: TimestampMs, transitions: &[HostTransition], state: impl Fn(&HostId) -> Option<HostTick>) {
        for h in &mut self.hosts {
            let s = state(&h.id).unwrap_or(HostTick { risk: 0.0, probability: 0.0, imminence: 1.0, alerting: false });
            h.risk = s.risk;
            h.failure_probability = s.probability;
            h.imminence = s.imminence;
            h.alerting = s.alerting;
        }
        let mut triggers = Vec::new();
        for t in transitions {
            let Some(&i) = self.index.get(&t.host) else { continue };
            match t.kind {
                TransitionKind::Entered => {
                    triggers.push(Trigger::HostAlert { host: t.host.clone(), risk: t.risk, probability: t.failure_probability });
                }
                TransitionKind::Cleared => {
                    self.hosts[i].alert_cleared_at = Some(t.at);
                    triggers.push(Trigger::HostCleared { host: t.host.clone() });
                }
            }
        }
        let down = self.hosts.iter().any(|h| !h.up);
        if triggers.is_empty() && !down && !self.shadows.values().any(Shadow::is_live) {
            return;
        }
        let input = PlanInput {
            now,
            hosts: self.hosts.clone(),
            resources: self.resources.clone(),
            shadows: self.shadows.values().cloned().collect(),
            triggers,
            budget: self.budget.clone(),
        };
        let p = plan(&input);
        self.apply(&p);
        self.decisions.extend(p.decisions());
    }

    fn apply(&mut self, p: &Plan) {
        for a in &p.actions {
            match &a.kind {
                ActionKind::CreateShadow { shadow } => {
                    let mut s = shadow.clone();
                    for next in [ShadowState::Provisioning, ShadowState::Syncing, ShadowState::Ready] {
                        // A planned shadow can always walk to ready.
                        let _moved = transition(&mut s, next, p.now, None);
                    }
                    self.shadows.insert(s.id.clone(), s);
                }
                ActionKind::RetireShadow { shadow, state } => self.move_to(shadow, *state, p.now),
                ActionKind::ExpireShadow { shadow } => self.move_to(shadow, ShadowState::Expired, p.now),
                ActionKind::PromoteShadow { shadow } => self.move_to(shadow, ShadowState::Promoted, p.now),
                ActionKind::AddCause { shadow, cause } => {
                    if let Some(s) = self.shadows.get_mut(shadow)
                        && !s.causes.contains(cause)
                    {
                        s.causes.push(cause.clone());
                        s.updated_at = p.now;
                    }
                }
                ActionKind::DropCause { shadow, cause } => {
                    if let Some(s) = self.shadows.get_mut(shadow) {
                        s.causes.retain(|c| c != cause);
                        s.updated_at = p.now;
                    }
                }
            }
        }
    }

    fn move_to(&mut self, id: &ShadowId, state: ShadowState, now: TimestampMs) {
        if let Some(s) = self.shadows.get_mut(id) {
            // The planner only plans moves the lifecycle allows; a refused one leaves it.
            let _moved = transition(s, state, now, None);
        }
    }

    /// Marks a host failed (`false`: its ready shadows are promoted at the next tick) or
    /// back in service. Unknown hosts are ignored.
    pub fn set_up(&mut self, host: &HostId, up: bool) {
        if let Some(&i) = self.index.get(host) {
            self.hosts[i].up = up;
        }
    }

    /// Every decision so far, in time order.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    /// Every shadow so far (terminal ones included), by id.
    pub fn shadows(&self) -> impl Iterator<Item = &Shadow> {
        self.shadows.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, zone: &str) -> Host {
        Host { host: HostId::new(id), zone: zone.into(), rack: String::new(), cpu_cores: 16.0, mem_gb: 64.0 }
    }

    fn res(id: &str, host: &str, crit: u8) -> Resource {
        Resource {
            id: id.into(),
            kind: "database".into(),
            host: HostId::new(host),
            criticality: crit,
            cpu_cores: 2.0,
            mem_gb: 8.0,
            depends_on: Vec::new(),
            state: serde_json::Value::Null,
        }
    }

    fn tr(host: &str, at: i64, kind: TransitionKind) -> HostTransition {
        HostTransition { host: HostId::new(host), at, kind, risk: 0.9, failure_probability: 0.9 }
    }

    #[test]
    fn a_host_alert_plans_a_ready_shadow_that_retires_after_the_grace() {
        let hosts = [host("a1", "a"), host("b1", "b"), host("b2", "b")];
        let budget = Budget { retire_grace_ms: 10 * 60_000, ..Budget::default() };
        let mut run = DryRun::new(&hosts, &[res("db-1", "a1", 3), res("web-1", "a1", 0)], budget);
        let risky = |h: &HostId| {
            Some(if h.as_str() == "a1" {
                HostTick { risk: 0.9, probability: 0.9, imminence: 1.0, alerting: true }
            } else {
                HostTick { risk: 0.01, probability: 0.01, imminence: 1.0, alerting: false }
            })
        };
        run.tick(0, &[], risky);
        assert!(run.decisions().is_empty(), "nothing happened, nothing decided");
        run.tick(60_000, &[tr("a1", 60_000, TransitionKind::Entered)], risky);
        let planned: Vec<_> = run.decisions().iter().filter(|d| d.kind == "shadow_planned").collect();
        assert_eq!(planned.len(), 1, "only the critical resource: {:?}", run.decisions());
        assert_eq!(planned[0].resource.as_ref().map(harbinger_core::ResourceId::as_str), Some("db-1"));
        assert_eq!(planned[0].target_host.as_ref().map(|h| h.as_str().starts_with('b')), Some(true), "another zone");
        assert_eq!(run.shadows().map(|s| s.state).collect::<Vec<_>>(), [ShadowState::Ready]);
        let calm = |_: &HostId| Some(HostTick { risk: 0.01, probability: 0.01, imminence: 1.0, alerting: false });
        run.tick(120_000, &[tr("a1", 120_000, TransitionKind::Cleared)], calm);
        run.tick(5 * 60_000, &[], calm);
        assert_eq!(run.shadows().next().map(|s| s.state), Some(ShadowState::Ready), "inside the grace");
        run.tick(130 * 60_000 / 10, &[], calm);
        assert_eq!(run.shadows().next().map(|s| s.state), Some(ShadowState::Retired), "after the grace");
        assert_eq!(run.decisions().last().map(|d| d.kind.as_str()), Some("shadow_retired"));
    }

    #[test]
    fn a_failed_primary_fails_over_to_its_ready_shadow() {
        let hosts = [host("a1", "a"), host("b1", "b")];
        let mut run = DryRun::new(&hosts, &[res("db-1", "a1", 3)], Budget::default());
        let risky = |h: &HostId| {
            let a = h.as_str() == "a1";
            Some(HostTick { risk: if a { 0.9 } else { 0.02 }, probability: if a { 0.9 } else { 0.02 }, imminence: 1.0, alerting: a })
        };
        run.tick(60_000, &[tr("a1", 60_000, TransitionKind::Entered)], risky);
        run.set_up(&HostId::new("a1"), false);
        run.tick(120_000, &[], |_| None);
        let kinds: Vec<&str> = run.decisions().iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(kinds, ["shadow_planned", "failover", "shadow_promoted"]);
        assert_eq!(run.shadows().next().map(|s| (s.state, s.host.as_str())), Some((ShadowState::Promoted, "b1")));
    }
}
