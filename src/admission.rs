//! Admission: what happens to a referral once it is safely received — route it to the KAD unit
//! that serves the patient's municipality, decide it against that unit's rule set, and plan what
//! goes out: the referral to the unit, in the format the unit's system takes, and the business
//! reply with the decision to the referrer, in the referrer's format.
//!
//! The plan is a set of [`Effects`] the store records in the same transaction as the referral
//! itself, so a referral is never stored without its decision and outbox rows, and a resend
//! (a duplicate) plans nothing again.
//!
//! Invariants: this module does no I/O of its own besides directory lookups and a capacity snapshot
//! read from the store; it never sends anything (the outbox workers do). An AppRec never carries
//! the decision: it only says "received and readable". Reasons and alerts hold no patient data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;

use crate::model::{Body, Conversation, Format, Message, Organisation};
use crate::registry::{Directory, Endpoint, KadUnit, Party, RegistryError};
use crate::reply::{self, ReplyFormat, ReplySpec};
use crate::routing::{self, Capacity, Route, RoutingPolicy};

use crate::rules::{Decision, DecisionKind, RuleSet};
use crate::store::{
    DecisionSource, Effects, NewAlert, NewDecision, NewOutbox, NewRoute, Store, StoreError,
};

/// `[admission]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Decide and route referrals (needs a rule set and a directory). Off unless configured; the
    /// demo configuration turns it on.
    pub enabled: bool,
    /// The rule set every unit uses unless it has its own.
    pub ruleset: std::path::PathBuf,
    /// A unit's own rule set, by the unit's key (`HER:990002`).
    pub unit_rulesets: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// The directory of parties (file-backed). Relative paths in it (drop folders, certificates)
    /// are relative to the data directory.
    pub registry: std::path::PathBuf,
    /// Seconds a unit's receipt for a forwarded referral may take before an alert.
    pub referral_receipt_secs: u64,
    /// Seconds a referrer's receipt for a business reply may take before an alert.
    pub reply_receipt_secs: u64,
    /// How long a unit's own report of free beds stands (seconds).
    pub capacity_report_valid_secs: u64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            enabled: false,
            ruleset: "fixtures/rules/national-default.toml".into(),
            unit_rulesets: Default::default(),
            registry: "fixtures/demo/registry.toml".into(),
            referral_receipt_secs: 300,
            reply_receipt_secs: 900,
            capacity_report_valid_secs: 6 * 3600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("directory: {0}")]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a capacity snapshot is reused: beds change over minutes, referrals arrive by the
/// second, and counting held beds for every referral would cost more than the rest of the work.
const CAPACITY_SNAPSHOT: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Snapshot {
    taken: Option<Instant>,
    held: HashMap<String, i64>,
    reported: HashMap<String, i64>,
}

/// Routes, decides and plans. Shared by every source.
pub struct Admission {
    default_rules: Arc<RuleSet>,
    unit_rules: HashMap<String, Arc<RuleSet>>,
    directory: Arc<dyn Directory>,
    policy: RoutingPolicy,
    config: AdmissionConfig,
    snapshot: Mutex<Snapshot>,
    /// Held while the snapshot is read again, so that the referrals arriving meanwhile wait for
    /// that one read instead of each counting the beds themselves.
    refreshing: tokio::sync::Mutex<()>,
    /// "Now" for outbox rows' creation times and capacity reports' age.
    clock: SharedClock,
    /// Open a stay for every referral planned (`[stays] enabled`).
    stays: bool,
}

/// The routing half of a plan (async: directory lookups); [`Admission::finish`] does the CPU half.
pub struct Routed {
    route: Route,
    referrer: Option<Party>,
    rules: Arc<RuleSet>,
}

pub fn unit_key(her_id: &str) -> String {
    format!("HER:{her_id}")
}

impl Admission {
    pub fn new(
        default_rules: Arc<RuleSet>,
        unit_rules: HashMap<String, Arc<RuleSet>>,
        directory: Arc<dyn Directory>,
        policy: RoutingPolicy,
        config: AdmissionConfig,
    ) -> Admission {
        Admission {
            default_rules,
            unit_rules,
            directory,
            policy,
            config,
            snapshot: Mutex::new(Snapshot::default()),
            refreshing: tokio::sync::Mutex::new(()),
            clock: crate::clock::system(),
            stays: false,
        }
    }

    /// Open a stay with every referral planned.
    pub fn with_stays(mut self, on: bool) -> Admission {
        self.stays = on;
        self
    }

    /// Read "now" (outbox rows' creation, the age of capacity reports) from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Admission {
        self.clock = clock;
        self
    }

    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.directory
    }

    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    /// The rule set a unit decides with.
    pub fn rules_for(&self, unit_key: Option<&str>) -> Arc<RuleSet> {
        unit_key
            .and_then(|k| self.unit_rules.get(k))
            .unwrap_or(&self.default_rules)
            .clone()
    }

    async fn refresh_snapshot(&self, store: &dyn Store) -> Result<(), StoreError> {
        let fresh = || {
            let s = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
            s.taken.is_some_and(|t| t.elapsed() < CAPACITY_SNAPSHOT)
        };
        if fresh() {
            return Ok(());
        }
        let _one_reader = self.refreshing.lock().await;
        if fresh() {
            return Ok(()); // read by the referral we waited for
        }
        let held: HashMap<String, i64> = store.beds_held().await?.into_iter().collect();
        let valid_ms = (self.config.capacity_report_valid_secs as i64).saturating_mul(1000);
        let now = self.clock.now_ms();
        let reported = store
            .capacity_reports()
            .await?
            .into_iter()
            .filter(|r| now - r.reported_ms <= valid_ms)
            .map(|r| (r.unit_key, r.free_beds))
            .collect();
        let mut s = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        *s = Snapshot {
            taken: Some(Instant::now()),
            held,
            reported,
        };
        Ok(())
    }

    fn capacity_of(&self, unit: &KadUnit) -> Capacity {
        let key = unit_key(&unit.party.her_id);
        let s = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        Capacity {
            beds: unit.beds,
            open_stays: s
                .held
                .get(&key)
                .copied()
                .unwrap_or(0)
                .clamp(0, u32::MAX as i64) as u32,
            reported_free: s
                .reported
                .get(&key)
                .map(|&f| f.clamp(0, u32::MAX as i64) as u32),
        }
    }

    /// A bed taken by a referral accepted since the snapshot was read.
    fn take_bed(&self, key: &str) {
        let mut s = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        *s.held.entry(key.to_owned()).or_insert(0) += 1;
        if let Some(free) = s.reported.get_mut(key) {
            *free = (*free - 1).max(0);
        }
    }

    /// Route a referral (directory lookups, capacity snapshot). `None` for anything else.
    pub async fn route(
        &self,
        store: &dyn Store,
        msg: &Message,
    ) -> Result<Option<Routed>, AdmissionError> {
        if !matches!(msg.body, Body::Referral(_)) {
            return Ok(None);
        }
        self.refresh_snapshot(store).await?;
        let route = routing::route(
            self.directory.as_ref(),
            msg,
            &|u: &KadUnit| self.capacity_of(u),
            &self.policy,
        )
        .await?;
        let referrer = match msg.header.sender.as_ref() {
            Some(org) => self.find_party(org).await?,
            None => None,
        };
        let rules = self.rules_for(
            route
                .unit
                .as_ref()
                .map(|u| unit_key(&u.party.her_id))
                .as_deref(),
        );
        Ok(Some(Routed {
            route,
            referrer,
            rules,
        }))
    }

    /// The most specific party of an organisation the directory knows (person, unit, top level).
    async fn find_party(&self, org: &Organisation) -> Result<Option<Party>, RegistryError> {
        for level in levels(org).iter().rev() {
            if let Some(her) = level.her_id() {
                if let Some(p) = self.directory.party(her).await? {
                    return Ok(Some(p));
                }
            }
        }
        Ok(None)
    }

    /// Decide and plan (CPU work: rule evaluation and encoding). `raw` is the message as received
    /// when it is FHIR JSON (a FHIR unit gets it forwarded, readdressed, instead of re-encoded);
    /// `today` is the date ages are counted on.
    pub fn finish(
        &self,
        msg: &Message,
        raw: Option<&[u8]>,
        routed: Routed,
        today: chrono::NaiveDate,
    ) -> Effects {
        let Routed {
            route,
            referrer,
            rules,
        } = routed;
        let mut decision = crate::rules::decide(&rules, msg, today);
        // Routing can only make a decision more careful: without a unit with room, a person decides.
        if decision.decision == DecisionKind::Accepted && (route.unit.is_none() || route.full) {
            decision.decision = DecisionKind::NeedsReview;
            decision.reasons_no.push(route.reason_no.clone());
            decision.reasons_en.push(route.reason_en.clone());
        }
        let now_ms = self.clock.now_ms();
        let now = crate::clock::rfc3339_ms(now_ms);
        let original = msg.header.msg_id.as_deref().unwrap_or("").trim().to_owned();
        let unit_key = route.unit.as_ref().map(|u| unit_key(&u.party.her_id));
        let accepted = decision.decision == DecisionKind::Accepted;
        if accepted {
            if let Some(k) = &unit_key {
                self.take_bed(k);
            }
        }

        let mut effects = Effects {
            decision: Some(new_decision(
                &decision,
                &now,
                DecisionSource::Rules,
                None,
                None,
            )),
            route: Some(new_route(&route, &now, accepted)),
            ..Effects::default()
        };
        if let Some(unit) = &route.unit {
            effects
                .outbox
                .push(self.referral_to_unit(msg, raw, unit, &original, &now, now_ms));
        }
        if self.stays {
            effects.stay = Some(crate::stay::opening(crate::stay::Opening {
                msg,
                unit_key: unit_key.clone(),
                unit_name: route.unit.as_ref().map(|u| u.party.name.clone()),
                municipality: route.municipality.clone(),
                referrer_is_home_nursing: referrer
                    .as_ref()
                    .is_some_and(|p| p.kind == crate::registry::PartyKind::HomeNursing),
                forwarded_ids: effects
                    .outbox
                    .iter()
                    .filter(|o| o.purpose == "referral")
                    .map(|o| o.out_msg_id.clone())
                    .collect(),
                now: &now,
                now_ms,
            }));
        }
        // Why no unit with room was found — unless the decision's reasons already say it.
        let note = (route.full || route.unit.is_none())
            .then_some(route.reason_no.as_str())
            .filter(|n| !decision.reasons_no.iter().any(|r| r == n));
        effects.outbox.push(self.reply_to_referrer(
            msg,
            &decision,
            Answerer {
                by: None,
                unit: route.unit.as_ref().map(|u| &u.party),
                route_note: note,
            },
            referrer.as_ref(),
            "business-reply",
            &now,
            now_ms,
        ));
        if route.unit.is_none() || route.full {
            effects.alerts.push(NewAlert {
                kind: route.code.to_string(),
                unit_key: unit_key.clone(),
                reason: route.reason_en.clone(),
                message_id: None,
                outbox_id: None,
                dedup_key: format!("{}:{}", route.code, uuid::Uuid::new_v4()),
            });
        }
        effects
    }

    /// An override by a KAD doctor: the new decision and a new business reply to the referrer.
    /// `sequence` numbers the replies to one referral (the first one is the gateway's).
    #[allow(clippy::too_many_arguments)]
    pub async fn plan_override(
        &self,
        msg: &Message,
        previous: &NewDecision,
        kind: DecisionKind,
        by: &str,
        note: Option<&str>,
        route: Option<&NewRoute>,
        sequence: usize,
    ) -> Result<Effects, AdmissionError> {
        let referrer = match msg.header.sender.as_ref() {
            Some(org) => self.find_party(org).await?,
            None => None,
        };
        let mut reasons_no = vec![format!(
            "Vurderingen er endret av lege ved KAD-enheten ({by})."
        )];
        if let Some(n) = note {
            reasons_no.push(n.to_owned());
        }
        let decision = Decision {
            decision: kind,
            news2: previous.news2.and_then(|n| u8::try_from(n).ok()),
            fired: Vec::new(),
            reasons_no,
            reasons_en: vec![format!(
                "Decision overridden by the KAD unit's doctor ({by})."
            )],
            ruleset_id: previous.ruleset_id.clone().unwrap_or_default(),
            ruleset_version: previous.ruleset_version.clone().unwrap_or_default(),
        };
        let now_ms = self.clock.now_ms();
        let now = crate::clock::rfc3339_ms(now_ms);
        let unit = match route.and_then(|r| r.unit_key.as_deref()) {
            Some(key) => {
                let her = key.strip_prefix("HER:").unwrap_or(key);
                self.directory.kad_unit(her).await?.map(|u| u.party)
            }
            None => None,
        };
        let reply = self.reply_to_referrer(
            msg,
            &decision,
            Answerer {
                by: Some(by),
                unit: unit.as_ref(),
                route_note: None,
            },
            referrer.as_ref(),
            &format!("business-reply-{sequence}"),
            &now,
            now_ms,
        );
        Ok(Effects {
            decision: Some(new_decision(
                &decision,
                &now,
                DecisionSource::Override,
                Some(by.to_owned()),
                note.map(str::to_owned),
            )),
            outbox: vec![reply],
            ..Effects::default()
        })
    }

    fn referral_to_unit(
        &self,
        msg: &Message,
        raw: Option<&[u8]>,
        unit: &KadUnit,
        original: &str,
        now: &str,
        now_ms: i64,
    ) -> NewOutbox {
        let key = unit_key(&unit.party.her_id);
        let out_msg_id = crate::store::new_out_msg_id();
        let mut row = outbox_row(
            "referral",
            &unit.party,
            format!("{key}/{original}"),
            &out_msg_id,
            now,
            now_ms,
            self.config.referral_receipt_secs,
        );
        let Some(format) = unit.party.formats.iter().copied().find(|f| {
            matches!(
                f,
                Format::Henvisning20 | Format::Henvisning11 | Format::FhirR4
            )
        }) else {
            row.dead_reason = Some("the unit takes no referral format kadgate writes".into());
            return row;
        };
        let receiver = unit.party.organisation();
        if format == Format::FhirR4 {
            let forwarded = raw.and_then(|raw| {
                crate::fhir::forward::readdress(
                    raw,
                    &crate::fhir::forward::Readdress {
                        msg_id: &out_msg_id,
                        bundle_id: &uuid::Uuid::new_v4().to_string(),
                        now,
                        receiver: &receiver,
                    },
                )
            });
            if let Some(body) = forwarded {
                row.format = format_name(format);
                row.content_type = "application/fhir+json".into();
                row.body = body;
                return row;
            }
        }
        let mut out = msg.clone();
        out.header.msg_id = Some(out_msg_id);
        out.header.gen_date = Some(now.to_owned());
        out.header.receiver = Some(receiver);
        out.header.conversation = Some(Conversation {
            ref_to_parent: Some(original.to_owned()),
            ref_to_conversation: msg
                .header
                .conversation
                .as_ref()
                .and_then(|c| c.ref_to_conversation.clone())
                .or_else(|| Some(original.to_owned())),
        });
        match encode(&out, format) {
            Ok((body, content_type)) => {
                row.format = format_name(format);
                row.content_type = content_type.into();
                row.body = body;
            }
            Err(e) => {
                tracing::warn!(unit = key.as_str(), error = %e, "encoding the referral for the unit failed");
                row.dead_reason = Some(format!(
                    "the referral could not be encoded for the unit: {e}"
                ));
            }
        }
        row
    }

    #[allow(clippy::too_many_arguments)]
    fn reply_to_referrer(
        &self,
        msg: &Message,
        decision: &Decision,
        answerer: Answerer<'_>,
        referrer: Option<&Party>,
        purpose: &str,
        now: &str,
        now_ms: i64,
    ) -> NewOutbox {
        let original = msg.header.msg_id.as_deref().unwrap_or("").trim();
        let empty = Organisation::default();
        let to = msg.header.sender.as_ref().unwrap_or(&empty);
        let from = answerer
            .unit
            .map(Party::organisation)
            .or_else(|| msg.header.receiver.clone())
            .unwrap_or_default();
        let out_msg_id = crate::store::new_out_msg_id();
        let recipient = referrer.cloned().unwrap_or_else(|| unknown_party(to));
        let mut row = outbox_row(
            purpose,
            &recipient,
            format!("{}/{original}", party_key(&recipient)),
            &out_msg_id,
            now,
            now_ms,
            self.config.reply_receipt_secs,
        );
        let format = referrer
            .and_then(|p| {
                p.formats.iter().find_map(|f| match f {
                    Format::Dialogmelding11 => Some(ReplyFormat::Dialogmelding11),
                    Format::FhirR4 => Some(ReplyFormat::Fhir),
                    _ => None,
                })
            })
            .unwrap_or_else(|| reply::reply_format_for(msg.header.format));
        let spec = ReplySpec {
            referral: msg,
            decision,
            overridden_by: answerer.by,
            unit: answerer.unit.map(|u| u.name.as_str()),
            route_note_no: answerer.route_note,
            from: &from,
            to,
            msg_id: &out_msg_id,
            now,
        };
        match reply::business_reply(&spec, format) {
            Ok(enc) => {
                row.format = format_name(enc.format);
                row.content_type = enc.content_type.into();
                row.body = enc.bytes;
                row.out_msg_id = enc.msg_id;
            }
            Err(e) => {
                row.dead_reason = Some(format!("the business reply could not be encoded: {e}"));
            }
        }
        if referrer.is_none() {
            row.dead_reason = Some("the referrer is not in the directory".into());
        } else if row.endpoint_json.is_none() && row.dead_reason.is_none() {
            row.dead_reason = Some("the directory has no endpoint for the referrer".into());
        }
        row
    }
}

/// Who answers a referral, and what routing has to say.
struct Answerer<'a> {
    /// The doctor who overrode the decision.
    by: Option<&'a str>,
    /// The unit the referral went to.
    unit: Option<&'a Party>,
    /// Why no unit with room was found.
    route_note: Option<&'a str>,
}

/// An organisation and the units below it, top level first.
pub(crate) fn levels(org: &Organisation) -> Vec<&Organisation> {
    let mut out = vec![org];
    let mut cur = org;
    while let Some(u) = cur.unit.as_deref() {
        out.push(u);
        cur = u;
    }
    out
}

/// A referrer the directory does not know, as far as the referral names it (no formats, no
/// endpoint: its reply is a dead letter from the start, with an alert).
pub(crate) fn unknown_party(org: &Organisation) -> Party {
    let her = levels(org)
        .iter()
        .rev()
        .find_map(|o| o.her_id())
        .unwrap_or("unknown");
    Party {
        her_id: her.to_owned(),
        name: org
            .name
            .clone()
            .unwrap_or_else(|| "(unknown referrer)".into()),
        kind: crate::registry::PartyKind::GpOffice,
        org_name: None,
        org_her_id: None,
        org_enh: org.org_number().map(str::to_owned),
        hpr: None,
        municipality: None,
        formats: Vec::new(),
        endpoint: None,
    }
}

pub(crate) fn party_key(p: &Party) -> String {
    unit_key(&p.her_id)
}

pub(crate) fn outbox_row(
    purpose: &str,
    party: &Party,
    order_key: String,
    out_msg_id: &str,
    now: &str,
    now_ms: i64,
    receipt_secs: u64,
) -> NewOutbox {
    let (destination, endpoint_json) = match &party.endpoint {
        Some(e) => (
            endpoint_destination(e),
            crate::delivery::endpoint_json(e).ok(),
        ),
        None => ("(none)".to_owned(), None),
    };
    NewOutbox {
        purpose: purpose.to_owned(),
        recipient_key: party_key(party),
        recipient_name: Some(party.name.clone()),
        order_key,
        destination,
        endpoint_json,
        format: String::new(),
        content_type: String::new(),
        body: Vec::new(),
        out_msg_id: out_msg_id.to_owned(),
        created_at: now.to_owned(),
        created_ms: now_ms,
        ack_within_ms: (receipt_secs as i64).saturating_mul(1000),
        dead_reason: None,
    }
}

fn endpoint_destination(e: &Endpoint) -> String {
    match e {
        Endpoint::Http { url, .. } => url.split('?').next().unwrap_or(url).to_owned(),
        Endpoint::Folder { dir } => dir.display().to_string(),
    }
}

/// The wire name of a format (`henvisning-20`, `fhir-r4`, …), as the store records formats.
pub fn format_name(f: Format) -> String {
    serde_json::to_value(f)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn encode(msg: &Message, format: Format) -> Result<(Vec<u8>, &'static str), String> {
    match format {
        Format::FhirR4 => {
            // What is delivered is a message: an epicrisis travels as one whose focus is the
            // document (`encode` alone gives the document).
            let v = match &msg.body {
                Body::Epicrisis(_) => crate::fhir::encode::encode_epicrisis_message(msg),
                _ => crate::fhir::encode::encode(msg),
            }
            .map_err(|e| e.to_string())?;
            let bytes = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
            Ok((bytes, "application/fhir+json"))
        }
        f => crate::kith::encode::encode(msg, f)
            .map(|b| (b, "application/xml; charset=utf-8"))
            .map_err(|e| e.to_string()),
    }
}

fn new_decision(
    d: &Decision,
    decided_at: &str,
    source: DecisionSource,
    by: Option<String>,
    note: Option<String>,
) -> NewDecision {
    NewDecision {
        decided_at: decided_at.to_owned(),
        decision: d.decision.word().to_owned(),
        source,
        decided_by: by,
        note,
        ruleset_id: Some(d.ruleset_id.clone()),
        ruleset_version: Some(d.ruleset_version.clone()),
        news2: d.news2.map(i64::from),
        rules: d.fired.iter().map(|f| f.id.clone()).collect(),
        reasons_no: d.reasons_no.clone(),
        reasons_en: d.reasons_en.clone(),
    }
}

fn new_route(r: &Route, now: &str, holds_bed: bool) -> NewRoute {
    NewRoute {
        routed_at: now.to_owned(),
        code: r.code.to_owned(),
        unit_key: r.unit.as_ref().map(|u| unit_key(&u.party.her_id)),
        unit_name: r.unit.as_ref().map(|u| u.party.name.clone()),
        municipality: r.municipality.clone(),
        municipality_source: r
            .municipality_source
            .map(|s| format!("{s:?}").to_lowercase()),
        full: r.full,
        diverted_from: r.diverted_from.clone(),
        reason_en: r.reason_en.clone(),
        reason_no: r.reason_no.clone(),
        holds_bed: holds_bed && r.unit.is_some(),
    }
}
