//! FHIR R4 JSON → canonical model.
//!
//! Reads a message Bundle (MessageHeader first) whose focus is a ServiceRequest (→ Referral), a
//! Communication (→ Dialog), an Encounter (→ CareEvent, a stay event) or a document Bundle
//! (→ Epicrisis); a response message
//! (`MessageHeader.response`, → Receipt); and a document Bundle on its own (Composition first,
//! → Epicrisis). A patient's relatives and care providers are the RelatedPerson and CareTeam
//! entries pointing at it; the message's and the document's parties are made one (see `unify`).
//! The tables it shares with the encoder are in [`super::mapping`]; the whole mapping is in
//! `docs/mapping/fhir.md`.
//!
//! Like the KITH decoders it never rejects and never panics: it reads what is there, leaves the rest
//! `None`/empty and writes a finding (codes `fhir.*`, FHIRPath locations, no patient data in the
//! text) for anything it cannot read. It does not validate against the R4 definitions — that is the
//! validator's job; a structurally broken Bundle still yields whatever could be read.

use serde_json::Value;

use super::mapping::{
    self, address_kind, ext, kind_of_id_system, model_system, sex_of_gender, sys, ResponseCode,
    TELECOM_SCHEME, TELECOM_USE,
};
use crate::finding::{codes, Finding, Severity};
use crate::model::{
    Address, Attachment, Body, CareEvent, CareEventKind, CarePathway, CareProvider,
    CareProviderRole, Code, CodeModifier, CommunicationNeed, Consent, Conversation, CopyReceiver,
    DatedCode, Diagnosis, DiagnosisRank, Dialog, DialogRequest, Epicrisis, Format, Header, Ident,
    Medication, Message, Observation, Organisation, Patient, PatientIdent, Professional, Quantity,
    Receipt, ReceiptStatus, Referral, ReferralAssessment, RelatedPerson, ServiceType, Telecom,
    TextRole, TextSection,
};

/// A decoded FHIR message: `message` is `None` only when the input is no readable Bundle at all.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub message: Option<Message>,
    pub findings: Vec<Finding>,
}

/// How deep `partOf` chains are followed (they may loop in broken input).
const MAX_CHAIN: usize = 8;

/// Decode a FHIR Bundle. Never panics; see the module documentation.
pub fn decode(bundle: &Value) -> Decoded {
    let mut cx = Cx::default();
    let message = cx.bundle(bundle);
    Decoded {
        message,
        findings: cx.notes,
    }
}

/// One Bundle entry: its fullUrl, resource and FHIRPath.
#[derive(Clone)]
struct Entry<'a> {
    full_url: Option<&'a str>,
    resource: &'a Value,
    path: String,
}

fn entries<'a>(bundle: &'a Value, base: &str) -> Vec<Entry<'a>> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .enumerate()
                .filter_map(|(n, e)| {
                    let resource = e.get("resource").filter(|r| r.is_object())?;
                    Some(Entry {
                        full_url: e.get("fullUrl").and_then(Value::as_str),
                        resource,
                        path: format!("{base}.entry[{n}].resource"),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rtype(v: &Value) -> &str {
    v.get("resourceType").and_then(Value::as_str).unwrap_or("")
}

#[derive(Default)]
struct Cx<'a> {
    /// Entries references are resolved against, the innermost Bundle's first.
    scope: Vec<Entry<'a>>,
    notes: Vec<Finding>,
}

impl<'a> Cx<'a> {
    fn note(&mut self, code: &str, sev: Severity, path: &str, msg: impl Into<String>) {
        self.notes.push(Finding::new(code, sev, path, msg));
    }

    // ------------------------------------------------------------ typed access

    /// A string element; a non-string is noted and ignored. Blank strings count as absent.
    fn st(&mut self, v: &Value, key: &str, path: &str) -> Option<String> {
        match v.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::String(_) => None,
            _ => {
                self.note(
                    codes::FHIR_VALUE_INVALID,
                    Severity::Warning,
                    &format!("{path}.{key}"),
                    "expected a string; not read",
                );
                None
            }
        }
    }

    /// An array element; a non-array is noted and read as empty.
    fn arr<'v>(&mut self, v: &'v Value, key: &str, path: &str) -> &'v [Value] {
        match v.get(key) {
            None => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.note(
                    codes::FHIR_VALUE_INVALID,
                    Severity::Warning,
                    &format!("{path}.{key}"),
                    "expected an array; not read",
                );
                &[]
            }
        }
    }

    /// An object element; anything else is noted and ignored.
    fn ob<'v>(&mut self, v: &'v Value, key: &str, path: &str) -> Option<&'v Value> {
        match v.get(key)? {
            o @ Value::Object(_) => Some(o),
            _ => {
                self.note(
                    codes::FHIR_VALUE_INVALID,
                    Severity::Warning,
                    &format!("{path}.{key}"),
                    "expected an object; not read",
                );
                None
            }
        }
    }

    /// The value of the first extension with `url` (the whole extension object).
    fn extension<'v>(&mut self, v: &'v Value, url: &str, path: &str) -> Option<&'v Value> {
        self.arr(v, "extension", path)
            .iter()
            .find(|e| e.get("url").and_then(Value::as_str) == Some(url))
    }

    // ------------------------------------------------------------ codes

    fn coding(&mut self, c: &Value, path: &str) -> Option<Code> {
        if !c.is_object() {
            self.note(
                codes::FHIR_VALUE_INVALID,
                Severity::Warning,
                path,
                "expected a Coding",
            );
            return None;
        }
        let code = self.st(c, "code", path);
        let display = self.st(c, "display", path);
        if code.is_none() && display.is_none() {
            return None;
        }
        Some(Code {
            code: code.map(|c| c.trim().to_string()).unwrap_or_default(),
            system: self.st(c, "system", path).map(|s| model_system(&s)),
            display,
        })
    }

    /// A CodeableConcept: its first usable coding, else its text (as a display without a code).
    fn cc(&mut self, v: &Value, path: &str) -> Option<Code> {
        if !v.is_object() {
            self.note(
                codes::FHIR_VALUE_INVALID,
                Severity::Warning,
                path,
                "expected a CodeableConcept",
            );
            return None;
        }
        for (n, c) in self.arr(v, "coding", path).iter().enumerate() {
            if let Some(code) = self.coding(c, &format!("{path}.coding[{n}]")) {
                return Some(code);
            }
        }
        self.st(v, "text", path).map(|t| Code {
            code: String::new(),
            system: None,
            display: Some(t),
        })
    }

    fn cc_at(&mut self, v: &Value, key: &str, path: &str) -> Option<Code> {
        let c = self.ob(v, key, path)?;
        self.cc(c, &format!("{path}.{key}"))
    }

    fn heading(&mut self, v: &Value, path: &str) -> Option<Code> {
        let e = self.extension(v, ext::KG_HEADING, path)?;
        let c = e.get("valueCoding")?;
        self.coding(c, &format!("{path}.extension"))
    }

    /// Every extension with `url`.
    fn extensions<'v>(&mut self, v: &'v Value, url: &str, path: &str) -> Vec<&'v Value> {
        self.arr(v, "extension", path)
            .iter()
            .filter(|e| e.get("url").and_then(Value::as_str) == Some(url))
            .collect()
    }

    /// The code of an extension: `valueCodeableConcept` or `valueCoding`.
    fn ext_code(&mut self, e: &Value, path: &str) -> Option<Code> {
        if let Some(c) = e.get("valueCodeableConcept") {
            return self.cc(c, &format!("{path}.valueCodeableConcept"));
        }
        let c = e.get("valueCoding")?;
        self.coding(c, &format!("{path}.valueCoding"))
    }

    fn code_ext(&mut self, v: &Value, url: &str, path: &str) -> Option<Code> {
        let e = self.extension(v, url, path)?;
        self.ext_code(e, &format!("{path}.extension"))
    }

    fn string_ext(&mut self, v: &Value, url: &str, path: &str) -> Option<String> {
        let e = self.extension(v, url, path)?;
        ["valueString", "valueDateTime", "valueDate", "valueCode"]
            .iter()
            .find_map(|k| e.get(*k).and_then(Value::as_str))
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    }

    fn bool_ext(&mut self, v: &Value, url: &str, path: &str) -> Option<bool> {
        self.extension(v, url, path)?
            .get("valueBoolean")
            .and_then(Value::as_bool)
    }

    /// `start` and `end` of a Period element.
    fn period(&mut self, v: &Value, key: &str, path: &str) -> (Option<String>, Option<String>) {
        let Some(p) = self.ob(v, key, path) else {
            return (None, None);
        };
        let pp = format!("{path}.{key}");
        (self.st(p, "start", &pp), self.st(p, "end", &pp))
    }

    /// A text with what kadgate's text extensions say about it (role, period, codes); `heading`
    /// from `text-heading` unless given.
    fn text(&mut self, v: &Value, path: &str, text: String, heading: Option<Code>) -> TextSection {
        let heading = heading.or_else(|| self.heading(v, path));
        let role = self
            .string_ext(v, ext::KG_TEXT_ROLE, path)
            .and_then(|r| serde_json::from_value::<TextRole>(Value::String(r)).ok());
        let (start, end) = match self.extension(v, ext::KG_TEXT_PERIOD, path) {
            Some(e) => self.period(e, "valuePeriod", &format!("{path}.extension")),
            None => (None, None),
        };
        let mut codes = Vec::new();
        for e in self.extensions(v, ext::KG_TEXT_CODE, path) {
            codes.extend(self.ext_code(e, &format!("{path}.extension")));
        }
        TextSection {
            heading,
            text,
            role,
            start,
            end,
            codes,
        }
    }

    /// A FHIR Quantity → model quantity (the number as text).
    fn quantity(&mut self, q: &Value, path: &str) -> Option<Quantity> {
        let value = match q.get("value") {
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                self.note(
                    codes::FHIR_VALUE_INVALID,
                    Severity::Warning,
                    &format!("{path}.value"),
                    "expected a number",
                );
                String::new()
            }
            None => String::new(),
        };
        let unit = self.st(q, "unit", path);
        (!value.is_empty() || unit.is_some()).then_some(Quantity { value, unit })
    }

    /// The entries of the current scope of type `rtype` whose reference at `key` resolves to the
    /// entry at `target` (a Patient, an Encounter).
    fn pointing_at(&mut self, rtype_: &str, key: &str, target: &str) -> Vec<Entry<'a>> {
        let candidates: Vec<Entry<'a>> = self
            .scope
            .iter()
            .filter(|e| rtype(e.resource) == rtype_)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for c in candidates {
            if let Some(t) = self.resolve_at(c.resource, key, &c.path.clone()) {
                if t.path == target {
                    out.push(c);
                }
            }
        }
        out
    }

    /// A CareTeam (of one) → a care provider.
    fn care_provider(&mut self, e: &Entry<'a>) -> CareProvider {
        let (r, p) = (e.resource, e.path.clone());
        let mut c = CareProvider {
            note: self
                .arr(r, "note", &p)
                .first()
                .and_then(|n| self.st(n, "text", &format!("{p}.note[0]"))),
            ..CareProvider::default()
        };
        let Some(part) = self.arr(r, "participant", &p).first() else {
            return c;
        };
        let pp = format!("{p}.participant[0]");
        for (n, role) in self.arr(part, "role", &pp).iter().enumerate() {
            let rp = format!("{pp}.role[{n}]");
            let own = role
                .get("coding")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .filter(|x| {
                    x.get("system").and_then(Value::as_str) == Some(mapping::CARE_PROVIDER_ROLE)
                })
                .and_then(|x| x.get("code"))
                .and_then(Value::as_str);
            match own {
                Some("contact") => c.role = Some(CareProviderRole::Contact),
                Some("responsible") => c.role = Some(CareProviderRole::Responsible),
                Some(_) => {}
                None if c.relation.is_none() => c.relation = self.cc(role, &rp),
                None => {}
            }
        }
        if let Some(m) = self.resolve_at(part, "member", &pp) {
            c.party = self.party(&m, &format!("{pp}.member")).unwrap_or_default();
        }
        (c.start, c.end) = self.period(part, "period", &pp);
        c
    }

    /// An attachment from a DocumentReference.
    fn document_reference(&mut self, d: &Value, p: &str) -> Attachment {
        let mut a = Attachment {
            kind: self.cc_at(d, "type", p),
            id: self
                .ob(d, "masterIdentifier", p)
                .and_then(|i| self.st(i, "value", &format!("{p}.masterIdentifier"))),
            ..Attachment::default()
        };
        let contents = self.arr(d, "content", p);
        if let Some(c) = contents.first() {
            let cp = format!("{p}.content[0]");
            if let Some(att) = self.ob(c, "attachment", &cp) {
                let x = self.attachment(att, &format!("{cp}.attachment"));
                a = Attachment {
                    kind: a.kind,
                    id: a.id,
                    ..x
                };
            }
        }
        // Content split into parts (kadgate's `data-part`): join the parts' data in order.
        let part = |c: &Value| {
            c.get("attachment")?
                .get("extension")?
                .as_array()?
                .iter()
                .find(|e| e.get("url").and_then(Value::as_str) == Some(ext::KG_DATA_PART))?
                .get("valuePositiveInt")?
                .as_u64()
        };
        let mut parts: Vec<(u64, &str)> = contents
            .iter()
            .filter_map(|c| {
                let data = c.get("attachment")?.get("data")?.as_str()?;
                Some((part(c)?, data))
            })
            .collect();
        if parts.len() > 1 {
            parts.sort_by_key(|(n, _)| *n);
            a.data = Some(parts.iter().map(|(_, d)| *d).collect());
        }
        a
    }

    /// An R4 Attachment.
    fn attachment(&mut self, att: &Value, p: &str) -> Attachment {
        Attachment {
            media_type: self.st(att, "contentType", p),
            data: self.st(att, "data", p),
            uri: self.st(att, "url", p),
            description: self.st(att, "title", p),
            issue_date: self.st(att, "creation", p),
            ..Attachment::default()
        }
    }

    /// A RelatedPerson → related person (relationship entries: kinship, care function, `N`).
    fn related_person(&mut self, r: &Value, path: &str) -> RelatedPerson {
        let name = self.name(r, path);
        let mut p = RelatedPerson {
            family_name: name.family,
            middle_name: name.middle,
            given_name: name.given,
            full_name: name.text,
            birth_date: self.st(r, "birthDate", path),
            sex: self.st(r, "gender", path).and_then(|g| sex_of_gender(&g)),
            idents: self.idents(r, path),
            address: self.first_address(r, path),
            telecom: self.telecoms(r, path),
            occupation: self.string_ext(r, ext::KG_OCCUPATION, path),
            workplace: self.string_ext(r, ext::KG_WORKPLACE, path),
            note: self.string_ext(r, ext::KG_NOTE, path),
            next_of_kin: self.bool_ext(r, ext::KG_NEXT_OF_KIN, path),
            ..RelatedPerson::default()
        };
        for (n, c) in self.arr(r, "relationship", path).iter().enumerate() {
            let cp = format!("{path}.relationship[{n}]");
            let next_of_kin = c.get("coding").and_then(Value::as_array).is_some_and(|a| {
                a.iter().any(|x| {
                    x.get("system").and_then(Value::as_str) == Some(mapping::CONTACT_ROLE)
                        && x.get("code").and_then(Value::as_str) == Some("N")
                })
            });
            if next_of_kin {
                p.next_of_kin = Some(true);
            } else if self.bool_ext(c, ext::KG_CARE_FUNCTION, &cp) == Some(true) {
                p.care_function = self.cc(c, &cp);
            } else if p.relationship.is_none() {
                p.relationship = self.cc(c, &cp);
            }
        }
        p
    }

    // ------------------------------------------------------------ references

    /// Resolve a Reference inside the Bundle(s). `None` without a `reference` (e.g. a
    /// data-absent-reason); an unresolvable one is noted.
    fn resolve(&mut self, r: &Value, path: &str) -> Option<Entry<'a>> {
        let target = match r.get("reference") {
            None => return None,
            Some(Value::String(s)) => s.trim().to_string(),
            Some(_) => {
                self.note(
                    codes::FHIR_VALUE_INVALID,
                    Severity::Warning,
                    &format!("{path}.reference"),
                    "expected a string",
                );
                return None;
            }
        };
        let found = self.scope.iter().find(|e| {
            e.full_url == Some(target.as_str())
                || e.full_url.is_some_and(|u| {
                    !target.starts_with("urn:") && u.ends_with(&format!("/{target}"))
                })
                || target.split_once('/').is_some_and(|(t, id)| {
                    rtype(e.resource) == t
                        && e.resource.get("id").and_then(Value::as_str) == Some(id)
                })
        });
        match found {
            Some(e) => Some(e.clone()),
            None => {
                self.note(
                    codes::FHIR_REFERENCE_UNRESOLVED,
                    Severity::Warning,
                    path,
                    "reference does not resolve to an entry of the Bundle",
                );
                None
            }
        }
    }

    fn resolve_at(&mut self, v: &Value, key: &str, path: &str) -> Option<Entry<'a>> {
        let r = self.ob(v, key, path)?;
        self.resolve(r, &format!("{path}.{key}"))
    }

    fn unexpected(&mut self, e: &Entry<'_>, path: &str, wanted: &str) {
        let got = rtype(e.resource).to_string();
        self.note(
            codes::FHIR_REFERENCE_UNRESOLVED,
            Severity::Warning,
            path,
            format!("refers to a {got}, expected {wanted}"),
        );
    }

    // ------------------------------------------------------------ the Bundle

    fn bundle(&mut self, b: &'a Value) -> Option<Message> {
        if rtype(b) != "Bundle" {
            self.note(
                codes::FHIR_NOT_A_BUNDLE,
                Severity::Error,
                "",
                "the input is not a FHIR Bundle",
            );
            return None;
        }
        let all = entries(b, "Bundle");
        self.scope = all.clone();
        match b.get("type").and_then(Value::as_str) {
            Some("message") => Some(self.message(b, &all)),
            Some("document") => Some(self.document_alone(b, &all)),
            _ => {
                self.note(
                    codes::FHIR_BUNDLE_TYPE,
                    Severity::Error,
                    "Bundle.type",
                    "only message and document Bundles are read",
                );
                None
            }
        }
    }

    fn empty_header(&self, msg_type: &str) -> Header {
        Header::new(Format::FhirR4, msg_type)
    }

    fn message(&mut self, b: &'a Value, all: &[Entry<'a>]) -> Message {
        let mut header = self.empty_header("");
        header.gen_date = self.st(b, "timestamp", "Bundle");
        let Some(first) = all.first().filter(|e| rtype(e.resource) == "MessageHeader") else {
            self.note(
                codes::FHIR_HEADER_MISSING,
                Severity::Error,
                "Bundle.entry[0]",
                "a message Bundle must start with a MessageHeader",
            );
            return Message {
                header,
                body: Body::Opaque,
            };
        };
        let mh = first.resource;
        let p = first.path.clone();
        header.msg_id = self.st(mh, "id", &p);
        match (mh.get("eventCoding"), self.st(mh, "eventUri", &p)) {
            (Some(c), _) => {
                let c = self.coding(c, &format!("{p}.eventCoding"));
                header.msg_type = c.as_ref().map(|c| c.code.clone()).unwrap_or_default();
                header.msg_type_text = c.and_then(|c| c.display);
            }
            (None, Some(u)) => header.msg_type = u,
            (None, None) => self.note(
                codes::FHIR_EVENT_MISSING,
                Severity::Warning,
                &p,
                "MessageHeader has no event",
            ),
        }
        header.sender = self
            .resolve_at(mh, "sender", &p)
            .and_then(|e| self.party(&e, &format!("{p}.sender")));
        if header.sender.is_none() {
            let endpoint = mh
                .get("source")
                .and_then(|s| s.get("endpoint"))
                .and_then(Value::as_str);
            header.sender = endpoint.and_then(her_of_endpoint);
        }
        for (n, d) in self.arr(mh, "destination", &p).iter().enumerate() {
            let dp = format!("{p}.destination[{n}]");
            let party = self
                .resolve_at(d, "receiver", &dp)
                .and_then(|e| self.party(&e, &format!("{dp}.receiver")))
                .or_else(|| {
                    d.get("endpoint")
                        .and_then(Value::as_str)
                        .and_then(her_of_endpoint)
                });
            let Some(party) = party else { continue };
            if n == 0 {
                header.receiver = Some(party);
            } else {
                let role = self
                    .extension(d, ext::KG_RECEIVER_ROLE, &dp)
                    .and_then(|e| e.get("valueCode"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                header.copy_receivers.push(CopyReceiver { role, party });
            }
        }
        if let Some(c) = self.extension(mh, ext::KG_CONVERSATION, &p) {
            let sub = |name: &str| {
                c.get("extension")
                    .and_then(Value::as_array)
                    .and_then(|a| {
                        a.iter()
                            .find(|e| e.get("url").and_then(Value::as_str) == Some(name))
                    })
                    .and_then(|e| e.get("valueString"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            header.conversation = Some(Conversation {
                ref_to_parent: sub("refToParent"),
                ref_to_conversation: sub("refToConversation"),
            });
        }

        if let Some(resp) = self.ob(mh, "response", &p) {
            let body = self.receipt(resp, &format!("{p}.response"), &header);
            return Message {
                header,
                body: Body::Receipt(Box::new(body)),
            };
        }

        let focus = self
            .arr(mh, "focus", &p)
            .first()
            .and_then(|f| self.resolve(f, &format!("{p}.focus[0]")));
        let Some(focus) = focus else {
            self.note(
                codes::FHIR_FOCUS_MISSING,
                Severity::Error,
                &format!("{p}.focus"),
                "the MessageHeader names no focus resource in the Bundle",
            );
            return Message {
                header,
                body: Body::Opaque,
            };
        };
        let fp = focus.path.clone();
        let body = match rtype(focus.resource) {
            "ServiceRequest" => {
                let r = self.referral(focus.resource, &fp, &header);
                header.patient = r.patient.clone();
                Body::Referral(Box::new(r))
            }
            "Communication" => {
                let (d, patient, conv) = self.dialog(focus.resource, &fp);
                header.patient = patient;
                if conv.is_some() {
                    header.conversation = conv;
                }
                Body::Dialog(Box::new(d))
            }
            "Bundle" if focus.resource.get("type").and_then(Value::as_str) == Some("document") => {
                let inner = entries(focus.resource, &fp);
                let outer = std::mem::take(&mut self.scope);
                self.scope = inner.iter().cloned().chain(outer.iter().cloned()).collect();
                let e = self.epicrisis(&inner, &fp);
                self.scope = outer;
                match e {
                    Some(e) => {
                        header.patient = e.patient.clone();
                        Body::Epicrisis(Box::new(e))
                    }
                    None => Body::Opaque,
                }
            }
            "Encounter" => {
                header.patient = self.subject(focus.resource, &fp);
                match self.care_event(focus.resource, &fp) {
                    Some(e) => Body::CareEvent(Box::new(e)),
                    None => Body::Opaque,
                }
            }
            other => {
                let other = other.to_string();
                self.note(
                    codes::FHIR_FOCUS_UNSUPPORTED,
                    Severity::Warning,
                    &fp,
                    format!("a {other} focus is not read as a message body"),
                );
                Body::Opaque
            }
        };
        // Copy receivers are the body's copy receivers too (as the KITH decoders do).
        let copies: Vec<Organisation> = header
            .copy_receivers
            .iter()
            .map(|c| c.party.clone())
            .collect();
        // The message's parties and the document's are one in the model (as in KITH): a referral
        // is sent by its requester to its performer, an epicrisis by its author to the requester.
        let body = match body {
            Body::Referral(mut r) => {
                r.copy_to = copies;
                unify(&mut header.sender, &mut r.requester);
                unify(&mut header.receiver, &mut r.service_provider);
                Body::Referral(r)
            }
            Body::Epicrisis(mut e) => {
                e.copy_to = copies;
                unify(&mut header.sender, &mut e.service_provider);
                unify(&mut header.receiver, &mut e.requester);
                Body::Epicrisis(e)
            }
            b => b,
        };
        Message { header, body }
    }

    fn document_alone(&mut self, b: &'a Value, all: &[Entry<'a>]) -> Message {
        let mut header = self.empty_header(mapping::event::EPICRISIS);
        header.msg_id = self.st(b, "id", "Bundle");
        header.gen_date = self.st(b, "timestamp", "Bundle");
        let body = match self.epicrisis(all, "Bundle") {
            Some(e) => {
                header.patient = e.patient.clone();
                header.sender = e.service_provider.clone();
                header.receiver = e.requester.clone();
                Body::Epicrisis(Box::new(e))
            }
            None => Body::Opaque,
        };
        Message { header, body }
    }

    // ------------------------------------------------------------ parties

    /// A party reference target → organisation chain (with the professional at its deepest level).
    fn party(&mut self, e: &Entry<'a>, path: &str) -> Option<Organisation> {
        match rtype(e.resource) {
            "Organization" => Some(self.org_chain(e)),
            "Practitioner" => Some(Organisation {
                professional: Some(self.practitioner(e.resource, &e.path)),
                ..Organisation::default()
            }),
            "PractitionerRole" => {
                let r = e.resource;
                let rp = e.path.clone();
                let mut prof = self
                    .resolve_at(r, "practitioner", &rp)
                    .map(|p| self.practitioner(p.resource, &p.path))
                    .unwrap_or_default();
                prof.role_to_patient = self
                    .arr(r, "code", &rp)
                    .first()
                    .and_then(|c| self.cc(c, &format!("{rp}.code[0]")));
                let mut org = match self.resolve_at(r, "organization", &rp) {
                    Some(o) if rtype(o.resource) == "Organization" => self.org_chain(&o),
                    Some(o) => {
                        self.unexpected(&o, &format!("{rp}.organization"), "an Organization");
                        Organisation::default()
                    }
                    None => Organisation::default(),
                };
                deepest(&mut org).professional = Some(prof);
                Some(org)
            }
            _ => {
                self.unexpected(e, path, "an Organization, Practitioner or PractitionerRole");
                None
            }
        }
    }

    /// An Organization and the organisations it is `partOf`, as one chain (top first).
    fn org_chain(&mut self, e: &Entry<'a>) -> Organisation {
        let mut levels = vec![self.organization(e.resource, &e.path)];
        let mut cur = e.clone();
        while levels.len() < MAX_CHAIN {
            let Some(parent) = self.resolve_at(cur.resource, "partOf", &cur.path.clone()) else {
                break;
            };
            if rtype(parent.resource) != "Organization" {
                break;
            }
            levels.push(self.organization(parent.resource, &parent.path));
            cur = parent;
        }
        let mut it = levels.into_iter();
        let mut chain = it.next().unwrap_or_default();
        for mut parent in it {
            parent.unit = Some(Box::new(chain));
            chain = parent;
        }
        chain
    }

    fn organization(&mut self, r: &Value, path: &str) -> Organisation {
        Organisation {
            name: self.st(r, "name", path),
            kind: self
                .arr(r, "type", path)
                .first()
                .and_then(|c| self.cc(c, &format!("{path}.type[0]"))),
            idents: self.idents(r, path),
            address: self.first_address(r, path),
            telecom: self.telecoms(r, path),
            unit: None,
            professional: None,
        }
    }

    fn practitioner(&mut self, r: &Value, path: &str) -> Professional {
        let name = self.name(r, path);
        Professional {
            profession: self
                .arr(r, "qualification", path)
                .first()
                .and_then(|q| self.cc_at(q, "code", &format!("{path}.qualification[0]"))),
            role_to_patient: None,
            family_name: name.family,
            given_name: name.given,
            middle_name: name.middle,
            full_name: name.text,
            idents: self.idents(r, path),
            telecom: self.telecoms(r, path),
        }
    }

    fn idents(&mut self, r: &Value, path: &str) -> Vec<Ident> {
        let mut out = Vec::new();
        for (n, i) in self.arr(r, "identifier", path).iter().enumerate() {
            let ip = format!("{path}.identifier[{n}]");
            let Some(id) = self.st(i, "value", &ip) else {
                continue;
            };
            let typ = i
                .get("type")
                .and_then(|t| t.get("coding"))
                .and_then(Value::as_array)
                .and_then(|c| c.first());
            let type_code = typ.and_then(|t| t.get("code")).and_then(Value::as_str);
            let type_system = typ.and_then(|t| t.get("system")).and_then(Value::as_str);
            let system = self.st(i, "system", &ip);
            let kind = type_code
                .map(str::to_string)
                .or_else(|| {
                    system
                        .as_deref()
                        .and_then(kind_of_id_system)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            out.push(Ident {
                id,
                kind,
                system: type_system.map(model_system),
            });
        }
        out
    }

    fn patient(&mut self, e: &Entry<'_>) -> Patient {
        let (r, path) = (e.resource, e.path.as_str());
        let name = self.name(r, path);
        let idents = self
            .idents(r, path)
            .into_iter()
            .map(|i| PatientIdent {
                id: i.id,
                kind: i.kind,
            })
            .collect();
        let sex = self.st(r, "gender", path).and_then(|g| sex_of_gender(&g));
        let nationality = self
            .extension(r, ext::PATIENT_NATIONALITY, path)
            .and_then(|n| {
                n.get("extension")?
                    .as_array()?
                    .iter()
                    .find(|x| x.get("url").and_then(Value::as_str) == Some("code"))
            })
            .and_then(|c| self.ext_code(c, &format!("{path}.extension")));
        let mut needs = Vec::new();
        for (n, c) in self.arr(r, "communication", path).iter().enumerate() {
            needs.push(self.communication_need(r, c, &format!("{path}.communication[{n}]")));
        }
        let mut related = Vec::new();
        for x in self.pointing_at("RelatedPerson", "patient", path) {
            related.push(self.related_person(x.resource, &x.path));
        }
        let mut care = Vec::new();
        for x in self.pointing_at("CareTeam", "subject", path) {
            if x.resource.get("encounter").is_none() {
                care.push(self.care_provider(&x));
            }
        }
        Patient {
            family_name: name.family,
            middle_name: name.middle,
            given_name: name.given,
            full_name: name.text,
            birth_date: self.st(r, "birthDate", path),
            sex,
            idents,
            address: self.first_address(r, path),
            telecom: self.telecoms(r, path),
            deceased_date: self.st(r, "deceasedDateTime", path),
            nationality,
            marital_status: self.cc_at(r, "maritalStatus", path),
            related_persons: related,
            care_providers: care,
            communication_needs: needs,
        }
    }

    /// `Patient.communication` (with kadgate's `communication-need` extension) → a need; the
    /// person who needs it is a RelatedPerson contained in the patient.
    fn communication_need(&mut self, patient: &Value, c: &Value, p: &str) -> CommunicationNeed {
        let mut need = CommunicationNeed {
            language: self.cc_at(c, "language", p),
            ..CommunicationNeed::default()
        };
        let Some(x) = self.extension(c, ext::KG_COMMUNICATION_NEED, p) else {
            return need;
        };
        let xp = format!("{p}.extension");
        let sub = |name: &str| {
            x.get("extension").and_then(Value::as_array).and_then(|a| {
                a.iter()
                    .find(|e| e.get("url").and_then(Value::as_str) == Some(name))
            })
        };
        let boolean = |name: &str| sub(name).and_then(|e| e.get("valueBoolean")?.as_bool());
        need.hearing_impaired = boolean("hearingImpaired");
        need.sight_impaired = boolean("sightImpaired");
        need.note = sub("note")
            .and_then(|e| e.get("valueString")?.as_str())
            .map(str::to_string);
        let local = sub("person")
            .and_then(|e| e.get("valueReference")?.get("reference")?.as_str())
            .and_then(|r| r.strip_prefix('#'));
        if let Some(id) = local {
            let found = patient
                .get("contained")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter().find(|r| {
                        rtype(r) == "RelatedPerson"
                            && r.get("id").and_then(Value::as_str) == Some(id)
                    })
                });
            match found {
                Some(r) => need.person = Some(self.related_person(r, &format!("{xp}.person"))),
                None => self.note(
                    codes::FHIR_REFERENCE_UNRESOLVED,
                    Severity::Warning,
                    &xp,
                    "the person does not resolve to a contained resource",
                ),
            }
        }
        need
    }

    /// The subject reference → patient (`None` when absent or not a Patient).
    fn subject(&mut self, r: &Value, path: &str) -> Option<Patient> {
        let e = self.resolve_at(r, "subject", path)?;
        if rtype(e.resource) != "Patient" {
            self.unexpected(&e, &format!("{path}.subject"), "a Patient");
            return None;
        }
        Some(self.patient(&e))
    }

    fn name(&mut self, r: &Value, path: &str) -> Name {
        let Some(n) = self.arr(r, "name", path).first() else {
            return Name::default();
        };
        let np = format!("{path}.name[0]");
        let given: Vec<String> = self
            .arr(n, "given", &np)
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect();
        Name {
            family: self.st(n, "family", &np),
            given: (!given.is_empty()).then(|| given.join(" ")),
            middle: self
                .extension(n, ext::NB_MIDDLENAME, &np)
                .and_then(|e| e.get("valueString"))
                .and_then(Value::as_str)
                .map(str::to_string),
            text: self.st(n, "text", &np),
        }
    }

    fn address(&mut self, a: &Value, path: &str) -> Option<Address> {
        if !a.is_object() {
            self.note(
                codes::FHIR_VALUE_INVALID,
                Severity::Warning,
                path,
                "expected an Address",
            );
            return None;
        }
        let lines: Vec<&str> = self
            .arr(a, "line", path)
            .iter()
            .filter_map(Value::as_str)
            .filter(|l| !l.trim().is_empty())
            .collect();
        let official = self
            .extension(a, ext::NB_ADDRESS_OFFICIAL, path)
            .and_then(|e| e.get("valueBoolean"))
            .and_then(Value::as_bool)
            == Some(true);
        let use_ = self.st(a, "use", path);
        let type_ = self.st(a, "type", path);
        let municipality = a.get("_district").and_then(|d| {
            let e = d
                .get("extension")?
                .as_array()?
                .iter()
                .find(|e| e.get("url").and_then(Value::as_str) == Some(ext::NB_MUNICIPALITY))?;
            let c = e.get("valueCoding")?;
            let system = c.get("system").and_then(Value::as_str).unwrap_or("");
            let known = system == sys::MUNICIPALITY || sys::MUNICIPALITY_ALT.contains(&system);
            known
                .then(|| c.get("code").and_then(Value::as_str))
                .flatten()
                .map(str::to_string)
        });
        let addr = Address {
            kind: address_kind(use_.as_deref(), type_.as_deref(), official).map(str::to_string),
            street: (!lines.is_empty()).then(|| lines.join(", ")),
            postal_code: self.st(a, "postalCode", path),
            city: self.st(a, "city", path),
            municipality,
            country: self.st(a, "country", path),
        };
        (addr != Address::default()).then_some(addr)
    }

    fn first_address(&mut self, r: &Value, path: &str) -> Option<Address> {
        let a = self.arr(r, "address", path).first()?;
        self.address(a, &format!("{path}.address[0]"))
    }

    fn telecoms(&mut self, r: &Value, path: &str) -> Vec<Telecom> {
        let mut out = Vec::new();
        for (n, t) in self.arr(r, "telecom", path).iter().enumerate() {
            let tp = format!("{path}.telecom[{n}]");
            let Some(value) = self.st(t, "value", &tp) else {
                continue;
            };
            let system = self.st(t, "system", &tp);
            let prefix = TELECOM_SCHEME
                .iter()
                .find(|(_, s)| Some(*s) == system.as_deref())
                .map(|(p, _)| *p)
                .unwrap_or("");
            let use_ = self.st(t, "use", &tp);
            let kind = TELECOM_USE
                .iter()
                .find(|(_, u)| Some(*u) == use_.as_deref())
                .map(|(k, _)| (*k).to_string());
            out.push(Telecom {
                kind,
                value: format!("{prefix}{value}"),
            });
        }
        out
    }

    // ------------------------------------------------------------ referral

    fn referral(&mut self, sr: &'a Value, p: &str, header: &Header) -> Referral {
        let mut r = Referral {
            issue_date: self.st(sr, "authoredOn", p),
            description: self.cc_at(sr, "code", p),
            patient: self.subject(sr, p),
            requested_date: self.st(sr, "occurrenceDateTime", p),
            requested_specialty: self.cc_at(sr, "performerType", p),
            payment_category: self.code_ext(sr, ext::KG_PAYMENT_CATEGORY, p),
            basis_for_health_services: self.code_ext(sr, ext::KG_BASIS_FOR_HEALTH_SERVICES, p),
            purpose: self.code_ext(sr, ext::KG_SERVICE_PURPOSE, p),
            received_date: self.string_ext(sr, ext::KG_RECEIVED_DATE, p),
            assessment: self
                .extension(sr, ext::KG_REFERRAL_ASSESSMENT, p)
                .map(|a| self.assessment(a, &format!("{p}.extension"))),
            ..Referral::default()
        };
        for (n, i) in self.arr(sr, "identifier", p).iter().enumerate() {
            let ip = format!("{p}.identifier[{n}]");
            let doc = i.get("system").and_then(Value::as_str) == Some(mapping::DOCUMENT_ID);
            let v = self.st(i, "value", &ip);
            if doc {
                r.document_id = r.document_id.or(v);
            } else {
                r.id = r.id.or(v);
            }
        }
        for (n, d) in self.arr(sr, "orderDetail", p).iter().enumerate() {
            let dp = format!("{p}.orderDetail[{n}]");
            let c = self.cc(d, &dp);
            let svc = c
                .filter(|c| c.system.as_deref() == Some(mapping::oid::SERVICE_TYPE_7309))
                .and_then(|c| ServiceType::from_kith(&c.code));
            r.requested_service_type = r.requested_service_type.or(svc);
        }
        r.service_type = self.service_type(sr, p).or_else(|| {
            (sr.get("status").and_then(Value::as_str) == Some("revoked"))
                .then_some(ServiceType::Cancellation)
        });
        r.priority = self.priority(sr, p);
        r.requester = self
            .resolve_at(sr, "requester", p)
            .and_then(|e| self.party(&e, &format!("{p}.requester")));
        r.service_provider = self
            .arr(sr, "performer", p)
            .first()
            .and_then(|x| self.resolve(x, &format!("{p}.performer[0]")))
            .and_then(|e| self.party(&e, &format!("{p}.performer[0]")));
        // Diagnoses: reasonCode, then Conditions from reasonReference and supportingInfo; a Condition
        // with the same code as a reasonCode replaces it (it says more: clarified or not).
        self.reason_codes(sr, p, &mut r.diagnoses);
        let mut refs: Vec<(String, &Value)> = Vec::new();
        for key in ["reasonReference", "supportingInfo"] {
            for (n, x) in self.arr(sr, key, p).iter().enumerate() {
                refs.push((format!("{p}.{key}[{n}]"), x));
            }
        }
        for (rp, x) in refs {
            let Some(e) = self.resolve(x, &rp) else {
                continue;
            };
            let (res, ep) = (e.resource, e.path.clone());
            match rtype(res) {
                "Condition" => {
                    if let Some(d) = self.condition(res, &ep) {
                        push_diagnosis(&mut r.diagnoses, d);
                    }
                }
                "Observation" => r.observations.extend(self.observation(res, &ep)),
                "Flag" => r.flags.extend(self.cc_at(res, "code", &ep)),
                "MedicationStatement" => r.medications.push(self.medication(res, &ep)),
                "CarePlan" if res.get("category").is_some() => {
                    let cat = self.arr(res, "category", &ep).first();
                    let code = cat
                        .and_then(|c| self.cc(c, &format!("{ep}.category[0]")))
                        .unwrap_or_default();
                    let note = self
                        .arr(res, "note", &ep)
                        .first()
                        .and_then(|x| self.st(x, "text", &format!("{ep}.note[0]")));
                    r.care_pathways.push(CarePathway { code, note });
                }
                "CarePlan" => {
                    if let Some(d) = self.st(res, "description", &ep) {
                        r.plan = Some(d);
                    }
                }
                "Consent" => r.consents.push(self.consent(res, &ep)),
                "DocumentReference" => r.attachments.push(self.document_reference(res, &ep)),
                _ => self.unexpected(
                    &e,
                    &rp,
                    "a Condition, Observation, Flag, MedicationStatement, CarePlan, Consent or DocumentReference",
                ),
            }
        }
        r.texts = self.notes(sr, p);
        if r.patient.is_none() {
            r.patient = header.patient.clone();
        }
        r
    }

    /// `reasonCode[]` → diagnoses (unclarified unless a Condition says more).
    fn reason_codes(&mut self, sr: &Value, p: &str, out: &mut Vec<Diagnosis>) {
        for (n, c) in self.arr(sr, "reasonCode", p).iter().enumerate() {
            if let Some(code) = self.cc(c, &format!("{p}.reasonCode[{n}]")) {
                let d = Diagnosis {
                    code,
                    ..Diagnosis::default()
                };
                push_diagnosis(out, d);
            }
        }
    }

    /// `note[]` Annotations → texts.
    fn notes(&mut self, v: &Value, p: &str) -> Vec<TextSection> {
        let mut out = Vec::new();
        for (n, a) in self.arr(v, "note", p).iter().enumerate() {
            let ap = format!("{p}.note[{n}]");
            if let Some(t) = self.st(a, "text", &ap) {
                out.push(self.text(a, &ap, t, None));
            }
        }
        out
    }

    /// The `referral-assessment` extension.
    fn assessment(&mut self, a: &Value, p: &str) -> ReferralAssessment {
        let mut out = ReferralAssessment::default();
        let parts: Vec<&Value> = self.arr(a, "extension", p).iter().collect();
        for x in parts {
            let url = x.get("url").and_then(Value::as_str).unwrap_or("");
            match url {
                "date" => {
                    let mut d = DatedCode::default();
                    for y in self.arr(x, "extension", p) {
                        match y.get("url").and_then(Value::as_str) {
                            Some("kind") => d.kind = self.ext_code(y, p).unwrap_or_default(),
                            Some("date") => {
                                d.date = y
                                    .get("valueDateTime")
                                    .or_else(|| y.get("valueDate"))
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string()
                            }
                            _ => {}
                        }
                    }
                    out.dates.push(d);
                }
                "freeChoice" => out.free_choice = x.get("valueBoolean").and_then(Value::as_bool),
                "entitled" => out.entitled = x.get("valueBoolean").and_then(Value::as_bool),
                "waitingEnd" => out.waiting_end = self.ext_code(x, p),
                "outcome" => out.outcome = self.ext_code(x, p),
                "pathwayId" => {
                    out.pathway_id = x
                        .get("valueString")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                }
                _ => {}
            }
        }
        out
    }

    /// A Consent: the exact status from `consent-status`, else `active` → 3107 `2`, `rejected` →
    /// `3` (other states say nothing a KITH code could).
    fn consent(&mut self, c: &Value, p: &str) -> Consent {
        let exact =
            c.get("_status")
                .and_then(|x| {
                    x.get("extension")?.as_array()?.iter().find(|e| {
                        e.get("url").and_then(Value::as_str) == Some(ext::KG_CONSENT_STATUS)
                    })
                })
                .cloned();
        let status = match exact {
            Some(e) => self.ext_code(&e, &format!("{p}._status.extension")),
            None => match self.st(c, "status", p).as_deref() {
                Some("active") => Some(Code::new(
                    "2",
                    Some(mapping::oid::CONSENT_STATUS_3107),
                    Some("Pasient samtykker"),
                )),
                Some("rejected") => Some(Code::new(
                    "3",
                    Some(mapping::oid::CONSENT_STATUS_3107),
                    Some("Pasient nekter samtykke"),
                )),
                _ => None,
            },
        };
        Consent {
            status,
            date: self.st(c, "dateTime", p),
            note: self.string_ext(c, ext::KG_NOTE, p),
            given_by: self
                .arr(c, "performer", p)
                .first()
                .and_then(|x| self.st(x, "display", &format!("{p}.performer[0]"))),
        }
    }

    /// A request's hastegrad: the exact code from `_priority`'s `hastegrad` extension, else read
    /// from `priority`.
    fn priority(&mut self, sr: &Value, p: &str) -> Option<Code> {
        let exact = sr
            .get("_priority")
            .and_then(|x| {
                x.get("extension")?
                    .as_array()?
                    .iter()
                    .find(|e| e.get("url").and_then(Value::as_str) == Some(ext::KG_HASTEGRAD))
            })
            .and_then(|e| e.get("valueCoding"))
            .cloned();
        match (exact, self.st(sr, "priority", p)) {
            (Some(c), _) => self.coding(&c, &format!("{p}._priority.extension")),
            (None, Some(pr)) => {
                let h = mapping::hastegrad_of(&pr);
                if h.is_none() {
                    self.note(
                        codes::FHIR_VALUE_INVALID,
                        Severity::Warning,
                        &format!("{p}.priority"),
                        "not a request-priority code",
                    );
                }
                h
            }
            (None, None) => None,
        }
    }

    fn service_type(&mut self, r: &Value, p: &str) -> Option<ServiceType> {
        self.extension(r, ext::KG_SERVICE_TYPE, p)
            .and_then(|e| e.get("valueCoding"))
            .and_then(|c| c.get("code"))
            .and_then(Value::as_str)
            .and_then(ServiceType::from_kith)
    }

    fn condition(&mut self, c: &Value, p: &str) -> Option<Diagnosis> {
        let code = self.cc_at(c, "code", p)?;
        let mut modifiers = Vec::new();
        for m in self.extensions(c, ext::KG_CODE_MODIFIER, p) {
            let mut cm = CodeModifier::default();
            for x in self.arr(m, "extension", p) {
                match x.get("url").and_then(Value::as_str) {
                    Some("name") => cm.name = self.ext_code(x, p).unwrap_or_default(),
                    Some("value") => cm.values.extend(self.ext_code(x, p)),
                    _ => {}
                }
            }
            modifiers.push(cm);
        }
        let ver = c
            .get("verificationStatus")
            .and_then(|v| v.get("coding"))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|x| x.get("code"))
            .and_then(Value::as_str);
        let confirmed = match ver {
            Some("confirmed") => Some(true),
            Some("provisional" | "differential" | "unconfirmed") => Some(false),
            _ => None,
        };
        Some(Diagnosis {
            code,
            confirmed,
            rank: None,
            modifiers,
        })
    }

    /// An Observation; a panel's components become observations of their own (same time).
    fn observation(&mut self, o: &Value, p: &str) -> Vec<Observation> {
        let time = self.st(o, "effectiveDateTime", p).or_else(|| {
            o.get("effectivePeriod")
                .and_then(|x| x.get("start"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let mut out = Vec::new();
        let code = self.cc_at(o, "code", p).unwrap_or_default();
        // The category kadgate adds to the LOINC vital signs is not the sender's category.
        let mut category = None;
        for (n, c) in self.arr(o, "category", p).iter().enumerate() {
            let cp = format!("{p}.category[{n}]");
            let Some(c) = self.cc(c, &cp) else { continue };
            let added = c.system.as_deref() == Some(sys::OBSERVATION_CATEGORY)
                && c.code == "vital-signs"
                && super::encode::is_vital_sign(&code);
            if !added && category.is_none() {
                category = Some(c);
            }
        }
        let interpretation = self
            .arr(o, "interpretation", p)
            .first()
            .and_then(|c| self.cc(c, &format!("{p}.interpretation[0]")));
        let comment = self
            .arr(o, "note", p)
            .first()
            .and_then(|x| self.st(x, "text", &format!("{p}.note[0]")));
        let has_value = o.get("valueQuantity").is_some() || o.get("valueCodeableConcept").is_some();
        let components = self.arr(o, "component", p);
        if has_value || components.is_empty() {
            let mut ob = Observation {
                code,
                time: time.clone(),
                category: category.clone(),
                interpretation,
                comment,
                ..Observation::default()
            };
            self.value(o, p, &mut ob);
            out.push(ob);
        }
        for (n, c) in components.iter().enumerate() {
            let cp = format!("{p}.component[{n}]");
            let mut ob = Observation {
                code: self.cc_at(c, "code", &cp).unwrap_or_default(),
                time: time.clone(),
                category: category.clone(),
                interpretation: self
                    .arr(c, "interpretation", &cp)
                    .first()
                    .and_then(|x| self.cc(x, &format!("{cp}.interpretation[0]"))),
                ..Observation::default()
            };
            self.value(c, &cp, &mut ob);
            out.push(ob);
        }
        out
    }

    fn value(&mut self, o: &Value, p: &str, ob: &mut Observation) {
        if let Some(q) = self.ob(o, "valueQuantity", p) {
            let qp = format!("{p}.valueQuantity");
            ob.value = match q.get("value") {
                None => None,
                Some(v) => {
                    let f = v.as_f64();
                    if f.is_none() {
                        self.note(
                            codes::FHIR_VALUE_INVALID,
                            Severity::Warning,
                            &format!("{qp}.value"),
                            "expected a number",
                        );
                    }
                    f
                }
            };
            ob.unit = self.st(q, "unit", &qp).or_else(|| self.st(q, "code", &qp));
        } else if o.get("valueCodeableConcept").is_some() {
            ob.value_code = self.cc_at(o, "valueCodeableConcept", p);
        }
    }

    fn medication(&mut self, m: &Value, p: &str) -> Medication {
        let mut med = Medication {
            drug: self.cc_at(m, "medicationCodeableConcept", p),
            category: self.cc_at(m, "category", p),
            comment: self
                .arr(m, "note", p)
                .first()
                .and_then(|x| self.st(x, "text", &format!("{p}.note[0]"))),
            ..Medication::default()
        };
        (med.start, med.end) = self.period(m, "effectivePeriod", p);
        // A dose form needs a Medication: kadgate writes a contained one.
        let local = m
            .get("medicationReference")
            .and_then(|r| r.get("reference"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'));
        if let Some(id) = local {
            let found = m.get("contained").and_then(Value::as_array).and_then(|a| {
                a.iter().find(|r| {
                    rtype(r) == "Medication" && r.get("id").and_then(Value::as_str) == Some(id)
                })
            });
            if let Some(x) = found {
                let xp = format!("{p}.contained");
                med.drug = self.cc_at(x, "code", &xp);
                med.form = self.cc_at(x, "form", &xp);
            }
        }
        if let Some(e) = self.extension(m, ext::KG_MEDICATION_STATUS, p) {
            if let Some(v) = e.get("valueString").and_then(Value::as_str) {
                med.status = Some(v.to_string());
            } else if let Some(c) = e.get("valueCoding") {
                let c = self.coding(c, &format!("{p}.extension"));
                med.status = c.as_ref().map(|c| c.code.clone()).filter(|c| !c.is_empty());
                med.status_text = c.and_then(|c| c.display);
            }
        }
        for (url, slot) in [
            (ext::KG_QUANTITY_SUPPLIED, &mut med.quantity_supplied),
            (ext::KG_INTENDED_DURATION, &mut med.intended_duration),
        ] {
            if let Some(q) = self
                .extension(m, url, p)
                .and_then(|e| e.get("valueQuantity"))
            {
                *slot = self.quantity(q, &format!("{p}.extension"));
            }
        }
        if let Some(d) = self.arr(m, "dosage", p).first() {
            let dp = format!("{p}.dosage[0]");
            med.dosage_text = self.st(d, "text", &dp);
            med.route = self.cc_at(d, "route", &dp);
            if let Some(t) = self.ob(d, "timing", &dp) {
                let tp = format!("{dp}.timing");
                med.dosage_code = self.cc_at(t, "code", &tp);
                if let Some(b) = t.get("repeat").and_then(|r| r.get("boundsDuration")) {
                    med.intended_duration =
                        self.quantity(b, &format!("{tp}.repeat.boundsDuration"));
                }
            }
            if let Some(q) = self
                .arr(d, "doseAndRate", &dp)
                .first()
                .and_then(|x| x.get("doseQuantity"))
            {
                med.unit_dose = self.quantity(q, &format!("{dp}.doseAndRate[0].doseQuantity"));
            }
        }
        med
    }

    // ------------------------------------------------------------ epicrisis

    fn epicrisis(&mut self, doc: &[Entry<'a>], base: &str) -> Option<Epicrisis> {
        let Some(first) = doc.first().filter(|e| rtype(e.resource) == "Composition") else {
            self.note(
                codes::FHIR_COMPOSITION_MISSING,
                Severity::Error,
                &format!("{base}.entry[0]"),
                "a document Bundle must start with a Composition",
            );
            return None;
        };
        let (c, p) = (first.resource, first.path.clone());
        let mut e = Epicrisis {
            id: self
                .ob(c, "identifier", &p)
                .and_then(|i| self.st(i, "value", &format!("{p}.identifier"))),
            issue_date: self.st(c, "date", &p),
            patient: self.subject(c, &p),
            ..Epicrisis::default()
        };
        // The exact 7306 status when the `report-status` extension gives it, else the one the
        // FHIR status implies; the service type from its extension, else from the FHIR status.
        let status = self.st(c, "status", &p);
        e.status = self
            .ob(c, "_status", &p)
            .and_then(|x| self.code_ext(x, ext::KG_REPORT_STATUS, &format!("{p}._status")))
            .map(|c| c.code)
            .filter(|c| !c.is_empty())
            .or_else(|| {
                status
                    .as_deref()
                    .and_then(mapping::epicrisis_status)
                    .map(str::to_string)
            });
        e.service_type = self.service_type(c, &p).or_else(|| {
            status
                .as_deref()
                .and_then(|s| mapping::epicrisis_service_type(s, e.status.as_deref()))
        });
        // Author: a PractitionerRole or Organization names the whole party; a bare Practitioner
        // belongs to the custodian.
        let author = self
            .arr(c, "author", &p)
            .first()
            .and_then(|a| self.resolve(a, &format!("{p}.author[0]")));
        e.service_provider = match author {
            Some(a) if rtype(a.resource) == "Practitioner" => {
                let prof = self.practitioner(a.resource, &a.path);
                let mut org = self
                    .resolve_at(c, "custodian", &p)
                    .filter(|o| rtype(o.resource) == "Organization")
                    .map(|o| self.org_chain(&o))
                    .unwrap_or_default();
                deepest(&mut org).professional = Some(prof);
                Some(org)
            }
            Some(a) => self.party(&a, &format!("{p}.author[0]")),
            None => self
                .resolve_at(c, "custodian", &p)
                .and_then(|o| self.party(&o, &format!("{p}.custodian"))),
        };
        e.title = self.st(c, "title", &p);
        e.approved_date = self
            .arr(c, "attester", &p)
            .first()
            .and_then(|a| self.st(a, "time", &format!("{p}.attester[0]")));
        let mut ranks: Vec<(String, DiagnosisRank)> = Vec::new();
        if let Some(enc) = self.resolve_at(c, "encounter", &p) {
            let (r, ep) = (enc.resource, enc.path.clone());
            (e.admitted, e.discharged) = self.period(r, "period", &ep);
            e.admission_category = self
                .arr(r, "type", &ep)
                .first()
                .and_then(|t| self.cc(t, &format!("{ep}.type[0]")));
            e.priority = self.cc_at(r, "priority", &ep);
            if let Some(h) = self.ob(r, "hospitalization", &ep) {
                e.discharge_outcome =
                    self.cc_at(h, "dischargeDisposition", &format!("{ep}.hospitalization"));
            }
            for (n, d) in self.arr(r, "diagnosis", &ep).iter().enumerate() {
                let dp = format!("{ep}.diagnosis[{n}]");
                let rank = match d.get("rank").and_then(Value::as_u64) {
                    Some(1) => DiagnosisRank::Main,
                    Some(_) => DiagnosisRank::Secondary,
                    None => continue,
                };
                if let Some(x) = self.resolve_at(d, "condition", &dp) {
                    ranks.push((x.path, rank));
                }
            }
            for x in self.pointing_at("CareTeam", "encounter", &ep) {
                e.care_providers.push(self.care_provider(&x));
            }
            let (referral_id, sr) = self.based_on(r, &ep);
            e.referral_id = referral_id;
            if let Some(sr) = sr {
                let srr = sr.resource;
                e.requester = self
                    .resolve_at(srr, "requester", &sr.path)
                    .and_then(|x| self.party(&x, &format!("{}.requester", sr.path)));
                e.referral = self.answered_referral(srr, &sr.path, e.referral_id.clone());
            }
        }
        self.sections(c, &p, &mut e, 0, &ranks);
        Some(e)
    }

    /// The referral an Encounter's `basedOn[0]` names: its id (a logical reference's identifier;
    /// else the ServiceRequest's first identifier, or its id when it has no identifier element at
    /// all) and the ServiceRequest entry when the reference resolves.
    fn based_on(&mut self, enc: &Value, p: &str) -> (Option<String>, Option<Entry<'a>>) {
        let Some(b) = self.arr(enc, "basedOn", p).first() else {
            return (None, None);
        };
        if let Some(v) = b
            .get("identifier")
            .and_then(|i| i.get("value"))
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
        {
            return (Some(v.to_string()), None);
        }
        let Some(sr) = self.resolve(b, &format!("{p}.basedOn[0]")) else {
            return (None, None);
        };
        let srr = sr.resource;
        let id = match srr.get("identifier") {
            Some(_) => self
                .arr(srr, "identifier", &sr.path)
                .first()
                .and_then(|i| i.get("value"))
                .and_then(Value::as_str),
            None => srr.get("id").and_then(Value::as_str),
        }
        .map(str::to_string);
        (id, Some(sr))
    }

    // ------------------------------------------------------------ stay event

    /// An Encounter in the focus of a message: what happened to the stay (see
    /// [`mapping::care_event_kind`]); `None` (noted) when its status reports no stay event.
    fn care_event(&mut self, enc: &Value, p: &str) -> Option<CareEvent> {
        let status = self.st(enc, "status", p);
        let (start, end) = self.period(enc, "period", p);
        // A data-absent end still marks an ended stay (a cancelled discharge whose time is unknown).
        let has_end = end.is_some() || enc.get("period").is_some_and(|x| x.get("_end").is_some());
        let deceased = match self.ob(enc, "hospitalization", p) {
            Some(h) => self
                .ob(h, "dischargeDisposition", &format!("{p}.hospitalization"))
                .map(|d| {
                    self.arr(
                        d,
                        "coding",
                        &format!("{p}.hospitalization.dischargeDisposition"),
                    )
                })
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.get("system").and_then(Value::as_str) == Some(sys::DISCHARGE_DISPOSITION)
                            && c.get("code").and_then(Value::as_str)
                                == Some(mapping::DISPOSITION_DECEASED.0)
                    })
                }),
            None => false,
        };
        let Some(kind) = status
            .as_deref()
            .and_then(|s| mapping::care_event_kind(s, has_end, deceased))
        else {
            self.note(
                codes::FHIR_FOCUS_UNSUPPORTED,
                Severity::Warning,
                &format!("{p}.status"),
                "an Encounter focus reports a stay event only with status in-progress, finished or entered-in-error",
            );
            return None;
        };
        let service_type = self.service_type(enc, p).or_else(|| {
            (status.as_deref() == Some("entered-in-error")).then_some(ServiceType::Cancellation)
        });
        let at = match kind {
            CareEventKind::Admitted => start,
            _ => end,
        };
        let stay_id = self
            .arr(enc, "identifier", p)
            .first()
            .and_then(|i| self.st(i, "value", &format!("{p}.identifier[0]")));
        let (referral_id, _) = self.based_on(enc, p);
        Some(CareEvent {
            kind,
            at,
            service_type,
            referral_id,
            stay_id,
            home_nursing: self.bool_ext(enc, ext::KG_HOME_NURSING, p),
        })
    }

    /// What an epicrisis repeats of the referral it answers (`None` when its ServiceRequest says
    /// no more than who asked and under which id).
    fn answered_referral(
        &mut self,
        sr: &Value,
        p: &str,
        id: Option<String>,
    ) -> Option<Box<Referral>> {
        let detailed = [
            "authoredOn",
            "code",
            "note",
            "reasonReference",
            "reasonCode",
        ]
        .iter()
        .any(|k| sr.get(*k).is_some())
            || sr.get("extension").is_some();
        if !detailed {
            return None;
        }
        let mut r = Referral {
            id,
            service_type: self.service_type(sr, p),
            issue_date: self.st(sr, "authoredOn", p),
            description: self.cc_at(sr, "code", p),
            received_date: self.string_ext(sr, ext::KG_RECEIVED_DATE, p),
            texts: self.notes(sr, p),
            ..Referral::default()
        };
        self.reason_codes(sr, p, &mut r.diagnoses);
        for (n, x) in self.arr(sr, "reasonReference", p).iter().enumerate() {
            let xp = format!("{p}.reasonReference[{n}]");
            let Some(c) = self.resolve(x, &xp) else {
                continue;
            };
            if rtype(c.resource) == "Condition" {
                if let Some(d) = self.condition(c.resource, &c.path) {
                    push_diagnosis(&mut r.diagnoses, d);
                }
            }
        }
        Some(Box::new(r))
    }

    fn sections(
        &mut self,
        v: &Value,
        p: &str,
        e: &mut Epicrisis,
        depth: usize,
        ranks: &[(String, DiagnosisRank)],
    ) {
        for (n, s) in self.arr(v, "section", p).iter().enumerate() {
            let sp = format!("{p}.section[{n}]");
            let entries = self.arr(s, "entry", &sp);
            // The narrative is read whatever the entries are (kadgate writes none for its own
            // diagnosis and medication sections); it is the readable form of entries not read.
            {
                let heading = self
                    .cc_at(s, "code", &sp)
                    .map(|mut c| {
                        if c.display.is_none() {
                            c.display = self.st(s, "title", &sp);
                        }
                        c
                    })
                    .or_else(|| {
                        self.st(s, "title", &sp).map(|t| Code {
                            code: String::new(),
                            system: None,
                            display: Some(t),
                        })
                    });
                let div = s
                    .get("text")
                    .and_then(|t| t.get("div"))
                    .and_then(Value::as_str);
                if let Some(text) = div.and_then(|d| self.xhtml_text(d, &format!("{sp}.text.div")))
                {
                    let t = self.text(s, &sp, text, heading.clone());
                    // No heading in the section: not one from the text-heading extension either.
                    e.texts.push(TextSection { heading, ..t });
                }
            }
            for (k, x) in entries.iter().enumerate() {
                let xp = format!("{sp}.entry[{k}]");
                let Some(r) = self.resolve(x, &xp) else {
                    continue;
                };
                let (res, rp) = (r.resource, r.path.clone());
                match rtype(res) {
                    "Condition" => {
                        if let Some(mut d) = self.condition(res, &rp) {
                            d.rank = ranks.iter().find(|(x, _)| *x == rp).map(|(_, r)| *r);
                            e.diagnoses.push(d);
                        }
                    }
                    "MedicationStatement" => e.medications.push(self.medication(res, &rp)),
                    "Observation" => e.observations.extend(self.observation(res, &rp)),
                    "DocumentReference" => e.attachments.push(self.document_reference(res, &rp)),
                    // Other entries (allergies, encounters, …) are read through the narrative.
                    _ => {}
                }
            }
            if depth < 16 {
                self.sections(s, &sp, e, depth + 1, ranks);
            }
        }
    }

    /// An XHTML narrative → plain text: one line per block, trimmed, empty lines dropped.
    fn xhtml_text(&mut self, div: &str, path: &str) -> Option<String> {
        let limits = crate::xml::Limits {
            max_bytes: 4 * 1024 * 1024,
            max_depth: 32,
            max_elements: 50_000,
        };
        match crate::xml::scan(div.as_bytes(), &limits) {
            Ok(doc) => {
                let mut raw = String::new();
                flatten(&doc.root, &mut raw);
                let lines: Vec<&str> = raw
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                (!lines.is_empty()).then(|| lines.join("\n"))
            }
            Err(_) => {
                self.note(
                    codes::FHIR_VALUE_INVALID,
                    Severity::Warning,
                    path,
                    "narrative is not well-formed XHTML; not read",
                );
                None
            }
        }
    }

    // ------------------------------------------------------------ dialog

    fn dialog(&mut self, c: &'a Value, p: &str) -> (Dialog, Option<Patient>, Option<Conversation>) {
        let mut d = Dialog {
            document_id: self
                .arr(c, "identifier", p)
                .first()
                .and_then(|i| self.st(i, "value", &format!("{p}.identifier[0]"))),
            ..Dialog::default()
        };
        if let Some(t) = self.ob(c, "topic", p) {
            let tp = format!("{p}.topic");
            d.topic = self
                .arr(t, "coding", &tp)
                .first()
                .and_then(|x| self.coding(x, &format!("{tp}.coding[0]")));
            d.topic_text = self.st(t, "text", &tp);
        }
        if let Some(t) = self.arr(c, "category", p).first() {
            let tp = format!("{p}.category[0]");
            d.case_type = self
                .arr(t, "coding", &tp)
                .first()
                .and_then(|x| self.coding(x, &format!("{tp}.coding[0]")));
            d.case_type_text = self.st(t, "text", &tp);
        }
        d.issue_date = self.st(c, "sent", p);
        d.note_date = self.string_ext(c, ext::KG_NOTE_DATE, p);
        d.responsible_role = self.code_ext(c, ext::KG_RESPONSIBLE_ROLE, p);
        for (n, x) in self.arr(c, "payload", p).iter().enumerate() {
            let xp = format!("{p}.payload[{n}]");
            if let Some(t) = self.st(x, "contentString", &xp) {
                let t = self.text(x, &xp, t, None);
                d.texts.push(t);
            } else if let Some(a) = self.ob(x, "contentAttachment", &xp) {
                let a = self.attachment(a, &format!("{xp}.contentAttachment"));
                d.attachments.push(a);
            } else if let Some(r) = self.ob(x, "contentReference", &xp) {
                // A reference to something outside the message (display only) is not read.
                if r.get("reference").is_some() {
                    let rp = format!("{xp}.contentReference");
                    match self.resolve(r, &rp) {
                        Some(e) if rtype(e.resource) == "DocumentReference" => {
                            let a = self.document_reference(e.resource, &e.path);
                            d.attachments.push(a);
                        }
                        Some(e) => self.unexpected(&e, &rp, "a DocumentReference"),
                        None => {}
                    }
                }
            }
        }
        for (n, x) in self.arr(c, "about", p).iter().enumerate() {
            let xp = format!("{p}.about[{n}]");
            if x.get("reference").is_none() {
                continue;
            }
            if let Some(e) = self.resolve(x, &xp) {
                if rtype(e.resource) == "CommunicationRequest" && d.request.is_none() {
                    d.request = Some(self.communication_request(e.resource, &e.path));
                }
            }
        }
        if let Some(r) = self
            .extension(c, ext::KG_RESPONSIBLE, p)
            .and_then(|e| e.get("valueReference"))
        {
            let rp = format!("{p}.extension");
            d.responsible = self
                .resolve(r, &rp)
                .and_then(|e| self.party(&e, &rp))
                .and_then(|o| o.professional);
        }
        let msg_ref = |key: &str| {
            c.get(key)
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|r| r.get("identifier"))
                .and_then(|i| i.get("value"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let conv = Conversation {
            ref_to_parent: msg_ref("inResponseTo"),
            ref_to_conversation: msg_ref("basedOn"),
        };
        let conv = (conv != Conversation::default()).then_some(conv);
        (d, self.subject(c, p), conv)
    }

    fn communication_request(&mut self, r: &Value, p: &str) -> DialogRequest {
        let (from_date, to_date) = self.period(r, "occurrencePeriod", p);
        let mut record_types = Vec::new();
        for e in self.extensions(r, ext::KG_RECORD_TYPE, p) {
            record_types.extend(self.ext_code(e, &format!("{p}.extension")));
        }
        DialogRequest {
            kind: self
                .arr(r, "category", p)
                .first()
                .and_then(|c| self.cc(c, &format!("{p}.category[0]"))),
            subject: self
                .arr(r, "payload", p)
                .first()
                .and_then(|x| self.st(x, "contentString", &format!("{p}.payload[0]"))),
            purpose: self
                .arr(r, "reasonCode", p)
                .first()
                .and_then(|c| self.cc(c, &format!("{p}.reasonCode[0]"))),
            priority: self.priority(r, p),
            from_date,
            to_date,
            record_types,
            coded_info: self.code_ext(r, ext::KG_CODED_INFO, p),
            document_id: self
                .arr(r, "identifier", p)
                .first()
                .and_then(|i| self.st(i, "value", &format!("{p}.identifier[0]"))),
        }
    }

    // ------------------------------------------------------------ receipt

    fn receipt(&mut self, resp: &Value, p: &str, header: &Header) -> Receipt {
        let code = self.st(resp, "code", p);
        let parsed = code.as_deref().and_then(ResponseCode::parse);
        let mut errors = Vec::new();
        let mut worst_issue = false;
        if let Some(oo) = self.resolve_at(resp, "details", p) {
            let (o, op) = (oo.resource, oo.path.clone());
            for (n, i) in self.arr(o, "issue", &op).iter().enumerate() {
                let ip = format!("{op}.issue[{n}]");
                let sev = i.get("severity").and_then(Value::as_str).unwrap_or("");
                worst_issue |= matches!(sev, "fatal" | "error" | "warning");
                let detail = self
                    .cc_at(i, "details", &ip)
                    .filter(|c| !c.code.is_empty() || c.display.is_some());
                let code = detail.or_else(|| {
                    let c = i.get("code").and_then(Value::as_str)?;
                    Some(Code {
                        code: c.to_string(),
                        system: Some(sys::ISSUE_TYPE.to_string()),
                        display: i
                            .get("diagnostics")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    })
                });
                errors.extend(code);
            }
        }
        let status = match parsed {
            Some(ResponseCode::Ok) if worst_issue => ReceiptStatus::Partial,
            Some(ResponseCode::Ok) => ReceiptStatus::Ok,
            Some(ResponseCode::FatalError) => ReceiptStatus::Rejected,
            Some(ResponseCode::TransientError) => {
                self.note(
                    codes::FHIR_RESPONSE_TRANSIENT,
                    Severity::Info,
                    &format!("{p}.code"),
                    "transient-error: read as rejected; the request may be sent again",
                );
                ReceiptStatus::Rejected
            }
            None => {
                self.note(
                    codes::FHIR_RESPONSE_CODE,
                    Severity::Warning,
                    &format!("{p}.code"),
                    "response code is not ok, transient-error or fatal-error; read as rejected",
                );
                ReceiptStatus::Rejected
            }
        };
        let issue_date = self
            .extension(resp, ext::KG_ORIGINAL_ISSUE_DATE, p)
            .and_then(|e| e.get("valueString"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Receipt {
            status,
            errors,
            original_msg_id: self.st(resp, "identifier", p),
            original_msg_type: (!header.msg_type.is_empty()).then(|| header.msg_type.clone()),
            original_issue_date: issue_date,
        }
    }
}

#[derive(Default)]
struct Name {
    family: Option<String>,
    given: Option<String>,
    middle: Option<String>,
    text: Option<String>,
}

/// Make the message's party (`header`) and the document's (`body`) one where FHIR lets them
/// differ in form only: a document party missing → the message's; a bare professional in the
/// document and an organisation without one in the message → that professional within that
/// organisation, in both places; the same organisation (same key) in both, one of them with the
/// professional → that one in both. Parties that are really different stay as they are.
fn unify(header: &mut Option<Organisation>, body: &mut Option<Organisation>) {
    let (Some(h), Some(b)) = (header.as_mut(), body.as_mut()) else {
        if body.is_none() {
            body.clone_from(header);
        }
        return;
    };
    let bare = |o: &Organisation| {
        o.name.is_none() && o.idents.is_empty() && o.unit.is_none() && o.professional.is_some()
    };
    let has_professional = |o: &Organisation| {
        let mut l = Some(o);
        while let Some(x) = l {
            if x.professional.is_some() {
                return true;
            }
            l = x.unit.as_deref();
        }
        false
    };
    if bare(b) && !bare(h) && !has_professional(h) {
        let mut merged = h.clone();
        deepest(&mut merged).professional = b.professional.clone();
        *h = merged.clone();
        *b = merged;
    } else if h.key().is_some() && h.key() == b.key() {
        match (has_professional(h), has_professional(b)) {
            (false, true) => *h = b.clone(),
            (true, false) => *b = h.clone(),
            _ => {}
        }
    }
}

/// The deepest unit of a chain.
fn deepest(org: &mut Organisation) -> &mut Organisation {
    match org.unit {
        Some(ref mut u) => deepest(u),
        None => org,
    }
}

/// Add a diagnosis; one with the same code replaces an earlier one without a clarification status.
fn push_diagnosis(v: &mut Vec<Diagnosis>, d: Diagnosis) {
    let same = |x: &Diagnosis| x.code.code == d.code.code && x.code.system == d.code.system;
    match v.iter_mut().find(|x| same(x)) {
        Some(x) => {
            if x.confirmed.is_none() {
                x.confirmed = d.confirmed;
            }
            if x.code.display.is_none() {
                x.code.display = d.code.display;
            }
        }
        None => v.push(d),
    }
}

/// `urn:oid:2.16.578.1.12.4.1.2:<HER-id>` (the shared examples' endpoint form) → a party known
/// only by its HER-id.
fn her_of_endpoint(endpoint: &str) -> Option<Organisation> {
    let id = endpoint.strip_prefix(sys::HER)?.strip_prefix(':')?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| Organisation {
        idents: vec![Ident::new(id, "HER")],
        ..Organisation::default()
    })
}

fn flatten(e: &crate::xml::Element, out: &mut String) {
    let block = matches!(
        e.name.as_str(),
        "p" | "div" | "br" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "table"
    );
    if block {
        out.push('\n');
    }
    out.push_str(&e.text);
    for c in &e.children {
        if matches!(c.name.as_str(), "td" | "th") {
            out.push(' ');
        }
        flatten(c, out);
    }
    if block {
        out.push('\n');
    }
}
