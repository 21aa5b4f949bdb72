//! OpenAI's Responses API (`POST /v1/responses`), as its API reference describes it: the
//! request checked as OpenAI checks it (unknown parameters, item and part types per role, a
//! function call output with no call to answer, `max_output_tokens` below 16, an unknown
//! `previous_response_id`), answered with a `response` object or its `response.*` events
//! (each with its `sequence_number`; no `[DONE]`), and answers kept unless `store` is false.

use std::sync::Arc;
use std::sync::PoisonError;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use serde_json::{Value, json};

use super::wire::{self, count_words};
use super::{MockReply, Refusal, Shared, accept, default_reply, error_reply, garbage, json};

const PARAMETERS: [&str; 28] = [
    "model",
    "input",
    "instructions",
    "stream",
    "stream_options",
    "max_output_tokens",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "previous_response_id",
    "store",
    "metadata",
    "reasoning",
    "text",
    "truncation",
    "user",
    "safety_identifier",
    "include",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
    "top_logprobs",
    "background",
    "max_tool_calls",
    "conversation",
    // Sent by OpenAI's own Codex CLI, beside `metadata`.
    "client_metadata",
];

fn invalid(message: String, param: Option<&str>, code: &str) -> Refusal {
    Refusal(
        StatusCode::BAD_REQUEST,
        wire::error(&message, "invalid_request_error", param, Some(code)),
    )
}

/// What a valid request says: its last user text and a rough prompt size (words, plus 3).
struct Read {
    last_user: String,
    prompt_tokens: u64,
    streamed: bool,
    store: bool,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn check(shared: &Shared, body: &Value) -> Result<Read, Refusal> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("The body must be an object".into(), None, "invalid_type"))?;
    for key in obj.keys() {
        if !PARAMETERS.contains(&key.as_str()) {
            return Err(invalid(
                format!("Unknown parameter: '{key}'."),
                Some(key),
                "unknown_parameter",
            ));
        }
    }
    if let Some(max) = obj.get("max_output_tokens").and_then(Value::as_u64)
        && max < 16
    {
        return Err(invalid(
            format!(
                "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {max} instead."
            ),
            Some("max_output_tokens"),
            "integer_below_min_value",
        ));
    }
    let previous = obj.get("previous_response_id").and_then(Value::as_str);
    if let Some(previous) = previous {
        let stored = shared.stored.lock().unwrap_or_else(PoisonError::into_inner);
        if !stored.contains(previous) {
            return Err(invalid(
                format!("Previous response with id '{previous}' not found."),
                Some("previous_response_id"),
                "previous_response_not_found",
            ));
        }
    }
    for (i, tool) in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if tool["type"] == "function" && !tool["name"].is_string() {
            return Err(invalid(
                format!("Missing required parameter: 'tools[{i}].name'."),
                Some(&format!("tools[{i}].name")),
                "missing_required_parameter",
            ));
        }
    }
    let mut words = obj
        .get("instructions")
        .and_then(Value::as_str)
        .map_or(0, count_words);
    let mut last_user = String::new();
    let mut calls = Vec::new();
    match obj.get("input") {
        None if previous.is_some() => {}
        None => {
            return Err(invalid(
                "Missing required parameter: 'input'.".into(),
                Some("input"),
                "missing_required_parameter",
            ));
        }
        Some(Value::String(text)) => {
            words += count_words(text);
            last_user.clone_from(text);
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let kind = item
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("message");
                let at = format!("input[{i}]");
                match kind {
                    "message" => {
                        let role = item.get("role").and_then(Value::as_str).unwrap_or("");
                        let allowed: &[&str] = match role {
                            "user" | "system" | "developer" => {
                                &["input_text", "input_image", "input_file"]
                            }
                            "assistant" => &["output_text", "refusal"],
                            _ => {
                                return Err(invalid(
                                    format!(
                                        "Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'."
                                    ),
                                    Some(&format!("{at}.role")),
                                    "invalid_value",
                                ));
                            }
                        };
                        let content = item.get("content").unwrap_or(&Value::Null);
                        for (j, part) in content.as_array().into_iter().flatten().enumerate() {
                            let part_type = part.get("type").and_then(Value::as_str).unwrap_or("");
                            if !allowed.contains(&part_type) {
                                return Err(invalid(
                                    format!(
                                        "Invalid value: '{part_type}'. Supported values are: {}.",
                                        allowed.join(", ")
                                    ),
                                    Some(&format!("{at}.content[{j}].type")),
                                    "invalid_value",
                                ));
                            }
                        }
                        let text = text_of(content);
                        words += count_words(&text);
                        if role == "user" {
                            last_user = text;
                        }
                    }
                    "function_call" => {
                        for field in ["call_id", "name", "arguments"] {
                            if !item[field].is_string() {
                                return Err(invalid(
                                    format!("Missing required parameter: '{at}.{field}'."),
                                    Some(&format!("{at}.{field}")),
                                    "missing_required_parameter",
                                ));
                            }
                        }
                        words += count_words(item["arguments"].as_str().unwrap_or(""));
                        calls.push(item["call_id"].as_str().unwrap_or("").to_owned());
                    }
                    "function_call_output" => {
                        let call_id = item["call_id"].as_str().unwrap_or("");
                        if previous.is_none() && !calls.iter().any(|c| c == call_id) {
                            return Err(invalid(
                                format!(
                                    "No tool call found for function call output with call_id {call_id}."
                                ),
                                Some("input"),
                                "invalid_value",
                            ));
                        }
                        words += count_words(&text_of(&item["output"]));
                    }
                    "reasoning" | "item_reference" => {}
                    other => {
                        return Err(invalid(
                            format!("Invalid value: '{other}'."),
                            Some(&format!("{at}.type")),
                            "invalid_value",
                        ));
                    }
                }
            }
        }
        Some(_) => {
            return Err(invalid(
                "Invalid type for 'input': expected one of a string or an array, but got something else instead.".into(),
                Some("input"),
                "invalid_type",
            ));
        }
    }
    Ok(Read {
        last_user,
        prompt_tokens: words + 3,
        streamed: obj.get("stream").and_then(Value::as_bool) == Some(true),
        store: obj.get("store").and_then(Value::as_bool) != Some(false),
    })
}

pub(super) async fn responses(shared: Arc<Shared>, headers: &HeaderMap, body: &[u8]) -> Response {
    let accepted = match accept(&shared, headers, body, None) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let read = match check(&shared, &accepted.body) {
        Ok(read) => read,
        Err(refused) => return refused.into_response(),
    };
    let model = accepted.model;
    let default_text = format!("Hello from {}: {}", shared.name, read.last_user);
    let mut reply = shared
        .next_reply()
        .or_else(|| crate::mock_agent::step(&model, &accepted.body))
        .unwrap_or_else(|| default_reply(&model, || default_text.clone()));
    let text = loop {
        reply = match reply {
            MockReply::Slow { delay, then } => {
                tokio::time::sleep(delay).await;
                *then
            }
            MockReply::Hang => return super::hang(&shared.hangs_dropped).await,
            MockReply::Error {
                status,
                code,
                message,
                retry_after,
            } => return error_reply(status, &code, &message, retry_after),
            MockReply::Garbage => return garbage(read.streamed),
            MockReply::ToolCalls(calls) => break Err(calls),
            MockReply::Text(text) | MockReply::Paced { text, .. } => break Ok(text),
            MockReply::Gated { first, rest, .. } => break Ok(format!("{first}{rest}")),
            MockReply::Cut { .. } => break Ok(default_text),
        };
    };
    let seq = shared
        .completions
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    let id = format!("resp_mock{seq:08}");
    if read.store {
        shared
            .stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone());
    }
    let answer = Answer {
        id,
        model,
        prompt_tokens: read.prompt_tokens,
        store: read.store,
    };
    if read.streamed {
        let body = answer.events(&text);
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")],
            body,
        )
            .into_response();
    }
    let items = answer.items(&text);
    json(StatusCode::OK, &answer.response("completed", items, &text))
}

struct Answer {
    id: String,
    model: String,
    prompt_tokens: u64,
    store: bool,
}

impl Answer {
    fn output_tokens(text: &Result<String, Vec<(String, String)>>) -> u64 {
        match text {
            Ok(text) => count_words(text),
            Err(_) => 10,
        }
    }

    /// The finished output items: a reasoning item (as o-series models give), then the
    /// message or the function calls.
    fn items(&self, text: &Result<String, Vec<(String, String)>>) -> Vec<Value> {
        let mut items =
            vec![json!({"id": format!("rs_{}", self.id), "type": "reasoning", "summary": []})];
        match text {
            Ok(text) => items.push(self.message(text, "completed")),
            Err(calls) => {
                for (i, (name, arguments)) in calls.iter().enumerate() {
                    items.push(self.call(i, name, arguments, "completed"));
                }
            }
        }
        items
    }

    fn message(&self, text: &str, status: &str) -> Value {
        json!({
            "id": format!("msg_{}", self.id), "type": "message", "status": status, "role": "assistant",
            "content": if status == "completed" {
                json!([{"type": "output_text", "text": text, "annotations": [], "logprobs": []}])
            } else {
                json!([])
            },
        })
    }

    fn call(&self, i: usize, name: &str, arguments: &str, status: &str) -> Value {
        json!({
            "id": format!("fc_{}_{i}", self.id), "type": "function_call", "status": status,
            "call_id": format!("call_{}_{i}", self.id), "name": name,
            "arguments": if status == "completed" { arguments } else { "" },
        })
    }

    fn response(
        &self,
        status: &str,
        output: Vec<Value>,
        text: &Result<String, Vec<(String, String)>>,
    ) -> Value {
        let output_tokens = Self::output_tokens(text);
        let usage = if status == "completed" {
            json!({
                "input_tokens": self.prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.prompt_tokens + output_tokens,
            })
        } else {
            Value::Null
        };
        json!({
            "id": self.id, "object": "response", "created_at": 1_741_476_542, "status": status,
            "background": false, "error": null, "incomplete_details": null, "instructions": null,
            "max_output_tokens": null, "model": self.model, "output": output,
            "parallel_tool_calls": true, "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "store": self.store,
            "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
            "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": usage, "metadata": {},
        })
    }

    /// The streamed events, as OpenAI sends them.
    fn events(&self, text: &Result<String, Vec<(String, String)>>) -> String {
        let mut out = String::new();
        let mut sequence = 0u64;
        let mut event = |mut data: Value| {
            data["sequence_number"] = sequence.into();
            sequence += 1;
            out.push_str(&format!(
                "event: {}\ndata: {data}\n\n",
                data["type"].as_str().unwrap_or("")
            ));
        };
        let created = self.response("in_progress", Vec::new(), text);
        event(json!({"type": "response.created", "response": created}));
        event(json!({"type": "response.in_progress", "response": created}));
        let items = self.items(text);
        event(
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": items[0]["id"], "type": "reasoning", "summary": []}}),
        );
        event(json!({"type": "response.output_item.done", "output_index": 0, "item": items[0]}));
        match text {
            Ok(text) => {
                let id = format!("msg_{}", self.id);
                event(
                    json!({"type": "response.output_item.added", "output_index": 1, "item": self.message(text, "in_progress")}),
                );
                event(
                    json!({"type": "response.content_part.added", "item_id": id, "output_index": 1, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                );
                for piece in wire::split_words(text) {
                    event(
                        json!({"type": "response.output_text.delta", "item_id": id, "output_index": 1, "content_index": 0, "delta": piece, "logprobs": []}),
                    );
                }
                event(
                    json!({"type": "response.output_text.done", "item_id": id, "output_index": 1, "content_index": 0, "text": text, "logprobs": []}),
                );
                event(
                    json!({"type": "response.content_part.done", "item_id": id, "output_index": 1, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}}),
                );
                event(
                    json!({"type": "response.output_item.done", "output_index": 1, "item": items[1]}),
                );
            }
            Err(calls) => {
                for (i, (name, arguments)) in calls.iter().enumerate() {
                    let at = i + 1;
                    let item = self.call(i, name, arguments, "in_progress");
                    let id = item["id"].clone();
                    event(
                        json!({"type": "response.output_item.added", "output_index": at, "item": item}),
                    );
                    let split = arguments.len() / 2;
                    let split = (0..=split)
                        .rev()
                        .find(|n| arguments.is_char_boundary(*n))
                        .unwrap_or(0);
                    for piece in [&arguments[..split], &arguments[split..]] {
                        event(
                            json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": at, "delta": piece}),
                        );
                    }
                    event(
                        json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": at, "name": name, "arguments": arguments}),
                    );
                    event(
                        json!({"type": "response.output_item.done", "output_index": at, "item": items[at]}),
                    );
                }
            }
        }
        let done = self.response("completed", items, text);
        event(json!({"type": "response.completed", "response": done}));
        out
    }
}
