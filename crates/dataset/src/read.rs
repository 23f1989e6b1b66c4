//! Reading a dataset directory, validating every file against the contract.
//!
//! Errors name the file and the 1-based line (CSV, JSON lines) or 0-based row (Parquet)
//! and say what is wrong. Nothing is half-loaded: [`read_dataset`] either returns the
//! whole dataset or an error, so a caller that then writes to a store never writes part
//! of a bad dataset.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use harbinger_core::event::parse_events_jsonl;
use harbinger_core::inventory::{validate_hosts, validate_resources};
use harbinger_core::{EventError, Failure, Host, HostId, InventoryError, Resource, SeriesKey, SeriesSamples};
use polars::prelude::*;

use crate::{Dataset, DatasetMeta};

/// Where in a file a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of a text file (the header is line 1 of a CSV).
    Line(usize),
    /// 0-based row of a Parquet file.
    Row(usize),
    /// The whole file.
    File,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, " line {n}"),
            Location::Row(n) => write!(f, " row {n}"),
            Location::File => Ok(()),
        }
    }
}

/// A dataset that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A required file is absent.
    #[error("{dir}: missing {file} (see the dataset format: hosts.csv and metrics.parquet or metrics.csv are required)")]
    MissingFile {
        /// The dataset directory.
        dir: PathBuf,
        /// The file name expected.
        file: &'static str,
    },
    /// The OS failed to read or write a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A required column is not there.
    #[error("{path}: missing column `{column}` (found: {})", found.join(", "))]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column expected.
        column: &'static str,
        /// The columns present.
        found: Vec<String>,
    },
    /// A value could not be accepted.
    #[error("{path}{location}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Line or row.
        location: Location,
        /// What is wrong.
        reason: String,
    },
    /// Hosts or resources do not hold together.
    #[error("{path}: {source}")]
    Inventory {
        /// The file.
        path: PathBuf,
        /// The inconsistency.
        source: InventoryError,
    },
    /// A bad line in `events.jsonl`.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Polars could not decode the file at all (corrupt Parquet, unreadable CSV).
    #[error("{path}: cannot decode: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Polars' message.
        reason: String,
    },
}

impl DatasetError {
    fn invalid(path: &Path, location: Location, reason: impl Into<String>) -> Self {
        Self::Invalid { path: path.to_path_buf(), location, reason: reason.into() }
    }
    fn decode(path: &Path, e: impl fmt::Display) -> Self {
        Self::Decode { path: path.to_path_buf(), reason: e.to_string() }
    }
}

/// How strict loading is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Skip (and count) invalid metric rows instead of failing: unparsable values,
    /// infinities, unknown hosts. Files that cannot be decoded still fail.
    pub skip_invalid_rows: bool,
}

/// What loading found, beyond the data itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadReport {
    /// The metrics file read.
    pub metrics_file: PathBuf,
    /// Metric rows in the file.
    pub metric_rows: u64,
    /// Rows whose value is NaN or empty (missing by contract).
    pub missing_values: u64,
    /// Rows with the same (host, metric, timestamp) as an earlier row; the last one wins.
    pub duplicate_rows: u64,
    /// Rows whose timestamp is earlier than the previous row of the same series (sorted).
    pub out_of_order_rows: u64,
    /// Invalid rows skipped (only with `skip_invalid_rows`).
    pub skipped_rows: u64,
    /// The first skipped row's error, for the operator.
    pub first_skipped: Option<String>,
    /// Events whose `ts` was before the previous line's (sorted).
    pub out_of_order_events: u64,
    /// Optional files that were absent.
    pub absent_files: Vec<&'static str>,
}

/// Reads and validates a dataset directory. `metrics.parquet` is read a row group at a
/// time ([`crate::stream::MetricStream`]), `metrics.csv` whole.
///
/// # Errors
/// [`DatasetError`] naming the file and line or row of the first problem. With
/// `skip_invalid_rows`, bad metric rows are counted in the report instead.
pub fn read_dataset(dir: &Path, opts: LoadOptions) -> Result<(Dataset, LoadReport), DatasetError> {
    let (mut ds, mut report) = read_inventory(dir)?;
    let metrics_path = report.metrics_file.clone();
    if metrics_path.extension().is_some_and(|e| e == "parquet") {
        ds.metrics = stream_metrics(&metrics_path, &ds.hosts, ds.meta.as_ref(), opts, &mut report)?;
        return Ok((ds, report));
    }
    let metrics = guarded(&metrics_path, || read_metrics_csv(&metrics_path))?;
    let known: BTreeSet<&str> = ds.hosts.iter().map(|h| h.host.as_str()).collect();
    ds.metrics = group_metrics(&metrics_path, metrics, &known, opts, &mut report)?;
    Ok((ds, report))
}

/// `metrics.parquet` read a row group at a time ([`crate::stream::MetricStream`]: the
/// same checks and errors), each row straight into its series, then every series sorted
/// and de-duplicated ([`normalize`]) and the series sorted by key. Only one row group is
/// ever decoded at a time: at 1,000 hosts x 7 days the whole file decoded at once held
/// 5.3 GB (two 16-byte string views a row), the series themselves 1.3 GB. Each new series
/// is given the room `dataset.json` says it needs ([`Room`]). The rows of a group are
/// checked and numbered on a thread of their own while this one files the group before
/// into the series (when the two took turns on one thread, loading 1,000 hosts x 7 days took 3.3-3.7 s on
/// 2 cores; 2.8-3.3 s so).
fn stream_metrics(
    path: &Path,
    hosts: &[Host],
    meta: Option<&DatasetMeta>,
    opts: LoadOptions,
    report: &mut LoadReport,
) -> Result<Vec<SeriesSamples>, DatasetError> {
    let known: Vec<HostId> = hosts.iter().map(|h| h.host.clone()).collect();
    let stream = crate::stream::MetricStream::open(path, &known, None, opts)?;
    let mut room = Room::new(meta, stream.total_rows());
    let mut series: Vec<SeriesSamples> = Vec::new();
    let mut runs = Runs::default();
    std::thread::scope(|scope| {
        // A batch of rows with the series first seen in it; at most one waits.
        let (rows_tx, rows) = std::sync::mpsc::sync_channel::<Result<(Vec<crate::stream::MetricRow>, Vec<SeriesKey>), DatasetError>>(1);
        // Batches filed, their room used again.
        let (spent_tx, spent) = std::sync::mpsc::channel::<Vec<crate::stream::MetricRow>>();
        let reader = std::thread::Builder::new()
            .name("metrics-rows".into())
            .spawn_scoped(scope, move || {
                let mut stream = stream;
                let mut seen = 0;
                loop {
                    let mut batch = spent.try_recv().unwrap_or_default();
                    let item = match stream.next_batch(&mut batch) {
                        Ok(false) => break,
                        Ok(true) => {
                            let new = stream.keys()[seen..].to_vec();
                            seen = stream.keys().len();
                            Ok((batch, new))
                        }
                        Err(e) => Err(e),
                    };
                    let failed = item.is_err();
                    // Sent nowhere: the filing side stopped on an error of its own.
                    if rows_tx.send(item).is_err() || failed {
                        break;
                    }
                }
                stream
            })
            .map_err(|e| DatasetError::decode(path, format!("cannot start a reading thread: {e}")))?;
        for item in rows {
            let (batch, new) = item?;
            series.extend(new.into_iter().map(|key| {
                let n = room.take();
                SeriesSamples { key, timestamps: Vec::with_capacity(n), values: Vec::with_capacity(n) }
            }));
            // A part at a time: the buffer stays small whatever the row groups' size.
            for part in batch.chunks(RUN_ROWS) {
                runs.extend(part, &mut series);
            }
            // The reader may be done: the batch is then dropped here.
            let _ = spent_tx.send(batch);
        }
        let stream = reader.join().map_err(|_| DatasetError::decode(path, "the thread reading the rows failed"))?;
        report.metric_rows = stream.rows_read();
        let (skipped, first) = stream.skipped();
        report.skipped_rows += skipped;
        if report.first_skipped.is_none() {
            report.first_skipped = first.map(str::to_string);
        }
        report.missing_values += stream.missing_values();
        Ok::<(), DatasetError>(())
    })?;
    Ok(finish_series(series, report))
}

/// Rows [`Runs`] puts in series order at once (16 MB of buffer).
const RUN_ROWS: usize = 1 << 20;

/// Appends a batch of rows to their series a series at a time: the rows are first put in
/// series order (a stable counting sort into a buffer kept between batches), then each
/// series' run is appended at once. Row by row, a time-ordered file (every row another
/// series) wrote to 16,000 places in turn, a cache and TLB miss per sample: at 1,000 hosts
/// the largest part of the load.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    /// Where each series' run starts in `sorted` (then: where its next row goes).
    starts: Vec<usize>,
    sorted: Vec<(i64, f64)>,
}

impl Runs {
    /// Puts `batch` (rows of series numbered below `series`) in series order and hands
    /// each series' run to `each` (series number, its rows in file order), series by series.
    pub(crate) fn append(&mut self, batch: &[crate::stream::MetricRow], series: usize, mut each: impl FnMut(usize, &[(i64, f64)])) {
        self.starts.clear();
        self.starts.resize(series + 1, 0);
        for r in batch {
            self.starts[r.series as usize + 1] += 1;
        }
        for i in 1..self.starts.len() {
            self.starts[i] += self.starts[i - 1];
        }
        self.sorted.clear();
        self.sorted.resize(batch.len(), (0, 0.0));
        // `starts[s]` walks through series s's run; once done it is where run s + 1 starts.
        for r in batch {
            let at = &mut self.starts[r.series as usize];
            self.sorted[*at] = (r.ts, r.value);
            *at += 1;
        }
        let mut from = 0;
        for (s, &end) in self.starts.iter().take(series).enumerate() {
            if end > from {
                each(s, &self.sorted[from..end]);
            }
            from = end;
        }
    }

    /// [`Runs::append`] onto the series' own vectors.
    fn extend(&mut self, batch: &[crate::stream::MetricRow], series: &mut [SeriesSamples]) {
        self.append(batch, series.len(), |s, run| {
            series[s].timestamps.extend(run.iter().map(|p| p.0));
            series[s].values.extend(run.iter().map(|p| p.1));
        });
    }
}

/// Room for a series' samples, given when the series is first seen: the samples
/// `dataset.json` says a series holds (its span over its step), as long as the rooms given
/// stay within the rows of the metrics file. Grown by doubling instead, the 16,000 vectors
/// of a time-ordered file (1,000 hosts) were moved and had fresh pages zeroed a dozen
/// times each, a third of the load's time; the cap keeps a wrong `dataset.json` from
/// making a load take more memory than its rows.
#[derive(Debug)]
struct Room {
    per_series: u64,
    /// Rows of the file not yet given as room.
    left: u64,
}

impl Room {
    fn new(meta: Option<&DatasetMeta>, rows: Option<u64>) -> Self {
        let rows = rows.unwrap_or(0);
        let per_series = match meta.map(|m| (m.start_ms, m.end_ms, m.step_ms)) {
            Some((Some(start), Some(end), Some(step))) => match (end.checked_sub(start).map(u64::try_from), u64::try_from(step)) {
                (Some(Ok(span)), Ok(step)) if step > 0 => span.div_ceil(step).saturating_add(1),
                _ => 0,
            },
            _ => 0,
        };
        Room { per_series: per_series.min(rows), left: rows }
    }

    /// The room of the next new series (0 once the file's rows are given out).
    fn take(&mut self) -> usize {
        let n = self.per_series.min(self.left);
        self.left -= n;
        usize::try_from(n).unwrap_or(0)
    }
}

/// Reads and validates everything of a dataset directory but the metric samples: hosts,
/// resources, events, failures and `dataset.json`, with `metrics` left empty. The
/// report names the metrics file to read (`metrics.parquet`, else `metrics.csv`), which
/// [`crate::stream::MetricStream`] reads a part at a time.
///
/// # Errors
/// [`DatasetError`] naming the file and line of the first problem, or a missing file.
pub fn read_inventory(dir: &Path) -> Result<(Dataset, LoadReport), DatasetError> {
    let mut report = LoadReport::default();

    let hosts_path = dir.join("hosts.csv");
    if !hosts_path.exists() {
        return Err(DatasetError::MissingFile { dir: dir.to_path_buf(), file: "hosts.csv" });
    }
    let hosts = read_hosts(&hosts_path)?;
    let known: BTreeSet<&str> = hosts.iter().map(|h| h.host.as_str()).collect();

    let resources_path = dir.join("resources.json");
    let resources = if resources_path.exists() {
        let r = read_resources(&resources_path)?;
        validate_resources(&r, &hosts).map_err(|source| DatasetError::Inventory { path: resources_path.clone(), source })?;
        r
    } else {
        report.absent_files.push("resources.json");
        Vec::new()
    };

    report.metrics_file = {
        let pq = dir.join("metrics.parquet");
        let csv = dir.join("metrics.csv");
        if pq.exists() {
            pq
        } else if csv.exists() {
            csv
        } else {
            return Err(DatasetError::MissingFile { dir: dir.to_path_buf(), file: "metrics.parquet" });
        }
    };

    let events_path = dir.join("events.jsonl");
    let events = if events_path.exists() {
        let text = std::fs::read_to_string(&events_path).map_err(|source| DatasetError::Io { path: events_path.clone(), source })?;
        let mut events = parse_events_jsonl(&text, &events_path.display().to_string())?;
        // Check hosts line by line: parse_events_jsonl skips blank lines, so recover numbers.
        let lines: Vec<usize> = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, _)| i + 1).collect();
        for (ev, line) in events.iter().zip(&lines) {
            if let Some(h) = &ev.host
                && !known.contains(h.as_str())
            {
                return Err(DatasetError::invalid(&events_path, Location::Line(*line), format!("unknown host {h:?} (not in hosts.csv)")));
            }
        }
        report.out_of_order_events = events.windows(2).filter(|w| w[1].ts < w[0].ts).count() as u64;
        events.sort_by_key(|e| e.ts);
        events
    } else {
        report.absent_files.push("events.jsonl");
        Vec::new()
    };

    let failures_path = dir.join("failures.csv");
    let failures = if failures_path.exists() {
        read_failures(&failures_path, &known)?
    } else {
        report.absent_files.push("failures.csv");
        Vec::new()
    };

    let meta_path = dir.join("dataset.json");
    let meta = if meta_path.exists() {
        let text = std::fs::read_to_string(&meta_path).map_err(|source| DatasetError::Io { path: meta_path.clone(), source })?;
        let m: DatasetMeta = serde_json::from_str(&text)
            .map_err(|e| DatasetError::invalid(&meta_path, Location::Line(e.line()), format!("invalid dataset.json: {e}")))?;
        Some(m)
    } else {
        report.absent_files.push("dataset.json");
        None
    };

    Ok((Dataset { meta, hosts, resources, metrics: Vec::new(), events, failures }, report))
}

/// Runs a polars decoder over `path`, turning a panic inside it into a decode error
/// naming the file: polars' Parquet reader panics on some damaged files (a corrupt
/// bit-width or thrift field) instead of returning an error.
pub(crate) fn guarded<T>(path: &Path, decode: impl FnOnce() -> Result<T, DatasetError>) -> Result<T, DatasetError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(DatasetError::decode(path, format!("the file is damaged (the decoder failed: {what})")))
    })
}

/// Reads a CSV with every column as a string, so each value can be parsed with its line.
fn read_csv_strings(path: &Path) -> Result<DataFrame, DatasetError> {
    guarded(path, || {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(|e| DatasetError::decode(path, e))
    })
}

fn names(df: &DataFrame) -> Vec<String> {
    df.get_column_names().iter().map(|s| s.to_string()).collect()
}

fn str_col<'a>(df: &'a DataFrame, path: &Path, column: &'static str) -> Result<&'a StringChunked, DatasetError> {
    let c = df.column(column).map_err(|_| DatasetError::MissingColumn { path: path.to_path_buf(), column, found: names(df) })?;
    c.str().map_err(|e| DatasetError::decode(path, e))
}

fn opt_str_col<'a>(df: &'a DataFrame, path: &Path, column: &'static str) -> Result<Option<&'a StringChunked>, DatasetError> {
    if df.column(column).is_err() {
        return Ok(None);
    }
    str_col(df, path, column).map(Some)
}

fn required<'a>(v: Option<&'a str>, path: &Path, line: usize, column: &str) -> Result<&'a str, DatasetError> {
    match v.map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(DatasetError::invalid(path, Location::Line(line), format!("empty `{column}`"))),
    }
}

fn parse_f64(s: &str, path: &Path, loc: Location, column: &str) -> Result<f64, DatasetError> {
    s.trim().parse::<f64>().map_err(|_| DatasetError::invalid(path, loc, format!("`{column}` is not a number: {s:?}")))
}

fn parse_i64(s: &str, path: &Path, loc: Location, column: &str) -> Result<i64, DatasetError> {
    s.trim().parse::<i64>().map_err(|_| DatasetError::invalid(path, loc, format!("`{column}` is not an integer (ms since epoch): {s:?}")))
}

fn read_hosts(path: &Path) -> Result<Vec<Host>, DatasetError> {
    let df = read_csv_strings(path)?;
    let host = str_col(&df, path, "host")?;
    let zone = str_col(&df, path, "zone")?;
    let rack = opt_str_col(&df, path, "rack")?;
    let cpu = str_col(&df, path, "cpu_cores")?;
    let mem = str_col(&df, path, "mem_gb")?;
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let line = i + 2;
        let loc = Location::Line(line);
        let h = required(host.get(i), path, line, "host")?;
        let cpu_cores = parse_f64(required(cpu.get(i), path, line, "cpu_cores")?, path, loc, "cpu_cores")?;
        let mem_gb = parse_f64(required(mem.get(i), path, line, "mem_gb")?, path, loc, "mem_gb")?;
        out.push(Host {
            host: HostId::new(h),
            zone: zone.get(i).unwrap_or("").trim().to_string(),
            rack: rack.and_then(|r| r.get(i)).unwrap_or("").trim().to_string(),
            cpu_cores,
            mem_gb,
        });
    }
    validate_hosts(&out).map_err(|source| DatasetError::Inventory { path: path.to_path_buf(), source })?;
    Ok(out)
}

fn read_resources(path: &Path) -> Result<Vec<Resource>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|e| DatasetError::invalid(path, Location::Line(e.line()), format!("invalid resources.json: {e}")))
}

fn read_failures(path: &Path, known: &BTreeSet<&str>) -> Result<Vec<Failure>, DatasetError> {
    let df = read_csv_strings(path)?;
    let host = str_col(&df, path, "host")?;
    let ts = str_col(&df, path, "timestamp")?;
    let kind = str_col(&df, path, "kind")?;
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let line = i + 2;
        let h = required(host.get(i), path, line, "host")?;
        if !known.contains(h) {
            return Err(DatasetError::invalid(path, Location::Line(line), format!("unknown host {h:?} (not in hosts.csv)")));
        }
        let timestamp = parse_i64(required(ts.get(i), path, line, "timestamp")?, path, Location::Line(line), "timestamp")?;
        out.push(Failure { host: HostId::new(h), timestamp, kind: kind.get(i).unwrap_or("").trim().to_string() });
    }
    out.sort_by(|a, b| (a.timestamp, &a.host).cmp(&(b.timestamp, &b.host)));
    Ok(out)
}

/// The four metric columns in file order, before grouping. `location(i)` maps row i to
/// the place a user finds it.
pub(crate) struct MetricColumns {
    pub(crate) ts: Int64Chunked,
    pub(crate) host: StringChunked,
    pub(crate) metric: StringChunked,
    pub(crate) value: Float64Chunked,
    csv: bool,
    /// First bad cell found while parsing CSV text, reported once grouping reaches it.
    pub(crate) bad: Vec<(usize, String)>,
}

impl MetricColumns {
    pub(crate) fn location(&self, i: usize) -> Location {
        if self.csv { Location::Line(i + 2) } else { Location::Row(i) }
    }

    /// Gives the four columns the same chunks (one each when they differ), so rows can be
    /// walked chunk by chunk.
    pub(crate) fn align(&mut self) {
        let lens: Vec<usize> = self.ts.chunk_lengths().collect();
        let same = |other: Vec<usize>| other == lens;
        if !(same(self.value.chunk_lengths().collect())
            && same(self.host.chunk_lengths().collect())
            && same(self.metric.chunk_lengths().collect()))
        {
            self.ts = self.ts.rechunk().into_owned();
            self.value = self.value.rechunk().into_owned();
            self.host = self.host.rechunk().into_owned();
            self.metric = self.metric.rechunk().into_owned();
        }
    }

    /// (timestamp, value) of every row, chunk by chunk (statically dispatched: the
    /// `ChunkedArray` iterators are boxed, which costs more than the work per row here).
    fn points(&self) -> impl Iterator<Item = (Option<i64>, Option<f64>)> + '_ {
        self.ts
            .downcast_iter()
            .zip(self.value.downcast_iter())
            .flat_map(|(t, v)| t.iter().map(|x| x.copied()).zip(v.iter().map(|x| x.copied())))
    }
}

pub(crate) const METRIC_COLUMNS: [&str; 4] = ["timestamp", "host", "metric", "value"];

/// Refuses a Parquet file a data page of which declares a negative count of values, nulls
/// or rows: polars takes such a count for a huge size and the process aborts on the
/// allocation (which no error handling can catch). Reads page headers only.
/// Checks the row groups `groups` of the file whose metadata is `meta`; `bytes` holds at
/// least their column chunks, at their offsets in the file.
pub(crate) fn check_page_headers(
    path: &Path,
    bytes: &polars_buffer::Buffer<u8>,
    meta: &polars_parquet::parquet::metadata::FileMetadata,
    groups: std::ops::Range<usize>,
) -> Result<(), DatasetError> {
    use polars_parquet::parquet::page::{CompressedPage, DataPageHeader};
    use polars_parquet::parquet::read::get_page_iterator;
    for (g, group) in meta.row_groups.iter().enumerate().take(groups.end).skip(groups.start) {
        for column in group.parquet_columns() {
            let name = &column.descriptor().path_in_schema;
            let pages = get_page_iterator(column, std::io::Cursor::new(bytes.clone()), Vec::new(), usize::MAX)
                .map_err(|e| DatasetError::decode(path, e))?;
            for (i, page) in pages.enumerate() {
                let CompressedPage::Data(page) = page.map_err(|e| DatasetError::decode(path, e))? else { continue };
                let negative = match page.header() {
                    DataPageHeader::V1(h) => h.num_values < 0,
                    DataPageHeader::V2(h) => h.num_values < 0 || h.num_nulls < 0 || h.num_rows < 0 || h.definition_levels_byte_length < 0,
                };
                if negative {
                    return Err(DatasetError::decode(
                        path,
                        format!("the file is damaged: row group {g}, column {name:?}, page {i} declares a negative count"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The four metric columns of a frame decoded from `path`, cast to their types (names
/// may be dictionary-encoded, timestamps any integer, values any number).
pub(crate) fn parquet_columns(path: &Path, df: &DataFrame) -> Result<MetricColumns, DatasetError> {
    let cast = |name: &'static str, to: &DataType| -> Result<Column, DatasetError> {
        let c = df.column(name).map_err(|e| DatasetError::decode(path, e))?;
        let ok = match to {
            DataType::Int64 => c.dtype().is_integer(),
            DataType::Float64 => c.dtype().is_primitive_numeric(),
            // Other tools often write names dictionary-encoded (pandas `category`).
            _ => matches!(c.dtype(), DataType::String | DataType::Categorical(..) | DataType::Enum(..)),
        };
        if !ok {
            return Err(DatasetError::invalid(path, Location::File, format!("column `{name}` has type {}, expected {to}", c.dtype())));
        }
        c.cast(to).map_err(|e| DatasetError::decode(path, e))
    };
    let ts = cast("timestamp", &DataType::Int64)?;
    let value = cast("value", &DataType::Float64)?;
    let host = cast("host", &DataType::String)?;
    let metric = cast("metric", &DataType::String)?;
    let dec = |e: PolarsError| DatasetError::decode(path, e);
    Ok(MetricColumns {
        ts: ts.i64().map_err(dec)?.clone(),
        host: host.str().map_err(dec)?.clone(),
        metric: metric.str().map_err(dec)?.clone(),
        value: value.f64().map_err(dec)?.clone(),
        csv: false,
        bad: Vec::new(),
    })
}

pub(crate) fn read_metrics_csv(path: &Path) -> Result<MetricColumns, DatasetError> {
    let df = read_csv_strings(path)?;
    let ts_s = str_col(&df, path, "timestamp")?;
    let host = str_col(&df, path, "host")?.clone();
    let metric = str_col(&df, path, "metric")?.clone();
    let val_s = str_col(&df, path, "value")?;
    let mut bad = Vec::new();
    let ts: Int64Chunked = ts_s
        .iter()
        .enumerate()
        .map(|(i, s)| match s.map(str::trim) {
            None | Some("") => None,
            Some(s) => s.parse::<i64>().ok().or_else(|| {
                bad.push((i, format!("`timestamp` is not an integer (ms since epoch): {s:?}")));
                None
            }),
        })
        .collect();
    let value: Float64Chunked = val_s
        .iter()
        .enumerate()
        .map(|(i, s)| match s.map(str::trim) {
            None | Some("") => Some(f64::NAN),
            Some(s) => s.parse::<f64>().ok().or_else(|| {
                bad.push((i, format!("`value` is not a number: {s:?}")));
                None
            }),
        })
        .collect();
    bad.sort_by_key(|(i, _)| *i);
    Ok(MetricColumns { ts, host, metric, value, csv: true, bad })
}

/// What is wrong with one metric row, else its host and metric.
pub(crate) fn row_problem<'a>(
    ts: Option<i64>,
    value: Option<f64>,
    host: Option<&'a str>,
    metric: Option<&'a str>,
) -> Result<(&'a str, &'a str), String> {
    let (Some(_), Some(h), Some(m)) = (ts, host, metric) else {
        let reason = match (ts, host) {
            (None, _) => "empty `timestamp`",
            (_, None) => "empty `host`",
            _ => "empty `metric`",
        };
        return Err(reason.into());
    };
    if let Some(v) = value.filter(|v| v.is_infinite()) {
        return Err(format!("value is infinite ({v})"));
    }
    Ok((h, m))
}

/// What is wrong with a (host, metric) pair of a metric row, if anything.
pub(crate) fn pair_problem(h: &str, m: &str, known: bool) -> Option<String> {
    if h.is_empty() {
        Some("empty `host`".into())
    } else if m.is_empty() {
        Some("empty `metric`".into())
    } else if !known {
        Some(format!("unknown host {h:?} (not in hosts.csv)"))
    } else {
        None
    }
}

/// A row that belongs to no series (skipped as invalid).
const SKIP: u32 = u32::MAX;

/// Pass 1 over one range of rows: its (host, metric) pairs in order of first appearance,
/// rows per pair, and what was skipped.
struct Interned<'a> {
    keys: Vec<(&'a str, &'a str)>,
    counts: Vec<usize>,
    skipped: u64,
    first_skipped: Option<String>,
}

/// Validates and interns rows `lo..lo + out.len()`, writing each row's local series
/// number (an index into the returned keys) or [`SKIP`] into `out`.
fn intern_range<'a>(
    path: &Path,
    cols: &'a MetricColumns,
    lo: usize,
    out: &mut [u32],
    known: &BTreeSet<&str>,
    opts: LoadOptions,
) -> Result<Interned<'a>, DatasetError> {
    let mut part = Interned { keys: Vec::new(), counts: Vec::new(), skipped: 0, first_skipped: None };
    // (host, metric) -> local series number, or None for a pair that is never valid.
    let mut index: foldhash::HashMap<(&str, &str), Option<u32>> = foldhash::HashMap::default();
    let skip = |part: &mut Interned<'a>, err: DatasetError| -> Result<(), DatasetError> {
        if !opts.skip_invalid_rows {
            return Err(err);
        }
        part.skipped += 1;
        if part.first_skipped.is_none() {
            part.first_skipped = Some(err.to_string());
        }
        Ok(())
    };
    let hi = lo + out.len();
    let mut bad = cols.bad[cols.bad.partition_point(|(j, _)| *j < lo)..].iter().peekable();
    let mut row = |i: usize, ts: Option<i64>, value: Option<f64>, host: Option<&'a str>, metric: Option<&'a str>| {
        if bad.peek().is_some_and(|(j, _)| *j == i) {
            let reason = bad.next().map(|(_, r)| r.clone()).unwrap_or_default();
            return skip(&mut part, DatasetError::invalid(path, cols.location(i), reason));
        }
        let (h, m) = match row_problem(ts, value, host, metric) {
            Ok(hm) => hm,
            Err(reason) => return skip(&mut part, DatasetError::invalid(path, cols.location(i), reason)),
        };
        let slot = match index.get(&(h, m)) {
            Some(slot) => *slot,
            None => {
                let slot = if pair_problem(h, m, known.contains(h)).is_some() {
                    None
                } else {
                    part.keys.push((h, m));
                    part.counts.push(0);
                    Some((part.keys.len() - 1) as u32)
                };
                index.insert((h, m), slot);
                slot
            }
        };
        let Some(idx) = slot else {
            let reason = pair_problem(h, m, known.contains(h)).unwrap_or_default();
            return skip(&mut part, DatasetError::invalid(path, cols.location(i), reason));
        };
        part.counts[idx as usize] += 1;
        out[i - lo] = idx;
        Ok(())
    };
    // Chunk by chunk, by index: an iterator chain over four columns costs more than the
    // work per row.
    let mut start = 0;
    let chunks = cols.ts.downcast_iter().zip(cols.value.downcast_iter()).zip(cols.host.downcast_iter().zip(cols.metric.downcast_iter()));
    for ((t, v), (h, m)) in chunks {
        let len = t.len();
        let (a, b) = (lo.max(start), hi.min(start + len));
        for i in a..b {
            let j = i - start;
            row(i, t.get(j), v.get(j), h.get(j), m.get(j))?;
        }
        start += len;
        if start >= hi {
            break;
        }
    }
    Ok(part)
}

/// Validates rows, interns names, groups by series, sorts and de-duplicates.
///
/// Hosts are checked once per new (host, metric) pair, not per row; rows are grouped
/// straight into per-series columns.
fn group_metrics(
    path: &Path,
    mut cols: MetricColumns,
    known: &BTreeSet<&str>,
    opts: LoadOptions,
    report: &mut LoadReport,
) -> Result<Vec<SeriesSamples>, DatasetError> {
    cols.align();
    let n = cols.ts.len();
    report.metric_rows = n as u64;
    // Pass 1, in parallel over contiguous row ranges: validate, intern (host, metric)
    // pairs per range, and write each row's range-local series number (or SKIP). The
    // ranges are then merged in file order, so series are numbered by first appearance
    // in the file and the first bad row reported is the first in the file.
    let parts = rayon::current_num_threads().min(n / 65_536).max(1);
    let per_part = n.div_ceil(parts).max(1);
    let mut row_series: Vec<u32> = vec![SKIP; n];
    let scanned: Vec<Result<Interned<'_>, DatasetError>> = {
        use rayon::prelude::*;
        let cols = &cols;
        row_series.par_chunks_mut(per_part).enumerate().map(|(p, out)| intern_range(path, cols, p * per_part, out, known, opts)).collect()
    };
    let mut index: foldhash::HashMap<(&str, &str), u32> = foldhash::HashMap::default();
    let mut series: Vec<SeriesSamples> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for (p, part) in scanned.into_iter().enumerate() {
        let part = part?;
        report.skipped_rows += part.skipped;
        if report.first_skipped.is_none() {
            report.first_skipped = part.first_skipped;
        }
        let remap: Vec<u32> = part
            .keys
            .iter()
            .map(|&(h, m)| {
                *index.entry((h, m)).or_insert_with(|| {
                    series.push(SeriesSamples::new(SeriesKey::new(h, m)));
                    counts.push(0);
                    (series.len() - 1) as u32
                })
            })
            .collect();
        for (&g, &c) in remap.iter().zip(&part.counts) {
            counts[g as usize] += c;
        }
        if remap.iter().enumerate().any(|(l, &g)| l as u32 != g) {
            let lo = p * per_part;
            for s in &mut row_series[lo..(lo + per_part).min(n)] {
                if *s != SKIP {
                    *s = remap[*s as usize];
                }
            }
        }
    }
    // Pass 2: exact-size columns, then scatter rows into them (no hashing, no regrowth).
    for (s, n) in series.iter_mut().zip(&counts) {
        s.timestamps.reserve_exact(*n);
        s.values.reserve_exact(*n);
    }
    // Writes to thousands of columns at once miss the cache and the TLB on nearly every
    // row: each core takes a range of series and scans all rows for its own (one range
    // per core, as every range costs a scan of all rows).
    let per_task = series.len().div_ceil(rayon::current_num_threads()).max(1);
    let missing: u64 = {
        use rayon::prelude::*;
        let (cols, row_series) = (&cols, &row_series);
        series
            .par_chunks_mut(per_task)
            .enumerate()
            .map(|(c, part)| {
                let lo = (c * per_task) as u32;
                let hi = lo + part.len() as u32;
                let mut missing = 0u64;
                for ((ts, value), &idx) in cols.points().zip(row_series) {
                    if idx == SKIP || idx < lo || idx >= hi {
                        continue;
                    }
                    let v = value.unwrap_or(f64::NAN);
                    if v.is_nan() {
                        missing += 1;
                    }
                    part[(idx - lo) as usize].push(ts.unwrap_or_default(), v);
                }
                missing
            })
            .sum()
    };
    report.missing_values += missing;
    Ok(finish_series(series, report))
}

/// Every series sorted and de-duplicated ([`normalize`], counted in `report`), the series
/// sorted by key: the last step of both ways of reading the metrics.
fn finish_series(mut series: Vec<SeriesSamples>, report: &mut LoadReport) -> Vec<SeriesSamples> {
    for s in &mut series {
        let (disorder, duplicates) = normalize(&mut s.timestamps, &mut s.values);
        report.out_of_order_rows += disorder;
        report.duplicate_rows += duplicates;
    }
    series.sort_by(|a, b| a.key.cmp(&b.key));
    series
}

/// Sorts the samples of one series by time (stably: among equal timestamps, file order is
/// kept) and drops duplicates, the last row winning. Returns the samples that were out of
/// order and the duplicates dropped.
pub fn normalize(timestamps: &mut Vec<i64>, values: &mut Vec<f64>) -> (u64, u64) {
    let disorder = timestamps.windows(2).filter(|w| w[1] < w[0]).count() as u64;
    if disorder > 0 {
        let mut pts: Vec<(i64, f64)> = timestamps.iter().copied().zip(values.iter().copied()).collect();
        pts.sort_by_key(|p| p.0);
        (*timestamps, *values) = pts.into_iter().unzip();
    }
    let mut duplicates = 0;
    if timestamps.windows(2).any(|w| w[0] == w[1]) {
        let mut ts = Vec::with_capacity(timestamps.len());
        let mut vs: Vec<f64> = Vec::with_capacity(values.len());
        for (t, v) in timestamps.iter().zip(values.iter()) {
            if ts.last() == Some(t) {
                duplicates += 1;
                if let Some(last) = vs.last_mut() {
                    *last = *v; // the last row wins
                }
            } else {
                ts.push(*t);
                vs.push(*v);
            }
        }
        (*timestamps, *values) = (ts, vs);
    }
    (disorder, duplicates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::MetricRow;

    /// Runs appended a batch at a time hold what row-by-row pushes give: each series its
    /// rows in file order (out-of-order and duplicate times included), across batches, with
    /// series first seen in a later batch and series absent from a batch.
    #[test]
    fn series_appended_run_by_run_equal_rows_pushed_one_by_one() {
        let batches: Vec<Vec<MetricRow>> = vec![
            vec![(0, 10, 1.0), (1, 10, 2.0), (0, 5, 3.0), (2, 10, f64::NAN), (1, 10, 4.0), (0, 20, 5.0)],
            vec![(2, 30, 6.0), (3, 1, 7.0), (2, 30, 8.0)],
            vec![],
            vec![(3, 2, 9.0), (0, 40, 10.0), (4, 0, 11.0), (3, 1, 12.0)],
        ]
        .into_iter()
        .map(|b| b.into_iter().map(|(series, ts, value)| MetricRow { series, ts, value }).collect())
        .collect();
        let new = |n: usize| (0..n).map(|i| SeriesSamples::new(SeriesKey::new(format!("h{i}"), "m"))).collect::<Vec<_>>();
        let (mut by_run, mut by_row) = (Vec::new(), Vec::new());
        let mut runs = Runs::default();
        for b in &batches {
            let seen = b.iter().map(|r| r.series as usize + 1).max().unwrap_or(0).max(by_run.len());
            by_run.extend(new(seen)[by_run.len()..].iter().cloned());
            by_row.extend(new(seen)[by_row.len()..].iter().cloned());
            runs.extend(b, &mut by_run);
            for r in b {
                by_row[r.series as usize].push(r.ts, r.value);
            }
        }
        assert_eq!(by_run.len(), 5);
        for (a, b) in by_run.iter().zip(&by_row) {
            assert_eq!(a.key, b.key);
            assert_eq!(a.timestamps, b.timestamps, "{}", a.key);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.values), bits(&b.values), "{}", a.key);
        }
        assert_eq!(by_run[0].timestamps, [10, 5, 20, 40]);
        assert_eq!(by_run[3].timestamps, [1, 2, 1]);
    }
}
