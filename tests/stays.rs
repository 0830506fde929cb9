//! Stays end to end through the HTTP API: a referral from legevakt opens a stay, the unit's
//! epicrisis is fanned out — to the patient's GP (KITH), the referrer (FHIR) and home nursing
//! (KITH) — each a real system (a second kadgate that checks every message and answers with a
//! real AppRec or FHIR response), and the stay's timeline and deliveries are read back through
//! the audited API. Also: the GP changed during the stay, the referring GP gets one copy,
//! messages arriving out of order, a corrected and a cancelled epicrisis, no GP in the register.

mod common;

use std::time::{Duration, Instant};

use common::stay_msgs::{epicrisis, Epi};
use common::{client, get_json, post_fhir, TestServer};
use kadgate::model::ServiceType;
use serde_json::Value;

const TOKEN: &str = "stay-test-token";

fn repo(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// What the recipient-side systems answer for (the unit, GP offices, legevakt, home nursing).
const RECIPIENT_ORGS: &str = r#"
[receipts]
reject_unknown_service = false

[[organisations]]
name = "Testbyen KAD"
idents = ["HER:990002"]

[[organisations]]
name = "Testbyen legekontor"
idents = ["HER:990001"]

[[organisations]]
name = "Fjordvik legesenter"
idents = ["HER:990005"]

[[organisations]]
name = "Testbyen interkommunale legevakt"
idents = ["HER:990020"]

[[organisations]]
name = "Hjemmesykepleien Testbyen"
idents = ["HER:990041"]

[[organisations]]
name = "Tildelingskontoret"
idents = ["HER:990050"]
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
municipalities = ["0301", "3298"]
beds = 12
formats = ["fhir-r4"]
endpoint = {{ url = "{fhir}" }}

[[parties]]
her_id = "990001"
kind = "gp-office"
name = "Testbyen legekontor"
org_enh = "990003009"
municipality = "0301"
formats = ["epikrise12", "dialogmelding11"]
endpoint = {{ url = "{kith}" }}

[[parties]]
her_id = "990011"
kind = "gp"
name = "Lege, Test"
hpr = "9144889"
org_name = "Testbyen legekontor"
org_her_id = "990001"
org_enh = "990003009"
municipality = "0301"

[[parties]]
her_id = "990005"
kind = "gp-office"
name = "Fjordvik legesenter"
org_enh = "990001030"
municipality = "3298"
formats = ["epikrise12"]
endpoint = {{ url = "{kith}" }}

[[parties]]
her_id = "990013"
kind = "gp"
name = "Allmennlege, Ola"
org_name = "Fjordvik legesenter"
org_her_id = "990005"
org_enh = "990001030"
municipality = "3298"

[[parties]]
her_id = "990020"
kind = "legevakt"
name = "Testbyen interkommunale legevakt"
org_enh = "990001006"
municipality = "0301"
formats = ["fhir-r4", "dialogmelding11"]
endpoint = {{ url = "{fhir}" }}

[[parties]]
her_id = "990041"
kind = "home-nursing"
name = "Hjemmesykepleien Testbyen"
org_enh = "990001006"
municipality = "0301"
formats = ["epikrise12"]
endpoint = {{ url = "{kith}" }}

[[parties]]
her_id = "990050"
kind = "intake"
name = "Tildelingskontoret"
org_enh = "990001006"
municipality = "0301"
formats = ["epikrise12"]
endpoint = {{ url = "{kith}" }}

[[gp_lists]]
gp = "990011"
patients = [
  {{ nin = "27094100211", from = "2005-01-01" }},
  {{ nin = "30014500282", from = "2026-03-03" }},
]

[[gp_lists]]
gp = "990013"
patients = [
  {{ nin = "30014500282", from = "1999-05-01", to = "2026-03-02" }},
]
"#
    )
}

struct World {
    gw: TestServer,
    recipients: TestServer,
    _dirs: Vec<tempfile::TempDir>,
}

async fn world(link_grace_secs: u64) -> World {
    world_on(link_grace_secs, None).await
}

/// With `pg`, the gateway keeps its store (stays, work queue, outbox, audit log) in PostgreSQL.
async fn world_on(link_grace_secs: u64, pg: Option<&common::pg::PgDb>) -> World {
    let rdir = tempfile::tempdir().unwrap();
    let mut rcfg = common::test_config(rdir.path());
    rcfg.admission.enabled = false;
    rcfg.stays.enabled = false;
    rcfg.delivery.enabled = false;
    let extra = kadgate::config::parse(RECIPIENT_ORGS, "recipient organisations", None).unwrap();
    let served = extra.organisations.clone();
    rcfg.organisations.extend(extra.organisations);
    rcfg.receipts = extra.receipts;
    let recipients = TestServer::start(rcfg).await;
    let port: u16 = recipients.base.rsplit(':').next().unwrap().parse().unwrap();

    let gdir = tempfile::tempdir().unwrap();
    let reg = gdir.path().join("registry.toml");
    std::fs::write(&reg, registry(port)).unwrap();
    let mut cfg = common::test_config(&gdir.path().join("data"));
    cfg.admission.enabled = true;
    cfg.admission.ruleset = repo("fixtures/rules/national-default.toml");
    cfg.admission.registry = reg;
    // The gateway receives for the parties it carries messages for (a unit's stay events are
    // addressed to home nursing, its epicrises to the referrer).
    cfg.organisations.extend(served);
    cfg.stays.enabled = true;
    cfg.stays.poll_ms = 50;
    cfg.stays.link_grace_secs = link_grace_secs;
    cfg.stays.gp_fallback = [("default".to_string(), "990050".to_string())].into();
    cfg.api.operator_token = Some(TOKEN.into());
    cfg.delivery.poll_ms = 50;
    if let Some(db) = pg {
        cfg.store.kind = "postgres".into();
        cfg.store.url = Some(db.url.clone());
    }
    let gw = TestServer::start(cfg).await;
    World {
        gw,
        recipients,
        _dirs: vec![rdir, gdir],
    }
}

impl World {
    /// GET a gateway API path (with the operator token) as JSON.
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        client()
            .get(format!("{}{path}", self.gw.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.gw.stop().await;
        self.recipients.stop().await;
    }

    async fn stays_of(&self, nin: &str) -> Vec<Value> {
        let r = client()
            .post(format!("{}/api/stays/search", self.gw.base))
            .bearer_auth(TOKEN)
            .header("x-kadgate-actor", "test: ward nurse")
            .json(&serde_json::json!({ "patient": nin }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["stays"].as_array().cloned().unwrap()
    }

    /// The patient's one stay once `n` epicrisis deliveries reached a final state.
    async fn settled(&self, nin: &str, n: usize, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let stays = self.stays_of(nin).await;
            if let Some(s) = stays.first() {
                let rows = epicrisis_rows(s);
                let done = rows
                    .iter()
                    .filter(|d| ["acked", "nacked", "dead"].contains(&d["state"].as_str().unwrap()))
                    .count();
                if done >= n && rows.len() == done {
                    assert_eq!(stays.len(), 1, "one stay: {stays:#?}");
                    return s.clone();
                }
            }
            assert!(Instant::now() < deadline, "not settled in time: {stays:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many times the recipient systems stored a message with this id, and how.
    async fn received(&self, msg_id: &str) -> Vec<Value> {
        let list = get_json(&self.recipients.base, "/api/messages?limit=500").await;
        list.as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["msg_id"].as_str() == Some(msg_id))
            .collect()
    }
}

fn epicrisis_rows(stay: &Value) -> Vec<Value> {
    stay["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["purpose"].as_str().unwrap().starts_with("epicrisis"))
        .cloned()
        .collect()
}

/// A referral vignette sent by `sender` (HER-id) about the patient `nin`, with a fresh id.
fn referral(sender: &str, nin: &str) -> (Vec<u8>, String) {
    let text = std::fs::read_to_string(repo("fixtures/rules/vignettes/acc-copd.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    for e in v["entry"].as_array_mut().unwrap() {
        let r = &mut e["resource"];
        match r["resourceType"].as_str().unwrap() {
            "MessageHeader" => {
                r["id"] = Value::String(id.clone());
                r["source"]["endpoint"] =
                    Value::String(format!("urn:oid:2.16.578.1.12.4.1.2:{sender}"));
            }
            "Patient" => r["identifier"][0]["value"] = Value::String(nin.into()),
            "Organization" if r["name"] == "Testbyen legekontor" => {
                r["identifier"][1]["value"] = Value::String(sender.into());
                if sender == "990020" {
                    r["name"] = Value::String("Testbyen interkommunale legevakt".into());
                    r["identifier"][0]["value"] = Value::String("990001006".into());
                }
            }
            _ => {}
        }
    }
    (serde_json::to_vec(&v).unwrap(), id)
}

async fn post_kith(base: &str, body: Vec<u8>) -> reqwest::Response {
    common::post_xml(base, body).await
}

fn by_role<'a>(rows: &'a [Value], role: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["role"] == role)
        .unwrap_or_else(|| panic!("no {role} delivery in {rows:#?}"))
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_legevakt_referral_and_the_units_epicrisis_reach_gp_referrer_and_home_nursing() {
    let w = world(600).await;
    let nin = "27094100211";
    let (body, referral_id) = referral("990020", nin);
    post_fhir(&w.gw.base, body).await;

    let (epi, epi_id) = epicrisis(&Epi {
        nin,
        referral_id: Some(&referral_id),
        doc_id: "EPI-1",
        service_type: ServiceType::New,
        discharged: "2026-11-20T10:00:00",
        copy_to_home_nursing: true,
    });
    let r = post_kith(&w.gw.base, epi).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let stay = w.settled(nin, 3, Duration::from_secs(30)).await;
    let rows = epicrisis_rows(&stay);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for (role, key, format) in [
        ("gp", "HER:990011", "epikrise12"),
        ("referrer", "HER:990020", "fhir-r4"),
        ("home-nursing", "HER:990041", "epikrise12"),
    ] {
        let d = by_role(&rows, role);
        assert_eq!(d["recipient_key"], key, "{d:#}");
        assert_eq!(d["format"], format, "{d:#}");
        assert_eq!(d["state"], "acked", "{d:#}");
        assert_eq!(d["ack_status"], "ok", "{d:#}");
    }
    assert_eq!(stay["state"], "closed", "{stay:#}");
    assert_eq!(stay["unit_key"], "HER:990002");
    assert_eq!(stay["decision"]["decision"], "accepted");
    assert!(stay["home_nursing"].as_bool().unwrap());
    let kinds: Vec<&str> = stay["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["referred", "epicrisis-new"], "{stay:#}");
    // The referral went to the unit too, and the referrer got the decision.
    let purposes: Vec<&str> = stay["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["purpose"].as_str().unwrap())
        .collect();
    assert!(purposes.contains(&"referral") && purposes.contains(&"business-reply"));

    // Every copy arrived exactly once at the recipient systems, and the unit's own message
    // was stored once at the gateway.
    let outbox: Vec<Value> = w.get("/api/outbox?limit=100").await;
    for row in outbox.iter().filter(|r| r["purpose"] == "epicrisis") {
        let got = w.received(row["out_msg_id"].as_str().unwrap()).await;
        assert_eq!(got.len(), 1, "{row:#}");
        assert_eq!(got[0]["duplicate_count"], 0);
        assert_eq!(got[0]["status"], "accepted", "{:#}", got[0]);
    }
    assert!(
        w.received(&epi_id).await.is_empty(),
        "the unit's own copy is not forwarded as is"
    );

    // Reads are audited, and need the token.
    let audit: Vec<Value> = w.get("/api/audit").await;
    assert!(audit.iter().any(|a| a["action"] == "stays.search"
        && a["subject"] == format!("patient:{nin}")
        && a["actor"].as_str().unwrap().contains("ward nurse")));
    let r = client()
        .post(format!("{}/api/stays/search", w.gw.base))
        .json(&serde_json::json!({ "patient": nin }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .post(format!("{}/api/stays/search", w.gw.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "patient": "12345678901" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains("12345678901"));
    let id = stay["id"].as_i64().unwrap();
    let one: Value = w.get(&format!("/api/stays/{id}")).await;
    assert_eq!(one["id"], id);
    w.stop().await;
}

#[tokio::test]
async fn the_gp_on_the_day_of_discharge_gets_it_and_a_referring_gp_gets_one_copy() {
    let w = world(600).await;
    // GP changed on 2026-03-03 (Fjordvik → Testbyen); discharged 2026-03-05: Testbyen's GP.
    let nin = "30014500282";
    let (body, referral_id) = referral("990020", nin);
    post_fhir(&w.gw.base, body).await;
    let (epi, _) = epicrisis(&Epi {
        nin,
        referral_id: Some(&referral_id),
        doc_id: "EPI-GP",
        service_type: ServiceType::New,
        discharged: "2026-03-05",
        copy_to_home_nursing: false,
    });
    assert_eq!(post_kith(&w.gw.base, epi).await.status(), 200);
    let stay = w.settled(nin, 2, Duration::from_secs(30)).await;
    let rows = epicrisis_rows(&stay);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(by_role(&rows, "gp")["recipient_key"], "HER:990011");
    assert!(rows.iter().all(|r| r["recipient_key"] != "HER:990013"));

    // Referred by the patient's own GP office: one copy, addressed to the GP.
    let nin2 = "27094100211";
    let (body, referral_id) = referral("990001", nin2);
    post_fhir(&w.gw.base, body).await;
    let (epi, _) = epicrisis(&Epi {
        nin: nin2,
        referral_id: Some(&referral_id),
        doc_id: "EPI-ONE",
        service_type: ServiceType::New,
        discharged: "2026-11-20",
        copy_to_home_nursing: false,
    });
    assert_eq!(post_kith(&w.gw.base, epi).await.status(), 200);
    let stay = w.settled(nin2, 1, Duration::from_secs(30)).await;
    let rows = epicrisis_rows(&stay);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["role"], "gp");
    assert_eq!(rows[0]["state"], "acked", "{:#}", rows[0]);
    w.stop().await;
}

#[tokio::test]
async fn out_of_order_messages_are_held_and_linked_and_corrections_reach_every_recipient() {
    let w = world(600).await;
    let nin = "27094100211";
    let (body, referral_id) = referral("990020", nin);
    // The correction comes first, then the epicrisis, then (last) the referral they answer.
    let epi = |t: ServiceType| {
        epicrisis(&Epi {
            nin,
            referral_id: Some(&referral_id),
            doc_id: "EPI-OOO",
            service_type: t,
            discharged: "2026-11-20",
            copy_to_home_nursing: true,
        })
    };
    let (correction, _) = epi(ServiceType::Change);
    let (original, _) = epi(ServiceType::New);
    assert_eq!(post_kith(&w.gw.base, correction).await.status(), 200);
    assert_eq!(post_kith(&w.gw.base, original).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Nothing is sent while the stay's referral is missing: both wait.
    assert!(w.stays_of(nin).await.is_empty());
    let outbox: Vec<Value> = w.get("/api/outbox?limit=100").await;
    assert!(outbox
        .iter()
        .all(|r| !r["purpose"].as_str().unwrap().starts_with("epicrisis")));

    post_fhir(&w.gw.base, body).await;
    let stay = w.settled(nin, 6, Duration::from_secs(30)).await;
    let rows = epicrisis_rows(&stay);
    assert_eq!(rows.len(), 6, "{rows:#?}");
    for key in ["HER:990011", "HER:990020", "HER:990041"] {
        let mine: Vec<&Value> = rows.iter().filter(|r| r["recipient_key"] == key).collect();
        let purposes: Vec<&str> = mine
            .iter()
            .map(|r| r["purpose"].as_str().unwrap())
            .collect();
        // The original first, then its correction, to every recipient.
        assert_eq!(
            purposes,
            ["epicrisis", "epicrisis-correction"],
            "{key}: {rows:#?}"
        );
        assert!(mine.iter().all(|r| r["state"] == "acked"), "{mine:#?}");
    }

    // A cancellation goes to everyone who got the document.
    let (cancel, _) = epi(ServiceType::Cancellation);
    assert_eq!(post_kith(&w.gw.base, cancel).await.status(), 200);
    let stay = w.settled(nin, 9, Duration::from_secs(30)).await;
    let cancels: Vec<Value> = epicrisis_rows(&stay)
        .into_iter()
        .filter(|r| r["purpose"] == "epicrisis-cancellation")
        .collect();
    assert_eq!(cancels.len(), 3, "{stay:#}");
    assert!(cancels.iter().all(|r| r["state"] == "acked"));
    let kinds: Vec<&str> = stay["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "referred",
            "epicrisis-new",
            "epicrisis-change",
            "epicrisis-cancellation"
        ],
        "{stay:#}"
    );
    w.stop().await;
}

#[tokio::test]
async fn no_gp_in_the_register_sends_it_to_the_fallback_with_an_alert() {
    let w = world(600).await;
    let nin = "13857444048"; // on no GP list in this directory
    let (body, referral_id) = referral("990020", nin);
    post_fhir(&w.gw.base, body).await;
    let (epi, _) = epicrisis(&Epi {
        nin,
        referral_id: Some(&referral_id),
        doc_id: "EPI-NOGP",
        service_type: ServiceType::New,
        discharged: "2026-11-20",
        copy_to_home_nursing: false,
    });
    assert_eq!(post_kith(&w.gw.base, epi).await.status(), 200);
    let stay = w.settled(nin, 2, Duration::from_secs(30)).await;
    let rows = epicrisis_rows(&stay);
    let fallback = by_role(&rows, "gp-fallback");
    assert_eq!(fallback["recipient_key"], "HER:990050");
    assert_eq!(fallback["state"], "acked");
    let alerts: Vec<Value> = w.get("/api/alerts").await;
    let a = alerts
        .iter()
        .find(|a| a["kind"] == "stay.gp-not-found")
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    assert!(a["reason"].as_str().unwrap().contains("990050"));
    assert!(!a["reason"].as_str().unwrap().contains(nin));
    w.stop().await;
}

#[tokio::test]
async fn a_message_whose_referral_never_comes_opens_a_stay_of_its_own() {
    let w = world(1).await;
    let nin = "27094100211";
    let (epi, _) = epicrisis(&Epi {
        nin,
        referral_id: Some("never-seen-referral"),
        doc_id: "EPI-ALONE",
        service_type: ServiceType::New,
        discharged: "2026-11-20",
        copy_to_home_nursing: false,
    });
    assert_eq!(post_kith(&w.gw.base, epi).await.status(), 200);
    // After the grace period: GP, and the requester the epicrisis names (the GP office: one copy).
    let stay = w.settled(nin, 1, Duration::from_secs(30)).await;
    let rows = epicrisis_rows(&stay);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["role"], "gp");
    assert!(stay["referral_message_id"].is_null());
    assert_eq!(stay["timeline"][0]["kind"], "opened");
    w.stop().await;
}

/// The fixture `fixtures/stays/NAME` with the referral placeholder replaced by `referral_id`.
fn stay_fixture(name: &str, referral_id: &str) -> Vec<u8> {
    std::fs::read_to_string(repo(&format!("fixtures/stays/{name}")))
        .unwrap()
        .replace("f0f0f0f0-0000-4000-8000-000000000001", referral_id)
        .into_bytes()
}

/// A referral from legevakt, the unit's admission and discharge notices and its epicrisis (the
/// fixtures in `fixtures/stays`), with no manual step: the epicrisis is delivered to and
/// acknowledged by the GP on the day of discharge (the GP changed during the stay), the referrer
/// and home nursing, each in its own format, and the stay's timeline is complete.
async fn whole_stay(files: [&str; 3], pg: Option<&common::pg::PgDb>) {
    let w = world_on(600, pg).await;
    let nin = "30014500282";
    let (body, referral_id) = referral("990020", nin);
    post_fhir(&w.gw.base, body).await;
    for f in files {
        let bytes = stay_fixture(f, &referral_id);
        let status = if f.ends_with(".json") {
            client()
                .post(format!("{}/fhir/$process-message", w.gw.base))
                .header("content-type", "application/fhir+json")
                .body(bytes)
                .send()
                .await
                .unwrap()
                .status()
        } else {
            post_kith(&w.gw.base, bytes).await.status()
        };
        assert_eq!(status, 200, "{f}");
    }
    let stay = w.settled(nin, 3, Duration::from_secs(30)).await;
    let rows = epicrisis_rows(&stay);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for (role, key) in [
        ("gp", "HER:990011"),
        ("referrer", "HER:990020"),
        ("home-nursing", "HER:990041"),
    ] {
        let d = by_role(&rows, role);
        assert_eq!(d["recipient_key"], key, "{d:#}");
        assert_eq!(d["state"], "acked", "{d:#}");
    }
    assert_eq!(by_role(&rows, "referrer")["format"], "fhir-r4");
    assert_eq!(by_role(&rows, "gp")["format"], "epikrise12");
    let kinds: Vec<&str> = stay["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["referred", "admitted", "discharged", "epicrisis-new"],
        "{stay:#}"
    );
    assert!(stay["admitted_at"]
        .as_str()
        .unwrap()
        .starts_with("2026-03-02"));
    assert!(stay["discharged_at"]
        .as_str()
        .unwrap()
        .starts_with("2026-03-05"));
    assert_eq!(stay["state"], "closed");
    assert!(stay["home_nursing"].as_bool().unwrap());
    w.stop().await;
}

#[tokio::test]
async fn a_whole_stay_in_kith_plo_admission_discharge_and_epikrise() {
    whole_stay(
        [
            "plo16-log-innlagt.xml",
            "plo16-log-utskrevet.xml",
            "epikrise12-ny.xml",
        ],
        None,
    )
    .await;
}

#[tokio::test]
async fn a_whole_stay_in_fhir_encounter_events_and_a_discharge_document() {
    whole_stay(
        [
            "fhir-encounter-innlagt.json",
            "fhir-encounter-utskrevet.json",
            "fhir-epikrise-message.json",
        ],
        None,
    )
    .await;
}

#[tokio::test]
async fn a_whole_stay_with_the_store_in_postgresql() {
    let db = common::pg::database().await;
    whole_stay(
        [
            "plo16-log-innlagt.xml",
            "plo16-log-utskrevet.xml",
            "fhir-epikrise-message.json",
        ],
        Some(&db),
    )
    .await;
}

#[tokio::test]
async fn a_resent_epicrisis_reaches_nobody_twice() {
    let w = world(600).await;
    let nin = "27094100211";
    let (body, referral_id) = referral("990020", nin);
    post_fhir(&w.gw.base, body).await;
    let epi = || {
        epicrisis(&Epi {
            nin,
            referral_id: Some(&referral_id),
            doc_id: "EPI-RESENT",
            service_type: ServiceType::New,
            discharged: "2026-11-20",
            copy_to_home_nursing: false,
        })
    };
    assert_eq!(post_kith(&w.gw.base, epi().0).await.status(), 200);
    w.settled(nin, 2, Duration::from_secs(30)).await;
    // The same document again under a new MsgId (the unit missed our AppRec, say).
    assert_eq!(post_kith(&w.gw.base, epi().0).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let stay = loop {
        let s = w.stays_of(nin).await.remove(0);
        if s["timeline"].as_array().unwrap().len() == 3 {
            break s;
        }
        assert!(Instant::now() < deadline, "{s:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(epicrisis_rows(&stay).len(), 2, "{stay:#}");
    w.stop().await;
}

#[tokio::test]
async fn an_epicrisis_from_elsewhere_than_a_kad_unit_opens_no_stay() {
    // No grace: a message whose stay is unknown would open one at once.
    let w = world(0).await;
    // An epicrisis from a hospital to a GP office kadgate receives for: received, no stay.
    let hospital = common::kith(
        "epikrise/examples/sarepta-akseptansetest/Case-mottak-epikrise1_1/Epikrise1-1-case 1.xml",
    );
    let r = post_kith(&w.gw.base, std::fs::read(hospital).unwrap()).await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outbox: Vec<Value> = w.get("/api/outbox?limit=100").await;
    assert_eq!(
        outbox
            .iter()
            .filter(|r| r["purpose"].as_str().unwrap().starts_with("epicrisis"))
            .count(),
        0,
        "{outbox:#?}"
    );
    let alerts: Vec<Value> = w.get("/api/alerts").await;
    assert!(
        alerts
            .iter()
            .all(|a| !a["kind"].as_str().unwrap().starts_with("stay.")),
        "{alerts:#?}"
    );
    w.stop().await;
}
