//! The `kadgate` binary as operators run it: `validate --json` line contract and exit codes.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{kith_verdicts, standards, Verdict};
use serde_json::Value;

fn kadgate(args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kadgate"))
        .args(args)
        .arg("--standards")
        .arg(standards())
        .args(files)
        .output()
        .expect("kadgate runs")
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn is_valid(line: &Value) -> bool {
    line["well_formed"] == true
        && line["schema_valid"] == true
        && !line["findings"]
            .as_array()
            .expect("findings is a list")
            .iter()
            .any(|f| f["severity"] == "error")
}

#[test]
fn validate_json_agrees_with_validation_md_in_the_order_given() {
    let rows = kith_verdicts();
    assert_eq!(rows.len(), 238);
    let files: Vec<PathBuf> = rows.iter().map(|(_, p)| p.clone()).collect();
    let out = kadgate(&["validate", "--json"], &files);
    assert_eq!(out.status.code(), Some(1), "some examples are invalid");
    let got = lines(&out);
    assert_eq!(got.len(), files.len(), "one line per file");
    for ((verdict, path), line) in rows.iter().zip(&got) {
        let name = path.to_string_lossy();
        assert_eq!(line["file"], *name, "the file exactly as given, in order");
        let well_formed = line["well_formed"]
            .as_bool()
            .expect("well_formed is a bool");
        assert_eq!(well_formed, *verdict != Verdict::NotWellFormed, "{name}");
        match verdict {
            Verdict::Valid => assert_eq!(line["schema_valid"], true, "{name}"),
            Verdict::Invalid => assert_eq!(line["schema_valid"], false, "{name}"),
            Verdict::NotWellFormed => assert!(line["schema_valid"] != true, "{name}"),
        }
        let status = line["apprec"]["status"].as_str().expect("apprec.status");
        assert!(
            ["ok", "rejected", "partial", "none"].contains(&status),
            "{name}: {status}"
        );
        for f in line["findings"].as_array().expect("findings") {
            for key in ["code", "severity", "path", "message"] {
                assert!(f[key].is_string(), "{name}: finding without {key}");
            }
        }
    }
    // The AppRec verdict follows the findings: a schema-invalid message is never answered `ok`.
    for line in &got {
        if line["schema_valid"] == false {
            assert_ne!(line["apprec"]["status"], "ok", "{}", line["file"]);
        }
    }
}

#[test]
fn exit_status_is_zero_only_when_every_file_is_valid() {
    let valid: Vec<PathBuf> = kith_verdicts()
        .into_iter()
        .filter(|(v, _)| *v == Verdict::Valid)
        .map(|(_, p)| p)
        .collect();
    let out = kadgate(&["validate", "--json"], &valid);
    let clean: Vec<PathBuf> = lines(&out)
        .iter()
        .filter(|l| is_valid(l))
        .map(|l| PathBuf::from(l["file"].as_str().expect("file")))
        .collect();
    assert!(
        clean.len() > 100,
        "most VALID examples have no error finding"
    );
    let again = kadgate(&["validate", "--json"], &clean);
    assert_eq!(again.status.code(), Some(0));
    // Human-readable by default: one headline per file.
    let human = kadgate(&["validate"], &clean[..3]);
    assert_eq!(human.status.code(), Some(0));
    let text = String::from_utf8(human.stdout).expect("UTF-8");
    assert_eq!(text.lines().filter(|l| l.contains(": valid")).count(), 3);
}

#[test]
fn unreadable_file_and_usage_errors() {
    let missing = PathBuf::from("no/such/file.xml");
    let out = kadgate(&["validate", "--json"], std::slice::from_ref(&missing));
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got[0]["file"], "no/such/file.xml");
    assert_eq!(got[0]["findings"][0]["code"], "file.unreadable");
    // No file at all is a usage error.
    let usage = kadgate(&["validate", "--json"], &[]);
    assert_eq!(usage.status.code(), Some(2));
}
