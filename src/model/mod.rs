//! The canonical model: one shape in the middle that every decoder (KITH XML, FHIR) produces and
//! every encoder consumes. Format-to-format conversion never happens; a KITH referral reaches a FHIR
//! system as KITH → model → FHIR.
//!
//! Invariants: this module is plain data. It does no I/O, knows no wire format and no SQL.
//! Fields are `Option` where the standards allow absence; decoders record what they could not read as
//! findings rather than inventing values.

use serde::{Deserialize, Serialize};

use crate::ident::PersonIdKind;

/// A coded value: code, code system (OID or URI) and display text. (KITH `CS`/`CV`, FHIR `Coding`.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Code {
    pub fn new(code: impl Into<String>, system: Option<&str>, display: Option<&str>) -> Self {
        Code {
            code: code.into(),
            system: system.map(str::to_string),
            display: display.map(str::to_string),
        }
    }
}

/// An identifier of an organisation or a person in a message. `kind` is the code from 9051 / 8116
/// (`HER`, `ENH`, `RSH`, `LOK`, `HPR`, `FNR`, …) as the sender wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ident {
    pub id: String,
    pub kind: String,
    /// The code system the sender named (often wrong in the wild; match on `kind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

impl Ident {
    pub fn new(id: impl Into<String>, kind: impl Into<String>) -> Self {
        Ident {
            id: id.into(),
            kind: kind.into(),
            system: None,
        }
    }
    pub fn is(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }
}

/// Postal address. `municipality` is the 4-digit kommunenummer when the message carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Address type (KITH 3401: H home, PST postal, …; FHIR use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub municipality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// Telephone, e-mail and the like: `kind` is the use/system code, `value` e.g. `tel:+4712345678`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telecom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub value: String,
}

/// A health professional (a person acting in a role).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Professional {
    /// 9060 (LE lege, SP sykepleier, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profession: Option<Code>,
    /// 9034 (6 fastlege, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_to_patient: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// A name given as one string (KITH basismeldinger write "Family, Given").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idents: Vec<Ident>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<Telecom>,
}

impl Professional {
    pub fn hpr(&self) -> Option<&str> {
        self.idents
            .iter()
            .find(|i| i.is("HPR"))
            .map(|i| i.id.as_str())
    }
    pub fn her_id(&self) -> Option<&str> {
        self.idents
            .iter()
            .find(|i| i.is("HER"))
            .map(|i| i.id.as_str())
    }
}

/// An organisation, possibly with one sub-unit (department/service) and a person inside, exactly the
/// "institution → department → person" chain KITH addressing uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 9040 type of organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Code>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idents: Vec<Ident>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<Telecom>,
    /// Sub-unit (department, service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Box<Organisation>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub professional: Option<Professional>,
}

impl Organisation {
    pub fn her_id(&self) -> Option<&str> {
        self.idents
            .iter()
            .find(|i| i.is("HER"))
            .map(|i| i.id.as_str())
    }
    pub fn org_number(&self) -> Option<&str> {
        self.idents
            .iter()
            .find(|i| i.is("ENH"))
            .map(|i| i.id.as_str())
    }
    /// The most specific HER-id on the chain (person, then sub-unit, then organisation).
    pub fn leaf_her_id(&self) -> Option<&str> {
        if let Some(h) = self.professional.as_ref().and_then(Professional::her_id) {
            return Some(h);
        }
        if let Some(h) = self.unit.as_ref().and_then(|u| u.leaf_her_id()) {
            return Some(h);
        }
        self.her_id()
    }
    /// Any identifier at all on the chain: enough to say who this party is.
    pub fn is_identifiable(&self) -> bool {
        !self.idents.is_empty()
            || self.unit.as_ref().is_some_and(|u| u.is_identifiable())
            || self
                .professional
                .as_ref()
                .is_some_and(|p| !p.idents.is_empty())
    }
    /// A stable key for this party: the first identifier of the top level, as `KIND:id`.
    pub fn key(&self) -> Option<String> {
        let pick = self
            .idents
            .iter()
            .find(|i| i.is("HER"))
            .or_else(|| self.idents.first());
        pick.map(|i| format!("{}:{}", i.kind.to_ascii_uppercase(), i.id.trim()))
    }
}

/// Patient sex (KITH 3101: 1 male, 2 female, 9 not applicable, 0 unknown; FHIR gender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
    Other,
    Unknown,
}

/// A patient identifier with its kind, as the message declared it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientIdent {
    pub id: String,
    /// Declared kind code (`FNR`, `DNR`, `HNR`, `FHN`, `DUF`, `PNR`, …).
    pub kind: String,
}

impl PatientIdent {
    pub fn person_kind(&self) -> Option<PersonIdKind> {
        PersonIdKind::from_code(&self.kind)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Name as one string when the format has only that ("Family, Given").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    /// ISO date `YYYY-MM-DD` as written (kept as text: real senders write unpadded dates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idents: Vec<PatientIdent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<Telecom>,
}

impl Patient {
    pub fn has_name(&self) -> bool {
        let some = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.trim().is_empty());
        some(&self.family_name) || some(&self.given_name) || some(&self.full_name)
    }
}

/// Lifecycle of a document (KITH 7309 ServType: N new, M change, C cancellation, A addition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceType {
    New,
    Change,
    Cancellation,
    Addition,
}

impl ServiceType {
    pub fn from_kith(v: &str) -> Option<Self> {
        Some(match v.trim() {
            "N" => ServiceType::New,
            "M" => ServiceType::Change,
            "C" => ServiceType::Cancellation,
            "A" => ServiceType::Addition,
            _ => return None,
        })
    }
    pub fn kith(self) -> &'static str {
        match self {
            ServiceType::New => "N",
            ServiceType::Change => "M",
            ServiceType::Cancellation => "C",
            ServiceType::Addition => "A",
        }
    }
}

/// A titled piece of free text (anamnesis, findings, plan, …). `heading` carries the code that says
/// what the text is (e.g. KITH 8232 / 9602-like headings, or a FHIR section code).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<Code>,
    pub text: String,
}

/// A measured observation (vital sign, lab value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub code: Code,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_code: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// A diagnosis, with whether it is clarified (FHIR verificationStatus confirmed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub code: Code,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
}

/// A medication line (free-form; the adjusted medication list of an epicrisis).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Medication {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drug: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dosage_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A referral (Henvisning 1.x/2.0, a Dialogmelding carrying a referral, a FHIR ServiceRequest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Referral {
    /// The referral's own id (Henvisning 1.x `ServReq/Id`; for 2.0 the MsgHead MsgId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<String>,
    /// Hastegrad (8304 / 8306). `0` = emergency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Patient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Organisation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_provider: Option<Organisation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_to: Vec<Organisation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnoses: Vec<Diagnosis>,
    /// Reason for referral, anamnesis, findings … as titled texts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<TextSection>,
    /// Treatment and observation plan, when the message has a distinct place for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<Observation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub medications: Vec<Medication>,
    /// Structured flags (FHIR Flag / assessments): e.g. `violence`, `suicide-risk:moderate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<Code>,
}

impl Referral {
    /// Hastegrad 0 = øyeblikkelig hjelp (emergency referral) in both 8304 and 8306.
    pub fn is_emergency(&self) -> bool {
        self.priority.as_ref().is_some_and(|p| p.code.trim() == "0")
    }
}

/// An epicrisis / discharge summary (Epikrise 1.x, PLO Utskrivningsrapport, FHIR document).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Epicrisis {
    /// Document id (`ServRprt/ServProvId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The referral this answers (`ServRprt/ServReq/Id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// 7306: F final, P preliminary, A addition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Patient>,
    /// The unit that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_provider: Option<Organisation>,
    /// The primary receiver (the requester of the original referral).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Organisation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_to: Vec<Organisation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnoses: Vec<Diagnosis>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<TextSection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub medications: Vec<Medication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharged: Option<String>,
}

/// A dialogue message (Dialogmelding 1.0/1.1, FHIR Communication).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialog {
    /// 7322 topic (TemaKodet) or 1.0 `Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<TextSection>,
    /// The dialogue's own reference (`Foresporsel/DokIdForesp`, `Notat/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible: Option<Professional>,
}

/// An application receipt (AppRec) or a FHIR response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub status: ReceiptStatus,
    pub errors: Vec<Code>,
    /// The message this receipt is about.
    pub original_msg_id: Option<String>,
    pub original_msg_type: Option<String>,
    pub original_issue_date: Option<String>,
}

/// 8258: 1 ok, 2 rejected, 3 ok with errors in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    Ok,
    Rejected,
    Partial,
}

impl ReceiptStatus {
    pub fn code(self) -> &'static str {
        match self {
            ReceiptStatus::Ok => "1",
            ReceiptStatus::Rejected => "2",
            ReceiptStatus::Partial => "3",
        }
    }
    pub fn text(self) -> &'static str {
        match self {
            ReceiptStatus::Ok => "OK",
            ReceiptStatus::Rejected => "Avvist",
            ReceiptStatus::Partial => "OK, feil i delmelding",
        }
    }
    pub fn from_code(v: &str) -> Option<Self> {
        Some(match v.trim() {
            "1" => ReceiptStatus::Ok,
            "2" => ReceiptStatus::Rejected,
            "3" => ReceiptStatus::Partial,
            _ => return None,
        })
    }
    /// The word used in `kadgate validate --json`.
    pub fn word(self) -> &'static str {
        match self {
            ReceiptStatus::Ok => "ok",
            ReceiptStatus::Rejected => "rejected",
            ReceiptStatus::Partial => "partial",
        }
    }
}

/// A PLO message: kept as its kind plus the facts the stay tracking needs (issue: stays).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PloMessage {
    /// Root element local name, e.g. `Pasientlogistikk`, `Innleggelsesrapport`.
    pub document: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<TextSection>,
}

/// The business content of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Body {
    Referral(Box<Referral>),
    Epicrisis(Box<Epicrisis>),
    Dialog(Box<Dialog>),
    Plo(Box<PloMessage>),
    Receipt(Box<Receipt>),
    /// Recognised envelope, content kadgate does not read (kept raw in the store).
    Opaque,
}

/// The wire format and version a message came in (or must go out) as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    MsgHead12,
    Henvisning10,
    Henvisning11,
    Henvisning20,
    Epikrise10,
    Epikrise11,
    Epikrise12,
    Dialogmelding10,
    Dialogmelding11,
    Plo15,
    Plo16,
    Plo20,
    AppRec10,
    AppRec11,
    FhirR4,
}

impl Format {
    /// The AppRec version the national rules call for in answer to this format (FACTS §5):
    /// 1.1 with Henvisning 1.1/2.0, Epikrise 1.2, Dialogmelding 1.1, PLO 1.6; 1.0 with the older ones.
    pub fn apprec_version(self) -> Format {
        match self {
            Format::Henvisning11
            | Format::Henvisning20
            | Format::Epikrise12
            | Format::Dialogmelding11
            | Format::Plo16
            | Format::Plo20 => Format::AppRec11,
            _ => Format::AppRec10,
        }
    }
}

/// Links to other messages (FACTS §6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_to_parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_to_conversation: Option<String>,
}

/// A copy receiver (MsgHead `OtherReceiver`, basismelding `CopyDest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyReceiver {
    /// 8112 role (COP copy, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub party: Organisation,
}

/// The header every message has, whatever its format: who, to whom, about whom, which message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: Format,
    /// 8279 message type (`HENVISNING`, `DIALOG_HELSEFAGLIG`, `APPREC`, …).
    pub msg_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_type_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// GenDate as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Organisation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<Organisation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_receivers: Vec<CopyReceiver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Patient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    /// MsgHead `Ack` (7304: J, N, F).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<String>,
    /// 8113 P/T/D.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_status: Option<String>,
    /// Came wrapped in NAV's EI_fellesformat.
    #[serde(default)]
    pub fellesformat: bool,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

impl Message {
    /// The patient the message is about: the header's, else the body's.
    pub fn patient(&self) -> Option<&Patient> {
        if let Some(p) = &self.header.patient {
            return Some(p);
        }
        match &self.body {
            Body::Referral(r) => r.patient.as_ref(),
            Body::Epicrisis(e) => e.patient.as_ref(),
            _ => None,
        }
    }
}
