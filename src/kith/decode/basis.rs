//! Basismeldinger (FACTS §4): Henvisning 1.0/1.1 (`Message/ServReq`) and Epikrise 1.x
//! (`Message/ServRprt`). Sender, receiver and patient live inside the body; the header is built
//! from them (AR11 §3.5: the primary receiver is `ServProvider` for a referral, `Requester` for an
//! epicrisis; copy receivers are `CopyDest`).

use super::common::{
    basis_patient, code_at, code_of, dcodes, hcp, s, section, section_of, v_or_text, Notes,
};
use crate::finding::Severity;
use crate::kith::detect::Detected;
use crate::model::{
    Body, CopyReceiver, Diagnosis, Epicrisis, Format, Header, Medication, Organisation, Referral,
    ServiceType, TextSection,
};
use crate::xml::Element;

/// `Diagnosis { Concept }` elements → diagnoses.
pub(crate) fn diagnoses<'a>(
    it: impl Iterator<Item = &'a Element>,
    confirmed: Option<bool>,
) -> Vec<Diagnosis> {
    it.filter_map(|d| code_at(d, "Concept"))
        .map(|code| Diagnosis { code, confirmed })
        .collect()
}

/// `InfItem { ResultItem | Medication | Observation, Type }` → titled texts and medications.
pub(crate) fn inf_items<'a>(
    it: impl Iterator<Item = &'a Element>,
) -> (Vec<TextSection>, Vec<Medication>) {
    let mut texts = Vec::new();
    let mut meds = Vec::new();
    for i in it {
        let heading = code_at(i, "Type");
        if let Some(o) = i.child("Observation") {
            texts.extend(section_of(o.child("Description"), heading.clone()));
            texts.extend(section_of(o.child("Comment"), heading.clone()));
        }
        if let Some(r) = i.child("ResultItem") {
            if let Some(res) = r.at("TextResult/Result") {
                let h = code_at(res, "Heading").or_else(|| heading.clone());
                texts.extend(section_of(res.child("TextResultValue"), h));
            }
            texts.extend(section_of(r.child("Comment"), heading.clone()));
        }
        if let Some(m) = i.child("Medication") {
            let dosage = s(m, "DosageText").or_else(|| s(m, "Comment"));
            meds.push(Medication {
                drug: code_at(m, "DrugId"),
                dosage_text: dosage,
                status: code_at(m, "Status").map(|c| c.code),
            });
        }
    }
    (texts, meds)
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
        format,
        msg_type,
        msg_type_text: root
            .at("Type")
            .and_then(|t| t.attr("DN"))
            .map(|d| d.trim().to_string()),
        msg_id: s(root, "MsgId"),
        gen_date: v_or_text(root, "GenDate"),
        sender: None,
        receiver: None,
        copy_receivers: Vec::new(),
        patient: None,
        conversation: None,
        ack: None,
        processing_status: None,
        fellesformat,
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
    texts.extend(section_of(sr.child("ReqComment"), None));
    let infs = patient_el
        .into_iter()
        .flat_map(|p| p.children_named("InfItem"))
        .chain(sr.children_named("InfItem"));
    let (inf_texts, medications) = inf_items(infs);
    texts.extend(
        sr.children_named("ReasonAsText")
            .filter_map(|r| section(r, "Heading", "TextResultValue")),
    );
    texts.extend(inf_texts);
    texts.extend(
        sr.children_named("Comment")
            .filter_map(|c| section(c, "Heading", "TextResultValue")),
    );
    if let Some(p) = patient_el {
        texts.extend(
            p.children_named("PatientPrecaution")
                .filter_map(|x| section_of(x.child("Precaution"), None)),
        );
    }
    texts.extend(section_of(sr.at("ReqServ/Comment"), None));

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
        observations: Vec::new(),
        medications,
        flags: Vec::new(),
    };
    header.sender = requester;
    header.receiver = provider;
    header.copy_receivers = copies;
    header.patient = patient;
    header.ack = sr.v_at("Ack").map(str::to_string);
    (header, Body::Referral(Box::new(referral)))
}

/// Collect texts, medications and coded diagnoses of an `Event` tree, and the first reported
/// stay's start/end.
#[derive(Default)]
struct EventFacts {
    texts: Vec<TextSection>,
    medications: Vec<Medication>,
    diagnoses: Vec<Diagnosis>,
    admitted: Option<String>,
    discharged: Option<String>,
}

fn event(e: &Element, f: &mut EventFacts) {
    if f.admitted.is_none() {
        f.admitted = v_or_text(e, "ReportedEvent/StartDateTime");
        f.discharged = v_or_text(e, "ReportedEvent/EndDateTime");
    }
    for i in e.children_named("InfItem") {
        // Diagnoses: InfItem Type H (hoveddiagnose) / B (bidiagnose) with Observation/CodedDescr.
        let Some(c) = i.at("Observation/CodedDescr/Concept").and_then(code_of) else {
            continue;
        };
        let typed = matches!(i.v_at("Type"), Some("H" | "B"));
        let diag_system = c
            .system
            .as_deref()
            .is_some_and(|s| s.ends_with(".7110") || s.ends_with(".7170"));
        if typed || diag_system {
            f.diagnoses.push(Diagnosis {
                code: c,
                confirmed: Some(true),
            });
        }
    }
    let (t, m) = inf_items(e.children_named("InfItem"));
    f.texts.extend(t);
    f.medications.extend(m);
    f.texts.extend(
        e.children_named("Comment")
            .filter_map(|c| section(c, "Heading", "TextResultValue")),
    );
    for c in e.children_named("Event") {
        event(c, f);
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
        f.texts.extend(
            p.children_named("PatientPrecaution")
                .filter_map(|x| section_of(x.child("Precaution"), None)),
        );
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
    };
    header.sender = provider;
    header.receiver = requester;
    header.copy_receivers = copies;
    header.patient = patient;
    header.ack = sr.v_at("Ack").map(str::to_string);
    (header, Body::Epicrisis(Box::new(epicrisis)))
}
