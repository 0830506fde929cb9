//! Who gets an epicrisis, and the outbox row for each of them.
//!
//! Recipients: the patient's GP (the GP register, on the day of discharge), the referrer of the
//! stay's referral (else the requester the epicrisis names), home nursing in the patient's
//! municipality when the stay says so, and the copy receivers the epicrisis names. Recipients that
//! are delivered to the same place collapse into one (the GP who referred gets one copy).
//! What it must NOT do: write to the store (it returns rows and alerts), or put patient data in
//! alert texts.

use std::sync::Arc;

use crate::admission::{encode, format_name, levels, outbox_row, unknown_party};
use crate::model::{Format, Message, Organisation};
use crate::registry::{Directory, Party, PartyKind, RegistryError};
use crate::store::{NewAlert, NewOutbox};

use super::doc::SentTo;

/// Epicrisis formats kadgate writes, in the order it offers them.
const EPICRISIS_FORMATS: [Format; 3] = [Format::Epikrise12, Format::Epikrise11, Format::FhirR4];

/// One recipient: the party addressed (with the endpoint and formats it is reached through).
#[derive(Debug, Clone)]
pub struct Recipient {
    pub party: Party,
    pub role: &'static str,
    /// A format fixed by an earlier copy (corrections and cancellations go as the original did).
    pub format: Option<Format>,
}

impl Recipient {
    /// Where copies for this recipient end up: a GP's office, else the party itself.
    pub fn delivery_identity(&self) -> String {
        match self.party.kind {
            PartyKind::Gp => self
                .party
                .org_her_id
                .clone()
                .unwrap_or_else(|| self.party.her_id.clone()),
            _ => self.party.her_id.clone(),
        }
    }
}

/// Add `r` unless a recipient delivered to the same place is there already (the first one wins).
pub fn push_unique(list: &mut Vec<Recipient>, r: Recipient) {
    let id = r.delivery_identity();
    if !list.iter().any(|x| x.delivery_identity() == id) {
        list.push(r);
    }
}

/// A party as it is reached: a GP without an endpoint of its own through the office.
pub async fn reachable(dir: &Arc<dyn Directory>, party: Party) -> Result<Party, RegistryError> {
    if party.endpoint.is_some() {
        return Ok(party);
    }
    let Some(office_her) = party.org_her_id.clone() else {
        return Ok(party);
    };
    let mut p = party;
    if let Some(office) = dir.party(&office_her).await? {
        p.endpoint = office.endpoint.clone();
        if p.formats.is_empty() {
            p.formats = office.formats.clone();
        }
        if p.org_name.is_none() {
            p.org_name = Some(office.name.clone());
        }
    }
    Ok(p)
}

/// The most specific party of an organisation the directory knows (person, unit, top level).
pub async fn find_party(
    dir: &Arc<dyn Directory>,
    org: &Organisation,
) -> Result<Option<Party>, RegistryError> {
    if let Some(p) = org.professional.as_ref().and_then(|p| p.her_id()) {
        if let Some(party) = dir.party(p).await? {
            return Ok(Some(party));
        }
    }
    for level in levels(org).iter().rev() {
        if let Some(her) = level.her_id() {
            if let Some(p) = dir.party(her).await? {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}

/// A referrer or copy receiver the directory does not know: addressed as named, not deliverable.
pub fn unknown(org: &Organisation, role: &'static str) -> Recipient {
    Recipient {
        party: unknown_party(org),
        role,
        format: None,
    }
}

/// What one copy is.
pub struct Copy<'a> {
    pub msg: &'a Message,
    /// The bytes as received when they are FHIR JSON.
    pub raw_fhir: Option<&'a [u8]>,
    pub purpose: &'a str,
    pub stay_id: i64,
    pub now: &'a str,
    pub now_ms: i64,
    pub receipt_secs: u64,
}

/// The outbox row carrying the epicrisis to one recipient, and the record of it for the stay.
pub fn copy_for(c: &Copy<'_>, r: &Recipient) -> (NewOutbox, SentTo) {
    let out_msg_id = crate::store::new_out_msg_id();
    let mut row = outbox_row(
        c.purpose,
        &r.party,
        format!("stay:{}/{}", c.stay_id, r.delivery_identity()),
        &out_msg_id,
        c.now,
        c.now_ms,
        c.receipt_secs,
    );
    let format = r
        .format
        .or_else(|| r.party.preferred_format(&EPICRISIS_FORMATS));
    let sent = |format: &str| SentTo {
        recipient_key: row_key(&r.party),
        name: r.party.name.clone(),
        role: r.role.to_owned(),
        format: format.to_owned(),
        out_msg_id: out_msg_id.clone(),
    };
    let Some(format) = format else {
        row.dead_reason = Some("the recipient takes no epicrisis format kadgate writes".into());
        let s = sent("");
        return (row, s);
    };
    let receiver = r.party.organisation();
    let forwarded = match (format, c.raw_fhir) {
        (Format::FhirR4, Some(raw)) => crate::fhir::forward::readdress(
            raw,
            &crate::fhir::forward::Readdress {
                msg_id: &out_msg_id,
                bundle_id: &uuid::Uuid::new_v4().to_string(),
                now: c.now,
                receiver: &receiver,
            },
        ),
        _ => None,
    };
    let encoded = match forwarded {
        Some(body) => Ok((body, "application/fhir+json")),
        None => {
            let mut out = c.msg.clone();
            out.header.msg_id = Some(out_msg_id.clone());
            out.header.gen_date = Some(c.now.to_owned());
            out.header.receiver = Some(receiver);
            // Each recipient gets a copy of its own: a copy naming the others as receivers
            // would ask each of them to answer for the rest (and they get their own copies).
            out.header.copy_receivers.clear();
            encode(&out, format)
        }
    };
    match encoded {
        Ok((body, content_type)) => {
            row.format = format_name(format);
            row.content_type = content_type.into();
            row.body = body;
        }
        Err(e) => {
            row.dead_reason = Some(format!(
                "the epicrisis could not be encoded for the recipient: {e}"
            ))
        }
    }
    if row.endpoint_json.is_none() && row.dead_reason.is_none() {
        row.dead_reason = Some("the directory has no endpoint for the recipient".into());
    }
    let s = sent(&format_name(format));
    (row, s)
}

fn row_key(p: &Party) -> String {
    crate::admission::party_key(p)
}

/// The alert when the GP register knows no GP for the patient.
pub fn gp_not_found(stay_id: i64, unit: Option<&str>, fallback: Option<&Party>) -> NewAlert {
    let reason = match fallback {
        Some(f) => format!(
            "the GP register knows no GP for the patient of stay {stay_id}; the epicrisis went to \
             the fallback {} (HER:{})",
            f.name, f.her_id
        ),
        None => format!(
            "the GP register knows no GP for the patient of stay {stay_id}, and no fallback \
             recipient is configured for the municipality: the GP gets no epicrisis"
        ),
    };
    NewAlert {
        kind: "stay.gp-not-found".into(),
        unit_key: unit.map(str::to_owned),
        reason,
        message_id: None,
        outbox_id: None,
        dedup_key: format!("gp-not-found:{stay_id}"),
    }
}
