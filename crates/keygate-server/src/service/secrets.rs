//! The vault: upstream secrets stored under envelope encryption. Values go in through `put`
//! and come out only through `reveal`, which needs its own permission and is audited.

use std::time::Duration;

use keygate_core::{AuditAction, Outcome, Permission, SecretId, ValidationError};
use keygate_crypto::envelope::{open, seal};
use keygate_crypto::{Envelope, KekId, SecretRow, WrappedKey};
use keygate_store::{SecretPut, SecretRecord, SecretStage, SecretVersion};
use secrecy::{ExposeSecret, SecretString};

use std::sync::Arc;

use super::{Caller, Keygate};
use crate::ServiceError;

/// Largest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 32 * 1024;
const MAX_NAME: usize = 64;

/// A value to store as a secret's new current version.
#[derive(Debug)]
pub struct PutSecret {
    /// A project id (`proj_…`) or name.
    pub project: String,
    pub name: String,
    pub value: SecretString,
    pub description: Option<String>,
    /// How long the version that was current stays usable.
    pub grace: Duration,
    /// Rotation policy; `None` keeps the secret's policy as it is.
    pub rotate_every: Option<Duration>,
}

/// A revealed value and the version it came from.
#[derive(Debug)]
pub struct Revealed {
    pub value: SecretString,
    pub version: i64,
}

pub(super) fn check_name(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && !name.starts_with(SecretId::PREFIX);
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "name",
            "1-64 letters, digits, `-`, `_` or `.`, not starting with `sec_`",
        ))
    }
}

pub(super) fn row<'a>(secret: &'a SecretRecord, version: i64) -> SecretRow<'a> {
    SecretRow {
        org: secret.org_id.as_str(),
        project: secret.project_id.as_str(),
        secret: secret.id.as_str(),
        version,
    }
}

impl Keygate {
    /// Stores `input.value` as the secret's new current version, creating the secret if it is
    /// new. The value is sealed before it reaches the store and is never returned.
    pub async fn put_secret(
        &self,
        caller: &Caller,
        input: PutSecret,
    ) -> Result<(SecretRecord, i64), ServiceError> {
        let project = self.resolve_project(caller, &input.project).await?;
        self.authorize(caller, Permission::SecretsWrite, Some(&project.id), None)
            .await?;
        check_name(&input.name)?;
        if let Some(description) = &input.description {
            keygate_core::record::check_text("description", description, 500)?;
        }
        let size = input.value.expose_secret().len();
        if size == 0 || size > MAX_SECRET_BYTES {
            return Err(ValidationError::new("value", "1 byte to 32 KiB").into());
        }
        if input.grace > super::keys::MAX_GRACE {
            return Err(ValidationError::new("grace_period_seconds", "at most 30 days").into());
        }
        super::keys::check_rotate_every(input.rotate_every)?;
        let now = self.clock.now();
        let existing = self.store.secret_by_name(&project.id, &input.name).await?;
        let (secret, version) = match existing {
            Some(secret) => {
                let versions = self.store.secret_versions(&secret.id).await?;
                let next = versions.first().map_or(1, |v| v.version + 1);
                (secret, next)
            }
            None => (
                SecretRecord {
                    id: SecretId::generate(),
                    org_id: project.org_id.clone(),
                    project_id: project.id.clone(),
                    name: input.name.clone(),
                    description: input.description.clone(),
                    created_at: now,
                    updated_at: now,
                    rotate_every: input.rotate_every,
                },
                1,
            ),
        };
        let envelope = seal(
            self.kek.as_ref(),
            &row(&secret, version),
            input.value.expose_secret().as_bytes(),
        )?;
        let mut audit = caller.audit(AuditAction::SecretPut, Some(&project.id));
        audit.target = Some(secret.id.to_string());
        audit.details = serde_json::json!({
            "name": secret.name,
            "version": version,
            "grace_period_seconds": input.grace.as_secs(),
        });
        let put = SecretPut {
            secret: SecretRecord {
                description: input.description.clone(),
                rotate_every: input.rotate_every,
                ..secret.clone()
            },
            version: SecretVersion {
                secret_id: secret.id.clone(),
                version,
                stage: SecretStage::Current,
                kek_id: envelope.dek.kek_id.to_string(),
                wrapped_dek: envelope.dek.sealed,
                sealed: envelope.sealed,
                created_at: now,
                previous_until: None,
            },
            previous_until: now.saturating_add(input.grace),
        };
        self.store.put_secret(&put, &audit).await?;
        self.forget_value(&secret.id);
        let stored = self
            .store
            .secret(&secret.id)
            .await?
            .ok_or(ServiceError::NotFound { entity: "secret" })?;
        Ok((stored, version))
    }

    /// A secret the caller may see for `permission`; one outside its reach is "not found".
    pub(super) async fn visible_secret(
        &self,
        caller: &Caller,
        id: &SecretId,
        permission: Permission,
    ) -> Result<SecretRecord, ServiceError> {
        let secret = self
            .store
            .secret(id)
            .await?
            .filter(|s| &s.org_id == caller.org())
            .ok_or(ServiceError::NotFound { entity: "secret" })?;
        match self
            .authorize(
                caller,
                permission,
                Some(&secret.project_id),
                Some(id.as_str()),
            )
            .await
        {
            Err(ServiceError::Forbidden { .. })
                if !caller.may(Permission::SecretsRead, Some(&secret.project_id)) =>
            {
                Err(ServiceError::NotFound { entity: "secret" })
            }
            other => other.map(|()| secret),
        }
    }

    /// The secrets the caller can see (metadata only).
    pub async fn list_secrets(
        &self,
        caller: &Caller,
        project: Option<String>,
    ) -> Result<Vec<SecretRecord>, ServiceError> {
        let project = match &project {
            Some(text) => Some(self.resolve_project(caller, text).await?.id),
            None => caller.bound_project().cloned(),
        };
        self.authorize(caller, Permission::SecretsRead, project.as_ref(), None)
            .await?;
        Ok(self
            .store
            .list_secrets(caller.org(), project.as_ref())
            .await?)
    }

    /// A secret and its versions' metadata: numbers, stages, times; never values.
    pub async fn get_secret(
        &self,
        caller: &Caller,
        id: &SecretId,
    ) -> Result<(SecretRecord, Vec<SecretVersion>), ServiceError> {
        let secret = self
            .visible_secret(caller, id, Permission::SecretsRead)
            .await?;
        let versions = self.store.secret_versions(id).await?;
        Ok((secret, versions))
    }

    pub async fn delete_secret(&self, caller: &Caller, id: &SecretId) -> Result<(), ServiceError> {
        let secret = self
            .visible_secret(caller, id, Permission::SecretsWrite)
            .await?;
        let mut audit = caller.audit(AuditAction::SecretDelete, Some(&secret.project_id));
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({ "name": secret.name });
        let deleted = self.store.delete_secret(id, self.clock.now(), &audit).await;
        self.forget_value(id);
        Ok(deleted?)
    }

    /// Decrypts a version (the current one by default). Needs the reveal permission; every
    /// reveal, and every value that fails to decrypt, is audited.
    pub async fn reveal_secret(
        &self,
        caller: &Caller,
        id: &SecretId,
        version: Option<i64>,
    ) -> Result<Revealed, ServiceError> {
        let secret = self
            .visible_secret(caller, id, Permission::SecretsReveal)
            .await?;
        let versions = self.store.secret_versions(id).await?;
        let chosen = match version {
            Some(n) => versions.iter().find(|v| v.version == n),
            None => versions.iter().find(|v| v.stage == SecretStage::Current),
        }
        .ok_or(ServiceError::NotFound {
            entity: "secret version",
        })?;
        let mut audit = caller.audit(AuditAction::SecretReveal, Some(&secret.project_id));
        audit.target = Some(id.to_string());
        self.open_version(&secret, chosen, audit).await
    }

    /// Decrypts one version and writes `audit` (marked unreadable if decryption fails): a
    /// damaged or moved ciphertext fails for this secret alone, on the record.
    async fn open_version(
        &self,
        secret: &SecretRecord,
        version: &SecretVersion,
        mut audit: keygate_core::AuditDraft,
    ) -> Result<Revealed, ServiceError> {
        audit.details = serde_json::json!({ "name": secret.name, "version": version.version });
        let value = match self.decrypt_version(secret, version) {
            Ok(value) => value,
            Err(reason) => {
                audit.action = AuditAction::SecretUnreadable;
                audit.outcome = Outcome::Denied;
                audit.details["error"] = serde_json::Value::String(reason);
                self.store.append_audit(&audit, self.clock.now()).await?;
                return Err(ServiceError::SecretUnreadable);
            }
        };
        self.store.append_audit(&audit, self.clock.now()).await?;
        Ok(Revealed {
            value,
            version: version.version,
        })
    }

    /// Decrypts a version; the error says why it could not be (never with the value).
    pub(super) fn decrypt_version(
        &self,
        secret: &SecretRecord,
        version: &SecretVersion,
    ) -> Result<SecretString, String> {
        let envelope = Envelope {
            dek: WrappedKey {
                kek_id: KekId::from_stored(version.kek_id.clone()),
                sealed: version.wrapped_dek.clone(),
            },
            sealed: version.sealed.clone(),
        };
        open(self.kek.as_ref(), &row(secret, version.version), &envelope)
            .map_err(|err| err.to_string())
            .and_then(|plain| {
                String::from_utf8(plain.to_vec()).map_err(|_| "the value is not UTF-8".to_owned())
            })
            .map(SecretString::from)
    }
}

impl Keygate {
    /// A secret's current value for a process that holds an API key of the secret's project
    /// (as `keygate run` does). The key needs a scope granting `secrets:read` or
    /// `secrets:read:<name>`; every read is audited under the key's id.
    pub async fn read_secret_with_key(
        &self,
        key: &str,
        name: &str,
        client_ip: Option<std::net::IpAddr>,
        request_id: Option<String>,
    ) -> Result<Revealed, ServiceError> {
        use super::{VerifyOutcome, VerifyQuery};

        let cached = match self
            .verify(VerifyQuery {
                key,
                permission: None,
                ip: client_ip,
                ..VerifyQuery::default()
            })
            .await?
        {
            VerifyOutcome::Valid(cached) => cached,
            VerifyOutcome::Invalid(rejection, _) => {
                return Err(ServiceError::Unauthenticated(rejection));
            }
        };
        let record = &cached.record;
        // A publishable key is public: it never reads the vault, whatever its scopes (which
        // cannot name `secrets:` today; this holds if that ever changes).
        if record.is_publishable() || !keygate_core::scope::grants_secret_read(&record.scopes, name)
        {
            return Err(ServiceError::ScopeDenied {
                permission: format!("secrets:read:{name}"),
            });
        }
        let project = record
            .project_id
            .as_ref()
            .ok_or(ServiceError::NotFound { entity: "secret" })?;
        let secret = self
            .store
            .secret_by_name(project, name)
            .await?
            .ok_or(ServiceError::NotFound { entity: "secret" })?;
        let versions = self.store.secret_versions(&secret.id).await?;
        let current = versions
            .iter()
            .find(|v| v.stage == SecretStage::Current)
            .ok_or(ServiceError::NotFound { entity: "secret" })?;
        let mut audit =
            keygate_core::AuditDraft::new(record.id.to_string(), AuditAction::SecretRead);
        audit.org_id = Some(record.org_id.to_string());
        audit.project_id = Some(project.to_string());
        audit.target = Some(secret.id.to_string());
        audit.client_ip = client_ip.map(|ip| ip.to_string());
        audit.request_id = request_id;
        // A recent read of this version is served from memory; the read is audited anyway.
        if let Some(cached) = self.values.get(&secret.id)
            && cached.0 == current.version
        {
            audit.details = serde_json::json!({ "name": secret.name, "version": current.version });
            self.store.append_audit(&audit, self.clock.now()).await?;
            return Ok(Revealed {
                value: cached.1.clone(),
                version: cached.0,
            });
        }
        let revealed = self.open_version(&secret, current, audit).await?;
        self.values.insert(
            secret.id.clone(),
            Arc::new((revealed.version, revealed.value.clone())),
        );
        Ok(revealed)
    }

    /// Drops a secret's decrypted value from memory (on every change to the secret).
    pub(super) fn forget_value(&self, id: &SecretId) {
        self.values.invalidate(id);
        // Gateway credentials are cached by name; secret changes are rare, so all go.
        self.credentials.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        assert!(check_name("openai-prod").is_ok());
        assert!(check_name("stripe_live.v2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name("sec_looks_like_an_id").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }
}
