//! Henvisning 1.1 (standalone basismelding `Message/ServReq`) and Henvisning 2.0 (in MsgHead 1.2)
//! from a referral.
//!
//! Must not: invent clinical content; texts are placed by their role, texts without a role go
//! where the reason for referral is written.

use super::basis::{
    role_or, write_address, write_consent, write_copy_dests, write_diagnosis, write_fk1_person,
    write_headed, write_inf_items, write_party, write_patient_additional, write_patient_identity,
    write_precautions, write_related_hcp, Basis,
};
use super::msghead::{self, professional, Head};
use super::writer::{xs_date, xs_datetime, Xml};
use super::{body_name, gen_date, msg_id, party, EncodeError};
use crate::kith::ns;
use crate::model::{
    Body, CareProvider, CareProviderRole, Code, CommunicationNeed, Message, Patient, Referral,
    RelatedPerson, ServiceType, TextRole, TextSection,
};

const PO_15: &str = "http://www.kith.no/xmlstds/po/poKomponent/2009-06-30";
const PO_20: &str = "http://ehelse.no/xmlstds/po/poKomponent/2017-11-30";
const FK1: &str = "http://www.kith.no/xmlstds/felleskomponent1";

fn referral(msg: &Message) -> Result<&Referral, EncodeError> {
    match &msg.body {
        Body::Referral(r) => Ok(r),
        _ => Err(EncodeError::WrongBody {
            wanted: "referral",
            body: body_name(msg),
        }),
    }
}

/// The referral's patient (which carries relatives and care providers), else the header's.
fn body_patient<'a>(msg: &'a Message, r: &'a Referral) -> Result<&'a Patient, EncodeError> {
    r.patient
        .as_ref()
        .or(msg.header.patient.as_ref())
        .ok_or(EncodeError::NoPatient("referral"))
}

pub(super) fn service_type_code(s: Option<ServiceType>) -> Code {
    let s = s.unwrap_or(ServiceType::New);
    let dn = match s {
        ServiceType::New => "Ny",
        ServiceType::Change => "Endring",
        ServiceType::Cancellation => "Kansellering",
        ServiceType::Addition => "Tillegg",
    };
    Code::new(s.kith(), None, Some(dn))
}

/// Where each text goes.
struct Placed<'a> {
    req_comment: Option<&'a TextSection>,
    reasons: Vec<&'a TextSection>,
    clinical: Vec<&'a TextSection>,
    comments: Vec<&'a TextSection>,
    precautions: Vec<&'a TextSection>,
    service_comment: Option<&'a TextSection>,
}

fn place(r: &Referral) -> Placed<'_> {
    let mut p = Placed {
        req_comment: None,
        reasons: Vec::new(),
        clinical: Vec::new(),
        comments: Vec::new(),
        precautions: Vec::new(),
        service_comment: None,
    };
    for t in &r.texts {
        match role_or(t, TextRole::Reason) {
            TextRole::RequestComment if p.req_comment.is_none() => p.req_comment = Some(t),
            TextRole::ServiceComment if p.service_comment.is_none() => p.service_comment = Some(t),
            TextRole::ClinicalInfo | TextRole::ClinicalInfoComment => p.clinical.push(t),
            TextRole::Comment => p.comments.push(t),
            TextRole::Precaution => p.precautions.push(t),
            _ => p.reasons.push(t),
        }
    }
    p
}

/// The plan, which has no element of its own, as a reason text without heading.
fn plan_text(r: &Referral) -> Option<TextSection> {
    r.plan.as_ref().map(|p| TextSection {
        text: p.clone(),
        role: Some(TextRole::Reason),
        ..TextSection::default()
    })
}

fn write_relative(x: &mut Xml, p: &RelatedPerson, v20: bool) {
    x.open("po:ParorendeForesatt");
    x.cs("po:Slektskap", p.relationship.as_ref());
    x.cs("po:Omsorgsfunksjon", p.care_function.as_ref());
    if v20 {
        if let Some(b) = p.next_of_kin {
            x.text("po:NarmesteParorende", if b { "true" } else { "false" });
        }
    }
    write_fk1_person(x, "po:Referanseperson", p);
    x.opt_text("po:Merknad", p.note.as_deref());
    x.close();
}

fn is_contact_person(p: &RelatedPerson) -> bool {
    (p.occupation.is_some() || p.workplace.is_some())
        && p.relationship.is_none()
        && p.care_function.is_none()
        && p.next_of_kin.is_none()
}

fn write_communication(x: &mut Xml, c: &CommunicationNeed) {
    x.open("po:AssistertKommunikasjon");
    if let Some(p) = &c.person {
        write_fk1_person(x, "po:PersonTolkebehov", p);
    }
    let b = |v: bool| if v { "true" } else { "false" };
    if let Some(h) = c.hearing_impaired {
        x.text("po:Horselsvikt", b(h));
    }
    if let Some(s) = c.sight_impaired {
        x.text("po:Synsvikt", b(s));
    }
    x.cs("po:BehovTolkSprak", c.language.as_ref());
    x.opt_text("po:Merknad", c.note.as_deref());
    x.close();
}

fn msg_type_11(msg: &Message) -> Code {
    let text = (super::msg_type(msg) == "HENVISNING")
        .then(|| msg.header.msg_type_text.clone())
        .flatten()
        .unwrap_or_else(|| "Henvisning".to_string());
    Code::new("HENVISNING", None, Some(&text))
}

/// Henvisning 1.1.
pub fn encode_11(msg: &Message) -> Result<String, EncodeError> {
    let r = referral(msg)?;
    let patient = body_patient(msg, r)?;
    let requester = party(
        r.requester.as_ref().or(msg.header.sender.as_ref()),
        "requester",
    )?;
    let provider = party(
        r.service_provider.as_ref().or(msg.header.receiver.as_ref()),
        "service provider",
    )?;
    let gen = gen_date(msg, r.issue_date.as_deref());
    let id = msg_id(msg);
    let placed = place(r);
    let b = Basis::Henvisning11;

    let mut x = Xml::new();
    x.open_with(
        "Message",
        &[
            ("xmlns", ns::HENVISNING_11),
            ("xmlns:po", PO_15),
            ("xmlns:fk1", FK1),
        ],
    );
    x.code("Type", &msg_type_11(msg), false);
    x.text("MIGversion", "v1.1 2012-02-15");
    x.v("GenDate", &gen);
    x.text("MsgId", &id);
    if msg.header.processing_status.as_deref() == Some("T") {
        x.empty("Status", &[("V", "TEST"), ("DN", "Melding til testformål")]);
    }
    x.open("ServReq");
    x.code("ServType", &service_type_code(r.service_type), false);
    x.v(
        "IssueDate",
        &super::basis::ts_or(r.issue_date.as_deref(), &gen),
    );
    x.cs("PaymentCat", r.payment_category.as_ref());
    if let Some(t) = placed.req_comment {
        x.text("ReqComment", &t.text);
    }
    if let Some(a) = &msg.header.ack {
        x.code("Ack", &Code::new(a, None, None), false);
    }
    x.code_req("MsgDescr", r.description.as_ref(), false);
    x.text("Id", r.id.as_deref().unwrap_or(&id));

    // Patient
    x.open("Patient");
    x.cs(
        "BasisForHealthServices",
        r.basis_for_health_services.as_ref(),
    );
    let rest = write_patient_identity(&mut x, patient);
    write_precautions(&mut x, placed.precautions.iter().copied(), true);
    write_inf_items(
        &mut x,
        &placed.clinical,
        &r.observations,
        &r.medications,
        false,
        false,
    );
    for c in &patient.care_providers {
        write_related_hcp(&mut x, "PatRelHCP", c, b, true);
    }
    for c in &patient.communication_needs {
        write_communication(&mut x, c);
    }
    for p in patient
        .related_persons
        .iter()
        .filter(|p| !is_contact_person(p))
    {
        write_relative(&mut x, p, false);
    }
    for p in patient
        .related_persons
        .iter()
        .filter(|p| is_contact_person(p))
    {
        x.open("ContactPerson");
        x.opt_text("OccupationRole", p.occupation.as_deref());
        x.opt_text("WorkingPlace", p.workplace.as_deref());
        write_fk1_person(&mut x, "Referanseperson", p);
        x.opt_text("Merknad", p.note.as_deref());
        x.close();
    }
    if let Some(c) = r.consents.first() {
        write_consent(&mut x, c, false);
    }
    write_patient_additional(&mut x, &rest);
    write_address(&mut x, patient.address.as_ref(), &patient.telecom, true);
    x.close();

    write_party(&mut x, "ServProvider", provider, b);
    write_party(&mut x, "Requester", requester, b);
    write_copy_dests(&mut x, &msg.header.copy_receivers, b);
    for a in &r.attachments {
        x.open("RefDoc");
        msghead::write_attachment(&mut x, a);
        x.close();
    }
    let plan = plan_text(r);
    for t in placed.reasons.iter().copied().chain(plan.as_ref()) {
        write_headed(&mut x, "ReasonAsText", t, false, "TextCode", false);
    }
    for d in &r.diagnoses {
        write_diagnosis(&mut x, "Diagnosis", d);
    }
    x.open("ReqServ");
    x.code(
        "ServType",
        &service_type_code(r.requested_service_type.or(r.service_type)),
        false,
    );
    x.cs("Purpose", r.purpose.as_ref());
    x.opt_ts("ReqDate", r.requested_date.as_deref());
    x.code_req("Priority", r.priority.as_ref(), false);
    if let Some(t) = placed.service_comment {
        x.text("Comment", &t.text);
    }
    if let Some(s) = &r.requested_specialty {
        x.open("Service");
        x.cv("MedSpeciality", Some(s));
        x.close();
    }
    x.close();
    for t in &placed.comments {
        write_headed(&mut x, "Comment", t, false, "CodedComment", true);
    }
    x.close();
    Ok(x.finish())
}

fn write_po_care_provider(x: &mut Xml, c: &CareProvider) {
    let Some(p) = c
        .party
        .professional
        .as_ref()
        .filter(|p| !p.idents.is_empty())
    else {
        return;
    };
    let responsible = match c.role {
        Some(CareProviderRole::Responsible) => true,
        Some(CareProviderRole::Contact) => false,
        None => c.relation.is_some(),
    };
    if responsible {
        x.open("po:AnsvarForRapport");
        professional(x, "po:AnsvarligRapport", "fk1:", "fk1:", p, false);
        x.cv("po:TypeRelasjon", c.relation.as_ref());
    } else {
        x.open("po:KontaktpersonHelsepersonell");
        professional(x, "po:Kontaktperson", "fk1:", "fk1:", p, false);
    }
    x.opt_text("po:Merknad", c.note.as_deref());
    x.close();
}

fn msg_type_20(msg: &Message) -> Code {
    let kind = super::msg_type(msg);
    if kind.starts_with("HENVISNING_") {
        return Code {
            code: kind,
            system: None,
            display: msg.header.msg_type_text.clone(),
        };
    }
    Code::new(
        "HENVISNING_NYTILSTAND",
        None,
        Some("Henvisning ny tilstand"),
    )
}

/// MsgHead 1.2 + Henvisning 2.0.
pub fn encode_20(msg: &Message) -> Result<String, EncodeError> {
    let r = referral(msg)?;
    let patient = body_patient(msg, r)?;
    let head_patient = msg.header.patient.as_ref().unwrap_or(patient);
    let sender = party(
        msg.header.sender.as_ref().or(r.requester.as_ref()),
        "sender",
    )?;
    let receiver = party(
        msg.header.receiver.as_ref().or(r.service_provider.as_ref()),
        "receiver",
    )?;
    let gen = gen_date(msg, r.issue_date.as_deref());
    let id = msg_id(msg);
    let copies = msg
        .header
        .copy_receivers
        .iter()
        .map(|c| (c.role.as_deref(), &c.party))
        .collect();
    let head = Head {
        msg_type: msg_type_20(msg),
        gen_date: gen.clone(),
        msg_id: id.clone(),
        sender,
        receiver,
        copies,
        patient: Some(head_patient),
        doc_issue_date: None,
    };
    let placed = place(r);
    msghead::write(msg, &head, &r.attachments, |x| {
        x.open_with(
            "Henvisning",
            &[
                ("xmlns", ns::HENVISNING_20),
                ("xmlns:po", PO_20),
                ("xmlns:fk1", FK1),
            ],
        );
        x.code("ServType", &service_type_code(r.service_type), false);
        x.text(
            "IssueDate",
            &r.issue_date
                .as_deref()
                .and_then(xs_datetime)
                .unwrap_or_else(|| gen.clone()),
        );
        x.cs("PaymentCat", r.payment_category.as_ref());
        if let Some(t) = placed.req_comment {
            x.text("ReqComment", &t.text);
        }
        // A 1.x referral has one id; 2.0 separates the document id from the MsgId.
        let doc_id = r
            .document_id
            .as_deref()
            .or(r.id.as_deref().filter(|i| *i != id))
            .unwrap_or(&id);
        x.text("DocumentId", doc_id);
        x.cs(
            "BasisForHealthServices",
            r.basis_for_health_services.as_ref(),
        );
        if let Some(m) = &patient.marital_status {
            x.open("po:TilleggsopplysningPasient");
            x.cs("po:SivilStatus", Some(m));
            x.close();
        }
        for p in &patient.related_persons {
            write_relative(x, p, true);
        }
        let contacts = patient
            .care_providers
            .iter()
            .filter(|c| c.role == Some(CareProviderRole::Contact));
        let others = patient
            .care_providers
            .iter()
            .filter(|c| c.role != Some(CareProviderRole::Contact));
        for c in contacts {
            write_po_care_provider(x, c);
        }
        for c in others {
            write_po_care_provider(x, c);
        }
        x.open("po:TypeInnholdIMelding");
        x.code_req("po:TypeInnhold", r.description.as_ref(), true);
        x.close();
        for c in &patient.communication_needs {
            x.open("po:InfoAssistertKommunikasjon");
            write_communication(x, c);
            x.close();
        }
        write_precautions(x, placed.precautions.iter().copied(), false);
        write_inf_items(
            x,
            &placed.clinical,
            &r.observations,
            &r.medications,
            true,
            false,
        );
        let plan = plan_text(r);
        for t in placed.reasons.iter().copied().chain(plan.as_ref()) {
            write_headed(x, "ReasonAsText", t, true, "TextCode", false);
        }
        for d in &r.diagnoses {
            write_diagnosis(x, "Diagnosis", d);
        }
        x.open("ReqServ");
        x.code(
            "ServType",
            &service_type_code(r.requested_service_type.or(r.service_type)),
            false,
        );
        if let Some(d) = r.requested_date.as_deref().and_then(xs_date) {
            x.text("ReqDate", &d);
        }
        x.code_req("Priority", r.priority.as_ref(), false);
        if let Some(t) = placed.service_comment {
            x.text("Comment", &t.text);
        }
        x.close();
        for t in &placed.comments {
            write_headed(x, "Comment", t, true, "CodedComment", false);
        }
        if let Some(a) = &r.assessment {
            if !a.dates.is_empty() {
                x.open("VurderingAvHenvisning");
                for d in &a.dates {
                    let Some(date) = xs_date(&d.date) else {
                        continue;
                    };
                    x.open("DatoMottakOgVurdering");
                    x.code("TypeDato", &d.kind, true);
                    x.text("Dato", &date);
                    x.close();
                }
                if let (Some(pid), Some(ent)) = (&a.pathway_id, a.entitled) {
                    x.open("Opplysninger");
                    if let Some(f) = a.free_choice {
                        x.text("FrittSykehusvalg", if f { "true" } else { "false" });
                    }
                    x.cv("VentetidSluttkode", a.waiting_end.as_ref());
                    x.text("ForlopsId", pid);
                    x.text("RettTilHelsehjelp", if ent { "true" } else { "false" });
                    x.code_req("UtfallAvVurdering", a.outcome.as_ref(), true);
                    x.close();
                }
                x.close();
            }
        }
        for p in &r.care_pathways {
            x.open("Pakkeforlop");
            x.code("Pakkeforlopskode", &p.code, true);
            x.opt_text("Merknad", p.note.as_deref());
            x.close();
        }
        for c in &r.consents {
            write_consent(x, c, true);
        }
        x.close();
    })
}
