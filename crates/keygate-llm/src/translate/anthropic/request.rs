//! Anthropic Messages requests (and the body of a token count): read into the common form,
//! checked block by block against what the target can say, and written from it.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::arguments_value;
use crate::translate::ir::{
    ChatRequest, Effort, Image, Message, Part, Role, Tool, ToolCall, ToolChoice, ToolResult,
};
use crate::translate::value::{
    Obj, as_array, as_bool, as_f64, as_object, as_str, as_u64, get, object, required_str,
};
use crate::translate::{Format, TargetOptions, TranslateError, field_name, reasoning_effort};

/// Reads an Anthropic Messages request into the common form, whatever its target.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, TranslateError> {
    let request = decode(body)?;
    if request.max_tokens.is_none() {
        return Err(TranslateError::invalid("max_tokens", "required"));
    }
    Ok(request)
}

/// Reads the body of a token count: a Messages request without `max_tokens`.
pub fn decode_count_request(body: &[u8]) -> Result<ChatRequest, TranslateError> {
    decode(body)
}

fn decode(body: &[u8]) -> Result<ChatRequest, TranslateError> {
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
            "system" => request.system = decode_system(value, "system", &mut request.hints)?,
            "metadata" => {
                let metadata = as_object(value, key)?;
                for (field, value) in metadata {
                    match field.as_str() {
                        "user_id" if !value.is_null() => {
                            request.user = Some(as_str(value, "metadata.user_id")?.to_owned());
                        }
                        "user_id" => {}
                        other => {
                            return Err(TranslateError::untranslatable(format!(
                                "metadata.{other}"
                            )));
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
            "tools" => request.tools = decode_tools(value, &mut request.hints)?,
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
                    "adaptive" => request.adaptive_thinking = true,
                    _ => return Err(TranslateError::untranslatable("thinking.type")),
                }
                for (field, value) in thinking {
                    match field.as_str() {
                        "type" | "budget_tokens" => {}
                        // Whether thinking is shown: no other provider shows Anthropic's.
                        "display" => request.hints.push("thinking.display".to_owned()),
                        _ if value.is_null() => {}
                        other => {
                            return Err(TranslateError::untranslatable(format!(
                                "thinking.{other}"
                            )));
                        }
                    }
                }
            }
            "output_config" => {
                for (field, value) in as_object(value, key)? {
                    match field.as_str() {
                        _ if value.is_null() => {}
                        "effort" => request.effort = Some(effort(value, "output_config.effort")?),
                        other => {
                            return Err(TranslateError::untranslatable(format!(
                                "output_config.{other}"
                            )));
                        }
                    }
                }
            }
            // Context editing clears old thinking and tool results at Anthropic to save
            // context; elsewhere the whole conversation goes, as the client sent it.
            "context_management" => {
                as_object(value, key)?;
                request.hints.push("context_management".to_owned());
            }
            "service_tier" if value.as_str() == Some("auto") => {}
            other => return Err(TranslateError::untranslatable(other)),
        }
    }
    let messages =
        get(&obj, "messages").ok_or_else(|| TranslateError::invalid("messages", "required"))?;
    let messages = as_array(messages, "messages")?;
    decode_messages(messages, &mut request)?;
    // A final assistant turn is a prefill: the answer must continue it. Only Anthropic
    // continues one; elsewhere it would be read as a finished turn (see `for_target`).
    if request
        .messages
        .last()
        .is_some_and(|m| m.role == Role::Assistant)
    {
        request.prefill_at = Some(messages.len().saturating_sub(1));
    }
    Ok(request)
}

/// System instructions: text, or text blocks (their cache markers are hints).
fn decode_system(
    value: &Value,
    at: &str,
    hints: &mut Vec<String>,
) -> Result<Vec<String>, TranslateError> {
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, block)| {
                let at = format!("{at}[{i}]");
                let block = as_object(block, &at)?;
                if required_str(block, "type", &at)? != "text" {
                    return Err(TranslateError::invalid(
                        format!("{at}.type"),
                        "must be `text`",
                    ));
                }
                if get(block, "cache_control").is_some() {
                    hints.push(format!("{at}.cache_control"));
                }
                Ok(required_str(block, "text", &at)?.to_owned())
            })
            .collect(),
        _ => Err(TranslateError::invalid(
            at,
            "a string or an array of text blocks",
        )),
    }
}

fn decode_tools(value: &Value, hints: &mut Vec<String>) -> Result<Vec<Tool>, TranslateError> {
    as_array(value, "tools")?
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let at = format!("tools[{i}]");
            let tool = as_object(tool, &at)?;
            // Anthropic's server tools (web search, code execution…) run at Anthropic.
            if get(tool, "type").is_some_and(|t| t.as_str() != Some("custom")) {
                return Err(TranslateError::untranslatable(format!("{at}.type")));
            }
            for (key, value) in tool {
                match key.as_str() {
                    "name" | "description" | "input_schema" | "type" => {}
                    _ if value.is_null() || value == &Value::Bool(false) => {}
                    // A tool loaded only when a tool search finds it: elsewhere every tool
                    // is there from the start.
                    "cache_control" | "defer_loading" => hints.push(format!("{at}.{key}")),
                    _ => return Err(TranslateError::untranslatable(format!("{at}.{key}"))),
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

fn decode_messages(items: &[Value], request: &mut ChatRequest) -> Result<(), TranslateError> {
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("messages[{i}]");
        let message = as_object(item, &at)?;
        let role = required_str(message, "role", &at)?;
        for key in message.keys() {
            let known = match key.as_str() {
                "role" | "content" => true,
                "output_config" => role == "system",
                _ => false,
            };
            if !known {
                return Err(TranslateError::invalid(
                    format!("{at}.{key}"),
                    "unknown field",
                ));
            }
        }
        if role == "system" {
            system_turn(message, &at, request)?;
            continue;
        }
        let content = message
            .get("content")
            .ok_or_else(|| TranslateError::invalid(format!("{at}.content"), "required"))?;
        let role = match role {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => {
                return Err(TranslateError::invalid(
                    format!("{at}.role"),
                    "user, assistant or system",
                ));
            }
        };
        let parts = match content {
            Value::String(text) => vec![Part::Text(text.clone())],
            Value::Array(blocks) => {
                let mut parts = Vec::with_capacity(blocks.len());
                for (j, block) in blocks.iter().enumerate() {
                    let at = format!("{at}.content[{j}]");
                    if let Some(part) =
                        decode_block(block, &at, &mut call_names, &mut request.hints)?
                    {
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

/// A system turn: instructions given mid-conversation (the target's system or developer
/// turn), and a per-turn effort, which governs the answers after it.
fn system_turn(message: &Obj, at: &str, request: &mut ChatRequest) -> Result<(), TranslateError> {
    if let Some(config) = get(message, "output_config") {
        let at = format!("{at}.output_config");
        for (field, value) in as_object(config, &at)? {
            match field.as_str() {
                _ if value.is_null() => {}
                "effort" => request.effort = Some(effort(value, &format!("{at}.effort"))?),
                other => return Err(TranslateError::untranslatable(format!("{at}.{other}"))),
            }
        }
    }
    if let Some(content) = get(message, "content") {
        let texts = decode_system(content, &format!("{at}.content"), &mut request.hints)?;
        request.messages.push(Message {
            role: Role::System,
            content: texts.into_iter().map(Part::Text).collect(),
        });
    }
    Ok(())
}

fn effort(value: &Value, at: &str) -> Result<Effort, TranslateError> {
    Effort::parse(as_str(value, at)?)
        .ok_or_else(|| TranslateError::invalid(at, "low, medium, high, xhigh or max"))
}

/// One content block; `None` for blocks that carry nothing another provider can use.
fn decode_block(
    block: &Value,
    at: &str,
    call_names: &mut HashMap<String, String>,
    hints: &mut Vec<String>,
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
        "thinking" | "redacted_thinking" => {
            hints.push(format!("{at}.type"));
            return Ok(None);
        }
        other => {
            return Err(TranslateError::untranslatable_use(
                format!("{at}.type"),
                format!("`{other}` blocks"),
            ));
        }
    };
    for (key, value) in block {
        if !allowed.contains(&key.as_str()) && !value.is_null() {
            return Err(TranslateError::untranslatable(format!("{at}.{key}")));
        }
        if key == "cache_control" && !value.is_null() {
            hints.push(format!("{at}.cache_control"));
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
                            other => Err(TranslateError::untranslatable_use(
                                format!("{at}.type"),
                                format!("`{other}` blocks"),
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
            let source = request.source.unwrap_or(target);
            return Err(TranslateError::unsupported(
                field_name(source, field),
                target,
            ));
        }
    }
    // Effort is a hint to Anthropic's models, which take `thinking` instead: left out, or
    // refused by a strict group.
    reasoning_effort(request, defaults, target)?;
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
            // Only an Anthropic client sends these, and its requests pass as they are.
            Role::System => {
                return Err(TranslateError::unsupported_use(
                    "messages",
                    "a system turn in the conversation",
                    target,
                ));
            }
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
