//! `/admin/v1/webhooks`: where alerts are delivered, and their deliveries.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use keygate_core::{DeliveryId, WebhookId};

use crate::http::dto::{
    CreateWebhookBody, DeliveriesParams, DeliveryList, DeliveryView, TestEventSent,
    UpdateWebhookBody, WebhookList, WebhookView, WebhookWithSecret,
};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiJson, ApiQuery};
use crate::http::{ApiError, AppState};

/// A webhook id from the path; one of the wrong shape cannot exist, so it is "not found".
#[derive(Debug)]
pub struct WebhookPath(pub WebhookId);

impl<S: Send + Sync> FromRequestParts<S> for WebhookPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("webhook"))?;
        WebhookId::parse(&id)
            .map(WebhookPath)
            .map_err(|_| ApiError::not_found("webhook"))
    }
}

/// A webhook id and one of its deliveries' ids from the path.
#[derive(Debug)]
pub struct DeliveryPath(pub WebhookId, pub DeliveryId);

impl<S: Send + Sync> FromRequestParts<S> for DeliveryPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((webhook, delivery)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("delivery"))?;
        let webhook = WebhookId::parse(&webhook).map_err(|_| ApiError::not_found("webhook"))?;
        let delivery = DeliveryId::parse(&delivery).map_err(|_| ApiError::not_found("delivery"))?;
        Ok(Self(webhook, delivery))
    }
}

/// Add a webhook endpoint. Its signing secret (`whsec_…`) is in the response, once.
#[utoipa::path(post, path = "/admin/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhookBody,
    responses((status = 201, body = WebhookWithSecret), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(body): ApiJson<CreateWebhookBody>,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    let created = state.alerts.create_webhook(&caller, body.into()).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret {
            secret: created.secret.expose_text().to_string(),
            webhook: WebhookView::from(&created.endpoint),
        }),
    ))
}

/// The webhook endpoints the caller may see.
#[utoipa::path(get, path = "/admin/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<WebhookList>, ApiError> {
    let endpoints = state.alerts.list_webhooks(&caller).await?;
    Ok(Json(WebhookList {
        data: endpoints.iter().map(WebhookView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/admin/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    WebhookPath(id): WebhookPath,
) -> Result<Json<WebhookView>, ApiError> {
    let endpoint = state.alerts.webhook(&caller, &id).await?;
    Ok(Json(WebhookView::from(&endpoint)))
}

/// Change an endpoint's URL, description, event types, or pause it (`disabled`).
#[utoipa::path(patch, path = "/admin/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    request_body = UpdateWebhookBody,
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn update(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    WebhookPath(id): WebhookPath,
    ApiJson(body): ApiJson<UpdateWebhookBody>,
) -> Result<Json<WebhookView>, ApiError> {
    let endpoint = state
        .alerts
        .update_webhook(&caller, &id, body.into())
        .await?;
    Ok(Json(WebhookView::from(&endpoint)))
}

/// Delete an endpoint; its pending deliveries become dead.
#[utoipa::path(delete, path = "/admin/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    WebhookPath(id): WebhookPath,
) -> Result<StatusCode, ApiError> {
    state.alerts.delete_webhook(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queue a `webhook.test` event for this endpoint only.
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 202, body = TestEventSent), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn test(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    WebhookPath(id): WebhookPath,
) -> Result<(StatusCode, Json<TestEventSent>), ApiError> {
    let event = state.alerts.send_test(&caller, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestEventSent {
            event_id: event.to_string(),
        }),
    ))
}

/// An endpoint's deliveries, newest first; `state=dead` is its dead-letter list.
#[utoipa::path(get, path = "/admin/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), DeliveriesParams),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    WebhookPath(id): WebhookPath,
    ApiQuery(params): ApiQuery<DeliveriesParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    let page = state
        .alerts
        .deliveries(
            &caller,
            &id,
            params.state.map(Into::into),
            params.cursor.as_deref(),
            params.limit,
        )
        .await?;
    Ok(Json(DeliveryList {
        data: page.deliveries.iter().map(DeliveryView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Send a delivery again from its first attempt (a dead one, or one the receiver lost).
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/deliveries/{delivery}/replay",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"),
        ("delivery" = String, Path, description = "Delivery id")),
    responses((status = 202, body = DeliveryView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    DeliveryPath(id, delivery): DeliveryPath,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let delivery = state
        .alerts
        .replay_delivery(&caller, &id, &delivery)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&delivery))))
}
