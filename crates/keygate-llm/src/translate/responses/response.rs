//! Whole `response` objects, read and written: output items (messages and function calls,
//! reasoning skipped), the status that says why the answer stopped, and usage.

use serde_json::{Value, json};

use super::{item_id, response_id};
use crate::translate::ir::{ChatResponse, Part, StopReason, ToolCall, Usage};
use crate::translate::value::{Obj, owned_str};

pub(super) fn created_at() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn usage_value(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input,
        "input_tokens_details": {"cached_tokens": usage.cache_read},
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input.saturating_add(usage.output),
    })
}

pub(super) fn decode_usage(value: &Value) -> Option<Usage> {
    let usage = value.as_object()?;
    Some(Usage {
        input: usage.get("input_tokens")?.as_u64()?,
        output: usage
            .get("output_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cache_read: usage
            .get("input_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cache_write: 0,
    })
}

/// The status of a finished response and, when it is cut short, why.
pub(super) fn status(stop: Option<&StopReason>) -> (&'static str, Value) {
    match stop {
        Some(StopReason::MaxTokens) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(StopReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The stop reason a finished response's status, incomplete details and output say.
pub(super) fn stop_reason(response: &Obj, called: bool) -> Option<StopReason> {
    let reason = response
        .get("incomplete_details")
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str);
    match (response.get("status").and_then(Value::as_str), reason) {
        (Some("incomplete"), Some("max_output_tokens")) => Some(StopReason::MaxTokens),
        (Some("incomplete"), Some("content_filter")) => Some(StopReason::ContentFilter),
        (Some("completed" | "incomplete"), _) if called => Some(StopReason::ToolUse),
        (Some("completed" | "incomplete"), _) => Some(StopReason::EndTurn),
        _ => None,
    }
}

/// The output items of an answer: one message for its text, then its function calls.
pub(super) fn output_items(response_id: &str, content: &[Part], status: &str) -> Vec<Value> {
    let mut items = Vec::new();
    for part in content {
        match part {
            Part::Text(text) => items.push(json!({
                "id": item_id("msg", response_id, items.len()),
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            })),
            Part::ToolCall(call) => items.push(function_call(
                &item_id("fc", response_id, items.len()),
                call,
                "completed",
            )),
            _ => {}
        }
    }
    items
}

pub(super) fn function_call(id: &str, call: &ToolCall, status: &str) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
    })
}

/// A `response` object: `status` and `output` as given, usage when known.
pub(super) fn response_object(
    id: &str,
    model: &str,
    created_at: u64,
    status: &str,
    incomplete: Value,
    output: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map_or(Value::Null, usage_value),
        "metadata": {},
    })
}

/// Reads a whole `response`; `None` when it is not one.
pub fn decode_response(body: &[u8]) -> Option<ChatResponse> {
    let obj: Obj = serde_json::from_slice(body).ok()?;
    if obj.get("object").and_then(Value::as_str) != Some("response") {
        return None;
    }
    let mut content = Vec::new();
    let mut refused = false;
    for item in obj.get("output")?.as_array()? {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                let mut text = String::new();
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match part.get("type").and_then(Value::as_str) {
                        Some("output_text") => {
                            text.push_str(part.get("text").and_then(Value::as_str)?);
                        }
                        Some("refusal") => {
                            refused = true;
                            text.push_str(part.get("refusal").and_then(Value::as_str)?);
                        }
                        _ => {}
                    }
                }
                if !text.is_empty() {
                    content.push(Part::Text(text));
                }
            }
            Some("function_call") => content.push(Part::ToolCall(ToolCall {
                id: item.get("call_id")?.as_str()?.to_owned(),
                name: item.get("name")?.as_str()?.to_owned(),
                arguments: item.get("arguments")?.as_str()?.to_owned(),
            })),
            _ => {}
        }
    }
    let called = content.iter().any(|p| matches!(p, Part::ToolCall(_)));
    let stop = if refused {
        Some(StopReason::Refusal)
    } else {
        stop_reason(&obj, called)
    };
    Some(ChatResponse {
        id: owned_str(obj.get("id")),
        model: owned_str(obj.get("model")),
        content,
        stop,
        usage: obj.get("usage").and_then(decode_usage),
    })
}

/// Writes a whole `response`.
pub fn encode_response(response: &ChatResponse) -> Value {
    let id = response_id();
    let (status, incomplete) = status(response.stop.as_ref());
    let output = output_items(&id, &response.content, "completed");
    response_object(
        &id,
        &response.model,
        created_at(),
        status,
        incomplete,
        output,
        response.usage.as_ref(),
    )
}
