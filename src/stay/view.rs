//! A stay as the API and the CLI show it: its timeline, the admission decision, and every message
//! sent for it with its receipt status. Shows patient data: callers check access and record the
//! read in the audit log first ([`audited`]).

use serde::Serialize;

use super::doc::{StayDoc, TimelineEntry};
use crate::store::{NewAudit, OutboxFilter, StayRecord, Store, StoreError, StoredDecision};

/// One message sent for a stay.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub outbox_id: i64,
    /// The stored message it was made from.
    pub message_id: i64,
    pub purpose: String,
    pub recipient_key: String,
    pub recipient_name: Option<String>,
    /// `gp`, `referrer`, `home-nursing`, … for an epicrisis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub format: String,
    pub state: String,
    pub attempts: i64,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub acked_at: Option<String>,
    pub ack_status: Option<String>,
    pub ack_codes: Vec<String>,
    pub dead_reason: Option<String>,
    pub last_error: Option<String>,
}

/// A stay, whole.
#[derive(Debug, Clone, Serialize)]
pub struct StayView {
    pub id: i64,
    pub state: String,
    pub patient_nin: Option<String>,
    pub unit_key: Option<String>,
    pub unit_name: Option<String>,
    pub referrer_key: Option<String>,
    pub municipality: Option<String>,
    pub home_nursing: bool,
    pub referral_message_id: Option<i64>,
    /// The current admission decision (the last one: an override wins).
    pub decision: Option<StoredDecision>,
    pub referred_at: Option<String>,
    pub admitted_at: Option<String>,
    pub discharged_at: Option<String>,
    pub epicrisis_at: Option<String>,
    pub epicrisis_due_at: Option<String>,
    pub timeline: Vec<TimelineEntry>,
    pub deliveries: Vec<Delivery>,
}

fn ms_text(ms: Option<i64>) -> Option<String> {
    ms.map(crate::clock::rfc3339_ms)
}

/// Read everything about a stay.
pub async fn view(store: &dyn Store, rec: StayRecord) -> Result<StayView, StoreError> {
    let doc = StayDoc::from_json(&rec.doc_json);
    let decision = match rec.referral_message_id {
        Some(id) => store.decisions(id).await?.pop(),
        None => None,
    };
    let mut message_ids: Vec<i64> = rec.referral_message_id.into_iter().collect();
    for e in &doc.epicrises {
        if !message_ids.contains(&e.message_id) {
            message_ids.push(e.message_id);
        }
    }
    let mut deliveries = Vec::new();
    for id in message_ids {
        let rows = store
            .list_outbox(&OutboxFilter {
                message_id: Some(id),
                limit: 1000,
                ..OutboxFilter::default()
            })
            .await?;
        for r in rows {
            let role = doc
                .epicrises
                .iter()
                .flat_map(|e| e.sent_to.iter())
                .find(|s| s.out_msg_id == r.out_msg_id)
                .map(|s| s.role.clone());
            deliveries.push(Delivery {
                outbox_id: r.id,
                message_id: r.message_id,
                purpose: r.purpose,
                recipient_key: r.recipient_key,
                recipient_name: r.recipient_name,
                role,
                format: r.format,
                state: r.state.as_str().to_owned(),
                attempts: r.attempts,
                created_at: r.created_at,
                sent_at: ms_text(r.sent_ms),
                acked_at: ms_text(r.acked_ms),
                ack_status: r.ack_status,
                ack_codes: r.ack_codes,
                dead_reason: r.dead_reason,
                last_error: r.last_error,
            });
        }
    }
    deliveries.sort_by_key(|d| d.outbox_id);
    Ok(StayView {
        id: rec.id,
        state: rec.state,
        patient_nin: rec.patient_nin,
        unit_key: rec.unit_key,
        unit_name: doc.unit_name,
        referrer_key: doc.referrer_key,
        municipality: doc.municipality,
        home_nursing: doc.home_nursing,
        referral_message_id: rec.referral_message_id,
        decision,
        referred_at: doc.referred_at,
        admitted_at: doc.admitted_at,
        discharged_at: doc.discharged_at,
        epicrisis_at: doc.epicrisis_at,
        epicrisis_due_at: ms_text(rec.epicrisis_due_ms),
        timeline: doc.timeline,
        deliveries,
    })
}

/// What is being read.
pub enum Lookup<'a> {
    Patient(&'a str),
    Stay(i64),
}

/// Record the read in the audit log, then read. The audit entry is written first: a read that
/// cannot be recorded does not happen.
pub async fn audited(
    store: &dyn Store,
    actor: &str,
    lookup: Lookup<'_>,
    now: &str,
) -> Result<Vec<StayView>, StoreError> {
    let (action, subject) = match &lookup {
        Lookup::Patient(nin) => ("stays.search", format!("patient:{nin}")),
        Lookup::Stay(id) => ("stays.get", format!("stay:{id}")),
    };
    let records = match lookup {
        Lookup::Patient(nin) => store.stays_of_patient(nin, 100).await?,
        Lookup::Stay(id) => store.get_stay(id).await?.into_iter().collect(),
    };
    let ids: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
    store
        .record_audit(NewAudit {
            at: now.to_owned(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject,
            detail: format!("stays shown: [{}]", ids.join(", ")),
        })
        .await?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        out.push(view(store, r).await?);
    }
    Ok(out)
}
