//! Usage and cost reports over the gateway's usage: the hour and day sums of the window, and
//! the records of the parts of an hour at its ends.

use keygate_core::{KeyId, Permission, ProjectId, Timestamp};
use keygate_store::{UsageGroup, UsageQuery, UsageRow};

use super::{Caller, Keygate};
use crate::ServiceError;

/// A report request. Without a window, the last 30 days up to the end of this minute.
#[derive(Debug, Clone)]
pub struct UsageReportQuery {
    pub group_by: UsageGroup,
    pub project: Option<ProjectId>,
    pub key: Option<KeyId>,
    pub model: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

const DEFAULT_WINDOW: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

impl Keygate {
    /// Usage grouped as asked. A token bound to a project sees only that project.
    pub async fn usage_report(
        &self,
        caller: &Caller,
        query: UsageReportQuery,
    ) -> Result<(Timestamp, Timestamp, Vec<UsageRow>), ServiceError> {
        let project = match (caller.bound_project(), query.project) {
            (Some(bound), None) => Some(bound.clone()),
            (_, asked) => asked,
        };
        self.authorize(caller, Permission::UsageRead, project.as_ref(), None)
            .await?;
        let to = query.to.unwrap_or_else(|| {
            // The end of the current minute, so that records of this very moment are included.
            let now = self.clock.now().as_millis();
            Timestamp::from_millis((now / 60_000 + 1) * 60_000)
        });
        let from = query.from.unwrap_or_else(|| {
            Timestamp::from_millis(
                to.as_millis()
                    .saturating_sub(i64::try_from(DEFAULT_WINDOW.as_millis()).unwrap_or(0)),
            )
        });
        if from >= to {
            return Err(keygate_core::ValidationError::new("from", "must be before `to`").into());
        }
        let rows = self
            .store
            .usage_report(&UsageQuery {
                org: caller.org().clone(),
                project,
                key: query.key,
                model: query.model,
                from,
                to,
                group_by: query.group_by,
            })
            .await?;
        Ok((from, to, rows))
    }
}

/// How often a node tries to prune, and how long its lease lasts.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
const PRUNE_LEASE_MS: i64 = 900_000;
/// Records deleted per statement: short transactions, so writers are not held up.
const PRUNE_BATCH: u32 = 10_000;

impl Keygate {
    /// Deletes usage records older than `retention` (and the hour sums they alone made up),
    /// and the Responses API's kept answers past their age, every ten minutes, on one node at
    /// a time (the one holding the `usage.prune` lease), until `stop`. The day sums stay:
    /// reports over whole days reach back further.
    pub async fn run_usage_pruning(
        self: std::sync::Arc<Self>,
        retention: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let holder = uuid::Uuid::now_v7().to_string();
        let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let mut ticker = tokio::time::interval(PRUNE_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.cancelled() => return,
            }
            let now = self.clock.now();
            let until = Timestamp::from_millis(now.as_millis().saturating_add(PRUNE_LEASE_MS));
            match self
                .store
                .take_lease("usage.prune", &holder, now, until)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "could not take the usage pruning lease");
                    continue;
                }
            }
            let before = Timestamp::from_millis(now.as_millis().saturating_sub(retention));
            let mut pruned = 0u64;
            loop {
                match self.store.prune_usage(before, PRUNE_BATCH).await {
                    Ok(gone) => {
                        pruned += gone;
                        if gone < u64::from(PRUNE_BATCH) || stop.is_cancelled() {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not prune old usage records");
                        break;
                    }
                }
            }
            if pruned > 0 {
                tracing::info!(pruned, "old usage records pruned");
            }
            // The Responses API's kept answers past their age go in the same turn.
            match self.store.prune_responses(now).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "expired responses deleted"),
                Err(err) => tracing::warn!(error = %err, "could not delete expired responses"),
            }
        }
    }

    /// A key's latest refused or failed requests, over the last `days`, newest first.
    pub async fn key_refusals(
        &self,
        caller: &Caller,
        key: &KeyId,
        days: u32,
    ) -> Result<Vec<keygate_store::Refusal>, ServiceError> {
        let record = self.get_key(caller, key).await?;
        let since = Timestamp::from_millis(
            self.clock.now().as_millis() - i64::from(days.clamp(1, 90)) * 86_400_000,
        );
        Ok(self
            .store
            .key_refusals(&record.org_id, key, since, 20)
            .await?)
    }
}
