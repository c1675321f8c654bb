//! Key selection, breaker checks and the retry budget, alone and under
//! contention from several threads (all state is shared and lock-free).

use bench::contended;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use engine::resilience::breaker::{Admission, BreakerConfig, CircuitBreaker};
use engine::resilience::budget::{BudgetConfig, RetryBudget};
use engine::resilience::health::HealthRegistry;
use engine::resilience::keypool::KeyPool;
use policy::{snapshot, Snapshot};
use std::hint::black_box;
use std::sync::Arc;

fn provider_snapshot() -> Snapshot {
    let src = "version: 1\nproviders:\n  p:\n    kind: openai\n    base_url: http://127.0.0.1:1/v1\n    keys: [{key: a}, {key: b}, {key: c}, {key: d}, {key: e, tier: 1}]\n";
    let c = policy::compile_yaml(src, "bench.yaml", &std::collections::HashMap::new())
        .expect("compiles");
    Snapshot::from_bytes(&snapshot::encode(&c.policy, 0).expect("encodes")).expect("valid")
}

fn bench(c: &mut Criterion) {
    let snap = provider_snapshot();
    let registry = HealthRegistry::default();
    let pool = Arc::new(KeyPool::build(&snap.policy().providers[0], &registry));
    // One key cooling down, so selection has something to skip.
    pool.keys()[1].cool_down_until(u64::MAX);

    let mut g = c.benchmark_group("key_select");
    for threads in [1usize, 2, 4] {
        g.bench_with_input(
            BenchmarkId::new("acquire_release", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    contended(t, iters, || {
                        drop(black_box(pool.acquire(0, &[]).expect("a key")))
                    })
                })
            },
        );
    }
    g.finish();

    let cfg = BreakerConfig {
        consecutive_failures: 5,
        error_ratio_milli: 500,
        min_calls: 20,
        window_ms: 10_000,
        open_ms: 1000,
        max_open_ms: 60_000,
    };
    let breaker = CircuitBreaker::default();
    let mut g = c.benchmark_group("breaker");
    for threads in [1usize, 2, 4] {
        g.bench_with_input(
            BenchmarkId::new("admit_and_record", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    contended(t, iters, || {
                        let a = breaker.admit(black_box(5_000));
                        breaker.on_success(&cfg, 5_000, a);
                    })
                })
            },
        );
    }
    g.bench_function("admit_only", |b| {
        b.iter(|| black_box(breaker.admit(black_box(5_000))) == Admission::Allowed)
    });
    g.finish();

    let budget_cfg = BudgetConfig {
        ratio_milli: 200,
        min_per_second: 10,
    };
    let budget = RetryBudget::new(&budget_cfg, 0);
    let mut g = c.benchmark_group("retry_budget");
    for threads in [1usize, 2, 4] {
        g.bench_with_input(
            BenchmarkId::new("deposit_withdraw", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    contended(t, iters, || {
                        budget.deposit(&budget_cfg);
                        black_box(budget.try_withdraw(&budget_cfg, 1));
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
