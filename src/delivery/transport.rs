//! Transports: how the bytes of one outbox row reach one recipient, and what went wrong when they
//! did not.
//!
//! Two transports exist: [`HttpTransport`] (an HTTP(S) POST; mutual TLS when a client certificate
//! is configured) and [`FolderTransport`] (a file in a drop folder that the recipient's system
//! polls). Both take an [`Outgoing`] — a stable key, a content type and bytes — and either deliver
//! it or return a [`TransportError`] that says what kind of failure it was and whether trying
//! again can help. [`build`] makes one from plain settings ([`TransportConfig`]).
//!
//! Exactly once: a transport may be asked to send the same row more than once (a timeout or a
//! dropped connection leaves it unknown whether the recipient got it; a worker may crash between
//! sending and recording). The row's key makes a repeat harmless: HTTP sends it as
//! `Idempotency-Key` for the recipient to deduplicate on, and the folder transport writes
//! `<key>.<ext>` once and never again while that file is there.
//!
//! What this module must NOT do: look inside a body (it knows no message format), put body bytes,
//! URL queries or key material into an error, a log line or a `Debug` string, follow redirects
//! (a 3xx is a failure: patient data goes only where it was configured to go), or use a proxy.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The largest response body an HTTP recipient may answer with (an AppRec or a FHIR response is a
/// few kilobytes); a larger one is a failure rather than a reason to buffer without bound.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The longest key accepted; keys become file names and header values.
pub const MAX_KEY_LEN: usize = 128;

/// One thing to deliver: the transport sees nothing but these three.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Stable idempotency key, the same on every attempt for the same row (e.g. `outbox-42`).
    /// ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit, at most
    /// [`MAX_KEY_LEN`] bytes: it is a file name for the folder transport and a header for HTTP.
    pub key: String,
    /// MIME type of the body, e.g. `application/xml` or `application/fhir+json`.
    pub content_type: String,
    pub body: Bytes,
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("key", &self.key)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// What the recipient answered. For the folder transport: `status` 0, no content type, empty body.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// What kind of failure a send ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No connection could be made (refused, unreachable, name not resolved).
    Connect,
    /// The configured time passed before the answer was complete.
    Timeout,
    /// The connection was dropped before a complete answer arrived.
    Reset,
    /// The recipient answered with a status other than 2xx.
    Status(u16),
    /// The TLS handshake failed: a certificate was refused on either side.
    Tls,
    /// A local I/O failure (the drop folder), or a transport failure of no other kind.
    Io,
    /// The settings or the row cannot work (bad URL or PEM, bad key, bad content type).
    Config,
}

impl FailureKind {
    /// Whether a later attempt can succeed without anyone changing anything.
    ///
    /// Status 408, 429 and 5xx are the recipient saying "not now"; any other status is an answer
    /// about the message itself. A refused certificate is a configuration matter on one side or
    /// the other: retrying it only hides it, so it goes to the dead letters at once.
    pub fn is_retryable(self) -> bool {
        match self {
            FailureKind::Connect | FailureKind::Timeout | FailureKind::Reset | FailureKind::Io => {
                true
            }
            FailureKind::Status(s) => s == 408 || s == 429 || (500..600).contains(&s),
            FailureKind::Tls | FailureKind::Config => false,
        }
    }

    /// A short stable label for metrics: `connect`, `timeout`, `reset`, `status`, `tls`, `io`,
    /// `config`.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Reset => "reset",
            FailureKind::Status(_) => "status",
            FailureKind::Tls => "tls",
            FailureKind::Io => "io",
            FailureKind::Config => "config",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Status(s) => write!(f, "status {s}"),
            other => f.write_str(other.label()),
        }
    }
}

/// A failed send. `detail` names the destination and the failure, never body content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct TransportError {
    pub kind: FailureKind,
    pub retryable: bool,
    pub detail: String,
    /// For a `Status` failure: what the recipient answered (it may be a negative receipt — an
    /// AppRec or a FHIR response — that says why). Never logged.
    pub answer: Option<Response>,
}

impl TransportError {
    /// An error whose retryability is the kind's ([`FailureKind::is_retryable`]).
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        TransportError {
            kind,
            retryable: kind.is_retryable(),
            detail: detail.into(),
            answer: None,
        }
    }

    /// Whether this failure says something about the destination's health, i.e. should count
    /// against its circuit breaker. A 4xx other than 408/429 is an answer about one message and a
    /// `Config` failure is ours; neither means the destination is down.
    pub fn counts_against_destination(&self) -> bool {
        match self.kind {
            FailureKind::Config => false,
            FailureKind::Status(_) => self.kind.is_retryable(),
            _ => true,
        }
    }
}

/// Delivers [`Outgoing`] messages to one destination.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Deliver one message. Safe to call again with the same key after any failure.
    async fn send(&self, msg: &Outgoing) -> Result<Response, TransportError>;
    /// The destination for breaker keys and logs: the URL without credentials, query or fragment,
    /// or the folder's path.
    fn destination(&self) -> &str;
}

/// Plain settings for one destination; [`build`] turns them into a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// HTTP(S) POST to `url`. `client_cert` (PEM, one or more certificates) and `client_key` (PEM
    /// private key) give mutual TLS; without `client_key` the key is read from the
    /// `client_cert` file. `ca_cert` (PEM bundle): when given, the server's certificate must chain
    /// to it and to nothing else; when absent, the Mozilla root set (webpki-roots) is trusted.
    Http {
        url: String,
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
        ca_cert: Option<PathBuf>,
        timeout_ms: u64,
    },
    /// Files in a drop folder, written atomically and once per key.
    Folder { dir: PathBuf },
}

/// Build a transport from plain settings, sharing HTTP clients through [`HttpClients::shared`].
/// Certificate files are read here, once (blocking file reads: call it at start or when the
/// directory of parties is reloaded, not per send); a problem with them is a `Config` error.
pub fn build(config: &TransportConfig) -> Result<Box<dyn Transport>, TransportError> {
    build_with(config, HttpClients::shared())
}

/// [`build`] with an explicit client cache.
pub fn build_with(
    config: &TransportConfig,
    clients: &HttpClients,
) -> Result<Box<dyn Transport>, TransportError> {
    match config {
        TransportConfig::Folder { dir } => Ok(Box::new(FolderTransport::new(dir.clone()))),
        TransportConfig::Http {
            url,
            client_cert,
            client_key,
            ca_cert,
            timeout_ms,
        } => {
            let read = |what: &str, p: &Path| {
                std::fs::read(p).map_err(|e| {
                    TransportError::new(
                        FailureKind::Config,
                        format!("cannot read {what} {}: {e}", p.display()),
                    )
                })
            };
            let identity_pem = match (client_cert, client_key) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(TransportError::new(
                        FailureKind::Config,
                        "a client key is configured without a client certificate",
                    ))
                }
                (Some(cert), key) => {
                    let mut pem = read("client certificate", cert)?;
                    if let Some(key) = key {
                        pem.push(b'\n');
                        pem.extend(read("client key", key)?);
                    }
                    Some(pem)
                }
            };
            let ca_pem = match ca_cert {
                Some(p) => Some(read("CA certificate", p)?),
                None => None,
            };
            let settings = HttpSettings {
                url: url.clone(),
                timeout: Duration::from_millis(*timeout_ms),
                identity_pem,
                ca_pem,
            };
            Ok(Box::new(HttpTransport::new(settings, clients)?))
        }
    }
}

/// Settings of one HTTP destination, with the PEM contents already read.
#[derive(Clone)]
pub struct HttpSettings {
    pub url: String,
    /// The whole request: connect, TLS, sending, and reading the complete answer.
    pub timeout: Duration,
    /// Client certificate chain and private key, PEM, in one buffer.
    pub identity_pem: Option<Vec<u8>>,
    /// CA bundle the server's certificate must chain to (instead of the built-in roots).
    pub ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSettings")
            .field("url", &strip_url(&self.url))
            .field("timeout", &self.timeout)
            .field("client_identity", &self.identity_pem.is_some())
            .field("ca", &self.ca_pem.is_some())
            .finish()
    }
}

/// The HTTP clients in use, one per (client identity, trusted CA): a client holds a connection
/// pool and a TLS configuration, both expensive to make, so every destination with the same TLS
/// material shares one. Cheap to clone (shared inside). Pooled connections belong to the tokio
/// runtime that opened them: a program (or test) that starts several runtimes gives each its own
/// `HttpClients` rather than the process-wide [`HttpClients::shared`].
#[derive(Clone, Default)]
pub struct HttpClients {
    inner: Arc<Mutex<HashMap<[u8; 32], reqwest::Client>>>,
}

impl HttpClients {
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide cache [`build`] uses.
    pub fn shared() -> &'static HttpClients {
        static SHARED: OnceLock<HttpClients> = OnceLock::new();
        SHARED.get_or_init(HttpClients::new)
    }

    /// How many distinct clients exist.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], reqwest::Client>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client for this TLS material, made on first use. Keyed by a digest so the map's keys
    /// hold no key material.
    fn client(
        &self,
        identity_pem: Option<&[u8]>,
        ca_pem: Option<&[u8]>,
    ) -> Result<reqwest::Client, TransportError> {
        let mut h = Sha256::new();
        for part in [identity_pem, ca_pem] {
            match part {
                Some(b) => {
                    h.update([1]);
                    h.update((b.len() as u64).to_le_bytes());
                    h.update(b);
                }
                None => h.update([0]),
            }
        }
        let key: [u8; 32] = h.finalize().into();
        let mut map = self.lock();
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let client = new_client(identity_pem, ca_pem)?;
        map.insert(key, client.clone());
        Ok(client)
    }
}

fn new_client(
    identity_pem: Option<&[u8]>,
    ca_pem: Option<&[u8]>,
) -> Result<reqwest::Client, TransportError> {
    let config = |what: &str, e: reqwest::Error| {
        TransportError::new(FailureKind::Config, format!("{what}: {}", causes_text(&e)))
    };
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("kadgate/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = identity_pem {
        let id = reqwest::Identity::from_pem(pem)
            .map_err(|e| config("client certificate or key is not usable PEM", e))?;
        b = b.identity(id);
    }
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| config("CA certificate is not usable PEM", e))?;
        if certs.is_empty() {
            return Err(TransportError::new(
                FailureKind::Config,
                "CA certificate file holds no certificate",
            ));
        }
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| config("cannot set up HTTP client", e))
}

/// HTTP(S) POST of the body to one URL, with headers `Content-Type` and `Idempotency-Key`.
///
/// 2xx → the answer (at most [`MAX_RESPONSE_BYTES`]); 408, 429, 5xx → a retryable `Status`;
/// any other status (3xx included, redirects are not followed) → a non-retryable `Status`.
/// Transport failures are classified as `Connect`, `Timeout`, `Reset`, `Tls` or `Io`.
pub struct HttpTransport {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    destination: String,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("destination", &self.destination)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HttpTransport {
    pub fn new(settings: HttpSettings, clients: &HttpClients) -> Result<Self, TransportError> {
        let url = reqwest::Url::parse(&settings.url).map_err(|e| {
            TransportError::new(
                FailureKind::Config,
                format!("not a URL ({e}): {}", strip_url(&settings.url)),
            )
        })?;
        let destination = destination_of(&url);
        match url.scheme() {
            "https" => {}
            "http" if settings.identity_pem.is_some() || settings.ca_pem.is_some() => {
                return Err(TransportError::new(
                    FailureKind::Config,
                    format!("TLS certificates are configured for a plain http URL: {destination}"),
                ))
            }
            "http" => {}
            other => {
                return Err(TransportError::new(
                    FailureKind::Config,
                    format!("URL scheme {other:?} is neither http nor https: {destination}"),
                ))
            }
        }
        if settings.timeout.is_zero() {
            return Err(TransportError::new(
                FailureKind::Config,
                format!("timeout is zero for {destination}"),
            ));
        }
        let client =
            clients.client(settings.identity_pem.as_deref(), settings.ca_pem.as_deref())?;
        Ok(HttpTransport {
            client,
            url,
            timeout: settings.timeout,
            destination,
        })
    }

    fn fail(&self, kind: FailureKind, what: impl fmt::Display) -> TransportError {
        TransportError::new(kind, format!("POST {}: {what}", self.destination))
    }

    async fn read_body(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, TransportError> {
        let too_large = || {
            let mut e = self.fail(
                FailureKind::Io,
                format!("answer body larger than {MAX_RESPONSE_BYTES} bytes"),
            );
            e.retryable = false;
            e
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => return Err(self.classify(&e)),
            }
        }
    }

    /// Sort a reqwest failure into a [`FailureKind`]. TLS is looked for first (a refused
    /// certificate also surfaces as a connect error or a dropped connection), then a dropped
    /// connection, then the rest.
    fn classify(&self, e: &reqwest::Error) -> TransportError {
        let chain = causes(e);
        let kind = if e.is_builder() {
            FailureKind::Config
        } else if e.is_timeout() {
            FailureKind::Timeout
        } else if chain.iter().any(|c| c.is::<rustls::Error>()) {
            FailureKind::Tls
        } else if chain.iter().any(|c| is_dropped(*c)) {
            FailureKind::Reset
        } else if e.is_connect() {
            FailureKind::Connect
        } else {
            FailureKind::Io
        };
        self.fail(kind, causes_text(e))
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, msg: &Outgoing) -> Result<Response, TransportError> {
        check_key(&msg.key)?;
        let content_type = reqwest::header::HeaderValue::from_str(&msg.content_type)
            .map_err(|_| self.fail(FailureKind::Config, "content type is not a header value"))?;
        let resp = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header("Idempotency-Key", msg.key.as_str())
            .body(msg.body.clone())
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !status.is_success() {
            let mut e = self.fail(
                FailureKind::Status(status.as_u16()),
                format!("answered {status}"),
            );
            e.answer = self.read_body(resp).await.ok().map(|body| Response {
                status: status.as_u16(),
                content_type,
                body,
            });
            return Err(e);
        }
        let body = self.read_body(resp).await?;
        Ok(Response {
            status: status.as_u16(),
            content_type,
            body,
        })
    }

    fn destination(&self) -> &str {
        &self.destination
    }
}

/// `scheme://host[:port]/path`: no credentials, query or fragment.
fn destination_of(url: &reqwest::Url) -> String {
    let mut d = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        d.push_str(&format!(":{port}"));
    }
    d.push_str(url.path());
    d
}

/// A URL for a message when it did not parse: cut at the first `?` or `#`, credentials dropped.
fn strip_url(url: &str) -> String {
    let cut = url.find(['?', '#']).map_or(url, |i| &url[..i]);
    match (cut.find("://"), cut.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &cut[..s + 3], &cut[at + 1..]),
        _ => cut.to_owned(),
    }
}

/// The error and its causes, looking inside `io::Error`s too (their `source()` skips the error
/// they wrap, which is where rustls and hyper put theirs).
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        out.push(c);
        if out.len() > 32 {
            break;
        }
        cur = match c.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => std::error::Error::source(io),
            },
            None => c.source(),
        };
    }
    out
}

/// The causes' messages, outermost (reqwest's, which quotes the whole URL) left out, repeats
/// dropped: e.g. `client error (Connect): tcp connect error: Connection refused (os error 111)`.
pub(crate) fn causes_text(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in causes(e).into_iter().skip(1) {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    if parts.is_empty() {
        // No cause to quote: say what reqwest says, minus the URL.
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_body() {
            "body failed"
        } else {
            "request failed"
        };
        return kind.to_owned();
    }
    parts.join(": ")
}

fn is_dropped(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind::*;
        return matches!(
            io.kind(),
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
        );
    }
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        return h.is_incomplete_message() || h.is_closed() || h.is_canceled();
    }
    false
}

/// The file extension the folder transport gives a content type: `xml` for `application/xml`,
/// `text/xml` and `*+xml`; `json` for `application/json` and `*+json`; `bin` for anything else.
pub fn file_extension(content_type: &str) -> &'static str {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/xml" | "text/xml" => "xml",
        "application/json" => "json",
        s if s.ends_with("+xml") => "xml",
        s if s.ends_with("+json") => "json",
        _ => "bin",
    }
}

/// A key is safe as a file name and as a header value.
fn check_key(key: &str) -> Result<(), TransportError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.as_bytes()[0].is_ascii_alphanumeric()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(TransportError::new(
            FailureKind::Config,
            format!(
                "idempotency key is not 1-{MAX_KEY_LEN} letters, digits, '.', '_' or '-' \
                 starting with a letter or digit"
            ),
        ))
    }
}

/// Files in a drop folder: `<key>.tmp` is written and fsynced, renamed to `<key>.<ext>`
/// ([`file_extension`]) and the folder fsynced, so the recipient never sees a partial file.
/// When `<key>.<ext>` is there already the send succeeds without writing: a retried row never
/// makes a second file. (If the recipient has already taken the file away, a repeat does write
/// it again; the recipient deduplicates on the file name as it does on the message id.)
/// The recipient must ignore `*.tmp`. One writer per key at a time is the worker's lease.
#[derive(Debug, Clone)]
pub struct FolderTransport {
    dir: PathBuf,
    destination: String,
}

impl FolderTransport {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let destination = dir.display().to_string();
        FolderTransport { dir, destination }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The final path a message is written to.
    pub fn path_for(&self, msg: &Outgoing) -> PathBuf {
        self.dir
            .join(format!("{}.{}", msg.key, file_extension(&msg.content_type)))
    }
}

/// Write `body` to `path` through `tmp` unless `path` exists. Returns whether it wrote.
fn write_once(dir: &Path, tmp: &Path, path: &Path, body: &[u8]) -> std::io::Result<bool> {
    use std::io::Write;
    if path.try_exists()? {
        return Ok(false);
    }
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(tmp, path)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(true)
}

#[async_trait]
impl Transport for FolderTransport {
    async fn send(&self, msg: &Outgoing) -> Result<Response, TransportError> {
        check_key(&msg.key)?;
        let dir = self.dir.clone();
        let tmp = self.dir.join(format!("{}.tmp", msg.key));
        let path = self.path_for(msg);
        let body = msg.body.clone();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fail = |what: String| {
            TransportError::new(
                FailureKind::Io,
                format!("{} ({name}): {what}", self.destination),
            )
        };
        match tokio::task::spawn_blocking(move || write_once(&dir, &tmp, &path, &body)).await {
            Ok(Ok(_)) => Ok(Response::default()),
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(e) => Err(fail(format!("writer task failed: {e}"))),
        }
    }

    fn destination(&self) -> &str {
        &self.destination
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_by_content_type() {
        assert_eq!(file_extension("application/xml"), "xml");
        assert_eq!(file_extension("Text/XML; charset=ISO-8859-1"), "xml");
        assert_eq!(file_extension("application/fhir+xml"), "xml");
        assert_eq!(
            file_extension("application/fhir+json;fhirVersion=4.0"),
            "json"
        );
        assert_eq!(file_extension("application/json"), "json");
        assert_eq!(file_extension("application/pdf"), "bin");
        assert_eq!(file_extension(""), "bin");
    }

    #[test]
    fn keys_are_file_names() {
        for good in ["outbox-42", "a", "A.b_c-1", &"k".repeat(MAX_KEY_LEN)] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "../x",
            "a/b",
            "a\\b",
            "a b",
            "ø",
            "-x",
            &"k".repeat(MAX_KEY_LEN + 1),
        ] {
            let e = check_key(bad).unwrap_err();
            assert_eq!(e.kind, FailureKind::Config, "{bad}");
            assert!(!e.retryable);
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(FailureKind::Status(s).is_retryable(), "{s}");
        }
        for s in [300, 301, 400, 401, 403, 404, 409, 413, 422] {
            assert!(!FailureKind::Status(s).is_retryable(), "{s}");
        }
        let e = TransportError::new(FailureKind::Status(400), "x");
        assert!(!e.counts_against_destination());
        assert!(TransportError::new(FailureKind::Status(503), "x").counts_against_destination());
        assert!(TransportError::new(FailureKind::Reset, "x").counts_against_destination());
        assert!(!TransportError::new(FailureKind::Config, "x").counts_against_destination());
    }

    #[test]
    fn destinations_hide_credentials_and_queries() {
        let u = reqwest::Url::parse("https://user:pw@unit.example:8443/kad/in?x=1#f").unwrap();
        assert_eq!(destination_of(&u), "https://unit.example:8443/kad/in");
        assert_eq!(
            strip_url("https://user:pw@unit.example/a?b=c"),
            "https://unit.example/a"
        );
        assert_eq!(strip_url("no url at all"), "no url at all");
    }

    #[test]
    fn debug_shows_no_body() {
        let m = Outgoing {
            key: "k".into(),
            content_type: "application/xml".into(),
            body: Bytes::from_static(b"<secret/>"),
        };
        let d = format!("{m:?}");
        assert!(!d.contains("secret") && d.contains("body_len: 9"), "{d}");
        let r = Response {
            status: 200,
            content_type: None,
            body: b"secret".to_vec(),
        };
        assert!(!format!("{r:?}").contains("secret"));
    }
}
