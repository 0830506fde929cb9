//! FHIR over HTTP: `POST /fhir/$process-message` and `GET /fhir/metadata`.
//!
//! Every answer is `application/fhir+json`: the response message (200, `ok` or `fatal-error`) once
//! the request is committed; a bare OperationOutcome when the body is no message at all (400, stored
//! as unreadable), when it is a message no response message can answer (422: no MessageHeader.id,
//! or an incoming response with errors), or for transport problems (413/415/400, nothing stored); 503 with a `transient`
//! OperationOutcome when the store is down (nothing acknowledged).
//!
//! Invariant: no patient data in URLs, logs or transport error bodies.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{reply_headers, take_body, AppState, Transport};
use crate::fhir::mapping::event;
use crate::fhir::validate::FINDING_SYSTEM;
use crate::pipeline::fhir::{BARE_OUTCOME, FHIR_JSON};
use crate::pipeline::Reply;

fn fhir_body(status: StatusCode, mut headers: HeaderMap, body: Vec<u8>) -> Response {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    (status, headers, body).into_response()
}

/// A transport-level problem as an OperationOutcome (nothing was stored).
fn transport_outcome(t: Transport) -> Response {
    let issue_type = match t.code {
        "transport.too-large" => "too-costly",
        "transport.content-type" => "not-supported",
        "transport.empty-body" => "required",
        "store.unavailable" => "transient",
        _ => "structure",
    };
    let oo = json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error",
            "code": issue_type,
            "details": { "coding": [{ "system": FINDING_SYSTEM, "code": t.code }] },
            "diagnostics": t.detail,
        }]
    });
    fhir_body(t.status, HeaderMap::new(), oo.to_string().into_bytes())
}

fn is_fhir_json(mime: &str) -> bool {
    matches!(
        mime,
        "application/fhir+json" | "application/json" | "application/json+fhir"
    )
}

pub(super) async fn process_message(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match take_body(
        body,
        &headers,
        is_fhir_json,
        "POST /fhir/$process-message takes Content-Type application/fhir+json",
        st.max_body_bytes,
    ) {
        Ok(b) => b,
        Err(t) => return transport_outcome(t),
    };
    match st.pipeline.ingest_fhir(body.to_vec(), "fhir").await {
        Ok(reply) => fhir_reply(reply),
        Err(e) => {
            tracing::error!(error = %e, "FHIR ingest failed");
            transport_outcome(Transport::store_unavailable())
        }
    }
}

/// The stored answer: the response message (or OperationOutcome) as committed.
fn fhir_reply(reply: Reply) -> Response {
    let headers = reply_headers(&reply);
    match reply.receipts.into_iter().next() {
        // A response message: 200 whether it says ok or fatal-error.
        Some(r) if r.status != BARE_OUTCOME => fhir_body(StatusCode::OK, headers, r.body),
        // An OperationOutcome alone: the body was no message (400) or one that cannot be answered
        // with a response message (422).
        Some(r) => {
            let status = if reply.status == "unreadable" {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            fhir_body(status, headers, r.body)
        }
        // An incoming response: recorded, answered with the stored informational OperationOutcome.
        None => fhir_body(
            StatusCode::OK,
            headers,
            reply.json.unwrap_or_default().into_bytes(),
        ),
    }
}

/// `GET /fhir/metadata`: what kadgate really supports.
pub(super) async fn metadata(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let cs = capability_statement(&format!("http://{host}/fhir/$process-message"));
    fhir_body(
        StatusCode::OK,
        HeaderMap::new(),
        cs.to_string().into_bytes(),
    )
}

/// When this CapabilityStatement last changed (its `date`).
const CAPABILITY_DATE: &str = "2026-11-25";

/// The CapabilityStatement for an endpoint address.
pub fn capability_statement(address: &str) -> Value {
    let definition = |code: &str| format!("http://example.org/kadgate/MessageDefinition/{code}");
    json!({
        "resourceType": "CapabilityStatement",
        "id": "kadgate",
        "status": "active",
        "date": CAPABILITY_DATE,
        "kind": "instance",
        "software": { "name": "kadgate", "version": env!("CARGO_PKG_VERSION") },
        "implementation": {
            "description": "kadgate: referrals to and epicrises from municipal acute inpatient (KAD) units; FHIR R4 messaging"
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Only the system-level $process-message operation (synchronous); no RESTful resource endpoints.",
            "operation": [{
                "name": "process-message",
                "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"
            }]
        }],
        "messaging": [{
            "endpoint": [{
                "protocol": {
                    "system": "http://terminology.hl7.org/CodeSystem/message-transport",
                    "code": "http"
                },
                "address": address
            }],
            // Every answered message stays in the store, so the duplicate cache never expires;
            // 525600 minutes (a year) is the promise made here.
            "reliableCache": 525600,
            "documentation": "A message with a MessageHeader.id already received from the same sender is not processed again: the stored response is returned byte for byte. The same id with different content is answered fatal-error. Responses: ok, or fatal-error with an OperationOutcome listing every finding (stable codes under urn:kadgate:finding).",
            "supportedMessage": [
                { "mode": "receiver", "definition": definition(event::REFERRAL) },
                { "mode": "receiver", "definition": definition(event::EPICRISIS) },
                { "mode": "receiver", "definition": definition(event::DIALOG) }
            ]
        }]
    })
}
