//! Fixtures shared by the integration tests: a small fleet vocabulary.

#![allow(dead_code, unreachable_pub)]

use harbinger_core::TimestampMs;
use harbinger_plan::{ActionKind, Budget, Cause, HostView, Plan, PlanInput, ResourceView, Shadow, ShadowState, Trigger};

/// 2026-01-01T00:00:00Z.
pub const NOW: TimestampMs = 1_767_225_600_000;
pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 60 * MIN;
pub const DAY: i64 = 24 * HOUR;

/// A healthy host: 16 cores, 64 GB, failure probability equal to its risk.
pub fn host(id: &str, zone: &str, rack: &str, risk: f64) -> HostView {
    HostView {
        id: id.into(),
        zone: zone.into(),
        rack: rack.into(),
        cpu_cores: 16.0,
        mem_gb: 64.0,
        risk,
        failure_probability: risk,
        imminence: 1.0,
        alerting: false,
        alert_cleared_at: None,
        up: true,
    }
}

/// An alerting host.
pub fn hot(id: &str, zone: &str, rack: &str, risk: f64, p: f64, imminence: f64) -> HostView {
    HostView { alerting: true, failure_probability: p, imminence, ..host(id, zone, rack, risk) }
}

/// A resource needing 2 cores and 8 GB.
pub fn res(id: &str, host: &str, criticality: u8) -> ResourceView {
    ResourceView { id: id.into(), kind: "service".into(), host: host.into(), criticality, cpu_cores: 2.0, mem_gb: 8.0 }
}

/// The trigger of an alerting host, with its own risk and probability.
pub fn alert(h: &HostView) -> Trigger {
    Trigger::HostAlert { host: h.id.clone(), risk: h.risk, probability: h.failure_probability }
}

pub fn risk(host: &str) -> Cause {
    Cause::Risk { host: host.into() }
}

pub fn manual(by: &str) -> Cause {
    Cause::Manual { by: by.into() }
}

pub fn alert_cause(fingerprint: &str) -> Cause {
    Cause::Alert { fingerprint: fingerprint.into() }
}

/// A shadow planned a day ago, used an hour ago, expiring in six days.
pub fn shadow(resource: &str, primary: &str, host: &str, state: ShadowState, causes: Vec<Cause>) -> Shadow {
    Shadow {
        id: format!("{resource}@{host}#{}", NOW - DAY).into(),
        resource: resource.into(),
        primary: primary.into(),
        host: host.into(),
        state,
        causes,
        priority: 0.5,
        cpu_cores: 2.0,
        mem_gb: 8.0,
        created_at: NOW - DAY,
        updated_at: NOW - HOUR,
        last_used_at: NOW - HOUR,
        expires_at: Some(NOW + 6 * DAY),
        endpoint: None,
    }
}

pub fn input(hosts: Vec<HostView>, resources: Vec<ResourceView>, shadows: Vec<Shadow>, triggers: Vec<Trigger>) -> PlanInput {
    PlanInput { now: NOW, hosts, resources, shadows, triggers, budget: Budget::default() }
}

/// Short descriptions of the actions: `create db-1 on b2`, `retire s (retired)`, ...
pub fn actions(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|a| match &a.kind {
            ActionKind::CreateShadow { shadow } => {
                let causes: Vec<String> = shadow.causes.iter().map(Cause::key).collect();
                format!("create {} on {} [{}]", shadow.resource, shadow.host, causes.join(" "))
            }
            ActionKind::RetireShadow { shadow, state } => format!("retire {shadow} ({state})"),
            ActionKind::ExpireShadow { shadow } => format!("expire {shadow}"),
            ActionKind::PromoteShadow { shadow } => format!("promote {shadow}"),
            ActionKind::AddCause { shadow, cause } => format!("add {} to {shadow}", cause.key()),
            ActionKind::DropCause { shadow, cause } => format!("drop {} from {shadow}", cause.key()),
        })
        .collect()
}

pub fn sid(resource: &str, host: &str) -> String {
    format!("{resource}@{host}#{}", NOW - DAY)
}

pub fn kinds(plan: &Plan) -> Vec<String> {
    plan.decisions().into_iter().map(|d| d.kind).collect()
}
