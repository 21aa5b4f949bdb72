//! Usage as providers report it: the `usage` object of a response, of a stream's last chunk
//! (or Groq's `x_groq.usage`), read without building the rest of the document.

use keygate_core::TokenCounts;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Chat's names, or the image and audio endpoints' (`input_tokens`, `output_tokens`).
#[derive(Debug, Default, Deserialize)]
struct RawUsage {
    /// `"duration"` for a transcription priced by the minute: no tokens.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: u64,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// The most tokens one request is believed to have; a larger count from an upstream is
/// clamped, so that sums and costs stay far from overflow.
pub const MAX_TOKENS: u64 = 1_000_000_000;

impl From<RawUsage> for TokenCounts {
    fn from(raw: RawUsage) -> Self {
        Self {
            prompt: raw.prompt_tokens.min(MAX_TOKENS),
            completion: raw.completion_tokens.min(MAX_TOKENS),
            cached: raw
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0)
                .min(MAX_TOKENS),
        }
    }
}

/// A whole (non-streamed) response body: an object, with usage if the provider sent it.
#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    usage: Option<RawUsage>,
}

/// Reads a non-streamed response. `Err` when the body is not a JSON object: the upstream
/// answered in a format we do not speak.
pub fn from_body(body: &[u8]) -> Result<Option<TokenCounts>, serde_json::Error> {
    let body: Body = serde_json::from_slice(body)?;
    Ok(body
        .usage
        .filter(|usage| usage.kind.as_deref() != Some("duration"))
        .map(TokenCounts::from))
}

/// An event of an image or transcription stream that reports an error: `"type": "error"`,
/// or an `error` object.
pub fn is_error_event(data: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Event<'a> {
        #[serde(default, rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        error: Option<IgnoredAny>,
    }
    serde_json::from_slice::<Event<'_>>(data)
        .is_ok_and(|event| event.error.is_some() || event.kind.as_deref() == Some("error"))
}

/// A transcription's length: `usage` of `"type": "duration"`, or a verbose transcript's
/// `duration`.
#[derive(Deserialize)]
struct Transcript {
    #[serde(default)]
    usage: Option<Duration>,
    #[serde(default)]
    duration: Option<f64>,
}

#[derive(Deserialize)]
struct Duration {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    seconds: Option<f64>,
}

/// The seconds of audio a transcription answer says it heard, rounded up.
pub fn audio_seconds(body: &[u8]) -> Option<u64> {
    let transcript: Transcript = serde_json::from_slice(body).ok()?;
    let seconds = transcript
        .usage
        .filter(|usage| usage.kind.as_deref() == Some("duration"))
        .and_then(|usage| usage.seconds)
        .or(transcript.duration)?;
    (seconds.is_finite() && seconds >= 0.0).then(|| seconds.ceil().min(86_400.0 * 366.0) as u64)
}

#[derive(Deserialize)]
struct Groq {
    #[serde(default)]
    usage: Option<RawUsage>,
}

/// What the relay needs from one streamed chunk.
#[derive(Deserialize)]
struct RawChunk<'a> {
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    x_groq: Option<Groq>,
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    /// A legacy completion's piece of text.
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(default, borrow)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(default, borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<std::borrow::Cow<'a, str>>,
}

/// One streamed chunk, read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    pub usage: Option<TokenCounts>,
    /// A chunk that only carries usage (`"choices": []`), as `include_usage` produces.
    pub usage_only: bool,
    /// Whether the chunk carries generated text or tool-call pieces.
    pub has_output: bool,
    /// An error object in the stream.
    pub is_error: bool,
    /// Bytes of generated text and tool-call pieces in the chunk.
    pub output_bytes: usize,
}

/// Reads a chunk's data, appending its generated text to `text` (up to `text_cap` bytes) for
/// counting in case the provider reports no usage. `Err` when it is not a JSON object.
pub fn read_chunk(
    data: &[u8],
    text: &mut String,
    text_cap: usize,
) -> Result<Chunk, serde_json::Error> {
    let raw: RawChunk<'_> = serde_json::from_slice(data)?;
    let mut chunk = Chunk {
        is_error: raw.error.is_some(),
        ..Chunk::default()
    };
    let usage = raw.usage.or(raw.x_groq.and_then(|g| g.usage));
    let no_choices = raw.choices.as_ref().is_none_or(Vec::is_empty);
    chunk.usage_only = usage.is_some() && no_choices;
    chunk.usage = usage.map(TokenCounts::from);
    for choice in raw.choices.iter().flatten() {
        let mut append = |piece: &str| {
            chunk.has_output |= !piece.is_empty();
            chunk.output_bytes += piece.len();
            if text.len() + piece.len() <= text_cap {
                text.push_str(piece);
            }
        };
        if let Some(piece) = &choice.text {
            append(piece);
        }
        let Some(delta) = &choice.delta else { continue };
        if let Some(content) = &delta.content {
            append(content);
        }
        for call in delta.tool_calls.iter().flatten() {
            if let Some(function) = &call.function {
                if let Some(name) = &function.name {
                    append(name);
                }
                if let Some(arguments) = &function.arguments {
                    append(arguments);
                }
            }
        }
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_from_a_response() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],
            "usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,
                     "prompt_tokens_details":{"cached_tokens":4}}}"#;
        assert_eq!(
            from_body(body).unwrap(),
            Some(TokenCounts {
                prompt: 10,
                completion: 2,
                cached: 4
            })
        );
        assert_eq!(from_body(br#"{"data":[]}"#).unwrap(), None);
        let whisper = br#"{"text":"hi","usage":{"type":"duration","seconds":3}}"#;
        assert_eq!(audio_seconds(whisper), Some(3));
        assert_eq!(from_body(whisper).unwrap(), None, "seconds, not tokens");
        assert_eq!(audio_seconds(br#"{"text":"hi","duration":2.2}"#), Some(3));
        assert_eq!(
            audio_seconds(br#"{"text":"hi","usage":{"type":"tokens"}}"#),
            None
        );
        assert_eq!(audio_seconds(b"plain text"), None);
        assert!(is_error_event(
            br#"{"type":"error","error":{"message":"m"}}"#
        ));
        assert!(!is_error_event(
            br#"{"type":"transcript.text.delta","delta":"hi"}"#
        ));
        // The image and audio endpoints' names.
        assert_eq!(
            from_body(br#"{"usage":{"input_tokens":50,"output_tokens":4160,"total_tokens":4210}}"#)
                .unwrap(),
            Some(TokenCounts {
                prompt: 50,
                completion: 4160,
                cached: 0
            })
        );
        assert!(from_body(b"<html>oops</html>").is_err());
        assert!(from_body(b"[1,2]").is_err());
        let huge =
            from_body(br#"{"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":1}}"#)
                .unwrap()
                .unwrap();
        assert_eq!(huge.prompt, MAX_TOKENS);
    }

    #[test]
    fn reads_stream_chunks() {
        let mut text = String::new();
        let content = read_chunk(
            br#"{"choices":[{"index":0,"delta":{"content":"Hel"}}],"usage":null}"#,
            &mut text,
            100,
        )
        .unwrap();
        assert!(content.has_output && content.usage.is_none() && !content.usage_only);
        let call = read_chunk(
            br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]}}]}"#,
            &mut text,
            100,
        )
        .unwrap();
        assert!(call.has_output);
        assert_eq!(text, "Hel{\"ci");
        let usage = read_chunk(
            br#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#,
            &mut text,
            100,
        )
        .unwrap();
        assert!(usage.usage_only);
        assert_eq!(usage.usage.unwrap().completion, 7);
        let groq = read_chunk(
            br#"{"choices":[{"delta":{},"finish_reason":"stop"}],"x_groq":{"usage":{"prompt_tokens":1,"completion_tokens":2}}}"#,
            &mut text,
            100,
        )
        .unwrap();
        assert_eq!(groq.usage.unwrap().prompt, 1);
        assert!(!groq.usage_only);
        assert!(
            read_chunk(br#"{"error":{"message":"overloaded"}}"#, &mut text, 100)
                .unwrap()
                .is_error
        );
        assert!(read_chunk(b"{not json", &mut text, 100).is_err());
    }
}
