//! SQL for stays, their link keys, the stay work queue and the audit log (SQLite). Called by
//! [`super::sqlite::SqliteStore`]: writes on its writer thread inside a group-committed
//! transaction, reads on its reader pool. No row data in errors or logs.

use rusqlite::{params, Connection, OptionalExtension};

use super::sqlite_queue as q;
use super::stays::{
    AuditEntry, NewAudit, NewStay, NewStayWork, StayApplied, StayChange, StayRecord, StayWork,
    WorkOutcome,
};

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const STAY_COLS: &str = "SELECT id, version, patient_nin, unit_key, state, referral_message_id, \
     epicrisis_due_ms, doc_json, created_ms, updated_at FROM stays";

fn stay_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StayRecord> {
    Ok(StayRecord {
        id: r.get(0)?,
        version: r.get(1)?,
        patient_nin: r.get(2)?,
        unit_key: r.get(3)?,
        state: r.get(4)?,
        referral_message_id: r.get(5)?,
        epicrisis_due_ms: r.get(6)?,
        doc_json: r.get(7)?,
        created_ms: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

fn insert_keys(conn: &Connection, stay_id: i64, keys: &[String]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO stay_keys (key, stay_id) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
    )?;
    for k in keys {
        stmt.execute(params![k, stay_id])?;
    }
    Ok(())
}

fn release_held(conn: &Connection, patient_nin: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE stay_work SET next_ms = MIN(next_ms, ?2) WHERE state = 'held' AND patient_nin = ?1",
    )?
    .execute(params![patient_nin, now_ms])?;
    Ok(())
}

/// A stay opened by a newly stored message (a referral).
pub(super) fn insert_stay(conn: &Connection, message_id: i64, s: &NewStay) -> rusqlite::Result<()> {
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO stays (patient_nin, unit_key, state, referral_message_id, doc_json, \
             created_ms, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        )?
        .query_row(
            params![
                s.patient_nin,
                s.unit_key,
                s.state,
                message_id,
                s.doc_json,
                s.created_ms,
                now_text()
            ],
            |r| r.get(0),
        )?;
    insert_keys(conn, id, &s.keys)?;
    if let Some(nin) = &s.patient_nin {
        release_held(conn, nin, s.created_ms)?;
    }
    Ok(())
}

/// Queue a newly stored message for the stay tracker.
pub(super) fn insert_work(
    conn: &Connection,
    message_id: i64,
    w: &NewStayWork,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO stay_work (message_id, kind, patient_nin, state, next_ms, created_ms) \
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4) ON CONFLICT (message_id) DO NOTHING",
    )?
    .execute(params![message_id, w.kind, w.patient_nin, w.created_ms])?;
    Ok(())
}

pub(super) fn lease_work(
    conn: &Connection,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> rusqlite::Result<Vec<StayWork>> {
    let mut stmt = conn.prepare_cached(
        "UPDATE stay_work SET lease_owner = ?1, lease_until_ms = ?2 + ?3 WHERE id IN ( \
           SELECT id FROM stay_work WHERE state <> 'done' AND next_ms <= ?2 \
             AND (lease_until_ms IS NULL OR lease_until_ms <= ?2) \
           ORDER BY next_ms, id LIMIT ?4) \
         RETURNING id, message_id, kind, patient_nin, state, attempts, created_ms, note",
    )?;
    let rows = stmt.query_map(params![owner, now_ms, lease_ms, limit as i64], |r| {
        Ok(StayWork {
            id: r.get(0)?,
            message_id: r.get(1)?,
            kind: r.get(2)?,
            patient_nin: r.get(3)?,
            state: r.get(4)?,
            attempts: r.get(5)?,
            created_ms: r.get(6)?,
            note: r.get(7)?,
        })
    })?;
    let mut out: Vec<StayWork> = rows.collect::<rusqlite::Result<_>>()?;
    out.sort_by_key(|w| w.id);
    Ok(out)
}

pub(super) fn apply(conn: &Connection, c: &StayChange) -> rusqlite::Result<StayApplied> {
    // Every check comes before every write: a conflict must leave nothing behind.
    if let Some((work_id, owner)) = &c.work {
        let held: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM stay_work WHERE id = ?1 AND state <> 'done' AND lease_owner = ?2",
            )?
            .query_row(params![work_id, owner], |r| r.get(0))
            .optional()?;
        if held.is_none() {
            return Ok(StayApplied::Conflict);
        }
    }
    let mut stay_id = None;
    if let Some(s) = &c.stay {
        match s.id {
            Some(id) => {
                let n = conn
                    .prepare_cached(
                        "UPDATE stays SET version = version + 1, patient_nin = ?3, unit_key = ?4, \
                         state = ?5, epicrisis_due_ms = ?6, doc_json = ?7, updated_at = ?8 \
                         WHERE id = ?1 AND version = ?2",
                    )?
                    .execute(params![
                        id,
                        s.version,
                        s.patient_nin,
                        s.unit_key,
                        s.state,
                        s.epicrisis_due_ms,
                        s.doc_json,
                        now_text()
                    ])?;
                if n == 0 {
                    return Ok(StayApplied::Conflict);
                }
                stay_id = Some(id);
            }
            None => {
                let id: i64 = conn
                    .prepare_cached(
                        "INSERT INTO stays (patient_nin, unit_key, state, epicrisis_due_ms, \
                         doc_json, created_ms, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                         RETURNING id",
                    )?
                    .query_row(
                        params![
                            s.patient_nin,
                            s.unit_key,
                            s.state,
                            s.epicrisis_due_ms,
                            s.doc_json,
                            s.created_ms,
                            now_text()
                        ],
                        |r| r.get(0),
                    )?;
                stay_id = Some(id);
            }
        }
    }
    if let Some(id) = stay_id {
        insert_keys(conn, id, &c.keys)?;
    }
    if let Some(message_id) = c.message_id {
        for o in &c.outbox {
            q::insert_outbox(conn, message_id, o)?;
        }
    }
    for a in &c.alerts {
        let a = match c.message_id {
            Some(m) => a.with_message(m),
            None => a.clone(),
        };
        q::raise_alert(conn, &a)?;
    }
    for k in &c.clear_alerts {
        q::clear_alert(conn, k)?;
    }
    if let Some((work_id, _)) = &c.work {
        match &c.outcome {
            WorkOutcome::Done => conn
                .prepare_cached(
                    "UPDATE stay_work SET state = 'done', attempts = attempts + 1, \
                     lease_owner = NULL, lease_until_ms = NULL, note = NULL WHERE id = ?1",
                )?
                .execute(params![work_id])?,
            WorkOutcome::Later { at_ms, held, note } => conn
                .prepare_cached(
                    "UPDATE stay_work SET state = ?2, attempts = attempts + 1, next_ms = ?3, \
                     lease_owner = NULL, lease_until_ms = NULL, note = ?4 WHERE id = ?1",
                )?
                .execute(params![
                    work_id,
                    if *held { "held" } else { "pending" },
                    at_ms,
                    note
                ])?,
        };
    }
    if let Some(nin) = &c.release_held_of {
        release_held(conn, nin, c.now_ms)?;
    }
    Ok(StayApplied::Applied { stay_id })
}

pub(super) fn by_keys(conn: &Connection, keys: &[String]) -> rusqlite::Result<Option<StayRecord>> {
    let mut find = conn.prepare_cached("SELECT stay_id FROM stay_keys WHERE key = ?1")?;
    for k in keys {
        let id: Option<i64> = find.query_row(params![k], |r| r.get(0)).optional()?;
        if let Some(id) = id {
            return get(conn, id);
        }
    }
    Ok(None)
}

pub(super) fn open_stay(
    conn: &Connection,
    nin: &str,
    unit_keys: &[String],
) -> rusqlite::Result<Option<StayRecord>> {
    if unit_keys.is_empty() {
        return Ok(None);
    }
    let marks = vec!["?"; unit_keys.len()].join(", ");
    let sql = format!(
        "{STAY_COLS} WHERE patient_nin = ? AND unit_key IN ({marks}) \
         AND state NOT IN ('closed', 'cancelled', 'not-accepted') ORDER BY id DESC LIMIT 1"
    );
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&nin];
    for k in unit_keys {
        args.push(k);
    }
    conn.prepare_cached(&sql)?
        .query_row(args.as_slice(), stay_from_row)
        .optional()
}

pub(super) fn of_patient(
    conn: &Connection,
    nin: &str,
    limit: i64,
) -> rusqlite::Result<Vec<StayRecord>> {
    let sql = format!("{STAY_COLS} WHERE patient_nin = ?1 ORDER BY id DESC LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![nin, limit], stay_from_row)?;
    rows.collect()
}

pub(super) fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<StayRecord>> {
    let sql = format!("{STAY_COLS} WHERE id = ?1");
    conn.prepare_cached(&sql)?
        .query_row(params![id], stay_from_row)
        .optional()
}

pub(super) fn overdue(
    conn: &Connection,
    now_ms: i64,
    limit: i64,
) -> rusqlite::Result<Vec<StayRecord>> {
    let sql = format!(
        "{STAY_COLS} WHERE epicrisis_due_ms IS NOT NULL AND epicrisis_due_ms <= ?1 \
         ORDER BY epicrisis_due_ms, id LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![now_ms, limit], stay_from_row)?;
    rows.collect()
}

pub(super) fn counts(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, COUNT(*) FROM stays GROUP BY state \
         UNION ALL SELECT 'work:' || state, COUNT(*) FROM stay_work WHERE state <> 'done' \
         GROUP BY state ORDER BY 1",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

pub(super) fn record_audit(conn: &Connection, a: &NewAudit) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5) \
         RETURNING id",
    )?
    .query_row(params![a.at, a.actor, a.action, a.subject, a.detail], |r| {
        r.get(0)
    })
}

pub(super) fn audit_log(conn: &Connection, limit: i64) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit], |r| {
        Ok(AuditEntry {
            id: r.get(0)?,
            entry: NewAudit {
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                subject: r.get(4)?,
                detail: r.get(5)?,
            },
        })
    })?;
    rows.collect()
}
