//! Conversions between the wire messages ([`crate::pb`]) and harbinger's domain types, with
//! the validation of what clients send.

use harbinger_core::shadow::{Cause, Shadow, ShadowState};
use harbinger_core::{
    Event, Factor, HostExplanation, HostId, HostRisk, ModelInfo, ResourceId, RiskPoint, SampleBatch, SeriesKey, SeriesSamples, ShadowId,
};
use harbinger_engine::{Executed, Status, StatusFilter};
use harbinger_plan::Decision;

use crate::{GrpcError, pb};

impl From<&Factor> for pb::Factor {
    fn from(f: &Factor) -> Self {
        Self { name: f.name.clone(), value: f.value, contribution: f.contribution }
    }
}

impl From<&HostRisk> for pb::HostRisk {
    fn from(r: &HostRisk) -> Self {
        Self {
            host: r.host.to_string(),
            at_ms: r.at,
            risk: r.risk,
            failure_probability: r.failure_probability,
            horizon_ms: r.horizon_ms,
            anomaly: r.anomaly,
            confidence: r.confidence,
            criticality: u32::from(r.criticality),
            alerting: r.alerting,
            factors: r.factors.iter().map(Into::into).collect(),
            model_version: r.model_version.to_string(),
        }
    }
}

impl From<&RiskPoint> for pb::RiskPoint {
    fn from(p: &RiskPoint) -> Self {
        Self { at_ms: p.at, risk: p.risk, failure_probability: p.failure_probability, anomaly: p.anomaly }
    }
}

impl From<&HostExplanation> for pb::ExplainHostResponse {
    fn from(e: &HostExplanation) -> Self {
        Self {
            risk: Some((&e.risk).into()),
            all_factors: e.all_factors.iter().map(Into::into).collect(),
            history: e.history.iter().map(Into::into).collect(),
        }
    }
}

impl From<&ModelInfo> for pb::ModelInfo {
    fn from(m: &ModelInfo) -> Self {
        Self {
            version: m.version.to_string(),
            horizon_ms: m.horizon_ms,
            learner: m.learner.clone(),
            harbinger_version: m.harbinger_version.clone(),
        }
    }
}

/// Checks a list of host ids from field `field` and turns it into [`HostId`]s.
///
/// # Errors
/// [`GrpcError::Invalid`] for an empty list (when `allow_empty` is false) or an empty id,
/// [`GrpcError::TooManyHosts`] over `limit`.
pub fn host_ids(field: &str, hosts: &[String], limit: usize, allow_empty: bool) -> Result<Vec<HostId>, GrpcError> {
    if hosts.is_empty() && !allow_empty {
        return Err(GrpcError::Invalid(format!("`{field}` is empty: give at least one host id")));
    }
    if hosts.len() > limit {
        return Err(GrpcError::TooManyHosts { requested: hosts.len(), limit });
    }
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let t = h.trim();
            if t.is_empty() { Err(GrpcError::Invalid(format!("`{field}[{i}]` is an empty host id"))) } else { Ok(HostId::new(t)) }
        })
        .collect()
}

/// Checks the `n`-th batch of a `PushMetrics` stream and turns it into a [`SampleBatch`].
///
/// # Errors
/// [`GrpcError::Invalid`] naming the batch and series: empty host or metric, or timestamps
/// and values of different lengths.
pub fn sample_batch(n: u64, batch: pb::SampleBatch) -> Result<SampleBatch, GrpcError> {
    let series = batch
        .series
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let bad = |what: String| GrpcError::Invalid(format!("batch {n}, series[{i}]: {what}"));
            if s.host.trim().is_empty() {
                return Err(bad("empty `host`".into()));
            }
            if s.metric.trim().is_empty() {
                return Err(bad(format!("empty `metric` (host {:?})", s.host)));
            }
            if s.timestamps_ms.len() != s.values.len() {
                return Err(bad(format!("{} timestamps but {} values for {}/{}", s.timestamps_ms.len(), s.values.len(), s.host, s.metric)));
            }
            Ok(SeriesSamples { key: SeriesKey::new(s.host.trim(), s.metric.trim()), timestamps: s.timestamps_ms, values: s.values })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SampleBatch { series })
}

fn kind_name(kind: i32) -> Option<&'static str> {
    Some(match pb::EventKind::try_from(kind).ok()? {
        pb::EventKind::Unspecified => return None,
        pb::EventKind::DeployStarted => "deploy_started",
        pb::EventKind::DeploySucceeded => "deploy_succeeded",
        pb::EventKind::DeployFailed => "deploy_failed",
        pb::EventKind::RolledBack => "rolled_back",
        pb::EventKind::ConfigChanged => "config_changed",
        pb::EventKind::HostMaintenance => "host_maintenance",
        pb::EventKind::HostRecovered => "host_recovered",
    })
}

/// Checks the events of a `PushEvents` request, with the same rules as `events.jsonl`.
///
/// # Errors
/// [`GrpcError::Invalid`] naming the first bad event by index: no events, an unspecified
/// kind, `details_json` that is not a JSON object or repeats a typed field, or anything the
/// `events.jsonl` rules refuse.
pub fn events(req: pb::PushEventsRequest) -> Result<Vec<Event>, GrpcError> {
    if req.events.is_empty() {
        return Err(GrpcError::Invalid("`events` is empty: send at least one event".into()));
    }
    req.events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let bad = |what: String| GrpcError::Invalid(format!("events[{i}]: {what}"));
            let kind = kind_name(e.kind).ok_or_else(|| bad(format!("`kind` {} is not a known event kind", e.kind)))?;
            let mut obj = if e.details_json.trim().is_empty() {
                serde_json::Map::new()
            } else {
                match serde_json::from_str::<serde_json::Value>(&e.details_json) {
                    Ok(serde_json::Value::Object(m)) => m,
                    Ok(_) => return Err(bad("`details_json` must be a JSON object".into())),
                    Err(err) => return Err(bad(format!("`details_json` is not valid JSON: {err}"))),
                }
            };
            for typed in ["ts", "kind", "deployment", "resource", "host"] {
                if obj.contains_key(typed) {
                    return Err(bad(format!("`details_json` sets `{typed}`; use the message field instead")));
                }
            }
            obj.insert("ts".into(), e.ts_ms.into());
            obj.insert("kind".into(), kind.into());
            for (k, v) in [("deployment", e.deployment), ("resource", e.resource), ("host", e.host)] {
                if !v.trim().is_empty() {
                    obj.insert(k.into(), v.trim().into());
                }
            }
            let line = serde_json::Value::Object(obj).to_string();
            let mut parsed = harbinger_core::event::parse_events_jsonl(&line, "event").map_err(|err| bad(err.reason))?;
            parsed.pop().ok_or_else(|| bad("no event parsed".into()))
        })
        .collect()
}

/// Every shadow state, in lifecycle order.
const STATES: [ShadowState; 8] = [
    ShadowState::Planned,
    ShadowState::Provisioning,
    ShadowState::Syncing,
    ShadowState::Ready,
    ShadowState::Promoted,
    ShadowState::Expired,
    ShadowState::Retired,
    ShadowState::Failed,
];

impl From<ShadowState> for pb::ShadowState {
    fn from(s: ShadowState) -> Self {
        match s {
            ShadowState::Planned => Self::Planned,
            ShadowState::Provisioning => Self::Provisioning,
            ShadowState::Syncing => Self::Syncing,
            ShadowState::Ready => Self::Ready,
            ShadowState::Promoted => Self::Promoted,
            ShadowState::Expired => Self::Expired,
            ShadowState::Retired => Self::Retired,
            ShadowState::Failed => Self::Failed,
        }
    }
}

impl From<&Cause> for pb::Cause {
    fn from(c: &Cause) -> Self {
        let key = c.key();
        match c {
            Cause::Risk { host } => Self { r#type: "risk".into(), host: host.to_string(), key, ..Self::default() },
            Cause::Alert { fingerprint } => Self { r#type: "alert".into(), fingerprint: fingerprint.clone(), key, ..Self::default() },
            Cause::Event { kind, id } => Self { r#type: "event".into(), kind: kind.clone(), id: id.clone(), key, ..Self::default() },
            Cause::Manual { by } => Self { r#type: "manual".into(), by: by.clone(), key, ..Self::default() },
        }
    }
}

impl From<&Shadow> for pb::Shadow {
    fn from(s: &Shadow) -> Self {
        Self {
            id: s.id.to_string(),
            resource: s.resource.to_string(),
            primary: s.primary.to_string(),
            host: s.host.to_string(),
            state: pb::ShadowState::from(s.state).into(),
            causes: s.causes.iter().map(Into::into).collect(),
            priority: s.priority,
            cpu_cores: s.cpu_cores,
            mem_gb: s.mem_gb,
            created_at_ms: s.created_at,
            updated_at_ms: s.updated_at,
            last_used_at_ms: s.last_used_at,
            expires_at_ms: s.expires_at,
            endpoint: s.endpoint.clone(),
            live: s.is_live(),
        }
    }
}

impl From<&Decision> for pb::Decision {
    fn from(d: &Decision) -> Self {
        Self {
            ts_ms: d.ts,
            kind: d.kind.clone(),
            host: d.host.to_string(),
            resource: d.resource.as_ref().map(ToString::to_string),
            target_host: d.target_host.as_ref().map(ToString::to_string),
            reason: d.reason.clone(),
            shadow: d.shadow.as_ref().map(ToString::to_string),
            priority: d.priority,
            cause: d.cause.as_ref().map(Into::into),
        }
    }
}

impl From<&Executed> for pb::ShadowAction {
    fn from(e: &Executed) -> Self {
        Self {
            key: e.key.clone(),
            status: e.status.as_str().to_string(),
            detail: e.detail.clone(),
            decision: Some((&e.decision).into()),
            shadow: e.shadow.as_ref().map(Into::into),
        }
    }
}

impl From<&Status> for pb::ShadowStatusResponse {
    fn from(s: &Status) -> Self {
        Self {
            shadows: s.shadows.iter().map(Into::into).collect(),
            counts: s.counts.iter().map(|(k, v)| (k.as_str().to_string(), *v as u64)).collect(),
            decisions: s.decisions.iter().map(Into::into).collect(),
            pending_actions: s.pending_actions as u64,
            actuator: s.actuator.to_string(),
            now_ms: s.now,
        }
    }
}

/// What `WatchShadows` sends in place of `skipped` actions a slow client missed.
pub fn lagged(skipped: u64) -> pb::ShadowAction {
    pb::ShadowAction {
        status: "lagged".into(),
        detail: format!("{skipped} actions were skipped because this stream was read too slowly; call GetShadowStatus to resync"),
        ..pb::ShadowAction::default()
    }
}

/// A required id field `field`, trimmed.
///
/// # Errors
/// [`GrpcError::Invalid`] naming the field when it is empty.
pub fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, GrpcError> {
    let t = value.trim();
    if t.is_empty() { Err(GrpcError::Invalid(format!("`{field}` is empty"))) } else { Ok(t) }
}

/// A shadow state by name: `ready`, or the enum name `SHADOW_STATE_READY` (any case).
///
/// # Errors
/// [`GrpcError::Invalid`] for any other name, listing the known ones.
pub fn shadow_state(name: &str) -> Result<ShadowState, GrpcError> {
    let t = name.trim().to_ascii_lowercase();
    let t = t.strip_prefix("shadow_state_").unwrap_or(&t);
    STATES.into_iter().find(|s| s.as_str() == t).ok_or_else(|| {
        let known: Vec<&str> = STATES.iter().map(|s| s.as_str()).collect();
        GrpcError::Invalid(format!(
            "`state` {} is not a shadow state (expected one of {})",
            harbinger_core::ids::echo(name),
            known.join(", ")
        ))
    })
}

/// Checks the filters of a `GetShadowStatus` request.
///
/// # Errors
/// [`GrpcError::Invalid`] naming a filter given empty, or an unknown state name.
pub fn status_filter(req: &pb::ShadowStatusRequest) -> Result<StatusFilter, GrpcError> {
    Ok(StatusFilter {
        id: req.id.as_deref().map(|v| required("id", v).map(ShadowId::new)).transpose()?,
        resource: req.resource.as_deref().map(|v| required("resource", v).map(ResourceId::new)).transpose()?,
        host: req.host.as_deref().map(|v| required("host", v).map(HostId::new)).transpose()?,
        state: req.state.as_deref().map(shadow_state).transpose()?,
        live: req.live_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbinger_core::EventKind;

    #[test]
    fn host_lists_are_checked() {
        let ok = host_ids("hosts", &["h1".into(), " h2 ".into()], 5, false).expect("valid");
        assert_eq!(ok, vec![HostId::new("h1"), HostId::new("h2")]);
        let e = host_ids("hosts", &[], 5, false).expect_err("empty");
        assert_eq!(e.to_string(), "`hosts` is empty: give at least one host id");
        let e = host_ids("hosts", &["h1".into(), "".into()], 5, false).expect_err("empty id");
        assert_eq!(e.to_string(), "`hosts[1]` is an empty host id");
        let e = host_ids("hosts", &vec!["h".into(); 6], 5, false).expect_err("too many");
        assert!(matches!(e, GrpcError::TooManyHosts { requested: 6, limit: 5 }));
        assert!(host_ids("hosts", &[], 5, true).expect("empty allowed").is_empty());
    }

    #[test]
    fn sample_batches_name_the_bad_series() {
        let s = |host: &str, metric: &str, t: Vec<i64>, v: Vec<f64>| pb::Series {
            host: host.into(),
            metric: metric.into(),
            timestamps_ms: t,
            values: v,
        };
        let b = sample_batch(0, pb::SampleBatch { series: vec![s("h1", "cpu", vec![1, 2], vec![0.5, 0.6])] }).expect("ok");
        assert_eq!(b.sample_count(), 2);
        assert_eq!(b.series[0].key, SeriesKey::new("h1", "cpu"));
        let e = sample_batch(3, pb::SampleBatch { series: vec![s("h1", "cpu", vec![1], vec![]), s("", "x", vec![], vec![])] })
            .expect_err("length mismatch");
        assert_eq!(e.to_string(), "batch 3, series[0]: 1 timestamps but 0 values for h1/cpu");
        let e = sample_batch(0, pb::SampleBatch { series: vec![s("h1", " ", vec![], vec![])] }).expect_err("no metric");
        assert_eq!(e.to_string(), "batch 0, series[0]: empty `metric` (host \"h1\")");
    }

    #[test]
    fn events_follow_the_jsonl_rules() {
        let ev = |kind: pb::EventKind, details: &str| pb::Event {
            ts_ms: 1_700_000_000_000,
            kind: kind as i32,
            deployment: "d-1".into(),
            resource: String::new(),
            host: "h3".into(),
            details_json: details.into(),
        };
        let out = events(pb::PushEventsRequest {
            events: vec![ev(pb::EventKind::DeployStarted, r#"{"from":"1.0","changes":[{"path":"/a","to":2}],"team":"x"}"#)],
        })
        .expect("valid");
        assert_eq!(out[0].kind, EventKind::DeployStarted);
        assert_eq!(out[0].host, Some(HostId::new("h3")));
        assert_eq!(out[0].changes[0].path, "/a");
        assert_eq!(out[0].extra["team"], "x");

        let e = events(pb::PushEventsRequest { events: vec![ev(pb::EventKind::RolledBack, ""), ev(pb::EventKind::Unspecified, "")] })
            .expect_err("unspecified");
        assert_eq!(e.to_string(), "events[1]: `kind` 0 is not a known event kind");
        let e = events(pb::PushEventsRequest { events: vec![ev(pb::EventKind::RolledBack, "[1]")] }).expect_err("array");
        assert_eq!(e.to_string(), "events[0]: `details_json` must be a JSON object");
        let e = events(pb::PushEventsRequest { events: vec![ev(pb::EventKind::RolledBack, r#"{"host":"h9"}"#)] }).expect_err("dup");
        assert!(e.to_string().contains("sets `host`"), "{e}");
        let e = events(pb::PushEventsRequest { events: vec![ev(pb::EventKind::RolledBack, r#"{"changes":5}"#)] }).expect_err("bad changes");
        assert!(e.to_string().starts_with("events[0]: invalid event"), "{e}");
        assert!(events(pb::PushEventsRequest { events: vec![] }).is_err());
    }

    #[test]
    fn shadow_status_filters_are_checked() {
        let req = |f: fn(&mut pb::ShadowStatusRequest)| {
            let mut r = pb::ShadowStatusRequest::default();
            f(&mut r);
            status_filter(&r)
        };
        assert_eq!(req(|_| {}).expect("no filter"), StatusFilter::default());
        let f = req(|r| {
            r.resource = Some(" db-1 ".into());
            r.state = Some("SHADOW_STATE_READY".into());
            r.live_only = true;
        })
        .expect("valid");
        assert_eq!((f.resource, f.state, f.live), (Some(ResourceId::new("db-1")), Some(ShadowState::Ready), true));
        assert_eq!(req(|r| r.state = Some("Syncing".into())).expect("any case").state, Some(ShadowState::Syncing));
        let e = req(|r| r.id = Some(" ".into())).expect_err("empty id");
        assert_eq!(e.to_string(), "`id` is empty");
        let e = req(|r| r.host = Some(String::new())).expect_err("empty host");
        assert_eq!(e.to_string(), "`host` is empty");
        let e = req(|r| r.state = Some("gone".into())).expect_err("unknown state");
        assert!(e.to_string().starts_with("`state` \"gone\" is not a shadow state (expected one of planned, "), "{e}");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn shadows_and_decisions_keep_every_field() {
        let s = Shadow {
            id: "db@b1#5".into(),
            resource: "db".into(),
            primary: "a1".into(),
            host: "b1".into(),
            state: ShadowState::Ready,
            causes: vec![Cause::Manual { by: "alice".into() }, Cause::Event { kind: "deploy_started".into(), id: "d-1".into() }],
            priority: 0.75,
            cpu_cores: 2.0,
            mem_gb: 4.0,
            created_at: 5,
            updated_at: 6,
            last_used_at: 7,
            expires_at: Some(9),
            endpoint: None,
        };
        let p = pb::Shadow::from(&s);
        assert_eq!((p.state(), p.live, p.expires_at_ms), (pb::ShadowState::Ready, true, Some(9)));
        assert_eq!((p.created_at_ms, p.updated_at_ms, p.last_used_at_ms), (5, 6, 7));
        assert_eq!((p.causes[0].r#type.as_str(), p.causes[0].by.as_str(), p.causes[0].key.as_str()), ("manual", "alice", "manual:alice"));
        assert_eq!((p.causes[1].kind.as_str(), p.causes[1].id.as_str()), ("deploy_started", "d-1"));
        let d = Decision {
            ts: 5,
            kind: "shadow_planned".into(),
            host: "a1".into(),
            resource: Some("db".into()),
            target_host: Some("b1".into()),
            reason: "asked".into(),
            shadow: Some("db@b1#5".into()),
            priority: Some(0.75),
            cause: Some(Cause::Alert { fingerprint: "fp".into() }),
        };
        let p = pb::Decision::from(&d);
        assert_eq!((p.resource.as_deref(), p.target_host.as_deref(), p.shadow.as_deref()), (Some("db"), Some("b1"), Some("db@b1#5")));
        assert_eq!(p.cause.map(|c| (c.r#type, c.fingerprint)), Some(("alert".into(), "fp".into())));
        for st in STATES {
            assert_eq!(shadow_state(st.as_str()).expect("own name"), st);
            let name = pb::ShadowState::from(st).as_str_name();
            assert_eq!(shadow_state(name).expect("enum name"), st, "{name}");
        }
    }
}
