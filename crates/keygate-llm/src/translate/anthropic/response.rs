//! Whole Anthropic messages, read and written, and the stop reasons, usage counts and message
//! ids that streamed events say the same way.

use serde_json::{Value, json};

use super::arguments_value;
use crate::translate::ir::{ChatResponse, Part, StopReason, ToolCall, Usage};
use crate::translate::value::{Obj, owned_str};

pub(super) fn stop_reason(reason: &str, sequence: Option<&str>) -> StopReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence(sequence.map(str::to_owned)),
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// `(stop_reason, stop_sequence)`.
pub(super) fn encode_stop(stop: Option<&StopReason>) -> (Value, Value) {
    let reason = match stop {
        None => return (Value::Null, Value::Null),
        Some(StopReason::EndTurn) => "end_turn",
        Some(StopReason::MaxTokens) => "max_tokens",
        Some(StopReason::StopSequence(sequence)) => {
            return (
                "stop_sequence".into(),
                sequence.clone().map_or(Value::Null, Value::String),
            );
        }
        Some(StopReason::ToolUse) => "tool_use",
        Some(StopReason::ContentFilter | StopReason::Refusal) => "refusal",
    };
    (reason.into(), Value::Null)
}

pub(super) fn decode_usage(usage: &Value) -> Usage {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let cache_read = count("cache_read_input_tokens");
    let cache_write = count("cache_creation_input_tokens");
    Usage {
        input: count("input_tokens")
            .saturating_add(cache_read)
            .saturating_add(cache_write),
        output: count("output_tokens"),
        cache_read,
        cache_write,
    }
}

pub(super) fn usage_value(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input.saturating_sub(usage.cache_read).saturating_sub(usage.cache_write),
        "output_tokens": usage.output,
        "cache_read_input_tokens": usage.cache_read,
        "cache_creation_input_tokens": usage.cache_write,
    })
}

/// Reads a whole message; `None` when it is not one.
pub fn decode_response(body: &[u8]) -> Option<ChatResponse> {
    let obj: Obj = serde_json::from_slice(body).ok()?;
    if obj.get("type")?.as_str()? != "message" {
        return None;
    }
    let mut content = Vec::new();
    for block in obj.get("content")?.as_array()? {
        match block.get("type")?.as_str()? {
            "text" => content.push(Part::Text(block.get("text")?.as_str()?.to_owned())),
            "tool_use" => content.push(Part::ToolCall(ToolCall {
                id: block.get("id")?.as_str()?.to_owned(),
                name: block.get("name")?.as_str()?.to_owned(),
                arguments: block.get("input")?.to_string(),
            })),
            _ => {}
        }
    }
    let stop = obj
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(|reason| stop_reason(reason, obj.get("stop_sequence").and_then(Value::as_str)));
    Some(ChatResponse {
        id: owned_str(obj.get("id")),
        model: owned_str(obj.get("model")),
        content,
        stop,
        usage: obj.get("usage").map(decode_usage),
    })
}

pub(super) fn message_id(id: &str) -> String {
    if id.starts_with("msg_") || id.is_empty() {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// Writes a whole message.
pub fn encode_response(response: &ChatResponse) -> Value {
    let content: Vec<Value> = response
        .content
        .iter()
        .filter_map(|part| match part {
            Part::Text(text) => Some(json!({"type": "text", "text": text})),
            Part::ToolCall(call) => Some(json!({
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": arguments_value(&call.arguments),
            })),
            _ => None,
        })
        .collect();
    let (stop_reason, stop_sequence) = encode_stop(response.stop.as_ref());
    json!({
        "id": message_id(&response.id),
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_value(&response.usage.unwrap_or_default()),
    })
}
