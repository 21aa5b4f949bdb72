//! keygate's storage: one [`Store`] trait with a SQLite implementation (the zero-config
//! default) and a PostgreSQL implementation (for many nodes). Both run the same SQL, through
//! one implementation written once (see `sql.rs`), over their own migrations.
//!
//! Architecture invariants: the store never sees a plaintext API key, only digests; every
//! admin change is written in the same transaction as its audit event.

mod announcements;
mod anomalies;
mod checkpoints;
mod console_sessions;
mod error;
mod limit_counts;
mod model;
mod model_groups;
mod postgres;
mod responses;
mod rollup;
mod rows;
mod secrets;
mod signing_keys;
mod sql;
mod sqlite;
mod usage;
mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use keygate_core::{
    AuditDraft, AuditEvent, ChainHead, KeyId, KeyLimits, KeyPatch, KeyRecord, KeySecret, OrgId,
    ProjectId, Timestamp,
};

pub use announcements::{AnnouncementStore, KeyNotice};
pub use anomalies::{Anomaly, AnomalyFilter, AnomalyStore};
pub use checkpoints::{Checkpoint, CheckpointStore};
pub use console_sessions::{ConsoleSession, ConsoleSessionStore};
pub use error::{Conflict, StoreError};
pub use limit_counts::{LIMIT_COUNTS_PER_STATEMENT, LimitCount, LimitCountKind, LimitCountStore};
pub use model::{
    AuditFilter, AuditSince, Bootstrap, IdempotencyEntry, KeyFilter, Org, Project, ProjectChange,
    RotateOutcome, Rotation,
};
pub use model_groups::{MODEL_GROUPS_REVISION, ModelGroupStore, StoredModelGroup};
pub use postgres::PgStore;
pub use responses::{ResponseStore, StoredResponse};
pub use secrets::{
    DueFilter, DueSecret, SecretPut, SecretRecord, SecretStage, SecretStore, SecretVersion,
};
pub use signing_keys::{SigningKeyStore, StoredSigningKey};
pub use sqlite::SqliteStore;
pub use usage::{MAX_USAGE_GROUPS, Refusal, UsageGroup, UsageQuery, UsageRow, UsageStore};
pub use webhooks::{
    AttemptOutcome, CursorMove, Delivery, DeliveryFilter, DeliveryState, DueDelivery, OutboxEvent,
    WebhookEndpoint, WebhookPatch, WebhookStore,
};

/// A day number (days since the Unix epoch, as text) as `YYYY-MM-DD`.
pub fn usage_day(days: &str) -> String {
    days.trim()
        .parse::<i64>()
        .ok()
        .map(|d| Timestamp::from_millis(d * 86_400_000).to_rfc3339())
        .and_then(|text| text.get(..10).map(str::to_owned))
        .unwrap_or_else(|| days.to_owned())
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Everything keygate keeps. Mutating methods take the audit event that records them and
/// write both in one transaction.
#[async_trait]
pub trait Store:
    SecretStore
    + UsageStore
    + ModelGroupStore
    + LimitCountStore
    + CheckpointStore
    + WebhookStore
    + AnomalyStore
    + AnnouncementStore
    + ConsoleSessionStore
    + SigningKeyStore
    + ResponseStore
    + Send
    + Sync
    + std::fmt::Debug
{
    fn backend(&self) -> Backend;

    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes every connection once in-flight queries finish (SQLite then folds its
    /// write-ahead log into the database file).
    async fn close(&self);

    /// A stored setting (e.g. the wrapped digest key).
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Stores `value` under `name` unless a value is there; returns the value that is stored
    /// afterwards, so that racing nodes all agree on the first one written.
    async fn init_setting(
        &self,
        name: &str,
        value: &str,
        now: Timestamp,
    ) -> Result<String, StoreError>;

    /// Replaces a setting's value if it is still `old`. Returns whether it was replaced.
    async fn replace_setting(&self, name: &str, old: &str, new: &str) -> Result<bool, StoreError>;

    /// Every stored idempotent reply that is still honoured at `now`.
    async fn idempotency_entries(
        &self,
        now: Timestamp,
    ) -> Result<Vec<IdempotencyEntry>, StoreError>;

    /// Replaces a stored reply's sealed response if it is still `old` (a KEK rotation moving
    /// it). Returns whether it was replaced.
    async fn replace_idempotency_response(
        &self,
        entry: &IdempotencyEntry,
        new_response: &str,
    ) -> Result<bool, StoreError>;

    /// Whether the first owner was ever created.
    async fn is_bootstrapped(&self) -> Result<bool, StoreError>;

    /// Creates the first organisation, project and owner token, once. A second call fails
    /// with [`Conflict::AlreadyBootstrapped`] and changes nothing.
    async fn bootstrap(&self, bootstrap: &Bootstrap, audit: &AuditDraft) -> Result<(), StoreError>;

    async fn org_by_name(&self, name: &str) -> Result<Option<Org>, StoreError>;

    async fn create_project(&self, project: &Project, audit: &AuditDraft)
    -> Result<(), StoreError>;
    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError>;
    async fn project_by_name(&self, org: &OrgId, name: &str)
    -> Result<Option<Project>, StoreError>;
    async fn list_projects(&self, org: &OrgId) -> Result<Vec<Project>, StoreError>;
    /// Replaces a project's limits (`{}` removes them) and returns the project as stored.
    /// Changes the parts of a project that `change` gives, with its audit event.
    async fn update_project(
        &self,
        id: &ProjectId,
        change: &ProjectChange,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<Project, StoreError>;
    /// Adds `usd` to a key's prepaid credits (its `limits.credits`, none counting as zero).
    async fn add_key_credits(
        &self,
        id: &KeyId,
        usd: keygate_core::MicroUsd,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<KeyRecord, StoreError>;
    /// Adds `usd` to a project's prepaid credits.
    async fn add_project_credits(
        &self,
        id: &ProjectId,
        usd: keygate_core::MicroUsd,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<Project, StoreError>;
    /// Replaces a project's limits, with its audit event.
    async fn set_project_limits(
        &self,
        id: &ProjectId,
        limits: &KeyLimits,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<Project, StoreError> {
        let change = ProjectChange {
            limits: Some(limits.clone()),
            anomaly_actions: None,
        };
        self.update_project(id, &change, now, audit).await
    }

    /// Inserts a new key with its first secret.
    async fn create_key(
        &self,
        key: &KeyRecord,
        secret: &KeySecret,
        audit: &AuditDraft,
    ) -> Result<(), StoreError>;
    async fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;
    /// The key and secret behind a digest: the lookup of every verification.
    async fn key_by_digest(
        &self,
        digest: &[u8],
    ) -> Result<Option<(KeyRecord, KeySecret)>, StoreError>;
    /// Every secret of a key that is current or still in its grace period at `now`.
    async fn live_secrets(&self, id: &KeyId, now: Timestamp) -> Result<Vec<KeySecret>, StoreError>;
    async fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError>;
    /// Live keys (not revoked, deleted or expired at `filter.now`) with a rotation policy
    /// whose next rotation is due at or before `by`.
    async fn keys_due_for_rotation(
        &self,
        filter: &KeyFilter,
        by: Timestamp,
    ) -> Result<Vec<KeyRecord>, StoreError>;
    async fn update_key(
        &self,
        id: &KeyId,
        patch: &KeyPatch,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<KeyRecord, StoreError>;
    async fn rotate_key(
        &self,
        rotation: &Rotation,
        audit: &AuditDraft,
    ) -> Result<RotateOutcome, StoreError>;
    async fn revoke_key(
        &self,
        id: &KeyId,
        reason: &str,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<KeyRecord, StoreError>;
    /// Suspends a live key (refused until resumed); a suspended key keeps its first reason.
    async fn suspend_key(
        &self,
        id: &KeyId,
        reason: &str,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<KeyRecord, StoreError>;
    /// Holds an active key to `throttle`'s rates until it lapses.
    async fn throttle_key(
        &self,
        id: &KeyId,
        throttle: &keygate_core::KeyThrottle,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<KeyRecord, StoreError>;
    /// Ends a key's suspension, and its throttle.
    async fn resume_key(
        &self,
        id: &KeyId,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<KeyRecord, StoreError>;
    async fn delete_key(
        &self,
        id: &KeyId,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<KeyRecord, StoreError>;
    /// Records last-use and last-write times in one batch; a later time never goes backwards.
    async fn touch_keys(
        &self,
        uses: &[(KeyId, Timestamp)],
        writes: &[(KeyId, Timestamp)],
    ) -> Result<(), StoreError>;

    /// Appends an event that accompanies no other change (a failed login, a refused access).
    async fn append_audit(&self, audit: &AuditDraft, now: Timestamp) -> Result<(), StoreError>;
    /// Events newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
    /// Events in chain order after `filter.after`, for export; the same events as
    /// [`Store::list_audit`] shows the same principal.
    async fn audit_since(&self, filter: &AuditSince) -> Result<Vec<AuditEvent>, StoreError>;
    /// Events in chain order with `after < seq <= upto`, for verification up to a head read
    /// before: entries appended meanwhile are left for the next check.
    async fn audit_chain_page(
        &self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;
    async fn audit_head(&self) -> Result<ChainHead, StoreError>;
}

/// Opens the store named by `url` (`sqlite://PATH` or `postgres://…`) and applies migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}
