//! The outbox worker on simulated time: a real SQLite store, a real HTTP recipient on a loopback
//! port, and a manual clock that the test moves in 30-second steps while the worker keeps trying.
//!
//! - A recipient that is down for an hour gets its message exactly once when it comes back; the
//!   attempts in between are spaced by the retry policy and the circuit breaker (both read the
//!   same clock), far fewer than a loop retrying at every step would make, and the row is not
//!   given up while the policy's age limit is above the outage.
//! - With an age limit below the outage the row is given up exactly at that age, with a
//!   `delivery.dead` alert that names no patient data.
//! - A delivery answered without a receipt raises `delivery.no-receipt` once the clock passes the
//!   receipt deadline, not before.
//!
//! The clock moves in lockstep with the worker: after each step, a row that is due is waited for
//! (in real time, bounded) until the worker has handled it, so every attempt happens at the first
//! step at or after its due time, and a worker that stalls fails the test instead of skewing it.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use kadgate::check::Rules;
use kadgate::clock::{Clock, ManualClock};
use kadgate::config::Config;
use kadgate::delivery::worker::{DeliveryConfig, Worker};
use kadgate::delivery::{Backoff, BreakerConfig, RetryPolicy};
use kadgate::kith::apprec::{self, AppRecSpec, ReceiverRole};
use kadgate::model::{Format, Ident, Organisation, ReceiptStatus};
use kadgate::registry::Endpoint;
use kadgate::store::sqlite::{SqliteOptions, SqliteStore};
use kadgate::store::{Effects, OutboxFilter, OutboxRow, OutboxState, Store, StoredAlert};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

/// How far the clock moves per step.
const STEP: Duration = Duration::from_secs(30);
/// How long the recipient is down in the first case.
const OUTAGE: Duration = Duration::from_secs(3600);
/// Longest real time the worker may take to handle a row that is due.
const STALL: Duration = Duration::from_secs(5);

const UNIT_HER: &str = "990002";
const SENDER_HER: &str = "990010";
/// Synthetic patient data in the message body; none of it may reach an alert or an error.
const GIVEN: &str = "Testa";
const FAMILY: &str = "Klokkesen";
const CLINICAL: &str = "forverring av kronisk hjertesvikt";

/// A synthetic national identity number with valid check digits (born 1 January 1990).
fn person_number() -> String {
    (500..1000)
        .find_map(|n| kadgate::ident::complete_person_number(&format!("010190{n:03}")))
        .expect("some individual number has check digits")
}

// ---------------------------------------------------------------------------------------------
// The recipient: down (503) until a clock time, then it takes each body and answers with an
// AppRec naming the message, or with an empty 200.

#[derive(Debug, Clone, Copy)]
enum Answer {
    AppRecOk,
    Empty,
}

struct Recipient {
    clock: Arc<ManualClock>,
    /// Answers 503 while the clock is before this.
    down_until_ms: AtomicI64,
    answer: Answer,
    /// Clock time of every request.
    hits: Mutex<Vec<i64>>,
    /// Bodies taken, per message id (the Idempotency-Key).
    bodies: Mutex<HashMap<String, Vec<Vec<u8>>>>,
}

impl Recipient {
    fn hits(&self) -> Vec<i64> {
        self.hits.lock().unwrap().clone()
    }
    fn bodies(&self, key: &str) -> Vec<Vec<u8>> {
        self.bodies
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
}

async fn receive(State(r): State<Arc<Recipient>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = r.clock.now_ms();
    r.hits.lock().unwrap().push(now);
    if now < r.down_until_ms.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    r.bodies
        .lock()
        .unwrap()
        .entry(key.clone())
        .or_default()
        .push(body.to_vec());
    match r.answer {
        Answer::Empty => StatusCode::OK.into_response(),
        Answer::AppRecOk => (
            [("content-type", "application/xml; charset=utf-8")],
            receipt_for(&key, now),
        )
            .into_response(),
    }
}

fn org(her: &str) -> Organisation {
    Organisation {
        name: Some(format!("Party {her}")),
        idents: vec![Ident::new(her, "HER")],
        ..Default::default()
    }
}

/// The unit's AppRec "OK" for message `key`.
fn receipt_for(key: &str, now_ms: i64) -> String {
    let at = kadgate::clock::rfc3339_ms(now_ms);
    let id = uuid::Uuid::new_v4().to_string();
    apprec::encode(&AppRecSpec {
        version: Format::AppRec11,
        id: &id,
        gen_date: &at,
        from: &org(UNIT_HER),
        from_role: ReceiverRole::Primary,
        to: &org(SENDER_HER),
        status: ReceiptStatus::Ok,
        errors: &[],
        original_msg_type: "HENVISNING",
        original_msg_type_text: None,
        original_issue_date: &at,
        original_msg_id: key,
    })
}

// ---------------------------------------------------------------------------------------------
// The simulation: store, recipient, worker, clock.

struct Sim {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
    recipient: Arc<Recipient>,
    url: String,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    /// Longest real time the worker took to handle a due row.
    slowest: Duration,
}

fn policy(max_age: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1_000,
        max_age,
        backoff: Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(600),
            multiplier: 2.0,
        },
    }
}

const BREAKER: BreakerConfig = BreakerConfig {
    failure_threshold: 5,
    cool_down: Duration::from_secs(60),
};

impl Sim {
    async fn start(retry: RetryPolicy, answer: Answer, down_for: Duration) -> Sim {
        let dir = tempfile::tempdir().expect("temporary folder");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("k.db"), SqliteOptions::default())
                .expect("open store"),
        );
        let start = chrono::DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
            .expect("start time")
            .timestamp_millis();
        let clock = ManualClock::new(start);
        let recipient = Arc::new(Recipient {
            clock: clock.clone(),
            down_until_ms: AtomicI64::new(start + down_for.as_millis() as i64),
            answer,
            hits: Mutex::default(),
            bodies: Mutex::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/kad", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/kad", post(receive))
            .with_state(recipient.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let config = DeliveryConfig {
            enabled: true,
            concurrency: 4,
            // Simulated time: far longer than a step, so a lease never runs out mid-attempt.
            lease_ms: 600_000,
            poll_ms: 10,
            overdue_check_ms: 60_000,
            retry,
            breaker: BREAKER,
        };
        let wake = Arc::new(Notify::new());
        let rules = Arc::new(Rules::from_config(&Config::demo()));
        let worker = Worker::with_clock(store.clone(), rules, config, wake.clone(), clock.clone());
        let (stop, stop_rx) = watch::channel(false);
        let worker = tokio::spawn(worker.run(stop_rx, Duration::from_secs(2)));
        Sim {
            _dir: dir,
            clock,
            store,
            recipient,
            url,
            wake,
            stop,
            worker,
            slowest: Duration::ZERO,
        }
    }

    /// Store a referral with one outbox row to the recipient, created now; its row id, message
    /// id and body.
    async fn queue(&self, ack_within: Duration) -> (i64, String, Vec<u8>) {
        let out_msg_id = uuid::Uuid::new_v4().to_string();
        let body = format!(
            "<MsgHead><MsgId>{out_msg_id}</MsgId><Patient><GivenName>{GIVEN}</GivenName>\
             <FamilyName>{FAMILY}</FamilyName><Id>{}</Id></Patient><Reason>{CLINICAL}</Reason>\
             </MsgHead>",
            person_number()
        )
        .into_bytes();
        let endpoint = Endpoint::Http {
            url: self.url.clone(),
            client_cert: None,
            client_key: None,
            ca_cert: None,
            timeout_ms: Some(5_000),
        };
        let now = self.clock.now_ms();
        let row = kadgate::store::NewOutbox {
            destination: self.url.clone(),
            endpoint_json: Some(kadgate::delivery::endpoint_json(&endpoint).unwrap()),
            body: body.clone(),
            created_at: self.clock.now_rfc3339(),
            created_ms: now,
            ack_within_ms: ack_within.as_millis() as i64,
            ..common::store_cases::outbox(
                "referral",
                &format!("HER:{UNIT_HER}"),
                &out_msg_id,
                &out_msg_id,
            )
        };
        let msg = common::store_cases::referral(
            &out_msg_id,
            Effects {
                outbox: vec![row],
                ..Default::default()
            },
        );
        common::store_cases::stored_id(&self.store.ingest(msg).await.expect("ingest"));
        let rows = self
            .store
            .list_outbox(&OutboxFilter {
                out_msg_id: Some(out_msg_id.clone()),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("list outbox");
        assert_eq!(rows.len(), 1);
        self.wake.notify_one();
        (rows[0].id, out_msg_id, body)
    }

    async fn row(&self, id: i64) -> OutboxRow {
        self.store
            .get_outbox(id)
            .await
            .expect("read outbox")
            .expect("row exists")
    }

    async fn alerts(&self) -> Vec<StoredAlert> {
        self.store.alerts(false, 100).await.expect("alerts")
    }

    /// Wait until row `id` is not due at the clock's time (the worker has attempted, deferred or
    /// finished it); the row then.
    async fn settle(&mut self, id: i64) -> OutboxRow {
        let began = Instant::now();
        loop {
            let row = self.row(id).await;
            let now = self.clock.now_ms();
            if row.state != OutboxState::Pending || row.next_attempt_ms > now {
                self.slowest = self.slowest.max(began.elapsed());
                return row;
            }
            assert!(
                began.elapsed() < STALL,
                "the worker did not handle a row due at clock time {} within {STALL:?}",
                row.next_attempt_ms
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Move the clock one step and let the worker handle row `id` if it is due.
    async fn step(&mut self, id: i64) -> OutboxRow {
        self.clock.advance(STEP);
        let row = self.settle(id).await;
        // Give the loop a moment of real time between steps, as a running gateway would have.
        tokio::time::sleep(Duration::from_millis(2)).await;
        row
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(5), self.worker)
            .await
            .expect("the worker stops")
            .expect("the worker task ends cleanly");
        self.store.close().await.expect("close store");
    }
}

/// `d` rounded up to whole steps.
fn whole_steps(d: Duration) -> Duration {
    let n = d.as_millis().div_ceil(STEP.as_millis()) as u32;
    STEP * n.max(1)
}

/// The longest wait the policy and the breaker allow after the `n`th failed attempt, on a clock
/// that moves in steps: the backoff's ceiling, or the breaker's cool-down once it is open.
fn longest_gap(p: &RetryPolicy, n: u32) -> Duration {
    let breaker = if n >= BREAKER.failure_threshold {
        BREAKER.cool_down
    } else {
        Duration::ZERO
    };
    whole_steps(p.backoff.ceiling(n).max(breaker))
}

/// The shortest wait: one step, or the breaker's cool-down once it is open.
fn shortest_gap(n: u32) -> Duration {
    if n >= BREAKER.failure_threshold {
        whole_steps(BREAKER.cool_down)
    } else {
        STEP
    }
}

fn assert_no_patient_data(text: &str) {
    for secret in [GIVEN, FAMILY, CLINICAL, person_number().as_str()] {
        assert!(!text.contains(secret), "patient data in {text:?}");
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_down_for_an_hour_gets_its_message_exactly_once() {
    let retry = policy(Duration::from_secs(4 * 3600));
    let mut sim = Sim::start(retry, Answer::AppRecOk, OUTAGE).await;
    let t0 = sim.clock.now_ms();
    let (id, key, body) = sim.queue(Duration::from_secs(600)).await;

    // The first attempt, at the creation time; then nothing while the clock stands still,
    // however often the worker polls (it does every 10 ms of real time).
    let first = sim.settle(id).await;
    assert_eq!((first.state, first.attempts), (OutboxState::Pending, 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sim.recipient.hits(),
        vec![t0],
        "no attempt without the clock moving"
    );
    assert_eq!(sim.row(id).await.next_attempt_ms, first.next_attempt_ms);

    // An hour of outage.
    let up_at = t0 + OUTAGE.as_millis() as i64;
    while sim.clock.now_ms() + (STEP.as_millis() as i64) < up_at {
        let row = sim.step(id).await;
        assert_eq!(
            row.state,
            OutboxState::Pending,
            "not given up within the age limit"
        );
    }
    let during = sim.recipient.hits();
    // Back up: the next attempt delivers, and it comes no later than the longest wait after the
    // last failed one.
    let row = loop {
        let row = sim.step(id).await;
        if row.state != OutboxState::Pending {
            break row;
        }
        let last = *during.last().unwrap();
        let n = during.len() as u32;
        assert!(
            sim.clock.now_ms() - last <= longest_gap(&retry, n).as_millis() as i64,
            "no delivery within the longest wait after the outage"
        );
    };
    // Some time later: nothing more is sent.
    for _ in 0..40 {
        sim.step(id).await;
    }

    // Delivered exactly once, answered with the unit's receipt.
    assert_eq!(sim.recipient.bodies(&key), vec![body]);
    assert_eq!(row.state, OutboxState::Acked);
    assert_eq!(row.ack_status.as_deref(), Some("ok"));
    let hits = sim.recipient.hits();
    let delivered_at = *hits.last().unwrap();
    assert!(delivered_at >= up_at);
    assert_eq!(row.acked_ms, Some(delivered_at));
    assert_eq!(
        row.attempts as usize,
        hits.len(),
        "every request an attempt"
    );

    // Spaced by the policy: one attempt per step at most, and each wait within the backoff's
    // ceiling (or the breaker's cool-down once it is open) rounded up to whole steps.
    for (i, pair) in hits.windows(2).enumerate() {
        let n = i as u32 + 1;
        let gap = Duration::from_millis((pair[1] - pair[0]) as u64);
        assert!(
            gap >= shortest_gap(n) && gap <= longest_gap(&retry, n),
            "wait after attempt {n}: {gap:?} not in [{:?}, {:?}]",
            shortest_gap(n),
            longest_gap(&retry, n)
        );
    }
    // How many attempts the outage took. At least as many as the longest waits allow (a
    // deterministic bound); at most 36: retrying at every step would make 120, the breaker alone
    // would allow about 62, and the backoff brings it to about 19 on average (15 to 30 in 300,000
    // simulated runs of this policy).
    let mut fewest = 1;
    let mut at = Duration::ZERO;
    loop {
        at += longest_gap(&retry, fewest);
        if at >= OUTAGE {
            break;
        }
        fewest += 1;
    }
    let failed = during.len() as u32;
    assert!(
        (fewest..=36).contains(&failed),
        "{failed} attempts during the outage, expected {fewest} to 36"
    );
    assert!(
        during.iter().all(|&t| t < up_at),
        "the outage's attempts all failed"
    );

    // Never given up, no alert.
    assert!(sim.alerts().await.is_empty(), "{:?}", sim.alerts().await);
    assert!(
        sim.slowest < Duration::from_secs(2),
        "the worker took {:?} to pick up a due row",
        sim.slowest
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_older_than_the_age_limit_goes_dead_with_an_alert() {
    let max_age = Duration::from_secs(1800);
    let mut sim = Sim::start(policy(max_age), Answer::AppRecOk, 2 * OUTAGE).await;
    let t0 = sim.clock.now_ms();
    let (id, key, _) = sim.queue(Duration::from_secs(600)).await;
    sim.settle(id).await;
    let mut row = sim.row(id).await;
    let mut steps = 0;
    while row.state == OutboxState::Pending {
        steps += 1;
        assert!(steps <= 120, "still pending after an hour");
        row = sim.step(id).await;
    }
    let hits = sim.recipient.hits();
    // The last wait is cut short so that the last attempt comes at the age limit — or, when the
    // attempt before it opened the breaker less than a cool-down before the limit, at the end of
    // that cool-down (both fall on the step grid here).
    assert_eq!(row.state, OutboxState::Dead);
    let [.., before_last, last] = hits[..] else {
        panic!("more than one attempt: {hits:?}")
    };
    let expected =
        (t0 + max_age.as_millis() as i64).max(before_last + BREAKER.cool_down.as_millis() as i64);
    assert_eq!(last, expected, "attempts at {hits:?}");
    assert_eq!(row.attempts as usize, hits.len());
    let reason = row.dead_reason.clone().unwrap_or_default();
    assert!(reason.contains("1800 s"), "{reason}");

    let alerts = sim.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.kind, "delivery.dead");
    assert_eq!(a.outbox_id, Some(id));
    assert_eq!(
        a.unit_key.as_deref(),
        Some(format!("HER:{UNIT_HER}").as_str())
    );
    assert!(a.cleared_at.is_none());
    assert!(a.reason.contains("1800 s"), "{}", a.reason);
    assert_no_patient_data(&a.reason);
    assert_no_patient_data(row.last_error.as_deref().unwrap_or(""));

    // Dead means left alone: no more attempts, even once the recipient is back.
    sim.recipient.down_until_ms.store(0, Ordering::SeqCst);
    for _ in 0..40 {
        sim.clock.advance(STEP);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sim.recipient.hits(), hits);
    assert!(sim.recipient.bodies(&key).is_empty());
    assert_eq!(sim.row(id).await.state, OutboxState::Dead);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_without_a_receipt_alerts_once_its_deadline_passes() {
    let ack_within = Duration::from_secs(600);
    let mut sim = Sim::start(
        policy(Duration::from_secs(4 * 3600)),
        Answer::Empty,
        Duration::ZERO,
    )
    .await;
    let t0 = sim.clock.now_ms();
    let (id, key, body) = sim.queue(ack_within).await;
    let row = sim.settle(id).await;
    assert_eq!(row.state, OutboxState::Sent);
    assert_eq!(row.sent_ms, Some(t0));
    let deadline = t0 + ack_within.as_millis() as i64;
    assert_eq!(row.ack_deadline_ms, Some(deadline));

    // Up to a step before the deadline: the worker checks every simulated minute, no alert.
    while sim.clock.now_ms() + (STEP.as_millis() as i64) < deadline {
        sim.clock.advance(STEP);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sim.alerts().await.is_empty(), "{:?}", sim.alerts().await);

    // Past the deadline by a check interval: the next poll raises the alert.
    sim.clock.advance(STEP + Duration::from_secs(60));
    let began = Instant::now();
    let alerts = loop {
        let alerts = sim.alerts().await;
        if !alerts.is_empty() {
            break alerts;
        }
        assert!(began.elapsed() < STALL, "no overdue alert");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.kind, "delivery.no-receipt");
    assert_eq!(a.outbox_id, Some(id));
    assert!(a.reason.contains("600 s"), "{}", a.reason);
    assert_no_patient_data(&a.reason);

    // Raised once, delivered once, still waiting for the receipt.
    for _ in 0..10 {
        sim.clock.advance(Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert_eq!(sim.alerts().await.len(), 1);
    assert_eq!(sim.recipient.bodies(&key), vec![body]);
    assert_eq!(sim.recipient.hits().len(), 1);
    assert_eq!(sim.row(id).await.state, OutboxState::Sent);
    sim.stop().await;
}
