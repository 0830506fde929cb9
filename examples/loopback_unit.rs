//! A loopback "unit system" for the end-to-end benchmark (`scripts/bench-e2e.sh`): it takes every
//! message kadgate delivers — a FHIR message on `/fhir/$process-message`, a KITH message on
//! `/kith` — and answers in the same exchange with a real receipt naming the message's id: a FHIR
//! response message (`ok`, written by kadgate's encoder) or an AppRec (status OK). It shares the
//! 2-core machine with kadgate, so it reads only what the receipt needs: for FHIR the first
//! entry's MessageHeader (a real unit system's full read happens on its own machine); KITH
//! messages are decoded in full. Messages it cannot read are answered 400.
//!
//!   usage: cargo run --release --example loopback_unit -- 127.0.0.1:PORT

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use kadgate::check::Rules;
use kadgate::kith::apprec::{self, AppRecSpec, ReceiverRole};
use kadgate::model::{Body, Format, Organisation, ReceiptStatus};

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// What the receipt needs from a FHIR message: the first entry's MessageHeader (serde skips
/// every other field without building it).
#[derive(serde::Deserialize)]
struct MessageBundle {
    entry: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    resource: Option<HeaderOnly>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeaderOnly {
    resource_type: String,
    id: Option<String>,
    event_coding: Option<EventCoding>,
}

#[derive(serde::Deserialize)]
struct EventCoding {
    code: Option<String>,
}

/// The response message for a FHIR message, or `None` when it is not one. The work is small
/// (tens of microseconds), so it runs on the runtime thread.
fn fhir_answer(body: &[u8]) -> Option<Vec<u8>> {
    let bundle: MessageBundle = serde_json::from_slice(body).ok()?;
    let mh = bundle.entry.into_iter().next()?.resource?;
    if mh.resource_type != "MessageHeader" {
        return None;
    }
    let mut header = kadgate::model::Header::new(Format::FhirR4, &mh.event_coding?.code?);
    header.msg_id = Some(mh.id?);
    let v = kadgate::fhir::encode::response_message(
        &header,
        kadgate::fhir::mapping::ResponseCode::Ok,
        None,
        &now(),
        &uuid::Uuid::new_v4().to_string(),
    );
    serde_json::to_vec(&v).ok()
}

async fn fhir(body: Bytes) -> Response {
    match fhir_answer(&body) {
        Some(b) => ([(header::CONTENT_TYPE, "application/fhir+json")], b).into_response(),
        None => (StatusCode::BAD_REQUEST, "unreadable").into_response(),
    }
}

async fn kith(State(rules): State<Arc<Rules>>, body: Bytes) -> Response {
    let answer = tokio::task::spawn_blocking(move || {
        let (msg, _) = kadgate::convert::read_message(&body, &rules).ok()?;
        if matches!(msg.body, Body::Receipt(_)) {
            return None;
        }
        let h = &msg.header;
        let empty = Organisation::default();
        let xml = apprec::encode(&AppRecSpec {
            version: Format::AppRec11,
            id: &uuid::Uuid::new_v4().to_string(),
            gen_date: &now(),
            from: h.receiver.as_ref().unwrap_or(&empty),
            from_role: ReceiverRole::Primary,
            to: h.sender.as_ref().unwrap_or(&empty),
            status: ReceiptStatus::Ok,
            errors: &[],
            original_msg_type: &h.msg_type,
            original_msg_type_text: h.msg_type_text.as_deref(),
            original_issue_date: &now(),
            original_msg_id: h.msg_id.as_deref().unwrap_or(""),
        });
        Some(xml.into_bytes())
    })
    .await
    .ok()
    .flatten();
    match answer {
        Some(b) => ([(header::CONTENT_TYPE, "application/xml")], b).into_response(),
        None => (StatusCode::BAD_REQUEST, "unreadable").into_response(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    let rules = Arc::new(Rules::from_config(&kadgate::config::Config::demo()));
    let app = Router::new()
        .route("/fhir/$process-message", post(fhir))
        .route("/kith", post(kith))
        .with_state(rules);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("loopback unit system on {addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
