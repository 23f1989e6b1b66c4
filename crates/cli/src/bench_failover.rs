//! `harbinger bench failover`: failover times and losses of `harbinger demo`, against the
//! reactive peers in the same run: HAProxy's own health checks (Debian's shipped timeouts
//! and HAProxy's default check settings, a standby `backup` server always running) and
//! Redis Sentinel (a replica always running, `down-after-milliseconds` at its 30 s default
//! and at 1 s). Prints a Markdown section for BENCHMARKS.md.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::Command;

use crate::args::BenchFailoverArgs;
use crate::demo::{Proc, find, free_port, load, redis_role_master, tcp_open_owned, until};

fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn list(xs: &[f64]) -> String {
    xs.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ")
}

/// One `harbinger demo --json --failure F` run, as a child process.
async fn demo_run(exe: &Path, failure: &str, rate: u32) -> anyhow::Result<Value> {
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        Command::new(exe)
            .args(["--log-level", "error", "demo", "--json", "--failure", failure, "--rate", &rate.to_string()])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("harbinger demo took over 180 s")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("harbinger demo failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("demo's last line is not JSON: {last}"))
}

/// HAProxy alone: a primary and an always-running standby declared `backup`, HAProxy's
/// default checks (inter 2 s, fall 3, rise 2) and Debian's shipped timeouts (connect 5 s,
/// client and server 50 s), `retries 3`, `option redispatch`. SIGKILL of the primary under
/// `rate` GET/s; returns (kill to the first answer from the standby in ms, failed, total).
async fn haproxy_peer(haproxy: &Path, exe: &Path, rate: u32, dir: &Path) -> anyhow::Result<(f64, usize, usize)> {
    let (p1, p2, front) = (free_port()?, free_port()?, free_port()?);
    let local = |p: u16| format!("127.0.0.1:{p}");
    let mut primary =
        Proc::spawn("peer primary", Command::new(exe).args(["demo-backend", "--port", &p1.to_string(), "--name", "primary"]))?;
    let _standby = Proc::spawn("peer standby", Command::new(exe).args(["demo-backend", "--port", &p2.to_string(), "--name", "standby"]))?;
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 5000\n    timeout client 50000\n    timeout server 50000\n    retries 3\n    option redispatch\n\
         frontend fe\n    bind {}\n    default_backend be\n\
         backend be\n    option httpchk GET /\n    server primary {} check\n    server standby {} check backup\n",
        local(front),
        local(p1),
        local(p2)
    );
    let cfg_path = dir.join("haproxy-peer.cfg");
    std::fs::write(&cfg_path, cfg)?;
    let _h = Proc::spawn("peer haproxy", Command::new(haproxy).arg("-db").arg("-f").arg(&cfg_path))?;
    until("the peer haproxy", Duration::from_secs(10), || tcp_open_owned(local(front))).await?;
    until("the peer primary", Duration::from_secs(10), || tcp_open_owned(local(p1))).await?;
    // HAProxy starts checking the standby too; give the first checks time to pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let loader = tokio::spawn(load(format!("http://{}/", local(front)), rate, stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    primary.sigkill();
    let killed = Instant::now();
    // Until the standby answers, then 1 s more.
    let url = format!("http://{}/", local(front));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    until("the standby behind haproxy", Duration::from_secs(60), || {
        let (client, url) = (client.clone(), url.clone());
        async move { (client.get(url).send().await.ok()?.text().await.ok()? == "standby").then_some(()) }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let got = loader.await?;
    let first = got.iter().filter(|g| g.sent >= killed && g.body.as_deref() == Ok("standby")).map(|g| g.done).min();
    let ms = first.map_or(f64::NAN, |t| t.duration_since(killed).as_secs_f64() * 1000.0);
    Ok((ms, got.iter().filter(|g| g.body.is_err()).count(), got.len()))
}

/// Redis Sentinel: a primary, a replica and one sentinel (quorum 1) with
/// `down-after-milliseconds` `down_after_ms`. SIGKILL of the primary; returns the time
/// until the replica answers `role:master`, in ms.
async fn sentinel_peer(redis_server: &Path, down_after_ms: u64, dir: &Path) -> anyhow::Result<f64> {
    let (pp, rp, sp) = (free_port()?, free_port()?, free_port()?);
    let local = |p: u16| format!("127.0.0.1:{p}");
    let common = |port: u16, d: &Path| {
        let mut c = Command::new(redis_server);
        c.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .args(["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(d);
        c
    };
    let (dp, dr, ds) =
        (dir.join(format!("s{down_after_ms}-p")), dir.join(format!("s{down_after_ms}-r")), dir.join(format!("s{down_after_ms}-s")));
    for d in [&dp, &dr, &ds] {
        std::fs::create_dir_all(d)?;
    }
    let mut primary = Proc::spawn("sentinel-peer primary", &mut common(pp, &dp))?;
    until("the sentinel-peer primary", Duration::from_secs(10), || tcp_open_owned(local(pp))).await?;
    let _replica = Proc::spawn("sentinel-peer replica", common(rp, &dr).args(["--replicaof", "127.0.0.1", &pp.to_string()]))?;
    let conf = ds.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sp}\nbind 127.0.0.1\ndir {}\nsentinel monitor m 127.0.0.1 {pp} 1\nsentinel down-after-milliseconds m {down_after_ms}\n",
            ds.display()
        ),
    )?;
    let _sentinel = Proc::spawn("sentinel", Command::new(redis_server).arg(&conf).arg("--sentinel"))?;
    until("the sentinel", Duration::from_secs(10), || tcp_open_owned(local(sp))).await?;
    // The replica in sync, and the sentinel aware of it.
    until("the replica in sync", Duration::from_secs(20), || {
        let addr = local(rp);
        async move {
            let mut c = harbinger_actuate::redis::RedisClient::connect(&addr, Duration::from_millis(500)).await.ok()?;
            let info = c.info("replication").await.ok()?;
            (info.get("master_link_status").map(String::as_str) == Some("up")).then_some(())
        }
    })
    .await?;
    // The sentinel learns replicas from the primary's INFO every 10 s: wait until it
    // lists this one, or it would have no replica to promote.
    until("the sentinel to know the replica", Duration::from_secs(30), || {
        let addr = local(sp);
        async move {
            let mut c = harbinger_actuate::redis::RedisClient::connect(&addr, Duration::from_millis(500)).await.ok()?;
            match c.command(&["SENTINEL", "REPLICAS", "m"]).await.ok()? {
                harbinger_actuate::redis::Reply::Array(Some(v)) if !v.is_empty() => Some(()),
                _ => None,
            }
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    primary.sigkill();
    let killed = Instant::now();
    until("the sentinel's promotion", Duration::from_millis(down_after_ms + 60_000), || redis_role_master(local(rp))).await?;
    Ok(killed.elapsed().as_secs_f64() * 1000.0)
}

/// `harbinger bench failover`.
///
/// # Errors
/// A missing program, or a run that failed.
pub async fn run(a: &BenchFailoverArgs) -> anyhow::Result<()> {
    let haproxy = find("haproxy", "/usr/sbin/haproxy").context("haproxy not found: sudo apt-get install haproxy")?;
    let redis_server =
        find("redis-server", "/usr/bin/redis-server").context("redis-server not found: sudo apt-get install redis-server")?;
    let exe = std::env::current_exe()?;
    let tmp = tempfile::Builder::new().prefix("harbinger-bench-failover-").tempdir()?;
    let runs = a.runs.max(1);

    let mut kill: Vec<Value> = Vec::new();
    let mut cut: Vec<Value> = Vec::new();
    let mut peer: Vec<(f64, usize, usize)> = Vec::new();
    let mut sentinel_1s = Vec::new();
    for i in 0..runs {
        eprintln!("run {}/{runs}: harbinger demo (kill, cut), haproxy's own checks, sentinel 1 s", i + 1);
        kill.push(demo_run(&exe, "kill", a.rate).await?);
        cut.push(demo_run(&exe, "cut", a.rate).await?);
        peer.push(haproxy_peer(&haproxy, &exe, a.rate, tmp.path()).await?);
        sentinel_1s.push(sentinel_peer(&redis_server, 1000, tmp.path()).await?);
    }
    let mut sentinel_30s = Vec::new();
    for i in 0..a.sentinel_default_runs {
        eprintln!("sentinel with its default down-after-milliseconds (30 s), run {}/{}", i + 1, a.sentinel_default_runs);
        sentinel_30s.push(sentinel_peer(&redis_server, 30_000, tmp.path()).await?);
    }

    let f = |rs: &[Value], key: &str| -> Vec<f64> { rs.iter().map(|r| r[key].as_f64().unwrap_or(f64::NAN)).collect() };
    let sum = |rs: &[Value], key: &str| -> u64 { rs.iter().map(|r| r[key].as_u64().unwrap_or(0)).sum() };
    let hosts = kill.first().and_then(|r| r["hosts"].as_str()).unwrap_or("?").to_string();
    crate::bench::print_header("Failover: harbinger demo against HAProxy's own checks and Redis Sentinel");
    println!(
        "Each harbinger run is `harbinger demo --json --failure kill|cut --rate {}` (hosts: {hosts}; HAProxy 2.6 from `deploy/haproxy/haproxy.cfg.tmpl`, \
         Redis 7; {} GET/s and a write loop through HAProxy; watchdog every 200 ms, 2 of 3 checks). \
         The HAProxy peer is HAProxy alone with a standby `backup` server always running, its default checks (inter 2 s, fall 3, rise 2) \
         and Debian's shipped timeouts, the same load, SIGKILL of the primary. The Sentinel peer is a primary, an always-running replica \
         and one sentinel (quorum 1), SIGKILL of the primary, timed until the replica answers `role:master`. Medians of {runs} runs \
         (Sentinel at 30 s: {} runs), individual runs in brackets.  ",
        a.rate,
        a.rate,
        sentinel_30s.len()
    );
    println!("Targets: failover ≤ 1 s, 0 failed GETs, 0 acknowledged (`WAIT 1`) writes lost.\n");
    println!("| figure | harbinger, SIGKILL | harbinger, link cut | peer |\n|---|---|---|---|");
    let (kf, cf) = (f(&kill, "failover_ms"), f(&cut, "failover_ms"));
    let pf: Vec<f64> = peer.iter().map(|p| p.0).collect();
    println!(
        "| HTTP: failure to first answer from the shadow/standby, ms | **{:.1}** [{}] | **{:.1}** [{}] | HAProxy's own checks: **{:.0}** [{}] |",
        median(&kf),
        kf.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", "),
        median(&cf),
        list(&cf),
        median(&pf),
        list(&pf)
    );
    println!(
        "| HTTP: failed GETs / GETs (all runs) | **{} / {}** | **{} / {}** | {} / {} |",
        sum(&kill, "failed_requests"),
        sum(&kill, "requests"),
        sum(&cut, "failed_requests"),
        sum(&cut, "requests"),
        peer.iter().map(|p| p.1).sum::<usize>(),
        peer.iter().map(|p| p.2).sum::<usize>()
    );
    let (kh, ch) = (f(&kill, "harbinger_detect_ms"), f(&cut, "harbinger_detect_ms"));
    let (ka, ca) = (f(&kill, "harbinger_act_ms"), f(&cut, "harbinger_act_ms"));
    println!(
        "| HTTP: harbinger's detection + promotion (decision log), ms | {:.0} + {:.0} | {:.0} + {:.0} | |",
        median(&kh),
        median(&ka),
        median(&ch),
        median(&ca)
    );
    let (kr, cr) = (f(&kill, "redis_failover_ms"), f(&cut, "redis_failover_ms"));
    println!(
        "| Redis: failure to clients on the promoted replica (harbinger) / replica promoted (Sentinel), ms | **{:.0}** [{}] | **{:.0}** [{}] | Sentinel, down-after 1 s: **{:.0}** [{}]; default 30 s: **{:.0}** [{}] |",
        median(&kr),
        list(&kr),
        median(&cr),
        list(&cr),
        median(&sentinel_1s),
        list(&sentinel_1s),
        median(&sentinel_30s),
        list(&sentinel_30s)
    );
    println!(
        "| Redis: writes acknowledged with WAIT 1 lost / acknowledged (all runs) | **{} / {}** | **{} / {}** | |",
        sum(&kill, "acked_writes_lost"),
        sum(&kill, "acked_writes"),
        sum(&cut, "acked_writes_lost"),
        sum(&cut, "acked_writes")
    );
    println!(
        "| Redis: writes acknowledged without WAIT lost / acknowledged (all runs) | {} / {} | {} / {} | |",
        sum(&kill, "unacked_writes_lost"),
        sum(&kill, "unacked_writes"),
        sum(&cut, "unacked_writes_lost"),
        sum(&cut, "unacked_writes")
    );
    let ratio = |peer: f64, ours: f64| if ours > 0.0 { format!("{:.0}×", peer / ours) } else { "—".into() };
    println!(
        "\nRatios of medians (peer / harbinger, SIGKILL): HTTP switch {} (HAProxy's own checks); Redis {} (Sentinel 1 s), {} (Sentinel 30 s).",
        ratio(median(&pf), median(&kf)),
        ratio(median(&sentinel_1s), median(&kr)),
        ratio(median(&sentinel_30s), median(&kr))
    );
    println!(
        "The HTTP switch is fast because the shadow harbinger placed ahead of the failure is armed in HAProxy as a ready backup \
         and the shipped template takes the primary out at its first failed connection (`observe layer4`); HAProxy with the same \
         settings and a standby it always runs would switch as fast — harbinger's contribution is that the standby exists only \
         for hosts predicted to fail, and that its watchdog then promotes it (detection and promotion times above)."
    );
    Ok(())
}
