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

/// `| VALID | `examples/…json` | … |` rows of `fhir/examples/VALIDATION.md`, paths absolute.
fn fhir_verdicts() -> Vec<(bool, PathBuf)> {
    let fhir = standards().join("fhir");
    let table = std::fs::read_to_string(fhir.join("examples/VALIDATION.md"))
        .expect("fhir VALIDATION.md readable");
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let valid = match *cells.get(1)? {
                "VALID" => true,
                "INVALID" => false,
                _ => return None,
            };
            let rel = cells.get(2)?.trim_matches('`');
            rel.ends_with(".json").then(|| (valid, fhir.join(rel)))
        })
        .collect()
}

#[test]
fn validate_json_reads_fhir_with_r4_verdicts_and_the_response() {
    let rows = fhir_verdicts();
    assert_eq!(rows.len(), 28, "VALIDATION.md lists 28 JSON examples");
    let files: Vec<PathBuf> = rows.iter().map(|(_, p)| p.clone()).collect();
    let out = kadgate(&["validate", "--json"], &files);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got.len(), rows.len());
    for ((oracle_valid, path), line) in rows.iter().zip(&got) {
        let name = path.to_string_lossy();
        assert_eq!(line["file"], *name);
        // kadgate checks the required binding of MessageHeader.response.code; the oracle does not.
        let stricter = name.ends_with("broken-response-code-not-in-valueset.json");
        let expect_valid = *oracle_valid && !stricter;
        assert_eq!(line["schema_valid"] == true, expect_valid, "{name}: {line}");
        assert_eq!(
            line["apprec"]["status"], "none",
            "{name}: no AppRec for FHIR"
        );
        let code = line["response"]["code"].as_str().expect("response.code");
        assert!(
            ["ok", "fatal-error", "none"].contains(&code),
            "{name}: {code}"
        );
        assert!(line["response"]["issues"].is_array(), "{name}");
        if name.ends_with("broken-truncated.json") {
            assert_eq!(line["well_formed"], false);
            assert_eq!(line["schema_valid"], Value::Null);
        }
    }
    let by_name = |n: &str| {
        got.iter()
            .find(|l| l["file"].as_str().is_some_and(|f| f.ends_with(n)))
            .expect("line present")
    };
    let referral = by_name("own/kad-referral-message.json");
    assert_eq!(referral["message_type"], "kad-henvisning");
    assert_eq!(referral["msg_id"], "7f3c2a10-4b1e-4c1a-9d2e-0a1b2c3d4e01");
    assert_eq!(referral["response"]["code"], "ok");
    let broken = by_name("broken-servicerequest-missing-required.json");
    assert_eq!(broken["response"]["code"], "fatal-error");
    assert!(broken["response"]["issues"]
        .as_array()
        .unwrap()
        .contains(&Value::from("required")));
    // An incoming response is never answered.
    assert_eq!(
        by_name("kad-referral-response-ok.json")["response"]["code"],
        "none"
    );
}

#[test]
fn convert_round_trips_through_the_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fhir = dir.path().join("fhir");
    let kith = dir.path().join("kith");
    let referral = standards().join("fhir/examples/own/kad-referral-message.json");
    let epikrise =
        standards().join("kith/epikrise/examples/sarepta/Epikrise_v1-2/epikrise_v1.2_n.xml");
    // FHIR → KITH (Henvisning 2.0 by default), output checked against the XSDs.
    let out = kadgate(
        &["convert", "--to", "kith", "--out", kith.to_str().unwrap()],
        std::slice::from_ref(&referral),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = kith.join("kad-referral-message.xml");
    let again = kadgate(&["validate", "--json"], std::slice::from_ref(&xml));
    let line = &lines(&again)[0];
    assert_eq!(line["schema_valid"], true, "{line}");
    // Henvisning 2.0 names the kind of referral: HENVISNING_NYTILSTAND for a new one.
    assert!(
        line["message_type"]
            .as_str()
            .is_some_and(|t| t.starts_with("HENVISNING")),
        "{line}"
    );
    // … and back to FHIR: valid R4.
    let out = kadgate(
        &["convert", "--to", "fhir", "--out", fhir.to_str().unwrap()],
        std::slice::from_ref(&xml),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = kadgate(
        &["validate", "--json"],
        &[fhir.join("kad-referral-message.json")],
    );
    assert_eq!(lines(&back)[0]["schema_valid"], true);
    // An Epikrise 1.2 to stdout as a FHIR document.
    let out = kadgate(
        &["convert", "--to", "fhir"],
        std::slice::from_ref(&epikrise),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["type"], "document");
    assert_eq!(doc["entry"][0]["resource"]["resourceType"], "Composition");
    // Usage errors.
    let bad = kadgate(
        &["convert", "--to", "kith", "--format", "henvisning-9"],
        std::slice::from_ref(&referral),
    );
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn alerts_lists_the_stores_alerts() {
    use kadgate::store::{Effects, NewAlert, NewMessage};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = kadgate::config::Config::demo();
    cfg.server.data_dir = dir.path().to_path_buf();
    let store = kadgate::server::open_store(&cfg).await.unwrap();
    let alert = |n: u32| NewAlert {
        kind: "delivery.dead".into(),
        unit_key: Some("HER:990002".into()),
        reason: format!("referral to HER:990002 given up ({n})"),
        message_id: None,
        outbox_id: None,
        dedup_key: format!("test:{n}"),
    };
    store
        .ingest(NewMessage {
            received_at: "2026-01-01T00:00:00Z".into(),
            channel: "test".into(),
            direction: kadgate::store::Direction::In,
            format: None,
            msg_type: None,
            msg_id: None,
            sender_key: None,
            dedup_key: None,
            status: "accepted".into(),
            raw: b"x".to_vec(),
            header_json: None,
            body_json: None,
            findings_json: "[]".into(),
            correlates_to: None,
            receipts: vec![],
            reply_json: None,
            content_sha256: None,
            effects: Effects {
                alerts: vec![alert(1), alert(2)],
                ..Effects::default()
            },
        })
        .await
        .unwrap();
    store.close().await.unwrap();
    drop(store);

    let data_dir = dir.path().to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kadgate"))
        .args(["alerts", "--json", "--data-dir", data_dir])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0]["reason"], "referral to HER:990002 given up (2)",
        "newest first"
    );
    assert_eq!(got[1]["kind"], "delivery.dead");
    assert_eq!(got[1]["message_id"], 1, "planned alerts name their message");
    let text = Command::new(env!("CARGO_BIN_EXE_kadgate"))
        .args(["alerts", "--data-dir", data_dir, "--limit", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("delivery.dead [HER:990002]"), "{text}");
}

#[tokio::test]
async fn stays_needs_the_operator_token_reads_the_patient_from_stdin_and_is_audited() {
    use kadgate::store::{Effects, NewMessage, NewStay};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("kadgate.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[server]\ndata_dir = {:?}\n\n[api]\noperator_token = \"cli-test-token\"\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let cfg = kadgate::config::Config::load(&cfg_path).unwrap();
    let store = kadgate::server::open_store(&cfg).await.unwrap();
    let nin = "27094100211";
    store
        .ingest(NewMessage {
            received_at: "2026-01-01T00:00:00Z".into(),
            channel: "test".into(),
            direction: kadgate::store::Direction::In,
            format: None,
            msg_type: None,
            msg_id: Some("ref-1".into()),
            sender_key: None,
            dedup_key: None,
            status: "accepted".into(),
            raw: b"x".to_vec(),
            header_json: None,
            body_json: None,
            findings_json: "[]".into(),
            correlates_to: None,
            receipts: vec![],
            reply_json: None,
            content_sha256: None,
            effects: Effects {
                stay: Some(NewStay {
                    patient_nin: Some(nin.into()),
                    unit_key: Some("HER:990002".into()),
                    state: "referred".into(),
                    keys: vec!["id:ref-1".into()],
                    doc_json: r#"{"unit_name":"Testbyen KAD","timeline":[{"at":"2026-01-01T00:00:00Z","kind":"referred"}]}"#.into(),
                    created_ms: 0,
                }),
                ..Effects::default()
            },
        })
        .await
        .unwrap();
    store.close().await.unwrap();
    drop(store);

    let run = |token: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kadgate"));
        cmd.args([
            "stays",
            "--config",
            cfg_path.to_str().unwrap(),
            "--as",
            "tester",
        ])
        .args(args)
        .env_remove("KADGATE_OPERATOR_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        if let Some(t) = token {
            cmd.env("KADGATE_OPERATOR_TOKEN", t);
        }
        let mut child = cmd.spawn().unwrap();
        // Refused before it reads: then the pipe may be closed already.
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{nin}\n").as_bytes());
        child.wait_with_output().unwrap()
    };
    for bad in [None, Some("wrong")] {
        let out = run(bad, &["--json"]);
        assert_eq!(out.status.code(), Some(3), "{bad:?}");
        assert!(out.stdout.is_empty());
    }
    let out = run(Some("cli-test-token"), &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["unit_key"], "HER:990002");
    assert_eq!(got[0]["timeline"][0]["kind"], "referred");
    let text = run(Some("cli-test-token"), &["--stay", "1"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.starts_with("stay #1 referred at Testbyen KAD (HER:990002)"),
        "{text}"
    );

    let store = kadgate::server::open_store(&cfg).await.unwrap();
    let audit = store.audit_log(10).await.unwrap();
    assert_eq!(
        audit.len(),
        2,
        "every read recorded, refused ones not at all: {audit:#?}"
    );
    assert_eq!(audit[1].entry.actor, "cli:tester");
    assert_eq!(audit[1].entry.action, "stays.search");
    assert_eq!(audit[1].entry.subject, format!("patient:{nin}"));
    assert_eq!(audit[0].entry.action, "stays.get");
    store.close().await.unwrap();
}
