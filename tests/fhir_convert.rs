//! FHIR R4 ↔ model conversion, on the shared examples.
//!
//! (a) every shared FHIR message/document example decodes without error findings and with the facts
//!     read from the files themselves; the broken ones give the findings they should;
//! (b) FHIR → model → FHIR → model is a fixed point, encoding is byte-for-byte deterministic, and
//!     all FHIR we produce passes the independent R4 oracle (one Node run for all files);
//! (c) every VALID KITH Henvisning, Epikrise and Dialogmelding example: KITH → model → FHIR passes
//!     the oracle, and FHIR → model equals the KITH model apart from the losses in [`LOSSES`]
//!     (the same list as `docs/mapping/fhir.md`, "Losses KITH → FHIR"); each loss must be needed;
//! (d) encoding never panics on mutated models; decoding never panics on mutated example JSON;
//! (e) a message of each body kind with every model field set survives model → FHIR → model
//!     unchanged, and its FHIR passes kadgate's validator and the oracle.

mod common;

use common::{each_at, each_org, strip_offset, Loss};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use kadgate::fhir::decode::decode;
use kadgate::fhir::encode::{encode, encode_epicrisis_message, response_message};
use kadgate::fhir::mapping::{self, ResponseCode};
use kadgate::finding::Severity;
use kadgate::kith::detect::{detect, Detection};
use kadgate::model::{Body, Format, Message, Organisation};
use kadgate::xml::{scan, Limits};
use proptest::prelude::*;
use serde_json::Value;

fn fhir_dir() -> PathBuf {
    common::standards().join("fhir/examples")
}

fn read_json(rel: &str) -> Value {
    let p = fhir_dir().join(rel);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------------------------------------------------------------- the oracle

/// Validate all documents in one Node run; panics with every failing file's first issues.
fn assert_oracle_valid(docs: &[(String, Value)]) {
    assert!(!docs.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (n, (name, v)) in docs.iter().enumerate() {
        let f = dir.path().join(format!("{n:04}.json"));
        std::fs::write(&f, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        files.push((f, name.clone()));
    }
    let out = Command::new("node")
        .arg(common::oracle_dir().join("validate.mjs"))
        .args(files.iter().map(|(f, _)| f))
        .output()
        .expect("node runs the oracle");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdicts: BTreeMap<String, Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v.get("file")?.as_str()?.to_string(), v)))
        .collect();
    let mut bad = Vec::new();
    for (f, name) in &files {
        let key = f.to_string_lossy().to_string();
        let v = verdicts
            .iter()
            .find(|(k, _)| k.ends_with(f.file_name().unwrap().to_str().unwrap()) || **k == key)
            .map(|(_, v)| v);
        match v {
            Some(v) if v["valid"] == Value::Bool(true) => {}
            Some(v) => {
                let issues: Vec<String> = v["issues"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|i| matches!(i["severity"].as_str(), Some("error" | "fatal")))
                    .take(3)
                    .map(|i| format!("{} at {}", i["message"], i["expression"]))
                    .collect();
                bad.push(format!("{name}: {}", issues.join("; ")));
            }
            None => bad.push(format!(
                "{name}: no verdict (stderr: {})",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} FHIR documents invalid:\n{}",
        bad.len(),
        docs.len(),
        bad.join("\n")
    );
}

// ---------------------------------------------------------------- (a) shared examples

/// What an example must decode to. Values read from the example files.
struct Case {
    file: &'static str,
    kind: &'static str,
    msg_type: &'static str,
    msg_id: Option<&'static str>,
    sender_her: Option<&'static str>,
    receiver_her: Option<&'static str>,
    patient_fnr: Option<&'static str>,
    /// Diagnosis codes (referral/epicrisis), or for a receipt: status word and error codes.
    codes: &'static [&'static str],
    /// Finding codes expected (all of them; an example without any lists none).
    findings: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        file: "own/kad-referral-message.json",
        kind: "referral",
        msg_type: "kad-henvisning",
        msg_id: Some("7f3c2a10-4b1e-4c1a-9d2e-0a1b2c3d4e01"),
        sender_her: Some("990001"),
        receiver_her: Some("990002"),
        patient_fnr: Some("13857444048"),
        codes: &["R81"],
        findings: &[],
    },
    Case {
        file: "own/epikrise-document.json",
        kind: "epicrisis",
        msg_type: "epikrise",
        msg_id: Some("c3d4e5f6-0000-4000-8000-000000000010"),
        sender_her: Some("990002"),
        receiver_her: None,
        patient_fnr: Some("13857444048"),
        codes: &[],
        // The referral in the document names a requester that is not in the document.
        findings: &["fhir.reference-unresolved"],
    },
    Case {
        file: "own/epikrise-message.json",
        kind: "epicrisis",
        msg_type: "epikrise",
        msg_id: Some("c3d4e5f6-0000-4000-8000-000000000021"),
        sender_her: Some("990002"),
        receiver_her: Some("990001"),
        patient_fnr: Some("13857444048"),
        codes: &[],
        findings: &["fhir.reference-unresolved"],
    },
    Case {
        file: "own/kad-referral-response-ok.json",
        kind: "receipt",
        msg_type: "kad-henvisning",
        msg_id: Some("9a7b0c1d-2e3f-4a5b-8c6d-000000000102"),
        sender_her: Some("990002"),
        receiver_her: Some("990001"),
        patient_fnr: None,
        codes: &["ok"],
        findings: &[],
    },
    Case {
        file: "own/kad-referral-response-fatal-error.json",
        kind: "receipt",
        msg_type: "kad-henvisning",
        msg_id: Some("9a7b0c1d-2e3f-4a5b-8c6d-000000000202"),
        sender_her: Some("990002"),
        receiver_her: Some("990001"),
        patient_fnr: None,
        codes: &["rejected", "required"],
        findings: &[],
    },
    Case {
        file: "hl7-r4/document/Bundle-father.json",
        kind: "epicrisis",
        msg_type: "epikrise",
        msg_id: Some("father"),
        sender_her: None,
        receiver_her: None,
        patient_fnr: None,
        codes: &[],
        findings: &[],
    },
    Case {
        file: "hl7-r4/messaging/Bundle-10bb101f-a121-4264-a920-67be9cb82c74.json",
        kind: "opaque",
        msg_type: "patient-link",
        msg_id: Some("267b18ce-3d37-4581-9baa-6fada338038b"),
        sender_her: None,
        receiver_her: None,
        patient_fnr: None,
        codes: &[],
        findings: &["fhir.focus-unsupported"],
    },
    Case {
        file: "own/broken-empty-message-bundle.json",
        kind: "opaque",
        msg_type: "",
        msg_id: None,
        sender_her: None,
        receiver_her: None,
        patient_fnr: None,
        codes: &[],
        findings: &["fhir.messageheader-missing"],
    },
    Case {
        file: "own/broken-messageheader-not-first.json",
        kind: "opaque",
        msg_type: "",
        msg_id: None,
        sender_her: None,
        receiver_her: None,
        patient_fnr: None,
        codes: &[],
        findings: &["fhir.messageheader-missing"],
    },
    Case {
        file: "own/broken-document-no-identifier-composition-not-first.json",
        kind: "opaque",
        msg_type: "epikrise",
        msg_id: None,
        sender_her: None,
        receiver_her: None,
        patient_fnr: None,
        codes: &[],
        findings: &["fhir.composition-missing"],
    },
    Case {
        file: "own/broken-response-code-not-in-valueset.json",
        kind: "receipt",
        msg_type: "kad-henvisning",
        msg_id: None,
        sender_her: Some("990002"),
        receiver_her: Some("990001"),
        patient_fnr: None,
        codes: &["rejected"],
        findings: &["fhir.response-code-unknown"],
    },
];

fn her(o: Option<&Organisation>) -> Option<&str> {
    o.and_then(Organisation::leaf_her_id)
}

fn check(c: &Case) {
    let json = read_json(c.file);
    let d = decode(&json);
    let mut codes: Vec<&str> = d.findings.iter().map(|f| f.code.as_str()).collect();
    codes.sort();
    codes.dedup();
    let mut want = c.findings.to_vec();
    want.sort();
    assert_eq!(codes, want, "{}: findings {:#?}", c.file, d.findings);
    if !c.file.contains("broken") {
        assert!(!d.findings.iter().any(|f| f.is_error()), "{}", c.file);
    }
    for f in &d.findings {
        assert!(f.code.starts_with("fhir."), "{}: {f:?}", c.file);
        assert!(
            !f.message.contains("13857444048") && !f.message.contains("Testesen"),
            "{f:?}"
        );
    }
    let m = d
        .message
        .unwrap_or_else(|| panic!("{}: no message", c.file));
    let h = &m.header;
    assert_eq!(h.format, Format::FhirR4, "{}", c.file);
    assert_eq!(h.msg_type, c.msg_type, "{}", c.file);
    if c.msg_id.is_some() {
        assert_eq!(h.msg_id.as_deref(), c.msg_id, "{}", c.file);
    }
    assert_eq!(her(h.sender.as_ref()), c.sender_her, "{}: sender", c.file);
    assert_eq!(
        her(h.receiver.as_ref()),
        c.receiver_her,
        "{}: receiver",
        c.file
    );
    let fnr = m
        .patient()
        .and_then(|p| p.idents.iter().find(|i| i.kind == "FNR"))
        .map(|i| i.id.as_str());
    assert_eq!(fnr, c.patient_fnr, "{}: patient", c.file);
    match (&m.body, c.kind) {
        (Body::Referral(r), "referral") => {
            let d: Vec<&str> = r.diagnoses.iter().map(|d| d.code.code.as_str()).collect();
            assert_eq!(d, c.codes, "{}", c.file);
            // The facts the admission rules read (REFERRAL-PROFILE.md).
            assert_eq!(
                r.priority.as_ref().map(|p| p.code.as_str()),
                Some("3"),
                "urgent → 3"
            );
            assert_eq!(her(r.service_provider.as_ref()), Some("990002"));
            assert_eq!(
                r.requester
                    .as_ref()
                    .and_then(|o| o.professional.as_ref())
                    .and_then(|p| p.hpr()),
                Some("9144889")
            );
            assert_eq!(r.texts.len(), 1);
            let p = r.patient.as_ref().unwrap();
            assert_eq!(
                p.address.as_ref().and_then(|a| a.municipality.as_deref()),
                Some("0301")
            );
            assert_eq!(p.birth_date.as_deref(), Some("1974-05-13"));
        }
        (Body::Epicrisis(e), "epicrisis") => {
            let d: Vec<&str> = e.diagnoses.iter().map(|d| d.code.code.as_str()).collect();
            assert_eq!(d, c.codes, "{}", c.file);
            assert!(!e.texts.is_empty(), "{}: texts", c.file);
            if c.file.starts_with("own/") {
                assert_eq!(e.status.as_deref(), Some("F"));
                assert_eq!(e.referral_id.as_deref(), Some("henv-1"));
                assert_eq!(e.admitted.as_deref(), Some("2026-03-02T12:00:00+01:00"));
                let sp = e.service_provider.as_ref().unwrap();
                assert_eq!(sp.her_id(), Some("990002"));
                assert_eq!(
                    sp.professional.as_ref().and_then(|p| p.hpr()),
                    Some("9144890")
                );
            }
        }
        (Body::Receipt(r), "receipt") => {
            assert_eq!(r.status.word(), c.codes[0], "{}", c.file);
            let e: Vec<&str> = r.errors.iter().map(|e| e.code.as_str()).collect();
            assert_eq!(e, &c.codes[1..], "{}", c.file);
            assert_eq!(
                r.original_msg_id.as_deref(),
                Some("7f3c2a10-4b1e-4c1a-9d2e-0a1b2c3d4e01")
            );
        }
        (Body::Opaque, "opaque") => {}
        (b, k) => panic!("{}: expected {k}, got {b:?}", c.file),
    }
}

#[test]
fn shared_fhir_examples_decode() {
    for c in CASES {
        check(c);
    }
}

#[test]
fn decoding_unreadable_input_gives_findings() {
    for v in [
        Value::Null,
        serde_json::json!([1, 2]),
        serde_json::json!({"resourceType": "Patient"}),
    ] {
        let d = decode(&v);
        assert!(d.message.is_none());
        assert_eq!(d.findings[0].code, "fhir.not-a-bundle");
    }
    let d = decode(&serde_json::json!({"resourceType": "Bundle", "type": "searchset"}));
    assert_eq!(d.findings[0].code, "fhir.bundle-type-unsupported");
    let mut j = read_json("own/kad-referral-message.json");
    j["entry"][1]["resource"]["subject"] = serde_json::json!({"reference": "urn:uuid:nowhere"});
    j["entry"][2]["resource"]["birthDate"] = serde_json::json!(1974);
    let d = decode(&j);
    let codes: Vec<&str> = d.findings.iter().map(|f| f.code.as_str()).collect();
    assert!(codes.contains(&"fhir.reference-unresolved"), "{codes:?}");
    assert!(d.message.unwrap().patient().is_none());
}

// ---------------------------------------------------------------- (b) FHIR round trip

/// Encode the way a message of this kind travels: an epicrisis that came as a message goes out as one.
fn encode_like(m: &Message, as_message: bool) -> Value {
    let r = if as_message && matches!(m.body, Body::Epicrisis(_)) {
        encode_epicrisis_message(m)
    } else {
        encode(m)
    };
    r.unwrap_or_else(|e| panic!("encode: {e}"))
}

#[test]
fn fhir_round_trip_is_a_fixed_point_and_valid() {
    let mut produced = Vec::new();
    for c in CASES
        .iter()
        .filter(|c| c.kind != "opaque" && !c.file.contains("broken"))
    {
        let src = read_json(c.file);
        let m1 = decode(&src).message.unwrap();
        let as_message = src["type"] == "message";
        let f1 = encode_like(&m1, as_message);
        let d2 = decode(&f1);
        assert!(
            !d2.findings.iter().any(|f| f.severity >= Severity::Warning),
            "{}: {:#?}",
            c.file,
            d2.findings
        );
        let m2 = d2.message.unwrap();
        assert_eq!(m1, m2, "{}: FHIR → model → FHIR → model", c.file);
        let f2 = encode_like(&m2, as_message);
        assert_eq!(
            serde_json::to_string(&f1).unwrap(),
            serde_json::to_string(&f2).unwrap(),
            "{}: deterministic",
            c.file
        );
        produced.push((c.file.to_string(), f1));
    }
    // The $process-message replies, for both outcomes.
    let req = decode(&read_json("own/kad-referral-message.json"))
        .message
        .unwrap()
        .header;
    let oo = serde_json::json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "required", "diagnostics": "no subject"}]});
    let ok = response_message(
        &req,
        ResponseCode::Ok,
        None,
        "2026-03-02T10:16:02+01:00",
        "9a7b0c1d-2e3f-4a5b-8c6d-000000000301",
    );
    let bad = response_message(
        &req,
        ResponseCode::FatalError,
        Some(oo.clone()),
        "2026-03-02T10:16:02+01:00",
        "9a7b0c1d-2e3f-4a5b-8c6d-000000000302",
    );
    assert_eq!(
        bad,
        response_message(
            &req,
            ResponseCode::FatalError,
            Some(oo),
            "2026-03-02T10:16:02+01:00",
            "9a7b0c1d-2e3f-4a5b-8c6d-000000000302"
        )
    );
    for (v, status) in [(&ok, "ok"), (&bad, "rejected")] {
        let m = decode(v).message.unwrap();
        let Body::Receipt(r) = &m.body else {
            panic!("not a receipt")
        };
        assert_eq!(r.status.word(), status);
        assert_eq!(r.original_msg_id, req.msg_id);
        assert_eq!(
            her(m.header.receiver.as_ref()),
            Some("990001"),
            "answered to the sender"
        );
        assert_eq!(her(m.header.sender.as_ref()), Some("990002"));
    }
    produced.push(("response ok".into(), ok));
    produced.push(("response fatal-error".into(), bad));
    assert_oracle_valid(&produced);
}

// ---------------------------------------------------------------- (c) KITH → model → FHIR → model

/// Drop the address, telecom and type of organisation levels without name and identifier; such a
/// level with a sub-unit is replaced by it. `true` when nothing is left.
fn strip_nameless(o: &mut Organisation) -> bool {
    if let Some(u) = o.unit.as_deref_mut() {
        if strip_nameless(u) {
            o.unit = None;
        }
    }
    if o.name.is_none() && o.idents.is_empty() {
        o.address = None;
        o.telecom.clear();
        o.kind = None;
        if let Some(u) = o.unit.take() {
            let p = o.professional.take();
            *o = *u;
            if o.professional.is_none() {
                o.professional = p;
            }
        }
    }
    *o == Organisation::default()
}

const LOSSES: &[Loss] = &[
    Loss {
        field: "header.format",
        why: "the wire format is the format itself: FhirR4 after the trip",
        apply: |m| m.header.format = Format::FhirR4,
    },
    Loss {
        field: "header.msg_type",
        why: "the 8279 type travels as the FHIR event code (mapping::event_of_msg_type, inverse msg_type_of_event)",
        apply: |m| m.header.msg_type = mapping::event_of_msg_type(&m.header.msg_type).unwrap_or_default(),
    },
    Loss {
        field: "header.ack, header.processing_status, header.fellesformat",
        why: "MsgHead transport flags; FHIR messaging has no such elements (reliable messaging is the receiver's cache)",
        apply: |m| {
            m.header.ack = None;
            m.header.processing_status = None;
            m.header.fellesformat = false;
        },
    },
    Loss {
        field: "header.patient",
        why: "a FHIR message has one Patient, the focus' subject: the header's patient is the body's (the KITH decoders make the body's a superset of MsgHead's)",
        apply: |m| {
            let body = match &m.body {
                Body::Referral(r) => r.patient.clone(),
                Body::Epicrisis(e) => e.patient.clone(),
                _ => None,
            };
            if body.is_some() {
                m.header.patient = body;
            }
        },
    },
    Loss {
        field: "date-times",
        why: "FHIR dateTime/instant need a UTC offset: a KITH local time gets Europe/Oslo's; compared without it",
        apply: |m| {
            let mut v = serde_json::to_value(&*m).unwrap();
            fn walk(v: &mut Value) {
                match v {
                    Value::String(s) => strip_offset(s),
                    Value::Array(a) => a.iter_mut().for_each(walk),
                    Value::Object(o) => o.values_mut().for_each(walk),
                    _ => {}
                }
            }
            walk(&mut v);
            *m = serde_json::from_value(v).unwrap();
        },
    },
    Loss {
        field: "organisation professional level",
        why: "a FHIR party is one reference: the professional is attached (PractitionerRole.organization) to the deepest unit",
        apply: |m| {
            each_org(m, &mut |o| {
                if o.unit.is_some() {
                    if let Some(p) = o.professional.take() {
                        let mut d = o.unit.as_deref_mut();
                        while let Some(u) = d {
                            if u.unit.is_none() {
                                u.professional.get_or_insert(p);
                                break;
                            }
                            d = u.unit.as_deref_mut();
                        }
                    }
                }
            })
        },
    },
    Loss {
        field: "organisation level without name or identifier",
        why: "FHIR org-1 requires a name or an identifier: such a level (its address, telecom, type) is not written",
        apply: |m| {
            let mut v = serde_json::to_value(&*m).unwrap();
            for key in ["/header/sender", "/header/receiver", "/body/requester", "/body/service_provider"] {
                if let Some(x) = v.pointer_mut(key) {
                    if let Ok(mut o) = serde_json::from_value::<Organisation>(x.clone()) {
                        *x = if strip_nameless(&mut o) { Value::Null } else { serde_json::to_value(o).unwrap() };
                    }
                }
            }
            *m = serde_json::from_value(v).unwrap();
            each_org(m, &mut |o| {
                strip_nameless(o);
            });
        },
    },
    Loss {
        field: "telecom kind outside the table",
        why: "ContactPoint.use has home/work/mobile/temp/old only: KITH kinds other than HP, WP, MC, TMP, BAD are not kept",
        apply: |m| {
            each_at(m, &["telecom"], &mut |t| {
                let keep = t["kind"].as_str().is_some_and(|k| mapping::TELECOM_USE.iter().any(|(x, _)| *x == k));
                if !keep {
                    if let Some(o) = t.as_object_mut() {
                        o.remove("kind");
                    }
                }
            })
        },
    },
];

fn valid_kith_examples() -> Vec<String> {
    let table = std::fs::read_to_string(common::kith("VALIDATION.md")).expect("kith VALIDATION.md");
    table
        .lines()
        .filter(|l| l.starts_with("| VALID |"))
        .filter_map(|l| l.split('`').nth(1))
        .filter(|f| {
            ["henvisning/", "epikrise/", "dialogmelding/"]
                .iter()
                .any(|k| f.starts_with(k))
        })
        .map(str::to_string)
        .collect()
}

fn kith_model(rel: &str) -> Option<Message> {
    let bytes = std::fs::read(common::kith(rel)).ok()?;
    let doc = scan(&bytes, &Limits::default()).ok()?;
    match detect(&doc.root) {
        Detection::Known(d) => Some(kadgate::kith::decode::decode(&d).message),
        _ => None,
    }
}

/// The JSON pointers where two models differ, with both values (for a readable failure).
fn differences(a: &Message, b: &Message) -> Vec<String> {
    fn walk(a: &Value, b: &Value, p: String, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    walk(
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        format!("{p}/{k}"),
                        out,
                    );
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (n, (i, j)) in x.iter().zip(y).enumerate() {
                    walk(i, j, format!("{p}/{n}"), out);
                }
            }
            _ if a != b => out.push(format!("{p}: KITH {a} / FHIR {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(
        &serde_json::to_value(a).unwrap(),
        &serde_json::to_value(b).unwrap(),
        String::new(),
        &mut out,
    );
    out
}

fn normalised(m: &Message, skip: Option<usize>) -> Message {
    let mut m = m.clone();
    for (n, l) in LOSSES.iter().enumerate() {
        if Some(n) != skip {
            (l.apply)(&mut m);
        }
    }
    m
}

#[test]
fn kith_to_fhir_keeps_the_model_apart_from_documented_losses() {
    let files = valid_kith_examples();
    assert!(
        files.len() >= 60,
        "only {} VALID KITH examples found",
        files.len()
    );
    let mut produced = Vec::new();
    let mut pairs = Vec::new();
    let mut not_encodable = Vec::new();
    let mut mismatches: Vec<String> = Vec::new();
    for f in &files {
        let km = kith_model(f).unwrap_or_else(|| panic!("{f}: not decodable"));
        if !matches!(
            km.body,
            Body::Referral(_) | Body::Epicrisis(_) | Body::Dialog(_)
        ) {
            not_encodable.push(f.clone());
            continue;
        }
        let fhir = encode_like(&km, true);
        let d = decode(&fhir);
        assert!(
            !d.findings.iter().any(|x| x.severity >= Severity::Warning),
            "{f}: {:#?}",
            d.findings
        );
        let fm = d.message.unwrap();
        let diff = differences(&normalised(&km, None), &normalised(&fm, None));
        if !diff.is_empty() {
            mismatches.push(format!("{f}:\n  {}", diff.join("\n  ")));
        }
        produced.push((f.clone(), fhir));
        pairs.push((km, fm));
    }
    assert!(
        mismatches.is_empty(),
        "{} example(s) differ beyond the documented losses:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // Only PLO content and attachments-only messages have no FHIR form.
    assert!(not_encodable.len() <= 6, "{not_encodable:#?}");
    // Every listed loss is needed by at least one example (no stale entries).
    for (n, l) in LOSSES.iter().enumerate() {
        let needed = pairs
            .iter()
            .any(|(k, f)| normalised(k, Some(n)) != normalised(f, Some(n)));
        assert!(needed, "loss {:?} ({}) is never needed", l.field, l.why);
    }
    assert_oracle_valid(&produced);
}

// ---------------------------------------------------------------- (e) every model field

/// A party: organisation → unit → professional, every field set.
fn full_party(her: &str, unit_her: &str) -> Value {
    serde_json::json!({
        "name": "Testbyen legekontor", "kind": { "code": "LK", "system": "2.16.578.1.12.4.1.1.9040", "display": "Legekontor" },
        "idents": [{ "id": her, "kind": "HER" }, { "id": "990003009", "kind": "ENH" }],
        "address": { "kind": "WP", "street": "Storgata 1", "postal_code": "0101", "city": "Oslo", "municipality": "0301", "country": "NO" },
        "telecom": [{ "kind": "WP", "value": "tel:+4722000000" }],
        "unit": {
            "name": "Legevakt", "idents": [{ "id": unit_her, "kind": "HER" }],
            "professional": {
                "profession": { "code": "LE", "system": "2.16.578.1.12.4.1.1.9060", "display": "Lege" },
                "role_to_patient": { "code": "6", "system": "2.16.578.1.12.4.1.1.9034", "display": "Fastlege" },
                "family_name": "Koman", "given_name": "Magnar", "middle_name": "Mo", "full_name": "Koman, Magnar",
                "idents": [{ "id": "9144889", "kind": "HPR" }],
                "telecom": [{ "kind": "MC", "value": "tel:+4790000000" }]
            }
        }
    })
}

fn full_related_person() -> Value {
    serde_json::json!({
        "relationship": { "code": "MO", "system": "2.16.578.1.12.4.1.1.9033", "display": "Mor" },
        "care_function": { "code": "V", "display": "Verge" },
        "next_of_kin": false,
        "family_name": "Testesen", "middle_name": "Mo", "given_name": "Anne", "full_name": "Testesen, Anne",
        "birth_date": "1950-03-15", "sex": "female",
        "idents": [{ "id": "15035010030", "kind": "FNR" }],
        "address": { "kind": "H", "street": "Vei 2", "postal_code": "0102", "city": "Oslo" },
        "telecom": [{ "kind": "HP", "value": "tel:+4722111111" }],
        "occupation": "Lærer", "workplace": "Skolen", "note": "Ring etter kl 16"
    })
}

fn full_patient() -> Value {
    let mut kin = full_related_person();
    kin["next_of_kin"] = Value::Bool(true);
    serde_json::json!({
        "family_name": "Testesen", "middle_name": "Mo", "given_name": "Kari", "full_name": "Testesen, Kari",
        "birth_date": "1974-05-13", "sex": "female",
        "idents": [{ "id": "13857444048", "kind": "FNR" }],
        "address": { "kind": "H", "street": "Gate 3", "postal_code": "0103", "city": "Oslo", "municipality": "0301", "country": "NO" },
        "telecom": [{ "kind": "MC", "value": "tel:+4791111111" }, { "value": "mailto:kari@example.org" }],
        "deceased_date": "2026-03-01",
        "nationality": { "code": "NO", "system": "2.16.578.1.12.4.1.1.9043", "display": "Norge" },
        "marital_status": { "code": "2", "system": "2.16.578.1.12.4.1.1.9052", "display": "Gift" },
        "related_persons": [full_related_person(), kin],
        "care_providers": [
            { "relation": { "code": "FLE", "system": "2.16.578.1.12.4.1.1.8254", "display": "Fastlege" },
              "role": "contact", "party": full_party("990001", "990011"),
              "start": "2020-01-01", "end": "2026-12-31", "note": "Fast lege" },
            { "relation": { "code": "AHP", "display": "Ansvarlig" }, "role": "responsible",
              "party": { "professional": { "family_name": "Lege", "given_name": "Kad", "idents": [{ "id": "9144890", "kind": "HPR" }] } } }
        ],
        "communication_needs": [
            { "language": { "code": "ar", "system": "2.16.578.1.12.4.1.1.3303", "display": "Arabisk" },
              "person": full_related_person(), "hearing_impaired": false, "sight_impaired": true, "note": "Tolk" },
            { "hearing_impaired": true }
        ]
    })
}

fn full_texts(role: &str) -> Value {
    serde_json::json!([
        { "heading": { "code": "ANAM", "system": "2.16.578.1.12.4.1.1.8233", "display": "Sykehistorie" },
          "text": "Første linje\nAndre linje", "role": role, "start": "2026-03-01T08:00:00+01:00", "end": "2026-03-02",
          "codes": [{ "code": "X1", "system": "2.16.578.1.12.4.1.1.9999", "display": "Kode" }, { "code": "", "display": "Bare tekst" }] },
        { "text": "Uten overskrift" }
    ])
}

fn full_medication() -> Value {
    serde_json::json!({
        "drug": { "code": "N02BE01", "system": "2.16.578.1.12.4.1.1.7180", "display": "Paracetamol" },
        "dosage_text": "1 g x 4", "status": "1", "status_text": "Fast", "comment": "Ved behov",
        "dosage_code": { "code": "D4", "display": "4 ganger daglig" },
        "form": { "code": "TAB", "display": "Tablett" },
        "route": { "code": "PO", "display": "Oralt" },
        "unit_dose": { "value": "1.5", "unit": "g" },
        "intended_duration": { "value": "2", "unit": "uke" },
        "quantity_supplied": { "value": "100", "unit": "stk" },
        "start": "2026-03-01T09:30:00+01:00", "end": "2026-03-14",
        "category": { "code": "MEDB", "system": "2.16.578.1.12.4.1.1.8233", "display": "Legemiddelopplysning" }
    })
}

fn full_attachment(n: u32) -> Value {
    serde_json::json!({
        "kind": { "code": "A", "display": "Vedlegg" }, "id": format!("vedlegg-{n}"), "issue_date": "2026-03-01",
        "media_type": "application/pdf", "description": "Røntgenbeskrivelse", "data": "SGVsbG8=",
        "uri": format!("https://example.org/doc/{n}")
    })
}

fn full_diagnoses() -> Value {
    serde_json::json!([
        { "code": { "code": "I330", "system": "2.16.578.1.12.4.1.1.7110", "display": "Endokarditt" }, "confirmed": true,
          "rank": "main",
          "modifiers": [{ "name": { "code": "S", "display": "ICD10 stjernekode" },
                          "values": [{ "code": "B951", "system": "2.16.578.1.12.4.1.1.7110", "display": "Streptokokker" }] }] },
        { "code": { "code": "E119", "system": "2.16.578.1.12.4.1.1.7110" }, "confirmed": false, "rank": "secondary" }
    ])
}

fn full_observation() -> Value {
    serde_json::json!({
        "code": { "code": "ASAT", "system": "2.16.578.1.12.4.1.1.7280", "display": "ASAT" },
        "value": 125.5, "unit": "IE/L", "time": "2026-03-01T10:00:00+01:00",
        "interpretation": { "code": "1", "system": "2.16.578.1.12.4.1.1.8244", "display": "Over øvre referansegrense" },
        "comment": "Forhøyet", "category": { "code": "FUNN", "display": "Funn" }
    })
}

fn full_header(event: &str) -> Value {
    serde_json::json!({
        "format": "fhir-r4", "fellesformat": false, "msg_type": event, "msg_type_text": "Tekst",
        "msg_id": "2b1a1f4e-0d1c-4f55-9a77-0e2d4c6b8a01", "gen_date": "2026-03-02T10:15:00+01:00",
        "sender": full_party("990001", "990011"), "receiver": full_party("990002", "990012"),
        "copy_receivers": [{ "role": "COP", "party": { "name": "Kopi", "idents": [{ "id": "990004", "kind": "HER" }] } }],
        "patient": full_patient(),
        "conversation": { "ref_to_parent": "a-parent", "ref_to_conversation": "a-conversation" }
    })
}

/// One message of each body kind with every model field set, in the form a FHIR decode gives
/// (event codes, date-times with offsets, the header's patient and parties the body's).
fn full_messages() -> Vec<Message> {
    let priority = serde_json::json!({ "code": "3", "system": "2.16.578.1.12.4.1.1.8306", "display": "Haster" });
    let copy =
        serde_json::json!([{ "name": "Kopi", "idents": [{ "id": "990004", "kind": "HER" }] }]);
    let referral_body = |h: &Value| {
        serde_json::json!({
            "kind": "referral",
            "id": "henv-1", "service_type": "change", "issue_date": "2026-03-02T10:00:00+01:00", "priority": priority,
            "description": { "code": "KAD", "display": "Øyeblikkelig hjelp døgnopphold" },
            "patient": full_patient(), "requester": h["sender"], "service_provider": h["receiver"], "copy_to": copy,
            "diagnoses": [{ "code": { "code": "R81", "system": "2.16.578.1.12.4.1.1.7170", "display": "Pneumoni" }, "confirmed": false }],
            "texts": full_texts("reason"), "plan": "Observasjon og antibiotika",
            "observations": [full_observation()], "medications": [full_medication()],
            "flags": [{ "code": "violence", "system": "http://example.org/kadgate/CodeSystem/clinical-assessment" }],
            "document_id": "dok-1",
            "payment_category": { "code": "1", "system": "2.16.578.1.12.4.1.1.8237", "display": "Institusjon" },
            "basis_for_health_services": { "code": "1", "system": "2.16.578.1.12.4.1.1.8246", "display": "Folketrygdmedlem" },
            "purpose": { "code": "U", "display": "Utredning" },
            "requested_service_type": "new", "requested_date": "2026-03-03",
            "requested_specialty": { "code": "1", "system": "2.16.578.1.12.4.1.1.8451", "display": "Allmennmedisin" },
            "received_date": "2026-03-02T11:00:00+01:00",
            "consents": [{ "status": { "code": "2", "system": "2.16.578.1.12.4.1.1.3107", "display": "Pasient samtykker" },
                           "date": "2026-03-02", "note": "Muntlig", "given_by": "Pasienten" }, {}],
            "assessment": { "dates": [{ "kind": { "code": "1", "display": "Mottatt" }, "date": "2026-03-02" }],
                            "free_choice": true, "waiting_end": { "code": "2", "display": "Slutt" }, "pathway_id": "pf-1",
                            "entitled": false, "outcome": { "code": "1", "display": "Rett" } },
            "care_pathways": [{ "code": { "code": "P1", "system": "2.16.578.1.12.4.1.1.8422", "display": "Pakkeforløp" }, "note": "Start" }],
            "attachments": [full_attachment(1), { "id": "bare" }]
        })
    };
    let mut referral = full_header("kad-henvisning");
    referral["copy_receivers"][0]["role"] = Value::String("COP".into());
    let rb = referral_body(&referral);
    let referral = serde_json::json!({ "header": referral, "body": rb });

    let mut epi_header = full_header("epikrise");
    epi_header["conversation"] = serde_json::json!({ "ref_to_parent": "a-parent" });
    let epicrisis = serde_json::json!({
        "header": epi_header,
        "body": {
            "kind": "epicrisis", "id": "epi-1", "referral_id": "henv-1", "service_type": "addition", "status": "P",
            "issue_date": "2026-03-05T12:00:00+01:00", "patient": full_patient(),
            "service_provider": epi_header["sender"], "requester": epi_header["receiver"], "copy_to": copy,
            "diagnoses": full_diagnoses(), "texts": full_texts("comment"), "medications": [full_medication()],
            "admitted": "2026-03-02T12:00:00+01:00", "discharged": "2026-03-05T11:00:00+01:00",
            "approved_date": "2026-03-05T13:00:00+01:00", "title": "Sykehusepikrise", "priority": priority,
            "referral": { "id": "henv-1", "service_type": "new", "issue_date": "2026-03-02T10:00:00+01:00",
                          "received_date": "2026-03-02T11:00:00+01:00", "texts": full_texts("reason"),
                          "description": { "code": "KAD", "display": "Øyeblikkelig hjelp" },
                          "diagnoses": [{ "code": { "code": "R81", "system": "2.16.578.1.12.4.1.1.7170" } }] },
            "admission_category": { "code": "1", "system": "2.16.578.1.12.4.1.1.8240", "display": "Heldøgnsopphold" },
            "discharge_outcome": { "code": "1", "system": "2.16.578.1.12.4.1.1.8408", "display": "Bosted" },
            "observations": [full_observation()],
            "care_providers": [{ "relation": { "code": "BLE", "display": "Behandlende lege" }, "role": "responsible",
                                 "party": full_party("990002", "990012"), "start": "2026-03-02", "end": "2026-03-05", "note": "Ansvarlig" }],
            "attachments": [full_attachment(2)]
        }
    });

    let dialog_header = full_header("dialog-helsefaglig");
    let dialog = serde_json::json!({
        "header": dialog_header,
        "body": {
            "kind": "dialog",
            "topic": { "code": "1", "system": "2.16.578.1.12.4.1.1.7322", "display": "Forespørsel" }, "topic_text": "Om pasienten",
            "texts": full_texts("note"), "document_id": "notat-1",
            "responsible": full_party("990001", "990011")["unit"]["professional"],
            "responsible_role": { "code": "1", "system": "2.16.578.1.12.4.1.1.9057", "display": "Ansvarlig" },
            "case_type": { "code": "H", "system": "2.16.578.1.12.4.1.1.9999", "display": "Henvisning" }, "case_type_text": "Sak",
            "note_date": "2026-03-02", "issue_date": "2026-03-02T10:14:00+01:00",
            "request": { "kind": { "code": "SAM", "system": "2.16.578.1.12.4.1.1.7601", "display": "Samtykkeforespørsel" },
                         "subject": "Samtykke", "purpose": { "code": "1", "display": "Behandling" }, "priority": priority,
                         "from_date": "2026-03-01", "to_date": "2026-03-31",
                         "record_types": [{ "code": "EPI", "display": "Epikrise" }, { "code": "LAB", "display": "Lab" }],
                         "coded_info": { "code": "K1", "display": "Kodet" }, "document_id": "foresp-1" },
            "attachments": [full_attachment(3)]
        }
    });
    let mut stay_header = full_header("kad-opphold");
    stay_header["msg_type_text"] = Value::String("Hendelse i KAD-opphold".into());
    let stay = serde_json::json!({
        "header": stay_header,
        "body": {
            "kind": "care-event", "event": "discharged", "at": "2026-03-05T11:00:00+01:00",
            "service_type": "change", "referral_id": "henv-1", "stay_id": "opphold-1", "home_nursing": true
        }
    });
    [referral, epicrisis, dialog, stay]
        .into_iter()
        .map(|v| {
            let m: Message = serde_json::from_value(v.clone()).expect("the fixture is a model");
            // No key of the fixture is ignored (a misspelt field would be).
            assert_eq!(serde_json::to_value(&m).unwrap(), v, "fixture keys");
            m
        })
        .collect()
}

#[test]
fn every_model_field_survives_fhir() {
    let mut produced = Vec::new();
    for m in full_messages() {
        for as_message in [true, false] {
            if !as_message && !matches!(m.body, Body::Epicrisis(_)) {
                continue;
            }
            let fhir = encode_like(&m, as_message);
            let errors: Vec<_> = kadgate::fhir::validate::validate(&fhir)
                .into_iter()
                .filter(|f| f.is_error())
                .collect();
            assert!(errors.is_empty(), "{:?}: {errors:#?}", m.body);
            let d = decode(&fhir);
            assert!(
                !d.findings.iter().any(|f| f.severity >= Severity::Warning),
                "{:#?}",
                d.findings
            );
            let mut back = d.message.unwrap();
            let mut want = m.clone();
            if !as_message {
                // A document alone has no message header: its event, copy receivers and threading.
                want.header.msg_type_text = None;
                want.header.copy_receivers.clear();
                want.header.conversation = None;
                if let Body::Epicrisis(e) = &mut want.body {
                    e.copy_to.clear();
                }
                back.header.msg_type_text = None;
            }
            let diff = differences(&want, &back);
            assert!(
                diff.is_empty(),
                "as message {as_message}:\n  {}",
                diff.join("\n  ")
            );
            produced.push((format!("full model, message {as_message}"), fhir));
        }
    }
    assert_oracle_valid(&produced);
}

// ---------------------------------------------------------------- (d) properties

fn seeds() -> &'static Vec<Message> {
    static S: std::sync::OnceLock<Vec<Message>> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let mut v: Vec<Message> = valid_kith_examples()
            .iter()
            .take(80)
            .filter_map(|f| kith_model(f))
            .collect();
        for c in CASES {
            v.extend(decode(&read_json(c.file)).message);
        }
        v
    })
}

fn json_seeds() -> &'static Vec<Value> {
    static S: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    S.get_or_init(|| CASES.iter().map(|c| read_json(c.file)).collect())
}

const WILD: &[&str] = &[
    "",
    " ",
    "x y",
    "2026-13-45",
    "0",
    "urn:uuid:",
    "<p>&amp;</p>",
    "ÆØÅ\u{0}",
    "9999999999999999999",
];

/// Mutate a model: strings from `WILD` in many places, parts removed.
fn mutate_model(m: &mut Message, seed: u64) {
    let pick = |k: u64| WILD[((seed >> (k * 4)) % WILD.len() as u64) as usize].to_string();
    let h = &mut m.header;
    match seed % 7 {
        0 => h.msg_id = Some(pick(1)),
        1 => h.gen_date = Some(pick(1)),
        2 => h.sender = None,
        3 => h.msg_type = pick(2),
        4 => h.patient = None,
        5 => h.msg_id = None,
        _ => h.receiver = Some(Organisation::default()),
    }
    let mut v = serde_json::to_value(&*m).unwrap();
    // Replace pseudo-random string leaves anywhere in the model with wild ones.
    let paths = string_paths(&v);
    for k in 0..3u64 {
        if paths.is_empty() {
            break;
        }
        let p = &paths[((seed >> (k * 8 + 3)) as usize) % paths.len()];
        if let Some(x) = v.pointer_mut(p) {
            if !p.ends_with("/kind")
                && !p.ends_with("/format")
                && !p.ends_with("/status")
                && !p.ends_with("/sex")
                && !p.ends_with("/service_type")
            {
                *x = Value::String(pick(k + 5));
            }
        }
    }
    if let Ok(mm) = serde_json::from_value::<Message>(v) {
        *m = mm;
    }
}

fn string_paths(v: &Value) -> Vec<String> {
    fn walk(v: &Value, p: String, out: &mut Vec<String>) {
        match v {
            Value::String(_) => out.push(p),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(n, x)| walk(x, format!("{p}/{n}"), out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                walk(
                    x,
                    format!("{p}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                )
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

/// Mutate JSON: replace or delete pseudo-random nodes.
fn mutate_json(v: &mut Value, seed: u64) {
    fn all_paths(v: &Value, p: String, out: &mut Vec<String>) {
        out.push(p.clone());
        match v {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(n, x)| all_paths(x, format!("{p}/{n}"), out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                all_paths(
                    x,
                    format!("{p}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                )
            }),
            _ => {}
        }
    }
    let palette = [
        Value::Null,
        serde_json::json!(1.5),
        serde_json::json!("x"),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!([{"reference": "urn:uuid:x"}]),
        serde_json::json!({"reference": "#self"}),
        serde_json::json!(true),
    ];
    for k in 0..4u64 {
        let mut paths = Vec::new();
        all_paths(v, String::new(), &mut paths);
        let p = &paths[((seed >> (k * 8)) as usize) % paths.len()];
        if let Some(x) = v.pointer_mut(p) {
            *x = palette[((seed >> (k * 8 + 4)) % palette.len() as u64) as usize].clone();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn encoding_mutated_models_never_panics(idx in 0usize..1000, seed in any::<u64>()) {
        let s = seeds();
        let mut m = s[idx % s.len()].clone();
        mutate_model(&mut m, seed);
        if let Ok(v) = encode(&m) {
            let _ = decode(&v);
        }
        let _ = encode_epicrisis_message(&m);
        let _ = response_message(&m.header, ResponseCode::TransientError, None, "x", "y");
    }

    #[test]
    fn decoding_mutated_json_never_panics(idx in 0usize..1000, seed in any::<u64>()) {
        let s = json_seeds();
        let mut v = s[idx % s.len()].clone();
        mutate_json(&mut v, seed);
        let d = decode(&v);
        for f in &d.findings {
            prop_assert!(f.code.starts_with("fhir."));
        }
    }
}
