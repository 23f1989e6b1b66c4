//! Samples in columnar batches, and what a store reports when it accepts them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{SeriesKey, TimestampMs};

/// The samples of one series, in columns. Timestamps should be strictly increasing;
/// a store rejects (and counts) the ones that are not.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesSamples {
    /// Which series.
    pub key: SeriesKey,
    /// Sample times, ms since epoch.
    pub timestamps: Vec<TimestampMs>,
    /// Sample values, one per timestamp.
    pub values: Vec<f64>,
}

impl SeriesSamples {
    /// An empty column pair for `key`.
    pub fn new(key: SeriesKey) -> Self {
        Self { key, timestamps: Vec::new(), values: Vec::new() }
    }
    /// Appends one sample.
    pub fn push(&mut self, ts: TimestampMs, value: f64) {
        self.timestamps.push(ts);
        self.values.push(value);
    }
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }
    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }
}

/// A batch of samples across series: the unit of appending to a [`crate::MetricStore`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleBatch {
    /// One entry per series. The same key may appear more than once; entries are applied in order.
    pub series: Vec<SeriesSamples>,
}

impl SampleBatch {
    /// Total number of samples in the batch.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(SeriesSamples::len).sum()
    }
}

/// Why a sample was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Same timestamp as a sample already stored for the series.
    Duplicate,
    /// Older than the newest sample already stored for the series.
    OutOfOrder,
    /// NaN or infinite value (a Prometheus staleness marker counts here too).
    NonFinite,
    /// The store already holds its configured maximum number of series.
    SeriesLimit,
    /// Older than the retention horizon (the server's clock minus the retention): it would
    /// be deleted at once.
    TooOld,
    /// Timestamps and values columns have different lengths.
    Malformed,
    /// Further ahead of the server's clock than the configured allowance (a client whose
    /// clock runs ahead). Never moves retention.
    Future,
    /// The host id or metric name is longer than its configured byte limit.
    KeyTooLong,
}

impl RejectReason {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [RejectReason; 8] = [
        Self::Duplicate,
        Self::OutOfOrder,
        Self::NonFinite,
        Self::SeriesLimit,
        Self::TooOld,
        Self::Malformed,
        Self::Future,
        Self::KeyTooLong,
    ];

    /// Stable snake_case name, used as the `reason` label in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::OutOfOrder => "out_of_order",
            Self::NonFinite => "non_finite",
            Self::SeriesLimit => "series_limit",
            Self::TooOld => "too_old",
            Self::Malformed => "malformed",
            Self::Future => "future",
            Self::KeyTooLong => "key_too_long",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first rejected sample of a batch, so an error message can name it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// Series of the rejected sample.
    pub key: SeriesKey,
    /// Its timestamp.
    pub timestamp: TimestampMs,
    /// Why.
    pub reason: RejectReason,
}

/// What happened to a batch: accepted samples are durable up to the store's sync policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppendReport {
    /// Samples stored.
    pub accepted: u64,
    /// Samples not stored, by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// The first rejection, for error messages.
    pub first_rejection: Option<Rejection>,
    /// Series seen for the first time in this batch.
    pub new_series: u64,
    /// Positions (in the batch) of entries of which no sample was stored: callers must not
    /// feed them onward (the live scorer would grow state for series the store refused).
    #[serde(skip)]
    pub refused_entries: Vec<usize>,
}

impl AppendReport {
    /// Total samples rejected.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
    /// Keeps only the entries of `batch` (the batch this report is about) of which the
    /// store kept something.
    pub fn retain_stored(&self, batch: &mut SampleBatch) {
        if self.refused_entries.is_empty() {
            return;
        }
        let mut refused = self.refused_entries.iter().copied().peekable();
        let mut i = 0;
        batch.series.retain(|_| {
            let keep = refused.next_if_eq(&i).is_none();
            i += 1;
            keep
        });
    }

    /// Records one rejection.
    pub fn reject(&mut self, key: &SeriesKey, timestamp: TimestampMs, reason: RejectReason) {
        *self.rejected.entry(reason).or_default() += 1;
        if self.first_rejection.is_none() {
            self.first_rejection = Some(Rejection { key: key.clone(), timestamp, reason });
        }
    }
    /// Adds another report into this one.
    pub fn merge(&mut self, other: AppendReport) {
        self.accepted += other.accepted;
        self.new_series += other.new_series;
        self.refused_entries.extend(other.refused_entries);
        for (r, n) in other.rejected {
            *self.rejected.entry(r).or_default() += n;
        }
        if self.first_rejection.is_none() {
            self.first_rejection = other.first_rejection;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_and_keeps_first_rejection() {
        let k = SeriesKey::new("h1", "m");
        let mut r = AppendReport { accepted: 3, ..Default::default() };
        r.reject(&k, 5, RejectReason::Duplicate);
        r.reject(&k, 4, RejectReason::OutOfOrder);
        let mut other = AppendReport { accepted: 2, new_series: 1, ..Default::default() };
        other.reject(&k, 9, RejectReason::Duplicate);
        r.merge(other);
        assert_eq!(r.accepted, 5);
        assert_eq!(r.new_series, 1);
        assert_eq!(r.rejected_total(), 3);
        assert_eq!(r.rejected[&RejectReason::Duplicate], 2);
        assert_eq!(r.first_rejection.map(|x| x.timestamp), Some(5));
    }

    #[test]
    fn retain_stored_drops_only_the_refused_entries() {
        let e = |h: &str| SeriesSamples { key: SeriesKey::new(h, "m"), timestamps: vec![1], values: vec![1.0] };
        let mut b = SampleBatch { series: vec![e("a"), e("b"), e("a"), e("c")] };
        let r = AppendReport { refused_entries: vec![0, 3], ..Default::default() };
        r.retain_stored(&mut b);
        let hosts: Vec<&str> = b.series.iter().map(|s| s.key.host.as_str()).collect();
        assert_eq!(hosts, ["b", "a"], "by position: the second entry of a stays");
    }

    #[test]
    fn reason_names_are_stable() {
        let names: Vec<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["duplicate", "out_of_order", "non_finite", "series_limit", "too_old", "malformed", "future", "key_too_long"]);
    }
}
