//! The checkpoint part of the store: signed checkpoints of the audit chain.

use async_trait::async_trait;
use keygate_core::Timestamp;

use crate::StoreError;

/// The chain's hash at `seq`, signed with the audit signing key named `key_id`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub signed_at: Timestamp,
    pub key_id: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub signature: String,
}

#[async_trait]
pub trait CheckpointStore {
    /// Keeps a checkpoint; `false` when one at that sequence number is already kept (another
    /// node signed it first).
    async fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool, StoreError>;
    /// Checkpoints after `after`, in order.
    async fn checkpoints(&self, after: i64, limit: u32) -> Result<Vec<Checkpoint>, StoreError>;
    async fn last_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError>;
}
