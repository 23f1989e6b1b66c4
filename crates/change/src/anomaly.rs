//! Baselines of normal operations, and flags for changes that leave them.
//!
//! From a stack's change log ([`AppliedChange`]s) a [`Baseline`] learns, per stack, what
//! its changes usually look like: which paths of which resources they touch, how many
//! leaves they change and remove, at what hours (UTC) and how often they come. A new
//! update stack is then checked against it ([`Baseline::flag`]) and every way it departs
//! from the usual becomes an [`Anomaly`] with a human-readable reason that carries the
//! numbers. Thresholds live in [`BaselineConfig`].
//!
//! # Rules (defaults)
//! - **Warm-up**: a stack needs [`BaselineConfig::min_history`] (3) earlier changes
//!   before anything is flagged; [`Baseline::is_warm`] and [`Baseline::history_len`] let
//!   callers say "no baseline yet: 2 of 3 changes".
//! - **New path** ([`AnomalyKind::NewPath`]): an op on a resource the stack changed
//!   before, whose path was never changed and whose parent object was never changed
//!   either (a parent counts as changed when an earlier path is at it or under it). Each
//!   new subtree is named once, at its top-most new prefix, however many leaves of the
//!   change lie under it.
//!   Top-level keys have the resource root as parent, which never counts, so a new
//!   top-level key is new. Resources new to the stack are not flagged.
//! - **Large deletion**: removed leaves (a removed object counts its leaves) > max(5,
//!   3 × the most ever removed by one change, median + 5 × MAD of removals per change).
//! - **Large change**: leaf ops > max(10, 3 × the largest change seen, median + 5 × MAD).
//! - **Unusual hour**: with at least 20 earlier changes, the hour (UTC) of `now` held
//!   fewer than 2% of them.
//! - **High rate**: changes in the 24 h up to `now`, this one included, > max(3, 3 × the
//!   mean changes per day over the history's span, a span of at least one day).
//!
//! MAD is the raw median absolute deviation (not scaled to a standard deviation).

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{AppliedChange, Op, UpdateOp};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The thresholds of [`Baseline::flag`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineConfig {
    /// Earlier changes a stack needs before anything is flagged (3).
    pub min_history: usize,
    /// Removed leaves up to this are never a large deletion (5).
    pub deletion_floor: usize,
    /// A deletion is large above this many times the most removed by one earlier
    /// change (3).
    pub deletion_max_factor: f64,
    /// Ops up to this are never a large change (10).
    pub change_floor: usize,
    /// A change is large above this many times the largest earlier change (3).
    pub change_max_factor: f64,
    /// MADs above the median that a deletion or change must also exceed (5).
    pub mad_k: f64,
    /// Earlier changes needed before the hour of day is judged (20).
    pub hour_min_history: usize,
    /// An hour is unusual when it held less than this share of earlier changes (0.02).
    pub hour_min_share: f64,
    /// Changes in 24 h up to this are never a high rate (3).
    pub rate_floor: usize,
    /// The rate is high above this many times the mean changes per day (3).
    pub rate_factor: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            min_history: 3,
            deletion_floor: 5,
            deletion_max_factor: 3.0,
            change_floor: 10,
            change_max_factor: 3.0,
            mad_k: 5.0,
            hour_min_history: 20,
            hour_min_share: 0.02,
            rate_floor: 3,
            rate_factor: 3.0,
        }
    }
}

/// The spread of a per-change count.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Median absolute deviation from the median (unscaled).
    pub mad: f64,
    /// Largest.
    pub max: usize,
    /// Mean.
    pub mean: f64,
}

impl Spread {
    fn of(values: &[usize]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let xs: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        let median = median(&xs);
        let dev: Vec<f64> = xs.iter().map(|x| (x - median).abs()).collect();
        Self { median, mad: median_of(dev), max: values.iter().copied().max().unwrap_or(0), mean: xs.iter().sum::<f64>() / xs.len() as f64 }
    }

    /// The count above which a value is flagged: max(floor, factor × max, median + k × MAD).
    fn threshold(&self, floor: usize, factor: f64, k: f64) -> f64 {
        (floor as f64).max(factor * self.max as f64).max(self.median + k * self.mad)
    }
}

fn median(xs: &[f64]) -> f64 {
    median_of(xs.to_vec())
}

fn median_of(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

/// What one stack's changes usually look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackBaseline {
    /// Changes learned from.
    pub changes: usize,
    /// The first change's time, ms since epoch.
    pub first_ts_ms: i64,
    /// The last change's time, ms since epoch.
    pub last_ts_ms: i64,
    /// Exact paths changed (array indices and last segment kept), by resource.
    pub paths: BTreeMap<String, BTreeSet<String>>,
    /// Proper parent prefixes of the changed paths (the resource root excluded), by
    /// resource.
    pub prefixes: BTreeMap<String, BTreeSet<String>>,
    /// Ops per change.
    pub ops_per_change: Spread,
    /// Removed leaves per change (a removed object counts its leaves).
    pub removals_per_change: Spread,
    /// Changes by hour of day, UTC.
    pub hours: [usize; 24],
    /// Mean changes per day over the span from first to last change (at least one day).
    pub daily_rate: f64,
    /// Every change's time, ascending (for the rate over the last 24 h).
    pub timestamps: Vec<i64>,
}

impl StackBaseline {
    fn known(&self, resource: &str, path: &str) -> bool {
        self.paths.get(resource).is_some_and(|p| p.contains(path)) || self.prefixes.get(resource).is_some_and(|p| p.contains(path))
    }
}

/// Baselines of every stack in a change log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The thresholds.
    pub config: BaselineConfig,
    /// By stack.
    pub stacks: BTreeMap<String, StackBaseline>,
}

/// Ways a change departs from its stack's baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A path (subtree) of a known resource that no earlier change touched.
    NewPath,
    /// Far more removals than usual.
    LargeDeletion,
    /// Far more ops than usual.
    LargeChange,
    /// An hour of day (UTC) at which changes are rare.
    UnusualHour,
    /// More changes in 24 h than usual.
    HighRate,
}

impl AnomalyKind {
    /// `new_path`, `large_deletion`, `large_change`, `unusual_hour`, `high_rate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewPath => "new_path",
            Self::LargeDeletion => "large_deletion",
            Self::LargeChange => "large_change",
            Self::UnusualHour => "unusual_hour",
            Self::HighRate => "high_rate",
        }
    }
}

/// One way a change is unusual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// What is unusual.
    pub kind: AnomalyKind,
    /// The resource, where one applies.
    pub resource: Option<String>,
    /// The path (for [`AnomalyKind::NewPath`]: the top-most new prefix).
    pub path: Option<String>,
    /// Why, with the numbers.
    pub reason: String,
    /// The first op of the update stack concerned, where one applies.
    pub op_index: Option<usize>,
}

/// Proper non-root prefixes of a JSON pointer, shortest first: `/a/b/c` → `/a`, `/a/b`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices().filter(|&(i, c)| c == '/' && i > 0).map(move |(i, _)| &path[..i])
}

/// Leaves of a value: an object or array counts its leaves, an empty one or a scalar 1.
fn leaves(v: &Value) -> usize {
    let n = match v {
        Value::Object(m) => m.values().map(leaves).sum(),
        Value::Array(a) => a.iter().map(leaves).sum(),
        _ => 1,
    };
    n.max(1)
}

/// Removed leaves of an update stack.
fn removals(ops: &[UpdateOp]) -> usize {
    ops.iter().filter(|o| o.op == Op::Remove).map(|o| leaves(&o.from)).sum()
}

fn hour_of(ts_ms: i64) -> usize {
    // rem_euclid keeps pre-1970 times in 0..24; the cast cannot truncate.
    (ts_ms.rem_euclid(DAY_MS) / HOUR_MS) as usize
}

fn learn_stack(changes: &[&AppliedChange]) -> StackBaseline {
    let mut paths: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut prefixes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut hours = [0usize; 24];
    let mut timestamps: Vec<i64> = changes.iter().map(|c| c.ts_ms).collect();
    timestamps.sort_unstable();
    for c in changes {
        for op in &c.ops {
            paths.entry(op.resource.clone()).or_default().insert(op.path.clone());
            let pre = prefixes.entry(op.resource.clone()).or_default();
            for a in ancestors(&op.path) {
                pre.insert(a.to_string());
            }
        }
        if let Some(h) = hours.get_mut(hour_of(c.ts_ms)) {
            *h += 1;
        }
    }
    let (first, last) = (timestamps.first().copied().unwrap_or(0), timestamps.last().copied().unwrap_or(0));
    let span_days = ((last - first) as f64 / DAY_MS as f64).max(1.0);
    StackBaseline {
        changes: changes.len(),
        first_ts_ms: first,
        last_ts_ms: last,
        paths,
        prefixes,
        ops_per_change: Spread::of(&changes.iter().map(|c| c.ops.len()).collect::<Vec<_>>()),
        removals_per_change: Spread::of(&changes.iter().map(|c| removals(&c.ops)).collect::<Vec<_>>()),
        hours,
        daily_rate: changes.len() as f64 / span_days,
        timestamps,
    }
}

/// A new subtree of a resource found by [`Baseline::flag`].
struct NewSubtree<'a> {
    resource: &'a str,
    /// The top-most new prefix.
    prefix: &'a str,
    /// The first op under it.
    index: usize,
    /// Ops under it.
    count: usize,
    /// The first op's path.
    first: &'a str,
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

impl Baseline {
    /// Learns baselines with the default thresholds.
    pub fn learn(history: &[AppliedChange]) -> Self {
        Self::learn_with(history, BaselineConfig::default())
    }

    /// Learns baselines of every stack in `history` (any order) with `config`.
    pub fn learn_with(history: &[AppliedChange], config: BaselineConfig) -> Self {
        let mut by_stack: BTreeMap<&str, Vec<&AppliedChange>> = BTreeMap::new();
        for c in history {
            by_stack.entry(c.stack.as_str()).or_default().push(c);
        }
        let stacks = by_stack.into_iter().map(|(s, cs)| (s.to_string(), learn_stack(&cs))).collect();
        Self { config, stacks }
    }

    /// The baseline of one stack, if it has any history.
    pub fn stack(&self, stack: &str) -> Option<&StackBaseline> {
        self.stacks.get(stack)
    }

    /// Earlier changes of `stack` learned from (0 for an unknown stack).
    pub fn history_len(&self, stack: &str) -> usize {
        self.stacks.get(stack).map_or(0, |s| s.changes)
    }

    /// `stack` has at least [`BaselineConfig::min_history`] changes, so [`Baseline::flag`]
    /// judges its changes.
    pub fn is_warm(&self, stack: &str) -> bool {
        self.history_len(stack) >= self.config.min_history
    }

    /// What is unusual about applying `ops` to `stack` at `now_ms`, by the rules in the
    /// module docs: new paths in op order, then a large deletion, a large change, an
    /// unusual hour and a high rate. Nothing while the stack is not warm.
    pub fn flag(&self, stack: &str, ops: &[UpdateOp], now_ms: i64) -> Vec<Anomaly> {
        let Some(b) = self.stacks.get(stack).filter(|_| self.is_warm(stack)) else { return Vec::new() };
        let cfg = &self.config;
        let mut out = Vec::new();

        // New paths: the top-most new prefix once per resource.
        let mut news: Vec<NewSubtree<'_>> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if op.path.is_empty() || !b.paths.contains_key(&op.resource) || b.known(&op.resource, &op.path) {
                continue;
            }
            let parent = op.path.rfind('/').filter(|&i| i > 0).map(|i| &op.path[..i]);
            if parent.is_some_and(|p| b.known(&op.resource, p)) {
                continue;
            }
            let top = ancestors(&op.path).chain(std::iter::once(op.path.as_str())).find(|p| !b.known(&op.resource, p)).unwrap_or(&op.path);
            match news.iter_mut().find(|n| n.resource == op.resource && n.prefix == top) {
                Some(n) => n.count += 1,
                None => news.push(NewSubtree { resource: &op.resource, prefix: top, index: i, count: 1, first: &op.path }),
            }
        }
        for NewSubtree { resource, prefix, index, count, first } in news {
            let known = b.paths.get(resource).map_or(0, BTreeSet::len);
            let under = if count > 1 { format!("{count} ops under it, first {first}") } else { format!("1 op: {first}") };
            out.push(Anomaly {
                kind: AnomalyKind::NewPath,
                reason: format!(
                    "{resource} {prefix} is new: none of the {} earlier changes of this stack touched it or its parent \
                     (they touched {known} paths of {resource}); {under}",
                    b.changes
                ),
                resource: Some(resource.to_string()),
                path: Some(prefix.to_string()),
                op_index: Some(index),
            });
        }

        let removed = removals(ops);
        let limit = b.removals_per_change.threshold(cfg.deletion_floor, cfg.deletion_max_factor, cfg.mad_k);
        if removed as f64 > limit {
            let rs: BTreeSet<&str> = ops.iter().filter(|o| o.op == Op::Remove).map(|o| o.resource.as_str()).collect();
            let s = &b.removals_per_change;
            out.push(Anomaly {
                kind: AnomalyKind::LargeDeletion,
                resource: if rs.len() == 1 { rs.first().map(|r| r.to_string()) } else { None },
                path: None,
                reason: format!(
                    "removes {removed} keys; usual removals per change: median {}, max {} (MAD {}; flagged above {})",
                    fmt_num(s.median),
                    s.max,
                    fmt_num(s.mad),
                    fmt_num(limit)
                ),
                op_index: ops.iter().position(|o| o.op == Op::Remove),
            });
        }

        let limit = b.ops_per_change.threshold(cfg.change_floor, cfg.change_max_factor, cfg.mad_k);
        if ops.len() as f64 > limit {
            let s = &b.ops_per_change;
            out.push(Anomaly {
                kind: AnomalyKind::LargeChange,
                resource: None,
                path: None,
                reason: format!(
                    "changes {} leaves; usual ops per change: median {}, max {} (MAD {}; flagged above {})",
                    ops.len(),
                    fmt_num(s.median),
                    s.max,
                    fmt_num(s.mad),
                    fmt_num(limit)
                ),
                op_index: None,
            });
        }

        if b.changes >= cfg.hour_min_history {
            let h = hour_of(now_ms);
            let n = b.hours.get(h).copied().unwrap_or(0);
            let share = n as f64 / b.changes as f64;
            if share < cfg.hour_min_share {
                let (busiest, most) = b.hours.iter().enumerate().max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i))).unwrap_or((0, &0));
                out.push(Anomaly {
                    kind: AnomalyKind::UnusualHour,
                    resource: None,
                    path: None,
                    reason: format!(
                        "applied at {h:02}:xx UTC; {n} of {} earlier changes ({:.1}%) were in that hour (flagged below {:.1}%); \
                         busiest hour {busiest:02}:xx UTC with {most}",
                        b.changes,
                        100.0 * share,
                        100.0 * cfg.hour_min_share
                    ),
                    op_index: None,
                });
            }
        }

        let recent = b.timestamps.iter().filter(|&&t| t > now_ms - DAY_MS && t <= now_ms).count() + 1;
        let limit = (cfg.rate_floor as f64).max(cfg.rate_factor * b.daily_rate);
        if recent as f64 > limit {
            out.push(Anomaly {
                kind: AnomalyKind::HighRate,
                resource: None,
                path: None,
                reason: format!(
                    "{recent} changes in the last 24 h including this one; usual rate {:.1} per day over {} changes (flagged above {})",
                    b.daily_rate,
                    b.changes,
                    fmt_num(limit)
                ),
                op_index: None,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ancestors_and_leaves() {
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), vec!["/a", "/a/b"]);
        assert_eq!(ancestors("/a").count(), 0);
        assert_eq!(leaves(&json!({"a": 1, "b": {"c": 2, "d": [1, 2]}})), 4);
        assert_eq!(leaves(&json!({})), 1);
        assert_eq!(leaves(&json!(null)), 1);
    }

    #[test]
    fn spreads() {
        let s = Spread::of(&[0, 0, 1, 2, 10]);
        assert_eq!((s.median, s.mad, s.max), (1.0, 1.0, 10));
        assert_eq!(Spread::of(&[]).max, 0);
        assert_eq!(hour_of(-1), 23);
    }
}
