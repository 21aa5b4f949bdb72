//! Bodies of the vault's routes.

use keygate_core::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A value to store. It is sealed at once and never returned by this call.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecretBody {
    /// Project id or name.
    pub project: String,
    /// Unique within the project, e.g. `openai-prod`.
    pub name: String,
    pub value: String,
    pub description: Option<String>,
    /// How long the version that was current stays usable (default 0, at most 30 days).
    #[serde(default)]
    pub grace_period_seconds: u64,
    /// Rotation policy: the current version is due this long after it became current.
    pub rotate_every_seconds: Option<u64>,
}

impl std::fmt::Debug for PutSecretBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSecretBody")
            .field("project", &self.project)
            .field("name", &self.name)
            .field("value", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSecretsParams {
    /// Project id or name.
    pub project: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealBody {
    /// A version number; the current version by default.
    pub version: Option<i64>,
}

/// A decrypted value, returned only by `reveal`.
#[derive(Serialize, ToSchema)]
pub struct RevealedValue {
    pub value: String,
    pub version: i64,
}

impl std::fmt::Debug for RevealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RevealedValue(version {}, [REDACTED])", self.version)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretVersionView {
    pub version: i64,
    /// `pending` (waiting for promotion), `current`, `previous` (the one before the current;
    /// its grace period ends at `previous_until`) or `retired`.
    pub stage: String,
    pub created_at: String,
    pub previous_until: Option<String>,
    /// The key-encryption key that wraps this version's data key.
    pub kek_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub rotate_every_seconds: Option<u64>,
    /// Present when the secret is shown alone; empty in listings.
    pub versions: Vec<SecretVersionView>,
}

impl SecretView {
    pub fn new(
        secret: &keygate_store::SecretRecord,
        versions: &[keygate_store::SecretVersion],
    ) -> Self {
        Self {
            id: secret.id.to_string(),
            project_id: secret.project_id.to_string(),
            name: secret.name.clone(),
            description: secret.description.clone(),
            created_at: secret.created_at.to_rfc3339(),
            updated_at: secret.updated_at.to_rfc3339(),
            rotate_every_seconds: secret.rotate_every.map(|d| d.as_secs()),
            versions: versions
                .iter()
                .map(|v| SecretVersionView {
                    version: v.version,
                    stage: v.stage.as_str().to_owned(),
                    created_at: v.created_at.to_rfc3339(),
                    previous_until: v.previous_until.map(Timestamp::to_rfc3339),
                    kek_id: v.kek_id.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretList {
    pub data: Vec<SecretView>,
}

/// An HTTP check that must pass before a pending value is promoted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// `GET` this URL, e.g. `https://api.openai.com/v1/models`; any 2xx passes.
    pub url: String,
    /// The header that carries the value (default `authorization`).
    pub header: Option<String>,
    /// Text before the value in that header (default `Bearer ` for `authorization`, empty
    /// otherwise).
    pub prefix: Option<String>,
}

/// A new value for a secret, checked (optionally) and promoted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretBody {
    pub value: String,
    /// How long the version that was current keeps working after promotion (default 0).
    #[serde(default)]
    pub grace_period_seconds: u64,
    pub check: Option<CheckBody>,
}

impl std::fmt::Debug for RotateSecretBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateSecretBody")
            .field("value", &"[REDACTED]")
            .field("grace_period_seconds", &self.grace_period_seconds)
            .field("check", &self.check)
            .finish()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    /// The pending version to make current.
    pub version: i64,
    #[serde(default)]
    pub grace_period_seconds: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotationView {
    pub version: i64,
    /// `current` when promoted, `pending` when the check failed.
    pub stage: String,
    /// Why the check failed (never the value or the upstream's body).
    pub check_failed: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DueSecretView {
    pub id: String,
    pub project_id: String,
    pub name: String,
    /// The current version, the one due for rotation.
    pub version: i64,
    pub current_since: String,
    pub due_at: String,
}

impl From<&keygate_store::DueSecret> for DueSecretView {
    fn from(due: &keygate_store::DueSecret) -> Self {
        Self {
            id: due.secret.id.to_string(),
            project_id: due.secret.project_id.to_string(),
            name: due.secret.name.clone(),
            version: due.version,
            current_since: due.current_since.to_rfc3339(),
            due_at: due.due_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DueSecretList {
    pub data: Vec<DueSecretView>,
}
