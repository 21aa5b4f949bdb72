//! OpenAI chat requests: read into the common form, checked field by field against what the
//! target can say, and written from it for an OpenAI-compatible deployment.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::text_and_calls;
use crate::translate::ir::{
    ChatRequest, Effort, Image, Message, Part, Role, Tool, ToolCall, ToolChoice, ToolResult,
};
use crate::translate::value::{
    Obj, as_array, as_bool, as_f64, as_object, as_str, as_u64, data_url, get, object, required_str,
};
use crate::translate::{Format, TargetOptions, TranslateError, field_name, reasoning_effort};

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

/// Reads an OpenAI chat request into the common form, whatever its target.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, TranslateError> {
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
            "tools" => request.tools = decode_tools(value)?,
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
                    _ => return Err(TranslateError::untranslatable("response_format.type")),
                }
            }
            other if default_only(other, value) => {}
            other => return Err(TranslateError::untranslatable(other)),
        }
    }
    let messages =
        get(&obj, "messages").ok_or_else(|| TranslateError::invalid("messages", "required"))?;
    decode_messages(as_array(messages, "messages")?, &mut request)?;
    Ok(request)
}

fn decode_tools(value: &Value) -> Result<Vec<Tool>, TranslateError> {
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
                        return Err(TranslateError::untranslatable(format!("{at}.strict")));
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

fn decode_messages(items: &[Value], request: &mut ChatRequest) -> Result<(), TranslateError> {
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
                return Err(TranslateError::untranslatable(format!("{at}.{key}")));
            }
        }
        let content = get(message, "content");
        match role {
            "system" | "developer" => {
                if !request.messages.is_empty() {
                    return Err(TranslateError::untranslatable_use(
                        format!("{at}.role"),
                        format!("a {role} message after the conversation began"),
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
                for part in decode_content(content, &format!("{at}.content"))? {
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
                let content = decode_content(content, &format!("{at}.content"))?;
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
            "function" => return Err(TranslateError::untranslatable(format!("{at}.role"))),
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

fn decode_content(content: &Value, at: &str) -> Result<Vec<Part>, TranslateError> {
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
                            return Err(TranslateError::untranslatable(format!(
                                "{at}.image_url.detail"
                            )));
                        }
                        Ok(Part::Image(image_from_url(url)))
                    }
                    other => Err(TranslateError::untranslatable_use(
                        format!("{at}.type"),
                        format!("`{other}` content"),
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
    let effort = reasoning_effort(request, options, target)?;
    let mut messages = Vec::new();
    for system in &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for (i, message) in request.messages.iter().enumerate() {
        match message.role {
            Role::System => {
                let (text, _) = text_and_calls(&message.content);
                messages.push(json!({"role": "system", "content": text}));
            }
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
    if let Some(effort) = effort {
        let effort = match effort {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High | Effort::Max => "high",
        };
        body.insert("reasoning_effort".into(), effort.into());
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
