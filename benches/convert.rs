//! FHIR conversion: decode and encode per message kind on the shared FHIR examples, the whole
//! KITH → model → FHIR path for a Henvisning and an Epikrise, and — for the 10 KB load referral —
//! forwarding it to a FHIR unit readdressed vs encoding it again from the model (what admission
//! does per referral).
//!
//! Run: `cargo bench --bench convert`. Standards folder: `KADGATE_STANDARDS_DIR`, else
//! `$CARGO_MANIFEST_DIR/../shared/standards`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use kadgate::fhir::decode::decode;
use kadgate::fhir::encode::{encode, encode_epicrisis_message};
use kadgate::kith::detect::{detect, Detection};
use kadgate::model::{Body, Message};
use kadgate::xml::{scan, Limits};

fn standards() -> PathBuf {
    match std::env::var_os("KADGATE_STANDARDS_DIR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/standards"),
    }
}

/// (benchmark id, path relative to `standards/fhir/examples`).
const FHIR: &[(&str, &str)] = &[
    ("referral", "own/kad-referral-message.json"),
    ("epicrisis-document", "own/epikrise-document.json"),
    ("epicrisis-message", "own/epikrise-message.json"),
    (
        "response-fatal-error",
        "own/kad-referral-response-fatal-error.json",
    ),
];

/// (benchmark id, path relative to `standards/kith`).
const KITH: &[(&str, &str)] = &[
    (
        "henvisning-1.1",
        "henvisning/examples/sarepta/Henvisning_v1-1/henvisning_v1.1_n.xml",
    ),
    (
        "epikrise-1.2",
        "epikrise/examples/sarepta/Epikrise_v1-2/epikrise_v1.2_n.xml",
    ),
];

fn fhir_encode(m: &Message, as_message: bool) -> serde_json::Value {
    let r = if as_message && matches!(m.body, Body::Epicrisis(_)) {
        encode_epicrisis_message(m)
    } else {
        encode(m)
    };
    r.expect("example encodes")
}

fn kith_to_fhir(bytes: &[u8]) -> serde_json::Value {
    let doc = scan(bytes, &Limits::default()).expect("example reads");
    let Detection::Known(d) = detect(&doc.root) else {
        panic!("example not recognised")
    };
    fhir_encode(&kadgate::kith::decode::decode(&d).message, true)
}

fn bench(c: &mut Criterion) {
    let dir = standards();
    let mut g = c.benchmark_group("fhir");
    for (id, rel) in FHIR {
        let bytes = std::fs::read(dir.join("fhir/examples").join(rel)).expect("example readable");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("example is JSON");
        let as_message = json["type"] == "message";
        let model = decode(&json).message.expect("example decodes");
        g.bench_function(format!("decode/{id}"), |b| {
            b.iter(|| decode(&serde_json::from_slice(std::hint::black_box(&bytes)).unwrap()))
        });
        g.bench_function(format!("encode/{id}"), |b| {
            b.iter(|| {
                serde_json::to_vec(&fhir_encode(std::hint::black_box(&model), as_message)).unwrap()
            })
        });
    }
    for (id, rel) in KITH {
        let bytes = std::fs::read(dir.join("kith").join(rel)).expect("example readable");
        g.bench_function(format!("kith-to-fhir/{id}"), |b| {
            b.iter(|| serde_json::to_vec(&kith_to_fhir(std::hint::black_box(&bytes))).unwrap())
        });
    }
    let load = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/load/fhir-referral-10k.json"
    ))
    .expect("load referral readable");
    let model = decode(&serde_json::from_slice(&load).unwrap())
        .message
        .expect("load referral decodes");
    let unit = model.header.receiver.clone().expect("a receiver");
    g.bench_function("to-unit/encode-from-model/referral-10k", |b| {
        b.iter(|| serde_json::to_vec(&fhir_encode(std::hint::black_box(&model), true)).unwrap())
    });
    g.bench_function("to-unit/forward-readdressed/referral-10k", |b| {
        b.iter(|| {
            kadgate::fhir::forward::readdress(
                std::hint::black_box(&load),
                &kadgate::fhir::forward::Readdress {
                    msg_id: "7d0c2a3e-5b1f-4c2e-9a61-0f3b8e2d4c10",
                    bundle_id: "0b9e7c55-2d41-4f3a-8c7e-6a5d4c3b2a19",
                    now: "2026-11-25T12:00:00Z",
                    receiver: &unit,
                },
            )
            .expect("forwardable")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
