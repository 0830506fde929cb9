//! SQL for decisions, routes, the outbox, alerts and capacity reports (SQLite). Called by
//! [`super::sqlite::SqliteStore`]: writes run on its writer thread inside a group-committed
//! transaction, reads on its reader pool. Same rules as the rest of the store: no row data in
//! errors or logs.

use rusqlite::{params, Connection, OptionalExtension};

use super::queue::{
    Ack, AlertSubject, Attempt, CapacityReport, Effects, NewAck, NewAlert, NewDecision, NewOutbox,
    NewRoute, OutboxFilter, OutboxRow, OutboxState, StoredAlert, StoredDecision, StoredRoute,
};
use super::sqlite::list_limit;
use super::sqlite_blob as blob;

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
pub(super) fn insert_effects(
    conn: &Connection,
    message_id: i64,
    effects: &Effects,
) -> rusqlite::Result<()> {
    if let Some(d) = &effects.decision {
        insert_decision(conn, message_id, d)?;
    }
    if let Some(r) = &effects.route {
        insert_route(conn, message_id, r)?;
    }
    for o in &effects.outbox {
        insert_outbox(conn, message_id, o)?;
    }
    if let Some(a) = &effects.ack {
        apply_ack(conn, a, message_id)?;
    }
    for a in &effects.alerts {
        raise_alert(conn, &a.with_message(message_id))?;
    }
    if let Some(s) = &effects.stay {
        super::sqlite_stays::insert_stay(conn, message_id, s)?;
    }
    if let Some(w) = &effects.stay_work {
        super::sqlite_stays::insert_work(conn, message_id, w)?;
    }
    Ok(())
}

fn insert_decision(conn: &Connection, message_id: i64, d: &NewDecision) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO decisions (message_id, decided_at, decision, source, decided_by, note, \
         ruleset_id, ruleset_version, news2, rules_json, reasons_no_json, reasons_en_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        message_id,
        d.decided_at,
        d.decision,
        d.source.as_str(),
        d.decided_by,
        d.note,
        d.ruleset_id,
        d.ruleset_version,
        d.news2,
        json(&d.rules),
        json(&d.reasons_no),
        json(&d.reasons_en),
    ])?;
    // A bed is held while the current decision is `accepted`.
    conn.prepare_cached("UPDATE routes SET holds_bed = ?2 WHERE message_id = ?1")?
        .execute(params![message_id, d.decision == "accepted"])?;
    Ok(())
}

fn insert_route(conn: &Connection, message_id: i64, r: &NewRoute) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO routes (message_id, routed_at, code, unit_key, unit_name, municipality, \
         municipality_source, full_unit, diverted_from, reason_en, reason_no, holds_bed) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        message_id,
        r.routed_at,
        r.code,
        r.unit_key,
        r.unit_name,
        r.municipality,
        r.municipality_source,
        r.full,
        r.diverted_from,
        r.reason_en,
        r.reason_no,
        r.holds_bed,
    ])?;
    Ok(())
}

pub(super) fn insert_outbox(
    conn: &Connection,
    message_id: i64,
    o: &NewOutbox,
) -> rusqlite::Result<()> {
    let state = if o.dead_reason.is_some() {
        OutboxState::Dead
    } else {
        OutboxState::Pending
    };
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO outbox (message_id, purpose, recipient_key, recipient_name, order_key, \
             destination, endpoint_json, format, content_type, out_msg_id, state, attempts, \
             created_at, created_ms, next_attempt_ms, ack_within_ms, dead_reason) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, ?13, ?13, ?14, ?15) \
             RETURNING id",
        )?
        .query_row(
            params![
                message_id,
                o.purpose,
                o.recipient_key,
                o.recipient_name,
                o.order_key,
                o.destination,
                o.endpoint_json,
                o.format,
                o.content_type,
                o.out_msg_id,
                state.as_str(),
                o.created_at,
                o.created_ms,
                o.ack_within_ms,
                o.dead_reason,
            ],
            |r| r.get(0),
        )?;
    let body = blob::pack(&o.body);
    conn.prepare_cached("INSERT INTO outbox_bodies (outbox_id, body, codec) VALUES (?1, ?2, ?3)")?
        .execute(params![id, body.bytes, body.codec])?;
    if let Some(reason) = &o.dead_reason {
        let subject = AlertSubject {
            outbox_id: id,
            message_id,
            recipient: &o.recipient_key,
            purpose: &o.purpose,
        };
        raise_alert(
            conn,
            &NewAlert::dead(subject, &format!("cannot be delivered: {reason}")),
        )?;
    }
    Ok(())
}

/// Raise an alert unless one with the same key is open.
pub(super) fn raise_alert(conn: &Connection, a: &NewAlert) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO alerts (kind, unit_key, reason, message_id, outbox_id, raised_at, dedup_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (dedup_key) DO NOTHING",
    )?
    .execute(params![
        a.kind,
        a.unit_key,
        a.reason,
        a.message_id,
        a.outbox_id,
        now_text(),
        a.dedup_key
    ])?;
    Ok(())
}

pub(super) fn clear_alert(conn: &Connection, dedup_key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE alerts SET cleared_at = ?2, dedup_key = NULL WHERE dedup_key = ?1",
    )?
    .execute(params![dedup_key, now_text()])?;
    Ok(())
}

/// Correlate an incoming receipt with the outbox row of the message it answers (the row is
/// acknowledged even when the delivery attempt's own result is not recorded yet).
pub(super) fn apply_ack(
    conn: &Connection,
    a: &NewAck,
    ack_message_id: i64,
) -> rusqlite::Result<Option<i64>> {
    let row: Option<(i64, String, String, i64)> = conn
        .prepare_cached(
            "SELECT id, recipient_key, purpose, message_id FROM outbox \
             WHERE out_msg_id = ?1 AND state IN ('pending', 'sent')",
        )?
        .query_row(params![a.out_msg_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((id, recipient, purpose, message_id)) = row else {
        return Ok(None);
    };
    set_answered(conn, id, &a.ack, a.at_ms, Some(ack_message_id))?;
    if !a.ack.is_ok() {
        let subject = AlertSubject {
            outbox_id: id,
            message_id,
            recipient: &recipient,
            purpose: &purpose,
        };
        raise_alert(conn, &NewAlert::nacked(subject, &a.ack))?;
    }
    Ok(Some(id))
}

fn set_answered(
    conn: &Connection,
    id: i64,
    ack: &Ack,
    at_ms: i64,
    ack_message_id: Option<i64>,
) -> rusqlite::Result<()> {
    let state = if ack.is_ok() {
        OutboxState::Acked
    } else {
        OutboxState::Nacked
    };
    conn.prepare_cached(
        "UPDATE outbox SET state = ?2, acked_ms = ?3, sent_ms = COALESCE(sent_ms, ?3), \
         ack_status = ?4, ack_codes_json = ?5, ack_message_id = ?6, lease_owner = NULL, \
         lease_until_ms = NULL WHERE id = ?1",
    )?
    .execute(params![
        id,
        state.as_str(),
        at_ms,
        ack.status,
        json(&ack.codes),
        ack_message_id
    ])?;
    clear_alert(conn, &format!("no-receipt:{id}"))
}

/// The columns of [`outbox_from_row`]; callers append `FROM` [`OUTBOX_FROM`] `…`.
const OUTBOX_COLS: &str = "SELECT o.id, o.message_id, o.purpose, o.recipient_key, \
    o.recipient_name, o.order_key, o.destination, o.endpoint_json, o.format, o.content_type, b.body, \
    o.out_msg_id, o.state, o.attempts, o.created_at, o.created_ms, o.next_attempt_ms, o.last_error, \
    o.sent_ms, o.ack_deadline_ms, o.acked_ms, o.ack_status, o.ack_codes_json, o.ack_message_id, \
    o.dead_reason, o.ack_within_ms, b.codec";
const OUTBOX_FROM: &str = "outbox o JOIN outbox_bodies b ON b.outbox_id = o.id";

fn outbox_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    let state: String = r.get(12)?;
    let state = OutboxState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            12,
            rusqlite::types::Type::Text,
            "invalid state in outbox row".into(),
        )
    })?;
    Ok(OutboxRow {
        id: r.get(0)?,
        message_id: r.get(1)?,
        purpose: r.get(2)?,
        recipient_key: r.get(3)?,
        recipient_name: r.get(4)?,
        order_key: r.get(5)?,
        destination: r.get(6)?,
        endpoint_json: r.get(7)?,
        format: r.get(8)?,
        content_type: r.get(9)?,
        body: blob::unpack(r.get(10)?, r.get(26)?, 10)?,
        out_msg_id: r.get(11)?,
        state,
        attempts: r.get(13)?,
        created_at: r.get(14)?,
        created_ms: r.get(15)?,
        next_attempt_ms: r.get(16)?,
        last_error: r.get(17)?,
        sent_ms: r.get(18)?,
        ack_deadline_ms: r.get(19)?,
        acked_ms: r.get(20)?,
        ack_status: r.get(21)?,
        ack_codes: from_json(r.get(22)?),
        ack_message_id: r.get(23)?,
        dead_reason: r.get(24)?,
        ack_within_ms: r.get(25)?,
    })
}

/// Lease up to `limit` due rows: pending, due, not leased by a live worker, and first among the
/// pending rows of their order key.
pub(super) fn lease(
    conn: &Connection,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> rusqlite::Result<Vec<OutboxRow>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "UPDATE outbox SET lease_owner = ?1, lease_until_ms = ?2 + ?3 WHERE id IN ( \
               SELECT o.id FROM outbox o \
               WHERE o.state = 'pending' AND o.next_attempt_ms <= ?2 \
                 AND (o.lease_until_ms IS NULL OR o.lease_until_ms <= ?2) \
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.order_key = o.order_key \
                                 AND p.id < o.id AND p.state = 'pending') \
               ORDER BY o.next_attempt_ms, o.id LIMIT ?4) \
             RETURNING id",
        )?
        .query_map(params![owner, now_ms, lease_ms, limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The rows with their bodies, by the ids this lease took (in the same transaction).
    let marks = vec!["?"; ids.len()].join(", ");
    let sql = format!("{OUTBOX_COLS} FROM {OUTBOX_FROM} WHERE o.id IN ({marks}) ORDER BY o.id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(ids), outbox_from_row)?;
    rows.collect()
}

/// Record an attempt; `false` when `owner` no longer holds the row's lease.
pub(super) fn record_attempt(
    conn: &Connection,
    id: i64,
    owner: &str,
    attempt: &Attempt,
) -> rusqlite::Result<bool> {
    let held: Option<(String, String, i64, i64)> = conn
        .prepare_cached(
            "SELECT recipient_key, purpose, message_id, ack_within_ms FROM outbox \
             WHERE id = ?1 AND lease_owner = ?2 AND state = 'pending'",
        )?
        .query_row(params![id, owner], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((recipient, purpose, message_id, ack_within_ms)) = held else {
        return Ok(false);
    };
    let subject = AlertSubject {
        outbox_id: id,
        message_id,
        recipient: &recipient,
        purpose: &purpose,
    };
    match attempt {
        Attempt::Answered { ack, at_ms } => {
            conn.prepare_cached("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?1")?
                .execute(params![id])?;
            set_answered(conn, id, ack, *at_ms, None)?;
            if !ack.is_ok() {
                raise_alert(conn, &NewAlert::nacked(subject, ack))?;
            }
        }
        Attempt::Delivered { at_ms } => {
            conn.prepare_cached(
                "UPDATE outbox SET state = 'sent', attempts = attempts + 1, sent_ms = ?2, \
                 ack_deadline_ms = ?2 + ?3, last_error = NULL, lease_owner = NULL, \
                 lease_until_ms = NULL WHERE id = ?1",
            )?
            .execute(params![id, at_ms, ack_within_ms])?;
        }
        Attempt::Failed { error, retry_at_ms } => {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3, \
                 lease_owner = NULL, lease_until_ms = NULL WHERE id = ?1",
            )?
            .execute(params![id, error, retry_at_ms])?;
        }
        Attempt::Deferred { retry_at_ms } => {
            conn.prepare_cached(
                "UPDATE outbox SET next_attempt_ms = ?2, lease_owner = NULL, lease_until_ms = NULL \
                 WHERE id = ?1",
            )?
            .execute(params![id, retry_at_ms])?;
        }
        Attempt::Dead { error, reason } => {
            conn.prepare_cached(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2, \
                 dead_reason = ?3, lease_owner = NULL, lease_until_ms = NULL WHERE id = ?1",
            )?
            .execute(params![id, error, reason])?;
            raise_alert(
                conn,
                &NewAlert::dead(subject, &format!("given up: {reason} ({error})")),
            )?;
        }
    }
    Ok(true)
}

/// Put a dead or negatively answered row back in the queue (an operator's retry). The row keeps
/// its message id, so a recipient that did get it recognises the resend.
pub(super) fn retry(conn: &Connection, id: i64, now_ms: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE outbox SET state = 'pending', next_attempt_ms = ?2, attempts = 0, \
             dead_reason = NULL, lease_owner = NULL, lease_until_ms = NULL \
             WHERE id = ?1 AND state IN ('dead', 'nacked')",
        )?
        .execute(params![id, now_ms])?;
    if n > 0 {
        clear_alert(conn, &format!("dead:{id}"))?;
        clear_alert(conn, &format!("nacked:{id}"))?;
    }
    Ok(n > 0)
}

/// Raise an alert for every delivered row whose receipt is overdue; returns how many were new.
pub(super) fn raise_overdue(conn: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    let rows: Vec<(i64, String, String, i64, i64)> = conn
        .prepare_cached(
            "SELECT o.id, o.recipient_key, o.purpose, o.message_id, o.ack_within_ms FROM outbox o \
             WHERE o.state = 'sent' AND o.ack_deadline_ms <= ?1 \
             AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.dedup_key = 'no-receipt:' || o.id)",
        )?
        .query_map(params![now_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, recipient, purpose, message_id, within) in &rows {
        raise_alert(
            conn,
            &NewAlert {
                kind: "delivery.no-receipt".into(),
                unit_key: Some(recipient.clone()),
                reason: format!(
                    "no receipt from {recipient} for the {purpose} within {} s of delivery",
                    within / 1000
                ),
                message_id: Some(*message_id),
                outbox_id: Some(*id),
                dedup_key: format!("no-receipt:{id}"),
            },
        )?;
    }
    Ok(rows.len())
}

pub(super) fn report_capacity(conn: &Connection, r: &CapacityReport) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO unit_capacity (unit_key, free_beds, reported_at, reported_ms) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (unit_key) DO UPDATE SET \
         free_beds = excluded.free_beds, reported_at = excluded.reported_at, \
         reported_ms = excluded.reported_ms",
    )?
    .execute(params![
        r.unit_key,
        r.free_beds,
        r.reported_at,
        r.reported_ms
    ])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reads

pub(super) fn list_outbox(conn: &Connection, f: &OutboxFilter) -> rusqlite::Result<Vec<OutboxRow>> {
    let mut sql = format!("{OUTBOX_COLS} FROM {OUTBOX_FROM} WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(s) = f.state {
        sql.push_str(" AND o.state = ?");
        args.push(s.as_str().to_owned().into());
    }
    if let Some(m) = f.message_id {
        sql.push_str(" AND o.message_id = ?");
        args.push(m.into());
    }
    if let Some(m) = &f.out_msg_id {
        sql.push_str(" AND o.out_msg_id = ?");
        args.push(m.clone().into());
    }
    if let Some(b) = f.before_id {
        sql.push_str(" AND o.id < ?");
        args.push(b.into());
    }
    let limit = list_limit(f.limit);
    sql.push_str(" ORDER BY o.id DESC LIMIT ?");
    args.push(limit.into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), outbox_from_row)?;
    rows.collect()
}

pub(super) fn get_outbox(conn: &Connection, id: i64) -> rusqlite::Result<Option<OutboxRow>> {
    conn.prepare_cached(&format!("{OUTBOX_COLS} FROM {OUTBOX_FROM} WHERE o.id = ?1"))?
        .query_row(params![id], outbox_from_row)
        .optional()
}

pub(super) fn outbox_counts(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

pub(super) fn decisions(
    conn: &Connection,
    message_id: i64,
) -> rusqlite::Result<Vec<StoredDecision>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, message_id, decided_at, decision, source, decided_by, note, ruleset_id, \
         ruleset_version, news2, rules_json, reasons_no_json, reasons_en_json \
         FROM decisions WHERE message_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![message_id], |r| {
        let source: String = r.get(4)?;
        Ok(StoredDecision {
            id: r.get(0)?,
            message_id: r.get(1)?,
            decision: NewDecision {
                decided_at: r.get(2)?,
                decision: r.get(3)?,
                source: if source == "override" {
                    super::queue::DecisionSource::Override
                } else {
                    super::queue::DecisionSource::Rules
                },
                decided_by: r.get(5)?,
                note: r.get(6)?,
                ruleset_id: r.get(7)?,
                ruleset_version: r.get(8)?,
                news2: r.get(9)?,
                rules: from_json(r.get(10)?),
                reasons_no: from_json(r.get(11)?),
                reasons_en: from_json(r.get(12)?),
            },
        })
    })?;
    rows.collect()
}

pub(super) fn routes(conn: &Connection, message_id: i64) -> rusqlite::Result<Vec<StoredRoute>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, message_id, routed_at, code, unit_key, unit_name, municipality, \
         municipality_source, full_unit, diverted_from, reason_en, reason_no, holds_bed \
         FROM routes WHERE message_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![message_id], |r| {
        Ok(StoredRoute {
            id: r.get(0)?,
            message_id: r.get(1)?,
            route: NewRoute {
                routed_at: r.get(2)?,
                code: r.get(3)?,
                unit_key: r.get(4)?,
                unit_name: r.get(5)?,
                municipality: r.get(6)?,
                municipality_source: r.get(7)?,
                full: r.get(8)?,
                diverted_from: r.get(9)?,
                reason_en: r.get(10)?,
                reason_no: r.get(11)?,
                holds_bed: r.get(12)?,
            },
        })
    })?;
    rows.collect()
}

/// Beds held per unit (routes of referrals whose current decision is `accepted`).
pub(super) fn beds_held(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT unit_key, COUNT(*) FROM routes WHERE holds_bed = 1 AND unit_key IS NOT NULL \
         GROUP BY unit_key ORDER BY unit_key",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

pub(super) fn capacity_reports(conn: &Connection) -> rusqlite::Result<Vec<CapacityReport>> {
    let mut stmt = conn.prepare_cached(
        "SELECT unit_key, free_beds, reported_at, reported_ms FROM unit_capacity ORDER BY unit_key",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(CapacityReport {
            unit_key: r.get(0)?,
            free_beds: r.get(1)?,
            reported_at: r.get(2)?,
            reported_ms: r.get(3)?,
        })
    })?;
    rows.collect()
}

pub(super) fn alerts(
    conn: &Connection,
    open_only: bool,
    limit: i64,
) -> rusqlite::Result<Vec<StoredAlert>> {
    let limit = list_limit(limit);
    let sql = if open_only {
        "SELECT id, kind, unit_key, reason, message_id, outbox_id, raised_at, cleared_at FROM alerts \
         WHERE cleared_at IS NULL ORDER BY id DESC LIMIT ?1"
    } else {
        "SELECT id, kind, unit_key, reason, message_id, outbox_id, raised_at, cleared_at FROM alerts \
         ORDER BY id DESC LIMIT ?1"
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![limit], |r| {
        Ok(StoredAlert {
            id: r.get(0)?,
            kind: r.get(1)?,
            unit_key: r.get(2)?,
            reason: r.get(3)?,
            message_id: r.get(4)?,
            outbox_id: r.get(5)?,
            raised_at: r.get(6)?,
            cleared_at: r.get(7)?,
        })
    })?;
    rows.collect()
}
