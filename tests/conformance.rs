//! The official acceptance-test messages for receiving systems
//! (`standards/kith/*/examples/sarepta-akseptansetest`) through the embedded demo configuration:
//! every case of `fixtures/conformance/acceptance.toml` must get the AppRec the rules call for, the
//! table must cover every acceptance file on disk, and every AppRec kadgate renders for them must
//! validate against the AppRec XSD and answer the original sender about the original message.
//!
//! The standards folder is `$KADGATE_STANDARDS_DIR`, else `$CARGO_MANIFEST_DIR/../shared/standards`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kadgate::check::{Checker, Mode, Rules};
use kadgate::config::Config;
use kadgate::model::Organisation;
use kadgate::xml::{self, Element, Limits};
use kadgate::xsd::SchemaSet;

fn standards_dir() -> PathBuf {
    match std::env::var_os("KADGATE_STANDARDS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/standards"),
    }
}

fn kith_dir() -> PathBuf {
    standards_dir().join("kith")
}

/// One compiled schema set shared by the tests of this binary.
fn schemas() -> &'static SchemaSet {
    static SET: OnceLock<SchemaSet> = OnceLock::new();
    SET.get_or_init(|| SchemaSet::load(&kith_dir()).expect("KITH schema set compiles"))
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| Rules::from_config(&Config::demo()))
}

fn checker() -> Checker<'static> {
    Checker {
        rules: rules(),
        schemas: Some(schemas()),
        mode: Mode::Serve,
    }
}

/// Every acceptance-test file on disk, as a path under `kith/` with `/` separators.
fn acceptance_files_on_disk() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let kith = kith_dir();
    let mut files = Vec::new();
    for std_dir in std::fs::read_dir(&kith)
        .expect("standards/kith is readable")
        .flatten()
    {
        let acc = std_dir
            .path()
            .join("examples")
            .join("sarepta-akseptansetest");
        if acc.is_dir() {
            walk(&acc, &mut files);
        }
    }
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")))
        .map(|p| {
            p.strip_prefix(&kith)
                .expect("under kith/")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

#[test]
fn every_acceptance_case_gets_the_apprec_the_rules_call_for() {
    let results =
        kadgate::conformance::run(&checker(), &standards_dir()).expect("conformance table runs");
    assert!(!results.is_empty(), "the conformance table is empty");
    let failures: Vec<String> = results
        .iter()
        .filter(|r| !r.pass)
        .map(|r| r.line())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} acceptance cases fail:\n\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_table_covers_every_acceptance_file_on_disk() {
    let table = kadgate::conformance::table().expect("conformance table parses");
    let mut listed = BTreeSet::new();
    let mut twice = Vec::new();
    for c in &table.case {
        if !listed.insert(c.file.clone()) {
            twice.push(c.file.clone());
        }
        assert!(
            matches!(c.expect.as_str(), "ok" | "rejected" | "none"),
            "{}: expect must be ok, rejected or none, not {:?}",
            c.file,
            c.expect
        );
        assert!(
            !c.tests.trim().is_empty() && !c.why.trim().is_empty(),
            "{}: tests and why must be filled in",
            c.file
        );
        if c.expect == "rejected" {
            assert!(
                !c.errors.is_empty(),
                "{}: a rejection must name its error codes",
                c.file
            );
        }
        if c.expect != "rejected" {
            assert!(
                c.errors.is_empty(),
                "{}: only a rejection carries error codes",
                c.file
            );
        }
    }
    assert!(twice.is_empty(), "listed more than once: {twice:#?}");
    let on_disk = acceptance_files_on_disk();
    assert!(
        !on_disk.is_empty(),
        "no acceptance-test files found under {}",
        kith_dir().display()
    );
    let forgotten: Vec<&String> = on_disk.difference(&listed).collect();
    let missing: Vec<&String> = listed.difference(&on_disk).collect();
    assert!(
        forgotten.is_empty() && missing.is_empty(),
        "acceptance files not in the table: {forgotten:#?}\ntable entries with no file: {missing:#?}"
    );
}

/// Identifier values on a party chain (organisation, sub-units, persons), without spaces and dots.
fn chain_ids(o: &Organisation, out: &mut BTreeSet<String>) {
    for i in &o.idents {
        out.insert(squash(&i.id));
    }
    if let Some(p) = &o.professional {
        for i in &p.idents {
            out.insert(squash(&i.id));
        }
    }
    if let Some(u) = &o.unit {
        chain_ids(u, out);
    }
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '.')
        .collect()
}

/// Every `Id` value anywhere below `e`, squashed.
fn ids_below(e: &Element) -> BTreeSet<String> {
    let mut v = Vec::new();
    e.find_all("Id", &mut v);
    v.iter().filter_map(|e| e.text_opt()).map(squash).collect()
}

#[test]
fn every_rendered_apprec_validates_and_answers_the_original_sender() {
    let table = kadgate::conformance::table().expect("conformance table parses");
    let checker = checker();
    let mut problems = Vec::new();
    let mut rendered = 0usize;
    for c in &table.case {
        let path = kith_dir().join(&c.file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = checker.check(&bytes);
        let receipts = kadgate::pipeline::render_receipts(&outcome);
        assert_eq!(
            receipts.len(),
            outcome.receipts.len(),
            "{}: one rendered AppRec per planned receipt",
            c.file
        );
        let header = outcome.header.as_ref();
        let want_msg_id = header
            .and_then(|h| h.msg_id.as_deref())
            .map(str::trim)
            .unwrap_or("");
        let mut want_ids = BTreeSet::new();
        if let Some(s) = header.and_then(|h| h.sender.as_ref()) {
            chain_ids(s, &mut want_ids);
        }
        want_ids.remove("");
        for (n, r) in receipts.iter().enumerate() {
            rendered += 1;
            let at = format!("{} (AppRec {} of {})", c.file, n + 1, receipts.len());
            let report = schemas().validate(&r.body);
            if !report.schema_valid() {
                problems.push(format!(
                    "{at}: AppRec does not validate against the AppRec XSD: {:?}",
                    report.findings
                ));
            }
            let doc = match xml::scan(&r.body, &Limits::default()) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(format!("{at}: AppRec is not readable XML: {:?}", e.finding));
                    continue;
                }
            };
            let root = &doc.root;
            if root.name != "AppRec" {
                problems.push(format!("{at}: root is {}, not AppRec", root.name));
                continue;
            }
            match root.text_at("OriginalMsgId/Id") {
                Some(id) if id == want_msg_id => {}
                got => problems.push(format!(
                    "{at}: OriginalMsgId/Id is {got:?}, the original MsgId is {want_msg_id:?}"
                )),
            }
            match root.child("Receiver") {
                None => problems.push(format!("{at}: AppRec has no Receiver")),
                Some(recv) => {
                    let have = ids_below(recv);
                    let lost: Vec<&String> = want_ids.difference(&have).collect();
                    if want_ids.is_empty() {
                        problems.push(format!(
                            "{at}: an AppRec was planned although the sender has no identifier"
                        ));
                    } else if !lost.is_empty() {
                        problems.push(format!("{at}: AppRec Receiver lacks the original sender's identifiers {lost:?} (has {have:?})"));
                    }
                }
            }
        }
    }
    assert!(
        rendered > 0,
        "no AppRec was rendered for any acceptance case"
    );
    assert!(
        problems.is_empty(),
        "{} problem(s) in {rendered} rendered AppRecs:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
