//! The stay document: what the stay tracker knows about one stay, stored as JSON in the stay row
//! (the row's columns are only what stays are found by). Plain data and pure helpers: no I/O.

use serde::{Deserialize, Serialize};

use crate::model::{Message, Organisation};

/// States a stay moves through. `closed` = discharged and the epicrisis fanned out.
pub const REFERRED: &str = "referred";
pub const ADMITTED: &str = "admitted";
pub const DISCHARGED: &str = "discharged";
pub const CLOSED: &str = "closed";

/// One stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StayDoc {
    /// The unit (`HER:990002`) and its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_name: Option<String>,
    /// Who referred, as the referral named them (the epicrisis goes back to them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<Organisation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_key: Option<String>,
    /// The referral's MsgId and its own id, when a referral opened the stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_msg_id: Option<String>,
    /// The patient's municipality, as routing found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub municipality: Option<String>,
    /// Home nursing follows the patient up after the stay (the epicrisis goes there too).
    #[serde(default)]
    pub home_nursing: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharged_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epicrisis_at: Option<String>,
    /// What happened, in the order kadgate learnt it.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// Every epicrisis (and correction, cancellation) received for the stay and where it went.
    #[serde(default)]
    pub epicrises: Vec<EpicrisisEntry>,
}

/// One line of a stay's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When it happened (as the message says), else when kadgate learnt it.
    pub at: String,
    /// `referred`, `admitted`, `discharged`, `admission-cancelled`, `epicrisis`, …
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
    /// Plain English without patient data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// An epicrisis received for the stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpicrisisEntry {
    pub message_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// The document's id (kept by corrections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_id: Option<String>,
    /// `new`, `change`, `cancellation`.
    pub kind: String,
    pub received_at: String,
    /// Where it went (empty when it was not fanned out, see `note`).
    #[serde(default)]
    pub sent_to: Vec<SentTo>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One recipient of an epicrisis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentTo {
    /// `HER:…` of the party addressed.
    pub recipient_key: String,
    pub name: String,
    /// `gp`, `referrer`, `home-nursing`, `copy`, `gp-fallback`.
    pub role: String,
    /// Wire format name (`epikrise-12`, `fhir-r4`, …).
    pub format: String,
    pub out_msg_id: String,
}

impl StayDoc {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The document of a stored stay; a document that cannot be read starts empty (its row keeps
    /// the raw JSON until the next write).
    pub fn from_json(s: &str) -> StayDoc {
        serde_json::from_str(s).unwrap_or_default()
    }

    pub fn note(&mut self, at: &str, kind: &str, message_id: Option<i64>, note: impl Into<String>) {
        self.timeline.push(TimelineEntry {
            at: at.to_owned(),
            kind: kind.to_owned(),
            message_id,
            note: note.into(),
        });
    }

    /// Every recipient an epicrisis document was (or is being) sent to, first time each.
    pub fn recipients_of(&self, doc_id: &str) -> Vec<SentTo> {
        let mut out: Vec<SentTo> = Vec::new();
        for e in self
            .epicrises
            .iter()
            .filter(|e| e.doc_id.as_deref() == Some(doc_id))
        {
            for s in &e.sent_to {
                if !out.iter().any(|o| o.recipient_key == s.recipient_key) {
                    out.push(s.clone());
                }
            }
        }
        out
    }

    pub fn has_epicrisis(&self, doc_id: &str, kind: &str) -> bool {
        self.epicrises
            .iter()
            .any(|e| e.doc_id.as_deref() == Some(doc_id) && e.kind == kind)
    }
}

/// The patient's national identity number (fødselsnummer, D-, H- or FH-number) as the message
/// gives it.
pub fn patient_nin(msg: &Message) -> Option<String> {
    msg.patient()?
        .idents
        .iter()
        .find(|i| i.person_kind().is_some())
        .map(|i| i.id.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Link key for a message id or a referral's own id.
pub fn id_key(id: &str) -> String {
    format!("id:{}", id.trim())
}

/// Link key for a unit's document id (an epicrisis and its corrections).
pub fn doc_key(unit_key: &str, doc_id: &str) -> String {
    format!("doc:{unit_key}:{}", doc_id.trim())
}

/// Link key for the unit's own id of the stay.
pub fn unit_stay_key(unit_key: &str, id: &str) -> String {
    format!("enc:{unit_key}:{}", id.trim())
}

/// `YYYY-MM-DD…` or a full date-time as milliseconds since the epoch (dates at 00:00 UTC).
pub fn parse_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_the_forms_messages_use() {
        assert_eq!(parse_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_ms("1970-01-01T00:00:01"), Some(1_000));
        assert_eq!(parse_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_ms("yesterday"), None);
    }

    #[test]
    fn recipients_of_a_document_are_collected_once() {
        let to = |k: &str| SentTo {
            recipient_key: k.into(),
            name: k.into(),
            role: "gp".into(),
            format: "epikrise-12".into(),
            out_msg_id: format!("m-{k}"),
        };
        let entry = |kind: &str, sent: Vec<SentTo>| EpicrisisEntry {
            message_id: 1,
            msg_id: None,
            doc_id: Some("D1".into()),
            kind: kind.into(),
            received_at: "2026-01-01".into(),
            sent_to: sent,
            note: String::new(),
        };
        let doc = StayDoc {
            epicrises: vec![
                entry("new", vec![to("HER:1"), to("HER:2")]),
                entry("change", vec![to("HER:2"), to("HER:3")]),
            ],
            ..StayDoc::default()
        };
        let keys: Vec<_> = doc
            .recipients_of("D1")
            .into_iter()
            .map(|s| s.recipient_key)
            .collect();
        assert_eq!(keys, ["HER:1", "HER:2", "HER:3"]);
        assert!(doc.has_epicrisis("D1", "new") && !doc.has_epicrisis("D1", "cancellation"));
    }
}
