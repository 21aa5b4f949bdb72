//! OpenAI's endpoints beyond chat, as their API reference describes them: the legacy
//! completions (JSON and chunks), moderations, image generation (URLs or base64, and the
//! partial-image events of `gpt-image-*` models) and text to speech (audio bytes in several
//! frames, or `speech.audio.*` events). What the real API refuses, these refuse.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

use super::stream::Script;
use super::{Accepted, Shared, accept, error_reply, json};
use crate::mock_openai::wire;

/// A 1×1 PNG, the image every generation draws.
pub const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

const VOICES: [&str; 13] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];

fn invalid(message: &str, param: Option<&str>) -> Response {
    let body = wire::error(message, "invalid_request_error", param, None);
    json(StatusCode::BAD_REQUEST, &body)
}

/// A queued error reply, if the next one is.
fn scripted_error(shared: &Shared) -> Option<Response> {
    match shared.next_reply()? {
        super::MockReply::Error {
            status,
            code,
            message,
            retry_after,
        } => Some(error_reply(status, &code, &message, retry_after)),
        _ => None,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The text of a `prompt` or `input`: a string, or strings joined.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(|texts| texts.join(" ")),
        _ => None,
    }
}

/// `POST /v1/completions`: the answer names the mock and echoes the prompt's length.
pub(crate) async fn completions(shared: Arc<Shared>, headers: &HeaderMap, body: &[u8]) -> Response {
    let Accepted { body, model } = match accept(&shared, headers, body, None) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let Some(prompt) = body.get("prompt").and_then(text_of) else {
        return invalid("'prompt' is a required property", Some("prompt"));
    };
    if let Some(max) = body.get("max_tokens")
        && !max.is_null()
        && max.as_u64().is_none()
    {
        return invalid(
            "Invalid type for 'max_tokens': expected an integer.",
            Some("max_tokens"),
        );
    }
    if let Some(error) = scripted_error(&shared) {
        return error;
    }
    let seq = shared.meta(model.clone()).seq;
    let text = format!(" Completed by {}.", shared.name);
    let prompt_tokens = wire::count_words(&prompt).max(1);
    let completion_tokens = wire::count_words(&text);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let id = format!("cmpl-{seq}");
    let created = now();
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut script = Script::new(wire::Meta::new(seq, model.clone()), false);
        let pieces = wire::split_words(&text);
        let last = pieces.len() - 1;
        for (at, piece) in pieces.into_iter().enumerate() {
            let chunk = json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [{"text": piece, "index": 0, "logprobs": null,
                    "finish_reason": if at == last { json!("stop") } else { Value::Null }}],
            });
            script.raw(format!("data: {chunk}\n\n"));
        }
        if include_usage {
            let chunk = json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [], "usage": usage,
            });
            script.raw(format!("data: {chunk}\n\n"));
        }
        script.raw("data: [DONE]\n\n".to_owned());
        return script.into_response(shared.abandoned.clone());
    }
    json(
        StatusCode::OK,
        &json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage,
        }),
    )
}

const CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

/// `POST /v1/moderations`: text that mentions "violence" is flagged for it.
pub(crate) async fn moderations(shared: Arc<Shared>, headers: &HeaderMap, body: &[u8]) -> Response {
    let Accepted { body, model } = match accept(&shared, headers, body, None) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if !items.is_empty() => {
            let texts: Option<Vec<String>> = items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Some(text.clone()),
                    Value::Object(part) => match part.get("type").and_then(Value::as_str) {
                        Some("text") => part.get("text").and_then(Value::as_str).map(str::to_owned),
                        Some("image_url") => Some(String::new()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            match texts {
                Some(texts) => texts,
                None => return invalid("Invalid value for 'input'.", Some("input")),
            }
        }
        _ => return invalid("'input' is a required property", Some("input")),
    };
    if let Some(error) = scripted_error(&shared) {
        return error;
    }
    let seq = shared.meta(model.clone()).seq;
    let results: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let violent = text.to_lowercase().contains("violence");
            let categories: serde_json::Map<String, Value> = CATEGORIES
                .iter()
                .map(|c| ((*c).to_owned(), json!(violent && *c == "violence")))
                .collect();
            let scores: serde_json::Map<String, Value> = CATEGORIES
                .iter()
                .map(|c| {
                    let score = if violent && *c == "violence" {
                        0.97
                    } else {
                        0.0001
                    };
                    ((*c).to_owned(), json!(score))
                })
                .collect();
            let applied: serde_json::Map<String, Value> = CATEGORIES
                .iter()
                .map(|c| ((*c).to_owned(), json!(["text"])))
                .collect();
            json!({
                "flagged": violent,
                "categories": categories,
                "category_scores": scores,
                "category_applied_input_types": applied,
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({ "id": format!("modr-{seq}"), "model": model, "results": results }),
    )
}

/// `POST /v1/images/generations`: `gpt-image-*` models answer base64 with token usage (and
/// stream partial images); others (`dall-e-*`) URLs or base64 as `response_format` says.
pub(crate) async fn images(shared: Arc<Shared>, headers: &HeaderMap, body: &[u8]) -> Response {
    let Accepted { body, model } = match accept(&shared, headers, body, None) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let Some(prompt) = body.get("prompt").and_then(Value::as_str) else {
        return invalid("'prompt' is a required property", Some("prompt"));
    };
    let gpt_image = model.starts_with("gpt-image");
    let n = match body.get("n") {
        None | Some(Value::Null) => 1,
        Some(value) => match value.as_u64().filter(|n| (1..=10).contains(n)) {
            Some(n) => n,
            None => {
                return invalid(
                    "Invalid value for 'n': must be between 1 and 10.",
                    Some("n"),
                );
            }
        },
    };
    let response_format = body.get("response_format").and_then(Value::as_str);
    if gpt_image && response_format.is_some() {
        return invalid(
            "Unknown parameter: 'response_format'.",
            Some("response_format"),
        );
    }
    let base64 = match response_format {
        None => gpt_image,
        Some("url") => false,
        Some("b64_json") => true,
        Some(_) => {
            return invalid(
                "Invalid value for 'response_format'.",
                Some("response_format"),
            );
        }
    };
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    if stream && !gpt_image {
        return invalid("Streaming is not supported for this model.", Some("stream"));
    }
    if let Some(error) = scripted_error(&shared) {
        return error;
    }
    let seq = shared.meta(model.clone()).seq;
    let input_tokens = wire::count_words(prompt).max(1);
    let usage = json!({
        "input_tokens": input_tokens,
        "input_tokens_details": {"text_tokens": input_tokens, "image_tokens": 0},
        "output_tokens": 272 * n,
        "total_tokens": input_tokens + 272 * n,
    });
    let created = now();
    if stream {
        let partials = body
            .get("partial_images")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut script = Script::new(wire::Meta::new(seq, model.clone()), false);
        let common = json!({
            "b64_json": PNG_1X1, "created_at": created, "size": "1024x1024",
            "quality": "low", "background": "opaque", "output_format": "png",
        });
        for index in 0..partials {
            let mut event = common.clone();
            event["type"] = json!("image_generation.partial_image");
            event["partial_image_index"] = json!(index);
            script.raw(format!(
                "event: image_generation.partial_image\ndata: {event}\n\n"
            ));
            script.pause(Duration::from_millis(5));
        }
        let mut event = common;
        event["type"] = json!("image_generation.completed");
        event["usage"] = usage;
        script.raw(format!(
            "event: image_generation.completed\ndata: {event}\n\n"
        ));
        return script.into_response(shared.abandoned.clone());
    }
    let data: Vec<Value> = (0..n)
        .map(|i| {
            if base64 {
                json!({ "b64_json": PNG_1X1 })
            } else {
                json!({
                    "url": format!("https://images.mock.invalid/{seq}/{i}.png"),
                    "revised_prompt": format!("{prompt}, drawn by {}", shared.name),
                })
            }
        })
        .collect();
    let mut answer = json!({ "created": created, "data": data });
    if gpt_image {
        answer["usage"] = usage;
    }
    json(StatusCode::OK, &answer)
}

/// The audio the mock "speaks" for `input`: a fixed header and the input's bytes repeated,
/// 48 KiB in all, so a test can check every byte arrived.
pub fn speech_audio(input: &str) -> Vec<u8> {
    let mut audio = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
    while audio.len() < 48 * 1024 {
        audio.extend_from_slice(input.as_bytes());
        audio.push(b'\n');
    }
    audio.truncate(48 * 1024);
    audio
}

/// `POST /v1/audio/speech`: the audio in 8 KiB frames a few milliseconds apart (held after the
/// first while a queued [`super::MockReply::Gated`] is not released), or with
/// `stream_format: "sse"` (`gpt-4o-*-tts` only) as `speech.audio.delta` events and a
/// `speech.audio.done` with usage.
pub(crate) async fn speech(shared: Arc<Shared>, headers: &HeaderMap, body: &[u8]) -> Response {
    let Accepted { body, model } = match accept(&shared, headers, body, None) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let Some(input) = body.get("input").and_then(Value::as_str) else {
        return invalid("'input' is a required property", Some("input"));
    };
    if input.chars().count() > 4096 {
        return invalid("'input' is longer than 4096 characters.", Some("input"));
    }
    match body.get("voice").and_then(Value::as_str) {
        Some(voice) if VOICES.contains(&voice) => {}
        Some(_) => return invalid("Invalid value for 'voice'.", Some("voice")),
        None => return invalid("'voice' is a required property", Some("voice")),
    }
    let content_type = match body.get("response_format").and_then(Value::as_str) {
        None | Some("mp3") => "audio/mpeg",
        Some("opus") => "audio/ogg",
        Some("aac") => "audio/aac",
        Some("flac") => "audio/flac",
        Some("wav") => "audio/wav",
        Some("pcm") => "audio/pcm",
        Some(_) => {
            return invalid(
                "Invalid value for 'response_format'.",
                Some("response_format"),
            );
        }
    };
    let sse = match body.get("stream_format").and_then(Value::as_str) {
        None | Some("audio") => false,
        Some("sse") if model.starts_with("gpt-4o") => true,
        Some("sse") => {
            return invalid(
                "Unsupported value: 'stream_format' does not support 'sse' with this model.",
                Some("stream_format"),
            );
        }
        Some(_) => return invalid("Invalid value for 'stream_format'.", Some("stream_format")),
    };
    // A queued error answers instead; a queued `Gated` holds the audio after its first frame.
    let gate = match shared.next_reply() {
        Some(super::MockReply::Error {
            status,
            code,
            message,
            retry_after,
        }) => return error_reply(status, &code, &message, retry_after),
        Some(super::MockReply::Gated { release, .. }) => Some(release),
        _ => None,
    };
    let seq = shared.meta(model.clone()).seq;
    let audio = speech_audio(input);
    if sse {
        let mut script = Script::new(wire::Meta::new(seq, model), false);
        for piece in audio.chunks(8 * 1024) {
            let delta = base64::engine::general_purpose::STANDARD.encode(piece);
            let event = json!({"type": "speech.audio.delta", "audio": delta});
            script.raw(format!("data: {event}\n\n"));
        }
        let tokens = wire::count_words(input).max(1);
        let event = json!({"type": "speech.audio.done", "usage": {
            "input_tokens": tokens, "output_tokens": 600, "total_tokens": tokens + 600}});
        script.raw(format!("data: {event}\n\n"));
        return script.into_response(shared.abandoned.clone());
    }
    let frames: Vec<Bytes> = audio.chunks(8 * 1024).map(Bytes::copy_from_slice).collect();
    let state = (frames.into_iter(), gate, true);
    let stream = futures_util::stream::unfold(state, |(mut frames, mut gate, first)| async move {
        if !first && let Some(release) = gate.take() {
            release.notified().await;
        }
        let frame = frames.next()?;
        tokio::time::sleep(Duration::from_millis(2)).await;
        Some((Ok::<_, std::io::Error>(frame), (frames, gate, false)))
    });
    let mut response = Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
