//! [`EmbeddedStore`]: the default durable store, in one data directory.
//!
//! ```text
//! <data_dir>/LOCK          held (flock) while a process uses the directory
//! <data_dir>/state.redb    events, hosts, resources, failures (redb, ACID, fsync per commit)
//! <data_dir>/samples/*.seg append-only sample segments (see `segment`)
//! ```
//!
//! Samples go to a buffered segment writer; a background thread flushes and fsyncs it
//! every `sync_interval` (0 = on every append), so a crash loses at most that much. A clean
//! stop ([`EmbeddedStore::close`], or drop) syncs everything. At start-up the segments are
//! read back to rebuild the series table and the hot windows.
//!
//! Why segments and not redb for samples: one redb commit per remote-write request costs an
//! fsync, and a row per sample costs ~100 bytes; segments take a sample in ~9 bytes and
//! group-commit on the sync interval. `BENCHMARKS.md` has the figures.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use harbinger_core::{
    AppendReport, Clock, Event, EventStore, Failure, FailureStore, Host, InventoryStore, MetricStore, Resource, SampleBatch, SeriesKey,
    SeriesSamples, StoreError, StoreStats, SystemClock, TimestampMs,
};
use harbinger_core::{Begun, Finish, Intent, JournalEntry, JournalStatus, ShadowId, ShadowStore, shadow::Shadow};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::segment::{self, Record, SamplesPayload, SegmentMeta, SegmentWriter};
use crate::series::{Limits, SeriesTable};

const EVENTS: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("events");
const HOSTS: TableDefinition<&str, &[u8]> = TableDefinition::new("hosts");
const RESOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("resources");
const FAILURES: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("failures");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Shadows by id (JSON).
const SHADOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("shadows");
/// Journal entries by idempotency key (JSON).
const JOURNAL: TableDefinition<&str, &[u8]> = TableDefinition::new("journal");
/// Journal order: seq -> key.
const JOURNAL_SEQ: TableDefinition<u64, &str> = TableDefinition::new("journal_seq");
/// Pending journal entries: seq -> key.
const JOURNAL_PENDING: TableDefinition<u64, &str> = TableDefinition::new("journal_pending");

/// Checked configuration of an [`EmbeddedStore`].
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// The server's clock: retention and the future allowance are judged against it.
    pub clock: Arc<dyn Clock>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Retention, hot-window and series bounds.
    pub limits: Limits,
    /// How often buffered samples are flushed and fsynced; zero syncs on every append.
    pub sync_interval: Duration,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
}

impl EmbeddedConfig {
    /// Defaults for a directory: the wall clock, 1 s sync, 64 MiB segments, default limits.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            clock: Arc::new(SystemClock),
            data_dir: data_dir.into(),
            limits: Limits::default(),
            sync_interval: Duration::from_secs(1),
            segment_bytes: 64 << 20,
        }
    }
}

/// What start-up found on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments read.
    pub segments: u64,
    /// Samples read back.
    pub samples: u64,
    /// Bytes cut from the end of the newest segment (a write torn by a crash).
    pub truncated_bytes: u64,
    /// Segments with a bad record before their end: file and reason. Their tail is skipped.
    pub damaged: Vec<(PathBuf, String)>,
    /// Segments deleted by retention.
    pub expired_segments: u64,
}

#[derive(Debug)]
struct Log {
    writer: SegmentWriter,
    closed: Vec<SegmentMeta>,
    payload: SamplesPayload,
    defs: Vec<u8>,
    /// Set after a write error: the store refuses further appends rather than diverge.
    failed: Option<String>,
}

#[derive(Debug)]
struct Inner {
    cfg: EmbeddedConfig,
    samples_dir: PathBuf,
    db_path: PathBuf,
    table: RwLock<SeriesTable>,
    log: Mutex<Log>,
    db: redb::Database,
    /// Syncer stop flag and its wake-up.
    stop: (Mutex<bool>, Condvar),
    _lock: File,
}

/// The durable embedded store. Implements every store trait.
#[derive(Debug)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    recovery: RecoveryReport,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn db_err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Database { path: self.db_path.clone(), reason: e.to_string() }
    }

    fn table_read(&self) -> std::sync::RwLockReadGuard<'_, SeriesTable> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn table_write(&self) -> std::sync::RwLockWriteGuard<'_, SeriesTable> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn sync_now(&self) -> Result<(), StoreError> {
        let mut log = lock(&self.log);
        if log.writer.unsynced > 0 {
            log.writer.sync()?;
        }
        Ok(())
    }

    /// Closes the active segment, opens the next one with every series defined, and
    /// applies retention to closed segments.
    fn roll(&self, table: &mut SeriesTable, log: &mut Log) -> Result<(), StoreError> {
        log.writer.sync()?;
        let next = start_segment(&self.samples_dir, log.writer.meta.seq + 1, table)?;
        let old = std::mem::replace(&mut log.writer, next);
        log.closed.push(old.meta);
        self.expire(table, log)?;
        Ok(())
    }

    /// Deletes closed segments entirely older than the retention horizon, measured back
    /// from the server's clock (never from the data, so a sample stamped in the future
    /// cannot expire the rest).
    fn expire(&self, table: &mut SeriesTable, log: &mut Log) -> Result<u64, StoreError> {
        let Some(horizon) = table.limits.horizon(self.cfg.clock.now_ms()) else { return Ok(0) };
        let mut removed = 0;
        let mut keep = Vec::with_capacity(log.closed.len());
        for m in log.closed.drain(..) {
            if m.max_ts.is_none_or(|t| t < horizon) {
                std::fs::remove_file(&m.path).map_err(|source| StoreError::Io { op: "delete", path: m.path.clone(), source })?;
                removed += 1;
            } else {
                keep.push(m);
            }
        }
        log.closed = keep;
        if removed > 0 {
            table.forget_before(horizon);
            tracing::info!(removed, horizon, "expired sample segments");
        }
        Ok(removed)
    }
}

/// Replays one segment record at start-up: a definition into the series table, samples
/// into the hot windows (noting what they cover in `meta`).
fn replay(table: &mut SeriesTable, meta: &mut SegmentMeta, rec: Record<'_>) -> Result<(), &'static str> {
    match rec {
        Record::Def { id, key } => {
            if table.id(&key) != Some(id) && !table.define(id, key) {
                return Err("series definition conflicts with an earlier one");
            }
        }
        Record::Samples(mut r) => {
            while let Some((id, ts, vs)) = r.next_chunk()? {
                if id as usize >= table.entries.len() {
                    return Err("samples for an undefined series");
                }
                meta.note(ts.first().copied(), ts.last().copied(), ts.len() as u64);
                table.restore(id, &ts, &vs);
            }
        }
    }
    Ok(())
}

/// What [`check_segment`] found in the bytes of a segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentCheck {
    /// Series defined.
    pub series: u64,
    /// Samples read.
    pub samples: u64,
    /// Oldest sample time.
    pub min_ts: Option<TimestampMs>,
    /// Newest sample time.
    pub max_ts: Option<TimestampMs>,
    /// Bytes up to the end of the last good record (start-up cuts a torn tail here).
    pub good_len: u64,
    /// Why reading stopped before the end, if it did.
    pub problem: Option<String>,
}

/// Reads the bytes of one segment file (`samples/*.seg`) as start-up does (framing,
/// checksums, series definitions, sample chunks and the series they name) without a
/// data directory: for inspecting a damaged segment, and for fuzzing the decoder.
pub fn check_segment(data: &[u8]) -> SegmentCheck {
    let mut table = SeriesTable::new(Limits::default());
    let mut meta = SegmentMeta { path: PathBuf::new(), seq: 0, min_ts: None, max_ts: None, samples: 0, bytes: 0 };
    let end = segment::scan_bytes(data, |rec| replay(&mut table, &mut meta, rec));
    SegmentCheck {
        series: table.entries.len() as u64,
        samples: meta.samples,
        min_ts: meta.min_ts,
        max_ts: meta.max_ts,
        good_len: end.good_len,
        problem: end.problem,
    }
}

/// Creates segment `seq` and writes the definitions of every known series into it.
fn start_segment(samples_dir: &Path, seq: u64, table: &SeriesTable) -> Result<SegmentWriter, StoreError> {
    let path = segment::segment_path(samples_dir, seq);
    let meta = SegmentMeta { path, seq, min_ts: None, max_ts: None, samples: 0, bytes: 0 };
    let mut w = SegmentWriter::open(meta, Some(0))?;
    let mut buf = Vec::new();
    for (id, e) in table.entries.iter().enumerate() {
        buf.clear();
        if !segment::encode_def(&mut buf, id as u32, &e.key) {
            return Err(StoreError::Corrupt {
                path: w.meta.path.clone(),
                offset: w.meta.bytes,
                reason: format!("series {} has a key longer than a segment can record", e.key),
            });
        }
        w.write_record(&buf)?;
    }
    w.sync()?;
    Ok(w)
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `cfg.data_dir`, rebuilding in-memory state from disk.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another process holds the directory; I/O and database
    /// errors naming the file.
    pub fn open(cfg: EmbeddedConfig) -> Result<Self, StoreError> {
        let dir = cfg.data_dir.clone();
        let samples_dir = dir.join("samples");
        std::fs::create_dir_all(&samples_dir).map_err(|source| StoreError::Io { op: "create", path: samples_dir.clone(), source })?;
        let lock_path = dir.join("LOCK");
        let lock_file = File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(|source| StoreError::Io {
            op: "open",
            path: lock_path.clone(),
            source,
        })?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { path: lock_path }),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StoreError::Io { op: "lock", path: lock_path, source });
            }
        }

        let db_path = dir.join("state.redb");
        let db = redb::Database::create(&db_path).map_err(|e| StoreError::Database { path: db_path.clone(), reason: e.to_string() })?;
        {
            let dberr = |e: &dyn std::fmt::Display| StoreError::Database { path: db_path.clone(), reason: e.to_string() };
            let tx = db.begin_write().map_err(|e| dberr(&e))?;
            tx.open_table(EVENTS).map_err(|e| dberr(&e))?;
            tx.open_table(HOSTS).map_err(|e| dberr(&e))?;
            tx.open_table(RESOURCES).map_err(|e| dberr(&e))?;
            tx.open_table(FAILURES).map_err(|e| dberr(&e))?;
            tx.open_table(META).map_err(|e| dberr(&e))?;
            tx.open_table(SHADOWS).map_err(|e| dberr(&e))?;
            tx.open_table(JOURNAL).map_err(|e| dberr(&e))?;
            tx.open_table(JOURNAL_SEQ).map_err(|e| dberr(&e))?;
            tx.open_table(JOURNAL_PENDING).map_err(|e| dberr(&e))?;
            tx.commit().map_err(|e| dberr(&e))?;
        }

        let mut table = SeriesTable::new(cfg.limits);
        let mut recovery = RecoveryReport::default();
        let seqs = segment::list_segments(&samples_dir)?;
        let mut closed = Vec::new();
        for (i, &seq) in seqs.iter().enumerate() {
            let path = segment::segment_path(&samples_dir, seq);
            let mut meta = SegmentMeta { path: path.clone(), seq, min_ts: None, max_ts: None, samples: 0, bytes: 0 };
            let end = segment::scan_segment(&path, |rec| replay(&mut table, &mut meta, rec))?;
            recovery.segments += 1;
            recovery.samples += meta.samples;
            meta.bytes = end.good_len;
            if let Some(problem) = end.problem {
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(end.good_len);
                if i + 1 == seqs.len() {
                    // The newest segment: a torn write from a crash. Cut it off.
                    tracing::warn!(path = %path.display(), offset = end.good_len, %problem, "cutting torn tail of newest segment");
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(end.good_len))
                        .map_err(|source| StoreError::Io { op: "truncate", path: path.clone(), source })?;
                    recovery.truncated_bytes += len - end.good_len;
                } else {
                    tracing::error!(path = %path.display(), offset = end.good_len, %problem, "damaged segment: skipping the rest of it");
                    recovery.damaged.push((path.clone(), format!("at byte {}: {problem}", end.good_len)));
                }
            }
            if meta.samples == 0 {
                // Nothing but definitions: later segments repeat them, so drop it.
                std::fs::remove_file(&path).map_err(|source| StoreError::Io { op: "delete", path, source })?;
            } else {
                closed.push(meta);
            }
        }
        let next_seq = seqs.last().map_or(1, |s| s + 1);
        let writer = start_segment(&samples_dir, next_seq, &table)?;
        let log = Log { writer, closed, payload: SamplesPayload::default(), defs: Vec::new(), failed: None };
        let inner = Inner {
            cfg: cfg.clone(),
            samples_dir,
            db_path,
            table: RwLock::new(table),
            log: Mutex::new(log),
            db,
            stop: (Mutex::new(false), Condvar::new()),
            _lock: lock_file,
        };
        {
            let mut table = inner.table_write();
            let mut log = lock(&inner.log);
            recovery.expired_segments = inner.expire(&mut table, &mut log)?;
        }
        let inner = Arc::new(inner);

        let syncer = if cfg.sync_interval.is_zero() {
            None
        } else {
            let inner2 = Arc::clone(&inner);
            let every = cfg.sync_interval;
            Some(
                std::thread::Builder::new()
                    .name("harbinger-sync".into())
                    .spawn(move || {
                        let (m, cv) = &inner2.stop;
                        let mut stopped = lock(m);
                        while !*stopped {
                            stopped = cv.wait_timeout(stopped, every).unwrap_or_else(PoisonError::into_inner).0;
                            if let Err(e) = inner2.sync_now() {
                                tracing::error!(error = %e, "periodic sample sync failed");
                            }
                        }
                    })
                    .map_err(|source| StoreError::Io { op: "spawn sync thread", path: dir.clone(), source })?,
            )
        };
        tracing::info!(
            dir = %dir.display(),
            segments = recovery.segments,
            samples = recovery.samples,
            series = inner.table_read().entries.len(),
            "embedded store opened"
        );
        Ok(Self { inner, syncer: Mutex::new(syncer), recovery })
    }

    /// What start-up found on disk.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.cfg.data_dir
    }

    /// Stops the background syncer and makes everything durable. Idempotent; drop calls it.
    ///
    /// # Errors
    /// A failed final fsync.
    pub fn close(&self) -> Result<(), StoreError> {
        {
            let (m, cv) = &self.inner.stop;
            *lock(m) = true;
            cv.notify_all();
        }
        if let Some(h) = lock(&self.syncer).take() {
            let _joined = h.join();
        }
        self.inner.sync_now()
    }

    fn append_sync(&self, batch: &SampleBatch) -> Result<AppendReport, StoreError> {
        let inner = &*self.inner;
        let mut table = inner.table_write();
        let mut log = lock(&inner.log);
        if let Some(reason) = &log.failed {
            return Err(StoreError::Io {
                op: "append (store failed earlier)",
                path: log.writer.meta.path.clone(),
                source: std::io::Error::other(reason.clone()),
            });
        }
        let Log { payload, defs, .. } = &mut *log;
        payload.clear();
        defs.clear();
        // End offset in `defs` of each new series' definition record.
        let mut def_ends: Vec<usize> = Vec::new();
        let now = inner.cfg.clock.now_ms();
        let report = table.admit(
            batch,
            now,
            |id, key| {
                // Admission refused keys a segment cannot record (`Limits::key_fits`).
                let fits = segment::encode_def(defs, id, key);
                debug_assert!(fits, "admitted key too long for a segment: {key}");
                def_ends.push(defs.len());
            },
            |id, ts, vs| payload.push(id, ts, vs),
        );
        let res = (|| {
            let Log { writer, payload, defs, .. } = &mut *log;
            let mut start = 0;
            for end in def_ends {
                writer.write_record(&defs[start..end])?;
                start = end;
            }
            if !payload.is_empty() {
                let (lo, hi) = (payload.min_ts, payload.max_ts);
                writer.write_record(payload.bytes())?;
                writer.meta.note(lo, hi, report.accepted);
            }
            if inner.cfg.sync_interval.is_zero() {
                writer.sync()?;
            }
            Ok::<(), StoreError>(())
        })();
        if let Err(e) = res {
            log.failed = Some(e.to_string());
            return Err(e);
        }
        if log.writer.meta.bytes >= inner.cfg.segment_bytes {
            inner.roll(&mut table, &mut log)?;
        }
        Ok(report)
    }

    fn range_sync(&self, key: &SeriesKey, from: TimestampMs, to: TimestampMs) -> Result<SeriesSamples, StoreError> {
        let inner = &*self.inner;
        let id = {
            let table = inner.table_read();
            let id = table.id(key).ok_or_else(|| StoreError::UnknownSeries(key.clone()))?;
            if let Some(s) = table.range_from_hot(id, from, to) {
                return Ok(s);
            }
            id
        };
        // Not all in memory: read the segments that overlap [from, to).
        let metas: Vec<SegmentMeta> = {
            let mut log = lock(&inner.log);
            let path = log.writer.meta.path.clone();
            log.writer.sync().map_err(|e| match e {
                StoreError::Io { source, .. } => StoreError::Io { op: "flush", path, source },
                other => other,
            })?;
            log.closed.iter().chain(std::iter::once(&log.writer.meta)).cloned().collect()
        };
        let mut out = SeriesSamples::new(key.clone());
        for m in metas.iter().filter(|m| m.min_ts.is_some_and(|lo| lo < to) && m.max_ts.is_some_and(|hi| hi >= from)) {
            segment::scan_segment(&m.path, |rec| {
                if let Record::Samples(mut r) = rec {
                    while let Some((cid, ts, vs)) = r.next_chunk()? {
                        if cid == id {
                            for (t, v) in ts.into_iter().zip(vs) {
                                if t >= from && t < to {
                                    out.push(t, v);
                                }
                            }
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(out)
    }

    fn write_tx(&self, f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>) -> Result<(), StoreError> {
        self.write_tx_with(|tx| f(tx).map_err(StoreTxError::Db))
    }

    /// One write transaction that answers a value; committed only when `f` succeeds.
    fn write_tx_with<R>(&self, f: impl FnOnce(&redb::WriteTransaction) -> Result<R, StoreTxError>) -> Result<R, StoreError> {
        let inner = &*self.inner;
        let tx = inner.db.begin_write().map_err(|e| inner.db_err(e))?;
        let r = f(&tx).map_err(|e| match e {
            StoreTxError::Db(e) => inner.db_err(e),
            StoreTxError::Store(e) => e,
        })?;
        tx.commit().map_err(|e| inner.db_err(e))?;
        Ok(r)
    }

    fn read_tx<R>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<R, redb::Error>) -> Result<R, StoreError> {
        let inner = &*self.inner;
        let tx = inner.db.begin_read().map_err(|e| inner.db_err(e))?;
        f(&tx).map_err(|e| inner.db_err(e))
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, row: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(row).map_err(|e| self.inner.db_err(format!("undecodable stored row: {e}")))
    }

    fn entries_by_key(&self, keys: Vec<String>) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = self.read_tx(|tx| {
            let t = tx.open_table(JOURNAL)?;
            let mut rows = Vec::with_capacity(keys.len());
            for k in &keys {
                if let Some(v) = t.get(k.as_str())? {
                    rows.push(v.value().to_vec());
                }
            }
            Ok(rows)
        })?;
        self.decode_all(rows)
    }

    fn read_values<K: redb::Key + 'static>(&self, def: TableDefinition<K, &[u8]>) -> Result<Vec<Vec<u8>>, StoreError> {
        let inner = &*self.inner;
        let tx = inner.db.begin_read().map_err(|e| inner.db_err(e))?;
        let t = tx.open_table(def).map_err(|e| inner.db_err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| inner.db_err(e))? {
            let (_, v) = item.map_err(|e| inner.db_err(e))?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    fn decode_all<T: serde::de::DeserializeOwned>(&self, rows: Vec<Vec<u8>>) -> Result<Vec<T>, StoreError> {
        rows.iter().map(|r| serde_json::from_slice(r).map_err(|e| self.inner.db_err(format!("undecodable stored row: {e}")))).collect()
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "final sync of the embedded store failed");
        }
    }
}

/// Why a write transaction closure stopped.
enum StoreTxError {
    Db(redb::Error),
    Store(StoreError),
}

impl<E: Into<redb::Error>> From<E> for StoreTxError {
    fn from(e: E) -> Self {
        StoreTxError::Db(e.into())
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, redb::Error> {
    serde_json::to_vec(v).map_err(|e| redb::Error::Io(std::io::Error::other(e)))
}

#[async_trait]
impl MetricStore for EmbeddedStore {
    async fn append(&self, batch: &SampleBatch) -> Result<AppendReport, StoreError> {
        self.append_sync(batch)
    }

    async fn range(&self, key: &SeriesKey, from: TimestampMs, to: TimestampMs) -> Result<SeriesSamples, StoreError> {
        self.range_sync(key, from, to)
    }

    async fn recent(&self, key: &SeriesKey) -> Result<SeriesSamples, StoreError> {
        self.inner.table_read().recent(key).ok_or_else(|| StoreError::UnknownSeries(key.clone()))
    }

    async fn series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        Ok(self.inner.table_read().keys())
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let table = self.inner.table_read();
        let log = lock(&self.inner.log);
        let metas = log.closed.iter().chain(std::iter::once(&log.writer.meta));
        let (samples, bytes) = metas.fold((0, 0), |(s, b), m| (s + m.samples, b + m.bytes));
        Ok(StoreStats {
            series: table.entries.len() as u64,
            samples,
            hot_samples: table.hot_samples,
            oldest_ms: table.oldest,
            newest_ms: table.newest,
            sample_bytes: bytes,
            failed: log.failed.clone(),
        })
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.sync_now()
    }
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn append_events(&self, events: &[Event]) -> Result<u64, StoreError> {
        self.write_tx(|tx| {
            let mut meta = tx.open_table(META)?;
            let mut seq = meta.get("event_seq")?.map_or(0, |v| v.value());
            let mut t = tx.open_table(EVENTS)?;
            for e in events {
                seq += 1;
                t.insert((e.ts, seq), json(e)?.as_slice())?;
            }
            meta.insert("event_seq", seq)?;
            Ok(())
        })?;
        Ok(events.len() as u64)
    }

    async fn events(&self, from: TimestampMs, to: TimestampMs) -> Result<Vec<Event>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        let tx = inner.db.begin_read().map_err(|e| inner.db_err(e))?;
        let t = tx.open_table(EVENTS).map_err(|e| inner.db_err(e))?;
        let mut rows = Vec::new();
        for item in t.range((from, 0u64)..(to, 0u64)).map_err(|e| inner.db_err(e))? {
            let (_, v) = item.map_err(|e| inner.db_err(e))?;
            rows.push(v.value().to_vec());
        }
        self.decode_all(rows)
    }
}

#[async_trait]
impl InventoryStore for EmbeddedStore {
    async fn put_hosts(&self, hosts: &[Host]) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            let mut t = tx.open_table(HOSTS)?;
            for h in hosts {
                t.insert(h.host.as_str(), json(h)?.as_slice())?;
            }
            Ok(())
        })
    }
    async fn hosts(&self) -> Result<Vec<Host>, StoreError> {
        let rows = self.read_values(HOSTS)?;
        self.decode_all(rows)
    }
    async fn put_resources(&self, resources: &[Resource]) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            let mut t = tx.open_table(RESOURCES)?;
            for r in resources {
                t.insert(r.id.as_str(), json(r)?.as_slice())?;
            }
            Ok(())
        })
    }
    async fn resources(&self) -> Result<Vec<Resource>, StoreError> {
        let rows = self.read_values(RESOURCES)?;
        self.decode_all(rows)
    }
}

#[async_trait]
impl FailureStore for EmbeddedStore {
    async fn put_failures(&self, failures: &[Failure]) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            let mut t = tx.open_table(FAILURES)?;
            for f in failures {
                t.insert((f.timestamp, f.host.as_str()), json(f)?.as_slice())?;
            }
            Ok(())
        })
    }
    async fn failures(&self) -> Result<Vec<Failure>, StoreError> {
        let rows = self.read_values(FAILURES)?;
        self.decode_all(rows)
    }
}

fn read_entry(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<JournalEntry>, StoreTxError> {
    match t.get(key)? {
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| StoreTxError::Db(redb::Error::Io(std::io::Error::other(format!("undecodable journal entry {key:?}: {e}"))))),
        None => Ok(None),
    }
}

#[async_trait]
impl ShadowStore for EmbeddedStore {
    async fn begin(&self, intent: Intent) -> Result<Begun, StoreError> {
        self.write_tx_with(|tx| {
            let mut journal = tx.open_table(JOURNAL)?;
            let mut order = tx.open_table(JOURNAL_SEQ)?;
            let mut meta = tx.open_table(META)?;
            let next = meta.get("journal_seq")?.map_or(0, |v| v.value()) + 1;
            let existing = read_entry(&journal, &intent.key)?;
            let (write, begun) = crate::journal::begin(existing, &intent, next);
            if let Some(e) = write {
                if e.attempts == 1 {
                    meta.insert("journal_seq", e.seq)?;
                    order.insert(e.seq, e.key.as_str())?;
                }
                if let Some(s) = &intent.create {
                    tx.open_table(SHADOWS)?.insert(s.id.as_str(), json(s)?.as_slice())?;
                }
                tx.open_table(JOURNAL_PENDING)?.insert(e.seq, e.key.as_str())?;
                journal.insert(e.key.as_str(), json(&e)?.as_slice())?;
            }
            Ok(begun)
        })
    }

    async fn finish(&self, f: Finish) -> Result<JournalEntry, StoreError> {
        self.write_tx_with(|tx| {
            let mut journal = tx.open_table(JOURNAL)?;
            let existing = read_entry(&journal, &f.key)?;
            let e = crate::journal::finish(existing, &f).map_err(StoreTxError::Store)?;
            journal.insert(e.key.as_str(), json(&e)?.as_slice())?;
            tx.open_table(JOURNAL_PENDING)?.remove(e.seq)?;
            if let Some(s) = &f.shadow {
                tx.open_table(SHADOWS)?.insert(s.id.as_str(), json(s)?.as_slice())?;
            }
            Ok(e)
        })
    }

    async fn shadows(&self) -> Result<Vec<Shadow>, StoreError> {
        let rows = self.read_values(SHADOWS)?;
        self.decode_all(rows)
    }

    async fn shadow(&self, id: &ShadowId) -> Result<Option<Shadow>, StoreError> {
        let row = self.read_tx(|tx| Ok(tx.open_table(SHADOWS)?.get(id.as_str())?.map(|v| v.value().to_vec())))?;
        row.map(|r| self.decode(&r)).transpose()
    }

    async fn put_shadow(&self, shadow: &Shadow) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            tx.open_table(SHADOWS)?.insert(shadow.id.as_str(), json(shadow)?.as_slice())?;
            Ok(())
        })
    }

    async fn journal_entry(&self, key: &str) -> Result<Option<JournalEntry>, StoreError> {
        Ok(self.entries_by_key(vec![key.to_string()])?.pop())
    }

    async fn pending(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let keys = self.read_tx(|tx| {
            let t = tx.open_table(JOURNAL_PENDING)?;
            let mut keys = Vec::new();
            for item in t.iter()? {
                keys.push(item?.1.value().to_string());
            }
            Ok(keys)
        })?;
        self.entries_by_key(keys)
    }

    async fn journal(&self, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let keys = self.read_tx(|tx| {
            let t = tx.open_table(JOURNAL_SEQ)?;
            let mut keys = Vec::new();
            for item in t.range(after.saturating_add(1)..)?.take(limit) {
                keys.push(item?.1.value().to_string());
            }
            Ok(keys)
        })?;
        self.entries_by_key(keys)
    }

    async fn prune(&self, before: TimestampMs) -> Result<(u64, u64), StoreError> {
        let shadows: Vec<Shadow> = self.shadows().await?;
        let old_shadows: Vec<ShadowId> = shadows.into_iter().filter(|s| !s.is_live() && s.updated_at < before).map(|s| s.id).collect();
        let entries = self.journal(0, usize::MAX).await?;
        let old_entries: Vec<(u64, String)> = entries
            .into_iter()
            .filter(|e| e.status != JournalStatus::Pending && e.finished_at.is_some_and(|t| t < before))
            .map(|e| (e.seq, e.key))
            .collect();
        self.write_tx(|tx| {
            let mut t = tx.open_table(SHADOWS)?;
            for id in &old_shadows {
                t.remove(id.as_str())?;
            }
            let mut j = tx.open_table(JOURNAL)?;
            let mut o = tx.open_table(JOURNAL_SEQ)?;
            for (seq, key) in &old_entries {
                j.remove(key.as_str())?;
                o.remove(*seq)?;
            }
            Ok(())
        })?;
        Ok((old_shadows.len() as u64, old_entries.len() as u64))
    }
}
