//! Quota and budget counts that outlive the process, for nodes that limit without Redis: the
//! counts changed since the last save are written to the store every two seconds and once
//! more at shutdown, and read back at start, so a restart does not make a monthly budget or a
//! daily quota whole again. A crash loses at most the last two seconds of counts.
//!
//! With Redis the counts live in Redis (kept across restarts by its own persistence) and
//! nothing is saved here, not even what this node counts while Redis is unreachable. Several
//! nodes without Redis each count for themselves; they save under the same names, so a node
//! that restarts takes up the count saved last, by whichever node.

use std::sync::Arc;
use std::time::Duration;

use keygate_core::Clock;
use keygate_limits::{CountKind, SavedCount, Window};
use keygate_store::{LimitCount, LimitCountKind, Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Limiter;

/// How often changed counts are saved: what a crash may lose.
pub const SAVE_EVERY: Duration = Duration::from_secs(2);
/// Saved counts are kept this long after their window starts: longer than any window (a month).
const KEEP_FOR: Duration = Duration::from_secs(35 * 86_400);
/// How often counts older than [`KEEP_FOR`] are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

impl Limiter {
    /// Whether this limiter's counts are kept in memory on this node (no Redis), and so are
    /// to be saved to the store.
    pub fn counts_locally(&self) -> bool {
        self.shared.is_none()
    }

    /// Puts back the counts saved by an earlier run (of the windows that may still be
    /// current), before the first request; returns how many. Does nothing with Redis.
    pub async fn restore_from(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
    ) -> Result<usize, StoreError> {
        if !self.counts_locally() {
            return Ok(0);
        }
        let now = Self::now(clock);
        // Every window (a minute, an hour, a UTC day) starts at or after the start of the
        // calendar month it falls in: older counts cannot be current.
        let since = Window::Month.bounds(now).0;
        let saved: Vec<SavedCount> = store
            .load_limit_counts(since)
            .await?
            .into_iter()
            .map(|count| SavedCount {
                kind: match count.kind {
                    LimitCountKind::Quota => CountKind::Quota,
                    LimitCountKind::Budget => CountKind::Budget,
                },
                key: count.name,
                window_start: count.window_start,
                used: count.used,
            })
            .collect();
        Ok(self.rates.restore(&saved, now))
    }

    /// Saves the counts changed since the last save; returns how many. When the store fails,
    /// they are marked changed again, to be saved (as they stand then) by the next call.
    pub async fn save_to(&self, store: &dyn Store, clock: &dyn Clock) -> Result<usize, StoreError> {
        let changed = self.rates.changed_counts();
        if changed.is_empty() {
            return Ok(0);
        }
        let rows: Vec<LimitCount> = changed
            .iter()
            .map(|count| LimitCount {
                name: count.key.clone(),
                kind: match count.kind {
                    CountKind::Quota => LimitCountKind::Quota,
                    CountKind::Budget => LimitCountKind::Budget,
                },
                window_start: count.window_start,
                used: count.used,
            })
            .collect();
        match store.save_limit_counts(&rows, clock.now()).await {
            Ok(()) => Ok(rows.len()),
            Err(err) => {
                self.rates.mark_unsaved(&changed);
                Err(err)
            }
        }
    }
}

/// The task that saves a limiter's counts; stop it after the server has drained, so the last
/// save sees every reservation settled.
#[derive(Debug)]
pub struct Saver {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Saver {
    /// Saves `limiter`'s changed counts to `store` every [`SAVE_EVERY`], and deletes counts
    /// of long-past windows every hour. Without a task to run when the limiter uses Redis.
    pub fn start(limiter: Arc<Limiter>, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let stop = CancellationToken::new();
        let task = limiter
            .counts_locally()
            .then(|| tokio::spawn(run(limiter, store, clock, SAVE_EVERY, stop.clone())));
        Self { stop, task }
    }

    /// Saves once more and ends the task.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
        {
            tracing::warn!(error = %err, "the task saving limit counts failed");
        }
    }
}

impl Drop for Saver {
    /// Not stopped (the server failed): the task ends after one last save, unwaited.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Saves every `every` and prunes every hour until `shutdown`, then saves once more.
pub async fn run(
    limiter: Arc<Limiter>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut saves = tokio::time::interval(every);
    saves.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prunes = tokio::time::interval(PRUNE_EVERY);
    prunes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = saves.tick() => save(&limiter, store.as_ref(), clock.as_ref()).await,
            _ = prunes.tick() => prune(store.as_ref(), clock.as_ref()).await,
            () = shutdown.cancelled() => break,
        }
    }
    save(&limiter, store.as_ref(), clock.as_ref()).await;
}

async fn save(limiter: &Limiter, store: &dyn Store, clock: &dyn Clock) {
    match limiter.save_to(store, clock).await {
        Ok(0) => {}
        Ok(saved) => tracing::debug!(saved, "limit counts saved"),
        // Names and counts are not secrets, but the error says enough on its own.
        Err(err) => tracing::warn!(error = %err, "could not save limit counts; retrying"),
    }
}

async fn prune(store: &dyn Store, clock: &dyn Clock) {
    let now = Limiter::now(clock);
    let before = now.saturating_sub(u64::try_from(KEEP_FOR.as_micros()).unwrap_or(u64::MAX));
    match store.prune_limit_counts(before).await {
        Ok(0) => {}
        Ok(deleted) => tracing::debug!(deleted, "old limit counts deleted"),
        Err(err) => tracing::warn!(error = %err, "could not delete old limit counts"),
    }
}

#[cfg(test)]
mod tests {
    use keygate_core::{ManualClock, Timestamp};
    use keygate_limits::{Check, Limit};
    use keygate_testkit::{Db, TestStore};

    use super::*;
    use crate::limits::OnRedisFailure;

    /// 2026-02-14T10:00:00Z
    const NOW: i64 = 1_771_063_200_000;

    fn quota() -> [Check; 1] {
        [Check {
            key: "key:k:quota:day".into(),
            limit: Limit::Quota {
                amount: 3,
                window: Window::Day,
            },
            cost: 1,
        }]
    }

    #[tokio::test]
    async fn saved_counts_come_back_and_a_failed_save_is_retried() {
        let clock = ManualClock::starting_at(Timestamp::from_millis(NOW));
        let now = Limiter::now(&clock);
        let good = TestStore::new(Db::Sqlite).await.unwrap();
        let broken = TestStore::new(Db::Sqlite).await.unwrap();
        broken.store.close().await;
        let limiter = Limiter::new();
        for _ in 0..2 {
            assert!(limiter.rates.check(now, &quota()).admitted());
        }
        assert!(
            limiter
                .save_to(broken.store.as_ref(), &clock)
                .await
                .is_err()
        );
        assert_eq!(
            limiter.save_to(good.store.as_ref(), &clock).await.unwrap(),
            1,
            "kept for the next try"
        );
        assert_eq!(
            limiter.save_to(good.store.as_ref(), &clock).await.unwrap(),
            0
        );

        let restarted = Limiter::new();
        assert_eq!(
            restarted
                .restore_from(good.store.as_ref(), &clock)
                .await
                .unwrap(),
            1
        );
        assert_eq!(restarted.rates.peek(now, &quota())[0].remaining, 1);
        let shared = Limiter::shared("redis://127.0.0.1:1", OnRedisFailure::Local);
        assert_eq!(
            shared
                .restore_from(good.store.as_ref(), &clock)
                .await
                .unwrap(),
            0,
            "with Redis, Redis keeps the counts"
        );
        assert!(shared.rates.is_empty());
    }

    #[tokio::test]
    async fn the_task_saves_once_more_at_shutdown() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_at(Timestamp::from_millis(NOW)));
        let now = Limiter::now(clock.as_ref());
        let db = TestStore::new(Db::Sqlite).await.unwrap();
        let limiter = Arc::new(Limiter::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            limiter.clone(),
            db.store.clone(),
            clock,
            Duration::from_secs(3_600),
            stop.clone(),
        ));
        // Past the first (immediate) save: the next one is an hour away.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(limiter.rates.check(now, &quota()).admitted());
        assert!(db.store.load_limit_counts(0).await.unwrap().is_empty());
        stop.cancel();
        task.await.unwrap();
        let saved = db.store.load_limit_counts(0).await.unwrap();
        assert_eq!(saved.len(), 1);
        assert_eq!(
            (saved[0].name.as_str(), saved[0].used),
            ("key:k:quota:day", 1)
        );
    }
}
