//! KITH encoders: every valid example of Henvisning 1.1 / 2.0, Epikrise 1.2 and Dialogmelding 1.1
//! is decoded, re-encoded in its own format and checked by one helper ([`check`]):
//! (a) the output validates against the official XSDs,
//! (b) the original and the output are equal as element trees (namespace-aware, whitespace in
//!     text collapsed, attribute order ignored) except for the differences named in [`LOSSES`],
//! (c) decoding the output gives the same model as decoding the original.
//! Also: cross-version encoding, sparse hand-built models, typed errors, and a property test that
//! encoding mutated models never panics and stays schema-valid.
//!
//! `LOSSES` is the one list of documented losses; `docs/mapping/kith.md` describes each of them.

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use kadgate::kith::decode::decode;
use kadgate::kith::detect::{detect, Detection};
use kadgate::kith::encode::{encode, EncodeError};
use kadgate::model::{
    Address, Body, Code, Conversation, Diagnosis, Dialog, Epicrisis, Format, Header, Ident,
    Message, Observation, Organisation, Patient, PatientIdent, Professional, Referral, Sex,
    TextRole, TextSection,
};
use kadgate::xml::{scan, Element, Limits};
use kadgate::xsd::SchemaSet;
use proptest::prelude::*;

fn schemas() -> &'static SchemaSet {
    static SET: OnceLock<SchemaSet> = OnceLock::new();
    SET.get_or_init(|| SchemaSet::load(&common::kith("")).expect("KITH schema set compiles"))
}

// ------------------------------------------------------------------ the documented losses

/// What kind of difference a loss covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Diff {
    /// The element (and its subtree) is in the original and not in the output.
    Dropped,
    /// The element is in the output and not in the original.
    Added,
    /// An attribute differs (name given).
    Attr(&'static str),
    /// The element's own text differs.
    Text,
    /// Mixed XHTML content was flattened to plain text (the words are compared and must match).
    Flattened,
    /// Repeated siblings of this name may come back in another order (they are matched by
    /// content; each must still have an equal counterpart).
    Reordered,
}

/// One documented loss: a path suffix (local names, `*` = any one element; for an attribute, the
/// element carrying it), the kind of difference and why.
struct Loss {
    path: &'static str,
    diff: Diff,
    why: &'static str,
}

/// Every difference a round trip may show. Keep in step with `docs/mapping/kith.md` (section
/// "Round-trip losses").
const LOSSES: &[Loss] = &[
    Loss { path: "ComMethod", diff: Diff::Dropped, why: "communication method of a party is not in the model" },
    Loss { path: "Requester/Role", diff: Diff::Dropped, why: "fixed role code of the party element, not in the model" },
    Loss { path: "ServProvider/Role", diff: Diff::Dropped, why: "fixed role code of the party element, not in the model" },
    Loss { path: "Address/Type", diff: Diff::Attr("DN"), why: "an address type is kept as its code only (the model's address kind is a plain code)" },
    Loss { path: "TypeTelecom", diff: Diff::Attr("DN"), why: "a telecom type is kept as its code only" },
    Loss { path: "TypeId", diff: Diff::Attr("DN"), why: "identifier types are written with kadgate's own 9051/8116 texts" },
    Loss { path: "Ack", diff: Diff::Attr("DN"), why: "the acknowledgement request is kept as its code only" },
    Loss { path: "ProcessingStatus", diff: Diff::Attr("DN"), why: "the processing status is kept as its code only" },
    Loss { path: "OtherReceiver/RoleReceiver", diff: Diff::Attr("DN"), why: "a copy receiver's role is kept as its code only" },
    Loss { path: "*", diff: Diff::Attr("OT"), why: "the original text (OT) of a coded value is not in the model" },
    Loss { path: "Description", diff: Diff::Flattened, why: "XHTML in a description is read as plain text" },
    Loss { path: "TextResultValue", diff: Diff::Flattened, why: "XHTML in a text result is read as plain text" },
    Loss { path: "InfItem", diff: Diff::Reordered, why: "clinical items are grouped as texts, results, medications; their interleaving is not kept" },
    Loss { path: "MsgHead/Document/ContentDescription", diff: Diff::Dropped, why: "MsgHead document metadata is not in the model" },
];

fn loss_covers(l: &Loss, path: &str, diff: Diff) -> bool {
    if l.diff != diff {
        // Attribute losses name the attribute in the path pattern (`*/DN`).
        if let (Diff::Attr(a), Diff::Attr(b)) = (l.diff, diff) {
            if a != b {
                return false;
            }
        } else {
            return false;
        }
    }
    let pat: Vec<&str> = l.path.split('/').collect();
    let segs: Vec<&str> = path.split('/').collect();
    if pat.len() > segs.len() {
        return false;
    }
    let tail = &segs[segs.len() - pat.len()..];
    pat.iter()
        .zip(tail)
        .all(|(p, s)| *p == "*" || p == s || s.rsplit(':').next() == Some(*p))
}

// ------------------------------------------------------------------ element-tree comparison

const XHTML: &str = "http://www.w3.org/1999/xhtml";

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn no_space(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn deep_text(e: &Element, out: &mut String) {
    out.push_str(&e.text);
    for c in &e.children {
        deep_text(c, out);
    }
}

fn has_xhtml(e: &Element) -> bool {
    e.children.iter().any(|c| c.ns.as_deref() == Some(XHTML))
}

/// Differences between two trees as (path, kind, detail).
fn diff_trees(a: &Element, b: &Element, path: &str, out: &mut Vec<(String, Diff, String)>) {
    if a.ns != b.ns {
        out.push((
            path.into(),
            Diff::Text,
            format!("namespace {:?} vs {:?}", a.ns, b.ns),
        ));
    }
    if has_xhtml(a) || has_xhtml(b) {
        let (mut ta, mut tb) = (String::new(), String::new());
        deep_text(a, &mut ta);
        deep_text(b, &mut tb);
        if no_space(&ta) == no_space(&tb) {
            if has_xhtml(a) != has_xhtml(b) {
                out.push((path.into(), Diff::Flattened, String::new()));
            }
        } else {
            out.push((path.into(), Diff::Text, "flattened text differs".into()));
        }
        return;
    }
    let text_eq = if a.name == "Base64Container" {
        no_space(&a.text) == no_space(&b.text)
    } else {
        collapse(&a.text) == collapse(&b.text)
    };
    if !text_eq {
        out.push((
            path.into(),
            Diff::Text,
            format!("{:?} vs {:?}", collapse(&a.text), collapse(&b.text)),
        ));
    }
    let attrs = |e: &Element| -> BTreeSet<(String, String)> {
        e.attrs
            .iter()
            .filter(|x| x.ns.is_none())
            .map(|x| (x.name.clone(), x.value.trim().to_string()))
            .collect()
    };
    let (aa, ba) = (attrs(a), attrs(b));
    let names: BTreeSet<&String> = aa.iter().chain(ba.iter()).map(|(n, _)| n).collect();
    for n in names {
        let va = aa.iter().find(|(k, _)| k == n);
        let vb = ba.iter().find(|(k, _)| k == n);
        if va != vb {
            let name: &'static str = match n.as_str() {
                "V" => "V",
                "DN" => "DN",
                "S" => "S",
                "U" => "U",
                "OT" => "OT",
                _ => "other",
            };
            out.push((path.into(), Diff::Attr(name), format!("{va:?} vs {vb:?}")));
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for c in a.children.iter().chain(&b.children) {
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    for n in names {
        let mut ca: Vec<&Element> = a.children.iter().filter(|c| c.name == n).collect();
        let mut cb: Vec<&Element> = b.children.iter().filter(|c| c.name == n).collect();
        let p = format!("{path}/{n}");
        if LOSSES.iter().any(|l| loss_covers(l, &p, Diff::Reordered)) {
            // Pair each original child with an equal output child first; the rest by position.
            let mut i = 0;
            while i < ca.len() {
                let equal = cb.iter().enumerate().find_map(|(j, y)| {
                    let mut d = Vec::new();
                    diff_trees(ca[i], y, &p, &mut d);
                    d.iter()
                        .all(|(dp, dd, _)| LOSSES.iter().any(|l| loss_covers(l, dp, *dd)))
                        .then_some((j, d))
                });
                match equal {
                    Some((j, d)) => {
                        out.extend(d);
                        ca.remove(i);
                        cb.remove(j);
                    }
                    None => i += 1,
                }
            }
        }
        for (x, y) in ca.iter().zip(&cb) {
            diff_trees(x, y, &p, out);
        }
        for _ in cb.len()..ca.len() {
            out.push((p.clone(), Diff::Dropped, String::new()));
        }
        for _ in ca.len()..cb.len() {
            out.push((p.clone(), Diff::Added, String::new()));
        }
    }
}

// ------------------------------------------------------------------ the one check

fn read(bytes: &[u8]) -> (Element, Message, Format) {
    let doc = scan(bytes, &Limits::default()).expect("readable");
    let root = doc.root;
    let (msg, kind) = match detect(&root) {
        Detection::Known(d) => (decode(&d).message, d.inner.unwrap_or(d.format)),
        _ => panic!("not recognised"),
    };
    (root, msg, kind)
}

/// The KITH root used for comparison (the MsgHead or basismelding `Message`).
fn kith_root(root: &Element) -> &Element {
    if root.name == "EI_fellesformat" {
        return root.children.first().unwrap_or(root);
    }
    root
}

/// Decode → encode (same format) → (a) XSD-valid, (b) tree equal up to LOSSES, (c) same model.
/// Returns the indexes of the losses that were needed.
fn check(rel: &str) -> Result<BTreeSet<usize>, String> {
    let bytes = std::fs::read(common::kith(rel)).map_err(|e| e.to_string())?;
    let (orig_root, model, format) = read(&bytes);
    let out = encode(&model, format).map_err(|e| format!("encode: {e}"))?;
    let report = schemas().validate(&out);
    if !report.schema_valid() {
        return Err(format!(
            "(a) not schema-valid: {:#?}\n{}",
            report.findings,
            String::from_utf8_lossy(&out)
        ));
    }
    let (new_root, again, _) = read(&out);
    let mut diffs = Vec::new();
    let a = kith_root(&orig_root);
    diff_trees(a, &new_root, &a.name, &mut diffs);
    let uncovered: Vec<_> = diffs
        .iter()
        .filter(|(p, d, _)| !LOSSES.iter().any(|l| loss_covers(l, p, *d)))
        .collect();
    if !uncovered.is_empty() {
        return Err(format!("(b) undocumented differences: {uncovered:#?}"));
    }
    let used: BTreeSet<usize> = diffs
        .iter()
        .filter_map(|(p, d, _)| LOSSES.iter().position(|l| loss_covers(l, p, *d)))
        .collect();
    let mut expected = model.clone();
    // Fellesformat is NAV's envelope around the KITH message; kadgate writes the KITH message.
    expected.header.fellesformat = false;
    if again != expected {
        return Err(format!(
            "(c) model differs after the round trip:\n original: {expected:#?}\n again: {again:#?}"
        ));
    }
    Ok(used)
}

/// The example files of the four encoded kinds that VALIDATION.md lists as VALID.
fn valid_examples() -> Vec<(String, Format)> {
    let table = std::fs::read_to_string(common::kith("VALIDATION.md")).expect("VALIDATION.md");
    let valid: BTreeSet<String> = table
        .lines()
        .filter(|l| l.starts_with("| VALID |"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_string))
        .collect();
    let mut out = Vec::new();
    for rel in valid {
        let Ok(bytes) = std::fs::read(common::kith(&rel)) else {
            continue;
        };
        let Ok(doc) = scan(&bytes, &Limits::default()) else {
            continue;
        };
        if let Detection::Known(d) = detect(&doc.root) {
            let kind = d.inner.unwrap_or(d.format);
            if matches!(
                kind,
                Format::Henvisning11
                    | Format::Henvisning20
                    | Format::Epikrise12
                    | Format::Dialogmelding11
            ) {
                out.push((rel, kind));
            }
        }
    }
    out
}

#[test]
fn every_valid_example_round_trips() {
    let files = valid_examples();
    let count = |f: Format| files.iter().filter(|(_, k)| *k == f).count();
    assert!(count(Format::Henvisning11) >= 3, "{files:?}");
    assert!(count(Format::Henvisning20) >= 8, "{files:?}");
    assert!(count(Format::Epikrise12) >= 2, "{files:?}");
    assert!(count(Format::Dialogmelding11) >= 4, "{files:?}");
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    for (f, _) in &files {
        match check(f) {
            Ok(u) => used.extend(u),
            Err(e) => failures.push(format!("{f}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // Every listed loss is one the examples really show (the list documents, it does not excuse).
    let unused: Vec<&str> = (0..LOSSES.len())
        .filter(|i| !used.contains(i) && LOSSES[*i].diff != Diff::Reordered)
        .map(|i| LOSSES[i].path)
        .collect();
    assert!(unused.is_empty(), "losses no example needs: {unused:?}");
}

#[test]
fn the_loss_list_is_needed_and_matching_works() {
    // Each named loss must match what it says, and an unlisted difference must not be covered.
    assert!(loss_covers(
        &LOSSES[0],
        "Message/ServReq/Requester/ComMethod",
        Diff::Dropped
    ));
    assert!(!LOSSES
        .iter()
        .any(|l| loss_covers(l, "Message/ServReq/Patient/OffId", Diff::Dropped)));
    assert!(!LOSSES.iter().any(|l| loss_covers(
        l,
        "Message/ServReq/Diagnosis/Concept",
        Diff::Attr("V")
    )));
    for l in LOSSES {
        assert!(!l.why.is_empty() && !l.path.is_empty());
    }
    // A changed patient id is caught by the comparison.
    let a = scan(
        b"<R xmlns=\"urn:x\"><OffId>1</OffId></R>",
        &Limits::default(),
    )
    .unwrap()
    .root;
    let b = scan(
        b"<R xmlns=\"urn:x\"><OffId>2</OffId></R>",
        &Limits::default(),
    )
    .unwrap()
    .root;
    let mut d = Vec::new();
    diff_trees(&a, &b, "R", &mut d);
    assert_eq!(d.len(), 1);
}

// ------------------------------------------------------------------ cross-version

#[test]
fn cross_version_referrals_are_schema_valid() {
    let mut n = 0;
    for (f, kind) in valid_examples() {
        let target = match kind {
            Format::Henvisning11 => Format::Henvisning20,
            Format::Henvisning20 => Format::Henvisning11,
            _ => continue,
        };
        let (_, model, _) = read(&std::fs::read(common::kith(&f)).unwrap());
        let out = encode(&model, target).unwrap_or_else(|e| panic!("{f}: {e}"));
        let r = schemas().validate(&out);
        assert!(r.schema_valid(), "{f} as {target:?}: {:#?}", r.findings);
        let (_, again, k) = read(&out);
        assert_eq!(k, target);
        let Body::Referral(x) = &again.body else {
            panic!("{f}")
        };
        let Body::Referral(o) = &model.body else {
            panic!("{f}")
        };
        assert_eq!(x.diagnoses, o.diagnoses, "{f}");
        assert_eq!(
            x.priority.as_ref().map(|p| &p.code),
            o.priority.as_ref().map(|p| &p.code),
            "{f}"
        );
        n += 1;
    }
    assert!(n >= 11);
}

// ------------------------------------------------------------------ sparse models

fn org(name: Option<&str>, her: &str) -> Organisation {
    Organisation {
        name: name.map(str::to_string),
        idents: vec![Ident::new(her, "HER")],
        ..Organisation::default()
    }
}

/// A synthetic patient: fødselsnummer 13116900216 (valid check digits, used by the examples).
fn sparse_patient() -> Patient {
    Patient {
        family_name: Some("Testesen".into()),
        given_name: Some("Tora".into()),
        idents: vec![PatientIdent {
            id: "13116900216".into(),
            kind: "FNR".into(),
        }],
        address: Some(Address {
            street: Some("Prøvegata 1".into()),
            postal_code: Some("0001".into()),
            city: Some("Oslo".into()),
            ..Address::default()
        }),
        ..Patient::default()
    }
}

fn header(format: Format) -> Header {
    Header {
        msg_id: Some("3f8a2c1e-0000-4000-8000-000000000001".into()),
        gen_date: Some("2024-05-02T10:00:00".into()),
        ..Header::new(format, "")
    }
}

fn sparse_referral() -> Message {
    let requester = Organisation {
        professional: Some(Professional {
            family_name: Some("Lege".into()),
            given_name: Some("Kari".into()),
            idents: vec![Ident::new("9144900", "HPR")],
            ..Professional::default()
        }),
        ..org(None, "56704")
    };
    let referral = Referral {
        patient: Some(sparse_patient()),
        requester: Some(requester),
        service_provider: Some(org(None, "59")),
        priority: Some(Code::new(
            "0",
            Some("urn:oid:2.16.578.1.12.4.1.1.8304"),
            None,
        )),
        diagnoses: vec![
            Diagnosis {
                code: Code::new(
                    "R07.4",
                    Some("http://hl7.org/fhir/sid/icd-10"),
                    Some("Brystsmerter"),
                ),
                ..Diagnosis::default()
            },
            Diagnosis {
                code: Code::new("K74", Some("urn:oid:2.16.578.1.12.4.1.1.7170"), None),
                ..Diagnosis::default()
            },
        ],
        texts: vec![TextSection {
            text: "Akutt innleggelse for observasjon.".into(),
            ..TextSection::default()
        }],
        plan: Some("Observasjon over natten, ny vurdering i morgen.".into()),
        observations: vec![Observation {
            code: Code::new("8867-4", Some("http://loinc.org"), Some("Puls")),
            value: Some(92.0),
            unit: Some("/min".into()),
            time: Some("2024-05-02T09:30:00+02:00".into()),
            ..Observation::default()
        }],
        ..Referral::default()
    };
    Message {
        header: header(Format::FhirR4),
        body: Body::Referral(Box::new(referral)),
    }
}

fn assert_valid(out: &[u8], what: &str) {
    let r = schemas().validate(out);
    assert!(
        r.schema_valid(),
        "{what}: {:#?}\n{}",
        r.findings,
        String::from_utf8_lossy(out)
    );
}

#[test]
fn sparse_referral_encodes_schema_valid_in_both_versions() {
    let m = sparse_referral();
    for f in [Format::Henvisning11, Format::Henvisning20] {
        let out = encode(&m, f).unwrap();
        assert_valid(&out, &format!("{f:?}"));
        let (_, again, _) = read(&out);
        let Body::Referral(x) = &again.body else {
            panic!()
        };
        assert_eq!(x.priority.as_ref().map(|p| p.code.as_str()), Some("0"));
        assert_eq!(x.diagnoses.len(), 2);
        assert_eq!(
            x.diagnoses[0].code.system.as_deref(),
            Some("2.16.578.1.12.4.1.1.7110")
        );
        assert_eq!(x.observations.len(), 1);
        assert_eq!(x.observations[0].value, Some(92.0));
        assert!(x
            .texts
            .iter()
            .any(|t| t.text.contains("Observasjon over natten")));
        let p = again.patient().unwrap();
        assert_eq!(p.idents[0].id, "13116900216");
        // Nothing about the patient was invented.
        assert_eq!(p.birth_date, None);
        assert_eq!(p.sex, None);
    }
}

#[test]
fn sparse_epicrisis_and_dialogue_encode_schema_valid() {
    let e = Epicrisis {
        patient: Some(sparse_patient()),
        service_provider: Some(org(Some("KAD Testby"), "80000")),
        requester: Some(org(None, "56704")),
        diagnoses: vec![Diagnosis {
            code: Code::new("J18.9", Some("2.16.578.1.12.4.1.1.7110"), None),
            confirmed: Some(true),
            ..Diagnosis::default()
        }],
        texts: vec![TextSection {
            heading: Some(Code::new("VU", None, Some("Vurdering"))),
            text: "Bedring.".into(),
            role: Some(TextRole::Comment),
            ..TextSection::default()
        }],
        referral_id: Some("ref-1".into()),
        ..Epicrisis::default()
    };
    let m = Message {
        header: header(Format::FhirR4),
        body: Body::Epicrisis(Box::new(e)),
    };
    let out = encode(&m, Format::Epikrise12).unwrap();
    assert_valid(&out, "epicrisis");
    let (_, again, _) = read(&out);
    let Body::Epicrisis(x) = &again.body else {
        panic!()
    };
    assert_eq!(x.referral_id.as_deref(), Some("ref-1"));
    assert_eq!(x.diagnoses[0].code.code, "J18.9");

    let d = Dialog {
        texts: vec![TextSection {
            text: "Pasienten er klar for utskrivning.".into(),
            ..TextSection::default()
        }],
        ..Dialog::default()
    };
    let mut h = header(Format::FhirR4);
    h.sender = Some(org(Some("KAD Testby"), "80000"));
    h.receiver = Some(org(None, "56704"));
    h.patient = Some(sparse_patient());
    h.conversation = Some(Conversation {
        ref_to_parent: Some("p".into()),
        ref_to_conversation: Some("c".into()),
    });
    let m = Message {
        header: h,
        body: Body::Dialog(Box::new(d)),
    };
    let out = encode(&m, Format::Dialogmelding11).unwrap();
    assert_valid(&out, "dialogue");
}

#[test]
fn what_cannot_be_defaulted_is_a_typed_error() {
    let mut m = sparse_referral();
    if let Body::Referral(r) = &mut m.body {
        r.patient = None;
    }
    assert_eq!(
        encode(&m, Format::Henvisning11),
        Err(EncodeError::NoPatient("referral"))
    );
    let e = encode(&m, Format::Henvisning20).unwrap_err();
    assert!(!e.to_string().contains("13116900216"));
    let mut m = sparse_referral();
    if let Body::Referral(r) = &mut m.body {
        r.service_provider = None;
    }
    assert_eq!(
        encode(&m, Format::Henvisning11),
        Err(EncodeError::NoParty("service provider"))
    );
    assert!(matches!(
        encode(&m, Format::Epikrise12),
        Err(EncodeError::WrongBody { .. })
    ));
    assert_eq!(
        encode(&m, Format::Plo16),
        Err(EncodeError::UnsupportedFormat(Format::Plo16))
    );
}

// ------------------------------------------------------------------ never panics

fn decoded_examples() -> &'static Vec<(Message, Format)> {
    static V: OnceLock<Vec<(Message, Format)>> = OnceLock::new();
    V.get_or_init(|| {
        valid_examples()
            .into_iter()
            .map(|(f, _)| {
                let (_, m, k) = read(&std::fs::read(common::kith(&f)).unwrap());
                (m, k)
            })
            .collect()
    })
}

/// Overwrite a handful of strings in the model with `s` (names, ids, dates, codes, texts).
fn mutate(m: &mut Message, s: &str, which: u8) {
    let set = |o: &mut Option<String>| *o = Some(s.to_string());
    match which % 8 {
        0 => set(&mut m.header.gen_date),
        1 => set(&mut m.header.msg_id),
        _ => {}
    }
    let patient = match &mut m.body {
        Body::Referral(r) => {
            match which % 8 {
                2 => set(&mut r.issue_date),
                3 => r.priority = Some(Code::new(s, Some(s), Some(s))),
                4 => r.texts.push(TextSection {
                    text: s.into(),
                    ..TextSection::default()
                }),
                5 => r.observations.push(Observation {
                    code: Code::new(s, None, None),
                    unit: Some(s.into()),
                    value: Some(f64::NAN),
                    ..Observation::default()
                }),
                _ => {}
            }
            r.patient.as_mut()
        }
        Body::Epicrisis(e) => {
            match which % 8 {
                2 => set(&mut e.admitted),
                3 => set(&mut e.status),
                4 => e.diagnoses.push(Diagnosis {
                    code: Code::new(s, Some(s), None),
                    ..Diagnosis::default()
                }),
                _ => {}
            }
            e.patient.as_mut()
        }
        Body::Dialog(d) => {
            match which % 8 {
                2 => set(&mut d.note_date),
                3 => d.topic = Some(Code::new(s, Some(s), Some(s))),
                4 => set(&mut d.document_id),
                _ => {}
            }
            None
        }
        _ => None,
    };
    if let Some(p) = patient {
        match which % 8 {
            6 => set(&mut p.birth_date),
            7 => p.sex = Some(Sex::Other),
            _ => set(&mut p.family_name),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn encoding_mutated_models_never_panics_and_stays_valid(
        pick in 0usize..1000,
        s in "\\PC{0,24}|[<>&\"' \\t\\n\u{1}]{0,6}|[0-9-T:]{0,20}",
        which in 0u8..16,
        target in 0usize..4,
    ) {
        let all = decoded_examples();
        let (m, own) = &all[pick % all.len()];
        let mut m = m.clone();
        mutate(&mut m, &s, which);
        let format = if target == 0 { *own } else {
            [Format::Henvisning11, Format::Henvisning20, Format::Epikrise12, Format::Dialogmelding11][target % 4]
        };
        if let Ok(out) = encode(&m, format) {
            prop_assert!(scan(&out, &Limits::default()).is_ok());
            let r = schemas().validate(&out);
            prop_assert!(r.schema_valid(), "{:?} {:?}: {:#?}", format, s, r.findings);
        }
    }
}
