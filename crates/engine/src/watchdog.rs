//! The watchdog: health checks of every primary the inventory gives an `endpoint`, and
//! failover when one fails.
//!
//! A resource's `state` names how to check it: `"health": "tcp"` (the default: a TCP
//! connect), `"http"` (a `GET` of `"health_path"`, default `/`, answered 2xx or 3xx) or
//! `"redis"` (`PING` answered `+PONG`). Every `interval` each endpoint is checked with a
//! `timeout`; when `fall` of the last `window` checks failed, the resource's host is
//! declared down and [`Engine::host_failed`] fails it over at once. Checks run
//! concurrently, so a dead host that drops packets costs one `timeout`, not one per
//! resource.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};

use harbinger_core::{HostId, Resource, ResourceId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::engine::{Engine, TickReport};

/// How the watchdog checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogConfig {
    /// Time between rounds of checks.
    pub interval: Duration,
    /// Longest wait for one check.
    pub timeout: Duration,
    /// Failed checks (of the last `window`) that declare a primary down.
    pub fall: usize,
    /// Checks remembered per resource.
    pub window: usize,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig { interval: Duration::from_millis(200), timeout: Duration::from_millis(150), fall: 2, window: 3 }
    }
}

/// One check's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// TCP connect.
    Tcp,
    /// HTTP `GET path`, 2xx or 3xx.
    Http(String),
    /// Redis `PING` → `+PONG`.
    Redis,
}

impl Check {
    /// The check a resource's state asks for.
    pub fn of(r: &Resource) -> Check {
        match r.state.get("health").and_then(|h| h.as_str()) {
            Some("http") => Check::Http(r.state.get("health_path").and_then(|p| p.as_str()).unwrap_or("/").to_string()),
            Some("redis") => Check::Redis,
            _ => Check::Tcp,
        }
    }

    /// Runs the check against `endpoint` within `timeout`; `Err` says why it failed.
    pub async fn run(&self, endpoint: &str, timeout: Duration) -> Result<(), String> {
        match tokio::time::timeout(timeout, self.probe(endpoint)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        }
    }

    async fn probe(&self, endpoint: &str) -> Result<(), String> {
        let mut s = TcpStream::connect(endpoint).await.map_err(|e| format!("connect {endpoint}: {e}"))?;
        let (req, want): (Vec<u8>, &[u8]) = match self {
            Check::Tcp => return Ok(()),
            Check::Http(path) => (format!("GET {path} HTTP/1.0\r\nHost: {endpoint}\r\n\r\n").into_bytes(), b"HTTP/1."),
            Check::Redis => (b"PING\r\n".to_vec(), b"+PONG"),
        };
        s.write_all(&req).await.map_err(|e| format!("write to {endpoint}: {e}"))?;
        let mut buf = [0u8; 16];
        let mut n = 0;
        // HTTP: enough of the status line for the code (the server closes after it).
        // Redis: the first reply line (the server keeps the connection open).
        while n < want.len() + 4 && !(matches!(self, Check::Redis) && buf[..n].windows(2).any(|w| w == b"\r\n")) {
            let k = s.read(&mut buf[n..]).await.map_err(|e| format!("read from {endpoint}: {e}"))?;
            if k == 0 {
                break;
            }
            n += k;
        }
        let got = &buf[..n];
        if !got.starts_with(want) {
            return Err(format!("{endpoint} answered {:?}", String::from_utf8_lossy(got)));
        }
        if let Check::Http(_) = self {
            // "HTTP/1.x NNN": 2xx or 3xx.
            let code = got.get(9).copied().unwrap_or(b'0');
            if !(code == b'2' || code == b'3') {
                return Err(format!("{endpoint} answered {:?}", String::from_utf8_lossy(got)));
            }
        }
        Ok(())
    }
}

/// A failover the watchdog started, with its timings.
#[derive(Debug, Clone)]
pub struct Failover {
    /// The host declared down.
    pub host: HostId,
    /// The resource whose checks failed.
    pub resource: ResourceId,
    /// The last check's error.
    pub evidence: String,
    /// When its first failed check of the run started.
    pub first_failure: Instant,
    /// When the host was declared down.
    pub declared: Instant,
    /// When the failover's actions were done.
    pub done: Instant,
    /// What the engine did.
    pub report: TickReport,
}

/// The last checks of one primary: `Err` holds when the failed check began and why.
type CheckHistory = VecDeque<Result<(), (Instant, String)>>;

/// The watchdog over an engine.
#[derive(Debug)]
pub struct Watchdog {
    engine: Engine,
    cfg: WatchdogConfig,
    history: BTreeMap<ResourceId, CheckHistory>,
}

impl Watchdog {
    /// A watchdog over `engine`.
    pub fn new(engine: Engine, cfg: WatchdogConfig) -> Self {
        Watchdog { engine, cfg, history: BTreeMap::new() }
    }

    /// One round: checks every watched resource concurrently, fails over the hosts whose
    /// resources failed `fall` of their last `window` checks.
    pub async fn round(&mut self) -> Vec<Failover> {
        let watched = self.engine.watched().await;
        let timeout = self.cfg.timeout;
        let checks = watched.iter().map(|(r, endpoint)| {
            let check = Check::of(r);
            async move {
                let started = Instant::now();
                (check.run(endpoint, timeout).await, started)
            }
        });
        let results = futures_util::future::join_all(checks).await;
        let mut down: BTreeMap<HostId, (ResourceId, String, Instant)> = BTreeMap::new();
        for ((r, _), (result, started)) in watched.iter().zip(results) {
            let id = ResourceId::new(&r.id);
            let h = self.history.entry(id.clone()).or_default();
            h.push_back(result.map_err(|e| (started, e)));
            while h.len() > self.cfg.window.max(1) {
                h.pop_front();
            }
            let failed: Vec<&(Instant, String)> = h.iter().filter_map(|x| x.as_ref().err()).collect();
            if failed.len() >= self.cfg.fall.max(1) {
                let first = failed.first().map_or(started, |f| f.0);
                let evidence = failed.last().map_or_else(String::new, |f| f.1.clone());
                down.entry(r.host.clone()).or_insert((id, evidence, first));
            }
        }
        // Forget resources no longer watched (moved, or their host is down).
        let ids: std::collections::BTreeSet<ResourceId> = watched.iter().map(|(r, _)| ResourceId::new(&r.id)).collect();
        self.history.retain(|k, _| ids.contains(k));
        let mut out = Vec::new();
        for (host, (resource, evidence, first_failure)) in down {
            let declared = Instant::now();
            let why = format!("{} failed {} of its last {} health checks: {evidence}", resource, self.cfg.fall, self.cfg.window);
            match self.engine.host_failed(&host, &why).await {
                Ok(report) => {
                    let done = Instant::now();
                    let t = self.engine.telemetry();
                    t.failovers.inc();
                    t.failover_seconds.observe((done - first_failure).as_secs_f64());
                    tracing::warn!(%host, %resource, detect_ms = (declared - first_failure).as_millis() as u64,
                        act_ms = (done - declared).as_millis() as u64, "failover done");
                    self.engine.failover_done(&host, &resource, declared - first_failure, done - declared, &report).await;
                    out.push(Failover { host, resource, evidence, first_failure, declared, done, report });
                }
                Err(e) => tracing::error!(%host, error = %e, "failover failed"),
            }
        }
        for f in &out {
            self.history.remove(&f.resource);
        }
        out
    }

    /// Runs rounds every `interval` until `stop` resolves.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        let mut interval = tokio::time::interval(self.cfg.interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = interval.tick() => {}
            }
            self.round().await;
        }
    }
}
