//! Conversions between the wire messages ([`crate::pb`]) and harbinger's domain types, with
//! the validation of what clients send.

use harbinger_core::{
    Event, Factor, HostExplanation, HostId, HostRisk, ModelInfo, RiskPoint, SampleBatch, SeriesKey, SeriesSamples,
};

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
            if t.is_empty() {
                Err(GrpcError::Invalid(format!("`{field}[{i}]` is an empty host id")))
            } else {
                Ok(HostId::new(t))
            }
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
                return Err(bad(format!(
                    "{} timestamps but {} values for {}/{}",
                    s.timestamps_ms.len(),
                    s.values.len(),
                    s.host,
                    s.metric
                )));
            }
            Ok(SeriesSamples {
                key: SeriesKey::new(s.host.trim(), s.metric.trim()),
                timestamps: s.timestamps_ms,
                values: s.values,
            })
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
        let e = events(pb::PushEventsRequest { events: vec![ev(pb::EventKind::RolledBack, r#"{"host":"h9"}"#)] })
            .expect_err("dup");
        assert!(e.to_string().contains("sets `host`"), "{e}");
        let e = events(pb::PushEventsRequest { events: vec![ev(pb::EventKind::RolledBack, r#"{"changes":5}"#)] })
            .expect_err("bad changes");
        assert!(e.to_string().starts_with("events[0]: invalid event"), "{e}");
        assert!(events(pb::PushEventsRequest { events: vec![] }).is_err());
    }
}
