//! Redis: shadows as Redis replicas, promoted with `REPLICAOF NO ONE`.
//!
//! [`RedisActuator`] starts a `redis-server` replica of the primary for each shadow,
//! reports when it has caught up ([`Actuator::sync_state`]), promotes it when the primary
//! fails and stops it when the shadow is retired or expires. It speaks RESP with
//! [`RedisClient`], a minimal client of its own (a few commands, no pooling: not worth a
//! dependency).
//!
//! # Resource conventions
//! The actuator reads the resource's `state`:
//! - `"endpoint": "127.0.0.1:7001"`: where the primary serves (`host:port`). The replica
//!   follows it (`--replicaof`); `sync_state` reads its `master_repl_offset`.
//! - `"haproxy": {...}`: not used here; see [`crate::haproxy`].
//!
//! # Actions
//! | action | what | outcome |
//! |---|---|---|
//! | create | starts `redis-server --port P --bind IP --replicaof <primary> --dir <data_dir>/<shadow> --save "" --appendonly no --daemonize no` in its own process group, `IP` the shadow host's address from `host_addrs` (default `127.0.0.1`), `P` a free port; waits (bounded) until it answers `PING` | `applied` with `endpoint` `IP:P` and `reached` = `syncing`; `already_applied` with the same endpoint when it runs already; `skipped` without a resource or its `endpoint` |
//! | promote | `ROLE`, `REPLICAOF NO ONE`, `ROLE` again | `applied` once it answers `master`; `already_applied` when it was master already |
//! | retire, expire | `SHUTDOWN NOSAVE`, then `SIGKILL` to its process group once it has exited or after the timeout; its directory removed | `applied`; `already_applied` when no replica of this actuator runs for the shadow |
//!
//! `sync_state` asks the primary for `master_repl_offset` *first*, then the replica for
//! `INFO replication`: `ready` when `master_link_status:up`, `master_sync_in_progress:0`
//! and the primary's offset minus the replica's `slave_repl_offset` is at most
//! `max_lag_bytes` (reading the primary first makes writes in between count in the
//! replica's favour); when the primary cannot be asked, the replica's own view (link up,
//! sync done) decides. `syncing` otherwise; `failed` when the replica process this
//! actuator started has exited, or the shadow answers as a master (it is no copy any
//! more); `Err` when it cannot be reached.
//!
//! # Processes
//! Each replica runs in its own process group with its log in its directory
//! (`redis.log`). Its pid and endpoint are written to `replica.json` there, so that after
//! a restart of harbinger (same `data_dir`) a create with the same shadow finds the
//! replica still running (its `INFO server` `process_id` matches) and answers
//! `already_applied` instead of starting a second one; retire and promote find it the
//! same way. Retire only shuts down a server whose pid it can confirm. Dropping the
//! actuator kills the process group of every replica it started or found.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_core::{HostId, JournalStatus, Resource, ShadowId};
use harbinger_engine::{Actuator, ActuatorOutcome, ActuatorRequest};
use harbinger_plan::ActionKind;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...` (returned by [`RedisClient::command`] as [`RedisError::Server`]).
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$...`: bytes, or `None` for the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*...`: replies, or `None` for the null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// A status or bulk string as text (lossy UTF-8), an integer in decimal; `None` for
    /// nulls, errors and arrays.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Integer(i) => Some(i.to_string()),
            _ => None,
        }
    }
}

/// What went wrong talking to a Redis server. Every variant names the address.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Connecting, writing or reading failed.
    #[error("redis {addr}: {command}: {source}")]
    Io {
        /// The server's address.
        addr: String,
        /// The command (or `connect`).
        command: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No answer within the timeout.
    #[error("redis {addr}: {command}: no answer within {timeout:?}")]
    Timeout {
        /// The server's address.
        addr: String,
        /// The command (or `connect`).
        command: String,
        /// The bound.
        timeout: Duration,
    },
    /// The server answered an error.
    #[error("redis {addr}: {command}: {message}")]
    Server {
        /// The server's address.
        addr: String,
        /// The command.
        command: String,
        /// The error message (`ERR ...`).
        message: String,
    },
    /// An answer that is not RESP, or not what the command answers.
    #[error("redis {addr}: {command}: {detail}")]
    Protocol {
        /// The server's address.
        addr: String,
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
    },
}

/// Longest bulk string or array accepted from a server (INFO and ROLE answers are small;
/// this only stops a hostile length from allocating).
const MAX_LEN: i64 = 64 << 20;

/// A minimal RESP2 client over one TCP connection; every command (write and read) bounded
/// by the timeout.
#[derive(Debug)]
pub struct RedisClient {
    addr: String,
    timeout: Duration,
    conn: BufReader<TcpStream>,
}

impl RedisClient {
    /// Connects to `addr` (`host:port`) within `timeout`.
    ///
    /// # Errors
    /// [`RedisError::Io`] or [`RedisError::Timeout`] naming the address.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self, RedisError> {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => Err(RedisError::Timeout { addr: addr.to_string(), command: "connect".to_string(), timeout }),
            Ok(Err(source)) => Err(RedisError::Io { addr: addr.to_string(), command: "connect".to_string(), source }),
            Ok(Ok(stream)) => {
                // Best effort: small commands, answered one by one.
                let _unused = stream.set_nodelay(true);
                Ok(RedisClient { addr: addr.to_string(), timeout, conn: BufReader::new(stream) })
            }
        }
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `args` as one command and reads its reply. After an error other than
    /// [`RedisError::Server`] the connection may be mid-reply: drop the client.
    ///
    /// # Errors
    /// [`RedisError::Server`] for an error reply, [`RedisError::Io`] when the connection
    /// breaks (`SHUTDOWN` closes it without a reply), [`RedisError::Timeout`] past the
    /// timeout, [`RedisError::Protocol`] for an answer that is not RESP.
    pub async fn command(&mut self, args: &[&str]) -> Result<Reply, RedisError> {
        let name = args.first().copied().unwrap_or("").to_ascii_uppercase();
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            frame.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            frame.extend_from_slice(a.as_bytes());
            frame.extend_from_slice(b"\r\n");
        }
        let exchange = async {
            self.conn.get_mut().write_all(&frame).await.map_err(ReadError::Io)?;
            read_value(&mut self.conn).await
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(RedisError::Timeout { addr: self.addr.clone(), command: name, timeout: self.timeout }),
            Ok(Err(ReadError::Io(source))) => Err(RedisError::Io { addr: self.addr.clone(), command: name, source }),
            Ok(Err(ReadError::Protocol(detail))) => Err(RedisError::Protocol { addr: self.addr.clone(), command: name, detail }),
            Ok(Ok(Reply::Error(message))) => Err(RedisError::Server { addr: self.addr.clone(), command: name, message }),
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    /// `INFO <section>` as `field -> value`.
    ///
    /// # Errors
    /// As [`RedisClient::command`]; [`RedisError::Protocol`] when the answer is not text.
    pub async fn info(&mut self, section: &str) -> Result<BTreeMap<String, String>, RedisError> {
        let reply = self.command(&["INFO", section]).await?;
        let text = reply.as_text().ok_or_else(|| self.protocol("INFO", format!("expected text, got {reply:?}")))?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect())
    }

    /// The first element of `ROLE`: `master`, `slave` or `sentinel`.
    ///
    /// # Errors
    /// As [`RedisClient::command`]; [`RedisError::Protocol`] for another answer shape.
    pub async fn role(&mut self) -> Result<String, RedisError> {
        let reply = self.command(&["ROLE"]).await?;
        match &reply {
            Reply::Array(Some(items)) => items.first().and_then(Reply::as_text),
            _ => None,
        }
        .ok_or_else(|| self.protocol("ROLE", format!("expected an array, got {reply:?}")))
    }

    fn protocol(&self, command: &str, detail: String) -> RedisError {
        RedisError::Protocol { addr: self.addr.clone(), command: command.to_string(), detail }
    }
}

type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<Reply, ReadError>> + Send + 'a>>;

enum ReadError {
    Io(std::io::Error),
    Protocol(String),
}

async fn read_value(conn: &mut BufReader<TcpStream>) -> Result<Reply, ReadError> {
    fn boxed(conn: &mut BufReader<TcpStream>) -> ReadFuture<'_> {
        Box::pin(read_value(conn))
    }
    let mut line = Vec::new();
    let n = conn.read_until(b'\n', &mut line).await.map_err(ReadError::Io)?;
    if n == 0 {
        return Err(ReadError::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")));
    }
    if line.len() < 3 || !line.ends_with(b"\r\n") {
        return Err(ReadError::Protocol(format!("bad line {:?}", String::from_utf8_lossy(&line))));
    }
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let len = || -> Result<i64, ReadError> {
        body.parse::<i64>().ok().filter(|n| *n >= -1 && *n <= MAX_LEN).ok_or_else(|| ReadError::Protocol(format!("bad length {body:?}")))
    };
    match line[0] {
        b'+' => Ok(Reply::Status(body)),
        b'-' => Ok(Reply::Error(body)),
        b':' => body.parse().map(Reply::Integer).map_err(|_| ReadError::Protocol(format!("bad integer {body:?}"))),
        b'$' => {
            let n = len()?;
            let Ok(n) = usize::try_from(n) else { return Ok(Reply::Bulk(None)) };
            let mut buf = vec![0; n + 2];
            conn.read_exact(&mut buf).await.map_err(ReadError::Io)?;
            buf.truncate(n);
            Ok(Reply::Bulk(Some(buf)))
        }
        b'*' => {
            let n = len()?;
            let Ok(n) = usize::try_from(n) else { return Ok(Reply::Array(None)) };
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(boxed(conn).await?);
            }
            Ok(Reply::Array(Some(items)))
        }
        other => Err(ReadError::Protocol(format!("unknown reply type {:?}", other as char))),
    }
}

/// `INFO <section>` on a fresh connection to `addr`.
async fn info_at(addr: &str, section: &str, timeout: Duration) -> Result<BTreeMap<String, String>, RedisError> {
    RedisClient::connect(addr, timeout).await?.info(section).await
}

/// How the actuator runs replicas.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// The `redis-server` program (default `/usr/bin/redis-server`, Debian package
    /// `redis-server`).
    pub redis_server: PathBuf,
    /// Address each host's replicas bind and are reached at; hosts not listed use
    /// `127.0.0.1`. The replica runs on this machine, so the address must be local (any of
    /// `127.0.0.0/8` serves for a lab where each host is a loopback address).
    pub host_addrs: BTreeMap<HostId, IpAddr>,
    /// Parent of the replicas' directories (one per shadow).
    pub data_dir: PathBuf,
    /// Largest replication lag, in bytes, still counted as in sync (default 0).
    pub max_lag_bytes: u64,
    /// Bound on each Redis command, on a replica's start-up and on its shutdown.
    pub timeout: Duration,
    /// A fixed port for replicas (each on its own host, so one port serves); `None` (the
    /// default): a port free on this machine at creation.
    pub port: Option<u16>,
    /// A command prefix `redis-server` runs under, each argument a template where `{host}`
    /// is the shadow's host id: e.g. `["ip", "netns", "exec", "lab-{host}"]` to start the
    /// replica inside that host's network namespace. Empty (the default): run directly.
    pub wrapper: Vec<String>,
    /// Extra `redis-server` arguments, after the actuator's own: e.g. `--masterauth` for a
    /// primary with a password, or `--protected-mode no` for replicas reached from other
    /// hosts without one.
    pub args: Vec<String>,
}

/// Default `redis-server` program.
pub const DEFAULT_REDIS_SERVER: &str = "/usr/bin/redis-server";

impl RedisConfig {
    /// Defaults: `/usr/bin/redis-server`, every host on `127.0.0.1`, lag 0, timeout 5 s,
    /// replicas under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        RedisConfig {
            redis_server: PathBuf::from(DEFAULT_REDIS_SERVER),
            host_addrs: BTreeMap::new(),
            data_dir: data_dir.into(),
            max_lag_bytes: 0,
            timeout: Duration::from_secs(5),
            port: None,
            wrapper: Vec::new(),
            args: Vec::new(),
        }
    }

    /// The address replicas on `host` bind.
    pub fn host_addr(&self, host: &HostId) -> IpAddr {
        self.host_addrs.get(host).copied().unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }
}

/// A replica this actuator started or found.
#[derive(Debug)]
struct Replica {
    /// The process when this actuator started it (`None` when found after a restart).
    child: Option<tokio::process::Child>,
    /// Its pid, which is also its process group.
    pid: u32,
    endpoint: String,
    dir: PathBuf,
}

impl Replica {
    /// Whether the process is known to have exited (only knowable for our own child).
    fn exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| !matches!(c.try_wait(), Ok(None)))
    }

    fn kill_group(&self) {
        if let Some(pid) = i32::try_from(self.pid).ok().and_then(rustix::process::Pid::from_raw) {
            // Already gone is fine.
            let _unused = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Shadows as Redis replicas (see the module docs).
#[derive(Debug)]
pub struct RedisActuator {
    config: RedisConfig,
    replicas: Mutex<HashMap<ShadowId, Replica>>,
}

/// `replica.json` in a replica's directory.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StateFile {
    pid: u32,
    endpoint: String,
}

const STATE_FILE: &str = "replica.json";

impl RedisActuator {
    /// An actuator with `config`.
    pub fn new(config: RedisConfig) -> Self {
        RedisActuator { config, replicas: Mutex::new(HashMap::new()) }
    }

    /// Its configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Lets every replica it runs go on after this actuator is dropped (a promoted copy
    /// is a live store now); answers their shadow ids and pids. They are no longer
    /// tracked here; their `replica.json` stays, so another actuator on the same
    /// `data_dir` finds them.
    pub async fn detach_all(&self) -> Vec<(ShadowId, u32)> {
        let all: Vec<(ShadowId, Replica)> = self.replicas.lock().await.drain().collect();
        let mut out = Vec::new();
        for (id, mut r) in all {
            out.push((id, r.pid));
            if let Some(child) = r.child.take() {
                // Dropping the handle would kill it (`kill_on_drop`).
                std::mem::forget(child);
            }
        }
        out
    }

    /// The endpoint of the replica this actuator runs for `shadow`, if any.
    pub async fn endpoint_of(&self, shadow: &ShadowId) -> Option<String> {
        self.replicas.lock().await.get(shadow).map(|r| r.endpoint.clone())
    }

    /// The directory of `shadow`'s replica: its id made safe for a file name, plus a hash
    /// of the id so that two ids never share one.
    pub fn replica_dir(&self, shadow: &ShadowId) -> PathBuf {
        let id = shadow.as_str();
        let safe: String =
            id.chars().take(64).map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
        // FNV-1a: stable across runs and platforms.
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        self.config.data_dir.join(format!("{safe}-{hash:016x}"))
    }

    /// Whether a replica for `shadow` is known: in memory, or found through its state
    /// file (its pid confirmed by `INFO server`) and then remembered.
    async fn find(&self, replicas: &mut HashMap<ShadowId, Replica>, shadow: &ShadowId) -> bool {
        if replicas.contains_key(shadow) {
            return true;
        }
        let dir = self.replica_dir(shadow);
        let Ok(text) = tokio::fs::read_to_string(dir.join(STATE_FILE)).await else { return false };
        let Ok(state) = serde_json::from_str::<StateFile>(&text) else { return false };
        let Ok(info) = info_at(&state.endpoint, "server", self.config.timeout).await else { return false };
        if info.get("process_id").and_then(|p| p.parse::<u32>().ok()) != Some(state.pid) {
            return false;
        }
        tracing::debug!(target: "harbinger::actuator", shadow = %shadow, pid = state.pid, endpoint = %state.endpoint, "found a running redis replica");
        replicas.insert(shadow.clone(), Replica { child: None, pid: state.pid, endpoint: state.endpoint, dir });
        true
    }

    async fn create(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let shadow = &req.shadow;
        let Some(resource) = req.resource.as_ref() else {
            return ActuatorOutcome::new(JournalStatus::Skipped, format!("resource {} is not in the inventory", shadow.resource));
        };
        let primary = match primary_endpoint(resource) {
            Ok(Some(p)) => p,
            Ok(None) => {
                return ActuatorOutcome::new(
                    JournalStatus::Skipped,
                    format!("resource {} has no state.endpoint: no primary to replicate", resource.id),
                );
            }
            Err(e) => return ActuatorOutcome::failed(e),
        };
        let mut replicas = self.replicas.lock().await;
        if self.find(&mut replicas, &shadow.id).await {
            if let Some(r) = replicas.get_mut(&shadow.id)
                && !r.exited()
                && ping(&r.endpoint, self.config.timeout).await
            {
                let mut out = ActuatorOutcome::new(
                    JournalStatus::AlreadyApplied,
                    format!("replica of {} for shadow {} already runs at {} (pid {})", primary.0, shadow.id, r.endpoint, r.pid),
                );
                out.endpoint = Some(r.endpoint.clone());
                out.reached = Some(ShadowState::Syncing);
                return out;
            }
            // Known but gone: forget it and start afresh.
            if let Some(r) = replicas.remove(&shadow.id) {
                r.kill_group();
            }
        }
        let ip = self.config.host_addr(&shadow.host);
        let dir = self.replica_dir(&shadow.id);
        match self.start(&shadow.id, &shadow.host, ip, &primary, &dir).await {
            Ok(replica) => {
                let mut out = ActuatorOutcome::new(
                    JournalStatus::Applied,
                    format!(
                        "replica of {}:{} for shadow {} started at {} (pid {}, dir {})",
                        primary.0,
                        primary.1,
                        shadow.id,
                        replica.endpoint,
                        replica.pid,
                        dir.display()
                    ),
                );
                out.endpoint = Some(replica.endpoint.clone());
                out.reached = Some(ShadowState::Syncing);
                replicas.insert(shadow.id.clone(), replica);
                out
            }
            Err(e) => ActuatorOutcome::failed(e),
        }
    }

    /// Starts a replica and waits until it answers PING; tries a few ports in case one
    /// was taken between choosing it and binding it.
    async fn start(&self, shadow: &ShadowId, host: &HostId, ip: IpAddr, primary: &(String, u16), dir: &Path) -> Result<Replica, String> {
        tokio::fs::create_dir_all(dir).await.map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = match self.config.port {
                Some(p) => p,
                None => free_port(ip).map_err(|e| format!("no free port on {ip}: {e}"))?,
            };
            let endpoint = if ip.is_ipv6() { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
            let log = dir.join("redis.log");
            let mut cmd = match self.config.wrapper.split_first() {
                None => tokio::process::Command::new(&self.config.redis_server),
                Some((program, args)) => {
                    let host = host.as_str();
                    let mut c = tokio::process::Command::new(program.replace("{host}", host));
                    c.args(args.iter().map(|a| a.replace("{host}", host))).arg(&self.config.redis_server);
                    c
                }
            };
            cmd.arg("--port")
                .arg(port.to_string())
                .arg("--bind")
                .arg(ip.to_string())
                .arg("--replicaof")
                .arg(&primary.0)
                .arg(primary.1.to_string())
                .arg("--dir")
                .arg(dir)
                .arg("--save")
                .arg("")
                .arg("--appendonly")
                .arg("no")
                .arg("--daemonize")
                .arg("no")
                .arg("--logfile")
                .arg(&log)
                .args(&self.config.args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .process_group(0)
                .kill_on_drop(true);
            let mut child = cmd.spawn().map_err(|e| {
                format!(
                    "cannot start {}: {e} (install the Debian package redis-server, or set redis_server)",
                    self.config.redis_server.display()
                )
            })?;
            let pid = child.id().ok_or_else(|| "redis-server exited at once".to_string())?;
            let deadline = Instant::now() + self.config.timeout;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("redis-server for shadow {shadow} on {endpoint} exited ({status}); see {}", log.display());
                    break;
                }
                if ping(&endpoint, Duration::from_millis(200)).await {
                    let state = StateFile { pid, endpoint: endpoint.clone() };
                    let json = serde_json::to_string(&state).map_err(|e| format!("state file: {e}"))?;
                    let replica = Replica { child: Some(child), pid, endpoint, dir: dir.to_path_buf() };
                    if let Err(e) = tokio::fs::write(dir.join(STATE_FILE), json).await {
                        replica.kill_group();
                        return Err(format!("cannot write {}: {e}", dir.join(STATE_FILE).display()));
                    }
                    return Ok(replica);
                }
                if Instant::now() >= deadline {
                    let replica = Replica { child: Some(child), pid, endpoint: endpoint.clone(), dir: dir.to_path_buf() };
                    replica.kill_group();
                    return Err(format!(
                        "redis-server for shadow {shadow} on {endpoint} did not answer PING within {:?}; killed; see {}",
                        self.config.timeout,
                        log.display()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Err(last)
    }

    /// The endpoint to talk to for `shadow`: its replica's, else the shadow's recorded one.
    async fn endpoint(&self, shadow: &Shadow) -> Result<String, String> {
        let mut replicas = self.replicas.lock().await;
        if self.find(&mut replicas, &shadow.id).await
            && let Some(r) = replicas.get(&shadow.id)
        {
            return Ok(r.endpoint.clone());
        }
        shadow.endpoint.clone().ok_or_else(|| format!("no replica runs for shadow {} and it has no endpoint", shadow.id))
    }

    async fn promote(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let shadow = &req.shadow;
        let endpoint = match self.endpoint(shadow).await {
            Ok(e) => e,
            Err(e) => return ActuatorOutcome::failed(e),
        };
        let timeout = self.config.timeout;
        let result = async {
            let start = Instant::now();
            let mut c = RedisClient::connect(&endpoint, timeout).await?;
            if c.role().await? == "master" {
                return Ok(ActuatorOutcome::new(
                    JournalStatus::AlreadyApplied,
                    format!("shadow {} at {endpoint} is master already", shadow.id),
                ));
            }
            let info = c.info("replication").await?;
            let offset = info.get("master_repl_offset").cloned().unwrap_or_else(|| "?".to_string());
            let link = info.get("master_link_status").cloned().unwrap_or_else(|| "?".to_string());
            c.command(&["REPLICAOF", "NO", "ONE"]).await?;
            let role = c.role().await?;
            if role != "master" {
                return Ok(ActuatorOutcome::failed(format!(
                    "shadow {} at {endpoint} still answers ROLE {role} after REPLICAOF NO ONE",
                    shadow.id
                )));
            }
            Ok::<_, RedisError>(ActuatorOutcome::new(
                JournalStatus::Applied,
                format!(
                    "shadow {} at {endpoint} promoted to master in {} ms (replication offset {offset}, link to the old primary {link})",
                    shadow.id,
                    start.elapsed().as_millis()
                ),
            ))
        }
        .await;
        result.unwrap_or_else(|e| ActuatorOutcome::failed(e.to_string()))
    }

    async fn stop(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let shadow = &req.shadow;
        let mut replicas = self.replicas.lock().await;
        if !self.find(&mut replicas, &shadow.id).await {
            return ActuatorOutcome::new(JournalStatus::AlreadyApplied, format!("no replica of ours runs for shadow {}", shadow.id));
        }
        let Some(mut r) = replicas.remove(&shadow.id) else {
            return ActuatorOutcome::new(JournalStatus::AlreadyApplied, format!("no replica of ours runs for shadow {}", shadow.id));
        };
        let timeout = self.config.timeout;
        let deadline = Instant::now() + timeout;
        if !r.exited() {
            // SHUTDOWN closes the connection without a reply when it works.
            if let Ok(mut c) = RedisClient::connect(&r.endpoint, timeout).await {
                let _unused = c.command(&["SHUTDOWN", "NOSAVE"]).await;
            }
        }
        let clean = loop {
            let gone = match r.child.as_mut() {
                Some(child) => !matches!(child.try_wait(), Ok(None)),
                None => !ping(&r.endpoint, Duration::from_millis(200)).await,
            };
            if gone {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Whatever it forked goes too.
        r.kill_group();
        if let Some(child) = r.child.as_mut() {
            let _unused = tokio::time::timeout(timeout, child.wait()).await;
        }
        let _unused = tokio::fs::remove_dir_all(&r.dir).await;
        let how = if clean { "shut down (SHUTDOWN NOSAVE)" } else { "killed (no exit within the timeout)" };
        ActuatorOutcome::new(JournalStatus::Applied, format!("replica of shadow {} at {} (pid {}) {how}", shadow.id, r.endpoint, r.pid))
    }

    async fn replica_state(&self, shadow: &Shadow, resource: Option<&Resource>) -> Result<ShadowState, String> {
        let endpoint = {
            let mut replicas = self.replicas.lock().await;
            self.find(&mut replicas, &shadow.id).await;
            match replicas.get_mut(&shadow.id) {
                Some(r) => {
                    if r.exited() {
                        tracing::warn!(target: "harbinger::actuator", shadow = %shadow.id, endpoint = %r.endpoint, "redis replica process exited");
                        return Ok(ShadowState::Failed);
                    }
                    r.endpoint.clone()
                }
                None => {
                    shadow.endpoint.clone().ok_or_else(|| format!("no replica runs for shadow {} and it has no endpoint", shadow.id))?
                }
            }
        };
        let timeout = self.config.timeout;
        // The primary first: writes between the two reads then count for the replica.
        let primary_offset = match resource.map(primary_endpoint) {
            Some(Ok(Some((host, port)))) => {
                let addr = format!("{host}:{port}");
                info_at(&addr, "replication", timeout)
                    .await
                    .ok()
                    .and_then(|i| i.get("master_repl_offset").and_then(|o| o.parse::<u64>().ok()))
            }
            _ => None,
        };
        let info = info_at(&endpoint, "replication", timeout).await.map_err(|e| e.to_string())?;
        if info.get("role").map(String::as_str) == Some("master") {
            tracing::warn!(target: "harbinger::actuator", shadow = %shadow.id, %endpoint, "redis shadow answers as a master: no longer a copy");
            return Ok(ShadowState::Failed);
        }
        let link_up = info.get("master_link_status").map(String::as_str) == Some("up");
        let synced = info.get("master_sync_in_progress").map(String::as_str) == Some("0");
        if !(link_up && synced) {
            return Ok(ShadowState::Syncing);
        }
        let replica_offset = info.get("slave_repl_offset").and_then(|o| o.parse::<u64>().ok());
        match (primary_offset, replica_offset) {
            (Some(p), Some(r)) if p.saturating_sub(r) > self.config.max_lag_bytes => Ok(ShadowState::Syncing),
            _ => Ok(ShadowState::Ready),
        }
    }
}

impl Drop for RedisActuator {
    fn drop(&mut self) {
        for (_, r) in self.replicas.get_mut().drain() {
            r.kill_group();
            // The child handle kills and reaps the process itself (kill_on_drop).
        }
    }
}

/// `state.endpoint` of `resource` split into host and port: `Ok(None)` when absent.
fn primary_endpoint(resource: &Resource) -> Result<Option<(String, u16)>, String> {
    let Some(v) = resource.state.get("endpoint") else { return Ok(None) };
    let bad = || format!("resource {}: state.endpoint must be \"host:port\", got {v}", resource.id);
    let s = v.as_str().ok_or_else(bad)?;
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(Some((host.to_string(), port)))
}

/// A port free on `ip` now (bound and released; the caller retries if it is taken
/// before use).
fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// Whether a Redis server answers PING at `addr` within `timeout`.
async fn ping(addr: &str, timeout: Duration) -> bool {
    match RedisClient::connect(addr, timeout).await {
        Ok(mut c) => matches!(c.command(&["PING"]).await, Ok(Reply::Status(s)) if s == "PONG"),
        Err(_) => false,
    }
}

#[async_trait]
impl Actuator for RedisActuator {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let outcome = match &req.action {
            ActionKind::CreateShadow { .. } => self.create(req).await,
            ActionKind::PromoteShadow { .. } => self.promote(req).await,
            ActionKind::RetireShadow { .. } | ActionKind::ExpireShadow { .. } => self.stop(req).await,
            ActionKind::AddCause { .. } | ActionKind::DropCause { .. } => {
                ActuatorOutcome::new(JournalStatus::Skipped, "causes are bookkeeping: nothing to do in redis")
            }
        };
        crate::log_answer("redis", req, &outcome, &req.shadow.host);
        outcome
    }

    async fn sync_state(&self, shadow: &Shadow, resource: Option<&Resource>) -> Result<ShadowState, String> {
        self.replica_state(shadow, resource).await
    }
}
