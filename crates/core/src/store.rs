//! Storage traits: one per kind of data, so each can move to another backend on its own.
//!
//! All methods are async and the traits are object safe, so a networked backend can be
//! dropped in behind `Arc<dyn MetricStore>`. Every backend must pass the conformance suite
//! in `harbinger-testkit`.
//!
//! Invariants every backend keeps:
//! - Per series, stored timestamps are strictly increasing. A sample whose timestamp is
//!   not after the newest stored one is rejected (`Duplicate` or `OutOfOrder`) and counted;
//!   the rest of the batch is still stored.
//! - Non-finite values are rejected, never stored.
//! - A returned `AppendReport` means the accepted samples are visible to reads at once,
//!   and durable within the backend's sync policy.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::journal::{Begun, Finish, Intent, JournalEntry};
use crate::shadow::Shadow;
use crate::{AppendReport, Event, Failure, Host, Resource, SampleBatch, SeriesKey, SeriesSamples, ShadowId, TimestampMs};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`open`, `write`, `fsync`, ...).
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data directory is held by another process.
    #[error("data directory {path} is in use by another harbinger process (lock file held)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// Stored data failed an integrity check.
    #[error("corrupt data in {path} at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The embedded database reported an error.
    #[error("embedded database {path}: {reason}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The database's message.
        reason: String,
    },
    /// A read named a series the store has never seen.
    #[error("unknown series {0}")]
    UnknownSeries(SeriesKey),
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// An outcome was recorded for a journal key that was never begun.
    #[error("no journal entry with key {0:?}")]
    UnknownJournalKey(String),
}

/// Counters describing what a store holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Distinct series.
    pub series: u64,
    /// Samples held (on disk for durable backends), after retention.
    pub samples: u64,
    /// Samples in the in-memory hot windows.
    pub hot_samples: u64,
    /// Oldest sample timestamp, if any.
    pub oldest_ms: Option<TimestampMs>,
    /// Newest sample timestamp, if any.
    pub newest_ms: Option<TimestampMs>,
    /// Bytes on disk used by samples (0 for in-memory backends).
    pub sample_bytes: u64,
    /// Why the store refuses writes until it is restarted (a write or fsync failed, e.g.
    /// the disk is full); `None` while healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// Time-series samples per (host, metric).
#[async_trait]
pub trait MetricStore: Send + Sync + std::fmt::Debug {
    /// Appends a batch. Bad samples are rejected one by one and counted in the report;
    /// they never cause accepted samples (in this batch or before) to be lost.
    ///
    /// # Errors
    /// Only for backend failures (I/O, closed store). Bad samples are not errors.
    async fn append(&self, batch: &SampleBatch) -> Result<AppendReport, StoreError>;

    /// Samples of `key` with `from <= ts < to`, in time order.
    ///
    /// # Errors
    /// [`StoreError::UnknownSeries`] if the series was never written; backend failures.
    async fn range(&self, key: &SeriesKey, from: TimestampMs, to: TimestampMs) -> Result<SeriesSamples, StoreError>;

    /// The hot window of `key`: its most recent samples, served from memory.
    ///
    /// # Errors
    /// [`StoreError::UnknownSeries`] if the series was never written.
    async fn recent(&self, key: &SeriesKey) -> Result<SeriesSamples, StoreError>;

    /// Every series the store knows, sorted.
    ///
    /// # Errors
    /// Backend failures.
    async fn series(&self) -> Result<Vec<SeriesKey>, StoreError>;

    /// What the store holds.
    ///
    /// # Errors
    /// Backend failures.
    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Makes everything accepted so far durable now, regardless of the sync interval.
    ///
    /// # Errors
    /// Backend failures.
    async fn flush(&self) -> Result<(), StoreError>;
}

/// Deployment and change events.
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug {
    /// Appends events (any order); returns how many were stored.
    ///
    /// # Errors
    /// Backend failures; then none of `events` is stored.
    async fn append_events(&self, events: &[Event]) -> Result<u64, StoreError>;

    /// Events with `from <= ts < to`, ordered by `ts`, ties in arrival order.
    ///
    /// # Errors
    /// Backend failures.
    async fn events(&self, from: TimestampMs, to: TimestampMs) -> Result<Vec<Event>, StoreError>;
}

/// The fleet inventory: hosts and resources. Puts are upserts by id.
#[async_trait]
pub trait InventoryStore: Send + Sync + std::fmt::Debug {
    /// Inserts or replaces hosts by id.
    ///
    /// # Errors
    /// Backend failures; then none is stored.
    async fn put_hosts(&self, hosts: &[Host]) -> Result<(), StoreError>;
    /// All hosts, sorted by id.
    ///
    /// # Errors
    /// Backend failures.
    async fn hosts(&self) -> Result<Vec<Host>, StoreError>;
    /// Inserts or replaces resources by id.
    ///
    /// # Errors
    /// Backend failures; then none is stored.
    async fn put_resources(&self, resources: &[Resource]) -> Result<(), StoreError>;
    /// All resources, sorted by id.
    ///
    /// # Errors
    /// Backend failures.
    async fn resources(&self) -> Result<Vec<Resource>, StoreError>;
}

/// Ground-truth failures, for training and evaluation. Keyed by (host, timestamp).
#[async_trait]
pub trait FailureStore: Send + Sync + std::fmt::Debug {
    /// Inserts or replaces failures by (host, timestamp).
    ///
    /// # Errors
    /// Backend failures; then none is stored.
    async fn put_failures(&self, failures: &[Failure]) -> Result<(), StoreError>;
    /// All failures, sorted by (timestamp, host).
    ///
    /// # Errors
    /// Backend failures.
    async fn failures(&self) -> Result<Vec<Failure>, StoreError>;
}

/// Shadows and the action journal, kept together: an action's journal entry and the
/// shadow it changes are written in one transaction.
///
/// Rules every backend keeps (see `harbinger_testkit::conformance::shadow_store`):
/// - [`begin`](Self::begin) is idempotent by key: a key journaled before (pending or
///   finished) is answered [`Begun::Existing`] and nothing is written, except that a key
///   whose last attempt `failed` is begun again (`attempts` + 1).
/// - A creation's shadow is stored with its intent (again when a failed creation is
///   begun again); a key journaled before never overwrites it.
/// - [`finish`](Self::finish) stores the outcome and the shadow's new value at once.
/// - Entries begun and never finished are [`pending`](Self::pending), oldest first, until
///   finished: after a crash they are what the engine resumes.
#[async_trait]
pub trait ShadowStore: Send + Sync + std::fmt::Debug {
    /// Journals `intent` as pending (and stores its new shadow), unless its key exists.
    ///
    /// # Errors
    /// Storage failures.
    async fn begin(&self, intent: Intent) -> Result<Begun, StoreError>;
    /// Records the outcome of a pending entry and the shadow's new value.
    ///
    /// # Errors
    /// [`StoreError::UnknownJournalKey`] when the key was never begun; storage failures.
    async fn finish(&self, finish: Finish) -> Result<JournalEntry, StoreError>;
    /// Every shadow (terminal ones included), by id.
    ///
    /// # Errors
    /// Storage failures.
    async fn shadows(&self) -> Result<Vec<Shadow>, StoreError>;
    /// One shadow.
    ///
    /// # Errors
    /// Storage failures.
    async fn shadow(&self, id: &ShadowId) -> Result<Option<Shadow>, StoreError>;
    /// Stores a shadow's new value outside any action (e.g. `last_used_at`).
    ///
    /// # Errors
    /// Storage failures.
    async fn put_shadow(&self, shadow: &Shadow) -> Result<(), StoreError>;
    /// The journal entry with this key.
    ///
    /// # Errors
    /// Storage failures.
    async fn journal_entry(&self, key: &str) -> Result<Option<JournalEntry>, StoreError>;
    /// Entries begun and not finished, oldest first.
    ///
    /// # Errors
    /// Storage failures.
    async fn pending(&self) -> Result<Vec<JournalEntry>, StoreError>;
    /// Up to `limit` entries with `seq > after`, in order.
    ///
    /// # Errors
    /// Storage failures.
    async fn journal(&self, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError>;
    /// Deletes terminal shadows last changed before `before`, and finished journal entries
    /// finished before it. Returns (shadows, entries) deleted.
    ///
    /// # Errors
    /// Storage failures.
    async fn prune(&self, before: TimestampMs) -> Result<(u64, u64), StoreError>;
}

/// Handles to every kind of store, as the server and the jobs use them. One backend
/// usually implements all five; [`Stores::from_backend`] shares it.
#[derive(Clone, Debug)]
pub struct Stores {
    /// Samples.
    pub metrics: std::sync::Arc<dyn MetricStore>,
    /// Events.
    pub events: std::sync::Arc<dyn EventStore>,
    /// Hosts and resources.
    pub inventory: std::sync::Arc<dyn InventoryStore>,
    /// Ground-truth failures.
    pub failures: std::sync::Arc<dyn FailureStore>,
    /// Shadows and the action journal.
    pub shadows: std::sync::Arc<dyn ShadowStore>,
}

impl Stores {
    /// All four handles backed by one store.
    pub fn from_backend<S>(s: std::sync::Arc<S>) -> Self
    where
        S: MetricStore + EventStore + InventoryStore + FailureStore + ShadowStore + 'static,
    {
        Self { metrics: s.clone(), events: s.clone(), inventory: s.clone(), failures: s.clone(), shadows: s }
    }
}
