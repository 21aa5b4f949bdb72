//! Responses API answers kept for `previous_response_id`: per project, each with the
//! conversation that led to it, bounded by age and by a number per project (the oldest go
//! first).

use async_trait::async_trait;
use keygate_core::Timestamp;

use crate::StoreError;

/// One kept answer.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub project_id: String,
    /// The response's id, as the client got it.
    pub id: String,
    /// The key that asked for it.
    pub key_id: String,
    /// The alias (model group) it was asked of: a key reads it only with that alias's scope.
    pub model: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The response object (JSON).
    pub response: String,
    /// The input items of the whole conversation before the answer (a JSON array).
    pub conversation: String,
}

impl std::fmt::Debug for StoredResponse {
    /// Leaves the content out: conversations stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredResponse")
            .field("project_id", &self.project_id)
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait ResponseStore {
    /// Keeps `response` (replacing one of the same id in its project that the same key
    /// kept; another key's stays as it is), then deletes the project's oldest beyond `keep`
    /// answers.
    async fn put_response(&self, response: &StoredResponse, keep: u64) -> Result<(), StoreError>;
    /// A project's answer, unless it expired by `now`.
    async fn response(
        &self,
        project_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<StoredResponse>, StoreError>;
    /// Deletes a project's answer; whether it was there.
    async fn delete_response(&self, project_id: &str, id: &str) -> Result<bool, StoreError>;
    /// Deletes the answers expired by `now`; how many.
    async fn prune_responses(&self, now: Timestamp) -> Result<u64, StoreError>;
}
