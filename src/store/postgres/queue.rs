//! SQL for decisions, routes, the outbox, alerts and capacity reports (PostgreSQL), with the same
//! semantics as `sqlite_queue`. Called by [`super::PgStore`]: writes run inside one of its
//! transactions, reads on a pooled connection. Unlike SQLite there is no single writer: several
//! instances run these at once, so rows are locked where a decision depends on them (`FOR UPDATE`,
//! `SKIP LOCKED` for leases) and inserts of one order key are serialised by an advisory lock.
//! Same rules as the rest of the store: no row data in errors or logs.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{exec, opt_row, opt_text, rows, text, Fail, Res};
use crate::store::queue::{
    Ack, AlertSubject, Attempt, CapacityReport, DecisionSource, Effects, NewAck, NewAlert,
    NewDecision, NewOutbox, NewRoute, OutboxFilter, OutboxRow, OutboxState, StoredAlert,
    StoredDecision, StoredRoute,
};

/// Advisory lock class (first `int4` key) for the order-key locks; the second key is the
/// order key's `hashtext`.
const ORDER_LOCK_CLASS: i32 = 0x6b61_6467;

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn from_json(s: Option<String>) -> Vec<String> {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Record what goes with a newly stored message (or an override of it).
pub(super) async fn insert_effects<C: GenericClient>(
    c: &C,
    message_id: i64,
    effects: &Effects,
) -> Res<()> {
    if let Some(d) = &effects.decision {
        insert_decision(c, message_id, d).await?;
    }
    if let Some(r) = &effects.route {
        insert_route(c, message_id, r).await?;
    }
    if !effects.outbox.is_empty() {
        lock_order_keys(c, &effects.outbox).await?;
        for o in &effects.outbox {
            insert_outbox(c, message_id, o).await?;
        }
    }
    if let Some(a) = &effects.ack {
        apply_ack(c, a, message_id).await?;
    }
    for a in &effects.alerts {
        raise_alert(c, &a.with_message(message_id)).await?;
    }
    if let Some(s) = &effects.stay {
        super::stays::insert_stay(c, message_id, s).await?;
    }
    if let Some(w) = &effects.stay_work {
        super::stays::insert_work(c, message_id, w).await?;
    }
    Ok(())
}

/// Hold the order keys' advisory locks until the transaction ends, taken in a fixed order, so
/// that rows of one key get their ids in commit order.
pub(super) async fn lock_order_keys<C: GenericClient>(c: &C, outbox: &[NewOutbox]) -> Res<()> {
    let mut keys: Vec<&str> = outbox.iter().map(|o| o.order_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        exec(
            c,
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&ORDER_LOCK_CLASS, &text(key)],
        )
        .await?;
    }
    Ok(())
}

async fn insert_decision<C: GenericClient>(c: &C, message_id: i64, d: &NewDecision) -> Res<()> {
    exec(
        c,
        "INSERT INTO decisions (message_id, decided_at, decision, source, decided_by, note, \
         ruleset_id, ruleset_version, news2, rules_json, reasons_no_json, reasons_en_json) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &message_id,
            &d.decided_at,
            &d.decision,
            &d.source.as_str(),
            &opt_text(&d.decided_by),
            &opt_text(&d.note),
            &d.ruleset_id,
            &d.ruleset_version,
            &d.news2,
            &json(&d.rules),
            &json(&d.reasons_no),
            &json(&d.reasons_en),
        ],
    )
    .await?;
    // A bed is held while the current decision is `accepted`.
    exec(
        c,
        "UPDATE routes SET holds_bed = $2 WHERE message_id = $1",
        &[&message_id, &(d.decision == "accepted")],
    )
    .await?;
    Ok(())
}

async fn insert_route<C: GenericClient>(c: &C, message_id: i64, r: &NewRoute) -> Res<()> {
    exec(
        c,
        "INSERT INTO routes (message_id, routed_at, code, unit_key, unit_name, municipality, \
         municipality_source, full_unit, diverted_from, reason_en, reason_no, holds_bed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &message_id,
            &r.routed_at,
            &r.code,
            &r.unit_key,
            &r.unit_name,
            &r.municipality,
            &r.municipality_source,
            &r.full,
            &r.diverted_from,
            &r.reason_en,
            &r.reason_no,
            &r.holds_bed,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn insert_outbox<C: GenericClient>(
    c: &C,
    message_id: i64,
    o: &NewOutbox,
) -> Res<()> {
    let state = if o.dead_reason.is_some() {
        OutboxState::Dead
    } else {
        OutboxState::Pending
    };
    let row = rows(
        c,
        "INSERT INTO outbox (message_id, purpose, recipient_key, recipient_name, order_key, \
         destination, endpoint_json, format, content_type, body, out_msg_id, state, attempts, \
         created_at, created_ms, next_attempt_ms, ack_within_ms, dead_reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13, $14, $14, $15, $16) \
         RETURNING id",
        &[
            &message_id,
            &o.purpose,
            &o.recipient_key,
            &o.recipient_name,
            &text(&o.order_key),
            &o.destination,
            &o.endpoint_json,
            &o.format,
            &o.content_type,
            &o.body,
            &text(&o.out_msg_id),
            &state.as_str(),
            &o.created_at,
            &o.created_ms,
            &o.ack_within_ms,
            &o.dead_reason,
        ],
    )
    .await?;
    let id: i64 = match row.first() {
        Some(r) => r.try_get(0)?,
        None => return Err(Fail::Data("outbox insert returned no id")),
    };
    if let Some(reason) = &o.dead_reason {
        let subject = AlertSubject {
            outbox_id: id,
            message_id,
            recipient: &o.recipient_key,
            purpose: &o.purpose,
        };
        raise_alert(
            c,
            &NewAlert::dead(subject, &format!("cannot be delivered: {reason}")),
        )
        .await?;
    }
    Ok(())
}

/// Raise an alert unless one with the same key is open.
pub(super) async fn raise_alert<C: GenericClient>(c: &C, a: &NewAlert) -> Res<()> {
    // Reasons quote keys and error texts, unit keys and dedup keys carry identifiers, that may come
    // from outside (no U+0000 in PostgreSQL text).
    exec(
        c,
        "INSERT INTO alerts (kind, unit_key, reason, message_id, outbox_id, raised_at, dedup_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dedup_key) DO NOTHING",
        &[
            &text(&a.kind),
            &opt_text(&a.unit_key),
            &text(&a.reason),
            &a.message_id,
            &a.outbox_id,
            &now_text(),
            &text(&a.dedup_key),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn clear_alert<C: GenericClient>(c: &C, dedup_key: &str) -> Res<()> {
    exec(
        c,
        "UPDATE alerts SET cleared_at = $2, dedup_key = NULL WHERE dedup_key = $1",
        &[&text(dedup_key), &now_text()],
    )
    .await?;
    Ok(())
}

/// Correlate an incoming receipt with the outbox row of the message it answers (the row is
/// acknowledged even when the delivery attempt's own result is not recorded yet). The row is
/// locked, so a worker recording its attempt at the same time waits and then finds it answered.
async fn apply_ack<C: GenericClient>(c: &C, a: &NewAck, ack_message_id: i64) -> Res<()> {
    let row = opt_row(
        c,
        "SELECT id, recipient_key, purpose, message_id FROM outbox \
         WHERE out_msg_id = $1 AND state IN ('pending', 'sent') FOR UPDATE",
        &[&text(&a.out_msg_id)],
    )
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let (id, recipient, purpose, message_id): (i64, String, String, i64) = (
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    );
    set_answered(c, id, &a.ack, a.at_ms, Some(ack_message_id)).await?;
    if !a.ack.is_ok() {
        let subject = AlertSubject {
            outbox_id: id,
            message_id,
            recipient: &recipient,
            purpose: &purpose,
        };
        raise_alert(c, &NewAlert::nacked(subject, &a.ack)).await?;
    }
    Ok(())
}

async fn set_answered<C: GenericClient>(
    c: &C,
    id: i64,
    ack: &Ack,
    at_ms: i64,
    ack_message_id: Option<i64>,
) -> Res<()> {
    let state = if ack.is_ok() {
        OutboxState::Acked
    } else {
        OutboxState::Nacked
    };
    exec(
        c,
        "UPDATE outbox SET state = $2, acked_ms = $3, sent_ms = COALESCE(sent_ms, $3), \
         ack_status = $4, ack_codes_json = $5, ack_message_id = $6, lease_owner = NULL, \
         lease_until_ms = NULL WHERE id = $1",
        &[
            &id,
            &state.as_str(),
            &at_ms,
            &text(&ack.status),
            &json(&ack.codes),
            &ack_message_id,
        ],
    )
    .await?;
    clear_alert(c, &format!("no-receipt:{id}")).await
}

/// The outbox columns, from alias `o`, in the order [`outbox_from_row`] reads them.
const OUTBOX_COLS: &str = "o.id, o.message_id, o.purpose, o.recipient_key, o.recipient_name, \
    o.order_key, o.destination, o.endpoint_json, o.format, o.content_type, o.body, o.out_msg_id, \
    o.state, o.attempts, o.created_at, o.created_ms, o.next_attempt_ms, o.last_error, o.sent_ms, \
    o.ack_deadline_ms, o.acked_ms, o.ack_status, o.ack_codes_json, o.ack_message_id, \
    o.dead_reason, o.ack_within_ms";

fn outbox_from_row(r: &Row) -> Res<OutboxRow> {
    let state = OutboxState::parse(r.try_get::<_, &str>(12)?)
        .ok_or(Fail::Data("invalid state in outbox row"))?;
    Ok(OutboxRow {
        id: r.try_get(0)?,
        message_id: r.try_get(1)?,
        purpose: r.try_get(2)?,
        recipient_key: r.try_get(3)?,
        recipient_name: r.try_get(4)?,
        order_key: r.try_get(5)?,
        destination: r.try_get(6)?,
        endpoint_json: r.try_get(7)?,
        format: r.try_get(8)?,
        content_type: r.try_get(9)?,
        body: r.try_get(10)?,
        out_msg_id: r.try_get(11)?,
        state,
        attempts: r.try_get(13)?,
        created_at: r.try_get(14)?,
        created_ms: r.try_get(15)?,
        next_attempt_ms: r.try_get(16)?,
        last_error: r.try_get(17)?,
        sent_ms: r.try_get(18)?,
        ack_deadline_ms: r.try_get(19)?,
        acked_ms: r.try_get(20)?,
        ack_status: r.try_get(21)?,
        ack_codes: from_json(r.try_get(22)?),
        ack_message_id: r.try_get(23)?,
        dead_reason: r.try_get(24)?,
        ack_within_ms: r.try_get(25)?,
    })
}

fn outbox_rows(found: &[Row]) -> Res<Vec<OutboxRow>> {
    found.iter().map(outbox_from_row).collect()
}

/// Lease up to `limit` due rows: pending, due, not leased by a live worker, and first among the
/// pending rows of their order key. Rows another transaction holds locked (another worker leasing
/// them right now, a receipt being correlated) are skipped, not waited for; a row leased and
/// committed meanwhile is re-checked on its new version and left out.
pub(super) async fn lease<C: GenericClient>(
    c: &C,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Res<Vec<OutboxRow>> {
    let sql = format!(
        "WITH due AS ( \
           SELECT o.id FROM outbox o \
           WHERE o.state = 'pending' AND o.next_attempt_ms <= $2 \
             AND (o.lease_until_ms IS NULL OR o.lease_until_ms <= $2) \
             AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.order_key = o.order_key \
                             AND p.id < o.id AND p.state = 'pending') \
           ORDER BY o.next_attempt_ms, o.id LIMIT $4 \
           FOR UPDATE OF o SKIP LOCKED) \
         UPDATE outbox o SET lease_owner = $1, lease_until_ms = $2::BIGINT + $3::BIGINT \
         FROM due WHERE o.id = due.id \
         RETURNING {OUTBOX_COLS}"
    );
    let mut out = outbox_rows(&rows(c, &sql, &[&owner, &now_ms, &lease_ms, &limit]).await?)?;
    out.sort_by_key(|r| r.id);
    Ok(out)
}

/// Record an attempt; `false` when `owner` no longer holds the row's lease.
pub(super) async fn record_attempt<C: GenericClient>(
    c: &C,
    id: i64,
    owner: &str,
    attempt: &Attempt,
) -> Res<bool> {
    let held = opt_row(
        c,
        "SELECT recipient_key, purpose, message_id, ack_within_ms FROM outbox \
         WHERE id = $1 AND lease_owner = $2 AND state = 'pending' FOR UPDATE",
        &[&id, &owner],
    )
    .await?;
    let Some(held) = held else {
        return Ok(false);
    };
    let (recipient, purpose, message_id, ack_within_ms): (String, String, i64, i64) = (
        held.try_get(0)?,
        held.try_get(1)?,
        held.try_get(2)?,
        held.try_get(3)?,
    );
    match attempt {
        Attempt::Answered { ack, at_ms } => {
            exec(
                c,
                "UPDATE outbox SET attempts = attempts + 1 WHERE id = $1",
                &[&id],
            )
            .await?;
            set_answered(c, id, ack, *at_ms, None).await?;
            if !ack.is_ok() {
                let subject = AlertSubject {
                    outbox_id: id,
                    message_id,
                    recipient: &recipient,
                    purpose: &purpose,
                };
                raise_alert(c, &NewAlert::nacked(subject, ack)).await?;
            }
        }
        Attempt::Delivered { at_ms } => {
            exec(
                c,
                "UPDATE outbox SET state = 'sent', attempts = attempts + 1, sent_ms = $2, \
                 ack_deadline_ms = $2::BIGINT + $3::BIGINT, last_error = NULL, lease_owner = NULL, \
                 lease_until_ms = NULL WHERE id = $1",
                &[&id, at_ms, &ack_within_ms],
            )
            .await?;
        }
        Attempt::Failed { error, retry_at_ms } => {
            exec(
                c,
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, \
                 next_attempt_ms = $3, lease_owner = NULL, lease_until_ms = NULL WHERE id = $1",
                &[&id, &text(error), retry_at_ms],
            )
            .await?;
        }
        Attempt::Deferred { retry_at_ms } => {
            exec(
                c,
                "UPDATE outbox SET next_attempt_ms = $2, lease_owner = NULL, \
                 lease_until_ms = NULL WHERE id = $1",
                &[&id, retry_at_ms],
            )
            .await?;
        }
        Attempt::Dead { error, reason } => {
            exec(
                c,
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = $2, \
                 dead_reason = $3, lease_owner = NULL, lease_until_ms = NULL WHERE id = $1",
                &[&id, &text(error), &text(reason)],
            )
            .await?;
            let subject = AlertSubject {
                outbox_id: id,
                message_id,
                recipient: &recipient,
                purpose: &purpose,
            };
            raise_alert(
                c,
                &NewAlert::dead(subject, &format!("given up: {reason} ({error})")),
            )
            .await?;
        }
    }
    Ok(true)
}

/// Put a dead or negatively answered row back in the queue (an operator's retry). The row keeps
/// its message id, so a recipient that did get it recognises the resend.
pub(super) async fn retry<C: GenericClient>(c: &C, id: i64, now_ms: i64) -> Res<bool> {
    let n = exec(
        c,
        "UPDATE outbox SET state = 'pending', next_attempt_ms = $2, attempts = 0, \
         dead_reason = NULL, lease_owner = NULL, lease_until_ms = NULL \
         WHERE id = $1 AND state IN ('dead', 'nacked')",
        &[&id, &now_ms],
    )
    .await?;
    if n > 0 {
        clear_alert(c, &format!("dead:{id}")).await?;
        clear_alert(c, &format!("nacked:{id}")).await?;
    }
    Ok(n > 0)
}

/// Raise an alert for every delivered row whose receipt is overdue, in one statement; returns
/// how many were newly raised (an instance racing another counts only the alerts it inserted).
pub(super) async fn raise_overdue<C: GenericClient>(c: &C, now_ms: i64) -> Res<usize> {
    let n = exec(
        c,
        "INSERT INTO alerts (kind, unit_key, reason, message_id, outbox_id, raised_at, dedup_key) \
         SELECT 'delivery.no-receipt', o.recipient_key, \
                'no receipt from ' || o.recipient_key || ' for the ' || o.purpose || ' within ' \
                || (o.ack_within_ms / 1000) || ' s of delivery', \
                o.message_id, o.id, $2, 'no-receipt:' || o.id \
         FROM outbox o WHERE o.state = 'sent' AND o.ack_deadline_ms <= $1 \
           AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.dedup_key = 'no-receipt:' || o.id) \
         ORDER BY o.id \
         ON CONFLICT (dedup_key) DO NOTHING",
        &[&now_ms, &now_text()],
    )
    .await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

pub(super) async fn report_capacity<C: GenericClient>(c: &C, r: &CapacityReport) -> Res<()> {
    exec(
        c,
        "INSERT INTO unit_capacity (unit_key, free_beds, reported_at, reported_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (unit_key) DO UPDATE SET \
         free_beds = EXCLUDED.free_beds, reported_at = EXCLUDED.reported_at, \
         reported_ms = EXCLUDED.reported_ms",
        &[
            &text(&r.unit_key),
            &r.free_beds,
            &r.reported_at,
            &r.reported_ms,
        ],
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reads

pub(super) async fn list_outbox<C: GenericClient>(c: &C, f: &OutboxFilter) -> Res<Vec<OutboxRow>> {
    // NULL parameters switch a condition off, so one cached statement serves every filter.
    let sql = format!(
        "SELECT {OUTBOX_COLS} FROM outbox o \
         WHERE ($1::TEXT IS NULL OR o.state = $1) \
           AND ($2::BIGINT IS NULL OR o.message_id = $2) \
           AND ($3::BIGINT IS NULL OR o.id < $3) \
           AND ($5::TEXT IS NULL OR o.out_msg_id = $5) \
         ORDER BY o.id DESC LIMIT $4"
    );
    let state = f.state.map(OutboxState::as_str);
    let limit = super::clamp_limit(f.limit);
    let out_msg_id = f.out_msg_id.as_deref();
    outbox_rows(
        &rows(
            c,
            &sql,
            &[&state, &f.message_id, &f.before_id, &limit, &out_msg_id],
        )
        .await?,
    )
}

pub(super) async fn get_outbox<C: GenericClient>(c: &C, id: i64) -> Res<Option<OutboxRow>> {
    let sql = format!("SELECT {OUTBOX_COLS} FROM outbox o WHERE o.id = $1");
    match opt_row(c, &sql, &[&id]).await? {
        Some(r) => Ok(Some(outbox_from_row(&r)?)),
        None => Ok(None),
    }
}

pub(super) async fn decisions<C: GenericClient>(
    c: &C,
    message_id: i64,
) -> Res<Vec<StoredDecision>> {
    let found = rows(
        c,
        "SELECT id, message_id, decided_at, decision, source, decided_by, note, ruleset_id, \
         ruleset_version, news2, rules_json, reasons_no_json, reasons_en_json \
         FROM decisions WHERE message_id = $1 ORDER BY id",
        &[&message_id],
    )
    .await?;
    let mut out = Vec::with_capacity(found.len());
    for r in &found {
        let source = if r.try_get::<_, &str>(4)? == "override" {
            DecisionSource::Override
        } else {
            DecisionSource::Rules
        };
        out.push(StoredDecision {
            id: r.try_get(0)?,
            message_id: r.try_get(1)?,
            decision: NewDecision {
                decided_at: r.try_get(2)?,
                decision: r.try_get(3)?,
                source,
                decided_by: r.try_get(5)?,
                note: r.try_get(6)?,
                ruleset_id: r.try_get(7)?,
                ruleset_version: r.try_get(8)?,
                news2: r.try_get(9)?,
                rules: from_json(r.try_get(10)?),
                reasons_no: from_json(r.try_get(11)?),
                reasons_en: from_json(r.try_get(12)?),
            },
        });
    }
    Ok(out)
}

pub(super) async fn routes<C: GenericClient>(c: &C, message_id: i64) -> Res<Vec<StoredRoute>> {
    let found = rows(
        c,
        "SELECT id, message_id, routed_at, code, unit_key, unit_name, municipality, \
         municipality_source, full_unit, diverted_from, reason_en, reason_no, holds_bed \
         FROM routes WHERE message_id = $1 ORDER BY id",
        &[&message_id],
    )
    .await?;
    let mut out = Vec::with_capacity(found.len());
    for r in &found {
        out.push(StoredRoute {
            id: r.try_get(0)?,
            message_id: r.try_get(1)?,
            route: NewRoute {
                routed_at: r.try_get(2)?,
                code: r.try_get(3)?,
                unit_key: r.try_get(4)?,
                unit_name: r.try_get(5)?,
                municipality: r.try_get(6)?,
                municipality_source: r.try_get(7)?,
                full: r.try_get(8)?,
                diverted_from: r.try_get(9)?,
                reason_en: r.try_get(10)?,
                reason_no: r.try_get(11)?,
                holds_bed: r.try_get(12)?,
            },
        });
    }
    Ok(out)
}

pub(super) async fn capacity_reports<C: GenericClient>(c: &C) -> Res<Vec<CapacityReport>> {
    let found = rows(
        c,
        "SELECT unit_key, free_beds, reported_at, reported_ms FROM unit_capacity \
         ORDER BY unit_key COLLATE \"C\"",
        &[],
    )
    .await?;
    found
        .iter()
        .map(|r| {
            Ok(CapacityReport {
                unit_key: r.try_get(0)?,
                free_beds: r.try_get(1)?,
                reported_at: r.try_get(2)?,
                reported_ms: r.try_get(3)?,
            })
        })
        .collect()
}

pub(super) async fn alerts<C: GenericClient>(
    c: &C,
    open_only: bool,
    limit: i64,
) -> Res<Vec<StoredAlert>> {
    let found = rows(
        c,
        "SELECT id, kind, unit_key, reason, message_id, outbox_id, raised_at, cleared_at \
         FROM alerts WHERE (NOT $1 OR cleared_at IS NULL) ORDER BY id DESC LIMIT $2",
        &[&open_only, &limit],
    )
    .await?;
    found
        .iter()
        .map(|r| {
            Ok(StoredAlert {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                unit_key: r.try_get(2)?,
                reason: r.try_get(3)?,
                message_id: r.try_get(4)?,
                outbox_id: r.try_get(5)?,
                raised_at: r.try_get(6)?,
                cleared_at: r.try_get(7)?,
            })
        })
        .collect()
}
