//! Decoding a detected KITH message into the canonical model.
//!
//! Decoders never reject and never panic: they read what is there and leave anything missing
//! `None`/empty. Judgement (is the sender identified, is the patient sufficiently identified …) is
//! done in [`crate::kith::semantics`]; the findings here are only decoding notes (codes `decode.*`,
//! severity Info/Warning) and never carry patient data.
//!
//! - [`msghead`]: MsgHead 1.2 header, Dialogmelding 1.0/1.1, Henvisning 2.0, PLO (the stay event
//!   of a Pasientlogistikk message: `PloMessage.event`)
//! - [`basis`]: Henvisning 1.0/1.1 and Epikrise 1.x basismeldinger
//! - [`apprec`]: AppRec 1.0/1.1
//! - [`common`]: shared building blocks
//!
//! Not read yet (what a KITH → model → KITH round trip loses today; the full list with paths is
//! `docs/mapping/kith.md`):
//! - only the first `Dept` and the first `HCPerson` of a basismelding `HCP` (a note says so);
//!   `HCP/MedSpeciality`, `ComMethod`, `Role` of a party;
//! - MsgHead `RequestedPriority`, `Document` metadata other than the attachments' `RefDoc`;
//! - Henvisning 2.0 `TilknyttetEnhet`, `SendtDokument`, `OpplysningerOmIndividuellPlan`,
//!   `PasientrelatertKontaktperson`, `Legemiddelgjennomgang`, most of `TilleggsopplysningPasient`;
//! - `PatRelInst`, `IdByRequester`/`IdByServProvider`, `CopyDestRole`;
//! - Epikrise `Event` structure beyond the first stay (nested events are flattened), `PlannedEvent`,
//!   `EventLocation`, `AssRequest`, `CodedComment`, event-level `RelServProvider`, `Origin`;
//! - `ResultItem` other than numeric and text results (`Interval`, `DateResult`), `ClinInv/Spec`;
//! - Dialogmelding: notes after the first are merged into one dialogue; PLO structured content
//!   (beyond a Pasientlogistikk message's stay event);
//!   AppRec `Error@OT`; basismelding `Status` other than TEST and `MIGversion`/`MsgVersion`.

mod apprec;
mod basis;
mod common;
mod msghead;

/// Codes of the decoding notes (`decode.*`).
pub use common::dcodes as codes;

use crate::finding::Finding;
use crate::kith::detect::{effective_root, root_format, Detected};
use crate::model::{Body, Format, Header, Message};
use crate::xml::Element;
use common::Notes;

/// A decoded message and the notes made while decoding it.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub message: Message,
    pub findings: Vec<Finding>,
}

/// Decode a detected message into the canonical model. Never fails and never panics: anything
/// missing stays None/empty. `findings` holds only decoding notes (e.g. a date normalised from
/// "1991-12-4", an unknown inner document), severity Warning/Info, codes from crate::finding::codes or
/// new ones under "decode.*"; header/patient judgement is done elsewhere.
pub fn decode(d: &Detected<'_>) -> Decoded {
    let mut notes = Notes::default();
    let (header, body) = match d.format {
        Format::MsgHead12 => msghead::decode(d, &mut notes),
        Format::AppRec10 | Format::AppRec11 => apprec::decode(d, &mut notes),
        Format::Henvisning10 | Format::Henvisning11 => basis::decode_henvisning(d, &mut notes),
        Format::Epikrise10 | Format::Epikrise11 | Format::Epikrise12 => {
            basis::decode_epikrise(d, &mut notes)
        }
        // Not KITH root formats: detection never yields these as `format`; decode the MsgHead header
        // if the root happens to be one, else an empty shell.
        _ => (empty_header(d.format, d.fellesformat), Body::Opaque),
    };
    Decoded {
        message: Message { header, body },
        findings: notes.findings,
    }
}

fn empty_header(format: Format, fellesformat: bool) -> Header {
    Header {
        fellesformat,
        ..Header::new(format, "")
    }
}

/// Best effort for unreadable input: given the partial tree of a document that was not well-formed,
/// find the sender (MsgHead MsgInfo/Sender/Organisation, basismelding ServReq/Requester or ServRprt/ServProvider,
/// AppRec Sender), the msg id and msg type, so a T01 AppRec can be addressed. None if the sender cannot be identified.
pub fn salvage_header(partial_root: &Element) -> Option<Header> {
    let (root, fellesformat) = effective_root(partial_root)?;
    // The namespace decides the format when it is known; else go by the root's local name.
    let format = root_format(root).or(match root.name.as_str() {
        "MsgHead" => Some(Format::MsgHead12),
        "AppRec" => Some(Format::AppRec10),
        _ => None,
    });
    let mut notes = Notes::default();
    let header = match (format, root.name.as_str()) {
        (Some(Format::MsgHead12), _) => {
            let mut h = msghead::header(root, fellesformat, &mut notes);
            h.patient = None;
            h
        }
        (Some(f @ (Format::AppRec10 | Format::AppRec11)), _) => {
            apprec::header(root, f, fellesformat)
        }
        (f, "Message") => {
            let d = Detected {
                root,
                format: f.unwrap_or(Format::Henvisning10),
                inner: None,
                fellesformat,
            };
            let (mut h, _) = if root.child("ServRprt").is_some() {
                basis::decode_epikrise(
                    &Detected {
                        format: f.unwrap_or(Format::Epikrise11),
                        ..d
                    },
                    &mut notes,
                )
            } else {
                basis::decode_henvisning(&d, &mut notes)
            };
            h.patient = None;
            h
        }
        _ => return None,
    };
    header
        .sender
        .as_ref()
        .is_some_and(|s| s.is_identifiable())
        .then_some(header)
}
