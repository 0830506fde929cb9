//! Canonical model → FHIR R4 JSON.
//!
//! - Referral → message Bundle (event `kad-henvisning`) whose focus is a ServiceRequest (its
//!   supporting Conditions, Observations, Flags, MedicationStatements, CarePlans, Consents and
//!   DocumentReferences as entries);
//! - a patient → Patient, with its relatives as RelatedPerson and its care providers as CareTeam
//!   entries pointing at it;
//! - Epicrisis → document Bundle (Composition typed 9602 `A03-2`), or with
//!   [`encode_epicrisis_message`] that document inside a message (event `epikrise`);
//! - Dialog → message Bundle whose focus is a Communication (a request as CommunicationRequest,
//!   attachments as DocumentReference);
//! - CareEvent (a stay event) → message Bundle (event `kad-opphold`) whose focus is the stay's
//!   Encounter (status, period, `basedOn` the referral, kadgate's `home-nursing` extension);
//! - Receipt → response message (`MessageHeader.response`, OperationOutcome from the error codes);
//! - [`response_message`]: the `$process-message` reply to a request header.
//!
//! Output is deterministic: every id is a UUID v5 derived from the message id (or, without one, from
//! the whole message) and the content it names, so the same model always gives the same bytes.
//! References are `urn:uuid:` fullUrls. What the FHIR form cannot hold is listed in
//! `docs/mapping/fhir.md`. This module does not validate its output (the tests run it through an
//! independent R4 validator) and never panics: a model FHIR cannot express at all is an
//! [`EncodeError`].

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::mapping::{
    self, address_use, coding_system, decimal, derive_uuid, event, ext, fhir_date, fhir_datetime,
    fhir_instant, fhir_priority, gender, is_fhir_id, issue_type_of_apprec_error, oid,
    org_id_system, person_id_system, sys, ucum_time_unit, ResponseCode, TELECOM_SCHEME,
    TELECOM_USE,
};
use crate::model::{
    Address, Attachment, Body, CareEvent, CareEventKind, CareProvider, CareProviderRole, Code,
    CommunicationNeed, Consent, Conversation, Diagnosis, DiagnosisRank, Dialog, DialogRequest,
    Epicrisis, Header, Ident, Medication, Message, Observation, Organisation, Patient,
    Professional, Quantity, Receipt, ReceiptStatus, Referral, ReferralAssessment, RelatedPerson,
    Telecom, TextSection,
};

/// Why a model could not be written as FHIR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The body kind has no FHIR form in kadgate (PLO, opaque content).
    #[error("a {0} message has no FHIR form")]
    Unsupported(&'static str),
    /// A fact FHIR requires is missing from the model.
    #[error("FHIR needs {0}, and the message has none")]
    Missing(&'static str),
}

/// Encode a message: Referral, Dialog and Receipt as message Bundles, Epicrisis as a document Bundle.
pub fn encode(msg: &Message) -> Result<Value, EncodeError> {
    match &msg.body {
        Body::Referral(r) => Ok(referral_message(msg, r)),
        Body::Epicrisis(e) => {
            let mut b = Builder::new(msg);
            let doc = document(&mut b, msg, e, true)?;
            Ok(doc)
        }
        Body::Dialog(d) => Ok(dialog_message(msg, d)),
        Body::Receipt(r) => receipt_message(msg, r),
        Body::Plo(_) => Err(EncodeError::Unsupported("PLO")),
        Body::CareEvent(e) => care_event_message(msg, e),
        Body::Opaque => Err(EncodeError::Unsupported("opaque")),
    }
}

/// An epicrisis as a message for delivery: MessageHeader (event `epikrise`) whose focus is the
/// document Bundle, with sender and receivers as entries of the message.
pub fn encode_epicrisis_message(msg: &Message) -> Result<Value, EncodeError> {
    let Body::Epicrisis(e) = &msg.body else {
        return Err(EncodeError::Missing("an epicrisis body"));
    };
    let mut doc_builder = Builder::new(msg);
    let doc = document(&mut doc_builder, msg, e, false)?;
    let mut b = Builder::new(msg);
    let focus = b.add_raw("document", doc);
    Ok(b.message(msg, event::EPICRISIS, Some(focus), None, true))
}

/// The `$process-message` reply to `request`: a new message (id `new_id`, timestamp `now`) whose
/// `response` quotes the request's `MessageHeader.id`, addressed back to the request's sender, with
/// `outcome` (an OperationOutcome) as `response.details`. Deterministic given its inputs, so a
/// duplicate request can be answered byte for byte.
pub fn response_message(
    request: &Header,
    code: ResponseCode,
    outcome: Option<Value>,
    now: &str,
    new_id: &str,
) -> Value {
    let mut b = Builder::keyed(new_id);
    let mut header = request.clone();
    header.msg_id = Some(new_id.to_string());
    header.gen_date = Some(now.to_string());
    std::mem::swap(&mut header.sender, &mut header.receiver);
    // Between the communication parties: a response names the organisations, not the persons in
    // them (the decoder puts a referral's requesting practitioner into its sender).
    for party in [&mut header.sender, &mut header.receiver] {
        if let Some(o) = party
            .as_mut()
            .filter(|o| o.name.is_some() || !o.idents.is_empty())
        {
            without_professionals(o);
        }
    }
    header.copy_receivers.clear();
    header.conversation = None;
    let details = outcome.map(|o| b.add_raw("outcome", o));
    let mut response = json!({
        "identifier": request.msg_id.as_deref().map(str::trim).filter(|i| is_fhir_id(i))
            .map(str::to_string)
            .unwrap_or_else(|| derive_uuid(&[new_id, "request-without-id"])),
        "code": code.as_str(),
    });
    if let Some(d) = details {
        response["details"] = json!({ "reference": d });
    }
    let ev = request.msg_type.clone();
    b.message(
        &Message {
            header,
            body: Body::Opaque,
        },
        &ev,
        None,
        Some(response),
        false,
    )
}

fn without_professionals(o: &mut Organisation) {
    o.professional = None;
    if let Some(u) = o.unit.as_deref_mut() {
        without_professionals(u);
    }
}

// ---------------------------------------------------------------- the bundle builder

struct Builder {
    key: String,
    entries: Vec<Value>,
    seen: HashSet<String>,
}

/// The references a party became: the one to point at, and its top organisation.
struct PartyRef {
    reference: Value,
    root_org: Option<Value>,
}

impl Builder {
    fn new(msg: &Message) -> Self {
        let key = match msg.header.msg_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => derive_uuid(&[&serde_json::to_string(msg).unwrap_or_default()]),
        };
        Self::keyed(&key)
    }

    fn keyed(key: &str) -> Self {
        Builder {
            key: key.to_string(),
            entries: Vec::new(),
            seen: HashSet::new(),
        }
    }

    fn uuid(&self, parts: &[&str]) -> String {
        let mut all = vec![self.key.as_str()];
        all.extend_from_slice(parts);
        derive_uuid(&all)
    }

    /// Add a resource named by (kind, content) once; returns its fullUrl.
    fn add(&mut self, kind: &str, content: &str, mut resource: Value) -> String {
        let id = self.uuid(&[kind, content]);
        let url = format!("urn:uuid:{id}");
        if self.seen.insert(url.clone()) {
            resource["id"] = Value::String(id);
            self.entries
                .push(json!({ "fullUrl": url, "resource": resource }));
        }
        url
    }

    /// Add a resource whose id is already set (or set it from `kind`).
    fn add_raw(&mut self, kind: &str, mut resource: Value) -> String {
        let id = match resource.get("id").and_then(Value::as_str) {
            Some(i) if is_fhir_id(i) => i.to_string(),
            _ => self.uuid(&[kind]),
        };
        resource["id"] = Value::String(id.clone());
        let url = format!("urn:uuid:{}", self.uuid(&[kind, &id]));
        if self.seen.insert(url.clone()) {
            self.entries
                .push(json!({ "fullUrl": url, "resource": resource }));
        }
        url
    }

    // ------------------------------------------------------------ parties

    /// The patient (once per distinct patient), with its relatives as RelatedPerson entries and
    /// its care providers as CareTeam entries pointing at it.
    fn patient(&mut self, p: Option<&Patient>) -> Value {
        let Some(p) = p else {
            return absent_reference();
        };
        let content = serde_json::to_string(p).unwrap_or_default();
        let url = format!("urn:uuid:{}", self.uuid(&["Patient", &content]));
        if self.seen.contains(&url) {
            return json!({ "reference": url });
        }
        let url = self.add("Patient", &content, patient(p));
        let subject = json!({ "reference": url });
        for (n, r) in p.related_persons.iter().enumerate() {
            let mut res = related_person(r);
            res["patient"] = subject.clone();
            self.add("RelatedPerson", &format!("{content}\u{0}{n}"), res);
        }
        for (n, c) in p.care_providers.iter().enumerate() {
            let res = self.care_team(c, &subject, None);
            self.add("CareTeam", &format!("{content}\u{0}{n}"), res);
        }
        subject
    }

    /// A care provider as a CareTeam of one: `participant.role` = the relation and kadgate's
    /// care-provider-role, `member` = the party, `period`; `note`. With `encounter`, the team of a
    /// stay (an epicrisis' care providers), else the patient's.
    fn care_team(&mut self, c: &CareProvider, subject: &Value, encounter: Option<&str>) -> Value {
        let member = self.party(&c.party).map(|p| p.reference);
        let mut roles: Vec<Value> = c.relation.as_ref().and_then(cc).into_iter().collect();
        if let Some(role) = c.role {
            let code = match role {
                CareProviderRole::Contact => "contact",
                CareProviderRole::Responsible => "responsible",
            };
            roles.push(
                json!({ "coding": [{ "system": mapping::CARE_PROVIDER_ROLE, "code": code }] }),
            );
        }
        let participant = o(vec![
            ("role", nonempty(roles)),
            ("member", member),
            ("period", period(c.start.as_deref(), c.end.as_deref())),
        ]);
        let participant = (!is_empty(&participant)).then(|| json!([participant]));
        o(vec![
            ("resourceType", s("CareTeam")),
            ("status", s("active")),
            ("subject", present(subject)),
            ("encounter", encounter.map(|e| json!({ "reference": e }))),
            ("participant", participant),
            (
                "note",
                text(c.note.as_deref()).map(|t| json!([{ "text": t }])),
            ),
        ])
    }

    fn professional(&mut self, p: &Professional, org: Option<&str>, path: &str) -> Value {
        let content = format!(
            "{path}\u{0}{}",
            serde_json::to_string(p).unwrap_or_default()
        );
        let url = self.add("Practitioner", &content, practitioner(p));
        if org.is_none() && p.role_to_patient.is_none() {
            return json!({ "reference": url });
        }
        let role = o(vec![
            ("resourceType", s("PractitionerRole")),
            ("practitioner", Some(json!({ "reference": url }))),
            ("organization", org.map(|u| json!({ "reference": u }))),
            (
                "code",
                p.role_to_patient.as_ref().and_then(cc).map(|c| json!([c])),
            ),
        ]);
        json!({ "reference": self.add("PractitionerRole", &content, role) })
    }

    /// An organisation chain → Organization resources (sub-units `partOf` their parent), the
    /// professional as Practitioner + PractitionerRole at the deepest level. Levels without name
    /// and identifier (FHIR org-1) are skipped.
    fn party(&mut self, org: &Organisation) -> Option<PartyRef> {
        let whole = serde_json::to_string(org).unwrap_or_default();
        let mut parent: Option<String> = None;
        let mut root: Option<String> = None;
        let mut level = Some(org);
        let mut depth = 0usize;
        let mut professional: Option<&Professional> = None;
        while let Some(l) = level {
            if l.name.is_some() || !l.idents.is_empty() {
                let res = organization(l, parent.as_deref());
                let url = self.add("Organization", &format!("{whole}\u{0}{depth}"), res);
                root.get_or_insert_with(|| url.clone());
                parent = Some(url);
            }
            if l.professional.is_some() {
                professional = l.professional.as_ref();
            }
            level = l.unit.as_deref();
            depth += 1;
        }
        let root_org = root.map(|r| json!({ "reference": r }));
        let reference = match (professional, &parent) {
            (Some(p), org_url) => self.professional(p, org_url.as_deref(), &whole),
            (None, Some(u)) => json!({ "reference": u }),
            (None, None) => return None,
        };
        Some(PartyRef {
            reference,
            root_org,
        })
    }

    fn party_ref(&mut self, org: Option<&Organisation>) -> Option<Value> {
        org.and_then(|o| self.party(o)).map(|p| p.reference)
    }

    // ------------------------------------------------------------ the message

    /// The message Bundle: MessageHeader first, then everything added so far.
    fn message(
        mut self,
        msg: &Message,
        default_event: &str,
        focus: Option<String>,
        response: Option<Value>,
        conversation_ext: bool,
    ) -> Value {
        let h = &msg.header;
        let sender = h.sender.as_ref().and_then(|o| self.party(o));
        let receiver = h.receiver.as_ref().and_then(|o| self.party(o));
        let mut destinations = vec![destination(
            h.receiver.as_ref(),
            receiver.as_ref(),
            None,
            &self.uuid(&["destination"]),
        )];
        for (n, c) in h.copy_receivers.iter().enumerate() {
            let r = self.party(&c.party);
            destinations.push(destination(
                Some(&c.party),
                r.as_ref(),
                c.role.as_deref(),
                &self.uuid(&["destination", &n.to_string()]),
            ));
        }
        let ev =
            mapping::event_of_msg_type(&h.msg_type).unwrap_or_else(|| default_event.to_string());
        let mut mh = o(vec![
            ("resourceType", s("MessageHeader")),
            (
                "id",
                Some(Value::String(
                    h.msg_id
                        .as_deref()
                        .map(str::trim)
                        .filter(|i| is_fhir_id(i))
                        .map(str::to_string)
                        .unwrap_or_else(|| self.uuid(&["MessageHeader"])),
                )),
            ),
            ("destination", Some(Value::Array(destinations))),
            ("sender", sender.as_ref().map(|p| p.reference.clone())),
            (
                "source",
                Some(json!({
                    "name": "kadgate",
                    "software": "kadgate",
                    "version": env!("CARGO_PKG_VERSION"),
                    "endpoint": endpoint(h.sender.as_ref(), &self.uuid(&["source"])),
                })),
            ),
            ("response", response),
            ("focus", focus.map(|f| json!([{ "reference": f }]))),
        ]);
        set_event(&mut mh, &ev, h.msg_type_text.as_deref());
        if conversation_ext {
            if let Some(c) = h.conversation.as_ref().and_then(conversation) {
                mh["extension"] = json!([c]);
            }
        }
        let mh_id = mh["id"].as_str().unwrap_or_default().to_string();
        let mh_url = match uuid::Uuid::try_parse(&mh_id) {
            Ok(u) => format!("urn:uuid:{u}"),
            Err(_) => format!("urn:uuid:{}", self.uuid(&["MessageHeader", &mh_id])),
        };
        let mut entries = vec![json!({ "fullUrl": mh_url, "resource": mh })];
        entries.append(&mut self.entries);
        o(vec![
            ("resourceType", s("Bundle")),
            ("id", Some(Value::String(self.uuid(&["Bundle"])))),
            ("type", s("message")),
            (
                "timestamp",
                h.gen_date
                    .as_deref()
                    .and_then(fhir_instant)
                    .map(Value::String),
            ),
            ("entry", Some(Value::Array(entries))),
        ])
    }
}

fn set_event(mh: &mut Value, ev: &str, display: Option<&str>) {
    if ev.contains(':') {
        mh["eventUri"] = Value::String(ev.to_string());
    } else {
        let code = if ev.trim().is_empty() {
            "unknown".to_string()
        } else {
            fhir_code(ev)
        };
        mh["eventCoding"] = o(vec![
            ("system", s(event::SYSTEM)),
            ("code", Some(Value::String(code))),
            ("display", text(display)),
        ]);
    }
}

/// `destination.endpoint`: the receiver's HER-id as `urn:oid:2.16.578.1.12.4.1.2:<id>` (as the shared
/// examples write it), else a URN naming this destination.
fn endpoint(org: Option<&Organisation>, fallback: &str) -> String {
    match org.and_then(Organisation::leaf_her_id).map(str::trim) {
        Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) => format!("{}:{h}", sys::HER),
        _ => format!("urn:uuid:{fallback}"),
    }
}

fn destination(
    org: Option<&Organisation>,
    r: Option<&PartyRef>,
    role: Option<&str>,
    fallback: &str,
) -> Value {
    let mut d = o(vec![
        ("endpoint", Some(Value::String(endpoint(org, fallback)))),
        ("receiver", r.map(|p| p.reference.clone())),
    ]);
    if let Some(role) = role.map(str::trim).filter(|r| !r.is_empty()) {
        d["extension"] = json!([{ "url": ext::KG_RECEIVER_ROLE, "valueCode": fhir_code(role) }]);
    }
    d
}

fn conversation(c: &Conversation) -> Option<Value> {
    let mut parts = Vec::new();
    for (name, v) in [
        ("refToParent", &c.ref_to_parent),
        ("refToConversation", &c.ref_to_conversation),
    ] {
        if let Some(v) = text(v.as_deref()) {
            parts.push(json!({ "url": name, "valueString": v }));
        }
    }
    (!parts.is_empty()).then(|| json!({ "url": ext::KG_CONVERSATION, "extension": parts }))
}

// ---------------------------------------------------------------- stay event

/// A stay event as a message (event `kad-opphold`, whatever the header's type) whose focus is the
/// stay's Encounter: `status` from the kind and service type, the time as `period.start`
/// (admitted) or `period.end` (discharged, deceased; a data-absent end when the time is unknown, so
/// that an ended stay stays recognisable when cancelled), `identifier` = the stay id, `basedOn` =
/// a logical reference to the referral by its id, a death as discharge disposition `exp`, the
/// service type and home nursing as kadgate extensions. Ready-for-discharge has no Encounter form.
fn care_event_message(msg: &Message, e: &CareEvent) -> Result<Value, EncodeError> {
    let status = mapping::encounter_status(e.kind, e.service_type)
        .ok_or(EncodeError::Unsupported("ready-for-discharge stay event"))?;
    let mut m = msg.clone();
    m.header.msg_type = event::STAY.to_string();
    m.header.msg_type_text = Some(event::STAY_DISPLAY.to_string());
    let mut b = Builder::new(&m);
    let subject = b.patient(m.header.patient.as_ref());
    let provider = m.header.sender.as_ref().and_then(|o| b.party(o));
    let at = e.at.as_deref().and_then(fhir_datetime).map(Value::String);
    let period = match (e.kind, at) {
        (CareEventKind::Admitted, at) => at.map(|a| json!({ "start": a })),
        (_, Some(a)) => Some(json!({ "end": a })),
        (_, None) => Some(json!({ "_end": { "extension": [absent()] } })),
    };
    let hospitalization = (e.kind == CareEventKind::Deceased).then(|| {
        let (code, display) = mapping::DISPOSITION_DECEASED;
        json!({ "dischargeDisposition": { "coding": [{
            "system": sys::DISCHARGE_DISPOSITION, "code": code, "display": display,
        }] } })
    });
    let mut exts: Vec<Value> = e.service_type.map(service_type).into_iter().collect();
    if let Some(h) = e.home_nursing {
        exts.push(json!({ "url": ext::KG_HOME_NURSING, "valueBoolean": h }));
    }
    let (class, display) = mapping::encounter_class(None);
    let enc = o(vec![
        ("resourceType", s("Encounter")),
        (
            "identifier",
            text(e.stay_id.as_deref()).map(|v| json!([{ "value": v }])),
        ),
        ("status", s(status)),
        (
            "class",
            Some(json!({ "system": sys::ACT_CODE, "code": class, "display": display })),
        ),
        ("subject", present(&subject)),
        (
            "basedOn",
            text(e.referral_id.as_deref())
                .map(|v| json!([{ "type": "ServiceRequest", "identifier": { "value": v } }])),
        ),
        ("period", period),
        ("hospitalization", hospitalization),
        ("serviceProvider", provider.and_then(|p| p.root_org)),
        ("extension", nonempty(exts)),
    ]);
    let focus = b.add("Encounter", "stay", enc);
    Ok(b.message(&m, event::STAY, Some(focus), None, true))
}

// ---------------------------------------------------------------- referral

fn referral_message(msg: &Message, r: &Referral) -> Value {
    let mut b = Builder::new(msg);
    let subject = b.patient(r.patient.as_ref().or(msg.header.patient.as_ref()));
    let requester = b.party_ref(r.requester.as_ref());
    let performer = b.party_ref(r.service_provider.as_ref());
    let reasons: Vec<Value> = r
        .diagnoses
        .iter()
        .enumerate()
        .filter_map(|(n, d)| condition(&mut b, d, &subject, &n.to_string()).map(|(_, r)| r))
        .collect();
    let mut support = Vec::new();
    for (n, ob) in r.observations.iter().enumerate() {
        let url = b.add("Observation", &n.to_string(), observation(ob, &subject));
        support.push(json!({ "reference": url }));
    }
    for (n, f) in r.flags.iter().enumerate() {
        if let Some(code) = cc(f) {
            let res = json!({ "resourceType": "Flag", "status": "active", "code": code, "subject": subject });
            support.push(json!({ "reference": b.add("Flag", &n.to_string(), res) }));
        }
    }
    for (n, m) in r.medications.iter().enumerate() {
        let url = b.add(
            "MedicationStatement",
            &n.to_string(),
            medication(m, &subject),
        );
        support.push(json!({ "reference": url }));
    }
    if let Some(plan) = text(r.plan.as_deref()) {
        let res = json!({ "resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": subject, "description": plan });
        support.push(json!({ "reference": b.add("CarePlan", "plan", res) }));
    }
    for (n, p) in r.care_pathways.iter().enumerate() {
        let res = o(vec![
            ("resourceType", s("CarePlan")),
            ("status", s("active")),
            ("intent", s("plan")),
            (
                "category",
                Some(json!([cc(&p.code).unwrap_or_else(absent_concept)])),
            ),
            ("subject", Some(subject.clone())),
            (
                "note",
                text(p.note.as_deref()).map(|t| json!([{ "text": t }])),
            ),
        ]);
        let url = b.add("CarePlan", &format!("pathway-{n}"), res);
        support.push(json!({ "reference": url }));
    }
    for (n, c) in r.consents.iter().enumerate() {
        let url = b.add("Consent", &n.to_string(), consent(c, &subject));
        support.push(json!({ "reference": url }));
    }
    for (n, a) in r.attachments.iter().enumerate() {
        let url = b.add(
            "DocumentReference",
            &n.to_string(),
            document_reference(a, &subject),
        );
        support.push(json!({ "reference": url }));
    }
    let mut identifiers: Vec<Value> = text(r.id.as_deref())
        .map(|v| json!({ "value": v }))
        .into_iter()
        .collect();
    if let Some(d) = text(r.document_id.as_deref()) {
        identifiers.push(json!({ "system": mapping::DOCUMENT_ID, "value": d }));
    }
    let mut exts: Vec<Value> = r.service_type.map(service_type).into_iter().collect();
    exts.extend(concept_ext(
        ext::KG_PAYMENT_CATEGORY,
        r.payment_category.as_ref(),
    ));
    exts.extend(concept_ext(
        ext::KG_BASIS_FOR_HEALTH_SERVICES,
        r.basis_for_health_services.as_ref(),
    ));
    exts.extend(concept_ext(ext::KG_SERVICE_PURPOSE, r.purpose.as_ref()));
    exts.extend(received_date(r));
    exts.extend(r.assessment.as_ref().and_then(assessment));
    let mut sr = o(vec![
        ("resourceType", s("ServiceRequest")),
        ("identifier", nonempty(identifiers)),
        (
            "status",
            s(
                if r.service_type == Some(crate::model::ServiceType::Cancellation) {
                    "revoked"
                } else {
                    "active"
                },
            ),
        ),
        ("intent", s("order")),
        (
            "code",
            // prr-1: an orderDetail needs a code; an unknown one says so.
            r.description
                .as_ref()
                .and_then(cc)
                .or_else(|| r.requested_service_type.is_some().then(absent_concept)),
        ),
        (
            "orderDetail",
            r.requested_service_type
                .map(|t| json!([{ "coding": [service_type_coding(t)] }])),
        ),
        ("subject", Some(subject)),
        (
            "occurrenceDateTime",
            r.requested_date
                .as_deref()
                .and_then(fhir_datetime)
                .map(Value::String),
        ),
        (
            "authoredOn",
            r.issue_date
                .as_deref()
                .and_then(fhir_datetime)
                .map(Value::String),
        ),
        ("requester", requester),
        ("performerType", r.requested_specialty.as_ref().and_then(cc)),
        ("performer", performer.map(|p| json!([p]))),
        ("reasonReference", nonempty(reasons)),
        ("supportingInfo", nonempty(support)),
        (
            "note",
            nonempty(r.texts.iter().filter_map(annotation).collect()),
        ),
        ("extension", nonempty(exts)),
    ]);
    set_priority(&mut sr, r.priority.as_ref());
    let focus = b.add("ServiceRequest", "referral", sr);
    b.message(msg, event::REFERRAL, Some(focus), None, true)
}

/// `priority` from a hastegrad, the exact code in the `hastegrad` extension on `_priority`.
fn set_priority(res: &mut Value, p: Option<&Code>) {
    if let Some(p) = p {
        res["priority"] = Value::String(fhir_priority(&p.code).to_string());
        if let Some(c) = coding(p) {
            res["_priority"] =
                json!({ "extension": [{ "url": ext::KG_HASTEGRAD, "valueCoding": c }] });
        }
    }
}

fn received_date(r: &Referral) -> Option<Value> {
    let d = r.received_date.as_deref().and_then(fhir_datetime)?;
    Some(json!({ "url": ext::KG_RECEIVED_DATE, "valueDateTime": d }))
}

/// An extension whose value is the CodeableConcept of `c`.
fn concept_ext(url: &str, c: Option<&Code>) -> Option<Value> {
    let v = cc(c?)?;
    Some(json!({ "url": url, "valueCodeableConcept": v }))
}

/// The receiving unit's assessment as the complex `referral-assessment` extension.
fn assessment(a: &ReferralAssessment) -> Option<Value> {
    let mut parts = Vec::new();
    for d in &a.dates {
        let mut sub = Vec::new();
        if let Some(k) = cc(&d.kind) {
            sub.push(json!({ "url": "kind", "valueCodeableConcept": k }));
        }
        if let Some(v) = fhir_datetime(&d.date) {
            sub.push(json!({ "url": "date", "valueDateTime": v }));
        }
        if !sub.is_empty() {
            parts.push(json!({ "url": "date", "extension": sub }));
        }
    }
    if let Some(v) = a.free_choice {
        parts.push(json!({ "url": "freeChoice", "valueBoolean": v }));
    }
    parts.extend(concept_ext("waitingEnd", a.waiting_end.as_ref()));
    if let Some(v) = text(a.pathway_id.as_deref()) {
        parts.push(json!({ "url": "pathwayId", "valueString": v }));
    }
    if let Some(v) = a.entitled {
        parts.push(json!({ "url": "entitled", "valueBoolean": v }));
    }
    parts.extend(concept_ext("outcome", a.outcome.as_ref()));
    (!parts.is_empty()).then(|| json!({ "url": ext::KG_REFERRAL_ASSESSMENT, "extension": parts }))
}

/// A consent as a Consent resource (scope treatment, category LOINC 59284-0 Patient Consent).
/// `status` is read from the KITH status (3107) by [`mapping::consent_state`], the exact code goes
/// into `_status`; `policyRule` (R4 ppc-1 needs a policy) is not known and says so.
fn consent(c: &Consent, subject: &Value) -> Value {
    let mut res = o(vec![
        ("resourceType", s("Consent")),
        (
            "status",
            s(mapping::consent_state(
                c.status.as_ref().map(|x| x.code.as_str()),
            )),
        ),
        (
            "scope",
            Some(json!({ "coding": [{ "system": sys::CONSENT_SCOPE, "code": "treatment" }] })),
        ),
        (
            "category",
            Some(json!([{ "coding": [{ "system": sys::LOINC, "code": "59284-0" }] }])),
        ),
        ("patient", Some(subject.clone())),
        (
            "dateTime",
            c.date.as_deref().and_then(fhir_datetime).map(Value::String),
        ),
        (
            "performer",
            text(c.given_by.as_deref()).map(|g| json!([{ "display": g }])),
        ),
        ("policyRule", Some(absent_concept())),
        (
            "extension",
            text(c.note.as_deref()).map(|n| json!([{ "url": ext::KG_NOTE, "valueString": n }])),
        ),
    ]);
    if let Some(code) = c.status.as_ref().and_then(coding) {
        res["_status"] =
            json!({ "extension": [{ "url": ext::KG_CONSENT_STATUS, "valueCoding": code }] });
    }
    res
}

/// An attachment as a DocumentReference: `type` = kind (8114), `masterIdentifier` = id,
/// `content[0].attachment` { `contentType`, `data`, `url`, `title` = description, `creation` =
/// issue date }. Content of more than [`MAX_DATA`] base64 characters is split over consecutive
/// `content` entries, each marked with its part number (`data-part`).
fn document_reference(a: &Attachment, subject: &Value) -> Value {
    let data = a.data.as_deref().map(str::trim).filter(|d| is_base64(d));
    let content_type = text(a.media_type.as_deref())
        .or_else(|| data.map(|_| Value::String("application/octet-stream".into())));
    let attachment = |data: Option<&str>| {
        o(vec![
            ("contentType", content_type.clone()),
            ("data", data.map(|d| Value::String(d.to_string()))),
            (
                "url",
                a.uri
                    .as_deref()
                    .map(str::trim)
                    .filter(|u| !u.is_empty() && !u.contains(char::is_whitespace))
                    .map(|u| Value::String(u.to_string())),
            ),
            ("title", text(a.description.as_deref())),
            (
                "creation",
                a.issue_date
                    .as_deref()
                    .and_then(fhir_datetime)
                    .map(Value::String),
            ),
        ])
    };
    let content: Vec<Value> = match data {
        Some(d) if d.len() > MAX_DATA => d
            .as_bytes()
            .chunks(MAX_DATA)
            .enumerate()
            .map(|(n, part)| {
                let mut att = attachment(std::str::from_utf8(part).ok());
                att["extension"] = json!([{ "url": ext::KG_DATA_PART, "valuePositiveInt": n + 1 }]);
                json!({ "attachment": att })
            })
            .collect(),
        _ => {
            let att = attachment(data);
            let att = if is_empty(&att) {
                json!({ "extension": [absent()] })
            } else {
                att
            };
            vec![json!({ "attachment": att })]
        }
    };
    o(vec![
        ("resourceType", s("DocumentReference")),
        (
            "masterIdentifier",
            text(a.id.as_deref()).map(|v| json!({ "value": v })),
        ),
        ("status", s("current")),
        ("type", a.kind.as_ref().and_then(cc)),
        ("subject", present(subject)),
        ("content", Some(Value::Array(content))),
    ])
}

/// The most base64 characters one `Attachment.data` holds: R4 limits strings to 1 MB, and the
/// independent R4 validator applies that to `base64Binary` too.
const MAX_DATA: usize = 1024 * 1024;

/// A FHIR `base64Binary` without white space.
fn is_base64(d: &str) -> bool {
    !d.is_empty()
        && d.len() % 4 == 0
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

fn service_type(t: crate::model::ServiceType) -> Value {
    json!({ "url": ext::KG_SERVICE_TYPE, "valueCoding": service_type_coding(t) })
}

fn service_type_coding(t: crate::model::ServiceType) -> Value {
    json!({ "system": format!("{}{}", mapping::URN_OID, oid::SERVICE_TYPE_7309), "code": t.kith() })
}

/// A diagnosis as a Condition (`code`, `verificationStatus`, modifiers as `code-modifier`
/// extensions), added under `key`; returns the diagnosis' rank and the reference.
fn condition(
    b: &mut Builder,
    d: &Diagnosis,
    subject: &Value,
    key: &str,
) -> Option<(Option<DiagnosisRank>, Value)> {
    let code = cc(&d.code)?;
    let mut res = json!({ "resourceType": "Condition", "code": code, "subject": subject });
    if let Some(c) = d.confirmed {
        let v = if c { "confirmed" } else { "provisional" };
        res["verificationStatus"] =
            json!({ "coding": [{ "system": sys::CONDITION_VERIFICATION, "code": v }] });
    }
    let modifiers: Vec<Value> = d
        .modifiers
        .iter()
        .filter_map(|m| {
            let mut parts: Vec<Value> = concept_ext("name", Some(&m.name)).into_iter().collect();
            parts.extend(
                m.values
                    .iter()
                    .filter_map(|v| concept_ext("value", Some(v))),
            );
            (!parts.is_empty()).then(|| json!({ "url": ext::KG_CODE_MODIFIER, "extension": parts }))
        })
        .collect();
    if !modifiers.is_empty() {
        res["extension"] = Value::Array(modifiers);
    }
    Some((d.rank, json!({ "reference": b.add("Condition", key, res) })))
}

/// The LOINC vital signs `REFERRAL-PROFILE.md` names: they get category `vital-signs`.
pub(crate) const VITAL_SIGNS: &[&str] = &[
    "9279-1", "59408-5", "2708-6", "3151-8", "85354-9", "8480-6", "8462-4", "8867-4", "67775-7",
    "8310-5",
];

/// Whether kadgate adds category `vital-signs` to an observation with this code.
pub(crate) fn is_vital_sign(code: &Code) -> bool {
    code.system.as_deref().and_then(coding_system).as_deref() == Some(sys::LOINC)
        && VITAL_SIGNS.contains(&code.code.as_str())
}

fn observation(ob: &Observation, subject: &Value) -> Value {
    let mut categories: Vec<Value> = ob.category.as_ref().and_then(cc).into_iter().collect();
    let vital =
        json!({ "coding": [{ "system": sys::OBSERVATION_CATEGORY, "code": "vital-signs" }] });
    if is_vital_sign(&ob.code) && !categories.contains(&vital) {
        categories.push(vital);
    }
    let mut res = o(vec![
        ("resourceType", s("Observation")),
        ("status", s("final")),
        ("category", nonempty(categories)),
        ("code", Some(cc(&ob.code).unwrap_or_else(absent_concept))),
        ("subject", Some(subject.clone())),
        (
            "effectiveDateTime",
            ob.time
                .as_deref()
                .and_then(fhir_datetime)
                .map(Value::String),
        ),
        (
            "interpretation",
            ob.interpretation.as_ref().and_then(cc).map(|c| json!([c])),
        ),
        (
            "note",
            text(ob.comment.as_deref()).map(|t| json!([{ "text": t }])),
        ),
    ]);
    let value = ob
        .value
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number);
    if value.is_some() || (ob.value_code.is_none() && ob.unit.is_some()) {
        res["valueQuantity"] = o(vec![("value", value), ("unit", text(ob.unit.as_deref()))]);
    } else if let Some(c) = ob.value_code.as_ref().and_then(cc) {
        res["valueCodeableConcept"] = c;
    }
    res
}

/// A model quantity as a FHIR Quantity (`value` a decimal, `unit` as written).
fn quantity(q: &Quantity) -> Option<Value> {
    let v = o(vec![
        ("value", decimal(&q.value)),
        ("unit", text(q.unit.as_deref())),
    ]);
    (!is_empty(&v)).then_some(v)
}

/// A medication line as a MedicationStatement: `medicationCodeableConcept` = drug (with a dose
/// form: a contained Medication { code, form }), `category`, `effectivePeriod` = start/end,
/// `note` = comment, `dosage[0]` { `text`, `timing.code` = coded dosage,
/// `timing.repeat.boundsDuration` = intended duration (UCUM time units), `route`,
/// `doseAndRate[0].doseQuantity` = unit dose }; extensions for the sender's status (code and text),
/// the quantity supplied and an intended duration in other units.
fn medication(m: &Medication, subject: &Value) -> Value {
    let drug = m.drug.as_ref().and_then(cc);
    let form = m.form.as_ref().and_then(cc);
    let mut exts = Vec::new();
    let status = Code {
        code: m.status.clone().unwrap_or_default(),
        system: None,
        display: m.status_text.clone(),
    };
    if let Some(c) = coding(&status) {
        exts.push(json!({ "url": ext::KG_MEDICATION_STATUS, "valueCoding": c }));
    }
    if let Some(q) = m.quantity_supplied.as_ref().and_then(quantity) {
        exts.push(json!({ "url": ext::KG_QUANTITY_SUPPLIED, "valueQuantity": q }));
    }
    let mut bounds = None;
    if let Some(d) = &m.intended_duration {
        let ucum = d.unit.as_deref().and_then(ucum_time_unit);
        match (decimal(&d.value), ucum) {
            (Some(v), Some(code)) => {
                bounds = Some(o(vec![
                    ("value", Some(v)),
                    ("unit", text(d.unit.as_deref())),
                    ("system", s(mapping::UCUM)),
                    ("code", s(code)),
                ]));
            }
            _ => {
                if let Some(q) = quantity(d) {
                    exts.push(json!({ "url": ext::KG_INTENDED_DURATION, "valueQuantity": q }));
                }
            }
        }
    }
    let timing = o(vec![
        ("code", m.dosage_code.as_ref().and_then(cc)),
        ("repeat", bounds.map(|b| json!({ "boundsDuration": b }))),
    ]);
    let dosage = o(vec![
        ("text", text(m.dosage_text.as_deref())),
        ("timing", (!is_empty(&timing)).then_some(timing)),
        ("route", m.route.as_ref().and_then(cc)),
        (
            "doseAndRate",
            m.unit_dose
                .as_ref()
                .and_then(quantity)
                .map(|q| json!([{ "doseQuantity": q }])),
        ),
    ]);
    let mut res = o(vec![
        ("resourceType", s("MedicationStatement")),
        ("status", s("unknown")),
        ("category", m.category.as_ref().and_then(cc)),
        ("subject", Some(subject.clone())),
        (
            "effectivePeriod",
            period(m.start.as_deref(), m.end.as_deref()),
        ),
        ("dosage", (!is_empty(&dosage)).then(|| json!([dosage]))),
        (
            "note",
            text(m.comment.as_deref()).map(|t| json!([{ "text": t }])),
        ),
        ("extension", nonempty(exts)),
    ]);
    match form {
        Some(form) => {
            res["contained"] = json!([o(vec![
                ("resourceType", s("Medication")),
                ("id", s("medication")),
                ("code", drug),
                ("form", Some(form)),
            ])]);
            res["medicationReference"] = json!({ "reference": "#medication" });
        }
        None => res["medicationCodeableConcept"] = drug.unwrap_or_else(absent_concept),
    }
    res
}

fn annotation(t: &TextSection) -> Option<Value> {
    let txt = text(Some(&t.text))?;
    let mut a = json!({ "text": txt });
    let exts = text_exts(t);
    if !exts.is_empty() {
        a["extension"] = Value::Array(exts);
    }
    Some(a)
}

/// What a text says about itself besides its words: heading, role, period, codes.
fn text_exts(t: &TextSection) -> Vec<Value> {
    let mut v: Vec<Value> = heading(t.heading.as_ref()).into_iter().collect();
    if let Some(Value::String(r)) = t.role.and_then(|r| serde_json::to_value(r).ok()) {
        v.push(json!({ "url": ext::KG_TEXT_ROLE, "valueCode": r }));
    }
    if let Some(p) = period(t.start.as_deref(), t.end.as_deref()) {
        v.push(json!({ "url": ext::KG_TEXT_PERIOD, "valuePeriod": p }));
    }
    v.extend(
        t.codes
            .iter()
            .filter_map(|c| concept_ext(ext::KG_TEXT_CODE, Some(c))),
    );
    v
}

fn heading(h: Option<&Code>) -> Option<Value> {
    coding(h?).map(|c| json!({ "url": ext::KG_HEADING, "valueCoding": c }))
}

/// A Period from model date-times; an end before the start is left out (R4 per-1).
fn period(start: Option<&str>, end: Option<&str>) -> Option<Value> {
    let start = start.and_then(fhir_datetime);
    let mut end = end.and_then(fhir_datetime);
    if let (Some(a), Some(b)) = (&start, &end) {
        if a.len() == b.len() && b < a {
            end = None;
        }
    }
    let p = o(vec![
        ("start", start.map(Value::String)),
        ("end", end.map(Value::String)),
    ]);
    (!is_empty(&p)).then_some(p)
}

/// A related person as a RelatedPerson (without `patient`, which the caller sets):
/// `relationship` = kinship, the care function (marked `care-function`) and v2-0131 `N` for the
/// closest relative; occupation, workplace, note and "not the closest relative" as extensions.
fn related_person(r: &RelatedPerson) -> Value {
    let mut rel: Vec<Value> = r.relationship.as_ref().and_then(cc).into_iter().collect();
    if let Some(mut c) = r.care_function.as_ref().and_then(cc) {
        c["extension"] = json!([{ "url": ext::KG_CARE_FUNCTION, "valueBoolean": true }]);
        rel.push(c);
    }
    let mut exts = Vec::new();
    match r.next_of_kin {
        Some(true) => rel.push(
            json!({ "coding": [{ "system": mapping::CONTACT_ROLE, "code": "N", "display": "Next-of-Kin" }] }),
        ),
        Some(false) => exts.push(json!({ "url": ext::KG_NEXT_OF_KIN, "valueBoolean": false })),
        None => {}
    }
    for (url, v) in [
        (ext::KG_OCCUPATION, &r.occupation),
        (ext::KG_WORKPLACE, &r.workplace),
        (ext::KG_NOTE, &r.note),
    ] {
        if let Some(t) = text(v.as_deref()) {
            exts.push(json!({ "url": url, "valueString": t }));
        }
    }
    let mut fields = vec![
        ("resourceType", s("RelatedPerson")),
        ("identifier", nonempty(idents(&r.idents, person_id_system))),
        ("relationship", nonempty(rel)),
    ];
    fields.extend(person_elements(
        [&r.family_name, &r.given_name, &r.middle_name, &r.full_name],
        &r.telecom,
        r.sex,
        r.birth_date.as_deref(),
    ));
    fields.extend([
        (
            "address",
            r.address.as_ref().and_then(address).map(|a| json!([a])),
        ),
        ("extension", nonempty(exts)),
    ]);
    o(fields)
}

/// The elements a Patient and a RelatedPerson share: `name` (family, given, middle, text),
/// `telecom`, `gender`, `birthDate`.
fn person_elements(
    [family, given, middle, full]: [&Option<String>; 4],
    telecom: &[Telecom],
    sex: Option<crate::model::Sex>,
    birth_date: Option<&str>,
) -> [(&'static str, Option<Value>); 4] {
    [
        (
            "name",
            human_name(family, given, middle, full).map(|n| json!([n])),
        ),
        (
            "telecom",
            nonempty(telecom.iter().map(contact_point).collect()),
        ),
        ("gender", sex.map(|x| Value::String(gender(x).into()))),
        (
            "birthDate",
            birth_date.and_then(fhir_date).map(Value::String),
        ),
    ]
}

/// A communication need as `Patient.communication`: `language` (required; data-absent when not
/// known) and the `communication-need` extension; the person who needs it is a contained
/// RelatedPerson (pushed onto `contained`).
fn communication_need(c: &CommunicationNeed, n: usize, contained: &mut Vec<Value>) -> Value {
    let mut parts = Vec::new();
    if let Some(p) = &c.person {
        let id = format!("communication-need-{n}");
        let mut rp = related_person(p);
        rp["id"] = Value::String(id.clone());
        rp["patient"] = json!({ "reference": "#" });
        contained.push(rp);
        parts.push(json!({ "url": "person", "valueReference": { "reference": format!("#{id}") } }));
    }
    for (url, v) in [
        ("hearingImpaired", c.hearing_impaired),
        ("sightImpaired", c.sight_impaired),
    ] {
        if let Some(b) = v {
            parts.push(json!({ "url": url, "valueBoolean": b }));
        }
    }
    if let Some(t) = text(c.note.as_deref()) {
        parts.push(json!({ "url": "note", "valueString": t }));
    }
    let mut v =
        json!({ "language": c.language.as_ref().and_then(cc).unwrap_or_else(absent_concept) });
    if !parts.is_empty() {
        v["extension"] = json!([{ "url": ext::KG_COMMUNICATION_NEED, "extension": parts }]);
    }
    v
}

// ---------------------------------------------------------------- epicrisis

fn document(
    b: &mut Builder,
    msg: &Message,
    e: &Epicrisis,
    standalone: bool,
) -> Result<Value, EncodeError> {
    let h = &msg.header;
    let date = e
        .issue_date
        .as_deref()
        .and_then(fhir_datetime)
        .or_else(|| h.gen_date.as_deref().and_then(fhir_datetime))
        .ok_or(EncodeError::Missing(
            "a document date (issue date or generation time)",
        ))?;
    let timestamp = h
        .gen_date
        .as_deref()
        .and_then(fhir_instant)
        .or_else(|| e.issue_date.as_deref().and_then(fhir_instant))
        .ok_or(EncodeError::Missing("a document timestamp"))?;
    let subject = b.patient(e.patient.as_ref().or(h.patient.as_ref()));
    let author = e.service_provider.as_ref().and_then(|o| b.party(o));
    let requester = b.party_ref(e.requester.as_ref());

    let mut sections = Vec::new();
    for t in &e.texts {
        if let Some(sec) = text_section(t) {
            sections.push(sec);
        }
    }
    let diags: Vec<(Option<DiagnosisRank>, Value)> = e
        .diagnoses
        .iter()
        .enumerate()
        .filter_map(|(n, d)| condition(b, d, &subject, &n.to_string()))
        .collect();
    if !diags.is_empty() {
        sections.push(json!({
            "title": "Diagnoser",
            "code": { "coding": [{ "system": sys::LOINC, "code": "11535-2", "display": "Hospital discharge Dx Narrative" }] },
            "entry": diags.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
        }));
    }
    let meds: Vec<Value> = e
        .medications
        .iter()
        .enumerate()
        .map(|(n, m)| {
            let url = b.add(
                "MedicationStatement",
                &n.to_string(),
                medication(m, &subject),
            );
            json!({ "reference": url })
        })
        .collect();
    if !meds.is_empty() {
        sections.push(json!({
            "title": "Legemidler",
            "code": { "coding": [{ "system": sys::LOINC, "code": "10160-0", "display": "History of Medication use Narrative" }] },
            "entry": meds,
        }));
    }
    let results: Vec<Value> = e
        .observations
        .iter()
        .enumerate()
        .map(|(n, ob)| {
            json!({ "reference": b.add("Observation", &n.to_string(), observation(ob, &subject)) })
        })
        .collect();
    if !results.is_empty() {
        sections.push(json!({
            "title": "Resultater",
            "code": { "coding": [{ "system": sys::LOINC, "code": "30954-2", "display": "Relevant diagnostic tests/laboratory data Narrative" }] },
            "entry": results,
        }));
    }
    let attachments: Vec<Value> = e
        .attachments
        .iter()
        .enumerate()
        .map(|(n, a)| {
            let url = b.add(
                "DocumentReference",
                &n.to_string(),
                document_reference(a, &subject),
            );
            json!({ "reference": url })
        })
        .collect();
    if !attachments.is_empty() {
        sections.push(json!({ "title": "Vedlegg", "entry": attachments }));
    }

    let referral_id = e
        .referral_id
        .as_deref()
        .or_else(|| e.referral.as_ref().and_then(|r| r.id.as_deref()));
    let referral = (referral_id.is_some() || requester.is_some() || e.referral.is_some())
        .then(|| epicrisis_referral(b, e, referral_id, requester.clone(), &subject));
    let period = o(vec![
        (
            "start",
            e.admitted
                .as_deref()
                .and_then(fhir_datetime)
                .map(Value::String),
        ),
        (
            "end",
            e.discharged
                .as_deref()
                .and_then(fhir_datetime)
                .map(Value::String),
        ),
    ]);
    let has_period = !is_empty(&period);
    let ranked: Vec<Value> = diags
        .iter()
        .filter_map(|(rank, r)| {
            let n = match (*rank)? {
                DiagnosisRank::Main => 1,
                DiagnosisRank::Secondary => 2,
            };
            Some(json!({
                "condition": r,
                "use": { "coding": [{ "system": sys::DIAGNOSIS_ROLE, "code": "DD" }] },
                "rank": n,
            }))
        })
        .collect();
    let discharge = e
        .discharge_outcome
        .as_ref()
        .and_then(cc)
        .map(|c| json!({ "dischargeDisposition": c }));
    let needs_encounter = has_period
        || referral.is_some()
        || !ranked.is_empty()
        || e.admission_category.is_some()
        || discharge.is_some()
        || e.priority.is_some()
        || !e.care_providers.is_empty();
    let encounter = needs_encounter.then(|| {
        let (class, display) =
            mapping::encounter_class(e.admission_category.as_ref().map(|c| c.code.as_str()));
        let enc = o(vec![
            ("resourceType", s("Encounter")),
            ("status", s("finished")),
            (
                "class",
                Some(json!({ "system": sys::ACT_CODE, "code": class, "display": display })),
            ),
            (
                "type",
                e.admission_category
                    .as_ref()
                    .and_then(cc)
                    .map(|c| json!([c])),
            ),
            ("priority", e.priority.as_ref().and_then(cc)),
            ("subject", Some(subject.clone())),
            ("basedOn", referral.map(|r| json!([r]))),
            ("period", has_period.then_some(period)),
            ("diagnosis", nonempty(ranked)),
            ("hospitalization", discharge),
            (
                "serviceProvider",
                author.as_ref().and_then(|a| a.root_org.clone()),
            ),
        ]);
        b.add("Encounter", "stay", enc)
    });
    if let Some(enc) = &encounter {
        for (n, c) in e.care_providers.iter().enumerate() {
            let res = b.care_team(c, &subject, Some(enc));
            b.add("CareTeam", &format!("stay-{n}"), res);
        }
    }

    // The status says new, changed or cancelled; the exact 7306 status travels beside it when the
    // FHIR status does not imply it (an addition to the report, a preliminary change, …).
    let status = mapping::composition_status(e.service_type, e.status.as_deref());
    let report_status = e
        .status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty() && mapping::epicrisis_status(status) != Some(*s))
        .map(|s| {
            json!({ "extension": [{ "url": ext::KG_REPORT_STATUS, "valueCoding": {
                "system": format!("{}{}", mapping::URN_OID, oid::REPORT_STATUS_7306),
                "code": fhir_code(s),
            } }] })
        });
    let composition = o(vec![
        ("resourceType", s("Composition")),
        (
            "identifier",
            text(e.id.as_deref()).map(|v| json!({ "value": v })),
        ),
        ("status", s(status)),
        ("_status", report_status),
        (
            "type",
            Some(
                json!({ "coding": [{ "system": sys::DOC_TYPE_9602, "code": "A03-2", "display": "Epikrise" }] }),
            ),
        ),
        ("subject", Some(subject.clone())),
        ("encounter", encounter.map(|u| json!({ "reference": u }))),
        ("date", Some(Value::String(date))),
        (
            "author",
            Some(json!([author
                .as_ref()
                .map(|a| a.reference.clone())
                .unwrap_or_else(absent_reference)])),
        ),
        (
            "title",
            Some(text(e.title.as_deref()).unwrap_or_else(|| Value::String("Epikrise".into()))),
        ),
        (
            "attester",
            e.approved_date
                .as_deref()
                .and_then(fhir_datetime)
                .map(|t| json!([{ "mode": "legal", "time": t }])),
        ),
        (
            "custodian",
            author.as_ref().and_then(|a| a.root_org.clone()),
        ),
        ("section", nonempty(sections)),
        (
            "extension",
            e.service_type.map(|t| json!([service_type(t)])),
        ),
    ]);
    let comp_id = b.uuid(&["Composition"]);
    let mut comp = composition;
    comp["id"] = Value::String(comp_id.clone());
    let mut entries = vec![json!({ "fullUrl": format!("urn:uuid:{comp_id}"), "resource": comp })];
    entries.append(&mut b.entries);
    let id = if standalone {
        h.msg_id
            .as_deref()
            .map(str::trim)
            .filter(|i| is_fhir_id(i))
            .map(str::to_string)
            .unwrap_or_else(|| b.uuid(&["Bundle"]))
    } else {
        b.uuid(&["document"])
    };
    Ok(json!({
        "resourceType": "Bundle",
        "id": id,
        "identifier": { "system": sys::RFC3986, "value": format!("urn:uuid:{}", b.uuid(&["document-identifier"])) },
        "type": "document",
        "timestamp": timestamp,
        "entry": entries,
    }))
}

/// The referral an epicrisis answers, as the ServiceRequest its Encounter is `basedOn`:
/// identifier (data-absent when unknown, so that no id is read back), requester, and what the
/// epicrisis repeats of it (service type, issue and receipt dates, description, texts, diagnoses).
fn epicrisis_referral(
    b: &mut Builder,
    e: &Epicrisis,
    id: Option<&str>,
    requester: Option<Value>,
    subject: &Value,
) -> Value {
    let r = e.referral.as_deref();
    let reasons: Vec<Value> = r
        .map(|r| {
            r.diagnoses
                .iter()
                .enumerate()
                .filter_map(|(n, d)| condition(b, d, subject, &format!("referral-{n}")))
                .map(|(_, x)| x)
                .collect()
        })
        .unwrap_or_default();
    let mut exts: Vec<Value> = r
        .and_then(|r| r.service_type)
        .map(service_type)
        .into_iter()
        .collect();
    exts.extend(r.and_then(received_date));
    let sr = o(vec![
        ("resourceType", s("ServiceRequest")),
        (
            "identifier",
            Some(match text(id) {
                Some(v) => json!([{ "value": v }]),
                None => json!([{ "extension": [absent()] }]),
            }),
        ),
        ("status", s("completed")),
        ("intent", s("order")),
        ("code", r.and_then(|r| r.description.as_ref()).and_then(cc)),
        ("subject", Some(subject.clone())),
        (
            "authoredOn",
            r.and_then(|r| r.issue_date.as_deref())
                .and_then(fhir_datetime)
                .map(Value::String),
        ),
        ("requester", requester),
        ("reasonReference", nonempty(reasons)),
        (
            "note",
            r.and_then(|r| nonempty(r.texts.iter().filter_map(annotation).collect())),
        ),
        ("extension", nonempty(exts)),
    ]);
    json!({ "reference": b.add("ServiceRequest", "referral", sr) })
}

fn text_section(t: &TextSection) -> Option<Value> {
    let div = xhtml(&t.text)?;
    let h = t.heading.as_ref();
    let exts: Vec<Value> = text_exts(&TextSection {
        heading: None,
        ..t.clone()
    });
    Some(o(vec![
        ("title", h.and_then(|h| text(h.display.as_deref()))),
        ("code", h.filter(|h| !h.code.trim().is_empty()).and_then(cc)),
        ("text", Some(json!({ "status": "generated", "div": div }))),
        ("extension", nonempty(exts)),
    ]))
}

/// Plain text → an XHTML narrative `div`, one `<p>` per non-empty line.
fn xhtml(t: &str) -> Option<String> {
    let mut out = String::from("<div xmlns=\"http://www.w3.org/1999/xhtml\">");
    let mut any = false;
    for line in t.lines().map(str::trim).filter(|l| !l.is_empty()) {
        out.push_str("<p>");
        for c in line.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                c if (c as u32) < 0x20 && c != '\t' => {}
                c => out.push(c),
            }
        }
        out.push_str("</p>");
        any = true;
    }
    out.push_str("</div>");
    any.then_some(out)
}

// ---------------------------------------------------------------- dialog

fn dialog_message(msg: &Message, d: &Dialog) -> Value {
    let mut b = Builder::new(msg);
    let h = &msg.header;
    let subject = h.patient.as_ref().map(|p| b.patient(Some(p)));
    let sender = b.party_ref(h.sender.as_ref());
    let recipient = b.party_ref(h.receiver.as_ref());
    let topic = concept(d.topic.as_ref(), d.topic_text.as_deref());
    let category = concept(d.case_type.as_ref(), d.case_type_text.as_deref());
    let mut payload: Vec<Value> = d
        .texts
        .iter()
        .filter_map(|t| {
            let txt = text(Some(&t.text))?;
            let mut p = json!({ "contentString": txt });
            let exts = text_exts(t);
            if !exts.is_empty() {
                p["extension"] = Value::Array(exts);
            }
            Some(p)
        })
        .collect();
    let doc_subject = subject.clone().unwrap_or(Value::Null);
    for (n, a) in d.attachments.iter().enumerate() {
        let url = b.add(
            "DocumentReference",
            &n.to_string(),
            document_reference(a, &doc_subject),
        );
        payload.push(json!({ "contentReference": { "reference": url } }));
    }
    let about = d.request.as_ref().map(|r| {
        let res = communication_request(r, subject.as_ref());
        json!([{ "reference": b.add("CommunicationRequest", "request", res) }])
    });
    let conv = h.conversation.as_ref();
    let msg_ref = |id: Option<&str>| {
        text(id).map(|v| json!([{ "identifier": { "system": sys::MESSAGE_ID, "value": v } }]))
    };
    let mut exts = Vec::new();
    if let Some(p) = &d.responsible {
        let r = b.professional(p, None, "responsible");
        exts.push(json!({ "url": ext::KG_RESPONSIBLE, "valueReference": r }));
    }
    exts.extend(concept_ext(
        ext::KG_RESPONSIBLE_ROLE,
        d.responsible_role.as_ref(),
    ));
    if let Some(v) = d.note_date.as_deref().and_then(fhir_datetime) {
        exts.push(json!({ "url": ext::KG_NOTE_DATE, "valueDateTime": v }));
    }
    let comm = o(vec![
        ("resourceType", s("Communication")),
        (
            "identifier",
            text(d.document_id.as_deref()).map(|v| json!([{ "value": v }])),
        ),
        (
            "basedOn",
            msg_ref(conv.and_then(|c| c.ref_to_conversation.as_deref())),
        ),
        (
            "inResponseTo",
            msg_ref(conv.and_then(|c| c.ref_to_parent.as_deref())),
        ),
        ("status", s("completed")),
        ("category", category.map(|c| json!([c]))),
        ("subject", subject),
        ("topic", topic),
        ("about", about),
        (
            "sent",
            d.issue_date
                .as_deref()
                .and_then(fhir_datetime)
                .map(Value::String),
        ),
        ("recipient", recipient.map(|r| json!([r]))),
        ("sender", sender),
        ("payload", nonempty(payload)),
        ("extension", nonempty(exts)),
    ]);
    let focus = b.add("Communication", "dialog", comm);
    b.message(msg, event::DIALOG, Some(focus), None, false)
}

/// A CodeableConcept from a code (first coding) and a text.
fn concept(c: Option<&Code>, t: Option<&str>) -> Option<Value> {
    let mut m = Map::new();
    if let Some(c) = c.and_then(coding) {
        m.insert("coding".into(), json!([c]));
    }
    if let Some(t) = text(t) {
        m.insert("text".into(), t);
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// A dialogue's request (forespørsel) as a CommunicationRequest: `identifier` = its document id,
/// `category` = kind, `priority` (+ `hastegrad`), `occurrencePeriod` = from/to dates,
/// `reasonCode` = purpose, `payload[0].contentString` = the subject line; the kinds of record
/// information asked for and coded information as extensions.
fn communication_request(r: &DialogRequest, subject: Option<&Value>) -> Value {
    let mut exts: Vec<Value> = r
        .record_types
        .iter()
        .filter_map(|c| concept_ext(ext::KG_RECORD_TYPE, Some(c)))
        .collect();
    exts.extend(concept_ext(ext::KG_CODED_INFO, r.coded_info.as_ref()));
    let mut res = o(vec![
        ("resourceType", s("CommunicationRequest")),
        (
            "identifier",
            text(r.document_id.as_deref()).map(|v| json!([{ "value": v }])),
        ),
        ("status", s("active")),
        ("category", r.kind.as_ref().and_then(cc).map(|c| json!([c]))),
        ("subject", subject.and_then(present)),
        (
            "payload",
            text(r.subject.as_deref()).map(|t| json!([{ "contentString": t }])),
        ),
        (
            "occurrencePeriod",
            period(r.from_date.as_deref(), r.to_date.as_deref()),
        ),
        (
            "reasonCode",
            r.purpose.as_ref().and_then(cc).map(|c| json!([c])),
        ),
        ("extension", nonempty(exts)),
    ]);
    set_priority(&mut res, r.priority.as_ref());
    res
}

// ---------------------------------------------------------------- receipt

fn receipt_message(msg: &Message, r: &Receipt) -> Result<Value, EncodeError> {
    let original = r
        .original_msg_id
        .as_deref()
        .map(str::trim)
        .filter(|i| is_fhir_id(i))
        .ok_or(EncodeError::Missing("the acknowledged message's id"))?;
    let mut b = Builder::new(msg);
    let code = ResponseCode::of_status(r.status);
    let mut response = json!({ "identifier": original, "code": code.as_str() });
    if let Some(d) = r.original_issue_date.as_deref().and_then(|d| text(Some(d))) {
        response["extension"] = json!([{ "url": ext::KG_ORIGINAL_ISSUE_DATE, "valueString": d }]);
    }
    if let Some(oo) = outcome(r) {
        let url = b.add("OperationOutcome", "outcome", oo);
        response["details"] = json!({ "reference": url });
    }
    let mut m = msg.clone();
    // A response carries the request's event; the receipt's own type has no place.
    m.header.msg_type = r.original_msg_type.clone().unwrap_or_default();
    m.header.msg_type_text = None;
    Ok(b.message(&m, event::REFERRAL, None, Some(response), true))
}

/// The receipt's errors as an OperationOutcome: severity `error` when rejected, `warning` when
/// partly accepted, `information` on an OK receipt that still lists codes.
fn outcome(r: &Receipt) -> Option<Value> {
    let severity = match r.status {
        ReceiptStatus::Rejected => "error",
        ReceiptStatus::Partial => "warning",
        ReceiptStatus::Ok => "information",
    };
    let issues: Vec<Value> = r
        .errors
        .iter()
        .map(|e| {
            let is_issue_type = e.system.as_deref() == Some(sys::ISSUE_TYPE);
            if is_issue_type && !e.code.trim().is_empty() {
                o(vec![
                    ("severity", s(severity)),
                    ("code", Some(Value::String(fhir_code(&e.code)))),
                    ("diagnostics", text(e.display.as_deref())),
                ])
            } else {
                let apprec = e
                    .system
                    .as_deref()
                    .is_none_or(|s| s.trim() == oid::APPREC_ERROR);
                let typ = if apprec {
                    issue_type_of_apprec_error(&e.code)
                } else {
                    "processing"
                };
                o(vec![
                    ("severity", s(severity)),
                    ("code", s(typ)),
                    ("details", cc(e)),
                ])
            }
        })
        .collect();
    (!issues.is_empty()).then(|| json!({ "resourceType": "OperationOutcome", "issue": issues }))
}

// ---------------------------------------------------------------- resources for parties

fn patient(p: &Patient) -> Value {
    let idents: Vec<Value> = p
        .idents
        .iter()
        .filter_map(|i| {
            let id = text(Some(&i.id))?;
            let kind = i.kind.trim();
            Some(match person_id_system(kind) {
                Some(sys::HNR) => json!({
                    "type": { "coding": [{ "system": sys::ID_TYPE_8327, "code": "HNR" }] },
                    "system": sys::HNR, "value": id,
                }),
                Some(system) if kind == kind.to_ascii_uppercase() => {
                    json!({ "system": system, "value": id })
                }
                _ => identifier_with_type(id, kind, coding_system(oid::ID_TYPE_8116)),
            })
        })
        .collect();
    let mut contained = Vec::new();
    let communication: Vec<Value> = p
        .communication_needs
        .iter()
        .enumerate()
        .map(|(n, c)| communication_need(c, n, &mut contained))
        .collect();
    let nationality = p.nationality.as_ref().and_then(cc).map(|c| {
        json!([{ "url": ext::PATIENT_NATIONALITY, "extension": [{ "url": "code", "valueCodeableConcept": c }] }])
    });
    let mut fields = vec![
        ("resourceType", s("Patient")),
        ("contained", nonempty(contained)),
        ("extension", nationality),
        ("identifier", nonempty(idents)),
    ];
    fields.extend(person_elements(
        [&p.family_name, &p.given_name, &p.middle_name, &p.full_name],
        &p.telecom,
        p.sex,
        p.birth_date.as_deref(),
    ));
    fields.extend([
        (
            "deceasedDateTime",
            p.deceased_date
                .as_deref()
                .and_then(fhir_datetime)
                .map(Value::String),
        ),
        (
            "address",
            p.address.as_ref().and_then(address).map(|a| json!([a])),
        ),
        ("maritalStatus", p.marital_status.as_ref().and_then(cc)),
        ("communication", nonempty(communication)),
    ]);
    o(fields)
}

/// An identifier whose kind has no system of its own (or is written in an unusual form): the kind
/// goes into `type`, with the code list `list` when one is known.
fn identifier_with_type(id: Value, kind: &str, list: Option<String>) -> Value {
    let mut v = json!({ "value": id });
    if !kind.is_empty() {
        v["type"] = json!({ "coding": [o(vec![
            ("system", list.map(Value::String)),
            ("code", Some(Value::String(fhir_code(kind)))),
        ])] });
    }
    v
}

/// Identifiers of a person or organisation (`Ident`): a known kind → its system; the code list the
/// sender named (`Ident.system`) is kept in `type` when there is one.
fn idents(ids: &[Ident], system_of: fn(&str) -> Option<&'static str>) -> Vec<Value> {
    ids.iter()
        .filter_map(|i| {
            let id = text(Some(&i.id))?;
            let kind = i.kind.trim();
            let known = system_of(kind).filter(|_| kind == kind.to_ascii_uppercase());
            Some(match (known, i.system.as_deref()) {
                (Some(sys), None) => json!({ "system": sys, "value": id }),
                (Some(sys), Some(list)) => {
                    let mut v = identifier_with_type(id, kind, coding_system(list));
                    v["system"] = Value::String(sys.to_string());
                    v
                }
                (None, list) => identifier_with_type(id, kind, list.and_then(coding_system)),
            })
        })
        .collect()
}

fn organization(org: &Organisation, part_of: Option<&str>) -> Value {
    o(vec![
        ("resourceType", s("Organization")),
        ("identifier", nonempty(idents(&org.idents, org_id_system))),
        ("type", org.kind.as_ref().and_then(cc).map(|c| json!([c]))),
        ("name", text(org.name.as_deref())),
        (
            "telecom",
            nonempty(org.telecom.iter().map(contact_point).collect()),
        ),
        (
            "address",
            org.address.as_ref().and_then(address).map(|a| json!([a])),
        ),
        ("partOf", part_of.map(|p| json!({ "reference": p }))),
    ])
}

fn practitioner(p: &Professional) -> Value {
    o(vec![
        ("resourceType", s("Practitioner")),
        ("identifier", nonempty(idents(&p.idents, person_id_system))),
        (
            "name",
            human_name(&p.family_name, &p.given_name, &p.middle_name, &p.full_name)
                .map(|n| json!([n])),
        ),
        (
            "telecom",
            nonempty(p.telecom.iter().map(contact_point).collect()),
        ),
        (
            "qualification",
            p.profession
                .as_ref()
                .and_then(cc)
                .map(|c| json!([{ "code": c }])),
        ),
    ])
}

fn human_name(
    family: &Option<String>,
    given: &Option<String>,
    middle: &Option<String>,
    full: &Option<String>,
) -> Option<Value> {
    let mut n = o(vec![
        ("text", text(full.as_deref())),
        ("family", text(family.as_deref())),
        ("given", text(given.as_deref()).map(|g| json!([g]))),
    ]);
    if let Some(m) = text(middle.as_deref()) {
        n["extension"] = json!([{ "url": ext::NB_MIDDLENAME, "valueString": m }]);
    }
    n.as_object().is_some_and(|m| !m.is_empty()).then_some(n)
}

fn address(a: &Address) -> Option<Value> {
    let mut v = o(vec![
        ("line", text(a.street.as_deref()).map(|l| json!([l]))),
        ("city", text(a.city.as_deref())),
        ("postalCode", text(a.postal_code.as_deref())),
        ("country", text(a.country.as_deref())),
    ]);
    let mut exts = Vec::new();
    if let Some((u, t, official)) = a.kind.as_deref().and_then(address_use) {
        if let Some(u) = u {
            v["use"] = s(u).unwrap_or_default();
        }
        if let Some(t) = t {
            v["type"] = s(t).unwrap_or_default();
        }
        if official {
            exts.push(json!({ "url": ext::NB_ADDRESS_OFFICIAL, "valueBoolean": true }));
        }
    }
    if let Some(m) = text(a.municipality.as_deref()) {
        v["_district"] = json!({ "extension": [{
            "url": ext::NB_MUNICIPALITY,
            "valueCoding": { "system": sys::MUNICIPALITY, "code": m },
        }] });
    }
    if !exts.is_empty() {
        v["extension"] = Value::Array(exts);
    }
    v.as_object().is_some_and(|m| !m.is_empty()).then_some(v)
}

fn contact_point(t: &Telecom) -> Value {
    let raw = t.value.trim();
    let (system, value) = TELECOM_SCHEME
        .iter()
        .find_map(|(prefix, system)| {
            raw.strip_prefix(prefix)
                .filter(|rest| !rest.trim().is_empty())
                .map(|rest| (*system, rest.trim()))
        })
        .unwrap_or(("other", raw));
    let use_ = t
        .kind
        .as_deref()
        .and_then(|k| TELECOM_USE.iter().find(|(kind, _)| *kind == k.trim()))
        .map(|(_, u)| Value::String((*u).to_string()));
    o(vec![
        ("system", s(system)),
        ("value", text(Some(value))),
        ("use", use_),
    ])
}

// ---------------------------------------------------------------- small JSON helpers

/// An object from (key, value) pairs, leaving out the `None`s.
fn o(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
    Value::Object(m)
}

fn s(v: &str) -> Option<Value> {
    Some(Value::String(v.to_string()))
}

/// A FHIR string: present only when it has non-blank content.
fn text(v: Option<&str>) -> Option<Value> {
    v.filter(|t| !t.trim().is_empty())
        .map(|t| Value::String(t.to_string()))
}

fn nonempty(v: Vec<Value>) -> Option<Value> {
    (!v.is_empty()).then_some(Value::Array(v))
}

/// A FHIR `code`: single spaces between tokens, no leading or trailing white space.
fn fhir_code(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Code → Coding (`None` when it has neither code nor display).
fn coding(c: &Code) -> Option<Value> {
    let code = fhir_code(&c.code);
    let v = o(vec![
        (
            "system",
            c.system
                .as_deref()
                .and_then(coding_system)
                .map(Value::String),
        ),
        ("code", (!code.is_empty()).then_some(Value::String(code))),
        ("display", text(c.display.as_deref())),
    ]);
    (v.get("code").is_some() || v.get("display").is_some()).then_some(v)
}

/// Code → CodeableConcept: a coding when there is a code value, else the display as `text`.
fn cc(c: &Code) -> Option<Value> {
    if c.code.trim().is_empty() {
        return text(c.display.as_deref()).map(|t| json!({ "text": t }));
    }
    coding(c).map(|x| json!({ "coding": [x] }))
}

/// A reference that names something (not a data-absent one), else `None`.
fn present(r: &Value) -> Option<Value> {
    r.get("reference").is_some().then(|| r.clone())
}

fn is_empty(v: &Value) -> bool {
    v.as_object().is_none_or(Map::is_empty)
}

/// A required CodeableConcept the model has nothing for.
fn absent_concept() -> Value {
    json!({ "extension": [absent()] })
}

fn absent() -> Value {
    json!({ "url": ext::DATA_ABSENT_REASON, "valueCode": "unknown" })
}

/// A required reference the model has nothing for: `data-absent-reason` instead of invented data.
fn absent_reference() -> Value {
    json!({ "extension": [absent()] })
}
