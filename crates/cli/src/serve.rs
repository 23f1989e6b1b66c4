//! `harbinger serve`: HTTP and gRPC in one process, over one embedded store and one scorer.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use harbinger_api::AppState;
use harbinger_config::Config;
use harbinger_core::{InventoryStore, RiskScorer, Stores};
use harbinger_engine::{Engine, EngineConfig, EngineParts, Telemetry};
use tokio::sync::watch;

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (inside
/// the runtime), not when the future is first polled: a SIGTERM that arrives right after
/// start-up must shut down cleanly instead of killing the process with the default action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (int, term) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
        async move {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = wait(int, "SIGINT") => tracing::info!("SIGINT received, shutting down"),
                () = wait(term, "SIGTERM") => tracing::info!("SIGTERM received, shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C received, shutting down");
    }
}

/// Reloads the model on every SIGHUP: the new version is logged; a failing reload keeps the
/// old model serving and logs why.
#[cfg(unix)]
fn reload_on_sighup(scorer: Option<Arc<dyn RiskScorer>>) -> anyhow::Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("listening for SIGHUP")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(scorer) = scorer.clone() else {
                tracing::warn!("SIGHUP received, but serve runs without a model: nothing to reload");
                continue;
            };
            let previous = scorer.model_info().version;
            match tokio::task::spawn_blocking(move || scorer.reload(None)).await {
                Ok(Ok(m)) => tracing::info!(%previous, current = %m.version, "SIGHUP: model reloaded"),
                Ok(Err(e)) => tracing::error!(error = %e, %previous, "SIGHUP: model reload failed; the previous model keeps serving"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_sighup(_scorer: Option<Arc<dyn RiskScorer>>) -> anyhow::Result<()> {
    Ok(())
}

/// Runs an engine tick every `every` until `stop` resolves: advances every host's risk
/// and alert state on the wall clock, plans, and performs the plan. Reads never move
/// alert state; this loop does.
async fn tick_loop(engine: Engine, every: std::time::Duration, stop: impl Future<Output = ()>) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = interval.tick() => {}
        }
        match engine.tick().await {
            Ok(t) => {
                for tr in &t.transitions {
                    tracing::info!(host = %tr.host, kind = ?tr.kind, risk = tr.risk, probability = tr.failure_probability, "alert state changed");
                }
                for d in &t.decisions {
                    tracing::info!(kind = %d.kind, host = %d.host, resource = ?d.resource.as_ref().map(|r| r.as_str()), reason = %d.reason, "decision");
                }
            }
            Err(e) => tracing::error!(error = %e, "engine tick failed"),
        }
    }
}

/// What `serve` and `replay` build the pipeline from.
pub struct PipelineParts {
    /// The stores (inventory, metrics, events, shadows).
    pub stores: Stores,
    /// The clock of the scorer and the engine: the wall clock in `serve`, a virtual one
    /// in `replay`.
    pub clock: Arc<dyn harbinger_core::Clock>,
    /// Who performs the engine's actions.
    pub actuator: Arc<dyn harbinger_engine::Actuator>,
    /// Own metrics.
    pub telemetry: Arc<Telemetry>,
    /// The engine's settings (budget, decision log, snapshots).
    pub engine: EngineConfig,
    /// When set, only these hosts' samples and events are accepted.
    pub strict_hosts: Option<Arc<HashSet<harbinger_core::HostId>>>,
}

/// The pipeline samples and events go through: the live scorer, the engine over it, and
/// the one ingest path that feeds both. `serve` and `replay` build it with [`pipeline`]:
/// replay runs the same engine, not a copy.
#[derive(Clone)]
pub struct Pipeline {
    /// The stores.
    pub stores: Stores,
    /// The live scorer; `None` when the model cannot be loaded ([`Pipeline::no_model_reason`]).
    pub scorer: Option<Arc<dyn RiskScorer>>,
    /// Why there is no scorer (empty when there is one).
    pub no_model_reason: String,
    /// Own metrics.
    pub telemetry: Arc<Telemetry>,
    /// The engine (risk ticks, plans, journaled actions).
    pub engine: Engine,
    /// The ingest path HTTP and gRPC use: stores samples and events, feeds the scorer and
    /// the engine.
    pub ingest: harbinger_engine::Ingest,
}

/// Builds the [`Pipeline`]: the live scorer of `cfg.model` on `parts.clock` (the built-in
/// model when `model.dir` is left at its default and holds none; without a loadable model
/// the pipeline has no scorer and says why), the engine over it (resuming its journal),
/// and the ingest path over both.
///
/// Must be called on a multi-threaded tokio runtime.
///
/// # Errors
/// The store cannot be read, or the engine cannot be opened.
pub async fn pipeline(cfg: &Config, parts: PipelineParts) -> anyhow::Result<Pipeline> {
    let PipelineParts { stores, clock, actuator, telemetry, engine: ecfg, strict_hosts } = parts;
    let (scorer, no_model_reason) = match crate::scorer::build_with_clock(cfg, &stores, clock.clone()) {
        Ok(s) => {
            let m = s.model_info();
            tracing::info!(version = %m.version, learner = %m.learner, dir = %cfg.model.dir.display(), "failure model loaded");
            (Some(s), String::new())
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), dir = %cfg.model.dir.display(),
                "running without a failure model: risk calls answer UNAVAILABLE (gRPC) and 503 (HTTP)");
            (None, format!("{e:#}"))
        }
    };
    let eparts = EngineParts { stores: stores.clone(), scorer: scorer.clone(), actuator, clock, telemetry: telemetry.clone() };
    let (engine, resumed) = Engine::open(eparts, ecfg).await.context("opening the engine")?;
    tracing::info!(shadows = resumed.shadows, resumed = resumed.resumed.len(), actuator = engine.actuator(), "engine ready");
    let ingest = harbinger_engine::Ingest {
        stores: stores.clone(),
        scorer: scorer.clone(),
        engine: Some(engine.clone()),
        telemetry: telemetry.clone(),
        strict_hosts,
    };
    Ok(Pipeline { stores, scorer, no_model_reason, telemetry, engine, ingest })
}

/// The snapshot settings of `[snapshots]`, with the snapshots kept in `dir`.
///
/// # Errors
/// Invalid `[snapshots.profiles]`.
pub fn snapshot_config(cfg: &Config, dir: std::path::PathBuf) -> anyhow::Result<harbinger_snapshot::SnapshotConfig> {
    let sc = &cfg.snapshots;
    Ok(harbinger_snapshot::SnapshotConfig {
        dir,
        replica_dir: sc.replica_dir.clone(),
        ttl_ms: sc.ttl.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        max_chain: sc.max_chain,
        profiles: harbinger_snapshot::Profiles::from_table(sc.profiles.clone()).context("[snapshots.profiles]")?,
        durable: true,
    })
}

/// The configured actuator (`engine.actuator`): the `log` dry run or the chain.
fn actuator(cfg: &Config, telemetry: &Arc<Telemetry>) -> anyhow::Result<Arc<dyn harbinger_engine::Actuator>> {
    Ok(match cfg.engine.actuator {
        harbinger_config::ActuatorKind::Log => Arc::new(harbinger_engine::LogActuator),
        harbinger_config::ActuatorKind::Chain => {
            let ctx = harbinger_actuate::BuildContext { data_dir: cfg.data_dir.clone() };
            let built = harbinger_actuate::build_chain(&cfg.actuators, &ctx)?;
            export_circuits(built.circuits, telemetry.clone());
            Arc::new(built.chain)
        }
    })
}

/// Keeps `harbinger_actuator_circuit_open` and `_opened` up to date from the chain's
/// circuit breakers, once a second.
fn export_circuits(circuits: Vec<harbinger_actuate::layers::CircuitHandle>, telemetry: Arc<Telemetry>) {
    if circuits.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut seen = vec![0_u64; circuits.len()];
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            for (step, (c, seen)) in circuits.iter().zip(seen.iter_mut()).enumerate() {
                let label = harbinger_engine::telemetry::StepLabel { actuator: c.actuator(), step: step as u64 };
                telemetry.circuit_open.get_or_create(&label).set(i64::from(c.is_open()));
                let opened = c.times_opened();
                telemetry.circuit_opened.get_or_create(&label).inc_by(opened.saturating_sub(*seen));
                *seen = opened;
            }
        }
    });
}

/// The change engine behind gRPC `ChangeService`, on `<data_dir>/changes.redb` with the
/// embedded change-risk model, recording the changes it applies and rolls back in `events`
/// (as `harbinger apply` does); `None` (logged) when it cannot be opened: the server then
/// runs without it and `ChangeService` answers UNAVAILABLE (health NOT_SERVING).
fn open_change_engine(
    cfg: &Config,
    events: Arc<dyn harbinger_core::EventStore>,
    clock: Arc<dyn harbinger_core::Clock>,
) -> Option<Arc<harbinger_change::ChangeEngine>> {
    let model = harbinger_change::risk::ChangeRiskModel::embedded_default();
    match harbinger_change::ChangeEngine::open(
        &cfg.data_dir,
        model,
        clock,
        harbinger_change::EngineConfig {
            parallelism: cfg.change.parallelism,
            risk_threshold: cfg.change.risk_threshold,
            alert_webhook: cfg.change.alert_webhook.clone(),
        },
    ) {
        Ok(e) => {
            tracing::info!(store = %e.store().path().display(), "change engine ready");
            Some(Arc::new(e.with_events(events)))
        }
        Err(e) => {
            tracing::warn!(error = %e, "serving without the change engine: ChangeService calls answer UNAVAILABLE");
            None
        }
    }
}

/// Entries of the remote-write series cache: twice `store.max_series` (at least 4,096, at
/// most 2^20). The cache only saves work for series the store takes, so label sets the
/// series limit refuses (a client inventing hosts) fill it to this and clear it, rather
/// than growing it to a million entries.
pub fn series_cache_entries(max_series: usize) -> usize {
    max_series.saturating_mul(2).clamp(4_096, 1 << 20)
}

/// Reads the TLS certificate and key named by `grpc.tls_cert`/`grpc.tls_key`.
fn tls_identity(cfg: &Config) -> anyhow::Result<Option<tonic::transport::Identity>> {
    let Some(tls) = &cfg.grpc.tls else { return Ok(None) };
    let cert = std::fs::read(&tls.cert).with_context(|| format!("reading grpc.tls_cert {}", tls.cert.display()))?;
    let key = std::fs::read(&tls.key).with_context(|| format!("reading grpc.tls_key {}", tls.key.display()))?;
    Ok(Some(tonic::transport::Identity::from_pem(cert, key)))
}

/// Opens the store and the model, serves HTTP and gRPC until `shutdown` resolves (or one
/// of them fails), then lets both finish in-flight requests, syncs and closes the store.
///
/// Without a loadable model it still serves ingest; the risk calls answer UNAVAILABLE
/// (gRPC) or 503 (HTTP), and the reason is logged.
///
/// # Errors
/// The store cannot be opened, an address cannot be bound, the TLS files cannot be read,
/// or a server fails.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    run_with_clock(cfg, Arc::new(harbinger_core::SystemClock), shutdown).await
}

/// [`run`] on the given clock: the store's retention and future allowance, the scorer,
/// the engine and the change engine all read it (`serve --clock-speed` passes a sped-up
/// wall clock for soak runs).
///
/// # Errors
/// As [`run`].
pub async fn run_with_clock(
    cfg: Config,
    clock: Arc<dyn harbinger_core::Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut store_cfg = crate::store_config(&cfg);
    store_cfg.clock = clock.clone();
    let store = Arc::new(
        harbinger_store::EmbeddedStore::open(store_cfg).with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?,
    );
    let stores = Stores::from_backend(store.clone());
    let strict_hosts = if cfg.http.strict_hosts {
        let hosts = store.hosts().await?;
        tracing::info!(hosts = hosts.len(), "strict hosts: only inventory hosts are accepted");
        Some(Arc::new(hosts.into_iter().map(|h| h.host).collect::<HashSet<_>>()))
    } else {
        None
    };
    let token: Option<Arc<str>> = cfg.auth.token.as_ref().map(|t| Arc::from(t.expose()));
    let telemetry = Arc::new(Telemetry::new());
    let parts = PipelineParts {
        stores: stores.clone(),
        clock: clock.clone(),
        actuator: actuator(&cfg, &telemetry)?,
        telemetry: telemetry.clone(),
        engine: EngineConfig {
            budget: crate::budget(&cfg.engine),
            decision_log: Some(cfg.data_dir.join("decisions.jsonl")),
            snapshots: Some(snapshot_config(&cfg, cfg.snapshots.dir.clone())?),
            history_ms: crate::history_ms(&cfg.engine),
            ..EngineConfig::default()
        },
        strict_hosts: strict_hosts.clone(),
    };
    let Pipeline { scorer, no_model_reason, engine, .. } = pipeline(&cfg, parts).await?;

    let mut state = AppState::new(stores.clone(), telemetry.clone(), cfg.http.max_body_bytes);
    state.series_cache = Arc::new(harbinger_ingest::remote_write::SeriesCache::new(series_cache_entries(cfg.store.max_series)));
    state.engine = Some(engine.clone());
    state.strict_hosts = strict_hosts.clone();
    state.scorer = scorer.clone();
    state.token = token.clone();
    state.protect_reads = cfg.auth.protect_reads;
    state.rollouts_dir = Some(cfg.data_dir.join("rollouts"));

    let change_engine = open_change_engine(&cfg, stores.events.clone(), clock);
    let mut grpc = harbinger_grpc::GrpcState::new(stores, scorer.clone(), telemetry);
    grpc.strict_hosts = strict_hosts;
    grpc.engine = Some(engine.clone());
    grpc.change = change_engine;
    grpc.rollouts_dir = Some(cfg.data_dir.join("rollouts"));
    grpc.change_monitor_for = cfg.change.monitor_for;
    grpc.change_monitor_every = cfg.change.monitor_every;
    grpc.limits =
        harbinger_grpc::Limits { max_hosts_per_request: cfg.grpc.max_hosts_per_request, max_message_bytes: cfg.grpc.max_message_bytes };
    grpc.auth = harbinger_grpc::auth::Auth::new(token).protecting_reads(cfg.auth.protect_reads);
    if !no_model_reason.is_empty() {
        grpc.no_model_reason = Arc::from(no_model_reason);
    }
    let tls = tls_identity(&cfg)?;

    let http_listener = tokio::net::TcpListener::bind(cfg.http.addr).await.with_context(|| format!("binding HTTP on {}", cfg.http.addr))?;
    let http_addr = http_listener.local_addr().context("reading the bound HTTP address")?;
    let grpc_listener = tokio::net::TcpListener::bind(cfg.grpc.addr).await.with_context(|| format!("binding gRPC on {}", cfg.grpc.addr))?;
    let grpc_addr = grpc_listener.local_addr().context("reading the bound gRPC address")?;
    reload_on_sighup(scorer)?;
    tracing::info!(http = %http_addr, grpc = %grpc_addr, tls = tls.is_some(), auth = cfg.auth.token.is_some(),
        data_dir = %cfg.data_dir.display(), "harbinger serving");
    // Printed on stdout so scripts and tests can find the ports when binding to :0.
    println!("listening on http://{http_addr}");
    println!("listening on grpc://{grpc_addr}");

    // One stop signal for both servers: the shutdown future, or either server ending.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_rx_ticks = stop_rx.clone();
    let stop_tx = Arc::new(stop_tx);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        // An error means the sender is gone, which also means stop.
        let _stop = rx.wait_for(|s| *s).await;
    };
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop_tx.send_replace(true);
        });
    }
    // Predicted changes dropped into `change.watch_dir`.
    if let Some(dir) = cfg.change.watch_dir.clone() {
        match grpc.change.clone() {
            Some(ce) => {
                let c = &cfg.change;
                let opts = harbinger_change::predict::SubmitOptions {
                    monitor_for: c.monitor_for,
                    monitor_every: c.monitor_every,
                    override_high_cost: false,
                };
                tracing::info!(dir = %dir.display(), every = ?c.watch_every, "watching for submitted changes");
                tokio::spawn(harbinger_change::predict::watch_dir(ce, dir, c.watch_every, opts, stopped(stop_rx.clone())));
            }
            None => tracing::warn!(dir = %dir.display(), "change.watch_dir is set but the change engine is not running: not watched"),
        }
    }
    let http = {
        let stop_tx = stop_tx.clone();
        let timeouts = harbinger_api::HttpTimeouts {
            header: cfg.http.header_timeout,
            body: cfg.http.body_timeout,
            shutdown: cfg.http.shutdown_timeout,
        };
        let fut = harbinger_api::serve_with(http_listener, state, timeouts, stopped(stop_rx.clone()));
        async move {
            let r = fut.await;
            stop_tx.send_replace(true);
            r.context("HTTP server")
        }
    };
    let grpc = {
        let stop_tx = stop_tx.clone();
        let mut stop_seen = stop_rx.clone();
        let deadline = cfg.http.shutdown_timeout;
        let fut = harbinger_grpc::serve(grpc_listener, grpc, tls, stopped(stop_rx));
        async move {
            tokio::pin!(fut);
            // In-flight calls get `http.shutdown_timeout` once shutdown begins; then the
            // server and its connections are dropped (accepted data is durable by then).
            let past_deadline = async {
                // The guard `wait_for` returns must not live across the sleep (not Send).
                let _stopped: bool = stop_seen.wait_for(|s| *s).await.is_ok();
                tokio::time::sleep(deadline).await;
            };
            let r = tokio::select! {
                r = &mut fut => r,
                () = past_deadline => {
                    tracing::warn!(?deadline, "gRPC calls still open at the shutdown deadline: dropped");
                    Ok(())
                }
            };
            stop_tx.send_replace(true);
            r.context("gRPC server")
        }
    };
    let watchdog = {
        let w = &cfg.watchdog;
        let stop = stopped(stop_rx_ticks.clone());
        let dog = w.enabled.then(|| {
            harbinger_engine::Watchdog::new(
                engine.clone(),
                harbinger_engine::WatchdogConfig { interval: w.interval, timeout: w.timeout, fall: w.fall, window: w.window },
            )
        });
        async move {
            match dog {
                Some(d) => d.run(stop).await,
                None => stop.await,
            }
        }
    };
    let ticker = tick_loop(engine, cfg.engine.tick, stopped(stop_rx_ticks));
    let (h, g, (), ()) = tokio::join!(http, grpc, ticker, watchdog);
    let closed = store.close().context("final sync of the store");
    h?;
    g?;
    closed?;
    tracing::info!("stopped cleanly");
    Ok(())
}
