//! The usage log writes everything queued in one flush, whatever the rate of requests, and
//! keeps what it could not write for the next flush.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use keygate_core::{KeyId, Timestamp, TokenCounts, TokenSource, UsageRecord};
use keygate_server::usage_log::UsageLog;
use keygate_store::{UsageGroup, UsageQuery};
use keygate_testkit::{Db, World};
use tokio_util::sync::CancellationToken;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn record(w: &World, key: &KeyId, i: usize) -> UsageRecord {
    UsageRecord {
        id: format!("rec-{i}"),
        at: T0,
        org_id: w.org.id.clone(),
        project_id: None,
        key_id: key.clone(),
        endpoint: "chat.completions".into(),
        model: "chat".into(),
        deployment: None,
        provider: None,
        status: 200,
        error_code: None,
        streamed: false,
        attempts: 1,
        latency_ms: 1,
        ttft_ms: None,
        tokens: TokenCounts {
            prompt: 1,
            completion: 1,
            cached: 0,
        },
        token_source: TokenSource::Provider,
        cost: None,
        saved: None,
        client_ip: None,
        user_agent: None,
    }
}

async fn written(w: &World) -> u64 {
    let report =
        w.db.store
            .usage_report(&UsageQuery {
                org: w.org.id.clone(),
                project: None,
                key: None,
                model: None,
                from: T0,
                to: Timestamp::from_millis(T0.as_millis() + 1),
                group_by: UsageGroup::Model,
            })
            .await
            .unwrap();
    report.first().map_or(0, |row| row.requests)
}

async fn one_flush_writes_every_batch(db: Db) {
    let w = World::bootstrapped(db, T0).await;
    let log = UsageLog::default();
    let key = KeyId::generate();
    // More than two batches' worth, as a busy second produces.
    for i in 0..12_345 {
        log.record(record(&w, &key, i));
    }
    log.flush(w.db.store.as_ref()).await;
    assert!(log.is_empty());
    assert_eq!(written(&w).await, 12_345);
}

async fn shutdown_drains_the_queue(db: Db) {
    let w = World::bootstrapped(db, T0).await;
    let log = Arc::new(UsageLog::default());
    let stop = CancellationToken::new();
    // A flush interval far longer than the test: only the shutdown writes.
    let task = tokio::spawn(log.clone().run(
        w.db.store.clone(),
        Duration::from_secs(3600),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let key = KeyId::generate();
    for i in 0..10 {
        log.record(record(&w, &key, i));
    }
    assert_eq!(written(&w).await, 0);
    stop.cancel();
    task.await.unwrap();
    assert_eq!(written(&w).await, 10);
}

keygate_testkit::on_both_databases!(one_flush_writes_every_batch, shutdown_drains_the_queue);
