//! The whole check of one KITH message, and the receipt decision (FACTS §7): bytes in, findings and
//! the AppRecs to answer with out.
//!
//! Invariant: no I/O and no clock. The pipeline stores the outcome and renders the planned receipts
//! (id and time are filled in there), and `kadgate validate` prints it; both get the same verdict
//! from the same code.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::config::{normalise_value, parse_ident, Config, Policy};
use crate::finding::{codes, Finding, Severity};
use crate::kith::apprec::{AppRecError, ReceiverRole};
use crate::kith::decode::{decode, salvage_header};
use crate::kith::detect::{detect, Detection};
use crate::kith::semantics::{self, Paths};
use crate::model::{Body, Format, Header, Message, Organisation, ReceiptStatus};
use crate::xml::{self, Limits};
use crate::xsd::{SchemaSet, XsdReport};

/// One of our organisations, ready for matching.
#[derive(Debug, Clone)]
pub struct OurOrg {
    pub name: String,
    pub idents: HashSet<String>,
    /// Known units/persons; each entry is the set of one unit's identifiers. Empty = any.
    pub units: Vec<HashSet<String>>,
    pub reject_unknown_service: bool,
    pub known_patients: Option<HashSet<String>>,
}

/// The receipt rules, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    pub orgs: Vec<OurOrg>,
    pub senders: HashMap<String, Policy>,
    pub default_policy: Policy,
    pub limits: Limits,
}

fn norm(kind: &str, value: &str) -> String {
    format!(
        "{}:{}",
        kind.trim().to_ascii_uppercase(),
        normalise_value(value)
    )
}

fn norm_cfg(s: &str) -> Option<String> {
    parse_ident(s).map(|(k, v)| norm(&k, &v))
}

impl Rules {
    pub fn from_config(cfg: &Config) -> Rules {
        let orgs = cfg
            .organisations
            .iter()
            .map(|o| OurOrg {
                name: o.name.clone(),
                idents: o.idents.iter().filter_map(|s| norm_cfg(s)).collect(),
                units: o
                    .units
                    .iter()
                    .map(|u| u.idents.iter().filter_map(|s| norm_cfg(s)).collect())
                    .collect(),
                reject_unknown_service: o
                    .reject_unknown_service
                    .unwrap_or(cfg.receipts.reject_unknown_service),
                known_patients: o
                    .known_patients
                    .as_ref()
                    .map(|v| v.iter().map(|s| normalise_value(s)).collect()),
            })
            .collect();
        let mut senders = HashMap::new();
        for s in &cfg.senders {
            for i in &s.idents {
                if let Some(k) = norm_cfg(i) {
                    senders.insert(k, s.policy);
                }
            }
        }
        Rules {
            orgs,
            senders,
            default_policy: cfg.receipts.default_policy,
            limits: Limits {
                max_bytes: cfg.server.max_body_bytes,
                ..Limits::default()
            },
        }
    }

    fn policy_for(&self, sender: Option<&Organisation>) -> Policy {
        let Some(s) = sender else {
            return self.default_policy;
        };
        for i in org_chain_idents(s) {
            if let Some(p) = self.senders.get(&i) {
                return *p;
            }
        }
        self.default_policy
    }

    /// The organisation of ours a party belongs to: by the party's top-level identifiers, else by a
    /// HER-id anywhere in its chain that is one of our units' HER-ids. A HER-id names exactly one
    /// communication party in Adresseregisteret (FACTS §3), so a service or person addressed by its
    /// level-2 HER-id alone (e.g. a bare `OtherReceiver/HealthcareProfessional`) is still ours. HPR
    /// numbers are not used for this: one person may work for several organisations.
    fn our_org(&self, party: &Organisation) -> Option<&OurOrg> {
        let ids: Vec<String> = party.idents.iter().map(|i| norm(&i.kind, &i.id)).collect();
        if let Some(o) = self
            .orgs
            .iter()
            .find(|o| ids.iter().any(|i| o.idents.contains(i)))
        {
            return Some(o);
        }
        let her: Vec<String> = org_chain_idents(party)
            .into_iter()
            .filter(|i| i.starts_with("HER:"))
            .collect();
        self.orgs
            .iter()
            .find(|o| o.units.iter().any(|u| her.iter().any(|i| u.contains(i))))
    }
}

/// Every identifier on a party chain, normalised.
fn org_chain_idents(o: &Organisation) -> Vec<String> {
    let mut v: Vec<String> = o.idents.iter().map(|i| norm(&i.kind, &i.id)).collect();
    if let Some(p) = &o.professional {
        v.extend(p.idents.iter().map(|i| norm(&i.kind, &i.id)));
    }
    if let Some(u) = &o.unit {
        v.extend(org_chain_idents(u));
    }
    v
}

/// Identifier sets of the levels below the top of a party chain, marked person or unit.
fn sub_levels(o: &Organisation) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    if let Some(p) = &o.professional {
        out.push((
            true,
            p.idents.iter().map(|i| norm(&i.kind, &i.id)).collect(),
        ));
    }
    let mut unit = o.unit.as_deref();
    while let Some(u) = unit {
        out.push((
            false,
            u.idents.iter().map(|i| norm(&i.kind, &i.id)).collect(),
        ));
        if let Some(p) = &u.professional {
            out.push((
                true,
                p.idents.iter().map(|i| norm(&i.kind, &i.id)).collect(),
            ));
        }
        unit = u.unit.as_deref();
    }
    out
}

/// A stable key for a party: its most specific identifier (`HER:369767`).
pub fn party_key(o: &Organisation) -> String {
    let levels = sub_levels(o);
    for (_, ids) in levels.iter().rev() {
        if let Some(h) = ids.iter().find(|i| i.starts_with("HER:")).or(ids.first()) {
            return h.clone();
        }
    }
    o.idents
        .iter()
        .map(|i| norm(&i.kind, &i.id))
        .find(|i| i.starts_with("HER:"))
        .or_else(|| o.idents.first().map(|i| norm(&i.kind, &i.id)))
        .unwrap_or_else(|| "UNKNOWN".into())
}

/// The sender's key for deduplication: the top-level HER-id, else its first identifier.
pub fn sender_key(o: &Organisation) -> Option<String> {
    let ids: Vec<String> = o.idents.iter().map(|i| norm(&i.kind, &i.id)).collect();
    ids.iter()
        .find(|i| i.starts_with("HER:"))
        .or(ids.first())
        .cloned()
        .or_else(|| {
            let all = org_chain_idents(o);
            all.first().cloned()
        })
}

/// Whether the check runs for a live configuration or as "the addressed receiver" (validate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer only for our configured organisations.
    Serve,
    /// Act as whoever the message addresses as primary receiver (`kadgate validate`).
    AssumeAddressed,
}

/// What happens to the message at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    /// At least one of our receivers answers with a positive AppRec.
    Accepted,
    /// Every AppRec we answer with is negative, or the message cannot be answered at all.
    Rejected,
    /// None of the receivers is ours: stored, no AppRec (FACTS §7.2).
    NotAddressed,
    /// Not readable and no sender to answer: stored, no AppRec.
    Unreadable,
    /// An AppRec coming in: correlated, never answered.
    IncomingReceipt,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Accepted => "accepted",
            Disposition::Rejected => "rejected",
            Disposition::NotAddressed => "not-addressed",
            Disposition::Unreadable => "unreadable",
            Disposition::IncomingReceipt => "receipt",
        }
    }
}

/// One AppRec to send, apart from its id and time.
#[derive(Debug, Clone)]
pub struct PlannedReceipt {
    /// Our party as the message addressed it.
    pub party: Organisation,
    pub receiver_key: String,
    pub role: ReceiverRole,
    pub status: ReceiptStatus,
    pub errors: Vec<AppRecError>,
    pub version: Format,
}

/// Everything the check found out.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub well_formed: bool,
    /// None when validation was not reached or no schema set is loaded.
    pub schema_valid: Option<bool>,
    /// Effective format (for MsgHead: the embedded document's, when known).
    pub format: Option<Format>,
    pub header: Option<Header>,
    pub message: Option<Message>,
    pub findings: Vec<Finding>,
    pub disposition: Disposition,
    pub receipts: Vec<PlannedReceipt>,
}

impl Outcome {
    pub fn msg_type(&self) -> Option<&str> {
        self.header
            .as_ref()
            .map(|h| h.msg_type.as_str())
            .filter(|s| !s.is_empty())
    }
    pub fn msg_id(&self) -> Option<&str> {
        self.header.as_ref().and_then(|h| h.msg_id.as_deref())
    }
    pub fn sender_key(&self) -> Option<String> {
        self.header
            .as_ref()
            .and_then(|h| h.sender.as_ref())
            .and_then(sender_key)
    }
    /// `sender|MsgId`, when both are known.
    pub fn dedup_key(&self) -> Option<String> {
        Some(format!("{}|{}", self.sender_key()?, self.msg_id()?.trim()))
    }
    /// The primary receipt's verdict for `validate --json`: (`ok`/`rejected`/`partial`/`none`, codes).
    pub fn apprec_summary(&self) -> (&'static str, Vec<String>) {
        match self.receipts.first() {
            None => ("none", Vec::new()),
            Some(r) => (
                r.status.word(),
                r.errors.iter().map(|e| e.code.clone()).collect(),
            ),
        }
    }
}

/// The checker: rules + the compiled schema set.
pub struct Checker<'a> {
    pub rules: &'a Rules,
    pub schemas: Option<&'a SchemaSet>,
    pub mode: Mode,
}

fn ot_from(findings: &[Finding], codes: &[&str]) -> Option<String> {
    let f = findings.iter().find(|f| codes.contains(&f.code.as_str()))?;
    let mut s = format!("{}: {}", f.path, f.message);
    if s.chars().count() > 240 {
        s = s.chars().take(239).collect::<String>() + "…";
    }
    Some(s)
}

/// A message after [`Checker::read`]: either already answered (unreadable, unknown kind, empty
/// envelope) or decoded and waiting for its schema verdict.
pub enum Stage {
    Done(Box<Outcome>),
    Decoded(Box<Pending>),
}

/// A decoded message whose schema verdict is still to come.
pub struct Pending {
    findings: Vec<Finding>,
    format: Format,
    root_name: String,
    message: Message,
}

impl Stage {
    /// Whether [`Checker::finish`] wants an XSD report for this message.
    pub fn wants_schema(&self) -> bool {
        matches!(self, Stage::Decoded(_))
    }
}

impl Checker<'_> {
    /// Every check on one message: [`read`](Self::read), XSD validation when the schema set is
    /// loaded, then [`finish`](Self::finish).
    pub fn check(&self, bytes: &[u8]) -> Outcome {
        let stage = self.read(bytes);
        let xsd = match self.schemas {
            Some(s) if stage.wants_schema() => Some(s.validate(bytes)),
            _ => None,
        };
        self.finish(stage, xsd)
    }

    /// The part of the check that needs no schema: read, detect and decode. Split from
    /// [`finish`](Self::finish) so that a batch can do this while the schema set is still compiling.
    pub fn read(&self, bytes: &[u8]) -> Stage {
        let mut findings = Vec::new();
        let doc = match xml::scan(bytes, &self.rules.limits) {
            Ok(d) => d,
            Err(e) => return Stage::Done(Box::new(self.unreadable(bytes, e, findings))),
        };
        let detected = match detect(&doc.root) {
            Detection::Known(d) => d,
            Detection::Unknown { ns, name, .. } => {
                findings.push(Finding::error(
                    codes::MSG_UNSUPPORTED,
                    format!("/{name}"),
                    format!(
                        "unsupported message kind: element {name} in namespace {}",
                        ns.as_deref().unwrap_or("(none)")
                    ),
                ));
                let header = salvage_header(&doc.root);
                return Stage::Done(Box::new(
                    self.answer_without_reading(header, findings, "T10", true),
                ));
            }
            Detection::EmptyEnvelope => {
                findings.push(Finding::error(
                    codes::MSG_ENVELOPE_EMPTY,
                    "/EI_fellesformat",
                    "the envelope holds no KITH message",
                ));
                return Stage::Done(Box::new(Outcome {
                    well_formed: true,
                    schema_valid: None,
                    format: None,
                    header: None,
                    message: None,
                    findings,
                    disposition: Disposition::Unreadable,
                    receipts: Vec::new(),
                }));
            }
        };
        let format = detected.inner.unwrap_or(detected.format);
        let root_name = format!("/{}", detected.root.name);
        let decoded = decode(&detected);
        findings.extend(decoded.findings);
        Stage::Decoded(Box::new(Pending {
            findings,
            format,
            root_name,
            message: decoded.message,
        }))
    }

    /// The rest of the check, given the XSD report for the same bytes (None: schemas not loaded).
    pub fn finish(&self, stage: Stage, xsd: Option<XsdReport>) -> Outcome {
        let Pending {
            mut findings,
            format,
            root_name,
            message,
        } = match stage {
            Stage::Done(o) => return *o,
            Stage::Decoded(p) => *p,
        };
        let mut schema_valid = None;
        let mut xsd_findings = Vec::new();
        if let Some(rep) = xsd {
            schema_valid = Some(rep.schema_valid());
            xsd_findings = rep.findings;
        }
        let policy = self.rules.policy_for(message.header.sender.as_ref());
        let schema_reject = schema_valid == Some(false) && policy == Policy::Strict;
        if schema_valid == Some(false) && policy == Policy::Lenient {
            for f in &mut xsd_findings {
                f.severity = Severity::Warning;
            }
            findings.push(Finding::warning(
                codes::LENIENT_TOLERATED,
                root_name.clone(),
                format!(
                    "{} schema deviation(s) tolerated under the sender's lenient policy",
                    xsd_findings.len()
                ),
            ));
        }
        findings.extend(xsd_findings.iter().cloned());

        if matches!(message.body, Body::Receipt(_)) {
            let mut f = Vec::new();
            semantics::check_parties(&message, &paths_for(format, &root_name), &mut f);
            findings.extend(f);
            return Outcome {
                well_formed: true,
                schema_valid,
                format: Some(format),
                header: Some(message.header.clone()),
                message: Some(message),
                findings,
                disposition: Disposition::IncomingReceipt,
                receipts: Vec::new(),
            };
        }

        // Header and patient semantics.
        let paths = paths_for(format, &root_name);
        let mut sem = Vec::new();
        semantics::check_msg_id(&message, &paths, &mut sem);
        semantics::check_parties(&message, &paths, &mut sem);
        let patient_path = patient_path(format, &root_name);
        let verdict = if semantics::patient_optional(&message) {
            // Not about a patient (FACTS §7.3's E36 needs a patient to identify).
            semantics::PatientVerdict {
                sufficient: true,
                has_valid_national_id: false,
            }
        } else {
            semantics::check_patient(message.patient(), &patient_path, &mut sem)
        };
        let emergency = matches!(&message.body, Body::Referral(r) if r.is_emergency());
        let mut patient_reject = !verdict.sufficient;
        if patient_reject && emergency {
            patient_reject = false;
            for f in sem.iter_mut().filter(|f| {
                f.code == codes::PATIENT_INSUFFICIENT
                    || f.code == codes::PATIENT_MISSING
                    || f.code == codes::PATIENT_NAME_MISSING
            }) {
                f.severity = Severity::Warning;
            }
            sem.push(Finding::new(
                codes::EMERGENCY_EXCEPTION,
                Severity::Info,
                patient_path.clone(),
                "emergency referral (hastegrad 0): accepted although the patient is insufficiently identified",
            ));
        }
        let msgid_reject = sem
            .iter()
            .any(|f| f.code == codes::MSGID_MISSING || f.code == codes::MSGID_NOT_UUID);
        findings.extend(sem);

        let sender_ok = message
            .header
            .sender
            .as_ref()
            .is_some_and(Organisation::is_identifiable);
        let header = message.header.clone();

        // Who answers: our receivers.
        let targets = self.targets(&header);
        if targets.is_empty() {
            let addressed = header
                .receiver
                .as_ref()
                .is_some_and(Organisation::is_identifiable);
            if addressed {
                findings.push(Finding::new(
                    codes::RECEIVER_NOT_OURS,
                    Severity::Info,
                    paths.receiver,
                    "no receiver of this message is one of our organisations",
                ));
            }
            return Outcome {
                well_formed: true,
                schema_valid,
                format: Some(format),
                header: Some(header),
                message: Some(message),
                findings,
                disposition: if addressed {
                    Disposition::NotAddressed
                } else {
                    Disposition::Rejected
                },
                receipts: Vec::new(),
            };
        }
        if !sender_ok {
            // No one to answer (FACTS §7.2: no AppRec when the sender cannot be determined).
            return Outcome {
                well_formed: true,
                schema_valid,
                format: Some(format),
                header: Some(header),
                message: Some(message),
                findings,
                disposition: Disposition::Rejected,
                receipts: Vec::new(),
            };
        }

        let version = format.apprec_version();
        let mut receipts = Vec::new();
        for (party, role, org) in targets {
            let mut errors = Vec::new();
            if schema_reject {
                errors.push(AppRecError {
                    code: "T02".into(),
                    ot: ot_from(&xsd_findings, &[codes::XSD_INVALID]),
                });
            }
            if msgid_reject {
                errors.push(AppRecError {
                    code: "E10".into(),
                    ot: ot_from(&findings, &[codes::MSGID_MISSING, codes::MSGID_NOT_UUID]),
                });
            }
            if patient_reject {
                errors.push(AppRecError {
                    code: "E36".into(),
                    ot: ot_from(
                        &findings,
                        &[codes::PATIENT_INSUFFICIENT, codes::PATIENT_MISSING],
                    ),
                });
            }
            if let Some(org) = org {
                if let Some(person) = unknown_unit(org, &party) {
                    let what = if person {
                        "person"
                    } else {
                        "service or department"
                    };
                    let f = Finding::new(
                        codes::RECEIVER_UNKNOWN_SERVICE,
                        if org.reject_unknown_service {
                            Severity::Error
                        } else {
                            Severity::Warning
                        },
                        paths.receiver,
                        format!("the addressed {what} is not known at {}", org.name),
                    );
                    if org.reject_unknown_service {
                        errors.push(AppRecError::with_ot(
                            if person { "E20" } else { "E21" },
                            f.message.clone(),
                        ));
                    }
                    findings.push(f);
                }
                if let Some(known) = &org.known_patients {
                    let needs_record = matches!(message.body, Body::Epicrisis(_) | Body::Plo(_));
                    // Only a valid FNR/DNR/FHN can be looked up; a patient identified by name, birth
                    // date and sex (or carrying only an H-number) goes to manual matching (FACTS §7.2).
                    let ids: Vec<String> = message
                        .patient()
                        .map(semantics::national_ids)
                        .unwrap_or_default();
                    if needs_record
                        && verdict.sufficient
                        && !ids.is_empty()
                        && !ids.iter().any(|i| known.contains(i))
                    {
                        let f = Finding::error(
                            codes::PATIENT_UNKNOWN,
                            patient_path.clone(),
                            format!("the patient has no record at {}", org.name),
                        );
                        errors.push(AppRecError::with_ot("E35", f.message.clone()));
                        findings.push(f);
                    }
                }
            }
            let status = if errors.is_empty() {
                ReceiptStatus::Ok
            } else {
                ReceiptStatus::Rejected
            };
            receipts.push(PlannedReceipt {
                receiver_key: party_key(&party),
                party,
                role,
                status,
                errors,
                version,
            });
        }
        let disposition = if receipts.iter().any(|r| r.status == ReceiptStatus::Ok) {
            Disposition::Accepted
        } else {
            Disposition::Rejected
        };
        Outcome {
            well_formed: true,
            schema_valid,
            format: Some(format),
            header: Some(header),
            message: Some(message),
            findings,
            disposition,
            receipts,
        }
    }

    /// Our receivers of a message: the primary receiver if ours, then each copy receiver that is ours
    /// (and not the same party as one already listed).
    pub(crate) fn targets(&self, h: &Header) -> Vec<(Organisation, ReceiverRole, Option<&OurOrg>)> {
        let mut out: Vec<(Organisation, ReceiverRole, Option<&OurOrg>)> = Vec::new();
        let Some(primary) = h.receiver.as_ref().filter(|r| r.is_identifiable()) else {
            return out;
        };
        match self.mode {
            Mode::AssumeAddressed => out.push((primary.clone(), ReceiverRole::Primary, None)),
            Mode::Serve => {
                if let Some(org) = self.rules.our_org(primary) {
                    out.push((primary.clone(), ReceiverRole::Primary, Some(org)));
                }
                for c in &h.copy_receivers {
                    if let Some(org) = self.rules.our_org(&c.party) {
                        let key = party_key(&c.party);
                        if !out.iter().any(|(p, _, _)| party_key(p) == key) {
                            out.push((c.party.clone(), ReceiverRole::Copy, Some(org)));
                        }
                    }
                }
            }
        }
        out
    }

    /// A message we could not read at all (not well-formed, hostile, wrong encoding, too big).
    fn unreadable(&self, bytes: &[u8], e: xml::ScanError, mut findings: Vec<Finding>) -> Outcome {
        let code = e.finding.code.clone();
        findings.push(*e.finding);
        if code == codes::XML_EMPTY || code == codes::XML_TOO_LARGE {
            return Outcome {
                well_formed: false,
                schema_valid: None,
                format: None,
                header: None,
                message: None,
                findings,
                disposition: Disposition::Unreadable,
                receipts: Vec::new(),
            };
        }
        // Read on past the error as far as possible, only to find who sent it and to whom.
        let tree = if code == codes::XML_NOT_WELL_FORMED {
            xml::recover_tree(bytes, &self.rules.limits)
        } else {
            e.partial.map(|b| *b)
        };
        let header = tree.as_ref().and_then(salvage_header);
        let mut o = self.answer_without_reading(header, findings, "T01", false);
        o.well_formed = false;
        o
    }

    /// Answer a message we cannot read with a negative AppRec (T01/T10), if we can tell who sent it
    /// and it was addressed to us.
    fn answer_without_reading(
        &self,
        header: Option<Header>,
        findings: Vec<Finding>,
        code: &str,
        well_formed: bool,
    ) -> Outcome {
        let mut o = Outcome {
            well_formed,
            schema_valid: None,
            format: header.as_ref().map(|h| h.format),
            header: header.clone(),
            message: None,
            findings,
            disposition: Disposition::Unreadable,
            receipts: Vec::new(),
        };
        let Some(h) = header else { return o };
        if !h.sender.as_ref().is_some_and(Organisation::is_identifiable) {
            return o;
        }
        let targets = self.targets(&h);
        let first = o
            .findings
            .last()
            .map(|f| format!("{}: {}", f.path, f.message));
        for (party, role, _) in targets {
            o.receipts.push(PlannedReceipt {
                receiver_key: party_key(&party),
                party,
                role,
                status: ReceiptStatus::Rejected,
                errors: vec![AppRecError {
                    code: code.into(),
                    ot: first.clone(),
                }],
                version: h.format.apprec_version(),
            });
        }
        if !o.receipts.is_empty() {
            o.disposition = Disposition::Rejected;
        }
        o
    }
}

/// If the receiver chain names a unit or person below the organisation that the organisation does
/// not have, say which (true = person).
fn unknown_unit(org: &OurOrg, party: &Organisation) -> Option<bool> {
    if org.units.is_empty() {
        return None;
    }
    for (person, ids) in sub_levels(party) {
        if ids.is_empty() {
            continue;
        }
        let known = org.units.iter().any(|u| ids.iter().any(|i| u.contains(i)));
        if !known {
            return Some(person);
        }
    }
    None
}

fn paths_for(format: Format, root: &str) -> Paths<'static> {
    let _ = root;
    match format {
        Format::Henvisning10 | Format::Henvisning11 => Paths {
            msg_id: "/Message/MsgId",
            sender: "/Message/ServReq/Requester",
            receiver: "/Message/ServReq/ServProvider",
            patient: "/Message/ServReq/Patient",
        },
        Format::Epikrise10 | Format::Epikrise11 | Format::Epikrise12 => Paths {
            msg_id: "/Message/MsgId",
            sender: "/Message/ServRprt/ServProvider",
            receiver: "/Message/ServRprt/Requester",
            patient: "/Message/ServRprt/Patient",
        },
        Format::AppRec10 | Format::AppRec11 => Paths {
            msg_id: "/AppRec/Id",
            sender: "/AppRec/Sender",
            receiver: "/AppRec/Receiver",
            patient: "/AppRec",
        },
        _ => Paths {
            msg_id: "/MsgHead/MsgInfo/MsgId",
            sender: "/MsgHead/MsgInfo/Sender",
            receiver: "/MsgHead/MsgInfo/Receiver",
            patient: "/MsgHead/MsgInfo/Patient",
        },
    }
}

fn patient_path(format: Format, root: &str) -> String {
    paths_for(format, root).patient.to_string()
}
