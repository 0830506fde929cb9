//! The operations and clinical API around admission and delivery.
//!
//! - `GET /api/referrals/{id}`: a referral's decisions (the gateway's and every override), its
//!   routing and its outbox rows (no bodies). Operator token required: reasons and notes are
//!   clinical.
//! - `POST /api/referrals/{id}/decision` `{"decision", "by", "note"?}`: a KAD doctor's override,
//!   recorded after the earlier decisions, with a new business reply to the referrer. Token.
//! - `GET /api/outbox?state=&message_id=&limit=&before=`: outbox rows (metadata only).
//! - `POST /api/outbox/{id}/retry`: put a dead or rejected row back in the queue. Token.
//! - `GET /api/alerts?all=true`: open alerts (all with `all=true`); reasons hold no patient data.
//! - `GET /api/units`: the KAD units with beds, beds held and their own latest report.
//! - `PUT /api/units/{her}/capacity` `{"free_beds"}`: a unit's own report of free beds. Token.
//! - `POST /api/stays/search` `{"patient"}`: a patient's stays, with timelines and where each
//!   message went (who, when, format, receipt). Token; every read recorded in the audit log.
//! - `GET /api/stays/{id}`: one stay. Token; audited.
//! - `GET /api/audit?limit=`: the audit log of reads of patient data. Token.
//!
//! The token is `[api] operator_token` from the config, sent as `Authorization: Bearer …`; with no
//! token configured the endpoints that need one answer 403. Invariant: no patient data in URLs
//! (ids only) and none in problem bodies.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{problem, AppState};
use crate::rules::DecisionKind;
use crate::store::{CapacityReport, OutboxFilter, OutboxState, StoreError};

fn unavailable(e: StoreError) -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "store.unavailable",
        "Store unavailable",
        e.to_string(),
    )
}

fn directory_unavailable(e: crate::registry::RegistryError) -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "registry.unavailable",
        "Directory unavailable",
        e.to_string(),
    )
}

fn conflict(code: &str, title: &str, detail: impl Into<String>) -> Response {
    problem(StatusCode::CONFLICT, code, title, detail)
}

fn not_found(what: &str, id: impl std::fmt::Display) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "api.not-found",
        "Not found",
        format!("no {what} with id {id}"),
    )
}

/// The request's JSON body, or a 400 saying why it cannot be read.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| Box::new(bad_request(format!("body: {e}"))))
}

fn bad_request(detail: impl Into<String>) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "api.bad-request",
        "Bad request",
        detail,
    )
}

/// `Err(response)` unless the request carries the configured operator token.
fn authorise(st: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(want) = st.operator_token.as_deref() else {
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "api.no-token-configured",
            "Forbidden",
            "this endpoint needs [api] operator_token in the configuration",
        )));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Compare without an early exit on the first differing byte.
    let ok = given.is_some_and(|g| {
        g.len() == want.len()
            && g.bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        Ok(())
    } else {
        Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "api.unauthorised",
            "Unauthorised",
            "a valid operator token is required (Authorization: Bearer …)",
        )))
    }
}

pub(super) async fn get_referral(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(r) = authorise(&st, &headers) {
        return *r;
    }
    let store = st.pipeline.store();
    let summary = match store.get(id).await {
        Ok(Some(m)) => m.summary,
        Ok(None) => return not_found("message", id),
        Err(e) => return unavailable(e),
    };
    let filter = OutboxFilter {
        message_id: Some(id),
        limit: 100,
        ..OutboxFilter::default()
    };
    let (decisions, routes, outbox) = match tokio::try_join!(
        store.decisions(id),
        store.routes(id),
        store.list_outbox(&filter)
    ) {
        Ok(v) => v,
        Err(e) => return unavailable(e),
    };
    Json(serde_json::json!({
        "message": summary,
        "decision": decisions.last().map(|d| d.decision.decision.clone()),
        "decisions": decisions,
        "routes": routes,
        "outbox": outbox,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    decision: String,
    /// Who decides (role and name of the KAD doctor).
    by: String,
    note: Option<String>,
}

pub(super) async fn override_decision(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorise(&st, &headers) {
        return *r;
    }
    let req: OverrideBody = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let kind = match req.decision.as_str() {
        "accepted" => DecisionKind::Accepted,
        "needs-review" => DecisionKind::NeedsReview,
        "not-accepted" => DecisionKind::NotAccepted,
        "incomplete" => DecisionKind::Incomplete,
        _ => {
            return bad_request(
                "decision must be accepted, needs-review, not-accepted or incomplete",
            )
        }
    };
    if req.by.trim().is_empty() {
        return bad_request("`by` must name who decides");
    }
    let pipeline = st.pipeline.clone();
    let Some(admission) = pipeline.admission().cloned() else {
        return conflict(
            "api.admission-off",
            "Admission is off",
            "this gateway does not decide referrals ([admission] enabled = false)",
        );
    };
    let store = pipeline.store();
    let stored = match store.get(id).await {
        Ok(Some(m)) => m,
        Ok(None) => return not_found("message", id),
        Err(e) => return unavailable(e),
    };
    let (decisions, routes) = match tokio::try_join!(store.decisions(id), store.routes(id)) {
        Ok(v) => v,
        Err(e) => return unavailable(e),
    };
    let Some(previous) = decisions.last() else {
        return conflict(
            "api.not-decided",
            "Not a decided referral",
            format!("message {id} has no admission decision to override"),
        );
    };
    let rules = pipeline.rules.clone();
    let raw = stored.raw;
    let msg = match pipeline
        .on_cpu(move || crate::convert::read_message(&raw, &rules))
        .await
    {
        Ok(Ok((m, _))) => m,
        _ => {
            return conflict(
                "api.unreadable",
                "Unreadable",
                format!("message {id} can no longer be read"),
            )
        }
    };
    let effects = match admission
        .plan_override(
            &msg,
            &previous.decision,
            kind,
            req.by.trim(),
            req.note.as_deref(),
            routes.last().map(|r| &r.route),
            decisions.len() + 1,
        )
        .await
    {
        Ok(e) => e,
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "admission.failed",
                "Override not recorded",
                e.to_string(),
            )
        }
    };
    let reply_id = effects.outbox.first().map(|o| o.out_msg_id.clone());
    if let Err(e) = store.record_effects(id, effects).await {
        return unavailable(e);
    }
    pipeline.wake().notify_one();
    tracing::info!(
        message_id = id,
        decision = kind.word(),
        "decision overridden"
    );
    (
        StatusCode::CREATED,
        Json(serde_json::json!({
            "message_id": id,
            "decision": kind.word(),
            "source": "override",
            "reply_msg_id": reply_id,
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct OutboxQuery {
    state: Option<String>,
    message_id: Option<i64>,
    limit: Option<i64>,
    before: Option<i64>,
}

pub(super) async fn list_outbox(
    State(st): State<Arc<AppState>>,
    Query(q): Query<OutboxQuery>,
) -> Response {
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => match OutboxState::parse(s) {
            Some(s) => Some(s),
            None => {
                return bad_request("state must be pending, sent, acked, nacked or dead");
            }
        },
    };
    let filter = OutboxFilter {
        state,
        message_id: q.message_id,
        out_msg_id: None,
        limit: q.limit.unwrap_or(50).clamp(1, 500),
        before_id: q.before,
    };
    match st.pipeline.store().list_outbox(&filter).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => unavailable(e),
    }
}

pub(super) async fn retry_outbox(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(r) = authorise(&st, &headers) {
        return *r;
    }
    let store = st.pipeline.store();
    match store.retry_outbox(id, st.pipeline.clock().now_ms()).await {
        Ok(true) => {
            st.pipeline.wake().notify_one();
            tracing::info!(
                outbox_id = id,
                "outbox row put back in the queue by an operator"
            );
            Json(serde_json::json!({"outbox_id": id, "state": "pending"})).into_response()
        }
        Ok(false) => match store.get_outbox(id).await {
            Ok(Some(row)) => conflict(
                "api.not-retryable",
                "Not retryable",
                format!(
                    "outbox row {id} is {}; only dead or rejected rows are retried",
                    row.state.as_str()
                ),
            ),
            Ok(None) => not_found("outbox row", id),
            Err(e) => unavailable(e),
        },
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
pub(super) struct AlertQuery {
    all: Option<bool>,
    limit: Option<i64>,
}

pub(super) async fn list_alerts(
    State(st): State<Arc<AppState>>,
    Query(q): Query<AlertQuery>,
) -> Response {
    let open_only = !q.all.unwrap_or(false);
    match st
        .pipeline
        .store()
        .alerts(open_only, q.limit.unwrap_or(100))
        .await
    {
        Ok(v) => Json(v).into_response(),
        Err(e) => unavailable(e),
    }
}

pub(super) async fn list_units(State(st): State<Arc<AppState>>) -> Response {
    let Some(adm) = st.pipeline.admission() else {
        return Json(serde_json::json!([])).into_response();
    };
    let store = st.pipeline.store();
    let (held, reports) = match tokio::try_join!(store.beds_held(), store.capacity_reports()) {
        Ok(v) => v,
        Err(e) => return unavailable(e),
    };
    let units = match adm.directory().kad_units().await {
        Ok(u) => u,
        Err(e) => return directory_unavailable(e),
    };
    let out: Vec<serde_json::Value> = units
        .iter()
        .map(|u| {
            let key = crate::admission::unit_key(&u.party.her_id);
            let held = held
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            let report = reports.iter().find(|r| r.unit_key == key);
            serde_json::json!({
                "unit": key,
                "name": u.party.name,
                "municipalities": u.municipalities,
                "beds": u.beds,
                "beds_held": held,
                "reported_free": report.map(|r| r.free_beds),
                "reported_at": report.map(|r| r.reported_at.clone()),
                "alternative": u.alternative,
            })
        })
        .collect();
    Json(out).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CapacityBody {
    free_beds: i64,
}

pub(super) async fn report_capacity(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(her): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorise(&st, &headers) {
        return *r;
    }
    let req: CapacityBody = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if req.free_beds < 0 {
        return bad_request("free_beds must not be negative");
    }
    let Some(adm) = st.pipeline.admission() else {
        return not_found("unit", her);
    };
    match adm.directory().kad_unit(&her).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found("KAD unit", her),
        Err(e) => return directory_unavailable(e),
    }
    // On the pipeline's clock: the admission judges a report's age by the same one.
    let now_ms = st.pipeline.clock().now_ms();
    let report = CapacityReport {
        unit_key: crate::admission::unit_key(&her),
        free_beds: req.free_beds,
        reported_at: chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        reported_ms: now_ms,
    };
    match st.pipeline.store().report_capacity(report).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => unavailable(e),
    }
}

/// Who is reading, for the audit log: the operator token, and the name the client gives in
/// `X-Kadgate-Actor` (until user accounts exist).
fn actor(headers: &HeaderMap) -> String {
    let named = headers
        .get("x-kadgate-actor")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().chars().take(80).collect::<String>())
        .filter(|s| !s.is_empty());
    match named {
        Some(n) => format!("api:operator-token ({n})"),
        None => "api:operator-token".into(),
    }
}

fn stays_response(r: Result<Vec<crate::stay::view::StayView>, StoreError>) -> Response {
    match r {
        Ok(stays) => Json(serde_json::json!({ "stays": stays })).into_response(),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaySearch {
    /// The patient's national identity number (in the body: never in a URL).
    patient: String,
}

/// `POST /api/stays/search` `{"patient"}`: a patient's stays, each with its timeline and where
/// every message went. Token; every read is recorded in the audit log.
pub(super) async fn search_stays(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorise(&st, &headers) {
        return *r;
    }
    // Not `json_body`: a parser error may quote the value, and the value is an identity number.
    let q: StaySearch = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(_) => return bad_request("expected {\"patient\": \"<national identity number>\"}"),
    };
    let nin = q.patient.trim();
    if crate::ident::parse_person_number(nin).is_err() {
        return bad_request(
            "patient is not a valid national identity number (11 digits, check digits)",
        );
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let store = st.pipeline.store();
    stays_response(
        crate::stay::view::audited(
            store.as_ref(),
            &actor(&headers),
            crate::stay::view::Lookup::Patient(nin),
            &now,
        )
        .await,
    )
}

/// `GET /api/stays/{id}`: one stay. Token; audited.
pub(super) async fn get_stay(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(r) = authorise(&st, &headers) {
        return *r;
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let store = st.pipeline.store();
    match crate::stay::view::audited(
        store.as_ref(),
        &actor(&headers),
        crate::stay::view::Lookup::Stay(id),
        &now,
    )
    .await
    {
        Ok(mut v) => match v.pop() {
            Some(s) => Json(s).into_response(),
            None => not_found("stay", id),
        },
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    limit: Option<i64>,
}

/// `GET /api/audit?limit=`: the audit log of reads of patient data, newest first. Token.
pub(super) async fn audit_log(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    if let Err(r) = authorise(&st, &headers) {
        return *r;
    }
    match st.pipeline.store().audit_log(q.limit.unwrap_or(100)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => unavailable(e),
    }
}
