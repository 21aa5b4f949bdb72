//! A mock Anthropic upstream on `127.0.0.1:0` speaking the real Messages API wire format:
//! `POST /v1/messages` (JSON and server-sent events, text and `tool_use` blocks, usage),
//! `POST /v1/messages/count_tokens`, `GET /v1/models`, Anthropic's headers, request validation and error bodies, with the
//! scripted failures of [`MockReply`] for gateway tests.
//!
//! Replies come from a queue ([`MockAnthropic::push`]); when it is empty, the upstream model
//! name decides (checked in this order): `tools` gets two tool calls, `ratelimit` a 429,
//! `overloaded` a 529, `error500` a 500, `streamerror` an `error` event in the middle of a
//! stream (a 529 when not streamed), `garbage`, `hang` and `cut` those behaviours, `maxtokens`
//! a text cut short with `stop_reason: "max_tokens"`, `refusal` a partial text with
//! `stop_reason: "refusal"`; any other name gets `Hello from <name> via <model>`.

mod events;
mod newer_fields;
mod validate;
mod wire;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::Value;

use self::events::Events;
use self::wire::Meta;
use crate::mock_openai::stream::cut_json;
use crate::mock_openai::wire::{count_words, split_words};
use crate::mock_openai::{MockReply, Shared, hang, json, record};

crate::mock_server::mock_type!(
    /// A running mock Anthropic upstream (the API lives under `/v1`); dropping it (or `stop`) aborts the server and every connection it holds.
    MockAnthropic,
    router
);

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/models", get(models))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

/// The id the recorder gives the request being answered (`req_mock_N`, as in `x-request-id`).
fn request_id(shared: &Shared) -> String {
    let number = shared
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    format!("req_mock_{number}")
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let message = format!("Not found: {method} {}", uri.path());
    error_response(404, "not_found_error", &message, None, "req_mock")
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let request_id = request_id(&shared);
    match refusal(&shared, &headers, &request_id) {
        None => json(StatusCode::OK, &wire::models()),
        Some(refused) => refused,
    }
}

/// Requires `x-api-key` (the only credential the API takes) and `anthropic-version`; `None`
/// when both are right.
fn refusal(shared: &Shared, headers: &HeaderMap, request_id: &str) -> Option<Response> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let refuse = |status, message: &str| {
        Some(error_response(
            status,
            wire::error_kind(status),
            message,
            None,
            request_id,
        ))
    };
    match value("x-api-key") {
        None => return refuse(401, "x-api-key header is required"),
        Some(key) if key != shared.key => return refuse(401, "invalid x-api-key"),
        Some(_) => {}
    }
    if value("anthropic-version").is_none_or(str::is_empty) {
        return refuse(400, "anthropic-version: header is required");
    }
    None
}

fn error_response(
    status: u16,
    kind: &str,
    message: &str,
    retry_after: Option<u64>,
    request_id: &str,
) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(code, &wire::error(kind, message, request_id));
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("request-id", id);
    }
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// What to answer: a scripted reply, or one of the behaviours only a model name asks for.
#[derive(Debug)]
enum Plan {
    Reply(MockReply),
    /// A text that stopped for `reason` (`max_tokens`, `refusal`).
    Stopped {
        text: String,
        reason: &'static str,
    },
    /// Streamed: two text deltas, then an `overloaded_error` event and the end of the body.
    StreamError,
}

/// The plan when the queue is empty, chosen by the upstream model's name.
fn default_plan(model: &str, text: String) -> Plan {
    let error = |status: u16, message: &str, retry_after| {
        Plan::Reply(MockReply::Error {
            status,
            code: wire::error_kind(status).to_owned(),
            message: message.to_owned(),
            retry_after,
        })
    };
    let first_half = |text: &str| {
        let words = split_words(text);
        words[..words.len().div_ceil(2)].concat()
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
        let message = "This request would exceed the rate limit for your organization of 5 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.";
        error(429, message, Some(1))
    } else if model.contains("overloaded") {
        error(529, "Overloaded", None)
    } else if model.contains("error500") {
        error(500, "Internal server error", None)
    } else if model.contains("streamerror") {
        Plan::StreamError
    } else if model.contains("garbage") {
        Plan::Reply(MockReply::Garbage)
    } else if model.contains("hang") {
        Plan::Reply(MockReply::Hang)
    } else if model.contains("cut") {
        Plan::Reply(MockReply::Cut { chunks: 2 })
    } else if model.contains("maxtokens") {
        Plan::Stopped {
            text: first_half(&text),
            reason: "max_tokens",
        }
    } else if model.contains("refusal") {
        Plan::Stopped {
            text: first_half(&text),
            reason: "refusal",
        }
    } else {
        Plan::Reply(MockReply::Text(text))
    }
}

async fn messages(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let request_id = request_id(&shared);
    if let Some(refused) = refusal(&shared, &headers, &request_id) {
        return refused;
    }
    let invalid =
        |message: &str| error_response(400, "invalid_request_error", message, None, &request_id);
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(_) => {
            return invalid(
                "There was an error parsing the body of your request. The body must be valid JSON.",
            );
        }
    };
    if let Err(message) = validate::request(&body) {
        return invalid(&message);
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let default_text = format!("Hello from {} via {model}", shared.name);
    let scripted = shared
        .next_reply()
        .or_else(|| crate::mock_agent::step(&model, &body));
    let plan = match scripted {
        Some(reply) => Plan::Reply(reply),
        None => default_plan(&model, default_text.clone()),
    };
    let seq = shared.completions.fetch_add(1, Ordering::SeqCst) + 1;
    let call = Call {
        meta: Meta { seq, model },
        streamed: body["stream"] == true,
        input_tokens: wire::input_tokens(&body),
        default_text,
        request_id,
        abandoned: shared.abandoned.clone(),
        hangs_dropped: shared.hangs_dropped.clone(),
    };
    call.respond(plan).await
}

/// `POST /v1/messages/count_tokens`: a Messages request without `max_tokens` (nor
/// `stream`), answered with `{"input_tokens": N}`.
async fn count_tokens(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = request_id(&shared);
    if let Some(refused) = refusal(&shared, &headers, &request_id) {
        return refused;
    }
    let invalid =
        |message: &str| error_response(400, "invalid_request_error", message, None, &request_id);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid("There was an error parsing the body of your request.");
    };
    for field in ["max_tokens", "stream"] {
        if body.get(field).is_some() {
            return invalid(&format!("{field}: Extra inputs are not permitted"));
        }
    }
    // The same checks as a message, which needs `max_tokens`.
    let mut checked = body.clone();
    checked["max_tokens"] = serde_json::json!(1024);
    if let Err(message) = validate::request(&checked) {
        return invalid(&message);
    }
    axum::Json(serde_json::json!({"input_tokens": wire::input_tokens(&body)})).into_response()
}

/// One accepted messages request, ready to be answered.
struct Call {
    meta: Meta,
    streamed: bool,
    input_tokens: u64,
    /// What `Cut` sends: the greeting the mock would answer by default.
    default_text: String,
    request_id: String,
    abandoned: Arc<AtomicUsize>,
    hangs_dropped: Arc<AtomicUsize>,
}

impl Call {
    async fn respond(self, plan: Plan) -> Response {
        let mut reply = match plan {
            Plan::Reply(reply) => reply,
            Plan::Stopped { text, reason } => return self.text(&text, reason),
            Plan::StreamError if self.streamed => return self.stream_error(),
            Plan::StreamError => {
                return error_response(
                    529,
                    "overloaded_error",
                    "Overloaded",
                    None,
                    &self.request_id,
                );
            }
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
                    let kind = if code.is_empty() {
                        wire::error_kind(status)
                    } else {
                        code.as_str()
                    };
                    return error_response(status, kind, &message, retry_after, &self.request_id);
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
            MockReply::ToolCalls(calls) => self.tool_calls(&calls),
            MockReply::Cut { chunks } => self.cut(chunks),
            MockReply::Gated {
                first,
                release,
                rest,
            } => {
                let tokens = count_words(&first) + count_words(&rest);
                self.text_stream("end_turn", tokens, |events| {
                    events.text_delta(0, &first);
                    events.wait(release);
                    if !rest.is_empty() {
                        events.words(0, &rest, None);
                    }
                })
            }
            MockReply::Paced { text, gap } => {
                self.text_stream("end_turn", count_words(&text), |events| {
                    events.words(0, &text, Some(gap));
                })
            }
            MockReply::Text(text) => self.text(&text, "end_turn"),
            // The waiting replies were resolved by `respond`.
            _ => self.text(&self.default_text, "end_turn"),
        }
    }

    fn text(&self, text: &str, stop_reason: &str) -> Response {
        let tokens = count_words(text);
        if self.streamed {
            return self.text_stream(stop_reason, tokens, |events| events.words(0, text, None));
        }
        let content = vec![wire::text_block(text)];
        let usage = wire::usage(self.input_tokens, tokens);
        let message = wire::message(&self.meta, content, Some(stop_reason), usage);
        json(StatusCode::OK, &message)
    }

    /// A stream of one text block whose deltas `deltas` writes.
    fn text_stream(
        &self,
        stop_reason: &str,
        output_tokens: u64,
        deltas: impl FnOnce(&mut Events),
    ) -> Response {
        let mut events = Events::start(&self.meta, self.input_tokens);
        events.block_start(0, wire::text_block(""));
        deltas(&mut events);
        events.block_stop(0);
        events.finish(stop_reason, output_tokens);
        events.into_response(self.abandoned.clone())
    }

    fn tool_calls(&self, calls: &[(String, String)]) -> Response {
        let tokens = wire::tool_tokens(calls);
        if self.streamed {
            let mut events = Events::start(&self.meta, self.input_tokens);
            events.tool_calls(&self.meta, calls);
            events.finish("tool_use", tokens);
            return events.into_response(self.abandoned.clone());
        }
        let content = calls
            .iter()
            .enumerate()
            .map(|(index, (name, arguments))| {
                let input = wire::tool_input(arguments);
                wire::tool_use_block(&self.meta.tool_id(index), name, input)
            })
            .collect();
        let usage = wire::usage(self.input_tokens, tokens);
        let message = wire::message(&self.meta, content, Some("tool_use"), usage);
        json(StatusCode::OK, &message)
    }

    /// Streamed: `chunks` text deltas of the greeting, then the connection closes without
    /// `message_stop`. Not streamed: half of the message, then the connection closes.
    fn cut(&self, chunks: usize) -> Response {
        if !self.streamed {
            let content = vec![wire::text_block(&self.default_text)];
            let usage = wire::usage(self.input_tokens, count_words(&self.default_text));
            let message = wire::message(&self.meta, content, Some("end_turn"), usage);
            return cut_json(message.to_string().into_bytes());
        }
        let mut pieces = split_words(&self.default_text);
        pieces.resize(pieces.len().max(chunks), " more");
        let mut events = Events::start(&self.meta, self.input_tokens);
        events.block_start(0, wire::text_block(""));
        for piece in pieces.into_iter().take(chunks) {
            events.text_delta(0, piece);
        }
        events.abort();
        events.into_response(self.abandoned.clone())
    }

    /// Two text deltas, then the `error` event the API sends when it fails mid-stream; the
    /// body then ends normally, without `message_stop`.
    fn stream_error(&self) -> Response {
        let mut events = Events::start(&self.meta, self.input_tokens);
        events.block_start(0, wire::text_block(""));
        for piece in split_words(&self.default_text).into_iter().take(2) {
            events.text_delta(0, piece);
        }
        events.error("overloaded_error", "Overloaded");
        events.into_response(self.abandoned.clone())
    }

    /// `200` with a body that is not what its content type promises.
    fn garbage(&self) -> Response {
        let (content_type, body) = if self.streamed {
            (
                "text/event-stream",
                "event: content_block_delta\ndata: {not json\n\n",
            )
        } else {
            ("application/json", "<html>oops</html>")
        };
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
    }
}
