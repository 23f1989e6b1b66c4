//! [`DefaultDetector`]: an ensemble of cheap predictors, an anomaly-likelihood step per
//! predictor, a range check, and suppression of repeated alarms.

use serde::{Deserialize, Serialize};

use crate::StreamingDetector;
use crate::params::ValidParams;
use crate::stats::{Ew, normal_tail_decades};

const DAY_MS: i64 = 86_400_000;
/// Positive timestamp gaps used to estimate a series' step (their median).
const STEP_SAMPLES: usize = 16;

/// The default streaming detector. Build it with [`DefaultDetector::new`]; feed it with
/// [`StreamingDetector::update`]. Its whole state serialises (serde), so a restored
/// detector continues bit for bit where the saved one was. State is small and bounded:
/// about 6 KB in memory for a 5-minute series (the time-of-day profile dominates), at
/// most about 20 KB (1-minute steps).
///
/// Per point, in order (defaults in brackets):
/// 1. **Predictors.** EWMAs of the values ([`crate::DetectorParams::level_rates`]:
///    the last value and a slow mean) and, once the series' step is known from its
///    timestamps, a time-of-day profile (with `seasonal_rate` 1, the value at the same
///    time yesterday). Each predictor's absolute error, in units of its own EW mean
///    absolute error, is squashed to a raw score `z / (z + knee)` in [0, 1).
/// 2. **Anomaly likelihood per predictor** (as Numenta's): the mean of the last
///    `short_window` (20) raw scores is compared with the EW mean and standard deviation
///    of that mean's own history (rate 0.0003, ~3000 points): a Gaussian tail
///    probability, kept as a surprise `S = -log10 tail` in decades.
/// 3. **Empirical cap.** A decayed histogram of the same short-term means gives their
///    empirical tail; where earlier means at least as high carry enough mass, `S` is
///    capped at that empirical rarity. A familiar error level (a daily spike, a noisy
///    regime) stops alarming; a new one keeps its Gaussian surprise. This is what makes
///    scores comparable across series with very different error tails.
/// 4. **Range check** (Numenta's "spatial anomaly"): a value beyond the range seen so
///    far by more than `range_tolerance` (5 %) of it gets `range_surprise` (20).
/// 5. **Suppression.** `S` is the largest surprise; it is reported only if it exceeds
///    the largest recent surprise (decayed, half-life `hold_half_life` = 100 points) and
///    `record_ratio` (1.3) times the largest recent *reported* one, so one episode
///    raises one or a few alarms. Otherwise the score is 0.
/// 6. `score = 1 - 10^(-S / score_decades)`; 0 during the `warmup` (250 points).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "Repr", into = "Repr")]
pub struct DefaultDetector {
    params: ValidParams,
    state: State,
    /// `0.5^(1 / hold_half_life)`, derived from `params`.
    hold_decay: f64,
}

/// The serialised form, checked on the way in.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    params: ValidParams,
    state: State,
}

impl From<DefaultDetector> for Repr {
    fn from(d: DefaultDetector) -> Self {
        Repr { params: d.params, state: d.state }
    }
}

impl TryFrom<Repr> for DefaultDetector {
    type Error = String;
    fn try_from(r: Repr) -> Result<Self, String> {
        let p = r.params.params();
        let channels = p.level_rates.len() + usize::from(p.seasonal);
        let s = &r.state;
        if s.levels.len() != p.level_rates.len() || s.channels.len() != channels {
            return Err(format!(
                "detector state has {} levels and {} channels, params need {} and {channels}",
                s.levels.len(),
                s.channels.len(),
                p.level_rates.len()
            ));
        }
        if s.channels.iter().any(|c| c.short.len() > p.short_window as usize || c.pos as usize >= p.short_window as usize) {
            return Err("detector state's short window does not match `short_window`".to_string());
        }
        if let Some(season) = &s.seasonal
            && (season.means.len() != season.counts.len() || season.means.is_empty() || season.bin_ms <= 0)
        {
            return Err("detector state's time-of-day profile is malformed".to_string());
        }
        let hold_decay = hold_decay(p);
        Ok(DefaultDetector { params: r.params, state: r.state, hold_decay })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// Finite points seen.
    n: u64,
    last_ts: Option<i64>,
    /// Positive timestamp gaps, until the step is known.
    gaps: Vec<i64>,
    /// EWMA level per `level_rates` entry.
    #[serde(with = "crate::exact::vec")]
    levels: Vec<f64>,
    /// The time-of-day profile, once the step is known (and if configured).
    seasonal: Option<Seasonal>,
    /// One per level, then the seasonal one if configured.
    channels: Vec<Channel>,
    #[serde(with = "crate::exact")]
    min: f64,
    #[serde(with = "crate::exact")]
    max: f64,
    /// Largest recent surprise, decayed; a surprise must beat it to be reported.
    #[serde(with = "crate::exact")]
    peak: f64,
    /// Largest recent reported surprise, decayed.
    #[serde(with = "crate::exact")]
    reported_peak: f64,
}

/// Mean value per time-of-day bin.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Seasonal {
    bin_ms: i64,
    #[serde(with = "crate::exact::vec")]
    means: Vec<f64>,
    counts: Vec<u32>,
}

impl Seasonal {
    fn new(step_ms: i64) -> Self {
        let bin_ms = step_ms.clamp(60_000, 3_600_000);
        let bins = (DAY_MS + bin_ms - 1) / bin_ms;
        // At most 1440 bins (one-minute bins); the conversion cannot truncate.
        let bins = bins as usize;
        Seasonal { bin_ms, means: vec![0.0; bins], counts: vec![0; bins] }
    }

    fn bin(&self, ts: i64) -> usize {
        let b = (ts.rem_euclid(DAY_MS) / self.bin_ms) as usize;
        b.min(self.means.len() - 1)
    }
}

/// One predictor's error scale and anomaly likelihood.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Channel {
    /// EW mean absolute error (`mean`; `var` unused).
    scale: Ew,
    /// Last raw scores, a ring of `short_window`.
    #[serde(with = "crate::exact::vec")]
    short: Vec<f64>,
    /// Sum of `short`, kept incrementally and recomputed each time the ring wraps.
    #[serde(with = "crate::exact")]
    short_sum: f64,
    pos: u32,
    /// EW mean and variance of the short-term mean.
    long: Ew,
    /// Decayed histogram of the short-term mean.
    hist: Histogram,
}

/// Exponentially decayed histogram over [0, 1), for the empirical tail.
///
/// Rather than multiplying every bin by `1 - rate` each point, each new point is added
/// with a weight that grows by `1 / (1 - rate)`; mass relative to the latest weight is
/// the decayed count. Weights are rescaled long before they could overflow.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Histogram {
    #[serde(with = "crate::exact::vec")]
    bins: Vec<f64>,
    /// Sum of `bins`.
    #[serde(with = "crate::exact")]
    total: f64,
    /// Weight of the latest point (0 before the first).
    #[serde(with = "crate::exact")]
    weight: f64,
}

impl Histogram {
    /// Caps `surprise` at the empirical rarity of short-term means `>= m`, when earlier
    /// ones that high carry enough mass; then adds `m`. The rarity is only computed when
    /// `surprise` is above `needed` (at or below it the value cannot matter).
    fn cap(&mut self, m: f64, bins: usize, surprise: f64, needed: f64, p: &crate::DetectorParams) -> f64 {
        if self.bins.len() != bins {
            *self = Histogram { bins: vec![0.0; bins], total: 0.0, weight: 0.0 };
        }
        // m is in [0, 1); the float-to-int conversion saturates, and the index is clamped.
        let b = ((m * bins as f64) as usize).min(bins - 1);
        let mut capped = surprise;
        if self.weight > 0.0 {
            if surprise > needed {
                // Sum the shorter side: m is usually small, so usually the bins below it.
                let above = if 2 * b < bins { self.total - self.bins[..b].iter().sum::<f64>() } else { self.bins[b..].iter().sum() };
                if above > p.empirical_min_mass * self.weight {
                    let prior = p.empirical_prior * self.weight;
                    let rarity = -((above + prior) / (self.total + prior)).log10();
                    capped = surprise.min(rarity.max(0.0));
                }
            }
            self.weight /= 1.0 - p.long_rate;
        } else {
            self.weight = 1.0;
        }
        self.bins[b] += self.weight;
        self.total += self.weight;
        if self.weight > 1e100 {
            for x in &mut self.bins {
                *x *= 1e-100;
            }
            self.weight *= 1e-100;
            self.total = self.bins.iter().sum();
        }
        capped
    }
}

impl Channel {
    /// Scores an absolute prediction error, then learns from it. Returns the surprise
    /// in decades (0 until the channel has history). A surprise that cannot exceed
    /// `needed` (the level at or below which the caller ignores it) may be returned as 0
    /// without computing it; what the channel learns is the same either way.
    fn step(&mut self, err: f64, floor: f64, needed: f64, p: &crate::DetectorParams) -> f64 {
        if self.scale.n == 0 {
            self.scale.update(err, p.error_rate);
            return 0.0;
        }
        let z = err / self.scale.mean.max(floor);
        let raw = z / (z + p.error_knee);
        let w = p.short_window as usize;
        if self.short.len() < w {
            self.short.push(raw);
            self.short_sum += raw;
        } else if let Some(slot) = self.short.get_mut(self.pos as usize) {
            self.short_sum += raw - *slot;
            *slot = raw;
        }
        // The next ring slot; `%` (an integer division per point) only when it wraps.
        let next = self.pos as usize + 1;
        self.pos = (if next < w { next } else { next % w }) as u32;
        if self.pos == 0 {
            self.short_sum = self.short.iter().sum();
        }
        let m = (self.short_sum / self.short.len() as f64).clamp(0.0, 1.0);
        let mut surprise = if self.long.n >= 2 {
            let sd = self.long.var.sqrt().max(p.min_std);
            let z = (m - self.long.mean) / sd;
            if tail_decades_bound(z) <= needed { 0.0 } else { normal_tail_decades(z) }
        } else {
            0.0
        };
        self.long.update(m, p.long_rate);
        let bins = p.empirical_bins as usize;
        if bins > 0 {
            surprise = self.hist.cap(m, bins, surprise, needed, p);
        }
        self.scale.update(err, p.error_rate);
        surprise
    }
}

/// An upper bound of [`normal_tail_decades`]`(z)` that needs no logarithm (+inf above
/// z = 2): its values at 0, 1 and 2 rounded up, as the tail only grows with z.
fn tail_decades_bound(z: f64) -> f64 {
    if z <= 0.0 {
        0.301_04
    } else if z <= 1.0 {
        0.799_56
    } else if z <= 2.0 {
        1.643_03
    } else {
        f64::INFINITY
    }
}

fn hold_decay(p: &crate::DetectorParams) -> f64 {
    0.5_f64.powf(1.0 / p.hold_half_life)
}

impl DefaultDetector {
    /// Bytes its state holds on the heap (vector capacities), for memory budgets.
    pub fn heap_bytes(&self) -> usize {
        let st = &self.state;
        let seasonal = st.seasonal.as_ref().map_or(0, |s| s.means.capacity() * 8 + s.counts.capacity() * 4);
        let channels: usize = st.channels.iter().map(|c| c.short.capacity() * 8 + c.hist.bins.capacity() * 8).sum();
        st.gaps.capacity() * 8 + st.levels.capacity() * 8 + seasonal + st.channels.capacity() * std::mem::size_of::<Channel>() + channels
    }

    /// A fresh detector (no history).
    pub fn new(params: ValidParams) -> Self {
        let p = params.params();
        let channels = p.level_rates.len() + usize::from(p.seasonal);
        let state = State { levels: vec![0.0; p.level_rates.len()], channels: vec![Channel::default(); channels], ..State::default() };
        let hold_decay = hold_decay(params.params());
        DefaultDetector { params, state, hold_decay }
    }

    /// The detector's params.
    pub fn params(&self) -> &ValidParams {
        &self.params
    }

    /// Finite points seen so far.
    pub fn points_seen(&self) -> u64 {
        self.state.n
    }

    fn observe_time(&mut self, ts: i64) {
        let st = &mut self.state;
        if let Some(last) = st.last_ts
            && st.seasonal.is_none()
            && self.params.params().seasonal
        {
            let gap = ts.saturating_sub(last);
            if gap > 0 {
                st.gaps.push(gap);
            }
            if st.gaps.len() >= STEP_SAMPLES {
                st.gaps.sort_unstable();
                let step = st.gaps[st.gaps.len() / 2];
                st.seasonal = Some(Seasonal::new(step));
                st.gaps = Vec::new();
            }
        }
        st.last_ts = Some(ts);
    }
}

impl Default for DefaultDetector {
    fn default() -> Self {
        DefaultDetector::new(ValidParams::default())
    }
}

impl StreamingDetector for DefaultDetector {
    fn update(&mut self, ts: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        self.observe_time(ts);
        let p = self.params.params();
        let st = &mut self.state;
        let x = value;
        if st.n == 0 {
            st.levels.fill(x);
            st.min = x;
            st.max = x;
            st.n = 1;
            return 0.0;
        }
        let span = st.max - st.min;
        let floor = 1e-9 * (x.abs() + span) + f64::MIN_POSITIVE;

        // 1-2. Predictors and their likelihoods. A surprise at or below `needed` changes
        // nothing below: within the warm-up none is reported, and after it one that does
        // not beat the decayed peak leaves the peak where decay puts it and reports nothing.
        let needed = if st.n < u64::from(p.warmup) { f64::INFINITY } else { st.peak * self.hold_decay };
        let mut surprise: f64 = 0.0;
        let (level_channels, seasonal_channel) = st.channels.split_at_mut(st.levels.len());
        for (level, ch) in st.levels.iter().zip(level_channels.iter_mut()) {
            surprise = surprise.max(ch.step((x - level).abs(), floor, needed, p));
        }
        let mut season_bin = None;
        if let (Some(season), Some(ch)) = (&st.seasonal, seasonal_channel.first_mut()) {
            // Guarded by `observe_time`: `last_ts` is this point's timestamp.
            let bin = season.bin(ts);
            if season.counts[bin] > 0 {
                surprise = surprise.max(ch.step((x - season.means[bin]).abs(), floor, needed, p));
            }
            season_bin = Some(bin);
        }

        // 3. Range check.
        if let Some(tol) = p.range_tolerance
            && st.n >= u64::from(p.warmup)
        {
            let excess = (x - st.max).max(st.min - x);
            if excess > 0.0 && excess > tol * span {
                surprise = surprise.max(p.range_surprise);
            }
        }

        // Learn.
        for (level, &rate) in st.levels.iter_mut().zip(&p.level_rates) {
            *level += rate * (x - *level);
        }
        if let (Some(season), Some(bin)) = (&mut st.seasonal, season_bin) {
            season.counts[bin] = season.counts[bin].saturating_add(1);
            let rate = p.seasonal_rate.max(1.0 / f64::from(season.counts[bin]));
            season.means[bin] += rate * (x - season.means[bin]);
        }
        st.min = st.min.min(x);
        st.max = st.max.max(x);
        st.n += 1;

        // 4-5. Report new peaks only.
        if st.n <= u64::from(p.warmup) {
            return 0.0;
        }
        let reported = if surprise > st.peak && surprise > st.reported_peak * p.record_ratio { surprise } else { 0.0 };
        let decay = self.hold_decay;
        st.peak = (st.peak * decay).max(surprise);
        st.reported_peak = (st.reported_peak * decay).max(reported);
        if reported == 0.0 {
            return 0.0; // what the formula gives, without a `powf` on nearly every point
        }
        (1.0 - 10_f64.powf(-reported / p.score_decades)).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_bound_is_never_below_the_tail() {
        let mut z = -12.0;
        while z <= 2.5 {
            let (bound, tail) = (tail_decades_bound(z), normal_tail_decades(z));
            assert!(bound >= tail, "z = {z}: bound {bound} < tail {tail}");
            z += 1e-4;
        }
        // Tight enough to be of use: within 1e-4 of the tail at the knots.
        for k in [0.0, 1.0, 2.0] {
            assert!(tail_decades_bound(k) - normal_tail_decades(k) < 1e-4, "z = {k}");
        }
        assert!(tail_decades_bound(f64::NAN).is_infinite(), "NaN is never skipped");
    }
}
