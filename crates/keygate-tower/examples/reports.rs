//! A service behind keygate-tower. `GET /reports` needs `reports:read` and `POST /reports`
//! needs `reports:write`, from a keygate key or a keygate token issued for this service's
//! audience; `GET /health` is open.
//!
//! ```text
//! KEYGATE_URL=http://127.0.0.1:8080 REPORTS_AUDIENCE=https://reports.internal \
//!     cargo run -p keygate-tower --example reports
//! curl -H "Authorization: Bearer $KEY_OR_TOKEN" http://127.0.0.1:3000/reports
//! ```

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keygate_tower::{Caller, Credential, Keygate, KeygateLayer};
use serde_json::json;

/// The service: its routes, the protected ones behind the layer.
pub fn app(keygate: Keygate) -> Router {
    let protected = Router::new()
        .route("/reports", get(list).post(create))
        .layer(KeygateLayer::new(keygate));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(protected)
}

fn forbidden(permission: &str) -> Response {
    let message = format!("this needs `{permission}`");
    (
        StatusCode::FORBIDDEN,
        Json(json!({"error": {"code": "scope_denied", "message": message}})),
    )
        .into_response()
}

fn described(caller: &Caller) -> serde_json::Value {
    json!({
        "key_id": caller.key_id,
        "credential": match caller.credential {
            Credential::Key => "key",
            Credential::Token { .. } => "token",
        },
    })
}

async fn list(caller: Caller) -> Response {
    if !caller.allows("reports:read") {
        return forbidden("reports:read");
    }
    Json(json!({"caller": described(&caller), "reports": ["q3-revenue", "q3-churn"]}))
        .into_response()
}

async fn create(caller: Caller) -> Response {
    if !caller.allows("reports:write") {
        return forbidden("reports:write");
    }
    (
        StatusCode::CREATED,
        Json(json!({"caller": described(&caller)})),
    )
        .into_response()
}

#[cfg_attr(test, allow(dead_code, reason = "the tests serve `app` themselves"))]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("KEYGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    let mut keygate = Keygate::builder(url);
    if let Ok(audience) = std::env::var("REPORTS_AUDIENCE") {
        keygate = keygate.audience(audience);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app(keygate.build()?)).await?;
    Ok(())
}
