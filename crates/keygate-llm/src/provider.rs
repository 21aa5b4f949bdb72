//! The providers keygate routes to: the OpenAI-compatible family (one wire format), Anthropic
//! and Google Gemini, with presets that know each provider's base URL, wire format, how it takes
//! a credential and what it supports.

use serde::Deserialize;

use crate::client::ClientFormat;
use crate::translate::Format;

/// A provider of the OpenAI-compatible family. A closed set: adding one is a code change
/// with its own preset and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Openai,
    Azure,
    Mistral,
    Groq,
    Together,
    Fireworks,
    Deepseek,
    Xai,
    Openrouter,
    Ollama,
    Vllm,
    /// Any other server that speaks the OpenAI API; `base_url` is required.
    OpenaiCompatible,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini API (`generateContent`).
    Gemini,
}

/// How the credential travels upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <credential>`.
    Bearer,
    /// `api-key: <credential>` (Azure OpenAI).
    ApiKeyHeader,
    /// `x-api-key: <credential>` (Anthropic).
    XApiKey,
    /// `x-goog-api-key: <credential>` (Gemini).
    GoogApiKey,
}

impl AuthStyle {
    /// The header that carries the credential.
    pub fn header(self) -> &'static str {
        match self {
            Self::Bearer => "authorization",
            Self::ApiKeyHeader => "api-key",
            Self::XApiKey => "x-api-key",
            Self::GoogApiKey => "x-goog-api-key",
        }
    }
}

/// What a preset knows about a provider.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The base URL that the API's paths (`/chat/completions`, `/messages`, …) are appended
    /// to; `None` when every deployment names its own.
    pub base_url: Option<&'static str>,
    /// The wire format the provider speaks.
    pub format: Format,
    pub auth: AuthStyle,
    /// Whether the provider needs a credential at all (local servers do not).
    pub needs_credential: bool,
    /// Whether the provider honours `stream_options.include_usage`. Where it does not, usage
    /// comes from whatever the stream reports, or is counted.
    pub stream_usage_option: bool,
    /// Whether a translated request names its limit `max_completion_tokens` (OpenAI and
    /// Azure, whose reasoning models refuse `max_tokens`) rather than `max_tokens`.
    pub max_completion_tokens: bool,
    /// Whether the provider serves OpenAI's Responses API at `/responses`: a Responses
    /// request goes there as the client sent it; to the others it is translated.
    pub responses: bool,
}

impl Preset {
    /// The format a deployment of this provider is spoken to in, for a client of `client`.
    pub fn format_for(&self, client: ClientFormat) -> Format {
        if client == ClientFormat::Responses && self.responses {
            Format::Responses
        } else {
            self.format
        }
    }
}

impl ProviderKind {
    pub fn preset(self) -> Preset {
        let hosted = |base_url, stream_usage_option| Preset {
            base_url: Some(base_url),
            format: Format::OpenAi,
            auth: AuthStyle::Bearer,
            needs_credential: true,
            stream_usage_option,
            max_completion_tokens: false,
            responses: false,
        };
        match self {
            Self::Openai => Preset {
                max_completion_tokens: true,
                responses: true,
                ..hosted("https://api.openai.com/v1", true)
            },
            Self::Azure => Preset {
                base_url: None,
                format: Format::OpenAi,
                auth: AuthStyle::ApiKeyHeader,
                needs_credential: true,
                stream_usage_option: true,
                max_completion_tokens: true,
                responses: false,
            },
            Self::Mistral => hosted("https://api.mistral.ai/v1", false),
            Self::Groq => hosted("https://api.groq.com/openai/v1", true),
            Self::Together => hosted("https://api.together.xyz/v1", false),
            Self::Fireworks => hosted("https://api.fireworks.ai/inference/v1", true),
            Self::Deepseek => hosted("https://api.deepseek.com/v1", true),
            Self::Xai => hosted("https://api.x.ai/v1", true),
            Self::Openrouter => hosted("https://openrouter.ai/api/v1", false),
            Self::Ollama => Preset {
                base_url: Some("http://127.0.0.1:11434/v1"),
                format: Format::OpenAi,
                auth: AuthStyle::Bearer,
                needs_credential: false,
                stream_usage_option: true,
                max_completion_tokens: false,
                responses: false,
            },
            Self::Vllm => Preset {
                base_url: Some("http://127.0.0.1:8000/v1"),
                format: Format::OpenAi,
                auth: AuthStyle::Bearer,
                needs_credential: false,
                stream_usage_option: true,
                max_completion_tokens: false,
                responses: false,
            },
            Self::OpenaiCompatible => Preset {
                base_url: None,
                format: Format::OpenAi,
                auth: AuthStyle::Bearer,
                needs_credential: false,
                stream_usage_option: false,
                max_completion_tokens: false,
                responses: false,
            },
            // Both report usage in every stream without being asked.
            Self::Anthropic => Preset {
                base_url: Some("https://api.anthropic.com/v1"),
                format: Format::Anthropic,
                auth: AuthStyle::XApiKey,
                needs_credential: true,
                stream_usage_option: false,
                max_completion_tokens: false,
                responses: false,
            },
            Self::Gemini => Preset {
                base_url: Some("https://generativelanguage.googleapis.com/v1beta"),
                format: Format::Gemini,
                auth: AuthStyle::GoogApiKey,
                needs_credential: true,
                stream_usage_option: false,
                max_completion_tokens: false,
                responses: false,
            },
        }
    }

    /// Whether the provider serves one of the OpenAI endpoints keygate passes through, as
    /// its API reference lists them. `openai-compatible` servers are taken at their word:
    /// whatever they do not serve answers 404, which the client sees as its error.
    pub fn serves(self, endpoint: Endpoint) -> bool {
        use Endpoint::{Completions, ImageGenerations, Moderations, Speech, Transcriptions};
        match self {
            Self::Openai | Self::OpenaiCompatible => true,
            Self::Azure => matches!(
                endpoint,
                Completions | ImageGenerations | Speech | Transcriptions
            ),
            Self::Mistral => matches!(endpoint, Moderations | Transcriptions),
            Self::Groq => matches!(endpoint, Speech | Transcriptions),
            Self::Together => matches!(
                endpoint,
                Completions | ImageGenerations | Speech | Transcriptions
            ),
            Self::Fireworks | Self::Openrouter | Self::Ollama => endpoint == Completions,
            Self::Xai => endpoint == ImageGenerations,
            Self::Vllm => matches!(endpoint, Completions | Transcriptions),
            Self::Deepseek | Self::Anthropic | Self::Gemini => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Azure => "azure",
            Self::Mistral => "mistral",
            Self::Groq => "groq",
            Self::Together => "together",
            Self::Fireworks => "fireworks",
            Self::Deepseek => "deepseek",
            Self::Xai => "xai",
            Self::Openrouter => "openrouter",
            Self::Ollama => "ollama",
            Self::Vllm => "vllm",
            Self::OpenaiCompatible => "openai-compatible",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }
}

/// The API endpoints the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// OpenAI's `/v1/chat/completions`.
    ChatCompletions,
    /// OpenAI's `/v1/embeddings`.
    Embeddings,
    /// Anthropic's `/v1/messages`.
    Messages,
    /// Anthropic's `/v1/messages/count_tokens`.
    CountTokens,
    /// OpenAI's `/v1/responses`.
    Responses,
    /// OpenAI's legacy `/v1/completions` (a prompt, not messages).
    Completions,
    /// OpenAI's `/v1/moderations`.
    Moderations,
    /// OpenAI's `/v1/images/generations`.
    ImageGenerations,
    /// OpenAI's `/v1/audio/speech`: JSON in, audio out.
    Speech,
    /// OpenAI's `/v1/audio/transcriptions`: a multipart upload in.
    Transcriptions,
}

impl Endpoint {
    /// The OpenAI endpoints passed through as sent.
    pub const PASSTHROUGH: [Self; 5] = [
        Self::Completions,
        Self::Moderations,
        Self::ImageGenerations,
        Self::Speech,
        Self::Transcriptions,
    ];

    /// The name recorded in usage records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat.completions",
            Self::Embeddings => "embeddings",
            Self::Messages => "messages",
            Self::CountTokens => "messages.count_tokens",
            Self::Responses => "responses",
            Self::Completions => "completions",
            Self::Moderations => "moderations",
            Self::ImageGenerations => "images.generations",
            Self::Speech => "audio.speech",
            Self::Transcriptions => "audio.transcriptions",
        }
    }

    /// The path clients call, for messages.
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Messages => "/v1/messages",
            Self::CountTokens => "/v1/messages/count_tokens",
            Self::Responses => "/v1/responses",
            Self::Completions => "/v1/completions",
            Self::Moderations => "/v1/moderations",
            Self::ImageGenerations => "/v1/images/generations",
            Self::Speech => "/v1/audio/speech",
            Self::Transcriptions => "/v1/audio/transcriptions",
        }
    }

    /// The path of an OpenAI endpoint that keygate passes through as the client sent it (only
    /// the model changes), below the API's base URL.
    pub fn passthrough_path(self) -> Option<&'static str> {
        Some(match self {
            Self::Completions => "completions",
            Self::Moderations => "moderations",
            Self::ImageGenerations => "images/generations",
            Self::Speech => "audio/speech",
            Self::Transcriptions => "audio/transcriptions",
            _ => return None,
        })
    }

    /// The format the client speaks.
    pub fn format(self) -> ClientFormat {
        match self {
            Self::ChatCompletions
            | Self::Embeddings
            | Self::Completions
            | Self::Moderations
            | Self::ImageGenerations
            | Self::Speech
            | Self::Transcriptions => ClientFormat::OpenAi,
            Self::Messages | Self::CountTokens => ClientFormat::Anthropic,
            Self::Responses => ClientFormat::Responses,
        }
    }
}

/// What a deployment is asked to do: a chat (streamed or not) or embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    Chat {
        stream: bool,
    },
    Embeddings,
    /// Anthropic's token count of a Messages request.
    CountTokens,
    /// OpenAI's Responses API, where the provider serves it (see [`Preset::responses`]).
    Responses {
        stream: bool,
    },
    /// One of the OpenAI endpoints passed through as sent ([`Endpoint::passthrough_path`]),
    /// where the provider serves it ([`ProviderKind::serves`]).
    Passthrough(Endpoint),
}

/// The URL of `call` for a deployment of `model` at `base_url`, or `None` when the provider
/// has no such API. Azure OpenAI addresses a deployment in the path and a version in the
/// query; Gemini names the model and the streaming choice in the path; the others take both
/// in the body.
pub fn endpoint_url(
    kind: ProviderKind,
    base_url: &str,
    api_version: Option<&str>,
    model: &str,
    call: Call,
) -> Option<String> {
    let base = base_url.trim_end_matches('/');
    let openai_path = match call {
        Call::Chat { .. } => "chat/completions",
        Call::Embeddings => "embeddings",
        Call::Responses { .. } => {
            return kind.preset().responses.then(|| format!("{base}/responses"));
        }
        Call::CountTokens => {
            return (kind == ProviderKind::Anthropic)
                .then(|| format!("{base}/messages/count_tokens"));
        }
        Call::Passthrough(endpoint) => {
            if !kind.serves(endpoint) {
                return None;
            }
            endpoint.passthrough_path()?
        }
    };
    Some(match (kind, call) {
        (ProviderKind::Azure, _) => format!(
            "{base}/openai/deployments/{model}/{openai_path}?api-version={}",
            api_version.unwrap_or(AZURE_API_VERSION)
        ),
        (ProviderKind::Anthropic, Call::Chat { .. }) => format!("{base}/messages"),
        (ProviderKind::Gemini, Call::Chat { stream: false }) => {
            format!("{base}/models/{model}:generateContent")
        }
        (ProviderKind::Gemini, Call::Chat { stream: true }) => {
            format!("{base}/models/{model}:streamGenerateContent?alt=sse")
        }
        (ProviderKind::Gemini, Call::Embeddings) => {
            format!("{base}/models/{model}:batchEmbedContents")
        }
        (ProviderKind::Anthropic, Call::Embeddings) => return None,
        _ => format!("{base}/{openai_path}"),
    })
}

/// The Azure OpenAI data-plane version used when a provider names none.
pub const AZURE_API_VERSION: &str = "2024-10-21";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_per_provider() {
        let chat = Call::Chat { stream: false };
        let url = |kind, base, version, model, call| {
            endpoint_url(kind, base, version, model, call).unwrap_or_default()
        };
        assert_eq!(
            url(
                ProviderKind::Openai,
                "https://api.openai.com/v1/",
                None,
                "gpt-4o",
                chat
            ),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            url(
                ProviderKind::Azure,
                "https://res.openai.azure.com",
                Some("2025-01-01-preview"),
                "prod-4o",
                Call::Embeddings
            ),
            "https://res.openai.azure.com/openai/deployments/prod-4o/embeddings?api-version=2025-01-01-preview"
        );
        assert_eq!(
            url(
                ProviderKind::Anthropic,
                "https://api.anthropic.com/v1",
                None,
                "claude",
                chat
            ),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            url(
                ProviderKind::Gemini,
                "https://generativelanguage.googleapis.com/v1beta",
                None,
                "gemini-2.5-flash",
                Call::Chat { stream: true }
            ),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            url(
                ProviderKind::Gemini,
                "https://g",
                None,
                "m",
                Call::Embeddings
            ),
            "https://g/models/m:batchEmbedContents"
        );
        assert_eq!(
            url(
                ProviderKind::Azure,
                "https://res.openai.azure.com",
                None,
                "whisper",
                Call::Passthrough(Endpoint::Transcriptions)
            ),
            "https://res.openai.azure.com/openai/deployments/whisper/audio/transcriptions?api-version=2024-10-21"
        );
        for (kind, endpoint) in [
            (ProviderKind::Anthropic, Endpoint::Completions),
            (ProviderKind::Gemini, Endpoint::Speech),
            (ProviderKind::Groq, Endpoint::ImageGenerations),
        ] {
            assert_eq!(
                endpoint_url(kind, "https://x", None, "m", Call::Passthrough(endpoint)),
                None,
                "{kind:?} {endpoint:?}"
            );
        }
        assert_eq!(
            url(
                ProviderKind::Openai,
                "https://api.openai.com/v1",
                None,
                "tts-1",
                Call::Passthrough(Endpoint::Speech)
            ),
            "https://api.openai.com/v1/audio/speech"
        );
        assert_eq!(ProviderKind::Azure.preset().auth, AuthStyle::ApiKeyHeader);
        assert!(!ProviderKind::Ollama.preset().needs_credential);
        assert_eq!(
            ProviderKind::Groq.preset().base_url,
            Some("https://api.groq.com/openai/v1")
        );
    }
}
