//! The `exec` kind: commands that read, apply, restore and stage a state, for anything
//! the other kinds do not cover.
//!
//! # Spec
//! ```yaml
//! kind: exec
//! read: [./state.sh, read]        # prints the state as JSON on stdout
//! apply: [./state.sh, apply]      # gets the desired state as JSON on stdin
//! restore: [./state.sh, restore]  # optional (default: apply): gets the snapshot on stdin
//! stage: [./state.sh, stage]      # optional: gets the state on stdin, prints where the
//!                                 # staged copy is on the first line of stdout
//! unstage: [./state.sh, unstage]  # optional: run with that location as last argument
//!                                 # when the staged copy is dropped
//! profile: ["/replicas"]          # optional JSON pointers (default [""]: the whole state)
//! timeout: 30s                    # optional bound on each command (default 10s)
//! env: {MODE: test}               # optional extra environment
//! ```
//!
//! Each command is an argv (no shell: write `[sh, -c, "..."]` for one), run in the
//! template's directory, in its own process group, killed with its group past the
//! timeout. A command that exits non-zero is an error naming the command, its exit status
//! and the last lines of its stderr. stdout is kept up to 16 MiB (more is an error).
//!
//! The commands own the state's shape: [`read`](ResourceDriver::read) returns what the
//! `read` command prints, so for a snapshot restored by `restore` (or `apply`) to read back
//! the same, `read` must print exactly what was applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::{DEFAULT_TIMEOUT, ResourceDriver, ResourceError, Staged};
use crate::exec::{GroupGuard, SharedTail, Tail, drain, join_readers, read_tail};

/// Most stdout kept from a command.
pub const OUTPUT_LIMIT: usize = 16 << 20;
/// stderr kept from a command (the last bytes), for messages.
const STDERR_LIMIT: usize = 8192;
/// Lines of stderr quoted in an error.
const STDERR_LINES: usize = 10;
/// How long to wait for stdout/stderr to close after the command exited (a daemon it
/// started may hold them).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// The `exec` kind's spec (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// Prints the state as JSON on stdout.
    pub read: Vec<String>,
    /// Gets the desired state as JSON on stdin and makes it so.
    pub apply: Vec<String>,
    /// Gets a snapshot as JSON on stdin and puts it back; default: `apply`.
    #[serde(default)]
    pub restore: Option<Vec<String>>,
    /// Gets a state as JSON on stdin, makes a staging copy holding it, and prints its
    /// location on the first line of stdout. Without it the resource cannot be staged.
    #[serde(default)]
    pub stage: Option<Vec<String>>,
    /// Removes a staging copy: run with its location as the last argument.
    #[serde(default)]
    pub unstage: Option<Vec<String>>,
    /// JSON pointers into the state a change may touch; default `[""]`, the whole state.
    #[serde(default)]
    pub profile: Option<Vec<String>>,
    /// Bound on each command (humantime, e.g. `30s`); default 10 s.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// What every command runs with.
#[derive(Debug, Clone)]
struct Runner {
    id: String,
    dir: PathBuf,
    env: BTreeMap<String, String>,
    timeout: Duration,
}

/// A resource driven by commands (see the module docs).
#[derive(Debug)]
pub struct ExecResource {
    run: Runner,
    read: Vec<String>,
    apply: Vec<String>,
    restore: Vec<String>,
    stage: Option<Vec<String>>,
    unstage: Option<Vec<String>>,
    profile: Vec<String>,
}

/// An argv for messages: its words joined by spaces, quoted where needed.
fn show(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `n` non-empty lines of `text`, `; `-joined.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("; ")
}

/// Collected stdout: bytes up to the limit, and whether there was more.
type SharedOut = Arc<Mutex<(Vec<u8>, bool)>>;

fn collect<R: AsyncRead + Unpin + Send + 'static>(mut r: R, out: SharedOut, limit: usize) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut chunk = vec![0u8; 65536];
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut g = out.lock().unwrap_or_else(PoisonError::into_inner);
                    let room = limit.saturating_sub(g.0.len());
                    let take = n.min(room);
                    g.0.extend_from_slice(&chunk[..take]);
                    if take < n {
                        g.1 = true;
                    }
                }
            }
        }
    })
}

impl Runner {
    fn io(&self, op: &'static str, detail: String) -> ResourceError {
        ResourceError::Io { resource: self.id.clone(), op, detail }
    }

    /// Runs `argv` with `input` on stdin; its stdout on success.
    async fn run(&self, op: &'static str, argv: &[String], input: Option<Vec<u8>>) -> Result<Vec<u8>, ResourceError> {
        let shown = show(argv);
        let Some((prog, args)) = argv.split_first() else {
            return Err(self.io(op, "empty command".to_string()));
        };
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(args)
            .current_dir(&self.dir)
            .envs(&self.env)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| self.io(op, format!("cannot run `{shown}` (in {}): {e}", self.dir.display())))?;
        let mut guard = GroupGuard { pgid: child.id() };
        let deadline = tokio::time::Instant::now() + self.timeout;
        if let (Some(mut stdin), Some(body)) = (child.stdin.take(), input) {
            // A command that does not read stdin must not block us: write on the side.
            tokio::spawn(async move {
                let _written = stdin.write_all(&body).await;
                let _closed = stdin.shutdown().await;
            });
        }
        let out: SharedOut = Arc::new(Mutex::new((Vec::new(), false)));
        let err: SharedTail = Arc::new(Mutex::new(Tail::new(STDERR_LIMIT)));
        let mut readers = Vec::new();
        if let Some(o) = child.stdout.take() {
            readers.push(collect(o, Arc::clone(&out), OUTPUT_LIMIT));
        }
        if let Some(e) = child.stderr.take() {
            readers.push(drain(e, Arc::clone(&err)));
        }
        let status = match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(Ok(status)) => {
                // Leave what the command started on purpose running (a staging copy).
                guard.pgid = None;
                join_readers(readers, DRAIN_GRACE).await;
                status
            }
            Ok(Err(e)) => {
                guard.kill();
                return Err(self.io(op, format!("waiting for `{shown}`: {e}")));
            }
            Err(_elapsed) => {
                guard.kill();
                let _reaped = tokio::time::timeout(DRAIN_GRACE, child.wait()).await;
                join_readers(readers, DRAIN_GRACE).await;
                let (stderr, _) = read_tail(&err);
                let mut detail = format!("`{shown}` timed out after {:?}, process group killed", self.timeout);
                let tail = last_lines(&stderr, STDERR_LINES);
                if !tail.is_empty() {
                    detail.push_str(&format!("; stderr: {tail}"));
                }
                return Err(self.io(op, detail));
            }
        };
        let (stderr, _) = read_tail(&err);
        if !status.success() {
            use std::os::unix::process::ExitStatusExt as _;
            let how = match (status.code(), status.signal()) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                (None, None) => format!("failed ({status})"),
            };
            let tail = last_lines(&stderr, STDERR_LINES);
            let sep = if tail.is_empty() { "" } else { ": " };
            return Err(self.io(op, format!("`{shown}` {how}{sep}{tail}")));
        }
        let (bytes, over) = std::mem::take(&mut *out.lock().unwrap_or_else(PoisonError::into_inner));
        if over {
            return Err(self.io(op, format!("`{shown}` printed more than {OUTPUT_LIMIT} bytes on stdout")));
        }
        Ok(bytes)
    }
}

impl ExecResource {
    /// The resource `id` for `spec`; commands run in `base_dir`.
    ///
    /// # Errors
    /// [`ResourceError::Spec`] for an empty command, a bad timeout or a profile entry that
    /// is not a JSON pointer.
    pub fn new(id: &str, spec: &ExecSpec, base_dir: &Path) -> Result<Self, ResourceError> {
        let spec_err = |detail: String| ResourceError::Spec { resource: id.to_string(), detail };
        let argv = |name: &str, v: &Vec<String>| -> Result<Vec<String>, ResourceError> {
            if v.first().is_none_or(String::is_empty) {
                return Err(spec_err(format!("{name}: an empty command")));
            }
            Ok(v.clone())
        };
        let read = argv("read", &spec.read)?;
        let apply = argv("apply", &spec.apply)?;
        let restore = match &spec.restore {
            Some(r) => argv("restore", r)?,
            None => apply.clone(),
        };
        let stage = spec.stage.as_ref().map(|s| argv("stage", s)).transpose()?;
        let unstage = spec.unstage.as_ref().map(|s| argv("unstage", s)).transpose()?;
        if unstage.is_some() && stage.is_none() {
            return Err(spec_err("unstage without stage".to_string()));
        }
        let profile = spec.profile.clone().unwrap_or_else(|| vec![String::new()]);
        if profile.is_empty() {
            return Err(spec_err("profile: empty (use [\"\"] for the whole state)".to_string()));
        }
        if let Some(p) = profile.iter().find(|p| !p.is_empty() && !p.starts_with('/')) {
            return Err(spec_err(format!("profile: {p:?} is not a JSON pointer (\"\" or starting with /)")));
        }
        let timeout = match &spec.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => humantime::parse_duration(t).map_err(|e| spec_err(format!("timeout: {t:?}: {e}")))?,
        };
        Ok(ExecResource {
            run: Runner { id: id.to_string(), dir: base_dir.to_path_buf(), env: spec.env.clone(), timeout },
            read,
            apply,
            restore,
            stage,
            unstage,
            profile,
        })
    }

    fn body(&self, state: &Value) -> Vec<u8> {
        let mut body = serde_json::to_vec(state).unwrap_or_default();
        body.push(b'\n');
        body
    }

    /// Runs `restore` (or `apply`) with `state` on stdin.
    ///
    /// # Errors
    /// As [`ResourceDriver::write`].
    pub async fn restore(&self, state: &Value) -> Result<(), ResourceError> {
        self.run.run("restore", &self.restore, Some(self.body(state))).await.map(drop)
    }
}

/// Runs the `unstage` command when dropped (synchronously, bounded by the timeout).
#[derive(Debug)]
pub struct Unstage {
    run: Runner,
    argv: Option<Vec<String>>,
    location: String,
}

impl Drop for Unstage {
    fn drop(&mut self) {
        let Some(argv) = self.argv.take() else { return };
        let Some((prog, args)) = argv.split_first() else { return };
        let shown = show(&argv);
        let stderr = tempfile::tempfile().ok();
        let mut cmd = std::process::Command::new(prog);
        {
            use std::os::unix::process::CommandExt as _;
            cmd.args(args)
                .arg(&self.location)
                .current_dir(&self.run.dir)
                .envs(&self.run.env)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .process_group(0);
        }
        match stderr.as_ref().and_then(|f| f.try_clone().ok()) {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(Stdio::null()),
        };
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(target: "harbinger::change", resource = %self.run.id, "cannot run `{shown}`: {e}");
                return;
            }
        };
        let deadline = std::time::Instant::now() + self.run.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    crate::exec::signal_group(child.id(), rustix::process::Signal::KILL);
                    let _unused = child.kill();
                    let _reaped = child.wait();
                    break None;
                }
            }
        };
        if status.is_some_and(|s| s.success()) {
            return;
        }
        let err_text = stderr
            .and_then(|mut f| {
                use std::io::{Read as _, Seek as _};
                let mut s = String::new();
                f.seek(std::io::SeekFrom::Start(0)).ok()?;
                f.take(STDERR_LIMIT as u64 * 4).read_to_string(&mut s).ok()?;
                Some(last_lines(&s, STDERR_LINES))
            })
            .unwrap_or_default();
        let how = status.map_or_else(|| format!("timed out after {:?}, process group killed", self.run.timeout), |s| s.to_string());
        tracing::warn!(target: "harbinger::change", resource = %self.run.id, location = %self.location, "`{shown}` {how}: {err_text}");
    }
}

#[async_trait]
impl ResourceDriver for ExecResource {
    fn kind(&self) -> &'static str {
        "exec"
    }

    fn describe(&self) -> String {
        format!("`{}`", show(&self.read))
    }

    fn profile(&self) -> Vec<String> {
        self.profile.clone()
    }

    async fn read(&self) -> Result<Value, ResourceError> {
        let out = self.run.run("read", &self.read, None).await?;
        serde_json::from_slice(&out).map_err(|e| {
            let text = String::from_utf8_lossy(&out);
            let start: String = text.trim().chars().take(200).collect();
            self.run.io("read", format!("`{}` printed no JSON state: {e} (stdout starts {start:?})", show(&self.read)))
        })
    }

    async fn write(&self, state: &Value) -> Result<(), ResourceError> {
        self.run.run("write", &self.apply, Some(self.body(state))).await.map(drop)
    }

    async fn write_restore(&self, state: &Value) -> Result<(), ResourceError> {
        self.restore(state).await
    }

    async fn stage(&self, state: &Value) -> Result<Option<Staged>, ResourceError> {
        let Some(stage) = &self.stage else { return Ok(None) };
        let out = self.run.run("stage", stage, Some(self.body(state))).await?;
        let text = String::from_utf8_lossy(&out);
        let location = text.lines().next().map(str::trim).unwrap_or_default().to_string();
        if location.is_empty() {
            // No location to give `unstage`: nothing is run for it.
            return Err(self.run.io("stage", format!("`{}` printed no location on its first stdout line", show(stage))));
        }
        let guard = Unstage { run: self.run.clone(), argv: self.unstage.clone(), location: location.clone() };
        Ok(Some(Staged { location, guard: Box::new(guard) }))
    }
}
