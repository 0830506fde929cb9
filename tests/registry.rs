//! The directory of parties and the routing choice: the demo directory and what it answers, every
//! problem the file check reports (with its line), the routing table (address, postcode, referrer,
//! default, none; full units and alternatives; reported capacity), and the cache (time-to-live and
//! the last good answer when the register fails).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use kadgate::check::Rules;
use kadgate::clock::ManualClock;
use kadgate::config::Config;
use kadgate::model::{
    Address, Body, Format, Header, Ident, Message, Organisation, Patient, PatientIdent, Referral,
};
use kadgate::registry::{
    Cached, Directory, Endpoint, FileDirectory, GpAssignment, KadUnit, Party, PartyKind,
    RegistryError,
};
use kadgate::routing::{
    route, Capacity, MunicipalitySource, Route, RoutingPolicy, ROUTE_CATCHMENT, ROUTE_CODES,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo_path() -> PathBuf {
    root().join("fixtures/demo/registry.toml")
}

fn demo() -> FileDirectory {
    FileDirectory::load(&demo_path()).unwrap_or_else(|e| panic!("{e}"))
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

// ---------------------------------------------------------------------------------------------
// The demo directory.

#[test]
fn the_demo_directory_loads_and_answers() {
    let d = demo();
    rt().block_on(async {
        let units = d.kad_units().await.expect("units");
        assert!(units.len() >= 3, "{units:?}");
        // One unit per accepted first-choice format: FHIR, Henvisning 2.0, Henvisning 1.1.
        let firsts: Vec<Format> = units.iter().map(|u| u.party.formats[0]).collect();
        for f in [Format::FhirR4, Format::Henvisning20, Format::Henvisning11] {
            assert!(firsts.contains(&f), "no unit prefers {f:?}: {firsts:?}");
        }
        // Every municipality a unit serves routes back to that unit, and has home nursing.
        for u in &units {
            for m in &u.municipalities {
                let found = d.unit_for_municipality(m).await.expect("lookup");
                assert_eq!(
                    found.as_ref().map(|f| &f.party.her_id),
                    Some(&u.party.her_id)
                );
                let hn = d
                    .home_nursing(m)
                    .await
                    .expect("lookup")
                    .expect("home nursing");
                assert_eq!(hn.kind, PartyKind::HomeNursing);
                assert_eq!(hn.municipality.as_deref(), Some(m.as_str()));
            }
            if let Some(alt) = &u.alternative {
                assert!(d.kad_unit(alt).await.expect("lookup").is_some());
            }
        }
        let testbyen = d
            .kad_unit("990002")
            .await
            .expect("lookup")
            .expect("Testbyen KAD");
        assert_eq!(testbyen.municipalities.len(), 2);
        assert_eq!(testbyen.alternative.as_deref(), Some("990004"));
        // party() knows KAD units and everyone else.
        assert_eq!(
            d.party("990002").await.expect("lookup").map(|p| p.kind),
            Some(PartyKind::KadUnit)
        );
        for (her, kind) in [
            ("990001", PartyKind::GpOffice),
            ("990011", PartyKind::Gp),
            ("990020", PartyKind::Legevakt),
            ("990030", PartyKind::HospitalDepartment),
            ("990050", PartyKind::Intake),
        ] {
            let p = d.party(her).await.expect("lookup").expect(her);
            assert_eq!(p.kind, kind, "{her}");
        }
        assert_eq!(d.party("123456").await.expect("lookup"), None);
        assert_eq!(
            d.municipality_for_postcode("0661")
                .await
                .expect("lookup")
                .as_deref(),
            Some("0301")
        );
        assert_eq!(
            d.municipality_for_postcode("9999").await.expect("lookup"),
            None
        );
    });
}

#[test]
fn the_demo_directory_addresses_the_kad_unit_as_the_fhir_examples_do() {
    let d = demo();
    let unit = rt()
        .block_on(d.kad_unit("990002"))
        .expect("lookup")
        .expect("Testbyen KAD");
    let org = unit.party.organisation();
    assert_eq!(org.her_id(), Some("990002"));
    assert_eq!(org.org_number(), Some("990001006"));
    let gp = rt()
        .block_on(d.party("990011"))
        .expect("lookup")
        .expect("the GP");
    let org = gp.organisation();
    assert_eq!(org.her_id(), Some("990001"));
    assert_eq!(org.leaf_her_id(), Some("990011"));
    assert_eq!(
        org.professional.as_ref().and_then(|p| p.hpr()),
        Some("9144889")
    );
}

#[test]
fn drop_folders_are_relative_to_the_file_or_the_given_base() {
    let folder = |d: &FileDirectory| -> PathBuf {
        let u = rt()
            .block_on(d.kad_unit("990002"))
            .expect("lookup")
            .expect("unit");
        match u.party.endpoint {
            Some(Endpoint::Folder { dir }) => dir,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        folder(&demo()),
        root().join("fixtures/demo/outbox/testbyen-kad")
    );
    assert_eq!(
        folder(&FileDirectory::demo()),
        PathBuf::from("outbox/testbyen-kad")
    );
    let data = Path::new("/var/lib/kadgate");
    assert_eq!(
        folder(&FileDirectory::demo().with_base(data)),
        data.join("outbox/testbyen-kad")
    );
    let all = FileDirectory::demo().with_base(data);
    let endpoints = all.endpoints();
    assert!(endpoints.len() >= 5);
    for (p, e) in endpoints {
        match e {
            Endpoint::Folder { dir } => assert!(dir.starts_with(data), "{}", p.name),
            Endpoint::Http { .. } => {}
        }
    }
}

#[test]
fn the_gp_register_follows_a_change_of_gp() {
    let d = demo();
    let gp_on = |nin: &str, on: &str| -> Option<GpAssignment> {
        rt().block_on(d.gp_for_patient(nin, day(on)))
            .expect("lookup")
    };
    let before = gp_on("30014500282", "2026-03-02").expect("the Fjordvik GP");
    assert_eq!(before.gp.her_id, "990013");
    assert_eq!(before.to, Some(day("2026-03-02")));
    assert_eq!(
        before.office.as_ref().map(|o| o.name.as_str()),
        Some("Fjordvik legesenter")
    );
    let after = gp_on("30014500282", "2026-03-03").expect("the Testbyen GP");
    assert_eq!(after.gp.her_id, "990011");
    assert_eq!(after.to, None);
    assert_eq!(
        after.office.as_ref().map(|o| o.her_id.as_str()),
        Some("990001")
    );
    assert!(gp_on("30014500282", "1999-04-30").is_none());
    assert!(gp_on("14035000381", "2026-03-02").is_some());
    // Not on any list (a valid number nobody listed).
    assert!(gp_on("01010100050", "2026-03-02").is_none());
}

fn read_message(path: &Path) -> Message {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rules = Rules::from_config(&Config::demo());
    let (msg, _) = kadgate::convert::read_message(&bytes, &rules)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    msg
}

fn vignettes() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/rules/vignettes"))
        .expect("vignettes folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40);
    files
}

#[test]
fn every_vignette_patient_is_on_the_testbyen_gp_list_and_routes_to_testbyen_kad() {
    let d = demo();
    let referral_day = day("2026-03-02");
    let mut listed = 0;
    for f in vignettes() {
        let msg = read_message(&f);
        let patient = msg.patient().expect("a patient");
        if let Some(id) = patient.idents.first() {
            let a = rt()
                .block_on(d.gp_for_patient(&id.id, referral_day))
                .expect("lookup")
                .unwrap_or_else(|| panic!("{}: patient not on a GP list", f.display()));
            assert_eq!(a.gp.her_id, "990011", "{}", f.display());
            listed += 1;
        }
        let r = rt()
            .block_on(route(&d, &msg, &|_| room(), &RoutingPolicy::default()))
            .expect("route");
        assert_eq!(r.code, ROUTE_CATCHMENT, "{}: {}", f.display(), r.reason_en);
        assert_eq!(r.municipality_source, Some(MunicipalitySource::Referrer));
        assert_eq!(unit_her(&r), Some("990002"), "{}", f.display());
    }
    assert!(listed >= 40);
}

#[test]
fn the_fhir_example_referral_routes_by_the_patients_address() {
    let msg =
        read_message(&common::standards().join("fhir/examples/own/kad-referral-message.json"));
    let r = rt()
        .block_on(route(&demo(), &msg, &|_| room(), &RoutingPolicy::default()))
        .expect("route");
    assert_eq!(r.municipality.as_deref(), Some("0301"));
    assert_eq!(r.municipality_source, Some(MunicipalitySource::Address));
    assert_eq!(unit_her(&r), Some("990002"));
}

// ---------------------------------------------------------------------------------------------
// Every problem the check finds, with its line.

/// A valid file the cases add to.
const BASE: &str = r#"
[[kad_units]]
her_id = "990002"
name = "A KAD"
municipalities = ["0301"]
beds = 2
formats = ["fhir-r4"]
endpoint = { folder = "out/a" }

[[parties]]
her_id = "990011"
kind = "gp"
name = "Lege, Test"
"#;

/// The one check every case goes through: `BASE` + `extra` (or `extra` with `{BASE}` replaced,
/// for keys that must come before any table) is rejected with exactly one problem, on the first
/// line outside `BASE` containing `marker`, whose path or message contains `what`.
fn check(extra: &str, marker: &str, what: &str) -> Result<(), String> {
    let text = if extra.contains("{BASE}") {
        extra.replace("{BASE}", BASE)
    } else {
        format!("{BASE}{extra}")
    };
    let err = match FileDirectory::parse(&text, "case.toml") {
        Ok(_) => return Err(format!("accepted:\n{extra}")),
        Err(e) => e,
    };
    let base_at = text.find(BASE).expect("BASE is in the text");
    let base_lines =
        text[..base_at].lines().count() + 1..=text[..base_at + BASE.len()].lines().count();
    let line = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .find(|(n, l)| !base_lines.contains(n) && l.contains(marker))
        .ok_or_else(|| format!("marker {marker:?} not in the case"))?
        .0;
    let shown = err.to_string();
    let p = &err.problems[0];
    let ok = err.problems.len() == 1
        && p.line == Some(line)
        && (p.message.contains(what) || p.path.contains(what))
        && shown.contains(&format!("line {line}:"));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{marker:?}: want one problem at line {line} with {what:?}, got {shown}"
        ))
    }
}

/// A valid identity number whose check digits are broken (never shown in a problem).
const BAD_NIN: &str = "13057400191";

#[test]
fn every_problem_is_reported_with_its_line() {
    let cases: &[(&str, &str, &str)] = &[
        // (text added to BASE, marker of the problem's line, expected text)
        ("[[kad_units]\n", "[[kad_units]", ""),
        ("colour = \"red\"\n", "colour", "unknown key"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nshade = 1\n", "shade", "unknown key"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nformats = [\"fhir-r4\"]\nendpoint = { folder = \"x\", colour = 1 }\n", "endpoint", "unknown key"),
        ("[[gp_lists]]\ngp = \"990011\"\npatients = [\n  { nin = \"13057400190\", from = \"2020-01-01\" },\n  { nin = \"13057400271\", from = \"2020-01-01\", colour = 1 },\n]\n", "colour", "unknown key"),
        ("[[parties]]\nher_id = \"99x\"\nkind = \"legevakt\"\nname = \"L\"\n", "99x", "not a HER-id"),
        ("[[parties]]\nher_id = 990020\nkind = \"legevakt\"\nname = \"L\"\n", "her_id", "invalid type"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"ambulance\"\nname = \"L\"\n", "ambulance", "unknown variant"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nmunicipality = \"301\"\n", "\"301\"", "municipality number"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\n  \"3298\",\n  \"30X1\",\n]\nbeds = 2\nformats = [\"henvisning20\"]\n", "30X1", "municipality number"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\", \"0301\"]\nbeds = 2\nformats = [\"henvisning20\"]\n", "municipalities", "already served by A KAD"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\", \"3298\"]\nbeds = 2\nformats = [\"henvisning20\"]\n", "municipalities", "listed twice"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\"]\nbeds = 2\nalternative = \"990099\"\nformats = [\"henvisning20\"]\n", "alternative", "names no KAD unit"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\"]\nbeds = 2\nalternative = \"990011\"\nformats = [\"henvisning20\"]\n", "alternative", "is not a KAD unit"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\"]\nbeds = 2\nalternative = \"990003\"\nformats = [\"henvisning20\"]\n", "alternative", "its own alternative"),
        ("[[parties]]\nher_id = \"990002\"\nkind = \"legevakt\"\nname = \"L\"\n", "990002", "already used by kad_units[0]"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\"]\nbeds = 2\nformats = [\"henvisning30\"]\n", "formats", "unknown variant"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\"]\nbeds = 2\nformats = [\"henvisning20\", \"app-rec11\"]\n", "formats", "receipts follow"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\"]\nbeds = 2\nformats = [\"henvisning20\", \"henvisning20\"]\n", "formats", "listed twice"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\"]\nbeds = 2\n", "[[kad_units]]", "formats"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nformats = [\"fhir-r4\"]\nendpoint = { folder = \"x\", url = \"http://127.0.0.1:9/\" }\n", "endpoint", "either `url`"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nformats = [\"fhir-r4\"]\nendpoint = { timeout_ms = 5 }\n", "endpoint", "either `url`"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nformats = [\"fhir-r4\"]\nendpoint = { url = \"ftp://127.0.0.1/\" }\n", "endpoint", "http:// or https://"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nformats = [\"fhir-r4\"]\nendpoint = { url = \"http:///kad\" }\n", "endpoint", "URL"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nformats = [\"fhir-r4\"]\n[parties.endpoint]\nurl = \"http://127.0.0.1:9/\"\nca_cert = \"ca.pem\"\n", "ca_cert", "need an https"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nformats = [\"fhir-r4\"]\n[parties.endpoint]\nurl = \"https://127.0.0.1:9/\"\nclient_cert = \"c.pem\"\n", "[parties.endpoint]", "both `client_cert` and `client_key`"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nformats = [\"fhir-r4\"]\n[parties.endpoint]\nfolder = \"x\"\ntimeout_ms = 10\n", "timeout_ms", "HTTP endpoints only"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nformats = [\"fhir-r4\"]\n[parties.endpoint]\nurl = \"https://127.0.0.1:9/\"\ntimeout_ms = 0\n", "timeout_ms", "between 1 and"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nendpoint = { folder = \"x\" }\n", "[[parties]]", "formats"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\norg_enh = \"990001007\"\n", "org_enh", "organisation number"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\norg_her_id = \"0\"\n", "org_her_id", "not a HER-id"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nhpr = \"9144889\"\n", "hpr", "for a gp"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"gp\"\nname = \"L\"\nhpr = \"12345678901\"\n", "hpr", "not an HPR number"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"  \"\n", "name", "must not be empty"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\"]\nbeds = 0\nformats = [\"henvisning20\"]\n", "beds", "at least one bed"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nmunicipalities = [\"3298\"]\nformats = [\"henvisning20\"]\n", "[[kad_units]]", "beds"),
        ("[[kad_units]]\nher_id = \"990003\"\nname = \"B\"\nbeds = 1\nformats = [\"henvisning20\"]\n", "[[kad_units]]", "municipalities"),
        ("[[kad_units]]\nher_id = \"990003\"\nkind = \"legevakt\"\nname = \"B\"\nmunicipalities = [\"3298\"]\nbeds = 1\nformats = [\"henvisning20\"]\n", "kind", "belongs under [[parties]]"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"kad-unit\"\nname = \"L\"\n", "kind", "belong under [[kad_units]]"),
        ("[[parties]]\nher_id = \"990020\"\nname = \"L\"\n", "[[parties]]", "kind"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nbeds = 3\n", "beds", "[[kad_units]] only"),
        ("[[parties]]\nher_id = \"990040\"\nkind = \"home-nursing\"\nname = \"H\"\n", "kind", "needs the `municipality`"),
        ("[[parties]]\nher_id = \"990040\"\nkind = \"home-nursing\"\nname = \"H\"\nmunicipality = \"0301\"\n[[parties]]\nher_id = \"990041\"\nkind = \"home-nursing\"\nname = \"H2\"\nmunicipality = \"0301\" # second\n", "# second", "already has home nursing"),
        ("[postcodes]\n\"0661\" = \"0301\"\n\"66\" = \"0301\"\n", "\"66\"", "not four digits"),
        ("[postcodes]\n\"0661\" = \"Oslo\"\n", "\"0661\"", "municipality number"),
        ("[postcodes]\n\"0661\" = 301\n", "\"0661\"", "invalid type"),
        ("[[gp_lists]]\ngp = \"990099\"\npatients = []\n", "gp =", "names no party of kind gp"),
        ("[[gp_lists]]\ngp = \"990002\"\npatients = []\n", "gp =", "KAD unit, not a gp"),
        ("[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\n[[gp_lists]]\ngp = \"990020\"\npatients = []\n", "gp =", "legevakt, not a gp"),
        (&format!("[[gp_lists]]\ngp = \"990011\"\npatients = [\n  {{ nin = \"13057400190\", from = \"2020-01-01\" }},\n  {{ nin = \"{BAD_NIN}\", from = \"2020-01-01\" }},\n]\n"), BAD_NIN, "not a valid identity number"),
        ("[[gp_lists]]\ngp = \"990011\"\npatients = [\n  { nin = \"13057400190\", from = \"1.1.2020\" },\n]\n", "1.1.2020", "not a date"),
        ("[[gp_lists]]\ngp = \"990011\"\npatients = [\n  { nin = \"13057400190\", from = 2020-01-01T12:00:00 },\n]\n", "T12", "not a date"),
        ("[[gp_lists]]\ngp = \"990011\"\npatients = [\n  { nin = \"13057400190\", from = 2020 },\n]\n", "2020 }", "must be a date"),
        ("[[gp_lists]]\ngp = \"990011\"\npatients = [\n  { nin = \"13057400190\", from = 2020-01-01, to = 2019-12-31 },\n]\n", "2019-12-31", "before `from`"),
        ("[[parties]]\nher_id = \"990012\"\nkind = \"gp\"\nname = \"G2\"\n[[gp_lists]]\ngp = \"990011\"\npatients = [\n  { nin = \"13057400190\", from = \"2020-01-01\", to = \"2026-03-02\" },\n]\n[[gp_lists]]\ngp = \"990012\"\npatients = [\n  { nin = \"13057400190\", from = \"2026-03-02\" }, # overlap\n]\n", "# overlap", "overlapping period"),
        ("title = 3\n{BASE}", "title", "must be a string"),
        ("[routing]\nx = 1\n", "[routing]", "unknown key"),
        ("gp_lists = 3\n{BASE}", "gp_lists = 3", "array of tables"),
    ];
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(extra, marker, what)| check(extra, marker, what).err())
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn problems_never_repeat_an_identity_number() {
    let text = format!(
        "{BASE}[[gp_lists]]\ngp = \"990011\"\npatients = [\n  {{ nin = \"{BAD_NIN}\", from = \"2020-01-01\" }},\n  {{ nin = \"13057400190\", from = \"2020-01-01\" }},\n  {{ nin = \"13057400190\", from = \"2021-01-01\" }},\n  {{ nin = 13057400190, from = \"2021-01-01\" }},\n]\n"
    );
    let err = FileDirectory::parse(&text, "t.toml").expect_err("three problems");
    assert_eq!(err.problems.len(), 3, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(BAD_NIN) && !shown.contains("13057400190"),
        "{shown}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = format!(
        "{BASE}[[kad_units]]\nher_id = \"x\"\nname = \"B\"\nmunicipalities = [\"1\"]\nbeds = 0\nformats = [\"app-rec10\"]\nendpoint = {{ url = \"ftp://x\" }}\n"
    );
    let err = FileDirectory::parse(&text, "t.toml").expect_err("problems");
    assert_eq!(err.problems.len(), 5, "{err}");
    let lines: Vec<usize> = err.problems.iter().filter_map(|p| p.line).collect();
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "sorted by line: {err}"
    );
}

#[test]
fn a_missing_file_is_one_problem() {
    let err = FileDirectory::load(Path::new("/nonexistent/registry.toml")).expect_err("missing");
    assert_eq!(err.problems.len(), 1);
    assert!(err.to_string().contains("cannot read"));
}

// ---------------------------------------------------------------------------------------------
// Routing.

fn room() -> Capacity {
    Capacity {
        beds: 10,
        open_stays: 0,
        reported_free: None,
    }
}

fn unit_her(r: &Route) -> Option<&str> {
    r.unit.as_ref().map(|u| u.party.her_id.as_str())
}

/// A referral from `sender` (a HER-id) about a named, identified patient with `address`.
fn referral(sender: Option<&str>, address: Option<Address>) -> Message {
    let mut h = Header::new(Format::Henvisning20, "HENVISNING");
    h.sender = sender.map(|s| Organisation {
        idents: vec![Ident::new(s, "HER")],
        ..Organisation::default()
    });
    let patient = Patient {
        family_name: Some("Testesen".into()),
        given_name: Some("Syntetisk".into()),
        idents: vec![PatientIdent {
            id: "13057400190".into(),
            kind: "FNR".into(),
        }],
        address,
        ..Patient::default()
    };
    Message {
        header: h,
        body: Body::Referral(Box::new(Referral {
            patient: Some(patient),
            ..Referral::default()
        })),
    }
}

fn address(municipality: Option<&str>, postcode: Option<&str>) -> Option<Address> {
    Some(Address {
        street: Some("Testveien 1".into()),
        municipality: municipality.map(str::to_string),
        postal_code: postcode.map(str::to_string),
        ..Address::default()
    })
}

fn policy(referrer: bool, default: Option<&str>) -> RoutingPolicy {
    RoutingPolicy {
        default_municipality: default.map(str::to_string),
        use_referrer_municipality: referrer,
    }
}

fn full() -> Capacity {
    Capacity {
        beds: 3,
        open_stays: 3,
        reported_free: None,
    }
}

fn reported(beds: u32, open_stays: u32, free: u32) -> Capacity {
    Capacity {
        beds,
        open_stays,
        reported_free: Some(free),
    }
}

/// Everything a route decides, on one line: `code unit municipality/source [full] [from X]`
/// (`-` for nothing).
fn summary(r: &Route) -> String {
    let source = match r.municipality_source {
        None => "-",
        Some(MunicipalitySource::Address) => "address",
        Some(MunicipalitySource::Postcode) => "postcode",
        Some(MunicipalitySource::Referrer) => "referrer",
        Some(MunicipalitySource::Default) => "default",
    };
    let mut s = format!(
        "{} {} {}/{source}",
        r.code,
        unit_her(r).unwrap_or("-"),
        r.municipality.as_deref().unwrap_or("-"),
    );
    if r.full {
        s.push_str(" full");
    }
    if let Some(d) = &r.diverted_from {
        s.push_str(&format!(" from {d}"));
    }
    s
}

/// (name, referral, policy, capacity by unit HER-id (others have room), expected [`summary`]).
type RoutingCase = (
    &'static str,
    Message,
    RoutingPolicy,
    Vec<(&'static str, Capacity)>,
    &'static str,
);

#[test]
fn the_routing_table() {
    let dflt = RoutingPolicy::default;
    #[rustfmt::skip]
    let cases: Vec<RoutingCase> = vec![
        ("address municipality", referral(Some("990001"), address(Some("3298"), Some("0661"))), dflt(), vec![],
         "route.catchment 990003 3298/address"),
        ("address municipality, second of a shared unit", referral(None, address(Some("3299"), None)), dflt(), vec![],
         "route.catchment 990002 3299/address"),
        ("postcode when the address has no municipality", referral(Some("990001"), address(None, Some("1992"))), dflt(), vec![],
         "route.catchment 990003 3297/postcode"),
        ("postcode when the address municipality is malformed", referral(None, address(Some("32"), Some(" 1993 "))), dflt(), vec![],
         "route.catchment 990004 3296/postcode"),
        ("referrer when no address", referral(Some("990005"), None), dflt(), vec![],
         "route.catchment 990003 3298/referrer"),
        ("referrer when the postcode is unknown", referral(Some("990001"), address(None, Some("9999"))), dflt(), vec![],
         "route.catchment 990002 0301/referrer"),
        ("default when the referrer is not used", referral(Some("990001"), None), policy(false, Some("3296")), vec![],
         "route.catchment 990004 3296/default"),
        ("default when the referrer is unknown", referral(Some("123"), None), policy(true, Some("3297")), vec![],
         "route.catchment 990003 3297/default"),
        ("nothing to go by", referral(Some("990001"), None), policy(false, None), vec![],
         "route.no-municipality - -/-"),
        ("no sender, no address, no default", referral(None, None), dflt(), vec![],
         "route.no-municipality - -/-"),
        ("no unit serves the municipality", referral(None, address(Some("5001"), None)), dflt(), vec![],
         "route.no-unit - 5001/address"),
        ("full: to the alternative", referral(None, address(Some("0301"), None)), dflt(), vec![("990002", full())],
         "route.full-alternative 990004 0301/address from 990002"),
        ("full, and so is the alternative", referral(None, address(Some("0301"), None)), dflt(), vec![("990002", full()), ("990004", full())],
         "route.full 990002 0301/address full"),
        ("full, no alternative", referral(None, address(Some("3298"), None)), dflt(), vec![("990003", full())],
         "route.full 990003 3298/address full"),
        ("more stays than beds is full", referral(None, address(Some("3298"), None)), dflt(), vec![("990003", Capacity { beds: 8, open_stays: 9, reported_free: None })],
         "route.full 990003 3298/address full"),
        ("the unit's report of no free beds wins over the count", referral(None, address(Some("0301"), None)), dflt(), vec![("990002", reported(12, 2, 0))],
         "route.full-alternative 990004 0301/address from 990002"),
        ("the unit's report of a free bed wins over the count", referral(None, address(Some("0301"), None)), dflt(), vec![("990002", reported(12, 12, 1))],
         "route.catchment 990002 0301/address"),
    ];
    let d = FileDirectory::demo();
    let runtime = rt();
    let mut failed = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, msg, policy, caps, want) in &cases {
        let caps: HashMap<&str, Capacity> = caps.iter().copied().collect();
        let capacity = |u: &KadUnit| {
            caps.get(u.party.her_id.as_str())
                .copied()
                .unwrap_or_else(room)
        };
        let r = runtime
            .block_on(route(&d, msg, &capacity, policy))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = summary(&r);
        if got != *want {
            failed.push(format!(
                "{name}: want {want:?}, got {got:?} ({})",
                r.reason_en
            ));
        }
        seen.insert(r.code);
        // Reasons in both languages, naming the municipality and unit, never the patient.
        for reason in [&r.reason_en, &r.reason_no] {
            assert!(!reason.trim().is_empty(), "{name}");
            for secret in ["Testesen", "Syntetisk", "13057400190", "Testveien"] {
                assert!(!reason.contains(secret), "{name}: {reason}");
            }
            if let Some(m) = &r.municipality {
                assert!(reason.contains(m.as_str()), "{name}: {reason}");
            }
            if let Some(u) = &r.unit {
                assert!(reason.contains(&u.party.name), "{name}: {reason}");
            }
        }
        assert_ne!(r.reason_en, r.reason_no, "{name}");
        // The route is recorded as JSON.
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["code"], r.code, "{name}");
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // The table covers every code, and every code it produces is a listed one.
    assert_eq!(seen, ROUTE_CODES.into_iter().collect());
}

#[test]
fn a_register_that_is_down_is_an_error_not_a_route() {
    let runtime = rt();
    let all_down = Fake::new();
    all_down.failing.store(true, Ordering::SeqCst);
    let msg = referral(Some("990001"), address(Some("0301"), None));
    let e = runtime
        .block_on(route(
            &all_down,
            &msg,
            &|_| room(),
            &RoutingPolicy::default(),
        ))
        .expect_err("down");
    assert_eq!(e, down());
    // The address municipality needs no postcode lookup: a postcode register outage does not matter.
    let postcodes_down = Fake::new();
    postcodes_down
        .postcodes_failing
        .store(true, Ordering::SeqCst);
    let r = runtime
        .block_on(route(
            &postcodes_down,
            &msg,
            &|_| room(),
            &RoutingPolicy::default(),
        ))
        .expect("routes");
    assert_eq!(unit_her(&r), Some("990002"));
    // …but when the postcode is what is needed, the outage is an error, not a guess.
    let msg = referral(Some("990001"), address(None, Some("1992")));
    assert!(runtime
        .block_on(route(
            &postcodes_down,
            &msg,
            &|_| room(),
            &RoutingPolicy::default()
        ))
        .is_err());
}

#[test]
fn an_alternative_gone_from_the_register_keeps_the_full_unit() {
    let d = Fake::new();
    d.units_gone.store(true, Ordering::SeqCst);
    let msg = referral(None, address(Some("0301"), None));
    let r = rt()
        .block_on(route(&d, &msg, &|_| full(), &RoutingPolicy::default()))
        .expect("route");
    assert_eq!(summary(&r), "route.full 990002 0301/address full");
    assert!(
        r.reason_en.contains("990004") && r.reason_no.contains("990004"),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The cache.

fn down() -> RegistryError {
    RegistryError::Unavailable {
        register: "test".into(),
        reason: "down".into(),
    }
}

/// The demo directory behind a fake register: counts the lookups that reach it, fails all of
/// them while `failing` is set, and the postcode lookups while `postcodes_failing` is; while
/// `units_gone` is set it knows no KAD unit by HER-id (the register changed under the data).
struct Fake {
    inner: FileDirectory,
    calls: AtomicUsize,
    failing: AtomicBool,
    postcodes_failing: AtomicBool,
    units_gone: AtomicBool,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            inner: FileDirectory::demo(),
            calls: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            postcodes_failing: AtomicBool::new(false),
            units_gone: AtomicBool::new(false),
        }
    }
    fn hit(&self) -> Result<(), RegistryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            Err(down())
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Directory for Fake {
    async fn kad_units(&self) -> Result<Vec<KadUnit>, RegistryError> {
        self.hit()?;
        self.inner.kad_units().await
    }
    async fn kad_unit(&self, her_id: &str) -> Result<Option<KadUnit>, RegistryError> {
        self.hit()?;
        if self.units_gone.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.inner.kad_unit(her_id).await
    }
    async fn unit_for_municipality(&self, m: &str) -> Result<Option<KadUnit>, RegistryError> {
        self.hit()?;
        self.inner.unit_for_municipality(m).await
    }
    async fn party(&self, her_id: &str) -> Result<Option<Party>, RegistryError> {
        self.hit()?;
        self.inner.party(her_id).await
    }
    async fn gp_for_patient(
        &self,
        nin: &str,
        on: NaiveDate,
    ) -> Result<Option<GpAssignment>, RegistryError> {
        self.hit()?;
        self.inner.gp_for_patient(nin, on).await
    }
    async fn home_nursing(&self, m: &str) -> Result<Option<Party>, RegistryError> {
        self.hit()?;
        self.inner.home_nursing(m).await
    }
    async fn municipality_for_postcode(&self, p: &str) -> Result<Option<String>, RegistryError> {
        self.hit()?;
        if self.postcodes_failing.load(Ordering::SeqCst) {
            return Err(down());
        }
        self.inner.municipality_for_postcode(p).await
    }
}

/// A clock the test moves by hand.
fn manual_clock() -> Arc<ManualClock> {
    ManualClock::new(0)
}

#[test]
fn the_cache_keeps_answers_for_their_time_to_live() {
    let clock = manual_clock();
    let c = Cached::with_clock(Fake::new(), Duration::from_secs(60), clock.clone());
    let calls = || c.inner().calls.load(Ordering::SeqCst);
    rt().block_on(async {
        let a = c.unit_for_municipality("0301").await.expect("lookup");
        assert_eq!(calls(), 1);
        let b = c.unit_for_municipality("0301").await.expect("lookup");
        assert_eq!(a, b);
        assert_eq!(calls(), 1, "served from the cache");
        // Another key is another lookup; "not found" is cached too.
        assert_eq!(c.unit_for_municipality("5001").await.expect("lookup"), None);
        assert_eq!(c.unit_for_municipality("5001").await.expect("lookup"), None);
        assert_eq!(calls(), 2);
        // Each lookup kind has its own entries.
        c.party("990001").await.expect("lookup");
        c.gp_for_patient("30014500282", day("2026-03-02"))
            .await
            .expect("lookup");
        c.gp_for_patient("30014500282", day("2026-03-03"))
            .await
            .expect("lookup");
        c.home_nursing("0301").await.expect("lookup");
        c.municipality_for_postcode("0661").await.expect("lookup");
        c.kad_units().await.expect("lookup");
        c.kad_unit("990002").await.expect("lookup");
        assert_eq!(calls(), 9);
        clock.advance(Duration::from_millis(59_999));
        c.unit_for_municipality("0301").await.expect("lookup");
        assert_eq!(calls(), 9, "still fresh");
        clock.advance(Duration::from_millis(1));
        c.unit_for_municipality("0301").await.expect("lookup");
        assert_eq!(calls(), 10, "expired: asked again");
        c.unit_for_municipality("0301").await.expect("lookup");
        assert_eq!(calls(), 10, "fresh again");
    });
    let s = c.stats();
    assert_eq!((s.misses, s.stale, s.errors), (10, 0, 0));
    assert_eq!(s.hits, 4);
}

#[test]
fn the_cache_serves_the_last_good_answer_when_the_register_fails() {
    let clock = manual_clock();
    let c = Cached::with_clock(Fake::new(), Duration::from_secs(60), clock.clone());
    rt().block_on(async {
        let good = c
            .gp_for_patient("30014500282", day("2026-03-03"))
            .await
            .expect("lookup");
        assert!(good.is_some());
        c.inner().failing.store(true, Ordering::SeqCst);
        clock.advance(Duration::from_secs(3600));
        // Expired, the register is down: the last good answer, however old.
        let stale = c
            .gp_for_patient("30014500282", day("2026-03-03"))
            .await
            .expect("stale");
        assert_eq!(stale, good);
        assert_eq!(
            c.inner().calls.load(Ordering::SeqCst),
            2,
            "the register was asked"
        );
        // Nothing cached: the error comes through.
        let e = c
            .gp_for_patient("30014500282", day("2026-03-04"))
            .await
            .expect_err("down");
        assert_eq!(e, down());
        // Back up: a fresh answer replaces the stale one.
        c.inner().failing.store(false, Ordering::SeqCst);
        c.gp_for_patient("30014500282", day("2026-03-03"))
            .await
            .expect("lookup");
        assert_eq!(c.inner().calls.load(Ordering::SeqCst), 4);
        c.inner().failing.store(true, Ordering::SeqCst);
        assert!(
            c.gp_for_patient("30014500282", day("2026-03-03"))
                .await
                .is_ok(),
            "fresh"
        );
        assert_eq!(c.inner().calls.load(Ordering::SeqCst), 4);
    });
    let s = c.stats();
    assert_eq!((s.stale, s.errors), (1, 1));
    // Debug shows counters, never what it holds.
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("30014500282") && shown.contains("stale"),
        "{shown}"
    );
}

#[test]
fn the_cache_stays_within_its_bound() {
    let clock = manual_clock();
    let c = Cached::with_clock(Fake::new(), Duration::from_secs(60), clock.clone())
        .with_max_entries(10);
    rt().block_on(async {
        for n in 0..25 {
            clock.advance(Duration::from_millis(1));
            c.municipality_for_postcode(&format!("{n:04}"))
                .await
                .expect("lookup");
        }
        let before = c.inner().calls.load(Ordering::SeqCst);
        assert_eq!(before, 25);
        // The newest entry survived; the oldest did not.
        c.municipality_for_postcode("0024").await.expect("lookup");
        assert_eq!(c.inner().calls.load(Ordering::SeqCst), 25);
        c.municipality_for_postcode("0000").await.expect("lookup");
        assert_eq!(c.inner().calls.load(Ordering::SeqCst), 26);
    });
}

#[test]
fn routing_works_through_the_cache() {
    let c = Cached::new(demo(), Duration::from_secs(60));
    let msg = referral(Some("990001"), address(None, Some("1991")));
    let runtime = rt();
    for _ in 0..3 {
        let r = runtime
            .block_on(route(&c, &msg, &|_| room(), &RoutingPolicy::default()))
            .expect("route");
        assert_eq!(unit_her(&r), Some("990003"));
    }
    let s = c.stats();
    assert_eq!(s.misses, 2, "postcode and unit asked once each");
    assert_eq!(s.hits, 4);
}

// ---------------------------------------------------------------------------------------------
// The schema and the checker agree.

#[test]
fn the_schema_lists_what_the_checker_accepts() {
    let text = std::fs::read_to_string(root().join("schemas/registry.schema.json"))
        .expect("schema readable");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("an enum")
            .iter()
            .map(|x| x.as_str().expect("a name").to_string())
            .collect()
    };
    let with_format = |f: &str| {
        FileDirectory::parse(
            &format!("{BASE}[[parties]]\nher_id = \"990020\"\nkind = \"legevakt\"\nname = \"L\"\nformats = [\"{f}\"]\n"),
            "t.toml",
        )
    };
    let formats = names(&schema["$defs"]["format"]["enum"]);
    assert!(formats.len() >= 10);
    for f in &formats {
        assert!(with_format(f).is_ok(), "schema format {f} is refused");
    }
    for f in ["msg-head12", "app-rec10", "app-rec11", "henvisning21"] {
        assert!(
            with_format(f).is_err(),
            "{f} is accepted but not in the schema"
        );
    }
    let kinds = names(&schema["$defs"]["party"]["properties"]["kind"]["enum"]);
    for k in &kinds {
        let text = format!(
            "{BASE}[[parties]]\nher_id = \"990020\"\nkind = \"{k}\"\nname = \"P\"\nmunicipality = \"0301\"\n"
        );
        assert!(
            FileDirectory::parse(&text, "t.toml").is_ok(),
            "kind {k} refused"
        );
    }
    assert_eq!(kinds.len(), 6, "every kind but kad-unit");
    let top: Vec<&String> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .collect();
    let empty = |k: &str| match k {
        "title" => "title = \"t\"\n",
        "postcodes" => "[postcodes]\n",
        "kad_units" => "kad_units = []\n",
        "parties" => "parties = []\n",
        "gp_lists" => "gp_lists = []\n",
        other => panic!("schema key {other} has no case here"),
    };
    for k in top {
        assert!(
            FileDirectory::parse(empty(k), "t.toml").is_ok(),
            "{k} refused"
        );
    }
    assert!(FileDirectory::parse("colour = 1\n", "t.toml").is_err());
}
