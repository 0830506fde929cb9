//! The `kadgate` command line.
#![forbid(unsafe_code)]

/// mimalloc instead of the system allocator: admission encodes every referral twice (for the unit
/// and the reply) through `serde_json::Value` trees, and with glibc malloc a quarter of the CPU went
/// to malloc/free. End to end at 1,000 referrals/s it cut kadgate's CPU by a quarter (100 s → 75 s
/// over a 60 s run) and brought p99 from seconds to under 100 ms (BENCHMARKS.md). The crate wraps
/// the C allocator; this binary contains no `unsafe` of its own for it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kadgate::check::{Checker, Mode, Rules};
use kadgate::config::{self, Config};

#[derive(Parser)]
#[command(
    name = "kadgate",
    version,
    about = "Gateway for Norwegian health messages to and from municipal acute inpatient (KAD) units"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (with no arguments: the embedded demo setup).
    Serve {
        /// TOML configuration file (default: the embedded demo configuration).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        /// Data directory (store, drop folder).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The standards folder (holds kith/ and fhir/).
        #[arg(long)]
        standards: Option<PathBuf>,
    },
    /// Check messages without storing them.
    Validate {
        /// One JSON object per line per file.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        standards: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Convert messages between KITH XML and FHIR R4 JSON, through the canonical model; the result
    /// is checked (XSD for KITH, R4 for FHIR).
    Convert {
        /// What to write: `fhir` (R4 JSON) or `kith` (XML).
        #[arg(long, value_parser = ["fhir", "kith"])]
        to: String,
        /// KITH format for `--to kith`: henvisning-1.1, henvisning-2.0, epikrise-1.2,
        /// dialogmelding-1.1 (default: the input's own, else the current version for the kind).
        #[arg(long)]
        format: Option<String>,
        /// Write each result into DIR (the input's file stem + .json/.xml) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        standards: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the official acceptance-test messages through the configuration and compare each AppRec
    /// with what the rules call for.
    Conformance {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        standards: Option<PathBuf>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Admission rule sets: check one, or decide referral files with one.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Show a patient's stays (timeline, and where each message went: who, when, which format,
    /// receipt status). Shows patient data: needs the operator token (env KADGATE_OPERATOR_TOKEN,
    /// as in `[api] operator_token`) and records the read in the audit log. The patient's national
    /// identity number is read from standard input (never from the command line, where the process
    /// list and the shell history would keep it).
    Stays {
        /// One JSON object per stay, one per line.
        #[arg(long)]
        json: bool,
        /// Show this stay instead of a patient's (nothing is read from standard input).
        #[arg(long)]
        stay: Option<i64>,
        /// Who is reading, for the audit log (default: $USER).
        #[arg(long = "as")]
        actor: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List the store's alerts (open ones unless --all), newest first. Reasons hold no patient data.
    Alerts {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Cleared alerts too.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Report every problem in a rule set, with line numbers.
    Check { file: PathBuf },
    /// Decide referral files (KITH or FHIR) with a rule set and print each decision.
    Test {
        /// One JSON object per line per file.
        #[arg(long)]
        json: bool,
        /// A second rule set: show which decisions it changes.
        #[arg(long)]
        compare: Option<PathBuf>,
        ruleset: PathBuf,
        #[arg(required = true)]
        cases: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Report every problem in a configuration file, with line numbers.
    Check { file: PathBuf },
}

fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    match path {
        None => Ok(Config::demo()),
        Some(p) => Config::load(p).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(2)
        }),
    }
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("KADGATE_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.log.level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.cmd {
        Cmd::Alerts {
            json,
            all,
            limit,
            config,
            data_dir,
        } => alerts(json, all, limit, config, data_dir),
        Cmd::Stays {
            json,
            stay,
            actor,
            config,
            data_dir,
        } => stays(json, stay, actor, config, data_dir),
        Cmd::Serve {
            config,
            listen,
            data_dir,
            standards,
        } => serve(config, listen, data_dir, standards),
        Cmd::Validate {
            json,
            config,
            standards,
            files,
        } => validate(json, config, standards, files),
        Cmd::Convert {
            to,
            format,
            out,
            config,
            standards,
            files,
        } => convert(
            &to,
            format.as_deref(),
            out.as_deref(),
            config,
            standards,
            files,
        ),
        Cmd::Conformance {
            json,
            config,
            standards,
        } => conformance(json, config, standards),
        Cmd::Rules {
            cmd: RulesCmd::Check { file },
        } => match kadgate::rules::RuleSet::load(&file) {
            Ok(set) => {
                println!(
                    "{}: ok ({} {}, {} rules)",
                    file.display(),
                    set.id,
                    set.version,
                    set.rules.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Cmd::Rules {
            cmd:
                RulesCmd::Test {
                    json,
                    compare,
                    ruleset,
                    cases,
                },
        } => rules_test(json, compare.as_deref(), &ruleset, &cases),
        Cmd::Config {
            cmd: ConfigCmd::Check { file },
        } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
    }
}

fn serve(
    config: Option<PathBuf>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    standards: Option<PathBuf>,
) -> ExitCode {
    let mut cfg = match load_config(config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(l) = listen {
        if l.parse::<std::net::SocketAddr>().is_err() {
            eprintln!("--listen {l:?} is not an address like 127.0.0.1:8080");
            return ExitCode::from(2);
        }
        cfg.server.listen = l;
    }
    if let Some(d) = data_dir {
        cfg.server.data_dir = d;
    }
    init_logging(&cfg);
    let standards = config::standards_dir(standards.as_deref(), &cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async move {
        let listen = cfg.server.listen.clone();
        let gw = kadgate::server::Gateway::open(cfg, &standards).await?;
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        kadgate::server::run(listener, gw, kadgate::server::signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kadgate: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_schemas(standards: &Path) -> Result<kadgate::xsd::SchemaSet, ExitCode> {
    kadgate::xsd::SchemaSet::load(&standards.join("kith")).map_err(|e| {
        eprintln!(
            "kadgate: cannot load the KITH schemas from {}: {e}",
            standards.join("kith").display()
        );
        ExitCode::from(2)
    })
}

/// Config, rules and the compiled schema set for the commands that check without serving.
fn offline_setup(
    config: Option<PathBuf>,
    standards: Option<PathBuf>,
) -> Result<(Rules, kadgate::xsd::SchemaSet, PathBuf), ExitCode> {
    let cfg = load_config(config.as_deref())?;
    let standards = config::standards_dir(standards.as_deref(), &cfg);
    let schemas = load_schemas(&standards)?;
    Ok((Rules::from_config(&cfg), schemas, standards))
}

fn validate(
    json: bool,
    config: Option<PathBuf>,
    standards: Option<PathBuf>,
    files: Vec<PathBuf>,
) -> ExitCode {
    let cfg = match load_config(config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let standards = config::standards_dir(standards.as_deref(), &cfg);
    let rules = Rules::from_config(&cfg);
    // The schema set compiles while the first files are read and decoded.
    let load = || load_schemas(&standards);
    let (reports, schemas) =
        match kadgate::report::validate_files(&rules, Mode::AssumeAddressed, load, &files) {
            Ok(r) => r,
            Err(code) => return code,
        };
    // The process ends right after printing: freeing the compiled schema set would only cost time.
    std::mem::forget(schemas);
    let mut all_valid = true;
    let mut text = String::new();
    for r in &reports {
        all_valid &= r.valid;
        if json {
            text.push_str(&r.line);
            text.push('\n');
        } else {
            text.push_str(&r.human);
        }
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::from(1);
        }
    }
    // Everything is printed: exit without dropping the reports (nothing else is left to flush).
    std::process::exit(if all_valid { 0 } else { 1 })
}

fn convert(
    to: &str,
    format: Option<&str>,
    out: Option<&Path>,
    config: Option<PathBuf>,
    standards: Option<PathBuf>,
    files: Vec<PathBuf>,
) -> ExitCode {
    use kadgate::convert::{self, Target, KITH_FORMATS};
    let target = if to == "fhir" {
        if format.is_some() {
            eprintln!("kadgate convert: --format applies to --to kith only");
            return ExitCode::from(2);
        }
        Target::Fhir
    } else {
        match format {
            None => Target::Kith(None),
            Some(name) => match KITH_FORMATS.iter().find(|(n, _)| *n == name) {
                Some((_, f)) => Target::Kith(Some(*f)),
                None => {
                    let names: Vec<&str> = KITH_FORMATS.iter().map(|(n, _)| *n).collect();
                    eprintln!(
                        "kadgate convert: unknown --format {name}; one of: {}",
                        names.join(", ")
                    );
                    return ExitCode::from(2);
                }
            },
        }
    };
    if let Some(dir) = out {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("kadgate convert: cannot create {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    }
    let (rules, schemas, _) = match offline_setup(config, standards) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut all_ok = true;
    let mut stdout = std::io::stdout().lock();
    for file in &files {
        let name = file.display();
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{name}: cannot read: {e}");
                all_ok = false;
                continue;
            }
        };
        let converted = match convert::convert(&bytes, target, &rules, &schemas) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{name}: not converted: {e}");
                all_ok = false;
                continue;
            }
        };
        all_ok &= converted.valid;
        let written = match out {
            Some(dir) => {
                let stem = file.file_stem().unwrap_or(file.as_os_str());
                let path = dir.join(stem).with_extension(converted.extension);
                match std::fs::write(&path, &converted.bytes) {
                    Ok(()) => path.display().to_string(),
                    Err(e) => {
                        eprintln!("{name}: cannot write {}: {e}", path.display());
                        all_ok = false;
                        continue;
                    }
                }
            }
            None => {
                use std::io::Write;
                let ok = stdout
                    .write_all(&converted.bytes)
                    .and_then(|()| stdout.write_all(b"\n"));
                if ok.is_err() {
                    return ExitCode::from(1);
                }
                "stdout".into()
            }
        };
        eprintln!(
            "{name} -> {written} ({:?}, {}{} finding(s))",
            converted.format,
            if converted.valid {
                ""
            } else {
                "OUTPUT INVALID, "
            },
            converted.findings.len()
        );
        for f in &converted.findings {
            eprintln!("  {:?} {} {} {}", f.severity, f.code, f.path, f.message);
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn conformance(json: bool, config: Option<PathBuf>, standards: Option<PathBuf>) -> ExitCode {
    let (rules, schemas, standards) = match offline_setup(config, standards) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let checker = Checker {
        rules: &rules,
        schemas: Some(&schemas),
        mode: Mode::Serve,
    };
    match kadgate::conformance::run(&checker, &standards) {
        Ok(results) => {
            let passed = results.iter().filter(|r| r.pass).count();
            for r in &results {
                if json {
                    println!("{}", serde_json::to_string(r).expect("serialisable"));
                } else {
                    println!("{}", r.line());
                }
            }
            if !json {
                println!("\n{passed} passed, {} failed", results.len() - passed);
            }
            if passed == results.len() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("kadgate: {e}");
            ExitCode::from(2)
        }
    }
}

fn load_ruleset(path: &Path) -> Result<kadgate::rules::RuleSet, ExitCode> {
    kadgate::rules::RuleSet::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

/// `kadgate rules test`: one decision per file (and the other rule set's, with `--compare`).
fn rules_test(json: bool, compare: Option<&Path>, ruleset: &Path, cases: &[PathBuf]) -> ExitCode {
    use kadgate::rules::{decide, Decision};
    let set = match load_ruleset(ruleset) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let other = match compare.map(load_ruleset).transpose() {
        Ok(o) => o,
        Err(code) => return code,
    };
    let rules = Rules::from_config(&Config::demo());
    let today = chrono::Local::now().date_naive();
    let mut unreadable = false;
    let mut text = String::new();
    let ids = |d: &Decision| d.fired.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    for file in cases {
        let name = file.display().to_string();
        let msg = std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| kadgate::convert::read_message(&b, &rules).map_err(|e| e.to_string()));
        let msg = match msg {
            Ok((m, _)) if matches!(m.body, kadgate::model::Body::Referral(_)) => m,
            Ok(_) => {
                unreadable = true;
                eprintln!("{name}: not a referral");
                continue;
            }
            Err(e) => {
                unreadable = true;
                eprintln!("{name}: cannot read: {e}");
                continue;
            }
        };
        let d = decide(&set, &msg, today);
        let o = other.as_ref().map(|s| decide(s, &msg, today));
        if json {
            let mut line = serde_json::json!({
                "file": name,
                "decision": d.decision.word(),
                "news2": d.news2,
                "rules": ids(&d),
                "reasons": d.reasons_en,
                "reasons_no": d.reasons_no,
                "fired": d.fired,
                "ruleset": { "id": d.ruleset_id, "version": d.ruleset_version },
            });
            if let (Some(o), Some(map)) = (&o, line.as_object_mut()) {
                map.insert("compare_decision".into(), o.decision.word().into());
                map.insert("compare_rules".into(), ids(o).into());
                map.insert("changed".into(), (o.decision != d.decision).into());
            }
            text.push_str(&line.to_string());
            text.push('\n');
        } else {
            let news2 = d
                .news2
                .map_or_else(|| "not computed".to_string(), |n| n.to_string());
            text.push_str(&format!("{name}: {}", d.decision.word()));
            if let Some(o) = &o {
                let mark = if o.decision != d.decision {
                    "CHANGED"
                } else {
                    "same"
                };
                text.push_str(&format!(" -> {} ({mark})", o.decision.word()));
            }
            text.push_str(&format!(
                "\n  NEWS2: {news2}\n  rules: {}\n",
                ids(&d).join(", ")
            ));
            for r in &d.reasons_en {
                text.push_str(&format!("  - {r}\n"));
            }
        }
    }
    print!("{text}");
    if unreadable {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The configuration of a command that reads the store (`--config`, `--data-dir`).
fn store_config(config: Option<&Path>, data_dir: Option<PathBuf>) -> Result<Config, ExitCode> {
    let mut cfg = load_config(config)?;
    if let Some(d) = data_dir {
        cfg.server.data_dir = d;
    }
    Ok(cfg)
}

/// Open the store the configuration names (SQLite file or PostgreSQL) on a one-thread runtime,
/// run `read` on it, close it; on failure say "cannot read `what`" and exit 2.
fn read_store<T, F, Fut>(cfg: &Config, what: &str, read: F) -> Result<T, ExitCode>
where
    F: FnOnce(std::sync::Arc<dyn kadgate::store::Store>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("kadgate: {e}");
            ExitCode::from(2)
        })?;
    rt.block_on(async {
        let store = kadgate::server::open_store(cfg).await?;
        let value = read(store.clone()).await?;
        store.close().await?;
        anyhow::Ok(value)
    })
    .map_err(|e| {
        eprintln!("kadgate: cannot read {what}: {e}");
        ExitCode::from(2)
    })
}

/// `kadgate stays`: a patient's stays (or one stay), access-controlled and audited.
fn stays(
    json: bool,
    stay: Option<i64>,
    actor: Option<String>,
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> ExitCode {
    let cfg = match store_config(config.as_deref(), data_dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(want) = cfg.api.operator_token.clone() else {
        eprintln!(
            "kadgate: stays show patient data: set [api] operator_token in the configuration"
        );
        return ExitCode::from(3);
    };
    let given = std::env::var("KADGATE_OPERATOR_TOKEN").unwrap_or_default();
    if given.trim().is_empty() || given.trim() != want {
        eprintln!(
            "kadgate: stays show patient data: KADGATE_OPERATOR_TOKEN must hold the operator token"
        );
        return ExitCode::from(3);
    }
    let nin = match stay {
        Some(_) => None,
        None => {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() {
                eprintln!(
                    "kadgate: expected the patient's national identity number on standard input"
                );
                return ExitCode::from(2);
            }
            let nin = line.trim().to_owned();
            if kadgate::ident::parse_person_number(&nin).is_err() {
                eprintln!("kadgate: standard input holds no valid national identity number (11 digits, check digits)");
                return ExitCode::from(2);
            }
            Some(nin)
        }
    };
    let who = actor
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let views = match read_store(&cfg, "stays", |store| async move {
        let lookup = match (&nin, stay) {
            (Some(n), _) => kadgate::stay::view::Lookup::Patient(n),
            (None, Some(id)) => kadgate::stay::view::Lookup::Stay(id),
            (None, None) => unreachable!("a stay id or a patient"),
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let views =
            kadgate::stay::view::audited(store.as_ref(), &format!("cli:{who}"), lookup, &now)
                .await?;
        anyhow::Ok(views)
    }) {
        Ok(v) => v,
        Err(code) => return code,
    };
    for v in &views {
        if json {
            println!("{}", serde_json::to_string(v).unwrap_or_default());
            continue;
        }
        println!(
            "stay #{} {} at {} ({}){}",
            v.id,
            v.state,
            v.unit_name
                .as_deref()
                .or(v.unit_key.as_deref())
                .unwrap_or("-"),
            v.unit_key.as_deref().unwrap_or("-"),
            v.decision
                .as_ref()
                .map(|d| format!(", decision {}", d.decision.decision))
                .unwrap_or_default()
        );
        for t in &v.timeline {
            println!(
                "  {}  {}{}",
                t.at,
                t.kind,
                if t.note.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", t.note)
                }
            );
        }
        for d in &v.deliveries {
            println!(
                "  -> {} {} {} [{}] {}{}",
                d.purpose,
                d.recipient_key,
                d.recipient_name.as_deref().unwrap_or(""),
                d.format,
                d.state,
                d.acked_at
                    .as_deref()
                    .or(d.sent_at.as_deref())
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default()
            );
        }
    }
    if !json && views.is_empty() {
        println!("no stays");
    }
    ExitCode::SUCCESS
}

/// `kadgate alerts`: read the store named by the configuration (SQLite file or PostgreSQL).
fn alerts(
    json: bool,
    all: bool,
    limit: i64,
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> ExitCode {
    let cfg = match store_config(config.as_deref(), data_dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let alerts = match read_store(&cfg, "alerts", |store| async move {
        Ok(store.alerts(!all, limit).await?)
    }) {
        Ok(a) => a,
        Err(code) => return code,
    };
    for a in &alerts {
        if json {
            println!("{}", serde_json::to_string(a).unwrap_or_default());
        } else {
            println!(
                "#{} {} {} [{}] {}{}",
                a.id,
                a.raised_at,
                a.kind,
                a.unit_key.as_deref().unwrap_or("-"),
                a.reason,
                a.cleared_at
                    .as_deref()
                    .map(|c| format!(" (cleared {c})"))
                    .unwrap_or_default()
            );
        }
    }
    if !json && alerts.is_empty() {
        println!("no {}alerts", if all { "" } else { "open " });
    }
    ExitCode::SUCCESS
}
