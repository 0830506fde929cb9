//! The conversion chain kadgate promises, both ways, through one helper ([`check`]):
//!
//! (a) KITH → FHIR → KITH: every VALID (`kith/VALIDATION.md`) Henvisning 1.1, Henvisning 2.0
//!     (MsgHead), Epikrise 1.2 and Dialogmelding 1.1 example is KITH-decoded, FHIR-encoded,
//!     serialized and read again with kadgate's JSON reader, FHIR-decoded, KITH-encoded in its
//!     original format; the result is XSD-valid and its model equals the original's apart from
//!     [`KITH_LOSSES`];
//! (b) FHIR → KITH → FHIR: every shared FHIR referral, epicrisis (message and document) and
//!     Communication example kadgate converts is FHIR-decoded, KITH-encoded (Henvisning 2.0 and 1.1,
//!     Epikrise 1.2, Dialogmelding 1.1), XSD-valid, KITH-decoded and FHIR-encoded again; that FHIR
//!     passes kadgate's validator without errors and the independent R4 oracle (one batch run), and
//!     its model equals the first one apart from [`FHIR_LOSSES`].
//!
//! Each loss names the field, why it is lost (the reasons of `docs/mapping/kith.md` and
//! `docs/mapping/fhir.md`, section "Round trips") and a function that removes the difference from
//! a model; it is applied to both sides before comparing. A listed loss no example needs fails the
//! test, so the lists stay exact.

mod common;

use common::{each_at, each_org, strip_offset, Loss};

use std::collections::BTreeMap;

use std::process::Command;
use std::sync::OnceLock;

use kadgate::fhir::decode::decode as fhir_decode;
use kadgate::fhir::encode::{encode as fhir_encode, encode_epicrisis_message};
use kadgate::fhir::mapping;
use kadgate::fhir::validate::{validate_with, Options};
use kadgate::finding::Severity;
use kadgate::kith::detect::{detect, Detection};
use kadgate::kith::encode::encode as kith_encode;
use kadgate::model::{Body, Diagnosis, Format, Message, Organisation, ServiceType, TextRole};
use kadgate::xml::{scan, Limits};
use kadgate::xsd::SchemaSet;
use serde_json::{json, Value};

fn schemas() -> &'static SchemaSet {
    static SET: OnceLock<SchemaSet> = OnceLock::new();
    SET.get_or_init(|| SchemaSet::load(&common::kith("")).expect("KITH schema set compiles"))
}

// ------------------------------------------------------------------ the documented losses

fn all_strings(m: &mut Message, f: fn(&mut String)) {
    fn walk(v: &mut Value, f: fn(&mut String)) {
        match v {
            Value::String(s) => f(s),
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
            Value::Object(o) => o.values_mut().for_each(|x| walk(x, f)),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(&*m).unwrap();
    walk(&mut v, f);
    *m = serde_json::from_value(v).expect("model round-trips through serde");
}

/// Losses of (a) KITH → FHIR → KITH, at the model level. KITH → model → KITH alone loses nothing
/// at this level (`tests/kith_encode.rs`); these come from the FHIR leg (`docs/mapping/fhir.md`)
/// and from what the KITH encoders default (`docs/mapping/kith.md`).
const KITH_LOSSES: &[Loss] = &[
    Loss {
        field: "header.ack, header.processing_status",
        why: "MsgHead transport flags have no FHIR element; the KITH encoder writes its defaults",
        apply: |m| {
            m.header.ack = None;
            m.header.processing_status = None;
        },
    },
    Loss {
        field: "date-times",
        why: "FHIR dateTime/instant need a UTC offset: a KITH local time gets Europe/Oslo's, and the KITH encoder writes it; compared without it",
        apply: |m| all_strings(m, strip_offset),
    },
    Loss {
        field: "organisation level without name or identifier",
        why: "FHIR org-1 requires a name or an identifier: such a level (its address, telecom, type) is not written, e.g. a basismelding HCP's address beside its person",
        apply: |m| {
            each_org(m, &mut |o| {
                if o.name.is_none() && o.idents.is_empty() {
                    o.address = None;
                    o.telecom.clear();
                    o.kind = None;
                }
            })
        },
    },
];

/// Apply `f` to the texts of the body (and of the referral an epicrisis repeats) with the role a
/// text without one gets in KITH.
fn each_text(m: &mut Message, f: fn(&mut kadgate::model::TextSection, TextRole)) {
    match &mut m.body {
        Body::Referral(r) => r.texts.iter_mut().for_each(|t| f(t, TextRole::Reason)),
        Body::Epicrisis(e) => {
            e.texts.iter_mut().for_each(|t| f(t, TextRole::Comment));
            if let Some(r) = e.referral.as_deref_mut() {
                r.texts.iter_mut().for_each(|t| f(t, TextRole::Reason));
            }
        }
        Body::Dialog(d) => d.texts.iter_mut().for_each(|t| f(t, TextRole::Note)),
        _ => {}
    }
}

/// Losses of (b) FHIR → KITH → FHIR, at the model level: what KITH cannot hold or writes by
/// default (`docs/mapping/kith.md`, "Defaults" and losses), seen from the FHIR side.
const FHIR_LOSSES: &[Loss] = &[
    Loss {
        field: "header.msg_type, header.msg_type_text",
        why: "a FHIR event code is no 8279 type: KITH gets the format's default type and its text, which come back as that type's event",
        apply: |m| {
            m.header.msg_type = match &m.body {
                Body::Referral(_) => "kad-henvisning",
                Body::Epicrisis(_) => "epikrise",
                _ => "dialog-helsefaglig",
            }
            .to_string();
            m.header.msg_type_text = None;
        },
    },
    Loss {
        field: "coded values without a code (description, headings)",
        why: "a CodeableConcept with text only has no code value; KITH CS/CV elements need V, so such a description or heading is not kept",
        apply: |m| {
            each_at(m, &["description", "heading"], &mut |v| {
                if v["code"] == "" {
                    *v = Value::Null;
                }
            })
        },
    },
    Loss {
        field: "code systems that are no OID",
        why: "KITH `S` is an OID; a URI system (other than ICD-10 and ICPC-2, which map to their Volven OIDs) is dropped, and CS elements (priority) carry none",
        apply: |m| {
            each_at(m, &["case_type", "topic", "kind", "priority", "description"], &mut |v| {
                let oid = v["system"].as_str().is_some_and(|s| s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
                if !oid {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("system");
                    }
                }
            });
            match &mut m.body {
                Body::Referral(r) => r.priority.iter_mut().for_each(|p| p.system = None),
                Body::Epicrisis(e) => e.priority.iter_mut().for_each(|p| p.system = None),
                _ => {}
            }
        },
    },
    Loss {
        field: "identifier type lists",
        why: "MsgHead writes the 9051 (organisations) or 8116 (persons) OID for an identifier type that names none",
        apply: |m| {
            each_at(m, &["idents"], &mut |i| {
                let default = matches!(i["system"].as_str(), Some("2.16.578.1.12.4.1.1.9051" | "2.16.578.1.12.4.1.1.8116"));
                if default {
                    if let Some(o) = i.as_object_mut() {
                        o.remove("system");
                    }
                }
            })
        },
    },
    Loss {
        field: "identifier order",
        why: "a basismelding institution writes its HER-id as the main Id and the others as AdditionalId",
        apply: |m| {
            each_org(m, &mut |o| {
                fn sort(o: &mut Organisation) {
                    o.idents.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
                    if let Some(u) = o.unit.as_deref_mut() {
                        sort(u);
                    }
                }
                sort(o)
            })
        },
    },
    Loss {
        field: "full_name beside family and given names",
        why: "a basismelding person has one Name, written \"Family, Given\" and read back as full_name too",
        apply: |m| {
            each_at(m, &["patient", "professional", "responsible"], &mut |p| {
                if p.get("family_name").is_some() || p.get("given_name").is_some() {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("full_name");
                    }
                }
            })
        },
    },
    Loss {
        field: "service types",
        why: "KITH requires ServType (document, ReqServ, the answered ServReq): N (new) is written when the model has none",
        apply: |m| {
            let new = Some(ServiceType::New);
            match &mut m.body {
                Body::Referral(r) => {
                    r.service_type = r.service_type.or(new);
                    r.requested_service_type = r.requested_service_type.or(new);
                }
                Body::Epicrisis(e) => {
                    e.service_type = e.service_type.or(new);
                    if let Some(r) = e.referral.as_deref_mut() {
                        r.service_type = r.service_type.or(new);
                    }
                }
                _ => {}
            }
        },
    },
    Loss {
        field: "referral id and document id",
        why: "KITH requires ServReq/Id (1.1) and DocumentId (2.0): the MsgId is written when the model has none",
        apply: |m| {
            let msg_id = m.header.msg_id.clone();
            if let Body::Referral(r) = &mut m.body {
                if r.id.is_none() {
                    r.id.clone_from(&msg_id);
                }
                if r.document_id == msg_id {
                    r.document_id = None;
                }
            }
        },
    },
    Loss {
        field: "text role",
        why: "a text without a role is written where the format puts free text (ReasonAsText, Comment, the note) and read back with that role",
        apply: |m| each_text(m, |t, role| {
            t.role.get_or_insert(role);
        }),
    },
    Loss {
        field: "epicrisis diagnoses",
        why: "without coded discharge diagnoses, the KITH decoder gives an epicrisis the diagnoses of the referral it answers",
        apply: |m| {
            if let Body::Epicrisis(e) = &mut m.body {
                if e.diagnoses.is_empty() {
                    if let Some(r) = e.referral.as_deref() {
                        e.diagnoses = r.diagnoses.iter().map(|d| Diagnosis { confirmed: None, ..d.clone() }).collect();
                    }
                }
            }
        },
    },
    Loss {
        field: "attachment kind",
        why: "KITH requires RefDoc/MsgType: A (Vedlegg) is written for an attachment without a kind",
        apply: |m| {
            each_at(m, &["attachments"], &mut |a| {
                if a["kind"].is_null() || a["kind"]["code"] == "A" {
                    if let Some(o) = a.as_object_mut() {
                        o.remove("kind");
                    }
                }
            })
        },
    },
];

// ------------------------------------------------------------------ the one check

/// Where a chain starts.
enum Start {
    /// A KITH example (path under `kith/`).
    Kith(String),
    /// A FHIR example, already a message or document Bundle, and the KITH formats to go through.
    Fhir(String, Value, &'static [Format]),
}

/// One finished chain: the model it started from, the model it ended with, and the FHIR written
/// on the way (for the oracle).
struct Trip {
    name: String,
    before: Message,
    after: Message,
    fhir: Value,
}

fn kith_read(bytes: &[u8]) -> Result<(Message, Format), String> {
    let doc = scan(bytes, &Limits::default()).map_err(|e| e.finding.message.clone())?;
    match detect(&doc.root) {
        Detection::Known(d) => Ok((
            kadgate::kith::decode::decode(&d).message,
            d.inner.unwrap_or(d.format),
        )),
        _ => Err("not a recognised KITH message".into()),
    }
}

/// Model → FHIR the way the message travels (an epicrisis in a message unless it came as a
/// document), written out and read back with kadgate's JSON reader; checked by kadgate's validator
/// with `opts`.
fn to_fhir(m: &Message, as_message: bool, opts: &Options) -> Result<Value, String> {
    let v = match (&m.body, as_message) {
        (Body::Epicrisis(_), true) => encode_epicrisis_message(m),
        _ => fhir_encode(m),
    }
    .map_err(|e| format!("FHIR encode: {e}"))?;
    let bytes = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
    let parsed = kadgate::fhir::json::read(&bytes, &kadgate::fhir::json::Limits::default());
    let v = parsed.value.ok_or("the FHIR written is not readable")?;
    let errors: Vec<String> = validate_with(&v, opts)
        .into_iter()
        .filter(|f| f.is_error())
        .map(|f| format!("{} at {}: {}", f.code, f.path, f.message))
        .collect();
    if !errors.is_empty() {
        return Err(format!("kadgate's validator: {errors:#?}"));
    }
    Ok(v)
}

/// FHIR → model; `strict`: not even a warning (for the FHIR kadgate wrote; a shared example may
/// have what it has, e.g. a reference to a resource it does not include, but no error).
fn from_fhir(v: &Value, strict: bool) -> Result<Message, String> {
    let d = fhir_decode(v);
    let worst = if strict {
        Severity::Warning
    } else {
        Severity::Error
    };
    let bad: Vec<_> = d.findings.iter().filter(|f| f.severity >= worst).collect();
    if !bad.is_empty() {
        return Err(format!("FHIR decode: {bad:#?}"));
    }
    d.message.ok_or_else(|| "FHIR decode: no message".into())
}

fn to_kith(m: &Message, format: Format) -> Result<Message, String> {
    let xml = kith_encode(m, format).map_err(|e| format!("KITH encode as {format:?}: {e}"))?;
    let report = schemas().validate(&xml);
    if !report.schema_valid() {
        return Err(format!(
            "{format:?} output not XSD-valid: {:#?}",
            report.findings
        ));
    }
    let (again, kind) = kith_read(&xml)?;
    assert_eq!(kind, format);
    Ok(again)
}

/// Run one chain: (a) KITH → FHIR → KITH in the original format, or (b) FHIR → KITH (each given
/// format) → FHIR. Every step is checked (XSD, kadgate's FHIR validator, decoding without
/// warnings); the models at both ends are returned for comparison.
fn check(start: &Start) -> Result<Vec<Trip>, String> {
    match start {
        Start::Kith(rel) => {
            let bytes = std::fs::read(common::kith(rel)).map_err(|e| e.to_string())?;
            let (before, format) = kith_read(&bytes)?;
            // Plain R4: some KITH examples name no (sufficiently identified) patient, which the
            // KAD rules would reject in FHIR as in KITH.
            let fhir = to_fhir(&before, true, &Options::r4())?;
            let after = to_kith(&from_fhir(&fhir, true)?, format)?;
            Ok(vec![Trip {
                name: rel.clone(),
                before,
                after,
                fhir,
            }])
        }
        Start::Fhir(name, src, formats) => {
            let before = from_fhir(src, false)?;
            let as_message = src["type"] == "message";
            let mut trips = Vec::new();
            for f in *formats {
                let kith = to_kith(&before, *f)?;
                let fhir = to_fhir(&kith, as_message, &Options::default())?;
                trips.push(Trip {
                    name: format!("{name} via {f:?}"),
                    before: before.clone(),
                    after: from_fhir(&fhir, true)?,
                    fhir,
                });
            }
            Ok(trips)
        }
    }
}

// ------------------------------------------------------------------ comparing

/// The JSON pointers where two models differ, with both values.
fn differences(a: &Message, b: &Message) -> Vec<String> {
    fn walk(a: &Value, b: &Value, p: String, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let (i, j) = (
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    );
                    walk(i, j, format!("{p}/{k}"), out);
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (n, (i, j)) in x.iter().zip(y).enumerate() {
                    walk(i, j, format!("{p}/{n}"), out);
                }
            }
            _ if a != b => {
                let short = |v: &Value| {
                    let s = v.to_string();
                    if s.chars().count() > 300 {
                        format!("{}…", s.chars().take(300).collect::<String>())
                    } else {
                        s
                    }
                };
                out.push(format!("{p}: before {} / after {}", short(a), short(b)));
            }
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

fn normalised(m: &Message, losses: &[Loss], skip: Option<usize>) -> Message {
    let mut m = m.clone();
    for (n, l) in losses.iter().enumerate() {
        if Some(n) != skip {
            (l.apply)(&mut m);
        }
    }
    m
}

/// Run every chain; fail on any error, any difference the losses do not explain, and any loss no
/// trip needs. Returns the trips.
fn run_all(starts: &[Start], losses: &[Loss]) -> Vec<Trip> {
    let mut trips = Vec::new();
    let mut failures = Vec::new();
    for s in starts {
        match check(s) {
            Ok(t) => trips.extend(t),
            Err(e) => failures.push(format!(
                "{}: {e}",
                match s {
                    Start::Kith(r) => r.as_str(),
                    Start::Fhir(n, _, _) => n.as_str(),
                }
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} chain(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    let mismatches: Vec<String> = trips
        .iter()
        .filter_map(|t| {
            let d = differences(
                &normalised(&t.before, losses, None),
                &normalised(&t.after, losses, None),
            );
            (!d.is_empty()).then(|| format!("{}:\n  {}", t.name, d.join("\n  ")))
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} trip(s) differ beyond the documented losses:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    for (n, l) in losses.iter().enumerate() {
        let needed = trips.iter().any(|t| {
            normalised(&t.before, losses, Some(n)) != normalised(&t.after, losses, Some(n))
        });
        assert!(needed, "loss {:?} ({}) is never needed", l.field, l.why);
    }
    trips
}

// ------------------------------------------------------------------ the oracle

/// All trips' FHIR through the oracle in one Node run; every file must be valid.
fn assert_oracle_accepts(trips: &[Trip]) {
    let dir = tempfile::tempdir().unwrap();
    let mut names = BTreeMap::new();
    for (n, t) in trips.iter().enumerate() {
        let f = dir.path().join(format!("{n:04}.json"));
        std::fs::write(&f, serde_json::to_vec(&t.fhir).unwrap()).unwrap();
        names.insert(f.to_string_lossy().to_string(), t.name.clone());
    }
    let out = Command::new("node")
        .arg(common::oracle_dir().join("validate.mjs"))
        .args(names.keys())
        .output()
        .expect("node runs the oracle");
    let verdicts: BTreeMap<String, Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v.get("file")?.as_str()?.to_string(), v)))
        .collect();
    let bad: Vec<String> = names
        .iter()
        .filter_map(|(f, name)| match verdicts.get(f) {
            Some(v) if v["valid"] == json!(true) => None,
            Some(v) => Some(format!("{name}: {}", v["issues"])),
            None => Some(format!(
                "{name}: no verdict ({})",
                String::from_utf8_lossy(&out.stderr)
            )),
        })
        .collect();
    assert!(bad.is_empty(), "the oracle rejects:\n{}", bad.join("\n"));
}

// ------------------------------------------------------------------ (a) KITH → FHIR → KITH

/// The VALID examples of the four formats kadgate writes.
fn kith_starts() -> Vec<Start> {
    let table = std::fs::read_to_string(common::kith("VALIDATION.md")).expect("VALIDATION.md");
    table
        .lines()
        .filter(|l| l.starts_with("| VALID |"))
        .filter_map(|l| l.split('`').nth(1))
        .filter(|rel| {
            let Ok(bytes) = std::fs::read(common::kith(rel)) else {
                return false;
            };
            kith_read(&bytes).is_ok_and(|(_, f)| {
                matches!(
                    f,
                    Format::Henvisning11
                        | Format::Henvisning20
                        | Format::Epikrise12
                        | Format::Dialogmelding11
                )
            })
        })
        .map(|rel| Start::Kith(rel.to_string()))
        .collect()
}

#[test]
fn kith_to_fhir_to_kith() {
    let starts = kith_starts();
    assert!(starts.len() >= 17, "only {} VALID examples", starts.len());
    let trips = run_all(&starts, KITH_LOSSES);
    assert_oracle_accepts(&trips);
}

// ------------------------------------------------------------------ (b) FHIR → KITH → FHIR

fn read_json(rel: &str) -> Value {
    let p = common::standards().join("fhir/examples").join(rel);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A bare Communication example, delivered as a message between the two parties of the shared
/// referral example and about its patient (a dialogue needs a sender and a receiver to be
/// addressed in KITH, and the KAD rules want an identified patient).
fn communication_message(rel: &str) -> Value {
    let referral = read_json("own/kad-referral-message.json");
    let header = &referral["entry"][0]["resource"];
    let parties: Vec<Value> = referral["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let r = &e["resource"]["resourceType"];
            r == "Organization" || r == "Practitioner" || r == "PractitionerRole" || r == "Patient"
        })
        .cloned()
        .collect();
    let patient = parties
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .and_then(|e| e["fullUrl"].as_str())
        .expect("the referral example has a patient");
    let mut comm = read_json(rel);
    comm["subject"] = json!({ "reference": patient });
    let mut entries = vec![
        json!({ "fullUrl": "urn:uuid:5b0c8a1e-4d2f-4e61-9a57-3c1d2b0e7f01", "resource": {
            "resourceType": "MessageHeader",
            "id": "5b0c8a1e-4d2f-4e61-9a57-3c1d2b0e7f01",
            "eventCoding": { "system": mapping::event::SYSTEM, "code": "dialog-helsefaglig" },
            "destination": header["destination"],
            "sender": header["sender"],
            "source": header["source"],
            "focus": [{ "reference": "urn:uuid:5b0c8a1e-4d2f-4e61-9a57-3c1d2b0e7f02" }],
        }}),
        json!({ "fullUrl": "urn:uuid:5b0c8a1e-4d2f-4e61-9a57-3c1d2b0e7f02", "resource": comm }),
    ];
    entries.extend(parties);
    json!({
        "resourceType": "Bundle",
        "id": "5b0c8a1e-4d2f-4e61-9a57-3c1d2b0e7f00",
        "type": "message",
        "timestamp": "2026-03-02T10:15:00+01:00",
        "entry": entries,
    })
}

fn fhir_starts() -> Vec<Start> {
    const REFERRAL: &[Format] = &[Format::Henvisning20, Format::Henvisning11];
    const EPICRISIS: &[Format] = &[Format::Epikrise12];
    const DIALOG: &[Format] = &[Format::Dialogmelding11];
    let mut v = vec![
        Start::Fhir(
            "own/kad-referral-message.json".into(),
            read_json("own/kad-referral-message.json"),
            REFERRAL,
        ),
        Start::Fhir(
            "own/epikrise-message.json".into(),
            read_json("own/epikrise-message.json"),
            EPICRISIS,
        ),
    ];
    for c in [
        "hl7-r4/communication/Communication-example.json",
        "hl7-r4/communication/Communication-fm-attachment.json",
    ] {
        v.push(Start::Fhir(c.into(), communication_message(c), DIALOG));
    }
    v
}

/// Examples kadgate decodes but cannot write as KITH, and why: a document on its own names no
/// receiver (KITH Epikrise addresses its `Requester`; the shared document's referral names a
/// requester it does not include, the HL7 one none at all). The chain must refuse them with this
/// error, not write an unaddressed message.
const REFUSED: &[(&str, &str)] = &[
    (
        "own/epikrise-document.json",
        "no requester that can be addressed",
    ),
    (
        "hl7-r4/document/Bundle-father.json",
        "no requester that can be addressed",
    ),
];

#[test]
fn documents_without_a_receiver_are_refused() {
    for (rel, why) in REFUSED {
        let start = Start::Fhir(rel.to_string(), read_json(rel), &[Format::Epikrise12]);
        match check(&start) {
            Err(e) => assert!(e.contains(why), "{rel}: {e}"),
            Ok(_) => panic!("{rel}: converted, though it names no receiver"),
        }
    }
}

#[test]
fn fhir_to_kith_to_fhir() {
    let trips = run_all(&fhir_starts(), FHIR_LOSSES);
    assert!(trips.len() >= 5, "{} trips", trips.len());
    assert_oracle_accepts(&trips);
}

#[test]
fn a_changed_fact_is_caught() {
    // The comparison is not blind: a patient id changed on the way is a difference no loss explains.
    let Start::Kith(rel) = &kith_starts()[0] else {
        unreachable!()
    };
    let (m, _) = kith_read(&std::fs::read(common::kith(rel)).unwrap()).unwrap();
    let mut changed = m.clone();
    if let Some(p) = changed.header.patient.as_mut() {
        p.family_name = Some("Endret".into());
    }
    assert!(!differences(
        &normalised(&m, KITH_LOSSES, None),
        &normalised(&changed, KITH_LOSSES, None)
    )
    .is_empty());
}
