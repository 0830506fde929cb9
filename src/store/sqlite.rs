//! SQLite implementation of [`Store`] with group commit.
//!
//! Layout:
//! - One dedicated writer OS thread owns the only write connection. [`Store::ingest`] sends a job
//!   over a bounded channel and awaits a oneshot reply. The writer blocks for the first job, drains
//!   whatever else is queued (up to `max_batch`), runs the whole batch in one
//!   `BEGIN IMMEDIATE … COMMIT`, commits — one fsync for the batch, `synchronous=FULL` — and only
//!   then replies to every job. When a job fails, the batch is rolled back and run again with each
//!   job in its own `SAVEPOINT`, so the failing job rolls back alone (savepoints for every batch
//!   would copy each page a job touches to the sub-journal). Deduplication is decided inside that
//!   transaction, so two jobs with the same `dedup_key` in one batch see each other.
//! - Large blobs (a message as received, an outbox body) are kept zstd-compressed
//!   (`sqlite_blob.rs`).
//! - A small pool of read connections (WAL allows readers concurrent with the writer), used from
//!   `tokio::task::spawn_blocking`.
//!
//! Errors never carry row data: only rusqlite/SQLite messages and fixed context strings.
//! Logging carries only ids, counts and timings.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::sqlite_blob as blob;
use super::sqlite_queue as q;
use super::sqlite_stays as st;
use super::stays::{AuditEntry, NewAudit, StayApplied, StayChange, StayRecord, StayWork};
use super::{
    Attempt, CapacityReport, Direction, Effects, IngestOutcome, ListFilter, MessageSummary,
    NewMessage, OutboxFilter, OutboxRow, Store, StoreError, StoredAlert, StoredDecision,
    StoredMessage, StoredReceipt, StoredRoute,
};

/// Schema migrations, applied in order; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_init.sql"),
    include_str!("migrations/sqlite/0002_content_hash.sql"),
    include_str!("migrations/sqlite/0003_outbox.sql"),
    include_str!("migrations/sqlite/0004_stays.sql"),
    include_str!("migrations/sqlite/0005_blob_codec.sql"),
];

/// How long a connection waits for a lock held by another connection/process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

// WAL checkpoints: the writer's own, SQLite's default (every 1,000 pages, in the commit that
// passes them). A checkpointer thread of its own (PASSIVE every 250 ms) was tried and removed: its
// fsyncs of the database file stalled the writer's fsyncs of the WAL, and the 99th percentile of
// ingest latency went from 27 ms to 80–90 ms (BENCHMARKS.md).

/// Page cache of the write connection, in KiB (as `PRAGMA cache_size` takes it: negative).
const WRITER_CACHE_KIB: i64 = -32_768;

/// Prepared statements kept per connection (more than the store has).
const STATEMENT_CACHE: usize = 256;

/// `list` limit when the filter says 0 (or less), and the largest limit honoured.
pub const DEFAULT_LIST_LIMIT: i64 = 100;
pub const MAX_LIST_LIMIT: i64 = 1000;

/// A list call's `limit` as the store honours it: 0 or less = the default, at most the maximum.
pub(super) fn list_limit(limit: i64) -> i64 {
    if limit <= 0 {
        DEFAULT_LIST_LIMIT
    } else {
        limit.min(MAX_LIST_LIMIT)
    }
}

/// Tuning for [`SqliteStore::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Most ingest jobs committed in one transaction (at least 1).
    pub max_batch: usize,
    /// Number of read connections (at least 1).
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 256,
            readers: 4,
        }
    }
}

/// Counters of the writer, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqliteStats {
    /// Successful `COMMIT`s (= fsyncs of the WAL for ingests).
    pub commits: u64,
    /// Batches whose `BEGIN` or `COMMIT` failed (every job in them got an error).
    pub failed_batches: u64,
    /// Batches run a second time, each job in its own savepoint, because a job failed.
    pub replayed_batches: u64,
    /// Ingest jobs processed (stored, duplicate or failed).
    pub jobs: u64,
    /// Largest batch committed so far.
    pub largest_batch: usize,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    failed_batches: AtomicU64,
    replayed_batches: AtomicU64,
    jobs: AtomicU64,
    largest_batch: AtomicUsize,
}

/// One unit of work for the writer thread: runs inside the batch transaction, and is answered
/// only after the batch committed. A job can be run again (its work is `Fn` of the connection):
/// when one job of a batch fails, the batch is rolled back and run once more with every job in a
/// savepoint of its own, so the failing job rolls back alone.
trait WriteJob: Send {
    /// Run as part of the batch; `false` when the job failed (its writes must be undone).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Run inside a savepoint of its own: a failure rolls back this job's writes only.
    fn run_alone(&mut self, conn: &Connection);
    /// The batch did not commit: every job in it fails with this message.
    fn fail(&mut self, message: &str);
    fn answer(self: Box<Self>);
}

type Job = Box<dyn WriteJob>;

/// A write returning `T` to an awaiting caller.
struct Typed<T, F> {
    context: &'static str,
    work: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for Typed<T, F>
where
    T: Send,
    F: Fn(&Connection) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.work)(conn).map_err(|e| db_err(self.context, e));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn run_alone(&mut self, conn: &Connection) {
        self.result = Some(in_savepoint(conn, self.context, &self.work));
    }

    fn fail(&mut self, message: &str) {
        self.result = Some(Err(StoreError::Database(message.to_owned())));
    }

    fn answer(self: Box<Self>) {
        let result = self.result.unwrap_or_else(|| {
            Err(StoreError::Database(format!(
                "{}: job was not run",
                self.context
            )))
        });
        let _ = self.reply.send(result);
    }
}

/// Run `work` inside `SAVEPOINT job`: a failing job rolls back alone.
fn in_savepoint<T>(
    conn: &Connection,
    context: &str,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    // Prepared once and kept, like every statement of the store.
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    run("SAVEPOINT job").map_err(|e| db_err("savepoint", e))?;
    match work(conn) {
        Ok(value) => {
            run("RELEASE job").map_err(|e| db_err("release savepoint", e))?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rb) = run("ROLLBACK TO job").and_then(|_| run("RELEASE job")) {
                tracing::error!(error = %rb, "sqlite rollback to savepoint failed");
            }
            Err(db_err(context, e))
        }
    }
}

/// The SQLite store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct SqliteStore {
    path: PathBuf,
    closed: Arc<AtomicBool>,
    /// `None` once closed: no new jobs are accepted.
    jobs: RwLock<Option<mpsc::Sender<Job>>>,
    writer: tokio::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<ReaderPool>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn db_err(context: &str, e: rusqlite::Error) -> StoreError {
    StoreError::Database(format!("{context}: {e}"))
}

impl SqliteStore {
    /// Open (creating parent directories and the database file when missing) and migrate the
    /// schema, then start the writer thread and the reader pool.
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let max_batch = opts.max_batch.max(1);
        let readers = opts.readers.max(1);
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }

        let mut conn = open_writer(path)?;
        migrate(&mut conn)?;
        let closed = Arc::new(AtomicBool::new(false));

        let mut conns = Vec::with_capacity(readers);
        for _ in 0..readers {
            conns.push(open_reader(path)?);
        }
        let pool = Arc::new(ReaderPool {
            path: path.to_path_buf(),
            conns: Mutex::new(conns),
            permits: Arc::new(Semaphore::new(readers)),
        });

        let (tx, rx) = mpsc::channel(max_batch.saturating_mul(4).max(16));
        let counters = Arc::new(Counters::default());
        let writer_counters = counters.clone();
        let handle = std::thread::Builder::new()
            .name("kadgate-store-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch, &writer_counters))?;

        tracing::info!(max_batch, readers, "sqlite store opened");
        Ok(SqliteStore {
            path: path.to_path_buf(),
            closed,
            jobs: RwLock::new(Some(tx)),
            writer: tokio::sync::Mutex::new(Some(handle)),
            readers: pool,
            counters,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of successful write transactions so far (each is one fsync).
    pub fn commit_count(&self) -> u64 {
        self.counters.commits.load(Ordering::Relaxed)
    }

    /// Writer counters.
    pub fn stats(&self) -> SqliteStats {
        SqliteStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            failed_batches: self.counters.failed_batches.load(Ordering::Relaxed),
            replayed_batches: self.counters.replayed_batches.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            largest_batch: self.counters.largest_batch.load(Ordering::Relaxed),
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Run `f` on a pooled read connection on the blocking thread pool.
    async fn read<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.check_open()?;
        let permit = self
            .readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.readers.clone();
        let closed = self.closed.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if closed.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            let mut conn = pool.take()?;
            let result = f(&mut conn);
            if !closed.load(Ordering::Acquire) {
                pool.put(conn);
            }
            result.map_err(|e| db_err(context, e))
        })
        .await
        .map_err(|e| StoreError::Database(format!("{context}: reader task failed: {e}")))?
    }

    /// Run `f` on the writer thread inside the next group-committed transaction; the answer comes
    /// after the commit (fsync).
    pub(crate) async fn write<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.check_open()?;
        let sender = {
            let guard = self.jobs.read().map_err(|_| StoreError::Closed)?;
            guard.as_ref().cloned().ok_or(StoreError::Closed)?
        };
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(Typed {
            context,
            work: f,
            result: None,
            reply,
        });
        sender.send(job).await.map_err(|_| StoreError::Closed)?;
        drop(sender);
        rx.await
            .map_err(|_| StoreError::Database("store writer stopped before answering".into()))?
    }
}

impl Drop for SqliteStore {
    /// Without `close`: stop accepting, let the writer finish what is queued (everything already
    /// acknowledged is committed anyway) and join it. Never waits for callers, only for the writer,
    /// which needs no async runtime.
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(jobs) = self.jobs.get_mut() {
            jobs.take();
        }
        self.readers.permits.close();
        if let Some(handle) = self.writer.get_mut().take() {
            if handle.join().is_err() {
                tracing::error!("sqlite store writer thread panicked");
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn ingest(&self, msg: NewMessage) -> Result<IngestOutcome, StoreError> {
        // Hash on the caller's task, not on the writer thread.
        let sha256 = msg
            .content_sha256
            .clone()
            .unwrap_or_else(|| super::content_sha256(&msg.raw));
        self.write("store message", move |conn| ingest_one(conn, &msg, &sha256))
            .await
    }

    async fn find_duplicate(&self, dedup_key: &str) -> Result<Option<IngestOutcome>, StoreError> {
        let key = dedup_key.to_owned();
        self.read("find duplicate", move |conn| {
            let tx = conn.transaction()?;
            let found = lookup_dedup(&tx, &key)?;
            let outcome = match found {
                Some((id, status, reply_json, content_sha256)) => {
                    let receipts = load_receipts(&tx, id)?;
                    Some(IngestOutcome::Duplicate {
                        id,
                        status,
                        receipts,
                        reply_json,
                        content_sha256,
                    })
                }
                None => None,
            };
            tx.finish()?;
            Ok(outcome)
        })
        .await
    }

    async fn find_sent(&self, msg_id: &str) -> Result<Option<i64>, StoreError> {
        let msg_id = msg_id.to_owned();
        self.read("find sent", move |conn| {
            // The first (original) copy when an id was ever stored twice.
            conn.prepare_cached(
                "SELECT id FROM messages WHERE direction = 'out' AND msg_id = ?1 ORDER BY id LIMIT 1",
            )?
            .query_row(params![msg_id], |r| r.get(0))
            .optional()
        })
        .await
    }

    async fn get(&self, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        self.read("get message", move |conn| {
            let tx = conn.transaction()?;
            let row = tx
                .prepare_cached(&format!(
                    "{SUMMARY_SELECT}, m.raw, m.header_json, m.body_json, m.findings_json, m.reply_json, \
                     m.raw_codec FROM messages m WHERE m.id = ?1"
                ))?
                .query_row(params![id], |r| {
                    Ok((
                        summary_from_row(r)?,
                        blob::unpack(r.get(12)?, r.get(17)?, 12)?,
                        r.get::<_, Option<String>>(13)?,
                        r.get::<_, Option<String>>(14)?,
                        r.get::<_, String>(15)?,
                        r.get::<_, Option<String>>(16)?,
                    ))
                })
                .optional()?;
            let out = match row {
                Some((summary, raw, header_json, body_json, findings_json, reply_json)) => {
                    let receipts = load_receipts(&tx, id)?;
                    Some(StoredMessage {
                        summary,
                        raw,
                        header_json,
                        body_json,
                        findings_json,
                        receipts,
                        reply_json,
                    })
                }
                None => None,
            };
            tx.finish()?;
            Ok(out)
        })
        .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<MessageSummary>, StoreError> {
        let mut sql = format!("{SUMMARY_SELECT} FROM messages m");
        let mut clauses: Vec<&str> = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        if let Some(status) = &filter.status {
            args.push(Value::Text(status.clone()));
            clauses.push("m.status = ?");
        }
        if let Some(direction) = filter.direction {
            args.push(Value::Text(direction.as_str().to_owned()));
            clauses.push("m.direction = ?");
        }
        if let Some(before) = filter.before_id {
            args.push(Value::Integer(before));
            clauses.push("m.id < ?");
        }
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        let limit = list_limit(filter.limit);
        args.push(Value::Integer(limit));
        sql.push_str(" ORDER BY m.id DESC LIMIT ?");
        self.read("list messages", move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), summary_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read("count messages", |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT status, COUNT(*) FROM messages GROUP BY status ORDER BY status",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    async fn record_effects(&self, message_id: i64, effects: Effects) -> Result<(), StoreError> {
        self.write("record decision", move |conn| {
            q::insert_effects(conn, message_id, &effects)
        })
        .await
    }

    async fn decisions(&self, message_id: i64) -> Result<Vec<StoredDecision>, StoreError> {
        self.read("read decisions", move |c| q::decisions(c, message_id))
            .await
    }

    async fn routes(&self, message_id: i64) -> Result<Vec<StoredRoute>, StoreError> {
        self.read("read routes", move |c| q::routes(c, message_id))
            .await
    }

    async fn beds_held(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read("count beds", |c| q::beds_held(c)).await
    }

    async fn report_capacity(&self, report: CapacityReport) -> Result<(), StoreError> {
        self.write("report capacity", move |c| q::report_capacity(c, &report))
            .await
    }

    async fn capacity_reports(&self) -> Result<Vec<CapacityReport>, StoreError> {
        self.read("read capacity", |c| q::capacity_reports(c)).await
    }

    async fn lease_outbox(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let owner = owner.to_owned();
        self.write("lease outbox", move |c| {
            q::lease(c, &owner, now_ms, lease_ms, limit)
        })
        .await
    }

    async fn record_attempt(
        &self,
        id: i64,
        owner: &str,
        attempt: Attempt,
    ) -> Result<bool, StoreError> {
        let owner = owner.to_owned();
        self.write("record attempt", move |c| {
            q::record_attempt(c, id, &owner, &attempt)
        })
        .await
    }

    async fn retry_outbox(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.write("retry outbox row", move |c| q::retry(c, id, now_ms))
            .await
    }

    async fn raise_overdue(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.write("raise overdue", move |c| q::raise_overdue(c, now_ms))
            .await
    }

    async fn list_outbox(&self, filter: &OutboxFilter) -> Result<Vec<OutboxRow>, StoreError> {
        let filter = filter.clone();
        self.read("list outbox", move |c| q::list_outbox(c, &filter))
            .await
    }

    async fn get_outbox(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        self.read("get outbox row", move |c| q::get_outbox(c, id))
            .await
    }

    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read("count outbox", |c| q::outbox_counts(c)).await
    }

    async fn alerts(&self, open_only: bool, limit: i64) -> Result<Vec<StoredAlert>, StoreError> {
        self.read("list alerts", move |c| q::alerts(c, open_only, limit))
            .await
    }

    async fn lease_stay_work(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<StayWork>, StoreError> {
        let owner = owner.to_owned();
        self.write("lease stay work", move |c| {
            st::lease_work(c, &owner, now_ms, lease_ms, limit)
        })
        .await
    }

    async fn apply_stay(&self, change: StayChange) -> Result<StayApplied, StoreError> {
        self.write("record stay", move |c| st::apply(c, &change))
            .await
    }

    async fn stay_by_keys(&self, keys: &[String]) -> Result<Option<StayRecord>, StoreError> {
        let keys = keys.to_vec();
        self.read("find stay", move |c| st::by_keys(c, &keys)).await
    }

    async fn open_stay(
        &self,
        patient_nin: &str,
        unit_keys: &[String],
    ) -> Result<Option<StayRecord>, StoreError> {
        let (nin, units) = (patient_nin.to_owned(), unit_keys.to_vec());
        self.read("find open stay", move |c| st::open_stay(c, &nin, &units))
            .await
    }

    async fn stays_of_patient(
        &self,
        patient_nin: &str,
        limit: i64,
    ) -> Result<Vec<StayRecord>, StoreError> {
        let nin = patient_nin.to_owned();
        let limit = list_limit(limit);
        self.read("list stays", move |c| st::of_patient(c, &nin, limit))
            .await
    }

    async fn get_stay(&self, id: i64) -> Result<Option<StayRecord>, StoreError> {
        self.read("get stay", move |c| st::get(c, id)).await
    }

    async fn stays_overdue(&self, now_ms: i64, limit: i64) -> Result<Vec<StayRecord>, StoreError> {
        let limit = list_limit(limit);
        self.read("list overdue stays", move |c| st::overdue(c, now_ms, limit))
            .await
    }

    async fn stay_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read("count stays", |c| st::counts(c)).await
    }

    async fn record_audit(&self, entry: NewAudit) -> Result<i64, StoreError> {
        self.write("record audit", move |c| st::record_audit(c, &entry))
            .await
    }

    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = list_limit(limit);
        self.read("read audit log", move |c| st::audit_log(c, limit))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("ping", |conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
        })
        .await
    }

    /// Stop accepting, let the writer commit everything queued, checkpoint the WAL, join the
    /// writer. Idempotent: a second `close` returns `Ok` once the first has finished.
    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        self.jobs.write().map_err(|_| StoreError::Closed)?.take();
        self.readers.permits.close();
        let mut writer = self.writer.lock().await;
        if let Some(handle) = writer.take() {
            let joined = tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| StoreError::Database(format!("close: join task failed: {e}")))?;
            if joined.is_err() {
                return Err(StoreError::Database(
                    "close: store writer thread panicked".into(),
                ));
            }
            self.readers.clear();
            tracing::info!(commits = self.commit_count(), "sqlite store closed");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Connections and schema

fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| db_err("open database", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| db_err("set busy timeout", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| db_err("set journal_mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database(format!(
            "journal_mode WAL not available (got {mode})"
        )));
    }
    apply_common_pragmas(&conn)?;
    // The writer walks the indexes of every table it inserts into; keep their pages in memory
    // (SQLite's default is 2 MiB) rather than reading them back from the OS for each insert.
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)
        .map_err(|e| db_err("set cache_size", e))?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| db_err("open read connection", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| db_err("set busy timeout", e))?;
    apply_common_pragmas(&conn)?;
    conn.pragma_update(None, "query_only", "ON")
        .map_err(|e| db_err("set query_only", e))?;
    Ok(conn)
}

fn apply_common_pragmas(conn: &Connection) -> Result<(), StoreError> {
    // Every statement the store runs stays prepared: with rusqlite's default of 16, the writer's
    // ~60 statements evicted each other and were parsed again and again.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // FULL: the WAL is fsynced at every COMMIT, so an acknowledged ingest survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| db_err("set synchronous", e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| db_err("set foreign_keys", e))?;
    Ok(())
}

/// Apply missing migrations, each in its own write transaction, recording them in
/// `schema_migrations`. Safe against two processes opening the same file at once.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let err = |e| db_err("migrate schema", e);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TEXT    NOT NULL
         )",
    )
    .map_err(err)?;
    let known = MIGRATIONS.len() as i64;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let current: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if current > known {
            return Err(StoreError::Database(format!(
                "database schema version {current} is newer than this kadgate supports ({known})"
            )));
        }
        if current >= version {
            continue;
        }
        tx.execute_batch(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, chrono::Utc::now().to_rfc3339()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(version, "sqlite schema migrated");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reader pool

struct ReaderPool {
    path: PathBuf,
    conns: Mutex<Vec<Connection>>,
    /// One permit per connection; closed on `close`.
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    fn take(&self) -> Result<Connection, StoreError> {
        let pooled = self.conns.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            // A connection was lost (a panicking reader): replace it.
            None => open_reader(&self.path),
        }
    }

    fn put(&self, conn: Connection) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }

    fn clear(&self) {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    counters: &Counters,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    // Ends when every sender is gone (close/drop) and the queue is drained.
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, &mut batch, counters);
    }
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => tracing::warn!("sqlite wal checkpoint on close was blocked"),
        Err(e) => tracing::warn!(error = %e, "sqlite wal checkpoint on close failed"),
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "sqlite writer connection close failed");
    }
}

/// Run every job of `batch` in one transaction, commit, then answer every job (and empty `batch`).
fn run_batch(conn: &mut Connection, batch: &mut Vec<Job>, counters: &Counters) {
    let started = Instant::now();
    let size = batch.len();
    counters.jobs.fetch_add(size as u64, Ordering::Relaxed);
    counters.largest_batch.fetch_max(size, Ordering::Relaxed);

    // Savepoints cost: every page a job touches first is copied to the sub-journal. Jobs rarely
    // fail, so the batch runs without them, and only a batch in which a job failed is run again
    // with one savepoint per job.
    let begin = |conn: &Connection| {
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| db_err("begin write transaction", e))
    };
    let commit = |conn: &Connection| {
        conn.execute_batch("COMMIT")
            .map_err(|e| db_err("commit", e))
    };
    let committed = begin(conn).and_then(|()| {
        if batch.iter_mut().all(|job| job.run(conn)) {
            return commit(conn);
        }
        conn.execute_batch("ROLLBACK")
            .map_err(|e| db_err("roll back a batch with a failed job", e))?;
        counters.replayed_batches.fetch_add(1, Ordering::Relaxed);
        begin(conn)?;
        for job in batch.iter_mut() {
            job.run_alone(conn);
        }
        commit(conn)
    });

    match committed {
        Ok(()) => {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(
                batch = size,
                elapsed_us = started.elapsed().as_micros() as u64,
                "write batch committed"
            );
        }
        Err(e) => {
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            if !conn.is_autocommit() {
                if let Err(rb) = conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %rb, "sqlite rollback after failed batch failed");
                }
            }
            tracing::warn!(batch = size, error = %e, "write batch failed");
            let message = match &e {
                StoreError::Database(m) => m.clone(),
                other => other.to_string(),
            };
            for job in batch.iter_mut() {
                job.fail(&message);
            }
        }
    }
    for job in batch.drain(..) {
        job.answer();
    }
}

/// Dedup check, then insert message and receipts. Runs inside the writer transaction.
fn ingest_one(
    conn: &Connection,
    msg: &NewMessage,
    sha256: &str,
) -> rusqlite::Result<IngestOutcome> {
    if let Some(key) = &msg.dedup_key {
        if let Some((id, status, reply_json, content_sha256)) = lookup_dedup(conn, key)? {
            conn.prepare_cached(
                "UPDATE messages SET duplicate_count = duplicate_count + 1 WHERE id = ?1",
            )?
            .execute(params![id])?;
            let receipts = load_receipts(conn, id)?;
            return Ok(IngestOutcome::Duplicate {
                id,
                status,
                receipts,
                reply_json,
                content_sha256,
            });
        }
    }
    let raw = blob::pack(&msg.raw);
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO messages (received_at, channel, direction, format, msg_type, msg_id, sender_key, \
             dedup_key, status, raw, header_json, body_json, findings_json, correlates_to, reply_json, \
             duplicate_count, content_sha256, raw_codec) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 0, ?16, ?17) RETURNING id",
        )?
        .query_row(
            params![
                msg.received_at,
                msg.channel,
                msg.direction.as_str(),
                msg.format,
                msg.msg_type,
                msg.msg_id,
                msg.sender_key,
                msg.dedup_key,
                msg.status,
                raw.bytes,
                msg.header_json,
                msg.body_json,
                msg.findings_json,
                msg.correlates_to,
                msg.reply_json,
                sha256,
                raw.codec,
            ],
            |r| r.get(0),
        )?;
    if !msg.receipts.is_empty() {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO receipts (message_id, ordinal, receiver_key, receipt_id, status, content_type, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (ordinal, r) in msg.receipts.iter().enumerate() {
            stmt.execute(params![
                id,
                ordinal as i64,
                r.receiver_key,
                r.receipt_id,
                r.status,
                r.content_type,
                r.body
            ])?;
        }
    }
    q::insert_effects(conn, id, &msg.effects)?;
    Ok(IngestOutcome::Stored { id })
}

// ---------------------------------------------------------------------------------------------
// Shared queries

/// id, status, reply_json and content_sha256 of the message stored under a dedup key.
type DedupRow = (i64, String, Option<String>, Option<String>);

fn lookup_dedup(conn: &Connection, key: &str) -> rusqlite::Result<Option<DedupRow>> {
    conn.prepare_cached(
        "SELECT id, status, reply_json, content_sha256 FROM messages WHERE dedup_key = ?1",
    )?
    .query_row(params![key], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .optional()
}

fn load_receipts(conn: &Connection, message_id: i64) -> rusqlite::Result<Vec<StoredReceipt>> {
    let mut stmt = conn.prepare_cached(
        "SELECT receiver_key, receipt_id, status, content_type, body FROM receipts \
         WHERE message_id = ?1 ORDER BY ordinal",
    )?;
    let rows = stmt.query_map(params![message_id], |r| {
        Ok(StoredReceipt {
            receiver_key: r.get(0)?,
            receipt_id: r.get(1)?,
            status: r.get(2)?,
            content_type: r.get(3)?,
            body: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Columns 0..=11 of a summary; callers append `FROM messages m …`.
const SUMMARY_SELECT: &str =
    "SELECT m.id, m.received_at, m.channel, m.direction, m.format, m.msg_type, \
     m.msg_id, m.sender_key, m.status, m.correlates_to, \
     (SELECT COUNT(*) FROM receipts r WHERE r.message_id = m.id), m.duplicate_count";

fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageSummary> {
    let direction: String = r.get(3)?;
    let direction = match direction.as_str() {
        "in" => Direction::In,
        "out" => Direction::Out,
        _ => {
            return Err(rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                "invalid direction in messages row".into(),
            ))
        }
    };
    Ok(MessageSummary {
        id: r.get(0)?,
        received_at: r.get(1)?,
        channel: r.get(2)?,
        direction,
        format: r.get(4)?,
        msg_type: r.get(5)?,
        msg_id: r.get(6)?,
        sender_key: r.get(7)?,
        status: r.get(8)?,
        correlates_to: r.get(9)?,
        receipt_count: r.get(10)?,
        duplicate_count: r.get(11)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that fails in a batch rolls back alone: the batch is run again with a savepoint per
    /// job, and every other job's writes commit — each exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_rolls_back_alone() -> Result<(), StoreError> {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(SqliteStore::open(
            &dir.path().join("kadgate.sqlite"),
            SqliteOptions::default(),
        )?);
        store
            .write("create", |c| {
                c.execute_batch("CREATE TABLE IF NOT EXISTS t (x INTEGER PRIMARY KEY)")
            })
            .await?;
        // Hold the writer so that every job below lands in one batch.
        let hold = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write("hold", |_| {
                        std::thread::sleep(Duration::from_millis(300));
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let jobs: Vec<_> = (0..20i64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .write("job", move |c| {
                            c.execute("INSERT INTO t (x) VALUES (?1)", [i])?;
                            if i % 5 == 3 {
                                // Fails after a write of its own, which must not survive.
                                c.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                            }
                            Ok(i)
                        })
                        .await
                })
            })
            .collect();
        hold.await
            .map_err(|e| StoreError::Database(e.to_string()))??;
        for (i, job) in (0..20i64).zip(jobs) {
            let result = job.await.map_err(|e| StoreError::Database(e.to_string()))?;
            assert_eq!(result.is_err(), i % 5 == 3, "job {i}: {result:?}");
        }
        let rows: Vec<i64> = store
            .write("read", |c| {
                let mut s = c.prepare("SELECT x FROM t ORDER BY x")?;
                let rows = s.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .await?;
        let expected: Vec<i64> = (0..20).filter(|i| i % 5 != 3).collect();
        assert_eq!(rows, expected);
        let stats = store.stats();
        assert!(stats.replayed_batches >= 1, "{stats:?}");
        assert_eq!(stats.failed_batches, 0);
        Ok(())
    }
}
