//! The messages a KAD stay is made of: PLO Pasientlogistikk events, FHIR messages whose focus is the
//! stay's Encounter, and epicrises with their corrections and cancellations (KITH Epikrise 1.2 and
//! FHIR). Every fixture in `fixtures/stays/` decodes to the facts `fixtures/stays/README.md` says it
//! carries; the official Pasientlogistikk examples decode to the right kind of event; a stay event
//! survives FHIR encode → R4 oracle → decode; the epicrisis lifecycle (7309 service type, 7306
//! status) survives both formats; the KITH fixtures are XSD-valid.

use std::path::PathBuf;
use std::sync::OnceLock;

use kadgate::check::{Checker, Disposition, Mode, Rules};
use kadgate::config::Config;
use kadgate::convert::read_message;
use kadgate::finding::{codes, Finding, Severity};
use kadgate::model::{
    Body, CareEvent, CareEventKind, Epicrisis, Format, Header, Message, Organisation, ServiceType,
};
use kadgate::xsd::SchemaSet;
use serde_json::Value;

mod common;

/// The referral every fixture links to (a placeholder: the referral's MsgId, see the README).
const REFERRAL: &str = "f0f0f0f0-0000-4000-8000-000000000001";
/// The epicrisis' document id, the same in the new, corrected and cancelled versions.
const EPICRISIS_ID: &str = "testbyen-kad-epikrise-2026-0042";
/// The unit's id of the stay (FHIR only: PLO has none).
const STAY_ID: &str = "testbyen-kad-opphold-2026-0042";
/// The patient of the whole stay (on two GP lists in `fixtures/demo/registry.toml`).
const PATIENT: &str = "30014500282";
const PLO_INNLAGT_MSG_ID: &str = "57a10000-0000-4000-8000-000000000001";
const FHIR_INNLAGT_MSG_ID: &str = "57a10000-0000-4000-8000-000000000011";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/stays")
        .join(name)
}

fn rules() -> &'static Rules {
    static R: OnceLock<Rules> = OnceLock::new();
    R.get_or_init(|| Rules::from_config(&Config::demo()))
}

fn schemas() -> &'static SchemaSet {
    static S: OnceLock<SchemaSet> = OnceLock::new();
    S.get_or_init(|| {
        SchemaSet::load(&common::standards().join("kith")).expect("KITH schema set compiles")
    })
}

fn read(bytes: &[u8], what: &str) -> (Message, Vec<Finding>) {
    read_message(bytes, rules()).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn her(o: Option<&Organisation>) -> Option<&str> {
    o.and_then(Organisation::leaf_her_id)
}

// ---------------------------------------------------------------- the fixtures

/// What one fixture must decode to.
enum Facts {
    Event(CareEvent),
    Epicrisis {
        id: &'static str,
        /// `None`: the message does not say (a FHIR `final` Composition without kadgate's
        /// service-type extension).
        service_type: Option<ServiceType>,
        status: Option<&'static str>,
        stay: Option<(&'static str, &'static str)>,
    },
}

struct Fixture {
    file: &'static str,
    format: Format,
    msg_id: String,
    /// `RefToParent` of the message (MsgHead ConversationRef / the conversation-ref extension).
    parent: Option<&'static str>,
    sender_her: &'static str,
    receiver_her: &'static str,
    facts: Facts,
}

fn event(
    kind: CareEventKind,
    at: &str,
    service_type: ServiceType,
    stay: bool,
    home_nursing: Option<bool>,
) -> CareEvent {
    CareEvent {
        kind,
        at: Some(at.to_string()),
        service_type: Some(service_type),
        // PLO names neither the referral nor the stay: the conversation links it (README).
        referral_id: stay.then(|| REFERRAL.to_string()),
        stay_id: stay.then(|| STAY_ID.to_string()),
        home_nursing,
    }
}

/// The MsgId / MessageHeader.id of fixture number `n` (README: 1–5 KITH, 11–15 FHIR).
fn msg_id(n: u32) -> String {
    format!("57a10000-0000-4000-8000-{n:012}")
}

fn epicrisis(
    service_type: Option<ServiceType>,
    status: Option<&'static str>,
    stay: Option<(&'static str, &'static str)>,
) -> Facts {
    Facts::Epicrisis {
        id: EPICRISIS_ID,
        service_type,
        status,
        stay,
    }
}

fn fixtures() -> Vec<Fixture> {
    use CareEventKind::{Admitted, Discharged};
    use Format::{Epikrise12, FhirR4, MsgHead12};
    use ServiceType::{Cancellation, Change, New};
    let stay = Some(("2026-03-02T14:30:00", "2026-03-05T11:00:00"));
    let fhir_stay = Some(("2026-03-02T14:30:00+01:00", "2026-03-05T11:00:00+01:00"));
    // Every message is the KAD unit's: stay events to home nursing, epicrises to the referrer.
    let row = |file, format, n, parent: Option<&'static str>, facts| Fixture {
        file,
        format,
        msg_id: msg_id(n),
        parent,
        sender_her: "990002",
        receiver_her: if matches!(facts, Facts::Event(_)) {
            "990041"
        } else {
            "990020"
        },
        facts,
    };
    let (plo_in, fhir_in) = (Some(PLO_INNLAGT_MSG_ID), Some(FHIR_INNLAGT_MSG_ID));
    let r = Some(REFERRAL);
    vec![
        row(
            "plo16-log-innlagt.xml",
            MsgHead12,
            1,
            r,
            Facts::Event(event(Admitted, "2026-03-02T14:30:00", New, false, None)),
        ),
        row(
            "plo16-log-utskrevet.xml",
            MsgHead12,
            2,
            plo_in,
            Facts::Event(event(
                Discharged,
                "2026-03-05T11:00:00",
                New,
                false,
                Some(true),
            )),
        ),
        row(
            "epikrise12-ny.xml",
            Epikrise12,
            3,
            None,
            epicrisis(Some(New), Some("F"), stay),
        ),
        row(
            "epikrise12-endring.xml",
            Epikrise12,
            4,
            None,
            epicrisis(Some(Change), Some("F"), stay),
        ),
        row(
            "epikrise12-kansellering.xml",
            Epikrise12,
            5,
            None,
            epicrisis(Some(Cancellation), Some("F"), None),
        ),
        row(
            "fhir-encounter-innlagt.json",
            FhirR4,
            11,
            r,
            Facts::Event(event(
                Admitted,
                "2026-03-02T14:30:00+01:00",
                New,
                true,
                None,
            )),
        ),
        row(
            "fhir-encounter-utskrevet.json",
            FhirR4,
            12,
            fhir_in,
            Facts::Event(event(
                Discharged,
                "2026-03-05T11:00:00+01:00",
                New,
                true,
                Some(true),
            )),
        ),
        // A `final` Composition without kadgate's service-type extension does not say "new".
        row(
            "fhir-epikrise-message.json",
            FhirR4,
            13,
            r,
            epicrisis(None, Some("F"), fhir_stay),
        ),
        row(
            "fhir-epikrise-message-amended.json",
            FhirR4,
            14,
            r,
            epicrisis(Some(Change), Some("F"), fhir_stay),
        ),
        row(
            "fhir-epikrise-message-entered-in-error.json",
            FhirR4,
            15,
            r,
            epicrisis(Some(Cancellation), None, fhir_stay),
        ),
    ]
}

/// The one check of a fixture: header, patient and the stay facts.
fn check(f: &Fixture) {
    let bytes = std::fs::read(fixture(f.file)).unwrap_or_else(|e| panic!("{}: {e}", f.file));
    let (m, findings) = read(&bytes, f.file);
    let noted: Vec<_> = findings
        .iter()
        .filter(|x| x.severity >= Severity::Warning)
        .collect();
    assert!(noted.is_empty(), "{}: {noted:#?}", f.file);
    let h = &m.header;
    assert_eq!(h.format, f.format, "{}", f.file);
    assert_eq!(
        h.msg_id.as_deref(),
        Some(f.msg_id.as_str()),
        "{}: MsgId",
        f.file
    );
    assert_eq!(
        h.conversation
            .as_ref()
            .and_then(|c| c.ref_to_parent.as_deref()),
        f.parent,
        "{}: RefToParent",
        f.file
    );
    if f.parent.is_some() {
        assert_eq!(
            h.conversation
                .as_ref()
                .and_then(|c| c.ref_to_conversation.as_deref()),
            Some(REFERRAL),
            "{}: the conversation starts with the referral",
            f.file
        );
    }
    assert_eq!(her(h.sender.as_ref()), Some(f.sender_her), "{}", f.file);
    assert_eq!(her(h.receiver.as_ref()), Some(f.receiver_her), "{}", f.file);
    let patient = m
        .patient()
        .unwrap_or_else(|| panic!("{}: no patient", f.file));
    assert_eq!(
        patient.idents.first().map(|i| i.id.as_str()),
        Some(PATIENT),
        "{}",
        f.file
    );
    match &f.facts {
        Facts::Event(want) => {
            assert_eq!(m.care_event(), Some(want), "{}", f.file);
            let plo = matches!(&m.body, Body::Plo(p) if p.document == "Pasientlogistikk");
            let fhir = matches!(&m.body, Body::CareEvent(_));
            assert!(plo || fhir, "{}: {:?}", f.file, m.body);
        }
        Facts::Epicrisis {
            id,
            service_type,
            status,
            stay,
        } => {
            let Body::Epicrisis(e) = &m.body else {
                panic!("{}: not an epicrisis: {:?}", f.file, m.body)
            };
            assert_eq!(m.care_event(), None);
            assert_eq!(e.id.as_deref(), Some(*id), "{}: document id", f.file);
            assert_eq!(e.referral_id.as_deref(), Some(REFERRAL), "{}", f.file);
            assert_eq!(e.service_type, *service_type, "{}", f.file);
            assert_eq!(e.status.as_deref(), *status, "{}: 7306 status", f.file);
            assert_eq!(
                (e.admitted.as_deref(), e.discharged.as_deref()),
                (stay.map(|s| s.0), stay.map(|s| s.1)),
                "{}: the stay",
                f.file
            );
        }
    }
}

#[test]
fn every_stay_fixture_decodes_to_its_facts() {
    let table = fixtures();
    for f in &table {
        check(f);
    }
    // The table names every file of the folder (README aside).
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = table.iter().map(|f| f.file.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn corrections_keep_the_document_id_and_get_new_message_ids() {
    for set in [
        [
            "epikrise12-ny.xml",
            "epikrise12-endring.xml",
            "epikrise12-kansellering.xml",
        ],
        [
            "fhir-epikrise-message.json",
            "fhir-epikrise-message-amended.json",
            "fhir-epikrise-message-entered-in-error.json",
        ],
    ] {
        let decoded: Vec<Message> = set
            .iter()
            .map(|f| read(&std::fs::read(fixture(f)).unwrap(), f).0)
            .collect();
        let ids: Vec<Option<&str>> = decoded
            .iter()
            .map(|m| match &m.body {
                Body::Epicrisis(e) => e.id.as_deref(),
                _ => None,
            })
            .collect();
        assert!(ids.iter().all(|i| *i == Some(EPICRISIS_ID)), "{ids:?}");
        let mut msg_ids: Vec<_> = decoded.iter().map(|m| m.header.msg_id.clone()).collect();
        msg_ids.dedup();
        assert_eq!(msg_ids.len(), 3, "a new MsgId each time: {msg_ids:?}");
    }
}

#[test]
fn the_kith_fixtures_are_schema_valid() {
    let mut n = 0;
    for f in fixtures().iter().filter(|f| f.file.ends_with(".xml")) {
        let report = schemas().validate(&std::fs::read(fixture(f.file)).unwrap());
        assert!(report.schema_valid(), "{}: {report:#?}", f.file);
        n += 1;
    }
    assert_eq!(n, 5);
}

/// What `serve` does with them under the demo configuration: every receiver sits under Testbyen
/// kommune (ENH 990001006), one of its organisations, so each is accepted without a finding.
#[test]
fn the_demo_configuration_accepts_every_fixture() {
    let checker = Checker {
        rules: rules(),
        schemas: Some(schemas()),
        mode: Mode::Serve,
    };
    for f in fixtures() {
        let bytes = std::fs::read(fixture(f.file)).unwrap();
        let (disposition, findings) = if f.format == Format::FhirR4 {
            let o = kadgate::fhir::check::check(
                &checker,
                &bytes,
                &kadgate::fhir::validate::Options::default(),
            );
            (o.disposition, o.findings)
        } else {
            let o = checker.check(&bytes);
            (o.disposition, o.findings)
        };
        assert_eq!(
            disposition,
            Disposition::Accepted,
            "{}: {findings:#?}",
            f.file
        );
        assert!(findings.is_empty(), "{}: {findings:#?}", f.file);
    }
}

#[test]
fn the_fhir_fixtures_are_valid_r4() {
    let files: Vec<PathBuf> = fixtures()
        .iter()
        .filter(|f| f.file.ends_with(".json"))
        .map(|f| fixture(f.file))
        .collect();
    for v in common::oracle(&files) {
        assert_eq!(v["valid"], true, "{v}");
    }
    for path in &files {
        let errors: Vec<Finding> = kadgate::fhir::validate::validate(
            &serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap(),
        )
        .into_iter()
        .filter(Finding::is_error)
        .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

// ---------------------------------------------------------------- the official PLO examples

/// The kind each Pasientlogistikk type stands for (FACTS §1); `None`: no stay event.
fn kind_of_type(t: &str) -> Option<CareEventKind> {
    match t {
        "LOG_INNLAGT" => Some(CareEventKind::Admitted),
        "LOG_UTSKREVET" => Some(CareEventKind::Discharged),
        "LOG_UTSKRIVNINGSKLAR" => Some(CareEventKind::ReadyForDischarge),
        "LOG_DOD" => Some(CareEventKind::Deceased),
        _ => None,
    }
}

#[test]
fn official_pasientlogistikk_examples_decode_to_their_kind() {
    let not_well_formed: Vec<PathBuf> = common::kith_verdicts()
        .into_iter()
        .filter(|(v, _)| *v == common::Verdict::NotWellFormed)
        .map(|(_, p)| p)
        .collect();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for path in common::all_examples() {
        if not_well_formed.contains(&path) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let Ok((m, findings)) = read_message(&bytes, rules()) else {
            continue;
        };
        let t = m.header.msg_type.clone();
        if !t.starts_with("LOG_") {
            continue;
        }
        let name = path.display().to_string();
        assert!(
            !findings.iter().any(Finding::is_error)
                && !findings
                    .iter()
                    .any(|f| f.code.starts_with("decode.plo") && f.severity >= Severity::Warning),
            "{name}: {findings:#?}"
        );
        let Body::Plo(p) = &m.body else {
            panic!("{name}: {:?}", m.body)
        };
        assert_eq!(p.document, "Pasientlogistikk", "{name}");
        match kind_of_type(&t) {
            Some(kind) => {
                let e = p
                    .event
                    .as_ref()
                    .unwrap_or_else(|| panic!("{name}: no event"));
                assert_eq!(e.kind, kind, "{name}");
                // The time is the event's own (a date or date-time), never the message's.
                let at = e.at.as_deref().unwrap_or_else(|| panic!("{name}: no time"));
                assert!(at.len() >= 10 && at.as_bytes()[4] == b'-', "{name}: {at}");
                assert_ne!(Some(at), m.header.gen_date.as_deref());
                // Forsendelsesstatus as written (one acceptance case leaves it out).
                let written = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.split("Forsendelsesstatus V=\"").nth(1))
                    .and_then(|s| s.get(..1))
                    .and_then(ServiceType::from_kith);
                assert_eq!(e.service_type, written, "{name}");
                assert_eq!((e.referral_id.as_ref(), e.stay_id.as_ref()), (None, None));
            }
            None => assert_eq!(p.event, None, "{name}"),
        }
        *seen.entry(t).or_default() += 1;
    }
    for t in [
        "LOG_INNLAGT",
        "LOG_UTSKREVET",
        "LOG_UTSKRIVNINGSKLAR",
        "LOG_DOD",
        "LOG_AVMELDING",
    ] {
        assert!(seen.contains_key(t), "no example of {t}: {seen:?}");
    }
}

/// Hand-made variants of the official 1.6 examples: what the decoder makes of the cases the
/// examples do not show (times picked by their 9121 code, home nursing, a type that disagrees
/// with the content, unreadable values).
#[test]
fn pasientlogistikk_variants() {
    let dir = common::kith("plo/examples/sarepta/plo-1_6/pasientlogistikk_1_6_mottak");
    let utskrevet = std::fs::read_to_string(
        dir.join("Pasientlogistikk_Melding_om_utskrevet_pasient_v1-6_Ny.xml"),
    )
    .unwrap();
    let klar =
        std::fs::read_to_string(dir.join("Pasientlogistikk_Utskrivningsklar_pasient_v1-6_Ny.xml"))
            .unwrap();
    let decode = |xml: &str| -> (Option<CareEvent>, Vec<Finding>) {
        let (m, f) = read(xml.as_bytes(), "variant");
        (m.care_event().cloned(), f)
    };
    let has = |f: &[Finding], code: &str| f.iter().any(|x| x.code == code);

    // The official discharge goes home, addressed to Alvdal's "Sykepleietjeneste" by name only:
    // a name is not a service type, so home nursing stays unknown.
    let (e, _) = decode(&utskrevet);
    let e = e.unwrap();
    assert_eq!(
        (e.kind, e.at.as_deref(), e.home_nursing),
        (CareEventKind::Discharged, Some("2018-02-01"), None)
    );
    // Typed as a nursing service (8663 KP02): home nursing.
    let typed = utskrevet.replacen(
        "<OrganisationName>Sykepleietjeneste</OrganisationName>",
        "<OrganisationName>Sykepleietjeneste</OrganisationName><TypeOrganisation V=\"KP02\" S=\"2.16.578.1.12.4.1.1.8663\"/>",
        1,
    );
    assert_eq!(decode(&typed).0.unwrap().home_nursing, Some(true));
    // To a nursing home: not home nursing, whoever receives it.
    let institution = typed.replace("<UtTil V=\"1\"", "<UtTil V=\"11\"");
    assert_eq!(decode(&institution).0.unwrap().home_nursing, Some(false));
    // Left dead: not home nursing.
    let dead = typed.replace("<Uttilstand V=\"1\"", "<Uttilstand V=\"2\"");
    assert_eq!(decode(&dead).0.unwrap().home_nursing, Some(false));

    // Ready for discharge: the time of the event coded 3, not the admission before it.
    let (e, _) = decode(&klar);
    let e = e.unwrap();
    assert_eq!(
        (e.kind, e.at.as_deref()),
        (CareEventKind::ReadyForDischarge, Some("2018-01-31"))
    );

    // A type that says one thing and a document that holds another: the document wins, noted.
    let mismatch = utskrevet.replace("V=\"LOG_UTSKREVET\"", "V=\"LOG_INNLAGT\"");
    let (e, f) = decode(&mismatch);
    assert_eq!(e.unwrap().kind, CareEventKind::Discharged);
    assert!(has(&f, "decode.plo-event-type-mismatch"), "{f:#?}");

    // Unreadable values are noted and not read; the event still is.
    let bad = utskrevet
        .replace("<Forsendelsesstatus V=\"N\"", "<Forsendelsesstatus V=\"X\"")
        .replace(
            "<TidspunktForHendelse V=\"2018-02-01\"",
            "<TidspunktForHendelse V=\"1. februar\"",
        );
    let (e, f) = decode(&bad);
    let e = e.unwrap();
    assert_eq!((e.service_type, e.at), (None, None));
    assert!(has(&f, "decode.plo-forsendelsesstatus-unknown"), "{f:#?}");
    assert!(has(&f, "decode.plo-event-time-invalid"), "{f:#?}");
    assert!(!f.iter().any(Finding::is_error));
    // A date without zero padding is padded, as every KITH date.
    let unpadded = utskrevet.replace("V=\"2018-02-01\"/>", "V=\"2018-2-1\"/>");
    assert_eq!(
        decode(&unpadded).0.unwrap().at.as_deref(),
        Some("2018-02-01")
    );
    // No content at all: the type still says what happened, without a time.
    let start = utskrevet.find("<p1:MeldingOmUtskrevetPasient>").unwrap();
    let end = utskrevet.find("</p1:MeldingOmUtskrevetPasient>").unwrap()
        + "</p1:MeldingOmUtskrevetPasient>".len();
    let empty = format!("{}{}", &utskrevet[..start], &utskrevet[end..]);
    let e = decode(&empty).0.unwrap();
    assert_eq!((e.kind, e.at), (CareEventKind::Discharged, None));
}

// ---------------------------------------------------------------- FHIR stay events

fn party(name: &str, enh: &str, unit: &str, her: &str) -> Organisation {
    serde_json::from_value(serde_json::json!({
        "name": name, "idents": [{ "id": enh, "kind": "ENH" }],
        "unit": { "name": unit, "idents": [{ "id": her, "kind": "HER" }] }
    }))
    .unwrap()
}

/// A stay event message from Testbyen KAD to Testbyen legekontor (ours in the demo config), about
/// the fixtures' patient, as a FHIR decode gives it.
fn stay_message(msg_id: &str, e: CareEvent) -> Message {
    let patient = read(
        &std::fs::read(fixture("fhir-encounter-innlagt.json")).unwrap(),
        "patient",
    )
    .0
    .header
    .patient;
    let mut header = Header::new(Format::FhirR4, "kad-opphold");
    header.msg_type_text = Some("Hendelse i KAD-opphold".into());
    header.msg_id = Some(msg_id.into());
    header.gen_date = Some("2026-03-05T11:05:00+01:00".into());
    header.sender = Some(party(
        "Testbyen kommune",
        "990001006",
        "Testbyen KAD",
        "990002",
    ));
    header.receiver = Some(party(
        "Testbyen legekontor",
        "990003009",
        "Fastlege",
        "990011",
    ));
    header.patient = patient;
    header.conversation = Some(kadgate::model::Conversation {
        ref_to_parent: Some(REFERRAL.into()),
        ref_to_conversation: Some(REFERRAL.into()),
    });
    Message {
        header,
        body: Body::CareEvent(Box::new(e)),
    }
}

#[test]
fn fhir_stay_events_round_trip_and_pass_the_oracle() {
    use CareEventKind::*;
    let full = |kind, at: Option<&str>, st, home| CareEvent {
        kind,
        at: at.map(str::to_string),
        service_type: st,
        referral_id: Some(REFERRAL.into()),
        stay_id: Some(STAY_ID.into()),
        home_nursing: home,
    };
    let cases = [
        (
            "admitted",
            full(
                Admitted,
                Some("2026-03-02T14:30:00+01:00"),
                Some(ServiceType::New),
                None,
            ),
        ),
        (
            "discharged home",
            full(
                Discharged,
                Some("2026-03-05T11:00:00+01:00"),
                Some(ServiceType::New),
                Some(true),
            ),
        ),
        (
            "discharged, changed time",
            full(
                Discharged,
                Some("2026-03-05T12:00:00+01:00"),
                Some(ServiceType::Change),
                Some(false),
            ),
        ),
        ("deceased", full(Deceased, Some("2026-03-04"), None, None)),
        (
            "cancelled admission",
            full(
                Admitted,
                Some("2026-03-02T14:30:00+01:00"),
                Some(ServiceType::Cancellation),
                None,
            ),
        ),
        (
            "cancelled discharge, no time",
            full(Discharged, None, Some(ServiceType::Cancellation), None),
        ),
        (
            "cancelled death",
            full(
                Deceased,
                Some("2026-03-04"),
                Some(ServiceType::Cancellation),
                None,
            ),
        ),
        (
            "bare",
            CareEvent {
                kind: Admitted,
                at: None,
                service_type: None,
                referral_id: None,
                stay_id: None,
                home_nursing: None,
            },
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (n, (what, e)) in cases.iter().enumerate() {
        let m = stay_message(
            &format!("57a10000-0000-4000-8000-0000000002{n:02}"),
            e.clone(),
        );
        let v = kadgate::fhir::encode::encode(&m).unwrap_or_else(|x| panic!("{what}: {x}"));
        let enc = v["entry"]
            .as_array()
            .and_then(|es| {
                es.iter()
                    .find(|x| x["resource"]["resourceType"] == "Encounter")
            })
            .expect("an Encounter entry");
        let status = enc["resource"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let want_status = match (e.kind, e.service_type) {
            (_, Some(ServiceType::Cancellation)) => "entered-in-error",
            (Admitted, _) => "in-progress",
            _ => "finished",
        };
        assert_eq!(status, want_status, "{what}");
        assert_eq!(
            v["entry"][0]["resource"]["eventCoding"]["code"],
            "kad-opphold"
        );
        // Through the check path, as `$process-message` takes it.
        let bytes = serde_json::to_vec(&v).unwrap();
        let checker = Checker {
            rules: rules(),
            schemas: None,
            mode: Mode::Serve,
        };
        let out = kadgate::fhir::check::check(
            &checker,
            &bytes,
            &kadgate::fhir::validate::Options::default(),
        );
        assert_eq!(
            out.disposition,
            Disposition::Accepted,
            "{what}: {:#?}",
            out.findings
        );
        assert!(
            !out.findings.iter().any(|f| f.severity >= Severity::Warning),
            "{what}: {:#?}",
            out.findings
        );
        assert!(!out
            .findings
            .iter()
            .any(|f| f.code == codes::FHIR_FOCUS_UNSUPPORTED));
        let back = out.message.expect("decoded");
        assert_eq!(back.body, m.body, "{what}: model → FHIR → model");
        assert_eq!(back.header.patient, m.header.patient, "{what}");
        assert_eq!(back.header.conversation, m.header.conversation, "{what}");
        assert_eq!(her(back.header.sender.as_ref()), Some("990002"));
        // Deterministic.
        assert_eq!(v, kadgate::fhir::encode::encode(&m).unwrap());
        let path = tmp.path().join(format!("stay-{n}.json"));
        std::fs::write(&path, &bytes).unwrap();
        files.push(path);
    }
    for v in common::oracle(&files) {
        assert_eq!(v["valid"], true, "{v}");
    }
    // What an Encounter status cannot say is refused, not guessed.
    let ready = stay_message(
        "57a10000-0000-4000-8000-000000000299",
        full(ReadyForDischarge, Some("2026-03-04"), None, None),
    );
    assert!(kadgate::fhir::encode::encode(&ready).is_err());
}

#[test]
fn a_stay_event_survives_serialisation() {
    for f in ["plo16-log-utskrevet.xml", "fhir-encounter-utskrevet.json"] {
        let (m, _) = read(&std::fs::read(fixture(f)).unwrap(), f);
        let json = serde_json::to_string(&m).unwrap();
        let back: Message = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(back, m, "{f}");
        assert!(back.care_event().is_some());
    }
}

#[test]
fn an_encounter_status_without_a_stay_event_is_noted() {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(fixture("fhir-encounter-innlagt.json")).unwrap())
            .unwrap();
    v["entry"][1]["resource"]["status"] = Value::String("planned".into());
    let d = kadgate::fhir::decode::decode(&v);
    let m = d.message.unwrap();
    assert_eq!(m.body, Body::Opaque);
    assert!(m.header.patient.is_some());
    assert!(d
        .findings
        .iter()
        .any(|f| f.code == codes::FHIR_FOCUS_UNSUPPORTED && f.path.ends_with(".status")));
    // A finished Encounter discharged as `exp` (expired) is a death.
    v["entry"][1]["resource"]["status"] = Value::String("finished".into());
    v["entry"][1]["resource"]["period"]["end"] = Value::String("2026-03-04T03:00:00+01:00".into());
    v["entry"][1]["resource"]["hospitalization"] = serde_json::json!({ "dischargeDisposition": { "coding": [
        { "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "exp" }] } });
    let m = kadgate::fhir::decode::decode(&v).message.unwrap();
    let e = m.care_event().unwrap();
    assert_eq!(
        (e.kind, e.at.as_deref()),
        (CareEventKind::Deceased, Some("2026-03-04T03:00:00+01:00"))
    );
}

// ---------------------------------------------------------------- the epicrisis lifecycle

/// The epicrisis of `epikrise12-ny.xml` with the given service type and 7306 status.
fn epicrisis_with(st: Option<ServiceType>, status: Option<&str>) -> Message {
    let (mut m, _) = read(
        &std::fs::read(fixture("epikrise12-ny.xml")).unwrap(),
        "epikrise",
    );
    if let Body::Epicrisis(e) = &mut m.body {
        e.service_type = st;
        e.status = status.map(str::to_string);
    }
    m
}

fn epicrisis_of(m: &Message) -> &Epicrisis {
    match &m.body {
        Body::Epicrisis(e) => e,
        b => panic!("not an epicrisis: {b:?}"),
    }
}

#[test]
fn composition_status_follows_the_lifecycle_both_ways() {
    use ServiceType::*;
    // (service type, 7306 status) → Composition.status
    let table: &[(Option<ServiceType>, Option<&str>, &str)] = &[
        (Some(New), Some("F"), "final"),
        (Some(New), Some("P"), "preliminary"),
        (Some(New), Some("A"), "amended"),
        (Some(Change), Some("F"), "amended"),
        (Some(Change), Some("P"), "amended"),
        (Some(Addition), Some("F"), "amended"),
        (Some(Cancellation), Some("F"), "entered-in-error"),
        (Some(Cancellation), None, "entered-in-error"),
        (None, Some("F"), "final"),
        (None, Some("A"), "amended"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (n, (st, status, want)) in table.iter().enumerate() {
        let m = epicrisis_with(*st, *status);
        for as_message in [false, true] {
            let v = if as_message {
                kadgate::fhir::encode::encode_epicrisis_message(&m).unwrap()
            } else {
                kadgate::fhir::encode::encode(&m).unwrap()
            };
            let comp = if as_message {
                &v["entry"][1]["resource"]["entry"][0]["resource"]
            } else {
                &v["entry"][0]["resource"]
            };
            assert_eq!(comp["status"], *want, "{st:?} {status:?}");
            let d = kadgate::fhir::decode::decode(&v);
            assert!(
                !d.findings.iter().any(|f| f.severity >= Severity::Warning),
                "{:#?}",
                d.findings
            );
            let back = d.message.unwrap();
            let e = epicrisis_of(&back);
            assert_eq!(
                (e.service_type, e.status.as_deref()),
                (*st, *status),
                "{want}"
            );
            assert_eq!(e.id.as_deref(), Some(EPICRISIS_ID));
            assert_eq!(e.referral_id.as_deref(), Some(REFERRAL));
            let path = tmp.path().join(format!("epi-{n}-{as_message}.json"));
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
            files.push(path);
        }
    }
    for v in common::oracle(&files) {
        assert_eq!(v["valid"], true, "{v}");
    }
    // Composition.status alone (no kadgate extensions, as other senders write it).
    let (amended, _) = read(
        &std::fs::read(fixture("fhir-epikrise-message-amended.json")).unwrap(),
        "amended",
    );
    assert_eq!(epicrisis_of(&amended).service_type, Some(Change));
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(fixture("fhir-epikrise-message.json")).unwrap())
            .unwrap();
    let cases = [
        ("final", None, Some("F")),
        ("preliminary", None, Some("P")),
        ("corrected", Some(Change), Some("F")),
        ("entered-in-error", Some(Cancellation), None),
    ];
    for (status, st, report) in cases {
        v["entry"][1]["resource"]["entry"][0]["resource"]["status"] = Value::String(status.into());
        let m = kadgate::fhir::decode::decode(&v).message.unwrap();
        let e = epicrisis_of(&m);
        assert_eq!(
            (e.service_type, e.status.as_deref()),
            (st, report),
            "{status}"
        );
    }
}

#[test]
fn epikrise_12_writes_back_what_it_read() {
    for f in [
        "epikrise12-ny.xml",
        "epikrise12-endring.xml",
        "epikrise12-kansellering.xml",
    ] {
        let (m, _) = read(&std::fs::read(fixture(f)).unwrap(), f);
        let out = kadgate::kith::encode::encode(&m, Format::Epikrise12).unwrap();
        let report = schemas().validate(&out);
        assert!(report.schema_valid(), "{f}: {report:#?}");
        let (back, _) = read(&out, f);
        let (a, b) = (epicrisis_of(&m), epicrisis_of(&back));
        assert_eq!(back.header.msg_id, m.header.msg_id, "{f}");
        assert_eq!(
            (&b.id, &b.referral_id, b.service_type, &b.status),
            (&a.id, &a.referral_id, a.service_type, &a.status),
            "{f}"
        );
        // And through FHIR: the same lifecycle facts.
        let fhir = kadgate::fhir::encode::encode_epicrisis_message(&m).unwrap();
        let back = kadgate::fhir::decode::decode(&fhir).message.unwrap();
        let b = epicrisis_of(&back);
        assert_eq!(
            (&b.id, &b.referral_id, b.service_type, &b.status),
            (&a.id, &a.referral_id, a.service_type, &a.status),
            "{f} through FHIR"
        );
    }
}
