//! Configuration: TOML → typed structs, parsed and checked once at start.
//!
//! `load` reports every problem it can find at once (syntax, unknown keys, wrong types, bad values),
//! each with its line number, so `kadgate config check FILE` is useful in one go. Unknown keys are
//! errors: a typo must never silently fall back to a default.
//!
//! Relative paths in a config file are relative to the file's folder; in the embedded demo
//! configuration they are relative to the working directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The embedded demo configuration (`kadgate serve` with no arguments).
pub const DEMO_CONFIG: &str = include_str!("../fixtures/demo/kadgate.toml");

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// The standards folder (the one holding `kith/` and `fhir/`).
    pub standards_dir: Option<PathBuf>,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub dropfolder: DropFolderConfig,
    pub receipts: ReceiptConfig,
    pub log: LogConfig,
    /// The parties kadgate receives for (answers AppRecs as).
    pub organisations: Vec<OrganisationConfig>,
    /// Per-sender policies.
    pub senders: Vec<SenderConfig>,
    /// Deciding and routing referrals.
    pub admission: crate::admission::AdmissionConfig,
    /// Finding the patient's municipality when the referral does not say.
    pub routing: crate::routing::RoutingPolicy,
    /// Outbox workers: retries, circuit breakers, leases.
    pub delivery: crate::delivery::worker::DeliveryConfig,
    /// Stays and the epicrisis fan-out.
    pub stays: crate::stay::StayConfig,
    pub api: ApiConfig,
    /// Where parties and GPs are looked up: the directory file, or NHN's registers over it.
    pub registry: RegistryConfig,
}

/// `[registry]`: the directory kadgate asks (built by `crate::registry::open_directory`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// `file`: the file `[admission] registry` alone. `nhn`: NHN's GP register and address
    /// register for GPs and parties, the file for KAD units, home nursing, postcodes and endpoints.
    pub kind: RegistryKind,
    /// The GP register's (Fastlegeregisteret) SOAP endpoint, for `kind = "nhn"`.
    pub gp_register_url: Option<String>,
    /// The address register's (Adresseregisteret) SOAP endpoint, for `kind = "nhn"`.
    pub address_register_url: Option<String>,
    /// HTTP basic authentication user for both registers.
    pub username: Option<String>,
    /// The name of the environment variable holding the password (never the password itself).
    pub password_env: Option<String>,
    /// Per request to a register, connecting included.
    pub timeout_ms: u64,
    /// How long an answer is reused; when a register fails, the last good answer is served however
    /// old (0 = ask every time).
    pub cache_ttl_s: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            kind: RegistryKind::File,
            gp_register_url: None,
            address_register_url: None,
            username: None,
            password_env: None,
            timeout_ms: 10_000,
            cache_ttl_s: 300,
        }
    }
}

/// `[registry] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    File,
    Nhn,
}

/// `[api]`: access to the endpoints that change things or show clinical content.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer token for overrides, retries, capacity reports and clinical reads (until user
    /// accounts exist). None = those endpoints answer 403.
    pub operator_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    /// Largest accepted message body in bytes.
    pub max_body_bytes: usize,
    /// Worker threads for CPU work (XSD validation); 0 = number of cores.
    pub workers: usize,
    /// Seconds to wait for in-flight work at shutdown.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("kadgate-data"),
            max_body_bytes: 10 * 1024 * 1024,
            workers: 0,
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct StoreConfig {
    /// `sqlite` (one instance, the default) or `postgres` (several instances sharing one database
    /// and its outbox).
    pub kind: String,
    /// PostgreSQL connection string (`postgres://…` or `host=… user=…`), for `kind = "postgres"`.
    /// The environment variable `KADGATE_PG_URL` overrides it, so a password need not be in a file.
    pub url: Option<String>,
    /// SQLite file, relative to the data directory.
    pub path: PathBuf,
    /// Most messages committed in one transaction (group commit).
    pub max_batch: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: "sqlite".into(),
            url: None,
            path: PathBuf::from("kadgate.sqlite"),
            max_batch: 256,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DropFolderConfig {
    pub enabled: bool,
    /// Root of the drop folder (holds `inbox/`, `outgoing/`, `processed/`, `failed/`), relative to the data directory.
    pub dir: PathBuf,
    pub poll_ms: u64,
}

impl Default for DropFolderConfig {
    fn default() -> Self {
        DropFolderConfig {
            enabled: true,
            dir: PathBuf::from("drop"),
            poll_ms: 250,
        }
    }
}

/// Receipt (AppRec) policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ReceiptConfig {
    /// Reject a message addressed to one of our organisations but to a service or person it does not
    /// have (E21 / E20). The rules say this MAY be done and must be configurable.
    pub reject_unknown_service: bool,
    /// Policy for senders not listed under `[[senders]]`.
    pub default_policy: Policy,
}

impl Default for ReceiptConfig {
    fn default() -> Self {
        ReceiptConfig {
            reject_unknown_service: true,
            default_policy: Policy::Strict,
        }
    }
}

/// How a sender's schema deviations are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Schema-invalid → negative AppRec T02.
    Strict,
    /// Schema deviations are recorded as warnings; the message is processed if it can be read.
    Lenient,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// tracing filter, e.g. `info`, `kadgate=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// One of our organisations: the top level (`idents`), and the services/persons under it that we
/// know. An identifier is written `KIND:value`, e.g. `HER:56704`, `ENH:974744570`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct OrganisationConfig {
    pub name: String,
    pub idents: Vec<String>,
    /// Known services, departments and persons under the organisation. Empty = accept any.
    pub units: Vec<UnitConfig>,
    /// Override of `receipts.reject_unknown_service` for this organisation.
    pub reject_unknown_service: Option<bool>,
    /// Identity numbers of patients this organisation has a record of. When set, an epicrisis or
    /// PLO message about anyone else is rejected with E35 (the patient has and shall have no record here).
    pub known_patients: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct UnitConfig {
    pub name: String,
    pub idents: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SenderConfig {
    pub idents: Vec<String>,
    pub policy: Policy,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path (`organisations[1].idents`).
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// All problems of a config, as an error.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in {source_name}:\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<Problem>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Find the line of a dotted path (`a.b[2].c`) in the document.
fn line_for_path(doc: &toml_edit::ImDocument<&str>, text: &str, path: &str) -> Option<usize> {
    let mut item: &toml_edit::Item = doc.as_item();
    let mut best: Option<std::ops::Range<usize>> = None;
    for seg in path.split('.') {
        let (key, idx) = match seg.find('[') {
            Some(i) => (
                &seg[..i],
                seg[i + 1..seg.len().saturating_sub(1)]
                    .parse::<usize>()
                    .ok(),
            ),
            None => (seg, None),
        };
        if key.is_empty() || key == "?" {
            break;
        }
        let table = item.as_table_like()?;
        let (k, next) = table.get_key_value(key)?;
        if let Some(r) = k.span() {
            best = Some(r);
        }
        item = next;
        if let Some(n) = idx {
            match item {
                toml_edit::Item::ArrayOfTables(a) => {
                    let t = a.get(n)?;
                    if let Some(r) = t.span() {
                        best = Some(r);
                    }
                    // Continue inside that table.
                    let found = a.iter().nth(n)?;
                    return line_in_table(found, text, &path[path.find(seg)? + seg.len()..], best);
                }
                toml_edit::Item::Value(toml_edit::Value::Array(a)) => {
                    if let Some(r) = a.get(n).and_then(|v| v.span()) {
                        best = Some(r);
                    }
                    break;
                }
                _ => break,
            }
        }
    }
    best.map(|r| line_of(text, r.start))
}

fn line_in_table(
    t: &toml_edit::Table,
    text: &str,
    rest: &str,
    best: Option<std::ops::Range<usize>>,
) -> Option<usize> {
    let rest = rest.trim_start_matches('.');
    let key = rest.split(['.', '[']).next().unwrap_or("");
    if !key.is_empty() {
        if let Some((k, _)) = t.get_key_value(key) {
            if let Some(r) = k.span() {
                return Some(line_of(text, r.start));
            }
        }
    }
    best.map(|r| line_of(text, r.start))
}

/// Parse a config text. `base` resolves relative paths (None = leave them as written).
pub fn parse(text: &str, source_name: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
    let fail = |problems: Vec<Problem>| ConfigError {
        source_name: source_name.to_string(),
        problems,
    };
    let (doc, value) = parse_toml(text).map_err(|p| fail(vec![p]))?;
    let mut problems = Vec::new();
    let mut cfg = Config::default();

    // Each top-level section (and each element of an array of tables) is deserialized on its own,
    // so one bad value does not hide the others.
    macro_rules! section {
        ($key:literal, $field:ident) => {
            if let Some(v) = value.get($key) {
                match de_one(v.clone(), $key, &mut problems) {
                    Some(x) => cfg.$field = x,
                    None => {}
                }
            }
        };
    }
    macro_rules! array_section {
        ($key:literal, $field:ident) => {
            if let Some(v) = value.get($key) {
                match v {
                    toml::Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            if let Some(x) =
                                de_one(item.clone(), &format!("{}[{}]", $key, i), &mut problems)
                            {
                                cfg.$field.push(x);
                            }
                        }
                    }
                    _ => problems.push(Problem {
                        line: None,
                        path: $key.into(),
                        message: "must be an array of tables ([[...]])".into(),
                    }),
                }
            }
        };
    }
    unknown_top_keys(
        &value,
        &[
            "standards_dir",
            "server",
            "store",
            "dropfolder",
            "receipts",
            "log",
            "organisations",
            "senders",
            "routing",
            "admission",
            "delivery",
            "stays",
            "api",
            "registry",
        ],
        &mut problems,
    );
    if let Some(v) = value.get("standards_dir") {
        match v.as_str() {
            Some(s) => cfg.standards_dir = Some(PathBuf::from(s)),
            None => problems.push(Problem {
                line: None,
                path: "standards_dir".into(),
                message: "must be a string".into(),
            }),
        }
    }
    section!("server", server);
    section!("store", store);
    section!("dropfolder", dropfolder);
    section!("receipts", receipts);
    section!("log", log);
    array_section!("organisations", organisations);
    array_section!("senders", senders);
    section!("routing", routing);
    section!("admission", admission);
    section!("delivery", delivery);
    section!("stays", stays);
    section!("api", api);
    section!("registry", registry);

    semantic_checks(&cfg, &mut problems);
    place_problems(&doc, text, &mut problems);
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    if let Some(base) = base {
        cfg.resolve_paths(base);
    }
    Ok(cfg)
}

/// Parse a TOML text twice: as a document (spans, for line numbers) and as a table (values).
/// A problem without its line yet (`place_problems` finds it from the path).
pub(crate) fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        line: None,
        path: path.into(),
        message: message.into(),
    }
}

/// Every top-level key of a TOML file that is not one of `known`, as an `unknown key` problem.
pub(crate) fn unknown_top_keys(value: &toml::Table, known: &[&str], problems: &mut Vec<Problem>) {
    for key in value.keys() {
        if !known.contains(&key.as_str()) {
            problems.push(problem(key.clone(), "unknown key"));
        }
    }
}

pub(crate) fn parse_toml(
    text: &str,
) -> Result<(toml_edit::ImDocument<&str>, toml::Table), Problem> {
    let syntax = |line: Option<usize>, message: String| Problem {
        line,
        path: "(syntax)".into(),
        message,
    };
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
        syntax(
            e.span().map(|s| line_of(text, s.start)),
            e.message().trim().to_string(),
        )
    })?;
    let value: toml::Table = toml::from_str(text).map_err(|e| {
        syntax(
            e.span().map(|s| line_of(text, s.start)),
            e.message().to_string(),
        )
    })?;
    Ok((doc, value))
}

/// Give every problem without a line the line of its path, and sort them by line.
pub(crate) fn place_problems(
    doc: &toml_edit::ImDocument<&str>,
    text: &str,
    problems: &mut [Problem],
) {
    for p in problems.iter_mut() {
        if p.line.is_none() {
            p.line = line_for_path(doc, text, &p.path);
        }
    }
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
}

pub(crate) fn de_one<T: serde::de::DeserializeOwned>(
    v: toml::Value,
    prefix: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut unknown = Vec::new();
    let mut note = |p: serde_ignored::Path<'_>| unknown.push(p.to_string());
    let de = serde_ignored::Deserializer::new(v, &mut note);
    let r: Result<T, _> = serde_path_to_error::deserialize(de);
    for u in unknown {
        problems.push(Problem {
            line: None,
            path: format!("{prefix}.{u}"),
            message: "unknown key".into(),
        });
    }
    match r {
        Ok(x) => Some(x),
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{inner}")
            };
            problems.push(Problem {
                line: None,
                path,
                message: e.into_inner().to_string(),
            });
            None
        }
    }
}

/// Split `KIND:value`.
pub fn parse_ident(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once(':')?;
    let k = k.trim().to_ascii_uppercase();
    let v = v.trim();
    (!k.is_empty() && !v.is_empty() && k.bytes().all(|c| c.is_ascii_alphanumeric()))
        .then(|| (k, v.to_string()))
}

fn semantic_checks(cfg: &Config, problems: &mut Vec<Problem>) {
    if cfg.server.listen.parse::<SocketAddr>().is_err() {
        problems.push(Problem {
            line: None,
            path: "server.listen".into(),
            message: format!(
                "{:?} is not an address like 127.0.0.1:8080",
                cfg.server.listen
            ),
        });
    }
    if cfg.server.max_body_bytes < 1024 {
        problems.push(Problem {
            line: None,
            path: "server.max_body_bytes".into(),
            message: "must be at least 1024".into(),
        });
    }
    if cfg.stays.enabled && !cfg.admission.enabled {
        problems.push(Problem {
            line: None,
            path: "stays.enabled".into(),
            message: "stays need [admission] enabled (its directory finds GPs and home nursing)"
                .into(),
        });
    }
    for (m, her) in &cfg.stays.gp_fallback {
        if m != "default" && !crate::registry::valid_municipality(m) {
            problems.push(Problem {
                line: None,
                path: format!("stays.gp_fallback.{m}"),
                message: "keys are 4-digit municipality numbers or \"default\"".into(),
            });
        }
        if her.trim().is_empty() || !her.trim().bytes().all(|b| b.is_ascii_digit()) {
            problems.push(Problem {
                line: None,
                path: format!("stays.gp_fallback.{m}"),
                message: "must be a HER-id (digits)".into(),
            });
        }
    }
    match cfg.store.kind.as_str() {
        "sqlite" => {}
        "postgres" => {
            if cfg.store.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
                problems.push(Problem {
                    line: None,
                    path: "store.url".into(),
                    message: "store.kind = \"postgres\" needs a connection string in store.url (or KADGATE_PG_URL)".into(),
                });
            }
        }
        other => problems.push(Problem {
            line: None,
            path: "store.kind".into(),
            message: format!("unknown store kind {other:?} (supported: sqlite, postgres)"),
        }),
    }
    if cfg.store.max_batch == 0 {
        problems.push(Problem {
            line: None,
            path: "store.max_batch".into(),
            message: "must be at least 1".into(),
        });
    }
    if !["text", "json"].contains(&cfg.log.format.as_str()) {
        problems.push(Problem {
            line: None,
            path: "log.format".into(),
            message: "must be \"text\" or \"json\"".into(),
        });
    }
    if let Some(m) = cfg.routing.default_municipality.as_deref() {
        if !crate::registry::valid_municipality(m) {
            problems.push(Problem {
                line: None,
                path: "routing.default_municipality".into(),
                message: format!("{m:?} is not a municipality number (four digits)"),
            });
        }
    }
    registry_checks(&cfg.registry, problems);
    let mut seen = std::collections::HashMap::new();
    for (i, o) in cfg.organisations.iter().enumerate() {
        if o.idents.is_empty() {
            problems.push(Problem {
                line: None,
                path: format!("organisations[{i}].idents"),
                message: "an organisation needs at least one identifier".into(),
            });
        }
        for s in &o.idents {
            check_ident(s, &format!("organisations[{i}].idents"), problems);
            if let Some(prev) = seen.insert(normalise_id(s), i) {
                problems.push(Problem {
                    line: None,
                    path: format!("organisations[{i}].idents"),
                    message: format!("{s} is also an identifier of organisations[{prev}]"),
                });
            }
        }
        for (j, u) in o.units.iter().enumerate() {
            if u.idents.is_empty() {
                problems.push(Problem {
                    line: None,
                    path: format!("organisations[{i}].units[{j}].idents"),
                    message: "a unit needs at least one identifier".into(),
                });
            }
            for s in &u.idents {
                check_ident(
                    s,
                    &format!("organisations[{i}].units[{j}].idents"),
                    problems,
                );
            }
        }
    }
    for (i, s) in cfg.senders.iter().enumerate() {
        for id in &s.idents {
            check_ident(id, &format!("senders[{i}].idents"), problems);
        }
    }
}

/// `[registry]`: NHN's settings are complete for `kind = "nhn"` and absent otherwise.
fn registry_checks(r: &RegistryConfig, problems: &mut Vec<Problem>) {
    let nhn = r.kind == RegistryKind::Nhn;
    let with_password = r.password_env.is_some();
    let only_nhn = "only used with kind = \"nhn\"";
    for (key, url) in [
        ("gp_register_url", &r.gp_register_url),
        ("address_register_url", &r.address_register_url),
    ] {
        let path = format!("registry.{key}");
        match (nhn, url) {
            (true, None) => problems.push(problem(path, "missing: kind = \"nhn\" needs it")),
            (true, Some(u)) => {
                if let Err(e) = crate::registry::check_register_url(u, with_password) {
                    problems.push(problem(path, e));
                }
            }
            (false, Some(_)) => problems.push(problem(path, only_nhn)),
            (false, None) => {}
        }
    }
    for (key, given) in [
        ("username", r.username.is_some()),
        ("password_env", r.password_env.is_some()),
    ] {
        if given && !nhn {
            problems.push(problem(format!("registry.{key}"), only_nhn));
        }
    }
    if nhn && r.username.is_some() != r.password_env.is_some() {
        let missing = if r.username.is_some() {
            "password_env"
        } else {
            "username"
        };
        problems.push(problem(
            format!("registry.{missing}"),
            "missing: basic authentication needs both username and password_env",
        ));
    }
    if let Some(var) = r.password_env.as_deref() {
        let name_ok = var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            problems.push(problem(
                "registry.password_env",
                "must be the name of an environment variable (letters, digits, _), not a password",
            ));
        }
    }
    if r.username.as_deref().is_some_and(|u| u.trim().is_empty()) {
        problems.push(problem("registry.username", "must not be empty"));
    }
    if !(1..=600_000).contains(&r.timeout_ms) {
        problems.push(problem(
            "registry.timeout_ms",
            "must be from 1 to 600000 (ten minutes)",
        ));
    }
}

fn check_ident(s: &str, path: &str, problems: &mut Vec<Problem>) {
    match parse_ident(s) {
        None => problems.push(Problem {
            line: None,
            path: path.into(),
            message: format!("{s:?} is not an identifier like \"HER:12345\""),
        }),
        Some((k, v)) if k == "HER" && !crate::ident::valid_her_id(&v) => problems.push(Problem {
            line: None,
            path: path.into(),
            message: format!("{s:?}: a HER-id is a positive integer"),
        }),
        Some((k, v)) if k == "ENH" && !crate::ident::valid_org_number(&v) => {
            problems.push(Problem {
                line: None,
                path: path.into(),
                message: format!("{s:?}: not a valid organisation number (9 digits, mod-11)"),
            })
        }
        _ => {}
    }
}

/// Normalise an identifier for matching: kind upper-cased, value without spaces and dots (the
/// acceptance tests write HER-ids like `369.767` and organisation numbers like `333 555 666`).
pub fn normalise_id(s: &str) -> String {
    match parse_ident(s) {
        Some((k, v)) => format!("{k}:{}", normalise_value(&v)),
        None => s.trim().to_string(),
    }
}

pub fn normalise_value(v: &str) -> String {
    v.chars()
        .filter(|c| !c.is_whitespace() && *c != '.')
        .collect()
}

impl Config {
    /// The embedded demo configuration.
    pub fn demo() -> Config {
        parse(DEMO_CONFIG, "embedded demo configuration", None)
            .expect("the embedded demo configuration is valid (tested)")
    }

    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: path.display().to_string(),
            problems: vec![Problem {
                line: None,
                path: "(file)".into(),
                message: e.to_string(),
            }],
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        parse(&text, &path.display().to_string(), Some(&base))
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.data_dir);
        if let Some(s) = self.standards_dir.as_mut() {
            fix(s);
        }
        fix(&mut self.admission.ruleset);
        fix(&mut self.admission.registry);
        for p in self.admission.unit_rulesets.values_mut() {
            fix(p);
        }
    }

    /// The SQLite file.
    pub fn sqlite_path(&self) -> PathBuf {
        if self.store.path.is_absolute() {
            self.store.path.clone()
        } else {
            self.server.data_dir.join(&self.store.path)
        }
    }

    pub fn drop_dir(&self) -> PathBuf {
        if self.dropfolder.dir.is_absolute() {
            self.dropfolder.dir.clone()
        } else {
            self.server.data_dir.join(&self.dropfolder.dir)
        }
    }
}

/// The standards folder by precedence: `--standards`, else `KADGATE_STANDARDS_DIR`, else the
/// config, else `../shared/standards`.
pub fn standards_dir(cli: Option<&Path>, cfg: &Config) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("KADGATE_STANDARDS_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = &cfg.standards_dir {
        return p.clone();
    }
    PathBuf::from("../shared/standards")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid() {
        let c = Config::demo();
        assert!(!c.organisations.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "[server]\nlisten = \"nowhere\"\nbogus = 1\n\n[store]\nmax_batch = \"many\"\n\n[[organisations]]\nname = \"x\"\nidents = [\"HER:abc\"]\ncolour = \"red\"\n\nmystery = 3\n";
        let err = parse(text, "t.toml", None).unwrap_err();
        let lines: Vec<(Option<usize>, String)> = err
            .problems
            .iter()
            .map(|p| (p.line, p.path.clone()))
            .collect();
        assert!(
            lines.contains(&(Some(3), "server.bogus".into())),
            "{lines:?}"
        );
        assert!(
            lines.contains(&(Some(6), "store.max_batch".into())),
            "{lines:?}"
        );
        assert!(
            lines.contains(&(Some(11), "organisations[0].colour".into())),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|(_, p)| p == "organisations[0].idents"),
            "{lines:?}"
        );
        assert!(lines.iter().any(|(_, p)| p == "server.listen"), "{lines:?}");
        assert_eq!(err.problems.len(), 6, "{:?}", err.problems);
    }

    #[test]
    fn routing_policy_is_read_and_checked() {
        let c = parse(
            "[routing]\ndefault_municipality = \"0301\"\nuse_referrer_municipality = false\n",
            "t.toml",
            None,
        )
        .expect("valid");
        assert_eq!(c.routing.default_municipality.as_deref(), Some("0301"));
        assert!(!c.routing.use_referrer_municipality);
        assert!(Config::demo().routing.use_referrer_municipality);
        let err = parse(
            "[routing]\ndefault_municipality = \"301\"\n",
            "t.toml",
            None,
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].path, "routing.default_municipality");
        assert_eq!(err.problems[0].line, Some(2));
        let err = parse("[routing]\ncolour = 1\n", "t.toml", None).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(err.problems[0].message.contains("colour"), "{err}");
    }

    #[test]
    fn the_registry_section_is_read_and_checked() {
        let c = Config::demo();
        assert_eq!(c.registry.kind, RegistryKind::File);
        assert_eq!(c.registry.cache_ttl_s, 300);
        let c = parse(
            "[registry]\nkind = \"nhn\"\ngp_register_url = \"https://flr.example/flr.svc\"\naddress_register_url = \"https://ar.example/ar.svc\"\nusername = \"kadgate\"\npassword_env = \"KADGATE_NHN_PASSWORD\"\ntimeout_ms = 5000\ncache_ttl_s = 60\n",
            "t.toml",
            None,
        )
        .expect("valid");
        assert_eq!(c.registry.kind, RegistryKind::Nhn);
        assert_eq!(c.registry.timeout_ms, 5000);
        assert_eq!(
            c.registry.password_env.as_deref(),
            Some("KADGATE_NHN_PASSWORD")
        );
        // Every problem at once, each on its line.
        let text = "[registry]\nkind = \"nhn\"\ngp_register_url = \"http://flr.example/flr\"\nusername = \"kadgate\"\npassword_env = \"hunter2!\"\ntimeout_ms = 0\n";
        let err = parse(text, "t.toml", None).unwrap_err();
        let got: Vec<(Option<usize>, &str)> = err
            .problems
            .iter()
            .map(|p| (p.line, p.path.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(3), "registry.gp_register_url"),
                (Some(5), "registry.password_env"),
                (Some(6), "registry.timeout_ms"),
                (None, "registry.address_register_url"), // missing: no line of its own
            ],
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // NHN settings with the file kind are a mistake, not silently ignored; unknown keys and
        // kinds are errors.
        let err = parse("[registry]\nusername = \"u\"\ncolour = 1\n", "t.toml", None).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(err.problems[0].message.contains("colour"), "{err}");
        let err = parse("[registry]\nkind = \"ldap\"\n", "t.toml", None).unwrap_err();
        assert_eq!(err.problems[0].path, "registry.kind", "{err}");
        let err = parse("[registry]\nusername = \"u\"\n", "t.toml", None).unwrap_err();
        assert_eq!(err.problems[0].path, "registry.username", "{err}");
        assert!(err.problems[0].message.contains("nhn"), "{err}");
    }

    #[test]
    fn syntax_errors_have_lines() {
        let err = parse("[server\nlisten=1", "t.toml", None).unwrap_err();
        assert_eq!(err.problems[0].line, Some(1));
    }
}
