//! [`HostDetector`]: one streaming detector per metric of a host, combined into one host
//! anomaly score with the metrics that drove it named.
//!
//! Combination rule: the host score is the **largest** recent metric score (recent =
//! scored within `window_ms` before `now`). The maximum keeps scores comparable across
//! hosts whatever their number of metrics (a noisy-OR would make a host with 40 metrics
//! look worse than one with 4 for the same evidence), and each metric score is already a
//! calibrated tail probability. The drivers are the recent metrics scoring at least half
//! the host score, highest first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{DefaultDetector, StreamingDetector, ValidParams};

/// A metric's latest score.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Latest {
    ts: i64,
    score: f64,
}

/// Detectors for every metric of one host. Serialisable as a whole.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostDetector {
    params: ValidParams,
    detectors: BTreeMap<String, DefaultDetector>,
    latest: BTreeMap<String, Latest>,
}

/// A host's combined score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostScore {
    /// Combined anomaly score in [0, 1].
    pub score: f64,
    /// Metrics that drove it, `(metric, score)`, highest first.
    pub drivers: Vec<(String, f64)>,
    /// Metrics with a score inside the window.
    pub metrics_recent: usize,
    /// Metrics the host has ever reported.
    pub metrics_known: usize,
}

impl HostDetector {
    /// A host with no metrics yet; each new metric gets a detector with `params`.
    pub fn new(params: ValidParams) -> Self {
        Self { params, detectors: BTreeMap::new(), latest: BTreeMap::new() }
    }

    /// Feeds one sample of `metric` and returns that metric's score.
    pub fn update(&mut self, metric: &str, ts: i64, value: f64) -> f64 {
        let params = &self.params;
        let d = self.detectors.entry(metric.to_string()).or_insert_with(|| DefaultDetector::new(params.clone()));
        let score = d.update(ts, value);
        if value.is_finite() {
            self.latest.insert(metric.to_string(), Latest { ts, score });
        }
        score
    }

    /// The combined score at `now`, from metric scores with `now - window_ms < ts <= now`.
    pub fn score(&self, now: i64, window_ms: i64) -> HostScore {
        let mut recent: Vec<(String, f64)> = self
            .latest
            .iter()
            .filter(|(_, l)| l.ts <= now && l.ts > now.saturating_sub(window_ms))
            .map(|(m, l)| (m.clone(), l.score))
            .collect();
        recent.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let score = recent.first().map_or(0.0, |(_, s)| *s);
        let metrics_recent = recent.len();
        let drivers = if score > 0.0 { recent.into_iter().filter(|(_, s)| *s >= 0.5 * score).collect() } else { Vec::new() };
        HostScore { score, drivers, metrics_recent, metrics_known: self.detectors.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DetectorParams;

    fn params() -> ValidParams {
        DetectorParams::default().check().expect("defaults are valid")
    }

    fn feed(h: &mut HostDetector, from: i64, to: i64, spike_at: Option<i64>) {
        for i in from..to {
            let ts = i * 60_000;
            h.update("cpu_util", ts, 0.3 + 0.01 * ((i % 7) as f64));
            let mem = if Some(i) == spike_at { 50.0 } else { 0.5 + 0.005 * ((i % 5) as f64) };
            h.update("mem_util", ts, mem);
        }
    }

    #[test]
    fn the_spiking_metric_drives_the_host_score() {
        let mut h = HostDetector::new(params());
        feed(&mut h, 0, 650, None);
        let calm = h.score(649 * 60_000, 60_000);
        assert!(calm.score < 0.5, "{calm:?}");
        assert_eq!(calm.metrics_recent, 2);
        feed(&mut h, 650, 701, Some(700));
        let s = h.score(700 * 60_000, 60_000);
        assert!(s.score > 0.9, "{s:?}");
        assert_eq!(s.drivers.first().map(|d| d.0.as_str()), Some("mem_util"));
        assert_eq!((s.metrics_recent, s.metrics_known), (2, 2));
        let stale = h.score(900 * 60_000, 60_000);
        assert_eq!((stale.score, stale.metrics_recent), (0.0, 0), "nothing recent, nothing scored");
    }

    #[test]
    fn state_round_trips_and_scores_continue_identically() {
        let mut a = HostDetector::new(params());
        feed(&mut a, 0, 400, None);
        let json = serde_json::to_string(&a).expect("serialises");
        let mut b: HostDetector = serde_json::from_str(&json).expect("deserialises");
        feed(&mut a, 400, 701, Some(700));
        feed(&mut b, 400, 701, Some(700));
        let (sa, sb) = (a.score(700 * 60_000, 60_000), b.score(700 * 60_000, 60_000));
        assert!(sa.score > 0.9, "the spike after the restore point is seen: {sa:?}");
        assert_eq!(sa, sb);
    }
}
