//! Integration tests of the SQLite store against a real database file in a temporary directory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use kadgate::store::sqlite::{SqliteOptions, SqliteStore};
use kadgate::store::{
    Direction, IngestOutcome, ListFilter, NewMessage, NewReceipt, Store, StoreError, StoredReceipt,
};

fn db_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    // A nested path: open must create the parent directories.
    dir.path().join("nested/dir/kadgate.db")
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&db_path(dir), SqliteOptions::default()).expect("open store")
}

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

fn message(key: Option<&str>) -> NewMessage {
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

fn stored(r: &NewReceipt) -> StoredReceipt {
    StoredReceipt {
        receiver_key: r.receiver_key.clone(),
        receipt_id: r.receipt_id.clone(),
        status: r.status.clone(),
        content_type: r.content_type.clone(),
        body: r.body.clone(),
    }
}

fn stored_id(outcome: &IngestOutcome) -> i64 {
    match outcome {
        IngestOutcome::Stored { id } => *id,
        other => panic!("expected Stored, got {other:?}"),
    }
}

#[tokio::test]
async fn ingest_get_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.ping().await.unwrap();

    let mut msg = message(Some("HER:56704/abc"));
    msg.raw = vec![0, 1, 2, 255, 254, b'<', 0];
    msg.reply_json = Some("{\"status\":\"accepted\"}".into());
    msg.findings_json = "[{\"code\":\"W001\"}]".into();
    let id = stored_id(&store.ingest(msg.clone()).await.unwrap());

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
    assert_eq!(got.raw, msg.raw);
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
    let bare_id = stored_id(&store.ingest(bare.clone()).await.unwrap());
    let got = store.get(bare_id).await.unwrap().unwrap();
    assert_eq!(got.summary.receipt_count, 0);
    assert!(got.receipts.is_empty());
    assert_eq!(got.summary.format, None);
    assert_eq!(got.header_json, None);
    assert_eq!(got.reply_json, bare.reply_json);

    assert!(store.get(999_999).await.unwrap().is_none());
    store.close().await.unwrap();
}

#[tokio::test]
async fn list_counts_and_find_sent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    let mut ids = Vec::new();
    for i in 0..10 {
        let mut m = message(Some(&format!("k{i}")));
        m.status = if i % 3 == 0 {
            "rejected".into()
        } else {
            "accepted".into()
        };
        ids.push(stored_id(&store.ingest(m).await.unwrap()));
    }
    let mut out = message(None);
    out.direction = Direction::Out;
    out.msg_id = Some("sent-1".into());
    out.status = "sent".into();
    let out_id = stored_id(&store.ingest(out).await.unwrap());

    // An incoming receipt correlated to what we sent.
    let mut rec = message(Some("receipt-of-sent-1"));
    rec.status = "receipt".into();
    rec.correlates_to = Some(store.find_sent("sent-1").await.unwrap().expect("found"));
    let rec_id = stored_id(&store.ingest(rec).await.unwrap());
    assert_eq!(
        store
            .get(rec_id)
            .await
            .unwrap()
            .unwrap()
            .summary
            .correlates_to,
        Some(out_id)
    );

    assert_eq!(store.find_sent("sent-1").await.unwrap(), Some(out_id));
    assert_eq!(
        store.find_sent("msg-k1").await.unwrap(),
        None,
        "incoming messages are not 'sent'"
    );
    assert_eq!(store.find_sent("nope").await.unwrap(), None);

    // Newest first, all.
    let all = store
        .list(&ListFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 12);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[0].id, rec_id);

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
        if page.is_empty() {
            break;
        }
        before = Some(page.last().unwrap().id);
        seen.extend(page.into_iter().map(|s| s.id));
    }
    assert_eq!(seen, all.iter().map(|s| s.id).collect::<Vec<_>>());

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

    let counts: HashMap<String, i64> = store.counts().await.unwrap().into_iter().collect();
    assert_eq!(counts.get("accepted"), Some(&6));
    assert_eq!(counts.get("rejected"), Some(&4));
    assert_eq!(counts.get("sent"), Some(&1));
    assert_eq!(counts.get("receipt"), Some(&1));
    assert_eq!(counts.len(), 4);
    store.close().await.unwrap();
}

#[tokio::test]
async fn duplicate_returns_first_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut first = message(Some("HER:56704/dup"));
    first.reply_json = Some("{\"first\":true}".into());
    let id = stored_id(&store.ingest(first.clone()).await.unwrap());

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

    let all = store.list(&ListFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1, "a duplicate is never a new row");
    assert_eq!(all[0].duplicate_count, 1, "find_duplicate does not count");

    // Messages without a dedup key are never duplicates of each other.
    store.ingest(message(None)).await.unwrap();
    store.ingest(message(None)).await.unwrap();
    assert_eq!(store.list(&ListFilter::default()).await.unwrap().len(), 3);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
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
    let all = store
        .list(&ListFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 50, "exactly one row per key");
    assert_eq!(all.iter().map(|s| s.duplicate_count).sum::<i64>(), 150);
    assert!(all.iter().all(|s| s.duplicate_count == 3));

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_job_rolls_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
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
                    assert!(
                        !text.contains("PATIENT-SECRET"),
                        "no row data in errors: {text}"
                    );
                    assert!(!text.contains("fk-"), "no row data in errors: {text}");
                }
                other => panic!("expected a database error, got {other:?}"),
            }
        } else {
            stored_id(&result.unwrap());
            ok += 1;
        }
    }
    assert_eq!(ok, 56);
    assert_eq!(
        store
            .list(&ListFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        56
    );
    // The failed keys were rolled back entirely: they can be stored now.
    stored_id(&store.ingest(message(Some("fk-3"))).await.unwrap());
    store.close().await.unwrap();
}

#[tokio::test]
async fn durable_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = open(&dir);
        let id = stored_id(&store.ingest(message(Some("durable"))).await.unwrap());
        drop(store); // no close
        id
    };
    let store = open(&dir);
    let got = store
        .get(id)
        .await
        .unwrap()
        .expect("committed data survives a drop");
    assert_eq!(got.summary.msg_id.as_deref(), Some("msg-durable"));
    assert_eq!(got.receipts.len(), 3);
    store.close().await.unwrap();

    // Close, then reopen: still there, and the schema is not re-created.
    let store = open(&dir);
    assert!(store.get(id).await.unwrap().is_some());
    assert!(matches!(
        store.ingest(message(Some("durable"))).await.unwrap(),
        IngestOutcome::Duplicate { .. }
    ));
    store.close().await.unwrap();
}

#[tokio::test]
async fn closed_store_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
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
    assert!(matches!(store.ping().await, Err(StoreError::Closed)));
    store.close().await.unwrap(); // idempotent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_finishes_queued_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
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
    let store = open(&dir);
    let rows = store
        .list(&ListFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    assert_eq!(rows, stored);
    store.close().await.unwrap();
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(&dir).close().await.unwrap();
    let conn = rusqlite::Connection::open(db_path(&dir)).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'x')",
        [],
    )
    .unwrap();
    drop(conn);
    match SqliteStore::open(&db_path(&dir), SqliteOptions::default()) {
        Err(StoreError::Database(text)) => assert!(text.contains("newer"), "{text}"),
        other => panic!("expected a schema version error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches() {
    const N: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let raw = vec![b'x'; 10 * 1024];
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        let store = store.clone();
        let mut m = message(Some(&format!("gc-{i}")));
        m.raw = raw.clone();
        tasks.push(tokio::spawn(async move { store.ingest(m).await }));
    }
    for t in tasks {
        stored_id(&t.await.unwrap().unwrap());
    }
    let elapsed = started.elapsed();
    let stats = store.stats();
    println!(
        "group commit: {N} ingests of 10 KB in {:.3}s = {:.0} rows/s; {} commits, largest batch {}",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64(),
        stats.commits,
        stats.largest_batch
    );
    assert_eq!(stats.jobs, N as u64);
    assert_eq!(stats.failed_batches, 0);
    assert_eq!(store.commit_count(), stats.commits);
    assert!(
        stats.commits < (N as u64) / 4,
        "{} commits for {N} ingests: not batching",
        stats.commits
    );
    let counts: HashMap<String, i64> = store.counts().await.unwrap().into_iter().collect();
    assert_eq!(counts.get("accepted"), Some(&(N as i64)));
    store.close().await.unwrap();
}
