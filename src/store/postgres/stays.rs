//! SQL for stays, their link keys, the stay work queue and the audit log (PostgreSQL), with the
//! same semantics as `sqlite_stays`. Several instances may run the tracker: work items are leased
//! with `SKIP LOCKED`, and a stay is written only over the version that was read.
//! No row data in errors or logs.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{clamp_limit, exec, opt_row, opt_text, rows, text, Res};
use crate::store::stays::{
    AuditEntry, NewAudit, NewStay, NewStayWork, StayApplied, StayChange, StayRecord, StayWork,
    WorkOutcome,
};

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const STAY_COLS: &str = "id, version, patient_nin, unit_key, state, referral_message_id, \
     epicrisis_due_ms, doc_json, created_ms, updated_at";

fn stay_from_row(r: &Row) -> Res<StayRecord> {
    Ok(StayRecord {
        id: r.try_get(0)?,
        version: r.try_get(1)?,
        patient_nin: r.try_get(2)?,
        unit_key: r.try_get(3)?,
        state: r.try_get(4)?,
        referral_message_id: r.try_get(5)?,
        epicrisis_due_ms: r.try_get(6)?,
        doc_json: r.try_get(7)?,
        created_ms: r.try_get(8)?,
        updated_at: r.try_get(9)?,
    })
}

fn stays_from(rs: &[Row]) -> Res<Vec<StayRecord>> {
    rs.iter().map(stay_from_row).collect()
}

async fn insert_keys<C: GenericClient>(c: &C, stay_id: i64, keys: &[String]) -> Res<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = keys.iter().map(|k| text(k).into_owned()).collect();
    exec(
        c,
        "INSERT INTO stay_keys (key, stay_id) SELECT k, $2 FROM UNNEST($1::TEXT[]) AS k \
         ON CONFLICT (key) DO NOTHING",
        &[&keys, &stay_id],
    )
    .await?;
    Ok(())
}

async fn release_held<C: GenericClient>(c: &C, nin: &str, now_ms: i64) -> Res<()> {
    exec(
        c,
        "UPDATE stay_work SET next_ms = LEAST(next_ms, $2) WHERE state = 'held' AND patient_nin = $1",
        &[&text(nin), &now_ms],
    )
    .await?;
    Ok(())
}

pub(in crate::store) async fn insert_stay<C: GenericClient>(
    c: &C,
    message_id: i64,
    s: &NewStay,
) -> Res<()> {
    let row = opt_row(
        c,
        "INSERT INTO stays (patient_nin, unit_key, state, referral_message_id, doc_json, \
         created_ms, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        &[
            &opt_text(&s.patient_nin),
            &opt_text(&s.unit_key),
            &text(&s.state),
            &message_id,
            &text(&s.doc_json),
            &s.created_ms,
            &now_text(),
        ],
    )
    .await?;
    if let Some(row) = row {
        let id: i64 = row.try_get(0)?;
        insert_keys(c, id, &s.keys).await?;
    }
    if let Some(nin) = &s.patient_nin {
        release_held(c, nin, s.created_ms).await?;
    }
    Ok(())
}

pub(in crate::store) async fn insert_work<C: GenericClient>(
    c: &C,
    message_id: i64,
    w: &NewStayWork,
) -> Res<()> {
    exec(
        c,
        "INSERT INTO stay_work (message_id, kind, patient_nin, state, next_ms, created_ms) \
         VALUES ($1, $2, $3, 'pending', $4, $4) ON CONFLICT (message_id) DO NOTHING",
        &[
            &message_id,
            &text(&w.kind),
            &opt_text(&w.patient_nin),
            &w.created_ms,
        ],
    )
    .await?;
    Ok(())
}

pub(in crate::store) async fn lease_work<C: GenericClient>(
    c: &C,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Res<Vec<StayWork>> {
    let rs = rows(
        c,
        "WITH due AS ( \
           SELECT id FROM stay_work WHERE state <> 'done' AND next_ms <= $2 \
             AND (lease_until_ms IS NULL OR lease_until_ms <= $2) \
           ORDER BY next_ms, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         UPDATE stay_work w SET lease_owner = $1, lease_until_ms = $2::BIGINT + $3::BIGINT \
         FROM due WHERE w.id = due.id \
         RETURNING w.id, w.message_id, w.kind, w.patient_nin, w.state, w.attempts, \
                   w.created_ms, w.note",
        &[&owner, &now_ms, &lease_ms, &limit],
    )
    .await?;
    let mut out = rs
        .iter()
        .map(|r| {
            Ok(StayWork {
                id: r.try_get(0)?,
                message_id: r.try_get(1)?,
                kind: r.try_get(2)?,
                patient_nin: r.try_get(3)?,
                state: r.try_get(4)?,
                attempts: r.try_get(5)?,
                created_ms: r.try_get(6)?,
                note: r.try_get(7)?,
            })
        })
        .collect::<Res<Vec<_>>>()?;
    out.sort_by_key(|w| w.id);
    Ok(out)
}

pub(in crate::store) async fn apply<C: GenericClient>(c: &C, ch: &StayChange) -> Res<StayApplied> {
    // Every check comes before every write: a conflict must leave nothing behind.
    if let Some((work_id, owner)) = &ch.work {
        let held = opt_row(
            c,
            "SELECT id FROM stay_work WHERE id = $1 AND state <> 'done' AND lease_owner = $2 \
             FOR UPDATE",
            &[work_id, owner],
        )
        .await?;
        if held.is_none() {
            return Ok(StayApplied::Conflict);
        }
    }
    let mut stay_id = None;
    if let Some(s) = &ch.stay {
        match s.id {
            Some(id) => {
                let n = exec(
                    c,
                    "UPDATE stays SET version = version + 1, patient_nin = $3, unit_key = $4, \
                     state = $5, epicrisis_due_ms = $6, doc_json = $7, updated_at = $8 \
                     WHERE id = $1 AND version = $2",
                    &[
                        &id,
                        &s.version,
                        &opt_text(&s.patient_nin),
                        &opt_text(&s.unit_key),
                        &text(&s.state),
                        &s.epicrisis_due_ms,
                        &text(&s.doc_json),
                        &now_text(),
                    ],
                )
                .await?;
                if n == 0 {
                    return Ok(StayApplied::Conflict);
                }
                stay_id = Some(id);
            }
            None => {
                let row = opt_row(
                    c,
                    "INSERT INTO stays (patient_nin, unit_key, state, epicrisis_due_ms, doc_json, \
                     created_ms, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[
                        &opt_text(&s.patient_nin),
                        &opt_text(&s.unit_key),
                        &text(&s.state),
                        &s.epicrisis_due_ms,
                        &text(&s.doc_json),
                        &s.created_ms,
                        &now_text(),
                    ],
                )
                .await?;
                if let Some(row) = row {
                    stay_id = Some(row.try_get(0)?);
                }
            }
        }
    }
    if let Some(id) = stay_id {
        insert_keys(c, id, &ch.keys).await?;
    }
    if let Some(message_id) = ch.message_id {
        if !ch.outbox.is_empty() {
            super::queue::lock_order_keys(c, &ch.outbox).await?;
            for o in &ch.outbox {
                super::queue::insert_outbox(c, message_id, o).await?;
            }
        }
    }
    for a in &ch.alerts {
        let a = match ch.message_id {
            Some(m) => a.with_message(m),
            None => a.clone(),
        };
        super::queue::raise_alert(c, &a).await?;
    }
    for k in &ch.clear_alerts {
        super::queue::clear_alert(c, k).await?;
    }
    if let Some((work_id, _)) = &ch.work {
        match &ch.outcome {
            WorkOutcome::Done => {
                exec(
                    c,
                    "UPDATE stay_work SET state = 'done', attempts = attempts + 1, \
                     lease_owner = NULL, lease_until_ms = NULL, note = NULL WHERE id = $1",
                    &[work_id],
                )
                .await?
            }
            WorkOutcome::Later { at_ms, held, note } => {
                exec(
                    c,
                    "UPDATE stay_work SET state = $2, attempts = attempts + 1, next_ms = $3, \
                     lease_owner = NULL, lease_until_ms = NULL, note = $4 WHERE id = $1",
                    &[
                        work_id,
                        &if *held { "held" } else { "pending" },
                        at_ms,
                        &text(note),
                    ],
                )
                .await?
            }
        };
    }
    if let Some(nin) = &ch.release_held_of {
        release_held(c, nin, ch.now_ms).await?;
    }
    Ok(StayApplied::Applied { stay_id })
}

pub(in crate::store) async fn by_keys<C: GenericClient>(
    c: &C,
    keys: &[String],
) -> Res<Option<StayRecord>> {
    for k in keys {
        let row = opt_row(
            c,
            "SELECT stay_id FROM stay_keys WHERE key = $1",
            &[&text(k)],
        )
        .await?;
        if let Some(row) = row {
            let id: i64 = row.try_get(0)?;
            return get(c, id).await;
        }
    }
    Ok(None)
}

pub(in crate::store) async fn open_stay<C: GenericClient>(
    c: &C,
    nin: &str,
    unit_keys: &[String],
) -> Res<Option<StayRecord>> {
    let units: Vec<String> = unit_keys.iter().map(|k| text(k).into_owned()).collect();
    let sql = format!(
        "SELECT {STAY_COLS} FROM stays WHERE patient_nin = $1 AND unit_key = ANY($2) \
         AND state NOT IN ('closed', 'cancelled', 'not-accepted') ORDER BY id DESC LIMIT 1"
    );
    match opt_row(c, &sql, &[&text(nin), &units]).await? {
        Some(r) => Ok(Some(stay_from_row(&r)?)),
        None => Ok(None),
    }
}

pub(in crate::store) async fn of_patient<C: GenericClient>(
    c: &C,
    nin: &str,
    limit: i64,
) -> Res<Vec<StayRecord>> {
    let sql =
        format!("SELECT {STAY_COLS} FROM stays WHERE patient_nin = $1 ORDER BY id DESC LIMIT $2");
    stays_from(&rows(c, &sql, &[&text(nin), &clamp_limit(limit)]).await?)
}

pub(in crate::store) async fn get<C: GenericClient>(c: &C, id: i64) -> Res<Option<StayRecord>> {
    let sql = format!("SELECT {STAY_COLS} FROM stays WHERE id = $1");
    match opt_row(c, &sql, &[&id]).await? {
        Some(r) => Ok(Some(stay_from_row(&r)?)),
        None => Ok(None),
    }
}

pub(in crate::store) async fn overdue<C: GenericClient>(
    c: &C,
    now_ms: i64,
    limit: i64,
) -> Res<Vec<StayRecord>> {
    let sql = format!(
        "SELECT {STAY_COLS} FROM stays WHERE epicrisis_due_ms IS NOT NULL \
         AND epicrisis_due_ms <= $1 ORDER BY epicrisis_due_ms, id LIMIT $2"
    );
    stays_from(&rows(c, &sql, &[&now_ms, &clamp_limit(limit)]).await?)
}

pub(in crate::store) async fn counts<C: GenericClient>(c: &C) -> Res<Vec<(String, i64)>> {
    let rs = rows(
        c,
        // A UNION orders by output columns only: the collation goes on the outer query.
        "SELECT name, n FROM ( \
           SELECT state AS name, COUNT(*) AS n FROM stays GROUP BY state \
           UNION ALL SELECT 'work:' || state, COUNT(*) FROM stay_work WHERE state <> 'done' \
           GROUP BY state) AS counted ORDER BY name COLLATE \"C\"",
        &[],
    )
    .await?;
    rs.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

pub(in crate::store) async fn record_audit<C: GenericClient>(c: &C, a: &NewAudit) -> Res<i64> {
    let row = opt_row(
        c,
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id",
        &[
            &text(&a.at),
            &text(&a.actor),
            &text(&a.action),
            &text(&a.subject),
            &text(&a.detail),
        ],
    )
    .await?;
    match row {
        Some(r) => Ok(r.try_get(0)?),
        None => Ok(0),
    }
}

pub(in crate::store) async fn audit_log<C: GenericClient>(
    c: &C,
    limit: i64,
) -> Res<Vec<AuditEntry>> {
    let rs = rows(
        c,
        "SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        &[&clamp_limit(limit)],
    )
    .await?;
    rs.iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get(0)?,
                entry: NewAudit {
                    at: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    subject: r.try_get(4)?,
                    detail: r.try_get(5)?,
                },
            })
        })
        .collect()
}
