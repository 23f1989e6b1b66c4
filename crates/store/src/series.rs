//! The series table both backends share: series ids, per-series admission rules and the
//! bounded in-memory hot windows.

use std::collections::VecDeque;

use foldhash::HashMap;

use harbinger_core::{AppendReport, RejectReason, SampleBatch, SeriesKey, SeriesSamples, TimestampMs};

/// The longest host id or metric name a segment can record (a `u16` length).
pub const MAX_KEY_BYTES: usize = u16::MAX as usize;

/// Bounds on memory and on what is admitted.
///
/// Time bounds are judged against the server's clock (the store's [`harbinger_core::Clock`]),
/// never against the data: one client's clock cannot move them for everyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Samples older than `now - retention_ms` are rejected as too old, and segments wholly
    /// older are deleted. `None` keeps all.
    pub retention_ms: Option<i64>,
    /// Samples later than `now + max_future_ms` are rejected as `future`. `None` admits any.
    pub max_future_ms: Option<i64>,
    /// Host ids longer than this many bytes are rejected (`key_too_long`); at most
    /// [`MAX_KEY_BYTES`].
    pub max_host_bytes: usize,
    /// Metric names (with their labels) longer than this many bytes are rejected
    /// (`key_too_long`); at most [`MAX_KEY_BYTES`].
    pub max_metric_bytes: usize,
    /// The hot window keeps samples with `ts > last - hot_window_ms`...
    pub hot_window_ms: i64,
    /// ...and at most this many per series.
    pub hot_max_points: usize,
    /// At most this many series; samples of further new series are rejected.
    pub max_series: usize,
}

/// Default allowance for samples ahead of the server's clock: 10 minutes.
pub const DEFAULT_MAX_FUTURE_MS: i64 = 10 * 60_000;
/// Default byte limit of a host id.
pub const DEFAULT_MAX_HOST_BYTES: usize = 512;
/// Default byte limit of a metric name with its labels.
pub const DEFAULT_MAX_METRIC_BYTES: usize = 4_096;

impl Limits {
    /// The oldest timestamp still admitted at `now`, if retention is on.
    pub fn horizon(&self, now: TimestampMs) -> Option<TimestampMs> {
        self.retention_ms.map(|r| now.saturating_sub(r))
    }

    /// Whether a key fits the byte limits (and what a segment can record).
    pub fn key_fits(&self, key: &SeriesKey) -> bool {
        key.host.as_str().len() <= self.max_host_bytes.min(MAX_KEY_BYTES)
            && key.metric.as_str().len() <= self.max_metric_bytes.min(MAX_KEY_BYTES)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            retention_ms: None,
            max_future_ms: Some(DEFAULT_MAX_FUTURE_MS),
            max_host_bytes: DEFAULT_MAX_HOST_BYTES,
            max_metric_bytes: DEFAULT_MAX_METRIC_BYTES,
            hot_window_ms: 6 * 3_600_000,
            hot_max_points: 1_024,
            max_series: 1_000_000,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) key: SeriesKey,
    pub(crate) last_ts: Option<TimestampMs>,
    /// Oldest sample still held (in memory or on disk).
    pub(crate) first_ts: Option<TimestampMs>,
    pub(crate) hot: VecDeque<(TimestampMs, f64)>,
}

/// Series ids, last timestamps and hot windows.
#[derive(Debug, Default)]
pub(crate) struct SeriesTable {
    ids: HashMap<SeriesKey, u32>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) newest: Option<TimestampMs>,
    pub(crate) oldest: Option<TimestampMs>,
    pub(crate) limits: Limits,
    pub(crate) hot_samples: u64,
}

impl SeriesTable {
    pub(crate) fn new(limits: Limits) -> Self {
        Self { limits, ..Default::default() }
    }

    pub(crate) fn id(&self, key: &SeriesKey) -> Option<u32> {
        self.ids.get(key).copied()
    }

    /// Registers a series under a known id (recovery). Ids must arrive densely in order.
    pub(crate) fn define(&mut self, id: u32, key: SeriesKey) -> bool {
        if id as usize != self.entries.len() || self.ids.contains_key(&key) {
            return false;
        }
        self.ids.insert(key.clone(), id);
        self.entries.push(Entry { key, last_ts: None, first_ts: None, hot: VecDeque::new() });
        true
    }

    /// Appends accepted samples (strictly increasing, all after `last_ts`) to the hot
    /// window of `id`. Only the tail that can stay in the window is copied.
    fn extend_hot(&mut self, id: u32, ts: &[TimestampMs], vs: &[f64]) {
        let (Some(&first), Some(&last)) = (ts.first(), ts.last()) else { return };
        let limits = self.limits;
        let e = &mut self.entries[id as usize];
        let keep_from = ts.len().saturating_sub(limits.hot_max_points);
        let before = e.hot.len();
        e.hot.extend(ts[keep_from..].iter().copied().zip(vs[keep_from..].iter().copied()));
        let horizon = last.saturating_sub(limits.hot_window_ms);
        while e.hot.len() > limits.hot_max_points || e.hot.front().is_some_and(|(t0, _)| *t0 <= horizon) {
            e.hot.pop_front();
        }
        self.hot_samples = self.hot_samples + e.hot.len() as u64 - before as u64;
        e.last_ts = Some(last);
        e.first_ts.get_or_insert(first);
        self.newest = Some(self.newest.map_or(last, |n| n.max(last)));
        self.oldest = Some(self.oldest.map_or(first, |o| o.min(first)));
    }

    /// Replays stored samples of one series (recovery): only ordering is checked.
    pub(crate) fn restore(&mut self, id: u32, ts: &[TimestampMs], vs: &[f64]) {
        let Some(e) = self.entries.get(id as usize) else { return };
        let skip = e.last_ts.map_or(0, |l| ts.partition_point(|t| *t <= l));
        self.extend_hot(id, &ts[skip..], &vs[skip..]);
    }

    /// Applies the admission rules to a batch at server time `now`. `on_new(id, key)` is
    /// called for each new series before its samples; `on_accept(id, ts, values)` once per
    /// batch entry with accepted samples. A series is only created once one of its samples
    /// is accepted, so refused series never count toward `max_series`.
    pub(crate) fn admit(
        &mut self,
        batch: &SampleBatch,
        now: TimestampMs,
        mut on_new: impl FnMut(u32, &SeriesKey),
        mut on_accept: impl FnMut(u32, &[TimestampMs], &[f64]),
    ) -> AppendReport {
        let mut report = AppendReport::default();
        let mut ts_buf = Vec::new();
        let mut val_buf = Vec::new();
        let horizon = self.limits.horizon(now);
        let latest = self.limits.max_future_ms.map(|f| now.saturating_add(f));
        for (entry, s) in batch.series.iter().enumerate() {
            let whole = |report: &mut AppendReport, reason| {
                for t in &s.timestamps {
                    report.reject(&s.key, *t, reason);
                }
                report.refused_entries.push(entry);
            };
            if s.timestamps.len() != s.values.len() {
                whole(&mut report, RejectReason::Malformed);
                continue;
            }
            if s.is_empty() {
                report.refused_entries.push(entry);
                continue;
            }
            if !self.limits.key_fits(&s.key) {
                whole(&mut report, RejectReason::KeyTooLong);
                continue;
            }
            let existing = self.ids.get(&s.key).copied();
            if existing.is_none() && self.entries.len() >= self.limits.max_series {
                whole(&mut report, RejectReason::SeriesLimit);
                continue;
            }
            ts_buf.clear();
            val_buf.clear();
            let mut last = existing.and_then(|id| self.entries[id as usize].last_ts);
            for (&t, &v) in s.timestamps.iter().zip(&s.values) {
                let reason = if !v.is_finite() {
                    Some(RejectReason::NonFinite)
                } else if latest.is_some_and(|l| t > l) {
                    Some(RejectReason::Future)
                } else if last == Some(t) {
                    Some(RejectReason::Duplicate)
                } else if last.is_some_and(|l| t < l) {
                    Some(RejectReason::OutOfOrder)
                } else if horizon.is_some_and(|h| t < h) {
                    Some(RejectReason::TooOld)
                } else {
                    None
                };
                match reason {
                    Some(r) => report.reject(&s.key, t, r),
                    None => {
                        last = Some(t);
                        ts_buf.push(t);
                        val_buf.push(v);
                    }
                }
            }
            if ts_buf.is_empty() {
                report.refused_entries.push(entry);
                continue;
            }
            let id = match existing {
                Some(id) => id,
                None => {
                    let id = self.entries.len() as u32;
                    self.define(id, s.key.clone());
                    report.new_series += 1;
                    on_new(id, &s.key);
                    id
                }
            };
            self.extend_hot(id, &ts_buf, &val_buf);
            report.accepted += ts_buf.len() as u64;
            on_accept(id, &ts_buf, &val_buf);
        }
        report
    }

    pub(crate) fn recent(&self, key: &SeriesKey) -> Option<SeriesSamples> {
        let id = self.id(key)?;
        let e = &self.entries[id as usize];
        let mut s = SeriesSamples::new(key.clone());
        s.timestamps = e.hot.iter().map(|p| p.0).collect();
        s.values = e.hot.iter().map(|p| p.1).collect();
        Some(s)
    }

    /// Serves `[from, to)` from the hot window when it is known to hold every sample of
    /// that span: the window must reach back to `from`, or hold the series' first sample.
    pub(crate) fn range_from_hot(&self, id: u32, from: TimestampMs, to: TimestampMs) -> Option<SeriesSamples> {
        let e = &self.entries[id as usize];
        let front = e.hot.front().map(|p| p.0);
        let complete = match (front, e.first_ts) {
            (None, _) => true,
            (Some(f), Some(first)) if f == first => true,
            (Some(f), _) => f <= from,
        };
        if !complete {
            return None;
        }
        let mut s = SeriesSamples::new(e.key.clone());
        for &(t, v) in e.hot.iter().filter(|(t, _)| *t >= from && *t < to) {
            s.push(t, v);
        }
        Some(s)
    }

    /// Forgets first timestamps older than `horizon` (segments holding them were deleted).
    pub(crate) fn forget_before(&mut self, horizon: TimestampMs) {
        for e in &mut self.entries {
            if e.first_ts.is_some_and(|f| f < horizon) {
                e.first_ts = e.hot.front().map(|p| p.0).filter(|f| *f >= horizon).or(Some(horizon));
            }
        }
        self.oldest = self.oldest.map(|o| o.max(horizon));
    }

    pub(crate) fn keys(&self) -> Vec<SeriesKey> {
        let mut k: Vec<_> = self.entries.iter().map(|e| e.key.clone()).collect();
        k.sort();
        k
    }
}
