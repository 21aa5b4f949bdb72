//! The webhook part of the store: endpoints, the outbox of events, and their deliveries.

use async_trait::async_trait;
use keygate_core::{AuditDraft, DeliveryId, EventId, OrgId, ProjectId, Timestamp, WebhookId};

use crate::StoreError;

/// Where alerts go. `event_types` are names from the catalogue (empty: every event);
/// `project_id` narrows the endpoint to one project's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub org_id: OrgId,
    pub project_id: Option<ProjectId>,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    /// The signing secret, sealed by the KEK named `kek_id`.
    pub kek_id: String,
    pub secret_sealed: String,
    pub disabled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl WebhookEndpoint {
    /// Whether this endpoint hears an event of `kind` about `project`. A disabled endpoint
    /// still does: its deliveries wait until it is enabled again.
    pub fn wants(&self, kind: &str, project: Option<&ProjectId>) -> bool {
        (self.event_types.is_empty() || self.event_types.iter().any(|t| t == kind))
            && match &self.project_id {
                None => true,
                Some(own) => project == Some(own),
            }
    }
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// `Some(true)` disables (deliveries wait), `Some(false)` enables.
    pub disabled: Option<bool>,
}

/// An event as the outbox keeps it: its body is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: EventId,
    pub org_id: Option<OrgId>,
    pub project_id: Option<ProjectId>,
    pub event_type: String,
    pub payload: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Attempts used up (or the endpoint deleted): in the dead-letter list, replayable.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Dead]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: WebhookId,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_at: Timestamp,
    /// The status of the last attempt's answer, if one came.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, in keygate's words (never the receiver's body).
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A delivery claimed for an attempt, with what the attempt needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub delivery: Delivery,
    /// The claim's end: the attempt's outcome is recorded only while the claim still holds.
    pub claimed_until: Timestamp,
    pub payload: String,
    pub url: String,
    pub kek_id: String,
    pub secret_sealed: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered {
        status: u16,
    },
    /// Failed; try again at `at`.
    Retry {
        at: Timestamp,
        status: Option<u16>,
        error: String,
    },
    /// Failed, and that was the last attempt.
    Dead {
        status: Option<u16>,
        error: String,
    },
}

/// A page of one endpoint's deliveries, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub endpoint_id: WebhookId,
    pub state: Option<DeliveryState>,
    /// Only deliveries older than this one (the previous page's last).
    pub before: Option<DeliveryId>,
    pub limit: u32,
}

/// A cursor moved from where it was read (`None`: it did not exist yet) to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorMove<'a> {
    pub name: &'a str,
    pub from: Option<i64>,
    pub to: i64,
}

#[async_trait]
pub trait WebhookStore {
    async fn create_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditDraft,
    ) -> Result<(), StoreError>;
    /// An organisation's endpoints (not deleted), oldest first.
    async fn webhooks(&self, org: &OrgId) -> Result<Vec<WebhookEndpoint>, StoreError>;
    /// An endpoint, unless deleted.
    async fn webhook(&self, id: &WebhookId) -> Result<Option<WebhookEndpoint>, StoreError>;
    async fn update_webhook(
        &self,
        id: &WebhookId,
        patch: &WebhookPatch,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<WebhookEndpoint, StoreError>;
    /// Deletes an endpoint; its pending deliveries become dead.
    async fn delete_webhook(
        &self,
        id: &WebhookId,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<(), StoreError>;
    /// Stores events with one pending delivery per endpoint that wants each (only `endpoint`,
    /// when given), and moves `cursor` in the same transaction; returns how many deliveries
    /// were queued. An event no endpoint wants is not kept. A cursor that is no longer where
    /// the move starts (another node moved it) fails the whole call with a conflict.
    async fn enqueue_events(
        &self,
        events: &[OutboxEvent],
        endpoint: Option<&WebhookId>,
        cursor: Option<&CursorMove<'_>>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Where the cursor `name` stands; `None` before its first move.
    async fn cursor(&self, name: &str) -> Result<Option<i64>, StoreError>;
    /// Claims up to `limit` deliveries due at `now` (pending, not claimed by a live lease, of
    /// an endpoint neither deleted nor disabled) until `lease_until`, oldest first.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// Records an attempt's outcome and frees the claim — only if the claim is still this
    /// one's (not lapsed and taken by another node, nor ended by the endpoint's deletion);
    /// whether it was recorded.
    async fn finish_attempt(
        &self,
        claimed: &DueDelivery,
        outcome: &AttemptOutcome,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError>;
    /// Queues a delivery of the endpoint again, from its first attempt.
    async fn replay_delivery(
        &self,
        endpoint: &WebhookId,
        id: &DeliveryId,
        now: Timestamp,
        audit: &AuditDraft,
    ) -> Result<Delivery, StoreError>;
    /// Endpoints (deleted ones too) whose secret is sealed by a KEK other than `kek_id`.
    async fn webhooks_not_wrapped_by(
        &self,
        kek_id: &str,
        limit: u32,
    ) -> Result<Vec<WebhookEndpoint>, StoreError>;
    /// Replaces a secret's sealing if it is still sealed by `old_kek`; whether it did.
    async fn rewrap_webhook_secret(
        &self,
        id: &WebhookId,
        old_kek: &str,
        new_kek: &str,
        sealed: &str,
    ) -> Result<bool, StoreError>;
}
