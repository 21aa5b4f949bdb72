//! Google Gemini's `generateContent` format: requests out, whole answers
//! (`GenerateContentResponse`), streamed answers (`streamGenerateContent?alt=sse`, one whole
//! `GenerateContentResponse` per event and no end marker) and error bodies.

use serde_json::{Value, json};

use super::ir::{
    ChatRequest, ChatResponse, ErrorKind, Image, Part, Role, StopReason, StreamEvent, ToolCall,
    ToolChoice, UpstreamError, Usage,
};
use super::value::{Obj, owned_str};
use super::{Format, TranslateError, field_name};

/// Writes a `generateContent` request. The model and the streaming choice are in the URL.
pub fn encode_request(request: &ChatRequest) -> Result<Value, TranslateError> {
    let target = Format::Gemini;
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
            Role::User => "user",
            Role::Assistant => "model",
        };
        contents.push(json!({"role": role, "parts": parts}));
    }
    let mut body = Obj::new();
    body.insert("contents".into(), contents.into());
    if !request.system.is_empty() {
        let parts: Vec<Value> = request.system.iter().map(|t| json!({"text": t})).collect();
        body.insert("systemInstruction".into(), json!({"parts": parts}));
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
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    Ok(Value::Object(body))
}

/// The signature Google documents for a function call that no Gemini model made.
const FOREIGN_CALL_SIGNATURE: &str = "skip_thought_signature_validator";

/// The id keygate gives a call, carrying Gemini's thought signature when it had one, so the
/// signature goes back with the call (clients echo ids, not signatures).
fn signed_call_id(base: String, signature: Option<&str>) -> String {
    match signature {
        Some(signature) => {
            let safe: String = signature
                .chars()
                .filter(|c| *c != '=')
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect();
            format!("{base}__sig__{safe}")
        }
        None => base,
    }
}

/// The thought signature a call id carries (standard base64, padded).
fn signature_of(id: &str) -> Option<String> {
    let (_, safe) = id.split_once("__sig__")?;
    let mut signature: String = safe
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !signature.len().is_multiple_of(4) {
        signature.push('=');
    }
    Some(signature)
}

fn stop_reason(reason: &str, called: bool) -> StopReason {
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

fn encode_stop(stop: Option<&StopReason>) -> Value {
    match stop {
        None => Value::Null,
        Some(StopReason::MaxTokens) => "MAX_TOKENS".into(),
        Some(StopReason::ContentFilter | StopReason::Refusal) => "SAFETY".into(),
        Some(_) => "STOP".into(),
    }
}

fn decode_usage(usage: &Value) -> Usage {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input: count("promptTokenCount"),
        output: count("candidatesTokenCount").saturating_add(count("thoughtsTokenCount")),
        cache_read: count("cachedContentTokenCount"),
        cache_write: 0,
    }
}

fn usage_value(usage: &Usage) -> Value {
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
fn parts(candidate: &Value, response_id: &str, calls: &mut usize) -> Option<Vec<Part>> {
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

/// The message of a Google error body.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(value.get("error")?.get("message")?.as_str()?.to_owned())
}

/// Reads a `streamGenerateContent?alt=sse` stream into common events. The stream has no end
/// marker: it is complete when the body ends after a `finishReason`.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    id: String,
    /// The open text block.
    open_text: Option<usize>,
    next_block: usize,
    calls: usize,
    stop: Option<String>,
    usage: Option<Usage>,
    finished: bool,
}

impl Decoder {
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(index) = self.open_text.take() {
            out.push(StreamEvent::BlockStop { index });
        }
    }

    pub fn push(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Option<()> {
        let chunk: Obj = serde_json::from_slice(data).ok()?;
        if let Some(error) = chunk.get("error") {
            let status = error.get("code").and_then(Value::as_u64).unwrap_or(500);
            out.push(StreamEvent::Error(UpstreamError {
                kind: ErrorKind::from_status(u16::try_from(status).unwrap_or(500)),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream reported an error")
                    .to_owned(),
            }));
            return Some(());
        }
        if !self.started {
            self.started = true;
            self.id = owned_str(chunk.get("responseId"));
            out.push(StreamEvent::Start {
                id: self.id.clone(),
                model: owned_str(chunk.get("modelVersion")),
                input_tokens: None,
            });
        }
        if let Some(usage) = chunk.get("usageMetadata") {
            self.usage = Some(decode_usage(usage));
        }
        if chunk.get("candidates").is_none() && chunk.get("promptFeedback").is_some() {
            self.stop = Some("SAFETY".to_owned());
        }
        let Some(candidate) = chunk
            .get("candidates")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Some(());
        };
        let mut calls = self.calls;
        for part in parts(candidate, &self.id, &mut calls)? {
            match part {
                Part::Text(text) if text.is_empty() => {}
                Part::Text(text) => {
                    let index = match self.open_text {
                        Some(index) => index,
                        None => {
                            let index = self.next_block;
                            self.next_block += 1;
                            self.open_text = Some(index);
                            out.push(StreamEvent::TextStart { index });
                            index
                        }
                    };
                    out.push(StreamEvent::Text { index, text });
                }
                Part::ToolCall(call) => {
                    self.close(out);
                    let index = self.next_block;
                    self.next_block += 1;
                    out.push(StreamEvent::ToolStart {
                        index,
                        id: call.id,
                        name: call.name,
                    });
                    out.push(StreamEvent::ToolArguments {
                        index,
                        json: call.arguments,
                    });
                    out.push(StreamEvent::BlockStop { index });
                }
                _ => {}
            }
        }
        self.calls = calls;
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
            self.stop = Some(reason.to_owned());
        }
        Some(())
    }

    /// The upstream's body ended: complete when a finish reason came.
    pub fn end(&mut self, out: &mut Vec<StreamEvent>) -> bool {
        if self.finished {
            return true;
        }
        let Some(reason) = self.stop.take() else {
            return false;
        };
        self.finished = true;
        self.close(out);
        out.push(StreamEvent::Finish {
            stop: Some(stop_reason(&reason, self.calls > 0)),
            usage: self.usage.take(),
        });
        out.push(StreamEvent::End);
        true
    }
}

/// Writes common events as Gemini's streamed answers (what a Gemini upstream sends; used to
/// check translations against it).
#[derive(Debug, Default)]
pub struct Encoder {
    id: String,
    model: String,
    calls: Vec<(String, String)>,
    open_call: Option<usize>,
}

impl Encoder {
    fn chunk(&self, parts: Vec<Value>, finish: Value, usage: Option<&Usage>, out: &mut String) {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if !finish.is_null() {
            candidate["finishReason"] = finish;
        }
        let mut chunk =
            json!({"candidates": [candidate], "modelVersion": self.model, "responseId": self.id});
        if let Some(usage) = usage {
            chunk["usageMetadata"] = usage_value(usage);
        }
        out.push_str(&format!("data: {chunk}\r\n\r\n"));
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut String) {
        match event {
            StreamEvent::Start { id, model, .. } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            StreamEvent::Text { text, .. } => {
                self.chunk(vec![json!({"text": text})], Value::Null, None, out)
            }
            StreamEvent::ToolStart { index, name, .. } => {
                self.open_call = Some(*index);
                self.calls.push((name.clone(), String::new()));
            }
            StreamEvent::ToolArguments { json, .. } => {
                if let Some((_, arguments)) = self.calls.last_mut() {
                    arguments.push_str(json);
                }
            }
            StreamEvent::BlockStop { index } if self.open_call == Some(*index) => {
                self.open_call = None;
                if let Some((name, arguments)) = self.calls.pop() {
                    let args =
                        serde_json::from_str::<Value>(&arguments).unwrap_or_else(|_| json!({}));
                    self.chunk(
                        vec![json!({"functionCall": {"name": name, "args": args}})],
                        Value::Null,
                        None,
                        out,
                    );
                }
            }
            StreamEvent::Finish { stop, usage } => {
                self.chunk(Vec::new(), encode_stop(stop.as_ref()), usage.as_ref(), out);
            }
            StreamEvent::Error(error) => {
                let body =
                    json!({"error": {"code": 500, "message": error.message, "status": "INTERNAL"}});
                out.push_str(&format!("data: {body}\r\n\r\n"));
            }
            StreamEvent::TextStart { .. } | StreamEvent::BlockStop { .. } | StreamEvent::End => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thought_signature_travels_in_the_call_id() {
        for signature in ["CiQB0e2Kb+/x9w==", "CiQB0e2Kb+/x9wA=", "CiQB0e2Kb+/x9wAB"] {
            let id = signed_call_id("call_r_0".to_owned(), Some(signature));
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'),
                "an id Anthropic and OpenAI accept: {id}"
            );
            assert_eq!(signature_of(&id).as_deref(), Some(signature));
        }
        assert_eq!(signature_of("call_r_0"), None);
    }

    #[test]
    fn calls_go_back_with_their_signature_or_the_placeholder() {
        let mut calls = 0;
        let candidate = json!({"content": {"role": "model", "parts": [
            {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "b", "args": {}}},
        ]}});
        let parts = parts(&candidate, "r", &mut calls).unwrap();
        let request = ChatRequest {
            messages: vec![
                crate::translate::ir::Message {
                    role: Role::User,
                    content: vec![Part::Text("go".into())],
                },
                crate::translate::ir::Message {
                    role: Role::Assistant,
                    content: parts,
                },
            ],
            ..ChatRequest::default()
        };
        let body = encode_request(&request).unwrap();
        let sent = &body["contents"][1]["parts"];
        assert_eq!(sent[0]["thoughtSignature"], "c2ln");
        assert!(sent[1].get("thoughtSignature").is_none(), "{sent}");

        let foreign = ChatRequest {
            messages: vec![crate::translate::ir::Message {
                role: Role::Assistant,
                content: vec![Part::ToolCall(ToolCall {
                    id: "toolu_1".into(),
                    name: "a".into(),
                    arguments: "{}".into(),
                })],
            }],
            ..ChatRequest::default()
        };
        let body = encode_request(&foreign).unwrap();
        assert_eq!(
            body["contents"][0]["parts"][0]["thoughtSignature"],
            FOREIGN_CALL_SIGNATURE
        );
    }
}
