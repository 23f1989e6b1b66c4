//! The live failure scorer `serve` shares between its HTTP and gRPC servers.

use std::sync::Arc;

use harbinger_core::{RiskScorer, Stores};

/// Loads the model in `cfg.model.dir` and returns the live scorer over `stores`.
///
/// # Errors
/// Until the model crate is wired in, always: "no model crate yet".
pub fn build(cfg: &harbinger_config::Config, stores: &Stores) -> anyhow::Result<Arc<dyn RiskScorer>> {
    let _ = stores;
    anyhow::bail!("no model crate yet (model directory {})", cfg.model.dir.display())
}
