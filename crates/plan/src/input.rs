//! What the planner is given: the fleet as the engine sees it this tick, what happened
//! since the last tick, the shadows that exist and the budget.

use harbinger_core::{Host, HostId, Resource, ResourceId, TimestampMs};
use serde::{Deserialize, Serialize};

use harbinger_core::shadow::Shadow;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A host with its capacity, failure domain and current risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostView {
    /// Unique host id.
    pub id: HostId,
    /// Failure domain; shadows go to another zone where one fits.
    pub zone: String,
    /// Finer failure domain inside the zone; empty when unknown.
    #[serde(default)]
    pub rack: String,
    /// CPU capacity.
    pub cpu_cores: f64,
    /// Memory capacity, GB.
    pub mem_gb: f64,
    /// Combined risk in [0, 1].
    #[serde(default)]
    pub risk: f64,
    /// Probability that the host fails within the model's horizon, in [0, 1].
    #[serde(default)]
    pub failure_probability: f64,
    /// How soon the failure is expected, in [0, 1] (1 = now); 1 when unknown.
    #[serde(default = "one")]
    pub imminence: f64,
    /// In the alerting state (hysteresis applied).
    #[serde(default)]
    pub alerting: bool,
    /// When the host last left the alerting state; `None` if never seen to.
    #[serde(default)]
    pub alert_cleared_at: Option<TimestampMs>,
    /// False once the host is known to have failed.
    #[serde(default = "yes")]
    pub up: bool,
}

impl From<&Host> for HostView {
    /// An inventory host as the planner sees it before any risk: risk 0, imminence 1,
    /// not alerting, up.
    fn from(h: &Host) -> Self {
        HostView {
            id: h.host.clone(),
            zone: h.zone.clone(),
            rack: h.rack.clone(),
            cpu_cores: h.cpu_cores,
            mem_gb: h.mem_gb,
            risk: 0.0,
            failure_probability: 0.0,
            imminence: 1.0,
            alerting: false,
            alert_cleared_at: None,
            up: true,
        }
    }
}

impl From<&Resource> for ResourceView {
    fn from(r: &Resource) -> Self {
        ResourceView {
            id: ResourceId::new(&r.id),
            kind: r.kind.clone(),
            host: r.host.clone(),
            criticality: r.criticality,
            cpu_cores: r.cpu_cores,
            mem_gb: r.mem_gb,
        }
    }
}

fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}

/// A resource and where it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceView {
    /// Unique resource id.
    pub id: ResourceId,
    /// Free-form kind: `database`, `service`, `cache`, ...
    pub kind: String,
    /// The host it runs on (a shadow's primary).
    pub host: HostId,
    /// 0 (best effort) to 3 (critical); values above 3 count as 3.
    pub criticality: u8,
    /// CPU it needs (and a shadow of it holds).
    pub cpu_cores: f64,
    /// Memory it needs, GB.
    pub mem_gb: f64,
}

/// Something that happened since the last tick and may call for shadows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// The host entered the alerting state this tick.
    HostAlert {
        /// The host.
        host: HostId,
        /// Its risk when it entered.
        risk: f64,
        /// Its failure probability when it entered.
        probability: f64,
    },
    /// The host left the alerting state this tick. The planner needs no action for it:
    /// risk-held shadows retire from `HostView::alert_cleared_at` once the grace passes.
    HostCleared {
        /// The host.
        host: HostId,
    },
    /// An Alertmanager alert started firing.
    AlertFiring {
        /// Alertmanager fingerprint.
        fingerprint: String,
        /// The host it is about, if any.
        #[serde(default)]
        host: Option<HostId>,
        /// The resource it is about, if any (takes precedence over `host`).
        #[serde(default)]
        resource: Option<ResourceId>,
        /// The alert's summary annotation.
        #[serde(default)]
        summary: String,
    },
    /// An Alertmanager alert resolved.
    AlertResolved {
        /// Alertmanager fingerprint.
        fingerprint: String,
    },
    /// A change that calls for a shadow: deployment of a critical resource, security
    /// config change, maintenance window.
    Event {
        /// E.g. `deploy_started`, `config_changed`, `host_maintenance`.
        kind: String,
        /// Event id.
        id: String,
        /// The host it is about, if any.
        #[serde(default)]
        host: Option<HostId>,
        /// The resource it is about, if any (takes precedence over `host`).
        #[serde(default)]
        resource: Option<ResourceId>,
    },
    /// An operator asks for a shadow of a resource, whatever its criticality.
    Manual {
        /// The resource.
        resource: ResourceId,
        /// Who asks.
        by: String,
    },
}

/// Limits and thresholds of the planner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Budget {
    /// At most this many live shadows after a plan.
    pub max_live_shadows: usize,
    /// Fraction of each host's CPU and memory kept free, in [0, 1].
    pub host_reserve: f64,
    /// A primary's failure probability at or above which its criticality-3 resources
    /// are shadowed before everything else.
    pub critical_probability: f64,
    /// Resources of a risky host with at least this criticality get shadows.
    pub min_criticality: u8,
    /// A risk-held shadow retires once its primary has been clear this long (ms).
    pub retire_grace_ms: i64,
    /// A ready shadow unused this long retires unless its primary is alerting (ms).
    pub idle_ms: i64,
    /// Time to live of a new shadow (ms); `None` for no expiry.
    pub ttl_ms: Option<i64>,
    /// A host at or above this risk (or alerting, or down) never receives shadows.
    pub risk_ceiling: f64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_live_shadows: 64,
            host_reserve: 0.2,
            critical_probability: 0.9,
            min_criticality: 2,
            retire_grace_ms: 30 * MINUTE_MS,
            idle_ms: DAY_MS,
            ttl_ms: Some(7 * DAY_MS),
            risk_ceiling: 0.5,
        }
    }
}

/// Everything one plan is computed from.
///
/// Ids are expected to be unique; the order of every list is irrelevant (the planner
/// sorts). Shadows in terminal states may be included: a promoted one keeps a resource
/// from failing over twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    /// The time of the plan; every timestamp the plan writes is this one.
    pub now: TimestampMs,
    /// Every host.
    pub hosts: Vec<HostView>,
    /// Every resource.
    pub resources: Vec<ResourceView>,
    /// Existing shadows.
    pub shadows: Vec<Shadow>,
    /// What happened since the last plan.
    pub triggers: Vec<Trigger>,
    /// Limits and thresholds.
    #[serde(default)]
    pub budget: Budget,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_defaults_and_partial_json() {
        let b = Budget::default();
        assert_eq!(b.max_live_shadows, 64);
        assert_eq!(b.retire_grace_ms, 1_800_000);
        assert_eq!(b.idle_ms, 86_400_000);
        assert_eq!(b.ttl_ms, Some(604_800_000));
        let partial: Budget = serde_json::from_str(r#"{"max_live_shadows": 3}"#).unwrap_or_default();
        assert_eq!(partial, Budget { max_live_shadows: 3, ..Budget::default() });
    }

    #[test]
    fn host_view_defaults() {
        let h: HostView = serde_json::from_str(r#"{"id":"h1","zone":"a","cpu_cores":8,"mem_gb":32}"#).expect("host");
        assert_eq!((h.imminence, h.up, h.alerting, h.rack.as_str()), (1.0, true, false, ""));
    }

    #[test]
    fn triggers_serialise_tagged() {
        let t = Trigger::Manual { resource: "db-3".into(), by: "alice".into() };
        let s = serde_json::to_string(&t).unwrap_or_default();
        assert_eq!(s, r#"{"type":"manual","resource":"db-3","by":"alice"}"#);
        let back: Trigger = serde_json::from_str(r#"{"type":"alert_resolved","fingerprint":"f1"}"#).expect("trigger");
        assert_eq!(back, Trigger::AlertResolved { fingerprint: "f1".into() });
    }
}
