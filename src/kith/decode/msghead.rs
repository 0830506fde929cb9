//! MsgHead 1.2 (FACTS §2) and the documents it carries: Dialogmelding 1.0/1.1, Henvisning 2.0, PLO
//! (its journal texts, and for Pasientlogistikk the stay event it reports).

use super::basis::{diagnoses, headed, inf_items, precautions};
use super::common::{
    attachment, boolean, code_at, code_of, communication_need, consent, date, dcodes, organisation,
    patient, po_care_provider, professional, relative, s, section, section_of, v_or_text, Notes,
};
use crate::finding::Severity;
use crate::kith::detect::{content_root, Detected};
use crate::kith::ns;
use crate::model::{
    Attachment, Body, CareEvent, CareEventKind, CarePathway, CareProviderRole, Conversation,
    CopyReceiver, DatedCode, Dialog, DialogRequest, Format, Header, Organisation, PloMessage,
    Referral, ReferralAssessment, ServiceType, TextRole, TextSection,
};
use crate::xml::Element;

/// The MsgHead header (`MsgInfo`). Used for decoding and for salvaging a partial tree.
pub(crate) fn header(root: &Element, fellesformat: bool, notes: &mut Notes) -> Header {
    let info = root.child("MsgInfo");
    let g = |p: &str| info.and_then(|i| s(i, p));
    let msg_type = info.and_then(|i| i.v_at("Type")).map(str::to_string);
    if msg_type.is_none() {
        notes.note(
            dcodes::MSG_TYPE_MISSING,
            Severity::Info,
            "/MsgHead/MsgInfo/Type",
            "MsgInfo has no Type code",
        );
    }
    let conversation = info.and_then(|i| i.child("ConversationRef")).map(|c| {
        let first = c.children.first().map(|e| e.name.as_str());
        if first == Some("RefToConversation") && c.child("RefToParent").is_some() {
            notes.note(
                dcodes::CONVERSATION_REF_ORDER,
                Severity::Info,
                "/MsgHead/MsgInfo/ConversationRef",
                "RefToConversation written before RefToParent (schema order is the reverse); both read",
            );
        }
        Conversation { ref_to_parent: s(c, "RefToParent"), ref_to_conversation: s(c, "RefToConversation") }
    });
    let copy_receivers = info
        .map(|i| {
            i.children_named("OtherReceiver")
                .filter_map(|o| {
                    let party = if let Some(org) = o.child("Organisation") {
                        organisation(org)
                    } else {
                        let hp = o.child("HealthcareProfessional")?;
                        Organisation {
                            professional: Some(professional(hp)),
                            ..Organisation::default()
                        }
                    };
                    Some(CopyReceiver {
                        role: o.v_at("RoleReceiver").map(str::to_string),
                        party,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Header {
        format: Format::MsgHead12,
        msg_type: msg_type.unwrap_or_default(),
        msg_type_text: info
            .and_then(|i| i.at("Type"))
            .and_then(|t| t.attr("DN"))
            .map(|d| d.trim().to_string()),
        msg_id: g("MsgId"),
        gen_date: g("GenDate"),
        sender: info
            .and_then(|i| i.at("Sender/Organisation"))
            .map(organisation),
        receiver: info
            .and_then(|i| i.at("Receiver/Organisation"))
            .map(organisation),
        copy_receivers,
        patient: info
            .and_then(|i| i.child("Patient"))
            .map(|p| patient(p, "/MsgHead/MsgInfo/Patient", notes)),
        conversation,
        ack: info.and_then(|i| i.v_at("Ack")).map(str::to_string),
        processing_status: info
            .and_then(|i| i.v_at("ProcessingStatus"))
            .map(str::to_string),
        fellesformat,
    }
}

pub(crate) fn decode(d: &Detected<'_>, notes: &mut Notes) -> (Header, Body) {
    let header = header(d.root, d.fellesformat, notes);
    let content = content_root(d.root);
    let body = match (d.inner, content) {
        (Some(Format::Dialogmelding10 | Format::Dialogmelding11), Some(c)) => {
            let mut x = dialog(c);
            x.issue_date = d
                .root
                .at("Document/RefDoc")
                .and_then(|r| v_or_text(r, "IssueDate"));
            x.attachments = attachments(d.root);
            Body::Dialog(Box::new(x))
        }
        (Some(Format::Henvisning20), Some(c)) => {
            let mut x = henvisning20(c, &header);
            x.attachments = attachments(d.root);
            Body::Referral(Box::new(x))
        }
        (Some(Format::Plo15 | Format::Plo16 | Format::Plo20), Some(c)) => {
            let mut x = plo(c);
            if c.name == "Pasientlogistikk" {
                x.event = stay_event(c, &header, notes);
            }
            Body::Plo(Box::new(x))
        }
        (_, None) => {
            notes.note(
                dcodes::INNER_MISSING,
                Severity::Info,
                "/MsgHead/Document",
                "no Document/RefDoc/Content with an embedded document",
            );
            Body::Opaque
        }
        (_, Some(c)) => {
            if c.ns.as_deref() != Some(ns::BASE64) {
                notes.note(
                    dcodes::INNER_UNKNOWN,
                    Severity::Info,
                    format!("/MsgHead/Document/RefDoc/Content/{}", c.name),
                    format!(
                        "embedded document {{{}}}{} is not one kadgate reads; kept as opaque",
                        c.ns.as_deref().unwrap_or(""),
                        c.name
                    ),
                );
            }
            Body::Opaque
        }
    };
    (header, body)
}

// ---------------------------------------------------------------- Dialogmelding 1.0 / 1.1

fn dialog(root: &Element) -> Dialog {
    let mut d = Dialog {
        case_type: code_at(root, "SakstypeKodet"),
        case_type_text: s(root, "Sakstype"),
        ..Dialog::default()
    };
    let responsible = |e: &Element| {
        e.children_named("RollerRelatertNotat").find_map(|r| {
            let hp = r.child("HealthcareProfessional")?;
            let mut p = professional(hp);
            if p.role_to_patient.is_none() {
                p.role_to_patient = code_at(r, "RoleToPatient");
            }
            Some((p, code_at(r, "RolleNotat")))
        })
    };
    fn foresporsel(f: &Element, d: &mut Dialog) {
        let typ = code_at(f, "TypeForesp");
        if d.topic.is_none() {
            d.topic = typ.clone();
        }
        if d.topic_text.is_none() {
            d.topic_text = s(f, "EmneSporsmal");
        }
        d.texts.extend(section_of(
            f.child("Sporsmal"),
            typ.clone(),
            TextRole::Question,
        ));
        d.texts.extend(section_of(
            f.child("Begrunnelse"),
            None,
            TextRole::Justification,
        ));
        if d.document_id.is_none() {
            d.document_id = s(f, "DokIdForesp");
        }
        if d.request.is_none() {
            d.request = Some(DialogRequest {
                kind: typ,
                subject: s(f, "EmneSporsmal"),
                purpose: code_at(f, "Formål"),
                priority: code_at(f, "Hastegrad"),
                from_date: s(f, "FraDato"),
                to_date: s(f, "TilDato"),
                record_types: f
                    .children_named("TypeJournalinfo")
                    .filter_map(code_of)
                    .collect(),
                coded_info: code_at(f, "KodetOpplysning"),
                document_id: s(f, "DokIdForesp"),
            });
        }
    }
    let take_responsible = |d: &mut Dialog, e: &Element| {
        if d.responsible.is_none() {
            if let Some((p, role)) = responsible(e) {
                d.responsible = Some(p);
                d.responsible_role = role;
            }
        }
    };
    for n in root.children_named("Notat") {
        let tema = code_at(n, "TemaKodet");
        if d.topic.is_none() {
            d.topic = tema.clone();
        }
        if d.topic_text.is_none() {
            d.topic_text = s(n, "Tema");
        }
        d.texts.extend(section_of(
            n.child("TekstNotatInnhold"),
            tema,
            TextRole::Note,
        ));
        d.texts
            .extend(section_of(n.child("Merknad"), None, TextRole::Remark));
        if d.document_id.is_none() {
            d.document_id = s(n, "DokIdNotat");
        }
        if d.note_date.is_none() {
            d.note_date = s(n, "DatoNotat");
        }
        take_responsible(&mut d, n);
        if let Some(f) = n.child("Foresporsel") {
            foresporsel(f, &mut d);
            take_responsible(&mut d, f);
        }
    }
    for f in root.children_named("Foresporsel") {
        foresporsel(f, &mut d);
        take_responsible(&mut d, f);
    }
    d
}

/// Attachments: every `Document/RefDoc` after the first that carries base64 content or a file
/// reference.
fn attachments(root: &Element) -> Vec<Attachment> {
    root.children_named("Document")
        .skip(1)
        .filter_map(|d| d.child("RefDoc"))
        .filter_map(attachment)
        .collect()
}

// ---------------------------------------------------------------- Henvisning 2.0

fn henvisning20(h: &Element, header: &Header) -> Referral {
    let mut texts: Vec<TextSection> = Vec::new();
    texts.extend(section_of(
        h.child("ReqComment"),
        None,
        TextRole::RequestComment,
    ));
    let inf = inf_items(h.children_named("InfItem"));
    texts.extend(inf.texts);
    texts.extend(headed(
        h.children_named("ReasonAsText"),
        "TextCode",
        TextRole::Reason,
    ));
    texts.extend(headed(
        h.children_named("Comment"),
        "CodedComment",
        TextRole::Comment,
    ));
    texts.extend(precautions(h.children_named("PatientPrecaution")));
    texts.extend(section_of(
        h.at("ReqServ/Comment"),
        None,
        TextRole::ServiceComment,
    ));
    // The patient is the MsgHead's, with what the document adds about relatives, involved health
    // personnel and communication needs.
    let patient = header.patient.clone().map(|mut p| {
        p.marital_status = code_at(h, "TilleggsopplysningPasient/SivilStatus");
        p.related_persons = h
            .children_named("ParorendeForesatt")
            .map(relative)
            .collect();
        p.care_providers = h
            .children_named("KontaktpersonHelsepersonell")
            .filter_map(|c| po_care_provider(c, CareProviderRole::Contact))
            .chain(
                h.children_named("AnsvarForRapport")
                    .filter_map(|c| po_care_provider(c, CareProviderRole::Responsible)),
            )
            .collect();
        p.communication_needs = h
            .children_named("InfoAssistertKommunikasjon")
            .filter_map(|i| i.child("AssistertKommunikasjon"))
            .map(communication_need)
            .collect();
        p
    });
    let assessment = h
        .child("VurderingAvHenvisning")
        .map(|v| ReferralAssessment {
            dates: v
                .children_named("DatoMottakOgVurdering")
                .filter_map(|d| {
                    Some(DatedCode {
                        kind: code_at(d, "TypeDato")?,
                        date: s(d, "Dato")?,
                    })
                })
                .collect(),
            free_choice: boolean(v, "Opplysninger/FrittSykehusvalg"),
            waiting_end: code_at(v, "Opplysninger/VentetidSluttkode"),
            pathway_id: s(v, "Opplysninger/ForlopsId"),
            entitled: boolean(v, "Opplysninger/RettTilHelsehjelp"),
            outcome: code_at(v, "Opplysninger/UtfallAvVurdering"),
        });
    Referral {
        // FACTS §6: a Henvisning 2.0 is identified by its MsgHead MsgId.
        id: header.msg_id.clone(),
        service_type: h.v_at("ServType").and_then(ServiceType::from_kith),
        issue_date: s(h, "IssueDate"),
        priority: code_at(h, "ReqServ/Priority"),
        description: code_at(h, "TypeInnholdIMelding/TypeInnhold"),
        patient,
        requester: header.sender.clone(),
        service_provider: header.receiver.clone(),
        copy_to: header
            .copy_receivers
            .iter()
            .map(|c| c.party.clone())
            .collect(),
        diagnoses: diagnoses(h.children_named("Diagnosis"), None),
        texts,
        plan: None,
        observations: inf.observations,
        medications: inf.medications,
        flags: Vec::new(),
        document_id: s(h, "DocumentId"),
        payment_category: code_at(h, "PaymentCat"),
        basis_for_health_services: code_at(h, "BasisForHealthServices"),
        requested_service_type: h.v_at("ReqServ/ServType").and_then(ServiceType::from_kith),
        purpose: None,
        requested_date: s(h, "ReqServ/ReqDate"),
        requested_specialty: None,
        received_date: None,
        consents: h.children_named("Consent").map(consent).collect(),
        assessment,
        care_pathways: h
            .children_named("Pakkeforlop")
            .filter_map(|p| {
                Some(CarePathway {
                    code: code_at(p, "Pakkeforlopskode")?,
                    note: s(p, "Merknad"),
                })
            })
            .collect(),
        attachments: Vec::new(),
    }
}

// ---------------------------------------------------------------- PLO

/// PLO: the document kind and its journal texts (`Journaltekst { Overskriftskode?, Notat }`).
fn plo(root: &Element) -> PloMessage {
    let mut jt = Vec::new();
    root.find_all("Journaltekst", &mut jt);
    let texts = jt
        .into_iter()
        .filter_map(|j| section(j, "Overskriftskode", "Notat", "-", TextRole::Note))
        .collect();
    PloMessage {
        document: root.name.clone(),
        texts,
        event: None,
    }
}

// ---------------------------------------------------------------- PLO Pasientlogistikk

/// The Pasientlogistikk uses (1.5, 1.6 and 2.0 alike): MsgHead type (8279), the element that holds
/// the use, the stay event it reports (`None`: a use that is no stay event) and the 9121 code of
/// the `TidsfestetHendelse` that gives its time.
const STAY_EVENTS: &[(&str, &str, Option<CareEventKind>, &str)] = &[
    (
        "LOG_INNLAGT",
        "MeldingInnlagtPasient",
        Some(CareEventKind::Admitted),
        "1",
    ),
    (
        "LOG_UTSKREVET",
        "MeldingOmUtskrevetPasient",
        Some(CareEventKind::Discharged),
        "2",
    ),
    (
        "LOG_UTSKRIVNINGSKLAR",
        "MeldingUtskrivningsklarPasient",
        Some(CareEventKind::ReadyForDischarge),
        "3",
    ),
    (
        "LOG_AVMELDING",
        "AvmeldingUtskrivningsklarPasient",
        None,
        "4",
    ),
    (
        "LOG_DOD",
        "OrienteringOmDod",
        Some(CareEventKind::Deceased),
        "13",
    ),
];

/// 8408 `UtTil` codes of an institution: the patient does not go home.
const TO_INSTITUTION: &[&str] = &["3", "5", "7", "8", "10", "11", "21"];

/// 8663 service type of a municipal nursing service (Sykepleietjeneste, home nursing among it).
const NURSING_SERVICE: &str = "KP02";

/// What a Pasientlogistikk message reports about the stay (`docs/mapping/kith.md`, "PLO stay
/// events"): the kind from the element that holds the use (the MsgHead type when that element is
/// missing; a disagreement is noted), the time from its `TidsfestetHendelse`, new / change /
/// cancellation from `Forsendelsesstatus` (the 7309 codes: the examples write N Ny, M Endring,
/// C Kansellering), and home nursing only where the
/// message says it (see [`home_nursing`]). `None` for a use that is no stay event (avmelding).
fn stay_event(root: &Element, header: &Header, notes: &mut Notes) -> Option<CareEvent> {
    let base = format!("/MsgHead/Document/RefDoc/Content/{}", root.name);
    let by_type = STAY_EVENTS
        .iter()
        .find(|row| row.0 == header.msg_type.trim());
    let by_content = root.children.iter().find_map(|c| {
        STAY_EVENTS
            .iter()
            .find(|row| row.1 == c.name)
            .map(|row| (row, c))
    });
    let (row, content) = match (by_type, by_content) {
        (t, Some((row, c))) => {
            if let Some(t) = t.filter(|t| t.0 != row.0) {
                notes.note(
                    dcodes::PLO_EVENT_MISMATCH,
                    Severity::Warning,
                    format!("{base}/{}", c.name),
                    format!(
                        "MsgInfo/Type says {}, the document holds {}; the document is read",
                        t.0, row.1
                    ),
                );
            }
            (row, Some(c))
        }
        (Some(t), None) => (t, None),
        (None, None) => return None,
    };
    let kind = row.2?;
    let path = format!("{base}/{}", row.1);
    // InformasjonOmForsendelsen: first under the root (1.5, 1.6), under FellesAdministrativeOpplysninger (2.0).
    let status = root
        .at("InformasjonOmForsendelsen/Forsendelsesstatus")
        .or_else(|| {
            root.at("FellesAdministrativeOpplysninger/InformasjonOmForsendelsen/Forsendelsesstatus")
        });
    let service_type = status.and_then(|st| {
        let v = st.attr("V").map(str::trim).filter(|v| !v.is_empty())?;
        let t = ServiceType::from_kith(v);
        if t.is_none() {
            notes.note(
                dcodes::PLO_STATUS_UNKNOWN,
                Severity::Warning,
                format!("{base}/InformasjonOmForsendelsen/Forsendelsesstatus"),
                "Forsendelsesstatus is not a 7309 code (N new, M change, C cancellation, A addition); read without it",
            );
        }
        t
    });
    let at = content.and_then(|c| event_time(c, row.3, &path, notes));
    Some(CareEvent {
        kind,
        at,
        service_type,
        referral_id: None,
        stay_id: None,
        home_nursing: content.and_then(|c| home_nursing(kind, c, header)),
    })
}

/// The time of the `TidsfestetHendelse` coded `code` (9121), else of the only one; a time that
/// is no date or date-time is noted and not read.
fn event_time(use_: &Element, code: &str, path: &str, notes: &mut Notes) -> Option<String> {
    let events: Vec<&Element> = use_.children_named("TidsfestetHendelse").collect();
    let event = events
        .iter()
        .find(|e| e.v_at("Hendelsekode") == Some(code))
        .or(match events.as_slice() {
            [only] => Some(only),
            _ => None,
        })?;
    let p = format!("{path}/TidsfestetHendelse/TidspunktForHendelse");
    let raw = v_or_text(event, "TidspunktForHendelse")?;
    // A date is padded (and noted) the way every other date is; a date-time is kept as written.
    let value = if raw.contains('T') {
        raw
    } else {
        date(&raw, &p, notes)
    };
    if readable_time(&value) {
        Some(value)
    } else {
        notes.note(
            dcodes::PLO_EVENT_TIME_INVALID,
            Severity::Warning,
            p,
            "TidspunktForHendelse is no date or date-time; the event is read without a time",
        );
        None
    }
}

/// A date (`YYYY-MM-DD`) or an xs:dateTime (seconds, fraction and offset optional).
fn readable_time(v: &str) -> bool {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
        || DateTime::parse_from_rfc3339(v).is_ok()
        || NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        || NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M").is_ok()
}

/// Home nursing, only where a discharge message says it:
/// - `Some(false)` when the patient left dead (`Uttilstand` 8431 2 or 3) or went to an institution
///   (`UtTil` 8408 3, 5, 7, 8, 10, 11, 21);
/// - `Some(true)` when the patient went home (`UtTil` 1) and the message is addressed (receiver or
///   copy receiver) to a municipal nursing service: an organisation level typed 8663 `KP02`
///   Sykepleietjeneste;
/// - `None` otherwise: other kinds, other destinations, a home discharge sent elsewhere. A
///   `Merknad` saying the patient receives municipal services is free text and not read.
fn home_nursing(kind: CareEventKind, use_: &Element, header: &Header) -> Option<bool> {
    if kind != CareEventKind::Discharged {
        return None;
    }
    let to = use_.child("UtskrevetTil")?;
    if matches!(to.v_at("Uttilstand"), Some("2" | "3")) {
        return Some(false);
    }
    match to.v_at("UtTil")? {
        "1" => {
            let nursing = |o: &Organisation| {
                let mut level = Some(o);
                while let Some(l) = level {
                    if l.kind
                        .as_ref()
                        .is_some_and(|k| k.code.trim() == NURSING_SERVICE)
                    {
                        return true;
                    }
                    level = l.unit.as_deref();
                }
                false
            };
            let addressed = header.receiver.as_ref().is_some_and(nursing)
                || header.copy_receivers.iter().any(|c| nursing(&c.party));
            addressed.then_some(true)
        }
        c if TO_INSTITUTION.contains(&c) => Some(false),
        _ => None,
    }
}
