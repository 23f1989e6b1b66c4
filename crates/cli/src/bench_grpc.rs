//! `harbinger bench grpc`: gRPC load figures for `BENCHMARKS.md`.
//!
//! Against one server (in process with the configured model and store, or `--addr`), in
//! the same run, each the median of `--runs` runs:
//! 1. `Ping` (an empty RPC) closed-loop throughput: the ceiling of the transport.
//! 2. `ScoreHosts` with one host, closed loop: requests/s, compared with the ceiling.
//! 3. `ScoreHosts` with batches of `--batch` hosts, closed loop: host-scores/s.
//! 4. `ScoreHosts` with one host at a fixed rate (`--rate` requests/s, open loop: each
//!    request is sent on schedule whether or not earlier ones have answered): p50 and p99
//!    latency.
//!
//! With `--peer-cmd`, a peer server (e.g. the Python grpcio + scikit-learn server in
//! `bench/`) is started, told the number of features per host, and measured the same way.
//! Closed-loop figures use `--concurrency` requests in flight over 4 connections.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harbinger_config::Config;
use harbinger_grpc::client::{Clients, connect};
use harbinger_grpc::pb;

use crate::args::BenchGrpcArgs;
use crate::score::describe_status;

const CONNECTIONS: usize = 4;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An in-process `harbinger serve` (gRPC only) on its own runtime thread.
struct InProcess {
    addr: String,
    hosts: Vec<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    fn start(cfg: &Config) -> anyhow::Result<Self> {
        let store = Arc::new(crate::open_store(cfg)?);
        let stores = harbinger_core::Stores::from_backend(store.clone());
        let scorer = crate::scorer::build(cfg, &stores).context("bench grpc scores with the configured model")?;
        let mut hosts: Vec<String> = scorer.score_all().into_iter().map(|r| r.host.to_string()).collect();
        hosts.sort();
        let mut state = harbinger_grpc::GrpcState::new(stores, Some(scorer), Arc::new(harbinger_api::Telemetry::new()));
        state.limits.max_hosts_per_request = cfg.grpc.max_hosts_per_request;
        state.limits.max_message_bytes = cfg.grpc.max_message_bytes;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                harbinger_grpc::serve(listener, state, None, async move {
                    let _stopped = rx.await;
                })
                .await?;
                store.close()?;
                Ok(())
            })
        });
        Ok(Self { addr, hosts, stop: Some(tx), thread: Some(thread) })
    }

    fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _sent = tx.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("in-process gRPC server thread panicked"),
            None => Ok(()),
        }
    }
}

/// A peer server process, killed on drop.
struct Peer {
    child: Child,
    addr: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

impl Peer {
    async fn start(cmd: &str, features: usize) -> anyhow::Result<(Self, Vec<Clients>)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut parts = cmd.split_whitespace();
        let prog = parts.next().context("--peer-cmd is empty")?;
        let child = Command::new(prog)
            .args(parts)
            .args(["--port", &port.to_string(), "--features", &features.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the peer {cmd:?}"))?;
        let peer = Self { child, addr: format!("127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(c) = connect(&peer.addr, None, None).await
                && c.admin.clone().ping(pb::PingRequest {}).await.is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the peer {cmd:?} did not answer Ping on {} within 120 s", peer.addr);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let clients = clients(&peer.addr).await?;
        Ok((peer, clients))
    }
}

async fn clients(addr: &str) -> anyhow::Result<Vec<Clients>> {
    let mut v = Vec::new();
    for _ in 0..CONNECTIONS {
        v.push(connect(addr, None, None).await?);
    }
    Ok(v)
}

#[derive(Clone, Copy, Debug)]
enum Call {
    Ping,
    Score { batch: usize },
}

async fn call(c: &mut Clients, what: Call, hosts: &[String], i: usize) -> Result<(), tonic::Status> {
    match what {
        Call::Ping => {
            let mut req = tonic::Request::new(pb::PingRequest {});
            req.set_timeout(CALL_TIMEOUT);
            c.admin.ping(req).await.map(drop)
        }
        Call::Score { batch } => {
            let chosen: Vec<String> = (0..batch).map(|k| hosts[(i * batch + k) % hosts.len()].clone()).collect();
            let mut req = tonic::Request::new(pb::ScoreHostsRequest { hosts: chosen });
            req.set_timeout(CALL_TIMEOUT);
            let r = c.risk.score_hosts(req).await?.into_inner();
            if r.risks.len() != batch {
                return Err(tonic::Status::internal(format!("{} scores for {batch} hosts", r.risks.len())));
            }
            Ok(())
        }
    }
}

/// Closed loop: `concurrency` tasks each send the next request when the last answered.
/// Returns requests per second.
async fn closed_loop(clients: &[Clients], what: Call, hosts: Arc<Vec<String>>, concurrency: usize, secs: f64) -> anyhow::Result<f64> {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..concurrency {
        let mut c = clients[t % clients.len()].clone();
        let hosts = hosts.clone();
        tasks.spawn(async move {
            let mut n = 0usize;
            while Instant::now() < end {
                call(&mut c, what, &hosts, t * 1_000_003 + n).await.map_err(|s| describe_status(&s, CALL_TIMEOUT))?;
                n += 1;
            }
            Ok::<usize, String>(n)
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r.context("load task")?.map_err(|e| anyhow::anyhow!("{what:?} failed: {e}"))?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Open loop at `rate` requests/s for `secs`: latencies in microseconds, sorted; a
/// request that failed (e.g. timed out behind a server that cannot keep the rate) counts
/// as an infinite latency, so it lands in the high percentiles instead of aborting the run.
async fn fixed_rate(clients: &[Clients], hosts: Arc<Vec<String>>, rate: u32, secs: f64) -> anyhow::Result<Vec<f64>> {
    let n = (f64::from(rate) * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let mut c = clients[i % clients.len()].clone();
        let hosts = hosts.clone();
        tasks.spawn(async move {
            let t0 = Instant::now();
            match call(&mut c, Call::Score { batch: 1 }, &hosts, i).await {
                Ok(()) => Ok::<f64, String>(t0.elapsed().as_secs_f64() * 1e6),
                Err(_) => Ok(f64::INFINITY),
            }
        });
    }
    let mut lat = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        lat.push(r.context("load task")?.map_err(|e| anyhow::anyhow!("fixed-rate ScoreHosts failed: {e}"))?);
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Every figure of one server, one entry per run.
#[derive(Debug, Default, serde::Serialize)]
struct Figures {
    ping_rps: Vec<f64>,
    single_rps: Vec<f64>,
    batch_host_scores: Vec<f64>,
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
    failed: Vec<f64>,
}

async fn measure(clients: &[Clients], hosts: &Arc<Vec<String>>, a: &BenchGrpcArgs) -> anyhow::Result<Figures> {
    let mut f = Figures::default();
    // Warm-up: connections, caches, the blocking pool.
    closed_loop(clients, Call::Score { batch: a.batch }, hosts.clone(), a.concurrency, 0.5).await?;
    for _ in 0..a.runs.max(1) {
        f.ping_rps.push(closed_loop(clients, Call::Ping, hosts.clone(), a.concurrency, a.seconds).await?);
        f.single_rps.push(closed_loop(clients, Call::Score { batch: 1 }, hosts.clone(), a.concurrency, a.seconds).await?);
        let rps = closed_loop(clients, Call::Score { batch: a.batch }, hosts.clone(), a.concurrency, a.seconds).await?;
        f.batch_host_scores.push(rps * a.batch as f64);
        let lat = fixed_rate(clients, hosts.clone(), a.rate, a.seconds).await?;
        f.p50_us.push(pct(&lat, 50.0));
        f.p99_us.push(pct(&lat, 99.0));
        f.failed.push(lat.iter().filter(|x| x.is_infinite()).count() as f64);
    }
    Ok(f)
}

fn k(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn list(v: &[f64], f: impl Fn(f64) -> String) -> String {
    v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(", ")
}

fn ms(us: f64) -> String {
    if us.is_finite() { format!("{:.2} ms", us / 1e3) } else { "failed (timed out)".to_string() }
}

/// Runs the gRPC benchmark and prints a Markdown section.
///
/// # Errors
/// Setup failures, a server that cannot be reached, or any failed call.
pub async fn run(cfg: &Config, a: &BenchGrpcArgs) -> anyhow::Result<()> {
    if a.batch == 0 || a.concurrency == 0 || a.rate == 0 || a.seconds <= 0.0 {
        bail!("--batch, --concurrency, --rate and --seconds must be positive");
    }
    let (server, addr, mut hosts) = match &a.addr {
        Some(addr) => (None, addr.clone(), Vec::new()),
        None => {
            let s = InProcess::start(cfg)?;
            let addr = s.addr.clone();
            let hosts = s.hosts.clone();
            (Some(s), addr, hosts)
        }
    };
    if !a.hosts.is_empty() {
        hosts = a.hosts.clone();
    }
    if hosts.is_empty() {
        bail!("no hosts to score: give --hosts, or ingest a dataset into the store first (harbinger ingest --data DIR)");
    }
    let hosts = Arc::new(hosts);
    let ours = clients(&addr).await?;
    let features = {
        let mut req = tonic::Request::new(pb::ExplainHostRequest { host: hosts[0].clone() });
        req.set_timeout(CALL_TIMEOUT);
        let e = ours[0].risk.clone().explain_host(req).await.map_err(|s| anyhow::anyhow!(describe_status(&s, CALL_TIMEOUT)))?;
        e.into_inner().all_factors.len()
    };
    let h = measure(&ours, &hosts, a).await?;
    drop(ours);
    if let Some(s) = server {
        s.stop()?;
    }
    let p = match &a.peer_cmd {
        Some(cmd) => {
            let (peer, peer_clients) = Peer::start(cmd, features).await?;
            let f = measure(&peer_clients, &hosts, a).await?;
            drop(peer);
            Some(f)
        }
        None => None,
    };

    let cmd: Vec<String> = std::env::args().collect();
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut md = String::new();
    md.push_str(&format!("Command: `{}`  \n", cmd.join(" ")));
    md.push_str(&format!("Date: {date}  \nMachine: {}  \n", crate::bench::machine()));
    md.push_str(&format!(
        "Workload: {} hosts, {features} model features per host; closed loop with {} requests in flight over {CONNECTIONS} connections, {} s per figure; fixed rate {} req/s for {} s (open loop). Medians of {} runs; every run listed in brackets.\n\n",
        hosts.len(), a.concurrency, a.seconds, a.rate, a.seconds, a.runs.max(1)
    ));
    let peer_name = &a.peer_name;
    md.push_str(&format!(
        "| figure | harbinger | {} | target |\n|---|---|---|---|\n",
        if p.is_some() { peer_name.as_str() } else { "peer" }
    ));
    let pv = |f: fn(&Figures) -> &Vec<f64>, fmt: &dyn Fn(f64) -> String| -> String {
        p.as_ref().map_or_else(|| "—".to_string(), |p| format!("{} [{}]", fmt(median(f(p))), list(f(p), fmt)))
    };
    let rps = |v: f64| format!("{} req/s", k(v));
    let hs = |v: f64| format!("{} host-scores/s", k(v));
    md.push_str(&format!(
        "| Ping (empty RPC), the ceiling | {} [{}] | {} | |\n",
        rps(median(&h.ping_rps)),
        list(&h.ping_rps, rps),
        pv(|f| &f.ping_rps, &rps)
    ));
    md.push_str(&format!(
        "| ScoreHosts, 1 host | {} [{}] | {} | |\n",
        rps(median(&h.single_rps)),
        list(&h.single_rps, rps),
        pv(|f| &f.single_rps, &rps)
    ));
    md.push_str(&format!(
        "| ScoreHosts 1 host / Ping | **{:.0} %** | {} | >= 50 % |\n",
        100.0 * median(&h.single_rps) / median(&h.ping_rps),
        p.as_ref().map_or_else(|| "—".to_string(), |p| format!("{:.0} %", 100.0 * median(&p.single_rps) / median(&p.ping_rps)))
    ));
    md.push_str(&format!(
        "| ScoreHosts, batches of {} | **{}** [{}] | {} | >= 100 k/s |\n",
        a.batch,
        hs(median(&h.batch_host_scores)),
        list(&h.batch_host_scores, hs),
        pv(|f| &f.batch_host_scores, &hs)
    ));
    md.push_str(&format!(
        "| ScoreHosts 1 host at {} req/s: p50 | {} [{}] | {} | |\n",
        a.rate,
        ms(median(&h.p50_us)),
        list(&h.p50_us, ms),
        pv(|f| &f.p50_us, &ms)
    ));
    md.push_str(&format!(
        "| ScoreHosts 1 host at {} req/s: p99 | **{}** [{}] | {} | < 2 ms |\n",
        a.rate,
        ms(median(&h.p99_us)),
        list(&h.p99_us, ms),
        pv(|f| &f.p99_us, &ms)
    ));
    let cnt = |v: f64| format!("{v:.0}");
    md.push_str(&format!(
        "| ScoreHosts 1 host at {} req/s: failed requests | {} [{}] | {} | 0 |\n",
        a.rate,
        cnt(median(&h.failed)),
        list(&h.failed, cnt),
        pv(|f| &f.failed, &cnt)
    ));
    if let Some(p) = &p {
        md.push_str(&format!(
            "| **ratio harbinger / {peer_name}, batches of {}** | **{:.1}x** | | >= 20x |\n",
            a.batch,
            median(&h.batch_host_scores) / median(&p.batch_host_scores)
        ));
        md.push_str(&format!("| ratio harbinger / {peer_name}, 1 host | {:.1}x | | |\n", median(&h.single_rps) / median(&p.single_rps)));
    }
    println!("{md}");
    if let Some(out) = &a.json_out {
        let v = serde_json::json!({
            "date": date.to_string(), "machine": crate::bench::machine(), "command": cmd, "hosts": hosts.len(),
            "features": features, "harbinger": h, "peer": p, "markdown": md,
        });
        std::fs::write(out, serde_json::to_string_pretty(&v)?).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
