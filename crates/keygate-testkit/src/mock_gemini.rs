//! A mock Gemini upstream on `127.0.0.1:0` speaking the real Gemini API wire format:
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` and `:batchEmbedContents`
//! (text and `functionCall` parts, `finishReason`, `usageMetadata`), `GET /v1beta/models`,
//! the `x-goog-api-key` header, request validation and Google's error bodies, with the
//! scripted failures of [`MockReply`] for gateway tests.
//!
//! Replies come from a queue ([`MockGemini::push`]); when it is empty, the upstream model name
//! decides (checked in this order): `tools` gets two function calls, `ratelimit` a 429,
//! `error500` a 500, `garbage`, `hang` and `cut` those behaviours, `maxtokens` a text cut
//! short with `finishReason: "MAX_TOKENS"`, `safety` a `SAFETY` stop whose last candidate has
//! no content; any other name gets `Hello from <name> via <model>`.

mod embeddings;
mod events;
mod validate;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::Value;

use self::events::Chunks;
use self::wire::Meta;
use crate::mock_openai::stream::cut_json;
use crate::mock_openai::wire::{count_words, split_words};
use crate::mock_openai::{MockReply, Shared, hang, json, record};

crate::mock_server::mock_type!(
    /// A running mock Gemini upstream (the API lives under `/v1beta`); dropping it (or `stop`) aborts the server and every connection it holds.
    MockGemini,
    router
);

fn router(shared: Arc<Shared>) -> Router {
    // The method follows a colon inside the last segment (`gemini-2.5-flash:generateContent`),
    // which a route pattern cannot split: the handlers split it themselves.
    Router::new()
        .route("/v1beta/models", get(list_models))
        .route("/v1beta/models/{*rest}", get(model_info).post(model_method))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

fn error_response(
    status: u16,
    message: &str,
    details: Option<Value>,
    retry_after: Option<u64>,
) -> Response {
    error_with_status(
        status,
        wire::status_name(status),
        message,
        details,
        retry_after,
    )
}

fn error_with_status(
    status: u16,
    name: &str,
    message: &str,
    details: Option<Value>,
    retry_after: Option<u64>,
) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(code, &wire::error(status, message, name, details));
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let message = format!("Method not found: {method} {}", uri.path());
    error_response(404, &message, None, None)
}

/// Requires `x-goog-api-key`: a request without a key is an unregistered caller (403), a
/// wrong key an invalid argument (400), as the real API answers; `None` for the right key.
fn refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    match headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        Some(key) if key == shared.key => None,
        None => Some(error_response(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            None,
            None,
        )),
        Some(_) => {
            let details = serde_json::json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"}
            }]);
            Some(error_response(
                400,
                "API key not valid. Please pass a valid API key.",
                Some(details),
                None,
            ))
        }
    }
}

async fn list_models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match refusal(&shared, &headers) {
        None => json(StatusCode::OK, &wire::models()),
        Some(refused) => refused,
    }
}

async fn model_info(
    State(shared): State<Arc<Shared>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers) {
        return refused;
    }
    if rest.contains(':') || rest.is_empty() {
        let message = format!("Method not found: GET /v1beta/models/{rest}");
        return error_response(404, &message, None, None);
    }
    json(StatusCode::OK, &wire::model_info(&rest))
}

async fn model_method(
    State(shared): State<Arc<Shared>>,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers) {
        return refused;
    }
    let Some((model, method)) = rest.rsplit_once(':').filter(|(model, _)| !model.is_empty()) else {
        let message = format!("Method not found: POST /v1beta/models/{rest}");
        return error_response(404, &message, None, None);
    };
    if method == "batchEmbedContents" {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        return match embeddings::batch(model, &body) {
            Ok(answer) => json(StatusCode::OK, &answer),
            Err((message, field)) => {
                let details = wire::field_violation(&field, &message);
                error_response(400, &message, Some(details), None)
            }
        };
    }
    let streamed = match method {
        "generateContent" => false,
        "streamGenerateContent" if has_alt_sse(query.as_deref()) => true,
        "streamGenerateContent" => {
            let message = "This mock serves streamGenerateContent only as server-sent events: add the query parameter alt=sse (without it the real API streams a JSON array).";
            return error_response(400, message, None, None);
        }
        _ => {
            let message = format!("Method not found: POST /v1beta/models/{rest}");
            return error_response(404, &message, None, None);
        }
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(error) => {
            let message = format!("Invalid JSON payload received. {error}");
            return error_response(400, &message, None, None);
        }
    };
    if let Err(invalid) = validate::request(&body) {
        let details = wire::field_violation(&invalid.field, &invalid.message);
        return error_response(400, &invalid.message, Some(details), None);
    }
    let model = model.to_owned();
    let default_text = format!("Hello from {} via {model}", shared.name);
    let max_output_tokens = ["generationConfig", "generation_config"]
        .iter()
        .find_map(|name| body.get(*name))
        .and_then(|config| {
            config
                .get("maxOutputTokens")
                .or_else(|| config.get("max_output_tokens"))
        })
        .and_then(Value::as_u64);
    let scripted = shared
        .next_reply()
        .or_else(|| crate::mock_agent::step(&model, &body));
    let plan = match scripted {
        Some(reply) => Plan::Reply(reply),
        None => default_plan(&model, default_text.clone(), max_output_tokens),
    };
    let seq = shared.completions.fetch_add(1, Ordering::SeqCst) + 1;
    let call = Call {
        meta: Meta { seq, model },
        streamed,
        prompt_tokens: wire::prompt_tokens(&body),
        default_text,
        abandoned: shared.abandoned.clone(),
        hangs_dropped: shared.hangs_dropped.clone(),
    };
    call.respond(plan).await
}

fn has_alt_sse(query: Option<&str>) -> bool {
    query.is_some_and(|query| query.split('&').any(|pair| pair == "alt=sse"))
}

/// What to answer: a scripted reply, or one of the behaviours only a model name asks for.
#[derive(Debug)]
enum Plan {
    Reply(MockReply),
    /// A text that stopped for `reason`; `SAFETY` withholds the text when not streamed and
    /// ends the stream with a candidate without content.
    Stopped {
        text: String,
        reason: &'static str,
    },
}

/// The plan when the queue is empty, chosen by the upstream model's name.
fn default_plan(model: &str, text: String, max_output_tokens: Option<u64>) -> Plan {
    let error = |status: u16, message: String, retry_after| {
        Plan::Reply(MockReply::Error {
            status,
            code: wire::status_name(status).to_owned(),
            message,
            retry_after,
        })
    };
    let first_half = |text: &str, cap: Option<u64>| {
        let words = split_words(text);
        let half = words.len().div_ceil(2);
        let keep = cap.map_or(half, |cap| half.min(usize::try_from(cap).unwrap_or(half)));
        words[..keep.max(1)].concat()
    };
    if model.contains("tools") {
        let calls = [
            ("get_weather", "{\"city\": \"Paris\"}"),
            ("get_time", "{\"timezone\": \"Europe/Paris\"}"),
        ];
        Plan::Reply(MockReply::ToolCalls(
            calls
                .iter()
                .map(|(name, args)| ((*name).to_owned(), (*args).to_owned()))
                .collect(),
        ))
    } else if model.contains("ratelimit") {
        let message = format!(
            "You exceeded your current quota, please check your plan and billing details. Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 10, model: {model}. Please retry in 1s."
        );
        error(429, message, Some(1))
    } else if model.contains("error500") {
        error(
            500,
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting".to_owned(),
            None,
        )
    } else if model.contains("garbage") {
        Plan::Reply(MockReply::Garbage)
    } else if model.contains("hang") {
        Plan::Reply(MockReply::Hang)
    } else if model.contains("cut") {
        Plan::Reply(MockReply::Cut { chunks: 2 })
    } else if model.contains("maxtokens") {
        Plan::Stopped {
            text: first_half(&text, max_output_tokens),
            reason: "MAX_TOKENS",
        }
    } else if model.contains("safety") {
        Plan::Stopped {
            text: first_half(&text, None),
            reason: "SAFETY",
        }
    } else {
        Plan::Reply(MockReply::Text(text))
    }
}

/// One accepted generate request, ready to be answered.
struct Call {
    meta: Meta,
    streamed: bool,
    prompt_tokens: u64,
    /// What `Cut` sends: the greeting the mock would answer by default.
    default_text: String,
    abandoned: Arc<AtomicUsize>,
    hangs_dropped: Arc<AtomicUsize>,
}

impl Call {
    async fn respond(self, plan: Plan) -> Response {
        let mut reply = match plan {
            Plan::Reply(reply) => reply,
            Plan::Stopped { text, reason } => return self.text(&text, reason),
        };
        loop {
            reply = match reply {
                MockReply::Slow { delay, then } => {
                    tokio::time::sleep(delay).await;
                    *then
                }
                MockReply::Hang => return hang(&self.hangs_dropped).await,
                MockReply::Error {
                    status,
                    code,
                    message,
                    retry_after,
                } => {
                    // A canonical status name (`RESOURCE_EXHAUSTED`) is kept; any other code
                    // (an OpenAI-style `rate_limit_exceeded`) gives way to the status's own.
                    let canonical = !code.is_empty()
                        && code.chars().all(|c| c.is_ascii_uppercase() || c == '_');
                    let name = if canonical {
                        code.as_str()
                    } else {
                        wire::status_name(status)
                    };
                    return error_with_status(status, name, &message, None, retry_after);
                }
                MockReply::Garbage => return self.garbage(),
                MockReply::Gated {
                    first,
                    release,
                    rest,
                } if !self.streamed => {
                    release.notified().await;
                    MockReply::Text(format!("{first}{rest}"))
                }
                MockReply::Paced { text, .. } if !self.streamed => MockReply::Text(text),
                other => return self.answer(other),
            };
        }
    }

    /// Answers with no more waiting before the status line.
    fn answer(self, reply: MockReply) -> Response {
        match reply {
            MockReply::ToolCalls(calls) => self.function_calls(&calls),
            MockReply::Cut { chunks } => self.cut(chunks),
            MockReply::Gated {
                first,
                release,
                rest,
            } => {
                let tokens = count_words(&first) + count_words(&rest);
                let mut chunks = self.chunks();
                chunks.parts(vec![wire::text_part(&first)]);
                chunks.wait(release);
                if !rest.is_empty() {
                    chunks.words(&rest, None);
                }
                chunks.finish("STOP", tokens);
                chunks.into_response(self.abandoned)
            }
            MockReply::Paced { text, gap } => {
                let mut chunks = self.chunks();
                chunks.words(&text, Some(gap));
                chunks.finish("STOP", count_words(&text));
                chunks.into_response(self.abandoned)
            }
            MockReply::Text(text) => self.text(&text, "STOP"),
            // The waiting replies were resolved by `respond`.
            _ => self.text(&self.default_text, "STOP"),
        }
    }

    fn chunks(&self) -> Chunks {
        Chunks::new(self.meta.clone(), self.prompt_tokens)
    }

    fn text(&self, text: &str, finish_reason: &str) -> Response {
        let tokens = count_words(text);
        if self.streamed {
            let mut chunks = self.chunks();
            chunks.words(text, None);
            chunks.finish(finish_reason, tokens);
            return chunks.into_response(self.abandoned.clone());
        }
        let candidate = if finish_reason == "SAFETY" {
            wire::candidate(None, Some(finish_reason))
        } else {
            wire::candidate(Some(vec![wire::text_part(text)]), Some(finish_reason))
        };
        let usage = wire::usage(self.prompt_tokens, Some(tokens));
        json(
            StatusCode::OK,
            &wire::response(&self.meta, candidate, usage),
        )
    }

    /// Every call whole in one candidate (Gemini does not split arguments), streamed as one
    /// chunk.
    fn function_calls(&self, calls: &[(String, String)]) -> Response {
        let tokens = wire::call_tokens(calls);
        let parts = wire::function_calls(calls);
        if self.streamed {
            let mut chunks = self.chunks();
            chunks.parts(parts);
            chunks.finish("STOP", tokens);
            return chunks.into_response(self.abandoned.clone());
        }
        let candidate = wire::candidate(Some(parts), Some("STOP"));
        let usage = wire::usage(self.prompt_tokens, Some(tokens));
        json(
            StatusCode::OK,
            &wire::response(&self.meta, candidate, usage),
        )
    }

    /// Streamed: `chunks` chunks of the greeting, then the connection closes before a
    /// `finishReason`. Not streamed: half of the response, then the connection closes.
    fn cut(&self, chunks: usize) -> Response {
        if !self.streamed {
            let parts = vec![wire::text_part(&self.default_text)];
            let candidate = wire::candidate(Some(parts), Some("STOP"));
            let usage = wire::usage(self.prompt_tokens, Some(count_words(&self.default_text)));
            let response = wire::response(&self.meta, candidate, usage);
            return cut_json(response.to_string().into_bytes());
        }
        let mut pieces = split_words(&self.default_text);
        pieces.resize(pieces.len().max(chunks), " more");
        let mut stream = self.chunks();
        for piece in pieces.into_iter().take(chunks) {
            stream.parts(vec![wire::text_part(piece)]);
        }
        stream.abort();
        stream.into_response(self.abandoned.clone())
    }

    /// `200` with a body that is not what its content type promises.
    fn garbage(&self) -> Response {
        let (content_type, body) = if self.streamed {
            ("text/event-stream", "data: {not json\r\n\r\n")
        } else {
            ("application/json", "<html>oops</html>")
        };
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
    }
}
