//! Usage and cost reports over the gateway's usage: from the per-minute, hour and day sums
//! when the window falls on whole minutes (the default one does), else from the records.

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
            // The end of the current minute, so records of this very moment are included and
            // the report reads the minute, hour and day sums rather than every record.
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
