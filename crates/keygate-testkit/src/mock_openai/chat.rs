//! Chat Completions: reads an accepted request and answers it with a [`MockReply`], as one
//! JSON completion or as a stream of chunks.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use serde_json::Value;

use super::stream::{self, Script};
use super::wire::{self, Answer, Meta};
use super::{Accepted, MockReply, Shared, accept, default_reply, error_reply, garbage, json};

/// The last user message's text and a rough prompt size: the words of all messages, plus 3.
fn read_messages(body: &Value) -> (String, u64) {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let text_of =
        |message: &Value| wire::message_text(message.get("content").unwrap_or(&Value::Null));
    let words: u64 = messages
        .iter()
        .map(|m| wire::count_words(&text_of(m)))
        .sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(text_of)
        .unwrap_or_default();
    (last_user, words + 3)
}

pub(super) async fn chat(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    body: &[u8],
    deployment: Option<String>,
) -> Response {
    let Accepted { body, model } = match accept(&shared, headers, body, deployment) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let (last_user, prompt_tokens) = read_messages(&body);
    let default_text = format!("Hello from {}: {last_user}", shared.name);
    let reply = shared
        .next_reply()
        .or_else(|| crate::mock_agent::step(&model, &body))
        .unwrap_or_else(|| default_reply(&model, || default_text.clone()));
    let streamed = body.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let call = ChatCall {
        meta: shared.meta(model),
        streamed,
        include_usage,
        prompt_tokens,
        default_text,
        abandoned: shared.abandoned.clone(),
        hangs_dropped: shared.hangs_dropped.clone(),
    };
    call.respond(reply).await
}

/// One accepted chat request, ready to be answered with a [`MockReply`].
struct ChatCall {
    meta: Meta,
    streamed: bool,
    include_usage: bool,
    prompt_tokens: u64,
    /// What `Cut` sends: the greeting the mock would answer by default.
    default_text: String,
    abandoned: Arc<AtomicUsize>,
    hangs_dropped: Arc<AtomicUsize>,
}

impl ChatCall {
    async fn respond(self, mut reply: MockReply) -> Response {
        loop {
            reply = match reply {
                MockReply::Slow { delay, then } => {
                    tokio::time::sleep(delay).await;
                    *then
                }
                MockReply::Hang => return super::hang(&self.hangs_dropped).await,
                MockReply::Error {
                    status,
                    code,
                    message,
                    retry_after,
                } => return error_reply(status, &code, &message, retry_after),
                MockReply::Garbage => return garbage(self.streamed),
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
        let full_text;
        let answer = match &reply {
            MockReply::ToolCalls(calls) => Answer::ToolCalls(calls),
            MockReply::Text(text) | MockReply::Paced { text, .. } => Answer::Text(text),
            MockReply::Gated { first, rest, .. } => {
                full_text = format!("{first}{rest}");
                Answer::Text(&full_text)
            }
            _ => Answer::Text(&self.default_text),
        };
        if !self.streamed {
            let completion = wire::chat_completion(&self.meta, answer, self.prompt_tokens);
            return match reply {
                MockReply::Cut { .. } => stream::cut_json(completion.to_string().into_bytes()),
                _ => json(StatusCode::OK, &completion),
            };
        }
        let usage = wire::usage(self.prompt_tokens, wire::completion_tokens(answer));
        let mut script = Script::new(self.meta.clone(), self.include_usage);
        match &reply {
            MockReply::ToolCalls(calls) => {
                script.tool_calls(calls);
                script.finish("tool_calls", usage);
            }
            MockReply::Cut { chunks } => {
                let mut pieces = wire::split_words(&self.default_text);
                pieces.resize(pieces.len().max(*chunks), " more");
                for piece in pieces.into_iter().take(*chunks) {
                    script.content(piece);
                }
                script.abort();
            }
            MockReply::Gated {
                first,
                release,
                rest,
            } => {
                script.content(first);
                script.wait(release.clone());
                if !rest.is_empty() {
                    script.words(rest, None);
                }
                script.finish("stop", usage);
            }
            MockReply::Paced { text, gap } => {
                script.words(text, Some(*gap));
                script.finish("stop", usage);
            }
            _ => {
                if let Answer::Text(text) = answer {
                    script.words(text, None);
                }
                script.finish("stop", usage);
            }
        }
        script.into_response(self.abandoned)
    }
}
