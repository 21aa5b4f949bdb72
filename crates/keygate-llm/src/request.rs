//! The inbound request as the gateway needs it, read in one pass without building the
//! document: the model, whether to stream, the most output, and the byte spans of the model
//! (to splice), and of the messages, system prompt and tools (the token estimate's input).
//! The body goes upstream as the client sent it, with only the model (and, for usage,
//! `stream_options`) spliced in; a deployment of another format gets the request read into
//! the common form once, whichever deployments it is tried on.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;

mod peek;

use self::peek::Peek;
use crate::client::ClientFormat;
use crate::price::Units;
use crate::provider::Endpoint;
use crate::tokens::Prompt;
use crate::translate::ir::ChatRequest;
use crate::translate::{self, Format, TargetOptions, TranslateError};
use crate::upload::Upload;

/// A request the gateway refuses before choosing a deployment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body is not valid JSON")]
    InvalidJson,
    #[error("{field}: {reason}")]
    Field {
        field: &'static str,
        reason: &'static str,
    },
}

impl RequestError {
    fn field(field: &'static str, reason: &'static str) -> Self {
        Self::Field { field, reason }
    }

    /// The field at fault, for OpenAI's `param`.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            Self::InvalidJson => None,
            Self::Field { field, .. } => Some(field),
        }
    }
}

/// A parsed inbound request.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub endpoint: Endpoint,
    /// The client's wire format.
    pub format: ClientFormat,
    /// The client's `anthropic-beta` header, passed on to Anthropic deployments only.
    pub anthropic_beta: Option<String>,
    /// The client's W3C `traceparent`, passed on when keygate's own trace does not replace it.
    pub traceparent: Option<String>,
    pub body: Bytes,
    pub model: String,
    pub stream: bool,
    /// Whether the client itself asked for a usage chunk at the end of the stream.
    pub client_wants_usage: bool,
    /// The most output the request allows itself: OpenAI's `max_completion_tokens` or
    /// `max_tokens`, Anthropic's `max_tokens` (read in the same pass as the rest).
    pub max_output: Option<u64>,
    model_span: Range<usize>,
    stream_options: Option<(Range<usize>, serde_json::Map<String, serde_json::Value>)>,
    /// Where the prompt lies in the body.
    prompt: [Option<Range<usize>>; 3],
    /// The request in the common form, read on first need.
    read: OnceLock<Result<ChatRequest, TranslateError>>,
    /// A multipart upload's parts, streamed; `body` is then empty.
    upload: Option<Arc<Upload>>,
    /// What the request asks for that is priced by the unit: images, characters to speak.
    pub units: Units,
}

fn span(body: &[u8], raw: &RawValue) -> Range<usize> {
    // The raw value borrows from `body`, so its address lies inside it.
    let start = (raw.get().as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    start..start + raw.get().len()
}

/// Deepest nesting accepted in a request body. Providers accept far less than serde's own
/// limit would let through, and a bound keeps every later reader of the body safe.
pub const MAX_DEPTH: usize = 64;

/// Whether `body` nests objects and arrays deeper than `limit` (strings are skipped).
fn too_deep(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &c in body {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn is_array(raw: &RawValue) -> bool {
    raw.get().starts_with('[')
}

impl Inbound {
    /// Reads a request body for `endpoint`. Duplicate keys are refused, so the model that
    /// is checked is the model that goes upstream.
    pub fn parse(endpoint: Endpoint, body: Bytes) -> Result<Self, RequestError> {
        if !body.trim_ascii_start().starts_with(b"{") {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                    Ok(_) => RequestError::field("body", "must be a JSON object"),
                    Err(_) => RequestError::InvalidJson,
                },
            );
        }
        if too_deep(&body, MAX_DEPTH) {
            return Err(RequestError::field(
                "body",
                "nested more than 64 levels deep",
            ));
        }
        let peek: Peek<'_> = serde_json::from_slice(&body).map_err(|err| {
            let message = err.to_string();
            if !err.is_data() {
                RequestError::InvalidJson
            } else if message.starts_with("keygate:duplicate") {
                RequestError::field("body", "a field appears twice")
            } else if message.starts_with("keygate:case-variant") {
                RequestError::field(
                    "body",
                    "a field is spelled in another case than `model`, `stream`, `stream_options`, `messages` or `input`",
                )
            } else {
                RequestError::InvalidJson
            }
        })?;
        let raw_model = peek.model.ok_or(RequestError::field("model", "required"))?;
        let model: String = serde_json::from_str(raw_model.get())
            .map_err(|_| RequestError::field("model", "must be a string"))?;
        if model.is_empty() || model.len() > 256 {
            return Err(RequestError::field("model", "1-256 characters"));
        }
        match endpoint {
            Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::CountTokens => {
                match peek.messages {
                    Some(raw) if is_array(raw) => {}
                    Some(_) => return Err(RequestError::field("messages", "must be an array")),
                    None => return Err(RequestError::field("messages", "required")),
                }
            }
            Endpoint::Embeddings
            | Endpoint::Responses
            | Endpoint::Moderations
            | Endpoint::Speech => {
                if peek.input.is_none() {
                    return Err(RequestError::field("input", "required"));
                }
            }
            Endpoint::Completions | Endpoint::ImageGenerations => {
                if peek.prompt.is_none() {
                    return Err(RequestError::field("prompt", "required"));
                }
            }
            // A multipart upload, read by `crate::upload`.
            Endpoint::Transcriptions => {
                return Err(RequestError::field("body", "must be multipart/form-data"));
            }
        }
        let stream = match peek.stream.map(RawValue::get) {
            None | Some("null" | "false") => false,
            Some("true") => true,
            Some(_) => return Err(RequestError::field("stream", "must be a boolean")),
        };
        if stream
            && matches!(
                endpoint,
                Endpoint::Embeddings | Endpoint::CountTokens | Endpoint::Moderations
            )
        {
            return Err(RequestError::field(
                "stream",
                "this endpoint does not stream",
            ));
        }
        if stream && endpoint == Endpoint::Speech {
            return Err(RequestError::field(
                "stream",
                "speech streams its audio as it is made; `stream_format: \"sse\"` asks for events",
            ));
        }
        let stream_options = match peek.stream_options {
            None => None,
            // Kept with its span, so that asking for usage replaces the `null`.
            Some(raw) if raw.get() == "null" => Some((span(&body, raw), serde_json::Map::new())),
            Some(raw) => {
                let map: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(raw.get())
                        .map_err(|_| RequestError::field("stream_options", "must be an object"))?;
                Some((span(&body, raw), map))
            }
        };
        let client_wants_usage = stream_options
            .as_ref()
            .and_then(|(_, map)| map.get("include_usage"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let model_span = span(&body, raw_model);
        let count = |raw: Option<&RawValue>| raw.and_then(|raw| raw.get().parse::<u64>().ok());
        let max_output = count(peek.max_completion_tokens)
            .or(count(peek.max_tokens))
            .or(count(peek.max_output_tokens));
        let prompt = match endpoint {
            // The Responses API's conversation is its input, its system prompt instructions.
            Endpoint::Responses => [peek.input, peek.instructions, peek.tools],
            Endpoint::Embeddings | Endpoint::Moderations | Endpoint::Speech => {
                [peek.input, None, None]
            }
            Endpoint::Completions | Endpoint::ImageGenerations => [peek.prompt, None, None],
            _ => [peek.messages, peek.system, peek.tools],
        }
        .map(|raw| raw.map(|raw| span(&body, raw)));
        let units = Units {
            images: match endpoint {
                Endpoint::ImageGenerations => count(peek.n).unwrap_or(1),
                _ => 0,
            },
            audio_seconds: 0,
            characters: match (endpoint, peek.input) {
                (Endpoint::Speech, Some(raw)) => serde_json::from_str::<String>(raw.get())
                    .map_or(0, |text| text.chars().count() as u64),
                _ => 0,
            },
        };
        Ok(Self {
            endpoint,
            format: endpoint.format(),
            anthropic_beta: None,
            traceparent: None,
            model,
            stream,
            client_wants_usage,
            max_output,
            model_span,
            stream_options,
            prompt,
            read: OnceLock::new(),
            body,
            upload: None,
            units,
        })
    }

    /// A transcription's multipart upload, read as far as its model.
    pub fn upload(upload: Upload) -> Self {
        Self {
            endpoint: Endpoint::Transcriptions,
            format: ClientFormat::OpenAi,
            anthropic_beta: None,
            traceparent: None,
            body: Bytes::new(),
            model: upload.model.clone(),
            stream: upload.stream,
            client_wants_usage: false,
            max_output: None,
            model_span: 0..0,
            stream_options: None,
            prompt: [None, None, None],
            read: OnceLock::new(),
            units: Units {
                audio_seconds: upload.expected_seconds(),
                ..Units::default()
            },
            upload: Some(Arc::new(upload)),
        }
    }

    /// The upload, for a multipart request.
    pub fn uploaded(&self) -> Option<&Upload> {
        self.upload.as_deref()
    }

    /// The `Content-Type` of the body sent upstream.
    pub(crate) fn content_type(&self) -> http::HeaderValue {
        self.upload
            .as_ref()
            .and_then(|upload| http::HeaderValue::from_str(&upload.content_type()).ok())
            .unwrap_or(http::HeaderValue::from_static("application/json"))
    }

    /// The messages as the client sent them (JSON), for a trace that records content.
    pub fn messages_text(&self) -> Option<&str> {
        let range = self.prompt[0].clone()?;
        std::str::from_utf8(self.body.get(range)?).ok()
    }

    /// The prompt, for the token estimate.
    pub fn prompt(&self) -> Prompt {
        let [messages, system, tools] = self.prompt.clone();
        Prompt {
            body: self.body.clone(),
            messages,
            system,
            tools,
        }
    }

    /// The request in the common form: read once, on the first need of it, for every
    /// deployment it is tried on. A token count's body is a Messages request that needs no
    /// `max_tokens`.
    pub fn read(&self) -> Result<&ChatRequest, TranslateError> {
        self.read
            .get_or_init(|| match self.endpoint {
                Endpoint::CountTokens => translate::anthropic::decode_count_request(&self.body),
                _ => translate::read_request(self.format, &self.body),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The body for a deployment speaking `target`: the client's bytes with the model
    /// spliced in when the formats match (see [`Inbound::body_for`]), else the request
    /// translated.
    pub fn upstream_body(
        &self,
        target: Format,
        model: &str,
        options: &TargetOptions,
    ) -> Result<Bytes, TranslateError> {
        if target == self.format.wire() {
            return Ok(self.body_for(model, options.stream_usage && target == Format::OpenAi));
        }
        let request = self.read().map_err(|err| err.for_target(target))?;
        translate::check_target(request, target)?;
        translate::encode_request(target, request, model, options)
    }

    /// The body for a deployment: `model` replaced, and when `ask_usage` (a stream whose
    /// provider honours it) `stream_options.include_usage` set. Everything else is the
    /// client's bytes.
    pub fn body_for(&self, model: &str, ask_usage: bool) -> Bytes {
        let ask_usage = ask_usage && self.stream && !self.client_wants_usage;
        let model_json = serde_json::Value::String(model.to_owned()).to_string();
        if !ask_usage && model_json.as_bytes() == &self.body[self.model_span.clone()] {
            return self.body.clone();
        }
        let mut edits: Vec<(Range<usize>, Vec<u8>)> =
            vec![(self.model_span.clone(), model_json.into_bytes())];
        if ask_usage {
            match &self.stream_options {
                Some((range, map)) => {
                    let mut map = map.clone();
                    map.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
                    edits.push((
                        range.clone(),
                        serde_json::Value::Object(map).to_string().into_bytes(),
                    ));
                }
                None => {
                    let brace = self.body.iter().position(|&c| c == b'{').unwrap_or(0);
                    edits.push((
                        brace + 1..brace + 1,
                        br#""stream_options":{"include_usage":true},"#.to_vec(),
                    ));
                }
            }
        }
        edits.sort_by_key(|(range, _)| range.start);
        let mut out = BytesMut::with_capacity(self.body.len() + 64);
        let mut at = 0;
        for (range, bytes) in edits {
            out.extend_from_slice(&self.body[at..range.start]);
            out.extend_from_slice(&bytes);
            at = range.end;
        }
        out.extend_from_slice(&self.body[at..]);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(text: &str) -> Result<Inbound, RequestError> {
        Inbound::parse(Endpoint::ChatCompletions, Bytes::from(text.to_owned()))
    }

    #[test]
    fn splices_the_model_and_keeps_everything_else() {
        let text = r#" {"model" : "fast", "messages":[{"role":"user","content":"hi \"there\""}],"temperature":0.2, "x_custom":{"a":[1,2]}}"#;
        let inbound = chat(text).unwrap();
        assert_eq!(inbound.model, "fast");
        assert!(!inbound.stream);
        let body = inbound.body_for("gpt-4o-mini", true);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            text.replace("\"fast\"", "\"gpt-4o-mini\"")
        );
        assert_eq!(inbound.body_for("fast", false), inbound.body);
    }

    #[test]
    fn the_most_output_is_read_in_the_same_pass() {
        let max = |text: &str| chat(text).unwrap().max_output;
        assert_eq!(max(r#"{"model":"m","messages":[]}"#), None);
        assert_eq!(
            max(r#"{"model":"m","messages":[],"max_tokens":40}"#),
            Some(40)
        );
        assert_eq!(
            max(r#"{"model":"m","messages":[],"max_tokens":40,"max_completion_tokens":90}"#),
            Some(90),
            "OpenAI's newer name wins"
        );
        assert_eq!(
            max(r#"{"model":"m","messages":[],"max_tokens":"40"}"#),
            None
        );
        assert_eq!(max(r#"{"model":"m","messages":[],"max_tokens":-1}"#), None);
        assert!(
            chat(r#"{"model":"m","messages":[],"max_tokens":1,"max_tokens":100000}"#).is_err(),
            "two maxima: the limits could reserve for one while the upstream reads the other"
        );
    }

    #[test]
    fn asks_for_stream_usage_only_when_the_client_did_not() {
        let plain = chat(r#"{"model":"m","stream":true,"messages":[]}"#).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&plain.body_for("up", true)).unwrap();
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["model"], "up");
        let with_options =
            chat(r#"{"model":"m","stream":true,"stream_options":{"x":1},"messages":[]}"#).unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&with_options.body_for("up", true)).unwrap();
        assert_eq!(
            body["stream_options"],
            serde_json::json!({"x":1,"include_usage":true})
        );
        let null_options =
            chat(r#"{"model":"m","stream":true,"stream_options":null,"messages":[]}"#).unwrap();
        let text = String::from_utf8(null_options.body_for("up", true).to_vec()).unwrap();
        assert_eq!(text.matches("stream_options").count(), 1, "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["stream_options"]["include_usage"], true);
        let asked = chat(
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
        )
        .unwrap();
        assert!(asked.client_wants_usage);
        let unchanged = asked.body_for("m", true);
        assert_eq!(unchanged, asked.body);
    }

    #[test]
    fn the_common_form_is_read_once_and_its_errors_name_the_target() {
        let options = TargetOptions::default();
        let odd =
            chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"logprobs":true}"#)
                .unwrap();
        for (target, name) in [(Format::Anthropic, "anthropic"), (Format::Gemini, "gemini")] {
            let err = odd.upstream_body(target, "up", &options).unwrap_err();
            assert_eq!(err.field(), "logprobs");
            assert!(
                err.to_string().contains(&format!("the {name} API")),
                "{err}"
            );
        }
        assert!(
            odd.upstream_body(Format::OpenAi, "up", &options).is_ok(),
            "the client's own format goes as it is"
        );
        let plain = chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert!(std::ptr::eq(plain.read().unwrap(), plain.read().unwrap()));
        let prefill = Inbound::parse(
            Endpoint::Messages,
            Bytes::from_static(
                br#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Sure:"}]}"#,
            ),
        )
        .unwrap();
        let err = prefill
            .upstream_body(Format::OpenAi, "up", &options)
            .unwrap_err();
        assert_eq!(err.field(), "messages[1].role");
        assert!(
            prefill
                .upstream_body(Format::Anthropic, "up", &options)
                .is_ok()
        );
    }

    #[test]
    fn names_the_faulty_field() {
        let param = |text: &str| chat(text).unwrap_err().param();
        assert_eq!(param(r#"{"messages":[]}"#), Some("model"));
        assert_eq!(param(r#"{"model":5,"messages":[]}"#), Some("model"));
        assert_eq!(param(r#"{"model":"m"}"#), Some("messages"));
        assert_eq!(param(r#"{"model":"m","messages":{}}"#), Some("messages"));
        assert_eq!(
            param(r#"{"model":"m","messages":[],"stream":"yes"}"#),
            Some("stream")
        );
        assert_eq!(param(r#"[1]"#), Some("body"));
        assert_eq!(
            param(r#"{"model":"a","model":"b","messages":[]}"#),
            Some("body"),
            "a duplicate model could smuggle another model past the check"
        );
        assert_eq!(chat("{nope").unwrap_err(), RequestError::InvalidJson);
        for smuggled in [
            r#"{"model":"cheap","MODEL":"premium","messages":[]}"#,
            r#"{"model":"m","messages":[],"Stream":true}"#,
        ] {
            assert_eq!(
                chat(smuggled).unwrap_err().param(),
                Some("body"),
                "{smuggled}"
            );
        }
        assert!(chat(r#"{"model":"m","messages":[],"modelx":1,"Temperature":1}"#).is_ok());
        let embeddings = Inbound::parse(
            Endpoint::Embeddings,
            Bytes::from_static(br#"{"model":"e"}"#),
        );
        assert_eq!(embeddings.unwrap_err().param(), Some("input"));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!(
            r#"{{"model":"m","messages":[],"x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(chat(&deep).unwrap_err().param(), Some("body"));
        let fine = format!(r#"{{"model":"m","messages":[],"x":"{}"}}"#, "[".repeat(100));
        assert!(chat(&fine).is_ok(), "brackets inside strings do not nest");
    }
}
