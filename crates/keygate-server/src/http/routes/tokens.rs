//! `/admin/v1/tokens`: admin tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::http::dto::{CreateTokenBody, RevokeBody, TokenList, TokenView, TokenWithSecret};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiJson, KeyIdPath};
use crate::http::{ApiError, AppState};

/// Issue an admin token, at most the caller's own role and within its own binding.
#[utoipa::path(post, path = "/admin/v1/tokens", tag = "tokens",
    request_body = CreateTokenBody,
    responses((status = 201, body = TokenWithSecret), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(body): ApiJson<CreateTokenBody>,
) -> Result<(StatusCode, Json<TokenWithSecret>), ApiError> {
    let (key, record) = state
        .keygate
        .create_token(&caller, body.into_input()?)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenWithSecret {
            secret: key.expose().to_owned(),
            token: TokenView::new(&record, state.keygate.clock().now()),
        }),
    ))
}

/// The admin tokens the caller manages.
#[utoipa::path(get, path = "/admin/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = state.keygate.list_tokens(&caller).await?;
    let now = state.keygate.clock().now();
    Ok(Json(TokenList {
        data: tokens.iter().map(|t| TokenView::new(t, now)).collect(),
    }))
}

/// Revoke an admin token at once. A caller cannot revoke a token above its own role.
#[utoipa::path(post, path = "/admin/v1/tokens/{id}/revoke", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    request_body = RevokeBody,
    responses((status = 200, body = TokenView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    KeyIdPath(id): KeyIdPath,
    ApiJson(body): ApiJson<RevokeBody>,
) -> Result<Json<TokenView>, ApiError> {
    let token = state
        .keygate
        .revoke_token(&caller, &id, &body.reason)
        .await?;
    Ok(Json(TokenView::new(&token, state.keygate.clock().now())))
}
