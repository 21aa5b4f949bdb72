//! The cost of the limit check on the hot path, on one node: one request checked against one
//! limit, and against the three a key with a project typically has (the key's rate, the
//! project's rate, the key's quota), among many keys.
//! The same through Redis, for limits exact across nodes.
//! Run with `cargo bench -p keygate-limits --bench limits`; results go in docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keygate_limits::{Check, GlobalLimiter, Limit, LocalLimiter, Window};

const NOW: u64 = 1_771_063_200 * 1_000_000;

fn checks(key: usize) -> Vec<Check> {
    vec![
        Check {
            key: format!("key:{key}:rpm"),
            limit: Limit::Rate {
                limit: 1_000_000,
                period: Duration::from_secs(60),
            },
            cost: 1,
        },
        Check {
            key: "project:p:rpm".to_owned(),
            limit: Limit::Rate {
                limit: u64::MAX / 2,
                period: Duration::from_secs(60),
            },
            cost: 1,
        },
        Check {
            key: format!("key:{key}:quota"),
            limit: Limit::Quota {
                amount: u64::MAX / 2,
                window: Window::Day,
            },
            cost: 1,
        },
    ]
}

fn local(c: &mut Criterion) {
    let limiter = LocalLimiter::new();
    let sets: Vec<Vec<Check>> = (0..10_000).map(checks).collect();
    for set in &sets {
        limiter.check(NOW, set);
    }
    let mut n = 0;
    c.bench_function("local/one_limit", |b| {
        b.iter(|| {
            n = (n + 1) % sets.len();
            black_box(limiter.check(NOW + n as u64, &sets[n][..1]))
        });
    });
    c.bench_function("local/three_limits", |b| {
        b.iter(|| {
            n = (n + 1) % sets.len();
            black_box(limiter.check(NOW + n as u64, &sets[n]))
        });
    });
}

/// The same checks through Redis (`KEYGATE_BENCH_REDIS_URL`, default the machine's
/// `redis://127.0.0.1:6379`): one round trip and one Lua script per request, from one client,
/// one request at a time — the latency a request sees, not Redis's throughput.
#[allow(
    clippy::print_stderr,
    reason = "says why the Redis benchmarks did not run"
)]
fn redis(c: &mut Criterion) {
    let url = std::env::var("KEYGATE_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Ok(limiter) = runtime.block_on(GlobalLimiter::connect(&url, Duration::from_secs(1))) else {
        eprintln!("redis benchmarks skipped: no Redis at {url}");
        return;
    };
    let sets: Vec<Vec<Check>> = (0..1_000)
        .map(|n| {
            checks(n)
                .into_iter()
                .map(|check| Check {
                    key: format!("keygate-bench:{}", check.key),
                    ..check
                })
                .collect()
        })
        .collect();
    let mut n = 0;
    c.bench_function("redis/one_limit", |b| {
        b.iter(|| {
            n = (n + 1) % sets.len();
            black_box(
                runtime
                    .block_on(limiter.check(NOW, &sets[n][..1], &[]))
                    .unwrap(),
            )
        });
    });
    c.bench_function("redis/three_limits", |b| {
        b.iter(|| {
            n = (n + 1) % sets.len();
            black_box(runtime.block_on(limiter.check(NOW, &sets[n], &[])).unwrap())
        });
    });
}

criterion_group!(benches, local, redis);
criterion_main!(benches);
