//! `/admin/v1/audit`: the tamper-evident log.

use axum::Json;
use axum::extract::State;

use crate::http::dto::{
    AuditEventView, AuditList, AuditParams, AuditVerifyParams, AuditVerifyView,
};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiQuery};
use crate::http::{ApiError, AppState};
use crate::service::AuditQuery;

/// Audit events, newest first.
#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditList>, ApiError> {
    let (events, next) = state
        .keygate
        .list_audit(
            &caller,
            AuditQuery {
                action: params.action,
                before: params.cursor,
                limit: params.limit,
            },
        )
        .await?;
    Ok(Json(AuditList {
        data: events.into_iter().map(AuditEventView::from).collect(),
        next_cursor: next,
    }))
}

/// Check the hash chain from the first entry to the stored head, and optionally that it still
/// holds an anchor saved earlier (`SEQ:HASH`).
#[utoipa::path(get, path = "/admin/v1/audit/verify", tag = "audit", params(AuditVerifyParams),
    responses((status = 200, body = AuditVerifyView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<AuditVerifyParams>,
) -> Result<Json<AuditVerifyView>, ApiError> {
    let anchor = params
        .anchor
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: keygate_core::ValidationError| ApiError::validation(e.to_string()))?;
    let report = state.keygate.verify_audit(&caller, anchor).await?;
    Ok(Json(report.into()))
}
