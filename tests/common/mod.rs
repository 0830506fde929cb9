//! Shared test helpers: where the standards are, a real server on a loopback port.
#![allow(dead_code)]

pub mod pg;
pub mod stay_msgs;
pub mod store_cases;

use std::path::PathBuf;

pub mod nhn_mock;
pub mod tls;

pub fn standards() -> PathBuf {
    match std::env::var_os("KADGATE_STANDARDS_DIR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/standards"),
    }
}

pub fn kith(rel: &str) -> PathBuf {
    standards().join("kith").join(rel)
}

/// Every example message under kith/*/examples (registry fixtures excluded), sorted.
pub fn all_examples() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = standards().join("kith");
    fn walk(d: &std::path::Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "xml") {
                out.push(p);
            }
        }
    }
    for kind in ["apprec", "dialogmelding", "epikrise", "henvisning", "plo"] {
        walk(&root.join(kind).join("examples"), &mut out);
    }
    out.sort();
    out
}

/// The independent FHIR R4 oracle's directory: `KADGATE_FHIR_ORACLE` (set by `scripts/test.sh`),
/// else installed once by `scripts/fhir-oracle.sh`, which prints it.
pub fn oracle_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KADGATE_FHIR_ORACLE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let out = std::process::Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/fhir-oracle.sh"))
        .env("KADGATE_STANDARDS_DIR", standards())
        .output()
        .expect("scripts/fhir-oracle.sh runs (Node.js and npm are needed for the FHIR oracle)");
    assert!(
        out.status.success(),
        "installing the FHIR oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(text.lines().last().expect("the oracle directory").trim())
}

/// The oracle over `files`, in runs of at most 400 files (Node starts once per run): one verdict
/// `{"file", "valid", "issues"}` per file, in order.
pub fn oracle(files: &[PathBuf]) -> Vec<serde_json::Value> {
    let script = oracle_dir().join("validate.mjs");
    let mut verdicts = Vec::with_capacity(files.len());
    for chunk in files.chunks(400) {
        let out = std::process::Command::new("node")
            .arg(&script)
            .args(chunk)
            .output()
            .expect("node runs the oracle");
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON line per file"))
            .collect();
        assert_eq!(
            lines.len(),
            chunk.len(),
            "one oracle verdict per file ({})",
            String::from_utf8_lossy(&out.stderr)
        );
        verdicts.extend(lines);
    }
    verdicts
}

/// A verdict of `standards/kith/VALIDATION.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
    NotWellFormed,
}

/// The `| STATUS | `path` | ... |` rows of `kith/VALIDATION.md`, paths absolute.
pub fn kith_verdicts() -> Vec<(Verdict, PathBuf)> {
    let kith = standards().join("kith");
    let table =
        std::fs::read_to_string(kith.join("VALIDATION.md")).expect("VALIDATION.md readable");
    let mut rows = Vec::new();
    for line in table.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[0].is_empty() {
            continue;
        }
        let verdict = match cells[1] {
            "VALID" => Verdict::Valid,
            "INVALID" => Verdict::Invalid,
            "NOT-WELL-FORMED" => Verdict::NotWellFormed,
            _ => continue,
        };
        rows.push((verdict, kith.join(cells[2].trim_matches('`'))));
    }
    rows
}

/// A running in-process server.
pub struct TestServer {
    pub base: String,
    pub data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn test_config(data_dir: &std::path::Path) -> kadgate::config::Config {
    let mut cfg = kadgate::config::Config::demo();
    cfg.server.data_dir = data_dir.to_path_buf();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.dropfolder.poll_ms = 50;
    cfg
}

impl TestServer {
    pub async fn start(cfg: kadgate::config::Config) -> TestServer {
        let data_dir = cfg.server.data_dir.clone();
        let gw = kadgate::server::Gateway::open(cfg, &standards())
            .await
            .expect("gateway opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(kadgate::server::run(listener, gw, async move {
            let _ = rx.await;
        }));
        let srv = TestServer {
            base,
            data_dir,
            stop: Some(tx),
            handle: Some(handle),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Ok(r) = client().get(format!("{}/readyz", srv.base)).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(std::time::Instant::now() < deadline, "server not ready");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        srv
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap().unwrap();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GET `base` + `path` (no credentials); it must be answered 200. The answer as JSON.
pub async fn get_json(base: &str, path: &str) -> serde_json::Value {
    let r = client().get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

/// POST a FHIR message to `$process-message`; it must be answered 200. The stored message's id.
pub async fn post_fhir(base: &str, body: Vec<u8>) -> i64 {
    let r = client()
        .post(format!("{base}/fhir/$process-message"))
        .header("content-type", "application/fhir+json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()
        .get("x-kadgate-message-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("the answer names the stored message id")
}

pub async fn post_xml(base: &str, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(format!("{base}/kith"))
        .header("content-type", "application/xml")
        .body(body)
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------- model comparison (round trips)

use kadgate::model::{Message, Organisation};
use serde_json::Value;

/// A documented difference between the model before and after a round trip.
pub struct Loss {
    pub field: &'static str,
    pub why: &'static str,
    pub apply: fn(&mut Message),
}

/// Apply `f` to every JSON node of the model under one of `keys` (arrays: to each item).
pub fn each_at(m: &mut Message, keys: &[&str], f: &mut dyn FnMut(&mut Value)) {
    fn walk(v: &mut Value, keys: &[&str], f: &mut dyn FnMut(&mut Value)) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if keys.contains(&k.as_str()) {
                        match &mut *x {
                            Value::Array(a) => a.iter_mut().for_each(&mut *f),
                            Value::Null => {}
                            other => f(other),
                        }
                    }
                    walk(x, keys, f);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, keys, f)),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(&*m).unwrap();
    walk(&mut v, keys, f);
    *m = serde_json::from_value(v).expect("model round-trips through serde");
}

/// A date-time as compared: without its UTC offset, with seconds.
pub fn strip_offset(v: &mut String) {
    let b = v.as_bytes();
    let looks = v.len() >= 16 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':';
    if !looks {
        return;
    }
    if let Some(x) = v.strip_suffix('Z') {
        *v = x.to_string();
    } else if v.len() > 19 && matches!(v.as_bytes()[v.len() - 6], b'+' | b'-') {
        v.truncate(v.len() - 6);
    }
    if v.len() == 16 {
        v.push_str(":00");
    }
}

/// Every party of the message (header, body, copy receivers, care providers), top level only.
pub fn each_org(m: &mut Message, f: &mut dyn FnMut(&mut Organisation)) {
    let keys = [
        "sender",
        "receiver",
        "requester",
        "service_provider",
        "party",
        "copy_to",
    ];
    each_at(m, &keys, &mut |v| {
        if let Ok(mut o) = serde_json::from_value::<Organisation>(v.clone()) {
            f(&mut o);
            *v = serde_json::to_value(o).unwrap();
        }
    });
}
