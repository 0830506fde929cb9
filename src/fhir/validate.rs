//! FHIR R4 validation of one JSON resource: every finding at once, each with a FHIRPath-style location
//! (`Bundle.entry[1].resource.status`), plus the OperationOutcome that reports them.
//!
//! One walk over the value against [`super::r4`] checks: a known, concrete `resourceType` (also for
//! `Bundle.entry.resource`, `contained` and `Parameters.parameter.resource`); unknown properties; JSON
//! types, primitive formats (the R4 regexes, real calendar dates, `integer` ranges, whole numbers) in the
//! plain and the `_element` form; array versus single value; cardinality; one type per choice element;
//! empty objects, arrays and strings (`ele-1`); required bindings whose code list is known; the R4
//! presence invariants of the definitions (`cmp-1`, `qty-3`, …), `ext-1`, `ref-1`, `dom-2/4/5` and the
//! Bundle invariants `bdl-1…5, 7…12`. While walking it notes references, identifiers and resources, and
//! afterwards checks: references inside a message or document Bundle resolve (`urn:uuid:` fullUrls,
//! `Type/id`, absolute URLs); Norwegian identifiers (FACTS §4: fødselsnummer, D-number and FH-number
//! check digits, HPR, HER-id, organisation number; the pre-2.0.13 ENH/RESH OIDs with a warning); and,
//! with the KAD rules on ([`Options::kad_rules`]), that a request message names its focus and that
//! every patient of a message or document is identified as the KITH side requires, with the same
//! `patient.*` codes ([`crate::kith::semantics::check_patient`]).
//!
//! Stricter than the oracle, on purpose (each documented where it is checked): required bindings;
//! reference resolution; `Resource.id` as an `id`; a time zone on dateTimes with a time; real calendar
//! dates; `1.0` is not an `integer`; a second choice variant is an error, not a warning.
//!
//! Findings never quote element values (they may be patient data); codes of a bound element and
//! `resourceType` values are quoted, capped and without control characters.
//!
//! Must not: do I/O, read the clock, allocate the definitions per call, or panic on any value.

use serde_json::{Map, Value};

use super::json::{self, Limits};
use super::r4::{self, Defs, Elem, JsonKind, NodeId, Primitive, RuleOp, TypeId, TypeRef};
use crate::finding::{codes, Finding, Severity};
use crate::ident::{self, PersonIdKind};
use crate::model::{Patient, PatientIdent, Sex};

/// The system of the `details.coding` kadgate puts its stable finding code in.
pub const FINDING_SYSTEM: &str = "urn:kadgate:finding";

/// Identifier systems (FACTS §4).
pub mod systems {
    pub const FNR: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
    pub const DNR: &str = "urn:oid:2.16.578.1.12.4.1.4.2";
    pub const FHN: &str = "urn:oid:2.16.578.1.12.4.1.4.3";
    pub const HPR: &str = "urn:oid:2.16.578.1.12.4.1.4.4";
    pub const ENH: &str = "urn:oid:2.16.578.1.12.4.1.4.101";
    pub const RESH: &str = "urn:oid:2.16.578.1.12.4.1.4.102";
    pub const HER: &str = "urn:oid:2.16.578.1.12.4.1.2";
    /// Used by no-basis before 2.0.13 by mistake; accepted with a warning.
    pub const ENH_OLD: &str = "urn:oid:2.16.578.1.12.4.1.2.101";
    pub const RESH_OLD: &str = "urn:oid:2.16.578.1.12.4.1.2.102";
}

/// What to check besides R4 itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Caps for [`validate_bytes`].
    pub limits: Limits,
    /// The KAD gateway's own rules: every patient of a message or document sufficiently identified
    /// (`patient.*`), a request message names its focus. Off = plain R4 plus Norwegian identifier checks
    /// (what the official HL7 examples are held to).
    pub kad_rules: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            kad_rules: true,
        }
    }
}

impl Options {
    /// Plain R4 (plus Norwegian identifier checks), without the KAD rules.
    pub fn r4() -> Self {
        Options {
            kad_rules: false,
            ..Options::default()
        }
    }
}

/// Everything the HTTP endpoint and the CLI need to know about one FHIR body.
#[derive(Debug, Clone, PartialEq)]
pub struct FhirReport {
    /// The body is JSON within the caps (no `json.*` error).
    pub well_formed: bool,
    /// Well-formed and no finding of severity error.
    pub valid: bool,
    /// The top-level `resourceType`, when it is a string.
    pub resource_type: Option<String>,
    /// `Bundle.type` of the message: the top-level Bundle, or a Parameters' `content`.
    pub bundle_type: Option<String>,
    /// The message event (`eventCoding.code` or `eventUri`) of a message Bundle's first MessageHeader.
    pub event_code: Option<String>,
    /// That MessageHeader's id: the message id for duplicate detection (FACTS §1).
    pub message_id: Option<String>,
    /// `MessageHeader.response.identifier`: the request this message answers.
    pub response_to: Option<String>,
    pub findings: Vec<Finding>,
    /// The parsed body (also when not valid, as long as it was well-formed enough to build).
    pub value: Option<Value>,
}

/// Validate a parsed resource with the KAD rules on ([`Options::default`]).
pub fn validate(value: &Value) -> Vec<Finding> {
    validate_with(value, &Options::default())
}

/// Validate a parsed resource.
pub fn validate_with(value: &Value, opts: &Options) -> Vec<Finding> {
    let mut w = Walker::new(r4::defs());
    w.resource(value, None, false);
    w.finish(opts.kad_rules)
}

/// Read and validate one body: the hardened JSON reader, then [`validate_with`].
pub fn validate_bytes(bytes: &[u8], opts: &Options) -> FhirReport {
    let parsed = json::read(bytes, &opts.limits);
    let well_formed = parsed.well_formed();
    let mut findings = parsed.findings;
    let Some(value) = parsed.value else {
        return FhirReport {
            well_formed,
            valid: false,
            resource_type: None,
            bundle_type: None,
            event_code: None,
            message_id: None,
            response_to: None,
            findings,
            value: None,
        };
    };
    findings.extend(validate_with(&value, opts));
    let valid = well_formed && !findings.iter().any(Finding::is_error);
    let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let resource_type = str_at(&value, "resourceType");
    // The message is the body itself, or (for `$process-message` with Parameters) its `content`.
    let message = message_bundle(&value);
    let bundle_type = (message.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
        .then(|| str_at(message, "type"))
        .flatten();
    let header = (bundle_type.as_deref() == Some("message"))
        .then(|| message.pointer("/entry/0/resource"))
        .flatten()
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("MessageHeader"));
    let event_code = header.and_then(|h| {
        h.pointer("/eventCoding/code")
            .or_else(|| h.get("eventUri"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let message_id = header.and_then(|h| str_at(h, "id"));
    let response_to = header
        .and_then(|h| h.pointer("/response/identifier"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    FhirReport {
        well_formed,
        valid,
        resource_type,
        bundle_type,
        event_code,
        message_id,
        response_to,
        findings,
        value: Some(value),
    }
}

/// The message a body carries: the body itself, or a Parameters resource's `content` parameter (the
/// form `$process-message` defines). A Parameters without `content` is returned as it is.
pub fn message_bundle(value: &Value) -> &Value {
    if value.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return value;
    }
    value
        .get("parameter")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some("content"))
        })
        .and_then(|p| p.get("resource"))
        .unwrap_or(value)
}

/// The OperationOutcome `issue-type` code for a finding code.
pub fn issue_type(code: &str) -> &'static str {
    match code {
        codes::JSON_TOO_LARGE => "too-long",
        codes::JSON_TOO_DEEP | codes::JSON_TOO_MANY_VALUES => "too-costly",
        codes::JSON_NUMBER_OUT_OF_RANGE => "value",
        c if c.starts_with("json.") => "structure",
        codes::FHIR_UNKNOWN_RESOURCE_TYPE => "not-supported",
        codes::FHIR_REQUIRED | codes::FHIR_MESSAGE_FOCUS_MISSING => "required",
        codes::FHIR_VALUE_FORMAT | codes::FHIR_IDENTIFIER_INVALID => "value",
        codes::FHIR_IDENTIFIER_SYSTEM_DEPRECATED => "business-rule",
        codes::FHIR_CODE_NOT_IN_VALUESET => "code-invalid",
        codes::FHIR_INVARIANT => "invariant",
        codes::FHIR_REFERENCE_UNRESOLVED => "not-found",
        c if c.starts_with("fhir.") => "structure",
        codes::PATIENT_MISSING | codes::PATIENT_NAME_MISSING | codes::PATIENT_INSUFFICIENT => {
            "required"
        }
        codes::PATIENT_ID_INVALID => "value",
        codes::PATIENT_UNKNOWN => "not-found",
        codes::EMERGENCY_EXCEPTION => "informational",
        _ => "processing",
    }
}

/// Whether a finding code is about R4 structure (what `schema_valid` means for FHIR, and what the
/// independent R4 validator checks): JSON itself, resource types, elements, cardinality, types,
/// value formats, required bindings and invariants. Not: references, Norwegian identifiers,
/// patient identification, messaging and addressing rules.
pub fn is_structural(code: &str) -> bool {
    code.starts_with("json.")
        || matches!(
            code,
            codes::FHIR_NOT_A_RESOURCE
                | codes::FHIR_UNKNOWN_RESOURCE_TYPE
                | codes::FHIR_UNKNOWN_ELEMENT
                | codes::FHIR_REQUIRED
                | codes::FHIR_CARDINALITY
                | codes::FHIR_CHOICE_CONFLICT
                | codes::FHIR_TYPE
                | codes::FHIR_VALUE_FORMAT
                | codes::FHIR_EMPTY
                | codes::FHIR_CODE_NOT_IN_VALUESET
                | codes::FHIR_INVARIANT
        )
}

/// A valid R4 OperationOutcome listing `findings`; no findings → one `information` issue "all ok".
/// `json.*` errors are `fatal` (nothing else could be checked). The path goes into `expression` when it
/// is a FHIRPath location, and into the diagnostics when it is a line and column.
pub fn operation_outcome(findings: &[Finding]) -> Value {
    let issues: Vec<Value> = if findings.is_empty() {
        vec![serde_json::json!({
            "severity": "information",
            "code": "informational",
            "diagnostics": "all ok",
        })]
    } else {
        findings.iter().map(issue_of).collect()
    };
    serde_json::json!({"resourceType": "OperationOutcome", "issue": issues})
}

fn issue_of(f: &Finding) -> Value {
    let severity = match f.severity {
        Severity::Error if f.code.starts_with("json.") => "fatal",
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "information",
    };
    let positional = f.path.starts_with("line ");
    let mut diagnostics = f.message.clone();
    if positional {
        diagnostics.push_str(" (");
        diagnostics.push_str(&f.path);
        diagnostics.push(')');
    }
    let mut issue = serde_json::json!({
        "severity": severity,
        "code": issue_type(&f.code),
        "details": {"coding": [{"system": FINDING_SYSTEM, "code": f.code}]},
        "diagnostics": diagnostics,
    });
    if !positional && !f.path.trim().is_empty() {
        issue["expression"] = serde_json::json!([f.path]);
    }
    issue
}

/// Text from the input that may go into a message (codes, resource type names): capped, printable.
fn quote(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The types the walker treats specially, looked up once.
struct Known {
    reference: Option<TypeId>,
    identifier: Option<TypeId>,
    extension: Option<TypeId>,
    coding: Option<TypeId>,
    codeable: Option<TypeId>,
    bundle: Option<TypeId>,
    bundle_entry: Option<NodeId>,
}

fn known(d: &'static Defs) -> &'static Known {
    static KNOWN: std::sync::OnceLock<Known> = std::sync::OnceLock::new();
    KNOWN.get_or_init(|| {
        let bundle = d.type_id("Bundle");
        let bundle_entry = bundle.and_then(|b| {
            let c = d.node(d.type_def(b).root).children.get("entry")?;
            d.elem(c.elem).node
        });
        Known {
            reference: d.type_id("Reference"),
            identifier: d.type_id("Identifier"),
            extension: d.type_id("Extension"),
            coding: d.type_id("Coding"),
            codeable: d.type_id("CodeableConcept"),
            bundle,
            bundle_entry,
        }
    })
}

/// A Bundle met during the walk.
struct Scope<'v> {
    path: String,
    kind: &'v str,
    parent: Option<usize>,
    /// (fullUrl, resourceType, id) per entry.
    entries: Vec<(Option<&'v str>, Option<&'v str>, Option<&'v str>)>,
    first_entry: Option<&'v Map<String, Value>>,
    is_response: bool,
}

struct RefSite<'v> {
    path: String,
    reference: &'v str,
    scope: Option<usize>,
    full_url: Option<&'v str>,
    /// Made from the Bundle's first entry (the MessageHeader or the Composition).
    from_first: bool,
}

struct IdentSite<'v> {
    path: String,
    system: &'v str,
    value: Option<&'v str>,
    in_patient: bool,
}

struct ResSite<'v> {
    path: String,
    type_name: &'v str,
    value: &'v Map<String, Value>,
    scope: Option<usize>,
}

/// A resource on the walk's stack (for `ref-1` and identifiers).
struct Frame<'v> {
    map: &'v Map<String, Value>,
    type_name: &'v str,
    contained: bool,
}

struct Walker<'v> {
    d: &'static Defs,
    k: &'static Known,
    out: Vec<Finding>,
    path: String,
    refs: Vec<RefSite<'v>>,
    idents: Vec<IdentSite<'v>>,
    resources: Vec<ResSite<'v>>,
    scopes: Vec<Scope<'v>>,
    scope_stack: Vec<usize>,
    frames: Vec<Frame<'v>>,
    /// The fullUrl of the Bundle entry being walked.
    full_url: Option<&'v str>,
    /// Inside an entry of a Bundle (the Bundle's own `signature` is not).
    in_entry: bool,
    /// Inside the first entry of the innermost Bundle.
    in_first: bool,
}

impl<'v> Walker<'v> {
    fn new(d: &'static Defs) -> Self {
        Walker {
            d,
            k: known(d),
            out: Vec::new(),
            path: String::with_capacity(128),
            refs: Vec::new(),
            idents: Vec::new(),
            resources: Vec::new(),
            scopes: Vec::new(),
            scope_stack: Vec::new(),
            frames: Vec::new(),
            full_url: None,
            in_entry: false,
            in_first: false,
        }
    }

    fn err(&mut self, code: &str, message: impl Into<String>) {
        self.out
            .push(Finding::error(code, self.path.clone(), message));
    }

    fn err_at(&mut self, code: &str, suffix: &str, message: impl Into<String>) {
        let mut p = self.path.clone();
        p.push('.');
        p.push_str(suffix);
        self.out.push(Finding::error(code, p, message));
    }

    fn invariant(&mut self, key: &str, human: &str) {
        self.err(
            codes::FHIR_INVARIANT,
            format!("constraint {key} not met: {human}"),
        );
    }

    fn push_key(&mut self, key: &str) -> usize {
        let len = self.path.len();
        self.path.push('.');
        self.path.push_str(&quote(key));
        len
    }

    fn push_index(&mut self, i: usize) -> usize {
        use std::fmt::Write;
        let len = self.path.len();
        let _ = write!(self.path, "[{i}]");
        len
    }

    /// A resource at `self.path` (empty for the top level, which then becomes the type name).
    fn resource(&mut self, v: &'v Value, expected: Option<TypeId>, contained: bool) {
        let top = self.path.is_empty();
        let Value::Object(m) = v else {
            let code = if top {
                codes::FHIR_NOT_A_RESOURCE
            } else {
                codes::FHIR_TYPE
            };
            let msg = format!(
                "expected a resource (a JSON object), found {}",
                json_kind(v)
            );
            self.err(code, msg);
            return;
        };
        let rt = match m.get("resourceType") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            _ => {
                self.err(
                    codes::FHIR_NOT_A_RESOURCE,
                    "the object has no resourceType, so it is not a FHIR resource",
                );
                return;
            }
        };
        let Some(t) = self.d.resource_type(rt) else {
            let at = if top { rt } else { "" };
            let mut p = self.path.clone();
            if top {
                p = at
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .take(64)
                    .collect();
            }
            self.out.push(Finding::error(
                codes::FHIR_UNKNOWN_RESOURCE_TYPE,
                p,
                format!("\"{}\" is not an R4 resource type", quote(rt)),
            ));
            return;
        };
        if top {
            self.path.push_str(rt);
        }
        if let Some(e) = expected {
            if e != t {
                let msg = format!(
                    "expected a {} resource, found {}",
                    self.d.type_def(e).name,
                    quote(rt)
                );
                self.err(codes::FHIR_TYPE, msg);
            }
        }
        let is_bundle = Some(t) == self.k.bundle;
        if is_bundle {
            self.open_scope(m);
        }
        self.frames.push(Frame {
            map: m,
            type_name: rt,
            contained,
        });
        let saved = (self.full_url, self.in_entry, self.in_first);
        if is_bundle {
            self.in_entry = false;
        }
        self.object(self.d.type_def(t).root, m, true);
        (self.full_url, self.in_entry, self.in_first) = saved;
        self.frames.pop();
        self.domain_invariants(m, contained);
        if is_bundle {
            self.bundle_invariants(m);
            self.scope_stack.pop();
        }
        self.resources.push(ResSite {
            path: self.path.clone(),
            type_name: rt,
            value: m,
            scope: self.scope_stack.last().copied(),
        });
    }

    fn open_scope(&mut self, m: &'v Map<String, Value>) {
        let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
        let entries: Vec<_> = m
            .get("entry")
            .and_then(Value::as_array)
            .map(|es| {
                es.iter()
                    .map(|e| {
                        let r = e.get("resource");
                        (
                            e.get("fullUrl").and_then(Value::as_str),
                            r.and_then(|r| r.get("resourceType"))
                                .and_then(Value::as_str),
                            r.and_then(|r| r.get("id")).and_then(Value::as_str),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let is_response = kind == "message"
            && m.get("entry")
                .and_then(|e| e.pointer("/0/resource/response"))
                .is_some()
            && entries.first().and_then(|e| e.1) == Some("MessageHeader");
        let first_entry = m
            .get("entry")
            .and_then(|e| e.get(0))
            .and_then(Value::as_object);
        self.scopes.push(Scope {
            path: self.path.clone(),
            kind,
            parent: self.scope_stack.last().copied(),
            entries,
            first_entry,
            is_response,
        });
        self.scope_stack.push(self.scopes.len() - 1);
    }

    /// dom-2, dom-4, dom-5 (on the contained resource itself) — DomainResource invariants.
    fn domain_invariants(&mut self, m: &'v Map<String, Value>, contained: bool) {
        if !contained {
            return;
        }
        if m.contains_key("contained") {
            self.invariant(
                "dom-2",
                "a contained resource SHALL NOT contain additional contained resources",
            );
        }
        if let Some(meta) = m.get("meta") {
            if meta.get("versionId").is_some() || meta.get("lastUpdated").is_some() {
                self.invariant(
                    "dom-4",
                    "a contained resource SHALL NOT have a meta.versionId or a meta.lastUpdated",
                );
            }
            if meta.get("security").is_some() {
                self.invariant(
                    "dom-5",
                    "a contained resource SHALL NOT have a security label",
                );
            }
        }
    }

    /// bdl-1…4, 7, 9…12 (bdl-5 comes from the definitions; bdl-8 is checked per entry here too).
    fn bundle_invariants(&mut self, m: &'v Map<String, Value>) {
        let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
        let entries: &[Value] = m
            .get("entry")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        if m.contains_key("total") && !matches!(kind, "searchset" | "history") {
            self.invariant("bdl-1", "total only when a search or history");
        }
        if entries.iter().any(|e| e.get("search").is_some()) && kind != "searchset" {
            self.invariant("bdl-2", "entry.search only when a search");
        }
        let wants_request = matches!(kind, "batch" | "transaction" | "history");
        if entries
            .iter()
            .any(|e| e.get("request").is_some() != wants_request)
        {
            self.invariant(
                "bdl-3",
                "entry.request mandatory for batch/transaction/history, otherwise prohibited",
            );
        }
        let wants_response = matches!(kind, "batch-response" | "transaction-response" | "history");
        if entries
            .iter()
            .any(|e| e.get("response").is_some() != wants_response)
        {
            self.invariant(
                "bdl-4",
                "entry.response mandatory for batch-response/transaction-response/history, otherwise prohibited",
            );
        }
        if kind != "history" {
            let mut seen: rustc_hash::FxHashSet<(&str, Option<&str>)> = Default::default();
            let distinct = entries.iter().all(|e| {
                let Some(u) = e.get("fullUrl").and_then(Value::as_str) else {
                    return true;
                };
                let v = e
                    .pointer("/resource/meta/versionId")
                    .and_then(Value::as_str);
                seen.insert((u, v))
            });
            if !distinct {
                self.invariant(
                    "bdl-7",
                    "fullUrl must be unique in a bundle, or else entries with the same fullUrl must have different meta.versionId",
                );
            }
        }
        for (i, e) in entries.iter().enumerate() {
            if e.get("fullUrl")
                .and_then(Value::as_str)
                .is_some_and(|u| u.contains("/_history/"))
            {
                let len = self.push_key("entry");
                self.push_index(i);
                self.invariant("bdl-8", "fullUrl cannot be a version specific reference");
                self.path.truncate(len);
            }
        }
        let first_type = entries
            .first()
            .and_then(|e| e.pointer("/resource/resourceType"))
            .and_then(Value::as_str);
        if kind == "document" {
            let id = m.get("identifier");
            let has = |k: &str| id.and_then(|i| i.get(k)).is_some();
            if !(has("system") && has("value")) {
                self.invariant(
                    "bdl-9",
                    "a document must have an identifier with a system and a value",
                );
            }
            if m.get("timestamp").and_then(Value::as_str).is_none() {
                self.invariant("bdl-10", "a document must have a date");
            }
            if first_type != Some("Composition") {
                self.invariant(
                    "bdl-11",
                    "a document must have a Composition as the first resource",
                );
            }
        }
        if kind == "message" && first_type != Some("MessageHeader") {
            self.invariant(
                "bdl-12",
                "a message must have a MessageHeader as the first resource",
            );
        }
    }

    /// The properties of one object of kind `node` at `self.path`.
    fn object(&mut self, node: NodeId, m: &'v Map<String, Value>, resource_root: bool) {
        let d = self.d;
        let n = d.node(node);
        if Some(node) == self.k.bundle_entry {
            let saved = (self.full_url, self.in_entry, self.in_first);
            self.full_url = m.get("fullUrl").and_then(Value::as_str);
            self.in_entry = true;
            self.in_first = self
                .scope_stack
                .last()
                .and_then(|&s| self.scopes[s].first_entry)
                .is_some_and(|f| std::ptr::eq(f, m));
            self.properties(n, m, resource_root);
            (self.full_url, self.in_entry, self.in_first) = saved;
        } else {
            self.properties(n, m, resource_root);
        }
    }

    fn properties(&mut self, n: &'static r4::Node, m: &'v Map<String, Value>, resource_root: bool) {
        let d = self.d;
        // Choice elements seen so far in this object: (element, JSON name without '_').
        let mut choices: Vec<(r4::ElemId, &str)> = Vec::new();
        for (key, val) in m {
            if resource_root && key == "resourceType" {
                continue;
            }
            let (name, is_ext) = match key.strip_prefix('_') {
                Some(k) => (k, true),
                None => (key.as_str(), false),
            };
            let Some(child) = n.children.get(name) else {
                let len = self.push_key(key);
                self.err(
                    codes::FHIR_UNKNOWN_ELEMENT,
                    "unknown property: not an element of this type in R4",
                );
                self.path.truncate(len);
                continue;
            };
            let el = d.elem(child.elem);
            let len = self.push_key(key);
            if el.choice {
                match choices.iter().find(|(e, _)| *e == child.elem) {
                    Some((_, other)) if *other != name => {
                        let msg = format!(
                            "only one type of {} may be given (also found {})",
                            el.name,
                            quote(other)
                        );
                        self.err(codes::FHIR_CHOICE_CONFLICT, msg);
                    }
                    Some(_) => {}
                    None => choices.push((child.elem, name)),
                }
            }
            if is_ext {
                if matches!(child.ty, TypeRef::Primitive(_)) {
                    self.ext_values(el, val);
                } else {
                    self.err(
                        codes::FHIR_UNKNOWN_ELEMENT,
                        "the _element form is only for primitive elements",
                    );
                }
            } else {
                let partner = m.get(&format!("_{name}"));
                self.values(el, child.ty, val, partner);
            }
            self.path.truncate(len);
        }
        for &e in &n.required {
            let el = d.elem(e);
            if !el.json_names.iter().any(|k| m.contains_key(&**k)) {
                let msg = format!(
                    "required element {} is missing (minimum {})",
                    el.name, el.min
                );
                self.err_at(codes::FHIR_REQUIRED, &el.name, msg);
            }
        }
        for rule in &n.rules {
            let present =
                |e: &r4::ElemId| d.elem(*e).json_names.iter().any(|k| m.contains_key(&**k));
            let ok = match rule.op {
                RuleOp::Any => rule.elems.iter().any(present),
                RuleOp::Implies => {
                    !rule.elems.first().is_some_and(present)
                        || rule.elems.get(1).is_some_and(present)
                }
                RuleOp::Nand => !rule.elems.iter().all(present),
                RuleOp::When => {
                    let first = rule.elems.first().map(|e| &*d.elem(*e).name);
                    let is_value = first
                        .and_then(|k| m.get(k))
                        .and_then(Value::as_str)
                        .is_some_and(|v| Some(v) == rule.value.as_deref());
                    !is_value || rule.elems.get(1).is_some_and(present)
                }
            };
            if !ok {
                let names: Vec<&str> = rule.elems.iter().map(|e| &*d.elem(*e).name).collect();
                let how = match rule.op {
                    RuleOp::Any => format!("one of {} must be present", names.join(", ")),
                    RuleOp::Implies => format!("{} requires {}", names[0], names[1..].join(", ")),
                    RuleOp::Nand => format!("{} must not all be present", names.join(", ")),
                    RuleOp::When => format!(
                        "{} = {} requires {}",
                        names[0],
                        rule.value.as_deref().unwrap_or(""),
                        names[1..].join(", ")
                    ),
                };
                self.invariant(&rule.key, &how);
            }
        }
    }

    /// The value(s) of one property at `self.path`.
    fn values(&mut self, el: &'static Elem, ty: TypeRef, v: &'v Value, partner: Option<&'v Value>) {
        if el.max == Some(0) {
            self.err(
                codes::FHIR_CARDINALITY,
                format!("{} is not allowed here (maximum 0)", el.name),
            );
            return;
        }
        if el.array {
            let Value::Array(items) = v else {
                let msg = format!("{} must be an array, found {}", el.name, json_kind(v));
                self.err(codes::FHIR_CARDINALITY, msg);
                return;
            };
            if items.is_empty() {
                self.err(
                    codes::FHIR_EMPTY,
                    "an array must not be empty (leave the property out)",
                );
                return;
            }
            if let Some(max) = el.max {
                if items.len() > max as usize {
                    let msg = format!(
                        "{} has {} values; at most {max} allowed",
                        el.name,
                        items.len()
                    );
                    self.err(codes::FHIR_CARDINALITY, msg);
                }
            }
            for (i, item) in items.iter().enumerate() {
                let len = self.push_index(i);
                if item.is_null() {
                    let covered = partner.and_then(|p| p.get(i)).is_some_and(|p| !p.is_null());
                    if !covered {
                        self.err(
                            codes::FHIR_TYPE,
                            "null is not a value (only allowed opposite an _element entry)",
                        );
                    }
                } else {
                    self.item(el, ty, item);
                }
                self.path.truncate(len);
            }
        } else if v.is_array() {
            let msg = format!("{} takes a single value, not an array", el.name);
            self.err(codes::FHIR_CARDINALITY, msg);
        } else if v.is_null() {
            self.err(
                codes::FHIR_TYPE,
                "null is not a value (leave the property out)",
            );
        } else {
            self.item(el, ty, v);
        }
    }

    /// The `_element` form of a primitive: an object (or array of objects/nulls) with id/extension.
    fn ext_values(&mut self, el: &'static Elem, v: &'v Value) {
        let node = self.d.element_node;
        let one = |w: &mut Self, x: &'v Value| match x {
            Value::Object(m) if m.is_empty() => {
                w.err(codes::FHIR_EMPTY, "an object must not be empty");
            }
            Value::Object(m) => w.object(node, m, false),
            other => {
                let msg = format!(
                    "expected an object (id, extension), found {}",
                    json_kind(other)
                );
                w.err(codes::FHIR_TYPE, msg);
            }
        };
        match (el.array, v) {
            (true, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_null() {
                        let len = self.push_index(i);
                        one(self, item);
                        self.path.truncate(len);
                    }
                }
            }
            (true, _) => {
                let msg = format!("_{} must be an array", el.name);
                self.err(codes::FHIR_CARDINALITY, msg);
            }
            (false, Value::Array(_)) => {
                let msg = format!("_{} takes a single object, not an array", el.name);
                self.err(codes::FHIR_CARDINALITY, msg);
            }
            (false, x) => one(self, x),
        }
    }

    /// One value of an element.
    fn item(&mut self, el: &'static Elem, ty: TypeRef, v: &'v Value) {
        match ty {
            TypeRef::Primitive(p) => {
                let p = self.d.primitive(p);
                if self.primitive(p, v) {
                    if let (Some(vs), Value::String(code)) = (el.binding, v) {
                        self.binding_code(vs, None, code);
                    }
                }
            }
            TypeRef::Complex(t) => {
                let name = &*self.d.type_def(t).name;
                if let Some(m) = self.nonempty_object(v, name) {
                    self.object(self.d.type_def(t).root, m, false);
                    self.complex_hooks(t, m, el);
                }
            }
            TypeRef::Backbone => {
                if let (Some(m), Some(node)) = (self.nonempty_object(v, "BackboneElement"), el.node)
                {
                    self.object(node, m, false);
                }
            }
            TypeRef::Resource(expected) => {
                let contained = &*el.name == "contained";
                self.resource(v, expected, contained);
            }
        }
    }

    /// `v` as a non-empty object, or a finding saying why not.
    fn nonempty_object(&mut self, v: &'v Value, what: &str) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) if m.is_empty() => {
                self.err(
                    codes::FHIR_EMPTY,
                    "an object must not be empty (leave the property out)",
                );
                None
            }
            Value::Object(m) => Some(m),
            other => {
                let msg = format!("expected an object ({what}), found {}", json_kind(other));
                self.err(codes::FHIR_TYPE, msg);
                None
            }
        }
    }

    /// Reference / Identifier / Extension / bound Coding and CodeableConcept.
    fn complex_hooks(&mut self, t: TypeId, m: &'v Map<String, Value>, el: &'static Elem) {
        let k = self.k;
        let t = Some(t);
        if t == k.reference {
            if let Some(r) = m.get("reference").and_then(Value::as_str) {
                self.reference(r);
            }
        } else if t == k.identifier {
            if let Some(system) = m.get("system").and_then(Value::as_str) {
                let in_patient = self.frames.last().is_some_and(|f| f.type_name == "Patient");
                self.idents.push(IdentSite {
                    path: self.path.clone(),
                    system,
                    value: m.get("value").and_then(Value::as_str),
                    in_patient,
                });
            }
        } else if t == k.extension {
            let has_ext = m.contains_key("extension");
            let has_value = m.keys().any(|key| key.starts_with("value"));
            if has_ext == has_value {
                self.invariant("ext-1", "must have either extensions or value[x], not both");
            }
        } else if let Some(vs) = el.binding {
            if t == k.coding {
                self.binding_coding(vs, m);
            } else if t == k.codeable {
                let codings: Vec<&'v Map<String, Value>> = m
                    .get("coding")
                    .and_then(Value::as_array)
                    .map(|cs| cs.iter().filter_map(Value::as_object).collect())
                    .unwrap_or_default();
                let coded: Vec<_> = codings
                    .iter()
                    .filter(|c| c.get("code").and_then(Value::as_str).is_some())
                    .collect();
                if !coded.is_empty() && !coded.iter().any(|c| self.coding_in(vs, c)) {
                    let url = &self.d.value_sets[vs as usize].url;
                    let msg = format!("no coding is from the required value set {url}");
                    self.err(codes::FHIR_CODE_NOT_IN_VALUESET, msg);
                }
            }
        }
    }

    fn coding_in(&self, vs: u32, c: &Map<String, Value>) -> bool {
        let code = c.get("code").and_then(Value::as_str).unwrap_or("");
        let system = c.get("system").and_then(Value::as_str);
        self.d.value_sets[vs as usize].contains(system, code)
    }

    fn binding_coding(&mut self, vs: u32, c: &'v Map<String, Value>) {
        if c.get("code").and_then(Value::as_str).is_some() && !self.coding_in(vs, c) {
            let url = &self.d.value_sets[vs as usize].url;
            let code = c.get("code").and_then(Value::as_str).unwrap_or("");
            let msg = format!(
                "the code \"{}\" (with its system) is not in the required value set {url}",
                quote(code)
            );
            self.err(codes::FHIR_CODE_NOT_IN_VALUESET, msg);
        }
    }

    fn binding_code(&mut self, vs: u32, system: Option<&str>, code: &str) {
        let set = &self.d.value_sets[vs as usize];
        if !set.contains(system, code) {
            let msg = format!(
                "the code \"{}\" is not in the required value set {}",
                quote(code),
                set.url
            );
            self.err(codes::FHIR_CODE_NOT_IN_VALUESET, msg);
        }
    }

    /// Record a reference; `#id` (ref-1) is checked right here against the containing resource.
    fn reference(&mut self, r: &'v str) {
        if let Some(local) = r.strip_prefix('#') {
            // The container: the nearest resource that is not itself contained.
            let Some(pos) = self.frames.iter().rposition(|f| !f.contained) else {
                return;
            };
            let inside_contained = pos + 1 < self.frames.len();
            let container = self.frames[pos].map;
            let found = if local.is_empty() {
                inside_contained
            } else {
                container
                    .get("contained")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.get("id").and_then(Value::as_str) == Some(local))
                    })
            };
            if !found {
                self.err(
                    codes::FHIR_REFERENCE_UNRESOLVED,
                    "a local reference (#id) must point to a contained resource (ref-1)",
                );
            }
            return;
        }
        if !self.in_entry {
            return;
        }
        self.refs.push(RefSite {
            path: self.path.clone(),
            reference: r,
            scope: self.scope_stack.last().copied(),
            full_url: self.full_url,
            from_first: self.in_first,
        });
    }

    /// JSON type and lexical form of a primitive; true when the value is well-formed.
    fn primitive(&mut self, p: &'static Primitive, v: &Value) -> bool {
        match (p.json, v) {
            (JsonKind::String, Value::String(s)) => self.string(p, s),
            (JsonKind::Number, Value::Number(n)) => self.number(p, n),
            (JsonKind::Boolean, Value::Bool(_)) => true,
            (kind, other) => {
                let want = match kind {
                    JsonKind::String => "a string",
                    JsonKind::Number => "a number",
                    JsonKind::Boolean => "true or false",
                };
                let msg = format!(
                    "a {} is written as {want}, found {}",
                    p.name,
                    json_kind(other)
                );
                self.err(codes::FHIR_TYPE, msg);
                false
            }
        }
    }

    fn string(&mut self, p: &'static Primitive, s: &str) -> bool {
        let name = &*p.name;
        if s.trim().is_empty() {
            self.err(
                codes::FHIR_VALUE_FORMAT,
                format!("a {name} must have non-whitespace content"),
            );
            return false;
        }
        if matches!(name, "string" | "markdown") && s.len() > 1024 * 1024 {
            self.err(
                codes::FHIR_VALUE_FORMAT,
                format!("a {name} must not exceed 1 MB"),
            );
            return false;
        }
        if let Some(re) = &p.regex {
            if !re.is_match(s) {
                self.err(codes::FHIR_VALUE_FORMAT, format!("not a valid {name}"));
                return false;
            }
        }
        // The regexes allow 31 February; R4: "Dates SHALL be valid dates".
        if matches!(name, "date" | "dateTime" | "instant") && s.len() >= 10 {
            let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
            let real = match (num(0..4), num(5..7), num(8..10)) {
                (Some(y), Some(m), Some(d)) => {
                    chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some()
                }
                _ => false,
            };
            if !real {
                self.err(
                    codes::FHIR_VALUE_FORMAT,
                    format!("not a valid {name}: no such calendar date"),
                );
                return false;
            }
        }
        true
    }

    fn number(&mut self, p: &'static Primitive, n: &serde_json::Number) -> bool {
        let name = &*p.name;
        let (lo, hi) = match name {
            "integer" => (i64::from(i32::MIN), i64::from(i32::MAX)),
            "positiveInt" => (1, i64::from(i32::MAX)),
            "unsignedInt" => (0, i64::from(i32::MAX)),
            _ => return true, // decimal: any JSON number
        };
        // serde_json keeps 1 and 1.0 apart; R4's integer regex has no fraction or exponent.
        let Some(i) = n.as_i64().or_else(|| n.as_u64().map(|_| i64::MAX)) else {
            self.err(
                codes::FHIR_VALUE_FORMAT,
                format!("a {name} must be a whole number without fraction or exponent"),
            );
            return false;
        };
        if i < lo || i > hi {
            self.err(
                codes::FHIR_VALUE_FORMAT,
                format!("a {name} must be between {lo} and {hi}"),
            );
            return false;
        }
        true
    }

    /// After the walk: references, identifiers, the KAD rules.
    fn finish(mut self, kad_rules: bool) -> Vec<Finding> {
        self.check_references();
        self.check_identifiers();
        if kad_rules {
            self.check_messages();
            self.check_patients();
        }
        self.out
    }

    /// The message/document scope a site's references must resolve in, walking outwards.
    fn resolving_scope(&self, scope: Option<usize>) -> bool {
        let mut s = scope;
        while let Some(i) = s {
            if matches!(self.scopes[i].kind, "message" | "document") {
                return true;
            }
            s = self.scopes[i].parent;
        }
        false
    }

    fn resolves(&self, r: &RefSite<'v>) -> bool {
        let target = r
            .reference
            .split_once("/_history/")
            .map_or(r.reference, |(a, _)| a);
        let relative = !target.contains(':');
        let typed = target.split_once('/');
        let candidate = r.full_url.and_then(|u| {
            // The referencing entry's RESTful base: fullUrl minus its trailing Type/id.
            let mut parts = u.rsplitn(3, '/');
            let (_id, _ty, base) = (parts.next()?, parts.next()?, parts.next()?);
            Some(format!("{base}/{target}"))
        });
        let mut s = r.scope;
        while let Some(i) = s {
            let sc = &self.scopes[i];
            for (url, ty, id) in &sc.entries {
                if *url == Some(target)
                    || (candidate.is_some() && url.map(str::to_owned) == candidate)
                {
                    return true;
                }
                if relative {
                    if let Some((t, i)) = typed {
                        if *ty == Some(t) && *id == Some(i) {
                            return true;
                        }
                    }
                }
            }
            s = sc.parent;
        }
        false
    }

    /// References inside the entries of a message or document Bundle must point into it (R4 Bundle
    /// resolution: exact fullUrl, or `Type/id` against the entry's base or an entry's type and id).
    /// An error when the first entry's reference does not resolve (MessageHeader.focus, sender, …;
    /// the Composition's subject, author, section entries: what the message or document is about
    /// must travel with it). A warning for other entries' references (the referral inside a discharge
    /// summary may cite its own sources) and for what could be read from a server (an absolute
    /// http(s) URL, or a relative reference in an entry with an http(s) fullUrl).
    fn check_references(&mut self) {
        let refs = std::mem::take(&mut self.refs);
        for r in &refs {
            if !self.resolving_scope(r.scope) || r.reference.contains('?') {
                continue;
            }
            if self.resolves(r) {
                continue;
            }
            let http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
            // An absolute URL, or a relative one in an entry whose fullUrl is a server's URL, may be
            // read from that server (R4 Bundle resolution); `urn:` fullUrls have no server.
            let external =
                http(r.reference) || (!r.reference.contains(':') && r.full_url.is_some_and(http));
            let f = if external {
                Finding::warning(
                    codes::FHIR_REFERENCE_UNRESOLVED,
                    r.path.clone(),
                    "the reference points outside the Bundle (no entry has this URL)",
                )
            } else if !r.from_first {
                Finding::warning(
                    codes::FHIR_REFERENCE_UNRESOLVED,
                    r.path.clone(),
                    "the reference does not resolve to an entry of the Bundle (only what the first entry references must be included)",
                )
            } else {
                Finding::error(
                    codes::FHIR_REFERENCE_UNRESOLVED,
                    r.path.clone(),
                    "the reference does not resolve to an entry of the Bundle",
                )
            };
            self.out.push(f);
        }
    }

    /// FACTS §4: Norwegian identifier systems and their check digits.
    fn check_identifiers(&mut self) {
        let idents = std::mem::take(&mut self.idents);
        for i in &idents {
            let value = i.value.map(str::trim).unwrap_or("");
            let mut vpath = i.path.clone();
            vpath.push_str(".value");
            let person = match i.system {
                systems::FNR => Some(PersonIdKind::Fnr),
                systems::DNR => Some(PersonIdKind::Dnr),
                systems::FHN => Some(PersonIdKind::Fhn),
                _ => None,
            };
            if let Some(kind) = person {
                if let Err(e) = ident::check_declared(value, kind) {
                    let code = if i.in_patient {
                        codes::PATIENT_ID_INVALID
                    } else {
                        codes::FHIR_IDENTIFIER_INVALID
                    };
                    self.out.push(Finding::warning(
                        code,
                        vpath,
                        format!("the {} is not valid: {e}", kind.code()),
                    ));
                }
                continue;
            }
            let (ok, what) = match i.system {
                systems::HPR => (
                    ident::valid_hpr_number(value),
                    "HPR-number (a positive integer of up to 9 digits)",
                ),
                systems::HER => (ident::valid_her_id(value), "HER-id (a positive integer)"),
                systems::ENH | systems::ENH_OLD => (
                    ident::valid_org_number(value),
                    "organisation number (9 digits, mod-11)",
                ),
                systems::RESH | systems::RESH_OLD => {
                    (ident::valid_her_id(value), "RESH-id (a positive integer)")
                }
                _ => continue,
            };
            if matches!(i.system, systems::ENH_OLD | systems::RESH_OLD) {
                let new = if i.system == systems::ENH_OLD {
                    systems::ENH
                } else {
                    systems::RESH
                };
                let mut spath = i.path.clone();
                spath.push_str(".system");
                self.out.push(Finding::warning(
                    codes::FHIR_IDENTIFIER_SYSTEM_DEPRECATED,
                    spath,
                    format!("identifier system used by no-basis before 2.0.13; the current one is {new}"),
                ));
            }
            if !ok {
                self.out.push(Finding::warning(
                    codes::FHIR_IDENTIFIER_INVALID,
                    vpath,
                    format!("not a valid {what}"),
                ));
            }
        }
    }

    /// The outermost message/document Bundles (a document inside a message belongs to the message).
    fn outer_scopes(&self) -> Vec<usize> {
        (0..self.scopes.len())
            .filter(|&i| {
                matches!(self.scopes[i].kind, "message" | "document") && {
                    let mut p = self.scopes[i].parent;
                    let mut outer = true;
                    while let Some(j) = p {
                        if matches!(self.scopes[j].kind, "message" | "document") {
                            outer = false;
                        }
                        p = self.scopes[j].parent;
                    }
                    outer
                }
            })
            .collect()
    }

    fn within(&self, scope: Option<usize>, outer: usize) -> bool {
        let mut s = scope;
        while let Some(i) = s {
            if i == outer {
                return true;
            }
            s = self.scopes[i].parent;
        }
        false
    }

    /// KAD: a request message (MessageHeader without `response`) names what it is about.
    fn check_messages(&mut self) {
        for r in &self.resources {
            if r.type_name == "MessageHeader"
                && !r.value.contains_key("response")
                && !r.value.contains_key("focus")
                && r.scope.is_some_and(|s| self.scopes[s].kind == "message")
            {
                self.out.push(Finding::error(
                    codes::FHIR_MESSAGE_FOCUS_MISSING,
                    format!("{}.focus", r.path),
                    "a request message must name its focus (the referral, the document, …)",
                ));
            }
        }
    }

    /// KAD: the KITH patient rule (FACTS §7.3) on every Patient of a request message or a document.
    fn check_patients(&mut self) {
        for outer in self.outer_scopes() {
            if self.scopes[outer].is_response {
                continue;
            }
            let patients: Vec<(String, &Map<String, Value>)> = self
                .resources
                .iter()
                .filter(|r| r.type_name == "Patient" && self.within(r.scope, outer))
                .map(|r| (r.path.clone(), r.value))
                .collect();
            if patients.is_empty() {
                self.out.push(Finding::error(
                    codes::PATIENT_MISSING,
                    self.scopes[outer].path.clone(),
                    "the message names no patient",
                ));
            }
            for (path, p) in patients {
                let model = patient_model(p);
                crate::kith::semantics::check_patient(Some(&model), &path, &mut self.out);
            }
        }
    }
}

/// The parts of a FHIR Patient the KITH patient rule reads. Only national numbers with valid check
/// digits are passed on (invalid ones were reported with their FHIR path already).
fn patient_model(p: &Map<String, Value>) -> Patient {
    let names: &[Value] = p
        .get("name")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let name = names
        .iter()
        .find(|n| n.get("use").and_then(Value::as_str) == Some("official"))
        .or_else(|| names.first());
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let given = name
        .and_then(|n| n.get("given"))
        .and_then(Value::as_array)
        .and_then(|g| g.iter().find_map(Value::as_str))
        .map(str::to_owned);
    let idents = p
        .get("identifier")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|i| {
                    let kind = match i.get("system").and_then(Value::as_str)? {
                        systems::FNR => PersonIdKind::Fnr,
                        systems::DNR => PersonIdKind::Dnr,
                        systems::FHN => PersonIdKind::Fhn,
                        _ => return None,
                    };
                    let v = i.get("value").and_then(Value::as_str)?.trim();
                    ident::check_declared(v, kind).ok()?;
                    Some(PatientIdent {
                        id: v.to_owned(),
                        kind: kind.code().to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Patient {
        family_name: text(name.and_then(|n| n.get("family"))),
        given_name: given,
        full_name: text(name.and_then(|n| n.get("text"))),
        birth_date: text(p.get("birthDate")),
        sex: match p.get("gender").and_then(Value::as_str) {
            Some("male") => Some(Sex::Male),
            Some("female") => Some(Sex::Female),
            Some("other") => Some(Sex::Other),
            Some("unknown") => Some(Sex::Unknown),
            _ => None,
        },
        idents,
        ..Patient::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes_of(v: Value) -> Vec<(String, String)> {
        validate_with(&v, &Options::r4())
            .into_iter()
            .map(|f| (f.code, f.path))
            .collect()
    }

    #[test]
    fn structure_findings_have_paths() {
        let got = codes_of(json!({
            "resourceType": "Patient",
            "gender": "mal",
            "birthDate": "2020-02-30",
            "active": "yes",
            "foo": 1,
            "name": {"family": "X"},
            "_birthDate": {"extension": [{"url": "http://x"}]}
        }));
        let want = [
            (codes::FHIR_TYPE, "Patient.active"),
            (codes::FHIR_VALUE_FORMAT, "Patient.birthDate"),
            (codes::FHIR_INVARIANT, "Patient._birthDate.extension[0]"),
            (codes::FHIR_UNKNOWN_ELEMENT, "Patient.foo"),
            (codes::FHIR_CODE_NOT_IN_VALUESET, "Patient.gender"),
            (codes::FHIR_CARDINALITY, "Patient.name"),
        ];
        for (c, p) in want {
            assert!(
                got.contains(&(c.to_string(), p.to_string())),
                "{c} at {p} in {got:?}"
            );
        }
        assert_eq!(got.len(), want.len(), "{got:?}");
    }

    #[test]
    fn operation_outcome_all_ok() {
        let oo = operation_outcome(&[]);
        assert_eq!(oo["issue"][0]["severity"], "information");
        assert!(validate_with(&oo, &Options::r4()).is_empty());
    }
}
