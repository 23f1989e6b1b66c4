//! The planner: upkeep of the existing shadows, then the new demands in priority order.
//!
//! [`plan`] runs three phases, and the decisions come out in that order:
//!
//! 1. **Upkeep** of every live shadow, by shadow id: failover when its primary is down,
//!    retirement when it is stale (resource gone or moved, its host down), expiry,
//!    retirement once its causes no longer hold, idle scale-down; then retirement of the
//!    lowest-priority shadows if the budget was lowered below the live count. Upkeep
//!    comes first so the capacity and budget it frees serve this plan's demands.
//! 2. **Demands** from the triggers (sorted, so their order is irrelevant): which
//!    resources want a shadow, with which causes and at which priority. Triggers naming
//!    an unknown host or resource, and resources below the minimum criticality, are
//!    skipped with a decision saying so.
//! 3. **Placement**, demand by demand in (tier, priority, resource id) order: a cause is
//!    added to an existing live shadow, or a new shadow is placed (pre-empting the
//!    lowest-priority shadow when the budget is full), or a skip says why not.
//!
//! # Choices the rules leave open
//! - A resource several triggers ask for in one plan gets one shadow carrying every
//!   cause, at the highest of their priorities; a resource that already has a live
//!   shadow gets the new causes added (`AddCause`), or a skip when none is new.
//! - Expiry does not wait for causes: a live shadow past `expires_at` expires even if
//!   they still hold (a later trigger plans a fresh one). Only a failover comes first.
//! - A risk cause only counts as cleared once `alert_cleared_at` is known: a host that is
//!   not alerting but has no clear time keeps its risk-held shadows (until idle
//!   scale-down or expiry).
//! - When an alert resolves, shadows held by it lose it: retired if nothing else holds
//!   them, a `DropCause` if something does. If only the alert held a shadow but its
//!   primary is alerting, risk takes over: `AddCause` of the primary's risk, then
//!   `DropCause` of the alert, so the shadow later retires by the risk grace rule.
//! - A promotion takes precedence over expiry; a shadow that is not ready when its
//!   primary is down waits (a skip decision each plan) unless it expires.
//! - Shadows created in this plan, and live shadows of resources it has demands for, are
//!   never pre-empted by it. Pre-emption happens only when the demand has a place to go; the
//!   capacity the pre-empted shadow frees is not counted for that placement.
//! - A new shadow never goes to a host that held a live shadow of the resource at the
//!   start of the plan, even one this plan ends.
//! - If more shadows are live than the budget allows (it was lowered), the
//!   lowest-priority ones are retired during upkeep.
//! - `HostCleared` needs no action: risk-held shadows retire from the host's
//!   `alert_cleared_at` once the grace has passed, in whichever plan that happens.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use harbinger_core::{HostId, ResourceId, TimestampMs};

use crate::input::{Budget, HostView, PlanInput, ResourceView, Trigger};
use crate::output::{Action, ActionKind, Decision, Plan, kind};
use crate::place::{Capacity, Domain, Fit};
use harbinger_core::shadow::{Cause, Shadow, ShadowState};

/// Weight of a resource's criticality 0..=3 in its priority.
const WEIGHT: [f64; 4] = [0.25, 0.5, 0.75, 1.0];
/// Failure probability assumed for causes that carry no risk (alerts, events, manual),
/// unless the host's own is higher.
const NO_RISK_PROBABILITY: f64 = 0.5;

/// Computes the plan for one tick. Pure and deterministic: the same input (in any
/// order) gives the same plan.
pub fn plan(input: &PlanInput) -> Plan {
    let mut p = Planner::new(input);
    p.upkeep();
    let demands = p.demands();
    for d in &demands {
        p.place(d);
    }
    Plan { now: input.now, actions: p.actions, skipped: p.skipped, skipped_at: p.skipped_at }
}

/// A resource that wants a shadow in this plan.
#[derive(Debug)]
struct Demand {
    /// Resource position.
    res: usize,
    /// 0: critical resource on a host above the critical probability; 1: the rest.
    tier: u8,
    /// The highest priority of its causes.
    priority: f64,
    /// Its causes, in trigger order, without duplicates.
    causes: Vec<Want>,
    /// Index of the cause with the highest priority.
    lead: usize,
}

/// One cause of a demand.
#[derive(Debug)]
struct Want {
    cause: Cause,
    /// What happened, for the reason.
    why: String,
    /// Failure probability used.
    p: f64,
    imminence: f64,
}

struct Planner<'a> {
    now: TimestampMs,
    budget: &'a Budget,
    /// Sorted by id.
    hosts: Vec<&'a HostView>,
    /// Position in `hosts` of each host id (a lookup per resource and shadow: a binary
    /// search compares ~14 ids each over a fleet of 10,000).
    host_index: foldhash::HashMap<&'a HostId, usize>,
    /// Sorted by id.
    resources: Vec<&'a ResourceView>,
    /// Host position of each resource.
    res_host: Vec<Option<usize>>,
    /// Resource positions on each host, by id.
    on_host: Vec<Vec<usize>>,
    /// Sorted by id.
    shadows: Vec<&'a Shadow>,
    /// Host position of each shadow.
    shadow_host: Vec<Option<usize>>,
    /// Shadow positions of each resource, by shadow id (every state).
    by_resource: BTreeMap<&'a ResourceId, Vec<usize>>,
    /// Live at the start, ended by this plan (retired, expired, promoted).
    ended: Vec<bool>,
    /// Dealt with by a failover; the rest of upkeep leaves it alone.
    handled: Vec<bool>,
    /// A shadow of a resource this plan has a demand for; never pre-empted by it.
    protected: Vec<bool>,
    /// Causes added in this plan, by shadow position.
    added: BTreeMap<usize, Vec<Cause>>,
    /// Fingerprints of alerts resolved this tick.
    resolved: BTreeSet<&'a str>,
    triggers: Vec<&'a Trigger>,
    cap: Capacity,
    /// Live shadows after the decisions so far.
    live: usize,
    /// Pre-emption order of the shadows live at the start: priority, then id.
    victims: Vec<usize>,
    next_victim: usize,
    actions: Vec<Action>,
    skipped: Vec<Decision>,
    skipped_at: Vec<usize>,
}

fn sorted_by_id<T, K: Ord>(items: &[T], id: impl Fn(&T) -> &K) -> Vec<&T> {
    let mut v: Vec<&T> = items.iter().collect();
    v.sort_by(|a, b| id(a).cmp(id(b)));
    v.dedup_by(|a, b| id(a) == id(b));
    v
}

/// A probability or imminence in [0, 1]; `default` when not a number.
fn unit(x: f64, default: f64) -> f64 {
    if x.is_finite() { x.clamp(0.0, 1.0) } else { default }
}

impl<'a> Planner<'a> {
    fn new(input: &'a PlanInput) -> Self {
        let budget = &input.budget;
        let hosts = sorted_by_id(&input.hosts, |h| &h.id);
        let resources = sorted_by_id(&input.resources, |r| &r.id);
        let shadows = sorted_by_id(&input.shadows, |s| &s.id);
        let host_index: foldhash::HashMap<&HostId, usize> = hosts.iter().enumerate().map(|(i, h)| (&h.id, i)).collect();
        let pos = |id: &HostId| host_index.get(id).copied();
        let res_host: Vec<Option<usize>> = resources.iter().map(|r| pos(&r.host)).collect();
        let shadow_host: Vec<Option<usize>> = shadows.iter().map(|s| pos(&s.host)).collect();
        let mut on_host = vec![Vec::new(); hosts.len()];
        let mut cap = Capacity::new(&hosts, budget);
        for (i, r) in resources.iter().enumerate() {
            if let Some(h) = res_host[i] {
                on_host[h].push(i);
                cap.take(h, r.cpu_cores, r.mem_gb);
            }
        }
        let mut by_resource: BTreeMap<&ResourceId, Vec<usize>> = BTreeMap::new();
        let mut live = 0;
        for (i, s) in shadows.iter().enumerate() {
            by_resource.entry(&s.resource).or_default().push(i);
            if s.is_live() {
                live += 1;
                if let Some(h) = shadow_host[i] {
                    cap.take(h, s.cpu_cores, s.mem_gb);
                }
            }
        }
        let mut triggers: Vec<&Trigger> = input.triggers.iter().collect();
        triggers.sort_by(|a, b| {
            let (x, y) = (trigger_values(a), trigger_values(b));
            trigger_order(a).cmp(&trigger_order(b)).then(x.0.total_cmp(&y.0)).then(x.1.total_cmp(&y.1))
        });
        let resolved = triggers
            .iter()
            .filter_map(|t| match t {
                Trigger::AlertResolved { fingerprint } => Some(fingerprint.as_str()),
                _ => None,
            })
            .collect();
        let n = shadows.len();
        Planner {
            now: input.now,
            budget,
            hosts,
            host_index,
            resources,
            res_host,
            on_host,
            shadows,
            shadow_host,
            by_resource,
            ended: vec![false; n],
            handled: vec![false; n],
            protected: vec![false; n],
            added: BTreeMap::new(),
            resolved,
            triggers,
            cap,
            live,
            victims: Vec::new(),
            next_victim: 0,
            actions: Vec::new(),
            skipped: Vec::new(),
            skipped_at: Vec::new(),
        }
    }

    fn host_pos(&self, id: &HostId) -> Option<usize> {
        self.host_index.get(id).copied()
    }

    fn resource_pos(&self, id: &ResourceId) -> Option<usize> {
        self.resources.binary_search_by(|r| r.id.cmp(id)).ok()
    }

    fn act(&mut self, key: String, kind: ActionKind, decision: Decision) {
        self.actions.push(Action { key, kind, decision });
    }

    fn note(&mut self, decision: Decision) {
        self.skipped_at.push(self.actions.len());
        self.skipped.push(decision);
    }

    /// Whether shadow `i` is live now (live at the start and not ended by this plan).
    fn is_live(&self, i: usize) -> bool {
        self.shadows[i].is_live() && !self.ended[i]
    }

    /// Live shadows of `res` whose primary is where the resource runs.
    fn covering(&self, res: &ResourceView) -> Vec<usize> {
        let all = self.by_resource.get(&res.id).map_or(&[][..], Vec::as_slice);
        all.iter().copied().filter(|&i| self.is_live(i) && self.shadows[i].primary == res.host).collect()
    }

    // ---- upkeep -------------------------------------------------------------------

    fn upkeep(&mut self) {
        let mut failed_over: BTreeSet<usize> = BTreeSet::new();
        for i in 0..self.shadows.len() {
            if !self.is_live(i) || self.handled[i] {
                continue;
            }
            let s = self.shadows[i];
            let Some(ri) = self.resource_pos(&s.resource) else {
                self.end(i, ShadowState::Retired, format!("{} is no longer in the inventory", s.resource));
                continue;
            };
            let r = self.resources[ri];
            if r.host != s.primary {
                self.end(i, ShadowState::Retired, format!("{} now runs on {}, not on {}", r.id, r.host, s.primary));
                continue;
            }
            if s.host == s.primary {
                self.end(i, ShadowState::Retired, format!("shadow is on its own primary {}", s.host));
                continue;
            }
            match self.shadow_host[i].map(|h| self.hosts[h]) {
                None => {
                    self.end(i, ShadowState::Failed, format!("shadow host {} is not in the inventory: the shadow is lost", s.host));
                    continue;
                }
                Some(h) if !h.up => {
                    self.end(i, ShadowState::Failed, format!("shadow host {} is down: the shadow is lost", s.host));
                    continue;
                }
                Some(_) => {}
            }
            let Some(p) = self.res_host[ri] else {
                self.end(i, ShadowState::Retired, format!("primary {} is not in the inventory", s.primary));
                continue;
            };
            if !self.hosts[p].up {
                if failed_over.insert(ri) {
                    self.failover(ri, p);
                }
                if self.is_live(i) && !self.handled[i] && self.expired(s) {
                    self.expire(i);
                }
                continue;
            }
            if self.expired(s) {
                self.expire(i);
                continue;
            }
            self.release(i, p);
            if !self.is_live(i) {
                continue;
            }
            let idle = self.now.saturating_sub(s.last_used_at);
            if s.state == ShadowState::Ready && idle >= self.budget.idle_ms && !self.hosts[p].alerting {
                let reason = format!(
                    "ready but unused for {} >= idle {} and {} not alerting: scale down",
                    span(idle),
                    span(self.budget.idle_ms),
                    s.primary
                );
                self.end(i, ShadowState::Retired, reason);
            }
        }
        self.trim();
    }

    /// Ends live shadow `i` in `state` (retired or failed).
    fn end(&mut self, i: usize, state: ShadowState, reason: String) {
        let s = self.shadows[i];
        let d = Decision::about(self.now, kind::SHADOW_RETIRED, s, reason);
        self.act(format!("retire:{}", s.id), ActionKind::RetireShadow { shadow: s.id.clone(), state }, d);
        self.release_capacity(i);
    }

    fn release_capacity(&mut self, i: usize) {
        let s = self.shadows[i];
        self.ended[i] = true;
        self.live -= 1;
        if let Some(h) = self.shadow_host[i] {
            self.cap.take(h, -s.cpu_cores, -s.mem_gb);
        }
    }

    fn expired(&self, s: &Shadow) -> bool {
        s.expires_at.is_some_and(|t| self.now >= t)
    }

    fn expire(&mut self, i: usize) {
        let s = self.shadows[i];
        let at = s.expires_at.unwrap_or(self.now);
        let ago = if self.now == at { "now".to_string() } else { format!("{} ago", span(self.now - at)) };
        let reason = format!("time to live {} ended {ago}", span(at - s.created_at));
        let d = Decision::about(self.now, kind::SHADOW_EXPIRED, s, reason);
        self.act(format!("expire:{}", s.id), ActionKind::ExpireShadow { shadow: s.id.clone() }, d);
        self.release_capacity(i);
    }

    /// Primary `p` of resource `ri` is down: promote its best ready shadow, or say why
    /// none can be yet.
    fn failover(&mut self, ri: usize, p: usize) {
        let r = self.resources[ri];
        let primary = self.hosts[p];
        let all = self.by_resource.get(&r.id).map_or(&[][..], Vec::as_slice);
        // Live shadows of this primary on hosts that are up.
        let members: Vec<(usize, usize)> = all
            .iter()
            .filter(|&&j| self.is_live(j) && self.shadows[j].primary == primary.id)
            .filter_map(|&j| self.shadow_host[j].filter(|&h| h != p && self.hosts[h].up).map(|h| (j, h)))
            .collect();
        if all.iter().any(|&j| self.shadows[j].state == ShadowState::Promoted && self.shadows[j].primary == primary.id) {
            // Failed over on an earlier tick; the engine has yet to move the resource.
            members.iter().for_each(|&(m, _)| self.handled[m] = true);
            return;
        }
        let ready: Vec<(usize, usize)> = members.iter().copied().filter(|&(j, _)| self.shadows[j].state == ShadowState::Ready).collect();
        let best = ready.iter().copied().min_by(|&(a, ha), &(b, hb)| {
            let (x, y) = (self.hosts[ha], self.hosts[hb]);
            (x.alerting, x.zone == primary.zone)
                .cmp(&(y.alerting, y.zone == primary.zone))
                .then(x.risk.total_cmp(&y.risk))
                .then(ha.cmp(&hb))
                .then(a.cmp(&b))
        });
        if let Some((j, h)) = best {
            let s = self.shadows[j];
            let target = self.hosts[h];
            let reason = format!("primary {} is down: {} fails over to its ready shadow on {}", primary.id, r.id, target.id);
            self.note(Decision::new(self.now, kind::FAILOVER, primary.id.clone(), reason).resource(&r.id).target(&target.id).shadow(&s.id));
            let place = if target.zone == primary.zone { "the same zone" } else { "another zone" };
            let alerting = if target.alerting { ", alerting" } else { "" };
            let reason = format!(
                "ready on {} (risk {:.2}{alerting}) in {place} ({}); best of {} ready shadows",
                target.id,
                target.risk,
                target.zone,
                ready.len()
            );
            let d = Decision::about(self.now, kind::SHADOW_PROMOTED, s, reason);
            self.act(format!("promote:{}", s.id), ActionKind::PromoteShadow { shadow: s.id.clone() }, d);
            // The promoted shadow becomes the resource: it keeps its capacity.
            self.ended[j] = true;
            self.live -= 1;
            members.iter().for_each(|&(m, _)| self.handled[m] = true);
            return;
        }
        for (m, _) in members {
            let s = self.shadows[m];
            if self.expired(s) {
                continue;
            }
            let reason = format!("cannot promote yet: shadow is {}, not ready; primary {} is down", s.state, primary.id);
            self.note(Decision::about(self.now, kind::SHADOW_SKIPPED, s, reason));
            self.handled[m] = true;
        }
    }

    /// Why cause `c` no longer holds, if it does not.
    fn released(&self, c: &Cause) -> Option<String> {
        match c {
            Cause::Risk { host } => {
                let h = self.hosts[self.host_pos(host)?];
                let cleared = h.alert_cleared_at.filter(|_| !h.alerting)?;
                let clear_for = self.now.saturating_sub(cleared);
                let grace = self.budget.retire_grace_ms;
                (clear_for >= grace).then(|| format!("{host} clear for {} >= grace {}", span(clear_for), span(grace)))
            }
            Cause::Alert { fingerprint } => self.resolved.contains(fingerprint.as_str()).then(|| format!("alert {fingerprint} resolved")),
            Cause::Event { .. } | Cause::Manual { .. } => None,
        }
    }

    /// Retires shadow `i` once none of its causes holds; drops resolved alerts from it
    /// otherwise. `p` is its primary (up).
    fn release(&mut self, i: usize, p: usize) {
        let s = self.shadows[i];
        let primary = self.hosts[p];
        if s.causes.is_empty() {
            return;
        }
        let released: Vec<Option<String>> = s.causes.iter().map(|c| self.released(c)).collect();
        let resolved: Vec<&Cause> =
            s.causes.iter().filter(|c| matches!(c, Cause::Alert { fingerprint } if self.resolved.contains(fingerprint.as_str()))).collect();
        if released.iter().all(Option::is_some) {
            if !primary.alerting {
                let mut reason: Vec<String> = released.into_iter().flatten().collect();
                if !resolved.is_empty() {
                    reason.push(format!("{} not alerting", primary.id));
                }
                self.end(i, ShadowState::Retired, reason.join("; "));
                return;
            }
            // Only resolved alerts held it but the primary is alerting: risk takes over.
            let risk = Cause::Risk { host: primary.id.clone() };
            let reason = format!(
                "{} but {} is alerting (risk {:.2}): its risk holds the shadow",
                released.into_iter().flatten().collect::<Vec<_>>().join("; "),
                primary.id,
                primary.risk
            );
            self.add_cause(i, risk, reason);
        }
        let holding: Vec<String> =
            s.causes.iter().chain(self.added.get(&i).into_iter().flatten()).filter(|c| !resolved.contains(c)).map(Cause::key).collect();
        for c in resolved {
            let Cause::Alert { fingerprint } = c else { continue };
            let reason = format!("alert {fingerprint} resolved; still held by {}", holding.join(", "));
            let d = Decision::about(self.now, kind::CAUSE_DROPPED, s, reason).cause(c);
            let key = format!("drop:{}:{}@{}", s.id, c.key(), self.now);
            self.act(key, ActionKind::DropCause { shadow: s.id.clone(), cause: c.clone() }, d);
        }
    }

    fn add_cause(&mut self, i: usize, cause: Cause, reason: String) {
        let s = self.shadows[i];
        let d = Decision::about(self.now, kind::CAUSE_ADDED, s, reason).cause(&cause);
        let key = format!("cause:{}:{}@{}", s.id, cause.key(), self.now);
        self.added.entry(i).or_default().push(cause.clone());
        self.act(key, ActionKind::AddCause { shadow: s.id.clone(), cause }, d);
    }

    /// Retires the lowest-priority shadows while more are live than the budget allows
    /// (the budget was lowered), and fixes the pre-emption order for the demands.
    fn trim(&mut self) {
        let mut order: Vec<usize> = (0..self.shadows.len()).filter(|&i| self.is_live(i)).collect();
        order.sort_by(|&a, &b| self.shadows[a].priority.total_cmp(&self.shadows[b].priority).then(a.cmp(&b)));
        let max = self.budget.max_live_shadows;
        let over = self.live.saturating_sub(max).min(order.len());
        for &i in &order[..over] {
            let reason = format!("over budget: {} live shadows > max {max}; lowest priority {:.2}", self.live, self.shadows[i].priority);
            self.end(i, ShadowState::Retired, reason);
        }
        self.victims = order.split_off(over);
    }

    // ---- demands ------------------------------------------------------------------

    /// The resources the triggers want shadows for, in placement order.
    fn demands(&mut self) -> Vec<Demand> {
        let mut want: BTreeMap<usize, Demand> = BTreeMap::new();
        let triggers = std::mem::take(&mut self.triggers);
        for t in &triggers {
            match t {
                Trigger::HostAlert { host, risk, probability } => {
                    let why = format!("{host} alerting (risk {risk:.2}, p {probability:.2})");
                    self.for_host(host, Cause::Risk { host: host.clone() }, why, Some(*probability), &mut want);
                }
                Trigger::HostCleared { host } => {
                    if self.host_pos(host).is_none() {
                        self.note(Decision::new(
                            self.now,
                            kind::SHADOW_SKIPPED,
                            host.clone(),
                            format!("{host} cleared, but the host is unknown"),
                        ));
                    }
                }
                Trigger::AlertFiring { fingerprint, host, resource, summary } => {
                    let cause = Cause::Alert { fingerprint: fingerprint.clone() };
                    let why = if summary.is_empty() {
                        format!("alert {fingerprint} firing")
                    } else {
                        format!("alert {fingerprint} firing: {summary}")
                    };
                    self.for_target(resource.as_ref(), host.as_ref(), cause, why, &mut want);
                }
                Trigger::AlertResolved { .. } => {}
                Trigger::Event { kind: k, id, host, resource } => {
                    let cause = Cause::Event { kind: k.clone(), id: id.clone() };
                    self.for_target(resource.as_ref(), host.as_ref(), cause, format!("event {k} {id}"), &mut want);
                }
                Trigger::Manual { resource, by } => {
                    self.for_resource(resource, Cause::Manual { by: by.clone() }, format!("requested by {by}"), &mut want);
                }
            }
        }
        self.triggers = triggers;
        let mut demands: Vec<Demand> = want.into_values().collect();
        demands.sort_by(|a, b| a.tier.cmp(&b.tier).then(b.priority.total_cmp(&a.priority)).then(a.res.cmp(&b.res)));
        for d in &demands {
            for i in self.covering(self.resources[d.res]) {
                self.protected[i] = true;
            }
        }
        demands
    }

    fn for_target(
        &mut self,
        resource: Option<&ResourceId>,
        host: Option<&HostId>,
        cause: Cause,
        why: String,
        want: &mut BTreeMap<usize, Demand>,
    ) {
        match (resource, host) {
            (Some(r), _) => self.for_resource(r, cause, why, want),
            (None, Some(h)) => self.for_host(h, cause, why, None, want),
            (None, None) => {
                let reason = format!("{why}, but the trigger names no host and no resource");
                self.note(Decision::new(self.now, kind::SHADOW_SKIPPED, HostId::default(), reason).cause(&cause));
            }
        }
    }

    /// Every resource of `host` with at least the minimum criticality.
    fn for_host(&mut self, host: &HostId, cause: Cause, why: String, p: Option<f64>, want: &mut BTreeMap<usize, Demand>) {
        let Some(h) = self.host_pos(host) else {
            let reason = format!("{why}, but host {host} is unknown");
            self.note(Decision::new(self.now, kind::SHADOW_SKIPPED, host.clone(), reason).cause(&cause));
            return;
        };
        let min = self.budget.min_criticality;
        for ri in self.on_host[h].clone() {
            let r = self.resources[ri];
            if r.criticality >= min {
                self.want(ri, h, cause.clone(), why.clone(), p, want);
            } else {
                let reason = format!("{why}, but {} criticality {} < min {min}", r.id, r.criticality);
                self.note(Decision::new(self.now, kind::SHADOW_SKIPPED, host.clone(), reason).resource(&r.id).cause(&cause));
            }
        }
    }

    /// One resource, whatever its criticality.
    fn for_resource(&mut self, id: &ResourceId, cause: Cause, why: String, want: &mut BTreeMap<usize, Demand>) {
        let Some(ri) = self.resource_pos(id) else {
            let reason = format!("{why}, but resource {id} is unknown");
            self.note(Decision::new(self.now, kind::SHADOW_SKIPPED, HostId::default(), reason).resource(id).cause(&cause));
            return;
        };
        let r = self.resources[ri];
        let Some(h) = self.res_host[ri] else {
            let reason = format!("{why}, but {id} runs on unknown host {}", r.host);
            self.note(Decision::new(self.now, kind::SHADOW_SKIPPED, r.host.clone(), reason).resource(id).cause(&cause));
            return;
        };
        self.want(ri, h, cause, why, None, want);
    }

    /// Adds a cause to the demand for resource `ri` on host `h`. `p` is the failure
    /// probability the cause carries (risk); others use the host's, at least 0.5.
    fn want(&self, ri: usize, h: usize, cause: Cause, why: String, p: Option<f64>, want: &mut BTreeMap<usize, Demand>) {
        let r = self.resources[ri];
        let host = self.hosts[h];
        let p = match p {
            Some(p) => unit(p, unit(host.failure_probability, 0.0)),
            None => unit(host.failure_probability, 0.0).max(NO_RISK_PROBABILITY),
        };
        let imminence = unit(host.imminence, 1.0);
        let crit = r.criticality.min(3);
        let priority = WEIGHT[usize::from(crit)] * p * imminence;
        let tier = if crit == 3 && p >= self.budget.critical_probability { 0 } else { 1 };
        let d = want.entry(ri).or_insert_with(|| Demand { res: ri, tier, priority, causes: Vec::new(), lead: 0 });
        if d.causes.iter().any(|w| w.cause == cause) {
            return;
        }
        if d.causes.is_empty() || priority > d.priority {
            d.priority = priority;
            d.lead = d.causes.len();
        }
        d.tier = d.tier.min(tier);
        d.causes.push(Want { cause, why, p, imminence });
    }

    // ---- placement ----------------------------------------------------------------

    fn place(&mut self, d: &Demand) {
        let r = self.resources[d.res];
        let Some(p) = self.res_host[d.res] else { return };
        let lead = &d.causes[d.lead];
        let covering = self.covering(r);
        if !covering.is_empty() {
            self.add_causes(d, &covering);
            return;
        }
        let now = self.now;
        let skip = |reason: String| {
            Decision::new(now, kind::SHADOW_SKIPPED, r.host.clone(), reason).resource(&r.id).priority(d.priority).cause(&lead.cause)
        };
        let mut victim = None;
        if self.live >= self.budget.max_live_shadows {
            let full = format!("budget full ({} live shadows)", self.live);
            let reason = match self.lowest_victim() {
                Some(v) if self.shadows[v].priority < d.priority => {
                    victim = Some(v);
                    None
                }
                Some(v) => Some(format!("{full}, lowest priority {:.2} >= {:.2}", self.shadows[v].priority, d.priority)),
                None => Some(format!("{full}, none can be pre-empted: all were planned or asked for in this plan")),
            };
            if let Some(reason) = reason {
                let decision = skip(reason);
                self.note(decision);
                return;
            }
        }
        let all = self.by_resource.get(&r.id).map_or(&[][..], Vec::as_slice);
        let holding: Vec<usize> = all.iter().filter(|&&i| self.shadows[i].is_live()).filter_map(|&i| self.shadow_host[i]).collect();
        let Some(fit) = self.cap.find(p, r.cpu_cores, r.mem_gb, &holding) else {
            let x = self.cap.excluded(&self.hosts, p, r.cpu_cores, r.mem_gb, &holding, self.budget);
            let decision = skip(format!("nothing fits {} (cpu {}, mem {} GB): {x}", r.id, r.cpu_cores, r.mem_gb));
            self.note(decision);
            return;
        };
        if let Some(v) = victim {
            let s = self.shadows[v];
            let reason = format!(
                "budget full ({} live shadows): priority {:.2} < {:.2} of {} on {}",
                self.live, s.priority, d.priority, r.id, r.host
            );
            let retire = ActionKind::RetireShadow { shadow: s.id.clone(), state: ShadowState::Retired };
            self.act(format!("retire:{}", s.id), retire, Decision::about(self.now, kind::SHADOW_PREEMPTED, s, reason));
            self.release_capacity(v);
        }
        self.create(d, p, fit, &holding);
    }

    /// The live shadow a demand may pre-empt: lowest priority, then id, not protected.
    fn lowest_victim(&mut self) -> Option<usize> {
        while let Some(&v) = self.victims.get(self.next_victim) {
            if self.is_live(v) && !self.protected[v] {
                return Some(v);
            }
            self.next_victim += 1;
        }
        None
    }

    fn add_causes(&mut self, d: &Demand, covering: &[usize]) {
        let r = self.resources[d.res];
        let mut any = false;
        for &i in covering {
            let s = self.shadows[i];
            for w in &d.causes {
                let known = s.causes.contains(&w.cause) || self.added.get(&i).is_some_and(|a| a.contains(&w.cause));
                if known {
                    continue;
                }
                let reason = format!("{} already shadowed on {} ({}): adds {} ({})", r.id, s.host, s.state, w.cause.key(), w.why);
                self.add_cause(i, w.cause.clone(), reason);
                any = true;
            }
        }
        if !any {
            let s = self.shadows[covering[0]];
            let causes: Vec<String> = d.causes.iter().map(|w| w.cause.key()).collect();
            let reason = format!("{} already shadowed on {} ({}) with {}", r.id, s.host, s.state, causes.join(", "));
            self.note(Decision::about(self.now, kind::SHADOW_SKIPPED, s, reason).cause(&d.causes[d.lead].cause));
        }
    }

    fn create(&mut self, d: &Demand, p: usize, fit: Fit, holding: &[usize]) {
        let r = self.resources[d.res];
        let primary = self.hosts[p];
        let target = self.hosts[fit.host];
        let id = format!("{}@{}#{}", r.id, target.id, self.now);
        let shadow = Shadow {
            id: id.as_str().into(),
            resource: r.id.clone(),
            primary: primary.id.clone(),
            host: target.id.clone(),
            state: ShadowState::Planned,
            causes: d.causes.iter().map(|w| w.cause.clone()).collect(),
            priority: d.priority,
            cpu_cores: r.cpu_cores,
            mem_gb: r.mem_gb,
            created_at: self.now,
            updated_at: self.now,
            last_used_at: self.now,
            expires_at: self.budget.ttl_ms.map(|t| self.now.saturating_add(t)),
            endpoint: None,
        };
        self.cap.take(fit.host, r.cpu_cores, r.mem_gb);
        self.live += 1;
        let lead = &d.causes[d.lead];
        let mut reason = d.causes.iter().map(|w| w.why.as_str()).collect::<Vec<_>>().join("; ");
        let crit = r.criticality.min(3);
        let _ = write!(
            reason,
            "; {} criticality {crit}, priority {:.2} (weight {:.2}, p {:.2}, imminence {:.2})",
            r.id,
            d.priority,
            WEIGHT[usize::from(crit)],
            lead.p,
            lead.imminence
        );
        if d.tier == 0 {
            let _ = write!(reason, ", critical first (p >= {:.2})", self.budget.critical_probability);
        }
        let _ = write!(reason, "; {}", self.placement(primary, target, fit, holding));
        let decision = Decision::new(self.now, kind::SHADOW_PLANNED, primary.id.clone(), reason)
            .resource(&r.id)
            .target(&target.id)
            .shadow(&shadow.id)
            .priority(d.priority)
            .cause(&lead.cause);
        self.act(format!("create:{id}"), ActionKind::CreateShadow { shadow }, decision);
    }

    /// Why `target` was chosen: `h042 lowest risk 0.02 in another zone (eu-b)`.
    fn placement(&self, primary: &HostView, target: &HostView, fit: Fit, holding: &[usize]) -> String {
        let risk = if fit.passed == 0 { "lowest risk" } else { "risk" };
        let mut out = match fit.domain {
            Domain::OtherZone => format!("{} {risk} {:.2} in another zone ({})", target.id, target.risk, target.zone),
            Domain::OtherRack => format!(
                "{} {risk} {:.2} in the same zone ({}) on another rack ({}, primary on {})",
                target.id, target.risk, target.zone, target.rack, primary.rack
            ),
        };
        if fit.passed > 0 {
            let noun = if fit.passed == 1 { "host" } else { "hosts" };
            let _ = write!(out, ", first with room after {} {noun} without capacity", fit.passed);
        }
        if fit.domain == Domain::OtherRack {
            out.push_str("; no host in another zone fits");
        }
        if !holding.is_empty() {
            let names: Vec<&str> = holding.iter().map(|&h| self.hosts[h].id.as_str()).collect();
            let _ = write!(out, "; not on {}, which held a shadow of it", names.join(", "));
        }
        out
    }
}

/// Sort key of a trigger: kind, then its names.
fn trigger_order(t: &Trigger) -> (u8, [&str; 4]) {
    fn host(x: &Option<HostId>) -> &str {
        x.as_ref().map_or("", HostId::as_str)
    }
    fn res(x: &Option<ResourceId>) -> &str {
        x.as_ref().map_or("", ResourceId::as_str)
    }
    match t {
        Trigger::HostAlert { host: h, .. } => (0, [h.as_str(), "", "", ""]),
        Trigger::HostCleared { host: h } => (1, [h.as_str(), "", "", ""]),
        Trigger::AlertFiring { fingerprint, host: h, resource, summary } => {
            (2, [fingerprint.as_str(), res(resource), host(h), summary.as_str()])
        }
        Trigger::AlertResolved { fingerprint } => (3, [fingerprint.as_str(), "", "", ""]),
        Trigger::Event { kind, id, host: h, resource } => (4, [kind.as_str(), id.as_str(), res(resource), host(h)]),
        Trigger::Manual { resource, by } => (5, [resource.as_str(), by.as_str(), "", ""]),
    }
}

/// Tie-break of triggers equal by [`trigger_order`]: the numbers they carry.
fn trigger_values(t: &Trigger) -> (f64, f64) {
    match t {
        Trigger::HostAlert { risk, probability, .. } => (*risk, *probability),
        _ => (0.0, 0.0),
    }
}

/// A duration in ms as `45m`, `1h30m`, `7d`, `250ms`: the two largest units.
fn span(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1_000 {
        return format!("{sign}{ms}ms");
    }
    let mut out = String::from(sign);
    let mut rest = ms;
    let mut parts = 0;
    for (unit, name) in UNITS {
        let unit = unit.unsigned_abs();
        let n = rest / unit;
        if n > 0 || parts > 0 {
            if n > 0 {
                let _ = write!(out, "{n}{name}");
            }
            rest %= unit;
            parts += 1;
            if parts == 2 {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(0), "0ms");
        assert_eq!(span(1_500), "1s");
        assert_eq!(span(30 * 60_000), "30m");
        assert_eq!(span(90 * 60_000), "1h30m");
        assert_eq!(span(86_400_000 + 60_000), "1d");
        assert_eq!(span(7 * 86_400_000), "7d");
        assert_eq!(span(-45 * 60_000), "-45m");
    }

    #[test]
    fn triggers_sort_by_kind_then_names() {
        let a = Trigger::Manual { resource: "db-1".into(), by: "x".into() };
        let b = Trigger::HostAlert { host: "h9".into(), risk: 0.9, probability: 0.9 };
        let c = Trigger::HostAlert { host: "h1".into(), risk: 0.9, probability: 0.9 };
        let mut v = [&a, &b, &c];
        v.sort_by_key(|t| trigger_order(t));
        assert_eq!(v, [&c, &b, &a]);
    }
}
