//! Policy hot paths: opening (validating) a snapshot, and the lookups every
//! request makes against the archived policy.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use policy::{keys, snapshot, Snapshot};
use std::collections::HashMap;
use std::fmt::Write;
use std::hint::black_box;

/// A policy of realistic size: `aliases` models over 8 providers, 64 keys.
fn policy_yaml(aliases: usize) -> String {
    let mut y = String::from("version: 1\nproviders:\n");
    for p in 0..8 {
        let _ = write!(y, "  p{p}:\n    kind: openai\n    base_url: https://p{p}.example.com/v1\n    keys:\n      - key: sk-{p}-a\n      - key: sk-{p}-b\n        tier: 1\n");
    }
    y.push_str("models:\n");
    for a in 0..aliases {
        let _ = write!(y, "  model-{a:04}:\n    targets:\n      - provider: p{}\n        model: m{a}\n      - provider: p{}\n        model: m{a}\n", a % 8, (a + 1) % 8);
    }
    y.push_str("client_keys:\n");
    for k in 0..64 {
        let _ = write!(
            y,
            "  - name: key{k}\n    key: sk-sy-bench-client-{k:04}\n    models: [\"model-*\"]\n"
        );
    }
    y
}

fn bench(c: &mut Criterion) {
    let mut open = c.benchmark_group("snapshot_open");
    for aliases in [10, 1000] {
        let compiled = policy::compile_yaml(&policy_yaml(aliases), "bench.yaml", &HashMap::new())
            .expect("compiles");
        let bytes = snapshot::encode(&compiled.policy, 0).expect("encodes");
        open.throughput(Throughput::Bytes(bytes.len() as u64));
        open.bench_with_input(BenchmarkId::from_parameter(aliases), &bytes, |b, bytes| {
            b.iter(|| Snapshot::from_bytes(black_box(bytes)).expect("valid"))
        });
    }
    open.finish();

    let compiled =
        policy::compile_yaml(&policy_yaml(1000), "bench.yaml", &HashMap::new()).expect("compiles");
    let snap = Snapshot::from_bytes(&snapshot::encode(&compiled.policy, 0).expect("encodes"))
        .expect("valid");
    let p = snap.policy();
    c.bench_function("alias_lookup/1000", |b| {
        b.iter(|| p.alias(black_box("model-0777")).expect("present"))
    });
    c.bench_function("alias_lookup_miss/1000", |b| {
        b.iter(|| p.alias(black_box("model-x")))
    });
    let hash = keys::sha256("sk-sy-bench-client-0042");
    c.bench_function("client_key_lookup/64", |b| {
        b.iter(|| p.client_key(black_box(&hash)).expect("present"))
    });
    c.bench_function("client_key_hash_and_lookup/64", |b| {
        b.iter(|| {
            let h = keys::sha256(black_box("sk-sy-bench-client-0042"));
            p.client_key(&h).expect("present").allows("model-0001")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
