//! What the store keeps besides messages: admission decisions, routing choices, the outbox (one
//! row per message, purpose and recipient), alerts and the units' capacity reports.
//!
//! These are plain data; the SQL lives in the store implementations. Nothing here holds patient
//! data except the outbox bodies (the encoded messages themselves) and override notes, which only
//! leave the store through access-controlled reads.

use serde::{Deserialize, Serialize};

/// Who made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionSource {
    /// The gateway's rule set.
    Rules,
    /// A KAD doctor, through the API.
    Override,
}

impl DecisionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionSource::Rules => "rules",
            DecisionSource::Override => "override",
        }
    }
}

/// An admission decision to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDecision {
    pub decided_at: String,
    /// `accepted`, `needs-review`, `not-accepted`, `incomplete`.
    pub decision: String,
    pub source: DecisionSource,
    pub decided_by: Option<String>,
    pub note: Option<String>,
    pub ruleset_id: Option<String>,
    pub ruleset_version: Option<String>,
    pub news2: Option<i64>,
    /// Ids of the rules that fired.
    pub rules: Vec<String>,
    pub reasons_no: Vec<String>,
    pub reasons_en: Vec<String>,
}

/// A decision as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDecision {
    pub id: i64,
    pub message_id: i64,
    #[serde(flatten)]
    pub decision: NewDecision,
}

/// A routing choice to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRoute {
    pub routed_at: String,
    /// Stable code (`route.catchment`, `route.full`, …).
    pub code: String,
    pub unit_key: Option<String>,
    pub unit_name: Option<String>,
    pub municipality: Option<String>,
    pub municipality_source: Option<String>,
    pub full: bool,
    pub diverted_from: Option<String>,
    pub reason_en: String,
    pub reason_no: String,
    /// The referral holds a bed at the unit (accepted); counted against the unit's beds.
    pub holds_bed: bool,
}

/// A routing choice as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRoute {
    pub id: i64,
    pub message_id: i64,
    #[serde(flatten)]
    pub route: NewRoute,
}

/// State of an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Waiting for (another) delivery attempt.
    Pending,
    /// Delivered; waiting for the recipient's receipt.
    Sent,
    /// The recipient's receipt said OK.
    Acked,
    /// The recipient's receipt said no (or partly); its error codes are recorded.
    Nacked,
    /// Given up: too many attempts, too old, or undeliverable (a dead letter).
    Dead,
}

impl OutboxState {
    pub const ALL: [OutboxState; 5] = [
        OutboxState::Pending,
        OutboxState::Sent,
        OutboxState::Acked,
        OutboxState::Nacked,
        OutboxState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Acked => "acked",
            OutboxState::Nacked => "nacked",
            OutboxState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxState> {
        OutboxState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A new id for a message kadgate sends (an outbox row's `out_msg_id`): a time-ordered UUID
/// (version 7). The store indexes these ids (a receipt names one); random (version 4) ids put
/// every new row on a random page of that index, which once the index outgrew the cache meant
/// one more page read and written per message. The time in the id is the creation time, which
/// the message states anyway.
pub fn new_out_msg_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// One message to one recipient, to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOutbox {
    /// `referral`, `business-reply`, `business-reply-2` …
    pub purpose: String,
    /// `HER:990002`.
    pub recipient_key: String,
    pub recipient_name: Option<String>,
    /// Rows with the same key are delivered one at a time, in the order they were created.
    pub order_key: String,
    /// The transport destination (URL or folder) — the circuit breaker's key.
    pub destination: String,
    /// Transport settings (JSON); `None` = no endpoint known (the row is dead from the start).
    pub endpoint_json: Option<String>,
    pub format: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The id of the message we send (MsgId / MessageHeader.id): the recipient's receipt names it.
    pub out_msg_id: String,
    pub created_at: String,
    pub created_ms: i64,
    /// How long after delivery the recipient's receipt may take before an alert.
    pub ack_within_ms: i64,
    /// Set when the row cannot be delivered at all (no endpoint): it is stored dead, with this reason.
    pub dead_reason: Option<String>,
}

/// An outbox row as stored (with its body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRow {
    pub id: i64,
    pub message_id: i64,
    pub purpose: String,
    pub recipient_key: String,
    pub recipient_name: Option<String>,
    pub order_key: String,
    pub destination: String,
    pub endpoint_json: Option<String>,
    pub format: String,
    pub content_type: String,
    #[serde(skip)]
    pub body: Vec<u8>,
    pub out_msg_id: String,
    pub state: OutboxState,
    pub attempts: i64,
    pub created_at: String,
    pub created_ms: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub sent_ms: Option<i64>,
    pub ack_deadline_ms: Option<i64>,
    pub acked_ms: Option<i64>,
    pub ack_status: Option<String>,
    pub ack_codes: Vec<String>,
    pub ack_message_id: Option<i64>,
    pub dead_reason: Option<String>,
    /// Milliseconds allowed for the receipt after delivery.
    pub ack_within_ms: i64,
}

/// What one delivery attempt came to. Recorded only while the worker still holds the row's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Delivered and answered with a receipt in the same exchange.
    Answered { ack: Ack, at_ms: i64 },
    /// Delivered; the receipt comes later (or never: the deadline raises an alert).
    Delivered { at_ms: i64 },
    /// Failed; try again at `retry_at_ms`.
    Failed { error: String, retry_at_ms: i64 },
    /// Failed for good (too many attempts, too old, or a refusal that will not change).
    Dead { error: String, reason: String },
    /// Not attempted (the destination's circuit is open): try at `retry_at_ms`, attempt not counted.
    Deferred { retry_at_ms: i64 },
}

/// A recipient's receipt for one of our messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// `ok`, `rejected`, `partial` (AppRec) or the FHIR response code mapped onto them.
    pub status: String,
    /// Error codes (AppRec `Error/@V`, FHIR OperationOutcome codes).
    pub codes: Vec<String>,
}

impl Ack {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// An incoming receipt to correlate with the outbox in the same transaction as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAck {
    /// The id of our message it answers.
    pub out_msg_id: String,
    pub ack: Ack,
    pub at_ms: i64,
}

/// Filter for listing outbox rows.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    pub state: Option<OutboxState>,
    pub message_id: Option<i64>,
    /// The row that sent the message with this id.
    pub out_msg_id: Option<String>,
    pub limit: i64,
    pub before_id: Option<i64>,
}

/// An alert to raise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAlert {
    /// `delivery.dead`, `delivery.nacked`, `delivery.no-receipt`, `routing.full`, …
    pub kind: String,
    pub unit_key: Option<String>,
    /// Plain text without patient data.
    pub reason: String,
    pub message_id: Option<i64>,
    pub outbox_id: Option<i64>,
    /// One open alert per key; raising it again while open does nothing.
    pub dedup_key: String,
}

/// The row an alert is about, for the alert constructors.
#[derive(Debug, Clone, Copy)]
pub struct AlertSubject<'a> {
    pub outbox_id: i64,
    pub message_id: i64,
    pub recipient: &'a str,
    pub purpose: &'a str,
}

impl NewAlert {
    /// A row that will not be delivered (refused, given up, or undeliverable from the start).
    pub fn dead(s: AlertSubject<'_>, why: &str) -> NewAlert {
        NewAlert {
            kind: "delivery.dead".into(),
            unit_key: Some(s.recipient.to_owned()),
            reason: format!("{} to {} {why}", s.purpose, s.recipient),
            message_id: Some(s.message_id),
            outbox_id: Some(s.outbox_id),
            dedup_key: format!("dead:{}", s.outbox_id),
        }
    }

    /// The recipient answered with a negative receipt.
    pub fn nacked(s: AlertSubject<'_>, ack: &Ack) -> NewAlert {
        NewAlert {
            kind: "delivery.nacked".into(),
            unit_key: Some(s.recipient.to_owned()),
            reason: format!(
                "{} answered the {} with a negative receipt ({}): {}",
                s.recipient,
                s.purpose,
                ack.status,
                if ack.codes.is_empty() {
                    "no error code".to_owned()
                } else {
                    ack.codes.join(", ")
                }
            ),
            message_id: Some(s.message_id),
            outbox_id: Some(s.outbox_id),
            dedup_key: format!("nacked:{}", s.outbox_id),
        }
    }

    /// The alert about `message_id` when it names no message yet (alerts planned before the
    /// message they concern was stored).
    pub fn with_message(&self, message_id: i64) -> NewAlert {
        let mut a = self.clone();
        a.message_id.get_or_insert(message_id);
        a
    }
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub id: i64,
    pub kind: String,
    pub unit_key: Option<String>,
    pub reason: String,
    pub message_id: Option<i64>,
    pub outbox_id: Option<i64>,
    pub raised_at: String,
    pub cleared_at: Option<String>,
}

/// Everything recorded with a message in the same transaction (only when it is stored as new;
/// a duplicate records nothing again).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effects {
    pub decision: Option<NewDecision>,
    pub route: Option<NewRoute>,
    pub outbox: Vec<NewOutbox>,
    /// For an incoming receipt: the outbox row it answers.
    pub ack: Option<NewAck>,
    pub alerts: Vec<NewAlert>,
    /// A stay opened by this message (a referral).
    pub stay: Option<super::stays::NewStay>,
    /// This message (from a unit) is queued for the stay tracker.
    pub stay_work: Option<super::stays::NewStayWork>,
}

/// A unit's own report of free beds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityReport {
    pub unit_key: String,
    pub free_beds: i64,
    pub reported_at: String,
    pub reported_ms: i64,
}
