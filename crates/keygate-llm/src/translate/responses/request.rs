//! Responses API requests: read into the common form (instructions, input items, function
//! tools, reasoning settings), and written from it.

use std::collections::HashMap;

use serde_json::{Value, json};

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
        "background" => value.as_bool() == Some(false),
        "top_logprobs" => value.as_u64() == Some(0),
        "truncation" => value.as_str() == Some("disabled"),
        "service_tier" => value
            .as_str()
            .is_some_and(|s| s == "auto" || s == "default"),
        // Whether OpenAI keeps the response: keygate's own store answers for it (or not).
        "store" => value.is_boolean(),
        // Keygate reads these itself; they mean nothing upstream.
        "stream_options" => true,
        _ => false,
    }
}

/// Fields whose absence changes no answer's meaning: left out (and named, so a strict group
/// can refuse them). `metadata` labels a stored response; the cache key and retention steer
/// OpenAI's prompt cache; `include` asks for extra detail (encrypted reasoning) alongside.
fn is_hint(key: &str, value: &Value) -> bool {
    match key {
        // `client_metadata` labels the request for the client's own telemetry (the Codex CLI).
        "metadata" | "client_metadata" | "prompt_cache_key" | "prompt_cache_retention" => true,
        "include" => value.as_array().is_some_and(|items| {
            items
                .iter()
                .all(|item| item.as_str() == Some("reasoning.encrypted_content"))
        }),
        "truncation" => value.as_str() == Some("auto"),
        _ => false,
    }
}

/// Reads a Responses request into the common form, whatever its target.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, TranslateError> {
    let obj = object(body)?;
    let mut request = ChatRequest {
        source: Some(Format::Responses),
        ..ChatRequest::default()
    };
    for (key, value) in &obj {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" => request.model = as_str(value, "model")?.to_owned(),
            "input" => {}
            "instructions" => request.system.push(as_str(value, key)?.to_owned()),
            "stream" => request.stream = as_bool(value, "stream")?,
            "max_output_tokens" => request.max_tokens = Some(as_u64(value, key)?),
            "temperature" => request.temperature = Some(as_f64(value, key)?),
            "top_p" => request.top_p = Some(as_f64(value, key)?),
            "tools" => decode_tools(value, &mut request)?,
            "tool_choice" => request.tool_choice = Some(decode_tool_choice(value)?),
            "parallel_tool_calls" => request.parallel_tool_calls = Some(as_bool(value, key)?),
            "user" | "safety_identifier" => request.user = Some(as_str(value, key)?.to_owned()),
            "reasoning" => {
                let reasoning = as_object(value, key)?;
                for (name, setting) in reasoning {
                    match (name.as_str(), setting) {
                        (_, Value::Null) => {}
                        ("effort", Value::String(effort)) if effort == "none" => {}
                        ("effort", Value::String(effort)) => {
                            request.effort = Some(
                                Effort::parse(effort)
                                    .or((effort == "minimal").then_some(Effort::Low))
                                    .ok_or_else(|| {
                                        TranslateError::invalid(
                                            "reasoning.effort",
                                            "none, minimal, low, medium, high or xhigh",
                                        )
                                    })?,
                            );
                        }
                        // A summary of the reasoning is extra detail beside the answer.
                        ("summary" | "generate_summary", _) => {
                            request.hints.push(format!("reasoning.{name}"));
                        }
                        _ => {
                            return Err(TranslateError::untranslatable(format!(
                                "reasoning.{name}"
                            )));
                        }
                    }
                }
            }
            "text" => {
                let text = as_object(value, key)?;
                for (name, setting) in text {
                    match name.as_str() {
                        "format" => {
                            let format = as_object(setting, "text.format")?;
                            match get(format, "type").and_then(Value::as_str) {
                                Some("text") => {}
                                Some("json_object") => request.json_output = true,
                                _ => {
                                    return Err(TranslateError::untranslatable("text.format.type"));
                                }
                            }
                        }
                        // How long an answer runs, not what it says: a hint.
                        "verbosity" => request.hints.push("text.verbosity".to_owned()),
                        other => {
                            return Err(TranslateError::untranslatable(format!("text.{other}")));
                        }
                    }
                }
            }
            "previous_response_id" => {
                return Err(TranslateError::untranslatable_use(
                    "previous_response_id",
                    "a response stored by the provider; send the conversation as `input`",
                ));
            }
            other if default_only(other, value) => {}
            other if is_hint(other, value) => request.hints.push(other.to_owned()),
            other => return Err(TranslateError::untranslatable(other)),
        }
    }
    let input = get(&obj, "input").ok_or_else(|| TranslateError::invalid("input", "required"))?;
    decode_input(input, &mut request)?;
    Ok(request)
}

/// The function tools; tools the common form cannot hold — OpenAI's hosted tools (web
/// search, file search, code interpreter…) and tool namespaces — are offers the model may
/// leave unused: left out as hints, unless `tool_choice` asks for one of them.
fn decode_tools(value: &Value, request: &mut ChatRequest) -> Result<(), TranslateError> {
    let mut tools = Vec::new();
    for (i, tool) in as_array(value, "tools")?.iter().enumerate() {
        let at = format!("tools[{i}]");
        let object = as_object(tool, &at)?;
        let kind = required_str(object, "type", &at)?;
        if kind == "function" {
            tools.push(decode_function(object, &at)?);
        } else {
            request.hints.push(format!("{at}.type"));
        }
    }
    request.tools = tools;
    Ok(())
}

fn decode_function(tool: &Obj, at: &str) -> Result<Tool, TranslateError> {
    for (key, value) in tool {
        match key.as_str() {
            "type" | "name" | "description" | "parameters" => {}
            // Strict schema adherence is a promise other providers do not make.
            "strict" if value.as_bool() != Some(true) => {}
            "strict" => return Err(TranslateError::untranslatable(format!("{at}.strict"))),
            _ => {
                return Err(TranslateError::invalid(
                    format!("{at}.{key}"),
                    "unknown field",
                ));
            }
        }
    }
    Ok(Tool {
        name: required_str(tool, "name", at)?.to_owned(),
        description: get(tool, "description")
            .map(|d| as_str(d, &format!("{at}.description")).map(str::to_owned))
            .transpose()?,
        parameters: get(tool, "parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    })
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
        Value::Object(choice) => match get(choice, "type").and_then(Value::as_str) {
            Some("function") => Ok(ToolChoice::Named(
                required_str(choice, "name", "tool_choice")?.to_owned(),
            )),
            _ => Err(TranslateError::untranslatable("tool_choice.type")),
        },
        _ => Err(TranslateError::invalid(
            "tool_choice",
            "a string or an object",
        )),
    }
}

/// Adds `part` to the conversation, joining consecutive turns of one role.
fn push(messages: &mut Vec<Message>, role: Role, part: Part) {
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.push(part),
        _ => messages.push(Message {
            role,
            content: vec![part],
        }),
    }
}

fn decode_input(input: &Value, request: &mut ChatRequest) -> Result<(), TranslateError> {
    let items = match input {
        Value::String(text) => {
            push(&mut request.messages, Role::User, Part::Text(text.clone()));
            return Ok(());
        }
        Value::Array(items) => items,
        _ => return Err(TranslateError::invalid("input", "a string or an array")),
    };
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        let item = as_object(item, &at)?;
        let kind = match get(item, "type") {
            Some(kind) => as_str(kind, &format!("{at}.type"))?,
            None if item.contains_key("role") => "message",
            None => return Err(TranslateError::invalid(format!("{at}.type"), "required")),
        };
        match kind {
            "message" => decode_message(item, &at, request)?,
            "function_call" => {
                let call_id = required_str(item, "call_id", &at)?.to_owned();
                let name = required_str(item, "name", &at)?.to_owned();
                call_names.insert(call_id.clone(), name.clone());
                push(
                    &mut request.messages,
                    Role::Assistant,
                    Part::ToolCall(ToolCall {
                        id: call_id,
                        name,
                        arguments: required_str(item, "arguments", &at)?.to_owned(),
                    }),
                );
            }
            "function_call_output" => {
                let call_id = required_str(item, "call_id", &at)?.to_owned();
                let output = item
                    .get("output")
                    .ok_or_else(|| TranslateError::invalid(format!("{at}.output"), "required"))?;
                let content = match output {
                    Value::String(text) => vec![Part::Text(text.clone())],
                    _ => decode_parts(output, &format!("{at}.output"), Role::User)?,
                };
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
            // The model's reasoning in an earlier turn: only the model that wrote it reads it.
            "reasoning" => request.hints.push(at),
            "item_reference" => {
                return Err(TranslateError::untranslatable_use(
                    at,
                    "an item stored by the provider",
                ));
            }
            other => {
                return Err(TranslateError::untranslatable_use(
                    format!("{at}.type"),
                    format!("a `{other}` item"),
                ));
            }
        }
    }
    Ok(())
}

fn decode_message(item: &Obj, at: &str, request: &mut ChatRequest) -> Result<(), TranslateError> {
    let role = required_str(item, "role", at)?;
    for key in item.keys() {
        if !matches!(key.as_str(), "type" | "role" | "content" | "id" | "status")
            && get(item, key).is_some()
        {
            return Err(TranslateError::untranslatable(format!("{at}.{key}")));
        }
    }
    let content = item
        .get("content")
        .ok_or_else(|| TranslateError::invalid(format!("{at}.content"), "required"))?;
    let at = format!("{at}.content");
    match role {
        "system" | "developer" => {
            let text = text_of(&decode_parts(content, &at, Role::System)?);
            if request.messages.is_empty() {
                request.system.push(text);
            } else {
                push(&mut request.messages, Role::System, Part::Text(text));
            }
        }
        "user" => {
            for part in decode_parts(content, &at, Role::User)? {
                push(&mut request.messages, Role::User, part);
            }
        }
        "assistant" => {
            for part in decode_parts(content, &at, Role::Assistant)? {
                push(&mut request.messages, Role::Assistant, part);
            }
        }
        _ => {
            return Err(TranslateError::invalid(
                format!("{at}.role"),
                "user, assistant, system or developer",
            ));
        }
    }
    Ok(())
}

fn text_of(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|part| match part {
            Part::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A message's content: a string, or parts — the user's `input_text` and `input_image`, the
/// assistant's `output_text` and `refusal` (what it said earlier).
fn decode_parts(content: &Value, at: &str, role: Role) -> Result<Vec<Part>, TranslateError> {
    let parts = match content {
        Value::String(text) => return Ok(vec![Part::Text(text.clone())]),
        Value::Array(parts) => parts,
        _ => return Err(TranslateError::invalid(at, "a string or an array of parts")),
    };
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let at = format!("{at}[{i}]");
            let part = as_object(part, &at)?;
            match (required_str(part, "type", &at)?, role) {
                ("input_text", Role::User | Role::System)
                | ("output_text", Role::Assistant | Role::System) => {
                    Ok(Part::Text(required_str(part, "text", &at)?.to_owned()))
                }
                ("refusal", Role::Assistant) => {
                    Ok(Part::Text(required_str(part, "refusal", &at)?.to_owned()))
                }
                ("input_image", Role::User) => {
                    if let Some(detail) = get(part, "detail").and_then(Value::as_str)
                        && detail != "auto"
                    {
                        return Err(TranslateError::untranslatable(format!("{at}.detail")));
                    }
                    let url = match get(part, "image_url") {
                        Some(url) => as_str(url, &format!("{at}.image_url"))?,
                        None => {
                            return Err(TranslateError::untranslatable_use(
                                at,
                                "an image uploaded to the provider (`file_id`)",
                            ));
                        }
                    };
                    Ok(Part::Image(match data_url(url) {
                        Some((media_type, data)) => Image::Base64 {
                            media_type: media_type.to_owned(),
                            data: data.to_owned(),
                        },
                        None => Image::Url(url.to_owned()),
                    }))
                }
                (other, _) => Err(TranslateError::untranslatable_use(
                    format!("{at}.type"),
                    format!("`{other}` content here"),
                )),
            }
        })
        .collect()
}

fn image_url(image: &Image) -> String {
    match image {
        Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        Image::Url(url) => url.clone(),
    }
}

/// Writes a Responses request for a deployment serving `model`. Nothing is stored upstream:
/// a conversation goes whole in `input`.
pub fn encode_request(
    request: &ChatRequest,
    model: &str,
    options: &TargetOptions,
) -> Result<Value, TranslateError> {
    let target = Format::Responses;
    let source = request.source.unwrap_or(target);
    for (set, field) in [
        (request.top_k.is_some(), "top_k"),
        (!request.stop.is_empty(), "stop"),
        (request.seed.is_some(), "seed"),
        (request.presence_penalty.is_some(), "presence_penalty"),
        (request.frequency_penalty.is_some(), "frequency_penalty"),
    ] {
        if set {
            return Err(TranslateError::unsupported(
                field_name(source, field),
                target,
            ));
        }
    }
    let effort = reasoning_effort(request, options, target)?;
    let mut input = Vec::new();
    for system in &request.system {
        input.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        for part in &message.content {
            input.push(match (message.role, part) {
                (Role::System, Part::Text(text)) => json!({"role": "system", "content": text}),
                (Role::Assistant, Part::Text(text)) => json!({
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text}],
                }),
                (Role::Assistant, Part::ToolCall(call)) => json!({
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": call.arguments,
                }),
                (Role::User, Part::Text(text)) => json!({
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                }),
                (Role::User, Part::Image(image)) => json!({
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": image_url(image)}],
                }),
                (Role::User, Part::ToolResult(result)) => {
                    let mut output: Vec<Value> = result
                        .content
                        .iter()
                        .map(|item| match item {
                            Part::Image(image) => {
                                json!({"type": "input_image", "image_url": image_url(image)})
                            }
                            Part::Text(text) => json!({"type": "input_text", "text": text}),
                            _ => json!({"type": "input_text", "text": ""}),
                        })
                        .collect();
                    // The Responses API has no error flag on an output: the text says it.
                    if result.is_error {
                        output.insert(0, json!({"type": "input_text", "text": "Error: "}));
                    }
                    json!({
                        "type": "function_call_output",
                        "call_id": result.call_id,
                        "output": output,
                    })
                }
                _ => {
                    return Err(TranslateError::invalid(
                        "messages",
                        "content its role cannot hold",
                    ));
                }
            });
        }
    }
    let mut body = Obj::new();
    body.insert("model".into(), model.into());
    body.insert("input".into(), input.into());
    body.insert("store".into(), false.into());
    if let Some(max) = request.max_tokens {
        body.insert("max_output_tokens".into(), max.into());
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), p.into());
    }
    if request.stream {
        body.insert("stream".into(), true.into());
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut out =
                    json!({"type": "function", "name": tool.name, "parameters": tool.parameters});
                if let Some(description) = &tool.description {
                    out["description"] = description.clone().into();
                }
                out
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
                ToolChoice::Named(name) => json!({"type": "function", "name": name}),
            },
        );
    }
    if let Some(parallel) = request.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), parallel.into());
    }
    if let Some(user) = &request.user {
        body.insert("safety_identifier".into(), user.clone().into());
    }
    if let Some(effort) = effort {
        let effort = match effort {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::Max => "xhigh",
        };
        body.insert("reasoning".into(), json!({"effort": effort}));
    }
    if request.json_output {
        body.insert("text".into(), json!({"format": {"type": "json_object"}}));
    }
    Ok(Value::Object(body))
}
