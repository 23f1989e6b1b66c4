//! The `redis` kind: string keys and `CONFIG SET` parameters of a real Redis server.
//!
//! # Spec
//! ```yaml
//! kind: redis
//! endpoint: 127.0.0.1:6379        # required, host:port
//! keys: [feature:flags, limits]   # managed string keys (default none)
//! config: [maxmemory-policy, hz]  # managed CONFIG parameters (default none)
//! staging: 127.0.0.1:6390         # optional: an existing staging server
//! redis_server: /usr/bin/redis-server  # for a staging server started per change
//! timeout: 2s                     # bound on each connection and command (default 10s)
//! ```
//!
//! # State
//! `{"keys": {"<key>": "<value>", ...}, "config": {"<param>": "<value>", ...}}`; profile
//! `["/keys", "/config"]`. `keys` holds the managed keys that exist (`GET`; absent keys are
//! left out); `config` every managed parameter as `CONFIG GET` answers it (a string).
//!
//! The managed keys are the spec's `keys`, plus those given to
//! [`RedisResource::manage_keys`] (or named by a state passed to
//! [`ResourceDriver::manage_state`]), plus those of every state written: a change
//! calls `manage_state(desired)` before it takes its snapshot, so the snapshot holds the
//! keys the change will set and restoring it deletes those that did not exist.
//!
//! Writing a state `SET`s every key of `state.keys` and `DEL`s every managed key absent
//! from it, in one `MULTI`/`EXEC` transaction, after one `CONFIG SET` of every parameter of
//! `state.config` (a parameter absent from `state.config` is left as it is: a parameter
//! cannot be removed). Values must be strings. Only string keys are supported: a managed
//! key of another type is an error. Redis canonicalises some parameter values
//! (`maxmemory 100mb` reads back as `104857600`): give them as `CONFIG GET` answers them
//! for a state to read back exactly as written.
//!
//! Staging writes the state to the spec's `staging` server, or else to a fresh
//! `redis-server` started on 127.0.0.1 on a free port (no persistence, in a scratch
//! directory), stopped (its process group killed) when the [`Staged`] is dropped.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{DEFAULT_TIMEOUT, ResourceDriver, ResourceError, Staged};
use crate::redis::{DEFAULT_REDIS_SERVER, RedisClient, RedisError, Reply};
use std::os::unix::process::CommandExt as _;

/// The `redis` kind's spec (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// The live server, `host:port`.
    pub endpoint: String,
    /// Managed string keys.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Managed `CONFIG` parameters.
    #[serde(default)]
    pub config: Vec<String>,
    /// An existing staging server, `host:port`; default: one started per staging.
    #[serde(default)]
    pub staging: Option<String>,
    /// The `redis-server` program for a staging server started per staging.
    #[serde(default)]
    pub redis_server: Option<PathBuf>,
    /// Bound on connecting and on each command (humantime, e.g. `2s`); default 10 s.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Keys and parameters of a Redis server (see the module docs).
#[derive(Debug)]
pub struct RedisResource {
    id: String,
    endpoint: String,
    config: Vec<String>,
    staging: Option<String>,
    redis_server: PathBuf,
    timeout: Duration,
    /// Managed keys: the spec's, and every one added since.
    keys: Mutex<BTreeSet<String>>,
}

/// Whether `addr` looks like `host:port`.
fn check_addr(addr: &str) -> Result<(), String> {
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("{addr:?} is not host:port"))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) || port.parse::<u16>().is_err() {
        return Err(format!("{addr:?} is not host:port"));
    }
    Ok(())
}

impl RedisResource {
    /// The resource `id` for `spec`.
    ///
    /// # Errors
    /// [`ResourceError::Spec`] for a bad address or timeout, an empty key, or a parameter
    /// name that is empty or a glob pattern.
    pub fn new(id: &str, spec: &RedisSpec) -> Result<Self, ResourceError> {
        let spec_err = |detail: String| ResourceError::Spec { resource: id.to_string(), detail };
        check_addr(&spec.endpoint).map_err(|e| spec_err(format!("endpoint: {e}")))?;
        if let Some(s) = &spec.staging {
            check_addr(s).map_err(|e| spec_err(format!("staging: {e}")))?;
            if *s == spec.endpoint {
                return Err(spec_err(format!("staging: {s} is the live endpoint")));
            }
        }
        if spec.keys.iter().any(String::is_empty) {
            return Err(spec_err("keys: an empty key name".to_string()));
        }
        if let Some(p) = spec.config.iter().find(|p| p.is_empty() || p.contains(['*', '?', '[', ' '])) {
            return Err(spec_err(format!("config: {p:?} is not a parameter name")));
        }
        let timeout = match &spec.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => humantime::parse_duration(t).map_err(|e| spec_err(format!("timeout: {t:?}: {e}")))?,
        };
        let mut config: Vec<String> = spec.config.iter().map(|p| p.to_ascii_lowercase()).collect();
        config.sort();
        config.dedup();
        Ok(RedisResource {
            id: id.to_string(),
            endpoint: spec.endpoint.clone(),
            config,
            staging: spec.staging.clone(),
            redis_server: spec.redis_server.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_REDIS_SERVER)),
            timeout,
            keys: Mutex::new(spec.keys.iter().cloned().collect()),
        })
    }

    /// Adds keys to the managed ones: [`read`](ResourceDriver::read) reports them (when
    /// they exist) and [`write`](ResourceDriver::write) deletes them when a state leaves
    /// them out.
    pub fn manage_keys(&self, keys: impl IntoIterator<Item = String>) {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).extend(keys.into_iter().filter(|k| !k.is_empty()));
    }

    /// The managed keys now.
    pub fn managed_keys(&self) -> BTreeSet<String> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The managed `CONFIG` parameters (lower case).
    pub fn managed_config(&self) -> &[String] {
        &self.config
    }

    fn io(&self, op: &'static str, detail: impl std::fmt::Display) -> ResourceError {
        ResourceError::Io { resource: self.id.clone(), op, detail: detail.to_string() }
    }

    fn invalid(&self, detail: String) -> ResourceError {
        ResourceError::State { resource: self.id.clone(), detail }
    }

    async fn connect(&self, addr: &str, op: &'static str) -> Result<RedisClient, ResourceError> {
        RedisClient::connect(addr, self.timeout).await.map_err(|e| self.io(op, e))
    }

    async fn read_from(&self, addr: &str, op: &'static str) -> Result<Value, ResourceError> {
        let mut c = self.connect(addr, op).await?;
        let mut keys = Map::new();
        for key in self.managed_keys() {
            match c.command(&["GET", &key]).await {
                Ok(Reply::Bulk(None)) => {}
                Ok(Reply::Bulk(Some(bytes))) => {
                    let value = String::from_utf8(bytes)
                        .map_err(|_| self.io(op, format!("redis {addr}: key {key:?} holds bytes that are not UTF-8: not supported")))?;
                    keys.insert(key, Value::String(value));
                }
                Ok(other) => return Err(self.io(op, format!("redis {addr}: GET {key:?}: unexpected answer {other:?}"))),
                Err(RedisError::Server { message, .. }) if message.starts_with("WRONGTYPE") => {
                    let ty = c.command(&["TYPE", &key]).await.ok().and_then(|r| r.as_text()).unwrap_or_else(|| "?".to_string());
                    return Err(self.io(op, format!("redis {addr}: key {key:?} is a {ty}: only string keys are supported")));
                }
                Err(e) => return Err(self.io(op, e)),
            }
        }
        let mut config = Map::new();
        for param in &self.config {
            let reply = c.command(&["CONFIG", "GET", param]).await.map_err(|e| self.io(op, e))?;
            let items = match reply {
                Reply::Array(Some(items)) => items,
                other => return Err(self.io(op, format!("redis {addr}: CONFIG GET {param}: unexpected answer {other:?}"))),
            };
            let texts: Vec<Option<String>> = items.iter().map(Reply::as_text).collect();
            let value = texts
                .chunks(2)
                .find(|pair| pair.first().and_then(Option::as_deref).is_some_and(|n| n.eq_ignore_ascii_case(param)))
                .or_else(|| texts.chunks(2).next())
                .and_then(|pair| pair.get(1).cloned().flatten())
                .ok_or_else(|| self.io(op, format!("redis {addr}: CONFIG GET {param}: no such parameter")))?;
            config.insert(param.clone(), Value::String(value));
        }
        Ok(serde_json::json!({ "keys": keys, "config": config }))
    }

    /// The keys to set and the parameters to set, checked.
    #[allow(clippy::type_complexity)]
    fn parse_state<'a>(&self, state: &'a Value) -> Result<(Vec<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>), ResourceError> {
        let obj = state.as_object().ok_or_else(|| self.invalid(format!("expected an object with keys and config, got {state}")))?;
        if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "keys" | "config")) {
            return Err(self.invalid(format!("/{k} is outside the change profile [\"/keys\", \"/config\"]")));
        }
        let strings = |part: &str| -> Result<Vec<(&'a str, &'a str)>, ResourceError> {
            let Some(v) = obj.get(part) else { return Ok(Vec::new()) };
            let m = v.as_object().ok_or_else(|| self.invalid(format!("/{part}: expected an object, got {v}")))?;
            m.iter()
                .map(|(k, v)| match v.as_str() {
                    Some(s) => Ok((k.as_str(), s)),
                    None => Err(self.invalid(format!(
                        "/{part}/{k}: Redis values are strings, got {v} (write it as a string: \"{}\")",
                        v.to_string().trim_matches('"')
                    ))),
                })
                .collect()
        };
        let keys = strings("keys")?;
        if keys.iter().any(|(k, _)| k.is_empty()) {
            return Err(self.invalid("/keys: an empty key name".to_string()));
        }
        let config = strings("config")?;
        for (p, _) in &config {
            if !self.config.iter().any(|c| c.eq_ignore_ascii_case(p)) {
                return Err(self.invalid(format!(
                    "/config/{p}: parameter {p:?} is not declared in the resource's config list {:?}: a change can only touch declared parameters",
                    self.config
                )));
            }
        }
        Ok((keys, config))
    }

    async fn write_to(&self, addr: &str, state: &Value, op: &'static str) -> Result<(), ResourceError> {
        let (keys, config) = self.parse_state(state)?;
        self.manage_keys(keys.iter().map(|(k, _)| (*k).to_string()));
        let managed = self.managed_keys();
        let mut c = self.connect(addr, op).await?;
        if !config.is_empty() {
            let mut args = vec!["CONFIG", "SET"];
            for (p, v) in &config {
                args.push(p);
                args.push(v);
            }
            c.command(&args).await.map_err(|e| self.io(op, e))?;
        }
        let set: BTreeSet<&str> = keys.iter().map(|(k, _)| *k).collect();
        let del: Vec<&str> = managed.iter().map(String::as_str).filter(|k| !set.contains(k)).collect();
        if keys.is_empty() && del.is_empty() {
            return Ok(());
        }
        c.command(&["MULTI"]).await.map_err(|e| self.io(op, e))?;
        let queued = async {
            for (k, v) in &keys {
                c.command(&["SET", k, v]).await?;
            }
            if !del.is_empty() {
                let mut args = vec!["DEL"];
                args.extend(del.iter().copied());
                c.command(&args).await?;
            }
            Ok::<_, RedisError>(())
        }
        .await;
        if let Err(e) = queued {
            let _unused = c.command(&["DISCARD"]).await;
            return Err(self.io(op, e));
        }
        match c.command(&["EXEC"]).await.map_err(|e| self.io(op, e))? {
            Reply::Array(Some(replies)) => {
                if let Some(Reply::Error(msg)) = replies.iter().find(|r| matches!(r, Reply::Error(_))) {
                    return Err(self.io(op, format!("redis {addr}: EXEC: {msg}")));
                }
                Ok(())
            }
            other => Err(self.io(op, format!("redis {addr}: EXEC: transaction not run ({other:?})"))),
        }
    }

    /// Starts a `redis-server` on a free port of 127.0.0.1 and waits until it answers.
    async fn start_staging(&self) -> Result<StagingServer, ResourceError> {
        let dir = tempfile::Builder::new()
            .prefix("harbinger-redis-stage-")
            .tempdir()
            .map_err(|e| self.io("stage", format!("cannot create a scratch directory: {e}")))?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| self.io("stage", format!("no free port on 127.0.0.1: {e}")))?
                .port();
            let addr = format!("127.0.0.1:{port}");
            let log = dir.path().join(format!("redis-{port}.log"));
            let child = std::process::Command::new(&self.redis_server)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .map_err(|e| {
                    self.io(
                        "stage",
                        format!(
                            "cannot start {}: {e} (install the Debian package redis-server, or set redis_server)",
                            self.redis_server.display()
                        ),
                    )
                })?;
            let mut server = StagingServer { child, addr: addr.clone(), _dir: None };
            let deadline = Instant::now() + self.timeout;
            loop {
                if let Ok(Some(status)) = server.child.try_wait() {
                    last = format!("staging redis-server on {addr} exited ({status}); see {}", log.display());
                    break;
                }
                if ping(&addr).await {
                    server._dir = Some(dir);
                    return Ok(server);
                }
                if Instant::now() >= deadline {
                    return Err(
                        self.io("stage", format!("staging redis-server on {addr} did not answer PING within {:?}; killed", self.timeout))
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Err(self.io("stage", last))
    }
}

/// Whether a server answers PING at `addr` (bounded).
async fn ping(addr: &str) -> bool {
    match RedisClient::connect(addr, Duration::from_millis(200)).await {
        Ok(mut c) => matches!(c.command(&["PING"]).await, Ok(Reply::Status(s)) if s == "PONG"),
        Err(_) => false,
    }
}

/// A staging `redis-server` started for one staging: dropping it kills its process group
/// and reaps it, then removes its scratch directory.
#[derive(Debug)]
pub struct StagingServer {
    child: std::process::Child,
    addr: String,
    _dir: Option<tempfile::TempDir>,
}

impl StagingServer {
    /// Where it serves, `127.0.0.1:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for StagingServer {
    fn drop(&mut self) {
        crate::exec::signal_group(self.child.id(), rustix::process::Signal::KILL);
        let _unused = self.child.kill();
        // SIGKILLed: it is gone at once; reap it.
        let _reaped = self.child.wait();
    }
}

#[async_trait]
impl ResourceDriver for RedisResource {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn describe(&self) -> String {
        format!("redis {}", self.endpoint)
    }

    fn location(&self) -> String {
        self.endpoint.clone()
    }

    fn profile(&self) -> Vec<String> {
        vec!["/keys".to_string(), "/config".to_string()]
    }

    async fn read(&self) -> Result<Value, ResourceError> {
        self.read_from(&self.endpoint, "read").await
    }

    async fn write(&self, state: &Value) -> Result<(), ResourceError> {
        self.write_to(&self.endpoint, state, "write").await
    }

    async fn stage(&self, state: &Value) -> Result<Option<Staged>, ResourceError> {
        // Checked before a server is started for it.
        self.parse_state(state)?;
        if let Some(staging) = &self.staging {
            self.write_to(staging, state, "stage").await?;
            return Ok(Some(Staged { location: staging.clone(), guard: Box::new(()) }));
        }
        let server = self.start_staging().await?;
        self.write_to(&server.addr, state, "stage").await?;
        Ok(Some(Staged { location: server.addr.clone(), guard: Box::new(server) }))
    }

    fn manage_state(&self, state: &Value) {
        if let Some(keys) = state.get("keys").and_then(Value::as_object) {
            self.manage_keys(keys.keys().cloned());
        }
    }
}
