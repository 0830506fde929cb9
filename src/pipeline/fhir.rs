//! The FHIR path through the pipeline: `$process-message` → check → store → response message.
//!
//! Same promise as the KITH path: the response leaves only after the message, its findings and
//! the response itself are committed; a duplicate (same sender and MessageHeader.id, same bytes)
//! gets the stored response back byte for byte. A known id with *different* content is not a
//! duplicate: it is stored on its own (without a dedup key) and answered `fatal-error`.

use std::sync::Arc;

use super::{now_datetime, Pipeline, PipelineError, Reply};
use crate::check::{party_key, Checker, Disposition, Mode};
use crate::fhir::check::{self as fhir_check, FhirOutcome};
use crate::fhir::encode::response_message;
use crate::fhir::mapping::ResponseCode;
use crate::fhir::validate::Options;
use crate::finding::{codes, Finding, Severity};
use crate::model::Body;
use crate::store::{Direction, IngestOutcome, NewMessage, NewReceipt};

/// Receipt status of an answer that is a bare OperationOutcome, not a response message.
pub const BARE_OUTCOME: &str = "outcome";

/// Content type of every FHIR answer.
pub const FHIR_JSON: &str = "application/fhir+json";

impl Pipeline {
    /// Check a FHIR body (validation is CPU work).
    async fn check_fhir(&self, bytes: Arc<Vec<u8>>) -> Result<FhirOutcome, PipelineError> {
        let rules = self.rules.clone();
        self.on_cpu(move || {
            let checker = Checker {
                rules: &rules,
                schemas: None,
                mode: Mode::Serve,
            };
            fhir_check::check(&checker, &bytes, &Options::default())
        })
        .await
    }

    /// Receive one FHIR message (a message Bundle, or Parameters with `content`) from `channel`.
    pub async fn ingest_fhir(&self, bytes: Vec<u8>, channel: &str) -> Result<Reply, PipelineError> {
        let bytes = Arc::new(bytes);
        let mut outcome = self.check_fhir(bytes.clone()).await?;
        if matches!(
            outcome.message.as_ref().map(|m| &m.body),
            Some(Body::Receipt(_))
        ) {
            let orig = outcome.report.response_to.clone();
            let found = match orig.as_deref() {
                Some(o) => self.store.find_sent(o.trim()).await?,
                None => None,
            };
            let ack = outcome
                .message
                .as_ref()
                .and_then(|m| super::ack_of(m, self.clock.now_ms()));
            let in_outbox = match &ack {
                Some(a) => self.is_ours(&a.out_msg_id).await?,
                None => false,
            };
            if found.is_none() && !in_outbox {
                outcome.findings.push(Finding::new(
                    codes::APPREC_UNCORRELATED,
                    Severity::Info,
                    "Bundle.entry[0].resource.response.identifier",
                    "the response answers no message kadgate sent",
                ));
            }
            // A broken response is answered with its OperationOutcome; a good one is only recorded.
            let answer = (outcome.disposition != Disposition::IncomingReceipt)
                .then(|| fhir_response(&outcome, &uuid::Uuid::new_v4().to_string()));
            let mut new = self.fhir_record(&outcome, &bytes, channel, found, answer);
            new.effects.ack = ack;
            return self.store_fhir(new, channel).await;
        }
        let (message, effects) = self
            .admit(
                outcome.disposition,
                outcome.message.take(),
                Some(bytes.clone()),
            )
            .await?;
        outcome.message = message;
        let response_id = uuid::Uuid::new_v4().to_string();
        let response = fhir_response(&outcome, &response_id);
        let mut new = self.fhir_record(&outcome, &bytes, channel, None, Some(response));
        new.effects = effects;
        let fresh = super::fresh_reply(&new);
        let first = self.commit(new).await?;
        if let IngestOutcome::Duplicate {
            content_sha256: Some(stored),
            ..
        } = &first
        {
            if outcome.content_key.as_ref() != Some(stored) {
                // The same id for a different message: answer it as an error of its own.
                outcome.findings.push(Finding::error(
                    codes::FHIR_MESSAGE_ID_REUSED,
                    "Bundle.entry[0].resource.id",
                    "this MessageHeader.id was already used by the same sender for a different message",
                ));
                outcome.disposition = Disposition::Rejected;
                outcome.response = Some(ResponseCode::FatalError);
                let response_id = uuid::Uuid::new_v4().to_string();
                let response = fhir_response(&outcome, &response_id);
                let mut new = self.fhir_record(&outcome, &bytes, channel, None, Some(response));
                new.dedup_key = None;
                return self.store_fhir(new, channel).await;
            }
        }
        Ok(super::reply_of(first, fresh, channel))
    }

    async fn store_fhir(&self, new: NewMessage, channel: &str) -> Result<Reply, PipelineError> {
        let fresh = super::fresh_reply(&new);
        let stored = self.commit(new).await?;
        Ok(super::reply_of(stored, fresh, channel))
    }

    fn fhir_record(
        &self,
        o: &FhirOutcome,
        bytes: &Arc<Vec<u8>>,
        channel: &str,
        correlates_to: Option<i64>,
        response: Option<NewReceipt>,
    ) -> NewMessage {
        // A good incoming response is recorded, not answered with a message: the answer is this
        // informational OperationOutcome, stored like every other answer (the findings are in the
        // store with the message).
        let reply_json = (o.disposition == Disposition::IncomingReceipt).then(|| {
            serde_json::json!({
                "resourceType": "OperationOutcome",
                "issue": [{
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": format!(
                        "response recorded ({} finding(s)); a response is never answered",
                        o.findings.len()
                    ),
                }]
            })
            .to_string()
        });
        NewMessage {
            received_at: self.received_at(),
            channel: channel.to_string(),
            direction: Direction::In,
            format: Some("fhir-r4".into()),
            msg_type: o.msg_type().map(str::to_string),
            msg_id: o.msg_id().map(str::to_string),
            sender_key: o.sender_key(),
            dedup_key: o.dedup_key(),
            status: o.disposition.as_str().to_string(),
            raw: bytes.as_ref().clone(),
            header_json: o
                .message
                .as_ref()
                .and_then(|m| serde_json::to_string(&m.header).ok()),
            body_json: None, // derived from `raw` when needed, as for KITH
            findings_json: serde_json::to_string(&o.findings).unwrap_or_else(|_| "[]".into()),
            correlates_to,
            receipts: response.into_iter().collect(),
            reply_json,
            content_sha256: o.content_key.clone(),
            effects: Default::default(),
        }
    }
}

/// The answer to a checked request: a response message when the request is a message we can
/// answer, else a bare OperationOutcome (status `fatal-error`).
fn fhir_response(o: &FhirOutcome, response_id: &str) -> NewReceipt {
    let outcome = (!o.findings.is_empty()).then(|| fhir_check::outcome(&o.findings));
    let (status, body) = match (o.response, o.message.as_ref()) {
        (Some(code), Some(m)) if !matches!(m.body, Body::Receipt(_)) => (
            code.as_str(),
            response_message(&m.header, code, outcome, &now_datetime(), response_id),
        ),
        // No response message can be built (or is due): the OperationOutcome alone.
        _ => (
            BARE_OUTCOME,
            outcome.unwrap_or_else(|| fhir_check::outcome(&o.findings)),
        ),
    };
    NewReceipt {
        receiver_key: o
            .answering
            .as_ref()
            .map(party_key)
            .unwrap_or_else(|| "-".into()),
        receipt_id: response_id.to_string(),
        status: status.to_string(),
        content_type: FHIR_JSON.into(),
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}
