//! The store contract cases (`tests/common/store_cases.rs`) against the SQLite store, on a real
//! database file: decisions, routes and the outbox (leases and a crashed worker's rows coming
//! back, per-key ordering, attempts recorded only under a held lease, receipts correlated in the
//! ingest transaction, overdue receipts, retries), and ingest, deduplication and close.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use common::store_cases::Backend;
use kadgate::store::sqlite::{SqliteOptions, SqliteStore};
use kadgate::store::Store;

/// A database file in a temporary folder (a nested path: opening creates the folders).
struct Sqlite {
    dir: tempfile::TempDir,
}

impl Backend for Sqlite {
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let path = self.dir.path().join("nested/k.db");
            let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open store");
            Arc::new(store) as Arc<dyn Store>
        })
    }
}

async fn sqlite() -> Sqlite {
    Sqlite {
        dir: tempfile::tempdir().expect("temporary folder"),
    }
}

all_store_cases!(sqlite);
