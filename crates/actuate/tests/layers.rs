//! The layers around any actuator, against a scripted fake: timeout, retry, rate limit,
//! circuit breaker, idempotency. Time is paused (tokio test-util): nothing really sleeps.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use harbinger_actuate::layers::{
    ActuatorExt, CircuitBreaker, CircuitBreakerConfig, CircuitState, Idempotent, NOT_RETRYABLE, RateLimit, Retry, RetryPolicy, Timeout,
};
use harbinger_core::JournalStatus;
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_engine::{Actuator, ActuatorOutcome, ActuatorRequest};
use harbinger_plan::ActionKind;
use tokio::time::Instant;

/// Answers from a script (then `Applied` forever), optionally after a delay; counts calls
/// and records when each started and with which attempt.
#[derive(Debug, Default)]
struct Fake {
    script: Mutex<VecDeque<ActuatorOutcome>>,
    delay: Duration,
    calls: AtomicU32,
    starts: Mutex<Vec<(Instant, u32)>>,
}

impl Fake {
    fn new(script: impl IntoIterator<Item = ActuatorOutcome>) -> Arc<Self> {
        Arc::new(Fake { script: Mutex::new(script.into_iter().collect()), ..Fake::default() })
    }
    fn failing(n: usize) -> Arc<Self> {
        Self::new((0..n).map(|i| ActuatorOutcome::failed(format!("boom {}", i + 1))))
    }
    fn slow(delay: Duration) -> Arc<Self> {
        Arc::new(Fake { delay, ..Fake::default() })
    }
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
    fn starts(&self) -> Vec<(Instant, u32)> {
        self.starts.lock().unwrap().clone()
    }
    fn dyn_arc(self: &Arc<Self>) -> Arc<dyn Actuator> {
        Arc::clone(self) as Arc<dyn Actuator>
    }
}

#[async_trait]
impl Actuator for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.starts.lock().unwrap().push((Instant::now(), req.attempt));
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| {
            let mut o = ActuatorOutcome::new(JournalStatus::Applied, "done");
            o.endpoint = Some("10.0.0.5:6380".into());
            o.reached = Some(ShadowState::Ready);
            o
        })
    }
    async fn sync_state(&self, _shadow: &Shadow, _resource: Option<&harbinger_core::Resource>) -> Result<ShadowState, String> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Ok(ShadowState::Syncing)
    }
}

fn shadow() -> Shadow {
    Shadow {
        id: "db-3@h042#1000".into(),
        resource: "db-3".into(),
        primary: "h017".into(),
        host: "h042".into(),
        state: ShadowState::Planned,
        causes: vec![],
        priority: 0.5,
        cpu_cores: 1.0,
        mem_gb: 1.0,
        created_at: 1000,
        updated_at: 1000,
        last_used_at: 1000,
        expires_at: None,
        endpoint: None,
    }
}

fn req(key: &str) -> ActuatorRequest {
    let s = shadow();
    ActuatorRequest { key: key.into(), attempt: 1, action: ActionKind::CreateShadow { shadow: s.clone() }, shadow: s, resource: None }
}

fn skipped(why: &str) -> ActuatorOutcome {
    ActuatorOutcome::new(JournalStatus::Skipped, why)
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn timeout_fails_a_slow_apply_and_passes_a_fast_one() {
    let slow = Fake::slow(Duration::from_secs(10));
    let t = Timeout::from_arc(slow.dyn_arc(), Duration::from_secs(5));
    let start = Instant::now();
    let out = t.apply(&req("k")).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.contains("timed out after 5s"), "{}", out.detail);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(t.name(), "fake");
    assert!(t.sync_state(&shadow(), None).await.unwrap_err().contains("timed out"));

    let fast = Timeout::new(Fake::default(), Duration::from_secs(5));
    let out = fast.apply(&req("k")).await;
    assert_eq!(out.status, JournalStatus::Applied);
    assert_eq!(out.endpoint.as_deref(), Some("10.0.0.5:6380"));
}

#[tokio::test(start_paused = true)]
async fn retry_succeeds_on_the_kth_attempt_with_exponential_backoff() {
    let fake = Fake::failing(2);
    let r = Retry::from_arc(fake.dyn_arc(), RetryPolicy { attempts: 4, base: Duration::from_millis(100), max: Duration::from_secs(2) });
    let start = Instant::now();
    let out = r.apply(&req("k")).await;
    assert_eq!(out.status, JournalStatus::Applied);
    assert!(out.detail.contains("succeeded on attempt 3 of 4"), "{}", out.detail);
    assert_eq!(out.endpoint.as_deref(), Some("10.0.0.5:6380"), "the outcome passes through");
    let starts = fake.starts();
    let at: Vec<Duration> = starts.iter().map(|(t, _)| *t - start).collect();
    assert_eq!(at, [Duration::ZERO, 100 * MS, 300 * MS]);
    let attempts: Vec<u32> = starts.iter().map(|(_, a)| *a).collect();
    assert_eq!(attempts, [1, 2, 3], "each try counts as an attempt");
}

#[tokio::test(start_paused = true)]
async fn retry_stops_after_n_attempts_and_caps_the_wait() {
    let fake = Fake::failing(10);
    let r = Retry::from_arc(fake.dyn_arc(), RetryPolicy { attempts: 5, base: Duration::from_millis(100), max: Duration::from_millis(300) });
    let start = Instant::now();
    let out = r.apply(&req("k")).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert_eq!(fake.calls(), 5);
    assert!(out.detail.starts_with("failed after 5 attempts: boom 5"), "{}", out.detail);
    // 100 + 200 + 300 + 300 (capped).
    assert_eq!(start.elapsed(), 900 * MS);
}

#[tokio::test(start_paused = true)]
async fn retry_does_not_retry_skipped_or_not_retryable() {
    let fake = Fake::new([skipped("rate limited")]);
    let r = Retry::from_arc(fake.dyn_arc(), RetryPolicy::default());
    let out = r.apply(&req("k")).await;
    assert_eq!(out.status, JournalStatus::Skipped);
    assert_eq!(out.detail, "rate limited");
    assert_eq!(fake.calls(), 1);

    let fake = Fake::new([ActuatorOutcome::failed(format!("HTTP 400 {NOT_RETRYABLE}"))]);
    let r = Retry::from_arc(fake.dyn_arc(), RetryPolicy::default());
    let out = r.apply(&req("k")).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_jitter_is_bounded_and_reproducible() {
    let policy = RetryPolicy { attempts: 4, base: Duration::from_millis(100), max: Duration::from_secs(2) };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let fake = Fake::failing(3);
        let r = Retry::from_arc(fake.dyn_arc(), policy).with_jitter(0.5, 42);
        assert_eq!(r.apply(&req("k")).await.status, JournalStatus::Applied);
        let starts = fake.starts();
        let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1].0 - w[0].0).collect();
        for (gap, full) in gaps.iter().zip([100 * MS, 200 * MS, 400 * MS]) {
            assert!(*gap <= full && *gap >= full / 2, "{gap:?} outside [{:?}, {full:?}]", full / 2);
        }
        runs.push(gaps);
    }
    assert_eq!(runs[0], runs[1], "same seed, same waits");
}

#[tokio::test(start_paused = true)]
async fn timeout_inside_retry_retries_each_slow_attempt() {
    let slow = Fake::slow(Duration::from_secs(10));
    let stack = Retry::new(
        Timeout::from_arc(slow.dyn_arc(), Duration::from_secs(1)),
        RetryPolicy { attempts: 3, base: Duration::from_millis(100), max: Duration::from_secs(2) },
    );
    let start = Instant::now();
    let out = stack.apply(&req("k")).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.contains("failed after 3 attempts") && out.detail.contains("timed out after 1s"), "{}", out.detail);
    assert_eq!(slow.calls(), 3);
    assert_eq!(start.elapsed(), 3 * Duration::from_secs(1) + 300 * MS);
}

#[tokio::test(start_paused = true)]
async fn circuit_opens_after_k_failures_skips_then_half_opens_and_closes() {
    let fake = Fake::failing(4);
    let cb = CircuitBreaker::from_arc(fake.dyn_arc(), CircuitBreakerConfig { failures: 3, cool_down: Duration::from_secs(30) });
    let handle = cb.handle();
    for _ in 0..2 {
        assert_eq!(cb.apply(&req("k")).await.status, JournalStatus::Failed);
        assert_eq!(cb.state(), CircuitState::Closed);
    }
    assert_eq!(cb.apply(&req("k")).await.status, JournalStatus::Failed);
    assert!(cb.is_open() && handle.is_open());
    assert_eq!(handle.times_opened(), 1);
    assert_eq!(fake.calls(), 3);

    // Open: refused without calling the actuator.
    let out = cb.apply(&req("k")).await;
    assert_eq!(out.status, JournalStatus::Skipped);
    assert!(out.detail.starts_with("circuit open"), "{}", out.detail);
    assert_eq!(fake.calls(), 3);

    // After the cool-down: one trial; it fails (the 4th scripted failure), so it reopens.
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(cb.state(), CircuitState::Open);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(cb.apply(&req("k")).await.status, JournalStatus::Failed);
    assert_eq!(fake.calls(), 4);
    assert!(cb.is_open());
    assert_eq!(handle.times_opened(), 2);
    assert_eq!(cb.apply(&req("k")).await.status, JournalStatus::Skipped);
    assert_eq!(fake.calls(), 4);

    // Next cool-down: the trial succeeds and closes it.
    tokio::time::advance(Duration::from_secs(30)).await;
    let out = cb.apply(&req("k")).await;
    assert_eq!(out.status, JournalStatus::Applied);
    assert_eq!(cb.state(), CircuitState::Closed);
    assert_eq!(fake.calls(), 5);
    assert_eq!(cb.apply(&req("k")).await.status, JournalStatus::Applied);
    assert_eq!(handle.times_opened(), 2);
}

#[tokio::test(start_paused = true)]
async fn circuit_success_resets_the_count_and_skipped_is_neutral() {
    let ok = || ActuatorOutcome::new(JournalStatus::Applied, "ok");
    let f = || ActuatorOutcome::failed("boom");
    let fake = Fake::new([f(), f(), ok(), f(), skipped("not now"), f(), f()]);
    let cb = CircuitBreaker::from_arc(fake.dyn_arc(), CircuitBreakerConfig { failures: 3, cool_down: Duration::from_secs(30) });
    for _ in 0..6 {
        let _out = cb.apply(&req("k")).await;
        assert_eq!(cb.state(), CircuitState::Closed);
    }
    let _out = cb.apply(&req("k")).await;
    assert!(cb.is_open(), "3 failures in a row, the skip between them counts neither way");
}

#[tokio::test(start_paused = true)]
async fn circuit_half_open_lets_one_trial_through_at_a_time() {
    let fake = Arc::new(Fake { delay: Duration::from_secs(1), ..Fake::default() });
    fake.script.lock().unwrap().push_back(ActuatorOutcome::failed("boom"));
    let cb = Arc::new(CircuitBreaker::from_arc(fake.dyn_arc(), CircuitBreakerConfig { failures: 1, cool_down: Duration::from_secs(10) }));
    assert_eq!(cb.apply(&req("k")).await.status, JournalStatus::Failed);
    assert!(cb.is_open());
    tokio::time::advance(Duration::from_secs(10)).await;
    let trial = {
        let cb = Arc::clone(&cb);
        tokio::spawn(async move { cb.apply(&req("a")).await })
    };
    tokio::task::yield_now().await;
    let other = cb.apply(&req("b")).await;
    assert_eq!(other.status, JournalStatus::Skipped);
    assert!(other.detail.contains("half-open"), "{}", other.detail);
    assert_eq!(trial.await.unwrap().status, JournalStatus::Applied);
    assert_eq!(cb.state(), CircuitState::Closed);
    assert_eq!(fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_spaces_applies_by_the_interval() {
    let fake = Arc::new(Fake::default());
    let rl = RateLimit::from_arc(fake.dyn_arc(), 3, Duration::from_secs(1)).max_wait(Duration::from_secs(10));
    let start = Instant::now();
    for i in 0..7 {
        assert_eq!(rl.apply(&req(&format!("k{i}"))).await.status, JournalStatus::Applied);
    }
    let at: Vec<Duration> = fake.starts().iter().map(|(t, _)| *t - start).collect();
    let s = Duration::from_secs;
    assert_eq!(at, [s(0), s(0), s(0), s(1), s(1), s(1), s(2)]);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_skips_what_would_wait_too_long() {
    let fake = Arc::new(Fake::default());
    let rl = RateLimit::from_arc(fake.dyn_arc(), 2, Duration::from_secs(60)).max_wait(Duration::from_secs(1));
    assert_eq!(rl.apply(&req("a")).await.status, JournalStatus::Applied);
    assert_eq!(rl.apply(&req("b")).await.status, JournalStatus::Applied);
    let out = rl.apply(&req("c")).await;
    assert_eq!(out.status, JournalStatus::Skipped);
    assert!(out.detail.starts_with("rate limited"), "{}", out.detail);
    assert_eq!(fake.calls(), 2);
    tokio::time::advance(Duration::from_secs(59)).await;
    let start = Instant::now();
    assert_eq!(rl.apply(&req("c")).await.status, JournalStatus::Applied, "within max_wait: waits its turn");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn idempotent_answers_a_repeated_key_without_calling_again() {
    let fake = Fake::new([ActuatorOutcome::failed("boom")]);
    let idem = Idempotent::from_arc(fake.dyn_arc());
    assert_eq!(idem.apply(&req("create:s1")).await.status, JournalStatus::Failed, "failures are not remembered");
    let first = idem.apply(&req("create:s1")).await;
    assert_eq!(first.status, JournalStatus::Applied);
    assert_eq!(fake.calls(), 2);
    let again = idem.apply(&req("create:s1")).await;
    assert_eq!(again.status, JournalStatus::AlreadyApplied);
    assert_eq!(again.endpoint, first.endpoint);
    assert_eq!(again.reached, Some(ShadowState::Ready));
    assert_eq!(fake.calls(), 2);
    assert_eq!(idem.apply(&req("create:s2")).await.status, JournalStatus::Applied);
    assert_eq!(fake.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn idempotent_runs_concurrent_duplicates_once_and_forgets_beyond_capacity() {
    let fake = Fake::slow(Duration::from_secs(1));
    let idem = Arc::new(Idempotent::from_arc(fake.dyn_arc()).capacity(1));
    let a = {
        let idem = Arc::clone(&idem);
        tokio::spawn(async move { idem.apply(&req("k")).await })
    };
    let b = idem.apply(&req("k")).await;
    let a = a.await.unwrap();
    let mut statuses = [a.status, b.status];
    statuses.sort_by_key(|s| s.as_str());
    assert_eq!(statuses, [JournalStatus::AlreadyApplied, JournalStatus::Applied]);
    assert_eq!(fake.calls(), 1);
    let _other = idem.apply(&req("k2")).await;
    assert_eq!(idem.apply(&req("k")).await.status, JournalStatus::Applied, "k was forgotten");
    assert_eq!(fake.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_full_stack_reads_inside_out_and_reports_the_inner_name() {
    let fake = Fake::failing(1);
    let stack = Timeout::from_arc(fake.dyn_arc(), Duration::from_secs(5))
        .with_retry(RetryPolicy { attempts: 3, base: Duration::from_millis(100), max: Duration::from_secs(2) })
        .with_circuit_breaker(CircuitBreakerConfig::default())
        .with_rate_limit(10, Duration::from_secs(1))
        .idempotent();
    assert_eq!(stack.name(), "fake");
    let out = stack.apply(&req("k")).await;
    assert_eq!(out.status, JournalStatus::Applied);
    assert!(out.detail.contains("attempt 2 of 3"), "{}", out.detail);
    assert_eq!(stack.apply(&req("k")).await.status, JournalStatus::AlreadyApplied);
    assert_eq!(stack.sync_state(&shadow(), None).await, Ok(ShadowState::Syncing), "sync_state is delegated");
    let shared: Arc<dyn Actuator> = stack.shared();
    assert_eq!(shared.name(), "fake");
}
