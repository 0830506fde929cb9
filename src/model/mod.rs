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
    /// ISO date of death, when the message gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deceased_date: Option<String>,
    /// Nationality (country code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nationality: Option<Code>,
    /// Marital status (KITH 9052-like civil-status codes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marital_status: Option<Code>,
    /// Relatives, guardians and private contact persons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_persons: Vec<RelatedPerson>,
    /// Health personnel and units related to the patient (regular GP, referring doctor, contact
    /// person, the one responsible for the report …), each with its relation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub care_providers: Vec<CareProvider>,
    /// Needs for assisted communication (interpreter and language).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communication_needs: Vec<CommunicationNeed>,
}

impl Patient {
    pub fn has_name(&self) -> bool {
        let some = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.trim().is_empty());
        some(&self.family_name) || some(&self.given_name) || some(&self.full_name)
    }
}

/// A measured amount as written: the value is kept as text so it is passed on exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A relative, guardian or private contact person of the patient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedPerson {
    /// Kinship (KITH 9033-like: MO mother, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<Code>,
    /// Care function (guardian, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_function: Option<Code>,
    /// Marked as the closest relative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_of_kin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Name as one string when the format has only that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idents: Vec<Ident>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<Telecom>,
    /// Occupation or role, for a private contact person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workplace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a related health professional is to the document, beyond the relation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CareProviderRole {
    /// Named contact person among health personnel.
    Contact,
    /// Responsible for the content of the report/referral.
    Responsible,
}

/// A health professional or unit related to the patient or the document, with the relation
/// (KITH 8254: FLE regular GP, HHE referring, AHP responsible, …). A person alone is an
/// `Organisation` with only `professional` set, as for copy receivers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CareProviderRole>,
    pub party: Organisation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A need for assisted communication: an interpreter language, hearing or sight impairment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunicationNeed {
    /// Interpreter language (code + name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Code>,
    /// The person who needs it, when not the patient (e.g. a parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<RelatedPerson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hearing_impaired: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sight_impaired: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Consent to the referral (who, when, status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_by: Option<String>,
}

/// The receiving unit's assessment of a referral (dates of receipt/assessment, the right to
/// health care, the outcome).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralAssessment {
    /// Dated steps: (what the date is, ISO date).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<DatedCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_choice: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_end: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pathway_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Code>,
}

/// A coded kind of date and the date.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatedCode {
    pub kind: Code,
    pub date: String,
}

/// A standardised care pathway (pakkeforløp) the referral belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarePathway {
    pub code: Code,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A qualifier of a coded value (e.g. an ICD-10 star code qualifying a dagger code).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeModifier {
    pub name: Code,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Code>,
}

/// A document attached to a message (PDF, image, …), inline as base64 or by reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// What the attached document is (KITH 8114: A attachment, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Base64 content without whitespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// External reference instead of content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
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
    /// The part the text plays in its document (None: unspecified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<TextRole>,
    /// Period the text is about (a precaution's or a clinical item's start/end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Coded statements accompanying the text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<Code>,
}

/// The part a [`TextSection`] plays in its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextRole {
    /// The requester's general comment on the request.
    RequestComment,
    /// Reason for the referral / admission, by heading.
    Reason,
    /// A clinical information item (history, findings, CAVE …), by heading.
    ClinicalInfo,
    /// A comment on a clinical information item.
    ClinicalInfoComment,
    /// A headed comment (course, assessment, plans …).
    Comment,
    /// A precaution the receiver must know about.
    Precaution,
    /// A comment on the requested service.
    ServiceComment,
    /// The body of a note.
    Note,
    /// A remark on a note.
    Remark,
    /// A question put to the receiver.
    Question,
    /// The justification of a question.
    Justification,
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
    /// Deviation from the reference range (KITH 8244).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpretation: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The kind of information (KITH 8233 FUNN …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Code>,
}

/// A diagnosis, with whether it is clarified (FHIR verificationStatus confirmed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub code: Code,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// Main or secondary diagnosis, when the document says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<DiagnosisRank>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifiers: Vec<CodeModifier>,
}

/// Main (hoveddiagnose) or secondary (bidiagnose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiagnosisRank {
    Main,
    Secondary,
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
    /// Display text of the status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dosage_code: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_dose: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_duration: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity_supplied: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// The kind of information (KITH 8233 MEDB …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Code>,
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
    /// The referral document's own id when it differs from `id` (Henvisning 2.0 `DocumentId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    /// Who pays (KITH 8237-like payment category).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_category: Option<Code>,
    /// The patient's basis for health services (KITH 8246-like).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis_for_health_services: Option<Code>,
    /// Purpose of the requested service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Code>,
    /// Service type of the requested service when it differs from the document's (a changed
    /// referral still requests a new service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_service_type: Option<ServiceType>,
    /// Date the service is wanted by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_date: Option<String>,
    /// Requested medical specialty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_specialty: Option<Code>,
    /// When the receiver got the referral (as reported back in an epicrisis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_date: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<Consent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<ReferralAssessment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub care_pathways: Vec<CarePathway>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
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
    /// When the document was approved (signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_date: Option<String>,
    /// Title / description of the document ("Sykehusepikrise").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Code>,
    /// The referral this answers, as the epicrisis repeats it (id, dates, diagnoses, reasons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Box<Referral>>,
    /// Kind of stay (KITH 8240: 1 inpatient, 2 day treatment, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_category: Option<Code>,
    /// Where the patient went at discharge (KITH 8408-like: 1 home, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharge_outcome: Option<Code>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<Observation>,
    /// Health personnel responsible for or involved in the stay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub care_providers: Vec<CareProvider>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
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
    /// The responsible person's role in the note (KITH 9057-like).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible_role: Option<Code>,
    /// Kind of case the dialogue belongs to, coded and as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_type: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_type_text: Option<String>,
    /// Date of the note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note_date: Option<String>,
    /// When the document was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<String>,
    /// A question/request (forespørsel), when the dialogue carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<DialogRequest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// A request for information or action inside a dialogue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialogRequest {
    /// Kind of request (KITH 7601/7603 …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_date: Option<String>,
    /// Kinds of record information asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_types: Vec<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coded_info: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
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

/// A PLO message: kept as its kind plus the facts the stay tracking needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PloMessage {
    /// Root element local name, e.g. `Pasientlogistikk`, `Innleggelsesrapport`.
    pub document: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<TextSection>,
    /// What the message reports about a stay (Pasientlogistikk `LOG_INNLAGT`, `LOG_UTSKREVET` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<CareEvent>,
}

/// What happened to a patient's stay, as the unit reports it: a PLO Pasientlogistikk message, or a
/// FHIR message whose focus is an Encounter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareEvent {
    /// Serialised as `event`: inside [`Body`], whose tag is `kind`, a field named `kind` would
    /// be written twice.
    #[serde(rename = "event")]
    pub kind: CareEventKind,
    /// When it happened, as written (date or date-time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// New report, a change of an earlier one, or its cancellation (PLO `Forsendelsesstatus`;
    /// FHIR Encounter `entered-in-error` = cancellation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// The referral the stay answers, when the message names it (FHIR `Encounter.basedOn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_id: Option<String>,
    /// The unit's own id of the stay (FHIR `Encounter.identifier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stay_id: Option<String>,
    /// The patient is followed up by municipal home nursing after the stay, when the message says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_nursing: Option<bool>,
}

/// The kind of a [`CareEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CareEventKind {
    /// The patient was admitted (PLO `LOG_INNLAGT`, Encounter `in-progress`).
    Admitted,
    /// The patient was discharged (PLO `LOG_UTSKREVET`, Encounter `finished`).
    Discharged,
    /// Ready for discharge (PLO `LOG_UTSKRIVNINGSKLAR`).
    ReadyForDischarge,
    /// The patient died (PLO `LOG_DOD`).
    Deceased,
}

impl CareEventKind {
    pub fn word(self) -> &'static str {
        match self {
            CareEventKind::Admitted => "admitted",
            CareEventKind::Discharged => "discharged",
            CareEventKind::ReadyForDischarge => "ready-for-discharge",
            CareEventKind::Deceased => "deceased",
        }
    }
}

/// The business content of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Body {
    Referral(Box<Referral>),
    Epicrisis(Box<Epicrisis>),
    Dialog(Box<Dialog>),
    Plo(Box<PloMessage>),
    /// A stay event from a FHIR message (PLO events sit in [`PloMessage::event`]).
    CareEvent(Box<CareEvent>),
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

impl Header {
    /// A header of `format` and `msg_type` with nothing else known yet.
    pub fn new(format: Format, msg_type: impl Into<String>) -> Header {
        Header {
            format,
            msg_type: msg_type.into(),
            msg_type_text: None,
            msg_id: None,
            gen_date: None,
            sender: None,
            receiver: None,
            copy_receivers: Vec::new(),
            patient: None,
            conversation: None,
            ack: None,
            processing_status: None,
            fellesformat: false,
        }
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

impl Message {
    /// The stay event the message reports, whichever format it came in.
    pub fn care_event(&self) -> Option<&CareEvent> {
        match &self.body {
            Body::CareEvent(e) => Some(e),
            Body::Plo(p) => p.event.as_ref(),
            _ => None,
        }
    }

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
