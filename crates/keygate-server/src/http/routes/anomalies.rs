//! `/admin/v1/anomalies`: what the anomaly detectors found, and its acknowledgement.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use keygate_core::{AnomalyId, KeyId};
use keygate_store::Anomaly;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::anomalies::AnomalyQuery;
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiQuery, OptionalJson};
use crate::http::{ApiError, AppState};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnomalyParams {
    /// A project id or name.
    pub project: Option<String>,
    /// A key id.
    pub key: Option<String>,
    /// `open` (not yet acknowledged), `acknowledged`, or absent for both.
    pub state: Option<AnomalyState>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyState {
    Open,
    Acknowledged,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyView {
    pub id: String,
    /// `request_spike`, `token_spike`, `spend_spike`, `new_network`, `scope_probing` or
    /// `old_secret_late`.
    pub detector: String,
    pub project_id: Option<String>,
    pub key_id: Option<String>,
    /// The figures that showed it.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    /// The policy's action: `record`, `alert` or `suspend`.
    pub action: String,
    /// What was done: `recorded`, `suspended` or `none`.
    pub outcome: String,
    pub detected_at: String,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub note: Option<String>,
}

impl From<&Anomaly> for AnomalyView {
    fn from(a: &Anomaly) -> Self {
        Self {
            id: a.id.to_string(),
            detector: a.detector.clone(),
            project_id: a.project_id.as_ref().map(ToString::to_string),
            key_id: a.key_id.as_ref().map(ToString::to_string),
            evidence: serde_json::from_str(&a.evidence).unwrap_or_default(),
            action: a.action.clone(),
            outcome: a.outcome.clone(),
            detected_at: a.detected_at.to_rfc3339(),
            acknowledged_at: a.acknowledged_at.map(keygate_core::Timestamp::to_rfc3339),
            acknowledged_by: a.acknowledged_by.clone(),
            note: a.note.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyList {
    pub data: Vec<AnomalyView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// What was found, for the next reader.
    pub note: Option<String>,
}

/// An anomaly id from the path; one of the wrong shape cannot exist, so it is "not found".
#[derive(Debug)]
pub struct AnomalyPath(pub AnomalyId);

impl<S: Send + Sync> FromRequestParts<S> for AnomalyPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("anomaly"))?;
        AnomalyId::parse(&id)
            .map(AnomalyPath)
            .map_err(|_| ApiError::not_found("anomaly"))
    }
}

/// What the anomaly detectors found, newest first.
#[utoipa::path(get, path = "/admin/v1/anomalies", tag = "anomalies",
    params(AnomalyParams),
    responses((status = 200, body = AnomalyList), (status = 404, body = ErrorBody),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<AnomalyParams>,
) -> Result<Json<AnomalyList>, ApiError> {
    let key = params
        .key
        .as_deref()
        .map(KeyId::parse)
        .transpose()
        .map_err(crate::ServiceError::from)?;
    let query = AnomalyQuery {
        project: params.project,
        key,
        acknowledged: params
            .state
            .map(|s| matches!(s, AnomalyState::Acknowledged)),
        cursor: params.cursor,
        limit: params.limit,
    };
    let (page, next_cursor) = state.anomalies.list(&caller, query).await?;
    Ok(Json(AnomalyList {
        data: page.iter().map(AnomalyView::from).collect(),
        next_cursor,
    }))
}

/// Mark an anomaly seen, with an optional note.
#[utoipa::path(post, path = "/admin/v1/anomalies/{id}/ack", tag = "anomalies",
    params(("id" = String, Path, description = "Anomaly id")),
    request_body = AckBody,
    responses((status = 200, body = AnomalyView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn ack(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    AnomalyPath(id): AnomalyPath,
    OptionalJson(body): OptionalJson<AckBody>,
) -> Result<Json<AnomalyView>, ApiError> {
    let anomaly = state
        .anomalies
        .acknowledge(&caller, &id, body.note.as_deref())
        .await?;
    Ok(Json(AnomalyView::from(&anomaly)))
}
