//! The store contract for stays, run with the other store cases against every engine: stays
//! opened with their referral and found by link key, patient or unit; the stay tracker's work
//! queue (leases, held items woken by a new stay of the same patient, finished items); versioned,
//! all-or-nothing stay writes with their outbox rows, alerts and keys; overdue epicrises; counts;
//! the append-only audit log; and U+0000 in any of their text fields.

use kadgate::store::{
    Effects, IngestOutcome, NewAlert, NewAudit, NewStay, NewStayWork, OutboxFilter, OutboxState,
    StayApplied, StayChange, StayRecord, StayWork, StayWrite, Store, WorkOutcome,
};

use super::{outbox, referral, store_new, Backend};

/// Synthetic national ids (valid check digits).
const NIN_A: &str = "30014500282";
const NIN_B: &str = "27094100211";
const UNIT_A: &str = "HER:990002";
const UNIT_B: &str = "HER:990003";

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

/// The stay a referral opens, linked by `keys`.
fn opening(nin: &str, unit: &str, keys: &[&str], created_ms: i64) -> NewStay {
    NewStay {
        patient_nin: Some(nin.into()),
        unit_key: Some(unit.into()),
        state: "referred".into(),
        keys: strings(keys),
        doc_json: format!("{{\"opened_ms\":{created_ms}}}"),
        created_ms,
    }
}

/// Store a referral (dedup key from `key`) that opens `stay`; its message id.
async fn refer(store: &dyn Store, key: &str, stay: NewStay) -> i64 {
    let effects = Effects {
        stay: Some(stay),
        ..Effects::default()
    };
    store_new(store, referral(key, effects)).await
}

/// Store a message from a unit about `nin`, queued for the stay tracker; its message id.
async fn queue_work(store: &dyn Store, key: &str, nin: &str, created_ms: i64) -> i64 {
    let effects = Effects {
        stay_work: Some(NewStayWork {
            kind: "event".into(),
            patient_nin: Some(nin.into()),
            created_ms,
        }),
        ..Effects::default()
    };
    store_new(store, referral(key, effects)).await
}

/// A step that writes nothing but `outcome` for `work` (leased by `owner`).
fn step(work: &StayWork, owner: &str, now_ms: i64, outcome: WorkOutcome) -> StayChange {
    StayChange {
        now_ms,
        work: Some((work.id, owner.into())),
        message_id: Some(work.message_id),
        stay: None,
        keys: Vec::new(),
        outbox: Vec::new(),
        alerts: Vec::new(),
        clear_alerts: Vec::new(),
        outcome,
        release_held_of: None,
    }
}

/// A step with no work item (the overdue check, a release).
fn bare(now_ms: i64) -> StayChange {
    StayChange {
        now_ms,
        work: None,
        message_id: None,
        stay: None,
        keys: Vec::new(),
        outbox: Vec::new(),
        alerts: Vec::new(),
        clear_alerts: Vec::new(),
        outcome: WorkOutcome::Done,
        release_held_of: None,
    }
}

fn held(at_ms: i64) -> WorkOutcome {
    WorkOutcome::Later {
        at_ms,
        held: true,
        note: "waiting for the stay's referral".into(),
    }
}

/// A new stay (no referral came through the gateway).
fn new_stay(nin: &str, state: &str, due: Option<i64>, created_ms: i64) -> StayWrite {
    StayWrite {
        id: None,
        version: 0,
        patient_nin: Some(nin.into()),
        unit_key: Some(UNIT_A.into()),
        state: state.into(),
        epicrisis_due_ms: due,
        doc_json: "{\"v\":1}".into(),
        created_ms,
    }
}

/// `rec` rewritten with `state`, over `version`.
fn rewrite(rec: &StayRecord, version: i64, state: &str, doc_json: &str) -> StayWrite {
    StayWrite {
        id: Some(rec.id),
        version,
        patient_nin: rec.patient_nin.clone(),
        unit_key: rec.unit_key.clone(),
        state: state.into(),
        epicrisis_due_ms: rec.epicrisis_due_ms,
        doc_json: doc_json.into(),
        created_ms: rec.created_ms,
    }
}

fn alert(dedup_key: &str) -> NewAlert {
    NewAlert {
        kind: "stay.test".into(),
        unit_key: Some(UNIT_A.into()),
        reason: format!("test alert {dedup_key}"),
        message_id: None,
        outbox_id: None,
        dedup_key: dedup_key.into(),
    }
}

async fn write(store: &dyn Store, change: StayChange) -> Option<i64> {
    match store.apply_stay(change).await.unwrap() {
        StayApplied::Applied { stay_id } => stay_id,
        StayApplied::Conflict => panic!("expected the change to be applied"),
    }
}

async fn by_keys(store: &dyn Store, keys: &[&str]) -> Option<i64> {
    store
        .stay_by_keys(&strings(keys))
        .await
        .unwrap()
        .map(|s| s.id)
}

/// Lease the due work, expecting exactly one item.
async fn lease_one(store: &dyn Store, owner: &str, now_ms: i64) -> StayWork {
    let mut got = store
        .lease_stay_work(owner, now_ms, 5_000, 10)
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "one item due at {now_ms}");
    got.remove(0)
}

async fn lease_ids(store: &dyn Store, owner: &str, now_ms: i64) -> Vec<i64> {
    store
        .lease_stay_work(owner, now_ms, 5_000, 10)
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect()
}

async fn open_ids(store: &dyn Store, nin: &str, units: &[&str]) -> Option<i64> {
    store
        .open_stay(nin, &strings(units))
        .await
        .unwrap()
        .map(|s| s.id)
}

async fn stays_of(store: &dyn Store, nin: &str, limit: i64) -> Vec<i64> {
    store
        .stays_of_patient(nin, limit)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect()
}

pub async fn stays_open_with_their_referral_and_link_by_keys(backend: &dyn Backend) {
    for nin in [NIN_A, NIN_B] {
        assert!(kadgate::ident::parse_person_number(nin).is_ok());
    }
    let store = backend.open().await;
    let m1 = refer(
        &*store,
        "r1",
        opening(NIN_A, UNIT_A, &["id:r1", "doc:r1"], 1_000),
    )
    .await;
    let s1 = store
        .stay_by_keys(&strings(&["id:r1"]))
        .await
        .unwrap()
        .expect("the referral's stay");
    assert_eq!(s1.version, 1);
    assert_eq!(s1.patient_nin.as_deref(), Some(NIN_A));
    assert_eq!(s1.unit_key.as_deref(), Some(UNIT_A));
    assert_eq!(s1.state, "referred");
    assert_eq!(s1.referral_message_id, Some(m1));
    assert_eq!(s1.epicrisis_due_ms, None);
    assert_eq!(s1.doc_json, "{\"opened_ms\":1000}");
    assert_eq!(s1.created_ms, 1_000);
    assert!(!s1.updated_at.is_empty());
    assert_eq!(store.get_stay(s1.id).await.unwrap(), Some(s1.clone()));
    assert_eq!(store.get_stay(s1.id + 1_000).await.unwrap(), None);
    assert_eq!(by_keys(&*store, &["nope", "doc:r1"]).await, Some(s1.id));
    assert_eq!(by_keys(&*store, &["nope"]).await, None);
    assert_eq!(by_keys(&*store, &[]).await, None);

    // A resend opens nothing: neither a second stay nor its new key.
    let again = Effects {
        stay: Some(opening(NIN_A, UNIT_A, &["id:r1", "id:resent"], 1_500)),
        ..Effects::default()
    };
    assert!(matches!(
        store.ingest(referral("r1", again)).await.unwrap(),
        IngestOutcome::Duplicate { id, .. } if id == m1
    ));
    assert_eq!(stays_of(&*store, NIN_A, 10).await, vec![s1.id]);
    assert_eq!(by_keys(&*store, &["id:resent"]).await, None);

    // A second stay of the patient at another unit; the key it shares stays with the first.
    refer(
        &*store,
        "r2",
        opening(NIN_A, UNIT_B, &["id:r2", "doc:r1"], 2_000),
    )
    .await;
    let s2 = by_keys(&*store, &["id:r2"]).await.expect("second stay");
    assert_ne!(s2, s1.id);
    assert_eq!(by_keys(&*store, &["doc:r1"]).await, Some(s1.id));
    assert_eq!(by_keys(&*store, &["id:r2", "id:r1"]).await, Some(s2));
    assert_eq!(by_keys(&*store, &["id:r1", "id:r2"]).await, Some(s1.id));
    refer(&*store, "r3", opening(NIN_B, UNIT_A, &["id:r3"], 3_000)).await;

    // Newest first; a limit of 0 is the default limit.
    assert_eq!(stays_of(&*store, NIN_A, 10).await, vec![s2, s1.id]);
    assert_eq!(stays_of(&*store, NIN_A, 1).await, vec![s2]);
    assert_eq!(stays_of(&*store, NIN_A, 0).await, vec![s2, s1.id]);
    assert!(stays_of(&*store, "13116900216", 10).await.is_empty());

    assert_eq!(open_ids(&*store, NIN_A, &[UNIT_A]).await, Some(s1.id));
    assert_eq!(open_ids(&*store, NIN_A, &[UNIT_B]).await, Some(s2));
    assert_eq!(
        open_ids(&*store, NIN_A, &["HER:1", UNIT_A, UNIT_B]).await,
        Some(s2)
    );
    assert_eq!(open_ids(&*store, NIN_A, &["HER:1"]).await, None);
    assert_eq!(open_ids(&*store, NIN_A, &[]).await, None);
    assert_eq!(open_ids(&*store, NIN_B, &[UNIT_B]).await, None);

    // Closed and not accepted stays are not open.
    let rec2 = store.get_stay(s2).await.unwrap().unwrap();
    let mut close = bare(4_000);
    close.stay = Some(rewrite(&rec2, rec2.version, "closed", &rec2.doc_json));
    assert_eq!(write(&*store, close).await, Some(s2));
    assert_eq!(
        open_ids(&*store, NIN_A, &[UNIT_A, UNIT_B]).await,
        Some(s1.id)
    );
    let mut refuse = bare(4_000);
    refuse.stay = Some(rewrite(&s1, s1.version, "not-accepted", &s1.doc_json));
    assert_eq!(write(&*store, refuse).await, Some(s1.id));
    assert_eq!(open_ids(&*store, NIN_A, &[UNIT_A, UNIT_B]).await, None);
    store.close().await.unwrap();
}

pub async fn stay_work_is_leased_held_released_and_finished(backend: &dyn Backend) {
    let store = backend.open().await;
    let m = queue_work(&*store, "w1", NIN_A, 1_000).await;
    let w = lease_one(&*store, "t-a", 1_000).await;
    let want = StayWork {
        id: w.id,
        message_id: m,
        kind: "event".into(),
        patient_nin: Some(NIN_A.into()),
        state: "pending".into(),
        attempts: 0,
        created_ms: 1_000,
        note: None,
    };
    assert_eq!(w, want);
    // Not handed out again while the lease holds; once it ran out, to another owner.
    assert!(lease_ids(&*store, "t-b", 5_999).await.is_empty());
    assert_eq!(lease_ids(&*store, "t-b", 6_000).await, vec![w.id]);

    // The owner that lost the lease records nothing.
    let mut late = step(&w, "t-a", 6_100, WorkOutcome::Done);
    late.stay = Some(new_stay(NIN_A, "referred", None, 6_100));
    late.keys = strings(&["id:late"]);
    late.alerts = vec![alert("late")];
    assert_eq!(store.apply_stay(late).await.unwrap(), StayApplied::Conflict);
    assert!(stays_of(&*store, NIN_A, 10).await.is_empty());
    assert_eq!(by_keys(&*store, &["id:late"]).await, None);
    assert!(store.alerts(false, 10).await.unwrap().is_empty());

    // A failure is tried again at its time; a new stay does not wake it (it is not held).
    let retry = WorkOutcome::Later {
        at_ms: 30_000,
        held: false,
        note: "a register could not answer".into(),
    };
    assert_eq!(write(&*store, step(&w, "t-b", 6_200, retry)).await, None);
    refer(&*store, "s1", opening(NIN_A, UNIT_A, &["id:s1"], 7_000)).await;
    assert!(lease_ids(&*store, "t-b", 29_999).await.is_empty());
    let got = lease_one(&*store, "t-b", 30_000).await;
    assert_eq!(
        (got.state.as_str(), got.attempts, got.note.as_deref()),
        ("pending", 1, Some("a register could not answer"))
    );

    // Held until 90 000 — or until a new stay of the same patient, or a release, wakes it.
    assert_eq!(
        write(&*store, step(&w, "t-b", 30_100, held(90_000))).await,
        None
    );
    assert!(store
        .stay_counts()
        .await
        .unwrap()
        .contains(&("work:held".to_string(), 1)));
    refer(&*store, "s2", opening(NIN_B, UNIT_A, &["id:s2"], 31_000)).await;
    let mut other = bare(32_000);
    other.release_held_of = Some(NIN_B.into());
    assert_eq!(write(&*store, other).await, None);
    assert!(lease_ids(&*store, "t-c", 39_999).await.is_empty());
    refer(&*store, "s3", opening(NIN_A, UNIT_A, &["id:s3"], 40_000)).await;
    let got = lease_one(&*store, "t-c", 40_000).await;
    assert_eq!(
        (got.id, got.state.as_str(), got.attempts),
        (w.id, "held", 2)
    );
    assert_eq!(got.note.as_deref(), Some("waiting for the stay's referral"));

    assert_eq!(
        write(&*store, step(&w, "t-c", 40_100, held(90_000))).await,
        None
    );
    let mut wake = bare(50_000);
    wake.release_held_of = Some(NIN_A.into());
    assert_eq!(write(&*store, wake).await, None);
    assert!(lease_ids(&*store, "t-d", 49_999).await.is_empty());
    assert_eq!(lease_ids(&*store, "t-d", 50_000).await, vec![w.id]);

    // Done: never handed out again, no longer counted.
    assert_eq!(
        write(&*store, step(&w, "t-d", 50_100, WorkOutcome::Done)).await,
        None
    );
    assert!(lease_ids(&*store, "t-e", 10_000_000).await.is_empty());
    assert!(!store
        .stay_counts()
        .await
        .unwrap()
        .iter()
        .any(|(k, _)| k.starts_with("work:")));
    // A finished item cannot be finished again, even by its last owner.
    assert_eq!(
        store
            .apply_stay(step(&w, "t-d", 50_200, WorkOutcome::Done))
            .await
            .unwrap(),
        StayApplied::Conflict
    );

    // Due order (next_ms, then id) and the limit.
    queue_work(&*store, "w2", NIN_B, 2_000_000).await;
    let w3 = queue_work(&*store, "w3", NIN_B, 1_500_000).await;
    let first = store
        .lease_stay_work("t-f", 3_000_000, 5_000, 1)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].message_id, w3);
    assert!(store
        .lease_stay_work("t-f", 3_000_000, 5_000, 0)
        .await
        .unwrap()
        .is_empty());
    store.close().await.unwrap();
}

pub async fn stay_writes_are_versioned_and_atomic(backend: &dyn Backend) {
    let store = backend.open().await;
    let m = queue_work(&*store, "m", NIN_A, 1_000).await;
    let w = lease_one(&*store, "t", 1_000).await;

    // A new stay: version 1, no referral.
    let mut open = bare(1_000);
    open.stay = Some(new_stay(NIN_A, "admitted", None, 1_000));
    open.keys = strings(&["id:m"]);
    let id = write(&*store, open).await.expect("a new stay's id");
    let rec = store.get_stay(id).await.unwrap().unwrap();
    assert_eq!(
        (rec.version, rec.state.as_str(), rec.referral_message_id),
        (1, "admitted", None)
    );
    assert_eq!(by_keys(&*store, &["id:m"]).await, Some(id));
    let mut update = bare(2_000);
    update.stay = Some(rewrite(&rec, 1, "admitted", "{\"v\":2}"));
    assert_eq!(write(&*store, update).await, Some(id));
    let rec = store.get_stay(id).await.unwrap().unwrap();
    assert_eq!((rec.version, rec.doc_json.as_str()), (2, "{\"v\":2}"));

    // An alert the next change clears.
    let mut keep = bare(2_500);
    keep.message_id = Some(m);
    keep.alerts = vec![alert("keep")];
    assert_eq!(write(&*store, keep).await, None);
    let open_alerts = store.alerts(true, 10).await.unwrap();
    assert_eq!(open_alerts.len(), 1);
    assert_eq!(open_alerts[0].message_id, Some(m), "the change's message");

    // The whole change over a stale version: nothing of it is recorded.
    let full = |version: i64| {
        let mut c = step(&w, "t", 3_000, WorkOutcome::Done);
        let mut s = rewrite(&rec, version, "discharged", "{\"v\":3}");
        s.epicrisis_due_ms = Some(50_000);
        c.stay = Some(s);
        c.keys = strings(&["doc:x"]);
        c.outbox = vec![
            outbox("epicrisis", "HER:990001", "HER:990001/x", "epi-1"),
            outbox("epicrisis", "HER:990004", "HER:990004/x", "epi-2"),
        ];
        c.alerts = vec![alert("raised")];
        c.clear_alerts = strings(&["keep"]);
        c
    };
    assert_eq!(
        store.apply_stay(full(1)).await.unwrap(),
        StayApplied::Conflict
    );
    let after = store.get_stay(id).await.unwrap().unwrap();
    assert_eq!(after, rec, "the stay is unchanged");
    assert_eq!(by_keys(&*store, &["doc:x"]).await, None);
    let outbox_of_m = OutboxFilter {
        message_id: Some(m),
        ..OutboxFilter::default()
    };
    assert!(store.list_outbox(&outbox_of_m).await.unwrap().is_empty());
    let open_alerts = store.alerts(true, 10).await.unwrap();
    assert_eq!(open_alerts.len(), 1);
    assert_eq!(open_alerts[0].reason, "test alert keep");
    assert!(store
        .stay_counts()
        .await
        .unwrap()
        .contains(&("work:pending".to_string(), 1)));

    // Over the version read: all of it.
    assert_eq!(write(&*store, full(2)).await, Some(id));
    let rec = store.get_stay(id).await.unwrap().unwrap();
    assert_eq!(
        (rec.version, rec.state.as_str(), rec.epicrisis_due_ms),
        (3, "discharged", Some(50_000))
    );
    assert_eq!(by_keys(&*store, &["doc:x"]).await, Some(id));
    let rows = store.list_outbox(&outbox_of_m).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.state == OutboxState::Pending));
    let mut leased: Vec<String> = store
        .lease_outbox("d", 3_000, 5_000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.out_msg_id)
        .collect();
    leased.sort();
    assert_eq!(leased, vec!["epi-1", "epi-2"]);
    let open_alerts = store.alerts(true, 10).await.unwrap();
    assert_eq!(open_alerts.len(), 1);
    assert_eq!(open_alerts[0].reason, "test alert raised");
    assert_eq!(open_alerts[0].message_id, Some(m));
    let all_alerts = store.alerts(false, 10).await.unwrap();
    assert_eq!(all_alerts.len(), 2);
    assert!(all_alerts
        .iter()
        .any(|a| a.reason == "test alert keep" && a.cleared_at.is_some()));
    assert!(
        lease_ids(&*store, "t2", 10_000_000).await.is_empty(),
        "done"
    );

    // Overdue epicrises: due by now, earliest first; stays without a deadline never.
    let mut early = bare(4_000);
    early.stay = Some(new_stay(NIN_B, "discharged", Some(40_000), 4_000));
    let early = write(&*store, early).await.unwrap();
    let mut referred = bare(4_000);
    referred.stay = Some(new_stay(NIN_B, "referred", None, 4_000));
    write(&*store, referred).await.unwrap();
    let overdue = |now: i64, limit: i64| {
        let store = store.clone();
        async move {
            store
                .stays_overdue(now, limit)
                .await
                .unwrap()
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    assert!(overdue(39_999, 10).await.is_empty());
    assert_eq!(overdue(49_999, 10).await, vec![early]);
    assert_eq!(overdue(50_000, 10).await, vec![early, id]);
    assert_eq!(overdue(50_000, 1).await, vec![early]);

    // Counts: stays per state, and the work still waiting.
    queue_work(&*store, "pending", NIN_B, 5_000).await;
    queue_work(&*store, "held", NIN_B, 5_000).await;
    let hold = store.lease_stay_work("t", 5_000, 5_000, 1).await.unwrap();
    assert_eq!(hold.len(), 1);
    assert_eq!(
        write(&*store, step(&hold[0], "t", 5_000, held(9_000))).await,
        None
    );
    let counts: Vec<(String, i64)> = [
        ("discharged", 2),
        ("referred", 1),
        ("work:held", 1),
        ("work:pending", 1),
    ]
    .iter()
    .map(|(k, n)| ((*k).to_owned(), *n))
    .collect();
    assert_eq!(store.stay_counts().await.unwrap(), counts);
    store.close().await.unwrap();
}

pub async fn the_audit_log_is_append_only(backend: &dyn Backend) {
    let store = backend.open().await;
    let entry = |n: u32| NewAudit {
        at: format!("2026-01-01T00:00:0{n}.000Z"),
        actor: "operator-token 127.0.0.1".into(),
        action: "stays.search".into(),
        subject: NIN_A.into(),
        detail: format!("stays {n}"),
    };
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(store.record_audit(entry(n)).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    let log = store.audit_log(10).await.unwrap();
    let got: Vec<(i64, NewAudit)> = log.into_iter().map(|e| (e.id, e.entry)).collect();
    let want = vec![(ids[2], entry(3)), (ids[1], entry(2)), (ids[0], entry(1))];
    assert_eq!(got, want, "newest first");
    assert_eq!(store.audit_log(2).await.unwrap().len(), 2);
    assert_eq!(
        store.audit_log(0).await.unwrap().len(),
        3,
        "0 = the default"
    );

    // The database itself refuses to change or delete an entry …
    for sql in [
        "UPDATE audit_log SET subject = 'someone else'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE id = (SELECT MAX(id) FROM audit_log)",
    ] {
        let refused = backend.execute_raw(sql).await;
        assert!(
            matches!(&refused, Err(m) if m.contains("append-only")),
            "{sql}: {refused:?}"
        );
    }
    let after: Vec<(i64, NewAudit)> = store
        .audit_log(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.entry))
        .collect();
    assert_eq!(after, want);
    // … but appending is allowed, past the store too.
    assert_eq!(
        backend
            .execute_raw(
                "INSERT INTO audit_log (at, actor, action, subject, detail) \
                 VALUES ('2026-01-01T00:00:09.000Z', 'cli', 'stays.get', '1', '1')"
            )
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.audit_log(10).await.unwrap()[0].entry.actor, "cli");
    store.close().await.unwrap();
}

/// PostgreSQL text cannot hold U+0000: it is stored as U+FFFD, and lookups map it the same way.
pub async fn nul_in_stay_fields(backend: &dyn Backend) {
    let store = backend.open().await;
    let nin = "300145\u{0}00282";
    let unit = "HER:\u{0}2";
    let same = |stored: &str, sent: &str| stored.replace('\u{fffd}', "\0") == sent;
    let mut stay = opening(nin, unit, &["id:a\0b"], 1_000);
    stay.doc_json = "{\"note\":\"a\\u0000b\0\"}".into();
    stay.state = "refer\0red".into();
    refer(&*store, "nul\0ref", stay).await;
    let rec = store
        .stay_by_keys(&strings(&["id:a\0b"]))
        .await
        .unwrap()
        .expect("found by a key with U+0000");
    assert!(same(&rec.doc_json, "{\"note\":\"a\\u0000b\0\"}"));
    assert!(same(rec.patient_nin.as_deref().unwrap(), nin));
    assert_eq!(by_keys(&*store, &["id:a"]).await, None);
    assert_eq!(stays_of(&*store, nin, 10).await, vec![rec.id]);
    assert_eq!(open_ids(&*store, nin, &[unit]).await, Some(rec.id));

    // Work for that patient, held with a note, woken by a release naming the patient.
    queue_work(&*store, "nul\0work", nin, 2_000).await;
    let w = lease_one(&*store, "t", 2_000).await;
    assert!(same(w.patient_nin.as_deref().unwrap(), nin));
    let mut hold = step(
        &w,
        "t",
        2_000,
        WorkOutcome::Later {
            at_ms: 90_000,
            held: true,
            note: "wait\0".into(),
        },
    );
    let mut s = rewrite(&rec, rec.version, "admit\0ted", "{\"x\":\"\0\"}");
    s.unit_key = Some(unit.into());
    hold.stay = Some(s);
    hold.keys = strings(&["doc:\0"]);
    hold.alerts = vec![alert("nul\0alert")];
    hold.clear_alerts = strings(&["nul\0none"]);
    assert_eq!(write(&*store, hold).await, Some(rec.id));
    assert_eq!(by_keys(&*store, &["doc:\0"]).await, Some(rec.id));
    let mut wake = bare(3_000);
    wake.release_held_of = Some(nin.into());
    write(&*store, wake).await;
    let again = lease_one(&*store, "t", 3_000).await;
    assert!(same(again.note.as_deref().unwrap(), "wait\0"));

    let entry = NewAudit {
        at: "2026-01-01T00:00:00.000Z\0".into(),
        actor: "op\0".into(),
        action: "stays.search\0".into(),
        subject: nin.into(),
        detail: "\0".into(),
    };
    store.record_audit(entry.clone()).await.unwrap();
    let got = store.audit_log(1).await.unwrap().remove(0).entry;
    assert!(same(&got.at, &entry.at));
    assert!(same(&got.actor, &entry.actor));
    assert!(same(&got.action, &entry.action));
    assert!(same(&got.subject, &entry.subject));
    assert!(same(&got.detail, &entry.detail));
    store.close().await.unwrap();
}

/// Several writers over the same version (several tracker instances, one store): exactly one
/// write is recorded; leases from several owners at once hand out each item once.
pub async fn concurrent_stay_writes_and_leases(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut open = bare(1_000);
    open.stay = Some(new_stay(NIN_A, "admitted", None, 1_000));
    let id = write(&*store, open).await.unwrap();
    let rec = store.get_stay(id).await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        let mut c = bare(2_000);
        c.stay = Some(rewrite(
            &rec,
            rec.version,
            "discharged",
            &format!("{{\"n\":{n}}}"),
        ));
        c.keys = vec![format!("writer:{n}")];
        tasks.push(tokio::spawn(
            async move { store.apply_stay(c).await.unwrap() },
        ));
    }
    let mut applied = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), StayApplied::Applied { .. }) {
            applied += 1;
        }
    }
    assert_eq!(applied, 1, "one writer wins");
    let after = store.get_stay(id).await.unwrap().unwrap();
    assert_eq!(after.version, rec.version + 1);
    let winner = after
        .doc_json
        .trim_start_matches("{\"n\":")
        .trim_end_matches('}');
    let keys: Vec<String> = (0..8).map(|n| format!("writer:{n}")).collect();
    for (n, key) in keys.iter().enumerate() {
        let found = store.stay_by_keys(std::slice::from_ref(key)).await.unwrap();
        assert_eq!(
            found.is_some(),
            winner == n.to_string(),
            "only the winner's keys are stored"
        );
    }

    const ITEMS: usize = 24;
    for n in 0..ITEMS {
        queue_work(&*store, &format!("cw{n}"), NIN_B, 5_000).await;
    }
    let mut tasks = Vec::new();
    for owner in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .lease_stay_work(&format!("o{owner}"), 6_000, 60_000, 2)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|w| w.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (ITEMS, ITEMS), "each item leased once");
    store.close().await.unwrap();
}
