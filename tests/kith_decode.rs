//! Detection and decoding of the shared KITH example messages (sarepta, acceptance tests, NAV
//! fellesformat, fiks-nhn-client, helsenorge-messaging).
//!
//! The standards tree is found through `KADGATE_STANDARDS_DIR`, else
//! `$CARGO_MANIFEST_DIR/../shared/standards`; without it the tests say so and pass.
//! Expected values below were read from the example files themselves.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use kadgate::finding::Severity;
use kadgate::kith::decode::{decode, salvage_header, Decoded};
use kadgate::kith::detect::{detect, Detection};
use kadgate::model::{Body, Format, Organisation, ServiceType};
use kadgate::xml::{scan, Limits};

fn standards() -> Option<PathBuf> {
    let dir = std::env::var_os("KADGATE_STANDARDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/standards"));
    if dir.join("kith").is_dir() {
        Some(dir)
    } else {
        eprintln!("standards not found at {}; skipping", dir.display());
        None
    }
}

/// Every example file under kith/*/examples except the registry, relative to the kith folder.
fn example_files(kith: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "xml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for kind in std::fs::read_dir(kith).unwrap().flatten() {
        if kind.file_name() == "registry" {
            continue;
        }
        walk(&kind.path().join("examples"), &mut out);
    }
    let mut v: Vec<String> = out
        .iter()
        .map(|p| {
            p.strip_prefix(kith)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    v.sort();
    v
}

/// The four acceptance-test files VALIDATION.md lists as NOT-WELL-FORMED.
const NOT_WELL_FORMED: &[&str] = &[
    "plo/examples/sarepta-akseptansetest/Testcase-mottak-Helseopplysninger_til_lege-v1_5/Case1-2-Foresporsel-Helseopplysninger_til_lege-v1_5.xml",
    "plo/examples/sarepta-akseptansetest/Testcase-mottak-Helseopplysninger_ved_soknad-v1_5/Case1-2-Helseopplysninger_ved_soknad-v1_5.xml",
    "plo/examples/sarepta-akseptansetest/Testcase-mottak-Medisinske_opplysninger-v1_5/Case1-2-Medisinske_opplysninger-v1_5.xml",
    "plo/examples/sarepta-akseptansetest/Testcase-mottak-Utskrivningsrapport-v1_5/Case1-2-Utskrivningsrapport-v1_5.xml",
];

/// Example files `detect` is expected not to recognise. None today: the helsenorge e-resept sample
/// (DIALOG_INNBYGGER_RESEPTFORNYELSE) is a MsgHead whose *first* document is a Dialogmelding 1.1;
/// its second document (an e-resept `Resept`) is not read. Checked explicitly below.
const EXPECTED_UNKNOWN: &[&str] = &[];

#[test]
fn every_example_is_read_detected_and_decoded() {
    let Some(std_dir) = standards() else { return };
    let kith = std_dir.join("kith");
    let files = example_files(&kith);
    assert!(
        files.len() > 200,
        "only {} example files found",
        files.len()
    );
    let (mut unreadable, mut unknown, mut panics) = (Vec::new(), Vec::new(), Vec::new());
    let mut decoded = 0;
    for f in &files {
        let bytes = std::fs::read(kith.join(f)).unwrap();
        let doc = match scan(&bytes, &Limits::default()) {
            Ok(d) => d,
            Err(_) => {
                unreadable.push(f.as_str());
                continue;
            }
        };
        match detect(&doc.root) {
            Detection::Known(d) => match catch_unwind(AssertUnwindSafe(|| decode(&d))) {
                Ok(r) => {
                    decoded += 1;
                    assert_eq!(r.message.header.format, d.format, "{f}");
                    for x in &r.findings {
                        assert!(
                            x.severity != Severity::Error,
                            "{f}: decode produced an error finding {x:?}"
                        );
                        assert!(x.code.starts_with("decode."), "{f}: {x:?}");
                    }
                }
                Err(_) => panics.push(f.as_str()),
            },
            Detection::Unknown { .. } | Detection::EmptyEnvelope => unknown.push(f.as_str()),
        }
    }
    assert!(panics.is_empty(), "decode panicked on {panics:#?}");
    assert_eq!(unreadable, NOT_WELL_FORMED, "unreadable examples");
    assert_eq!(unknown, EXPECTED_UNKNOWN, "examples not recognised");
    assert_eq!(decoded, files.len() - NOT_WELL_FORMED.len());
}

// ------------------------------------------------------------------------- spot checks

/// What one example is expected to decode to; `None` fields are not checked.
#[derive(Default)]
struct Expect {
    format: Option<Format>,
    inner: Option<Format>,
    fellesformat: bool,
    msg_type: Option<&'static str>,
    msg_id: Option<&'static str>,
    /// HER-id of the top-level sender organisation.
    sender_her: Option<&'static str>,
    /// Most specific HER-id on the sender chain (person, unit, organisation).
    sender_leaf: Option<&'static str>,
    receiver_her: Option<&'static str>,
    receiver_leaf: Option<&'static str>,
    /// Kind of the patient's first identifier.
    patient_kind: Option<&'static str>,
    /// Referral hastegrad.
    priority: Option<&'static str>,
    /// First diagnosis code (referral / epicrisis).
    diagnosis: Option<&'static str>,
    /// `referral`, `epicrisis`, `dialog`, `plo`, `receipt`, `opaque`.
    body: Option<&'static str>,
}

fn her(o: Option<&Organisation>) -> Option<&str> {
    o.and_then(Organisation::her_id)
}
fn leaf(o: Option<&Organisation>) -> Option<&str> {
    o.and_then(Organisation::leaf_her_id)
}

/// Read, detect and decode one example (path relative to the kith folder) and compare.
fn check(file: &str, e: Expect) -> Option<Decoded> {
    let std_dir = standards()?;
    let bytes =
        std::fs::read(std_dir.join("kith").join(file)).unwrap_or_else(|x| panic!("{file}: {x}"));
    let doc =
        scan(&bytes, &Limits::default()).unwrap_or_else(|x| panic!("{file}: {:?}", x.finding));
    let Detection::Known(d) = detect(&doc.root) else {
        panic!("{file}: not detected")
    };
    if let Some(f) = e.format {
        assert_eq!(d.format, f, "{file}: format");
    }
    assert_eq!(d.inner, e.inner, "{file}: inner format");
    assert_eq!(d.fellesformat, e.fellesformat, "{file}: fellesformat");
    let r = decode(&d);
    let h = &r.message.header;
    if let Some(t) = e.msg_type {
        assert_eq!(h.msg_type, t, "{file}: msg_type");
    }
    if let Some(id) = e.msg_id {
        assert_eq!(h.msg_id.as_deref(), Some(id), "{file}: msg_id");
    }
    assert_eq!(
        h.fellesformat, e.fellesformat,
        "{file}: header.fellesformat"
    );
    if e.sender_her.is_some() {
        assert_eq!(her(h.sender.as_ref()), e.sender_her, "{file}: sender HER");
    }
    if e.sender_leaf.is_some() {
        assert_eq!(
            leaf(h.sender.as_ref()),
            e.sender_leaf,
            "{file}: sender leaf HER"
        );
    }
    if e.receiver_her.is_some() {
        assert_eq!(
            her(h.receiver.as_ref()),
            e.receiver_her,
            "{file}: receiver HER"
        );
    }
    if e.receiver_leaf.is_some() {
        assert_eq!(
            leaf(h.receiver.as_ref()),
            e.receiver_leaf,
            "{file}: receiver leaf HER"
        );
    }
    if e.patient_kind.is_some() {
        let k = r
            .message
            .patient()
            .and_then(|p| p.idents.first())
            .map(|i| i.kind.as_str());
        assert_eq!(k, e.patient_kind, "{file}: patient ident kind");
    }
    let (priority, diagnosis) = match &r.message.body {
        Body::Referral(x) => (
            x.priority.as_ref().map(|p| p.code.as_str()),
            x.diagnoses.first(),
        ),
        Body::Epicrisis(x) => (None, x.diagnoses.first()),
        _ => (None, None),
    };
    if e.priority.is_some() {
        assert_eq!(priority, e.priority, "{file}: priority");
    }
    if e.diagnosis.is_some() {
        assert_eq!(
            diagnosis.map(|d| d.code.code.as_str()),
            e.diagnosis,
            "{file}: diagnosis"
        );
    }
    if let Some(b) = e.body {
        let kind = match &r.message.body {
            Body::Referral(_) => "referral",
            Body::Epicrisis(_) => "epicrisis",
            Body::Dialog(_) => "dialog",
            Body::Plo(_) => "plo",
            Body::CareEvent(_) => "care-event",
            Body::Receipt(_) => "receipt",
            Body::Opaque => "opaque",
        };
        assert_eq!(kind, b, "{file}: body kind");
    }
    Some(r)
}

#[test]
fn henvisning_10_acceptance_case() {
    let Some(r) = check(
        "henvisning/examples/sarepta-akseptansetest/TestcaseHenvisningMottak/Case1.xml",
        Expect {
            format: Some(Format::Henvisning10),
            msg_type: Some("HENVISNING"),
            msg_id: Some("cef6ac80-5f27-11df-a08a-0800200c9a66"),
            sender_her: Some("56704"),
            receiver_her: None,
            patient_kind: Some("FNR"),
            diagnosis: Some("L88"),
            body: Some("referral"),
            ..Expect::default()
        },
    ) else {
        return;
    };
    let h = &r.message.header;
    // Receiver = ServProvider: an ENH-identified hospital with a LAV-identified department.
    let rec = h.receiver.as_ref().unwrap();
    assert_eq!(rec.org_number(), Some("974744570"));
    assert_eq!(rec.unit.as_ref().unwrap().idents[0].kind, "LAV");
    // Requester's person carries an HPR number.
    assert_eq!(
        h.sender
            .as_ref()
            .unwrap()
            .professional
            .as_ref()
            .unwrap()
            .hpr(),
        Some("9144889")
    );
    let Body::Referral(x) = &r.message.body else {
        unreachable!()
    };
    assert_eq!(x.id.as_deref(), Some("Henvisningsid-1"));
    assert_eq!(x.service_type, Some(ServiceType::New));
    assert_eq!(
        x.priority, None,
        "1.0 ReqServ/Priority is optional and absent here"
    );
    let p = x.patient.as_ref().unwrap();
    assert_eq!(
        (p.family_name.as_deref(), p.given_name.as_deref()),
        (Some("Telokk"), Some("Gry"))
    );
    assert_eq!(p.birth_date.as_deref(), Some("1979-05-12"));
    assert!(x
        .texts
        .iter()
        .any(|t| t.heading.as_ref().is_some_and(|c| c.code == "FA")));
    assert!(x
        .texts
        .iter()
        .any(|t| t.heading.as_ref().is_some_and(|c| c.code == "ANAM")));
    assert_eq!(x.medications.len(), 1);
    assert_eq!(x.medications[0].drug.as_ref().unwrap().code, "H02A B06");
}

#[test]
fn henvisning_11_sarepta() {
    let Some(r) = check(
        "henvisning/examples/sarepta/Henvisning_v1-1/henvisning_v1.1_n.xml",
        Expect {
            format: Some(Format::Henvisning11),
            msg_type: Some("HENVISNING"),
            msg_id: Some("02a51109-7416-4822-9742-bcd6fdfd036f"),
            sender_her: Some("56704"),
            sender_leaf: Some("258521"),
            receiver_her: Some("59"),
            receiver_leaf: Some("90998"),
            patient_kind: Some("FNR"),
            priority: Some("3"),
            diagnosis: Some("L88"),
            body: Some("referral"),
            ..Expect::default()
        },
    ) else {
        return;
    };
    let Body::Referral(x) = &r.message.body else {
        unreachable!()
    };
    assert_eq!(
        x.id.as_deref(),
        Some("d57160a8-7697-4724-b0e2-7807037fea47")
    );
    assert_eq!(x.description.as_ref().unwrap().code, "10");
    assert!(!x.is_emergency());
    assert_eq!(
        x.texts
            .iter()
            .filter(|t| t.heading.as_ref().is_some_and(|c| c.code == "MEDB"))
            .count(),
        2
    );
}

#[test]
fn henvisning_20_sarepta() {
    let Some(r) = check(
        "henvisning/examples/sarepta/Henvisning_v2-0/Henvisning_ny_tilstand_v2-0_Ny.xml",
        Expect {
            format: Some(Format::MsgHead12),
            inner: Some(Format::Henvisning20),
            msg_type: Some("HENVISNING_NYTILSTAND"),
            msg_id: Some("76665c90-3198-11e8-b566-0800200c9a66"),
            sender_her: Some("91096"),
            sender_leaf: Some("91100"),
            receiver_her: Some("59"),
            receiver_leaf: Some("90998"),
            patient_kind: Some("FNR"),
            priority: Some("N"),
            diagnosis: Some("L88"),
            body: Some("referral"),
            ..Expect::default()
        },
    ) else {
        return;
    };
    let Body::Referral(x) = &r.message.body else {
        unreachable!()
    };
    // FACTS §6: the referral id of a Henvisning 2.0 is the MsgHead MsgId.
    assert_eq!(
        x.id.as_deref(),
        Some("76665c90-3198-11e8-b566-0800200c9a66")
    );
    assert_eq!(x.issue_date.as_deref(), Some("2018-03-30T09:15:00"));
    assert_eq!(x.description.as_ref().unwrap().code, "10");
    assert_eq!(
        x.requester.as_ref().and_then(Organisation::her_id),
        Some("91096")
    );
    assert!(x
        .texts
        .iter()
        .any(|t| t.heading.as_ref().is_some_and(|c| c.code == "PROB")));
    let p = r.message.header.patient.as_ref().unwrap();
    assert_eq!(p.birth_date.as_deref(), Some("1969-11-13"));
    assert_eq!(
        p.telecom.first().map(|t| t.value.as_str()),
        Some("tel:90094004")
    );
}

#[test]
fn epikrise_11_acceptance_case() {
    let Some(r) = check(
        "epikrise/examples/sarepta-akseptansetest/Case-mottak-epikrise1_1/Epikrise1-1-case 1.xml",
        Expect {
            format: Some(Format::Epikrise11),
            msg_type: Some("EPIKRISE"),
            msg_id: Some("25904950-a0fd-11dd-ad8b-0800200c9a66"),
            // Sender = ServProvider (ENH institution; HER only as the person's AdditionalId).
            sender_leaf: Some("258.521"),
            // Receiver = Requester.
            receiver_leaf: Some("369.767"),
            patient_kind: Some("FNR"),
            diagnosis: Some("I330"),
            body: Some("epicrisis"),
            ..Expect::default()
        },
    ) else {
        return;
    };
    let h = &r.message.header;
    assert_eq!(h.sender.as_ref().unwrap().org_number(), Some("883974832"));
    assert_eq!(h.receiver.as_ref().unwrap().org_number(), Some("971318864"));
    assert_eq!(h.copy_receivers.len(), 1);
    let Body::Epicrisis(x) = &r.message.body else {
        unreachable!()
    };
    assert_eq!(x.id.as_deref(), Some("SSMED2002012345"));
    assert_eq!(x.referral_id.as_deref(), Some("FY020725A"));
    assert_eq!(x.status.as_deref(), Some("F"));
    assert_eq!(
        x.diagnoses
            .iter()
            .map(|d| d.code.code.as_str())
            .collect::<Vec<_>>(),
        ["I330", "E119", "I252"]
    );
    assert_eq!(x.admitted.as_deref(), Some("2007-05-01"));
    assert_eq!(x.discharged.as_deref(), Some("2007-05-18"));
    assert_eq!(x.medications.len(), 5);
    assert!(x
        .texts
        .iter()
        .any(|t| t.heading.as_ref().is_some_and(|c| c.code == "FO")));
}

#[test]
fn epikrise_12_sarepta() {
    let Some(r) = check(
        "epikrise/examples/sarepta/Epikrise_v1-2/epikrise_v1.2_n.xml",
        Expect {
            format: Some(Format::Epikrise12),
            msg_type: Some("EPIKRISE"),
            msg_id: Some("f022ccd0-4567-11e7-9598-0800200c9a66"),
            sender_her: Some("91393"),
            sender_leaf: Some("94866"),
            receiver_her: Some("91393"),
            receiver_leaf: Some("91439"),
            patient_kind: Some("FNR"),
            diagnosis: Some("I330"),
            body: Some("epicrisis"),
            ..Expect::default()
        },
    ) else {
        return;
    };
    let Body::Epicrisis(x) = &r.message.body else {
        unreachable!()
    };
    assert_eq!(
        x.id.as_deref(),
        Some("b9270660-4567-11e7-9598-0800200c9a66")
    );
    assert_eq!(
        x.referral_id.as_deref(),
        Some("fdebda50-4567-11e7-9598-0800200c9a66")
    );
    assert_eq!(
        r.message.header.copy_receivers[0].party.leaf_her_id(),
        Some("95136")
    );
    // XHTML text is flattened; the lab table keeps one line per row.
    let funn = x
        .texts
        .iter()
        .find(|t| t.heading.as_ref().is_some_and(|c| c.code == "FUNN"))
        .unwrap();
    assert!(funn.text.lines().any(|l| l.starts_with("CRP")));
}

#[test]
fn dialogmelding_10_sarepta() {
    let Some(r) = check(
        "dialogmelding/examples/sarepta/Dialogmelding-v1-0/Dialogmelding_svar_foresporsel_PLO_v1-0.xml",
        Expect {
            format: Some(Format::MsgHead12),
            inner: Some(Format::Dialogmelding10),
            msg_type: Some("DIALOG_SVAR"),
            msg_id: Some("42001f60-0117-11e8-8f1a-0800200c9a66"),
            sender_her: Some("91096"),
            sender_leaf: Some("91101"),
            receiver_her: Some("99387"),
            receiver_leaf: Some("5078"),
            patient_kind: Some("FNR"),
            body: Some("dialog"),
            ..Expect::default()
        },
    ) else {
        return;
    };
    let Body::Dialog(x) = &r.message.body else {
        unreachable!()
    };
    assert_eq!(x.topic.as_ref().unwrap().code, "5");
    assert_eq!(
        x.responsible.as_ref().and_then(|p| p.hpr()),
        Some("9144900")
    );
    assert!(!x.texts.is_empty());
}

#[test]
fn dialogmelding_11_sarepta() {
    let Some(r) = check(
        "dialogmelding/examples/sarepta/Dialogmelding-v1-1/Helsefaglig dialog.xml",
        Expect {
            format: Some(Format::MsgHead12),
            inner: Some(Format::Dialogmelding11),
            msg_type: Some("DIALOG_HELSEFAGLIG"),
            msg_id: Some("de1a95c0-4d0c-11e7-9598-0800200c9a66"),
            sender_her: Some("56704"),
            sender_leaf: Some("258521"),
            receiver_her: Some("59"),
            receiver_leaf: Some("90998"),
            patient_kind: Some("FNR"),
            body: Some("dialog"),
            ..Expect::default()
        },
    ) else {
        return;
    };
    let h = &r.message.header;
    let c = h.conversation.as_ref().unwrap();
    assert_eq!(
        c.ref_to_parent.as_deref(),
        Some("d14ea2f3-d796-4d7b-8271-a4480d2b4035")
    );
    assert_eq!(
        c.ref_to_conversation.as_deref(),
        Some("d14ea2f3-d796-4d7b-8271-a4480d2b4035")
    );
    let prof = h.sender.as_ref().unwrap().professional.as_ref().unwrap();
    assert_eq!(prof.role_to_patient.as_ref().unwrap().code, "6");
    let Body::Dialog(x) = &r.message.body else {
        unreachable!()
    };
    assert_eq!(x.topic.as_ref().unwrap().code, "6");
    assert_eq!(x.topic_text.as_deref(), Some("EKG tatt i dag"));
    assert_eq!(x.responsible.as_ref().and_then(|p| p.hpr()), Some("258521"));
}

#[test]
fn padm2_fellesformat_notat() {
    let Some(r) = check(
        "dialogmelding/examples/padm2-fellesformat/dialogmelding_dialog_notat.xml",
        Expect {
            format: Some(Format::MsgHead12),
            inner: Some(Format::Dialogmelding10),
            fellesformat: true,
            msg_type: Some("DIALOG_NOTAT"),
            msg_id: Some("37340D30-FE14-42B5-985F-A8FF8FFA0CB5"),
            sender_her: Some("0123"),
            sender_leaf: Some("1234"),
            receiver_her: Some("79768"),
            patient_kind: Some("FNR"),
            body: Some("dialog"),
            ..Expect::default()
        },
    ) else {
        return;
    };
    let h = &r.message.header;
    // RefToConversation comes first in NAV's files; both are still read.
    let c = h.conversation.as_ref().unwrap();
    assert_eq!(
        c.ref_to_conversation.as_deref(),
        Some("37340D30-FE14-42B5-985F-A8FF8FFA0C99")
    );
    assert_eq!(
        c.ref_to_parent.as_deref(),
        Some("37340D30-FE14-42B5-985F-A8FF8FFA0CB5")
    );
    assert_eq!(h.ack.as_deref(), Some("J"));
    assert_eq!(h.sender.as_ref().unwrap().org_number(), Some("223456789"));
    // "1991-12-4" is read as 1991-12-04 and noted.
    let p = h.patient.as_ref().unwrap();
    assert_eq!(p.birth_date.as_deref(), Some("1991-12-04"));
    assert_eq!(
        p.address.as_ref().unwrap().municipality.as_deref(),
        Some("0712")
    );
    let codes: Vec<&str> = r.findings.iter().map(|f| f.code.as_str()).collect();
    assert!(codes.contains(&"decode.date-normalised"), "{codes:?}");
    assert!(
        codes.contains(&"decode.conversation-ref-order"),
        "{codes:?}"
    );
    assert!(r.findings.iter().all(|f| !f.message.contains("1991")));
    let Body::Dialog(x) = &r.message.body else {
        unreachable!()
    };
    assert_eq!(
        x.document_id.as_deref(),
        Some("A1578B81-0042-453B-8527-6CF182BDA6C7")
    );
    assert_eq!(x.topic.as_ref().unwrap().code, "1");
}

#[test]
fn plo_15_and_16() {
    if let Some(r) = check(
        "plo/examples/sarepta/plo-1_5/Innleggelsesrapport-v1_5/Innleggelsesrapport_v1-5_Ny.xml",
        Expect {
            format: Some(Format::MsgHead12),
            inner: Some(Format::Plo15),
            msg_type: Some("INNLEGGELSESRAPPORT"),
            msg_id: Some("72dc9650-0666-11e8-b566-0800200c9a66"),
            sender_her: Some("99387"),
            sender_leaf: Some("5078"),
            receiver_her: Some("59"),
            receiver_leaf: Some("91090"),
            patient_kind: Some("FNR"),
            body: Some("plo"),
            ..Expect::default()
        },
    ) {
        let Body::Plo(x) = &r.message.body else {
            unreachable!()
        };
        assert_eq!(x.document, "Innleggelsesrapport");
        assert!(x
            .texts
            .iter()
            .any(|t| t.heading.as_ref().is_some_and(|c| c.code == "AAI")));
    }
    if let Some(r) = check(
        "plo/examples/sarepta/plo-1_6/pasientlogistikk_1_6_mottak/Pasientlogistikk_Utskrivningsklar_pasient_v1-6_Ny.xml",
        Expect {
            format: Some(Format::MsgHead12),
            inner: Some(Format::Plo16),
            msg_type: Some("LOG_UTSKRIVNINGSKLAR"),
            msg_id: Some("79c55ed0-0692-11e8-b566-0800200c9a66"),
            sender_her: Some("59"),
            sender_leaf: Some("90998"),
            receiver_her: Some("99387"),
            receiver_leaf: Some("5078"),
            patient_kind: Some("FNR"),
            body: Some("plo"),
            ..Expect::default()
        },
    ) {
        let Body::Plo(x) = &r.message.body else { unreachable!() };
        assert_eq!(x.document, "Pasientlogistikk");
    }
}

#[test]
fn apprec_10_and_11() {
    if let Some(r) = check(
        "apprec/examples/fiks-nhn-client/1.0/example-avvist.xml",
        Expect {
            format: Some(Format::AppRec10),
            msg_type: Some("APPREC"),
            msg_id: Some("8d018d60-336b-11de-8bd7-0002a5d5c51b"),
            // TypeId V=" HER" (leading space) still counts as HER.
            sender_her: Some("56704"),
            sender_leaf: Some("258521"),
            receiver_her: Some("123459"),
            receiver_leaf: Some("91126"),
            body: Some("receipt"),
            ..Expect::default()
        },
    ) {
        let Body::Receipt(x) = &r.message.body else {
            unreachable!()
        };
        assert_eq!(x.status, kadgate::model::ReceiptStatus::Rejected);
        assert_eq!(x.errors.len(), 1);
        assert_eq!(x.errors[0].code, "E21");
        assert_eq!(
            x.original_msg_id.as_deref(),
            Some("a6967e6a-8c0a-4be4-a647-c921d3086423")
        );
        assert_eq!(x.original_msg_type.as_deref(), Some("EPIKRISE"));
        assert_eq!(
            x.original_issue_date.as_deref(),
            Some("2020-06-19T17:02:15")
        );
    }
    if let Some(r) = check(
        "apprec/examples/fiks-nhn-client/1.1/all-data.xml",
        Expect {
            format: Some(Format::AppRec11),
            msg_type: Some("APPREC"),
            msg_id: Some("f6d24037-a43f-4509-8dfa-88b578554858"),
            sender_her: Some("8142987"),
            sender_leaf: Some("123456"),
            receiver_her: Some("998877"),
            receiver_leaf: Some("9512"),
            body: Some("receipt"),
            ..Expect::default()
        },
    ) {
        let h = &r.message.header;
        assert_eq!(
            h.sender.as_ref().unwrap().unit.as_ref().unwrap().her_id(),
            Some("8143060")
        );
        let Body::Receipt(x) = &r.message.body else {
            unreachable!()
        };
        assert_eq!(x.status, kadgate::model::ReceiptStatus::Ok);
        assert_eq!(x.original_msg_type.as_deref(), Some("DIALOG_HELSEFAGLIG"));
    }
    // NAV fellesformat AppRec: HER-ids only as AdditionalId.
    if let Some(r) = check(
        "apprec/examples/isdialogmelding-fellesformat/apprecOK.xml",
        Expect {
            format: Some(Format::AppRec10),
            fellesformat: true,
            msg_type: Some("APPREC"),
            sender_her: Some("79768"),
            receiver_her: Some("0123"),
            receiver_leaf: Some("1234"),
            body: Some("receipt"),
            ..Expect::default()
        },
    ) {
        assert_eq!(
            r.message.header.sender.as_ref().unwrap().org_number(),
            Some("889640782")
        );
    }
    // An 8258 status kadgate does not know is noted (and read as rejected).
    if let Some(r) = check(
        "apprec/examples/fiks-nhn-client/1.1/unknown-status.xml",
        Expect {
            format: Some(Format::AppRec11),
            body: Some("receipt"),
            ..Expect::default()
        },
    ) {
        assert!(r
            .findings
            .iter()
            .any(|f| f.code == "decode.apprec-status-unknown"));
    }
}

#[test]
fn eresept_sample_and_msghead_without_document() {
    check(
        "dialogmelding/examples/helsenorge-messaging/DIALOG_INNBYGGER_RESEPTFORNYELSE.xml",
        Expect {
            format: Some(Format::MsgHead12),
            inner: Some(Format::Dialogmelding11),
            msg_type: Some("DIALOG_INNBYGGER_RESEPTFORNYELSE"),
            sender_her: Some("115851"),
            sender_leaf: Some("8141333"),
            receiver_leaf: Some("8093244"),
            patient_kind: Some("FNR"),
            body: Some("dialog"),
            ..Expect::default()
        },
    );
    if let Some(r) = check(
        "dialogmelding/examples/fiks-nhn-client/invalid-version.xml",
        Expect {
            format: Some(Format::MsgHead12),
            inner: None,
            body: Some("opaque"),
            ..Expect::default()
        },
    ) {
        assert!(r
            .findings
            .iter()
            .any(|f| f.code == "decode.inner-document-missing"));
    }
}

// ------------------------------------------------------------------------- salvage

#[test]
fn salvage_header_on_not_well_formed_acceptance_files() {
    let Some(std_dir) = standards() else { return };
    // All four break inside MsgInfo/Sender (a missing </Organisation>); the sender's identifiers
    // are read before the break, so each yields a sender.
    let expect: &[(&str, Option<&str>, Option<&str>)] = &[
        // (file, sender HER (top), sender ENH)
        (NOT_WELL_FORMED[0], Some("99387"), Some("333555666")),
        (NOT_WELL_FORMED[1], Some("3469.67926"), Some("883974832")),
        (NOT_WELL_FORMED[2], Some("56704"), Some("971318864")),
        (NOT_WELL_FORMED[3], None, Some("883974832")),
    ];
    for (f, her_top, enh) in expect {
        let bytes = std::fs::read(std_dir.join("kith").join(f)).unwrap();
        let err = scan(&bytes, &Limits::default()).expect_err(f);
        let partial = err
            .partial
            .unwrap_or_else(|| panic!("{f}: no partial tree"));
        let h = salvage_header(&partial).unwrap_or_else(|| panic!("{f}: no sender salvaged"));
        let s = h.sender.as_ref().unwrap();
        assert!(s.is_identifiable(), "{f}");
        if her_top.is_some() {
            assert_eq!(s.her_id(), *her_top, "{f}");
        }
        if enh.is_some() {
            assert_eq!(s.org_number(), *enh, "{f}");
        }
        assert_eq!(h.format, Format::MsgHead12, "{f}");
        assert!(h.msg_id.is_some(), "{f}: msg id");
        assert!(!h.msg_type.is_empty(), "{f}: msg type");
        assert!(
            h.patient.is_none(),
            "{f}: salvage never carries the patient"
        );
    }
}

#[test]
fn salvage_header_per_kind_and_without_sender() {
    let Some(std_dir) = standards() else { return };
    let kith = std_dir.join("kith");
    // Cut well-formed examples of every root kind short and salvage from the partial tree.
    let cases: &[(&str, &str, &str)] = &[
        (
            "henvisning/examples/sarepta/Henvisning_v1-1/henvisning_v1.1_n.xml",
            "<ReasonAsText>",
            "56704",
        ),
        (
            "epikrise/examples/sarepta/Epikrise_v1-2/epikrise_v1.2_n.xml",
            "<CopyDest>",
            "91393",
        ),
        (
            "apprec/examples/fiks-nhn-client/1.1/all-data.xml",
            "<Receiver>",
            "8142987",
        ),
        (
            "henvisning/examples/sarepta/Henvisning_v2-0/Henvisning_ny_tilstand_v2-0_Ny.xml",
            "<Receiver>",
            "91096",
        ),
    ];
    for (f, cut, sender_her) in cases {
        let text = String::from_utf8(std::fs::read(kith.join(f)).unwrap()).unwrap();
        let at = text
            .find(cut)
            .unwrap_or_else(|| panic!("{f}: {cut} not found"));
        let err = scan(&text.as_bytes()[..at], &Limits::default()).expect_err(f);
        let h = salvage_header(&err.partial.unwrap())
            .unwrap_or_else(|| panic!("{f}: nothing salvaged"));
        assert_eq!(
            h.sender.as_ref().and_then(Organisation::her_id),
            Some(*sender_her),
            "{f}"
        );
    }
    // Cut before the sender: nothing to address a T01 to.
    let text = String::from_utf8(std::fs::read(kith.join(cases[3].0)).unwrap()).unwrap();
    let at = text.find("<Sender>").unwrap();
    let err = scan(&text.as_bytes()[..at], &Limits::default()).expect_err("cut");
    assert!(salvage_header(&err.partial.unwrap()).is_none());
}

#[test]
fn truncated_examples_never_panic() {
    let Some(std_dir) = standards() else { return };
    let kith = std_dir.join("kith");
    let files = [
        "henvisning/examples/sarepta/Henvisning_v1-1/henvisning_v1.1_n.xml",
        "epikrise/examples/sarepta/Epikrise_v1-2/epikrise_v1.2_n.xml",
        "dialogmelding/examples/padm2-fellesformat/dialogmelding_dialog_notat.xml",
        "apprec/examples/isdialogmelding-fellesformat/apprecOK.xml",
        "plo/examples/sarepta/plo-1_5/Innleggelsesrapport-v1_5/Innleggelsesrapport_v1-5_Ny.xml",
    ];
    for f in files {
        let bytes = std::fs::read(kith.join(f)).unwrap();
        for cut in (40..bytes.len()).step_by(97) {
            let Err(err) = scan(&bytes[..cut], &Limits::default()) else {
                continue;
            };
            let Some(partial) = err.partial else { continue };
            let _ = salvage_header(&partial);
            // The partial tree decodes too (whatever is there).
            if let Detection::Known(d) = detect(&partial) {
                let _ = decode(&d);
            }
        }
    }
}
