//! The gateway's configuration: raw tables as written in `keygate.toml` (unknown fields are
//! errors), resolved into checked specs that the router trusts.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::credential::CredentialRef;
use crate::price::{ModelPrice, PriceTable};
use crate::provider::ProviderKind;
use crate::strategy::Strategy;

/// `[providers.NAME]`: where a provider is and which credential it takes by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub kind: ProviderKind,
    pub base_url: Option<String>,
    /// Azure OpenAI's `api-version`.
    pub api_version: Option<String>,
    pub credential: Option<String>,
    pub connect_timeout_ms: Option<u64>,
}

/// `[model_groups.ALIAS]`: the deployments behind an alias and how to choose among them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFile {
    #[serde(default)]
    pub strategy: Strategy,
    pub deployments: Vec<DeploymentFile>,
    /// Aliases tried in order when every deployment of this one failed.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Further attempts within the group after the first one fails.
    pub retries: Option<u32>,
    /// What translation does with a hint the target cannot take (a cache marker, context
    /// editing, deferred tool loading, thinking for a model that does not reason): `drop`
    /// it (the default; the answer means the same) or `refuse` the request.
    #[serde(default, skip_serializing_if = "Hints::is_default")]
    pub hints: Hints,
    /// Record prompts and answers on this group's trace spans (OpenTelemetry's
    /// `gen_ai.input.messages` and `gen_ai.output.messages`). Off by default: traces carry no
    /// content unless an operator turns it on here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trace_content: bool,
    /// Answers reused for the same request (see [`crate::cache_policy`]); off without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::cache_policy::CacheFile>,
}

/// A group's choice for hints translation cannot carry (see [`GroupFile::hints`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hints {
    #[default]
    Drop,
    Refuse,
}

impl Hints {
    fn is_default(&self) -> bool {
        *self == Self::Drop
    }
}

/// One deployment: a model at a provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFile {
    pub provider: String,
    pub model: String,
    /// Overrides the provider's credential.
    pub credential: Option<String>,
    pub weight: Option<u32>,
    /// Requests per minute this node sends it at most.
    pub rpm: Option<u32>,
    /// Tokens per minute this node sends it at most.
    pub tpm: Option<u64>,
    /// The most output the model can give: a translated request asking for more (a coding
    /// agent sizes its requests for another provider's models) asks for this much.
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub timeouts: TimeoutsFile,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    /// Overrides the provider's `connect_timeout_ms` for this deployment.
    pub connect_ms: Option<u64>,
    pub first_byte_ms: Option<u64>,
    pub chunk_gap_ms: Option<u64>,
    pub total_ms: Option<u64>,
}

/// `[prices."MODEL"]`: dollars per million tokens, as decimal strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFile {
    pub input: String,
    pub output: String,
    pub cached_input: Option<String>,
    /// Dollars per image, per minute of audio, per million characters of speech input.
    pub per_image: Option<String>,
    pub per_audio_minute: Option<String>,
    pub per_million_characters: Option<String>,
}

/// `[gateway]`: limits and the tuning of retries and breakers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuningFile {
    pub body_limit_bytes: Option<usize>,
    /// The largest multipart upload (an audio file to transcribe), streamed upstream.
    pub upload_limit_bytes: Option<usize>,
    pub retry_base_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    pub max_retry_after_seconds: Option<u64>,
    pub breaker_failures: Option<u32>,
    pub breaker_open_seconds: Option<u64>,
    /// `max_tokens` sent to Anthropic when a translated request names none (Anthropic
    /// requires it).
    pub default_max_tokens: Option<u64>,
    /// The only Anthropic betas clients may ask for in `anthropic-beta`; unset, any.
    pub anthropic_beta: Option<Vec<String>>,
}

/// Everything the gateway reads from the file: the `[gateway]`, `[providers.*]`,
/// `[model_groups.*]` and `[prices.*]` tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    #[serde(default)]
    pub gateway: TuningFile,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderFile>,
    #[serde(default)]
    pub model_groups: BTreeMap<String, GroupFile>,
    #[serde(default)]
    pub prices: BTreeMap<String, PriceFile>,
}

impl GatewayFile {
    /// Reads the gateway's tables from TOML text that holds nothing else.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text)
            .map_err(|err| ConfigError::invalid("gateway configuration", err.message()))
    }
}

/// Timeouts of one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `None`: the provider's connect timeout.
    pub connect: Option<Duration>,
    pub first_byte: Duration,
    pub chunk_gap: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: None,
            first_byte: Duration::from_secs(60),
            chunk_gap: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// Limits, retries and breakers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    pub body_limit: usize,
    pub upload_limit: usize,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A `Retry-After` longer than this is not waited for: the next deployment is tried.
    pub max_retry_after: Duration,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    pub default_max_tokens: u64,
    pub anthropic_beta: crate::beta::BetaPolicy,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            body_limit: 8 * 1024 * 1024,
            // OpenAI's own limit on an audio file.
            upload_limit: 25 * 1024 * 1024,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
            breaker_failures: 5,
            breaker_open: Duration::from_secs(30),
            default_max_tokens: 4096,
            anthropic_beta: crate::beta::BetaPolicy::any(),
        }
    }
}

/// A resolved provider.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_version: Option<String>,
    pub connect_timeout: Duration,
}

/// A resolved credential: read from the environment already, or found in the vault per request.
#[derive(Debug, Clone)]
pub enum Credential {
    Value(SecretString),
    Vault(crate::credential::SecretRef),
    None,
}

#[derive(Debug, Clone)]
pub struct DeploymentSpec {
    /// `provider/model`, unique within its group.
    pub id: String,
    pub provider: String,
    pub model: String,
    pub credential: Credential,
    pub weight: u32,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub alias: String,
    pub strategy: Strategy,
    pub deployments: Vec<DeploymentSpec>,
    pub fallbacks: Vec<String>,
    pub retries: u32,
    pub hints: Hints,
    pub trace_content: bool,
    pub cache: Option<crate::cache_policy::CachePolicy>,
}

/// The checked configuration of the whole gateway.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    pub tuning: Tuning,
    pub providers: Vec<ProviderSpec>,
    pub groups: Vec<GroupSpec>,
    pub prices: PriceTable,
}

const MAX_DEPLOYMENTS: usize = 64;
const MAX_FALLBACKS: usize = 8;
const MAX_RETRIES: u32 = 10;

fn check_name(field: &str, text: &str) -> Result<(), ConfigError> {
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            "1-128 characters: letters, digits, `_ - . : /`",
        ))
    }
}

fn millis(ms: Option<u64>, default: Duration, field: &str) -> Result<Duration, ConfigError> {
    match ms {
        None => Ok(default),
        Some(0) => Err(ConfigError::invalid(field, "must be more than 0")),
        Some(ms) if ms > 24 * 3600 * 1000 => Err(ConfigError::invalid(field, "at most a day")),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

impl GatewayConfig {
    /// Checks and resolves the file's tables. `env` looks up environment variables (so tests
    /// need not touch the process environment); `env::` credentials are read here, once.
    pub fn resolve(
        file: &GatewayFile,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let tuning = resolve_tuning(&file.gateway)?;
        let mut providers = Vec::new();
        for (name, raw) in &file.providers {
            providers.push(resolve_provider(name, raw)?);
        }
        let mut groups = Vec::new();
        for (alias, raw) in &file.model_groups {
            groups.push(resolve_group(alias, raw, file, env)?);
        }
        let mut prices = PriceTable::with_defaults();
        for (model, raw) in &file.prices {
            let field = format!("prices.{model}");
            let parse = |what: &str, text: &str| {
                text.parse().map_err(|_| {
                    ConfigError::invalid(format!("{field}.{what}"), "dollars, such as \"2.50\"")
                })
            };
            let unit = |what: &str, text: &Option<String>| match text {
                Some(text) => parse(what, text),
                None => Ok(keygate_core::MicroUsd::ZERO),
            };
            let input = parse("input", &raw.input)?;
            prices.set(
                model,
                ModelPrice {
                    input,
                    output: parse("output", &raw.output)?,
                    cached_input: match &raw.cached_input {
                        Some(text) => parse("cached_input", text)?,
                        None => input,
                    },
                    per_image: unit("per_image", &raw.per_image)?,
                    per_audio_minute: unit("per_audio_minute", &raw.per_audio_minute)?,
                    per_million_characters: unit(
                        "per_million_characters",
                        &raw.per_million_characters,
                    )?,
                },
            );
        }
        Ok(Self {
            tuning,
            providers,
            groups,
            prices,
        })
    }
}

fn resolve_tuning(raw: &TuningFile) -> Result<Tuning, ConfigError> {
    let default = Tuning::default();
    let body_limit = raw.body_limit_bytes.unwrap_or(default.body_limit);
    if !(1024..=64 * 1024 * 1024).contains(&body_limit) {
        return Err(ConfigError::invalid(
            "gateway.body_limit_bytes",
            "between 1 KiB and 64 MiB",
        ));
    }
    let upload_limit = raw.upload_limit_bytes.unwrap_or(default.upload_limit);
    if !(1024..=1024 * 1024 * 1024).contains(&upload_limit) {
        return Err(ConfigError::invalid(
            "gateway.upload_limit_bytes",
            "between 1 KiB and 1 GiB",
        ));
    }
    let breaker_failures = raw.breaker_failures.unwrap_or(default.breaker_failures);
    if breaker_failures == 0 {
        return Err(ConfigError::invalid(
            "gateway.breaker_failures",
            "must be at least 1",
        ));
    }
    Ok(Tuning {
        body_limit,
        upload_limit,
        retry_base: millis(
            raw.retry_base_ms,
            default.retry_base,
            "gateway.retry_base_ms",
        )?,
        retry_max: millis(raw.retry_max_ms, default.retry_max, "gateway.retry_max_ms")?,
        max_retry_after: raw
            .max_retry_after_seconds
            .map_or(default.max_retry_after, Duration::from_secs),
        breaker_failures,
        breaker_open: millis(
            raw.breaker_open_seconds.map(|s| s.saturating_mul(1000)),
            default.breaker_open,
            "gateway.breaker_open_seconds",
        )?,
        default_max_tokens: match raw.default_max_tokens {
            None => default.default_max_tokens,
            Some(n) if (1..=1_000_000).contains(&n) => n,
            Some(_) => {
                return Err(ConfigError::invalid(
                    "gateway.default_max_tokens",
                    "between 1 and 1000000",
                ));
            }
        },
        anthropic_beta: crate::beta::BetaPolicy::resolve(raw.anthropic_beta.as_deref())?,
    })
}

fn resolve_provider(name: &str, raw: &ProviderFile) -> Result<ProviderSpec, ConfigError> {
    let field = format!("providers.{name}");
    check_name(&field, name)?;
    let preset = raw.kind.preset();
    let base_url = raw
        .base_url
        .clone()
        .or_else(|| preset.base_url.map(str::to_owned))
        .ok_or_else(|| {
            ConfigError::invalid(
                format!("{field}.base_url"),
                format!("required for kind `{}`", raw.kind.as_str()),
            )
        })?;
    let parsed = url::Url::parse(&base_url)
        .map_err(|_| ConfigError::invalid(format!("{field}.base_url"), "not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.query().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(ConfigError::invalid(
            format!("{field}.base_url"),
            "an http(s) URL without credentials or a query",
        ));
    }
    if raw.api_version.is_some() && raw.kind != ProviderKind::Azure {
        return Err(ConfigError::invalid(
            format!("{field}.api_version"),
            "only Azure OpenAI takes an api_version",
        ));
    }
    Ok(ProviderSpec {
        name: name.to_owned(),
        kind: raw.kind,
        base_url: base_url.trim_end_matches('/').to_owned(),
        api_version: raw.api_version.clone(),
        connect_timeout: millis(
            raw.connect_timeout_ms,
            Duration::from_secs(5),
            &format!("{field}.connect_timeout_ms"),
        )?,
    })
}

fn resolve_group(
    alias: &str,
    raw: &GroupFile,
    file: &GatewayFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GroupSpec, ConfigError> {
    let field = format!("model_groups.{alias}");
    check_name(&field, alias)?;
    if raw.deployments.is_empty() || raw.deployments.len() > MAX_DEPLOYMENTS {
        return Err(ConfigError::invalid(
            format!("{field}.deployments"),
            "between 1 and 64 deployments",
        ));
    }
    if raw.fallbacks.len() > MAX_FALLBACKS {
        return Err(ConfigError::invalid(
            format!("{field}.fallbacks"),
            "at most 8 fallbacks",
        ));
    }
    for fallback in &raw.fallbacks {
        if fallback == alias {
            return Err(ConfigError::invalid(
                format!("{field}.fallbacks"),
                "a group cannot fall back to itself",
            ));
        }
        if !file.model_groups.contains_key(fallback) {
            return Err(ConfigError::UnknownGroup {
                field: format!("{field}.fallbacks"),
                name: fallback.clone(),
            });
        }
    }
    let retries = raw.retries.unwrap_or(2);
    if retries > MAX_RETRIES {
        return Err(ConfigError::invalid(
            format!("{field}.retries"),
            "at most 10",
        ));
    }
    let mut ids = HashSet::new();
    let mut deployments = Vec::with_capacity(raw.deployments.len());
    for (index, deployment) in raw.deployments.iter().enumerate() {
        let field = format!("{field}.deployments[{index}]");
        let spec = resolve_deployment(&field, deployment, file, env)?;
        if !ids.insert(spec.id.clone()) {
            return Err(ConfigError::invalid(
                field,
                format!("`{}` is listed twice", spec.id),
            ));
        }
        deployments.push(spec);
    }
    Ok(GroupSpec {
        alias: alias.to_owned(),
        strategy: raw.strategy,
        deployments,
        fallbacks: raw.fallbacks.clone(),
        retries,
        hints: raw.hints,
        trace_content: raw.trace_content,
        cache: raw
            .cache
            .as_ref()
            .map(|cache| {
                crate::cache_policy::CachePolicy::resolve(&format!("{field}.cache"), cache)
            })
            .transpose()?,
    })
}

fn resolve_deployment(
    field: &str,
    raw: &DeploymentFile,
    file: &GatewayFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DeploymentSpec, ConfigError> {
    let provider =
        file.providers
            .get(&raw.provider)
            .ok_or_else(|| ConfigError::UnknownProvider {
                field: format!("{field}.provider"),
                name: raw.provider.clone(),
            })?;
    check_name(&format!("{field}.model"), &raw.model)?;
    // These two name the model in the URL's path.
    if matches!(provider.kind, ProviderKind::Azure | ProviderKind::Gemini)
        && raw.model.contains(['/', ':'])
    {
        return Err(ConfigError::invalid(
            format!("{field}.model"),
            "a model or deployment name: letters, digits, `_ - .` (without `models/`)",
        ));
    }
    let credential_field = format!("{field}.credential");
    let reference = match raw.credential.as_ref().or(provider.credential.as_ref()) {
        Some(text) => CredentialRef::parse(&credential_field, text)?,
        None if provider.kind.preset().needs_credential => {
            return Err(ConfigError::Credential {
                field: format!("providers.{}.credential", raw.provider),
                reason: "this provider needs a credential (`secret::NAME` or `env::NAME`)"
                    .to_owned(),
            });
        }
        None => CredentialRef::None,
    };
    let credential = match reference {
        CredentialRef::Env(name) => match env(&name) {
            Some(value) if !value.is_empty() => Credential::Value(SecretString::from(value)),
            _ => {
                return Err(ConfigError::MissingEnv {
                    field: credential_field,
                    name,
                });
            }
        },
        CredentialRef::Secret(secret) => Credential::Vault(secret),
        CredentialRef::None => Credential::None,
    };
    let weight = raw.weight.unwrap_or(1);
    if !(1..=10_000).contains(&weight) {
        return Err(ConfigError::invalid(
            format!("{field}.weight"),
            "between 1 and 10000",
        ));
    }
    if raw.rpm == Some(0) || raw.tpm == Some(0) {
        return Err(ConfigError::invalid(
            field,
            "rpm and tpm must be more than 0 (leave them out for no limit)",
        ));
    }
    if raw.max_output_tokens == Some(0) {
        return Err(ConfigError::invalid(
            format!("{field}.max_output_tokens"),
            "more than 0 (leave it out for no cap)",
        ));
    }
    let default = Timeouts::default();
    Ok(DeploymentSpec {
        id: format!("{}/{}", raw.provider, raw.model),
        provider: raw.provider.clone(),
        model: raw.model.clone(),
        credential,
        weight,
        rpm: raw.rpm,
        tpm: raw.tpm,
        max_output_tokens: raw.max_output_tokens,
        timeouts: Timeouts {
            connect: raw
                .timeouts
                .connect_ms
                .map(|ms| {
                    millis(
                        Some(ms),
                        default.first_byte,
                        &format!("{field}.timeouts.connect_ms"),
                    )
                })
                .transpose()?,
            first_byte: millis(
                raw.timeouts.first_byte_ms,
                default.first_byte,
                &format!("{field}.timeouts.first_byte_ms"),
            )?,
            chunk_gap: millis(
                raw.timeouts.chunk_gap_ms,
                default.chunk_gap,
                &format!("{field}.timeouts.chunk_gap_ms"),
            )?,
            total: millis(
                raw.timeouts.total_ms,
                default.total,
                &format!("{field}.timeouts.total_ms"),
            )?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> GatewayFile {
        GatewayFile::from_toml(text).unwrap()
    }

    fn env(name: &str) -> Option<String> {
        (name == "GROQ_KEY").then(|| "gsk-test".to_owned())
    }

    const TWO_PROVIDERS: &str = r#"
        [providers.openai]
        kind = "openai"
        credential = "secret::openai"

        [providers.groq]
        kind = "groq"
        credential = "env::GROQ_KEY"

        [model_groups.chat]
        strategy = "latency"
        fallbacks = ["cheap"]
        deployments = [
          { provider = "openai", model = "gpt-4o-mini", weight = 3, rpm = 100 },
          { provider = "groq", model = "llama-3.1-8b-instant", timeouts = { first_byte_ms = 2000, connect_ms = 700 } },
        ]

        [model_groups.cheap]
        deployments = [{ provider = "groq", model = "llama-3.1-8b-instant" }]

        [prices."llama-3.1-8b-instant"]
        input = "0.05"
        output = "0.08"
    "#;

    #[test]
    fn resolves_two_providers_and_a_fallback() {
        let config = GatewayConfig::resolve(&parse(TWO_PROVIDERS), &env).unwrap();
        let chat = config.groups.iter().find(|g| g.alias == "chat").unwrap();
        assert_eq!(chat.strategy, Strategy::Latency);
        assert_eq!(chat.fallbacks, ["cheap"]);
        assert_eq!(chat.retries, 2);
        assert_eq!(chat.deployments[0].id, "openai/gpt-4o-mini");
        assert_eq!(chat.deployments[0].weight, 3);
        assert!(matches!(
            chat.deployments[0].credential,
            Credential::Vault(_)
        ));
        assert!(matches!(
            chat.deployments[1].credential,
            Credential::Value(_)
        ));
        assert_eq!(
            chat.deployments[1].timeouts.first_byte,
            Duration::from_secs(2)
        );
        assert_eq!(
            chat.deployments[1].timeouts.connect,
            Some(Duration::from_millis(700))
        );
        assert_eq!(chat.deployments[0].timeouts.connect, None);
        let groq = config.providers.iter().find(|p| p.name == "groq").unwrap();
        assert_eq!(groq.base_url, "https://api.groq.com/openai/v1");
        assert!(config.prices.get("llama-3.1-8b-instant").is_some());
    }

    #[test]
    fn refuses_what_cannot_work() {
        let cases = [
            (
                TWO_PROVIDERS.replace("env::GROQ_KEY", "env::NOT_SET"),
                "NOT_SET",
            ),
            (
                TWO_PROVIDERS.replace("fallbacks = [\"cheap\"]", "fallbacks = [\"nope\"]"),
                "unknown model group `nope`",
            ),
            (
                TWO_PROVIDERS.replace(
                    "provider = \"groq\", model = \"llama-3.1-8b-instant\" }]",
                    "provider = \"gorq\", model = \"x\" }]",
                ),
                "unknown provider `gorq`",
            ),
            (
                TWO_PROVIDERS.replace("secret::openai", "sk-live-123"),
                "never paste a key",
            ),
            (TWO_PROVIDERS.replace("weight = 3", "weight = 0"), "weight"),
            (
                TWO_PROVIDERS.replace("input = \"0.05\"", "input = \"cheap\""),
                "prices.llama-3.1-8b-instant.input",
            ),
            (
                "[providers.az]\nkind = \"azure\"\ncredential = \"none\"\n".to_owned(),
                "base_url",
            ),
        ];
        for (text, expected) in cases {
            let err = GatewayConfig::resolve(&parse(&text), &env).unwrap_err();
            assert!(err.to_string().contains(expected), "{err} / {expected}");
            assert!(!err.to_string().contains("sk-live-123"));
        }
    }
}
