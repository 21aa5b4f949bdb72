//! The limit-count store suite, on SQLite and on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_core::Timestamp;
use keygate_store::{LIMIT_COUNTS_PER_STATEMENT, LimitCount, LimitCountKind, Store};
use keygate_testkit::{Db, TestStore};

const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);
/// A window start in microseconds, as the limiter counts.
const DAY: u64 = 86_400_000_000;
const TODAY: u64 = 1_799_971_200_000_000;

fn count(name: &str, kind: LimitCountKind, window_start: u64, used: u64) -> LimitCount {
    LimitCount {
        name: name.to_owned(),
        kind,
        window_start,
        used,
    }
}

async fn all(store: &dyn Store) -> Vec<LimitCount> {
    let mut counts = store.load_limit_counts(0).await.unwrap();
    counts.sort_by(|a, b| a.name.cmp(&b.name));
    counts
}

async fn counts_round_trip(db: Db) {
    let db = TestStore::new(db).await.unwrap();
    let store = db.store.as_ref();
    assert!(all(store).await.is_empty());
    store.save_limit_counts(&[], NOW).await.unwrap();
    let saved = vec![
        count(
            "key:a:budget:month",
            LimitCountKind::Budget,
            TODAY - 14 * DAY,
            1_250_000,
        ),
        count("key:a:quota:day", LimitCountKind::Quota, TODAY, 2),
        count(
            "project:p:quota:hour",
            LimitCountKind::Quota,
            TODAY + 3_600_000_000,
            u64::MAX >> 1,
        ),
    ];
    store.save_limit_counts(&saved, NOW).await.unwrap();
    assert_eq!(all(store).await, saved);
    let since_today = store.load_limit_counts(TODAY).await.unwrap();
    assert_eq!(
        since_today.len(),
        2,
        "the month's budget began before today"
    );
    assert!(since_today.iter().all(|c| c.window_start >= TODAY));

    // More than one statement holds, in one call.
    let many: Vec<LimitCount> = (0..LIMIT_COUNTS_PER_STATEMENT * 2 + 7)
        .map(|i| {
            count(
                &format!("key:{i:05}:quota:day"),
                LimitCountKind::Quota,
                TODAY,
                i as u64,
            )
        })
        .collect();
    store.save_limit_counts(&many, NOW).await.unwrap();
    let loaded = all(store).await;
    assert_eq!(loaded.len(), many.len() + saved.len());
    assert_eq!(loaded[..many.len()], many[..]);
}

async fn a_save_overwrites_unless_its_window_is_older(db: Db) {
    let db = TestStore::new(db).await.unwrap();
    let store = db.store.as_ref();
    let quota =
        |window_start, used| count("key:a:quota:day", LimitCountKind::Quota, window_start, used);
    store
        .save_limit_counts(&[quota(TODAY, 1)], NOW)
        .await
        .unwrap();
    store
        .save_limit_counts(&[quota(TODAY, 3)], NOW)
        .await
        .unwrap();
    assert_eq!(
        all(store).await,
        [quota(TODAY, 3)],
        "the same window: replaced"
    );
    // A count may also go down (a budget whose reservation settled for less).
    store
        .save_limit_counts(&[quota(TODAY, 2)], NOW)
        .await
        .unwrap();
    assert_eq!(all(store).await, [quota(TODAY, 2)]);
    store
        .save_limit_counts(&[quota(TODAY + DAY, 1)], NOW)
        .await
        .unwrap();
    assert_eq!(
        all(store).await,
        [quota(TODAY + DAY, 1)],
        "a new window: replaced"
    );
    store
        .save_limit_counts(&[quota(TODAY, 3)], NOW)
        .await
        .unwrap();
    assert_eq!(
        all(store).await,
        [quota(TODAY + DAY, 1)],
        "an older window never replaces a newer one"
    );
    store
        .save_limit_counts(&[quota(TODAY + DAY, 2), quota(TODAY + DAY, 3)], NOW)
        .await
        .unwrap();
    assert_eq!(
        all(store).await,
        [quota(TODAY + DAY, 3)],
        "the last of a name wins"
    );
}

async fn pruning_drops_old_windows_only(db: Db) {
    let db = TestStore::new(db).await.unwrap();
    let store = db.store.as_ref();
    let counts = [
        count("old", LimitCountKind::Budget, TODAY - 40 * DAY, 5),
        count("older", LimitCountKind::Quota, TODAY - 400 * DAY, 5),
        count("current", LimitCountKind::Quota, TODAY, 5),
        // Prepaid credits: the window that never turns starts at 0, and is never old.
        count("credits", LimitCountKind::Budget, 0, 7),
    ];
    store.save_limit_counts(&counts, NOW).await.unwrap();
    assert_eq!(store.prune_limit_counts(TODAY - 35 * DAY).await.unwrap(), 2);
    assert_eq!(all(store).await, [counts[3].clone(), counts[2].clone()]);
    let loaded = store.load_limit_counts(TODAY).await.unwrap();
    assert_eq!(
        loaded.len(),
        2,
        "credits are loaded with the current windows"
    );
    assert_eq!(store.prune_limit_counts(TODAY - 35 * DAY).await.unwrap(), 0);
}

async fn a_corrupt_count_is_reported_not_guessed(db: Db) {
    let db = TestStore::new(db).await.unwrap();
    db.tamper(
        "INSERT INTO limit_counts (name, kind, window_start, used, updated_at) \
         VALUES ('key:a:rpm', 'rate', 0, 1, 0)",
    )
    .await
    .unwrap();
    let err = db.store.load_limit_counts(0).await.unwrap_err();
    assert!(
        matches!(
            err,
            keygate_store::StoreError::Corrupt {
                column: "limit_counts.kind"
            }
        ),
        "{err:?}"
    );
}

keygate_testkit::on_both_databases!(
    counts_round_trip,
    a_save_overwrites_unless_its_window_is_older,
    pruning_drops_old_windows_only,
    a_corrupt_count_is_reported_not_guessed,
);
