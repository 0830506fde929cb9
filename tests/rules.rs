//! Admission rules: the vignette decision table, `kadgate rules check` on broken rule sets (every
//! problem with its line) and `kadgate rules test --compare` flipping exactly the expected decisions.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::NaiveDate;
use kadgate::check::Rules;
use kadgate::config::Config;
use kadgate::model::{Body, Message};
use kadgate::rules::{decide, DecisionKind, RuleSet};
use serde::Deserialize;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn default_ruleset_path() -> PathBuf {
    root().join("fixtures/rules/national-default.toml")
}

fn default_ruleset() -> RuleSet {
    RuleSet::load(&default_ruleset_path()).unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Debug, Deserialize)]
struct Vignette {
    file: String,
    decision: String,
    news2: Option<u8>,
    rules: Vec<String>,
    why: String,
}

#[derive(Deserialize)]
struct Table {
    vignette: Vec<Vignette>,
}

fn table() -> Vec<Vignette> {
    let text = std::fs::read_to_string(root().join("fixtures/rules/vignettes.toml"))
        .expect("vignettes.toml readable");
    toml::from_str::<Table>(&text)
        .expect("vignettes.toml parses")
        .vignette
}

fn vignette_path(v: &Vignette) -> PathBuf {
    root().join("fixtures/rules/vignettes").join(&v.file)
}

fn read(path: &Path) -> Message {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rules = Rules::from_config(&Config::demo());
    let (msg, _) = kadgate::convert::read_message(&bytes, &rules)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    msg
}

/// A day far from every referral's own date: decisions must use the referral's date.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2040, 1, 1).expect("a date")
}

/// The one check every vignette goes through: decision, NEWS2 and the rules that must fire.
fn check(set: &RuleSet, v: &Vignette) {
    let msg = read(&vignette_path(v));
    let d = decide(set, &msg, today());
    let fired: Vec<&str> = d.fired.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        d.decision.word(),
        v.decision,
        "{} ({}): fired {fired:?}",
        v.file,
        v.why
    );
    assert_eq!(d.news2, v.news2, "{}: NEWS2 ({})", v.file, v.why);
    for r in &v.rules {
        assert!(
            fired.contains(&r.as_str()),
            "{}: {r} must fire, fired {fired:?}",
            v.file
        );
    }
    assert_eq!(d.ruleset_id, set.id);
    assert_eq!(d.ruleset_version, set.version);
    assert_eq!(d.reasons_no.len(), d.reasons_en.len(), "{}", v.file);
    assert!(
        !d.reasons_en.is_empty(),
        "{}: a decision has reasons",
        v.file
    );
}

#[test]
fn vignettes_get_their_expected_decisions() {
    let set = default_ruleset();
    let t = table();
    assert!(t.len() >= 40, "at least 40 vignettes, found {}", t.len());
    for v in &t {
        check(&set, v);
    }
    // The table covers every decision, every NEWS2 band and "not computed".
    let decisions: BTreeSet<&str> = t.iter().map(|v| v.decision.as_str()).collect();
    for d in ["accepted", "needs-review", "not-accepted", "incomplete"] {
        assert!(decisions.contains(d), "no vignette for {d}");
    }
    let bands: BTreeSet<u8> = t
        .iter()
        .filter_map(|v| v.news2)
        .map(|n| match n {
            0..=4 => 0,
            5..=6 => 1,
            _ => 2,
        })
        .collect();
    assert_eq!(bands.len(), 3, "every NEWS2 band has a vignette");
    assert!(t.iter().any(|v| v.news2.is_none()));
    // Every vignette file is in the table.
    let on_disk = std::fs::read_dir(root().join("fixtures/rules/vignettes"))
        .expect("vignettes folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count();
    assert_eq!(on_disk, t.len(), "every vignette file has a row");
}

#[test]
fn vignette_identities_are_synthetic_and_valid() {
    for v in table() {
        let msg = read(&vignette_path(&v));
        let Some(p) = msg.patient() else {
            panic!("{}: no patient", v.file)
        };
        for id in &p.idents {
            let parsed = kadgate::ident::parse_person_number(&id.id)
                .unwrap_or_else(|e| panic!("{}: invalid person number: {e}", v.file));
            if let (Some(born), Some(bd)) = (parsed.birth_date, p.birth_date.as_deref()) {
                assert_eq!(
                    born.to_string(),
                    bd,
                    "{}: number and birth date agree",
                    v.file
                );
            }
        }
        assert!(matches!(msg.body, Body::Referral(_)), "{}", v.file);
    }
}

#[test]
fn vignettes_are_valid_fhir_r4() {
    let files: Vec<PathBuf> = table().iter().map(vignette_path).collect();
    for (f, verdict) in files.iter().zip(common::oracle(&files)) {
        assert_eq!(
            verdict["valid"],
            true,
            "{}: {}",
            f.display(),
            verdict["issues"]
        );
    }
}

#[test]
fn weak_exclusion_policy_refuses_when_the_rule_set_says_so() {
    let text = std::fs::read_to_string(default_ruleset_path()).expect("readable");
    let strict = text.replace(
        "weak_exclusion = \"needs-review\"",
        "weak_exclusion = \"not-accepted\"",
    );
    assert_ne!(strict, text);
    let strict = RuleSet::parse(&strict, "strict").unwrap_or_else(|e| panic!("{e}"));
    let normal = default_ruleset();
    for v in table() {
        let msg = read(&vignette_path(&v));
        let d = decide(&normal, &msg, today());
        let s = decide(&strict, &msg, today());
        let weak_exclusion = d.fired.iter().any(|f| {
            f.evidence == kadgate::rules::Evidence::Weak
                && matches!(
                    f.kind,
                    kadgate::rules::RuleKind::Exclusion | kadgate::rules::RuleKind::AlwaysHospital
                )
        });
        if weak_exclusion {
            assert_eq!(s.decision, DecisionKind::NotAccepted, "{}", v.file);
        } else {
            assert_eq!(s.decision, d.decision, "{}", v.file);
        }
    }
}

fn kadgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kadgate"))
        .args(args)
        .output()
        .expect("kadgate runs")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// 1-based line of the first line containing `needle`.
fn line_with(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in text"))
        + 1
}

#[test]
fn rules_check_reports_every_problem_with_its_line() {
    let ok = kadgate(&["rules", "check", &default_ruleset_path().to_string_lossy()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let broken = r#"id = "test.broken"
version = "1"
colour = "blue"

[[rules]]
id = "Bad Id"
kind = "exclusion"
icd10 = ["21x"]
reason_no = "x"
reason_en = "x"

[[rules]]
id = "same"
kind = "review"
age_min = 80
age_max = 60
reason_no = "x"
reason_en = "x"

[[rules]]
id = "same"
kind = "inclusion"
news2_min = 25
reason_no = "x"
reason_en = "x"

[[rules]]
id = "no-condition"
kind = "review"
reason_no = "x"
reason_en = "x"

[[rules]]
id = "wrong-kind"
kind = "maybe"
reason_no = "x"
reason_en = "x"

[[rules]]
id = "needs-what"
kind = "required-content"
reason_no = "x"
reason_en = ""
"#;
    let f = write(dir.path(), "broken.toml", broken);
    let out = kadgate(&["rules", "check", &f.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let expect = [
        (line_with(broken, "colour"), "unknown key"),
        (line_with(broken, "Bad Id"), "rule id"),
        (line_with(broken, "21x"), "ICD-10"),
        (line_with(broken, "age_min = 80"), "above age_max"),
        (line_with(broken, "news2_min = 25"), "0 to 20"),
        (
            line_with(broken, "id = \"no-condition\"") + 1,
            "no condition",
        ),
        (line_with(broken, "\"maybe\""), "unknown variant"),
        (line_with(broken, "required-content"), "requires"),
        (line_with(broken, "reason_en = \"\""), "must not be empty"),
    ];
    for (line, what) in expect {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("line {line}:")) && l.contains(what)),
            "expected `{what}` at line {line} in:\n{err}"
        );
    }
    // The duplicate id is reported at the second rule's id.
    let second = broken
        .match_indices("id = \"same\"")
        .nth(1)
        .map(|(i, _)| broken[..i].lines().count() + 1)
        .expect("two");
    assert!(
        err.contains(&format!("line {second}:")) && err.contains("duplicate rule id"),
        "{err}"
    );

    let syntax = write(
        dir.path(),
        "syntax.toml",
        "id = \"x\"\nversion = \"1\"\n[[rules]\n",
    );
    let out = kadgate(&["rules", "check", &syntax.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3:"));
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn rules_test_json_lines_follow_the_table() {
    let t = table();
    let files: Vec<String> = t
        .iter()
        .map(|v| vignette_path(v).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["rules", "test", "--json"];
    let rs = default_ruleset_path().to_string_lossy().into_owned();
    args.push(&rs);
    args.extend(files.iter().map(String::as_str));
    let out = kadgate(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), t.len());
    for ((v, l), f) in t.iter().zip(&lines).zip(&files) {
        assert_eq!(l["file"], f.as_str(), "the file as given");
        assert_eq!(l["decision"], v.decision.as_str(), "{}", v.file);
        match v.news2 {
            Some(n) => assert_eq!(l["news2"], n, "{}", v.file),
            None => assert!(l["news2"].is_null(), "{}", v.file),
        }
        assert!(l["rules"].is_array() && l["reasons"].is_array(), "{l}");
        assert!(l.get("changed").is_none(), "no comparison asked for");
    }

    // One unreadable file: the others are still decided, exit 1.
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = write(dir.path(), "junk.json", "{ not json");
    let out = kadgate(&[
        "rules",
        "test",
        "--json",
        &rs,
        &files[0],
        &junk.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_lines(&out).len(), 1);
    // Usage errors: exit 2.
    assert_eq!(kadgate(&["rules", "test", &rs]).status.code(), Some(2));
    let bad = write(dir.path(), "bad.toml", "id = 1\n");
    assert_eq!(
        kadgate(&["rules", "test", &bad.to_string_lossy(), &files[0]])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn rules_test_compare_flips_exactly_the_expected_decisions() {
    // The change: refuse from NEWS2 5 instead of 7.
    let text = std::fs::read_to_string(default_ruleset_path()).expect("readable");
    let changed = text
        .replace("news2_min = 7", "news2_min = 5")
        .replace("version = \"2026.1\"", "version = \"2026.1-test\"");
    assert_eq!(
        changed.matches("news2_min = 5").count(),
        2,
        "the edit applied"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let other = write(dir.path(), "stricter.toml", &changed);
    let t = table();
    // Expected: every vignette scoring 5–6 that was not already refused now is.
    let expected: BTreeSet<String> = t
        .iter()
        .filter(|v| v.news2.is_some_and(|n| (5..=6).contains(&n)) && v.decision != "not-accepted")
        .map(|v| v.file.clone())
        .collect();
    assert!(!expected.is_empty());
    let files: Vec<String> = t
        .iter()
        .map(|v| vignette_path(v).to_string_lossy().into_owned())
        .collect();
    let rs = default_ruleset_path().to_string_lossy().into_owned();
    let os = other.to_string_lossy().into_owned();
    let mut args = vec![
        "rules",
        "test",
        "--json",
        "--compare",
        os.as_str(),
        rs.as_str(),
    ];
    args.extend(files.iter().map(String::as_str));
    let out = kadgate(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut flipped = BTreeSet::new();
    for l in json_lines(&out) {
        let name = l["file"]
            .as_str()
            .and_then(|f| f.rsplit('/').next())
            .expect("file")
            .to_string();
        if l["changed"] == true {
            assert_eq!(l["compare_decision"], "not-accepted", "{name}");
            assert_ne!(l["decision"], l["compare_decision"]);
            flipped.insert(name);
        } else {
            assert_eq!(l["changed"], false);
            assert_eq!(l["decision"], l["compare_decision"], "{name}");
        }
    }
    assert_eq!(flipped, expected);

    // The human form marks the same files.
    let mut args = vec!["rules", "test", "--compare", os.as_str(), rs.as_str()];
    args.extend(files.iter().map(String::as_str));
    let human = String::from_utf8_lossy(&kadgate(&args).stdout).into_owned();
    assert_eq!(
        human.matches("(CHANGED)").count(),
        expected.len(),
        "{human}"
    );
}

#[test]
fn kith_referrals_are_decided_on_their_coded_diagnoses() {
    // A KITH Henvisning 2.0 with ICPC-2 L88 (code system 7170): the default rule set has no
    // criterion for it; a rule set that includes L88 accepts it, so the KITH code is read.
    let path = common::kith(
        "henvisning/examples/sarepta/Henvisning_v2-0/Henvisning_ny_tilstand_v2-0_Ny.xml",
    );
    let msg = read(&path);
    let set = default_ruleset();
    let d = decide(&set, &msg, today());
    assert_eq!(d.decision, DecisionKind::NeedsReview, "{:?}", d.fired);
    let text = std::fs::read_to_string(default_ruleset_path()).expect("readable")
        + "\n[[rules]]\nid = \"local.rheumatic\"\nkind = \"inclusion\"\nicpc2 = [\"L88\"]\nreason_no = \"x\"\nreason_en = \"x\"\n";
    let local = RuleSet::parse(&text, "local").unwrap_or_else(|e| panic!("{e}"));
    let d = decide(&local, &msg, today());
    assert_eq!(d.decision, DecisionKind::Accepted, "{:?}", d.fired);
    assert_eq!(d.fired.len(), 1);
    assert_eq!(d.fired[0].id, "local.rheumatic");
}
