//! Building blocks shared by the decoders: coded values, identifiers, addresses, persons and
//! organisations in the two KITH shapes (MsgHead/felleskomponent and the basismelding `HCP`), and
//! free text (including XHTML) flattened to plain text.

use crate::finding::{Finding, Severity};
use crate::model::{
    Address, Attachment, CareProvider, CareProviderRole, Code, CodeModifier, CommunicationNeed,
    Consent, Ident, Organisation, Patient, PatientIdent, Professional, Quantity, RelatedPerson,
    Sex, Telecom, TextRole, TextSection,
};
use crate::xml::Element;

/// Decoding notes collected while decoding one message.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub findings: Vec<Finding>,
}

impl Notes {
    pub fn note(
        &mut self,
        code: &str,
        severity: Severity,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.findings
            .push(Finding::new(code, severity, path, message));
    }
}

/// Decoding-note codes (all under `decode.*`).
pub mod dcodes {
    pub const DATE_NORMALISED: &str = "decode.date-normalised";
    pub const INNER_UNKNOWN: &str = "decode.inner-document-unknown";
    pub const INNER_MISSING: &str = "decode.inner-document-missing";
    pub const MSG_TYPE_MISSING: &str = "decode.msg-type-missing";
    pub const APPREC_STATUS_UNKNOWN: &str = "decode.apprec-status-unknown";
    pub const CONVERSATION_REF_ORDER: &str = "decode.conversation-ref-order";
    pub const EXTRA_PARTS_IGNORED: &str = "decode.extra-parts-ignored";
    /// Pasientlogistikk: the MsgHead type names another use than the document holds.
    pub const PLO_EVENT_MISMATCH: &str = "decode.plo-event-type-mismatch";
    /// Pasientlogistikk: `Forsendelsesstatus` is no 7309 code.
    pub const PLO_STATUS_UNKNOWN: &str = "decode.plo-forsendelsesstatus-unknown";
    /// Pasientlogistikk: `TidspunktForHendelse` is no date or date-time.
    pub const PLO_EVENT_TIME_INVALID: &str = "decode.plo-event-time-invalid";
}

/// Trimmed text at `path` as an owned string.
pub fn s(e: &Element, path: &str) -> Option<String> {
    e.text_at(path).map(str::to_string)
}

/// The `V` attribute at `path`, or else the element's text (basismeldinger use `V` for dates; some
/// senders write text).
pub fn v_or_text(e: &Element, path: &str) -> Option<String> {
    let el = e.at(path)?;
    el.attr("V")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .or_else(|| el.text_opt())
        .map(str::to_string)
}

fn nonempty(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A KITH `CS`/`CV` element as a code (`V`, `S`, `DN`); `None` without a `V`.
pub fn code_of(e: &Element) -> Option<Code> {
    let code = nonempty(e.attr("V"))?;
    Some(Code {
        code,
        system: nonempty(e.attr("S")),
        display: nonempty(e.attr("DN")),
    })
}

/// The coded value at `path`.
pub fn code_at(e: &Element, path: &str) -> Option<Code> {
    e.at(path).and_then(code_of)
}

/// All text inside an element, its descendants included (XHTML paragraphs, table cells), one line
/// per block, trimmed; `None` when there is none.
pub fn all_text(e: &Element) -> Option<String> {
    fn walk(e: &Element, out: &mut String) {
        let block = matches!(
            e.name.as_str(),
            "p" | "div" | "br" | "tr" | "li" | "h1" | "h2" | "h3" | "table"
        );
        if block {
            out.push('\n');
        }
        out.push_str(&e.text);
        for c in &e.children {
            if matches!(c.name.as_str(), "td" | "th") {
                out.push(' ');
            }
            walk(c, out);
        }
        if block {
            out.push('\n');
        }
    }
    let mut raw = String::new();
    walk(e, &mut raw);
    let lines: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// A titled text: heading from the element at `heading`, text from everything at `text`, the
/// coded statements from every child named `codes`.
pub fn section(
    e: &Element,
    heading: &str,
    text: &str,
    codes: &str,
    role: TextRole,
) -> Option<TextSection> {
    let t = e.at(text).and_then(all_text)?;
    Some(TextSection {
        heading: code_at(e, heading),
        text: t,
        role: Some(role),
        codes: e.children_named(codes).filter_map(code_of).collect(),
        ..TextSection::default()
    })
}

/// A text section from an element's whole text with a given heading and role.
pub fn section_of(
    e: Option<&Element>,
    heading: Option<Code>,
    role: TextRole,
) -> Option<TextSection> {
    let t = e.and_then(all_text)?;
    Some(TextSection {
        heading,
        text: t,
        role: Some(role),
        ..TextSection::default()
    })
}

/// A KITH `PQ` (`V`, `U`) as a quantity; `None` without a value.
pub fn quantity(e: Option<&Element>) -> Option<Quantity> {
    let e = e?;
    Some(Quantity {
        value: nonempty(e.attr("V"))?,
        unit: nonempty(e.attr("U")),
    })
}

/// `Modifier { Name, Value+ }` children.
pub fn modifiers(e: &Element) -> Vec<CodeModifier> {
    e.children_named("Modifier")
        .filter_map(|m| {
            Some(CodeModifier {
                name: code_at(m, "Name")?,
                values: m.children_named("Value").filter_map(code_of).collect(),
            })
        })
        .collect()
}

/// An `xs:boolean` text.
pub fn boolean(e: &Element, path: &str) -> Option<bool> {
    match e.text_at(path)? {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// A felleskomponent / MsgHead `Person` (names, birth date, sex, identifiers, address, telecom).
pub fn person(e: &Element) -> RelatedPerson {
    let (address, mut telecom) = e.child("Address").map(address).unwrap_or_default();
    telecom.extend(telecoms(e));
    RelatedPerson {
        family_name: s(e, "FamilyName"),
        middle_name: s(e, "MiddleName"),
        given_name: s(e, "GivenName"),
        birth_date: s(e, "DateOfBirth"),
        sex: sex_of(e.v_at("Sex")),
        idents: idents(e),
        address,
        telecom,
        ..RelatedPerson::default()
    }
}

/// poKomponent `ParorendeForesatt` (1.5 and 2.0).
pub fn relative(e: &Element) -> RelatedPerson {
    let mut p = e.child("Referanseperson").map(person).unwrap_or_default();
    p.relationship = code_at(e, "Slektskap");
    p.care_function = code_at(e, "Omsorgsfunksjon");
    p.next_of_kin = boolean(e, "NarmesteParorende");
    p.note = s(e, "Merknad");
    p
}

/// poKomponent `AssistertKommunikasjon` (1.5 and 2.0).
pub fn communication_need(e: &Element) -> CommunicationNeed {
    CommunicationNeed {
        language: code_at(e, "BehovTolkSprak"),
        person: e.child("PersonTolkebehov").map(person),
        hearing_impaired: boolean(e, "Horselsvikt"),
        sight_impaired: boolean(e, "Synsvikt"),
        note: s(e, "Merknad"),
    }
}

/// `Consent` (Henvisning 1.1 under Patient, 2.0 under Henvisning).
pub fn consent(e: &Element) -> Consent {
    Consent {
        status: code_at(e, "ConsentStatus"),
        date: s(e, "ConsentDate"),
        note: s(e, "Merknad"),
        given_by: s(e, "GivenBy"),
    }
}

/// A basismelding related health-care party (`PatRelHCP`, `RelServProvider`: `Relation`,
/// optional period, `HCP`).
pub fn related_hcp(e: &Element) -> Option<CareProvider> {
    let (party, _) = hcp(e.child("HCP")?);
    Some(CareProvider {
        relation: code_at(e, "Relation"),
        role: None,
        party,
        start: v_or_text(e, "StartDateTime"),
        end: v_or_text(e, "EndDateTime"),
        note: None,
    })
}

/// `RefDoc` (MsgHead and basismelding shape) holding an attachment: inline base64
/// (`Content/Base64Container`) or a `FileReference`. `None` for an embedded XML document.
pub fn attachment(r: &Element) -> Option<Attachment> {
    let data = match r.child("Content") {
        Some(c) => {
            let b = c.child("Base64Container")?;
            Some(
                b.text
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>(),
            )
        }
        None => None,
    };
    let uri = s(r, "FileReference");
    if data.is_none() && uri.is_none() {
        return None;
    }
    Some(Attachment {
        kind: code_at(r, "MsgType"),
        id: s(r, "Id"),
        issue_date: v_or_text(r, "IssueDate"),
        media_type: s(r, "MimeType"),
        description: s(r, "Description"),
        data,
        uri,
    })
}

/// poKomponent `KontaktpersonHelsepersonell` / `AnsvarForRapport`.
pub fn po_care_provider(e: &Element, role: CareProviderRole) -> Option<CareProvider> {
    let person = match role {
        CareProviderRole::Contact => e.child("Kontaktperson"),
        CareProviderRole::Responsible => e.child("AnsvarligRapport"),
    }?;
    Some(CareProvider {
        relation: code_at(e, "TypeRelasjon"),
        role: Some(role),
        party: Organisation {
            professional: Some(professional(person)),
            ..Organisation::default()
        },
        start: None,
        end: None,
        note: s(e, "Merknad"),
    })
}

/// KITH 3101 sex codes.
pub fn sex_of(v: Option<&str>) -> Option<Sex> {
    Some(match v?.trim() {
        "1" | "M" => Sex::Male,
        "2" | "K" | "F" => Sex::Female,
        "9" => Sex::Other,
        "0" => Sex::Unknown,
        _ => return None,
    })
}

/// A date as `YYYY-MM-DD` (a time part is cut off). Unpadded month/day (`1991-12-4`) are padded
/// and noted; anything else is kept as written.
pub fn date(raw: &str, path: &str, notes: &mut Notes) -> String {
    let raw = raw.trim();
    let day = raw.split('T').next().unwrap_or(raw);
    let parts: Vec<&str> = day.split('-').collect();
    if parts.len() == 3
        && parts[0].len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[1].len() <= 2
        && parts[2].len() <= 2
    {
        let fixed = format!("{}-{:0>2}-{:0>2}", parts[0], parts[1], parts[2]);
        if fixed != day {
            notes.note(
                dcodes::DATE_NORMALISED,
                Severity::Warning,
                path,
                "date written without zero padding (YYYY-M-D); read as YYYY-MM-DD",
            );
        }
        return fixed;
    }
    raw.to_string()
}

/// Split a basismelding name "Family, Given" into (family, given); `None` without a comma.
pub fn split_name(full: &str) -> Option<(String, String)> {
    let (f, g) = full.split_once(',')?;
    let (f, g) = (f.trim(), g.trim());
    (!f.is_empty() || !g.is_empty()).then(|| (f.to_string(), g.to_string()))
}

// ---------------------------------------------------------------- MsgHead / felleskomponent shapes

/// `Ident { Id, TypeId }` → identifier (kind = `TypeId/@V` trimmed, system = `TypeId/@S`).
pub fn ident(e: &Element) -> Option<Ident> {
    let id = e.text_at("Id")?.to_string();
    let t = e.child("TypeId");
    Some(Ident {
        id,
        kind: t.and_then(|t| nonempty(t.attr("V"))).unwrap_or_default(),
        system: t.and_then(|t| nonempty(t.attr("S"))),
    })
}

pub fn idents(e: &Element) -> Vec<Ident> {
    e.children_named("Ident").filter_map(ident).collect()
}

/// `Address` (MsgHead, felleskomponent and basismelding shapes). `TeleAddress` children of a
/// basismelding address are returned as telecom.
pub fn address(e: &Element) -> (Option<Address>, Vec<Telecom>) {
    let county = e.v_at("County");
    let municipality = county
        .filter(|c| c.len() == 4 && c.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string);
    let a = Address {
        kind: e.v_at("Type").map(str::to_string),
        street: s(e, "StreetAdr"),
        postal_code: s(e, "PostalCode"),
        city: s(e, "City"),
        municipality,
        country: e
            .v_at("Country")
            .map(str::to_string)
            .or_else(|| s(e, "Country")),
    };
    let tel = e
        .children_named("TeleAddress")
        .filter_map(|t| nonempty(t.attr("V")))
        .map(|value| Telecom { kind: None, value })
        .collect();
    // An address with only its type (e.g. a work address holding just telephone numbers) is kept
    // so the type is not lost.
    let empty = a == Address::default();
    ((!empty).then_some(a), tel)
}

/// `TeleCom { TypeTelecom?, TeleAddress@V }`.
pub fn telecoms(e: &Element) -> Vec<Telecom> {
    e.children_named("TeleCom")
        .filter_map(|t| {
            let value = t.at("TeleAddress").and_then(|a| nonempty(a.attr("V")))?;
            Some(Telecom {
                kind: t.v_at("TypeTelecom").map(str::to_string),
                value,
            })
        })
        .collect()
}

/// `HealthcareProfessional` (MsgHead, dialogmelding, felleskomponent `Kontaktperson`/`AnsvarligRapport`).
pub fn professional(e: &Element) -> Professional {
    Professional {
        profession: code_at(e, "TypeHealthcareProfessional"),
        role_to_patient: code_at(e, "RoleToPatient"),
        family_name: s(e, "FamilyName"),
        given_name: s(e, "GivenName"),
        middle_name: s(e, "MiddleName"),
        full_name: None,
        idents: idents(e),
        telecom: telecoms(e),
    }
}

/// MsgHead `Organisation` chain.
pub fn organisation(e: &Element) -> Organisation {
    let (address, mut telecom) = e.child("Address").map(address).unwrap_or_default();
    telecom.extend(telecoms(e));
    Organisation {
        name: s(e, "OrganisationName"),
        kind: code_at(e, "TypeOrganisation"),
        idents: idents(e),
        address,
        telecom,
        unit: e.child("Organisation").map(|u| Box::new(organisation(u))),
        professional: e.child("HealthcareProfessional").map(professional),
    }
}

/// MsgHead `Patient`.
pub fn patient(e: &Element, path: &str, notes: &mut Notes) -> Patient {
    let (address, mut telecom) = e.child("Address").map(address).unwrap_or_default();
    telecom.extend(telecoms(e));
    Patient {
        family_name: s(e, "FamilyName"),
        middle_name: s(e, "MiddleName"),
        given_name: s(e, "GivenName"),
        full_name: None,
        birth_date: e
            .text_at("DateOfBirth")
            .map(|d| date(d, &format!("{path}/DateOfBirth"), notes)),
        sex: sex_of(e.v_at("Sex")),
        idents: idents(e)
            .into_iter()
            .map(|i| PatientIdent {
                id: i.id,
                kind: i.kind,
            })
            .collect(),
        address,
        telecom,
        nationality: code_at(e, "Nationality"),
        ..Patient::default()
    }
}

// ---------------------------------------------------------------- basismelding / AppRec `HCP` shape

/// `{Id, TypeId}` plus `AdditionalId {Id, Type}` of an `Inst`, `Dept`, `HCPerson` or `HCProf`.
fn hcp_idents(e: &Element) -> Vec<Ident> {
    let mut v = Vec::new();
    if let Some(id) = e.text_at("Id") {
        let t = e.child("TypeId");
        v.push(Ident {
            id: id.to_string(),
            kind: t.and_then(|t| nonempty(t.attr("V"))).unwrap_or_default(),
            system: t.and_then(|t| nonempty(t.attr("S"))),
        });
    }
    for a in e.children_named("AdditionalId") {
        if let Some(id) = a.text_at("Id") {
            let t = a.child("Type");
            v.push(Ident {
                id: id.to_string(),
                kind: t.and_then(|t| nonempty(t.attr("V"))).unwrap_or_default(),
                system: t.and_then(|t| nonempty(t.attr("S"))),
            });
        }
    }
    v
}

/// A basismelding person (`HCPerson`, `HCProf`): the name is one string, often "Family, Given".
fn hcp_person(e: &Element) -> Professional {
    let full = s(e, "Name");
    let split = full.as_deref().and_then(split_name);
    Professional {
        profession: code_at(e, "Type"),
        role_to_patient: None,
        family_name: split
            .as_ref()
            .map(|(f, _)| f.clone())
            .filter(|x| !x.is_empty()),
        given_name: split
            .as_ref()
            .map(|(_, g)| g.clone())
            .filter(|x| !x.is_empty()),
        middle_name: None,
        full_name: full,
        idents: hcp_idents(e),
        telecom: Vec::new(),
    }
}

/// Basismelding / AppRec `HCP` → organisation chain: `Inst` → organisation, first `Dept` → unit,
/// first `HCPerson` → professional; an `HCProf` alone becomes the professional of an organisation
/// without identifiers. Returns the number of further `Dept`/`HCPerson` entries that had no place.
pub fn hcp(e: &Element) -> (Organisation, usize) {
    let (address, telecom) = e.child("Address").map(address).unwrap_or_default();
    let mut extra = 0;
    let mut org = Organisation {
        address,
        telecom,
        ..Organisation::default()
    };
    if let Some(inst) = e.child("Inst") {
        org.name = s(inst, "Name");
        org.kind = code_at(inst, "Type");
        org.idents = hcp_idents(inst);
        let mut depts = inst.children_named("Dept");
        if let Some(d) = depts.next() {
            org.unit = Some(Box::new(Organisation {
                name: s(d, "Name"),
                kind: code_at(d, "Type"),
                idents: hcp_idents(d),
                ..Organisation::default()
            }));
        }
        extra += depts.count();
        let mut persons = inst.children_named("HCPerson");
        org.professional = persons.next().map(hcp_person);
        extra += persons.count();
    }
    if org.professional.is_none() {
        org.professional = e.child("HCProf").map(hcp_person);
    }
    (org, extra)
}

/// Basismelding `Patient` (Henvisning 1.x, Epikrise 1.x).
pub fn basis_patient(e: &Element, path: &str, notes: &mut Notes) -> Patient {
    let full = s(e, "Name");
    let split = full.as_deref().and_then(split_name);
    let mut ids = Vec::new();
    if let Some(id) = e.text_at("OffId") {
        ids.push(PatientIdent {
            id: id.to_string(),
            kind: e.v_at("TypeOffId").unwrap_or_default().to_string(),
        });
    }
    for a in e.children_named("AdditionalId") {
        if let Some(id) = a.text_at("Id") {
            ids.push(PatientIdent {
                id: id.to_string(),
                kind: a.v_at("Type").unwrap_or_default().to_string(),
            });
        }
    }
    let (address, telecom) = e.child("Address").map(address).unwrap_or_default();
    Patient {
        family_name: split
            .as_ref()
            .map(|(f, _)| f.clone())
            .filter(|x| !x.is_empty()),
        middle_name: None,
        given_name: split
            .as_ref()
            .map(|(_, g)| g.clone())
            .filter(|x| !x.is_empty()),
        full_name: full,
        birth_date: v_or_text(e, "DateOfBirth")
            .map(|d| date(&d, &format!("{path}/DateOfBirth"), notes)),
        sex: sex_of(e.v_at("Sex")),
        idents: ids,
        address,
        telecom,
        deceased_date: v_or_text(e, "DateOfDeath")
            .map(|d| date(&d, &format!("{path}/DateOfDeath"), notes)),
        care_providers: e
            .children_named("PatRelHCP")
            .filter_map(related_hcp)
            .collect(),
        related_persons: e
            .children_named("ParorendeForesatt")
            .map(relative)
            .chain(e.children_named("ContactPerson").map(|c| {
                let mut p = c.child("Referanseperson").map(person).unwrap_or_default();
                p.occupation = s(c, "OccupationRole");
                p.workplace = s(c, "WorkingPlace");
                p.note = s(c, "Merknad");
                p
            }))
            .chain(e.children_named("PatientRelParty").map(|r| {
                let (address, telecom) = r.child("Address").map(self::address).unwrap_or_default();
                RelatedPerson {
                    relationship: code_at(r, "Relation"),
                    full_name: s(r, "Name"),
                    idents: r
                        .text_at("RelPartyOffId")
                        .map(|id| Ident::new(id, ""))
                        .into_iter()
                        .collect(),
                    address,
                    telecom,
                    ..RelatedPerson::default()
                }
            }))
            .collect(),
        communication_needs: e
            .children_named("AssistertKommunikasjon")
            .map(communication_need)
            .collect(),
        ..Patient::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_padded_and_noted() {
        let mut n = Notes::default();
        assert_eq!(date("1991-12-4", "/p", &mut n), "1991-12-04");
        assert_eq!(n.findings.len(), 1);
        assert_eq!(date("1991-12-04T00:00:00", "/p", &mut n), "1991-12-04");
        assert_eq!(date("garbage", "/p", &mut n), "garbage");
        assert_eq!(n.findings.len(), 1);
        assert!(!n.findings[0].message.contains("1991"));
    }

    #[test]
    fn names_split_on_comma() {
        assert_eq!(
            split_name("Telokk, Gry"),
            Some(("Telokk".into(), "Gry".into()))
        );
        assert_eq!(split_name("Rita Lin"), None);
    }
}
