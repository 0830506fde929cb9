//! The HTTP path with a real server on loopback, a real SQLite file, restarts and duplicates.

mod common;

use common::*;

const BASELINE: &str =
    "henvisning/examples/sarepta-akseptansetest/TestcaseHenvisningMottak/Case1.xml";

#[tokio::test]
async fn post_restart_and_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let msg = std::fs::read(kith(BASELINE)).unwrap();

    let srv = TestServer::start(test_config(dir.path())).await;
    let r1 = post_xml(&srv.base, msg.clone()).await;
    assert_eq!(r1.status(), 200);
    let id = r1.headers()["x-kadgate-message-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(r1.headers()["x-kadgate-duplicate"], "false");
    let apprec1 = r1.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&apprec1);
    assert!(text.contains("<Status V=\"1\""), "{text}");
    assert!(
        text.contains("<Id>cef6ac80-5f27-11df-a08a-0800200c9a66</Id>\n  </OriginalMsgId>"),
        "{text}"
    );

    // The same message again: not processed again, byte-identical AppRec.
    let r2 = post_xml(&srv.base, msg.clone()).await;
    assert_eq!(r2.status(), 200);
    assert_eq!(r2.headers()["x-kadgate-duplicate"], "true");
    assert_eq!(r2.headers()["x-kadgate-message-id"].to_str().unwrap(), id);
    assert_eq!(r2.bytes().await.unwrap(), apprec1);
    srv.stop().await;

    // Restart on the same data directory: the message is still there, still a duplicate.
    let srv = TestServer::start(test_config(dir.path())).await;
    let got = client()
        .get(format!("{}/api/messages/{id}", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let r3 = post_xml(&srv.base, msg).await;
    assert_eq!(r3.headers()["x-kadgate-duplicate"], "true");
    assert_eq!(r3.bytes().await.unwrap(), apprec1);
    let list = common::get_json(&srv.base, "/api/messages").await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "one stored message: {list}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn transport_problems_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.server.max_body_bytes = 64 * 1024;
    let srv = TestServer::start(cfg).await;
    let c = client();
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (
            Some("application/xml"),
            Vec::new(),
            400,
            "transport.empty-body",
        ),
        (
            Some("application/json"),
            b"<a/>".to_vec(),
            415,
            "transport.content-type",
        ),
        (None, b"<a/>".to_vec(), 415, "transport.content-type"),
        (
            Some("application/xml"),
            vec![b' '; 100 * 1024],
            413,
            "transport.too-large",
        ),
    ];
    for (ct, body, status, code) in cases {
        let mut req = c.post(format!("{}/kith", srv.base)).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{code}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: serde_json::Value = r.json().await.unwrap();
        assert_eq!(p["code"], code);
    }
    let list: serde_json::Value = c
        .get(format!("{}/api/messages", srv.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing stored: {list}");
    srv.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let c = client();
    assert_eq!(
        c.get(format!("{}/healthz", srv.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = c.get(format!("{}/readyz", srv.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["ready"], true);
    srv.stop().await;
}

#[tokio::test]
async fn not_addressed_to_us_is_stored_and_answered_202() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let msg = std::fs::read(kith(BASELINE)).unwrap();
    // Readdress the referral to an organisation number nobody here serves.
    let other = String::from_utf8(msg)
        .unwrap()
        .replace("974744570", "999999999");
    let r = post_xml(&srv.base, other.into_bytes()).await;
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "not-addressed");
    assert!(v["message_id"].as_i64().is_some());
    srv.stop().await;
}

/// Every shared example goes through the HTTP path; the HTTP answer agrees with `validate`'s verdict.
#[tokio::test]
async fn every_example_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let cfg = kadgate::config::Config::demo();
    let rules = kadgate::check::Rules::from_config(&cfg);
    let schemas = kadgate::xsd::SchemaSet::load(&standards().join("kith")).unwrap();
    let checker = kadgate::check::Checker {
        rules: &rules,
        schemas: Some(&schemas),
        mode: kadgate::check::Mode::Serve,
    };
    let mut problems = Vec::new();
    let files = all_examples();
    assert!(files.len() > 200, "examples found: {}", files.len());
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let outcome = checker.check(&bytes);
        let r = post_xml(&srv.base, bytes).await;
        let status = r.status().as_u16();
        if r.headers()["x-kadgate-duplicate"] == "true" {
            // The acceptance sets reuse MsgIds between cases: a resend is answered with the first
            // copy's receipt, by design.
            continue;
        }
        let want = match (outcome.receipts.len(), outcome.disposition) {
            (n, _) if n > 0 => 200,
            (_, kadgate::check::Disposition::NotAddressed) => 202,
            (_, kadgate::check::Disposition::IncomingReceipt) => 200,
            _ => 422,
        };
        if status != want {
            problems.push(format!("{}: HTTP {status}, expected {want}", f.display()));
        }
        if status == 200 && outcome.receipts.len() == 1 {
            let body = r.bytes().await.unwrap();
            let rep = schemas.validate(&body);
            if !rep.schema_valid() {
                problems.push(format!(
                    "{}: our AppRec is not schema-valid: {:?}",
                    f.display(),
                    rep.findings
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    srv.stop().await;
}

#[tokio::test]
async fn drop_folder_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(test_config(dir.path())).await;
    let drop = dir.path().join("drop");
    let tmp = drop.join("inbox").join(".incoming.tmp");
    std::fs::write(&tmp, std::fs::read(kith(BASELINE)).unwrap()).unwrap();
    std::fs::rename(&tmp, drop.join("inbox").join("case1.xml")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if drop.join("processed").join("case1.xml").exists() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "file not processed in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let outgoing: Vec<_> = std::fs::read_dir(drop.join("outgoing"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(outgoing.len(), 1, "one AppRec written");
    let apprec = std::fs::read_to_string(outgoing[0].path()).unwrap();
    assert!(apprec.contains("<AppRec"));
    srv.stop().await;
}
