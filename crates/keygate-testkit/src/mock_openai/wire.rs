//! OpenAI's JSON shapes as the mock writes them: completions, stream chunks, usage, errors,
//! embeddings and the model list, plus the word arithmetic that keeps them deterministic.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};

/// What every object of one completion shares: its id, creation time and model.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(super) seq: u64,
    pub(super) created: u64,
    pub(super) model: String,
}

impl Meta {
    pub(crate) fn new(seq: u64, model: String) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        Self {
            seq,
            created,
            model,
        }
    }

    fn id(&self) -> String {
        format!("chatcmpl-{}", self.seq)
    }

    pub(super) fn call_id(&self, index: usize) -> String {
        format!("call_{}_{index}", self.seq)
    }
}

/// The answer of one completion: text, or parallel tool calls `(name, arguments)`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Answer<'a> {
    Text(&'a str),
    ToolCalls(&'a [(String, String)]),
}

/// Completion tokens the mock charges for an answer: its words, or 10 for tool calls.
pub(super) fn completion_tokens(answer: Answer<'_>) -> u64 {
    match answer {
        Answer::Text(text) => count_words(text),
        Answer::ToolCalls(_) => 10,
    }
}

pub(super) fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}
    })
}

/// A `chat.completion` object.
pub(super) fn chat_completion(meta: &Meta, answer: Answer<'_>, prompt_tokens: u64) -> Value {
    let (message, finish_reason) = match answer {
        Answer::Text(text) => (
            json!({"role": "assistant", "content": text, "refusal": null, "annotations": []}),
            "stop",
        ),
        Answer::ToolCalls(calls) => {
            let tool_calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(index, (name, arguments))| {
                    json!({
                        "id": meta.call_id(index),
                        "type": "function",
                        "function": {"name": name, "arguments": arguments}
                    })
                })
                .collect();
            (
                json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": tool_calls,
                    "refusal": null,
                    "annotations": []
                }),
                "tool_calls",
            )
        }
    };
    json!({
        "id": meta.id(),
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": "fp_mock",
        "service_tier": "default",
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason
        }],
        "usage": usage(prompt_tokens, completion_tokens(answer))
    })
}

/// A `chat.completion.chunk` with one choice.
pub(super) fn chunk(meta: &Meta, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": meta.id(),
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": "fp_mock",
        "service_tier": "default",
        "choices": [{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason
        }],
        "usage": null
    })
}

/// The last chunk of a stream whose request asked for `stream_options.include_usage`.
pub(super) fn usage_chunk(meta: &Meta, usage: Value) -> Value {
    json!({
        "id": meta.id(),
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": "fp_mock",
        "service_tier": "default",
        "choices": [],
        "usage": usage
    })
}

/// OpenAI's error body.
pub(super) fn error(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// The `type` OpenAI gives an error of this status and code.
pub(super) fn error_kind(status: u16, code: &str) -> &'static str {
    match status {
        429 if code == "insufficient_quota" => "insufficient_quota",
        429 => "requests",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

/// Azure OpenAI's answer to an unknown path or a request without `api-version`.
pub(super) fn azure_not_found() -> Value {
    json!({"error": {"code": "404", "message": "Resource not found"}})
}

pub(super) fn models() -> Value {
    let model = |id: &str, created: u64| json!({"id": id, "object": "model", "created": created, "owned_by": "system"});
    json!({
        "object": "list",
        "data": [
            model("gpt-4o-mini", 1_721_172_741),
            model("gpt-4o", 1_715_367_049),
            model("text-embedding-3-small", 1_705_948_997)
        ]
    })
}

/// One embeddings input: the text it hashes to and the tokens it counts for.
#[derive(Debug)]
pub(super) struct EmbeddingInput {
    pub(super) text: String,
    pub(super) tokens: u64,
}

/// Reads `input`: a string, an array of strings, an array of token ids or an array of
/// token arrays. `None` when it is none of these or holds an empty entry.
pub(super) fn embedding_inputs(input: &Value) -> Option<Vec<EmbeddingInput>> {
    let one = |item: &Value| match item {
        Value::String(text) if !text.is_empty() => Some(EmbeddingInput {
            tokens: count_words(text).max(1),
            text: text.clone(),
        }),
        Value::Array(tokens) if !tokens.is_empty() && tokens.iter().all(Value::is_u64) => {
            Some(EmbeddingInput {
                text: Value::Array(tokens.clone()).to_string(),
                tokens: tokens.len() as u64,
            })
        }
        _ => None,
    };
    match input {
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) if items.iter().all(Value::is_u64) => one(input).map(|i| vec![i]),
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|i| vec![i]),
    }
}

/// A deterministic unit vector for `text`.
pub(super) fn embedding_vector(text: &str, dimensions: usize) -> Vec<f32> {
    // FNV-1a seeds a SplitMix64 sequence: the same text always gives the same vector.
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let raw: Vec<f32> = (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 40) as f32 / (1_u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        raw.into_iter().map(|x| x / norm).collect()
    } else {
        raw
    }
}

/// The embeddings `list` object; `base64` encodes each vector as little-endian `f32`s.
pub(super) fn embeddings(
    model: &str,
    inputs: &[EmbeddingInput],
    dimensions: usize,
    base64: bool,
) -> Value {
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedding_vector(&input.text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|input| input.tokens).sum();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    })
}

pub(crate) fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The text of a message's `content`: a string, or the `text` parts of an array.
pub(super) fn message_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Splits `text` at word boundaries so that the pieces concatenate back to `text`; every piece
/// but the first starts with the whitespace before its word. Empty text is one empty piece.
pub(crate) fn split_words(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut previous_is_space = true;
    for (at, ch) in text.char_indices() {
        if ch.is_whitespace() && !previous_is_space && at > start {
            pieces.push(&text[start..at]);
            start = at;
        }
        previous_is_space = ch.is_whitespace();
    }
    pieces.push(&text[start..]);
    pieces
}

/// Splits tool-call arguments into at least two pieces (the last may be empty when the text
/// has fewer than two characters), as OpenAI streams them.
pub(crate) fn split_arguments(arguments: &str) -> Vec<&str> {
    let chars = arguments.chars().count();
    let size = chars.div_ceil(3).max(1);
    let mut pieces = Vec::new();
    let mut start = 0;
    for (n, (at, _)) in arguments.char_indices().enumerate() {
        if n > 0 && n % size == 0 {
            pieces.push(&arguments[start..at]);
            start = at;
        }
    }
    pieces.push(&arguments[start..]);
    while pieces.len() < 2 {
        pieces.push("");
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_arguments_split_losslessly() {
        for text in ["", "one", "Hello from a: Say  hi ", " leading space"] {
            assert_eq!(split_words(text).concat(), text);
        }
        assert_eq!(split_words("a b  c"), vec!["a", " b", "  c"]);
        for args in ["", "x", "{\"city\": \"Paris\"}", "ab"] {
            let pieces = split_arguments(args);
            assert!(pieces.len() >= 2);
            assert_eq!(pieces.concat(), args);
        }
    }

    #[test]
    fn vectors_are_deterministic_unit_vectors() {
        let a = embedding_vector("hello", 8);
        assert_eq!(a, embedding_vector("hello", 8));
        assert_ne!(a, embedding_vector("hullo", 8));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
