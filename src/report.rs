//! `kadgate validate`: run the check over files (in parallel, output in the order given) and render
//! each result as a JSON line or as text.

use std::path::PathBuf;

use serde::Serialize;

use crate::check::{Checker, Outcome};
use crate::finding::{Finding, Severity};

#[derive(Debug, Serialize)]
pub struct AppRecVerdict {
    pub status: &'static str,
    pub errors: Vec<String>,
}

/// One line of `validate --json`.
#[derive(Debug, Serialize)]
pub struct FileReport {
    pub file: String,
    pub well_formed: bool,
    pub schema_valid: Option<bool>,
    pub message_type: Option<String>,
    pub msg_id: Option<String>,
    pub apprec: AppRecVerdict,
    pub findings: Vec<Finding>,
}

pub struct Rendered {
    pub valid: bool,
    pub json: FileReport,
    pub human: String,
}

/// Valid = well-formed, schema-valid and no error finding.
pub fn is_valid(o: &Outcome) -> bool {
    o.well_formed
        && o.schema_valid == Some(true)
        && !o.findings.iter().any(|f| f.severity == Severity::Error)
}

pub fn render(file: &str, o: &Outcome) -> Rendered {
    let (status, errors) = o.apprec_summary();
    let valid = is_valid(o);
    let json = FileReport {
        file: file.to_string(),
        well_formed: o.well_formed,
        schema_valid: o.schema_valid,
        message_type: o.msg_type().map(str::to_string),
        msg_id: o.msg_id().map(|s| s.trim().to_string()),
        apprec: AppRecVerdict {
            status,
            errors: errors.clone(),
        },
        findings: o.findings.clone(),
    };
    let mut human = format!(
        "{file}: {}  {}  AppRec {}{}\n",
        if valid { "valid" } else { "INVALID" },
        json.message_type.as_deref().unwrap_or("?"),
        status,
        if errors.is_empty() {
            String::new()
        } else {
            format!(" [{}]", errors.join(", "))
        }
    );
    for f in &o.findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        human.push_str(&format!(
            "  {sev:7} {:38} {}  {}\n",
            f.code, f.path, f.message
        ));
    }
    Rendered { valid, json, human }
}

fn unreadable_file(file: &str, e: &std::io::Error) -> Rendered {
    let f = Finding::error(
        "file.unreadable",
        "/",
        format!("cannot read the file: {}", e.kind()),
    );
    Rendered {
        valid: false,
        human: format!("{file}: INVALID  cannot read: {e}\n"),
        json: FileReport {
            file: file.to_string(),
            well_formed: false,
            schema_valid: None,
            message_type: None,
            msg_id: None,
            apprec: AppRecVerdict {
                status: "none",
                errors: vec![],
            },
            findings: vec![f],
        },
    }
}

/// Check every file, using all cores; results in the order given.
pub fn validate_files(checker: &Checker<'_>, files: &[PathBuf]) -> Vec<Rendered> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len().max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| {
                            let name = p.to_string_lossy().into_owned();
                            match std::fs::read(p) {
                                Ok(bytes) => render(&name, &checker.check(&bytes)),
                                Err(e) => unreadable_file(&name, &e),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("validation thread"))
            .collect()
    })
}
