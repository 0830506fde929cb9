//! kadgate: a gateway for Norwegian health messages between the people who refer patients to a
//! municipal acute inpatient unit (KAD / ØHD) and the unit itself.
//!
//! Code map (see ARCHITECTURE.md for the whole picture and the invariants):
//! - [`finding`]  every problem found in an input, with a stable code
//! - [`ident`]    Norwegian identifiers: fødselsnummer, D/H/FH-numbers, HER, HPR, org numbers
//! - [`model`]    the canonical model every format decodes into and encodes from
//! - [`xml`]      the hardened XML reader (size/depth caps, no DTD, no foreign entities)
//! - [`xsd`]      libxml2 XSD validation: the one module allowed `unsafe`
//! - [`fhir`]     FHIR R4 JSON: hardened reader, R4 definitions, validation, decoder, encoder,
//!   the `$process-message` decision
//! - [`kith`]     KITH messages: kind detection, decoders, encoders, header semantics, AppRec encoder
//! - [`convert`]  KITH ↔ FHIR through the model, output checked (`kadgate convert`)
//! - [`check`]    the whole check of one message → findings + the receipt decision (no I/O)
//! - [`config`]   TOML → typed config, checked once, every problem at once
//! - [`clock`]    "now" for everything that schedules (real, or manual in tests)
//! - [`rules`]    admission rule sets (TOML, versioned) and the decision on a referral, with NEWS2
//! - [`reply`]    the business reply telling a referrer the admission decision (Dialogmelding 1.1 / FHIR)
//! - [`delivery`] transports (HTTP(S) with mutual TLS, drop folder), retry backoff, circuit breakers
//! - [`registry`] the directory of parties (KAD units, GPs, GP register, …): file-backed, cached
//! - [`routing`]  the routing choice: patient's municipality → KAD unit, capacity, alternative
//! - [`admission`] route, decide and plan a received referral (decision, outbox rows)
//! - [`store`]    the `Store` trait and its SQLite implementation (group commit)
//! - [`pipeline`] receive → check → store → receipt, shared by every source
//! - [`stay`]     stays (referral → admitted → discharged), epicrisis fan-out, deadlines, audited views
//! - [`http`]     the HTTP API (axum)
//! - [`dropfolder`] the file-drop source
//! - [`server`]   wiring: store + schemas + listener + shutdown
#![forbid(clippy::undocumented_unsafe_blocks)]

pub mod admission;
pub mod check;
pub mod clock;
pub mod config;
pub mod conformance;
pub mod convert;
pub mod delivery;
pub mod dropfolder;
pub mod fhir;
pub mod finding;
pub mod http;
pub mod ident;
pub mod kith;
pub mod model;
pub mod pipeline;
pub mod registry;
pub mod reply;
pub mod report;
pub mod routing;
pub mod rules;
pub mod server;
pub mod stay;
pub mod store;
pub mod xml;
pub mod xsd;
