//! A caching [`Directory`] wrapper: every lookup is kept for a time-to-live, and when the register
//! behind it fails, the last good answer is served instead (however old), so a register outage
//! does not stop routing. Only when there is no earlier answer does the error come through.
//!
//! What it must NOT do: serve an answer it never got (an error with nothing cached is an error),
//! or show what it holds in `Debug` or logs (the GP lookups are keyed by identity number).
//! "Not found" answers are cached like any other. The number of entries per lookup is bounded:
//! when full, expired entries go first, then the oldest.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use super::{Directory, GpAssignment, KadUnit, Party, RegistryError};
use crate::clock::SharedClock;

/// Default bound on entries per lookup kind.
const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Counters of a [`Cached`] directory since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Answered from a fresh cache entry.
    pub hits: u64,
    /// Asked the register (it answered).
    pub misses: u64,
    /// The register failed and the last good answer was served.
    pub stale: u64,
    /// The register failed with nothing cached: the error went through.
    pub errors: u64,
}

struct Table<K, V> {
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> Table<K, V> {
    /// The map; a panic elsewhere while holding the lock leaves plain data behind, still usable.
    fn lock(&self) -> MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A [`Directory`] that caches another one for `ttl` and serves the last good answer when the
/// other one errors.
pub struct Cached<D> {
    inner: D,
    ttl: Duration,
    max_entries: usize,
    clock: SharedClock,
    units: Table<(), Vec<KadUnit>>,
    unit: Table<String, Option<KadUnit>>,
    by_municipality: Table<String, Option<KadUnit>>,
    party: Table<String, Option<Party>>,
    gp: Table<(String, NaiveDate), Option<GpAssignment>>,
    home_nursing: Table<String, Option<Party>>,
    postcode: Table<String, Option<String>>,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    errors: AtomicU64,
}

impl<D> std::fmt::Debug for Cached<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("ttl", &self.ttl)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<D> Cached<D> {
    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

impl<D: Directory> Cached<D> {
    /// Cache `inner` for `ttl`, reading the system's monotonic clock.
    pub fn new(inner: D, ttl: Duration) -> Cached<D> {
        Cached::with_clock(inner, ttl, crate::clock::system())
    }

    /// Cache `inner` for `ttl`, reading time ([`Clock::instant`](crate::clock::Clock::instant))
    /// from `clock`.
    pub fn with_clock(inner: D, ttl: Duration, clock: SharedClock) -> Cached<D> {
        Cached {
            inner,
            ttl,
            max_entries: DEFAULT_MAX_ENTRIES,
            clock,
            units: Table::default(),
            unit: Table::default(),
            by_municipality: Table::default(),
            party: Table::default(),
            gp: Table::default(),
            home_nursing: Table::default(),
            postcode: Table::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Keep at most `n` entries per lookup kind (at least 1).
    pub fn with_max_entries(mut self, n: usize) -> Cached<D> {
        self.max_entries = n.max(1);
        self
    }

    /// The wrapped directory.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The cached answer for `key`, else what `fetch` gets (made only when the register is asked).
    async fn get<K, V, F>(
        &self,
        table: &Table<K, V>,
        key: K,
        fetch: impl FnOnce() -> F,
    ) -> Result<V, RegistryError>
    where
        K: Hash + Eq,
        V: Clone,
        F: Future<Output = Result<V, RegistryError>>,
    {
        let now = self.clock.instant();
        let last = match table.lock().get(&key) {
            Some((at, v)) if now.saturating_duration_since(*at) < self.ttl => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(v.clone());
            }
            Some((_, v)) => Some(v.clone()),
            None => None,
        };
        match fetch().await {
            Ok(v) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let at = self.clock.instant();
                let mut map = table.lock();
                map.insert(key, (at, v.clone()));
                if map.len() > self.max_entries {
                    self.evict(&mut map, at);
                }
                Ok(v)
            }
            Err(e) => match last {
                Some(v) => {
                    self.stale.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "register lookup failed; serving the last good answer");
                    Ok(v)
                }
                None => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    Err(e)
                }
            },
        }
    }

    /// Bring a full table down to nine tenths of the bound: expired entries first, then the oldest.
    fn evict<K: Hash + Eq, V>(&self, map: &mut HashMap<K, (Instant, V)>, now: Instant) {
        map.retain(|_, (at, _)| now.saturating_duration_since(*at) < self.ttl);
        let target = self.max_entries - self.max_entries / 10;
        if map.len() > target {
            let mut ages: Vec<Instant> = map.values().map(|(at, _)| *at).collect();
            let drop = map.len() - target;
            let (_, cutoff, _) = ages.select_nth_unstable(drop - 1);
            let cutoff = *cutoff;
            let mut dropped = 0;
            map.retain(|_, (at, _)| {
                let keep = *at > cutoff || dropped >= drop;
                if !keep {
                    dropped += 1;
                }
                keep
            });
        }
    }
}

#[async_trait::async_trait]
impl<D: Directory> Directory for Cached<D> {
    async fn kad_units(&self) -> Result<Vec<KadUnit>, RegistryError> {
        self.get(&self.units, (), || self.inner.kad_units()).await
    }

    async fn kad_unit(&self, her_id: &str) -> Result<Option<KadUnit>, RegistryError> {
        let key = her_id.trim().to_string();
        self.get(&self.unit, key, || self.inner.kad_unit(her_id))
            .await
    }

    async fn unit_for_municipality(
        &self,
        kommunenr: &str,
    ) -> Result<Option<KadUnit>, RegistryError> {
        let key = kommunenr.trim().to_string();
        self.get(&self.by_municipality, key, || {
            self.inner.unit_for_municipality(kommunenr)
        })
        .await
    }

    async fn party(&self, her_id: &str) -> Result<Option<Party>, RegistryError> {
        let key = her_id.trim().to_string();
        self.get(&self.party, key, || self.inner.party(her_id))
            .await
    }

    async fn gp_for_patient(
        &self,
        nin: &str,
        on: NaiveDate,
    ) -> Result<Option<GpAssignment>, RegistryError> {
        let key = (nin.trim().to_string(), on);
        self.get(&self.gp, key, || self.inner.gp_for_patient(nin, on))
            .await
    }

    async fn home_nursing(&self, kommunenr: &str) -> Result<Option<Party>, RegistryError> {
        let key = kommunenr.trim().to_string();
        self.get(&self.home_nursing, key, || {
            self.inner.home_nursing(kommunenr)
        })
        .await
    }

    async fn municipality_for_postcode(
        &self,
        postcode: &str,
    ) -> Result<Option<String>, RegistryError> {
        let key = postcode.trim().to_string();
        self.get(&self.postcode, key, || {
            self.inner.municipality_for_postcode(postcode)
        })
        .await
    }
}
