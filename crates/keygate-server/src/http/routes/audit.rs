//! `/admin/v1/audit`: the tamper-evident log.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::http::dto::{
    AuditEventView, AuditExportParams, AuditList, AuditParams, AuditVerifyParams, AuditVerifyView,
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

/// The header that names the chain's head when an export began: the export ends there.
const AUDIT_HEAD: &str = "x-audit-head";

/// The audit log for a SIEM: events (refusals included) as NDJSON, one per line, in chain
/// order after `after`, up to the head when the export began (in `x-audit-head`). Resume
/// from the last `seq` received.
#[utoipa::path(get, path = "/admin/v1/audit/export", tag = "audit", params(AuditExportParams),
    responses((status = 200, description = "One event per line, as in the list", content_type = "application/x-ndjson"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn export(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<AuditExportParams>,
) -> Result<Response, ApiError> {
    let export = state
        .keygate
        .export_audit(&caller, params.after.unwrap_or(0), params.limit)
        .await?;
    let head = export.head.to_string();
    let lines = futures_util::stream::unfold(Some(export), |export| async move {
        let mut export = export?;
        match export.next_page().await {
            Ok(Some(page)) => {
                let mut bytes = Vec::with_capacity(page.len() * 320);
                for event in page {
                    // An event always serialises.
                    let _ = serde_json::to_writer(&mut bytes, &AuditEventView::from(event));
                    bytes.push(b'\n');
                }
                Some((Ok(bytes::Bytes::from(bytes)), Some(export)))
            }
            Ok(None) => None,
            Err(err) => {
                // The reader sees the body break off, and resumes from its last line.
                tracing::warn!(error = %err, "the audit export stopped: the store failed");
                Some((Err(std::io::Error::other("the store failed")), None))
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::HeaderName::from_static(AUDIT_HEAD), head),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}
