//! Builds a [`Chain`] from the `[[actuators]]` tables of the configuration: a closed set
//! of kinds (`log`, `exec`, `webhook`, `process`, `haproxy`, `redis`), each with its own
//! keys, wrapped in the same layers (dry run, timeout, retry, rate limit, circuit
//! breaker) from keys every kind shares.
//!
//! ```toml
//! [engine]
//! actuator = "chain"
//!
//! [[actuators]]
//! kind = "redis"              # the actuator
//! resource_kinds = ["redis"]  # resources it acts on (default: all)
//! retries = 2                 # attempts in all (default 1: no retry)
//! circuit_failures = 5        # actions failed in a row that open the circuit (0: never)
//!
//! [[actuators]]
//! kind = "haproxy"
//! api = "unix:/run/haproxy/admin.sock"
//! ```
//!
//! Every error names the table (`actuators[1]`) and the key.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use harbinger_engine::{Actuator, LogActuator};
use serde::Deserialize;

use crate::chain::{Chain, Step};
use crate::exec::{ExecActuator, ExecConfig};
use crate::haproxy::{ApiAddress, HaproxyActuator};
use crate::layers::{CircuitBreaker, CircuitBreakerConfig, CircuitHandle, DryRun, RateLimit, Retry, RetryPolicy, Timeout};
use crate::process::{HealthCheck, ProcessActuator, ProcessConfig};
use crate::redis::{RedisActuator, RedisConfig};
use crate::webhook::{WebhookActuator, WebhookConfig};

/// An `[[actuators]]` table that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("actuators[{index}]{kind}: {reason}")]
pub struct ActuatorConfigError {
    /// Position of the table in the file (0-based, as in `actuators[0]`).
    pub index: usize,
    /// ` (kind "…")` when the kind was read.
    kind: String,
    /// What is wrong, naming the key.
    pub reason: String,
}

/// What the chain was built with, besides the tables.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The service's data directory; `redis` replicas default to `<data_dir>/redis-shadows`.
    pub data_dir: PathBuf,
}

/// A built chain and the circuit breakers in it (to export their state).
#[derive(Debug, Clone)]
pub struct BuiltChain {
    /// The chain, to hand to the engine.
    pub chain: Chain,
    /// One handle per step with a circuit breaker, in order.
    pub circuits: Vec<CircuitHandle>,
}

/// Keys every kind takes (the layers and the kinds of resources).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    kind: String,
    #[serde(default)]
    resource_kinds: Vec<String>,
    #[serde(default)]
    dry_run: bool,
    timeout: Option<String>,
    #[serde(default = "one")]
    retries: u32,
    retry_base: Option<String>,
    retry_max: Option<String>,
    rate_limit: Option<u32>,
    rate_interval: Option<String>,
    #[serde(default = "five")]
    circuit_failures: u32,
    circuit_cooldown: Option<String>,
}

fn one() -> u32 {
    1
}

fn five() -> u32 {
    5
}

const COMMON_KEYS: &[&str] = &[
    "kind",
    "resource_kinds",
    "dry_run",
    "timeout",
    "retries",
    "retry_base",
    "retry_max",
    "rate_limit",
    "rate_interval",
    "circuit_failures",
    "circuit_cooldown",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecKeys {
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    output_limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookKeys {
    url: String,
    /// Name of an environment variable holding the signing secret.
    secret_env: Option<String>,
    /// A file holding the signing secret (trailing newline dropped).
    secret_file: Option<PathBuf>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessKeys {
    command: Vec<String>,
    port: Option<u16>,
    #[serde(default = "tcp")]
    health: String,
    health_path: Option<String>,
    health_timeout: Option<String>,
    stop_timeout: Option<String>,
    #[serde(default)]
    host_addrs: BTreeMap<String, String>,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HaproxyKeys {
    api: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisKeys {
    data_dir: Option<PathBuf>,
    redis_server: Option<PathBuf>,
    #[serde(default)]
    host_addrs: BTreeMap<String, String>,
    max_lag_bytes: Option<u64>,
    port: Option<u16>,
    #[serde(default)]
    wrapper: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
}

/// The kinds `kind` may name.
pub const KINDS: &[&str] = &["log", "exec", "webhook", "process", "haproxy", "redis"];

/// Builds the chain of `tables`, in order.
///
/// # Errors
/// The first table that cannot be built, naming it and the key.
pub fn build_chain(tables: &[toml::Table], ctx: &BuildContext) -> Result<BuiltChain, ActuatorConfigError> {
    let mut steps = Vec::with_capacity(tables.len());
    let mut circuits = Vec::new();
    for (index, table) in tables.iter().enumerate() {
        let err = |kind: Option<&str>, reason: String| ActuatorConfigError {
            index,
            kind: kind.map(|k| format!(" (kind {k:?})")).unwrap_or_default(),
            reason,
        };
        let (common, rest): (toml::Table, toml::Table) = table.clone().into_iter().partition(|(k, _)| COMMON_KEYS.contains(&k.as_str()));
        let common: Common = toml::Value::Table(common).try_into().map_err(|e: toml::de::Error| err(None, e.message().to_string()))?;
        let kind = common.kind.as_str();
        let duration = |key: &str, value: &Option<String>, default: Duration| -> Result<Duration, ActuatorConfigError> {
            match value {
                None => Ok(default),
                Some(s) => humantime::parse_duration(s.trim()).map_err(|e| err(Some(kind), format!("{key} = {s:?}: {e}"))),
            }
        };
        let timeout = duration("timeout", &common.timeout, Duration::ZERO)?;
        let rest = toml::Value::Table(rest);
        let keys = |e: toml::de::Error| err(Some(kind), e.message().to_string());
        // The actuator itself; `own_timeout`: it bounds its own work with `timeout`
        // (exec kills the process group, webhook ends the request, haproxy and redis bound
        // each command and wait), so no layer is added.
        let (inner, own_timeout): (Arc<dyn Actuator>, bool) = match kind {
            "log" => {
                let _: Nothing = rest.try_into().map_err(keys)?;
                (Arc::new(LogActuator), false)
            }
            "exec" => {
                let k: ExecKeys = rest.try_into().map_err(keys)?;
                if k.program.trim().is_empty() {
                    return Err(err(Some(kind), "program is empty".into()));
                }
                let mut cfg = ExecConfig::new(k.program, k.args);
                if !timeout.is_zero() {
                    cfg = cfg.timeout(timeout);
                }
                for (name, value) in k.env {
                    cfg = cfg.env(name, value);
                }
                if let Some(n) = k.output_limit {
                    cfg = cfg.output_limit(n);
                }
                (Arc::new(ExecActuator::new(cfg)), true)
            }
            "webhook" => {
                let k: WebhookKeys = rest.try_into().map_err(keys)?;
                let mut cfg = WebhookConfig::new(k.url);
                if !timeout.is_zero() {
                    cfg = cfg.timeout(timeout);
                }
                match (k.secret_env, k.secret_file) {
                    (Some(_), Some(_)) => return Err(err(Some(kind), "give secret_env or secret_file, not both".into())),
                    (Some(var), None) => {
                        let secret = std::env::var(&var)
                            .map_err(|_| err(Some(kind), format!("secret_env: environment variable {var} is not set")))?;
                        cfg = cfg.secret(secret.into_bytes());
                    }
                    (None, Some(path)) => {
                        let text =
                            std::fs::read_to_string(&path).map_err(|e| err(Some(kind), format!("secret_file {}: {e}", path.display())))?;
                        cfg = cfg.secret(text.trim_end_matches(['\r', '\n']).as_bytes().to_vec());
                    }
                    (None, None) => {}
                }
                for (name, value) in k.headers {
                    cfg = cfg.header(name, value);
                }
                (Arc::new(WebhookActuator::new(cfg).map_err(|e| err(Some(kind), e.to_string()))?), true)
            }
            "process" => {
                let k: ProcessKeys = rest.try_into().map_err(keys)?;
                let health = match (k.health.as_str(), k.health_path) {
                    ("tcp", None) => HealthCheck::Tcp,
                    ("tcp", Some(_)) => return Err(err(Some(kind), "health_path needs health = \"http\"".into())),
                    ("http", path) => HealthCheck::Http { path: path.unwrap_or_else(|| "/".into()) },
                    (other, _) => return Err(err(Some(kind), format!("health = {other:?} is not one of \"tcp\", \"http\""))),
                };
                let mut cfg = ProcessConfig::new(k.command).health(health);
                if let Some(port) = k.port {
                    cfg = cfg.port(port);
                }
                if k.health_timeout.is_some() {
                    cfg = cfg.health_timeout(duration("health_timeout", &k.health_timeout, Duration::ZERO)?);
                }
                if k.stop_timeout.is_some() {
                    cfg = cfg.stop_timeout(duration("stop_timeout", &k.stop_timeout, Duration::ZERO)?);
                }
                for (host, addr) in k.host_addrs {
                    cfg = cfg.host_addr(host, addr);
                }
                (Arc::new(ProcessActuator::new(cfg).map_err(|e| err(Some(kind), e.to_string()))?), false)
            }
            "haproxy" => {
                let k: HaproxyKeys = rest.try_into().map_err(keys)?;
                if k.api.trim().is_empty() {
                    return Err(err(Some(kind), "api is empty".into()));
                }
                let api: ApiAddress = k.api.parse().unwrap_or_else(|never: std::convert::Infallible| match never {});
                let per_command = if timeout.is_zero() { Duration::from_secs(2) } else { timeout };
                (Arc::new(HaproxyActuator::new(api, per_command)), true)
            }
            "redis" => {
                let k: RedisKeys = rest.try_into().map_err(keys)?;
                let mut cfg = RedisConfig::new(k.data_dir.unwrap_or_else(|| default_redis_dir(&ctx.data_dir)));
                if let Some(p) = k.redis_server {
                    cfg.redis_server = p;
                }
                if let Some(n) = k.max_lag_bytes {
                    cfg.max_lag_bytes = n;
                }
                cfg.port = k.port;
                cfg.wrapper = k.wrapper;
                cfg.args = k.args;
                if !timeout.is_zero() {
                    cfg.timeout = timeout;
                }
                for (host, addr) in k.host_addrs {
                    let ip: IpAddr = addr.parse().map_err(|e| err(Some(kind), format!("host_addrs.{host} = {addr:?}: {e}")))?;
                    cfg.host_addrs.insert(host.into(), ip);
                }
                (Arc::new(RedisActuator::new(cfg)), true)
            }
            other => {
                return Err(err(
                    None,
                    format!("kind = {other:?} is not one of {}", KINDS.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")),
                ));
            }
        };
        // Layers, innermost first: dry run, timeout, retry, rate limit, circuit breaker.
        let mut actuator = inner;
        if common.dry_run {
            actuator = Arc::new(DryRun::from_arc(actuator));
        }
        if !timeout.is_zero() && !own_timeout {
            actuator = Arc::new(Timeout::from_arc(actuator, timeout));
        }
        if common.retries == 0 {
            return Err(err(Some(kind), "retries must be at least 1 (the first attempt counts)".into()));
        }
        if common.retries > 1 {
            let defaults = RetryPolicy::default();
            let policy = RetryPolicy {
                attempts: common.retries,
                base: duration("retry_base", &common.retry_base, defaults.base)?,
                max: duration("retry_max", &common.retry_max, defaults.max)?,
            };
            actuator = Arc::new(Retry::from_arc(actuator, policy));
        } else if common.retry_base.is_some() || common.retry_max.is_some() {
            return Err(err(Some(kind), "retry_base and retry_max need retries of 2 or more".into()));
        }
        match (common.rate_limit, &common.rate_interval) {
            (Some(0), _) => return Err(err(Some(kind), "rate_limit must be at least 1".into())),
            (Some(n), interval) => {
                let interval = duration("rate_interval", interval, Duration::from_secs(1))?;
                actuator = Arc::new(RateLimit::from_arc(actuator, n, interval));
            }
            (None, Some(_)) => return Err(err(Some(kind), "rate_interval needs rate_limit".into())),
            (None, None) => {}
        }
        if common.circuit_failures > 0 {
            let cool_down = duration("circuit_cooldown", &common.circuit_cooldown, CircuitBreakerConfig::default().cool_down)?;
            let breaker = CircuitBreaker::from_arc(actuator, CircuitBreakerConfig { failures: common.circuit_failures, cool_down });
            circuits.push(breaker.handle());
            actuator = Arc::new(breaker);
        }
        steps.push(Step { kinds: common.resource_kinds, actuator });
    }
    Ok(BuiltChain { chain: Chain::new(steps), circuits })
}

/// The data directory replicas default under, for messages.
pub fn default_redis_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("redis-shadows")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(text: &str) -> Vec<toml::Table> {
        let doc: toml::Table = text.parse().expect("toml");
        doc.get("actuators")
            .and_then(toml::Value::as_array)
            .expect("actuators")
            .iter()
            .map(|v| v.as_table().expect("table").clone())
            .collect()
    }

    fn ctx() -> BuildContext {
        BuildContext { data_dir: PathBuf::from("/tmp/harbinger-test") }
    }

    #[test]
    fn every_kind_builds_with_its_layers_in_order() {
        let t = tables(
            r#"
            [[actuators]]
            kind = "redis"
            resource_kinds = ["redis"]
            retries = 3
            retry_base = "50ms"
            host_addrs = { b = "127.0.0.2" }
            [[actuators]]
            kind = "haproxy"
            api = "unix:/run/haproxy/admin.sock"
            timeout = "1s"
            circuit_failures = 0
            [[actuators]]
            kind = "process"
            command = ["python3", "-m", "http.server", "{port}"]
            health = "http"
            health_path = "/"
            resource_kinds = ["web"]
            [[actuators]]
            kind = "exec"
            program = "/bin/true"
            timeout = "3s"
            rate_limit = 10
            [[actuators]]
            kind = "webhook"
            url = "http://127.0.0.1:9/hook"
            headers = { Authorization = "Bearer x" }
            [[actuators]]
            kind = "log"
            dry_run = true
            "#,
        );
        let built = build_chain(&t, &ctx()).expect("builds");
        let steps = built.chain.steps();
        assert_eq!(steps.len(), 6);
        let names: Vec<_> = steps.iter().map(|s| s.actuator.name()).collect();
        assert_eq!(names, ["redis", "haproxy", "process", "exec", "webhook", "log"]);
        assert_eq!(steps[0].kinds, ["redis"]);
        assert!(steps[1].kinds.is_empty());
        assert_eq!(built.circuits.len(), 5, "every step but the one with circuit_failures = 0");
        assert!(format!("{:?}", steps[0].actuator).contains("Retry"), "{:?}", steps[0].actuator);
        assert!(!format!("{:?}", steps[1].actuator).contains("Timeout"), "haproxy bounds each command itself");
        assert!(!format!("{:?}", steps[3].actuator).contains("Timeout"), "exec bounds itself");
        assert!(format!("{:?}", steps[3].actuator).contains("RateLimit"));
        assert!(format!("{:?}", steps[5].actuator).contains("DryRun"));
    }

    #[test]
    fn errors_name_the_table_the_kind_and_the_key() {
        let cases = [
            ("[[actuators]]\nkind = \"ftp\"", "actuators[0]: kind = \"ftp\" is not one of \"log\""),
            ("[[actuators]]\nkind = \"log\"\nport = 3", "actuators[0] (kind \"log\"): unknown field `port`"),
            ("[[actuators]]\nkind = \"log\"\n[[actuators]]\nkind = \"haproxy\"", "actuators[1] (kind \"haproxy\"): missing field `api`"),
            ("[[actuators]]\nkind = \"exec\"\nprogram = \"x\"\ntimeout = \"soon\"", "actuators[0] (kind \"exec\"): timeout = \"soon\""),
            ("[[actuators]]\nkind = \"process\"\ncommand = [\"x\"]\nhealth = \"udp\"", "health = \"udp\" is not one of"),
            ("[[actuators]]\nkind = \"redis\"\nhost_addrs = { b = \"nowhere\" }", "host_addrs.b = \"nowhere\""),
            ("[[actuators]]\nkind = \"log\"\nretries = 0", "retries must be at least 1"),
            ("[[actuators]]\nkind = \"log\"\nrate_interval = \"1s\"", "rate_interval needs rate_limit"),
            (
                "[[actuators]]\nkind = \"webhook\"\nurl = \"http://x\"\nsecret_env = \"HARBINGER_TEST_UNSET_SECRET\"",
                "HARBINGER_TEST_UNSET_SECRET is not set",
            ),
            ("[[actuators]]\nresource_kinds = [\"x\"]", "missing field `kind`"),
        ];
        for (text, want) in cases {
            let got = build_chain(&tables(text), &ctx()).expect_err(text).to_string();
            assert!(got.contains(want), "{text}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn redis_replicas_default_under_the_data_dir() {
        assert_eq!(default_redis_dir(Path::new("/d")), PathBuf::from("/d/redis-shadows"));
    }
}
