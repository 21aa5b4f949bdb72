//! Keys' own deadlines, announced once each: an expiry coming within the notice period
//! (`key.expiring`) and a rotation the key's policy says is due (`key.rotation_due`). Each is an
//! audit event written with its one-time marker, so the audit log — and through it the
//! webhooks — hear of it once, however many nodes look.

use std::time::Duration;

use keygate_core::{AuditAction, AuditDraft, Timestamp};
use keygate_store::KeyNotice;

use super::Keygate;
use crate::ServiceError;

/// Keys looked at per notice and check.
const BATCH: u32 = 500;

impl Keygate {
    /// Announces keys expiring within `notice` and keys due for rotation; returns how many.
    pub async fn announce_key_deadlines(&self, notice: Duration) -> Result<usize, ServiceError> {
        let now = self.clock.now();
        let by = now.saturating_add(notice);
        let mut announced = 0;
        for kind in [KeyNotice::Expiring, KeyNotice::RotationDue] {
            for (key, marker) in self.store.keys_to_announce(kind, now, by, BATCH).await? {
                let action = match kind {
                    KeyNotice::Expiring => AuditAction::KeyExpiring,
                    KeyNotice::RotationDue => AuditAction::KeyRotationDue,
                };
                let at = Timestamp::from_millis(marker).to_rfc3339();
                let mut audit = AuditDraft::new("system", action);
                audit.org_id = Some(key.org_id.to_string());
                audit.project_id = key.project_id.as_ref().map(ToString::to_string);
                audit.target = Some(key.id.to_string());
                audit.details = match kind {
                    KeyNotice::Expiring => serde_json::json!({
                        "name": key.name, "hint": key.hint, "expires_at": at,
                    }),
                    KeyNotice::RotationDue => serde_json::json!({
                        "name": key.name, "hint": key.hint, "due_at": at,
                    }),
                };
                if self
                    .store
                    .announce_once(kind.as_str(), key.id.as_str(), marker, &audit, now)
                    .await?
                {
                    announced += 1;
                }
            }
        }
        Ok(announced)
    }
}
