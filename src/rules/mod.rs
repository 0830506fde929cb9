//! Admission rule sets: which referrals a KAD unit can take, as data.
//!
//! What it does: reads a versioned rule set (TOML, schema in `schemas/ruleset.schema.json`), checks
//! it once with every problem reported at once (with line numbers, as `config` does), and decides a
//! decoded referral against it ([`decide`]): `accepted`, `needs-review`, `not-accepted` or
//! `incomplete`, with the rules that fired, the NEWS2 score and reasons in Norwegian and English.
//! What it must NOT do: I/O during a decision, or panic on any referral. Free-text key phrases are
//! weak evidence: they never accept a referral on their own and, unless the rule set says
//! otherwise, never refuse one on their own either (they send it to review). Reasons never quote
//! patient data.

mod eval;
pub mod news2;

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{de_one, parse_toml, place_problems, problem, unknown_top_keys, Problem};

pub use eval::{decide, Decision, DecisionKind, Evidence, FiredRule};

/// What a rule does when it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleKind {
    /// A criterion the unit's patients meet (accepts only on strong evidence).
    Inclusion,
    /// Not for this unit.
    Exclusion,
    /// Belongs in hospital, always (stroke, myocardial infarction, …).
    AlwaysHospital,
    /// Content the referral must carry; fires when it is missing.
    RequiredContent,
    /// A doctor must look at it.
    Review,
}

impl RuleKind {
    pub fn word(self) -> &'static str {
        match self {
            RuleKind::Inclusion => "inclusion",
            RuleKind::Exclusion => "exclusion",
            RuleKind::AlwaysHospital => "always-hospital",
            RuleKind::RequiredContent => "required-content",
            RuleKind::Review => "review",
        }
    }
    fn excludes(self) -> bool {
        matches!(self, RuleKind::Exclusion | RuleKind::AlwaysHospital)
    }
}

/// The care pathway of a referral: somatic, or mental health and substance use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pathway {
    #[default]
    Any,
    Somatic,
    MentalHealth,
}

/// Content a `required-content` rule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Required {
    /// At least one coded diagnosis.
    Diagnosis,
    /// A treatment and observation plan.
    Plan,
    /// The patient sufficiently identified (the AppRec E36 rule).
    PatientIdentity,
}

/// What a decision resting on free text alone may at most become when the phrase belongs to an
/// exclusion or always-to-hospital rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeakExclusion {
    #[default]
    NeedsReview,
    NotAccepted,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default)]
    pub weak_exclusion: WeakExclusion,
}

/// Which diagnoses make a referral a mental-health / substance-use referral.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pathways {
    #[serde(default)]
    pub mental_health_icd10: Vec<String>,
    #[serde(default)]
    pub mental_health_icpc2: Vec<String>,
}

/// NEWS2 settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct News2Settings {
    /// ICD-10 prefixes that mean hypercapnic respiratory failure (SpO2 scale 2).
    #[serde(default)]
    pub spo2_scale2_icd10: Vec<String>,
}

/// One rule. Matching: the rule holds when every filter given holds (`pathway`, age bounds, NEWS2
/// bounds, `diagnosis_confirmed`) and, when any of `icd10` / `icpc2` / `flags` / `phrases` is given,
/// at least one of them matches. Codes and flags are strong evidence, phrases weak.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub kind: RuleKind,
    #[serde(default)]
    pub pathway: Pathway,
    pub reason_no: String,
    pub reason_en: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// ICD-10 code prefixes (`I21` matches `I21.4`).
    #[serde(default)]
    pub icd10: Vec<String>,
    /// ICPC-2 code prefixes.
    #[serde(default)]
    pub icpc2: Vec<String>,
    /// Structured flags: Flag codes, and `suicide-risk:low|moderate|high` from the assessment.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Norwegian key phrases in free text (weak evidence), matched from a word start, any case.
    #[serde(default)]
    pub phrases: Vec<String>,
    #[serde(default)]
    pub age_min: Option<u32>,
    #[serde(default)]
    pub age_max: Option<u32>,
    #[serde(default)]
    pub news2_min: Option<u8>,
    #[serde(default)]
    pub news2_max: Option<u8>,
    /// `true`: a matching (or any) diagnosis is clarified; `false`: one is unclarified.
    #[serde(default)]
    pub diagnosis_confirmed: Option<bool>,
    /// For `required-content`: what must be there.
    #[serde(default)]
    pub requires: Option<Required>,
}

/// A checked rule set, ready to decide with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleSet {
    pub id: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub pathways: Pathways,
    #[serde(default)]
    pub news2: News2Settings,
    pub rules: Vec<Rule>,
    /// Normalised, lower-cased copies for matching (built once at load).
    #[serde(skip)]
    compiled: Vec<eval::Compiled>,
    #[serde(skip)]
    mental: eval::Prefixes,
    #[serde(skip)]
    scale2: Vec<String>,
    /// Every key phrase of the set in one automaton (one pass over a referral's free text).
    #[serde(skip)]
    phrases: Option<aho_corasick::AhoCorasick>,
}

/// All problems of a rule set.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in {source_name}:\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct RulesError {
    pub source_name: String,
    pub problems: Vec<Problem>,
}

const TOP_KEYS: [&str; 7] = [
    "id", "version", "title", "policy", "pathways", "news2", "rules",
];

impl RuleSet {
    /// Read and check a rule-set file.
    pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => RuleSet::parse(&text, &name),
            Err(e) => Err(RulesError {
                source_name: name,
                problems: vec![problem("(file)", format!("cannot read: {e}"))],
            }),
        }
    }

    /// Parse and check a rule-set text; every problem is reported, each with its line.
    pub fn parse(text: &str, source_name: &str) -> Result<RuleSet, RulesError> {
        let fail = |problems: Vec<Problem>| RulesError {
            source_name: source_name.to_string(),
            problems,
        };
        let (doc, value) = parse_toml(text).map_err(|p| fail(vec![p]))?;
        let mut problems = Vec::new();
        unknown_top_keys(&value, &TOP_KEYS, &mut problems);
        let text_field = |key: &str, problems: &mut Vec<Problem>| -> String {
            match value.get(key) {
                Some(toml::Value::String(s)) if !s.trim().is_empty() => s.clone(),
                Some(toml::Value::String(_)) => {
                    problems.push(problem(key, "must not be empty"));
                    String::new()
                }
                Some(_) => {
                    problems.push(problem(key, "must be a string"));
                    String::new()
                }
                None => {
                    problems.push(problem(key, "missing (required)"));
                    String::new()
                }
            }
        };
        let id = text_field("id", &mut problems);
        let version = text_field("version", &mut problems);
        let title = value
            .get("title")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let policy: Policy = value
            .get("policy")
            .and_then(|v| de_one(v.clone(), "policy", &mut problems))
            .unwrap_or_default();
        let pathways: Pathways = value
            .get("pathways")
            .and_then(|v| de_one(v.clone(), "pathways", &mut problems))
            .unwrap_or_default();
        let news2: News2Settings = value
            .get("news2")
            .and_then(|v| de_one(v.clone(), "news2", &mut problems))
            .unwrap_or_default();
        let mut rules: Vec<Rule> = Vec::new();
        match value.get("rules") {
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(r) =
                        de_one::<Rule>(item.clone(), &format!("rules[{i}]"), &mut problems)
                    {
                        check_rule(&r, i, &mut problems);
                        rules.push(r);
                    }
                }
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(id) = item.get("id").and_then(|v| v.as_str()) {
                        if !seen.insert(id) {
                            problems.push(problem(
                                format!("rules[{i}].id"),
                                format!("duplicate rule id `{id}`"),
                            ));
                        }
                    }
                }
            }
            Some(_) => problems.push(problem("rules", "must be an array of tables ([[rules]])")),
            None => problems.push(problem(
                "rules",
                "missing (required): at least one [[rules]]",
            )),
        }
        for (list, key) in [
            (
                &pathways.mental_health_icd10,
                "pathways.mental_health_icd10",
            ),
            (&news2.spo2_scale2_icd10, "news2.spo2_scale2_icd10"),
        ] {
            check_prefixes(list, key, CodeSystem::Icd10, &mut problems);
        }
        check_prefixes(
            &pathways.mental_health_icpc2,
            "pathways.mental_health_icpc2",
            CodeSystem::Icpc2,
            &mut problems,
        );
        place_problems(&doc, text, &mut problems);
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        let mut set = RuleSet {
            id,
            version,
            title,
            policy,
            pathways,
            news2,
            rules,
            compiled: Vec::new(),
            mental: eval::Prefixes::default(),
            scale2: Vec::new(),
            phrases: None,
        };
        eval::compile(&mut set);
        Ok(set)
    }
}

#[derive(Clone, Copy)]
enum CodeSystem {
    Icd10,
    Icpc2,
}

/// A code prefix: a letter and up to six more letters or digits, dots allowed (`I21`, `F10.0`).
fn check_prefixes(list: &[String], key: &str, system: CodeSystem, problems: &mut Vec<Problem>) {
    for (n, p) in list.iter().enumerate() {
        let norm = eval::norm_code(p);
        let mut chars = norm.chars();
        let letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric());
        let len_ok = match system {
            CodeSystem::Icd10 => (1..=7).contains(&norm.len()),
            CodeSystem::Icpc2 => (1..=3).contains(&norm.len()),
        };
        if !(letter && rest_ok && len_ok) {
            let what = match system {
                CodeSystem::Icd10 => {
                    "an ICD-10 code prefix (a letter, then digits: `I21`, `F10.0`)"
                }
                CodeSystem::Icpc2 => "an ICPC-2 code prefix (a letter and up to two digits: `K90`)",
            };
            problems.push(problem(
                format!("{key}[{n}]"),
                format!("`{p}` is not {what}"),
            ));
        }
    }
}

fn check_rule(r: &Rule, i: usize, problems: &mut Vec<Problem>) {
    let at = |k: &str| format!("rules[{i}].{k}");
    let id_ok = !r.id.is_empty()
        && r.id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'));
    if !id_ok {
        problems.push(problem(
            at("id"),
            "a rule id is lower-case letters, digits, `-`, `.` and `_` (it is a stable public name)",
        ));
    }
    for (k, v) in [("reason_no", &r.reason_no), ("reason_en", &r.reason_en)] {
        if v.trim().is_empty() {
            problems.push(problem(at(k), "must not be empty"));
        }
    }
    check_prefixes(&r.icd10, &at("icd10"), CodeSystem::Icd10, problems);
    check_prefixes(&r.icpc2, &at("icpc2"), CodeSystem::Icpc2, problems);
    for (n, f) in r.flags.iter().enumerate() {
        if f.trim().is_empty() {
            problems.push(problem(format!("{}[{n}]", at("flags")), "empty flag"));
        }
    }
    for (n, f) in r.phrases.iter().enumerate() {
        if f.trim().chars().count() < 3 {
            problems.push(problem(
                format!("{}[{n}]", at("phrases")),
                "a key phrase needs at least three characters",
            ));
        }
    }
    if let (Some(a), Some(b)) = (r.age_min, r.age_max) {
        if a > b {
            problems.push(problem(
                at("age_min"),
                format!("age_min {a} is above age_max {b}"),
            ));
        }
    }
    for (k, v) in [("news2_min", r.news2_min), ("news2_max", r.news2_max)] {
        if v.is_some_and(|v| v > 20) {
            problems.push(problem(at(k), "NEWS2 runs from 0 to 20"));
        }
    }
    if let (Some(a), Some(b)) = (r.news2_min, r.news2_max) {
        if a > b {
            problems.push(problem(
                at("news2_min"),
                format!("news2_min {a} is above news2_max {b}"),
            ));
        }
    }
    let has_match =
        !(r.icd10.is_empty() && r.icpc2.is_empty() && r.flags.is_empty() && r.phrases.is_empty());
    let has_filter = r.age_min.is_some()
        || r.age_max.is_some()
        || r.news2_min.is_some()
        || r.news2_max.is_some()
        || r.diagnosis_confirmed.is_some();
    match (r.kind, r.requires) {
        (RuleKind::RequiredContent, None) => problems.push(problem(
            at("kind"),
            "a required-content rule needs `requires` (diagnosis, plan or patient-identity)",
        )),
        (RuleKind::RequiredContent, Some(_)) => {
            if has_match || has_filter {
                problems.push(problem(
                    at("kind"),
                    "a required-content rule takes only `requires` and `pathway`",
                ));
            }
        }
        (_, Some(_)) => problems.push(problem(
            at("requires"),
            "`requires` belongs to required-content rules only",
        )),
        (_, None) => {
            if !has_match && !has_filter {
                problems.push(problem(
                    at("kind"),
                    "the rule has no condition (codes, flags, phrases, age, NEWS2 or diagnosis_confirmed)",
                ));
            }
        }
    }
}
