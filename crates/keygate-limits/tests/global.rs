//! The shared limiter against the machine's Redis (`KEYGATE_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): two limiters, as two nodes would hold, hammered concurrently
//! against one limit admit exactly that many. A test that needs Redis fails, never skips,
//! when it is unreachable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::time::Duration;

use keygate_limits::{Check, GlobalLimiter, Kind, Limit, Settlement, Slot, Window};

fn url() -> String {
    std::env::var("KEYGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key no other run uses.
fn fresh(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("keygate-test:{{{name}-{nanos}-{}}}", std::process::id())
}

fn now() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

async fn node() -> GlobalLimiter {
    GlobalLimiter::connect(&url(), Duration::from_secs(2))
        .await
        .unwrap()
}

fn rate(key: &str, limit: u64, period: Duration) -> Check {
    Check {
        key: key.to_owned(),
        limit: Limit::Rate { limit, period },
        cost: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_admit_exactly_the_limit() {
    let a = GlobalLimiter::connect(&url(), Duration::from_secs(2))
        .await
        .unwrap();
    let b = GlobalLimiter::connect(&url(), Duration::from_secs(2))
        .await
        .unwrap();
    let key = fresh("hot");
    let limit = 300;
    let mut tasks = Vec::new();
    for node in [a, b] {
        for _ in 0..4 {
            let node = node.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let mut admitted = 0u64;
                for _ in 0..150 {
                    let check = [rate(&key, limit, Duration::from_secs(3600))];
                    if node.check(now(), &check, &[]).await.unwrap().admitted() {
                        admitted += 1;
                    }
                }
                admitted
            }));
        }
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    assert_eq!(
        admitted, limit,
        "1200 attempts on two nodes against a limit of 300"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_consumes_none_of_the_rates() {
    let node = GlobalLimiter::connect(&url(), Duration::from_secs(2))
        .await
        .unwrap();
    let (wide, narrow) = (fresh("wide"), fresh("narrow"));
    let checks = [
        rate(&wide, 10, Duration::from_secs(60)),
        rate(&narrow, 1, Duration::from_secs(60)),
    ];
    let first = node.check(now(), &checks, &[]).await.unwrap();
    assert!(first.admitted());
    assert_eq!(first.states[0].remaining, 9);
    let second = node.check(now(), &checks, &[]).await.unwrap();
    let refusal = second.refused.unwrap();
    assert_eq!(refusal.index, 1);
    let wait = refusal.retry_after.unwrap();
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    let alone = node.check(now(), &checks[..1], &[]).await.unwrap();
    assert_eq!(
        alone.states[0].remaining, 8,
        "the refused request took nothing of `wide`"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let started = std::time::Instant::now();
    let result = GlobalLimiter::connect(
        &format!("redis://127.0.0.1:{port}"),
        Duration::from_millis(200),
    )
    .await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_budgets_are_shared_and_settled() {
    let (a, b) = (node().await, node().await);
    let (quota, budget) = (fresh("quota"), fresh("budget"));
    let checks = |cost| {
        [
            Check {
                key: quota.clone(),
                limit: Limit::Quota {
                    amount: 3,
                    window: Window::Day,
                },
                cost: 1,
            },
            Check {
                key: budget.clone(),
                limit: Limit::Budget {
                    limit: 1_000,
                    window: Window::Month,
                },
                cost,
            },
        ]
    };
    let at = now();
    let first = a.check(at, &checks(600), &[]).await.unwrap();
    assert!(first.admitted());
    assert_eq!(first.states[0].remaining, 2);
    assert_eq!(first.states[1].remaining, 400);
    let over = b.check(now(), &checks(600), &[]).await.unwrap();
    let refusal = over.refused.unwrap();
    assert_eq!((refusal.index, refusal.kind), (1, Kind::Budget));
    assert!(refusal.retry_after.is_some(), "the next month may pass it");
    // The request used 100 of its 600.
    b.settle(&[Settlement {
        check: checks(600)[1].clone(),
        at,
        actual: 100,
    }])
    .await
    .unwrap();
    let states = a.peek(now(), &checks(0)).await.unwrap();
    assert_eq!(states[0].remaining, 2, "the refused request used no quota");
    assert_eq!(states[1].remaining, 900);
    assert!(b.check(now(), &checks(600), &[]).await.unwrap().admitted());
    assert!(a.check(now(), &checks(1), &[]).await.unwrap().admitted());
    let spent = b.check(now(), &checks(1), &[]).await.unwrap();
    assert_eq!(spent.refused.unwrap().kind, Kind::Quota, "three uses a day");
    let too_big = a.check(now(), &checks(5_000)[1..], &[]).await.unwrap();
    assert_eq!(
        too_big.refused.unwrap().retry_after,
        None,
        "more than the whole budget never passes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_in_flight_are_shared_and_released() {
    let (a, b) = (node().await, node().await);
    let key = fresh("slots");
    let slot = |holder| Slot {
        key: &key,
        max: 2,
        holder,
    };
    assert!(a.check(now(), &[], &[slot("r1")]).await.unwrap().admitted());
    assert!(b.check(now(), &[], &[slot("r2")]).await.unwrap().admitted());
    let third = a.check(now(), &[], &[slot("r3")]).await.unwrap();
    assert_eq!(third.refused.unwrap().kind, Kind::Concurrency);
    b.release(&[slot("r1")]).await.unwrap();
    assert!(a.check(now(), &[], &[slot("r3")]).await.unwrap().admitted());
    // A rate that refuses takes no slot.
    let narrow = fresh("narrow-slot");
    let refused_rate = [rate(&narrow, 1, Duration::from_secs(60))];
    assert!(a.check(now(), &refused_rate, &[]).await.unwrap().admitted());
    b.release(&[slot("r2")]).await.unwrap();
    let refused = a.check(now(), &refused_rate, &[slot("r4")]).await.unwrap();
    assert_eq!(refused.refused.unwrap().index, 0);
    assert_eq!(
        b.check(now(), &[], &[slot("r5")]).await.unwrap().states[0].remaining,
        0,
        "r3 and r5 hold both slots; r4 took none"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rates_settle_both_ways() {
    let node = node().await;
    let key = fresh("tokens");
    let tokens = |cost| Check {
        key: key.clone(),
        limit: Limit::Rate {
            limit: 1_000,
            period: Duration::from_secs(60),
        },
        cost,
    };
    let at = now();
    assert!(
        node.check(at, &[tokens(800)], &[])
            .await
            .unwrap()
            .admitted()
    );
    assert!(
        !node
            .check(now(), &[tokens(800)], &[])
            .await
            .unwrap()
            .admitted()
    );
    // 800 reserved, 100 used: 700 come back.
    node.settle(&[Settlement {
        check: tokens(800),
        at,
        actual: 100,
    }])
    .await
    .unwrap();
    assert!(
        node.check(now(), &[tokens(800)], &[])
            .await
            .unwrap()
            .admitted()
    );
    // 800 reserved, 1 000 used: the overrun is owed.
    node.settle(&[Settlement {
        check: tokens(800),
        at,
        actual: 1_000,
    }])
    .await
    .unwrap();
    let state = node.peek(now(), &[tokens(0)]).await.unwrap()[0];
    assert_eq!(state.remaining, 0, "1 100 used of 1 000 a minute");
}
