//! The usage part of the store: usage records written in batches, and reports over them.

use async_trait::async_trait;
use keygate_core::{KeyId, MicroUsd, OrgId, ProjectId, Timestamp, UsageRecord};

use crate::StoreError;

/// What a usage report is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    Key,
    Project,
    Model,
    /// The UTC day.
    Day,
}

impl UsageGroup {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "key" => Some(Self::Key),
            "project" => Some(Self::Project),
            "model" => Some(Self::Model),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Project => "project",
            Self::Model => "model",
            Self::Day => "day",
        }
    }
}

/// Which records a report covers: one organisation, `from` inclusive to `to` exclusive.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub org: OrgId,
    pub project: Option<ProjectId>,
    pub key: Option<KeyId>,
    pub model: Option<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    pub group_by: UsageGroup,
}

/// One group of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// The key id, project id (empty for keys without a project), model, or day
    /// (`YYYY-MM-DD`).
    pub group: String,
    pub requests: u64,
    /// Requests answered with a status of 400 or more.
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cost: MicroUsd,
    /// Requests whose cost is unknown (a model without a price).
    pub unpriced: u64,
    /// The average latency of the requests whose latency is kept (those summed before it
    /// was, long ago, are not counted); `None` when there is none.
    pub latency_ms: Option<u64>,
    /// Requests answered from keygate's answer cache.
    pub cache_hits: u64,
    /// What those answers cost when they were made: the money the cache saved.
    pub saved: MicroUsd,
}

/// A request of a key that was refused or failed, as its record has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub at: Timestamp,
    pub endpoint: String,
    pub model: String,
    pub status: u16,
    pub error_code: Option<String>,
    pub client_ip: Option<String>,
}

/// Most groups one report returns.
pub const MAX_USAGE_GROUPS: i64 = 1000;

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Writes a batch of records (any number; split into statements as the database needs).
    async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError>;
    /// Sums records by group, largest cost first (days in order).
    async fn usage_report(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError>;
    /// The latest requests of `key` in `org` answered with a status of 400 or more, at or after
    /// `since`, newest first, at most `limit`.
    async fn key_refusals(
        &self,
        org: &keygate_core::OrgId,
        key: &keygate_core::KeyId,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<Refusal>, StoreError>;
    /// Deletes at most `limit` usage records older than `before`, with the hour sums older
    /// than that (the day sums stay); returns how many records went.
    async fn prune_usage(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError>;
    /// Takes the lease `name` for `holder` until `until` if it is free, expired at `now`, or
    /// already `holder`'s; whether it did.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;
}
