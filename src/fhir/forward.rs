//! Forwarding a FHIR message to another FHIR receiver without decoding and encoding it again: the
//! received (and already validated) Bundle keeps every resource as the sender wrote it, and only
//! what makes it a new message from kadgate to the new receiver changes — `Bundle.id`,
//! `Bundle.timestamp`, the MessageHeader's id (and its `fullUrl`), its destination, and the
//! receiving Organization resource the destination points at.
//!
//! This loses nothing (the model round trip has documented losses) and costs a JSON parse instead
//! of a full encode. It applies only where the new receiver is one organisation level (its HER-id
//! and organisation number on one Organization resource); anything else — or a Bundle that does not
//! have the expected shape — returns `None` and the caller encodes from the model.
//!
//! Must not: validate (the input was validated on receipt), change any clinical resource, or
//! quote content in errors.

use serde_json::{json, Value};

use super::mapping::sys;
use crate::model::Organisation;

/// The new addressing of a forwarded message.
pub struct Readdress<'a> {
    /// The new MessageHeader.id (a UUID).
    pub msg_id: &'a str,
    /// The new Bundle.id (a UUID).
    pub bundle_id: &'a str,
    /// Bundle.timestamp (xs:dateTime).
    pub now: &'a str,
    /// The new receiver; must be a single level (no `unit`, no `professional`).
    pub receiver: &'a Organisation,
}

/// The received message `raw` (a message Bundle, or Parameters with `content`) readdressed, as
/// compact JSON; `None` when it cannot be done faithfully (see the module docs).
pub fn readdress(raw: &[u8], to: &Readdress<'_>) -> Option<Vec<u8>> {
    if to.receiver.unit.is_some() || to.receiver.professional.is_some() {
        return None;
    }
    let her = to.receiver.her_id()?.to_owned();
    let mut parsed: Value = serde_json::from_slice(raw).ok()?;
    // A `$process-message` body may carry the message inside Parameters (`content`).
    let mut bundle = if parsed.get("resourceType")?.as_str()? == "Parameters" {
        parsed
            .get_mut("parameter")?
            .as_array_mut()?
            .iter_mut()
            .find(|p| p.get("name").and_then(Value::as_str) == Some("content"))?
            .get_mut("resource")?
            .take()
    } else {
        parsed
    };
    if bundle.get("resourceType")?.as_str()? != "Bundle" {
        return None;
    }
    bundle["id"] = json!(to.bundle_id);
    bundle["timestamp"] = json!(to.now);
    let entries = bundle.get_mut("entry")?.as_array_mut()?;
    let receiver_ref = {
        let first = entries.first_mut()?;
        let header = first.get_mut("resource")?;
        if header.get("resourceType")?.as_str()? != "MessageHeader" {
            return None;
        }
        let dest = header.get("destination")?.as_array()?;
        if dest.len() != 1 {
            return None;
        }
        let receiver_ref = dest[0]
            .get("receiver")?
            .get("reference")?
            .as_str()?
            .to_owned();
        header["id"] = json!(to.msg_id);
        let mut d = json!({
            "endpoint": format!("{}:{her}", sys::HER),
            "receiver": { "reference": receiver_ref },
        });
        if let Some(name) = &to.receiver.name {
            d["name"] = json!(name);
        }
        header["destination"] = json!([d]);
        if first
            .get("fullUrl")
            .and_then(Value::as_str)
            .is_some_and(|u| u.starts_with("urn:uuid:"))
        {
            first["fullUrl"] = json!(format!("urn:uuid:{}", to.msg_id));
        }
        receiver_ref
    };
    // The Organization the destination names becomes the new receiver.
    let org = entries
        .iter_mut()
        .find(|e| e.get("fullUrl").and_then(Value::as_str) == Some(receiver_ref.as_str()))?
        .get_mut("resource")?;
    if org.get("resourceType")?.as_str()? != "Organization" {
        return None;
    }
    let mut identifiers = vec![json!({ "system": sys::HER, "value": her })];
    if let Some(enh) = to.receiver.org_number() {
        identifiers.push(json!({ "system": sys::ENH, "value": enh }));
    }
    let obj = org.as_object_mut()?;
    obj.retain(|k, _| matches!(k.as_str(), "resourceType" | "id" | "meta"));
    obj.insert("identifier".into(), Value::Array(identifiers));
    if let Some(name) = &to.receiver.name {
        obj.insert("name".into(), json!(name));
    }
    serde_json::to_vec(&bundle).ok()
}
