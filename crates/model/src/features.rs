//! Features: one incremental code path for batch (train, eval) and live (serve).
//!
//! A [`HostFeatures`] state takes a host's samples and events in time order and, at
//! any moment `now`, writes the feature vector described by a [`FeatureSchema`]. It
//! only ever sees data up to `now` (samples pushed later than `now` are not pushed
//! yet by the drivers), so features cannot look ahead.
//!
//! Per metric (names `{metric}.{feature}`), from rolling windows of 15 min, 1 h and
//! 6 h, a 25 h ring of 5-minute buckets (the baseline) and a streaming detector:
//! - `level`: mean of the last 15 min;
//! - `z15`, `z1h`: 15 min / 1 h mean against the 24 h baseline (in baseline sd);
//! - `seas`: seasonal residual. For a metric with a season (found at training with
//!   augurs' periodogram, see [`crate::runner::schema_of`]) an MSTL decomposition
//!   (augurs) of the host's last two seasons gives a seasonal profile, refitted once a
//!   season ([`Season`]); the residual is the 15 min mean less its seasonal part,
//!   against the deseasonalised 24 h baseline (in its sd). Until the profile exists,
//!   and for metrics without a season, the 15 min mean against the same 15 minutes a
//!   season (or a day) ago;
//! - `slope1h`, `slope6h`: least-squares trend (baseline sd per hour);
//! - `vol`: sd of the last hour over the baseline sd (flapping, noise);
//! - `max1h`: the last hour's maximum against the baseline;
//! - `pos24`: quantile rank of the 15 min mean among the last 24 h of 5-min means;
//! - `tte_inv`: for bounded metrics (values in [0, 1]), 1 / (1 + hours to exhaustion)
//!   from the steeper of the 1 h and 6 h trends, each taken at its lower bound
//!   (slope − one standard error), so a noisy trend does not raise it;
//! - `anomaly`: the streaming detector's score, held with a 10 min half-life.
//!
//! The deviations (`z15`, `z1h`, `seas`, both slopes, `max1h`) are passed through
//! `asinh`: sign and small values kept, extremes compressed.
//!
//! Per host: `host.z_max`, `host.anomaly_max`, `host.tte_inv_max`, `host.fleet_z_max`
//! (how far the host deviates from its own baseline compared with the rest of the fleet
//! at the same moment, a robust z over hosts, filled in by [`fleet_fill`]),
//! `deploy.since_h`, `deploy.changes`, `deploy.bad_rate`, `deploy.in_progress`, `maint`,
//! `coverage`, and the metric-agnostic `host.z1h_up`, `host.slope1h_up`, `host.max1h_up`
//! (the largest upward deviation, trend and peak over all metrics) and `host.deviating`
//! (how many metrics are more than 3 SDs above their baseline over the last hour).
//!
//! Missing inputs are NaN here; the model imputes them and reports lower confidence.

use std::collections::{BTreeMap, HashMap, VecDeque};

use harbinger_core::{Event, EventKind, TimestampMs};
use harbinger_detect::{DefaultDetector, StreamingDetector, ValidParams};
use serde::{Deserialize, Serialize};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
/// Today's (reference) bucket: 5 minutes.
const BUCKET: i64 = 5 * MIN;
const DAY_BUCKETS: i64 = 288;
/// A metric without a sample for this long is treated as absent (reference scales; a
/// model's own limit is [`TimeScales::stale_ms`]).
pub const STALE_MS: i64 = 10 * MIN;
/// Samples a metric needs before its features are computed (reference).
const WARM_SAMPLES: u64 = 60;
/// History (since start or a reset) a metric needs before it counts as warm for coverage (reference).
const WARM_MS: i64 = 6 * HOUR;
/// Cap on hours-since and hours-to-exhaustion (in [`TimeScales::hour_ms`] units).
const CAP_H: f64 = 72.0;
/// Closest spacing of the samples the rolling windows keep (reference): of samples closer than this,
/// the first goes into the windows and the others only into the baseline buckets and the
/// detector. Bounds a window at span / step samples whatever a sender stamps (samples a
/// millisecond apart would otherwise fill the 6 h window with millions of them per
/// series); series at this step or coarser (a 5 s scrape, every dataset) are unchanged.
const WINDOW_STEP_MS: i64 = 5_000;
/// The reference horizon the reference scales were made for.
const REF_HORIZON_MS: i64 = 6 * HOUR;

/// Every time scale the features use: windows, buckets, staleness, warm-up, the units
/// slopes and times are expressed in. One value, recorded in the model's schema, so a
/// model scores data at the cadence it was trained on.
///
/// [`TimeScales::derive`] makes them from the data's sampling step and the horizon: the
/// reference scales (5-minute buckets, 15 min / 1 h / 6 h windows, 24 h baseline, 10 min
/// staleness, 6 h warm-up) are stretched by `unit / 1 min` where the unit is the longer
/// of a minute and horizon / 360, and each window holds at least a few samples. For a
/// step up to 5 minutes and a horizon up to 6 h they are exactly [`TimeScales::reference`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeScales {
    /// Sampling step of the data they were derived from (informational), ms.
    pub step_ms: i64,
    /// The time unit (reference: a minute) the other scales are multiples of, ms.
    pub unit_ms: i64,
    /// Baseline bucket, ms (reference 5 min).
    pub bucket_ms: i64,
    /// Buckets in the baseline (reference 288: 24 h).
    pub baseline_buckets: i64,
    /// Short window (`level`, `z15`), ms (reference 15 min).
    pub short_ms: i64,
    /// Middle window (`z1h`, `slope1h`, `vol`, `max1h`), ms (reference 1 h).
    pub mid_ms: i64,
    /// Long window (`slope6h`), ms (reference 6 h).
    pub long_ms: i64,
    /// A metric without a sample for this long is absent, ms (reference 10 min).
    pub stale_ms: i64,
    /// Samples a metric needs before its features are computed (reference 60).
    pub warm_samples: u64,
    /// Samples the baseline needs (reference 30).
    pub baseline_min_samples: u32,
    /// History a metric needs before it counts as warm, ms (reference 6 h).
    pub warm_ms: i64,
    /// Closest spacing of window samples, ms (reference 5 s).
    pub window_step_ms: i64,
    /// The unit of slopes, times since and to exhaustion, ms (reference 1 h).
    pub hour_ms: i64,
    /// The warning window evaluation scores alerts in, ms (reference 6 h, the contract's).
    pub warning_ms: i64,
}

impl Default for TimeScales {
    fn default() -> Self {
        TimeScales::reference()
    }
}

impl TimeScales {
    /// Today's scales, for minute-level data and a horizon up to 6 h (and models saved
    /// before the scales were recorded).
    pub const fn reference() -> Self {
        TimeScales {
            step_ms: MIN,
            unit_ms: MIN,
            bucket_ms: BUCKET,
            baseline_buckets: DAY_BUCKETS,
            short_ms: 15 * MIN,
            mid_ms: HOUR,
            long_ms: 6 * HOUR,
            stale_ms: STALE_MS,
            warm_samples: WARM_SAMPLES,
            baseline_min_samples: 30,
            warm_ms: WARM_MS,
            window_step_ms: WINDOW_STEP_MS,
            hour_ms: HOUR,
            warning_ms: REF_HORIZON_MS,
        }
    }

    /// The scales for data sampled every `step_ms` and a model of horizon `horizon_ms`
    /// (both clamped to at least 1 ms). Pure.
    pub fn derive(step_ms: i64, horizon_ms: i64) -> Self {
        let step = step_ms.max(1);
        let horizon = horizon_ms.max(1);
        let unit = MIN.max(horizon / (REF_HORIZON_MS / MIN));
        let bucket = (5 * unit).max(step);
        let short = (15 * unit).max(step);
        let mid = (60 * unit).max(6 * step);
        let long = (360 * unit).max(2 * mid);
        let baseline = (1440 * unit).max(12 * bucket);
        let baseline_buckets = (baseline / bucket).clamp(12, DAY_BUCKETS);
        let warm_ms = 360 * unit;
        // Samples: the reference counts, but never more than the warm-up or the baseline holds.
        let warm_samples = (WARM_SAMPLES as i64).min((warm_ms / step).max(3)) as u64;
        let baseline_samples = baseline_buckets * bucket / step;
        let baseline_min_samples = 30_i64.min((baseline_samples / 4).max(5)) as u32;
        TimeScales {
            step_ms: step,
            unit_ms: unit,
            bucket_ms: bucket,
            baseline_buckets,
            short_ms: short,
            mid_ms: mid,
            long_ms: long,
            stale_ms: (10 * unit).max(2 * step),
            warm_samples,
            baseline_min_samples,
            warm_ms,
            window_step_ms: WINDOW_STEP_MS * unit / MIN,
            hour_ms: 60 * unit,
            warning_ms: REF_HORIZON_MS.max(horizon),
        }
    }

    /// Whether these are [`TimeScales::reference`] up to the informational step.
    pub fn is_reference(&self) -> bool {
        TimeScales { step_ms: MIN, ..*self } == TimeScales::reference()
    }

    /// Checks the scales a loaded model carries (positive, windows ordered).
    ///
    /// # Errors
    /// A description of the first bad value.
    pub fn validate(&self) -> Result<(), String> {
        let pos = [
            ("step_ms", self.step_ms),
            ("unit_ms", self.unit_ms),
            ("bucket_ms", self.bucket_ms),
            ("short_ms", self.short_ms),
            ("mid_ms", self.mid_ms),
            ("long_ms", self.long_ms),
            ("stale_ms", self.stale_ms),
            ("window_step_ms", self.window_step_ms),
            ("hour_ms", self.hour_ms),
            ("warning_ms", self.warning_ms),
        ];
        if let Some((n, v)) = pos.iter().find(|(_, v)| *v <= 0) {
            return Err(format!("time scale {n} = {v} must be positive"));
        }
        if !(12..=DAY_BUCKETS).contains(&self.baseline_buckets) {
            return Err(format!("time scale baseline_buckets = {} must be in 12..=288", self.baseline_buckets));
        }
        if self.warm_ms < 0 {
            return Err(format!("time scale warm_ms = {} must not be negative", self.warm_ms));
        }
        Ok(())
    }

    /// Ring slots: the baseline plus 12 buckets around "one season ago".
    fn ring(&self) -> usize {
        (self.baseline_buckets + 12) as usize
    }

    /// One line for the model card.
    pub fn describe(&self) -> String {
        let d = |ms: i64| humantime::format_duration(std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))).to_string();
        format!(
            "data step {}, buckets {} × {} (baseline {}), windows {} / {} / {}, stale after {}, warm after {} and {} samples, slopes per {}, warning window {}",
            d(self.step_ms),
            self.baseline_buckets,
            d(self.bucket_ms),
            d(self.baseline_buckets * self.bucket_ms),
            d(self.short_ms),
            d(self.mid_ms),
            d(self.long_ms),
            d(self.stale_ms),
            d(self.warm_ms),
            self.warm_samples,
            d(self.hour_ms),
            d(self.warning_ms)
        )
    }
}

/// Per-metric feature names, in order.
pub const METRIC_FEATURES: [&str; 11] =
    ["level", "z15", "z1h", "seas", "slope1h", "slope6h", "vol", "max1h", "pos24", "tte_inv", "anomaly"];
/// Host-level feature names, in order (after all per-metric blocks).
pub const HOST_FEATURES: [&str; 14] = [
    "host.z_max",
    "host.anomaly_max",
    "host.tte_inv_max",
    "host.fleet_z_max",
    "deploy.since_h",
    "deploy.changes",
    "deploy.bad_rate",
    "deploy.in_progress",
    "maint",
    "coverage",
    "host.z1h_up",
    "host.slope1h_up",
    "host.max1h_up",
    "host.deviating",
];
/// Position of `name` in `names`. Evaluated at compile time for the constants below: a
/// name missing from its list stops the build, and reordering a list moves its index with
/// it, so the code that fills the features cannot drift from their names.
const fn index_of(names: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        let (a, b) = (names[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("a feature index names a feature that is not in the layout")
}
/// Index of a per-metric feature in its block.
const fn metric_feature(name: &str) -> usize {
    index_of(&METRIC_FEATURES, name)
}
/// Index of a host feature in the host block.
const fn host_feature(name: &str) -> usize {
    index_of(&HOST_FEATURES, name)
}
const LEVEL: usize = metric_feature("level");
const Z15: usize = metric_feature("z15");
const Z1H: usize = metric_feature("z1h");
const SEAS: usize = metric_feature("seas");
const SLOPE1H: usize = metric_feature("slope1h");
const SLOPE6H: usize = metric_feature("slope6h");
const VOL: usize = metric_feature("vol");
const MAX1H: usize = metric_feature("max1h");
const POS24: usize = metric_feature("pos24");
const TTE: usize = metric_feature("tte_inv");
const ANOM: usize = metric_feature("anomaly");
const H_Z_MAX: usize = host_feature("host.z_max");
const H_ANOMALY_MAX: usize = host_feature("host.anomaly_max");
const H_TTE_MAX: usize = host_feature("host.tte_inv_max");
const H_DEPLOY_SINCE: usize = host_feature("deploy.since_h");
const H_DEPLOY_CHANGES: usize = host_feature("deploy.changes");
const H_DEPLOY_BAD_RATE: usize = host_feature("deploy.bad_rate");
const H_DEPLOY_IN_PROGRESS: usize = host_feature("deploy.in_progress");
const H_MAINT: usize = host_feature("maint");
const H_Z1H_UP: usize = host_feature("host.z1h_up");
const H_SLOPE1H_UP: usize = host_feature("host.slope1h_up");
const H_MAX1H_UP: usize = host_feature("host.max1h_up");
const H_DEVIATING: usize = host_feature("host.deviating");
/// `z1h` (after asinh) above which a metric counts in `host.deviating`: 3 baseline SDs.
const DEVIATING: f64 = 1.818_446_459_232_066_7;
/// Index of `host.fleet_z_max` within the host block.
const FLEET: usize = host_feature("host.fleet_z_max");
/// Index of `coverage` within the host block.
const COVERAGE: usize = host_feature("coverage");

/// One metric the model reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    /// Metric name as in the dataset / remote-write.
    pub name: String,
    /// Values live in [0, 1] (utilisation): time to exhaustion applies.
    pub bounded: bool,
    /// Season length in 5-minute buckets found at training (augurs periodogram, snapped to
    /// a day when close); `None`: no season, no seasonal residual.
    #[serde(default)]
    pub season_buckets: Option<u32>,
}

/// Which metrics a model reads; fixes the layout of the feature vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    /// The metrics, in feature-block order.
    pub metrics: Vec<MetricSpec>,
    /// The time scales of the features (absent in models saved before they were
    /// recorded: the reference scales).
    #[serde(default)]
    pub scales: TimeScales,
    /// The streaming detector's configuration behind the `anomaly` features (absent in
    /// models saved before it was recorded: the defaults, which those models were trained
    /// with). A model keeps scoring with the detector it was trained with, whatever the
    /// defaults become.
    #[serde(default)]
    pub detector: ValidParams,
}

impl FeatureSchema {
    /// Number of features.
    pub fn len(&self) -> usize {
        self.metrics.len() * METRIC_FEATURES.len() + HOST_FEATURES.len()
    }

    /// Whether the schema has no features (never: host features always exist).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Feature names in vector order.
    pub fn names(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(self.len());
        for m in &self.metrics {
            for f in METRIC_FEATURES {
                v.push(format!("{}.{f}", m.name));
            }
        }
        v.extend(HOST_FEATURES.iter().map(|s| (*s).to_string()));
        v
    }

    /// Index of the metric named `name`.
    pub fn metric_index(&self, name: &str) -> Option<usize> {
        self.metrics.iter().position(|m| m.name == name)
    }

    fn host_offset(&self) -> usize {
        self.metrics.len() * METRIC_FEATURES.len()
    }

    /// Index of the `host.anomaly_max` feature.
    pub fn anomaly_index(&self) -> usize {
        self.host_offset() + 1
    }

    /// Index of the `coverage` feature.
    pub fn coverage_index(&self) -> usize {
        self.host_offset() + COVERAGE
    }

    /// The `z1h` of metric `m` in a feature row (input of the fleet signal).
    pub fn z1h(&self, row: &[f64], m: usize) -> f64 {
        row[m * METRIC_FEATURES.len() + Z1H]
    }
}

/// Running sums over a time window, for mean, sd and least-squares slope.
#[derive(Debug, Clone, Default)]
struct Window {
    span: i64,
    /// The time unit of slopes (reference: an hour).
    hour: i64,
    buf: VecDeque<(i64, f64)>,
    anchor: i64,
    s0: f64,
    st: f64,
    stt: f64,
    sx: f64,
    sxx: f64,
    stx: f64,
    /// Built by [`Window::with_max`]: the samples that can still become the window's maximum (each
    /// larger than every later one), oldest first; the front is the maximum. Reading it
    /// touches one entry instead of the whole window, which matters when a tick visits
    /// thousands of hosts whose windows are no longer in cache.
    maxq: Option<VecDeque<(i64, f64)>>,
    /// `maxq`'s front value (NaN when empty), kept inline so reading it costs no load
    /// from the heap.
    max_v: f64,
    /// At most the time of `buf`'s front (`i64::MAX` once known empty): an eviction
    /// that has nothing to do returns without touching the buffer.
    front_t: i64,
}

impl Window {
    fn new(span: i64, hour: i64) -> Self {
        Window { span, hour: hour.max(1), max_v: f64::NAN, front_t: i64::MAX, ..Window::default() }
    }

    /// A window that also keeps its running maximum ([`Window::max`] in O(1)).
    fn with_max(span: i64, hour: i64) -> Self {
        Window { maxq: Some(VecDeque::new()), ..Window::new(span, hour) }
    }

    fn hours(&self, t: i64) -> f64 {
        (t - self.anchor) as f64 / self.hour as f64
    }

    fn add(&mut self, t: i64, x: f64, sign: f64) {
        let h = self.hours(t);
        self.s0 += sign;
        self.st += sign * h;
        self.stt += sign * h * h;
        self.sx += sign * x;
        self.sxx += sign * x * x;
        self.stx += sign * h * x;
    }

    fn reanchor(&mut self, t: i64) {
        self.anchor = t;
        self.s0 = 0.0;
        self.st = 0.0;
        self.stt = 0.0;
        self.sx = 0.0;
        self.sxx = 0.0;
        self.stx = 0.0;
        let buf = std::mem::take(&mut self.buf);
        for &(ti, xi) in &buf {
            self.add(ti, xi, 1.0);
        }
        self.buf = buf;
    }

    /// Samples come in increasing time order (the metric refuses the others).
    fn push(&mut self, t: i64, x: f64) {
        if let Some(q) = self.maxq.as_mut()
            && !x.is_nan()
        {
            while q.back().is_some_and(|&(_, v)| v <= x) {
                q.pop_back();
            }
            q.push_back((t, x));
            self.max_v = q.front().map_or(f64::NAN, |p| p.1);
        }
        if self.buf.is_empty() {
            self.front_t = t;
        }
        if self.buf.is_empty() || t - self.anchor > 12 * self.hour {
            // Keep the time origin near the data so the sums stay exact enough.
            self.buf.push_back((t, x));
            self.reanchor(t);
        } else {
            self.buf.push_back((t, x));
            self.add(t, x, 1.0);
        }
        self.evict(t);
    }

    fn evict(&mut self, now: i64) {
        if self.front_t > now - self.span {
            return;
        }
        let mut removed = false;
        while let Some(&(t, x)) = self.buf.front() {
            if t > now - self.span {
                break;
            }
            self.buf.pop_front();
            self.add(t, x, -1.0);
            removed = true;
        }
        if removed && let Some(q) = self.maxq.as_mut() {
            while q.front().is_some_and(|&(t, _)| t <= now - self.span) {
                q.pop_front();
            }
            self.max_v = q.front().map_or(f64::NAN, |p| p.1);
        }
        self.front_t = self.buf.front().map_or(i64::MAX, |p| p.0);
        if removed && self.buf.len() < 4 {
            let a = self.buf.front().map_or(now, |p| p.0);
            self.reanchor(a);
        }
    }

    fn n(&self) -> usize {
        self.buf.len()
    }

    fn mean(&self) -> f64 {
        if self.buf.is_empty() { f64::NAN } else { self.sx / self.s0 }
    }

    fn sd(&self) -> f64 {
        if self.buf.len() < 2 {
            return f64::NAN;
        }
        let m = self.sx / self.s0;
        (self.sxx / self.s0 - m * m).max(0.0).sqrt()
    }

    /// Slope per hour, with what its standard error is made of ([`Slope::se`]).
    fn slope(&self) -> Option<Slope> {
        let n = self.s0;
        if self.buf.len() < 5 {
            return None;
        }
        let tbar = self.st / n;
        let xbar = self.sx / n;
        let vt = self.stt / n - tbar * tbar;
        // Needs at least a fifth of the window covered in time.
        let span_h = self.span as f64 / self.hour as f64;
        if vt <= (span_h * 0.2).powi(2) / 12.0 {
            return None;
        }
        let cov = self.stx / n - tbar * xbar;
        let b = cov / vt;
        let vx = (self.sxx / n - xbar * xbar).max(0.0);
        let resid = (vx - b * cov).max(0.0);
        Some(Slope { b, resid, vt, n })
    }

    fn max(&self) -> f64 {
        if self.maxq.is_some() {
            return self.max_v;
        }
        // Four running maxima: one chain of `max` over the window is latency-bound.
        let mut m = [f64::NAN; 4];
        let (a, b) = self.buf.as_slices();
        for s in [a, b] {
            let mut chunks = s.chunks_exact(4);
            for c in &mut chunks {
                for (mi, p) in m.iter_mut().zip(c) {
                    *mi = mi.max(p.1);
                }
            }
            for (mi, p) in m.iter_mut().zip(chunks.remainder()) {
                *mi = mi.max(p.1);
            }
        }
        m[0].max(m[1]).max(m[2].max(m[3]))
    }

    fn clear(&mut self) {
        let maxq = self.maxq.take().map(|mut q| {
            q.clear();
            q
        });
        *self = Window { maxq, ..Window::new(self.span, self.hour) };
    }
}

/// A least-squares slope ([`Window::slope`]); its standard error is computed only where it
/// is read (the time to exhaustion of bounded metrics: a division and a square root saved
/// per window for the others).
#[derive(Debug, Clone, Copy)]
struct Slope {
    /// Per hour.
    b: f64,
    resid: f64,
    vt: f64,
    n: f64,
}

impl Slope {
    fn se(&self) -> f64 {
        (self.resid / (self.vt * (self.n - 2.0).max(1.0))).sqrt()
    }
}

/// Baseline statistics, cached per 5-minute bucket (they only change when the bucket
/// advances or a late sample lands in an older bucket).
#[derive(Debug, Clone, Default)]
struct Baseline {
    cur: i64,
    n: f64,
    sum: f64,
    sumsq: f64,
    yn: f64,
    ysum: f64,
    /// Sum and sum of squares of the samples less their seasonal part (MSTL profile).
    dsum: f64,
    dsumsq: f64,
    /// (bucket, mean) of the buckets in the window, oldest first.
    means: VecDeque<(i64, f64)>,
    /// The same means in ascending order (`pos24` is a search in it).
    sorted: Vec<f64>,
    /// Every `stride`-th entry of `sorted`, kept inline: a search first counts the pivots
    /// below the value, then searches one short run of `sorted`. A plain binary search over
    /// 288 means costs a cache miss per probe when a tick visits thousands of hosts.
    pivots: [f64; PIVOTS],
    stride: usize,
    /// Buckets advanced incrementally since the last full computation.
    age: i64,
}

/// Pivots kept per baseline (see [`Baseline::below`]).
const PIVOTS: usize = 16;

impl Baseline {
    /// Rebuilds the pivots after `sorted` changed.
    fn index(&mut self) {
        self.stride = self.sorted.len().div_ceil(PIVOTS).max(1);
        self.pivots = [f64::INFINITY; PIVOTS];
        for (p, v) in self.pivots.iter_mut().zip(self.sorted.iter().step_by(self.stride)) {
            *p = *v;
        }
    }

    /// How many of the sorted means are below `x` (`sorted.partition_point(|v| v < x)`).
    fn below(&self, x: f64) -> usize {
        // Pivots past the end are +inf, never below x.
        let j = self.pivots.iter().filter(|&&p| p < x).count();
        if j == 0 {
            return 0;
        }
        // sorted[(j-1)*stride] < x, and sorted[j*stride] (if any) is not.
        // The run is short (stride - 1 means): counting every one below x has no chain of
        // dependent loads as a binary search has, and the count is the same (sorted).
        let lo = (j - 1) * self.stride + 1;
        let hi = (j * self.stride).min(self.sorted.len());
        lo + self.sorted[lo..hi].iter().filter(|&&v| v < x).count()
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    idx: i64,
    n: u32,
    sum: f64,
    sumsq: f64,
}

/// A metric's seasonal profile, fitted with augurs' MSTL on the host's own history.
///
/// Fed the 5-minute bucket means of the metric's ring as each bucket closes; once two
/// seasons of buckets are held (gaps up to a quarter season filled with the last value, longer gaps start
/// over), MSTL decomposes them and the last season of its seasonal component becomes
/// the profile, indexed by the bucket's phase in the season. It is refitted once a
/// season. The `seas` feature reads the series less this profile.
#[derive(Debug, Clone)]
struct Season {
    /// Season length in buckets.
    period: i64,
    /// Closed bucket means (raw), oldest first; the last one is bucket `end - 1`.
    hist: VecDeque<f32>,
    end: i64,
    /// Seasonal component by phase (`bucket.rem_euclid(period)`); empty until fitted.
    profile: Vec<f64>,
    /// Bucket index (`end`) at the last fit.
    fitted_at: i64,
    /// Set by a refit until the metric state drops its cached baseline.
    refitted: bool,
}

impl Season {
    fn new(period: u32) -> Self {
        Season {
            period: i64::from(period),
            hist: VecDeque::new(),
            end: i64::MIN,
            profile: Vec::new(),
            fitted_at: i64::MIN,
            refitted: false,
        }
    }

    /// Buckets kept: two seasons (the least MSTL decomposes).
    fn capacity(&self) -> usize {
        (self.period * 2) as usize
    }

    /// The profile at bucket `idx` (0 before the first fit).
    fn at(&self, idx: i64) -> f64 {
        if self.profile.is_empty() { 0.0 } else { self.profile[idx.rem_euclid(self.period) as usize] }
    }

    /// Takes the mean of bucket `idx`, just closed (buckets in time order).
    fn close(&mut self, idx: i64, mean: f64) {
        let mean = mean as f32;
        let gap = idx.saturating_sub(self.end);
        if self.hist.is_empty() || gap > self.period / 4 || gap < 0 {
            self.hist.clear();
        } else if let Some(&last) = self.hist.back() {
            for _ in 0..gap {
                self.hist.push_back(last);
            }
        }
        self.hist.push_back(mean);
        self.end = idx + 1;
        while self.hist.len() > self.capacity() {
            self.hist.pop_front();
        }
        let due = self.profile.is_empty() || self.end.saturating_sub(self.fitted_at) >= self.period;
        if self.hist.len() >= self.capacity() && due {
            self.fit();
        }
    }

    fn fit(&mut self) {
        use augurs::Fit;
        let y: Vec<f64> = self.hist.iter().map(|&v| f64::from(v)).collect();
        let p = self.period as usize;
        // On an error (a constant series, say) the previous profile stays.
        if let Ok(m) = augurs::mstl::MSTLModel::naive(vec![p]).fit(&y)
            && let Some(s) = m.fit().seasonal().first()
            && s.len() >= p
            && s.iter().all(|v| v.is_finite())
        {
            let first = self.end - s.len() as i64;
            let mut profile = vec![0.0; p];
            for (j, &v) in s.iter().enumerate().skip(s.len() - p) {
                profile[(first + j as i64).rem_euclid(self.period) as usize] = f64::from(v);
            }
            self.refitted = true;
            self.profile = profile;
            self.fitted_at = self.end;
        }
    }

    /// After a recovery: the history starts over, the profile is kept.
    fn restart(&mut self) {
        self.hist.clear();
    }
}

/// State of one metric of one host.
#[derive(Debug, Clone)]
struct MetricState {
    w15: Window,
    w1h: Window,
    w6h: Window,
    ring: Vec<Bucket>,
    detector: DefaultDetector,
    anomaly: f64,
    anomaly_ts: i64,
    last_ts: Option<i64>,
    /// The newest sample the windows took (see [`TimeScales::window_step_ms`]).
    window_ts: Option<i64>,
    seen: u64,
    first_ts: Option<i64>,
    base: Option<Baseline>,
    season: Option<Box<Season>>,
    /// Buckets in the baseline ([`TimeScales::baseline_buckets`]).
    days: i64,
}

impl MetricState {
    fn new(spec: &MetricSpec, sc: &TimeScales, detector: &ValidParams) -> Self {
        MetricState {
            w15: Window::new(sc.short_ms, sc.hour_ms),
            w1h: Window::with_max(sc.mid_ms, sc.hour_ms),
            w6h: Window::new(sc.long_ms, sc.hour_ms),
            ring: vec![Bucket { idx: i64::MIN, ..Bucket::default() }; sc.ring()],
            detector: DefaultDetector::new(detector.clone()),
            anomaly: 0.0,
            anomaly_ts: 0,
            last_ts: None,
            window_ts: None,
            seen: 0,
            first_ts: None,
            base: None,
            season: spec.season_buckets.filter(|&p| (12..=2 * sc.baseline_buckets as u32).contains(&p)).map(|p| Box::new(Season::new(p))),
            days: sc.baseline_buckets,
        }
    }

    fn ring_len(&self) -> i64 {
        self.ring.len() as i64
    }

    fn push(&mut self, t: i64, x: f64, sc: &TimeScales) {
        if !x.is_finite() {
            return;
        }
        if self.last_ts.is_some_and(|l| t <= l) {
            return; // out of order or duplicate: already have this moment
        }
        let idx = t.div_euclid(sc.bucket_ms);
        let ring = self.ring_len();
        // A sample in a new bucket closes the last one: its mean goes to the season.
        if let (Some(s), Some(prev)) = (self.season.as_deref_mut(), self.last_ts.map(|l| l.div_euclid(sc.bucket_ms)))
            && prev != idx
        {
            let slot = &self.ring[prev.rem_euclid(ring) as usize];
            if slot.idx == prev && slot.n > 0 {
                s.close(prev, slot.sum / f64::from(slot.n));
                if std::mem::take(&mut s.refitted) {
                    self.base = None; // the deseasonalised sums follow the new profile
                }
            }
        }
        if self.window_ts.is_none_or(|w| t - w >= sc.window_step_ms) {
            self.w15.push(t, x);
            self.w1h.push(t, x);
            self.w6h.push(t, x);
            self.window_ts = Some(t);
        }
        let slot = &mut self.ring[idx.rem_euclid(ring) as usize];
        if slot.idx != idx {
            *slot = Bucket { idx, ..Bucket::default() };
        }
        slot.n += 1;
        slot.sum += x;
        slot.sumsq += x * x;
        if self.base.as_ref().is_some_and(|b| idx <= b.cur - 3) {
            self.base = None; // a late sample changed a bucket the cached baseline covers
        }
        let s = self.detector.update(t, x);
        let held = self.held_anomaly(t, sc);
        self.anomaly = held.max(s);
        self.anomaly_ts = t;
        self.last_ts = Some(t);
        self.seen += 1;
        self.first_ts.get_or_insert(t);
    }

    fn held_anomaly(&self, now: i64, sc: &TimeScales) -> f64 {
        if self.anomaly == 0.0 || now <= self.anomaly_ts {
            return self.anomaly;
        }
        let dt = (now - self.anomaly_ts) as f64 / (10 * sc.unit_ms) as f64;
        self.anomaly * 0.5_f64.powf(dt)
    }

    fn fresh(&self, now: i64, sc: &TimeScales) -> bool {
        self.last_ts.is_some_and(|l| now - l <= sc.stale_ms && l <= now)
    }

    /// Writes this metric's block; returns whether it was present.
    fn write(&mut self, now: i64, spec: &MetricSpec, out: &mut [f64], sc: &TimeScales) -> bool {
        let bounded = spec.bounded;
        out.fill(f64::NAN);
        if !self.fresh(now, sc) {
            return false;
        }
        self.w15.evict(now);
        self.w1h.evict(now);
        self.w6h.evict(now);
        // Baseline: the last 24 h of buckets, excluding the current 15 minutes.
        let cur = now.div_euclid(sc.bucket_ms);
        if self.base.as_ref().is_none_or(|b| b.cur != cur) {
            // One season back, or one day back (day-over-day change) without a season.
            let lag = spec.season_buckets.filter(|&p| (3..self.ring.len() as u32 - 3).contains(&p)).unwrap_or(self.days as u32);
            self.refresh_baseline(cur, i64::from(lag));
        }
        let Some(base) = self.base.as_ref() else { return false };
        let (n, sum, sumsq, yn, ysum) = (base.n, base.sum, base.sumsq, base.yn, base.ysum);
        let nm = base.sorted.len();
        let m15 = self.w15.mean();
        out[LEVEL] = m15;
        let warm = self.seen >= sc.warm_samples && n >= f64::from(sc.baseline_min_samples);
        // The 1 h and 6 h slopes, read by the slope features and the time to exhaustion.
        let slopes = if warm || bounded { [self.w1h.slope(), self.w6h.slope()] } else { [None, None] };
        if warm {
            let bmean = sum / n;
            let bsd = (sumsq / n - bmean * bmean).max(0.0).sqrt();
            let floor = 1e-3 * bmean.abs().max(1e-3) + 1e-6;
            let sd = bsd.max(floor);
            out[Z15] = (m15 - bmean) / sd;
            out[Z1H] = (self.w1h.mean() - bmean) / sd;
            match self.season.as_ref().filter(|s| !s.profile.is_empty()) {
                // The MSTL residual: the 15 min mean less its seasonal part, against the
                // deseasonalised baseline.
                Some(s) => {
                    let (dsum, dsumsq) = (base.dsum, base.dsumsq);
                    let dmean = dsum / n;
                    let dsd = (dsumsq / n - dmean * dmean).max(0.0).sqrt().max(floor);
                    let c = (s.at(cur - 2) + s.at(cur - 1) + s.at(cur)) / 3.0;
                    out[SEAS] = (m15 - c - dmean) / dsd;
                }
                None if yn > 0.0 => out[SEAS] = (m15 - ysum / yn) / sd,
                None => {}
            }
            if let Some(s) = slopes[0] {
                out[SLOPE1H] = s.b / sd;
            }
            if let Some(s) = slopes[1] {
                out[SLOPE6H] = s.b / sd;
            }
            let s1 = self.w1h.sd();
            if s1.is_finite() {
                out[VOL] = s1 / sd;
            }
            out[MAX1H] = (self.w1h.max() - bmean) / sd;
            // Deviations in baseline SDs span orders of magnitude (a quiet metric's SD can be
            // tiny): asinh keeps the sign and small values, and compresses the extremes so a
            // linear model is not ruled by them.
            for i in [Z15, Z1H, SEAS, SLOPE1H, SLOPE6H, MAX1H] {
                out[i] = asinh(out[i]);
            }
            if nm > 0 {
                let below = base.below(m15);
                out[POS24] = below as f64 / nm as f64;
            }
        }
        if bounded {
            let mut tte = CAP_H;
            for s in slopes.into_iter().flatten() {
                let lower = s.b - s.se();
                if lower > 0.0 {
                    let h = ((1.0 - m15).max(0.0) / lower).min(CAP_H);
                    tte = tte.min(h);
                }
            }
            out[TTE] = 1.0 / (1.0 + tte);
        }
        out[ANOM] = self.held_anomaly(now, sc);
        true
    }

    /// The ring's bucket `idx`, if it holds samples.
    fn slot(&self, idx: i64) -> Option<&Bucket> {
        let b = &self.ring[idx.rem_euclid(self.ring_len()) as usize];
        (b.idx == idx && b.n > 0).then_some(b)
    }

    /// Brings the cached baseline to bucket `cur`: bucket by bucket when it moved a few
    /// buckets forward (one bucket enters the window, one leaves), else from scratch; also
    /// from scratch once a day, so rounding in the running sums cannot build up.
    fn refresh_baseline(&mut self, cur: i64, lag: i64) {
        let mut b = match self.base.take() {
            // Slots of buckets leaving the window are reused 300 buckets on: stepping more
            // than 8 at once could find one already overwritten.
            Some(b) if b.cur < cur && cur - b.cur <= 8 && b.age < self.days => b,
            _ => {
                self.base = Some(self.baseline(cur, lag));
                return;
            }
        };
        for c in b.cur + 1..=cur {
            if let Some(k) = self.slot(c - 1 - self.days) {
                b.n -= f64::from(k.n);
                b.sum -= k.sum;
                b.sumsq -= k.sumsq;
                let (ds, dss) = self.deseasoned(c - 1 - self.days, k);
                b.dsum -= ds;
                b.dsumsq -= dss;
            }
            // The last mean leaving and the one entering change `sorted` in one move.
            let mut leaving = None;
            while let Some(&(i, v)) = b.means.front() {
                if i >= c - self.days {
                    break;
                }
                b.means.pop_front();
                if let Some(earlier) = leaving.replace(v) {
                    replace_sorted(&mut b.sorted, Some(earlier), None);
                }
            }
            let mut entering = None;
            if let Some(k) = self.slot(c - 3) {
                b.n += f64::from(k.n);
                b.sum += k.sum;
                b.sumsq += k.sumsq;
                let (ds, dss) = self.deseasoned(c - 3, k);
                b.dsum += ds;
                b.dsumsq += dss;
                let v = k.sum / f64::from(k.n);
                b.means.push_back((c - 3, v));
                entering = Some(v);
            }
            replace_sorted(&mut b.sorted, leaving, entering);
        }
        b.age += cur - b.cur;
        b.cur = cur;
        b.index();
        (b.yn, b.ysum) = self.seasonal(cur, lag);
        self.base = Some(b);
    }

    /// Sum and sum of squares of bucket `idx`'s samples less the seasonal profile there
    /// (`Σ(x − c)² = Σx² − 2cΣx + nc²`); the raw sums without a profile.
    fn deseasoned(&self, idx: i64, k: &Bucket) -> (f64, f64) {
        let c = self.season.as_ref().map_or(0.0, |s| s.at(idx));
        let n = f64::from(k.n);
        (k.sum - n * c, k.sumsq - 2.0 * c * k.sum + n * c * c)
    }

    /// Samples and their sum in the same 15 minutes one season (`lag` buckets) ago.
    fn seasonal(&self, cur: i64, lag: i64) -> (f64, f64) {
        (cur - lag - 2..=cur - lag).filter_map(|i| self.slot(i)).fold((0.0, 0.0), |(n, s), k| (n + f64::from(k.n), s + k.sum))
    }

    /// Baseline statistics for current bucket `cur`, from scratch: the last 24 h of
    /// buckets excluding the current 15 minutes, and the same 15 minutes one season ago.
    fn baseline(&self, cur: i64, lag: i64) -> Baseline {
        let mut b = Baseline { cur, means: VecDeque::with_capacity(self.days as usize), ..Baseline::default() };
        for i in cur - self.days..=cur - 3 {
            if let Some(k) = self.slot(i) {
                b.n += f64::from(k.n);
                b.sum += k.sum;
                b.sumsq += k.sumsq;
                let (ds, dss) = self.deseasoned(i, k);
                b.dsum += ds;
                b.dsumsq += dss;
                b.means.push_back((i, k.sum / f64::from(k.n)));
            }
        }
        b.sorted = b.means.iter().map(|p| p.1).collect();
        b.sorted.sort_unstable_by(f64::total_cmp);
        b.index();
        (b.yn, b.ysum) = self.seasonal(cur, lag);
        b
    }

    fn warm(&self, now: i64, sc: &TimeScales) -> bool {
        self.seen >= sc.warm_samples && self.w1h.n() > 0 && self.first_ts.is_some_and(|f| now - f >= sc.warm_ms)
    }

    fn reset(&mut self) {
        self.w15.clear();
        self.w1h.clear();
        self.w6h.clear();
        self.window_ts = None;
        for b in &mut self.ring {
            *b = Bucket { idx: i64::MIN, ..Bucket::default() };
        }
        self.detector = DefaultDetector::new(self.detector.params().clone());
        self.anomaly = 0.0;
        self.seen = 0;
        self.first_ts = None;
        self.base = None;
        if let Some(s) = self.season.as_mut() {
            s.restart();
        }
        // last_ts is kept so replays of old samples stay refused.
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct DeployHistory {
    total: u32,
    bad: u32,
}

/// The feature state of one host.
#[derive(Debug, Clone)]
pub struct HostFeatures {
    metrics: Vec<MetricState>,
    last_change: Option<(i64, u32, Option<String>)>,
    in_progress: BTreeMap<String, i64>,
    history: HashMap<String, DeployHistory>,
    maintenance: bool,
    scales: TimeScales,
}

impl HostFeatures {
    /// Bytes this host's state holds, inline and on the heap (capacities), for memory
    /// budgets: counted, not measured, so it does not depend on the allocator.
    pub fn state_bytes(&self) -> usize {
        let window = |w: &Window| (w.buf.capacity() + w.maxq.as_ref().map_or(0, VecDeque::capacity)) * 16;
        let metrics: usize = self
            .metrics
            .iter()
            .map(|m| {
                let base = m.base.as_ref().map_or(0, |b| b.means.capacity() * 16 + b.sorted.capacity() * 8);
                let season =
                    m.season.as_ref().map_or(0, |s| std::mem::size_of::<Season>() + s.hist.capacity() * 4 + s.profile.capacity() * 8);
                window(&m.w15)
                    + window(&m.w1h)
                    + window(&m.w6h)
                    + m.ring.capacity() * std::mem::size_of::<Bucket>()
                    + m.detector.heap_bytes()
                    + base
                    + season
            })
            .sum();
        let maps = (self.in_progress.len() + self.history.len()) * 96;
        std::mem::size_of::<Self>() + self.metrics.capacity() * std::mem::size_of::<MetricState>() + metrics + maps
    }

    /// A fresh state for `schema`.
    pub fn new(schema: &FeatureSchema) -> Self {
        HostFeatures {
            metrics: schema.metrics.iter().map(|m| MetricState::new(m, &schema.scales, &schema.detector)).collect(),
            last_change: None,
            in_progress: BTreeMap::new(),
            history: HashMap::new(),
            maintenance: false,
            scales: schema.scales,
        }
    }

    /// Feeds one sample of metric number `m` (see [`FeatureSchema::metric_index`]).
    /// NaN, and samples not newer than the metric's last one, are ignored.
    pub fn push(&mut self, m: usize, ts: TimestampMs, value: f64) {
        if let Some(s) = self.metrics.get_mut(m) {
            s.push(ts, value, &self.scales);
        }
    }

    /// Feeds one event concerning this host.
    pub fn event(&mut self, e: &Event) {
        self.host_event(e);
        if e.kind == EventKind::HostRecovered {
            // A recovered host starts a fresh baseline.
            for m in 0..self.metrics.len() {
                self.reset_metric(m);
            }
        }
    }

    /// [`HostFeatures::event`]'s part in the host's own state (deploys, maintenance);
    /// with [`HostFeatures::reset_metric`] of every metric for `host_recovered`, the whole.
    pub fn host_event(&mut self, e: &Event) {
        match e.kind {
            EventKind::DeployStarted | EventKind::ConfigChanged => {
                let changes = u32::try_from(e.changes.len()).unwrap_or(u32::MAX).max(1);
                self.last_change = Some((e.ts, changes, e.resource.clone()));
                if e.kind == EventKind::DeployStarted {
                    let key = e.deployment.clone().or_else(|| e.resource.clone()).unwrap_or_default();
                    self.in_progress.insert(key, e.ts);
                }
            }
            EventKind::DeploySucceeded | EventKind::DeployFailed | EventKind::RolledBack => {
                let key = e.deployment.clone().or_else(|| e.resource.clone()).unwrap_or_default();
                self.in_progress.remove(&key);
                if let Some(r) = &e.resource {
                    let h = self.history.entry(r.clone()).or_default();
                    if e.kind != EventKind::RolledBack {
                        h.total += 1;
                    }
                    if e.kind != EventKind::DeploySucceeded {
                        h.bad += 1;
                    }
                }
            }
            EventKind::HostMaintenance => self.maintenance = true,
            EventKind::HostRecovered => self.maintenance = false,
        }
    }

    /// Starts metric number `m` afresh (a recovered host's new baseline).
    pub fn reset_metric(&mut self, m: usize) {
        if let Some(s) = self.metrics.get_mut(m) {
            s.reset();
        }
    }

    /// Whether any metric has a fresh sample at `now` (a silent host is not scored).
    pub fn has_data(&self, now: TimestampMs) -> bool {
        self.metrics.iter().any(|m| m.fresh(now, &self.scales))
    }

    /// Writes the feature vector at `now` into `out` (length `schema.len()`); the fleet
    /// feature is left NaN for [`fleet_fill`]. Returns the coverage in [0, 1].
    ///
    /// # Panics
    /// If `out` is shorter than `schema.len()` (a caller bug).
    pub fn write(&mut self, schema: &FeatureSchema, now: TimestampMs, out: &mut [f64]) -> f64 {
        let mut present = 0usize;
        for i in 0..self.metrics.len().min(schema.metrics.len()) {
            if self.write_metric(schema, i, now, out) {
                present += 1;
            }
        }
        self.write_host(schema, now, out, present)
    }

    /// [`HostFeatures::write`]'s part for metric number `m` alone: its block of the row
    /// `out` (NaN when it has no fresh sample at `now`). Returns whether it counts as
    /// present (fresh and warm). Reads and changes only that metric's state, which a metric
    /// without a fresh sample leaves as it is.
    pub fn write_metric(&mut self, schema: &FeatureSchema, m: usize, now: TimestampMs, out: &mut [f64]) -> bool {
        let k = METRIC_FEATURES.len();
        let (Some(st), Some(spec)) = (self.metrics.get_mut(m), schema.metrics.get(m)) else { return false };
        st.write(now, spec, &mut out[m * k..(m + 1) * k], &self.scales) && st.warm(now, &self.scales)
    }

    /// Whether metric number `m` has a fresh sample at `now` (see [`HostFeatures::has_data`]).
    pub fn metric_fresh(&self, m: usize, now: TimestampMs) -> bool {
        self.metrics.get(m).is_some_and(|s| s.fresh(now, &self.scales))
    }

    /// [`HostFeatures::write`]'s host part, once every metric's block of `out` is written
    /// ([`HostFeatures::write_metric`], `present` of them present): the per-host features.
    /// Reads only the blocks and the host's event state. Returns the coverage.
    pub fn write_host(&mut self, schema: &FeatureSchema, now: TimestampMs, out: &mut [f64], present: usize) -> f64 {
        let k = METRIC_FEATURES.len();
        let (mut zmax, mut amax, mut tmax) = (f64::NAN, f64::NAN, f64::NAN);
        let (mut z1h_up, mut slope_up, mut max_up, mut deviating) = (f64::NAN, f64::NAN, f64::NAN, 0.0);
        for i in 0..self.metrics.len().min(schema.metrics.len()) {
            let block = &out[i * k..(i + 1) * k];
            zmax = fmax(zmax, block[Z15].abs());
            amax = fmax(amax, block[ANOM]);
            tmax = fmax(tmax, block[TTE]);
            z1h_up = fmax(z1h_up, block[Z1H]);
            slope_up = fmax(slope_up, block[SLOPE1H]);
            max_up = fmax(max_up, block[MAX1H]);
            if block[Z1H] > DEVIATING {
                deviating += 1.0;
            }
        }
        let h = &mut out[schema.host_offset()..schema.len()];
        h[H_Z_MAX] = zmax;
        h[H_ANOMALY_MAX] = amax;
        h[H_TTE_MAX] = tmax;
        h[FLEET] = f64::NAN;
        let (since, changes, resource) = match &self.last_change {
            Some((t, c, r)) if *t <= now => (((now - t) as f64 / self.scales.hour_ms as f64).min(CAP_H), f64::from(*c), r.as_deref()),
            _ => (CAP_H, 0.0, None),
        };
        h[H_DEPLOY_SINCE] = since;
        h[H_DEPLOY_CHANGES] = if since < CAP_H { changes } else { 0.0 };
        let hist = resource.and_then(|r| self.history.get(r)).copied().unwrap_or_default();
        h[H_DEPLOY_BAD_RATE] = (f64::from(hist.bad) + 0.5) / (f64::from(hist.total) + 5.0);
        let hour = self.scales.hour_ms;
        self.in_progress.retain(|_, t| now - *t < hour);
        h[H_DEPLOY_IN_PROGRESS] = if self.in_progress.is_empty() { 0.0 } else { 1.0 };
        h[H_MAINT] = if self.maintenance { 1.0 } else { 0.0 };
        let cov = if schema.metrics.is_empty() { 0.0 } else { present as f64 / schema.metrics.len() as f64 };
        h[COVERAGE] = cov;
        h[H_Z1H_UP] = z1h_up;
        h[H_SLOPE1H_UP] = slope_up;
        h[H_MAX1H_UP] = max_up;
        h[H_DEVIATING] = deviating;
        cov
    }
}

/// Takes `old` out of `sorted` (ascending by `total_cmp`) and puts `new` in its place in
/// the order, moving only the entries between the two places (a removal and an insertion
/// each move everything after their place). An `old` not in `sorted` is not removed.
fn replace_sorted(sorted: &mut Vec<f64>, old: Option<f64>, new: Option<f64>) {
    let at = |sorted: &[f64], v: f64| sorted.partition_point(|x| x.total_cmp(&v).is_lt());
    // Where `old` is, if it is there.
    let old = old.and_then(|v| Some(at(sorted, v)).filter(|&i| sorted.get(i).is_some_and(|x| x.total_cmp(&v).is_eq())));
    match (old, new) {
        (Some(i), Some(new)) => {
            // Entries below `new`; `old` is one of them when it sits before that point.
            let p = at(sorted, new);
            if i < p {
                sorted.copy_within(i + 1..p, i);
                sorted[p - 1] = new;
            } else {
                sorted.copy_within(p..i, p + 1);
                sorted[p] = new;
            }
        }
        (Some(i), None) => {
            sorted.remove(i);
        }
        (None, Some(new)) => sorted.insert(at(sorted, new), new),
        (None, None) => {}
    }
}

/// `x.asinh()` to within a few ulps, without the `hypot` of the standard one (the
/// features take six per metric on every score).
fn asinh(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 0.5 {
        let a2 = a * a;
        (a + a2 / (1.0 + (1.0 + a2).sqrt())).ln_1p()
    } else if a < 1e8 {
        (a + (a * a + 1.0).sqrt()).ln()
    } else {
        a.ln() + std::f64::consts::LN_2
    };
    r.copysign(x)
}

fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() {
        b
    } else if b.is_nan() {
        a
    } else {
        a.max(b)
    }
}

/// Robust per-metric fleet statistics of `z1h` at one moment: (median, scale).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetStats {
    /// Per metric: median and 1.4826·MAD (+ a floor) of `z1h` over the hosts reporting it,
    /// or `None` when fewer than five hosts report it.
    pub per_metric: Vec<Option<(f64, f64)>>,
}

/// Fleet statistics over the rows of all hosts at one moment.
///
/// One pass over the rows (each row's metrics read together: the rows of a fleet are
/// rarely in cache, and each is a host's).
pub fn fleet_stats<'a>(schema: &FeatureSchema, rows: impl Iterator<Item = &'a [f64]>) -> FleetStats {
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); schema.metrics.len()];
    for r in rows {
        for (m, col) in cols.iter_mut().enumerate() {
            let v = schema.z1h(r, m);
            if v.is_finite() {
                col.push(v);
            }
        }
    }
    let per_metric = cols
        .iter_mut()
        .map(|vals| {
            if vals.len() < 5 {
                return None;
            }
            let med = median(vals);
            for v in vals.iter_mut() {
                *v = (*v - med).abs();
            }
            let mad = median(vals);
            Some((med, 1.4826 * mad + 0.25))
        })
        .collect();
    FleetStats { per_metric }
}

fn median(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

/// Fills `host.fleet_z_max` of one row from the fleet statistics.
pub fn fleet_fill(schema: &FeatureSchema, stats: &FleetStats, row: &mut [f64]) {
    let mut best = f64::NAN;
    for (m, s) in stats.per_metric.iter().enumerate() {
        if let Some((med, scale)) = s {
            let z = schema.z1h(row, m);
            if z.is_finite() {
                best = fmax(best, ((z - med) / scale).abs());
            }
        }
    }
    row[schema.host_offset() + FLEET] = best;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> FeatureSchema {
        FeatureSchema {
            metrics: vec![
                MetricSpec { name: "mem_util".into(), bounded: true, season_buckets: Some(288) },
                MetricSpec { name: "net_latency_ms".into(), bounded: false, season_buckets: None },
            ],
            scales: TimeScales::reference(),
            detector: ValidParams::default(),
        }
    }

    fn feed(h: &mut HostFeatures, from: i64, to: i64, f: impl Fn(i64) -> (f64, f64)) {
        let mut t = from;
        while t <= to {
            let (a, b) = f(t);
            h.push(0, t, a);
            h.push(1, t, b);
            t += MIN;
        }
    }

    #[test]
    fn the_window_maximum_is_the_largest_sample_held() {
        for mut w in [Window::new(HOUR, HOUR), Window::with_max(HOUR, HOUR)] {
            assert!(w.max().is_nan(), "empty");
            for i in 0..200_i64 {
                let x = ((i * 37) % 101) as f64 - 50.0 + if i == 150 { 1000.0 } else { 0.0 };
                // Gaps now and then, so that evictions take several samples at once.
                let t = i * MIN + if i > 120 { 40 * MIN } else { 0 };
                w.push(t, x);
                let naive = w.buf.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
                assert_eq!(w.max(), naive, "after sample {i} (tracked: {})", w.maxq.is_some());
                w.evict(t + 30 * MIN);
                let naive = w.buf.iter().map(|p| p.1).fold(f64::NAN, f64::max);
                assert_eq!(w.max().to_bits(), naive.to_bits(), "after evicting at sample {i} (tracked: {})", w.maxq.is_some());
            }
            w.clear();
            assert!(w.max().is_nan(), "cleared");
        }
    }

    #[test]
    fn dense_samples_fill_the_windows_one_per_step() {
        let spec = MetricSpec { name: "m".into(), bounded: false, season_buckets: None };
        let sc = TimeScales::reference();
        let mut m = MetricState::new(&spec, &sc, &ValidParams::default());
        // Two hours a millisecond apart, in bursts as a backfilling sender would send them.
        let t0 = 1_700_000_000_000_i64;
        for burst in 0..(2 * HOUR / WINDOW_STEP_MS) {
            for k in 0..50 {
                m.push(t0 + burst * WINDOW_STEP_MS + k, 1.0 + (k % 7) as f64, &sc);
            }
        }
        let per_step = |span: i64| (span / WINDOW_STEP_MS) as usize;
        assert!(m.w6h.n() <= per_step(2 * HOUR) + 1, "{}", m.w6h.n());
        assert!(m.w1h.n() <= per_step(HOUR) + 1, "{}", m.w1h.n());
        assert!(m.w15.n() <= per_step(15 * MIN) + 1, "{}", m.w15.n());
        assert_eq!(m.seen, (2 * HOUR / WINDOW_STEP_MS * 50) as u64, "every sample still counts");
        // At the step or coarser, every sample is kept.
        let mut c = MetricState::new(&spec, &sc, &ValidParams::default());
        for i in 0..100 {
            c.push(t0 + i * WINDOW_STEP_MS, 1.0, &sc);
        }
        assert_eq!(c.w6h.n(), 100);
    }

    #[test]
    fn a_replacement_in_the_sorted_means_equals_a_removal_then_an_insertion() {
        let base = [-3.0, -1.0, 0.0, 0.0, 2.0, 2.0, 2.5, 7.0, f64::INFINITY];
        let values = [-4.0, -3.0, -1.0, 0.0, 1.0, 2.0, 2.5, 5.0, 7.0, 9.0, f64::INFINITY];
        for &old in &base {
            for &new in &values {
                let mut want = base.to_vec();
                let i = want.partition_point(|x| x.total_cmp(&old).is_lt());
                want.remove(i);
                let j = want.partition_point(|x| x.total_cmp(&new).is_lt());
                want.insert(j, new);
                let mut got = base.to_vec();
                replace_sorted(&mut got, Some(old), Some(new));
                assert_eq!(got, want, "{old} out, {new} in");
            }
        }
        let mut got = base.to_vec();
        replace_sorted(&mut got, Some(2.0), None);
        assert_eq!(got, [-3.0, -1.0, 0.0, 0.0, 2.0, 2.5, 7.0, f64::INFINITY]);
        replace_sorted(&mut got, None, Some(1.0));
        assert_eq!(got, [-3.0, -1.0, 0.0, 0.0, 1.0, 2.0, 2.5, 7.0, f64::INFINITY]);
        replace_sorted(&mut got, Some(6.0), Some(3.0));
        assert_eq!(got, [-3.0, -1.0, 0.0, 0.0, 1.0, 2.0, 2.5, 3.0, 7.0, f64::INFINITY], "a missing value is not removed");
    }

    #[test]
    fn the_pivoted_search_counts_like_a_binary_search() {
        let mut seed = 7_u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) % 41) as f64 - 20.0
        };
        for n in [0_usize, 1, 2, 15, 16, 17, 31, 100, 287, 288] {
            let mut b = Baseline { sorted: (0..n).map(|_| next()).collect(), ..Baseline::default() };
            b.sorted.sort_unstable_by(f64::total_cmp);
            b.index();
            for x in (-44..=44).map(|i| f64::from(i) * 0.5).chain([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0]) {
                assert_eq!(b.below(x), b.sorted.partition_point(|&v| v < x), "n {n}, x {x}");
            }
        }
    }

    #[test]
    fn asinh_matches_the_standard_one() {
        let mut x = -1e12_f64;
        while x < 1e12 {
            let (a, b) = (asinh(x), x.asinh());
            assert!((a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(f64::MIN_POSITIVE), "{x}: {a} vs {b}");
            x = if x.abs() < 1e-9 {
                -x + 1e-9
            } else if x < 0.0 {
                x * 0.93
            } else {
                x * 1.07
            };
        }
        for x in [0.0, -0.0, 0.5, -0.5, 1e8, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(asinh(x), x.asinh(), "{x}");
        }
        assert!(asinh(f64::NAN).is_nan());
    }

    #[test]
    fn the_running_baseline_equals_one_computed_from_scratch() {
        let sc = TimeScales::reference();
        let mut m =
            MetricState::new(&MetricSpec { name: "m".into(), bounded: false, season_buckets: Some(288) }, &sc, &ValidParams::default());
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
        let mut checked = 0;
        for step in 0..(3 * 24 * 60) {
            // Gaps of a few minutes, one of two hours (more buckets than a step may skip).
            if step % 997 > 990 || (2000..2120).contains(&step) {
                continue;
            }
            let t = step * MIN;
            m.push(t, 100.0 + 10.0 * ((step % 1440) as f64 / 229.0).sin() + (step % 13) as f64, &sc);
            // Scored at uneven moments: every 5, 7 or 11 minutes.
            if step % 5 == 0 || step % 7 == 0 || step % 11 == 0 {
                let cur = t.div_euclid(BUCKET);
                if m.base.as_ref().is_none_or(|b| b.cur != cur) {
                    m.refresh_baseline(cur, 288);
                }
                let fresh = m.baseline(cur, 288);
                let b = m.base.as_ref().expect("a baseline");
                assert!(close(b.n, fresh.n) && close(b.sum, fresh.sum) && close(b.sumsq, fresh.sumsq), "step {step}");
                assert!(close(b.yn, fresh.yn) && close(b.ysum, fresh.ysum), "step {step}");
                assert!(close(b.dsum, fresh.dsum) && close(b.dsumsq, fresh.dsumsq), "step {step}");
                assert_eq!(b.means, fresh.means, "step {step}");
                assert_eq!(b.sorted, fresh.sorted, "step {step}");
                checked += 1;
            }
        }
        assert!(checked > 1000);
        assert!(m.season.as_ref().is_some_and(|s| !s.profile.is_empty()), "the deseasonalised sums were checked");
    }

    #[test]
    fn the_seasonal_residual_takes_the_mstl_profile_out() {
        // A daily cycle of amplitude 10 around 100 plus noise (sd about 1); from 80 h on,
        // a step of +8: less than the cycle's swing, several noise sds.
        let x = |t: i64| {
            let step = if t >= 80 * HOUR { 8.0 } else { 0.0 };
            100.0 + 10.0 * (t as f64 / (24 * HOUR) as f64 * std::f64::consts::TAU).sin() + ((t / MIN * 7919) % 13) as f64 * 0.3 + step
        };
        let spec = MetricSpec { name: "m".into(), bounded: false, season_buckets: Some(288) };
        let sc = TimeScales::reference();
        let mut m = MetricState::new(&spec, &sc, &ValidParams::default());
        let mut out = [0.0; METRIC_FEATURES.len()];
        let (mut seas_quiet, mut z1h_quiet) = (0.0_f64, 0.0_f64);
        for step in 0..(81 * 60) {
            let t = step * MIN;
            m.push(t, x(t), &sc);
            // The profile is fitted at 48 h.
            if (48 * HOUR + 15 * MIN..80 * HOUR).contains(&t) && step % 15 == 0 {
                assert!(m.write(t, &spec, &mut out, &sc));
                seas_quiet = seas_quiet.max(out[3].abs());
                z1h_quiet = z1h_quiet.max(out[Z1H].abs());
            }
        }
        assert!(m.season.as_ref().is_some_and(|s| !s.profile.is_empty()), "MSTL fitted a profile");
        // Against the 24 h baseline the cycle alone swings z1h past 1 (asinh scale); the
        // residual stays small.
        assert!(z1h_quiet > 0.9, "z1h {z1h_quiet}");
        assert!(seas_quiet < 1.0, "residual {seas_quiet} with no anomaly");
        // The step, 45 minutes in, stands out in the residual.
        assert!(m.write(81 * HOUR - MIN, &spec, &mut out, &sc));
        assert!(out[3] > 1.5, "residual {} after the step", out[3]);
    }

    #[test]
    fn host_features_follow_whichever_metric_rises() {
        // The metric-agnostic host features read the same whichever metric deviates.
        let s = schema();
        let names = s.names();
        let at = |n: &str| names.iter().position(|x| x == n).expect(n);
        let now = 30 * HOUR;
        let wobble = |t: i64| ((t / MIN) % 5) as f64;
        let run = |mem_up: bool, lat_up: bool| {
            let mut h = HostFeatures::new(&s);
            feed(&mut h, 0, now, |t| {
                let late = t > now - HOUR;
                let mem = 0.4 + 0.002 * wobble(t) + if mem_up && late { 0.3 } else { 0.0 };
                let lat = 20.0 + wobble(t) + if lat_up && late { 40.0 } else { 0.0 };
                (mem, lat)
            });
            let mut row = vec![0.0; s.len()];
            h.write(&s, now, &mut row);
            row
        };
        let quiet = run(false, false);
        let (mem, lat, both) = (run(true, false), run(false, true), run(true, true));
        assert_eq!(quiet[at("host.deviating")], 0.0);
        assert_eq!(mem[at("host.deviating")], 1.0);
        assert_eq!(lat[at("host.deviating")], 1.0);
        assert_eq!(both[at("host.deviating")], 2.0);
        for row in [&mem, &lat] {
            assert!(row[at("host.z1h_up")] > quiet[at("host.z1h_up")] + 1.0, "{row:?}");
            assert!(row[at("host.max1h_up")] > quiet[at("host.max1h_up")] + 1.0);
        }
        assert_eq!(lat[at("host.z1h_up")], lat[at("net_latency_ms.z1h")]);
        assert_eq!(mem[at("host.z1h_up")], mem[at("mem_util.z1h")]);
    }

    #[test]
    fn features_at_t_ignore_samples_after_t() {
        // No look-ahead: the vector at `now` is the same whatever comes after `now`.
        let s = schema();
        let now = 30 * HOUR;
        let base = |t: i64| (0.4 + 0.01 * ((t / MIN) % 7) as f64, 20.0 + ((t / MIN) % 5) as f64);
        let mut a = HostFeatures::new(&s);
        let mut b = HostFeatures::new(&s);
        feed(&mut a, 0, now, base);
        feed(&mut b, 0, now, base);
        let mut fa = vec![0.0; s.len()];
        let mut fb = vec![0.0; s.len()];
        a.write(&s, now, &mut fa);
        b.write(&s, now, &mut fb);
        // `b` then sees a wild future; its earlier vector must equal `a`'s.
        feed(&mut b, now + MIN, now + 3 * HOUR, |_| (0.99, 900.0));
        for (x, y) in fa.iter().zip(&fb) {
            assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
        }
        let mut later = vec![0.0; s.len()];
        b.write(&s, now + 3 * HOUR, &mut later);
        // z15 is asinh-compressed: sinh gives it back in baseline SDs.
        assert!(later[1].sinh() > 2.0, "the jump shows once it is in the past: z15 = {}", later[1]);
        let lat_z15 = later[METRIC_FEATURES.len() + Z15];
        assert!(lat_z15.sinh() > 2.0, "latency z15 = {lat_z15}");
    }

    #[test]
    fn a_filling_metric_gets_a_short_time_to_exhaustion() {
        let s = schema();
        let mut h = HostFeatures::new(&s);
        // Flat for a day, then +10 %/h for 4 h from 0.5: exhaustion about 1 h ahead.
        let end = 28 * HOUR;
        feed(&mut h, 0, end, |t| {
            let grow = if t > 24 * HOUR { 0.1 * (t - 24 * HOUR) as f64 / HOUR as f64 } else { 0.0 };
            (0.5 + grow + 0.002 * ((t / MIN) % 3) as f64, 20.0)
        });
        let mut f = vec![0.0; s.len()];
        let cov = h.write(&s, end, &mut f);
        assert_eq!(cov, 1.0);
        let tte_inv = f[TTE];
        let tte_h = 1.0 / tte_inv - 1.0;
        assert!((0.5..2.0).contains(&tte_h), "time to exhaustion {tte_h} h");
        // The unbounded metric has no time to exhaustion.
        assert!(f[METRIC_FEATURES.len() + TTE].is_nan());
    }

    #[test]
    fn missing_metrics_are_nan_and_lower_coverage() {
        let s = schema();
        let mut h = HostFeatures::new(&s);
        let mut t = 0;
        while t <= 10 * HOUR {
            h.push(0, t, 0.3);
            t += MIN;
        }
        let mut f = vec![0.0; s.len()];
        let cov = h.write(&s, 10 * HOUR, &mut f);
        assert_eq!(cov, 0.5);
        assert!(f[METRIC_FEATURES.len()..2 * METRIC_FEATURES.len()].iter().all(|v| v.is_nan()));
        // Stale data counts as missing.
        assert!(!h.has_data(10 * HOUR + STALE_MS + 1));
    }

    #[test]
    fn fleet_signal_is_relative_to_peers() {
        let s = schema();
        let k = s.len();
        let mut rows: Vec<Vec<f64>> = (0..8)
            .map(|i| {
                let mut r = vec![f64::NAN; k];
                r[Z1H] = 0.1 * i as f64;
                r
            })
            .collect();
        rows[7][Z1H] = 9.0;
        let st = fleet_stats(&s, rows.iter().map(Vec::as_slice));
        for r in &mut rows {
            fleet_fill(&s, &st, r);
        }
        let off = s.host_offset() + FLEET;
        assert!(rows[7][off] > 5.0, "{}", rows[7][off]);
        assert!(rows[1][off] < 2.0, "{}", rows[1][off]);
    }

    #[test]
    fn minute_data_and_the_default_horizon_get_the_reference_scales() {
        let r = TimeScales::reference();
        assert_eq!(
            (r.bucket_ms, r.baseline_buckets, r.stale_ms, r.warm_samples, r.warm_ms),
            (BUCKET, DAY_BUCKETS, STALE_MS, WARM_SAMPLES, WARM_MS)
        );
        assert_eq!((r.short_ms, r.mid_ms, r.long_ms, r.window_step_ms, r.hour_ms), (15 * MIN, HOUR, 6 * HOUR, WINDOW_STEP_MS, HOUR));
        for step in [1_000, 15_000, 60_000, 5 * MIN] {
            for horizon in [30 * MIN, 2 * HOUR, 6 * HOUR] {
                let d = TimeScales::derive(step, horizon);
                assert_eq!(d, TimeScales { step_ms: step, ..r }, "step {step} horizon {horizon}");
                assert!(d.is_reference());
            }
        }
        // A model saved before the scales were recorded loads with the reference ones.
        let old: FeatureSchema = serde_json::from_str(r#"{"metrics":[]}"#).expect("old schema");
        assert_eq!(old.scales, r);
    }

    #[test]
    fn daily_data_get_windows_of_days_and_a_warm_up_it_can_reach() {
        const DAY: i64 = 24 * HOUR;
        let d = TimeScales::derive(DAY, 14 * DAY);
        assert!(!d.is_reference());
        d.validate().expect("valid");
        assert_eq!(d.bucket_ms, DAY);
        assert_eq!(d.short_ms, DAY);
        assert_eq!(d.mid_ms, 6 * DAY);
        assert_eq!(d.long_ms, 14 * DAY);
        assert_eq!(d.stale_ms, 2 * DAY);
        assert_eq!(d.warm_ms, 14 * DAY);
        assert_eq!(d.warm_samples, 14);
        assert_eq!(d.baseline_buckets, 56);
        assert_eq!(d.warning_ms, 14 * DAY);
        // Features of daily samples warm up within a few weeks.
        let spec = MetricSpec { name: "m".into(), bounded: false, season_buckets: None };
        let s = FeatureSchema { metrics: vec![spec], scales: d, detector: ValidParams::default() };
        let mut h = HostFeatures::new(&s);
        let mut row = vec![0.0; s.len()];
        for day in 0..40 {
            h.push(0, day * DAY, 1.0 + (day % 3) as f64);
        }
        let cov = h.write(&s, 39 * DAY, &mut row);
        assert_eq!(cov, 1.0);
        assert!(row[Z1H].is_finite() && row[SLOPE1H].is_finite(), "{row:?}");
        assert!(h.has_data(40 * DAY) && !h.has_data(42 * DAY));
        // Bad recorded scales are refused, not used.
        assert!(TimeScales { bucket_ms: 0, ..d }.validate().is_err());
        assert!(TimeScales { baseline_buckets: 5000, ..d }.validate().is_err());
    }

    #[test]
    fn the_feature_indices_follow_the_names() {
        for names in [&METRIC_FEATURES[..], &HOST_FEATURES[..]] {
            for (i, n) in names.iter().enumerate() {
                assert_eq!(index_of(names, n), i, "{n} is listed twice");
            }
        }
        let metric = [LEVEL, Z15, Z1H, SEAS, SLOPE1H, SLOPE6H, VOL, MAX1H, POS24, TTE, ANOM];
        assert_eq!(metric.map(|i| METRIC_FEATURES[i]), METRIC_FEATURES, "every metric feature has its index, in order");
        let host = [
            H_Z_MAX,
            H_ANOMALY_MAX,
            H_TTE_MAX,
            FLEET,
            H_DEPLOY_SINCE,
            H_DEPLOY_CHANGES,
            H_DEPLOY_BAD_RATE,
            H_DEPLOY_IN_PROGRESS,
            H_MAINT,
            COVERAGE,
            H_Z1H_UP,
            H_SLOPE1H_UP,
            H_MAX1H_UP,
            H_DEVIATING,
        ];
        assert_eq!(host.map(|i| HOST_FEATURES[i]), HOST_FEATURES, "every host feature has its index, in order");
    }
}
