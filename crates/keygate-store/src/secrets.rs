//! The vault's part of the store: upstream secrets and their sealed versions.

use std::time::Duration;

use async_trait::async_trait;
use keygate_core::{AuditDraft, OrgId, ProjectId, SecretId, Timestamp, ValidationError};
use serde::Serialize;

use crate::StoreError;

/// A secret's metadata. Its values live only in [`SecretVersion`]s, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRecord {
    pub id: SecretId,
    pub org_id: OrgId,
    pub project_id: ProjectId,
    pub name: String,
    pub description: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Rotation policy: the current version is due this long after it became current.
    pub rotate_every: Option<Duration>,
}

/// Which due secrets to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueFilter {
    All,
    /// Only those not yet announced for their current version.
    Unannounced,
}

/// A secret whose current version is due for rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSecret {
    pub secret: SecretRecord,
    pub version: i64,
    /// When the current version became current.
    pub current_since: Timestamp,
    pub due_at: Timestamp,
}

/// Where a version stands: waiting to be promoted, the one in use, the one before it (usable
/// until its grace period ends), or retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretStage {
    Pending,
    Current,
    Previous,
    Retired,
}

impl SecretStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "pending" => Ok(Self::Pending),
            "current" => Ok(Self::Current),
            "previous" => Ok(Self::Previous),
            "retired" => Ok(Self::Retired),
            _ => Err(ValidationError::new(
                "stage",
                "pending, current, previous or retired",
            )),
        }
    }
}

/// One value of a secret, as an envelope: the data key wrapped by the KEK `kek_id`, and the
/// value sealed by the data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersion {
    pub secret_id: SecretId,
    pub version: i64,
    pub stage: SecretStage,
    pub kek_id: String,
    pub wrapped_dek: String,
    pub sealed: String,
    pub created_at: Timestamp,
    /// For the previous version: it stays usable strictly before this instant.
    pub previous_until: Option<Timestamp>,
}

/// A new current value: the secret (created if it is new) and its sealed version. The version
/// that was current becomes previous until `previous_until`.
#[derive(Debug, Clone)]
pub struct SecretPut {
    pub secret: SecretRecord,
    pub version: SecretVersion,
    pub previous_until: Timestamp,
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// A secret that is not deleted.
    async fn secret(&self, id: &SecretId) -> Result<Option<SecretRecord>, StoreError>;
    async fn secret_by_name(
        &self,
        project: &ProjectId,
        name: &str,
    ) -> Result<Option<SecretRecord>, StoreError>;
    /// Secrets by name, of one project or of the whole organisation.
    async fn list_secrets(
        &self,
        org: &OrgId,
        project: Option<&ProjectId>,
    ) -> Result<Vec<SecretRecord>, StoreError>;
    /// Every version, newest first.
    async fn secret_versions(&self, id: &SecretId) -> Result<Vec<SecretVersion>, StoreError>;
    /// Stores a new current version (creating the secret if needed). Fails with
    /// [`Conflict::VersionTaken`](crate::Conflict::VersionTaken) when another writer stored
    /// the same version number first.
    async fn put_secret(&self, put: &SecretPut, audit: &AuditDraft) -> Result<(), StoreError>;
    /// Adds a pending version to an existing secret; the current one stays current.
    async fn add_pending_version(
        &self,
        version: &SecretVersion,
        audit: &AuditDraft,
    ) -> Result<(), StoreError>;
    /// Makes a pending version current; the current one becomes previous until
    /// `previous_until`, the previous one retires.
    async fn promote_secret_version(
        &self,
        id: &SecretId,
        version: i64,
        previous_until: Timestamp,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<(), StoreError>;
    /// Versions whose data key is wrapped by a KEK other than `kek_id`, oldest first: the work
    /// left in a KEK rotation.
    async fn versions_not_wrapped_by(
        &self,
        kek_id: &str,
        limit: u32,
    ) -> Result<Vec<SecretVersion>, StoreError>;
    /// Replaces a version's wrapped data key, if it is still wrapped by `from_kek`. Returns
    /// whether it was replaced (a concurrent rotation may have done it first).
    async fn rewrap_secret_version(
        &self,
        version: &SecretVersion,
        to_kek: &str,
        wrapped_dek: &str,
    ) -> Result<bool, StoreError>;
    /// Secrets with a rotation policy whose current version is due at or before `by`, in one
    /// organisation (and project), or everywhere.
    async fn secrets_due(
        &self,
        org: Option<&OrgId>,
        project: Option<&ProjectId>,
        by: Timestamp,
        which: DueFilter,
    ) -> Result<Vec<DueSecret>, StoreError>;
    /// Records that version `version` of a secret was announced as due, with `audit`, once:
    /// returns false (and writes nothing) if it was announced already.
    async fn announce_due(
        &self,
        id: &SecretId,
        version: i64,
        audit: &AuditDraft,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Retires every previous version whose grace period has ended by `now`; returns how many.
    async fn retire_expired_previous(&self, now: Timestamp) -> Result<u64, StoreError>;
    /// Deletes a secret: its sealed versions are erased, its name freed.
    async fn delete_secret(
        &self,
        id: &SecretId,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<(), StoreError>;
}
