//! Fleet-scale properties: determinism, and every placement of a 10,000-host plan checked
//! against the rules by an independent replay of the plan's actions.

use std::collections::{BTreeMap, BTreeSet};

use harbinger_core::{HostId, ResourceId, ShadowId};
use harbinger_plan::{ActionKind, HostView, PlanInput, Shadow, ShadowState, Trigger, plan, synthetic_fleet};

/// Deterministic Fisher-Yates with a small LCG.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed;
    for i in (1..v.len()).rev() {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let j = ((s >> 33) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// A synthetic fleet with every kind of situation: hosts down, expired and idle shadows,
/// alerts, events, manual requests, resolved alerts, a tight budget.
fn busy_fleet() -> PlanInput {
    let mut input = synthetic_fleet(400, 5, 40, 3);
    let now = input.now;
    for (i, h) in input.hosts.iter_mut().enumerate() {
        if i % 37 == 0 {
            h.up = false;
        }
        if i % 11 == 0 && !h.alerting {
            h.alert_cleared_at = Some(now - 3_600_000);
        }
    }
    for (i, s) in input.shadows.iter_mut().enumerate() {
        match i % 4 {
            0 => s.expires_at = Some(now - 1),
            1 => s.last_used_at = now - 2 * 86_400_000,
            2 => s.state = ShadowState::Syncing,
            _ => s.causes = vec![harbinger_plan::Cause::Risk { host: s.primary.clone() }],
        }
    }
    let r = |i: usize| input.resources[i].id.clone();
    let extra = vec![
        Trigger::AlertFiring { fingerprint: "f1".into(), host: None, resource: Some(r(17)), summary: "lag".into() },
        Trigger::AlertFiring { fingerprint: "f2".into(), host: Some(input.hosts[5].id.clone()), resource: None, summary: String::new() },
        Trigger::AlertResolved { fingerprint: "f0".into() },
        Trigger::Event { kind: "deploy_started".into(), id: "d-1".into(), host: None, resource: Some(r(99)) },
        Trigger::Manual { resource: r(123), by: "ops".into() },
        Trigger::Manual { resource: "missing".into(), by: "ops".into() },
    ];
    input.triggers.extend(extra);
    input.budget.max_live_shadows = 60;
    input
}

#[test]
fn same_input_same_plan_in_any_order() {
    let input = busy_fleet();
    let a = plan(&input);
    assert!(a.created() > 10 && !a.skipped.is_empty(), "the fleet exercises the planner: {} created", a.created());
    assert_eq!(a, plan(&input), "planned twice");
    for seed in 1..4 {
        let mut shuffled = input.clone();
        shuffle(&mut shuffled.hosts, seed);
        shuffle(&mut shuffled.resources, seed + 10);
        shuffle(&mut shuffled.shadows, seed + 20);
        shuffle(&mut shuffled.triggers, seed + 30);
        assert_ne!(shuffled.hosts, input.hosts);
        assert_eq!(plan(&shuffled), a, "shuffled with seed {seed}");
    }
    // Through JSON (the journal) and back: the same actions, keys and decisions.
    let json = serde_json::to_string(&a).expect("plan serialises");
    let back: harbinger_plan::Plan = serde_json::from_str(&json).expect("plan parses back");
    let keys = |p: &harbinger_plan::Plan| p.actions.iter().map(|a| a.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&back), keys(&a));
    assert_eq!(back.decisions().len(), a.decisions().len());
}

/// The rules, written out again: usable capacity and who may receive a shadow.
struct Replay<'a> {
    input: &'a PlanInput,
    pos: BTreeMap<&'a HostId, usize>,
    free: Vec<(f64, f64)>,
    live: BTreeMap<ShadowId, Shadow>,
}

impl<'a> Replay<'a> {
    fn new(input: &'a PlanInput) -> Self {
        let keep = 1.0 - input.budget.host_reserve;
        let pos: BTreeMap<_, _> = input.hosts.iter().enumerate().map(|(i, h)| (&h.id, i)).collect();
        let mut free: Vec<_> = input.hosts.iter().map(|h| (h.cpu_cores * keep, h.mem_gb * keep)).collect();
        let live: BTreeMap<_, _> = input.shadows.iter().filter(|s| s.state.is_live()).map(|s| (s.id.clone(), s.clone())).collect();
        let used = input.resources.iter().map(|r| (&r.host, r.cpu_cores, r.mem_gb));
        for (h, cpu, mem) in used.chain(live.values().map(|s| (&s.host, s.cpu_cores, s.mem_gb))) {
            if let Some(&i) = pos.get(h) {
                free[i] = (free[i].0 - cpu, free[i].1 - mem);
            }
        }
        Replay { input, pos, free, live }
    }

    fn eligible(&self, h: &HostView) -> bool {
        h.up && !h.alerting && h.risk < self.input.budget.risk_ceiling
    }

    fn fits(&self, i: usize, cpu: f64, mem: f64) -> bool {
        let (c, m) = self.free[i];
        cpu <= c + 1e-9 && mem <= m + 1e-9
    }

    fn other_rack(p: &HostView, h: &HostView) -> bool {
        p.zone == h.zone && !p.rack.is_empty() && !h.rack.is_empty() && p.rack != h.rack
    }

    /// Checks one new shadow against the rules, then takes its capacity.
    fn create(&mut self, s: &Shadow, holding: &BTreeSet<&HostId>) {
        let hosts = &self.input.hosts;
        let primary = &hosts[self.pos[&s.primary]];
        let t = self.pos[&s.host];
        let target = &hosts[t];
        assert_ne!(s.host, s.primary, "{}: on its primary", s.id);
        assert!(self.eligible(target), "{}: target {} is down, alerting or too risky", s.id, s.host);
        assert!(!holding.contains(&s.host), "{}: {} already held a shadow of {}", s.id, s.host, s.resource);
        assert!(self.fits(t, s.cpu_cores, s.mem_gb), "{}: {} has no room", s.id, s.host);
        let candidates = |other_zone: bool| -> Vec<usize> {
            (0..hosts.len())
                .filter(|&i| {
                    let h = &hosts[i];
                    let domain = if other_zone { h.zone != primary.zone } else { Self::other_rack(primary, h) };
                    domain && h.id != primary.id && self.eligible(h) && !holding.contains(&h.id) && self.fits(i, s.cpu_cores, s.mem_gb)
                })
                .collect()
        };
        let other_zone = candidates(true);
        let pool = if target.zone != primary.zone {
            other_zone
        } else {
            assert!(Self::other_rack(primary, target), "{}: {} is in the primary's zone and rack", s.id, s.host);
            assert!(other_zone.is_empty(), "{}: {} fits in another zone but {} was chosen", s.id, hosts[other_zone[0]].id, s.host);
            candidates(false)
        };
        // Lowest risk, then most free memory, then id.
        let best = pool
            .into_iter()
            .min_by(|&a, &b| {
                hosts[a].risk.total_cmp(&hosts[b].risk).then(self.free[b].1.total_cmp(&self.free[a].1)).then(hosts[a].id.cmp(&hosts[b].id))
            })
            .expect("the target itself is a candidate");
        assert_eq!(best, t, "{}: {} was the better host", s.id, hosts[best].id);
        self.free[t] = (self.free[t].0 - s.cpu_cores, self.free[t].1 - s.mem_gb);
        self.live.insert(s.id.clone(), s.clone());
    }

    fn end(&mut self, id: &ShadowId) {
        let s = self.live.remove(id).expect("ends a live shadow");
        if let Some(&i) = self.pos.get(&s.host) {
            self.free[i] = (self.free[i].0 + s.cpu_cores, self.free[i].1 + s.mem_gb);
        }
    }
}

#[test]
fn every_placement_of_a_large_fleet_follows_the_rules() {
    let input = synthetic_fleet(10_000, 5, 500, 42);
    let p = plan(&input);
    let mut replay = Replay::new(&input);
    // Hosts that held a live shadow of each resource when the plan started.
    let mut held: BTreeMap<&ResourceId, BTreeSet<&HostId>> = BTreeMap::new();
    for s in input.shadows.iter().filter(|s| s.state.is_live()) {
        held.entry(&s.resource).or_default().insert(&s.host);
    }
    let mut created: BTreeSet<ResourceId> = BTreeSet::new();
    let mut order = Vec::new();
    let hosts: BTreeMap<_, _> = input.hosts.iter().map(|h| (&h.id, h)).collect();
    let resources: BTreeMap<_, _> = input.resources.iter().map(|r| (&r.id, r)).collect();
    for a in &p.actions {
        match &a.kind {
            ActionKind::CreateShadow { shadow } => {
                assert!(created.insert(shadow.resource.clone()), "two new shadows of {}", shadow.resource);
                let holding = held.get(&shadow.resource).cloned().unwrap_or_default();
                replay.create(shadow, &holding);
                let r = resources[&shadow.resource];
                let primary = hosts[&shadow.primary];
                assert_eq!((shadow.cpu_cores, shadow.mem_gb, &r.host), (r.cpu_cores, r.mem_gb, &shadow.primary));
                let tier = u8::from(!(r.criticality == 3 && primary.failure_probability >= input.budget.critical_probability));
                order.push((tier, shadow.priority));
            }
            ActionKind::RetireShadow { shadow, .. } | ActionKind::ExpireShadow { shadow } | ActionKind::PromoteShadow { shadow } => {
                replay.end(shadow)
            }
            ActionKind::AddCause { shadow, .. } | ActionKind::DropCause { shadow, .. } => {
                assert!(replay.live.contains_key(shadow), "cause change on a shadow that is not live");
            }
        }
    }
    assert!(created.len() > 1_000, "{} shadows planned", created.len());
    assert!(replay.live.len() <= input.budget.max_live_shadows);
    // Critical first, then by priority.
    for w in order.windows(2) {
        assert!(w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 >= w[1].1), "out of order: {w:?}");
    }
    // Never two live shadows of one resource on one host.
    let mut pairs = BTreeSet::new();
    for s in replay.live.values() {
        assert!(pairs.insert((&s.resource, &s.host)), "two shadows of {} on {}", s.resource, s.host);
    }
    // Every wanted resource (criticality >= 2 on an alerting host) got a decision.
    let decided: BTreeSet<ResourceId> = p.decisions().into_iter().filter_map(|d| d.resource).collect();
    for r in &input.resources {
        if hosts[&r.host].alerting && r.criticality >= input.budget.min_criticality {
            assert!(decided.contains(&r.id), "no decision about {}", r.id);
        }
    }
}
