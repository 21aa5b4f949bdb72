//! The gateway's endpoints: OpenAI's `/v1/chat/completions`, `/v1/embeddings` and
//! `/v1/models`, and Anthropic's `/v1/messages`. A keygate key authenticates (as a bearer
//! token or in `x-api-key`); the gateway picks a deployment, translates when the deployment
//! speaks another format, and injects its credential.

mod limits;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keygate_core::scope::any_grants;
use keygate_core::{TokenCounts, TokenSource, UsageRecord};
use keygate_llm::translate;
use keygate_llm::{ClientFormat, Endpoint, Failure, Inbound, Reply, StreamEnd, StreamOutcome};

use crate::cache::CachedKey;
use crate::http::AppState;
use crate::http::extract::{RequestMeta, api_key};
use crate::http::llm_error::LlmError;
use crate::limits::{Counted, Demand, Refusal};
use crate::service::ProjectSecrets;
use crate::usage_log::ToCount;
use limits::{demand, meter_budget, rate_headers, settle};

/// The scope a key needs for a model or alias.
fn model_permission(model: &str) -> String {
    format!("models:{model}")
}

/// Authenticates the keygate key of a gateway request.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    meta: &RequestMeta,
) -> Result<Arc<CachedKey>, LlmError> {
    api_key(state, headers, meta)
        .await
        .map_err(|refusal| LlmError::new(refusal.status, refusal.code, refusal.message))
}

fn not_allowed(model: &str) -> LlmError {
    LlmError {
        param: Some("model".to_owned()),
        ..LlmError::new(
            StatusCode::FORBIDDEN,
            "scope_denied",
            format!("this key may not use model `{model}` (it needs the scope `models:{model}`)"),
        )
    }
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

/// What a usage record needs besides the outcome.
struct Draft {
    started: Instant,
    key: Arc<CachedKey>,
    endpoint: Endpoint,
    model: String,
    streamed: bool,
    client_ip: Option<String>,
    user_agent: Option<String>,
}

impl Draft {
    fn record(&self, state: &AppState, status: u16, error_code: Option<&str>) -> UsageRecord {
        let record = &self.key.record;
        UsageRecord {
            id: uuid::Uuid::now_v7().to_string(),
            at: state.keygate.clock().now(),
            org_id: record.org_id.clone(),
            project_id: record.project_id.clone(),
            key_id: record.id.clone(),
            endpoint: self.endpoint.as_str().to_owned(),
            model: self.model.clone(),
            deployment: None,
            provider: None,
            status,
            error_code: error_code.map(str::to_owned),
            streamed: self.streamed,
            attempts: 0,
            latency_ms: millis(self.started.elapsed()),
            ttft_ms: None,
            tokens: TokenCounts::default(),
            token_source: TokenSource::None,
            cost: None,
            client_ip: self.client_ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

async fn proxy(
    state: AppState,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Response {
    let request_id = meta.request_id.clone();
    let mut response = serve(state, meta, headers, body, endpoint).await;
    // Anthropic's SDKs read the request id from `request-id` (keygate's own is `x-request-id`).
    if endpoint.format() == ClientFormat::Anthropic
        && let Some(value) = request_id.and_then(|id| HeaderValue::from_str(&id).ok())
    {
        response.headers_mut().insert("request-id", value);
    }
    response
}

async fn serve(
    state: AppState,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Response {
    let started = Instant::now();
    let format = endpoint.format();
    let key = match authenticate(&state, &headers, &meta).await {
        Ok(key) => key,
        Err(err) => return err.respond(format),
    };
    let gateway = state.gateway.current();
    let limit = gateway.tuning().body_limit;
    // The gateway's routes have no overall timeout (a completion may take minutes), but a
    // client must send its body within the server's request timeout.
    let read = tokio::time::timeout(
        state.settings.request_timeout,
        axum::body::to_bytes(body, limit),
    );
    let body = match read.await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return LlmError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {limit} bytes"),
            )
            .respond(format);
        }
        Err(_) => {
            return LlmError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time",
            )
            .respond(format);
        }
    };
    let mut inbound = match Inbound::parse(endpoint, body) {
        Ok(inbound) => inbound,
        Err(err) => return LlmError::from(err).respond(format),
    };
    inbound.anthropic_beta = headers
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let draft = Draft {
        started,
        key: key.clone(),
        endpoint,
        model: inbound.model.clone(),
        streamed: inbound.stream,
        client_ip: meta.ip_text(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect()),
    };
    // The scope is checked first, so a key learns nothing of models it may not use. The
    // attempt is recorded: usage shows what keys tried outside their scopes.
    if !any_grants(&key.record.scopes, &model_permission(&inbound.model)) {
        let err = not_allowed(&inbound.model);
        state
            .keygate
            .usage()
            .record(draft.record(&state, err.status.as_u16(), Some(err.code)));
        return err.respond(format);
    }
    // The limits of the key and its project: a refused request is recorded, and consumes
    // none of them.
    let demand = match demand(&key, &inbound, &gateway) {
        Ok(demand) => demand,
        Err(err) => {
            state
                .keygate
                .usage()
                .record(draft.record(&state, err.status.as_u16(), Some(err.code)));
            return err.respond(format);
        }
    };
    let ask = |cost| Demand {
        hold: true,
        tokens: demand.tokens,
        cost,
    };
    let mut admission = state
        .limiter
        .admit(&key, state.keygate.clock(), ask(demand.cost))
        .await;
    // A request that names no most output may still start on what is left of a budget: it
    // is metered, and ended when the budget runs out.
    if let Err(Refusal::Limit { limit, .. }) = &admission
        && matches!(limit.counted, Counted::Budget(_))
        && demand.least_cost.is_some()
    {
        admission = state
            .limiter
            .admit(&key, state.keygate.clock(), ask(demand.least_cost))
            .await;
    }
    let mut admission = match admission {
        Ok(admission) => admission,
        Err(refusal) => {
            let status = match refusal {
                Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::TOO_MANY_REQUESTS,
            };
            let err = LlmError {
                retry_after: refusal.retry_after(),
                ..LlmError::new(status, refusal.code(), refusal.message())
            };
            state
                .keygate
                .usage()
                .record(draft.record(&state, err.status.as_u16(), Some(err.code)));
            let mut response = err.respond(format);
            if !refusal.worth_retrying() {
                response
                    .headers_mut()
                    .insert("x-should-retry", HeaderValue::from_static("false"));
            }
            if let Refusal::Limit { limit, .. } = &refusal {
                match limit.counted {
                    Counted::Requests(_) => {
                        rate_headers(response.headers_mut(), "requests", &limit.state);
                    }
                    Counted::Tokens(_) => {
                        rate_headers(response.headers_mut(), "tokens", &limit.state);
                    }
                    Counted::Quota(_) | Counted::Budget(_) => {}
                }
            }
            return response;
        }
    };
    // The slots and the reservation go with the answer; the limits' states stay for headers.
    let hold = std::mem::take(&mut admission.hold);
    let reservation = admission.reservation.take();
    let secrets = ProjectSecrets {
        keygate: &state.keygate,
        project: key.record.project_id.as_ref(),
    };
    let scopes = &key.record.scopes;
    let allowed = |alias: &str| any_grants(scopes, &model_permission(alias));
    let mut response = match gateway.dispatch(&inbound, &secrets, &allowed).await {
        Ok(Reply::Complete {
            status,
            content_type,
            body,
            tokens,
            served,
        }) => {
            let mut record =
                draft.record(&state, status, (status >= 400).then_some("upstream_error"));
            record.deployment = Some(served.deployment.clone());
            record.provider = Some(served.provider.clone());
            record.attempts = served.attempts;
            record.ttft_ms = Some(millis(served.first_byte));
            if let Some(tokens) = tokens {
                record.tokens = tokens;
                record.token_source = TokenSource::Provider;
                record.cost = gateway.cost(&served.model, tokens);
            }
            settle(reservation, tokens, record.cost, status);
            drop(hold);
            state.keygate.usage().record(record);
            let mut response = Response::new(Body::from(body));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                content_type.unwrap_or(HeaderValue::from_static("application/json")),
            );
            response
        }
        Ok(Reply::Stream {
            content_type,
            mut relay,
            served,
        }) => {
            let usage = state.keygate.usage().clone();
            let request = inbound.body.clone();
            let state_for_end = state.clone();
            let (prompt, prompt_cost) = (demand.prompt, demand.prompt_cost);
            if let Some(reservation) = &reservation
                && reservation.has_budget()
                && demand.output_assumed
            {
                meter_budget(&mut relay, reservation, &gateway, &inbound.model, &demand);
            }
            relay.on_end(move |end: StreamEnd| {
                // The request's slots in flight free with the stream.
                drop(hold);
                let (status, code) = match &end.outcome {
                    StreamOutcome::Completed => (200, None),
                    StreamOutcome::Failed(_) => (200, Some("upstream_stream_interrupted")),
                    StreamOutcome::ClientGone => (499, Some("client_closed_request")),
                    StreamOutcome::Stopped { code } => (200, Some(*code)),
                };
                let mut record = draft.record(&state_for_end, status, code);
                record.deployment = Some(served.deployment.clone());
                record.provider = Some(served.provider.clone());
                record.attempts = served.attempts;
                record.ttft_ms = end.first_token.map(millis);
                record.latency_ms = millis(end.elapsed.max(draft.started.elapsed()));
                match end.reported {
                    Some(tokens) => {
                        record.tokens = tokens;
                        record.token_source = TokenSource::Provider;
                        record.cost = gateway.cost(&served.model, tokens);
                        settle(reservation, Some(tokens), record.cost, 200);
                        usage.record(record);
                    }
                    None if end.text.is_empty() && status != 200 => {
                        // Nothing was generated, but the upstream read the prompt.
                        if let Some(reservation) = reservation {
                            reservation.settle(Some(prompt), prompt_cost);
                        }
                        usage.record(record);
                    }
                    None => usage.record_uncounted(ToCount {
                        record,
                        model: served.model.clone(),
                        request,
                        format,
                        text: end.text,
                        gateway,
                        reservation,
                    }),
                }
            });
            let mut response = Response::new(Body::from_stream(relay));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                content_type.unwrap_or(HeaderValue::from_static("text/event-stream")),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(Failure {
            error:
                keygate_llm::GatewayError::Exhausted {
                    last: keygate_llm::AttemptError::Untranslatable(_),
                    ..
                },
            ..
        }) if endpoint == Endpoint::CountTokens => {
            // No deployment of the group is Anthropic's, which alone counts exactly: an
            // estimate with OpenAI's tokenizer. Nothing went upstream.
            if let Some(reservation) = reservation {
                reservation.release();
            }
            let request = match translate::anthropic::decode_count_request(&inbound.body) {
                Ok(request) => request,
                Err(err) => {
                    let err = LlmError {
                        param: Some(err.field().to_owned()),
                        ..LlmError::new(StatusCode::BAD_REQUEST, "invalid_request", err.to_string())
                    };
                    return err.respond(format);
                }
            };
            let tokens = keygate_llm::tokens::count_request(&inbound.model, &request);
            state
                .keygate
                .usage()
                .record(draft.record(&state, 200, None));
            axum::Json(serde_json::json!({ "input_tokens": tokens })).into_response()
        }
        Err(Failure {
            error,
            attempts,
            deployment,
        }) => {
            // Every attempt failed or was refused: nothing is charged.
            if let Some(reservation) = reservation {
                reservation.release();
            }
            let err = LlmError::from(error);
            let mut record = draft.record(&state, err.status.as_u16(), Some(err.code));
            record.attempts = attempts;
            record.deployment = deployment;
            state.keygate.usage().record(record);
            err.respond(format)
        }
    };
    if let Some(rate) = admission.requests() {
        rate_headers(response.headers_mut(), "requests", &rate);
    }
    if let Some(rate) = admission.tokens() {
        rate_headers(response.headers_mut(), "tokens", &rate);
    }
    response
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
        ClientFormat::OpenAi => serde_json::json!({ "object": "list", "data": data }),
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
    LlmError::from(keygate_llm::GatewayError::ModelNotFound(model)).respond(format)
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
        ClientFormat::OpenAi => serde_json::json!({
            "id": alias,
            "object": "model",
            "created": state.started_at / 1000,
            "owned_by": "keygate",
        }),
    }
}
