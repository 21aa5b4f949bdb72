//! Writing a `generateContent` request from the common form.

use serde_json::{Value, json};

use super::{FOREIGN_CALL_SIGNATURE, signature_of};
use crate::translate::ir::{ChatRequest, Effort, Image, Part, Role, ToolChoice};
use crate::translate::value::Obj;
use crate::translate::{Format, TargetOptions, TranslateError, field_name, reasoning_effort};

/// Writes a `generateContent` request. The model and the streaming choice are in the URL.
/// System turns in the conversation join the system instruction: Gemini has no other place
/// for instructions.
pub fn encode_request(
    request: &ChatRequest,
    options: &TargetOptions,
) -> Result<Value, TranslateError> {
    let target = Format::Gemini;
    // Gemini's thinking models all take a budget; only Gemini 3 takes a level.
    let effort = match request.thinking_budget {
        Some(_) => None,
        None => reasoning_effort(request, options, target)?,
    };
    let mut instructions: Vec<Value> = request.system.iter().map(|t| json!({"text": t})).collect();
    // `user` (an end-user id for abuse monitoring) is a hint Gemini has no field for.
    if request.parallel_tool_calls == Some(false) {
        let source = request.source.unwrap_or(Format::OpenAi);
        return Err(TranslateError::unsupported(
            field_name(source, "parallel_tool_calls"),
            target,
        ));
    }
    let mut contents = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.iter().enumerate() {
        if message.role == Role::System {
            for part in &message.content {
                if let Part::Text(text) = part {
                    instructions.push(json!({"text": text}));
                }
            }
            continue;
        }
        let mut parts = Vec::with_capacity(message.content.len());
        // Whether a call of this turn carries a signature already.
        let mut signed = false;
        for part in &message.content {
            parts.push(match part {
                Part::Text(text) if text.is_empty() => continue,
                Part::Text(text) => json!({"text": text}),
                Part::Image(Image::Base64 { media_type, data }) => {
                    json!({"inlineData": {"mimeType": media_type, "data": data}})
                }
                Part::Image(Image::Url(_)) => {
                    return Err(TranslateError::unsupported_use(
                        format!("messages[{i}].content"),
                        "an image by URL; send it as base64 data",
                        target,
                    ));
                }
                Part::ToolCall(call) => {
                    let args: Value = if call.arguments.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&call.arguments).map_err(|_| {
                            TranslateError::invalid(
                                format!("messages[{i}] (tool call `{}`)", call.name),
                                "the arguments are not JSON",
                            )
                        })?
                    };
                    let mut part = json!({"functionCall": {"name": call.name, "args": args}});
                    // Gemini's thinking models want the signature of the call they made back;
                    // a call made elsewhere gets the placeholder Google documents for that.
                    match signature_of(&call.id) {
                        Some(signature) => part["thoughtSignature"] = signature.into(),
                        None if !signed => {
                            part["thoughtSignature"] = FOREIGN_CALL_SIGNATURE.into();
                        }
                        None => {}
                    }
                    signed = true;
                    part
                }
                Part::ToolResult(result) => {
                    let Some(name) = &result.name else {
                        return Err(TranslateError::invalid(
                            format!("messages[{i}] (tool result `{}`)", result.call_id),
                            "answers no tool call of this conversation",
                        ));
                    };
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
                    let key = if result.is_error { "error" } else { "output" };
                    json!({"functionResponse": {"name": name, "response": {key: text}}})
                }
            });
        }
        if parts.is_empty() {
            continue;
        }
        let role = match message.role {
            Role::User | Role::System => "user",
            Role::Assistant => "model",
        };
        contents.push(json!({"role": role, "parts": parts}));
    }
    let mut body = Obj::new();
    body.insert("contents".into(), contents.into());
    if !instructions.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": instructions}));
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut out = json!({"name": tool.name, "parametersJsonSchema": tool.parameters});
                if let Some(description) = &tool.description {
                    out["description"] = description.clone().into();
                }
                out
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(choice) = &request.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Named(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    let mut generation = Obj::new();
    if let Some(t) = request.temperature {
        generation.insert("temperature".into(), t.into());
    }
    if let Some(p) = request.top_p {
        generation.insert("topP".into(), p.into());
    }
    if let Some(k) = request.top_k {
        generation.insert("topK".into(), k.into());
    }
    if let Some(max) = request.max_tokens {
        generation.insert("maxOutputTokens".into(), max.into());
    }
    if !request.stop.is_empty() {
        generation.insert("stopSequences".into(), json!(request.stop));
    }
    if let Some(seed) = request.seed {
        generation.insert("seed".into(), seed.into());
    }
    if let Some(p) = request.presence_penalty {
        generation.insert("presencePenalty".into(), p.into());
    }
    if let Some(p) = request.frequency_penalty {
        generation.insert("frequencyPenalty".into(), p.into());
    }
    if request.json_output {
        generation.insert("responseMimeType".into(), "application/json".into());
    }
    if let Some(budget) = request.thinking_budget {
        generation.insert("thinkingConfig".into(), json!({"thinkingBudget": budget}));
    } else if let Some(effort) = effort {
        let level = match effort {
            Effort::Low => "low",
            Effort::Medium | Effort::High | Effort::Max => "high",
        };
        generation.insert("thinkingConfig".into(), json!({"thinkingLevel": level}));
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    Ok(Value::Object(body))
}
