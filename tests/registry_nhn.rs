//! NHN's GP register and address register: the client against a loopback stand-in that serves
//! NHN's own example answers (`kith/registry/examples/fiks-nhn-client`) — a GP found, not found,
//! an invalid identity number, every kind of communication party, not found; the register
//! answering 503, slowly, or down; `NhnDirectory` over a local directory file (endpoints, the
//! fallback for parties NHN does not know); `Cached` over it (time-to-live, the last good answer
//! when the register is down, an error when there is none); no identity number in any error; and
//! `open_directory` from the configuration.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use common::nhn_mock::{self, Mode, NhnMock, Reply, Table};
use kadgate::clock::ManualClock;
use kadgate::config::{Config, RegistryKind};
use kadgate::ident::{complete_person_number, parse_person_number};
use kadgate::model::Format;
use kadgate::registry::{
    open_directory, Cached, Directory, Endpoint, FileDirectory, GpAssignment, NhnClient,
    NhnDirectory, NhnSettings, OpenError, PartyKind, RegistryError, EDI_FORMATS,
};

/// NHN's own example identity number: used only where its example answer is served as it is.
const NHN_EXAMPLE_NIN: &str = "12345678999";
/// The GP the example answer names.
const EXAMPLE_GP: &str = "4657988";

/// A synthetic identity number with valid check digits, from its first nine digits.
fn nin(first9: &str) -> String {
    let n = complete_person_number(first9).expect("check digits exist for these nine digits");
    assert!(parse_person_number(&n).is_ok(), "a valid person number");
    n
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("a date")
}

/// The GP the directory names today for NHN's example number.
async fn example_gp(d: &dyn Directory) -> Option<GpAssignment> {
    d.gp_for_patient(NHN_EXAMPLE_NIN, today())
        .await
        .expect("an answer")
}

fn settings(mock: &NhnMock) -> NhnSettings {
    NhnSettings {
        gp_register_url: mock.gp_url(),
        address_register_url: mock.address_url(),
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
    }
}

fn client(mock: &NhnMock) -> NhnClient {
    NhnClient::new(settings(mock)).expect("a client")
}

/// The local directory: endpoints for a GP office NHN knows (Tysnes, the example GP's office),
/// for an organisation NHN knows (with its own kind and formats), and a legevakt NHN does not know.
const LOCAL: &str = r#"
title = "NHN test directory (synthetic endpoints)"

[[parties]]
her_id = "84556"
kind = "gp-office"
name = "Tysnes legekontor (local name)"
formats = ["dialogmelding11", "epikrise12"]
endpoint = { folder = "outbox/tysnes" }

[[parties]]
her_id = "8142987"
kind = "intake"
name = "KS (local name)"
formats = ["dialogmelding11"]
endpoint = { url = "https://ks.example/in" }

[[parties]]
her_id = "990020"
kind = "legevakt"
name = "Testbyen interkommunale legevakt"
municipality = "0301"
formats = ["fhir-r4"]
endpoint = { folder = "outbox/legevakt" }

[postcodes]
"0661" = "0301"
"#;

fn local() -> FileDirectory {
    FileDirectory::parse(LOCAL, "test directory").unwrap_or_else(|e| panic!("{e}"))
}

fn folder(dir: &str) -> Option<Endpoint> {
    Some(Endpoint::Folder {
        dir: PathBuf::from(dir),
    })
}

/// The person example re-keyed to the HER-id the GP register's example names, so the two examples
/// make one answer chain.
fn example_gp_details() -> Reply {
    let text = nhn_mock::fixture(nhn_mock::PARTY_PERSON);
    assert_eq!(text.matches("<HerId>115522</HerId>").count(), 1);
    Reply::Body(text.replace(
        "<HerId>115522</HerId>",
        &format!("<HerId>{EXAMPLE_GP}</HerId>"),
    ))
}

/// NHN's examples under their own keys.
fn examples() -> Table {
    Table::default()
        .gp(NHN_EXAMPLE_NIN, Reply::Fixture(nhn_mock::GP_FOUND))
        .party("8094866", Reply::Fixture(nhn_mock::PARTY_SERVICE))
        .party("8142987", Reply::Fixture(nhn_mock::PARTY_ORGANIZATION))
        .party("115522", Reply::Fixture(nhn_mock::PARTY_PERSON))
        .party("12345", Reply::Fixture(nhn_mock::PARTY_NO_PARENT))
        .party("55555", Reply::Fixture(nhn_mock::PARTY_WITH_PARENT))
        .party(EXAMPLE_GP, example_gp_details())
}

// ---------------------------------------------------------------------------------------------
// The GP register.

#[tokio::test]
async fn the_gp_register_names_the_patients_gp() {
    let mock = NhnMock::start(examples()).await;
    let found = client(&mock)
        .patient_gp(NHN_EXAMPLE_NIN)
        .await
        .expect("an answer")
        .expect("a GP");
    assert_eq!(found.gp_her_id, EXAMPLE_GP);
    assert_eq!(
        (found.from, found.to),
        (None, None),
        "the example has no period"
    );
    assert_eq!((mock.gp_requests(), mock.malformed()), (1, 0));
}

#[tokio::test]
async fn a_patient_without_a_gp_is_none() {
    let listed_nowhere = nin("010185401");
    let mock =
        NhnMock::start(examples().gp(&listed_nowhere, Reply::Fixture(nhn_mock::GP_NOT_FOUND)))
            .await;
    let c = client(&mock);
    assert_eq!(c.patient_gp(&listed_nowhere).await, Ok(None));
    // Not in the mock's table either: the not-found fault, the same answer.
    assert_eq!(c.patient_gp(&nin("150372450")).await, Ok(None));
    assert_eq!((mock.gp_requests(), mock.malformed()), (2, 0));
}

#[tokio::test]
async fn an_identity_number_the_register_calls_invalid_is_its_own_error() {
    let refused = nin("231190410");
    let mock =
        NhnMock::start(examples().gp(&refused, Reply::Fixture(nhn_mock::GP_INVALID_NIN))).await;
    let c = client(&mock);
    let e = c.patient_gp(&refused).await.expect_err("refused");
    assert!(
        matches!(&e, RegistryError::Rejected { reason, .. } if reason.contains("not valid")),
        "{e:?}"
    );
    // Not 11 digits: refused the same way, without asking.
    for bad in ["1234567890", "123456789012", "1234567890a", ""] {
        let e = c.patient_gp(bad).await.expect_err("refused");
        assert!(matches!(e, RegistryError::Rejected { .. }), "{e:?}");
    }
    assert_eq!(mock.requests(), 1);
}

#[tokio::test]
async fn an_answer_about_another_patient_is_not_taken() {
    let asked = nin("050680420");
    // The example answer is about NHN's example number, not the one asked.
    let mock = NhnMock::start(examples().gp(&asked, Reply::Fixture(nhn_mock::GP_FOUND))).await;
    let e = client(&mock).patient_gp(&asked).await.expect_err("refused");
    assert!(
        matches!(&e, RegistryError::BadAnswer { reason, .. } if reason.contains("another patient")),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The address register.

#[tokio::test]
async fn every_kind_of_communication_party_is_read() {
    let mock = NhnMock::start(examples()).await;
    let c = client(&mock);
    let details = |her: &'static str| {
        let c = c.clone();
        async move {
            c.party_details(her)
                .await
                .unwrap_or_else(|e| panic!("{her}: {e}"))
                .unwrap_or_else(|| panic!("{her}: found"))
        }
    };
    let fhir_and_edi: Vec<Format> = std::iter::once(Format::FhirR4).chain(EDI_FORMATS).collect();

    // A service under NHN: parent as the organisation, E_FHIR and E_EDI, Trondheim.
    let d = details("8094866").await;
    let s = &d.party;
    assert_eq!(
        (s.her_id.as_str(), s.name.as_str()),
        ("8094866", "Meldingsvalidering")
    );
    assert_eq!(
        s.kind,
        PartyKind::GpOffice,
        "service code 6 (8658): the default"
    );
    assert_eq!(s.org_her_id.as_deref(), Some("112374"));
    assert_eq!(s.org_name.as_deref(), Some("Norsk Helsenett SF"));
    assert_eq!(s.org_enh.as_deref(), Some("994598759"));
    assert_eq!(s.municipality.as_deref(), Some("5001"));
    assert_eq!(s.formats, fhir_and_edi);
    assert_eq!((s.hpr.as_deref(), s.endpoint.as_ref()), (None, None));
    let o = s.organisation();
    assert_eq!(o.her_id(), Some("112374"));
    assert_eq!(o.leaf_her_id(), Some("8094866"));

    // A top-level organisation: its own organisation number, E_EDI only.
    let d = details("8142987").await;
    let o = &d.party;
    assert_eq!(o.name, "KS-DIGITALE FELLESTJENESTER AS");
    assert_eq!(o.kind, PartyKind::GpOffice);
    assert_eq!(
        (o.org_her_id.as_deref(), o.org_name.as_deref()),
        (None, None)
    );
    assert_eq!(o.org_enh.as_deref(), Some("931796003"));
    assert_eq!(o.municipality.as_deref(), Some("0301"));
    assert_eq!(o.formats, EDI_FORMATS.to_vec());
    assert!(d.organisations.is_empty());

    // A person: a GP with an HPR number, under the organisation the answer also carries.
    let d = details("115522").await;
    let p = &d.party;
    assert_eq!(
        (p.name.as_str(), p.kind),
        ("Anne-Marie Bach", PartyKind::Gp)
    );
    assert_eq!(p.hpr.as_deref(), Some("7480342"));
    assert_eq!(p.org_her_id.as_deref(), Some("84556"));
    assert_eq!(p.org_name.as_deref(), Some("Tysnes Helsesenter"));
    assert_eq!(p.org_enh.as_deref(), Some("973942425"));
    assert_eq!(p.municipality.as_deref(), Some("4616"));
    assert_eq!(
        p.formats,
        EDI_FORMATS.to_vec(),
        "an inherited E_EDI address counts"
    );
    let prof = p.organisation();
    assert_eq!(prof.her_id(), Some("84556"));
    assert_eq!(
        prof.professional.as_ref().and_then(|x| x.hpr()),
        Some("7480342")
    );
    assert_eq!(d.organisations.len(), 1);
    let office = &d.organisations[0];
    assert_eq!(
        (office.her_id.as_str(), office.name.as_str()),
        ("84556", "KOMMUNELEGEN I TYSNES")
    );
    assert_eq!(office.org_enh.as_deref(), Some("973942425"));

    // No parent, only an e-mail address: no formats; 123456789 fails its check digit.
    let d = details("12345").await;
    let n = &d.party;
    assert_eq!(
        (n.name.as_str(), n.municipality.as_deref()),
        ("ET LEGEKONTOR", Some("4601"))
    );
    assert!(n.formats.is_empty(), "{:?}", n.formats);
    assert_eq!(
        (n.org_enh.as_deref(), n.org_her_id.as_deref()),
        (None, None)
    );

    // An organisation under another: the parent is its organisation (no number: -1).
    let d = details("55555").await;
    let w = &d.party;
    assert_eq!(w.org_her_id.as_deref(), Some("987654"));
    assert_eq!(w.org_name.as_deref(), Some("Overordnet Organisasjon"));
    assert_eq!(w.org_enh, None);
    let o = w.organisation();
    assert_eq!(o.name.as_deref(), Some("Overordnet Organisasjon"));
    assert_eq!(o.leaf_her_id(), Some("55555"));

    assert_eq!((mock.party_requests(), mock.malformed()), (5, 0));
}

#[tokio::test]
async fn a_her_id_the_address_register_does_not_know_is_none() {
    let mock =
        NhnMock::start(examples().party("99999", Reply::Fixture(nhn_mock::PARTY_NOT_FOUND))).await;
    let c = client(&mock);
    assert_eq!(c.party_details("99999").await, Ok(None));
    assert_eq!(
        c.party_details("424242").await,
        Ok(None),
        "unknown to the mock"
    );
    // Not a HER-id at all: not asked.
    for bad in ["-1", "0", "abc", "", "99999999999"] {
        assert_eq!(c.party_details(bad).await, Ok(None), "{bad:?}");
    }
    assert_eq!((mock.party_requests(), mock.malformed()), (2, 0));
}

#[tokio::test]
async fn an_answer_about_another_party_is_not_taken() {
    let mock =
        NhnMock::start(examples().party("777", Reply::Fixture(nhn_mock::PARTY_PERSON))).await;
    let e = client(&mock)
        .party_details("777")
        .await
        .expect_err("refused");
    assert!(
        matches!(&e, RegistryError::BadAnswer { reason, .. } if reason.contains("another party")),
        "{e:?}"
    );
}

#[tokio::test]
async fn unreadable_answers_are_bad_answers_and_faults_of_the_register_its_trouble() {
    let envelope = |body: &str| {
        format!(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>{body}</s:Body></s:Envelope>"#
        )
    };
    let mock = NhnMock::start(
        examples()
            .party("1", Reply::Body("not xml at all".into()))
            .party("2", Reply::Body("<!DOCTYPE x><x/>".into()))
            .party("3", Reply::Body(envelope("<Other xmlns=\"urn:x\"/>")))
            .party("4", Reply::Body(envelope(
                r#"<GetCommunicationPartyDetailsResponse xmlns="http://register.nhn.no/CommunicationParty"><GetCommunicationPartyDetailsResult><HerId>4</HerId></GetCommunicationPartyDetailsResult></GetCommunicationPartyDetailsResponse>"#,
            )))
            .party("5", Reply::Body(envelope(
                r#"<s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason><s:Text>Database down</s:Text></s:Reason></s:Fault>"#,
            )))
            .party("6", Reply::Body(envelope(
                r#"<s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code><s:Reason><s:Text>Nei</s:Text></s:Reason><s:Detail><GenericFault xmlns="http://register.nhn.no/Common"><ErrorCode>AccessDenied</ErrorCode></GenericFault></s:Detail></s:Fault>"#,
            )))
            .party("7", Reply::Body(envelope(
                r#"<GetCommunicationPartyDetailsResponse xmlns="http://register.nhn.no/CommunicationParty"><GetCommunicationPartyDetailsResult xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true"/></GetCommunicationPartyDetailsResponse>"#,
            ))),
    )
    .await;
    let c = client(&mock);
    for her in ["1", "2", "3", "4"] {
        let e = c.party_details(her).await.expect_err("unreadable");
        assert!(matches!(e, RegistryError::BadAnswer { .. }), "{her}: {e:?}");
    }
    let e = c
        .party_details("5")
        .await
        .expect_err("the register's fault");
    assert!(matches!(e, RegistryError::Unavailable { .. }), "{e:?}");
    assert!(!e.to_string().contains("Database"), "{e}");
    let e = c.party_details("6").await.expect_err("refused");
    assert!(
        matches!(&e, RegistryError::Rejected { reason, .. } if reason.contains("AccessDenied")),
        "{e:?}"
    );
    assert_eq!(c.party_details("7").await, Ok(None), "a nil result");
}

// ---------------------------------------------------------------------------------------------
// A register that cannot answer.

#[tokio::test]
async fn a_register_that_is_down_is_unavailable_never_not_found() {
    let mock = NhnMock::start(examples()).await;
    let c = NhnClient::new(NhnSettings {
        timeout: Duration::from_millis(300),
        ..settings(&mock)
    })
    .expect("a client");
    let unavailable = |r: Result<_, RegistryError>, what: &str| match r {
        Err(RegistryError::Unavailable { reason, .. }) => reason,
        other => panic!("{what}: {other:?}"),
    };

    mock.set_mode(Mode::Status(503));
    let why = unavailable(c.patient_gp(NHN_EXAMPLE_NIN).await.map(|_| ()), "503");
    assert!(why.contains("503"), "{why}");
    unavailable(c.party_details("115522").await.map(|_| ()), "503");

    mock.set_mode(Mode::Slow(Duration::from_secs(3)));
    let why = unavailable(c.party_details("115522").await.map(|_| ()), "slow");
    assert!(why.contains("300 ms"), "{why}");

    mock.set_mode(Mode::Answer);
    assert!(c.party_details("115522").await.expect("up").is_some());
    mock.go_down().await;
    unavailable(c.patient_gp(NHN_EXAMPLE_NIN).await.map(|_| ()), "down");
    unavailable(c.party_details("115522").await.map(|_| ()), "down");
    mock.come_up().await;
    assert!(c.party_details("115522").await.expect("up again").is_some());
}

#[tokio::test]
async fn basic_authentication_is_sent_when_configured() {
    let mock = NhnMock::start(examples().credentials("kadgate", "s3cret")).await;
    let with = |user: Option<&str>, password: Option<&str>| {
        NhnClient::new(NhnSettings {
            username: user.map(str::to_owned),
            password: password.map(str::to_owned),
            ..settings(&mock)
        })
        .expect("a client")
    };
    let ok = with(Some("kadgate"), Some("s3cret"));
    assert!(ok.party_details("8142987").await.expect("in").is_some());
    for c in [with(Some("kadgate"), Some("wrong")), with(None, None)] {
        let e = c.party_details("8142987").await.expect_err("refused");
        assert!(
            matches!(&e, RegistryError::Unavailable { reason, .. } if reason.contains("401")),
            "{e:?}"
        );
    }
    // Half a login, or a password over plain http to anything but loopback, is refused at setup.
    assert!(NhnClient::new(NhnSettings {
        username: Some("kadgate".into()),
        ..settings(&mock)
    })
    .is_err());
    let e = NhnClient::new(NhnSettings {
        gp_register_url: "http://flr.example/flr".into(),
        username: Some("kadgate".into()),
        password: Some("s3cret".into()),
        ..settings(&mock)
    })
    .expect_err("plain http");
    assert!(!format!("{e} {e:?}").contains("s3cret"), "{e:?}");
    assert!(!format!("{:?}", settings(&mock)).contains("s3cret"));
}

// ---------------------------------------------------------------------------------------------
// NhnDirectory over the local directory.

#[tokio::test]
async fn the_gp_for_a_patient_comes_with_the_office_and_its_endpoint() {
    let mock = NhnMock::start(examples()).await;
    let dir = NhnDirectory::new(client(&mock), local());
    let a = example_gp(&dir).await.expect("a GP");
    assert_eq!(a.gp.her_id, EXAMPLE_GP);
    assert_eq!(
        (a.gp.name.as_str(), a.gp.kind),
        ("Anne-Marie Bach", PartyKind::Gp)
    );
    assert_eq!(a.gp.hpr.as_deref(), Some("7480342"));
    let office = a.office.as_ref().expect("the office");
    assert_eq!(office.her_id, "84556");
    assert_eq!(office.name, "KOMMUNELEGEN I TYSNES", "NHN's name");
    assert_eq!(office.kind, PartyKind::GpOffice);
    assert_eq!(
        office.endpoint,
        folder("outbox/tysnes"),
        "the local endpoint"
    );
    assert_eq!(
        office.formats,
        vec![Format::Dialogmelding11, Format::Epikrise12],
        "the local formats"
    );
    // The GP has no entry of its own: reached through the office.
    assert_eq!(a.gp.endpoint, office.endpoint);
    assert_eq!(a.gp.formats, office.formats);
    // Today's answer: no period given, so from the day asked, open-ended.
    assert_eq!((a.from, a.to), (today(), None));
    assert!(a.covers(today()));
    // The office came with the GP's answer: one request to each register.
    assert_eq!((mock.gp_requests(), mock.party_requests()), (1, 1));
    // No GP: none.
    assert_eq!(
        dir.gp_for_patient(&nin("010185401"), today()).await,
        Ok(None)
    );
    assert_eq!(mock.malformed(), 0);
}

#[tokio::test]
async fn a_gp_the_address_register_does_not_know_is_an_error() {
    let mock =
        NhnMock::start(examples().party(EXAMPLE_GP, Reply::Fixture(nhn_mock::PARTY_NOT_FOUND)))
            .await;
    let dir = NhnDirectory::new(client(&mock), local());
    let e = dir
        .gp_for_patient(NHN_EXAMPLE_NIN, today())
        .await
        .expect_err("the registers disagree");
    assert!(matches!(e, RegistryError::BadAnswer { .. }), "{e:?}");
}

#[tokio::test]
async fn parties_come_from_nhn_with_the_local_endpoint_else_from_the_file() {
    let mock = NhnMock::start(examples()).await;
    let dir = NhnDirectory::new(client(&mock), local());
    // Known to both: NHN's name and organisation number, the file's kind, formats and endpoint.
    let ks = dir.party("8142987").await.expect("answer").expect("found");
    assert_eq!(ks.name, "KS-DIGITALE FELLESTJENESTER AS");
    assert_eq!(ks.org_enh.as_deref(), Some("931796003"));
    assert_eq!(ks.kind, PartyKind::Intake);
    assert_eq!(ks.formats, vec![Format::Dialogmelding11]);
    assert!(
        matches!(&ks.endpoint, Some(Endpoint::Http { url, .. }) if url == "https://ks.example/in")
    );
    // A person: through the organisation's local entry.
    let gp = dir.party("115522").await.expect("answer").expect("found");
    assert_eq!(gp.endpoint, folder("outbox/tysnes"));
    assert_eq!(
        gp.formats,
        vec![Format::Dialogmelding11, Format::Epikrise12]
    );
    // Known to NHN only: NHN's formats, no endpoint.
    let svc = dir.party("8094866").await.expect("answer").expect("found");
    assert_eq!(svc.endpoint, None);
    assert_eq!(svc.formats[0], Format::FhirR4);
    // Unknown to NHN: the file's entry as it is.
    let lv = dir.party("990020").await.expect("answer").expect("found");
    assert_eq!(lv.name, "Testbyen interkommunale legevakt");
    assert_eq!(lv.endpoint, folder("outbox/legevakt"));
    // Unknown to both.
    assert_eq!(dir.party("424242").await, Ok(None));
    // The rest is the file's, without asking NHN.
    let before = mock.requests();
    assert_eq!(
        dir.municipality_for_postcode("0661").await,
        Ok(Some("0301".into()))
    );
    assert_eq!(dir.kad_units().await.map(|u| u.len()), Ok(0));
    assert_eq!(dir.home_nursing("0301").await, Ok(None));
    assert_eq!(mock.requests(), before);
}

// ---------------------------------------------------------------------------------------------
// Cached over NhnDirectory.

fn cached(
    mock: &NhnMock,
    ttl: Duration,
) -> (Cached<NhnDirectory<FileDirectory>>, Arc<ManualClock>) {
    let clock = ManualClock::new(0);
    let dir = Cached::with_clock(NhnDirectory::new(client(mock), local()), ttl, clock.clone());
    (dir, clock)
}

#[tokio::test]
async fn the_cache_answers_again_until_the_answer_expires() {
    let mock = NhnMock::start(examples()).await;
    let (dir, clock) = cached(&mock, Duration::from_secs(60));
    let first = example_gp(&dir).await;
    assert!(first.is_some());
    assert_eq!(mock.requests(), 2);
    let again = example_gp(&dir).await;
    assert_eq!(again, first);
    assert_eq!(mock.requests(), 2, "from the cache");
    clock.advance(Duration::from_secs(59));
    example_gp(&dir).await;
    assert_eq!(mock.requests(), 2, "still fresh");
    clock.advance(Duration::from_secs(1));
    example_gp(&dir).await;
    assert_eq!(mock.requests(), 4, "expired: both registers asked again");
    // "Not found" is an answer and is kept too.
    dir.party("424242").await.expect("answer");
    dir.party("424242").await.expect("answer");
    assert_eq!(mock.requests(), 5);
    assert_eq!(dir.stats().hits, 3);
}

#[tokio::test]
async fn a_register_down_after_a_good_answer_serves_that_answer_else_an_error() {
    let mock = NhnMock::start(examples()).await;
    let (dir, clock) = cached(&mock, Duration::from_secs(60));
    let good = example_gp(&dir).await;
    assert!(good.is_some());
    let party = dir.party("8142987").await.expect("answer");
    mock.go_down().await;
    clock.advance(Duration::from_secs(3600));
    let before = mock.requests();
    assert_eq!(
        dir.gp_for_patient(NHN_EXAMPLE_NIN, today()).await,
        Ok(good.clone()),
        "the last good answer, however old"
    );
    assert_eq!(dir.party("8142987").await, Ok(party));
    // Never asked before: the error, not "no GP".
    let e = dir
        .gp_for_patient(&nin("150372450"), today())
        .await
        .expect_err("down");
    assert!(matches!(e, RegistryError::Unavailable { .. }), "{e:?}");
    let e = dir.party("55555").await.expect_err("down");
    assert!(matches!(e, RegistryError::Unavailable { .. }), "{e:?}");
    assert_eq!(
        mock.requests(),
        before,
        "nothing reached a register that is down"
    );
    let s = dir.stats();
    assert_eq!((s.stale, s.errors), (2, 2), "{s:?}");
    // Back up: asked again, fresh.
    mock.come_up().await;
    assert_eq!(dir.gp_for_patient(NHN_EXAMPLE_NIN, today()).await, Ok(good));
    assert_eq!(mock.requests(), before + 2);
}

// ---------------------------------------------------------------------------------------------
// No identity number anywhere it does not belong.

#[tokio::test]
async fn no_error_and_no_url_carries_the_identity_number() {
    let refused = nin("231190410");
    let other = nin("050680420");
    let missing = nin("150372450");
    let mock = NhnMock::start(
        examples()
            .gp(&refused, Reply::Fixture(nhn_mock::GP_INVALID_NIN))
            .gp(&other, Reply::Fixture(nhn_mock::GP_FOUND)),
    )
    .await;
    let c = NhnClient::new(NhnSettings {
        timeout: Duration::from_millis(300),
        ..settings(&mock)
    })
    .expect("a client");
    let (dir, _clock) = cached(&mock, Duration::from_secs(60));
    fn err<T: std::fmt::Debug>(r: Result<T, RegistryError>) -> RegistryError {
        r.expect_err("an error")
    }
    let mut errors: Vec<(String, RegistryError)> = Vec::new();
    errors.push((refused.clone(), err(c.patient_gp(&refused).await)));
    errors.push((other.clone(), err(c.patient_gp(&other).await)));
    let short = refused[..10].to_string();
    errors.push((short.clone(), err(c.patient_gp(&short).await)));
    mock.set_mode(Mode::Status(503));
    errors.push((missing.clone(), err(c.patient_gp(&missing).await)));
    mock.set_mode(Mode::Slow(Duration::from_secs(3)));
    errors.push((missing.clone(), err(c.patient_gp(&missing).await)));
    mock.set_mode(Mode::Answer);
    errors.push((
        refused.clone(),
        err(dir.gp_for_patient(&refused, today()).await),
    ));
    mock.go_down().await;
    errors.push((missing.clone(), err(c.patient_gp(&missing).await)));
    errors.push((
        missing.clone(),
        err(dir.gp_for_patient(&missing, today()).await),
    ));
    assert_eq!(errors.len(), 8);
    for (nin, e) in &errors {
        let shown = format!("{e} | {e:?}");
        assert!(!shown.contains(nin.as_str()), "{shown}");
    }
    for uri in mock.uris() {
        for n in [&refused, &other, &missing] {
            assert!(!uri.contains(n.as_str()), "{uri}");
        }
    }
    assert!(!format!("{dir:?}").contains(refused.as_str()));
}

// ---------------------------------------------------------------------------------------------
// The configuration's constructor.

fn config_for(dir: &tempfile::TempDir) -> Config {
    let file = dir.path().join("registry.toml");
    std::fs::write(&file, LOCAL).expect("write the directory file");
    let mut cfg = Config::default();
    cfg.admission.registry = file;
    cfg.server.data_dir = dir.path().join("data");
    cfg
}

#[tokio::test]
async fn open_directory_builds_the_configured_directory() {
    let tmp = tempfile::tempdir().expect("a temporary folder");
    // The file: endpoints under the data directory, folders made.
    let cfg = config_for(&tmp);
    let dir = open_directory(&cfg).expect("opens");
    let lv = dir.party("990020").await.expect("answer").expect("found");
    let expected = tmp.path().join("data/outbox/legevakt");
    assert_eq!(
        lv.endpoint,
        Some(Endpoint::Folder {
            dir: expected.clone()
        })
    );
    assert!(expected.is_dir(), "the drop folder was made");

    // NHN, the password from the environment.
    let mock = NhnMock::start(examples().credentials("kadgate", "pw-from-env")).await;
    let var = "KADGATE_TEST_NHN_PASSWORD_OPEN_DIRECTORY";
    let mut cfg = config_for(&tmp);
    cfg.registry.kind = RegistryKind::Nhn;
    cfg.registry.gp_register_url = Some(mock.gp_url());
    cfg.registry.address_register_url = Some(mock.address_url());
    cfg.registry.username = Some("kadgate".into());
    cfg.registry.password_env = Some(var.into());
    match open_directory(&cfg) {
        Err(OpenError::Setup(why)) => assert!(why.contains(var), "{why}"),
        other => panic!("the variable is not set: {:?}", other.err()),
    }
    std::env::set_var(var, "pw-from-env");
    let dir = open_directory(&cfg).expect("opens");
    let a = example_gp(&*dir).await.expect("a GP");
    assert_eq!(
        a.gp.endpoint,
        Some(Endpoint::Folder {
            dir: tmp.path().join("data/outbox/tysnes")
        })
    );
    example_gp(&*dir).await;
    assert_eq!(mock.requests(), 2, "behind the cache");
    std::env::remove_var(var);

    // A file with problems: every one of them.
    std::fs::write(
        &cfg.admission.registry,
        "[[parties]]\nher_id = \"x\"\nname = \"a\"\nkind = \"gp\"\n\n[postcodes]\n\"0661\" = \"301\"\n",
    )
    .expect("write");
    match open_directory(&cfg) {
        Err(OpenError::File(e)) => assert!(e.problems.len() >= 2, "{e}"),
        other => panic!("{:?}", other.err()),
    }
}
