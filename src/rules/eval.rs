//! Deciding one referral against a rule set.
//!
//! What it does: gathers the facts a rule set reads (codes, age on the referral's date, pathway,
//! NEWS2, flags, free text, required content) from the canonical model once, tests every rule, and
//! applies the precedence of REFERRAL-PROFILE.md: exclusion → required content → review → inclusion
//! → review.
//! What it must NOT do: I/O, panics, or reasons that quote the referral's text or identity.

use aho_corasick::AhoCorasick;
use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use super::news2::{self, Spo2Scale};
use super::{Pathway, Required, RuleKind, RuleSet, WeakExclusion};
use crate::ident;
use crate::kith::semantics::check_patient;
use crate::model::{Body, Message, Patient, Referral};

/// The decision on one referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    Accepted,
    NeedsReview,
    NotAccepted,
    Incomplete,
}

impl DecisionKind {
    pub fn word(self) -> &'static str {
        match self {
            DecisionKind::Accepted => "accepted",
            DecisionKind::NeedsReview => "needs-review",
            DecisionKind::NotAccepted => "not-accepted",
            DecisionKind::Incomplete => "incomplete",
        }
    }
}

/// How strong the evidence for a fired rule is: codes, flags, numbers and identity are strong;
/// key phrases in free text are weak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    Strong,
    Weak,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FiredRule {
    pub id: String,
    pub kind: RuleKind,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub decision: DecisionKind,
    /// NEWS2, `None` when the observations needed are not all there.
    pub news2: Option<u8>,
    pub fired: Vec<FiredRule>,
    pub reasons_no: Vec<String>,
    pub reasons_en: Vec<String>,
    pub ruleset_id: String,
    pub ruleset_version: String,
}

/// Normalised code prefixes (upper case, no dots or spaces).
#[derive(Debug, Clone, Default)]
pub(super) struct Prefixes {
    icd10: Vec<String>,
    icpc2: Vec<String>,
}

impl Prefixes {
    fn matches(&self, d: &Dx) -> bool {
        let list = match d.system {
            Sys::Icd10 => &self.icd10,
            Sys::Icpc2 => &self.icpc2,
            Sys::Other => return false,
        };
        list.iter().any(|p| d.code.starts_with(p.as_str()))
    }
    fn is_empty(&self) -> bool {
        self.icd10.is_empty() && self.icpc2.is_empty()
    }
}

/// A rule's matching data, normalised once at load.
#[derive(Debug, Clone, Default)]
pub(super) struct Compiled {
    codes: Prefixes,
    flags: Vec<String>,
    /// Indices of this rule's key phrases in the rule set's phrase automaton.
    phrases: Vec<usize>,
}

pub(super) fn norm_code(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '.' | ' ' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn norm_all(v: &[String]) -> Vec<String> {
    v.iter().map(|s| norm_code(s)).collect()
}

pub(super) fn compile(set: &mut RuleSet) {
    // Every distinct key phrase of the set, lower-cased, searched for in one pass over the text.
    let mut phrases: Vec<String> = Vec::new();
    let mut index_of = |p: &String| -> usize {
        let p = p.trim().to_lowercase();
        match phrases.iter().position(|q| *q == p) {
            Some(i) => i,
            None => {
                phrases.push(p);
                phrases.len() - 1
            }
        }
    };
    set.compiled = set
        .rules
        .iter()
        .map(|r| Compiled {
            codes: Prefixes {
                icd10: norm_all(&r.icd10),
                icpc2: norm_all(&r.icpc2),
            },
            flags: r.flags.iter().map(|f| f.trim().to_lowercase()).collect(),
            phrases: r.phrases.iter().map(&mut index_of).collect(),
        })
        .collect();
    // (The rule set check refuses phrases under three characters; building fails only on sizes
    // far beyond any rule set, and then no phrase fires.)
    set.phrases = (!phrases.is_empty())
        .then(|| AhoCorasick::new(&phrases).ok())
        .flatten();
    set.mental = Prefixes {
        icd10: norm_all(&set.pathways.mental_health_icd10),
        icpc2: norm_all(&set.pathways.mental_health_icpc2),
    };
    set.scale2 = norm_all(&set.news2.spo2_scale2_icd10);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sys {
    Icd10,
    Icpc2,
    Other,
}

/// A diagnosis as the rules see it.
struct Dx {
    system: Sys,
    code: String,
    confirmed: Option<bool>,
}

fn system_of(system: Option<&str>) -> Sys {
    let s = system.unwrap_or("").trim().to_ascii_lowercase();
    if s.ends_with(".7110") || s.ends_with("/icd-10") || s.ends_with("/icd-10-no") {
        Sys::Icd10
    } else if s.ends_with(".7170") || s.ends_with("/icpc-2") {
        Sys::Icpc2
    } else {
        Sys::Other
    }
}

/// Everything the rules read, gathered once.
struct Facts {
    dx: Vec<Dx>,
    age: Option<u32>,
    pathway: Pathway,
    news2: Option<u8>,
    flags: Vec<String>,
    /// Which of the rule set's key phrases occur in the free text at a word start.
    phrases: Vec<bool>,
    has_plan: bool,
    identified: bool,
}

fn parse_date(s: Option<&str>) -> Option<NaiveDate> {
    let s = s?.trim();
    let head = s.get(..10).unwrap_or(s);
    NaiveDate::parse_from_str(head, "%Y-%m-%d")
        .ok()
        .or_else(|| NaiveDate::parse_from_str(s.split('T').next()?, "%Y-%m-%d").ok())
}

fn years_between(born: NaiveDate, on: NaiveDate) -> Option<u32> {
    let mut years = on.year() - born.year();
    if (on.month(), on.day()) < (born.month(), born.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

/// Age in whole years on `on`: from the birth date, else from a valid national identity number.
fn age(p: Option<&Patient>, on: NaiveDate) -> Option<u32> {
    let p = p?;
    let born = parse_date(p.birth_date.as_deref()).or_else(|| {
        p.idents.iter().find_map(|i| {
            let digits: String = i.id.chars().filter(|c| !c.is_whitespace()).collect();
            ident::parse_person_number(&digits).ok()?.birth_date
        })
    })?;
    years_between(born, on)
}

fn facts(set: &RuleSet, msg: &Message, r: &Referral, today: NaiveDate) -> Facts {
    let dx: Vec<Dx> = r
        .diagnoses
        .iter()
        .map(|d| Dx {
            system: system_of(d.code.system.as_deref()),
            code: norm_code(&d.code.code),
            confirmed: d.confirmed,
        })
        .collect();
    let on = parse_date(r.issue_date.as_deref())
        .or_else(|| parse_date(msg.header.gen_date.as_deref()))
        .unwrap_or(today);
    let patient = msg.patient().or(r.patient.as_ref());
    let pathway = if !set.mental.is_empty() && dx.iter().any(|d| set.mental.matches(d)) {
        Pathway::MentalHealth
    } else {
        Pathway::Somatic
    };
    let scale2 = dx.iter().any(|d| {
        d.system == Sys::Icd10 && set.scale2.iter().any(|p| d.code.starts_with(p.as_str()))
    });
    let scale = if scale2 {
        Spo2Scale::Two
    } else {
        Spo2Scale::One
    };
    let mut flags: Vec<String> = r
        .flags
        .iter()
        .map(|f| f.code.trim().to_lowercase())
        .collect();
    for o in &r.observations {
        if o.code.code.trim().eq_ignore_ascii_case("suicide-risk") {
            if let Some(v) = &o.value_code {
                flags.push(format!("suicide-risk:{}", v.code.trim().to_lowercase()));
            }
        }
    }
    let mut text = String::new();
    for t in &r.texts {
        text.push_str(&t.text.to_lowercase());
        text.push('\n');
    }
    if let Some(p) = &r.plan {
        text.push_str(&p.to_lowercase());
    }
    let has_plan = r.plan.as_deref().is_some_and(|p| !p.trim().is_empty())
        || r.texts.iter().any(|t| !t.text.trim().is_empty());
    let mut scratch = Vec::new();
    let identified = check_patient(patient, "", &mut scratch).sufficient;
    Facts {
        dx,
        age: age(patient, on),
        pathway,
        news2: news2::from_observations(&r.observations, scale),
        flags,
        phrases: phrases_in(set.phrases.as_ref(), &text),
        has_plan,
        identified,
    }
}

/// Which of the rule set's phrases occur in `text`, each starting at a word start: one pass over
/// the text for all phrases (overlapping matches, so a phrase inside a longer one counts too).
fn phrases_in(ac: Option<&AhoCorasick>, text: &str) -> Vec<bool> {
    let Some(ac) = ac else {
        return Vec::new();
    };
    let mut found = vec![false; ac.patterns_len()];
    for m in ac.find_overlapping_iter(text) {
        let at_word_start = text[..m.start()]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        if at_word_start {
            found[m.pattern().as_usize()] = true;
        }
    }
    found
}

/// Whether rule `i` holds, and on what evidence.
fn holds(set: &RuleSet, i: usize, f: &Facts) -> Option<Evidence> {
    let r = set.rules.get(i)?;
    let c = set.compiled.get(i)?;
    if r.pathway != Pathway::Any && r.pathway != f.pathway {
        return None;
    }
    if let Some(req) = r.requires {
        let missing = match req {
            Required::Diagnosis => f.dx.is_empty(),
            Required::Plan => !f.has_plan,
            Required::PatientIdentity => !f.identified,
        };
        return missing.then_some(Evidence::Strong);
    }
    if r.age_min.is_some() || r.age_max.is_some() {
        let a = f.age?;
        if r.age_min.is_some_and(|m| a < m) || r.age_max.is_some_and(|m| a > m) {
            return None;
        }
    }
    if r.news2_min.is_some() || r.news2_max.is_some() {
        let n = f.news2?;
        if r.news2_min.is_some_and(|m| n < m) || r.news2_max.is_some_and(|m| n > m) {
            return None;
        }
    }
    let has_codes = !c.codes.is_empty();
    if let Some(want) = r.diagnosis_confirmed {
        let ok =
            f.dx.iter()
                .any(|d| d.confirmed == Some(want) && (!has_codes || c.codes.matches(d)));
        if !ok {
            return None;
        }
    }
    if !has_codes && c.flags.is_empty() && c.phrases.is_empty() {
        return Some(Evidence::Strong);
    }
    let code_hit = has_codes && f.dx.iter().any(|d| c.codes.matches(d));
    let flag_hit = c.flags.iter().any(|x| f.flags.iter().any(|y| y == x));
    if code_hit || flag_hit {
        return Some(Evidence::Strong);
    }
    c.phrases
        .iter()
        .any(|&p| f.phrases.get(p).copied().unwrap_or(false))
        .then_some(Evidence::Weak)
}

const FREE_TEXT_NO: &str = " (bygger på fritekst i henvisningen)";
const FREE_TEXT_EN: &str = " (based on free text in the referral)";
const FREE_TEXT_REVIEW_NO: &str = " (bygger bare på fritekst i henvisningen; en lege må vurdere)";
const FREE_TEXT_REVIEW_EN: &str =
    " (rests on free text in the referral only; a doctor must assess)";

/// Decide one message against a rule set. `today` stands in for the referral's date when the
/// message carries none. Pure: no I/O.
pub fn decide(set: &RuleSet, msg: &Message, today: NaiveDate) -> Decision {
    let mut d = Decision {
        decision: DecisionKind::Incomplete,
        news2: None,
        fired: Vec::new(),
        reasons_no: Vec::new(),
        reasons_en: Vec::new(),
        ruleset_id: set.id.clone(),
        ruleset_version: set.version.clone(),
    };
    let Body::Referral(r) = &msg.body else {
        d.reasons_no.push("Meldingen er ikke en henvisning.".into());
        d.reasons_en.push("The message is not a referral.".into());
        return d;
    };
    let f = facts(set, msg, r, today);
    d.news2 = f.news2;
    let mut hits: Vec<(usize, Evidence)> = (0..set.rules.len())
        .filter_map(|i| holds(set, i, &f).map(|e| (i, e)))
        .collect();
    let weak_excl_refuses = set.policy.weak_exclusion == WeakExclusion::NotAccepted;
    let rank = |kind: RuleKind, e: Evidence| -> u8 {
        match kind {
            k if k.excludes() && (e == Evidence::Strong || weak_excl_refuses) => 0,
            RuleKind::RequiredContent => 1,
            RuleKind::Review => 2,
            k if k.excludes() => 2,
            RuleKind::Inclusion if e == Evidence::Strong => 3,
            _ => 4,
        }
    };
    // Stable: within a rank, rules keep the rule set's order.
    hits.sort_by_key(|&(i, e)| rank(set.rules[i].kind, e));
    let top = hits.first().map_or(4, |&(i, e)| rank(set.rules[i].kind, e));
    d.decision = match top {
        0 => DecisionKind::NotAccepted,
        1 => DecisionKind::Incomplete,
        3 => DecisionKind::Accepted,
        _ => DecisionKind::NeedsReview,
    };
    for &(i, e) in &hits {
        let rule = &set.rules[i];
        d.fired.push(FiredRule {
            id: rule.id.clone(),
            kind: rule.kind,
            evidence: e,
        });
        let downgraded = rule.kind.excludes() && !weak_excl_refuses;
        let (no, en) = match e {
            Evidence::Strong => ("", ""),
            Evidence::Weak if downgraded => (FREE_TEXT_REVIEW_NO, FREE_TEXT_REVIEW_EN),
            Evidence::Weak => (FREE_TEXT_NO, FREE_TEXT_EN),
        };
        d.reasons_no.push(format!("{}{no}", rule.reason_no.trim()));
        d.reasons_en.push(format!("{}{en}", rule.reason_en.trim()));
    }
    if top == 4 {
        d.reasons_no.push(
            "Ingen inklusjonskriterier er sikkert oppfylt; en lege må vurdere henvisningen.".into(),
        );
        d.reasons_en.push(
            "No inclusion criterion clearly holds; a doctor must assess the referral.".into(),
        );
    }
    if f.news2.is_none() {
        d.reasons_no
            .push("NEWS2 er ikke beregnet: henvisningen mangler vitale parametere.".into());
        d.reasons_en
            .push("NEWS2 not computed: the referral lacks vital signs.".into());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, phrases: &[&str]) -> Vec<bool> {
        let ac = AhoCorasick::new(phrases).ok();
        phrases_in(ac.as_ref(), text)
    }

    #[test]
    fn phrases_match_from_a_word_start() {
        assert_eq!(found("pasienten er truende", &["truende"]), [true]);
        assert_eq!(found("trues. vold mot personal", &["vold"]), [true]);
        assert_eq!(found("voldsom smerte", &["vold mot"]), [false]);
        assert_eq!(found("ingen ukjent", &["kjent"]), [false]);
        // A later occurrence at a word start counts although an earlier one is inside a word.
        assert_eq!(found("ukjent, men kjent", &["kjent"]), [true]);
        // Overlapping phrases are each found.
        assert_eq!(
            found("vold mot personal", &["vold", "vold mot", "mot p"]),
            [true, true, true]
        );
        assert_eq!(found("", &["vold"]), [false]);
        assert!(phrases_in(None, "vold").is_empty());
    }

    #[test]
    fn age_counts_whole_years() {
        let b = NaiveDate::from_ymd_opt(1974, 5, 13).unwrap_or_default();
        let before = NaiveDate::from_ymd_opt(2026, 5, 12).unwrap_or_default();
        let on = NaiveDate::from_ymd_opt(2026, 5, 13).unwrap_or_default();
        assert_eq!(years_between(b, before), Some(51));
        assert_eq!(years_between(b, on), Some(52));
        assert_eq!(years_between(on, b), None);
    }

    #[test]
    fn code_systems() {
        assert_eq!(
            system_of(Some("urn:oid:2.16.578.1.12.4.1.1.7110")),
            Sys::Icd10
        );
        assert_eq!(system_of(Some("2.16.578.1.12.4.1.1.7170")), Sys::Icpc2);
        assert_eq!(
            system_of(Some("http://hl7.org/fhir/sid/icpc-2")),
            Sys::Icpc2
        );
        assert_eq!(
            system_of(Some("http://hl7.org/fhir/sid/icd-10")),
            Sys::Icd10
        );
        assert_eq!(system_of(None), Sys::Other);
        assert_eq!(norm_code("i21.4"), "I214");
    }
}
