//! Synthetic fleet generator with ground truth.
//!
//! [`generate`] builds a complete [`Dataset`] (hosts, resources, metrics, events,
//! failures) for a fleet of `hosts` machines over `days` days sampled every `step_ms`,
//! together with the list of [`Episode`]s that explains every anomaly in it. The same
//! [`SynthParams`] always give identical output.
//!
//! # The model
//! - **Inventory.** Hosts `h000`.. spread round-robin over `zone-a`..`zone-c`, six hosts
//!   per rack and zone (`r01`..), 8–64 cores, 32–256 GB. Each runs 1–3 resources
//!   (service, database, cache, queue, worker, config) whose `depends_on` only names
//!   resources created before them, so the graph is acyclic. `resources.json` holds each
//!   resource's `state` as it was at `start_ms`; the events replay every later change.
//! - **Metrics.** Every host has its own levels. Load follows a daily cycle peaking in
//!   the (UTC) afternoon and is lower at weekends; every metric carries AR(1) noise with
//!   its own time constant (so statistics do not depend on the step). Temperature follows
//!   smoothed CPU, `load1` follows CPU × cores plus I/O wait, memory drifts up slowly
//!   until a restart, disks fill slowly until a weekly clean-up, a nightly backup lifts
//!   CPU and I/O for 20 minutes, and latency has rare isolated spikes.
//! - **Changes.** Services and workers deploy every 1–3 days (mostly in working hours,
//!   rarely at weekends): `deploy_started`, then `deploy_succeeded` (or, rarely,
//!   `deploy_failed`) a few minutes later, with versions and JSON-pointer `changes` into
//!   `state`. Every resource sees occasional `config_changed` events.
//! - **Episodes.** On average one failure per host per ten days, of kinds `oom`,
//!   `disk_full`, `thermal`, `bad_deploy`, `nic` (each with a precursor of varying length
//!   and shape) and `sudden` (no warning, about 15 %). A failed host is silent for
//!   20–120 minutes, then a `host_recovered` event and a fresh baseline. About as many
//!   benign look-alikes (batch-job CPU bursts, memory growth cured by a restart, log
//!   bursts cured by rotation, latency blips, cooling blips, bad deploys that are rolled
//!   back in time) and a transient error bump after about 15 % of deploys; a few
//!   maintenance windows per fleet-week. No failure happens in the first 12 hours, and
//!   episodes on one host keep 12 hours apart (deploys keep 12 hours from failures and
//!   one hour from other episodes).
//! - **Missing data.** About 0.3 % of samples are missing: short scrape gaps drop whole
//!   steps, single samples are dropped or, now and then, written as NaN. Maintenance
//!   windows lose more, and reboots and failures leave gaps.
//!
//! # Randomness
//! All randomness comes from ChaCha8 streams derived from the seed, the host index and
//! the purpose (inventory, plan, metrics), so one host's output never depends on how much
//! randomness another host consumed. Nothing reads the clock or iterates a hash map.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use harbinger_core::event::Change;
use harbinger_core::{Event, EventKind, Failure, Host, HostId, Resource, SeriesKey, SeriesSamples};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, Poisson, StandardNormal};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Dataset, DatasetMeta};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
const WEEK: i64 = 7 * DAY;

/// Largest accepted `hosts`.
const MAX_HOSTS: usize = 100_000;
/// Largest accepted `days`.
const MAX_DAYS: f64 = 366.0;
/// Smallest and largest accepted `step_ms`.
const MIN_STEP_MS: i64 = 1_000;
const MAX_STEP_MS: i64 = DAY;
/// Fewest steps a dataset may have.
const MIN_STEPS: i64 = 10;
/// `start_ms` must lie within this many ms of the epoch (about year 33 600).
const MAX_ABS_START_MS: i64 = 1_000_000_000_000_000;
/// Upper bound on generated samples (hosts × steps × metrics), about 34 GB in memory.
const MAX_SAMPLES: u128 = 1 << 31;

/// Failures per host per day (on average one per ten days).
const FAILURE_RATE: f64 = 0.1;
/// Benign look-alike episodes per host per day (deploy bumps come on top).
const BENIGN_RATE: f64 = 0.1;
/// Maintenance windows per host per day (a few per fleet-week for 50 hosts).
const MAINT_RATE: f64 = 0.011;
/// Minimum distance between episodes on one host.
const GAP_MS: i64 = 12 * HOUR;
/// No failure before `start_ms + HISTORY_MS`.
const HISTORY_MS: i64 = 12 * HOUR;
/// Per step: probability that a scrape gap (1–5 steps, no rows at all) starts.
const P_GAP: f64 = 0.0007;
/// Per sample: probability that a single sample is missing.
const P_MISS: f64 = 0.001;
/// Of single missing samples, the share written as NaN rather than omitted.
const NAN_SHARE: f64 = 0.3;
/// Per sample, inside maintenance windows: extra probability of a missing sample.
const MAINT_MISS: f64 = 0.15;
/// Hosts per rack and zone.
const HOSTS_PER_RACK: usize = 6;

/// Metric names, in the order the generator computes them.
const METRICS: [&str; 8] = ["cpu_util", "mem_util", "disk_util", "disk_io_wait", "net_latency_ms", "error_rate", "temperature_c", "load1"];
/// Decimals kept per metric (same order as [`METRICS`]).
const DECIMALS: [i32; 8] = [4, 4, 4, 4, 2, 4, 2, 2];

/// Default `start_ms`: 1 700 000 000 000 rounded down to UTC midnight (2023-11-14).
pub const DEFAULT_START_MS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY;

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

/// What to generate: fleet size, time span, sampling step, seed and start time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthParams {
    /// Number of hosts, 1..=100 000.
    pub hosts: usize,
    /// Length of the dataset in days, > 0 and <= 366 (fractions allowed).
    pub days: f64,
    /// Sampling step in ms, 1 000..=86 400 000 (1 s to 1 day).
    pub step_ms: i64,
    /// Seed; the same parameters always give the same fleet.
    pub seed: u64,
    /// Time of the first sample, ms since the epoch (UTC).
    pub start_ms: i64,
}

impl Default for SynthParams {
    fn default() -> Self {
        Self { hosts: 50, days: 7.0, step_ms: 60_000, seed: 1, start_ms: DEFAULT_START_MS }
    }
}

impl SynthParams {
    /// Checks the parameters: `hosts` in 1..=100 000, `days` in (0, 366], `step_ms` in
    /// 1 000..=86 400 000, `start_ms` within ±10^15 ms of the epoch, at least 10 steps,
    /// and at most 2^31 samples in all (hosts × steps × 8 metrics).
    ///
    /// # Errors
    /// The first parameter out of range, named with its value.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.hosts == 0 || self.hosts > MAX_HOSTS {
            return Err(SynthError::Hosts { value: self.hosts });
        }
        if !(self.days > 0.0 && self.days <= MAX_DAYS) {
            return Err(SynthError::Days { value: self.days });
        }
        if !(MIN_STEP_MS..=MAX_STEP_MS).contains(&self.step_ms) {
            return Err(SynthError::StepMs { value: self.step_ms });
        }
        if self.start_ms.unsigned_abs() > MAX_ABS_START_MS.unsigned_abs() {
            return Err(SynthError::StartMs { value: self.start_ms });
        }
        let steps = self.steps();
        if steps < MIN_STEPS {
            return Err(SynthError::TooFewSteps { days: self.days, step_ms: self.step_ms, steps });
        }
        let samples = self.hosts as u128 * steps as u128 * METRICS.len() as u128;
        if samples > MAX_SAMPLES {
            return Err(SynthError::TooLarge { hosts: self.hosts, steps, samples });
        }
        Ok(())
    }

    /// Number of sampling steps (only meaningful once `days` and `step_ms` are valid).
    fn steps(&self) -> i64 {
        let span = (self.days * DAY as f64).floor() as i64;
        span / self.step_ms.max(1)
    }
}

/// Parameters that [`generate`] refuses; every message names the field and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SynthError {
    /// `hosts` out of range.
    #[error("hosts must be between 1 and 100000, got {value}")]
    Hosts {
        /// The value given.
        value: usize,
    },
    /// `days` out of range (or not a number).
    #[error("days must be > 0 and <= 366, got {value}")]
    Days {
        /// The value given.
        value: f64,
    },
    /// `step_ms` out of range.
    #[error("step_ms must be between 1000 (1 s) and 86400000 (1 day), got {value}")]
    StepMs {
        /// The value given.
        value: i64,
    },
    /// `start_ms` too far from the epoch.
    #[error("start_ms must be within ±1e15 ms of the epoch, got {value}")]
    StartMs {
        /// The value given.
        value: i64,
    },
    /// `days` / `step_ms` leave fewer than 10 steps.
    #[error("days={days} with step_ms={step_ms} gives {steps} steps; at least 10 are needed")]
    TooFewSteps {
        /// The `days` given.
        days: f64,
        /// The `step_ms` given.
        step_ms: i64,
        /// The resulting number of steps.
        steps: i64,
    },
    /// The fleet would not fit in memory.
    #[error("hosts={hosts} over {steps} steps gives {samples} samples; at most 2147483648 are supported")]
    TooLarge {
        /// The `hosts` given.
        hosts: usize,
        /// Steps per series.
        steps: i64,
        /// Total samples (hosts × steps × 8 metrics).
        samples: u128,
    },
}

/// What an [`Episode`] is, for scoring: only `Precursor` and `Sudden` end in a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeClass {
    /// A degradation with warning signs that ends in a failure.
    Precursor,
    /// A failure without any warning.
    Sudden,
    /// Looks like trouble but resolves by itself (or is mitigated); no failure.
    Benign,
    /// A planned maintenance window (`host_maintenance` .. `host_recovered`).
    Maintenance,
    /// A harmless deployment or configuration change.
    Deploy,
}

impl EpisodeClass {
    /// The snake_case name, as in `episodes.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Precursor => "precursor",
            Self::Sudden => "sudden",
            Self::Benign => "benign",
            Self::Maintenance => "maintenance",
            Self::Deploy => "deploy",
        }
    }
}

impl fmt::Display for EpisodeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ground truth: one thing that happened to a host, and whether it ended in a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// The host.
    pub host: HostId,
    /// What happened: a failure kind (`oom`, `disk_full`, `thermal`, `bad_deploy`, `nic`,
    /// `sudden`), a benign kind (`batch_job`, `mem_growth_restart`, `log_burst`,
    /// `latency_blip`, `cooling_blip`, `bad_deploy_rolled_back`, `deploy_transient`),
    /// `maintenance`, or a change (`deploy`, `deploy_failed`, `config_change`).
    pub kind: String,
    /// How to score it.
    pub class: EpisodeClass,
    /// When the first sign shows (the precursor start; the failure itself for `sudden`).
    pub start_ms: i64,
    /// When the host is back to normal: for failures the recovery time, which may lie
    /// past the end of the dataset.
    pub end_ms: i64,
    /// The failure time (as in `failures.csv`), for `Precursor` and `Sudden` episodes.
    pub failure_ms: Option<i64>,
}

/// A generated fleet: the dataset and the ground truth behind it.
///
/// Note that `PartialEq` follows `f64`: NaN samples (missing values) never compare
/// equal, so two identical fleets with NaN samples are not `==`.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthFleet {
    /// The dataset, in the contract format.
    pub dataset: Dataset,
    /// Every episode, sorted by (start_ms, host, kind).
    pub episodes: Vec<Episode>,
}

/// Generates a fleet for `p`: deterministic, seeded, with ground-truth episodes.
///
/// # Errors
/// [`SynthError`] when `p` does not pass [`SynthParams::validate`].
pub fn generate(p: &SynthParams) -> Result<SynthFleet, SynthError> {
    let (mut fleet, renderers) = plan(p)?;
    let mut metrics: Vec<SeriesSamples> = Vec::with_capacity(renderers.len() * METRICS.len());
    for mut r in renderers {
        let mut out = r.empty_series(r.g.n);
        r.render(r.g.n, &mut out);
        metrics.extend(out);
    }
    metrics.sort_by(|a, b| a.key.cmp(&b.key));
    tracing::debug!(
        hosts = fleet.dataset.hosts.len(),
        samples = metrics.iter().map(SeriesSamples::len).sum::<usize>(),
        events = fleet.dataset.events.len(),
        failures = fleet.dataset.failures.len(),
        episodes = fleet.episodes.len(),
        "synthetic fleet generated"
    );
    fleet.dataset.metrics = metrics;
    Ok(fleet)
}

/// What [`write_fleet`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Hosts.
    pub hosts: usize,
    /// Resources.
    pub resources: usize,
    /// Metric rows.
    pub metric_rows: u64,
    /// Events.
    pub events: usize,
    /// Failures.
    pub failures: usize,
    /// Ground-truth episodes.
    pub episodes: usize,
}

/// Metric rows per row group [`write_fleet`] aims for.
const ROWS_PER_GROUP: usize = 1 << 20;

/// Generates the fleet for `p` and writes it into `dir` (with `episodes.csv`), a window
/// of time at a time: the hosts are rendered side by side (on every core) for the
/// window, its rows written as one Parquet row group in the contract's order
/// (timestamp, host, metric), so memory holds one window, not the fleet. The rows are
/// those [`generate`] and [`crate::write_dataset`] give; `metrics.csv` is written whole.
///
/// # Errors
/// Invalid parameters or a file that cannot be written.
pub fn write_fleet(p: &SynthParams, dir: &Path, format: crate::MetricsFormat) -> Result<Written, crate::DatasetError> {
    use polars::prelude::*;
    use rayon::prelude::*;
    let invalid = |e: SynthError| crate::DatasetError::Invalid {
        path: dir.to_path_buf(),
        location: crate::read::Location::File,
        reason: e.to_string(),
    };
    if format == crate::MetricsFormat::Csv {
        let fleet = generate(p).map_err(invalid)?;
        crate::write_dataset(&fleet.dataset, dir, format)?;
        let path = dir.join("episodes.csv");
        write_episodes(&fleet.episodes, &path).map_err(|source| crate::DatasetError::Io { path, source })?;
        let ds = &fleet.dataset;
        return Ok(Written {
            hosts: ds.hosts.len(),
            resources: ds.resources.len(),
            metric_rows: ds.metric_rows() as u64,
            events: ds.events.len(),
            failures: ds.failures.len(),
            episodes: fleet.episodes.len(),
        });
    }
    let (fleet, mut renderers) = plan(p).map_err(invalid)?;
    crate::write::write_inventory(&fleet.dataset, dir)?;
    let path = dir.join("episodes.csv");
    write_episodes(&fleet.episodes, &path).map_err(|source| crate::DatasetError::Io { path, source })?;

    // Rows in key order: hosts by id, each host's metrics by name.
    renderers.sort_by(|a, b| a.host.cmp(&b.host));
    let mut by_name: Vec<usize> = (0..METRICS.len()).collect();
    by_name.sort_by_key(|&m| METRICS[m]);
    let path = dir.join("metrics.parquet");
    let enc = |e: PolarsError| crate::DatasetError::Decode { path: path.clone(), reason: format!("encoding failed: {e}") };
    let io = |source| crate::DatasetError::Io { path: path.clone(), source };
    let file = File::create(&path).map_err(io)?;
    let mut w = BufWriter::new(file);
    let schema = Schema::from_iter([
        Field::new("timestamp".into(), DataType::Int64),
        Field::new("host".into(), DataType::String),
        Field::new("metric".into(), DataType::String),
        Field::new("value".into(), DataType::Float64),
    ]);
    let mut writer =
        ParquetWriter::new(&mut w).with_compression(ParquetCompression::Zstd(None)).set_parallel(false).batched(&schema).map_err(enc)?;
    let n_steps = renderers.first().map_or(0, |r| r.g.n);
    let window = (ROWS_PER_GROUP / (renderers.len() * METRICS.len()).max(1)).clamp(1, n_steps.max(1));
    let mut buffers: Vec<Vec<SeriesSamples>> = renderers.iter().map(|r| r.empty_series(window)).collect();
    let mut rows = 0u64;
    let mut k0 = 0;
    while k0 < n_steps {
        renderers.par_iter_mut().zip(buffers.par_iter_mut()).for_each(|(r, out)| {
            for s in out.iter_mut() {
                s.timestamps.clear();
                s.values.clear();
            }
            r.render(window, out);
        });
        let n: usize = buffers.iter().flatten().map(SeriesSamples::len).sum();
        let (mut ts, mut host, mut metric, mut value) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let mut cur: Vec<[usize; 8]> = vec![[0; 8]; buffers.len()];
        let (g, stop) = (renderers[0].g, (k0 + window).min(n_steps));
        for k in k0..stop {
            let t = g.t0 + k as i64 * g.step;
            for (h, out) in buffers.iter().enumerate() {
                for &m in &by_name {
                    let s = &out[m];
                    let c = &mut cur[h][m];
                    if s.timestamps.get(*c) == Some(&t) {
                        ts.push(t);
                        host.push(s.key.host.as_str());
                        metric.push(METRICS[m]);
                        value.push(s.values[*c]);
                        *c += 1;
                    }
                }
            }
        }
        rows += ts.len() as u64;
        let len = ts.len();
        let cols = vec![
            Column::new("timestamp".into(), ts),
            Column::new("host".into(), host),
            Column::new("metric".into(), metric),
            Column::new("value".into(), value),
        ];
        let df = DataFrame::new(len, cols).map_err(enc)?;
        writer.write_batch(&df).map_err(enc)?;
        k0 = stop;
    }
    writer.finish().map_err(enc)?;
    drop(writer);
    w.flush().map_err(io)?;
    let ds = &fleet.dataset;
    Ok(Written {
        hosts: ds.hosts.len(),
        resources: ds.resources.len(),
        metric_rows: rows,
        events: ds.events.len(),
        failures: ds.failures.len(),
        episodes: fleet.episodes.len(),
    })
}

/// The fleet for `p` without its metrics, and each host's metric renderer (in host order).
fn plan(p: &SynthParams) -> Result<(SynthFleet, Vec<Renderer>), SynthError> {
    p.validate()?;
    let steps = usize::try_from(p.steps()).map_err(|_| SynthError::TooFewSteps { days: p.days, step_ms: p.step_ms, steps: p.steps() })?;
    let g = Grid { t0: p.start_ms, step: p.step_ms, n: steps, end: p.start_ms + steps as i64 * p.step_ms };

    let (hosts, resources, mut sims) = build_inventory(p);

    let mut renderers: Vec<Renderer> = Vec::with_capacity(hosts.len());
    let mut events: Vec<(Event, Option<(usize, u32)>)> = Vec::new();
    let mut episodes: Vec<Episode> = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    let mut deploys_per_host: Vec<u32> = Vec::with_capacity(hosts.len());

    for (i, (host, res)) in hosts.iter().zip(sims.iter_mut()).enumerate() {
        let mut mrng = stream(p.seed, i, STREAM_METRICS);
        let prof = Profile::draw(&mut mrng, host.cpu_cores);
        let mut prng = stream(p.seed, i, STREAM_PLAN);
        let mut plan = plan_host(&g, &host.host, &prof, res, &mut prng);
        let (changes, n_deploys) = emit_changes(&mut plan.acts, &host.host, res, &mut prng);
        deploys_per_host.push(n_deploys);
        events.extend(plan.events.into_iter().map(|e| (e, None)));
        events.extend(changes.into_iter().map(|(e, d)| (e, d.map(|d| (i, d)))));
        episodes.append(&mut plan.episodes);
        failures.append(&mut plan.failures);
        renderers.push(Renderer::new(g, &host.host, prof, std::mem::take(&mut plan.specs), mrng));
    }

    // Deployment ids d-1, d-2, .. in order of deploy_started time across the fleet.
    let mut starts: Vec<(i64, usize, String, u32)> = events
        .iter()
        .filter(|(e, _)| e.kind == EventKind::DeployStarted)
        .filter_map(|(e, d)| d.map(|(h, l)| (e.ts, h, e.resource.clone().unwrap_or_default(), l)))
        .collect();
    starts.sort();
    let mut ids: Vec<Vec<u64>> = deploys_per_host.iter().map(|&n| vec![0; n as usize]).collect();
    for (n, (_, h, _, l)) in starts.iter().enumerate() {
        if let Some(slot) = ids.get_mut(*h).and_then(|v| v.get_mut(*l as usize)) {
            *slot = n as u64 + 1;
        }
    }
    let mut events: Vec<Event> = events
        .into_iter()
        .map(|(mut e, d)| {
            if let Some((h, l)) = d {
                let id = ids.get(h).and_then(|v| v.get(l as usize)).copied().unwrap_or(0);
                e.deployment = Some(format!("d-{id}"));
            }
            e
        })
        .collect();
    events.sort_by(|a, b| {
        a.ts.cmp(&b.ts).then_with(|| a.host.cmp(&b.host)).then_with(|| a.kind.cmp(&b.kind)).then_with(|| a.resource.cmp(&b.resource))
    });
    failures.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then_with(|| a.host.cmp(&b.host)));
    episodes.sort_by(episode_order);

    let meta = DatasetMeta {
        name: format!("synth-{}h-{}d-seed{}", p.hosts, p.days, p.seed),
        start_ms: Some(g.t0),
        end_ms: Some(g.end),
        step_ms: Some(g.step),
        seed: Some(p.seed),
        notes: "Synthetic fleet from harbinger's generator: seasonal host metrics with oom, disk_full, \
                thermal, bad_deploy, nic and sudden failures, benign look-alikes, deployments and \
                maintenance; resources.json holds each state at start_ms and episodes.csv holds the \
                ground truth."
            .to_string(),
    };
    Ok((SynthFleet { dataset: Dataset { meta: Some(meta), hosts, resources, metrics: Vec::new(), events, failures }, episodes }, renderers))
}

/// Writes `episodes.csv`: `host,kind,class,start_ms,end_ms,failure_ms` (empty when
/// there is no failure), sorted by (start_ms, host, kind). The same episodes always give
/// the same bytes.
///
/// # Errors
/// Creating or writing the file.
pub fn write_episodes(episodes: &[Episode], path: &Path) -> std::io::Result<()> {
    let mut sorted: Vec<&Episode> = episodes.iter().collect();
    sorted.sort_by(|a, b| episode_order(a, b));
    let mut w = BufWriter::new(File::create(path)?);
    w.write_all(b"host,kind,class,start_ms,end_ms,failure_ms\n")?;
    for e in sorted {
        let failure = e.failure_ms.map(|f| f.to_string()).unwrap_or_default();
        writeln!(w, "{},{},{},{},{},{}", csv_field(e.host.as_str()), csv_field(&e.kind), e.class.as_str(), e.start_ms, e.end_ms, failure)?;
    }
    w.flush()
}

fn episode_order(a: &Episode, b: &Episode) -> std::cmp::Ordering {
    a.start_ms
        .cmp(&b.start_ms)
        .then_with(|| a.host.cmp(&b.host))
        .then_with(|| a.kind.cmp(&b.kind))
        .then_with(|| a.end_ms.cmp(&b.end_ms))
        .then_with(|| a.class.cmp(&b.class))
}

fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) { Cow::Owned(format!("\"{}\"", s.replace('"', "\"\""))) } else { Cow::Borrowed(s) }
}

// ---------------------------------------------------------------------------------------
// Randomness helpers
// ---------------------------------------------------------------------------------------

const STREAM_INVENTORY: u64 = 1;
const STREAM_PLAN: u64 = 2;
const STREAM_METRICS: u64 = 3;

fn fmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent stream for (seed, host, purpose).
fn stream(seed: u64, host: usize, purpose: u64) -> ChaCha8Rng {
    let mut h = fmix(seed.wrapping_add(0x9E37_79B9_7F4A_7C15));
    h = fmix(h ^ (host as u64).wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    h = fmix(h ^ purpose.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7));
    ChaCha8Rng::seed_from_u64(h)
}

fn uni(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

fn log_uni(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    uni(rng, lo.ln(), hi.ln()).exp()
}

fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> usize {
    match Poisson::new(lambda) {
        Ok(d) => {
            let x: f64 = d.sample(rng);
            if x.is_finite() && x >= 0.0 { x.min(1e6) as usize } else { 0 }
        }
        Err(_) => 0,
    }
}

/// Picks from weighted choices. `items` must not be empty (all callers pass constants).
fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (v, w) in items {
        if x < *w {
            return *v;
        }
        x -= *w;
    }
    items[items.len() - 1].0
}

/// Uniform index below `n` (`n` > 0).
fn index(rng: &mut ChaCha8Rng, n: usize) -> usize {
    rng.random_range(0..n.max(1))
}

/// A uniformly drawn time in [lo, hi), rounded to the second and kept in range.
fn time_in(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    sec(uni(rng, lo as f64, hi as f64)).clamp(lo, (hi - 1).max(lo))
}

/// A duration drawn uniformly in [lo, hi] ms, rounded to the second.
fn dur(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    sec(uni(rng, lo as f64, hi as f64))
}

fn sec(ms: f64) -> i64 {
    (ms / 1000.0).round() as i64 * 1000
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

fn is_weekend(t: i64) -> bool {
    // 1970-01-01 was a Thursday; 0 = Sunday.
    let dow = (t.div_euclid(DAY) + 4).rem_euclid(7);
    dow == 0 || dow == 6
}

/// Moves `t` to a time of day drawn in [from_h, to_h) hours on the same UTC day.
fn at_hours(rng: &mut ChaCha8Rng, t: i64, from_h: f64, to_h: f64) -> i64 {
    let day0 = t - t.rem_euclid(DAY);
    day0 + sec(uni(rng, from_h, to_h) * HOUR as f64)
}

/// (e^(a·u) − 1) / (e^a − 1): 0 at u = 0, 1 at u = 1, steeper towards the end.
fn accel(a: f64, u: f64) -> f64 {
    if a.abs() < 1e-9 { u } else { ((a * u).exp() - 1.0) / (a.exp() - 1.0) }
}

// ---------------------------------------------------------------------------------------
// Inventory
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Grid {
    t0: i64,
    step: i64,
    n: usize,
    end: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RKind {
    Service,
    Database,
    Cache,
    Queue,
    Worker,
    Config,
}

impl RKind {
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Database => "database",
            Self::Cache => "cache",
            Self::Queue => "queue",
            Self::Worker => "worker",
            Self::Config => "config",
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            Self::Service => "api",
            Self::Database => "db",
            Self::Cache => "cache",
            Self::Queue => "mq",
            Self::Worker => "worker",
            Self::Config => "cfg",
        }
    }
    fn deployable(self) -> bool {
        matches!(self, Self::Service | Self::Worker)
    }
    /// Kinds this kind may depend on.
    fn dep_kinds(self) -> &'static [RKind] {
        match self {
            Self::Service => &[Self::Database, Self::Cache, Self::Queue, Self::Config, Self::Service],
            Self::Worker => &[Self::Queue, Self::Database, Self::Cache, Self::Config],
            Self::Database | Self::Cache | Self::Queue => &[Self::Config],
            Self::Config => &[],
        }
    }
    /// Configuration knobs and their possible initial values.
    fn knobs(self) -> &'static [(&'static str, &'static [i64])] {
        match self {
            Self::Service => &[("pool_size", &[8, 16, 32, 64]), ("timeout_ms", &[1000, 2000, 3000, 5000]), ("workers", &[4, 8, 16, 32])],
            Self::Worker => &[("batch_size", &[50, 100, 200, 500]), ("concurrency", &[4, 8, 16, 32])],
            Self::Database => &[("max_connections", &[100, 200, 300, 500]), ("shared_buffers_mb", &[1024, 2048, 4096, 8192])],
            Self::Cache => &[("maxmemory_mb", &[1024, 2048, 4096, 8192]), ("ttl_s", &[60, 300, 900, 3600])],
            Self::Queue => &[("partitions", &[6, 12, 24, 48]), ("retention_h", &[24, 72, 168])],
            Self::Config => &[("cache_ttl_s", &[30, 60, 120]), ("rate_limit_rps", &[100, 250, 500, 1000])],
        }
    }
}

/// A resource's mutable state while the timeline is generated.
struct ResSim {
    id: String,
    kind: RKind,
    version: [u32; 3],
    max_version: [u32; 3],
    knobs: Vec<(&'static str, i64)>,
}

impl ResSim {
    fn state(&self) -> Value {
        let mut cfg = serde_json::Map::new();
        for (k, v) in &self.knobs {
            cfg.insert((*k).to_string(), json!(v));
        }
        json!({"version": vstr(self.version), "config": cfg})
    }
}

fn vstr(v: [u32; 3]) -> String {
    format!("{}.{}.{}", v[0], v[1], v[2])
}

fn bump(v: [u32; 3], rng: &mut ChaCha8Rng) -> [u32; 3] {
    let r = rng.random::<f64>();
    if r < 0.05 {
        [v[0].saturating_add(1), 0, 0]
    } else if r < 0.75 {
        [v[0], v[1].saturating_add(1), 0]
    } else {
        [v[0], v[1], v[2].saturating_add(1)]
    }
}

type Inventory = (Vec<Host>, Vec<Resource>, Vec<Vec<ResSim>>);

fn build_inventory(p: &SynthParams) -> Inventory {
    const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
    const CORES: [f64; 4] = [8.0, 16.0, 32.0, 64.0];
    const MEM: [f64; 4] = [32.0, 64.0, 128.0, 256.0];
    let width = (p.hosts.saturating_sub(1)).to_string().len().max(3);
    let mut hosts = Vec::with_capacity(p.hosts);
    let mut resources = Vec::new();
    let mut sims = Vec::with_capacity(p.hosts);
    let mut by_kind: [Vec<String>; 6] = Default::default();
    let mut counters = [0u32; 6];

    for i in 0..p.hosts {
        let mut rng = stream(p.seed, i, STREAM_INVENTORY);
        let zi = i % 3;
        let ci = pick(&mut rng, &[(0usize, 20), (1, 40), (2, 30), (3, 10)]);
        let mi = (ci as i64 + pick(&mut rng, &[(-1i64, 25), (0, 50), (1, 25)])).clamp(0, 3) as usize;
        let host = Host {
            host: HostId::new(format!("h{i:0width$}")),
            zone: ZONES[zi].to_string(),
            rack: format!("r{:02}", (i / 3) / HOSTS_PER_RACK * 3 + zi + 1),
            cpu_cores: CORES[ci],
            mem_gb: MEM[mi],
        };
        let nres = pick(&mut rng, &[(1usize, 35), (2, 40), (3, 25)]);
        let mut mine = Vec::with_capacity(nres);
        for _ in 0..nres {
            let kind = pick(
                &mut rng,
                &[
                    (RKind::Service, 40),
                    (RKind::Database, 15),
                    (RKind::Cache, 12),
                    (RKind::Queue, 8),
                    (RKind::Worker, 17),
                    (RKind::Config, 8),
                ],
            );
            counters[kind.index()] += 1;
            let id = format!("{}-{}", kind.prefix(), counters[kind.index()]);

            // Dependencies only on resources that exist already: the graph stays acyclic.
            let allowed: Vec<RKind> = kind.dep_kinds().iter().copied().filter(|k| !by_kind[k.index()].is_empty()).collect();
            let want = match kind {
                RKind::Service => pick(&mut rng, &[(0usize, 15), (1, 45), (2, 40)]),
                RKind::Worker => pick(&mut rng, &[(1usize, 60), (2, 40)]),
                RKind::Config => 0,
                _ => pick(&mut rng, &[(0usize, 60), (1, 40)]),
            };
            let mut deps: Vec<String> = Vec::new();
            if !allowed.is_empty() {
                for _ in 0..want * 3 {
                    if deps.len() >= want {
                        break;
                    }
                    let dk = allowed[index(&mut rng, allowed.len())];
                    let list = &by_kind[dk.index()];
                    // Prefer recently created resources, so dependencies stay local-ish.
                    let lo = list.len().saturating_sub(50);
                    let d = &list[rng.random_range(lo..list.len())];
                    if !deps.contains(d) {
                        deps.push(d.clone());
                    }
                }
            }
            deps.sort();

            let criticality = match kind {
                RKind::Database => pick(&mut rng, &[(3u8, 85), (2, 15)]),
                RKind::Service => pick(&mut rng, &[(1u8, 20), (2, 50), (3, 30)]),
                RKind::Cache => pick(&mut rng, &[(1u8, 50), (2, 50)]),
                RKind::Queue => pick(&mut rng, &[(2u8, 60), (3, 40)]),
                RKind::Worker => pick(&mut rng, &[(0u8, 30), (1, 45), (2, 25)]),
                RKind::Config => pick(&mut rng, &[(1u8, 30), (2, 40), (3, 30)]),
            };
            let (cpu_lo, cpu_hi, mem_lo, mem_hi) = match kind {
                RKind::Service => (0.5, 4.0, 1.0, 8.0),
                RKind::Database => (2.0, 8.0, 8.0, 64.0),
                RKind::Cache => (0.5, 2.0, 4.0, 32.0),
                RKind::Queue => (1.0, 4.0, 2.0, 16.0),
                RKind::Worker => (1.0, 6.0, 1.0, 8.0),
                RKind::Config => (0.1, 0.5, 0.1, 0.5),
            };
            let half = |x: f64| ((x * 2.0).round() / 2.0).max(0.5);
            let (cpu, mem) = if kind == RKind::Config {
                (round_to(uni(&mut rng, cpu_lo, cpu_hi), 1), round_to(uni(&mut rng, mem_lo, mem_hi), 1))
            } else {
                (half(uni(&mut rng, cpu_lo, cpu_hi).min(host.cpu_cores / 3.0)), half(uni(&mut rng, mem_lo, mem_hi).min(host.mem_gb / 3.0)))
            };
            let version: [u32; 3] = match kind {
                RKind::Service => [1, rng.random_range(0..10), rng.random_range(0..6)],
                RKind::Database => [rng.random_range(12..17), rng.random_range(0..5), 0],
                RKind::Cache => [rng.random_range(6..8), rng.random_range(0..5), rng.random_range(0..11)],
                RKind::Queue => [3, rng.random_range(8..14), rng.random_range(0..6)],
                RKind::Worker => [2, rng.random_range(0..10), rng.random_range(0..6)],
                RKind::Config => [1, 0, rng.random_range(0..41)],
            };
            let knobs = kind.knobs().iter().map(|(name, values)| (*name, values[index(&mut rng, values.len())])).collect();
            let sim = ResSim { id: id.clone(), kind, version, max_version: version, knobs };
            resources.push(Resource {
                id: id.clone(),
                kind: kind.name().to_string(),
                host: host.host.clone(),
                criticality,
                cpu_cores: cpu,
                mem_gb: mem,
                depends_on: deps,
                state: sim.state(),
            });
            by_kind[kind.index()].push(id);
            mine.push(sim);
        }
        sims.push(mine);
        hosts.push(host);
    }
    (hosts, resources, sims)
}

// ---------------------------------------------------------------------------------------
// Per-host profile (baseline levels)
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Profile {
    cores: f64,
    cpu_base: f64,
    amp: f64,
    peak_h: f64,
    peak2_h: f64,
    weekend: f64,
    mem_base: f64,
    drift_per_day: f64,
    drift_cap: f64,
    disk_base: f64,
    disk_growth: f64,
    cleanup_phase: i64,
    io_base: f64,
    lat_base: f64,
    lat_spike_p: f64,
    err_base: f64,
    ambient: f64,
    gain: f64,
    load_f: f64,
    backup_h: f64,
}

impl Profile {
    fn draw(rng: &mut ChaCha8Rng, cores: f64) -> Self {
        Self {
            cores,
            cpu_base: uni(rng, 0.12, 0.42),
            amp: uni(rng, 0.25, 0.6),
            peak_h: uni(rng, 13.5, 16.5),
            peak2_h: uni(rng, 9.0, 11.5),
            weekend: uni(rng, 0.55, 0.85),
            mem_base: uni(rng, 0.25, 0.6),
            drift_per_day: uni(rng, 0.005, 0.03),
            drift_cap: uni(rng, 0.04, 0.12),
            disk_base: uni(rng, 0.15, 0.55),
            disk_growth: uni(rng, 0.002, 0.012),
            cleanup_phase: (uni(rng, 0.0, WEEK as f64)) as i64,
            io_base: uni(rng, 0.005, 0.04),
            lat_base: uni(rng, 0.4, 3.0),
            lat_spike_p: uni(rng, 0.0005, 0.002),
            err_base: uni(rng, 0.01, 0.4),
            ambient: uni(rng, 30.0, 42.0),
            gain: uni(rng, 22.0, 38.0),
            load_f: uni(rng, 0.85, 1.15),
            backup_h: uni(rng, 0.5, 5.0),
        }
    }
    fn disk_mid(&self) -> f64 {
        self.disk_base + self.disk_growth * 3.5
    }
    fn disk_max(&self) -> f64 {
        self.disk_base + self.disk_growth * 7.0
    }
}

// ---------------------------------------------------------------------------------------
// Episode shapes
// ---------------------------------------------------------------------------------------

/// The effect of an episode on the metrics; times in ms.
#[derive(Clone, Copy, Debug)]
enum Spec {
    Oom { s: i64, f: i64, p: f64, amount: f64 },
    DiskFull { s: i64, f: i64, a: f64, amount: f64 },
    Thermal { s: i64, f: i64, a: f64, dt: f64 },
    BadDeploy { s: i64, done: i64, f: i64, p: f64, emax: f64 },
    Nic { s: i64, f: i64, p_end: f64, amp: f64 },
    Down { f: i64, rec: i64 },
    Maint { s: i64, e: i64, rb_s: i64, rb_e: i64 },
    Batch { s: i64, e: i64, lift: f64 },
    MemRestart { s: i64, r: i64, amount: f64, p: f64 },
    LogBurst { s: i64, r: i64, amount: f64 },
    LatBlip { s: i64, e: i64, p: f64, amp: f64 },
    CoolBlip { s: i64, e: i64, dt: f64 },
    Rollback { s: i64, done: i64, rb: i64, e: i64, emax: f64, p: f64 },
    Transient { s: i64, done: i64, e0: f64, tau: f64 },
    DeployBlip { s: i64, done: i64 },
}

/// What the active episodes add to one step.
struct Contrib {
    cpu: f64,
    cpu_mult: f64,
    mem: f64,
    disk: f64,
    io: f64,
    lat_mult: f64,
    err: f64,
    temp: f64,
    load: f64,
    down: bool,
    reset: bool,
    maint: bool,
}

impl Contrib {
    fn new() -> Self {
        Self {
            cpu: 0.0,
            cpu_mult: 1.0,
            mem: 0.0,
            disk: 0.0,
            io: 0.0,
            lat_mult: 1.0,
            err: 0.0,
            temp: 0.0,
            load: 0.0,
            down: false,
            reset: false,
            maint: false,
        }
    }
}

const TRANSIENT_MS: i64 = 45 * MIN;

impl Spec {
    /// The interval [start, end) during which the spec affects samples.
    fn window(&self, step: i64) -> (i64, i64) {
        match *self {
            Self::Oom { s, f, .. }
            | Self::DiskFull { s, f, .. }
            | Self::Thermal { s, f, .. }
            | Self::BadDeploy { s, f, .. }
            | Self::Nic { s, f, .. } => (s, f),
            Self::Down { f, rec } => (f, rec + (20 * MIN).max(step)),
            Self::Maint { s, e, rb_e, .. } => (s, e.max(rb_e + step)),
            Self::MemRestart { s, r, .. } => (s, r + (3 * MIN).max(step)),
            Self::LogBurst { s, r, .. } => (s, r),
            Self::Batch { s, e, .. } | Self::LatBlip { s, e, .. } | Self::CoolBlip { s, e, .. } | Self::Rollback { s, e, .. } => (s, e),
            Self::Transient { s, done, .. } => (s, done + TRANSIENT_MS),
            Self::DeployBlip { s, done } => (s, done),
        }
    }

    fn contribute(&self, t: i64, step: i64, c: &mut Contrib, prof: &Profile, rng: &mut ChaCha8Rng) {
        let prog = |a: i64, b: i64| if b > a { ((t - a) as f64 / (b - a) as f64).clamp(0.0, 1.0) } else { 1.0 };
        let late = |u: f64, from: f64| if u > from { (u - from) / (1.0 - from) } else { 0.0 };
        let first_step_after = |r: i64| t >= r && t < r + step;
        let step_min = step as f64 / MIN as f64;
        let per_step = |p_per_min: f64| 1.0 - (1.0 - p_per_min.clamp(0.0, 1.0)).powf(step_min);
        match *self {
            Self::Oom { s, f, p, amount } => {
                let u = prog(s, f);
                c.mem += amount * u.powf(p);
                // Near the end: GC thrash / swapping.
                let r = late(u, 0.85).powi(2);
                c.cpu += 0.3 * r;
                c.io += 0.2 * r;
                c.lat_mult *= 1.0 + 0.8 * r;
                c.err += prof.err_base * 5.0 * r;
            }
            Self::DiskFull { s, f, a, amount } => {
                let u = prog(s, f);
                c.disk += amount * accel(a, u);
                let r = late(u, 0.75).powi(2);
                c.io += 0.4 * r;
                c.load += prof.cores * 0.3 * r;
                c.err += prof.err_base * 3.0 * r * r;
            }
            Self::Thermal { s, f, a, dt } => {
                let u = prog(s, f);
                c.temp += dt * accel(a, u);
                // Throttling: the same work needs more CPU time, run queues grow.
                let r = late(u, 0.7);
                c.cpu += 0.25 * r;
                c.load += prof.cores * 0.5 * r;
                c.lat_mult *= 1.0 + 0.3 * r;
            }
            Self::BadDeploy { done, f, p, emax, .. } => {
                if t < done {
                    c.cpu += 0.05;
                } else {
                    let w = prog(done, f).powf(p);
                    c.err += emax * w;
                    c.lat_mult *= 1.0 + 1.5 * w;
                    c.cpu += 0.1 * w;
                }
            }
            Self::Nic { s, f, p_end, amp } => {
                let u = prog(s, f);
                let p_min = 0.01 + (p_end - 0.01) * u * u;
                if rng.random::<f64>() < per_step(p_min) {
                    let x: f64 = Exp1.sample(rng);
                    let mult = 1.0 + (1.5 + amp * u) * (0.5 + x);
                    c.lat_mult *= mult;
                    c.err += prof.err_base * 0.1 * (mult - 1.0);
                }
                c.lat_mult *= 1.0 + 2.0 * late(u, 0.8);
            }
            Self::Down { rec, .. } => {
                if t < rec {
                    c.down = true;
                } else {
                    if first_step_after(rec) {
                        c.reset = true;
                    }
                    c.cpu += 0.25 * (-((t - rec) as f64) / (5 * MIN) as f64).exp();
                }
            }
            Self::Maint { e, rb_s, rb_e, .. } => {
                if t < e {
                    c.maint = true;
                    c.cpu_mult *= 0.2;
                }
                if t >= rb_s && t < rb_e {
                    c.down = true;
                }
                if first_step_after(rb_e) {
                    c.reset = true;
                }
            }
            Self::Batch { s, e, lift } => {
                let ramp = (5 * MIN) as f64;
                let env = ((t - s) as f64 / ramp).min((e - t) as f64 / ramp).clamp(0.0, 1.0);
                c.cpu += lift * env;
                c.io += 0.05 * env;
                c.mem += 0.04 * env;
            }
            Self::MemRestart { s, r, amount, p } => {
                if t < r {
                    c.mem += amount * prog(s, r).powf(p);
                } else {
                    if first_step_after(r) {
                        c.reset = true;
                    }
                    if t < r + 3 * MIN {
                        c.err += prof.err_base * 2.0;
                        c.cpu_mult *= 0.7;
                    }
                }
            }
            Self::LogBurst { s, r, amount } => {
                c.disk += amount * prog(s, r).powf(0.9);
                c.io += 0.04;
            }
            Self::LatBlip { p, amp, .. } => {
                if rng.random::<f64>() < per_step(p) {
                    let x: f64 = Exp1.sample(rng);
                    c.lat_mult *= 1.0 + amp * (0.5 + x);
                }
            }
            Self::CoolBlip { s, e, dt } => {
                c.temp += dt * (std::f64::consts::PI * prog(s, e)).sin();
            }
            Self::Rollback { done, rb, emax, p, .. } => {
                if t < done {
                    c.cpu += 0.05;
                } else if t < rb {
                    let w = prog(done, rb).powf(p);
                    c.err += emax * w;
                    c.lat_mult *= 1.0 + 0.8 * w;
                } else {
                    c.err += emax * (-((t - rb) as f64) / (5 * MIN) as f64).exp();
                }
            }
            Self::Transient { done, e0, tau, .. } => {
                if t < done {
                    c.cpu += 0.05;
                } else {
                    c.err += e0 * (-((t - done) as f64) / tau).exp();
                }
            }
            Self::DeployBlip { .. } => {
                c.cpu += 0.03;
                c.err += prof.err_base * 0.5;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Planning: when what happens on a host
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FKind {
    Oom,
    DiskFull,
    Thermal,
    BadDeploy,
    Nic,
    Sudden,
}

impl FKind {
    fn name(self) -> &'static str {
        match self {
            Self::Oom => "oom",
            Self::DiskFull => "disk_full",
            Self::Thermal => "thermal",
            Self::BadDeploy => "bad_deploy",
            Self::Nic => "nic",
            Self::Sudden => "sudden",
        }
    }
    /// Precursor length, log-uniform in the kind's range.
    fn precursor_ms(self, rng: &mut ChaCha8Rng) -> i64 {
        let (lo, hi) = match self {
            Self::Oom => (2.0, 24.0),
            Self::DiskFull => (3.0, 48.0),
            Self::Thermal => (1.0, 6.0),
            Self::BadDeploy => (1.0, 4.0),
            Self::Nic => (2.0, 12.0),
            Self::Sudden => return 0,
        };
        sec(log_uni(rng, lo, hi) * HOUR as f64)
    }
}

/// Failure kinds and weights; the one needing a deployable resource comes last.
const FAILURE_KINDS: [(FKind, u32); 6] =
    [(FKind::Oom, 22), (FKind::DiskFull, 18), (FKind::Thermal, 13), (FKind::Nic, 17), (FKind::Sudden, 15), (FKind::BadDeploy, 15)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BKind {
    BatchJob,
    MemGrowthRestart,
    LogBurst,
    LatencyBlip,
    CoolingBlip,
    RolledBack,
}

impl BKind {
    fn name(self) -> &'static str {
        match self {
            Self::BatchJob => "batch_job",
            Self::MemGrowthRestart => "mem_growth_restart",
            Self::LogBurst => "log_burst",
            Self::LatencyBlip => "latency_blip",
            Self::CoolingBlip => "cooling_blip",
            Self::RolledBack => "bad_deploy_rolled_back",
        }
    }
}

/// Benign kinds and weights; the one needing a deployable resource comes last.
const BENIGN_KINDS: [(BKind, u32); 6] = [
    (BKind::BatchJob, 25),
    (BKind::MemGrowthRestart, 20),
    (BKind::LogBurst, 20),
    (BKind::LatencyBlip, 12),
    (BKind::CoolingBlip, 8),
    (BKind::RolledBack, 15),
];

/// A change to a resource, turned into events once all are known.
#[derive(Clone, Copy, Debug)]
struct Act {
    t: i64,
    res: usize,
    what: ActKind,
}

#[derive(Clone, Copy, Debug)]
enum ActKind {
    Deploy { done: i64, failed: bool, bad: bool, rollback: Option<i64> },
    Config,
}

#[derive(Default)]
struct HostPlan {
    episodes: Vec<Episode>,
    specs: Vec<Spec>,
    acts: Vec<Act>,
    events: Vec<Event>,
    failures: Vec<Failure>,
}

/// Required distance between an episode of class `a` and one of class `b`, if any.
fn required_gap(a: EpisodeClass, b: EpisodeClass) -> Option<i64> {
    use EpisodeClass::*;
    match (a, b) {
        (Deploy, Deploy) => None,
        (Deploy, Precursor | Sudden) | (Precursor | Sudden, Deploy) => Some(GAP_MS),
        (Deploy, _) | (_, Deploy) => Some(HOUR),
        _ => Some(GAP_MS),
    }
}

struct Planner<'a> {
    g: Grid,
    host: &'a HostId,
    prof: &'a Profile,
    occ: Vec<(i64, i64, EpisodeClass)>,
    busy: Vec<Vec<(i64, i64)>>,
    deployable: Vec<usize>,
    plan: HostPlan,
}

impl Planner<'_> {
    fn fits(&self, s: i64, e: i64, class: EpisodeClass) -> bool {
        self.occ.iter().all(|&(a, b, c)| match required_gap(class, c) {
            None => true,
            Some(gap) => e + gap <= a || s >= b + gap,
        })
    }

    fn res_free(&self, r: usize, s: i64, e: i64) -> bool {
        self.busy.get(r).is_some_and(|v| v.iter().all(|&(a, b)| e + 30 * MIN <= a || s >= b + 30 * MIN))
    }

    fn occupy_res(&mut self, r: usize, s: i64, e: i64) {
        if let Some(v) = self.busy.get_mut(r) {
            v.push((s, e));
        }
    }

    fn episode(&mut self, kind: &str, class: EpisodeClass, s: i64, e: i64, failure: Option<i64>) {
        self.occ.push((s, e, class));
        self.plan.episodes.push(Episode {
            host: self.host.clone(),
            kind: kind.to_string(),
            class,
            start_ms: s,
            end_ms: e,
            failure_ms: failure,
        });
    }

    fn host_event(&mut self, ts: i64, kind: EventKind) {
        if ts >= self.g.t0 && ts < self.g.end {
            let mut ev = Event::new(ts, kind);
            ev.host = Some(self.host.clone());
            self.plan.events.push(ev);
        }
    }

    fn place_failures(&mut self, count: usize, rng: &mut ChaCha8Rng) {
        let g = self.g;
        for _ in 0..count {
            for _attempt in 0..25 {
                // Hosts without a deployable resource cannot fail by a bad deploy.
                let kind = if self.deployable.is_empty() {
                    pick(rng, &FAILURE_KINDS[..FAILURE_KINDS.len() - 1])
                } else {
                    pick(rng, &FAILURE_KINDS)
                };
                let d = kind.precursor_ms(rng);
                let down = dur(rng, 20 * MIN, 120 * MIN);
                let lo = (g.t0 + HISTORY_MS).max(g.t0 + 2 * HOUR + d);
                if lo >= g.end {
                    continue;
                }
                let f = time_in(rng, lo, g.end);
                let (s, rec) = (f - d, f + down);
                let class = if kind == FKind::Sudden { EpisodeClass::Sudden } else { EpisodeClass::Precursor };
                if !self.fits(s, rec, class) {
                    continue;
                }
                let res = if kind == FKind::BadDeploy {
                    let r = self.deployable[index(rng, self.deployable.len())];
                    if !self.res_free(r, s, f) {
                        continue;
                    }
                    Some(r)
                } else {
                    None
                };
                self.commit_failure(kind, s, f, rec, res, rng);
                break;
            }
        }
    }

    fn commit_failure(&mut self, kind: FKind, s: i64, f: i64, rec: i64, res: Option<usize>, rng: &mut ChaCha8Rng) {
        let prof = self.prof;
        let class = if kind == FKind::Sudden { EpisodeClass::Sudden } else { EpisodeClass::Precursor };
        self.episode(kind.name(), class, s, rec, Some(f));
        self.plan.failures.push(Failure { host: self.host.clone(), timestamp: f, kind: kind.name().to_string() });
        let spec = match kind {
            FKind::Oom => Some(Spec::Oom { s, f, p: uni(rng, 1.0, 3.0), amount: (1.0 - prof.mem_base).max(0.15) + 0.03 }),
            FKind::DiskFull => Some(Spec::DiskFull { s, f, a: uni(rng, 0.5, 3.5), amount: (1.0 - prof.disk_mid()).max(0.1) + 0.02 }),
            FKind::Thermal => Some(Spec::Thermal {
                s,
                f,
                a: uni(rng, 1.5, 4.0),
                dt: (uni(rng, 95.0, 108.0) - (prof.ambient + prof.gain * prof.cpu_base)).max(20.0),
            }),
            FKind::BadDeploy => {
                let done = s + dur(rng, 2 * MIN, 8 * MIN);
                if let Some(r) = res {
                    self.occupy_res(r, s, f);
                    self.plan.acts.push(Act { t: s, res: r, what: ActKind::Deploy { done, failed: false, bad: true, rollback: None } });
                }
                Some(Spec::BadDeploy { s, done, f, p: uni(rng, 1.0, 2.5), emax: prof.err_base * uni(rng, 15.0, 60.0) + uni(rng, 0.5, 3.0) })
            }
            FKind::Nic => Some(Spec::Nic { s, f, p_end: uni(rng, 0.2, 0.6), amp: uni(rng, 10.0, 40.0) }),
            FKind::Sudden => None,
        };
        self.plan.specs.extend(spec);
        self.plan.specs.push(Spec::Down { f, rec });
        self.host_event(rec, EventKind::HostRecovered);
    }

    fn place_maintenance(&mut self, count: usize, rng: &mut ChaCha8Rng) {
        let g = self.g;
        for _ in 0..count {
            for _attempt in 0..20 {
                let len = dur(rng, 30 * MIN, 120 * MIN);
                let (lo, hi) = (g.t0 + HOUR, g.end - len - 10 * MIN);
                if lo >= hi {
                    continue;
                }
                let mut s = time_in(rng, lo, hi);
                if chance(rng, 0.7) {
                    s = at_hours(rng, s, 1.0, 5.0); // mostly at night
                }
                if s < lo || s >= hi {
                    continue;
                }
                let e = s + len;
                if !self.fits(s, e, EpisodeClass::Maintenance) {
                    continue;
                }
                let rb_s = s + sec(uni(rng, 0.3, 0.6) * len as f64);
                let rb_e = rb_s + dur(rng, 3 * MIN, 15 * MIN).min((e - rb_s) / 2);
                self.episode("maintenance", EpisodeClass::Maintenance, s, e, None);
                self.plan.specs.push(Spec::Maint { s, e, rb_s, rb_e });
                self.host_event(s, EventKind::HostMaintenance);
                self.host_event(e, EventKind::HostRecovered);
                break;
            }
        }
    }

    fn place_benign(&mut self, count: usize, rng: &mut ChaCha8Rng) {
        let g = self.g;
        let prof = self.prof;
        for _ in 0..count {
            for _attempt in 0..20 {
                let kind =
                    if self.deployable.is_empty() { pick(rng, &BENIGN_KINDS[..BENIGN_KINDS.len() - 1]) } else { pick(rng, &BENIGN_KINDS) };
                // Durations first (relative), then the start.
                let (a, b) = match kind {
                    BKind::BatchJob => (dur(rng, 30 * MIN, 90 * MIN), 0),
                    BKind::MemGrowthRestart => (sec(log_uni(rng, 2.0, 12.0) * HOUR as f64), 10 * MIN),
                    BKind::LogBurst => (dur(rng, 20 * MIN, 120 * MIN), 5 * MIN),
                    BKind::LatencyBlip => (dur(rng, 10 * MIN, 40 * MIN), 0),
                    BKind::CoolingBlip => (dur(rng, 30 * MIN, 120 * MIN), 0),
                    BKind::RolledBack => (dur(rng, 2 * MIN, 8 * MIN), dur(rng, 30 * MIN, 120 * MIN)),
                };
                let total = a + b + if kind == BKind::RolledBack { 20 * MIN } else { 0 };
                let (lo, hi) = (g.t0 + HOUR, g.end - total - MIN);
                if lo >= hi {
                    continue;
                }
                let s = time_in(rng, lo, hi);
                let e = s + total;
                if !self.fits(s, e, EpisodeClass::Benign) {
                    continue;
                }
                let spec = match kind {
                    BKind::BatchJob => Spec::Batch { s, e, lift: (uni(rng, 0.8, 0.97) - prof.cpu_base).max(0.2) },
                    BKind::MemGrowthRestart => Spec::MemRestart {
                        s,
                        r: s + a,
                        amount: uni(rng, 0.15, 0.35).min((0.9 - prof.mem_base - prof.drift_cap).max(0.08)),
                        p: uni(rng, 0.8, 2.0),
                    },
                    BKind::LogBurst => Spec::LogBurst { s, r: s + a, amount: uni(rng, 0.08, 0.25).min((0.9 - prof.disk_max()).max(0.05)) },
                    BKind::LatencyBlip => Spec::LatBlip { s, e, p: uni(rng, 0.1, 0.35), amp: uni(rng, 2.0, 8.0) },
                    BKind::CoolingBlip => Spec::CoolBlip { s, e, dt: uni(rng, 4.0, 10.0) },
                    BKind::RolledBack => {
                        let r = self.deployable[index(rng, self.deployable.len())];
                        if !self.res_free(r, s, e) {
                            continue;
                        }
                        let (done, rb) = (s + a, s + a + b);
                        self.occupy_res(r, s, e);
                        self.plan.acts.push(Act {
                            t: s,
                            res: r,
                            what: ActKind::Deploy { done, failed: false, bad: true, rollback: Some(rb) },
                        });
                        Spec::Rollback {
                            s,
                            done,
                            rb,
                            e,
                            emax: prof.err_base * uni(rng, 5.0, 25.0) + uni(rng, 0.3, 1.5),
                            p: uni(rng, 1.0, 2.5),
                        }
                    }
                };
                self.episode(kind.name(), EpisodeClass::Benign, s, e, None);
                self.plan.specs.push(spec);
                break;
            }
        }
    }

    fn schedule_deploys(&mut self, rng: &mut ChaCha8Rng) {
        let g = self.g;
        for r in self.deployable.clone() {
            let mut t = g.t0 + dur(rng, 0, 2 * DAY);
            while t < g.end {
                let next = t + dur(rng, DAY, 3 * DAY);
                let ts = if chance(rng, 0.8) { at_hours(rng, t, 9.0, 18.0) } else { t };
                let skip = is_weekend(ts) && chance(rng, 0.7);
                let done = ts + dur(rng, 2 * MIN, 8 * MIN);
                if !skip && ts >= g.t0 + 10 * MIN && done < g.end && self.res_free(r, ts, done) && self.fits(ts, done, EpisodeClass::Deploy)
                {
                    let transient =
                        chance(rng, 0.15) && done + TRANSIENT_MS < g.end && self.fits(ts, done + TRANSIENT_MS, EpisodeClass::Benign);
                    let mut failed = false;
                    if transient {
                        self.episode("deploy_transient", EpisodeClass::Benign, ts, done + TRANSIENT_MS, None);
                        let e0 = self.prof.err_base * uni(rng, 3.0, 10.0) + uni(rng, 0.2, 1.0);
                        let tau = uni(rng, 4.0, 8.0) * MIN as f64;
                        self.plan.specs.push(Spec::Transient { s: ts, done, e0, tau });
                    } else {
                        failed = chance(rng, 0.04);
                        let kind = if failed { "deploy_failed" } else { "deploy" };
                        self.episode(kind, EpisodeClass::Deploy, ts, done, None);
                        self.plan.specs.push(Spec::DeployBlip { s: ts, done });
                    }
                    self.occupy_res(r, ts, done);
                    self.plan.acts.push(Act { t: ts, res: r, what: ActKind::Deploy { done, failed, bad: false, rollback: None } });
                }
                t = next;
            }
        }
    }

    fn schedule_config_changes(&mut self, kinds: &[RKind], rng: &mut ChaCha8Rng) {
        let g = self.g;
        for (r, kind) in kinds.iter().enumerate() {
            let (lo, hi) = if *kind == RKind::Config { (0.75, 2.5) } else { (2.0, 6.0) };
            let mut t = g.t0 + sec(uni(rng, 0.0, hi) * DAY as f64);
            while t < g.end {
                let next = t + sec(uni(rng, lo, hi) * DAY as f64);
                let ts = if chance(rng, 0.7) { at_hours(rng, t, 8.0, 19.0) } else { t };
                if ts >= g.t0 + 10 * MIN && ts < g.end && self.res_free(r, ts, ts + MIN) && self.fits(ts, ts + MIN, EpisodeClass::Deploy) {
                    self.episode("config_change", EpisodeClass::Deploy, ts, ts, None);
                    self.occupy_res(r, ts, ts + MIN);
                    self.plan.acts.push(Act { t: ts, res: r, what: ActKind::Config });
                }
                t = next;
            }
        }
    }
}

fn plan_host(g: &Grid, host: &HostId, prof: &Profile, res: &[ResSim], rng: &mut ChaCha8Rng) -> HostPlan {
    let days = (g.end - g.t0) as f64 / DAY as f64;
    let mut pl = Planner {
        g: *g,
        host,
        prof,
        occ: Vec::new(),
        busy: vec![Vec::new(); res.len()],
        deployable: res.iter().enumerate().filter(|(_, r)| r.kind.deployable()).map(|(i, _)| i).collect(),
        plan: HostPlan::default(),
    };
    let n_fail = poisson(rng, FAILURE_RATE * days);
    let n_maint = poisson(rng, MAINT_RATE * days);
    let n_benign = poisson(rng, BENIGN_RATE * days);
    pl.place_failures(n_fail, rng);
    pl.place_maintenance(n_maint, rng);
    pl.place_benign(n_benign, rng);
    pl.schedule_deploys(rng);
    let kinds: Vec<RKind> = res.iter().map(|r| r.kind).collect();
    pl.schedule_config_changes(&kinds, rng);
    pl.plan
}

/// Turns the planned changes into events, in time order, evolving each resource's
/// version and configuration. Returns the events (with host-local deployment numbers)
/// and the number of deployments.
fn emit_changes(acts: &mut [Act], host: &HostId, res: &mut [ResSim], rng: &mut ChaCha8Rng) -> (Vec<(Event, Option<u32>)>, u32) {
    acts.sort_by(|a, b| a.t.cmp(&b.t).then_with(|| a.res.cmp(&b.res)));
    let mut out = Vec::new();
    let mut local = 0u32;
    let ev = |ts: i64, kind: EventKind, r: &ResSim| {
        let mut e = Event::new(ts, kind);
        e.resource = Some(r.id.clone());
        e.host = Some(host.clone());
        e
    };
    for act in acts.iter() {
        let Some(r) = res.get_mut(act.res) else { continue };
        match act.what {
            ActKind::Deploy { done, failed, bad, rollback } => {
                let id = local;
                local += 1;
                let from = r.version;
                let to = bump(r.max_version, rng);
                r.max_version = to;
                let mut changes = vec![Change { path: "/version".into(), from: Some(json!(vstr(from))), to: Some(json!(vstr(to))) }];
                let mut knob: Option<(usize, i64, i64)> = None;
                if (bad || chance(rng, 0.35)) && !r.knobs.is_empty() {
                    let ki = index(rng, r.knobs.len());
                    let (name, old) = r.knobs[ki];
                    let factor = if bad { [0.25, 0.5, 3.0, 4.0][index(rng, 4)] } else { [0.5, 0.75, 1.25, 1.5, 2.0][index(rng, 5)] };
                    let new = ((old as f64 * factor).round() as i64).max(1);
                    if new != old {
                        changes.push(Change { path: format!("/config/{name}"), from: Some(json!(old)), to: Some(json!(new)) });
                        knob = Some((ki, old, new));
                    }
                }
                let mut started = ev(act.t, EventKind::DeployStarted, r);
                started.from = Some(json!(vstr(from)));
                started.to = Some(json!(vstr(to)));
                started.changes = changes.clone();
                out.push((started, Some(id)));
                let mut finished = ev(done, if failed { EventKind::DeployFailed } else { EventKind::DeploySucceeded }, r);
                finished.from = Some(json!(vstr(from)));
                finished.to = Some(json!(vstr(to)));
                out.push((finished, Some(id)));
                if failed {
                    continue;
                }
                r.version = to;
                if let Some((ki, _, new)) = knob {
                    r.knobs[ki].1 = new;
                }
                if let Some(rb) = rollback {
                    let mut back = ev(rb, EventKind::RolledBack, r);
                    back.from = Some(json!(vstr(to)));
                    back.to = Some(json!(vstr(from)));
                    back.changes = changes.into_iter().map(|c| Change { path: c.path, from: c.to, to: c.from }).collect();
                    out.push((back, Some(id)));
                    r.version = from;
                    if let Some((ki, old, _)) = knob {
                        r.knobs[ki].1 = old;
                    }
                }
            }
            ActKind::Config => {
                if r.knobs.is_empty() {
                    continue;
                }
                let ki = index(rng, r.knobs.len());
                let (name, old) = r.knobs[ki];
                let factor = [0.5, 0.75, 1.25, 1.5, 2.0][index(rng, 5)];
                let mut new = ((old as f64 * factor).round() as i64).max(1);
                if new == old {
                    new = old + 1;
                }
                let mut e = ev(act.t, EventKind::ConfigChanged, r);
                e.changes = vec![Change { path: format!("/config/{name}"), from: Some(json!(old)), to: Some(json!(new)) }];
                r.knobs[ki].1 = new;
                out.push((e, None));
            }
        }
    }
    (out, local)
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

/// AR(1) noise with time constant `tau` and stationary standard deviation `sd`.
struct Ar {
    phi: f64,
    sig: f64,
    sd: f64,
    x: f64,
}

impl Ar {
    fn new(tau_ms: f64, sd: f64, step: i64, rng: &mut ChaCha8Rng) -> Self {
        let phi = (-(step as f64) / tau_ms).exp();
        Self { phi, sig: sd * (1.0 - phi * phi).sqrt(), sd, x: sd * normal(rng) }
    }
    fn next(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        self.x = self.phi * self.x + self.sig * normal(rng);
        self.x
    }
    fn reset(&mut self, rng: &mut ChaCha8Rng) {
        self.x = self.sd * normal(rng);
    }
}

/// One host's metrics rendered step by step: [`Renderer::render`] continues where the
/// last call stopped, so a fleet can be rendered a window of time at a time (hosts side
/// by side) with the very samples rendering each host whole gives.
struct Renderer {
    g: Grid,
    host: HostId,
    prof: Profile,
    specs: Vec<Spec>,
    rng: ChaCha8Rng,
    ars: [Ar; 8],
    alpha: f64,
    drift_step: f64,
    drift: f64,
    cpu_ema: f64,
    gap_left: u32,
    next_spec: usize,
    active: Vec<Spec>,
    /// Next step to render.
    k: usize,
}

impl Renderer {
    fn new(g: Grid, host: &HostId, prof: Profile, mut specs: Vec<Spec>, mut rng: ChaCha8Rng) -> Self {
        let step = g.step;
        specs.sort_by_key(|s| s.window(step));
        let rng_ = &mut rng;
        let ars = [
            Ar::new((8 * MIN) as f64, 0.03, step, rng_),
            Ar::new(HOUR as f64, 0.006, step, rng_),
            Ar::new((3 * HOUR) as f64, 0.0015, step, rng_),
            Ar::new((5 * MIN) as f64, 0.35, step, rng_),
            Ar::new((3 * MIN) as f64, 0.12, step, rng_),
            Ar::new((10 * MIN) as f64, 0.35, step, rng_),
            Ar::new((20 * MIN) as f64, 0.5, step, rng_),
            Ar::new((2 * MIN) as f64, 0.08, step, rng_),
        ];
        let alpha = 1.0 - (-(step as f64) / (10 * MIN) as f64).exp();
        let drift_step = prof.drift_per_day * step as f64 / DAY as f64;
        let cpu_ema = prof.cpu_base;
        Renderer {
            g,
            host: host.clone(),
            prof,
            specs,
            rng,
            ars,
            alpha,
            drift_step,
            drift: 0.0,
            cpu_ema,
            gap_left: 0,
            next_spec: 0,
            active: Vec::new(),
            k: 0,
        }
    }

    /// The host's series (in `METRICS` order), empty, with room for `cap` samples each.
    fn empty_series(&self, cap: usize) -> Vec<SeriesSamples> {
        METRICS
            .iter()
            .map(|m| SeriesSamples {
                key: SeriesKey::new(&self.host, m),
                timestamps: Vec::with_capacity(cap),
                values: Vec::with_capacity(cap),
            })
            .collect()
    }

    /// Renders the next `steps` steps (fewer at the end of the grid) onto `out`.
    fn render(&mut self, steps: usize, out: &mut [SeriesSamples]) {
        let (g, step, prof) = (self.g, self.g.step, self.prof);
        let rng = &mut self.rng;
        let [cpu_ar, mem_ar, disk_ar, io_ar, lat_ar, err_ar, temp_ar, load_ar] = &mut self.ars;
        let (alpha, drift_step) = (self.alpha, self.drift_step);
        let tau = std::f64::consts::TAU;
        let (specs, active) = (&self.specs, &mut self.active);
        let (drift, cpu_ema, gap_left, next_spec) = (&mut self.drift, &mut self.cpu_ema, &mut self.gap_left, &mut self.next_spec);
        let stop = (self.k + steps).min(g.n);
        for k in self.k..stop {
            let t = g.t0 + k as i64 * step;
            while *next_spec < specs.len() && specs[*next_spec].window(step).0 <= t {
                active.push(specs[*next_spec]);
                *next_spec += 1;
            }
            active.retain(|s| s.window(step).1 > t);
            let mut c = Contrib::new();
            for s in active.iter() {
                s.contribute(t, step, &mut c, &prof, rng);
            }

            let h = t.rem_euclid(DAY) as f64 / HOUR as f64;
            let daily = ((h - prof.peak_h) * tau / 24.0).cos() + 0.25 * ((h - prof.peak2_h) * tau / 12.0).cos();
            let week = if is_weekend(t) { prof.weekend } else { 1.0 };
            let traffic = week * (1.0 + prof.amp * daily).max(0.05);
            let backup = h >= prof.backup_h && h < prof.backup_h + 1.0 / 3.0;

            if c.reset {
                *drift = 0.0;
                mem_ar.reset(rng);
            }
            *drift = (*drift + drift_step).min(prof.drift_cap);

            let cpu =
                ((prof.cpu_base * traffic + cpu_ar.next(rng) + c.cpu + if backup { 0.12 } else { 0.0 }) * c.cpu_mult).clamp(0.005, 1.0);
            let mem = (prof.mem_base + 0.03 * (traffic - 1.0) + *drift + mem_ar.next(rng) + c.mem).clamp(0.02, 1.0);
            let since_cleanup = (t - prof.cleanup_phase).rem_euclid(WEEK) as f64 / DAY as f64;
            let disk = (prof.disk_base + prof.disk_growth * since_cleanup + disk_ar.next(rng) + c.disk).clamp(0.01, 1.0);
            let io = (prof.io_base * io_ar.next(rng).exp() + 0.05 * cpu + if backup { 0.08 } else { 0.0 } + c.io).clamp(0.0, 1.0);
            let spike = if rng.random::<f64>() < prof.lat_spike_p { uni(rng, 2.0, 5.0) } else { 1.0 };
            let lat = (prof.lat_base * (1.0 + 0.3 * (traffic - 1.0)).max(0.5) * lat_ar.next(rng).exp() * c.lat_mult * spike).max(0.05);
            let err = (prof.err_base * traffic.max(0.05) * err_ar.next(rng).exp() + c.err).max(0.0);
            *cpu_ema += alpha * (cpu - *cpu_ema);
            let room = 1.5 * ((h - 15.0) * tau / 24.0).cos();
            let temp = prof.ambient + room + prof.gain * *cpu_ema + temp_ar.next(rng) + c.temp;
            let load = ((cpu * prof.cores * prof.load_f + io * prof.cores * 0.25) * load_ar.next(rng).exp() + c.load).max(0.0);
            let vals = [cpu, mem, disk, io, lat, err, temp, load];

            // Which samples are written.
            if c.down {
                continue;
            }
            if *gap_left > 0 {
                *gap_left -= 1;
                continue;
            }
            if rng.random::<f64>() < P_GAP {
                *gap_left = rng.random_range(0..5u32);
                continue;
            }
            let r = rng.random::<f64>();
            let (miss, miss_nan) = if r < METRICS.len() as f64 * P_MISS {
                let m = ((r / P_MISS) as usize).min(METRICS.len() - 1);
                (m, r - m as f64 * P_MISS < NAN_SHARE * P_MISS)
            } else {
                (usize::MAX, false)
            };
            for (m, series) in out.iter_mut().enumerate() {
                if m == miss {
                    if miss_nan {
                        series.push(t, f64::NAN);
                    }
                    continue;
                }
                if c.maint && rng.random::<f64>() < MAINT_MISS {
                    continue;
                }
                series.push(t, round_to(vals[m], DECIMALS[m]));
            }
        }
        self.k = stop;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbinger_core::inventory::{validate_hosts, validate_resources};

    fn small(seed: u64) -> SynthParams {
        SynthParams { hosts: 6, days: 3.0, step_ms: 5 * MIN, seed, ..SynthParams::default() }
    }

    fn big() -> SynthFleet {
        generate(&SynthParams { hosts: 40, days: 14.0, step_ms: 10 * MIN, seed: 7, ..SynthParams::default() }).expect("valid params")
    }

    #[test]
    fn a_fleet_written_a_window_at_a_time_reads_back_as_generated() {
        // 7 hosts x 8 metrics x 5-minute steps: windows of many steps, the last one short.
        let p = SynthParams { hosts: 7, days: 2.0, step_ms: 5 * MIN, seed: 9, ..SynthParams::default() };
        let fleet = generate(&p).expect("params");
        let dir = tempfile::tempdir().expect("tmp");
        let w = write_fleet(&p, dir.path(), crate::MetricsFormat::Parquet).expect("write");
        let (back, _) = crate::read_dataset(dir.path(), crate::LoadOptions::default()).expect("read");
        assert_eq!(w.metric_rows, fleet.dataset.metric_rows() as u64);
        assert_eq!((w.hosts, w.failures, w.episodes), (fleet.dataset.hosts.len(), fleet.dataset.failures.len(), fleet.episodes.len()));
        let same = SynthFleet { dataset: back, episodes: fleet.episodes.clone() };
        assert!(same_metrics(&same.dataset, &fleet.dataset));
        assert_eq!(
            (&same.dataset.events, &same.dataset.failures, &same.dataset.hosts),
            (&fleet.dataset.events, &fleet.dataset.failures, &fleet.dataset.hosts)
        );
        // The file is in the contract's order: by timestamp, then host, then metric.
        let bytes = std::fs::read(dir.path().join("metrics.parquet")).expect("file");
        let df = polars::prelude::ParquetReader::new(std::io::Cursor::new(bytes)).finish().expect("parquet");
        use polars::prelude::SerReader;
        let ts: Vec<i64> = df.column("timestamp").expect("ts").i64().expect("i64").into_no_null_iter().collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]));
        // The same parameters write the same bytes.
        let again = tempfile::tempdir().expect("tmp");
        write_fleet(&p, again.path(), crate::MetricsFormat::Parquet).expect("write");
        for f in ["metrics.parquet", "hosts.csv", "events.jsonl", "failures.csv", "episodes.csv", "resources.json"] {
            assert_eq!(std::fs::read(dir.path().join(f)).expect("a"), std::fs::read(again.path().join(f)).expect("b"), "{f}");
        }
    }

    fn same_metrics(x: &Dataset, y: &Dataset) -> bool {
        x.metrics.len() == y.metrics.len()
            && x.metrics.iter().zip(&y.metrics).all(|(s, t)| {
                s.key == t.key
                    && s.timestamps == t.timestamps
                    && s.values.iter().zip(&t.values).all(|(u, v)| u.to_bits() == v.to_bits() || (u.is_nan() && v.is_nan()))
            })
    }

    /// Equality that treats NaN samples as equal to each other (bitwise).
    fn same(a: &SynthFleet, b: &SynthFleet) -> bool {
        let (x, y) = (&a.dataset, &b.dataset);
        x.meta == y.meta
            && x.hosts == y.hosts
            && x.resources == y.resources
            && x.events == y.events
            && x.failures == y.failures
            && a.episodes == b.episodes
            && x.metrics.len() == y.metrics.len()
            && x.metrics.iter().zip(&y.metrics).all(|(s, t)| {
                s.key == t.key
                    && s.timestamps == t.timestamps
                    && s.values.len() == t.values.len()
                    && s.values.iter().zip(&t.values).all(|(u, v)| u.to_bits() == v.to_bits())
            })
    }

    fn series<'a>(f: &'a SynthFleet, host: &str, metric: &str) -> &'a SeriesSamples {
        f.dataset.metrics.iter().find(|s| s.key.host.as_str() == host && s.key.metric.as_str() == metric).expect("series exists")
    }

    /// Mean of the non-NaN samples in [a, b); None when a scrape gap left none.
    fn mean_in(s: &SeriesSamples, a: i64, b: i64) -> Option<f64> {
        let v: Vec<f64> = s.timestamps.iter().zip(&s.values).filter(|(t, v)| **t >= a && **t < b && !v.is_nan()).map(|(_, v)| *v).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    #[test]
    fn same_seed_same_fleet_different_seed_different() {
        let a = generate(&small(3)).expect("valid");
        let b = generate(&small(3)).expect("valid");
        assert!(same(&a, &b));
        let c = generate(&small(4)).expect("valid");
        assert!(!same(&a, &c));
        assert_ne!(a.dataset.hosts, c.dataset.hosts);
        let meta = a.dataset.meta.as_ref().expect("meta");
        assert_eq!(meta.name, "synth-6h-3d-seed3");
        assert_eq!(meta.end_ms, Some(DEFAULT_START_MS + 3 * DAY));
        assert_eq!(DEFAULT_START_MS % DAY, 0);
    }

    #[test]
    fn failures_match_episodes_and_every_kind_appears() {
        let f = big();
        assert!(!f.dataset.failures.is_empty());
        for fl in &f.dataset.failures {
            let ep = f
                .episodes
                .iter()
                .find(|e| e.host == fl.host && e.failure_ms == Some(fl.timestamp))
                .unwrap_or_else(|| panic!("no episode for {fl:?}"));
            assert_eq!(ep.kind, fl.kind);
            let expect = if fl.kind == "sudden" { EpisodeClass::Sudden } else { EpisodeClass::Precursor };
            assert_eq!(ep.class, expect);
            let t0 = DEFAULT_START_MS;
            assert!(fl.timestamp >= t0 + HISTORY_MS, "failure in the first 12 h: {fl:?}");
        }
        let with_failure = f.episodes.iter().filter(|e| e.failure_ms.is_some()).count();
        assert_eq!(with_failure, f.dataset.failures.len());
        for kind in ["oom", "disk_full", "thermal", "bad_deploy", "nic", "sudden"] {
            assert!(f.dataset.failures.iter().any(|x| x.kind == kind), "no {kind} failure");
        }
        for kind in ["batch_job", "mem_growth_restart", "log_burst", "bad_deploy_rolled_back", "deploy_transient"] {
            assert!(f.episodes.iter().any(|e| e.kind == kind), "no {kind} episode");
        }
        assert!(f.episodes.iter().any(|e| e.class == EpisodeClass::Maintenance));
        // Failures are sorted by (timestamp, host).
        assert!(f.dataset.failures.windows(2).all(|w| (w[0].timestamp, &w[0].host) <= (w[1].timestamp, &w[1].host)));
    }

    #[test]
    fn episodes_on_a_host_keep_their_distance() {
        let f = big();
        let mut by_host: std::collections::BTreeMap<&HostId, Vec<&Episode>> = Default::default();
        for e in f.episodes.iter().filter(|e| e.class != EpisodeClass::Deploy) {
            by_host.entry(&e.host).or_default().push(e);
        }
        for eps in by_host.values() {
            for w in eps.windows(2) {
                assert!(w[1].start_ms >= w[0].end_ms + GAP_MS, "too close: {:?} {:?}", w[0], w[1]);
            }
        }
        // Changes stay 12 h away from failure episodes.
        for d in f.episodes.iter().filter(|e| e.class == EpisodeClass::Deploy) {
            for e in f.episodes.iter().filter(|e| e.host == d.host && e.failure_ms.is_some()) {
                assert!(d.end_ms + GAP_MS <= e.start_ms || d.start_ms >= e.end_ms + GAP_MS, "{d:?} near {e:?}");
            }
        }
    }

    #[test]
    fn metrics_are_in_range_ordered_and_silent_while_down() {
        let f = big();
        let ds = &f.dataset;
        assert_eq!(ds.metrics.len(), 40 * 8);
        assert!(ds.metrics.windows(2).all(|w| w[0].key < w[1].key));
        let mut nan = 0usize;
        for s in &ds.metrics {
            assert!(s.timestamps.windows(2).all(|w| w[0] < w[1]), "{} not increasing", s.key);
            assert_eq!(s.timestamps.len(), s.values.len());
            nan += s.values.iter().filter(|v| v.is_nan()).count();
            let m = s.key.metric.as_str();
            for v in s.values.iter().filter(|v| !v.is_nan()) {
                if m.ends_with("_util") || m == "disk_io_wait" {
                    assert!((0.0..=1.0).contains(v), "{} = {v}", s.key);
                } else {
                    assert!(*v >= 0.0, "{} = {v}", s.key);
                }
            }
        }
        let expected = 40 * 14 * 144 * 8;
        let missing = 1.0 - ds.metric_rows() as f64 / expected as f64;
        assert!(nan > 0, "some samples are NaN");
        assert!((0.002..0.02).contains(&missing), "missing share {missing}");

        for fl in &ds.failures {
            let rec = ds
                .events
                .iter()
                .find(|e| e.kind == EventKind::HostRecovered && e.host.as_ref() == Some(&fl.host) && e.ts > fl.timestamp)
                .map_or(i64::MAX, |e| e.ts);
            let ep = f.episodes.iter().find(|e| e.failure_ms == Some(fl.timestamp) && e.host == fl.host).expect("episode");
            if rec == i64::MAX {
                assert!(ep.end_ms >= DEFAULT_START_MS + 14 * DAY, "no host_recovered for {fl:?}");
            } else {
                assert_eq!(ep.end_ms, rec, "{fl:?}");
            }
            for s in ds.metrics.iter().filter(|s| s.key.host == fl.host) {
                assert!(!s.timestamps.iter().any(|t| *t >= fl.timestamp && *t < rec), "{} has samples while down after {fl:?}", s.key);
                // ... and it did report before the failure.
                assert!(s.timestamps.iter().any(|t| *t < fl.timestamp));
            }
        }
    }

    #[test]
    fn precursors_rise_towards_the_failure() {
        let f = big();
        let mut checked = 0;
        for e in f.episodes.iter().filter(|e| e.class == EpisodeClass::Precursor) {
            let Some(fail) = e.failure_ms else { continue };
            let metric = match e.kind.as_str() {
                "oom" => "mem_util",
                "disk_full" => "disk_util",
                "thermal" => "temperature_c",
                "bad_deploy" => "error_rate",
                _ => continue,
            };
            let s = series(&f, e.host.as_str(), metric);
            let (Some(first), Some(last)) = (mean_in(s, e.start_ms, e.start_ms + 30 * MIN), mean_in(s, fail - 30 * MIN, fail)) else {
                continue; // a scrape gap swallowed one of the windows
            };
            assert!(last > first, "{} {}: first {first} last {last}", e.kind, e.host);
            if metric != "error_rate" {
                assert!(last > first * 1.2, "{} {}: first {first} last {last}", e.kind, e.host);
            }
            checked += 1;
        }
        assert!(checked >= 10);
    }

    #[test]
    fn inventory_is_valid_and_events_are_consistent() {
        let f = big();
        let ds = &f.dataset;
        assert_eq!(validate_hosts(&ds.hosts), Ok(()));
        assert_eq!(validate_resources(&ds.resources, &ds.hosts), Ok(()));
        assert_eq!(ds.hosts[0].host.as_str(), "h000");
        assert_eq!(ds.hosts[39].host.as_str(), "h039");
        assert!(ds.resources.iter().any(|r| !r.depends_on.is_empty()));
        assert!(ds.resources.iter().all(|r| r.state["version"].is_string() && r.state["config"].is_object()));
        let zones: std::collections::BTreeSet<_> = ds.hosts.iter().map(|h| h.zone.as_str()).collect();
        assert_eq!(zones.len(), 3);

        // Sorted by ts, then host, then kind.
        assert!(ds.events.windows(2).all(|w| (w[0].ts, &w[0].host, w[0].kind) <= (w[1].ts, &w[1].host, w[1].kind)));
        let end = DEFAULT_START_MS + 14 * DAY;
        assert!(ds.events.iter().all(|e| e.ts >= DEFAULT_START_MS && e.ts < end && e.host.is_some()));
        // Every deploy_started is followed by exactly one outcome with the same id.
        let starts: Vec<&Event> = ds.events.iter().filter(|e| e.kind == EventKind::DeployStarted).collect();
        assert!(starts.len() > 100);
        for s in &starts {
            let id = s.deployment.as_deref().expect("deployment id");
            assert!(id.starts_with("d-") && id != "d-0");
            let outcomes = ds
                .events
                .iter()
                .filter(|e| e.deployment.as_deref() == Some(id) && matches!(e.kind, EventKind::DeploySucceeded | EventKind::DeployFailed))
                .collect::<Vec<_>>();
            assert_eq!(outcomes.len(), 1, "{id}");
            assert!(outcomes[0].ts > s.ts);
            assert!(s.changes.iter().any(|c| c.path == "/version"));
        }
        let ids: std::collections::BTreeSet<_> = starts.iter().filter_map(|e| e.deployment.clone()).collect();
        assert_eq!(ids.len(), starts.len(), "deployment ids are unique");
        // Bad-deploy failures follow a deploy on that host.
        for fl in ds.failures.iter().filter(|f| f.kind == "bad_deploy") {
            assert!(
                starts.iter().any(|s| s.host.as_ref() == Some(&fl.host) && s.ts < fl.timestamp && s.ts >= fl.timestamp - 4 * HOUR - MIN)
            );
        }
        // Rollbacks name a deployment that exists.
        let rolled: Vec<&Event> = ds.events.iter().filter(|e| e.kind == EventKind::RolledBack).collect();
        assert!(!rolled.is_empty());
        for r in rolled {
            assert!(ids.contains(r.deployment.as_deref().unwrap_or("")));
        }
        assert!(ds.events.iter().any(|e| e.kind == EventKind::ConfigChanged));
        assert!(ds.events.iter().any(|e| e.kind == EventKind::HostMaintenance));
    }

    #[test]
    fn episodes_csv_is_sorted_and_reproducible() {
        let f = generate(&small(5)).expect("valid");
        let dir = std::env::temp_dir().join(format!("harbinger-synth-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (p1, p2) = (dir.join("a.csv"), dir.join("b.csv"));
        let mut reversed = f.episodes.clone();
        reversed.reverse();
        write_episodes(&f.episodes, &p1).expect("write");
        write_episodes(&reversed, &p2).expect("write");
        let a = std::fs::read_to_string(&p1).expect("read");
        let b = std::fs::read_to_string(&p2).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(a, b);
        let mut lines = a.lines();
        assert_eq!(lines.next(), Some("host,kind,class,start_ms,end_ms,failure_ms"));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), f.episodes.len());
        assert!(rows.iter().all(|r| r.len() == 6));
        assert!(rows.iter().any(|r| r[5].is_empty()));
        let keys: Vec<(i64, &str, &str)> = rows.iter().map(|r| (r[3].parse().expect("start"), r[0], r[1])).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn validate_names_the_field() {
        let e = SynthParams { hosts: 0, ..SynthParams::default() }.validate().expect_err("hosts 0");
        assert!(e.to_string().contains("hosts") && e.to_string().contains('0'), "{e}");
        let e = SynthParams { step_ms: 10, ..SynthParams::default() }.validate().expect_err("step 10");
        assert!(e.to_string().contains("step_ms") && e.to_string().contains("10"), "{e}");
        let e = SynthParams { days: f64::NAN, ..SynthParams::default() }.validate().expect_err("nan days");
        assert!(e.to_string().contains("days"), "{e}");
        let e = SynthParams { days: 0.001, step_ms: 60_000, ..SynthParams::default() }.validate().expect_err("few");
        assert!(matches!(e, SynthError::TooFewSteps { steps: 1, .. }), "{e}");
        assert!(SynthParams { hosts: 100_001, ..SynthParams::default() }.validate().is_err());
        assert!(SynthParams { days: 367.0, ..SynthParams::default() }.validate().is_err());
        assert!(SynthParams { start_ms: i64::MAX, ..SynthParams::default() }.validate().is_err());
        assert_eq!(SynthParams::default().validate(), Ok(()));
        assert!(generate(&SynthParams { hosts: 0, ..SynthParams::default() }).is_err());
    }

    #[test]
    fn odd_but_valid_params_do_not_panic() {
        for p in [
            SynthParams { hosts: 1, days: 0.01, step_ms: 1000, seed: 0, start_ms: 0 },
            SynthParams { hosts: 2, days: 1.0, step_ms: 3_600_000, seed: u64::MAX, start_ms: -5 * DAY - 17 },
            SynthParams { hosts: 3, days: 30.0, step_ms: 3_600_000, seed: 9, start_ms: 1_234_567 },
        ] {
            let f = generate(&p).expect("valid");
            assert_eq!(f.dataset.hosts.len(), p.hosts);
            for s in &f.dataset.metrics {
                assert!(s.timestamps.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    /// Counts and timing for the default fleet; run with
    /// `cargo test --release -p harbinger-dataset --lib synth -- --ignored --nocapture`.
    #[test]
    #[ignore = "generates 4 M samples; run in release: cargo test --release -p harbinger-dataset --lib synth -- --ignored"]
    fn default_fleet_has_every_failure_kind_in_expected_numbers() {
        let f = generate(&SynthParams::default()).expect("valid");
        let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
        for fl in &f.dataset.failures {
            *kinds.entry(fl.kind.as_str()).or_default() += 1;
        }
        // hosts x days / 10 = 35 expected, minus a few that cannot be placed.
        let n = f.dataset.failures.len();
        assert!((25..=45).contains(&n), "{n} failures: {kinds:?}");
        for k in ["oom", "disk_full", "thermal", "bad_deploy", "nic", "sudden"] {
            assert!(kinds.get(k).is_some_and(|c| *c > 0), "no {k} failure: {kinds:?}");
        }
        assert_eq!(f.dataset.metric_rows(), 4_001_520);
    }
}
