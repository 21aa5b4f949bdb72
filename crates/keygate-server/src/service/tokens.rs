//! Admin tokens: keygate keys bound to a role on an organisation or one project.

use keygate_core::record::{MAX_NAME_CHARS, MAX_REASON_CHARS, check_text};
use keygate_core::{
    ApiKey, AuditAction, Binding, KeyId, KeyKind, KeyRecord, KeySpec, Permission, Role, Timestamp,
};
use keygate_store::KeyFilter;

use super::{Actor, Caller, Keygate};
use crate::ServiceError;
use crate::cache::InvalidateOnDrop;

/// Most tokens one listing returns.
const MAX_TOKENS: u32 = 1000;

/// A token to issue.
#[derive(Debug, Clone)]
pub struct CreateToken {
    pub role: Role,
    /// Bind to one project (id or name); `None` binds to the organisation.
    pub project: Option<String>,
    pub name: String,
    pub expires_at: Option<Timestamp>,
}

/// Whether `caller` may issue or revoke a token with `role` on `binding`: never above its
/// own role, never beyond its own binding.
pub(super) fn reaches(caller: &Caller, role: Role, binding: &Binding) -> bool {
    match &caller.actor {
        Actor::Admin(principal) => {
            principal.role.can_grant(role) && principal.binding.contains(binding)
        }
        Actor::Local { .. } => true,
    }
}

impl Keygate {
    /// Issues an admin token.
    pub async fn create_token(
        &self,
        caller: &Caller,
        input: CreateToken,
    ) -> Result<(ApiKey, KeyRecord), ServiceError> {
        let project = match &input.project {
            Some(text) => Some(self.resolve_project(caller, text).await?.id),
            None => None,
        };
        let binding = match &project {
            Some(project) => Binding::Project {
                org: caller.org().clone(),
                project: project.clone(),
            },
            None => Binding::Org(caller.org().clone()),
        };
        self.authorize(caller, Permission::TokensWrite, project.as_ref(), None)
            .await?;
        if !reaches(caller, input.role, &binding) {
            // An escalation attempt is a refusal like any other: it goes on the record.
            return Err(self
                .deny(caller, Permission::TokensWrite, project.as_ref(), None)
                .await);
        }
        check_text("name", &input.name, MAX_NAME_CHARS)?;
        let now = self.clock.now();
        if input.expires_at.is_some_and(|at| at <= now) {
            return Err(
                keygate_core::ValidationError::new("expires_at", "a time in the future").into(),
            );
        }
        let key = ApiKey::generate(keygate_core::KeyEnv::Live)?;
        let spec = KeySpec {
            expires_at: input.expires_at,
            ..KeySpec::admin(&binding, input.role, input.name)
        };
        let record = KeyRecord::issue(spec, key.hint(), now);
        let secret = self.first_secret(&key, &record);
        let mut audit = caller.audit(AuditAction::TokenCreate, record.project_id.as_ref());
        audit.target = Some(record.id.to_string());
        audit.details = serde_json::json!({
            "role": input.role,
            "name": record.name,
            "hint": record.hint,
        });
        self.store.create_key(&record, &secret, &audit).await?;
        Ok((key, record))
    }

    /// The admin tokens the caller manages: all of its organisation's, or its project's.
    pub async fn list_tokens(&self, caller: &Caller) -> Result<Vec<KeyRecord>, ServiceError> {
        let project = caller.bound_project().cloned();
        self.authorize(caller, Permission::TokensWrite, project.as_ref(), None)
            .await?;
        Ok(self
            .store
            .list_keys(&KeyFilter {
                org_id: caller.org().clone(),
                project_id: project,
                kind: KeyKind::Admin,
                env: None,
                status: None,
                now: self.clock.now(),
                after: None,
                limit: MAX_TOKENS,
                name_contains: None,
            })
            .await?)
    }

    /// Revokes an admin token at once. A token outside the caller's reach is "not found";
    /// one with a higher role than the caller's is refused.
    pub async fn revoke_token(
        &self,
        caller: &Caller,
        id: &KeyId,
        reason: &str,
    ) -> Result<KeyRecord, ServiceError> {
        let token = self
            .store
            .key(id)
            .await?
            .filter(|k| k.kind == KeyKind::Admin && k.deleted_at.is_none())
            .filter(|k| &k.org_id == caller.org())
            .ok_or(ServiceError::NotFound { entity: "token" })?;
        let binding = token.binding();
        self.authorize(
            caller,
            Permission::TokensWrite,
            token.project_id.as_ref(),
            Some(id.as_str()),
        )
        .await
        .map_err(|err| match err {
            ServiceError::Forbidden { .. } if !caller.binding().contains(&binding) => {
                ServiceError::NotFound { entity: "token" }
            }
            other => other,
        })?;
        let role = token.role.unwrap_or(Role::Owner);
        if !reaches(caller, role, &binding) {
            return Err(self
                .deny(
                    caller,
                    Permission::TokensWrite,
                    token.project_id.as_ref(),
                    Some(id.as_str()),
                )
                .await);
        }
        check_text("reason", reason, MAX_REASON_CHARS)?;
        let mut audit = caller.audit(AuditAction::TokenRevoke, token.project_id.as_ref());
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({ "reason": reason, "role": role });
        let _invalidate = InvalidateOnDrop::new(self.invalidation.as_ref(), id);
        Ok(self
            .store
            .revoke_key(id, reason, self.clock.now(), &audit)
            .await?)
    }
}
