//! Findings: every problem kadgate reports about an input, with a stable code.
//!
//! A finding is data, not an error: validation collects *all* findings for a message and the
//! pipeline decides afterwards what they mean (reject, accept with a note, ...). The `code` strings
//! are a public contract: they appear in `kadgate validate --json`, in stored findings, in AppRec
//! `OT` texts and (for FHIR input) in OperationOutcome issues. Never rename one; add new ones.

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never changes the outcome.
    Info,
    /// A deviation kadgate tolerated (lenient policy, quality problems the rules forbid rejecting for).
    Warning,
    /// The message (or part of it) cannot be processed as it is.
    Error,
}

/// One problem found in one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable, format-neutral code, e.g. `xml.not-well-formed`, `patient.insufficient-identification`.
    pub code: String,
    pub severity: Severity,
    /// Where: an element path for XML (`/MsgHead/MsgInfo/MsgId`), a FHIRPath-style path for FHIR.
    pub path: String,
    /// Plain English. Must never contain patient data (names, identity numbers, clinical text).
    pub message: String,
}

impl Finding {
    pub fn new(
        code: &str,
        severity: Severity,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            code: code.to_string(),
            severity,
            path: path.into(),
            message: message.into(),
        }
    }
    pub fn error(code: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Error, path, message)
    }
    pub fn warning(code: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Warning, path, message)
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The catalogue of stable finding codes. Grouped by the layer that raises them.
pub mod codes {
    // --- transport / scanning (hardened XML reader) ---
    pub const XML_NOT_WELL_FORMED: &str = "xml.not-well-formed";
    pub const XML_DOCTYPE: &str = "xml.doctype-forbidden";
    pub const XML_ENTITY: &str = "xml.entity-forbidden";
    pub const XML_TOO_DEEP: &str = "xml.too-deep";
    pub const XML_TOO_MANY_ELEMENTS: &str = "xml.too-many-elements";
    pub const XML_TOO_LARGE: &str = "xml.too-large";
    pub const XML_ENCODING: &str = "xml.encoding-unsupported";
    pub const XML_EMPTY: &str = "xml.empty";
    // --- transport / scanning (hardened JSON reader, FHIR input) ---
    pub const JSON_NOT_WELL_FORMED: &str = "json.not-well-formed";
    pub const JSON_TOO_LARGE: &str = "json.too-large";
    pub const JSON_TOO_DEEP: &str = "json.too-deep";
    pub const JSON_TOO_MANY_VALUES: &str = "json.too-many-values";
    pub const JSON_DUPLICATE_KEY: &str = "json.duplicate-key";
    pub const JSON_NUMBER_OUT_OF_RANGE: &str = "json.number-out-of-range";
    pub const JSON_NOT_UTF8: &str = "json.not-utf8";
    pub const JSON_BYTE_ORDER_MARK: &str = "json.byte-order-mark";
    pub const JSON_EMPTY: &str = "json.empty";
    // --- schema ---
    pub const XSD_INVALID: &str = "xsd.invalid";
    pub const XSD_NO_SCHEMA: &str = "xsd.no-schema";
    // --- message kind ---
    pub const MSG_UNSUPPORTED: &str = "message.unsupported-kind";
    pub const MSG_ENVELOPE_EMPTY: &str = "message.envelope-empty";
    // --- FHIR R4 structure (src/fhir/validate.rs) ---
    pub const FHIR_NOT_A_RESOURCE: &str = "fhir.not-a-resource";
    pub const FHIR_UNKNOWN_RESOURCE_TYPE: &str = "fhir.unknown-resource-type";
    pub const FHIR_UNKNOWN_ELEMENT: &str = "fhir.unknown-element";
    pub const FHIR_REQUIRED: &str = "fhir.required";
    pub const FHIR_CARDINALITY: &str = "fhir.cardinality";
    pub const FHIR_CHOICE_CONFLICT: &str = "fhir.choice-conflict";
    pub const FHIR_TYPE: &str = "fhir.type";
    pub const FHIR_VALUE_FORMAT: &str = "fhir.value-format";
    pub const FHIR_EMPTY: &str = "fhir.empty";
    pub const FHIR_CODE_NOT_IN_VALUESET: &str = "fhir.code-not-in-valueset";
    pub const FHIR_INVARIANT: &str = "fhir.invariant";
    // --- FHIR R4 semantics: messages, documents, references, Norwegian identifiers ---
    pub const FHIR_REFERENCE_UNRESOLVED: &str = "fhir.reference-unresolved";
    pub const FHIR_MESSAGE_FOCUS_MISSING: &str = "fhir.message-focus-missing";
    pub const FHIR_IDENTIFIER_INVALID: &str = "fhir.identifier-invalid";
    pub const FHIR_IDENTIFIER_SYSTEM_DEPRECATED: &str = "fhir.identifier-system-deprecated";
    // --- header semantics ---
    pub const MSGID_MISSING: &str = "header.msgid-missing";
    pub const MSGID_NOT_UUID: &str = "header.msgid-not-uuid";
    pub const SENDER_MISSING: &str = "header.sender-unidentified";
    pub const RECEIVER_MISSING: &str = "header.receiver-unidentified";
    pub const HER_ID_INVALID: &str = "header.her-id-invalid";
    pub const RECEIVER_UNKNOWN_SERVICE: &str = "header.receiver-unknown-service";
    pub const RECEIVER_NOT_OURS: &str = "header.receiver-not-served";
    pub const GENDATE_INVALID: &str = "header.gendate-invalid";
    // --- patient ---
    pub const PATIENT_MISSING: &str = "patient.missing";
    pub const PATIENT_INSUFFICIENT: &str = "patient.insufficient-identification";
    pub const PATIENT_ID_INVALID: &str = "patient.identifier-invalid";
    pub const PATIENT_NAME_MISSING: &str = "patient.name-missing";
    pub const PATIENT_UNKNOWN: &str = "patient.unknown-to-receiver";
    pub const EMERGENCY_EXCEPTION: &str = "patient.emergency-referral-exception";
    // --- known real-world deviations (FACTS §11), tolerated under the lenient policy ---
    pub const LENIENT_TOLERATED: &str = "lenient.schema-deviation-tolerated";
    // --- receipts ---
    pub const APPREC_UNCORRELATED: &str = "apprec.uncorrelated";
    // --- FHIR decoding (src/fhir/decode.rs) ---
    /// The input is not a FHIR Bundle at all.
    pub const FHIR_NOT_A_BUNDLE: &str = "fhir.not-a-bundle";
    /// A Bundle of a type kadgate does not read (only `message` and `document`).
    pub const FHIR_BUNDLE_TYPE: &str = "fhir.bundle-type-unsupported";
    /// A message Bundle whose first entry is not a MessageHeader.
    pub const FHIR_HEADER_MISSING: &str = "fhir.messageheader-missing";
    /// A document Bundle whose first entry is not a Composition.
    pub const FHIR_COMPOSITION_MISSING: &str = "fhir.composition-missing";
    /// The MessageHeader names no focus, or the focus is not in the Bundle.
    pub const FHIR_FOCUS_MISSING: &str = "fhir.focus-missing";
    /// The focus is a resource kadgate does not read as a message body.
    pub const FHIR_FOCUS_UNSUPPORTED: &str = "fhir.focus-unsupported";
    /// An element of the wrong JSON type or an unreadable value; the element is not read.
    pub const FHIR_VALUE_INVALID: &str = "fhir.value-invalid";
    /// `MessageHeader.response.code` outside ok / transient-error / fatal-error; read as rejected.
    pub const FHIR_RESPONSE_CODE: &str = "fhir.response-code-unknown";
    /// A `transient-error` response: read as rejected, the sender may try again.
    pub const FHIR_RESPONSE_TRANSIENT: &str = "fhir.response-transient";
    /// `MessageHeader` has neither `eventCoding` nor `eventUri`.
    pub const FHIR_EVENT_MISSING: &str = "fhir.event-missing";
    // --- FHIR messaging (src/fhir/check.rs, the pipeline) ---
    /// `$process-message` got something other than a message Bundle (or Parameters carrying one).
    pub const FHIR_NOT_A_MESSAGE: &str = "fhir.not-a-message";
    /// A MessageHeader.id the same sender already used for a message with different content.
    pub const FHIR_MESSAGE_ID_REUSED: &str = "fhir.message-id-reused";
}
