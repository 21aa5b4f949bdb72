//! The gateway's endpoints: OpenAI's `/v1/chat/completions`, `/v1/responses`,
//! `/v1/embeddings` and `/v1/models`, and Anthropic's `/v1/messages`. A keygate key authenticates (as a bearer
//! token or in `x-api-key`); the gateway picks a deployment, translates when the deployment
//! speaks another format, and injects its credential.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keygate_core::scope::any_grants;
use keygate_llm::{ClientFormat, Endpoint, FORM_SLACK, Upload, UploadError, UploadLimits};

use crate::cache::CachedKey;
use crate::gateway::{
    CacheControl, InputItemsQuery, LlmAnswer, LlmCall, Payload, UsageDraft, model_permission,
};
use crate::http::AppState;
use crate::http::extract::{RequestMeta, api_key};
use crate::http::limit_headers;
use crate::http::llm_error::LlmError;

/// Authenticates the keygate key of a gateway request.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    meta: &RequestMeta,
) -> Result<Arc<CachedKey>, LlmError> {
    api_key(state, headers, meta).await.map_err(|refusal| {
        let mut error = LlmError::new(refusal.status, refusal.code, refusal.message);
        error.retry_after = refusal.retry_after;
        error
    })
}

/// OpenAI's Chat Completions, through the model group named by `model`. The body is OpenAI's
/// and goes upstream as sent (only `model` changes); the answer is OpenAI's `chat.completion`,
/// or with `"stream": true` a `text/event-stream` of `chat.completion.chunk` events. Errors use
/// OpenAI's shape with keygate's stable codes.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "gateway",
    request_body(content = Object, description = "OpenAI's chat completion request"),
    responses((status = 200, description = "`chat.completion`, or SSE chunks when streaming"),
        (status = 400, description = "`invalid_request` or `invalid_json`; `param` names the field"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`: the key lacks `models:<model>`"),
        (status = 404, description = "`model_not_found`"),
        (status = 413, description = "`payload_too_large`"),
        (status = 429, description = "`upstream_rate_limited`, with `Retry-After`"),
        (status = 502, description = "`upstream_invalid_response`"),
        (status = 503, description = "`all_deployments_failed` or `no_healthy_deployment`"),
        (status = 504, description = "`upstream_timeout`")),
    security(("api_key" = [])))]
pub async fn chat_completions(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(state, meta, headers, body, Endpoint::ChatCompletions).await
}

/// OpenAI's Embeddings, through the model group named by `model`.
#[utoipa::path(post, path = "/v1/embeddings", tag = "gateway",
    request_body(content = Object, description = "OpenAI's embeddings request"),
    responses((status = 200, description = "OpenAI's embedding list"),
        (status = 400, description = "`invalid_request` or `invalid_json`"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`"),
        (status = 404, description = "`model_not_found`"),
        (status = 503, description = "`all_deployments_failed` or `no_healthy_deployment`")),
    security(("api_key" = [])))]
pub async fn embeddings(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(state, meta, headers, body, Endpoint::Embeddings).await
}

/// Anthropic's Messages, through the model group named by `model`: the body is Anthropic's
/// (system prompt, multi-turn, tools, images), the answer an Anthropic `message` or, with
/// `"stream": true`, Anthropic's streamed events, whichever provider serves it. Errors use
/// Anthropic's shape with keygate's stable code beside the type.
#[utoipa::path(post, path = "/v1/messages", tag = "gateway",
    request_body(content = Object, description = "Anthropic's Messages request"),
    responses((status = 200, description = "a `message`, or SSE events when streaming"),
        (status = 400, description = "`invalid_request`, `invalid_json` or `unsupported_feature` (content the serving provider cannot express)"),
        (status = 401, description = "a missing or refused keygate key (`x-api-key` or bearer)"),
        (status = 403, description = "`scope_denied`"),
        (status = 404, description = "`model_not_found`"),
        (status = 429, description = "`upstream_rate_limited`, with `Retry-After`"),
        (status = 502, description = "`upstream_invalid_response`"),
        (status = 503, description = "`all_deployments_failed` or `no_healthy_deployment`"),
        (status = 504, description = "`upstream_timeout`")),
    security(("api_key" = [])))]
pub async fn messages(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(state, meta, headers, body, Endpoint::Messages).await
}

/// OpenAI's Responses API, through the model group named by `model`: instructions, input
/// items (messages, function calls and their outputs), function tools. An OpenAI deployment
/// takes the body as sent (only `model` changes, reasoning items and all); for the others it is
/// translated, and what they cannot express is a 400 naming the field. The answer is a
/// `response` object, or with `"stream": true` the `response.*` events.
#[utoipa::path(post, path = "/v1/responses", tag = "gateway",
    request_body(content = Object, description = "OpenAI's Responses request"),
    responses((status = 200, description = "a `response`, or SSE `response.*` events when streaming"),
        (status = 400, description = "`invalid_request`, `invalid_json` or `unsupported_feature` (content the serving provider cannot express); `param` names the field"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`: the key lacks `models:<model>`"),
        (status = 404, description = "`model_not_found`"),
        (status = 429, description = "`upstream_rate_limited`, with `Retry-After`"),
        (status = 502, description = "`upstream_invalid_response`"),
        (status = 503, description = "`all_deployments_failed` or `no_healthy_deployment`"),
        (status = 504, description = "`upstream_timeout`")),
    security(("api_key" = [])))]
pub async fn responses(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(state, meta, headers, body, Endpoint::Responses).await
}

/// A Responses API answer keygate kept (`store` was not false), for a key of its project.
#[utoipa::path(get, path = "/v1/responses/{id}", tag = "gateway",
    params(("id" = String, Path)),
    responses((status = 200, description = "the `response` object"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 404, description = "`response_not_found`: never kept, deleted, expired, or another project's")),
    security(("api_key" = [])))]
pub async fn get_response(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let key = match authenticate(&state, &headers, &meta).await {
        Ok(key) => key,
        Err(err) => return err.respond(ClientFormat::Responses),
    };
    match state.gateway_service().stored_response(&key, &id).await {
        Ok(response) => axum::Json(response).into_response(),
        Err(refused) => refused.respond(ClientFormat::Responses),
    }
}

/// The input items a kept Responses API answer was made from (the whole conversation before
/// it), newest first unless `order=asc`, `limit` (1-100, 20) at a time after the item `after`.
#[utoipa::path(get, path = "/v1/responses/{id}/input_items", tag = "gateway",
    params(("id" = String, Path),
        ("after" = Option<String>, Query, description = "the item id the page starts after"),
        ("limit" = Option<u32>, Query, description = "1 to 100; 20"),
        ("order" = Option<String>, Query, description = "`asc` or `desc` (the default)")),
    responses((status = 200, description = "`{\"object\": \"list\", \"data\": [item…], \"first_id\", \"last_id\", \"has_more\"}`"),
        (status = 400, description = "`invalid_request`: `param` names the query parameter"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 404, description = "`response_not_found`")),
    security(("api_key" = [])))]
pub async fn response_input_items(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<InputItemsQuery>, QueryRejection>,
) -> Response {
    let key = match authenticate(&state, &headers, &meta).await {
        Ok(key) => key,
        Err(err) => return err.respond(ClientFormat::Responses),
    };
    let Ok(Query(query)) = query else {
        return LlmError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the query string: `after`, `limit` (1-100) and `order` (`asc` or `desc`)",
        )
        .respond(ClientFormat::Responses);
    };
    match state
        .gateway_service()
        .stored_input_items(&key, &id, &query)
        .await
    {
        Ok(items) => axum::Json(items).into_response(),
        Err(refused) => refused.respond(ClientFormat::Responses),
    }
}

/// Deletes a kept Responses API answer: `{"id", "object": "response", "deleted": true}`.
#[utoipa::path(delete, path = "/v1/responses/{id}", tag = "gateway",
    params(("id" = String, Path)),
    responses((status = 200, description = "`{\"id\", \"object\": \"response\", \"deleted\": true}`"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 404, description = "`response_not_found`")),
    security(("api_key" = [])))]
pub async fn delete_response(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let key = match authenticate(&state, &headers, &meta).await {
        Ok(key) => key,
        Err(err) => return err.respond(ClientFormat::Responses),
    };
    match state
        .gateway_service()
        .delete_stored_response(&key, &id)
        .await
    {
        Ok(deleted) => axum::Json(deleted).into_response(),
        Err(refused) => refused.respond(ClientFormat::Responses),
    }
}

/// Anthropic's token count of a Messages request (`{"input_tokens": N}`): exact from an
/// Anthropic deployment of the group, else estimated with OpenAI's tokenizer.
#[utoipa::path(post, path = "/v1/messages/count_tokens", tag = "gateway",
    request_body(content = Object, description = "Anthropic's Messages request, without `max_tokens`"),
    responses((status = 200, description = "`{\"input_tokens\": N}`"),
        (status = 400, description = "`invalid_request` or `invalid_json`"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`"),
        (status = 404, description = "`model_not_found`")),
    security(("api_key" = [])))]
pub async fn count_tokens(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(state, meta, headers, body, Endpoint::CountTokens).await
}

pub(super) async fn proxy(
    state: AppState,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Response {
    let format = endpoint.format();
    let mut response = match serve(&state, &meta, &headers, body, endpoint).await {
        Ok(response) => response,
        Err(err) => err.respond(format),
    };
    // Anthropic's SDKs read the request id from `request-id` (keygate's own is `x-request-id`).
    if format == ClientFormat::Anthropic
        && let Some(value) = meta
            .request_id
            .and_then(|id| HeaderValue::from_str(&id).ok())
    {
        response.headers_mut().insert("request-id", value);
    }
    response
}

/// Extracts the call (the key, the body within its bound and time), has the gateway serve
/// it, and writes its answer.
async fn serve(
    state: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Result<Response, LlmError> {
    let started = Instant::now();
    let key = authenticate(state, headers, meta).await?;
    let payload = read_payload(state, headers, body, endpoint).await?;
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let call = LlmCall {
        key,
        endpoint,
        payload,
        anthropic_beta: text("anthropic-beta").map(str::to_owned),
        traceparent: text("traceparent")
            .filter(|value| value.len() <= 128)
            .map(str::to_owned),
        client_ip: meta.ip_text(),
        user_agent: UsageDraft::user_agent(text(header::USER_AGENT.as_str())),
        started,
        cache: CacheControl::parse(text(header::CACHE_CONTROL.as_str())),
    };
    let outcome = state.gateway_service().complete(call).await;
    let mut response = match outcome.answer {
        Ok(LlmAnswer::Complete {
            status,
            content_type,
            body,
        }) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                content_type.unwrap_or(HeaderValue::from_static("application/json")),
            );
            response
        }
        Ok(LlmAnswer::Stream {
            content_type,
            relay,
        }) => {
            let mut response = Response::new(Body::from_stream(relay));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                content_type.unwrap_or(HeaderValue::from_static("text/event-stream")),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Ok(LlmAnswer::Counted { input_tokens }) => {
            axum::Json(serde_json::json!({ "input_tokens": input_tokens })).into_response()
        }
        Err(refused) => refused.respond(endpoint.format()),
    };
    // Admitted calls carry their rates' states, answered or failed.
    limit_headers::admitted(response.headers_mut(), outcome.requests, outcome.tokens);
    if let Some(cache) = outcome.cache {
        response.headers_mut().insert(
            HeaderName::from_static("x-keygate-cache"),
            HeaderValue::from_static(cache.as_str()),
        );
    }
    Ok(response)
}

/// Reads the body within its bound and the server's request timeout (the gateway's routes
/// have no overall timeout, as a completion may take minutes): whole for JSON, and for an
/// upload as far as its model, the rest streaming upstream.
async fn read_payload(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Result<Payload, LlmError> {
    let (body_limit, upload_limit) = {
        let gateway = state.gateway.current();
        (gateway.tuning().body_limit, gateway.tuning().upload_limit)
    };
    let too_large = |limit: usize| {
        LlmError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let timed_out = || {
        LlmError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    };
    if endpoint == Endpoint::Transcriptions {
        let limit = upload_limit;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // The file may take the limit; the form around it its own room.
        if declared.is_some_and(|length| length > (limit + FORM_SLACK) as u64) {
            return Err(too_large(limit));
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let limits = UploadLimits {
            file: limit,
            // A file before its model is held before the key's scope is checked: no more of
            // it than of a JSON body.
            held: body_limit,
            idle: state.settings.request_timeout,
        };
        let read = Upload::read(content_type, body.into_data_stream(), limits);
        return match tokio::time::timeout(state.settings.request_timeout, read).await {
            Ok(Ok(mut upload)) => {
                upload.declared_bytes = declared;
                Ok(Payload::Upload(Box::new(upload)))
            }
            Ok(Err(UploadError::TooLarge { limit })) => Err(too_large(limit)),
            Ok(Err(err)) => {
                let mut error =
                    LlmError::new(StatusCode::BAD_REQUEST, "invalid_request", err.to_string());
                error.param = err.param().map(str::to_owned);
                Err(error)
            }
            Err(_) => Err(timed_out()),
        };
    }
    let limit = body_limit;
    let read = tokio::time::timeout(
        state.settings.request_timeout,
        axum::body::to_bytes(body, limit),
    );
    match read.await {
        Ok(Ok(body)) => Ok(Payload::Json(body)),
        Ok(Err(_)) => Err(too_large(limit)),
        Err(_) => Err(timed_out()),
    }
}

/// The API the caller speaks: Anthropic's SDKs send `anthropic-version` on every request,
/// and `/v1/models` answers them in Anthropic's list shape.
fn client_of(headers: &HeaderMap) -> ClientFormat {
    if headers.contains_key("anthropic-version") {
        ClientFormat::Anthropic
    } else {
        ClientFormat::OpenAi
    }
}

/// The models (aliases) this key may use, in OpenAI's list shape, or Anthropic's when the
/// request carries `anthropic-version`.
#[utoipa::path(get, path = "/v1/models", tag = "gateway",
    responses((status = 200, description = "`{\"object\": \"list\", \"data\": [model…]}` (OpenAI), or `{\"data\", \"has_more\", \"first_id\", \"last_id\"}` (Anthropic, with `anthropic-version`)"),
        (status = 401, description = "a missing or refused keygate key")),
    security(("api_key" = [])))]
pub async fn list_models(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
) -> Response {
    let format = client_of(&headers);
    let key = match authenticate(&state, &headers, &meta).await {
        Ok(key) => key,
        Err(err) => return err.respond(format),
    };
    let aliases: Vec<String> = state
        .gateway
        .current()
        .aliases()
        .iter()
        .filter(|alias| any_grants(&key.record.scopes, &model_permission(alias)))
        .cloned()
        .collect();
    let data: Vec<serde_json::Value> = aliases
        .iter()
        .map(|alias| model_object(&state, alias, format))
        .collect();
    let body = match format {
        ClientFormat::Anthropic => serde_json::json!({
            "data": data,
            "has_more": false,
            "first_id": aliases.first(),
            "last_id": aliases.last(),
        }),
        ClientFormat::OpenAi | ClientFormat::Responses => {
            serde_json::json!({ "object": "list", "data": data })
        }
    };
    axum::Json(body).into_response()
}

/// One model, if it exists and this key may use it (404 otherwise).
#[utoipa::path(get, path = "/v1/models/{model}", tag = "gateway",
    params(("model" = String, Path)),
    responses((status = 200, description = "OpenAI's model object (Anthropic's with `anthropic-version`)"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 404, description = "`model_not_found`")),
    security(("api_key" = [])))]
pub async fn get_model(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    Path(model): Path<String>,
) -> Response {
    let format = client_of(&headers);
    let key = match authenticate(&state, &headers, &meta).await {
        Ok(key) => key,
        Err(err) => return err.respond(format),
    };
    if state.gateway.current().has_alias(&model)
        && any_grants(&key.record.scopes, &model_permission(&model))
    {
        return axum::Json(model_object(&state, &model, format)).into_response();
    }
    crate::gateway::Refused::Gateway(keygate_llm::GatewayError::ModelNotFound(model))
        .respond(format)
}

fn model_object(state: &AppState, alias: &str, format: ClientFormat) -> serde_json::Value {
    match format {
        ClientFormat::Anthropic => {
            let created = keygate_core::Timestamp::from_millis(state.started_at);
            serde_json::json!({
                "type": "model",
                "id": alias,
                "display_name": alias,
                "created_at": created.to_rfc3339(),
            })
        }
        ClientFormat::OpenAi | ClientFormat::Responses => serde_json::json!({
            "id": alias,
            "object": "model",
            "created": state.started_at / 1000,
            "owned_by": "keygate",
        }),
    }
}
