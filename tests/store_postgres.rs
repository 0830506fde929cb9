//! The PostgreSQL store against a real server (`tests/common/pg.rs`: a throwaway cluster, or
//! `KADGATE_PG_URL`): every store contract case of `tests/common/store_cases.rs`, then what only a
//! shared database has — two stores (two kadgate instances) leasing from one outbox and ingesting
//! the same dedup key at once, migrations started together, a newer schema refused, and group
//! commit measured (WAL flushes per commit, ingest rate).

mod common;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::{self, PgDb};
use common::store_cases::{outbox, referral, stored_id, Backend};
use kadgate::store::postgres::{PgOptions, PgStore};
use kadgate::store::{
    Attempt, Effects, IngestOutcome, ListFilter, NewAudit, NewMessage, NewOutbox, OutboxFilter,
    OutboxRow, Store, StoreError,
};

impl Backend for PgDb {
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move { Arc::new(connect(self).await) as Arc<dyn Store> })
    }

    fn execute_raw<'a>(
        &'a self,
        sql: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
        Box::pin(async move {
            self.client()
                .await
                .execute(sql, &[])
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) => db.message().to_owned(),
                    None => e.to_string(),
                })
        })
    }
}

async fn connect(db: &PgDb) -> PgStore {
    PgStore::connect(&db.url, PgOptions::default())
        .await
        .expect("connect to the test database")
}

all_store_cases!(pg::database);

/// A referral from HER:990010 with these outbox rows.
fn message(key: &str, rows: Vec<NewOutbox>) -> NewMessage {
    referral(
        key,
        Effects {
            outbox: rows,
            ..Effects::default()
        },
    )
}

/// An outbox row to HER:990002 (the purpose tells rows of one message apart).
fn row(order_key: &str, out_msg_id: &str) -> NewOutbox {
    outbox(
        &format!("referral-{out_msg_id}"),
        "HER:990002",
        order_key,
        out_msg_id,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_lease_each_row_once_in_order() {
    const MESSAGES: usize = 100;
    const PER_MESSAGE: usize = 3;
    const KEYS: usize = 20;
    let db = pg::database().await;
    let a = Arc::new(connect(&db).await);
    let b = Arc::new(connect(&db).await);
    // 300 rows over 20 order keys, stored from both instances at once.
    let mut ingests = Vec::new();
    for m in 0..MESSAGES {
        let store = if m % 2 == 0 { a.clone() } else { b.clone() };
        ingests.push(tokio::spawn(async move {
            let rows = (0..PER_MESSAGE)
                .map(|r| {
                    row(
                        &format!("key-{}", (m * PER_MESSAGE + r) % KEYS),
                        &format!("o-{m}-{r}"),
                    )
                })
                .collect();
            stored_id(&store.ingest(message(&format!("m{m}"), rows)).await.unwrap())
        }));
    }
    for t in ingests {
        t.await.unwrap();
    }
    let total = MESSAGES * PER_MESSAGE;
    // Every row, by order key in id order (the order they must be handed out in).
    let mut by_key: HashMap<String, Vec<i64>> = HashMap::new();
    let listed = a
        .list_outbox(&OutboxFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), total);
    for row in &listed {
        by_key
            .entry(row.order_key.clone())
            .or_default()
            .push(row.id);
    }
    for ids in by_key.values_mut() {
        ids.sort_unstable();
    }
    let by_key = Arc::new(by_key);

    // Four workers per instance lease small batches and deliver what they got.
    let delivered: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let leased: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut workers = Vec::new();
    for w in 0..8 {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        let (delivered, leased, done, by_key) = (
            delivered.clone(),
            leased.clone(),
            done.clone(),
            by_key.clone(),
        );
        workers.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            while done.load(Ordering::SeqCst) < total {
                assert!(Instant::now() < deadline, "leasing did not finish");
                let rows: Vec<OutboxRow> =
                    store.lease_outbox(&owner, 1_000, 600_000, 7).await.unwrap();
                if rows.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                for row in rows {
                    {
                        let delivered = delivered.lock().unwrap();
                        let earlier = by_key[&row.order_key].iter().take_while(|&&id| id < row.id);
                        for id in earlier {
                            assert!(
                                delivered.contains(id),
                                "row {} of {} handed out before row {id}",
                                row.id,
                                row.order_key
                            );
                        }
                    }
                    leased.lock().unwrap().push((owner.clone(), row.id));
                    // Marked before the commit: a row after it may be leased only once committed.
                    delivered.lock().unwrap().insert(row.id);
                    let ok = store
                        .record_attempt(row.id, &owner, Attempt::Delivered { at_ms: 2_000 })
                        .await
                        .unwrap();
                    assert!(ok, "the lease was held");
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let leased = leased.lock().unwrap().clone();
    let mut seen = HashSet::new();
    for (owner, id) in &leased {
        assert!(seen.insert(*id), "row {id} leased twice (again by {owner})");
    }
    let all_ids: HashSet<i64> = listed.iter().map(|r| r.id).collect();
    assert_eq!(seen, all_ids, "every row leased exactly once");
    let owners: HashSet<&str> = leased.iter().map(|(o, _)| o.as_str()).collect();
    assert!(owners.len() > 1, "the work was shared: {owners:?}");
    let counts = a.outbox_counts().await.unwrap();
    assert_eq!(counts, vec![("sent".to_string(), total as i64)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_store_a_key_once() {
    let db = pg::database().await;
    let a = Arc::new(connect(&db).await);
    let b = Arc::new(connect(&db).await);
    let mut tasks = Vec::new();
    for k in 0..50 {
        for copy in 0..4 {
            let store = if copy % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let key = format!("k{k}");
                let mut m = message(&key, vec![row(&key, &format!("o-{k}-{copy}"))]);
                m.raw = format!("copy {copy}").into_bytes();
                (key, store.ingest(m).await.unwrap())
            }));
        }
    }
    let mut stored: HashMap<String, i64> = HashMap::new();
    let mut duplicates: Vec<(String, i64)> = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (key, IngestOutcome::Stored { id }) => {
                assert!(stored.insert(key, id).is_none(), "stored twice");
            }
            (key, IngestOutcome::Duplicate { id, .. }) => duplicates.push((key, id)),
        }
    }
    assert_eq!(stored.len(), 50, "one Stored per key");
    assert_eq!(duplicates.len(), 150);
    for (key, id) in &duplicates {
        assert_eq!(stored.get(key), Some(id), "a duplicate names the first row");
    }
    let rows = a
        .list(&ListFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|r| r.duplicate_count == 3));
    assert_eq!(
        b.outbox_counts().await.unwrap(),
        vec![("pending".to_string(), 50)],
        "effects recorded once per key"
    );
}

/// PostgreSQL can empty a table without deleting its rows one by one: the audit log refuses that
/// too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_cannot_be_truncated() {
    let db = pg::database().await;
    let store = connect(&db).await;
    store
        .record_audit(NewAudit {
            at: "2026-01-01T00:00:00.000Z".into(),
            actor: "cli".into(),
            action: "stays.get".into(),
            subject: "1".into(),
            detail: "1".into(),
        })
        .await
        .unwrap();
    let refused = db.execute_raw("TRUNCATE audit_log").await;
    assert!(
        matches!(&refused, Err(m) if m.contains("append-only")),
        "{refused:?}"
    );
    assert_eq!(store.audit_log(10).await.unwrap().len(), 1);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_started_together_apply_once() {
    let db = pg::database().await;
    let (a, b, c) = tokio::join!(connect(&db), connect(&db), connect(&db));
    let client = db.client().await;
    let versions: Vec<i64> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // One version per migration file, each applied once.
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/store/migrations/postgres"
    ))
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
    })
    .count() as i64;
    assert!(files >= 4);
    assert_eq!(versions, (1..=files).collect::<Vec<_>>());
    for store in [a, b, c] {
        store.ping().await.unwrap();
        store.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused() {
    let db = pg::database().await;
    connect(&db).await.close().await.unwrap();
    db.client()
        .await
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'x')",
            &[],
        )
        .await
        .unwrap();
    match PgStore::connect(&db.url, PgOptions::default()).await {
        Err(StoreError::Database(text)) => assert!(text.contains("newer"), "{text}"),
        other => panic!("expected a schema version error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_name_no_secret() {
    let url = "postgres://kadgate:VerySecretPassword@127.0.0.1:1/db?bogus_option=x";
    match PgStore::connect(url, PgOptions::default()).await {
        Err(StoreError::Database(text)) => {
            assert!(!text.contains("VerySecret"), "{text}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
    // Nothing listens on port 1.
    let url = "postgres://kadgate:VerySecretPassword@127.0.0.1:1/db";
    let opts = PgOptions {
        connect_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    match PgStore::connect(url, opts).await {
        Err(StoreError::Database(text)) => {
            assert!(!text.contains("VerySecret"), "{text}");
            assert!(text.contains("connect"), "{text}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

/// WAL fsyncs so far, all processes (pg_stat_wal, PostgreSQL 14+), after the server has taken in
/// every finished backend's counters.
async fn wal_syncs(db: &PgDb) -> i64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = db.client().await;
    client
        .query_one("SELECT pg_stat_force_next_flush()", &[])
        .await
        .unwrap();
    client
        .query_one("SELECT wal_sync FROM pg_stat_wal", &[])
        .await
        .unwrap()
        .get(0)
}

/// Ingest `n` messages of `size` bytes, all at once; returns (seconds, commits, WAL fsyncs).
async fn ingest_burst(db: &PgDb, opts: PgOptions, n: usize, size: usize) -> (f64, u64, i64) {
    let store = Arc::new(PgStore::connect(&db.url, opts).await.unwrap());
    let before = wal_syncs(db).await;
    let raw = vec![b'x'; size];
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let store = store.clone();
        let mut m = message(&format!("gc-{}-{i}", opts.max_connections), vec![]);
        m.raw = raw.clone();
        tasks.push(tokio::spawn(async move { store.ingest(m).await }));
    }
    for t in tasks {
        stored_id(&t.await.unwrap().unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let commits = store.stats().commits;
    // Closing ends the backends, which hands their WAL counters to the server.
    store.close().await.unwrap();
    drop(store);
    (elapsed, commits, wal_syncs(db).await - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_wal_flushes() {
    const N: usize = 2_000;
    let db = pg::private_database().await;
    // One connection: every commit waits for a flush of its own.
    let one = PgOptions {
        max_connections: 1,
        ..PgOptions::default()
    };
    let (secs, commits, syncs) = ingest_burst(&db, one, 300, 10 * 1024).await;
    println!(
        "postgres, 1 connection: 300 ingests of 10 KB in {secs:.3}s = {:.0}/s; {commits} commits, \
         {syncs} WAL fsyncs",
        300.0 / secs
    );
    assert_eq!(commits, 300);
    if db.alone() {
        assert!(
            syncs >= 270,
            "{syncs} WAL fsyncs for 300 serial commits: fsyncs are not counted"
        );
    }
    // The default pool: concurrent commits share flushes.
    let (secs, commits, syncs) = ingest_burst(&db, PgOptions::default(), N, 10 * 1024).await;
    println!(
        "postgres, {} connections: {N} ingests of 10 KB in {secs:.3}s = {:.0}/s; {commits} \
         commits, {syncs} WAL fsyncs ({:.1} commits per fsync)",
        PgOptions::default().max_connections,
        N as f64 / secs,
        commits as f64 / syncs.max(1) as f64
    );
    assert_eq!(commits, N as u64);
    if db.alone() {
        assert!(
            syncs < (N as i64) / 2,
            "{syncs} WAL fsyncs for {N} concurrent commits: not grouping"
        );
    }
    let store = connect(&db).await;
    let counts: HashMap<String, i64> = store.counts().await.unwrap().into_iter().collect();
    assert_eq!(counts.get("accepted"), Some(&(N as i64 + 300)));
}
