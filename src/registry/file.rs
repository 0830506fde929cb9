//! The file-backed directory: a TOML file (schema `schemas/registry.schema.json`) read and checked
//! once, then answered from memory.
//!
//! Every problem is reported at once with its line, as `config` and `rules` do: unknown keys,
//! wrong types, HER-ids that are not numbers, municipality numbers that are not four digits, a
//! municipality served by two units, an `alternative` that names no unit, GP-list identity numbers
//! that fail their check digits, malformed endpoints, format names kadgate does not know.
//! Problems about GP-list patients name the entry (`gp_lists[0].patients[3]`), never the identity
//! number. Relative paths (drop folders, certificates) are relative to the file's folder when
//! loaded from a file ([`FileDirectory::load`]); [`FileDirectory::parse`] leaves them as written
//! and [`FileDirectory::with_base`] resolves them against any folder (the demo uses the data
//! directory).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;

use super::{
    valid_municipality, Directory, Endpoint, GpAssignment, KadUnit, Party, PartyKind, RegistryError,
};
use crate::config::{
    de_one, parse_toml, place_problems, problem, unknown_top_keys, ConfigError, Problem,
};
use crate::ident::{parse_person_number, valid_her_id, valid_org_number};
use crate::model::Format;

/// The demo directory (`fixtures/demo/registry.toml`): synthetic parties only.
pub const DEMO_REGISTRY: &str = include_str!("../../fixtures/demo/registry.toml");

/// All problems of a directory file (the same shape as a config file's).
pub type RegistryFileError = ConfigError;

/// Longest HTTP timeout an endpoint may ask for, in milliseconds.
const MAX_TIMEOUT_MS: u64 = 600_000;

const TOP_KEYS: [&str; 5] = ["title", "kad_units", "parties", "gp_lists", "postcodes"];

/// One `[[kad_units]]` or `[[parties]]` entry as written. The two share one shape so that a key in
/// the wrong section gets a precise message rather than "unknown key".
#[derive(Debug, Deserialize)]
struct RawEntry {
    her_id: String,
    name: String,
    #[serde(default)]
    kind: Option<PartyKind>,
    #[serde(default)]
    org_name: Option<String>,
    #[serde(default)]
    org_her_id: Option<String>,
    #[serde(default)]
    org_enh: Option<String>,
    #[serde(default)]
    hpr: Option<String>,
    #[serde(default)]
    municipality: Option<String>,
    #[serde(default)]
    formats: Vec<Format>,
    #[serde(default)]
    endpoint: Option<RawEndpoint>,
    // KAD units only.
    #[serde(default)]
    municipalities: Option<Vec<String>>,
    #[serde(default)]
    beds: Option<u32>,
    #[serde(default)]
    alternative: Option<String>,
}

/// An endpoint as written: `url` (HTTP POST, TLS options) or `folder` (drop folder).
#[derive(Debug, Deserialize)]
struct RawEndpoint {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    folder: Option<PathBuf>,
    #[serde(default)]
    client_cert: Option<PathBuf>,
    #[serde(default)]
    client_key: Option<PathBuf>,
    #[serde(default)]
    ca_cert: Option<PathBuf>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// A GP's list. No `Debug`: it holds identity numbers.
#[derive(Deserialize)]
struct RawGpList {
    gp: String,
    #[serde(default)]
    patients: Vec<RawListing>,
}

/// One patient on a GP's list. Dates are TOML dates or `YYYY-MM-DD` strings. `nin` is read as
/// any value so that a wrong type is reported without serde quoting the number.
#[derive(Deserialize)]
struct RawListing {
    nin: toml::Value,
    from: toml::Value,
    #[serde(default)]
    to: Option<toml::Value>,
}

/// A patient's place on a GP's list.
#[derive(Clone)]
struct Listing {
    gp: String,
    from: NaiveDate,
    to: Option<NaiveDate>,
    /// Where it was written (`gp_lists[i].patients[j]`), for overlap problems.
    at: String,
}

/// The directory read from a file. Its `Debug` shows counts only (the GP lists hold identity
/// numbers).
#[derive(Clone, Default)]
pub struct FileDirectory {
    title: Option<String>,
    units: Vec<KadUnit>,
    unit_by_her: HashMap<String, usize>,
    unit_by_municipality: HashMap<String, usize>,
    parties: HashMap<String, Party>,
    home_nursing: HashMap<String, String>,
    postcodes: HashMap<String, String>,
    gp_lists: HashMap<String, Vec<Listing>>,
}

impl std::fmt::Debug for FileDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDirectory")
            .field("title", &self.title)
            .field("kad_units", &self.units.len())
            .field("parties", &self.parties.len())
            .field("postcodes", &self.postcodes.len())
            .field("listed_patients", &self.gp_lists.len())
            .finish()
    }
}

/// Which section an entry is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Units,
    Parties,
}

impl FileDirectory {
    /// The embedded demo directory, paths as written (relative: resolve with [`Self::with_base`]).
    pub fn demo() -> FileDirectory {
        FileDirectory::parse(DEMO_REGISTRY, "embedded demo registry")
            .expect("the embedded demo registry is valid (tested)")
    }

    /// Read and check a directory file; relative paths become relative to the file's folder.
    pub fn load(path: &Path) -> Result<FileDirectory, RegistryFileError> {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        FileDirectory::load_with_base(path, &base)
    }

    /// Read and check a directory file; relative paths become relative to `base` (the server
    /// resolves them against its data directory).
    pub fn load_with_base(path: &Path, base: &Path) -> Result<FileDirectory, RegistryFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            problems: vec![problem("(file)", format!("cannot read: {e}"))],
        })?;
        Ok(FileDirectory::parse(&text, &name)?.with_base(base))
    }

    /// Parse and check a directory text; every problem is reported, each with its line. Paths are
    /// kept as written.
    pub fn parse(text: &str, source_name: &str) -> Result<FileDirectory, RegistryFileError> {
        let fail = |problems: Vec<Problem>| ConfigError {
            source_name: source_name.to_string(),
            problems,
        };
        let (doc, value) = parse_toml(text).map_err(|p| fail(vec![p]))?;
        let mut problems = Vec::new();
        unknown_top_keys(&value, &TOP_KEYS, &mut problems);
        let mut dir = FileDirectory {
            title: match value.get("title") {
                None => None,
                Some(toml::Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    problems.push(problem("title", "must be a string"));
                    None
                }
            },
            ..FileDirectory::default()
        };
        // Where each HER-id was first defined, for duplicates.
        let mut defined: HashMap<String, String> = HashMap::new();
        for (i, raw) in tables::<RawEntry>(&value, "kad_units", &mut problems) {
            let at = format!("kad_units[{i}]");
            let unit = check_unit(raw, &at, &mut problems);
            dir.add_unit(unit, &at, &mut defined, &mut problems);
        }
        for (i, raw) in tables::<RawEntry>(&value, "parties", &mut problems) {
            let at = format!("parties[{i}]");
            let party = check_entry(raw, &at, Section::Parties, &mut problems);
            dir.add_party(party, &at, &mut defined, &mut problems);
        }
        dir.check_alternatives(&mut problems);
        if let Some(v) = value.get("postcodes") {
            if let Some(map) =
                de_one::<BTreeMap<String, String>>(v.clone(), "postcodes", &mut problems)
            {
                dir.add_postcodes(map, &mut problems);
            }
        }
        let lists = tables::<RawGpList>(&value, "gp_lists", &mut problems);
        for (i, raw) in lists {
            dir.add_gp_list(raw, i, &mut problems);
        }
        dir.check_overlaps(&mut problems);

        for p in problems.iter_mut() {
            if p.line.is_none() {
                p.line = locate(&doc, text, &p.path);
            }
        }
        place_problems(&doc, text, &mut problems);
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        Ok(dir)
    }

    /// Resolve relative endpoint paths (drop folders, certificates) against `base`.
    pub fn with_base(mut self, base: &Path) -> FileDirectory {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let endpoints = self
            .units
            .iter_mut()
            .map(|u| &mut u.party)
            .chain(self.parties.values_mut())
            .filter_map(|p| p.endpoint.as_mut());
        for e in endpoints {
            match e {
                Endpoint::Folder { dir } => fix(dir),
                Endpoint::Http {
                    client_cert,
                    client_key,
                    ca_cert,
                    ..
                } => {
                    for p in [client_cert, client_key, ca_cert].into_iter().flatten() {
                        fix(p);
                    }
                }
            }
        }
        self
    }

    /// The file's `title`, if any.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Every party with an endpoint (KAD units first), e.g. to create drop folders at start.
    pub fn endpoints(&self) -> Vec<(&Party, &Endpoint)> {
        let mut out: Vec<(&Party, &Endpoint)> = self
            .units
            .iter()
            .map(|u| &u.party)
            .filter_map(|p| p.endpoint.as_ref().map(|e| (p, e)))
            .collect();
        let mut rest: Vec<(&Party, &Endpoint)> = self
            .parties
            .values()
            .filter_map(|p| p.endpoint.as_ref().map(|e| (p, e)))
            .collect();
        rest.sort_by(|a, b| a.0.her_id.cmp(&b.0.her_id));
        out.extend(rest);
        out
    }

    fn define(
        defined: &mut HashMap<String, String>,
        her: &str,
        at: &str,
        problems: &mut Vec<Problem>,
    ) -> bool {
        if let Some(first) = defined.get(her) {
            problems.push(problem(
                format!("{at}.her_id"),
                format!("HER-id {her} is already used by {first}"),
            ));
            return false;
        }
        defined.insert(her.to_string(), at.to_string());
        true
    }

    fn add_unit(
        &mut self,
        unit: KadUnit,
        at: &str,
        defined: &mut HashMap<String, String>,
        problems: &mut Vec<Problem>,
    ) {
        if !Self::define(defined, &unit.party.her_id, at, problems) {
            return;
        }
        let idx = self.units.len();
        for (n, m) in unit.municipalities.iter().enumerate() {
            if let Some(&other) = self.unit_by_municipality.get(m) {
                let path = format!("{at}.municipalities[{n}]");
                let msg = if other == idx {
                    format!("municipality {m} is listed twice")
                } else {
                    format!(
                        "municipality {m} is already served by {} (kad_units[{other}]); a municipality has one unit",
                        self.units[other].party.name
                    )
                };
                problems.push(problem(path, msg));
            } else {
                self.unit_by_municipality.insert(m.clone(), idx);
            }
        }
        self.unit_by_her.insert(unit.party.her_id.clone(), idx);
        self.units.push(unit);
    }

    fn add_party(
        &mut self,
        party: Party,
        at: &str,
        defined: &mut HashMap<String, String>,
        problems: &mut Vec<Problem>,
    ) {
        if !Self::define(defined, &party.her_id, at, problems) {
            return;
        }
        if party.kind == PartyKind::HomeNursing {
            match party.municipality.as_deref() {
                None => problems.push(problem(
                    format!("{at}.kind"),
                    "home nursing needs the `municipality` it serves",
                )),
                Some(m) => {
                    if let Some(first) = self.home_nursing.get(m) {
                        problems.push(problem(
                            format!("{at}.municipality"),
                            format!("municipality {m} already has home nursing (HER-id {first})"),
                        ));
                    } else {
                        self.home_nursing
                            .insert(m.to_string(), party.her_id.clone());
                    }
                }
            }
        }
        self.parties.insert(party.her_id.clone(), party);
    }

    fn check_alternatives(&self, problems: &mut Vec<Problem>) {
        for (i, u) in self.units.iter().enumerate() {
            let Some(alt) = u.alternative.as_deref() else {
                continue;
            };
            let at = format!("kad_units[{i}].alternative");
            if alt == u.party.her_id {
                problems.push(problem(at, "a unit cannot be its own alternative"));
            } else if !self.unit_by_her.contains_key(alt) {
                let what = if self.parties.contains_key(alt) {
                    format!("HER-id {alt} is not a KAD unit (the alternative must be one)")
                } else {
                    format!("HER-id {alt} names no KAD unit in this file")
                };
                problems.push(problem(at, what));
            }
        }
    }

    fn add_postcodes(&mut self, map: BTreeMap<String, String>, problems: &mut Vec<Problem>) {
        for (code, municipality) in map {
            let at = format!("postcodes.{code}");
            let mut ok = true;
            if !(code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit())) {
                problems.push(problem(
                    &at,
                    format!("postcode {code:?} is not four digits"),
                ));
                ok = false;
            }
            if !valid_municipality(&municipality) {
                problems.push(problem(
                    &at,
                    format!("{municipality:?} is not a municipality number (four digits)"),
                ));
                ok = false;
            }
            if ok {
                self.postcodes.insert(code, municipality);
            }
        }
    }

    fn add_gp_list(&mut self, raw: RawGpList, i: usize, problems: &mut Vec<Problem>) {
        let at = format!("gp_lists[{i}]");
        let gp = raw.gp.trim().to_string();
        match self.parties.get(&gp) {
            Some(p) if p.kind == PartyKind::Gp => {}
            Some(p) => problems.push(problem(
                format!("{at}.gp"),
                format!("HER-id {gp} is a {}, not a gp", p.kind.word()),
            )),
            None if self.unit_by_her.contains_key(&gp) => problems.push(problem(
                format!("{at}.gp"),
                format!("HER-id {gp} is a KAD unit, not a gp"),
            )),
            None => problems.push(problem(
                format!("{at}.gp"),
                format!("HER-id {gp} names no party of kind gp in this file"),
            )),
        }
        for (j, l) in raw.patients.into_iter().enumerate() {
            let pat = format!("{at}.patients[{j}]");
            let Some(nin) = l.nin.as_str().map(|n| n.trim().to_string()) else {
                problems.push(problem(
                    format!("{pat}.nin"),
                    "must be a string (the identity number in quotes)",
                ));
                continue;
            };
            if let Err(e) = parse_person_number(&nin) {
                // Never the number itself: only where it is and what is wrong.
                problems.push(problem(
                    format!("{pat}.nin"),
                    format!("not a valid identity number: {e}"),
                ));
                continue;
            }
            let from = match date(&l.from) {
                Ok(d) => Some(d),
                Err(m) => {
                    problems.push(problem(format!("{pat}.from"), m));
                    None
                }
            };
            let to = match l.to.as_ref().map(date) {
                None => Ok(None),
                Some(Ok(d)) => Ok(Some(d)),
                Some(Err(m)) => {
                    problems.push(problem(format!("{pat}.to"), m));
                    Err(())
                }
            };
            let (Some(from), Ok(to)) = (from, to) else {
                continue;
            };
            if to.is_some_and(|t| t < from) {
                problems.push(problem(format!("{pat}.to"), "`to` is before `from`"));
                continue;
            }
            self.gp_lists.entry(nin).or_default().push(Listing {
                gp: gp.clone(),
                from,
                to,
                at: pat,
            });
        }
    }

    /// A patient has one regular GP at a time: periods on lists must not overlap.
    fn check_overlaps(&mut self, problems: &mut Vec<Problem>) {
        let mut found = Vec::new();
        for listings in self.gp_lists.values_mut() {
            listings.sort_by_key(|l| l.from);
            for w in listings.windows(2) {
                if w[0].to.is_none_or(|t| w[1].from <= t) {
                    found.push(problem(
                        w[1].at.clone(),
                        format!(
                            "the patient is also on a GP list at {} for an overlapping period",
                            w[0].at
                        ),
                    ));
                }
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        problems.extend(found);
    }

    fn party_any(&self, her: &str) -> Option<&Party> {
        self.parties.get(her).or_else(|| {
            self.unit_by_her
                .get(her)
                .and_then(|&i| self.units.get(i))
                .map(|u| &u.party)
        })
    }
}

/// The elements of an array of tables `key`, each deserialized on its own so that one bad entry
/// does not hide the others.
fn tables<T: serde::de::DeserializeOwned>(
    value: &toml::Table,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(usize, T)> {
    match value.get(key) {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                de_one::<T>(item.clone(), &format!("{key}[{i}]"), problems).map(|x| (i, x))
            })
            .collect(),
        Some(_) => {
            problems.push(problem(
                key,
                format!("must be an array of tables ([[{key}]])"),
            ));
            Vec::new()
        }
    }
}

fn date(v: &toml::Value) -> Result<NaiveDate, String> {
    let text = match v {
        toml::Value::String(s) => s.trim().to_string(),
        toml::Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => d.to_string(),
        _ => return Err("must be a date (YYYY-MM-DD)".into()),
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"))
}

fn check_her(v: &str, path: String, problems: &mut Vec<Problem>) -> bool {
    let ok = valid_her_id(v) && v.trim() == v;
    if !ok {
        problems.push(problem(
            path,
            format!("{v:?} is not a HER-id (a positive integer, digits only)"),
        ));
    }
    ok
}

fn check_municipality(v: &str, path: String, problems: &mut Vec<Problem>) -> bool {
    let ok = valid_municipality(v);
    if !ok {
        problems.push(problem(
            path,
            format!("{v:?} is not a municipality number (four digits, e.g. \"0301\")"),
        ));
    }
    ok
}

/// Formats a party can be addressed in: business messages, not envelopes or receipts.
fn addressable(f: Format) -> bool {
    !matches!(f, Format::MsgHead12 | Format::AppRec10 | Format::AppRec11)
}

/// A `[[kad_units]]` entry, checked. Built even when it has problems, so that the checks across
/// entries (duplicates, alternatives) still see it; the file is rejected anyway.
fn check_unit(raw: RawEntry, at: &str, problems: &mut Vec<Problem>) -> KadUnit {
    let municipalities = raw.municipalities.clone();
    let beds = raw.beds;
    let alternative = raw.alternative.clone();
    let party = check_entry(raw, at, Section::Units, problems);
    let municipalities = match municipalities {
        Some(list) => list,
        None => {
            problems.push(problem(
                format!("{at}.municipalities"),
                "missing (required): the municipality numbers the unit serves",
            ));
            Vec::new()
        }
    };
    for (n, m) in municipalities.iter().enumerate() {
        check_municipality(m, format!("{at}.municipalities[{n}]"), problems);
    }
    let beds = match beds {
        Some(0) => {
            problems.push(problem(format!("{at}.beds"), "a unit has at least one bed"));
            0
        }
        Some(b) => b,
        None => {
            problems.push(problem(format!("{at}.beds"), "missing (required)"));
            0
        }
    };
    if let Some(a) = alternative.as_deref() {
        check_her(a, format!("{at}.alternative"), problems);
    }
    KadUnit {
        party,
        municipalities,
        beds,
        alternative,
    }
}

/// A party entry, checked; built even when it has problems (see [`check_unit`]).
fn check_entry(raw: RawEntry, at: &str, section: Section, problems: &mut Vec<Problem>) -> Party {
    let kind = match (section, raw.kind) {
        (Section::Units, None | Some(PartyKind::KadUnit)) => PartyKind::KadUnit,
        (Section::Units, Some(k)) => {
            problems.push(problem(
                format!("{at}.kind"),
                format!("a {} belongs under [[parties]]", k.word()),
            ));
            k
        }
        (Section::Parties, Some(PartyKind::KadUnit)) => {
            problems.push(problem(
                format!("{at}.kind"),
                "KAD units belong under [[kad_units]] (with municipalities and beds)",
            ));
            PartyKind::KadUnit
        }
        (Section::Parties, Some(k)) => k,
        (Section::Parties, None) => {
            problems.push(problem(
                format!("{at}.kind"),
                "missing (required): gp-office, gp, legevakt, hospital-department, home-nursing or intake",
            ));
            PartyKind::Intake
        }
    };
    if section == Section::Parties {
        for (key, given) in [
            ("municipalities", raw.municipalities.is_some()),
            ("beds", raw.beds.is_some()),
            ("alternative", raw.alternative.is_some()),
        ] {
            if given {
                problems.push(problem(
                    format!("{at}.{key}"),
                    "belongs to [[kad_units]] only",
                ));
            }
        }
    }
    check_her(&raw.her_id, format!("{at}.her_id"), problems);
    if raw.name.trim().is_empty() {
        problems.push(problem(format!("{at}.name"), "must not be empty"));
    }
    if let Some(h) = raw.org_her_id.as_deref() {
        check_her(h, format!("{at}.org_her_id"), problems);
    }
    if let Some(e) = raw.org_enh.as_deref() {
        if !valid_org_number(e) {
            problems.push(problem(
                format!("{at}.org_enh"),
                format!("{e:?} is not an organisation number (9 digits, mod-11)"),
            ));
        }
    }
    if let Some(h) = raw.hpr.as_deref() {
        if kind != PartyKind::Gp {
            problems.push(problem(
                format!("{at}.hpr"),
                "an HPR number is for a gp (a person)",
            ));
        } else if !crate::ident::valid_hpr_number(h) || h.trim() != h {
            problems.push(problem(
                format!("{at}.hpr"),
                format!("{h:?} is not an HPR number (up to 9 digits)"),
            ));
        }
    }
    if let Some(m) = raw.municipality.as_deref() {
        check_municipality(m, format!("{at}.municipality"), problems);
    }
    let mut seen = Vec::new();
    for (n, f) in raw.formats.iter().enumerate() {
        let path = format!("{at}.formats[{n}]");
        if !addressable(*f) {
            problems.push(problem(
                path,
                "a party is addressed in business-message formats; envelopes and receipts follow the message",
            ));
        } else if seen.contains(f) {
            problems.push(problem(path, "listed twice"));
        }
        seen.push(*f);
    }
    if raw.formats.is_empty() && (section == Section::Units || raw.endpoint.is_some()) {
        problems.push(problem(
            format!("{at}.formats"),
            "missing: the formats the party accepts, in order of preference",
        ));
    }
    let endpoint = match raw.endpoint.as_ref() {
        Some(e) => check_endpoint(e, &format!("{at}.endpoint"), problems),
        None => None,
    };
    Party {
        her_id: raw.her_id,
        name: raw.name,
        kind,
        org_name: raw.org_name,
        org_her_id: raw.org_her_id,
        org_enh: raw.org_enh,
        hpr: raw.hpr,
        municipality: raw.municipality,
        formats: raw.formats,
        endpoint,
    }
}

fn check_endpoint(e: &RawEndpoint, at: &str, problems: &mut Vec<Problem>) -> Option<Endpoint> {
    let before = problems.len();
    let tls = [
        ("client_cert", &e.client_cert),
        ("client_key", &e.client_key),
        ("ca_cert", &e.ca_cert),
    ];
    match (&e.url, &e.folder) {
        (Some(_), Some(_)) | (None, None) => {
            problems.push(problem(
                at,
                "give either `url` (HTTP POST) or `folder` (drop folder)",
            ));
            None
        }
        (None, Some(dir)) => {
            if dir.as_os_str().is_empty() {
                problems.push(problem(format!("{at}.folder"), "must not be empty"));
            }
            for (k, v) in tls {
                if v.is_some() {
                    problems.push(problem(
                        format!("{at}.{k}"),
                        "TLS settings need an https `url`",
                    ));
                }
            }
            if e.timeout_ms.is_some() {
                problems.push(problem(
                    format!("{at}.timeout_ms"),
                    "for HTTP endpoints only",
                ));
            }
            (problems.len() == before).then(|| Endpoint::Folder { dir: dir.clone() })
        }
        (Some(url), None) => {
            let https = match check_url(url) {
                Ok(https) => https,
                Err(m) => {
                    problems.push(problem(format!("{at}.url"), m));
                    false
                }
            };
            if !https {
                for (k, v) in tls {
                    if v.is_some() {
                        problems.push(problem(
                            format!("{at}.{k}"),
                            "TLS settings need an https `url`",
                        ));
                    }
                }
            }
            for (k, v) in tls {
                if v.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                    problems.push(problem(format!("{at}.{k}"), "must not be empty"));
                }
            }
            if e.client_cert.is_some() != e.client_key.is_some() {
                problems.push(problem(
                    at,
                    "mutual TLS needs both `client_cert` and `client_key`",
                ));
            }
            if let Some(t) = e.timeout_ms {
                if t == 0 || t > MAX_TIMEOUT_MS {
                    problems.push(problem(
                        format!("{at}.timeout_ms"),
                        format!("must be between 1 and {MAX_TIMEOUT_MS}"),
                    ));
                }
            }
            (problems.len() == before).then(|| Endpoint::Http {
                url: url.clone(),
                client_cert: e.client_cert.clone(),
                client_key: e.client_key.clone(),
                ca_cert: e.ca_cert.clone(),
                timeout_ms: e.timeout_ms,
            })
        }
    }
}

/// An absolute http(s) URL with a host; `Ok(true)` for https. Parsed with the `http` crate's
/// `Uri` (through axum), the same parser the HTTP stack uses.
fn check_url(url: &str) -> Result<bool, String> {
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(format!(
                "{url:?}: the URL must start with http:// or https://"
            ))
        }
    };
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(https),
        _ => Err(format!("{url:?}: the URL has no host")),
    }
}

/// The line of a problem path (`gp_lists[0].patients[3].nin`, `kad_units[1].endpoint.?.url`,
/// `postcodes.0661`): the deepest key or element of the path found in the document. Unlike the
/// config's locator it follows paths into inline arrays and tables, where GP lists live.
fn locate(doc: &toml_edit::ImDocument<&str>, text: &str, path: &str) -> Option<usize> {
    enum Node<'a> {
        Item(&'a toml_edit::Item),
        Value(&'a toml_edit::Value),
        Table(&'a toml_edit::Table),
    }
    impl<'a> Node<'a> {
        fn table(&self) -> Option<&'a dyn toml_edit::TableLike> {
            match *self {
                Node::Item(i) => i.as_table_like(),
                Node::Value(v) => v.as_inline_table().map(|t| t as &dyn toml_edit::TableLike),
                Node::Table(t) => Some(t as &dyn toml_edit::TableLike),
            }
        }
        fn index(&self, n: usize) -> Option<(Node<'a>, Option<std::ops::Range<usize>>)> {
            let value = match *self {
                Node::Item(toml_edit::Item::ArrayOfTables(a)) => {
                    let t = a.get(n)?;
                    return Some((Node::Table(t), t.span()));
                }
                Node::Item(toml_edit::Item::Value(v)) | Node::Value(v) => v,
                _ => return None,
            };
            let v = value.as_array()?.get(n)?;
            Some((Node::Value(v), v.span()))
        }
    }
    let mut node = Node::Item(doc.as_item());
    let mut best: Option<std::ops::Range<usize>> = None;
    let mut steps: Vec<(&str, bool)> = Vec::new();
    for seg in path.split('.') {
        let (key, idx) = seg.split_once('[').unwrap_or((seg, ""));
        steps.push((key, false));
        for i in idx.split('[') {
            let i = i.trim_end_matches(']');
            if !i.is_empty() {
                steps.push((i, true));
            }
        }
    }
    for (step, bracketed) in steps {
        if step.is_empty() || step == "?" {
            continue;
        }
        // A bare number is an index into an array (serde_ignored writes `patients.2`), but a key
        // in a table (`postcodes.0661`).
        let as_index = step
            .parse::<usize>()
            .ok()
            .filter(|_| bracketed || node.table().is_none());
        let next = match as_index {
            Some(n) => node.index(n),
            None => node
                .table()
                .and_then(|t| t.get_key_value(step))
                .map(|(k, v)| (Node::Item(v), k.span())),
        };
        let Some((n, span)) = next else { break };
        if span.is_some() {
            best = span;
        }
        node = n;
    }
    best.map(|r| {
        text.as_bytes()[..r.start.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    })
}

#[async_trait::async_trait]
impl Directory for FileDirectory {
    async fn kad_units(&self) -> Result<Vec<KadUnit>, RegistryError> {
        Ok(self.units.clone())
    }

    async fn kad_unit(&self, her_id: &str) -> Result<Option<KadUnit>, RegistryError> {
        Ok(self
            .unit_by_her
            .get(her_id.trim())
            .and_then(|&i| self.units.get(i))
            .cloned())
    }

    async fn unit_for_municipality(
        &self,
        kommunenr: &str,
    ) -> Result<Option<KadUnit>, RegistryError> {
        Ok(self
            .unit_by_municipality
            .get(kommunenr.trim())
            .and_then(|&i| self.units.get(i))
            .cloned())
    }

    async fn party(&self, her_id: &str) -> Result<Option<Party>, RegistryError> {
        Ok(self.party_any(her_id.trim()).cloned())
    }

    async fn gp_for_patient(
        &self,
        nin: &str,
        on: NaiveDate,
    ) -> Result<Option<GpAssignment>, RegistryError> {
        let Some(listings) = self.gp_lists.get(nin.trim()) else {
            return Ok(None);
        };
        let found = listings
            .iter()
            .find(|l| l.from <= on && l.to.is_none_or(|t| on <= t));
        Ok(found.and_then(|l| {
            let gp = self.parties.get(&l.gp)?.clone();
            let office = gp
                .org_her_id
                .as_deref()
                .and_then(|h| self.party_any(h))
                .cloned();
            Some(GpAssignment {
                gp,
                office,
                from: l.from,
                to: l.to,
            })
        }))
    }

    async fn home_nursing(&self, kommunenr: &str) -> Result<Option<Party>, RegistryError> {
        Ok(self
            .home_nursing
            .get(kommunenr.trim())
            .and_then(|h| self.parties.get(h))
            .cloned())
    }

    async fn municipality_for_postcode(
        &self,
        postcode: &str,
    ) -> Result<Option<String>, RegistryError> {
        Ok(self.postcodes.get(postcode.trim()).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_line(text: &str, path: &str) -> Option<usize> {
        let doc = toml_edit::ImDocument::parse(text).expect("toml");
        locate(&doc, text, path)
    }

    #[test]
    fn locate_follows_inline_arrays_and_tables() {
        let text = "[[gp_lists]]\ngp = \"1\"\npatients = [\n  { nin = \"a\", from = \"x\" },\n  { nin = \"b\", from = \"y\" },\n]\n[postcodes]\n\"0661\" = \"0301\"\n[[kad_units]]\nendpoint = { url = \"u\" }\n";
        assert_eq!(doc_line(text, "gp_lists[0].patients[1].from"), Some(5));
        assert_eq!(doc_line(text, "gp_lists[0].patients.1.colour"), Some(5));
        assert_eq!(doc_line(text, "gp_lists[0].gp"), Some(2));
        assert_eq!(doc_line(text, "postcodes.0661"), Some(8));
        assert_eq!(doc_line(text, "kad_units[0].endpoint.?.url"), Some(10));
        assert_eq!(doc_line(text, "kad_units[3].beds"), Some(9));
        assert_eq!(doc_line(text, "nowhere"), None);
    }

    #[test]
    fn urls_need_a_scheme_and_a_host() {
        assert_eq!(check_url("https://kad.example:8443/in"), Ok(true));
        assert_eq!(check_url("http://127.0.0.1:9001/"), Ok(false));
        for bad in [
            "ftp://x/",
            "127.0.0.1:9001",
            "http://",
            "not a url",
            "/relative",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_are_toml_dates_or_iso_strings() {
        let v: toml::Table = toml::from_str(
            "a = 2020-01-31\nb = \"2020-02-01\"\nc = 2020-01-01T10:00:00\nd = \"1.2.2020\"",
        )
        .expect("toml");
        assert_eq!(date(&v["a"]).ok(), NaiveDate::from_ymd_opt(2020, 1, 31));
        assert_eq!(date(&v["b"]).ok(), NaiveDate::from_ymd_opt(2020, 2, 1));
        assert!(date(&v["c"]).is_err());
        assert!(date(&v["d"]).is_err());
    }

    #[test]
    fn debug_shows_no_identity_numbers() {
        let d = FileDirectory::demo();
        let shown = format!("{d:?}");
        assert!(!d.gp_lists.is_empty());
        for nin in d.gp_lists.keys() {
            assert!(!shown.contains(nin.as_str()), "{shown}");
        }
        assert!(shown.contains("listed_patients"));
    }
}
