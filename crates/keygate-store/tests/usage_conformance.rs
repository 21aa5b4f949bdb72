//! The usage store suite, on SQLite and on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_core::{KeyId, MicroUsd, Timestamp, TokenCounts, TokenSource, UsageRecord};
use keygate_store::{UsageGroup, UsageQuery};
use keygate_testkit::{Db, World};

/// 2027-01-15T08:00:00Z.
const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);
const DAY: i64 = 86_400_000;

fn record(
    w: &World,
    key: &KeyId,
    model: &str,
    at: i64,
    status: u16,
    cost: Option<i64>,
) -> UsageRecord {
    UsageRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: Timestamp::from_millis(T0.as_millis() + at),
        org_id: w.org.id.clone(),
        project_id: Some(w.project.id.clone()),
        key_id: key.clone(),
        endpoint: "chat.completions".into(),
        model: model.into(),
        deployment: Some(format!("openai/{model}")),
        provider: Some("openai".into()),
        status,
        error_code: (status >= 400).then(|| "all_deployments_failed".into()),
        streamed: true,
        attempts: 1,
        latency_ms: 50 + u64::try_from(at.rem_euclid(1000)).unwrap_or(0),
        ttft_ms: Some(40),
        tokens: TokenCounts {
            prompt: 100,
            completion: 20,
            cached: 10,
        },
        token_source: TokenSource::Provider,
        cost: cost.map(MicroUsd),
        saved: None,
        client_ip: Some("203.0.113.9".into()),
        user_agent: Some("OpenAI/Python 3.57.0".into()),
    }
}

async fn reports_group_and_filter(db: Db) {
    let w = World::bootstrapped(db, T0).await;
    let store = &w.db.store;
    let (a, b) = (KeyId::generate(), KeyId::generate());
    let mut batch = vec![
        record(&w, &a, "chat", 0, 200, Some(300)),
        record(&w, &a, "chat", 1000, 503, None),
        record(&w, &b, "embed", DAY, 200, Some(5)),
    ];
    // Bigger than one INSERT statement holds.
    for i in 0..600 {
        batch.push(record(&w, &b, "chat", 2 * DAY + i, 200, Some(1)));
    }
    store.insert_usage(&batch).await.unwrap();
    store.insert_usage(&[]).await.unwrap();

    let query = |group_by| UsageQuery {
        org: w.org.id.clone(),
        project: None,
        key: None,
        model: None,
        from: T0,
        to: Timestamp::from_millis(T0.as_millis() + 10 * DAY),
        group_by,
    };
    let by_model = store.usage_report(&query(UsageGroup::Model)).await.unwrap();
    assert_eq!(by_model.len(), 2);
    assert_eq!(by_model[0].group, "chat", "the costliest group first");
    assert_eq!(by_model[0].requests, 602);
    assert_eq!(by_model[0].errors, 1);
    assert_eq!(by_model[0].unpriced, 1);
    assert_eq!(by_model[0].cost, MicroUsd(900));
    assert_eq!(by_model[0].prompt_tokens, 60_200);
    assert_eq!(by_model[0].completion_tokens, 12_040);
    assert_eq!(by_model[0].cached_tokens, 6_020);
    assert!(
        by_model[0]
            .latency_ms
            .is_some_and(|ms| (50..1050).contains(&ms)),
        "the average of the records' latency"
    );
    // A key's refusals: only its requests of 400 or more, newest first, within the window.
    let refused = store.key_refusals(&w.org.id, &a, T0, 10).await.unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status, 503);
    assert_eq!(
        refused[0].error_code.as_deref(),
        Some("all_deployments_failed")
    );
    let later = Timestamp::from_millis(T0.as_millis() + 2000);
    assert!(
        store
            .key_refusals(&w.org.id, &a, later, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .key_refusals(&w.org.id, &b, T0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let by_day = store.usage_report(&query(UsageGroup::Day)).await.unwrap();
    let days: Vec<&str> = by_day.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(days, ["2027-01-15", "2027-01-16", "2027-01-17"]);

    let by_key = store.usage_report(&query(UsageGroup::Key)).await.unwrap();
    assert_eq!(by_key.len(), 2);
    let by_project = store
        .usage_report(&query(UsageGroup::Project))
        .await
        .unwrap();
    assert_eq!(by_project[0].group, w.project.id.to_string());
    assert_eq!(by_project[0].requests, 603);

    let only_a = store
        .usage_report(&UsageQuery {
            key: Some(a.clone()),
            ..query(UsageGroup::Model)
        })
        .await
        .unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(only_a[0].requests, 2);
    let window = store
        .usage_report(&UsageQuery {
            to: Timestamp::from_millis(T0.as_millis() + DAY),
            ..query(UsageGroup::Model)
        })
        .await
        .unwrap();
    assert_eq!(window.len(), 1, "`to` is exclusive");
    let other_org = store
        .usage_report(&UsageQuery {
            org: keygate_core::OrgId::generate(),
            ..query(UsageGroup::Model)
        })
        .await
        .unwrap();
    assert!(other_org.is_empty());
}

/// A report's row: group, requests, errors, prompt tokens, cost, unpriced, average latency.
type Said = (String, u64, u64, u64, i64, u64, Option<u64>, u64, i64);

/// What a report should say, summed here from the records themselves.
fn expected(
    records: &[UsageRecord],
    from: i64,
    to: i64,
    group_by: UsageGroup,
    only: Option<(&KeyId, &str)>,
) -> Vec<Said> {
    #[allow(clippy::type_complexity, reason = "one group's sums")]
    let mut groups: std::collections::BTreeMap<
        String,
        (u64, u64, u64, i64, u64, u64, u64, i64),
    > = std::collections::BTreeMap::new();
    for r in records {
        let at = r.at.as_millis();
        if at < from || at >= to {
            continue;
        }
        if let Some((key, model)) = only
            && (&r.key_id != key || r.model != model)
        {
            continue;
        }
        let group = match group_by {
            UsageGroup::Key => r.key_id.to_string(),
            UsageGroup::Project => r
                .project_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            UsageGroup::Model => r.model.clone(),
            UsageGroup::Day => keygate_store::usage_day(&(at / DAY).to_string()),
        };
        let g = groups.entry(group).or_default();
        g.0 += 1;
        g.1 += u64::from(r.status >= 400);
        g.2 += r.tokens.prompt;
        g.3 += r.cost.map_or(0, |c| c.0);
        g.4 += u64::from(r.cost.is_none());
        g.5 += r.latency_ms;
        g.6 += u64::from(r.token_source == TokenSource::Cache);
        g.7 += r.saved.map_or(0, |s| s.0);
    }
    groups
        .into_iter()
        .map(|(k, (n, e, p, c, u, l, h, s))| (k, n, e, p, c, u, Some(l / n), h, s))
        .collect()
}

/// Reports read the hour and day sums and only the edges' records; they must say what the
/// records say, for any window.
async fn rollups_equal_the_records(db: Db) {
    let w = World::bootstrapped(db, T0).await;
    let store = &w.db.store;
    let keys = [KeyId::generate(), KeyId::generate(), KeyId::generate()];
    let mut all = Vec::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..4 {
        let mut batch = Vec::new();
        for _ in 0..700 {
            let at = i64::try_from(next() % (3 * DAY as u64)).unwrap();
            let key = &keys[usize::try_from(next() % 3).unwrap()];
            let model = ["chat", "embed", "fast"][usize::try_from(next() % 3).unwrap()];
            let status = [200, 200, 200, 429, 503][usize::try_from(next() % 5).unwrap()];
            let cost = (next() % 4 != 0).then(|| i64::try_from(next() % 1000).unwrap());
            let mut record = record(&w, key, model, at, status, cost);
            // Some are answers from the cache: nothing spent, what they saved kept.
            if status == 200 && next() % 5 == 0 {
                record.token_source = TokenSource::Cache;
                record.saved = record.cost;
                record.cost = Some(keygate_core::MicroUsd(0));
            }
            batch.push(record);
        }
        // In several batches: sums add up across them.
        store.insert_usage(&batch).await.unwrap();
        all.extend(batch);
    }
    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 3_600_000;
    let base = T0.as_millis();
    for (from, to) in [
        (0, 3 * DAY),
        (7 * MINUTE + 13, 3 * DAY - 13 * MINUTE),
        (5 * HOUR + 3 * MINUTE, DAY + 2 * HOUR + 1),
        (DAY + 17 * MINUTE, DAY + 58 * MINUTE),
        (DAY - HOUR, 2 * DAY + HOUR),
        (-(base % DAY), 3 * DAY),
    ] {
        for group_by in [
            UsageGroup::Key,
            UsageGroup::Project,
            UsageGroup::Model,
            UsageGroup::Day,
        ] {
            let query = UsageQuery {
                org: w.org.id.clone(),
                project: None,
                key: None,
                model: None,
                from: Timestamp::from_millis(base + from),
                to: Timestamp::from_millis(base + to),
                group_by,
            };
            let said = |rows: Vec<keygate_store::UsageRow>| {
                let mut rows: Vec<_> = rows
                    .into_iter()
                    .map(|r| {
                        (
                            r.group,
                            r.requests,
                            r.errors,
                            r.prompt_tokens,
                            r.cost.0,
                            r.unpriced,
                            r.latency_ms,
                            r.cache_hits,
                            r.saved.0,
                        )
                    })
                    .collect();
                rows.sort();
                rows
            };
            let report = said(store.usage_report(&query).await.unwrap());
            assert!(!report.is_empty());
            assert_eq!(
                report,
                expected(&all, base + from, base + to, group_by, None),
                "{group_by:?} over {from}..{to}"
            );
            let only = UsageQuery {
                key: Some(keys[1].clone()),
                model: Some("chat".into()),
                project: Some(w.project.id.clone()),
                ..query.clone()
            };
            assert_eq!(
                said(store.usage_report(&only).await.unwrap()),
                expected(
                    &all,
                    base + from,
                    base + to,
                    group_by,
                    Some((&keys[1], "chat"))
                ),
                "filtered, {group_by:?} over {from}..{to}"
            );
        }
    }
}

/// Pruning takes the old records (and the minute and hour sums that only they made up) and
/// leaves the day sums, so a report over whole days still says everything; one node at a time
/// prunes, holding a lease.
async fn pruning_keeps_the_day_sums_and_one_node_prunes(db: Db) {
    let w = World::bootstrapped(db, T0).await;
    let store = &w.db.store;
    let key = KeyId::generate();
    let mut batch = Vec::new();
    for day in 0..4 {
        for i in 0..50 {
            batch.push(record(
                &w,
                &key,
                "chat",
                day * DAY + i * 60_000,
                200,
                Some(10),
            ));
        }
    }
    store.insert_usage(&batch).await.unwrap();
    let report = |from: i64, to: i64| {
        let query = UsageQuery {
            org: w.org.id.clone(),
            project: None,
            key: None,
            model: None,
            from: Timestamp::from_millis(T0.as_millis() + from),
            to: Timestamp::from_millis(T0.as_millis() + to),
            group_by: UsageGroup::Model,
        };
        async move { store.usage_report(&query).await }
    };
    // Whole UTC days: T0 is 08:00.
    let midnight = -(T0.as_millis() % DAY);
    let whole = report(midnight, midnight + 5 * DAY).await.unwrap();
    assert_eq!(whole[0].requests, 200);

    let cut = Timestamp::from_millis(T0.as_millis() + 2 * DAY);
    let mut pruned = 0;
    loop {
        let gone = store.prune_usage(cut, 30).await.unwrap();
        assert!(gone <= 30, "at most the limit at a time");
        pruned += gone;
        if gone == 0 {
            break;
        }
    }
    assert_eq!(pruned, 100, "the records of the first two days");
    assert_eq!(
        report(midnight, midnight + 5 * DAY).await.unwrap(),
        whole,
        "the day sums remain: a report over whole days still says everything"
    );
    let recent = report(2 * DAY + 1, 4 * DAY - 1).await.unwrap();
    assert_eq!(
        recent[0].requests, 99,
        "the records after the cut remain (one is at its start)"
    );
    assert!(
        report(1, DAY - 1).await.unwrap().is_empty(),
        "the records before the cut are gone"
    );

    let at = |ms: i64| Timestamp::from_millis(T0.as_millis() + ms);
    assert!(
        store
            .take_lease("prune", "a", at(0), at(1000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_lease("prune", "b", at(10), at(1010))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_lease("prune", "a", at(20), at(2000))
            .await
            .unwrap(),
        "renewed"
    );
    assert!(
        !store
            .take_lease("prune", "b", at(1500), at(2500))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_lease("prune", "b", at(2000), at(3000))
            .await
            .unwrap(),
        "expired"
    );
    assert!(
        store
            .take_lease("other", "a", at(2000), at(3000))
            .await
            .unwrap()
    );
}

/// Seeds, through `$conn`, what the previous release wrote: two priced requests and an
/// unpriced one in one hour, with their hour and day sums.
macro_rules! seed_previous_usage {
    ($conn:expr, $org:expr, $hour:expr, $day:expr) => {
        for (n, cost) in [(1i64, Some(1500i64)), (2, Some(2500)), (3, None)] {
            sqlx::query(
                "INSERT INTO usage_records (id, at, org_id, project_id, key_id, endpoint, model, \
                 deployment, provider, status, error_code, streamed, attempts, latency_ms, \
                 ttft_ms, prompt_tokens, completion_tokens, cached_tokens, token_source, \
                 cost_micros, client_ip, user_agent) VALUES ($1, $2, $3, NULL, 'key_old', \
                 'chat.completions', 'chat', 'up/gpt-4o-mini', 'up', 200, NULL, 0, 1, 40, NULL, \
                 10, 5, 0, 'provider', $4, NULL, NULL)",
            )
            .bind(format!("rec{n}"))
            .bind(T0.as_millis() + n)
            .bind($org)
            .bind(cost)
            .execute(&mut $conn)
            .await
            .unwrap();
        }
        for (grain, bucket) in [("hour", $hour), ("day", $day)] {
            sqlx::query(
                "INSERT INTO usage_rollups (grain, org_id, bucket, project_id, key_id, model, \
                 status, requests, prompt_tokens, completion_tokens, cached_tokens, cost_micros, \
                 unpriced, latency_ms, timed) VALUES ($1, $2, $3, '', 'key_old', 'chat', 200, 3, \
                 30, 15, 0, 4000, 1, 120, 3)",
            )
            .bind(grain)
            .bind($org)
            .bind(bucket)
            .execute(&mut $conn)
            .await
            .unwrap();
        }
    };
}

/// A store made by the schema before this release's usage migration (up to 0022), holding
/// usage records and their sums, opened by this release: the migration runs once, nothing is
/// lost, the sums read as before, and the new columns (the answer cache's hits and savings)
/// start at zero.
async fn a_store_from_the_previous_schema_migrates_with_its_usage(db: Db) {
    use keygate_core::OrgId;
    use sqlx::{ConnectOptions as _, Connection as _};

    let org = "org_previous";
    let hour = (T0.as_millis() / 3_600_000) * 3_600_000;
    let day = (T0.as_millis() / 86_400_000) * 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let (url, schema) = match db {
        Db::Sqlite => {
            let url = format!("sqlite://{}", dir.path().join("keygate.db").display());
            let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
            let mut conn = options.create_if_missing(true).connect().await.unwrap();
            sqlx::migrate!("./migrations/sqlite")
                .run_to(22, &mut conn)
                .await
                .unwrap();
            seed_previous_usage!(conn, org, hour, day);
            (url, None)
        }
        Db::Postgres => {
            let (url, schema) = empty_postgres_schema().await;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::migrate!("./migrations/postgres")
                .run_to(22, &mut conn)
                .await
                .unwrap();
            seed_previous_usage!(conn, org, hour, day);
            (url, Some(schema))
        }
    };

    // This release opens it: the rest of the migrations run.
    let store = keygate_store::connect(&url).await.unwrap();
    let report = store
        .usage_report(&UsageQuery {
            org: OrgId::parse(org).unwrap(),
            project: None,
            key: None,
            model: None,
            from: Timestamp::from_millis(day),
            to: Timestamp::from_millis(day + 86_400_000),
            group_by: UsageGroup::Model,
        })
        .await
        .unwrap();
    assert_eq!(report.len(), 1, "{report:?}");
    let row = &report[0];
    assert_eq!(row.group, "chat");
    assert_eq!(row.requests, 3);
    assert_eq!(row.cost, MicroUsd(4000));
    assert_eq!(row.unpriced, 1);
    assert_eq!(row.prompt_tokens, 30);
    assert_eq!(row.latency_ms, Some(40));
    assert_eq!(row.cache_hits, 0);
    assert_eq!(row.saved, MicroUsd(0));
    // Opened again, nothing runs twice.
    drop(store);
    keygate_store::connect(&url).await.unwrap();
    if let Some(schema) = schema {
        drop_postgres_schema(&schema).await;
    }
}

/// A schema of its own in the test database, empty, and the URL that opens it.
async fn empty_postgres_schema() -> (String, String) {
    use sqlx::Connection as _;
    let base = keygate_testkit::postgres_base_url();
    let schema = format!("kg_test_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    (url, schema)
}

async fn drop_postgres_schema(schema: &str) {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(&keygate_testkit::postgres_base_url())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// Nodes of a new release starting together on one empty database: each opens it, the
/// migrations run once (the migrator's lock), and every node then works on the same schema.
async fn nodes_starting_together_migrate_once(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let (url, schema) = match db {
        Db::Sqlite => (
            format!("sqlite://{}", dir.path().join("keygate.db").display()),
            None,
        ),
        Db::Postgres => {
            let (url, schema) = empty_postgres_schema().await;
            (url, Some(schema))
        }
    };
    let (a, b, c, d) = tokio::join!(
        keygate_store::connect(&url),
        keygate_store::connect(&url),
        keygate_store::connect(&url),
        keygate_store::connect(&url),
    );
    let stores = [a, b, c, d].map(|store| store.expect("every node opens the store"));
    // One schema under them all: a lease one node takes, the others see taken.
    assert!(
        stores[0]
            .take_lease(
                "together",
                "a",
                T0,
                Timestamp::from_millis(T0.as_millis() + 60_000)
            )
            .await
            .unwrap()
    );
    for store in &stores[1..] {
        assert!(
            !store
                .take_lease(
                    "together",
                    "b",
                    T0,
                    Timestamp::from_millis(T0.as_millis() + 60_000)
                )
                .await
                .unwrap()
        );
    }
    drop(stores);
    if let Some(schema) = schema {
        drop_postgres_schema(&schema).await;
    }
}

keygate_testkit::on_both_databases!(
    reports_group_and_filter,
    rollups_equal_the_records,
    pruning_keeps_the_day_sums_and_one_node_prunes,
    a_store_from_the_previous_schema_migrates_with_its_usage,
    nodes_starting_together_migrate_once,
);
