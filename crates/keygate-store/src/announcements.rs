//! One-time announcements of keys' coming expiries and due rotations.

use async_trait::async_trait;
use keygate_core::{AuditDraft, KeyRecord, Timestamp};

use crate::StoreError;

/// What is announced about a key, once per occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyNotice {
    /// It expires soon; the occurrence is its expiry instant.
    Expiring,
    /// Its rotation policy says it is due; the occurrence is the due instant.
    RotationDue,
}

impl KeyNotice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expiring => "key.expiring",
            Self::RotationDue => "key.rotation_due",
        }
    }
}

#[async_trait]
pub trait AnnouncementStore {
    /// Live API keys of every organisation with a notice not yet announced: those expiring
    /// after `now` and at or before `expiring_by`, and those whose rotation is due at `now`;
    /// each with its occurrence (milliseconds).
    async fn keys_to_announce(
        &self,
        notice: KeyNotice,
        now: Timestamp,
        expiring_by: Timestamp,
        limit: u32,
    ) -> Result<Vec<(KeyRecord, i64)>, StoreError>;
    /// Whether `kind` about `target` at `marker` was announced.
    async fn was_announced(
        &self,
        kind: &str,
        target: &str,
        marker: i64,
    ) -> Result<bool, StoreError>;
    /// Every organisation's id, for announcements made to each.
    async fn org_ids(&self) -> Result<Vec<keygate_core::OrgId>, StoreError>;
    /// Records the announcement of `kind` (a [`KeyNotice`]'s or another one-time event's
    /// name) about `target` at its occurrence `marker`, with its audit event, once; whether
    /// it was new.
    async fn announce_once(
        &self,
        kind: &str,
        target: &str,
        marker: i64,
        audit: &AuditDraft,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}
