//! Evaluation: run the online pipeline over a dataset on a virtual clock and score the
//! alerts against `failures.csv` by the contract's rule.
//!
//! A failure at `ts` is predicted when its host entered the alerting state inside
//! `[ts − 6 h, ts − 1 min]`; lead time is `ts` minus the first such alert. An alert with
//! no failure of its host in the following 6 h is a false alarm.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use harbinger_core::{Failure, HostId, HostTransition, TimestampMs, TransitionKind};
use harbinger_dataset::Dataset;
use serde::{Deserialize, Serialize};

use crate::model::{AlertState, Model};
use crate::runner::{FleetRun, criticality, data_span};
use crate::step::{Observation, risk_step};

/// The contract's warning window before a failure.
pub const WARNING_MS: i64 = 6 * 3_600_000;
/// Alerts later than this before the failure do not count.
pub const MIN_LEAD_MS: i64 = 60_000;

/// One row of `alerts.csv`: a host entering the alerting state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Host.
    pub host: HostId,
    /// When it entered the alerting state.
    pub timestamp: TimestampMs,
    /// Risk at that moment.
    pub score: f64,
}

/// Recall of one failure kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindRecall {
    /// Failures of this kind.
    pub failures: usize,
    /// Predicted ones.
    pub predicted: usize,
    /// predicted / failures.
    pub recall: f64,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Hosts evaluated.
    pub hosts: usize,
    /// Host-days covered (hosts × span in days).
    pub host_days: f64,
    /// Alerts raised.
    pub alerts: usize,
    /// Alerts with no failure of the host in the following 6 h.
    pub false_alarms: usize,
    /// Failures in `failures.csv` within the evaluated span.
    pub failures: usize,
    /// Failures with an alert in their warning window.
    pub predicted: usize,
    /// predicted / failures (`null` without failures).
    pub recall: Option<f64>,
    /// Recall over failures of kinds other than `sudden` (those give no warning by design).
    pub recall_predictable: Option<f64>,
    /// (alerts − false alarms) / alerts (`null` without alerts).
    pub precision: Option<f64>,
    /// False alarms per host-day.
    pub false_alarms_per_host_day: f64,
    /// Lead time of predicted failures, minutes: median, 10th and 90th percentile.
    pub lead_time_median_min: Option<f64>,
    /// 10th percentile.
    pub lead_time_p10_min: Option<f64>,
    /// 90th percentile.
    pub lead_time_p90_min: Option<f64>,
    /// Recall per failure kind.
    pub recall_by_kind: BTreeMap<String, KindRecall>,
    /// Model version, when a model produced the alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Scores alerts against failures by the contract's rule. `span` bounds the failures
/// counted (those outside the evaluated time are ignored).
pub fn summarize(alerts: &[Alert], failures: &[Failure], hosts: usize, span: (TimestampMs, TimestampMs)) -> Summary {
    summarize_within(alerts, failures, hosts, span, WARNING_MS)
}

/// [`summarize`] with a warning window of `warning_ms` instead of the contract's 6 h (for
/// models of a longer horizon: a 14-day drive-failure model is scored on 14 days).
pub fn summarize_within(
    alerts: &[Alert],
    failures: &[Failure],
    hosts: usize,
    span: (TimestampMs, TimestampMs),
    warning_ms: i64,
) -> Summary {
    let mut by_host: HashMap<&HostId, Vec<TimestampMs>> = HashMap::new();
    for a in alerts {
        by_host.entry(&a.host).or_default().push(a.timestamp);
    }
    for v in by_host.values_mut() {
        v.sort_unstable();
    }
    let mut fail_by_host: HashMap<&HostId, Vec<TimestampMs>> = HashMap::new();
    let counted: Vec<&Failure> = failures.iter().filter(|f| f.timestamp >= span.0 && f.timestamp <= span.1 + warning_ms).collect();
    for f in &counted {
        fail_by_host.entry(&f.host).or_default().push(f.timestamp);
    }
    let mut false_alarms = 0;
    for a in alerts {
        let hit = fail_by_host.get(&a.host).is_some_and(|fs| fs.iter().any(|&t| t > a.timestamp && t - a.timestamp <= warning_ms));
        if !hit {
            false_alarms += 1;
        }
    }
    let mut predicted = 0;
    let mut predictable = (0, 0);
    let mut leads = Vec::new();
    let mut kinds: BTreeMap<String, KindRecall> = BTreeMap::new();
    for f in &counted {
        let first = by_host
            .get(&f.host)
            .and_then(|ts| ts.iter().copied().find(|&t| t >= f.timestamp - warning_ms && t <= f.timestamp - MIN_LEAD_MS));
        let k = kinds.entry(f.kind.clone()).or_insert(KindRecall { failures: 0, predicted: 0, recall: 0.0 });
        k.failures += 1;
        if f.kind != "sudden" {
            predictable.1 += 1;
        }
        if let Some(t) = first {
            predicted += 1;
            k.predicted += 1;
            if f.kind != "sudden" {
                predictable.0 += 1;
            }
            leads.push((f.timestamp - t) as f64 / 60_000.0);
        }
    }
    for k in kinds.values_mut() {
        k.recall = k.predicted as f64 / k.failures as f64;
    }
    leads.sort_by(f64::total_cmp);
    let host_days = hosts as f64 * ((span.1 - span.0).max(0) as f64 / 86_400_000.0);
    Summary {
        hosts,
        host_days,
        alerts: alerts.len(),
        false_alarms,
        failures: counted.len(),
        predicted,
        recall: ratio(predicted, counted.len()),
        recall_predictable: ratio(predictable.0, predictable.1),
        precision: ratio(alerts.len() - false_alarms, alerts.len()),
        false_alarms_per_host_day: if host_days > 0.0 { false_alarms as f64 / host_days } else { 0.0 },
        lead_time_median_min: quantile(&leads, 0.5),
        lead_time_p10_min: quantile(&leads, 0.1),
        lead_time_p90_min: quantile(&leads, 0.9),
        recall_by_kind: kinds,
        model_version: None,
    }
}

/// Evaluation settings.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    /// Scoring cadence of the virtual clock.
    pub tick_ms: i64,
    /// Override of the model's alert threshold.
    pub alert_threshold: Option<f64>,
    /// Override of the model's clear threshold.
    pub clear_threshold: Option<f64>,
    /// Record every host's assessment at this cadence (multiple of the tick) in
    /// [`EvalOutput::trace`]; `None` records nothing.
    pub trace_every_ms: Option<i64>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { tick_ms: 60_000, alert_threshold: None, clear_threshold: None, trace_every_ms: None }
    }
}

/// One row of `trace.csv`: a host's assessment at a moment of the virtual clock.
#[derive(Debug, Clone, PartialEq)]
pub struct TracePoint {
    /// Host.
    pub host: HostId,
    /// Virtual time.
    pub timestamp: TimestampMs,
    /// Calibrated failure probability within the horizon.
    pub probability: f64,
    /// Anomaly score.
    pub anomaly: f64,
    /// Risk (probability, anomaly and criticality combined).
    pub risk: f64,
    /// Share of the model's metrics present and warm.
    pub confidence: f64,
    /// Whether the host is in the alerting state after this step.
    pub alerting: bool,
}

/// The output of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalOutput {
    /// Alerts in time order.
    pub alerts: Vec<Alert>,
    /// The summary (failure figures only when the dataset has failures).
    pub summary: Summary,
    /// Host-scores computed.
    pub scores: u64,
    /// Assessments recorded at `trace_every_ms` (empty unless asked for).
    pub trace: Vec<TracePoint>,
}

/// Why an evaluation cannot run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// No metric samples.
    #[error("the dataset has no metric samples")]
    NoData,
    /// Writing output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// Runs the model over the dataset, minute by minute (`opts.tick_ms`), and scores it.
///
/// # Errors
/// [`EvalError::NoData`] for a dataset without samples.
pub fn evaluate(ds: &Dataset, model: &Model, opts: EvalOptions, progress: &(dyn Fn(f64) + Sync)) -> Result<EvalOutput, EvalError> {
    evaluate_ticks(ds, model, opts, progress, &mut |_| {})
}

/// What one tick of an evaluation left: the alert-state transitions, and every host's
/// risk, probability and alert state (in `hosts` order; 0 for a silent host).
#[derive(Debug)]
pub struct EvalTick<'a> {
    /// The tick's virtual time.
    pub now: TimestampMs,
    /// Transitions of this tick, in host order.
    pub transitions: &'a [HostTransition],
    /// Host ids.
    pub hosts: &'a [HostId],
    /// Risk per host.
    pub risk: &'a [f64],
    /// Failure probability per host.
    pub probability: &'a [f64],
    /// How soon the failure is expected, per host ([`crate::model::Assessment::imminence`]; 1 when
    /// silent).
    pub imminence: &'a [f64],
    /// Alerting per host.
    pub alerting: &'a [bool],
}

/// [`evaluate`], calling `on_tick` after every tick with what the risk step left, so the
/// planner can be driven on the same virtual clock (`harbinger eval` writes
/// `decisions.jsonl` this way).
///
/// # Errors
/// [`EvalError::NoData`] for a dataset without samples.
pub fn evaluate_ticks(
    ds: &Dataset,
    model: &Model,
    opts: EvalOptions,
    progress: &(dyn Fn(f64) + Sync),
    on_tick: &mut dyn FnMut(&EvalTick<'_>),
) -> Result<EvalOutput, EvalError> {
    let (start, end) = data_span(ds).ok_or(EvalError::NoData)?;
    let policy = model.policy.with_thresholds(opts.alert_threshold, opts.clear_threshold);
    let crit = criticality(ds);
    let tick = opts.tick_ms.max(1);
    let mut run = FleetRun::new(ds, &model.schema, tick);
    let crits: Vec<u8> = run.hosts.iter().map(|h| crit.get(h).copied().unwrap_or(0)).collect();
    let mut states = vec![AlertState::default(); run.hosts.len()];
    let mut alerts = Vec::new();
    let mut scores = 0u64;
    let mut t = start.div_euclid(tick) * tick + tick;
    let mut row = vec![0.0; model.schema.len()];
    let mut trace = Vec::new();
    let n = run.hosts.len();
    let (mut risks, mut probs, mut transitions) = (vec![0.0; n], vec![0.0; n], Vec::new());
    let mut imminence = vec![1.0; n];
    while t <= end {
        run.step(t);
        transitions.clear();
        let tracing = opts.trace_every_ms.is_some_and(|every| every > 0 && t.rem_euclid(every) == 0);
        for (i, st) in states.iter_mut().enumerate() {
            let assessed = run.row(i).map(|r| {
                row.copy_from_slice(r);
                model.assess(&mut row, false)
            });
            let obs = assessed.as_ref().map(Observation::from);
            imminence[i] = assessed.as_ref().map_or(1.0, crate::model::Assessment::imminence);
            let step = risk_step(st, obs.as_ref(), crits[i], t, &policy);
            risks[i] = step.risk.unwrap_or(0.0);
            probs[i] = obs.map_or(0.0, |o| o.probability);
            if let Some(kind) = step.transition {
                transitions.push(HostTransition { host: run.hosts[i].clone(), at: t, kind, risk: risks[i], failure_probability: probs[i] });
            }
            let (Some(risk), Some(obs)) = (step.risk, obs) else { continue };
            scores += 1;
            if step.transition == Some(TransitionKind::Entered) {
                alerts.push(Alert { host: run.hosts[i].clone(), timestamp: t, score: risk });
            }
            if tracing {
                trace.push(TracePoint {
                    host: run.hosts[i].clone(),
                    timestamp: t,
                    probability: obs.probability,
                    anomaly: obs.anomaly,
                    risk,
                    confidence: obs.confidence,
                    alerting: st.alerting,
                });
            }
        }
        let alerting: Vec<bool> = states.iter().map(|s| s.alerting).collect();
        on_tick(&EvalTick {
            now: t,
            transitions: &transitions,
            hosts: &run.hosts,
            risk: &risks,
            probability: &probs,
            imminence: &imminence,
            alerting: &alerting,
        });
        progress((t - start) as f64 / (end - start).max(1) as f64);
        t += tick;
    }
    let mut summary = summarize_within(&alerts, &ds.failures, run.hosts.len(), (start, end), model.schema.scales.warning_ms);
    summary.model_version = Some(model.version.clone());
    Ok(EvalOutput { alerts, summary, scores, trace })
}

/// Writes `alerts.csv`, `summary.json` and, when the evaluation recorded one,
/// `trace.csv` into `dir` (created).
///
/// # Errors
/// [`EvalError::Io`] naming the file.
pub fn write_output(dir: &Path, out: &EvalOutput) -> Result<(), EvalError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EvalError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let p = dir.join("alerts.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&p).map_err(io(&p))?);
    writeln!(w, "host,timestamp,score").map_err(io(&p))?;
    for a in &out.alerts {
        writeln!(w, "{},{},{:.6}", a.host, a.timestamp, a.score).map_err(io(&p))?;
    }
    w.flush().map_err(io(&p))?;
    let p = dir.join("summary.json");
    let text = serde_json::to_string_pretty(&out.summary).map_err(|e| EvalError::Io { path: p.clone(), source: e.into() })?;
    std::fs::write(&p, text + "\n").map_err(io(&p))?;
    if !out.trace.is_empty() {
        let p = dir.join("trace.csv");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&p).map_err(io(&p))?);
        writeln!(w, "host,timestamp,probability,anomaly,risk,confidence,alerting").map_err(io(&p))?;
        for r in &out.trace {
            writeln!(
                w,
                "{},{},{:.6},{:.6},{:.6},{:.4},{}",
                r.host,
                r.timestamp,
                r.probability,
                r.anomaly,
                r.risk,
                r.confidence,
                u8::from(r.alerting)
            )
            .map_err(io(&p))?;
        }
        w.flush().map_err(io(&p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(host: &str, ts: i64, kind: &str) -> Failure {
        Failure { host: HostId::new(host), timestamp: ts, kind: kind.into() }
    }

    fn a(host: &str, ts: i64) -> Alert {
        Alert { host: HostId::new(host), timestamp: ts, score: 0.9 }
    }

    #[test]
    fn the_contract_rule_by_hand() {
        let h = 3_600_000;
        let failures = [f("h1", 10 * h, "oom"), f("h2", 10 * h, "sudden"), f("h3", 20 * h, "disk_full")];
        let alerts = [
            a("h1", 10 * h - 2 * h),  // predicts h1, lead 120 min
            a("h1", 10 * h - 30_000), // too late for the window, but a failure follows: not false
            a("h3", 20 * h - 7 * h),  // too early: false alarm, does not predict
            a("h4", 5 * h),           // false alarm
        ];
        let s = summarize(&alerts, &failures, 4, (0, 24 * h));
        assert_eq!(s.failures, 3);
        assert_eq!(s.predicted, 1);
        assert_eq!(s.false_alarms, 2);
        assert_eq!(s.precision, Some(0.5));
        assert_eq!(s.recall_predictable, Some(0.5));
        assert!((s.recall.unwrap_or(0.0) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.lead_time_median_min, Some(120.0));
        assert_eq!(s.host_days, 4.0);
        assert_eq!(s.false_alarms_per_host_day, 0.5);
        assert_eq!(s.recall_by_kind["sudden"].predicted, 0);
        assert_eq!(s.recall_by_kind["oom"].recall, 1.0);
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [10.0, 20.0, 30.0, 40.0, 50.0];
        assert_eq!(quantile(&v, 0.5), Some(30.0));
        assert_eq!(quantile(&v, 0.1), Some(14.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
