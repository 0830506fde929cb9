//! Shapes shared by the basismelding encoders (Henvisning 1.1, Epikrise 1.2): the `HCP` party
//! chain, the patient, clinical information items, diagnoses and headed texts.
//!
//! Must not: write anything not in the model except the documented "not given" codes.

use super::writer::{ts, Xml};
use crate::model::{
    Address, CareProvider, Code, Diagnosis, Ident, Medication, Observation, Organisation, Patient,
    Professional, RelatedPerson, Sex, Telecom, TextRole, TextSection,
};

/// Which basismelding schema is written: element order and a few elements differ.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    Henvisning11,
    Epikrise12,
}

pub fn sex_code(s: Sex) -> Code {
    let (v, dn) = match s {
        Sex::Male => ("1", "Mann"),
        Sex::Female => ("2", "Kvinne"),
        Sex::Other => ("9", "Ikke anvendelig"),
        Sex::Unknown => ("0", "Ikke kjent"),
    };
    Code::new(v, None, Some(dn))
}

pub use crate::kith::apprec::id_type_text;

/// A name as one string: the model's `full_name`, else "Family, Given Middle".
pub fn one_name(
    full: Option<&str>,
    family: Option<&str>,
    given: Option<&str>,
    middle: Option<&str>,
) -> Option<String> {
    if let Some(f) = full.filter(|f| !f.trim().is_empty()) {
        return Some(f.trim().to_string());
    }
    let given: Vec<&str> = [given, middle]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    match (
        family.map(str::trim).filter(|s| !s.is_empty()),
        given.is_empty(),
    ) {
        (Some(f), false) => Some(format!("{f}, {}", given.join(" "))),
        (Some(f), true) => Some(f.to_string()),
        (None, false) => Some(given.join(" ")),
        (None, true) => None,
    }
}

fn pro_name(p: &Professional) -> Option<String> {
    one_name(
        p.full_name.as_deref(),
        p.family_name.as_deref(),
        p.given_name.as_deref(),
        p.middle_name.as_deref(),
    )
}

/// `Id`, `TypeId` (first identifier, HER preferred) and the rest as `AdditionalId`s.
fn id_pair(idents: &[Ident]) -> (Option<&Ident>, Vec<&Ident>) {
    let first = idents
        .iter()
        .position(|i| i.is("HER"))
        .or((!idents.is_empty()).then_some(0));
    let rest = idents
        .iter()
        .enumerate()
        .filter(|(n, _)| Some(*n) != first)
        .map(|(_, i)| i)
        .collect();
    (first.map(|n| &idents[n]), rest)
}

fn write_id(x: &mut Xml, i: Option<&Ident>) {
    if let Some(i) = i {
        x.text("Id", i.id.trim());
        if !i.kind.trim().is_empty() {
            let k = i.kind.trim();
            x.code("TypeId", &Code::new(k, None, id_type_text(k)), false);
        }
    }
}

fn write_additional(x: &mut Xml, rest: &[&Ident]) {
    for i in rest {
        additional_id(x, &i.id, &i.kind);
    }
}

/// One `AdditionalId { Id, Type }`.
fn additional_id(x: &mut Xml, id: &str, kind: &str) {
    x.open("AdditionalId");
    x.text("Id", id.trim());
    let k = kind.trim();
    x.code("Type", &Code::new(k, None, id_type_text(k)), false);
    x.close();
}

fn write_person(x: &mut Xml, el: &str, p: &Professional, with_type: bool) {
    x.open(el);
    if with_type {
        x.cs("Type", p.profession.as_ref());
    }
    x.opt_text("Name", pro_name(p).as_deref());
    let (first, rest) = id_pair(&p.idents);
    write_id(x, first);
    write_additional(x, &rest);
    x.close();
}

/// A basismelding `Address` from an address and telecoms (`Type` is required).
pub fn write_address(x: &mut Xml, a: Option<&Address>, tel: &[Telecom], tele_ok: bool) {
    let tel: Vec<&Telecom> = if tele_ok {
        tel.iter().collect()
    } else {
        Vec::new()
    };
    if a.is_none() && tel.is_empty() {
        return;
    }
    let d = Address::default();
    let a = a.unwrap_or(&d);
    x.open("Address");
    x.code_req(
        "Type",
        a.kind.as_ref().map(|k| Code::new(k, None, None)).as_ref(),
        false,
    );
    x.address_lines("", a);
    for t in tel {
        x.v("TeleAddress", &t.value);
    }
    x.close();
}

/// An organisation chain as `HCP`: `Inst` (with each nested unit as `Dept` and the persons on
/// the chain as `HCPerson`), or `HCProf` for a person without an institution.
pub fn write_hcp(x: &mut Xml, org: &Organisation, b: Basis) {
    x.open("HCP");
    let person_only = org.name.is_none()
        && org.idents.is_empty()
        && org.unit.is_none()
        && org.kind.is_none()
        && org.professional.is_some();
    if let (true, Some(p)) = (person_only, org.professional.as_ref()) {
        write_person(x, "HCProf", p, true);
    } else {
        x.open("Inst");
        x.opt_text("Name", org.name.as_deref());
        if b == Basis::Epikrise12 {
            x.cs("Type", org.kind.as_ref());
        }
        let (first, rest) = id_pair(&org.idents);
        write_id(x, first);
        let mut persons: Vec<&Professional> = org.professional.iter().collect();
        let mut units = Vec::new();
        let mut u = org.unit.as_deref();
        while let Some(unit) = u {
            units.push(unit);
            persons.extend(unit.professional.iter());
            u = unit.unit.as_deref();
        }
        let depts = |x: &mut Xml| {
            for d in &units {
                x.open("Dept");
                x.cs("Type", d.kind.as_ref());
                x.opt_text("Name", d.name.as_deref());
                let (first, rest) = id_pair(&d.idents);
                write_id(x, first);
                write_additional(x, &rest);
                x.close();
            }
        };
        match b {
            Basis::Henvisning11 => {
                write_additional(x, &rest);
                for p in &persons {
                    write_person(x, "HCPerson", p, false);
                }
                depts(x);
            }
            Basis::Epikrise12 => {
                depts(x);
                for p in &persons {
                    write_person(x, "HCPerson", p, false);
                }
                write_additional(x, &rest);
            }
        }
        x.close();
    }
    write_address(x, org.address.as_ref(), &org.telecom, true);
    x.close();
}

/// `CopyDest`s for the header's copy receivers.
pub fn write_copy_dests(x: &mut Xml, copies: &[crate::model::CopyReceiver], b: Basis) {
    for c in copies {
        x.open("CopyDest");
        if let Some(role) = &c.role {
            x.code("Role", &Code::new(role, None, None), false);
        }
        write_hcp(x, &c.party, b);
        x.close();
    }
}

/// `Consent` (Henvisning 1.1 and 2.0; 2.0 requires the status).
pub fn write_consent(x: &mut Xml, c: &crate::model::Consent, status_required: bool) {
    x.open("Consent");
    if status_required {
        x.code_req("ConsentStatus", c.status.as_ref(), true);
    } else {
        x.cv("ConsentStatus", c.status.as_ref());
    }
    x.opt_text(
        "ConsentDate",
        c.date
            .as_deref()
            .and_then(super::writer::xs_date)
            .as_deref(),
    );
    x.opt_text("Merknad", c.note.as_deref());
    x.opt_text("GivenBy", c.given_by.as_deref());
    x.close();
}

/// A party element (`Requester`, `ServProvider`, `CopyDest`, …) around an `HCP`.
pub fn write_party(x: &mut Xml, el: &str, org: &Organisation, b: Basis) {
    x.open(el);
    write_hcp(x, org, b);
    x.close();
}

/// `PatRelHCP` / `RelServProvider`: `Relation` (required), period, `HCP`.
pub fn write_related_hcp(x: &mut Xml, el: &str, c: &CareProvider, b: Basis, period: bool) {
    x.open(el);
    x.code_req("Relation", c.relation.as_ref(), false);
    if period {
        x.opt_ts("StartDateTime", c.start.as_deref());
        x.opt_ts("EndDateTime", c.end.as_deref());
    }
    write_hcp(x, &c.party, b);
    x.close();
}

/// A felleskomponent `Person` (prefix `fk1:`).
pub fn write_fk1_person(x: &mut Xml, el: &str, p: &RelatedPerson) {
    x.open(el);
    x.opt_text("fk1:FamilyName", p.family_name.as_deref());
    x.opt_text("fk1:MiddleName", p.middle_name.as_deref());
    x.opt_text("fk1:GivenName", p.given_name.as_deref());
    if let Some(d) = p.birth_date.as_deref().and_then(super::writer::xs_date) {
        x.text("fk1:DateOfBirth", &d);
    }
    if let Some(s) = p.sex {
        x.code("fk1:Sex", &sex_code(s), false);
    }
    for i in &p.idents {
        x.open("fk1:Ident");
        x.text("fk1:Id", i.id.trim());
        let k = i.kind.trim();
        let c = Code {
            code: k.to_string(),
            system: i.system.clone(),
            display: id_type_text(k).map(str::to_string),
        };
        x.code("fk1:TypeId", &c, true);
        x.close();
    }
    if let Some(a) = &p.address {
        x.open("fk1:Address");
        x.cs(
            "fk1:Type",
            a.kind.as_ref().map(|k| Code::new(k, None, None)).as_ref(),
        );
        x.address_lines("fk1:", a);
        x.close();
    }
    for t in &p.telecom {
        x.open("fk1:TeleCom");
        if let Some(k) = &t.kind {
            x.code("fk1:TypeTelecom", &Code::new(k, None, None), false);
        }
        x.v("fk1:TeleAddress", &t.value);
        x.close();
    }
    x.close();
}

/// Texts the encoder places by role; texts without a role are placed as `fallback`.
pub fn role_or(t: &TextSection, fallback: TextRole) -> TextRole {
    t.role.unwrap_or(fallback)
}

/// A headed text (`ReasonAsText`, `Comment`): `Heading`, `TextResultValue`, coded statements.
/// `codes_required`: Henvisning 1.1 `Comment` needs at least one `CodedComment`.
pub fn write_headed(
    x: &mut Xml,
    el: &str,
    t: &TextSection,
    heading_cv: bool,
    codes_el: &str,
    codes_required: bool,
) {
    x.open(el);
    if codes_required {
        x.code_req("Heading", t.heading.as_ref(), heading_cv);
    } else if heading_cv {
        x.cv("Heading", t.heading.as_ref());
    } else {
        x.cs("Heading", t.heading.as_ref());
    }
    x.text("TextResultValue", &t.text);
    for c in &t.codes {
        x.code(codes_el, c, true);
    }
    if codes_required && t.codes.is_empty() {
        x.code_req(codes_el, None, true);
    }
    x.close();
}

/// One clinical information item per text (Description + the following ClinicalInfoComment with
/// the same heading, merged back into one `Observation`), result and medication.
pub fn write_inf_items(
    x: &mut Xml,
    texts: &[&TextSection],
    observations: &[Observation],
    medications: &[Medication],
    type_cv: bool,
    epikrise: bool,
) {
    // Henvisning 2.0 (the one with CV types) writes its dates as xs:dateTime text.
    let ts_attr = !type_cv;
    let item_type = |x: &mut Xml, c: Option<&Code>| x.code_req("Type", c, type_cv);
    let mut i = 0;
    while i < texts.len() {
        let t = texts[i];
        let (desc, comment) = match t.role {
            Some(TextRole::ClinicalInfoComment) => (None, Some(t)),
            _ => {
                let next = texts.get(i + 1).filter(|n| {
                    n.role == Some(TextRole::ClinicalInfoComment)
                        && n.heading == t.heading
                        && n.start == t.start
                        && n.end == t.end
                });
                if next.is_some() {
                    i += 1;
                }
                (Some(t), next.copied())
            }
        };
        i += 1;
        x.open("InfItem");
        x.open("Observation");
        if let Some(d) = desc {
            x.text("Description", &d.text);
        }
        if let Some(c) = comment {
            x.text("Comment", &c.text);
        }
        x.close();
        item_type(x, t.heading.as_ref());
        x.opt_when("StartDateTime", t.start.as_deref(), ts_attr);
        x.opt_when("EndDateTime", t.end.as_deref(), ts_attr);
        x.close();
    }
    for o in observations {
        x.open("InfItem");
        x.open("ResultItem");
        x.open("NumResult");
        let mut attrs: Vec<(&str, String)> = Vec::new();
        if let Some(v) = o.value.filter(|v| v.is_finite()) {
            attrs.push(("V", format!("{v}")));
        }
        if let Some(u) = o.unit.as_deref().filter(|u| !u.trim().is_empty()) {
            attrs.push(("U", u.trim().to_string()));
        }
        let a: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        x.empty("NumResultValue", &a);
        x.close();
        x.opt_when("InvDate", o.time.as_deref(), ts_attr);
        x.opt_text("Comment", o.comment.as_deref());
        x.cs("DevResultInd", o.interpretation.as_ref());
        x.open("ClinInv");
        x.code("Id", &o.code, true);
        x.close();
        x.close();
        item_type(x, o.category.as_ref());
        x.close();
    }
    for m in medications {
        x.open("InfItem");
        x.open("Medication");
        x.code_req("DrugId", m.drug.as_ref(), true);
        if epikrise {
            x.cv("DosageCoded", m.dosage_code.as_ref());
        }
        x.opt_text("Comment", m.comment.as_deref());
        let status = m.status.as_deref().map(|s| Code {
            code: s.to_string(),
            system: None,
            display: m.status_text.clone(),
        });
        x.code_req("Status", status.as_ref(), false);
        if epikrise {
            x.cv("Form", m.form.as_ref());
            x.cv("RouteOfAdm", m.route.as_ref());
        }
        x.pq("IntendedDuration", m.intended_duration.as_ref());
        x.pq("QuantitySupplied", m.quantity_supplied.as_ref());
        x.pq("UnitDose", m.unit_dose.as_ref());
        // The decoder reads a missing DosageText from Comment; do not write it twice.
        if m.dosage_text != m.comment {
            x.opt_text("DosageText", m.dosage_text.as_deref());
        }
        x.close();
        let default_type = Code::new("MEDB", None, Some("Legemiddelopplysning"));
        item_type(x, Some(m.category.as_ref().unwrap_or(&default_type)));
        x.opt_when("StartDateTime", m.start.as_deref(), ts_attr);
        x.opt_when("EndDateTime", m.end.as_deref(), ts_attr);
        x.close();
    }
}

/// `Diagnosis { Concept, Modifier* }`.
pub fn write_diagnosis(x: &mut Xml, el: &str, d: &Diagnosis) {
    x.open(el);
    x.code("Concept", &d.code, true);
    for m in &d.modifiers {
        x.open("Modifier");
        x.code("Name", &m.name, false);
        if m.values.is_empty() {
            x.code_req("Value", None, true);
        }
        for v in &m.values {
            x.code("Value", v, true);
        }
        x.close();
    }
    x.close();
}

/// `PatientPrecaution`s (`ts_attr`: basismelding `TS` dates, else 2.0 `xs:dateTime`).
pub fn write_precautions<'a>(
    x: &mut Xml,
    it: impl Iterator<Item = &'a TextSection>,
    ts_attr: bool,
) {
    for t in it {
        x.open("PatientPrecaution");
        x.text("Precaution", &t.text);
        x.opt_when("StartDateTime", t.start.as_deref(), ts_attr);
        x.opt_when("EndDateTime", t.end.as_deref(), ts_attr);
        x.close();
    }
}

/// The basismelding patient's identity part: `Sex`, `DateOfBirth`, `DateOfDeath`, `Name`,
/// `OffId`/`TypeOffId` (first identifier); the remaining identifiers are returned for
/// `AdditionalId`, which comes later in the schema.
pub fn write_patient_identity<'a>(
    x: &mut Xml,
    p: &'a Patient,
) -> Vec<&'a crate::model::PatientIdent> {
    if let Some(s) = p.sex {
        x.code("Sex", &sex_code(s), false);
    }
    x.opt_ts("DateOfBirth", p.birth_date.as_deref());
    x.opt_ts("DateOfDeath", p.deceased_date.as_deref());
    x.opt_text(
        "Name",
        one_name(
            p.full_name.as_deref(),
            p.family_name.as_deref(),
            p.given_name.as_deref(),
            p.middle_name.as_deref(),
        )
        .as_deref(),
    );
    let mut ids = p.idents.iter().filter(|i| !i.id.trim().is_empty());
    if let Some(first) = ids.next() {
        x.text("OffId", first.id.trim());
        let k = first.kind.trim();
        if !k.is_empty() {
            x.code("TypeOffId", &Code::new(k, None, id_type_text(k)), false);
        }
    }
    ids.collect()
}

/// `AdditionalId`s of the patient.
pub fn write_patient_additional(x: &mut Xml, rest: &[&crate::model::PatientIdent]) {
    for i in rest {
        additional_id(x, &i.id, &i.kind);
    }
}

/// A date-time or date value for a basismelding `TS`, or the fallback.
pub fn ts_or(v: Option<&str>, fallback: &str) -> String {
    v.and_then(ts).unwrap_or_else(|| fallback.to_string())
}
