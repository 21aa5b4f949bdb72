//! Whole `chat.completion` answers, read and written, and the finish reasons and usage counts
//! that streamed chunks say the same way.

use serde_json::{Value, json};

use super::text_and_calls;
use crate::translate::ir::{ChatResponse, Part, StopReason, ToolCall, Usage};
use crate::translate::value::{Obj, owned_str};

pub(super) fn finish_reason(stop: Option<&StopReason>) -> Value {
    match stop {
        None => Value::Null,
        Some(StopReason::EndTurn | StopReason::StopSequence(_)) => "stop".into(),
        Some(StopReason::MaxTokens) => "length".into(),
        Some(StopReason::ToolUse) => "tool_calls".into(),
        Some(StopReason::ContentFilter | StopReason::Refusal) => "content_filter".into(),
    }
}

pub(super) fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

pub(super) fn usage_value(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input.saturating_add(usage.output),
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
    })
}

pub(super) fn decode_usage(value: &Value) -> Option<Usage> {
    let usage = value.as_object()?;
    Some(Usage {
        input: usage.get("prompt_tokens")?.as_u64()?,
        output: usage
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cache_read: usage
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cache_write: 0,
    })
}

/// Reads a whole `chat.completion`; `None` when it is not one.
pub fn decode_response(body: &[u8]) -> Option<ChatResponse> {
    let obj: Obj = serde_json::from_slice(body).ok()?;
    let choice = obj.get("choices")?.as_array()?.first()?.as_object()?;
    let message = choice.get("message")?.as_object()?;
    let mut content = Vec::new();
    if let Some(text) = message.get("content").and_then(Value::as_str)
        && !text.is_empty()
    {
        content.push(Part::Text(text.to_owned()));
    }
    let refused = message.get("refusal").and_then(Value::as_str);
    if let Some(refusal) = refused {
        content.push(Part::Text(refusal.to_owned()));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call.get("function")?;
        content.push(Part::ToolCall(ToolCall {
            id: call.get("id")?.as_str()?.to_owned(),
            name: function.get("name")?.as_str()?.to_owned(),
            arguments: function.get("arguments")?.as_str()?.to_owned(),
        }));
    }
    let stop = match choice.get("finish_reason").and_then(Value::as_str) {
        _ if refused.is_some() => Some(StopReason::Refusal),
        Some(reason) => Some(stop_reason(reason)),
        None => None,
    };
    Some(ChatResponse {
        id: owned_str(obj.get("id")),
        model: owned_str(obj.get("model")),
        content,
        stop,
        usage: obj.get("usage").and_then(decode_usage),
    })
}

pub(super) fn created() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes a whole `chat.completion`.
pub fn encode_response(response: &ChatResponse) -> Value {
    let (text, calls) = text_and_calls(&response.content);
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let mut out = json!({
        "id": response.id,
        "object": "chat.completion",
        "created": created(),
        "model": response.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(response.stop.as_ref()),
        }],
    });
    if let Some(usage) = &response.usage {
        out["usage"] = usage_value(usage);
    }
    out
}
