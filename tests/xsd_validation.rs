//! XSD validation against the shared KITH standards: verdicts for every example listed in
//! `standards/kith/VALIDATION.md`, thread-safety, hostile input and redaction.
//!
//! The standards folder is `$KADGATE_STANDARDS_DIR`, else `$CARGO_MANIFEST_DIR/../shared/standards`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kadgate::xsd::{SchemaSet, XsdReport};

mod common;

use common::{kith_verdicts as expectations, Verdict as Expected};

fn kith_dir() -> PathBuf {
    common::standards().join("kith")
}

/// One compiled schema set shared by the tests of this binary (they run on several threads).
fn schemas() -> &'static SchemaSet {
    static SET: OnceLock<SchemaSet> = OnceLock::new();
    SET.get_or_init(|| {
        let started = Instant::now();
        let set = SchemaSet::load(&kith_dir()).expect("KITH schema set compiles");
        eprintln!(
            "compiled {} schema files in {:?}",
            set.schema_count(),
            started.elapsed()
        );
        set
    })
}

fn verdict(report: &XsdReport) -> Expected {
    if !report.well_formed {
        Expected::NotWellFormed
    } else if report.schema_valid() {
        Expected::Valid
    } else {
        Expected::Invalid
    }
}

fn load_examples() -> Vec<(Expected, PathBuf, Vec<u8>)> {
    expectations()
        .into_iter()
        .map(|(e, p)| {
            let bytes = std::fs::read(&p).unwrap_or_else(|err| panic!("{}: {err}", p.display()));
            (e, p, bytes)
        })
        .collect()
}

#[test]
fn verdicts_agree_with_validation_md() {
    let set = schemas();
    let examples = load_examples();
    assert_eq!(examples.len(), 238, "VALIDATION.md lists 238 example files");
    let started = Instant::now();
    let mut disagreements = Vec::new();
    for (expected, path, bytes) in &examples {
        let report = set.validate(bytes);
        let got = verdict(&report);
        if got != *expected {
            disagreements.push(format!(
                "{}: expected {expected:?}, got {got:?}; findings: {:?}",
                path.display(),
                report
                    .findings
                    .iter()
                    .take(3)
                    .map(|f| format!("{} {}", f.path, f.message))
                    .collect::<Vec<_>>()
            ));
        }
        for f in &report.findings {
            assert!(
                f.path.starts_with('/'),
                "{}: path {:?}",
                path.display(),
                f.path
            );
            assert!(
                !f.message.contains("http://www.kith.no/xmlstds/"),
                "namespace not shortened: {}",
                f.message
            );
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "validated {} examples in {elapsed:?} ({:?} per message)",
        examples.len(),
        elapsed / examples.len() as u32
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

#[test]
fn findings_carry_element_paths() {
    let path = kith_dir().join(
        "dialogmelding/examples/sarepta-akseptansetest/Testcase-Dialogmeldingen/Case1-16b.xml",
    );
    let report = schemas().validate(&std::fs::read(path).unwrap());
    assert!(report.well_formed);
    assert_eq!(report.validated_root.as_deref(), Some("MsgHead"));
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.path == "/MsgHead/MsgInfo/Sender" && f.code == "xsd.invalid"),
        "{:?}",
        report.findings
    );
}

#[test]
fn fellesformat_validates_the_kith_child() {
    let report = schemas().validate(
        br#"<?xml version="1.0"?>
<EI_fellesformat xmlns="http://www.trygdeetaten.no/xml/eiff/1/">
  <MottakenhetBlokk xmlns="http://www.nav.no/xml/eiff/2/" ediLoggId="x"/>
  <AppRec xmlns="http://www.kith.no/xmlstds/apprec/2004-11-21"><Broken/></AppRec>
</EI_fellesformat>"#,
    );
    assert!(report.well_formed);
    assert_eq!(report.validated_root.as_deref(), Some("AppRec"));
    assert!(!report.schema_valid());
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.path.starts_with("/AppRec")),
        "{:?}",
        report.findings
    );
}

#[test]
fn one_schema_set_serves_many_threads() {
    let set = schemas();
    let examples = load_examples();
    let expected: Vec<Expected> = examples
        .iter()
        .map(|(_, _, b)| verdict(&set.validate(b)))
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let examples = &examples;
                let expected = &expected;
                scope.spawn(move || {
                    // Each thread walks the list from a different offset, twice.
                    let n = examples.len();
                    for i in 0..2 * n {
                        let k = (i + t * 57) % n;
                        let got = verdict(&set.validate(&examples[k].2));
                        assert_eq!(
                            got,
                            expected[k],
                            "{} on thread {t}",
                            examples[k].1.display()
                        );
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("validation thread panicked");
        }
    });
}

#[test]
fn a_second_schema_set_is_independent() {
    // Threads that used the shared set switch to another one and back.
    let other = SchemaSet::load(&kith_dir()).unwrap();
    let apprec =
        std::fs::read(kith_dir().join("apprec/examples/fiks-nhn-client/unknown-migversion.xml"))
            .unwrap();
    for _ in 0..3 {
        assert!(!schemas().validate(&apprec).schema_valid());
        assert!(!other.validate(&apprec).schema_valid());
    }
    drop(other);
    assert!(!schemas().validate(&apprec).schema_valid());
}

#[test]
fn missing_folder_is_an_error() {
    assert!(SchemaSet::load(Path::new("/nonexistent/kith")).is_err());
}

#[test]
fn external_entities_and_dtds_are_never_loaded() {
    let set = schemas();
    // A local file with a marker, next to /etc/passwd: neither may ever be read into a report.
    let mut secret = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut secret, b"KADGATE-SECRET-MARKER").unwrap();
    let secret_url = format!("file://{}", secret.path().display());
    for target in ["file:///etc/passwd", "/etc/passwd", secret_url.as_str()] {
        let docs = [
            format!(
                r#"<?xml version="1.0"?>
<!DOCTYPE MsgHead [ <!ENTITY xxe SYSTEM "{target}"> ]>
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"><MsgInfo>&xxe;</MsgInfo></MsgHead>"#
            ),
            format!(
                r#"<?xml version="1.0"?>
<!DOCTYPE MsgHead SYSTEM "{target}">
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"/>"#
            ),
            format!(
                r#"<?xml version="1.0"?>
<!DOCTYPE MsgHead [ <!ENTITY % p SYSTEM "{target}"> %p; ]>
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"/>"#
            ),
            format!(
                r#"<?xml version="1.0"?>
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.kith.no/xmlstds/msghead/2006-05-24 {target}"/>"#
            ),
        ];
        for doc in &docs {
            let started = Instant::now();
            let report = set.validate(doc.as_bytes());
            assert!(started.elapsed() < Duration::from_secs(1));
            assert!(!report.schema_valid(), "{report:?}");
            let text = format!("{report:?}");
            assert!(
                !text.contains("root:x:0:0") && !text.contains("KADGATE-SECRET-MARKER"),
                "external content leaked: {text}"
            );
        }
    }
}

#[test]
fn billion_laughs_is_refused_quickly() {
    let mut doc =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    doc.push_str(" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 2..=9 {
        let prev = format!("&lol{};", i - 1);
        doc.push_str(&format!(" <!ENTITY lol{i} \"{}\">\n", prev.repeat(10)));
    }
    doc.push_str("]>\n<lolz>&lol9;</lolz>\n");
    let started = Instant::now();
    let report = schemas().validate(doc.as_bytes());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(!report.schema_valid(), "{report:?}");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let set = schemas();
    let valid =
        std::fs::read(kith_dir().join("apprec/examples/fiks-nhn-client/unknown-migversion.xml"))
            .unwrap();
    // A small deterministic xorshift generator: random bytes, and mutations of a real message.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..300 {
        let bytes: Vec<u8> = if round % 2 == 0 {
            let len = (next() % 512) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let mut b = valid.clone();
            for _ in 0..(1 + next() % 8) {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            b
        };
        let report = set.validate(&bytes);
        if !report.well_formed {
            assert!(!report.findings.is_empty());
        }
    }
    for input in [
        &b""[..],
        b"<",
        b"<a/>",
        b"\xff\xfe<\x00a\x00/\x00>\x00",
        b"<?xml version=\"1.0\" encoding=\"nope\"?><a/>",
    ] {
        let report = set.validate(input);
        assert!(!report.schema_valid(), "{input:?}");
    }
}

#[test]
fn oversized_input_is_refused() {
    let big = vec![b' '; kadgate::xsd::MAX_INPUT_BYTES + 1];
    let report = schemas().validate(&big);
    assert!(!report.well_formed);
    assert_eq!(report.findings.len(), 1);
}

#[test]
fn iso_8859_1_is_honoured() {
    let path = kith_dir().join("apprec/examples/fiks-nhn-client/unknown-migversion.xml");
    let utf8 = String::from_utf8(std::fs::read(path).unwrap()).unwrap();
    // Re-encode as ISO-8859-1 with a matching declaration; the verdict must not change.
    let body = utf8.split_once("?>").map(|(_, b)| b).unwrap_or(&utf8);
    let mut latin1: Vec<u8> = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>".to_vec();
    latin1.extend(body.chars().map(|c| u32::from(c).min(0xFF) as u8));
    let a = schemas().validate(utf8.as_bytes());
    let b = schemas().validate(&latin1);
    assert!(b.well_formed, "{b:?}");
    assert_eq!(a.findings.len(), b.findings.len());
}

#[test]
fn instance_values_are_redacted() {
    let path = kith_dir().join(
        "dialogmelding/examples/padm2-fellesformat/dialogmelding_dialog_svar_innkalling_dialogmote.xml",
    );
    let original = String::from_utf8(std::fs::read(path).unwrap()).unwrap();
    assert!(original.contains("1991-12-4"));
    for secret in ["1991-12-4", "19x1-secret-77", "O'Brien-13"] {
        let doc = original.replace("1991-12-4", secret);
        let report = schemas().validate(doc.as_bytes());
        assert!(report.well_formed && !report.schema_valid(), "{report:?}");
        let finding = report
            .findings
            .iter()
            .find(|f| f.path.ends_with("/Patient/DateOfBirth"))
            .unwrap_or_else(|| panic!("no DateOfBirth finding: {:?}", report.findings));
        assert!(
            finding.message.contains("DateOfBirth"),
            "{}",
            finding.message
        );
        for f in &report.findings {
            assert!(!f.message.contains(secret), "value leaked: {}", f.message);
            assert!(
                !f.message.contains("secret") && !f.message.contains("Brien"),
                "value leaked: {}",
                f.message
            );
        }
    }
}
