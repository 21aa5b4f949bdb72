//! Anthropic's JSON shapes as the mock writes them: messages, usage, errors and the model
//! list, plus the deterministic token counts.

use serde_json::{Value, json};

use crate::mock_openai::wire::count_words;

/// What every object of one answer shares: its sequence number and model.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) seq: u64,
    pub(super) model: String,
}

impl Meta {
    pub(super) fn id(&self) -> String {
        format!("msg_mock{:06}", self.seq)
    }

    pub(super) fn tool_id(&self, index: usize) -> String {
        format!("toolu_mock{:06}_{index}", self.seq)
    }
}

pub(super) fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard"
    })
}

/// A `message` object; `stop_reason` is `null` in the one `message_start` carries.
pub(super) fn message(
    meta: &Meta,
    content: Vec<Value>,
    stop_reason: Option<&str>,
    usage: Value,
) -> Value {
    json!({
        "id": meta.id(),
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage
    })
}

pub(super) fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

pub(super) fn tool_use_block(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input})
}

/// A tool call's arguments as the `input` object; text that is not a JSON object becomes `{}`
/// (the real API only ever produces objects).
pub(super) fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => json!({}),
    }
}

/// Output tokens the mock charges for tool calls: per call, one for its name and one per
/// streamed piece of its input.
pub(super) fn tool_tokens(calls: &[(String, String)]) -> u64 {
    calls
        .iter()
        .map(|(_, arguments)| {
            let input = tool_input(arguments).to_string();
            1 + crate::mock_openai::wire::split_arguments(&input).len() as u64
        })
        .sum()
}

/// Anthropic's error body.
pub(super) fn error(kind: &str, message: &str, request_id: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": request_id
    })
}

/// The `error.type` Anthropic gives a status.
pub(super) fn error_kind(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

pub(super) fn models() -> Value {
    let model = |id: &str, name: &str, created: &str| json!({"type": "model", "id": id, "display_name": name, "created_at": created});
    json!({
        "data": [
            model("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
            model("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
            model("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z")
        ],
        "has_more": false,
        "first_id": "claude-sonnet-4-5-20250929",
        "last_id": "claude-opus-4-1-20250805"
    })
}

/// The prompt size the mock charges: the words of the system prompt and of every text in the
/// messages (string contents, text blocks, tool results).
pub(super) fn input_tokens(body: &Value) -> u64 {
    let system = body.get("system").map_or(0, content_words);
    let messages: u64 = body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|message| message.get("content"))
        .map(content_words)
        .sum();
    system + messages
}

fn content_words(content: &Value) -> u64 {
    match content {
        Value::String(text) => count_words(text),
        Value::Array(blocks) => blocks
            .iter()
            .map(|block| match block.get("type").and_then(Value::as_str) {
                Some("text") => block
                    .get("text")
                    .and_then(Value::as_str)
                    .map_or(0, count_words),
                Some("tool_result") => block.get("content").map_or(0, content_words),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}
