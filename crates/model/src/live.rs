//! The live scorer behind `serve`: per-host feature state fed by ingested samples and
//! events, scored on demand with the loaded model, hot-swappable.
//!
//! Hosts live in shards (a lock each) and each host has two locks of its own, one for what
//! its input built (features) and one for what its ticks left (alert state, history), so
//! concurrent requests for different hosts do not wait on each other, and a tick does not
//! wait on a host whose coming ticks are being prepared ([`RiskScorer::prepare_ticks`],
//! replay's path: rows and assessments a block of ticks ahead). The model sits behind an
//! `RwLock<Arc<Model>>`: a reload swaps the `Arc`, requests in flight keep the model they
//! started with. A host is assessed as of its latest sample (data time), so a replayed
//! or delayed stream is scored as it was; confidence drops to zero when that sample is
//! older than the freshness limit by the injected clock.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use harbinger_core::{
    Clock, Event, Factor, Host, HostExplanation, HostId, HostRisk, HostTransition, ModelInfo, Resource, RiskPoint, RiskScorer, SampleBatch,
    ScoreError, TimestampMs, TransitionKind,
};
use rayon::prelude::*;

use crate::features::{FleetStats, HostFeatures, fleet_fill, fleet_stats};
use crate::model::{AlertState, Model};
use crate::runner::event_host;
use crate::step::{Observation, risk_step};

const SHARDS: usize = 16;
const HISTORY: usize = 720;
const TOP_FACTORS: usize = 5;
/// Series in a sample batch from which hosts are fed on the thread pool.
const PARALLEL_SERIES: usize = 256;
/// How often (by the clock) the fleet statistics are recomputed.
const FLEET_REFRESH_MS: i64 = 30_000;

/// A host's state in two parts, each behind a lock of its own so that replay can prepare
/// a host's coming ticks while the engine ticks through the ones before: what its input
/// built and what its ticks left. Lock order: `input` before `ticks`.
struct LiveHost {
    input: Mutex<HostInput>,
    ticks: Mutex<HostTicks>,
}

/// What a host's input built.
struct HostInput {
    features: HostFeatures,
    last_ts: Option<TimestampMs>,
    /// Rows written ahead of their ticks ([`RiskScorer::prepare_ticks`]); dropped when other
    /// input reaches the host.
    prepared: Ahead,
}

/// What a host's ticks left.
#[derive(Default)]
struct HostTicks {
    alert: AlertState,
    history: VecDeque<RiskPoint>,
    /// What the last engine tick saw (`None` before the first tick, or when silent).
    ticked: Option<RiskPoint>,
    /// [`crate::model::Assessment::imminence`] at the last tick (1 when silent).
    imminence: f64,
    /// When the host last left the alerting state.
    cleared_at: Option<TimestampMs>,
}

/// A host's feature rows at coming ticks, written as their input was fed.
#[derive(Default)]
struct Prepared {
    ticks: Vec<TimestampMs>,
    /// Whether the host had fresh data at each tick (else its row is not read).
    present: Vec<bool>,
    /// The rows, one after the other.
    rows: Vec<f64>,
    /// The first tick not yet read.
    next: usize,
}

/// One host's input in a block of ticks ([`RiskScorer::prepare_ticks`]): its events with the
/// tick they come before, and its sample entries (model metric, times, values), each in
/// tick order.
#[derive(Default)]
struct HostBlock<'a> {
    events: Vec<(usize, &'a Event)>,
    series: Vec<(usize, &'a [TimestampMs], &'a [f64])>,
}

/// `s`'s samples put in tick order: each goes to the first of `ticks` at or after its time
/// (past the last tick: after it), and a tick's samples keep their order in `s`, as fed
/// tick by tick.
fn in_tick_order(ticks: &[TimestampMs], s: &harbinger_core::SeriesSamples) -> (Vec<TimestampMs>, Vec<f64>) {
    let mut order: Vec<(usize, usize)> = s.timestamps.iter().enumerate().map(|(j, t)| (ticks.partition_point(|x| x < t), j)).collect();
    order.sort_by_key(|&(tick, _)| tick); // stable: a tick's samples in the entry's order
    order.iter().map(|&(_, j)| (s.timestamps[j], s.values[j])).unzip()
}

/// A host's assessment at a tick: what the risk step reads, and the imminence.
type Assessed = (Observation, f64);

/// Every host with its state, sorted by id.
type HostList = Arc<[(HostId, Arc<LiveHost>)]>;

/// A block of prepared ticks as the whole fleet saw them: each tick's fleet signal and
/// what the model made of each host's row at each tick with it.
struct PreparedFleet {
    /// The model that assessed the rows (another after a reload: not used).
    model: Arc<Model>,
    /// The hosts, sorted (another set of hosts at the tick: not used).
    hosts: Vec<HostId>,
    /// The input count ([`LiveScorer::inputs`]) when the block was prepared (other input
    /// since: not used).
    inputs: u64,
    ticks: Vec<TimestampMs>,
    stats: Vec<Arc<FleetStats>>,
    /// `assessed[h][i]`: host `h`'s assessment at `ticks[i]` (`None`: silent).
    assessed: Vec<Vec<Option<Assessed>>>,
}

impl Prepared {
    /// The position of `now` among the prepared ticks, if it is one; ticks before `now`
    /// are passed over for good.
    fn at(&mut self, now: TimestampMs) -> Option<usize> {
        while self.ticks.get(self.next).is_some_and(|&t| t < now) {
            self.next += 1;
        }
        (self.ticks.get(self.next) == Some(&now)).then_some(self.next)
    }

    /// Every tick passed over.
    fn spent(&self) -> bool {
        self.next >= self.ticks.len()
    }
}

/// A host's prepared blocks of ticks, oldest first: the block being ticked and those
/// prepared after it (replay prepares a block while the one before it ticks).
#[derive(Default)]
struct Ahead {
    blocks: VecDeque<Prepared>,
    /// A block passed over, kept so the next block reuses its buffers.
    spare: Option<Prepared>,
}

impl Ahead {
    /// Forgets every block (other input reached the host).
    fn clear(&mut self) {
        self.blocks.clear();
    }

    /// An empty block for `ticks`, to fill and then [`Ahead::push`].
    fn fresh(&mut self, ticks: &[TimestampMs]) -> Prepared {
        let mut p = self.spare.take().unwrap_or_default();
        p.ticks.clear();
        p.ticks.extend_from_slice(ticks);
        p.present.clear();
        p.rows.clear();
        p.next = 0;
        p
    }

    /// Queues `p` after the blocks before it; blocks from its first tick on are replaced,
    /// and blocks ticked through (every tick before `ticked`, the last tick begun) are let
    /// go.
    fn push(&mut self, p: Prepared, ticked: TimestampMs) {
        while self.blocks.front().is_some_and(|b| b.ticks.last().is_none_or(|&t| t < ticked)) {
            self.spare = self.blocks.pop_front();
        }
        let first = p.ticks.first().copied().unwrap_or(TimestampMs::MAX);
        self.blocks.retain(|b| b.ticks.first().is_some_and(|&t| t < first));
        self.blocks.push_back(p);
    }

    /// The block of exactly `ticks`.
    fn block(&mut self, ticks: &[TimestampMs]) -> Option<&mut Prepared> {
        self.blocks.iter_mut().find(|b| b.ticks == ticks)
    }

    /// `now`'s position in the front block, if `now` is a prepared tick; blocks whose
    /// ticks are all before `now` are passed over for good.
    fn at(&mut self, now: TimestampMs) -> Option<usize> {
        loop {
            let front = self.blocks.front_mut()?;
            if let Some(i) = front.at(now) {
                return Some(i);
            }
            if !front.spent() {
                return None;
            }
            self.spare = self.blocks.pop_front();
        }
    }

    /// The row prepared for `now`, if any (`Some((present, row))`).
    fn take(&mut self, now: TimestampMs, k: usize) -> Option<(bool, &[f64])> {
        let i = self.at(now)?;
        let p = self.blocks.front()?;
        p.rows.get(i * k..(i + 1) * k).map(|r| (p.present[i], r))
    }
}

impl HostInput {
    /// Feeds samples of the model's metric `mi` to the features.
    fn push(&mut self, mi: usize, timestamps: &[TimestampMs], values: &[f64]) {
        for (&t, &v) in timestamps.iter().zip(values) {
            self.features.push(mi, t, v);
            if v.is_finite() {
                self.last_ts = Some(self.last_ts.map_or(t, |l| l.max(t)));
            }
        }
    }
}

impl LiveHost {
    fn new(m: &Model) -> Self {
        LiveHost {
            input: Mutex::new(HostInput { features: HostFeatures::new(&m.schema), last_ts: None, prepared: Ahead::default() }),
            ticks: Mutex::new(HostTicks { imminence: 1.0, ..HostTicks::default() }),
        }
    }

    fn input(&self) -> std::sync::MutexGuard<'_, HostInput> {
        self.input.lock().unwrap_or_else(poisoned)
    }

    fn ticks(&self) -> std::sync::MutexGuard<'_, HostTicks> {
        self.ticks.lock().unwrap_or_else(poisoned)
    }
}

/// One host's state as the last engine tick left it: what the planner reads.
#[derive(Debug, Clone, PartialEq)]
pub struct TickedHost {
    /// The host.
    pub host: HostId,
    /// Risk and probability at the last tick (`None` when silent or never ticked).
    pub last: Option<RiskPoint>,
    /// How soon its failure is expected at the last tick ([`crate::model::Assessment::imminence`];
    /// 1 when silent).
    pub imminence: f64,
    /// In the alerting state.
    pub alerting: bool,
    /// When it last left the alerting state.
    pub cleared_at: Option<TimestampMs>,
    /// Its latest sample's time.
    pub last_sample: Option<TimestampMs>,
}

#[derive(Default)]
struct Inventory {
    criticality: HashMap<HostId, u8>,
    resource_host: HashMap<String, HostId>,
}

type Shard = Mutex<HashMap<HostId, Arc<LiveHost>>>;

/// Where a [`LiveScorer`] reloads its model from: the directory it was loaded from (the
/// default for a reload) and the function that loads a directory. This crate reads no
/// files; `harbinger_registry::model_source` is the one `serve` uses.
#[derive(Clone)]
pub struct ModelSource {
    dir: PathBuf,
    load: fn(&Path) -> Result<Model, String>,
}

impl ModelSource {
    /// Loads from `dir` (and from directories a reload names) with `load`, whose error says
    /// what went wrong and names the file.
    pub fn new(dir: &Path, load: fn(&Path) -> Result<Model, String>) -> Self {
        ModelSource { dir: dir.to_path_buf(), load }
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the model in `dir`.
    ///
    /// # Errors
    /// The loader's message.
    pub fn load(&self, dir: &Path) -> Result<Model, String> {
        (self.load)(dir)
    }
}

impl std::fmt::Debug for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSource").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The live scorer.
pub struct LiveScorer {
    model: RwLock<Arc<Model>>,
    source: ModelSource,
    alert_threshold: Option<f64>,
    clear_threshold: Option<f64>,
    shards: Vec<Shard>,
    inventory: RwLock<Inventory>,
    fleet: RwLock<(TimestampMs, Arc<FleetStats>)>,
    /// The fleet signal of the ticks [`RiskScorer::prepare_ticks`] assessed ahead, a block
    /// at a time, oldest first.
    prepared_fleet: Mutex<VecDeque<PreparedFleet>>,
    /// Every host, sorted, as of the count of hosts added ([`LiveScorer::all_hosts`]).
    sorted_hosts: RwLock<(u64, HostList)>,
    /// Hosts added so far.
    hosts_added: AtomicU64,
    /// Calls that gave input other than [`RiskScorer::prepare_ticks`] (or reloaded the
    /// model): a prepared block made before one of them is not used.
    inputs: AtomicU64,
    /// The time of the last tick.
    ticked: AtomicI64,
    clock: Arc<dyn Clock>,
    hasher: std::collections::hash_map::RandomState,
    /// Directories a reload may name a model under (empty: any).
    reload_roots: Vec<PathBuf>,
}

impl std::fmt::Debug for LiveScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveScorer").field("dir", &self.source.dir).field("model", &self.model_arc().version).finish_non_exhaustive()
    }
}

/// A path as the client sent it, bounded.
fn echo_path(p: &Path) -> String {
    harbinger_core::ids::echo(&p.to_string_lossy())
}

/// What a tick keeps of an assessment.
fn assessed(a: &crate::model::Assessment) -> Assessed {
    (Observation::from(a), a.imminence())
}

/// A host's risk step at `now` from what the model made of it (`None`: silent): its alert
/// state, the point it saw, its history. The transition, if any.
fn step_host(
    h: &mut HostTicks,
    id: &HostId,
    seen: Option<Assessed>,
    crit: u8,
    now: TimestampMs,
    policy: &crate::RiskPolicy,
) -> Option<HostTransition> {
    let obs = seen.map(|(o, _)| o);
    h.imminence = seen.map_or(1.0, |(_, i)| i);
    let step = risk_step(&mut h.alert, obs.as_ref(), crit, now, policy);
    let point = step.risk.zip(obs).map(|(risk, o)| RiskPoint { at: now, risk, failure_probability: o.probability, anomaly: o.anomaly });
    h.ticked = point;
    if let Some(pt) = point
        && h.history.back().is_none_or(|q| now > q.at)
    {
        h.history.push_back(pt);
        if h.history.len() > HISTORY {
            h.history.pop_front();
        }
    }
    if step.transition == Some(TransitionKind::Cleared) {
        h.cleared_at = Some(now);
    }
    step.transition.map(|kind| HostTransition {
        host: id.clone(),
        at: now,
        kind,
        risk: point.map_or(0.0, |p| p.risk),
        failure_probability: point.map_or(0.0, |p| p.failure_probability),
    })
}

fn poisoned<T>(e: std::sync::PoisonError<T>) -> T {
    // A panic while holding a lock cannot leave these structures half-written in a way
    // that matters more than refusing all further requests would; keep serving.
    e.into_inner()
}

impl LiveScorer {
    /// Restricts the directories a reload may name (gRPC `ReloadModel`'s `dir`) to those
    /// under `roots` — e.g. the model registry and the configured model's parent — so a
    /// client cannot make the server read, or probe, any path. Without roots any path goes.
    pub fn with_reload_roots(mut self, roots: Vec<PathBuf>) -> Self {
        self.reload_roots = roots;
        self
    }

    /// Refuses a reload directory outside the roots, with one message whether it is
    /// missing, not a directory or elsewhere (nothing about the server's files leaks).
    fn check_reload_dir(&self, dir: &Path) -> Result<(), ScoreError> {
        if self.reload_roots.is_empty() {
            return Ok(());
        }
        let inside = std::fs::canonicalize(dir)
            .ok()
            .is_some_and(|d| self.reload_roots.iter().filter_map(|r| std::fs::canonicalize(r).ok()).any(|root| d.starts_with(root)));
        if inside {
            Ok(())
        } else {
            Err(ScoreError::Model(format!(
                "model directory {} is not a directory under {} (models are only loaded from there)",
                echo_path(dir),
                self.reload_roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(" or ")
            )))
        }
    }

    /// A scorer over `model`, which was loaded from `source` (what `reload` loads from).
    /// Threshold overrides replace the model's own.
    pub fn new(
        model: Model,
        source: ModelSource,
        clock: Arc<dyn Clock>,
        alert_threshold: Option<f64>,
        clear_threshold: Option<f64>,
    ) -> Self {
        LiveScorer {
            model: RwLock::new(Arc::new(model)),
            source,
            alert_threshold,
            clear_threshold,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            inventory: RwLock::new(Inventory::default()),
            fleet: RwLock::new((i64::MIN, Arc::new(FleetStats::default()))),
            prepared_fleet: Mutex::new(VecDeque::new()),
            sorted_hosts: RwLock::new((0, Arc::from(Vec::new()))),
            hosts_added: AtomicU64::new(0),
            inputs: AtomicU64::new(0),
            ticked: AtomicI64::new(i64::MIN),
            clock,
            hasher: std::collections::hash_map::RandomState::new(),
            reload_roots: Vec::new(),
        }
    }

    /// Sets the inventory: known hosts and the criticality of what runs on them.
    pub fn set_inventory(&self, hosts: &[Host], resources: &[Resource]) {
        let mut inv = self.inventory.write().unwrap_or_else(poisoned);
        inv.criticality.clear();
        for h in hosts {
            inv.criticality.insert(h.host.clone(), 0);
        }
        inv.resource_host.clear();
        for r in resources {
            let c = inv.criticality.entry(r.host.clone()).or_insert(0);
            *c = (*c).max(r.criticality.min(3));
            inv.resource_host.insert(r.id.clone(), r.host.clone());
        }
        drop(inv);
        let m = self.model_arc();
        for h in hosts {
            self.host_entry(&h.host, &m);
        }
    }

    fn policy(&self, m: &Model) -> crate::RiskPolicy {
        m.policy.with_thresholds(self.alert_threshold, self.clear_threshold)
    }

    /// Every host's state as the last tick left it, sorted by host id.
    pub fn ticked_hosts(&self) -> Vec<TickedHost> {
        self.all_hosts()
            .iter()
            .map(|(id, h)| {
                let last_sample = h.input().last_ts;
                let t = h.ticks();
                TickedHost {
                    host: id.clone(),
                    last: t.ticked,
                    imminence: t.imminence,
                    alerting: t.alert.alerting,
                    cleared_at: t.cleared_at,
                    last_sample,
                }
            })
            .collect()
    }

    /// The engine tick: every host's feature row at `now` (hosts without fresh data are
    /// silent), the fleet signal of those rows, then [`risk_step`] per host. Returns the
    /// transitions in host order. The rows are those `eval` computes at the same tick.
    pub fn tick_at(&self, now: TimestampMs) -> Vec<HostTransition> {
        self.ticked.store(now, Ordering::Release);
        let m = self.model_arc();
        let policy = self.policy(&m);
        let k = m.schema.len();
        let hosts = self.all_hosts();
        let crit: Vec<u8> = {
            let inv = self.inventory.read().unwrap_or_else(poisoned);
            hosts.iter().map(|(id, _)| inv.criticality.get(id).copied().unwrap_or(0)).collect()
        };
        if let Some(out) = self.tick_prepared(now, &m, &policy, &hosts, &crit) {
            return out;
        }
        let mut rows = vec![f64::NAN; hosts.len() * k];
        let present: Vec<bool> = hosts
            .par_iter()
            .zip(rows.par_chunks_mut(k.max(1)))
            .map(|((_, h), row)| {
                let mut h = h.input();
                if let Some((p, r)) = h.prepared.take(now, k).filter(|(_, r)| r.len() == row.len()) {
                    if p {
                        row.copy_from_slice(r);
                    }
                    return p;
                }
                let p = h.features.has_data(now);
                if p {
                    h.features.write(&m.schema, now, row);
                }
                p
            })
            .collect();
        let stats = Arc::new(fleet_stats(&m.schema, rows.chunks(k.max(1)).zip(&present).filter(|(_, p)| **p).map(|(r, _)| r)));
        let out: Vec<Option<HostTransition>> = hosts
            .par_iter()
            .zip(rows.par_chunks_mut(k.max(1)))
            .zip(present.par_iter().zip(crit.par_iter()))
            .map(|(((id, h), row), (&p, &c))| {
                let assessed = p.then(|| {
                    fleet_fill(&m.schema, &stats, row);
                    assessed(&m.assess(row, false))
                });
                step_host(&mut h.ticks(), id, assessed, c, now, &policy)
            })
            .collect();
        *self.fleet.write().unwrap_or_else(poisoned) = (self.clock.now_ms(), stats);
        out.into_iter().flatten().collect()
    }

    /// [`LiveScorer::tick_at`] from the assessments [`RiskScorer::prepare_ticks`] made for
    /// `now`: only when they were made for every host, by the current model, with no other
    /// input since (else `None`, and the tick computes them). Takes no host's input lock:
    /// the next block may be being prepared.
    fn tick_prepared(
        &self,
        now: TimestampMs,
        m: &Arc<Model>,
        policy: &crate::RiskPolicy,
        hosts: &[(HostId, Arc<LiveHost>)],
        crit: &[u8],
    ) -> Option<Vec<HostTransition>> {
        let mut queue = self.prepared_fleet.lock().unwrap_or_else(poisoned);
        // Blocks whose ticks are all before `now` are passed over for good.
        while queue.front().is_some_and(|f| f.ticks.last().is_none_or(|&t| t < now)) {
            queue.pop_front();
        }
        let pf = queue.front()?;
        let same_hosts = pf.hosts.len() == hosts.len() && pf.hosts.iter().zip(hosts).all(|(a, (b, _))| a == b);
        if !Arc::ptr_eq(&pf.model, m) || !same_hosts || pf.inputs != self.inputs.load(Ordering::Acquire) {
            return None;
        }
        let i = pf.ticks.binary_search(&now).ok()?;
        // Every host's tick state held while stepped: the tick is one step of the fleet.
        let mut guards: Vec<_> = hosts.iter().map(|(_, h)| h.ticks()).collect();
        let out = guards
            .iter_mut()
            .zip(hosts)
            .zip(&pf.assessed)
            .zip(crit)
            .filter_map(|(((h, (id, _)), a), &c)| step_host(h, id, a[i], c, now, policy))
            .collect();
        drop(guards);
        let stats = pf.stats[i].clone();
        drop(queue);
        *self.fleet.write().unwrap_or_else(poisoned) = (self.clock.now_ms(), stats);
        Some(out)
    }

    /// After every host's rows were prepared for `ticks`: the fleet signal of each tick
    /// and each host's assessment at each tick, computed on the pool a block at a time
    /// instead of at each engine tick (what [`LiveScorer::tick_prepared`] reads). Hosts
    /// given other input meanwhile have no rows left, and their ticks are computed then.
    fn assess_prepared(&self, m: &Arc<Model>, ticks: &[TimestampMs], inputs: u64) {
        let k = m.schema.len();
        let hosts = self.all_hosts();
        let stats: Option<Vec<Arc<FleetStats>>> = {
            let guards: Vec<_> = hosts.iter().map(|(_, h)| h.input()).collect();
            let prepared: Option<Vec<&Prepared>> = guards.iter().map(|g| g.prepared.blocks.iter().find(|p| p.ticks == ticks)).collect();
            prepared.map(|prepared| {
                (0..ticks.len())
                    .into_par_iter()
                    .map(|i| {
                        let rows = prepared.iter().filter(|p| p.present[i]).map(|p| &p.rows[i * k..(i + 1) * k]);
                        Arc::new(fleet_stats(&m.schema, rows))
                    })
                    .collect()
            })
        };
        let first = ticks.first().copied().unwrap_or(TimestampMs::MAX);
        // Blocks from this one's first tick on are replaced (as each host's are).
        self.prepared_fleet.lock().unwrap_or_else(poisoned).retain(|f| f.ticks.first().is_some_and(|&t| t < first));
        let Some(stats) = stats else { return };
        let assessed: Option<Vec<Vec<Option<Assessed>>>> = hosts
            .par_iter()
            .with_min_len(4)
            .map(|(_, entry)| {
                let mut guard = entry.input();
                let p = guard.prepared.block(ticks)?;
                let mut row = vec![f64::NAN; k];
                Some(
                    (0..ticks.len())
                        .map(|i| {
                            p.present[i].then(|| {
                                row.copy_from_slice(&p.rows[i * k..(i + 1) * k]);
                                fleet_fill(&m.schema, &stats[i], &mut row);
                                assessed(&m.assess(&mut row, false))
                            })
                        })
                        .collect(),
                )
            })
            .collect();
        // A host given other input meanwhile has no rows left: the ticks compute them.
        let Some(assessed) = assessed else { return };
        let fleet = PreparedFleet {
            model: m.clone(),
            hosts: hosts.iter().map(|(id, _)| id.clone()).collect(),
            inputs,
            ticks: ticks.to_vec(),
            stats,
            assessed,
        };
        self.prepared_fleet.lock().unwrap_or_else(poisoned).push_back(fleet);
    }

    fn model_arc(&self) -> Arc<Model> {
        self.model.read().unwrap_or_else(poisoned).clone()
    }

    /// How much of a series' recent history warms this scorer's features to what they
    /// would be had it run all along (the warm-up and the longest rolling window, plus the
    /// staleness allowance): what `serve` feeds it from the store at start-up.
    pub fn warm_history_ms(&self) -> i64 {
        let sc = &self.model_arc().schema.scales;
        sc.warm_ms.max(sc.long_ms) + sc.stale_ms
    }

    fn shard(&self, h: &HostId) -> &Shard {
        &self.shards[(self.hasher.hash_one(h) as usize) % SHARDS]
    }

    fn host_entry(&self, h: &HostId, m: &Model) -> Arc<LiveHost> {
        let mut shard = self.shard(h).lock().unwrap_or_else(poisoned);
        shard
            .entry(h.clone())
            .or_insert_with(|| {
                // Counted while the shard is held: a list built after reading the count
                // sees this host.
                self.hosts_added.fetch_add(1, Ordering::AcqRel);
                Arc::new(LiveHost::new(m))
            })
            .clone()
    }

    fn host(&self, h: &HostId) -> Option<Arc<LiveHost>> {
        self.shard(h).lock().unwrap_or_else(poisoned).get(h).cloned()
    }

    /// Every host, sorted by id; built again only after a host was added (every tick
    /// reads it, twice).
    fn all_hosts(&self) -> HostList {
        let added = self.hosts_added.load(Ordering::Acquire);
        {
            let cached = self.sorted_hosts.read().unwrap_or_else(poisoned);
            if cached.0 == added {
                return cached.1.clone();
            }
        }
        let mut v: Vec<(HostId, Arc<LiveHost>)> = Vec::new();
        for s in &self.shards {
            let s = s.lock().unwrap_or_else(poisoned);
            v.extend(s.iter().map(|(k, h)| (k.clone(), h.clone())));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let v: HostList = Arc::from(v);
        let mut cached = self.sorted_hosts.write().unwrap_or_else(poisoned);
        if cached.0 < added {
            *cached = (added, v.clone());
        }
        v
    }

    fn fleet(&self, m: &Model) -> Arc<FleetStats> {
        let now = self.clock.now_ms();
        {
            let f = self.fleet.read().unwrap_or_else(poisoned);
            if now.saturating_sub(f.0) < FLEET_REFRESH_MS && f.1.per_metric.len() == m.schema.metrics.len() {
                return f.1.clone();
            }
        }
        let k = m.schema.len();
        let mut rows: Vec<f64> = Vec::new();
        for (_, h) in self.all_hosts().iter() {
            let mut h = h.input();
            if let Some(t) = h.last_ts {
                let start = rows.len();
                rows.resize(start + k, 0.0);
                h.features.write(&m.schema, t, &mut rows[start..]);
            }
        }
        let stats = Arc::new(fleet_stats(&m.schema, rows.chunks(k)));
        *self.fleet.write().unwrap_or_else(poisoned) = (now, stats.clone());
        stats
    }

    fn assess(&self, id: &HostId, m: &Model, fleet: &FleetStats, all: bool) -> Result<(HostRisk, Vec<Factor>, Vec<RiskPoint>), ScoreError> {
        let crit = self.inventory.read().unwrap_or_else(poisoned).criticality.get(id).copied();
        let entry = self.host(id);
        let (Some(entry), crit) = (entry, crit) else {
            return Err(ScoreError::UnknownHost(id.clone()));
        };
        let crit = crit.unwrap_or(0);
        let now = self.clock.now_ms();
        let mut h = entry.input();
        let at = h.last_ts.map_or(now, |t| t.min(now.max(t)));
        let mut row = vec![f64::NAN; m.schema.len()];
        let has = h.last_ts.is_some();
        if has {
            h.features.write(&m.schema, at, &mut row);
            fleet_fill(&m.schema, fleet, &mut row);
        }
        let raw_row = row.clone();
        let a = m.assess(&mut row, true);
        let stale = !has || now.saturating_sub(at) > m.schema.scales.stale_ms;
        let confidence = if stale { 0.0 } else { a.confidence };
        // A read: the alert state is the one the last engine tick left; nothing moves here.
        let risk = self.policy(m).risk(a.probability, a.anomaly, crit);
        let names = m.feature_names();
        let contrib = a.contributions.unwrap_or_default();
        // A factor names what drives the score with the value seen. A missing input (NaN
        // before imputation: metric absent, stale or not warm enough for the feature) is
        // scored at its imputed value, which is not this host's data: it is never a top
        // factor, and in the full list it comes last with its value NaN (= missing). A
        // host without recent data (none, or older than the freshness limit: confidence
        // 0) has no top factors at all.
        let seen = |j: usize| raw_row[j].is_finite();
        let rankable = |j: usize| !stale && seen(j) && contrib[j] != 0.0;
        let by_size = |x: &usize, y: &usize| contrib[*y].abs().total_cmp(&contrib[*x].abs()).then(x.cmp(y));
        let factor = |j: usize| Factor { name: names[j].clone(), value: raw_row[j], contribution: contrib[j] };
        let (top, factors): (Vec<Factor>, Vec<Factor>) = if all {
            let mut idx: Vec<usize> = (0..contrib.len()).collect();
            idx.sort_by(|x, y| seen(*y).cmp(&seen(*x)).then_with(|| by_size(x, y)));
            let top = idx.iter().copied().filter(|&j| rankable(j)).take(TOP_FACTORS).map(factor).collect();
            (top, idx.into_iter().map(factor).collect())
        } else {
            // The few largest by insertion: cheaper than sorting every feature on each score.
            let mut top: Vec<usize> = Vec::with_capacity(TOP_FACTORS + 1);
            for j in (0..contrib.len()).filter(|&j| rankable(j)) {
                if top.len() == TOP_FACTORS && by_size(&j, &top[TOP_FACTORS - 1]).is_ge() {
                    continue;
                }
                let at = top.partition_point(|i| by_size(i, &j).is_lt());
                top.insert(at, j);
                top.truncate(TOP_FACTORS);
            }
            (top.into_iter().map(factor).collect(), Vec::new())
        };
        let t = entry.ticks();
        let risk = HostRisk {
            host: id.clone(),
            at,
            risk,
            failure_probability: a.probability,
            horizon_ms: m.horizon_ms,
            anomaly: a.anomaly,
            confidence,
            criticality: crit,
            alerting: t.alert.alerting,
            factors: top,
            model_version: Arc::from(m.version.as_str()),
        };
        let history = if all { t.history.iter().copied().collect() } else { Vec::new() };
        Ok((risk, factors, history))
    }
}

impl RiskScorer for LiveScorer {
    fn tick(&self, now: TimestampMs) -> Vec<HostTransition> {
        self.tick_at(now)
    }

    fn host_states(&self) -> Vec<harbinger_core::HostState> {
        // The tick state only: no input lock (the next ticks may be being prepared).
        self.all_hosts()
            .iter()
            .map(|(id, h)| {
                let t = h.ticks();
                harbinger_core::HostState {
                    risk: t.ticked.map_or(0.0, |p| p.risk),
                    failure_probability: t.ticked.map_or(0.0, |p| p.failure_probability),
                    imminence: t.imminence,
                    alerting: t.alert.alerting,
                    cleared_at: t.cleared_at,
                    host: id.clone(),
                }
            })
            .collect()
    }

    fn observe_samples(&self, batch: &SampleBatch) {
        self.inputs.fetch_add(1, Ordering::AcqRel);
        let m = self.model_arc();
        // Each host's entries in batch order, hosts side by side: a host's series are only
        // ever pushed by one thread, in the order the batch gives them.
        let mut order: Vec<usize> = (0..batch.series.len()).collect();
        if !batch.series.windows(2).all(|w| w[0].key.host <= w[1].key.host) {
            order.sort_by(|&a, &b| batch.series[a].key.host.cmp(&batch.series[b].key.host));
        }
        let runs: Vec<&[usize]> = order.chunk_by(|&a, &b| batch.series[a].key.host == batch.series[b].key.host).collect();
        let feed = |run: &&[usize]| {
            let Some(&first) = run.first() else { return };
            let entry = self.host_entry(&batch.series[first].key.host, &m);
            let mut h = entry.input();
            h.prepared.clear();
            for &i in *run {
                let s = &batch.series[i];
                // A metric the model does not read still makes the host known.
                if let Some(mi) = m.schema.metric_index(s.key.metric.as_str()) {
                    h.push(mi, &s.timestamps, &s.values);
                }
            }
        };
        // Small batches (a scrape, a gRPC push) are not worth waking the pool for.
        if batch.series.len() >= PARALLEL_SERIES {
            runs.par_iter().with_min_len(8).for_each(feed);
        } else {
            runs.iter().for_each(feed);
        }
    }

    fn prepare_ticks(&self, ticks: &[TimestampMs], events: &[Vec<Event>], samples: &SampleBatch) -> bool {
        let given = self.inputs.load(Ordering::Acquire);
        let ticked = self.ticked.load(Ordering::Acquire);
        let m = self.model_arc();
        let k = m.schema.len();
        // An entry whose samples are not in tick order (times out of order across ticks)
        // is fed from a copy put in tick order, each tick's samples in the entry's order.
        let regrouped: Vec<Option<(Vec<TimestampMs>, Vec<f64>)>> =
            samples.series.iter().map(|s| (!s.timestamps.is_sorted()).then(|| in_tick_order(ticks, s))).collect();
        let targets: Vec<Vec<(HostId, &Event)>> = {
            let inv = self.inventory.read().unwrap_or_else(poisoned);
            events
                .iter()
                .map(|evs| evs.iter().filter_map(|e| event_host(e, &inv.resource_host).map(|h| (h.clone(), e))).collect())
                .collect()
        };
        // Each host's events (with their tick) and sample entries, in the order given.
        let mut index: HashMap<HostId, usize> = HashMap::new();
        let mut inputs: Vec<HostBlock<'_>> = Vec::new();
        let mut slot = |h: &HostId, inputs: &mut Vec<HostBlock<'_>>| -> usize {
            *index.entry(h.clone()).or_insert_with(|| {
                inputs.push(HostBlock::default());
                inputs.len() - 1
            })
        };
        for (i, evs) in targets.iter().enumerate().take(ticks.len()) {
            for (h, e) in evs {
                let at = slot(h, &mut inputs);
                inputs[at].events.push((i, e));
            }
        }
        for (s, own) in samples.series.iter().zip(&regrouped) {
            let at = slot(&s.key.host, &mut inputs);
            // A metric the model does not read still makes the host known.
            if let Some(mi) = m.schema.metric_index(s.key.metric.as_str()) {
                let (ts, vs) = own.as_ref().map_or((&s.timestamps[..], &s.values[..]), |(t, v)| (&t[..], &v[..]));
                inputs[at].series.push((mi, ts, vs));
            }
        }
        for h in index.keys() {
            self.host_entry(h, &m);
        }
        let empty = HostBlock::default();
        self.all_hosts().par_iter().with_min_len(4).for_each(|(id, entry)| {
            let input = index.get(id).map_or(&empty, |&at| &inputs[at]);
            let mut guard = entry.input();
            let h = &mut *guard;
            let mut p = h.prepared.fresh(ticks);
            p.rows.resize(ticks.len() * k, f64::NAN);
            // Metric by metric across the block (its state stays in cache), then the host's
            // part tick by tick: the rows `HostFeatures::write` gives tick by tick, as a
            // metric's block depends on its own state alone, which a recovery resets.
            let mut recovered = vec![false; ticks.len()];
            for (at, e) in &input.events {
                recovered[*at] |= e.kind == harbinger_core::EventKind::HostRecovered;
            }
            let (mut fresh, mut present) = (vec![false; ticks.len()], vec![0usize; ticks.len()]);
            for mi in 0..m.schema.metrics.len() {
                let entries: Vec<&(usize, &[TimestampMs], &[f64])> = input.series.iter().filter(|s| s.0 == mi).collect();
                let mut from = vec![0usize; entries.len()];
                for (i, &now) in ticks.iter().enumerate() {
                    if recovered[i] {
                        h.features.reset_metric(mi);
                    }
                    for (&&(_, ts, vs), from) in entries.iter().zip(&mut from) {
                        let end = *from + ts[*from..].partition_point(|&t| t <= now);
                        h.push(mi, &ts[*from..end], &vs[*from..end]);
                        *from = end;
                    }
                    fresh[i] |= h.features.metric_fresh(mi, now);
                    if h.features.write_metric(&m.schema, mi, now, &mut p.rows[i * k..(i + 1) * k]) {
                        present[i] += 1;
                    }
                }
                // After the last tick: fed now, seen by the next.
                for (&&(_, ts, vs), &from) in entries.iter().zip(&from) {
                    h.push(mi, &ts[from..], &vs[from..]);
                }
            }
            let mut events = input.events.iter().peekable();
            for (i, &now) in ticks.iter().enumerate() {
                while let Some((_, e)) = events.next_if(|(at, _)| *at == i) {
                    h.features.host_event(e);
                }
                let row = &mut p.rows[i * k..(i + 1) * k];
                if fresh[i] {
                    h.features.write_host(&m.schema, now, row, present[i]);
                } else {
                    // No metric fresh: the row stays unwritten (NaN), as tick by tick.
                    row.fill(f64::NAN);
                }
                p.present.push(fresh[i]);
            }
            h.prepared.push(p, ticked);
        });
        self.assess_prepared(&m, ticks, given);
        true
    }

    fn observe_events(&self, events: &[Event]) {
        self.inputs.fetch_add(1, Ordering::AcqRel);
        let m = self.model_arc();
        let inv = self.inventory.read().unwrap_or_else(poisoned);
        let targets: Vec<(HostId, &Event)> =
            events.iter().filter_map(|e| event_host(e, &inv.resource_host).map(|h| (h.clone(), e))).collect();
        drop(inv);
        for (h, e) in targets {
            let entry = self.host_entry(&h, &m);
            let mut h = entry.input();
            h.prepared.clear();
            h.features.event(e);
        }
    }

    fn score_hosts(&self, hosts: &[HostId]) -> Result<Vec<HostRisk>, ScoreError> {
        if let Some(h) = hosts.iter().find(|h| h.as_str().is_empty()) {
            return Err(ScoreError::Invalid(format!("empty host id at position {}", hosts.iter().position(|x| x == h).unwrap_or(0))));
        }
        let m = self.model_arc();
        let fleet = self.fleet(&m);
        hosts.iter().map(|h| self.assess(h, &m, &fleet, false).map(|r| r.0)).collect()
    }

    fn score_all(&self) -> Vec<HostRisk> {
        let m = self.model_arc();
        let fleet = self.fleet(&m);
        self.all_hosts().iter().filter_map(|(h, _)| self.assess(h, &m, &fleet, false).ok().map(|r| r.0)).collect()
    }

    fn explain_host(&self, host: &HostId) -> Result<HostExplanation, ScoreError> {
        let m = self.model_arc();
        let fleet = self.fleet(&m);
        let (risk, all_factors, history) = self.assess(host, &m, &fleet, true)?;
        Ok(HostExplanation { risk, all_factors, history })
    }

    fn model_info(&self) -> ModelInfo {
        let m = self.model_arc();
        ModelInfo {
            version: Arc::from(m.version.as_str()),
            horizon_ms: m.horizon_ms,
            learner: m.learner.name().to_string(),
            harbinger_version: m.harbinger_version.clone(),
        }
    }

    fn reload(&self, dir: Option<&Path>) -> Result<ModelInfo, ScoreError> {
        if let Some(asked) = dir {
            self.check_reload_dir(asked)?;
        }
        let dir = dir.unwrap_or(&self.source.dir);
        let new = self.source.load(dir).map_err(ScoreError::Model)?;
        let old = self.model_arc();
        let same_inputs = old.schema == new.schema;
        let new = Arc::new(new);
        if !same_inputs {
            // Other inputs: feature state starts afresh (scores show low confidence until warm).
            self.inputs.fetch_add(1, Ordering::AcqRel);
            for (_, h) in self.all_hosts().iter() {
                let mut h = h.input();
                h.features = HostFeatures::new(&new.schema);
                h.prepared.clear();
            }
        }
        *self.model.write().unwrap_or_else(poisoned) = new;
        *self.fleet.write().unwrap_or_else(poisoned) = (i64::MIN, Arc::new(FleetStats::default()));
        Ok(self.model_info())
    }
}
