//! HAProxy: switches traffic to a shadow through HAProxy's runtime API.
//!
//! HAProxy fronts the primary with a backend that also declares a *shadow slot*: a
//! server disabled in the configuration until a shadow exists. This actuator points the
//! slot at the shadow when it is created and keeps it passive in *drain* (no traffic, but
//! health checks run, so HAProxy shows the shadow's health), and on promotion makes it
//! ready and puts the primary in maintenance. A shipped configuration template with such
//! backends (HTTP and Redis) is in `deploy/haproxy/`.
//!
//! # Resource conventions
//! The actuator reads the resource's `state`:
//! - `"haproxy": {"backend": "be_redis", "primary": "primary", "shadow": "shadow"}`: the
//!   backend, the name of the primary's server in it, and the name of the pre-declared
//!   shadow slot server. An optional `"weight"` (0 to 256, default 100) is the weight the
//!   slot gets when promoted. Names may use letters, digits, `_`, `-`, `.` and `:`.
//!   An optional `"armed": true` makes the slot a ready `backup` at creation instead of a
//!   draining one (the slot must be declared `backup`; creation checks it with `show stat`):
//!   HAProxy then sends traffic to the shadow by itself the moment it takes the primary
//!   out, which the shipped HTTP backend does at the first failed connection
//!   (`observe layer4 error-limit 1 on-error mark-down`), so not one request fails while
//!   harbinger's watchdog confirms the failover with the promotion.
//! - `"endpoint": "127.0.0.1:7001"`: where the primary serves (not used here; see
//!   [`crate::redis`]).
//!
//! The shadow's own address comes from [`Shadow::endpoint`], set by the actuator that
//! provisioned the copy (earlier in the chain, e.g. [`crate::redis::RedisActuator`]).
//!
//! # Actions
//! | action | runtime API commands | outcome |
//! |---|---|---|
//! | create | `show servers state <be>`, `set server <be>/<shadow> addr <ip> port <port>`, `set server <be>/<shadow> state drain` | `applied`; `already_applied` when the slot already points there, draining; `skipped` when the shadow has no endpoint |
//! | promote | `show servers state <be>`, (`set server <be>/<shadow> addr ...` if it points elsewhere), `set weight <be>/<shadow> <w>`, `set server <be>/<shadow> state ready`, then once the slot is UP `set server <be>/<primary> state maint` | `applied` with the time the switch took; `already_applied` when the slot is UP and the primary in maintenance |
//! | retire, expire | `set server <be>/<shadow> state maint` | `applied` |
//!
//! Promotion waits (polling `show servers state`, bounded by the timeout) until the slot
//! is UP *and its last health check passed* before it takes the primary out, so a shadow
//! that never comes up leaves traffic where it was: the outcome is `failed` and the slot
//! goes back to drain. (The slot drains rather than sits in maintenance because
//! HAProxy counts a server leaving maintenance as up before its first check.) A Redis
//! slot checked with `expect string role:master` comes up only once the replica has been
//! promoted, so run the redis actuator first.
//!
//! # Protocol
//! [`HaproxyClient`] speaks the runtime API in its non-interactive mode: one connection
//! per command (unix socket or TCP), the command and a newline written, the answer read
//! until HAProxy closes. Every command is bounded by the client's timeout (connect, write
//! and read together), and every error names the command and the socket. Needs
//! `stats socket <path> level admin` for the `set` commands.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use harbinger_core::shadow::Shadow;
use harbinger_core::{JournalStatus, Resource};
use harbinger_engine::{Actuator, ActuatorOutcome, ActuatorRequest};
use harbinger_plan::ActionKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where HAProxy's runtime API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAddress {
    /// A unix socket (`stats socket /run/haproxy/admin.sock`).
    Unix(PathBuf),
    /// A TCP address, `host:port` (`stats socket ipv4@127.0.0.1:9999`).
    Tcp(String),
}

impl FromStr for ApiAddress {
    type Err = std::convert::Infallible;

    /// `unix:<path>` or a path starting with `/` or `.` is a unix socket; `tcp:<host:port>`
    /// or anything else is a TCP address.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if let Some(path) = s.strip_prefix("unix:") {
            ApiAddress::Unix(PathBuf::from(path))
        } else if let Some(addr) = s.strip_prefix("tcp:") {
            ApiAddress::Tcp(addr.to_string())
        } else if s.starts_with('/') || s.starts_with('.') {
            ApiAddress::Unix(PathBuf::from(s))
        } else {
            ApiAddress::Tcp(s.to_string())
        })
    }
}

impl fmt::Display for ApiAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiAddress::Unix(path) => write!(f, "unix:{}", path.display()),
            ApiAddress::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

/// What went wrong talking to the runtime API. Every variant names the socket and the
/// command.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// Connecting, writing or reading failed.
    #[error("haproxy runtime API {socket}: `{command}`: {source}")]
    Io {
        /// The API address.
        socket: String,
        /// The command sent.
        command: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No complete answer within the timeout.
    #[error("haproxy runtime API {socket}: `{command}`: no answer within {timeout:?}")]
    Timeout {
        /// The API address.
        socket: String,
        /// The command sent.
        command: String,
        /// The bound.
        timeout: Duration,
    },
    /// HAProxy refused the command (`No such backend.`, `No such server.`, `Can't find
    /// backend.`, `Permission denied`, ...).
    #[error("haproxy runtime API {socket}: `{command}` refused: {answer}")]
    Refused {
        /// The API address.
        socket: String,
        /// The command sent.
        command: String,
        /// HAProxy's answer, first line.
        answer: String,
    },
    /// The answer could not be understood, or did not contain what was asked for.
    #[error("haproxy runtime API {socket}: `{command}`: {detail}")]
    Unexpected {
        /// The API address.
        socket: String,
        /// The command sent.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// A backend or server name that would not be safe in a command.
    #[error("invalid haproxy {what} name {name:?}: use letters, digits, '_', '-', '.' and ':'")]
    InvalidName {
        /// `backend` or `server`.
        what: &'static str,
        /// The name.
        name: String,
    },
}

/// A server's operational state (`srv_op_state` in `show servers state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpState {
    /// Down (checks failed, or in maintenance).
    Stopped,
    /// Coming up (slowstart).
    Starting,
    /// Up.
    Running,
    /// Going down.
    Stopping,
}

/// The administrative state to set with `set server <be>/<srv> state ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// Takes traffic (when its checks pass).
    Ready,
    /// Takes no new traffic, keeps its connections; checks go on.
    Drain,
    /// Maintenance: no traffic, no checks.
    Maint,
}

impl AdminState {
    fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// Forced maintenance (`srv_admin_state` bit): `set server ... state maint`.
pub const ADMIN_FORCED_MAINT: u32 = 0x01;
/// Any maintenance: forced, inherited from a tracked server, or DNS resolution failure.
pub const ADMIN_MAINT_MASK: u32 = 0x23;
/// Any drain: forced or inherited.
pub const ADMIN_DRAIN_MASK: u32 = 0x18;

/// Health checks are configured and enabled (`srv_check_state` bit).
pub const CHECK_ENABLED: u32 = 0x04;
/// Health checks are paused, as in maintenance (`srv_check_state` bit).
pub const CHECK_PAUSED: u32 = 0x08;

/// One server of a backend, from `show servers state <backend>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// Backend name.
    pub backend: String,
    /// Server name.
    pub server: String,
    /// Its address (IP).
    pub addr: String,
    /// Its port.
    pub port: u16,
    /// Operational state.
    pub op_state: OpState,
    /// Administrative flags (`srv_admin_state`): see [`ADMIN_MAINT_MASK`] and
    /// [`ADMIN_DRAIN_MASK`]; `0x04` (maintenance from the configuration) is informative.
    pub admin_flags: u32,
    /// User weight (`srv_uweight`).
    pub weight: u32,
    /// Result of the last health check (`srv_check_result`): 0 unknown (none yet), 1
    /// neutral, 2 failed, 3 passed, 4 passed conditionally.
    pub check_result: u32,
    /// Health check flags (`srv_check_state`): see [`CHECK_ENABLED`] and
    /// [`CHECK_PAUSED`].
    pub check_flags: u32,
}

impl ServerState {
    /// In maintenance (any cause but the configuration flag alone).
    pub fn in_maint(&self) -> bool {
        self.admin_flags & ADMIN_MAINT_MASK != 0
    }

    /// Draining (no new traffic).
    pub fn draining(&self) -> bool {
        self.admin_flags & ADMIN_DRAIN_MASK != 0
    }

    /// Up and taking traffic: running, neither in maintenance nor draining.
    pub fn is_up(&self) -> bool {
        self.op_state == OpState::Running && !self.in_maint() && !self.draining()
    }

    /// Health checks run on it (enabled, not paused).
    pub fn checked(&self) -> bool {
        self.check_flags & CHECK_ENABLED != 0 && self.check_flags & CHECK_PAUSED == 0
    }

    /// Its last health check passed, or it has none. HAProxy counts a server that leaves
    /// maintenance as up before its first check; this tells a real pass from that.
    pub fn check_passed(&self) -> bool {
        !self.checked() || matches!(self.check_result, 3 | 4)
    }

    /// The status as `show stat` words it: `MAINT`, `DRAIN`, `UP`, `DOWN`, `STARTING` or
    /// `STOPPING`.
    pub fn status(&self) -> &'static str {
        if self.in_maint() {
            "MAINT"
        } else if self.draining() {
            "DRAIN"
        } else {
            match self.op_state {
                OpState::Running => "UP",
                OpState::Stopped => "DOWN",
                OpState::Starting => "STARTING",
                OpState::Stopping => "STOPPING",
            }
        }
    }

    /// `addr:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} at {} {} (weight {})", self.backend, self.server, self.address(), self.status(), self.weight)
    }
}

/// A client for HAProxy's runtime API: one connection per command, each bounded by
/// `timeout`.
#[derive(Debug, Clone)]
pub struct HaproxyClient {
    addr: ApiAddress,
    timeout: Duration,
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

impl HaproxyClient {
    /// A client of the API at `addr`; every command (connect, write, read) is bounded by
    /// `timeout`.
    pub fn new(addr: ApiAddress, timeout: Duration) -> Self {
        HaproxyClient { addr, timeout }
    }

    /// The API address.
    pub fn address(&self) -> &ApiAddress {
        &self.addr
    }

    /// Sends one command and returns HAProxy's answer as it is, without the trailing blank
    /// line. An answer that reports an error is *not* an error here (see
    /// [`HaproxyClient::set`]).
    ///
    /// # Errors
    /// [`HaproxyError::Io`] when the socket cannot be reached or the exchange breaks,
    /// [`HaproxyError::Timeout`] when it takes longer than the timeout, and
    /// [`HaproxyError::Unexpected`] for a command containing a newline or `;` (which would
    /// make it several commands).
    pub async fn command(&self, command: &str) -> Result<String, HaproxyError> {
        if command.contains(['\n', '\r', ';']) {
            return Err(self.unexpected(command, "a command must be one line without ';'".to_string()));
        }
        let exchange = async {
            let mut conn: Box<dyn Conn> = match &self.addr {
                ApiAddress::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
                ApiAddress::Tcp(addr) => Box::new(tokio::net::TcpStream::connect(addr.as_str()).await?),
            };
            conn.write_all(format!("{command}\n").as_bytes()).await?;
            conn.flush().await?;
            let mut answer = Vec::new();
            conn.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(HaproxyError::Timeout { socket: self.addr.to_string(), command: command.to_string(), timeout: self.timeout }),
            Ok(Err(source)) => Err(HaproxyError::Io { socket: self.addr.to_string(), command: command.to_string(), source }),
            Ok(Ok(answer)) => Ok(String::from_utf8_lossy(&answer).trim_end_matches(['\n', '\r']).to_string()),
        }
    }

    /// Sends a command that answers nothing on success (`set server ... state`, `set
    /// weight`) or a change report (`set server ... addr`: `... changed from ...`, `no need
    /// to change ...`).
    ///
    /// # Errors
    /// As [`HaproxyClient::command`], and [`HaproxyError::Refused`] with HAProxy's answer
    /// for any other answer.
    pub async fn set(&self, command: &str) -> Result<(), HaproxyError> {
        let answer = self.command(command).await?;
        let first = answer.lines().next().unwrap_or("").trim();
        if first.is_empty() || first.contains("changed from") || first.starts_with("no need to change") {
            Ok(())
        } else {
            Err(HaproxyError::Refused { socket: self.addr.to_string(), command: command.to_string(), answer: first.to_string() })
        }
    }

    /// Every server of `backend` (`show servers state <backend>`).
    ///
    /// # Errors
    /// As [`HaproxyClient::command`]; [`HaproxyError::Refused`] for an unknown backend
    /// (`Can't find backend.`), [`HaproxyError::Unexpected`] for an answer in another
    /// format than version 1.
    pub async fn servers_state(&self, backend: &str) -> Result<Vec<ServerState>, HaproxyError> {
        valid_name("backend", backend)?;
        let command = format!("show servers state {backend}");
        let answer = self.command(&command).await?;
        let mut lines = answer.lines();
        match lines.next().map(str::trim) {
            Some("1") => {}
            Some(other) => {
                return Err(HaproxyError::Refused { socket: self.addr.to_string(), command, answer: other.to_string() });
            }
            None => return Err(self.unexpected(&command, "empty answer".to_string())),
        }
        let mut servers = Vec::new();
        for line in lines {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            servers.push(parse_server_line(line).ok_or_else(|| self.unexpected(&command, format!("unreadable line {line:?}")))?);
        }
        Ok(servers.into_iter().filter(|s| s.backend == backend).collect())
    }

    /// One server of a backend.
    ///
    /// # Errors
    /// As [`HaproxyClient::servers_state`], and [`HaproxyError::Unexpected`] naming the
    /// server when the backend has no such server.
    pub async fn server_state(&self, backend: &str, server: &str) -> Result<ServerState, HaproxyError> {
        valid_name("server", server)?;
        let servers = self.servers_state(backend).await?;
        servers.into_iter().find(|s| s.server == server).ok_or_else(|| {
            self.unexpected(&format!("show servers state {backend}"), format!("no server {server:?} in backend {backend:?}"))
        })
    }

    /// Whether `server` is declared `backup` in `backend` (the `bck` column of
    /// `show stat <backend> 4 -1`).
    ///
    /// # Errors
    /// As [`HaproxyClient::command`]; [`HaproxyError::Unexpected`] when the answer has no
    /// `bck` column or no such server.
    pub async fn is_backup(&self, backend: &str, server: &str) -> Result<bool, HaproxyError> {
        valid_name("backend", backend)?;
        valid_name("server", server)?;
        let command = format!("show stat {backend} 4 -1");
        let answer = self.command(&command).await?;
        let mut lines = answer.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").trim_start_matches("# ").split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(bck)) = (col("pxname"), col("svname"), col("bck")) else {
            return Err(
                self.unexpected(&command, format!("no pxname/svname/bck columns in {:?}", answer.chars().take(120).collect::<String>()))
            );
        };
        for line in lines {
            let f: Vec<&str> = line.split(',').collect();
            if f.get(px) == Some(&backend) && f.get(sv) == Some(&server) {
                return Ok(f.get(bck) == Some(&"1"));
            }
        }
        Err(self.unexpected(&command, format!("no server {server:?} in backend {backend:?}")))
    }

    /// `set server <backend>/<server> addr <ip> port <port>`.
    ///
    /// # Errors
    /// As [`HaproxyClient::set`]; [`HaproxyError::InvalidName`] for an unsafe name or
    /// address.
    pub async fn set_server_addr(&self, backend: &str, server: &str, ip: &str, port: u16) -> Result<(), HaproxyError> {
        valid_name("backend", backend)?;
        valid_name("server", server)?;
        valid_name("address", ip)?;
        self.set(&format!("set server {backend}/{server} addr {ip} port {port}")).await
    }

    /// `set server <backend>/<server> state ready|drain|maint`.
    ///
    /// # Errors
    /// As [`HaproxyClient::set`]; [`HaproxyError::InvalidName`] for an unsafe name.
    pub async fn set_server_state(&self, backend: &str, server: &str, state: AdminState) -> Result<(), HaproxyError> {
        valid_name("backend", backend)?;
        valid_name("server", server)?;
        self.set(&format!("set server {backend}/{server} state {}", state.as_str())).await
    }

    /// `set weight <backend>/<server> <weight>`.
    ///
    /// # Errors
    /// As [`HaproxyClient::set`]; [`HaproxyError::InvalidName`] for an unsafe name.
    pub async fn set_weight(&self, backend: &str, server: &str, weight: u32) -> Result<(), HaproxyError> {
        valid_name("backend", backend)?;
        valid_name("server", server)?;
        self.set(&format!("set weight {backend}/{server} {weight}")).await
    }

    fn unexpected(&self, command: &str, detail: String) -> HaproxyError {
        HaproxyError::Unexpected { socket: self.addr.to_string(), command: command.to_string(), detail }
    }
}

fn valid_name(what: &'static str, name: &str) -> Result<(), HaproxyError> {
    let ok = !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok { Ok(()) } else { Err(HaproxyError::InvalidName { what, name: name.to_string() }) }
}

/// One data line of `show servers state` (format 1): `be_id be_name srv_id srv_name
/// srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight ... srv_port ...`.
fn parse_server_line(line: &str) -> Option<ServerState> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 19 {
        return None;
    }
    let op_state = match f[5] {
        "0" => OpState::Stopped,
        "1" => OpState::Starting,
        "2" => OpState::Running,
        "3" => OpState::Stopping,
        _ => return None,
    };
    Some(ServerState {
        backend: f[1].to_string(),
        server: f[3].to_string(),
        addr: f[4].to_string(),
        op_state,
        admin_flags: f[6].parse().ok()?,
        weight: f[7].parse().ok()?,
        check_result: f[11].parse().ok()?,
        check_flags: f[13].parse().ok()?,
        port: f[18].parse().ok()?,
    })
}

/// Where a resource sits in HAProxy: `state.haproxy` of the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyTarget {
    /// The backend (`be_redis`).
    pub backend: String,
    /// The primary's server in it.
    pub primary: String,
    /// The pre-declared shadow slot server in it.
    pub shadow: String,
    /// The weight the slot gets when promoted (default 100).
    pub weight: u32,
    /// `armed`: the slot is a `backup` server made ready when the shadow is created, so
    /// HAProxy itself sends traffic to it the moment it takes the primary out (e.g. with
    /// `observe layer4 on-error mark-down`), before harbinger's promotion confirms the
    /// switch. Default false: the slot drains until promotion.
    pub armed: bool,
}

/// Weight of a promoted slot when the resource does not say.
pub const DEFAULT_WEIGHT: u32 = 100;

impl HaproxyTarget {
    /// Reads `state.haproxy` of `resource`: `Ok(None)` when it has none.
    ///
    /// # Errors
    /// A message naming the resource and the field when `haproxy` is not an object with
    /// string `backend`, `primary` and `shadow` names (safe for a command) and an optional
    /// `weight` from 0 to 256.
    pub fn from_resource(resource: &Resource) -> Result<Option<Self>, String> {
        let Some(h) = resource.state.get("haproxy") else { return Ok(None) };
        let field = |key: &str| -> Result<String, String> {
            let v = h
                .get(key)
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("resource {}: state.haproxy.{key} must be a string (the {key} name)", resource.id))?;
            valid_name(if key == "backend" { "backend" } else { "server" }, v)
                .map_err(|e| format!("resource {}: state.haproxy.{key}: {e}", resource.id))?;
            Ok(v.to_string())
        };
        let weight = match h.get("weight") {
            None => DEFAULT_WEIGHT,
            Some(w) => w
                .as_u64()
                .filter(|w| *w <= 256)
                .and_then(|w| u32::try_from(w).ok())
                .ok_or_else(|| format!("resource {}: state.haproxy.weight must be an integer from 0 to 256", resource.id))?,
        };
        let armed = match h.get("armed") {
            None => false,
            Some(a) => a.as_bool().ok_or_else(|| format!("resource {}: state.haproxy.armed must be true or false", resource.id))?,
        };
        Ok(Some(HaproxyTarget { backend: field("backend")?, primary: field("primary")?, shadow: field("shadow")?, weight, armed }))
    }
}

/// Splits `ip:port` or `[v6]:port`.
fn split_endpoint(endpoint: &str) -> Option<(String, u16)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

/// Switches traffic to shadows through HAProxy's runtime API (see the module docs).
#[derive(Debug, Clone)]
pub struct HaproxyActuator {
    /// The runtime API (`stats socket ... level admin`).
    pub api: ApiAddress,
    /// Bound on each command, and on the wait for a promoted slot to come up.
    pub timeout: Duration,
}

/// How often promotion re-reads the servers' state while waiting.
const POLL: Duration = Duration::from_millis(50);

impl HaproxyActuator {
    /// An actuator for the API at `api`, each command bounded by `timeout`.
    pub fn new(api: ApiAddress, timeout: Duration) -> Self {
        HaproxyActuator { api, timeout }
    }

    /// A client of the same API with the same timeout.
    pub fn client(&self) -> HaproxyClient {
        HaproxyClient::new(self.api.clone(), self.timeout)
    }

    async fn create(&self, client: &HaproxyClient, t: &HaproxyTarget, shadow: &Shadow) -> Result<ActuatorOutcome, HaproxyError> {
        let Some(endpoint) = shadow.endpoint.as_deref() else {
            return Ok(ActuatorOutcome::new(
                JournalStatus::Skipped,
                format!("shadow {} has no endpoint yet: nothing to point {}/{} at", shadow.id, t.backend, t.shadow),
            ));
        };
        let Some((ip, port)) = split_endpoint(endpoint) else {
            return Ok(ActuatorOutcome::failed(format!("shadow {} endpoint {endpoint:?} is not ip:port", shadow.id)));
        };
        let before = client.server_state(&t.backend, &t.shadow).await?;
        if t.armed && !client.is_backup(&t.backend, &t.shadow).await? {
            return Ok(ActuatorOutcome::failed(format!(
                "slot {}/{} is armed but not declared `backup`: ready, it would take a share of live traffic; \
                 add `backup` to its server line or drop state.haproxy.armed {}",
                t.backend,
                t.shadow,
                crate::layers::NOT_RETRYABLE
            )));
        }
        let (state, how) = if t.armed {
            (AdminState::Ready, "armed: a ready backup, traffic only once the primary is out")
        } else {
            (AdminState::Drain, "draining: checked, no traffic")
        };
        let in_state = if t.armed { !before.draining() } else { before.draining() };
        if before.addr == ip && before.port == port && in_state && !before.in_maint() {
            return Ok(ActuatorOutcome::new(
                JournalStatus::AlreadyApplied,
                format!("slot {}/{} already points at {endpoint}, {}", t.backend, t.shadow, state.as_str()),
            ));
        }
        client.set_server_addr(&t.backend, &t.shadow, &ip, port).await?;
        client.set_server_state(&t.backend, &t.shadow, state).await?;
        Ok(ActuatorOutcome::new(
            JournalStatus::Applied,
            format!("slot {}/{} points at {endpoint} (was {}), {how}", t.backend, t.shadow, before.address()),
        ))
    }

    async fn promote(&self, client: &HaproxyClient, t: &HaproxyTarget, shadow: &Shadow) -> Result<ActuatorOutcome, HaproxyError> {
        let wanted = match shadow.endpoint.as_deref() {
            Some(e) => Some(split_endpoint(e).ok_or_else(|| HaproxyError::InvalidName { what: "endpoint", name: e.to_string() })?),
            None => None,
        };
        let (slot, primary) = self.pair(client, t).await?;
        let at_endpoint = wanted.as_ref().is_none_or(|(ip, port)| slot.addr == *ip && slot.port == *port);
        if slot.is_up() && slot.check_passed() && primary.in_maint() && at_endpoint {
            return Ok(ActuatorOutcome::new(
                JournalStatus::AlreadyApplied,
                format!("traffic already on {slot}; {}/{} in maintenance", t.backend, t.primary),
            ));
        }
        let start = Instant::now();
        if let Some((ip, port)) = wanted.as_ref().filter(|_| !at_endpoint) {
            client.set_server_addr(&t.backend, &t.shadow, ip, *port).await?;
        }
        client.set_weight(&t.backend, &t.shadow, t.weight).await?;
        client.set_server_state(&t.backend, &t.shadow, AdminState::Ready).await?;
        // Take the primary out only once the slot passes its checks, so a shadow that
        // never comes up leaves traffic where it was.
        let deadline = start + self.timeout;
        let slot = loop {
            let s = client.server_state(&t.backend, &t.shadow).await?;
            if s.is_up() && s.check_passed() {
                break s;
            }
            if Instant::now() >= deadline {
                let undo = client.set_server_state(&t.backend, &t.shadow, AdminState::Drain).await;
                let undo = match undo {
                    Ok(()) => "slot back to drain".to_string(),
                    Err(e) => format!("putting the slot back to drain failed: {e}"),
                };
                return Ok(ActuatorOutcome::failed(format!(
                    "{s} did not come up within {:?}; traffic left on {}/{}; {undo}",
                    self.timeout, t.backend, t.primary
                )));
            }
            tokio::time::sleep(POLL).await;
        };
        client.set_server_state(&t.backend, &t.primary, AdminState::Maint).await?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let (slot_now, primary_now) = self.pair(client, t).await?;
            if slot_now.is_up() && slot_now.check_passed() && primary_now.in_maint() {
                break;
            }
            if Instant::now() >= deadline {
                return Ok(ActuatorOutcome::failed(format!("switch not confirmed within {:?}: {slot_now}; {primary_now}", self.timeout)));
            }
            tokio::time::sleep(POLL).await;
        }
        let took = start.elapsed();
        Ok(ActuatorOutcome::new(
            JournalStatus::Applied,
            format!(
                "traffic switched from {}/{} ({}) to {slot} in {} ms; primary in maintenance",
                t.backend,
                t.primary,
                primary.status(),
                took.as_millis()
            ),
        ))
    }

    async fn park(&self, client: &HaproxyClient, t: &HaproxyTarget) -> Result<ActuatorOutcome, HaproxyError> {
        client.set_server_state(&t.backend, &t.shadow, AdminState::Maint).await?;
        Ok(ActuatorOutcome::new(JournalStatus::Applied, format!("slot {}/{} in maintenance", t.backend, t.shadow)))
    }

    /// The slot and the primary, from one `show servers state`.
    async fn pair(&self, client: &HaproxyClient, t: &HaproxyTarget) -> Result<(ServerState, ServerState), HaproxyError> {
        let servers = client.servers_state(&t.backend).await?;
        let find = |name: &str| {
            servers.iter().find(|s| s.server == name).cloned().ok_or_else(|| HaproxyError::Unexpected {
                socket: self.api.to_string(),
                command: format!("show servers state {}", t.backend),
                detail: format!("no server {name:?} in backend {:?}", t.backend),
            })
        };
        Ok((find(&t.shadow)?, find(&t.primary)?))
    }

    async fn act(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let Some(resource) = req.resource.as_ref() else {
            return ActuatorOutcome::new(JournalStatus::Skipped, format!("resource {} is not in the inventory", req.shadow.resource));
        };
        let target = match HaproxyTarget::from_resource(resource) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return ActuatorOutcome::new(
                    JournalStatus::Skipped,
                    format!("resource {} has no state.haproxy (backend, primary, shadow)", resource.id),
                );
            }
            Err(e) => return ActuatorOutcome::failed(e),
        };
        let client = self.client();
        let result = match &req.action {
            ActionKind::CreateShadow { .. } => self.create(&client, &target, &req.shadow).await,
            ActionKind::PromoteShadow { .. } => self.promote(&client, &target, &req.shadow).await,
            ActionKind::RetireShadow { .. } | ActionKind::ExpireShadow { .. } => self.park(&client, &target).await,
            ActionKind::AddCause { .. } | ActionKind::DropCause { .. } => {
                Ok(ActuatorOutcome::new(JournalStatus::Skipped, "causes are bookkeeping: nothing to do in haproxy"))
            }
        };
        result.unwrap_or_else(|e| ActuatorOutcome::failed(e.to_string()))
    }
}

#[async_trait]
impl Actuator for HaproxyActuator {
    fn name(&self) -> &'static str {
        "haproxy"
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let outcome = self.act(req).await;
        crate::log_answer("haproxy", req, &outcome, &self.api);
        outcome
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_server_line() {
        let s = parse_server_line("3 be_http 2 shadow 127.0.0.1 0 5 1 1 1 1 0 0 14 0 0 0 - 18082 - 0 0 - - 0").unwrap();
        assert_eq!(s.server, "shadow");
        assert_eq!(s.port, 18082);
        assert_eq!(s.op_state, OpState::Stopped);
        assert!(s.in_maint());
        assert_eq!(s.status(), "MAINT");
        let s = parse_server_line("3 be_http 2 shadow 127.0.0.1 2 4 100 1 0 8 2 0 6 0 0 0 - 18082 - 0 0 - - 0").unwrap();
        assert!(s.is_up(), "CMAINT alone (from `disabled` in the config) is not maintenance");
        assert_eq!(s.weight, 100);
    }

    #[test]
    fn addresses_and_endpoints() {
        assert_eq!("/run/h.sock".parse::<ApiAddress>().unwrap(), ApiAddress::Unix("/run/h.sock".into()));
        assert_eq!("unix:h.sock".parse::<ApiAddress>().unwrap().to_string(), "unix:h.sock");
        assert_eq!("127.0.0.1:9999".parse::<ApiAddress>().unwrap(), ApiAddress::Tcp("127.0.0.1:9999".into()));
        assert_eq!(split_endpoint("[::1]:7001"), Some(("::1".to_string(), 7001)));
        assert_eq!(split_endpoint("127.0.0.1:x"), None);
        assert!(valid_name("backend", "be;shutdown").is_err());
    }
}
