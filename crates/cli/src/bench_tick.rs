//! `harbinger bench tick`: the engine tick over a large fleet, in process.
//!
//! The fleet is `datasets/fleet-sample` copied until it has `--hosts` hosts (host and
//! resource ids suffixed `-0001`, ...), each copy with the sample's last `--window` of
//! metrics and its events. One tick = the live scorer's risk step for every host at the
//! clock's now (features, fleet signal, model, alert state), the planner over the whole
//! fleet, and the journaled actions through the `log` actuator into an in-memory shadow
//! store. The first tick (hosts entering the alerting state, shadows planned) is
//! reported apart from the steady ticks that follow.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use harbinger_config::Config;
use harbinger_core::{
    Event, Host, HostId, InventoryStore, ManualClock, Resource, RiskScorer, SampleBatch, SeriesKey, SeriesSamples, Stores,
};
use harbinger_engine::{Engine, EngineConfig, EngineParts, LogActuator, Telemetry};
use harbinger_model::LiveScorer;
use harbinger_store::{Limits, MemoryStore};

use crate::args::BenchTickArgs;

fn renamed(s: &str, copy: usize) -> String {
    format!("{s}-{copy:04}")
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the benchmark and prints a BENCHMARKS.md section.
///
/// # Errors
/// The dataset or the model cannot be loaded.
pub fn run(cfg: &Config, a: &BenchTickArgs, model_dir: &Path) -> anyhow::Result<()> {
    let model = harbinger_registry::load_resolved(model_dir)?;
    let version = model.version.clone();
    let ds = crate::train::load(&a.data)?;
    anyhow::ensure!(!ds.hosts.is_empty(), "{} has no hosts", a.data.display());
    let end = ds.metrics.iter().filter_map(|s| s.timestamps.last().copied()).max().unwrap_or(0);
    let from = end - i64::try_from(a.window.as_millis()).unwrap_or(i64::MAX);
    let copies = a.hosts.div_ceil(ds.hosts.len());
    let mut hosts: Vec<Host> = Vec::with_capacity(a.hosts);
    let mut resources: Vec<Resource> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut series: Vec<SeriesSamples> = Vec::new();
    for c in 0..copies {
        let take = (a.hosts - hosts.len()).min(ds.hosts.len());
        let kept: Vec<&Host> = ds.hosts.iter().take(take).collect();
        let keep = |h: &HostId| kept.iter().any(|k| k.host == *h);
        hosts.extend(kept.iter().map(|h| Host { host: HostId::new(renamed(h.host.as_str(), c)), ..(*h).clone() }));
        for r in ds.resources.iter().filter(|r| keep(&r.host)) {
            let mut r = r.clone();
            r.id = renamed(&r.id, c);
            r.host = HostId::new(renamed(r.host.as_str(), c));
            r.depends_on = r.depends_on.iter().map(|d| renamed(d, c)).collect();
            resources.push(r);
        }
        for e in ds.events.iter().filter(|e| e.host.as_ref().is_none_or(keep)) {
            let mut e = e.clone();
            e.host = e.host.map(|h| HostId::new(renamed(h.as_str(), c)));
            e.resource = e.resource.map(|r| renamed(&r, c));
            e.deployment = e.deployment.map(|d| renamed(&d, c));
            events.push(e);
        }
        for s in ds.metrics.iter().filter(|s| keep(&s.key.host)) {
            let lo = s.timestamps.partition_point(|t| *t < from);
            let key = SeriesKey::new(renamed(s.key.host.as_str(), c), s.key.metric.as_str());
            series.push(SeriesSamples { key, timestamps: s.timestamps[lo..].to_vec(), values: s.values[lo..].to_vec() });
        }
    }
    events.sort_by_key(|e| e.ts);
    let samples: usize = series.iter().map(SeriesSamples::len).sum();

    let clock = Arc::new(ManualClock::new(end));
    let scorer = Arc::new(LiveScorer::new(
        model,
        harbinger_registry::model_source(model_dir),
        clock.clone(),
        cfg.model.alert_threshold,
        cfg.model.clear_threshold,
    ));
    scorer.set_inventory(&hosts, &resources);
    scorer.observe_events(&events);
    for chunk in series.chunks(4096) {
        scorer.observe_samples(&SampleBatch { series: chunk.to_vec() });
    }
    drop(series);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let store = Arc::new(MemoryStore::with_clock(Limits::default(), clock.clone()));
    let engine = rt.block_on(async {
        store.put_hosts(&hosts).await?;
        store.put_resources(&resources).await?;
        let scorer: Arc<dyn RiskScorer> = scorer.clone();
        let parts = EngineParts {
            stores: Stores::from_backend(store.clone()),
            scorer: Some(scorer),
            actuator: Arc::new(LogActuator),
            clock: clock.clone(),
            telemetry: Arc::new(Telemetry::new()),
        };
        let ecfg = EngineConfig { budget: crate::budget(&cfg.engine), ..EngineConfig::default() };
        anyhow::Ok(Engine::open(parts, ecfg).await?.0)
    })?;

    let tick = || -> anyhow::Result<(Duration, harbinger_engine::TickReport)> {
        let t = Instant::now();
        let r = rt.block_on(engine.tick()).context("engine tick")?;
        Ok((t.elapsed(), r))
    };
    let (first_t, first) = tick()?;
    let created = first.executed.iter().filter(|e| e.decision.kind == "shadow_planned").count();
    let mut steady = Vec::new();
    for _ in 0..a.runs.max(1) {
        steady.push(tick()?.0.as_secs_f64() * 1e3);
    }
    let med = median(&steady);
    // The risk step alone (the scorer's share of a tick).
    let mut risk = Vec::new();
    for _ in 0..a.runs.max(1) {
        let t = Instant::now();
        let _transitions = scorer.tick(end);
        let _states = scorer.host_states();
        risk.push(t.elapsed().as_secs_f64() * 1e3);
    }
    crate::bench::print_header(&format!("Engine tick, {} hosts", hosts.len()));
    println!(
        "Model {version}; {} hosts and {} resources ({} copies of {}), warmed with the last {} of metrics ({samples} samples) and {} events. \
         A tick: risk step for every host at one instant, the planner over the fleet, the actions journaled through the `log` actuator.  ",
        hosts.len(),
        resources.len(),
        copies,
        a.data.display(),
        humantime::format_duration(a.window),
        events.len()
    );
    println!("Target: < 50 ms. No peer system ticks a fleet; none is compared.\n");
    println!("| figure | value |\n|---|---|");
    println!(
        "| first tick ({} hosts entered the alerting state, {} decisions, {created} shadows planned) | {:.1} ms |",
        first.transitions.len(),
        first.decisions.len(),
        first_t.as_secs_f64() * 1e3
    );
    let list: Vec<String> = steady.iter().map(|x| format!("{x:.1}")).collect();
    println!("| steady tick, median of {} | **{med:.1} ms** [{}] |", steady.len(), list.join(", "));
    let list: Vec<String> = risk.iter().map(|x| format!("{x:.1}")).collect();
    println!(
        "| of which the risk step (scorer tick + host states), median of {} | {:.1} ms [{}] |",
        risk.len(),
        median(&risk),
        list.join(", ")
    );
    Ok(())
}
