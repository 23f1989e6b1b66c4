//! `harbinger demo`: the whole predict-and-act story on one machine, with no
//! configuration.
//!
//! Two hosts per service are processes on loopback ports: an HTTP service (`web`, served
//! by `harbinger demo-backend`) and a Redis (`cache`), both behind a real HAProxy rendered
//! from `deploy/haproxy/haproxy.cfg.tmpl`. harbinger runs in this process (`serve` with
//! the `process`, `redis` and `haproxy` actuators and the watchdog). harbinger's own model
//! predicts that the primaries' hosts are about to fail from 8 h of their metrics (replayed
//! from a synthetic fleet; or, with `--trigger alert`, an Alertmanager alert says so),
//! harbinger places a passive shadow of each on the other host
//! (a second backend process; a Redis replica), the demo kills each primary with SIGKILL
//! under load (500 GET/s through HAProxy; a write loop through HAProxy, every other write
//! acknowledged with `WAIT 1`), and harbinger's watchdog promotes the shadow and switches
//! HAProxy. It prints the timeline and the counts; `--json` adds one JSON object as the
//! last line.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harbinger_actuate::redis::{RedisClient, Reply};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::args::{DemoArgs, DemoBackendArgs, DemoFailure, DemoTrigger};

pub mod canary;
pub mod lab;

use lab::Lab;

const TEMPLATE: &str = include_str!("../../../deploy/haproxy/haproxy.cfg.tmpl");
/// How long a host stays above the alert threshold before it alerts, in the demo.
const ENTER_AFTER_MS: i64 = 2000;

/// Eight hours of metrics for the demo hosts, ending at `now_ms`, from a synthetic fleet
/// (`harbinger synth`, seed 7): web-a and cache-a take hosts that failed after a warning
/// period, cut 15 minutes before their failure; web-b and cache-b take hosts with nothing
/// happening then. Returns the CSV and a sentence saying so.
fn history(now_ms: i64) -> anyhow::Result<(String, String)> {
    use harbinger_dataset::synth::{EpisodeClass, SynthParams, generate};
    const SPAN: i64 = 8 * 3_600_000;
    const BEFORE: i64 = 15 * 60_000;
    let fleet = generate(&SynthParams { hosts: 60, days: 4.0, step_ms: 60_000, seed: 7, ..SynthParams::default() })?;
    let t0 = fleet.dataset.meta.as_ref().and_then(|m| m.start_ms).unwrap_or(harbinger_dataset::synth::DEFAULT_START_MS);
    let busy =
        |host: &str, from: i64, to: i64| fleet.episodes.iter().any(|e| e.host.as_str() == host && e.start_ms < to && e.end_ms > from);
    // Failing hosts: a precursor whose warning starts inside the window and whose host is
    // quiet before it.
    let mut failing: Vec<(String, i64, String)> = Vec::new();
    for e in fleet.episodes.iter().filter(|e| e.class == EpisodeClass::Precursor) {
        let Some(f) = e.failure_ms else { continue };
        let cut = f - BEFORE;
        if cut - SPAN < t0 + 3_600_000 || e.start_ms > cut - 3_600_000 || busy(e.host.as_str(), cut - SPAN, e.start_ms) {
            continue;
        }
        if failing.iter().any(|(h, _, _)| h == e.host.as_str()) {
            continue;
        }
        failing.push((e.host.as_str().to_string(), cut, e.kind.clone()));
        if failing.len() == 2 {
            break;
        }
    }
    let [(wa, wa_cut, wa_kind), (ca, ca_cut, ca_kind)] =
        <[_; 2]>::try_from(failing).map_err(|_| anyhow::anyhow!("no two precursor episodes in the synthetic fleet"))?;
    let quiet: Vec<String> = fleet
        .dataset
        .hosts
        .iter()
        .map(|h| h.host.as_str().to_string())
        .filter(|h| *h != wa && *h != ca && !busy(h, wa_cut - SPAN, wa_cut + SPAN) && !busy(h, ca_cut - SPAN, ca_cut + SPAN))
        .take(2)
        .collect();
    let [wb, cb] = <[String; 2]>::try_from(quiet).map_err(|_| anyhow::anyhow!("no two quiet hosts in the synthetic fleet"))?;
    let plan = [("web-a", &wa, wa_cut), ("web-b", &wb, wa_cut), ("cache-a", &ca, ca_cut), ("cache-b", &cb, ca_cut)];
    let mut csv = String::from("timestamp,host,metric,value\n");
    for (demo_host, source, cut) in plan {
        for series in fleet.dataset.metrics.iter().filter(|s| s.key.host.as_str() == source.as_str()) {
            for (t, v) in series.timestamps.iter().zip(&series.values) {
                if *t >= cut - SPAN && *t < cut && v.is_finite() {
                    csv.push_str(&format!("{},{demo_host},{},{v}\n", t - cut + now_ms, series.key.metric.as_str()));
                }
            }
        }
    }
    let story = format!(
        "metrics: 8 h of history for each host, ending now; web-a replays synthetic host {wa} {m} min before its {wa_kind} failure, \
         cache-a host {ca} {m} min before its {ca_kind} failure, web-b and cache-b quiet hosts",
        m = BEFORE / 60_000
    );
    Ok((csv, story))
}

/// Where a program is, from `PATH` or the usual Debian location.
pub(crate) fn find(program: &str, debian: &str) -> Option<PathBuf> {
    if Path::new(debian).is_file() {
        return Some(PathBuf::from(debian));
    }
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(program)).find(|p| p.is_file()))
}

/// A port free now on 127.0.0.1.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// A child killed (with its process group) when dropped.
pub(crate) struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    pub(crate) fn spawn(name: &'static str, cmd: &mut Command) -> anyhow::Result<Self> {
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true).process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Proc { name, child })
    }

    pub(crate) fn signal(&self, signal: rustix::process::Signal) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
            let _gone = rustix::process::kill_process_group(pid, signal);
        }
    }

    pub(crate) fn sigkill(&mut self) {
        self.signal(rustix::process::Signal::KILL);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.sigkill();
        tracing::debug!(process = self.name, "stopped");
    }
}

/// Polls `f` every 50 ms until it is `Some`, for at most `bound`.
pub(crate) async fn until<T, F, Fut>(what: &str, bound: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {bound:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn tcp_open(addr: &str) -> bool {
    tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await.is_ok_and(|r| r.is_ok())
}

/// The timeline, printed as it happens (unless `--json`).
struct Timeline {
    start: Instant,
    /// The wall clock at `start`, in Unix ms (decisions carry wall-clock times).
    start_ms: i64,
    quiet: bool,
}

impl Timeline {
    fn say(&mut self, text: impl Into<String>) {
        let line = format!("{:>8.3} s  {}", self.start.elapsed().as_secs_f64(), text.into());
        if !self.quiet {
            println!("{line}");
        }
    }
}

/// `harbinger demo-backend`: answers every GET with its name (a host's service).
///
/// # Errors
/// The port cannot be bound.
pub async fn backend(a: &DemoBackendArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&a.error_rate) {
        bail!("--error-rate {}: a share in [0, 1]", a.error_rate);
    }
    let every = humantime::parse_duration(&a.report_every).with_context(|| format!("--report-every {:?}", a.report_every))?;
    if every.is_zero() {
        bail!("--report-every must be above zero");
    }
    let name: Arc<str> = Arc::from(a.name.as_str());
    let (rate, delay) = (a.error_rate, Duration::from_millis(a.delay_ms));
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // (answers, errors, Σ ms to answer) since the last report.
    let window = Arc::new(std::sync::Mutex::new((0_u64, 0_u64, 0.0_f64)));
    let seen = window.clone();
    let app = axum::Router::new().fallback(move || {
        let (name, served, seen) = (name.clone(), served.clone(), seen.clone());
        async move {
            let started = Instant::now();
            // Request n fails when it crosses a multiple of 1/rate: evenly spread failures.
            let n = served.fetch_add(1, Ordering::Relaxed);
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let fails = ((n + 1) as f64 * rate).floor() as u64 > (n as f64 * rate).floor() as u64;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Ok(mut w) = seen.lock() {
                w.0 += 1;
                w.1 += u64::from(fails);
                w.2 += started.elapsed().as_secs_f64() * 1000.0;
            }
            let status = if fails { axum::http::StatusCode::INTERNAL_SERVER_ERROR } else { axum::http::StatusCode::OK };
            (status, name.to_string())
        }
    });
    if let Some(url) = a.report.clone() {
        let host = a.report_host.clone().unwrap_or_else(|| a.name.clone());
        tokio::spawn(report(url, host, every, window));
    }
    let listener =
        tokio::net::TcpListener::bind((a.addr.as_str(), a.port)).await.with_context(|| format!("binding {}:{}", a.addr, a.port))?;
    axum::serve(listener, app).await.context("serving")
}

/// Remote-writes the answers of each `every` to `url` as samples of `host` (see
/// `demo-backend --report`); an interval without answers reports nothing.
async fn report(url: String, host: String, every: Duration, window: Arc<std::sync::Mutex<(u64, u64, f64)>>) {
    use harbinger_ingest::remote_write::{encode, prompb};
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build().unwrap_or_default();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (n, errors, ms) = window.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default();
        if n == 0 {
            continue;
        }
        let ts =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
        #[allow(clippy::cast_precision_loss)]
        let series = [
            ("http_latency_ms", ms / n as f64),
            ("http_error_rate", errors as f64 / n as f64),
            ("http_requests_per_s", n as f64 / every.as_secs_f64()),
        ]
        .map(|(metric, value)| prompb::TimeSeries {
            labels: vec![
                prompb::Label { name: "__name__".into(), value: metric.into() },
                prompb::Label { name: "host".into(), value: host.clone() },
            ],
            samples: vec![prompb::Sample { value, timestamp: ts }],
        });
        let body = encode(&prompb::WriteRequest { timeseries: series.to_vec() });
        let sent = crate::bench::remote_write(&client, &url, body).send().await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "reporting metrics failed");
        }
    }
}

/// What one HTTP request through HAProxy gave.
pub(crate) struct Got {
    pub(crate) sent: Instant,
    pub(crate) done: Instant,
    /// The body of a 2xx answer, or why there was none.
    pub(crate) body: Result<String, String>,
}

/// Sends `rate` GETs per second to `url` until `stop`, each bounded by 5 s.
pub(crate) async fn load(url: String, rate: u32, stop: Arc<AtomicBool>) -> Vec<Got> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).pool_max_idle_per_host(0).build().unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        let (client, url, tx) = (client.clone(), url.clone(), tx.clone());
        tokio::spawn(async move {
            let sent = Instant::now();
            let body = match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => r.text().await.map_err(|e| format!("reading the body: {e}")),
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(if e.is_timeout() { "timeout".into() } else { harbinger_actuate::error_chain(&e) }),
            };
            let _closed = tx.send(Got { sent, done: Instant::now(), body });
        });
    }
    drop(tx);
    let mut out = Vec::new();
    while let Some(g) = rx.recv().await {
        out.push(g);
    }
    out
}

/// Writes through HAProxy until `stop`: even writes are followed by `WAIT 1 500` and count
/// as acknowledged by a replica when it answers ≥ 1; odd ones are plain `SET`s.
/// Reconnects after any error. Returns (acked with WAIT, acked without, failed attempts).
async fn writes(addr: String, stop: Arc<AtomicBool>) -> (Vec<String>, Vec<String>, u64) {
    let (mut waited, mut plain, mut failed) = (Vec::new(), Vec::new(), 0_u64);
    let mut conn: Option<RedisClient> = None;
    let mut i = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match RedisClient::connect(&addr, Duration::from_millis(500)).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let key = format!("demo:{i}");
        let value = i.to_string();
        let ok = match c.command(&["SET", &key, &value]).await {
            Ok(Reply::Status(s)) if s == "OK" => {
                if i.is_multiple_of(2) {
                    match c.command(&["WAIT", "1", "500"]).await {
                        Ok(Reply::Integer(n)) if n >= 1 => waited.push(key),
                        Ok(_) => plain.push(key),
                        Err(_) => {}
                    }
                } else {
                    plain.push(key);
                }
                true
            }
            _ => false,
        };
        i += 1;
        if !ok {
            failed += 1;
            conn = None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (waited, plain, failed)
}

/// Keys of `keys` absent at `addr`.
async fn missing(addr: &str, keys: &[String]) -> anyhow::Result<usize> {
    let mut c = until(&format!("a Redis primary behind {addr}"), Duration::from_secs(10), || {
        let addr = addr.to_string();
        async move {
            let mut c = RedisClient::connect(&addr, Duration::from_millis(500)).await.ok()?;
            (c.role().await.ok()? == "master").then_some(c)
        }
    })
    .await?;
    let mut n = 0;
    for k in keys {
        if let Reply::Integer(0) = c.command(&["EXISTS", k]).await.with_context(|| format!("EXISTS {k} at {addr}"))? {
            n += 1;
        }
    }
    Ok(n)
}

/// `harbinger demo`. Ctrl-C stops it and removes what it made (processes, namespaces,
/// the scratch directory).
///
/// # Errors
/// A missing prerequisite (with how to install it), or a step that did not happen in time.
pub async fn run(a: &DemoArgs) -> anyhow::Result<()> {
    if let Some(crate::args::DemoScenario::Canary(c)) = &a.scenario {
        return tokio::select! {
            r = canary::run(c) => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted: the demo's processes were stopped"),
        };
    }
    tokio::select! {
        r = story(a) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted: the demo's processes and namespaces were removed"),
    }
}

async fn story(a: &DemoArgs) -> anyhow::Result<()> {
    let haproxy = find("haproxy", "/usr/sbin/haproxy");
    let redis_server = find("redis-server", "/usr/bin/redis-server");
    let missing_pkgs: Vec<&str> = [("haproxy", haproxy.is_none()), ("redis-server", redis_server.is_none())]
        .into_iter()
        .filter_map(|(p, absent)| absent.then_some(p))
        .collect();
    let (Some(haproxy), Some(redis_server)) = (haproxy, redis_server) else {
        bail!(
            "harbinger demo needs {}: install with `sudo apt-get install {}` (Debian/Ubuntu)",
            missing_pkgs.join(" and "),
            missing_pkgs.join(" ")
        );
    };
    let exe = std::env::current_exe().context("finding the harbinger executable")?;
    let tmp = tempfile::Builder::new().prefix("harbinger-demo-").tempdir().context("creating a scratch directory")?;
    let dir = tmp.path();
    let start_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    let mut tl = Timeline { start: Instant::now(), start_ms, quiet: a.json };
    tl.say(format!("scratch directory {}", dir.display()));

    // The hosts: web-a/web-b and cache-a/cache-b, network namespaces or loopback ports.
    let lab = Lab::new(a.hosts, &["web-a", "web-b", "cache-a", "cache-b"])?;
    tl.say(lab.describe());
    let netns = lab.is_netns();
    // In namespaces every host has the whole port range: services use their usual ports.
    let (web_port, redis_port) = if netns { (8080, 6379) } else { (free_port()?, free_port()?) };
    let (web_front, redis_front) = (free_port()?, free_port()?);
    let (http_port, grpc_port) = (free_port()?, free_port()?);
    let local = |p: u16| format!("127.0.0.1:{p}");
    let web_primary = format!("{}:{web_port}", lab.addr("web-a"));
    let redis_primary = format!("{}:{redis_port}", lab.addr("cache-a"));
    let mut web = Proc::spawn(
        "web primary",
        lab.command("web-a", &exe).args(["demo-backend", "--addr", &lab.addr("web-a"), "--port", &web_port.to_string(), "--name", "web-a"]),
    )?;
    let redis_dir = dir.join("redis-primary");
    std::fs::create_dir_all(&redis_dir)?;
    let mut redis = Proc::spawn(
        "redis primary",
        lab.command("cache-a", &redis_server)
            .args(["--bind", &lab.addr("cache-a"), "--port", &redis_port.to_string(), "--save", "", "--appendonly", "no"])
            .args(["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&redis_dir),
    )?;
    until("the web primary", Duration::from_secs(10), || tcp_open_owned(web_primary.clone())).await?;
    until("the redis primary", Duration::from_secs(10), || tcp_open_owned(redis_primary.clone())).await?;
    tl.say(format!("web primary on host web-a ({web_primary}), redis primary on host cache-a ({redis_primary})"));

    // HAProxy in front of both, from the shipped template.
    let sock = dir.join("haproxy.sock");
    let cfg_text = render(
        TEMPLATE,
        &[
            ("stats_socket", sock.display().to_string()),
            ("http_bind", local(web_front)),
            ("http_check_path", "/".into()),
            ("http_primary", web_primary.clone()),
            ("http_shadow", "127.0.0.1:1".into()),
            ("redis_bind", local(redis_front)),
            ("redis_primary", redis_primary.clone()),
            ("redis_shadow", "127.0.0.1:1".into()),
        ],
    )?;
    let cfg_path = dir.join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg_text)?;
    let _haproxy = Proc::spawn("haproxy", Command::new(&haproxy).arg("-db").arg("-f").arg(&cfg_path))?;
    until("haproxy", Duration::from_secs(10), || tcp_open_owned(local(web_front))).await?;
    tl.say(format!("haproxy: http on {}, redis on {} (runtime API {})", local(web_front), local(redis_front), sock.display()));

    // harbinger's inventory and configuration.
    let data_dir = dir.join("data");
    let inv = dir.join("inventory");
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    let (metrics_csv, story) = match a.trigger {
        DemoTrigger::Metrics => {
            let (csv, story) = history(now_ms)?;
            (csv, Some(story))
        }
        DemoTrigger::Alert => ("timestamp,host,metric,value\n".to_string(), None),
    };
    write_inventory(&inv, &web_primary, &redis_primary, &metrics_csv)?;
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir)?;
    let mut model: Value = serde_json::from_str(harbinger_model::EMBEDDED_DEFAULT).context("the embedded model")?;
    model["policy"]["enter_after_ms"] = json!(ENTER_AFTER_MS);
    std::fs::write(model_dir.join("model.json"), serde_json::to_vec(&model)?)?;
    if let Some(story) = &story {
        tl.say(story);
    }
    let toml = config_toml(
        &model_dir,
        &data_dir,
        http_port,
        grpc_port,
        &exe,
        &redis_server,
        &dir.join("replicas"),
        &sock,
        &lab,
        netns.then_some((web_port, redis_port)),
    );
    let cfg_file = dir.join("harbinger.toml");
    std::fs::write(&cfg_file, toml)?;
    let cfg = harbinger_config::Config::load(Some(&cfg_file), |_| None, &[]).context("the demo's configuration")?;
    load_inventory(&cfg, &inv).await.context("loading the demo inventory")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve::run(cfg, async move {
        let _stop = stop_rx.await;
    }));
    let api = format!("http://{}", local(http_port));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    until("harbinger", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), format!("{api}/healthz"));
        async move { http.get(url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await?;
    tl.say(format!(
        "harbinger serving on {api} with actuators process -> redis -> haproxy; watchdog every 200 ms, 2 of 3 checks fail a primary"
    ));

    // Load on both services.
    let stop_load = Arc::new(AtomicBool::new(false));
    let loader = tokio::spawn(load(format!("http://{}/", local(web_front)), a.rate, stop_load.clone()));
    let writer = tokio::spawn(writes(local(redis_front), stop_load.clone()));
    tl.say(format!(
        "load: {} GET/s through haproxy; a Redis write loop through haproxy (every other write acknowledged with WAIT 1)",
        a.rate
    ));

    // The prediction: both primaries' hosts are about to fail.
    match a.trigger {
        DemoTrigger::Metrics => {
            tl.say(format!(
                "harbinger scores every host at each engine tick (250 ms here); a host above the model's alert threshold for {} s \
                 enters the alerting state (the model's own delay, 10 min, is shortened so the story fits in a minute)",
                ENTER_AFTER_MS / 1000
            ));
        }
        DemoTrigger::Alert => {
            let alert = json!({"version": "4", "status": "firing", "receiver": "harbinger", "alerts": [
                {"status": "firing", "labels": {"alertname": "HostFailurePredicted", "host": "web-a", "severity": "critical"},
                 "annotations": {"summary": "web-a predicted to fail within the hour"}},
                {"status": "firing", "labels": {"alertname": "HostFailurePredicted", "host": "cache-a", "severity": "critical"},
                 "annotations": {"summary": "cache-a predicted to fail within the hour"}}]});
            let r = http
                .post(format!("{api}/api/v1/alerts"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&alert)?)
                .send()
                .await
                .context("posting the alert")?;
            if !r.status().is_success() {
                bail!("harbinger refused the alert: {} {}", r.status(), r.text().await.unwrap_or_default());
            }
            tl.say("alert: web-a and cache-a predicted to fail (Alertmanager webhook)");
        }
    }
    let ready = until("both shadows ready", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), format!("{api}/shadow/status?state=ready"));
        async move {
            let v: Value = serde_json::from_slice(&http.get(url).send().await.ok()?.bytes().await.ok()?).ok()?;
            let shadows = v["shadows"].as_array()?;
            (shadows.len() >= 2).then(|| shadows.clone())
        }
    })
    .await?;
    for s in &ready {
        tl.say(format!(
            "shadow {} of {} ready on {} at {}",
            s["id"].as_str().unwrap_or("?"),
            s["resource"].as_str().unwrap_or("?"),
            s["host"].as_str().unwrap_or("?"),
            s["endpoint"].as_str().unwrap_or("?")
        ));
    }
    if a.trigger == DemoTrigger::Metrics {
        let url = format!("{api}/api/v1/risk?host=web-a,web-b,cache-a,cache-b");
        let risks: Value = serde_json::from_slice(&http.get(url).send().await?.bytes().await?).unwrap_or(Value::Null);
        for r in risks.as_array().into_iter().flatten() {
            let reasons: Vec<String> = r["reasons"].as_array().into_iter().flatten().take(2).map(|x| x.to_string()).collect();
            tl.say(format!(
                "risk of {}: {:.2} (failure probability {:.2}, alerting {}){}",
                r["host"].as_str().unwrap_or("?"),
                r["risk"].as_f64().unwrap_or(f64::NAN),
                r["failure_probability"].as_f64().unwrap_or(f64::NAN),
                r["alerting"],
                if reasons.is_empty() { String::new() } else { format!("; {}", reasons.join(", ")) }
            ));
        }
    }
    let web_shadow = ready.iter().find(|s| s["resource"] == "web").and_then(|s| s["id"].as_str()).unwrap_or_default().to_string();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The failures, one after the other: first the web primary dies under load...
    let promoted = |resource: &'static str| {
        let (http, url) = (http.clone(), format!("{api}/shadow/status?state=promoted&resource={resource}"));
        move || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let v: Value = serde_json::from_slice(&http.get(url).send().await.ok()?.bytes().await.ok()?).ok()?;
                (!v["shadows"].as_array()?.is_empty()).then_some(())
            }
        }
    };
    let killed_web = fail(&lab, a.failure, "web-a", &mut web, &mut tl)?;
    until("the web failover", Duration::from_secs(15), promoted("web")).await?;
    tl.say("harbinger promoted the web shadow and switched haproxy");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // ...then the Redis primary, during the write loop.
    let redis_addr = local(redis_front);
    let killed_redis = fail(&lab, a.failure, "cache-a", &mut redis, &mut tl)?;
    let switched = tokio::spawn({
        let addr = redis_addr.clone();
        async move {
            until("a Redis primary behind haproxy", Duration::from_secs(15), || redis_role_master(addr.clone()))
                .await
                .map(|()| killed_redis.elapsed())
        }
    });
    until("the redis failover", Duration::from_secs(15), promoted("cache")).await?;
    let redis_switch = switched.await.context("redis switch poller")??;
    tl.say(format!(
        "harbinger promoted the redis replica and switched haproxy: clients reach a primary {} ms after the failure",
        redis_switch.as_millis()
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_load.store(true, Ordering::Relaxed);
    let got = loader.await.context("load generator")?;
    let (waited, plain, write_errors) = writer.await.context("writer")?;

    // The counts.
    let requests = got.len();
    let failed = got.iter().filter(|g| g.body.is_err()).count();
    let mut why: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for g in &got {
        if let Err(e) = &g.body {
            *why.entry(e.as_str()).or_default() += 1;
        }
    }
    let first_shadow = got.iter().filter(|g| g.sent >= killed_web && g.body.as_deref() == Ok(web_shadow.as_str())).map(|g| g.done).min();
    let failover_ms = first_shadow.map(|t| t.duration_since(killed_web).as_secs_f64() * 1000.0);
    let slowest_ms =
        got.iter().filter(|g| g.sent >= killed_web).map(|g| g.done.duration_since(g.sent).as_secs_f64() * 1000.0).fold(0.0, f64::max);
    let acked_lost = missing(&redis_addr, &waited).await?;
    let unacked_lost = missing(&redis_addr, &plain).await?;
    let redis_failover_ms = Some(redis_switch.as_secs_f64() * 1000.0);
    let _stopped = stop_tx.send(());
    let served = tokio::time::timeout(Duration::from_secs(20), server).await;
    match served {
        Ok(Ok(r)) => r.context("harbinger serve")?,
        Ok(Err(e)) => bail!("harbinger serve task: {e}"),
        Err(_) => bail!("harbinger serve did not stop within 20 s"),
    }

    // The decisions, as harbinger logged them, on the demo's clock.
    let log = std::fs::read_to_string(data_dir.join("decisions.jsonl")).unwrap_or_default();
    let decisions: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let done_of = |resource: &str| {
        decisions
            .iter()
            .find(|d| d["kind"] == "failover_done" && d["resource"] == resource)
            .and_then(|d| d["reason"].as_str())
            .map(failover_timings)
    };
    let (web_detect, web_act) = done_of("web").flatten().unzip();
    let (cache_detect, cache_act) = done_of("cache").flatten().unzip();
    let ms1 = |m: f64| (m * 10.0).round() / 10.0;
    let report = json!({
        "hosts": if netns { "netns" } else { "loopback" },
        "failure": match a.failure { DemoFailure::Kill => "kill", DemoFailure::Cut => "cut" },
        "failover_ms": failover_ms.map(ms1),
        "redis_failover_ms": redis_failover_ms.map(ms1),
        "harbinger_detect_ms": web_detect,
        "harbinger_act_ms": web_act,
        "redis_harbinger_detect_ms": cache_detect,
        "redis_harbinger_act_ms": cache_act,
        "served_by_shadow": got.iter().filter(|g| g.body.as_deref() == Ok(web_shadow.as_str())).count(),
        "requests": requests,
        "failed_requests": failed,
        "failures": why,
        "slowest_request_ms": ms1(slowest_ms),
        "acked_writes": waited.len(),
        "acked_writes_lost": acked_lost,
        "unacked_writes": plain.len(),
        "unacked_writes_lost": unacked_lost,
        "write_errors": write_errors,
        "decisions": decisions.iter().map(|d| d["kind"].as_str().unwrap_or("")).collect::<Vec<_>>(),
        "trigger": match a.trigger { DemoTrigger::Metrics => "metrics", DemoTrigger::Alert => "alert" },
        "planned_because": decisions.iter().filter(|d| d["kind"] == "shadow_planned").filter_map(|d| d["reason"].as_str()).collect::<Vec<_>>(),
    });
    tl.say(format!(
        "web: {requests} requests, {failed} failed; first answer from the shadow {} after the failure \
         (haproxy took the primary out at its first failed connection and sent traffic to the armed shadow); \
         harbinger declared web-a down {} ms after its first failed check and promoted the shadow {} ms later",
        failover_ms.map_or("never".to_string(), |m| format!("{m:.1} ms")),
        web_detect.map_or("?".into(), |m: u64| m.to_string()),
        web_act.map_or("?".into(), |m: u64| m.to_string()),
    ));
    tl.say(format!(
        "redis: clients reached the promoted replica {} ms after the failure (harbinger: down after {} ms, promoted and switched {} ms later); \
         {} writes acknowledged with WAIT 1, {acked_lost} lost; {} acknowledged without WAIT, {unacked_lost} lost \
         (asynchronous replication can lose those); {write_errors} writes failed while no primary was reachable",
        redis_failover_ms.map_or("?".into(), |m| format!("{m:.0}")),
        cache_detect.map_or("?".into(), |m: u64| m.to_string()),
        cache_act.map_or("?".into(), |m: u64| m.to_string()),
        waited.len(),
        plain.len()
    ));
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("\nwhat harbinger decided, and why ({}):", data_dir.join("decisions.jsonl").display());
        for d in &decisions {
            let at = d["ts"].as_i64().map_or(f64::NAN, |ts| (ts - tl.start_ms) as f64 / 1000.0);
            println!(
                "{at:>8.3} s  {:<16} {:<6} {}",
                d["kind"].as_str().unwrap_or(""),
                d["resource"].as_str().unwrap_or(""),
                d["reason"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// (detect ms, act ms) from a `failover_done` reason: "... declared down N ms after ...;
/// failover actions done M ms later ...".
fn failover_timings(reason: &str) -> Option<(u64, u64)> {
    let number_before = |marker: &str| -> Option<u64> {
        let head = &reason[..reason.find(marker)?];
        head.rsplit(' ').next()?.parse().ok()
    };
    Some((number_before(" ms after the first failed check")?, number_before(" ms later")?))
}

/// Makes `host` die as `failure` says; returns when.
fn fail(lab: &Lab, failure: DemoFailure, host: &str, primary: &mut Proc, tl: &mut Timeline) -> anyhow::Result<Instant> {
    match failure {
        DemoFailure::Kill => {
            primary.sigkill();
            tl.say(format!("SIGKILL of the {} (host {host} dies)", primary.name));
        }
        DemoFailure::Cut if lab.is_netns() => {
            lab.cut(host)?;
            tl.say(format!("link of host {host} cut: packets to it are dropped, connections time out"));
        }
        DemoFailure::Cut => {
            primary.signal(rustix::process::Signal::STOP);
            tl.say(format!("SIGSTOP of the {} (host {host} hangs: on loopback there is no link to cut)", primary.name));
        }
    }
    Ok(Instant::now())
}

pub(crate) async fn tcp_open_owned(addr: String) -> Option<()> {
    tcp_open(&addr).await.then_some(())
}

pub(crate) async fn redis_role_master(addr: String) -> Option<()> {
    let mut c = RedisClient::connect(&addr, Duration::from_millis(300)).await.ok()?;
    (c.role().await.ok()? == "master").then_some(())
}

/// Writes the inventory dataset at `dir` into the configured store, as `ingest` does.
async fn load_inventory(cfg: &harbinger_config::Config, dir: &Path) -> anyhow::Result<()> {
    let (ds, _load) = harbinger_dataset::read_dataset(dir, harbinger_dataset::LoadOptions::default())?;
    let store = Arc::new(crate::open_store(cfg)?);
    harbinger_dataset::store_dataset(ds, &harbinger_core::Stores::from_backend(store.clone())).await?;
    store.close()?;
    Ok(())
}

/// Replaces every `{{key}}` of `template`; a placeholder left over is an error.
pub(crate) fn render(template: &str, values: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    if let Some(at) = out.find("{{") {
        let rest: String = out[at..].chars().take(40).collect();
        bail!("haproxy template: placeholder left unset at {rest:?}");
    }
    Ok(out)
}

/// The demo fleet: four hosts in two zones; `web` (HTTP) on web-a, `cache` (Redis) on
/// cache-a, each with its endpoint, health check and HAProxy slots.
fn write_inventory(dir: &Path, web: &str, redis: &str, metrics_csv: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("hosts.csv"),
        "host,zone,rack,cpu_cores,mem_gb\nweb-a,a,,8,32\nweb-b,b,,8,32\ncache-a,a,,8,32\ncache-b,b,,8,32\n",
    )?;
    let resources = json!([
        {"id": "web", "kind": "http", "host": "web-a", "criticality": 3, "cpu_cores": 1.0, "mem_gb": 1.0, "depends_on": [],
         "state": {"endpoint": web, "health": "http", "health_path": "/",
                   "haproxy": {"backend": "be_http", "primary": "primary", "shadow": "shadow", "armed": true}}},
        {"id": "cache", "kind": "redis", "host": "cache-a", "criticality": 3, "cpu_cores": 1.0, "mem_gb": 1.0, "depends_on": [],
         "state": {"endpoint": redis, "health": "redis",
                   "haproxy": {"backend": "be_redis", "primary": "primary", "shadow": "shadow"}}},
    ]);
    std::fs::write(dir.join("resources.json"), serde_json::to_vec_pretty(&resources)?)?;
    std::fs::write(dir.join("metrics.csv"), metrics_csv)?;
    std::fs::write(dir.join("events.jsonl"), "")?;
    Ok(())
}

/// The demo's `harbinger.toml`. `ports`: the fixed (web, redis) ports of hosts that are
/// namespaces; `None` on loopback (free ports).
#[allow(clippy::too_many_arguments)]
fn config_toml(
    model_dir: &Path,
    data_dir: &Path,
    http: u16,
    grpc: u16,
    exe: &Path,
    redis_server: &Path,
    replicas: &Path,
    sock: &Path,
    lab: &Lab,
    ports: Option<(u16, u16)>,
) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let list = |items: &[String]| format!("[{}]", items.iter().map(|i| q(i)).collect::<Vec<_>>().join(", "));
    let wrapper = lab.wrapper_template();
    let mut command = wrapper.clone();
    command.push(exe.display().to_string());
    command.extend(["demo-backend", "--addr", "{host_addr}", "--port", "{port}", "--name", "{shadow}"].map(String::from));
    let host_addrs = format!("{{ {} }}", lab.addrs().iter().map(|(h, a)| format!("{} = {}", q(h), q(a))).collect::<Vec<_>>().join(", "));
    let (web_port, redis_port) = match ports {
        Some((w, r)) => (format!("port = {w}\n"), format!("port = {r}\nwrapper = {}\n", list(&wrapper))),
        None => (String::new(), String::new()),
    };
    format!(
        r#"data_dir = {data}

[http]
addr = "127.0.0.1:{http}"

[grpc]
addr = "127.0.0.1:{grpc}"

[log]
level = "warn"

[model]
dir = {model}

[store]
retention = "forever"
# The scorer is warmed from the in-memory window at start: all 8 h of history.
hot_window = "9h"

[engine]
tick = "250ms"
actuator = "chain"

[watchdog]
enabled = true

[[actuators]]
kind = "process"
resource_kinds = ["http"]
command = {command}
health = "http"
health_timeout = "10s"
host_addrs = {host_addrs}
{web_port}
[[actuators]]
kind = "redis"
resource_kinds = ["redis"]
redis_server = {redis}
data_dir = {replicas}
args = ["--protected-mode", "no"]
host_addrs = {host_addrs}
{redis_port}
[[actuators]]
kind = "haproxy"
api = {sock}
timeout = "5s"
"#,
        data = q(&data_dir.display().to_string()),
        model = q(&model_dir.display().to_string()),
        command = list(&command),
        redis = q(&redis_server.display().to_string()),
        replicas = q(&replicas.display().to_string()),
        sock = q(&format!("unix:{}", sock.display())),
    )
}
