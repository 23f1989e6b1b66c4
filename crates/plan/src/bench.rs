//! A synthetic fleet to time the planner on (`examples/plan_bench.rs`, and later
//! `harbinger bench plan`).

use harbinger_core::TimestampMs;

use crate::input::{Budget, HostView, PlanInput, ResourceView, Trigger};
use harbinger_core::shadow::{Cause, Shadow, ShadowState};

/// The time of every synthetic plan: 2026-01-01T00:00:00Z.
pub const SYNTHETIC_NOW: TimestampMs = 1_767_225_600_000;

const HOUR_MS: i64 = 3_600_000;
const KINDS: [&str; 4] = ["database", "service", "cache", "queue"];

/// A 64-bit linear congruential generator (Knuth's MMIX constants): portable and
/// deterministic, enough to scatter a synthetic fleet.
#[derive(Debug, Clone)]
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n - 1)
    }
}

/// A fleet of `hosts` hosts (zones `z0`..`z3`, racks `r0`..`r9`) with
/// `resources_per_host` resources each, `alerting` of them entering the alerting state
/// this tick (one `HostAlert` trigger each), and one existing ready shadow per 50 hosts.
///
/// The same arguments always give the same fleet. The budget is large enough for every
/// resource to have a shadow, so a plan exercises placement rather than the budget.
pub fn synthetic_fleet(hosts: usize, resources_per_host: usize, alerting: usize, seed: u64) -> PlanInput {
    let mut rng = Lcg(seed ^ 0x9e37_79b9_7f4a_7c15);
    let now = SYNTHETIC_NOW;
    let mut views: Vec<HostView> = (0..hosts)
        .map(|i| {
            let cpu = [32.0, 48.0, 64.0][rng.below(3)];
            let risk = 0.55 * rng.unit().powi(3);
            HostView {
                id: format!("h{i:05}").into(),
                zone: format!("z{}", i % 4),
                rack: format!("r{}", (i / 4) % 10),
                cpu_cores: cpu,
                mem_gb: cpu * 4.0,
                risk,
                failure_probability: risk * 0.9,
                imminence: 1.0,
                alerting: false,
                alert_cleared_at: None,
                up: true,
            }
        })
        .collect();
    // Partial Fisher-Yates: the first `alerting` positions of a shuffled index.
    let mut pick: Vec<usize> = (0..hosts).collect();
    let alerting = alerting.min(hosts);
    for k in 0..alerting {
        let j = k + rng.below(hosts - k);
        pick.swap(k, j);
    }
    let mut triggers = Vec::with_capacity(alerting);
    for &h in &pick[..alerting] {
        let v = &mut views[h];
        v.risk = 0.6 + 0.4 * rng.unit();
        v.failure_probability = 0.5 + 0.49 * rng.unit();
        v.imminence = 0.3 + 0.7 * rng.unit();
        v.alerting = true;
        triggers.push(Trigger::HostAlert { host: v.id.clone(), risk: v.risk, probability: v.failure_probability });
    }
    let resources: Vec<ResourceView> = (0..hosts * resources_per_host)
        .map(|n| {
            let (i, j) = (n / resources_per_host, n % resources_per_host);
            ResourceView {
                id: format!("r{i:05}-{j}").into(),
                kind: KINDS[j % KINDS.len()].to_string(),
                host: views[i].id.clone(),
                criticality: rng.below(4) as u8,
                cpu_cores: 0.5 * (1 + rng.below(8)) as f64,
                mem_gb: (1 + rng.below(16)) as f64,
            }
        })
        .collect();
    let existing = if hosts > 1 && !resources.is_empty() { hosts / 50 } else { 0 };
    let stride = resources.len() / existing.max(1);
    let shadows = (0..existing)
        .map(|k| {
            let n = k * stride + rng.below(stride);
            let r = &resources[n];
            let i = n / resources_per_host;
            // Another host, in another zone when the host count allows.
            let t = (i + 1 + 4 * rng.below((hosts / 4).max(1))) % hosts;
            let target = &views[if t == i { (i + 1) % hosts } else { t }];
            Shadow {
                id: format!("{}@{}#{}", r.id, target.id, now - HOUR_MS).into(),
                resource: r.id.clone(),
                primary: r.host.clone(),
                host: target.id.clone(),
                state: ShadowState::Ready,
                causes: vec![Cause::Manual { by: "bench".into() }],
                priority: 0.5 * rng.unit(),
                cpu_cores: r.cpu_cores,
                mem_gb: r.mem_gb,
                created_at: now - HOUR_MS,
                updated_at: now - HOUR_MS,
                last_used_at: now - HOUR_MS,
                expires_at: Some(now + 144 * HOUR_MS),
                endpoint: None,
            }
        })
        .collect();
    let budget = Budget { max_live_shadows: hosts * resources_per_host, ..Budget::default() };
    PlanInput { now, hosts: views, resources, shadows, triggers, budget }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_fleet() {
        let a = synthetic_fleet(200, 3, 10, 7);
        assert_eq!(a, synthetic_fleet(200, 3, 10, 7));
        assert_ne!(a, synthetic_fleet(200, 3, 10, 8));
        assert_eq!((a.hosts.len(), a.resources.len(), a.triggers.len(), a.shadows.len()), (200, 600, 10, 4));
        assert_eq!(a.hosts.iter().filter(|h| h.alerting).count(), 10);
        assert!(a.shadows.iter().all(|s| s.host != s.primary));
    }
}
