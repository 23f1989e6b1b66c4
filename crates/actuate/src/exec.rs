//! The exec actuator: runs a command for every action, with the action as JSON on stdin,
//! and reads the outcome from its exit code.
//!
//! Start with [`ExecConfig`] and [`ExecActuator::new`]. The program is run directly (no
//! shell; write `program = "sh", args = ["-c", "..."]` for one), in its own process
//! group, with `args` rendered from a template (see [`ExecConfig::args`]).
//!
//! # stdin
//! One JSON object ([`RequestBody`], the same body the webhook actuator POSTs):
//!
//! ```json
//! {"key":"create:db-3@h042#1000","attempt":1,
//!  "action":{"type":"create_shadow","shadow":{...}},
//!  "shadow":{"id":"db-3@h042#1000","resource":"db-3","primary":"h017","host":"h042",...},
//!  "resource":{"id":"db-3","kind":"database","host":"h017",...}}
//! ```
//!
//! `action.type` is one of `create_shadow`, `retire_shadow` (with `state`: `retired` or
//! `failed`), `expire_shadow`, `promote_shadow`; `shadow` is the shadow as it is before
//! the action; `resource` is `null` when the inventory does not know it.
//!
//! # Exit codes
//! | exit | outcome | detail |
//! |------|---------|--------|
//! | 0 | `applied` | trimmed stdout, or "exit 0" |
//! | 3 | `already_applied` | trimmed stdout, or "exit 3: already applied" |
//! | 4 | `skipped` | trimmed stdout (the reason), or "exit 4: skipped" |
//! | other | `failed` | "`prog` exited with code N: " and stderr (stdout if stderr is empty) |
//! | killed by a signal | `failed` | "`prog` killed by signal N: …" |
//! | past the timeout | `failed` | "`prog` timed out after …, process group killed" |
//!
//! For a `create_shadow` answered 0 or 3, a last stdout line that is a JSON object
//! `{"endpoint":"10.0.0.5:6380","state":"syncing"}` (both fields optional; `state` is
//! `syncing` or `ready`) sets the outcome's endpoint and reached state ([`Report`]).
//! stdout and stderr are each kept to their last [`ExecConfig::output_limit`] bytes.
//!
//! The action must be idempotent by `key`: after a crash or a failure the same key comes
//! again (with a higher `attempt`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_core::{JournalStatus, Resource};
use harbinger_engine::{Actuator, ActuatorOutcome, ActuatorRequest};
use harbinger_plan::ActionKind;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// The JSON body of an action, written on the exec actuator's stdin and POSTed by the
/// webhook actuator.
#[derive(Debug, Serialize)]
pub struct RequestBody<'a> {
    /// Idempotency key: the same key means the same action.
    pub key: &'a str,
    /// 1 for the first attempt; more on retries and resumptions.
    pub attempt: u32,
    /// The action, tagged by `type` (`create_shadow`, `retire_shadow`, ...).
    pub action: &'a ActionKind,
    /// The shadow, as it is before the action.
    pub shadow: &'a Shadow,
    /// The resource it copies, or `null`.
    pub resource: Option<&'a Resource>,
}

impl<'a> RequestBody<'a> {
    /// The body of `req`.
    pub fn of(req: &'a ActuatorRequest) -> Self {
        RequestBody { key: &req.key, attempt: req.attempt, action: &req.action, shadow: &req.shadow, resource: req.resource.as_ref() }
    }

    /// As JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain data: serialising to memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What a creation may report back: where the copy serves and the state it reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Report {
    /// `host:port` where the copy serves.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `syncing` or `ready` (other states are ignored).
    #[serde(default)]
    pub state: Option<ShadowState>,
}

impl Report {
    /// The report in `text`: the whole of it, or else its last non-empty line, when that
    /// is a JSON object. `None` otherwise.
    pub fn parse(text: &str) -> Option<Report> {
        let whole = text.trim();
        if whole.starts_with('{')
            && let Ok(r) = serde_json::from_str::<Report>(whole)
        {
            return Some(r);
        }
        let last = whole.lines().map(str::trim).rfind(|l| !l.is_empty())?;
        if !last.starts_with('{') {
            return None;
        }
        serde_json::from_str(last).ok()
    }

    /// Sets `out`'s endpoint and reached state from the report (only `syncing` and `ready`
    /// count as reached states).
    pub fn apply_to(&self, out: &mut ActuatorOutcome) {
        if let Some(e) = self.endpoint.as_ref().filter(|e| !e.is_empty()) {
            out.endpoint = Some(e.clone());
        }
        if let Some(s) = self.state.filter(|s| matches!(s, ShadowState::Syncing | ShadowState::Ready)) {
            out.reached = Some(s);
        }
    }
}

/// The snake_case name of an action (`create_shadow`, ...), as in its JSON `type`.
pub fn action_name(action: &ActionKind) -> &'static str {
    match action {
        ActionKind::CreateShadow { .. } => "create_shadow",
        ActionKind::RetireShadow { .. } => "retire_shadow",
        ActionKind::ExpireShadow { .. } => "expire_shadow",
        ActionKind::PromoteShadow { .. } => "promote_shadow",
        ActionKind::AddCause { .. } => "add_cause",
        ActionKind::DropCause { .. } => "drop_cause",
    }
}

/// `template` with every `{name}` that `lookup` knows replaced by its value, in one pass
/// (values are not rendered again); unknown `{names}` are left as they are.
pub(crate) fn render(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (close, &after[..close])) {
            Some((close, name)) if !name.contains('{') => {
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The last bytes of a stream, and how many were dropped before them.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    buf: Vec<u8>,
    dropped: u64,
    limit: usize,
}

impl Tail {
    pub(crate) fn new(limit: usize) -> Self {
        Tail { buf: Vec::new(), dropped: 0, limit: limit.max(1) }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > 2 * self.limit {
            let cut = self.buf.len() - self.limit;
            self.buf.drain(..cut);
            self.dropped += cut as u64;
        }
    }

    /// The kept text (lossy UTF-8), marked with `[… N bytes dropped]` when cut.
    pub(crate) fn text(&self) -> String {
        let keep = self.buf.len().min(self.limit);
        let cut = self.buf.len() - keep;
        let dropped = self.dropped + cut as u64;
        let s = String::from_utf8_lossy(&self.buf[cut..]);
        if dropped > 0 { format!("[… {dropped} bytes dropped] {}", s.trim_start()) } else { s.into_owned() }
    }

    /// Raw kept bytes (for parsing).
    pub(crate) fn raw(&self) -> String {
        let keep = self.buf.len().min(self.limit);
        String::from_utf8_lossy(&self.buf[self.buf.len() - keep..]).into_owned()
    }
}

pub(crate) type SharedTail = Arc<Mutex<Tail>>;

pub(crate) fn read_tail(t: &SharedTail) -> (String, String) {
    let g = t.lock().unwrap_or_else(PoisonError::into_inner);
    (g.text(), g.raw())
}

/// Drains `r` into a shared tail until EOF or an error.
pub(crate) fn drain<R: AsyncRead + Unpin + Send + 'static>(mut r: R, tail: SharedTail) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut chunk = vec![0u8; 8192];
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => tail.lock().unwrap_or_else(PoisonError::into_inner).push(&chunk[..n]),
            }
        }
    })
}

/// Sends `signal` to the process group `pgid`; false when there is no such group.
pub(crate) fn signal_group(pgid: u32, signal: rustix::process::Signal) -> bool {
    let Some(pid) = i32::try_from(pgid).ok().and_then(rustix::process::Pid::from_raw) else {
        return false;
    };
    rustix::process::kill_process_group(pid, signal).is_ok()
}

/// SIGKILLs a process group when dropped, unless disarmed: a dropped `apply` (e.g. by a
/// [`Timeout`](crate::layers::Timeout) layer) leaves nothing running.
pub(crate) struct GroupGuard {
    pub(crate) pgid: Option<u32>,
}

impl GroupGuard {
    pub(crate) fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            signal_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for the readers until `within`, then stops them (a daemon the command left
/// behind may hold the pipe open); what they read so far stays in their tails.
pub(crate) async fn join_readers(readers: Vec<JoinHandle<()>>, within: Duration) {
    let aborts: Vec<_> = readers.iter().map(JoinHandle::abort_handle).collect();
    let all = async {
        for r in readers {
            let _done = r.await;
        }
    };
    if tokio::time::timeout(within, all).await.is_err() {
        for a in aborts {
            a.abort();
        }
    }
}

/// Configuration of an [`ExecActuator`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExecConfig {
    /// The program, found on `PATH` unless it contains a `/`.
    pub program: String,
    /// Arguments; each is a template where `{action}` (`create_shadow`, ...), `{key}`,
    /// `{attempt}`, `{shadow}` (its id), `{resource}`, `{host}` (the shadow's host),
    /// `{primary}` and `{endpoint}` (the shadow's, or empty) are replaced. Other `{...}`
    /// are left as they are.
    pub args: Vec<String>,
    /// Longest a run may take; then its process group is killed. Default 30 s.
    pub timeout: Duration,
    /// Extra environment variables (the rest is inherited).
    pub env: BTreeMap<String, String>,
    /// Bytes of stdout and of stderr kept (the last ones). Default 4 KiB.
    pub output_limit: usize,
}

impl ExecConfig {
    /// `program` with `args`, a 30 s timeout, no extra environment, 4 KiB of output.
    pub fn new(program: impl Into<String>, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ExecConfig {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(30),
            env: BTreeMap::new(),
            output_limit: 4096,
        }
    }

    /// With `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// With the environment variable `key=value`.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Keeping the last `bytes` of stdout and of stderr.
    #[must_use]
    pub fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }
}

/// Runs a command per action (see the module docs for stdin, arguments and exit codes).
#[derive(Debug, Clone)]
pub struct ExecActuator {
    cfg: ExecConfig,
}

/// How long to wait for stdout/stderr to close after the command exited.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

impl ExecActuator {
    /// An actuator running `cfg`.
    pub fn new(cfg: ExecConfig) -> Self {
        ExecActuator { cfg }
    }

    /// Its configuration.
    pub fn config(&self) -> &ExecConfig {
        &self.cfg
    }

    /// The arguments for `req`.
    pub fn args_for(&self, req: &ActuatorRequest) -> Vec<String> {
        let s = &req.shadow;
        let lookup = |name: &str| -> Option<String> {
            Some(match name {
                "action" => action_name(&req.action).to_string(),
                "key" => req.key.clone(),
                "attempt" => req.attempt.to_string(),
                "shadow" => s.id.to_string(),
                "resource" => s.resource.to_string(),
                "host" => s.host.to_string(),
                "primary" => s.primary.to_string(),
                "endpoint" => s.endpoint.clone().unwrap_or_default(),
                _ => return None,
            })
        };
        self.cfg.args.iter().map(|a| render(a, lookup)).collect()
    }

    async fn run(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let prog = &self.cfg.program;
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(self.args_for(req))
            .envs(&self.cfg.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return ActuatorOutcome::failed(format!("cannot run `{prog}`: {e}")),
        };
        let mut guard = GroupGuard { pgid: child.id() };
        let deadline = tokio::time::Instant::now() + self.cfg.timeout;

        if let Some(mut stdin) = child.stdin.take() {
            let body = RequestBody::of(req).to_json();
            // A command that does not read stdin must not block us: write on the side.
            tokio::spawn(async move {
                let _written = stdin.write_all(&body).await;
                let _closed = stdin.shutdown().await;
            });
        }
        let out_tail: SharedTail = Arc::new(Mutex::new(Tail::new(self.cfg.output_limit)));
        let err_tail: SharedTail = Arc::new(Mutex::new(Tail::new(self.cfg.output_limit)));
        let mut readers = Vec::new();
        if let Some(o) = child.stdout.take() {
            readers.push(drain(o, Arc::clone(&out_tail)));
        }
        if let Some(e) = child.stderr.take() {
            readers.push(drain(e, Arc::clone(&err_tail)));
        }

        let waited = tokio::time::timeout_at(deadline, child.wait()).await;
        let status = match waited {
            Ok(Ok(status)) => {
                // Leave whatever the command started on purpose running.
                guard.pgid = None;
                join_readers(readers, DRAIN_GRACE).await;
                status
            }
            Ok(Err(e)) => {
                guard.kill();
                return ActuatorOutcome::failed(format!("waiting for `{prog}`: {e}"));
            }
            Err(_elapsed) => {
                guard.kill();
                let _reaped = tokio::time::timeout(DRAIN_GRACE, child.wait()).await;
                join_readers(readers, DRAIN_GRACE).await;
                let (stderr, _) = read_tail(&err_tail);
                let mut detail = format!("`{prog}` timed out after {:?}, process group killed", self.cfg.timeout);
                let stderr = stderr.trim();
                if !stderr.is_empty() {
                    let _w = write!(detail, "; stderr: {stderr}");
                }
                return ActuatorOutcome::failed(detail);
            }
        };
        let (stdout, stdout_raw) = read_tail(&out_tail);
        let (stderr, _) = read_tail(&err_tail);
        outcome(prog, status, stdout.trim(), &stdout_raw, stderr.trim(), &req.action)
    }
}

fn outcome(prog: &str, status: ExitStatus, stdout: &str, stdout_raw: &str, stderr: &str, action: &ActionKind) -> ActuatorOutcome {
    use std::os::unix::process::ExitStatusExt as _;
    let or = |s: &str, dflt: &str| if s.is_empty() { dflt.to_string() } else { s.to_string() };
    let mut out = match status.code() {
        Some(0) => ActuatorOutcome::new(JournalStatus::Applied, or(stdout, "exit 0")),
        Some(3) => ActuatorOutcome::new(JournalStatus::AlreadyApplied, or(stdout, "exit 3: already applied")),
        Some(4) => ActuatorOutcome::new(JournalStatus::Skipped, or(stdout, "exit 4: skipped")),
        Some(code) => {
            let why = if stderr.is_empty() { stdout } else { stderr };
            let sep = if why.is_empty() { "" } else { ": " };
            return ActuatorOutcome::failed(format!("`{prog}` exited with code {code}{sep}{why}"));
        }
        None => {
            let sig = status.signal().map_or_else(|| "?".to_string(), |s| s.to_string());
            let why = if stderr.is_empty() { stdout } else { stderr };
            let sep = if why.is_empty() { "" } else { ": " };
            return ActuatorOutcome::failed(format!("`{prog}` killed by signal {sig}{sep}{why}"));
        }
    };
    if matches!(action, ActionKind::CreateShadow { .. })
        && let Some(r) = Report::parse(stdout_raw)
    {
        r.apply_to(&mut out);
    }
    out
}

#[async_trait]
impl Actuator for ExecActuator {
    fn name(&self) -> &'static str {
        "exec"
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let out = self.run(req).await;
        crate::log_answer("exec", req, &out, &self.cfg.program);
        out
    }
}
