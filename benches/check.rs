//! Time of one whole check (scan + decode + semantic checks + XSD validation) per message kind,
//! plus `xml::scan` alone and `SchemaSet::validate` alone on the 10 KB load message.
//!
//! Run: `cargo bench --bench check`. Standards folder: `KADGATE_STANDARDS_DIR`, else
//! `$CARGO_MANIFEST_DIR/../shared/standards`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kadgate::check::{Checker, Mode, Rules};
use kadgate::config::Config;
use kadgate::xsd::SchemaSet;

fn standards() -> PathBuf {
    match std::env::var_os("KADGATE_STANDARDS_DIR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/standards"),
    }
}

/// One representative message per kind: (benchmark id, path relative to `standards/kith`).
const KINDS: &[(&str, &str)] = &[
    (
        "henvisning-1.0",
        "henvisning/examples/sarepta-akseptansetest/TestcaseHenvisningMottak/Case1.xml",
    ),
    (
        "henvisning-1.1",
        "henvisning/examples/sarepta/Henvisning_v1-1/henvisning_v1.1_n.xml",
    ),
    (
        "henvisning-2.0",
        "henvisning/examples/sarepta/Henvisning_v2-0/Henvisning_ny_tilstand_v2-0_Ny.xml",
    ),
    (
        "epikrise-1.1",
        "epikrise/examples/sarepta/Epikrise_v1-1/epikrise_v1.1_n.xml",
    ),
    (
        "epikrise-1.2",
        "epikrise/examples/sarepta/Epikrise_v1-2/epikrise_v1.2_n.xml",
    ),
    (
        "dialogmelding-1.0",
        "dialogmelding/examples/sarepta/Dialogmelding-v1-0/Dialogmelding_avvik_v1-0.xml",
    ),
    (
        "dialogmelding-1.1",
        "dialogmelding/examples/sarepta/Dialogmelding-v1-1/Status_paa_henvisning-InnkaltEtterViderehenvisning.xml",
    ),
    (
        "plo-1.5",
        "plo/examples/sarepta/plo-1_5/Innleggelsesrapport-v1_5/Innleggelsesrapport_v1-5_Ny.xml",
    ),
    (
        "plo-1.6",
        "plo/examples/sarepta/plo-1_6/innleggelsesrapport_1_6_mottak/Innleggelsesrapport_v1-6_Ny.xml",
    ),
    (
        "apprec-1.1",
        "apprec/examples/fiks-nhn-client/1.1/example-ok.xml",
    ),
];

const LOAD_MESSAGE: &str = "fixtures/load/dialog-10k.xml";

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

fn benches(c: &mut Criterion) {
    let kith = standards().join("kith");
    let schemas = SchemaSet::load(&kith).expect("schema set loads");
    let rules = Rules::from_config(&Config::demo());
    let checker = Checker {
        rules: &rules,
        schemas: Some(&schemas),
        mode: Mode::AssumeAddressed,
    };
    let load = read(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(LOAD_MESSAGE));

    let mut g = c.benchmark_group("check");
    for (id, rel) in KINDS {
        let bytes = read(&kith.join(rel));
        let o = checker.check(&bytes);
        assert_eq!(
            o.schema_valid,
            Some(true),
            "{id}: {rel} is not schema-valid"
        );
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(*id, |b| {
            b.iter(|| checker.check(std::hint::black_box(&bytes)))
        });
    }
    g.throughput(Throughput::Bytes(load.len() as u64));
    g.bench_function("dialog-10k", |b| {
        b.iter(|| checker.check(std::hint::black_box(&load)))
    });
    g.finish();

    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(load.len() as u64));
    g.bench_function("dialog-10k", |b| {
        b.iter(|| kadgate::xml::scan(std::hint::black_box(&load), &rules.limits).is_ok())
    });
    g.finish();

    let mut g = c.benchmark_group("xsd");
    g.throughput(Throughput::Bytes(load.len() as u64));
    g.bench_function("dialog-10k", |b| {
        b.iter(|| schemas.validate(std::hint::black_box(&load)).schema_valid())
    });
    g.finish();
}

criterion_group! {
    name = check;
    config = config();
    targets = benches
}
criterion_main!(check);
