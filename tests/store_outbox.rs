//! The store contract cases (`tests/common/store_cases.rs`) against the SQLite store, on a real
//! database file: decisions, routes and the outbox (leases and a crashed worker's rows coming
//! back, per-key ordering, attempts recorded only under a held lease, receipts correlated in the
//! ingest transaction, overdue receipts, retries), stays, the stay work queue and the audit log
//! (refused changes checked on the database file itself), and ingest, deduplication and close.

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

impl Sqlite {
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("nested/k.db")
    }
}

impl Backend for Sqlite {
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let path = self.path();
            let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open store");
            Arc::new(store) as Arc<dyn Store>
        })
    }

    fn execute_raw<'a>(
        &'a self,
        sql: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
        Box::pin(async move {
            let conn = rusqlite::Connection::open(self.path()).map_err(|e| e.to_string())?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            conn.execute(sql, [])
                .map(|n| n as u64)
                .map_err(|e| e.to_string())
        })
    }
}

async fn sqlite() -> Sqlite {
    Sqlite {
        dir: tempfile::tempdir().expect("temporary folder"),
    }
}

all_store_cases!(sqlite);
