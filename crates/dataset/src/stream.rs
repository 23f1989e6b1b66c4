//! Reading a dataset's metric samples a part at a time, so that a job over a fleet larger
//! than memory (`harbinger train`) holds only what it has not yet consumed.
//!
//! [`MetricStream`] reads `metrics.parquet` one row group at a time (only that row
//! group's bytes are read and decoded, on a thread of its own one group ahead of the
//! reader; `metrics.csv` comes in one part) and validates
//! every row as [`crate::read_dataset`] does, with the same errors naming the row. Rows
//! come in file order as [`MetricRow`]s naming their series by a number
//! ([`MetricStream::key`]); sorting and de-duplicating them is the consumer's part (the
//! contract's files are sorted by timestamp, which is what lets a consumer work in one
//! pass; [`MetricStream`] measures how far a file departs from it, see
//! [`MetricStream::lateness_ms`]).

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use harbinger_core::{HostId, SeriesKey};
use polars::prelude::*;
use polars_parquet::parquet::metadata::FileMetadata;

use crate::read::{
    DatasetError, LoadOptions, METRIC_COLUMNS, MetricColumns, check_page_headers, guarded, pair_problem, parquet_columns, read_metrics_csv,
    row_problem,
};

/// One metric row: its series (see [`MetricStream::key`]), time and value (NaN: missing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricRow {
    /// Series number, in order of first appearance in the file.
    pub series: u32,
    /// Milliseconds since the epoch.
    pub ts: i64,
    /// The sample; NaN when missing.
    pub value: f64,
}

/// A row group's rows, and the least and greatest timestamp among them (`None` without
/// rows), as its statistics give them ([`MetricStream::row_group_times`]).
pub type GroupTimes = (usize, Option<(i64, i64)>);

/// A decoded row group: the number of its first row in the file, and its columns.
type Group = (usize, Result<MetricColumns, DatasetError>);

enum Input {
    /// Row groups decoded in order by a thread of their own, one ahead of the reader
    /// (the channel ends after the last group, or after one that failed).
    Parquet {
        meta: Arc<FileMetadata>,
        groups: std::sync::mpsc::Receiver<Group>,
        /// Groups received so far.
        received: usize,
    },
    Csv {
        cols: Option<Box<MetricColumns>>,
    },
}

/// The metric rows of a dataset, a part at a time.
pub struct MetricStream {
    path: PathBuf,
    input: Input,
    known: BTreeSet<String>,
    keep: Option<BTreeSet<String>>,
    opts: LoadOptions,
    keys: Vec<SeriesKey>,
    /// host -> its number; by host number, metric -> series number (`None`: rows of this
    /// pair are invalid or not kept).
    hosts: foldhash::HashMap<String, usize>,
    pairs: Vec<foldhash::HashMap<String, Option<u32>>>,
    /// The previous row's host and its number: rows sorted by (timestamp, host, metric)
    /// come a host's metrics in a row, so most rows skip the host lookup.
    last_host: (String, usize),
    rows: u64,
    skipped: u64,
    first_skipped: Option<String>,
    missing: u64,
    /// Greatest timestamp read so far, and how far any row fell behind it.
    latest: i64,
    lateness: i64,
}

impl MetricStream {
    /// Opens `path` (`metrics.parquet` or `metrics.csv`). `known` are the hosts of
    /// `hosts.csv` (a row of another host is invalid); with `keep`, rows of known hosts
    /// outside it are passed over silently (a part of the fleet).
    ///
    /// # Errors
    /// The file cannot be opened, its metadata decoded, or a column is missing.
    pub fn open(path: &Path, known: &[HostId], keep: Option<&[HostId]>, opts: LoadOptions) -> Result<Self, DatasetError> {
        let input = if path.extension().is_some_and(|e| e == "csv") {
            Input::Csv { cols: Some(Box::new(guarded(path, || read_metrics_csv(path))?)) }
        } else {
            let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
            let mut file = std::fs::File::open(path).map_err(io)?;
            let meta = guarded(path, || {
                polars_parquet::parquet::read::read_metadata(&mut file)
                    .map_err(|e| DatasetError::Decode { path: path.to_path_buf(), reason: e.to_string() })
            })?;
            let found: Vec<String> = meta.schema_descr.fields().iter().map(|f| f.name().to_string()).collect();
            for column in METRIC_COLUMNS {
                if !found.iter().any(|c| c == column) {
                    return Err(DatasetError::MissingColumn { path: path.to_path_buf(), column, found });
                }
            }
            let meta = Arc::new(meta);
            Input::Parquet { groups: decode_ahead(path, file, meta.clone())?, meta, received: 0 }
        };
        Ok(MetricStream {
            path: path.to_path_buf(),
            input,
            known: known.iter().map(ToString::to_string).collect(),
            keep: keep.map(|k| k.iter().map(ToString::to_string).collect()),
            opts,
            keys: Vec::new(),
            hosts: foldhash::HashMap::default(),
            pairs: Vec::new(),
            last_host: (String::new(), usize::MAX),
            rows: 0,
            skipped: 0,
            first_skipped: None,
            missing: 0,
            latest: i64::MIN,
            lateness: 0,
        })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The series of number `series` (numbers are given in order of first appearance).
    pub fn key(&self, series: u32) -> Option<&SeriesKey> {
        self.keys.get(series as usize)
    }

    /// Every series met so far, by number.
    pub fn keys(&self) -> &[SeriesKey] {
        &self.keys
    }

    /// Rows in the file, when known before reading them (Parquet's metadata says).
    pub fn total_rows(&self) -> Option<u64> {
        match &self.input {
            Input::Parquet { meta, .. } => Some(meta.num_rows as u64),
            Input::Csv { cols } => cols.as_ref().map(|c| c.ts.len() as u64),
        }
    }

    /// Per row group of a Parquet file, in file order: its rows and the least and greatest
    /// timestamp its statistics give (`None` for a group without rows). `None` for a CSV
    /// file, or when a group with rows has no such statistics. What a reader learns from
    /// them before reading a group: where every row still to come lies in time.
    pub fn row_group_times(&self) -> Option<Vec<GroupTimes>> {
        let Input::Parquet { meta, .. } = &self.input else { return None };
        meta.row_groups
            .iter()
            .map(|g| {
                if g.num_rows() == 0 {
                    return Some((0, None));
                }
                let chunk = g.columns_under_root_iter("timestamp")?.next()?;
                match chunk.statistics(&meta.footer_buf)? {
                    Ok(polars_parquet::parquet::statistics::Statistics::Int64(s)) => {
                        Some((g.num_rows(), Some((s.min_value?, s.max_value?))))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// Rows read so far (skipped and passed-over rows included).
    pub fn rows_read(&self) -> u64 {
        self.rows
    }

    /// Invalid rows skipped so far (with `skip_invalid_rows`), and the first one's error.
    pub fn skipped(&self) -> (u64, Option<&str>) {
        (self.skipped, self.first_skipped.as_deref())
    }

    /// Rows whose value was missing (NaN or empty) so far.
    pub fn missing_values(&self) -> u64 {
        self.missing
    }

    /// How far behind the latest timestamp read before it any row came so far: 0 for a
    /// file sorted by time, as the contract asks. After reading rows up to a greatest
    /// timestamp `T`, every row still to come is at least `T − lateness` (for the same
    /// file read again).
    pub fn lateness_ms(&self) -> i64 {
        self.lateness
    }

    /// Greatest timestamp read so far (`i64::MIN` before any row).
    pub fn latest_ms(&self) -> i64 {
        self.latest
    }

    /// Reads the next part into `out` (cleared first). Returns `false` when the file is
    /// exhausted (and `out` is empty).
    ///
    /// # Errors
    /// A part that cannot be decoded, or (without `skip_invalid_rows`) an invalid row,
    /// naming the row.
    pub fn next_batch(&mut self, out: &mut Vec<MetricRow>) -> Result<bool, DatasetError> {
        out.clear();
        let (cols, first_row) = match &mut self.input {
            Input::Csv { cols } => match cols.take() {
                Some(c) => (*c, 0),
                None => return Ok(false),
            },
            Input::Parquet { groups, meta, received } => match groups.recv() {
                Ok((first, cols)) => {
                    *received += 1;
                    (cols?, first)
                }
                Err(_) if *received >= meta.row_groups.len() => return Ok(false),
                // The decoder ended early: after a group that failed (already reported),
                // or without a word. Never taken for the end of the file.
                Err(_) => {
                    return Err(DatasetError::Decode {
                        path: self.path.clone(),
                        reason: format!("row group {} of {} was not decoded", *received, meta.row_groups.len()),
                    });
                }
            },
        };
        self.take_rows(cols, first_row, out)?;
        Ok(true)
    }

    fn take_rows(&mut self, mut cols: MetricColumns, first_row: usize, out: &mut Vec<MetricRow>) -> Result<(), DatasetError> {
        cols.align();
        let n = cols.ts.len();
        out.reserve(n);
        let mut bad = cols.bad.iter().peekable();
        let mut i = first_row;
        let chunks =
            cols.ts.downcast_iter().zip(cols.value.downcast_iter()).zip(cols.host.downcast_iter().zip(cols.metric.downcast_iter()));
        for ((t, v), (h, m)) in chunks {
            for j in 0..t.len() {
                let at = i;
                i += 1;
                let problem = if bad.peek().is_some_and(|(k, _)| *k == at - first_row) { bad.next().map(|(_, r)| r.clone()) } else { None };
                let (ts, value) = (t.get(j), v.get(j));
                let checked = match problem {
                    Some(reason) => Err(reason),
                    None => row_problem(ts, value, h.get(j), m.get(j)),
                };
                let (host, metric) = match checked {
                    Ok(hm) => hm,
                    Err(reason) => {
                        self.skip(DatasetError::Invalid { path: self.path.clone(), location: cols.location(at), reason })?;
                        continue;
                    }
                };
                if self.last_host.1 == usize::MAX || self.last_host.0 != host {
                    let h = match self.hosts.get(host) {
                        Some(&h) => h,
                        None => {
                            self.hosts.insert(host.to_string(), self.pairs.len());
                            self.pairs.push(foldhash::HashMap::default());
                            self.pairs.len() - 1
                        }
                    };
                    self.last_host.0.clear();
                    self.last_host.0.push_str(host);
                    self.last_host.1 = h;
                }
                let h = self.last_host.1;
                let slot = match self.pairs[h].get(metric) {
                    Some(slot) => *slot,
                    None => self.intern(h, host, metric),
                };
                let Some(series) = slot else {
                    if let Some(reason) = pair_problem(host, metric, self.known.contains(host)) {
                        self.skip(DatasetError::Invalid { path: self.path.clone(), location: cols.location(at), reason })?;
                    }
                    continue;
                };
                let ts = ts.unwrap_or_default();
                let value = value.unwrap_or(f64::NAN);
                if value.is_nan() {
                    self.missing += 1;
                }
                self.lateness = self.lateness.max(self.latest.saturating_sub(ts));
                self.latest = self.latest.max(ts);
                out.push(MetricRow { series, ts, value });
            }
        }
        self.rows += n as u64;
        Ok(())
    }

    fn intern(&mut self, h: usize, host: &str, metric: &str) -> Option<u32> {
        let valid = pair_problem(host, metric, self.known.contains(host)).is_none();
        let kept = valid && self.keep.as_ref().is_none_or(|k| k.contains(host));
        let slot = kept.then(|| {
            self.keys.push(SeriesKey::new(host, metric));
            (self.keys.len() - 1) as u32
        });
        self.pairs[h].insert(metric.to_string(), slot);
        slot
    }

    fn skip(&mut self, err: DatasetError) -> Result<(), DatasetError> {
        if !self.opts.skip_invalid_rows {
            return Err(err);
        }
        self.skipped += 1;
        if self.first_skipped.is_none() {
            self.first_skipped = Some(err.to_string());
        }
        Ok(())
    }
}

/// A thread that decodes the row groups of `file` in order, each while the one before it
/// is being read, and hands them over one at a time. It stops after the last group, after
/// one that failed, or when the stream is dropped.
fn decode_ahead(path: &Path, mut file: std::fs::File, meta: Arc<FileMetadata>) -> Result<std::sync::mpsc::Receiver<Group>, DatasetError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Group>(1);
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new().name("metrics-decode".into()).spawn({
        let path = path.clone();
        move || {
            let mut first = 0;
            for (g, group) in meta.row_groups.iter().enumerate() {
                let n = group.num_rows();
                let cols = read_row_group(&path, &mut file, &meta, g, n);
                let failed = cols.is_err();
                if tx.send((first, cols)).is_err() || failed {
                    return;
                }
                first += n;
            }
        }
    });
    spawned.map_err(|source| DatasetError::Io { path, source })?;
    Ok(rx)
}

/// Decodes row group `g` (`n` rows): reads only its bytes,
/// into a buffer as long as the file up to its end whose untouched part is never
/// allocated, checks its page headers, and decodes its four columns.
fn read_row_group(
    path: &Path,
    file: &mut std::fs::File,
    meta: &Arc<FileMetadata>,
    g: usize,
    n: usize,
) -> Result<MetricColumns, DatasetError> {
    let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
    // The union of its column chunks (the row group's own `full_byte_range` is not
    // reliable for files of other writers).
    let group = &meta.row_groups[g];
    let start = group.byte_ranges_iter().map(|r| r.start).min().unwrap_or(0);
    let end = group.byte_ranges_iter().map(|r| r.end).max().unwrap_or(0);
    let range = start..end;
    let (lo, hi) = (usize::try_from(range.start).unwrap_or(usize::MAX), usize::try_from(range.end).unwrap_or(usize::MAX));
    let len = file.metadata().map_err(io)?.len();
    if lo > hi || range.end > len {
        return Err(DatasetError::Decode {
            path: path.to_path_buf(),
            reason: format!("the file is damaged: row group {g} claims bytes {lo}..{hi} of a {len}-byte file"),
        });
    }
    // The decoder addresses the row group at its offsets in the file: an anonymous
    // mapping of the file's length up to its end, of which only the pages read into are
    // ever resident. (A zeroed vector of that length was zeroed by the allocator when it
    // reused memory: at 10,000 hosts, gigabytes written per row group.)
    let mut buf = memmap2::MmapMut::map_anon(hi.max(1)).map_err(io)?;
    file.seek(SeekFrom::Start(range.start)).map_err(io)?;
    file.read_exact(&mut buf[lo..hi]).map_err(io)?;
    let bytes = polars_buffer::Buffer::from_owner(buf.make_read_only().map_err(io)?);
    check_page_headers(path, &bytes, meta, g..g + 1)?;
    // The decoder is shown a file of this one row group (it would read others' pages).
    let mut one = FileMetadata::clone(meta);
    one.row_groups = vec![group.clone()];
    one.num_rows = n;
    guarded(path, || {
        let mut reader = ParquetReader::new(std::io::Cursor::new(bytes));
        reader.set_metadata(Arc::new(one));
        let df = reader
            .with_columns(Some(METRIC_COLUMNS.iter().map(|s| s.to_string()).collect()))
            .finish()
            .map_err(|e| DatasetError::Decode { path: path.to_path_buf(), reason: e.to_string() })?;
        parquet_columns(path, &df)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthParams, generate};
    use crate::{LoadOptions, MetricsFormat, read_dataset, write_dataset};

    /// Reads every row of a dataset's metrics through the stream, grouped by series,
    /// sorted and de-duplicated as the loader does.
    fn streamed(dir: &Path) -> Vec<harbinger_core::SeriesSamples> {
        let (ds, report) = crate::read::read_inventory(dir).expect("inventory");
        let hosts: Vec<HostId> = ds.hosts.iter().map(|h| h.host.clone()).collect();
        let mut s = MetricStream::open(&report.metrics_file, &hosts, None, LoadOptions::default()).expect("open");
        let mut series: Vec<harbinger_core::SeriesSamples> = Vec::new();
        let mut batch = Vec::new();
        let mut parts = 0;
        while s.next_batch(&mut batch).expect("batch") {
            parts += 1;
            for r in &batch {
                let i = r.series as usize;
                while series.len() <= i {
                    let key = s.key(series.len() as u32).expect("key").clone();
                    series.push(harbinger_core::SeriesSamples::new(key));
                }
                series[i].push(r.ts, r.value);
            }
        }
        assert!(parts >= 1);
        assert_eq!(s.lateness_ms(), 0, "the writer sorts by time");
        for x in &mut series {
            crate::read::normalize(&mut x.timestamps, &mut x.values);
        }
        series.sort_by(|a, b| a.key.cmp(&b.key));
        series
    }

    #[test]
    fn streamed_rows_equal_the_loaded_dataset_in_parquet_and_csv() {
        let ds = generate(&SynthParams { hosts: 5, days: 1.0, seed: 7, ..SynthParams::default() }).expect("params").dataset;
        for format in [MetricsFormat::Parquet, MetricsFormat::Csv] {
            let dir = tempfile::tempdir().expect("tmp");
            write_dataset(&ds, dir.path(), format).expect("write");
            let (loaded, _) = read_dataset(dir.path(), LoadOptions::default()).expect("read");
            let got = streamed(dir.path());
            assert_eq!(got.len(), loaded.metrics.len(), "{format:?}");
            for (a, b) in got.iter().zip(&loaded.metrics) {
                assert_eq!(a.key, b.key);
                assert_eq!(a.timestamps, b.timestamps, "{format:?} {:?}", a.key);
                assert!(a.values.iter().zip(&b.values).all(|(x, y)| x == y || (x.is_nan() && y.is_nan())));
            }
        }
    }

    /// Writes `metrics` to `path` one series after the other (not sorted by time), in row
    /// groups of `rows_per_group`; returns the rows written.
    fn write_series_by_series(path: &Path, metrics: &[harbinger_core::SeriesSamples], rows_per_group: usize) -> usize {
        let (mut t, mut h, mut m, mut v) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for s in metrics {
            for (ts, x) in s.timestamps.iter().zip(&s.values) {
                t.push(*ts);
                h.push(s.key.host.as_str());
                m.push(s.key.metric.as_str());
                v.push(*x);
            }
        }
        let n = t.len();
        let mut df = df!("timestamp" => t, "host" => h, "metric" => m, "value" => v).expect("frame");
        let f = std::fs::File::create(path).expect("create");
        ParquetWriter::new(f).with_row_group_size(Some(rows_per_group)).finish(&mut df).expect("write");
        n
    }

    #[test]
    fn a_large_file_comes_a_row_group_at_a_time_and_lateness_is_measured() {
        // Rows written host by host (not sorted by time): more than one row group, and
        // every host's first row comes after the previous host's last.
        let mut ds = generate(&SynthParams { hosts: 3, days: 2.0, seed: 3, ..SynthParams::default() }).expect("params").dataset;
        ds.metrics.truncate(9);
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("metrics.parquet");
        let n = write_series_by_series(&path, &ds.metrics, 5_000);
        let hosts: Vec<HostId> = ds.hosts.iter().map(|h| h.host.clone()).collect();
        let mut s = MetricStream::open(&path, &hosts, None, LoadOptions::default()).expect("open");
        let (mut batch, mut parts, mut total) = (Vec::new(), 0, 0);
        while s.next_batch(&mut batch).expect("batch") {
            parts += 1;
            total += batch.len();
            assert!(batch.len() < n / 3, "{} rows in one part", batch.len());
        }
        assert_eq!(total, n);
        assert!(parts >= n / 5_000, "{parts} parts for {n} rows");
        let span = ds.metrics[0].timestamps.last().expect("ts") - ds.metrics[0].timestamps[0];
        assert_eq!(s.lateness_ms(), span, "each series restarts at the beginning");
        // Only some hosts kept: the others' rows are passed over, not errors.
        let mut s = MetricStream::open(&path, &hosts, Some(&hosts[..1]), LoadOptions::default()).expect("open");
        let mut kept = 0;
        while s.next_batch(&mut batch).expect("batch") {
            kept += batch.len();
        }
        assert!(s.keys().iter().all(|k| k.host == hosts[0]));
        assert!(kept > 0 && kept < n);
        // A host not in hosts.csv is an error naming its row.
        let mut s = MetricStream::open(&path, &hosts[1..], None, LoadOptions::default()).expect("open");
        let err = loop {
            match s.next_batch(&mut batch) {
                Ok(true) => {}
                Ok(false) => panic!("no error"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(err.contains("metrics.parquet row ") && err.contains("not in hosts.csv"), "{err}");
    }

    /// A row group that cannot be decoded is an error, and so is every read after it:
    /// the rows that were not decoded are never taken for the end of the file.
    #[test]
    fn a_damaged_row_group_stops_the_stream_with_errors_not_an_early_end() {
        let ds = generate(&SynthParams { hosts: 3, days: 1.0, seed: 5, ..SynthParams::default() }).expect("params").dataset;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("metrics.parquet");
        write_series_by_series(&path, &ds.metrics, 2_000);
        // Zero the middle of the second row group's bytes.
        let meta = polars_parquet::parquet::read::read_metadata(&mut std::fs::File::open(&path).expect("open")).expect("meta");
        assert!(meta.row_groups.len() >= 3, "{} row groups", meta.row_groups.len());
        let g = &meta.row_groups[1];
        let (lo, hi) =
            (g.byte_ranges_iter().map(|r| r.start).min().expect("a chunk"), g.byte_ranges_iter().map(|r| r.end).max().expect("a chunk"));
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[lo as usize..hi as usize].fill(0);
        std::fs::write(&path, bytes).expect("write");

        let hosts: Vec<HostId> = ds.hosts.iter().map(|h| h.host.clone()).collect();
        let mut s = MetricStream::open(&path, &hosts, None, LoadOptions::default()).expect("open");
        let mut batch = Vec::new();
        assert!(s.next_batch(&mut batch).expect("the first group is whole"));
        let first = s.next_batch(&mut batch).expect_err("the second group is damaged").to_string();
        assert!(first.contains("metrics.parquet"), "{first}");
        let after = s.next_batch(&mut batch).expect_err("not the end of the file").to_string();
        assert!(after.contains(&format!("row group 2 of {} was not decoded", meta.row_groups.len())), "{after}");
        // read_dataset refuses the file.
        let inventory = tempfile::tempdir().expect("tmp");
        write_dataset(&ds, inventory.path(), MetricsFormat::Parquet).expect("write");
        std::fs::copy(&path, inventory.path().join("metrics.parquet")).expect("copy");
        assert!(read_dataset(inventory.path(), LoadOptions::default()).is_err());
    }
}
