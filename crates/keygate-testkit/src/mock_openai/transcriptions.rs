//! OpenAI's `POST /v1/audio/transcriptions`: a `multipart/form-data` upload read part by part
//! as it arrives (the file's bytes are counted as they come, so a test can see whether its
//! upload streamed through keygate), answered in the `response_format` asked for, or as
//! `transcript.text.*` events with `stream=true` on `gpt-4o-*-transcribe` models (`whisper-1`
//! ignores it, as the API reference says).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use super::stream::Script;
use super::{Shared, authorize, json};
use crate::mock_openai::wire;

const FORMATS: [&str; 10] = [
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm",
];

fn invalid(message: &str, param: Option<&str>) -> Response {
    let body = wire::error(message, "invalid_request_error", param, None);
    json(StatusCode::BAD_REQUEST, &body)
}

/// One part of a form as the mock received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPart {
    pub name: String,
    pub file_name: Option<String>,
    pub data: Bytes,
}

pub(crate) async fn transcriptions(
    shared: Arc<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refused) = authorize(&shared, &headers) {
        return refused.into_response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        return invalid(
            &format!("Invalid Content-Type header ({content_type}), expected multipart/form-data."),
            None,
        );
    };
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut parts = Vec::new();
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => return invalid("The multipart body could not be parsed.", None),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let mut data = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if file_name.is_some() {
                        shared.uploaded.fetch_add(chunk.len(), Ordering::SeqCst);
                    }
                    data.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => return invalid("The multipart body could not be parsed.", None),
            }
        }
        parts.push(FormPart {
            name,
            file_name,
            data: Bytes::from(data),
        });
    }
    shared
        .forms
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(parts.clone());
    let text = |name: &str| {
        parts
            .iter()
            .find(|p| p.name == name && p.file_name.is_none())
            .and_then(|p| std::str::from_utf8(&p.data).ok())
    };
    let Some(model) = text("model").filter(|m| !m.is_empty()) else {
        return invalid("you must provide a model parameter", Some("model"));
    };
    let Some(file) = parts
        .iter()
        .find(|p| p.name == "file" && p.file_name.is_some())
    else {
        return invalid("'file' is a required property", Some("file"));
    };
    let extension = file
        .file_name
        .as_deref()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    if !extension.is_some_and(|ext| FORMATS.contains(&ext.as_str())) {
        return invalid(
            "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']",
            Some("file"),
        );
    }
    let gpt4o = model.starts_with("gpt-4o");
    let format = text("response_format").unwrap_or("json");
    if gpt4o && format != "json" && format != "text" {
        return invalid(
            &format!(
                "response_format '{format}' is not compatible with model '{model}'. Use 'json' or 'text'."
            ),
            Some("response_format"),
        );
    }
    let stream = gpt4o && text("stream") == Some("true");
    let transcript = format!(
        "Heard {} bytes of {} at {}.",
        file.data.len(),
        file.file_name.as_deref().unwrap_or_default(),
        shared.name
    );
    let seq = shared.meta(model.to_owned()).seq;
    let output_tokens = wire::count_words(&transcript);
    let audio_tokens = (file.data.len() as u64 / 1000).max(1);
    let usage = if gpt4o {
        json!({
            "type": "tokens",
            "input_tokens": audio_tokens,
            "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
            "output_tokens": output_tokens,
            "total_tokens": audio_tokens + output_tokens,
        })
    } else {
        json!({"type": "duration", "seconds": audio_tokens})
    };
    if stream {
        let mut script = Script::new(wire::Meta::new(seq, model.to_owned()), false);
        for piece in wire::split_words(&transcript) {
            let event = json!({"type": "transcript.text.delta", "delta": piece});
            script.raw(format!("data: {event}\n\n"));
        }
        let event = json!({"type": "transcript.text.done", "text": transcript, "usage": usage});
        script.raw(format!("data: {event}\n\n"));
        return script.into_response(shared.abandoned.clone());
    }
    let plain = |content_type: &'static str, body: String| {
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    match format {
        "json" => json(StatusCode::OK, &json!({"text": transcript, "usage": usage})),
        "text" => plain("text/plain; charset=utf-8", format!("{transcript}\n")),
        "srt" => plain(
            "text/plain; charset=utf-8",
            format!("1\n00:00:00,000 --> 00:00:02,000\n{transcript}\n\n"),
        ),
        "vtt" => plain(
            "text/vtt; charset=utf-8",
            format!("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n{transcript}\n\n"),
        ),
        "verbose_json" => json(
            StatusCode::OK,
            &json!({
                "task": "transcribe", "language": "english", "duration": 2.0,
                "text": transcript,
                "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 2.0, "text": transcript,
                    "tokens": [], "temperature": 0.0, "avg_logprob": -0.2,
                    "compression_ratio": 1.0, "no_speech_prob": 0.01}],
                "usage": usage,
            }),
        ),
        _ => invalid(
            "Invalid value for 'response_format'.",
            Some("response_format"),
        ),
    }
}
