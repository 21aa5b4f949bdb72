//! Prepaid credits: dollars granted to a key or a project that never reset, drawn down by LLM
//! spend like a budget (see `limits/plan.rs`). Topping them up adds to what was granted, in
//! one transaction with its audit event, and every node sees the new amount at once.

use keygate_core::{AuditAction, KeyId, MicroUsd, Permission, ValidationError};
use keygate_store::Project;

use super::projects::ForgetKeysOnDrop;
use super::{Caller, Keygate};
use crate::ServiceError;
use crate::cache::InvalidateOnDrop;

/// Checks an amount to add: above zero.
fn amount(usd: MicroUsd) -> Result<MicroUsd, ValidationError> {
    if usd.0 <= 0 {
        return Err(ValidationError::new(
            "usd",
            "dollars above zero, such as 10.00",
        ));
    }
    Ok(usd)
}

impl Keygate {
    /// Adds `usd` to the prepaid credits of key `id` (a caller who may change the key may).
    pub async fn add_key_credits(
        &self,
        caller: &Caller,
        id: &KeyId,
        usd: MicroUsd,
    ) -> Result<keygate_core::KeyRecord, ServiceError> {
        let usd = amount(usd)?;
        let key = self.visible_key(caller, id, Permission::KeysWrite).await?;
        let mut audit = caller.audit(AuditAction::CreditsAdd, key.project_id.as_ref());
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({
            "owner": "key",
            "added_usd": usd.to_string(),
            "credits_before_usd": key.limits.credits.unwrap_or_default().to_string(),
        });
        let _invalidate = InvalidateOnDrop::new(self.invalidation.as_ref(), id);
        Ok(self
            .store
            .add_key_credits(id, usd, self.clock.now(), &audit)
            .await?)
    }

    /// Adds `usd` to the prepaid credits of `project`, shared by all its keys. Only an
    /// organisation-wide principal may, as for the project's other limits.
    pub async fn add_project_credits(
        &self,
        caller: &Caller,
        project: &str,
        usd: MicroUsd,
    ) -> Result<Project, ServiceError> {
        let usd = amount(usd)?;
        let project = self.resolve_project(caller, project).await?;
        self.project_access(caller, &project, Permission::ProjectsWrite, None)
            .await?;
        let mut audit = caller.audit(AuditAction::CreditsAdd, Some(&project.id));
        audit.target = Some(project.id.to_string());
        audit.details = serde_json::json!({
            "owner": "project",
            "added_usd": usd.to_string(),
            "credits_before_usd": project.limits.credits.unwrap_or_default().to_string(),
        });
        let _forget = ForgetKeysOnDrop(self.invalidation.as_ref());
        Ok(self
            .store
            .add_project_credits(&project.id, usd, self.clock.now(), &audit)
            .await?)
    }
}
