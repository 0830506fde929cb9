//! The business reply: how kadgate tells a referrer what became of a referral.
//!
//! What it does: builds one dialogue message ([`Message`] with [`Body::Dialog`]) that
//! states the admission decision in plain Norwegian — the decision, the reasons, where the referral
//! went, the doctor's override — identifies the patient as the referral did, and links itself to
//! the referral; then writes it with the existing encoders, as MsgHead 1.2 + Dialogmelding 1.1 for
//! a KITH referrer or as a FHIR R4 message Bundle (Communication focus) for a FHIR referrer.
//! Output is deterministic for given inputs: the new message id and the time are parameters.
//! The choices below and the reply's content are written down in `docs/mapping/reply.md`.
//!
//! What it must NOT do: decide anything (the decision, routing and override come in), read the
//! clock, generate ids, do I/O, or write XML/JSON by hand. It never uses an AppRec: an AppRec says
//! "received and readable", never "not accepted" (DESIGN.md, "Policies the standards leave open").
//! The English reasons are for logs and the dashboard and never go into the reply.
//!
//! # Message type and topic (KITH)
//!
//! Dialogmelding 1.1 has a profile for exactly this, *Status på henvisning* (HIS 1206:2018; 8279
//! type `DIALOG_STATUS_HENVISNING`, `standards/kith/meta/Dialogmelding-1.1-metadata.xml`, profile 3),
//! whose topic (`Notat/TemaKodet`) comes from code system 9148 — as in the standards' own example
//! `kith/dialogmelding/examples/sarepta/Dialogmelding-v1-1/Status_paa_henvisning-InnkaltEtterViderehenvisning.xml`.
//! 9148 (`kith/codes/kodeverk-visningsfiler.tsv`) has 1 *Innkalles til helsehjelp*,
//! 2 *Rett til helsehjelp, tidspunkt kommer*, 3 *Henvisningen er videresendt*, 4 *Henvisningen er
//! avvist*. So:
//!
//! | decision | 8279 type | topic |
//! |---|---|---|
//! | accepted | `DIALOG_STATUS_HENVISNING` | 9148 `1` Innkalles til helsehjelp (the patient is taken in) |
//! | not-accepted | `DIALOG_STATUS_HENVISNING` | 9148 `4` Henvisningen er avvist |
//! | needs-review | `DIALOG_HELSEFAGLIG` | 7322 `6` Henvendelse om pasient |
//! | incomplete | `DIALOG_HELSEFAGLIG` | 7322 `6` Henvendelse om pasient |
//!
//! Needs-review and incomplete are not a status of the referral that 9148 can express (code 2 is a
//! specialist-care rights assessment, code 3 a forwarding): they are a message about the patient
//! between health personnel, which is what *Helsefaglig dialog* (HIS 1077:2017, `FACTS.md` §8) is
//! for, with its topic list 7322. Both are Dialogmelding 1.1 and answered with AppRec 1.1.
//!
//! # Link to the referral
//!
//! KITH (`FACTS.md` §6): `ConversationRef/RefToParent` = the referral's MsgId (the message
//! answered), `RefToConversation` = the referral's own `RefToConversation` when it had one, else
//! its MsgId (the referral started the dialogue).
//!
//! FHIR: the same two ids, written by the dialogue encoder as logical references (system
//! `http://example.org/kadgate/NamingSystem/message-id`) in `Communication.basedOn` (the
//! conversation's start; R4: "an order, proposal or plan fulfilled in whole or in part by this
//! Communication", `Reference(Any)` — the referral's ServiceRequest is that order) and
//! `Communication.inResponseTo` (the message answered; `standards/fhir/FACTS.md` §3 and §7 map
//! `ConversationRef` onto these two). The referral's `MessageHeader.id` is the identifier used
//! because it is the one every FHIR referral has (`ServiceRequest.identifier` is optional and the
//! shared example has none), and it is what KITH links by too. `MessageHeader.response` is NOT
//! used: it marks the receipt-level answer to a message (`$process-message`, FACTS §1), and a
//! message carrying it is read as a receipt, not as a dialogue.

use crate::fhir;
use crate::model::{
    Body, Code, Conversation, Dialog, Format, Header, Message, Organisation, Patient, TextRole,
    TextSection,
};
use crate::rules::{Decision, DecisionKind};

/// Code system 9148 "Status på henvisning" (topic of `DIALOG_STATUS_HENVISNING`).
pub const OID_REFERRAL_STATUS_9148: &str = "2.16.578.1.12.4.1.1.9148";
/// Code system 7322 (topic of `DIALOG_HELSEFAGLIG`).
pub const OID_DIALOG_TOPIC_7322: &str = "2.16.578.1.12.4.1.1.7322";

/// The wire format of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFormat {
    /// MsgHead 1.2 + Dialogmelding 1.1 (KITH referrers).
    Dialogmelding11,
    /// FHIR R4 message Bundle with a Communication as focus (FHIR referrers).
    Fhir,
}

/// Everything the reply says; nothing in it is decided here.
#[derive(Debug, Clone, Copy)]
pub struct ReplySpec<'a> {
    /// The decoded referral: its header (message id, conversation, parties) and its patient.
    pub referral: &'a Message,
    /// The decision reported (after an override, the overriding one).
    pub decision: &'a Decision,
    /// The KAD doctor (role or name) when this reply reports an override.
    pub overridden_by: Option<&'a str>,
    /// The KAD unit the referral was routed to (`None` = not routed).
    pub unit: Option<&'a str>,
    /// What routing has to say (unit full, diverted), plain Norwegian without patient data.
    pub route_note_no: Option<&'a str>,
    /// Who answers (the KAD unit or the intake organisation).
    pub from: &'a Organisation,
    /// The referrer (the referral's sender).
    pub to: &'a Organisation,
    /// The reply's own message id (a UUID).
    pub msg_id: &'a str,
    /// GenDate / `Bundle.timestamp`: RFC 3339 or a KITH date-time.
    pub now: &'a str,
}

/// An encoded reply, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub format: Format,
    pub msg_id: String,
}

/// Why a reply could not be written. Messages name no patient data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the referral has no message id, so a reply cannot refer to it")]
    NoReferralId,
    #[error("the reply's message id is not a UUID")]
    BadMsgId,
    #[error("the reply's time is not a readable date-time")]
    BadTime,
    #[error("the reply could not be written as Dialogmelding 1.1: {0}")]
    Kith(#[from] crate::kith::encode::EncodeError),
    #[error("the reply could not be written as FHIR: {0}")]
    Fhir(#[from] fhir::encode::EncodeError),
    #[error("the FHIR reply could not be serialised: {0}")]
    Json(String),
}

/// The reply format for a referral that came in as `referral_format`: FHIR answers FHIR, every
/// KITH format is answered with Dialogmelding 1.1.
pub fn reply_format_for(referral_format: Format) -> ReplyFormat {
    match referral_format {
        Format::FhirR4 => ReplyFormat::Fhir,
        _ => ReplyFormat::Dialogmelding11,
    }
}

/// Build and encode the business reply.
pub fn business_reply(spec: &ReplySpec, format: ReplyFormat) -> Result<Encoded, ReplyError> {
    let msg = reply_message(spec, format)?;
    let msg_id = spec.msg_id.trim().to_string();
    match format {
        ReplyFormat::Dialogmelding11 => Ok(Encoded {
            bytes: crate::kith::encode::encode(&msg, Format::Dialogmelding11)?,
            content_type: "application/xml",
            format: Format::Dialogmelding11,
            msg_id,
        }),
        ReplyFormat::Fhir => {
            let value = fhir::encode::encode(&msg)?;
            let bytes = serde_json::to_vec(&value).map_err(|e| ReplyError::Json(e.to_string()))?;
            Ok(Encoded {
                bytes,
                content_type: "application/fhir+json",
                format: Format::FhirR4,
                msg_id,
            })
        }
    }
}

/// The reply as a model message (what [`business_reply`] encodes).
pub fn reply_message(spec: &ReplySpec, format: ReplyFormat) -> Result<Message, ReplyError> {
    let msg_id = spec.msg_id.trim();
    if uuid::Uuid::try_parse(msg_id).is_err() {
        return Err(ReplyError::BadMsgId);
    }
    if fhir::mapping::fhir_instant(spec.now).is_none() {
        return Err(ReplyError::BadTime);
    }
    let conversation = link(&spec.referral.header)?;
    let (msg_type, msg_type_text, topic) = kind_codes(spec.decision.decision);
    let header_format = match format {
        ReplyFormat::Dialogmelding11 => Format::Dialogmelding11,
        ReplyFormat::Fhir => Format::FhirR4,
    };
    let mut header = Header::new(header_format, msg_type);
    header.msg_type_text = Some(msg_type_text.to_string());
    header.msg_id = Some(msg_id.to_string());
    header.gen_date = Some(spec.now.trim().to_string());
    header.sender = Some(spec.from.clone());
    header.receiver = Some(spec.to.clone());
    header.patient = spec.referral.patient().map(identity_only);
    header.conversation = Some(conversation);
    // A test referral gets a test reply (8113 P/T/D as the referral had it).
    header.processing_status = spec.referral.header.processing_status.clone();
    let mut texts = vec![TextSection {
        heading: None,
        text: note_text(spec),
        role: Some(TextRole::Note),
        start: None,
        end: None,
        codes: Vec::new(),
    }];
    texts.push(TextSection {
        heading: None,
        text: trailer(spec.decision, spec.overridden_by.is_some()),
        role: Some(TextRole::Remark),
        start: None,
        end: None,
        codes: Vec::new(),
    });
    let dialog = Dialog {
        topic: Some(topic),
        topic_text: Some(TOPIC_TEXT.to_string()),
        texts,
        issue_date: Some(spec.now.trim().to_string()),
        ..Dialog::default()
    };
    Ok(Message {
        header,
        body: Body::Dialog(Box::new(dialog)),
    })
}

/// `Notat/Tema` / `Communication.topic.text`.
pub const TOPIC_TEXT: &str = "Vurdering av henvisning til KAD";

/// The first words of every reply's note.
pub const LEAD: &str = "Henvisningen er vurdert: ";

/// The 8279 type, its text, and the note's topic for a decision (table in the module docs).
fn kind_codes(kind: DecisionKind) -> (&'static str, &'static str, Code) {
    let status = |code: &str, text: &str| {
        (
            "DIALOG_STATUS_HENVISNING",
            "Status på henvisning",
            Code::new(code, Some(OID_REFERRAL_STATUS_9148), Some(text)),
        )
    };
    let dialog = || {
        (
            "DIALOG_HELSEFAGLIG",
            "Helsefaglig dialog",
            Code::new(
                "6",
                Some(OID_DIALOG_TOPIC_7322),
                Some("Henvendelse om pasient"),
            ),
        )
    };
    match kind {
        DecisionKind::Accepted => status("1", "Innkalles til helsehjelp"),
        DecisionKind::NotAccepted => status("4", "Henvisningen er avvist"),
        DecisionKind::NeedsReview | DecisionKind::Incomplete => dialog(),
    }
}

/// The conversation link (module docs, "Link to the referral").
fn link(referral: &Header) -> Result<Conversation, ReplyError> {
    let id = referral
        .msg_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(ReplyError::NoReferralId)?;
    let start = referral
        .conversation
        .as_ref()
        .and_then(|c| c.ref_to_conversation.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(id);
    Ok(Conversation {
        ref_to_parent: Some(id.to_string()),
        ref_to_conversation: Some(start.to_string()),
    })
}

/// The patient as the referral identified them — names, birth date, sex, identity numbers — and
/// nothing else: the reply needs to say who it is about, not repeat the referral's address,
/// relatives or care providers.
fn identity_only(p: &Patient) -> Patient {
    Patient {
        family_name: p.family_name.clone(),
        middle_name: p.middle_name.clone(),
        given_name: p.given_name.clone(),
        full_name: p.full_name.clone(),
        birth_date: p.birth_date.clone(),
        sex: p.sex,
        idents: p.idents.clone(),
        ..Patient::default()
    }
}

/// The decision in one sentence, after [`LEAD`].
fn headline(kind: DecisionKind) -> &'static str {
    match kind {
        DecisionKind::Accepted => "pasienten kan tas imot ved kommunal akutt døgnenhet (KAD).",
        DecisionKind::NeedsReview => {
            "lege ved KAD-enheten må vurdere den før pasienten kan tas imot."
        }
        DecisionKind::NotAccepted => {
            "pasienten kan ikke tas imot ved kommunal akutt døgnenhet (KAD)."
        }
        DecisionKind::Incomplete => {
            "den er ufullstendig – opplysninger som trengs for å ta imot pasienten, mangler."
        }
    }
}

/// The note: decision, reasons, NEWS2, where the referral went, what happens next, the override.
fn note_text(spec: &ReplySpec) -> String {
    let d = spec.decision;
    let mut lines = vec![format!("{LEAD}{}", headline(d.decision))];
    if let Some(who) = clean(spec.overridden_by) {
        lines.push(format!(
            "Vurderingen er overstyrt av {who} ved KAD-enheten og erstatter den automatiske vurderingen."
        ));
    }
    let reasons: Vec<&str> = d
        .reasons_no
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect();
    if !reasons.is_empty() {
        lines.push("Begrunnelse:".to_string());
        lines.extend(reasons.iter().map(|r| format!("- {r}")));
    }
    if let Some(n) = d.news2 {
        lines.push(format!("NEWS2-skår beregnet fra henvisningen: {n}."));
    }
    if let Some(unit) = clean(spec.unit) {
        lines.push(format!("Henvisningen er sendt videre til {unit}."));
    }
    if let Some(note) = clean(spec.route_note_no) {
        lines.push(note.to_string());
    }
    match d.decision {
        DecisionKind::NeedsReview if spec.overridden_by.is_none() => {
            lines.push("Endelig vurdering gjøres av lege ved KAD-enheten.".to_string());
        }
        DecisionKind::Incomplete => {
            lines.push("Send opplysningene som mangler i en ny henvisning.".to_string());
        }
        _ => {}
    }
    lines.join("\n")
}

/// The short trailer: which rule set decided, and which rules fired.
fn trailer(d: &Decision, overridden: bool) -> String {
    let mut t = format!(
        "Automatisk vurdering etter regelsett {} versjon {}",
        d.ruleset_id.trim(),
        d.ruleset_version.trim()
    );
    if !d.fired.is_empty() {
        let ids: Vec<&str> = d.fired.iter().map(|f| f.id.as_str()).collect();
        t.push_str(&format!("; regler: {}", ids.join(", ")));
    }
    t.push_str(if overridden {
        " (overstyrt av lege)."
    } else {
        "."
    });
    t
}

fn clean(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_referral() {
        assert_eq!(reply_format_for(Format::FhirR4), ReplyFormat::Fhir);
        for f in [
            Format::Henvisning11,
            Format::Henvisning20,
            Format::Dialogmelding11,
        ] {
            assert_eq!(reply_format_for(f), ReplyFormat::Dialogmelding11);
        }
    }

    #[test]
    fn the_link_uses_the_conversation_start_when_there_is_one() {
        let mut h = Header::new(Format::Henvisning20, "HENVISNING_NYTILSTAND");
        assert_eq!(link(&h), Err(ReplyError::NoReferralId));
        h.msg_id = Some(" a ".into());
        let c = link(&h).unwrap();
        assert_eq!(c.ref_to_parent.as_deref(), Some("a"));
        assert_eq!(c.ref_to_conversation.as_deref(), Some("a"));
        h.conversation = Some(Conversation {
            ref_to_parent: Some("p".into()),
            ref_to_conversation: Some("start".into()),
        });
        let c = link(&h).unwrap();
        assert_eq!(c.ref_to_parent.as_deref(), Some("a"));
        assert_eq!(c.ref_to_conversation.as_deref(), Some("start"));
    }

    #[test]
    fn only_final_outcomes_are_a_referral_status() {
        let status = |k| kind_codes(k).0 == "DIALOG_STATUS_HENVISNING";
        assert!(status(DecisionKind::Accepted));
        assert!(status(DecisionKind::NotAccepted));
        assert!(!status(DecisionKind::NeedsReview));
        assert!(!status(DecisionKind::Incomplete));
    }
}
