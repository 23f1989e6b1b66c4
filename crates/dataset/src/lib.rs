//! harbinger-dataset: fleet datasets on disk, in the contract format, and the synthetic
//! fleet generator.
//!
//! A dataset is a directory with `hosts.csv`, `resources.json`, `metrics.parquet` (or
//! `metrics.csv`), `events.jsonl`, optional `failures.csv` and `dataset.json`; see the
//! README's "Data formats" section. Parquet and CSV go through polars.
//!
//! # Layout
//! - [`read`]: [`read_dataset`] loads and validates a directory, with errors that name the
//!   file and line (or row), and a [`LoadReport`] of what was skipped and why.
//! - [`stream`]: [`MetricStream`] reads the metric rows a row group at a time, for jobs over
//!   fleets larger than memory ([`read_inventory`] reads the rest).
//! - [`cuts`]: [`SampleCuts`] hands the samples out in cuts at increasing times, reading the
//!   file only as far as each cut needs (`harbinger replay`).
//! - [`write`]: [`write_dataset`] writes a [`Dataset`] byte-for-byte reproducibly.
//! - [`load`]: [`store_dataset`] writes a dataset into the stores (`harbinger ingest`).
//! - [`synth`]: [`synth::generate`], a seeded synthetic fleet with failures, precursors and
//!   benign look-alikes.
//!
//! Start with [`Dataset`].

pub mod cuts;
pub mod load;
pub mod read;
pub mod stream;
pub mod synth;
pub mod write;

use harbinger_core::{Event, Failure, Host, Resource, SeriesSamples, TimestampMs};
use serde::{Deserialize, Serialize};

pub use cuts::SampleCuts;
pub use load::{IngestReport, store_dataset};
pub use read::{DatasetError, LoadOptions, LoadReport, read_dataset, read_inventory};
pub use stream::{MetricRow, MetricStream};
pub use write::{MetricsFormat, write_dataset, write_features};

/// `dataset.json`: optional description of a dataset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// Human name.
    #[serde(default)]
    pub name: String,
    /// First timestamp covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<TimestampMs>,
    /// End of the covered span (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<TimestampMs>,
    /// Sampling step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_ms: Option<i64>,
    /// Generator seed, for synthetic data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Free text.
    #[serde(default)]
    pub notes: String,
}

/// A whole dataset in memory.
///
/// `metrics` holds one entry per (host, metric), timestamps strictly increasing; a NaN
/// value marks a missing sample (written as NaN, skipped when loading into a store).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// `dataset.json`, if present.
    pub meta: Option<DatasetMeta>,
    /// `hosts.csv`.
    pub hosts: Vec<Host>,
    /// `resources.json`.
    pub resources: Vec<Resource>,
    /// `metrics.parquet` / `metrics.csv`, grouped by series.
    pub metrics: Vec<SeriesSamples>,
    /// `events.jsonl`, sorted by `ts`.
    pub events: Vec<Event>,
    /// `failures.csv`, sorted by timestamp; empty when the file is absent.
    pub failures: Vec<Failure>,
}

impl Dataset {
    /// Number of metric rows (NaN rows included).
    pub fn metric_rows(&self) -> usize {
        self.metrics.iter().map(SeriesSamples::len).sum()
    }
}
