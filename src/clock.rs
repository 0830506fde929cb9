//! Time as the parts that schedule things see it: wall-clock milliseconds (what the store records
//! and compares) and a monotonic instant (what timeouts and circuit breakers measure).
//!
//! Everything that waits, retries or raises an alert after a deadline reads time from a [`Clock`]
//! handed to it, never from `chrono::Utc::now()` or `Instant::now()` directly, so that tests can
//! run an hour of retries in a second with a [`ManualClock`]. What it must NOT do: sleep. Sleeping
//! stays with tokio (real time); a manual clock only changes what "now" is.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A source of "now".
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch (UTC).
    fn now_ms(&self) -> i64;
    /// A monotonic instant.
    fn instant(&self) -> Instant;
    /// Now as RFC 3339 UTC with milliseconds, as the store writes timestamps.
    fn now_rfc3339(&self) -> String {
        rfc3339_ms(self.now_ms())
    }
}

/// A clock shared by the parts of one gateway.
pub type SharedClock = Arc<dyn Clock>;

/// Real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// The real clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still until told to move (tests, simulations).
#[derive(Debug)]
pub struct ManualClock {
    start_ms: i64,
    start: Instant,
    offset_ms: AtomicI64,
}

impl ManualClock {
    /// A clock that reads `start_ms` until advanced.
    pub fn new(start_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            start_ms,
            start: Instant::now(),
            offset_ms: AtomicI64::new(0),
        })
    }

    /// A manual clock starting at the current real time.
    pub fn starting_now() -> Arc<ManualClock> {
        ManualClock::new(SystemClock.now_ms())
    }

    /// Move time forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// How far the clock has been moved.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::SeqCst).max(0) as u64)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + self.offset_ms.load(Ordering::SeqCst)
    }
    fn instant(&self) -> Instant {
        self.start + self.elapsed()
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-11-25T15:09:36.123Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new(1_000);
        let i0 = c.instant();
        assert_eq!(c.now_ms(), 1_000);
        c.advance(Duration::from_secs(3600));
        assert_eq!(c.now_ms(), 1_000 + 3_600_000);
        assert_eq!(c.instant() - i0, Duration::from_secs(3600));
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
