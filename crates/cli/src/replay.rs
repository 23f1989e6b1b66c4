//! `harbinger replay`: a dataset through the same pipeline `serve` runs (live scorer,
//! engine, ingest path: [`crate::serve::pipeline`]), on a virtual clock, as fast as the
//! machine goes.
//!
//! Every tick step (default 1 min) from the first sample to the last:
//!
//! 1. the clock is set to the step's end `t`;
//! 2. the events with `ts ≤ t` go through [`Ingest::events`](harbinger_engine::Ingest::events)
//!    (stored, queued as engine triggers, snapshots before changes, fed to the scorer;
//!    `host_recovered` marks a failed host up again), as `POST /api/v1/events` does;
//! 3. the samples with timestamps in `(t − tick, t]` go through
//!    [`Ingest::samples`](harbinger_engine::Ingest::samples), as remote write does;
//! 4. the failures of `failures.csv` with `timestamp ≤ t` are reported to the engine with
//!    [`Engine::host_failed`](harbinger_engine::Engine::host_failed), the call `serve`'s
//!    watchdog makes when a primary stops answering;
//! 5. one [`Engine::tick`](harbinger_engine::Engine::tick) at `t`.
//!
//! [`drive`] does this with one change of schedule: the scorer is given an hour of ticks'
//! events and stored samples at once ([`RiskScorer::prepare_ticks`](harbinger_core::RiskScorer::prepare_ticks)),
//! and works host by host across them (feature rows, each tick's fleet signal, the model's
//! assessments), while the engine and its clock still go tick by tick. `harbinger replay`
//! does not load the samples first: [`read`] opens `metrics.parquet` for cutting
//! ([`SampleCuts`]: read a row group at a time as the ticks reach it, the same samples as
//! the dataset loaded whole), so a replay holds what it has read and not yet fed. Three
//! threads overlap: one cuts blocks of steps out of the samples, series by series (one entry per
//! series across the block, [`Steps::next_block`]), and stores their samples (on the
//! store's own clock, [`Clocks`]; the engine reads no samples): all at once at the block's
//! last tick where the store admits that exactly as tick by tick
//! ([`Clocks::admit_span_ms`]), else tick by tick; one prepares the scorer for the next
//! block, and the driver ticks the engine through the block before. A
//! block in which a host outside the inventory is first heard of is prepared only after
//! the blocks before it ticked, so no tick knows a host early. Each tick sees what it sees
//! fed tick by tick
//! ([`run_step`]; tests compare both, and replay with serve fed over HTTP). A replay's
//! snapshots are written atomically but not flushed one by one (`SnapshotConfig::durable`).
//!
//! Output (the dataset contract's replay files, byte-identical for the same input):
//! `decisions.jsonl` (the engine's own decision log), `alerts.csv` (hosts entering the
//! alerting state), `summary.json` (scored by [`harbinger_model::summarize`], the code
//! `eval` uses) and `risk.csv` (every host's risk every `--trace-every`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use harbinger_config::Config;
use harbinger_core::{EventKind, HostId, InventoryStore, ManualClock, SampleBatch, SeriesSamples, Stores, TimestampMs, TransitionKind};
use harbinger_dataset::{Dataset, SampleCuts};
use harbinger_engine::{EngineConfig, LogActuator, Telemetry};
use harbinger_model::{Alert, EvalOutput, Summary};
use harbinger_store::MemoryStore;

use crate::args::ReplayArgs;
use crate::serve::{Pipeline, PipelineParts};

/// Without any `host_recovered` event in the dataset, a failed host is marked up again
/// once it reports samples this long after its failure (the rule `eval` uses).
const RECOVERY_MS: i64 = 30 * 60_000;

/// How a replay runs.
#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    /// Engine tick of the virtual clock.
    pub tick_ms: i64,
    /// Cadence of the risk trace (`risk.csv`); `None`: no trace.
    pub trace_every_ms: Option<i64>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions { tick_ms: 60_000, trace_every_ms: Some(600_000) }
    }
}

/// One row of `risk.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskRow {
    /// Host.
    pub host: HostId,
    /// Virtual time.
    pub timestamp: TimestampMs,
    /// Risk after the tick.
    pub risk: f64,
    /// Failure probability after the tick.
    pub probability: f64,
    /// In the alerting state after the tick.
    pub alerting: bool,
}

/// What a replay produced (`decisions.jsonl` is written by the engine as it goes).
#[derive(Debug, Clone)]
pub struct ReplayOutput {
    /// Hosts entering the alerting state, in time order (host order within a tick).
    pub alerts: Vec<Alert>,
    /// Scored by the contract's rule.
    pub summary: Summary,
    /// The risk trace.
    pub risk: Vec<RiskRow>,
    /// Engine ticks run.
    pub ticks: u64,
    /// Failures reported to the engine.
    pub failures_reported: usize,
    /// Samples pushed through the ingest path.
    pub samples: u64,
}

/// A replay's virtual clocks: the engine's (which the scorer reads too) and the metric
/// store's (which judges the samples it admits by it). [`drive`] stores a block of samples
/// while the engine ticks through the block before, so each has its own; a caller going
/// step by step sets both ([`Clocks::set`]).
#[derive(Debug, Clone)]
pub struct Clocks {
    /// The engine's and the scorer's clock.
    pub engine: Arc<ManualClock>,
    /// The metric store's clock.
    pub store: Arc<ManualClock>,
    /// The longest span of ticks whose samples the store admits at once, at the span's last
    /// tick, exactly as it would tick by tick (0: only tick by tick). Within its retention a
    /// series' samples are judged by their values, their order and the series' last
    /// sample, not by when they come; which series it refuses for its series limit depends
    /// on the order they come in, so a dataset with more series than the limit goes tick by
    /// tick.
    pub admit_span_ms: i64,
    /// The store's series limit: a block after which a replay has met more series than
    /// this goes tick by tick whatever `admit_span_ms` says.
    pub max_series: usize,
}

impl Clocks {
    fn new(start: TimestampMs, admit_span_ms: i64, max_series: usize) -> Self {
        Clocks { engine: Arc::new(ManualClock::new(start)), store: Arc::new(ManualClock::new(start)), admit_span_ms, max_series }
    }

    /// Sets both clocks to `now`.
    pub fn set(&self, now: TimestampMs) {
        self.store.set(now);
        self.engine.set(now);
    }
}

/// The pipeline of `serve` over an in-memory store holding the dataset's inventory, on
/// virtual clocks stopped at the dataset's first sample: the configured model (the built-in
/// one as `serve` resolves it), the `log` actuator, the engine's decision log in
/// `out/decisions.jsonl` and its snapshots in `out/snapshots` (both started afresh).
///
/// Must be called on a multi-threaded tokio runtime.
///
/// # Errors
/// No samples in the dataset, no loadable model, an unwritable `out`.
pub async fn open(cfg: &Config, ds: &Dataset, out: &Path) -> anyhow::Result<(Pipeline, Clocks)> {
    open_with(cfg, ds, harbinger_model::runner::data_span(ds), Some(ds.metrics.len()), out).await
}

/// [`open`] for a dataset whose samples are not in `ds` (cut as the replay goes,
/// [`SampleCuts`]): `span` is their first and last time, `series` their number when known.
///
/// # Errors
/// No samples (`span` is `None`), no loadable model, an unwritable `out`.
pub async fn open_with(
    cfg: &Config,
    ds: &Dataset,
    span: Option<(TimestampMs, TimestampMs)>,
    series: Option<usize>,
    out: &Path,
) -> anyhow::Result<(Pipeline, Clocks)> {
    let (start, _) = span.context("the dataset has no metric samples")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let log = out.join("decisions.jsonl");
    // The engine appends to its log; a replay starts it afresh.
    match std::fs::remove_file(&log) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the previous {}", log.display())),
    }
    let snapshots = out.join("snapshots");
    if snapshots.exists() {
        std::fs::remove_dir_all(&snapshots).with_context(|| format!("removing the previous {}", snapshots.display()))?;
    }
    // Nothing in a replay reads stored samples (the engine reads none; the scorer is fed
    // what the store kept): no history, and a hot window of one sample per series, which
    // admission does not read (it judges a sample by its series' last timestamp).
    let mut limits = crate::store_config(cfg).limits;
    limits.hot_max_points = 1;
    let admit_span_ms = if series.is_some_and(|n| n > limits.max_series) { 0 } else { limits.retention_ms.unwrap_or(i64::MAX) };
    let clocks = Clocks::new(start, admit_span_ms, limits.max_series);
    let store = Arc::new(MemoryStore::with_clock(limits, clocks.store.clone()).without_history());
    store.put_hosts(&ds.hosts).await.context("storing the hosts")?;
    store.put_resources(&ds.resources).await.context("storing the resources")?;
    let mut snap = crate::serve::snapshot_config(cfg, snapshots)?;
    snap.replica_dir = None;
    // A replay's snapshots are its output, rewritten by running it again: atomic, not
    // flushed to the disk one by one.
    snap.durable = false;
    let parts = PipelineParts {
        stores: Stores::from_backend(store),
        clock: clocks.engine.clone(),
        actuator: Arc::new(LogActuator),
        telemetry: Arc::new(Telemetry::new()),
        engine: EngineConfig {
            budget: crate::budget(&cfg.engine),
            decision_log: Some(log),
            snapshots: Some(snap),
            history_ms: crate::history_ms(&cfg.engine),
            ..EngineConfig::default()
        },
        strict_hosts: None,
    };
    let p = crate::serve::pipeline(cfg, parts).await?;
    if p.scorer.is_none() {
        anyhow::bail!("replay needs a failure model: {}", p.no_model_reason);
    }
    Ok((p, clocks))
}

/// The samples of one series, sorted by time.
struct Cursor<'a> {
    series: std::borrow::Cow<'a, SeriesSamples>,
    next: usize,
}

fn sorted(s: &SeriesSamples) -> std::borrow::Cow<'_, SeriesSamples> {
    if s.timestamps.is_sorted() {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut idx: Vec<usize> = (0..s.timestamps.len()).collect();
    idx.sort_by_key(|&i| s.timestamps[i]);
    std::borrow::Cow::Owned(SeriesSamples {
        key: s.key.clone(),
        timestamps: idx.iter().map(|&i| s.timestamps[i]).collect(),
        values: idx.iter().map(|&i| s.values[i]).collect(),
    })
}

/// One step's input: the events, samples and failures due at `now`.
#[derive(Debug, Default)]
pub struct Step {
    /// Virtual time of the step's tick.
    pub now: TimestampMs,
    /// Events with `ts` in `(previous step, now]`, in time order.
    pub events: Vec<harbinger_core::Event>,
    /// Samples with timestamps in `(previous step, now]`, one series entry per series
    /// with samples, in dataset order.
    pub samples: SampleBatch,
    /// Failures with `timestamp` in `(previous step, now]`: host and evidence.
    pub failures: Vec<(HostId, String)>,
}

/// Where a replay's samples come from.
#[derive(Debug)]
enum Source<'a> {
    /// The dataset's own series, each sorted.
    Loaded(Vec<Cursor<'a>>),
    /// Read from the file as far as each cut needs.
    Cut(Box<SampleCuts>),
}

/// Cuts a dataset into the steps a replay feeds the pipeline, one per tick.
#[derive(Debug)]
pub struct Steps<'a> {
    ds: &'a Dataset,
    source: Source<'a>,
    events: usize,
    failures: Vec<(TimestampMs, HostId, String)>,
    next_failure: usize,
    /// First and last sample time.
    pub span: (TimestampMs, TimestampMs),
    tick: i64,
    t: TimestampMs,
    /// Why the steps ended early (a sample file that failed to read, [`Steps::error`]).
    failed: Option<anyhow::Error>,
}

impl std::fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("key", &self.series.key).field("next", &self.next).finish()
    }
}

impl<'a> Steps<'a> {
    /// The steps of `ds` at `tick_ms`: ticks at the multiples of the tick after the first
    /// sample (as `eval`), up to the first one at or after the last sample.
    ///
    /// # Errors
    /// The dataset has no samples.
    pub fn new(ds: &'a Dataset, tick_ms: i64) -> anyhow::Result<Self> {
        let span = harbinger_model::runner::data_span(ds).context("the dataset has no metric samples")?;
        let cursors = ds.metrics.iter().map(|s| Cursor { series: sorted(s), next: 0 }).collect();
        Ok(Self::with_source(ds, Source::Loaded(cursors), span, tick_ms))
    }

    /// The steps of `ds` (its hosts, events and failures; its own `metrics` unused) with the
    /// samples `cuts` hands out as the steps go: the same steps as [`Steps::new`] of the
    /// dataset loaded whole.
    ///
    /// # Errors
    /// The file has no samples.
    pub fn cut(ds: &'a Dataset, cuts: SampleCuts, tick_ms: i64) -> anyhow::Result<Self> {
        let span = cuts.span().context("the dataset has no metric samples")?;
        Ok(Self::with_source(ds, Source::Cut(Box::new(cuts)), span, tick_ms))
    }

    fn with_source(ds: &'a Dataset, source: Source<'a>, span: (TimestampMs, TimestampMs), tick_ms: i64) -> Self {
        let tick = tick_ms.max(1);
        let mut failures: Vec<(TimestampMs, HostId, String)> =
            ds.failures.iter().map(|f| (f.timestamp, f.host.clone(), format!("failures.csv: {} at {}", f.kind, f.timestamp))).collect();
        failures.sort();
        Steps { ds, source, events: 0, failures, next_failure: 0, span, tick, t: span.0.div_euclid(tick) * tick + tick, failed: None }
    }

    /// Ticks in all.
    pub fn len(&self) -> u64 {
        let (start, end) = self.span;
        let first = start.div_euclid(self.tick) * self.tick + self.tick;
        u64::try_from((end - first).div_euclid(self.tick) + 1 + i64::from((end - first).rem_euclid(self.tick) != 0)).unwrap_or(0)
    }

    /// Whether there is no tick at all (never: a dataset with samples has one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Why iterating the steps ended before the last one: the samples could not be read
    /// (only steps cut from a file, [`Steps::cut`], can fail).
    pub fn error(&mut self) -> Option<anyhow::Error> {
        self.failed.take()
    }
}

impl Steps<'_> {
    /// The next step with its events and failures; its samples are not cut.
    fn head(&mut self) -> Option<Step> {
        let now = self.t;
        if now - self.tick >= self.span.1 {
            return None;
        }
        self.t += self.tick;
        let mut step = Step { now, ..Step::default() };
        let evs = &self.ds.events;
        while let Some(e) = evs.get(self.events).filter(|e| e.ts <= now) {
            step.events.push(e.clone());
            self.events += 1;
        }
        while let Some((_, h, why)) = self.failures.get(self.next_failure).filter(|f| f.0 <= now) {
            step.failures.push((h.clone(), why.clone()));
            self.next_failure += 1;
        }
        Some(step)
    }

    /// Series met so far (all of them for a dataset loaded whole).
    fn series_seen(&self) -> usize {
        match &self.source {
            Source::Loaded(cursors) => cursors.len(),
            Source::Cut(cuts) => cuts.series_seen(),
        }
    }

    /// Every series' samples up to `now` not cut yet: one entry per series with samples,
    /// in dataset (key) order, its samples in time order.
    fn cut_at(&mut self, now: TimestampMs) -> anyhow::Result<SampleBatch> {
        let cursors = match &mut self.source {
            Source::Loaded(cursors) => cursors,
            Source::Cut(cuts) => return Ok(SampleBatch { series: cuts.cut(now).context("reading the samples")? }),
        };
        let mut batch = SampleBatch { series: Vec::with_capacity(cursors.len()) };
        for c in cursors {
            let s = &c.series;
            // Sorted: a tick usually takes zero or one sample per series, so a linear walk
            // beats a binary search over everything left.
            let mut end = c.next;
            while s.timestamps.get(end).is_some_and(|&ts| ts <= now) {
                end += 1;
            }
            if end > c.next {
                batch.series.push(SeriesSamples {
                    key: s.key.clone(),
                    timestamps: few(&s.timestamps[c.next..end]),
                    values: few(&s.values[c.next..end]),
                });
                c.next = end;
            }
        }
        Ok(batch)
    }

    /// The next block of at most `max` steps, cut before a step at one of `starts` (but for
    /// its first), with the block's samples in one batch: one entry per series across the
    /// block's steps (what the steps' own batches would hold, series by series), its
    /// samples in time order. The steps' own batches are empty.
    pub fn next_block(&mut self, max: usize, starts: &BTreeSet<TimestampMs>) -> Option<anyhow::Result<(Vec<Step>, SampleBatch)>> {
        let mut steps = vec![self.head()?];
        while steps.len() < max
            && !starts.contains(&self.t)
            && let Some(s) = self.head()
        {
            steps.push(s);
        }
        let last = steps.last().map_or(self.t, |s| s.now);
        Some(self.cut_at(last).map(|batch| (steps, batch)))
    }
}

impl Iterator for Steps<'_> {
    type Item = Step;

    /// The next step with its samples; `None` after the last, or when the samples could
    /// not be read ([`Steps::error`] says why).
    fn next(&mut self) -> Option<Step> {
        if self.failed.is_some() {
            return None;
        }
        let mut step = self.head()?;
        match self.cut_at(step.now) {
            Ok(samples) => step.samples = samples,
            Err(e) => {
                self.failed = Some(e);
                return None;
            }
        }
        Some(step)
    }
}

/// `batch` (entries in time order) split at `ticks`: the samples each tick's step would
/// have held (those after the one before it, up to it), entries in `batch`'s order.
fn split_at_ticks(batch: &SampleBatch, ticks: &[TimestampMs]) -> Vec<SampleBatch> {
    let mut out: Vec<SampleBatch> = ticks.iter().map(|_| SampleBatch::default()).collect();
    for s in &batch.series {
        let mut from = 0;
        for (&now, b) in ticks.iter().zip(&mut out) {
            let end = from + s.timestamps[from..].partition_point(|&t| t <= now);
            if end > from {
                b.series.push(SeriesSamples {
                    key: s.key.clone(),
                    timestamps: few(&s.timestamps[from..end]),
                    values: few(&s.values[from..end]),
                });
            }
            from = end;
        }
    }
    out
}

/// `s` as a vector; a tick usually takes one sample of a series, and copying that one
/// without a call to `memcpy` shows in a replay of millions.
fn few<T: Copy>(s: &[T]) -> Vec<T> {
    match *s {
        [x] => vec![x],
        _ => s.to_vec(),
    }
}

/// What the replay driver keeps between ticks.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Alerts so far.
    pub alerts: Vec<Alert>,
    /// Risk trace so far.
    pub risk: Vec<RiskRow>,
    /// Failures reported.
    pub failures_reported: usize,
    /// Failed hosts waiting to report again (only without `host_recovered` events).
    down: BTreeMap<HostId, TimestampMs>,
}

/// Runs one step through the pipeline: events and samples through the ingest path,
/// failures through [`Engine::host_failed`](harbinger_engine::Engine::host_failed), one
/// engine tick; records the alerts and, at `trace_every_ms`, every host's risk.
/// `recover_by_samples`: mark a failed host up when it reports again 30 min after its
/// failure (for datasets without `host_recovered` events).
///
/// # Errors
/// The store or the engine failed.
pub async fn run_step(
    p: &Pipeline,
    clocks: &Clocks,
    step: Step,
    trace_every_ms: Option<i64>,
    recover_by_samples: bool,
    rec: &mut Recorder,
) -> anyhow::Result<()> {
    let now = step.now;
    clocks.set(now);
    before_samples(&p.ingest, p, now, step.events, recover_by_samples.then(|| reporting(&step.samples)), rec).await?;
    if !step.samples.series.is_empty() {
        p.ingest.samples("replay", step.samples, BTreeMap::new()).await.context("ingesting samples")?;
    }
    after_samples(p, now, &step.failures, trace_every_ms, recover_by_samples, rec).await
}

/// The hosts with samples in `b`.
fn reporting(b: &SampleBatch) -> BTreeSet<HostId> {
    b.series.iter().map(|s| s.key.host.clone()).collect()
}

/// A step's part before its samples: the clock already at `now`, its events through
/// `ingest`, then failed hosts reporting again (`reporting`: the step's hosts with samples,
/// when recovery is by samples) marked up.
async fn before_samples(
    ingest: &harbinger_engine::Ingest,
    p: &Pipeline,
    now: TimestampMs,
    events: Vec<harbinger_core::Event>,
    reporting: Option<BTreeSet<HostId>>,
    rec: &mut Recorder,
) -> anyhow::Result<()> {
    if !events.is_empty() {
        ingest.events(events).await.context("ingesting events")?;
    }
    if let Some(reporting) = reporting.filter(|_| !rec.down.is_empty()) {
        let back: Vec<HostId> =
            rec.down.iter().filter(|(h, since)| now - **since >= RECOVERY_MS && reporting.contains(*h)).map(|(h, _)| h.clone()).collect();
        for h in back {
            p.engine.set_up(&h, true).await;
            rec.down.remove(&h);
        }
    }
    Ok(())
}

/// A step's part after its samples: its failures reported, one engine tick, the alerts
/// and (at `trace_every_ms`) the risk trace recorded.
async fn after_samples(
    p: &Pipeline,
    now: TimestampMs,
    failures: &[(HostId, String)],
    trace_every_ms: Option<i64>,
    recover_by_samples: bool,
    rec: &mut Recorder,
) -> anyhow::Result<()> {
    for (host, why) in failures {
        p.engine.host_failed(host, why).await.with_context(|| format!("failing over {host}"))?;
        rec.failures_reported += 1;
        if recover_by_samples {
            rec.down.insert(host.clone(), now);
        }
    }
    let report = p.engine.tick().await.context("engine tick")?;
    let mut entered: Vec<Alert> = report
        .transitions
        .iter()
        .filter(|t| t.kind == TransitionKind::Entered)
        .map(|t| Alert { host: t.host.clone(), timestamp: now, score: t.risk })
        .collect();
    entered.sort_by(|a, b| a.host.cmp(&b.host));
    rec.alerts.extend(entered);
    if let (Some(every), Some(scorer)) = (trace_every_ms, &p.scorer)
        && every > 0
        && now.rem_euclid(every) == 0
    {
        let mut states = scorer.host_states();
        states.sort_by(|a, b| a.host.cmp(&b.host));
        rec.risk.extend(states.into_iter().map(|s| RiskRow {
            host: s.host,
            timestamp: now,
            risk: s.risk,
            probability: s.failure_probability,
            alerting: s.alerting,
        }));
    }
    Ok(())
}

/// Ticks a replay feeds the scorer at once ([`RiskScorer::prepare_ticks`]): an hour of
/// minute ticks, fewer for a large fleet so the rows written ahead stay near 250 MB.
fn block_ticks(hosts: usize) -> usize {
    (300_000 / hosts.max(1)).clamp(1, 60)
}

/// The ticks at which a host outside the inventory is first heard of (a sample or an
/// event about it): a block of ticks fed at once starts there, so the host is not known
/// to the scorer (and the engine) before it would have been tick by tick.
fn first_heard(ds: &Dataset, tick: i64) -> BTreeSet<TimestampMs> {
    let known: BTreeSet<&HostId> = ds.hosts.iter().map(|h| &h.host).collect();
    let on: std::collections::HashMap<&str, &HostId> = ds.resources.iter().map(|r| (r.id.as_str(), &r.host)).collect();
    let mut first: BTreeMap<&HostId, TimestampMs> = BTreeMap::new();
    let metrics = ds.metrics.iter().filter_map(|s| s.timestamps.iter().min().map(|&t| (&s.key.host, t)));
    let events = ds
        .events
        .iter()
        .filter_map(|e| e.host.as_ref().or_else(|| e.resource.as_deref().and_then(|r| on.get(r).copied())).map(|h| (h, e.ts)));
    for (h, t) in metrics.chain(events).filter(|(h, _)| !known.contains(h)) {
        let e = first.entry(h).or_insert(t);
        *e = (*e).min(t);
    }
    // A sample or event at `t` is fed at the first tick at or after it.
    first.values().map(|&t| t.div_euclid(tick) * tick + if t.rem_euclid(tick) == 0 { 0 } else { tick }).collect()
}

/// Whether a failed host is marked up by its samples (`RECOVERY_MS` after its failure):
/// only in a dataset without `host_recovered` events.
fn recovers_by_samples(ds: &Dataset) -> bool {
    !ds.events.iter().any(|e| e.kind == EventKind::HostRecovered)
}

/// Hosts a replay scores: the inventory's and those with samples (as `eval` counts them).
fn host_count(ds: &Dataset) -> usize {
    let mut hosts: BTreeSet<&HostId> = ds.hosts.iter().map(|h| &h.host).collect();
    hosts.extend(ds.metrics.iter().map(|s| &s.key.host));
    hosts.len()
}

/// A block of steps cut and stored: the samples are out of the steps, in the store and
/// (what it kept) here for the scorer.
struct Fed {
    /// The steps, their samples taken out.
    steps: Vec<Step>,
    /// What the store kept of the steps' samples, in time order within each entry (empty
    /// once the scorer took them ahead).
    kept: SampleBatch,
    /// The hosts with samples at each step, when recovery is by samples.
    heard: Vec<Option<BTreeSet<HostId>>>,
    /// Samples in the block.
    samples: u64,
    /// A host outside the inventory is first heard of at the block's first step.
    new_host: bool,
    /// The scorer took the block's input ahead ([`RiskScorer::prepare_ticks`]); else each
    /// tick's input goes to it tick by tick.
    prepared: bool,
}

/// Drives the pipeline `p` (from [`open`]) over `ds`, step by step ([`Steps`],
/// [`run_step`]), and scores the alerts with the contract's rule. A thread cuts blocks of
/// steps out of the dataset and stores their samples ([`store_block`]), a thread prepares
/// the scorer for a block ([`RiskScorer::prepare_ticks`]), and this one ticks the engine
/// through the block before ([`run_blocks`]).
///
/// Must be called on a multi-threaded tokio runtime (it blocks the thread it runs on).
///
/// # Errors
/// The dataset has no samples; the store or the engine failed.
pub async fn drive(
    ds: &Dataset,
    p: &Pipeline,
    clocks: &Clocks,
    opts: ReplayOptions,
    progress: &(dyn Fn(f64) + Sync),
) -> anyhow::Result<ReplayOutput> {
    drive_steps(ds, Steps::new(ds, opts.tick_ms)?, p, clocks, opts, progress).await
}

/// [`drive`] over the samples `cuts` hands out, read from the file as the replay goes
/// ([`Steps::cut`]; `ds` holds the rest of the dataset), with the pipeline of
/// [`open_with`]: the same output as [`drive`] of the dataset loaded whole, holding only the
/// samples read and not yet fed.
///
/// # Errors
/// The file has no samples, or fails to read; the store or the engine failed.
pub async fn drive_cut(
    ds: &Dataset,
    cuts: SampleCuts,
    p: &Pipeline,
    clocks: &Clocks,
    opts: ReplayOptions,
    progress: &(dyn Fn(f64) + Sync),
) -> anyhow::Result<ReplayOutput> {
    drive_steps(ds, Steps::cut(ds, cuts, opts.tick_ms)?, p, clocks, opts, progress).await
}

async fn drive_steps(
    ds: &Dataset,
    steps: Steps<'_>,
    p: &Pipeline,
    clocks: &Clocks,
    opts: ReplayOptions,
    progress: &(dyn Fn(f64) + Sync),
) -> anyhow::Result<ReplayOutput> {
    let span = steps.span;
    let total = steps.len().max(1) as f64;
    let recover_by_samples = recovers_by_samples(ds);
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            // One block waits stored while the one before it is prepared.
            let (stored_tx, stored) = std::sync::mpsc::sync_channel::<anyhow::Result<Fed>>(1);
            let starts = first_heard(ds, opts.tick_ms.max(1));
            let per_block = block_ticks(host_count(ds));
            let rt = handle.clone();
            std::thread::Builder::new()
                .name("replay-steps".into())
                .spawn_scoped(scope, move || {
                    let mut steps = steps;
                    // Stored at once when the store admits the block's span at once as it
                    // would tick by tick; else tick by tick.
                    // (No series is refused for the store's series limit while no more
                    // than it have been met, whatever order they come in.)
                    let at_once = i64::try_from(per_block).is_ok_and(|n| clocks.admit_span_ms / n >= opts.tick_ms.max(1));
                    while let Some(cut) = steps.next_block(per_block, &starts) {
                        let at_once = at_once && steps.series_seen() <= clocks.max_series;
                        let r = cut.and_then(|(block, samples)| {
                            let new_host = block.first().is_some_and(|s| starts.contains(&s.now));
                            store_block(&rt, p, &clocks.store, block, samples, at_once, recover_by_samples).map(|f| Fed { new_host, ..f })
                        });
                        let failed = r.is_err();
                        if stored_tx.send(r).is_err() || failed {
                            break; // the driver stopped, or this thread did
                        }
                    }
                })
                .context("starting the replay's step thread")?;
            // A prepared block is handed over when the driver is done with the one before
            // it: at most two blocks are prepared at a time.
            let (fed_tx, fed) = std::sync::mpsc::sync_channel::<anyhow::Result<Fed>>(0);
            let (done_tx, done) = std::sync::mpsc::channel::<()>();
            std::thread::Builder::new()
                .name("replay-prepare".into())
                .spawn_scoped(scope, move || {
                    let mut ticked = 0usize; // blocks the driver is through with
                    for (handed, block) in stored.into_iter().enumerate() {
                        let block = block.map(|mut b| {
                            // A new host must not be known to the scorer before the ticks
                            // before it are done.
                            while b.new_host && ticked < handed && done.recv().is_ok() {
                                ticked += 1;
                            }
                            b.prepared = prepare(p, &b);
                            if b.prepared {
                                // Freed here, not on the driver's thread.
                                b.kept = SampleBatch::default();
                            }
                            b
                        });
                        let failed = block.is_err();
                        if fed_tx.send(block).is_err() || failed {
                            break;
                        }
                    }
                })
                .context("starting the replay's prepare thread")?;
            handle.block_on(run_blocks(ds, p, &clocks.engine, opts, progress, fed, done_tx, (span, total)))
        })
    })
}

/// Stores the samples of a block of `steps` (`samples`, one entry per series across them)
/// on the store's clock: `at_once`, all at the block's last step; else each step's at its
/// time (`rt` runs the store's calls: this runs on a thread outside the runtime).
///
/// # Errors
/// The store failed.
fn store_block(
    rt: &tokio::runtime::Handle,
    p: &Pipeline,
    clock: &ManualClock,
    steps: Vec<Step>,
    samples: SampleBatch,
    at_once: bool,
    recover_by_samples: bool,
) -> anyhow::Result<Fed> {
    let quiet = harbinger_engine::Ingest { scorer: None, ..p.ingest.clone() };
    let ticks: Vec<TimestampMs> = steps.iter().map(|s| s.now).collect();
    let count = samples.sample_count() as u64;
    // Each step's own samples, when stored step by step or read for recoveries.
    let per_step = (!at_once || recover_by_samples).then(|| split_at_ticks(&samples, &ticks));
    let heard = match per_step.as_ref().filter(|_| recover_by_samples) {
        Some(batches) => batches.iter().map(|b| Some(reporting(b))).collect(),
        None => vec![None; steps.len()],
    };
    let store = |now: TimestampMs, batch: SampleBatch| {
        clock.set(now);
        rt.block_on(quiet.store_samples("replay", batch, BTreeMap::new())).map(|(_, kept)| kept).context("ingesting samples")
    };
    let kept = match per_step.filter(|_| !at_once) {
        None => store(ticks.last().copied().unwrap_or_default(), samples)?,
        Some(batches) => {
            // Each step's entries after the step before's: every entry in time order still.
            let mut kept = SampleBatch::default();
            for (&now, batch) in ticks.iter().zip(batches) {
                kept.series.extend(store(now, batch)?.series);
            }
            kept
        }
    };
    Ok(Fed { steps, kept, heard, samples: count, new_host: false, prepared: false })
}

/// Gives the scorer a stored block's events and samples ahead of its ticks; whether it
/// took them.
fn prepare(p: &Pipeline, b: &Fed) -> bool {
    let Some(s) = &p.scorer else { return true };
    let times: Vec<TimestampMs> = b.steps.iter().map(|s| s.now).collect();
    let events: Vec<Vec<harbinger_core::Event>> = b.steps.iter().map(|s| s.events.clone()).collect();
    s.prepare_ticks(&times, &events, &b.kept)
}

/// The driver's side of [`drive`]: the engine ticked through each block `fed` hands over,
/// tick by tick (events to the store and the engine, recoveries, failures, the engine's
/// tick); `done` is told when a block is through.
#[allow(clippy::too_many_arguments)]
async fn run_blocks(
    ds: &Dataset,
    p: &Pipeline,
    clock: &ManualClock,
    opts: ReplayOptions,
    progress: &(dyn Fn(f64) + Sync),
    fed: std::sync::mpsc::Receiver<anyhow::Result<Fed>>,
    done: std::sync::mpsc::Sender<()>,
    (span, total): ((TimestampMs, TimestampMs), f64),
) -> anyhow::Result<ReplayOutput> {
    let recover_by_samples = recovers_by_samples(ds);
    let mut rec = Recorder::default();
    let (mut ticks, mut samples) = (0u64, 0u64);
    // The scorer was fed a block of ticks at a time (host by host across them: far fewer
    // cache misses than every host every minute); the engine and its clock still go tick by
    // tick, and each tick sees what it would have seen fed tick by tick
    // (`replay_decides_as_serve_fed_over_http` checks it against serve's own ingest path).
    let quiet = harbinger_engine::Ingest { scorer: None, ..p.ingest.clone() };
    for block in fed {
        let block = block?;
        samples += block.samples;
        // A scorer that took none of it ahead is fed each step's samples at its step.
        let times: Vec<TimestampMs> = block.steps.iter().map(|s| s.now).collect();
        let mut kept = if block.prepared { Vec::new() } else { split_at_ticks(&block.kept, &times) }.into_iter();
        for (step, heard) in block.steps.into_iter().zip(block.heard) {
            let now = step.now;
            clock.set(now);
            let evs = step.events;
            if !block.prepared
                && let Some(s) = &p.scorer
            {
                s.observe_events(&evs);
            }
            before_samples(&quiet, p, now, evs, heard, &mut rec).await?;
            let batch = kept.next();
            if !block.prepared
                && let (Some(s), Some(batch)) = (&p.scorer, batch)
            {
                s.observe_samples(&batch);
            }
            after_samples(p, now, &step.failures, opts.trace_every_ms, recover_by_samples, &mut rec).await?;
            ticks += 1;
            progress(ticks as f64 / total);
        }
        // The prepare thread may have stopped (on its own error, sent before this block).
        let _ = done.send(());
    }
    let mut summary = harbinger_model::summarize(&rec.alerts, &ds.failures, host_count(ds), span);
    summary.model_version = p.scorer.as_ref().map(|s| s.model_info().version.to_string());
    Ok(ReplayOutput { alerts: rec.alerts, summary, risk: rec.risk, ticks, failures_reported: rec.failures_reported, samples })
}

/// Writes `alerts.csv` and `summary.json` (with `eval`'s writer) and `risk.csv`.
///
/// # Errors
/// A file cannot be written.
pub fn write(out: &Path, o: &ReplayOutput) -> anyhow::Result<()> {
    let eval = EvalOutput { alerts: o.alerts.clone(), summary: o.summary.clone(), scores: 0, trace: Vec::new() };
    harbinger_model::write_output(out, &eval)?;
    let path = out.join("risk.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?);
    writeln!(w, "host,timestamp,risk,probability,alerting")?;
    for r in &o.risk {
        writeln!(w, "{},{},{:.6},{:.6},{}", r.host, r.timestamp, r.risk, r.probability, u8::from(r.alerting))?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The dataset in `dir` for a replay: everything but the samples, and the samples cut as
/// the replay goes ([`SampleCuts`]) when the metrics file allows it (Parquet with
/// timestamp statistics, as every writer of the format here leaves them), else the
/// dataset loaded whole (the samples in its `metrics`).
///
/// # Errors
/// The dataset cannot be read.
pub fn read(dir: &Path) -> anyhow::Result<(Dataset, Option<SampleCuts>)> {
    let t = Instant::now();
    let (ds, report) = harbinger_dataset::read_inventory(dir).with_context(|| format!("reading dataset {}", dir.display()))?;
    let hosts: Vec<HostId> = ds.hosts.iter().map(|h| h.host.clone()).collect();
    let Some(cuts) = SampleCuts::open(&report.metrics_file, &hosts).with_context(|| format!("reading dataset {}", dir.display()))? else {
        return Ok((crate::train::load(dir)?, None));
    };
    tracing::info!(
        dir = %dir.display(),
        hosts = ds.hosts.len(),
        rows = cuts.rows(),
        row_groups = cuts.row_groups(),
        failures = ds.failures.len(),
        seconds = t.elapsed().as_secs_f64(),
        "dataset opened; its samples are read as the replay goes"
    );
    Ok((ds, Some(cuts)))
}

/// `harbinger replay`.
///
/// # Errors
/// Unreadable dataset or model, invalid durations, unwritable output, a failing engine.
pub fn run(a: &ReplayArgs, mut cfg: Config) -> anyhow::Result<()> {
    if let Some(m) = &a.model {
        cfg.model.dir.clone_from(m);
    }
    let opts = ReplayOptions {
        tick_ms: crate::train::duration_ms("tick", &a.tick)?,
        trace_every_ms: Some(crate::train::duration_ms("trace-every", &a.trace_every)?),
    };
    anyhow::ensure!(opts.tick_ms > 0, "--tick must be positive");
    let (ds, cuts) = read(&a.data)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let pb = crate::train::bar("replay");
    let started = Instant::now();
    let progress = |f: f64| pb.set_position((f * 1000.0) as u64);
    let out = rt.block_on(async {
        match cuts {
            Some(cuts) => {
                let (p, clocks) = open_with(&cfg, &ds, cuts.span(), None, &a.out).await?;
                drive_cut(&ds, cuts, &p, &clocks, opts, &progress).await
            }
            None => {
                let (p, clocks) = open(&cfg, &ds, &a.out).await?;
                drive(&ds, &p, &clocks, opts, &progress).await
            }
        }
    })?;
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    write(&a.out, &out)?;
    let report = crate::report::write_report(&a.out, Some(&a.data))?;
    let s = &out.summary;
    if a.json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!(
        "replay of {} through the serve pipeline, model {} ({} hosts, {:.1} host-days)",
        a.data.display(),
        s.model_version.as_deref().unwrap_or("?"),
        s.hosts,
        s.host_days
    );
    crate::train::print_summary(s);
    println!(
        "  replayed          {} ticks, {} samples, {} failures reported in {secs:.1} s ({:.0} ticks/s)",
        out.ticks,
        out.samples,
        out.failures_reported,
        out.ticks as f64 / secs.max(1e-9)
    );
    let decisions = std::fs::read_to_string(a.out.join("decisions.jsonl")).map(|t| t.lines().count()).unwrap_or(0);
    println!("  decisions         {decisions}; output in {}", a.out.display());
    println!("  samples/s         {:.0} end to end; report {}", out.samples as f64 / secs.max(1e-9), report.display());
    Ok(())
}
