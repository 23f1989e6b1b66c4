//! harbinger-cli: the `harbinger` binary's commands, as library functions tests can call.
//!
//! # Layout
//! - [`args`]: clap definitions.
//! - [`serve`]: `harbinger serve`, HTTP and gRPC over the embedded store and one scorer.
//! - [`scorer`]: builds the live scorer `serve` shares between its servers.
//! - [`score`]: `harbinger score`, the gRPC client that prints host risks.
//! - [`shadows`]: `harbinger shadows`, the gRPC client of `ShadowService` (list, show,
//!   create, promote).
//! - [`bench_grpc`]: `harbinger bench grpc`, gRPC throughput and latency figures.
//! - [`ingest`]: `harbinger ingest`, a dataset directory into the store.
//! - [`synth`]: `harbinger synth`, a synthetic fleet dataset.
//! - [`models`]: `harbinger models`, the model registry.
//! - [`bench`]: `harbinger bench ingest`, throughput figures for `BENCHMARKS.md`.
//! - `harbinger nab run` calls `harbinger_detect::run_nab_dir`; `nab score` calls
//!   `harbinger_nab::score_dirs`.
//!
//! `main.rs` parses flags, calls [`load_config`], [`init_logging`] and [`run`].

pub mod args;
pub mod bench;
pub mod bench_change;
pub mod bench_failover;
pub mod bench_grpc;
pub mod bench_soak;
pub mod bench_tick;
pub mod change;
pub mod demo;
pub mod export;
pub mod export_data;
pub mod import;
pub mod ingest;
pub mod models;
pub mod replay;
pub mod report;
pub mod rollout;
pub mod score;
pub mod scorer;
pub mod serve;
pub mod shadows;
pub mod synth;
pub mod train;

use anyhow::Context;
use harbinger_config::{Config, LogFormat};
use harbinger_store::{EmbeddedConfig, EmbeddedStore, Limits};

use crate::args::{BenchCommand, Cli, Command, NabCommand, RolloutCommand};

/// An error and its causes on one line, as the binary prints it: `context: cause: cause`,
/// leaving out a cause whose text the message already holds (many error types print their
/// source inside their own message, which `{:#}` would repeat).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !c.is_empty() && !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Loads the configuration: defaults, file, environment, then the flags in `cli`.
///
/// # Errors
/// An invalid file, variable or flag, named.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut overrides: Vec<(&str, String)> = Vec::new();
    if let Some(d) = &cli.global.data_dir {
        overrides.push(("data_dir", d.display().to_string()));
    }
    if let Some(f) = &cli.global.log_format {
        overrides.push(("log.format", f.clone()));
    }
    if let Some(l) = &cli.global.log_level {
        overrides.push(("log.level", l.clone()));
    } else if matches!(cli.command, Command::Demo(_) | Command::DemoBackend(_)) {
        // The demo prints its own timeline.
        overrides.push(("log.level", "warn".into()));
    }
    match &cli.command {
        Command::Models(crate::args::ModelsArgs { registry: Some(r), .. })
        | Command::Train(crate::args::TrainArgs { registry: Some(r), .. }) => {
            overrides.push(("model.registry", r.display().to_string()));
        }
        _ => {}
    }
    if let Command::Serve(s) = &cli.command {
        if let Some(a) = &s.http_addr {
            overrides.push(("http.addr", a.clone()));
        }
        if let Some(a) = &s.grpc_addr {
            overrides.push(("grpc.addr", a.clone()));
        }
    }
    Ok(Config::load(cli.global.config.as_deref(), |k| std::env::var(k).ok(), &overrides)?)
}

/// Installs the log subscriber: text on a terminal, or JSON lines.
///
/// # Errors
/// An invalid `log.level` filter.
pub fn init_logging(cfg: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .with_context(|| format!("invalid `log.level` filter {:?}", cfg.log.level))?;
    // Colours only when a person is reading a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let res = match cfg.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    res.map_err(|e| anyhow::anyhow!("cannot install logging: {e}"))?;
    // A misspelt variable (HARBINGER_AUTH_TOKN) would otherwise leave its setting at the
    // default without a word.
    let secrets: Vec<&str> = cfg.actuators.iter().filter_map(|t| t.get("secret_env").and_then(|v| v.as_str())).collect();
    for (var, near) in harbinger_config::unknown_env_vars(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()), &secrets) {
        match near {
            Some(k) => tracing::warn!(variable = %var, "unknown environment variable ignored; did you mean {k}?"),
            None => {
                tracing::warn!(variable = %var, "unknown environment variable ignored (see harbinger.example.toml for those harbinger reads)")
            }
        }
    }
    Ok(())
}

/// The embedded store configuration for a validated config.
pub fn store_config(cfg: &Config) -> EmbeddedConfig {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    EmbeddedConfig {
        clock: std::sync::Arc::new(harbinger_core::SystemClock),
        data_dir: cfg.data_dir.clone(),
        limits: Limits {
            retention_ms: cfg.store.retention.map(ms),
            max_future_ms: cfg.store.max_future.map(ms),
            max_host_bytes: cfg.store.max_host_bytes,
            max_metric_bytes: cfg.store.max_metric_bytes,
            hot_window_ms: i64::try_from(cfg.store.hot_window.as_millis()).unwrap_or(i64::MAX),
            hot_max_points: cfg.store.hot_max_points,
            max_series: cfg.store.max_series,
        },
        sync_interval: cfg.store.sync_interval,
        segment_bytes: cfg.store.segment_bytes,
    }
}

/// The planner's budget from the `[engine]` settings.
pub fn budget(e: &harbinger_config::EngineConfig) -> harbinger_plan::Budget {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    harbinger_plan::Budget {
        max_live_shadows: e.max_live_shadows,
        host_reserve: e.host_reserve,
        critical_probability: e.critical_probability,
        min_criticality: e.min_criticality,
        retire_grace_ms: ms(e.retire_grace),
        idle_ms: ms(e.idle),
        ttl_ms: e.shadow_ttl.map(ms),
        risk_ceiling: e.risk_ceiling,
    }
}

/// How long the engine keeps shadows no longer live and finished journal entries
/// (`engine.history`), in ms; `None`: for ever.
pub fn history_ms(e: &harbinger_config::EngineConfig) -> Option<i64> {
    e.history.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Opens the embedded store named by the configuration.
///
/// # Errors
/// The store cannot be opened (locked, unreadable), with the directory named.
pub fn open_store(cfg: &Config) -> anyhow::Result<EmbeddedStore> {
    EmbeddedStore::open(store_config(cfg)).with_context(|| format!("opening the store in {}", cfg.data_dir.display()))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Runs one command to completion.
///
/// # Errors
/// Whatever the command reports, with context.
pub fn run(cli: Cli, cfg: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(a) => {
            let rt = runtime()?;
            // The signal handlers need the runtime, and must be in place before serving starts.
            let stop = {
                let _in_runtime = rt.enter();
                serve::shutdown_signal()
            };
            let clock: std::sync::Arc<dyn harbinger_core::Clock> = match a.clock_speed {
                Some(speed) => {
                    let origin = a.clock_origin_ms.unwrap_or_else(|| harbinger_core::Clock::now_ms(&harbinger_core::SystemClock));
                    tracing::warn!(speed, origin, "the server's clock runs sped up (--clock-speed): for soak runs only");
                    std::sync::Arc::new(harbinger_core::ScaledClock::new(origin, speed))
                }
                None => std::sync::Arc::new(harbinger_core::SystemClock),
            };
            rt.block_on(serve::run_with_clock(cfg, clock, stop))
        }
        Command::Ingest(a) => runtime()?.block_on(ingest::run(&cfg, &a)),
        Command::Synth(a) => synth::run(&a),
        Command::Eval(a) if a.baseline.is_some() => train::run_baseline(&a),
        Command::Train(a) => train::run_train(&a, &cfg.model.registry),
        Command::Models(a) => models::run(&a.command, &cfg.model.registry),
        Command::Replay(a) => replay::run(&a, cfg),
        Command::Report(a) => report::run(&a),
        Command::Eval(a) => {
            let dir = a.model.clone().unwrap_or_else(|| cfg.model.dir.clone());
            train::run_eval(&a, &dir, &budget(&cfg.engine))
        }
        Command::CheckConfig => {
            if cfg.engine.actuator == harbinger_config::ActuatorKind::Chain {
                let ctx = harbinger_actuate::BuildContext { data_dir: cfg.data_dir.clone() };
                let built = harbinger_actuate::build_chain(&cfg.actuators, &ctx)?;
                let names: Vec<_> = built.chain.steps().iter().map(|s| s.actuator.name()).collect();
                println!("actuator chain: {}", names.join(" -> "));
            }
            println!("{cfg:#?}");
            Ok(())
        }
        Command::Bench(BenchCommand::Ingest(a)) => runtime()?.block_on(bench::ingest(&a)),
        Command::Bench(BenchCommand::Grpc(a)) => runtime()?.block_on(bench_grpc::run(&cfg, &a)),
        Command::Bench(BenchCommand::Failover(a)) => runtime()?.block_on(bench_failover::run(&a)),
        Command::Bench(BenchCommand::Change(a)) => bench_change::run(&a),
        Command::Bench(BenchCommand::Soak(a)) => runtime()?.block_on(bench_soak::run(&a)),
        Command::Bench(BenchCommand::Tick(a)) => {
            let dir = a.model.clone().unwrap_or_else(|| cfg.model.dir.clone());
            bench_tick::run(&cfg, &a, &dir)
        }
        Command::Bench(BenchCommand::Score(a)) => {
            let dir = a.model.clone().unwrap_or_else(|| cfg.model.dir.clone());
            train::bench_score(&a, &dir)
        }
        Command::Score(a) => runtime()?.block_on(score::run(&a)),
        Command::Whatif(a) => runtime()?.block_on(change::whatif(&cfg, &a)),
        Command::Apply(a) => runtime()?.block_on(change::apply(&cfg, &a)),
        Command::Rollback(a) => runtime()?.block_on(change::rollback(&cfg, &a)),
        Command::Changes(a) => change::changes(&cfg, &a),
        Command::ChangeRisk(a) => change::fit_risk(&a),
        Command::Import(crate::import::ImportCommand::Prometheus(a)) => runtime()?.block_on(import::run_prometheus(&a)),
        Command::Export(a) => runtime()?.block_on(export_data::run(&cfg, &a)),
        Command::Demo(a) => runtime()?.block_on(demo::run(&a)),
        Command::DemoBackend(a) => runtime()?.block_on(demo::backend(&a)),
        Command::Shadows(a) => runtime()?.block_on(shadows::run(&a)),
        Command::Rollout(RolloutCommand::Run(a)) => runtime()?.block_on(rollout::run(&cfg, &a)),
        Command::Rollout(RolloutCommand::Status(a)) => runtime()?.block_on(rollout::status(&cfg, &a)),
        Command::Nab(NabCommand::Run(a)) => {
            let r = harbinger_detect::run_nab_dir(&a.data, &a.out, &harbinger_detect::DetectorParams::default())
                .with_context(|| format!("running the detector over {}", a.data.display()))?;
            println!(
                "wrote {} files, {} points to {} in {:.2}s (detector alone {:.3}s, {:.2} M points/s)",
                r.files,
                r.points,
                a.out.display(),
                r.seconds,
                r.detector_seconds,
                r.points as f64 / r.detector_seconds.max(1e-9) / 1e6
            );
            Ok(())
        }
        Command::Nab(NabCommand::Score(a)) => {
            let context = || format!("scoring {} against {}", a.results.display(), a.labels.display());
            let files = harbinger_nab::load_corpus(&a.data, &a.labels, &a.results).with_context(context)?;
            let (score, carry) = match a.threshold {
                Some(t) => {
                    if !(0.0..=harbinger_nab::NO_ALARM_THRESHOLD).contains(&t) {
                        anyhow::bail!("--threshold {t}: must be in [0, {}]", harbinger_nab::NO_ALARM_THRESHOLD);
                    }
                    (harbinger_nab::score_corpus_at(&files, &harbinger_nab::Thresholds::uniform(t)).with_context(context)?, None)
                }
                None => (
                    harbinger_nab::score_corpus(&files).with_context(context)?,
                    Some(harbinger_nab::fit_thresholds_with_margin(&files, a.margin).with_context(context)?),
                ),
            };
            if a.json {
                #[derive(serde::Serialize)]
                struct Report<'a> {
                    #[serde(flatten)]
                    score: &'a harbinger_nab::CorpusScore,
                    /// The thresholds to carry to other data (absent with `--threshold`).
                    for_other_data: Option<harbinger_nab::MarginFit>,
                }
                println!("{}", serde_json::to_string_pretty(&Report { score: &score, for_other_data: carry })?);
            } else {
                print!("{}", score.to_table());
                if let Some(fit) = carry {
                    println!(
                        "\nthresholds for other data (the best mean score here within {} either side; score them with --threshold):",
                        fit.margin
                    );
                    for p in harbinger_nab::Profile::ALL {
                        let t = fit.thresholds.get(p);
                        let t = if t > 1.0 { "none".to_string() } else { format!("{t:.6}") };
                        println!("{:<20} {t:>14} {:>9.2} (mean within the margin)", p.name(), fit.smoothed(p));
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;

    /// An error that prints its source in its own message, as most of the project's do.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "model file m/model.json: {}", self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_are_said_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Wrapped(io())).context("loading the failure model");
        assert_eq!(error_text(&e), "loading the failure model: model file m/model.json: no such file");
        assert_eq!(format!("{e:#}"), "loading the failure model: model file m/model.json: no such file: no such file", "what {{:#}} says");
        // A cause the message does not hold is still appended.
        let e = anyhow::Error::new(io()).context("reading x");
        assert_eq!(error_text(&e), "reading x: no such file");
    }
}
