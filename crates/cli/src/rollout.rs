//! `harbinger rollout run` and `harbinger rollout status`: shadow-stack rollouts from the
//! command line (the controller is `harbinger_change::canary`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use harbinger_change::canary::{self, CanaryConfig};
use harbinger_config::Config;
use harbinger_core::SystemClock;
use harbinger_plan::judge::Verdict as KpiVerdict;
use harbinger_plan::rollout::RolloutRecord;

use crate::args::{RolloutRunArgs, RolloutStatusArgs};

/// Runs the rollout of `a.spec` to its end; the record goes to `<data_dir>/rollouts`.
///
/// # Errors
/// A configuration that cannot run or an HAProxy that cannot be reached before anything
/// changed. A rollout that rolls back is not an error (the exit status is 0 and the
/// summary says so); use `--json` and its `decision` in scripts.
pub async fn run(cfg: &Config, a: &RolloutRunArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.spec).with_context(|| format!("reading {}", a.spec.display()))?;
    let checked = CanaryConfig::parse(&text, &a.spec.display().to_string())?.check()?;
    let dir = cfg.data_dir.join("rollouts");
    let finished = canary::run(checked, Arc::new(SystemClock), &dir, crate::serve::shutdown_signal(), None).await?;
    let r = &finished.record;
    if r.decision.as_deref() == Some("promoted") {
        // The shadow stack is the live stack now: it keeps serving after this process.
        for (id, pid) in finished.processes.detach_all().await {
            tracing::info!(instance = %id, pid, "left running as the live stack");
        }
        if let Some(redis) = &finished.copies.redis {
            for (id, pid) in redis.detach_all().await {
                tracing::info!(replica = %id, pid, "promoted data replica left running");
            }
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        print!("{}", render(r, false));
    }
    Ok(())
}

/// Prints one rollout's record, from a server or from `<data_dir>/rollouts`.
///
/// # Errors
/// An unknown id, an unreachable server, or a record that cannot be read.
pub async fn status(cfg: &Config, a: &RolloutStatusArgs) -> anyhow::Result<()> {
    let record: RolloutRecord = match &a.url {
        Some(url) => {
            let url = format!("{}/api/v1/rollouts/{}", url.trim_end_matches('/'), a.id);
            let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
            let mut req = client.get(&url);
            if let Some(t) = &a.token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.with_context(|| format!("GET {url}"))?;
            let status = resp.status();
            let body = resp.text().await.with_context(|| format!("reading the answer of GET {url}"))?;
            if !status.is_success() {
                bail!("GET {url}: HTTP {status}: {}", body.trim());
            }
            serde_json::from_str(&body).with_context(|| format!("the answer of GET {url} is not a rollout record"))?
        }
        None => {
            let dir = cfg.data_dir.join("rollouts");
            harbinger_api::http::read_rollout(&dir, &a.id).map_err(|e| anyhow::anyhow!("{e} (in {})", dir.display()))?
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        print!("{}", render(&record, a.samples));
    }
    Ok(())
}

fn when(ms: i64) -> String {
    harbinger_core::time::format_ms(ms)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

fn p_value(p: Option<f64>) -> String {
    match p {
        None => "-".into(),
        Some(p) if p != 0.0 && p < 1e-3 => format!("{p:.2e}"),
        Some(p) => format!("{p:.4}"),
    }
}

/// The record as text for a person.
pub fn render(r: &RolloutRecord, samples: bool) -> String {
    let mut o = String::new();
    let spec = &r.rollout.spec;
    let decision = r.decision.as_deref().unwrap_or("in progress");
    let name = |v: serde_json::Result<serde_json::Value>| v.ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let phase = name(serde_json::to_value(r.rollout.phase));
    let after = name(serde_json::to_value(spec.after_promote));
    let _ = writeln!(o, "rollout {}: {decision} (phase {phase}, shadow share {} %)", r.id, r.rollout.share);
    let _ = writeln!(o, "  started {}, last change {}", when(r.created_ms), when(r.updated_ms));
    let shadows: Vec<String> = r.shadow.iter().map(|s| format!("{} ({})", s.id, s.endpoint)).collect();
    let _ = writeln!(
        o,
        "  backend {}: live {}; shadow {}",
        r.backend,
        r.live.join(", "),
        if shadows.is_empty() { "none".into() } else { shadows.join(", ") }
    );
    let _ = writeln!(o, "  sizing: {}", r.scale.reason);
    let steps: Vec<String> = spec.steps.iter().map(|s| format!("{s} %")).collect();
    let _ = writeln!(
        o,
        "  steps {} then 100 %; a judgement every {} ms, {} passing in a row per step; failure limit {}, inconclusive limit {}; after promotion: {after}",
        steps.join(" -> "),
        spec.interval_ms,
        spec.count,
        spec.failure_limit,
        spec.inconclusive_limit,
    );
    let _ = writeln!(
        o,
        "  answered while judged: live {}, shadow {} ({:.1} % on the shadow stack)",
        r.live_requests,
        r.shadow_requests,
        r.shadow_share_seen() * 100.0
    );
    if let Some(ms) = r.rollback_ms {
        let _ = writeln!(o, "  rollback: all traffic back on the live stack {ms:.1} ms after the failed judgement");
    }
    let _ = writeln!(o, "\njudgements ({})", r.judgements.len());
    for j in &r.judgements {
        let _ = writeln!(
            o,
            "  #{} {} at {} %: {:?}, score {:.1}: {}",
            j.index,
            when(j.at_ms),
            j.share,
            j.verdict,
            j.judgement.score,
            j.judgement.reason
        );
        let _ = writeln!(
            o,
            "      {:<12} {:<8} {:>16} {:>16} {:>12} {:>10} {:>10}",
            "KPI", "verdict", "baseline (n)", "shadow (n)", "U", "p", "deviation"
        );
        for m in &j.judgement.metrics {
            let verdict = match m.verdict {
                KpiVerdict::Pass => "pass",
                KpiVerdict::Fail => "FAIL",
                KpiVerdict::NoData => "no data",
            };
            let _ = writeln!(
                o,
                "      {:<12} {:<8} {:>16} {:>16} {:>12} {:>10} {:>10}{}",
                m.name,
                verdict,
                format!("{} ({})", opt(m.baseline_median, 4), m.baseline_n),
                format!("{} ({})", opt(m.canary_median, 4), m.canary_n),
                opt(m.u, 1),
                p_value(m.p_value),
                m.deviation.map_or_else(|| "-".into(), |d| format!("{:+.1} %", d * 100.0)),
                if m.critical { "  critical" } else { "" }
            );
        }
        if samples {
            for w in &j.windows {
                let show = |v: &[f64]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(" ");
                let _ = writeln!(o, "      {} baseline: {}", w.name, show(&w.baseline));
                let _ = writeln!(o, "      {} shadow:   {}", w.name, show(&w.canary));
            }
        }
    }
    let _ = writeln!(o, "\nevents");
    for e in &r.events {
        let _ = writeln!(o, "  {} {:<16} {}", when(e.ts), e.kind, e.detail);
    }
    o
}
