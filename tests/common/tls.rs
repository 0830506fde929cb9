//! TLS for tests: a throw-away PKI made at test time (a CA, a server certificate for
//! 127.0.0.1/localhost, a client certificate, and a second CA that signed nothing of ours), and an
//! HTTPS server on a loopback port that can require a client certificate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// PEM files in a temporary directory, plus what a test server needs in DER.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing used here: trusting only it must refuse our server.
    pub other_ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Client certificate and key in one file.
    pub client_combined: PathBuf,
    /// A client certificate from `other_ca`: a server trusting only `ca` must refuse it.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

fn new_ca(name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().expect("CA key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.distinguished_name.push(DnType::CommonName, name);
    (p.self_signed(&key).expect("CA cert"), key)
}

fn leaf(
    sans: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &(Certificate, KeyPair),
) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().expect("leaf key");
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).expect("leaf params");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![usage];
    (
        p.signed_by(&key, &issuer.0, &issuer.1).expect("leaf cert"),
        key,
    )
}

/// A fresh PKI in a fresh temporary directory.
pub fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = new_ca("kadgate test CA");
    let other = new_ca("unrelated test CA");
    let server = leaf(
        &["localhost", "127.0.0.1"],
        "kad unit test server",
        ExtendedKeyUsagePurpose::ServerAuth,
        &ca,
    );
    let client = leaf(
        &[],
        "kadgate test client",
        ExtendedKeyUsagePurpose::ClientAuth,
        &ca,
    );
    let stranger = leaf(
        &[],
        "stranger client",
        ExtendedKeyUsagePurpose::ClientAuth,
        &other,
    );
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write pem");
        p
    };
    let client_pem = client.0.pem();
    let client_key_pem = client.1.serialize_pem();
    Pki {
        ca: write("ca.pem", &ca.0.pem()),
        other_ca: write("other-ca.pem", &other.0.pem()),
        client_cert: write("client.pem", &client_pem),
        client_key: write("client.key", &client_key_pem),
        client_combined: write(
            "client-combined.pem",
            &format!("{client_pem}{client_key_pem}"),
        ),
        stranger_cert: write("stranger.pem", &stranger.0.pem()),
        stranger_key: write("stranger.key", &stranger.1.serialize_pem()),
        ca_der: ca.0.der().clone(),
        server_der: server.0.der().clone(),
        server_key_der: server.1.serialize_der(),
        dir,
    }
}

/// An HTTPS server on 127.0.0.1 answering every request `200 text/plain "ok"`.
pub struct HttpsServer {
    pub addr: SocketAddr,
    /// Requests that reached the HTTP layer (a refused handshake never gets here).
    pub requests: Arc<AtomicUsize>,
    /// Connections whose TLS handshake failed on the server side.
    pub handshake_failures: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsServer {
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    pub fn handshake_failures(&self) -> usize {
        self.handshake_failures.load(Ordering::SeqCst)
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start an HTTPS server with the PKI's server certificate. `require_client_cert`: clients must
/// present a certificate chaining to the PKI's CA (rustls `WebPkiClientVerifier`).
/// `tls12_only`: offer only TLS 1.2 (the client then learns of a refusal during the handshake).
pub async fn https_server(pki: &Pki, require_client_cert: bool, tls12_only: bool) -> HttpsServer {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("protocol versions");
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).expect("add CA");
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone()));
    let mut config = builder
        .with_single_cert(vec![pki.server_der.clone()], key)
        .expect("server cert");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(AtomicUsize::new(0));
    let handshake_failures = Arc::new(AtomicUsize::new(0));
    let (req_count, hs_count) = (requests.clone(), handshake_failures.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, req_count, hs_count) =
                (acceptor.clone(), req_count.clone(), hs_count.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    hs_count.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let req_count = req_count.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        req_count.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "text/plain")
                                .body(Full::new(Bytes::from_static(b"ok")))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    HttpsServer {
        addr,
        requests,
        handshake_failures,
        task,
    }
}
