//! Bodies of `/admin/v1/webhooks`.

use keygate_core::Timestamp;
use keygate_store::{Delivery, DeliveryState, WebhookEndpoint};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::alerts::{CreateWebhook, UpdateWebhook};

/// A new webhook endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookBody {
    /// Where deliveries are POSTed: `https://…` (or `http://`).
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Event types to receive (see docs/events.md); empty or absent for every event.
    #[serde(default)]
    pub events: Vec<String>,
    /// A project id or name: only that project's events.
    #[serde(default)]
    pub project: Option<String>,
}

impl From<CreateWebhookBody> for CreateWebhook {
    fn from(body: CreateWebhookBody) -> Self {
        Self {
            url: body.url,
            description: body.description,
            events: body.events,
            project: body.project,
        }
    }
}

/// A change to an endpoint; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookBody {
    pub url: Option<String>,
    pub description: Option<String>,
    /// Replaces the list; `[]` for every event.
    pub events: Option<Vec<String>>,
    /// `true` stops deliveries (they wait), `false` resumes them.
    pub disabled: Option<bool>,
}

impl From<UpdateWebhookBody> for UpdateWebhook {
    fn from(body: UpdateWebhookBody) -> Self {
        Self {
            url: body.url,
            description: body.description,
            events: body.events,
            disabled: body.disabled,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    /// Set when the endpoint hears one project's events only.
    pub project_id: Option<String>,
    pub url: String,
    pub description: String,
    /// The event types it receives; empty for every event.
    pub events: Vec<String>,
    pub disabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&WebhookEndpoint> for WebhookView {
    fn from(e: &WebhookEndpoint) -> Self {
        Self {
            id: e.id.to_string(),
            project_id: e.project_id.as_ref().map(ToString::to_string),
            url: e.url.clone(),
            description: e.description.clone(),
            events: e.event_types.clone(),
            disabled: e.disabled_at.is_some(),
            created_at: e.created_at.to_rfc3339(),
            updated_at: e.updated_at.to_rfc3339(),
        }
    }
}

/// A created endpoint and its signing secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    /// The Standard Webhooks signing secret (`whsec_…`). Store it now: it is shown only once.
    pub secret: String,
    pub webhook: WebhookView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookView>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStateParam {
    Pending,
    Delivered,
    Dead,
}

impl From<DeliveryStateParam> for DeliveryState {
    fn from(state: DeliveryStateParam) -> Self {
        match state {
            DeliveryStateParam::Pending => Self::Pending,
            DeliveryStateParam::Delivered => Self::Delivered,
            DeliveryStateParam::Dead => Self::Dead,
        }
    }
}

fn state_param(state: DeliveryState) -> DeliveryStateParam {
    match state {
        DeliveryState::Pending => DeliveryStateParam::Pending,
        DeliveryState::Delivered => DeliveryStateParam::Delivered,
        DeliveryState::Dead => DeliveryStateParam::Dead,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// Only deliveries in this state; `dead` is the dead-letter list.
    pub state: Option<DeliveryStateParam>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<u32>,
}

/// One event's delivery to the endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    /// The event's id: the `webhook-id` header of every attempt.
    pub event_id: String,
    pub event_type: String,
    pub state: DeliveryStateParam,
    pub attempts: u32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<String>,
    /// The last attempt's answer status, if one came.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    pub created_at: String,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            event_id: d.event_id.to_string(),
            event_type: d.event_type.clone(),
            state: state_param(d.state),
            attempts: d.attempts,
            next_attempt_at: (d.state == DeliveryState::Pending).then(|| d.next_at.to_rfc3339()),
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            delivered_at: d.delivered_at.map(Timestamp::to_rfc3339),
            created_at: d.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub data: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

/// A test event queued for the endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestEventSent {
    pub event_id: String,
}
