//! Drives the feature state of every host of a dataset in lock-step on a virtual clock.
//!
//! [`FleetRun::step`] advances every host to time `t` (feeding samples and events with
//! timestamps ≤ `t`, in parallel over hosts), writes each host's feature row, and fills
//! the fleet signal from all rows of that moment. `train` and `eval` both drive it; the
//! live scorer uses the same [`HostFeatures`] and fleet functions.

use std::borrow::Cow;
use std::collections::HashMap;

use harbinger_core::{Event, HostId, SeriesKey, SeriesSamples, TimestampMs};
use harbinger_dataset::{Dataset, MetricRow};
use rayon::prelude::*;

use crate::features::{FeatureSchema, FleetStats, HostFeatures, MetricSpec, fleet_fill, fleet_stats};

/// The metrics of a dataset as a schema: every metric name present, sorted; a metric is
/// bounded when all its values lie in [0, 1]; its season is found with augurs'
/// periodogram ([`season_of`]).
pub fn schema_of(ds: &Dataset) -> FeatureSchema {
    schema_with(ds, crate::features::TimeScales::reference())
}

/// The dataset's sampling step: `dataset.json`'s `step_ms`, else the median gap between
/// consecutive samples of a series (over up to 64 series), else a minute.
pub fn step_of(ds: &Dataset) -> i64 {
    step_from(ds.meta.as_ref(), ds.metrics.iter())
}

/// [`step_of`] from the metadata and the series in key order (only the first 64 are read).
pub(crate) fn step_from<'s>(meta: Option<&harbinger_dataset::DatasetMeta>, series: impl Iterator<Item = &'s SeriesSamples>) -> i64 {
    if let Some(s) = meta.and_then(|m| m.step_ms).filter(|&s| s > 0) {
        return s;
    }
    let mut gaps: Vec<i64> = series.take(64).flat_map(|s| s.timestamps.windows(2).map(|w| w[1] - w[0]).filter(|&g| g > 0)).collect();
    if gaps.is_empty() {
        return 60_000;
    }
    let mid = gaps.len() / 2;
    *gaps.select_nth_unstable(mid).1
}

/// [`schema_of`] with the given time scales (seasons are looked for in their buckets).
pub fn schema_with(ds: &Dataset, scales: crate::features::TimeScales) -> FeatureSchema {
    crate::survey::Survey::of(ds).schema(scales)
}

/// The schema from each metric's boundedness and its series in key order (only the
/// first 8 are read, for the season).
pub(crate) fn schema_from(
    by: std::collections::BTreeMap<&str, (bool, Vec<&SeriesSamples>)>,
    scales: crate::features::TimeScales,
) -> FeatureSchema {
    FeatureSchema {
        metrics: by
            .into_iter()
            .map(|(n, (b, series))| MetricSpec {
                name: n.to_string(),
                bounded: b,
                season_buckets: if scales.bucket_ms == SEASON_BUCKET_MS && scales.baseline_buckets == i64::from(DAY) {
                    season_of(&series)
                } else {
                    None
                },
            })
            .collect(),
        scales,
        detector: harbinger_detect::ValidParams::default(),
    }
}

/// 5-minute buckets.
const SEASON_BUCKET_MS: i64 = 300_000;
/// A day in buckets. Periods within 15 % of it are snapped to it: over a week of 5-minute
/// buckets the periodogram's frequency bins are a week apart, so a daily season lands on
/// 2016/8 = 252 as often as on 288.
const DAY: u32 = 288;

/// The season of a metric in 5-minute buckets: the periodogram (augurs) of up to eight
/// hosts' series, bucketed to 5-minute means with gaps filled by the last value; the
/// period most hosts agree on (snapped to a day when within 10 %), if a majority has one.
pub fn season_of(series: &[&SeriesSamples]) -> Option<u32> {
    use augurs::seasons::{Detector, PeriodogramDetector};
    let detector = PeriodogramDetector::builder().min_period(12).max_period(294).build();
    let sample: Vec<&&SeriesSamples> = series.iter().take(8).collect();
    let mut votes: std::collections::BTreeMap<u32, usize> = std::collections::BTreeMap::new();
    for s in &sample {
        let (Some(&t0), Some(&t1)) = (s.timestamps.first(), s.timestamps.last()) else { continue };
        let nb = usize::try_from((t1 - t0) / SEASON_BUCKET_MS + 1).unwrap_or(0);
        // At least three days, so a daily season shows at least three times.
        if nb < 3 * DAY as usize {
            continue;
        }
        let mut sum = vec![0.0; nb];
        let mut cnt = vec![0u32; nb];
        for (&t, &v) in s.timestamps.iter().zip(&s.values) {
            if v.is_finite() {
                let i = usize::try_from((t - t0) / SEASON_BUCKET_MS).unwrap_or(0).min(nb - 1);
                sum[i] += v;
                cnt[i] += 1;
            }
        }
        let mut y = Vec::with_capacity(nb);
        let mut last = f64::NAN;
        for i in 0..nb {
            if cnt[i] > 0 {
                last = sum[i] / f64::from(cnt[i]);
            }
            y.push(last);
        }
        let first = y.iter().copied().find(|v| v.is_finite()).unwrap_or(0.0);
        for v in &mut y {
            if !v.is_finite() {
                *v = first;
            }
        }
        let Some(&p) = detector.detect(&y).first() else { continue };
        let p = if p.abs_diff(DAY) * 100 <= DAY * 15 { DAY } else { p };
        // The periodogram always names its strongest peak, even in noise: keep the period
        // only when the series really repeats at that lag.
        if autocorrelation(&y, p as usize) >= 0.3 {
            *votes.entry(p).or_default() += 1;
        }
    }
    let (p, n) = votes.into_iter().max_by_key(|&(p, n)| (n, p))?;
    (2 * n > sample.len()).then_some(p)
}
/// Highest criticality of the resources on each host.
pub fn criticality(ds: &Dataset) -> HashMap<HostId, u8> {
    let mut c: HashMap<HostId, u8> = HashMap::new();
    for r in &ds.resources {
        let e = c.entry(r.host.clone()).or_insert(0);
        *e = (*e).max(r.criticality.min(3));
    }
    c
}

/// The host an event concerns: its `host`, else the host of its `resource`.
pub fn event_host<'a>(e: &'a Event, resource_host: &'a HashMap<String, HostId>) -> Option<&'a HostId> {
    e.host.as_ref().or_else(|| e.resource.as_ref().and_then(|r| resource_host.get(r)))
}

/// One series of a host: borrowed whole from a dataset, or filled as it is read
/// ([`FleetRun::feed`]) and emptied as it is consumed.
struct Feed<'a> {
    metric: usize,
    ts: Cow<'a, [i64]>,
    vs: Cow<'a, [f64]>,
    /// Next sample to give the features.
    cur: usize,
    /// Samples fed after `cur` are out of order or duplicated.
    unsorted: bool,
}

impl Feed<'_> {
    fn push(&mut self, t: TimestampMs, v: f64) {
        if self.ts.last().is_some_and(|&last| t <= last) {
            self.unsorted = true;
        }
        self.ts.to_mut().push(t);
        self.vs.to_mut().push(v);
    }

    /// Sorts and de-duplicates the samples not yet consumed, as loading a dataset does.
    fn settle(&mut self) {
        let (ts, vs) = (self.ts.to_mut(), self.vs.to_mut());
        let (mut t, mut v) = (ts.split_off(self.cur), vs.split_off(self.cur));
        harbinger_dataset::read::normalize(&mut t, &mut v);
        ts.append(&mut t);
        vs.append(&mut v);
        self.unsorted = false;
    }
}

struct HostRun<'a> {
    features: HostFeatures,
    series: Vec<Feed<'a>>,
    events: Vec<&'a Event>,
    next_event: usize,
}

impl HostRun<'_> {
    fn advance(&mut self, t: TimestampMs) {
        // Events first: a deploy at `t` is known at `t`.
        while let Some(e) = self.events.get(self.next_event) {
            if e.ts > t {
                break;
            }
            self.features.event(e);
            self.next_event += 1;
        }
        for f in &mut self.series {
            if f.unsorted {
                f.settle();
            }
            while f.cur < f.ts.len() && f.ts[f.cur] <= t {
                self.features.push(f.metric, f.ts[f.cur], f.vs[f.cur]);
                f.cur += 1;
            }
            // A series being read drops what it consumed once that is most of it: it
            // holds little more than the rows read ahead (a row group's share), not the
            // series (at 10,000 hosts, 2,048 samples kept per series were 2.6 GB).
            if let (Cow::Owned(ts), Cow::Owned(vs)) = (&mut f.ts, &mut f.vs)
                && f.cur >= 32
                && 2 * f.cur >= ts.len()
            {
                ts.drain(..f.cur);
                vs.drain(..f.cur);
                f.cur = 0;
            }
        }
    }
}

/// All hosts of a dataset on one virtual clock.
pub struct FleetRun<'a> {
    schema: &'a FeatureSchema,
    /// Host ids, in dataset order.
    pub hosts: Vec<HostId>,
    runs: Vec<HostRun<'a>>,
    tick: TimestampMs,
    /// Ticks computed per block.
    block: usize,
    /// Time of the block's first slot, and the slot of the current step.
    at: Option<(TimestampMs, usize)>,
    /// Rows by host, then slot: `[host][slot][feature]`.
    rows: Vec<f64>,
    /// Same layout without the features.
    present: Vec<bool>,
    /// Host numbers by id, and where each series number of a [`MetricStream`] is fed
    /// (host, series of the host), for runs fed as the data is read.
    ///
    /// [`MetricStream`]: harbinger_dataset::MetricStream
    index: HashMap<HostId, usize>,
    slots: Vec<Option<(u32, u32)>>,
    /// Where the fleet signal comes from, and the time of the first step.
    signal: FleetSignal<'a>,
    first: Option<TimestampMs>,
}

/// Where a run's fleet signal (each host's `z1h` against the fleet's at the same moment)
/// comes from.
enum FleetSignal<'a> {
    /// Every host of the run reporting at that moment.
    Own,
    /// The marked hosts of the run (by run host number); each step's statistics are kept
    /// so that runs over the fleet's other hosts can be given them.
    Reference { mask: Vec<bool>, kept: Vec<FleetStats> },
    /// Statistics kept by a reference run over the same steps, by step number.
    Given(&'a [FleetStats]),
}

/// The hosts of a dataset in the order a [`FleetRun`] numbers them: `hosts.csv`'s, then
/// hosts met only in the samples.
pub fn fleet_hosts(ds: &Dataset) -> Vec<HostId> {
    let mut seen: std::collections::HashSet<&HostId> = std::collections::HashSet::new();
    ds.hosts.iter().map(|h| &h.host).chain(ds.metrics.iter().map(|s| &s.key.host)).filter(|h| seen.insert(*h)).cloned().collect()
}

/// Ticks per block: about an hour of them, so each host's state stays in cache while it
/// is advanced through the block.
fn block_len(tick: TimestampMs) -> usize {
    usize::try_from(3_600_000 / tick.max(1)).unwrap_or(1).clamp(1, 64)
}

impl<'a> FleetRun<'a> {
    /// Prepares a run over `ds` with `schema` (metrics not in the schema are ignored),
    /// stepped every `tick` ms.
    pub fn new(ds: &'a Dataset, schema: &'a FeatureSchema, tick: TimestampMs) -> Self {
        Self::part(ds, schema, tick, |_| true)
    }

    /// A run over the hosts of `ds` that `keep` accepts ([`fleet_hosts`] order): a block
    /// of a fleet too large to hold at once. Its fleet signal comes from its own hosts
    /// unless [`FleetRun::reference`] or [`FleetRun::given`] says otherwise.
    pub fn part(ds: &'a Dataset, schema: &'a FeatureSchema, tick: TimestampMs, keep: impl Fn(&HostId) -> bool) -> Self {
        let hosts: Vec<HostId> = fleet_hosts(ds).into_iter().filter(|h| keep(h)).collect();
        let index: HashMap<&HostId, usize> = hosts.iter().enumerate().map(|(i, h)| (h, i)).collect();
        let mut runs: Vec<HostRun<'a>> = hosts
            .iter()
            .map(|_| HostRun { features: HostFeatures::new(schema), series: Vec::new(), events: Vec::new(), next_event: 0 })
            .collect();
        for s in &ds.metrics {
            if let (Some(m), Some(&h)) = (schema.metric_index(s.key.metric.as_str()), index.get(&s.key.host)) {
                let (ts, vs) = (Cow::Borrowed(&s.timestamps[..]), Cow::Borrowed(&s.values[..]));
                runs[h].series.push(Feed { metric: m, ts, vs, cur: 0, unsorted: false });
            }
        }
        let resource_host: HashMap<String, HostId> = ds.resources.iter().map(|r| (r.id.clone(), r.host.clone())).collect();
        for e in &ds.events {
            if let Some(h) = event_host(e, &resource_host).and_then(|h| index.get(h)) {
                runs[*h].events.push(e);
            }
        }
        let tick = tick.max(1);
        let block = block_len(tick);
        let k = schema.len();
        let n = hosts.len();
        let index = index.into_iter().map(|(h, i)| (h.clone(), i)).collect();
        let (rows, present) = (vec![0.0; n * block * k], vec![false; n * block]);
        FleetRun {
            schema,
            hosts,
            runs,
            tick,
            block,
            at: None,
            rows,
            present,
            index,
            slots: Vec::new(),
            signal: FleetSignal::Own,
            first: None,
        }
    }

    /// Takes the fleet signal from the hosts `mask` marks (by run host number) and keeps
    /// each step's statistics ([`FleetRun::take_signal`]).
    pub fn reference(&mut self, mask: Vec<bool>) {
        self.signal = FleetSignal::Reference { mask, kept: Vec::new() };
    }

    /// Takes the fleet signal of each step from `stats`, kept by a reference run stepped
    /// from the same first time with the same tick.
    pub fn given(&mut self, stats: &'a [FleetStats]) {
        self.signal = FleetSignal::Given(stats);
    }

    /// The statistics a reference run kept, by step number (empty for other runs).
    pub fn take_signal(&mut self) -> Vec<FleetStats> {
        match &mut self.signal {
            FleetSignal::Reference { kept, .. } => std::mem::take(kept),
            _ => Vec::new(),
        }
    }

    /// Adds rows read from a [`MetricStream`] (whose series numbers `keys` names) to the
    /// hosts' series: for a run made from a dataset without its samples (see
    /// [`harbinger_dataset::read_inventory`]) and fed as the file is read. Rows of
    /// metrics outside the schema or hosts outside the run are passed over. Rows may come
    /// in any order as long as every row at or before a time the run has stepped to came
    /// before that step.
    ///
    /// [`MetricStream`]: harbinger_dataset::MetricStream
    pub fn feed(&mut self, keys: &[SeriesKey], rows: &[MetricRow]) {
        while self.slots.len() < keys.len() {
            let key = &keys[self.slots.len()];
            let slot = match (self.schema.metric_index(key.metric.as_str()), self.index.get(&key.host)) {
                (Some(m), Some(&h)) => {
                    let run = &mut self.runs[h];
                    let feed = Feed { metric: m, ts: Cow::Owned(Vec::new()), vs: Cow::Owned(Vec::new()), cur: 0, unsorted: false };
                    run.series.push(feed);
                    Some((h as u32, (run.series.len() - 1) as u32))
                }
                _ => None,
            };
            self.slots.push(slot);
        }
        for r in rows {
            if let Some(Some((h, j))) = self.slots.get(r.series as usize) {
                self.runs[*h as usize].series[*j as usize].push(r.ts, r.value);
            }
        }
    }

    /// The last time the data must be read up to before [`FleetRun::step`] to `t`: the
    /// block of ticks it computes, or `None` when that step is already computed.
    pub fn block_end(&self, t: TimestampMs) -> Option<TimestampMs> {
        if let Some((t0, slot)) = self.at
            && slot + 1 < self.block
            && t == t0 + (slot as i64 + 1) * self.tick
        {
            return None;
        }
        Some(t + (self.block as i64 - 1) * self.tick)
    }

    /// Moves to time `t`: the previous step's time plus the tick (or any time at the first
    /// step). Rows are computed a block of ticks ahead, host by host (each host's state
    /// advanced only to the slot being written, so a row never sees a later sample), then
    /// the fleet signal of each slot from all hosts' rows at that slot.
    pub fn step(&mut self, t: TimestampMs) {
        if let Some((t0, slot)) = self.at {
            if slot + 1 < self.block && t == t0 + (slot as i64 + 1) * self.tick {
                self.at = Some((t0, slot + 1));
                return;
            }
            debug_assert!(t > t0 + (self.block as i64 - 1) * self.tick, "steps go forward by the tick");
        }
        self.compute_block(t);
        self.at = Some((t, 0));
    }

    fn compute_block(&mut self, t0: TimestampMs) {
        let (k, b, tick, schema) = (self.schema.len(), self.block, self.tick, self.schema);
        self.runs.par_iter_mut().zip(self.rows.par_chunks_mut(b * k)).zip(self.present.par_chunks_mut(b)).for_each(
            |((run, rows), present)| {
                for (slot, (row, p)) in rows.chunks_mut(k).zip(present.iter_mut()).enumerate() {
                    let t = t0 + slot as i64 * tick;
                    run.advance(t);
                    *p = run.features.has_data(t);
                    if *p {
                        run.features.write(schema, t, row);
                    } else {
                        row.fill(f64::NAN);
                    }
                }
            },
        );
        let first = *self.first.get_or_insert(t0);
        let n0 = usize::try_from((t0 - first) / tick).unwrap_or(0);
        let (rows, present) = (&self.rows, &self.present);
        let stats: Vec<FleetStats> = match &self.signal {
            FleetSignal::Given(all) => (n0..n0 + b).map(|n| all.get(n).cloned().unwrap_or_default()).collect(),
            FleetSignal::Own | FleetSignal::Reference { .. } => {
                let mask = match &self.signal {
                    FleetSignal::Reference { mask, .. } => Some(mask),
                    _ => None,
                };
                (0..b)
                    .into_par_iter()
                    .map(|slot| {
                        let at = move |i: usize| &rows[(i * b + slot) * k..(i * b + slot + 1) * k];
                        let counted = move |&i: &usize| present[i * b + slot] && mask.is_none_or(|m| m[i]);
                        fleet_stats(schema, (0..present.len() / b).filter(counted).map(at))
                    })
                    .collect()
            }
        };
        if let FleetSignal::Reference { kept, .. } = &mut self.signal {
            kept.resize(n0, FleetStats::default());
            kept.extend(stats.iter().cloned());
        }
        self.rows.par_chunks_mut(b * k).zip(self.present.par_chunks(b)).for_each(|(rows, present)| {
            for ((row, p), st) in rows.chunks_mut(k).zip(present).zip(&stats) {
                if *p {
                    fleet_fill(schema, st, row);
                }
            }
        });
    }

    /// Bytes the run holds per host, counted: the largest host's feature state and
    /// unconsumed samples, and a host's share of the block's rows.
    pub fn bytes_per_host(&self) -> usize {
        let largest = self
            .runs
            .iter()
            .map(|r| r.features.state_bytes() + r.series.iter().map(|f| f.ts.len() * 16).sum::<usize>() + r.events.capacity() * 8)
            .max()
            .unwrap_or(0);
        largest + std::mem::size_of::<HostRun<'_>>() + self.block * (self.schema.len() * 8 + 1)
    }

    /// Host `i`'s feature row at the current step, or `None` when it had no fresh data.
    pub fn row(&self, i: usize) -> Option<&[f64]> {
        let k = self.schema.len();
        let slot = self.at.map_or(0, |a| a.1);
        let j = i * self.block + slot;
        self.present.get(j).copied().unwrap_or(false).then(|| &self.rows[j * k..(j + 1) * k])
    }
}

/// First and last sample time of a dataset (ignoring NaN rows).
pub fn data_span(ds: &Dataset) -> Option<(TimestampMs, TimestampMs)> {
    let mut lo = i64::MAX;
    let mut hi = i64::MIN;
    for s in &ds.metrics {
        if let (Some(a), Some(b)) = (s.timestamps.first(), s.timestamps.last()) {
            lo = lo.min(*a);
            hi = hi.max(*b);
        }
    }
    (lo <= hi).then_some((lo, hi))
}

fn autocorrelation(y: &[f64], lag: usize) -> f64 {
    if lag == 0 || lag >= y.len() {
        return 0.0;
    }
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let var: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if var <= 0.0 {
        return 0.0;
    }
    let cov: f64 = y.iter().zip(&y[lag..]).map(|(a, b)| (a - mean) * (b - mean)).sum();
    cov / var
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbinger_core::SeriesKey;

    fn series(f: impl Fn(f64) -> f64) -> SeriesSamples {
        let mut s = SeriesSamples::new(SeriesKey::new("h", "m"));
        for i in 0..7 * 1440 {
            s.push(i64::from(i) * 60_000, f(f64::from(i)));
        }
        s
    }

    #[test]
    fn rows_computed_in_blocks_equal_rows_computed_tick_by_tick() {
        use harbinger_dataset::synth::{SynthParams, generate};
        let ds = generate(&SynthParams { hosts: 6, days: 2.0, seed: 4, ..SynthParams::default() }).expect("params").dataset;
        let schema = schema_of(&ds);
        let (start, end) = data_span(&ds).expect("data");
        let tick = 5 * 60_000;
        let mut blocked = FleetRun::new(&ds, &schema, tick);
        assert_eq!(blocked.block, 12);
        let mut single = FleetRun::new(&ds, &schema, tick);
        single.block = 1;
        single.rows.truncate(single.hosts.len() * schema.len());
        single.present.truncate(single.hosts.len());
        let (mut t, mut rows) = (start + tick, 0);
        while t <= end {
            blocked.step(t);
            single.step(t);
            for i in 0..blocked.hosts.len() {
                let (a, b) = (blocked.row(i), single.row(i));
                assert_eq!(a.is_some(), b.is_some(), "host {i} at {t}");
                if let (Some(a), Some(b)) = (a, b) {
                    rows += 1;
                    for (j, (x, y)) in a.iter().zip(b).enumerate() {
                        assert!(x == y || (x.is_nan() && y.is_nan()), "host {i} at {t}, feature {j}: {x} vs {y}");
                    }
                }
            }
            t += tick;
        }
        assert!(rows > 6 * 400, "{rows} rows compared");
    }

    #[test]
    fn a_daily_cycle_is_found_and_noise_has_no_season() {
        let daily = series(|i| 0.5 + 0.3 * (i / 1440.0 * std::f64::consts::TAU).sin() + 0.01 * ((i * 7.3).sin()));
        assert_eq!(season_of(&[&daily, &daily, &daily]), Some(DAY));
        // Seeded white noise: no season.
        use rand::{Rng, SeedableRng};
        let rng = std::cell::RefCell::new(rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let noise = series(|_| rng.borrow_mut().random::<f64>());
        assert_eq!(season_of(&[&noise, &noise, &noise]), None);
        // Too short to tell.
        let mut short = series(|i| i);
        short.timestamps.truncate(1440);
        short.values.truncate(1440);
        assert_eq!(season_of(&[&short]), None);
    }
}
