//! Transports against real servers on loopback ports: failures are classified the way the retry
//! policy needs (retry a 500, a timeout, a dropped or refused connection; do not retry a 400 or a
//! refused certificate), mutual TLS works with a client certificate and is refused without one,
//! and the drop folder writes each key once, atomically.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use kadgate::delivery::transport::{build_with, MAX_RESPONSE_BYTES};
use kadgate::delivery::{
    build, FailureKind, FolderTransport, HttpClients, Outgoing, Transport, TransportConfig,
    TransportError,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use common::tls;

/// What the plain HTTP test server saw: (Idempotency-Key, Content-Type, body) per request.
type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

async fn handle_ok(
    State(seen): State<Seen>,
    headers: HeaderMap,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    seen.lock()
        .unwrap()
        .push((h("idempotency-key"), h("content-type"), body.to_vec()));
    ([("content-type", "application/xml")], "<ack>received</ack>")
}

async fn handle_status(State(seen): State<Seen>, Path(code): Path<u16>) -> StatusCode {
    seen.lock()
        .unwrap()
        .push((String::new(), String::new(), Vec::new()));
    StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT)
}

async fn handle_hang() -> &'static str {
    tokio::time::sleep(Duration::from_secs(20)).await;
    "too late"
}

async fn handle_big() -> Vec<u8> {
    vec![b'x'; MAX_RESPONSE_BYTES + 1]
}

async fn handle_redirect() -> (StatusCode, [(&'static str, &'static str); 1]) {
    (StatusCode::FOUND, [("location", "/ok")])
}

fn app(seen: Seen) -> Router {
    Router::new()
        .route("/ok", post(handle_ok))
        .route("/status/{code}", post(handle_status))
        .route("/hang", post(handle_hang))
        .route("/big", post(handle_big))
        .route("/redirect", post(handle_redirect))
        .with_state(seen)
}

/// A plain HTTP unit system on `listener`.
async fn serve_on(listener: TcpListener) -> (SocketAddr, Seen) {
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let router = app(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, seen)
}

async fn server() -> (SocketAddr, Seen) {
    serve_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

fn http(url: String, timeout_ms: u64) -> TransportConfig {
    TransportConfig::Http {
        url,
        client_cert: None,
        client_key: None,
        ca_cert: None,
        timeout_ms,
    }
}

fn msg(key: &str, body: &'static [u8]) -> Outgoing {
    Outgoing {
        key: key.into(),
        content_type: "application/xml; charset=utf-8".into(),
        body: Bytes::from_static(body),
    }
}

async fn send_to(
    url: String,
    timeout_ms: u64,
) -> Result<kadgate::delivery::Response, TransportError> {
    let t = build(&http(url, timeout_ms)).unwrap();
    t.send(&msg("outbox-1", b"<referral/>")).await
}

#[tokio::test]
async fn success_carries_key_content_type_and_body_and_returns_the_answer() {
    let (addr, seen) = server().await;
    let t = build(&http(format!("http://{addr}/ok?secret=1"), 5000)).unwrap();
    assert_eq!(t.destination(), format!("http://{addr}/ok"));
    let r = t
        .send(&msg("outbox-42", b"<referral>x</referral>"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some("application/xml"));
    assert_eq!(r.body, b"<ack>received</ack>");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            "outbox-42".to_owned(),
            "application/xml; charset=utf-8".to_owned(),
            b"<referral>x</referral>".to_vec()
        )]
    );
}

#[tokio::test]
async fn server_errors_and_throttling_are_retryable_client_errors_are_not() {
    let (addr, seen) = server().await;
    for (code, retryable) in [
        (500, true),
        (503, true),
        (502, true),
        (429, true),
        (408, true),
        (400, false),
        (404, false),
        (422, false),
    ] {
        let e = send_to(format!("http://{addr}/status/{code}?token=abc"), 5000)
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::Status(code), "{e}");
        assert_eq!(e.retryable, retryable, "{code}: {e}");
        assert!(!e.detail.contains("token"), "query leaked: {}", e.detail);
        assert!(!e.detail.contains("referral"), "body leaked: {}", e.detail);
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        8,
        "one request per send, none repeated"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (addr, seen) = server().await;
    let e = send_to(format!("http://{addr}/redirect"), 5000)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Status(302));
    assert!(!e.retryable);
    assert!(
        seen.lock().unwrap().is_empty(),
        "the redirect target was requested"
    );
}

#[tokio::test]
async fn a_hanging_server_is_a_timeout_within_the_configured_time() {
    let (addr, _) = server().await;
    let started = Instant::now();
    let e = send_to(format!("http://{addr}/hang"), 300)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind, FailureKind::Timeout, "{e}");
    assert!(e.retryable);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn an_oversized_answer_is_refused_not_buffered() {
    let (addr, _) = server().await;
    let e = send_to(format!("http://{addr}/big"), 5000)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Io, "{e}");
    assert!(!e.retryable);
}

/// A raw listener that accepts, reads the start of the request, and drops the connection.
async fn dropping_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 64];
            let _ = sock.read(&mut buf).await;
            drop(sock);
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_connection_dropped_mid_request_is_a_retryable_reset() {
    let (addr, accepted) = dropping_server().await;
    // A body larger than one read, so the server closes with request bytes unread.
    let t = build(&http(format!("http://{addr}/in"), 5000)).unwrap();
    let big = Outgoing {
        key: "outbox-7".into(),
        content_type: "application/json".into(),
        body: Bytes::from(vec![b'{'; 256 * 1024]),
    };
    let e = t.send(&big).await.unwrap_err();
    assert_eq!(e.kind, FailureKind::Reset, "{e}");
    assert!(e.retryable);
    // A small request, fully read before the close: still a reset, not a success or a hang.
    let e = send_to(format!("http://{addr}/in"), 5000)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Reset, "{e}");
    assert!(accepted.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn a_destination_that_is_down_is_a_retryable_connect_failure_until_it_comes_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let t = build(&http(format!("http://{addr}/ok"), 2000)).unwrap();
    let m = msg("outbox-9", b"<referral/>");
    for _ in 0..3 {
        let e = t.send(&m).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::Connect, "{e}");
        assert!(e.retryable);
        assert!(e.counts_against_destination());
    }
    // The unit's system comes back on the same port: the same transport gets through.
    let (_, seen) = serve_on(TcpListener::bind(addr).await.unwrap()).await;
    assert_eq!(t.send(&m).await.unwrap().status, 200);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn bad_settings_are_config_errors_at_build_time() {
    let pki = tls::pki();
    let clients = HttpClients::new();
    let cases = [
        http("not a url".into(), 1000),
        http("ftp://127.0.0.1/x".into(), 1000),
        http("http://127.0.0.1:1/x".into(), 0),
        // Certificates for a plain http URL would send patient data in clear text.
        TransportConfig::Http {
            url: "http://127.0.0.1:1/x".into(),
            client_cert: Some(pki.client_cert.clone()),
            client_key: Some(pki.client_key.clone()),
            ca_cert: None,
            timeout_ms: 1000,
        },
        TransportConfig::Http {
            url: "https://127.0.0.1:1/x".into(),
            client_cert: None,
            client_key: Some(pki.client_key.clone()),
            ca_cert: None,
            timeout_ms: 1000,
        },
        TransportConfig::Http {
            url: "https://127.0.0.1:1/x".into(),
            client_cert: Some(pki.dir.path().join("missing.pem")),
            client_key: None,
            ca_cert: None,
            timeout_ms: 1000,
        },
        // A certificate without its key.
        TransportConfig::Http {
            url: "https://127.0.0.1:1/x".into(),
            client_cert: Some(pki.client_cert.clone()),
            client_key: None,
            ca_cert: None,
            timeout_ms: 1000,
        },
        // A key where the CA should be: no certificate in it.
        TransportConfig::Http {
            url: "https://127.0.0.1:1/x".into(),
            client_cert: None,
            client_key: None,
            ca_cert: Some(pki.client_key.clone()),
            timeout_ms: 1000,
        },
    ];
    for c in cases {
        let e = build_with(&c, &clients)
            .err()
            .unwrap_or_else(|| panic!("accepted {c:?}"));
        assert_eq!(e.kind, FailureKind::Config, "{c:?}: {e}");
        assert!(!e.retryable);
        assert!(!e.detail.contains("PRIVATE KEY"), "{e}");
    }
}

#[tokio::test]
async fn bad_keys_and_content_types_are_refused_before_sending() {
    let (addr, seen) = server().await;
    let t = build(&http(format!("http://{addr}/ok"), 5000)).unwrap();
    for (key, ct) in [
        ("../../etc/x", "application/xml"),
        ("ok-key", "bad\ncontent"),
    ] {
        let m = Outgoing {
            key: key.into(),
            content_type: ct.into(),
            body: Bytes::from_static(b"x"),
        };
        let e = t.send(&m).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::Config, "{e}");
        assert!(!e.retryable);
    }
    assert!(seen.lock().unwrap().is_empty());
}

/// HTTPS settings: an optional client certificate (and key file, unless it is in the same file)
/// and an optional CA to trust instead of the built-in roots.
fn mtls(
    url: String,
    cert: Option<(PathBuf, Option<PathBuf>)>,
    ca: Option<PathBuf>,
) -> TransportConfig {
    let (client_cert, client_key) = match cert {
        Some((c, k)) => (Some(c), k),
        None => (None, None),
    };
    TransportConfig::Http {
        url,
        client_cert,
        client_key,
        ca_cert: ca,
        timeout_ms: 5000,
    }
}

#[tokio::test]
async fn mutual_tls_gets_through_with_the_client_certificate() {
    let pki = tls::pki();
    for tls12_only in [false, true] {
        let srv = tls::https_server(&pki, true, tls12_only).await;
        let clients = HttpClients::new();
        // Certificate and key in two files, and in one.
        for cert in [
            (pki.client_cert.clone(), Some(pki.client_key.clone())),
            (pki.client_combined.clone(), None),
        ] {
            let t = build_with(
                &mtls(srv.url("/kad"), Some(cert), Some(pki.ca.clone())),
                &clients,
            )
            .unwrap();
            let r = t.send(&msg("outbox-1", b"<referral/>")).await.unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        }
        assert_eq!(srv.requests(), 2);
        assert_eq!(srv.handshake_failures(), 0);
    }
}

#[tokio::test]
async fn mutual_tls_without_an_accepted_client_certificate_is_refused_not_retried_forever() {
    let pki = tls::pki();
    for tls12_only in [false, true] {
        let srv = tls::https_server(&pki, true, tls12_only).await;
        let clients = HttpClients::new();
        let no_cert = mtls(srv.url("/kad"), None, Some(pki.ca.clone()));
        let stranger = mtls(
            srv.url("/kad"),
            Some((pki.stranger_cert.clone(), Some(pki.stranger_key.clone()))),
            Some(pki.ca.clone()),
        );
        for c in [no_cert, stranger] {
            let t = build_with(&c, &clients).unwrap();
            let started = Instant::now();
            let e = t.send(&msg("outbox-1", b"<referral/>")).await.unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(3), "hung: {e}");
            // TLS 1.3 lets the client finish its side of the handshake before the server
            // refuses, so the refusal may surface as the server's alert or as a dropped
            // connection; TLS 1.2 refuses inside the handshake.
            if tls12_only {
                assert_eq!(e.kind, FailureKind::Tls, "{e}");
            } else {
                assert!(
                    matches!(e.kind, FailureKind::Tls | FailureKind::Reset),
                    "{e}"
                );
            }
            if e.kind == FailureKind::Tls {
                assert!(!e.retryable, "{e}");
            }
        }
        assert_eq!(
            srv.requests(),
            0,
            "a request got past the refused handshake"
        );
        assert!(srv.handshake_failures() >= 2);
    }
}

#[tokio::test]
async fn an_untrusted_server_certificate_is_a_tls_failure() {
    let pki = tls::pki();
    let srv = tls::https_server(&pki, false, false).await;
    let clients = HttpClients::new();
    // Trusting only a CA that did not sign the server, and trusting the built-in roots only.
    for ca in [Some(pki.other_ca.clone()), None] {
        let t = build_with(&mtls(srv.url("/kad"), None, ca), &clients).unwrap();
        let e = t.send(&msg("outbox-1", b"<referral/>")).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::Tls, "{e}");
        assert!(!e.retryable);
        assert!(e.detail.contains("certificate"), "{e}");
    }
    assert_eq!(srv.requests(), 0);
    // With the right CA and no client certificate required, it gets through.
    let t = build_with(&mtls(srv.url("/kad"), None, Some(pki.ca.clone())), &clients).unwrap();
    assert_eq!(t.send(&msg("outbox-1", b"<r/>")).await.unwrap().status, 200);
}

#[test]
fn one_client_per_identity_and_ca() {
    let pki = tls::pki();
    let clients = HttpClients::new();
    let with = |url: &str, cert: bool, ca: Option<PathBuf>| {
        let cert = cert.then(|| (pki.client_cert.clone(), Some(pki.client_key.clone())));
        build_with(&mtls(url.into(), cert, ca), &clients).unwrap()
    };
    let _a = with("https://unit-a.test/kad", true, Some(pki.ca.clone()));
    let _b = with("https://unit-b.test/in", true, Some(pki.ca.clone()));
    assert_eq!(clients.len(), 1, "same identity and CA share a client");
    let _c = with("https://unit-c.test/in", false, Some(pki.ca.clone()));
    let _d = with("https://unit-d.test/in", true, Some(pki.other_ca.clone()));
    let _e = with("https://unit-e.test/in", false, None);
    let _f = with("http://unit-f.test/in", false, None);
    assert_eq!(clients.len(), 4);
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn folder_writes_once_per_key_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let t = build(&TransportConfig::Folder {
        dir: dir.path().to_path_buf(),
    })
    .unwrap();
    assert_eq!(t.destination(), dir.path().display().to_string());
    let first = msg("outbox-42", b"<first/>");
    let r = t.send(&first).await.unwrap();
    assert_eq!((r.status, r.content_type, r.body.len()), (0, None, 0));
    // A retried row with the same key (even if its bytes differ) leaves the first file alone.
    t.send(&msg("outbox-42", b"<second/>")).await.unwrap();
    assert_eq!(files_in(dir.path()), ["outbox-42.xml"]);
    assert_eq!(
        std::fs::read(dir.path().join("outbox-42.xml")).unwrap(),
        b"<first/>"
    );

    // A crash left a partial temp file: the next attempt replaces it and completes.
    std::fs::write(dir.path().join("outbox-43.tmp"), b"<par").unwrap();
    let json = Outgoing {
        key: "outbox-43".into(),
        content_type: "application/fhir+json".into(),
        body: Bytes::from_static(b"{\"resourceType\":\"Bundle\"}"),
    };
    t.send(&json).await.unwrap();
    let bin = Outgoing {
        key: "outbox-44".into(),
        content_type: "application/octet-stream".into(),
        body: Bytes::from(vec![0u8, 1, 2]),
    };
    t.send(&bin).await.unwrap();
    assert_eq!(
        files_in(dir.path()),
        ["outbox-42.xml", "outbox-43.json", "outbox-44.bin"]
    );
    assert_eq!(
        std::fs::read(dir.path().join("outbox-43.json")).unwrap(),
        json.body
    );
}

#[tokio::test]
async fn folder_many_concurrent_rows_each_land_once() {
    let dir = tempfile::tempdir().unwrap();
    let t: Arc<dyn Transport> = Arc::new(FolderTransport::new(dir.path()));
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let m = Outgoing {
                key: format!("outbox-{i}"),
                content_type: "application/xml".into(),
                body: Bytes::from(format!("<m n=\"{i}\"/>")),
            };
            // Every row is sent twice, as after a lost acknowledgement.
            t.send(&m).await.unwrap();
            t.send(&m).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let files = files_in(dir.path());
    assert_eq!(files.len(), 40, "{files:?}");
    assert!(files.iter().all(|f| f.ends_with(".xml")));
    for i in 0..40 {
        let body = std::fs::read_to_string(dir.path().join(format!("outbox-{i}.xml"))).unwrap();
        assert_eq!(body, format!("<m n=\"{i}\"/>"));
    }
}

#[tokio::test]
async fn folder_failures_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    let t = FolderTransport::new(dir.path().join("not-there"));
    let e = t.send(&msg("outbox-1", b"<r/>")).await.unwrap_err();
    assert_eq!(e.kind, FailureKind::Io, "{e}");
    assert!(e.retryable, "a missing or unmounted folder may come back");
    let t = FolderTransport::new(dir.path());
    let e = t.send(&msg("../escape", b"<r/>")).await.unwrap_err();
    assert_eq!(e.kind, FailureKind::Config);
    assert!(files_in(dir.path()).is_empty());
    assert!(!dir.path().parent().unwrap().join("escape.xml").exists());
}
