//! When to try a failed delivery again, and when to stop.
//!
//! [`Backoff`] is capped exponential backoff with full jitter: after the `n`th failed attempt the
//! ceiling is `min(cap, base × multiplier^(n−1))` and the wait is drawn uniformly from
//! `[0, ceiling]`, so rows that failed together (a unit's system was down) do not all come back
//! at the same instant. The random draw comes from an injected [`Random`] source, so tests are
//! deterministic. [`RetryPolicy`] adds the limits: after `max_attempts` attempts, or once the
//! first attempt is `max_age` old, the row goes to the dead letters.
//!
//! Configuration (TOML/serde), every field optional, durations in the unit their name says:
//! `max_attempts`, `max_age_secs` (seconds), `base_ms`, `cap_ms` (milliseconds), `multiplier`.
//! Unknown fields are refused.
//!
//! What this module must NOT do: sleep, read the clock, or know what failed. It is arithmetic on
//! the numbers the worker gives it.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A source of uniformly distributed 64-bit numbers. Implemented for [`fastrand::Rng`] (seed it
/// for reproducible runs); tests may supply fixed values.
pub trait Random {
    fn next_u64(&mut self) -> u64;
}

impl Random for fastrand::Rng {
    fn next_u64(&mut self) -> u64 {
        self.u64(..)
    }
}

/// Capped exponential backoff with full jitter. Build it from config (checked) or as a literal;
/// a literal with odd values is still safe: a multiplier below 1 or not finite counts as 1, and
/// the cap always wins.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "BackoffConfig")]
pub struct Backoff {
    /// Ceiling after the first failed attempt.
    pub base: Duration,
    /// Largest ceiling.
    pub cap: Duration,
    /// Growth of the ceiling per further attempt.
    pub multiplier: f64,
}

impl Default for Backoff {
    /// 1 s, doubling, capped at 60 s: a unit's system that is down is tried about once every
    /// half minute on average once the cap is reached.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            multiplier: 2.0,
        }
    }
}

impl Backoff {
    /// The largest wait after `attempt` failed attempts (`attempt` 0 counts as 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let m = if self.multiplier.is_finite() {
            self.multiplier.max(1.0)
        } else {
            1.0
        };
        // Past 2^63 ns (292 years) every finite cap is exceeded; bound the exponent so powi stays
        // cheap and finite-or-infinite, never NaN.
        let exp = attempt.saturating_sub(1).min(4096) as i32;
        let secs = self.base.as_secs_f64() * m.powi(exp);
        if secs.is_finite() && secs < self.cap.as_secs_f64() {
            Duration::from_secs_f64(secs).min(self.cap)
        } else {
            self.cap
        }
    }

    /// The wait after `attempt` failed attempts: uniform in `[0, ceiling(attempt)]`, to the
    /// nanosecond.
    pub fn delay<R: Random + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        self.delay_from(attempt, rng.next_u64())
    }

    /// [`Backoff::delay`] for a given draw: `draw` 0 gives zero, `u64::MAX` the ceiling, and
    /// the mapping is monotone in between (multiply-shift, no rejection loop).
    pub fn delay_from(&self, attempt: u32, draw: u64) -> Duration {
        let ceiling = self.ceiling(attempt).as_nanos().min(u64::MAX as u128 - 1);
        let nanos = (draw as u128 * (ceiling + 1)) >> 64;
        Duration::from_nanos(nanos as u64)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackoffConfig {
    #[serde(default = "default_base_ms")]
    base_ms: u64,
    #[serde(default = "default_cap_ms")]
    cap_ms: u64,
    #[serde(default = "default_multiplier")]
    multiplier: f64,
}

fn default_base_ms() -> u64 {
    Backoff::default().base.as_millis() as u64
}
fn default_cap_ms() -> u64 {
    Backoff::default().cap.as_millis() as u64
}
fn default_multiplier() -> f64 {
    Backoff::default().multiplier
}

impl TryFrom<BackoffConfig> for Backoff {
    type Error = String;
    fn try_from(c: BackoffConfig) -> Result<Self, String> {
        if c.base_ms == 0 {
            return Err("base_ms must be at least 1".into());
        }
        if c.cap_ms < c.base_ms {
            return Err(format!(
                "cap_ms ({}) must not be below base_ms ({})",
                c.cap_ms, c.base_ms
            ));
        }
        if !(c.multiplier.is_finite() && (1.0..=100.0).contains(&c.multiplier)) {
            return Err(format!(
                "multiplier must be between 1 and 100, not {}",
                c.multiplier
            ));
        }
        Ok(Backoff {
            base: Duration::from_millis(c.base_ms),
            cap: Duration::from_millis(c.cap_ms),
            multiplier: c.multiplier,
        })
    }
}

/// What to do with a row whose attempt just failed (with a retryable failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after this long.
    RetryAfter(Duration),
    /// Stop: the row becomes a dead letter.
    DeadLetter(DeadReason),
}

/// Why a row was given up on. `Display` is an English sentence for logs and the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// `attempts` attempts made, the policy allows `max`.
    Attempts { attempts: u32, max: u32 },
    /// The first attempt is `age` old, the policy allows `max`.
    Age { age: Duration, max: Duration },
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadReason::Attempts { attempts, max } => {
                write!(f, "gave up after {attempts} attempts (limit {max})")
            }
            DeadReason::Age { age, max } => write!(
                f,
                "gave up {} s after the first attempt (limit {} s)",
                age.as_secs(),
                max.as_secs()
            ),
        }
    }
}

/// Retry limits plus the backoff between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RetryPolicyConfig")]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1.
    pub max_attempts: u32,
    /// Longest time from the first attempt to the last one.
    pub max_age: Duration,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    /// 250 attempts or 4 hours, whichever comes first; with the default backoff that is about
    /// two hours of a destination being down before its rows become dead letters.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 250,
            max_age: Duration::from_secs(4 * 3600),
            backoff: Backoff::default(),
        }
    }
}

impl RetryPolicy {
    /// After `attempts` attempts (the one that just failed included), the first of which was
    /// `first_attempt_age` ago: retry after a jittered wait, or give up. The wait never reaches
    /// past `max_age`, so the last attempt happens at the deadline instead of being skipped.
    pub fn next<R: Random + ?Sized>(
        &self,
        attempts: u32,
        first_attempt_age: Duration,
        rng: &mut R,
    ) -> Next {
        if attempts >= self.max_attempts {
            return Next::DeadLetter(DeadReason::Attempts {
                attempts,
                max: self.max_attempts,
            });
        }
        let Some(left) = self
            .max_age
            .checked_sub(first_attempt_age)
            .filter(|d| !d.is_zero())
        else {
            return Next::DeadLetter(DeadReason::Age {
                age: first_attempt_age,
                max: self.max_age,
            });
        };
        Next::RetryAfter(self.backoff.delay(attempts, rng).min(left))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryPolicyConfig {
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_max_age_secs")]
    max_age_secs: u64,
    #[serde(default = "default_base_ms")]
    base_ms: u64,
    #[serde(default = "default_cap_ms")]
    cap_ms: u64,
    #[serde(default = "default_multiplier")]
    multiplier: f64,
}

fn default_max_attempts() -> u32 {
    RetryPolicy::default().max_attempts
}
fn default_max_age_secs() -> u64 {
    RetryPolicy::default().max_age.as_secs()
}

impl TryFrom<RetryPolicyConfig> for RetryPolicy {
    type Error = String;
    fn try_from(c: RetryPolicyConfig) -> Result<Self, String> {
        if c.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if c.max_age_secs == 0 {
            return Err("max_age_secs must be at least 1".into());
        }
        let backoff = Backoff::try_from(BackoffConfig {
            base_ms: c.base_ms,
            cap_ms: c.cap_ms,
            multiplier: c.multiplier,
        })?;
        Ok(RetryPolicy {
            max_attempts: c.max_attempts,
            max_age: Duration::from_secs(c.max_age_secs),
            backoff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out the given draws in turn, then repeats the last.
    struct Draws(Vec<u64>);
    impl Random for Draws {
        fn next_u64(&mut self) -> u64 {
            if self.0.len() > 1 {
                self.0.remove(0)
            } else {
                self.0.first().copied().unwrap_or(0)
            }
        }
    }

    fn b(base_ms: u64, cap_ms: u64, multiplier: f64) -> Backoff {
        Backoff {
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(cap_ms),
            multiplier,
        }
    }

    #[test]
    fn ceiling_grows_then_caps() {
        let b = b(100, 1_000, 2.0);
        let ms: Vec<u128> = (0..8).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(ms, [100, 100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn odd_literals_stay_bounded() {
        for m in [f64::NAN, f64::INFINITY, -3.0, 0.5] {
            let x = b(100, 1_000, m);
            for a in [0, 1, 2, 50, u32::MAX] {
                assert!(x.ceiling(a) <= Duration::from_secs(1), "{m} {a}");
            }
        }
        // Cap below base: the cap wins.
        assert_eq!(b(500, 100, 2.0).ceiling(1), Duration::from_millis(100));
        // A huge multiplier does not overflow.
        assert_eq!(b(1, 10_000, 1e300).ceiling(3), Duration::from_secs(10));
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        let b = b(100, 1_000, 2.0);
        assert_eq!(b.delay_from(3, 0), Duration::ZERO);
        assert_eq!(b.delay_from(3, u64::MAX), Duration::from_millis(400));
        let mid = b.delay_from(3, u64::MAX / 2);
        assert!(
            mid >= Duration::from_millis(199) && mid <= Duration::from_millis(201),
            "{mid:?}"
        );
        let mut fixed = Draws(vec![0, u64::MAX]);
        assert_eq!(b.delay(10, &mut fixed), Duration::ZERO);
        assert_eq!(b.delay(10, &mut fixed), Duration::from_secs(1));
    }

    #[test]
    fn seeded_draws_are_reproducible_in_range_and_spread() {
        let b = b(100, 2_000, 2.0);
        let run = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..2000)
                .map(|i| b.delay(1 + i % 8, &mut rng))
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        for (i, d) in a.iter().enumerate() {
            assert!(*d <= b.ceiling(1 + i as u32 % 8), "{i} {d:?}");
        }
        // At the cap (attempts ≥ 6 here): draws cover the low and the high tenth of the range.
        let capped: Vec<_> = a
            .iter()
            .enumerate()
            .filter(|(i, _)| 1 + *i as u32 % 8 >= 6)
            .map(|(_, d)| d.as_millis())
            .collect();
        assert!(capped.iter().any(|&m| m < 200) && capped.iter().any(|&m| m > 1800));
        let mean = capped.iter().sum::<u128>() as f64 / capped.len() as f64;
        assert!((850.0..1150.0).contains(&mean), "{mean}");
    }

    /// A policy and a source that always draws the ceiling.
    fn policy(max_attempts: u32, max_age_secs: u64, backoff: Backoff) -> (RetryPolicy, Draws) {
        let p = RetryPolicy {
            max_attempts,
            max_age: Duration::from_secs(max_age_secs),
            backoff,
        };
        (p, Draws(vec![u64::MAX]))
    }

    #[test]
    fn policy_retries_then_dead_letters_on_attempts() {
        let (p, mut max) = policy(3, 3600, b(100, 1_000, 2.0));
        assert_eq!(
            p.next(1, Duration::ZERO, &mut max),
            Next::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(
            p.next(2, Duration::from_secs(1), &mut max),
            Next::RetryAfter(Duration::from_millis(200))
        );
        let dead = p.next(3, Duration::from_secs(2), &mut max);
        assert_eq!(
            dead,
            Next::DeadLetter(DeadReason::Attempts {
                attempts: 3,
                max: 3
            })
        );
        if let Next::DeadLetter(r) = dead {
            assert_eq!(r.to_string(), "gave up after 3 attempts (limit 3)");
        }
    }

    #[test]
    fn policy_dead_letters_on_age_and_never_waits_past_it() {
        let (p, mut max) = policy(1000, 10, b(1_000, 60_000, 2.0));
        // Ceiling after 10 attempts is 60 s, but only 500 ms of the age budget are left.
        assert_eq!(
            p.next(10, Duration::from_millis(9_500), &mut max),
            Next::RetryAfter(Duration::from_millis(500))
        );
        for age in [Duration::from_secs(10), Duration::from_secs(11)] {
            assert_eq!(
                p.next(2, age, &mut max),
                Next::DeadLetter(DeadReason::Age {
                    age,
                    max: Duration::from_secs(10)
                })
            );
        }
    }

    #[test]
    fn config_in_ms_and_seconds_checked() {
        let p: RetryPolicy = toml::from_str(
            "max_attempts = 5\nmax_age_secs = 600\nbase_ms = 250\ncap_ms = 30000\nmultiplier = 3.0",
        )
        .unwrap();
        assert_eq!(p, policy(5, 600, b(250, 30_000, 3.0)).0);
        let d: RetryPolicy = toml::from_str("").unwrap();
        assert_eq!(d, RetryPolicy::default());
        let only: Backoff = toml::from_str("cap_ms = 5000").unwrap();
        assert_eq!(only, b(1_000, 5_000, 2.0));
        for (bad, why) in [
            ("max_age = 5", "unknown field"),
            ("max_attempts = 0", "max_attempts"),
            ("max_age_secs = 0", "max_age_secs"),
            ("base_ms = 0", "base_ms"),
            ("base_ms = 500\ncap_ms = 100", "cap_ms"),
            ("multiplier = 0.5", "multiplier"),
            ("multiplier = nan", "multiplier"),
        ] {
            let e = toml::from_str::<RetryPolicy>(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(toml::from_str::<Backoff>("max_attempts = 3").is_err());
    }
}
