//! Durable storage: the `Store` trait and its implementations.
//!
//! The promise the whole gateway rests on: when `ingest` returns `Ok`, the raw bytes, the decoded
//! header, the findings and every receipt we will answer with are on disk (fsynced) in one
//! transaction. Only then may a receipt leave the process.
//!
//! Invariants:
//! - Only this module knows SQL. Nothing above the trait assumes SQLite: no rowid tricks, no
//!   single-writer assumption (a PostgreSQL store shared by several kadgate instances satisfies the
//!   same trait), no file paths.
//! - Deduplication is decided here, atomically: the same `dedup_key` stored twice yields the first
//!   row's receipts, never a second row.

use serde::{Deserialize, Serialize};

pub mod postgres;
pub mod queue;
pub mod sqlite;
mod sqlite_blob;
mod sqlite_queue;
mod sqlite_stays;
pub mod stays;

pub use queue::{
    new_out_msg_id, Ack, Attempt, CapacityReport, DecisionSource, Effects, NewAck, NewAlert,
    NewDecision, NewOutbox, NewRoute, OutboxFilter, OutboxRow, OutboxState, StoredAlert,
    StoredDecision, StoredRoute,
};
pub use stays::{
    AuditEntry, NewAudit, NewStay, NewStayWork, StayApplied, StayChange, StayRecord, StayWork,
    StayWrite, WorkOutcome,
};

/// Which way a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// A receipt we answer with (an AppRec per receiving party, or a FHIR response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReceipt {
    /// Which of our parties this receipt speaks for (`HER:12345`).
    pub receiver_key: String,
    /// The receipt's own message id (AppRec `Id`).
    pub receipt_id: String,
    /// `ok`, `rejected`, `partial`.
    pub status: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// One message to store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewMessage {
    /// RFC 3339 UTC.
    pub received_at: String,
    /// `http`, `folder`, `fhir`, `cli` …
    pub channel: String,
    pub direction: Direction,
    /// Wire format (`henvisning-11`, `fhir-r4`, …) when known.
    pub format: Option<String>,
    /// 8279 type or FHIR event code, when known.
    pub msg_type: Option<String>,
    pub msg_id: Option<String>,
    /// The sender as a stable key (`HER:56704`), when identifiable.
    pub sender_key: Option<String>,
    /// `sender_key` + `msg_id`: a message with the same key is a duplicate. `None` = cannot dedup.
    pub dedup_key: Option<String>,
    /// Outcome at the door: `accepted`, `rejected`, `not-addressed`, `unreadable`, `receipt`.
    pub status: String,
    pub raw: Vec<u8>,
    /// The decoded header (canonical model), JSON.
    pub header_json: Option<String>,
    /// The decoded message (canonical model), JSON; may hold patient data, so it never leaves the store
    /// except through access-controlled reads. The pipeline leaves it empty (the model is derived
    /// from `raw` by the pure decoders); it is for stages that store a model of their own.
    pub body_json: Option<String>,
    /// Findings, JSON array.
    pub findings_json: String,
    /// For incoming receipts: the id of our stored message it answers.
    pub correlates_to: Option<i64>,
    /// What we answer with, stored in the same transaction.
    pub receipts: Vec<NewReceipt>,
    /// The JSON we answered with when there is no receipt (202 "not addressed to us", …).
    pub reply_json: Option<String>,
    /// What identifies the content when a known dedup key comes again; None = [`content_sha256`]
    /// of `raw`. (FHIR uses the hash of the canonical JSON, so formatting does not count.)
    pub content_sha256: Option<String>,
    /// Decision, route, outbox rows, receipt correlation and alerts recorded in the same
    /// transaction — only when the message is stored as new.
    pub effects: Effects,
}

/// A receipt as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReceipt {
    pub receiver_key: String,
    pub receipt_id: String,
    pub status: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What `ingest` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Newly stored under this id.
    Stored { id: i64 },
    /// Already stored (same dedup key): the first copy's id, receipts and reply.
    Duplicate {
        id: i64,
        status: String,
        receipts: Vec<StoredReceipt>,
        reply_json: Option<String>,
        /// [`content_sha256`] of the first copy (None for rows stored before it was recorded):
        /// lets a caller tell a resend from a different message that reuses the id.
        content_sha256: Option<String>,
    },
}

/// SHA-256 of a message's raw bytes, lower-case hex, as the store records it.
pub fn content_sha256(raw: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(raw))
}

/// A stored message's metadata (no raw bytes, no patient data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    pub id: i64,
    pub received_at: String,
    pub channel: String,
    pub direction: Direction,
    pub format: Option<String>,
    pub msg_type: Option<String>,
    pub msg_id: Option<String>,
    pub sender_key: Option<String>,
    pub status: String,
    pub correlates_to: Option<i64>,
    pub receipt_count: i64,
    pub duplicate_count: i64,
}

/// A stored message in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub summary: MessageSummary,
    pub raw: Vec<u8>,
    pub header_json: Option<String>,
    pub body_json: Option<String>,
    pub findings_json: String,
    pub receipts: Vec<StoredReceipt>,
    pub reply_json: Option<String>,
}

/// Filter for listing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    pub direction: Option<Direction>,
    pub limit: i64,
    /// Only ids below this (keyset pagination, newest first).
    pub before_id: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store is closed")]
    Closed,
    #[error("database error: {0}")]
    Database(String),
    #[error("store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Durable storage of messages and receipts. Implementations: [`sqlite::SqliteStore`]; PostgreSQL
/// (several instances sharing one database) satisfies the same contract.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Store a message and its receipts durably (fsync before returning), or return the first copy
    /// when `dedup_key` was seen before. Concurrent calls are committed together (group commit).
    async fn ingest(&self, msg: NewMessage) -> Result<IngestOutcome, StoreError>;
    /// Look up an earlier message by dedup key, without storing anything (fast path for resends).
    async fn find_duplicate(&self, dedup_key: &str) -> Result<Option<IngestOutcome>, StoreError>;
    /// The id of a message *we sent* (direction out) with this MsgId, for correlating incoming receipts.
    async fn find_sent(&self, msg_id: &str) -> Result<Option<i64>, StoreError>;
    async fn get(&self, id: i64) -> Result<Option<StoredMessage>, StoreError>;
    async fn list(&self, filter: &ListFilter) -> Result<Vec<MessageSummary>, StoreError>;
    /// Number of stored messages per status.
    async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Record a later decision (an override) and what goes with it (a new business reply) for a
    /// stored message, in one transaction.
    async fn record_effects(&self, message_id: i64, effects: Effects) -> Result<(), StoreError>;
    /// Every decision on a message, oldest first (the last one is current).
    async fn decisions(&self, message_id: i64) -> Result<Vec<StoredDecision>, StoreError>;
    /// Where a message was routed.
    async fn routes(&self, message_id: i64) -> Result<Vec<StoredRoute>, StoreError>;
    /// Beds held per unit key (referrals routed there whose current decision is `accepted`).
    async fn beds_held(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Record a unit's own report of its free beds (replacing its previous one).
    async fn report_capacity(&self, report: CapacityReport) -> Result<(), StoreError>;
    async fn capacity_reports(&self) -> Result<Vec<CapacityReport>, StoreError>;

    /// Lease up to `limit` due outbox rows for `lease_ms` (rows whose lease ran out — a crashed
    /// worker's — are due again). Only the first pending row of each order key is handed out.
    async fn lease_outbox(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError>;
    /// Record a delivery attempt's result; `false` when `owner` had lost the lease (nothing recorded).
    async fn record_attempt(
        &self,
        id: i64,
        owner: &str,
        attempt: Attempt,
    ) -> Result<bool, StoreError>;
    /// Put a dead or negatively answered row back in the queue; `false` when it is in no such state.
    async fn retry_outbox(&self, id: i64, now_ms: i64) -> Result<bool, StoreError>;
    /// Raise an alert for each delivered row whose receipt is overdue; the number newly raised.
    async fn raise_overdue(&self, now_ms: i64) -> Result<usize, StoreError>;
    async fn list_outbox(&self, filter: &OutboxFilter) -> Result<Vec<OutboxRow>, StoreError>;
    async fn get_outbox(&self, id: i64) -> Result<Option<OutboxRow>, StoreError>;
    /// Number of outbox rows per state.
    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Alerts, newest first; `open_only` leaves out cleared ones.
    async fn alerts(&self, open_only: bool, limit: i64) -> Result<Vec<StoredAlert>, StoreError>;

    /// Lease up to `limit` due stay work items (pending or held, due, not leased by a live owner).
    async fn lease_stay_work(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<StayWork>, StoreError>;
    /// Record one step of the stay tracker in one transaction; `Conflict` (nothing recorded) when
    /// the stay's version or the work item's lease no longer match.
    async fn apply_stay(&self, change: StayChange) -> Result<StayApplied, StoreError>;
    /// The stay holding any of these link keys (the first key that matches wins).
    async fn stay_by_keys(&self, keys: &[String]) -> Result<Option<StayRecord>, StoreError>;
    /// The newest stay of a patient at one of these units that is not closed.
    async fn open_stay(
        &self,
        patient_nin: &str,
        unit_keys: &[String],
    ) -> Result<Option<StayRecord>, StoreError>;
    /// A patient's stays, newest first.
    async fn stays_of_patient(
        &self,
        patient_nin: &str,
        limit: i64,
    ) -> Result<Vec<StayRecord>, StoreError>;
    async fn get_stay(&self, id: i64) -> Result<Option<StayRecord>, StoreError>;
    /// Stays whose epicrisis was due by `now_ms`.
    async fn stays_overdue(&self, now_ms: i64, limit: i64) -> Result<Vec<StayRecord>, StoreError>;
    /// Number of stays per state, and of stay work items waiting (`work:pending`, `work:held`).
    async fn stay_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Append to the audit log (never changed or deleted).
    async fn record_audit(&self, entry: NewAudit) -> Result<i64, StoreError>;
    /// The audit log, newest first.
    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError>;

    /// Cheap liveness check of the database.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Finish pending writes and close; later calls fail with `Closed`.
    async fn close(&self) -> Result<(), StoreError>;
}
