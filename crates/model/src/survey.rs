//! What training must know of a dataset's samples before it computes the first feature:
//! the time span, each host's first sample, the sampling step, each metric's range and
//! season, and how far the file departs from time order.
//!
//! [`Survey::of`] reads it off a dataset in memory; [`Survey::scan`] gathers the same in
//! one pass over a [`MetricStream`], holding only the few series the step and the seasons
//! are measured on (the first 64 by key, and per metric the first 8 with a value), so
//! that [`crate::train_stream`] can then compute features in a second pass with memory
//! that does not grow with the fleet.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use harbinger_core::{HostId, SeriesKey, SeriesSamples, TimestampMs};
use harbinger_dataset::{Dataset, DatasetError, DatasetMeta, MetricRow, MetricStream};

use crate::features::{FeatureSchema, TimeScales};
use crate::runner::{data_span, schema_from, step_from};

/// Series read whole for the step ([`crate::runner::step_of`] reads the first 64 by key).
const STEP_SERIES: usize = 64;
/// Series with a value read whole per metric for its season.
const SEASON_SERIES: usize = 8;

/// A metric's facts: every value in [0, 1]; its first series with a value, by key.
#[derive(Clone, Debug, PartialEq)]
struct MetricFacts {
    bounded: bool,
    season: Vec<SeriesSamples>,
}

/// The facts of a dataset's samples that training needs before the features.
#[derive(Clone, Debug, PartialEq)]
pub struct Survey {
    /// First and last sample time (`None`: no samples).
    pub span: Option<(TimestampMs, TimestampMs)>,
    /// Each host's first sample time.
    pub first_seen: HashMap<HostId, TimestampMs>,
    /// Each host's last sample time.
    pub last_seen: HashMap<HostId, TimestampMs>,
    /// The sampling step: `dataset.json`'s, else the median gap of the first series.
    pub step_ms: i64,
    /// How far a row came behind the latest timestamp before it in the file (0 when the
    /// file is sorted by time; always 0 for a dataset in memory).
    pub lateness_ms: i64,
    /// Metric rows.
    pub rows: u64,
    metrics: BTreeMap<String, MetricFacts>,
}

impl Survey {
    /// The survey of a dataset in memory.
    pub fn of(ds: &Dataset) -> Survey {
        let mut first_seen: HashMap<HostId, TimestampMs> = HashMap::new();
        let mut last_seen: HashMap<HostId, TimestampMs> = HashMap::new();
        let mut metrics: BTreeMap<String, MetricFacts> = BTreeMap::new();
        for s in &ds.metrics {
            if let (Some(&t), Some(&u)) = (s.timestamps.iter().min(), s.timestamps.iter().max()) {
                let e = first_seen.entry(s.key.host.clone()).or_insert(t);
                *e = (*e).min(t);
                let e = last_seen.entry(s.key.host.clone()).or_insert(u);
                *e = (*e).max(u);
            }
            if !s.values.iter().any(|v| v.is_finite()) {
                continue;
            }
            let f = metrics.entry(s.key.metric.to_string()).or_insert(MetricFacts { bounded: true, season: Vec::new() });
            f.bounded = f.bounded && s.values.iter().filter(|v| v.is_finite()).all(|v| (0.0..=1.0).contains(v));
            if f.season.len() < SEASON_SERIES {
                f.season.push(s.clone());
            }
        }
        Survey {
            span: data_span(ds),
            first_seen,
            last_seen,
            step_ms: step_from(ds.meta.as_ref(), ds.metrics.iter()),
            lateness_ms: 0,
            rows: ds.metric_rows() as u64,
            metrics,
        }
    }

    /// The survey of the rows of `stream`, read to its end (`meta`: the dataset's
    /// `dataset.json`). `progress` is told the rows read after every part.
    ///
    /// # Errors
    /// What reading the stream fails with.
    pub fn scan(meta: Option<&DatasetMeta>, stream: &mut MetricStream, mut progress: impl FnMut(u64)) -> Result<Survey, DatasetError> {
        let mut b = Builder::default();
        let mut batch: Vec<MetricRow> = Vec::new();
        while stream.next_batch(&mut batch)? {
            b.add(stream.keys(), &batch);
            progress(stream.rows_read());
        }
        Ok(b.finish(meta, stream.keys(), stream.lateness_ms(), stream.rows_read()))
    }

    /// The feature schema over these metrics with `scales` (seasons are looked for only
    /// at the reference scales, as [`crate::runner::schema_with`] does).
    pub fn schema(&self, scales: TimeScales) -> FeatureSchema {
        let by = self.metrics.iter().map(|(name, f)| (name.as_str(), (f.bounded, f.season.iter().collect()))).collect();
        schema_from(by, scales)
    }
}

/// One series met in a stream.
struct SeriesState {
    metric: usize,
    min_ts: TimestampMs,
    max_ts: TimestampMs,
    has_value: bool,
    /// Its samples, while it is among the series read whole.
    samples: Option<(Vec<i64>, Vec<f64>)>,
}

/// Gathers a [`Survey`] from rows in any order.
///
/// The series read whole are chosen as they first appear: a series joins the step set
/// when it is among the 64 smallest keys met so far (leaving it, for good, when 64
/// smaller ones have come), and a metric's season set when fewer than 8 series of that
/// metric with a value have smaller keys (leaving it when 8 have). A series left out
/// could only qualify again if smaller keys disappeared, which they do not, so the sets
/// end as the first series by key, each read from its first row.
#[derive(Default)]
struct Builder {
    series: Vec<SeriesState>,
    metric_names: Vec<String>,
    metric_index: HashMap<String, usize>,
    /// Per metric: all values in [0, 1], any value at all.
    facts: Vec<(bool, bool)>,
    step_set: BTreeSet<(SeriesKey, u32)>,
    season_sets: Vec<BTreeSet<(SeriesKey, u32)>>,
    span: Option<(TimestampMs, TimestampMs)>,
}

impl Builder {
    fn add(&mut self, keys: &[SeriesKey], rows: &[MetricRow]) {
        while self.series.len() < keys.len() {
            self.meet(keys, self.series.len() as u32);
        }
        for r in rows {
            let Some(st) = self.series.get_mut(r.series as usize) else { continue };
            st.min_ts = st.min_ts.min(r.ts);
            st.max_ts = st.max_ts.max(r.ts);
            self.span = Some(self.span.map_or((r.ts, r.ts), |(a, b)| (a.min(r.ts), b.max(r.ts))));
            if let Some((ts, vs)) = &mut st.samples {
                ts.push(r.ts);
                vs.push(r.value);
            }
            if r.value.is_finite() {
                let f = &mut self.facts[st.metric];
                f.0 = f.0 && (0.0..=1.0).contains(&r.value);
                f.1 = true;
                if !st.has_value {
                    st.has_value = true;
                    let m = st.metric;
                    self.prune_season(m);
                }
            }
        }
    }

    /// A series met for the first time.
    fn meet(&mut self, keys: &[SeriesKey], id: u32) {
        let key = &keys[id as usize];
        let m = match self.metric_index.get(key.metric.as_str()) {
            Some(&m) => m,
            None => {
                self.metric_names.push(key.metric.to_string());
                self.facts.push((true, false));
                self.season_sets.push(BTreeSet::new());
                self.metric_index.insert(key.metric.to_string(), self.metric_names.len() - 1);
                self.metric_names.len() - 1
            }
        };
        self.series.push(SeriesState {
            metric: m,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            has_value: false,
            samples: Some((Vec::new(), Vec::new())),
        });
        let entry = (key.clone(), id);
        let in_step = self.step_set.len() < STEP_SERIES || self.step_set.last().is_some_and(|last| entry < *last);
        if in_step {
            self.step_set.insert(entry.clone());
            if self.step_set.len() > STEP_SERIES
                && let Some(out) = self.step_set.pop_last()
            {
                self.drop_unless_kept(out.1);
            }
        }
        let smaller_with_value = self.season_sets[m].range(..&entry).filter(|(_, s)| self.series[*s as usize].has_value).count();
        if smaller_with_value < SEASON_SERIES {
            self.season_sets[m].insert(entry);
        }
        self.drop_unless_kept(id);
    }

    /// Leaves out of metric `m`'s season set every series with 8 smaller ones that have a value.
    fn prune_season(&mut self, m: usize) {
        let mut with_value = 0;
        let mut out: Vec<(SeriesKey, u32)> = Vec::new();
        for e in &self.season_sets[m] {
            if with_value >= SEASON_SERIES {
                out.push(e.clone());
            } else if self.series[e.1 as usize].has_value {
                with_value += 1;
            }
        }
        for e in out {
            self.season_sets[m].remove(&e);
            self.drop_unless_kept(e.1);
        }
    }

    /// Stops holding a series' samples when it is in neither set.
    fn drop_unless_kept(&mut self, id: u32) {
        let Some(st) = self.series.get(id as usize) else { return };
        let m = st.metric;
        let kept = self.step_set.iter().any(|e| e.1 == id) || self.season_sets[m].iter().any(|e| e.1 == id);
        if !kept {
            self.series[id as usize].samples = None;
        }
    }

    fn finish(mut self, meta: Option<&DatasetMeta>, keys: &[SeriesKey], lateness_ms: i64, rows: u64) -> Survey {
        let mut whole = |id: u32| -> SeriesSamples {
            let mut s = SeriesSamples::new(keys[id as usize].clone());
            if let Some((mut ts, mut vs)) = self.series[id as usize].samples.take() {
                harbinger_dataset::read::normalize(&mut ts, &mut vs);
                (s.timestamps, s.values) = (ts, vs);
            }
            s
        };
        let mut kept: HashMap<u32, SeriesSamples> = HashMap::new();
        for e in self.step_set.iter().chain(self.season_sets.iter().flatten()) {
            kept.entry(e.1).or_insert_with(|| whole(e.1));
        }
        let step_series: Vec<&SeriesSamples> = self.step_set.iter().filter_map(|e| kept.get(&e.1)).collect();
        let step_ms = step_from(meta, step_series.into_iter());
        let mut metrics: BTreeMap<String, MetricFacts> = BTreeMap::new();
        for (m, name) in self.metric_names.iter().enumerate() {
            let (bounded, any) = self.facts[m];
            if !any {
                continue;
            }
            let season: Vec<SeriesSamples> = self.season_sets[m]
                .iter()
                .filter(|e| self.series[e.1 as usize].has_value)
                .take(SEASON_SERIES)
                .filter_map(|e| kept.get(&e.1).cloned())
                .collect();
            metrics.insert(name.clone(), MetricFacts { bounded, season });
        }
        let mut first_seen: HashMap<HostId, TimestampMs> = HashMap::new();
        let mut last_seen: HashMap<HostId, TimestampMs> = HashMap::new();
        for (st, key) in self.series.iter().zip(keys) {
            if st.min_ts < i64::MAX {
                let e = first_seen.entry(key.host.clone()).or_insert(st.min_ts);
                *e = (*e).min(st.min_ts);
                let e = last_seen.entry(key.host.clone()).or_insert(st.max_ts);
                *e = (*e).max(st.max_ts);
            }
        }
        Survey { span: self.span, first_seen, last_seen, step_ms, lateness_ms, rows, metrics }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbinger_dataset::synth::{SynthParams, generate};
    use harbinger_dataset::{LoadOptions, MetricsFormat, read_dataset, read_inventory, write_dataset};

    #[test]
    fn a_scan_of_the_file_equals_the_survey_of_the_loaded_dataset() {
        let mut ds = generate(&SynthParams { hosts: 70, days: 1.0, seed: 5, ..SynthParams::default() }).expect("params").dataset;
        // No step in dataset.json: the step is measured on the first 64 series.
        ds.meta = None;
        // A metric with no value on the first hosts: its season series come from later ones.
        for s in ds.metrics.iter_mut().filter(|s| s.key.metric.as_str() == "load1").take(5) {
            s.values.iter_mut().for_each(|v| *v = f64::NAN);
        }
        let dir = tempfile::tempdir().expect("tmp");
        write_dataset(&ds, dir.path(), MetricsFormat::Parquet).expect("write");
        let (loaded, _) = read_dataset(dir.path(), LoadOptions::default()).expect("read");
        let (inv, report) = read_inventory(dir.path()).expect("inventory");
        let hosts: Vec<HostId> = inv.hosts.iter().map(|h| h.host.clone()).collect();
        let mut stream = MetricStream::open(&report.metrics_file, &hosts, None, LoadOptions::default()).expect("open");
        let scanned = Survey::scan(None, &mut stream, |_| {}).expect("scan");
        let whole = Survey::of(&loaded);
        assert_eq!(scanned.span, whole.span);
        assert_eq!(scanned.first_seen, whole.first_seen);
        assert_eq!(scanned.last_seen, whole.last_seen);
        assert_eq!(scanned.step_ms, whole.step_ms);
        assert_eq!(scanned.step_ms, 60_000);
        assert_eq!(scanned.rows, whole.rows);
        assert_eq!(scanned.metrics.keys().collect::<Vec<_>>(), whole.metrics.keys().collect::<Vec<_>>());
        for (name, f) in &whole.metrics {
            let g = &scanned.metrics[name];
            assert_eq!(g.bounded, f.bounded, "{name}");
            let keys = |v: &[SeriesSamples]| v.iter().map(|s| s.key.clone()).collect::<Vec<_>>();
            assert_eq!(keys(&g.season), keys(&f.season), "{name}");
            assert_eq!(g.season.len(), SEASON_SERIES);
            for (a, b) in g.season.iter().zip(&f.season) {
                assert_eq!(a.timestamps, b.timestamps);
            }
        }
        let load1 = &scanned.metrics["load1"].season;
        assert!(load1.iter().all(|s| s.values.iter().any(|v| v.is_finite())), "series without a value are passed over");
        let scales = TimeScales::derive(scanned.step_ms, 6 * 3_600_000);
        assert_eq!(scanned.schema(scales), crate::runner::schema_with(&loaded, scales));
    }
}
