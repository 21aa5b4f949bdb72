//! `/admin/v1/keys`: the API key lifecycle.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;

use crate::http::dto::{
    AddCreditsBody, CreateKeyBody, DueParams, KeyList, KeyView, KeyWithSecret, ListKeysParams,
    ReasonBody, RevokeBody, RotateBody, UpdateKeyBody,
};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiJson, ApiQuery, KeyIdPath, OptionalJson};
use crate::http::{ApiError, AppState};

fn now(state: &AppState) -> keygate_core::Timestamp {
    state.keygate.clock().now()
}

/// Create an API key. The secret is in the response, once.
#[utoipa::path(post, path = "/admin/v1/keys", tag = "keys",
    request_body = CreateKeyBody,
    responses(
        (status = 201, body = KeyWithSecret),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (key, record) = state
        .keygate
        .create_key(&caller, body.into_input()?)
        .await?;
    let view = KeyView::new(&record, now(&state));
    Ok((
        StatusCode::CREATED,
        Json(KeyWithSecret {
            secret: key.expose().to_owned(),
            key: view,
        }),
    ))
}

/// List keys, filtered, a page at a time.
#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys", params(ListKeysParams),
    responses((status = 200, body = KeyList), (status = 404, body = ErrorBody),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<ListKeysParams>,
) -> Result<Json<KeyList>, ApiError> {
    let page = state.keygate.list_keys(&caller, params.into()).await?;
    let now = now(&state);
    Ok(Json(KeyList {
        data: page.keys.iter().map(|k| KeyView::new(k, now)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Keys whose rotation policy says they are due (or due within `within_seconds`).
#[utoipa::path(get, path = "/admin/v1/keys/due", tag = "keys", params(DueParams),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn due(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<DueParams>,
) -> Result<Json<KeyList>, ApiError> {
    let keys = state
        .keygate
        .keys_due(
            &caller,
            params.project,
            Duration::from_secs(params.within_seconds),
        )
        .await?;
    let now = now(&state);
    Ok(Json(KeyList {
        data: keys.iter().map(|k| KeyView::new(k, now)).collect(),
        next_cursor: None,
    }))
}

/// Show one key.
#[utoipa::path(get, path = "/admin/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, body = KeyView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<KeyView>, ApiError> {
    let key = state.keygate.get_key(&caller, &id).await?;
    Ok(Json(KeyView::new(&key, now(&state))))
}

/// Change a key's name, scopes, expiry, metadata, IP allow-list, limits or rotation policy.
#[utoipa::path(patch, path = "/admin/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    request_body = UpdateKeyBody,
    responses((status = 200, body = KeyView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn update(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    KeyIdPath(id): KeyIdPath,
    ApiJson(body): ApiJson<UpdateKeyBody>,
) -> Result<Json<KeyView>, ApiError> {
    let key = state
        .keygate
        .update_key(&caller, &id, body.into_patch()?)
        .await?;
    Ok(Json(KeyView::new(&key, now(&state))))
}

/// Rotate a key: a new secret under the same id; the old one works for the grace period.
/// With an `Idempotency-Key` header, a retry returns the first result (and
/// `Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/admin/v1/keys/{id}/rotate", tag = "keys",
    params(("id" = String, Path, description = "Key id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    request_body = RotateBody,
    responses((status = 200, body = KeyWithSecret), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    KeyIdPath(id): KeyIdPath,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RotateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::validation("Idempotency-Key: 1-255 visible ASCII characters")
        })?),
    };
    let rotated = state
        .keygate
        .rotate_key(
            &caller,
            &id,
            Duration::from_secs(body.grace_period_seconds),
            idempotency_key,
        )
        .await?;
    let mut response = Json(KeyWithSecret {
        secret: rotated.key.expose().to_owned(),
        key: KeyView::new(&rotated.record, now(&state)),
    })
    .into_response();
    if rotated.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Revoke a key at once, with a reason. Revocation is final.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/revoke", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    request_body = RevokeBody,
    responses((status = 200, body = KeyView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    KeyIdPath(id): KeyIdPath,
    ApiJson(body): ApiJson<RevokeBody>,
) -> Result<Json<KeyView>, ApiError> {
    let key = state.keygate.revoke_key(&caller, &id, &body.reason).await?;
    Ok(Json(KeyView::new(&key, now(&state))))
}

/// Suspend a key: refused with `key_suspended` on every node until it is resumed. Unlike a
/// revocation, a suspension can be undone.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/suspend", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    request_body = ReasonBody,
    responses((status = 200, body = KeyView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn suspend(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    KeyIdPath(id): KeyIdPath,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<KeyView>, ApiError> {
    let key = state
        .keygate
        .suspend_key(&caller, &id, &body.reason)
        .await?;
    Ok(Json(KeyView::new(&key, now(&state))))
}

/// Resume a suspended key.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/resume", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    request_body = ReasonBody,
    responses((status = 200, body = KeyView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    KeyIdPath(id): KeyIdPath,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<KeyView>, ApiError> {
    let key = state.keygate.resume_key(&caller, &id, &body.reason).await?;
    Ok(Json(KeyView::new(&key, now(&state))))
}

/// Add to a key's prepaid credits: dollars that never reset, drawn down by its LLM spend.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/credits", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    request_body = AddCreditsBody,
    responses((status = 200, body = KeyView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn add_credits(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    KeyIdPath(id): KeyIdPath,
    ApiJson(body): ApiJson<AddCreditsBody>,
) -> Result<Json<KeyView>, ApiError> {
    let key = state
        .keygate
        .add_key_credits(&caller, &id, body.usd)
        .await?;
    Ok(Json(KeyView::new(&key, now(&state))))
}

/// Delete a key. A tombstone keeps its digests, so it can never verify again.
#[utoipa::path(delete, path = "/admin/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    KeyIdPath(id): KeyIdPath,
) -> Result<StatusCode, ApiError> {
    state.keygate.delete_key(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
