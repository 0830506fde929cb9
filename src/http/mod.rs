//! The HTTP API (axum on hyper).
//!
//! - `POST /kith`: one KITH message → after the durable commit, 200 with the AppRec (several AppRecs
//!   as `multipart/mixed`), 202 JSON when the message is for nobody we serve, 422 JSON when it is
//!   stored but cannot be answered with an AppRec, 200 JSON for an incoming AppRec.
//!   Transport problems (empty body, too large, wrong content type) → 4xx `application/problem+json`,
//!   nothing stored.
//! - `POST /fhir/$process-message`, `GET /fhir/metadata`: FHIR R4 messaging (see [`fhir`]).
//! - `GET /healthz` (process up), `GET /readyz` (store open, schemas loaded, listener bound).
//! - `GET /api/messages`, `GET /api/messages/{id}`: metadata and findings, never patient data.
//! - Admission and delivery: referrals' decisions and overrides, the outbox, alerts, units'
//!   capacity (see [`api`]).
//!
//! Invariant: no patient data in URLs, logs or problem bodies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

mod api;
mod fhir;

use crate::pipeline::{Pipeline, Reply};
use crate::store::{Direction, ListFilter};

/// Shared state of the HTTP service.
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    /// Set once the listener is bound.
    pub listening: AtomicBool,
    pub max_body_bytes: usize,
    /// `[api] operator_token`: needed for overrides, retries, capacity reports and clinical reads.
    pub operator_token: Option<String>,
}

/// An RFC 9457 problem body.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
}

fn problem(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Response {
    let body = Problem {
        kind: format!("urn:kadgate:problem:{code}"),
        title,
        status: status.as_u16(),
        detail: detail.into(),
        code,
    };
    let mut r = (status, serde_json::to_string(&body).expect("serialisable")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    r
}

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/kith", post(post_kith))
        .route("/fhir/$process-message", post(fhir::process_message))
        .route("/fhir/metadata", get(fhir::metadata))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/messages", get(list_messages))
        .route("/api/messages/{id}", get(get_message))
        .route("/api/referrals/{id}", get(api::get_referral))
        .route("/api/referrals/{id}/decision", post(api::override_decision))
        .route("/api/outbox", get(api::list_outbox))
        .route("/api/outbox/{id}/retry", post(api::retry_outbox))
        .route("/api/alerts", get(api::list_alerts))
        .route("/api/units", get(api::list_units))
        .route("/api/stays/search", post(api::search_stays))
        .route("/api/stays/{id}", get(api::get_stay))
        .route("/api/audit", get(api::audit_log))
        .route(
            "/api/units/{her}/capacity",
            axum::routing::put(api::report_capacity),
        )
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A problem with the request itself: nothing was stored. Each API renders it its own way
/// (`application/problem+json` for `/kith`, an OperationOutcome for FHIR).
pub(crate) struct Transport {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
}

impl Transport {
    fn problem(self) -> Response {
        problem(self.status, self.code, self.title, self.detail)
    }

    /// The store could not take the message: nothing was acknowledged.
    fn store_unavailable() -> Self {
        Transport {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "store.unavailable",
            title: "Not stored",
            detail: "the message could not be stored; nothing was acknowledged, send it again"
                .into(),
        }
    }
}

/// The media type of a request, lower-case, without parameters.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_xml(mime: &str) -> bool {
    mime == "application/xml"
        || mime == "text/xml"
        || (mime.starts_with("application/") && mime.ends_with("+xml"))
}

/// The body of a POST that carries one message, or why it cannot be taken: unreadable or over the
/// cap, a media type `accepts` refuses (`expected` says what to send), empty.
fn take_body(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    headers: &HeaderMap,
    accepts: fn(&str) -> bool,
    expected: &str,
    max_body_bytes: usize,
) -> Result<Bytes, Transport> {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(Transport {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "transport.too-large",
                title: "Message too large",
                detail: format!(
                    "the body exceeds the limit of {max_body_bytes} bytes; nothing was stored"
                ),
            })
        }
        Err(e) => {
            return Err(Transport {
                status: e.status(),
                code: "transport.body-unreadable",
                title: "Body could not be read",
                detail: "the request body could not be read; nothing was stored".into(),
            })
        }
    };
    if !accepts(&media_type(headers)) {
        return Err(Transport {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "transport.content-type",
            title: "Wrong content type",
            detail: format!("{expected}; nothing was stored"),
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Transport {
            status: StatusCode::BAD_REQUEST,
            code: "transport.empty-body",
            title: "Empty body",
            detail: "the request body is empty; nothing was stored".into(),
        });
    }
    Ok(body)
}

async fn post_kith(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match take_body(
        body,
        &headers,
        is_xml,
        "POST /kith takes one XML message with Content-Type application/xml or text/xml",
        st.max_body_bytes,
    ) {
        Ok(b) => b,
        Err(t) => return t.problem(),
    };
    match st.pipeline.ingest_kith(body.to_vec(), "http").await {
        Ok(reply) => reply_response(reply),
        Err(e) => {
            tracing::error!(error = %e, "ingest failed");
            Transport::store_unavailable().problem()
        }
    }
}

/// The headers every stored answer carries: the stored message's id, whether this was a duplicate,
/// and the status at the door.
fn reply_headers(reply: &Reply) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-kadgate-message-id", HeaderValue::from(reply.message_id));
    headers.insert(
        "x-kadgate-duplicate",
        HeaderValue::from_static(if reply.duplicate { "true" } else { "false" }),
    );
    if let Ok(v) = HeaderValue::from_str(&reply.status) {
        headers.insert("x-kadgate-status", v);
    }
    headers
}

/// Turn a pipeline reply into the HTTP answer.
pub fn reply_response(reply: Reply) -> Response {
    let mut headers = reply_headers(&reply);
    if reply.receipts.len() == 1 {
        let r = &reply.receipts[0];
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&r.content_type)
                .unwrap_or(HeaderValue::from_static("application/xml")),
        );
        return (StatusCode::OK, headers, r.body.clone()).into_response();
    }
    if reply.receipts.len() > 1 {
        let boundary = format!("kadgate-{}", reply.message_id);
        let mut body = Vec::new();
        for r in &reply.receipts {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Type: {}\r\nX-Kadgate-Receiver: {}\r\n\r\n",
                    r.content_type, r.receiver_key
                )
                .as_bytes(),
            );
            body.extend_from_slice(&r.body);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}")).expect("ascii"),
        );
        return (StatusCode::OK, headers, body).into_response();
    }
    let status = match reply.status.as_str() {
        "not-addressed" => StatusCode::ACCEPTED,
        "receipt" => StatusCode::OK,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let json = reply.json.unwrap_or_else(|| "{}".into());
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap_or(serde_json::json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("message_id".into(), reply.message_id.into());
        o.insert("duplicate".into(), reply.duplicate.into());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (status, headers, v.to_string()).into_response()
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    store: bool,
    schemas: bool,
    listening: bool,
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let store = st.pipeline.store().ping().await.is_ok();
    let schemas = st.pipeline.schemas_loaded();
    let listening = st.listening.load(Ordering::SeqCst);
    let r = Readiness {
        ready: store && schemas && listening,
        store,
        schemas,
        listening,
    };
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r)).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    direction: Option<String>,
    limit: Option<i64>,
    before: Option<i64>,
}

async fn list_messages(State(st): State<Arc<AppState>>, Query(q): Query<ListQuery>) -> Response {
    let direction = match q.direction.as_deref() {
        None => None,
        Some("in") => Some(Direction::In),
        Some("out") => Some(Direction::Out),
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "api.bad-query",
                "Bad query",
                "direction must be in or out",
            )
        }
    };
    let filter = ListFilter {
        status: q.status,
        direction,
        limit: q.limit.unwrap_or(50).clamp(1, 500),
        before_id: q.before,
    };
    match st.pipeline.store().list(&filter).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "store.unavailable",
            "Store unavailable",
            e.to_string(),
        ),
    }
}

async fn get_message(State(st): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    match st.pipeline.store().get(id).await {
        Ok(Some(m)) => {
            let findings: serde_json::Value =
                serde_json::from_str(&m.findings_json).unwrap_or_default();
            let receipts: Vec<serde_json::Value> = m
                .receipts
                .iter()
                .map(|r| serde_json::json!({"receiver": r.receiver_key, "receipt_id": r.receipt_id, "status": r.status}))
                .collect();
            Json(serde_json::json!({"message": m.summary, "findings": findings, "receipts": receipts})).into_response()
        }
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "api.not-found",
            "No such message",
            format!("no message with id {id}"),
        ),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "store.unavailable",
            "Store unavailable",
            e.to_string(),
        ),
    }
}
