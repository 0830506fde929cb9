//! MsgHead 1.2 + Dialogmelding 1.1 from a dialogue: one `Notat` (with the request nested when
//! there is one), or a bare `Foresporsel` when the dialogue is only a request.
//!
//! Must not: require a patient (a communication test has none).

use super::msghead::{self, professional, Head};
use super::writer::{xs_date, Xml};
use super::{body_name, gen_date, msg_id, EncodeError};
use crate::kith::ns;
use crate::model::{Body, Code, Dialog, DialogRequest, Message, TextRole};

fn dialog(msg: &Message) -> Result<&Dialog, EncodeError> {
    match &msg.body {
        Body::Dialog(d) => Ok(d),
        _ => Err(EncodeError::WrongBody {
            wanted: "dialogue",
            body: body_name(msg),
        }),
    }
}

fn text_of(d: &Dialog, role: TextRole) -> Option<&str> {
    d.texts
        .iter()
        .find(|t| t.role == Some(role))
        .map(|t| t.text.as_str())
}

fn roles(x: &mut Xml, d: &Dialog) {
    let Some(p) = &d.responsible else { return };
    x.open("RollerRelatertNotat");
    x.cv("RolleNotat", d.responsible_role.as_ref());
    x.cv("RoleToPatient", p.role_to_patient.as_ref());
    let inner = crate::model::Professional {
        role_to_patient: None,
        ..p.clone()
    };
    professional(x, "HealthcareProfessional", "", "fk1:", &inner, true);
    x.close();
}

fn foresporsel(x: &mut Xml, d: &Dialog, r: &DialogRequest, with_roles: bool) {
    x.open("Foresporsel");
    x.code_req("TypeForesp", r.kind.as_ref(), true);
    x.opt_text("EmneSporsmal", r.subject.as_deref());
    x.opt_text("Sporsmal", text_of(d, TextRole::Question));
    x.cv("Formål", r.purpose.as_ref());
    x.opt_text("Begrunnelse", text_of(d, TextRole::Justification));
    x.cs("Hastegrad", r.priority.as_ref());
    x.opt_text(
        "FraDato",
        r.from_date.as_deref().and_then(xs_date).as_deref(),
    );
    x.opt_text("TilDato", r.to_date.as_deref().and_then(xs_date).as_deref());
    for c in &r.record_types {
        x.code("TypeJournalinfo", c, true);
    }
    x.cv("KodetOpplysning", r.coded_info.as_ref());
    x.opt_text("DokIdForesp", r.document_id.as_deref());
    if with_roles {
        roles(x, d);
    }
    x.close();
}

/// MsgHead 1.2 + Dialogmelding 1.1.
pub fn encode_11(msg: &Message) -> Result<String, EncodeError> {
    let d = dialog(msg)?;
    let sender = msg
        .header
        .sender
        .as_ref()
        .ok_or(EncodeError::NoParty("sender"))?;
    let receiver = msg
        .header
        .receiver
        .as_ref()
        .ok_or(EncodeError::NoParty("receiver"))?;
    let kind = super::msg_type(msg);
    let msg_type = if kind.starts_with("DIALOG_") {
        Code {
            code: kind,
            system: None,
            display: msg.header.msg_type_text.clone(),
        }
    } else {
        Code::new("DIALOG_HELSEFAGLIG", None, Some("Helsefaglig dialog"))
    };
    let head = Head {
        msg_type,
        gen_date: gen_date(msg, d.issue_date.as_deref()),
        msg_id: msg_id(msg),
        sender,
        receiver,
        copies: msg
            .header
            .copy_receivers
            .iter()
            .map(|c| (c.role.as_deref(), &c.party))
            .collect(),
        patient: msg.header.patient.as_ref(),
        doc_issue_date: d.issue_date.as_deref(),
    };
    let note_text = d
        .texts
        .iter()
        .any(|t| matches!(t.role, None | Some(TextRole::Note | TextRole::Remark)));
    let write_notat = match &d.request {
        None => true,
        Some(r) => note_text || d.note_date.is_some() || d.topic != r.kind,
    };
    msghead::write(msg, &head, &d.attachments, |x| {
        x.open_with(
            "Dialogmelding",
            &[
                ("xmlns", ns::DIALOG_11),
                ("xmlns:fk1", "http://www.kith.no/xmlstds/felleskomponent1"),
            ],
        );
        x.cv("SakstypeKodet", d.case_type.as_ref());
        x.opt_text("Sakstype", d.case_type_text.as_deref());
        if write_notat {
            x.open("Notat");
            x.code_req("TemaKodet", d.topic.as_ref(), true);
            x.opt_text("Tema", d.topic_text.as_deref());
            let body: Vec<&str> = d
                .texts
                .iter()
                .filter(|t| matches!(t.role, None | Some(TextRole::Note)))
                .map(|t| t.text.as_str())
                .collect();
            if !body.is_empty() {
                x.text("TekstNotatInnhold", &body.join("\n\n"));
            }
            x.opt_text("Merknad", text_of(d, TextRole::Remark));
            let req_doc = d.request.as_ref().and_then(|r| r.document_id.as_deref());
            if d.document_id.as_deref() != req_doc {
                x.opt_text("DokIdNotat", d.document_id.as_deref());
            }
            x.opt_text(
                "DatoNotat",
                d.note_date.as_deref().and_then(xs_date).as_deref(),
            );
            if let Some(r) = &d.request {
                foresporsel(x, d, r, false);
            }
            roles(x, d);
            x.close();
        } else if let Some(r) = &d.request {
            foresporsel(x, d, r, true);
        }
        x.close();
    })
}
