//! Whole `GenerateContentResponse`s, read and written, and the parts, finish reasons and usage
//! counts that streamed answers say the same way.

use serde_json::{Value, json};

use super::signed_call_id;
use crate::translate::ir::{ChatResponse, Part, StopReason, ToolCall, Usage};
use crate::translate::value::{Obj, owned_str};

pub(super) fn stop_reason(reason: &str, called: bool) -> StopReason {
    match reason {
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => {
            StopReason::ContentFilter
        }
        image if image.starts_with("IMAGE_") => StopReason::ContentFilter,
        _ if called => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

pub(super) fn encode_stop(stop: Option<&StopReason>) -> Value {
    match stop {
        None => Value::Null,
        Some(StopReason::MaxTokens) => "MAX_TOKENS".into(),
        Some(StopReason::ContentFilter | StopReason::Refusal) => "SAFETY".into(),
        Some(_) => "STOP".into(),
    }
}

pub(super) fn decode_usage(usage: &Value) -> Usage {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input: count("promptTokenCount"),
        output: count("candidatesTokenCount").saturating_add(count("thoughtsTokenCount")),
        cache_read: count("cachedContentTokenCount"),
        cache_write: 0,
    }
}

pub(super) fn usage_value(usage: &Usage) -> Value {
    json!({
        "promptTokenCount": usage.input,
        "candidatesTokenCount": usage.output,
        "totalTokenCount": usage.input.saturating_add(usage.output),
        "cachedContentTokenCount": usage.cache_read,
    })
}

/// An id for the `n`th call of an answer: Gemini's calls have none, and clients answer by id.
fn call_id(response_id: &str, n: usize) -> String {
    if response_id.is_empty() {
        format!("call_{:016x}_{n}", fastrand::u64(..))
    } else {
        format!("call_{response_id}_{n}")
    }
}

/// The parts of an answer's first candidate, as text and tool calls.
pub(super) fn parts(candidate: &Value, response_id: &str, calls: &mut usize) -> Option<Vec<Part>> {
    let mut out = Vec::new();
    let Some(parts) = candidate.get("content").and_then(|c| c.get("parts")) else {
        return Some(out);
    };
    for part in parts.as_array()? {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            out.push(Part::Text(text.to_owned()));
        } else if let Some(call) = part.get("functionCall") {
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| call_id(response_id, *calls), str::to_owned);
            let id = signed_call_id(id, part.get("thoughtSignature").and_then(Value::as_str));
            *calls += 1;
            out.push(Part::ToolCall(ToolCall {
                id,
                name: call.get("name")?.as_str()?.to_owned(),
                arguments: call
                    .get("args")
                    .cloned()
                    .unwrap_or_else(|| json!({}))
                    .to_string(),
            }));
        }
    }
    Some(out)
}

/// Reads a whole `GenerateContentResponse`; `None` when it is not one.
pub fn decode_response(body: &[u8]) -> Option<ChatResponse> {
    let obj: Obj = serde_json::from_slice(body).ok()?;
    let id = owned_str(obj.get("responseId"));
    let candidate = obj
        .get("candidates")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    let mut calls = 0;
    let (content, stop) = match candidate {
        Some(candidate) => {
            let content = parts(candidate, &id, &mut calls)?;
            let stop = candidate
                .get("finishReason")
                .and_then(Value::as_str)
                .map(|reason| stop_reason(reason, calls > 0));
            (content, stop)
        }
        // The prompt itself was blocked.
        None if obj.get("promptFeedback").is_some() => {
            (Vec::new(), Some(StopReason::ContentFilter))
        }
        None => return None,
    };
    Some(ChatResponse {
        model: owned_str(obj.get("modelVersion")),
        id,
        content: merge_text(content),
        stop,
        usage: obj.get("usageMetadata").map(decode_usage),
    })
}

/// Joins neighbouring text parts, as the other formats show them.
fn merge_text(parts: Vec<Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::with_capacity(parts.len());
    for part in parts {
        match (out.last_mut(), part) {
            (Some(Part::Text(so_far)), Part::Text(text)) => so_far.push_str(&text),
            (_, part) => out.push(part),
        }
    }
    out
}

fn encode_parts(content: &[Part]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|part| match part {
            Part::Text(text) => Some(json!({"text": text})),
            Part::ToolCall(call) => Some(json!({"functionCall": {
                "name": call.name,
                "args": serde_json::from_str::<Value>(&call.arguments).unwrap_or_else(|_| json!({})),
            }})),
            _ => None,
        })
        .collect()
}

/// Writes a whole `GenerateContentResponse` (what a Gemini upstream sends; used to check
/// translations against it).
pub fn encode_response(response: &ChatResponse) -> Value {
    let mut out = json!({
        "candidates": [{
            "content": {"parts": encode_parts(&response.content), "role": "model"},
            "finishReason": encode_stop(response.stop.as_ref()),
            "index": 0,
        }],
        "modelVersion": response.model,
        "responseId": response.id,
    });
    if let Some(usage) = &response.usage {
        out["usageMetadata"] = usage_value(usage);
    }
    out
}
