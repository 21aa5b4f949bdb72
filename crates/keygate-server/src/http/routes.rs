//! The route table and the middleware stack around it.

pub(super) mod anomalies;
pub(crate) mod audit;
pub(super) mod keys;
pub(super) mod leaks;
pub(super) mod llm;
pub(super) mod model_groups;
pub(super) mod oauth;
pub(super) mod openai_endpoints;
pub(crate) mod ops;
pub(super) mod projects;
pub(super) mod proxy;
pub(super) mod review;
pub(super) mod secrets;
pub(super) mod tokens;
pub(super) mod usage;
pub(super) mod verify;
pub(super) mod webhooks;

use axum::Router;
use axum::http::{HeaderName, StatusCode, header};
use axum::routing::{any, get, post};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;

use super::{ApiError, AppState, middleware};

pub(super) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP API. Tests call it directly with `oneshot`; `run` serves it.
pub fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/projects", get(projects::list).post(projects::create))
        .route(
            "/projects/{project}",
            get(projects::show).patch(projects::update),
        )
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/due", get(keys::due))
        .route(
            "/keys/{id}",
            get(keys::show).patch(keys::update).delete(keys::delete),
        )
        .route("/keys/{id}/rotate", post(keys::rotate))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/keys/{id}/suspend", post(keys::suspend))
        .route("/keys/{id}/resume", post(keys::resume))
        .route("/keys/{id}/credits", post(keys::add_credits))
        .route("/projects/{project}/credits", post(projects::add_credits))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/secrets", get(secrets::list).post(secrets::put))
        .route("/secrets/due", get(secrets::due))
        .route("/secrets/{id}", get(secrets::show).delete(secrets::delete))
        .route("/secrets/{id}/reveal", post(secrets::reveal))
        .route("/secrets/{id}/rotate", post(secrets::rotate))
        .route("/secrets/{id}/promote", post(secrets::promote))
        .route("/audit", get(audit::list))
        .route("/audit/verify", get(audit::verify))
        .route("/audit/export", get(audit::export))
        .route("/audit/public-key", get(audit::public_key))
        .route(
            "/audit/checkpoints",
            get(audit::checkpoints).post(audit::checkpoint),
        )
        .route("/usage", get(usage::report))
        .route("/review", get(review::review))
        .route("/anomalies", get(anomalies::list))
        .route("/anomalies/{id}/ack", post(anomalies::ack))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{id}",
            get(webhooks::show)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/webhooks/{id}/test", post(webhooks::test))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/replay",
            post(webhooks::replay),
        )
        .route("/model-groups", get(model_groups::list))
        .route(
            "/model-groups/{alias}",
            get(model_groups::show)
                .put(model_groups::put)
                .delete(model_groups::delete),
        );

    let timeout = state.settings.request_timeout;
    // The LLM endpoints keep their own timeouts per deployment (a completion may take
    // minutes); everything else answers within the server's request timeout.
    let llm = Router::new()
        .route("/v1/chat/completions", post(llm::chat_completions))
        .route("/v1/responses", post(llm::responses))
        .route(
            "/v1/responses/{id}",
            get(llm::get_response).delete(llm::delete_response),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(llm::response_input_items),
        )
        .route("/v1/embeddings", post(llm::embeddings))
        .route("/v1/completions", post(openai_endpoints::completions))
        .route("/v1/moderations", post(openai_endpoints::moderations))
        .route(
            "/v1/images/generations",
            post(openai_endpoints::image_generations),
        )
        .route("/v1/audio/speech", post(openai_endpoints::speech))
        .route(
            "/v1/audio/transcriptions",
            post(openai_endpoints::transcriptions),
        )
        .route("/v1/messages", post(llm::messages))
        .route("/v1/messages/count_tokens", post(llm::count_tokens))
        .route("/v1/models", get(llm::list_models))
        .route("/v1/models/{*model}", get(llm::get_model))
        .route("/proxy/{route}", any(proxy::forward_root))
        .route("/proxy/{route}/{*path}", any(proxy::forward));
    let api = Router::new()
        .nest("/admin/v1", admin)
        .route("/v1/keys/verify", post(verify::verify))
        .route("/oauth/token", post(oauth::token))
        .route("/.well-known/jwks.json", get(oauth::jwks))
        .route(
            "/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::openid_configuration),
        )
        .route("/v1/leaks", post(leaks::report))
        .route("/v1/secrets/{name}", get(secrets::read_with_key))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(ops::openapi_json))
        .merge(crate::console::router())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    let api = if state.settings.metrics_on_api {
        api.route("/metrics", get(ops::metrics))
    } else {
        api
    };
    let app = Router::new()
        .merge(api)
        .merge(llm)
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::reject_key_in_query,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::client_ip::resolve_client_ip,
        ))
        .layer(
            ServiceBuilder::new()
                .map_request(middleware::drop_unusable_request_id)
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    HeaderName::from_static("x-api-key"),
                ]))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        );
    let app = app.layer(axum::middleware::from_fn_with_state(
        state.keygate.metrics().clone(),
        crate::metrics::http::record,
    ));
    // Outermost, so that it sees the answer with its request id; left out when off.
    let log = state.settings.request_log;
    let app = if log.is_on() {
        app.layer(axum::middleware::from_fn_with_state(
            log,
            super::request_log::log_request,
        ))
    } else {
        app
    };
    app.with_state(state)
}
