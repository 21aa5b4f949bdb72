//! The OpenAI-compatible provider family: one wire format, and presets that know each
//! provider's base URL, how it takes a credential and what it supports.

use serde::Deserialize;

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
}

/// How the credential travels upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <credential>`.
    Bearer,
    /// `api-key: <credential>` (Azure OpenAI).
    ApiKeyHeader,
}

/// What a preset knows about a provider.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The base URL that the OpenAI paths (`/chat/completions`, …) are appended to; `None`
    /// when every deployment names its own.
    pub base_url: Option<&'static str>,
    pub auth: AuthStyle,
    /// Whether the provider needs a credential at all (local servers do not).
    pub needs_credential: bool,
    /// Whether the provider honours `stream_options.include_usage`. Where it does not, usage
    /// comes from whatever the stream reports, or is counted.
    pub stream_usage_option: bool,
}

impl ProviderKind {
    pub fn preset(self) -> Preset {
        let hosted = |base_url, stream_usage_option| Preset {
            base_url: Some(base_url),
            auth: AuthStyle::Bearer,
            needs_credential: true,
            stream_usage_option,
        };
        match self {
            Self::Openai => hosted("https://api.openai.com/v1", true),
            Self::Azure => Preset {
                base_url: None,
                auth: AuthStyle::ApiKeyHeader,
                needs_credential: true,
                stream_usage_option: true,
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
                auth: AuthStyle::Bearer,
                needs_credential: false,
                stream_usage_option: true,
            },
            Self::Vllm => Preset {
                base_url: Some("http://127.0.0.1:8000/v1"),
                auth: AuthStyle::Bearer,
                needs_credential: false,
                stream_usage_option: true,
            },
            Self::OpenaiCompatible => Preset {
                base_url: None,
                auth: AuthStyle::Bearer,
                needs_credential: false,
                stream_usage_option: false,
            },
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
        }
    }
}

/// The API endpoints the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Embeddings,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat/completions",
            Self::Embeddings => "embeddings",
        }
    }

    /// The name recorded in usage records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat.completions",
            Self::Embeddings => "embeddings",
        }
    }
}

/// The URL of `endpoint` for a deployment of `model` at `base_url`. Azure OpenAI addresses
/// a deployment in the path and a version in the query; the others take the model in the body.
pub fn endpoint_url(
    kind: ProviderKind,
    base_url: &str,
    api_version: Option<&str>,
    model: &str,
    endpoint: Endpoint,
) -> String {
    let base = base_url.trim_end_matches('/');
    match kind {
        ProviderKind::Azure => format!(
            "{base}/openai/deployments/{model}/{}?api-version={}",
            endpoint.path(),
            api_version.unwrap_or(AZURE_API_VERSION)
        ),
        _ => format!("{base}/{}", endpoint.path()),
    }
}

/// The Azure OpenAI data-plane version used when a provider names none.
pub const AZURE_API_VERSION: &str = "2024-10-21";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_per_family_member() {
        assert_eq!(
            endpoint_url(
                ProviderKind::Openai,
                "https://api.openai.com/v1/",
                None,
                "gpt-4o",
                Endpoint::ChatCompletions
            ),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            endpoint_url(
                ProviderKind::Azure,
                "https://res.openai.azure.com",
                Some("2025-01-01-preview"),
                "prod-4o",
                Endpoint::Embeddings
            ),
            "https://res.openai.azure.com/openai/deployments/prod-4o/embeddings?api-version=2025-01-01-preview"
        );
        assert_eq!(ProviderKind::Azure.preset().auth, AuthStyle::ApiKeyHeader);
        assert!(!ProviderKind::Ollama.preset().needs_credential);
        assert_eq!(
            ProviderKind::Groq.preset().base_url,
            Some("https://api.groq.com/openai/v1")
        );
    }
}
