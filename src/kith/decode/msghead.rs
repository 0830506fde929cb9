//! MsgHead 1.2 (FACTS §2) and the documents it carries: Dialogmelding 1.0/1.1, Henvisning 2.0, PLO.

use super::basis::{diagnoses, inf_items};
use super::common::{
    all_text, code_at, dcodes, organisation, patient, professional, s, section, section_of, Notes,
};
use crate::finding::Severity;
use crate::kith::detect::{content_root, Detected};
use crate::kith::ns;
use crate::model::{
    Body, Conversation, CopyReceiver, Dialog, Format, Header, Organisation, PloMessage, Referral,
    ServiceType, TextSection,
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
            Body::Dialog(Box::new(dialog(c)))
        }
        (Some(Format::Henvisning20), Some(c)) => Body::Referral(Box::new(henvisning20(c, &header))),
        (Some(Format::Plo15 | Format::Plo16 | Format::Plo20), Some(c)) => {
            Body::Plo(Box::new(plo(c)))
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
    let mut d = Dialog::default();
    let responsible = |e: &Element| {
        e.children_named("RollerRelatertNotat").find_map(|r| {
            let hp = r.child("HealthcareProfessional")?;
            let mut p = professional(hp);
            if p.role_to_patient.is_none() {
                p.role_to_patient = code_at(r, "RoleToPatient");
            }
            Some(p)
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
        d.texts.extend(section_of(f.child("Sporsmal"), typ));
        for p in ["Formål", "Begrunnelse"] {
            d.texts.extend(section_of(f.child(p), None));
        }
        if d.document_id.is_none() {
            d.document_id = s(f, "DokIdForesp");
        }
    }
    for n in root.children_named("Notat") {
        let tema = code_at(n, "TemaKodet");
        if d.topic.is_none() {
            d.topic = tema.clone();
        }
        if d.topic_text.is_none() {
            d.topic_text = s(n, "Tema");
        }
        d.texts
            .extend(section_of(n.child("TekstNotatInnhold"), tema));
        d.texts.extend(section_of(n.child("Merknad"), None));
        if d.document_id.is_none() {
            d.document_id = s(n, "DokIdNotat");
        }
        if d.responsible.is_none() {
            d.responsible = responsible(n);
        }
        if let Some(f) = n.child("Foresporsel") {
            foresporsel(f, &mut d);
            if d.responsible.is_none() {
                d.responsible = responsible(f);
            }
        }
    }
    for f in root.children_named("Foresporsel") {
        foresporsel(f, &mut d);
        if d.responsible.is_none() {
            d.responsible = responsible(f);
        }
    }
    d
}

// ---------------------------------------------------------------- Henvisning 2.0

fn henvisning20(h: &Element, header: &Header) -> Referral {
    let mut texts: Vec<TextSection> = Vec::new();
    texts.extend(section_of(h.child("ReqComment"), None));
    let (inf_texts, medications) = inf_items(h.children_named("InfItem"));
    texts.extend(inf_texts);
    texts.extend(
        h.children_named("ReasonAsText")
            .filter_map(|r| section(r, "Heading", "TextResultValue")),
    );
    texts.extend(
        h.children_named("Comment")
            .filter_map(|c| section(c, "Heading", "TextResultValue")),
    );
    texts.extend(h.children_named("PatientPrecaution").filter_map(|p| {
        let t = p.child("Precaution").and_then(all_text)?;
        Some(TextSection {
            heading: None,
            text: t,
        })
    }));
    texts.extend(section_of(h.at("ReqServ/Comment"), None));
    Referral {
        // FACTS §6: a Henvisning 2.0 is identified by its MsgHead MsgId.
        id: header.msg_id.clone(),
        service_type: h.v_at("ServType").and_then(ServiceType::from_kith),
        issue_date: s(h, "IssueDate"),
        priority: code_at(h, "ReqServ/Priority"),
        description: code_at(h, "TypeInnholdIMelding/TypeInnhold"),
        patient: header.patient.clone(),
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
        observations: Vec::new(),
        medications,
        flags: Vec::new(),
    }
}

// ---------------------------------------------------------------- PLO

/// PLO: the document kind and its journal texts (`Journaltekst { Overskriftskode?, Notat }`).
fn plo(root: &Element) -> PloMessage {
    let mut jt = Vec::new();
    root.find_all("Journaltekst", &mut jt);
    let texts = jt
        .into_iter()
        .filter_map(|j| section(j, "Overskriftskode", "Notat"))
        .collect();
    PloMessage {
        document: root.name.clone(),
        texts,
    }
}
