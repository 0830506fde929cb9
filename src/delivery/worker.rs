//! The outbox worker: lease due rows, send each through its destination's transport, read the
//! answer, record the attempt.
//!
//! How a row moves: `pending` → (leased by one worker) → sent through the transport →
//! - answered in the same exchange with the recipient's receipt (an AppRec, a FHIR response) that
//!   names the row's message id → `acked` / `nacked`;
//! - accepted without a receipt → `sent` (the receipt comes later through the ingest path, which
//!   correlates it; none by the deadline → an alert);
//! - failed and worth retrying → `pending` again after a capped, jittered backoff, until the
//!   retry policy gives up → `dead` (a dead letter, with an alert);
//! - refused for good (a 4xx that will not change) → `dead` at once.
//!
//! The circuit breaker of a destination that keeps failing stops attempts for a while; rows for it
//! are deferred without counting an attempt. A worker that crashes mid-attempt loses nothing: its
//! leases run out and another worker (in this or another process) takes the rows again; since the
//! row keeps its message id, a recipient that did get the first copy sees a resend it recognises.
//!
//! Time: every "now" the worker uses — lease times, attempt times, `retry_at`, a row's age for the
//! dead-letter limit, the overdue-receipt check's interval and its deadline, the circuit breakers'
//! cool-downs — comes from one [`Clock`](crate::clock::Clock) handed to [`Worker::with_clock`]
//! (the system clock for [`Worker::new`]). Only sleeping is real time (the poll interval, the
//! shutdown grace), so with a manual clock a test can run an hour of outage in a second: a row due
//! at clock time T is leased at the first poll after the clock passes T. A lease (`lease_ms`) is
//! clock time while a request's timeout is real time: a manual clock must not be moved past a
//! lease while its attempt is in flight, or the row is handed out again.
//!
//! Invariants: the worker never changes a row it does not hold the lease of (the store checks);
//! it knows nothing of message formats except reading a receipt out of an answer; logs carry ids,
//! states and destinations, never bodies; it never reads the system time itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify, Semaphore};

use super::backoff::{Next, RetryPolicy};
use super::breaker::{BreakerConfig, Breakers};
use super::transport::{self, Outgoing, Response, Transport};
use crate::check::Rules;
use crate::clock::SharedClock;
use crate::model::Body;
use crate::store::{Ack, Attempt, OutboxRow, Store};

/// Worker settings (`[delivery]` in the config).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Run outbox workers in this process.
    pub enabled: bool,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long a leased row is ours; after that another worker may take it.
    pub lease_ms: u64,
    /// How often to look for due rows when nothing woke the worker.
    pub poll_ms: u64,
    /// How often to look for receipts past their deadline.
    pub overdue_check_ms: u64,
    #[serde(skip_serializing)]
    pub retry: RetryPolicy,
    #[serde(skip_serializing)]
    pub breaker: BreakerConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            enabled: true,
            concurrency: 64,
            lease_ms: 30_000,
            poll_ms: 200,
            overdue_check_ms: 5_000,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// Delivers outbox rows. One per process is enough; several (in several processes sharing a
/// PostgreSQL store) share the work through leases.
pub struct Worker {
    store: Arc<dyn Store>,
    rules: Arc<Rules>,
    config: DeliveryConfig,
    /// This worker's lease owner name.
    owner: String,
    breakers: Breakers,
    transports: Mutex<HashMap<String, Arc<dyn Transport>>>,
    /// HTTP clients of this worker (their connection pools live on its runtime).
    clients: transport::HttpClients,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    /// Where every "now" of this worker and its breakers comes from.
    clock: SharedClock,
}

impl Worker {
    /// A worker on the system clock.
    pub fn new(
        store: Arc<dyn Store>,
        rules: Arc<Rules>,
        config: DeliveryConfig,
        wake: Arc<Notify>,
    ) -> Arc<Worker> {
        Worker::with_clock(store, rules, config, wake, crate::clock::system())
    }

    /// A worker (and its circuit breakers) reading time from `clock`.
    pub fn with_clock(
        store: Arc<dyn Store>,
        rules: Arc<Rules>,
        config: DeliveryConfig,
        wake: Arc<Notify>,
        clock: SharedClock,
    ) -> Arc<Worker> {
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Arc::new(Worker {
            store,
            rules,
            breakers: Breakers::with_clock(config.breaker, clock.clone()),
            clock,
            owner: format!("worker-{}", uuid::Uuid::new_v4()),
            config,
            transports: Mutex::new(HashMap::new()),
            clients: transport::HttpClients::new(),
            wake,
            slots,
        })
    }

    /// The lease owner name of this worker.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The destinations' circuit breakers (for metrics and the dashboard).
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// Run until `stop` turns true; then wait (up to `grace`) for deliveries in flight.
    ///
    /// `poll` and `grace` are real time (sleeps); the overdue check runs whenever the clock has
    /// moved `overdue_check_ms` since the last one.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>, grace: Duration) {
        let poll = Duration::from_millis(self.config.poll_ms.max(10));
        let overdue_every = Duration::from_millis(self.config.overdue_check_ms.max(100));
        let mut last_overdue = self.clock.instant();
        tracing::info!(owner = self.owner.as_str(), "outbox worker started");
        loop {
            if *stop.borrow() {
                break;
            }
            let now = self.clock.instant();
            if now.saturating_duration_since(last_overdue) >= overdue_every {
                last_overdue = now;
                match self.store.raise_overdue(self.clock.now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(alerts = n, "receipts overdue"),
                    Err(e) => tracing::warn!(error = %e, "overdue check failed"),
                }
            }
            // Lease in batches: every lease is a write transaction (an fsync), so leasing one row
            // whenever one slot frees up would make the commit rate the delivery rate. Wait until
            // at least half the slots are free, then lease as many rows as there are free slots.
            let half = (self.config.concurrency.max(1) / 2).max(1) as u32;
            if self.slots.available_permits() < half as usize {
                if let Ok(p) = self.slots.clone().acquire_many_owned(half).await {
                    drop(p);
                }
                continue;
            }
            let free = self.slots.available_permits();
            let rows = match self
                .store
                .lease_outbox(
                    &self.owner,
                    self.clock.now_ms(),
                    self.config.lease_ms as i64,
                    free.min(256),
                )
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "leasing outbox rows failed");
                    Vec::new()
                }
            };
            if rows.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for row in rows {
                let Ok(permit) = self.slots.clone().acquire_owned().await else {
                    return;
                };
                let me = self.clone();
                tokio::spawn(async move {
                    me.deliver(row).await;
                    drop(permit);
                });
            }
        }
        // Let deliveries in flight finish and record their results.
        let all = self.config.concurrency.max(1) as u32;
        let _ = tokio::time::timeout(grace, self.slots.acquire_many(all)).await;
        tracing::info!(owner = self.owner.as_str(), "outbox worker stopped");
    }

    fn transport_for(&self, row: &OutboxRow) -> Result<Arc<dyn Transport>, String> {
        let json = row
            .endpoint_json
            .as_deref()
            .ok_or_else(|| "no endpoint".to_string())?;
        let mut cache = self.transports.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = cache.get(json) {
            return Ok(t.clone());
        }
        let endpoint: crate::registry::Endpoint =
            serde_json::from_str(json).map_err(|e| format!("endpoint settings: {e}"))?;
        let config = super::transport_config(&endpoint);
        let t: Arc<dyn Transport> =
            Arc::from(transport::build_with(&config, &self.clients).map_err(|e| e.detail)?);
        cache.insert(json.to_owned(), t.clone());
        Ok(t)
    }

    /// One attempt at one row, and its result recorded.
    async fn deliver(&self, row: OutboxRow) {
        let attempt = self.attempt(&row).await;
        let label = attempt_label(&attempt);
        match self
            .store
            .record_attempt(row.id, &self.owner, attempt)
            .await
        {
            Ok(true) => tracing::debug!(
                outbox_id = row.id,
                attempt = row.attempts + 1,
                destination = row.destination.as_str(),
                result = label,
                "delivery attempt recorded"
            ),
            Ok(false) => tracing::info!(
                outbox_id = row.id,
                "lease lost before the attempt was recorded; another worker has the row"
            ),
            Err(e) => tracing::warn!(outbox_id = row.id, error = %e, "recording attempt failed"),
        }
    }

    async fn attempt(&self, row: &OutboxRow) -> Attempt {
        let transport = match self.transport_for(row) {
            Ok(t) => t,
            Err(e) => {
                return Attempt::Dead {
                    error: e,
                    reason: "the recipient's endpoint settings are unusable".into(),
                }
            }
        };
        let dest = transport.destination().to_owned();
        if let Err(at) = self.breakers.allow(&dest) {
            let wait = at.0.saturating_duration_since(self.clock.instant());
            return Attempt::Deferred {
                retry_at_ms: self.after(wait),
            };
        }
        let out = Outgoing {
            key: row.out_msg_id.clone(),
            content_type: row.content_type.clone(),
            body: bytes::Bytes::from(row.body.clone()),
        };
        match transport.send(&out).await {
            Ok(resp) => {
                self.breakers.success(&dest);
                let at_ms = self.clock.now_ms();
                match self.receipt_in(&resp, &row.out_msg_id).await {
                    Some(ack) => Attempt::Answered { ack, at_ms },
                    None => Attempt::Delivered { at_ms },
                }
            }
            Err(e) => {
                // A refusal that carries the recipient's receipt is an answer, not a failure.
                if let Some(answer) = &e.answer {
                    if let Some(ack) = self.receipt_in(answer, &row.out_msg_id).await {
                        self.breakers.success(&dest);
                        return Attempt::Answered {
                            ack,
                            at_ms: self.clock.now_ms(),
                        };
                    }
                }
                if e.counts_against_destination() {
                    self.breakers.failure(&dest);
                }
                let error = e.to_string();
                if !e.retryable {
                    return Attempt::Dead {
                        error,
                        reason: "the recipient refused the message".into(),
                    };
                }
                let age = Duration::from_millis(
                    u64::try_from(self.clock.now_ms().saturating_sub(row.created_ms)).unwrap_or(0),
                );
                let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
                let next = self
                    .config
                    .retry
                    .next(attempts, age, &mut fastrand::Rng::new());
                match next {
                    Next::RetryAfter(d) => Attempt::Failed {
                        error,
                        retry_at_ms: self.after(d),
                    },
                    Next::DeadLetter(reason) => Attempt::Dead {
                        error,
                        reason: reason.to_string(),
                    },
                }
            }
        }
    }

    /// The clock's time `wait` from now, in milliseconds since the epoch, rounded up: a row put
    /// off for any wait at all is not due again until the clock has moved.
    fn after(&self, wait: Duration) -> i64 {
        let wait_ms = i64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX);
        self.clock.now_ms().saturating_add(wait_ms)
    }

    /// The recipient's receipt for `out_msg_id` in a synchronous answer, if there is one.
    async fn receipt_in(&self, resp: &Response, out_msg_id: &str) -> Option<Ack> {
        if resp.body.is_empty() {
            return None;
        }
        // A receipt is small (an AppRec, a FHIR response: a few KB) and reads in tens of
        // microseconds, less than handing it to a blocking thread and back costs; only a large
        // answer is read off the runtime threads.
        let decoded = if resp.body.len() <= INLINE_RECEIPT_BYTES {
            crate::convert::read_message(&resp.body, &self.rules).ok()?
        } else {
            let body = resp.body.clone();
            let rules = self.rules.clone();
            tokio::task::spawn_blocking(move || crate::convert::read_message(&body, &rules).ok())
                .await
                .ok()
                .flatten()?
        };
        let Body::Receipt(r) = decoded.0.body else {
            return None;
        };
        if r.original_msg_id.as_deref().map(str::trim) != Some(out_msg_id) {
            return None;
        }
        Some(Ack {
            status: r.status.word().to_owned(),
            codes: r.errors.iter().map(|c| c.code.clone()).collect(),
        })
    }
}

/// Answers up to this size are read for a receipt on the runtime thread itself.
const INLINE_RECEIPT_BYTES: usize = 16 * 1024;

fn attempt_label(a: &Attempt) -> &'static str {
    match a {
        Attempt::Answered { ack, .. } if ack.is_ok() => "acked",
        Attempt::Answered { .. } => "nacked",
        Attempt::Delivered { .. } => "sent",
        Attempt::Failed { .. } => "retry",
        Attempt::Dead { .. } => "dead",
        Attempt::Deferred { .. } => "deferred",
    }
}
