//! Admin tokens: keygate keys bound to a role on an organisation or one project.

use keygate_core::record::{MAX_NAME_CHARS, check_text};
use keygate_core::{
    ApiKey, AuditAction, Binding, KeyEnv, KeyId, KeyKind, KeyRecord, Metadata, Permission, Role,
    Timestamp,
};

use super::{Actor, Caller, Keygate};
use crate::ServiceError;

/// A token to issue.
#[derive(Debug, Clone)]
pub struct CreateToken {
    pub role: Role,
    /// Bind to one project (id or name); `None` binds to the organisation.
    pub project: Option<String>,
    pub name: String,
    pub expires_at: Option<Timestamp>,
}

impl Keygate {
    /// Issues an admin token. A caller never grants a role above its own, nor reach beyond
    /// its own binding.
    pub async fn create_token(
        &self,
        caller: &Caller,
        input: CreateToken,
    ) -> Result<(ApiKey, KeyRecord), ServiceError> {
        let project = match &input.project {
            Some(text) => Some(self.resolve_project(caller, text).await?),
            None => None,
        };
        let binding = match &project {
            Some(p) => Binding::Project {
                org: p.org_id.clone(),
                project: p.id.clone(),
            },
            None => Binding::Org(caller.org().clone()),
        };
        self.authorize(
            caller,
            Permission::TokensWrite,
            project.as_ref().map(|p| &p.id),
            None,
        )
        .await?;
        let grants = match &caller.actor {
            Actor::Admin(principal) => {
                principal.role.can_grant(input.role) && principal.binding.contains(&binding)
            }
            Actor::Local { .. } => true,
        };
        if !grants {
            // An escalation attempt is a refusal like any other: it goes on the record.
            let project = project.as_ref().map(|p| &p.id);
            return Err(self
                .deny(caller, Permission::TokensWrite, project, None)
                .await);
        }
        check_text("name", &input.name, MAX_NAME_CHARS)?;
        let now = self.clock.now();
        if input.expires_at.is_some_and(|at| at <= now) {
            return Err(
                keygate_core::ValidationError::new("expires_at", "a time in the future").into(),
            );
        }
        let key = ApiKey::generate(KeyEnv::Live)?;
        let record = KeyRecord {
            id: KeyId::generate(),
            kind: KeyKind::Admin,
            org_id: binding.org().clone(),
            project_id: binding.project().cloned(),
            name: input.name,
            env: KeyEnv::Live,
            role: Some(input.role),
            scopes: vec![],
            expires_at: input.expires_at,
            ip_allow: vec![],
            metadata: Metadata::default(),
            created_at: now,
            updated_at: now,
            last_used_at: None,
            revoked_at: None,
            revoked_reason: None,
            deleted_at: None,
            rotate_every: None,
            rotated_at: None,
            generation: 0,
            hint: key.hint(),
        };
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
}
