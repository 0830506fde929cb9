//! KITH XML encoders: canonical model → Henvisning 1.1 (standalone), MsgHead 1.2 + Henvisning 2.0,
//! Epikrise 1.2 (standalone) and MsgHead 1.2 + Dialogmelding 1.1. Output is UTF-8 and valid
//! against the official XSDs, also from a sparse model (tested).
//!
//! Where a schema requires an element the model has no value for, the encoder writes one of the
//! documented defaults in [`DEFAULTS`] — never patient data. What cannot be defaulted (no patient,
//! no sender or receiver that can be addressed) is an [`EncodeError`].
//! The field-by-field mapping and every loss is in `docs/mapping/kith.md`.
//!
//! Must not: read the clock or generate ids except for the message's own `GenDate`/`MsgId` when the
//! model has none (listed in [`DEFAULTS`]); decide anything about the message's validity.

mod basis;
mod dialogmelding;
mod epikrise;
mod henvisning;
mod msghead;
mod writer;

use crate::model::{Format, Message, Organisation};

/// Why a model could not be written in the asked format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("format {0:?} cannot be encoded as KITH XML by kadgate")]
    UnsupportedFormat(Format),
    #[error("a {wanted} needs a {body} message body")]
    WrongBody {
        wanted: &'static str,
        body: &'static str,
    },
    #[error("the message has no patient; a {0} must name one")]
    NoPatient(&'static str),
    #[error("the message has no {0} that can be addressed (it needs at least one identifier)")]
    NoParty(&'static str),
}

/// Defaults written where the XSD requires an element the model has no value for:
/// (element path, what is written). Kept in step with `docs/mapping/kith.md`.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("any required CS/CV element (Priority, MsgDescr, TypeInnhold, InfItem/Type, Address/Type, Relation, DrugId, Medication/Status, TemaKodet, TypeForesp, Comment/CodedComment, Modifier/Value, ConsentStatus, UtfallAvVurdering, Epikrise ServReq/Diagnosis/Concept)",
     "the element without V, with DN=\"Ikke oppgitt\" (not given)"),
    ("MsgHead MsgInfo/GenDate, basismelding Message/GenDate", "the header's GenDate, else the document's issue date, else the time of encoding"),
    ("MsgHead MsgInfo/MsgId, basismelding Message/MsgId", "the header's MsgId, else a new UUID"),
    ("MsgInfo/Type, Message/Type", "the header's 8279 type when it belongs to the format, else HENVISNING / HENVISNING_NYTILSTAND / EPIKRISE / DIALOG_HELSEFAGLIG"),
    ("ServReq/ServType, ReqServ/ServType, ServRprt/ServType, Event/ServType", "the document's service type, else N (Ny)"),
    ("ServReq/IssueDate, Henvisning/IssueDate, ServRprt/IssueDate", "the document's issue date, else GenDate"),
    ("ServReq/Id, Henvisning/DocumentId", "the referral id (2.0: the DocumentId), else MsgId"),
    ("ServRprt/Status", "the epicrisis status, else F (Endelig rapport)"),
    ("ServRprt/MsgDescr", "the epicrisis title, else \"Epikrise\""),
    ("Event/ReportedEvent/StartDateTime", "the admission time, else the issue date"),
    ("Event/Service", "an empty Service (AdmCat only when known)"),
    ("MsgHead Organisation/OrganisationName", "the organisation's name, else an empty string"),
    ("MsgHead Document/RefDoc/MsgType", "XML (XML-instans) for the business document, A (Vedlegg) for attachments without a kind"),
    ("Epikrise ServReq/IssueDate", "the answered referral's issue date, else the element without V"),
    ("MIGversion", "the schema's fixed version text"),
];

/// Encode a message in one of the KITH formats kadgate writes: `Henvisning11`, `Henvisning20`
/// (MsgHead 1.2 around it), `Epikrise12`, `Dialogmelding11` (MsgHead 1.2 around it).
pub fn encode(msg: &Message, format: Format) -> Result<Vec<u8>, EncodeError> {
    let xml = match format {
        Format::Henvisning11 => henvisning::encode_11(msg)?,
        Format::Henvisning20 => henvisning::encode_20(msg)?,
        Format::Epikrise12 => epikrise::encode_12(msg)?,
        Format::Dialogmelding11 => dialogmelding::encode_11(msg)?,
        other => return Err(EncodeError::UnsupportedFormat(other)),
    };
    Ok(xml.into_bytes())
}

/// The body kind's name, for errors.
/// The 8279 message type to write. The model holds the 8279 type for KITH input and the event code
/// for FHIR input (`kad-henvisning`, `dialog-status-henvisning`, …): the latter is turned back into
/// the 8279 type it stands for, so a message that came through FHIR keeps its kind.
fn msg_type(msg: &Message) -> String {
    if msg.header.format == Format::FhirR4 {
        if let Some(t) = crate::fhir::mapping::msg_type_of_event(&msg.header.msg_type) {
            return t;
        }
    }
    msg.header.msg_type.trim().to_string()
}

fn body_name(msg: &Message) -> &'static str {
    use crate::model::Body;
    match &msg.body {
        Body::Referral(_) => "referral",
        Body::Epicrisis(_) => "epicrisis",
        Body::Dialog(_) => "dialogue",
        Body::Plo(_) => "PLO",
        Body::CareEvent(_) => "stay event",
        Body::Receipt(_) => "receipt",
        Body::Opaque => "unread",
    }
}

/// GenDate: the header's, else `fallback` (the document's date), else now.
fn gen_date(msg: &Message, fallback: Option<&str>) -> String {
    msg.header
        .gen_date
        .as_deref()
        .and_then(writer::xs_datetime)
        .or_else(|| fallback.and_then(writer::xs_datetime))
        .unwrap_or_else(|| chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// MsgId: the header's, else a new UUID.
fn msg_id(msg: &Message) -> String {
    msg.header
        .msg_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The party, which must be identifiable to be written.
fn party<'a>(
    o: Option<&'a Organisation>,
    what: &'static str,
) -> Result<&'a Organisation, EncodeError> {
    o.filter(|o| o.is_identifiable())
        .ok_or(EncodeError::NoParty(what))
}
