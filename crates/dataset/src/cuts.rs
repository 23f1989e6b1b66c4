//! A dataset's samples handed out in cuts at increasing times while `metrics.parquet` is
//! read only as far as each cut needs ([`SampleCuts`]), for a replay that holds what it has
//! read and not yet fed (about a row group), not the whole file.

use std::path::Path;

use harbinger_core::{HostId, SeriesSamples, TimestampMs};

use crate::read::{DatasetError, LoadOptions, Runs};
use crate::stream::{MetricRow, MetricStream};

/// The samples of `metrics.parquet` in cuts at increasing times.
///
/// A cut at `t` holds, per series, every sample at or before `t` that no earlier cut held,
/// sorted by time and de-duplicated (the last row of a timestamp wins) exactly as
/// [`crate::read_dataset`] leaves the whole series, with the series in key order: for any
/// file, sorted by time or not. What tells that every row at or before `t` has been read
/// are the row groups' timestamp statistics: once the groups before `g` are read, every
/// row still to come is at or after the least minimum of the groups from `g` on. A file
/// without them (or a CSV file) is not cut ([`SampleCuts::open`] gives `None`): read it
/// whole. Each group's rows are checked against its statistics as they come; a group that
/// holds a row outside them is an error (the file is damaged).
pub struct SampleCuts {
    stream: MetricStream,
    /// Per row group: its timestamps' least and greatest value (`None`: no rows).
    bounds: Vec<Option<(i64, i64)>>,
    /// `floor[g]`: the least timestamp in row groups `g..` (`i64::MAX` past the last).
    floor: Vec<i64>,
    /// Row groups read.
    read: usize,
    span: Option<(TimestampMs, TimestampMs)>,
    rows: u64,
    /// By series number (the stream's, [`MetricStream::keys`]).
    pending: Vec<Pending>,
    /// Series numbers in key order.
    order: Vec<u32>,
    batch: Vec<MetricRow>,
    runs: Runs,
    /// The time of the last cut (a cut must not go back).
    last_cut: i64,
}

impl std::fmt::Debug for SampleCuts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleCuts")
            .field("file", &self.stream.path())
            .field("groups", &self.bounds.len())
            .field("read", &self.read)
            .field("series", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// Samples as (time, value).
type Points = Vec<(i64, f64)>;

/// One series' rows read and not yet cut.
#[derive(Debug, Default)]
struct Pending {
    ts: Vec<i64>,
    vs: Vec<f64>,
    /// Rows before it were cut.
    next: usize,
    /// The rows from `next` on are strictly increasing in time.
    ordered: bool,
}

/// Rows of a series cut out before its vectors are compacted (once they are at least half
/// of what it holds: each row is moved at most once on average). A series holds what a
/// row group or two has of it, a few hundred rows.
const COMPACT_ROWS: usize = 256;

impl Pending {
    fn append(&mut self, run: &[(i64, f64)]) {
        let after_last = match self.ts.get(self.next..).and_then(<[i64]>::last) {
            Some(&last) => run.first().is_none_or(|p| p.0 > last),
            None => true,
        };
        self.ordered = (self.ordered || self.next == self.ts.len()) && after_last && run.windows(2).all(|w| w[0].0 < w[1].0);
        self.ts.extend(run.iter().map(|p| p.0));
        self.vs.extend(run.iter().map(|p| p.1));
    }

    /// The rows at or before `now`, sorted and de-duplicated; `None` when there are none.
    fn take(&mut self, now: i64) -> Option<(Vec<i64>, Vec<f64>)> {
        let out = if self.ordered {
            let end = self.next + self.ts[self.next..].partition_point(|&t| t <= now);
            if end == self.next {
                return None;
            }
            let out = (self.ts[self.next..end].to_vec(), self.vs[self.next..end].to_vec());
            self.next = end;
            out
        } else {
            // Rows after `now` stay, in file order; those at or before it are sorted (stably:
            // file order among equal times) and the last of each time kept.
            let rows = self.ts[self.next..].iter().copied().zip(self.vs[self.next..].iter().copied());
            let (mut taken, mut kept): (Points, Points) = rows.partition(|p| p.0 <= now);
            if taken.is_empty() {
                return None;
            }
            taken.sort_by_key(|p| p.0);
            let mut out: (Vec<i64>, Vec<f64>) = (Vec::with_capacity(taken.len()), Vec::with_capacity(taken.len()));
            for (t, v) in taken {
                if out.0.last() == Some(&t) {
                    if let Some(last) = out.1.last_mut() {
                        *last = v;
                    }
                } else {
                    out.0.push(t);
                    out.1.push(v);
                }
            }
            self.ordered = kept.windows(2).all(|w| w[0].0 < w[1].0);
            (self.ts, self.vs) = std::mem::take(&mut kept).into_iter().unzip();
            self.next = 0;
            out
        };
        if self.next >= COMPACT_ROWS && 2 * self.next >= self.ts.len() {
            self.ts.drain(..self.next);
            self.vs.drain(..self.next);
            self.next = 0;
        }
        Some(out)
    }
}

impl SampleCuts {
    /// Opens `path` for cutting; `known` are the hosts of `hosts.csv` (rows of others are
    /// invalid, as [`crate::read_dataset`] has them). `None` when the file cannot be cut: a
    /// CSV file, or a Parquet file without timestamp statistics in a row group.
    ///
    /// # Errors
    /// The file cannot be opened or its metadata decoded, or a column is missing.
    pub fn open(path: &Path, known: &[HostId]) -> Result<Option<Self>, DatasetError> {
        let stream = MetricStream::open(path, known, None, LoadOptions::default())?;
        let Some(groups) = stream.row_group_times() else { return Ok(None) };
        let bounds: Vec<Option<(i64, i64)>> = groups.iter().map(|g| g.1).collect();
        let mut floor = vec![i64::MAX; bounds.len() + 1];
        for g in (0..bounds.len()).rev() {
            floor[g] = floor[g + 1].min(bounds[g].map_or(i64::MAX, |b| b.0));
        }
        let span = bounds
            .iter()
            .flatten()
            .fold(None, |acc: Option<(i64, i64)>, &(lo, hi)| Some(acc.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi)))));
        let rows = groups.iter().map(|g| g.0 as u64).sum();
        Ok(Some(SampleCuts {
            stream,
            bounds,
            floor,
            read: 0,
            span,
            rows,
            pending: Vec::new(),
            order: Vec::new(),
            batch: Vec::new(),
            runs: Runs::default(),
            last_cut: i64::MIN,
        }))
    }

    /// The first and last sample time of the file (from its statistics); `None` without rows.
    pub fn span(&self) -> Option<(TimestampMs, TimestampMs)> {
        self.span
    }

    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Row groups in the file.
    pub fn row_groups(&self) -> usize {
        self.bounds.len()
    }

    /// Series met so far.
    pub fn series_seen(&self) -> usize {
        self.pending.len()
    }

    /// Every series' samples at or before `now` that no earlier cut held: one entry per
    /// series with such samples, in key order, each sorted and de-duplicated. Reads the
    /// file as far as needed.
    ///
    /// # Errors
    /// A row group that cannot be decoded, an invalid row (named), a row group holding a
    /// timestamp outside its statistics, or a cut before the one before.
    pub fn cut(&mut self, now: TimestampMs) -> Result<Vec<SeriesSamples>, DatasetError> {
        if now < self.last_cut {
            return Err(self.damaged(format!("a cut at {now} after one at {}", self.last_cut)));
        }
        self.last_cut = now;
        while self.floor[self.read] <= now {
            self.read_group()?;
        }
        let mut out = Vec::new();
        for &s in &self.order {
            if let Some((timestamps, values)) = self.pending[s as usize].take(now) {
                out.push(SeriesSamples { key: self.stream.keys()[s as usize].clone(), timestamps, values });
            }
        }
        Ok(out)
    }

    fn damaged(&self, reason: String) -> DatasetError {
        DatasetError::Decode { path: self.stream.path().to_path_buf(), reason }
    }

    fn read_group(&mut self) -> Result<(), DatasetError> {
        let g = self.read;
        if !self.stream.next_batch(&mut self.batch)? {
            return Err(self.damaged(format!("the file ended before row group {g} of {}", self.bounds.len())));
        }
        self.read += 1;
        let (lo, hi) = self.batch.iter().fold((i64::MAX, i64::MIN), |(a, b), r| (a.min(r.ts), b.max(r.ts)));
        if let Some((min, max)) = self.bounds[g]
            && !self.batch.is_empty()
            && (lo < min || hi > max)
        {
            return Err(self.damaged(format!(
                "the file is damaged: row group {g}'s statistics put its timestamps in [{min}, {max}], but it holds {}",
                if lo < min { lo } else { hi }
            )));
        }
        let keys = self.stream.keys();
        for n in self.pending.len()..keys.len() {
            let at = self.order.partition_point(|&s| keys[s as usize] < keys[n]);
            self.order.insert(at, n as u32);
            self.pending.push(Pending { ordered: true, ..Pending::default() });
        }
        let pending = &mut self.pending;
        self.runs.append(&self.batch, pending.len(), |s, run| pending[s].append(run));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthParams, generate};
    use crate::{MetricsFormat, read_dataset, write_dataset};
    use polars::prelude::*;

    /// Cuts every `step` from before the first sample to after the last, each series' cuts
    /// joined: what the loaded dataset holds.
    fn cut_all(dir: &Path, step: i64) -> Vec<SeriesSamples> {
        let (inv, report) = crate::read_inventory(dir).expect("inventory");
        let hosts: Vec<HostId> = inv.hosts.iter().map(|h| h.host.clone()).collect();
        let mut cuts = SampleCuts::open(&report.metrics_file, &hosts).expect("open").expect("statistics");
        let (lo, hi) = cuts.span().expect("rows");
        let mut joined: std::collections::BTreeMap<harbinger_core::SeriesKey, SeriesSamples> = Default::default();
        let mut t = lo - step;
        while t < hi + step {
            let cut = cuts.cut(t).expect("cut");
            assert!(cut.windows(2).all(|w| w[0].key < w[1].key), "key order");
            for s in cut {
                assert!(s.timestamps.iter().all(|&x| x <= t && x > t - step), "only the samples after the last cut");
                let e = joined.entry(s.key.clone()).or_insert_with(|| SeriesSamples::new(s.key.clone()));
                e.timestamps.extend(s.timestamps);
                e.values.extend(s.values);
            }
            t += step;
        }
        joined.into_values().collect()
    }

    fn same(a: &[SeriesSamples], b: &[SeriesSamples]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.key, y.key);
            assert_eq!(x.timestamps, y.timestamps, "{}", x.key);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&x.values), bits(&y.values), "{}", x.key);
        }
    }

    /// Writes `rows` (timestamp, host, metric, value) in row groups of `per_group`.
    fn write_rows(path: &Path, rows: &[(i64, String, String, f64)], per_group: usize) {
        let mut df = df!(
            "timestamp" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "host" => rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
            "metric" => rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
            "value" => rows.iter().map(|r| r.3).collect::<Vec<_>>()
        )
        .expect("frame");
        let f = std::fs::File::create(path).expect("create");
        ParquetWriter::new(f).with_row_group_size(Some(per_group)).finish(&mut df).expect("write");
    }

    #[test]
    fn cuts_of_a_sorted_file_join_into_the_loaded_series() {
        let ds = generate(&SynthParams { hosts: 4, days: 1.0, seed: 11, ..SynthParams::default() }).expect("params").dataset;
        let dir = tempfile::tempdir().expect("tmp");
        write_dataset(&ds, dir.path(), MetricsFormat::Parquet).expect("write");
        let (loaded, _) = read_dataset(dir.path(), crate::LoadOptions::default()).expect("read");
        // Cuts finer and coarser than the sampling step.
        for step in [45_000, 60_000, 3_600_000] {
            same(&cut_all(dir.path(), step), &loaded.metrics);
        }
        // The same rows, sorted by time, in row groups of 1,000 (a file of many groups is
        // read a group at a time as the cuts advance).
        let mut rows: Vec<(i64, String, String, f64)> = Vec::new();
        for s in &loaded.metrics {
            for (t, v) in s.timestamps.iter().zip(&s.values) {
                rows.push((*t, s.key.host.to_string(), s.key.metric.to_string(), *v));
            }
        }
        rows.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
        write_rows(&dir.path().join("metrics.parquet"), &rows, 1_000);
        let (inv, report) = crate::read_inventory(dir.path()).expect("inventory");
        let hosts: Vec<HostId> = inv.hosts.iter().map(|h| h.host.clone()).collect();
        let mut cuts = SampleCuts::open(&report.metrics_file, &hosts).expect("open").expect("statistics");
        assert!(cuts.bounds.len() > 40, "{} row groups", cuts.bounds.len());
        let (lo, _) = cuts.span().expect("rows");
        cuts.cut(lo + 3_600_000).expect("cut");
        assert!(cuts.read < cuts.bounds.len() / 4, "{} of {} groups read for the first hour", cuts.read, cuts.bounds.len());
        same(&cut_all(dir.path(), 60_000), &loaded.metrics);
    }

    #[test]
    fn cuts_of_an_unsorted_file_with_duplicates_equal_the_loaded_series() {
        let ds = generate(&SynthParams { hosts: 3, days: 0.5, seed: 2, ..SynthParams::default() }).expect("params").dataset;
        let dir = tempfile::tempdir().expect("tmp");
        write_dataset(&ds, dir.path(), MetricsFormat::Parquet).expect("write");
        // Rows in a scrambled order (a fixed permutation), some repeated with other values
        // (the last one must win), in small row groups whose time ranges overlap.
        let mut rows: Vec<(i64, String, String, f64)> = Vec::new();
        for s in &ds.metrics {
            for (t, v) in s.timestamps.iter().zip(&s.values) {
                rows.push((*t, s.key.host.to_string(), s.key.metric.to_string(), *v));
            }
        }
        let n = rows.len();
        let mut scrambled: Vec<_> = (0..n).map(|i| rows[(i * 7919) % n].clone()).collect();
        for i in (0..n).step_by(97) {
            let mut again = scrambled[i].clone();
            again.3 += 1000.0;
            scrambled.push(again);
        }
        let path = dir.path().join("metrics.parquet");
        write_rows(&path, &scrambled, 700);
        let (loaded, report) = read_dataset(dir.path(), crate::LoadOptions::default()).expect("read");
        assert!(report.out_of_order_rows > 0 && report.duplicate_rows > 0, "{report:?}");
        same(&cut_all(dir.path(), 60_000), &loaded.metrics);
        same(&cut_all(dir.path(), 7_200_000), &loaded.metrics);
    }

    #[test]
    fn a_csv_file_is_not_cut_and_a_cut_cannot_go_back() {
        let ds = generate(&SynthParams { hosts: 2, days: 0.2, seed: 4, ..SynthParams::default() }).expect("params").dataset;
        let hosts: Vec<HostId> = ds.hosts.iter().map(|h| h.host.clone()).collect();
        let csv = tempfile::tempdir().expect("tmp");
        write_dataset(&ds, csv.path(), MetricsFormat::Csv).expect("write");
        assert!(SampleCuts::open(&csv.path().join("metrics.csv"), &hosts).expect("open").is_none());
        let pq = tempfile::tempdir().expect("tmp");
        write_dataset(&ds, pq.path(), MetricsFormat::Parquet).expect("write");
        let mut cuts = SampleCuts::open(&pq.path().join("metrics.parquet"), &hosts).expect("open").expect("statistics");
        assert_eq!(cuts.rows() as usize, ds.metric_rows());
        let (lo, _) = cuts.span().expect("rows");
        assert!(!cuts.cut(lo + 600_000).expect("cut").is_empty());
        let err = cuts.cut(lo).expect_err("back in time").to_string();
        assert!(err.contains("metrics.parquet") && err.contains("a cut at"), "{err}");
    }

    #[test]
    fn a_row_of_an_unknown_host_is_an_error_naming_its_row() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("metrics.parquet");
        let rows: Vec<(i64, String, String, f64)> =
            (0..50).map(|i| (i * 60_000, if i == 30 { "ghost" } else { "h1" }.to_string(), "cpu".to_string(), 0.5)).collect();
        write_rows(&path, &rows, 20);
        let mut cuts = SampleCuts::open(&path, &[HostId::from("h1")]).expect("open").expect("statistics");
        assert_eq!(cuts.cut(20 * 60_000).expect("before the bad row").len(), 1);
        let err = cuts.cut(40 * 60_000).expect_err("the bad row").to_string();
        assert!(err.contains("row 30") && err.contains("not in hosts.csv"), "{err}");
    }
}
