//! The tenancy hot paths: the auth check (hash, constant-time lookup,
//! status, expiry, source address), a token bucket under contention, a
//! budget reservation, and the ledger writer's throughput into SQLite.

use bench::contended;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::auth;
use engine::ledger::sqlite::SqliteSink;
use engine::ledger::UsageLedger;
use engine::limits::token_bucket::{mono_ns, TokenBucket};
use engine::meter::record::UsageRecord;
use engine::meter::tap::UsageSource;
use engine::meter::usage::Usage;
use policy::{snapshot, Snapshot};
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn keys_snapshot(n: usize) -> Snapshot {
    let mut src = String::from(
        "version: 1\nproviders:\n  p: {kind: openai, base_url: http://127.0.0.1:1/v1}\nclient_keys:\n",
    );
    for i in 0..n {
        src.push_str(&format!(
            "  - {{name: k{i}, key: sk-sy-bench-{i:016}, source_ips: [10.0.0.0/8, '2001:db8::/32'], expires_at: '2099-01-01T00:00:00Z'}}\n"
        ));
    }
    let c = policy::compile_yaml(&src, "bench.yaml", &std::collections::HashMap::new())
        .expect("compiles");
    Snapshot::from_bytes(&snapshot::encode(&c.policy, 0).expect("encodes")).expect("valid")
}

fn record(i: u64) -> UsageRecord {
    UsageRecord {
        request_id: format!("bench-{i}"),
        ts_ms: 1_800_000_000_000 + i as i64,
        key: "k".into(),
        user: "u".into(),
        team: "t".into(),
        task: String::new(),
        inbound: "openai",
        alias: "fast".into(),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        attempts: 1,
        status: 200,
        error: String::new(),
        usage: Usage {
            input: 1200,
            output: 300,
            ..Usage::default()
        },
        usage_source: UsageSource::Provider,
        cost_nanos: 360_000,
        cache_hit: false,
        total_us: 900,
        ttfb_us: 400,
        overhead_us: 60,
        route: String::new(),
        route_label: String::new(),
        route_score: None,
    }
}

fn bench(c: &mut Criterion) {
    let snap = keys_snapshot(1000);
    let policy = snap.policy();
    let ip = "10.1.2.3".parse().ok();
    let now = 1_800_000_000;
    let mut g = c.benchmark_group("auth");
    g.bench_function("check_in_1000_keys", |b| {
        b.iter(|| {
            let key = black_box(b"sk-sy-bench-0000000000000777".as_slice());
            black_box(auth::authenticate(policy, Some(key), ip, now).is_ok())
        })
    });
    g.finish();

    let bucket = TokenBucket::default();
    let mut g = c.benchmark_group("token_bucket");
    for threads in [1usize, 2, 4] {
        g.bench_with_input(BenchmarkId::new("try_take", threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                contended(t, iters, || {
                    // A rate no run can exhaust: every take succeeds and
                    // each is one contended compare-and-swap.
                    black_box(bucket.try_take(mono_ns(), 1, u64::MAX / 2).is_ok());
                })
            })
        });
    }
    g.finish();

    let counter = engine::budgets::spend::SpendCounter::default();
    c.bench_function("budget/reserve_settle", |b| {
        b.iter(|| {
            if counter.reserve(1, 1000, u64::MAX >> 8).is_ok() {
                counter.settle(1, 1000, 900);
            }
        })
    });

    let dir = std::env::temp_dir().join(format!("switchyard-bench-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut g = c.benchmark_group("ledger");
    g.sample_size(10);
    const N: u64 = 20_000;
    g.throughput(Throughput::Elements(N));
    let mut run = 0;
    g.bench_function("write_20k_records", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                run += 1;
                let sink = SqliteSink::open(&dir.join(format!("u{run}.db"))).expect("sink");
                let ledger =
                    UsageLedger::start(Box::new(sink), N as usize, Duration::from_millis(50))
                        .expect("ledger");
                let records: Vec<UsageRecord> = (0..N).map(record).collect();
                let start = Instant::now();
                for r in records {
                    ledger.record(r);
                }
                ledger.close();
                total += start.elapsed();
                assert_eq!(ledger.stats.written.load(Ordering::Relaxed), N);
            }
            total
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
