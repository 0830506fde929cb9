//! The outbox, decisions, routes and alerts in the SQLite store, against a real database file:
//! leases (and a crashed worker's rows coming back), per-key ordering, attempts recorded only
//! under a held lease, receipts correlated in the ingest transaction, overdue receipts, retries.

use kadgate::store::sqlite::{SqliteOptions, SqliteStore};
use kadgate::store::{
    Ack, Attempt, DecisionSource, Direction, Effects, IngestOutcome, NewAck, NewDecision,
    NewMessage, NewOutbox, NewRoute, OutboxFilter, OutboxState, Store,
};

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("k.db"), SqliteOptions::default()).expect("open store")
}

fn outbox(purpose: &str, recipient: &str, order_key: &str, out_msg_id: &str) -> NewOutbox {
    NewOutbox {
        purpose: purpose.into(),
        recipient_key: recipient.into(),
        recipient_name: Some("Unit".into()),
        order_key: order_key.into(),
        destination: "http://127.0.0.1:1/unit".into(),
        endpoint_json: Some("{}".into()),
        format: "henvisning-20".into(),
        content_type: "application/xml".into(),
        body: b"<MsgHead/>".to_vec(),
        out_msg_id: out_msg_id.into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        created_ms: 1_000,
        ack_within_ms: 60_000,
        dead_reason: None,
    }
}

fn message(key: &str, effects: Effects) -> NewMessage {
    NewMessage {
        received_at: "2026-01-01T00:00:00Z".into(),
        channel: "http".into(),
        direction: Direction::In,
        format: Some("henvisning-20".into()),
        msg_type: Some("HENVISNING".into()),
        msg_id: Some(key.into()),
        sender_key: Some("HER:990010".into()),
        dedup_key: Some(format!("HER:990010/{key}")),
        status: "accepted".into(),
        raw: key.as_bytes().to_vec(),
        header_json: None,
        body_json: None,
        findings_json: "[]".into(),
        correlates_to: None,
        receipts: vec![],
        reply_json: None,
        content_sha256: None,
        effects,
    }
}

fn decision(kind: &str, source: DecisionSource) -> NewDecision {
    NewDecision {
        decided_at: "2026-01-01T00:00:00Z".into(),
        decision: kind.into(),
        source,
        decided_by: None,
        note: None,
        ruleset_id: Some("national-default".into()),
        ruleset_version: Some("1".into()),
        news2: Some(3),
        rules: vec!["r1".into()],
        reasons_no: vec!["grunn".into()],
        reasons_en: vec!["reason".into()],
    }
}

fn route(unit: &str) -> NewRoute {
    NewRoute {
        routed_at: "2026-01-01T00:00:00Z".into(),
        code: "route.catchment".into(),
        unit_key: Some(unit.into()),
        unit_name: Some("Unit".into()),
        municipality: Some("9901".into()),
        municipality_source: Some("address".into()),
        full: false,
        diverted_from: None,
        reason_en: "serves 9901".into(),
        reason_no: "dekker 9901".into(),
        holds_bed: true,
    }
}

async fn stored_id(store: &SqliteStore, msg: NewMessage) -> i64 {
    match store.ingest(msg).await.unwrap() {
        IngestOutcome::Stored { id } => id,
        other => panic!("expected a new row, got {other:?}"),
    }
}

#[tokio::test]
async fn effects_are_stored_with_the_message_and_never_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let effects = Effects {
        decision: Some(decision("accepted", DecisionSource::Rules)),
        route: Some(route("HER:990002")),
        outbox: vec![
            outbox("referral", "HER:990002", "HER:990002/a", "out-1"),
            outbox("business-reply", "HER:990010", "HER:990010/a", "out-2"),
        ],
        ..Effects::default()
    };
    let id = stored_id(&store, message("a", effects.clone())).await;
    // A resend is a duplicate: nothing is recorded again.
    assert!(matches!(
        store.ingest(message("a", effects)).await.unwrap(),
        IngestOutcome::Duplicate { .. }
    ));
    let rows = store
        .list_outbox(&OutboxFilter {
            message_id: Some(id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.state == OutboxState::Pending));
    assert_eq!(store.decisions(id).await.unwrap().len(), 1);
    assert_eq!(store.routes(id).await.unwrap().len(), 1);
    assert_eq!(
        store.beds_held().await.unwrap(),
        vec![("HER:990002".to_string(), 1)]
    );

    // An override to not-accepted frees the bed and is kept after the first decision.
    store
        .record_effects(
            id,
            Effects {
                decision: Some(decision("not-accepted", DecisionSource::Override)),
                ..Effects::default()
            },
        )
        .await
        .unwrap();
    let ds = store.decisions(id).await.unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[1].decision.source, DecisionSource::Override);
    assert!(store.beds_held().await.unwrap().is_empty());
}

#[tokio::test]
async fn leases_order_and_lost_leases() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let effects = Effects {
        outbox: vec![
            outbox("referral", "HER:1", "k1", "o1"),
            outbox("business-reply", "HER:2", "k2", "o2"),
        ],
        ..Effects::default()
    };
    let id = stored_id(&store, message("m1", effects)).await;
    // A second row with order key k1 (a later message to the same recipient).
    stored_id(
        &store,
        message(
            "m2",
            Effects {
                outbox: vec![outbox("referral", "HER:1", "k1", "o3")],
                ..Effects::default()
            },
        ),
    )
    .await;

    // Only the first pending row of k1 is due, plus k2's.
    let a = store.lease_outbox("w-a", 10_000, 5_000, 10).await.unwrap();
    let ids: Vec<&str> = a.iter().map(|r| r.out_msg_id.as_str()).collect();
    assert_eq!(ids, vec!["o1", "o2"]);
    assert!(a.iter().all(|r| r.message_id == id));
    // Leased rows are not handed out again while the lease lives.
    assert!(store
        .lease_outbox("w-b", 11_000, 5_000, 10)
        .await
        .unwrap()
        .is_empty());

    // w-a crashes; after the lease runs out w-b takes both rows.
    let b = store.lease_outbox("w-b", 15_001, 5_000, 10).await.unwrap();
    assert_eq!(b.len(), 2);
    assert!(store
        .record_attempt(b[1].id, "w-b", Attempt::Delivered { at_ms: 15_100 })
        .await
        .unwrap());
    // w-a's late result is ignored, w-b's counts.
    assert!(!store
        .record_attempt(b[0].id, "w-a", Attempt::Delivered { at_ms: 15_100 })
        .await
        .unwrap());
    assert!(store
        .record_attempt(
            b[0].id,
            "w-b",
            Attempt::Failed {
                error: "connect".into(),
                retry_at_ms: 20_000
            }
        )
        .await
        .unwrap());
    // o1 failed and waits until 20 000; o3 stays behind it (order).
    assert!(store
        .lease_outbox("w-b", 19_999, 5_000, 10)
        .await
        .unwrap()
        .is_empty());
    let c = store.lease_outbox("w-b", 20_000, 5_000, 10).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].out_msg_id, "o1");
    assert_eq!(c[0].attempts, 1);
    assert!(store
        .record_attempt(c[0].id, "w-b", Attempt::Delivered { at_ms: 20_010 })
        .await
        .unwrap());
    // Now o3 is due.
    let d = store.lease_outbox("w-b", 20_020, 5_000, 10).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].out_msg_id, "o3");
}

#[tokio::test]
async fn receipts_are_correlated_and_overdue_ones_alert() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    stored_id(
        &store,
        message(
            "m",
            Effects {
                outbox: vec![
                    outbox("referral", "HER:1", "k1", "o1"),
                    outbox("referral", "HER:2", "k2", "o2"),
                ],
                ..Effects::default()
            },
        ),
    )
    .await;
    let rows = store.lease_outbox("w", 2_000, 5_000, 10).await.unwrap();
    for r in &rows {
        store
            .record_attempt(r.id, "w", Attempt::Delivered { at_ms: 2_000 })
            .await
            .unwrap();
    }
    // A negative AppRec for o1 arrives as a message of its own.
    let mut apprec = message(
        "apprec-1",
        Effects {
            ack: Some(NewAck {
                out_msg_id: "o1".into(),
                ack: Ack {
                    status: "rejected".into(),
                    codes: vec!["E21".into()],
                },
                at_ms: 3_000,
            }),
            ..Effects::default()
        },
    );
    apprec.status = "receipt".into();
    let apprec_id = stored_id(&store, apprec).await;
    let o1 = store.get_outbox(rows[0].id).await.unwrap().unwrap();
    assert_eq!(o1.state, OutboxState::Nacked);
    assert_eq!(o1.ack_codes, vec!["E21"]);
    assert_eq!(o1.ack_message_id, Some(apprec_id));

    // o2 never gets one: past the deadline (60 s) an alert, raised once.
    assert_eq!(store.raise_overdue(61_999).await.unwrap(), 0);
    assert_eq!(store.raise_overdue(62_000).await.unwrap(), 1);
    assert_eq!(store.raise_overdue(70_000).await.unwrap(), 0);
    let alerts = store.alerts(true, 0).await.unwrap();
    let kinds: Vec<&str> = alerts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, vec!["delivery.no-receipt", "delivery.nacked"]);
    assert!(alerts[1].reason.contains("E21"));

    // A late OK receipt for o2 clears its alert.
    let late = message(
        "apprec-2",
        Effects {
            ack: Some(NewAck {
                out_msg_id: "o2".into(),
                ack: Ack {
                    status: "ok".into(),
                    codes: vec![],
                },
                at_ms: 80_000,
            }),
            ..Effects::default()
        },
    );
    stored_id(&store, late).await;
    let open: Vec<String> = store
        .alerts(true, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(open, vec!["delivery.nacked"]);

    // An operator retries the rejected row: pending again, its alert cleared.
    assert!(store.retry_outbox(rows[0].id, 90_000).await.unwrap());
    assert!(
        !store.retry_outbox(rows[1].id, 90_000).await.unwrap(),
        "acked rows stay"
    );
    assert!(store.alerts(true, 0).await.unwrap().is_empty());
    assert_eq!(
        store.get_outbox(rows[0].id).await.unwrap().unwrap().state,
        OutboxState::Pending
    );
}

#[tokio::test]
async fn dead_letters_alert() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut undeliverable = outbox("business-reply", "HER:3", "k3", "o3");
    undeliverable.dead_reason = Some("no endpoint known".into());
    stored_id(
        &store,
        message(
            "m",
            Effects {
                outbox: vec![outbox("referral", "HER:1", "k1", "o1"), undeliverable],
                ..Effects::default()
            },
        ),
    )
    .await;
    let rows = store.lease_outbox("w", 2_000, 5_000, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "a dead row is never leased");
    store
        .record_attempt(
            rows[0].id,
            "w",
            Attempt::Dead {
                error: "HTTP 400".into(),
                reason: "refused".into(),
            },
        )
        .await
        .unwrap();
    let dead = store
        .list_outbox(&OutboxFilter {
            state: Some(OutboxState::Dead),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 2);
    let alerts = store.alerts(true, 0).await.unwrap();
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a.kind == "delivery.dead"));
    assert!(alerts
        .iter()
        .any(|a| a.reason.contains("no endpoint known")));
}
