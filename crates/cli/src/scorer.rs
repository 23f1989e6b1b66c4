//! The live failure scorer `serve` shares between its HTTP and gRPC servers.

use std::sync::Arc;

use anyhow::Context;
use harbinger_core::{Clock, RiskScorer, SampleBatch, Stores, SystemClock};
use harbinger_model::LiveScorer;

/// Loads the model in `cfg.model.dir` (the built-in default model when `model.dir` is left
/// at its default and holds no model where `serve` runs) and returns the live scorer over `stores`, warmed
/// with the inventory, each series' history back to what the model needs to be warm
/// ([`LiveScorer::warm_history_ms`]: the hot window, or the segments when it holds less)
/// and the last three days of events.
///
/// Must be called on a multi-threaded tokio runtime (it reads the store).
///
/// # Errors
/// The model cannot be loaded (the message names the file), or the store cannot be read.
pub fn build(cfg: &harbinger_config::Config, stores: &Stores) -> anyhow::Result<Arc<dyn RiskScorer>> {
    build_with_clock(cfg, stores, Arc::new(SystemClock))
}

/// [`build`] on the given clock (the wall clock in `serve`, a virtual one in `replay`).
///
/// Must be called on a multi-threaded tokio runtime (it reads the store).
///
/// # Errors
/// As [`build`].
pub fn build_with_clock(cfg: &harbinger_config::Config, stores: &Stores, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<dyn RiskScorer>> {
    let dir = &cfg.model.dir;
    let (alert, clear) = (cfg.model.alert_threshold, cfg.model.clear_threshold);
    // `model.dir` left at its default and absent where serve runs: the built-in model.
    let builtin =
        *dir == harbinger_config::Config::defaults().model.dir && !dir.join("model.json").exists() && !dir.join("CURRENT").exists();
    let scorer = if builtin {
        let model = harbinger_model::Model::embedded_default().context("the built-in default model")?;
        tracing::info!(version = %model.version, dir = %dir.display(), "no model in model.dir: serving the built-in default model");
        LiveScorer::new(model, harbinger_registry::model_source(dir), clock, alert, clear)
    } else {
        let model = harbinger_registry::load_resolved(dir).with_context(|| format!("loading the failure model from {}", dir.display()))?;
        LiveScorer::new(model, harbinger_registry::model_source(dir), clock, alert, clear)
    };
    // ReloadModel may name a directory under the registry or beside the configured model.
    let beside = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let scorer = scorer.with_reload_roots(vec![cfg.model.registry.clone(), beside.to_path_buf()]);
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(warm(&scorer, stores)))
        .context("warming the scorer from the store")?;
    Ok(Arc::new(scorer))
}

async fn warm(scorer: &LiveScorer, stores: &Stores) -> anyhow::Result<()> {
    let hosts = stores.inventory.hosts().await?;
    let resources = stores.inventory.resources().await?;
    scorer.set_inventory(&hosts, &resources);
    let mut newest = i64::MIN;
    let mut samples = 0usize;
    // The store's hot window may hold less than the features need to be warm (it keeps at
    // most 1,024 samples: 4.3 h at a 15 s scrape, against a 6 h warm-up): the history is
    // read from the store's segments back to what the model needs.
    let history = scorer.warm_history_ms();
    for key in stores.metrics.series().await? {
        let hot = stores.metrics.recent(&key).await?;
        let s = match hot.timestamps.last() {
            Some(&last) if hot.timestamps.first().is_some_and(|&first| first > last.saturating_sub(history)) => {
                stores.metrics.range(&key, last.saturating_sub(history), last.saturating_add(1)).await?
            }
            _ => hot,
        };
        if let Some(&t) = s.timestamps.last() {
            newest = newest.max(t);
        }
        samples += s.len();
        scorer.observe_samples(&SampleBatch { series: vec![s] });
    }
    if newest > i64::MIN {
        let events = stores.events.events(newest - 3 * 86_400_000, newest + 1).await?;
        scorer.observe_events(&events);
    }
    tracing::info!(hosts = hosts.len(), samples, "scorer warmed from the store");
    Ok(())
}
