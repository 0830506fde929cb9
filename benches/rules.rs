//! Time of one admission decision (`kadgate::rules::decide`) on an already decoded referral, with
//! the national default rule set: a referral with vital signs (NEWS2 computed) and free text, and
//! one that ends in an exclusion; and the ~10 KB referral of the end-to-end benchmark, whose long
//! free text is what the key-phrase search spends its time on.
//!
//! Run: `cargo bench --bench rules`.

use std::path::PathBuf;

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion};
use kadgate::check::Rules;
use kadgate::config::Config;
use kadgate::model::Message;
use kadgate::rules::{decide, RuleSet};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn referral(name: &str) -> Message {
    let path = match name {
        "load-10k" => fixture("fixtures/load/fhir-referral-10k.json"),
        _ => fixture(&format!("fixtures/rules/vignettes/{name}.json")),
    };
    let bytes = std::fs::read(&path).expect("vignette readable");
    let rules = Rules::from_config(&Config::demo());
    kadgate::convert::read_message(&bytes, &rules)
        .expect("vignette decodes")
        .0
}

fn bench(c: &mut Criterion) {
    let set = RuleSet::load(&fixture("fixtures/rules/national-default.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let today = NaiveDate::from_ymd_opt(2026, 3, 2).expect("a date");
    let mut g = c.benchmark_group("rules/decide");
    for name in [
        "rev-news2-5",
        "weak-threats",
        "mh-excl-violence-flag",
        "load-10k",
    ] {
        let msg = referral(name);
        g.bench_function(name, |b| {
            b.iter(|| decide(&set, std::hint::black_box(&msg), today))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
