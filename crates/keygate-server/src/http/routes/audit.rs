//! `/admin/v1/audit`: the tamper-evident log, its export, and its signed checkpoints.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::http::dto::{
    AuditEventView, AuditExportParams, AuditList, AuditParams, AuditPublicKeyView,
    AuditVerifyParams, AuditVerifyView, CheckpointParams,
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
    Ok(export_body(export))
}

/// An export as NDJSON, streamed page by page, with the head it ends at in its header.
pub(crate) fn export_body(export: crate::service::AuditExport) -> Response {
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
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::HeaderName::from_static(AUDIT_HEAD), head),
        ],
        Body::from_stream(lines),
    )
        .into_response()
}

/// The key that signs the audit chain's checkpoints.
#[utoipa::path(get, path = "/admin/v1/audit/public-key", tag = "audit",
    responses((status = 200, body = AuditPublicKeyView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn public_key(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<AuditPublicKeyView>, ApiError> {
    let key = state.keygate.audit_public_key(&caller).await?;
    Ok(Json(AuditPublicKeyView {
        algorithm: "ed25519".to_owned(),
        key_id: key.id(),
        public_key: key.to_base64(),
    }))
}

/// Signed checkpoints after `after`, with the key that signed them: keep this file outside
/// the database, and `keygate audit verify --checkpoints FILE` proves the log was not
/// rewritten since.
#[utoipa::path(get, path = "/admin/v1/audit/checkpoints", tag = "audit",
    params(CheckpointParams),
    responses((status = 200, body = Object, description = "`{algorithm, public_key, key_id, checkpoints: [{seq, hash, signed_at, key_id, signature}]}`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn checkpoints(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<CheckpointParams>,
) -> Result<Json<crate::service::CheckpointFile>, ApiError> {
    Ok(Json(
        state
            .keygate
            .audit_checkpoints(&caller, params.after.unwrap_or(0))
            .await?,
    ))
}

/// Signs a checkpoint of the chain's head now, unless the head is signed already.
#[utoipa::path(post, path = "/admin/v1/audit/checkpoints", tag = "audit",
    responses((status = 201, body = Object, description = "The new checkpoint"),
        (status = 204, description = "The head is signed already"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn checkpoint(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Response, ApiError> {
    Ok(match state.keygate.checkpoint_audit(&caller).await? {
        Some(checkpoint) => (axum::http::StatusCode::CREATED, Json(checkpoint)).into_response(),
        None => axum::http::StatusCode::NO_CONTENT.into_response(),
    })
}
