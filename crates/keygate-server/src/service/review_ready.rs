//! The weekly access review, announced: once a week (from Monday 00:00 UTC) each organisation's
//! review is summed up — findings by kind and by project — in a `review.ready` audit event,
//! written with a one-time marker so that however many nodes look, it is announced once, and
//! reaches webhooks through the audit log. The findings themselves stay at `GET
//! /admin/v1/review` (`keygate review`), each with its fix.

use std::collections::BTreeMap;

use keygate_core::{AuditAction, AuditDraft, Timestamp};

use super::{Caller, Keygate};
use crate::ServiceError;

const KIND: &str = "review.ready";
const DAY_MS: i64 = 86_400_000;

/// The start of the week (Monday 00:00 UTC) that holds `at`.
fn week_start(at: Timestamp) -> Timestamp {
    let days = at.as_millis().div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday, three days after a Monday.
    Timestamp::from_millis((days - (days + 3).rem_euclid(7)) * DAY_MS)
}

impl Keygate {
    /// Announces this week's access review of every organisation not yet announced; returns
    /// how many were.
    pub async fn announce_weekly_review(&self) -> Result<usize, ServiceError> {
        let now = self.clock.now();
        let week = week_start(now);
        let mut announced = 0;
        for org in self.store.org_ids().await? {
            let target = org.to_string();
            // The review reads every key: it is made only when the week still needs it.
            if self
                .store
                .was_announced(KIND, &target, week.as_millis())
                .await?
            {
                continue;
            }
            let review = self
                .access_review(&Caller::local(org.clone()), None)
                .await?;
            let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
            let projects: Vec<serde_json::Value> = review
                .projects
                .iter()
                .map(|project| {
                    for finding in &project.findings {
                        *by_kind.entry(finding.kind).or_default() += 1;
                    }
                    serde_json::json!({
                        "project_id": project.project_id,
                        "project": project.project,
                        "findings": project.findings.len(),
                    })
                })
                .collect();
            let mut audit = AuditDraft::new("system", AuditAction::ReviewReady);
            audit.org_id = Some(target.clone());
            audit.target = Some(target.clone());
            audit.details = serde_json::json!({
                "week_start": week.to_rfc3339(),
                "unused_days": review.unused_days,
                "findings": by_kind.values().sum::<usize>(),
                "by_kind": by_kind,
                "projects": projects,
            });
            if self
                .store
                .announce_once(KIND, &target, week.as_millis(), &audit, now)
                .await?
            {
                announced += 1;
            }
        }
        Ok(announced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_at_midnight_utc() {
        let at = |text: &str| Timestamp::parse_rfc3339(text).unwrap();
        // Monday 7 December 2026.
        let monday = at("2026-12-07T00:00:00Z");
        assert_eq!(week_start(at("2026-12-07T10:30:00Z")), monday);
        assert_eq!(week_start(monday), monday);
        assert_eq!(week_start(at("2026-12-13T23:59:59Z")), monday);
        assert_eq!(
            week_start(at("2026-12-06T23:59:59Z")),
            at("2026-11-30T00:00:00Z")
        );
    }
}
