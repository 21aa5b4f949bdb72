//! `GET /admin/v1/review`: the access review.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiQuery};
use crate::http::{ApiError, AppState};
use crate::service::Review;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReviewParams {
    /// Keys and admin tokens unused this many days are findings (default 90).
    pub unused_days: Option<u32>,
}

/// What a reviewer should look at, per project, each finding with the command that fixes it:
/// `key_unused`, `key_without_expiry`, `scope_wider_than_use`, `rotation_overdue`,
/// `secret_rotation_overdue`, `admin_token_unused`, `publishable_without_limits`.
#[utoipa::path(get, path = "/admin/v1/review", tag = "review",
    params(ReviewParams),
    responses((status = 200, body = Object,
            description = "`{\"generated_at\", \"unused_days\", \"projects\": [{\"project_id\", \"project\", \"findings\": [{\"kind\", \"target\", \"name\", \"detail\", \"fix\"}]}]}`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn review(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<ReviewParams>,
) -> Result<Json<Review>, ApiError> {
    Ok(Json(
        state
            .keygate
            .access_review(&caller, params.unused_days)
            .await?,
    ))
}
