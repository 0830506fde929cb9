//! What the store keeps for stays: the stay rows (a JSON document the stay tracker owns, plus the
//! columns it is looked up by), the keys messages are linked to a stay by, the work queue of
//! messages from units still to be linked or fanned out, and the append-only audit log of reads
//! of patient data.
//!
//! Plain data; the SQL lives in the store implementations. A stay row holds patient data (the
//! national id it is found by, the document), so it leaves the store only through
//! access-controlled, audited reads.

use serde::{Deserialize, Serialize};

/// A stay opened with the message being stored (a referral), in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewStay {
    pub patient_nin: Option<String>,
    /// `HER:990002`.
    pub unit_key: Option<String>,
    pub state: String,
    /// Link keys (`id:<MsgId>`, …); a key already taken stays with its first stay.
    pub keys: Vec<String>,
    /// The stay tracker's document (JSON).
    pub doc_json: String,
    pub created_ms: i64,
}

/// A message from a unit that the stay tracker must link (and maybe fan out), queued in the same
/// transaction as the message is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewStayWork {
    /// `event` (admission, discharge …) or `epicrisis`.
    pub kind: String,
    pub patient_nin: Option<String>,
    pub created_ms: i64,
}

/// A queued work item, leased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StayWork {
    pub id: i64,
    pub message_id: i64,
    pub kind: String,
    pub patient_nin: Option<String>,
    /// `pending` or `held` (waiting for the rest of its stay).
    pub state: String,
    pub attempts: i64,
    pub created_ms: i64,
    pub note: Option<String>,
}

/// A stay as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StayRecord {
    pub id: i64,
    /// Bumped by every write; a write names the version it read.
    pub version: i64,
    pub patient_nin: Option<String>,
    pub unit_key: Option<String>,
    pub state: String,
    /// The referral that opened the stay, when one did.
    pub referral_message_id: Option<i64>,
    /// When an epicrisis is due (discharged, none received yet).
    pub epicrisis_due_ms: Option<i64>,
    pub doc_json: String,
    pub created_ms: i64,
    pub updated_at: String,
}

/// A stay to write: new (`id` None) or an update of the version read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StayWrite {
    pub id: Option<i64>,
    pub version: i64,
    pub patient_nin: Option<String>,
    pub unit_key: Option<String>,
    pub state: String,
    pub epicrisis_due_ms: Option<i64>,
    pub doc_json: String,
    pub created_ms: i64,
}

/// What became of a work item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkOutcome {
    Done,
    /// Try again at `at_ms`: `held` = waiting for another message, else a failure (a register
    /// that did not answer); `note` says why (no patient data).
    Later {
        at_ms: i64,
        held: bool,
        note: String,
    },
}

/// One step of the stay tracker, recorded in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StayChange {
    /// The tracker's "now" (held items released wake at this time).
    pub now_ms: i64,
    /// The leased work item this step finishes (and the lease owner), if any.
    pub work: Option<(i64, String)>,
    /// The message outbox rows and alerts belong to.
    pub message_id: Option<i64>,
    pub stay: Option<StayWrite>,
    pub keys: Vec<String>,
    pub outbox: Vec<super::NewOutbox>,
    pub alerts: Vec<super::NewAlert>,
    /// Dedup keys of open alerts to clear.
    pub clear_alerts: Vec<String>,
    pub outcome: WorkOutcome,
    /// Wake the held work items of this patient (something they may be waiting for arrived).
    pub release_held_of: Option<String>,
}

/// Whether a [`StayChange`] was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StayApplied {
    /// Recorded; the stay's id (new or updated), if the change wrote one.
    Applied { stay_id: Option<i64> },
    /// Nothing recorded: the stay changed since it was read, or the work item's lease was lost.
    Conflict,
}

/// A read of patient data, to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAudit {
    pub at: String,
    /// Who read (`operator-token`, a CLI user …) and from where.
    pub actor: String,
    /// `stays.search`, `stays.get`, …
    pub action: String,
    /// What was asked for (a patient's national id, a stay id): the audit log is patient data.
    pub subject: String,
    /// What was shown (stay ids).
    pub detail: String,
}

/// An audit log entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(flatten)]
    pub entry: NewAudit,
}
