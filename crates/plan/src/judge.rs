//! The canary judge: is a canary's behaviour worse than its baseline's, KPI by KPI?
//!
//! A canary analysis in the manner of Kayenta: for each KPI (latency, error rate,
//! throughput, ...) the samples of the baseline stack and of the canary stack are compared
//! with a one-sided Mann-Whitney U test in the KPI's bad direction ([`Direction`]), and the
//! difference of their medians is held against a tolerance. The verdicts are weighed into
//! a score; the judgement passes when the score reaches the configured threshold and no
//! critical KPI failed.
//!
//! # Layout
//! - [`mann_whitney_u`]: the asymptotic Mann-Whitney U test (normal approximation with tie
//!   and continuity corrections), computed as
//!   `scipy.stats.mannwhitneyu(x, y, use_continuity=True, method="asymptotic")` computes it,
//!   for the three alternatives at once ([`MannWhitney`]).
//! - [`judge`]: the verdict of each KPI ([`MetricVerdict`]) and the [`Judgement`], from a
//!   [`JudgeConfig`] and one [`KpiSpec`] per KPI.
//! - `erfc` and `norm_sf` (internal): the complementary error function (W. J. Cody's
//!   rational approximations, relative error near the double precision for the whole range
//!   down to about 1e-308) and the standard normal survival function built on it.
//!
//! # Choices
//! - Non-finite samples (NaN, +inf, -inf) are dropped before anything is computed: a
//!   scrape gap or a division by zero upstream must neither panic nor decide a verdict.
//!   (scipy would rank infinities; harbinger does not count them.) `-0.0` equals `0.0`.
//! - A metric fails only when the difference is both significant (`p < alpha`, one-sided
//!   in the bad direction) and large: the canary's median is worse than the baseline's by
//!   more than `max(tolerance * |baseline median|, min_delta)`. A significant but small
//!   difference passes, and so does a large one on too little evidence.
//! - A KPI with fewer than `min_samples` finite values on either side has no verdict
//!   ([`Verdict::NoData`]) and is left out of the score. A judgement in which no KPI had
//!   data never passes: no evidence is not good evidence.
//! - Everything is a pure function of its arguments: no clock, no randomness, no hash-map
//!   order; the metrics come out in the order of the KPIs.
//!
//! Start with [`judge`].

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The result of the asymptotic Mann-Whitney U test of a first sample `x` (the canary)
/// against a second sample `y` (the baseline), for the three alternatives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// U statistic of the first sample: `R1 - n1 (n1 + 1) / 2`, with `R1` the sum of its
    /// ranks in the pooled sample (tied values get the average of their ranks). It counts
    /// the pairs `(x_i, y_j)` with `x_i > y_j`, ties counting one half.
    pub u: f64,
    /// Standardised U of the first sample, `(u - n1 n2 / 2) / sigma` with the
    /// tie-corrected `sigma` and without continuity correction: positive when the first
    /// sample tends to be greater. 0 when every value is tied (`sigma` is 0).
    pub z: f64,
    /// p-value of the two-sided alternative (the distributions differ).
    pub p_two_sided: f64,
    /// One-sided p-value of the alternative that the first sample is stochastically
    /// greater than the second.
    pub p_greater: f64,
    /// One-sided p-value of the alternative that the first sample is stochastically less
    /// than the second.
    pub p_less: f64,
    /// Number of finite values in the first sample.
    pub n1: usize,
    /// Number of finite values in the second sample.
    pub n2: usize,
}

/// The asymptotic Mann-Whitney U test of `x` (the first sample, e.g. the canary) against
/// `y`, with tie correction and continuity correction, for the three alternatives.
///
/// The values are those of
/// `scipy.stats.mannwhitneyu(x, y, use_continuity=True, method="asymptotic", alternative=A)`:
/// with `U2 = n1 n2 - U1`, `mu = n1 n2 / 2` and
/// `sigma = sqrt(n1 n2 / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1))))` over the sizes `t`
/// of the groups of tied values,
/// - `greater`: `p = sf((U1 - mu - 0.5) / sigma)`,
/// - `less`: `p = sf((U2 - mu - 0.5) / sigma)`,
/// - `two-sided`: `p = min(1, 2 sf((max(U1, U2) - mu - 0.5) / sigma))`,
///
/// where `sf` is the standard normal survival function. When every value is tied
/// (`sigma` is 0), every p-value is 1.
///
/// NaN and infinite values are dropped from both samples first (scipy would rank the
/// infinities). Returns `None` when either sample has no finite value. Sorting makes it
/// O(n log n) in the total number of values.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    let x = sorted_keys(x);
    let y = sorted_keys(y);
    mann_whitney_sorted(&x, &y)
}

/// Whether a larger value of a KPI is bad or good for the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A larger value is worse: latency, error rate, saturation.
    HigherIsWorse,
    /// A smaller value is worse: throughput, success rate, cache hit ratio.
    LowerIsWorse,
}

/// One KPI the canary is judged on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiSpec {
    /// Name of the KPI, as shown in verdicts and in [`Judgement::failed_critical`].
    pub name: String,
    /// Which direction of change is bad.
    pub direction: Direction,
    /// Weight of the KPI in the score; finite and > 0.
    pub weight: f64,
    /// A failing critical KPI fails the judgement alone, whatever the score.
    pub critical: bool,
    /// Allowed relative deviation of the canary's median from the baseline's before a
    /// significant difference counts (e.g. 0.1 = 10 %); finite and >= 0. See also
    /// `min_delta`.
    pub tolerance: f64,
    /// Absolute floor of the allowed deviation of the medians, in the KPI's unit: the
    /// allowed deviation is `max(tolerance * |baseline median|, min_delta)`; finite and
    /// >= 0.
    pub min_delta: f64,
}

impl KpiSpec {
    /// Checks the spec: a non-empty name, a finite weight > 0, and a finite, non-negative
    /// tolerance and min_delta. The error names the KPI and the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("kpi name: must not be empty".to_string());
        }
        let name = &self.name;
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(format!("kpi {name:?} weight: must be finite and > 0, got {}", self.weight));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(format!("kpi {name:?} tolerance: must be finite and >= 0, got {}", self.tolerance));
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(format!("kpi {name:?} min_delta: must be finite and >= 0, got {}", self.min_delta));
        }
        Ok(())
    }
}

/// Thresholds of a judgement. `JudgeConfig::default()` is alpha 0.05, pass score 75,
/// 5 samples at least.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JudgeConfig {
    /// Significance level of the one-sided tests, in (0, 1). Default 0.05.
    pub alpha: f64,
    /// Score (0..=100) the judgement needs to pass. Default 75.
    pub pass_score: f64,
    /// Fewest finite values each side of a KPI needs for a verdict (>= 1); fewer gives
    /// [`Verdict::NoData`]. Default 5.
    pub min_samples: usize,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self { alpha: 0.05, pass_score: 75.0, min_samples: 5 }
    }
}

impl JudgeConfig {
    /// Checks the config: alpha in (0, 1), pass_score in [0, 100], min_samples >= 1. The
    /// error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(format!("alpha: must be in (0, 1), got {}", self.alpha));
        }
        if !(self.pass_score >= 0.0 && self.pass_score <= 100.0) {
            return Err(format!("pass_score: must be in [0, 100], got {}", self.pass_score));
        }
        if self.min_samples == 0 {
            return Err("min_samples: must be >= 1, got 0".to_string());
        }
        Ok(())
    }
}

/// The verdict on one KPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The canary is not significantly and materially worse than the baseline.
    Pass,
    /// The canary is significantly (p < alpha) and materially (beyond the tolerance)
    /// worse than the baseline.
    Fail,
    /// Too few finite samples on one side or both to judge; left out of the score.
    NoData,
}

/// The verdict on one KPI, with the figures behind it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MetricVerdict {
    /// Name of the KPI.
    pub name: String,
    /// Pass, fail, or no data.
    pub verdict: Verdict,
    /// Number of finite baseline values.
    pub baseline_n: usize,
    /// Number of finite canary values.
    pub canary_n: usize,
    /// Median of the finite baseline values (the mean of the two middle values for an
    /// even count); `None` without any.
    pub baseline_median: Option<f64>,
    /// Median of the finite canary values; `None` without any.
    pub canary_median: Option<f64>,
    /// One-sided Mann-Whitney p-value in the bad direction (canary greater for
    /// [`Direction::HigherIsWorse`], canary less for [`Direction::LowerIsWorse`]); `None`
    /// for [`Verdict::NoData`].
    pub p_value: Option<f64>,
    /// Mann-Whitney U statistic of the canary against the baseline; `None` for
    /// [`Verdict::NoData`].
    pub u: Option<f64>,
    /// Relative deviation of the medians, `(canary - baseline) / |baseline|`; `None`
    /// when a median is missing or the baseline median is 0.
    pub deviation: Option<f64>,
    /// Weight of the KPI (from its spec).
    pub weight: f64,
    /// Whether the KPI is critical (from its spec).
    pub critical: bool,
    /// One sentence with the medians, the allowed deviation, the p-value and alpha.
    pub reason: String,
}

/// The judgement of a canary: the verdict per KPI and the overall outcome.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Judgement {
    /// One verdict per KPI, in the order of the KPIs.
    pub metrics: Vec<MetricVerdict>,
    /// 0..=100: the weight of the passing KPIs over the weight of the KPIs with data
    /// (0 when no KPI had data).
    pub score: f64,
    /// `score >= pass_score`, no critical KPI failed, and at least one KPI had data.
    pub pass: bool,
    /// Names of the critical KPIs that failed, in the order of the KPIs.
    pub failed_critical: Vec<String>,
    /// One sentence saying why the judgement passed or failed.
    pub reason: String,
}

/// Judges a canary against its baseline.
///
/// `samples[i]` is `(baseline, canary)` for `kpis[i]`. A KPI without a sample pair (a
/// shorter `samples`) has no data; sample pairs beyond the KPIs are ignored. NaN and
/// infinite values are dropped. A KPI fails when the one-sided Mann-Whitney test in its
/// bad direction gives `p < alpha` and the canary's median is worse than the baseline's by
/// more than `max(tolerance * |baseline median|, min_delta)`; it has no data when either
/// side has fewer than `min_samples` finite values.
///
/// The score is the weight of the passing KPIs over the weight of the KPIs with data,
/// times 100. The judgement passes when the score is at least `pass_score` and no
/// critical KPI failed. It never passes when no KPI had data, nor when the config or a
/// KPI spec is invalid (see [`JudgeConfig::validate`] and [`KpiSpec::validate`]): then it
/// has no metrics and the reason gives the error.
pub fn judge(cfg: &JudgeConfig, kpis: &[KpiSpec], samples: &[(&[f64], &[f64])]) -> Judgement {
    if let Err(e) = cfg.validate().and_then(|()| kpis.iter().try_for_each(KpiSpec::validate)) {
        return Judgement {
            metrics: Vec::new(),
            score: 0.0,
            pass: false,
            failed_critical: Vec::new(),
            reason: format!("fail: invalid judge config: {e}"),
        };
    }
    let metrics: Vec<MetricVerdict> = kpis.iter().enumerate().map(|(i, kpi)| judge_metric(cfg, kpi, samples.get(i).copied())).collect();

    let (mut with_data, mut passing) = (0.0, 0.0);
    let mut no_data = Vec::new();
    let mut failed = Vec::new();
    for m in &metrics {
        match m.verdict {
            Verdict::Pass => {
                with_data += m.weight;
                passing += m.weight;
            }
            Verdict::Fail => {
                with_data += m.weight;
                failed.push(m.name.as_str());
            }
            Verdict::NoData => no_data.push(m.name.as_str()),
        }
    }
    let failed_critical: Vec<String> =
        metrics.iter().filter(|m| m.critical && m.verdict == Verdict::Fail).map(|m| m.name.clone()).collect();

    if metrics.len() == no_data.len() {
        let reason = if kpis.is_empty() {
            "fail: no data: no KPI to judge".to_string()
        } else {
            format!("fail: no data: none of the {} KPIs had {} finite samples on both sides", kpis.len(), cfg.min_samples)
        };
        return Judgement { metrics, score: 0.0, pass: false, failed_critical, reason };
    }

    let score = 100.0 * passing / with_data;
    let pass = score >= cfg.pass_score && failed_critical.is_empty();
    let mut reason = String::from(if pass { "pass: " } else { "fail: " });
    if !failed_critical.is_empty() {
        let _ = write!(reason, "critical KPI failed: {}; ", failed_critical.join(", "));
    }
    let cmp = if score >= cfg.pass_score { ">=" } else { "<" };
    let _ = write!(reason, "score {score:.1} {cmp} pass score {:.1}", cfg.pass_score);
    let judged = metrics.len() - no_data.len();
    let _ = write!(reason, " ({} of {judged} KPIs with data passed", judged - failed.len());
    if !failed.is_empty() {
        let _ = write!(reason, "; failed: {}", failed.join(", "));
    }
    if !no_data.is_empty() {
        let _ = write!(reason, "; no data: {}", no_data.join(", "));
    }
    reason.push(')');
    Judgement { metrics, score, pass, failed_critical, reason }
}

/// The verdict on one KPI (the config and spec are valid).
fn judge_metric(cfg: &JudgeConfig, kpi: &KpiSpec, pair: Option<(&[f64], &[f64])>) -> MetricVerdict {
    let (baseline, canary) = match pair {
        Some((b, c)) => (sorted_keys(b), sorted_keys(c)),
        None => (Vec::new(), Vec::new()),
    };
    let baseline_median = median(&baseline);
    let canary_median = median(&canary);
    let deviation = match (baseline_median, canary_median) {
        (Some(b), Some(c)) if b != 0.0 => Some((c - b) / b.abs()),
        _ => None,
    };
    let mut v = MetricVerdict {
        name: kpi.name.clone(),
        verdict: Verdict::NoData,
        baseline_n: baseline.len(),
        canary_n: canary.len(),
        baseline_median,
        canary_median,
        p_value: None,
        u: None,
        deviation,
        weight: kpi.weight,
        critical: kpi.critical,
        reason: String::new(),
    };
    let need = cfg.min_samples.max(1);
    let test = if baseline.len() < need || canary.len() < need { None } else { mann_whitney_sorted(&canary, &baseline) };
    let (Some(mw), Some(b), Some(c)) = (test, baseline_median, canary_median) else {
        v.reason = if pair.is_none() {
            "no data: no samples were given for this KPI".to_string()
        } else {
            format!("no data: {} finite baseline and {} finite canary samples, {need} needed on each side", baseline.len(), canary.len())
        };
        return v;
    };
    let (p, worse_by, word) = match kpi.direction {
        Direction::HigherIsWorse => (mw.p_greater, c - b, "higher"),
        Direction::LowerIsWorse => (mw.p_less, b - c, "lower"),
    };
    let allowed = (kpi.tolerance * b.abs()).max(kpi.min_delta);
    let significant = p < cfg.alpha;
    let material = worse_by > allowed;
    v.p_value = Some(p);
    v.u = Some(mw.u);
    v.verdict = if significant && material { Verdict::Fail } else { Verdict::Pass };

    let dev = match deviation {
        Some(d) => format!(" ({:+.1} %)", 100.0 * d),
        None => String::new(),
    };
    let medians = format!("canary median {} vs baseline median {}{dev}", num(c), num(b));
    let allowed_s = format!(
        "the allowed {} (max of {} % of |baseline median| and min_delta {})",
        num(allowed),
        num(100.0 * kpi.tolerance),
        num(kpi.min_delta)
    );
    let test_s = format!("one-sided Mann-Whitney p = {} for canary {word}", sci(p));
    let alpha = num(cfg.alpha);
    v.reason = match (significant, material) {
        (true, true) => {
            format!("fail: {medians}: worse by {}, more than {allowed_s}, and significant ({test_s} < alpha {alpha})", num(worse_by))
        }
        (true, false) => format!("pass: {medians}: significantly {word} ({test_s} < alpha {alpha}) but within {allowed_s}"),
        (false, _) => format!("pass: {medians}: not significantly {word} ({test_s} >= alpha {alpha}); allowed deviation {}", num(allowed)),
    };
    v
}

/// A number for a sentence: up to 6 significant digits, no trailing zeros.
fn num(v: f64) -> String {
    if v == 0.0 || (1e-4..1e6).contains(&v.abs()) {
        let digits = (5 - v.abs().log10().floor().max(-5.0) as i32).clamp(0, 10) as usize;
        let s = format!("{v:.digits$}");
        let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
        if s == "-0" { "0".to_string() } else { s.to_string() }
    } else {
        sci(v)
    }
}

/// A p-value for a sentence: 3 significant digits in scientific notation below 0.001.
fn sci(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) { format!("{v:.3}") } else { format!("{v:.2e}") }
}

/// The order-preserving key of a finite f64 (the order of `f64::total_cmp`): equal values
/// have equal keys once `-0.0` is folded into `0.0`.
fn key(v: f64) -> u64 {
    let bits = (v + 0.0).to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

/// The value of a [`key`].
fn value(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// The keys of the finite values of `v`, sorted (ascending values).
fn sorted_keys(v: &[f64]) -> Vec<u64> {
    let mut keys: Vec<u64> = v.iter().filter(|x| x.is_finite()).map(|&x| key(x)).collect();
    keys.sort_unstable();
    keys
}

/// The median of sorted keys: the middle value, or the mean of the two middle values.
fn median(sorted: &[u64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let hi = value(sorted[n / 2]);
    if n % 2 == 1 {
        return Some(hi);
    }
    let lo = value(sorted[n / 2 - 1]);
    let sum = lo + hi;
    Some(if sum.is_finite() { sum / 2.0 } else { lo / 2.0 + hi / 2.0 })
}

/// [`mann_whitney_u`] on sorted keys: one merge of the two sorted samples gives the rank
/// sum of `x` (average ranks for ties) and the sizes of the groups of tied values.
fn mann_whitney_sorted(x: &[u64], y: &[u64]) -> Option<MannWhitney> {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (mut i, mut j) = (0, 0);
    // Twice the rank sum of x, and sum(t^3 - t), both exact in integers.
    let (mut twice_r1, mut ties) = (0u128, 0u128);
    let mut before = 0u128; // values ranked before the current group
    while i < n1 || j < n2 {
        let k = match (x.get(i), y.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let (i0, j0) = (i, j);
        while i < n1 && x[i] == k {
            i += 1;
        }
        while j < n2 && y[j] == k {
            j += 1;
        }
        let (tx, t) = ((i - i0) as u128, (i - i0 + j - j0) as u128);
        // The group holds ranks before+1 ..= before+t; their average is before + (t+1)/2.
        twice_r1 += tx * (2 * before + t + 1);
        ties += t * t * t - t;
        before += t;
    }
    let (n1u, n2u) = (n1 as u128, n2 as u128);
    let u1 = (twice_r1 - n1u * (n1u + 1)) as f64 / 2.0;
    let u2 = (n1u * n2u) as f64 - u1;
    let n = (n1u + n2u) as f64;
    let mu = (n1u * n2u) as f64 / 2.0;
    let s = ((n1u * n2u) as f64 / 12.0 * ((n + 1.0) - ties as f64 / (n * (n - 1.0)))).sqrt();
    if s.is_nan() || s <= 0.0 {
        // Every value tied: no evidence either way.
        return Some(MannWhitney { u: u1, z: 0.0, p_two_sided: 1.0, p_greater: 1.0, p_less: 1.0, n1, n2 });
    }
    Some(MannWhitney {
        u: u1,
        z: (u1 - mu) / s,
        p_two_sided: (2.0 * norm_sf((u1.max(u2) - mu - 0.5) / s)).min(1.0),
        p_greater: norm_sf((u1 - mu - 0.5) / s),
        p_less: norm_sf((u2 - mu - 0.5) / s),
        n1,
        n2,
    })
}

/// The standard normal survival function `P(Z > z) = erfc(z / sqrt 2) / 2`, accurate in
/// relative terms far into the upper tail (down to about 1e-308, below which it is 0).
fn norm_sf(z: f64) -> f64 {
    0.5 * erfc(z * std::f64::consts::FRAC_1_SQRT_2)
}

/// The complementary error function, by W. J. Cody's rational Chebyshev approximations
/// ("Rational Chebyshev approximations for the error function", Math. Comp. 23, 1969,
/// and his CALERF routine): relative error of the order of 1e-16 over the whole range;
/// 0 beyond x = 26.543, where erfc underflows the normal doubles. The coefficients are
/// Cody's, digit for digit (more digits than a double holds).
#[allow(clippy::excessive_precision)]
fn erfc(x: f64) -> f64 {
    const A: [f64; 5] =
        [3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03, 1.85777706184603153e-1];
    const B: [f64; 4] = [2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03];
    const C: [f64; 9] = [
        5.64188496988670089e-1,
        8.88314979438837594e00,
        6.61191906371416295e01,
        2.98635138197400131e02,
        8.81952221241769090e02,
        1.71204761263407058e03,
        2.05107837782607147e03,
        1.23033935479799725e03,
        2.15311535474403846e-8,
    ];
    const D: [f64; 8] = [
        1.57449261107098347e01,
        1.17693950891312499e02,
        5.37181101862009858e02,
        1.62138957456669019e03,
        3.29079923573345963e03,
        4.36261909014324716e03,
        3.43936767414372164e03,
        1.23033935480374942e03,
    ];
    const P: [f64; 6] = [
        3.05326634961232344e-1,
        3.60344899949804439e-1,
        1.25781726111229246e-1,
        1.60837851487422766e-2,
        6.58749161529837803e-4,
        1.63153871373020978e-2,
    ];
    const Q: [f64; 5] =
        [2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1, 6.05183413124413191e-2, 2.33520497626869185e-3];
    /// 1 / sqrt(pi).
    const SQRPI: f64 = 5.6418958354775628695e-1;
    const THRESH: f64 = 0.46875;
    const XSMALL: f64 = 1.11e-16;
    const XBIG: f64 = 26.543;

    if x.is_nan() {
        return f64::NAN;
    }
    let y = x.abs();
    if y <= THRESH {
        // erfc = 1 - erf, erf(x) = x * A(x^2) / B(x^2).
        let ysq = if y > XSMALL { y * y } else { 0.0 };
        let (mut num, mut den) = (A[4] * ysq, ysq);
        for i in 0..3 {
            num = (num + A[i]) * ysq;
            den = (den + B[i]) * ysq;
        }
        return 1.0 - x * (num + A[3]) / (den + B[3]);
    }
    let tail = if y <= 4.0 {
        let (mut num, mut den) = (C[8] * y, y);
        for i in 0..7 {
            num = (num + C[i]) * y;
            den = (den + D[i]) * y;
        }
        (num + C[7]) / (den + D[7])
    } else if y >= XBIG {
        0.0
    } else {
        let ysq = 1.0 / (y * y);
        let (mut num, mut den) = (P[5] * ysq, ysq);
        for i in 0..4 {
            num = (num + P[i]) * ysq;
            den = (den + Q[i]) * ysq;
        }
        (SQRPI - ysq * (num + P[4]) / (den + Q[4])) / y
    };
    // exp(-y^2) as exp(-ysq^2) exp(-(y - ysq)(y + ysq)) with ysq = y rounded down to 1/16,
    // so ysq^2 is exact and no precision of y^2 is lost in the exponent.
    let ysq = (y * 16.0).trunc() / 16.0;
    let del = (y - ysq) * (y + ysq);
    let r = (-ysq * ysq).exp() * (-del).exp() * tail;
    if x < 0.0 { 2.0 - r } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
        let err = if want == 0.0 { got.abs() } else { ((got - want) / want).abs() };
        assert!(err <= tol, "{what}: got {got:e}, want {want:e}, relative error {err:e} > {tol:e}");
    }

    /// Reference values from scipy 1.17.1 (numpy 2.4.6), for each case `(x, y)` below:
    ///
    /// ```python
    /// from scipy.stats import mannwhitneyu
    /// r = {a: mannwhitneyu(x, y, use_continuity=True, method='asymptotic', alternative=a)
    ///      for a in ("two-sided", "greater", "less")}
    /// print(float(r["greater"].statistic), float(r["two-sided"].pvalue),
    ///       float(r["greater"].pvalue), float(r["less"].pvalue))
    /// ```
    ///
    /// The samples are built by the same expressions in Python and here (noted per case),
    /// so the values are identical.
    struct Reference {
        u: f64,
        p_two_sided: f64,
        p_greater: f64,
        p_less: f64,
    }

    fn check(x: &[f64], y: &[f64], r: Reference) {
        let mw = mann_whitney_u(x, y).expect("both samples have finite values");
        assert_eq!(mw.u, r.u, "U");
        assert_eq!((mw.n1, mw.n2), (x.len(), y.len()));
        assert_rel(mw.p_two_sided, r.p_two_sided, 1e-9, "p two-sided");
        assert_rel(mw.p_greater, r.p_greater, 1e-9, "p greater");
        assert_rel(mw.p_less, r.p_less, 1e-9, "p less");
    }

    #[test]
    fn mann_whitney_small_samples_without_ties_match_scipy() {
        // x = [1.1, 2.3, 3.7, 4.2, 5.9]; y = [0.5, 1.9, 2.8, 3.1, 6.4, 7.2, 8.05]
        let x = [1.1, 2.3, 3.7, 4.2, 5.9];
        let y = [0.5, 1.9, 2.8, 3.1, 6.4, 7.2, 8.05];
        check(&x, &y, Reference { u: 15.0, p_two_sided: 0.7453330673308027, p_greater: 0.6869412600416307, p_less: 0.37266653366540137 });
    }

    #[test]
    fn mann_whitney_with_many_ties_matches_scipy() {
        // x = [1,2,2,3,3,3,4,4,5]; y = [2,2,3,3,4,4,4,5,5,6,6,7]
        let x = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 5.0];
        let y = [2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0, 7.0];
        check(&x, &y, Reference { u: 30.0, p_two_sided: 0.08899588537158763, p_greater: 0.9618930493142996, p_less: 0.044497942685793816 });
    }

    #[test]
    fn mann_whitney_with_unequal_sizes_matches_scipy() {
        // x = [10.5, 11.0, 12.25]; y = [(i*37 % 23)/2 for i in range(40)]
        let x = [10.5, 11.0, 12.25];
        let y: Vec<f64> = (0..40).map(|i| f64::from(i * 37 % 23) / 2.0).collect();
        check(
            &x,
            &y,
            Reference { u: 117.5, p_two_sided: 0.006537569227885425, p_greater: 0.0032687846139427125, p_less: 0.9971733117395949 },
        );
    }

    #[test]
    fn mann_whitney_of_identical_samples_has_two_sided_p_one() {
        // x = y = [1,2,3,4,5,6]
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        check(&x, &x, Reference { u: 18.0, p_two_sided: 1.0, p_greater: 0.532246162773191, p_less: 0.532246162773191 });
        assert_eq!(mann_whitney_u(&x, &x).map(|m| m.z), Some(0.0));
    }

    #[test]
    fn mann_whitney_of_all_tied_values_has_p_one_for_every_alternative() {
        // x = [3,3,3]; y = [3,3]
        check(&[3.0; 3], &[3.0; 2], Reference { u: 3.0, p_two_sided: 1.0, p_greater: 1.0, p_less: 1.0 });
        assert_eq!(mann_whitney_u(&[3.0; 3], &[3.0; 2]).map(|m| m.z), Some(0.0));
    }

    #[test]
    fn mann_whitney_ties_minus_zero_with_zero_like_scipy() {
        // x = [-0.0, 1.0, -2.5]; y = [0.0, -1.0, 3.0, 0.0]
        check(
            &[-0.0, 1.0, -2.5],
            &[0.0, -1.0, 3.0, 0.0],
            Reference { u: 5.0, p_two_sided: 0.8544450676295319, p_greater: 0.7089601740352489, p_less: 0.42722253381476594 },
        );
    }

    #[test]
    fn mann_whitney_of_overlapping_shifted_samples_matches_scipy() {
        // x = [20 + i*0.5 for i in range(60)]; y = [i*0.5 for i in range(70)]
        let x: Vec<f64> = (0..60).map(|i| 20.0 + f64::from(i) * 0.5).collect();
        let y: Vec<f64> = (0..70).map(|i| f64::from(i) * 0.5).collect();
        check(
            &x,
            &y,
            Reference { u: 3750.0, p_two_sided: 1.3216212987572735e-14, p_greater: 6.608106493786367e-15, p_less: 0.9999999999999937 },
        );
    }

    #[test]
    fn mann_whitney_of_a_clearly_greater_sample_keeps_the_relative_accuracy_of_tiny_p() {
        // x = [100 + (i*7 % 13) + i*0.01 for i in range(80)]; y = [(i*11 % 17) for i in range(90)]
        let x: Vec<f64> = (0..80).map(|i| 100.0 + f64::from(i * 7 % 13) + f64::from(i) * 0.01).collect();
        let y: Vec<f64> = (0..90).map(|i| f64::from(i * 11 % 17)).collect();
        check(&x, &y, Reference { u: 7200.0, p_two_sided: 2.5845077669197756e-29, p_greater: 1.2922538834598878e-29, p_less: 1.0 });
        // x = [1000.0 + i for i in range(900)]; y = [float(i) for i in range(900)]
        let x: Vec<f64> = (0..900).map(|i| 1000.0 + f64::from(i)).collect();
        let y: Vec<f64> = (0..900).map(f64::from).collect();
        check(&x, &y, Reference { u: 810000.0, p_two_sided: 2.2453868370761107e-295, p_greater: 1.1226934185380553e-295, p_less: 1.0 });
        // The arguments swapped: the alternatives swap, U becomes n1 n2 - U.
        let mw = mann_whitney_u(&y, &x).expect("finite samples");
        assert_eq!(mw.u, 0.0);
        assert_rel(mw.p_less, 1.1226934185380553e-295, 1e-9, "p less, swapped");
        assert!(mw.z < -36.0, "z {}", mw.z);
    }

    #[test]
    fn mann_whitney_drops_non_finite_values_and_needs_a_finite_value_per_sample() {
        let x = [1.1, f64::NAN, 2.3, 3.7, f64::INFINITY, 4.2, 5.9];
        let y = [0.5, 1.9, f64::NEG_INFINITY, 2.8, 3.1, 6.4, 7.2, 8.05, f64::NAN];
        let clean = mann_whitney_u(&[1.1, 2.3, 3.7, 4.2, 5.9], &[0.5, 1.9, 2.8, 3.1, 6.4, 7.2, 8.05]);
        assert_eq!(mann_whitney_u(&x, &y), clean);
        assert_eq!(clean.map(|m| (m.n1, m.n2)), Some((5, 7)));
        assert_eq!(mann_whitney_u(&[], &[1.0]), None);
        assert_eq!(mann_whitney_u(&[1.0], &[]), None);
        assert_eq!(mann_whitney_u(&[f64::NAN, f64::INFINITY], &[1.0, 2.0]), None);
        assert_eq!(mann_whitney_u(&[1.0, 2.0], &[f64::NAN]), None);
        // One value each is enough.
        let one = mann_whitney_u(&[2.0], &[1.0]).expect("finite");
        assert_eq!(one.u, 1.0);
        assert!(one.p_greater > 0.0 && one.p_greater < 1.0);
    }

    #[test]
    fn erfc_matches_high_precision_values() {
        // mpmath 1.4.1, mp.dps = 40, x the double nearest the literal: float(mpmath.erfc(mpmath.mpf(x)))
        let cases = [
            (-1.5, 1.9661051464753108),
            (0.25, 0.7236736098317631),
            (0.46875, 0.507386526782062),
            (1.5, 0.033894853524689274),
            (3.9, 3.4792248597231765e-08),
            (4.5, 1.9661604415428876e-10),
            (10.0, 2.088487583762545e-45),
            (26.2, 1.643250792438946e-300),
        ];
        for (x, want) in cases {
            assert_rel(erfc(x), want, 1e-14, &format!("erfc({x})"));
        }
        assert_eq!(erfc(0.0), 1.0);
        assert_eq!(erfc(30.0), 0.0);
        assert_eq!(erfc(-30.0), 2.0);
        assert!(erfc(f64::NAN).is_nan());
    }

    // ---- the judge ------------------------------------------------------------------------

    /// Deterministic pseudo-random values in [0, 1) (xorshift64*).
    fn uniform(seed: u64, n: usize) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    /// Latency-like samples: `base` plus a sum of three uniforms times `spread`.
    fn latency(seed: u64, n: usize, base: f64, spread: f64) -> Vec<f64> {
        let u = uniform(seed, 3 * n);
        u.chunks(3).map(|c| base + spread * (c[0] + c[1] + c[2])).collect()
    }

    fn kpi(name: &str, direction: Direction, weight: f64, critical: bool) -> KpiSpec {
        KpiSpec { name: name.to_string(), direction, weight, critical, tolerance: 0.1, min_delta: 0.0 }
    }

    #[test]
    fn identical_distributions_pass() {
        let b = latency(1, 300, 100.0, 10.0);
        let c = latency(2, 300, 100.0, 10.0);
        let e = uniform(3, 300);
        let e2 = uniform(4, 300);
        let kpis = [kpi("latency", Direction::HigherIsWorse, 1.0, true), kpi("throughput", Direction::LowerIsWorse, 1.0, false)];
        let j = judge(&JudgeConfig::default(), &kpis, &[(&b, &c), (&e, &e2)]);
        assert!(j.pass, "{j:#?}");
        assert_eq!(j.score, 100.0);
        assert!(j.failed_critical.is_empty());
        assert!(j.metrics.iter().all(|m| m.verdict == Verdict::Pass));
        assert!(j.metrics.iter().all(|m| m.p_value.is_some_and(|p| p >= 0.05)), "{j:#?}");
        assert_eq!(j.reason, "pass: score 100.0 >= pass score 75.0 (2 of 2 KPIs with data passed)");
        // The same samples on both sides: p well above alpha.
        let same = judge(&JudgeConfig::default(), &kpis[..1], &[(&b, &b)]);
        assert!(same.pass);
        assert_eq!(same.metrics[0].deviation, Some(0.0));
        assert_eq!(same.metrics[0].u, Some(45000.0));
    }

    #[test]
    fn canary_latency_shifted_up_fails() {
        let b = latency(1, 300, 100.0, 10.0);
        let c: Vec<f64> = latency(2, 300, 100.0, 10.0).iter().map(|v| v * 1.3).collect();
        let kpis = [kpi("latency", Direction::HigherIsWorse, 1.0, false)];
        let j = judge(&JudgeConfig::default(), &kpis, &[(&b, &c)]);
        assert!(!j.pass);
        assert_eq!(j.score, 0.0);
        let m = &j.metrics[0];
        assert_eq!(m.verdict, Verdict::Fail);
        assert_eq!((m.baseline_n, m.canary_n), (300, 300));
        assert!(m.p_value.is_some_and(|p| p < 1e-30), "{m:#?}");
        assert!(m.deviation.is_some_and(|d| (d - 0.3).abs() < 0.03), "{m:#?}");
        assert_eq!(
            m.reason,
            "fail: canary median 149.416 vs baseline median 114.998 (+29.9 %): worse by 34.4182, more than the allowed 11.4998 \
             (max of 10 % of |baseline median| and min_delta 0), and significant (one-sided Mann-Whitney p = 5.27e-100 for canary \
             higher < alpha 0.05)"
        );
        assert_eq!(j.reason, "fail: score 0.0 < pass score 75.0 (0 of 1 KPIs with data passed; failed: latency)");
    }

    #[test]
    fn shifted_up_throughput_passes() {
        let b = latency(5, 200, 1000.0, 50.0);
        let c: Vec<f64> = latency(6, 200, 1000.0, 50.0).iter().map(|v| v * 1.3).collect();
        let kpis = [kpi("throughput", Direction::LowerIsWorse, 1.0, true)];
        let j = judge(&JudgeConfig::default(), &kpis, &[(&b, &c)]);
        assert!(j.pass, "{j:#?}");
        let m = &j.metrics[0];
        assert_eq!(m.verdict, Verdict::Pass);
        assert!(m.p_value.is_some_and(|p| p > 0.99), "{m:#?}");
        assert!(m.reason.contains("not significantly lower"), "{}", m.reason);
        // The same shift down fails.
        let down: Vec<f64> = latency(6, 200, 1000.0, 50.0).iter().map(|v| v * 0.7).collect();
        let j = judge(&JudgeConfig::default(), &kpis, &[(&b, &down)]);
        assert!(!j.pass);
        assert_eq!(j.failed_critical, vec!["throughput".to_string()]);
    }

    #[test]
    fn a_significant_shift_within_the_tolerance_passes() {
        let b = latency(1, 2000, 100.0, 10.0);
        let c: Vec<f64> = latency(2, 2000, 100.0, 10.0).iter().map(|v| v + 3.0).collect();
        let mut spec = kpi("latency", Direction::HigherIsWorse, 1.0, true);
        let j = judge(&JudgeConfig::default(), std::slice::from_ref(&spec), &[(&b, &c)]);
        let m = &j.metrics[0];
        assert!(m.p_value.is_some_and(|p| p < 1e-6), "{m:#?}");
        assert_eq!(m.verdict, Verdict::Pass, "{m:#?}");
        assert!(m.reason.contains("significantly higher") && m.reason.contains("but within the allowed"), "{}", m.reason);
        // No relative tolerance, but an absolute floor above the shift: still a pass.
        spec.tolerance = 0.0;
        spec.min_delta = 5.0;
        assert!(judge(&JudgeConfig::default(), std::slice::from_ref(&spec), &[(&b, &c)]).pass);
        // Neither: the shift fails.
        spec.min_delta = 1.0;
        let j = judge(&JudgeConfig::default(), std::slice::from_ref(&spec), &[(&b, &c)]);
        assert_eq!(j.metrics[0].verdict, Verdict::Fail);
    }

    #[test]
    fn a_failing_critical_kpi_fails_the_judgement_alone() {
        let b = latency(1, 100, 100.0, 10.0);
        let same = latency(2, 100, 100.0, 10.0);
        let worse: Vec<f64> = same.iter().map(|v| v * 2.0).collect();
        let kpis = [
            kpi("latency", Direction::HigherIsWorse, 1.0, true),
            kpi("errors", Direction::HigherIsWorse, 10.0, false),
            kpi("cpu", Direction::HigherIsWorse, 10.0, false),
            kpi("throughput", Direction::LowerIsWorse, 10.0, false),
        ];
        let samples: [(&[f64], &[f64]); 4] = [(&b, &worse), (&b, &same), (&b, &same), (&same, &b)];
        let j = judge(&JudgeConfig::default(), &kpis, &samples);
        assert_eq!(j.score, 100.0 * 30.0 / 31.0);
        assert!(j.score >= 75.0);
        assert!(!j.pass);
        assert_eq!(j.failed_critical, vec!["latency".to_string()]);
        assert_eq!(
            j.reason,
            "fail: critical KPI failed: latency; score 96.8 >= pass score 75.0 (3 of 4 KPIs with data passed; failed: latency)"
        );
        // Not critical, the same failure only costs its weight.
        let mut relaxed = kpis.clone();
        relaxed[0].critical = false;
        let j = judge(&JudgeConfig::default(), &relaxed, &samples);
        assert!(j.pass);
        assert!(j.failed_critical.is_empty());
    }

    #[test]
    fn kpis_without_enough_data_are_left_out_of_the_score() {
        let b = latency(1, 100, 100.0, 10.0);
        let c = latency(2, 100, 100.0, 10.0);
        let few = [100.0, 101.0, f64::NAN, 99.0, 102.0, f64::INFINITY];
        let worse: Vec<f64> = c.iter().map(|v| v * 2.0).collect();
        let kpis = [
            kpi("latency", Direction::HigherIsWorse, 1.0, false),
            kpi("errors", Direction::HigherIsWorse, 3.0, false),
            kpi("cpu", Direction::HigherIsWorse, 1.0, false),
            kpi("saturation", Direction::HigherIsWorse, 1.0, true),
        ];
        // "cpu" has 4 finite canary values (5 needed); "saturation" has no sample pair.
        let j = judge(&JudgeConfig::default(), &kpis, &[(&b, &c), (&b, &worse), (&b, &few)]);
        let verdicts: Vec<Verdict> = j.metrics.iter().map(|m| m.verdict).collect();
        assert_eq!(verdicts, [Verdict::Pass, Verdict::Fail, Verdict::NoData, Verdict::NoData]);
        assert_eq!(j.score, 25.0);
        assert!(!j.pass);
        let cpu = &j.metrics[2];
        assert_eq!((cpu.baseline_n, cpu.canary_n), (100, 4));
        assert_eq!(cpu.canary_median, Some(100.5));
        assert_eq!((cpu.p_value, cpu.u), (None, None));
        assert_eq!(cpu.reason, "no data: 100 finite baseline and 4 finite canary samples, 5 needed on each side");
        assert_eq!(j.metrics[3].reason, "no data: no samples were given for this KPI");
        assert_eq!(j.metrics[3].baseline_median, None);
        assert_eq!(j.reason, "fail: score 25.0 < pass score 75.0 (1 of 2 KPIs with data passed; failed: errors; no data: cpu, saturation)");
        // With only the passing KPI and the ones without data, the judgement passes.
        let j = judge(&JudgeConfig::default(), &kpis, &[(&b, &c), (&b, &c), (&b, &few)]);
        assert!(j.pass);
        assert_eq!(j.score, 100.0);
    }

    #[test]
    fn a_judgement_without_data_never_passes() {
        let few = [1.0, 2.0, 3.0];
        let kpis = [kpi("latency", Direction::HigherIsWorse, 1.0, false), kpi("errors", Direction::HigherIsWorse, 1.0, false)];
        let j = judge(&JudgeConfig::default(), &kpis, &[(&few, &few), (&[], &[])]);
        assert!(!j.pass);
        assert_eq!(j.score, 0.0);
        assert!(j.metrics.iter().all(|m| m.verdict == Verdict::NoData));
        assert_eq!(j.reason, "fail: no data: none of the 2 KPIs had 5 finite samples on both sides");
        let j = judge(&JudgeConfig { pass_score: 0.0, ..JudgeConfig::default() }, &[], &[]);
        assert!(!j.pass);
        assert_eq!(j.reason, "fail: no data: no KPI to judge");
    }

    #[test]
    fn non_finite_samples_are_ignored() {
        let b = latency(1, 200, 100.0, 10.0);
        let c: Vec<f64> = latency(2, 200, 100.0, 10.0).iter().map(|v| v * 1.2).collect();
        let mut b_dirty = b.clone();
        let mut c_dirty = c.clone();
        for (i, bad) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -f64::NAN].into_iter().enumerate() {
            b_dirty.insert(i * 37, bad);
            c_dirty.insert(i * 23 + 5, bad);
        }
        let kpis = [kpi("latency", Direction::HigherIsWorse, 1.0, true)];
        let clean = judge(&JudgeConfig::default(), &kpis, &[(&b, &c)]);
        let dirty = judge(&JudgeConfig::default(), &kpis, &[(&b_dirty, &c_dirty)]);
        assert_eq!(clean, dirty);
        assert_eq!((dirty.metrics[0].baseline_n, dirty.metrics[0].canary_n), (200, 200));
        assert_eq!(dirty.metrics[0].verdict, Verdict::Fail);
        // Only NaN on one side: no data, no panic.
        let nan = [f64::NAN; 10];
        let j = judge(&JudgeConfig::default(), &kpis, &[(&b, &nan)]);
        assert_eq!(j.metrics[0].verdict, Verdict::NoData);
        assert_eq!(j.metrics[0].canary_median, None);
        assert!(!j.pass);
    }

    #[test]
    fn a_zero_baseline_median_has_no_relative_deviation() {
        let b = [0.0; 10];
        let c = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let mut spec = kpi("errors", Direction::HigherIsWorse, 1.0, true);
        spec.min_delta = 0.5;
        let j = judge(&JudgeConfig::default(), &[spec], &[(&b, &c)]);
        let m = &j.metrics[0];
        assert_eq!(m.deviation, None);
        assert_eq!((m.baseline_median, m.canary_median), (Some(0.0), Some(1.0)));
        assert_eq!(m.verdict, Verdict::Fail, "{m:#?}");
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(JudgeConfig::default(), JudgeConfig { alpha: 0.05, pass_score: 75.0, min_samples: 5 });
        assert_eq!(JudgeConfig::default().validate(), Ok(()));
        let bad = |c: JudgeConfig| c.validate().expect_err("invalid");
        assert_eq!(bad(JudgeConfig { alpha: 0.0, ..JudgeConfig::default() }), "alpha: must be in (0, 1), got 0");
        assert_eq!(bad(JudgeConfig { alpha: 1.0, ..JudgeConfig::default() }), "alpha: must be in (0, 1), got 1");
        assert_eq!(bad(JudgeConfig { alpha: f64::NAN, ..JudgeConfig::default() }), "alpha: must be in (0, 1), got NaN");
        assert_eq!(bad(JudgeConfig { pass_score: 101.0, ..JudgeConfig::default() }), "pass_score: must be in [0, 100], got 101");
        assert_eq!(bad(JudgeConfig { min_samples: 0, ..JudgeConfig::default() }), "min_samples: must be >= 1, got 0");

        let ok = kpi("latency", Direction::HigherIsWorse, 1.0, false);
        assert_eq!(ok.validate(), Ok(()));
        let bad = |f: fn(&mut KpiSpec)| {
            let mut k = ok.clone();
            f(&mut k);
            k.validate().expect_err("invalid")
        };
        assert_eq!(bad(|k| k.weight = 0.0), "kpi \"latency\" weight: must be finite and > 0, got 0");
        assert_eq!(bad(|k| k.weight = f64::INFINITY), "kpi \"latency\" weight: must be finite and > 0, got inf");
        assert_eq!(bad(|k| k.weight = -1.0), "kpi \"latency\" weight: must be finite and > 0, got -1");
        assert_eq!(bad(|k| k.tolerance = -0.1), "kpi \"latency\" tolerance: must be finite and >= 0, got -0.1");
        assert_eq!(bad(|k| k.min_delta = f64::NAN), "kpi \"latency\" min_delta: must be finite and >= 0, got NaN");
        assert_eq!(bad(|k| k.name = " ".to_string()), "kpi name: must not be empty");

        // The judge refuses an invalid config rather than judging with it.
        let b = latency(1, 50, 100.0, 10.0);
        let j = judge(&JudgeConfig { alpha: 2.0, ..JudgeConfig::default() }, std::slice::from_ref(&ok), &[(&b, &b)]);
        assert!(!j.pass && j.metrics.is_empty());
        assert_eq!(j.reason, "fail: invalid judge config: alpha: must be in (0, 1), got 2");
        let mut zero = ok.clone();
        zero.weight = 0.0;
        let j = judge(&JudgeConfig::default(), &[ok, zero], &[(&b, &b), (&b, &b)]);
        assert_eq!(j.reason, "fail: invalid judge config: kpi \"latency\" weight: must be finite and > 0, got 0");
    }

    #[test]
    fn judgements_serialise_in_snake_case_and_round_trip() {
        let b = latency(1, 50, 100.0, 10.0);
        let kpis = [kpi("latency", Direction::HigherIsWorse, 1.0, true), kpi("rps", Direction::LowerIsWorse, 1.0, false)];
        let j = judge(&JudgeConfig::default(), &kpis, &[(&b, &b), (&b, &[])]);
        let json = serde_json::to_string(&j).expect("serialisable");
        assert!(json.contains(r#""verdict":"pass""#) && json.contains(r#""verdict":"no_data""#), "{json}");
        let back: Judgement = serde_json::from_str(&json).expect("round trip");
        // serde_json may parse a float 1 ulp off; everything else comes back as it was.
        assert_eq!((back.pass, &back.reason, &back.failed_critical), (j.pass, &j.reason, &j.failed_critical));
        for (b, m) in back.metrics.iter().zip(&j.metrics) {
            assert_eq!((&b.name, b.verdict, &b.reason, b.u), (&m.name, m.verdict, &m.reason, m.u));
            assert_rel(b.baseline_median.unwrap_or(0.0), m.baseline_median.unwrap_or(0.0), 1e-15, "median");
        }
        assert_eq!(serde_json::to_string(&Direction::HigherIsWorse).expect("serialisable"), r#""higher_is_worse""#);
        let spec: KpiSpec = serde_json::from_str(
            r#"{"name":"rps","direction":"lower_is_worse","weight":2,"critical":false,"tolerance":0.05,"min_delta":1}"#,
        )
        .expect("a spec");
        assert_eq!(spec.direction, Direction::LowerIsWorse);
        let cfg: JudgeConfig = serde_json::from_str(r#"{"alpha":0.01}"#).expect("a config");
        assert_eq!(cfg, JudgeConfig { alpha: 0.01, ..JudgeConfig::default() });
    }
}
