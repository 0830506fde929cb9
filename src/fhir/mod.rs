//! FHIR R4 input: the second wire format next to KITH XML (ARCHITECTURE.md, "Bird's-eye view").
//!
//! A FHIR message is a JSON `Bundle` (type `message`, `MessageHeader` first) or a document `Bundle`
//! (type `document`, `Composition` first), optionally a document inside a message. On the way in it
//! passes, in this order:
//!
//! ```text
//!  bytes ─→ json::read ─→ validate (structure against r4, invariants, bindings, references,
//!           (caps, dups)           Norwegian identifiers, patient identification) ─→ findings
//!                                  └─→ operation_outcome(findings)   (the FHIR answer's body)
//! ```
//!
//! - [`json`]     the hardened JSON reader: size/depth/value caps, duplicate keys, UTF-8, numbers;
//! - [`r4`]       the R4 structure definitions (generated from the oracle's package, embedded; no Node
//!   at run time), indexed by hash once per process;
//! - [`validate`] every finding at once with FHIRPath-style paths (`Bundle.entry[1].resource.status`),
//!   the [`validate::FhirReport`] the HTTP endpoint and CLI use, and the OperationOutcome builder.
//!
//! Decoding into the canonical model and encoding from it live next to these modules and read a value
//! only after `validate` found no error. This side must not: do I/O, read the clock, or put patient data
//! into a finding (identity numbers and names are never quoted).

pub mod json;
pub mod r4;
pub mod validate;
