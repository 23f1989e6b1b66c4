//! Shadow-stack rollouts on live traffic: the controller around the pure state machine
//! of `harbinger_plan::rollout` and the judge of `harbinger_plan::judge`.
//!
//! [`run`] does, for one [`CanaryConfig`] (TOML, read with [`CanaryConfig::parse`]):
//!
//! 1. **Size** the shadow stack with `shadow_scale` (the change's scope and the live
//!    stack's size decide the instances and the first share; the rule and its inputs are
//!    the first event of the record).
//! 2. **Provision** it through the `process` actuator (one process per instance, each on a
//!    port free at that moment, health-checked), and add each instance to the HAProxy
//!    backend through the runtime API (`add server <backend>/<rollout>-<n>`, weight 0).
//! 3. **Split traffic** with server weights: a share `s` gives the shadow instances
//!    `s` and the live servers `100 - s` (× 2.5, spread over the instances).
//! 4. **Sample** HAProxy's own statistics (`show stat`) every `sample_every`: per stack,
//!    the error rate (5xx, connection and response errors over the requests), the mean
//!    response time (HAProxy's `rtime`, weighted by requests) and the throughput
//!    (successful answers per second per unit of traffic share) of that interval.
//! 5. **Judge** every `interval` the samples of the window with the Mann-Whitney U test
//!    per KPI ([`judge`]), and advance the [`Rollout`]; perform its steps: next share,
//!    promotion (old stack retired or kept as standby), or rollback (traffic back on the
//!    live stack first, then the shadow stack removed and stopped, then the alert).
//!
//! Every judgement, with its KPI sample windows, and every event goes into a
//! [`RolloutRecord`] written to `<dir>/<id>.json` (atomically) after each change, which
//! `GET /api/v1/rollouts/{id}`, gRPC `GetRollout` and `harbinger rollout status` read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harbinger_actuate::haproxy::{AdminState, ApiAddress, HaproxyClient, ServerStats};
use harbinger_actuate::process::{HealthCheck, ProcessActuator, ProcessConfig};
use harbinger_actuate::webhook::{WebhookActuator, WebhookConfig};
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_core::{Clock, JournalStatus, ShadowId};
use harbinger_engine::{Actuator, ActuatorRequest};
use harbinger_plan::ActionKind;
use harbinger_plan::judge::{self, Direction, JudgeConfig, KpiSpec};
use harbinger_plan::rollout::{
    AfterPromote, ChangeScope, JudgementRecord, KpiWindow, Rollout, RolloutEvent, RolloutRecord, RolloutSpec, ShadowInstance, Step,
    Verdict, shadow_scale, valid_id,
};
use serde::Deserialize;

/// The KPIs computed from HAProxy's statistics.
pub const HAPROXY_KPIS: [&str; 3] = ["error_rate", "latency_ms", "throughput"];

/// A rollout's configuration, as written in TOML.
///
/// ```toml
/// id = "web-v2"                      # optional: rollout-<time> otherwise
/// scope = "version"                  # config | version | data: sizes the shadow stack
/// alert_webhook = "http://127.0.0.1:9093/hook"   # optional: rollbacks and promotions
///
/// [haproxy]
/// api = "/run/haproxy/admin.sock"    # the runtime API (unix:PATH or HOST:PORT)
/// backend = "be_app"
/// live = ["v1"]                      # the live stack's servers in that backend
///
/// [shadow]
/// command = ["my-service", "--port", "{port}", "--version", "2"]
/// addr = "127.0.0.1"
/// health_path = "/healthz"           # HTTP health check; TCP connect when absent
///
/// [analysis]                         # like an Argo Rollouts AnalysisTemplate
/// steps = [5, 25, 50]                # percent of the traffic to the shadow stack
/// interval = "10s"                   # between judgements
/// count = 3                          # passing judgements in a row per step
/// failure_limit = 0                  # failed judgements tolerated
///
/// [[analysis.kpi]]
/// name = "error_rate"                # error_rate | latency_ms | throughput
/// weight = 2
/// critical = true
/// min_delta = 0.01
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// The rollout's id (letters, digits, `-`, `_`, `.`; at most 64 bytes).
    #[serde(default)]
    pub id: Option<String>,
    /// What the change touches.
    #[serde(default = "default_scope")]
    pub scope: ChangeScope,
    /// Where to POST the rollback and promotion alerts (the webhook actuator).
    #[serde(default)]
    pub alert_webhook: Option<String>,
    /// The traffic switch.
    pub haproxy: HaproxySection,
    /// How a shadow instance is started.
    pub shadow: ShadowSection,
    /// Steps, schedule and KPIs.
    #[serde(default)]
    pub analysis: AnalysisSection,
}

fn default_scope() -> ChangeScope {
    ChangeScope::Version
}

/// `[haproxy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxySection {
    /// The runtime API address.
    pub api: String,
    /// The backend both stacks serve in.
    pub backend: String,
    /// The live stack's servers in it.
    pub live: Vec<String>,
    /// Timeout of one runtime API command. Default `2s`.
    #[serde(default = "default_api_timeout")]
    pub timeout: String,
}

fn default_api_timeout() -> String {
    "2s".into()
}

/// `[shadow]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowSection {
    /// The command of one instance; `{port}` and `{host_addr}` are replaced.
    pub command: Vec<String>,
    /// The address instances listen on and HAProxy reaches them at.
    #[serde(default = "default_addr")]
    pub addr: String,
    /// HTTP health check path; a TCP connect when absent.
    #[serde(default)]
    pub health_path: Option<String>,
    /// Longest wait for an instance to be healthy. Default `10s`.
    #[serde(default = "default_health_timeout")]
    pub health_timeout: String,
    /// Instances of the live stack for the scaling rule; default: the number of live
    /// servers.
    #[serde(default)]
    pub live_instances: Option<u32>,
    /// The live stack's configuration files, copied for the shadow stack with the change.
    #[serde(default)]
    pub config: Vec<ConfigCopy>,
    /// The live stack's data stores: a full stack (scope `data`) gets a replica of each.
    #[serde(default)]
    pub data: Vec<DataCopy>,
}

/// `[[shadow.config]]`: a configuration file of the live stack. The shadow stack gets a
/// copy (`<dir>/<rollout>/<id>.<ext>`, the same format) with `set` applied; `{config:ID}`
/// in the command is its path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigCopy {
    /// Its name in the command's `{config:ID}`.
    pub id: String,
    /// The live file (JSON, YAML or TOML, by its extension).
    pub live: PathBuf,
    /// What the change sets: JSON pointer → value, e.g. `"/server/workers" = 8`.
    #[serde(default)]
    pub set: std::collections::BTreeMap<String, serde_json::Value>,
}

/// `[[shadow.data]]`: a data store of the live stack. For a full stack (scope `data`) the
/// shadow stack gets a Redis replica of it (the `redis` actuator), in sync before any
/// traffic, promoted (`REPLICAOF NO ONE`) when the rollout is, stopped when it is rolled
/// back; `{data:ID}` in the command is the replica's endpoint. For a smaller scope the
/// shadow stack shares the live store: `{data:ID}` is `live`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCopy {
    /// Its name in the command's `{data:ID}`.
    pub id: String,
    /// `redis`.
    #[serde(default = "default_data_kind")]
    pub kind: String,
    /// The live store, `host:port`.
    pub live: String,
}

fn default_data_kind() -> String {
    "redis".into()
}

fn default_addr() -> String {
    "127.0.0.1".into()
}

fn default_health_timeout() -> String {
    "10s".into()
}

/// `[analysis]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSection {
    /// Traffic shares per step (percent).
    #[serde(default = "default_steps")]
    pub steps: Vec<u32>,
    /// Time between judgements.
    #[serde(default = "default_interval")]
    pub interval: String,
    /// Passing judgements in a row per step.
    #[serde(default = "default_count")]
    pub count: u32,
    /// Failed judgements tolerated.
    #[serde(default)]
    pub failure_limit: u32,
    /// Judgements in a row without data tolerated.
    #[serde(default = "default_inconclusive")]
    pub inconclusive_limit: u32,
    /// Time between two samples of HAProxy's statistics.
    #[serde(default = "default_sample_every")]
    pub sample_every: String,
    /// `retire` or `standby`.
    #[serde(default)]
    pub after_promote: AfterPromote,
    /// Significance level of the Mann-Whitney U test.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Score (0..100, weighted share of passing KPIs) a judgement needs.
    #[serde(default = "default_pass_score")]
    pub pass_score: f64,
    /// Samples a stack needs per KPI in a window for the KPI to be judged.
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// The KPIs; default: the three HAProxy KPIs, error rate critical.
    #[serde(default = "default_kpis")]
    pub kpi: Vec<KpiSection>,
    /// A harbinger server (`http://HOST:PORT`) the `harbinger` KPIs are read from
    /// (`GET /api/v1/samples`).
    #[serde(default)]
    pub harbinger_url: Option<String>,
    /// Its bearer token, when it protects reads.
    #[serde(default)]
    pub harbinger_token: Option<String>,
    /// The hosts the live stack's samples are under; default: the `haproxy.live` names.
    #[serde(default)]
    pub live_hosts: Vec<String>,
}

impl Default for AnalysisSection {
    fn default() -> Self {
        AnalysisSection {
            steps: default_steps(),
            interval: default_interval(),
            count: default_count(),
            failure_limit: 0,
            inconclusive_limit: default_inconclusive(),
            sample_every: default_sample_every(),
            after_promote: AfterPromote::Retire,
            alpha: default_alpha(),
            pass_score: default_pass_score(),
            min_samples: default_min_samples(),
            kpi: default_kpis(),
            harbinger_url: None,
            harbinger_token: None,
            live_hosts: Vec::new(),
        }
    }
}

fn default_steps() -> Vec<u32> {
    RolloutSpec::default().steps
}
fn default_interval() -> String {
    "10s".into()
}
fn default_count() -> u32 {
    3
}
fn default_inconclusive() -> u32 {
    2
}
fn default_sample_every() -> String {
    "1s".into()
}
fn default_alpha() -> f64 {
    0.05
}
fn default_pass_score() -> f64 {
    75.0
}
fn default_min_samples() -> usize {
    5
}
fn default_kpis() -> Vec<KpiSection> {
    vec![
        KpiSection {
            name: "error_rate".into(),
            source: None,
            metric: None,
            direction: None,
            weight: 2.0,
            critical: true,
            tolerance: 0.0,
            min_delta: 0.01,
        },
        KpiSection {
            name: "latency_ms".into(),
            source: None,
            metric: None,
            direction: None,
            weight: 1.0,
            critical: false,
            tolerance: 0.2,
            min_delta: 5.0,
        },
        KpiSection {
            name: "throughput".into(),
            source: None,
            metric: None,
            direction: None,
            weight: 1.0,
            critical: false,
            tolerance: 0.2,
            min_delta: 0.0,
        },
    ]
}

/// `[[analysis.kpi]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiSection {
    /// Its name: for the `haproxy` source `error_rate`, `latency_ms` or `throughput`.
    pub name: String,
    /// `haproxy` (default): from HAProxy's statistics; `harbinger`: from the samples the
    /// stacks' hosts send to harbinger (`analysis.harbinger_url`).
    #[serde(default)]
    pub source: Option<String>,
    /// For `harbinger`: the metric (default: the name); the live stack's hosts are
    /// `analysis.live_hosts`, each shadow instance reports under its id (`{shadow}` in the
    /// command).
    #[serde(default)]
    pub metric: Option<String>,
    /// Which way is worse; default: lower throughput, higher anything else.
    #[serde(default)]
    pub direction: Option<Direction>,
    /// Weight in the score.
    #[serde(default = "one")]
    pub weight: f64,
    /// A failure of this KPI fails the judgement alone.
    #[serde(default)]
    pub critical: bool,
    /// Relative deviation of the medians tolerated.
    #[serde(default)]
    pub tolerance: f64,
    /// Absolute deviation of the medians tolerated.
    #[serde(default)]
    pub min_delta: f64,
}

fn one() -> f64 {
    1.0
}

/// A configuration that cannot run, or a rollout that could not start.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// The configuration.
    #[error("rollout configuration: {0}")]
    Config(String),
    /// The shadow stack's copies of the live configuration or data could not be made
    /// (nothing was changed in HAProxy).
    #[error("provisioning the shadow stack: {0}")]
    Provision(String),
    /// The runtime API before anything was changed.
    #[error("HAProxy: {0}")]
    Haproxy(#[from] harbinger_actuate::haproxy::HaproxyError),
    /// The record could not be written.
    #[error("writing the rollout record {path}: {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Checked {
    cfg: CanaryConfig,
    api: ApiAddress,
    api_timeout: Duration,
    spec: RolloutSpec,
    sample_every: Duration,
    health_timeout: Duration,
    judge: JudgeConfig,
    kpis: Vec<KpiSpec>,
    /// Per KPI: `None` from HAProxy, `Some(metric)` from harbinger.
    sources: Vec<Option<String>>,
    live_hosts: Vec<String>,
}

fn duration(field: &str, s: &str) -> Result<Duration, CanaryError> {
    let d = humantime::parse_duration(s).map_err(|e| CanaryError::Config(format!("{field} = {s:?}: {e}")))?;
    if d.is_zero() {
        return Err(CanaryError::Config(format!("{field} = {s:?}: must be above zero")));
    }
    Ok(d)
}

impl CanaryConfig {
    /// Parses TOML; `source` names the file in errors.
    ///
    /// # Errors
    /// [`CanaryError::Config`] with the file, the line and what is wrong.
    pub fn parse(text: &str, source: &str) -> Result<Self, CanaryError> {
        toml::from_str(text).map_err(|e| CanaryError::Config(format!("{source}: {e}")))
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`CanaryError::Config`] naming the field.
    pub fn check(self) -> Result<Checked, CanaryError> {
        let bad = |m: String| Err(CanaryError::Config(m));
        if let Some(id) = &self.id
            && !valid_id(id)
        {
            return bad(format!("id = {id:?}: use 1 to 64 letters, digits, '-', '_' or '.' (not first)"));
        }
        if self.haproxy.live.is_empty() {
            return bad("haproxy.live: name the live stack's servers in the backend".into());
        }
        if self.shadow.command.is_empty() {
            return bad("shadow.command: empty".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.shadow.config.iter().enumerate() {
            if !valid_id(&c.id) || !names.insert(format!("config:{}", c.id)) {
                return bad(format!("shadow.config[{i}].id = {:?}: a unique name of letters, digits, '-', '_', '.'", c.id));
            }
            for k in c.set.keys() {
                if !k.starts_with('/') {
                    return bad(format!("shadow.config[{i}].set: {k:?} is not a JSON pointer (starts with '/')"));
                }
            }
        }
        for (i, d) in self.shadow.data.iter().enumerate() {
            if !valid_id(&d.id) || !names.insert(format!("data:{}", d.id)) {
                return bad(format!("shadow.data[{i}].id = {:?}: a unique name of letters, digits, '-', '_', '.'", d.id));
            }
            if d.kind != "redis" {
                return bad(format!("shadow.data[{i}].kind = {:?}: only \"redis\" is supported", d.kind));
            }
        }
        let a = &self.analysis;
        let spec = RolloutSpec {
            steps: a.steps.clone(),
            interval_ms: u64::try_from(duration("analysis.interval", &a.interval)?.as_millis()).unwrap_or(u64::MAX),
            count: a.count,
            failure_limit: a.failure_limit,
            inconclusive_limit: a.inconclusive_limit,
            after_promote: a.after_promote,
        };
        spec.validate().map_err(|e| CanaryError::Config(format!("analysis.{e}")))?;
        let sample_every = duration("analysis.sample_every", &a.sample_every)?;
        if sample_every.as_millis() * 2 > u128::from(spec.interval_ms) {
            return bad(format!(
                "analysis.sample_every = {:?}: at least two samples per interval ({:?}) are needed",
                a.sample_every, a.interval
            ));
        }
        let judge = JudgeConfig { alpha: a.alpha, pass_score: a.pass_score, min_samples: a.min_samples };
        judge.validate().map_err(|e| CanaryError::Config(format!("analysis: {e}")))?;
        if a.kpi.is_empty() {
            return bad("analysis.kpi: at least one KPI".into());
        }
        let mut kpis = Vec::new();
        let mut sources = Vec::new();
        for (i, k) in a.kpi.iter().enumerate() {
            match k.source.as_deref().unwrap_or("haproxy") {
                "haproxy" => {
                    if !HAPROXY_KPIS.contains(&k.name.as_str()) {
                        return bad(format!("analysis.kpi[{i}].name = {:?}: one of {}", k.name, HAPROXY_KPIS.join(", ")));
                    }
                    if k.metric.is_some() {
                        return bad(format!("analysis.kpi[{i}].metric: only for source = \"harbinger\""));
                    }
                    sources.push(None);
                }
                "harbinger" => {
                    let Some(url) = &a.harbinger_url else {
                        return bad(format!("analysis.kpi[{i}]: source = \"harbinger\" needs analysis.harbinger_url"));
                    };
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return bad(format!("analysis.harbinger_url = {url:?}: an http:// or https:// URL"));
                    }
                    let metric = k.metric.clone().unwrap_or_else(|| k.name.clone());
                    if metric.trim().is_empty() {
                        return bad(format!("analysis.kpi[{i}].metric: empty"));
                    }
                    sources.push(Some(metric));
                }
                other => return bad(format!("analysis.kpi[{i}].source = {other:?}: haproxy or harbinger")),
            }
            if kpis.iter().any(|s: &KpiSpec| s.name == k.name) {
                return bad(format!("analysis.kpi[{i}].name = {:?}: listed twice", k.name));
            }
            let direction = k.direction.unwrap_or(if k.name == "throughput" { Direction::LowerIsWorse } else { Direction::HigherIsWorse });
            let spec = KpiSpec {
                name: k.name.clone(),
                direction,
                weight: k.weight,
                critical: k.critical,
                tolerance: k.tolerance,
                min_delta: k.min_delta,
            };
            spec.validate().map_err(|e| CanaryError::Config(format!("analysis.kpi[{i}]: {e}")))?;
            kpis.push(spec);
        }
        let api_timeout = duration("haproxy.timeout", &self.haproxy.timeout)?;
        let health_timeout = duration("shadow.health_timeout", &self.shadow.health_timeout)?;
        if let Some(url) = &self.alert_webhook {
            WebhookActuator::new(WebhookConfig::new(url.clone())).map_err(|e| CanaryError::Config(format!("alert_webhook: {e}")))?;
        }
        let api: ApiAddress = self.haproxy.api.parse().unwrap_or_else(|never| match never {});
        let live_hosts = if a.live_hosts.is_empty() { self.haproxy.live.clone() } else { a.live_hosts.clone() };
        Ok(Checked { api, api_timeout, spec, sample_every, health_timeout, judge, kpis, sources, live_hosts, cfg: self })
    }
}

impl Checked {
    /// The rollout's steps and schedule.
    pub fn spec(&self) -> &RolloutSpec {
        &self.spec
    }
}

/// Writes `record` to `<dir>/<id>.json` through a temporary file and a rename.
///
/// # Errors
/// [`CanaryError::Record`].
pub fn save(dir: &Path, record: &RolloutRecord) -> Result<(), CanaryError> {
    let path = dir.join(format!("{}.json", record.id));
    let err = |source| CanaryError::Record { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(".{}.json.tmp", record.id));
    let bytes = serde_json::to_vec(record).map_err(|e| err(std::io::Error::other(e)))?;
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// The shadow stack's copies of the live stack's configuration and data.
#[derive(Debug, Default)]
pub struct Copies {
    /// The `redis` actuator holding the data replicas (full stack only).
    pub redis: Option<harbinger_actuate::redis::RedisActuator>,
    /// The replicas' shadow ids.
    replicas: Vec<String>,
    /// Where the configuration copies are.
    config_dir: Option<PathBuf>,
}

/// Makes the shadow stack's copies: each `[[shadow.config]]` file with its `set` applied,
/// and for a full stack a Redis replica of each `[[shadow.data]]` store, in sync. Answers
/// the copies, the command with `{config:ID}` and `{data:ID}` replaced, the records of
/// the copies and a sentence for each.
async fn provision_copies(
    s: &ShadowSection,
    id: &str,
    dir: &Path,
    full_stack: bool,
    bound: Duration,
    now: i64,
) -> Result<(Copies, Vec<String>, Vec<ShadowInstance>, Vec<String>), String> {
    use harbinger_actuate::redis::{RedisActuator, RedisConfig};
    use harbinger_actuate::resource::ResourceDriver as _;
    use harbinger_actuate::resource::file::{FileResource, FileSpec};
    let mut copies = Copies::default();
    let (mut records, mut said) = (Vec::new(), Vec::new());
    let mut values: Vec<(String, String)> = Vec::new();
    if !s.config.is_empty() {
        let cdir = dir.join(id);
        std::fs::create_dir_all(&cdir).map_err(|e| format!("creating {}: {e}", cdir.display()))?;
        copies.config_dir = Some(cdir.clone());
        for c in &s.config {
            let live = FileResource::new(&c.id, &FileSpec { path: c.live.clone(), format: None, directory: Some(false) }, Path::new("."))
                .map_err(|e| format!("shadow.config {}: {e}", c.id))?;
            let mut state = live.read().await.map_err(|e| format!("shadow.config {}: reading {}: {e}", c.id, c.live.display()))?;
            let content = state.get_mut("content").ok_or_else(|| format!("shadow.config {}: no content read", c.id))?;
            for (ptr, v) in &c.set {
                crate::diff::set_pointer(content, ptr, v.clone());
            }
            let ext = c.live.extension().and_then(|e| e.to_str()).unwrap_or("json");
            let path = cdir.join(format!("{}.{ext}", c.id));
            let copy = FileResource::new(&c.id, &FileSpec { path: path.clone(), format: None, directory: Some(false) }, Path::new("."))
                .map_err(|e| format!("shadow.config {}: {e}", c.id))?;
            copy.write(&state).await.map_err(|e| format!("shadow.config {}: writing {}: {e}", c.id, path.display()))?;
            let shown = path.display().to_string();
            said.push(format!("config {}: {} copied to {shown} with {} change(s)", c.id, c.live.display(), c.set.len()));
            records.push(ShadowInstance { id: format!("config:{}", c.id), endpoint: shown.clone() });
            values.push((format!("{{config:{}}}", c.id), shown));
        }
    }
    if !s.data.is_empty() && full_stack {
        let mut rc = RedisConfig::new(dir.join(id).join("data"));
        rc.timeout = bound;
        let redis = RedisActuator::new(rc);
        for d in &s.data {
            let sid = format!("{id}-data-{}", d.id);
            let resource = harbinger_core::Resource {
                id: d.id.clone(),
                depends_on: Vec::new(),
                host: "live".into(),
                kind: "redis".into(),
                criticality: 3,
                cpu_cores: 0.0,
                mem_gb: 0.0,
                state: serde_json::json!({"endpoint": d.live}),
            };
            let mut req = request(&sid, ActionKind::CreateShadow { shadow: shadow(&sid, now) }, now);
            req.resource = Some(resource.clone());
            let out = redis.apply(&req).await;
            let Some(endpoint) =
                out.endpoint.clone().filter(|_| matches!(out.status, JournalStatus::Applied | JournalStatus::AlreadyApplied))
            else {
                copies.redis = Some(redis);
                copies.replicas.push(sid);
                return Err(format!("shadow.data {}: starting a replica of {}: {}", d.id, d.live, out.detail));
            };
            copies.replicas.push(sid.clone());
            // In sync before the shadow stack starts.
            let deadline = Instant::now() + bound;
            let mut sh = shadow(&sid, now);
            sh.endpoint = Some(endpoint.clone());
            loop {
                match redis.sync_state(&sh, Some(&resource)).await {
                    Ok(ShadowState::Ready) => break,
                    _ if Instant::now() >= deadline => {
                        copies.redis = Some(redis);
                        return Err(format!(
                            "shadow.data {}: the replica at {endpoint} was not in sync with {} within {bound:?}",
                            d.id, d.live
                        ));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            said.push(format!("data {}: replica of {} at {endpoint}, in sync", d.id, d.live));
            records.push(ShadowInstance { id: format!("data:{}", d.id), endpoint: endpoint.clone() });
            values.push((format!("{{data:{}}}", d.id), endpoint));
        }
        copies.redis = Some(redis);
    } else {
        for d in &s.data {
            said.push(format!("data {}: shared with the live stack at {} (scope below data)", d.id, d.live));
            values.push((format!("{{data:{}}}", d.id), d.live.clone()));
        }
    }
    let command = s.command.iter().map(|a| values.iter().fold(a.clone(), |acc, (k, v)| acc.replace(k, v))).collect();
    Ok((copies, command, records, said))
}

/// Longest wait for the requests in flight on the shadow stack to end before it is
/// removed.
pub const DRAIN_BOUND: Duration = Duration::from_secs(5);

/// The running side of a rollout: clients, the record and where it goes.
struct Run {
    client: HaproxyClient,
    backend: String,
    live: Vec<String>,
    shadow: Vec<String>,
    procs: ProcessActuator,
    copies: Copies,
    alerts: Option<WebhookActuator>,
    clock: Arc<dyn Clock>,
    dir: PathBuf,
    record: RolloutRecord,
    observer: Option<tokio::sync::mpsc::UnboundedSender<RolloutEvent>>,
}

impl Run {
    fn event(&mut self, kind: &str, detail: String) {
        tracing::info!(rollout = %self.record.id, kind, "{detail}");
        let ts = self.clock.now_ms();
        self.record.updated_ms = ts;
        let e = RolloutEvent { ts, kind: kind.to_string(), detail };
        if let Some(o) = &self.observer {
            let _gone = o.send(e.clone());
        }
        self.record.events.push(e);
    }

    fn save(&self) {
        if let Err(e) = save(&self.dir, &self.record) {
            tracing::error!(rollout = %self.record.id, error = %e, "the rollout record could not be written");
        }
    }

    /// Sets the weights for `share` percent on the shadow stack.
    async fn set_share(&mut self, share: u32) -> Result<(), String> {
        let weight = |total: u32, n: usize| -> u32 {
            if total == 0 {
                return 0;
            }
            let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
            ((total * 5).div_ceil(2 * n)).clamp(1, 256)
        };
        let (lw, sw) = (weight(100 - share.min(100), self.live.len()), weight(share.min(100), self.shadow.len()));
        let mut errors = Vec::new();
        // A rollback takes the shadow stack's weight away first, before anything else.
        let (first, second) = if share == 0 { (true, false) } else { (false, true) };
        for shadow_side in [first, second] {
            let (servers, w) = if shadow_side { (&self.shadow, sw) } else { (&self.live, lw) };
            for s in servers {
                if let Err(e) = self.client.set_weight(&self.backend, s, w).await {
                    errors.push(e.to_string());
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// Waits until the shadow instances have no request in flight (weight 0 sends them no
    /// new one), for at most [`DRAIN_BOUND`]; answers what is still in flight.
    async fn drained(&mut self) -> u64 {
        let deadline = Instant::now() + DRAIN_BOUND;
        loop {
            let inflight = match self.client.server_stats(&self.backend).await {
                Ok(stats) => stats.iter().filter(|s| self.shadow.contains(&s.server)).map(|s| s.scur).sum(),
                Err(_) => 0,
            };
            if inflight == 0 || Instant::now() >= deadline {
                return inflight;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn deprovision(&mut self) {
        let left = self.drained().await;
        if left > 0 {
            self.event("drain", format!("{left} requests still in flight on the shadow stack after {DRAIN_BOUND:?}: cut"));
        }
        for s in self.shadow.clone() {
            let r = async {
                self.client.set_server_state(&self.backend, &s, AdminState::Maint).await?;
                self.client.command(&format!("shutdown sessions server {}/{s}", self.backend)).await?;
                let answer = self.client.command(&format!("del server {}/{s}", self.backend)).await?;
                Ok::<_, harbinger_actuate::haproxy::HaproxyError>(answer)
            }
            .await;
            match r {
                Ok(a) if a.contains("Server deleted") => self.event("shadow_removed", format!("{s}: removed from {}", self.backend)),
                Ok(a) => self.event("shadow_removed", format!("{s}: in maintenance in {} (del server: {a})", self.backend)),
                Err(e) => self.event("error", format!("{s}: could not be taken out of {}: {e}", self.backend)),
            }
            let out = self
                .procs
                .apply(&request(
                    &s,
                    ActionKind::RetireShadow { shadow: ShadowId::new(&s), state: ShadowState::Retired },
                    self.clock.now_ms(),
                ))
                .await;
            self.event("shadow_stopped", format!("{s}: {}", out.detail));
        }
        if let Some(redis) = self.copies.redis.take() {
            for sid in std::mem::take(&mut self.copies.replicas) {
                let req = request(
                    &sid,
                    ActionKind::RetireShadow { shadow: ShadowId::new(&sid), state: ShadowState::Retired },
                    self.clock.now_ms(),
                );
                let out = redis.apply(&req).await;
                self.event("copy_removed", format!("data replica {sid}: {}", out.detail));
            }
        }
        if let Some(d) = self.copies.config_dir.take() {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => self.event("copy_removed", format!("configuration copies in {} removed", d.display())),
                Err(e) => self.event("error", format!("removing {}: {e}", d.display())),
            }
        }
    }

    /// The data replicas become the stores of the promoted stack (`REPLICAOF NO ONE`).
    async fn promote_copies(&mut self) {
        let Some(redis) = &self.copies.redis else { return };
        let mut said = Vec::new();
        for sid in &self.copies.replicas {
            let out = redis.apply(&request(sid, ActionKind::PromoteShadow { shadow: ShadowId::new(sid) }, self.clock.now_ms())).await;
            said.push(format!("data replica {sid}: {}: {}", out.status.as_str(), out.detail));
        }
        for line in said {
            self.event("copy_promoted", line);
        }
    }

    async fn alert(&mut self, event: &str, reason: &str) {
        let Some(hook) = self.alerts.clone() else {
            self.event("alert_skipped", format!("{event}: no alert_webhook configured"));
            return;
        };
        let last = self.record.judgements.last();
        let body = serde_json::json!({
            "event": event,
            "rollout": self.record.id,
            "reason": reason,
            "share": self.record.rollout.share,
            "judgement": last.map(|j| &j.judgement),
            "ts": self.clock.now_ms(),
        });
        match hook.notify(&format!("{}:{event}", self.record.id), &body).await {
            Ok(detail) => self.event("alert_sent", format!("{event} to {}: {detail}", hook.url())),
            Err(e) => self.event("alert_failed", format!("{event} to {}: {e}", hook.url())),
        }
    }

    /// Performs `steps`; `failed_at` is when the judgement that caused them was made.
    async fn perform(&mut self, steps: Vec<Step>, failed_at: Option<Instant>) {
        for step in steps {
            match step {
                Step::SetShare { share, reason } => match self.set_share(share).await {
                    Ok(()) => {
                        if share == 0
                            && let Some(t) = failed_at
                        {
                            self.record.rollback_ms = Some(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        self.event("share", format!("{share} % to the shadow stack: {reason}"));
                    }
                    Err(e) => self.event("error", format!("setting {share} %: {e}")),
                },
                Step::Promote { reason } => {
                    self.record.decision = Some("promoted".into());
                    self.event("promoted", reason);
                    self.promote_copies().await;
                }
                Step::RetireOld => {
                    for s in self.live.clone() {
                        match self.client.set_server_state(&self.backend, &s, AdminState::Maint).await {
                            Ok(()) => self.event("old_retired", format!("{s}: in maintenance (no traffic, not checked)")),
                            Err(e) => self.event("error", format!("retiring {s}: {e}")),
                        }
                    }
                }
                Step::KeepStandby => self.event("old_standby", format!("{} kept ready with weight 0", self.live.join(", "))),
                Step::Rollback { reason } => {
                    self.record.decision = Some("rolled_back".into());
                    self.event("rollback", reason);
                }
                Step::DeprovisionShadow => self.deprovision().await,
                Step::Alert { event, reason } => self.alert(&event, &reason).await,
            }
            self.save();
        }
    }
}

fn shadow(id: &str, now: i64) -> Shadow {
    Shadow {
        id: ShadowId::new(id),
        resource: id.into(),
        primary: "live".into(),
        host: "shadow".into(),
        state: ShadowState::Planned,
        causes: Vec::new(),
        priority: 1.0,
        cpu_cores: 0.0,
        mem_gb: 0.0,
        created_at: now,
        updated_at: now,
        last_used_at: now,
        expires_at: None,
        endpoint: None,
    }
}

fn request(id: &str, action: ActionKind, now: i64) -> ActuatorRequest {
    let verb = match &action {
        ActionKind::CreateShadow { .. } => "create",
        ActionKind::PromoteShadow { .. } => "promote",
        _ => "retire",
    };
    ActuatorRequest { key: format!("{id}:{verb}"), attempt: 1, action, shadow: shadow(id, now), resource: None }
}

/// The values of `metric` for every host of `hosts` in `[from, to)`, from a harbinger
/// server's `GET /api/v1/samples` (a host without the series gives none).
async fn harbinger_samples(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    hosts: &[String],
    metric: &str,
    from: i64,
    to: i64,
) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for host in hosts {
        let endpoint = format!("{}/api/v1/samples", url.trim_end_matches('/'));
        let mut req = client.get(&endpoint).query(&[
            ("host", host.as_str()),
            ("metric", metric),
            ("from", &from.to_string()),
            ("to", &to.to_string()),
        ]);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| format!("GET {endpoint} ({host}): {e}"))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            continue;
        }
        let body = resp.text().await.map_err(|e| format!("GET {endpoint} ({host}): {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {endpoint} ({host}): HTTP {status}: {}", body.trim()));
        }
        let answer: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("GET {endpoint} ({host}): {e}"))?;
        let samples = answer["samples"].as_array().ok_or_else(|| format!("GET {endpoint} ({host}): no samples in the answer"))?;
        out.extend(samples.iter().filter_map(|p| p.get(1).and_then(serde_json::Value::as_f64)));
    }
    Ok(out)
}

/// Cumulative counters of one stack at one time.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    /// HTTP responses of any status.
    responses: u64,
    /// 2xx and 3xx.
    ok: u64,
    /// 5xx.
    server_errors: u64,
    /// Connection and response errors (no HTTP status).
    broken: u64,
    /// Σ rtime × responses, for a request-weighted mean of the servers' averages.
    rtime_weighted: f64,
    rtime_weight: f64,
}

#[allow(clippy::cast_precision_loss)]
fn counters(stats: &[ServerStats], servers: &[String]) -> Counters {
    let mut c = Counters::default();
    for s in stats.iter().filter(|s| servers.contains(&s.server)) {
        let responses = s.hrsp_1xx + s.hrsp_2xx + s.hrsp_3xx + s.hrsp_4xx + s.hrsp_5xx + s.hrsp_other;
        c.responses += responses;
        c.ok += s.hrsp_2xx + s.hrsp_3xx;
        c.server_errors += s.hrsp_5xx;
        c.broken += s.econ + s.eresp;
        if let Some(r) = s.rtime_ms {
            c.rtime_weighted += r as f64 * responses as f64;
            c.rtime_weight += responses as f64;
        }
    }
    c
}

/// One sampling interval's KPI values for one stack, from two counter readings `dt`
/// apart; `share` is the fraction of the traffic the stack was meant to get. A KPI with
/// nothing to measure in the interval (no request, no share) gives no sample.
#[allow(clippy::cast_precision_loss)]
fn interval_kpis(before: Counters, after: Counters, dt: Duration, share: f64, out: &mut [Vec<f64>], names: &[String]) {
    let responses = after.responses.saturating_sub(before.responses);
    let ok = after.ok.saturating_sub(before.ok);
    let broken = after.broken.saturating_sub(before.broken);
    let failed = after.server_errors.saturating_sub(before.server_errors) + broken;
    let attempts = responses + broken;
    for (name, v) in names.iter().zip(out.iter_mut()) {
        match name.as_str() {
            "error_rate" if attempts > 0 => v.push(failed as f64 / attempts as f64),
            "latency_ms" if responses > 0 && after.rtime_weight > 0.0 => v.push(after.rtime_weighted / after.rtime_weight),
            "throughput" if share > 0.0 && !dt.is_zero() => v.push(ok as f64 / dt.as_secs_f64() / share),
            _ => {}
        }
    }
}

/// A rollout that is over.
#[derive(Debug)]
pub struct Finished {
    /// Its record (also in `<dir>/<id>.json`).
    pub record: RolloutRecord,
    /// The shadow stack's processes. After a promotion they are the live stack: the
    /// caller keeps them (dropping this stops them) or lets them run on
    /// ([`ProcessActuator::detach_all`]). After a rollback none is left running.
    pub processes: ProcessActuator,
    /// The shadow stack's data replicas (promoted with it), held the same way.
    pub copies: Copies,
}

/// Runs one rollout to its end (promoted or rolled back) and answers its record and the shadow stack's processes. Time
/// stamps come from `clock`; the schedule from the configuration (tokio's timer). Stops
/// early and rolls back when `stop` resolves. Every event is also sent to `observer`.
///
/// # Errors
/// A configuration or HAProxy state that does not allow starting (nothing was changed);
/// after the start every problem is an event in the record and rolls back.
pub async fn run(
    checked: Checked,
    clock: Arc<dyn Clock>,
    dir: &Path,
    stop: impl std::future::Future<Output = ()>,
    observer: Option<tokio::sync::mpsc::UnboundedSender<RolloutEvent>>,
) -> Result<Finished, CanaryError> {
    let Checked { cfg, api, api_timeout, mut spec, sample_every, health_timeout, judge: judge_cfg, kpis, sources, live_hosts } = checked;
    let client = HaproxyClient::new(api, api_timeout);
    let backend = cfg.haproxy.backend.clone();
    let servers = client.servers_state(&backend).await?;
    for l in &cfg.haproxy.live {
        if !servers.iter().any(|s| &s.server == l) {
            return Err(CanaryError::Config(format!("haproxy.live: backend {backend} has no server {l:?}")));
        }
    }
    let now = clock.now_ms();
    let id = cfg.id.clone().unwrap_or_else(|| format!("rollout-{now}"));
    let live_n = cfg.shadow.live_instances.unwrap_or_else(|| u32::try_from(cfg.haproxy.live.len()).unwrap_or(u32::MAX));
    let scale = shadow_scale(cfg.scope, live_n, spec.steps[0]);
    spec.steps[0] = scale.first_share;
    spec.steps.dedup();
    let (rollout, first) = Rollout::start(spec).map_err(CanaryError::Config)?;
    let (copies, command, copy_records, copy_said) =
        match provision_copies(&cfg.shadow, &id, dir, scale.full_stack, health_timeout, now).await {
            Ok(x) => x,
            Err(e) => {
                let _gone = std::fs::remove_dir_all(dir.join(&id));
                return Err(CanaryError::Provision(e));
            }
        };
    let mut pcfg = ProcessConfig::new(command).host_addr("shadow", cfg.shadow.addr.clone()).health_timeout(health_timeout);
    if let Some(p) = &cfg.shadow.health_path {
        pcfg = pcfg.health(HealthCheck::Http { path: p.clone() });
    }
    let procs = ProcessActuator::new(pcfg).map_err(|e| CanaryError::Config(format!("shadow.command: {e}")))?;
    let alerts = match &cfg.alert_webhook {
        Some(url) => {
            Some(WebhookActuator::new(WebhookConfig::new(url.clone())).map_err(|e| CanaryError::Config(format!("alert_webhook: {e}")))?)
        }
        None => None,
    };
    let record = RolloutRecord {
        id: id.clone(),
        created_ms: now,
        updated_ms: now,
        backend: backend.clone(),
        live: cfg.haproxy.live.clone(),
        shadow: Vec::new(),
        copies: copy_records,
        scale: scale.clone(),
        kpis: kpis.clone(),
        rollout,
        judgements: Vec::new(),
        events: Vec::new(),
        decision: None,
        live_requests: 0,
        shadow_requests: 0,
        rollback_ms: None,
    };
    let mut run = Run {
        client,
        backend,
        live: cfg.haproxy.live.clone(),
        shadow: Vec::new(),
        procs,
        copies,
        alerts,
        clock,
        dir: dir.to_path_buf(),
        record,
        observer,
    };
    run.event("scaled", scale.reason.clone());
    for said in copy_said {
        run.event("copied", said);
    }

    // Provision.
    for n in 1..=scale.instances {
        let sid = format!("{id}-{n}");
        let out = run.procs.apply(&request(&sid, ActionKind::CreateShadow { shadow: shadow(&sid, now) }, now)).await;
        let endpoint = match (out.status, out.endpoint.clone()) {
            (JournalStatus::Applied | JournalStatus::AlreadyApplied, Some(e)) => e,
            _ => {
                run.event("error", format!("starting shadow instance {sid}: {}", out.detail));
                run.shadow.push(sid);
                let steps = run.record.rollout.abort("the shadow stack could not be provisioned");
                run.perform(steps, None).await;
                return Ok(Finished { record: run.record, processes: run.procs, copies: run.copies });
            }
        };
        let added = run.client.command(&format!("add server {}/{sid} {endpoint} weight 0", run.backend)).await;
        run.shadow.push(sid.clone());
        let enabled = match added {
            Ok(a) if a.contains("New server registered") => {
                run.client.set_server_state(&run.backend, &sid, AdminState::Ready).await.map_err(|e| e.to_string())
            }
            Ok(a) => Err(format!("add server: {a}")),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = enabled {
            run.event("error", format!("adding {sid} ({endpoint}) to {}: {e}", run.backend));
            let steps = run.record.rollout.abort("the shadow stack could not be added to HAProxy");
            run.perform(steps, None).await;
            return Ok(Finished { record: run.record, processes: run.procs, copies: run.copies });
        }
        run.record.shadow.push(ShadowInstance { id: sid.clone(), endpoint: endpoint.clone() });
        run.event("provisioned", format!("{sid} serves at {endpoint} ({})", out.detail));
    }
    run.save();
    run.perform(first, None).await;

    // Sample and judge.
    let names: Vec<String> = kpis.iter().map(|k| k.name.clone()).collect();
    // HAProxy KPIs only come from its statistics; harbinger KPIs from its samples.
    let from_haproxy: Vec<String> = names.iter().zip(&sources).map(|(n, s)| if s.is_none() { n.clone() } else { String::new() }).collect();
    let kpi_client = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().unwrap_or_default();
    let per_interval = (u128::from(run.record.rollout.spec.interval_ms) / sample_every.as_millis().max(1)).max(2);
    let mut ticker = tokio::time::interval(sample_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut last = run.client.server_stats(&run.backend).await.ok();
    let mut last_at = Instant::now();
    let mut window_start = run.clock.now_ms();
    let (mut base, mut canary): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (vec![Vec::new(); names.len()], vec![Vec::new(); names.len()]);
    let mut ticks = 0_u128;
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => {
                let steps = run.record.rollout.abort("stopped by the operator");
                run.perform(steps, None).await;
                return Ok(Finished { record: run.record, processes: run.procs, copies: run.copies });
            }
            _ = ticker.tick() => {}
        }
        let share = run.record.rollout.share;
        match run.client.server_stats(&run.backend).await {
            Ok(stats) => {
                let dt = last_at.elapsed();
                last_at = Instant::now();
                if let Some(prev) = &last {
                    let (lb, la) = (counters(prev, &run.live), counters(&stats, &run.live));
                    let (sb, sa) = (counters(prev, &run.shadow), counters(&stats, &run.shadow));
                    run.record.live_requests += la.responses.saturating_sub(lb.responses);
                    run.record.shadow_requests += sa.responses.saturating_sub(sb.responses);
                    interval_kpis(lb, la, dt, f64::from(100 - share) / 100.0, &mut base, &from_haproxy);
                    interval_kpis(sb, sa, dt, f64::from(share) / 100.0, &mut canary, &from_haproxy);
                }
                last = Some(stats);
            }
            Err(e) => run.event("error", format!("reading HAProxy's statistics: {e}")),
        }
        ticks += 1;
        if ticks < per_interval {
            continue;
        }
        ticks = 0;
        let now_ms = run.clock.now_ms();
        for (i, source) in sources.iter().enumerate() {
            let Some(metric) = source else { continue };
            let Some(url) = &cfg.analysis.harbinger_url else { continue };
            let token = cfg.analysis.harbinger_token.as_deref();
            match harbinger_samples(&kpi_client, url, token, &live_hosts, metric, window_start, now_ms).await {
                Ok(v) => base[i] = v,
                Err(e) => run.event("error", format!("KPI {}: {e}", names[i])),
            }
            let shadow_hosts = run.shadow.clone();
            match harbinger_samples(&kpi_client, url, token, &shadow_hosts, metric, window_start, now_ms).await {
                Ok(v) => canary[i] = v,
                Err(e) => run.event("error", format!("KPI {}: {e}", names[i])),
            }
        }
        let samples: Vec<(&[f64], &[f64])> = base.iter().zip(&canary).map(|(b, c)| (b.as_slice(), c.as_slice())).collect();
        let judged_at = Instant::now();
        let j = judge::judge(&judge_cfg, &kpis, &samples);
        let verdict = if j.metrics.iter().all(|m| m.verdict == judge::Verdict::NoData) {
            Verdict::Inconclusive
        } else if j.pass {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        let at = run.clock.now_ms();
        let windows = names
            .iter()
            .zip(base.iter_mut().zip(canary.iter_mut()))
            .map(|(n, (b, c))| KpiWindow { name: n.clone(), baseline: std::mem::take(b), canary: std::mem::take(c) })
            .collect();
        let index = u32::try_from(run.record.judgements.len() + 1).unwrap_or(u32::MAX);
        let why = j.reason.clone();
        run.record.judgements.push(JudgementRecord {
            index,
            at_ms: at,
            window_start_ms: window_start,
            window_end_ms: at,
            share,
            verdict,
            judgement: j,
            windows,
        });
        window_start = at;
        run.event("judgement", format!("#{index} at {share} %: {verdict:?}: {why}"));
        let steps = run.record.rollout.on_judgement(verdict, &why);
        let failed_at = (verdict != Verdict::Pass).then_some(judged_at);
        run.save();
        run.perform(steps, failed_at).await;
        if run.record.rollout.phase.is_final() {
            run.save();
            return Ok(Finished { record: run.record, processes: run.procs, copies: run.copies });
        }
    }
}
