//! Deployment and change events, as in `events.jsonl` and `POST /api/v1/events`.

use serde::{Deserialize, Serialize};

use crate::{HostId, TimestampMs};

/// The kinds of event the contract defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A deployment began.
    DeployStarted,
    /// A deployment finished and the new version serves.
    DeploySucceeded,
    /// A deployment failed.
    DeployFailed,
    /// A change was reverted.
    RolledBack,
    /// Configuration changed without a deployment.
    ConfigChanged,
    /// A host entered maintenance.
    HostMaintenance,
    /// A host came back (after maintenance or a failure).
    HostRecovered,
}

impl EventKind {
    /// Every kind, in contract order.
    pub const ALL: [EventKind; 7] = [
        Self::DeployStarted,
        Self::DeploySucceeded,
        Self::DeployFailed,
        Self::RolledBack,
        Self::ConfigChanged,
        Self::HostMaintenance,
        Self::HostRecovered,
    ];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeployStarted => "deploy_started",
            Self::DeploySucceeded => "deploy_succeeded",
            Self::DeployFailed => "deploy_failed",
            Self::RolledBack => "rolled_back",
            Self::ConfigChanged => "config_changed",
            Self::HostMaintenance => "host_maintenance",
            Self::HostRecovered => "host_recovered",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One change inside a deployment: a JSON pointer into the resource's `state`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// JSON pointer, e.g. `/config/pool_size`.
    pub path: String,
    /// Value before the change (absent for additions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<serde_json::Value>,
    /// Value after the change (absent for removals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<serde_json::Value>,
}

/// A deployment or change event. Only `ts` and `kind` are required. Fields the contract
/// does not name are kept in `extra` and written back unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened, ms since epoch.
    pub ts: TimestampMs,
    /// What happened.
    pub kind: EventKind,
    /// Deployment id, e.g. `d-41`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Resource id from `resources.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Host id from `hosts.csv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostId>,
    /// Version before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<serde_json::Value>,
    /// Version after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<serde_json::Value>,
    /// What the change touches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Any other fields, preserved.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    /// A bare event of `kind` at `ts`.
    pub fn new(ts: TimestampMs, kind: EventKind) -> Self {
        Self {
            ts,
            kind,
            deployment: None,
            resource: None,
            host: None,
            from: None,
            to: None,
            changes: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }
}

/// An event line that could not be accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{source_name} line {line}: {reason}")]
pub struct EventError {
    /// File name or request description.
    pub source_name: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses JSON lines into events. Blank lines are skipped. The first bad line fails the
/// whole input (nothing is half-accepted), with its line number and the reason.
///
/// # Errors
/// [`EventError`] naming `source_name`, the line, and what is wrong: invalid JSON, a
/// missing or non-integer `ts`, a missing or unknown `kind`.
pub fn parse_events_jsonl(text: &str, source_name: &str) -> Result<Vec<Event>, EventError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let err = |reason: String| EventError { source_name: source_name.to_string(), line: i + 1, reason };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| err("expected a JSON object".into()))?;
        match obj.get("ts") {
            None => return Err(err("missing required field `ts`".into())),
            Some(t) if !t.is_i64() => return Err(err(format!("`ts` must be an integer (ms since epoch), got {t}"))),
            Some(_) => {}
        }
        match obj.get("kind") {
            None => return Err(err("missing required field `kind`".into())),
            Some(serde_json::Value::String(k)) if EventKind::parse(k).is_none() => {
                let known: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(err(format!("unknown event kind {k:?} (expected one of {})", known.join(", "))));
            }
            Some(serde_json::Value::String(_)) => {}
            Some(k) => return Err(err(format!("`kind` must be a string, got {k}"))),
        }
        let ev: Event = serde_json::from_value(v).map_err(|e| err(format!("invalid event: {e}")))?;
        out.push(ev);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_example_and_keeps_extra_fields() {
        let line = r#"{"ts": 1700000000000, "kind": "deploy_started", "deployment": "d-41", "resource": "api-2", "host": "h003", "from": "1.4.0", "to": "1.5.0", "changes": [{"path": "/config/pool_size", "from": 16, "to": 64}], "team": "payments"}"#;
        let evs = parse_events_jsonl(&format!("{line}\n\n"), "events.jsonl").expect("valid");
        assert_eq!(evs.len(), 1);
        let e = &evs[0];
        assert_eq!(e.kind, EventKind::DeployStarted);
        assert_eq!(e.host.as_ref().map(HostId::as_str), Some("h003"));
        assert_eq!(e.changes[0].path, "/config/pool_size");
        assert_eq!(e.extra["team"], "payments");
        let back = serde_json::to_value(e).expect("serialises");
        assert_eq!(back["team"], "payments");
        assert_eq!(back["kind"], "deploy_started");
    }

    #[test]
    fn bad_lines_name_the_line_and_reason() {
        let text = "{\"ts\": 1, \"kind\": \"rolled_back\"}\n{\"ts\": 2, \"kind\": \"exploded\"}\n";
        let e = parse_events_jsonl(text, "req").expect_err("unknown kind");
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("req line 2: unknown event kind \"exploded\""), "{e}");

        let e = parse_events_jsonl("{\"kind\": \"rolled_back\"}", "f").expect_err("no ts");
        assert_eq!(e.reason, "missing required field `ts`");
        let e = parse_events_jsonl("{\"ts\": 1.5, \"kind\": \"rolled_back\"}", "f").expect_err("float ts");
        assert!(e.reason.contains("must be an integer"), "{e}");
        let e = parse_events_jsonl("{\"ts\": 1,", "f").expect_err("bad json");
        assert!(e.reason.starts_with("invalid JSON"), "{e}");
        let e = parse_events_jsonl("[1,2]", "f").expect_err("not object");
        assert_eq!(e.reason, "expected a JSON object");
    }
}
