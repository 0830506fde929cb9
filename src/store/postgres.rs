//! PostgreSQL implementation of [`Store`]: the scale-out engine. Several kadgate instances share
//! one database — its messages, its deduplication and its outbox queue.
//!
//! Crate choice: `tokio-postgres` (the asynchronous driver of the rust-postgres project: pure Rust,
//! no libpq, no database needed at compile time as sqlx's checked queries would) with
//! `deadpool-postgres` for the connection pool (small and well kept; it keeps a prepared-statement
//! cache per connection). TLS is not wired in: connect over a Unix socket or a trusted network
//! (`sslmode=require` fails at connect).
//!
//! Layout and guarantees (the same contract as [`super::sqlite::SqliteStore`]):
//! - A pool of connections ([`PgOptions::max_connections`]). Every write is one transaction on one
//!   pooled connection. Every connection runs with `synchronous_commit = on` (set in the startup
//!   options, whatever the server default), so `COMMIT` — and with it `ingest` — returns only
//!   after the WAL is flushed.
//! - Group commit is PostgreSQL's own: transactions that commit at the same moment are flushed by
//!   one WAL fsync (a backend flushing the WAL flushes every record inserted before it, and the
//!   others waiting on the flush find theirs already done). A writer task batching ingests into one
//!   transaction, as the SQLite store has, would save little over that here and would make one
//!   failing or deadlocked ingest cost a whole batch between instances. `tests/store_postgres.rs`
//!   counts the WAL fsyncs per commit under concurrent ingest (about 3 with 16 connections; a
//!   server-side `commit_delay` saved fsyncs there, not time).
//! - Deduplication: `INSERT … ON CONFLICT (dedup_key) DO NOTHING RETURNING id`. When nothing comes
//!   back, another transaction holds the key; the insert waited until that one committed, so the
//!   following `UPDATE … SET duplicate_count = duplicate_count + 1 … RETURNING` reads the first
//!   row. Never two rows, never an error to the caller for a race.
//! - Outbox leases: `SELECT … FOR UPDATE SKIP LOCKED` inside the `UPDATE` that sets `lease_owner`
//!   and `lease_until_ms`: two workers in two processes never get the same row, a crashed worker's
//!   rows are due again once their lease ran out, and per `order_key` only the first pending row
//!   is handed out. Outbox inserts take a transaction-scoped advisory lock per order key, so the
//!   ids of one key follow commit order (an earlier id never becomes visible after a later one).
//! - A transaction PostgreSQL aborts for a deadlock or a serialization failure (two instances
//!   touching the same rows) is run again, a few times.
//! - Migrations (`migrations/postgres/`, the same version numbers as SQLite) run in one
//!   transaction under an advisory lock: two instances starting at once apply them once.
//! - `close`: every call holds a read guard of a gate for its whole run; `close` marks the store
//!   closed, takes the write guard (so every call in flight has finished) and closes the pool.
//! - PostgreSQL text cannot hold U+0000; such a character in a message's text fields (message id,
//!   keys …) is stored as U+FFFD, and lookups by key map it the same way. Raw bytes are `BYTEA`
//!   and kept exactly.
//!
//! Must not: put row data in errors or logs. Errors carry a fixed context, the SQLSTATE and the
//! server's primary message (which names constraints and columns, never values) — never the
//! server's DETAIL, which echoes row values. Nothing here assumes it is the only instance.

mod queue;
mod stays;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::sqlite::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use super::stays::{AuditEntry, NewAudit, StayApplied, StayChange, StayRecord, StayWork};
use super::{
    Attempt, CapacityReport, Direction, Effects, IngestOutcome, ListFilter, MessageSummary,
    NewMessage, OutboxFilter, OutboxRow, Store, StoreError, StoredAlert, StoredDecision,
    StoredMessage, StoredReceipt, StoredRoute,
};

/// Schema migrations, applied in order; the index + 1 is the schema version (as in SQLite).
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_init.sql"),
    include_str!("migrations/postgres/0002_content_hash.sql"),
    include_str!("migrations/postgres/0003_outbox.sql"),
    include_str!("migrations/postgres/0004_stays.sql"),
    include_str!("migrations/postgres/0005_blob_codec.sql"),
];

/// Advisory lock key (one `bigint`) held while migrating.
const MIGRATION_LOCK: i64 = 0x6b61_6467_6174_6501;

/// How often a transaction aborted by a deadlock or serialization failure is run again.
const MAX_RETRIES: u32 = 5;

/// Tuning for [`PgStore::connect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Most connections this instance holds (at least 1): also the most ingests in flight, and so
    /// the most that can share one WAL flush.
    pub max_connections: usize,
    /// Timeout for opening one connection (unless the connect string sets `connect_timeout`).
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of this instance, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgStats {
    /// Committed write transactions (each waited for its WAL flush).
    pub commits: u64,
    /// Transactions run again after a deadlock or serialization failure.
    pub retries: u64,
    /// Write transactions that failed (rolled back, error returned).
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
}

/// The PostgreSQL store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct PgStore {
    pool: Pool,
    closed: AtomicBool,
    /// Read-held by every call for its whole run; write-held by `close`.
    gate: tokio::sync::RwLock<()>,
    counters: Counters,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .field("max_connections", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

/// Why a database step failed, before it becomes a [`StoreError`].
enum Fail {
    Pg(tokio_postgres::Error),
    /// A stored value this code cannot read back (a fixed text, no row data).
    Data(&'static str),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

type Res<T> = Result<T, Fail>;

/// A boxed future borrowing a connection, for [`PgStore::read`].
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The error text: for a server error its severity, SQLSTATE and primary message only.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

fn fail(context: &str, f: Fail) -> StoreError {
    match f {
        Fail::Pg(e) => StoreError::Database(format!("{context}: {}", describe(&e))),
        Fail::Data(what) => StoreError::Database(format!("{context}: {what}")),
    }
}

fn pool_err(context: &str, e: PoolError) -> StoreError {
    match e {
        PoolError::Closed => StoreError::Closed,
        PoolError::Backend(e) => fail(context, Fail::Pg(e)),
        PoolError::Timeout(_) => {
            StoreError::Database(format!("{context}: timed out waiting for a connection"))
        }
        other => StoreError::Database(format!("{context}: connection pool: {other}")),
    }
}

/// Aborted by PostgreSQL because of another transaction: worth running again.
fn is_transient(f: &Fail) -> bool {
    match f {
        Fail::Pg(e) => matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
        ),
        Fail::Data(_) => false,
    }
}

/// Text as PostgreSQL can store it: U+0000 becomes U+FFFD (see the module header).
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt_text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

/// `limit` as the store honours it: 0 or less = the default, at most the maximum.
fn clamp_limit(limit: i64) -> i64 {
    if limit <= 0 {
        DEFAULT_LIST_LIMIT
    } else {
        limit.min(MAX_LIST_LIMIT)
    }
}

/// Prepare (cached per connection) and run a query returning rows.
async fn rows<C: GenericClient>(c: &C, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Res<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, params).await?)
}

/// Prepare (cached) and run a query returning at most one row.
async fn opt_row<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Res<Option<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&stmt, params).await?)
}

/// Prepare (cached) and run a statement; the number of rows it touched.
async fn exec<C: GenericClient>(c: &C, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Res<u64> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.execute(&stmt, params).await?)
}

/// A pooled connection, with the gate held so that `close` waits for it.
struct Conn<'a> {
    _open: tokio::sync::RwLockReadGuard<'a, ()>,
    client: Object,
}

/// Run `$body` — a future using the transaction `$tx`, yielding `Res<T>` — in a transaction on a
/// pooled connection and commit it; run it again when PostgreSQL aborted it because of another
/// transaction (deadlock, serialization failure). Answers after the commit (WAL flushed).
macro_rules! write_tx {
    ($store:expr, $context:expr, |$tx:ident| $body:expr) => {{
        let store: &PgStore = $store;
        let mut conn = store.conn($context).await?;
        let mut retries = 0u32;
        loop {
            let result: Res<_> = async {
                let $tx = conn.client.transaction().await?;
                let value = $body.await?;
                $tx.commit().await?;
                Ok::<_, Fail>(value)
            }
            .await;
            match result {
                Ok(value) => {
                    store.counters.commits.fetch_add(1, Ordering::Relaxed);
                    break Ok(value);
                }
                Err(f) if retries < MAX_RETRIES && is_transient(&f) => {
                    retries += 1;
                    store.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(context = $context, retries, "postgres transaction retried");
                }
                Err(f) => {
                    store.counters.failed.fetch_add(1, Ordering::Relaxed);
                    break Err(fail($context, f));
                }
            }
        }
    }};
}

impl PgStore {
    /// Connect to `url` (`postgres://user@host:port/db?…` or `host=… user=…` pairs), migrate the
    /// schema (once, even when several instances start together) and keep a pool of up to
    /// `opts.max_connections` connections.
    pub async fn connect(url: &str, opts: PgOptions) -> Result<PgStore, StoreError> {
        // The parser's own message may quote parts of the string (a password): a fixed text.
        let mut cfg: tokio_postgres::Config = url.parse().map_err(|_| {
            StoreError::Database(
                "invalid PostgreSQL connection string (expected postgres://user@host:port/database)"
                    .into(),
            )
        })?;
        // Durability does not depend on the server's default.
        let options = match cfg.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} -c synchronous_commit=on"),
            _ => "-c synchronous_commit=on".to_owned(),
        };
        cfg.options(options);
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(opts.connect_timeout);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("kadgate");
        }
        let manager = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let max_connections = opts.max_connections.max(1);
        let pool = Pool::builder(manager)
            .max_size(max_connections)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(opts.connect_timeout))
            .build()
            .map_err(|e| StoreError::Database(format!("connection pool: {e}")))?;

        let mut client = pool.get().await.map_err(|e| pool_err("connect", e))?;
        migrate(&mut client).await?;
        drop(client);

        tracing::info!(max_connections, "postgres store opened");
        Ok(PgStore {
            pool,
            closed: AtomicBool::new(false),
            gate: tokio::sync::RwLock::new(()),
            counters: Counters::default(),
        })
    }

    /// Number of committed write transactions so far.
    pub fn commit_count(&self) -> u64 {
        self.counters.commits.load(Ordering::Relaxed)
    }

    /// Counters of this instance.
    pub fn stats(&self) -> PgStats {
        PgStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    async fn conn(&self, context: &str) -> Result<Conn<'_>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let open = self.gate.read().await;
        // `close` may have run while this call waited for the gate.
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let client = self.pool.get().await.map_err(|e| pool_err(context, e))?;
        Ok(Conn {
            _open: open,
            client,
        })
    }

    /// Run a read on a pooled connection (no transaction: each statement sees what is committed).
    async fn read<T>(
        &self,
        context: &'static str,
        f: impl for<'c> FnOnce(&'c Object) -> BoxFuture<'c, Res<T>>,
    ) -> Result<T, StoreError> {
        let conn = self.conn(context).await?;
        f(&conn.client).await.map_err(|e| fail(context, e))
    }
}

/// Apply missing migrations in one transaction under an advisory lock (a second instance waits,
/// then finds them applied), recording each in `schema_migrations`.
async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    let err = |e: tokio_postgres::Error| fail("migrate schema", Fail::Pg(e));
    let tx = client.transaction().await.map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TEXT   NOT NULL
         )",
    )
    .await
    .map_err(err)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await
        .map_err(err)?
        .try_get(0)
        .map_err(err)?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::Database(format!(
            "database schema version {current} is newer than this kadgate supports ({known})"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        if version <= current {
            continue;
        }
        tx.batch_execute(sql).await.map_err(err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &chrono::Utc::now().to_rfc3339()],
        )
        .await
        .map_err(err)?;
        tracing::info!(version, "postgres schema migrated");
    }
    tx.commit().await.map_err(err)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Messages

const INSERT_MESSAGE: &str = "INSERT INTO messages (received_at, channel, direction, format, \
     msg_type, msg_id, sender_key, dedup_key, status, raw, header_json, body_json, findings_json, \
     correlates_to, reply_json, duplicate_count, content_sha256) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0, $16) \
     ON CONFLICT (dedup_key) DO NOTHING RETURNING id";

/// Store a message, its receipts and effects — or, when its dedup key is taken, answer with the
/// first copy. Runs inside the caller's transaction.
async fn ingest_one<C: GenericClient>(c: &C, msg: &NewMessage, sha256: &str) -> Res<IngestOutcome> {
    let dedup_key = opt_text(&msg.dedup_key);
    let inserted = opt_row(
        c,
        INSERT_MESSAGE,
        &[
            &text(&msg.received_at),
            &text(&msg.channel),
            &msg.direction.as_str(),
            &opt_text(&msg.format),
            &opt_text(&msg.msg_type),
            &opt_text(&msg.msg_id),
            &opt_text(&msg.sender_key),
            &dedup_key,
            &text(&msg.status),
            &msg.raw,
            &opt_text(&msg.header_json),
            &opt_text(&msg.body_json),
            &text(&msg.findings_json),
            &msg.correlates_to,
            &opt_text(&msg.reply_json),
            &sha256,
        ],
    )
    .await?;
    let Some(row) = inserted else {
        // The key is taken (by a row committed before this statement or while it waited).
        let key = dedup_key.as_deref().unwrap_or_default();
        return match count_duplicate(c, key).await? {
            Some(outcome) => Ok(outcome),
            None => Err(Fail::Data("dedup conflict without a stored row")),
        };
    };
    let id: i64 = row.try_get(0)?;
    if !msg.receipts.is_empty() {
        let n = msg.receipts.len();
        let mut ordinals = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        let mut receipt_ids = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut content_types = Vec::with_capacity(n);
        let mut bodies: Vec<&[u8]> = Vec::with_capacity(n);
        for (ordinal, r) in msg.receipts.iter().enumerate() {
            ordinals.push(ordinal as i64);
            receivers.push(text(&r.receiver_key));
            receipt_ids.push(text(&r.receipt_id));
            statuses.push(text(&r.status));
            content_types.push(text(&r.content_type));
            bodies.push(&r.body);
        }
        // One statement for all receipts.
        exec(
            c,
            "INSERT INTO receipts (message_id, ordinal, receiver_key, receipt_id, status, \
             content_type, body) SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::TEXT[], \
             $5::TEXT[], $6::TEXT[], $7::BYTEA[])",
            &[
                &id,
                &ordinals,
                &receivers,
                &receipt_ids,
                &statuses,
                &content_types,
                &bodies,
            ],
        )
        .await?;
    }
    queue::insert_effects(c, id, &msg.effects).await?;
    Ok(IngestOutcome::Stored { id })
}

/// Count one more copy of the message stored under `key` and answer with the first copy.
async fn count_duplicate<C: GenericClient>(c: &C, key: &str) -> Res<Option<IngestOutcome>> {
    let row = opt_row(
        c,
        "UPDATE messages SET duplicate_count = duplicate_count + 1 WHERE dedup_key = $1 \
         RETURNING id, status, reply_json, content_sha256",
        &[&key],
    )
    .await?;
    match row {
        Some(row) => Ok(Some(duplicate_from(c, &row).await?)),
        None => Ok(None),
    }
}

/// A `Duplicate` answer from a row `id, status, reply_json, content_sha256`.
async fn duplicate_from<C: GenericClient>(c: &C, row: &Row) -> Res<IngestOutcome> {
    let id: i64 = row.try_get(0)?;
    Ok(IngestOutcome::Duplicate {
        id,
        status: row.try_get(1)?,
        receipts: load_receipts(c, id).await?,
        reply_json: row.try_get(2)?,
        content_sha256: row.try_get(3)?,
    })
}

async fn load_receipts<C: GenericClient>(c: &C, message_id: i64) -> Res<Vec<StoredReceipt>> {
    let found = rows(
        c,
        "SELECT receiver_key, receipt_id, status, content_type, body FROM receipts \
         WHERE message_id = $1 ORDER BY ordinal",
        &[&message_id],
    )
    .await?;
    let mut out = Vec::with_capacity(found.len());
    for r in &found {
        out.push(StoredReceipt {
            receiver_key: r.try_get(0)?,
            receipt_id: r.try_get(1)?,
            status: r.try_get(2)?,
            content_type: r.try_get(3)?,
            body: r.try_get(4)?,
        });
    }
    Ok(out)
}

/// Columns 0..=11 of a summary; callers append `FROM messages m …`.
const SUMMARY_SELECT: &str =
    "SELECT m.id, m.received_at, m.channel, m.direction, m.format, m.msg_type, \
     m.msg_id, m.sender_key, m.status, m.correlates_to, \
     (SELECT COUNT(*) FROM receipts r WHERE r.message_id = m.id), m.duplicate_count";

fn summary_from_row(r: &Row) -> Res<MessageSummary> {
    let direction = match r.try_get::<_, &str>(3)? {
        "in" => Direction::In,
        "out" => Direction::Out,
        _ => return Err(Fail::Data("invalid direction in messages row")),
    };
    Ok(MessageSummary {
        id: r.try_get(0)?,
        received_at: r.try_get(1)?,
        channel: r.try_get(2)?,
        direction,
        format: r.try_get(4)?,
        msg_type: r.try_get(5)?,
        msg_id: r.try_get(6)?,
        sender_key: r.try_get(7)?,
        status: r.try_get(8)?,
        correlates_to: r.try_get(9)?,
        receipt_count: r.try_get(10)?,
        duplicate_count: r.try_get(11)?,
    })
}

async fn get_message<C: GenericClient>(c: &C, id: i64) -> Res<Option<StoredMessage>> {
    let sql = format!(
        "{SUMMARY_SELECT}, m.raw, m.header_json, m.body_json, m.findings_json, m.reply_json \
         FROM messages m WHERE m.id = $1"
    );
    let Some(r) = opt_row(c, &sql, &[&id]).await? else {
        return Ok(None);
    };
    Ok(Some(StoredMessage {
        summary: summary_from_row(&r)?,
        raw: r.try_get(12)?,
        header_json: r.try_get(13)?,
        body_json: r.try_get(14)?,
        findings_json: r.try_get(15)?,
        receipts: load_receipts(c, id).await?,
        reply_json: r.try_get(16)?,
    }))
}

async fn list_messages<C: GenericClient>(c: &C, filter: &ListFilter) -> Res<Vec<MessageSummary>> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    if let Some(status) = &filter.status {
        args.push(Box::new(text(status).into_owned()));
        clauses.push(format!("m.status = ${}", args.len()));
    }
    if let Some(direction) = filter.direction {
        args.push(Box::new(direction.as_str()));
        clauses.push(format!("m.direction = ${}", args.len()));
    }
    if let Some(before) = filter.before_id {
        args.push(Box::new(before));
        clauses.push(format!("m.id < ${}", args.len()));
    }
    let mut sql = format!("{SUMMARY_SELECT} FROM messages m");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    args.push(Box::new(clamp_limit(filter.limit)));
    sql.push_str(&format!(" ORDER BY m.id DESC LIMIT ${}", args.len()));
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
    rows(c, &sql, &params)
        .await?
        .iter()
        .map(summary_from_row)
        .collect()
}

/// `(text, count)` rows of a `GROUP BY` count.
async fn counted<C: GenericClient>(c: &C, sql: &str) -> Res<Vec<(String, i64)>> {
    rows(c, sql, &[])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn ingest(&self, msg: NewMessage) -> Result<IngestOutcome, StoreError> {
        let sha256 = msg
            .content_sha256
            .clone()
            .unwrap_or_else(|| super::content_sha256(&msg.raw));
        write_tx!(self, "store message", |tx| ingest_one(&tx, &msg, &sha256))
    }

    async fn find_duplicate(&self, dedup_key: &str) -> Result<Option<IngestOutcome>, StoreError> {
        let key = text(dedup_key).into_owned();
        self.read("find duplicate", move |c| {
            Box::pin(async move {
                let row = opt_row(
                    c,
                    "SELECT id, status, reply_json, content_sha256 FROM messages \
                     WHERE dedup_key = $1",
                    &[&key],
                )
                .await?;
                match row {
                    Some(row) => Ok(Some(duplicate_from(c, &row).await?)),
                    None => Ok(None),
                }
            })
        })
        .await
    }

    async fn find_sent(&self, msg_id: &str) -> Result<Option<i64>, StoreError> {
        let msg_id = text(msg_id).into_owned();
        self.read("find sent", move |c| {
            Box::pin(async move {
                // The first (original) copy when an id was ever stored twice.
                let row = opt_row(
                    c,
                    "SELECT id FROM messages WHERE direction = 'out' AND msg_id = $1 \
                     ORDER BY id LIMIT 1",
                    &[&msg_id],
                )
                .await?;
                Ok(match row {
                    Some(r) => Some(r.try_get(0)?),
                    None => None,
                })
            })
        })
        .await
    }

    async fn get(&self, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        self.read("get message", move |c| Box::pin(get_message(c, id)))
            .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<MessageSummary>, StoreError> {
        let filter = filter.clone();
        self.read("list messages", move |c| {
            Box::pin(async move { list_messages(c, &filter).await })
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read("count messages", |c| {
            Box::pin(counted(
                c,
                "SELECT status, COUNT(*) FROM messages GROUP BY status ORDER BY status COLLATE \"C\"",
            ))
        })
        .await
    }

    async fn record_effects(&self, message_id: i64, effects: Effects) -> Result<(), StoreError> {
        write_tx!(self, "record decision", |tx| queue::insert_effects(
            &tx, message_id, &effects
        ))
    }

    async fn decisions(&self, message_id: i64) -> Result<Vec<StoredDecision>, StoreError> {
        self.read("read decisions", move |c| {
            Box::pin(queue::decisions(c, message_id))
        })
        .await
    }

    async fn routes(&self, message_id: i64) -> Result<Vec<StoredRoute>, StoreError> {
        self.read("read routes", move |c| {
            Box::pin(queue::routes(c, message_id))
        })
        .await
    }

    async fn beds_held(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read("count beds", |c| {
            Box::pin(counted(
                c,
                "SELECT unit_key, COUNT(*) FROM routes WHERE holds_bed AND unit_key IS NOT NULL \
                 GROUP BY unit_key ORDER BY unit_key COLLATE \"C\"",
            ))
        })
        .await
    }

    async fn report_capacity(&self, report: CapacityReport) -> Result<(), StoreError> {
        write_tx!(self, "report capacity", |tx| queue::report_capacity(
            &tx, &report
        ))
    }

    async fn capacity_reports(&self) -> Result<Vec<CapacityReport>, StoreError> {
        self.read("read capacity", |c| Box::pin(queue::capacity_reports(c)))
            .await
    }

    async fn lease_outbox(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        write_tx!(self, "lease outbox", |tx| queue::lease(
            &tx, owner, now_ms, lease_ms, limit
        ))
    }

    async fn record_attempt(
        &self,
        id: i64,
        owner: &str,
        attempt: Attempt,
    ) -> Result<bool, StoreError> {
        write_tx!(self, "record attempt", |tx| queue::record_attempt(
            &tx, id, owner, &attempt
        ))
    }

    async fn retry_outbox(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        write_tx!(self, "retry outbox row", |tx| queue::retry(&tx, id, now_ms))
    }

    async fn raise_overdue(&self, now_ms: i64) -> Result<usize, StoreError> {
        write_tx!(self, "raise overdue", |tx| queue::raise_overdue(
            &tx, now_ms
        ))
    }

    async fn list_outbox(&self, filter: &OutboxFilter) -> Result<Vec<OutboxRow>, StoreError> {
        let filter = filter.clone();
        self.read("list outbox", move |c| {
            Box::pin(async move { queue::list_outbox(c, &filter).await })
        })
        .await
    }

    async fn get_outbox(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        self.read("get outbox row", move |c| {
            Box::pin(queue::get_outbox(c, id))
        })
        .await
    }

    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read("count outbox", |c| {
            Box::pin(counted(
                c,
                "SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state COLLATE \"C\"",
            ))
        })
        .await
    }

    async fn alerts(&self, open_only: bool, limit: i64) -> Result<Vec<StoredAlert>, StoreError> {
        let limit = clamp_limit(limit);
        self.read("list alerts", move |c| {
            Box::pin(queue::alerts(c, open_only, limit))
        })
        .await
    }

    async fn lease_stay_work(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<StayWork>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        write_tx!(self, "lease stay work", |tx| stays::lease_work(
            &tx, owner, now_ms, lease_ms, limit
        ))
    }

    async fn apply_stay(&self, change: StayChange) -> Result<StayApplied, StoreError> {
        write_tx!(self, "record stay", |tx| stays::apply(&tx, &change))
    }

    async fn stay_by_keys(&self, keys: &[String]) -> Result<Option<StayRecord>, StoreError> {
        let keys = keys.to_vec();
        self.read("find stay", move |c| {
            Box::pin(async move { stays::by_keys(c, &keys).await })
        })
        .await
    }

    async fn open_stay(
        &self,
        patient_nin: &str,
        unit_keys: &[String],
    ) -> Result<Option<StayRecord>, StoreError> {
        let (nin, units) = (patient_nin.to_owned(), unit_keys.to_vec());
        self.read("find open stay", move |c| {
            Box::pin(async move { stays::open_stay(c, &nin, &units).await })
        })
        .await
    }

    async fn stays_of_patient(
        &self,
        patient_nin: &str,
        limit: i64,
    ) -> Result<Vec<StayRecord>, StoreError> {
        let nin = patient_nin.to_owned();
        self.read("list stays", move |c| {
            Box::pin(async move { stays::of_patient(c, &nin, limit).await })
        })
        .await
    }

    async fn get_stay(&self, id: i64) -> Result<Option<StayRecord>, StoreError> {
        self.read("get stay", move |c| Box::pin(stays::get(c, id)))
            .await
    }

    async fn stays_overdue(&self, now_ms: i64, limit: i64) -> Result<Vec<StayRecord>, StoreError> {
        self.read("list overdue stays", move |c| {
            Box::pin(stays::overdue(c, now_ms, limit))
        })
        .await
    }

    async fn stay_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read("count stays", |c| Box::pin(stays::counts(c)))
            .await
    }

    async fn record_audit(&self, entry: NewAudit) -> Result<i64, StoreError> {
        write_tx!(self, "record audit", |tx| stays::record_audit(&tx, &entry))
    }

    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.read("read audit log", move |c| {
            Box::pin(stays::audit_log(c, limit))
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("ping", |c| {
            Box::pin(async move {
                rows(c, "SELECT 1", &[]).await?;
                Ok(())
            })
        })
        .await
    }

    /// Refuse new calls, wait for every call in flight, close the pool. Idempotent.
    async fn close(&self) -> Result<(), StoreError> {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        let _all = self.gate.write().await;
        self.pool.close();
        if first {
            tracing::info!(commits = self.commit_count(), "postgres store closed");
        }
        Ok(())
    }
}
