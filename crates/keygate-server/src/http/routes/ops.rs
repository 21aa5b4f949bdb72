//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::http::AppState;
use crate::http::dto::Health;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        limits: None,
        store: None,
    })
}

/// Whether the node can serve: `ready`, or `degraded` while the store cannot be reached — the
/// node then goes on accepting the keys it loaded within the outage grace, and refuses admin
/// writes and keys it does not hold (`store_unavailable`), so it stays in its load balancer's
/// rotation. Also says where limits are counted.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> Json<Health> {
    let reachable = state.keygate.probe_store().await;
    let (status, store) = if reachable {
        ("ready", None)
    } else {
        tracing::warn!("readiness: the store is unreachable");
        ("degraded", Some("unreachable"))
    };
    // Ready either way: without Redis the node still serves, by its policy; the state is
    // there for monitoring.
    Json(Health {
        status: status.to_owned(),
        limits: Some(state.limiter.mode()),
        store,
    })
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
