//! The rotation policy of secrets: which are due, and a one-time announcement in the audit
//! log when one becomes due (alerting delivers it further).

use std::sync::Arc;
use std::time::Duration;

use keygate_core::{AuditAction, AuditDraft, Outcome, Permission};
use keygate_store::{DueFilter, DueSecret};
use tokio_util::sync::CancellationToken;

use super::{Caller, Keygate};
use crate::ServiceError;

impl Keygate {
    /// Secrets due for rotation now, or within `within`.
    pub async fn secrets_due(
        &self,
        caller: &Caller,
        project: Option<String>,
        within: Duration,
    ) -> Result<Vec<DueSecret>, ServiceError> {
        let project = match &project {
            Some(text) => Some(self.resolve_project(caller, text).await?.id),
            None => caller.bound_project().cloned(),
        };
        self.authorize(caller, Permission::SecretsRead, project.as_ref(), None)
            .await?;
        let by = self.clock.now().saturating_add(within);
        Ok(self
            .store
            .secrets_due(Some(caller.org()), project.as_ref(), by, DueFilter::All)
            .await?)
    }

    /// Writes a `secret.rotation_due` event for each secret that became due, once per
    /// version, however many nodes run this. Returns how many were announced.
    pub async fn announce_due_secrets(&self) -> Result<usize, ServiceError> {
        let now = self.clock.now();
        let mut announced = 0;
        let due = self
            .store
            .secrets_due(None, None, now, DueFilter::Unannounced)
            .await?;
        for due in due {
            let mut audit = AuditDraft::new("system", AuditAction::SecretRotationDue);
            audit.outcome = Outcome::Success;
            audit.org_id = Some(due.secret.org_id.to_string());
            audit.project_id = Some(due.secret.project_id.to_string());
            audit.target = Some(due.secret.id.to_string());
            audit.details = serde_json::json!({
                "name": due.secret.name,
                "version": due.version,
                "due_at": due.due_at.to_rfc3339(),
            });
            if self
                .store
                .announce_due(&due.secret.id, due.version, &audit, now)
                .await?
            {
                announced += 1;
            }
        }
        Ok(announced)
    }

    /// Checks for due secrets, retires previous versions whose grace period is over, and
    /// announces keys expiring within `notice` or due for rotation, every `every` until `stop`.
    pub async fn watch_due_secrets(
        self: Arc<Self>,
        every: Duration,
        notice: Duration,
        weekly_review: bool,
        stop: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(err) = self.announce_due_secrets().await {
                        tracing::warn!(error = %err, "could not check secrets for rotation");
                    }
                    if let Err(err) = self.store.retire_expired_previous(self.clock.now()).await {
                        tracing::warn!(error = %err, "could not retire previous versions");
                    }
                    if let Err(err) = self.announce_key_deadlines(notice).await {
                        tracing::warn!(error = %err, "could not check keys' deadlines");
                    }
                    if weekly_review
                        && let Err(err) = self.announce_weekly_review().await
                    {
                        tracing::warn!(error = %err, "could not announce the weekly access review");
                    }
                }
                () = stop.cancelled() => break,
            }
        }
    }
}
