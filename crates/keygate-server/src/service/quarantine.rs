//! Keys taken out of use by keygate itself — a leak report, an anomaly policy — rather than by
//! an admin: suspended, revoked or throttled with a system actor, audited, and dropped from
//! every node's cache like any other change.

use keygate_core::{AuditAction, AuditDraft, KeyRecord, KeyStatus, KeyThrottle};

use super::Keygate;
use crate::ServiceError;
use crate::cache::InvalidateOnDrop;

/// What a quarantine does to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quarantine {
    Suspend,
    Revoke,
    /// Holds an active key to cut rates for a while.
    Throttle(KeyThrottle),
}

impl Keygate {
    /// Suspends, revokes or throttles `key` on behalf of `actor` (such as
    /// `leak-report:github`), with `details` beside the reason in the audit event. Returns what
    /// was done: `suspended`, `revoked`, `throttled`, or `none` when the key was already out of
    /// use that way (or, for a throttle, not active).
    pub(crate) async fn quarantine_key(
        &self,
        key: &KeyRecord,
        how: Quarantine,
        actor: &str,
        reason: &str,
        details: serde_json::Value,
    ) -> Result<&'static str, ServiceError> {
        let now = self.clock.now();
        let outcome = match (key.status(now), &how) {
            (KeyStatus::Deleted | KeyStatus::Revoked, _)
            | (KeyStatus::Suspended, Quarantine::Suspend) => return Ok("none"),
            (KeyStatus::Active, Quarantine::Throttle(_)) => "throttled",
            (_, Quarantine::Throttle(_)) => return Ok("none"),
            (_, Quarantine::Suspend) => "suspended",
            (_, Quarantine::Revoke) => "revoked",
        };
        let mut audit = AuditDraft::new(
            actor,
            match how {
                Quarantine::Suspend => AuditAction::KeySuspend,
                Quarantine::Revoke => AuditAction::KeyRevoke,
                Quarantine::Throttle(_) => AuditAction::KeyThrottle,
            },
        );
        audit.org_id = Some(key.org_id.to_string());
        audit.project_id = key.project_id.as_ref().map(ToString::to_string);
        audit.target = Some(key.id.to_string());
        let mut fields = match details {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        fields.insert("reason".into(), reason.into());
        if let Quarantine::Throttle(throttle) = &how {
            // The store keeps the later end of a throttle already running.
            let until = key
                .throttled(now)
                .map_or(throttle.until, |t| t.until.max(throttle.until));
            fields.insert("until".into(), until.to_rfc3339().into());
            let rates: Vec<String> = throttle.requests.iter().map(ToString::to_string).collect();
            fields.insert("requests".into(), rates.into());
        }
        audit.details = serde_json::Value::Object(fields);
        let _invalidate = InvalidateOnDrop::new(self.invalidation.as_ref(), &key.id);
        match how {
            Quarantine::Suspend => self.store.suspend_key(&key.id, reason, now, &audit).await?,
            Quarantine::Revoke => self.store.revoke_key(&key.id, reason, now, &audit).await?,
            Quarantine::Throttle(throttle) => {
                self.store
                    .throttle_key(&key.id, &throttle, now, &audit)
                    .await?
            }
        };
        Ok(outcome)
    }
}
