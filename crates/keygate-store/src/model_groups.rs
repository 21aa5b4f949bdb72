//! Model groups managed through the admin API, stored so every node serves the same ones.

use async_trait::async_trait;
use keygate_core::{AuditDraft, Timestamp};

use crate::StoreError;

/// The settings row whose value changes with every write to `model_groups`.
pub const MODEL_GROUPS_REVISION: &str = "model_groups_revision";

/// A stored group: its alias and its configuration as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredModelGroup {
    pub alias: String,
    pub config: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[async_trait]
pub trait ModelGroupStore: Send + Sync {
    /// Every stored group, by alias.
    async fn model_groups(&self) -> Result<Vec<StoredModelGroup>, StoreError>;
    /// Creates or replaces a group and sets a new revision, with `audit`, in one transaction
    /// — if the stored revision is still `expected` (the one the caller checked the change
    /// against), else fails with [`Conflict::VersionTaken`](crate::Conflict::VersionTaken).
    async fn put_model_group(
        &self,
        alias: &str,
        config: &str,
        expected: Option<&str>,
        revision: &str,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<(), StoreError>;
    /// Deletes a group (false when there was none; then nothing is written), under the same
    /// revision check as `put_model_group`.
    async fn delete_model_group(
        &self,
        alias: &str,
        expected: Option<&str>,
        revision: &str,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<bool, StoreError>;
    /// The current revision, `None` before the first write.
    async fn model_groups_revision(&self) -> Result<Option<String>, StoreError>;
}
