//! Command-line flags. Flags that mirror config keys override the file and environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// harbinger: predictive failure service for fleets of machines.
#[derive(Debug, Parser)]
#[command(name = "harbinger", version)]
pub struct Cli {
    /// Flags every command shares.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Shared flags.
#[derive(Debug, Args)]
pub struct Global {
    /// TOML config file (see harbinger.example.toml).
    #[arg(long, global = true, env = "HARBINGER_CONFIG")]
    pub config: Option<PathBuf>,
    /// State directory [default: ./harbinger-data].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or debug.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: HTTP on 127.0.0.1:8080 and gRPC on 127.0.0.1:50051 with the embedded
    /// store; SIGHUP reloads the model.
    Serve(ServeArgs),
    /// Ask a running server (gRPC) for the risk of hosts and print it.
    Score(ScoreArgs),
    /// The engine's shadows on a running server (gRPC): list, show, create and promote.
    Shadows(ShadowsArgs),
    /// Shadow-stack rollouts: run one (a new version beside the live stack behind HAProxy,
    /// judged on live traffic, promoted or rolled back), or print one's judgements.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Load a dataset directory into the store.
    Ingest(IngestArgs),
    /// The whole story on this machine, no configuration: HAProxy, an HTTP service and a
    /// Redis, a predicted failure, shadows, SIGKILL of the primaries, failover. Needs the
    /// `haproxy` and `redis-server` programs.
    Demo(DemoArgs),
    /// A host's HTTP service in the demo: answers every request with its name.
    #[command(hide = true)]
    DemoBackend(DemoBackendArgs),
    /// Generate a synthetic fleet dataset with ground truth.
    Synth(SynthArgs),
    /// Validate the configuration and print it, without side effects.
    CheckConfig,
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Train the failure model on a dataset (batch retraining job).
    Train(TrainArgs),
    /// Run the online pipeline over a dataset on a virtual clock and score its alerts.
    Eval(EvalArgs),
    /// Replay a dataset through the same engine `serve` runs, on a virtual clock: alerts,
    /// decisions, summary and a risk trace.
    Replay(ReplayArgs),
    /// Write report.html (self-contained: inline CSS and SVG) for a replay or eval output
    /// directory: summary figures, per-host risk, lead times, recall by kind, decisions.
    Report(crate::report::ReportArgs),
    /// The model registry: publish, list, show, promote, roll back and remove trained models.
    Models(ModelsArgs),
    /// Numenta Anomaly Benchmark: run detectors and score them.
    #[command(subcommand)]
    Nab(NabCommand),
    /// Preview a change: update stack, staged validation, impact, change risk, anomalous
    /// operations and the rollback plan. Nothing live moves.
    Whatif(WhatifArgs),
    /// Apply a change: snapshot, stage and validate, apply in dependency order, check,
    /// and roll back (predictive or standard) when something fails.
    Apply(ApplyArgs),
    /// Roll back an applied change: all its resources, or the named ones (selective).
    Rollback(RollbackArgs),
    /// The change log: recorded changes, or the steps of one.
    Changes(ChangesArgs),
    /// Fit the change-risk model on a dataset's deployment history and write it as JSON.
    ChangeRisk(ChangeRiskArgs),
    /// Import a time range from another system into a dataset directory.
    #[command(subcommand)]
    Import(crate::import::ImportCommand),
    /// Write what the store recorded (samples, events, inventory, failures, decisions) as a
    /// dataset directory. Offline: stop `serve` first.
    Export(crate::export_data::ExportArgs),
}

/// Flags shared by the change commands.
#[derive(Debug, Args)]
pub struct ChangeFlags {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Colours in text output: auto (on a terminal), always, never.
    #[arg(long, default_value = "auto")]
    pub color: String,
    /// Change-risk model file (JSON from `harbinger change-risk`) [default: the embedded
    /// model, fitted on datasets/fleet-train].
    #[arg(long)]
    pub risk_model: Option<PathBuf>,
    /// Writes and restores run at once at most, within a stage [default: change.parallelism, 4].
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// A change-risk score at or above this is a negative analysis (apply needs --force)
    /// [default: change.risk_threshold, 0.5].
    #[arg(long)]
    pub risk_threshold: Option<f64>,
    /// POST rejections, rollbacks and failed verifications to this URL as JSON [default:
    /// change.alert_webhook].
    #[arg(long)]
    pub alert_webhook: Option<String>,
}

/// `whatif` flags.
#[derive(Debug, Args)]
pub struct WhatifArgs {
    /// The change template (YAML, or JSON when it ends in .json).
    #[arg(long)]
    pub change: PathBuf,
    /// Shared flags.
    #[command(flatten)]
    pub flags: ChangeFlags,
}

/// `apply` flags.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The change template (YAML, or JSON when it ends in .json).
    #[arg(long)]
    pub change: PathBuf,
    /// Accept a change whose rollback is expensive or irreversible.
    #[arg(long = "override")]
    pub override_high_cost: bool,
    /// Apply despite a negative analysis; rollback resources are pre-provisioned first.
    #[arg(long)]
    pub force: bool,
    /// Shared flags.
    #[command(flatten)]
    pub flags: ChangeFlags,
}

/// `rollback` flags.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The change id (`c-<n>`, printed by `apply`).
    #[arg(long)]
    pub change: String,
    /// Restore only these resources (repeatable); default: every resource it changed.
    #[arg(long = "resource")]
    pub resources: Vec<String>,
    /// Shared flags.
    #[command(flatten)]
    pub flags: ChangeFlags,
}

/// `changes` flags.
#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// Show the steps of this change.
    #[arg(long)]
    pub change: Option<String>,
    /// Only this stack.
    #[arg(long)]
    pub stack: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `change-risk` flags.
#[derive(Debug, Args)]
pub struct ChangeRiskArgs {
    /// Dataset directory (events.jsonl, failures.csv, resources.json).
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the model (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

/// `nab` subcommands.
#[derive(Debug, Subcommand)]
pub enum NabCommand {
    /// Run the default streaming detector over every `<category>/<name>.csv` and write
    /// `<out>/<category>/<name>.csv` with `timestamp,value,anomaly_score,label`.
    Run(NabRunArgs),
    /// Score a results directory with the NAB rule: three profiles, per-category breakdown.
    Score(NabScoreArgs),
}

/// `nab run` flags.
#[derive(Debug, Args)]
pub struct NabRunArgs {
    /// NAB data directory (`<category>/<name>.csv`, columns timestamp,value).
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the results.
    #[arg(long)]
    pub out: PathBuf,
}

/// `nab score` flags.
#[derive(Debug, Args)]
pub struct NabScoreArgs {
    /// NAB data directory (`<category>/<name>.csv`, columns timestamp,value).
    #[arg(long)]
    pub data: PathBuf,
    /// `combined_windows.json`.
    #[arg(long)]
    pub labels: PathBuf,
    /// Results directory (`<category>/<name>.csv` with an `anomaly_score` column).
    #[arg(long)]
    pub results: PathBuf,
    /// Score every profile at this threshold instead of optimising one on these files:
    /// how files the threshold was not chosen on are scored honestly.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Margin (score units) of the threshold printed for other data: the one whose
    /// neighbourhood, this far either side, scores best on these files on average.
    /// 0 prints NAB's exact optimum.
    #[arg(long, default_value_t = harbinger_detect::TRANSFER_MARGIN)]
    pub margin: f64,
    /// Print the full report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `train` flags.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset directory with failures.csv.
    #[arg(long)]
    pub data: PathBuf,
    /// Model directory to write (model.json and MODEL_CARD.md); optional with --publish.
    #[arg(long, required_unless_present = "publish")]
    pub out: Option<PathBuf>,
    /// Publish the trained model in the registry under this name (the first version of a
    /// name becomes current; later ones wait for `harbinger models promote`).
    #[arg(long, value_name = "NAME")]
    pub publish: Option<String>,
    /// Registry directory for --publish [default: the configured model.registry, models/registry].
    #[arg(long, requires = "publish")]
    pub registry: Option<PathBuf>,
    /// Failure horizon the model predicts, e.g. 6h or 3days.
    #[arg(long, default_value = "6h")]
    pub horizon: String,
    /// Horizon of the imminence model stacked with the main learner on the held-back rows
    /// (fast precursors such as overheating; see the model card), or `none` [default: 2h
    /// when the horizon is longer].
    #[arg(long)]
    pub short_horizon: Option<String>,
    /// Learner of the imminence model: logistic or boosted-trees.
    #[arg(long, default_value = "logistic")]
    pub short_learner: String,
    /// Spacing of training rows [default: 5m, or the data's sampling step when coarser].
    #[arg(long)]
    pub tick: Option<String>,
    /// Share of the failures held back (the latest ones) for choosing, calibrating and
    /// checking; the split time falls between the two parts. 0.4: the threshold and the
    /// stacking need enough held-back failures (at 0.3 the default recipe's precision on
    /// unseen fleets fell from 0.80 to 0.77).
    #[arg(long, default_value_t = 0.4)]
    pub holdout: f64,
    /// How the held-back part is chosen: `time` (the latest `--holdout` share of the
    /// failures, after a split time), `hosts` (a `--holdout` share of the hosts, by a
    /// hash of the id, over the whole period: for fleets whose hosts come and go, such as
    /// drives sampled over their last weeks), or `auto` (`hosts` when the median host is
    /// first seen in the second half of the data, else `time`).
    #[arg(long, default_value = "auto", value_parser = ["auto", "time", "hosts"])]
    pub split: String,
    /// Precision the alert threshold aims for on the held-back part (the most recall at
    /// this precision is kept).
    #[arg(long, default_value_t = 0.85)]
    pub target_precision: f64,
    /// random-forest, logistic, boosted-trees, auto (logistic and forest: the better on
    /// held-back PR-AUC leads, the other joins the stack), or all (the three).
    #[arg(long, default_value = "random-forest")]
    pub learner: String,
    /// Trees in the forest.
    #[arg(long, default_value_t = 32)]
    pub trees: usize,
    /// Seed for row sampling and the forest.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use only one part of the hosts, split by a hash of the host id (the same split in
    /// `train` and `eval`): `train` (the hosts not held back) or `holdout` (hosts never
    /// seen in training), so a model can be evaluated on unseen hosts of the same dataset.
    #[arg(long, value_name = "PART", value_parser = ["train", "holdout"])]
    pub hosts_part: Option<String>,
    /// Share of the hosts in the `holdout` part of `--hosts-part`.
    #[arg(long, default_value_t = 0.3, requires = "hosts_part")]
    pub holdout_hosts: f64,
    /// Also write the feature rows (train and held back) to this Parquet file, with `host`,
    /// `timestamp`, `label` and `holdout` columns.
    #[arg(long)]
    pub export_features: Option<PathBuf>,
    /// Memory the features may take (e.g. `4GiB`): above it the fleet is computed a block
    /// of hosts at a time. The first block is the (up to 1,000) hosts the fleet signal is
    /// taken from; it writes the other hosts' rows to a temporary directory (compressed)
    /// as it reads the file, and each later block reads its own. The model is the same
    /// with or without a budget.
    #[arg(long, value_name = "SIZE")]
    pub memory_budget: Option<bytesize::ByteSize>,
}

/// `eval` flags.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Dataset directory (failures.csv gives recall and precision).
    #[arg(long)]
    pub data: PathBuf,
    /// Model directory or registry entry [default: the configured model.dir, models/default].
    #[arg(long, conflicts_with = "baseline")]
    pub model: Option<PathBuf>,
    /// Evaluate a baseline instead of a model: `prometheus-rules`, a hand-written
    /// Prometheus-style alerting rule set (thresholds and predict_linear, `for: 5m`).
    #[arg(long, value_enum)]
    pub baseline: Option<Baseline>,
    /// With `--baseline prometheus-rules`: a TOML rule file replacing the default rules
    /// (see prometheus-rules.example.toml).
    #[arg(long, requires = "baseline")]
    pub rules: Option<PathBuf>,
    /// Output directory for alerts.csv and summary.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Scoring cadence of the virtual clock [default: 1m, or the model's data step when
    /// coarser; 1m for a baseline].
    #[arg(long)]
    pub tick: Option<String>,
    /// Warning window alerts are scored in [default: the model's (6 h, the contract's, for
    /// models of a horizon up to 6 h; else the horizon); 6h for a baseline].
    #[arg(long)]
    pub warning: Option<String>,
    /// Use only one part of the hosts, split by a hash of the host id (the same split in
    /// `train` and `eval`): `train` (the hosts not held back) or `holdout` (hosts never
    /// seen in training), so a model can be evaluated on unseen hosts of the same dataset.
    #[arg(long, value_name = "PART", value_parser = ["train", "holdout"])]
    pub hosts_part: Option<String>,
    /// Share of the hosts in the `holdout` part of `--hosts-part`.
    #[arg(long, default_value_t = 0.3, requires = "hosts_part")]
    pub holdout_hosts: f64,
    /// Override the model's alert threshold.
    #[arg(long, conflicts_with = "baseline")]
    pub alert_threshold: Option<f64>,
    /// Override the model's clear threshold.
    #[arg(long, conflicts_with = "baseline")]
    pub clear_threshold: Option<f64>,
    /// Also write trace.csv: every host's probability, anomaly, risk, confidence and
    /// alerting state at this cadence (e.g. 5m).
    #[arg(long)]
    pub trace_every: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `replay` flags.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Dataset directory (failures.csv gives recall and precision and fails hosts).
    #[arg(long)]
    pub data: PathBuf,
    /// Model directory or registry entry [default: the configured model.dir, else the
    /// built-in model, as `serve` resolves it].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output directory: alerts.csv, decisions.jsonl, summary.json, risk.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Engine tick of the virtual clock.
    #[arg(long, default_value = "1m")]
    pub tick: String,
    /// Cadence of the rows of risk.csv (a multiple of the tick).
    #[arg(long, default_value = "10m")]
    pub trace_every: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Baselines `eval` can run in place of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// Prometheus-style alerting rules (`harbinger_model::rules`).
    PrometheusRules,
}

/// `models` flags.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Registry directory [default: the configured model.registry, models/registry].
    #[arg(long, global = true)]
    pub registry: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Publish a model directory (as `train --out` writes it) under NAME, as the model's own
    /// version; the first version of a name becomes current.
    Publish {
        /// Model name: ASCII letters, digits, '-', '_', '.'.
        name: String,
        /// Directory with model.json and MODEL_CARD.md.
        artifact: PathBuf,
    },
    /// List the versions of one name or of every name, with their model card facts.
    List {
        /// Only this name.
        name: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the model card of a version [default: the current one].
    Show {
        /// Model name.
        name: String,
        /// Version.
        version: Option<String>,
    },
    /// Make VERSION the current version of NAME (reload `serve` to switch to it).
    Promote {
        /// Model name.
        name: String,
        /// Version.
        version: String,
    },
    /// Go back to the version promoted before the current one.
    Rollback {
        /// Model name.
        name: String,
    },
    /// Remove a version that is not current.
    Rm {
        /// Model name.
        name: String,
        /// Version.
        version: String,
    },
}

/// `serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// HTTP listen address [default: 127.0.0.1:8080].
    #[arg(long)]
    pub http_addr: Option<String>,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long)]
    pub grpc_addr: Option<String>,
    /// Soak runs only: the server's clock runs this many times as fast as the wall clock
    /// from `--clock-origin-ms` on (retention, the future allowance and the scorer's
    /// windows then fill in minutes).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clock_speed: Option<u32>,
    /// Soak runs only: the wall time (ms since the epoch) from which `--clock-speed` applies
    /// [default: the start of the process].
    #[arg(long, hide = true, requires = "clock_speed")]
    pub clock_origin_ms: Option<i64>,
}

/// `score` flags.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// gRPC server: HOST:PORT, http://HOST:PORT or https://HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// Bearer token (scoring needs none; accepted for servers behind a proxy that does).
    #[arg(long, env = "HARBINGER_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate to trust for TLS (implies https:// for HOST:PORT).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Give up after this long, e.g. 500ms or 10s.
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// Print the scores as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Host ids to score.
    #[arg(required = true)]
    pub hosts: Vec<String>,
}
/// `rollout` subcommands.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Run a rollout in the foreground until it is promoted or rolled back; SIGINT or
    /// SIGTERM rolls it back. The record goes to `<data_dir>/rollouts/<id>.json`.
    Run(RolloutRunArgs),
    /// Print a rollout's state, judgements (every KPI with its medians, U and p-value)
    /// and events.
    Status(RolloutStatusArgs),
}

/// `rollout run` flags.
#[derive(Debug, Args)]
pub struct RolloutRunArgs {
    /// The rollout's configuration (TOML; see `harbinger_change::canary::CanaryConfig` and
    /// the README).
    pub spec: PathBuf,
    /// Print the record as JSON at the end instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// `rollout status` flags.
#[derive(Debug, Args)]
pub struct RolloutStatusArgs {
    /// The rollout's id.
    pub id: String,
    /// Ask a running server (`http://HOST:PORT`) instead of reading `<data_dir>/rollouts`.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token for a server that protects reads.
    #[arg(long, env = "HARBINGER_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also print every KPI sample of every window.
    #[arg(long)]
    pub samples: bool,
}

/// `shadows` flags (they may also follow the subcommand).
#[derive(Debug, Args)]
pub struct ShadowsArgs {
    /// gRPC server: HOST:PORT, http://HOST:PORT or https://HOST:PORT.
    #[arg(long, global = true, default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// Bearer token (create and promote need it when the server has one).
    #[arg(long, global = true, env = "HARBINGER_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate to trust for TLS (implies https:// for HOST:PORT).
    #[arg(long, global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Give up after this long, e.g. 500ms or 10s.
    #[arg(long, global = true, default_value = "10s")]
    pub timeout: String,
    /// Print the server's answer as JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: ShadowsCommand,
}

/// `shadows` subcommands.
#[derive(Debug, Subcommand)]
pub enum ShadowsCommand {
    /// List shadows as a table (every filter given must match), then the counts by state.
    List {
        /// Only shadows of this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Only shadows whose primary or shadow host is this host.
        #[arg(long)]
        host: Option<String>,
        /// Only shadows in this state: planned, provisioning, syncing, ready, promoted,
        /// expired, retired or failed.
        #[arg(long)]
        state: Option<String>,
        /// Only live shadows (planned, provisioning, syncing, ready).
        #[arg(long)]
        live: bool,
    },
    /// Print one shadow and the recent decisions about its resource.
    Show {
        /// Shadow id, e.g. db-3@h042#1700000000000.
        id: String,
    },
    /// Ask for a shadow of RESOURCE now (placed in another failure domain).
    Create {
        /// Resource id from the inventory.
        resource: String,
        /// Who asks, recorded as the cause [default: $USER, else "operator"].
        #[arg(long)]
        by: Option<String>,
    },
    /// Promote a ready shadow: it takes over from its primary.
    Promote {
        /// Shadow id.
        id: String,
        /// Who asks [default: $USER, else "operator"].
        #[arg(long)]
        by: Option<String>,
    },
}

/// `demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print a JSON object with the figures as the last line (and no timeline).
    #[arg(long)]
    pub json: bool,
    /// GET requests per second through HAProxy during the failover.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// Hosts as network namespaces with their own addresses (needs root and iproute2) or
    /// as loopback ports; `auto` falls back to loopback and says so.
    #[arg(long, value_enum, default_value_t = crate::demo::lab::HostMode::Auto)]
    pub hosts: crate::demo::lab::HostMode,
    /// How a primary's host dies: its process killed (SIGKILL), or its link cut (packets
    /// dropped: timeouts; on loopback its processes are stopped with SIGSTOP).
    #[arg(long, value_enum, default_value_t = DemoFailure::Kill)]
    pub failure: DemoFailure,
    /// What tells harbinger the primaries' hosts are about to fail: its own model on their
    /// metrics (8 h of history replayed from a synthetic fleet), or an Alertmanager alert.
    #[arg(long, value_enum, default_value_t = DemoTrigger::Metrics)]
    pub trigger: DemoTrigger,
    /// Another story than failover.
    #[command(subcommand)]
    pub scenario: Option<DemoScenario>,
}

/// The stories `harbinger demo` tells besides failover.
#[derive(Debug, Subcommand)]
pub enum DemoScenario {
    /// A shadow-stack rollout: HAProxy in front of version 1 of a small service; version 2
    /// is started beside it, gets a growing share of a bounded load, is judged against
    /// version 1 (Mann-Whitney per KPI) and promoted, or rolled back.
    Canary(DemoCanaryArgs),
}

/// `demo canary` flags.
#[derive(Debug, Args)]
pub struct DemoCanaryArgs {
    /// Version 2 answers 30 % of the requests with 500 and 40 ms slower: it is rolled back.
    #[arg(long)]
    pub bad_version: bool,
    /// Print one JSON object with the outcome as the last line (and no judgements).
    #[arg(long)]
    pub json: bool,
    /// GET requests per second through HAProxy.
    #[arg(long, default_value_t = 400)]
    pub rate: u32,
    /// Where the rollout record goes (`<dir>/<id>.json`); default: a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// What predicts the failure in `harbinger demo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoTrigger {
    /// harbinger's failure model on the hosts' metrics.
    Metrics,
    /// An Alertmanager webhook naming the hosts.
    Alert,
}

/// How a primary's host dies in `harbinger demo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoFailure {
    /// SIGKILL of the primary's process: connections are refused at once.
    Kill,
    /// The host's link is cut: packets are dropped and connections time out.
    Cut,
}

/// `demo-backend` flags.
#[derive(Debug, Args)]
pub struct DemoBackendArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub addr: String,
    /// Port.
    #[arg(long)]
    pub port: u16,
    /// The name every answer carries.
    #[arg(long)]
    pub name: String,
    /// Share of the requests answered `500` (spread evenly: with 0.25, every fourth).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Time every answer waits before it is sent, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Remote-write its own metrics here (e.g. `http://127.0.0.1:8080/api/v1/write`):
    /// every `--report-every`, `http_latency_ms` (mean time to answer), `http_error_rate`
    /// and `http_requests_per_s` of the requests answered in that interval.
    #[arg(long)]
    pub report: Option<String>,
    /// The host the reported metrics belong to (label `host`); default: `--name`.
    #[arg(long)]
    pub report_host: Option<String>,
    /// Time between two reports.
    #[arg(long, default_value = "200ms")]
    pub report_every: String,
}

/// `ingest` flags.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Dataset directory (hosts.csv, metrics.parquet or metrics.csv, ...).
    #[arg(long)]
    pub data: PathBuf,
    /// Skip and count invalid metric rows instead of refusing the dataset.
    #[arg(long)]
    pub skip_invalid_rows: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `synth` flags.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of hosts.
    #[arg(long, default_value_t = 50)]
    pub hosts: usize,
    /// Days of data.
    #[arg(long, default_value_t = 7.0)]
    pub days: f64,
    /// Sampling step, e.g. 15s, 60s, 5m or 1d (1 s to 1 day).
    #[arg(long, default_value = "60s")]
    pub step: String,
    /// Random seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First timestamp (ms since epoch) [default: 2023-11-14T00:00:00Z].
    #[arg(long)]
    pub start_ms: Option<i64>,
    /// Start `--days` before now instead, so the data ends at the current time (what a
    /// store with retention, judged by the server's clock, keeps). The files then depend on
    /// when they were made.
    #[arg(long)]
    pub end_now: bool,
    /// Metrics file format: parquet or csv.
    #[arg(long, default_value = "parquet")]
    pub format: String,
}

/// `bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput: Parquet load into the store, remote-write decode+store, and
    /// remote-write over HTTP against harbinger and a real Prometheus.
    Ingest(BenchIngestArgs),
    /// gRPC load: ScoreHosts throughput (batches of 100) and single-host latency at a fixed
    /// rate, with Ping on the same server as the ceiling.
    Grpc(BenchGrpcArgs),
    /// In-process scoring throughput of the live scorer on one thread (no RPC).
    Score(BenchScoreArgs),
    /// The engine tick (risk step, plan, journaled actions) over a large copied fleet.
    Tick(BenchTickArgs),
    /// Failover: `harbinger demo` (SIGKILL and cut link) against HAProxy's own checks and
    /// Redis Sentinel, in the same run.
    Failover(BenchFailoverArgs),
    /// Change safety at scale: what-if (graph, update stack, risk, rollback simulation) of
    /// a change to 1,000 of 10,000 resources, snapshot and restore throughput, optionally
    /// next to a Python peer.
    Change(BenchChangeArgs),
    /// Soak: `harbinger serve` for minutes under a steady mix of valid remote writes,
    /// scoring reads and faults (disconnects, oversized, corrupt, far-future, long keys,
    /// skewed clocks, new hosts past the series limit, slow clients, large bodies), with
    /// its RSS over time; fails on an unexpected answer, a crash or memory that grows.
    Soak(BenchSoakArgs),
}

/// `bench soak` flags.
#[derive(Debug, Args)]
pub struct BenchSoakArgs {
    /// Minutes of load (fractions accepted: 0.1 is six seconds).
    #[arg(long, default_value_t = 5.0)]
    pub minutes: f64,
    /// Requests per second, all kinds together.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Valid hosts (20 per remote-write request, 8 metrics each).
    #[arg(long, default_value_t = 200)]
    pub hosts: usize,
    /// Seed of the request mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runs the server's clock, and the samples' stamps, this many times as fast as the
    /// wall clock (`serve --clock-speed`), so its 24 h baselines and 6 h windows fill
    /// within the run.
    /// 1 is the wall clock (the rule then needs a run of two days to judge).
    #[arg(long, default_value_t = 480, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub speed: u32,
    /// How often RSS, counts and latencies are reported.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Print JSON instead of a RELIABILITY.md section.
    #[arg(long)]
    pub json: bool,
}

/// `bench change` flags.
#[derive(Debug, Args)]
pub struct BenchChangeArgs {
    /// Resources in the synthetic stack.
    #[arg(long, default_value_t = 10_000)]
    pub resources: usize,
    /// Resources the change touches (1-3 leaves each).
    #[arg(long, default_value_t = 1_000)]
    pub changed: usize,
    /// Timed runs of each figure; medians are reported.
    #[arg(long, default_value_t = 15)]
    pub repeat: usize,
    /// Seed of the generated stack.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON instead of a BENCHMARKS.md section.
    #[arg(long)]
    pub json: bool,
    /// Also run the Python peer on the same template, states and change log, and report
    /// the ratios.
    #[arg(long)]
    pub peer: bool,
    /// The peer script, run as `PYTHON SCRIPT DIR --repeat N`.
    #[arg(long, default_value = "bench/change_peer.py")]
    pub peer_script: PathBuf,
    /// Python interpreter for the peer.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Keep the generated inputs (template.json, current.json, log.json) in this directory.
    #[arg(long)]
    pub emit: Option<PathBuf>,
    /// Only the analysis: skip the snapshot and file round-trip figures.
    #[arg(long)]
    pub skip_io: bool,
}

/// `bench failover` flags.
#[derive(Debug, Args)]
pub struct BenchFailoverArgs {
    /// Runs of each harbinger scenario, of the HAProxy peer and of Sentinel at 1 s.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Runs of Sentinel with its default down-after-milliseconds (30 s each).
    #[arg(long, default_value_t = 2)]
    pub sentinel_default_runs: usize,
    /// GET requests per second.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
}

/// `bench tick` flags.
#[derive(Debug, Args)]
pub struct BenchTickArgs {
    /// Dataset copied to make the fleet [default: datasets/fleet-sample].
    #[arg(long, default_value = "datasets/fleet-sample")]
    pub data: PathBuf,
    /// Model directory [default: the configured model.dir].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Hosts in the fleet.
    #[arg(long, default_value_t = 10_000)]
    pub hosts: usize,
    /// How much of each host's latest metrics warms the scorer.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    pub window: std::time::Duration,
    /// Steady ticks timed after the first; the median is reported.
    #[arg(long, default_value_t = 9)]
    pub runs: usize,
}

/// `bench score` flags.
#[derive(Debug, Args)]
pub struct BenchScoreArgs {
    /// Dataset whose samples warm the scorer [default: datasets/fleet-sample].
    #[arg(long, default_value = "datasets/fleet-sample")]
    pub data: PathBuf,
    /// Model directory [default: the configured model.dir].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Hosts per `score_hosts` call.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// `bench grpc` flags.
#[derive(Debug, Args)]
pub struct BenchGrpcArgs {
    /// Load an already running server (HOST:PORT) instead of one started in process with
    /// the configured model.
    #[arg(long)]
    pub addr: Option<String>,
    /// Host ids to score (comma-separated); default: every host the in-process server's
    /// scorer knows. Required with --addr.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Hosts per ScoreHosts request in the throughput figure.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Concurrent requests in the throughput figures.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Requests per second of the fixed-rate single-host figure.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u32,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// A peer server to start and load the same way, side by side: a command (split on
    /// spaces) serving harbinger.v1 `ScoreHosts` and `Ping`, to which `--port P --features N`
    /// is appended, e.g. "python3 bench/python_peer.py".
    #[arg(long)]
    pub peer_cmd: Option<String>,
    /// Name of the peer in the report.
    #[arg(long, default_value = "peer")]
    pub peer_name: String,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}
/// `bench ingest` flags.
#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Hosts in the generated fleet for the Parquet figure.
    #[arg(long, default_value_t = 100)]
    pub hosts: usize,
    /// Days in the generated fleet.
    #[arg(long, default_value_t = 7.0)]
    pub days: f64,
    /// Remote-write requests to send.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Series per remote-write request.
    #[arg(long, default_value_t = 2_000)]
    pub series_per_request: usize,
    /// Samples per series per request.
    #[arg(long, default_value_t = 1)]
    pub samples_per_series: usize,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// A Prometheus binary to compare with (started with --web.enable-remote-write-receiver).
    #[arg(long)]
    pub prometheus: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_and_score_flags_parse() {
        let cli = Cli::try_parse_from(["harbinger", "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"]).expect("parses");
        let Command::Serve(a) = cli.command else { panic!("serve expected") };
        assert_eq!((a.grpc_addr.as_deref(), a.http_addr.as_deref()), (Some("127.0.0.1:0"), Some("127.0.0.1:0")));
        let cli = Cli::try_parse_from(["harbinger", "score", "--addr", "h:1", "--json", "h1", "h2"]).expect("parses");
        let Command::Score(a) = cli.command else { panic!("score expected") };
        assert_eq!((a.addr.as_str(), a.json, a.hosts.len(), a.timeout.as_str()), ("h:1", true, 2, "10s"));
        assert!(Cli::try_parse_from(["harbinger", "score"]).is_err(), "at least one host");
    }

    #[test]
    fn eval_baseline_flags_parse_and_exclude_model_flags() {
        let cli =
            Cli::try_parse_from(["harbinger", "eval", "--data", "d", "--baseline", "prometheus-rules", "--out", "o"]).expect("parses");
        let Command::Eval(a) = cli.command else { panic!("eval expected") };
        assert_eq!((a.baseline, a.rules), (Some(Baseline::PrometheusRules), None));
        let base = ["harbinger", "eval", "--data", "d", "--out", "o"];
        let with = |extra: &[&str]| Cli::try_parse_from(base.iter().chain(extra).copied());
        assert!(with(&["--baseline", "nagios"]).is_err(), "unknown baseline");
        assert!(with(&["--rules", "r.toml"]).is_err(), "--rules needs --baseline");
        assert!(with(&["--baseline", "prometheus-rules", "--model", "m"]).is_err());
        assert!(with(&["--baseline", "prometheus-rules", "--alert-threshold", "0.5"]).is_err());
        assert!(with(&["--baseline", "prometheus-rules", "--rules", "r.toml"]).is_ok());
        let Command::Eval(a) = with(&["--model", "m"]).expect("model eval").command else { panic!("eval expected") };
        assert_eq!(a.baseline, None);
    }

    #[test]
    fn models_and_train_publish_flags_parse() {
        let cli = Cli::try_parse_from(["harbinger", "models", "promote", "failure", "v2", "--registry", "/r"]).expect("parses");
        let Command::Models(a) = cli.command else { panic!("models expected") };
        assert_eq!(a.registry.as_deref(), Some(std::path::Path::new("/r")), "--registry after the subcommand");
        let ModelsCommand::Promote { name, version } = a.command else { panic!("promote expected") };
        assert_eq!((name.as_str(), version.as_str()), ("failure", "v2"));
        let cli = Cli::try_parse_from(["harbinger", "models", "list", "--json"]).expect("parses");
        let Command::Models(ModelsArgs { registry: None, command: ModelsCommand::List { name: None, json: true } }) = cli.command else {
            panic!("list --json expected")
        };

        let cli =
            Cli::try_parse_from(["harbinger", "train", "--data", "d", "--publish", "failure"]).expect("--out is optional with --publish");
        let Command::Train(a) = cli.command else { panic!("train expected") };
        assert_eq!((a.out, a.publish.as_deref()), (None, Some("failure")));
        assert!(Cli::try_parse_from(["harbinger", "train", "--data", "d"]).is_err(), "--out or --publish is needed");
        assert!(
            Cli::try_parse_from(["harbinger", "train", "--data", "d", "--out", "o", "--registry", "r"]).is_err(),
            "--registry needs --publish"
        );
    }

    #[test]
    fn synth_flags_parse_as_documented() {
        let cli =
            Cli::try_parse_from(["harbinger", "synth", "--out", "/tmp/f", "--hosts", "50", "--days", "7", "--seed", "1"]).expect("parses");
        let Command::Synth(a) = cli.command else { panic!("synth expected") };
        assert_eq!((a.hosts, a.days, a.seed, a.step.as_str()), (50, 7.0, 1, "60s"));
    }
}
