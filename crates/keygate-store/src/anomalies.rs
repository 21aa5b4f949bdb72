//! The anomaly part of the store: what the detectors found, and its acknowledgement.

use async_trait::async_trait;
use keygate_core::{AnomalyId, AuditDraft, KeyId, OrgId, ProjectId, Timestamp};

use crate::{OutboxEvent, StoreError};

/// One finding, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub id: AnomalyId,
    pub org_id: OrgId,
    pub project_id: Option<ProjectId>,
    pub key_id: Option<KeyId>,
    /// The detector's name, such as `request_spike`.
    pub detector: String,
    /// The figures that showed it, as JSON text.
    pub evidence: String,
    /// What the policy said to do: `record`, `alert`, `throttle` or `suspend`.
    pub action: String,
    /// What was done, such as `suspended` or `none`.
    pub outcome: String,
    pub detected_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    /// Who acknowledged it (an admin token's key id, or `local`).
    pub acknowledged_by: Option<String>,
    pub note: Option<String>,
}

/// A page of an organisation's anomalies, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyFilter {
    pub org_id: OrgId,
    /// Only this project's.
    pub project_id: Option<ProjectId>,
    pub key_id: Option<KeyId>,
    /// `Some(false)`: not yet acknowledged; `Some(true)`: acknowledged.
    pub acknowledged: Option<bool>,
    /// Only anomalies older than this one.
    pub before: Option<AnomalyId>,
    pub limit: u32,
}

#[async_trait]
pub trait AnomalyStore {
    /// Keeps an anomaly, and in the same transaction the events it announces (queued for the
    /// webhook endpoints that want them).
    async fn add_anomaly(
        &self,
        anomaly: &Anomaly,
        events: &[OutboxEvent],
    ) -> Result<(), StoreError>;
    async fn anomalies(&self, filter: &AnomalyFilter) -> Result<Vec<Anomaly>, StoreError>;
    async fn anomaly(&self, id: &AnomalyId) -> Result<Option<Anomaly>, StoreError>;
    /// Marks an anomaly seen, once; with its audit event.
    async fn acknowledge_anomaly(
        &self,
        id: &AnomalyId,
        by: &str,
        note: Option<&str>,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<Anomaly, StoreError>;
}
