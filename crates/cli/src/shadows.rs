//! `harbinger shadows`: the engine's shadows on a running server, over gRPC
//! (`harbinger.v1.ShadowService`): `list`, `show ID`, `create RESOURCE`, `promote ID`.
//!
//! Text for people (a table for `list`), `--json` for scripts (field names as in the
//! proto, states by name). A refused call exits non-zero with the server's status, e.g.
//! `error: NOT_FOUND: unknown resource "db-9"`.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use harbinger_grpc::pb;
use serde_json::{Value, json};

use crate::args::{ShadowsArgs, ShadowsCommand};
use crate::score::describe_status;

/// A state's name as the HTTP API and `--state` write it: `ready`.
pub fn state_name(state: i32) -> String {
    match pb::ShadowState::try_from(state) {
        Ok(s) => s.as_str_name().trim_start_matches("SHADOW_STATE_").to_ascii_lowercase(),
        Err(_) => format!("state {state}"),
    }
}

/// A time in ms since the epoch as RFC 3339 (UTC, milliseconds).
fn time(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(u) => humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(u)).to_string(),
        Err(_) => format!("{ms} ms"),
    }
}

fn causes(s: &pb::Shadow) -> String {
    s.causes.iter().map(|c| c.key.as_str()).collect::<Vec<_>>().join(",")
}

/// Left-aligned columns two spaces apart, trailing spaces trimmed.
fn aligned(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|x| x.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _infallible = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

fn counts(r: &pb::ShadowStatusResponse) -> String {
    let mut c: Vec<(&String, &u64)> = r.counts.iter().collect();
    c.sort();
    if c.is_empty() { "none".into() } else { c.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ") }
}

/// `list`: one row per shadow (id, resource, primary, host, state, causes, priority),
/// then the counts of every shadow by state, pending actions and the actuator.
pub fn list_table(r: &pb::ShadowStatusResponse) -> String {
    let mut rows = vec![["id", "resource", "primary", "host", "state", "causes", "priority"].map(String::from).to_vec()];
    for s in &r.shadows {
        rows.push(vec![
            s.id.clone(),
            s.resource.clone(),
            s.primary.clone(),
            s.host.clone(),
            state_name(s.state),
            causes(s),
            format!("{:.3}", s.priority),
        ]);
    }
    let mut out = aligned(&rows);
    let n = r.shadows.len();
    let _infallible = writeln!(
        out,
        "{n} shadow{} listed; all shadows: {}; {} pending action{}; actuator {}",
        if n == 1 { "" } else { "s" },
        counts(r),
        r.pending_actions,
        if r.pending_actions == 1 { "" } else { "s" },
        r.actuator
    );
    out
}

/// `show`: the shadow's fields, one per line, then the recent decisions about its resource.
pub fn show_text(s: &pb::Shadow, decisions: &[pb::Decision]) -> String {
    let live = if s.live { " (live)" } else { "" };
    let rows: Vec<Vec<String>> = [
        ("id", s.id.clone()),
        ("resource", s.resource.clone()),
        ("primary", s.primary.clone()),
        ("host", s.host.clone()),
        ("state", format!("{}{live}", state_name(s.state))),
        ("causes", causes(s)),
        ("priority", format!("{:.3}", s.priority)),
        ("cpu_cores", s.cpu_cores.to_string()),
        ("mem_gb", s.mem_gb.to_string()),
        ("created", time(s.created_at_ms)),
        ("updated", time(s.updated_at_ms)),
        ("last_used", time(s.last_used_at_ms)),
        ("expires", s.expires_at_ms.map_or_else(|| "never".into(), time)),
        ("endpoint", s.endpoint.clone().unwrap_or_else(|| "-".into())),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_string(), v])
    .collect();
    let mut out = aligned(&rows);
    if !decisions.is_empty() {
        let _infallible = writeln!(out, "decisions about {}, oldest first:", s.resource);
        let rows: Vec<Vec<String>> =
            decisions.iter().map(|d| vec![format!("  {}", time(d.ts_ms)), d.kind.clone(), d.reason.clone()]).collect();
        out.push_str(&aligned(&rows));
    }
    out
}

/// `create` and `promote`: each action's outcome, the shadow after it and why.
pub fn actions_text(actions: &[pb::ShadowAction]) -> String {
    let mut out = String::new();
    for a in actions {
        let _infallible = writeln!(out, "{} {}: {}", a.status, a.key, a.detail);
        if let Some(s) = &a.shadow {
            let _infallible =
                writeln!(out, "  shadow {} of {} on {} (primary {}): {}", s.id, s.resource, s.host, s.primary, state_name(s.state));
        }
        if let Some(d) = &a.decision {
            let _infallible = writeln!(out, "  {}: {}", d.kind, d.reason);
        }
    }
    if actions.is_empty() {
        out.push_str("no action taken\n");
    }
    out
}

fn cause_json(c: &pb::Cause) -> Value {
    let mut v = json!({ "type": c.r#type, "key": c.key });
    for (k, x) in [("host", &c.host), ("fingerprint", &c.fingerprint), ("kind", &c.kind), ("id", &c.id), ("by", &c.by)] {
        if !x.is_empty() {
            v[k] = json!(x);
        }
    }
    v
}

/// A shadow as JSON: the proto's field names, the state by name.
pub fn shadow_json(s: &pb::Shadow) -> Value {
    json!({
        "id": s.id, "resource": s.resource, "primary": s.primary, "host": s.host,
        "state": state_name(s.state), "live": s.live,
        "causes": s.causes.iter().map(cause_json).collect::<Vec<_>>(),
        "priority": s.priority, "cpu_cores": s.cpu_cores, "mem_gb": s.mem_gb,
        "created_at_ms": s.created_at_ms, "updated_at_ms": s.updated_at_ms,
        "last_used_at_ms": s.last_used_at_ms, "expires_at_ms": s.expires_at_ms, "endpoint": s.endpoint,
    })
}

/// A decision as JSON (the proto's field names; unset optional fields are null).
pub fn decision_json(d: &pb::Decision) -> Value {
    json!({
        "ts_ms": d.ts_ms, "kind": d.kind, "host": d.host, "resource": d.resource,
        "target_host": d.target_host, "reason": d.reason, "shadow": d.shadow,
        "priority": d.priority, "cause": d.cause.as_ref().map(cause_json),
    })
}

/// An action as JSON.
pub fn action_json(a: &pb::ShadowAction) -> Value {
    json!({
        "key": a.key, "status": a.status, "detail": a.detail,
        "decision": a.decision.as_ref().map(decision_json),
        "shadow": a.shadow.as_ref().map(shadow_json),
    })
}

/// A status answer as JSON.
pub fn status_json(r: &pb::ShadowStatusResponse) -> Value {
    let counts: serde_json::Map<String, Value> = r.counts.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({
        "shadows": r.shadows.iter().map(shadow_json).collect::<Vec<_>>(),
        "counts": counts,
        "decisions": r.decisions.iter().map(decision_json).collect::<Vec<_>>(),
        "pending_actions": r.pending_actions, "actuator": r.actuator, "now_ms": r.now_ms,
    })
}

fn requested_by(by: Option<&String>) -> String {
    by.cloned().or_else(|| std::env::var("USER").ok()).unwrap_or_default()
}

fn with_timeout<T>(m: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.set_timeout(timeout);
    r
}

fn pretty(v: &Value) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(v)?))
}

/// Performs the command and returns what `harbinger shadows` prints.
///
/// # Errors
/// A bad flag, a connection failure, or the server's status (`NOT_FOUND: ...`); `show` of
/// an id no shadow has is `NOT_FOUND` too.
pub async fn execute(a: &ShadowsArgs) -> anyhow::Result<String> {
    let timeout = humantime::parse_duration(&a.timeout).with_context(|| format!("--timeout {:?} is not a duration", a.timeout))?;
    let ca = match &a.ca_cert {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading --ca-cert {}", p.display()))?),
        None => None,
    };
    let mut client = harbinger_grpc::client::connect(&a.addr, a.token.as_deref(), ca).await?.shadow;
    let refused = |s: tonic::Status| anyhow::anyhow!(describe_status(&s, timeout));
    match &a.command {
        ShadowsCommand::List { resource, host, state, live } => {
            let filter = pb::ShadowStatusRequest {
                id: None,
                resource: resource.clone(),
                host: host.clone(),
                state: state.clone(),
                live_only: *live,
            };
            let r = client.get_shadow_status(with_timeout(filter, timeout)).await.map_err(refused)?.into_inner();
            if a.json { pretty(&status_json(&r)) } else { Ok(list_table(&r)) }
        }
        ShadowsCommand::Show { id } => {
            let filter = pb::ShadowStatusRequest { id: Some(id.clone()), ..Default::default() };
            let r = client.get_shadow_status(with_timeout(filter, timeout)).await.map_err(refused)?.into_inner();
            let Some(s) = r.shadows.first() else {
                anyhow::bail!("NOT_FOUND: unknown shadow {}", harbinger_core::ids::echo(id));
            };
            if a.json {
                pretty(&json!({ "shadow": shadow_json(s), "decisions": r.decisions.iter().map(decision_json).collect::<Vec<_>>() }))
            } else {
                Ok(show_text(s, &r.decisions))
            }
        }
        ShadowsCommand::Create { resource, by } => {
            let m = pb::CreateShadowRequest { resource: resource.clone(), requested_by: requested_by(by.as_ref()) };
            let r = client.create_shadow(with_timeout(m, timeout)).await.map_err(refused)?.into_inner();
            if a.json {
                pretty(&json!({ "actions": r.actions.iter().map(action_json).collect::<Vec<_>>() }))
            } else {
                Ok(actions_text(&r.actions))
            }
        }
        ShadowsCommand::Promote { id, by } => {
            let m = pb::PromoteShadowRequest { id: id.clone(), requested_by: requested_by(by.as_ref()) };
            let r = client.promote_shadow(with_timeout(m, timeout)).await.map_err(refused)?.into_inner();
            if a.json { pretty(&json!({ "action": action_json(&r) })) } else { Ok(actions_text(std::slice::from_ref(&r))) }
        }
    }
}

/// Runs `harbinger shadows`: [`execute`], printed on stdout.
///
/// # Errors
/// See [`execute`].
pub async fn run(a: &ShadowsArgs) -> anyhow::Result<()> {
    print!("{}", execute(a).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    fn shadow(id: &str, state: pb::ShadowState) -> pb::Shadow {
        pb::Shadow {
            id: id.into(),
            resource: "db-1".into(),
            primary: "a1".into(),
            host: "b1".into(),
            state: state.into(),
            causes: vec![
                pb::Cause { r#type: "manual".into(), by: "alice".into(), key: "manual:alice".into(), ..Default::default() },
                pb::Cause { r#type: "risk".into(), host: "a1".into(), key: "risk:a1".into(), ..Default::default() },
            ],
            priority: 0.91234,
            cpu_cores: 2.0,
            mem_gb: 4.0,
            created_at_ms: 1_700_000_000_000,
            updated_at_ms: 1_700_000_000_000,
            last_used_at_ms: 1_700_000_000_000,
            expires_at_ms: None,
            endpoint: None,
            live: state == pb::ShadowState::Ready,
        }
    }

    #[test]
    fn the_list_is_a_table_with_counts() {
        let r = pb::ShadowStatusResponse {
            shadows: vec![shadow("db-1@b1#1", pb::ShadowState::Ready)],
            counts: [("ready".to_string(), 1), ("promoted".to_string(), 2)].into_iter().collect(),
            decisions: vec![],
            pending_actions: 0,
            actuator: "log".into(),
            now_ms: 5,
        };
        let t = list_table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "id         resource  primary  host  state  causes                priority", "{t}");
        assert_eq!(lines[1], "db-1@b1#1  db-1      a1       b1    ready  manual:alice,risk:a1  0.912", "{t}");
        assert_eq!(lines[2], "1 shadow listed; all shadows: 2 promoted, 1 ready; 0 pending actions; actuator log");
        let v = status_json(&r);
        assert_eq!((v["shadows"][0]["state"].as_str(), v["counts"]["promoted"].as_u64()), (Some("ready"), Some(2)));
        assert_eq!(v["shadows"][0]["causes"][0], json!({"type": "manual", "key": "manual:alice", "by": "alice"}));
    }

    #[test]
    fn show_and_actions_read_as_text() {
        let s = shadow("db-1@b1#1", pb::ShadowState::Promoted);
        let d = pb::Decision {
            ts_ms: 1_700_000_000_000,
            kind: "shadow_promoted".into(),
            host: "a1".into(),
            resource: Some("db-1".into()),
            reason: "promoted by hand by ops".into(),
            ..Default::default()
        };
        let t = show_text(&s, std::slice::from_ref(&d));
        assert!(t.starts_with("id         db-1@b1#1\n"), "{t}");
        assert!(t.contains("\nstate      promoted\n") && t.contains("\nexpires    never\n"), "{t}");
        assert!(t.contains("\ncreated    2023-11-14T22:13:20.000Z\n"), "{t}");
        assert!(
            t.ends_with("decisions about db-1, oldest first:\n  2023-11-14T22:13:20.000Z  shadow_promoted  promoted by hand by ops\n"),
            "{t}"
        );
        let a = pb::ShadowAction {
            key: "promote:db-1@b1#1".into(),
            status: "dry_run".into(),
            detail: "would promote".into(),
            decision: Some(d),
            shadow: Some(s),
        };
        let t = actions_text(std::slice::from_ref(&a));
        assert_eq!(
            t,
            "dry_run promote:db-1@b1#1: would promote\n  shadow db-1@b1#1 of db-1 on b1 (primary a1): promoted\n  shadow_promoted: promoted by hand by ops\n"
        );
        assert_eq!(action_json(&a)["decision"]["target_host"], Value::Null);
        assert_eq!(state_name(0), "unspecified");
        assert_eq!(state_name(99), "state 99");
    }

    #[test]
    fn flags_parse_before_and_after_the_subcommand() {
        let cli =
            Cli::try_parse_from(["harbinger", "shadows", "--addr", "h:1", "list", "--state", "ready", "--live", "--json"]).expect("parses");
        let Command::Shadows(a) = cli.command else { panic!("shadows expected") };
        assert_eq!((a.addr.as_str(), a.json), ("h:1", true));
        let ShadowsCommand::List { state, live, resource: None, host: None } = a.command else { panic!("list expected") };
        assert_eq!((state.as_deref(), live), (Some("ready"), true));
        let cli = Cli::try_parse_from(["harbinger", "shadows", "create", "db-1", "--by", "alice", "--token", "t"]).expect("parses");
        let Command::Shadows(a) = cli.command else { panic!("shadows expected") };
        assert_eq!(a.token.as_deref(), Some("t"));
        let ShadowsCommand::Create { resource, by } = a.command else { panic!("create expected") };
        assert_eq!((resource.as_str(), by.as_deref()), ("db-1", Some("alice")));
        assert!(Cli::try_parse_from(["harbinger", "shadows", "promote"]).is_err(), "ID is required");
        assert!(Cli::try_parse_from(["harbinger", "shadows", "show", "x"]).is_ok());
    }
}
