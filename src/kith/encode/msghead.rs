//! MsgHead 1.2 around a business document: `MsgInfo` (type, ids, parties, patient), the document
//! as the first `Document`, attachments as further `Document`s with a base64 container.
//!
//! Must not: write parties or persons without an identifier (MsgHead requires one); those are
//! left out (documented losses).

use super::basis::{id_type_text, sex_code};
use super::writer::{xs_date, Xml};
use super::EncodeError;
use crate::kith::{ns, oid};
use crate::model::{
    Address, Attachment, Code, Ident, Message, Organisation, Patient, Professional, Telecom,
};

/// What goes into `MsgInfo` besides the header itself.
pub struct Head<'a> {
    pub msg_type: Code,
    pub gen_date: String,
    pub msg_id: String,
    pub sender: &'a Organisation,
    pub receiver: &'a Organisation,
    pub copies: Vec<(Option<&'a str>, &'a Organisation)>,
    pub patient: Option<&'a Patient>,
    /// IssueDate of the business document's `RefDoc`.
    pub doc_issue_date: Option<&'a str>,
}

/// `{o}Ident { {i}Id, {i}TypeId }`: `o` prefixes the element, `i` its children.
fn ident(x: &mut Xml, o: &str, i_: &str, i: &Ident, person: bool) {
    x.open(&format!("{o}Ident"));
    x.text(&format!("{i_}Id"), i.id.trim());
    let k = i.kind.trim();
    let c = Code {
        code: k.to_string(),
        system: i.system.clone().or_else(|| {
            Some(
                if person {
                    oid::PERSON_ID_TYPE
                } else {
                    oid::ORG_ID_TYPE
                }
                .to_string(),
            )
        }),
        display: id_type_text(k).map(str::to_string),
    };
    x.code(&format!("{i_}TypeId"), &c, true);
    x.close();
}

/// `Address` + `TeleCom`s (MsgHead / felleskomponent shape; `o` prefixes the elements, `p` their
/// children).
pub fn address_telecom(x: &mut Xml, o: &str, p: &str, a: Option<&Address>, tel: &[Telecom]) {
    if let Some(a) = a {
        x.open(&format!("{o}Address"));
        if let Some(k) = &a.kind {
            x.code(&format!("{p}Type"), &Code::new(k, None, None), false);
        }
        x.address_lines(p, a);
        x.close();
    }
    for t in tel {
        x.open(&format!("{o}TeleCom"));
        if let Some(k) = &t.kind {
            x.code(&format!("{p}TypeTelecom"), &Code::new(k, None, None), false);
        }
        x.v(&format!("{p}TeleAddress"), &t.value);
        x.close();
    }
}

/// A `HealthcareProfessional` (MsgHead, felleskomponent and dialogmelding share the shape; `p` is
/// the child prefix, `i` the prefix inside `Ident`/`Address`/`TeleCom`, `el` the element's own
/// name). Written only with at least one identifier unless `ident_optional`.
pub fn professional(
    x: &mut Xml,
    el: &str,
    p: &str,
    i_: &str,
    hp: &Professional,
    ident_optional: bool,
) {
    if hp.idents.is_empty() && !ident_optional {
        return;
    }
    x.open(el);
    x.cs(
        &format!("{p}TypeHealthcareProfessional"),
        hp.profession.as_ref(),
    );
    x.cv(&format!("{p}RoleToPatient"), hp.role_to_patient.as_ref());
    let (family, given) = match (&hp.family_name, &hp.given_name, &hp.full_name) {
        (None, None, Some(full)) => (Some(full.clone()), None),
        (f, g, _) => (f.clone(), g.clone()),
    };
    x.opt_text(&format!("{p}FamilyName"), family.as_deref());
    x.opt_text(&format!("{p}MiddleName"), hp.middle_name.as_deref());
    x.opt_text(&format!("{p}GivenName"), given.as_deref());
    for i in &hp.idents {
        ident(x, p, i_, i, true);
    }
    address_telecom(x, p, i_, None, &hp.telecom);
    x.close();
}

/// A MsgHead `Organisation` chain. Units without an identifier are skipped (their person is
/// written on the nearest written level when that level has none).
pub fn organisation(x: &mut Xml, o: &Organisation) {
    x.open("Organisation");
    x.text("OrganisationName", o.name.as_deref().unwrap_or(""));
    x.cv("TypeOrganisation", o.kind.as_ref());
    for i in &o.idents {
        ident(x, "", "", i, false);
    }
    address_telecom(x, "", "", o.address.as_ref(), &o.telecom);
    let mut person = o.professional.as_ref();
    if let Some(u) = o.unit.as_deref() {
        if !u.idents.is_empty() {
            organisation(x, u);
        } else if person.is_none() {
            person = u.professional.as_ref();
        }
    }
    if let Some(p) = person {
        professional(x, "HealthcareProfessional", "", "", p, false);
    }
    x.close();
}

/// The organisation as written: the first level with an identifier (a sender/receiver must have one).
fn addressable(o: &Organisation) -> Option<&Organisation> {
    if !o.idents.is_empty() {
        return Some(o);
    }
    o.unit.as_deref().and_then(addressable)
}

/// MsgHead `Patient`.
pub fn patient(x: &mut Xml, p: &Patient) {
    x.open("Patient");
    x.opt_text(
        "FamilyName",
        p.family_name.as_deref().or(p.full_name.as_deref()),
    );
    x.opt_text("MiddleName", p.middle_name.as_deref());
    x.opt_text("GivenName", p.given_name.as_deref());
    if let Some(d) = p.birth_date.as_deref().and_then(xs_date) {
        x.text("DateOfBirth", &d);
    }
    if let Some(s) = p.sex {
        x.code("Sex", &sex_code(s), false);
    }
    x.cs("Nationality", p.nationality.as_ref());
    for i in p.idents.iter().filter(|i| !i.id.trim().is_empty()) {
        ident(
            x,
            "",
            "",
            &Ident {
                id: i.id.clone(),
                kind: i.kind.clone(),
                system: None,
            },
            true,
        );
    }
    address_telecom(x, "", "", p.address.as_ref(), &p.telecom);
    x.close();
}

/// Write the MsgHead; `doc` writes the business document inside `RefDoc/Content`.
pub fn write(
    msg: &Message,
    h: &Head<'_>,
    attachments: &[Attachment],
    doc: impl FnOnce(&mut Xml),
) -> Result<String, EncodeError> {
    let sender = addressable(h.sender).ok_or(EncodeError::NoParty("sender"))?;
    let receiver = addressable(h.receiver).ok_or(EncodeError::NoParty("receiver"))?;
    let mut x = Xml::new();
    x.open_with(
        "MsgHead",
        &[
            ("xmlns", ns::MSGHEAD),
            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
        ],
    );
    x.open("MsgInfo");
    x.code("Type", &h.msg_type, false);
    x.text("MIGversion", "v1.2 2006-05-24");
    x.text("GenDate", &h.gen_date);
    x.text("MsgId", &h.msg_id);
    if let Some(ps) = &msg.header.processing_status {
        x.code("ProcessingStatus", &Code::new(ps, None, None), false);
    }
    if let Some(a) = &msg.header.ack {
        x.code("Ack", &Code::new(a, None, None), false);
    }
    if let Some(c) = &msg.header.conversation {
        if let (Some(p), Some(r)) = (&c.ref_to_parent, &c.ref_to_conversation) {
            x.open("ConversationRef");
            x.text("RefToParent", p);
            x.text("RefToConversation", r);
            x.close();
        }
    }
    x.open("Sender");
    organisation(&mut x, sender);
    x.close();
    x.open("Receiver");
    organisation(&mut x, receiver);
    x.close();
    for (role, o) in &h.copies {
        if let Some(o) = addressable(o) {
            x.open("OtherReceiver");
            x.code(
                "RoleReceiver",
                &Code::new(role.unwrap_or("COP"), None, None),
                false,
            );
            organisation(&mut x, o);
            x.close();
        } else if let Some(p) = o.professional.as_ref().filter(|p| !p.idents.is_empty()) {
            x.open("OtherReceiver");
            x.code(
                "RoleReceiver",
                &Code::new(role.unwrap_or("COP"), None, None),
                false,
            );
            professional(&mut x, "HealthcareProfessional", "", "", p, false);
            x.close();
        }
    }
    if let Some(p) = h.patient {
        patient(&mut x, p);
    }
    x.close();
    x.open("Document");
    x.open("RefDoc");
    x.opt_ts("IssueDate", h.doc_issue_date);
    x.empty("MsgType", &[("V", "XML"), ("DN", "XML-instans")]);
    x.open("Content");
    doc(&mut x);
    x.close();
    x.close();
    x.close();
    for a in attachments {
        x.open("Document");
        x.open("RefDoc");
        write_attachment(&mut x, a);
        x.close();
        x.close();
    }
    Ok(x.finish())
}

/// The inner part of a `RefDoc` holding an attachment (MsgHead and basismelding share it).
pub fn write_attachment(x: &mut Xml, a: &Attachment) {
    x.opt_ts("IssueDate", a.issue_date.as_deref());
    let default_kind = Code::new("A", None, Some("Vedlegg"));
    x.code("MsgType", a.kind.as_ref().unwrap_or(&default_kind), false);
    x.opt_text("Id", a.id.as_deref());
    x.opt_text("MimeType", a.media_type.as_deref());
    x.opt_text("Description", a.description.as_deref());
    match (&a.data, &a.uri) {
        (Some(d), _) => {
            x.open("Content");
            x.text_block("Base64Container", &[("xmlns", ns::BASE64)], d);
            x.close();
        }
        (None, Some(u)) => x.text("FileReference", u),
        (None, None) => {}
    }
}
