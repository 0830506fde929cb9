//! Property tests: nothing panics on hostile input, mutated real messages always end in a
//! decision, and person numbers round-trip through their check digits.

mod common;

use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};
use kadgate::check::{Checker, Disposition, Mode, Outcome, Rules};
use kadgate::config::Config;
use kadgate::ident::{complete_person_number, parse_person_number, PersonIdError, PersonIdKind};
use kadgate::xsd::SchemaSet;
use proptest::prelude::*;

const HENVISNING: &str =
    "henvisning/examples/sarepta-akseptansetest/TestcaseHenvisningMottak/Case1.xml";
const DIALOG_11: &str = "dialogmelding/examples/sarepta/Dialogmelding-v1-1/Status_paa_henvisning-InnkaltEtterViderehenvisning.xml";

fn rules() -> &'static Rules {
    static R: OnceLock<Rules> = OnceLock::new();
    R.get_or_init(|| Rules::from_config(&Config::demo()))
}

fn schemas() -> &'static SchemaSet {
    static S: OnceLock<SchemaSet> = OnceLock::new();
    S.get_or_init(|| SchemaSet::load(&common::standards().join("kith")).expect("schema set loads"))
}

fn checker() -> Checker<'static> {
    Checker {
        rules: rules(),
        schemas: Some(schemas()),
        mode: Mode::Serve,
    }
}

fn example(rel: &str) -> &'static [u8] {
    static H: OnceLock<Vec<u8>> = OnceLock::new();
    static D: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = match rel {
        HENVISNING => &H,
        DIALOG_11 => &D,
        _ => unreachable!("unknown example {rel}"),
    };
    cell.get_or_init(|| std::fs::read(common::kith(rel)).expect("example readable"))
}

/// The outcome is a decision: receipts exactly when the disposition says we answer.
fn assert_decided(o: &Outcome) -> Result<(), TestCaseError> {
    match o.disposition {
        Disposition::Accepted => prop_assert!(
            !o.receipts.is_empty(),
            "accepted without a receipt: {:?}",
            o.findings
        ),
        Disposition::NotAddressed | Disposition::Unreadable | Disposition::IncomingReceipt => {
            prop_assert!(
                o.receipts.is_empty(),
                "{:?} with {} receipt(s)",
                o.disposition,
                o.receipts.len()
            )
        }
        // A rejection is answered with negative receipts, or cannot be answered at all.
        Disposition::Rejected => {}
    }
    if !o.well_formed {
        prop_assert_ne!(
            o.schema_valid,
            Some(true),
            "not well-formed yet schema-valid"
        );
    }
    Ok(())
}

/// Bytes that look a bit like XML, so the reader gets past the first byte more often.
fn xmlish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"<".to_vec()),
        Just(b">".to_vec()),
        Just(b"</".to_vec()),
        Just(b"/>".to_vec()),
        Just(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>".to_vec()),
        Just(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>".to_vec()),
        Just(b"<!DOCTYPE x [<!ENTITY e \"&e;&e;\">]>".to_vec()),
        Just(b"<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\">".to_vec()),
        Just(b"</MsgHead>".to_vec()),
        Just(b"<AppRec xmlns=\"http://www.kith.no/xmlstds/apprec/2012-02-15\">".to_vec()),
        Just(b"<![CDATA[".to_vec()),
        Just(b"]]>".to_vec()),
        Just(b"<!--".to_vec()),
        Just(b"-->".to_vec()),
        Just(b"&amp;".to_vec()),
        Just(b"&#0;".to_vec()),
        Just(b"&#xFFFF;".to_vec()),
        Just(b"&unknown;".to_vec()),
        Just(b" a=\"".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"xmlns:p=\"urn:x\"".to_vec()),
        Just(b"p:".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xFF\xFE".to_vec()),
        "[a-zA-Z0-9 ]{0,8}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..4),
    ];
    prop::collection::vec(token, 0..64).prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Flip(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Positions are fractions of the length (per mille), applied to whichever message is mutated.
    let pos = 0usize..=1000;
    let span = 0usize..=200;
    prop_oneof![
        pos.clone().prop_map(Mutation::Truncate),
        (pos.clone(), span.clone()).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (pos.clone(), span).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
        (pos, 1u8..=255).prop_map(|(a, x)| Mutation::Flip(a, x)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |permille: usize, len: usize| (len * permille / 1000).min(len);
    let len = bytes.len();
    match *m {
        Mutation::Truncate(p) => bytes.truncate(at(p, len)),
        Mutation::Delete(p, n) => {
            let a = at(p, len);
            let b = (a + n).min(len);
            bytes.drain(a..b);
        }
        Mutation::Duplicate(p, n) => {
            let a = at(p, len);
            let b = (a + n).min(len);
            let copy = bytes[a..b].to_vec();
            bytes.splice(b..b, copy);
        }
        Mutation::Flip(p, x) => {
            if len > 0 {
                let i = at(p, len - 1);
                bytes[i] ^= x;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scan_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = kadgate::xml::scan(&bytes, &rules().limits);
    }

    #[test]
    fn scan_never_panics_on_xmlish(bytes in xmlish()) {
        let _ = kadgate::xml::scan(&bytes, &rules().limits);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn check_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        assert_decided(&checker().check(&bytes))?;
    }

    #[test]
    fn check_never_panics_on_xmlish(bytes in xmlish()) {
        assert_decided(&checker().check(&bytes))?;
    }

    #[test]
    fn validate_never_panics(bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..2048), xmlish()]) {
        let r = schemas().validate(&bytes);
        let _ = r.schema_valid();
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_examples_are_decided(
        dialog in any::<bool>(),
        muts in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = example(if dialog { DIALOG_11 } else { HENVISNING }).to_vec();
        for m in &muts {
            apply(&mut bytes, m);
        }
        assert_decided(&checker().check(&bytes))?;
    }
}

/// A valid birth date + individual number + FNR/D-number choice, as the first nine digits.
#[derive(Debug, Clone)]
struct Prefix {
    date: NaiveDate,
    individual: u32,
    d_number: bool,
}

impl Prefix {
    fn digits(&self) -> String {
        let day = self.date.day() + if self.d_number { 40 } else { 0 };
        format!(
            "{day:02}{:02}{:02}{:03}",
            self.date.month(),
            self.date.year() % 100,
            self.individual
        )
    }
}

fn prefix() -> impl Strategy<Value = Prefix> {
    (
        1855i32..=2039,
        1u32..=12,
        0u32..31,
        0u32..1000,
        any::<bool>(),
    )
        .prop_map(|(year, month, day_seed, ind_seed, d_number)| {
            let first = NaiveDate::from_ymd_opt(year, month, 1).expect("first of month");
            let next = if month == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(year, month + 1, 1)
            }
            .expect("first of next month");
            let days = u32::try_from((next - first).num_days()).expect("days in month");
            let date = NaiveDate::from_ymd_opt(year, month, 1 + day_seed % days).expect("date");
            // Individual-number ranges per century (FACTS §10).
            let yy = year % 100;
            let individual = match year {
                ..=1899 => 500 + ind_seed % 250,
                1900..=1999 if yy >= 40 => {
                    let k = ind_seed % 600;
                    if k < 500 {
                        k
                    } else {
                        900 + (k - 500)
                    }
                }
                1900..=1999 => ind_seed % 500,
                _ => 500 + ind_seed % 500,
            };
            Prefix {
                date,
                individual,
                d_number,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn person_numbers_round_trip(p in prefix()) {
        let first9 = p.digits();
        match complete_person_number(&first9) {
            None => {
                // No check digits exist for this prefix: no completion of it is valid.
                for k in 0..100 {
                    let s = format!("{first9}{k:02}");
                    prop_assert!(parse_person_number(&s).is_err(), "{s} parsed");
                }
            }
            Some(n) => {
                prop_assert_eq!(n.len(), 11);
                prop_assert!(n.starts_with(&first9));
                let parsed = parse_person_number(&n)
                    .map_err(|e| TestCaseError::fail(format!("{n}: {e}")))?;
                let kind = if p.d_number { PersonIdKind::Dnr } else { PersonIdKind::Fnr };
                prop_assert_eq!(parsed.kind, kind, "{}", n);
                prop_assert_eq!(parsed.birth_date, Some(p.date), "{}", n);
                prop_assert_eq!(parsed.male, Some(p.individual % 2 == 1), "{}", n);

                // Mod 11 with weights that are all non-zero mod 11 catches every single-digit change.
                let digits = n.as_bytes();
                for i in 0..11 {
                    for c in b'0'..=b'9' {
                        if c == digits[i] {
                            continue;
                        }
                        let mut changed = digits.to_vec();
                        changed[i] = c;
                        let changed = String::from_utf8(changed).expect("ascii");
                        let want = if i < 10 {
                            PersonIdError::CheckDigit1
                        } else {
                            PersonIdError::CheckDigit2
                        };
                        prop_assert_eq!(
                            parse_person_number(&changed).err(),
                            Some(want),
                            "{} -> {}",
                            n,
                            changed
                        );
                    }
                }
            }
        }
    }
}
