//! The directory of parties: KAD units and their catchment municipalities, GP offices and GPs
//! (with the GP register: which GP a patient has on a date), legevakt, hospital departments, home
//! nursing per municipality, and postcodes → municipality.
//!
//! What it does: defines the party types, the [`Directory`] interface every lookup goes through,
//! a file-backed implementation for the demo and tests ([`FileDirectory`], TOML checked once with
//! every problem at once, schema in `schemas/registry.schema.json`), clients of NHN's GP register
//! and address register with the directory that asks them for GPs and parties and the file for
//! the rest ([`NhnDirectory`]), a caching wrapper ([`Cached`]), and [`open_directory`], which
//! builds the one the configuration's `[registry]` section names.
//! What it must NOT do: decide anything (routing is `crate::routing`), encode or send messages, or
//! put patient data (names, identity numbers) in errors or log lines. A register that cannot answer
//! is an error ([`RegistryError`]), never "not found".

mod cache;
mod file;
mod nhn;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::model::{Format, Ident, Organisation, Professional};

pub use cache::{CacheStats, Cached};
pub use file::{FileDirectory, RegistryFileError, DEMO_REGISTRY};
pub use nhn::{
    check_register_url, NhnClient, NhnDirectory, NhnSettings, PartyDetails, PatientGp,
    DEFAULT_KIND, EDI_FORMATS,
};

/// What kind of party an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartyKind {
    /// A municipal acute inpatient unit (kommunal akutt døgnenhet).
    KadUnit,
    /// A GP office (legekontor).
    GpOffice,
    /// A regular GP (fastlege), a person.
    Gp,
    /// An out-of-hours emergency service.
    Legevakt,
    /// A hospital department (e.g. the emergency department).
    HospitalDepartment,
    /// Municipal home nursing (hjemmesykepleie).
    HomeNursing,
    /// A municipality's office allocating health and care services (tildelingskontor).
    Intake,
}

impl PartyKind {
    /// The kebab-case word used in files and JSON.
    pub fn word(self) -> &'static str {
        match self {
            PartyKind::KadUnit => "kad-unit",
            PartyKind::GpOffice => "gp-office",
            PartyKind::Gp => "gp",
            PartyKind::Legevakt => "legevakt",
            PartyKind::HospitalDepartment => "hospital-department",
            PartyKind::HomeNursing => "home-nursing",
            PartyKind::Intake => "intake",
        }
    }
}

/// Where messages to a party are delivered. The transport layer reads this; it knows nothing of
/// message formats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Endpoint {
    /// HTTP(S) POST; the client certificate and key give mutual TLS.
    Http {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_cert: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_key: Option<PathBuf>,
        /// CA certificate(s) to trust for the server, instead of the system roots.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_cert: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// A drop folder: one file per message.
    Folder { dir: PathBuf },
}

/// A party messages can be addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub her_id: String,
    pub name: String,
    pub kind: PartyKind,
    /// The organisation the party belongs to (for MsgHead addressing): its name, HER-id and
    /// organisation number (ENH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_her_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_enh: Option<String>,
    /// HPR number, for a person (a GP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpr: Option<String>,
    /// 4-digit municipality number (kommunenummer) the party is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub municipality: Option<String>,
    /// Accepted formats, in order of preference.
    #[serde(default)]
    pub formats: Vec<Format>,
    /// Where to deliver; `None` for a person reached through the office (a GP) or a party kadgate
    /// only needs to name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
}

impl Party {
    /// The party as the canonical model's addressee.
    ///
    /// - A GP is a person: the office is the organisation (name, HER-id and ENH of `org_*`) and
    ///   the GP its `professional` (HER-id, HPR number); with no office known, a person alone.
    /// - Any other party that belongs to another organisation (`org_name` or an `org_her_id`
    ///   other than its own) is the sub-unit of that organisation: institution → department.
    /// - Otherwise the party is the organisation itself, carrying its HER-id and `org_enh`.
    pub fn organisation(&self) -> Organisation {
        let her = |id: &str| Ident::new(id.trim(), "HER");
        let org_idents = || {
            let mut v = Vec::new();
            if let Some(h) = self.org_her_id.as_deref() {
                v.push(her(h));
            }
            if let Some(e) = self.org_enh.as_deref() {
                v.push(Ident::new(e.trim(), "ENH"));
            }
            v
        };
        if self.kind == PartyKind::Gp {
            let mut idents = vec![her(&self.her_id)];
            if let Some(h) = self.hpr.as_deref() {
                idents.push(Ident::new(h.trim(), "HPR"));
            }
            return Organisation {
                name: self.org_name.clone(),
                idents: org_idents(),
                professional: Some(Professional {
                    full_name: Some(self.name.clone()),
                    idents,
                    ..Professional::default()
                }),
                ..Organisation::default()
            };
        }
        let own_her = self.her_id.trim();
        let belongs_elsewhere = self.org_name.is_some()
            || self
                .org_her_id
                .as_deref()
                .is_some_and(|h| h.trim() != own_her);
        if belongs_elsewhere {
            Organisation {
                name: self.org_name.clone(),
                idents: org_idents(),
                unit: Some(Box::new(Organisation {
                    name: Some(self.name.clone()),
                    idents: vec![her(own_her)],
                    ..Organisation::default()
                })),
                ..Organisation::default()
            }
        } else {
            let mut idents = vec![her(own_her)];
            if let Some(e) = self.org_enh.as_deref() {
                idents.push(Ident::new(e.trim(), "ENH"));
            }
            Organisation {
                name: Some(self.name.clone()),
                idents,
                ..Organisation::default()
            }
        }
    }

    /// The first of the party's formats that `offered` contains (the party's preference wins).
    pub fn preferred_format(&self, offered: &[Format]) -> Option<Format> {
        self.formats.iter().copied().find(|f| offered.contains(f))
    }
}

/// A KAD unit: the party, the municipalities it serves, its beds, and the unit to use when full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KadUnit {
    pub party: Party,
    /// 4-digit municipality numbers; several municipalities may share a unit.
    pub municipalities: Vec<String>,
    pub beds: u32,
    /// HER-id of the unit to use when this one is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative: Option<String>,
}

/// A patient's regular GP over a period (the GP register's answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpAssignment {
    pub gp: Party,
    /// The GP's office, when the directory knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office: Option<Party>,
    pub from: NaiveDate,
    /// Last day on the list; `None` = still on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDate>,
}

impl GpAssignment {
    /// Whether the assignment covers `day`.
    pub fn covers(&self, day: NaiveDate) -> bool {
        self.from <= day && self.to.is_none_or(|t| day <= t)
    }
}

/// A register could not answer. Never carries what was looked up (it may be an identity number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The register is down, timed out or refused.
    #[error("the {register} register is unavailable: {reason}")]
    Unavailable { register: String, reason: String },
    /// The register answered with something that cannot be read, or about something else than
    /// was asked.
    #[error("the {register} register gave an answer that cannot be read: {reason}")]
    BadAnswer { register: String, reason: String },
    /// The register refused the question: an identity number it says is not valid, or a request
    /// it does not take. Asking again will not help.
    #[error("the {register} register refused the lookup: {reason}")]
    Rejected { register: String, reason: String },
}

/// Lookups of parties. Implemented by [`FileDirectory`] (demo and tests) and [`NhnDirectory`]
/// (NHN's GP register and address register over a local directory); put a remote one behind
/// [`Cached`].
///
/// `Ok(None)` means the register answered and knows no such party; an error means it could not
/// answer. HER-ids and municipality numbers are matched as written, without surrounding spaces.
#[async_trait::async_trait]
pub trait Directory: Send + Sync {
    /// Every KAD unit.
    async fn kad_units(&self) -> Result<Vec<KadUnit>, RegistryError>;
    /// The KAD unit with this HER-id.
    async fn kad_unit(&self, her_id: &str) -> Result<Option<KadUnit>, RegistryError>;
    /// The KAD unit whose catchment includes the municipality.
    async fn unit_for_municipality(
        &self,
        kommunenr: &str,
    ) -> Result<Option<KadUnit>, RegistryError>;
    /// Any party (KAD units included) by HER-id.
    async fn party(&self, her_id: &str) -> Result<Option<Party>, RegistryError>;
    /// The patient's regular GP on a day (the GP register).
    async fn gp_for_patient(
        &self,
        nin: &str,
        on: NaiveDate,
    ) -> Result<Option<GpAssignment>, RegistryError>;
    /// The municipality's home nursing service.
    async fn home_nursing(&self, kommunenr: &str) -> Result<Option<Party>, RegistryError>;
    /// The municipality a postcode belongs to.
    async fn municipality_for_postcode(
        &self,
        postcode: &str,
    ) -> Result<Option<String>, RegistryError>;
}

/// Why the directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The local directory file cannot be read or has problems.
    #[error(transparent)]
    File(#[from] RegistryFileError),
    /// The NHN registers cannot be set up (URL, credentials, HTTP client).
    #[error("{0}")]
    Setup(String),
}

/// The directory the configuration names, behind [`Cached`] (`[registry] cache_ttl_s`):
///
/// - `[registry] kind = "file"`: the file `[admission] registry`;
/// - `kind = "nhn"`: [`NhnDirectory`] over that file, the password read from the environment
///   variable `password_env` names.
///
/// Relative paths in the file (drop folders, certificates) are resolved against the data
/// directory, and the drop-folder endpoints' folders are made (a failure is logged: delivery to
/// it will fail visibly).
pub fn open_directory(config: &crate::config::Config) -> Result<Arc<dyn Directory>, OpenError> {
    let local = FileDirectory::load_with_base(&config.admission.registry, &config.server.data_dir)?;
    for (_, endpoint) in local.endpoints() {
        if let Endpoint::Folder { dir } = endpoint {
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot create a drop-folder endpoint");
            }
        }
    }
    let r = &config.registry;
    let ttl = Duration::from_secs(r.cache_ttl_s);
    match r.kind {
        crate::config::RegistryKind::File => Ok(Arc::new(Cached::new(local, ttl))),
        crate::config::RegistryKind::Nhn => {
            let password = match r.password_env.as_deref() {
                Some(var) => Some(
                    std::env::var(var)
                        .ok()
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| {
                            OpenError::Setup(format!(
                                "[registry] password_env names {var}, which is not set"
                            ))
                        })?,
                ),
                None => None,
            };
            let client = NhnClient::new(NhnSettings {
                gp_register_url: r.gp_register_url.clone().unwrap_or_default(),
                address_register_url: r.address_register_url.clone().unwrap_or_default(),
                username: r.username.clone(),
                password,
                timeout: Duration::from_millis(r.timeout_ms),
            })?;
            tracing::info!(client = ?client, "directory: NHN's registers over the local file");
            Ok(Arc::new(Cached::new(NhnDirectory::new(client, local), ttl)))
        }
    }
}

/// A municipality number: exactly four ASCII digits.
pub fn valid_municipality(s: &str) -> bool {
    s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(kind: PartyKind) -> Party {
        Party {
            her_id: "990011".into(),
            name: "Lege, Test".into(),
            kind,
            org_name: None,
            org_her_id: None,
            org_enh: None,
            hpr: None,
            municipality: None,
            formats: vec![],
            endpoint: None,
        }
    }

    #[test]
    fn a_gp_is_the_professional_under_the_office() {
        let mut p = party(PartyKind::Gp);
        p.org_name = Some("Testbyen legekontor".into());
        p.org_her_id = Some("990001".into());
        p.org_enh = Some("990003009".into());
        p.hpr = Some("9144889".into());
        let o = p.organisation();
        assert_eq!(o.her_id(), Some("990001"));
        assert_eq!(o.org_number(), Some("990003009"));
        let prof = o.professional.as_ref().expect("the GP");
        assert_eq!(prof.her_id(), Some("990011"));
        assert_eq!(prof.hpr(), Some("9144889"));
        assert_eq!(o.leaf_her_id(), Some("990011"));
        assert!(o.unit.is_none());
    }

    #[test]
    fn a_gp_without_an_office_is_a_person_alone() {
        let o = party(PartyKind::Gp).organisation();
        assert!(o.idents.is_empty() && o.name.is_none());
        assert_eq!(o.leaf_her_id(), Some("990011"));
        assert!(o.is_identifiable());
    }

    #[test]
    fn a_department_sits_under_its_institution() {
        let mut p = party(PartyKind::HospitalDepartment);
        p.name = "Akuttmottak".into();
        p.org_name = Some("Testbyen sykehus HF".into());
        p.org_her_id = Some("990031".into());
        let o = p.organisation();
        assert_eq!(o.her_id(), Some("990031"));
        let unit = o.unit.as_ref().expect("the department");
        assert_eq!(unit.name.as_deref(), Some("Akuttmottak"));
        assert_eq!(o.leaf_her_id(), Some("990011"));
    }

    #[test]
    fn a_party_on_its_own_is_the_organisation() {
        let mut p = party(PartyKind::KadUnit);
        p.name = "Testbyen KAD".into();
        p.org_enh = Some("990001006".into());
        p.org_her_id = Some("990011".into()); // its own HER-id: still one level
        let o = p.organisation();
        assert!(o.unit.is_none() && o.professional.is_none());
        assert_eq!(o.her_id(), Some("990011"));
        assert_eq!(o.org_number(), Some("990001006"));
        assert_eq!(o.key().as_deref(), Some("HER:990011"));
    }

    #[test]
    fn preferred_format_follows_the_party() {
        let mut p = party(PartyKind::KadUnit);
        p.formats = vec![Format::Henvisning20, Format::FhirR4];
        assert_eq!(
            p.preferred_format(&[Format::FhirR4, Format::Henvisning20]),
            Some(Format::Henvisning20)
        );
        assert_eq!(p.preferred_format(&[Format::Henvisning11]), None);
    }

    #[test]
    fn assignment_periods_include_both_ends() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let a = GpAssignment {
            gp: party(PartyKind::Gp),
            office: None,
            from: d("2020-01-01"),
            to: Some(d("2026-03-01")),
        };
        assert!(a.covers(d("2020-01-01")) && a.covers(d("2026-03-01")));
        assert!(!a.covers(d("2019-12-31")) && !a.covers(d("2026-03-02")));
    }

    #[test]
    fn municipality_numbers_are_four_digits() {
        assert!(valid_municipality("0301"));
        for bad in ["301", "03011", "03a1", " 301", ""] {
            assert!(!valid_municipality(bad), "{bad:?}");
        }
    }
}
