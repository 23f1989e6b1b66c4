//! `harbinger ingest --data DIR`: load a dataset into the store.

use std::sync::Arc;

use anyhow::Context;
use harbinger_config::Config;
use harbinger_core::Stores;
use harbinger_dataset::{LoadOptions, read_dataset, store_dataset};

use crate::args::IngestArgs;

/// Reads and validates the dataset, then writes it into the configured store and prints
/// the counts. A dataset that fails validation writes nothing.
///
/// # Errors
/// Invalid dataset (file and line named), or store failures.
pub async fn run(cfg: &Config, a: &IngestArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let data = a.data.clone();
    let opts = LoadOptions { skip_invalid_rows: a.skip_invalid_rows };
    let (ds, load) = tokio::task::spawn_blocking(move || read_dataset(&data, opts))
        .await
        .context("dataset reader task")?
        .with_context(|| format!("reading dataset {}", a.data.display()))?;
    let store = Arc::new(crate::open_store(cfg)?);
    let report = store_dataset(ds, &Stores::from_backend(store.clone())).await.context("writing into the store")?;
    store.close().context("syncing the store")?;
    let secs = started.elapsed().as_secs_f64();
    if a.json {
        let v = serde_json::json!({ "load": load, "ingest": report, "seconds": secs });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("ingested {} into {}", a.data.display(), cfg.data_dir.display());
    println!("  metrics file      {}", load.metrics_file.display());
    println!("  hosts             {}", report.hosts);
    println!("  resources         {}", report.resources);
    println!("  series            {}", report.series);
    println!("  samples stored    {}", report.samples.accepted);
    for (reason, n) in &report.samples.rejected {
        println!("  samples rejected  {n} ({reason})");
    }
    if report.samples.rejected.contains_key(&harbinger_core::RejectReason::TooOld) {
        let kept = cfg.store.retention.map_or_else(|| "forever".to_string(), |d| humantime::format_duration(d).to_string());
        println!(
            "  note              too_old = before the server's clock minus store.retention ({kept}); \
             to keep older history set store.retention = \"forever\" (or HARBINGER_STORE_RETENTION=forever)"
        );
    }
    println!("  missing values    {}", report.missing_values);
    println!("  duplicate rows    {} (last row kept)", load.duplicate_rows);
    println!("  out-of-order rows {} (sorted)", load.out_of_order_rows);
    if load.skipped_rows > 0 {
        println!("  invalid rows      {} skipped; first: {}", load.skipped_rows, load.first_skipped.as_deref().unwrap_or(""));
    }
    println!("  events            {}", report.events);
    println!("  failures          {}", report.failures);
    if !load.absent_files.is_empty() {
        println!("  absent files      {}", load.absent_files.join(", "));
    }
    println!("  took              {secs:.2}s");
    Ok(())
}
