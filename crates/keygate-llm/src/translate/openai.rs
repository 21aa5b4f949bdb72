//! OpenAI's Chat Completions format: requests in, requests out, whole answers, streamed
//! `chat.completion.chunk` events and error bodies.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::ir::{
    ChatRequest, ChatResponse, ErrorKind, Image, Message, Part, Role, StopReason, StreamEvent,
    Tool, ToolCall, ToolChoice, ToolResult, UpstreamError, Usage,
};
use super::value::{
    Obj, as_array, as_bool, as_f64, as_object, as_str, as_u64, data_url, get, object, owned_str,
    required_str,
};
use super::{Format, TargetOptions, TranslateError, field_name};
use crate::client::{ClientError, ClientFormat};

/// Fields accepted only with a value that asks for nothing another format lacks.
fn default_only(key: &str, value: &Value) -> bool {
    match key {
        "n" => value.as_u64() == Some(1),
        "logprobs" | "store" => value.as_bool() == Some(false),
        "service_tier" => value
            .as_str()
            .is_some_and(|s| s == "auto" || s == "default"),
        // Keygate itself reads `stream_options`; it means nothing upstream.
        "stream_options" => true,
        _ => false,
    }
}

/// Reads an OpenAI chat request for a deployment of `target`.
pub fn decode_request(body: &[u8], target: Format) -> Result<ChatRequest, TranslateError> {
    let obj = object(body)?;
    let mut request = ChatRequest {
        source: Some(Format::OpenAi),
        ..ChatRequest::default()
    };
    for (key, value) in &obj {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" => request.model = as_str(value, "model")?.to_owned(),
            "messages" => {}
            "stream" => request.stream = as_bool(value, "stream")?,
            "max_tokens" | "max_completion_tokens" => {
                request.max_tokens = Some(as_u64(value, key)?);
            }
            "temperature" => request.temperature = Some(as_f64(value, key)?),
            "top_p" => request.top_p = Some(as_f64(value, key)?),
            "stop" => {
                request.stop = match value {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items) => items
                        .iter()
                        .map(|item| as_str(item, "stop").map(str::to_owned))
                        .collect::<Result<_, _>>()?,
                    _ => return Err(TranslateError::invalid("stop", "a string or an array")),
                }
            }
            "tools" => request.tools = decode_tools(value, target)?,
            "tool_choice" => request.tool_choice = Some(decode_tool_choice(value)?),
            "parallel_tool_calls" => request.parallel_tool_calls = Some(as_bool(value, key)?),
            "user" => request.user = Some(as_str(value, key)?.to_owned()),
            "seed" => {
                request.seed = Some(
                    value
                        .as_i64()
                        .ok_or_else(|| TranslateError::invalid("seed", "must be an integer"))?,
                );
            }
            "presence_penalty" => request.presence_penalty = Some(as_f64(value, key)?),
            "frequency_penalty" => request.frequency_penalty = Some(as_f64(value, key)?),
            "response_format" => {
                let format = as_object(value, key)?;
                match get(format, "type").and_then(Value::as_str) {
                    Some("text") => {}
                    Some("json_object") => request.json_output = true,
                    _ => return Err(TranslateError::unsupported("response_format.type", target)),
                }
            }
            other if default_only(other, value) => {}
            other => return Err(TranslateError::unsupported(other, target)),
        }
    }
    let messages =
        get(&obj, "messages").ok_or_else(|| TranslateError::invalid("messages", "required"))?;
    decode_messages(as_array(messages, "messages")?, &mut request, target)?;
    Ok(request)
}

fn decode_tools(value: &Value, target: Format) -> Result<Vec<Tool>, TranslateError> {
    as_array(value, "tools")?
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let at = format!("tools[{i}]");
            let tool = as_object(tool, &at)?;
            if required_str(tool, "type", &at)? != "function" {
                return Err(TranslateError::invalid(
                    format!("{at}.type"),
                    "must be `function`",
                ));
            }
            let function = as_object(
                tool.get("function")
                    .ok_or_else(|| TranslateError::invalid(format!("{at}.function"), "required"))?,
                &format!("{at}.function"),
            )?;
            let at = format!("{at}.function");
            for (key, value) in function {
                match key.as_str() {
                    "name" | "description" | "parameters" => {}
                    // Strict schema adherence is a promise other providers do not make.
                    "strict" if value.as_bool() != Some(true) => {}
                    "strict" => {
                        return Err(TranslateError::unsupported(format!("{at}.strict"), target));
                    }
                    _ => {
                        return Err(TranslateError::invalid(
                            format!("{at}.{key}"),
                            "unknown field",
                        ));
                    }
                }
            }
            Ok(Tool {
                name: required_str(function, "name", &at)?.to_owned(),
                description: get(function, "description")
                    .map(|d| as_str(d, &format!("{at}.description")).map(str::to_owned))
                    .transpose()?,
                parameters: get(function, "parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
        })
        .collect()
}

fn decode_tool_choice(value: &Value) -> Result<ToolChoice, TranslateError> {
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(TranslateError::invalid(
                "tool_choice",
                "auto, none, required or a function",
            )),
        },
        Value::Object(choice) => {
            let function = get(choice, "function")
                .ok_or_else(|| TranslateError::invalid("tool_choice.function", "required"))?;
            let function = as_object(function, "tool_choice.function")?;
            Ok(ToolChoice::Named(
                required_str(function, "name", "tool_choice.function")?.to_owned(),
            ))
        }
        _ => Err(TranslateError::invalid(
            "tool_choice",
            "a string or an object",
        )),
    }
}

/// Adds `part` to the conversation, joining consecutive turns of one role (tool results and
/// the user's next words are one user turn for Anthropic and Gemini).
fn push(messages: &mut Vec<Message>, role: Role, part: Part) {
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.push(part),
        _ => messages.push(Message {
            role,
            content: vec![part],
        }),
    }
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
        let role = required_str(message, "role", &at)?;
        for key in message.keys() {
            let known = match key.as_str() {
                "role" | "content" => true,
                "tool_calls" | "refusal" => role == "assistant",
                "tool_call_id" => role == "tool",
                _ => false,
            };
            if !known && get(message, key).is_some() {
                return Err(TranslateError::unsupported(format!("{at}.{key}"), target));
            }
        }
        let content = get(message, "content");
        match role {
            "system" | "developer" => {
                if !request.messages.is_empty() {
                    return Err(TranslateError::unsupported_use(
                        format!("{at}.role"),
                        format!("a {role} message after the conversation began"),
                        target,
                    ));
                }
                let content = content
                    .ok_or_else(|| TranslateError::invalid(format!("{at}.content"), "required"))?;
                request
                    .system
                    .push(text_only(content, &format!("{at}.content"))?);
            }
            "user" => {
                let content = content
                    .ok_or_else(|| TranslateError::invalid(format!("{at}.content"), "required"))?;
                for part in decode_content(content, &format!("{at}.content"), target)? {
                    push(&mut request.messages, Role::User, part);
                }
            }
            "assistant" => {
                let mut parts = Vec::new();
                if let Some(content) = content {
                    let text = text_only(content, &format!("{at}.content"))?;
                    if !text.is_empty() {
                        parts.push(Part::Text(text));
                    }
                }
                // A refusal the model gave earlier is what it said.
                if let Some(refusal) = get(message, "refusal") {
                    let refusal = as_str(refusal, &format!("{at}.refusal"))?;
                    if !refusal.is_empty() {
                        parts.push(Part::Text(refusal.to_owned()));
                    }
                }
                if let Some(calls) = get(message, "tool_calls") {
                    for (j, call) in as_array(calls, &format!("{at}.tool_calls"))?
                        .iter()
                        .enumerate()
                    {
                        let at = format!("{at}.tool_calls[{j}]");
                        let call = as_object(call, &at)?;
                        let function = as_object(
                            call.get("function").ok_or_else(|| {
                                TranslateError::invalid(format!("{at}.function"), "required")
                            })?,
                            &format!("{at}.function"),
                        )?;
                        let id = required_str(call, "id", &at)?.to_owned();
                        let name = required_str(function, "name", &format!("{at}.function"))?;
                        let arguments =
                            required_str(function, "arguments", &format!("{at}.function"))?;
                        call_names.insert(id.clone(), name.to_owned());
                        parts.push(Part::ToolCall(ToolCall {
                            id,
                            name: name.to_owned(),
                            arguments: arguments.to_owned(),
                        }));
                    }
                }
                if parts.is_empty() {
                    return Err(TranslateError::invalid(
                        at,
                        "an assistant message needs content or tool calls",
                    ));
                }
                for part in parts {
                    push(&mut request.messages, Role::Assistant, part);
                }
            }
            "tool" => {
                let call_id = required_str(message, "tool_call_id", &at)?.to_owned();
                let content = content
                    .ok_or_else(|| TranslateError::invalid(format!("{at}.content"), "required"))?;
                let content = decode_content(content, &format!("{at}.content"), target)?;
                push(
                    &mut request.messages,
                    Role::User,
                    Part::ToolResult(ToolResult {
                        name: call_names.get(&call_id).cloned(),
                        call_id,
                        content,
                        is_error: false,
                    }),
                );
            }
            "function" => return Err(TranslateError::unsupported(format!("{at}.role"), target)),
            _ => {
                return Err(TranslateError::invalid(
                    format!("{at}.role"),
                    "unknown role",
                ));
            }
        }
    }
    Ok(())
}

/// Content that may only be text: a string, or an array of text parts.
fn text_only(content: &Value, at: &str) -> Result<String, TranslateError> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                let at = format!("{at}[{i}]");
                let part = as_object(part, &at)?;
                match required_str(part, "type", &at)? {
                    "text" => text.push_str(required_str(part, "text", &at)?),
                    "refusal" => text.push_str(required_str(part, "refusal", &at)?),
                    _ => {
                        return Err(TranslateError::invalid(
                            format!("{at}.type"),
                            "only text here",
                        ));
                    }
                }
            }
            Ok(text)
        }
        _ => Err(TranslateError::invalid(at, "a string or an array of parts")),
    }
}

fn decode_content(content: &Value, at: &str, target: Format) -> Result<Vec<Part>, TranslateError> {
    match content {
        Value::String(text) => Ok(vec![Part::Text(text.clone())]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let at = format!("{at}[{i}]");
                let part = as_object(part, &at)?;
                match required_str(part, "type", &at)? {
                    "text" => Ok(Part::Text(required_str(part, "text", &at)?.to_owned())),
                    "image_url" => {
                        let image = as_object(
                            part.get("image_url").ok_or_else(|| {
                                TranslateError::invalid(format!("{at}.image_url"), "required")
                            })?,
                            &format!("{at}.image_url"),
                        )?;
                        let url = required_str(image, "url", &format!("{at}.image_url"))?;
                        if let Some(detail) = get(image, "detail").and_then(Value::as_str)
                            && detail != "auto"
                        {
                            return Err(TranslateError::unsupported(
                                format!("{at}.image_url.detail"),
                                target,
                            ));
                        }
                        Ok(Part::Image(image_from_url(url)))
                    }
                    other => Err(TranslateError::unsupported_use(
                        format!("{at}.type"),
                        format!("`{other}` content"),
                        target,
                    )),
                }
            })
            .collect(),
        _ => Err(TranslateError::invalid(at, "a string or an array of parts")),
    }
}

fn image_from_url(url: &str) -> Image {
    match data_url(url) {
        Some((media_type, data)) => Image::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        },
        None => Image::Url(url.to_owned()),
    }
}

fn image_url(image: &Image) -> String {
    match image {
        Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        Image::Url(url) => url.clone(),
    }
}

/// Writes a request for an OpenAI-compatible deployment serving `model`.
pub fn encode_request(
    request: &ChatRequest,
    model: &str,
    options: &TargetOptions,
) -> Result<Value, TranslateError> {
    let target = Format::OpenAi;
    let source = request.source.unwrap_or(target);
    if request.top_k.is_some() {
        return Err(TranslateError::unsupported(
            field_name(source, "top_k"),
            target,
        ));
    }
    if request.thinking_budget.is_some() {
        return Err(TranslateError::unsupported(
            field_name(source, "thinking"),
            target,
        ));
    }
    let mut messages = Vec::new();
    for system in &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for (i, message) in request.messages.iter().enumerate() {
        match message.role {
            Role::Assistant => {
                let (text, calls) = text_and_calls(&message.content);
                let mut out = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
                if !calls.is_empty() {
                    out["tool_calls"] = Value::Array(calls);
                }
                messages.push(out);
            }
            Role::User => {
                // Tool results become `tool` messages, in place; the rest user messages.
                let mut pending: Vec<Value> = Vec::new();
                for part in &message.content {
                    match part {
                        Part::ToolResult(result) => {
                            flush_user(&mut messages, &mut pending);
                            let mut text = String::new();
                            for item in &result.content {
                                match item {
                                    Part::Text(t) => text.push_str(t),
                                    _ => {
                                        return Err(TranslateError::unsupported_use(
                                            format!("messages[{i}].content"),
                                            "an image in a tool result",
                                            target,
                                        ));
                                    }
                                }
                            }
                            // OpenAI's tool messages have no error flag: the text says it.
                            if result.is_error {
                                text.insert_str(0, "Error: ");
                            }
                            messages.push(json!({
                                "role": "tool",
                                "tool_call_id": result.call_id,
                                "content": text,
                            }));
                        }
                        Part::Text(text) => pending.push(json!({"type": "text", "text": text})),
                        Part::Image(image) => pending.push(json!({
                            "type": "image_url",
                            "image_url": {"url": image_url(image)},
                        })),
                        Part::ToolCall(_) => {
                            return Err(TranslateError::invalid(
                                "messages",
                                "a tool call in a user turn",
                            ));
                        }
                    }
                }
                flush_user(&mut messages, &mut pending);
            }
        }
    }
    let mut body = Obj::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), messages.into());
    if let Some(max) = request.max_tokens {
        let name = if options.max_completion_tokens {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body.insert(name.into(), max.into());
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), p.into());
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), json!(request.stop));
    }
    if request.stream {
        body.insert("stream".into(), true.into());
        if options.stream_usage {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut function = json!({"name": tool.name, "parameters": tool.parameters});
                if let Some(description) = &tool.description {
                    function["description"] = description.clone().into();
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    if let Some(choice) = &request.tool_choice {
        body.insert(
            "tool_choice".into(),
            match choice {
                ToolChoice::Auto => "auto".into(),
                ToolChoice::None => "none".into(),
                ToolChoice::Required => "required".into(),
                ToolChoice::Named(name) => json!({"type": "function", "function": {"name": name}}),
            },
        );
    }
    if let Some(parallel) = request.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), parallel.into());
    }
    if let Some(user) = &request.user {
        body.insert("user".into(), user.clone().into());
    }
    if let Some(seed) = request.seed {
        body.insert("seed".into(), seed.into());
    }
    if let Some(p) = request.presence_penalty {
        body.insert("presence_penalty".into(), p.into());
    }
    if let Some(p) = request.frequency_penalty {
        body.insert("frequency_penalty".into(), p.into());
    }
    if request.json_output {
        body.insert("response_format".into(), json!({"type": "json_object"}));
    }
    Ok(Value::Object(body))
}

fn flush_user(messages: &mut Vec<Value>, pending: &mut Vec<Value>) {
    if pending.is_empty() {
        return;
    }
    let parts = std::mem::take(pending);
    let only_text = parts.len() == 1 && parts[0]["type"] == "text";
    let content = if only_text {
        parts[0]["text"].clone()
    } else {
        Value::Array(parts)
    };
    messages.push(json!({"role": "user", "content": content}));
}

fn finish_reason(stop: Option<&StopReason>) -> Value {
    match stop {
        None => Value::Null,
        Some(StopReason::EndTurn | StopReason::StopSequence(_)) => "stop".into(),
        Some(StopReason::MaxTokens) => "length".into(),
        Some(StopReason::ToolUse) => "tool_calls".into(),
        Some(StopReason::ContentFilter | StopReason::Refusal) => "content_filter".into(),
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

fn usage_value(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input.saturating_add(usage.output),
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
    })
}

fn decode_usage(value: &Value) -> Option<Usage> {
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

fn created() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An assistant turn's text, joined, and its tool calls in OpenAI's shape.
fn text_and_calls(content: &[Part]) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in content {
        match part {
            Part::Text(piece) => text.push_str(piece),
            Part::ToolCall(call) => calls.push(json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            })),
            _ => {}
        }
    }
    (text, calls)
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

/// The message of an OpenAI error body.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(value.get("error")?.get("message")?.as_str()?.to_owned())
}

/// Reads a stream of `chat.completion.chunk` events into common events.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    /// The open block: its number, and the tool call's index when it is one.
    open: Option<(usize, Option<u64>)>,
    next_block: usize,
    /// The open tool call's id.
    open_id: Option<String>,
    /// Calls sent without an index, numbered apart from the indexed ones.
    unindexed: u64,
    /// Whether the model refused (OpenAI streams a refusal as `delta.refusal`).
    refused: bool,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    finished: bool,
}

impl Decoder {
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        self.open_id = None;
        if let Some((index, _)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index });
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.close(out);
        let stop = if self.refused {
            Some(StopReason::Refusal)
        } else {
            self.stop.take()
        };
        out.push(StreamEvent::Finish {
            stop,
            usage: self.usage.take(),
        });
        out.push(StreamEvent::End);
    }

    /// One event's data.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Option<()> {
        if data == b"[DONE]" {
            self.finish(out);
            return Some(());
        }
        let chunk: Obj = serde_json::from_slice(data).ok()?;
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the upstream reported an error")
                .to_owned();
            out.push(StreamEvent::Error(UpstreamError {
                kind: ErrorKind::Api,
                message,
            }));
            return Some(());
        }
        if let Some(usage) = chunk
            .get("usage")
            .or_else(|| chunk.get("x_groq").and_then(|g| g.get("usage")))
            .and_then(decode_usage)
        {
            self.usage = Some(usage);
        }
        let id = chunk.get("id").and_then(Value::as_str).unwrap_or_default();
        let has_choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        // Azure sends its prompt filter results first, in a chunk without an id or choices:
        // the answer starts with the next one.
        if !self.started && (has_choices || !id.is_empty()) {
            self.started = true;
            out.push(StreamEvent::Start {
                id: id.to_owned(),
                model: owned_str(chunk.get("model")),
                input_tokens: None,
            });
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Some(());
        };
        if let Some(delta) = choice.get("delta").and_then(Value::as_object) {
            let content = delta.get("content").and_then(Value::as_str);
            let refusal = delta.get("refusal").and_then(Value::as_str);
            self.refused |= refusal.is_some_and(|r| !r.is_empty());
            if let Some(text) = content.or(refusal).filter(|t| !t.is_empty()) {
                let index = match self.open {
                    Some((index, None)) => index,
                    _ => {
                        self.close(out);
                        let index = self.next_block;
                        self.next_block += 1;
                        self.open = Some((index, None));
                        out.push(StreamEvent::TextStart { index });
                        index
                    }
                };
                out.push(StreamEvent::Text {
                    index,
                    text: text.to_owned(),
                });
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty());
                let tool = match call.get("index").and_then(Value::as_u64) {
                    Some(tool) => tool,
                    // Without an index, a delta without an id continues the open call.
                    None => match (id, self.open) {
                        (None, Some((_, Some(open)))) => open,
                        _ => {
                            self.unindexed += 1;
                            u64::MAX - self.unindexed
                        }
                    },
                };
                let function = call.get("function");
                let continues = matches!(self.open, Some((_, Some(open))) if open == tool)
                    && id.is_none_or(|id| self.open_id.as_deref() == Some(id));
                let index = match self.open {
                    Some((index, _)) if continues => index,
                    _ => {
                        // A new call comes with its id; a delta without one for a call
                        // already closed is interleaved, which the formats that stream one
                        // block at a time cannot say.
                        let id = id?;
                        let name = function?.get("name").and_then(Value::as_str)?;
                        self.close(out);
                        let index = self.next_block;
                        self.next_block += 1;
                        self.open = Some((index, Some(tool)));
                        self.open_id = Some(id.to_owned());
                        out.push(StreamEvent::ToolStart {
                            index,
                            id: id.to_owned(),
                            name: name.to_owned(),
                        });
                        index
                    }
                };
                if let Some(arguments) = function
                    .and_then(|f| f.get("arguments"))
                    .and_then(Value::as_str)
                    .filter(|a| !a.is_empty())
                {
                    out.push(StreamEvent::ToolArguments {
                        index,
                        json: arguments.to_owned(),
                    });
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop = Some(stop_reason(reason));
            self.close(out);
        }
        Some(())
    }

    /// The upstream's body ended: complete only after `[DONE]`.
    pub fn end(&mut self, _out: &mut Vec<StreamEvent>) -> bool {
        self.finished
    }
}

/// Writes common events as `chat.completion.chunk` events.
#[derive(Debug)]
pub struct Encoder {
    /// Everything of a chunk before its delta, written once the stream's id is known.
    prefix: String,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// Tool call numbers by block.
    tools: HashMap<usize, u64>,
    next_tool: u64,
    input_tokens: Option<u64>,
}

/// A JSON string literal.
fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

impl Encoder {
    pub fn new(include_usage: bool) -> Self {
        let mut encoder = Self {
            prefix: String::new(),
            id: String::new(),
            model: String::new(),
            created: created(),
            include_usage,
            tools: HashMap::new(),
            next_tool: 0,
            input_tokens: None,
        };
        // Events before a start (from a stream that never sent one) still make whole chunks.
        encoder.set_prefix();
        encoder
    }

    fn set_prefix(&mut self) {
        self.prefix = format!(
            r#"data: {{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":[{{"index":0,"delta":"#,
            quoted(&self.id),
            self.created,
            quoted(&self.model),
        );
    }

    /// Appends a chunk with `delta` (JSON text) and `finish` (JSON text).
    fn chunk(&self, out: &mut String, delta: &str, finish: &str) {
        out.push_str(&self.prefix);
        out.push_str(delta);
        out.push_str(r#","logprobs":null,"finish_reason":"#);
        out.push_str(finish);
        out.push_str("}]}\n\n");
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut String) {
        match event {
            StreamEvent::Start {
                id,
                model,
                input_tokens,
            } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.input_tokens = *input_tokens;
                self.set_prefix();
                self.chunk(out, r#"{"role":"assistant","content":""}"#, "null");
            }
            StreamEvent::TextStart { .. } | StreamEvent::BlockStop { .. } => {}
            StreamEvent::Text { text, .. } => {
                self.chunk(out, &format!(r#"{{"content":{}}}"#, quoted(text)), "null");
            }
            StreamEvent::ToolStart { index, id, name } => {
                let tool = self.next_tool;
                self.next_tool += 1;
                self.tools.insert(*index, tool);
                let delta = json!({"tool_calls": [{
                    "index": tool, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]});
                self.chunk(out, &delta.to_string(), "null");
            }
            StreamEvent::ToolArguments { index, json } => {
                let tool = self.tools.get(index).copied().unwrap_or(0);
                let delta = format!(
                    r#"{{"tool_calls":[{{"index":{tool},"function":{{"arguments":{}}}}}]}}"#,
                    quoted(json)
                );
                self.chunk(out, &delta, "null");
            }
            StreamEvent::Finish { stop, usage } => {
                self.chunk(out, "{}", &finish_reason(stop.as_ref()).to_string());
                // Usage the upstream did not report is left out, not reported as zero.
                if let Some(mut usage) = usage.filter(|_| self.include_usage) {
                    if usage.input == 0 {
                        usage.input = self.input_tokens.unwrap_or(0);
                    }
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage_value(&usage),
                    });
                    out.push_str(&format!("data: {chunk}\n\n"));
                }
            }
            StreamEvent::Error(error) => {
                let error = ClientError::upstream(error, "upstream_error");
                out.push_str(&ClientFormat::OpenAi.error_event(&error));
            }
            StreamEvent::End => out.push_str("data: [DONE]\n\n"),
        }
    }
}
