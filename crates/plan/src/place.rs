//! Placement: free capacity per host and the order in which hosts are tried.
//!
//! Hosts that may receive shadows (up, not alerting, risk below the ceiling) sit in one
//! ordered set keyed by (risk, free memory descending, host id), so the first host of
//! the set that is in the wanted failure domain and has room is the answer. A host's
//! entry moves when its free memory changes; nothing else is allocated per demand. The set
//! is built when the first demand looks for a host: most plans (one per engine tick) have
//! none.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

use crate::input::{Budget, HostView};

/// Slack for float sums when checking room.
const EPS: f64 = 1e-9;
const NO_RACK: u32 = u32::MAX;

/// Maps a float to an integer with the same order as [`f64::total_cmp`].
fn ord(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    b ^ ((((b >> 63) as u64) >> 1) as i64)
}

/// Where a shadow goes relative to its primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Domain {
    /// Another zone: the preferred failure domain.
    OtherZone,
    /// The same zone, another (known) rack: the fallback.
    OtherRack,
}

/// A host found for a shadow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fit {
    /// Host position.
    pub(crate) host: usize,
    /// Its failure domain relative to the primary.
    pub(crate) domain: Domain,
    /// Hosts of that domain, ahead of it in the order, passed over for lack of room.
    pub(crate) passed: usize,
}

/// Free capacity of every host and the candidate order.
#[derive(Debug)]
pub(crate) struct Capacity {
    free_cpu: Vec<f64>,
    free_mem: Vec<f64>,
    zone: Vec<u32>,
    rack: Vec<u32>,
    risk_key: Vec<i64>,
    eligible: Vec<bool>,
    /// The candidate order, once a demand asked for it ([`Capacity::find`]).
    order: Option<BTreeSet<(i64, Reverse<i64>, usize)>>,
}

impl Capacity {
    /// Usable capacity of each host (capacity minus the reserve) before anything runs on it.
    pub(crate) fn new(hosts: &[&HostView], budget: &Budget) -> Self {
        let keep = 1.0 - budget.host_reserve.clamp(0.0, 1.0);
        fn intern<'h>(names: &mut foldhash::HashMap<&'h str, u32>, name: &'h str) -> u32 {
            let n = names.len() as u32;
            *names.entry(name).or_insert(n)
        }
        let (mut zones, mut racks) = (foldhash::HashMap::default(), foldhash::HashMap::default());
        let zone = hosts.iter().map(|h| intern(&mut zones, &h.zone)).collect();
        let rack = hosts.iter().map(|h| if h.rack.is_empty() { NO_RACK } else { intern(&mut racks, &h.rack) }).collect();
        Capacity {
            free_cpu: hosts.iter().map(|h| h.cpu_cores * keep).collect(),
            free_mem: hosts.iter().map(|h| h.mem_gb * keep).collect(),
            zone,
            rack,
            risk_key: hosts.iter().map(|h| ord(h.risk)).collect(),
            eligible: hosts.iter().map(|h| eligible(h, budget)).collect(),
            order: None,
        }
    }

    fn key(&self, h: usize) -> (i64, Reverse<i64>, usize) {
        (self.risk_key[h], Reverse(ord(self.free_mem[h])), h)
    }

    /// Takes (positive) or gives back (negative) capacity on host `h`.
    pub(crate) fn take(&mut self, h: usize, cpu: f64, mem: f64) {
        let before = self.key(h);
        self.free_cpu[h] -= cpu;
        self.free_mem[h] -= mem;
        let after = self.key(h);
        if let Some(order) = self.order.as_mut()
            && order.remove(&before)
        {
            order.insert(after);
        }
    }

    /// Whether `cpu` and `mem` fit on host `h`.
    pub(crate) fn fits(&self, h: usize, cpu: f64, mem: f64) -> bool {
        cpu <= self.free_cpu[h] + EPS && mem <= self.free_mem[h] + EPS
    }

    /// The failure domain of `h` relative to `primary`, if it is one a shadow may use.
    pub(crate) fn domain(&self, primary: usize, h: usize) -> Option<Domain> {
        if self.zone[h] != self.zone[primary] {
            Some(Domain::OtherZone)
        } else if self.rack[h] != NO_RACK && self.rack[primary] != NO_RACK && self.rack[h] != self.rack[primary] {
            Some(Domain::OtherRack)
        } else {
            None
        }
    }

    /// The best host for a shadow of a resource on `primary` needing `cpu` and `mem`,
    /// never one of `holding` (hosts with a shadow of the resource): the first eligible
    /// host with room in another zone, else in the same zone and another rack.
    pub(crate) fn find(&mut self, primary: usize, cpu: f64, mem: f64, holding: &[usize]) -> Option<Fit> {
        // Built from the capacity taken so far when first asked for.
        if self.order.is_none() {
            self.order = Some((0..self.eligible.len()).filter(|&h| self.eligible[h]).map(|h| self.key(h)).collect());
        }
        let order = self.order.as_ref()?;
        [Domain::OtherZone, Domain::OtherRack].into_iter().find_map(|want| {
            let mut passed = 0;
            for &(_, _, h) in order {
                if h == primary || self.domain(primary, h) != Some(want) || holding.contains(&h) {
                    continue;
                }
                if self.fits(h, cpu, mem) {
                    return Some(Fit { host: h, domain: want, passed });
                }
                passed += 1;
            }
            None
        })
    }

    /// Why no host fits: every host but the primary, counted under the first reason
    /// that excludes it.
    pub(crate) fn excluded(&self, hosts: &[&HostView], primary: usize, cpu: f64, mem: f64, holding: &[usize], budget: &Budget) -> Excluded {
        let mut x = Excluded::default();
        for (h, view) in hosts.iter().enumerate() {
            let slot = if h == primary {
                continue;
            } else if !view.up {
                &mut x.down
            } else if view.alerting {
                &mut x.alerting
            } else if !eligible(view, budget) {
                // Up and not alerting: its risk is at or above the ceiling (or not a number).
                &mut x.risky
            } else if holding.contains(&h) {
                &mut x.holding
            } else if self.domain(primary, h).is_none() {
                if self.rack[h] == NO_RACK || self.rack[primary] == NO_RACK { &mut x.same_zone } else { &mut x.same_rack }
            } else if !self.fits(h, cpu, mem) {
                &mut x.full
            } else {
                // Eligible, in a usable domain and with room: `find` would have taken it.
                continue;
            };
            *slot += 1;
        }
        x.ceiling = budget.risk_ceiling;
        x
    }
}

/// A host that may receive shadows: up, not alerting, risk below the ceiling.
fn eligible(h: &HostView, budget: &Budget) -> bool {
    h.up && !h.alerting && h.risk < budget.risk_ceiling
}

/// Counts of hosts excluded from a placement, by reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Excluded {
    same_rack: usize,
    same_zone: usize,
    full: usize,
    risky: usize,
    alerting: usize,
    down: usize,
    holding: usize,
    ceiling: f64,
}

impl fmt::Display for Excluded {
    /// `3 hosts in the same zone and rack, 2 without capacity, 1 at risk >= 0.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ceiling = format!("at risk >= {}", self.ceiling);
        let parts = [
            (self.same_rack, "in the same zone and rack"),
            (self.same_zone, "in the same zone, rack unknown"),
            (self.full, "without capacity"),
            (self.risky, ceiling.as_str()),
            (self.alerting, "alerting"),
            (self.down, "down"),
            (self.holding, "already holding a shadow of it"),
        ];
        let mut out = String::new();
        for (n, why) in parts.into_iter().filter(|(n, _)| *n > 0) {
            if out.is_empty() {
                let noun = if n == 1 { "host" } else { "hosts" };
                let _ = write!(out, "{n} {noun} {why}");
            } else {
                let _ = write!(out, ", {n} {why}");
            }
        }
        if out.is_empty() {
            out.push_str("no other host");
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, zone: &str, rack: &str, risk: f64, mem: f64) -> HostView {
        HostView {
            id: id.into(),
            zone: zone.into(),
            rack: rack.into(),
            cpu_cores: 10.0,
            mem_gb: mem,
            risk,
            failure_probability: risk,
            imminence: 1.0,
            alerting: false,
            alert_cleared_at: None,
            up: true,
        }
    }

    #[test]
    fn float_keys_keep_the_order() {
        let xs = [-1.5, -0.0, 0.0, 1e-300, 0.25, 0.5, 3.0, f64::INFINITY];
        for w in xs.windows(2) {
            assert!(ord(w[0]) < ord(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn lowest_risk_then_most_free_memory_then_id() {
        let hs = [
            host("a", "z1", "r1", 0.3, 100.0),
            host("b", "z2", "r1", 0.1, 10.0),
            host("c", "z2", "r1", 0.1, 50.0),
            host("d", "z2", "r1", 0.1, 50.0),
            host("e", "z1", "r2", 0.0, 100.0),
            host("f", "z2", "r1", 0.2, 100.0),
        ];
        let refs: Vec<&HostView> = hs.iter().collect();
        let budget = Budget { host_reserve: 0.0, ..Budget::default() };
        let mut cap = Capacity::new(&refs, &budget);
        let fit = cap.find(0, 1.0, 20.0, &[]).expect("fits");
        assert_eq!(fit, Fit { host: 2, domain: Domain::OtherZone, passed: 0 }, "c: same risk as b and d, more memory than b, id before d");
        cap.take(2, 1.0, 40.0);
        assert_eq!(cap.find(0, 1.0, 20.0, &[]).map(|f| f.host), Some(3), "d now has the most free memory");
        assert_eq!(
            cap.find(0, 1.0, 20.0, &[3]),
            Some(Fit { host: 5, domain: Domain::OtherZone, passed: 2 }),
            "b and c lack room, d holds one"
        );
        assert_eq!(
            cap.find(0, 1.0, 20.0, &[3, 5]),
            Some(Fit { host: 4, domain: Domain::OtherRack, passed: 0 }),
            "falls back to another rack"
        );
        assert_eq!(cap.find(0, 1.0, 200.0, &[]), None);
        let x = cap.excluded(&refs, 0, 1.0, 200.0, &[5], &budget);
        assert_eq!(x.to_string(), "4 hosts without capacity, 1 already holding a shadow of it");
    }

    #[test]
    fn exclusion_reasons_are_counted_once_each() {
        let mut hs = vec![host("p", "z1", "r1", 0.1, 100.0), host("s", "z1", "r1", 0.0, 100.0), host("u", "z1", "", 0.0, 100.0)];
        hs.push(HostView { alerting: true, ..host("al", "z2", "r1", 0.1, 100.0) });
        hs.push(HostView { up: false, ..host("dn", "z2", "r1", 0.1, 100.0) });
        hs.push(host("rk", "z2", "r1", 0.7, 100.0));
        hs.push(host("sm", "z2", "r1", 0.1, 1.0));
        let refs: Vec<&HostView> = hs.iter().collect();
        let budget = Budget::default();
        let mut cap = Capacity::new(&refs, &budget);
        assert_eq!(cap.find(0, 1.0, 8.0, &[]), None);
        let x = cap.excluded(&refs, 0, 1.0, 8.0, &[], &budget);
        assert_eq!(
            x.to_string(),
            "1 host in the same zone and rack, 1 in the same zone, rack unknown, 1 without capacity, 1 at risk >= 0.5, 1 alerting, 1 down"
        );
        assert_eq!(Excluded::default().to_string(), "no other host");
    }
}
