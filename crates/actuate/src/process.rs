//! The process actuator: a shadow is a local process it starts, health-checks and
//! stops, so that a "host" can be a real service (a test fleet on one machine, a demo).
//!
//! Start with [`ProcessConfig`] and [`ProcessActuator::new`].
//!
//! - `create_shadow`: picks the port (free at that moment: bind `addr:0` and release it,
//!   unless [`ProcessConfig::port`] fixes it), renders the command, spawns it in its own
//!   process group, and waits until it is healthy (TCP connect or an HTTP `GET` answered
//!   2xx/3xx) for at most `health_timeout`. Healthy: `applied`, `endpoint = addr:port`,
//!   reached `ready`. Exits first: `failed` with its stderr. Not healthy in time:
//!   `failed`, and its process group is killed.
//! - A second `create_shadow` for a shadow whose process is alive: `already_applied`
//!   with the same endpoint (idempotent by shadow id). A dead one is started again.
//! - `retire_shadow` / `expire_shadow`: SIGTERM to its process group, SIGKILL after
//!   `stop_timeout`; `already_applied` when nothing runs for the shadow.
//! - `promote_shadow`: `applied`, nothing to do (the process already serves; switching
//!   traffic is another actuator's job), or `failed` when its process is gone.
//! - [`Actuator::sync_state`]: `ready` when alive and healthy, `syncing` when alive and
//!   not healthy, `failed` when gone.
//!
//! Actions run one at a time (a creation holds the actuator while it waits for health).
//! Everything it started is killed (SIGKILL to each process group) when it is dropped;
//! [`ProcessActuator::stop_all`] stops them gracefully first. Processes are tracked in
//! memory only: a restarted harbinger starts new ones.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_core::{JournalStatus, Resource, ShadowId};
use harbinger_engine::{Actuator, ActuatorOutcome, ActuatorRequest};
use harbinger_plan::ActionKind;
use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Child;
use tokio::time::Instant;

use crate::exec::{SharedTail, Tail, drain, join_readers, read_tail, render, signal_group};

/// How a started process is known to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// A TCP connection to `addr:port` succeeds.
    Tcp,
    /// `GET path` over HTTP/1.0 answers 2xx or 3xx.
    Http {
        /// Path, e.g. `/` or `/healthz`.
        path: String,
    },
}

/// Configuration of a [`ProcessActuator`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessConfig {
    /// Program and arguments, each a template: `{port}`, `{host_addr}` (the shadow host's
    /// address), `{endpoint_primary}` (the resource's `endpoint` in its inventory state),
    /// `{shadow}`, `{resource}`, `{host}` and `{primary}` are replaced.
    pub command: Vec<String>,
    /// Address of each host id; hosts not listed are `127.0.0.1`.
    pub host_addrs: BTreeMap<String, String>,
    /// A fixed port; `None` (the default): a port free at creation, which the command
    /// must then take from `{port}`.
    pub port: Option<u16>,
    /// How health is checked. Default: TCP.
    pub health: HealthCheck,
    /// Longest wait for a new process to become healthy. Default 10 s.
    pub health_timeout: Duration,
    /// Wait between SIGTERM and SIGKILL when stopping. Default 5 s.
    pub stop_timeout: Duration,
}

impl ProcessConfig {
    /// `command` (a template, see [`ProcessConfig::command`]) with the defaults.
    pub fn new(command: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ProcessConfig {
            command: command.into_iter().map(Into::into).collect(),
            host_addrs: BTreeMap::new(),
            port: None,
            health: HealthCheck::Tcp,
            health_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(5),
        }
    }

    /// With `host` at address `addr`.
    #[must_use]
    pub fn host_addr(mut self, host: impl Into<String>, addr: impl Into<String>) -> Self {
        self.host_addrs.insert(host.into(), addr.into());
        self
    }

    /// With a fixed port.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// With `health`.
    #[must_use]
    pub fn health(mut self, health: HealthCheck) -> Self {
        self.health = health;
        self
    }

    /// With `health_timeout`.
    #[must_use]
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    /// With `stop_timeout`.
    #[must_use]
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }
}

/// A process configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// No program.
    #[error("process actuator: the command is empty")]
    EmptyCommand,
    /// No fixed port and no `{port}` in the command: the port is unknowable.
    #[error("process actuator: the command has no {{port}} and no fixed port is set")]
    NoPort,
}

/// A process started for a shadow.
#[derive(Debug)]
struct Running {
    child: Child,
    pgid: Option<u32>,
    endpoint: String,
    stderr: SharedTail,
}

impl Running {
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The process of `id`, when it is alive.
fn live<'a>(procs: &'a mut HashMap<ShadowId, Running>, id: &ShadowId) -> Option<&'a mut Running> {
    let r = procs.get_mut(id)?;
    if r.alive() { Some(r) } else { None }
}

/// Bytes of a process's stdout and stderr kept (the last ones).
const OUTPUT_LIMIT: usize = 4096;
/// Pause between health probes.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// Longest single probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts, health-checks and stops a local process per shadow (see the module docs).
#[derive(Debug)]
pub struct ProcessActuator {
    cfg: ProcessConfig,
    procs: tokio::sync::Mutex<HashMap<ShadowId, Running>>,
}

impl ProcessActuator {
    /// An actuator for `cfg`.
    ///
    /// # Errors
    /// [`ProcessError`] for an empty command, or one without `{port}` and no fixed port.
    pub fn new(cfg: ProcessConfig) -> Result<Self, ProcessError> {
        if cfg.command.first().is_none_or(String::is_empty) {
            return Err(ProcessError::EmptyCommand);
        }
        if cfg.port.is_none() && !cfg.command.iter().any(|a| a.contains("{port}")) {
            return Err(ProcessError::NoPort);
        }
        Ok(ProcessActuator { cfg, procs: tokio::sync::Mutex::new(HashMap::new()) })
    }

    /// Its configuration.
    pub fn config(&self) -> &ProcessConfig {
        &self.cfg
    }

    /// The pid (and process group id) of the live process of `shadow`, if any.
    pub async fn pid(&self, shadow: &ShadowId) -> Option<u32> {
        let mut procs = self.procs.lock().await;
        live(&mut procs, shadow).and_then(|r| r.child.id())
    }

    /// The endpoint of the live process of `shadow`, if any.
    pub async fn endpoint(&self, shadow: &ShadowId) -> Option<String> {
        let mut procs = self.procs.lock().await;
        live(&mut procs, shadow).map(|r| r.endpoint.clone())
    }

    /// Stops every process it started (SIGTERM, SIGKILL after `stop_timeout`).
    pub async fn stop_all(&self) {
        let all: Vec<Running> = self.procs.lock().await.drain().map(|(_, r)| r).collect();
        for r in all {
            let _how = self.stop(r).await;
        }
    }

    /// Lets every live process it started run on after this actuator is dropped (a
    /// promoted shadow stack is the live stack now); answers their shadow ids and pids.
    /// They are no longer tracked: their output is no longer read (a process that
    /// writes to stdout or stderr after this one exits gets `EPIPE`), and stopping them
    /// is someone else's job.
    pub async fn detach_all(&self) -> Vec<(ShadowId, u32)> {
        let all: Vec<(ShadowId, Running)> = self.procs.lock().await.drain().collect();
        let mut out = Vec::new();
        for (id, mut r) in all {
            if r.alive()
                && let Some(pid) = r.child.id()
            {
                out.push((id, pid));
            }
            // Dropping the handle would kill it (`kill_on_drop`).
            std::mem::forget(r.child);
        }
        out
    }

    fn host_addr(&self, shadow: &Shadow) -> &str {
        self.cfg.host_addrs.get(shadow.host.as_str()).map_or("127.0.0.1", String::as_str)
    }

    async fn apply_inner(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let id = &req.shadow.id;
        match &req.action {
            ActionKind::CreateShadow { shadow } => self.create(shadow, req.resource.as_ref()).await,
            ActionKind::RetireShadow { .. } | ActionKind::ExpireShadow { .. } => {
                let Some(r) = self.procs.lock().await.remove(id) else {
                    return ActuatorOutcome::new(JournalStatus::AlreadyApplied, format!("no process runs for shadow {id}"));
                };
                let pid = r.child.id().map_or_else(|| "?".to_string(), |p| p.to_string());
                let how = self.stop(r).await;
                ActuatorOutcome::new(JournalStatus::Applied, format!("stopped the process of shadow {id} (pid {pid}): {how}"))
            }
            ActionKind::PromoteShadow { .. } => {
                let mut procs = self.procs.lock().await;
                match procs.get_mut(id).map(|r| (r.alive(), r)) {
                    Some((true, r)) => ActuatorOutcome::new(
                        JournalStatus::Applied,
                        format!("nothing to do: the process of shadow {id} already serves at {}", r.endpoint),
                    ),
                    Some((false, _)) => ActuatorOutcome::failed(format!("the process of shadow {id} has exited; cannot promote it")),
                    None => ActuatorOutcome::failed(format!("no process runs for shadow {id}; cannot promote it")),
                }
            }
            ActionKind::AddCause { .. } | ActionKind::DropCause { .. } => {
                ActuatorOutcome::new(JournalStatus::Applied, "nothing to do: bookkeeping only")
            }
        }
    }

    async fn create(&self, shadow: &Shadow, resource: Option<&Resource>) -> ActuatorOutcome {
        let id = &shadow.id;
        let mut procs = self.procs.lock().await;
        if let Some(r) = procs.get_mut(id) {
            if r.alive() {
                let mut out = ActuatorOutcome::new(
                    JournalStatus::AlreadyApplied,
                    format!("the process of shadow {id} (pid {}) already serves at {}", r.child.id().unwrap_or(0), r.endpoint),
                );
                out.endpoint = Some(r.endpoint.clone());
                out.reached = Some(ShadowState::Ready);
                return out;
            }
            if let Some(pgid) = r.pgid {
                // Whatever the dead leader left behind.
                signal_group(pgid, Signal::KILL);
            }
            procs.remove(id);
        }

        let addr = self.host_addr(shadow).to_string();
        let port = match self.cfg.port {
            Some(p) => p,
            None => match free_port(&addr).await {
                Ok(p) => p,
                Err(e) => return ActuatorOutcome::failed(format!("no free port on {addr}: {e}")),
            },
        };
        let endpoint = join_host_port(&addr, port);
        let primary_endpoint = resource.and_then(|r| r.state.get("endpoint")).and_then(|e| e.as_str()).map(str::to_string);
        if primary_endpoint.is_none() && self.cfg.command.iter().any(|a| a.contains("{endpoint_primary}")) {
            return ActuatorOutcome::failed(format!(
                "the command needs {{endpoint_primary}} but resource {} has no endpoint in its state",
                shadow.resource
            ));
        }
        let lookup = |name: &str| -> Option<String> {
            Some(match name {
                "port" => port.to_string(),
                "host_addr" => addr.clone(),
                "endpoint_primary" => primary_endpoint.clone().unwrap_or_default(),
                "shadow" => shadow.id.to_string(),
                "resource" => shadow.resource.to_string(),
                "host" => shadow.host.to_string(),
                "primary" => shadow.primary.to_string(),
                _ => return None,
            })
        };
        let argv: Vec<String> = self.cfg.command.iter().map(|a| render(a, lookup)).collect();
        let Some((prog, args)) = argv.split_first() else {
            return ActuatorOutcome::failed("the command is empty");
        };
        let shown = argv.join(" ");
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return ActuatorOutcome::failed(format!("cannot run `{prog}`: {e}")),
        };
        let pgid = child.id();
        let stdout: SharedTail = Arc::new(Mutex::new(Tail::new(OUTPUT_LIMIT)));
        let stderr: SharedTail = Arc::new(Mutex::new(Tail::new(OUTPUT_LIMIT)));
        let mut readers = Vec::new();
        if let Some(o) = child.stdout.take() {
            readers.push(drain(o, Arc::clone(&stdout)));
        }
        if let Some(e) = child.stderr.take() {
            readers.push(drain(e, Arc::clone(&stderr)));
        }

        let deadline = Instant::now() + self.cfg.health_timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                if let Some(g) = pgid {
                    signal_group(g, Signal::KILL);
                }
                join_readers(readers, Duration::from_secs(1)).await;
                let (err, _) = read_tail(&stderr);
                let (out, _) = read_tail(&stdout);
                let why = if err.trim().is_empty() { out } else { err };
                let mut detail = format!("`{shown}` exited ({status}) before it was healthy at {endpoint}");
                if !why.trim().is_empty() {
                    let _w = write!(detail, ": {}", why.trim());
                }
                return ActuatorOutcome::failed(detail);
            }
            let now = Instant::now();
            let probe = PROBE_TIMEOUT.min(deadline.saturating_duration_since(now)).max(PROBE_EVERY);
            let last = match check(&self.cfg.health, &endpoint, probe).await {
                Ok(()) => break,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let running = Running { child, pgid, endpoint: endpoint.clone(), stderr: Arc::clone(&stderr) };
                let _how = kill_now(running).await;
                join_readers(readers, Duration::from_secs(1)).await;
                let (err, _) = read_tail(&stderr);
                let mut detail =
                    format!("`{shown}` not healthy at {endpoint} within {:?} ({last}); process group killed", self.cfg.health_timeout);
                if !err.trim().is_empty() {
                    let _w = write!(detail, "; stderr: {}", err.trim());
                }
                return ActuatorOutcome::failed(detail);
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
        // Readers keep draining for the life of the process (so it never blocks on a full
        // pipe); they end when it does.
        drop(readers);
        let pid = child.id().unwrap_or(0);
        procs.insert(id.clone(), Running { child, pgid, endpoint: endpoint.clone(), stderr });
        let mut out = ActuatorOutcome::new(JournalStatus::Applied, format!("started `{shown}` (pid {pid}), healthy at {endpoint}"));
        out.endpoint = Some(endpoint);
        out.reached = Some(ShadowState::Ready);
        out
    }

    /// SIGTERM to the group, SIGKILL after `stop_timeout`; says how it ended.
    async fn stop(&self, mut r: Running) -> String {
        let Some(pgid) = r.pgid else {
            return "no process id".to_string();
        };
        if let Ok(Some(status)) = r.child.try_wait() {
            signal_group(pgid, Signal::KILL);
            let (err, _) = read_tail(&r.stderr);
            let err = err.trim();
            return if err.is_empty() {
                format!("it had already exited ({status})")
            } else {
                format!("it had already exited ({status}): {err}")
            };
        }
        signal_group(pgid, Signal::TERM);
        match tokio::time::timeout(self.cfg.stop_timeout, r.child.wait()).await {
            Ok(Ok(status)) => {
                // Stragglers the leader left in its group.
                signal_group(pgid, Signal::KILL);
                format!("exited on SIGTERM ({status})")
            }
            _ => {
                let how = kill_now(r).await;
                format!("no exit within {:?} of SIGTERM; {how}", self.cfg.stop_timeout)
            }
        }
    }
}

/// SIGKILL to the group and reap the leader.
async fn kill_now(mut r: Running) -> String {
    if let Some(pgid) = r.pgid {
        signal_group(pgid, Signal::KILL);
    }
    match tokio::time::timeout(Duration::from_secs(5), r.child.wait()).await {
        Ok(Ok(status)) => format!("killed ({status})"),
        Ok(Err(e)) => format!("killed; waiting for it: {e}"),
        Err(_) => "killed; still not reaped after 5s".to_string(),
    }
}

impl Drop for ProcessActuator {
    fn drop(&mut self) {
        for r in self.procs.get_mut().values() {
            if let Some(pgid) = r.pgid {
                signal_group(pgid, Signal::KILL);
            }
        }
    }
}

/// `addr:port`, with brackets for an IPv6 address.
fn join_host_port(addr: &str, port: u16) -> String {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => format!("[{a}]:{port}"),
        _ => format!("{addr}:{port}"),
    }
}

/// A port free on `addr` now (bound with port 0, then released).
async fn free_port(addr: &str) -> std::io::Result<u16> {
    let l = tokio::net::TcpListener::bind(join_host_port(addr, 0)).await?;
    Ok(l.local_addr()?.port())
}

/// One health probe of `endpoint`, within `within`.
async fn check(health: &HealthCheck, endpoint: &str, within: Duration) -> Result<(), String> {
    let probe = async {
        let mut s = TcpStream::connect(endpoint).await.map_err(|e| format!("connect {endpoint}: {e}"))?;
        let HealthCheck::Http { path } = health else {
            return Ok(());
        };
        let request = format!("GET {path} HTTP/1.0\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.map_err(|e| format!("GET {path}: {e}"))?;
        let mut buf = Vec::with_capacity(128);
        let mut chunk = [0u8; 128];
        while !buf.contains(&b'\n') && buf.len() < 1024 {
            let n = s.read(&mut chunk).await.map_err(|e| format!("GET {path}: {e}"))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.lines().next().unwrap_or_default();
        let code: u16 =
            line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("GET {path}: no HTTP status in {line:?}"))?;
        if (200..400).contains(&code) { Ok(()) } else { Err(format!("GET {path} answered {code}")) }
    };
    match tokio::time::timeout(within, probe).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer from {endpoint} within {within:?}")),
    }
}

#[async_trait]
impl Actuator for ProcessActuator {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let out = self.apply_inner(req).await;
        crate::log_answer("process", req, &out, &req.shadow.host);
        out
    }

    async fn sync_state(&self, shadow: &Shadow, _resource: Option<&Resource>) -> Result<ShadowState, String> {
        let endpoint = {
            let mut procs = self.procs.lock().await;
            match live(&mut procs, &shadow.id) {
                Some(r) => r.endpoint.clone(),
                None => return Ok(ShadowState::Failed),
            }
        };
        Ok(match check(&self.cfg.health, &endpoint, PROBE_TIMEOUT).await {
            Ok(()) => ShadowState::Ready,
            Err(_) => ShadowState::Syncing,
        })
    }
}
