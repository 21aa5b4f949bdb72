//! A mock OpenAI upstream on `127.0.0.1:0` speaking the real wire format: Chat Completions
//! (JSON and server-sent events, tool calls, usage), the Responses API, embeddings, the model list, OpenAI's
//! error bodies and Azure OpenAI's deployment paths, and the legacy completions, moderations,
//! image generation, speech and transcription (see `media.rs` and `transcriptions.rs`), with scripted failures for gateway tests.
//!
//! Replies come from a queue ([`MockOpenAi::push`]); when it is empty, the upstream model name
//! decides: a name containing `tools`, `ratelimit`, `error500`, `garbage`, `hang` or `cut`
//! (checked in that order) gets that behaviour, any other a greeting naming the mock.

mod chat;
mod media;
mod responses;
pub(crate) mod stream;
mod transcriptions;
pub(crate) mod wire;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

pub use self::media::{PNG_1X1, speech_audio};
pub use self::transcriptions::FormPart;
use self::wire::{EmbeddingInput, Meta};
pub(crate) use crate::mock_server::Shared;

/// A scripted reply to one chat or embeddings request.
#[derive(Debug, Clone)]
pub enum MockReply {
    /// Normal answer: JSON, or SSE when the request had `"stream": true`, one content chunk
    /// per word (the first also carries `"role": "assistant"`).
    Text(String),
    /// Parallel tool calls `(name, arguments JSON text)`; `finish_reason` is `tool_calls`.
    /// Streamed, each call's arguments come in at least two pieces.
    ToolCalls(Vec<(String, String)>),
    /// An error status with OpenAI's error body; `retry_after` sets `Retry-After` (seconds).
    Error {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<u64>,
    },
    /// Waits `delay` before sending anything, then behaves as `then`.
    Slow {
        delay: Duration,
        then: Box<MockReply>,
    },
    /// Streamed: `chunks` content chunks, then the connection closes without `[DONE]`.
    /// Not streamed: a `Content-Length` larger than the bytes sent, then the connection closes.
    Cut { chunks: usize },
    /// `200` with a body that is not the format: `<html>oops</html>` as JSON, or
    /// `data: {not json` as an event stream.
    Garbage,
    /// Never answers (until the client goes away).
    Hang,
    /// Streamed: the content chunk `first`, then nothing until `release` is notified
    /// (`notify_one` before the wait counts), then `rest` word by word and a normal end.
    /// Not streamed: waits for `release`, then answers `first` followed by `rest`.
    Gated {
        first: String,
        release: Arc<Notify>,
        rest: String,
    },
    /// Streamed: content chunks `gap` apart. Not streamed: the text at once.
    Paced { text: String, gap: Duration },
}

/// A request as the mock received it, refused or not.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lowercase names, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl SeenRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

crate::mock_server::mock_type!(
    /// A running mock OpenAI upstream (the API lives under `/v1`; Azure's under
    /// `/openai/deployments`); dropping it (or `stop`) aborts the server and every connection.
    MockOpenAi,
    router
);

impl Shared {
    fn meta(&self, model: String) -> Meta {
        Meta::new(self.completions.fetch_add(1, Ordering::SeqCst) + 1, model)
    }
}

/// The accept loop. Connections live in a `JoinSet` owned by this task, so aborting the task
/// closes them too (a hanging reply does not outlive the mock).
pub(crate) async fn serve(listener: TcpListener, app: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else {
                    // Out of descriptors or a reset before accept: try again shortly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                // Events must reach the client as they are written.
                let _ = socket.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                connections.spawn(async move {
                    let builder = Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(socket), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/responses", post(openai_responses))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/completions", post(openai_completions))
        .route("/v1/moderations", post(openai_moderations))
        .route("/v1/images/generations", post(openai_images))
        .route("/v1/audio/speech", post(openai_speech))
        .route("/v1/audio/transcriptions", post(openai_transcriptions))
        .route("/v1/models", get(models))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_embeddings),
        )
        .fallback(invalid_url)
        .method_not_allowed_fallback(invalid_url)
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

/// Records every request before any route sees it. A multipart upload is recorded without
/// its body, which its route reads as it arrives (see [`MockServer::forms`]).
pub(crate) async fn record(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/"));
    let (body, pass_on) = if multipart {
        (Bytes::new(), Some(body))
    } else {
        let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        (body, None)
    };
    let seen = SeenRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: body.clone(),
    };
    let number = {
        let mut all = shared.seen.lock().unwrap_or_else(PoisonError::into_inner);
        all.push(seen);
        all.len()
    };
    let body = pass_on.unwrap_or_else(|| Body::from(body));
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Ok(id) = HeaderValue::from_str(&format!("req_mock_{number}")) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

async fn invalid_url(method: Method, uri: Uri) -> Response {
    let message = format!("Invalid URL ({method} {})", uri.path());
    let body = wire::error(&message, "invalid_request_error", None, None);
    json(StatusCode::NOT_FOUND, &body)
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match authorize(&shared, &headers) {
        Ok(()) => json(StatusCode::OK, &wire::models()),
        Err(refused) => refused.into_response(),
    }
}

async fn openai_chat(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat::chat(shared, &headers, &body, None).await
}

async fn openai_responses(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    responses::responses(shared, &headers, &body).await
}

async fn openai_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    media::completions(shared, &headers, &body).await
}

async fn openai_moderations(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    media::moderations(shared, &headers, &body).await
}

async fn openai_images(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    media::images(shared, &headers, &body).await
}

async fn openai_speech(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    media::speech(shared, &headers, &body).await
}

async fn openai_transcriptions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    transcriptions::transcriptions(shared, headers, body).await
}

async fn azure_chat(
    State(shared): State<Arc<Shared>>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !has_api_version(query.as_deref()) {
        return json(StatusCode::NOT_FOUND, &wire::azure_not_found());
    }
    chat::chat(shared, &headers, &body, Some(deployment)).await
}

async fn openai_embeddings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    embeddings(shared, &headers, &body, None).await
}

async fn azure_embeddings(
    State(shared): State<Arc<Shared>>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !has_api_version(query.as_deref()) {
        return json(StatusCode::NOT_FOUND, &wire::azure_not_found());
    }
    embeddings(shared, &headers, &body, Some(deployment)).await
}

fn has_api_version(query: Option<&str>) -> bool {
    query.is_some_and(|query| {
        query.split('&').any(|pair| {
            pair.strip_prefix("api-version=")
                .is_some_and(|v| !v.is_empty())
        })
    })
}

/// A request that passed authentication and parsing: its JSON body and upstream model (the
/// deployment on Azure paths).
struct Accepted {
    body: Value,
    model: String,
}

/// A request refused before any reply was chosen: a status and OpenAI's error body.
struct Refusal(StatusCode, Value);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json(self.0, &self.1)
    }
}

/// Checks the key, the JSON body and the model.
fn accept(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    deployment: Option<String>,
) -> Result<Accepted, Refusal> {
    authorize(shared, headers)?;
    let body: Value = match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => value,
        _ => {
            let message = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)";
            let body = wire::error(message, "invalid_request_error", None, None);
            return Err(Refusal(StatusCode::BAD_REQUEST, body));
        }
    };
    let model = deployment.or_else(|| body.get("model").and_then(Value::as_str).map(str::to_owned));
    let Some(model) = model.filter(|model| !model.is_empty()) else {
        let message = "you must provide a model parameter";
        let body = wire::error(message, "invalid_request_error", None, None);
        return Err(Refusal(StatusCode::BAD_REQUEST, body));
    };
    Ok(Accepted { body, model })
}

/// Accepts `Authorization: Bearer <key>` or `api-key: <key>`.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    let value = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = value(header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
    let api_key = value(header::HeaderName::from_static("api-key"));
    if bearer == Some(shared.key.as_str()) || api_key == Some(shared.key.as_str()) {
        return Ok(());
    }
    let message = "Incorrect API key provided: sk-****. You can find your API key at https://platform.openai.com/account/api-keys.";
    let body = wire::error(
        message,
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    );
    Err(Refusal(StatusCode::UNAUTHORIZED, body))
}

/// The reply when the queue is empty, chosen by the upstream model's name.
fn default_reply(model: &str, text: impl FnOnce() -> String) -> MockReply {
    let calls = [
        ("get_weather", "{\"city\": \"Paris\"}"),
        ("get_time", "{\"timezone\": \"Europe/Paris\"}"),
    ];
    if model.contains("tools") {
        MockReply::ToolCalls(
            calls
                .iter()
                .map(|(name, args)| ((*name).to_owned(), (*args).to_owned()))
                .collect(),
        )
    } else if model.contains("ratelimit") {
        MockReply::Error {
            status: 429,
            code: "rate_limit_exceeded".to_owned(),
            message: format!(
                "Rate limit reached for {model} in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s."
            ),
            retry_after: Some(1),
        }
    } else if model.contains("error500") {
        MockReply::Error {
            status: 500,
            code: String::new(),
            message: "The server had an error while processing your request. Sorry about that!"
                .to_owned(),
            retry_after: None,
        }
    } else if model.contains("garbage") {
        MockReply::Garbage
    } else if model.contains("hang") {
        MockReply::Hang
    } else if model.contains("cut") {
        MockReply::Cut { chunks: 2 }
    } else {
        MockReply::Text(text())
    }
}

async fn embeddings(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    body: &[u8],
    deployment: Option<String>,
) -> Response {
    let Accepted { body, model } = match accept(&shared, headers, body, deployment) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let invalid = |message: &str, param: &str| {
        let body = wire::error(message, "invalid_request_error", Some(param), None);
        json(StatusCode::BAD_REQUEST, &body)
    };
    let Some(inputs) = body.get("input").and_then(wire::embedding_inputs) else {
        return invalid(
            "'$.input' is invalid. Please check the API reference.",
            "input",
        );
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => 8,
        Some(value) => match value.as_u64().filter(|d| (1..=4096).contains(d)) {
            Some(d) => d as usize,
            None => return invalid("Invalid value for 'dimensions'.", "dimensions"),
        },
    };
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(format)) if format == "float" => false,
        Some(Value::String(format)) if format == "base64" => true,
        Some(_) => return invalid("Invalid value for 'encoding_format'.", "encoding_format"),
    };
    let mut reply = shared
        .next_reply()
        .unwrap_or_else(|| default_reply(&model, String::new));
    let answer = |inputs: &[EmbeddingInput]| wire::embeddings(&model, inputs, dimensions, base64);
    loop {
        reply = match reply {
            MockReply::Slow { delay, then } => {
                tokio::time::sleep(delay).await;
                *then
            }
            MockReply::Hang => return hang(&shared.hangs_dropped).await,
            MockReply::Gated { release, .. } => {
                release.notified().await;
                MockReply::Text(String::new())
            }
            MockReply::Error {
                status,
                code,
                message,
                retry_after,
            } => return error_reply(status, &code, &message, retry_after),
            MockReply::Garbage => return garbage(false),
            MockReply::Cut { .. } => {
                return stream::cut_json(answer(&inputs).to_string().into_bytes());
            }
            _ => return json(StatusCode::OK, &answer(&inputs)),
        };
    }
}

fn error_reply(status: u16, code: &str, message: &str, retry_after: Option<u64>) -> Response {
    let kind = wire::error_kind(status, code);
    let code = (!code.is_empty()).then_some(code);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(status, &wire::error(message, kind, None, code));
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// `200` with a body that is not what its content type promises.
fn garbage(streamed: bool) -> Response {
    let (content_type, body) = if streamed {
        ("text/event-stream", "data: {not json\n\n")
    } else {
        ("application/json", "<html>oops</html>")
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

pub(crate) fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Counts one on drop: a hanging reply dropped because its client went away.
struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Never answers; counts in `dropped` when the request is dropped.
pub(crate) async fn hang<T>(dropped: &Arc<AtomicUsize>) -> T {
    let _guard = CountOnDrop(dropped.clone());
    std::future::pending().await
}
