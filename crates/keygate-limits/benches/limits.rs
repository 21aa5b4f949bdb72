//! The cost of the limit check on the hot path, on one node: one request checked against one
//! limit, and against the three a key with a project typically has (the key's rate, the
//! project's rate, the key's quota), among many keys.
//! Run with `cargo bench -p keygate-limits --bench limits`; results go in docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keygate_limits::{Check, Limit, LocalLimiter};

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
                interval: Duration::from_secs(86_400),
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

criterion_group!(benches, local);
criterion_main!(benches);
