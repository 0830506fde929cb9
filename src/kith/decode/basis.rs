//! Basismeldinger (FACTS §4): Henvisning 1.0/1.1 (`Message/ServReq`) and Epikrise 1.x
//! (`Message/ServRprt`). Sender, receiver and patient live inside the body; the header is built
//! from them (AR11 §3.5: the primary receiver is `ServProvider` for a referral, `Requester` for an
//! epicrisis; copy receivers are `CopyDest`).

use super::common::{
    attachment, basis_patient, code_at, consent, dcodes, hcp, modifiers, quantity, related_hcp, s,
    section, section_of, v_or_text, Notes,
};
use crate::finding::Severity;
use crate::kith::detect::Detected;
use crate::model::{
    Body, CopyReceiver, Diagnosis, DiagnosisRank, Epicrisis, Format, Header, Medication,
    Observation, Organisation, Referral, ServiceType, TextRole, TextSection,
};
use crate::xml::Element;

/// `Diagnosis { Concept, Modifier* }` elements → diagnoses.
pub(crate) fn diagnoses<'a>(
    it: impl Iterator<Item = &'a Element>,
    confirmed: Option<bool>,
) -> Vec<Diagnosis> {
    it.filter_map(|d| {
        Some(Diagnosis {
            code: code_at(d, "Concept")?,
            confirmed,
            rank: None,
            modifiers: modifiers(d),
        })
    })
    .collect()
}

/// What the `InfItem`s of a document hold.
#[derive(Default)]
pub(crate) struct InfItems {
    pub texts: Vec<TextSection>,
    pub medications: Vec<Medication>,
    pub observations: Vec<Observation>,
}

/// `InfItem { ResultItem | Medication | Observation, Type, StartDateTime?, EndDateTime? }` →
/// titled texts (role ClinicalInfo / ClinicalInfoComment), numeric results and medications.
/// Coded descriptions (`Observation/CodedDescr`) are read by the epicrisis decoder as diagnoses.
pub(crate) fn inf_items<'a>(it: impl Iterator<Item = &'a Element>) -> InfItems {
    let mut out = InfItems::default();
    for i in it {
        let heading = code_at(i, "Type");
        let start = v_or_text(i, "StartDateTime");
        let end = v_or_text(i, "EndDateTime");
        let dated = |mut t: TextSection| {
            t.start = start.clone();
            t.end = end.clone();
            t
        };
        if let Some(o) = i.child("Observation") {
            out.texts.extend(
                section_of(
                    o.child("Description"),
                    heading.clone(),
                    TextRole::ClinicalInfo,
                )
                .map(dated),
            );
            out.texts.extend(
                section_of(
                    o.child("Comment"),
                    heading.clone(),
                    TextRole::ClinicalInfoComment,
                )
                .map(dated),
            );
        }
        if let Some(r) = i.child("ResultItem") {
            if let Some(n) = r.child("NumResult") {
                let v = n.child("NumResultValue");
                out.observations.push(Observation {
                    code: code_at(r, "ClinInv/Id").unwrap_or_default(),
                    value: v
                        .and_then(|v| v.attr("V"))
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|v| v.is_finite()),
                    value_code: None,
                    unit: v
                        .and_then(|v| v.attr("U"))
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                        .map(str::to_string),
                    time: v_or_text(r, "InvDate"),
                    interpretation: code_at(r, "DevResultInd"),
                    comment: s(r, "Comment"),
                    category: heading.clone(),
                });
                continue;
            }
            if let Some(res) = r.at("TextResult/Result") {
                let h = code_at(res, "Heading").or_else(|| heading.clone());
                out.texts.extend(
                    section_of(res.child("TextResultValue"), h, TextRole::ClinicalInfo).map(dated),
                );
            }
            out.texts.extend(
                section_of(
                    r.child("Comment"),
                    heading.clone(),
                    TextRole::ClinicalInfoComment,
                )
                .map(dated),
            );
        }
        if let Some(m) = i.child("Medication") {
            let comment = s(m, "Comment");
            let status = code_at(m, "Status");
            out.medications.push(Medication {
                drug: code_at(m, "DrugId"),
                dosage_text: s(m, "DosageText").or_else(|| comment.clone()),
                status: status.as_ref().map(|c| c.code.clone()),
                status_text: status.and_then(|c| c.display),
                comment,
                dosage_code: code_at(m, "DosageCoded"),
                form: code_at(m, "Form"),
                route: code_at(m, "RouteOfAdm"),
                unit_dose: quantity(m.child("UnitDose")),
                intended_duration: quantity(m.child("IntendedDuration")),
                quantity_supplied: quantity(m.child("QuantitySupplied")),
                start: start.clone(),
                end: end.clone(),
                category: heading.clone(),
            });
        }
    }
    out
}

/// `PatientPrecaution { Precaution, StartDateTime?, EndDateTime? }` → texts (role Precaution).
pub(crate) fn precautions<'a>(it: impl Iterator<Item = &'a Element>) -> Vec<TextSection> {
    it.filter_map(|x| {
        let mut t = section_of(x.child("Precaution"), None, TextRole::Precaution)?;
        t.start = v_or_text(x, "StartDateTime");
        t.end = v_or_text(x, "EndDateTime");
        Some(t)
    })
    .collect()
}

/// `ReasonAsText`, `Comment` (headed texts with coded statements).
pub(crate) fn headed<'a>(
    it: impl Iterator<Item = &'a Element>,
    codes: &str,
    role: TextRole,
) -> Vec<TextSection> {
    it.filter_map(|r| section(r, "Heading", "TextResultValue", codes, role))
        .collect()
}

fn party(e: Option<&Element>, path: &str, notes: &mut Notes) -> Option<Organisation> {
    let h = e?.child("HCP")?;
    let (org, extra) = hcp(h);
    if extra > 0 {
        notes.note(
            dcodes::EXTRA_PARTS_IGNORED,
            Severity::Info,
            format!("{path}/HCP/Inst"),
            format!("{extra} further Dept/HCPerson entries beyond the first were not read"),
        );
    }
    Some(org)
}

fn copy_dests(parent: &Element, path: &str, notes: &mut Notes) -> Vec<CopyReceiver> {
    parent
        .children_named("CopyDest")
        .filter_map(|c| {
            let party = party(Some(c), &format!("{path}/CopyDest"), notes)?;
            Some(CopyReceiver {
                role: c.v_at("Role").map(str::to_string),
                party,
            })
        })
        .collect()
}

/// The header fields of `Message` itself.
fn message_header(
    root: &Element,
    format: Format,
    default_type: &str,
    fellesformat: bool,
    notes: &mut Notes,
) -> Header {
    let msg_type = root.v_at("Type").map(str::to_string).unwrap_or_else(|| {
        notes.note(
            dcodes::MSG_TYPE_MISSING,
            Severity::Info,
            "/Message/Type",
            format!("Message has no Type code; {default_type} assumed from the namespace"),
        );
        default_type.to_string()
    });
    // Older senders write the short codes of the 1.0 era (`H`, `E`); the 8279 code is the
    // namespace's type, which is what receipts and reports use.
    let msg_type = if msg_type.len() <= 2 && msg_type != default_type {
        notes.note(
            dcodes::MSG_TYPE_MISSING,
            Severity::Info,
            "/Message/Type",
            format!("short type code {msg_type:?} read as {default_type}"),
        );
        default_type.to_string()
    } else {
        msg_type
    };
    Header {
        msg_type,
        msg_type_text: root
            .at("Type")
            .and_then(|t| t.attr("DN"))
            .map(|d| d.trim().to_string()),
        msg_id: s(root, "MsgId"),
        gen_date: v_or_text(root, "GenDate"),
        // Basismelding `Status` TEST (message for test purposes) is MsgHead's processing status T.
        processing_status: (root.v_at("Status") == Some("TEST")).then(|| "T".to_string()),
        fellesformat,
        ..Header::new(format, "")
    }
}

pub(crate) fn decode_henvisning(d: &Detected<'_>, notes: &mut Notes) -> (Header, Body) {
    let root = d.root;
    let mut header = message_header(root, d.format, "HENVISNING", d.fellesformat, notes);
    let Some(sr) = root.child("ServReq") else {
        return (header, Body::Referral(Box::default()));
    };
    let base = "/Message/ServReq";
    let patient_el = sr.child("Patient");
    let patient = patient_el.map(|p| basis_patient(p, &format!("{base}/Patient"), notes));
    let requester = party(sr.child("Requester"), &format!("{base}/Requester"), notes);
    let provider = party(
        sr.child("ServProvider"),
        &format!("{base}/ServProvider"),
        notes,
    );
    let copies = copy_dests(sr, base, notes);

    let mut texts = Vec::new();
    texts.extend(section_of(
        sr.child("ReqComment"),
        None,
        TextRole::RequestComment,
    ));
    let infs = patient_el
        .into_iter()
        .flat_map(|p| p.children_named("InfItem"))
        .chain(sr.children_named("InfItem"));
    let inf = inf_items(infs);
    texts.extend(headed(
        sr.children_named("ReasonAsText"),
        "TextCode",
        TextRole::Reason,
    ));
    texts.extend(inf.texts);
    texts.extend(headed(
        sr.children_named("Comment"),
        "CodedComment",
        TextRole::Comment,
    ));
    if let Some(p) = patient_el {
        texts.extend(precautions(p.children_named("PatientPrecaution")));
    }
    texts.extend(section_of(
        sr.at("ReqServ/Comment"),
        None,
        TextRole::ServiceComment,
    ));
    let medications = inf.medications;

    let referral = Referral {
        id: s(sr, "Id"),
        service_type: sr.v_at("ServType").and_then(ServiceType::from_kith),
        issue_date: v_or_text(sr, "IssueDate"),
        priority: code_at(sr, "ReqServ/Priority"),
        description: code_at(sr, "MsgDescr"),
        patient: patient.clone(),
        requester: requester.clone(),
        service_provider: provider.clone(),
        copy_to: copies.iter().map(|c| c.party.clone()).collect(),
        diagnoses: diagnoses(sr.children_named("Diagnosis"), None),
        texts,
        plan: None,
        observations: inf.observations,
        medications,
        flags: Vec::new(),
        document_id: None,
        payment_category: code_at(sr, "PaymentCat"),
        basis_for_health_services: patient_el.and_then(|p| code_at(p, "BasisForHealthServices")),
        requested_service_type: sr.v_at("ReqServ/ServType").and_then(ServiceType::from_kith),
        purpose: code_at(sr, "ReqServ/Purpose"),
        requested_date: v_or_text(sr, "ReqServ/ReqDate"),
        requested_specialty: code_at(sr, "ReqServ/Service/MedSpeciality"),
        received_date: None,
        consents: patient_el
            .and_then(|p| p.child("Consent"))
            .map(consent)
            .into_iter()
            .collect(),
        assessment: None,
        care_pathways: Vec::new(),
        attachments: sr.children_named("RefDoc").filter_map(attachment).collect(),
    };
    header.sender = requester;
    header.receiver = provider;
    header.copy_receivers = copies;
    header.patient = patient;
    header.ack = sr.v_at("Ack").map(str::to_string);
    (header, Body::Referral(Box::new(referral)))
}

/// Collect texts, medications, results and coded diagnoses of an `Event` tree, and the first
/// reported stay's start/end, kind of stay and outcome.
#[derive(Default)]
struct EventFacts {
    texts: Vec<TextSection>,
    medications: Vec<Medication>,
    observations: Vec<Observation>,
    diagnoses: Vec<Diagnosis>,
    admitted: Option<String>,
    discharged: Option<String>,
    admission_category: Option<crate::model::Code>,
    discharge_outcome: Option<crate::model::Code>,
}

fn event(e: &Element, f: &mut EventFacts) {
    if f.admitted.is_none() {
        f.admitted = v_or_text(e, "ReportedEvent/StartDateTime");
        f.discharged = v_or_text(e, "ReportedEvent/EndDateTime");
    }
    if f.admission_category.is_none() {
        f.admission_category = code_at(e, "Service/AdmCat");
    }
    if f.discharge_outcome.is_none() {
        f.discharge_outcome = code_at(e, "AdmOutcome");
    }
    for i in e.children_named("InfItem") {
        // Diagnoses: InfItem Type H (hoveddiagnose) / B (bidiagnose) with Observation/CodedDescr.
        let Some(cd) = i.at("Observation/CodedDescr") else {
            continue;
        };
        let Some(c) = code_at(cd, "Concept") else {
            continue;
        };
        let rank = match i.v_at("Type") {
            Some("H") => Some(DiagnosisRank::Main),
            Some("B") => Some(DiagnosisRank::Secondary),
            _ => None,
        };
        let diag_system = c
            .system
            .as_deref()
            .is_some_and(|s| s.ends_with(".7110") || s.ends_with(".7170"));
        if rank.is_some() || diag_system {
            f.diagnoses.push(Diagnosis {
                code: c,
                confirmed: Some(true),
                rank,
                modifiers: modifiers(cd),
            });
        }
    }
    let inf = inf_items(e.children_named("InfItem"));
    f.texts.extend(inf.texts);
    f.medications.extend(inf.medications);
    f.observations.extend(inf.observations);
    f.texts.extend(headed(
        e.children_named("Comment"),
        "TextCode",
        TextRole::Comment,
    ));
    for c in e.children_named("Event") {
        event(c, f);
    }
}

/// The referral an epicrisis answers, as `ServRprt/ServReq` repeats it.
fn answered_referral(r: &Element) -> Referral {
    Referral {
        id: s(r, "Id"),
        service_type: r.v_at("ServType").and_then(ServiceType::from_kith),
        issue_date: v_or_text(r, "IssueDate"),
        received_date: v_or_text(r, "ReceiptDate"),
        description: code_at(r, "MsgDescr"),
        diagnoses: diagnoses(r.children_named("Diagnosis"), None),
        texts: section_of(r.child("ReqComment"), None, TextRole::RequestComment)
            .into_iter()
            .chain(headed(
                r.children_named("ReasonAsText"),
                "TextCode",
                TextRole::Reason,
            ))
            .collect(),
        ..Referral::default()
    }
}

pub(crate) fn decode_epikrise(d: &Detected<'_>, notes: &mut Notes) -> (Header, Body) {
    let root = d.root;
    let mut header = message_header(root, d.format, "EPIKRISE", d.fellesformat, notes);
    let Some(sr) = root.child("ServRprt") else {
        return (header, Body::Epicrisis(Box::default()));
    };
    let base = "/Message/ServRprt";
    let patient_el = sr.child("Patient");
    let patient = patient_el.map(|p| basis_patient(p, &format!("{base}/Patient"), notes));
    let requester = party(sr.child("Requester"), &format!("{base}/Requester"), notes);
    let provider = party(
        sr.child("ServProvider"),
        &format!("{base}/ServProvider"),
        notes,
    );
    let copies = copy_dests(sr, base, notes);

    let mut f = EventFacts::default();
    for e in sr.children_named("Event") {
        event(e, &mut f);
    }
    if let Some(p) = patient_el {
        f.texts
            .extend(precautions(p.children_named("PatientPrecaution")));
    }
    // Without coded discharge diagnoses, keep the referral's diagnoses (not confirmed).
    if f.diagnoses.is_empty() {
        f.diagnoses = diagnoses(
            sr.children_named("ServReq")
                .flat_map(|r| r.children_named("Diagnosis")),
            None,
        );
    }
    let epicrisis = Epicrisis {
        id: s(sr, "ServProvId").or_else(|| s(sr, "Id")),
        referral_id: s(sr, "ServReq/Id"),
        service_type: sr.v_at("ServType").and_then(ServiceType::from_kith),
        status: sr.v_at("Status").map(str::to_string),
        issue_date: v_or_text(sr, "IssueDate"),
        patient: patient.clone(),
        service_provider: provider.clone(),
        requester: requester.clone(),
        copy_to: copies.iter().map(|c| c.party.clone()).collect(),
        diagnoses: f.diagnoses,
        texts: f.texts,
        medications: f.medications,
        admitted: f.admitted,
        discharged: f.discharged,
        approved_date: v_or_text(sr, "ApprDate"),
        title: s(sr, "MsgDescr"),
        priority: code_at(sr, "Priority"),
        referral: sr.child("ServReq").map(|r| Box::new(answered_referral(r))),
        admission_category: f.admission_category,
        discharge_outcome: f.discharge_outcome,
        observations: f.observations,
        care_providers: sr
            .children_named("RelServProvider")
            .filter_map(related_hcp)
            .collect(),
        attachments: sr.children_named("RefDoc").filter_map(attachment).collect(),
    };
    header.sender = provider;
    header.receiver = requester;
    header.copy_receivers = copies;
    header.patient = patient;
    header.ack = sr.v_at("Ack").map(str::to_string);
    (header, Body::Epicrisis(Box::new(epicrisis)))
}
