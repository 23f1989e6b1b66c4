//! `harbinger score`: asks a running server for host risks over gRPC and prints them.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use harbinger_grpc::pb;

use crate::args::ScoreArgs;

/// The canonical name of a status code (`NOT_FOUND`), as gRPC documents them.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A status as one line: `NOT_FOUND: unknown host "h9" ...`. tonic reports its own
/// client-side deadline as CANCELLED "Timeout expired"; that is shown as DEADLINE_EXCEEDED.
pub fn describe_status(s: &tonic::Status, timeout: Duration) -> String {
    if s.code() == tonic::Code::Cancelled && s.message() == "Timeout expired" {
        return format!("DEADLINE_EXCEEDED: no answer within {}", humantime::format_duration(timeout));
    }
    format!("{}: {}", code_name(s.code()), s.message())
}

fn fmt_horizon(ms: i64) -> String {
    if ms % 3_600_000 == 0 { format!("{}h", ms / 3_600_000) } else { format!("{}m", ms / 60_000) }
}

/// One factor as `name=value (+contribution)`; a value that was not seen (NaN: the input
/// was missing) reads `missing`, never a number.
fn factor_text(f: &pb::Factor) -> String {
    if f.value.is_finite() {
        format!("{}={:.3} ({:+.2})", f.name, f.value, f.contribution)
    } else {
        format!("{}=missing ({:+.2})", f.name, f.contribution)
    }
}

/// The top factors of a host, or why there are none: a host without recent data
/// (confidence 0) has nothing seen that could drive its score.
fn factors_cell(h: &pb::HostRisk) -> String {
    if h.factors.is_empty() {
        return if h.confidence > 0.0 { "-".into() } else { "no recent data".into() };
    }
    h.factors.iter().take(3).map(factor_text).collect::<Vec<_>>().join(", ")
}

/// The scores as an aligned text table, then the model version.
pub fn table(r: &pb::ScoreHostsResponse) -> String {
    let mut rows = vec![[
        "host".to_string(),
        "risk".into(),
        "p(fail)".into(),
        "horizon".into(),
        "anomaly".into(),
        "confidence".into(),
        "crit".into(),
        "alerting".into(),
        "top factors".into(),
    ]];
    for h in &r.risks {
        let factors = factors_cell(h);
        rows.push([
            h.host.clone(),
            format!("{:.3}", h.risk),
            format!("{:.3}", h.failure_probability),
            fmt_horizon(h.horizon_ms),
            format!("{:.2}", h.anomaly),
            format!("{:.2}", h.confidence),
            h.criticality.to_string(),
            if h.alerting { "yes".into() } else { "no".into() },
            factors,
        ]);
    }
    let widths: Vec<usize> = (0..9).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _infallible = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let _infallible = writeln!(out, "model {}", r.model_version);
    out
}

/// The scores as JSON (field names as in the proto).
pub fn json(r: &pb::ScoreHostsResponse) -> serde_json::Value {
    let risks: Vec<serde_json::Value> = r
        .risks
        .iter()
        .map(|h| {
            serde_json::json!({
                "host": h.host, "at_ms": h.at_ms, "risk": h.risk, "failure_probability": h.failure_probability,
                "horizon_ms": h.horizon_ms, "anomaly": h.anomaly, "confidence": h.confidence,
                "criticality": h.criticality, "alerting": h.alerting, "model_version": h.model_version,
                // A missing value (NaN) is `null`.
                "factors": h.factors.iter().map(|f| serde_json::json!({"name": f.name, "value": f.value.is_finite().then_some(f.value), "contribution": f.contribution})).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "model_version": r.model_version, "risks": risks })
}

/// Runs `harbinger score`.
///
/// # Errors
/// A bad flag, a connection failure, or the server's status (`NOT_FOUND: ...`).
pub async fn run(a: &ScoreArgs) -> anyhow::Result<()> {
    let timeout = humantime::parse_duration(&a.timeout).with_context(|| format!("--timeout {:?} is not a duration", a.timeout))?;
    let ca = match &a.ca_cert {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading --ca-cert {}", p.display()))?),
        None => None,
    };
    let clients = harbinger_grpc::client::connect(&a.addr, a.token.as_deref(), ca).await?;
    let mut req = tonic::Request::new(pb::ScoreHostsRequest { hosts: a.hosts.clone() });
    req.set_timeout(timeout);
    let resp = clients.risk.clone().score_hosts(req).await.map_err(|s| anyhow::anyhow!(describe_status(&s, timeout)))?;
    let resp = resp.into_inner();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json(&resp))?);
    } else {
        print!("{}", table(&resp));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns_and_names_the_model() {
        let r = pb::ScoreHostsResponse {
            risks: vec![pb::HostRisk {
                host: "h017".into(),
                risk: 0.7345,
                failure_probability: 0.61,
                horizon_ms: 3_600_000,
                anomaly: 0.2,
                confidence: 0.95,
                criticality: 2,
                alerting: true,
                factors: vec![pb::Factor { name: "mem_util.tte_h".into(), value: 3.25, contribution: 1.41 }],
                ..Default::default()
            }],
            model_version: "m-1".into(),
        };
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("host  risk   p(fail)  horizon"), "{t}");
        assert!(lines[1].starts_with("h017  0.735  0.610    1h"), "{t}");
        assert!(lines[1].ends_with("yes       mem_util.tte_h=3.250 (+1.41)"), "{t}");
        assert_eq!(lines[2], "model m-1");
        assert_eq!(json(&r)["risks"][0]["factors"][0]["name"], "mem_util.tte_h");
    }

    #[test]
    fn missing_values_and_hosts_without_recent_data_are_named_not_zeroed() {
        let host = |name: &str, confidence: f64, factors: Vec<pb::Factor>| pb::HostRisk {
            host: name.into(),
            confidence,
            factors,
            horizon_ms: 3_600_000,
            ..Default::default()
        };
        let r = pb::ScoreHostsResponse {
            risks: vec![
                host("h001", 0.0, vec![]),
                host(
                    "h002",
                    0.6,
                    vec![
                        pb::Factor { name: "mem_util.z1h".into(), value: 2.5, contribution: 0.8 },
                        pb::Factor { name: "temperature_c.max1h".into(), value: f64::NAN, contribution: 0.17 },
                    ],
                ),
            ],
            model_version: "m-1".into(),
        };
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("h001 ") && lines[1].ends_with("no recent data"), "{t}");
        assert!(lines[2].ends_with("mem_util.z1h=2.500 (+0.80), temperature_c.max1h=missing (+0.17)"), "{t}");
        assert!(!t.contains("=0.000"), "{t}");
        let j = json(&r);
        assert_eq!(j["risks"][0]["factors"], serde_json::json!([]));
        assert_eq!(j["risks"][1]["factors"][0]["value"], 2.5);
        assert!(j["risks"][1]["factors"][1]["value"].is_null(), "{j}");
    }

    #[test]
    fn statuses_read_as_grpc_names() {
        let d = Duration::from_millis(500);
        assert_eq!(describe_status(&tonic::Status::not_found("unknown host \"h9\""), d), "NOT_FOUND: unknown host \"h9\"");
        assert_eq!(describe_status(&tonic::Status::cancelled("Timeout expired"), d), "DEADLINE_EXCEEDED: no answer within 500ms");
    }
}
