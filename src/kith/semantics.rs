//! Header and patient semantics (FACTS §3, §7.3, §10): the checks the schema cannot make.
//!
//! Format-neutral on purpose: the FHIR side runs the same patient rule on the same model and gets
//! the same codes. Findings never quote identity numbers or names.

use crate::finding::{codes, Finding};
use crate::ident::{self, PersonIdKind};
use crate::model::{Body, Message, Organisation, Patient};

/// Where the patient sits, for finding paths (`/MsgHead/MsgInfo/Patient`, `Patient`, …).
pub struct Paths<'a> {
    pub msg_id: &'a str,
    pub sender: &'a str,
    pub receiver: &'a str,
    pub patient: &'a str,
}

/// Is `s` a UUID in the canonical 8-4-4-4-12 form (any case)?
pub fn is_uuid(s: &str) -> bool {
    let s = s.trim();
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

/// MsgId present and a UUID (AppRec E10 otherwise: a MUST).
pub fn check_msg_id(msg: &Message, paths: &Paths<'_>, out: &mut Vec<Finding>) {
    match msg.header.msg_id.as_deref().map(str::trim) {
        None | Some("") => out.push(Finding::error(
            codes::MSGID_MISSING,
            paths.msg_id,
            "the message has no MsgId",
        )),
        Some(id) if !is_uuid(id) => out.push(Finding::error(
            codes::MSGID_NOT_UUID,
            paths.msg_id,
            format!("MsgId is not a UUID ({} characters)", id.chars().count()),
        )),
        Some(_) => {}
    }
}

fn check_party_ids(org: &Organisation, path: &str, out: &mut Vec<Finding>) {
    let mut chain: Vec<(&str, &crate::model::Ident)> = org.idents.iter().map(|i| ("", i)).collect();
    let mut unit = org.unit.as_deref();
    while let Some(u) = unit {
        chain.extend(u.idents.iter().map(|i| ("/Organisation", i)));
        if let Some(p) = &u.professional {
            chain.extend(p.idents.iter().map(|i| ("/HealthcareProfessional", i)));
        }
        unit = u.unit.as_deref();
    }
    if let Some(p) = &org.professional {
        chain.extend(p.idents.iter().map(|i| ("/HealthcareProfessional", i)));
    }
    for (sub, i) in chain {
        if i.is("HER") && !ident::valid_her_id(&crate::config::normalise_value(&i.id)) {
            out.push(Finding::warning(
                codes::HER_ID_INVALID,
                format!("{path}{sub}/Ident"),
                "a HER-id must be a positive integer",
            ));
        } else if i.is("HER") && i.id.trim() != crate::config::normalise_value(&i.id) {
            out.push(Finding::warning(
                codes::HER_ID_INVALID,
                format!("{path}{sub}/Ident"),
                "HER-id written with separators; read without them",
            ));
        }
    }
}

/// Sender and receiver identifiable, HER-ids well-formed.
pub fn check_parties(msg: &Message, paths: &Paths<'_>, out: &mut Vec<Finding>) {
    match &msg.header.sender {
        Some(s) if s.is_identifiable() => check_party_ids(s, paths.sender, out),
        _ => out.push(Finding::error(
            codes::SENDER_MISSING,
            paths.sender,
            "the sender has no identifier",
        )),
    }
    if matches!(msg.body, Body::Receipt(_)) {
        return;
    }
    match &msg.header.receiver {
        Some(r) if r.is_identifiable() => check_party_ids(r, paths.receiver, out),
        _ => out.push(Finding::error(
            codes::RECEIVER_MISSING,
            paths.receiver,
            "the receiver has no identifier",
        )),
    }
}

/// The outcome of the patient-identification rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatientVerdict {
    pub sufficient: bool,
    /// A valid FNR/DNR/FHN was found.
    pub has_valid_national_id: bool,
}

fn nonempty(o: &Option<String>) -> bool {
    o.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// The patient's valid national identity numbers (FNR, D-number, FH-number), digits only: the numbers
/// a patient register can be searched by. H-numbers are organisation-internal and never listed;
/// invalid numbers are not listed either (FACTS §3, §10).
pub fn national_ids(p: &Patient) -> Vec<String> {
    p.idents
        .iter()
        .filter_map(|id| {
            let kind = id.person_kind()?;
            if !matches!(
                kind,
                PersonIdKind::Fnr | PersonIdKind::Dnr | PersonIdKind::Fhn
            ) {
                return None;
            }
            let digits: String = id.id.chars().filter(|c| !c.is_whitespace()).collect();
            ident::check_declared(&digits, kind).ok().map(|_| digits)
        })
        .collect()
}

/// Whether a message that names no patient at all may still be answered positively: a Dialogmelding
/// (MsgHead `Patient` is 0..1) that is not a patient-specific profile is not about a patient — e.g.
/// `DIALOG_AVVIK`, feedback on an error in a received message (HIS 1151). Helsefaglig dialog
/// (`DIALOG_HELSEFAGLIG`, HIS 1077) is patient-specific and keeps the E36 rule.
pub fn patient_optional(msg: &Message) -> bool {
    msg.patient().is_none()
        && matches!(msg.body, Body::Dialog(_))
        && !msg
            .header
            .msg_type
            .trim()
            .eq_ignore_ascii_case("DIALOG_HELSEFAGLIG")
}

/// The sufficiency rule (FACTS §7.3): name + FNR, name + D-number, name + FH-number, or
/// name + birth date + sex. Invalid numbers are reported and do not count.
pub fn check_patient(p: Option<&Patient>, path: &str, out: &mut Vec<Finding>) -> PatientVerdict {
    let Some(p) = p else {
        out.push(Finding::error(
            codes::PATIENT_MISSING,
            path,
            "the message names no patient",
        ));
        return PatientVerdict {
            sufficient: false,
            has_valid_national_id: false,
        };
    };
    let mut valid_national = false;
    for (n, id) in p.idents.iter().enumerate() {
        let ipath = format!("{path}/Ident[{}]", n + 1);
        let digits: String = id.id.chars().filter(|c| !c.is_whitespace()).collect();
        match id.person_kind() {
            Some(kind) => match ident::check_declared(&digits, kind) {
                Ok(_) => {
                    if matches!(
                        kind,
                        PersonIdKind::Fnr | PersonIdKind::Dnr | PersonIdKind::Fhn
                    ) {
                        valid_national = true;
                    }
                }
                Err(e) => out.push(Finding::warning(
                    codes::PATIENT_ID_INVALID,
                    ipath,
                    format!("the {} is not valid: {e}", kind.code()),
                )),
            },
            None => {
                // Other kinds (DUF, passport, …) are kept but do not identify on their own.
            }
        }
    }
    let has_name = p.has_name();
    let has_birth = nonempty(&p.birth_date);
    let has_sex = p.sex.is_some();
    let sufficient = has_name && (valid_national || (has_birth && has_sex));
    if !has_name {
        out.push(Finding::error(
            codes::PATIENT_NAME_MISSING,
            path,
            "the patient's name is missing",
        ));
    }
    if !sufficient {
        let mut missing = Vec::new();
        if !has_name {
            missing.push("name");
        }
        if !valid_national {
            missing.push("a valid fødselsnummer, D-number or FH-number");
            if !has_birth {
                missing.push("birth date");
            }
            if !has_sex {
                missing.push("sex");
            }
        }
        out.push(Finding::error(
            codes::PATIENT_INSUFFICIENT,
            path,
            format!(
                "the patient is not sufficiently identified (needs name with fødselsnummer, D- or FH-number, or name with birth date and sex); missing: {}",
                missing.join(", ")
            ),
        ));
    }
    PatientVerdict {
        sufficient,
        has_valid_national_id: valid_national,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PatientIdent, Sex};

    fn patient(name: bool, id: Option<(&str, &str)>, birth: bool, sex: bool) -> Patient {
        Patient {
            family_name: name.then(|| "Test".to_string()),
            idents: id
                .map(|(i, k)| {
                    vec![PatientIdent {
                        id: i.into(),
                        kind: k.into(),
                    }]
                })
                .unwrap_or_default(),
            birth_date: birth.then(|| "1950-01-01".to_string()),
            sex: sex.then_some(Sex::Female),
            ..Default::default()
        }
    }

    #[test]
    fn sufficiency_rule() {
        let cases = [
            (
                patient(true, Some(("01015000232", "FNR")), false, false),
                true,
            ),
            (
                patient(false, Some(("01015000232", "FNR")), false, false),
                false,
            ),
            (
                patient(true, Some(("01015000322", "FNR")), false, false),
                false,
            ),
            (patient(true, None, true, true), true),
            (patient(true, None, true, false), false),
            (
                patient(true, Some(("01415000232", "HNR")), false, false),
                false,
            ),
        ];
        for (n, (p, want)) in cases.iter().enumerate() {
            let mut f = Vec::new();
            assert_eq!(
                check_patient(Some(p), "/P", &mut f).sufficient,
                *want,
                "case {n}: {f:?}"
            );
        }
    }

    #[test]
    fn national_ids_only_valid_fnr_dnr_fhn() {
        let mut p = patient(true, Some(("01015000232", "FNR")), false, false);
        p.idents.push(PatientIdent {
            id: "01415000232".into(),
            kind: "HNR".into(),
        });
        p.idents.push(PatientIdent {
            id: "01015000322".into(),
            kind: "FNR".into(),
        });
        assert_eq!(national_ids(&p), vec!["01015000232".to_string()]);
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("6d3d6947-5f39-11df-a08a-0800200c9a66"));
        assert!(is_uuid("6D3D6947-5F39-11DF-A08A-0800200C9A66"));
        assert!(!is_uuid("6d3d69475f3911dfa08a0800200c9a66"));
        assert!(!is_uuid("Henvisningsid-1"));
    }
}
