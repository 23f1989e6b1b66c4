//! [`MemoryStore`]: every store trait, in memory. For tests, replay and short-lived tools.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use harbinger_core::{
    AppendReport, Begun, Clock, Event, EventStore, Failure, FailureStore, Finish, Host, Intent, InventoryStore, JournalEntry,
    JournalStatus, MetricStore, Resource, SampleBatch, SeriesKey, SeriesSamples, ShadowId, ShadowStore, StoreError, StoreStats,
    SystemClock, TimestampMs, shadow::Shadow,
};

use crate::series::{Limits, SeriesTable};

#[derive(Debug, Default)]
struct Inner {
    table: SeriesTable,
    /// Full history per series id, beside the bounded hot windows.
    history: Vec<(Vec<TimestampMs>, Vec<f64>)>,
    events: Vec<Event>,
    hosts: BTreeMap<String, Host>,
    resources: BTreeMap<String, Resource>,
    failures: BTreeMap<(TimestampMs, String), Failure>,
    shadows: BTreeMap<ShadowId, Shadow>,
    journal: BTreeMap<String, JournalEntry>,
    journal_seq: u64,
    failed: Option<String>,
}

/// A store that lives in memory and forgets everything on drop.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    /// Whether samples are kept beyond each series' hot window.
    history: bool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl MemoryStore {
    /// An empty store with the given limits, judging time bounds by the wall clock.
    pub fn new(limits: Limits) -> Self {
        Self::with_clock(limits, Arc::new(SystemClock))
    }

    /// An empty store whose retention and future allowance are judged by `clock`
    /// (replay and tests pass a manual clock).
    pub fn with_clock(limits: Limits, clock: Arc<dyn Clock>) -> Self {
        Self { inner: Mutex::new(Inner { table: SeriesTable::new(limits), ..Default::default() }), clock, history: true }
    }

    /// Keeps only each series' hot window (what [`MetricStore::recent`] serves; a
    /// [`MetricStore::range`] sees the part of it inside the range). Replay runs so: nothing
    /// there reads older samples, and a week of a thousand hosts would hold 80 M of them.
    #[must_use]
    pub fn without_history(mut self) -> Self {
        self.history = false;
        self
    }

    /// Makes the store behave as a durable store does after a write failed (a full disk):
    /// every sample append is refused with `reason`, and `stats` reports it. For tests of
    /// what callers do with a failed store.
    pub fn fail(&self, reason: impl Into<String>) {
        self.lock().failed = Some(reason.into());
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the data half-updated in a way that
        // matters more than losing the store, so keep serving.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl MetricStore for MemoryStore {
    async fn append(&self, batch: &SampleBatch) -> Result<AppendReport, StoreError> {
        let mut g = self.lock();
        if let Some(reason) = &g.failed {
            return Err(StoreError::Io {
                op: "append (store failed earlier)",
                path: std::path::PathBuf::from("memory"),
                source: std::io::Error::other(reason.clone()),
            });
        }
        let Inner { table, history, .. } = &mut *g;
        let keep = self.history;
        Ok(table.admit(
            batch,
            self.clock.now_ms(),
            |_, _| {},
            |id, ts, vs| {
                if !keep {
                    return;
                }
                if history.len() <= id as usize {
                    history.resize_with(id as usize + 1, Default::default);
                }
                let h = &mut history[id as usize];
                h.0.extend_from_slice(ts);
                h.1.extend_from_slice(vs);
            },
        ))
    }

    async fn range(&self, key: &SeriesKey, from: TimestampMs, to: TimestampMs) -> Result<SeriesSamples, StoreError> {
        let g = self.lock();
        let id = g.table.id(key).ok_or_else(|| StoreError::UnknownSeries(key.clone()))?;
        if !self.history {
            let hot = g.table.recent(key).ok_or_else(|| StoreError::UnknownSeries(key.clone()))?;
            let lo = hot.timestamps.partition_point(|t| *t < from);
            let hi = hot.timestamps.partition_point(|t| *t < to).max(lo);
            return Ok(SeriesSamples {
                key: key.clone(),
                timestamps: hot.timestamps[lo..hi].to_vec(),
                values: hot.values[lo..hi].to_vec(),
            });
        }
        let Some((ts, vs)) = g.history.get(id as usize) else {
            return Ok(SeriesSamples::new(key.clone()));
        };
        let lo = ts.partition_point(|t| *t < from);
        let hi = ts.partition_point(|t| *t < to).max(lo);
        Ok(SeriesSamples { key: key.clone(), timestamps: ts[lo..hi].to_vec(), values: vs[lo..hi].to_vec() })
    }

    async fn recent(&self, key: &SeriesKey) -> Result<SeriesSamples, StoreError> {
        self.lock().table.recent(key).ok_or_else(|| StoreError::UnknownSeries(key.clone()))
    }

    async fn series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        Ok(self.lock().table.keys())
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let g = self.lock();
        Ok(StoreStats {
            series: g.table.entries.len() as u64,
            samples: g.history.iter().map(|h| h.0.len() as u64).sum(),
            hot_samples: g.table.hot_samples,
            oldest_ms: g.table.oldest,
            newest_ms: g.table.newest,
            sample_bytes: 0,
            failed: g.failed.clone(),
        })
    }

    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append_events(&self, events: &[Event]) -> Result<u64, StoreError> {
        let mut g = self.lock();
        let before = g.events.len();
        g.events.extend_from_slice(events);
        // Stable: ties keep arrival order. Events usually come in time order: when the new
        // ones follow the last one held, the log is already sorted and is not sorted again
        // (a sort per append made a replay quadratic in its events).
        if !g.events[before.saturating_sub(1)..].is_sorted_by_key(|e| e.ts) {
            g.events.sort_by_key(|e| e.ts);
        }
        Ok(events.len() as u64)
    }

    async fn events(&self, from: TimestampMs, to: TimestampMs) -> Result<Vec<Event>, StoreError> {
        Ok(self.lock().events.iter().filter(|e| e.ts >= from && e.ts < to).cloned().collect())
    }
}

#[async_trait]
impl InventoryStore for MemoryStore {
    async fn put_hosts(&self, hosts: &[Host]) -> Result<(), StoreError> {
        let mut g = self.lock();
        for h in hosts {
            g.hosts.insert(h.host.to_string(), h.clone());
        }
        Ok(())
    }
    async fn hosts(&self) -> Result<Vec<Host>, StoreError> {
        Ok(self.lock().hosts.values().cloned().collect())
    }
    async fn put_resources(&self, resources: &[Resource]) -> Result<(), StoreError> {
        let mut g = self.lock();
        for r in resources {
            g.resources.insert(r.id.clone(), r.clone());
        }
        Ok(())
    }
    async fn resources(&self) -> Result<Vec<Resource>, StoreError> {
        Ok(self.lock().resources.values().cloned().collect())
    }
}

#[async_trait]
impl FailureStore for MemoryStore {
    async fn put_failures(&self, failures: &[Failure]) -> Result<(), StoreError> {
        let mut g = self.lock();
        for f in failures {
            g.failures.insert((f.timestamp, f.host.to_string()), f.clone());
        }
        Ok(())
    }
    async fn failures(&self) -> Result<Vec<Failure>, StoreError> {
        Ok(self.lock().failures.values().cloned().collect())
    }
}

#[async_trait]
impl ShadowStore for MemoryStore {
    async fn begin(&self, intent: Intent) -> Result<Begun, StoreError> {
        let mut g = self.lock();
        let (write, begun) = crate::journal::begin(g.journal.get(&intent.key).cloned(), &intent, g.journal_seq + 1);
        if let Some(e) = write {
            if e.attempts == 1 {
                g.journal_seq = e.seq;
            }
            if let Some(s) = &intent.create {
                g.shadows.insert(s.id.clone(), s.clone());
            }
            g.journal.insert(e.key.clone(), e);
        }
        Ok(begun)
    }

    async fn finish(&self, f: Finish) -> Result<JournalEntry, StoreError> {
        let mut g = self.lock();
        let e = crate::journal::finish(g.journal.get(&f.key).cloned(), &f)?;
        g.journal.insert(e.key.clone(), e.clone());
        if let Some(s) = f.shadow {
            g.shadows.insert(s.id.clone(), s);
        }
        Ok(e)
    }

    async fn shadows(&self) -> Result<Vec<Shadow>, StoreError> {
        Ok(self.lock().shadows.values().cloned().collect())
    }

    async fn shadow(&self, id: &ShadowId) -> Result<Option<Shadow>, StoreError> {
        Ok(self.lock().shadows.get(id).cloned())
    }

    async fn put_shadow(&self, shadow: &Shadow) -> Result<(), StoreError> {
        self.lock().shadows.insert(shadow.id.clone(), shadow.clone());
        Ok(())
    }

    async fn journal_entry(&self, key: &str) -> Result<Option<JournalEntry>, StoreError> {
        Ok(self.lock().journal.get(key).cloned())
    }

    async fn pending(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let mut v: Vec<JournalEntry> = self.lock().journal.values().filter(|e| e.status == JournalStatus::Pending).cloned().collect();
        v.sort_by_key(|e| e.seq);
        Ok(v)
    }

    async fn journal(&self, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let mut v: Vec<JournalEntry> = self.lock().journal.values().filter(|e| e.seq > after).cloned().collect();
        v.sort_by_key(|e| e.seq);
        v.truncate(limit);
        Ok(v)
    }

    async fn prune(&self, before: TimestampMs) -> Result<(u64, u64), StoreError> {
        let mut g = self.lock();
        let (s0, j0) = (g.shadows.len(), g.journal.len());
        g.shadows.retain(|_, s| s.is_live() || s.updated_at >= before);
        g.journal.retain(|_, e| e.finished_at.is_none_or(|t| t >= before));
        Ok(((s0 - g.shadows.len()) as u64, (j0 - g.journal.len()) as u64))
    }
}
