//! Hosts, resources and failures: `hosts.csv`, `resources.json`, `failures.csv`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{HostId, TimestampMs};

/// A machine in the fleet (`hosts.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Unique host id.
    pub host: HostId,
    /// Failure domain; shadows go to another zone where possible.
    pub zone: String,
    /// Finer failure domain; may be empty.
    #[serde(default)]
    pub rack: String,
    /// CPU capacity.
    pub cpu_cores: f64,
    /// Memory capacity in GB.
    pub mem_gb: f64,
}

/// Something that runs on a host (`resources.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// Unique resource id.
    pub id: String,
    /// Free-form kind: `database`, `service`, `cache`, ...
    pub kind: String,
    /// Host it runs on.
    pub host: HostId,
    /// 0 (best effort) to 3 (critical).
    pub criticality: u8,
    /// CPU it needs.
    #[serde(default)]
    pub cpu_cores: f64,
    /// Memory it needs, GB.
    #[serde(default)]
    pub mem_gb: f64,
    /// Resource ids this one depends on. The graph must be acyclic.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The mutable part of the resource that snapshots and rollbacks work on.
    #[serde(default)]
    pub state: serde_json::Value,
}

/// Ground truth: a host stopped serving (`failures.csv`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The host that failed.
    pub host: HostId,
    /// When it stopped serving.
    pub timestamp: TimestampMs,
    /// Cause label (`oom`, `disk_full`, `thermal`, `bad_deploy`, `nic`, `sudden`, ...).
    pub kind: String,
}

/// Inventory that does not hold together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InventoryError {
    /// Two hosts share an id.
    #[error("host {host} is listed twice")]
    DuplicateHost {
        /// The repeated id.
        host: HostId,
    },
    /// Two resources share an id.
    #[error("resource {id} is listed twice")]
    DuplicateResource {
        /// The repeated id.
        id: String,
    },
    /// A resource sits on a host the inventory does not know.
    #[error("resource {id} is on unknown host {host}")]
    UnknownHost {
        /// The resource.
        id: String,
        /// The unknown host.
        host: HostId,
    },
    /// `depends_on` names a resource that does not exist.
    #[error("resource {id} depends on unknown resource {missing}")]
    UnknownDependency {
        /// The resource.
        id: String,
        /// The missing dependency.
        missing: String,
    },
    /// Criticality outside 0..=3.
    #[error("resource {id}: criticality {criticality} is outside 0..=3")]
    BadCriticality {
        /// The resource.
        id: String,
        /// The value given.
        criticality: u8,
    },
    /// The dependency graph has a cycle.
    #[error("dependency cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The resources on the cycle, first repeated at the end.
        cycle: Vec<String>,
    },
    /// A capacity that is negative or not finite.
    #[error("host {host}: {field} must be a finite number >= 0, got {value}")]
    BadCapacity {
        /// The host.
        host: HostId,
        /// Which column.
        field: &'static str,
        /// The value given.
        value: f64,
    },
}

/// Checks hosts for duplicate ids and impossible capacities.
///
/// # Errors
/// The first problem found, naming the host.
pub fn validate_hosts(hosts: &[Host]) -> Result<(), InventoryError> {
    let mut seen = BTreeSet::new();
    for h in hosts {
        if !seen.insert(&h.host) {
            return Err(InventoryError::DuplicateHost { host: h.host.clone() });
        }
        for (field, value) in [("cpu_cores", h.cpu_cores), ("mem_gb", h.mem_gb)] {
            if !value.is_finite() || value < 0.0 {
                return Err(InventoryError::BadCapacity { host: h.host.clone(), field, value });
            }
        }
    }
    Ok(())
}

/// Checks resources against the hosts: unique ids, known hosts, known dependencies,
/// criticality in range and an acyclic dependency graph.
///
/// # Errors
/// The first problem found; a cycle is reported with the resources on it.
pub fn validate_resources(resources: &[Resource], hosts: &[Host]) -> Result<(), InventoryError> {
    let host_ids: BTreeSet<&HostId> = hosts.iter().map(|h| &h.host).collect();
    let mut by_id: BTreeMap<&str, &Resource> = BTreeMap::new();
    for r in resources {
        if by_id.insert(&r.id, r).is_some() {
            return Err(InventoryError::DuplicateResource { id: r.id.clone() });
        }
        if r.criticality > 3 {
            return Err(InventoryError::BadCriticality { id: r.id.clone(), criticality: r.criticality });
        }
        if !host_ids.contains(&r.host) {
            return Err(InventoryError::UnknownHost { id: r.id.clone(), host: r.host.clone() });
        }
    }
    for r in resources {
        for d in &r.depends_on {
            if !by_id.contains_key(d.as_str()) {
                return Err(InventoryError::UnknownDependency { id: r.id.clone(), missing: d.clone() });
            }
        }
    }
    // Depth-first search with colours; the stack gives the cycle path.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark: BTreeMap<&str, Mark> = by_id.keys().map(|k| (*k, Mark::New)).collect();
    for start in by_id.keys() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        mark.insert(start, Mark::Active);
        while let Some((node, next)) = stack.last().copied() {
            let deps = &by_id[node].depends_on;
            if next < deps.len() {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                let dep = deps[next].as_str();
                match mark[dep] {
                    Mark::New => {
                        mark.insert(dep, Mark::Active);
                        stack.push((dep, 0));
                    }
                    Mark::Active => {
                        let pos = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[pos..].iter().map(|(n, _)| n.to_string()).collect();
                        cycle.push(dep.to_string());
                        return Err(InventoryError::Cycle { cycle });
                    }
                    Mark::Done => {}
                }
            } else {
                mark.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str) -> Host {
        Host { host: id.into(), zone: "z1".into(), rack: String::new(), cpu_cores: 8.0, mem_gb: 32.0 }
    }
    fn res(id: &str, deps: &[&str]) -> Resource {
        Resource {
            id: id.into(),
            kind: "service".into(),
            host: "h1".into(),
            criticality: 2,
            cpu_cores: 1.0,
            mem_gb: 1.0,
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            state: serde_json::json!({}),
        }
    }

    #[test]
    fn accepts_a_dag() {
        let r = [res("a", &["b", "c"]), res("b", &["c"]), res("c", &[])];
        assert_eq!(validate_resources(&r, &[host("h1")]), Ok(()));
    }

    #[test]
    fn names_the_cycle() {
        let r = [res("a", &["b"]), res("b", &["c"]), res("c", &["a"]), res("d", &[])];
        let e = validate_resources(&r, &[host("h1")]).expect_err("cycle");
        assert_eq!(e.to_string(), "dependency cycle: a -> b -> c -> a");
        let e = validate_resources(&[res("s", &["s"])], &[host("h1")]).expect_err("self loop");
        assert_eq!(e, InventoryError::Cycle { cycle: vec!["s".into(), "s".into()] });
    }

    #[test]
    fn names_unknown_references() {
        let e = validate_resources(&[res("a", &["zz"])], &[host("h1")]).expect_err("unknown dep");
        assert_eq!(e.to_string(), "resource a depends on unknown resource zz");
        let e = validate_resources(&[res("a", &[])], &[host("h2")]).expect_err("unknown host");
        assert_eq!(e.to_string(), "resource a is on unknown host h1");
        let mut bad = res("a", &[]);
        bad.criticality = 7;
        assert!(matches!(validate_resources(&[bad], &[host("h1")]), Err(InventoryError::BadCriticality { .. })));
    }

    #[test]
    fn hosts_are_unique_with_sane_capacity() {
        assert!(matches!(validate_hosts(&[host("h1"), host("h1")]), Err(InventoryError::DuplicateHost { .. })));
        let mut h = host("h2");
        h.mem_gb = f64::NAN;
        let e = validate_hosts(&[h]).expect_err("nan");
        assert!(e.to_string().contains("mem_gb must be a finite number"), "{e}");
    }
}
