//! The FHIR side of the check: what kadgate answers to one `$process-message` request.
//!
//! validate (R4 structure, Norwegian identifiers, patient identification) → decode into the
//! canonical model → addressing (is the receiver one of our organisations, can the sender be
//! identified) → the response code. Pure: no I/O, no clock, no ids; the pipeline stores the message
//! and builds the response message from this outcome.
//!
//! Invariant: a finding means the same here as on the KITH side, with the same code
//! (`header.*`, `patient.*`); FHIR-only problems have `fhir.*` / `json.*` codes.

use crate::check::{sender_key, Checker, Disposition};
use crate::fhir::mapping::ResponseCode;
use crate::fhir::validate::{message_bundle, validate_bytes, FhirReport, Options};
use crate::fhir::{decode, validate};
use crate::finding::{codes, Finding, Severity};
use crate::model::{Body, Message, Organisation};
use crate::store::content_sha256;

/// What the check found and what to answer.
#[derive(Debug)]
pub struct FhirOutcome {
    /// The validation report; its parsed `value` is dropped once the check is done.
    pub report: FhirReport,
    /// The decoded message; None when the body is no readable message Bundle.
    pub message: Option<Message>,
    /// Validation, decoding and addressing findings, in that order.
    pub findings: Vec<Finding>,
    pub disposition: Disposition,
    /// The code of the response message; None when no response message is sent (the body is not a
    /// message with a MessageHeader, or it is itself a response).
    pub response: Option<ResponseCode>,
    /// Which of our organisations answers (the addressed receiver), when it is ours.
    pub answering: Option<Organisation>,
    /// SHA-256 of the message Bundle in canonical JSON (keys sorted, no white space), so that a
    /// resend differing only in formatting, or sent bare instead of inside Parameters, is still
    /// recognised as the same message. None when the body is no JSON.
    pub content_key: Option<String>,
}

impl FhirOutcome {
    pub fn msg_id(&self) -> Option<&str> {
        self.report.message_id.as_deref()
    }
    pub fn msg_type(&self) -> Option<&str> {
        self.report.event_code.as_deref()
    }
    pub fn sender_key(&self) -> Option<String> {
        let m = self.message.as_ref()?;
        m.header.sender.as_ref().and_then(sender_key)
    }
    /// Sender + MessageHeader.id, as on the KITH side (FACTS §1: key on (sender, MessageHeader.id)).
    pub fn dedup_key(&self) -> Option<String> {
        Some(format!("{}|{}", self.sender_key()?, self.msg_id()?))
    }
}

/// Check one FHIR request body with the live configuration.
pub fn check(checker: &Checker<'_>, bytes: &[u8], opts: &Options) -> FhirOutcome {
    let mut report = validate_bytes(bytes, opts);
    let mut findings = std::mem::take(&mut report.findings);
    // The parsed body is only needed here: taken out of the report so that it is freed on this
    // (CPU pool) thread, where it was allocated, and not carried into the store path.
    let Some(value) = report.value.take() else {
        return unreadable(report, findings);
    };
    let value = &value;
    // `$process-message` also takes the message inside a Parameters resource (`content`).
    let bundle = message_bundle(value);
    if report.resource_type.as_deref() == Some("Parameters") && std::ptr::eq(bundle, value) {
        findings.push(Finding::error(
            codes::FHIR_NOT_A_MESSAGE,
            "Parameters",
            "a Parameters body must carry the message Bundle as parameter `content`",
        ));
        return unreadable(report, findings);
    }
    let is_message = bundle.get("resourceType").and_then(|v| v.as_str()) == Some("Bundle")
        && bundle.get("type").and_then(|v| v.as_str()) == Some("message");
    if !is_message {
        findings.push(Finding::error(
            codes::FHIR_NOT_A_MESSAGE,
            report.resource_type.clone().unwrap_or_default(),
            "$process-message takes a Bundle of type `message` whose first entry is a MessageHeader",
        ));
        return unreadable(report, findings);
    }
    let content_key = serde_json::to_vec(bundle)
        .ok()
        .map(|canonical| content_sha256(&canonical));
    let decoded = decode::decode(bundle);
    // The decoder notices some of what the validator already said (an unresolved reference): once.
    for f in decoded.findings {
        if !findings
            .iter()
            .any(|g| g.code == f.code && g.path == f.path)
        {
            findings.push(f);
        }
    }
    let Some(message) = decoded.message else {
        return unreadable(report, findings);
    };
    if report.message_id.is_none() {
        findings.push(Finding::error(
            codes::MSGID_MISSING,
            "Bundle.entry[0].resource.id",
            "the MessageHeader has no id, so the message cannot be identified or deduplicated",
        ));
    }

    // An incoming response answers something we sent: recorded, never answered with a message.
    // One with errors is not acknowledged as fine: the sender gets the OperationOutcome.
    if matches!(message.body, Body::Receipt(_)) {
        let broken = findings.iter().any(|f| f.severity == Severity::Error);
        return FhirOutcome {
            report,
            message: Some(message),
            findings,
            disposition: if broken {
                Disposition::Rejected
            } else {
                Disposition::IncomingReceipt
            },
            response: None,
            answering: None,
            content_key,
        };
    }
    // Without a MessageHeader.id there is nothing a response message could quote.
    if report.message_id.is_none() {
        return FhirOutcome {
            report,
            message: Some(message),
            findings,
            disposition: Disposition::Rejected,
            response: None,
            answering: None,
            content_key,
        };
    }

    let sender_ok = message
        .header
        .sender
        .as_ref()
        .is_some_and(Organisation::is_identifiable);
    if !sender_ok {
        findings.push(Finding::error(
            codes::SENDER_MISSING,
            "Bundle.entry[0].resource.sender",
            "the sender cannot be identified (MessageHeader.sender with a HER-id or organisation number)",
        ));
    }
    let answering = checker
        .targets(&message.header)
        .into_iter()
        .next()
        .map(|t| t.0);
    let mut disposition = Disposition::Accepted;
    if answering.is_none() {
        let addressed = message
            .header
            .receiver
            .as_ref()
            .is_some_and(Organisation::is_identifiable);
        findings.push(if addressed {
            Finding::error(
                codes::RECEIVER_NOT_OURS,
                "Bundle.entry[0].resource.destination",
                "no receiver of this message is one of our organisations",
            )
        } else {
            Finding::error(
                codes::RECEIVER_MISSING,
                "Bundle.entry[0].resource.destination",
                "the receiver cannot be identified (destination.receiver with a HER-id)",
            )
        });
        disposition = if addressed {
            Disposition::NotAddressed
        } else {
            Disposition::Rejected
        };
    }
    let fatal = findings.iter().any(|f| f.severity == Severity::Error);
    if fatal && disposition == Disposition::Accepted {
        disposition = Disposition::Rejected;
    }
    FhirOutcome {
        report,
        message: Some(message),
        findings,
        disposition,
        response: Some(if fatal {
            ResponseCode::FatalError
        } else {
            ResponseCode::Ok
        }),
        answering,
        content_key,
    }
}

fn unreadable(report: FhirReport, findings: Vec<Finding>) -> FhirOutcome {
    FhirOutcome {
        report,
        message: None,
        findings,
        disposition: Disposition::Unreadable,
        response: None,
        answering: None,
        content_key: None,
    }
}

/// The OperationOutcome for a list of findings (re-exported for the pipeline and the CLI).
pub fn outcome(findings: &[Finding]) -> serde_json::Value {
    validate::operation_outcome(findings)
}
