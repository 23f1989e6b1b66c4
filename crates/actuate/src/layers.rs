//! Layers: policies wrapped around any [`Actuator`], each itself an [`Actuator`], so they
//! stack like tower middleware.
//!
//! - [`Timeout`]: an `apply` past its deadline answers `Failed` "timed out after …".
//! - [`Retry`]: retries `Failed` outcomes with capped exponential backoff (and optional
//!   seeded jitter), at most [`RetryPolicy::attempts`] times.
//! - [`RateLimit`]: at most N applies start in any window of `interval`; excess waits up to
//!   `max_wait`, beyond that it answers `Skipped` "rate limited".
//! - [`CircuitBreaker`]: after K consecutive failures, answers `Skipped` "circuit open"
//!   without calling the inner actuator for a cool-down, then lets one trial through.
//! - [`DryRun`]: answers `DryRun` with what would be done, never calling the inner one.
//! - [`Idempotent`]: remembers successful outcomes by key, so a repeated key in the same
//!   process answers `AlreadyApplied` without calling the inner actuator.
//!
//! Start with [`ActuatorExt`]: the innermost layer is applied first, so
//!
//! ```no_run
//! # use std::time::Duration;
//! # use harbinger_actuate::layers::{ActuatorExt, RetryPolicy, CircuitBreakerConfig};
//! # use harbinger_engine::LogActuator;
//! let stack = LogActuator
//!     .with_timeout(Duration::from_secs(5))
//!     .with_retry(RetryPolicy { attempts: 3, base: Duration::from_millis(100), max: Duration::from_secs(2) })
//!     .with_circuit_breaker(CircuitBreakerConfig { failures: 5, cool_down: Duration::from_secs(60) });
//! let breaker = stack.handle(); // keep it to export `harbinger_circuit_open` and friends
//! ```
//!
//! puts a 5 s deadline on every attempt, retries each action up to 3 times, and opens
//! the circuit after 5 actions in a row failed all their attempts. The same stack reads
//! `CircuitBreaker::new(Retry::new(Timeout::new(inner, 5s), policy), cfg)`.
//!
//! Every layer answers the inner actuator's [`Actuator::name`] and delegates
//! [`Actuator::sync_state`] (only [`Timeout`] changes it: a late answer is an `Err`).
//!
//! # Cancellation
//! [`Timeout`] drops the inner `apply` future at the deadline, wherever it is awaiting.
//! Actuators under it must be cancel-safe: dropping their future must leave nothing
//! half-done that a second `apply` with the same key cannot finish (the engine calls
//! again with the same key after a failure or a crash). The actuators of this crate are:
//! the child processes they start are killed with their process group when dropped.
//!
//! The engine performs actions one after another, holding its state, so a long stack
//! (retries, rate-limit waits) delays every action behind it: keep timeouts, attempts
//! and waits small.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_core::{JournalStatus, Resource};
use harbinger_engine::{Actuator, ActuatorOutcome, ActuatorRequest};
use tokio::time::Instant;

/// Marker in a `Failed` outcome's detail meaning "trying again will not help" (e.g. a
/// webhook answered 400). [`Retry`] does not retry such outcomes.
pub const NOT_RETRYABLE: &str = "(not retryable)";

/// Whether [`Retry`] would try `outcome` again: `Failed` (or `Pending`, read as failed)
/// and not marked [`NOT_RETRYABLE`].
pub fn is_retryable(outcome: &ActuatorOutcome) -> bool {
    is_failure(outcome) && !outcome.detail.contains(NOT_RETRYABLE)
}

fn is_failure(outcome: &ActuatorOutcome) -> bool {
    matches!(outcome.status, JournalStatus::Failed | JournalStatus::Pending)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds layer stacks from any actuator: `inner.with_timeout(..).with_retry(..)`.
pub trait ActuatorExt: Actuator + Sized + 'static {
    /// Wraps `self` in a [`Timeout`].
    fn with_timeout(self, after: Duration) -> Timeout {
        Timeout::new(self, after)
    }
    /// Wraps `self` in a [`Retry`].
    fn with_retry(self, policy: RetryPolicy) -> Retry {
        Retry::new(self, policy)
    }
    /// Wraps `self` in a [`RateLimit`] of `per_interval` applies per `interval`.
    fn with_rate_limit(self, per_interval: u32, interval: Duration) -> RateLimit {
        RateLimit::new(self, per_interval, interval)
    }
    /// Wraps `self` in a [`CircuitBreaker`].
    fn with_circuit_breaker(self, cfg: CircuitBreakerConfig) -> CircuitBreaker {
        CircuitBreaker::new(self, cfg)
    }
    /// Wraps `self` in an [`Idempotent`] layer.
    fn idempotent(self) -> Idempotent {
        Idempotent::new(self)
    }
    /// `self` as a shared trait object (what the engine takes).
    fn shared(self) -> Arc<dyn Actuator> {
        Arc::new(self)
    }
}

impl<A: Actuator + Sized + 'static> ActuatorExt for A {}

// ---------------------------------------------------------------------------------------
// Timeout

/// Fails an `apply` that takes longer than a deadline, dropping the inner future (see the
/// module docs on cancellation). `sync_state` past the same deadline is an `Err`.
#[derive(Debug)]
pub struct Timeout {
    inner: Arc<dyn Actuator>,
    after: Duration,
}

impl Timeout {
    /// `inner` with a deadline of `after` per call.
    pub fn new(inner: impl Actuator + 'static, after: Duration) -> Self {
        Self::from_arc(Arc::new(inner), after)
    }

    /// As [`Timeout::new`], for an actuator already shared.
    pub fn from_arc(inner: Arc<dyn Actuator>, after: Duration) -> Self {
        Timeout { inner, after }
    }

    /// The deadline.
    pub fn after(&self) -> Duration {
        self.after
    }
}

#[async_trait]
impl Actuator for Timeout {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        match tokio::time::timeout(self.after, self.inner.apply(req)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => {
                let name = self.inner.name();
                tracing::warn!(target: "harbinger::actuator", actuator = name, key = %req.key, attempt = req.attempt, after = ?self.after, "actuator timed out");
                ActuatorOutcome::failed(format!("{name} timed out after {:?}", self.after))
            }
        }
    }

    async fn sync_state(&self, shadow: &Shadow, resource: Option<&Resource>) -> Result<ShadowState, String> {
        match tokio::time::timeout(self.after, self.inner.sync_state(shadow, resource)).await {
            Ok(r) => r,
            Err(_elapsed) => Err(format!("{} sync_state timed out after {:?}", self.inner.name(), self.after)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dry run

/// Never calls the inner actuator: answers `DryRun` with what it would have done, under
/// the inner actuator's name, so a configured chain can be tried without touching
/// anything. Shadows it "creates" count as ready.
#[derive(Debug)]
pub struct DryRun {
    inner: Arc<dyn Actuator>,
}

impl DryRun {
    /// `inner`, never called.
    pub fn new(inner: impl Actuator + 'static) -> Self {
        Self::from_arc(Arc::new(inner))
    }

    /// As [`DryRun::new`], for an actuator already shared.
    pub fn from_arc(inner: Arc<dyn Actuator>) -> Self {
        DryRun { inner }
    }
}

#[async_trait]
impl Actuator for DryRun {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let name = self.inner.name();
        let detail = format!("dry run, {name} {}", harbinger_engine::actuator::describe(req));
        tracing::info!(target: "harbinger::actuator", actuator = name, key = %req.key, attempt = req.attempt, "{detail}");
        let reached = matches!(req.action, harbinger_plan::ActionKind::CreateShadow { .. }).then_some(ShadowState::Ready);
        ActuatorOutcome { status: JournalStatus::DryRun, detail, reached, endpoint: None }
    }

    async fn sync_state(&self, _shadow: &Shadow, _resource: Option<&Resource>) -> Result<ShadowState, String> {
        Ok(ShadowState::Ready)
    }
}

// ---------------------------------------------------------------------------------------
// Retry

/// How [`Retry`] retries: at most `attempts` calls; after the n-th failure it waits
/// `min(max, base * 2^(n-1))` (less the jitter, if any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included (0 counts as 1).
    pub attempts: u32,
    /// Wait after the first failure.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 100 ms then 200 ms apart, at most 2 s.
    fn default() -> Self {
        RetryPolicy { attempts: 3, base: Duration::from_millis(100), max: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// The wait after the `n`-th failed attempt (1-based), without jitter.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Jitter: each wait is shortened by a random part of up to `fraction` of it, drawn from a
/// seeded SplitMix64 sequence (reproducible).
#[derive(Debug)]
struct Jitter {
    fraction: f64,
    state: Mutex<u64>,
}

impl Jitter {
    /// A uniform number in [0, 1).
    fn next_unit(&self) -> f64 {
        let mut s = lock(&self.state);
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 53 random bits -> [0, 1); the casts are exact.
        #[allow(clippy::cast_precision_loss)]
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        unit
    }
}

/// Retries `Failed` outcomes (not `Skipped`, not those marked [`NOT_RETRYABLE`]) with
/// capped exponential backoff, at most [`RetryPolicy::attempts`] calls in all.
///
/// Each call passes the request with `attempt` counted up from the request's own
/// (`req.attempt`, `req.attempt + 1`, ...), under the same key. The final outcome's
/// detail says how many attempts it took: "failed after 3 attempts: …", or
/// "… (succeeded on attempt 2 of 3)". Waits use tokio time. No jitter unless
/// [`Retry::with_jitter`].
#[derive(Debug)]
pub struct Retry {
    inner: Arc<dyn Actuator>,
    policy: RetryPolicy,
    jitter: Option<Jitter>,
}

impl Retry {
    /// `inner`, retried by `policy`.
    pub fn new(inner: impl Actuator + 'static, policy: RetryPolicy) -> Self {
        Self::from_arc(Arc::new(inner), policy)
    }

    /// As [`Retry::new`], for an actuator already shared.
    pub fn from_arc(inner: Arc<dyn Actuator>, policy: RetryPolicy) -> Self {
        Retry { inner, policy, jitter: None }
    }

    /// Shortens each wait by a random part of up to `fraction` (clamped to 0..=1) of it,
    /// drawn from a sequence seeded with `seed`: the same seed gives the same waits.
    #[must_use]
    pub fn with_jitter(mut self, fraction: f64, seed: u64) -> Self {
        let fraction = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
        self.jitter = Some(Jitter { fraction, state: Mutex::new(seed) });
        self
    }

    /// The policy.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The wait after the `n`-th failed attempt, jitter included (draws from the jitter
    /// sequence).
    fn delay(&self, n: u32) -> Duration {
        let d = self.policy.backoff(n);
        match &self.jitter {
            Some(j) if j.fraction > 0.0 => d.mul_f64(1.0 - j.fraction * j.next_unit()),
            _ => d,
        }
    }
}

#[async_trait]
impl Actuator for Retry {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let attempts = self.policy.attempts.max(1);
        let mut r = req.clone();
        let mut n = 1;
        loop {
            r.attempt = req.attempt.saturating_add(n - 1);
            let mut out = self.inner.apply(&r).await;
            if !is_retryable(&out) {
                if n > 1 {
                    if out.succeeded() {
                        out.detail = format!("{} (succeeded on attempt {n} of {attempts})", out.detail);
                    } else {
                        out.detail = format!("after {n} attempts: {}", out.detail);
                    }
                }
                return out;
            }
            if n >= attempts {
                let plural = if n == 1 { "" } else { "s" };
                out.detail = format!("failed after {n} attempt{plural}: {}", out.detail);
                return out;
            }
            let wait = self.delay(n);
            tracing::warn!(
                target: "harbinger::actuator",
                actuator = self.inner.name(),
                key = %req.key,
                attempt = n,
                attempts,
                retry_in = ?wait,
                detail = %out.detail,
                "attempt failed, retrying"
            );
            tokio::time::sleep(wait).await;
            n += 1;
        }
    }

    async fn sync_state(&self, shadow: &Shadow, resource: Option<&Resource>) -> Result<ShadowState, String> {
        self.inner.sync_state(shadow, resource).await
    }
}

// ---------------------------------------------------------------------------------------
// Rate limit

/// At most `per_interval` applies start in any window of `interval` (a token bucket
/// whose tokens come back `interval` after they are spent, on tokio time).
///
/// The choice for the excess: an apply that would start within `max_wait` (default:
/// `interval`) waits for its turn, in arrival order; one that would have to wait longer
/// answers `Skipped` "rate limited …" at once, without calling the inner actuator (the
/// engine records it and plans again at a later tick). `sync_state` is not limited.
#[derive(Debug)]
pub struct RateLimit {
    inner: Arc<dyn Actuator>,
    per_interval: u32,
    interval: Duration,
    max_wait: Duration,
    /// Start times of the last `per_interval` grants, oldest first.
    grants: Mutex<VecDeque<Instant>>,
}

impl RateLimit {
    /// `inner`, limited to `per_interval` applies (at least 1) per `interval`.
    pub fn new(inner: impl Actuator + 'static, per_interval: u32, interval: Duration) -> Self {
        Self::from_arc(Arc::new(inner), per_interval, interval)
    }

    /// As [`RateLimit::new`], for an actuator already shared.
    pub fn from_arc(inner: Arc<dyn Actuator>, per_interval: u32, interval: Duration) -> Self {
        let per_interval = per_interval.max(1);
        RateLimit { inner, per_interval, interval, max_wait: interval, grants: Mutex::new(VecDeque::new()) }
    }

    /// Longest an apply waits for its turn before it is `Skipped` (zero: never waits).
    #[must_use]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// When an apply arriving now may start, reserving that turn; `Err(wait)` when the
    /// wait would exceed `max_wait` (nothing reserved).
    fn reserve(&self) -> Result<Instant, Duration> {
        let now = Instant::now();
        let mut g = lock(&self.grants);
        let cap = usize::try_from(self.per_interval).unwrap_or(usize::MAX);
        let at = if g.len() < cap { now } else { g.front().map_or(now, |oldest| (*oldest + self.interval).max(now)) };
        let wait = at - now;
        if wait > self.max_wait {
            return Err(wait);
        }
        if g.len() >= cap {
            g.pop_front();
        }
        g.push_back(at);
        Ok(at)
    }
}

#[async_trait]
impl Actuator for RateLimit {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        match self.reserve() {
            Ok(at) => {
                tokio::time::sleep_until(at).await;
                self.inner.apply(req).await
            }
            Err(wait) => {
                let detail = format!(
                    "rate limited: at most {} per {:?}, next turn in {wait:?} (waits at most {:?})",
                    self.per_interval, self.interval, self.max_wait
                );
                tracing::warn!(target: "harbinger::actuator", actuator = self.inner.name(), key = %req.key, outcome = "skipped", %detail, "rate limited");
                ActuatorOutcome::new(JournalStatus::Skipped, detail)
            }
        }
    }

    async fn sync_state(&self, shadow: &Shadow, resource: Option<&Resource>) -> Result<ShadowState, String> {
        self.inner.sync_state(shadow, resource).await
    }
}

// ---------------------------------------------------------------------------------------
// Circuit breaker

/// When a [`CircuitBreaker`] opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerConfig {
    /// Consecutive failed outcomes that open the circuit (0 counts as 1).
    pub failures: u32,
    /// How long it stays open before one trial is let through.
    pub cool_down: Duration,
}

impl Default for CircuitBreakerConfig {
    /// Opens after 5 failures in a row, for 60 s.
    fn default() -> Self {
        CircuitBreakerConfig { failures: 5, cool_down: Duration::from_secs(60) }
    }
}

/// Where a [`CircuitBreaker`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls answer `Skipped` without reaching the inner actuator.
    Open,
    /// The cool-down is over: the next call is a trial (one at a time).
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum Phase {
    Closed { consecutive: u32 },
    Open { until: Instant, last: String },
    HalfOpen { trial: bool },
}

#[derive(Debug)]
struct Breaker {
    name: &'static str,
    cfg: CircuitBreakerConfig,
    phase: Mutex<Phase>,
    opened: AtomicU64,
}

impl Breaker {
    fn state(&self) -> CircuitState {
        match &*lock(&self.phase) {
            Phase::Closed { .. } => CircuitState::Closed,
            Phase::Open { until, .. } if Instant::now() < *until => CircuitState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    fn open(&self, phase: &mut Phase, detail: &str, why: &str) {
        *phase = Phase::Open { until: Instant::now() + self.cfg.cool_down, last: detail.to_string() };
        let times = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            target: "harbinger::actuator",
            actuator = self.name,
            times_opened = times,
            cool_down = ?self.cfg.cool_down,
            last = %detail,
            "actuator {} is failing: circuit open ({why})",
            self.name
        );
    }
}

/// A cheap, cloneable view of a [`CircuitBreaker`], kept by the service to export its
/// state and how often it opened after the breaker itself went into a stack.
#[derive(Debug, Clone)]
pub struct CircuitHandle(Arc<Breaker>);

impl CircuitHandle {
    /// Where the breaker stands now (`Open` turns `HalfOpen` once the cool-down is over).
    pub fn state(&self) -> CircuitState {
        self.0.state()
    }
    /// Whether calls are being refused now.
    pub fn is_open(&self) -> bool {
        self.state() == CircuitState::Open
    }
    /// How many times it opened since it was built (a counter for metrics).
    pub fn times_opened(&self) -> u64 {
        self.0.opened.load(Ordering::Relaxed)
    }
    /// The name of the actuator it guards.
    pub fn actuator(&self) -> &'static str {
        self.0.name
    }
}

/// Stops calling an actuator that keeps failing.
///
/// Closed: calls go through; [`CircuitBreakerConfig::failures`] `Failed` outcomes in a
/// row open it (a success resets the count; `Skipped` counts neither way). Open: every
/// apply answers `Skipped` "circuit open …" without calling the inner actuator, until
/// `cool_down` has passed (tokio time). Half-open: the next apply is a trial (others
/// meanwhile are `Skipped`); its success closes the circuit, its failure opens it again.
///
/// Opening logs at error level, target `harbinger::actuator`: "actuator NAME is
/// failing: circuit open" — the alert. [`CircuitBreaker::handle`] exposes the state and
/// the number of times it opened for metrics. `sync_state` is delegated as is.
#[derive(Debug)]
pub struct CircuitBreaker {
    inner: Arc<dyn Actuator>,
    breaker: Arc<Breaker>,
}

impl CircuitBreaker {
    /// `inner`, guarded by a breaker configured by `cfg`.
    pub fn new(inner: impl Actuator + 'static, cfg: CircuitBreakerConfig) -> Self {
        Self::from_arc(Arc::new(inner), cfg)
    }

    /// As [`CircuitBreaker::new`], for an actuator already shared.
    pub fn from_arc(inner: Arc<dyn Actuator>, cfg: CircuitBreakerConfig) -> Self {
        let cfg = CircuitBreakerConfig { failures: cfg.failures.max(1), ..cfg };
        let breaker =
            Arc::new(Breaker { name: inner.name(), cfg, phase: Mutex::new(Phase::Closed { consecutive: 0 }), opened: AtomicU64::new(0) });
        CircuitBreaker { inner, breaker }
    }

    /// Where it stands now.
    pub fn state(&self) -> CircuitState {
        self.breaker.state()
    }

    /// Whether calls are being refused now.
    pub fn is_open(&self) -> bool {
        self.state() == CircuitState::Open
    }

    /// How many times it opened since it was built.
    pub fn times_opened(&self) -> u64 {
        self.breaker.opened.load(Ordering::Relaxed)
    }

    /// A handle on its state that outlives moving the breaker into another layer.
    pub fn handle(&self) -> CircuitHandle {
        CircuitHandle(Arc::clone(&self.breaker))
    }
}

/// Ends a half-open trial whose future was dropped: the next call becomes the trial.
struct TrialGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut p = lock(&self.breaker.phase);
            if matches!(*p, Phase::HalfOpen { trial: true }) {
                *p = Phase::HalfOpen { trial: false };
            }
        }
    }
}

#[async_trait]
impl Actuator for CircuitBreaker {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let b = &*self.breaker;
        let trial = {
            let mut p = lock(&b.phase);
            let now = Instant::now();
            match &mut *p {
                Phase::Closed { .. } => false,
                Phase::Open { until, last } if now < *until => {
                    let detail = format!(
                        "circuit open: {} failed {} times in a row (last: {last}); next trial in {:?}",
                        b.name,
                        b.cfg.failures,
                        *until - now
                    );
                    drop(p);
                    tracing::info!(target: "harbinger::actuator", actuator = b.name, key = %req.key, outcome = "skipped", %detail, "circuit open, action skipped");
                    return ActuatorOutcome::new(JournalStatus::Skipped, detail);
                }
                Phase::HalfOpen { trial: true } => {
                    drop(p);
                    let detail = format!("circuit half-open: {} is on trial with another action", b.name);
                    tracing::info!(target: "harbinger::actuator", actuator = b.name, key = %req.key, outcome = "skipped", %detail, "circuit half-open, action skipped");
                    return ActuatorOutcome::new(JournalStatus::Skipped, detail);
                }
                Phase::Open { .. } | Phase::HalfOpen { trial: false } => {
                    *p = Phase::HalfOpen { trial: true };
                    true
                }
            }
        };
        if trial {
            tracing::info!(target: "harbinger::actuator", actuator = b.name, key = %req.key, "circuit half-open, trying one action");
        }
        let mut guard = TrialGuard { breaker: b, armed: trial };
        let out = self.inner.apply(req).await;
        guard.armed = false;
        drop(guard);

        let mut p = lock(&b.phase);
        if out.succeeded() {
            if !matches!(*p, Phase::Closed { consecutive: 0 }) {
                if trial {
                    tracing::info!(target: "harbinger::actuator", actuator = b.name, "circuit closed: the trial succeeded");
                }
                *p = Phase::Closed { consecutive: 0 };
            }
        } else if is_failure(&out) {
            match &mut *p {
                Phase::Closed { consecutive } => {
                    *consecutive += 1;
                    if *consecutive >= b.cfg.failures {
                        let why = format!("{} failures in a row", b.cfg.failures);
                        b.open(&mut p, &out.detail, &why);
                    }
                }
                Phase::HalfOpen { .. } => b.open(&mut p, &out.detail, "the trial after the cool-down failed"),
                Phase::Open { .. } => {}
            }
        } else if trial && matches!(*p, Phase::HalfOpen { trial: true }) {
            // Skipped by the inner actuator: no verdict; the next call is the trial.
            *p = Phase::HalfOpen { trial: false };
        }
        out
    }

    async fn sync_state(&self, shadow: &Shadow, resource: Option<&Resource>) -> Result<ShadowState, String> {
        self.inner.sync_state(shadow, resource).await
    }
}

// ---------------------------------------------------------------------------------------
// Idempotent

/// One key's remembered outcome; its async lock makes concurrent calls with the same
/// key run one at a time.
type Slot = Arc<tokio::sync::Mutex<Option<ActuatorOutcome>>>;

#[derive(Debug, Default)]
struct Seen {
    slots: HashMap<String, Slot>,
    order: VecDeque<String>,
}

/// Remembers, in memory, the successful outcome of each key: a repeated key answers
/// `AlreadyApplied` (a dry run again `DryRun`), with the first outcome's endpoint and
/// state, without calling the inner actuator. Failed and skipped outcomes are not
/// remembered (the next call goes through). Calls with the same key run one at a time.
///
/// The memory is per process and bounded ([`Idempotent::capacity`], default 10,000 keys,
/// oldest forgotten first): across restarts, idempotency is the inner actuator's job.
#[derive(Debug)]
pub struct Idempotent {
    inner: Arc<dyn Actuator>,
    capacity: usize,
    seen: Mutex<Seen>,
}

impl Idempotent {
    /// `inner`, deduplicated by key.
    pub fn new(inner: impl Actuator + 'static) -> Self {
        Self::from_arc(Arc::new(inner))
    }

    /// As [`Idempotent::new`], for an actuator already shared.
    pub fn from_arc(inner: Arc<dyn Actuator>) -> Self {
        Idempotent { inner, capacity: 10_000, seen: Mutex::new(Seen::default()) }
    }

    /// Remembers at most `capacity` keys (at least 1).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    fn slot(&self, key: &str) -> Slot {
        let mut seen = lock(&self.seen);
        if let Some(s) = seen.slots.get(key) {
            return Arc::clone(s);
        }
        let s: Slot = Arc::default();
        seen.slots.insert(key.to_string(), Arc::clone(&s));
        seen.order.push_back(key.to_string());
        while seen.order.len() > self.capacity {
            if let Some(old) = seen.order.pop_front() {
                seen.slots.remove(&old);
            }
        }
        s
    }
}

#[async_trait]
impl Actuator for Idempotent {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let slot = self.slot(&req.key);
        let mut g = slot.lock().await;
        if let Some(prev) = &*g {
            let status = if prev.status == JournalStatus::DryRun { JournalStatus::DryRun } else { JournalStatus::AlreadyApplied };
            let detail = format!("already done in this process: {}", prev.detail);
            tracing::info!(target: "harbinger::actuator", actuator = self.inner.name(), key = %req.key, outcome = status.as_str(), %detail, "already done in this process");
            return ActuatorOutcome { status, detail, reached: prev.reached, endpoint: prev.endpoint.clone() };
        }
        let out = self.inner.apply(req).await;
        if out.succeeded() {
            *g = Some(out.clone());
        }
        out
    }

    async fn sync_state(&self, shadow: &Shadow, resource: Option<&Resource>) -> Result<ShadowState, String> {
        self.inner.sync_state(shadow, resource).await
    }
}
