//! Loading a [`Dataset`] into the stores: what `harbinger ingest` does.

use harbinger_core::{AppendReport, SampleBatch, SeriesSamples, StoreError, Stores};

/// Removes NaN samples (missing by contract) in place, counting them.
fn drop_missing(s: &mut SeriesSamples, missing: &mut u64) {
    let nan = s.values.iter().filter(|v| v.is_nan()).count();
    if nan == 0 {
        return;
    }
    *missing += nan as u64;
    let mut w = 0;
    for r in 0..s.values.len() {
        if !s.values[r].is_nan() {
            s.timestamps[w] = s.timestamps[r];
            s.values[w] = s.values[r];
            w += 1;
        }
    }
    s.timestamps.truncate(w);
    s.values.truncate(w);
}
use serde::Serialize;

use crate::Dataset;

/// Samples per append call: large enough to amortise, small enough to bound memory.
const BATCH_SAMPLES: usize = 1 << 20;

/// Counts of what went into the store.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IngestReport {
    /// Hosts upserted.
    pub hosts: u64,
    /// Resources upserted.
    pub resources: u64,
    /// Events appended.
    pub events: u64,
    /// Failures upserted.
    pub failures: u64,
    /// Series written to.
    pub series: u64,
    /// What the metric store did with the samples.
    pub samples: AppendReport,
    /// NaN rows (missing by contract), not stored.
    pub missing_values: u64,
}

/// Writes the whole dataset (consumed, so samples move into the store without copies):
/// inventory first, then samples in batches, then events and
/// failures. Samples already stored for a series are not duplicated: re-ingesting the same
/// dataset refuses them (`duplicate` for the newest, `out_of_order` for older ones) and
/// stores nothing twice.
///
/// # Errors
/// Store failures. Batches written before the failure stay stored.
pub async fn store_dataset(ds: Dataset, stores: &Stores) -> Result<IngestReport, StoreError> {
    let mut rep = IngestReport::default();
    stores.inventory.put_hosts(&ds.hosts).await?;
    rep.hosts = ds.hosts.len() as u64;
    stores.inventory.put_resources(&ds.resources).await?;
    rep.resources = ds.resources.len() as u64;

    let mut batch = SampleBatch::default();
    let mut in_batch = 0usize;
    for mut clean in ds.metrics {
        drop_missing(&mut clean, &mut rep.missing_values);
        if clean.is_empty() {
            continue;
        }
        rep.series += 1;
        in_batch += clean.len();
        batch.series.push(clean);
        if in_batch >= BATCH_SAMPLES {
            rep.samples.merge(stores.metrics.append(&batch).await?);
            batch.series.clear();
            in_batch = 0;
        }
    }
    if !batch.series.is_empty() {
        rep.samples.merge(stores.metrics.append(&batch).await?);
    }
    stores.metrics.flush().await?;

    stores.events.append_events(&ds.events).await?;
    rep.events = ds.events.len() as u64;
    stores.failures.put_failures(&ds.failures).await?;
    rep.failures = ds.failures.len() as u64;
    Ok(rep)
}
