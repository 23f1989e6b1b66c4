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

#[cfg(test)]
mod tests {
    use super::*;

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
