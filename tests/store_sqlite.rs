//! What only the SQLite store has, against a real database file in a temporary directory: schema
//! versions, its group commit and its compressed blobs. The store contract itself (ingest, dedup, receipts, outbox,
//! close) is `tests/common/store_cases.rs`, run on SQLite by `tests/store_outbox.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use kadgate::store::sqlite::{SqliteOptions, SqliteStore};
mod common;

use common::store_cases::{message, stored_id};
use kadgate::store::{Store, StoreError};

fn db_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    // A nested path: open must create the parent directories.
    dir.path().join("nested/dir/kadgate.db")
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&db_path(dir), SqliteOptions::default()).expect("open store")
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

/// Large messages are kept compressed in the file (and come back whole: `large_blobs_round_trip`
/// in the store contract); a store written before compression is read as it is.
#[tokio::test]
async fn large_messages_are_kept_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let json = std::fs::read("fixtures/load/fhir-referral-10k.json").unwrap();
    let mut m = message(Some("compressed"));
    m.raw = json.clone();
    let id = stored_id(&store.ingest(m).await.unwrap());
    let mut old = message(Some("from-before"));
    old.raw = json.clone();
    let old_id = stored_id(&store.ingest(old).await.unwrap());
    store.close().await.unwrap();

    let conn = rusqlite::Connection::open(db_path(&dir)).unwrap();
    let (codec, stored): (Option<String>, i64) = conn
        .query_row(
            "SELECT raw_codec, length(raw) FROM messages WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(codec.as_deref(), Some("zstd"));
    assert!(stored * 3 < json.len() as i64, "{stored} bytes stored");
    // A row as a store before compression wrote it: the bytes as they are, no codec.
    conn.execute(
        "UPDATE messages SET raw = ?1, raw_codec = NULL WHERE id = ?2",
        rusqlite::params![json, old_id],
    )
    .unwrap();
    drop(conn);
    let store = open(&dir);
    assert_eq!(store.get(id).await.unwrap().unwrap().raw, json);
    assert_eq!(store.get(old_id).await.unwrap().unwrap().raw, json);
    store.close().await.unwrap();
}
