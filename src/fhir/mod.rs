//! HL7 FHIR R4 JSON: the second wire format on the canonical model.
//!
//! - [`decode`]  FHIR message / document Bundle (`serde_json::Value`) → [`crate::model::Message`] + findings
//! - [`encode`]  model → FHIR message / document Bundle; the `$process-message` response
//! - [`mapping`] what both directions share: systems, event codes, extension URLs, code tables, dates
//!
//! Invariants: KITH ↔ FHIR always goes through the model, never format to format. Nothing here does
//! I/O or validates against the R4 definitions (that is the validator's job); decoders never panic
//! and turn anything unreadable into a finding. The field-by-field mapping and every loss are in
//! `docs/mapping/fhir.md`.

pub mod decode;
pub mod encode;
pub mod mapping;
