//! Clocks. Decision logic takes time from a [`Clock`] it is given, so replays are deterministic.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::TimestampMs;

/// A source of "now" in milliseconds since the epoch.
///
/// Live code uses [`SystemClock`]; replay and tests use [`ManualClock`].
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now_ms(&self) -> TimestampMs;
}

/// The wall clock. Only the edges of the system (servers, CLI) construct one.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> TimestampMs {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to: replay drives it from the data.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `t`.
    pub fn new(t: TimestampMs) -> Self {
        Self(AtomicI64::new(t))
    }
    /// Moves the clock to `t` (it may go backwards; callers decide).
    pub fn set(&self, t: TimestampMs) {
        self.0.store(t, Ordering::SeqCst);
    }
    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> TimestampMs {
        self.0.load(Ordering::SeqCst)
    }
}

/// The wall clock sped up: from `origin` on, every real millisecond is `speed` clock
/// milliseconds. Soak runs use it so that hours of data time pass in minutes, filling
/// every time-bounded buffer of the server (retention, windows) within the run.
#[derive(Clone, Copy, Debug)]
pub struct ScaledClock {
    origin: TimestampMs,
    speed: u32,
}

impl ScaledClock {
    /// A clock that reads `origin` at wall time `origin` and runs `speed` times as fast
    /// (`speed` 0 is taken as 1).
    pub fn new(origin: TimestampMs, speed: u32) -> Self {
        Self { origin, speed: speed.max(1) }
    }
    /// The clock's reading at wall time `wall`.
    pub fn at(&self, wall: TimestampMs) -> TimestampMs {
        self.origin.saturating_add(wall.saturating_sub(self.origin).saturating_mul(i64::from(self.speed)))
    }
}

impl Clock for ScaledClock {
    fn now_ms(&self) -> TimestampMs {
        self.at(SystemClock.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_speed_times_as_fast_from_its_origin() {
        let c = ScaledClock::new(1_000_000, 60);
        assert_eq!(c.at(1_000_000), 1_000_000);
        assert_eq!(c.at(1_000_500), 1_030_000);
        assert_eq!(c.at(999_000), 940_000, "before the origin it runs backwards as fast");
        assert_eq!(ScaledClock::new(5, 0).at(7), 7, "speed 0 is 1");
        let now = SystemClock.now_ms();
        let live = ScaledClock::new(now, 1).now_ms();
        assert!((now..now + 60_000).contains(&live), "{live} vs {now}");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance(500);
        assert_eq!(c.now_ms(), 1_500);
        c.set(10);
        assert_eq!(c.now_ms(), 10);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
