//! `kadgate validate`: run the check over files (in parallel, output in the order given) and render
//! each result as a JSON line or as text.

use std::path::PathBuf;

use serde::Serialize;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::check::{Checker, Disposition, Mode, Outcome, Rules, Stage};
use crate::convert::looks_like_json;
use crate::fhir::check::{self as fhir_check, FhirOutcome};
use crate::fhir::validate::{is_structural, issue_type, Options};
use crate::finding::{Finding, Severity};
use crate::xsd::SchemaSet;

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
    /// FHIR input only: the response kadgate would send (where `apprec` does not apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseVerdict>,
    pub findings: Vec<Finding>,
}

/// The FHIR response in `validate --json`: the response code and the OperationOutcome issue codes.
#[derive(Debug, Serialize)]
pub struct ResponseVerdict {
    pub code: &'static str,
    pub issues: Vec<&'static str>,
}

pub struct Rendered {
    pub valid: bool,
    pub json: FileReport,
    /// `json` as one line of `validate --json` (rendered by the worker, not the printing thread).
    pub line: String,
    pub human: String,
}

impl Rendered {
    fn new(valid: bool, json: FileReport, human: String) -> Self {
        let line = serde_json::to_string(&json).unwrap_or_default();
        Rendered {
            valid,
            json,
            line,
            human,
        }
    }
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
        response: None,
        findings: o.findings.clone(),
    };
    let human = human_report(file, valid, &json);
    Rendered::new(valid, json, human)
}

/// A FHIR body's check as a report line. `schema_valid` is R4 structural validity (no error that
/// [`is_structural`]); references, identifiers, patient identification and addressing count for
/// `valid` as on the KITH side.
pub fn render_fhir(file: &str, o: &FhirOutcome) -> Rendered {
    let errors = |f: &&Finding| f.severity == Severity::Error;
    let well_formed = o.report.well_formed;
    let schema_valid = well_formed.then(|| {
        !o.findings
            .iter()
            .filter(errors)
            .any(|f| is_structural(&f.code))
    });
    let valid = well_formed && !o.findings.iter().any(|f| errors(&f));
    let code = match o.response {
        Some(c) => c.as_str(),
        None if o.disposition == Disposition::IncomingReceipt => "none",
        None => "fatal-error",
    };
    // Each issue code once, in the order the findings first name it.
    let mut issues: Vec<&'static str> = Vec::new();
    for f in o
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
    {
        let code = issue_type(&f.code);
        if !issues.contains(&code) {
            issues.push(code);
        }
    }
    let json = FileReport {
        file: file.to_string(),
        well_formed,
        schema_valid,
        message_type: o.msg_type().map(str::to_string),
        msg_id: o.msg_id().map(str::to_string),
        apprec: AppRecVerdict {
            status: "none",
            errors: Vec::new(),
        },
        response: Some(ResponseVerdict { code, issues }),
        findings: o.findings.clone(),
    };
    let human = human_report(file, valid, &json);
    Rendered::new(valid, json, human)
}

fn human_report(file: &str, valid: bool, json: &FileReport) -> String {
    let (answer, codes) = match &json.response {
        Some(r) => (format!("response {}", r.code), r.issues.join(", ")),
        None => (
            format!("AppRec {}", json.apprec.status),
            json.apprec.errors.join(", "),
        ),
    };
    let mut human = format!(
        "{file}: {}  {}  {answer}{}\n",
        if valid { "valid" } else { "INVALID" },
        json.message_type.as_deref().unwrap_or("?"),
        if codes.is_empty() {
            String::new()
        } else {
            format!(" [{codes}]")
        }
    );
    for f in &json.findings {
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
    human
}

fn unreadable_file(file: &str, e: &std::io::Error) -> Rendered {
    let f = Finding::error(
        "file.unreadable",
        "/",
        format!("cannot read the file: {}", e.kind()),
    );
    Rendered::new(
        false,
        FileReport {
            file: file.to_string(),
            well_formed: false,
            schema_valid: None,
            message_type: None,
            msg_id: None,
            apprec: AppRecVerdict {
                status: "none",
                errors: vec![],
            },
            response: None,
            findings: vec![f],
        },
        format!("{file}: INVALID  cannot read: {e}\n"),
    )
}

/// Check every file on all cores; results in the order given.
///
/// The schema set is compiled by `load` on one worker while the other workers already read and
/// decode files (the part of the check that needs no schema); those wait in a queue and are
/// schema-validated first once the set is ready, after which each file is read, validated and
/// finished in one go (so few decoded files are held at once). Files are handed out one at a time,
/// largest first, so that one large file at the end of the list cannot leave a core idle. Returns
/// the reports and the schema set (the caller decides when to free it), or `load`'s error.
pub fn validate_files<E: Send + Sync>(
    rules: &Rules,
    mode: Mode,
    load: impl FnOnce() -> Result<SchemaSet, E> + Send,
    files: &[PathBuf],
) -> Result<(Vec<Rendered>, SchemaSet), E> {
    let checker = Checker {
        rules,
        schemas: None,
        mode,
    };
    let n = files.len();
    // Largest first (longest-processing-time order); unreadable sizes count as 0.
    let mut order: Vec<usize> = (0..n).collect();
    let sizes: Vec<u64> = files
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));

    let results: Vec<OnceLock<Rendered>> = (0..n).map(|_| OnceLock::new()).collect();
    let pending: Mutex<VecDeque<(usize, Vec<u8>, Stage)>> = Mutex::new(VecDeque::new());
    let loader = Mutex::new(Some(load));
    let schemas: OnceLock<Result<SchemaSet, E>> = OnceLock::new();
    let next_read = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, n.max(1));

    let finish = |set: &SchemaSet, i: usize, bytes: Vec<u8>, stage: Stage| {
        let xsd = stage.wants_schema().then(|| set.validate(&bytes));
        let name = files[i].to_string_lossy();
        let _ = results[i].set(render(&name, &checker.finish(stage, xsd)));
    };
    let ready = || match schemas.get() {
        Some(Ok(set)) => Some(set),
        _ => None,
    };
    let worker = || {
        // Compile the schema set, if no other worker has taken that job.
        let job = loader.lock().ok().and_then(|mut l| l.take());
        if let Some(load) = job {
            let _ = schemas.set(load());
        }
        loop {
            // Files read while the set compiled come first.
            if let Some(set) = ready() {
                let queued = pending.lock().ok().and_then(|mut q| q.pop_front());
                if let Some((i, bytes, stage)) = queued {
                    finish(set, i, bytes, stage);
                    continue;
                }
            }
            let k = next_read.fetch_add(1, Ordering::Relaxed);
            if let Some(&i) = order.get(k) {
                let name = files[i].to_string_lossy();
                match std::fs::read(&files[i]) {
                    // FHIR JSON needs no schema set: checked completely here.
                    Ok(bytes) if looks_like_json(&bytes) => {
                        let o = fhir_check::check(&checker, &bytes, &Options::default());
                        let _ = results[i].set(render_fhir(&name, &o));
                    }
                    Ok(bytes) => {
                        let stage = checker.read(&bytes);
                        match ready() {
                            Some(set) => finish(set, i, bytes, stage),
                            None => {
                                if let Ok(mut q) = pending.lock() {
                                    q.push_back((i, bytes, stage));
                                }
                            }
                        }
                    }
                    Err(e) => {
                        let _ = results[i].set(unreadable_file(&name, &e));
                    }
                }
                continue;
            }
            // Nothing left to read: wait for the set, then help empty the queue.
            if schemas.wait().is_err() || pending.lock().map_or(true, |q| q.is_empty()) {
                return;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(worker);
        }
    });
    let set = match schemas.into_inner() {
        Some(Err(e)) => return Err(e),
        Some(Ok(set)) => set,
        None => unreachable!("a worker always runs the loader"),
    };
    let rendered = results
        .into_iter()
        .map(|r| {
            r.into_inner().unwrap_or_else(|| {
                unreachable!("every file is rendered once the schema set is loaded")
            })
        })
        .collect();
    Ok((rendered, set))
}
