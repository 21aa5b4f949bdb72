//! `/admin/v1/tokens`: admin tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::http::dto::{CreateTokenBody, TokenView, TokenWithSecret};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiJson};
use crate::http::{ApiError, AppState};

/// Issue an admin token, at most the caller's own role and within its own binding.
#[utoipa::path(post, path = "/admin/v1/tokens", tag = "tokens",
    request_body = CreateTokenBody,
    responses((status = 201, body = TokenWithSecret), (status = 400, body = ErrorBody),
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
            token: TokenView::new(&record),
        }),
    ))
}
