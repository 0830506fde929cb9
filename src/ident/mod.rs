//! Norwegian identifiers: fødselsnummer, D-nummer, H-nummer, felles hjelpenummer (FH), HPR-nummer,
//! HER-id and organisasjonsnummer.
//!
//! Pure functions, no I/O. Rules from the KITH identifier standard (FACTS §10): two mod-11 check digits
//! for person numbers, the classification by first/third digit, century from the individual number.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The kind of a person identifier (code system 8116).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PersonIdKind {
    /// Fødselsnummer.
    Fnr,
    /// D-nummer (day + 40).
    Dnr,
    /// H-nummer, organisation-internal help number (month + 40).
    Hnr,
    /// Felles hjelpenummer, national help number (800000000–999999999 + 2 check digits).
    Fhn,
}

impl PersonIdKind {
    /// The 8116 code.
    pub fn code(self) -> &'static str {
        match self {
            PersonIdKind::Fnr => "FNR",
            PersonIdKind::Dnr => "DNR",
            PersonIdKind::Hnr => "HNR",
            PersonIdKind::Fhn => "FHN",
        }
    }
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim().to_ascii_uppercase().as_str() {
            "FNR" => Some(PersonIdKind::Fnr),
            "DNR" => Some(PersonIdKind::Dnr),
            "HNR" => Some(PersonIdKind::Hnr),
            "FHN" => Some(PersonIdKind::Fhn),
            _ => None,
        }
    }
}

/// Why a person number is not valid. Never carries the number itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PersonIdError {
    #[error("must be exactly 11 digits")]
    Format,
    #[error("first check digit is wrong")]
    CheckDigit1,
    #[error("second check digit is wrong")]
    CheckDigit2,
    #[error("the date part is not a real date")]
    Date,
    #[error("the number is of another kind than declared")]
    KindMismatch,
}

const W1: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const W2: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

fn digits(s: &str) -> Option<[u32; 11]> {
    let b = s.as_bytes();
    if b.len() != 11 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut d = [0u32; 11];
    for (i, c) in b.iter().enumerate() {
        d[i] = u32::from(c - b'0');
    }
    Some(d)
}

fn check_digit(weights: &[u32], d: &[u32]) -> Option<u32> {
    let sum: u32 = weights.iter().zip(d).map(|(w, x)| w * x).sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        k => Some(k),
    }
}

/// Compute the two check digits for the first nine digits, or `None` if no valid number has them.
pub fn check_digits(first9: &[u32; 9]) -> Option<(u32, u32)> {
    let k1 = check_digit(&W1, first9)?;
    let mut ten = [0u32; 10];
    ten[..9].copy_from_slice(first9);
    ten[9] = k1;
    let k2 = check_digit(&W2, &ten)?;
    Some((k1, k2))
}

/// Classify an 11-digit number by the standard's rule (first digit 8/9 → FH; 4–7 → D; 1–3 with
/// third digit 4/5 → H; else FNR). Does not check the check digits.
pub fn classify(s: &str) -> Option<PersonIdKind> {
    let d = digits(s)?;
    Some(match d[0] {
        8 | 9 => PersonIdKind::Fhn,
        4..=7 => PersonIdKind::Dnr,
        _ if d[2] == 4 || d[2] == 5 => PersonIdKind::Hnr,
        _ => PersonIdKind::Fnr,
    })
}

/// A parsed, valid person number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonNumber {
    pub kind: PersonIdKind,
    /// Birth date encoded in the number (not for FH-numbers; may be fictitious for H-numbers).
    pub birth_date: Option<NaiveDate>,
    /// true = male, false = female (9th digit odd/even); not for FH-numbers.
    pub male: Option<bool>,
}

/// Validate a person number. Synthetic test ranges (month + 40 "Dolly", month + 80 "Tenor") are
/// accepted as FNR/DNR with their date decoded; note that month + 40 is indistinguishable from an
/// H-number by the standard's rule, which wins.
pub fn parse_person_number(s: &str) -> Result<PersonNumber, PersonIdError> {
    let d = digits(s).ok_or(PersonIdError::Format)?;
    let first9: [u32; 9] = d[..9].try_into().expect("nine digits");
    let k1 = check_digit(&W1, &first9).ok_or(PersonIdError::CheckDigit1)?;
    if k1 != d[9] {
        return Err(PersonIdError::CheckDigit1);
    }
    let k2 = check_digit(&W2, &d[..10]).ok_or(PersonIdError::CheckDigit2)?;
    if k2 != d[10] {
        return Err(PersonIdError::CheckDigit2);
    }
    let kind = classify(s).ok_or(PersonIdError::Format)?;
    if kind == PersonIdKind::Fhn {
        return Ok(PersonNumber {
            kind,
            birth_date: None,
            male: None,
        });
    }
    let mut day = d[0] * 10 + d[1];
    let mut month = d[2] * 10 + d[3];
    if kind == PersonIdKind::Dnr {
        day -= 40;
    }
    if month > 80 {
        month -= 80; // Tenor synthetic range
    } else if month > 40 {
        month -= 40; // H-number or Dolly synthetic range
    }
    let yy = (d[4] * 10 + d[5]) as i32;
    let ind = d[6] * 100 + d[7] * 10 + d[8];
    let year = match ind {
        0..=499 => 1900 + yy,
        500..=749 if yy >= 55 => 1800 + yy,
        900..=999 if yy >= 40 => 1900 + yy,
        500..=999 if yy < 40 => 2000 + yy,
        _ => 1900 + yy,
    };
    let birth_date = NaiveDate::from_ymd_opt(year, month, day);
    if birth_date.is_none() && kind != PersonIdKind::Hnr {
        return Err(PersonIdError::Date);
    }
    Ok(PersonNumber {
        kind,
        birth_date,
        male: Some(d[8] % 2 == 1),
    })
}

/// Validate a person number that a message declares to be of `declared` kind.
pub fn check_declared(s: &str, declared: PersonIdKind) -> Result<PersonNumber, PersonIdError> {
    let p = parse_person_number(s)?;
    if p.kind != declared {
        // A synthetic "Dolly" FNR (month + 40) classifies as H-number; accept it as declared FNR.
        let dolly = declared == PersonIdKind::Fnr && p.kind == PersonIdKind::Hnr;
        if !dolly {
            return Err(PersonIdError::KindMismatch);
        }
        return Ok(PersonNumber {
            kind: declared,
            ..p
        });
    }
    Ok(p)
}

/// Build a valid person number from its first nine digits, if the check digits exist.
pub fn complete_person_number(first9: &str) -> Option<String> {
    let b = first9.as_bytes();
    if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut d = [0u32; 9];
    for (i, c) in b.iter().enumerate() {
        d[i] = u32::from(c - b'0');
    }
    let (k1, k2) = check_digits(&d)?;
    Some(format!("{first9}{k1}{k2}"))
}

/// Organisation number (Enhetsregisteret): 9 digits, mod-11 with weights 3 2 7 6 5 4 3 2.
pub fn valid_org_number(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d: Vec<u32> = b.iter().map(|c| u32::from(c - b'0')).collect();
    match check_digit(&[3, 2, 7, 6, 5, 4, 3, 2], &d[..8]) {
        Some(k) => k == d[8],
        None => false,
    }
}

/// HER-id: a positive integer (the address register assigns them; no check digit).
pub fn valid_her_id(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && t.len() <= 10
        && t.bytes().all(|c| c.is_ascii_digit())
        && t.bytes().any(|c| c != b'0')
}

/// HPR-number: a positive integer of up to 9 digits.
pub fn valid_hpr_number(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && t.len() <= 9
        && t.bytes().all(|c| c.is_ascii_digit())
        && t.bytes().any(|c| c != b'0')
}

/// Mask an identifier for display where some trace is needed (never in logs): keeps the length only.
pub fn redact(s: &str) -> String {
    format!("<{} chars>", s.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_from_the_standard() {
        let p = parse_person_number("01015000232").unwrap();
        assert_eq!(p.kind, PersonIdKind::Fnr);
        assert_eq!(p.birth_date, NaiveDate::from_ymd_opt(1950, 1, 1));
        assert_eq!(
            parse_person_number("01015000322"),
            Err(PersonIdError::CheckDigit1)
        );
    }

    #[test]
    fn classification() {
        let d = complete_person_number("410150002").unwrap();
        assert_eq!(parse_person_number(&d).unwrap().kind, PersonIdKind::Dnr);
        let h = complete_person_number("014150002").unwrap();
        assert_eq!(parse_person_number(&h).unwrap().kind, PersonIdKind::Hnr);
        let fh = complete_person_number("812345678")
            .unwrap_or_else(|| complete_person_number("812345679").unwrap());
        assert_eq!(parse_person_number(&fh).unwrap().kind, PersonIdKind::Fhn);
        assert!(parse_person_number("1234").is_err());
    }

    #[test]
    fn org_numbers() {
        assert!(valid_org_number("974744570"));
        assert!(!valid_org_number("974744571"));
    }
}
