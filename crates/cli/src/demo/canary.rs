//! `harbinger demo canary`: a shadow-stack rollout on one machine.
//!
//! HAProxy (`deploy/haproxy/canary.cfg.tmpl`) sends a bounded load (`--rate` GET/s) to
//! version 1 of a small service (`harbinger demo-backend --name v1`). The rollout starts
//! version 2 beside it through the `process` actuator, adds it to HAProxy, and moves
//! 5 %, 25 %, then 50 % of the traffic to it, judging both stacks every 2 s on HAProxy's
//! statistics (error rate, response time, throughput; Mann-Whitney U per KPI). Version 2
//! is promoted after two passing judgements at each step; with `--bad-version` it answers
//! 30 % of requests with 500 and 40 ms slower, fails its first judgement and is rolled
//! back: traffic back on version 1, version 2 removed and stopped, an alert posted to a
//! webhook receiver in this process. The load generator counts the answers of each
//! version: the share version 2 actually served.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harbinger_change::canary::{self, CanaryConfig};
use harbinger_core::SystemClock;
use serde_json::{Value, json};
use tokio::process::Command;

use super::{Proc, find, free_port, render, tcp_open_owned, until};
use crate::args::DemoCanaryArgs;

const TEMPLATE: &str = include_str!("../../../../deploy/haproxy/canary.cfg.tmpl");

/// Answers per version seen by the load generator, while a share was being judged.
#[derive(Debug, Default)]
struct Seen {
    v1: u64,
    v2: u64,
    errors: u64,
    failed: u64,
}

/// Sends `rate` GETs per second to `url` until `stop`; counts the answers by the version
/// named in their body (2xx or not) while `counting` is set.
async fn load(url: String, rate: u32, stop: Arc<AtomicBool>, counting: Arc<AtomicBool>) -> Seen {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        let (client, url, tx, counting) = (client.clone(), url.clone(), tx.clone(), counting.clone());
        tokio::spawn(async move {
            let got = match client.get(&url).send().await {
                Ok(r) => {
                    let ok = r.status().is_success();
                    r.text().await.map(|b| (ok, b)).ok()
                }
                Err(_) => None,
            };
            if counting.load(Ordering::Relaxed) {
                let _closed = tx.send(got);
            }
        });
    }
    drop(tx);
    let mut seen = Seen::default();
    while let Some(g) = rx.recv().await {
        match g {
            Some((ok, body)) => {
                match body.trim() {
                    "v1" => seen.v1 += 1,
                    "v2" => seen.v2 += 1,
                    _ => {}
                }
                if !ok {
                    seen.errors += 1;
                }
            }
            None => seen.failed += 1,
        }
    }
    seen
}

/// Receives alert webhooks: answers 200 and keeps the bodies.
async fn receiver() -> anyhow::Result<(String, Arc<std::sync::Mutex<Vec<Value>>>)> {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let keep = keep.clone();
        async move {
            if let (Ok(v), Ok(mut g)) = (serde_json::from_slice::<Value>(&body), keep.lock()) {
                g.push(v);
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the alert receiver")?;
    let url = format!("http://{}/alerts", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, got))
}

fn config(exe: &Path, sock: &Path, alerts: &str, bad: bool) -> anyhow::Result<CanaryConfig> {
    let mut command =
        vec![exe.display().to_string(), "demo-backend".into(), "--port".into(), "{port}".into(), "--name".into(), "v2".into()];
    if bad {
        command.extend(["--error-rate", "0.3", "--delay-ms", "40"].map(String::from));
    }
    let toml = format!(
        r#"
id = "demo-canary-{stamp}"
scope = "version"
alert_webhook = {alerts:?}

[haproxy]
api = {sock:?}
backend = "be_app"
live = ["v1"]

[shadow]
command = {command:?}
health_path = "/"
live_instances = 1

[analysis]
steps = [5, 25, 50]
interval = "2s"
count = 2
sample_every = "200ms"
"#,
        stamp = std::process::id(),
        sock = sock.display().to_string(),
    );
    Ok(CanaryConfig::parse(&toml, "the demo's rollout")?)
}

/// Runs the story (see the module docs).
///
/// # Errors
/// HAProxy missing or a process that does not start; a rollout that ends is not an error
/// whatever its decision.
pub async fn run(a: &DemoCanaryArgs) -> anyhow::Result<()> {
    let Some(haproxy) = find("haproxy", "/usr/sbin/haproxy") else {
        bail!("harbinger demo canary needs haproxy: install with `sudo apt-get install haproxy` (Debian/Ubuntu)");
    };
    let exe = std::env::current_exe().context("finding the harbinger executable")?;
    let tmp = tempfile::Builder::new().prefix("harbinger-canary-").tempdir().context("creating a scratch directory")?;
    let dir = tmp.path();
    let t0 = Instant::now();
    let say = |s: String| {
        if !a.json {
            println!("{:>8.3} s  {s}", t0.elapsed().as_secs_f64());
        }
    };

    let v1_port = free_port()?;
    let _v1 = Proc::spawn("v1", Command::new(&exe).args(["demo-backend", "--port", &v1_port.to_string(), "--name", "v1"]))?;
    let v1 = format!("127.0.0.1:{v1_port}");
    until("version 1", Duration::from_secs(10), || tcp_open_owned(v1.clone())).await?;
    let front = format!("127.0.0.1:{}", free_port()?);
    let sock = dir.join("haproxy.sock");
    let cfg = render(TEMPLATE, &[("stats_socket", sock.display().to_string()), ("bind", front.clone()), ("live", v1.clone())])?;
    let cfg_path = dir.join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).context("writing haproxy.cfg")?;
    let _haproxy = Proc::spawn("haproxy", Command::new(&haproxy).arg("-db").arg("-f").arg(&cfg_path))?;
    until("haproxy", Duration::from_secs(10), || tcp_open_owned(front.clone())).await?;
    // The runtime API socket may come up after the frontend: the rollout needs it.
    let api = harbinger_actuate::haproxy::HaproxyClient::new(
        harbinger_actuate::haproxy::ApiAddress::Unix(sock.clone()),
        Duration::from_millis(500),
    );
    until("haproxy's runtime API", Duration::from_secs(10), || {
        let api = api.clone();
        async move { api.command("show info").await.ok().filter(|a| a.contains("Name: HAProxy")).map(|_| ()) }
    })
    .await?;
    say(format!("haproxy on {front} in front of version 1 ({v1}); runtime API {}", sock.display()));

    let (alert_url, alerts) = receiver().await?;
    let checked = config(&exe, &sock, &alert_url, a.bad_version)?.check()?;
    let (stop, counting) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(true)));
    let loader = tokio::spawn(load(format!("http://{front}/"), a.rate, stop.clone(), counting.clone()));
    say(format!(
        "load: {} GET/s through haproxy; version 2{} starts beside version 1",
        a.rate,
        if a.bad_version { " (30 % errors, +40 ms)" } else { "" }
    ));
    let records = match &a.dir {
        Some(d) => d.clone(),
        None => dir.join("rollouts"),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<harbinger_plan::rollout::RolloutEvent>();
    let quiet = a.json;
    let printer = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if !quiet {
                println!("{:>8.3} s  {:<16} {}", t0.elapsed().as_secs_f64(), e.kind, e.detail);
            }
        }
    });
    let finished = canary::run(checked, Arc::new(SystemClock), &records, std::future::pending(), Some(tx)).await?;
    let _done = printer.await;
    counting.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let seen = loader.await.context("the load generator")?;
    finished.processes.stop_all().await;
    let r = &finished.record;

    let answered = seen.v1 + seen.v2;
    #[allow(clippy::cast_precision_loss)]
    let share_seen = if answered == 0 { 0.0 } else { seen.v2 as f64 / answered as f64 };
    let received: Vec<Value> = alerts.lock().map(|g| g.clone()).unwrap_or_default();
    let alerts_sent = received.len();
    let decision = r.decision.clone().unwrap_or_else(|| "unfinished".into());
    say(format!(
        "decision: {decision} after {} judgements; version 2 served {} of {answered} answers ({:.1} %), haproxy counted {:.1} %{}; {alerts_sent} alert(s) received",
        r.judgements.len(),
        seen.v2,
        share_seen * 100.0,
        r.shadow_share_seen() * 100.0,
        r.rollback_ms.map(|ms| format!("; traffic back on version 1 {ms:.1} ms after the failed judgement")).unwrap_or_default()
    ));
    if a.json {
        let out = json!({
            "decision": decision,
            "rollout": r.id,
            "judgements": r.judgements.iter().map(|j| json!({
                "index": j.index, "share": j.share, "verdict": j.verdict, "score": j.judgement.score,
                "pass": j.judgement.pass, "reason": j.judgement.reason,
            })).collect::<Vec<_>>(),
            "traffic_share_seen": share_seen,
            "haproxy_share_seen": r.shadow_share_seen(),
            "answers": {"v1": seen.v1, "v2": seen.v2, "errors": seen.errors, "failed": seen.failed},
            "rollback_ms": r.rollback_ms,
            "alerts": alerts_sent,
            "alert_events": received.iter().map(|v| v["event"].clone()).collect::<Vec<_>>(),
            "alert_evidence": received.last().map(|v| v["judgement"]["reason"].clone()),
            "scale": r.scale,
            "record": records.join(format!("{}.json", r.id)),
        });
        println!("{out}");
    }
    Ok(())
}
