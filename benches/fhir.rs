//! Time of FHIR validation per bundle: hardened JSON read + full validation (`validate_bytes` with the
//! KAD rules on), on the example bundles the oracle benchmark (`scripts/oracle-bench.mjs`) also times.
//!
//! Run: `cargo bench --bench fhir`, or `scripts/bench-fhir-validate.sh` for the comparison with the
//! oracle. Standards folder: `KADGATE_STANDARDS_DIR`, else `$CARGO_MANIFEST_DIR/../shared/standards`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kadgate::fhir::validate::{validate_bytes, Options};

fn standards() -> PathBuf {
    match std::env::var_os("KADGATE_STANDARDS_DIR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/standards"),
    }
}

/// (benchmark id, path relative to `standards/fhir/examples`); the same list as oracle-bench.mjs.
pub const BUNDLES: &[(&str, &str)] = &[
    ("kad-referral-message", "own/kad-referral-message.json"),
    ("epikrise-document", "own/epikrise-document.json"),
    ("epikrise-message", "own/epikrise-message.json"),
    ("Bundle-father", "hl7-r4/document/Bundle-father.json"),
];

fn benches(c: &mut Criterion) {
    let dir = standards().join("fhir/examples");
    let opts = Options::default();
    // Load the definitions outside the timing, as a running server has them.
    let _ = kadgate::fhir::r4::defs();
    let mut g = c.benchmark_group("fhir-validate");
    for (id, rel) in BUNDLES {
        let path = dir.join(rel);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r = validate_bytes(&bytes, &Options::r4());
        assert!(r.valid, "{id}: {rel} is not valid: {:?}", r.findings);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(*id, |b| {
            b.iter(|| validate_bytes(std::hint::black_box(&bytes), &opts))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = fhir;
    config = config();
    targets = benches
}
criterion_main!(fhir);
