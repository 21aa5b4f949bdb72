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

use keygate_limits::{Check, GlobalLimiter, Limit};

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
                    if node.check(&check).await.unwrap().admitted() {
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
    let first = node.check(&checks).await.unwrap();
    assert!(first.admitted());
    assert_eq!(first.states[0].remaining, 9);
    let second = node.check(&checks).await.unwrap();
    let refusal = second.refused.unwrap();
    assert_eq!(refusal.index, 1);
    let wait = refusal.retry_after.unwrap();
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    let alone = node.check(&checks[..1]).await.unwrap();
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
