//! Translation between the wire formats keygate speaks: OpenAI's Chat Completions and
//! Responses, Anthropic's Messages and Gemini's `generateContent`. Every format is read into one common form
//! ([`ir`]) and written from it: requests, whole responses, streams event by event, and
//! errors. For every field a client sends there is a written decision — translate, drop as a
//! hint, or refuse — in `translate/DECISIONS.md`, kept next to this code: content the target
//! cannot express is refused with the field named, and only hints whose absence changes no
//! answer's meaning (cache markers, context editing, deferred tool loading, thinking of earlier
//! turns) are left out, unless the group refuses hints too ([`TargetOptions::refuse_hints`]).
//! Reading a request depends on no target; [`check_target`] and the encoders add what one
//! target alone cannot say.
#![doc = ""]
#![doc = include_str!("translate/DECISIONS.md")]

pub mod anthropic;
pub mod gemini;
pub mod ir;
pub mod openai;
pub mod responses;
mod stream;
mod value;

use crate::client::{ClientError, ClientFormat};
use bytes::Bytes;

pub use self::stream::{StreamDecoder, StreamEncoder};

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    OpenAi,
    /// OpenAI's Responses API.
    Responses,
    Anthropic,
    Gemini,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Responses => "responses",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that cannot be translated. The message names the field (a path into the
/// client's request) and never quotes its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslateError {
    /// The field is valid, but the target format has no way to say it; `what` says which
    /// use of it, when the field alone does not. Reading a request finds what the common
    /// form cannot hold before any target is chosen: `target` is named when one is.
    Unsupported {
        field: String,
        what: Option<String>,
        target: Option<Format>,
    },
    /// The field is malformed.
    Invalid { field: String, reason: String },
    /// The deployment's provider does not serve the endpoint at all.
    NotServed {
        endpoint: &'static str,
        provider: &'static str,
    },
}

impl std::fmt::Display for TranslateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsupported {
                field,
                what,
                target,
            } => {
                write!(f, "`{field}`")?;
                if let Some(what) = what {
                    write!(f, " ({what})")?;
                }
                match target {
                    Some(target) => write!(f, " has no equivalent in the {target} API"),
                    None => f.write_str(" has no equivalent in the other providers' APIs"),
                }
            }
            Self::Invalid { field, reason } => write!(f, "`{field}`: {reason}"),
            Self::NotServed { endpoint, provider } => {
                write!(f, "`model`: {provider} deployments do not serve {endpoint}")
            }
        }
    }
}

impl std::error::Error for TranslateError {}

impl TranslateError {
    pub(crate) fn unsupported(field: impl Into<String>, target: Format) -> Self {
        Self::Unsupported {
            field: field.into(),
            what: None,
            target: Some(target),
        }
    }

    pub(crate) fn unsupported_use(
        field: impl Into<String>,
        what: impl Into<String>,
        target: Format,
    ) -> Self {
        Self::Unsupported {
            field: field.into(),
            what: Some(what.into()),
            target: Some(target),
        }
    }

    /// What the common form cannot hold, found while reading a request.
    pub(crate) fn untranslatable(field: impl Into<String>) -> Self {
        Self::Unsupported {
            field: field.into(),
            what: None,
            target: None,
        }
    }

    pub(crate) fn untranslatable_use(field: impl Into<String>, what: impl Into<String>) -> Self {
        Self::Unsupported {
            field: field.into(),
            what: Some(what.into()),
            target: None,
        }
    }

    /// The same error, naming the target the request was read for.
    pub fn for_target(mut self, format: Format) -> Self {
        if let Self::Unsupported { target, .. } = &mut self {
            target.get_or_insert(format);
        }
        self
    }

    /// `provider` has no such endpoint.
    pub(crate) fn not_served(
        endpoint: crate::Endpoint,
        provider: crate::provider::ProviderKind,
    ) -> Self {
        Self::NotServed {
            endpoint: endpoint.path(),
            provider: provider.as_str(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field at fault.
    pub fn field(&self) -> &str {
        match self {
            Self::Unsupported { field, .. } | Self::Invalid { field, .. } => field,
            Self::NotServed { .. } => "model",
        }
    }
}

/// The name a client of `source` gave a common request field, for errors: Anthropic's
/// clients say `tool_choice.disable_parallel_tool_use` where OpenAI's say
/// `parallel_tool_calls`.
pub(crate) fn field_name(source: Format, field: &'static str) -> &'static str {
    match (source, field) {
        (Format::Anthropic, "parallel_tool_calls") => "tool_choice.disable_parallel_tool_use",
        (Format::Anthropic, "user") => "metadata.user_id",
        (Format::Anthropic, "stop") => "stop_sequences",
        (Format::OpenAi, "thinking") => "reasoning_effort",
        (Format::Responses, "thinking") => "reasoning.effort",
        (Format::Responses, "max_tokens") => "max_output_tokens",
        (Format::Responses, "user") => "safety_identifier",
        (Format::Responses, "response_format") => "text.format",
        _ => field,
    }
}

/// The `max_tokens` a translated request for Anthropic gets when the client named none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// An upstream answer that is not in its format's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream answer is not in the {0} format")]
pub struct DecodeError(pub Format);

/// Reads a client's request into the common form. Nothing in it depends on the target: what
/// the common form cannot hold is refused here, and [`check_target`] adds what one target
/// alone cannot say.
pub fn read_request(format: ClientFormat, body: &[u8]) -> Result<ir::ChatRequest, TranslateError> {
    match format {
        ClientFormat::OpenAi => openai::decode_request(body),
        ClientFormat::Responses => responses::decode_request(body),
        ClientFormat::Anthropic => anthropic::decode_request(body),
    }
}

/// Whether a request read by [`read_request`] can be written for `target`: an Anthropic
/// prefill (a final assistant turn) only Anthropic continues; elsewhere it would be read as a
/// finished turn, and the answer would be another.
pub fn check_target(request: &ir::ChatRequest, target: Format) -> Result<(), TranslateError> {
    match request.prefill_at {
        Some(at) if target != Format::Anthropic => Err(TranslateError::unsupported_use(
            format!("messages[{at}].role"),
            "a final assistant turn, a prefill",
            target,
        )),
        _ => Ok(()),
    }
}

/// Reads a client's request for a deployment of `target`.
pub fn decode_request(
    format: ClientFormat,
    body: &[u8],
    target: Format,
) -> Result<ir::ChatRequest, TranslateError> {
    let request = read_request(format, body).map_err(|err| err.for_target(target))?;
    check_target(&request, target)?;
    Ok(request)
}

/// Writes a request for a deployment of `format` serving `model`.
pub fn encode_request(
    format: Format,
    request: &ir::ChatRequest,
    model: &str,
    options: &TargetOptions,
) -> Result<Bytes, TranslateError> {
    if options.refuse_hints
        && let Some(hint) = request.hints.first()
    {
        return Err(TranslateError::unsupported_use(
            hint.clone(),
            "a hint this group refuses to leave out",
            format,
        ));
    }
    let capped;
    let (request, options) = match options.max_output {
        Some(cap) => {
            let request = match request.max_tokens {
                Some(max) if max > cap => {
                    capped = ir::ChatRequest {
                        max_tokens: Some(cap),
                        ..request.clone()
                    };
                    &capped
                }
                _ => request,
            };
            let options = TargetOptions {
                max_tokens: options.max_tokens.min(cap),
                ..*options
            };
            (request, options)
        }
        None => (request, *options),
    };
    let options = &options;
    let value = match format {
        Format::OpenAi => openai::encode_request(request, model, options)?,
        Format::Responses => responses::encode_request(request, model, options)?,
        Format::Anthropic => anthropic::encode_request(request, model, options)?,
        Format::Gemini => gemini::encode_request(request, options)?,
    };
    Ok(Bytes::from(value.to_string()))
}

/// What a target needs that a request may not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetOptions {
    /// Sent as `max_tokens` when the request names none: Anthropic requires it.
    pub max_tokens: u64,
    /// Whether an OpenAI-compatible target honours `stream_options.include_usage`.
    pub stream_usage: bool,
    /// Whether an OpenAI-compatible target takes the limit as `max_completion_tokens`
    /// (OpenAI and Azure: their reasoning models refuse `max_tokens`).
    pub max_completion_tokens: bool,
    /// Whether the deployment's model reasons, so takes a reasoning effort (see
    /// [`reasons`]); to one that does not, thinking and effort are hints.
    pub reasoning: bool,
    /// Refuse a request that would lose a hint, rather than leave the hint out (a group's
    /// `hints = "refuse"`).
    pub refuse_hints: bool,
    /// The most output the deployment's model gives (its `max_output_tokens`): a request
    /// asking for more asks for this much.
    pub max_output: Option<u64>,
}

/// The effort a reasoning target is asked for: the client's effort, or the one its thinking
/// budget stands for; adaptive thinking alone leaves the model's own default. To a model that
/// does not reason, thinking and effort are hints: left out, or refused when hints are.
pub(crate) fn reasoning_effort(
    request: &ir::ChatRequest,
    options: &TargetOptions,
    target: Format,
) -> Result<Option<ir::Effort>, TranslateError> {
    let asked = request.thinking_budget.is_some() || request.adaptive_thinking;
    if !asked && request.effort.is_none() {
        return Ok(None);
    }
    if options.reasoning {
        return Ok(request
            .effort
            .or(request.thinking_budget.map(ir::Effort::of_budget)));
    }
    if options.refuse_hints {
        let source = request.source.unwrap_or(target);
        let field = if asked {
            field_name(source, "thinking")
        } else {
            "output_config.effort"
        };
        return Err(TranslateError::unsupported_use(
            field,
            "reasoning, for a model that does not reason",
            target,
        ));
    }
    Ok(None)
}

/// Whether `model`, served by a deployment of `format`, is a reasoning model that takes an
/// effort: OpenAI's o-series and GPT-5 family, and Gemini 3 (which takes a thinking level).
/// Anthropic's models take Anthropic's own fields.
pub fn reasons(format: Format, model: &str) -> bool {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    match format {
        Format::OpenAi | Format::Responses => {
            name.starts_with("gpt-5")
                || (name.starts_with('o') && name[1..].starts_with(|c: char| c.is_ascii_digit()))
        }
        Format::Gemini => name.starts_with("gemini-3"),
        Format::Anthropic => false,
    }
}

impl Default for TargetOptions {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            stream_usage: true,
            max_completion_tokens: false,
            reasoning: false,
            refuse_hints: false,
            max_output: None,
        }
    }
}

/// Reads an upstream's whole answer.
pub fn decode_response(format: Format, body: &[u8]) -> Result<ir::ChatResponse, DecodeError> {
    match format {
        Format::OpenAi => openai::decode_response(body),
        Format::Responses => responses::decode_response(body),
        Format::Anthropic => anthropic::decode_response(body),
        Format::Gemini => gemini::decode_response(body),
    }
    .ok_or(DecodeError(format))
}

/// Writes a whole answer in a client's format.
pub fn encode_response(format: Format, response: &ir::ChatResponse) -> Bytes {
    let value = match format {
        Format::OpenAi => openai::encode_response(response),
        Format::Responses => responses::encode_response(response),
        Format::Anthropic => anthropic::encode_response(response),
        Format::Gemini => gemini::encode_response(response),
    };
    Bytes::from(value.to_string())
}

/// Reads an upstream's error body; an unreadable one is described by its status alone.
pub fn decode_error(format: Format, status: u16, body: &[u8]) -> ir::UpstreamError {
    let message = match format {
        Format::OpenAi | Format::Responses => openai::error_message(body),
        Format::Anthropic => anthropic::error_message(body),
        Format::Gemini => gemini::error_message(body),
    };
    ir::UpstreamError {
        kind: ir::ErrorKind::from_status(status),
        message: message.unwrap_or_else(|| format!("the upstream answered {status}")),
    }
}

/// Writes an upstream's error in a client's format; `code` is keygate's stable code.
pub fn encode_error(format: ClientFormat, error: &ir::UpstreamError, code: &str) -> Bytes {
    let value = format.error_body(&ClientError::upstream(error, code));
    Bytes::from(value.to_string())
}
