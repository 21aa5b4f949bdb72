//! Rows as both databases return them, and their conversion to and from domain types.
//! Conversion lives here once, so the two backends cannot drift apart.

use std::time::Duration;

use ipnet::IpNet;
use keygate_core::{
    AllowedOrigins, AuditEvent, KeyEnv, KeyHint, KeyId, KeyKind, KeyRecord, KeySecret, Metadata,
    OrgId, ProjectId, Role, Scope, Timestamp,
};

use crate::{Org, Project, StoreError};

pub(crate) fn corrupt(column: &'static str) -> impl Fn() -> StoreError {
    move || StoreError::Corrupt { column }
}

fn ts(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OrgRow {
    id: String,
    name: String,
    created_at: i64,
}

impl TryFrom<OrgRow> for Org {
    type Error = StoreError;
    fn try_from(row: OrgRow) -> Result<Self, StoreError> {
        Ok(Org {
            id: OrgId::parse(&row.id).map_err(|_| corrupt("orgs.id")())?,
            name: row.name,
            created_at: ts(row.created_at),
        })
    }
}

/// The columns of `projects`, in `project_columns!` order.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ProjectRow {
    id: String,
    org_id: String,
    name: String,
    created_at: i64,
    limits: String,
    anomaly_actions: Option<String>,
}

impl TryFrom<ProjectRow> for Project {
    type Error = StoreError;
    fn try_from(row: ProjectRow) -> Result<Self, StoreError> {
        Ok(Project {
            id: ProjectId::parse(&row.id).map_err(|_| corrupt("projects.id")())?,
            org_id: OrgId::parse(&row.org_id).map_err(|_| corrupt("projects.org_id")())?,
            name: row.name,
            created_at: ts(row.created_at),
            limits: serde_json::from_str(&row.limits).map_err(|_| corrupt("projects.limits")())?,
            anomaly_actions: row
                .anomaly_actions
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|_| corrupt("projects.anomaly_actions")())?
                .unwrap_or_default(),
        })
    }
}

/// A project's anomaly actions as stored: JSON text, `NULL` for none.
pub(crate) fn actions_text(actions: &std::collections::BTreeMap<String, String>) -> Option<String> {
    (!actions.is_empty()).then(|| serde_json::to_string(actions).unwrap_or_default())
}

/// Limits as stored: JSON text, `{}` for none.
pub(crate) fn limits_text(limits: &keygate_core::KeyLimits) -> String {
    serde_json::to_string(limits).unwrap_or_else(|_| "{}".to_owned())
}

/// The columns of `api_keys`, in the order of [`KEY_COLUMNS`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyRow {
    pub id: String,
    pub kind: String,
    pub org_id: String,
    pub project_id: Option<String>,
    pub name: String,
    pub env: String,
    pub role: Option<String>,
    pub scopes: String,
    pub expires_at: Option<i64>,
    pub ip_allow: String,
    pub metadata: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    pub deleted_at: Option<i64>,
    pub rotate_every_ms: Option<i64>,
    pub rotated_at: Option<i64>,
    pub generation: i64,
    pub hint: String,
    pub limits: String,
    /// JSON array of origin rules; `NULL` unless the key is publishable.
    pub publishable_origins: Option<String>,
    pub suspended_at: Option<i64>,
    pub suspended_reason: Option<String>,
    /// JSON [`keygate_core::KeyThrottle`]; `NULL` unless an anomaly throttled the key.
    pub throttle: Option<String>,
    pub last_write_at: Option<i64>,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;
    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let scopes: Vec<Scope> =
            serde_json::from_str(&row.scopes).map_err(|_| corrupt("api_keys.scopes")())?;
        let ip_allow: Vec<IpNet> =
            serde_json::from_str(&row.ip_allow).map_err(|_| corrupt("api_keys.ip_allow")())?;
        let metadata: serde_json::Value =
            serde_json::from_str(&row.metadata).map_err(|_| corrupt("api_keys.metadata")())?;
        let limits: keygate_core::KeyLimits =
            serde_json::from_str(&row.limits).map_err(|_| corrupt("api_keys.limits")())?;
        let publishable: Option<AllowedOrigins> = row
            .publishable_origins
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|_| corrupt("api_keys.publishable_origins")())?;
        let throttle = row
            .throttle
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|_| corrupt("api_keys.throttle")())?;
        Ok(KeyRecord {
            throttle,
            id: KeyId::parse(&row.id).map_err(|_| corrupt("api_keys.id")())?,
            kind: KeyKind::parse(&row.kind).ok_or_else(corrupt("api_keys.kind"))?,
            org_id: OrgId::parse(&row.org_id).map_err(|_| corrupt("api_keys.org_id")())?,
            project_id: row
                .project_id
                .map(|p| ProjectId::parse(&p))
                .transpose()
                .map_err(|_| corrupt("api_keys.project_id")())?,
            name: row.name,
            env: row
                .env
                .parse::<KeyEnv>()
                .map_err(|_| corrupt("api_keys.env")())?,
            role: row
                .role
                .map(|r| r.parse::<Role>())
                .transpose()
                .map_err(|_| corrupt("api_keys.role")())?,
            scopes,
            expires_at: row.expires_at.map(ts),
            ip_allow,
            publishable,
            limits,
            metadata: Metadata::parse(metadata).map_err(|_| corrupt("api_keys.metadata")())?,
            created_at: ts(row.created_at),
            updated_at: ts(row.updated_at),
            last_used_at: row.last_used_at.map(ts),
            last_write_at: row.last_write_at.map(ts),
            revoked_at: row.revoked_at.map(ts),
            revoked_reason: row.revoked_reason,
            suspended_at: row.suspended_at.map(ts),
            suspended_reason: row.suspended_reason,
            deleted_at: row.deleted_at.map(ts),
            rotate_every: row
                .rotate_every_ms
                .map(|ms| u64::try_from(ms).map(Duration::from_millis))
                .transpose()
                .map_err(|_| corrupt("api_keys.rotate_every_ms")())?,
            rotated_at: row.rotated_at.map(ts),
            generation: row.generation,
            hint: KeyHint::from_stored(row.hint),
        })
    }
}

impl KeyRow {
    pub(crate) fn from_record(key: &KeyRecord) -> Self {
        let strings = |items: Vec<String>| serde_json::Value::from(items).to_string();
        Self {
            id: key.id.to_string(),
            kind: key.kind.as_str().to_owned(),
            org_id: key.org_id.to_string(),
            project_id: key.project_id.as_ref().map(ToString::to_string),
            name: key.name.clone(),
            env: key.env.as_str().to_owned(),
            role: key.role.map(|r| r.as_str().to_owned()),
            scopes: strings(key.scopes.iter().map(|s| s.as_str().to_owned()).collect()),
            expires_at: key.expires_at.map(Timestamp::as_millis),
            ip_allow: strings(key.ip_allow.iter().map(ToString::to_string).collect()),
            metadata: key.metadata.to_json_text(),
            limits: serde_json::to_string(&key.limits).unwrap_or_else(|_| "{}".to_owned()),
            publishable_origins: key
                .publishable
                .as_ref()
                .map(|origins| strings(origins.to_strings())),
            created_at: key.created_at.as_millis(),
            updated_at: key.updated_at.as_millis(),
            last_used_at: key.last_used_at.map(Timestamp::as_millis),
            last_write_at: key.last_write_at.map(Timestamp::as_millis),
            revoked_at: key.revoked_at.map(Timestamp::as_millis),
            revoked_reason: key.revoked_reason.clone(),
            suspended_at: key.suspended_at.map(Timestamp::as_millis),
            suspended_reason: key.suspended_reason.clone(),
            throttle: key
                .throttle
                .as_ref()
                .and_then(|t| serde_json::to_string(t).ok()),
            deleted_at: key.deleted_at.map(Timestamp::as_millis),
            rotate_every_ms: key
                .rotate_every
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            rotated_at: key.rotated_at.map(Timestamp::as_millis),
            generation: key.generation,
            hint: key.hint.as_str().to_owned(),
        }
    }
}

/// A key row joined with one of its secrets.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyWithSecretRow {
    #[sqlx(flatten)]
    pub key: KeyRow,
    pub s_digest: Vec<u8>,
    pub s_generation: i64,
    pub s_created_at: i64,
    pub s_grace_until: Option<i64>,
}

impl TryFrom<KeyWithSecretRow> for (KeyRecord, KeySecret) {
    type Error = StoreError;
    fn try_from(row: KeyWithSecretRow) -> Result<Self, StoreError> {
        let key = KeyRecord::try_from(row.key)?;
        let secret = KeySecret {
            digest: row.s_digest,
            key_id: key.id.clone(),
            generation: row.s_generation,
            created_at: ts(row.s_created_at),
            grace_until: row.s_grace_until.map(ts),
        };
        Ok((key, secret))
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    seq: i64,
    ts: i64,
    actor: String,
    action: String,
    outcome: String,
    org_id: Option<String>,
    project_id: Option<String>,
    target: Option<String>,
    details: String,
    client_ip: Option<String>,
    request_id: Option<String>,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditEvent {
    fn from(row: AuditRow) -> Self {
        AuditEvent {
            seq: row.seq,
            ts: ts(row.ts),
            actor: row.actor,
            action: row.action,
            outcome: row.outcome,
            org_id: row.org_id,
            project_id: row.project_id,
            target: row.target,
            details: row.details,
            client_ip: row.client_ip,
            request_id: row.request_id,
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    pub fingerprint: String,
    pub response: String,
    pub created_at: i64,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SecretRow {
    id: String,
    org_id: String,
    project_id: String,
    name: String,
    description: Option<String>,
    created_at: i64,
    updated_at: i64,
    rotate_every_ms: Option<i64>,
}

impl TryFrom<SecretRow> for crate::SecretRecord {
    type Error = StoreError;
    fn try_from(row: SecretRow) -> Result<Self, StoreError> {
        Ok(crate::SecretRecord {
            id: keygate_core::SecretId::parse(&row.id).map_err(|_| corrupt("secrets.id")())?,
            org_id: OrgId::parse(&row.org_id).map_err(|_| corrupt("secrets.org_id")())?,
            project_id: ProjectId::parse(&row.project_id)
                .map_err(|_| corrupt("secrets.project_id")())?,
            name: row.name,
            description: row.description,
            created_at: ts(row.created_at),
            updated_at: ts(row.updated_at),
            rotate_every: row
                .rotate_every_ms
                .map(|ms| u64::try_from(ms).map(Duration::from_millis))
                .transpose()
                .map_err(|_| corrupt("secrets.rotate_every_ms")())?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SecretVersionRow {
    secret_id: String,
    version: i64,
    stage: String,
    kek_id: String,
    wrapped_dek: String,
    sealed: String,
    created_at: i64,
    previous_until: Option<i64>,
}

impl TryFrom<SecretVersionRow> for crate::SecretVersion {
    type Error = StoreError;
    fn try_from(row: SecretVersionRow) -> Result<Self, StoreError> {
        Ok(crate::SecretVersion {
            secret_id: keygate_core::SecretId::parse(&row.secret_id)
                .map_err(|_| corrupt("secret_versions.secret_id")())?,
            version: row.version,
            stage: crate::SecretStage::parse(&row.stage)
                .map_err(|_| corrupt("secret_versions.stage")())?,
            kek_id: row.kek_id,
            wrapped_dek: row.wrapped_dek,
            sealed: row.sealed,
            created_at: ts(row.created_at),
            previous_until: row.previous_until.map(ts),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DueSecretRow {
    #[sqlx(flatten)]
    secret: SecretRow,
    version: i64,
    current_since: i64,
}

impl TryFrom<DueSecretRow> for crate::DueSecret {
    type Error = StoreError;
    fn try_from(row: DueSecretRow) -> Result<Self, StoreError> {
        let secret = crate::SecretRecord::try_from(row.secret)?;
        let current_since = ts(row.current_since);
        let due_at = current_since.saturating_add(secret.rotate_every.unwrap_or_default());
        Ok(crate::DueSecret {
            secret,
            version: row.version,
            current_since,
            due_at,
        })
    }
}
