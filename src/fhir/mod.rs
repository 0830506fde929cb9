//! HL7 FHIR R4 JSON: the second wire format next to KITH XML, on the same canonical model
//! (ARCHITECTURE.md, "Bird's-eye view").
//!
//! A FHIR message is a JSON `Bundle` (type `message`, `MessageHeader` first) or a document `Bundle`
//! (type `document`, `Composition` first), optionally a document inside a message. On the way in it
//! passes, in this order:
//!
//! ```text
//!  bytes ─→ json::read ─→ validate (structure against r4, invariants, bindings, references,
//!           (caps, dups)           Norwegian identifiers, patient identification) ─→ findings
//!                  └─→ decode ─→ model::Message ─→ check (addressing, response code)
//!  model ─→ encode ─→ message / document Bundle; the `$process-message` response
//! ```
//!
//! - [`json`]     the hardened JSON reader: size/depth/value caps, duplicate keys, UTF-8, numbers;
//! - [`r4`]       the R4 structure definitions (generated from the oracle's package, embedded; no Node
//!   at run time), indexed by hash once per process;
//! - [`validate`] every finding at once with FHIRPath-style paths (`Bundle.entry[1].resource.status`),
//!   the [`validate::FhirReport`] the HTTP endpoint and CLI use, and the OperationOutcome builder;
//! - [`decode`]   FHIR message / document Bundle → [`crate::model::Message`] + findings;
//! - [`encode`]   model → FHIR message / document Bundle; the `$process-message` response;
//! - [`mapping`]  what both directions share: systems, event codes, extension URLs, code tables, dates;
//! - [`check`]    the decision for one `$process-message` request (validate + decode + addressing).
//!
//! Invariants: KITH ↔ FHIR always goes through the model, never format to format. Nothing here does
//! I/O, reads the clock, or puts patient data into a finding (identity numbers and names are never
//! quoted). Decoders never panic and turn anything unreadable into a finding. The field-by-field
//! mapping and every loss are in `docs/mapping.md`.

pub mod check;
pub mod decode;
pub mod encode;
pub mod forward;
pub mod json;
pub mod mapping;
pub mod r4;
pub mod validate;
