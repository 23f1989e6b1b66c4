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
//! # Traffic statistics
//! [`HaproxyClient::server_stats`] reads each server's counters from `show stat <be> 4
//! -1` (sessions, requests, HTTP responses by status class, connection and response
//! errors, retries and redispatches, average queue/connect/response/total times over the
//! last 1024 requests) as [`ServerStats`], and [`HaproxyClient::backend_stats`] the
//! backend's own row. The CSV is read by the header's column names, never by position:
//! the column set differs between HAProxy versions.
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
    /// A `show stat` answer that is not the CSV it should be: no `# pxname,svname,...`
    /// header line, a column missing from the header, a row with another number of fields
    /// than the header, or a counter that is not a number.
    #[error("haproxy runtime API {socket}: `{command}`: malformed answer at line {line}: {detail}")]
    MalformedStat {
        /// The API address.
        socket: String,
        /// The command sent.
        command: String,
        /// The line of the answer, from 1 (the header is line 1).
        line: usize,
        /// The row, `pxname/svname`, when the fault is in a row.
        row: Option<String>,
        /// The column, when the fault is about one.
        field: Option<&'static str>,
        /// What was wrong, naming the row and the field.
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

/// One row of `show stat`: a server's counters, or its backend's own (`server` is
/// `BACKEND`). Counters count from HAProxy's start (or the last `clear counters`); the
/// `*_ms` times are averages over the last 1024 requests. A counter HAProxy leaves empty
/// (the HTTP ones of a TCP server) is 0; an empty time or weight is `None`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerStats {
    /// The proxy, i.e. the backend (`pxname`).
    pub proxy: String,
    /// The server (`svname`): `BACKEND` for the backend's own row.
    pub server: String,
    /// Sessions (connections) handled (`stot`).
    pub sessions_total: u64,
    /// Requests handled: `req_tot` where the row has it (an HTTP server or backend; HAProxy
    /// 2.6 has it for both); else, for a row with HTTP responses, the sum of the `hrsp_*`
    /// counters; else (TCP) `stot`, one session being one unit of work.
    pub requests_total: u64,
    /// HTTP responses with a 1xx status (`hrsp_1xx`).
    pub hrsp_1xx: u64,
    /// HTTP responses with a 2xx status (`hrsp_2xx`).
    pub hrsp_2xx: u64,
    /// HTTP responses with a 3xx status (`hrsp_3xx`).
    pub hrsp_3xx: u64,
    /// HTTP responses with a 4xx status (`hrsp_4xx`).
    pub hrsp_4xx: u64,
    /// HTTP responses with a 5xx status (`hrsp_5xx`).
    pub hrsp_5xx: u64,
    /// HTTP responses with another status (`hrsp_other`).
    pub hrsp_other: u64,
    /// Failed connection attempts to the server (`econ`).
    pub econ: u64,
    /// Response errors: the server closed or broke the exchange (`eresp`).
    pub eresp: u64,
    /// Connection retries (`wretr`).
    pub wretr: u64,
    /// Requests redispatched to another server (`wredis`).
    pub wredis: u64,
    /// Average time in the queue, ms (`qtime`).
    pub qtime_ms: Option<u64>,
    /// Average time to connect to the server, ms (`ctime`).
    pub ctime_ms: Option<u64>,
    /// Average time to the server's response, ms (`rtime`; 0 in TCP mode).
    pub rtime_ms: Option<u64>,
    /// Average total session time, ms (`ttime`).
    pub ttime_ms: Option<u64>,
    /// Effective weight (`weight`; a backend's is the sum of its active servers').
    pub weight: Option<u64>,
    /// The status as HAProxy words it (`status`): `UP`, `DOWN`, `MAINT`, `DRAIN`, `no
    /// check`, `UP 1/3`, ...
    pub status: String,
    /// Sessions open now (`scur`).
    pub scur: u64,
}

/// The columns [`ServerStats`] reads that every `show stat` header must have (`req_tot`,
/// also read, is optional).
const STAT_COLUMNS: [&str; 20] = [
    "pxname",
    "svname",
    "scur",
    "stot",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
];

/// `show stat` type mask: the backend's own row.
const STAT_BACKEND: u8 = 2;
/// `show stat` type mask: the servers' rows.
const STAT_SERVERS: u8 = 4;

/// The `hrsp_*` columns.
const HRSP_COLUMNS: [&str; 6] = ["hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"];

/// What is wrong with a `show stat` answer (see [`HaproxyError::MalformedStat`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatFault {
    line: usize,
    row: Option<String>,
    field: Option<&'static str>,
    detail: String,
}

/// The first 80 characters of `line`, for an error message.
fn excerpt(line: &str) -> String {
    let mut s: String = line.chars().take(80).collect();
    if s.len() < line.len() {
        s.push_str("...");
    }
    s
}

/// Splits one CSV line as HAProxy writes it: fields separated by `,`, a field containing
/// `,` or `"` enclosed in `"` with `"` doubled (a check's reason phrase can hold both).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() => quoted = true,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The header of a `show stat` answer: column names, by position.
struct StatHeader {
    line: usize,
    names: Vec<String>,
}

impl StatHeader {
    fn index(&self, name: &'static str) -> Result<usize, StatFault> {
        self.names.iter().position(|n| n == name).ok_or_else(|| StatFault {
            line: self.line,
            row: None,
            field: Some(name),
            detail: format!("the header has no `{name}` column"),
        })
    }
}

/// One data row of a `show stat` answer, its fields read by column name.
struct StatRow<'a> {
    header: &'a StatHeader,
    line: usize,
    id: String,
    fields: Vec<String>,
}

impl StatRow<'_> {
    fn text(&self, name: &'static str) -> Result<&str, StatFault> {
        let i = self.header.index(name)?;
        // The row has as many fields as the header has columns (checked on reading it).
        Ok(self.fields.get(i).map_or("", String::as_str))
    }

    /// A number, `None` when empty.
    fn number(&self, name: &'static str) -> Result<Option<u64>, StatFault> {
        let text = self.text(name)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| StatFault {
            line: self.line,
            row: Some(self.id.clone()),
            field: Some(name),
            detail: format!("row {}: field `{name}` is {:?}, not a non-negative integer", self.id, excerpt(text)),
        })
    }

    /// A counter, 0 when empty.
    fn counter(&self, name: &'static str) -> Result<u64, StatFault> {
        Ok(self.number(name)?.unwrap_or(0))
    }

    fn stats(&self) -> Result<ServerStats, StatFault> {
        let sessions_total = self.counter("stot")?;
        let mut hrsp = [0; HRSP_COLUMNS.len()];
        let mut http = false;
        for (n, name) in hrsp.iter_mut().zip(HRSP_COLUMNS) {
            let v = self.number(name)?;
            http |= v.is_some();
            *n = v.unwrap_or(0);
        }
        let req_tot = if self.header.names.iter().any(|n| n == "req_tot") { self.number("req_tot")? } else { None };
        let requests_total = match req_tot {
            Some(n) => n,
            None if http => hrsp.iter().sum(),
            None => sessions_total,
        };
        let [hrsp_1xx, hrsp_2xx, hrsp_3xx, hrsp_4xx, hrsp_5xx, hrsp_other] = hrsp;
        Ok(ServerStats {
            proxy: self.text("pxname")?.to_string(),
            server: self.text("svname")?.to_string(),
            sessions_total,
            requests_total,
            hrsp_1xx,
            hrsp_2xx,
            hrsp_3xx,
            hrsp_4xx,
            hrsp_5xx,
            hrsp_other,
            econ: self.counter("econ")?,
            eresp: self.counter("eresp")?,
            wretr: self.counter("wretr")?,
            wredis: self.counter("wredis")?,
            qtime_ms: self.number("qtime")?,
            ctime_ms: self.number("ctime")?,
            rtime_ms: self.number("rtime")?,
            ttime_ms: self.number("ttime")?,
            weight: self.number("weight")?,
            status: self.text("status")?.to_string(),
            scur: self.counter("scur")?,
        })
    }
}

/// Every row of a `show stat` answer (CSV whose first line is `# pxname,svname,...`),
/// fields read by the header's column names, never by position: the column set differs
/// between HAProxy versions.
fn parse_show_stat(answer: &str) -> Result<Vec<ServerStats>, StatFault> {
    let mut lines = answer.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r'))).filter(|(_, l)| !l.trim().is_empty());
    let Some((line, first)) = lines.next() else {
        return Err(StatFault {
            line: 1,
            row: None,
            field: None,
            detail: "empty answer: no `# pxname,svname,...` header line".to_string(),
        });
    };
    let Some(names) = first.strip_prefix('#') else {
        return Err(StatFault {
            line,
            row: None,
            field: None,
            detail: format!("no `# pxname,svname,...` header line: the answer starts with {:?}", excerpt(first)),
        });
    };
    let header = StatHeader { line, names: split_csv(names.trim_start()) };
    for name in STAT_COLUMNS {
        header.index(name)?;
    }
    let mut rows = Vec::new();
    for (line, text) in lines {
        let fields = split_csv(text);
        let field = |i: usize| fields.get(i).map_or("", String::as_str);
        let id = format!("{}/{}", field(0), field(1));
        if fields.len() != header.names.len() {
            return Err(StatFault {
                line,
                row: Some(id.clone()),
                field: None,
                detail: format!("row {id} has {} fields, the header {}: {:?}", fields.len(), header.names.len(), excerpt(text)),
            });
        }
        rows.push(StatRow { header: &header, line, id, fields }.stats()?);
    }
    Ok(rows)
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

    /// The counters of every server of `backend` (`show stat <backend> 4 -1`), in the
    /// configuration's order; not the backend's own row (see
    /// [`HaproxyClient::backend_stats`]).
    ///
    /// # Errors
    /// As [`HaproxyClient::command`]; [`HaproxyError::InvalidName`] for an unsafe name,
    /// [`HaproxyError::Refused`] for an unknown backend (`No such proxy.`),
    /// [`HaproxyError::MalformedStat`] naming the line, the row and the field for an answer
    /// that does not parse.
    pub async fn server_stats(&self, backend: &str) -> Result<Vec<ServerStats>, HaproxyError> {
        let (_, rows) = self.show_stat(backend, STAT_SERVERS).await?;
        Ok(rows.into_iter().filter(|r| r.server != "BACKEND" && r.server != "FRONTEND").collect())
    }

    /// The backend's own counters (its `BACKEND` row of `show stat <backend> 2 -1`): the
    /// sums over its servers, and the requests it answered itself (no server up).
    ///
    /// # Errors
    /// As [`HaproxyClient::server_stats`], and [`HaproxyError::Unexpected`] when `backend`
    /// has no `BACKEND` row (it names a frontend).
    pub async fn backend_stats(&self, backend: &str) -> Result<ServerStats, HaproxyError> {
        let (command, rows) = self.show_stat(backend, STAT_BACKEND).await?;
        rows.into_iter()
            .find(|r| r.server == "BACKEND")
            .ok_or_else(|| self.unexpected(&command, format!("no BACKEND row: {backend:?} is not a backend")))
    }

    /// `show stat <proxy> <types> -1`, the rows of `proxy`, and the command sent.
    async fn show_stat(&self, proxy: &str, types: u8) -> Result<(String, Vec<ServerStats>), HaproxyError> {
        valid_name("backend", proxy)?;
        let command = format!("show stat {proxy} {types} -1");
        let answer = self.command(&command).await?;
        // HAProxy's refusals are one sentence (`No such proxy.`, `Permission denied`).
        let first = answer.lines().next().unwrap_or("").trim();
        if !first.is_empty() && !first.starts_with('#') && !first.contains(',') {
            return Err(HaproxyError::Refused { socket: self.addr.to_string(), command, answer: first.to_string() });
        }
        match parse_show_stat(&answer) {
            Ok(rows) => Ok((command, rows.into_iter().filter(|r| r.proxy == proxy).collect())),
            Err(StatFault { line, row, field, detail }) => {
                Err(HaproxyError::MalformedStat { socket: self.addr.to_string(), command, line, row, field, detail })
            }
        }
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

    /// `show stat` from HAProxy 2.6.12 (Debian 12), recorded after 12 HTTP requests
    /// through `fe_http` to `be_app` (round robin over `ok` answering 200, `err` answering
    /// 500, `gone` with nothing listening, redispatched, and `spare`, disabled) and 3
    /// connections through `fe_tcp` to `be_tcp`; `be_chk/odd` fails its HTTP check with
    /// the reason phrase `Broken, "really"`, which HAProxy quotes.
    const SHOW_STAT_2_6: &str = r#"# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,
fe_http,FRONTEND,,,0,1,9984,12,984,1506,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,12,0,12,,,,0,6,0,0,6,0,,12,12,12,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,12,12,12,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,12,12,948,1758,0,0,
be_app,ok,0,0,0,1,,6,492,696,,0,,0,0,0,0,UP,1,1,0,1,1,2,0,,1,3,1,,6,,2,6,,6,L4OK,,0,0,6,0,0,0,0,,,,6,0,0,,,,,1,,,0,0,0,0,,,,Layer4 check passed,,2,3,4,,,,127.0.0.1:18481,,http,,,,,,,,0,6,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
be_app,err,0,0,0,1,,6,492,810,,0,,0,0,0,0,no check,1,1,0,,,2,,,1,3,2,,6,,2,6,,6,,,,0,0,0,0,6,0,,,,6,0,0,,,,,1,,,0,0,0,1,,,,,,,,,,,,127.0.0.1:18482,,http,,,,,,,,0,6,0,,,0,,0,0,0,1,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
be_app,gone,0,0,0,1,,6,0,0,,0,,0,0,0,6,no check,1,1,0,,,2,,,1,3,3,,6,,2,6,,6,,,,0,0,0,0,0,0,,,,0,0,0,,,,,1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:18489,,http,,,,,,,,0,6,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
be_app,spare,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,,,2,,,1,3,4,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:18481,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
be_app,BACKEND,0,0,0,1,999,12,984,1506,0,0,,0,0,0,6,UP,3,3,0,,0,2,0,,1,3,0,,18,,1,12,,12,,,,0,6,0,0,6,0,,,,12,0,0,0,0,0,0,1,,,0,0,0,1,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,18,0,0,0,,,0,0,0,1,0,,,,,3,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,18,18,1470,948,0,0,
be_chk,odd,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,2,2,,1,4,1,,0,,2,0,,0,L7STS,500,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,"Broken, ""really""",,0,0,0,0,,,,Layer7 wrong status,,2,3,0,,,,127.0.0.1:18491,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
be_chk,BACKEND,0,0,0,0,1,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,2,2,,1,4,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,10,10,1127,162,0,0,
fe_tcp,FRONTEND,,,0,1,9984,3,237,339,0,0,0,,,,,OPEN,,,,,,,,,1,5,0,,,,0,3,0,3,,,,,,,,,,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,tcp,,3,3,3,,0,0,0,,,,,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
be_tcp,one,0,0,0,1,,3,237,339,,0,,0,0,0,0,no check,1,1,0,,,2,,,1,6,1,,3,,2,3,,3,,,,,,,,,,,,,,0,0,,,,,1,,,0,0,0,1,,,,,,,,,,,,127.0.0.1:18481,,tcp,,,,,,,,0,3,0,,,0,,0,0,0,2,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
be_tcp,BACKEND,0,0,0,1,999,3,237,339,0,0,,0,0,0,0,UP,1,1,0,,0,2,0,,1,6,0,,3,,1,3,,3,,,,,,,,,,,,,,0,0,0,0,0,0,1,,,0,0,0,1,,,,,,,,,,,,,,tcp,roundrobin,,,,,,,0,3,0,,,,,0,0,0,2,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
"#;

    fn row<'a>(rows: &'a [ServerStats], proxy: &str, server: &str) -> &'a ServerStats {
        rows.iter().find(|r| r.proxy == proxy && r.server == server).unwrap()
    }

    /// Every line of `answer`, its fields transformed by `f` and joined again.
    fn rewrite(answer: &str, f: impl Fn(Vec<String>) -> Vec<String>) -> String {
        let quote = |v: String| if v.contains([',', '"']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v };
        let mut out = String::new();
        for line in answer.lines() {
            let (prefix, rest) = if let Some(h) = line.strip_prefix("# ") { ("# ", h) } else { ("", line) };
            let fields: Vec<String> = f(split_csv(rest)).into_iter().map(quote).collect();
            out.push_str(&format!("{prefix}{}\n", fields.join(",")));
        }
        out
    }

    #[test]
    fn parses_a_recorded_show_stat() {
        let rows = parse_show_stat(SHOW_STAT_2_6).unwrap();
        let ids: Vec<String> = rows.iter().map(|r| format!("{}/{}", r.proxy, r.server)).collect();
        assert_eq!(
            ids,
            [
                "fe_http/FRONTEND",
                "be_app/ok",
                "be_app/err",
                "be_app/gone",
                "be_app/spare",
                "be_app/BACKEND",
                "be_chk/odd",
                "be_chk/BACKEND",
                "fe_tcp/FRONTEND",
                "be_tcp/one",
                "be_tcp/BACKEND"
            ]
        );
        let zero = ServerStats {
            proxy: "be_app".to_string(),
            server: "ok".to_string(),
            sessions_total: 0,
            requests_total: 0,
            hrsp_1xx: 0,
            hrsp_2xx: 0,
            hrsp_3xx: 0,
            hrsp_4xx: 0,
            hrsp_5xx: 0,
            hrsp_other: 0,
            econ: 0,
            eresp: 0,
            wretr: 0,
            wredis: 0,
            qtime_ms: Some(0),
            ctime_ms: Some(0),
            rtime_ms: Some(0),
            ttime_ms: Some(0),
            weight: Some(1),
            status: "UP".to_string(),
            scur: 0,
        };
        assert_eq!(*row(&rows, "be_app", "ok"), ServerStats { sessions_total: 6, requests_total: 6, hrsp_2xx: 6, ..zero.clone() });
        assert_eq!(
            *row(&rows, "be_app", "err"),
            ServerStats {
                server: "err".to_string(),
                sessions_total: 6,
                requests_total: 6,
                hrsp_5xx: 6,
                ttime_ms: Some(1),
                status: "no check".to_string(),
                ..zero.clone()
            }
        );
        let gone = row(&rows, "be_app", "gone");
        assert_eq!((gone.sessions_total, gone.requests_total, gone.wredis, gone.econ), (6, 0, 6, 0), "sessions, not requests: {gone:?}");
        assert_eq!(row(&rows, "be_app", "spare").status, "MAINT");
        let backend = row(&rows, "be_app", "BACKEND");
        assert_eq!((backend.requests_total, backend.hrsp_2xx, backend.hrsp_5xx, backend.weight), (12, 6, 6, Some(3)));
        // The quoted reason phrase in `last_chk` does not shift the columns after it.
        let odd = row(&rows, "be_chk", "odd");
        assert_eq!((odd.status.as_str(), odd.weight, odd.ttime_ms), ("DOWN", Some(1), Some(0)));
        // A frontend leaves the server columns empty.
        let fe = row(&rows, "fe_http", "FRONTEND");
        assert_eq!((fe.status.as_str(), fe.weight, fe.qtime_ms, fe.rtime_ms, fe.econ), ("OPEN", None, None, None, 0));
        assert_eq!((fe.sessions_total, fe.requests_total, fe.hrsp_2xx, fe.hrsp_5xx), (12, 12, 6, 6));
        // A TCP server has no req_tot and no HTTP responses: its sessions are its requests.
        let tcp = row(&rows, "be_tcp", "one");
        assert_eq!((tcp.sessions_total, tcp.requests_total, tcp.hrsp_2xx, tcp.ttime_ms), (3, 3, 0, Some(1)), "{tcp:?}");
    }

    #[test]
    fn columns_are_found_by_name() {
        let rows = parse_show_stat(SHOW_STAT_2_6).unwrap();
        let reversed = rewrite(SHOW_STAT_2_6, |mut f| {
            f.reverse();
            f
        });
        assert_eq!(parse_show_stat(&reversed).unwrap(), rows, "columns in another order");

        // Without req_tot (servers of older versions): the sum of the HTTP responses, or the
        // sessions of a TCP server.
        let header = split_csv(SHOW_STAT_2_6.lines().next().unwrap().trim_start_matches("# "));
        let req_tot = header.iter().position(|n| n == "req_tot").unwrap();
        let without = rewrite(SHOW_STAT_2_6, |mut f| {
            f.remove(req_tot);
            f
        });
        let rows = parse_show_stat(&without).unwrap();
        assert_eq!(row(&rows, "be_app", "ok").requests_total, 6);
        assert_eq!(row(&rows, "be_app", "err").requests_total, 6);
        assert_eq!(row(&rows, "be_app", "gone").requests_total, 0);
        assert_eq!(row(&rows, "be_app", "BACKEND").requests_total, 12);
        assert_eq!(row(&rows, "be_tcp", "one").requests_total, 3);
    }

    #[test]
    fn splits_csv_as_haproxy_quotes_it() {
        assert_eq!(split_csv(r#"a,"Broken, ""really""",,x,"#), ["a", r#"Broken, "really""#, "", "x", ""]);
        assert_eq!(split_csv(""), [""]);
    }

    #[test]
    fn malformed_show_stat_names_the_line_row_and_field() {
        let fault = |answer: &str| parse_show_stat(answer).unwrap_err();
        let f = fault("");
        assert_eq!((f.line, f.row, f.field), (1, None, None));
        assert_eq!(f.detail, "empty answer: no `# pxname,svname,...` header line");

        let f = fault(SHOW_STAT_2_6.split_once('\n').unwrap().1);
        assert_eq!((f.line, f.row, f.field), (1, None, None));
        assert_eq!(
            f.detail,
            "no `# pxname,svname,...` header line: the answer starts with \
             \"fe_http,FRONTEND,,,0,1,9984,12,984,1506,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,12,0,1...\""
        );

        let f = fault(&SHOW_STAT_2_6.replacen(",stot,", ",stotal,", 1));
        assert_eq!((f.line, f.row, f.field), (1, None, Some("stot")));
        assert_eq!(f.detail, "the header has no `stot` column");

        // A field lost from be_app/err (line 4).
        let short = SHOW_STAT_2_6.replacen("be_app,err,0,0,0,1,,6,", "be_app,err,0,0,0,1,6,", 1);
        let f = fault(&short);
        assert_eq!((f.line, f.row.as_deref(), f.field), (4, Some("be_app/err"), None));
        assert!(f.detail.starts_with("row be_app/err has 128 fields, the header 129: \"be_app,err,0,0,0,1,6,"), "{}", f.detail);

        let f = fault(&SHOW_STAT_2_6.replacen("be_app,gone,0,0,0,1,,6,", "be_app,gone,0,0,0,1,,six,", 1));
        assert_eq!((f.line, f.row.as_deref(), f.field), (5, Some("be_app/gone"), Some("stot")));
        assert_eq!(f.detail, "row be_app/gone: field `stot` is \"six\", not a non-negative integer");
        let f = fault(&SHOW_STAT_2_6.replacen(",UP,1,1,0,1,1,", ",UP,-1,1,0,1,1,", 1));
        assert_eq!((f.line, f.row.as_deref(), f.field), (3, Some("be_app/ok"), Some("weight")));
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
