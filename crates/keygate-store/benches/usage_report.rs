//! Usage at scale: `KEYGATE_BENCH_RECORDS` usage records (10 million by default) spread over
//! 30 days, 20 projects, 200 keys and 5 models are written through the store as the gateway
//! writes them (batches of 5,000, with their hour and day sums); then a month's report for one
//! project is run 20 times right after the load, and 20 times more once the database has done
//! what it does on its own in a running system (PostgreSQL's autovacuum: VACUUM ANALYZE;
//! SQLite: ANALYZE). Prints the bytes the store keeps per request and the report's times, on
//! SQLite and (with `KEYGATE_TEST_POSTGRES_URL`) PostgreSQL.
//!
//! `cargo bench -p keygate-store --bench usage_report` (release). Not part of CI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark prints its figures and stops loudly"
)]

use std::time::{Duration, Instant};

use keygate_core::{KeyId, MicroUsd, ProjectId, Timestamp, TokenCounts, TokenSource, UsageRecord};
use keygate_store::{UsageGroup, UsageQuery};
use keygate_testkit::{Db, World};

const DAY: i64 = 86_400_000;
/// 2027-01-01T00:00:00Z.
const START: i64 = 1_798_761_600_000;

fn records(
    world: &World,
    projects: &[ProjectId],
    keys: &[KeyId],
    n: u64,
    from: u64,
) -> Vec<UsageRecord> {
    let models = [
        "gpt-4o-mini",
        "gpt-4.1",
        "claude-sonnet-4-5",
        "gemini-2.5-pro",
        "embed",
    ];
    (from..from + n)
        .map(|i| {
            let key = (i % keys.len() as u64) as usize;
            let at = START + (i as i64 * 30 * DAY) / 10_000_000 % (30 * DAY);
            UsageRecord {
                id: uuid::Uuid::now_v7().to_string(),
                at: Timestamp::from_millis(at),
                org_id: world.org.id.clone(),
                project_id: Some(projects[key % projects.len()].clone()),
                key_id: keys[key].clone(),
                endpoint: "chat.completions".into(),
                model: models[((i / 200) % 5) as usize].into(),
                deployment: Some(format!("openai/{}", models[((i / 200) % 5) as usize])),
                provider: Some("openai".into()),
                status: if i % 50 == 0 { 503 } else { 200 },
                error_code: (i % 50 == 0).then(|| "all_deployments_failed".into()),
                streamed: i % 2 == 0,
                attempts: 1,
                latency_ms: 300 + i % 700,
                ttft_ms: Some(80 + i % 120),
                tokens: TokenCounts {
                    prompt: 200 + i % 1800,
                    completion: 50 + i % 400,
                    cached: 0,
                },
                token_source: TokenSource::Provider,
                cost: Some(MicroUsd((i % 900) as i64 + 40)),
                saved: None,
                client_ip: Some("203.0.113.9".into()),
                user_agent: Some("OpenAI/Python 3.57.0".into()),
            }
        })
        .collect()
}

async fn run(db: Db, total: u64) {
    let world = World::bootstrapped(db, Timestamp::from_millis(START)).await;
    let store = world.db.store.clone();
    let projects: Vec<ProjectId> = (0..20).map(|_| ProjectId::generate()).collect();
    let keys: Vec<KeyId> = (0..200).map(|_| KeyId::generate()).collect();
    let started = Instant::now();
    let mut written = 0;
    while written < total {
        let n = 5_000.min(total - written);
        store
            .insert_usage(&records(&world, &projects, &keys, n, written))
            .await
            .unwrap();
        written += n;
    }
    let writing = started.elapsed();
    let bytes = stored_bytes(&world).await;
    let loaded = reports(&world, &projects).await;
    // What autovacuum does in a running database: the day sums of a month ago were updated
    // by every batch of their day, and their dead versions are gone by the time they are read.
    let settled = if world.db.url.starts_with("sqlite:") {
        world.db.tamper("ANALYZE").await.unwrap();
        reports(&world, &projects).await
    } else {
        world
            .db
            .tamper("VACUUM ANALYZE usage_rollups")
            .await
            .unwrap();
        world
            .db
            .tamper("VACUUM ANALYZE usage_records")
            .await
            .unwrap();
        reports(&world, &projects).await
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {db:?} | {total} | {:.0} s ({:.0}/s) | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        writing.as_secs_f64(),
        total as f64 / writing.as_secs_f64(),
        bytes.map_or("?".to_owned(), |b| format!(
            "{:.0}",
            b as f64 / total as f64
        )),
        ms(loaded[loaded.len() / 2]),
        ms(loaded[loaded.len() - 1]),
        ms(settled[settled.len() / 2]),
        ms(settled[settled.len() - 1]),
    );
}

/// A month's report of each project in turn, 20 times; the times, sorted.
async fn reports(world: &World, projects: &[ProjectId]) -> Vec<Duration> {
    let store = world.db.store.clone();
    let mut times = Vec::new();
    for round in 0..20 {
        let query = UsageQuery {
            org: world.org.id.clone(),
            project: Some(projects[round % projects.len()].clone()),
            key: None,
            model: None,
            from: Timestamp::from_millis(START),
            to: Timestamp::from_millis(START + 30 * DAY),
            group_by: UsageGroup::Model,
        };
        let began = Instant::now();
        let rows = store.usage_report(&query).await.unwrap();
        times.push(began.elapsed());
        assert_eq!(rows.len(), 5);
    }
    times.sort();
    times
}

/// What the database keeps for usage: files (SQLite) or relations with their indexes
/// (PostgreSQL).
async fn stored_bytes(world: &World) -> Option<u64> {
    if world.db.url.starts_with("sqlite:") {
        world
            .db
            .tamper("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .ok()?;
        let dir = world.db.dir.path();
        let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
        Some(size("keygate.db") + size("keygate.db-wal"))
    } else {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&world.db.url).await.ok()?;
        let bytes: i64 = sqlx::query_scalar(
            "SELECT pg_total_relation_size('usage_records') + pg_total_relation_size('usage_rollups')",
        )
        .fetch_one(&mut conn)
        .await
        .ok()?;
        u64::try_from(bytes).ok()
    }
}

fn main() {
    let total: u64 = std::env::var("KEYGATE_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| store | records | writing | bytes per request | month report after the load, median | slowest of 20 | after VACUUM ANALYZE, median | slowest of 20 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // `KEYGATE_BENCH_STORES=postgres` (or `sqlite`) runs one of them only.
    let stores = std::env::var("KEYGATE_BENCH_STORES").unwrap_or_else(|_| "sqlite,postgres".into());
    if stores.contains("sqlite") {
        runtime.block_on(run(Db::Sqlite, total));
    }
    if stores.contains("postgres") && std::env::var_os("KEYGATE_TEST_POSTGRES_URL").is_some() {
        runtime.block_on(run(Db::Postgres, total));
    }
}
