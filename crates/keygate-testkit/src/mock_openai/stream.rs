//! Server-sent event streams of `chat.completion.chunk` objects, written one event per body
//! frame, and the bodies that break on purpose (cut connections).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::wire::{self, Meta};

/// One thing the stream does next.
#[derive(Debug)]
enum Step {
    /// Sends these bytes as one frame.
    Frame(Bytes),
    Sleep(Duration),
    /// Waits for a permit of this `Notify` (a `notify_one` made earlier counts).
    Wait(Arc<Notify>),
    /// Fails the body, so the server closes the connection mid-body.
    Abort,
}

/// The script of one SSE response, built chunk by chunk.
#[derive(Debug)]
pub(crate) struct Script {
    meta: Meta,
    include_usage: bool,
    role_sent: bool,
    steps: VecDeque<Step>,
}

impl Script {
    pub(crate) fn new(meta: Meta, include_usage: bool) -> Self {
        Self {
            meta,
            include_usage,
            role_sent: false,
            steps: VecDeque::new(),
        }
    }

    fn event(&mut self, data: &Value) {
        self.raw(format!("data: {data}\n\n"));
    }

    /// Sends `text` as it stands, even when it is not a valid event.
    pub(crate) fn raw(&mut self, text: String) {
        self.steps.push_back(Step::Frame(Bytes::from(text)));
    }

    /// A delta; the first of the stream also carries the assistant's role.
    fn delta(&mut self, mut delta: Value) {
        if !self.role_sent {
            self.role_sent = true;
            if let Value::Object(fields) = &mut delta {
                fields.insert("role".to_owned(), json!("assistant"));
                fields.insert("refusal".to_owned(), Value::Null);
                fields.entry("content").or_insert(Value::Null);
            }
        }
        let chunk = wire::chunk(&self.meta, delta, None);
        self.event(&chunk);
    }

    pub(super) fn content(&mut self, piece: &str) {
        self.delta(json!({"content": piece}));
    }

    /// Every word of `text` as its own content chunk, `gap` apart.
    pub(super) fn words(&mut self, text: &str, gap: Option<Duration>) {
        for (n, piece) in wire::split_words(text).into_iter().enumerate() {
            if let (Some(gap), true) = (gap, n > 0) {
                self.pause(gap);
            }
            self.content(piece);
        }
    }

    /// Parallel tool calls: per call, a chunk with its id and name, then its arguments in
    /// several pieces, each delta naming the call by `index`.
    pub(super) fn tool_calls(&mut self, calls: &[(String, String)]) {
        for (index, (name, arguments)) in calls.iter().enumerate() {
            let id = self.meta.call_id(index);
            self.delta(json!({"tool_calls": [{
                "index": index,
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": ""}
            }]}));
            for piece in wire::split_arguments(arguments) {
                self.delta(json!({"tool_calls": [{
                    "index": index,
                    "function": {"arguments": piece}
                }]}));
            }
        }
    }

    pub(crate) fn pause(&mut self, gap: Duration) {
        self.steps.push_back(Step::Sleep(gap));
    }

    pub(crate) fn wait(&mut self, release: Arc<Notify>) {
        self.steps.push_back(Step::Wait(release));
    }

    pub(crate) fn abort(&mut self) {
        self.steps.push_back(Step::Abort);
    }

    /// The chunk with `finish_reason`, the usage chunk when asked for, then `[DONE]`.
    pub(super) fn finish(&mut self, finish_reason: &str, usage: Value) {
        let last = wire::chunk(&self.meta, json!({}), Some(finish_reason));
        self.event(&last);
        if self.include_usage {
            let usage = wire::usage_chunk(&self.meta, usage);
            self.event(&usage);
        }
        self.raw("data: [DONE]\n\n".to_owned());
    }

    /// A `200 text/event-stream` response playing the script; a stream dropped before its
    /// last step adds one to `abandoned`.
    pub(crate) fn into_response(self, abandoned: Arc<AtomicUsize>) -> Response {
        let flow = Flow {
            steps: self.steps,
            guard: AbandonGuard {
                abandoned,
                finished: false,
            },
        };
        let frames = futures_util::stream::unfold(flow, |mut flow| async move {
            loop {
                let Some(step) = flow.steps.pop_front() else {
                    flow.guard.finished = true;
                    drop(flow);
                    return None;
                };
                match step {
                    Step::Frame(bytes) => {
                        // The last frame written counts as the end: the client may go away
                        // as soon as it has read it.
                        flow.guard.finished = flow.steps.is_empty();
                        return Some((Ok(bytes), flow));
                    }
                    Step::Sleep(gap) => tokio::time::sleep(gap).await,
                    Step::Wait(release) => release.notified().await,
                    Step::Abort => {
                        flush_before_cut().await;
                        flow.guard.finished = true;
                        flow.steps.clear();
                        let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "mock cut");
                        return Some((Err(cut), flow));
                    }
                }
            }
        });
        let mut response = Body::from_stream(frames).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

#[derive(Debug)]
struct Flow {
    steps: VecDeque<Step>,
    guard: AbandonGuard,
}

/// Counts a stream dropped (by the server, because its client went away) before it finished.
#[derive(Debug)]
struct AbandonGuard {
    abandoned: Arc<AtomicUsize>,
    finished: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A `200 application/json` response that announces all of `body` in `Content-Length`, sends
/// its first half and closes the connection.
pub(crate) fn cut_json(body: Vec<u8>) -> Response {
    let full = body.len();
    let mut half = Bytes::from(body);
    half.truncate(full / 2);
    let cut = futures_util::stream::once(async {
        flush_before_cut().await;
        Err(io::Error::new(io::ErrorKind::ConnectionAborted, "mock cut"))
    });
    let frames = futures_util::stream::once(async { Ok(half) }).chain(cut);
    let mut response = Body::from_stream(frames).into_response();
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(full));
    response
}

/// Lets the server write out what it holds before the body fails: hyper flushes when the body
/// is pending, and would otherwise drop the buffered frames along with the connection.
async fn flush_before_cut() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}
