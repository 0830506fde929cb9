//! Epikrise 1.2 (standalone basismelding `Message/ServRprt`) from an epicrisis: the answered
//! referral as `ServReq`, the stay as one `Event` holding diagnoses, clinical items, results,
//! medications and headed comments.
//!
//! Must not: write the referral's diagnoses a second time as discharge diagnoses (the decoder
//! falls back to them when no discharge diagnosis is coded).

use super::basis::{
    role_or, ts_or, write_address, write_copy_dests, write_diagnosis, write_headed,
    write_inf_items, write_party, write_patient_additional, write_patient_identity,
    write_precautions, write_related_hcp, Basis,
};
use super::henvisning::service_type_code;
use super::writer::Xml;
use super::{body_name, gen_date, msg_id, party, EncodeError};
use crate::kith::ns;
use crate::model::{Body, Code, DiagnosisRank, Epicrisis, Message, TextRole, TextSection};

fn epicrisis(msg: &Message) -> Result<&Epicrisis, EncodeError> {
    match &msg.body {
        Body::Epicrisis(e) => Ok(e),
        _ => Err(EncodeError::WrongBody {
            wanted: "epicrisis",
            body: body_name(msg),
        }),
    }
}

/// Epikrise 1.2.
pub fn encode_12(msg: &Message) -> Result<String, EncodeError> {
    let e = epicrisis(msg)?;
    let patient = e
        .patient
        .as_ref()
        .or(msg.header.patient.as_ref())
        .ok_or(EncodeError::NoPatient("epicrisis"))?;
    let provider = party(
        e.service_provider.as_ref().or(msg.header.sender.as_ref()),
        "service provider",
    )?;
    let requester = party(
        e.requester.as_ref().or(msg.header.receiver.as_ref()),
        "requester",
    )?;
    let gen = gen_date(msg, e.issue_date.as_deref());
    let id = msg_id(msg);
    let b = Basis::Epikrise12;

    let mut x = Xml::new();
    x.open_with("Message", &[("xmlns", ns::EPIKRISE_12)]);
    let type_text = (super::msg_type(msg) == "EPIKRISE")
        .then(|| msg.header.msg_type_text.clone())
        .flatten()
        .unwrap_or_else(|| "Epikrise".to_string());
    x.code(
        "Type",
        &Code::new("EPIKRISE", None, Some(&type_text)),
        false,
    );
    x.text("MIGversion", "v1.2 2012-02-15");
    x.v("GenDate", &gen);
    x.text("MsgId", &id);
    if msg.header.processing_status.as_deref() == Some("T") {
        x.empty("Status", &[("V", "TEST"), ("DN", "Melding til testformål")]);
    }
    x.open("ServRprt");
    x.code("ServType", &service_type_code(e.service_type), false);
    x.v("IssueDate", &ts_or(e.issue_date.as_deref(), &gen));
    x.opt_ts("ApprDate", e.approved_date.as_deref());
    let status = e.status.as_deref().unwrap_or("F");
    let status_dn = match status {
        "F" => Some("Endelig rapport"),
        "P" => Some("Foreløpig rapport"),
        _ => None,
    };
    x.code("Status", &Code::new(status, None, status_dn), false);
    x.cs("Priority", e.priority.as_ref());
    if let Some(a) = &msg.header.ack {
        x.code("Ack", &Code::new(a, None, None), false);
    }
    x.text("MsgDescr", e.title.as_deref().unwrap_or("Epikrise"));
    x.opt_text("ServProvId", e.id.as_deref());

    // The answered referral.
    let referral_id = e
        .referral
        .as_ref()
        .and_then(|r| r.id.as_deref())
        .or(e.referral_id.as_deref());
    if let Some(rid) = referral_id {
        x.open("ServReq");
        let r = e.referral.as_deref();
        x.code(
            "ServType",
            &service_type_code(r.and_then(|r| r.service_type)),
            false,
        );
        match r
            .and_then(|r| r.issue_date.as_deref())
            .and_then(super::writer::ts)
        {
            Some(d) => x.v("IssueDate", &d),
            None => x.empty("IssueDate", &[]),
        }
        x.opt_ts("ReceiptDate", r.and_then(|r| r.received_date.as_deref()));
        let texts: &[TextSection] = r.map(|r| r.texts.as_slice()).unwrap_or(&[]);
        if let Some(t) = texts
            .iter()
            .find(|t| t.role == Some(TextRole::RequestComment))
        {
            x.text("ReqComment", &t.text);
        }
        x.code_req("MsgDescr", r.and_then(|r| r.description.as_ref()), false);
        x.text("Id", rid);
        for t in texts
            .iter()
            .filter(|t| t.role != Some(TextRole::RequestComment))
        {
            write_headed(&mut x, "ReasonAsText", t, false, "TextCode", false);
        }
        let diags = r.map(|r| r.diagnoses.as_slice()).unwrap_or(&[]);
        if diags.is_empty() {
            x.open("Diagnosis");
            x.code_req("Concept", None, true);
            x.close();
        }
        for d in diags {
            write_diagnosis(&mut x, "Diagnosis", d);
        }
        x.close();
    }

    // The stay.
    let referral_diags = e.referral.as_ref().map(|r| r.diagnoses.as_slice());
    let discharge_diags: Vec<_> = e
        .diagnoses
        .iter()
        .filter(|d| {
            d.confirmed == Some(true)
                || d.rank.is_some()
                || !referral_diags.is_some_and(|rd| rd.iter().any(|r| r.code == d.code))
        })
        .collect();
    let mut clinical = Vec::new();
    let mut comments = Vec::new();
    let mut precautions = Vec::new();
    for t in &e.texts {
        match role_or(t, TextRole::Comment) {
            TextRole::ClinicalInfo | TextRole::ClinicalInfoComment => clinical.push(t),
            TextRole::Precaution => precautions.push(t),
            _ => comments.push(t),
        }
    }
    let has_event = e.admitted.is_some()
        || e.discharged.is_some()
        || e.admission_category.is_some()
        || e.discharge_outcome.is_some()
        || !discharge_diags.is_empty()
        || !clinical.is_empty()
        || !comments.is_empty()
        || !e.medications.is_empty()
        || !e.observations.is_empty();
    if has_event {
        x.open("Event");
        x.open("ReportedEvent");
        x.v(
            "StartDateTime",
            &ts_or(e.admitted.as_deref(), &ts_or(e.issue_date.as_deref(), &gen)),
        );
        x.opt_ts("EndDateTime", e.discharged.as_deref());
        x.close();
        x.code("ServType", &service_type_code(e.service_type), false);
        x.cs("AdmOutcome", e.discharge_outcome.as_ref());
        x.open("Service");
        x.cs("AdmCat", e.admission_category.as_ref());
        x.close();
        for d in &discharge_diags {
            x.open("InfItem");
            x.open("Observation");
            write_diagnosis(&mut x, "CodedDescr", d);
            x.close();
            let t = match d.rank {
                Some(DiagnosisRank::Main) => Some(Code::new("H", None, Some("Hoveddiagnose"))),
                Some(DiagnosisRank::Secondary) => Some(Code::new("B", None, Some("Bidiagnose"))),
                None => None,
            };
            x.code_req("Type", t.as_ref(), false);
            x.close();
        }
        write_inf_items(
            &mut x,
            &clinical,
            &e.observations,
            &e.medications,
            false,
            true,
        );
        for t in &comments {
            write_headed(&mut x, "Comment", t, false, "TextCode", false);
        }
        x.close();
    }

    x.open("Patient");
    let rest = write_patient_identity(&mut x, patient);
    write_precautions(&mut x, precautions.into_iter(), true);
    for p in &patient.related_persons {
        x.open("PatientRelParty");
        x.code_req("Relation", p.relationship.as_ref(), false);
        x.opt_text(
            "Name",
            super::basis::one_name(
                p.full_name.as_deref(),
                p.family_name.as_deref(),
                p.given_name.as_deref(),
                p.middle_name.as_deref(),
            )
            .as_deref(),
        );
        x.opt_text("RelPartyOffId", p.idents.first().map(|i| i.id.as_str()));
        write_address(&mut x, p.address.as_ref(), &p.telecom, true);
        x.close();
    }
    for c in &patient.care_providers {
        write_related_hcp(&mut x, "PatRelHCP", c, b, true);
    }
    write_patient_additional(&mut x, &rest);
    write_address(&mut x, patient.address.as_ref(), &patient.telecom, true);
    x.close();

    write_party(&mut x, "ServProvider", provider, b);
    write_copy_dests(&mut x, &msg.header.copy_receivers, b);
    write_party(&mut x, "Requester", requester, b);
    for c in &e.care_providers {
        write_related_hcp(&mut x, "RelServProvider", c, b, false);
    }
    for a in &e.attachments {
        x.open("RefDoc");
        super::msghead::write_attachment(&mut x, a);
        x.close();
    }
    x.close();
    Ok(x.finish())
}
