//! A circuit breaker per destination.
//!
//! Closed: every send may go. After `failure_threshold` failures in a row the breaker opens and
//! nothing is sent to that destination until `cool_down` has passed; then it is half-open and
//! exactly one trial send is let through. The trial's success closes the breaker; its failure
//! opens it for another cool-down. A trial whose outcome is never reported (its worker died)
//! does not wedge the breaker: after another cool-down the next caller becomes the trial.
//!
//! [`Breakers`] holds one breaker per destination string (a transport's
//! [`destination`](super::Transport::destination)), is shared between workers (`Sync`, one short
//! mutex), and reads time (the monotonic [`instant`](crate::clock::Clock::instant)) from the
//! gateway's clock — the one the worker schedules rows by, so a manual clock steps both together.
//!
//! What this module must NOT do: send, sleep, or decide what counts as a failure (the worker
//! reports only failures that say the destination is unwell, see
//! [`TransportError::counts_against_destination`](super::TransportError::counts_against_destination)).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;

/// Breaker settings. Config fields: `failure_threshold`, `cool_down_ms` (milliseconds); both
/// optional, unknown fields refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BreakerConfigRaw")]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker; at least 1.
    pub failure_threshold: u32,
    /// How long an open breaker stays open before a trial.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    /// 5 failures in a row; 30 s cool-down.
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakerConfigRaw {
    #[serde(default = "default_threshold")]
    failure_threshold: u32,
    #[serde(default = "default_cool_down_ms")]
    cool_down_ms: u64,
}

fn default_threshold() -> u32 {
    BreakerConfig::default().failure_threshold
}
fn default_cool_down_ms() -> u64 {
    BreakerConfig::default().cool_down.as_millis() as u64
}

impl TryFrom<BreakerConfigRaw> for BreakerConfig {
    type Error = String;
    fn try_from(r: BreakerConfigRaw) -> Result<Self, String> {
        if r.failure_threshold == 0 {
            return Err("failure_threshold must be at least 1".into());
        }
        if r.cool_down_ms == 0 {
            return Err("cool_down_ms must be at least 1".into());
        }
        Ok(BreakerConfig {
            failure_threshold: r.failure_threshold,
            cool_down: Duration::from_millis(r.cool_down_ms),
        })
    }
}

/// Not now: the destination's breaker is open; ask again at this instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAt(pub Instant);

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// One destination's breaker, for metrics and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerSnapshot {
    pub destination: String,
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// Open: time until a trial may go; half-open: time until another trial may go if the
    /// current one never reports; closed: none.
    pub retry_in_ms: Option<u64>,
    /// How often this breaker has opened since start.
    pub times_opened: u64,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    /// Nothing goes until this instant.
    Open {
        until: Instant,
    },
    /// One trial went at `since`; others wait until `since + cool_down`.
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    phase: Phase,
    consecutive_failures: u32,
    times_opened: u64,
}

impl Entry {
    const NEW: Entry = Entry {
        phase: Phase::Closed,
        consecutive_failures: 0,
        times_opened: 0,
    };
}

/// One breaker per destination.
pub struct Breakers {
    config: BreakerConfig,
    clock: SharedClock,
    map: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for Breakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breakers")
            .field("config", &self.config)
            .field("destinations", &self.lock().len())
            .finish()
    }
}

impl Breakers {
    /// Breakers on the system clock.
    pub fn new(config: BreakerConfig) -> Self {
        Self::with_clock(config, crate::clock::system())
    }

    /// Breakers reading time from `clock`.
    pub fn with_clock(config: BreakerConfig, clock: SharedClock) -> Self {
        Breakers {
            config,
            clock,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn threshold(&self) -> u32 {
        self.config.failure_threshold.max(1)
    }

    /// May a send to `dest` go now? A caller that gets `Ok` on a half-open breaker is its one
    /// trial and must report `success` or `failure`.
    pub fn allow(&self, dest: &str) -> Result<(), RetryAt> {
        let now = self.clock.instant();
        let mut map = self.lock();
        let Some(e) = map.get_mut(dest) else {
            return Ok(());
        };
        match e.phase {
            Phase::Closed => Ok(()),
            Phase::Open { until } if now < until => Err(RetryAt(until)),
            Phase::HalfOpen { since } if now < since + self.config.cool_down => {
                Err(RetryAt(since + self.config.cool_down))
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => {
                e.phase = Phase::HalfOpen { since: now };
                Ok(())
            }
        }
    }

    /// A send to `dest` succeeded: the breaker closes and the failure count starts again.
    pub fn success(&self, dest: &str) {
        let mut map = self.lock();
        if let Some(e) = map.get_mut(dest) {
            e.phase = Phase::Closed;
            e.consecutive_failures = 0;
        }
    }

    /// A send to `dest` failed in a way that says the destination is unwell.
    pub fn failure(&self, dest: &str) {
        let now = self.clock.instant();
        let threshold = self.threshold();
        let cool_down = self.config.cool_down;
        let mut map = self.lock();
        let e = match map.get_mut(dest) {
            Some(e) => e,
            None => map.entry(dest.to_owned()).or_insert(Entry::NEW),
        };
        e.consecutive_failures = e.consecutive_failures.saturating_add(1);
        let open = match e.phase {
            Phase::Closed => e.consecutive_failures >= threshold,
            Phase::HalfOpen { .. } => true,
            // A late failure of a send let through before the breaker opened: no change.
            Phase::Open { .. } => false,
        };
        if open {
            e.phase = Phase::Open {
                until: now + cool_down,
            };
            e.times_opened += 1;
        }
    }

    /// The state of `dest`'s breaker (closed when it has never failed). An open breaker whose
    /// cool-down has passed reads as half-open: the next `allow` lets a trial through.
    pub fn state(&self, dest: &str) -> BreakerState {
        let now = self.clock.instant();
        self.lock()
            .get(dest)
            .map_or(BreakerState::Closed, |e| state_of(e, now))
    }

    /// Every destination that has failed at least once, sorted by destination.
    pub fn snapshot(&self) -> Vec<BreakerSnapshot> {
        let now = self.clock.instant();
        let cool_down = self.config.cool_down;
        let mut out: Vec<BreakerSnapshot> = self
            .lock()
            .iter()
            .map(|(dest, e)| {
                let at = match e.phase {
                    Phase::Closed => None,
                    Phase::Open { until } => Some(until),
                    Phase::HalfOpen { since } => Some(since + cool_down),
                };
                BreakerSnapshot {
                    destination: dest.clone(),
                    state: state_of(e, now),
                    consecutive_failures: e.consecutive_failures,
                    retry_in_ms: at.map(|t| t.saturating_duration_since(now).as_millis() as u64),
                    times_opened: e.times_opened,
                }
            })
            .collect();
        out.sort_by(|a, b| a.destination.cmp(&b.destination));
        out
    }
}

fn state_of(e: &Entry, now: Instant) -> BreakerState {
    match e.phase {
        Phase::Closed => BreakerState::Closed,
        Phase::Open { until } if now < until => BreakerState::Open,
        Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::sync::Arc;

    const A: &str = "https://unit-a.example/kad";
    const B: &str = "https://unit-b.example/kad";

    fn setup(threshold: u32, cool_ms: u64) -> (Arc<ManualClock>, Breakers) {
        let clock = ManualClock::new(0);
        let b = Breakers::with_clock(
            BreakerConfig {
                failure_threshold: threshold,
                cool_down: Duration::from_millis(cool_ms),
            },
            clock.clone(),
        );
        (clock, b)
    }

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let (clock, b) = setup(3, 1000);
        b.failure(A);
        b.failure(A);
        b.success(A); // the run is broken
        b.failure(A);
        b.failure(A);
        assert_eq!(b.allow(A), Ok(()));
        assert_eq!(b.state(A), BreakerState::Closed);
        b.failure(A);
        assert_eq!(b.state(A), BreakerState::Open);
        let until = clock.instant() + Duration::from_millis(1000);
        assert_eq!(b.allow(A), Err(RetryAt(until)));
        // Other destinations are not affected.
        assert_eq!(b.allow(B), Ok(()));
        assert_eq!(b.state(B), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_exactly_one_trial_through_then_closes_on_success() {
        let (clock, b) = setup(1, 1000);
        b.failure(A);
        clock.advance(Duration::from_millis(999));
        assert!(b.allow(A).is_err());
        clock.advance(Duration::from_millis(1));
        assert_eq!(b.state(A), BreakerState::HalfOpen);
        assert_eq!(b.allow(A), Ok(()), "the trial");
        let trial_at = clock.instant();
        for _ in 0..5 {
            assert_eq!(
                b.allow(A),
                Err(RetryAt(trial_at + Duration::from_millis(1000)))
            );
        }
        b.success(A);
        assert_eq!(b.state(A), BreakerState::Closed);
        assert_eq!(b.allow(A), Ok(()));
        assert_eq!(b.allow(A), Ok(()));
    }

    #[test]
    fn failed_trial_reopens_for_a_full_cool_down() {
        let (clock, b) = setup(2, 500);
        b.failure(A);
        b.failure(A);
        clock.advance(Duration::from_millis(600));
        assert_eq!(b.allow(A), Ok(()));
        clock.advance(Duration::from_millis(50));
        b.failure(A);
        assert_eq!(b.state(A), BreakerState::Open);
        assert_eq!(
            b.allow(A),
            Err(RetryAt(clock.instant() + Duration::from_millis(500)))
        );
        let s = &b.snapshot()[0];
        assert_eq!(s.times_opened, 2);
        assert_eq!(s.consecutive_failures, 3);
        assert_eq!(s.retry_in_ms, Some(500));
    }

    #[test]
    fn a_lost_trial_does_not_wedge_the_breaker() {
        let (clock, b) = setup(1, 100);
        b.failure(A);
        clock.advance(Duration::from_millis(100));
        assert_eq!(b.allow(A), Ok(())); // trial whose outcome is never reported
        clock.advance(Duration::from_millis(99));
        assert!(b.allow(A).is_err());
        clock.advance(Duration::from_millis(1));
        assert_eq!(b.allow(A), Ok(()), "a new trial after another cool-down");
    }

    #[test]
    fn late_failure_while_open_keeps_the_deadline() {
        let (clock, b) = setup(1, 1000);
        b.failure(A);
        let until = clock.instant() + Duration::from_millis(1000);
        clock.advance(Duration::from_millis(400));
        b.failure(A);
        assert_eq!(b.allow(A), Err(RetryAt(until)));
        assert_eq!(b.snapshot()[0].times_opened, 1);
    }

    #[test]
    fn snapshot_is_sorted_and_serialisable() {
        let (_clock, b) = setup(1, 1000);
        b.failure(B);
        b.failure(A);
        b.success(A);
        let s = b.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].destination, A);
        assert_eq!(s[0].state, BreakerState::Closed);
        assert_eq!(s[0].retry_in_ms, None);
        assert_eq!(s[1].state, BreakerState::Open);
        let j = serde_json::to_value(&s[1]).unwrap();
        assert_eq!(j["state"], "open");
        assert_eq!(j["retry_in_ms"], 1000);
    }

    #[test]
    fn shared_between_threads() {
        let (_clock, b) = setup(1000, 1000);
        let b = Arc::new(b);
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        b.failure(A);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(b.state(A), BreakerState::Open);
        assert_eq!(b.snapshot()[0].consecutive_failures, 1000);
        assert_eq!(b.snapshot()[0].times_opened, 1);
    }

    #[test]
    fn config_in_ms_checked() {
        let c: BreakerConfig =
            toml::from_str("failure_threshold = 3\ncool_down_ms = 2500").unwrap();
        assert_eq!(
            c,
            BreakerConfig {
                failure_threshold: 3,
                cool_down: Duration::from_millis(2500)
            }
        );
        assert_eq!(
            toml::from_str::<BreakerConfig>("").unwrap(),
            BreakerConfig::default()
        );
        for bad in ["failure_threshold = 0", "cool_down_ms = 0", "cool_down = 5"] {
            assert!(toml::from_str::<BreakerConfig>(bad).is_err(), "{bad}");
        }
    }
}
