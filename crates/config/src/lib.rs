//! harbinger-config: configuration from defaults, a TOML file, environment variables and
//! flags, validated once into typed values.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config` or
//! `HARBINGER_CONFIG`), environment variables (`HARBINGER_<SECTION>_<KEY>`, e.g.
//! `HARBINGER_STORE_RETENTION`, and `HARBINGER_DATA_DIR`), then command-line flags.
//! Every layer is merged into one TOML table, deserialised with unknown keys refused
//! ([`RawConfig`]), then checked into [`Config`]. Errors name the field and where its
//! value came from.
//!
//! Start with [`Config::load`]; `harbinger.example.toml` at the repository root lists
//! every key with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The merged configuration is not valid TOML for harbinger (syntax, unknown key, type).
    #[error("{origin}: {message}")]
    Parse {
        /// Where the text came from (file path, or "environment and flags").
        origin: String,
        /// The parser's message, with the key or line.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// Dotted key, e.g. `store.sync_interval`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The raw, serde-level configuration: every field optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// State directory.
    pub data_dir: Option<PathBuf>,
    /// `[http]`.
    #[serde(default)]
    pub http: RawHttp,
    /// `[store]`.
    #[serde(default)]
    pub store: RawStore,
    /// `[log]`.
    #[serde(default)]
    pub log: RawLog,
    /// `[model]`.
    #[serde(default)]
    pub model: RawModel,
    /// `[grpc]`.
    #[serde(default)]
    pub grpc: RawGrpc,
    /// `[auth]`.
    #[serde(default)]
    pub auth: RawAuth,
    /// `[engine]`.
    #[serde(default)]
    pub engine: RawEngine,
    /// `[snapshots]`.
    #[serde(default)]
    pub snapshots: RawSnapshots,
    /// `[watchdog]`.
    #[serde(default)]
    pub watchdog: RawWatchdog,
    /// `[change]`.
    #[serde(default)]
    pub change: RawChange,
    /// `[[actuators]]`: the chain `engine.actuator = "chain"` runs, in order. Each table
    /// has a `kind` and that kind's keys; `harbinger-actuate` checks and builds them.
    #[serde(default)]
    pub actuators: Vec<toml::Table>,
}

/// `[change]` section: change safety (`apply`, `rollback`, gRPC `ChangeService`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChange {
    /// Writes and restores run at once at most, within a stage (default 4).
    pub parallelism: Option<usize>,
    /// A change-risk score at or above this is a negative analysis (default 0.5).
    pub risk_threshold: Option<f64>,
    /// URL rejections, rollbacks and failed verifications are POSTed to as JSON.
    pub alert_webhook: Option<String>,
    /// A directory `serve` watches for change templates submitted ahead of deployment
    /// (unset: none).
    pub watch_dir: Option<PathBuf>,
    /// Time between two looks at `watch_dir` (default 2s).
    pub watch_every: Option<String>,
    /// How long the live stack is watched after a submitted change is applied (default 60s).
    pub monitor_for: Option<String>,
    /// Time between two rounds of checks while watching (default 5s).
    pub monitor_every: Option<String>,
}

/// Checked `[change]` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeConfig {
    /// Writes and restores run at once at most, within a stage.
    pub parallelism: usize,
    /// A change-risk score at or above this needs `force`.
    pub risk_threshold: f64,
    /// Where alerts are POSTed.
    pub alert_webhook: Option<String>,
    /// The directory of submitted (predicted) changes `serve` watches.
    pub watch_dir: Option<PathBuf>,
    /// Time between two looks at it.
    pub watch_every: Duration,
    /// How long the live stack is watched after a submitted change is applied.
    pub monitor_for: Duration,
    /// Time between two rounds of checks while watching.
    pub monitor_every: Duration,
}

/// `[watchdog]` section: health checks of primaries and failover.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatchdog {
    /// Run the watchdog in `serve` (default true).
    pub enabled: Option<bool>,
    /// Time between rounds of checks (default 200ms).
    pub interval: Option<String>,
    /// Longest wait for one check (default 150ms).
    pub timeout: Option<String>,
    /// Failed checks out of the last `window` that declare a primary down (default 2).
    pub fall: Option<usize>,
    /// Checks remembered per resource (default 3).
    pub window: Option<usize>,
}

/// `[snapshots]` section: delta snapshots of resource state taken before changes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnapshots {
    /// Directory of the snapshot files (default `<data_dir>/snapshots`).
    pub dir: Option<PathBuf>,
    /// A second directory every snapshot is also written to, and read from when the
    /// first copy is damaged (best on another disk).
    pub replica_dir: Option<PathBuf>,
    /// How long snapshots are kept (`30days`), or `never` to keep them forever.
    pub ttl: Option<String>,
    /// Most deltas stacked on one full snapshot (default 8).
    pub max_chain: Option<usize>,
    /// Change profiles: resource kind -> JSON pointers its changes touch; `"*"` is the
    /// fallback for other kinds. Laid over the built-in profiles.
    #[serde(default)]
    pub profiles: std::collections::BTreeMap<String, Vec<String>>,
}

/// `[engine]` section: the tick, the shadow planner's budget and the actuator.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    /// How often the engine advances risk and plans (wall clock in `serve`).
    pub tick: Option<String>,
    /// Most live shadows at once.
    pub max_live_shadows: Option<u64>,
    /// Share of each host's cpu and memory never given to shadows.
    pub host_reserve: Option<f64>,
    /// Above this failure probability, critical resources are shadowed first.
    pub critical_probability: Option<f64>,
    /// Resources of an alerting host with at least this criticality get shadows.
    pub min_criticality: Option<u8>,
    /// A host that left the alerting state keeps its shadows this long.
    pub retire_grace: Option<String>,
    /// Ready shadows unused this long are retired (scale-down).
    pub idle: Option<String>,
    /// Shadows expire after this long; "never" keeps them.
    pub shadow_ttl: Option<String>,
    /// Shadows no longer live and finished journal entries are deleted this long after
    /// their last change; "never" keeps them.
    pub history: Option<String>,
    /// Hosts at or above this risk never receive shadows.
    pub risk_ceiling: Option<f64>,
    /// The actuator kind: "log" (records what it would do).
    pub actuator: Option<String>,
}

/// `[grpc]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrpc {
    /// Listen address.
    pub addr: Option<String>,
    /// Most hosts in one ScoreHosts/WatchRisk request.
    pub max_hosts_per_request: Option<u64>,
    /// Largest decoded request message, bytes.
    pub max_message_bytes: Option<u64>,
    /// PEM certificate chain; with `tls_key`, gRPC is served over TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

/// `[auth]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Bearer token mutating calls must carry.
    #[serde(default, deserialize_with = "string_or_number")]
    pub token: Option<String>,
    /// File holding the token (first line), instead of `token`.
    pub token_file: Option<PathBuf>,
    /// Require the token on reads too (default false).
    pub protect_reads: Option<bool>,
}

/// Accepts a string or a number (environment values that look numeric arrive as numbers).
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        Str(String),
        Int(i64),
        Float(f64),
    }
    Ok(Option::<S>::deserialize(d)?.map(|s| match s {
        S::Str(s) => s,
        S::Int(i) => i.to_string(),
        S::Float(f) => f.to_string(),
    }))
}

/// `[model]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Directory of the failure model artifact `serve` loads, or a registry entry.
    pub dir: Option<PathBuf>,
    /// Root of the model registry (`harbinger models`, `train --publish`).
    pub registry: Option<PathBuf>,
    /// Risk at or above which a host enters the alerting state ("model" = the model's own).
    pub alert_threshold: Option<f64>,
    /// Risk below which an alerting host leaves it ("model" = the model's own).
    pub clear_threshold: Option<f64>,
}

/// `[http]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Listen address.
    pub addr: Option<String>,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: Option<u64>,
    /// Reject samples and events for hosts not in the inventory.
    pub strict_hosts: Option<bool>,
    /// Idle or slow-header clients are disconnected after this (default 10s).
    pub header_timeout: Option<String>,
    /// A request body must arrive within this, else 408 (default 30s).
    pub body_timeout: Option<String>,
    /// At shutdown, open connections are dropped after this (default 10s).
    pub shutdown_timeout: Option<String>,
}

/// `[store]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Keep samples this long (before the server's clock); "forever" keeps all.
    pub retention: Option<String>,
    /// Refuse samples stamped further than this ahead of the server's clock; "off" admits any.
    pub max_future: Option<String>,
    /// Longest host id accepted, bytes.
    pub max_host_bytes: Option<u64>,
    /// Longest metric name (with labels) accepted, bytes.
    pub max_metric_bytes: Option<u64>,
    /// How often samples are fsynced; "0s" syncs every append.
    pub sync_interval: Option<String>,
    /// Span of the in-memory hot window per series.
    pub hot_window: Option<String>,
    /// Most samples per series in the hot window.
    pub hot_max_points: Option<u64>,
    /// Most series the store accepts.
    pub max_series: Option<u64>,
    /// Segment size before rolling to a new file, bytes.
    pub segment_bytes: Option<u64>,
}

/// `[log]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// "text" or "json".
    pub format: Option<String>,
    /// A tracing filter, e.g. "info" or "harbinger_store=debug,info".
    pub level: Option<String>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Checked HTTP settings.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConfig {
    /// Listen address.
    pub addr: SocketAddr,
    /// Largest accepted request body in bytes (larger bodies get 413).
    pub max_body_bytes: usize,
    /// Reject samples and events for hosts not in the inventory.
    pub strict_hosts: bool,
    /// Idle or slow-header clients are disconnected after this.
    pub header_timeout: Duration,
    /// A request body must arrive within this, else 408.
    pub body_timeout: Duration,
    /// At shutdown, open connections are dropped after this.
    pub shutdown_timeout: Duration,
}

/// Checked store settings.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreConfig {
    /// `None` keeps samples forever. Measured back from the server's clock.
    pub retention: Option<Duration>,
    /// Samples further than this ahead of the server's clock are refused; `None` admits any.
    pub max_future: Option<Duration>,
    /// Longest host id accepted, bytes (1..=65535).
    pub max_host_bytes: usize,
    /// Longest metric name with labels accepted, bytes (1..=65535).
    pub max_metric_bytes: usize,
    /// Zero syncs on every append.
    pub sync_interval: Duration,
    /// Hot-window span.
    pub hot_window: Duration,
    /// Hot-window size bound per series.
    pub hot_max_points: usize,
    /// Series bound.
    pub max_series: usize,
    /// Segment roll size.
    pub segment_bytes: u64,
}

/// Checked log settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// Filter directive.
    pub level: String,
}

/// Checked model settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Directory of the model artifact, or a registry entry `<registry>/<name>` whose
    /// current version is loaded.
    pub dir: PathBuf,
    /// Root of the model registry.
    pub registry: PathBuf,
    /// Override of the model's alert threshold.
    pub alert_threshold: Option<f64>,
    /// Override of the model's clear threshold.
    pub clear_threshold: Option<f64>,
}

/// Checked gRPC settings.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpcConfig {
    /// Listen address.
    pub addr: SocketAddr,
    /// Most hosts in one ScoreHosts/WatchRisk request (more gets RESOURCE_EXHAUSTED).
    pub max_hosts_per_request: usize,
    /// Largest decoded request message in bytes (larger gets RESOURCE_EXHAUSTED).
    pub max_message_bytes: usize,
    /// Serve over TLS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// A secret value: compared and used, never printed (`Debug` shows `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Checked authentication settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthConfig {
    /// When set, mutating gRPC calls and HTTP endpoints need `authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// Reads need the token too (risk, explanations, model info, shadows, snapshots,
    /// change records, `/metrics`); health, readiness, `Ping` and reflection stay open.
    pub protect_reads: bool,
}

/// The validated configuration every component is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// State directory (store, later models and journals).
    pub data_dir: PathBuf,
    /// HTTP server.
    pub http: HttpConfig,
    /// Embedded store.
    pub store: StoreConfig,
    /// Logging.
    pub log: LogConfig,
    /// Failure model and alerting.
    pub model: ModelConfig,
    /// gRPC server.
    pub grpc: GrpcConfig,
    /// Bearer token for mutating calls.
    pub auth: AuthConfig,
    /// Engine tick, planner budget and actuator.
    pub engine: EngineConfig,
    /// Delta snapshots.
    pub snapshots: SnapshotsConfig,
    /// Health checks and failover.
    pub watchdog: WatchdogConfig,
    /// Change safety.
    pub change: ChangeConfig,
    /// The `[[actuators]]` tables, unchecked (the actuate crate builds them).
    pub actuators: Vec<toml::Table>,
}

/// Checked `[watchdog]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchdogConfig {
    /// Run it in `serve`.
    pub enabled: bool,
    /// Time between rounds.
    pub interval: Duration,
    /// Longest wait for one check.
    pub timeout: Duration,
    /// Failed checks that declare a primary down.
    pub fall: usize,
    /// Checks remembered per resource.
    pub window: usize,
}

/// Checked `[snapshots]` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotsConfig {
    /// Directory of the snapshot files.
    pub dir: PathBuf,
    /// Replica directory, if any.
    pub replica_dir: Option<PathBuf>,
    /// Time to live; `None` keeps them forever.
    pub ttl: Option<Duration>,
    /// Most deltas on one base.
    pub max_chain: usize,
    /// Change profiles laid over the built-in ones (checked by the snapshot store).
    pub profiles: std::collections::BTreeMap<String, Vec<String>>,
}

/// Checked `[engine]` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Tick interval.
    pub tick: Duration,
    /// Most live shadows at once.
    pub max_live_shadows: usize,
    /// Share of host capacity kept free of shadows, in [0, 1).
    pub host_reserve: f64,
    /// Probability above which critical resources go first, in (0, 1].
    pub critical_probability: f64,
    /// Least criticality (0..=3) shadowed when a host alerts.
    pub min_criticality: u8,
    /// Grace before a cleared host's shadows are retired.
    pub retire_grace: Duration,
    /// Idle time before a ready shadow is scaled down.
    pub idle: Duration,
    /// Shadow lifetime; `None` = never expire.
    pub shadow_ttl: Option<Duration>,
    /// How long shadows no longer live and finished journal entries are kept after their
    /// last change; `None` = for ever.
    pub history: Option<Duration>,
    /// Hosts at or above this risk receive no shadows, in (0, 1].
    pub risk_ceiling: f64,
    /// Actuator kind.
    pub actuator: ActuatorKind,
}

/// The actuators harbinger can drive (a closed set, chosen in config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActuatorKind {
    /// Dry run: journals and logs every action as it would be done.
    Log,
    /// The `[[actuators]]` of the config, called in order for the resource kinds each names.
    Chain,
}

/// The `HARBINGER_*` variables among `names` that harbinger does not read — a misspelt one
/// (`HARBINGER_AUTH_TOKN`) would otherwise be ignored without a word — each with the
/// closest variable it does read when one is near. `also_read` are other names in use
/// (e.g. an actuator's `secret_env`).
pub fn unknown_env_vars(names: impl IntoIterator<Item = String>, also_read: &[&str]) -> Vec<(String, Option<&'static str>)> {
    let known = || ENV_KEYS.iter().map(|(v, _)| *v).chain(std::iter::once("HARBINGER_CONFIG"));
    let mut out: Vec<(String, Option<&'static str>)> = names
        .into_iter()
        .filter(|n| n.starts_with("HARBINGER_") && !known().any(|k| k == n) && !also_read.contains(&n.as_str()))
        .map(|n| {
            let near = known().map(|k| (strsim::levenshtein(&n, k), k)).filter(|(d, _)| *d <= 3).min_by_key(|(d, _)| *d).map(|(_, k)| k);
            (n, near)
        })
        .collect();
    out.sort();
    out
}

/// Environment variables read, and the dotted key each sets.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("HARBINGER_DATA_DIR", "data_dir"),
    ("HARBINGER_HTTP_ADDR", "http.addr"),
    ("HARBINGER_HTTP_MAX_BODY_BYTES", "http.max_body_bytes"),
    ("HARBINGER_HTTP_STRICT_HOSTS", "http.strict_hosts"),
    ("HARBINGER_AUTH_PROTECT_READS", "auth.protect_reads"),
    ("HARBINGER_HTTP_HEADER_TIMEOUT", "http.header_timeout"),
    ("HARBINGER_HTTP_BODY_TIMEOUT", "http.body_timeout"),
    ("HARBINGER_HTTP_SHUTDOWN_TIMEOUT", "http.shutdown_timeout"),
    ("HARBINGER_STORE_RETENTION", "store.retention"),
    ("HARBINGER_STORE_MAX_FUTURE", "store.max_future"),
    ("HARBINGER_STORE_MAX_HOST_BYTES", "store.max_host_bytes"),
    ("HARBINGER_STORE_MAX_METRIC_BYTES", "store.max_metric_bytes"),
    ("HARBINGER_STORE_SYNC_INTERVAL", "store.sync_interval"),
    ("HARBINGER_STORE_HOT_WINDOW", "store.hot_window"),
    ("HARBINGER_STORE_HOT_MAX_POINTS", "store.hot_max_points"),
    ("HARBINGER_STORE_MAX_SERIES", "store.max_series"),
    ("HARBINGER_STORE_SEGMENT_BYTES", "store.segment_bytes"),
    ("HARBINGER_LOG_FORMAT", "log.format"),
    ("HARBINGER_LOG_LEVEL", "log.level"),
    ("HARBINGER_MODEL_DIR", "model.dir"),
    ("HARBINGER_MODEL_REGISTRY", "model.registry"),
    ("HARBINGER_MODEL_ALERT_THRESHOLD", "model.alert_threshold"),
    ("HARBINGER_MODEL_CLEAR_THRESHOLD", "model.clear_threshold"),
    ("HARBINGER_GRPC_ADDR", "grpc.addr"),
    ("HARBINGER_GRPC_MAX_HOSTS_PER_REQUEST", "grpc.max_hosts_per_request"),
    ("HARBINGER_GRPC_MAX_MESSAGE_BYTES", "grpc.max_message_bytes"),
    ("HARBINGER_GRPC_TLS_CERT", "grpc.tls_cert"),
    ("HARBINGER_GRPC_TLS_KEY", "grpc.tls_key"),
    ("HARBINGER_ENGINE_TICK", "engine.tick"),
    ("HARBINGER_ENGINE_MAX_LIVE_SHADOWS", "engine.max_live_shadows"),
    ("HARBINGER_ENGINE_ACTUATOR", "engine.actuator"),
    ("HARBINGER_AUTH_TOKEN", "auth.token"),
    ("HARBINGER_AUTH_TOKEN_FILE", "auth.token_file"),
];

/// Sets a dotted key in a TOML table, creating sections on the way.
fn set_path(table: &mut toml::Table, dotted: &str, value: toml::Value) {
    let mut parts = dotted.split('.').peekable();
    let mut t = table;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            t.insert(p.to_string(), value);
            return;
        }
        let entry = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(next) => t = next,
            _ => return,
        }
    }
}

/// Interprets a string from the environment or a flag: integers and booleans as such,
/// everything else as a string.
fn scalar(s: &str) -> toml::Value {
    if let Ok(i) = s.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = s.parse::<f64>() {
        return toml::Value::Float(f);
    }
    match s {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(s.to_string()),
    }
}

fn duration(field: &'static str, s: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s.trim()).map_err(|e| ConfigError::Invalid {
        field,
        reason: format!("{s:?} is not a duration ({e}); use e.g. \"500ms\", \"1s\", \"6h\", \"30days\""),
    })
}

fn socket_addr(field: &'static str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse::<SocketAddr>()
        .map_err(|e| ConfigError::Invalid { field, reason: format!("{s:?} is not an address like 127.0.0.1:8080 ({e})") })
}

/// The bearer token from `auth.token` or the first line of `auth.token_file`.
fn auth_token(raw: &RawAuth) -> Result<Option<Secret>, ConfigError> {
    let (field, token) = match (&raw.token, &raw.token_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                field: "auth.token_file",
                reason: "set either auth.token or auth.token_file, not both".into(),
            });
        }
        (None, None) => return Ok(None),
        (Some(t), None) => ("auth.token", t.trim().to_string()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Invalid { field: "auth.token_file", reason: format!("cannot read {}: {e}", path.display()) })?;
            ("auth.token_file", text.lines().next().unwrap_or("").trim().to_string())
        }
    };
    if token.is_empty() {
        return Err(ConfigError::Invalid { field, reason: "the token is empty".into() });
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::Invalid {
            field,
            reason: "the token must be printable ASCII without spaces (it travels in a header)".into(),
        });
    }
    Ok(Some(Secret(token)))
}

/// The table of a config file's text, checked on its own first so its errors name it.
fn file_table(origin: &str, text: &str) -> Result<toml::Table, ConfigError> {
    let table = text.parse::<toml::Table>().map_err(|e| ConfigError::Parse { origin: origin.into(), message: e.to_string() })?;
    RawConfig::deserialize(toml::Value::Table(table.clone()))
        .map_err(|e| ConfigError::Parse { origin: origin.into(), message: e.to_string() })?;
    Ok(table)
}

fn positive(field: &'static str, v: u64) -> Result<u64, ConfigError> {
    if v == 0 {
        return Err(ConfigError::Invalid { field, reason: "must be greater than 0".into() });
    }
    Ok(v)
}

impl Config {
    /// Loads the configuration: defaults, then `file` (if any), then environment
    /// variables from `env`, then `overrides` (dotted key, value) from flags.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or field.
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>, overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
                file_table(&path.display().to_string(), &text)?
            }
            None => toml::Table::new(),
        };
        for (var, key) in ENV_KEYS {
            if let Some(v) = env(var) {
                set_path(&mut table, key, scalar(&v));
            }
        }
        for (key, v) in overrides {
            set_path(&mut table, key, scalar(v));
        }
        let raw = RawConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Parse { origin: "environment and flags".into(), message: e.to_string() })?;
        Self::from_raw(raw)
    }

    /// The defaults, then the TOML `text` of a config file (no environment variables or
    /// flags); `origin` names the text in errors, as the file path does for [`Config::load`].
    ///
    /// # Errors
    /// [`ConfigError`] naming `origin` or the field.
    pub fn from_toml(origin: &str, text: &str) -> Result<Self, ConfigError> {
        let table = file_table(origin, text)?;
        let raw = RawConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Parse { origin: origin.into(), message: e.to_string() })?;
        Self::from_raw(raw)
    }

    /// The defaults alone.
    pub fn defaults() -> Self {
        // The defaults are constants checked by `defaults_are_valid` below.
        Self::from_raw(RawConfig::default()).unwrap_or_else(|e| unreachable!("built-in defaults are valid: {e}"))
    }

    /// Checks a raw configuration and fills in defaults.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the field.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let addr_s = raw.http.addr.unwrap_or_else(|| "127.0.0.1:8080".into());
        let addr = addr_s.parse::<SocketAddr>().map_err(|e| ConfigError::Invalid {
            field: "http.addr",
            reason: format!("{addr_s:?} is not an address like 127.0.0.1:8080 ({e})"),
        })?;
        let max_body = positive("http.max_body_bytes", raw.http.max_body_bytes.unwrap_or(16 << 20))?;
        let retention = match raw.store.retention.as_deref().map(str::trim) {
            None => Some(Duration::from_secs(30 * 86_400)),
            Some("forever") => None,
            Some(s) => {
                let d = duration("store.retention", s)?;
                if d.is_zero() {
                    return Err(ConfigError::Invalid { field: "store.retention", reason: "must be positive, or \"forever\"".into() });
                }
                Some(d)
            }
        };
        let max_future = match raw.store.max_future.as_deref().map(str::trim) {
            None => Some(Duration::from_secs(600)),
            Some("off") => None,
            Some(s) => Some(duration("store.max_future", s)?),
        };
        let key_bytes = |field: &'static str, v: Option<u64>, default: u64| -> Result<usize, ConfigError> {
            let n = positive(field, v.unwrap_or(default))?;
            if n > u64::from(u16::MAX) {
                return Err(ConfigError::Invalid { field, reason: format!("{n} is above 65535, the longest name a segment records") });
            }
            Ok(n as usize)
        };
        let max_host_bytes = key_bytes("store.max_host_bytes", raw.store.max_host_bytes, 512)?;
        let max_metric_bytes = key_bytes("store.max_metric_bytes", raw.store.max_metric_bytes, 4096)?;
        let sync_interval = duration("store.sync_interval", raw.store.sync_interval.as_deref().unwrap_or("1s"))?;
        let hot_window = duration("store.hot_window", raw.store.hot_window.as_deref().unwrap_or("6h"))?;
        if hot_window.is_zero() {
            return Err(ConfigError::Invalid { field: "store.hot_window", reason: "must be positive".into() });
        }
        let format = match raw.log.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Invalid { field: "log.format", reason: format!("{other:?} is not one of \"text\", \"json\"") });
            }
        };
        let segment_bytes = positive("store.segment_bytes", raw.store.segment_bytes.unwrap_or(64 << 20))?;
        if segment_bytes < 4096 {
            return Err(ConfigError::Invalid { field: "store.segment_bytes", reason: "must be at least 4096".into() });
        }
        let unit = |field: &'static str, v: Option<f64>| -> Result<Option<f64>, ConfigError> {
            match v {
                Some(x) if !(x > 0.0 && x < 1.0) => {
                    Err(ConfigError::Invalid { field, reason: format!("{x} is not strictly between 0 and 1") })
                }
                other => Ok(other),
            }
        };
        let alert_threshold = unit("model.alert_threshold", raw.model.alert_threshold)?;
        let clear_threshold = unit("model.clear_threshold", raw.model.clear_threshold)?;
        if let (Some(a), Some(c)) = (alert_threshold, clear_threshold)
            && c > a
        {
            return Err(ConfigError::Invalid {
                field: "model.clear_threshold",
                reason: format!("{c} is above model.alert_threshold {a}; hysteresis needs clear <= alert"),
            });
        }
        let grpc_addr = socket_addr("grpc.addr", raw.grpc.addr.as_deref().unwrap_or("127.0.0.1:50051"))?;
        let max_hosts = positive("grpc.max_hosts_per_request", raw.grpc.max_hosts_per_request.unwrap_or(1_000))?;
        let max_message = positive("grpc.max_message_bytes", raw.grpc.max_message_bytes.unwrap_or(4 << 20))?;
        let tls = match (raw.grpc.tls_cert, raw.grpc.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    field: "grpc.tls_key",
                    reason: "grpc.tls_cert is set, so the key is needed too".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "grpc.tls_cert",
                    reason: "grpc.tls_key is set, so the certificate is needed too".into(),
                });
            }
        };
        let token = auth_token(&raw.auth)?;
        let engine = engine_config(&raw.engine)?;
        let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("./harbinger-data"));
        let snapshots = SnapshotsConfig {
            dir: raw.snapshots.dir.unwrap_or_else(|| data_dir.join("snapshots")),
            replica_dir: raw.snapshots.replica_dir,
            ttl: match raw.snapshots.ttl.as_deref().map(str::trim) {
                Some("never") => None,
                other => Some(duration("snapshots.ttl", other.unwrap_or("30days"))?),
            },
            max_chain: raw.snapshots.max_chain.unwrap_or(8),
            profiles: raw.snapshots.profiles,
        };
        let w = &raw.watchdog;
        let watchdog = WatchdogConfig {
            enabled: w.enabled.unwrap_or(true),
            interval: duration("watchdog.interval", w.interval.as_deref().unwrap_or("200ms"))?,
            timeout: duration("watchdog.timeout", w.timeout.as_deref().unwrap_or("150ms"))?,
            fall: w.fall.unwrap_or(2),
            window: w.window.unwrap_or(3),
        };
        if watchdog.fall == 0 || watchdog.fall > watchdog.window {
            return Err(ConfigError::Invalid {
                field: "watchdog.fall",
                reason: format!("{} must be at least 1 and at most watchdog.window ({})", watchdog.fall, watchdog.window),
            });
        }
        if watchdog.interval < Duration::from_millis(10) {
            return Err(ConfigError::Invalid { field: "watchdog.interval", reason: "must be at least 10ms".into() });
        }
        for (field, d) in [("http.header_timeout", &raw.http.header_timeout), ("http.body_timeout", &raw.http.body_timeout)] {
            if let Some(d) = d
                && duration(field, d)? < Duration::from_millis(100)
            {
                return Err(ConfigError::Invalid { field, reason: format!("{d:?} is too short: at least 100ms") });
            }
        }
        if raw.auth.protect_reads == Some(true) && raw.auth.token.is_none() && raw.auth.token_file.is_none() {
            return Err(ConfigError::Invalid {
                field: "auth.protect_reads",
                reason: "needs a token (auth.token or auth.token_file)".into(),
            });
        }
        let change = ChangeConfig {
            parallelism: raw.change.parallelism.unwrap_or(4),
            risk_threshold: raw.change.risk_threshold.unwrap_or(0.5),
            alert_webhook: raw.change.alert_webhook.clone(),
            watch_dir: raw.change.watch_dir.clone(),
            watch_every: duration("change.watch_every", raw.change.watch_every.as_deref().unwrap_or("2s"))?,
            monitor_for: duration("change.monitor_for", raw.change.monitor_for.as_deref().unwrap_or("60s"))?,
            monitor_every: duration("change.monitor_every", raw.change.monitor_every.as_deref().unwrap_or("5s"))?,
        };
        if change.monitor_for > Duration::from_secs(86_400) {
            return Err(ConfigError::Invalid { field: "change.monitor_for", reason: "at most 24h".into() });
        }
        if change.watch_every.is_zero() || change.monitor_every.is_zero() {
            let field = if change.watch_every.is_zero() { "change.watch_every" } else { "change.monitor_every" };
            return Err(ConfigError::Invalid { field, reason: "must be above zero".into() });
        }
        if change.parallelism == 0 {
            return Err(ConfigError::Invalid { field: "change.parallelism", reason: "must be at least 1".into() });
        }
        if !(0.0..=1.0).contains(&change.risk_threshold) {
            return Err(ConfigError::Invalid {
                field: "change.risk_threshold",
                reason: format!("{} is not in [0, 1]", change.risk_threshold),
            });
        }
        if let Some(u) = &change.alert_webhook
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(ConfigError::Invalid { field: "change.alert_webhook", reason: format!("{u:?} is not an http:// or https:// URL") });
        }
        if engine.actuator == ActuatorKind::Chain && raw.actuators.is_empty() {
            return Err(ConfigError::Invalid {
                field: "engine.actuator",
                reason: "\"chain\" needs at least one [[actuators]] table".into(),
            });
        }
        Ok(Self {
            engine,
            snapshots,
            watchdog,
            change,
            actuators: raw.actuators,
            grpc: GrpcConfig {
                addr: grpc_addr,
                max_hosts_per_request: usize::try_from(max_hosts).unwrap_or(usize::MAX),
                max_message_bytes: usize::try_from(max_message).unwrap_or(usize::MAX),
                tls,
            },
            auth: AuthConfig { protect_reads: raw.auth.protect_reads.unwrap_or(false), token },
            model: ModelConfig {
                dir: raw.model.dir.unwrap_or_else(|| PathBuf::from("models/default")),
                registry: raw.model.registry.unwrap_or_else(|| PathBuf::from("models/registry")),
                alert_threshold,
                clear_threshold,
            },
            data_dir,
            http: HttpConfig {
                addr,
                max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
                strict_hosts: raw.http.strict_hosts.unwrap_or(false),
                header_timeout: duration("http.header_timeout", raw.http.header_timeout.as_deref().unwrap_or("10s"))?,
                body_timeout: duration("http.body_timeout", raw.http.body_timeout.as_deref().unwrap_or("30s"))?,
                shutdown_timeout: duration("http.shutdown_timeout", raw.http.shutdown_timeout.as_deref().unwrap_or("10s"))?,
            },
            store: StoreConfig {
                retention,
                max_future,
                max_host_bytes,
                max_metric_bytes,
                sync_interval,
                hot_window,
                hot_max_points: positive("store.hot_max_points", raw.store.hot_max_points.unwrap_or(1_440))? as usize,
                max_series: positive("store.max_series", raw.store.max_series.unwrap_or(1_000_000))? as usize,
                segment_bytes,
            },
            log: LogConfig { format, level: raw.log.level.unwrap_or_else(|| "info".into()) },
        })
    }
}

fn engine_config(raw: &RawEngine) -> Result<EngineConfig, ConfigError> {
    let share = |field: &'static str, v: Option<f64>, default: f64, lo_open: bool| -> Result<f64, ConfigError> {
        let x = v.unwrap_or(default);
        let ok = x.is_finite() && if lo_open { x > 0.0 && x <= 1.0 } else { (0.0..1.0).contains(&x) };
        if ok {
            Ok(x)
        } else {
            let range = if lo_open { "in (0, 1]" } else { "in [0, 1)" };
            Err(ConfigError::Invalid { field, reason: format!("{x} is not {range}") })
        }
    };
    let tick = duration("engine.tick", raw.tick.as_deref().unwrap_or("30s"))?;
    if tick < Duration::from_millis(100) {
        return Err(ConfigError::Invalid { field: "engine.tick", reason: "must be at least 100ms".into() });
    }
    let min_criticality = raw.min_criticality.unwrap_or(2);
    if min_criticality > 3 {
        return Err(ConfigError::Invalid { field: "engine.min_criticality", reason: format!("{min_criticality} is outside 0..=3") });
    }
    let shadow_ttl = match raw.shadow_ttl.as_deref().map(str::trim) {
        Some("never") => None,
        other => Some(duration("engine.shadow_ttl", other.unwrap_or("7days"))?),
    };
    let history = match raw.history.as_deref().map(str::trim) {
        Some("never") => None,
        other => Some(duration("engine.history", other.unwrap_or("30days"))?),
    };
    let actuator = match raw.actuator.as_deref().unwrap_or("log") {
        "log" => ActuatorKind::Log,
        "chain" => ActuatorKind::Chain,
        other => {
            return Err(ConfigError::Invalid { field: "engine.actuator", reason: format!("{other:?} is not one of \"log\", \"chain\"") });
        }
    };
    Ok(EngineConfig {
        tick,
        max_live_shadows: positive("engine.max_live_shadows", raw.max_live_shadows.unwrap_or(64))? as usize,
        host_reserve: share("engine.host_reserve", raw.host_reserve, 0.2, false)?,
        critical_probability: share("engine.critical_probability", raw.critical_probability, 0.9, true)?,
        min_criticality,
        retire_grace: duration("engine.retire_grace", raw.retire_grace.as_deref().unwrap_or("30m"))?,
        idle: duration("engine.idle", raw.idle.as_deref().unwrap_or("24h"))?,
        shadow_ttl,
        history,
        risk_ceiling: share("engine.risk_ceiling", raw.risk_ceiling, 0.5, true)?,
        actuator,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::defaults();
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./harbinger-data"));
        assert_eq!(c.store.sync_interval, Duration::from_secs(1));
        assert_eq!(c.store.retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!((c.model.dir.as_path(), c.model.registry.as_path()), (Path::new("models/default"), Path::new("models/registry")));
    }

    #[test]
    fn the_model_registry_is_set_by_file_env_and_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("h.toml");
        std::fs::write(&f, "[model]\nregistry = \"/srv/models\"\ndir = \"/srv/models/failure\"\n").expect("write");
        let c = Config::load(Some(&f), no_env, &[]).expect("valid");
        assert_eq!((c.model.registry.as_path(), c.model.dir.as_path()), (Path::new("/srv/models"), Path::new("/srv/models/failure")));
        let env = |k: &str| (k == "HARBINGER_MODEL_REGISTRY").then(|| "/from/env".to_string());
        assert_eq!(Config::load(Some(&f), env, &[]).expect("valid").model.registry, PathBuf::from("/from/env"));
        let c = Config::load(Some(&f), env, &[("model.registry", "/from/flag".into())]).expect("valid");
        assert_eq!(c.model.registry, PathBuf::from("/from/flag"));
        std::fs::write(&f, "[model]\nregistri = \"/x\"\n").expect("write");
        let e = Config::load(Some(&f), no_env, &[]).expect_err("misspelt key");
        assert!(e.to_string().contains("registri"), "{e}");
    }

    #[test]
    fn protect_reads_needs_a_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("h.toml");
        std::fs::write(&f, "[auth]\nprotect_reads = true\n").expect("write");
        let e = Config::load(Some(&f), no_env, &[]).expect_err("no token").to_string();
        assert!(e.contains("auth.protect_reads") && e.contains("needs a token"), "{e}");
        std::fs::write(&f, "[auth]\nprotect_reads = true\ntoken = \"abcdefghijkl\"\n").expect("write");
        assert!(Config::load(Some(&f), no_env, &[]).expect("valid").auth.protect_reads);
    }

    #[test]
    fn the_change_section_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("h.toml");
        let d = Config::defaults().change;
        assert_eq!((d.parallelism, d.risk_threshold, d.alert_webhook), (4, 0.5, None));
        std::fs::write(&f, "[change]\nparallelism = 2\nrisk_threshold = 0.3\nalert_webhook = \"http://127.0.0.1:9/a\"\n").expect("write");
        let c = Config::load(Some(&f), no_env, &[]).expect("valid").change;
        assert_eq!((c.parallelism, c.risk_threshold, c.alert_webhook.as_deref()), (2, 0.3, Some("http://127.0.0.1:9/a")));
        // A submitted change may go unwatched (monitor_for 0s); the intervals must be above zero.
        std::fs::write(&f, "[change]\nwatch_every = \"100ms\"\nmonitor_for = \"0s\"\nmonitor_every = \"250ms\"\n").expect("write");
        let c = Config::load(Some(&f), no_env, &[]).expect("valid").change;
        assert_eq!(
            (c.watch_every, c.monitor_for, c.monitor_every),
            (Duration::from_millis(100), Duration::ZERO, Duration::from_millis(250))
        );
        for (bad, field) in [
            ("parallelism = 0", "change.parallelism"),
            ("risk_threshold = 1.5", "change.risk_threshold"),
            ("alert_webhook = \"ftp://x\"", "change.alert_webhook"),
            ("paralellism = 2", "paralellism"),
            ("watch_every = \"0s\"", "change.watch_every"),
            ("monitor_for = \"soon\"", "change.monitor_for"),
            ("monitor_for = \"1000years\"", "change.monitor_for"),
            ("monitor_every = \"0s\"", "change.monitor_every"),
        ] {
            std::fs::write(&f, format!("[change]\n{bad}\n")).expect("write");
            let e = Config::load(Some(&f), no_env, &[]).expect_err(bad).to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn the_example_config_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../harbinger.example.toml");
        let c = Config::load(Some(&path), no_env, &[]).expect("example config is valid");
        assert_eq!(c, Config::defaults(), "the example documents the defaults");
    }

    #[test]
    fn the_chain_actuator_needs_actuators_tables_kept_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("h.toml");
        std::fs::write(&f, "[engine]\nactuator = \"chain\"\n").expect("write");
        let e = Config::load(Some(&f), no_env, &[]).expect_err("no tables");
        assert!(e.to_string().contains("needs at least one [[actuators]] table"), "{e}");
        std::fs::write(
            &f,
            "[engine]\nactuator = \"chain\"\n[[actuators]]\nkind = \"redis\"\n[[actuators]]\nkind = \"haproxy\"\napi = \"/s\"\n",
        )
        .expect("write");
        let c = Config::load(Some(&f), no_env, &[]).expect("valid");
        assert_eq!(c.engine.actuator, ActuatorKind::Chain);
        let kinds: Vec<_> = c.actuators.iter().filter_map(|t| t.get("kind").and_then(toml::Value::as_str)).collect();
        assert_eq!(kinds, ["redis", "haproxy"]);
        let e = Config::load(None, no_env, &[("engine.actuator", "magic".into())]).expect_err("unknown kind");
        assert!(e.to_string().contains("\"magic\" is not one of \"log\", \"chain\""), "{e}");
    }

    #[test]
    fn unknown_harbinger_variables_are_named_with_the_closest_known_one() {
        let names = [
            "HARBINGER_AUTH_TOKN",
            "HARBINGER_AUTH_TOKEN",
            "HARBINGER_CONFIG",
            "HARBINGER_HOOK_SECRET",
            "PATH",
            "HARBINGER_XYZZY_PLUGH_QUUX",
        ];
        let got = unknown_env_vars(names.iter().map(|n| (*n).to_string()), &["HARBINGER_HOOK_SECRET"]);
        assert_eq!(
            got,
            [("HARBINGER_AUTH_TOKN".to_string(), Some("HARBINGER_AUTH_TOKEN")), ("HARBINGER_XYZZY_PLUGH_QUUX".to_string(), None)]
        );
    }

    #[test]
    fn precedence_is_file_then_env_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("h.toml");
        std::fs::write(&f, "data_dir = \"/from/file\"\n[store]\nsync_interval = \"5s\"\nhot_max_points = 10\n").expect("write");
        let env = |k: &str| match k {
            "HARBINGER_STORE_SYNC_INTERVAL" => Some("250ms".to_string()),
            "HARBINGER_HTTP_ADDR" => Some("127.0.0.1:9999".to_string()),
            _ => None,
        };
        let c = Config::load(Some(&f), env, &[("http.addr", "127.0.0.1:7000".into())]).expect("valid");
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.store.sync_interval, Duration::from_millis(250), "env beats file");
        assert_eq!(c.store.hot_max_points, 10);
        assert_eq!(c.http.addr.port(), 7000, "flags beat env");
    }

    #[test]
    fn errors_name_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("h.toml");
        std::fs::write(&f, "[store]\nretenshun = \"1d\"\n").expect("write");
        let e = Config::load(Some(&f), no_env, &[]).expect_err("unknown key");
        let msg = e.to_string();
        assert!(msg.contains("h.toml") && msg.contains("retenshun"), "{msg}");

        let e = Config::load(None, no_env, &[("store.sync_interval", "often".into())]).expect_err("bad duration");
        assert!(e.to_string().starts_with("invalid `store.sync_interval`: \"often\" is not a duration"), "{e}");

        let env = |k: &str| (k == "HARBINGER_HTTP_ADDR").then(|| "localhost".to_string());
        let e = Config::load(None, env, &[]).expect_err("bad addr");
        assert!(e.to_string().starts_with("invalid `http.addr`"), "{e}");

        let e = Config::load(None, no_env, &[("log.format", "xml".into())]).expect_err("bad format");
        assert!(e.to_string().contains("log.format"), "{e}");
        let e = Config::load(None, no_env, &[("http.max_body_bytes", "0".into())]).expect_err("zero");
        assert_eq!(e.to_string(), "invalid `http.max_body_bytes`: must be greater than 0");
        let e = Config::load(None, no_env, &[("store.hot_max_points", "many".into())]).expect_err("type");
        assert!(e.to_string().contains("hot_max_points"), "{e}");
    }

    #[test]
    fn grpc_and_auth_settings_are_checked() {
        let c = Config::defaults();
        assert_eq!(c.grpc.addr.to_string(), "127.0.0.1:50051");
        assert_eq!((c.grpc.max_hosts_per_request, c.grpc.max_message_bytes), (1_000, 4 << 20));
        assert_eq!((c.grpc.tls.clone(), c.auth.token.clone()), (None, None));

        let env = |k: &str| (k == "HARBINGER_AUTH_TOKEN").then(|| "12345".to_string());
        let c = Config::load(None, env, &[("grpc.addr", "0.0.0.0:6000".into())]).expect("valid");
        assert_eq!(c.auth.token.as_ref().map(Secret::expose), Some("12345"), "numeric-looking tokens stay text");
        assert_eq!(format!("{:?}", c.auth), "AuthConfig { token: Some(<redacted>), protect_reads: false }", "never printed");
        assert_eq!(c.grpc.addr.port(), 6000);

        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("token");
        std::fs::write(&f, "s3cret\n").expect("write");
        let c = Config::load(None, no_env, &[("auth.token_file", f.display().to_string())]).expect("valid");
        assert_eq!(c.auth.token.as_ref().map(Secret::expose), Some("s3cret"));

        let e = Config::load(None, no_env, &[("auth.token_file", "/nonexistent/t".into())]).expect_err("missing file");
        assert!(e.to_string().starts_with("invalid `auth.token_file`: cannot read /nonexistent/t"), "{e}");
        let e = Config::load(None, no_env, &[("auth.token", "two words".into())]).expect_err("space");
        assert!(e.to_string().starts_with("invalid `auth.token`"), "{e}");
        let e = Config::load(None, no_env, &[("auth.token", "a".into()), ("auth.token_file", "/t".into())]).expect_err("both");
        assert!(e.to_string().contains("not both"), "{e}");
        let e = Config::load(None, no_env, &[("grpc.tls_cert", "/c.pem".into())]).expect_err("no key");
        assert!(e.to_string().starts_with("invalid `grpc.tls_key`"), "{e}");
        let e = Config::load(None, no_env, &[("grpc.max_hosts_per_request", "0".into())]).expect_err("zero");
        assert_eq!(e.to_string(), "invalid `grpc.max_hosts_per_request`: must be greater than 0");
        let e = Config::load(None, no_env, &[("grpc.addr", "nowhere".into())]).expect_err("addr");
        assert!(e.to_string().starts_with("invalid `grpc.addr`"), "{e}");
    }

    #[test]
    fn engine_history_is_kept_30_days_never_or_as_long_as_set() {
        let c = Config::load(None, no_env, &[]).expect("defaults");
        assert_eq!(c.engine.history, Some(Duration::from_secs(30 * 86_400)));
        let c = Config::load(None, no_env, &[("engine.history", "never".into())]).expect("never");
        assert_eq!(c.engine.history, None);
        let c = Config::load(None, no_env, &[("engine.history", "6h".into())]).expect("6h");
        assert_eq!(c.engine.history, Some(Duration::from_secs(6 * 3_600)));
        let e = Config::load(None, no_env, &[("engine.history", "a while".into())]).expect_err("bad");
        assert!(e.to_string().starts_with("invalid `engine.history`: \"a while\" is not a duration"), "{e}");
    }

    #[test]
    fn retention_forever_disables_expiry() {
        let c = Config::load(None, no_env, &[("store.retention", "forever".into())]).expect("valid");
        assert_eq!(c.store.retention, None);
        let c = Config::load(None, no_env, &[("store.sync_interval", "0s".into())]).expect("valid");
        assert!(c.store.sync_interval.is_zero());
    }
}
