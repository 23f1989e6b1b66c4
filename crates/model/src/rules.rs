//! The Prometheus-style alerting-rules baseline that the failure forecaster is compared with.
//!
//! A hand-written rule set of the kind an SRE puts in front of a fleet: static thresholds
//! on the standard metrics, and `predict_linear` on memory and disk. It runs over a dataset
//! on the same virtual clock as [`crate::eval::evaluate`] and yields the same
//! [`Alert`] values, so [`crate::eval::summarize`] and [`crate::eval::write_output`] score it by the
//! same contract rule.
//!
//! # Semantics (as Prometheus evaluates rules)
//! - Every `tick` (1 minute by default, Prometheus' `evaluation_interval`) each rule is
//!   evaluated for each host.
//! - A threshold rule reads the instant value of its metric: the latest sample in
//!   `(t − 5 min, t]` (Prometheus' default lookback delta). A NaN sample is a missing
//!   sample, so the lookback may reach past it to an earlier one.
//! - A `predict_linear` rule fits a least-squares line through the samples of
//!   `(t − range, t]` (range selectors are left-open, as in Prometheus 3) and extrapolates
//!   it `horizon` past `t`; fewer than two samples give no result.
//! - No data is no result: the rule does not fire, and a pending `for` timer is reset,
//!   exactly like a condition that turned false.
//! - `for`: the condition must be true at every evaluation from `t0` to `t0 + for`; the
//!   rule fires at `t0 + for` (with 1-minute evaluations and `for: 5m`, six consecutive
//!   evaluations).
//! - A host is in the alerting state while any rule fires, and for `keep_firing_for`
//!   (30 min by default, Prometheus' `keep_firing_for`) after the last one stopped; this
//!   mirrors how the model's own alert clears, and keeps a flapping rule from counting as
//!   many alerts. An [`Alert`] is the moment a host enters the alerting state; its score is
//!   1 (rules have no graded risk).
//!
//! # Default thresholds
//! The values are those an SRE writes without looking at failure labels: the conventional
//! "90 % full" limits, `cpu_util > 0.95`, a CPU-package temperature of 85 °C, and for the two
//! metrics without a conventional limit an order of magnitude above their normal level in
//! the synthetic fleet (`net_latency_ms` median 1.7 ms, 99.9th percentile 4.8 ms over all
//! hosts of `datasets/fleet-sample`; `error_rate` median 0.19/s, 99.9th percentile 2.5/s):
//! `net_latency_ms > 20` and `error_rate > 5`. `load1` is left out (its limit depends on
//! the core count) and so is `disk_io_wait`. Rules whose metric a dataset lacks are
//! skipped. A TOML file replaces the whole set (`prometheus-rules.example.toml` at the
//! repository root holds the defaults in that form).

use std::collections::HashMap;

use harbinger_core::{HostId, SeriesSamples, TimestampMs};
use harbinger_dataset::Dataset;
use rayon::prelude::*;
use serde::Deserialize;

use crate::eval::{Alert, EvalError, EvalOutput, summarize_within};
use crate::runner::data_span;

/// Prometheus' default lookback delta for instant vector selectors.
pub const LOOKBACK_MS: i64 = 5 * 60_000;

/// Which way a rule compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Comparison {
    /// `expr > value`.
    Above(f64),
    /// `expr < value`.
    Below(f64),
}

impl Comparison {
    fn holds(self, v: f64) -> bool {
        match self {
            Comparison::Above(x) => v > x,
            Comparison::Below(x) => v < x,
        }
    }
}

/// The expression of a rule over one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleExpr {
    /// The instant value: `metric`.
    Instant,
    /// `predict_linear(metric[range], horizon)`.
    PredictLinear {
        /// Range of the selector, ms.
        range_ms: i64,
        /// How far past the evaluation time to extrapolate, ms.
        horizon_ms: i64,
    },
}

/// One checked alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The alert name (`HostOutOfMemory`).
    pub alert: String,
    /// The metric it reads.
    pub metric: String,
    /// What it computes from the metric.
    pub expr: RuleExpr,
    /// The condition on that value.
    pub cmp: Comparison,
    /// How long the condition must hold before the rule fires, ms.
    pub for_ms: i64,
}

impl Rule {
    /// A threshold rule `metric > value` with `for`.
    pub fn above(alert: &str, metric: &str, value: f64, for_ms: i64) -> Self {
        Rule { alert: alert.into(), metric: metric.into(), expr: RuleExpr::Instant, cmp: Comparison::Above(value), for_ms }
    }

    /// `predict_linear(metric[range], horizon) > value` with `for`.
    pub fn predict_above(alert: &str, metric: &str, range_ms: i64, horizon_ms: i64, value: f64, for_ms: i64) -> Self {
        Rule {
            alert: alert.into(),
            metric: metric.into(),
            expr: RuleExpr::PredictLinear { range_ms, horizon_ms },
            cmp: Comparison::Above(value),
            for_ms,
        }
    }

    /// The rule in PromQL-like form, for reports: `predict_linear(mem_util[1h], 14400) > 1 for 5m`.
    pub fn describe(&self) -> String {
        let e = match self.expr {
            RuleExpr::Instant => self.metric.clone(),
            RuleExpr::PredictLinear { range_ms, horizon_ms } => {
                format!("predict_linear({}[{}], {})", self.metric, dur(range_ms), horizon_ms / 1000)
            }
        };
        let c = match self.cmp {
            Comparison::Above(x) => format!("> {x}"),
            Comparison::Below(x) => format!("< {x}"),
        };
        format!("{e} {c} for {}", dur(self.for_ms))
    }

    /// The rule's value at `t` over `s` (samples sorted by time), or `None` without data.
    pub fn value_at(&self, s: &SeriesSamples, t: TimestampMs) -> Option<f64> {
        self.value_within(s, t, LOOKBACK_MS)
    }

    /// [`Rule::value_at`] with an instant selector looking back `lookback_ms`.
    pub fn value_within(&self, s: &SeriesSamples, t: TimestampMs, lookback_ms: i64) -> Option<f64> {
        match self.expr {
            RuleExpr::Instant => instant_value(s, t, lookback_ms),
            RuleExpr::PredictLinear { range_ms, horizon_ms } => predict_linear(s, t, range_ms, horizon_ms),
        }
    }
}

fn dur(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))).to_string()
}

/// A checked rule set.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    /// The rules.
    pub rules: Vec<Rule>,
    /// A host stays in the alerting state this long after its last firing rule stopped, ms.
    pub keep_firing_for_ms: i64,
    /// How far back an instant selector looks for the latest sample, ms (Prometheus'
    /// lookback delta, 5 min; longer for data sampled less often, e.g. daily).
    pub lookback_ms: i64,
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

impl Default for RuleSet {
    /// The default rules for the standard metric names (see the module docs for why these
    /// values).
    fn default() -> Self {
        let f = 5 * MIN;
        RuleSet {
            rules: vec![
                Rule::above("HostHighCpu", "cpu_util", 0.95, f),
                Rule::above("HostOutOfMemory", "mem_util", 0.90, f),
                Rule::above("HostOutOfDiskSpace", "disk_util", 0.90, f),
                Rule::above("HostOverTemperature", "temperature_c", 85.0, f),
                Rule::above("HostHighErrorRate", "error_rate", 5.0, f),
                Rule::above("HostHighNetworkLatency", "net_latency_ms", 20.0, f),
                Rule::predict_above("HostMemoryWillFillIn4Hours", "mem_util", HOUR, 4 * HOUR, 1.0, f),
                Rule::predict_above("HostDiskWillFillIn24Hours", "disk_util", 6 * HOUR, 24 * HOUR, 1.0, f),
            ],
            keep_firing_for_ms: 30 * MIN,
            lookback_ms: LOOKBACK_MS,
        }
    }
}

/// Why a rule file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not TOML, or not the expected shape.
    #[error("not a valid rule file: {0}")]
    Parse(#[from] toml::de::Error),
    /// A rule with an invalid field.
    #[error("rule {index} ({alert:?}): `{field}` {reason}")]
    Invalid {
        /// 1-based position in the file.
        index: usize,
        /// Its alert name.
        alert: String,
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A top-level field is invalid.
    #[error("`{field}` {reason}")]
    Top {
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A rule file as written (TOML); see `prometheus-rules.example.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleSet {
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    lookback: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    alert: String,
    metric: String,
    #[serde(default)]
    above: Option<f64>,
    #[serde(default)]
    below: Option<f64>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    predict_linear: Option<RawPredict>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPredict {
    range: String,
    horizon: String,
}

fn parse_ms(s: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 5m or 6h ({e})"))?;
    i64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too long"))
}

impl RuleSet {
    /// Parses and checks a rule file. The file replaces the defaults entirely.
    ///
    /// # Errors
    /// [`RulesError`] naming the rule and field at fault.
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        let raw: RawRuleSet = toml::from_str(text)?;
        let keep_firing_for_ms = match &raw.keep_firing_for {
            Some(s) => parse_ms(s).map_err(|reason| RulesError::Top { field: "keep_firing_for", reason })?,
            None => RuleSet::default().keep_firing_for_ms,
        };
        let lookback_ms = match &raw.lookback {
            Some(s) => match parse_ms(s) {
                Ok(v) if v > 0 => v,
                Ok(_) => return Err(RulesError::Top { field: "lookback", reason: "must be longer than zero".into() }),
                Err(reason) => return Err(RulesError::Top { field: "lookback", reason }),
            },
            None => LOOKBACK_MS,
        };
        if raw.rules.is_empty() {
            return Err(RulesError::Top { field: "rules", reason: "is empty: give at least one [[rules]] table".into() });
        }
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (i, r) in raw.rules.into_iter().enumerate() {
            let bad = |field: &'static str, reason: String| RulesError::Invalid { index: i + 1, alert: r.alert.clone(), field, reason };
            if r.alert.trim().is_empty() {
                return Err(bad("alert", "is empty".into()));
            }
            if r.metric.trim().is_empty() {
                return Err(bad("metric", "is empty".into()));
            }
            let cmp = match (r.above, r.below) {
                (Some(x), None) if x.is_finite() => Comparison::Above(x),
                (None, Some(x)) if x.is_finite() => Comparison::Below(x),
                (Some(_), None) => return Err(bad("above", "must be a finite number".into())),
                (None, Some(_)) => return Err(bad("below", "must be a finite number".into())),
                _ => return Err(bad("above", "give exactly one of `above` and `below`".into())),
            };
            let for_ms = match &r.for_ {
                Some(s) => parse_ms(s).map_err(|e| bad("for", e))?,
                None => 5 * MIN,
            };
            let expr = match &r.predict_linear {
                None => RuleExpr::Instant,
                Some(p) => {
                    let range_ms = parse_ms(&p.range).map_err(|e| bad("predict_linear.range", e))?;
                    let horizon_ms = parse_ms(&p.horizon).map_err(|e| bad("predict_linear.horizon", e))?;
                    if range_ms <= 0 {
                        return Err(bad("predict_linear.range", "must be longer than zero".into()));
                    }
                    RuleExpr::PredictLinear { range_ms, horizon_ms }
                }
            };
            rules.push(Rule { alert: r.alert, metric: r.metric, expr, cmp, for_ms });
        }
        Ok(RuleSet { rules, keep_firing_for_ms, lookback_ms })
    }
}

/// The latest finite sample in `(t − lookback, t]`.
pub fn instant_value(s: &SeriesSamples, t: TimestampMs, lookback_ms: i64) -> Option<f64> {
    let end = s.timestamps.partition_point(|&x| x <= t);
    let lo = t.saturating_sub(lookback_ms);
    s.timestamps[..end].iter().zip(&s.values[..end]).rev().take_while(|(ts, _)| **ts > lo).find(|(_, v)| v.is_finite()).map(|(_, v)| *v)
}

/// `predict_linear(s[range], horizon)` at `t`: the least-squares line through the finite
/// samples of `(t − range, t]`, evaluated at `t + horizon`. `None` with fewer than two
/// samples (or all at one time). As in Prometheus, the intercept is taken at `t`.
pub fn predict_linear(s: &SeriesSamples, t: TimestampMs, range_ms: i64, horizon_ms: i64) -> Option<f64> {
    let end = s.timestamps.partition_point(|&x| x <= t);
    let lo = t.saturating_sub(range_ms);
    let start = s.timestamps[..end].partition_point(|&x| x <= lo);
    let pts = || {
        s.timestamps[start..end]
            .iter()
            .zip(&s.values[start..end])
            .filter(|(_, v)| v.is_finite())
            .map(|(&ts, &v)| ((ts - t) as f64 / 1000.0, v))
    };
    // Two passes (means, then centred sums): exact enough at any epoch.
    let (mut n, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for (x, y) in pts() {
        n += 1.0;
        sx += x;
        sy += y;
    }
    if n < 2.0 {
        return None;
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (x, y) in pts() {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let at_t = my - slope * mx;
    Some(at_t + slope * (horizon_ms as f64 / 1000.0))
}

/// The `for` state of one rule on one host.
#[derive(Debug, Clone, Copy, Default)]
struct RuleState {
    /// When the condition became true (Prometheus' `ActiveAt`), while it stays true.
    pending_since: Option<TimestampMs>,
}

impl RuleState {
    /// Feeds the condition at `t` (`None`: no data); returns whether the rule fires.
    fn step(&mut self, t: TimestampMs, cond: Option<bool>, for_ms: i64) -> bool {
        if cond == Some(true) {
            let since = *self.pending_since.get_or_insert(t);
            t - since >= for_ms
        } else {
            self.pending_since = None;
            false
        }
    }
}

/// The alerting state of one host over all rules.
#[derive(Debug, Clone)]
pub struct HostRules<'a> {
    rules: &'a RuleSet,
    states: Vec<RuleState>,
    last_firing: Option<TimestampMs>,
    alerting: bool,
}

impl<'a> HostRules<'a> {
    /// A host with no rule pending.
    pub fn new(rules: &'a RuleSet) -> Self {
        HostRules { rules, states: vec![RuleState::default(); rules.rules.len()], last_firing: None, alerting: false }
    }

    /// Evaluates every rule at `t`; `series[i]` is the data of rule `i`'s metric on this
    /// host (`None` when absent). Returns the indices of the firing rules when the host
    /// enters the alerting state at `t`, else `None`.
    pub fn step(&mut self, t: TimestampMs, series: &[Option<&SeriesSamples>]) -> Option<Vec<usize>> {
        let mut firing = Vec::new();
        for (i, (rule, st)) in self.rules.rules.iter().zip(&mut self.states).enumerate() {
            let cond =
                series.get(i).copied().flatten().and_then(|s| rule.value_within(s, t, self.rules.lookback_ms)).map(|v| rule.cmp.holds(v));
            if st.step(t, cond, rule.for_ms) {
                firing.push(i);
            }
        }
        if !firing.is_empty() {
            self.last_firing = Some(t);
            if !self.alerting {
                self.alerting = true;
                return Some(firing);
            }
        } else if self.alerting && self.last_firing.is_none_or(|l| t - l >= self.rules.keep_firing_for_ms) {
            self.alerting = false;
        }
        None
    }

    /// Whether the host is in the alerting state.
    pub fn alerting(&self) -> bool {
        self.alerting
    }
}

/// Rules-baseline evaluation settings.
#[derive(Debug, Clone, Copy)]
pub struct RulesOptions {
    /// Evaluation interval of the virtual clock.
    pub tick_ms: i64,
    /// Warning window the alerts are scored in (the contract's 6 h by default).
    pub warning_ms: i64,
}

impl Default for RulesOptions {
    fn default() -> Self {
        RulesOptions { tick_ms: 60_000, warning_ms: crate::eval::WARNING_MS }
    }
}

/// The output of a rules-baseline run.
#[derive(Debug, Clone)]
pub struct RulesOutput {
    /// Alerts and summary, as the model's evaluation gives them (`scores` counts
    /// host-evaluations).
    pub eval: EvalOutput,
    /// The rules that ran, with how many host alerts each one started (several rules can
    /// start the same alert).
    pub started_by: Vec<(Rule, usize)>,
    /// Rules skipped because no host has their metric.
    pub skipped: Vec<Rule>,
}

/// Runs the rule set over the dataset on the virtual clock and scores its alerts by the
/// contract rule. Hosts are those of `hosts.csv` plus any that only appear in the metrics,
/// as in [`crate::eval::evaluate`].
///
/// # Errors
/// [`EvalError::NoData`] for a dataset without samples.
pub fn evaluate_rules(
    ds: &Dataset,
    rules: &RuleSet,
    opts: RulesOptions,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<RulesOutput, EvalError> {
    let (start, end) = data_span(ds).ok_or(EvalError::NoData)?;
    let mut hosts: Vec<HostId> = Vec::new();
    let mut index: HashMap<&HostId, usize> = HashMap::new();
    for h in ds.hosts.iter().map(|h| &h.host).chain(ds.metrics.iter().map(|s| &s.key.host)) {
        index.entry(h).or_insert_with(|| {
            hosts.push(h.clone());
            hosts.len() - 1
        });
    }
    // The series of each (host, metric); the first one wins if a dataset repeats a key.
    let mut by_key: HashMap<(usize, &str), &SeriesSamples> = HashMap::new();
    for s in &ds.metrics {
        if let Some(&h) = index.get(&s.key.host) {
            by_key.entry((h, s.key.metric.as_str())).or_insert(s);
        }
    }
    let (active, skipped): (Vec<Rule>, Vec<Rule>) = rules.rules.iter().cloned().partition(|r| by_key.keys().any(|(_, m)| *m == r.metric));
    let set = RuleSet { rules: active, keep_firing_for_ms: rules.keep_firing_for_ms, lookback_ms: rules.lookback_ms };
    let tick = opts.tick_ms.max(1);
    let first = start.div_euclid(tick) * tick + tick;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let per_host: Vec<Vec<(TimestampMs, usize, Vec<usize>)>> = (0..hosts.len())
        .into_par_iter()
        .map(|h| {
            let series: Vec<Option<&SeriesSamples>> = set.rules.iter().map(|r| by_key.get(&(h, r.metric.as_str())).copied()).collect();
            let mut state = HostRules::new(&set);
            let mut out = Vec::new();
            let mut t = first;
            while t <= end {
                if let Some(f) = state.step(t, &series) {
                    out.push((t, h, f));
                }
                t += tick;
            }
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n as f64 / hosts.len().max(1) as f64);
            out
        })
        .collect();
    let mut entries: Vec<(TimestampMs, usize, Vec<usize>)> = per_host.into_iter().flatten().collect();
    entries.sort_by_key(|(t, h, _)| (*t, *h));
    let mut counts = vec![0usize; set.rules.len()];
    let alerts: Vec<Alert> = entries
        .into_iter()
        .map(|(t, h, f)| {
            for i in f {
                counts[i] += 1;
            }
            Alert { host: hosts[h].clone(), timestamp: t, score: 1.0 }
        })
        .collect();
    let ticks = if end >= first { (end - first) / tick + 1 } else { 0 };
    let scores = u64::try_from(ticks).unwrap_or(0) * hosts.len() as u64;
    let summary = summarize_within(&alerts, &ds.failures, hosts.len(), (start, end), opts.warning_ms.max(1));
    Ok(RulesOutput {
        eval: EvalOutput { alerts, summary, scores, trace: Vec::new() },
        started_by: set.rules.into_iter().zip(counts).collect(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbinger_core::{Failure, SeriesKey};

    const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % MIN;

    /// A series of one sample a minute from `T0`, value `f(minute)`.
    fn series(metric: &str, minutes: i64, f: impl Fn(i64) -> f64) -> SeriesSamples {
        let mut s = SeriesSamples::new(SeriesKey::new("h1", metric));
        for m in 0..minutes {
            s.push(T0 + m * MIN, f(m));
        }
        s
    }

    fn dataset(series: Vec<SeriesSamples>) -> Dataset {
        Dataset { metrics: series, ..Dataset::default() }
    }

    fn run(series: Vec<SeriesSamples>) -> RulesOutput {
        evaluate_rules(&dataset(series), &RuleSet::default(), RulesOptions::default(), &|_| {}).expect("has data")
    }

    /// CPU at 0.5 except 0.99 (above the 0.95 threshold) for minutes `from..from + len`.
    /// (`cpu_util` has no `predict_linear` rule, which would react to the jump too.)
    fn spike(from: i64, len: i64) -> SeriesSamples {
        series("cpu_util", 120, move |m| if (from..from + len).contains(&m) { 0.99 } else { 0.5 })
    }

    #[test]
    fn a_threshold_held_4_minutes_does_not_fire_and_5_minutes_does() {
        // Above at minutes 10..=14: true at 5 evaluations, held 4 minutes.
        let out = run(vec![spike(10, 5)]);
        assert!(out.eval.alerts.is_empty(), "{:?}", out.eval.alerts);
        // Above at minutes 10..=15: held 5 minutes, fires at minute 15.
        let out = run(vec![spike(10, 6)]);
        assert_eq!(out.eval.alerts.len(), 1);
        assert_eq!(out.eval.alerts[0].timestamp, T0 + 15 * MIN);
        assert_eq!(out.eval.alerts[0].host.as_str(), "h1");
        let started: Vec<(&str, usize)> = out.started_by.iter().map(|(r, n)| (r.alert.as_str(), *n)).collect();
        assert_eq!(started, vec![("HostHighCpu", 1)]);
        // Only cpu_util is present: every other default rule is skipped.
        assert_eq!(out.skipped.len(), 7);
    }

    #[test]
    fn a_dip_resets_the_for_timer() {
        // Above for 4 minutes, one sample below, above for 4 minutes again: never 5 in a row.
        let s = series("cpu_util", 60, |m| if (10..14).contains(&m) || (15..19).contains(&m) { 0.99 } else { 0.4 });
        assert!(run(vec![s]).eval.alerts.is_empty());
    }

    #[test]
    fn predict_linear_fires_on_a_ramp_reaching_1_within_4_hours_not_on_a_flat_high_series() {
        // 0.5 rising to 1.0 over 3 hours: the 1-hour fit reaches 1 long before t + 4 h.
        let ramp = series("mem_util", 3 * 60, |m| 0.5 + 0.5 * m as f64 / 180.0);
        let out = run(vec![ramp.clone()]);
        assert!(!out.eval.alerts.is_empty());
        let first = out.eval.alerts[0].timestamp;
        // Slope 1/360 per minute: at minute m the 4-h prediction is 0.5 + (m + 240)/360 > 1
        // from m > -60, i.e. as soon as two samples exist (minute 1); the `for` makes it minute 6.
        assert_eq!(first, T0 + 6 * MIN);
        let rules = &out.started_by;
        let by = |name: &str| rules.iter().find(|(r, _)| r.alert == name).map(|(_, n)| *n);
        assert_eq!(by("HostMemoryWillFillIn4Hours"), Some(1));
        assert_eq!(by("HostOutOfMemory"), Some(0));
        // Flat at 0.85: high, but not growing, and below the static 0.90.
        let flat = series("mem_util", 6 * 60, |_| 0.85);
        assert!(run(vec![flat]).eval.alerts.is_empty());
        // A slow ramp that would take days to reach 1 does not fire either.
        let slow = series("mem_util", 6 * 60, |m| 0.5 + 0.0001 * m as f64);
        assert!(run(vec![slow]).eval.alerts.is_empty());
    }

    #[test]
    fn predict_linear_matches_the_least_squares_line() {
        // y = 0.2 + 0.001 x (x in seconds from T0), exact: prediction at T0 + 600 s + 1000 s.
        let mut s = SeriesSamples::new(SeriesKey::new("h", "m"));
        for i in 0..=10 {
            s.push(T0 + i * MIN, 0.2 + 0.001 * (i * 60) as f64);
        }
        let p = predict_linear(&s, T0 + 10 * MIN, HOUR, 1_000_000).expect("11 samples");
        assert!((p - (0.2 + 0.001 * 1600.0)).abs() < 1e-9, "{p}");
        // The range is left-open: a 1-minute range at T0 + 10 min holds one sample only.
        assert_eq!(predict_linear(&s, T0 + 10 * MIN, MIN, 0), None);
        assert!(predict_linear(&s, T0 + 10 * MIN, MIN + 1, 0).is_some());
    }

    #[test]
    fn missing_data_does_not_fire_and_never_panics() {
        // Only NaN samples: no data, no alert.
        let nan = series("cpu_util", 60, |_| f64::NAN);
        assert!(run(vec![nan.clone()]).eval.alerts.is_empty());
        assert_eq!(instant_value(&nan, T0 + 30 * MIN, LOOKBACK_MS), None);
        assert_eq!(predict_linear(&nan, T0 + 30 * MIN, HOUR, HOUR), None);
        // High values, but samples only every 10 minutes: the lookback (5 min) leaves gaps
        // without data, which reset `for`, so it never holds 5 minutes.
        let mut sparse = SeriesSamples::new(SeriesKey::new("h1", "cpu_util"));
        for m in (0..120).step_by(10) {
            sparse.push(T0 + m * MIN, 0.99);
        }
        assert!(run(vec![sparse]).eval.alerts.is_empty());
        // One missing sample inside a high stretch: the lookback bridges it, the rule fires.
        let holed = series("cpu_util", 60, |m| {
            if m == 12 {
                f64::NAN
            } else if (10..20).contains(&m) {
                0.99
            } else {
                0.1
            }
        });
        assert_eq!(run(vec![holed]).eval.alerts.len(), 1);
        // Empty series and an empty dataset.
        let empty = SeriesSamples::new(SeriesKey::new("h1", "cpu_util"));
        assert_eq!(instant_value(&empty, T0, LOOKBACK_MS), None);
        assert!(matches!(
            evaluate_rules(&dataset(vec![empty]), &RuleSet::default(), RulesOptions::default(), &|_| {}),
            Err(EvalError::NoData)
        ));
    }

    #[test]
    fn the_host_clears_30_minutes_after_the_last_firing_rule() {
        // Two 10-minute spikes 20 minutes apart (fires at 15 and again 35..39): one alert.
        let close = series("temperature_c", 200, |m| if (10..20).contains(&m) || (30..40).contains(&m) { 90.0 } else { 50.0 });
        let out = run(vec![close]);
        assert_eq!(out.eval.alerts.iter().map(|a| a.timestamp).collect::<Vec<_>>(), vec![T0 + 15 * MIN]);
        // The same spikes 60 minutes apart: the host cleared in between, two alerts.
        let far = series("temperature_c", 200, |m| if (10..20).contains(&m) || (80..90).contains(&m) { 90.0 } else { 50.0 });
        let out = run(vec![far]);
        assert_eq!(out.eval.alerts.iter().map(|a| a.timestamp).collect::<Vec<_>>(), vec![T0 + 15 * MIN, T0 + 85 * MIN]);
        // State machine directly: last firing at minute 19; still alerting at 48, clear at 49.
        let set = RuleSet::default();
        let s = series("temperature_c", 100, |m| if (10..20).contains(&m) { 90.0 } else { 50.0 });
        let mut series_of: Vec<Option<&SeriesSamples>> = vec![None; set.rules.len()];
        series_of[3] = Some(&s);
        let mut h = HostRules::new(&set);
        let mut entered = Vec::new();
        let mut alerting_at = Vec::new();
        for m in 1..100 {
            if h.step(T0 + m * MIN, &series_of).is_some() {
                entered.push(m);
            }
            alerting_at.push((m, h.alerting()));
        }
        assert_eq!(entered, vec![15]);
        assert!(alerting_at.contains(&(48, true)) && alerting_at.contains(&(49, false)), "{alerting_at:?}");
    }

    #[test]
    fn alerts_are_scored_by_the_contract_rule() {
        // Fires at minute 15; a failure 2 h later is predicted with a 105-minute lead.
        let mut ds = dataset(vec![spike(10, 6)]);
        ds.failures = vec![Failure { host: HostId::new("h1"), timestamp: T0 + 120 * MIN, kind: "oom".into() }];
        let out = evaluate_rules(&ds, &RuleSet::default(), RulesOptions::default(), &|_| {}).expect("data");
        let s = &out.eval.summary;
        assert_eq!((s.alerts, s.predicted, s.false_alarms), (1, 1, 0));
        assert_eq!(s.lead_time_median_min, Some(105.0));
        assert_eq!(out.eval.scores, 119, "one host, minutes 1..=119");
    }

    #[test]
    fn the_example_rule_file_is_the_default_set() {
        let text = include_str!("../../../prometheus-rules.example.toml");
        assert_eq!(RuleSet::from_toml(text).expect("the example parses"), RuleSet::default());
        let d = RuleSet::default();
        assert_eq!(d.rules[6].describe(), "predict_linear(mem_util[1h], 14400) > 1 for 5m");
    }

    #[test]
    fn bad_rule_files_name_the_rule_and_field() {
        let err = |t: &str| RuleSet::from_toml(t).expect_err("invalid").to_string();
        let e = err("[[rules]]\nalert = \"A\"\nmetric = \"cpu_util\"\nabove = 1\nbelow = 0\n");
        assert!(e.contains("rule 1") && e.contains("\"A\"") && e.contains("exactly one"), "{e}");
        let e = err("[[rules]]\nalert = \"B\"\nmetric = \"m\"\nabove = 1\nfor = \"soon\"\n");
        assert!(e.contains("`for`") && e.contains("soon"), "{e}");
        let e = err("[[rules]]\nalert = \"C\"\nmetric = \"m\"\nabove = 1\npredict_linear = { range = \"0s\", horizon = \"1h\" }\n");
        assert!(e.contains("predict_linear.range"), "{e}");
        let e = err("[[rules]]\nalert = \"D\"\nmetric = \"m\"\nabove = 1\nthreshold = 3\n");
        assert!(e.contains("threshold"), "unknown fields are refused: {e}");
        let e = err("keep_firing_for = \"30m\"\n");
        assert!(e.contains("`rules`"), "{e}");
        let e = err("keep_firing_for = \"long\"\n[[rules]]\nalert = \"E\"\nmetric = \"m\"\nbelow = 1\n");
        assert!(e.contains("keep_firing_for"), "{e}");
        // A valid custom file: `below` rules and defaults for `for` and `keep_firing_for`.
        let r = RuleSet::from_toml("[[rules]]\nalert = \"LowMem\"\nmetric = \"mem_free\"\nbelow = 0.1\n").expect("valid");
        assert_eq!(r.rules[0].cmp, Comparison::Below(0.1));
        assert_eq!((r.rules[0].for_ms, r.keep_firing_for_ms, r.lookback_ms), (5 * MIN, 30 * MIN, LOOKBACK_MS));
        // A longer lookback for daily data.
        let daily = RuleSet::from_toml("lookback = \"2d\"\n[[rules]]\nalert = \"S\"\nmetric = \"smart_5\"\nabove = 0\nfor = \"0s\"\n")
            .expect("valid");
        assert_eq!(daily.lookback_ms, 2 * 24 * HOUR);
        assert!(err("lookback = \"0s\"\n[[rules]]\nalert = \"S\"\nmetric = \"m\"\nabove = 0\n").contains("lookback"));
    }
}
