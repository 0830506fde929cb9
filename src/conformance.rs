//! `kadgate conformance`: the official acceptance-test messages for receiving systems
//! (`standards/kith/*/examples/sarepta-akseptansetest`) run through the live configuration, each
//! compared with the AppRec the national rules call for.
//!
//! The expectations are data — one table, `fixtures/conformance/acceptance.toml`, embedded in the
//! binary and shared with the test suite — so a reviewer reads case → expected status and codes → why
//! in one place.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::check::Checker;

pub const TABLE: &str = include_str!("../fixtures/conformance/acceptance.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub case: Vec<Case>,
}

/// One acceptance case and what the rules call for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Path under the standards' `kith/` folder.
    pub file: String,
    /// What the case tests (from the acceptance-test checklist).
    pub tests: String,
    /// The primary AppRec's status: `ok`, `rejected`, or `none` (no AppRec may be sent).
    pub expect: String,
    /// Error codes the primary AppRec must carry (exactly these, any order).
    #[serde(default)]
    pub errors: Vec<String>,
    /// How many AppRecs (one per receiver in our organisation); default 1 unless `expect = "none"`.
    #[serde(default)]
    pub receipts: Option<usize>,
    /// Why that is what the rules call for (FACTS section).
    pub why: String,
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub file: String,
    pub tests: String,
    pub expected: String,
    pub got: String,
    pub pass: bool,
    pub why: String,
}

impl CaseResult {
    pub fn line(&self) -> String {
        format!(
            "{} {}\n     tests: {}\n     expected: {}   got: {}\n     why: {}",
            if self.pass { "PASS" } else { "FAIL" },
            self.file,
            self.tests,
            self.expected,
            self.got,
            self.why
        )
    }
}

pub fn table() -> Result<Table, String> {
    toml::from_str(TABLE).map_err(|e| format!("conformance table: {e}"))
}

fn describe(status: &str, errors: &[String], n: usize) -> String {
    let mut s = status.to_string();
    if !errors.is_empty() {
        let mut e = errors.to_vec();
        e.sort();
        s.push_str(&format!(" [{}]", e.join(", ")));
    }
    if n > 1 {
        s.push_str(&format!(" ×{n} receivers"));
    }
    s
}

/// Run every case of the table against `checker`.
pub fn run(checker: &Checker<'_>, standards: &Path) -> Result<Vec<CaseResult>, String> {
    let table = table()?;
    let kith = standards.join("kith");
    let mut out = Vec::new();
    for c in &table.case {
        let path = kith.join(&c.file);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let o = checker.check(&bytes);
        let (status, errors) = o.apprec_summary();
        let n = o.receipts.len();
        let want_n = c.receipts.unwrap_or(if c.expect == "none" { 0 } else { 1 });
        let mut want_e = c.errors.clone();
        want_e.sort();
        let mut got_e = errors.clone();
        got_e.sort();
        let pass = status == c.expect && want_e == got_e && n == want_n;
        out.push(CaseResult {
            file: c.file.clone(),
            tests: c.tests.clone(),
            expected: describe(&c.expect, &c.errors, want_n),
            got: describe(status, &errors, n),
            pass,
            why: c.why.clone(),
        });
    }
    Ok(out)
}
