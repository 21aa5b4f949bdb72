//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::http::dto::Health;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, AppState};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        limits: None,
    })
}

/// The store answers: the node can serve. Also says where limits are counted.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.keygate.store().ping().await.map_err(|err| {
        tracing::warn!(error = %err, "readiness check failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the store is unreachable",
        )
    })?;
    // Ready either way: without Redis the node still serves, by its policy; the state is
    // there for monitoring.
    Ok(Json(Health {
        status: "ready".to_owned(),
        limits: Some(state.limiter.mode()),
    }))
}

/// This API, described in OpenAPI 3.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::http::openapi())
}

/// Metrics in the Prometheus text format (see docs/metrics.md).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics_text().await,
    )
}
