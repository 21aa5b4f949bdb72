//! The web console at `/ui`: pages rendered on the server (askama templates in
//! `templates/console/`, which escape every value) over the same service operations as the
//! admin API, so the same roles and audit apply. The stylesheet and the one small script are
//! compiled into the binary; nothing is fetched from elsewhere, and every page works without
//! the script. Every answer carries a strict Content-Security-Policy and the usual security
//! headers. A session (`service/console_sessions.rs`) lives in an HttpOnly, SameSite=Strict
//! cookie; every write carries the session's CSRF token and must come from the console's own
//! origin.

mod anomalies;
mod assets;
mod audit;
mod chart;
mod keys;
mod model_groups;
mod pages;
mod projects;
mod secrets;
mod session;
mod sso;
mod tokens;
mod usage;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::http::AppState;
pub use crate::service::SessionPolicy;

/// How the console runs.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// How long sessions last.
    pub sessions: SessionPolicy,
    /// Whether session cookies are `Secure` whatever the request. They are anyway when a
    /// trusted proxy says the request came over HTTPS (`X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// Single sign-on through an OpenID Connect provider, when configured.
    pub sso: Option<std::sync::Arc<crate::service::SsoSettings>>,
}

/// What every console answer carries.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Pages hold what only their user may see: never kept by a browser or a proxy.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The console's routes, under `/ui`.
pub(crate) fn router() -> Router<AppState> {
    let home = || async { Redirect::to("/ui").into_response() };
    Router::new()
        .route("/ui", get(usage::overview))
        .route("/ui/", get(home))
        .route("/ui/usage", get(usage::usage))
        .route("/ui/anomalies", get(anomalies::list))
        .route("/ui/anomalies/{id}/ack", post(anomalies::ack))
        .route(
            "/ui/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/sso/start", get(sso::start))
        .route("/ui/sso/callback", get(sso::callback))
        .route("/ui/keys", get(keys::list).post(keys::create))
        .route("/ui/keys/new", get(keys::new_form))
        .route("/ui/keys/{id}", get(keys::show))
        .route("/ui/keys/{id}/edit", post(keys::edit))
        .route("/ui/keys/{id}/{action}", post(keys::act))
        .route("/ui/secrets", get(secrets::list).post(secrets::put))
        .route("/ui/secrets/{id}", get(secrets::show))
        .route("/ui/secrets/{id}/rotate", post(secrets::rotate))
        .route("/ui/secrets/{id}/promote", post(secrets::promote))
        .route("/ui/projects", get(projects::list).post(projects::create))
        .route("/ui/projects/{project}/limits", post(projects::set_limits))
        .route("/ui/tokens", get(tokens::list).post(tokens::create))
        .route("/ui/tokens/{id}/revoke", post(tokens::revoke))
        .route("/ui/sessions/{id}/end", post(tokens::end_session))
        .route(
            "/ui/model-groups",
            get(model_groups::list).post(model_groups::create),
        )
        .route("/ui/model-groups/{alias}", post(model_groups::replace))
        .route(
            "/ui/model-groups/{alias}/delete",
            post(model_groups::delete),
        )
        .route("/ui/audit", get(audit::list))
        .route("/ui/audit/export", get(audit::export))
        .route("/ui/assets/console.css", get(assets::css))
        .route("/ui/assets/console.js", get(assets::js))
        .layer(axum::middleware::map_response(security_headers))
}
