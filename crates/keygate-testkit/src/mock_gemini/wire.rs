//! Gemini's JSON shapes as the mock writes them: `GenerateContentResponse`, usage metadata,
//! Google's error bodies and the model list, plus the deterministic token counts.

use serde_json::{Value, json};

use crate::mock_openai::wire::count_words;

/// What every response of one answer shares: its id and model version.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) seq: u64,
    pub(super) model: String,
}

impl Meta {
    fn response_id(&self) -> String {
        format!("mockResponse{:06}", self.seq)
    }
}

/// `usageMetadata`; without `candidates` it is the partial one of a stream's middle chunks.
pub(super) fn usage(prompt_tokens: u64, candidates_tokens: Option<u64>) -> Value {
    let details = json!([{"modality": "TEXT", "tokenCount": prompt_tokens}]);
    match candidates_tokens {
        Some(candidates) => json!({
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt_tokens + candidates,
            "promptTokensDetails": details
        }),
        None => json!({
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens,
            "promptTokensDetails": details
        }),
    }
}

/// A candidate: `parts` (none when the answer was blocked) and, on the last one,
/// `finishReason`.
pub(super) fn candidate(parts: Option<Vec<Value>>, finish_reason: Option<&str>) -> Value {
    let mut candidate = json!({"index": 0});
    if let Some(parts) = parts {
        candidate["content"] = json!({"parts": parts, "role": "model"});
    }
    if let Some(reason) = finish_reason {
        candidate["finishReason"] = json!(reason);
        if reason == "SAFETY" {
            candidate["safetyRatings"] = json!([
                {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"}
            ]);
        }
    }
    candidate
}

/// A `GenerateContentResponse` with one candidate.
pub(super) fn response(meta: &Meta, candidate: Value, usage: Value) -> Value {
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": meta.model,
        "responseId": meta.response_id()
    })
}

pub(super) fn text_part(text: &str) -> Value {
    json!({"text": text})
}

/// `functionCall` parts; arguments that are not a JSON object become `{}` (the real API only
/// ever produces objects).
pub(super) fn function_calls(calls: &[(String, String)]) -> Vec<Value> {
    calls
        .iter()
        .map(|(name, arguments)| {
            let args = match serde_json::from_str(arguments) {
                Ok(value @ Value::Object(_)) => value,
                _ => json!({}),
            };
            json!({"functionCall": {"name": name, "args": args}})
        })
        .collect()
}

/// Candidate tokens the mock charges for function calls: per call, one for its name and one
/// per word of its arguments.
pub(super) fn call_tokens(calls: &[(String, String)]) -> u64 {
    calls
        .iter()
        .map(|(_, arguments)| 1 + count_words(arguments))
        .sum()
}

/// Google's error body.
pub(super) fn error(code: u16, message: &str, status: &str, details: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message, "status": status});
    if let Some(details) = details {
        error["details"] = details;
    }
    json!({ "error": error })
}

/// The `google.rpc.BadRequest` details naming the field a request got wrong.
pub(super) fn field_violation(field: &str, description: &str) -> Value {
    json!([{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": field, "description": description}]
    }])
}

/// The canonical status Google gives an HTTP status.
pub(super) fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

const MODELS: &[(&str, &str, &str)] = &[
    ("gemini-2.5-flash", "Gemini 2.5 Flash", "001"),
    ("gemini-2.5-pro", "Gemini 2.5 Pro", "2.5"),
    ("gemini-2.0-flash", "Gemini 2.0 Flash", "2.0"),
];

fn model(id: &str, display_name: &str, version: &str) -> Value {
    json!({
        "name": format!("models/{id}"),
        "version": version,
        "displayName": display_name,
        "description": format!("{display_name}, as served by the mock"),
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2
    })
}

pub(super) fn models() -> Value {
    let models: Vec<Value> = MODELS
        .iter()
        .map(|(id, name, version)| model(id, name, version))
        .collect();
    json!({ "models": models })
}

/// One model by id: a known one, or any other the mock would answer for.
pub(super) fn model_info(id: &str) -> Value {
    match MODELS.iter().find(|(known, _, _)| *known == id) {
        Some((id, name, version)) => model(id, name, version),
        None => model(id, id, "001"),
    }
}

/// The prompt size the mock charges: the words of every `text` part in `contents` and in
/// `systemInstruction`.
pub(super) fn prompt_tokens(body: &Value) -> u64 {
    let parts_words = |content: &Value| -> u64 {
        content
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(count_words)
            .sum()
    };
    let system = ["systemInstruction", "system_instruction"]
        .iter()
        .find_map(|name| body.get(*name))
        .map_or(0, parts_words);
    let contents: u64 = body
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(parts_words)
        .sum();
    system + contents
}
