//! OpenAI's endpoints beyond chat, through the same keys, scopes, limits and usage: the
//! legacy completions, moderations, image generation, speech and transcription. Each is
//! passed through as the client sent it (only `model` changes) to the deployments whose
//! provider serves it; the others refuse it with `unsupported_endpoint` (400).

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use keygate_llm::Endpoint;

use super::llm::proxy;
use crate::http::AppState;
use crate::http::extract::RequestMeta;

/// OpenAI's legacy Completions (`prompt`, not messages), streamed or not.
#[utoipa::path(post, path = "/v1/completions", tag = "gateway",
    request_body(content = Object, description = "OpenAI's completion request"),
    responses((status = 200, description = "a `text_completion`, or SSE chunks when streaming"),
        (status = 400, description = "`invalid_request`, `invalid_json`, or `unsupported_endpoint` when no deployment of the group serves it"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`: the key lacks `models:<model>`"),
        (status = 404, description = "`model_not_found`"),
        (status = 429, description = "a limit, or `upstream_rate_limited`"),
        (status = 503, description = "`all_deployments_failed` or `no_healthy_deployment`")),
    security(("api_key" = [])))]
pub async fn completions(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(state, meta, headers, body, Endpoint::Completions).await
}

/// OpenAI's Moderations: whether text (or images) breaks the provider's policies.
#[utoipa::path(post, path = "/v1/moderations", tag = "gateway",
    request_body(content = Object, description = "OpenAI's moderation request"),
    responses((status = 200, description = "the moderation's `results`"),
        (status = 400, description = "`invalid_request`, `invalid_json` or `unsupported_endpoint`"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`"),
        (status = 404, description = "`model_not_found`"),
        (status = 503, description = "`all_deployments_failed` or `no_healthy_deployment`")),
    security(("api_key" = [])))]
pub async fn moderations(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(state, meta, headers, body, Endpoint::Moderations).await
}

/// OpenAI's image generation: images as URLs or base64, or with `"stream": true` the
/// partial images as events.
#[utoipa::path(post, path = "/v1/images/generations", tag = "gateway",
    request_body(content = Object, description = "OpenAI's image generation request"),
    responses((status = 200, description = "`{\"created\", \"data\": [image…]}`, or SSE `image_generation.*` events when streaming"),
        (status = 400, description = "`invalid_request`, `invalid_json` or `unsupported_endpoint`"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`"),
        (status = 404, description = "`model_not_found`"),
        (status = 503, description = "`all_deployments_failed` or `no_healthy_deployment`")),
    security(("api_key" = [])))]
pub async fn image_generations(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(state, meta, headers, body, Endpoint::ImageGenerations).await
}

/// OpenAI's text to speech: the audio streams back as it is made (`audio/mpeg` and the other
/// `response_format`s), or as `speech.audio.*` events with `"stream_format": "sse"`.
#[utoipa::path(post, path = "/v1/audio/speech", tag = "gateway",
    request_body(content = Object, description = "OpenAI's speech request"),
    responses((status = 200, description = "the audio, streamed"),
        (status = 400, description = "`invalid_request`, `invalid_json` or `unsupported_endpoint`"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`"),
        (status = 404, description = "`model_not_found`"),
        (status = 503, description = "`all_deployments_failed` or `no_healthy_deployment`")),
    security(("api_key" = [])))]
pub async fn speech(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(state, meta, headers, body, Endpoint::Speech).await
}

/// OpenAI's transcription of an audio file, sent as `multipart/form-data`: read as far as its
/// `model` part, then streamed upstream as it arrives (within `gateway.upload_limit_bytes`,
/// 25 MiB by default). An upload goes to one deployment: it is not retried elsewhere.
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "gateway",
    request_body(content = Object, content_type = "multipart/form-data", description = "`file`, `model` and OpenAI's other transcription fields"),
    responses((status = 200, description = "the transcript (JSON, text or subtitles by `response_format`), or SSE `transcript.text.*` events with `stream=true`"),
        (status = 400, description = "`invalid_request` (`param` names the part: `model`, `file`, `body`) or `unsupported_endpoint`"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`"),
        (status = 404, description = "`model_not_found`"),
        (status = 413, description = "`payload_too_large`"),
        (status = 503, description = "`all_deployments_failed` or `no_healthy_deployment`")),
    security(("api_key" = [])))]
pub async fn transcriptions(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(state, meta, headers, body, Endpoint::Transcriptions).await
}
