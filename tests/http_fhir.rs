//! FHIR R4 messaging over HTTP with a real server on loopback and a real SQLite file:
//! `POST /fhir/$process-message` and `GET /fhir/metadata`.
//!
//! Each behaviour is a scenario (an async function) with its own server and data directory, run by
//! its own test. [`every_answer_passes_the_oracle`] runs all scenarios once more, keeps every body
//! kadgate answered with, and hands them to the independent FHIR R4 validator in one batch.
//! The stored referral is read back from the store after the server stopped and written as KITH
//! Henvisning 1.1 and 2.0, which must be schema-valid and keep the patient and diagnoses.
//!
//! Expectations are read from the standards folder (`fhir/examples/VALIDATION.md`, the example files
//! themselves), not written down here.

mod common;

use std::path::{Path, PathBuf};

use std::sync::Mutex;

use common::*;
use kadgate::finding::codes;
use kadgate::model::{Body, Format, Header, Message};
use kadgate::store::sqlite::{SqliteOptions, SqliteStore};
use kadgate::store::Store;
use serde_json::{json, Value};

const REFERRAL: &str = "examples/own/kad-referral-message.json";
const RESPONSE_OK: &str = "examples/own/kad-referral-response-ok.json";
const RESPONSE_FATAL: &str = "examples/own/kad-referral-response-fatal-error.json";
const FHIR_JSON: &str = "application/fhir+json";
const FNR_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
const HER_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.2";

// ---------------------------------------------------------------- helpers

fn fhir_file(rel: &str) -> PathBuf {
    standards().join("fhir").join(rel)
}

fn read_bytes(rel: &str) -> Vec<u8> {
    std::fs::read(fhir_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn read_json(rel: &str) -> Value {
    serde_json::from_slice(&read_bytes(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every body kadgate answered with (label, bytes), for the oracle.
#[derive(Default)]
struct Answers(Mutex<Vec<(String, Vec<u8>)>>);

impl Answers {
    fn keep(&self, label: &str, body: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push((label.to_string(), body.to_vec()));
    }
}

/// One HTTP answer.
struct Answer {
    label: String,
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The stored message's id (`x-kadgate-message-id`).
    fn message_id(&self) -> i64 {
        self.header("x-kadgate-message-id")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: no x-kadgate-message-id", self.label))
    }

    fn duplicate(&self) -> bool {
        match self.header("x-kadgate-duplicate") {
            Some("true") => true,
            Some("false") => false,
            other => panic!("{}: x-kadgate-duplicate = {other:?}", self.label),
        }
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some(FHIR_JSON),
            "{}: content type",
            self.label
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: answer is not JSON: {e}", self.label))
    }
}

async fn post(
    base: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
    log: &Answers,
    label: &str,
) -> Answer {
    let mut req = client()
        .post(format!("{base}/fhir/$process-message"))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap().to_vec();
    log.keep(label, &body);
    Answer {
        label: label.to_string(),
        status,
        headers,
        body,
    }
}

async fn post_fhir(base: &str, body: Vec<u8>, log: &Answers, label: &str) -> Answer {
    post(base, Some(FHIR_JSON), body, log, label).await
}

/// How many messages the store holds (`GET /api/messages`).
async fn stored_count(base: &str) -> usize {
    get_json(base, "/api/messages?limit=500")
        .await
        .as_array()
        .expect("a list")
        .len()
}

/// `GET /api/messages/{id}`: (summary, findings).
async fn stored(base: &str, id: i64) -> (Value, Vec<Value>) {
    let v = get_json(base, &format!("/api/messages/{id}")).await;
    let findings = v["findings"].as_array().cloned().unwrap_or_default();
    (v["message"].clone(), findings)
}

/// The MessageHeader of a message Bundle.
fn header_of(bundle: &Value) -> &Value {
    &bundle["entry"][0]["resource"]
}

/// The resource a reference inside `bundle` points at (by fullUrl).
fn resolve<'a>(bundle: &'a Value, reference: &Value) -> Option<&'a Value> {
    let r = reference["reference"].as_str()?;
    bundle["entry"]
        .as_array()?
        .iter()
        .find(|e| e["fullUrl"].as_str() == Some(r))
        .map(|e| &e["resource"])
}

/// The HER-id an Organization carries.
fn her_of(org: &Value) -> Option<&str> {
    org["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == HER_SYSTEM)?["value"]
        .as_str()
}

/// `(code, expression)` of every issue of an OperationOutcome.
fn issues(oo: &Value) -> Vec<(String, String)> {
    assert_eq!(oo["resourceType"], "OperationOutcome", "{oo}");
    oo["issue"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| {
            let code = i["details"]["coding"][0]["code"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let at = i["expression"][0].as_str().unwrap_or("").to_string();
            (code, at)
        })
        .collect()
}

/// The OperationOutcome of an answer: the body itself, or the response message's `response.details`.
fn outcome_of(answer: &Value) -> Option<&Value> {
    if answer["resourceType"] == "OperationOutcome" {
        return Some(answer);
    }
    resolve(answer, &header_of(answer)["response"]["details"])
}

/// Errors kadgate's own validator finds in a body it produced.
fn own_errors(v: &Value) -> Vec<String> {
    kadgate::fhir::validate::validate(v)
        .into_iter()
        .filter(|f| f.is_error())
        .map(|f| format!("{} at {}", f.code, f.path))
        .collect()
}

/// A response message answering `request`: 200, a new message addressed back to the request's
/// sender whose `response` quotes the request's MessageHeader.id with `code`, valid by kadgate's own
/// validator, and whose OperationOutcome (if any) lists exactly the findings the store holds.
async fn assert_response(base: &str, a: &Answer, request: &Value, code: &str) -> Value {
    assert_eq!(a.status, 200, "{}", a.label);
    let v = a.json();
    assert_eq!(v["resourceType"], "Bundle", "{}", a.label);
    assert_eq!(v["type"], "message", "{}", a.label);
    let h = header_of(&v);
    let req_h = header_of(request);
    assert_eq!(h["resourceType"], "MessageHeader", "{}", a.label);
    assert_eq!(
        h["response"]["identifier"], req_h["id"],
        "{}: the response quotes the request's MessageHeader.id",
        a.label
    );
    assert_eq!(h["response"]["code"], code, "{}", a.label);
    assert_ne!(h["id"], req_h["id"], "{}: a new MessageHeader.id", a.label);
    assert_ne!(v["id"], request["id"], "{}: a new Bundle.id", a.label);
    assert!(v["timestamp"].is_string(), "{}: timestamp", a.label);
    // Addressed back: the response goes to the request's sender and comes from its receiver.
    let req_sender = resolve(request, &req_h["sender"]).and_then(her_of);
    let req_receiver = resolve(request, &req_h["destination"][0]["receiver"]).and_then(her_of);
    if req_sender.is_some() {
        assert_eq!(
            resolve(&v, &h["destination"][0]["receiver"]).and_then(her_of),
            req_sender,
            "{}: addressed to the request's sender",
            a.label
        );
        assert_eq!(
            resolve(&v, &h["sender"]).and_then(her_of),
            req_receiver,
            "{}: sent by the request's receiver",
            a.label
        );
    }
    let errors = own_errors(&v);
    assert!(
        errors.is_empty(),
        "{}: kadgate's validator rejects its own response: {errors:?}",
        a.label
    );
    let (summary, findings) = stored(base, a.message_id()).await;
    assert_eq!(
        summary["status"].as_str(),
        a.header("x-kadgate-status"),
        "{}",
        a.label
    );
    match outcome_of(&v) {
        Some(oo) => {
            let mut listed = issues(oo);
            let mut want: Vec<(String, String)> = findings
                .iter()
                .map(|f| {
                    (
                        f["code"].as_str().unwrap_or("").to_string(),
                        f["path"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            listed.sort();
            want.sort();
            assert_eq!(
                listed, want,
                "{}: the OperationOutcome lists every stored finding",
                a.label
            );
        }
        None => assert!(
            findings.is_empty() && code == "ok",
            "{}: findings without an OperationOutcome: {findings:?}",
            a.label
        ),
    }
    if code == "fatal-error" {
        assert!(
            findings.iter().any(|f| f["severity"] == "error"),
            "{}: fatal-error without an error finding",
            a.label
        );
    }
    v
}

/// A copy of `msg` with a new Bundle.id and MessageHeader.id (and its fullUrl).
fn with_new_id(msg: &Value, seq: u32) -> Value {
    let mut m = msg.clone();
    let id = format!("5b0e9c4a-1d2f-4e3a-9b8c-{seq:012x}");
    m["id"] = json!(format!("5b0e9c4a-1d2f-4e3a-8b8c-{seq:012x}"));
    m["entry"][0]["fullUrl"] = json!(format!("urn:uuid:{id}"));
    m["entry"][0]["resource"]["id"] = json!(id);
    m
}

fn bytes_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

fn codes_in(oo: &Value) -> Vec<String> {
    issues(oo).into_iter().map(|(c, _)| c).collect()
}

// ---------------------------------------------------------------- scenarios

/// The referral: 200 ok; again → the stored response byte for byte; after a restart on the same
/// data directory → still byte for byte, still one stored message.
async fn referral_duplicate_and_restart(log: &Answers) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = read_bytes(REFERRAL);
    let request = read_json(REFERRAL);

    let srv = TestServer::start(test_config(dir.path())).await;
    let first = post_fhir(&srv.base, bytes.clone(), log, "referral").await;
    assert!(!first.duplicate());
    assert_eq!(first.header("x-kadgate-status"), Some("accepted"));
    let resp = assert_response(&srv.base, &first, &request, "ok").await;
    if let Some(oo) = outcome_of(&resp) {
        let severe: Vec<_> = oo["issue"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["severity"] == "error" || i["severity"] == "fatal")
            .collect();
        assert!(severe.is_empty(), "ok with errors: {severe:?}");
    }

    let again = post_fhir(&srv.base, bytes.clone(), log, "referral-resent").await;
    assert_eq!(again.status, 200);
    assert!(again.duplicate(), "a resend is a duplicate");
    assert_eq!(again.message_id(), first.message_id());
    assert_eq!(again.header("x-kadgate-status"), Some("accepted"));
    assert!(
        again.body == first.body,
        "the stored response, byte for byte"
    );
    assert_eq!(stored_count(&srv.base).await, 1);
    srv.stop().await;

    let srv = TestServer::start(test_config(dir.path())).await;
    let after = post_fhir(&srv.base, bytes, log, "referral-after-restart").await;
    assert_eq!(after.status, 200);
    assert!(after.duplicate(), "still a duplicate after a restart");
    assert_eq!(after.message_id(), first.message_id());
    assert!(after.body == first.body, "byte for byte after a restart");
    assert_eq!(stored_count(&srv.base).await, 1);
    let (summary, _) = stored(&srv.base, first.message_id()).await;
    assert_eq!(summary["duplicate_count"], 2, "{summary}");
    assert_eq!(summary["format"], "fhir-r4");
    assert_eq!(
        summary["msg_id"],
        header_of(&request)["id"],
        "stored under the MessageHeader.id"
    );
    srv.stop().await;
}

/// The same MessageHeader.id with other content → fatal-error `fhir.message-id-reused`, stored on
/// its own; a new id → a new message, ok.
async fn reused_and_new_ids(log: &Answers) {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let request = read_json(REFERRAL);
    let first = post_fhir(&srv.base, read_bytes(REFERRAL), log, "referral").await;
    assert_response(&srv.base, &first, &request, "ok").await;

    let mut changed = request.clone();
    changed["entry"][1]["resource"]["note"][0]["text"] = json!("Endret syntetisk testhenvisning.");
    let reused = post_fhir(&srv.base, bytes_of(&changed), log, "referral-id-reused").await;
    let v = assert_response(&srv.base, &reused, &changed, "fatal-error").await;
    assert!(!reused.duplicate());
    assert_ne!(reused.message_id(), first.message_id(), "stored on its own");
    assert_eq!(reused.header("x-kadgate-status"), Some("rejected"));
    let oo = outcome_of(&v).expect("an OperationOutcome");
    assert!(
        issues(oo).contains(&(
            codes::FHIR_MESSAGE_ID_REUSED.to_string(),
            "Bundle.entry[0].resource.id".to_string()
        )),
        "{oo}"
    );
    assert_eq!(stored_count(&srv.base).await, 2);

    // The original is untouched: a resend still gets its ok response.
    let resend = post_fhir(&srv.base, read_bytes(REFERRAL), log, "referral-resent").await;
    assert!(resend.duplicate());
    assert!(resend.body == first.body);

    let fresh = with_new_id(&request, 1);
    let new = post_fhir(&srv.base, bytes_of(&fresh), log, "referral-new-id").await;
    assert_response(&srv.base, &new, &fresh, "ok").await;
    assert!(!new.duplicate());
    assert_ne!(new.message_id(), first.message_id());
    assert_ne!(new.message_id(), reused.message_id());
    assert_eq!(stored_count(&srv.base).await, 3);
    srv.stop().await;
}

/// `(code, path, constraint key)` the first issue of a VALIDATION.md row stands for.
fn expected_finding(issue: &str) -> (&'static str, String, Option<String>) {
    let at = issue
        .rsplit_once(" at `")
        .map(|(_, p)| p.trim_end_matches('`').to_string())
        .unwrap_or_default();
    if issue.contains("not JSON") {
        return (codes::JSON_NOT_WELL_FORMED, String::new(), None);
    }
    if issue.contains("Missing required property") {
        return (codes::FHIR_REQUIRED, at, None);
    }
    if let Some(rest) = issue.split("Constraint ").nth(1) {
        let key = rest.split_whitespace().next().map(str::to_string);
        return (codes::FHIR_INVARIANT, at, key);
    }
    panic!("no expectation for the issue `{issue}`");
}

/// The `examples/own/broken-*` rows of VALIDATION.md: (file, verdict, first issue).
fn broken_rows() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(fhir_file("examples/VALIDATION.md")).unwrap();
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            if cells.len() < 4 {
                return None;
            }
            let file = cells[2].trim_matches('`');
            file.starts_with("examples/own/broken-")
                .then(|| (file.to_string(), cells[1].to_string(), cells[3].to_string()))
        })
        .collect()
}

/// Every request-side broken example: fatal-error, 400 or 422, with the finding VALIDATION.md names at
/// the place it names. Each file on a fresh server, so no id is known from another file.
async fn broken_examples(log: &Answers) {
    let rows = broken_rows();
    assert!(rows.len() >= 5, "broken examples listed: {rows:?}");
    let mut checked = 0;
    for (file, verdict, issue) in rows {
        let request = read_json_lenient(&file);
        if request.as_ref().is_some_and(is_response_message) {
            // A response is never answered with a response: see `invalid_incoming_responses`.
            continue;
        }
        assert_eq!(verdict, "INVALID", "{file}");
        let (code, path, key) = expected_finding(&issue);
        let dir = tempfile::tempdir().unwrap();
        let srv = TestServer::start(test_config(dir.path())).await;
        let label = file.rsplit('/').next().unwrap().trim_end_matches(".json");
        let a = post_fhir(&srv.base, read_bytes(&file), log, label).await;
        let v = a.json();
        let oo = match a.status {
            400 => {
                assert_eq!(a.header("x-kadgate-status"), Some("unreadable"), "{file}");
                v.clone()
            }
            // A message without a MessageHeader.id: no response message can quote it.
            422 => {
                assert_eq!(a.header("x-kadgate-status"), Some("rejected"), "{file}");
                assert_eq!(v["resourceType"], "OperationOutcome", "{file}");
                v.clone()
            }
            200 => {
                let req = request.as_ref().expect("a 200 answers a readable request");
                let code_of = header_of(&v)["response"]["code"].clone();
                assert_eq!(code_of, "fatal-error", "{file}: {v}");
                if header_of(req)["resourceType"] == "MessageHeader" {
                    assert_response(&srv.base, &a, req, "fatal-error").await;
                }
                outcome_of(&v).expect("an OperationOutcome").clone()
            }
            s => panic!("{file}: HTTP {s}"),
        };
        let found = oo["issue"].as_array().unwrap().iter().any(|i| {
            i["details"]["coding"][0]["code"] == code
                && (path.is_empty() || i["expression"][0] == path.as_str())
                && key.as_ref().is_none_or(|k| {
                    i["diagnostics"]
                        .as_str()
                        .is_some_and(|d| d.contains(k.as_str()))
                })
        });
        assert!(
            found,
            "{file}: expected {code} at `{path}` ({key:?}) in {oo}"
        );
        let sev = oo["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["severity"] == "error" || i["severity"] == "fatal");
        assert!(sev, "{file}: an error issue");
        // Stored, under the id the answer names.
        let (summary, _) = stored(&srv.base, a.message_id()).await;
        assert_eq!(summary["status"].as_str(), a.header("x-kadgate-status"));
        assert_eq!(stored_count(&srv.base).await, 1, "{file}");
        srv.stop().await;
        checked += 1;
    }
    assert!(
        checked >= 5,
        "request-side broken examples checked: {checked}"
    );
}

fn read_json_lenient(rel: &str) -> Option<Value> {
    serde_json::from_slice(&read_bytes(rel)).ok()
}

fn is_response_message(v: &Value) -> bool {
    v["type"] == "message" && header_of(v)["response"].is_object()
}

/// Transport problems: an OperationOutcome with a `transport.*` code, nothing stored.
async fn transport_problems(log: &Answers) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.server.max_body_bytes = 64 * 1024;
    let srv = TestServer::start(cfg).await;
    // Something is stored already, so "nothing more" is not "nothing at all".
    let first = post_fhir(&srv.base, read_bytes(REFERRAL), log, "referral").await;
    assert_eq!(first.status, 200);
    let before = stored_count(&srv.base).await;
    assert_eq!(before, 1);

    let referral = read_bytes(REFERRAL);
    let mut big = read_json(REFERRAL);
    big["entry"][1]["resource"]["note"][0]["text"] = json!("x".repeat(100 * 1024));
    let cases = [
        (
            "empty",
            Some(FHIR_JSON),
            Vec::new(),
            400,
            "transport.empty-body",
        ),
        (
            "whitespace",
            Some(FHIR_JSON),
            b" \r\n\t ".to_vec(),
            400,
            "transport.empty-body",
        ),
        (
            "xml-content-type",
            Some("application/xml"),
            referral.clone(),
            415,
            "transport.content-type",
        ),
        (
            "text-content-type",
            Some("text/plain"),
            referral.clone(),
            415,
            "transport.content-type",
        ),
        (
            "no-content-type",
            None,
            referral,
            415,
            "transport.content-type",
        ),
        (
            "too-large",
            Some(FHIR_JSON),
            bytes_of(&big),
            413,
            "transport.too-large",
        ),
    ];
    for (label, ct, body, status, code) in cases {
        let a = post(&srv.base, ct, body, log, label).await;
        assert_eq!(a.status, status, "{label}");
        assert!(
            a.header("x-kadgate-message-id").is_none(),
            "{label}: nothing stored, no message id"
        );
        let oo = a.json();
        assert_eq!(codes_in(&oo), vec![code.to_string()], "{label}: {oo}");
        assert_eq!(oo["issue"][0]["severity"], "error", "{label}");
        assert_eq!(
            stored_count(&srv.base).await,
            before,
            "{label}: nothing stored"
        );
    }
    srv.stop().await;
}

/// A body that is no message Bundle → 400 with an OperationOutcome, stored as `unreadable`.
async fn not_a_message(log: &Answers) {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let patient = read_json(REFERRAL)["entry"][2]["resource"].clone();
    assert_eq!(patient["resourceType"], "Patient");
    let searchset = json!({"resourceType": "Bundle", "type": "searchset", "total": 0});
    let no_content = json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "async", "valueBoolean": false}]
    });
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("patient", bytes_of(&patient), codes::FHIR_NOT_A_MESSAGE),
        ("searchset", bytes_of(&searchset), codes::FHIR_NOT_A_MESSAGE),
        (
            "parameters-without-content",
            bytes_of(&no_content),
            codes::FHIR_NOT_A_MESSAGE,
        ),
        ("json-array", b"[1, 2]".to_vec(), codes::FHIR_NOT_A_MESSAGE),
        (
            "not-json",
            b"<Bundle xmlns=\"http://hl7.org/fhir\"/>".to_vec(),
            codes::JSON_NOT_WELL_FORMED,
        ),
    ];
    for (n, (label, body, code)) in cases.into_iter().enumerate() {
        let a = post_fhir(&srv.base, body, log, label).await;
        assert_eq!(a.status, 400, "{label}");
        assert_eq!(a.header("x-kadgate-status"), Some("unreadable"), "{label}");
        assert!(!a.duplicate());
        let oo = a.json();
        assert!(
            codes_in(&oo).iter().any(|c| c == code),
            "{label}: {code} in {oo}"
        );
        let (summary, findings) = stored(&srv.base, a.message_id()).await;
        assert_eq!(summary["status"], "unreadable", "{label}");
        assert_eq!(
            findings.len(),
            oo["issue"].as_array().unwrap().len(),
            "{label}: every finding listed"
        );
        assert_eq!(stored_count(&srv.base).await, n + 1, "{label}");
    }
    srv.stop().await;
}

/// The message inside a Parameters resource (`content`) is processed like the Bundle itself.
async fn parameters_wrapper(log: &Answers) {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let msg = with_new_id(&read_json(REFERRAL), 2);
    let params = parameters_of(&msg);
    let a = post_fhir(&srv.base, bytes_of(&params), log, "parameters").await;
    assert_response(&srv.base, &a, &msg, "ok").await;
    assert_eq!(a.header("x-kadgate-status"), Some("accepted"));
    let again = post_fhir(&srv.base, bytes_of(&params), log, "parameters-resent").await;
    assert!(again.duplicate(), "a resend is a duplicate");
    assert!(again.body == a.body, "the stored response, byte for byte");
    let (summary, _) = stored(&srv.base, a.message_id()).await;
    assert_eq!(summary["msg_id"], header_of(&msg)["id"]);
    assert_eq!(summary["msg_type"], header_of(&msg)["eventCoding"]["code"]);

    // A broken message inside Parameters is answered fatal-error like the bare Bundle.
    let broken = referral_without_status(3);
    let b = post_fhir(
        &srv.base,
        bytes_of(&parameters_of(&broken)),
        log,
        "parameters-broken",
    )
    .await;
    let v = assert_response(&srv.base, &b, &broken, "fatal-error").await;
    let listed = codes_in(outcome_of(&v).unwrap());
    assert!(
        listed.iter().any(|c| c == codes::FHIR_REQUIRED),
        "{listed:?}"
    );
    assert_eq!(stored_count(&srv.base).await, 2);
    srv.stop().await;
}

/// `$process-message` input: the message as parameter `content`.
fn parameters_of(msg: &Value) -> Value {
    json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "content", "resource": msg}]
    })
}

/// The referral under a new id, without `ServiceRequest.status` (a required element).
fn referral_without_status(seq: u32) -> Value {
    let mut m = with_new_id(&read_json(REFERRAL), seq);
    if let Some(sr) = m["entry"][1]["resource"].as_object_mut() {
        sr.remove("status");
    }
    m
}

/// The benchmark's message (`fixtures/load/`): ok without a single finding, also under new ids.
async fn load_fixture(log: &Answers) {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let request: Value = serde_json::from_slice(&std::fs::read(load_fixture_path()).unwrap())
        .expect("the load fixture is JSON");
    for seq in 0..2 {
        let msg = if seq == 0 {
            request.clone()
        } else {
            with_new_id(&request, 100 + seq)
        };
        let a = post_fhir(&srv.base, serde_json::to_vec(&msg).unwrap(), log, "load").await;
        let v = assert_response(&srv.base, &a, &msg, "ok").await;
        assert!(outcome_of(&v).is_none(), "no finding at all: {v}");
    }
    srv.stop().await;
}

fn load_fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/load/fhir-referral-10k.json")
}

/// An incoming response message is recorded (`receipt`) and answered with an informational
/// OperationOutcome; a resend is a duplicate.
async fn incoming_response(log: &Answers) {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    for (n, rel) in [RESPONSE_OK, RESPONSE_FATAL].into_iter().enumerate() {
        let label = rel.rsplit('/').next().unwrap().trim_end_matches(".json");
        let a = post_fhir(&srv.base, read_bytes(rel), log, label).await;
        assert_eq!(a.status, 200, "{rel}");
        assert_eq!(a.header("x-kadgate-status"), Some("receipt"), "{rel}");
        assert!(!a.duplicate());
        let oo = a.json();
        assert_eq!(oo["resourceType"], "OperationOutcome", "{rel}: {oo}");
        assert!(
            oo["issue"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["severity"] == "information"),
            "{rel}: informational only: {oo}"
        );
        let (summary, _) = stored(&srv.base, a.message_id()).await;
        assert_eq!(summary["status"], "receipt", "{rel}");
        assert_eq!(
            summary["receipt_count"], 0,
            "{rel}: a response is never answered"
        );
        assert_eq!(summary["msg_id"], header_of(&read_json(rel))["id"], "{rel}");
        assert_eq!(stored_count(&srv.base).await, n + 1);
        let again = post_fhir(&srv.base, read_bytes(rel), log, label).await;
        assert!(again.duplicate(), "{rel}: resent");
        assert_eq!(again.message_id(), a.message_id());
        assert!(again.body == a.body, "{rel}: the same answer");
        assert_eq!(stored_count(&srv.base).await, n + 1);
    }
    srv.stop().await;
}

/// `GET /fhir/metadata`: a CapabilityStatement for this endpoint, valid by kadgate's own validator.
async fn metadata(log: &Answers) {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let r = client()
        .get(format!("{}/fhir/metadata", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], FHIR_JSON);
    let body = r.bytes().await.unwrap().to_vec();
    log.keep("metadata", &body);
    let cs: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let messaging = &cs["messaging"][0];
    let host = srv.base.trim_start_matches("http://");
    assert_eq!(
        messaging["endpoint"][0]["address"],
        format!("http://{host}/fhir/$process-message")
    );
    assert!(messaging["reliableCache"].as_u64().is_some_and(|m| m > 0));
    let event = header_of(&read_json(REFERRAL))["eventCoding"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        messaging["supportedMessage"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mode"] == "receiver"
                && m["definition"]
                    .as_str()
                    .is_some_and(|d| d.ends_with(&event))),
        "the referral event is supported: {messaging}"
    );
    assert!(cs["rest"][0]["operation"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == "process-message"));
    let errors = own_errors(&cs);
    assert!(errors.is_empty(), "{errors:?}");
    srv.stop().await;
}

// ---------------------------------------------------------------- tests

/// One test per scenario: `test name => scenario`, attributes (an `ignore`) in front.
macro_rules! scenario_tests {
    ($($(#[$attr:meta])* $name:ident => $scenario:ident;)*) => {$(
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            $scenario(&Answers::default()).await;
        }
    )*};
}

scenario_tests! {
    referral_ok_then_duplicate_then_durable_across_restart => referral_duplicate_and_restart;
    reused_message_id_is_fatal_error_and_new_id_is_new_message => reused_and_new_ids;
    broken_examples_get_fatal_error_or_400_with_the_expected_finding => broken_examples;
    transport_problems_answer_an_operation_outcome_and_store_nothing => transport_problems;
    a_body_that_is_no_message_is_400_and_stored_unreadable => not_a_message;
    parameters_with_content_is_accepted => parameters_wrapper;
    incoming_response_is_recorded_and_answered_informational => incoming_response;
    metadata_is_a_capability_statement => metadata;
    load_fixture_is_answered_ok_without_findings => load_fixture;
}

/// A response message with errors (a code outside the required value set `response-code`, a DSTU2
/// message) must not be acknowledged as if all were well: the answer lists the errors.
#[tokio::test]
async fn invalid_incoming_responses_are_not_acknowledged_as_fine() {
    let log = Answers::default();
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let stricter = "examples/own/broken-response-code-not-in-valueset.json";
    let dstu2 = "examples/hl7-dstu2/Bundle-3a0707d3-549e-4467-b8b8-5a2ab3800efe.json";
    let cases = [
        (
            stricter,
            codes::FHIR_CODE_NOT_IN_VALUESET,
            "Bundle.entry[0].resource.response.code",
        ),
        (
            dstu2,
            codes::FHIR_REQUIRED,
            "Bundle.entry[0].resource.event[x]",
        ),
    ];
    for (rel, code, path) in cases {
        assert!(is_response_message(&read_json(rel)), "{rel}");
        let a = post_fhir(&srv.base, read_bytes(rel), &log, rel).await;
        let oo = a.json();
        let listed = issues(outcome_of(&oo).expect("an OperationOutcome"));
        assert!(
            listed.contains(&(code.to_string(), path.to_string())),
            "{rel}: HTTP {}, expected {code} at `{path}` in {oo}",
            a.status
        );
    }
    srv.stop().await;
}

/// Everything kadgate answered in all scenarios, plus the CapabilityStatement, through the
/// independent oracle in one batch: every body valid FHIR R4.
#[tokio::test]
async fn every_answer_passes_the_oracle() {
    let log = Answers::default();
    referral_duplicate_and_restart(&log).await;
    reused_and_new_ids(&log).await;
    broken_examples(&log).await;
    transport_problems(&log).await;
    not_a_message(&log).await;
    parameters_answers(&log).await;
    incoming_response(&log).await;
    metadata(&log).await;
    load_fixture(&log).await;
    let answers = log.0.into_inner().unwrap();
    assert!(answers.len() >= 25, "answers collected: {}", answers.len());
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (n, (label, body)) in answers.iter().enumerate() {
        let f = dir.path().join(format!("{n:03}-{label}.json"));
        std::fs::write(&f, body).unwrap();
        files.push(f);
    }
    files.push(load_fixture_path());
    let verdicts = oracle(&files);
    let invalid: Vec<&Value> = verdicts.iter().filter(|v| v["valid"] != true).collect();
    assert!(
        invalid.is_empty(),
        "{} of {} answers invalid by the oracle: {invalid:#?}",
        invalid.len(),
        files.len()
    );
}

/// The Parameters requests of [`parameters_wrapper`], posted without judging the answers.
async fn parameters_answers(log: &Answers) {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let ok = parameters_of(&with_new_id(&read_json(REFERRAL), 2));
    let broken = parameters_of(&referral_without_status(3));
    for (label, body) in [("parameters", ok), ("parameters-broken", broken)] {
        let a = post_fhir(&srv.base, bytes_of(&body), log, label).await;
        assert_eq!(a.status, 200, "{label}");
    }
    srv.stop().await;
}

/// The stored referral, read from the store after the server stopped, is a model that encodes as
/// schema-valid KITH Henvisning 1.1 and 2.0, and the patient's national id and the diagnosis codes
/// survive into the XML.
#[tokio::test]
async fn stored_referral_reads_back_as_kith_henvisning() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let sqlite = cfg.sqlite_path();
    let srv = TestServer::start(cfg).await;
    let a = post_fhir(
        &srv.base,
        read_bytes(REFERRAL),
        &Answers::default(),
        "referral",
    )
    .await;
    assert_eq!(a.status, 200);
    let id = a.message_id();
    srv.stop().await;

    let store = SqliteStore::open(&sqlite, SqliteOptions::default()).unwrap();
    let m = store.get(id).await.unwrap().expect("the stored referral");
    store.close().await.unwrap();
    // The stored header is the decoded one; the model is derived from the stored raw bytes.
    let header: Header =
        serde_json::from_str(m.header_json.as_deref().expect("header_json")).unwrap();
    let rules = kadgate::check::Rules::from_config(&kadgate::config::Config::demo());
    let (msg, _) = kadgate::convert::read_message(&m.raw, &rules).expect("the raw bytes decode");
    assert!(matches!(msg.body, Body::Referral(_)), "a referral body");
    assert_eq!(msg.header, header, "the stored header is the decoded one");

    // What must survive, read from the fixture.
    let fixture = read_json(REFERRAL);
    let entries = fixture["entry"].as_array().unwrap();
    let fnr = entries
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Patient")
        .flat_map(|e| e["resource"]["identifier"].as_array().unwrap().iter())
        .find(|i| i["system"] == FNR_SYSTEM)
        .and_then(|i| i["value"].as_str())
        .expect("the fixture's patient has a national id")
        .to_string();
    let diagnoses: Vec<String> = entries
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Condition")
        .flat_map(|e| e["resource"]["code"]["coding"].as_array().unwrap().iter())
        .filter_map(|c| c["code"].as_str().map(str::to_string))
        .collect();
    assert!(!diagnoses.is_empty(), "the fixture has diagnoses");

    let schemas = kadgate::xsd::SchemaSet::load(&standards().join("kith")).unwrap();
    for format in [Format::Henvisning20, Format::Henvisning11] {
        let xml = kadgate::kith::encode::encode(&msg, format)
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        let report = schemas.validate(&xml);
        assert!(
            report.schema_valid(),
            "{format:?} not schema-valid: {:#?}",
            report.findings
        );
        let back = decode_kith(&xml);
        let patient = back.patient().expect("a patient");
        assert!(
            patient
                .idents
                .iter()
                .any(|i| i.id == fnr && i.kind == "FNR"),
            "{format:?}: the national id survives as FNR"
        );
        let Body::Referral(r) = &back.body else {
            panic!("{format:?}: decoded as a referral")
        };
        for code in &diagnoses {
            assert!(
                r.diagnoses.iter().any(|d| &d.code.code == code),
                "{format:?}: diagnosis {code} survives: {:?}",
                r.diagnoses
            );
        }
    }
}

/// Decode KITH XML with kadgate's own reader.
fn decode_kith(xml: &[u8]) -> Message {
    use kadgate::kith::detect::{detect, Detection};
    let doc = kadgate::xml::scan(xml, &kadgate::xml::Limits::default()).expect("readable XML");
    match detect(&doc.root) {
        Detection::Known(d) => kadgate::kith::decode::decode(&d).message,
        _ => panic!("not recognised as KITH"),
    }
}

/// A resend is recognised by its content, not its formatting: the same message re-serialised
/// compactly, or wrapped in Parameters, is a duplicate and gets the first answer byte for byte.
#[tokio::test]
async fn a_reformatted_or_wrapped_resend_is_a_duplicate() {
    let log = Answers::default();
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let msg = with_new_id(&read_json("examples/own/kad-referral-message.json"), 0xfeed);
    let first = post_fhir(&srv.base, bytes_of(&msg), &log, "resend-first").await;
    assert_eq!(first.status, 200);
    assert_eq!(header_of(&first.json())["response"]["code"], "ok");
    let compact = post_fhir(
        &srv.base,
        serde_json::to_vec(&msg).unwrap(),
        &log,
        "resend-compact",
    )
    .await;
    let wrapped = post_fhir(
        &srv.base,
        bytes_of(&parameters_of(&msg)),
        &log,
        "resend-wrapped",
    )
    .await;
    for again in [&compact, &wrapped] {
        assert_eq!(
            again.header("x-kadgate-duplicate"),
            Some("true"),
            "{}",
            again.label
        );
        assert_eq!(
            again.body, first.body,
            "{}: the first answer, byte for byte",
            again.label
        );
    }
    assert_eq!(stored_count(&srv.base).await, 1);
    srv.stop().await;
}
