//! Stays: referral → admission decision → admitted → discharged → epicrisis, and the epicrisis
//! fanned out to everyone who must have it.
//!
//! How it fits: a referral opens a stay in the same transaction as it is stored (admission plans
//! it, [`opening`]); a message from a unit that reports on a stay (a PLO Pasientlogistikk or FHIR
//! Encounter event, an epicrisis, its correction or cancellation) is queued in the same transaction
//! as it is stored, and the [`Tracker`] — a task like the outbox worker — links it to its stay by
//! the identifiers the standards define (ConversationRef, the epicrisis' `ServReq/Id`, FHIR
//! references; else the patient's open stay at that unit), updates the stay, and for an epicrisis
//! plans one outbox row per recipient ([`fanout`]) — all of it in one store transaction.
//!
//! A message whose stay is not known yet (it came before the referral, a correction before the
//! document it corrects) is held and tried again when a message for the same patient arrives, or
//! when the link grace period ends; then it opens a stay of its own — nothing waits for ever. A
//! register that cannot answer leaves the work queued and retried (with an alert); it never loses
//! an epicrisis. A discharge with no epicrisis by the deadline raises an alert for the unit.
//!
//! What it must NOT do: deliver anything (the outbox worker does), read the system time (its
//! [`Clock`](crate::clock::Clock) is handed to it), or put patient data in logs or alert texts
//! (alerts name stay ids, message ids and parties).

pub mod doc;
pub mod fanout;
pub mod view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::check::Rules;
use crate::clock::{rfc3339_ms, SharedClock};
use crate::model::{Body, CareEventKind, Epicrisis, Format, Message, ServiceType};
use crate::registry::{Directory, PartyKind, RegistryError};
use crate::store::{
    NewAlert, NewStay, NewStayWork, StayApplied, StayChange, StayRecord, StayWork, StayWrite,
    Store, StoreError, WorkOutcome,
};

use doc::{doc_key, id_key, patient_nin, unit_stay_key, EpicrisisEntry, StayDoc};
use fanout::{Copy, Recipient};

/// `[stays]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StayConfig {
    /// Track stays and fan out epicrises (needs `[admission]` for the directory). Off unless
    /// configured; the demo configuration turns it on.
    pub enabled: bool,
    /// How long a message whose stay is not known yet is held before it opens a stay of its own.
    pub link_grace_secs: u64,
    /// Hours after discharge by which the epicrisis must have come (else an alert for the unit).
    pub epicrisis_deadline_hours: u64,
    /// Seconds a recipient's receipt for an epicrisis may take before an alert (the national rule
    /// for a receipt is 96 hours).
    pub epicrisis_receipt_secs: u64,
    /// Seconds between tries when a register cannot answer.
    pub register_retry_secs: u64,
    /// Where an epicrisis goes when the GP register knows no GP for the patient: HER-id by
    /// municipality number, `default` for any other (e.g. the municipality's post-box).
    pub gp_fallback: BTreeMap<String, String>,
    /// How often to look for due work when nothing woke the tracker (milliseconds).
    pub poll_ms: u64,
    /// How often to look for missing epicrises (seconds).
    pub overdue_check_secs: u64,
}

impl Default for StayConfig {
    fn default() -> Self {
        StayConfig {
            enabled: false,
            link_grace_secs: 600,
            epicrisis_deadline_hours: 24,
            epicrisis_receipt_secs: 96 * 3600,
            register_retry_secs: 30,
            gp_fallback: BTreeMap::new(),
            poll_ms: 500,
            overdue_check_secs: 60,
        }
    }
}

/// The work kind of a message from a unit, if the stay tracker reads it.
pub fn work_kind(msg: &Message) -> Option<&'static str> {
    match &msg.body {
        Body::Epicrisis(_) => Some("epicrisis"),
        _ if msg.care_event().is_some() => Some("event"),
        _ => None,
    }
}

/// The work item queued with a message from a unit.
pub fn queued(msg: &Message, now_ms: i64) -> Option<NewStayWork> {
    Some(NewStayWork {
        kind: work_kind(msg)?.to_owned(),
        patient_nin: patient_nin(msg),
        created_ms: now_ms,
    })
}

/// What opens a stay for a referral, stored with it.
pub struct Opening<'a> {
    pub msg: &'a Message,
    pub unit_key: Option<String>,
    pub unit_name: Option<String>,
    pub municipality: Option<String>,
    pub referrer_is_home_nursing: bool,
    /// MsgIds of the copies sent to the unit (the unit names its stay by them).
    pub forwarded_ids: Vec<String>,
    pub now: &'a str,
    pub now_ms: i64,
}

/// The stay a referral opens.
pub fn opening(o: Opening<'_>) -> NewStay {
    let msg = o.msg;
    let mut keys = Vec::new();
    let mut key = |id: Option<&str>| {
        if let Some(id) = id.map(str::trim).filter(|s| !s.is_empty()) {
            let k = id_key(id);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    };
    key(msg.header.msg_id.as_deref());
    if let Body::Referral(r) = &msg.body {
        key(r.id.as_deref());
        key(r.document_id.as_deref());
    }
    for id in &o.forwarded_ids {
        key(Some(id));
    }
    let mut doc = StayDoc {
        unit_key: o.unit_key.clone(),
        unit_name: o.unit_name,
        referrer: msg.header.sender.clone(),
        referrer_key: msg.header.sender.as_ref().and_then(|s| s.key()),
        referral_msg_id: msg.header.msg_id.clone(),
        municipality: o.municipality,
        home_nursing: o.referrer_is_home_nursing,
        referred_at: Some(o.now.to_owned()),
        ..StayDoc::default()
    };
    doc.note(o.now, "referred", None, "referral received");
    NewStay {
        patient_nin: patient_nin(msg),
        unit_key: o.unit_key,
        state: doc::REFERRED.into(),
        keys,
        doc_json: doc.to_json(),
        created_ms: o.now_ms,
    }
}

/// Follows stays and fans out epicrises. One per process is enough; several (sharing a
/// PostgreSQL store) share the work through leases.
pub struct Tracker {
    store: Arc<dyn Store>,
    directory: Arc<dyn Directory>,
    rules: Arc<Rules>,
    config: StayConfig,
    clock: SharedClock,
    wake: Arc<Notify>,
    outbox_wake: Arc<Notify>,
    owner: String,
}

/// How long a leased work item is ours.
const LEASE_MS: i64 = 60_000;
/// Tries at one work item when its stay keeps changing under it.
const CONFLICT_TRIES: usize = 4;

/// Why a step could not be finished now.
enum Defer {
    Registry(RegistryError),
    Store(StoreError),
}

impl From<RegistryError> for Defer {
    fn from(e: RegistryError) -> Self {
        Defer::Registry(e)
    }
}
impl From<StoreError> for Defer {
    fn from(e: StoreError) -> Self {
        Defer::Store(e)
    }
}

/// A stay being worked on: the stored row (None = new) and its document.
struct Open {
    record: Option<StayRecord>,
    doc: StayDoc,
    state: String,
    due_ms: Option<i64>,
    unit_key: Option<String>,
    patient_nin: Option<String>,
}

impl Open {
    fn from_record(r: StayRecord) -> Open {
        Open {
            doc: StayDoc::from_json(&r.doc_json),
            state: r.state.clone(),
            due_ms: r.epicrisis_due_ms,
            unit_key: r.unit_key.clone(),
            patient_nin: r.patient_nin.clone(),
            record: Some(r),
        }
    }

    fn id(&self) -> i64 {
        self.record.as_ref().map_or(0, |r| r.id)
    }

    fn write(&self, now_ms: i64) -> StayWrite {
        StayWrite {
            id: self.record.as_ref().map(|r| r.id),
            version: self.record.as_ref().map_or(0, |r| r.version),
            patient_nin: self.patient_nin.clone(),
            unit_key: self.unit_key.clone(),
            state: self.state.clone(),
            epicrisis_due_ms: self.due_ms,
            doc_json: self.doc.to_json(),
            created_ms: self.record.as_ref().map_or(now_ms, |r| r.created_ms),
        }
    }
}

impl Tracker {
    pub fn new(
        store: Arc<dyn Store>,
        directory: Arc<dyn Directory>,
        rules: Arc<Rules>,
        config: StayConfig,
        clock: SharedClock,
        wake: Arc<Notify>,
        outbox_wake: Arc<Notify>,
    ) -> Arc<Tracker> {
        Arc::new(Tracker {
            store,
            directory,
            rules,
            config,
            clock,
            wake,
            outbox_wake,
            owner: format!("stays-{}", uuid::Uuid::new_v4()),
        })
    }

    /// Run until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.config.poll_ms.max(10));
        let overdue_every = self.config.overdue_check_secs.max(1) as i64 * 1000;
        let mut last_overdue = i64::MIN;
        tracing::info!(owner = self.owner.as_str(), "stay tracker started");
        loop {
            if *stop.borrow() {
                break;
            }
            let now = self.clock.now_ms();
            if now.saturating_sub(last_overdue) >= overdue_every {
                last_overdue = now;
                if let Err(e) = self.check_overdue().await {
                    tracing::warn!(error = %e, "missing-epicrisis check failed");
                }
            }
            match self.step().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "stay work failed"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!(owner = self.owner.as_str(), "stay tracker stopped");
    }

    /// Lease the due work items and do them; the number done (or put back).
    pub async fn step(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let items = self
            .store
            .lease_stay_work(&self.owner, now, LEASE_MS, 32)
            .await?;
        let n = items.len();
        for w in items {
            self.work(&w).await?;
        }
        Ok(n)
    }

    /// Raise an alert for each discharged stay whose epicrisis is overdue; the number raised.
    pub async fn check_overdue(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let mut n = 0;
        for rec in self.store.stays_overdue(now, 100).await? {
            let id = rec.id;
            let mut open = Open::from_record(rec);
            open.due_ms = None;
            let at = rfc3339_ms(now);
            open.doc.note(
                &at,
                "epicrisis-overdue",
                None,
                "no epicrisis by the deadline",
            );
            let alert = NewAlert {
                kind: "stay.epicrisis-missing".into(),
                unit_key: open.unit_key.clone(),
                reason: format!(
                    "stay {id}: the patient was discharged and no epicrisis has come within {} hours",
                    self.config.epicrisis_deadline_hours
                ),
                message_id: open.record.as_ref().and_then(|r| r.referral_message_id),
                outbox_id: None,
                dedup_key: format!("epicrisis-missing:{id}"),
            };
            let change = StayChange {
                now_ms: now,
                work: None,
                message_id: None,
                stay: Some(open.write(now)),
                keys: Vec::new(),
                outbox: Vec::new(),
                alerts: vec![alert],
                clear_alerts: Vec::new(),
                outcome: WorkOutcome::Done,
                release_held_of: None,
            };
            if let StayApplied::Applied { .. } = self.store.apply_stay(change).await? {
                tracing::warn!(stay_id = id, "epicrisis overdue");
                n += 1;
            }
        }
        Ok(n)
    }

    async fn work(&self, w: &StayWork) -> Result<(), StoreError> {
        for _ in 0..CONFLICT_TRIES {
            let change = match self.plan(w).await {
                Ok(c) => c,
                Err(Defer::Store(e)) => return Err(e),
                Err(Defer::Registry(e)) => self.register_down(w, &e),
            };
            let rows = !change.outbox.is_empty();
            match self.store.apply_stay(change).await? {
                StayApplied::Applied { stay_id } => {
                    if rows {
                        self.outbox_wake.notify_one();
                    }
                    tracing::debug!(
                        work_id = w.id,
                        message_id = w.message_id,
                        stay_id,
                        "stay work recorded"
                    );
                    return Ok(());
                }
                StayApplied::Conflict => continue,
            }
        }
        tracing::info!(
            work_id = w.id,
            "stay kept changing; the work item is tried again later"
        );
        Ok(())
    }

    /// A register did not answer: try again later, and say so.
    fn register_down(&self, w: &StayWork, e: &RegistryError) -> StayChange {
        let now = self.clock.now_ms();
        tracing::warn!(work_id = w.id, error = %e, "register unavailable; stay work retried later");
        StayChange {
            now_ms: now,
            work: Some((w.id, self.owner.clone())),
            message_id: Some(w.message_id),
            stay: None,
            keys: Vec::new(),
            outbox: Vec::new(),
            alerts: vec![NewAlert {
                kind: "stay.register-unavailable".into(),
                unit_key: None,
                reason: format!(
                    "message {} waits for a register that cannot answer ({e}); it is tried again \
                     every {} s",
                    w.message_id, self.config.register_retry_secs
                ),
                message_id: Some(w.message_id),
                outbox_id: None,
                dedup_key: format!("register-down:{}", w.message_id),
            }],
            clear_alerts: Vec::new(),
            outcome: WorkOutcome::Later {
                at_ms: now + self.config.register_retry_secs.max(1) as i64 * 1000,
                held: false,
                note: "a register could not answer".into(),
            },
            release_held_of: None,
        }
    }

    fn change(&self, w: &StayWork, now: i64) -> StayChange {
        StayChange {
            now_ms: now,
            work: Some((w.id, self.owner.clone())),
            message_id: Some(w.message_id),
            stay: None,
            keys: Vec::new(),
            outbox: Vec::new(),
            alerts: Vec::new(),
            clear_alerts: vec![format!("register-down:{}", w.message_id)],
            outcome: WorkOutcome::Done,
            release_held_of: None,
        }
    }

    /// Hold a work item until its stay (or the document it refers to) is known, or the grace
    /// period ends.
    fn hold(&self, w: &StayWork, now: i64, why: &str) -> Option<StayChange> {
        let until = w.created_ms + self.config.link_grace_secs as i64 * 1000;
        if now >= until {
            return None;
        }
        let mut c = self.change(w, now);
        c.clear_alerts.clear();
        c.outcome = WorkOutcome::Later {
            at_ms: until,
            held: true,
            note: why.to_owned(),
        };
        Some(c)
    }

    async fn plan(&self, w: &StayWork) -> Result<StayChange, Defer> {
        let now = self.clock.now_ms();
        let Some(stored) = self.store.get(w.message_id).await? else {
            let mut c = self.change(w, now);
            c.outcome = WorkOutcome::Done;
            return Ok(c);
        };
        let rules = self.rules.clone();
        let raw = stored.raw;
        let read = tokio::task::spawn_blocking(move || {
            let m = crate::convert::read_message(&raw, &rules).map(|(m, _)| m);
            (m, raw)
        })
        .await
        .map_err(|e| Defer::Store(StoreError::Database(e.to_string())))?;
        let (msg, raw) = match read {
            (Ok(m), raw) => (m, raw),
            (Err(e), _) => {
                let mut c = self.change(w, now);
                c.alerts.push(NewAlert {
                    kind: "stay.unreadable".into(),
                    unit_key: None,
                    reason: format!(
                        "message {} could not be read for its stay: {e}",
                        w.message_id
                    ),
                    message_id: Some(w.message_id),
                    outbox_id: None,
                    dedup_key: format!("stay-unreadable:{}", w.message_id),
                });
                return Ok(c);
            }
        };
        let (units, from_unit) = self.sender_units(&msg).await?;
        if !from_unit {
            // Not a KAD unit's message (a hospital's epicrisis to a GP office kadgate receives
            // for, say): received and answered, but no stay of ours.
            tracing::debug!(work_id = w.id, "not from a KAD unit; no stay");
            return Ok(self.change(w, now));
        }
        let nin = patient_nin(&msg);
        let found = self.find_stay(&msg, &units, nin.as_deref()).await?;
        let mut change = self.change(w, now);
        let mut open = match found {
            Some(r) => Open::from_record(r),
            None => {
                if let Some(c) = self.hold(w, now, "waiting for the stay's referral") {
                    return Ok(c);
                }
                if msg.header.msg_id.is_none() && nin.is_none() {
                    change.alerts.push(NewAlert {
                        kind: "stay.unlinkable".into(),
                        unit_key: units.first().cloned(),
                        reason: format!(
                            "message {} names neither a message id nor a patient: it cannot be \
                             linked to a stay",
                            w.message_id
                        ),
                        message_id: Some(w.message_id),
                        outbox_id: None,
                        dedup_key: format!("stay-unlinkable:{}", w.message_id),
                    });
                    return Ok(change);
                }
                let unit_key = units.first().cloned();
                let mut doc = StayDoc {
                    unit_key: unit_key.clone(),
                    ..StayDoc::default()
                };
                doc.note(
                    &rfc3339_ms(now),
                    "opened",
                    Some(w.message_id),
                    "no referral for this stay came through kadgate; the unit's message opened it",
                );
                let open = Open {
                    record: None,
                    doc,
                    state: doc::REFERRED.into(),
                    due_ms: None,
                    unit_key,
                    patient_nin: nin.clone(),
                };
                // Open the stay first (it needs its id for the rest), then do the work again:
                // it finds the stay by the message's own id.
                change.stay = Some(open.write(now));
                change.keys.extend(msg.header.msg_id.as_deref().map(id_key));
                change.outcome = WorkOutcome::Later {
                    at_ms: now,
                    held: false,
                    note: "stay opened".into(),
                };
                return Ok(change);
            }
        };
        change.release_held_of = nin.clone();
        // Any message of the stay may be the one that gives the patient's address.
        self.municipality(&mut open, &msg).await?;
        let raw_fhir = crate::convert::looks_like_json(&raw).then_some(raw.as_slice());
        match &msg.body {
            Body::Epicrisis(e) => {
                if let Some(c) = self
                    .on_epicrisis(w, &msg, e, raw_fhir, &mut open, &mut change)
                    .await?
                {
                    return Ok(c);
                }
            }
            _ => self.on_event(w, &msg, &mut open, &mut change),
        }
        if let Some(u) = open.unit_key.clone() {
            if let Some(id) = msg.care_event().and_then(|e| e.stay_id.clone()) {
                change.keys.push(unit_stay_key(&u, &id));
            }
        }
        if let Some(id) = msg.header.msg_id.as_deref() {
            change.keys.push(id_key(id));
        }
        change.stay = Some(open.write(now));
        Ok(change)
    }

    /// The sender's organisation levels (`HER:…`), KAD units first, most specific first; and
    /// whether any of them is a KAD unit.
    async fn sender_units(&self, msg: &Message) -> Result<(Vec<String>, bool), RegistryError> {
        let Some(sender) = &msg.header.sender else {
            return Ok((Vec::new(), false));
        };
        let mut units = Vec::new();
        let mut others = Vec::new();
        for level in crate::admission::levels(sender).iter().rev() {
            if let Some(her) = level.her_id() {
                if self.directory.kad_unit(her).await?.is_some() {
                    units.push(crate::admission::unit_key(her));
                } else {
                    others.push(crate::admission::unit_key(her));
                }
            }
        }
        let from_unit = !units.is_empty();
        units.extend(others);
        Ok((units, from_unit))
    }

    /// The stay a message belongs to: by the identifiers it names, else the patient's open stay
    /// at the sending unit. A stay of another patient is never matched.
    async fn find_stay(
        &self,
        msg: &Message,
        units: &[String],
        nin: Option<&str>,
    ) -> Result<Option<StayRecord>, StoreError> {
        let mut keys: Vec<String> = msg
            .header
            .msg_id
            .as_deref()
            .map(id_key)
            .into_iter()
            .collect();
        if let Some(c) = &msg.header.conversation {
            keys.extend(c.ref_to_conversation.as_deref().map(id_key));
            keys.extend(c.ref_to_parent.as_deref().map(id_key));
        }
        match &msg.body {
            Body::Epicrisis(e) => {
                if let Some(d) = e.id.as_deref() {
                    keys.extend(units.iter().map(|u| doc_key(u, d)));
                }
                keys.extend(e.referral_id.as_deref().map(id_key));
                keys.extend(
                    e.referral
                        .as_ref()
                        .and_then(|r| r.id.as_deref())
                        .map(id_key),
                );
            }
            _ => {
                if let Some(ev) = msg.care_event() {
                    keys.extend(ev.referral_id.as_deref().map(id_key));
                    if let Some(id) = ev.stay_id.as_deref() {
                        keys.extend(units.iter().map(|u| unit_stay_key(u, id)));
                    }
                }
            }
        }
        if !keys.is_empty() {
            if let Some(s) = self.store.stay_by_keys(&keys).await? {
                let same_patient = match (nin, s.patient_nin.as_deref()) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                if same_patient {
                    return Ok(Some(s));
                }
            }
        }
        match nin {
            Some(nin) => self.store.open_stay(nin, units).await,
            None => Ok(None),
        }
    }

    fn on_event(&self, w: &StayWork, msg: &Message, open: &mut Open, change: &mut StayChange) {
        let Some(ev) = msg.care_event() else {
            return;
        };
        let now = self.clock.now_ms();
        let at = ev.at.clone().unwrap_or_else(|| rfc3339_ms(now));
        if ev.home_nursing == Some(true) {
            open.doc.home_nursing = true;
        }
        let cancelled = ev.service_type == Some(ServiceType::Cancellation);
        let stay_id = open.id();
        let doc = &mut open.doc;
        match (ev.kind, cancelled) {
            (CareEventKind::Admitted, false) => {
                doc.admitted_at = Some(at.clone());
                if open.state == doc::REFERRED {
                    open.state = doc::ADMITTED.into();
                }
                doc.note(&at, "admitted", Some(w.message_id), "");
            }
            (CareEventKind::Admitted, true) => {
                doc.admitted_at = None;
                if open.state == doc::ADMITTED {
                    open.state = doc::REFERRED.into();
                }
                doc.note(&at, "admission-cancelled", Some(w.message_id), "");
            }
            (CareEventKind::Discharged | CareEventKind::Deceased, false) => {
                doc.discharged_at = Some(at.clone());
                if doc.epicrisis_at.is_some() {
                    open.state = doc::CLOSED.into();
                } else {
                    open.state = doc::DISCHARGED.into();
                    let from = doc::parse_ms(&at).unwrap_or(now).min(now);
                    open.due_ms =
                        Some(from + self.config.epicrisis_deadline_hours as i64 * 3_600_000);
                }
                doc.note(&at, ev.kind.word(), Some(w.message_id), "");
            }
            (CareEventKind::Discharged | CareEventKind::Deceased, true) => {
                doc.discharged_at = None;
                open.due_ms = None;
                if open.state == doc::DISCHARGED {
                    open.state = doc::ADMITTED.into();
                }
                change
                    .clear_alerts
                    .push(format!("epicrisis-missing:{stay_id}"));
                doc.note(&at, "discharge-cancelled", Some(w.message_id), "");
            }
            (CareEventKind::ReadyForDischarge, _) => {
                doc.note(&at, ev.kind.word(), Some(w.message_id), "");
            }
        }
    }

    /// An epicrisis, its correction or its cancellation: record it and fan it out. `Some` = the
    /// change to record instead (held: the document it refers to has not come yet).
    async fn on_epicrisis(
        &self,
        w: &StayWork,
        msg: &Message,
        e: &Epicrisis,
        raw_fhir: Option<&[u8]>,
        open: &mut Open,
        change: &mut StayChange,
    ) -> Result<Option<StayChange>, Defer> {
        let now = self.clock.now_ms();
        let now_text = rfc3339_ms(now);
        let kind = match e.service_type {
            Some(ServiceType::Change) => "change",
            Some(ServiceType::Cancellation) => "cancellation",
            _ => "new",
        };
        let doc_id =
            e.id.clone()
                .or_else(|| msg.header.msg_id.clone())
                .unwrap_or_default();
        let original_known =
            open.doc.has_epicrisis(&doc_id, "new") || open.doc.has_epicrisis(&doc_id, "change");
        if kind != "new" && !original_known {
            if let Some(c) = self.hold(w, now, "waiting for the epicrisis it refers to") {
                return Ok(Some(c));
            }
        }
        if let Some(u) = &open.unit_key {
            change.keys.push(doc_key(u, &doc_id));
        }
        let mut entry = EpicrisisEntry {
            message_id: w.message_id,
            msg_id: msg.header.msg_id.clone(),
            doc_id: Some(doc_id.clone()),
            kind: kind.into(),
            received_at: now_text.clone(),
            sent_to: Vec::new(),
            note: String::new(),
        };
        let stay_id = open.id();
        let recipients: Vec<Recipient> = match kind {
            "cancellation" if !original_known => {
                entry.note = "cancels an epicrisis kadgate never received: sent nowhere".into();
                change.alerts.push(NewAlert {
                    kind: "stay.cancellation-unmatched".into(),
                    unit_key: open.unit_key.clone(),
                    reason: format!(
                        "message {}: a cancelled epicrisis that never came through kadgate; \
                         nobody was sent the cancellation",
                        w.message_id
                    ),
                    message_id: Some(w.message_id),
                    outbox_id: None,
                    dedup_key: format!("cancellation-unmatched:{}", w.message_id),
                });
                Vec::new()
            }
            "cancellation" => self.earlier_recipients(&open.doc, &doc_id).await?,
            "new" if open.doc.has_epicrisis(&doc_id, "cancellation") => {
                entry.note = "came after its own cancellation: not delivered".into();
                Vec::new()
            }
            _ => {
                let mut list = Vec::new();
                if kind == "change" {
                    list = self.earlier_recipients(&open.doc, &doc_id).await?;
                }
                let earlier: Vec<String> = if kind == "new" && original_known {
                    // The same document again under a new MsgId (a resend): only recipients
                    // that have not had it get it, so nobody gets it twice from us.
                    entry.note = "the same document again: sent only to new recipients".into();
                    self.earlier_recipients(&open.doc, &doc_id)
                        .await?
                        .iter()
                        .map(Recipient::delivery_identity)
                        .collect()
                } else {
                    Vec::new()
                };
                for r in self.recipients(stay_id, open, msg, e, change).await? {
                    if !earlier.contains(&r.delivery_identity()) {
                        fanout::push_unique(&mut list, r);
                    }
                }
                list
            }
        };
        let purpose = match kind {
            "change" => "epicrisis-correction",
            "cancellation" => "epicrisis-cancellation",
            _ => "epicrisis",
        };
        let copy = Copy {
            msg,
            raw_fhir,
            purpose,
            stay_id,
            now: &now_text,
            now_ms: now,
            receipt_secs: self.config.epicrisis_receipt_secs,
        };
        for r in &recipients {
            let (row, sent) = fanout::copy_for(&copy, r);
            change.outbox.push(row);
            entry.sent_to.push(sent);
        }
        let note = match entry.sent_to.len() {
            0 => entry.note.clone(),
            n => format!("sent to {n} recipient(s)"),
        };
        let doc = &mut open.doc;
        doc.note(
            &now_text,
            &format!("epicrisis-{kind}"),
            Some(w.message_id),
            note,
        );
        doc.epicrises.push(entry);
        if kind != "cancellation" {
            doc.epicrisis_at.get_or_insert(now_text.clone());
            if doc.discharged_at.is_none() {
                doc.discharged_at = e.discharged.clone();
            }
            open.state = doc::CLOSED.into();
            open.due_ms = None;
            change
                .clear_alerts
                .push(format!("epicrisis-missing:{stay_id}"));
        }
        Ok(None)
    }

    /// Everyone an earlier version of the document went to, each in the format it got.
    async fn earlier_recipients(
        &self,
        doc: &StayDoc,
        doc_id: &str,
    ) -> Result<Vec<Recipient>, RegistryError> {
        let mut out = Vec::new();
        for s in doc.recipients_of(doc_id) {
            let her = s.recipient_key.trim_start_matches("HER:");
            let party = match self.directory.party(her).await? {
                Some(p) => fanout::reachable(&self.directory, p).await?,
                None => {
                    let mut p = crate::admission::unknown_party(&crate::model::Organisation {
                        name: Some(s.name.clone()),
                        idents: vec![crate::model::Ident::new(her, "HER")],
                        ..Default::default()
                    });
                    p.name = s.name.clone();
                    p
                }
            };
            let format: Option<Format> =
                serde_json::from_value(serde_json::Value::String(s.format.clone())).ok();
            fanout::push_unique(
                &mut out,
                Recipient {
                    party,
                    role: role_word(&s.role),
                    format,
                },
            );
        }
        Ok(out)
    }

    /// The recipients of a new epicrisis (see [`fanout`]).
    async fn recipients(
        &self,
        stay_id: i64,
        open: &mut Open,
        msg: &Message,
        e: &Epicrisis,
        change: &mut StayChange,
    ) -> Result<Vec<Recipient>, RegistryError> {
        let dir = &self.directory;
        let mut list = Vec::new();
        let municipality = self.municipality(open, msg).await?;
        // The GP, on the day of discharge.
        if let Some(nin) = open.patient_nin.clone() {
            let day = e
                .discharged
                .as_deref()
                .or(open.doc.discharged_at.as_deref())
                .and_then(doc::parse_ms)
                .unwrap_or_else(|| self.clock.now_ms());
            let day = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(day)
                .map(|d| d.date_naive())
                .unwrap_or_default();
            // A register that refuses the question (an identity number it does not take) will
            // not answer differently later: the patient has no GP kadgate can find.
            let gp = match dir.gp_for_patient(&nin, day).await {
                Err(RegistryError::Rejected { reason, .. }) => {
                    tracing::warn!(
                        stay_id,
                        reason = reason.as_str(),
                        "GP register refused the lookup"
                    );
                    None
                }
                other => other?,
            };
            match gp {
                Some(a) => {
                    let mut gp = a.gp;
                    if let Some(office) = &a.office {
                        gp.org_her_id.get_or_insert(office.her_id.clone());
                        gp.org_name.get_or_insert(office.name.clone());
                    }
                    let gp = fanout::reachable(dir, gp).await?;
                    fanout::push_unique(
                        &mut list,
                        Recipient {
                            party: gp,
                            role: "gp",
                            format: None,
                        },
                    );
                }
                None => {
                    let fallback_her = municipality
                        .as_deref()
                        .and_then(|m| self.config.gp_fallback.get(m))
                        .or_else(|| self.config.gp_fallback.get("default"));
                    let fallback = match fallback_her {
                        Some(h) => dir.party(h).await?,
                        None => None,
                    };
                    change.alerts.push(fanout::gp_not_found(
                        stay_id,
                        open.unit_key.as_deref(),
                        fallback.as_ref(),
                    ));
                    if let Some(f) = fallback {
                        let f = fanout::reachable(dir, f).await?;
                        fanout::push_unique(
                            &mut list,
                            Recipient {
                                party: f,
                                role: "gp-fallback",
                                format: None,
                            },
                        );
                    }
                }
            }
        }
        // The referrer: the stay's referral's sender, else the requester the epicrisis names.
        let referrer = open.doc.referrer.clone().or_else(|| e.requester.clone());
        if let Some(org) = referrer {
            match fanout::find_party(dir, &org).await? {
                Some(p) => {
                    let p = fanout::reachable(dir, p).await?;
                    fanout::push_unique(
                        &mut list,
                        Recipient {
                            party: p,
                            role: "referrer",
                            format: None,
                        },
                    );
                }
                None => fanout::push_unique(&mut list, fanout::unknown(&org, "referrer")),
            }
        }
        // Copy receivers the unit named; home nursing among them means the stay says so.
        let mut copies = Vec::new();
        for org in &e.copy_to {
            if let Some(p) = fanout::find_party(dir, org).await? {
                if p.kind == PartyKind::HomeNursing {
                    open.doc.home_nursing = true;
                }
                copies.push(p);
            }
        }
        if open.doc.home_nursing {
            match municipality.as_deref() {
                Some(m) => match dir.home_nursing(m).await? {
                    Some(h) => {
                        let h = fanout::reachable(dir, h).await?;
                        fanout::push_unique(
                            &mut list,
                            Recipient {
                                party: h,
                                role: "home-nursing",
                                format: None,
                            },
                        );
                    }
                    None => change.alerts.push(NewAlert {
                        kind: "stay.home-nursing-unknown".into(),
                        unit_key: open.unit_key.clone(),
                        reason: format!(
                            "stay {stay_id}: the directory has no home nursing service for \
                             municipality {m}; home nursing gets no epicrisis"
                        ),
                        message_id: None,
                        outbox_id: None,
                        dedup_key: format!("home-nursing-unknown:{stay_id}"),
                    }),
                },
                None => change.alerts.push(NewAlert {
                    kind: "stay.home-nursing-unknown".into(),
                    unit_key: open.unit_key.clone(),
                    reason: format!(
                        "stay {stay_id}: the patient's municipality is not known, so home \
                         nursing gets no epicrisis"
                    ),
                    message_id: None,
                    outbox_id: None,
                    dedup_key: format!("home-nursing-unknown:{stay_id}"),
                }),
            }
        }
        for p in copies {
            let p = fanout::reachable(dir, p).await?;
            fanout::push_unique(
                &mut list,
                Recipient {
                    party: p,
                    role: "copy",
                    format: None,
                },
            );
        }
        Ok(list)
    }

    /// The patient's municipality: as routing found it, else from the address in the message.
    async fn municipality(
        &self,
        open: &mut Open,
        msg: &Message,
    ) -> Result<Option<String>, RegistryError> {
        if let Some(m) = &open.doc.municipality {
            return Ok(Some(m.clone()));
        }
        let Some(addr) = msg.patient().and_then(|p| p.address.as_ref()) else {
            return Ok(None);
        };
        if let Some(m) = addr
            .municipality
            .as_deref()
            .filter(|m| crate::registry::valid_municipality(m))
        {
            open.doc.municipality = Some(m.to_owned());
            return Ok(Some(m.to_owned()));
        }
        let Some(pc) = addr.postal_code.as_deref() else {
            return Ok(None);
        };
        let m = self.directory.municipality_for_postcode(pc.trim()).await?;
        open.doc.municipality = m.clone();
        Ok(m)
    }
}

fn role_word(s: &str) -> &'static str {
    match s {
        "gp" => "gp",
        "referrer" => "referrer",
        "home-nursing" => "home-nursing",
        "gp-fallback" => "gp-fallback",
        _ => "copy",
    }
}
