//! A loopback stand-in for NHN's GP register and address register: an axum server on
//! `127.0.0.1:0` that checks each request is the SOAP 1.2 call the real service takes (operation in
//! the Content-Type's `action` and the `SOAPAction` header, the same in the WS-Addressing `Action`,
//! the operation element in its namespace, basic authentication when asked for), picks the answer
//! by the identity number or HER-id asked for from a table the test gives (unknown → the
//! not-found fixture), and serves the fixture files from the standards folder as they are — faults
//! with HTTP 500, as the real services send them. It can be told to answer 503, to answer slowly,
//! or to be down (nothing listening), and it counts requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
const FLR_NS: &str = "http://schemas.nhn.no/reg/flr";
const AR_NS: &str = "http://register.nhn.no/CommunicationParty";
const FLR_ACTION: &str = "http://schemas.nhn.no/reg/flr/IFlrReadOperations/GetPatientGPDetails";
const AR_ACTION: &str =
    "http://register.nhn.no/CommunicationParty/ICommunicationPartyService/GetCommunicationPartyDetails";

/// The GP register's path on the mock.
pub const GP_PATH: &str = "/flr/FlrReadOperations.svc";
/// The address register's path on the mock.
pub const AR_PATH: &str = "/ar/CommunicationPartyService.svc";

/// The fixtures' folder: `kith/registry/examples/fiks-nhn-client` under the standards.
pub fn fixtures() -> PathBuf {
    super::kith("registry/examples/fiks-nhn-client")
}

/// One fixture file's text (`adresseregisteret-client/…` or `fastlegeregisteret-client/…`).
pub fn fixture(rel: &str) -> String {
    let p = fixtures().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub const GP_FOUND: &str = "fastlegeregisteret-client/get-patient-gp.xml";
pub const GP_NOT_FOUND: &str = "fastlegeregisteret-client/get-patient-gp-not-found.xml";
pub const GP_INVALID_NIN: &str = "fastlegeregisteret-client/get-patient-gp-invalid-nin.xml";
pub const PARTY_SERVICE: &str =
    "adresseregisteret-client/get-communication-party-details-service-response.xml";
pub const PARTY_ORGANIZATION: &str =
    "adresseregisteret-client/get-communication-party-details-organzation-response.xml";
pub const PARTY_PERSON: &str =
    "adresseregisteret-client/get-communication-party-details-person-response.xml";
pub const PARTY_NO_PARENT: &str =
    "adresseregisteret-client/get-communication-party-details-no-parent-response.xml";
pub const PARTY_WITH_PARENT: &str =
    "adresseregisteret-client/get-communication-party-details-with-parent-response.xml";
pub const PARTY_NOT_FOUND: &str =
    "adresseregisteret-client/get-communication-party-details-not-found-response.xml";

/// What the mock answers for one key.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A fixture file under [`fixtures`], as it is.
    Fixture(&'static str),
    /// A body made by the test.
    Body(String),
}

/// Which answer for which question.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Identity number → the GP register's answer.
    pub gp: HashMap<String, Reply>,
    /// HER-id → the address register's answer.
    pub parties: HashMap<String, Reply>,
    /// Basic authentication the mock demands (user, password); `None` = none.
    pub credentials: Option<(String, String)>,
}

impl Table {
    pub fn gp(mut self, nin: &str, reply: Reply) -> Table {
        self.gp.insert(nin.into(), reply);
        self
    }
    pub fn party(mut self, her: &str, reply: Reply) -> Table {
        self.parties.insert(her.into(), reply);
        self
    }
    pub fn credentials(mut self, user: &str, password: &str) -> Table {
        self.credentials = Some((user.into(), password.into()));
        self
    }
}

/// How the mock behaves while up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answer from the table.
    Answer,
    /// Answer every request with this status and a plain-text body.
    Status(u16),
    /// Wait this long, then answer from the table.
    Slow(Duration),
}

#[derive(Default)]
struct Counters {
    requests: AtomicUsize,
    gp: AtomicUsize,
    parties: AtomicUsize,
    /// Requests that were not the call the real service takes (answered 400).
    malformed: AtomicUsize,
}

struct Shared {
    table: Table,
    mode: Mutex<Mode>,
    counters: Counters,
    /// Every request's path and query, as received.
    uris: Mutex<Vec<String>>,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The running mock. Stops when dropped (the server task is aborted).
pub struct NhnMock {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

impl NhnMock {
    /// Start on a free loopback port (inside a tokio runtime).
    pub async fn start(table: Table) -> NhnMock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            table,
            mode: Mutex::new(Mode::Answer),
            counters: Counters::default(),
            uris: Mutex::new(Vec::new()),
        });
        let mock = NhnMock {
            addr,
            shared,
            running: Mutex::new(None),
        };
        mock.serve(listener);
        mock
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(self.shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        *self.running.lock().expect("lock") = Some(Running { stop, task });
    }

    pub fn gp_url(&self) -> String {
        format!("http://{}{GP_PATH}", self.addr)
    }

    pub fn address_url(&self) -> String {
        format!("http://{}{AR_PATH}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().expect("lock") = mode;
    }

    /// Stop listening and close every connection: the register is down.
    pub async fn go_down(&self) {
        let running = self.running.lock().expect("lock").take();
        if let Some(r) = running {
            let _ = r.stop.send(());
            let _ = r.task.await;
        }
    }

    /// Listen again on the same port.
    pub async fn come_up(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind the same port again");
        self.serve(listener);
    }

    /// Requests received (well-formed or not).
    pub fn requests(&self) -> usize {
        self.shared.counters.requests.load(Ordering::SeqCst)
    }

    /// `GetPatientGPDetails` calls answered from the table.
    pub fn gp_requests(&self) -> usize {
        self.shared.counters.gp.load(Ordering::SeqCst)
    }

    /// `GetCommunicationPartyDetails` calls answered from the table.
    pub fn party_requests(&self) -> usize {
        self.shared.counters.parties.load(Ordering::SeqCst)
    }

    /// Requests that were not the call the real service takes.
    pub fn malformed(&self) -> usize {
        self.shared.counters.malformed.load(Ordering::SeqCst)
    }

    /// The path and query of every request received.
    pub fn uris(&self) -> Vec<String> {
        self.shared.uris.lock().expect("lock").clone()
    }
}

impl Drop for NhnMock {
    fn drop(&mut self) {
        if let Ok(mut r) = self.running.lock() {
            if let Some(r) = r.take() {
                r.task.abort();
            }
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response {
    (status, [("content-type", "text/plain")], body.to_string()).into_response()
}

/// What the request asks: the operation's action, namespace, parameter name and value.
struct Call {
    action: String,
    ns: String,
    operation: String,
    value: String,
}

/// Check the request is a SOAP 1.2 call as the services take it; why not, when it is not.
fn read_call(headers: &HeaderMap, body: &[u8]) -> Result<Call, String> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Content-Type")?;
    let mut parts = ct.split(';').map(str::trim);
    if parts.next() != Some("application/soap+xml") {
        return Err(format!("Content-Type {ct:?} is not SOAP 1.2"));
    }
    let action = parts
        .find_map(|p| p.strip_prefix("action="))
        .map(|a| a.trim_matches('"').to_string())
        .ok_or("no action in the Content-Type")?;
    let soap_action = headers
        .get("soapaction")
        .and_then(|v| v.to_str().ok())
        .map(|a| a.trim_matches('"').to_string());
    if soap_action.as_deref() != Some(action.as_str()) {
        return Err("SOAPAction differs from the Content-Type's action".into());
    }
    let doc = kadgate::xml::scan(body, &kadgate::xml::Limits::default())
        .map_err(|e| format!("request is not XML: {}", e.finding.message))?;
    let env = doc.root;
    if env.name != "Envelope" || env.ns.as_deref() != Some(SOAP12) {
        return Err("not a SOAP 1.2 envelope".into());
    }
    if env.text_at("Header/Action") != Some(action.as_str()) {
        return Err("the WS-Addressing Action differs from the HTTP action".into());
    }
    if env.text_at("Header/MessageID").is_none() || env.text_at("Header/To").is_none() {
        return Err("no WS-Addressing MessageID or To".into());
    }
    let op = env
        .at("Body")
        .and_then(|b| b.children.first())
        .ok_or("empty Body")?;
    if op.children.len() != 1 {
        return Err("the operation has not exactly one parameter".into());
    }
    let param = &op.children[0];
    Ok(Call {
        action,
        ns: op.ns.clone().unwrap_or_default(),
        operation: format!("{}/{}", op.name, param.name),
        value: param.text.clone(),
    })
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let c = &shared.counters;
    c.requests.fetch_add(1, Ordering::SeqCst);
    shared.uris.lock().expect("lock").push(
        uri.path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
    );
    let mode = *shared.mode.lock().expect("lock");
    match mode {
        Mode::Status(s) => {
            return text(
                StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "the service is unavailable",
            )
        }
        Mode::Slow(d) => tokio::time::sleep(d).await,
        Mode::Answer => {}
    }
    if let Some((user, password)) = &shared.table.credentials {
        let expected = reqwest::Client::new()
            .get("http://mock.invalid/")
            .basic_auth(user, Some(password))
            .build()
            .expect("a request")
            .headers()
            .get("authorization")
            .cloned();
        if headers.get("authorization") != expected.as_ref() {
            return text(StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    let call = match read_call(&headers, &body) {
        Ok(call) => call,
        Err(why) => {
            c.malformed.fetch_add(1, Ordering::SeqCst);
            return text(StatusCode::BAD_REQUEST, &why);
        }
    };
    let (table, not_found, counter) = match (
        uri.path(),
        call.action.as_str(),
        call.ns.as_str(),
        call.operation.as_str(),
    ) {
        (GP_PATH, FLR_ACTION, FLR_NS, "GetPatientGPDetails/patientNin") => {
            (&shared.table.gp, GP_NOT_FOUND, &c.gp)
        }
        (AR_PATH, AR_ACTION, AR_NS, "GetCommunicationPartyDetails/herId") => {
            (&shared.table.parties, PARTY_NOT_FOUND, &c.parties)
        }
        _ => {
            c.malformed.fetch_add(1, Ordering::SeqCst);
            return text(StatusCode::BAD_REQUEST, "no such operation at this address");
        }
    };
    counter.fetch_add(1, Ordering::SeqCst);
    let reply = table
        .get(call.value.trim())
        .cloned()
        .unwrap_or(Reply::Fixture(not_found));
    let answer = match reply {
        Reply::Fixture(rel) => fixture(rel),
        Reply::Body(b) => b,
    };
    let status = if answer.contains(":Fault>") {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (
        status,
        [("content-type", "application/soap+xml; charset=utf-8")],
        answer,
    )
        .into_response()
}
