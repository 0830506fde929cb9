//! `kadgate convert`: one message from KITH XML to FHIR R4 JSON or back, always through the
//! canonical model (decode → [`Message`] → encode), and the result checked the way kadgate checks
//! input: KITH output against the official XSDs, FHIR output with kadgate's R4 validator.
//!
//! What each direction loses is in `docs/mapping.md`. This module reads and writes bytes only; the
//! CLI does the file handling. It must not convert format to format, and never panics on input.

use crate::check::Rules;
use crate::fhir;
use crate::finding::{Finding, Severity};
use crate::kith::decode::decode as decode_kith;
use crate::kith::detect::{detect, Detection};
use crate::model::{Body, Format, Message};
use crate::xml;
use crate::xsd::SchemaSet;

/// What to convert into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Fhir,
    /// KITH XML; `None` = the format the input came in when it is one kadgate writes, else the
    /// current version for the message kind (Henvisning 2.0, Epikrise 1.2, Dialogmelding 1.1).
    Kith(Option<Format>),
}

/// The KITH formats kadgate writes, by the names the CLI takes.
pub const KITH_FORMATS: &[(&str, Format)] = &[
    ("henvisning-1.1", Format::Henvisning11),
    ("henvisning-2.0", Format::Henvisning20),
    ("epikrise-1.2", Format::Epikrise12),
    ("dialogmelding-1.1", Format::Dialogmelding11),
];

/// A converted message.
#[derive(Debug)]
pub struct Converted {
    pub bytes: Vec<u8>,
    /// `json` or `xml`.
    pub extension: &'static str,
    /// The format written.
    pub format: Format,
    /// What decoding the input noticed, then what checking the output found.
    pub findings: Vec<Finding>,
    /// The output passed its check (XSD or R4) without an error.
    pub valid: bool,
}

/// Why a message could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the input is not readable: {0}")]
    Unreadable(String),
    #[error("the input holds no message kadgate reads ({0})")]
    NoMessage(String),
    #[error("{0}")]
    Encode(String),
}

/// Decode a KITH XML or FHIR JSON message (told apart by the first character) into the model. Also
/// how a stored message's model is obtained: from its raw bytes, with the current decoders.
pub fn read_message(bytes: &[u8], rules: &Rules) -> Result<(Message, Vec<Finding>), ConvertError> {
    if looks_like_json(bytes) {
        let parsed = fhir::json::read(bytes, &fhir::json::Limits::default());
        let Some(value) = parsed.value else {
            return Err(ConvertError::Unreadable(first_message(&parsed.findings)));
        };
        // A `$process-message` body may carry the message inside Parameters.
        let decoded = fhir::decode::decode(fhir::validate::message_bundle(&value));
        let mut findings = parsed.findings;
        findings.extend(decoded.findings);
        return match decoded.message {
            Some(m) => Ok((m, findings)),
            None => Err(ConvertError::NoMessage(first_message(&findings))),
        };
    }
    let doc = xml::scan(bytes, &rules.limits)
        .map_err(|e| ConvertError::Unreadable(e.finding.message.clone()))?;
    match detect(&doc.root) {
        Detection::Known(d) => {
            let decoded = decode_kith(&d);
            Ok((decoded.message, decoded.findings))
        }
        Detection::Unknown { name, .. } => Err(ConvertError::NoMessage(format!(
            "unsupported message kind: element {name}"
        ))),
        Detection::EmptyEnvelope => Err(ConvertError::NoMessage(
            "the envelope holds no KITH message".into(),
        )),
    }
}

/// Whether a body is JSON (a FHIR resource) rather than XML: its first non-blank character.
pub fn looks_like_json(bytes: &[u8]) -> bool {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    b.iter()
        .find(|c| !c.is_ascii_whitespace())
        .is_some_and(|c| *c == b'{' || *c == b'[')
}

fn first_message(findings: &[Finding]) -> String {
    findings
        .iter()
        .find(|f| f.severity == Severity::Error)
        .map(|f| format!("{}: {}", f.code, f.message))
        .unwrap_or_else(|| "no details".into())
}

/// The KITH format to write a message as.
pub fn kith_format(msg: &Message, wanted: Option<Format>) -> Result<Format, ConvertError> {
    if let Some(f) = wanted {
        return Ok(f);
    }
    let source = msg.header.format;
    if KITH_FORMATS.iter().any(|(_, f)| *f == source) {
        return Ok(source);
    }
    match &msg.body {
        Body::Referral(_) => Ok(Format::Henvisning20),
        Body::Epicrisis(_) => Ok(Format::Epikrise12),
        Body::Dialog(_) => Ok(Format::Dialogmelding11),
        Body::Receipt(_) => Err(ConvertError::Encode(
            "a receipt is not converted: an AppRec answers a KITH message, a response message a FHIR one".into(),
        )),
        Body::Plo(_) | Body::CareEvent(_) | Body::Opaque => Err(ConvertError::Encode(
            "kadgate converts referrals, epicrises and dialogue messages only".into(),
        )),
    }
}

/// Convert one message. `schemas` checks KITH output.
pub fn convert(
    bytes: &[u8],
    target: Target,
    rules: &Rules,
    schemas: &SchemaSet,
) -> Result<Converted, ConvertError> {
    let (msg, mut findings) = read_message(bytes, rules)?;
    match target {
        Target::Fhir => {
            let value =
                fhir::encode::encode(&msg).map_err(|e| ConvertError::Encode(e.to_string()))?;
            // R4 structure and identifiers; whether the patient is identified well enough is the
            // message's content, reported when it is received, not a property of the conversion.
            let out = fhir::validate::validate_with(&value, &fhir::validate::Options::r4());
            let valid = !out.iter().any(|f| f.severity == Severity::Error);
            findings.extend(out);
            let bytes = serde_json::to_vec_pretty(&value)
                .map_err(|e| ConvertError::Encode(e.to_string()))?;
            Ok(Converted {
                bytes,
                extension: "json",
                format: Format::FhirR4,
                findings,
                valid,
            })
        }
        Target::Kith(wanted) => {
            let format = kith_format(&msg, wanted)?;
            let bytes = crate::kith::encode::encode(&msg, format)
                .map_err(|e| ConvertError::Encode(e.to_string()))?;
            let report = schemas.validate(&bytes);
            let valid = report.schema_valid();
            findings.extend(report.findings);
            Ok(Converted {
                bytes,
                extension: "xml",
                format,
                findings,
                valid,
            })
        }
    }
}
