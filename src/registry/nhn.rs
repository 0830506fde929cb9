//! NHN's registers: the GP register (Fastlegeregisteret: which GP a patient has) and the address
//! register (Adresseregisteret: who a HER-id is), as SOAP 1.2 clients ([`NhnClient`]), and
//! [`NhnDirectory`], the [`Directory`] that asks them for GPs and parties and a local directory
//! (a [`FileDirectory`](super::FileDirectory)) for everything else.
//!
//! What it does:
//! - builds the two requests itself (`GetPatientGPDetails` with `patientNin`,
//!   `GetCommunicationPartyDetails` with `herId`), POSTs them as SOAP 1.2 (the operation in the
//!   `action` parameter of the Content-Type and in a `SOAPAction` header, WS-Addressing `Action`,
//!   `MessageID` and `To` in the envelope), with HTTP basic authentication when configured, over
//!   reqwest with rustls, a timeout, no redirects and no proxy;
//! - reads the answers with the hardened XML reader (`crate::xml`), by namespace where it tells the
//!   answer from a fault and by local name inside it;
//! - sorts every outcome into found / not found / an error: the not-found faults ("Personen er
//!   ikke tilknyttet fastlegekontrakt", `InvalidHerIdSupplied`) are `Ok(None)`; the invalid-number
//!   fault is [`RegistryError::Rejected`]; no connection, a timeout, a 5xx without a SOAP fault or a
//!   `Receiver` fault is [`RegistryError::Unavailable`]; anything that cannot be read is
//!   [`RegistryError::BadAnswer`], as is an answer about another patient or party than asked.
//!
//! What it must NOT do: put what it was asked (an identity number) in an error, a log line or a
//! URL; copy a register's fault text into an error (it may quote the question); follow a
//! redirect; send a password over plain HTTP to anything but the loopback interface; say "not
//! found" for a register it could not reach or read. It has no cache of its own: put it behind
//! [`Cached`](super::Cached) ([`open_directory`](super::open_directory) does).

use std::fmt;
use std::time::Duration;

use chrono::NaiveDate;

use super::{Directory, GpAssignment, KadUnit, OpenError, Party, PartyKind, RegistryError};
use crate::ident::{valid_her_id, valid_hpr_number, valid_org_number};
use crate::model::Format;
use crate::xml::{self, Element, Limits};

const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
const WSA_NS: &str = "http://www.w3.org/2005/08/addressing";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Largest answer read (an organisation's details list its services and people).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The register names used in errors ("the GP register is unavailable").
const GP_REGISTER: &str = "GP";
const ADDRESS_REGISTER: &str = "address";

/// The formats a party with an active EDI address (`E_EDI`) is taken to accept: the current version
/// of each KITH message kadgate writes (referral, epicrisis, dialogue). NHN's answer does not say
/// which versions a party reads; an entry in the local directory with `formats` overrides this.
pub const EDI_FORMATS: [Format; 3] = [
    Format::Henvisning20,
    Format::Epikrise12,
    Format::Dialogmelding11,
];

/// What a party NHN cannot place is taken to be: a GP office. The organisations kadgate looks up
/// in NHN are a GP's office (the parent of the GP the GP register names) and referrers, most of
/// them GP offices. A local directory entry for the HER-id overrides it.
pub const DEFAULT_KIND: PartyKind = PartyKind::GpOffice;

/// One SOAP operation: where its names live and what it is called.
struct Operation {
    register: &'static str,
    ns: &'static str,
    name: &'static str,
    response: &'static str,
    result: &'static str,
    param: &'static str,
    action: &'static str,
}

const GET_PATIENT_GP_DETAILS: Operation = Operation {
    register: GP_REGISTER,
    ns: "http://schemas.nhn.no/reg/flr",
    name: "GetPatientGPDetails",
    response: "GetPatientGPDetailsResponse",
    result: "GetPatientGPDetailsResult",
    param: "patientNin",
    action: "http://schemas.nhn.no/reg/flr/IFlrReadOperations/GetPatientGPDetails",
};

const GET_COMMUNICATION_PARTY_DETAILS: Operation = Operation {
    register: ADDRESS_REGISTER,
    ns: "http://register.nhn.no/CommunicationParty",
    name: "GetCommunicationPartyDetails",
    response: "GetCommunicationPartyDetailsResponse",
    result: "GetCommunicationPartyDetailsResult",
    param: "herId",
    action: "http://register.nhn.no/CommunicationParty/ICommunicationPartyService/GetCommunicationPartyDetails",
};

/// Where the registers are and how to log in. `Debug` does not show the password.
#[derive(Clone)]
pub struct NhnSettings {
    /// The GP register's SOAP endpoint (`…/FlrReadOperations.svc` or the like).
    pub gp_register_url: String,
    /// The address register's SOAP endpoint (`…/CommunicationPartyService.svc` or the like).
    pub address_register_url: String,
    /// HTTP basic authentication, both or neither.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Per request, connecting included.
    pub timeout: Duration,
}

impl fmt::Debug for NhnSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NhnSettings")
            .field("gp_register_url", &self.gp_register_url)
            .field("address_register_url", &self.address_register_url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Check a register URL: http(s) with a host, no credentials or fragment in it; plain `http` with
/// a password only to the loopback interface (a test double, or a local tunnel).
pub fn check_register_url(url: &str, with_password: bool) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err("the URL must not hold credentials (use username and password_env)".into());
    }
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "{url:?}: the URL must start with http:// or https://"
        ));
    }
    let Some(host) = u.host_str().filter(|h| !h.is_empty()) else {
        return Err(format!("{url:?}: the URL has no host"));
    };
    if u.fragment().is_some() {
        return Err(format!("{url:?}: the URL must not have a #fragment"));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if with_password && u.scheme() == "http" && !loopback {
        return Err(format!(
            "{url:?}: a password is sent only over https (plain http only to the loopback interface)"
        ));
    }
    Ok(u)
}

/// The GP register's answer for a patient: the GP's HER-id and the list period when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientGp {
    pub gp_her_id: String,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// The address register's answer for a HER-id: the party, and for a person the organisations the
/// answer carries (a GP's office), so that the office needs no second request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyDetails {
    pub party: Party,
    pub organisations: Vec<Party>,
}

/// A client of both registers. Cheap to clone (the HTTP client is shared inside).
#[derive(Clone)]
pub struct NhnClient {
    http: reqwest::Client,
    gp_url: reqwest::Url,
    address_url: reqwest::Url,
    auth: Option<(String, String)>,
    timeout: Duration,
}

impl fmt::Debug for NhnClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NhnClient")
            .field("gp_register", &self.gp_url.as_str())
            .field("address_register", &self.address_url.as_str())
            .field("basic_auth", &self.auth.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a SOAP call came back with.
enum Answer {
    /// The operation's response element.
    Response(Element),
    Fault(Fault),
}

/// A SOAP fault, as far as it is needed to sort it. Holds the register's own text, which may quote
/// the question: used for matching only, never shown (no `Debug`).
struct Fault {
    receiver: bool,
    error_code: Option<String>,
    text: String,
}

impl Fault {
    fn read(f: &Element) -> Fault {
        let code = f.text_at("Code/Value").unwrap_or("");
        let receiver = code.rsplit(':').next() == Some("Receiver");
        let generic = f.at("Detail/GenericFault");
        let mut text = String::new();
        if let Some(reason) = f.child("Reason") {
            for t in reason.children_named("Text") {
                text.push_str(&t.text);
                text.push('\n');
            }
        }
        if let Some(m) = generic.and_then(|g| g.text_at("Message")) {
            text.push_str(m);
        }
        Fault {
            receiver,
            error_code: generic
                .and_then(|g| g.text_at("ErrorCode"))
                .map(str::to_owned),
            text: text.to_lowercase(),
        }
    }

    fn mentions(&self, words: &str) -> bool {
        self.text.contains(words)
    }

    /// The fault's error code when it is a plain token (never free text).
    fn code(&self) -> &str {
        match self.error_code.as_deref() {
            Some(c)
                if !c.is_empty()
                    && c.len() <= 64
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                c
            }
            _ => "without a code",
        }
    }

    /// A fault that is not one of the known answers: the register's own trouble, or a refusal.
    fn into_error(self, register: &str) -> RegistryError {
        if self.receiver {
            unavailable(
                register,
                format!("it reported a fault of its own ({})", self.code()),
            )
        } else {
            RegistryError::Rejected {
                register: register.into(),
                reason: format!("it refused the request (fault {})", self.code()),
            }
        }
    }
}

fn unavailable(register: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::Unavailable {
        register: register.into(),
        reason: reason.into(),
    }
}

fn bad_answer(register: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::BadAnswer {
        register: register.into(),
        reason: reason.into(),
    }
}

impl NhnClient {
    /// A client for the registers in `settings`; checks the URLs and the credentials.
    pub fn new(settings: NhnSettings) -> Result<NhnClient, OpenError> {
        let auth = match (settings.username, settings.password) {
            (Some(u), Some(p)) if !u.is_empty() => Some((u, p)),
            (None, None) => None,
            _ => {
                return Err(OpenError::Setup(
                    "NHN basic authentication needs both a username and a password".into(),
                ))
            }
        };
        let url = |u: &str, what: &str| {
            check_register_url(u, auth.is_some())
                .map_err(|e| OpenError::Setup(format!("{what}: {e}")))
        };
        let gp_url = url(&settings.gp_register_url, "the GP register")?;
        let address_url = url(&settings.address_register_url, "the address register")?;
        if settings.timeout.is_zero() {
            return Err(OpenError::Setup("the NHN register timeout is zero".into()));
        }
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("kadgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                OpenError::Setup(format!(
                    "cannot set up the NHN register client: {}",
                    crate::delivery::transport::causes_text(&e)
                ))
            })?;
        Ok(NhnClient {
            http,
            gp_url,
            address_url,
            auth,
            timeout: settings.timeout,
        })
    }

    /// The patient's GP today (`GetPatientGPDetails`). `Ok(None)`: the patient has no GP (not on a
    /// list, or on a list without a GP). A number that is not 11 digits is refused without asking.
    pub async fn patient_gp(&self, nin: &str) -> Result<Option<PatientGp>, RegistryError> {
        let op = &GET_PATIENT_GP_DETAILS;
        let nin = nin.trim();
        if nin.len() != 11 || !nin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegistryError::Rejected {
                register: op.register.into(),
                reason: "the identity number is not 11 digits (not asked)".into(),
            });
        }
        match self.call(op, &self.gp_url, nin).await? {
            Answer::Fault(f) if f.mentions("ikke tilknyttet fastlegekontrakt") => Ok(None),
            Answer::Fault(f) if !f.receiver && f.mentions("ugyldig") => {
                Err(RegistryError::Rejected {
                    register: op.register.into(),
                    reason: "it says the identity number is not valid".into(),
                })
            }
            Answer::Fault(f) => Err(f.into_error(op.register)),
            Answer::Response(r) => read_patient_gp(&r, nin),
        }
    }

    /// The party with this HER-id (`GetCommunicationPartyDetails`). `Ok(None)`: the register has
    /// no such party, or the HER-id is not one (not asked).
    pub async fn party_details(&self, her_id: &str) -> Result<Option<PartyDetails>, RegistryError> {
        let op = &GET_COMMUNICATION_PARTY_DETAILS;
        let Some(her) = her_number(her_id) else {
            return Ok(None);
        };
        match self.call(op, &self.address_url, &her.to_string()).await? {
            Answer::Fault(f) if f.error_code.as_deref() == Some("InvalidHerIdSupplied") => Ok(None),
            Answer::Fault(f) => Err(f.into_error(op.register)),
            Answer::Response(r) => read_party_details(&r, her),
        }
    }

    /// POST one request and read the envelope that comes back.
    async fn call(
        &self,
        op: &Operation,
        url: &reqwest::Url,
        value: &str,
    ) -> Result<Answer, RegistryError> {
        let register = op.register;
        let down = |e: reqwest::Error| {
            let what = if e.is_timeout() {
                format!("no answer within {} ms", self.timeout.as_millis())
            } else {
                crate::delivery::transport::causes_text(&e)
            };
            unavailable(register, what)
        };
        let mut req = self
            .http
            .post(url.clone())
            .timeout(self.timeout)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!(
                    "application/soap+xml; charset=utf-8; action=\"{}\"",
                    op.action
                ),
            )
            .header("SOAPAction", format!("\"{}\"", op.action))
            .body(envelope(op, url.as_str(), value));
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, Some(password));
        }
        let mut resp = req.send().await.map_err(down)?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(down)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(bad_answer(
                    register,
                    format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        match read_envelope(&body, op) {
            Ok(a @ Answer::Fault(_)) => Ok(a),
            Ok(a) if status.is_success() => Ok(a),
            Err(reason) if status.is_success() => Err(bad_answer(register, reason)),
            _ => Err(unavailable(register, format!("it answered {status}"))),
        }
    }
}

/// The HER-id as the number the address register takes (`xs:int`), if it is one.
fn her_number(s: &str) -> Option<i32> {
    let s = s.trim();
    if !valid_her_id(s) {
        return None;
    }
    s.parse::<i32>().ok().filter(|n| *n > 0)
}

/// Text for XML content and attribute values.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// The request: a SOAP 1.2 envelope with WS-Addressing headers and the operation's one parameter.
fn envelope(op: &Operation, to: &str, value: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<s:Envelope xmlns:s="{soap}" xmlns:a="{wsa}"><s:Header>"#,
            r#"<a:Action s:mustUnderstand="1">{action}</a:Action>"#,
            r#"<a:MessageID>urn:uuid:{id}</a:MessageID>"#,
            r#"<a:To s:mustUnderstand="1">{to}</a:To>"#,
            r#"</s:Header><s:Body><{name} xmlns="{ns}"><{param}>{value}</{param}></{name}></s:Body></s:Envelope>"#
        ),
        soap = SOAP12_NS,
        wsa = WSA_NS,
        action = op.action,
        id = uuid::Uuid::new_v4(),
        to = escape(to),
        name = op.name,
        ns = op.ns,
        param = op.param,
        value = escape(value),
    )
}

/// The operation's response element or the fault in a SOAP 1.2 envelope; why not, in words that
/// quote nothing of the answer.
fn read_envelope(bytes: &[u8], op: &Operation) -> Result<Answer, String> {
    let limits = Limits {
        max_bytes: MAX_ANSWER_BYTES,
        ..Limits::default()
    };
    let doc = xml::scan(bytes, &limits)
        .map_err(|e| format!("the answer is not readable XML ({})", e.finding.code))?;
    let root = doc.root;
    if root.name != "Envelope" || root.ns.as_deref() != Some(SOAP12_NS) {
        return Err("the answer is not a SOAP 1.2 envelope".into());
    }
    let Some(body) = root
        .children
        .into_iter()
        .find(|c| c.name == "Body" && c.ns.as_deref() == Some(SOAP12_NS))
    else {
        return Err("the envelope has no Body".into());
    };
    let Some(first) = body.children.into_iter().next() else {
        return Err("the envelope's Body is empty".into());
    };
    if first.name == "Fault" && first.ns.as_deref() == Some(SOAP12_NS) {
        return Ok(Answer::Fault(Fault::read(&first)));
    }
    if first.name == op.response && first.ns.as_deref() == Some(op.ns) {
        return Ok(Answer::Response(first));
    }
    Err(format!(
        "the Body holds neither a {} nor a fault",
        op.response
    ))
}

/// `i:nil="true"`.
fn is_nil(e: &Element) -> bool {
    e.attrs
        .iter()
        .any(|a| a.ns.as_deref() == Some(XSI_NS) && a.name == "nil" && a.value.trim() == "true")
}

/// The `i:type` attribute, without a prefix.
fn xsi_type(e: &Element) -> Option<&str> {
    e.attrs
        .iter()
        .find(|a| a.ns.as_deref() == Some(XSI_NS) && a.name == "type")
        .map(|a| a.value.rsplit(':').next().unwrap_or("").trim())
}

/// The operation's result element, `None` when absent or nil.
fn result<'a>(response: &'a Element, op: &Operation) -> Option<&'a Element> {
    response.child(op.result).filter(|r| !is_nil(r))
}

/// A `dateTime` (or date) as its date; `None` when absent or unreadable.
fn date_at(e: &Element, path: &str) -> Option<NaiveDate> {
    let t = e.text_at(path)?;
    NaiveDate::parse_from_str(t.get(..10)?, "%Y-%m-%d").ok()
}

/// Read a `GetPatientGPDetailsResponse`.
fn read_patient_gp(response: &Element, nin: &str) -> Result<Option<PatientGp>, RegistryError> {
    let op = &GET_PATIENT_GP_DETAILS;
    let Some(r) = result(response, op) else {
        return Ok(None);
    };
    if let Some(asked_about) = r.text_at("PatientNIN") {
        if asked_about != nin {
            return Err(bad_answer(
                op.register,
                "the answer is about another patient",
            ));
        }
    }
    // A list without a GP (a vacant list) names no GP.
    let Some(gp) = r
        .child("GPHerId")
        .filter(|g| !is_nil(g))
        .and_then(Element::text_opt)
    else {
        return Ok(None);
    };
    if her_number(gp).is_none() {
        return Err(bad_answer(op.register, "the GP's HER-id is not a HER-id"));
    }
    Ok(Some(PatientGp {
        gp_her_id: gp.to_string(),
        from: date_at(r, "Period/From"),
        to: date_at(r, "Period/To"),
    }))
}

/// Read a `GetCommunicationPartyDetailsResponse` for the HER-id asked.
fn read_party_details(
    response: &Element,
    asked: i32,
) -> Result<Option<PartyDetails>, RegistryError> {
    let op = &GET_COMMUNICATION_PARTY_DETAILS;
    let Some(r) = result(response, op) else {
        return Ok(None);
    };
    let party = read_party(r).map_err(|e| bad_answer(op.register, e))?;
    if her_number(&party.her_id) != Some(asked) {
        return Err(bad_answer(op.register, "the answer is about another party"));
    }
    // The organisations a person's answer carries; one that cannot be read is left out (the
    // office is then asked for on its own).
    let organisations = r
        .child("Organizations")
        .map(|os| {
            os.children_named("Organization")
                .filter_map(|o| read_party(o).ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(PartyDetails {
        party,
        organisations,
    }))
}

/// One communication party (the result, or an organisation inside it) as a [`Party`].
///
/// - kind: a person is a [`PartyKind::Gp`] (the one kind of person a party can be; it gives the
///   MsgHead shape of any person under an organisation); a service by its service code (8663:
///   `KX05` KAD unit, `KA02` legevakt, `KA01` GP office, `KP02` home nursing); anything else
///   [`DEFAULT_KIND`];
/// - name: `Name`, else `DisplayName`;
/// - organisation: a person's or a service's (and a sub-organisation's) `Parent*` fields; a
///   top-level organisation carries its own organisation number. `-1` and organisation numbers
///   that fail their check digit are left out;
/// - municipality: `Municipality/CodeValue`, zero-padded to four digits;
/// - formats: [`Format::FhirR4`] when an active `E_FHIR` address exists, then [`EDI_FORMATS`]
///   when an active `E_EDI` address exists;
/// - no endpoint: where to deliver is the local directory's to say.
fn read_party(e: &Element) -> Result<Party, String> {
    let her_id = e
        .text_at("HerId")
        .filter(|h| her_number(h).is_some())
        .ok_or("the party has no HER-id")?
        .to_string();
    let kind_word = e.text_at("Type").or_else(|| xsi_type(e)).unwrap_or("");
    let person = matches!(kind_word, "Person" | "OrganizationPerson");
    let service = kind_word == "Service";
    let name = e
        .text_at("Name")
        .or_else(|| e.text_at("DisplayName"))
        .ok_or("the party has no name")?
        .to_string();
    let parent_her = e
        .text_at("ParentHerId")
        .filter(|h| her_number(h).is_some())
        .map(str::to_owned);
    let enh = |path: &str| {
        e.text_at(path)
            .filter(|n| valid_org_number(n))
            .map(str::to_owned)
    };
    let (org_name, org_her_id, org_enh) = if person || service || parent_her.is_some() {
        let name = parent_her
            .as_ref()
            .and(e.text_at("ParentName"))
            .map(str::to_owned);
        (name, parent_her, enh("ParentOrganizationNumber"))
    } else {
        (None, None, enh("OrganizationNumber"))
    };
    let kind = if person {
        PartyKind::Gp
    } else if service {
        match e.text_at("Code/CodeValue") {
            Some("KX05") => PartyKind::KadUnit,
            Some("KA02") => PartyKind::Legevakt,
            Some("KA01") => PartyKind::GpOffice,
            Some("KP02") => PartyKind::HomeNursing,
            _ => DEFAULT_KIND,
        }
    } else {
        DEFAULT_KIND
    };
    let hpr = if person {
        e.at("Person/HPRInformation")
            .and_then(|h| h.text_at("HPRNumber").or_else(|| h.text_at("HPRNo")))
            .filter(|h| valid_hpr_number(h))
            .map(str::to_owned)
    } else {
        None
    };
    Ok(Party {
        her_id,
        name,
        kind,
        org_name,
        org_her_id,
        org_enh,
        hpr,
        municipality: e.text_at("Municipality/CodeValue").and_then(municipality),
        formats: formats(e),
        endpoint: None,
    })
}

/// A municipality code as the register writes it (`301` for Oslo) as four digits.
fn municipality(code: &str) -> Option<String> {
    (!code.is_empty() && code.len() <= 4 && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{code:0>4}"))
}

/// The formats the party's active electronic addresses point to.
fn formats(e: &Element) -> Vec<Format> {
    let Some(list) = e.child("ElectronicAddresses") else {
        return Vec::new();
    };
    let has = |wanted: &str| {
        list.children_named("ElectronicAddress").any(|a| {
            let code = a
                .text_at("TypeCodeValue")
                .or_else(|| a.text_at("Type/CodeValue"));
            code == Some(wanted) && a.text_at("Type/Active") != Some("false")
        })
    };
    let mut out = Vec::new();
    if has("E_FHIR") {
        out.push(Format::FhirR4);
    }
    if has("E_EDI") {
        out.extend(EDI_FORMATS);
    }
    out
}

/// The [`Directory`] over NHN's registers and a local one.
///
/// - `gp_for_patient` asks the GP register. Its `GetPatientGPDetails` answers for today: the day
///   `on` cannot be asked (kadgate asks at discharge, which is today). `from` and `to` are the
///   list period when the answer gives one, else `from` is `on` and `to` open. The GP is the
///   address register's party for the GP's HER-id; the office is the organisation the answer
///   carries for the GP's parent HER-id, else that HER-id looked up like any party.
/// - `party` asks the address register; a HER-id it does not know is looked up in the local
///   directory (parties not in NHN: test parties, a unit being set up).
/// - A party from NHN gets from the local directory what NHN does not say: the entry with the same
///   HER-id gives the kind, the endpoint and (when it lists them) the formats; with no endpoint
///   there, the entry of the party's organisation (a GP's office) gives the endpoint and its
///   formats, and for a GP with neither, the office's. A party the local directory does not reach
///   has no endpoint.
/// - KAD units, home nursing and postcodes come from the local directory alone.
///
/// A register that is down is an error here; [`Cached`](super::Cached) serves the last good answer.
#[derive(Debug)]
pub struct NhnDirectory<D> {
    client: NhnClient,
    local: D,
}

impl<D: Directory> NhnDirectory<D> {
    pub fn new(client: NhnClient, local: D) -> NhnDirectory<D> {
        NhnDirectory { client, local }
    }

    pub fn client(&self) -> &NhnClient {
        &self.client
    }

    /// The local directory.
    pub fn local(&self) -> &D {
        &self.local
    }

    /// Add what the local directory knows to a party from NHN.
    async fn localise(&self, mut p: Party) -> Result<Party, RegistryError> {
        let mut own_formats = false;
        if let Some(own) = self.local.party(&p.her_id).await? {
            p.kind = own.kind;
            p.endpoint = own.endpoint;
            if !own.formats.is_empty() {
                p.formats = own.formats;
                own_formats = true;
            }
        }
        if p.endpoint.is_none() {
            if let Some(org) = p.org_her_id.clone() {
                if let Some(via) = self.local.party(&org).await? {
                    reach_through(&mut p, &via, own_formats);
                }
            }
        }
        Ok(p)
    }

    /// NHN's party (and the organisations its answer carries), else the local directory's.
    async fn lookup(&self, her_id: &str) -> Result<Option<PartyDetails>, RegistryError> {
        match self.client.party_details(her_id).await? {
            Some(d) => Ok(Some(PartyDetails {
                party: self.localise(d.party).await?,
                organisations: d.organisations,
            })),
            None => Ok(self.local.party(her_id).await?.map(|party| PartyDetails {
                party,
                organisations: Vec::new(),
            })),
        }
    }
}

/// Reach `p` through `via` (its organisation): `via`'s endpoint, and `via`'s formats unless `p`
/// has its own from the local directory.
fn reach_through(p: &mut Party, via: &Party, own_formats: bool) {
    if let Some(e) = &via.endpoint {
        p.endpoint = Some(e.clone());
        if !own_formats && !via.formats.is_empty() {
            p.formats = via.formats.clone();
        }
    }
}

fn same_her(a: &str, b: &str) -> bool {
    her_number(a).is_some() && her_number(a) == her_number(b)
}

#[async_trait::async_trait]
impl<D: Directory> Directory for NhnDirectory<D> {
    async fn kad_units(&self) -> Result<Vec<KadUnit>, RegistryError> {
        self.local.kad_units().await
    }

    async fn kad_unit(&self, her_id: &str) -> Result<Option<KadUnit>, RegistryError> {
        self.local.kad_unit(her_id).await
    }

    async fn unit_for_municipality(
        &self,
        kommunenr: &str,
    ) -> Result<Option<KadUnit>, RegistryError> {
        self.local.unit_for_municipality(kommunenr).await
    }

    async fn party(&self, her_id: &str) -> Result<Option<Party>, RegistryError> {
        Ok(self.lookup(her_id).await?.map(|d| d.party))
    }

    async fn gp_for_patient(
        &self,
        nin: &str,
        on: NaiveDate,
    ) -> Result<Option<GpAssignment>, RegistryError> {
        let Some(found) = self.client.patient_gp(nin).await? else {
            return Ok(None);
        };
        let Some(PartyDetails {
            party: mut gp,
            organisations,
        }) = self.lookup(&found.gp_her_id).await?
        else {
            return Err(bad_answer(
                ADDRESS_REGISTER,
                "the GP register names a GP the address register does not know",
            ));
        };
        let office = match gp.org_her_id.as_deref() {
            Some(org) => match organisations.into_iter().find(|o| same_her(&o.her_id, org)) {
                Some(o) => Some(self.localise(o).await?),
                None => self.party(org).await?,
            },
            None => None,
        };
        if gp.endpoint.is_none() {
            if let Some(o) = &office {
                reach_through(&mut gp, o, false);
            }
        }
        Ok(Some(GpAssignment {
            gp,
            office,
            from: found.from.unwrap_or(on),
            to: found.to,
        }))
    }

    async fn home_nursing(&self, kommunenr: &str) -> Result<Option<Party>, RegistryError> {
        self.local.home_nursing(kommunenr).await
    }

    async fn municipality_for_postcode(
        &self,
        postcode: &str,
    ) -> Result<Option<String>, RegistryError> {
        self.local.municipality_for_postcode(postcode).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(x: &str) -> Element {
        xml::scan(x.as_bytes(), &Limits::default())
            .expect("xml")
            .root
    }

    #[test]
    fn the_request_is_a_soap_12_envelope_with_one_escaped_parameter() {
        let body = envelope(
            &GET_COMMUNICATION_PARTY_DETAILS,
            "http://h/ar?a=1&b=2",
            "12<3",
        );
        let root = scan(&body);
        assert_eq!(root.ns.as_deref(), Some(SOAP12_NS));
        assert_eq!(
            root.text_at("Header/Action"),
            Some(GET_COMMUNICATION_PARTY_DETAILS.action)
        );
        assert_eq!(root.text_at("Header/To"), Some("http://h/ar?a=1&b=2"));
        let op = root
            .at("Body/GetCommunicationPartyDetails")
            .expect("operation");
        assert_eq!(op.ns.as_deref(), Some(GET_COMMUNICATION_PARTY_DETAILS.ns));
        assert_eq!(op.text_at("herId"), Some("12<3"));
    }

    #[test]
    fn register_urls_are_checked() {
        assert!(check_register_url("https://register.example/flr.svc", true).is_ok());
        assert!(check_register_url("http://127.0.0.1:8080/flr", true).is_ok());
        assert!(check_register_url("http://localhost/flr", true).is_ok());
        assert!(check_register_url("http://register.example/flr", false).is_ok());
        for (bad, pw) in [
            ("http://register.example/flr", true),
            ("ftp://register.example/", false),
            ("https://user:pw@register.example/", false),
            ("not a url", false),
            ("https://register.example/#x", false),
        ] {
            assert!(check_register_url(bad, pw).is_err(), "{bad}");
        }
    }

    #[test]
    fn municipality_codes_get_their_leading_zeros() {
        assert_eq!(municipality("301").as_deref(), Some("0301"));
        assert_eq!(municipality("4601").as_deref(), Some("4601"));
        assert_eq!(municipality("46011"), None);
        assert_eq!(municipality("x1"), None);
    }

    #[test]
    fn her_ids_are_positive_ints() {
        assert_eq!(her_number(" 115522 "), Some(115522));
        assert_eq!(her_number("-1"), None);
        assert_eq!(her_number("0"), None);
        assert_eq!(her_number("99999999999"), None);
        assert!(same_her("0084556", "84556"));
        assert!(!same_her("x", "x"));
    }

    #[test]
    fn fault_codes_are_shown_only_as_tokens() {
        let f = |code: &str| Fault {
            receiver: false,
            error_code: Some(code.into()),
            text: String::new(),
        };
        assert_eq!(f("InvalidHerIdSupplied").code(), "InvalidHerIdSupplied");
        assert_eq!(f("Feil: 12345678901").code(), "without a code");
        assert_eq!(f("").code(), "without a code");
    }

    #[test]
    fn services_and_people_are_placed_by_type_and_code() {
        let party = |x: &str| read_party(&scan(x)).expect("party");
        let service = party(
            r#"<R xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:type="Service"><HerId>5</HerId><Name>ØHD</Name><ParentHerId>4</ParentHerId><ParentName>Kommune</ParentName><ParentOrganizationNumber>-1</ParentOrganizationNumber><Code><CodeValue>KX05</CodeValue></Code></R>"#,
        );
        assert_eq!(service.kind, PartyKind::KadUnit);
        assert_eq!(service.org_her_id.as_deref(), Some("4"));
        assert_eq!(service.org_name.as_deref(), Some("Kommune"));
        assert_eq!(service.org_enh, None);
        let person = party(
            r#"<R><HerId>6</HerId><Type>Person</Type><DisplayName>Lege</DisplayName><ParentHerId>-1</ParentHerId><ParentName>Ignored</ParentName></R>"#,
        );
        assert_eq!(person.kind, PartyKind::Gp);
        assert_eq!(person.name, "Lege");
        assert_eq!(person.org_name, None, "no parent, no parent name");
        assert!(read_party(&scan("<R><HerId>-1</HerId><Name>x</Name></R>")).is_err());
        assert!(read_party(&scan("<R><HerId>7</HerId></R>")).is_err());
    }

    #[test]
    fn inactive_addresses_give_no_format() {
        let p = read_party(&scan(
            "<R><HerId>5</HerId><Name>n</Name><ElectronicAddresses>\
             <ElectronicAddress><Type><Active>false</Active></Type><TypeCodeValue>E_FHIR</TypeCodeValue></ElectronicAddress>\
             <ElectronicAddress><Type><Active>true</Active><CodeValue>E_EDI</CodeValue></Type></ElectronicAddress>\
             </ElectronicAddresses></R>",
        ))
        .expect("party");
        assert_eq!(p.formats, EDI_FORMATS.to_vec());
    }
}
