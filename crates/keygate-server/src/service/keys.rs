//! The API key lifecycle: create, list, show, update, rotate, revoke, delete.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keygate_core::record::{MAX_NAME_CHARS, MAX_REASON_CHARS, check_text, parse_ip_allow};
use keygate_core::{
    AllowedOrigins, ApiKey, AuditAction, KeyEnv, KeyId, KeyKind, KeyLimits, KeyPatch, KeyRecord,
    KeySecret, KeySpec, KeyStatus, Metadata, Permission, Scope, Timestamp, ValidationError,
};
use keygate_store::{IdempotencyEntry, KeyFilter, Project, RotateOutcome, Rotation};
use sha2::{Digest, Sha256};

use super::{Caller, Keygate};
use crate::ServiceError;
use crate::cache::InvalidateOnDrop;

/// Shortest and longest rotation policy.
const MIN_ROTATE_EVERY: Duration = Duration::from_secs(60);
const MAX_ROTATE_EVERY: Duration = Duration::from_secs(10 * 366 * 86_400);
/// Longest grace period after a rotation.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// What a new key should look like.
#[derive(Debug, Clone)]
pub struct CreateKey {
    /// A project id (`proj_…`) or name.
    pub project: String,
    pub name: String,
    pub env: KeyEnv,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
    pub ip_allow: Vec<String>,
    /// Its bounds are checked by [`Keygate::create_key`].
    pub limits: KeyLimits,
    pub metadata: Option<serde_json::Value>,
    pub rotate_every: Option<Duration>,
    /// Makes the key publishable, usable from these origins only; its scopes must then be
    /// read-only.
    pub publishable: Option<AllowedOrigins>,
}

/// Which keys to list.
#[derive(Debug, Clone, Default)]
pub struct KeyQuery {
    pub project: Option<String>,
    /// Only keys whose name contains this text (ignoring ASCII case).
    pub name: Option<String>,
    pub env: Option<KeyEnv>,
    pub status: Option<KeyStatus>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug)]
pub struct KeyPage {
    pub keys: Vec<KeyRecord>,
    pub next_cursor: Option<String>,
}

/// The result of a rotation: the new secret, shown once (again, for an idempotent retry).
#[derive(Debug)]
pub struct Rotated {
    pub key: ApiKey,
    pub record: KeyRecord,
    pub replayed: bool,
}

pub(crate) fn check_rotate_every(every: Option<Duration>) -> Result<(), ValidationError> {
    match every {
        Some(d) if d < MIN_ROTATE_EVERY || d > MAX_ROTATE_EVERY => Err(ValidationError::new(
            "rotate_every_seconds",
            "between 60 seconds and 10 years",
        )),
        _ => Ok(()),
    }
}

fn check_expiry(expires_at: Option<Timestamp>, now: Timestamp) -> Result<(), ValidationError> {
    match expires_at {
        Some(at) if at <= now => Err(ValidationError::new("expires_at", "a time in the future")),
        _ => Ok(()),
    }
}

fn encode_cursor(id: &KeyId) -> String {
    URL_SAFE_NO_PAD.encode(id.as_str())
}

fn decode_cursor(cursor: &str) -> Result<KeyId, ServiceError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| ServiceError::BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| ServiceError::BadCursor)?;
    KeyId::parse(&text).map_err(|_| ServiceError::BadCursor)
}

impl Keygate {
    /// Resolves a project by id or by name within the caller's organisation.
    pub(crate) async fn resolve_project(
        &self,
        caller: &Caller,
        project: &str,
    ) -> Result<Project, ServiceError> {
        let found = if project.starts_with(keygate_core::ProjectId::PREFIX) {
            let id = keygate_core::ProjectId::parse(project)?;
            self.store.project(&id).await?
        } else {
            self.store.project_by_name(caller.org(), project).await?
        };
        found
            .filter(|p| &p.org_id == caller.org())
            .ok_or(ServiceError::NotFound { entity: "project" })
    }

    /// Loads an API key the caller may see. A key outside the caller's reach is "not found",
    /// so that its existence is not revealed; the attempt is audited.
    pub(super) async fn visible_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        permission: Permission,
    ) -> Result<KeyRecord, ServiceError> {
        let key = self
            .store
            .key(id)
            .await?
            .filter(|k| k.kind == KeyKind::Api && k.deleted_at.is_none())
            .filter(|k| &k.org_id == caller.org())
            .ok_or(ServiceError::NotFound { entity: "key" })?;
        match self
            .authorize(
                caller,
                permission,
                key.project_id.as_ref(),
                Some(id.as_str()),
            )
            .await
        {
            Err(ServiceError::Forbidden { .. })
                if !caller.may(Permission::KeysRead, key.project_id.as_ref()) =>
            {
                Err(ServiceError::NotFound { entity: "key" })
            }
            other => other.map(|()| key),
        }
    }

    pub async fn create_key(
        &self,
        caller: &Caller,
        input: CreateKey,
    ) -> Result<(ApiKey, KeyRecord), ServiceError> {
        let project = self.resolve_project(caller, &input.project).await?;
        self.authorize(caller, Permission::KeysWrite, Some(&project.id), None)
            .await?;
        let now = self.clock.now();
        check_text("name", &input.name, MAX_NAME_CHARS)?;
        check_expiry(input.expires_at, now)?;
        check_rotate_every(input.rotate_every)?;
        let record_scopes = Scope::parse_list(&input.scopes)?;
        if input.publishable.is_some() {
            keygate_core::publishable::check_scopes(&record_scopes)?;
        }
        // A key that can read upstream secret values is as strong as a reveal: owners only.
        if record_scopes.iter().any(Scope::touches_secrets) {
            self.authorize(caller, Permission::SecretsReveal, Some(&project.id), None)
                .await?;
        }
        let ip_allow = parse_ip_allow(&input.ip_allow)?;
        let limits = input.limits.validate()?;
        let metadata = input
            .metadata
            .map(Metadata::parse)
            .transpose()?
            .unwrap_or_default();

        let key = ApiKey::generate(input.env)?;
        let spec = KeySpec {
            scopes: record_scopes,
            expires_at: input.expires_at,
            ip_allow,
            limits,
            metadata,
            rotate_every: input.rotate_every,
            publishable: input.publishable,
            ..KeySpec::api(
                project.org_id.clone(),
                project.id.clone(),
                input.name,
                input.env,
            )
        };
        let record = KeyRecord::issue(spec, key.hint(), now);
        let secret = self.first_secret(&key, &record);
        let mut audit = caller.audit(AuditAction::KeyCreate, Some(&project.id));
        audit.target = Some(record.id.to_string());
        audit.details = serde_json::json!({
            "name": record.name,
            "env": record.env,
            "hint": record.hint,
            "scopes": record.scopes,
        });
        if let Some(origins) = &record.publishable {
            audit.details["publishable"] = true.into();
            audit.details["origins"] = origins.to_strings().into();
        }
        self.store.create_key(&record, &secret, &audit).await?;
        Ok((key, record))
    }

    pub(crate) fn first_secret(&self, key: &ApiKey, record: &KeyRecord) -> KeySecret {
        KeySecret {
            digest: self.digest_key.digest(key.expose()).as_bytes().to_vec(),
            key_id: record.id.clone(),
            generation: 0,
            created_at: record.created_at,
            grace_until: None,
        }
    }

    pub async fn get_key(&self, caller: &Caller, id: &KeyId) -> Result<KeyRecord, ServiceError> {
        self.visible_key(caller, id, Permission::KeysRead).await
    }

    pub async fn list_keys(
        &self,
        caller: &Caller,
        query: KeyQuery,
    ) -> Result<KeyPage, ServiceError> {
        let project = match &query.project {
            Some(text) => Some(self.resolve_project(caller, text).await?.id),
            None => caller.bound_project().cloned(),
        };
        self.authorize(caller, Permission::KeysRead, project.as_ref(), None)
            .await?;
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ValidationError::new("limit", "between 1 and 200").into());
        }
        if query.name.as_ref().is_some_and(|name| name.len() > 200) {
            return Err(ValidationError::new("name", "at most 200 characters").into());
        }
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let filter = KeyFilter {
            org_id: caller.org().clone(),
            project_id: project,
            kind: KeyKind::Api,
            env: query.env,
            status: query.status,
            now: self.clock.now(),
            after,
            limit: limit + 1,
            name_contains: query.name,
        };
        let mut keys = self.store.list_keys(&filter).await?;
        let next_cursor = if keys.len() > limit as usize {
            keys.truncate(limit as usize);
            keys.last().map(|k| encode_cursor(&k.id))
        } else {
            None
        };
        Ok(KeyPage { keys, next_cursor })
    }

    /// Keys whose rotation policy asks for a rotation within `within` from now.
    pub async fn keys_due(
        &self,
        caller: &Caller,
        project: Option<String>,
        within: Duration,
    ) -> Result<Vec<KeyRecord>, ServiceError> {
        let project = match &project {
            Some(text) => Some(self.resolve_project(caller, text).await?.id),
            None => caller.bound_project().cloned(),
        };
        self.authorize(caller, Permission::KeysRead, project.as_ref(), None)
            .await?;
        let now = self.clock.now();
        let filter = KeyFilter {
            org_id: caller.org().clone(),
            project_id: project,
            kind: KeyKind::Api,
            env: None,
            status: None,
            now,
            after: None,
            limit: MAX_PAGE * 5,
            name_contains: None,
        };
        Ok(self
            .store
            .keys_due_for_rotation(&filter, now.saturating_add(within))
            .await?)
    }

    pub async fn update_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        mut patch: KeyPatch,
    ) -> Result<KeyRecord, ServiceError> {
        let key = self.visible_key(caller, id, Permission::KeysWrite).await?;
        let now = self.clock.now();
        if patch.is_empty() {
            return Err(ValidationError::new("body", "at least one field to change").into());
        }
        key.check_patch(&patch)?;
        if patch
            .scopes
            .as_ref()
            .is_some_and(|scopes| scopes.iter().any(Scope::touches_secrets))
        {
            self.authorize(
                caller,
                Permission::SecretsReveal,
                key.project_id.as_ref(),
                Some(id.as_str()),
            )
            .await?;
        }
        if let Some(name) = &patch.name {
            check_text("name", name, MAX_NAME_CHARS)?;
        }
        if let Some(expires_at) = patch.expires_at {
            check_expiry(expires_at, now)?;
        }
        if let Some(every) = patch.rotate_every {
            check_rotate_every(every)?;
        }
        patch.limits = patch.limits.map(KeyLimits::validate).transpose()?;
        let mut audit = caller.audit(AuditAction::KeyUpdate, key.project_id.as_ref());
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({ "fields": changed_fields(&patch) });
        let _invalidate = InvalidateOnDrop::new(self.invalidation.as_ref(), id);
        Ok(self.store.update_key(id, &patch, now, &audit).await?)
    }

    /// Issues a new secret for the same key id. The previous secret keeps working for
    /// `grace`. With an idempotency key, a retry returns the first rotation's result.
    pub async fn rotate_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        grace: Duration,
        idempotency_key: Option<&str>,
    ) -> Result<Rotated, ServiceError> {
        let existing = self.visible_key(caller, id, Permission::KeysWrite).await?;
        if grace > MAX_GRACE {
            return Err(ValidationError::new("grace_period_seconds", "at most 30 days").into());
        }
        if let Some(idem) = idempotency_key {
            let valid =
                !idem.is_empty() && idem.len() <= 255 && idem.bytes().all(|c| c.is_ascii_graphic());
            if !valid {
                return Err(ValidationError::new(
                    "Idempotency-Key",
                    "1-255 visible ASCII characters",
                )
                .into());
            }
        }
        let now = self.clock.now();
        let key = ApiKey::generate(existing.env)?;
        let scope = format!("rotate:{}:{}", caller.actor_id(), id);
        let idempotency = match idempotency_key {
            Some(idem) => Some(self.seal_for_replay(&key, &scope, idem, grace, now)?),
            None => None,
        };
        let rotation = Rotation {
            key_id: id.clone(),
            new_digest: self.digest_key.digest(key.expose()).as_bytes().to_vec(),
            new_hint: key.hint(),
            grace_until: now.saturating_add(grace),
            now,
            idempotency,
        };
        let mut audit = caller.audit(AuditAction::KeyRotate, existing.project_id.as_ref());
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({
            "grace_period_seconds": grace.as_secs(),
            "hint": key.hint(),
        });
        let outcome = {
            let _invalidate = InvalidateOnDrop::new(self.invalidation.as_ref(), id);
            self.store.rotate_key(&rotation, &audit).await?
        };
        match outcome {
            RotateOutcome::Rotated(record) => Ok(Rotated {
                key,
                record: *record,
                replayed: false,
            }),
            RotateOutcome::Replayed(entry) => {
                let key = self.open_replay(&entry)?;
                let record = self.visible_key(caller, id, Permission::KeysRead).await?;
                Ok(Rotated {
                    key,
                    record,
                    replayed: true,
                })
            }
        }
    }

    fn seal_for_replay(
        &self,
        key: &ApiKey,
        scope: &str,
        idem: &str,
        grace: Duration,
        now: Timestamp,
    ) -> Result<IdempotencyEntry, ServiceError> {
        let response = super::replay::seal(self.kek.as_ref(), scope, idem, key.expose())?;
        let fingerprint = hex::encode(Sha256::digest(format!("{scope}|{}", grace.as_millis())));
        Ok(IdempotencyEntry {
            scope: scope.to_owned(),
            key: idem.to_owned(),
            fingerprint,
            response,
            created_at: now,
        })
    }

    fn open_replay(&self, entry: &IdempotencyEntry) -> Result<ApiKey, ServiceError> {
        let text = super::replay::open(self.kek.as_ref(), entry)?;
        ApiKey::parse(&text).map_err(|_| keygate_crypto::CryptoError::WrappedMalformed.into())
    }

    /// The key a caller revokes, suspends or resumes with `reason`, and the audit event of
    /// that `action` (its target and reason filled in).
    async fn state_change(
        &self,
        caller: &Caller,
        id: &KeyId,
        reason: &str,
        action: AuditAction,
    ) -> Result<(KeyRecord, keygate_core::AuditDraft), ServiceError> {
        let key = self.visible_key(caller, id, Permission::KeysWrite).await?;
        check_text("reason", reason, MAX_REASON_CHARS)?;
        let mut audit = caller.audit(action, key.project_id.as_ref());
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({ "reason": reason });
        Ok((key, audit))
    }

    pub async fn revoke_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        reason: &str,
    ) -> Result<KeyRecord, ServiceError> {
        let (_, audit) = self
            .state_change(caller, id, reason, AuditAction::KeyRevoke)
            .await?;
        let _invalidate = InvalidateOnDrop::new(self.invalidation.as_ref(), id);
        Ok(self
            .store
            .revoke_key(id, reason, self.clock.now(), &audit)
            .await?)
    }

    /// Suspends a key: every node refuses it (`key_suspended`) until it is resumed.
    pub async fn suspend_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        reason: &str,
    ) -> Result<KeyRecord, ServiceError> {
        let (_, audit) = self
            .state_change(caller, id, reason, AuditAction::KeySuspend)
            .await?;
        let _invalidate = InvalidateOnDrop::new(self.invalidation.as_ref(), id);
        Ok(self
            .store
            .suspend_key(id, reason, self.clock.now(), &audit)
            .await?)
    }

    /// Ends a key's suspension, with a reason for the audit log.
    pub async fn resume_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        reason: &str,
    ) -> Result<KeyRecord, ServiceError> {
        let (key, mut audit) = self
            .state_change(caller, id, reason, AuditAction::KeyResume)
            .await?;
        audit.details = serde_json::json!({
            "reason": reason,
            "suspended_reason": key.suspended_reason,
        });
        let _invalidate = InvalidateOnDrop::new(self.invalidation.as_ref(), id);
        Ok(self.store.resume_key(id, self.clock.now(), &audit).await?)
    }

    pub async fn delete_key(&self, caller: &Caller, id: &KeyId) -> Result<KeyRecord, ServiceError> {
        let key = self.visible_key(caller, id, Permission::KeysDelete).await?;
        let mut audit = caller.audit(AuditAction::KeyDelete, key.project_id.as_ref());
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({ "name": key.name, "hint": key.hint });
        let _invalidate = InvalidateOnDrop::new(self.invalidation.as_ref(), id);
        Ok(self.store.delete_key(id, self.clock.now(), &audit).await?)
    }
}

fn changed_fields(patch: &KeyPatch) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if patch.name.is_some() {
        fields.push("name");
    }
    if patch.scopes.is_some() {
        fields.push("scopes");
    }
    if patch.expires_at.is_some() {
        fields.push("expires_at");
    }
    if patch.metadata.is_some() {
        fields.push("metadata");
    }
    if patch.ip_allow.is_some() {
        fields.push("ip_allow");
    }
    if patch.limits.is_some() {
        fields.push("limits");
    }
    if patch.rotate_every.is_some() {
        fields.push("rotate_every_seconds");
    }
    if patch.origins.is_some() {
        fields.push("origins");
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let id = KeyId::generate();
        assert_eq!(decode_cursor(&encode_cursor(&id)).unwrap(), id);
        assert!(matches!(decode_cursor("!!"), Err(ServiceError::BadCursor)));
        assert!(matches!(
            decode_cursor(&URL_SAFE_NO_PAD.encode("proj_x")),
            Err(ServiceError::BadCursor)
        ));
    }

    #[test]
    fn rotate_every_bounds() {
        assert!(check_rotate_every(Some(Duration::from_secs(59))).is_err());
        assert!(check_rotate_every(Some(Duration::from_secs(86_400))).is_ok());
        assert!(check_rotate_every(None).is_ok());
    }
}
