//! `/admin/v1/model-groups`: the gateway's model groups. Those of `keygate.toml` are shown;
//! those created here are stored and served by every node.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keygate_llm::DeploymentStatus;
use keygate_llm::config::GroupFile;
use serde::Serialize;
use utoipa::ToSchema;

use crate::gateway_state::GroupView;
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiJson};
use crate::http::{ApiError, AppState};

/// A model group: an alias, its weighted deployments, strategy, fallbacks and retries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelGroupView {
    pub alias: String,
    /// `config` (keygate.toml) or `api` (stored).
    pub source: String,
    /// `weighted-round-robin`, `least-in-flight` or `latency`.
    pub strategy: String,
    /// `{provider, model, credential?, weight?, rpm?, tpm?, timeouts?}` each.
    #[schema(value_type = Vec<Object>)]
    pub deployments: serde_json::Value,
    pub fallbacks: Vec<String>,
    pub retries: Option<u32>,
    /// `drop` (hints a target cannot take are left out) or `refuse`.
    pub hints: String,
    /// What this node knows of each deployment now.
    pub health: Vec<DeploymentHealth>,
}

/// A deployment's state on the node that answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentHealth {
    /// `provider/model`.
    pub deployment: String,
    pub in_flight: u32,
    /// Moving average of the time to first byte, in milliseconds (0 before the first answer).
    pub latency_ms: f64,
    /// Whether the circuit breaker keeps requests away (open or waiting on its probe).
    pub breaker_open: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelGroupList {
    pub data: Vec<ModelGroupView>,
}

impl ModelGroupView {
    fn new(view: GroupView, status: &[DeploymentStatus]) -> Self {
        let json = serde_json::to_value(&view).unwrap_or_default();
        let health = status
            .iter()
            .filter(|s| s.alias == view.alias)
            .map(|s| DeploymentHealth {
                deployment: s.deployment.clone(),
                in_flight: s.in_flight,
                latency_ms: s.latency_micros as f64 / 1000.0,
                breaker_open: s.breaker_open,
            })
            .collect();
        Self {
            health,
            alias: view.alias,
            source: json["source"].as_str().unwrap_or_default().to_owned(),
            strategy: json["strategy"].as_str().unwrap_or_default().to_owned(),
            deployments: json["deployments"].clone(),
            fallbacks: view.group.fallbacks,
            retries: view.group.retries,
            hints: match view.group.hints {
                keygate_llm::config::Hints::Drop => "drop",
                keygate_llm::config::Hints::Refuse => "refuse",
            }
            .to_owned(),
        }
    }
}

/// Every model group, from the configuration file and stored.
#[utoipa::path(get, path = "/admin/v1/model-groups", tag = "gateway",
    responses((status = 200, body = ModelGroupList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<ModelGroupList>, ApiError> {
    let views = state.gateway.list(&state.keygate, &caller).await?;
    let status = state.gateway.current().status();
    Ok(Json(ModelGroupList {
        data: views
            .into_iter()
            .map(|view| ModelGroupView::new(view, &status))
            .collect(),
    }))
}

/// One model group.
#[utoipa::path(get, path = "/admin/v1/model-groups/{alias}", tag = "gateway",
    params(("alias" = String, Path)),
    responses((status = 200, body = ModelGroupView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(alias): Path<String>,
) -> Result<Json<ModelGroupView>, ApiError> {
    let views = state.gateway.list(&state.keygate, &caller).await?;
    let status = state.gateway.current().status();
    views
        .into_iter()
        .find(|view| view.alias == alias)
        .map(|view| Json(ModelGroupView::new(view, &status)))
        .ok_or_else(|| ApiError::not_found("model group"))
}

/// Create or replace a stored model group. It must resolve with every other group (known
/// providers, existing fallbacks); it is served at once, and by other nodes within seconds.
#[utoipa::path(put, path = "/admin/v1/model-groups/{alias}", tag = "gateway",
    params(("alias" = String, Path)),
    request_body(content = Object, description = "`{strategy?, deployments: [{provider, model, credential?, weight?, rpm?, tpm?, timeouts?}], fallbacks?, retries?}`"),
    responses((status = 200, body = ModelGroupView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn put(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(alias): Path<String>,
    ApiJson(group): ApiJson<GroupFile>,
) -> Result<Json<ModelGroupView>, ApiError> {
    let view = state
        .gateway
        .put(&state.keygate, &caller, &alias, group)
        .await?;
    Ok(Json(ModelGroupView::new(
        view,
        &state.gateway.current().status(),
    )))
}

/// Delete a stored model group (refused while another group falls back to it).
#[utoipa::path(delete, path = "/admin/v1/model-groups/{alias}", tag = "gateway",
    params(("alias" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(alias): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .gateway
        .delete(&state.keygate, &caller, &alias)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
