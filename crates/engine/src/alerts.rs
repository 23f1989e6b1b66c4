//! Prometheus Alertmanager webhooks (`POST /api/v1/alerts`): the payload, and the
//! triggers it means.
//!
//! An alert names what it is about with labels: `resource` names a resource (it takes
//! precedence); `host`, else `hostname`, else `instance` (without a `:port`) names a
//! host. A firing alert asks for shadows of that resource, or of the host's critical
//! resources; a resolved alert retires the shadows it caused unless something else
//! (risk, another alert) still holds them. Alerts are deduplicated on Alertmanager's
//! fingerprint.

use std::collections::BTreeMap;

use harbinger_core::{HostId, ResourceId};
use harbinger_plan::Trigger;
use serde::Deserialize;

/// Alertmanager's webhook body (version 4). Fields harbinger does not use are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Payload version (`"4"`).
    #[serde(default)]
    pub version: String,
    /// The receiver that sent it.
    #[serde(default)]
    pub receiver: String,
    /// The group's status.
    #[serde(default)]
    pub status: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of a webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Identifying labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (`summary` is kept as the reason).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Alertmanager's fingerprint of the label set; computed from the labels when absent.
    #[serde(default)]
    pub fingerprint: String,
}

/// An alert reduced to what the planner needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Fingerprint.
    pub fingerprint: String,
    /// Firing (true) or resolved.
    pub firing: bool,
    /// The host it names.
    pub host: Option<HostId>,
    /// The resource it names.
    pub resource: Option<ResourceId>,
    /// Its summary annotation, or its alert name.
    pub summary: String,
}

impl Alert {
    /// The planner's trigger for this alert.
    pub fn trigger(&self) -> Trigger {
        if self.firing {
            Trigger::AlertFiring {
                fingerprint: self.fingerprint.clone(),
                host: self.host.clone(),
                resource: self.resource.clone(),
                summary: self.summary.clone(),
            }
        } else {
            Trigger::AlertResolved { fingerprint: self.fingerprint.clone() }
        }
    }
}

/// A payload that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("alertmanager payload: {0}")]
pub struct PayloadError(pub String);

/// Parses a webhook body.
///
/// # Errors
/// [`PayloadError`] naming the position or the alert (`alerts[3].status ...`) when the
/// body is not JSON, misses `alerts`, or an alert has an unknown status or names nothing.
pub fn parse(body: &[u8]) -> Result<Vec<Alert>, PayloadError> {
    let p: WebhookPayload = serde_json::from_slice(body).map_err(|e| PayloadError(e.to_string()))?;
    p.alerts.iter().enumerate().map(|(i, a)| reduce(i, a)).collect()
}

fn reduce(i: usize, a: &WebhookAlert) -> Result<Alert, PayloadError> {
    let firing = match a.status.as_str() {
        "firing" => true,
        "resolved" => false,
        other => return Err(PayloadError(format!("alerts[{i}].status is {other:?} (expected \"firing\" or \"resolved\")"))),
    };
    let nonempty = |k: &str| a.labels.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let resource = nonempty("resource").map(ResourceId::new);
    let host = nonempty("host").or_else(|| nonempty("hostname")).or_else(|| nonempty("instance").map(strip_port)).map(HostId::new);
    if firing && resource.is_none() && host.is_none() {
        return Err(PayloadError(format!(
            "alerts[{i}] names no host or resource (labels: {}; expected `resource`, `host`, `hostname` or `instance`)",
            a.labels.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let fingerprint = if a.fingerprint.trim().is_empty() { label_fingerprint(&a.labels) } else { a.fingerprint.trim().to_string() };
    let summary = a.annotations.get("summary").or_else(|| a.labels.get("alertname")).cloned().unwrap_or_default();
    Ok(Alert { fingerprint, firing, host, resource, summary })
}

/// `host:9100` -> `host`; `[::1]:9100` -> `[::1]`; anything else unchanged.
fn strip_port(instance: &str) -> &str {
    match instance.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.chars().all(|c| c.is_ascii_digit()) && (!h.contains(':') || h.ends_with(']')) => h,
        _ => instance,
    }
}

/// A stable 64-bit FNV-1a fingerprint of the sorted label set, in hex (16 digits, like
/// Alertmanager's).
fn label_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{
      "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing", "receiver": "harbinger",
      "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFilling", "instance": "h017:9100"},
         "annotations": {"summary": "disk 95% full"}, "startsAt": "2026-12-05T10:00:00Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "c0ffee0123456789"},
        {"status": "resolved", "labels": {"alertname": "DbLag", "resource": "db-3", "host": "h001"},
         "annotations": {}, "fingerprint": "abad1dea00000000"}
      ]}"#;

    #[test]
    fn a_webhook_becomes_triggers() {
        let alerts = parse(BODY.as_bytes()).expect("parse");
        assert_eq!(alerts.len(), 2);
        assert_eq!(
            alerts[0].trigger(),
            Trigger::AlertFiring {
                fingerprint: "c0ffee0123456789".into(),
                host: Some("h017".into()),
                resource: None,
                summary: "disk 95% full".into()
            }
        );
        assert_eq!(alerts[1].resource.as_ref().map(ResourceId::as_str), Some("db-3"));
        assert_eq!(alerts[1].trigger(), Trigger::AlertResolved { fingerprint: "abad1dea00000000".into() });
    }

    #[test]
    fn bad_payloads_name_what_is_wrong() {
        let e = parse(b"{not json").expect_err("json");
        assert!(e.to_string().starts_with("alertmanager payload: key must be a string at line 1 column 2"), "{e}");
        let e = parse(br#"{"version":"4"}"#).expect_err("no alerts");
        assert!(e.to_string().contains("missing field `alerts`"), "{e}");
        let e = parse(br#"{"alerts":[{"status":"firing","labels":{"host":"h1"}},{"status":"pending","labels":{}}]}"#).expect_err("status");
        assert_eq!(e.to_string(), r#"alertmanager payload: alerts[1].status is "pending" (expected "firing" or "resolved")"#);
        let e = parse(br#"{"alerts":[{"status":"firing","labels":{"alertname":"X","job":"node"}}]}"#).expect_err("names nothing");
        assert!(e.to_string().contains("alerts[0] names no host or resource (labels: alertname, job;"), "{e}");
        let e = parse(br#"{"alerts":[{"status":"firing","labels":{"host":7}}]}"#).expect_err("label type");
        assert!(e.to_string().contains("invalid type: integer `7`, expected a string"), "{e}");
    }

    #[test]
    fn fingerprints_are_computed_when_absent_and_stable() {
        let a = parse(br#"{"alerts":[{"status":"firing","labels":{"host":"h1","alertname":"A"}}]}"#).expect("parse");
        let b = parse(br#"{"alerts":[{"status":"firing","labels":{"alertname":"A","host":"h1"}}]}"#).expect("parse");
        let c = parse(br#"{"alerts":[{"status":"firing","labels":{"alertname":"B","host":"h1"}}]}"#).expect("parse");
        assert_eq!(a[0].fingerprint, b[0].fingerprint, "label order does not matter");
        assert_ne!(a[0].fingerprint, c[0].fingerprint);
        assert_eq!(a[0].fingerprint.len(), 16);
    }

    #[test]
    fn instance_ports_are_stripped() {
        assert_eq!(strip_port("h017:9100"), "h017");
        assert_eq!(strip_port("[::1]:9100"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("h017"), "h017");
        assert_eq!(strip_port("h017:abc"), "h017:abc");
    }
}
