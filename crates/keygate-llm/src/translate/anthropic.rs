//! Anthropic's Messages format: requests in, requests out, whole messages, streamed events
//! (`message_start`, `content_block_*`, `message_delta`, `message_stop`) and error bodies.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::ir::{
    ChatRequest, ChatResponse, ErrorKind, Image, Message, Part, Role, StopReason, StreamEvent,
    Tool, ToolCall, ToolChoice, ToolResult, UpstreamError, Usage,
};
use super::value::{
    Obj, as_array, as_bool, as_f64, as_object, as_str, as_u64, get, object, owned_str, required_str,
};
use super::{Format, TargetOptions, TranslateError};
use crate::client::{ClientError, ClientFormat};

/// The API version keygate speaks to Anthropic.
pub const API_VERSION: &str = "2023-06-01";

/// Reads an Anthropic Messages request for a deployment of `target`.
pub fn decode_request(body: &[u8], target: Format) -> Result<ChatRequest, TranslateError> {
    let request = decode(body, target)?;
    if request.max_tokens.is_none() {
        return Err(TranslateError::invalid("max_tokens", "required"));
    }
    Ok(request)
}

/// Reads the body of a token count: a Messages request without `max_tokens`.
pub fn decode_count_request(body: &[u8]) -> Result<ChatRequest, TranslateError> {
    decode(body, Format::Anthropic)
}

fn decode(body: &[u8], target: Format) -> Result<ChatRequest, TranslateError> {
    let obj = object(body)?;
    let mut request = ChatRequest {
        source: Some(Format::Anthropic),
        ..ChatRequest::default()
    };
    for (key, value) in &obj {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" => request.model = as_str(value, "model")?.to_owned(),
            "messages" => {}
            "max_tokens" => request.max_tokens = Some(as_u64(value, key)?),
            "system" => request.system = decode_system(value)?,
            "metadata" => {
                let metadata = as_object(value, key)?;
                for (field, value) in metadata {
                    match field.as_str() {
                        "user_id" if !value.is_null() => {
                            request.user = Some(as_str(value, "metadata.user_id")?.to_owned());
                        }
                        "user_id" => {}
                        other => {
                            return Err(TranslateError::unsupported(
                                format!("metadata.{other}"),
                                target,
                            ));
                        }
                    }
                }
            }
            "stop_sequences" => {
                request.stop = as_array(value, key)?
                    .iter()
                    .map(|s| as_str(s, "stop_sequences").map(str::to_owned))
                    .collect::<Result<_, _>>()?;
            }
            "stream" => request.stream = as_bool(value, key)?,
            "temperature" => request.temperature = Some(as_f64(value, key)?),
            "top_p" => request.top_p = Some(as_f64(value, key)?),
            "top_k" => request.top_k = Some(as_u64(value, key)?),
            "tools" => request.tools = decode_tools(value, target)?,
            "tool_choice" => {
                let choice = as_object(value, key)?;
                request.tool_choice = Some(match required_str(choice, "type", key)? {
                    "auto" => ToolChoice::Auto,
                    "any" => ToolChoice::Required,
                    "none" => ToolChoice::None,
                    "tool" => ToolChoice::Named(required_str(choice, "name", key)?.to_owned()),
                    _ => {
                        return Err(TranslateError::invalid(
                            "tool_choice.type",
                            "auto, any, tool or none",
                        ));
                    }
                });
                if let Some(disable) = get(choice, "disable_parallel_tool_use")
                    && as_bool(disable, "tool_choice.disable_parallel_tool_use")?
                {
                    request.parallel_tool_calls = Some(false);
                }
            }
            "thinking" => {
                let thinking = as_object(value, key)?;
                match required_str(thinking, "type", key)? {
                    "disabled" => {}
                    "enabled" => {
                        let budget = thinking.get("budget_tokens").ok_or_else(|| {
                            TranslateError::invalid("thinking.budget_tokens", "required")
                        })?;
                        request.thinking_budget = Some(as_u64(budget, "thinking.budget_tokens")?);
                    }
                    _ => return Err(TranslateError::unsupported("thinking.type", target)),
                }
            }
            "service_tier" if value.as_str() == Some("auto") => {}
            other => return Err(TranslateError::unsupported(other, target)),
        }
    }
    let messages =
        get(&obj, "messages").ok_or_else(|| TranslateError::invalid("messages", "required"))?;
    let messages = as_array(messages, "messages")?;
    decode_messages(messages, &mut request, target)?;
    // A final assistant turn is a prefill: the answer must continue it. Elsewhere it would
    // be read as a finished turn, and the answer would be another.
    if target != Format::Anthropic
        && request
            .messages
            .last()
            .is_some_and(|m| m.role == Role::Assistant)
    {
        return Err(TranslateError::unsupported_use(
            format!("messages[{}].role", messages.len().saturating_sub(1)),
            "a final assistant turn, a prefill",
            target,
        ));
    }
    Ok(request)
}

fn decode_system(value: &Value) -> Result<Vec<String>, TranslateError> {
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, block)| {
                let at = format!("system[{i}]");
                let block = as_object(block, &at)?;
                if required_str(block, "type", &at)? != "text" {
                    return Err(TranslateError::invalid(
                        format!("{at}.type"),
                        "must be `text`",
                    ));
                }
                Ok(required_str(block, "text", &at)?.to_owned())
            })
            .collect(),
        _ => Err(TranslateError::invalid(
            "system",
            "a string or an array of text blocks",
        )),
    }
}

fn decode_tools(value: &Value, target: Format) -> Result<Vec<Tool>, TranslateError> {
    as_array(value, "tools")?
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let at = format!("tools[{i}]");
            let tool = as_object(tool, &at)?;
            // Anthropic's server tools (web search, code execution…) run at Anthropic.
            if get(tool, "type").is_some_and(|t| t.as_str() != Some("custom")) {
                return Err(TranslateError::unsupported(format!("{at}.type"), target));
            }
            for key in tool.keys() {
                if !matches!(
                    key.as_str(),
                    "name" | "description" | "input_schema" | "cache_control" | "type"
                ) {
                    return Err(TranslateError::unsupported(format!("{at}.{key}"), target));
                }
            }
            Ok(Tool {
                name: required_str(tool, "name", &at)?.to_owned(),
                description: get(tool, "description")
                    .map(|d| as_str(d, &format!("{at}.description")).map(str::to_owned))
                    .transpose()?,
                parameters: tool.get("input_schema").cloned().ok_or_else(|| {
                    TranslateError::invalid(format!("{at}.input_schema"), "required")
                })?,
            })
        })
        .collect()
}

fn decode_messages(
    items: &[Value],
    request: &mut ChatRequest,
    target: Format,
) -> Result<(), TranslateError> {
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("messages[{i}]");
        let message = as_object(item, &at)?;
        for key in message.keys() {
            if !matches!(key.as_str(), "role" | "content") {
                return Err(TranslateError::invalid(
                    format!("{at}.{key}"),
                    "unknown field",
                ));
            }
        }
        let role = match required_str(message, "role", &at)? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => {
                return Err(TranslateError::invalid(
                    format!("{at}.role"),
                    "user or assistant",
                ));
            }
        };
        let content = message
            .get("content")
            .ok_or_else(|| TranslateError::invalid(format!("{at}.content"), "required"))?;
        let parts = match content {
            Value::String(text) => vec![Part::Text(text.clone())],
            Value::Array(blocks) => {
                let mut parts = Vec::with_capacity(blocks.len());
                for (j, block) in blocks.iter().enumerate() {
                    let at = format!("{at}.content[{j}]");
                    if let Some(part) = decode_block(block, &at, target, &mut call_names)? {
                        parts.push(part);
                    }
                }
                parts
            }
            _ => {
                return Err(TranslateError::invalid(
                    format!("{at}.content"),
                    "a string or an array of blocks",
                ));
            }
        };
        match request.messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(parts),
            _ => request.messages.push(Message {
                role,
                content: parts,
            }),
        }
    }
    Ok(())
}

/// One content block; `None` for blocks that carry nothing another provider can use.
fn decode_block(
    block: &Value,
    at: &str,
    target: Format,
    call_names: &mut HashMap<String, String>,
) -> Result<Option<Part>, TranslateError> {
    let block = as_object(block, at)?;
    let kind = required_str(block, "type", at)?;
    let allowed: &[&str] = match kind {
        "text" => &["type", "text", "cache_control"],
        "image" => &["type", "source", "cache_control"],
        "tool_use" => &["type", "id", "name", "input", "cache_control"],
        "tool_result" => &[
            "type",
            "tool_use_id",
            "content",
            "is_error",
            "cache_control",
        ],
        // Thinking of earlier turns is the upstream's own; another provider cannot use it.
        "thinking" | "redacted_thinking" => return Ok(None),
        other => {
            return Err(TranslateError::unsupported_use(
                format!("{at}.type"),
                format!("`{other}` blocks"),
                target,
            ));
        }
    };
    for (key, value) in block {
        if !allowed.contains(&key.as_str()) && !value.is_null() {
            return Err(TranslateError::unsupported(format!("{at}.{key}"), target));
        }
    }
    Ok(Some(match kind {
        "text" => Part::Text(required_str(block, "text", at)?.to_owned()),
        "image" => Part::Image(decode_image(block, at)?),
        "tool_use" => {
            let id = required_str(block, "id", at)?.to_owned();
            let name = required_str(block, "name", at)?.to_owned();
            let input = block
                .get("input")
                .ok_or_else(|| TranslateError::invalid(format!("{at}.input"), "required"))?;
            as_object(input, &format!("{at}.input"))?;
            call_names.insert(id.clone(), name.clone());
            Part::ToolCall(ToolCall {
                id,
                name,
                arguments: input.to_string(),
            })
        }
        _ => {
            let call_id = required_str(block, "tool_use_id", at)?.to_owned();
            let content = match get(block, "content") {
                None => Vec::new(),
                Some(Value::String(text)) => vec![Part::Text(text.clone())],
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(k, item)| {
                        let at = format!("{at}.content[{k}]");
                        let item = as_object(item, &at)?;
                        match required_str(item, "type", &at)? {
                            "text" => Ok(Part::Text(required_str(item, "text", &at)?.to_owned())),
                            "image" => Ok(Part::Image(decode_image(item, &at)?)),
                            other => Err(TranslateError::unsupported_use(
                                format!("{at}.type"),
                                format!("`{other}` blocks"),
                                target,
                            )),
                        }
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(TranslateError::invalid(
                        format!("{at}.content"),
                        "a string or an array",
                    ));
                }
            };
            let is_error = match get(block, "is_error") {
                Some(value) => as_bool(value, &format!("{at}.is_error"))?,
                None => false,
            };
            Part::ToolResult(ToolResult {
                name: call_names.get(&call_id).cloned(),
                call_id,
                content,
                is_error,
            })
        }
    }))
}

fn decode_image(block: &Obj, at: &str) -> Result<Image, TranslateError> {
    let source = as_object(
        block
            .get("source")
            .ok_or_else(|| TranslateError::invalid(format!("{at}.source"), "required"))?,
        &format!("{at}.source"),
    )?;
    let at = format!("{at}.source");
    match required_str(source, "type", &at)? {
        "base64" => Ok(Image::Base64 {
            media_type: required_str(source, "media_type", &at)?.to_owned(),
            data: required_str(source, "data", &at)?.to_owned(),
        }),
        "url" => Ok(Image::Url(required_str(source, "url", &at)?.to_owned())),
        _ => Err(TranslateError::invalid(
            format!("{at}.type"),
            "base64 or url",
        )),
    }
}

fn encode_image(image: &Image) -> Value {
    match image {
        Image::Base64 { media_type, data } => json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }),
        Image::Url(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
    }
}

/// A tool call's arguments as the object Anthropic wants; text that is not an object is kept
/// as text rather than lost.
fn arguments_value(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => Value::String(arguments.to_owned()),
    }
}

/// Writes a Messages request for an Anthropic deployment serving `model`.
pub fn encode_request(
    request: &ChatRequest,
    model: &str,
    defaults: &TargetOptions,
) -> Result<Value, TranslateError> {
    let target = Format::Anthropic;
    for (set, field) in [
        (request.seed.is_some(), "seed"),
        (request.presence_penalty.is_some(), "presence_penalty"),
        (request.frequency_penalty.is_some(), "frequency_penalty"),
        (request.json_output, "response_format"),
    ] {
        if set {
            return Err(TranslateError::unsupported(field, target));
        }
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.iter().enumerate() {
        let mut blocks = Vec::with_capacity(message.content.len());
        for part in &message.content {
            blocks.push(match part {
                // Anthropic refuses empty text blocks; an empty text says nothing.
                Part::Text(text) if text.is_empty() => continue,
                Part::Text(text) => json!({"type": "text", "text": text}),
                Part::Image(image) => encode_image(image),
                Part::ToolCall(call) => {
                    let input = arguments_value(&call.arguments);
                    if !input.is_object() {
                        return Err(TranslateError::invalid(
                            format!("messages[{i}] (tool call `{}`)", call.name),
                            "the arguments are not a JSON object",
                        ));
                    }
                    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
                }
                Part::ToolResult(result) => {
                    let content: Vec<Value> = result
                        .content
                        .iter()
                        .filter_map(|item| match item {
                            Part::Text(text) if !text.is_empty() => {
                                Some(json!({"type": "text", "text": text}))
                            }
                            Part::Image(image) => Some(encode_image(image)),
                            _ => None,
                        })
                        .collect();
                    let mut block = json!({"type": "tool_result", "tool_use_id": result.call_id, "content": content});
                    if result.is_error {
                        block["is_error"] = true.into();
                    }
                    block
                }
            });
        }
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        messages.push(json!({"role": role, "content": blocks}));
    }
    let mut body = Obj::new();
    body.insert("model".into(), model.into());
    body.insert(
        "max_tokens".into(),
        request.max_tokens.unwrap_or(defaults.max_tokens).into(),
    );
    body.insert("messages".into(), messages.into());
    match request.system.as_slice() {
        [] => {}
        [one] => {
            body.insert("system".into(), one.clone().into());
        }
        many => {
            let blocks: Vec<Value> = many
                .iter()
                .map(|text| json!({"type": "text", "text": text}))
                .collect();
            body.insert("system".into(), blocks.into());
        }
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), p.into());
    }
    if let Some(k) = request.top_k {
        body.insert("top_k".into(), k.into());
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    if request.stream {
        body.insert("stream".into(), true.into());
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut out = json!({"name": tool.name, "input_schema": tool.parameters});
                if let Some(description) = &tool.description {
                    out["description"] = description.clone().into();
                }
                out
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    let single = request.parallel_tool_calls == Some(false);
    let choice = match &request.tool_choice {
        None if single && !request.tools.is_empty() => Some(json!({"type": "auto"})),
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Named(name)) => Some(json!({"type": "tool", "name": name})),
    };
    if let Some(mut choice) = choice {
        if single && choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = true.into();
        }
        body.insert("tool_choice".into(), choice);
    }
    if let Some(user) = &request.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(budget) = request.thinking_budget {
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    Ok(Value::Object(body))
}

fn stop_reason(reason: &str, sequence: Option<&str>) -> StopReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence(sequence.map(str::to_owned)),
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// `(stop_reason, stop_sequence)`.
fn encode_stop(stop: Option<&StopReason>) -> (Value, Value) {
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

fn decode_usage(usage: &Value) -> Usage {
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

fn usage_value(usage: &Usage) -> Value {
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

fn message_id(id: &str) -> String {
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

/// The message of an Anthropic error body.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(value.get("error")?.get("message")?.as_str()?.to_owned())
}

fn error_kind(kind: &str) -> ErrorKind {
    match kind {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" => ErrorKind::Permission,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::TooLarge,
        "rate_limit_error" => ErrorKind::RateLimited,
        "overloaded_error" => ErrorKind::Overloaded,
        _ => ErrorKind::Api,
    }
}

fn event(out: &mut String, data: &Value) {
    let kind = data["type"].as_str().unwrap_or("error");
    out.push_str("event: ");
    out.push_str(kind);
    out.push_str("\ndata: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}

/// Reads Anthropic's streamed events into common events.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Our block number for each upstream block index (thinking blocks have none).
    blocks: HashMap<u64, usize>,
    next_block: usize,
    stop: Option<StopReason>,
    usage: Usage,
    saw_usage: bool,
    finished: bool,
}

/// A `content_block_delta`, the event that makes up most of a stream, read without building
/// a document.
#[derive(serde::Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<DeltaBody<'a>>,
}

#[derive(serde::Deserialize)]
struct DeltaBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<std::borrow::Cow<'a, str>>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Option<()> {
        if let Ok(fast) = serde_json::from_slice::<BlockDelta<'_>>(data)
            && fast.kind == "content_block_delta"
        {
            let Some(&index) = self.blocks.get(&fast.index?) else {
                return Some(());
            };
            let delta = fast.delta?;
            match delta.kind.as_ref() {
                "text_delta" => out.push(StreamEvent::Text {
                    index,
                    text: delta.text?.into_owned(),
                }),
                "input_json_delta" => {
                    let json = delta.partial_json?;
                    if !json.is_empty() {
                        out.push(StreamEvent::ToolArguments {
                            index,
                            json: json.into_owned(),
                        });
                    }
                }
                _ => {}
            }
            return Some(());
        }
        let event: Obj = serde_json::from_slice(data).ok()?;
        match event.get("type")?.as_str()? {
            "message_start" => {
                let message = event.get("message")?;
                if let Some(usage) = message.get("usage") {
                    self.usage = decode_usage(usage);
                    self.saw_usage = true;
                }
                out.push(StreamEvent::Start {
                    id: owned_str(message.get("id")),
                    model: owned_str(message.get("model")),
                    input_tokens: self.saw_usage.then_some(self.usage.input),
                });
            }
            // The fast path above could not read it: malformed.
            "content_block_delta" => return None,
            "content_block_start" => {
                let upstream = event.get("index")?.as_u64()?;
                let block = event.get("content_block")?;
                // Blocks come one at a time; a start before the last one's stop closes it.
                let mut open: Vec<usize> = self.blocks.drain().map(|(_, index)| index).collect();
                open.sort_unstable();
                out.extend(
                    open.into_iter()
                        .map(|index| StreamEvent::BlockStop { index }),
                );
                let index = self.next_block;
                match block.get("type")?.as_str()? {
                    "text" => {
                        out.push(StreamEvent::TextStart { index });
                        if let Some(text) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(StreamEvent::Text {
                                index,
                                text: text.to_owned(),
                            });
                        }
                    }
                    "tool_use" => {
                        out.push(StreamEvent::ToolStart {
                            index,
                            id: block.get("id")?.as_str()?.to_owned(),
                            name: block.get("name")?.as_str()?.to_owned(),
                        });
                        if let Some(input) = block
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        {
                            out.push(StreamEvent::ToolArguments {
                                index,
                                json: input.to_string(),
                            });
                        }
                    }
                    _ => return Some(()),
                }
                self.next_block += 1;
                self.blocks.insert(upstream, index);
            }
            "content_block_stop" => {
                if let Some(index) = self.blocks.remove(&event.get("index")?.as_u64()?) {
                    out.push(StreamEvent::BlockStop { index });
                }
            }
            "message_delta" => {
                if let Some(delta) = event.get("delta")
                    && let Some(reason) = delta.get("stop_reason").and_then(Value::as_str)
                {
                    self.stop = Some(stop_reason(
                        reason,
                        delta.get("stop_sequence").and_then(Value::as_str),
                    ));
                }
                if let Some(usage) = event.get("usage") {
                    let update = decode_usage(usage);
                    self.saw_usage = true;
                    self.usage.output = update.output;
                    // Newer versions repeat the input counts here; older ones send zeros.
                    if update.input > 0 {
                        self.usage.input = update.input;
                        self.usage.cache_read = update.cache_read;
                        self.usage.cache_write = update.cache_write;
                    }
                }
            }
            "message_stop" => {
                self.finished = true;
                for index in self
                    .blocks
                    .drain()
                    .map(|(_, index)| index)
                    .collect::<Vec<_>>()
                {
                    out.push(StreamEvent::BlockStop { index });
                }
                out.push(StreamEvent::Finish {
                    stop: self.stop.take(),
                    usage: self.saw_usage.then_some(self.usage),
                });
                out.push(StreamEvent::End);
            }
            "error" => {
                let error = event.get("error");
                out.push(StreamEvent::Error(UpstreamError {
                    kind: error_kind(
                        error
                            .and_then(|e| e.get("type"))
                            .and_then(Value::as_str)
                            .unwrap_or("api_error"),
                    ),
                    message: error
                        .and_then(|e| e.get("message"))
                        .and_then(Value::as_str)
                        .unwrap_or("the upstream reported an error")
                        .to_owned(),
                }));
            }
            _ => {}
        }
        Some(())
    }

    /// The upstream's body ended: complete only after `message_stop`.
    pub fn end(&mut self, _out: &mut Vec<StreamEvent>) -> bool {
        self.finished
    }
}

/// Writes common events as Anthropic's streamed events.
#[derive(Debug, Default)]
pub struct Encoder {
    /// Blocks started and not yet stopped.
    open: Vec<usize>,
    input_tokens: Option<u64>,
}

impl Encoder {
    pub fn encode(&mut self, event: &StreamEvent, out: &mut String) {
        match event {
            StreamEvent::Start {
                id,
                model,
                input_tokens,
            } => {
                self.input_tokens = *input_tokens;
                let data = json!({
                    "type": "message_start",
                    "message": {
                        "id": message_id(id),
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": null,
                        "stop_sequence": null,
                        "usage": {"input_tokens": input_tokens.unwrap_or(0), "output_tokens": 0},
                    },
                });
                self::event(out, &data);
            }
            StreamEvent::TextStart { index } => {
                self.open.push(*index);
                self::event(
                    out,
                    &json!({
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }),
                );
            }
            StreamEvent::Text { index, text } => {
                self::event(
                    out,
                    &json!({
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": text},
                    }),
                );
            }
            StreamEvent::ToolStart { index, id, name } => {
                self.open.push(*index);
                self::event(
                    out,
                    &json!({
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}},
                    }),
                );
            }
            StreamEvent::ToolArguments { index, json } => {
                self::event(
                    out,
                    &json!({
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": json},
                    }),
                );
            }
            StreamEvent::BlockStop { index } => {
                if let Some(at) = self.open.iter().position(|i| i == index) {
                    self.open.remove(at);
                    self::event(out, &json!({"type": "content_block_stop", "index": index}));
                }
            }
            StreamEvent::Finish { stop, usage } => {
                for index in std::mem::take(&mut self.open) {
                    self::event(out, &json!({"type": "content_block_stop", "index": index}));
                }
                let (stop_reason, stop_sequence) = encode_stop(stop.as_ref());
                let mut usage = usage.unwrap_or_default();
                if usage.input == 0 {
                    usage.input = self.input_tokens.unwrap_or(0);
                }
                self::event(
                    out,
                    &json!({
                        "type": "message_delta",
                        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                        "usage": usage_value(&usage),
                    }),
                );
            }
            StreamEvent::Error(error) => {
                let error = ClientError::upstream(error, "upstream_error");
                out.push_str(&ClientFormat::Anthropic.error_event(&error));
            }
            StreamEvent::End => self::event(out, &json!({"type": "message_stop"})),
        }
    }
}
