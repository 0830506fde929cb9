//! The store contract as test cases, run against every `Store` implementation (SQLite in
//! `tests/store_outbox.rs`, PostgreSQL in `tests/store_postgres.rs`), so both are held to the same
//! cases: ingest and round trip, deduplication (also under concurrency), listing and counts,
//! errors without row data, durability and close; decisions, routes, the outbox with leases and
//! per-key order, receipts correlated in the ingest transaction, overdue receipts, dead letters,
//! retries and capacity reports; stays, the stay tracker's work queue and the audit log
//! (`store_cases/stays.rs`).
//!
//! Each case takes a [`Backend`], which opens the store under test — the same storage each time,
//! so a case can drop or close a store and open it again.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

mod stays;

// Named by `all_store_cases!` as `common::store_cases::<case>`; unused in tests without it.
#[allow(unused_imports)]
pub use stays::*;

use kadgate::store::{
    Ack, Attempt, CapacityReport, DecisionSource, Direction, Effects, IngestOutcome, ListFilter,
    NewAck, NewDecision, NewMessage, NewOutbox, NewReceipt, NewRoute, OutboxFilter, OutboxState,
    Store, StoreError, StoredReceipt,
};

/// Opens the store under test; every call opens the same storage again.
pub trait Backend: Send + Sync {
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>>;
    /// Run one SQL statement on the same storage past the store (for what the store must not
    /// allow, such as changing the audit log): the rows it touched, or the database's own message.
    fn execute_raw<'a>(
        &'a self,
        sql: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>>;
}

/// Run the named cases as `#[tokio::test]`s, each with a fresh backend from `$backend().await`.
#[macro_export]
macro_rules! store_cases {
    ($backend:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $backend().await;
                common::store_cases::$case(&backend).await;
            }
        )*
    };
}

/// Every case, for `store_cases!`.
#[macro_export]
macro_rules! all_store_cases {
    ($backend:path) => {
        $crate::store_cases!($backend;
            ingest_get_round_trip,
            large_blobs_round_trip,
            list_counts_and_find_sent,
            duplicate_returns_first_copy,
            concurrent_duplicates,
            failing_job_rolls_back_alone,
            errors_carry_no_row_data,
            nul_in_text_fields,
            durable_without_close,
            closed_store_refuses,
            close_finishes_queued_jobs,
            effects_are_stored_with_the_message_and_never_twice,
            leases_order_and_lost_leases,
            receipts_are_correlated_and_overdue_ones_alert,
            dead_letters_alert,
            capacity_and_counts,
            stays_open_with_their_referral_and_link_by_keys,
            stay_work_is_leased_held_released_and_finished,
            stay_writes_are_versioned_and_atomic,
            the_audit_log_is_append_only,
            nul_in_stay_fields,
            concurrent_stay_writes_and_leases,
        );
    };
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn receipt(n: u32, key: &str) -> NewReceipt {
    NewReceipt {
        receiver_key: format!("HER:{}", 1000 + n),
        receipt_id: format!("apprec-{key}-{n}"),
        status: if n % 2 == 0 {
            "ok".into()
        } else {
            "rejected".into()
        },
        content_type: "application/xml".into(),
        body: format!("<AppRec n=\"{n}\" key=\"{key}\"/>").into_bytes(),
    }
}

/// A message with three receipts; `key` is its dedup key (None = cannot dedup).
/// A message with three receipts, dedup key `key` (None: cannot be deduplicated).
pub fn message(key: Option<&str>) -> NewMessage {
    let tag = key.unwrap_or("nokey");
    NewMessage {
        received_at: "2025-01-02T03:04:05Z".into(),
        channel: "http".into(),
        direction: Direction::In,
        format: Some("henvisning-11".into()),
        msg_type: Some("HENVISNING".into()),
        msg_id: Some(format!("msg-{tag}")),
        sender_key: Some("HER:56704".into()),
        dedup_key: key.map(str::to_owned),
        status: "accepted".into(),
        raw: format!("<MsgHead>{tag}</MsgHead>").into_bytes(),
        header_json: Some(format!("{{\"msg_id\":\"msg-{tag}\"}}")),
        body_json: Some("{\"patient\":\"x\"}".into()),
        findings_json: "[]".into(),
        correlates_to: None,
        receipts: vec![receipt(0, tag), receipt(1, tag), receipt(2, tag)],
        reply_json: None,
        content_sha256: None,
        effects: Default::default(),
    }
}

/// A referral without receipts, stored with `effects`.
pub fn referral(key: &str, effects: Effects) -> NewMessage {
    NewMessage {
        received_at: "2026-01-01T00:00:00Z".into(),
        format: Some("henvisning-20".into()),
        msg_id: Some(key.into()),
        sender_key: Some("HER:990010".into()),
        dedup_key: Some(format!("HER:990010/{key}")),
        raw: key.as_bytes().to_vec(),
        header_json: None,
        body_json: None,
        receipts: vec![],
        effects,
        ..message(None)
    }
}

pub fn outbox(purpose: &str, recipient: &str, order_key: &str, out_msg_id: &str) -> NewOutbox {
    NewOutbox {
        purpose: purpose.into(),
        recipient_key: recipient.into(),
        recipient_name: Some("Unit".into()),
        order_key: order_key.into(),
        destination: "http://127.0.0.1:1/unit".into(),
        endpoint_json: Some("{}".into()),
        format: "henvisning-20".into(),
        content_type: "application/xml".into(),
        body: b"<MsgHead/>".to_vec(),
        out_msg_id: out_msg_id.into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        created_ms: 1_000,
        ack_within_ms: 60_000,
        dead_reason: None,
    }
}

fn decision(kind: &str, source: DecisionSource) -> NewDecision {
    NewDecision {
        decided_at: "2026-01-01T00:00:00Z".into(),
        decision: kind.into(),
        source,
        decided_by: None,
        note: None,
        ruleset_id: Some("national-default".into()),
        ruleset_version: Some("1".into()),
        news2: Some(3),
        rules: vec!["r1".into()],
        reasons_no: vec!["grunn".into()],
        reasons_en: vec!["reason".into()],
    }
}

fn route(unit: &str) -> NewRoute {
    NewRoute {
        routed_at: "2026-01-01T00:00:00Z".into(),
        code: "route.catchment".into(),
        unit_key: Some(unit.into()),
        unit_name: Some("Unit".into()),
        municipality: Some("9901".into()),
        municipality_source: Some("address".into()),
        full: false,
        diverted_from: None,
        reason_en: "serves 9901".into(),
        reason_no: "dekker 9901".into(),
        holds_bed: true,
    }
}

fn stored(r: &NewReceipt) -> StoredReceipt {
    StoredReceipt {
        receiver_key: r.receiver_key.clone(),
        receipt_id: r.receipt_id.clone(),
        status: r.status.clone(),
        content_type: r.content_type.clone(),
        body: r.body.clone(),
    }
}

pub fn stored_id(outcome: &IngestOutcome) -> i64 {
    match outcome {
        IngestOutcome::Stored { id } => *id,
        other => panic!("expected Stored, got {other:?}"),
    }
}

async fn store_new(store: &dyn Store, msg: NewMessage) -> i64 {
    stored_id(&store.ingest(msg).await.unwrap())
}

fn all(limit: i64) -> ListFilter {
    ListFilter {
        limit,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

pub async fn ingest_get_round_trip(backend: &dyn Backend) {
    let store = backend.open().await;
    store.ping().await.unwrap();

    let mut msg = message(Some("HER:56704/abc"));
    msg.raw = vec![0, 1, 2, 255, 254, b'<', 0];
    msg.reply_json = Some("{\"status\":\"accepted\"}".into());
    msg.findings_json = "[{\"code\":\"W001\"}]".into();
    let id = store_new(&*store, msg.clone()).await;

    let got = store.get(id).await.unwrap().expect("stored message");
    let s = &got.summary;
    assert_eq!(s.id, id);
    assert_eq!(s.received_at, msg.received_at);
    assert_eq!(s.channel, msg.channel);
    assert_eq!(s.direction, Direction::In);
    assert_eq!(s.format, msg.format);
    assert_eq!(s.msg_type, msg.msg_type);
    assert_eq!(s.msg_id, msg.msg_id);
    assert_eq!(s.sender_key, msg.sender_key);
    assert_eq!(s.status, msg.status);
    assert_eq!(s.correlates_to, None);
    assert_eq!(s.receipt_count, 3);
    assert_eq!(s.duplicate_count, 0);
    assert_eq!(
        got.raw, msg.raw,
        "raw bytes exactly, NUL and high bytes too"
    );
    assert_eq!(got.header_json, msg.header_json);
    assert_eq!(got.body_json, msg.body_json);
    assert_eq!(got.findings_json, msg.findings_json);
    assert_eq!(got.reply_json, msg.reply_json);
    let want: Vec<StoredReceipt> = msg.receipts.iter().map(stored).collect();
    assert_eq!(got.receipts, want, "receipts in order");

    // All-None optional fields and no receipts round-trip too.
    let bare = NewMessage {
        format: None,
        msg_type: None,
        msg_id: None,
        sender_key: None,
        dedup_key: None,
        header_json: None,
        body_json: None,
        receipts: vec![],
        reply_json: Some("{\"status\":\"not-addressed\"}".into()),
        status: "not-addressed".into(),
        ..message(None)
    };
    let bare_id = store_new(&*store, bare.clone()).await;
    let got = store.get(bare_id).await.unwrap().unwrap();
    assert_eq!(got.summary.receipt_count, 0);
    assert!(got.receipts.is_empty());
    assert_eq!(got.summary.format, None);
    assert_eq!(got.header_json, None);
    assert_eq!(got.reply_json, bare.reply_json);

    assert!(store.get(999_999).await.unwrap().is_none());
    store.close().await.unwrap();
}

/// Messages and outbox bodies of real size come back byte for byte, whatever the store does to
/// keep them (the SQLite store compresses what compresses, PostgreSQL's TOAST likewise): a
/// 10 KB FHIR referral, a body that does not compress, and one just under and over the size from
/// which a store may compress.
pub async fn large_blobs_round_trip(backend: &dyn Backend) {
    let store = backend.open().await;
    let referral_json = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/load/fhir-referral-10k.json"
    ))
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(11);
    let noise: Vec<u8> = (0..20_000).map(|_| rng.u8(..)).collect();
    let bodies = [
        referral_json.clone(),
        noise.clone(),
        vec![b'a'; 511],
        vec![b'a'; 513],
    ];
    let effects = Effects {
        outbox: bodies
            .iter()
            .enumerate()
            .map(|(i, body)| NewOutbox {
                body: body.clone(),
                ..outbox(
                    "referral",
                    &format!("HER:{i}"),
                    &format!("k{i}"),
                    &format!("big-{i}"),
                )
            })
            .collect(),
        ..Effects::default()
    };
    let mut msg = referral("big", effects);
    msg.raw = referral_json.clone();
    let id = store_new(&*store, msg).await;
    assert_eq!(store.get(id).await.unwrap().unwrap().raw, referral_json);
    let mut noisy = message(Some("noise"));
    noisy.raw = noise;
    let noisy_id = store_new(&*store, noisy.clone()).await;
    assert_eq!(store.get(noisy_id).await.unwrap().unwrap().raw, noisy.raw);

    let mut leased = store.lease_outbox("w", 2_000, 60_000, 10).await.unwrap();
    leased.sort_by(|a, b| a.out_msg_id.cmp(&b.out_msg_id));
    assert_eq!(leased.len(), bodies.len());
    for (i, row) in leased.iter().enumerate() {
        assert_eq!(row.out_msg_id, format!("big-{i}"));
        assert_eq!(row.body, bodies[i], "body {i} as given");
    }
    store.close().await.unwrap();
}

pub async fn list_counts_and_find_sent(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let mut m = message(Some(&format!("k{i}")));
        m.status = if i % 3 == 0 {
            "rejected".into()
        } else {
            "accepted".into()
        };
        ids.push(store_new(&*store, m).await);
    }
    let mut out = message(None);
    out.direction = Direction::Out;
    out.msg_id = Some("sent-1".into());
    out.status = "sent".into();
    let out_id = store_new(&*store, out).await;

    // An incoming receipt correlated to what we sent.
    let mut rec = message(Some("receipt-of-sent-1"));
    rec.status = "receipt".into();
    rec.correlates_to = Some(store.find_sent("sent-1").await.unwrap().expect("found"));
    let rec_id = store_new(&*store, rec).await;
    let got = store.get(rec_id).await.unwrap().unwrap();
    assert_eq!(got.summary.correlates_to, Some(out_id));

    assert_eq!(store.find_sent("sent-1").await.unwrap(), Some(out_id));
    assert_eq!(
        store.find_sent("msg-k1").await.unwrap(),
        None,
        "incoming messages are not 'sent'"
    );
    assert_eq!(store.find_sent("nope").await.unwrap(), None);

    // Newest first, all.
    let everything = store.list(&all(100)).await.unwrap();
    assert_eq!(everything.len(), 12);
    assert!(
        everything.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
    assert_eq!(everything[0].id, rec_id);
    // Limit 0 means the default limit, not "nothing".
    assert_eq!(store.list(&ListFilter::default()).await.unwrap().len(), 12);

    // Keyset pagination.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(&ListFilter {
                limit: 5,
                before_id: before,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        seen.extend(page.into_iter().map(|s| s.id));
    }
    assert_eq!(seen, everything.iter().map(|s| s.id).collect::<Vec<_>>());

    // Filters.
    let rejected = store
        .list(&ListFilter {
            status: Some("rejected".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rejected.len(), 4);
    assert!(rejected.iter().all(|s| s.status == "rejected"));
    let outs = store
        .list(&ListFilter {
            direction: Some(Direction::Out),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(outs.iter().map(|s| s.id).collect::<Vec<_>>(), vec![out_id]);
    let combo = store
        .list(&ListFilter {
            status: Some("accepted".into()),
            direction: Some(Direction::In),
            before_id: Some(ids[5]),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(
        combo.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![ids[4], ids[2], ids[1]]
    );

    let counts = store.counts().await.unwrap();
    let names: Vec<&str> = counts.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        vec!["accepted", "receipt", "rejected", "sent"],
        "by status"
    );
    let counts: HashMap<String, i64> = counts.into_iter().collect();
    assert_eq!(counts.get("accepted"), Some(&6));
    assert_eq!(counts.get("rejected"), Some(&4));
    assert_eq!(counts.get("sent"), Some(&1));
    assert_eq!(counts.get("receipt"), Some(&1));
    store.close().await.unwrap();
}

pub async fn duplicate_returns_first_copy(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut first = message(Some("HER:56704/dup"));
    first.reply_json = Some("{\"first\":true}".into());
    let id = store_new(&*store, first.clone()).await;

    // The resend differs in everything but the key: the first copy's answer wins.
    let mut second = message(Some("HER:56704/dup"));
    second.status = "rejected".into();
    second.receipts = vec![receipt(7, "other")];
    second.raw = b"different".to_vec();
    let want: Vec<StoredReceipt> = first.receipts.iter().map(stored).collect();
    match store.ingest(second).await.unwrap() {
        IngestOutcome::Duplicate {
            id: dup_id,
            status,
            receipts,
            reply_json,
            content_sha256,
        } => {
            assert_eq!(dup_id, id);
            assert_eq!(status, "accepted");
            assert_eq!(
                content_sha256.as_deref(),
                Some(kadgate::store::content_sha256(&first.raw).as_str()),
                "the first copy's hash, not the resend's"
            );
            assert_eq!(receipts, want, "identical receipt bytes");
            assert_eq!(reply_json, first.reply_json);
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    match store.find_duplicate("HER:56704/dup").await.unwrap() {
        Some(IngestOutcome::Duplicate {
            id: dup_id,
            receipts,
            ..
        }) => {
            assert_eq!(dup_id, id);
            assert_eq!(receipts, want);
        }
        other => panic!("expected Some(Duplicate), got {other:?}"),
    }
    assert_eq!(store.find_duplicate("unknown").await.unwrap(), None);

    let listed = store.list(&ListFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1, "a duplicate is never a new row");
    assert_eq!(
        listed[0].duplicate_count, 1,
        "find_duplicate does not count"
    );

    // Messages without a dedup key are never duplicates of each other.
    store.ingest(message(None)).await.unwrap();
    store.ingest(message(None)).await.unwrap();
    assert_eq!(store.list(&ListFilter::default()).await.unwrap().len(), 3);
    store.close().await.unwrap();
}

pub async fn concurrent_duplicates(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut tasks = Vec::new();
    for round in 0..4 {
        for k in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("key-{k}");
                let mut m = message(Some(&key));
                // Every copy carries different receipts; only the first one's may come back.
                m.receipts = vec![receipt(round, &key)];
                (key, store.ingest(m).await.unwrap())
            }));
        }
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let rows = store.list(&all(1000)).await.unwrap();
    assert_eq!(rows.len(), 50, "exactly one row per key");
    assert!(rows.iter().all(|s| s.duplicate_count == 3));

    let mut stored_count: HashMap<String, usize> = HashMap::new();
    for (key, outcome) in &outcomes {
        match outcome {
            IngestOutcome::Stored { .. } => *stored_count.entry(key.clone()).or_default() += 1,
            IngestOutcome::Duplicate { id, receipts, .. } => {
                let row = store.get(*id).await.unwrap().unwrap();
                assert_eq!(
                    &row.receipts, receipts,
                    "duplicate answered with the stored receipts"
                );
                assert_eq!(
                    row.summary.msg_id.as_deref(),
                    Some(format!("msg-{key}").as_str())
                );
            }
        }
    }
    assert_eq!(stored_count.len(), 50);
    assert!(stored_count.values().all(|&n| n == 1));
    store.close().await.unwrap();
}

pub async fn failing_job_rolls_back_alone(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut m = message(Some(&format!("fk-{i}")));
            if i % 8 == 3 {
                // Foreign key violation: correlates to a row that does not exist.
                m.correlates_to = Some(9_999_999);
                m.raw = b"PATIENT-SECRET-12345678901".to_vec();
            }
            (i, store.ingest(m).await)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (i, result) = t.await.unwrap();
        if i % 8 == 3 {
            match result {
                Err(StoreError::Database(text)) => {
                    assert!(!text.contains("PATIENT-SECRET"), "row data in: {text}");
                    assert!(!text.contains("fk-"), "row data in: {text}");
                    assert!(!text.contains("9999999"), "row data in: {text}");
                }
                other => panic!("expected a database error, got {other:?}"),
            }
        } else {
            stored_id(&result.unwrap());
            ok += 1;
        }
    }
    assert_eq!(ok, 56);
    assert_eq!(store.list(&all(1000)).await.unwrap().len(), 56);
    // The failed keys were rolled back entirely: they can be stored now.
    store_new(&*store, message(Some("fk-3"))).await;
    store.close().await.unwrap();
}

/// A constraint violation names the constraint, never the values (which may be patient data).
pub async fn errors_carry_no_row_data(backend: &dyn Backend) {
    let store = backend.open().await;
    let twice = Effects {
        outbox: vec![
            outbox("referral", "HER:1", "k1", "SECRET-OUT-ID-4711"),
            outbox("business-reply", "HER:2", "k2", "SECRET-OUT-ID-4711"),
        ],
        ..Effects::default()
    };
    match store.ingest(referral("SECRET-MSG-0815", twice)).await {
        Err(StoreError::Database(text)) => {
            assert!(!text.contains("SECRET"), "row data in: {text}");
            assert!(!text.contains("4711"), "row data in: {text}");
        }
        other => panic!("expected a database error, got {other:?}"),
    }
    let mut bad = message(Some("SECRET-KEY-1"));
    bad.effects.decision = Some(decision("SECRET-DECISION", DecisionSource::Rules));
    match store.ingest(bad).await {
        Err(StoreError::Database(text)) => {
            assert!(!text.contains("SECRET"), "row data in: {text}");
        }
        other => panic!("expected a database error, got {other:?}"),
    }
    assert!(
        store.list(&all(10)).await.unwrap().is_empty(),
        "nothing of a failed ingest is kept"
    );
    store.close().await.unwrap();
}

/// A message whose ids carry U+0000 (valid in JSON strings) is stored and deduplicated.
pub async fn nul_in_text_fields(backend: &dyn Backend) {
    let store = backend.open().await;
    let key = "HER:56704/a\0b";
    let mut m = message(Some(key));
    m.msg_id = Some("a\0b".into());
    let id = store_new(&*store, m.clone()).await;
    match store.ingest(m).await.unwrap() {
        IngestOutcome::Duplicate { id: dup, .. } => assert_eq!(dup, id),
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert!(matches!(
        store.find_duplicate(key).await.unwrap(),
        Some(IngestOutcome::Duplicate { id: dup, .. }) if dup == id
    ));
    assert_eq!(store.find_duplicate("HER:56704/a").await.unwrap(), None);
    // An override's free-text note, from the API's JSON, may carry one too.
    let mut over = decision("needs-review", DecisionSource::Override);
    over.note = Some("see\0note".into());
    let effects = Effects {
        decision: Some(over),
        ..Effects::default()
    };
    store.record_effects(id, effects).await.unwrap();
    assert_eq!(store.decisions(id).await.unwrap().len(), 1);
    store.close().await.unwrap();
}

pub async fn durable_without_close(backend: &dyn Backend) {
    let id = {
        let store = backend.open().await;
        let id = store_new(&*store, message(Some("durable"))).await;
        drop(store); // no close
        id
    };
    let store = backend.open().await;
    let got = store
        .get(id)
        .await
        .unwrap()
        .expect("committed data survives a drop");
    assert_eq!(got.summary.msg_id.as_deref(), Some("msg-durable"));
    assert_eq!(got.receipts.len(), 3);
    store.close().await.unwrap();

    // Close, then reopen: still there, and the schema is not re-created.
    let store = backend.open().await;
    assert!(store.get(id).await.unwrap().is_some());
    assert!(matches!(
        store.ingest(message(Some("durable"))).await.unwrap(),
        IngestOutcome::Duplicate { .. }
    ));
    store.close().await.unwrap();
}

pub async fn closed_store_refuses(backend: &dyn Backend) {
    let store = backend.open().await;
    store.ingest(message(Some("a"))).await.unwrap();
    store.close().await.unwrap();
    assert!(matches!(
        store.ingest(message(Some("b"))).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.get(1).await, Err(StoreError::Closed)));
    assert!(matches!(
        store.list(&ListFilter::default()).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        store.find_duplicate("a").await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        store.find_sent("a").await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.counts().await, Err(StoreError::Closed)));
    assert!(matches!(
        store.lease_outbox("w", 0, 1, 1).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.ping().await, Err(StoreError::Closed)));
    store.close().await.unwrap(); // idempotent
}

pub async fn close_finishes_queued_jobs(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.ingest(message(Some(&format!("q{i}")))).await
        }));
    }
    tokio::task::yield_now().await;
    store.close().await.unwrap();
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(IngestOutcome::Stored { .. }) => stored += 1,
            Err(StoreError::Closed) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Every job that was accepted was committed and answered.
    drop(store);
    let store = backend.open().await;
    assert_eq!(store.list(&all(1000)).await.unwrap().len(), stored);
    store.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Decisions, routes, outbox, alerts

pub async fn effects_are_stored_with_the_message_and_never_twice(backend: &dyn Backend) {
    let store = backend.open().await;
    let effects = Effects {
        decision: Some(decision("accepted", DecisionSource::Rules)),
        route: Some(route("HER:990002")),
        outbox: vec![
            outbox("referral", "HER:990002", "HER:990002/a", "out-1"),
            outbox("business-reply", "HER:990010", "HER:990010/a", "out-2"),
        ],
        ..Effects::default()
    };
    let id = store_new(&*store, referral("a", effects.clone())).await;
    // A resend is a duplicate: nothing is recorded again.
    assert!(matches!(
        store.ingest(referral("a", effects.clone())).await.unwrap(),
        IngestOutcome::Duplicate { .. }
    ));
    let rows = store
        .list_outbox(&OutboxFilter {
            message_id: Some(id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.state == OutboxState::Pending));
    assert_eq!(rows[0].out_msg_id, "out-2", "newest first");
    assert_eq!(rows[1].body, effects.outbox[0].body);
    assert_eq!(rows[1].next_attempt_ms, 1_000, "due when created");
    let decisions = store.decisions(id).await.unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(
        decisions[0].decision,
        effects.decision.clone().unwrap(),
        "the decision round-trips"
    );
    let routes = store.routes(id).await.unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].route, effects.route.clone().unwrap());
    assert_eq!(
        store.beds_held().await.unwrap(),
        vec![("HER:990002".to_string(), 1)]
    );

    // An override to not-accepted frees the bed and is kept after the first decision.
    store
        .record_effects(
            id,
            Effects {
                decision: Some(decision("not-accepted", DecisionSource::Override)),
                ..Effects::default()
            },
        )
        .await
        .unwrap();
    let ds = store.decisions(id).await.unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[1].decision.source, DecisionSource::Override);
    assert!(store.beds_held().await.unwrap().is_empty());
    store.close().await.unwrap();
}

pub async fn leases_order_and_lost_leases(backend: &dyn Backend) {
    let store = backend.open().await;
    let effects = Effects {
        outbox: vec![
            outbox("referral", "HER:1", "k1", "o1"),
            outbox("business-reply", "HER:2", "k2", "o2"),
        ],
        ..Effects::default()
    };
    let id = store_new(&*store, referral("m1", effects)).await;
    // A second row with order key k1 (a later message to the same recipient).
    store_new(
        &*store,
        referral(
            "m2",
            Effects {
                outbox: vec![outbox("referral", "HER:1", "k1", "o3")],
                ..Effects::default()
            },
        ),
    )
    .await;

    // Only the first pending row of k1 is due, plus k2's.
    let a = store.lease_outbox("w-a", 10_000, 5_000, 10).await.unwrap();
    let ids: Vec<&str> = a.iter().map(|r| r.out_msg_id.as_str()).collect();
    assert_eq!(ids, vec!["o1", "o2"]);
    assert!(a.iter().all(|r| r.message_id == id));
    // Leased rows are not handed out again while the lease lives.
    assert!(store
        .lease_outbox("w-b", 11_000, 5_000, 10)
        .await
        .unwrap()
        .is_empty());

    // w-a crashes; after the lease runs out w-b takes both rows.
    let b = store.lease_outbox("w-b", 15_001, 5_000, 10).await.unwrap();
    assert_eq!(b.len(), 2);
    assert!(store
        .record_attempt(b[1].id, "w-b", Attempt::Delivered { at_ms: 15_100 })
        .await
        .unwrap());
    let sent = store.get_outbox(b[1].id).await.unwrap().unwrap();
    assert_eq!(sent.state, OutboxState::Sent);
    assert_eq!(sent.ack_deadline_ms, Some(75_100));
    // w-a's late result is ignored, w-b's counts.
    assert!(!store
        .record_attempt(b[0].id, "w-a", Attempt::Delivered { at_ms: 15_100 })
        .await
        .unwrap());
    assert!(store
        .record_attempt(
            b[0].id,
            "w-b",
            Attempt::Failed {
                error: "connect".into(),
                retry_at_ms: 20_000
            }
        )
        .await
        .unwrap());
    // o1 failed and waits until 20 000; o3 stays behind it (order).
    assert!(store
        .lease_outbox("w-b", 19_999, 5_000, 10)
        .await
        .unwrap()
        .is_empty());
    let c = store.lease_outbox("w-b", 20_000, 5_000, 10).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].out_msg_id, "o1");
    assert_eq!(c[0].attempts, 1);
    assert_eq!(c[0].last_error.as_deref(), Some("connect"));
    // Deferred (circuit open): not counted as an attempt, due again later.
    assert!(store
        .record_attempt(
            c[0].id,
            "w-b",
            Attempt::Deferred {
                retry_at_ms: 20_005
            }
        )
        .await
        .unwrap());
    let c = store.lease_outbox("w-b", 20_005, 5_000, 10).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].attempts, 1);
    assert!(store
        .record_attempt(c[0].id, "w-b", Attempt::Delivered { at_ms: 20_010 })
        .await
        .unwrap());
    // Now o3 is due.
    let d = store.lease_outbox("w-b", 20_020, 5_000, 10).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].out_msg_id, "o3");
    // A lease limit is honoured.
    assert!(store
        .lease_outbox("w-c", 90_000, 5_000, 0)
        .await
        .unwrap()
        .is_empty());
    store.close().await.unwrap();
}

pub async fn receipts_are_correlated_and_overdue_ones_alert(backend: &dyn Backend) {
    let store = backend.open().await;
    store_new(
        &*store,
        referral(
            "m",
            Effects {
                outbox: vec![
                    outbox("referral", "HER:1", "k1", "o1"),
                    outbox("referral", "HER:2", "k2", "o2"),
                ],
                ..Effects::default()
            },
        ),
    )
    .await;
    let rows = store.lease_outbox("w", 2_000, 5_000, 10).await.unwrap();
    for r in &rows {
        store
            .record_attempt(r.id, "w", Attempt::Delivered { at_ms: 2_000 })
            .await
            .unwrap();
    }
    // A negative AppRec for o1 arrives as a message of its own.
    let mut apprec = referral(
        "apprec-1",
        Effects {
            ack: Some(NewAck {
                out_msg_id: "o1".into(),
                ack: Ack {
                    status: "rejected".into(),
                    codes: vec!["E21".into()],
                },
                at_ms: 3_000,
            }),
            ..Effects::default()
        },
    );
    apprec.status = "receipt".into();
    let apprec_id = store_new(&*store, apprec).await;
    let o1 = store.get_outbox(rows[0].id).await.unwrap().unwrap();
    assert_eq!(o1.state, OutboxState::Nacked);
    assert_eq!(o1.ack_codes, vec!["E21"]);
    assert_eq!(o1.ack_message_id, Some(apprec_id));
    assert_eq!(o1.acked_ms, Some(3_000));

    // o2 never gets one: past the deadline (60 s) an alert, raised once.
    assert_eq!(store.raise_overdue(61_999).await.unwrap(), 0);
    assert_eq!(store.raise_overdue(62_000).await.unwrap(), 1);
    assert_eq!(store.raise_overdue(70_000).await.unwrap(), 0);
    let alerts = store.alerts(true, 0).await.unwrap();
    let kinds: Vec<&str> = alerts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, vec!["delivery.no-receipt", "delivery.nacked"]);
    assert_eq!(
        alerts[0].reason,
        "no receipt from HER:2 for the referral within 60 s of delivery"
    );
    assert_eq!(alerts[0].outbox_id, Some(rows[1].id));
    assert!(alerts[1].reason.contains("E21"));

    // A late OK receipt for o2 clears its alert.
    let late = referral(
        "apprec-2",
        Effects {
            ack: Some(NewAck {
                out_msg_id: "o2".into(),
                ack: Ack {
                    status: "ok".into(),
                    codes: vec![],
                },
                at_ms: 80_000,
            }),
            ..Effects::default()
        },
    );
    store_new(&*store, late).await;
    let open: Vec<String> = store
        .alerts(true, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(open, vec!["delivery.nacked"]);
    let every = store.alerts(false, 0).await.unwrap();
    assert_eq!(every.len(), 2, "cleared alerts are kept");
    assert!(every.iter().any(|a| a.cleared_at.is_some()));

    // An operator retries the rejected row: pending again, its alert cleared.
    assert!(store.retry_outbox(rows[0].id, 90_000).await.unwrap());
    assert!(
        !store.retry_outbox(rows[1].id, 90_000).await.unwrap(),
        "acked rows stay"
    );
    assert!(store.alerts(true, 0).await.unwrap().is_empty());
    let retried = store.get_outbox(rows[0].id).await.unwrap().unwrap();
    assert_eq!(retried.state, OutboxState::Pending);
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.next_attempt_ms, 90_000);
    store.close().await.unwrap();
}

pub async fn dead_letters_alert(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut undeliverable = outbox("business-reply", "HER:3", "k3", "o3");
    undeliverable.dead_reason = Some("no endpoint known".into());
    store_new(
        &*store,
        referral(
            "m",
            Effects {
                outbox: vec![outbox("referral", "HER:1", "k1", "o1"), undeliverable],
                ..Effects::default()
            },
        ),
    )
    .await;
    let rows = store.lease_outbox("w", 2_000, 5_000, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "a dead row is never leased");
    store
        .record_attempt(
            rows[0].id,
            "w",
            Attempt::Dead {
                error: "HTTP 400".into(),
                reason: "refused".into(),
            },
        )
        .await
        .unwrap();
    let dead = store
        .list_outbox(&OutboxFilter {
            state: Some(OutboxState::Dead),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 2);
    let alerts = store.alerts(true, 0).await.unwrap();
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a.kind == "delivery.dead"));
    assert!(alerts
        .iter()
        .any(|a| a.reason.contains("no endpoint known")));
    // An answered attempt with a negative receipt, after a retry.
    assert!(store.retry_outbox(rows[0].id, 3_000).await.unwrap());
    let again = store.lease_outbox("w", 3_000, 5_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    let nack = Ack {
        status: "rejected".into(),
        codes: vec![],
    };
    assert!(store
        .record_attempt(
            again[0].id,
            "w",
            Attempt::Answered {
                ack: nack,
                at_ms: 3_100
            }
        )
        .await
        .unwrap());
    let row = store.get_outbox(again[0].id).await.unwrap().unwrap();
    assert_eq!(row.state, OutboxState::Nacked);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.sent_ms, Some(3_100));
    let open = store.alerts(true, 0).await.unwrap();
    assert_eq!(open[0].kind, "delivery.nacked");
    assert!(open[0].reason.contains("no error code"));
    store.close().await.unwrap();
}

pub async fn capacity_and_counts(backend: &dyn Backend) {
    let store = backend.open().await;
    let report = |unit: &str, beds: i64, ms: i64| CapacityReport {
        unit_key: unit.into(),
        free_beds: beds,
        reported_at: "2026-01-01T00:00:00Z".into(),
        reported_ms: ms,
    };
    store.report_capacity(report("HER:2", 4, 1)).await.unwrap();
    store.report_capacity(report("HER:1", 2, 1)).await.unwrap();
    store.report_capacity(report("HER:2", 3, 2)).await.unwrap();
    assert_eq!(
        store.capacity_reports().await.unwrap(),
        vec![report("HER:1", 2, 1), report("HER:2", 3, 2)],
        "one report per unit, the latest, by unit"
    );

    let mut dead = outbox("business-reply", "HER:3", "k3", "o3");
    dead.dead_reason = Some("no endpoint known".into());
    store_new(
        &*store,
        referral(
            "m",
            Effects {
                outbox: vec![
                    outbox("referral", "HER:1", "k1", "o1"),
                    outbox("referral", "HER:2", "k2", "o2"),
                    dead,
                ],
                ..Effects::default()
            },
        ),
    )
    .await;
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        vec![("dead".to_string(), 1), ("pending".to_string(), 2)]
    );
    store.close().await.unwrap();
}
