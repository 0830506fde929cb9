//! The business reply (`kadgate::reply`): for every decision kind, from a FHIR vignette referral
//! and from KITH Henvisning 1.1 / 2.0 examples, in both reply formats — the output is schema-valid
//! (KITH: the official XSDs; FHIR: kadgate's validator with the KAD rules and the independent
//! oracle), reads back as a dialogue that states the decision in Norwegian and links to the
//! referral, and carries no English reason text.

mod common;

use std::path::PathBuf;

use chrono::NaiveDate;
use kadgate::check::Rules;
use kadgate::config::Config;
use kadgate::finding::Severity;
use kadgate::model::{Body, Conversation, Dialog, Format, Message, Organisation, TextRole};
use kadgate::reply::{
    business_reply, reply_format_for, Encoded, ReplyError, ReplyFormat, ReplySpec, LEAD,
    OID_DIALOG_TOPIC_7322, OID_REFERRAL_STATUS_9148,
};
use kadgate::rules::{decide, Decision, DecisionKind, RuleSet};
use kadgate::xsd::SchemaSet;
use serde_json::Value;

const NOW: &str = "2026-03-02T10:20:00+01:00";
const REVIEW_LINE: &str = "Endelig vurdering gjøres av lege ved KAD-enheten";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ruleset() -> RuleSet {
    RuleSet::load(&root().join("fixtures/rules/national-default.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn read(bytes: &[u8]) -> Message {
    let rules = Rules::from_config(&Config::demo());
    let (msg, _) = kadgate::convert::read_message(bytes, &rules).unwrap_or_else(|e| panic!("{e}"));
    msg
}

fn read_file(path: &std::path::Path) -> Message {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read(&bytes)
}

fn vignette(name: &str) -> Message {
    read_file(&root().join("fixtures/rules/vignettes").join(name))
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2040, 1, 1).expect("a date")
}

/// One vignette per decision kind, with the decision the national default rule set gives it.
fn decided() -> Vec<(&'static str, Message, Decision)> {
    let set = ruleset();
    let cases = [
        ("acc-pneumonia.json", DecisionKind::Accepted),
        ("rev-news2-5.json", DecisionKind::NeedsReview),
        ("hosp-stroke-icd.json", DecisionKind::NotAccepted),
        ("inc-no-plan.json", DecisionKind::Incomplete),
    ];
    cases
        .iter()
        .map(|(file, kind)| {
            let msg = vignette(file);
            let d = decide(&set, &msg, today());
            assert_eq!(d.decision, *kind, "{file}: {:?}", d.fired);
            (*file, msg, d)
        })
        .collect()
}

/// KITH referrals from the standards: Henvisning 2.0 in MsgHead, and a standalone Henvisning 1.1.
fn kith_referrals() -> Vec<(&'static str, Message)> {
    [
        "henvisning/examples/sarepta/Henvisning_v2-0/Henvisning_ny_tilstand_v2-0_Ny.xml",
        "henvisning/examples/sarepta/Henvisning_v1-1/henvisning_v1.1_n.xml",
    ]
    .into_iter()
    .map(|rel| {
        let msg = read_file(&common::kith(rel));
        assert!(matches!(msg.body, Body::Referral(_)), "{rel}");
        (rel, msg)
    })
    .collect()
}

fn party(o: Option<&Organisation>, what: &str) -> Organisation {
    o.cloned()
        .unwrap_or_else(|| panic!("the referral has a {what}"))
}

/// The reply's message id number `n` (a UUID).
fn msg_id(n: usize) -> String {
    format!("6b616467-6174-4000-8000-{n:012}")
}

struct Case {
    name: String,
    referral: Message,
    decision: Decision,
    format: ReplyFormat,
    id: String,
}

impl Case {
    fn spec<'a>(&'a self, from: &'a Organisation, to: &'a Organisation) -> ReplySpec<'a> {
        ReplySpec {
            referral: &self.referral,
            decision: &self.decision,
            overridden_by: None,
            unit: None,
            route_note_no: None,
            from,
            to,
            msg_id: &self.id,
            now: NOW,
        }
    }
}

/// Every referral × every decision kind × both formats.
fn cases() -> Vec<Case> {
    let decided = decided();
    let mut referrals: Vec<(String, Message)> = decided
        .iter()
        .map(|(f, m, _)| (f.to_string(), m.clone()))
        .collect();
    referrals.extend(
        kith_referrals()
            .into_iter()
            .map(|(f, m)| (f.to_string(), m)),
    );
    let mut out = Vec::new();
    for (rname, referral) in &referrals {
        for (dname, _, decision) in &decided {
            for format in [ReplyFormat::Dialogmelding11, ReplyFormat::Fhir] {
                out.push(Case {
                    name: format!("{rname} / {dname} / {format:?}"),
                    referral: referral.clone(),
                    decision: decision.clone(),
                    format,
                    id: msg_id(out.len()),
                });
            }
        }
    }
    out
}

fn encode(c: &Case) -> Encoded {
    let from = party(c.referral.header.receiver.as_ref(), "receiver");
    let to = party(c.referral.header.sender.as_ref(), "sender");
    business_reply(&c.spec(&from, &to), c.format).unwrap_or_else(|e| panic!("{}: {e}", c.name))
}

fn dialog(msg: &Message) -> &Dialog {
    match &msg.body {
        Body::Dialog(d) => d,
        other => panic!("not a dialogue: {other:?}"),
    }
}

/// The 8279 type of a decoded reply (FHIR carries it as its event code).
fn msg_type(msg: &Message) -> String {
    if msg.header.format == Format::FhirR4 {
        kadgate::fhir::mapping::msg_type_of_event(&msg.header.msg_type).unwrap_or_default()
    } else {
        msg.header.msg_type.clone()
    }
}

/// What the reply must say and how it must link, read back through the decoders.
fn check_decoded(c: &Case, enc: &Encoded, schemas: &SchemaSet, english: &[String]) {
    let name = &c.name;
    match c.format {
        ReplyFormat::Dialogmelding11 => {
            assert_eq!(enc.format, Format::Dialogmelding11);
            assert_eq!(enc.content_type, "application/xml");
            let report = schemas.validate(&enc.bytes);
            assert!(
                report.schema_valid(),
                "{name}: {:?}\n{}",
                report.findings,
                String::from_utf8_lossy(&enc.bytes)
            );
        }
        ReplyFormat::Fhir => {
            assert_eq!(enc.format, Format::FhirR4);
            assert_eq!(enc.content_type, "application/fhir+json");
            let value: Value = serde_json::from_slice(&enc.bytes).expect("JSON");
            let errors: Vec<_> = kadgate::fhir::validate::validate(&value)
                .into_iter()
                .filter(|f| f.severity == Severity::Error)
                .collect();
            assert!(errors.is_empty(), "{name}: {errors:?}");
            // The link as FHIR carries it, and no receipt-level response.
            let mh = &value["entry"][0]["resource"];
            assert!(mh.get("response").is_none(), "{name}");
            let entry = value["entry"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["resource"]["resourceType"] == "Communication")
                .expect("a Communication");
            assert_eq!(mh["focus"][0]["reference"], entry["fullUrl"], "{name}");
            let comm = &entry["resource"];
            let referral_id = c.referral.header.msg_id.as_deref().unwrap();
            assert_eq!(
                comm["inResponseTo"][0]["identifier"]["value"], referral_id,
                "{name}"
            );
            assert!(comm["basedOn"][0]["identifier"]["value"].is_string());
        }
    }
    assert_eq!(enc.msg_id, c.id);

    let back = read(&enc.bytes);
    let d = dialog(&back);
    assert_eq!(back.header.msg_id.as_deref(), Some(c.id.as_str()), "{name}");

    // The link to the referral.
    let referral_id = c.referral.header.msg_id.clone().expect("referral id");
    let start = c
        .referral
        .header
        .conversation
        .as_ref()
        .and_then(|c| c.ref_to_conversation.clone())
        .unwrap_or_else(|| referral_id.clone());
    assert_eq!(
        back.header.conversation,
        Some(Conversation {
            ref_to_parent: Some(referral_id),
            ref_to_conversation: Some(start),
        }),
        "{name}"
    );

    // Message type and topic per decision kind.
    let kind = c.decision.decision;
    let topic = d.topic.as_ref().expect("a topic");
    let (want_type, want_code, want_system) = match kind {
        DecisionKind::Accepted => ("DIALOG_STATUS_HENVISNING", "1", OID_REFERRAL_STATUS_9148),
        DecisionKind::NotAccepted => ("DIALOG_STATUS_HENVISNING", "4", OID_REFERRAL_STATUS_9148),
        DecisionKind::NeedsReview | DecisionKind::Incomplete => {
            ("DIALOG_HELSEFAGLIG", "6", OID_DIALOG_TOPIC_7322)
        }
    };
    assert_eq!(msg_type(&back), want_type, "{name}");
    assert_eq!(topic.code, want_code, "{name}");
    assert!(
        topic
            .system
            .as_deref()
            .is_some_and(|s| s.ends_with(want_system)),
        "{name}: {topic:?}"
    );

    // The decision in Norwegian, first; the rule set in the trailer.
    let first = d.texts.first().expect("a text");
    assert!(first.text.starts_with(LEAD), "{name}: {}", first.text);
    for r in &c.decision.reasons_no {
        assert!(
            first.text.contains(r.trim()),
            "{name}: reason {r:?} missing"
        );
    }
    assert_eq!(
        first.text.contains(REVIEW_LINE),
        kind == DecisionKind::NeedsReview,
        "{name}"
    );
    let trailer = d
        .texts
        .iter()
        .find(|t| t.role == Some(TextRole::Remark))
        .expect("the trailer");
    assert!(trailer.text.contains(&c.decision.ruleset_id), "{name}");
    assert!(trailer.text.contains(&c.decision.ruleset_version), "{name}");
    for f in &c.decision.fired {
        assert!(
            trailer.text.contains(&f.id),
            "{name}: rule {} missing",
            f.id
        );
    }

    // No English reason anywhere in the reply.
    let raw = String::from_utf8_lossy(&enc.bytes);
    for en in english {
        assert!(!raw.contains(en.as_str()), "{name}: English reason {en:?}");
        for t in &d.texts {
            assert!(
                !t.text.contains(en.as_str()),
                "{name}: English reason {en:?}"
            );
        }
    }

    // The patient as the referral identified them; the parties reversed.
    let want = c.referral.patient().expect("a patient");
    let got = back.patient().expect("the reply names the patient");
    let ids = |p: &kadgate::model::Patient| {
        let mut v: Vec<String> = p.idents.iter().map(|i| i.id.trim().to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(ids(got), ids(want), "{name}");
    assert!(got.has_name(), "{name}");
    assert!(
        got.address.is_none() && got.related_persons.is_empty(),
        "{name}"
    );
    let her = |o: Option<&Organisation>| o.and_then(Organisation::leaf_her_id).map(str::to_string);
    assert_eq!(
        her(back.header.receiver.as_ref()),
        her(c.referral.header.sender.as_ref()),
        "{name}"
    );
    assert_eq!(
        her(back.header.sender.as_ref()),
        her(c.referral.header.receiver.as_ref()),
        "{name}"
    );
}

/// Every English reason the rule set can give, plus the evaluator's own.
fn english_reasons(decisions: &[Decision]) -> Vec<String> {
    let mut v: Vec<String> = ruleset()
        .rules
        .iter()
        .map(|r| r.reason_en.trim().to_string())
        .collect();
    v.extend(
        decisions
            .iter()
            .flat_map(|d| d.reasons_en.iter().map(|r| r.trim().to_string())),
    );
    v.retain(|r| !r.is_empty());
    v
}

#[test]
fn every_decision_in_both_formats_is_valid_links_and_speaks_norwegian() {
    let schemas = SchemaSet::load(&common::standards().join("kith")).expect("KITH schemas load");
    let cases = cases();
    assert_eq!(cases.len(), 6 * 4 * 2);
    let english = english_reasons(&cases.iter().map(|c| c.decision.clone()).collect::<Vec<_>>());
    let tmp = tempfile::tempdir().unwrap();
    let mut fhir_files = Vec::new();
    for c in &cases {
        let enc = encode(c);
        check_decoded(c, &enc, &schemas, &english);
        if c.format == ReplyFormat::Fhir {
            let f = tmp.path().join(format!("{}.json", c.id));
            std::fs::write(&f, &enc.bytes).unwrap();
            fhir_files.push(f);
        }
    }
    assert_eq!(fhir_files.len(), cases.len() / 2);
    let rejected: Vec<String> = common::oracle(&fhir_files)
        .into_iter()
        .filter(|v| v["valid"] != true)
        .map(|v| v.to_string())
        .collect();
    assert!(rejected.is_empty(), "the oracle rejects: {rejected:#?}");
}

#[test]
fn the_reply_format_follows_the_referral() {
    let (_, fhir_referral, _) = decided().remove(0);
    assert_eq!(
        reply_format_for(fhir_referral.header.format),
        ReplyFormat::Fhir
    );
    for (rel, m) in kith_referrals() {
        assert_eq!(
            reply_format_for(m.header.format),
            ReplyFormat::Dialogmelding11,
            "{rel}"
        );
    }
}

/// One FHIR-referral case of the given kind, for the focused tests below.
fn one(kind: DecisionKind, format: ReplyFormat) -> Case {
    let (name, referral, decision) = decided()
        .into_iter()
        .find(|(_, _, d)| d.decision == kind)
        .expect("a vignette of that kind");
    Case {
        name: name.to_string(),
        referral,
        decision,
        format,
        id: msg_id(900),
    }
}

fn note(enc: &Encoded) -> String {
    dialog(&read(&enc.bytes)).texts[0].text.clone()
}

#[test]
fn an_override_routing_and_a_note_are_told() {
    let schemas = SchemaSet::load(&common::standards().join("kith")).expect("KITH schemas load");
    for format in [ReplyFormat::Dialogmelding11, ReplyFormat::Fhir] {
        // The doctor accepts a referral the rules sent to review; routing found the unit full.
        let mut c = one(DecisionKind::NeedsReview, format);
        c.decision.decision = DecisionKind::Accepted;
        let from = party(c.referral.header.receiver.as_ref(), "receiver");
        let to = party(c.referral.header.sender.as_ref(), "sender");
        let spec = ReplySpec {
            overridden_by: Some("overlege ved KAD"),
            unit: Some("Testbyen KAD"),
            route_note_no: Some(
                "Testbyen KAD er full; henvisningen er sendt til nabokommunens KAD.",
            ),
            ..c.spec(&from, &to)
        };
        let enc = business_reply(&spec, format).unwrap();
        if format == ReplyFormat::Dialogmelding11 {
            assert!(schemas.validate(&enc.bytes).schema_valid());
        }
        let text = note(&enc);
        assert!(text.starts_with(LEAD), "{text}");
        assert!(text.contains("overstyrt av overlege ved KAD"), "{text}");
        assert!(
            text.contains("Henvisningen er sendt videre til Testbyen KAD."),
            "{text}"
        );
        assert!(text.contains("Testbyen KAD er full; henvisningen er sendt til nabokommunens KAD."));
        assert!(
            !text.contains(REVIEW_LINE),
            "the doctor has decided: {text}"
        );
        let back = read(&enc.bytes);
        assert_eq!(msg_type(&back), "DIALOG_STATUS_HENVISNING");
        let trailer = &dialog(&back).texts[1].text;
        assert!(trailer.contains("overstyrt"), "{trailer}");

        // Without the override the same decision does not claim one.
        let plain = business_reply(&c.spec(&from, &to), format).unwrap();
        let text = note(&plain);
        assert!(!text.contains("overstyrt"), "{text}");
        assert!(!text.contains("sendt videre"), "{text}");
    }
}

#[test]
fn a_referral_inside_a_conversation_keeps_its_start() {
    for format in [ReplyFormat::Dialogmelding11, ReplyFormat::Fhir] {
        let mut c = one(DecisionKind::Accepted, format);
        c.referral.header.conversation = Some(Conversation {
            ref_to_parent: Some("0b8e4c3e-1111-4a44-8a55-000000000001".into()),
            ref_to_conversation: Some("0b8e4c3e-1111-4a44-8a55-000000000000".into()),
        });
        let enc = encode(&c);
        let back = read(&enc.bytes);
        let conv = back.header.conversation.expect("linked");
        assert_eq!(conv.ref_to_parent, c.referral.header.msg_id, "{format:?}");
        assert_eq!(
            conv.ref_to_conversation.as_deref(),
            Some("0b8e4c3e-1111-4a44-8a55-000000000000"),
            "{format:?}"
        );
    }
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    for format in [ReplyFormat::Dialogmelding11, ReplyFormat::Fhir] {
        let c = one(DecisionKind::NotAccepted, format);
        assert_eq!(encode(&c), encode(&c), "{format:?}");
        let mut other = one(DecisionKind::NotAccepted, format);
        other.id = msg_id(901);
        assert_ne!(encode(&c).bytes, encode(&other).bytes, "{format:?}");
    }
}

#[test]
fn a_test_referral_gets_a_test_reply() {
    let (_, mut referral) = kith_referrals().remove(0);
    referral.header.processing_status = Some("T".into());
    let decision = decided().remove(0).2;
    let c = Case {
        name: "test".into(),
        referral,
        decision,
        format: ReplyFormat::Dialogmelding11,
        id: msg_id(902),
    };
    let back = read(&encode(&c).bytes);
    assert_eq!(back.header.processing_status.as_deref(), Some("T"));
}

#[test]
fn what_cannot_be_answered_is_an_error() {
    let c = one(DecisionKind::Accepted, ReplyFormat::Dialogmelding11);
    let from = party(c.referral.header.receiver.as_ref(), "receiver");
    let to = party(c.referral.header.sender.as_ref(), "sender");
    for format in [ReplyFormat::Dialogmelding11, ReplyFormat::Fhir] {
        let bad_id = ReplySpec {
            msg_id: "not-a-uuid",
            ..c.spec(&from, &to)
        };
        assert_eq!(business_reply(&bad_id, format), Err(ReplyError::BadMsgId));
        let bad_time = ReplySpec {
            now: "yesterday",
            ..c.spec(&from, &to)
        };
        assert_eq!(business_reply(&bad_time, format), Err(ReplyError::BadTime));
        let mut no_id = c.referral.clone();
        no_id.header.msg_id = None;
        let spec = ReplySpec {
            referral: &no_id,
            ..c.spec(&from, &to)
        };
        assert_eq!(business_reply(&spec, format), Err(ReplyError::NoReferralId));
    }
    // A referrer that cannot be addressed cannot get a Dialogmelding.
    let nobody = Organisation::default();
    let spec = ReplySpec {
        to: &nobody,
        ..c.spec(&from, &to)
    };
    assert!(matches!(
        business_reply(&spec, ReplyFormat::Dialogmelding11),
        Err(ReplyError::Kith(_))
    ));
}

#[test]
fn a_patient_the_referral_did_not_identify_is_named_as_it_did() {
    // `incomplete` because the patient lacks an identity number: the reply still goes out, naming
    // the patient exactly as the referral did. It is plain R4 (kadgate's patient rule is what made
    // the referral incomplete) and schema-valid KITH.
    let schemas = SchemaSet::load(&common::standards().join("kith")).expect("KITH schemas load");
    let referral = vignette("inc-no-identity.json");
    let decision = decide(&ruleset(), &referral, today());
    assert_eq!(decision.decision, DecisionKind::Incomplete);
    let tmp = tempfile::tempdir().unwrap();
    for format in [ReplyFormat::Dialogmelding11, ReplyFormat::Fhir] {
        let c = Case {
            name: format!("inc-no-identity / {format:?}"),
            referral: referral.clone(),
            decision: decision.clone(),
            format,
            id: msg_id(903),
        };
        let enc = encode(&c);
        if format == ReplyFormat::Dialogmelding11 {
            let report = schemas.validate(&enc.bytes);
            assert!(report.schema_valid(), "{:?}", report.findings);
        } else {
            let value: Value = serde_json::from_slice(&enc.bytes).expect("JSON");
            let opts = kadgate::fhir::validate::Options::r4();
            let errors: Vec<_> = kadgate::fhir::validate::validate_with(&value, &opts)
                .into_iter()
                .filter(|f| f.severity == Severity::Error)
                .collect();
            assert!(errors.is_empty(), "{errors:?}");
            let f = tmp.path().join("reply.json");
            std::fs::write(&f, &enc.bytes).unwrap();
            let verdict = common::oracle(&[f]).remove(0);
            assert_eq!(verdict["valid"], true, "{}", verdict["issues"]);
        }
        let back = read(&enc.bytes);
        let p = back.patient().expect("the patient is named");
        assert!(p.has_name() && p.idents.is_empty(), "{}", c.name);
        assert!(note(&enc).starts_with(LEAD));
    }
}
