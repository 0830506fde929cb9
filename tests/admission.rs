//! End to end: a referral posted to kadgate is decided, answered to the referrer with a business
//! reply, routed by municipality to the right one of several KAD units, and delivered to a real
//! "unit system" that acknowledges it — through destinations that fail in every way a network
//! can. The unit systems are a second kadgate instance (which checks each message for real and
//! answers with a real AppRec / FHIR response, and deduplicates on the message id), behind a
//! proxy that injects failures: 5xx answers, dropped connections, answers slower than the
//! timeout, refusals, and being down for a while.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, get_json, post_fhir, TestServer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "test-operator-token";

fn repo(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

// ---------------------------------------------------------------------------------------------
// A proxy in front of the unit systems that fails on demand.

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Answer with this status, without forwarding.
    Status(u16),
    /// Read the request head, then close the connection.
    Drop,
    /// Forward (the unit processes it), but answer only after this long.
    Slow(Duration),
}

struct Proxy {
    faults: Arc<Mutex<VecDeque<Fault>>>,
    requests: Arc<AtomicUsize>,
}

impl Proxy {
    fn fail_next(&self, faults: &[Fault]) {
        self.faults.lock().unwrap().extend(faults.iter().copied());
    }
}

async fn serve_proxy(listener: TcpListener, upstream: String, proxy: &Proxy) {
    let faults = proxy.faults.clone();
    let requests = proxy.requests.clone();
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let fault = faults.lock().unwrap().pop_front();
            requests.fetch_add(1, Ordering::SeqCst);
            let http = http.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let _ = handle(sock, fault, &http, &upstream).await;
            });
        }
    });
}

async fn handle(
    mut sock: TcpStream,
    fault: Option<Fault>,
    http: &reqwest::Client,
    upstream: &str,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    if let Some(Fault::Drop) = fault {
        return Ok(()); // the socket closes mid-request
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let mut len = 0usize;
    let mut content_type = "application/octet-stream".to_owned();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "content-type" => content_type = v.trim().to_owned(),
                _ => {}
            }
        }
    }
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    let (status, ctype, answer) = match fault {
        Some(Fault::Status(s)) => (s, "text/plain".to_owned(), b"injected".to_vec()),
        _ => {
            let r = http
                .post(format!("{upstream}{path}"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .map_err(std::io::Error::other)?;
            let status = r.status().as_u16();
            let ctype = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned();
            (
                status,
                ctype,
                r.bytes().await.map_err(std::io::Error::other)?.to_vec(),
            )
        }
    };
    if let Some(Fault::Slow(d)) = fault {
        tokio::time::sleep(d).await;
    }
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(&answer).await?;
    sock.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// The world: kadgate, the unit systems (a second kadgate) and the proxy between them.

struct World {
    gw: TestServer,
    unit: TestServer,
    proxy: Proxy,
    proxy_port: u16,
    _dirs: Vec<tempfile::TempDir>,
}

/// The organisations the unit-side systems answer for: the three KAD units and the referrer.
const UNIT_SIDE_ORGS: &str = r#"
[[organisations]]
name = "Fjordvik kommune"
idents = ["HER:990060", "ENH:990001014"]
units = [{ name = "Fjordvik og Bergli KAD", idents = ["HER:990003"] }]

[[organisations]]
name = "Åsdal kommune"
idents = ["HER:990061", "ENH:990001022"]
units = [{ name = "Åsdal KAD", idents = ["HER:990004"] }]
"#;

fn registry(port: u16) -> String {
    let fhir = format!("http://127.0.0.1:{port}/fhir/$process-message");
    let kith = format!("http://127.0.0.1:{port}/kith");
    format!(
        r#"
[[kad_units]]
her_id = "990002"
name = "Testbyen KAD"
org_enh = "990001006"
municipality = "0301"
municipalities = ["0301", "3299"]
beds = 12
alternative = "990004"
formats = ["fhir-r4"]
endpoint = {{ url = "{fhir}", timeout_ms = 400 }}

[[kad_units]]
her_id = "990003"
name = "Fjordvik og Bergli KAD"
org_name = "Fjordvik kommune"
org_her_id = "990060"
org_enh = "990001014"
municipality = "3298"
municipalities = ["3298", "3297"]
beds = 8
formats = ["henvisning20"]
endpoint = {{ url = "{kith}", timeout_ms = 400 }}

[[kad_units]]
her_id = "990004"
name = "Åsdal KAD"
org_name = "Åsdal kommune"
org_her_id = "990061"
org_enh = "990001022"
municipality = "3296"
municipalities = ["3296"]
beds = 3
formats = ["henvisning11"]
endpoint = {{ url = "{kith}", timeout_ms = 400 }}

[[parties]]
her_id = "990001"
kind = "gp-office"
name = "Testbyen legekontor"
org_enh = "990003009"
municipality = "0301"
formats = ["fhir-r4", "dialogmelding11"]
endpoint = {{ url = "{fhir}", timeout_ms = 400 }}

[postcodes]
"6800" = "3298"
"#
    )
}

async fn world(proxy_up: bool) -> World {
    world_on(proxy_up, None, UNIT_SIDE_ORGS).await
}

/// With `pg`, the gateway keeps its store (messages, decisions, outbox, leases) in PostgreSQL;
/// `unit_orgs` are the organisations the unit-side systems answer for.
async fn world_on(proxy_up: bool, pg: Option<&common::pg::PgDb>, unit_orgs: &str) -> World {
    let unit_dir = tempfile::tempdir().unwrap();
    let mut unit_cfg = common::test_config(unit_dir.path());
    unit_cfg.admission.enabled = false;
    unit_cfg.delivery.enabled = false;
    let extra = kadgate::config::parse(unit_orgs, "unit-side organisations", None).unwrap();
    unit_cfg.organisations.extend(extra.organisations);
    let unit = TestServer::start(unit_cfg).await;

    // Reserve the proxy's port; when the proxy starts "down", nothing listens there yet.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let proxy = Proxy {
        faults: Default::default(),
        requests: Default::default(),
    };
    if proxy_up {
        serve_proxy(listener, unit.base.clone(), &proxy).await;
    } else {
        drop(listener);
    }

    let gw_dir = tempfile::tempdir().unwrap();
    let reg = gw_dir.path().join("registry.toml");
    std::fs::write(&reg, registry(proxy_port)).unwrap();
    let mut cfg = common::test_config(&gw_dir.path().join("data"));
    cfg.admission.enabled = true;
    cfg.admission.ruleset = repo("fixtures/rules/national-default.toml");
    cfg.admission.registry = reg;
    cfg.api.operator_token = Some(TOKEN.into());
    if let Some(db) = pg {
        cfg.store.kind = "postgres".into();
        cfg.store.url = Some(db.url.clone());
    }
    cfg.delivery.poll_ms = 50;
    cfg.delivery.retry.backoff.base = Duration::from_millis(50);
    cfg.delivery.retry.backoff.cap = Duration::from_millis(400);
    cfg.delivery.breaker.failure_threshold = 3;
    cfg.delivery.breaker.cool_down = Duration::from_millis(300);
    let gw = TestServer::start(cfg).await;
    World {
        gw,
        unit,
        proxy,
        proxy_port,
        _dirs: vec![unit_dir, gw_dir],
    }
}

impl World {
    async fn start_proxy_now(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.proxy_port))
            .await
            .unwrap();
        serve_proxy(listener, self.unit.base.clone(), &self.proxy).await;
    }

    async fn stop(self) {
        self.gw.stop().await;
        self.unit.stop().await;
    }

    async fn api(&self, path: &str) -> Value {
        let r = client()
            .get(format!("{}{path}", self.gw.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// The referral's record once every outbox row has reached a final state.
    async fn settled(&self, id: i64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.api(&format!("/api/referrals/{id}")).await;
            let rows = v["outbox"].as_array().cloned().unwrap_or_default();
            if !rows.is_empty()
                && rows
                    .iter()
                    .all(|r| ["acked", "nacked", "dead"].contains(&r["state"].as_str().unwrap()))
            {
                return v;
            }
            assert!(Instant::now() < deadline, "not settled in time: {v:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many times the unit-side systems stored a message with this id (1 = exactly once:
    /// resends are answered from the first copy), and its stored status.
    async fn at_unit(&self, msg_id: &str) -> (usize, i64, String) {
        let list = get_json(&self.unit.base, "/api/messages?limit=500").await;
        let list = list.as_array().cloned().unwrap_or_default();
        let hits: Vec<&Value> = list
            .iter()
            .filter(|m| m["msg_id"].as_str() == Some(msg_id))
            .collect();
        let dups = hits
            .iter()
            .map(|m| m["duplicate_count"].as_i64().unwrap())
            .sum();
        let status = hits
            .first()
            .map(|m| m["status"].as_str().unwrap().to_owned())
            .unwrap_or_default();
        (hits.len(), dups, status)
    }
}

/// A vignette with a fresh MessageHeader id (and, optionally, the patient's postcode).
fn vignette(name: &str, postcode: Option<&str>) -> Vec<u8> {
    let text =
        std::fs::read_to_string(repo(&format!("fixtures/rules/vignettes/{name}.json"))).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let id = v["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
    let text = text.replace(&id, &uuid::Uuid::new_v4().to_string());
    let mut v: Value = serde_json::from_str(&text).unwrap();
    if let Some(pc) = postcode {
        for e in v["entry"].as_array_mut().unwrap() {
            if e["resource"]["resourceType"] == "Patient" {
                e["resource"]["address"] = serde_json::json!([{ "postalCode": pc }]);
            }
        }
    }
    serde_json::to_vec(&v).unwrap()
}

fn rows(v: &Value) -> Vec<Value> {
    v["outbox"].as_array().cloned().unwrap_or_default()
}

fn row<'a>(rows: &'a [Value], purpose: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["purpose"] == purpose)
        .unwrap_or_else(|| panic!("no {purpose} row in {rows:#?}"))
}

// ---------------------------------------------------------------------------------------------
// The cases.

#[tokio::test]
async fn referrals_are_decided_answered_routed_and_delivered() {
    let w = world(true).await;
    // No address: the referrer's municipality (0301) → Testbyen KAD, which takes FHIR.
    let a = post_fhir(&w.gw.base, vignette("acc-copd", None)).await;
    // Postcode 6800 → municipality 3298 → Fjordvik og Bergli KAD, which takes Henvisning 2.0.
    let b = post_fhir(&w.gw.base, vignette("acc-pneumonia", Some("6800"))).await;
    // A refusal is still delivered to the unit (its doctor has the last word) and answered.
    let c = post_fhir(&w.gw.base, vignette("hosp-stroke-icd", None)).await;

    for (id, decision, unit, format) in [
        (a, "accepted", "HER:990002", "fhir-r4"),
        (b, "accepted", "HER:990003", "henvisning20"),
        (c, "not-accepted", "HER:990002", "fhir-r4"),
    ] {
        let v = w.settled(id, Duration::from_secs(20)).await;
        assert_eq!(v["decision"], decision, "{v:#}");
        let d = &v["decisions"][0];
        assert_eq!(d["source"], "rules");
        assert_eq!(d["ruleset_id"], "no.kad.national-default");
        assert!(!d["reasons_no"].as_array().unwrap().is_empty());
        assert!(!d["reasons_en"].as_array().unwrap().is_empty());
        let route = &v["routes"][0];
        assert_eq!(route["code"], "route.catchment");
        assert_eq!(route["unit_key"], unit);
        assert!(route["reason_en"]
            .as_str()
            .unwrap()
            .contains(route["municipality"].as_str().unwrap()));

        let rows = rows(&v);
        assert_eq!(
            rows.len(),
            2,
            "one referral to the unit, one reply to the referrer"
        );
        let referral = row(&rows, "referral");
        assert_eq!(referral["recipient_key"], unit);
        assert_eq!(referral["format"], format);
        assert_eq!(referral["state"], "acked", "{referral:#}");
        let reply = row(&rows, "business-reply");
        assert_eq!(reply["recipient_key"], "HER:990001");
        assert_eq!(reply["format"], "fhir-r4");
        assert_eq!(reply["state"], "acked", "{reply:#}");
        // The reply reached the referrer within a second of the referral's receipt.
        let took = reply["acked_ms"].as_i64().unwrap() - reply["created_ms"].as_i64().unwrap();
        assert!(took < 1000, "business reply took {took} ms");

        // The unit-side system stored each once, as a message it accepted (a positive receipt).
        for r in [referral, reply] {
            let (copies, _, status) = w.at_unit(r["out_msg_id"].as_str().unwrap()).await;
            assert_eq!(copies, 1);
            assert_eq!(status, "accepted");
        }
    }
    w.stop().await;
}

#[tokio::test]
async fn failing_destinations_lose_nothing_and_duplicate_nothing() {
    let w = world(true).await;
    // The next requests fail in every way; later ones get through.
    w.proxy.fail_next(&[
        Fault::Status(500),
        Fault::Drop,
        Fault::Slow(Duration::from_millis(900)),
        Fault::Status(503),
        Fault::Drop,
        Fault::Slow(Duration::from_millis(900)),
        Fault::Status(502),
    ]);
    let mut ids = Vec::new();
    for (i, name) in ["acc-copd", "acc-diabetes", "acc-uti-careplan"]
        .iter()
        .enumerate()
    {
        let pc = (i == 1).then_some("6800");
        ids.push(post_fhir(&w.gw.base, vignette(name, pc)).await);
    }
    let mut resent = 0;
    for id in ids {
        let v = w.settled(id, Duration::from_secs(30)).await;
        for r in rows(&v) {
            assert_eq!(r["state"], "acked", "{r:#}");
            let (copies, dups, _) = w.at_unit(r["out_msg_id"].as_str().unwrap()).await;
            assert_eq!(copies, 1, "stored once at the recipient: {r:#}");
            resent += dups;
        }
    }
    // The slow answers were processed by the unit and then retried: the recipient recognised
    // the resends by their message id.
    assert!(resent >= 1, "the slow answers lead to recognised resends");
    assert!(w.proxy.requests.load(Ordering::SeqCst) >= 6 + 7);
    assert!(
        w.proxy.faults.lock().unwrap().is_empty(),
        "every fault was met"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_unit_down_for_a_while_gets_everything_once() {
    let w = world(false).await;
    let a = post_fhir(&w.gw.base, vignette("acc-copd", None)).await;
    let b = post_fhir(&w.gw.base, vignette("acc-kidney-stone", None)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = w.api(&format!("/api/referrals/{a}")).await;
    for r in rows(&v) {
        assert_eq!(r["state"], "pending", "nothing listens yet: {r:#}");
        assert!(r["attempts"].as_i64().unwrap() >= 1);
        assert!(
            r["last_error"].as_str().unwrap().contains("connect"),
            "{r:#}"
        );
    }
    w.start_proxy_now().await;
    for id in [a, b] {
        let v = w.settled(id, Duration::from_secs(30)).await;
        for r in rows(&v) {
            assert_eq!(r["state"], "acked");
            assert_eq!(w.at_unit(r["out_msg_id"].as_str().unwrap()).await.0, 1);
        }
    }
    w.stop().await;
}

#[tokio::test]
async fn a_refusal_is_a_visible_dead_letter_that_an_operator_can_retry() {
    let w = world(true).await;
    w.proxy.fail_next(&[Fault::Status(400)]);
    let id = post_fhir(&w.gw.base, vignette("acc-copd", None)).await;
    let v = w.settled(id, Duration::from_secs(20)).await;
    let all = rows(&v);
    let dead: Vec<&Value> = all.iter().filter(|r| r["state"] == "dead").collect();
    assert_eq!(dead.len(), 1, "{all:#?}");
    let dead_id = dead[0]["id"].as_i64().unwrap();
    let listed: Vec<Value> = serde_json::from_value(w.api("/api/outbox?state=dead").await).unwrap();
    assert_eq!(listed.len(), 1);
    let alerts: Vec<Value> = serde_json::from_value(w.api("/api/alerts").await).unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a["kind"] == "delivery.dead" && a["outbox_id"] == dead_id),
        "{alerts:#?}"
    );

    // Retrying needs the operator token.
    let url = format!("{}/api/outbox/{dead_id}/retry", w.gw.base);
    assert_eq!(client().post(&url).send().await.unwrap().status(), 401);
    let r = client().post(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v = w.settled(id, Duration::from_secs(20)).await;
    assert!(rows(&v).iter().all(|r| r["state"] == "acked"), "{v:#}");
    let alerts: Vec<Value> = serde_json::from_value(w.api("/api/alerts").await).unwrap();
    assert!(
        alerts.is_empty(),
        "the retry cleared the alert: {alerts:#?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn an_override_is_recorded_and_answered() {
    let w = world(true).await;
    let id = post_fhir(&w.gw.base, vignette("rev-news2-5", None)).await;
    let v = w.settled(id, Duration::from_secs(20)).await;
    assert_eq!(v["decision"], "needs-review");
    let url = format!("{}/api/referrals/{id}/decision", w.gw.base);
    let body = serde_json::json!({"decision": "accepted", "by": "overlege KAD", "note": "Vurdert klinisk."});
    assert_eq!(
        client()
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let bad = serde_json::json!({"decision": "maybe", "by": "x"});
    assert_eq!(
        client()
            .post(&url)
            .bearer_auth(TOKEN)
            .json(&bad)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let r = client()
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let answer: Value = r.json().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let v = w.settled(id, Duration::from_secs(20)).await;
        if rows(&v).len() == 3 {
            break v;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(v["decision"], "accepted");
    let ds = v["decisions"].as_array().unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[1]["source"], "override");
    assert_eq!(ds[1]["decided_by"], "overlege KAD");
    assert_eq!(
        ds[0]["decision"], "needs-review",
        "the first decision is kept"
    );
    let second = row(&rows(&v), "business-reply-2").clone();
    assert_eq!(second["out_msg_id"], answer["reply_msg_id"]);
    assert_eq!(second["state"], "acked");
    assert_eq!(w.at_unit(second["out_msg_id"].as_str().unwrap()).await.0, 1);
    // Now the referral holds a bed at its unit.
    let units: Vec<Value> = serde_json::from_value(w.api("/api/units").await).unwrap();
    let testbyen = units.iter().find(|u| u["unit"] == "HER:990002").unwrap();
    assert_eq!(testbyen["beds_held"], 1);
    w.stop().await;
}

#[tokio::test]
async fn a_full_unit_diverts_to_its_alternative_and_the_referrer_is_told() {
    let w = world(true).await;
    let url = format!("{}/api/units/990002/capacity", w.gw.base);
    let r = client()
        .put(&url)
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"free_beds": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The snapshot of capacity is reused for half a second.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let id = post_fhir(&w.gw.base, vignette("acc-copd", None)).await;
    let v = w.settled(id, Duration::from_secs(20)).await;
    let route = &v["routes"][0];
    assert_eq!(route["code"], "route.full-alternative", "{v:#}");
    assert_eq!(route["unit_key"], "HER:990004");
    assert_eq!(route["diverted_from"], "990002");
    let referral = row(&rows(&v), "referral").clone();
    assert_eq!(referral["format"], "henvisning11");
    assert_eq!(referral["state"], "acked");
    assert_eq!(v["decision"], "accepted");
    w.stop().await;
}

#[tokio::test]
async fn on_postgres_the_same_flow_loses_and_duplicates_nothing() {
    let db = common::pg::database().await;
    let w = world_on(true, Some(&db), UNIT_SIDE_ORGS).await;
    w.proxy.fail_next(&[
        Fault::Status(503),
        Fault::Drop,
        Fault::Slow(Duration::from_millis(900)),
    ]);
    let a = post_fhir(&w.gw.base, vignette("acc-copd", None)).await;
    let b = post_fhir(&w.gw.base, vignette("acc-pneumonia", Some("6800"))).await;
    for (id, unit) in [(a, "HER:990002"), (b, "HER:990003")] {
        let v = w.settled(id, Duration::from_secs(30)).await;
        assert_eq!(v["decision"], "accepted");
        assert_eq!(v["routes"][0]["unit_key"], unit);
        let all = rows(&v);
        assert_eq!(all.len(), 2);
        for r in &all {
            assert_eq!(r["state"], "acked", "{r:#}");
            assert_eq!(w.at_unit(r["out_msg_id"].as_str().unwrap()).await.0, 1);
        }
    }
    w.stop().await;
}

#[tokio::test]
async fn a_negative_receipt_is_surfaced_with_its_codes() {
    // Fjordvik's system knows its municipality but not the KAD unit as a service: it answers the
    // referral with a negative AppRec (E21), which must show on the row and raise an alert.
    let orgs = r#"
[[organisations]]
name = "Fjordvik kommune"
idents = ["HER:990060", "ENH:990001014"]
units = [{ name = "Hjemmetjenesten", idents = ["HER:990099"] }]
"#;
    let w = world_on(true, None, orgs).await;
    let id = post_fhir(&w.gw.base, vignette("acc-copd", Some("6800"))).await;
    let v = w.settled(id, Duration::from_secs(20)).await;
    assert_eq!(v["routes"][0]["unit_key"], "HER:990003");
    let referral = row(&rows(&v), "referral").clone();
    assert_eq!(referral["state"], "nacked", "{referral:#}");
    assert_eq!(referral["ack_status"], "rejected");
    assert_eq!(referral["ack_codes"], serde_json::json!(["E21"]));
    let alerts: Vec<Value> = serde_json::from_value(w.api("/api/alerts").await).unwrap();
    let nacked = alerts
        .iter()
        .find(|a| a["kind"] == "delivery.nacked")
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    assert_eq!(nacked["unit_key"], "HER:990003");
    assert!(nacked["reason"].as_str().unwrap().contains("E21"));
    w.stop().await;
}

/// The pipeline and the admission read "now" from the clock they are given, so a test on
/// simulated time sees the referral received, decided and its outbox rows created at clock time
/// (the worker computes a row's age and the dead-letter limit from that creation time).
#[tokio::test]
async fn a_referral_is_received_decided_and_planned_at_clock_time() {
    use kadgate::clock::{Clock, ManualClock, SharedClock};
    use kadgate::store::OutboxFilter;

    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry.toml");
    std::fs::write(&reg, registry(1)).unwrap();
    let mut cfg = common::test_config(&dir.path().join("data"));
    cfg.admission.enabled = true;
    cfg.admission.ruleset = repo("fixtures/rules/national-default.toml");
    cfg.admission.registry = reg;
    let store = kadgate::server::open_store(&cfg).await.unwrap();
    // 2026-01-01T00:00:00Z, far from the system clock's now.
    let clock = ManualClock::new(1_767_225_600_000);
    let shared: SharedClock = clock.clone();
    let admission = kadgate::server::load_admission(&cfg)
        .unwrap()
        .with_clock(shared.clone());
    let rules = Arc::new(kadgate::check::Rules::from_config(&cfg));
    let pipeline = kadgate::pipeline::Pipeline::new(store.clone(), rules, None)
        .with_admission(Arc::new(admission))
        .with_clock(shared);

    pipeline
        .ingest_fhir(vignette("acc-copd", None), "test")
        .await
        .unwrap();
    let id = store.list(&Default::default()).await.unwrap()[0].id;
    let message = store.get(id).await.unwrap().unwrap();
    assert_eq!(message.summary.received_at, "2026-01-01T00:00:00.000Z");
    let decisions = store.decisions(id).await.unwrap();
    assert_eq!(decisions[0].decision.decided_at, "2026-01-01T00:00:00.000Z");
    let rows = store
        .list_outbox(&OutboxFilter {
            message_id: Some(id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "the referral to the unit and the reply");
    for r in &rows {
        assert_eq!(r.created_ms, clock.now_ms(), "{}", r.purpose);
        assert_eq!(r.created_at, "2026-01-01T00:00:00.000Z");
        assert_eq!(
            r.next_attempt_ms,
            clock.now_ms(),
            "due at once, on the clock"
        );
    }
    store.close().await.unwrap();
}
