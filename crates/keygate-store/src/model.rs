//! Values the store takes and returns beyond the core domain types.

use keygate_core::{
    KeyEnv, KeyHint, KeyId, KeyKind, KeyLimits, KeyRecord, KeySecret, KeyStatus, OrgId, ProjectId,
    Timestamp,
};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub id: ProjectId,
    pub org_id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
    /// Limits counted for all the project's keys together, beside each key's own.
    pub limits: KeyLimits,
    /// The project's own anomaly actions, by detector name (`spend_spike` → `suspend`), over
    /// the server's; checked by the service, kept as given.
    pub anomaly_actions: std::collections::BTreeMap<String, String>,
}

/// The parts of a project to change; `None` keeps a part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectChange {
    pub limits: Option<KeyLimits>,
    /// Replaces every anomaly action (empty clears them).
    pub anomaly_actions: Option<std::collections::BTreeMap<String, String>>,
}

/// The first organisation, project and owner token of a fresh store.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub org: Org,
    pub project: Project,
    pub owner: KeyRecord,
    pub owner_secret: KeySecret,
}

/// Which keys to list: a page of at most `limit` after the cursor `after`.
#[derive(Debug, Clone)]
pub struct KeyFilter {
    pub org_id: OrgId,
    pub project_id: Option<ProjectId>,
    pub kind: KeyKind,
    pub env: Option<KeyEnv>,
    /// `None` lists every key that is not deleted.
    pub status: Option<KeyStatus>,
    pub now: Timestamp,
    pub after: Option<KeyId>,
    pub limit: u32,
    /// Only keys whose name contains this text, ignoring ASCII case.
    pub name_contains: Option<String>,
}

/// Which audit events to list, newest first, before the cursor `before`.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    pub org_id: OrgId,
    /// Restricts to one project's events (for a project-bound principal).
    pub project_id: Option<ProjectId>,
    pub action: Option<String>,
    pub before: Option<i64>,
    pub limit: u32,
}

/// Which events to export: an org's (and, for a project-bound principal, one project's) in
/// chain order after a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSince {
    pub org_id: OrgId,
    pub project_id: Option<ProjectId>,
    /// Events with a larger sequence number only (0 for all).
    pub after: i64,
    pub limit: u32,
}

/// A stored response for a retried request with the same `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyEntry {
    /// Who asked and about what, e.g. `rotate:<actor>:<key id>`.
    pub scope: String,
    pub key: String,
    /// A hash of the request, so that a reused idempotency key with another body is refused.
    pub fingerprint: String,
    /// The response, sealed by the master key: it holds a new secret.
    pub response: String,
    pub created_at: Timestamp,
}

/// A rotation: the key's new secret, and how long the current one stays valid.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub key_id: KeyId,
    pub new_digest: Vec<u8>,
    pub new_hint: KeyHint,
    pub grace_until: Timestamp,
    pub now: Timestamp,
    pub idempotency: Option<IdempotencyEntry>,
}

#[derive(Debug, Clone)]
pub enum RotateOutcome {
    Rotated(Box<KeyRecord>),
    /// The same idempotency key was used before: here is the stored response.
    Replayed(IdempotencyEntry),
}

/// How long an idempotency entry is honoured.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;
