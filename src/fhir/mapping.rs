//! What the FHIR decoder and encoder share: identifier and code systems (FACTS §4), kadgate's event
//! codes and extension URLs, the code tables between the model's KITH-derived codes and FHIR's
//! (priority, document status, address and telecom kinds, receipt status, consent status, kind
//! of stay, time units, decimals), FHIR date formats and the deterministic ids.
//!
//! Pure tables and functions: no I/O, no JSON walking. Every table is documented in
//! `docs/mapping/fhir.md`; change both together.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Weekday};

use crate::model::{CareEventKind, Code, ReceiptStatus, ServiceType, Sex};

/// `Identifier.system` / `Coding.system` prefix for OIDs.
pub const URN_OID: &str = "urn:oid:";

/// Norwegian identifier systems (FACTS §4).
pub mod sys {
    pub const FNR: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
    pub const DNR: &str = "urn:oid:2.16.578.1.12.4.1.4.2";
    pub const FHN: &str = "urn:oid:2.16.578.1.12.4.1.4.3";
    pub const HPR: &str = "urn:oid:2.16.578.1.12.4.1.4.4";
    pub const DUF: &str = "urn:oid:2.16.578.1.12.4.1.4.5";
    pub const ENH: &str = "urn:oid:2.16.578.1.12.4.1.4.101";
    pub const RSH: &str = "urn:oid:2.16.578.1.12.4.1.4.102";
    /// ENH / RESH as written before no-basis 2.0.13; accepted on input.
    pub const ENH_OLD: &str = "urn:oid:2.16.578.1.12.4.1.2.101";
    pub const RSH_OLD: &str = "urn:oid:2.16.578.1.12.4.1.2.102";
    pub const HER: &str = "urn:oid:2.16.578.1.12.4.1.2";
    /// H-nummer has no OID: no-basis fixes `system` to the literal `HNR`.
    pub const HNR: &str = "HNR";
    /// 8327, the identifier-type list the HNR slice uses in `Identifier.type`.
    pub const ID_TYPE_8327: &str = "urn:oid:2.16.578.1.12.4.1.1.8327";
    /// Kommunenummer: Volven 3402 and the two Geonorge URIs (FACTS §4); the OID is written.
    pub const MUNICIPALITY: &str = "urn:oid:2.16.578.1.12.4.1.1.3402";
    pub const MUNICIPALITY_ALT: &[&str] = &[
        "https://register.geonorge.no/sosi-kodelister/kommunenummer",
        "https://register.geonorge.no/subregister/sosi-kodelister/kartverket/kommunenummer-alle",
        "http://hl7.no/fhir/NamingSystem/kommunenummer",
    ];
    pub const ICPC2: &str = "http://hl7.org/fhir/sid/icpc-2";
    pub const ICPC2_HL7_OID: &str = "2.16.840.1.113883.6.139";
    pub const LOINC: &str = "http://loinc.org";
    pub const DOC_TYPE_9602: &str = "urn:oid:2.16.578.1.12.4.1.1.9602";
    pub const APPREC_ERROR_8221: &str = "urn:oid:2.16.578.1.12.4.1.1.8221";
    pub const ISSUE_TYPE: &str = "http://hl7.org/fhir/issue-type";
    pub const CONDITION_VERIFICATION: &str =
        "http://terminology.hl7.org/CodeSystem/condition-ver-status";
    pub const OBSERVATION_CATEGORY: &str =
        "http://terminology.hl7.org/CodeSystem/observation-category";
    pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
    pub const CONSENT_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
    pub const DIAGNOSIS_ROLE: &str = "http://terminology.hl7.org/CodeSystem/diagnosis-role";
    pub const RFC3986: &str = "urn:ietf:rfc:3986";
    /// HL7's discharge-disposition codes (`Encounter.hospitalization.dischargeDisposition`).
    pub const DISCHARGE_DISPOSITION: &str =
        "http://terminology.hl7.org/CodeSystem/discharge-disposition";
    /// kadgate's own systems (as in `REFERRAL-PROFILE.md`, until national ones exist).
    pub const MESSAGE_ID: &str = "http://example.org/kadgate/NamingSystem/message-id";
}

/// The Volven OIDs the model uses (bare, as KITH writes them).
pub mod oid {
    pub const ICPC2: &str = "2.16.578.1.12.4.1.1.7170";
    pub const ICD10: &str = "2.16.578.1.12.4.1.1.7110";
    pub const HASTEGRAD_8304: &str = "2.16.578.1.12.4.1.1.8304";
    pub const HASTEGRAD_8306: &str = "2.16.578.1.12.4.1.1.8306";
    pub const SERVICE_TYPE_7309: &str = "2.16.578.1.12.4.1.1.7309";
    pub const REPORT_STATUS_7306: &str = "2.16.578.1.12.4.1.1.7306";
    pub const ID_TYPE_8116: &str = "2.16.578.1.12.4.1.1.8116";
    pub const ORG_ID_TYPE_9051: &str = "2.16.578.1.12.4.1.1.9051";
    pub const ROLE_9034: &str = "2.16.578.1.12.4.1.1.9034";
    pub const APPREC_ERROR: &str = "2.16.578.1.12.4.1.1.8221";
    pub const CONSENT_STATUS_3107: &str = "2.16.578.1.12.4.1.1.3107";
}

/// Event codes (`MessageHeader.eventCoding`), kadgate's code system as in the shared examples.
pub mod event {
    pub const SYSTEM: &str = "http://example.org/kadgate/CodeSystem/message-event";
    /// A referral to a KAD unit (8279 `HENVISNING`).
    pub const REFERRAL: &str = "kad-henvisning";
    /// An epicrisis, as a document inside a message (8279 `EPIKRISE`).
    pub const EPICRISIS: &str = "epikrise";
    /// A dialogue message whose 8279 type is not known.
    pub const DIALOG: &str = "dialogmelding";
    /// A KAD unit reports what happened to a stay (admitted, discharged, died): the focus is the
    /// stay's Encounter. No 8279 type of its own (PLO says the same with `LOG_*` types).
    pub const STAY: &str = "kad-opphold";
    /// `eventCoding.display` of [`STAY`].
    pub const STAY_DISPLAY: &str = "Hendelse i KAD-opphold";
}

/// Extension URLs. `NB_*` are HL7 Norway's (FACTS §5); `KG_*` are kadgate's own, for model facts
/// that base R4 has no element for (documented in `docs/mapping/fhir.md`).
pub mod ext {
    pub const NB_MUNICIPALITY: &str =
        "http://hl7.no/fhir/StructureDefinition/no-basis-municipalitycode";
    pub const NB_MIDDLENAME: &str = "http://hl7.no/fhir/StructureDefinition/no-basis-middlename";
    pub const NB_ADDRESS_OFFICIAL: &str =
        "http://hl7.no/fhir/StructureDefinition/no-basis-address-official";
    pub const DATA_ABSENT_REASON: &str =
        "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
    /// `ServiceRequest._priority`: the exact hastegrad (8304/8306) behind `priority`.
    pub const KG_HASTEGRAD: &str = "http://example.org/kadgate/StructureDefinition/hastegrad";
    /// ServiceRequest / Composition / Encounter: lifecycle 7309 (N new, M change, C cancellation,
    /// A addition).
    pub const KG_SERVICE_TYPE: &str = "http://example.org/kadgate/StructureDefinition/service-type";
    /// `Composition._status`: the exact epicrisis status (7306) when `status` does not imply it.
    pub const KG_REPORT_STATUS: &str =
        "http://example.org/kadgate/StructureDefinition/report-status";
    /// Encounter (a stay event): the patient is followed up by municipal home nursing after the
    /// stay (true) or is not (false); absent when the unit does not say.
    pub const KG_HOME_NURSING: &str = "http://example.org/kadgate/StructureDefinition/home-nursing";
    /// Annotation / Communication.payload: the heading of a titled text.
    pub const KG_HEADING: &str = "http://example.org/kadgate/StructureDefinition/text-heading";
    /// MessageHeader: conversation threading (sub-extensions `refToParent`, `refToConversation`).
    pub const KG_CONVERSATION: &str =
        "http://example.org/kadgate/StructureDefinition/conversation-ref";
    /// MessageHeader.destination: the 8112 role of a copy receiver.
    pub const KG_RECEIVER_ROLE: &str =
        "http://example.org/kadgate/StructureDefinition/receiver-role";
    /// Communication: the professional responsible for the note (Reference).
    pub const KG_RESPONSIBLE: &str = "http://example.org/kadgate/StructureDefinition/responsible";
    /// MedicationStatement: the sender's medication status code as written.
    pub const KG_MEDICATION_STATUS: &str =
        "http://example.org/kadgate/StructureDefinition/medication-status";
    /// OperationOutcome.issue: the original issue date of the acknowledged message.
    pub const KG_ORIGINAL_ISSUE_DATE: &str =
        "http://example.org/kadgate/StructureDefinition/original-issue-date";
    /// Annotation, Composition.section, Communication.payload: the part a text plays
    /// (`TextRole` in kebab case, e.g. `clinical-info`).
    pub const KG_TEXT_ROLE: &str = "http://example.org/kadgate/StructureDefinition/text-role";
    /// Annotation, Composition.section, Communication.payload: the period a text is about.
    pub const KG_TEXT_PERIOD: &str = "http://example.org/kadgate/StructureDefinition/text-period";
    /// Annotation, Composition.section, Communication.payload: a coded statement with the text
    /// (repeated).
    pub const KG_TEXT_CODE: &str = "http://example.org/kadgate/StructureDefinition/text-code";
    /// A free-text remark on a resource or element that has no note of its own (RelatedPerson,
    /// Consent).
    pub const KG_NOTE: &str = "http://example.org/kadgate/StructureDefinition/note";
    /// RelatedPerson: occupation or role of a private contact person.
    pub const KG_OCCUPATION: &str = "http://example.org/kadgate/StructureDefinition/occupation";
    /// RelatedPerson: workplace of a private contact person.
    pub const KG_WORKPLACE: &str = "http://example.org/kadgate/StructureDefinition/workplace";
    /// On a `RelatedPerson.relationship` CodeableConcept: this entry is the care function
    /// (guardian, …), not the kinship.
    pub const KG_CARE_FUNCTION: &str =
        "http://example.org/kadgate/StructureDefinition/care-function";
    /// RelatedPerson: explicitly *not* the closest relative (true is the v2-0131 `N` relationship).
    pub const KG_NEXT_OF_KIN: &str = "http://example.org/kadgate/StructureDefinition/next-of-kin";
    /// Patient.communication: an assisted-communication need (sub-extensions `person`
    /// (Reference to a contained RelatedPerson), `hearingImpaired`, `sightImpaired`, `note`).
    pub const KG_COMMUNICATION_NEED: &str =
        "http://example.org/kadgate/StructureDefinition/communication-need";
    /// HL7's core extension for a patient's nationality (sub-extension `code`).
    pub const PATIENT_NATIONALITY: &str =
        "http://hl7.org/fhir/StructureDefinition/patient-nationality";
    /// ServiceRequest: who pays (KITH 8237).
    pub const KG_PAYMENT_CATEGORY: &str =
        "http://example.org/kadgate/StructureDefinition/payment-category";
    /// ServiceRequest: the patient's basis for health services (KITH 8246).
    pub const KG_BASIS_FOR_HEALTH_SERVICES: &str =
        "http://example.org/kadgate/StructureDefinition/basis-for-health-services";
    /// ServiceRequest: the purpose of the requested service.
    pub const KG_SERVICE_PURPOSE: &str =
        "http://example.org/kadgate/StructureDefinition/service-purpose";
    /// ServiceRequest: when the receiver got the referral.
    pub const KG_RECEIVED_DATE: &str =
        "http://example.org/kadgate/StructureDefinition/received-date";
    /// ServiceRequest: the receiving unit's assessment (sub-extensions `date` (`kind`, `date`),
    /// `freeChoice`, `waitingEnd`, `pathwayId`, `entitled`, `outcome`).
    pub const KG_REFERRAL_ASSESSMENT: &str =
        "http://example.org/kadgate/StructureDefinition/referral-assessment";
    /// `Consent._status`: the exact KITH consent status (3107) behind `status`.
    pub const KG_CONSENT_STATUS: &str =
        "http://example.org/kadgate/StructureDefinition/consent-status";
    /// Condition: a qualifier of the code (sub-extensions `name`, `value` repeated), e.g. an
    /// ICD-10 star code.
    pub const KG_CODE_MODIFIER: &str =
        "http://example.org/kadgate/StructureDefinition/code-modifier";
    /// MedicationStatement: quantity supplied.
    pub const KG_QUANTITY_SUPPLIED: &str =
        "http://example.org/kadgate/StructureDefinition/quantity-supplied";
    /// MedicationStatement: intended duration whose unit is no UCUM time unit (else
    /// `Dosage.timing.repeat.boundsDuration`).
    pub const KG_INTENDED_DURATION: &str =
        "http://example.org/kadgate/StructureDefinition/intended-duration";
    /// Communication: the date of the note.
    pub const KG_NOTE_DATE: &str = "http://example.org/kadgate/StructureDefinition/note-date";
    /// Communication: the responsible person's role in the note.
    pub const KG_RESPONSIBLE_ROLE: &str =
        "http://example.org/kadgate/StructureDefinition/responsible-role";
    /// CommunicationRequest: a kind of record information asked for (repeated).
    pub const KG_RECORD_TYPE: &str = "http://example.org/kadgate/StructureDefinition/record-type";
    /// `DocumentReference.content.attachment`: the part number of a piece of content split
    /// because it exceeds 1 MB of base64 (the pieces are joined in order).
    pub const KG_DATA_PART: &str = "http://example.org/kadgate/StructureDefinition/data-part";
    /// CommunicationRequest: coded information that accompanies the request.
    pub const KG_CODED_INFO: &str = "http://example.org/kadgate/StructureDefinition/coded-info";
}

/// kadgate's code system for the part a care provider plays (`CareTeam.participant.role`).
pub const CARE_PROVIDER_ROLE: &str = "http://example.org/kadgate/CodeSystem/care-provider-role";

/// `Identifier.system` of a referral's own document id (Henvisning 2.0 `DocumentId`).
pub const DOCUMENT_ID: &str = "http://example.org/kadgate/NamingSystem/document-id";

/// v2-0131 contact role: `N` next of kin.
pub const CONTACT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/v2-0131";

/// UCUM, for `Duration` codes.
pub const UCUM: &str = "http://unitsofmeasure.org";

/// Consent status (KITH 3107) → `Consent.status`: 2, 6 (consent given) → active; 3, 7 (refused) →
/// rejected; anything else (not informed, awaited, unable, unknown) → proposed. The exact code
/// travels in the `consent-status` extension.
pub fn consent_state(kith: Option<&str>) -> &'static str {
    match kith.map(str::trim) {
        Some("2" | "6") => "active",
        Some("3" | "7") => "rejected",
        _ => "proposed",
    }
}

/// Kind of stay (KITH 8240) → `Encounter.class` (v3 ActCode): 1 inpatient → IMP, 2 day treatment →
/// SS (short stay), 3 outpatient and 5 consultation → AMB, 4 telemedicine and 6 telephone → VR;
/// unknown or absent → IMP (an epicrisis is about a stay). The exact code is `Encounter.type`.
pub fn encounter_class(kind: Option<&str>) -> (&'static str, &'static str) {
    match kind.map(str::trim) {
        Some("2") => ("SS", "short stay"),
        Some("3" | "5") => ("AMB", "ambulatory"),
        Some("4" | "6") => ("VR", "virtual"),
        _ => ("IMP", "inpatient encounter"),
    }
}

/// A time unit as senders write it (Norwegian or UCUM) → its UCUM code, for `Duration`.
pub fn ucum_time_unit(unit: &str) -> Option<&'static str> {
    Some(match unit.trim().to_lowercase().as_str() {
        "s" | "sek" | "sekund" | "sekunder" => "s",
        "min" | "minutt" | "minutter" => "min",
        "h" | "t" | "time" | "timer" => "h",
        "d" | "dag" | "dager" | "døgn" => "d",
        "wk" | "uke" | "uker" => "wk",
        "mo" | "mnd" | "måned" | "måneder" => "mo",
        "a" | "år" => "a",
        _ => return None,
    })
}

/// A model quantity value (text, as written) → a FHIR `decimal` JSON number. `None` when it is no
/// decimal number. Integers stay integers; a fraction is written in its shortest form, so
/// trailing zeros (`1.50`) are not kept.
pub fn decimal(v: &str) -> Option<serde_json::Value> {
    let t = v.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let well_formed = !digits.is_empty()
        && digits.split('.').count() <= 2
        && digits
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !well_formed {
        return None;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(serde_json::Value::from(i));
    }
    let f: f64 = t.parse().ok()?;
    serde_json::Number::from_f64(f).map(serde_json::Value::Number)
}

/// The event code for a model `msg_type`. The model holds the 8279 type for KITH input and the event
/// code for FHIR input; this maps the first onto the second and leaves event codes as they are:
/// `HENVISNING` → `kad-henvisning`, `EPIKRISE` → `epikrise`, any other 8279 code → lower case with
/// `-` for `_` (`DIALOG_HELSEFAGLIG` → `dialog-helsefaglig`). Empty → `None`.
pub fn event_of_msg_type(msg_type: &str) -> Option<String> {
    let t = msg_type.trim();
    if t.is_empty() {
        return None;
    }
    Some(match t {
        "HENVISNING" => event::REFERRAL.to_string(),
        "EPIKRISE" => event::EPICRISIS.to_string(),
        _ => t.to_ascii_lowercase().replace('_', "-"),
    })
}

/// The inverse of [`event_of_msg_type`]: the 8279 type an event code stands for (`None` for
/// [`event::DIALOG`], which names no 8279 type).
pub fn msg_type_of_event(event_code: &str) -> Option<String> {
    let e = event_code.trim();
    match e {
        "" | event::DIALOG | event::STAY => None,
        event::REFERRAL => Some("HENVISNING".into()),
        event::EPICRISIS => Some("EPIKRISE".into()),
        _ => Some(e.to_ascii_uppercase().replace('-', "_")),
    }
}

// ---------------------------------------------------------------- priority (hastegrad)

/// Hastegrad (8304 / 8306) → `ServiceRequest.priority`, by lead time: 0 → `stat`; within 24 hours
/// (1H, 2H, 4H, 8H, 1) → `asap`; 2, 3 (Haster), 7 → `urgent`; everything else (N, PK, 14 … 360,
/// unknown codes) → `routine`.
pub fn fhir_priority(hastegrad: &str) -> &'static str {
    match hastegrad.trim().to_ascii_uppercase().as_str() {
        "0" => "stat",
        "1H" | "2H" | "4H" | "8H" | "1" => "asap",
        "2" | "3" | "7" => "urgent",
        _ => "routine",
    }
}

/// `ServiceRequest.priority` → hastegrad, when no kadgate hastegrad extension says more:
/// `stat` → 8306 `0`, `asap` → 8304 `1`, `urgent` → 8306 `3`, `routine` → 8306 `N`.
pub fn hastegrad_of(priority: &str) -> Option<Code> {
    let (code, system, display) = match priority {
        "stat" => ("0", oid::HASTEGRAD_8306, "Øyeblikkelig hjelp"),
        "asap" => ("1", oid::HASTEGRAD_8304, "Innen tjuefire timer"),
        "urgent" => ("3", oid::HASTEGRAD_8306, "Haster (elektiv)"),
        "routine" => ("N", oid::HASTEGRAD_8306, "Elektiv/Ordinær (elektiv)"),
        _ => return None,
    };
    Some(Code::new(code, Some(system), Some(display)))
}

// ---------------------------------------------------------------- document status

/// An epicrisis' service type (7309) and status (7306) → `Composition.status`: a cancellation →
/// `entered-in-error`; a change or an addition to a released epicrisis → `amended`; else by the
/// status: P → `preliminary`, A (addition to the report) → `amended`, F, absent or other → `final`.
pub fn composition_status(service_type: Option<ServiceType>, status: Option<&str>) -> &'static str {
    match (service_type, status.map(str::trim)) {
        (Some(ServiceType::Cancellation), _) => "entered-in-error",
        (Some(ServiceType::Change | ServiceType::Addition), _) => "amended",
        (_, Some("P")) => "preliminary",
        (_, Some("A")) => "amended",
        _ => "final",
    }
}

/// `Composition.status` → the 7306 status it implies: `final` → F, `preliminary` → P, `amended`
/// (and R5's `corrected`, accepted on input) → F (a corrected report is final); `entered-in-error`
/// implies none. The encoder writes the `report-status` extension whenever the model's status is
/// not the implied one.
pub fn epicrisis_status(status: &str) -> Option<&'static str> {
    Some(match status {
        "final" | "amended" | "corrected" => "F",
        "preliminary" => "P",
        _ => return None,
    })
}

/// `Composition.status` → the service type it implies when no `service-type` extension says:
/// `amended` / `corrected` → Change (unless the report status is A, an addition to the report),
/// `entered-in-error` → Cancellation, anything else → none.
pub fn epicrisis_service_type(status: &str, report_status: Option<&str>) -> Option<ServiceType> {
    match status {
        "amended" | "corrected" if report_status != Some("A") => Some(ServiceType::Change),
        "entered-in-error" => Some(ServiceType::Cancellation),
        _ => None,
    }
}

// ---------------------------------------------------------------- stay events (Encounter)

/// A stay event → `Encounter.status`: a cancellation → `entered-in-error`; admitted →
/// `in-progress`; discharged and deceased → `finished`. `None` for ready-for-discharge, which an
/// Encounter status cannot say (the patient is still in the unit).
pub fn encounter_status(
    kind: CareEventKind,
    service_type: Option<ServiceType>,
) -> Option<&'static str> {
    if kind == CareEventKind::ReadyForDischarge {
        return None;
    }
    if service_type == Some(ServiceType::Cancellation) {
        return Some("entered-in-error");
    }
    Some(match kind {
        CareEventKind::Admitted => "in-progress",
        _ => "finished",
    })
}

/// `dischargeDisposition` code (HL7 discharge-disposition) of a patient who died.
pub const DISPOSITION_DECEASED: (&str, &str) = ("exp", "Expired");

/// `Encounter.status` → the stay event's kind: `in-progress` → admitted; `finished` → discharged,
/// or deceased when the discharge disposition is [`DISPOSITION_DECEASED`]; `entered-in-error` →
/// the kind of the cancelled report: discharged (deceased) when the period has an end, else
/// admitted. Any other status reports no stay event (`None`).
pub fn care_event_kind(status: &str, has_end: bool, deceased: bool) -> Option<CareEventKind> {
    let ended = match status {
        "in-progress" => false,
        "finished" => true,
        "entered-in-error" => has_end,
        _ => return None,
    };
    Some(match (ended, deceased) {
        (false, _) => CareEventKind::Admitted,
        (true, true) => CareEventKind::Deceased,
        (true, false) => CareEventKind::Discharged,
    })
}

// ---------------------------------------------------------------- sex

pub fn gender(sex: Sex) -> &'static str {
    match sex {
        Sex::Male => "male",
        Sex::Female => "female",
        Sex::Other => "other",
        Sex::Unknown => "unknown",
    }
}

pub fn sex_of_gender(g: &str) -> Option<Sex> {
    Some(match g {
        "male" => Sex::Male,
        "female" => Sex::Female,
        "other" => Sex::Other,
        "unknown" => Sex::Unknown,
        _ => return None,
    })
}

// ---------------------------------------------------------------- identifiers

/// `Identifier.system` for a person identifier kind (8116), `None` for kinds without one.
pub fn person_id_system(kind: &str) -> Option<&'static str> {
    Some(match kind.trim().to_ascii_uppercase().as_str() {
        "FNR" => sys::FNR,
        "DNR" => sys::DNR,
        "FHN" => sys::FHN,
        "HNR" => sys::HNR,
        "DUF" => sys::DUF,
        "HPR" => sys::HPR,
        "HER" => sys::HER,
        _ => return None,
    })
}

/// `Identifier.system` for an organisation identifier kind (9051).
pub fn org_id_system(kind: &str) -> Option<&'static str> {
    Some(match kind.trim().to_ascii_uppercase().as_str() {
        "HER" => sys::HER,
        "ENH" => sys::ENH,
        "RSH" => sys::RSH,
        _ => return None,
    })
}

/// The identifier kind a system stands for (inputs: both the current and the pre-2.0.13 OIDs and
/// the no-basis NamingSystem URIs).
pub fn kind_of_id_system(system: &str) -> Option<&'static str> {
    Some(match system.trim() {
        sys::FNR | "http://hl7.no/fhir/NamingSystem/FNR" => "FNR",
        sys::DNR | "http://hl7.no/fhir/NamingSystem/DNR" => "DNR",
        sys::FHN | "http://hl7.no/fhir/NamingSystem/FHNR" => "FHN",
        sys::HNR => "HNR",
        sys::DUF | "http://hl7.no/fhir/NamingSystem/DUFN" => "DUF",
        sys::HPR | "http://hl7.no/fhir/NamingSystem/HPR" => "HPR",
        sys::HER => "HER",
        sys::ENH | sys::ENH_OLD => "ENH",
        sys::RSH | sys::RSH_OLD => "RSH",
        _ => return None,
    })
}

// ---------------------------------------------------------------- code systems

/// Model code system → `Coding.system`: a bare OID gets `urn:oid:`, ICPC-2 (7170) is written as
/// the HL7 URI no-basis prefers, URIs stay. A "system" with white space is no URI and is dropped.
pub fn coding_system(model: &str) -> Option<String> {
    let s = model.trim();
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return None;
    }
    if s == oid::ICPC2 {
        return Some(sys::ICPC2.to_string());
    }
    if is_oid(s) {
        return Some(format!("{URN_OID}{s}"));
    }
    Some(s.to_string())
}

/// `Coding.system` → model code system: `urn:oid:X` → `X`; ICPC-2 by URI or HL7 OID → 7170.
pub fn model_system(fhir: &str) -> String {
    let s = fhir.trim();
    let bare = s.strip_prefix(URN_OID).unwrap_or(s);
    if s == sys::ICPC2 || bare == ICPC2_HL7 {
        return oid::ICPC2.to_string();
    }
    bare.to_string()
}
const ICPC2_HL7: &str = sys::ICPC2_HL7_OID;

fn is_oid(s: &str) -> bool {
    s.contains('.')
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

// ---------------------------------------------------------------- addresses and telecom

/// Address kind (3401) → (`use`, `type`, official). Kinds not in the table have no FHIR form.
pub fn address_use(kind: &str) -> Option<(Option<&'static str>, Option<&'static str>, bool)> {
    Some(match kind.trim() {
        "H" => (Some("home"), None, false),
        "HP" => (Some("home"), None, true),
        "WP" => (Some("work"), None, false),
        "TMP" => (Some("temp"), None, false),
        "HV" => (Some("temp"), Some("physical"), false),
        "INV" => (Some("billing"), None, false),
        "BAD" => (Some("old"), None, false),
        "PST" => (None, Some("postal"), false),
        "RES" => (None, Some("physical"), false),
        _ => return None,
    })
}

/// The inverse of [`address_use`].
pub fn address_kind(
    use_: Option<&str>,
    type_: Option<&str>,
    official: bool,
) -> Option<&'static str> {
    Some(match (use_, type_) {
        (Some("home"), _) if official => "HP",
        (Some("home"), _) => "H",
        (Some("work"), _) => "WP",
        (Some("temp"), Some("physical")) => "HV",
        (Some("temp"), _) => "TMP",
        (Some("billing"), _) => "INV",
        (Some("old"), _) => "BAD",
        (None, Some("postal")) => "PST",
        (None, Some("physical")) => "RES",
        _ => return None,
    })
}

/// Telecom kind (KITH `TypeTelecom`) ↔ `ContactPoint.use`.
pub const TELECOM_USE: &[(&str, &str)] = &[
    ("HP", "home"),
    ("WP", "work"),
    ("MC", "mobile"),
    ("TMP", "temp"),
    ("BAD", "old"),
];

/// Telecom value prefix (as KITH writes it) ↔ `ContactPoint.system`. A value without one of these
/// prefixes is written with system `other` and kept whole.
pub const TELECOM_SCHEME: &[(&str, &str)] = &[
    ("tel:", "phone"),
    ("fax:", "fax"),
    ("mailto:", "email"),
    ("mob:", "sms"),
];

// ---------------------------------------------------------------- receipts

/// `MessageHeader.response.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCode {
    Ok,
    TransientError,
    FatalError,
}

impl ResponseCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseCode::Ok => "ok",
            ResponseCode::TransientError => "transient-error",
            ResponseCode::FatalError => "fatal-error",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => ResponseCode::Ok,
            "transient-error" => ResponseCode::TransientError,
            "fatal-error" => ResponseCode::FatalError,
            _ => return None,
        })
    }
    /// AppRec status → response code (FACTS §7): 1 → ok, 2 → fatal-error, 3 → ok (the issues say
    /// what was wrong).
    pub fn of_status(s: ReceiptStatus) -> Self {
        match s {
            ReceiptStatus::Ok | ReceiptStatus::Partial => ResponseCode::Ok,
            ReceiptStatus::Rejected => ResponseCode::FatalError,
        }
    }
}

/// AppRec error (8221) → `OperationOutcome.issue.code` (issue-type).
pub fn issue_type_of_apprec_error(code: &str) -> &'static str {
    match code.trim() {
        "T01" => "structure",
        "T02" => "invalid",
        "T10" => "not-supported",
        "T99" => "invalid",
        "S01" | "S02" | "S03" | "S99" => "security",
        "E10" => "value",
        "E20" | "E21" => "not-found",
        "E30" | "E32" | "E33" | "E34" => "required",
        "E31" | "E53" => "value",
        "E35" | "E54" => "not-found",
        "E36" => "incomplete",
        _ => "processing",
    }
}

// ---------------------------------------------------------------- dates

/// A FHIR `date` (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`) from a model date; a time part is cut off.
/// `None` when it is no date.
pub fn fhir_date(s: &str) -> Option<String> {
    let s = s.trim();
    let d = s.split('T').next().unwrap_or(s);
    let parts: Vec<&str> = d.split('-').collect();
    let num = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    let ok = match parts.as_slice() {
        [y] => num(y, 4),
        [y, m] => num(y, 4) && num(m, 2) && (1..=12).contains(&m.parse::<u32>().ok()?),
        [y, m, dd] => {
            num(y, 4)
                && num(m, 2)
                && num(dd, 2)
                && NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, dd.parse().ok()?)
                    .is_some()
        }
        _ => false,
    };
    (ok && !d.starts_with('0')).then(|| d.to_string())
}

/// A FHIR `dateTime` from a model date-time: a date alone stays a date; a time without a UTC
/// offset is read as Norwegian local time (Europe/Oslo, EU summer-time rule) and gets that offset;
/// `HH:MM` gets `:00`. `None` when it cannot be read.
pub fn fhir_datetime(s: &str) -> Option<String> {
    let s = s.trim();
    if !s.contains('T') {
        return fhir_date(s);
    }
    instant(s)
}

/// A FHIR `instant` (seconds and offset required); a date alone becomes midnight local time.
pub fn fhir_instant(s: &str) -> Option<String> {
    let s = s.trim();
    if !s.contains('T') {
        let d = fhir_date(s)?;
        if d.len() != 10 {
            return None;
        }
        return instant(&format!("{d}T00:00:00"));
    }
    instant(s)
}

fn instant(s: &str) -> Option<String> {
    let (date, rest) = s.split_once('T')?;
    let date = fhir_date(date).filter(|d| d.len() == 10)?;
    // Split the offset off the time.
    let (time, offset) = if let Some(t) = rest.strip_suffix('Z') {
        (t, Some("Z".to_string()))
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let off = &rest[i..];
        let ok = off.len() == 6
            && off.as_bytes()[3] == b':'
            && off[1..3].bytes().all(|b| b.is_ascii_digit())
            && off[4..].bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return None;
        }
        (&rest[..i], Some(off.to_string()))
    } else {
        (rest, None)
    };
    let (hms, frac) = match time.split_once('.') {
        Some((a, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (a, Some(f)),
        Some(_) => return None,
        None => (time, None),
    };
    let t: Vec<&str> = hms.split(':').collect();
    let two = |p: &str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
    let (h, m, sec) = match t.as_slice() {
        [h, m] if two(h) && two(m) => (*h, *m, "00"),
        [h, m, s] if two(h) && two(m) && two(s) => (*h, *m, *s),
        _ => return None,
    };
    let (hn, mn, sn): (u32, u32, u32) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    if hn > 23 || mn > 59 || sn > 60 {
        return None;
    }
    let offset = match offset {
        Some(o) => o,
        None => {
            let local =
                NaiveDateTime::parse_from_str(&format!("{date}T{h}:{m}:00"), "%Y-%m-%dT%H:%M:%S")
                    .ok()?;
            oslo_offset(local).to_string()
        }
    };
    let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
    Some(format!("{date}T{h}:{m}:{sec}{frac}{offset}"))
}

/// UTC offset of Norwegian local time: summer time from the last Sunday of March 02:00 to the last
/// Sunday of October 03:00 (the EU rule, in force since 1996).
fn oslo_offset(local: NaiveDateTime) -> &'static str {
    let y = local.date().year();
    let last_sunday = |month: u32| -> Option<NaiveDate> {
        let first_next = if month == 12 {
            NaiveDate::from_ymd_opt(y + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(y, month + 1, 1)?
        };
        let mut d = first_next.pred_opt()?;
        while d.weekday() != Weekday::Sun {
            d = d.pred_opt()?;
        }
        Some(d)
    };
    let (Some(start), Some(end)) = (last_sunday(3), last_sunday(10)) else {
        return "+01:00";
    };
    let (Some(start), Some(end)) = (start.and_hms_opt(2, 0, 0), end.and_hms_opt(3, 0, 0)) else {
        return "+01:00";
    };
    if local >= start && local < end {
        "+02:00"
    } else {
        "+01:00"
    }
}

// ---------------------------------------------------------------- ids

/// Whether `s` is a FHIR `id` (`[A-Za-z0-9\-\.]{1,64}`).
pub fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// kadgate's UUID v5 namespace for ids derived from message content.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b61_6467_6174_5f66_6869_725f_6964_7300);

/// A deterministic UUID (v5) from the given parts: the same message gives the same ids, so a
/// conversion can be repeated and compared byte for byte.
pub fn derive_uuid(parts: &[&str]) -> String {
    let mut name = Vec::new();
    for p in parts {
        name.extend_from_slice(p.as_bytes());
        name.push(0);
    }
    uuid::Uuid::new_v5(&ID_NAMESPACE, &name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_codes_invert() {
        for t in [
            "HENVISNING",
            "EPIKRISE",
            "DIALOG_HELSEFAGLIG",
            "HENVISNING_NYTILSTAND",
        ] {
            let e = event_of_msg_type(t).unwrap();
            assert_eq!(msg_type_of_event(&e).as_deref(), Some(t));
            assert_eq!(
                event_of_msg_type(&e).as_deref(),
                Some(e.as_str()),
                "idempotent"
            );
        }
        assert_eq!(event_of_msg_type("HENVISNING").unwrap(), event::REFERRAL);
        assert_eq!(event_of_msg_type(" "), None);
    }

    #[test]
    fn epicrisis_lifecycle_tables_agree() {
        use ServiceType::*;
        for st in [
            None,
            Some(New),
            Some(Change),
            Some(Cancellation),
            Some(Addition),
        ] {
            for status in [None, Some("F"), Some("P"), Some("A")] {
                let c = composition_status(st, status);
                let implied = epicrisis_status(c);
                // Back without extensions: the lifecycle's direction is kept (changed, cancelled).
                let back = epicrisis_service_type(c, implied);
                match st {
                    Some(Cancellation) => assert_eq!(back, Some(Cancellation)),
                    Some(Change | Addition) => assert_eq!(back, Some(Change)),
                    _ => assert!(back != Some(Cancellation), "{st:?} {status:?}"),
                }
            }
        }
        assert_eq!(epicrisis_service_type("amended", Some("A")), None);
        assert_eq!(epicrisis_service_type("corrected", Some("F")), Some(Change));
        assert_eq!(epicrisis_status("entered-in-error"), None);
    }

    #[test]
    fn encounter_statuses_invert() {
        use CareEventKind::*;
        for kind in [Admitted, Discharged, Deceased] {
            for st in [
                None,
                Some(ServiceType::New),
                Some(ServiceType::Cancellation),
            ] {
                let s = encounter_status(kind, st).unwrap();
                let ended = kind != Admitted;
                assert_eq!(care_event_kind(s, ended, kind == Deceased), Some(kind));
            }
        }
        assert_eq!(encounter_status(ReadyForDischarge, None), None);
        assert_eq!(care_event_kind("planned", false, false), None);
    }

    #[test]
    fn priorities_round_trip_on_the_fhir_side() {
        for p in ["stat", "asap", "urgent", "routine"] {
            let h = hastegrad_of(p).unwrap();
            assert_eq!(fhir_priority(&h.code), p);
        }
        assert_eq!(fhir_priority("PK"), "routine");
        assert_eq!(fhir_priority("4H"), "asap");
        assert!(hastegrad_of("soon").is_none());
    }

    #[test]
    fn address_kinds_round_trip() {
        for k in ["H", "HP", "WP", "TMP", "HV", "INV", "BAD", "PST", "RES"] {
            let (u, t, o) = address_use(k).unwrap();
            assert_eq!(address_kind(u, t, o), Some(k));
        }
        assert!(address_use("XYZ").is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(fhir_date("1974-05-13").as_deref(), Some("1974-05-13"));
        assert_eq!(
            fhir_date("1974-05-13T00:00:00").as_deref(),
            Some("1974-05-13")
        );
        assert_eq!(fhir_date("1974-02-30"), None);
        assert_eq!(fhir_date("garbage"), None);
        assert_eq!(
            fhir_datetime("2008-03-10T10:19:00").as_deref(),
            Some("2008-03-10T10:19:00+01:00")
        );
        assert_eq!(
            fhir_datetime("2008-07-10T10:19").as_deref(),
            Some("2008-07-10T10:19:00+02:00")
        );
        assert_eq!(
            fhir_datetime("2026-03-02T10:15:00.5+01:00").as_deref(),
            Some("2026-03-02T10:15:00.5+01:00")
        );
        assert_eq!(
            fhir_datetime("2026-03-02T10:15:00Z").as_deref(),
            Some("2026-03-02T10:15:00Z")
        );
        assert_eq!(fhir_datetime("2026-03-02").as_deref(), Some("2026-03-02"));
        assert_eq!(
            fhir_instant("2026-03-02").as_deref(),
            Some("2026-03-02T00:00:00+01:00")
        );
        assert_eq!(fhir_datetime("2026-03-02T25:00:00"), None);
        assert_eq!(fhir_datetime("2026-03-02T10:00:00+1"), None);
        // The switch days: last Sunday of March 2026 is the 29th, of October the 25th.
        assert_eq!(
            fhir_instant("2026-03-29T01:59:00").unwrap(),
            "2026-03-29T01:59:00+01:00"
        );
        assert_eq!(
            fhir_instant("2026-03-29T03:00:00").unwrap(),
            "2026-03-29T03:00:00+02:00"
        );
        assert_eq!(
            fhir_instant("2026-10-25T03:00:00").unwrap(),
            "2026-10-25T03:00:00+01:00"
        );
    }

    #[test]
    fn systems() {
        assert_eq!(
            coding_system(oid::ICD10).unwrap(),
            "urn:oid:2.16.578.1.12.4.1.1.7110"
        );
        assert_eq!(coding_system(oid::ICPC2).unwrap(), sys::ICPC2);
        assert_eq!(model_system(sys::ICPC2), oid::ICPC2);
        assert_eq!(model_system("urn:oid:2.16.840.1.113883.6.139"), oid::ICPC2);
        assert_eq!(model_system("urn:oid:2.16.578.1.12.4.1.1.7110"), oid::ICD10);
        assert_eq!(coding_system("not a uri"), None);
        assert_eq!(kind_of_id_system(sys::ENH_OLD), Some("ENH"));
    }

    #[test]
    fn ids_are_deterministic() {
        assert_eq!(derive_uuid(&["a", "b"]), derive_uuid(&["a", "b"]));
        assert_ne!(derive_uuid(&["a", "b"]), derive_uuid(&["ab"]));
        assert!(is_fhir_id(&derive_uuid(&["x"])));
        assert!(!is_fhir_id("a b"));
    }
}
