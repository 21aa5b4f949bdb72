//! Configuration in layers: the TOML file, then `KEYGATE_*` variables, then command-line
//! flags, resolved into settings that the rest of the code trusts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use keygate_llm::{GatewayConfig, GatewayFile};
use keygate_server::ServerSettings;
use serde::Deserialize;

use crate::cli::StoreArgs;

mod console;
mod identity;
mod responses;
mod tls;
mod watch;

/// Keys the file and the environment may set. Anything else in the file is an error.
const KEYS: [&str; 33] = [
    "listen",
    "key_expiry_notice_days",
    "weekly_review",
    "leak_action",
    "leak_report_keys",
    "leak_reports_require_signature",
    "webhooks_allow_private",
    "webhook_retries",
    "usage_retention_days",
    "otel_endpoint",
    "metrics_listen",
    "audit_checkpoint_events",
    "audit_checkpoint_minutes",
    "kek",
    "pkcs11_module",
    "pkcs11_token",
    "pkcs11_key_label",
    "data_dir",
    "database_url",
    "master_key_file",
    "log_format",
    "request_log",
    "body_limit_bytes",
    "request_timeout_seconds",
    "key_cache_seconds",
    "store_outage_grace_seconds",
    "redis_url",
    "limits_on_redis_failure",
    "trusted_proxies",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "tls_redirect_from",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    metrics_listen: Option<String>,
    otel_endpoint: Option<String>,
    usage_retention_days: Option<u64>,
    webhooks_allow_private: Option<bool>,
    key_expiry_notice_days: Option<u64>,
    weekly_review: Option<bool>,
    leak_action: Option<keygate_server::service::LeakAction>,
    leak_report_keys: Option<Vec<watch::ReportKeyConfig>>,
    anomalies: Option<watch::AnomaliesFile>,
    console: Option<console::ConsoleFile>,
    response_store: Option<responses::ResponseStoreFile>,
    tokens: Option<identity::TokensFile>,
    /// Trusted external issuers; from the file only.
    #[serde(default)]
    federation: BTreeMap<String, identity::IssuerFile>,
    leak_reports_require_signature: Option<bool>,
    webhook_retries: Option<Vec<String>>,
    audit_checkpoint_events: Option<i64>,
    audit_checkpoint_minutes: Option<u64>,
    kek: Option<KekProvider>,
    pkcs11_module: Option<PathBuf>,
    pkcs11_token: Option<String>,
    pkcs11_key_label: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    master_key_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    request_log: Option<String>,
    body_limit_bytes: Option<usize>,
    request_timeout_seconds: Option<u64>,
    key_cache_seconds: Option<u64>,
    store_outage_grace_seconds: Option<u64>,
    redis_url: Option<String>,
    limits_on_redis_failure: Option<RedisFailure>,
    trusted_proxies: Option<OneOrMany>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_redirect_from: Option<String>,
    /// What client certificates may do; from the file only.
    #[serde(default)]
    tls_clients: Vec<tls::TlsClientFile>,
    /// The LLM gateway's tables; they come from the file only.
    #[serde(default)]
    gateway: keygate_llm::config::TuningFile,
    #[serde(default)]
    providers: BTreeMap<String, keygate_llm::config::ProviderFile>,
    #[serde(default)]
    model_groups: BTreeMap<String, keygate_llm::config::GroupFile>,
    #[serde(default)]
    prices: BTreeMap<String, keygate_llm::config::PriceFile>,
    /// Generic proxy routes; from the file only.
    #[serde(default)]
    routes: BTreeMap<String, keygate_server::proxy::RouteFile>,
}

/// Where the key-encryption key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KekProvider {
    /// The 0600 file `master_key_file`, created on first start.
    Local,
    /// The `KEYGATE_MASTER_KEY` variable: 32 bytes of base64.
    Env,
    /// A key inside a PKCS#11 token (an HSM); the PIN comes from `KEYGATE_PKCS11_PIN`.
    Pkcs11,
}

/// Where the PKCS#11 KEK lives.
#[derive(Debug, Clone)]
pub struct Pkcs11Settings {
    pub module: PathBuf,
    pub token: Option<String>,
    pub key_label: String,
}

/// A list in the file, or comma-separated text in a variable.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(self) -> Vec<String> {
        match self {
            Self::One(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Self::Many(items) => items,
        }
    }
}

/// What limits do while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailure {
    /// Count on each node, and log the outage.
    #[default]
    Local,
    /// Refuse limited requests with `limits_unavailable`.
    Closed,
}

/// Where limits are counted.
#[derive(Clone, Default)]
pub struct LimitsSettings {
    /// Redis, to share limits and key changes across nodes; `None` keeps both on each node.
    pub redis_url: Option<String>,
    pub on_redis_failure: RedisFailure,
}

impl std::fmt::Debug for LimitsSettings {
    /// The URL may hold a password: shown as set or not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitsSettings")
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[set]"))
            .field("on_redis_failure", &self.on_redis_failure)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Resolved settings: every value present and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// A listener of its own for `/metrics`; then the API's listener does not serve it.
    pub metrics_listen: Option<SocketAddr>,
    /// Where OpenTelemetry traces go (OTLP/HTTP); none, no traces.
    pub otel_endpoint: Option<String>,
    /// `None` when not configured: then `env` if `KEYGATE_MASTER_KEY` is set, else `local`.
    pub kek: Option<KekProvider>,
    pub pkcs11: Pkcs11Settings,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// How long a key stays in a node's cache without a change notice.
    pub key_cache: Duration,
    /// How long keys a node loaded keep verifying while the store cannot be reached.
    pub outage_grace: Duration,
    pub master_key_file: PathBuf,
    pub log_format: LogFormat,
    pub server: ServerSettings,
    pub limits: LimitsSettings,
    /// The LLM gateway's tables (providers, model groups, prices), as read; `serve` checks
    /// them with [`check_gateway`].
    pub gateway: GatewayFile,
    /// The `[routes.*]` tables, as read; `serve` checks them.
    pub routes: BTreeMap<String, keygate_server::proxy::RouteFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error(
        "audit_checkpoint_events is 1 to 1000000, and audit_checkpoint_minutes 1 to 10080 (a week)"
    )]
    BadCheckpoints,
    #[error("usage_retention_days is 1 to 3650")]
    BadRetention,
    #[error(
        "webhook_retries is a list of at most 20 waits from 100ms to 7d, such as [\"5s\", \"5m\", \"30m\"]"
    )]
    BadWebhookRetries,
    #[error("leak_report_keys: {0}")]
    BadReportKey(keygate_crypto::ReportKeyError),
    #[error("key_expiry_notice_days is 1 to 365")]
    BadExpiryNotice,
    #[error("[anomalies] {0}")]
    BadAnomalies(&'static str),
    #[error("[console] {0}")]
    BadConsole(&'static str),
    #[error("[response_store] {0}")]
    BadResponseStore(&'static str),
    #[error("[tokens] {0}")]
    BadTokens(&'static str),
    #[error("{0}")]
    BadFederation(String),
    #[error("{0}")]
    BadTls(String),
    #[error("[anomalies] geoip_database {0}")]
    BadGeoIp(String),
    #[error(
        "otel_endpoint is an http:// or https:// URL without a user or password, such as http://127.0.0.1:4318"
    )]
    BadOtelEndpoint,
    #[error("metrics_listen: `{0}` is not an address such as 127.0.0.1:9090")]
    BadMetricsListen(String),
    #[error("listen: `{0}` is not an address such as 127.0.0.1:8080")]
    BadListen(String),
    #[error("body_limit_bytes: between 1 KiB and 16 MiB")]
    BadBodyLimit,
    #[error("request_timeout_seconds: between 1 and 3600")]
    BadTimeout,
    #[error("key_cache_seconds: between 1 and 3600; store_outage_grace_seconds: 0 to 86400")]
    BadKeyCache,
    #[error("redis_url: a redis:// or rediss:// URL")]
    BadRedisUrl,
    #[error("trusted_proxies: at most 100 CIDR blocks or addresses, e.g. 10.0.0.0/8")]
    BadTrustedProxies,
    #[error("request_log: {0}")]
    BadRequestLog(#[from] keygate_server::http::BadRequestLog),
    #[error("gateway configuration: {0}")]
    Gateway(#[from] keygate_llm::ConfigError),
}

/// The sources of configuration, so tests can supply them without the process environment.
#[derive(Clone)]
pub struct Sources {
    pub figment: Figment,
    /// Variables that `env::NAME` credentials are read from.
    pub env: BTreeMap<String, String>,
}

impl std::fmt::Debug for Sources {
    /// Variable names only: the environment (and a database URL) may hold credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Sources {
    /// The file (if given) and the process's `KEYGATE_*` variables.
    pub fn from_process(config: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = config {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        Ok(Self {
            figment: figment.merge(Env::prefixed("KEYGATE_").only(&KEYS)),
            env: std::env::vars().collect(),
        })
    }
}

/// Resolves settings: flags (already merged with their variables by clap) win over the file.
pub fn resolve(
    sources: &Sources,
    store: &StoreArgs,
    listen: Option<&str>,
) -> Result<Settings, ConfigError> {
    let raw: RawConfig = sources.figment.extract().map_err(Box::new)?;
    let listen_text = listen
        .map(str::to_owned)
        .or(raw.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listen: SocketAddr = listen_text
        .parse()
        .map_err(|_| ConfigError::BadListen(listen_text.clone()))?;
    let metrics_listen = match raw.metrics_listen.filter(|text| !text.is_empty()) {
        Some(text) => Some(
            text.parse::<SocketAddr>()
                .map_err(|_| ConfigError::BadMetricsListen(text.clone()))?,
        ),
        None => None,
    };
    let retention_days = raw.usage_retention_days.unwrap_or(30);
    if !(1..=3650).contains(&retention_days) {
        return Err(ConfigError::BadRetention);
    }
    let usage_retention = Duration::from_secs(retention_days * 86_400);
    let defaults = keygate_server::service::CheckpointPolicy::default();
    let audit_checkpoints = keygate_server::service::CheckpointPolicy {
        events: raw.audit_checkpoint_events.unwrap_or(defaults.events),
        every: raw
            .audit_checkpoint_minutes
            .map_or(defaults.every, |minutes| Duration::from_secs(minutes * 60)),
    };
    if !(1..=1_000_000).contains(&audit_checkpoints.events)
        || !(60..=7 * 24 * 3600).contains(&audit_checkpoints.every.as_secs())
    {
        return Err(ConfigError::BadCheckpoints);
    }
    let alerts = watch::alert_settings(raw.webhooks_allow_private, raw.webhook_retries.as_deref())?;
    let leaks = watch::leak_settings(
        raw.leak_action,
        raw.leak_report_keys.as_deref(),
        raw.leak_reports_require_signature,
    )?;
    let mut anomalies = watch::anomaly_settings(raw.anomalies)?;
    let console = console::console_settings(raw.console, &sources.env)?;
    let response_store = responses::response_store_settings(raw.response_store)?;
    let mut identity = identity::identity_settings(raw.tokens, raw.federation)?;
    let (tls, certificates) = tls::tls_settings(tls::TlsFields {
        cert: raw.tls_cert,
        key: raw.tls_key,
        client_ca: raw.tls_client_ca,
        redirect_from: raw.tls_redirect_from,
        clients: raw.tls_clients,
    })?;
    identity.certificates = certificates;
    let notice_days = raw.key_expiry_notice_days.unwrap_or(7);
    if !(1..=365).contains(&notice_days) {
        return Err(ConfigError::BadExpiryNotice);
    }
    let data_dir = store
        .data_dir
        .clone()
        .or(raw.data_dir)
        .unwrap_or_else(|| PathBuf::from("keygate-data"));
    let database_url = store
        .database_url
        .clone()
        .or(raw.database_url)
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("keygate.db").display()));
    let master_key_file = store
        .master_key_file
        .clone()
        .or(raw.master_key_file)
        .unwrap_or_else(|| data_dir.join("master.key"));
    let body_limit = raw.body_limit_bytes.unwrap_or(64 * 1024);
    if !(1024..=16 * 1024 * 1024).contains(&body_limit) {
        return Err(ConfigError::BadBodyLimit);
    }
    let timeout = raw.request_timeout_seconds.unwrap_or(30);
    if !(1..=3600).contains(&timeout) {
        return Err(ConfigError::BadTimeout);
    }
    let key_cache = raw.key_cache_seconds.unwrap_or(30);
    let outage_grace = raw.store_outage_grace_seconds.unwrap_or(600);
    if !(1..=3600).contains(&key_cache) || outage_grace > 86_400 {
        return Err(ConfigError::BadKeyCache);
    }
    let redis_url = raw.redis_url.filter(|url| !url.is_empty());
    if redis_url
        .as_deref()
        .is_some_and(|url| !(url.starts_with("redis://") || url.starts_with("rediss://")))
    {
        return Err(ConfigError::BadRedisUrl);
    }
    // With Redis, the detectors judge every node's traffic together.
    anomalies.redis_url.clone_from(&redis_url);
    let trusted_proxies = keygate_core::record::parse_ip_allow(
        &raw.trusted_proxies
            .map(OneOrMany::items)
            .unwrap_or_default(),
    )
    .map_err(|_| ConfigError::BadTrustedProxies)?;
    let request_log = match &raw.request_log {
        Some(text) => text.parse()?,
        None => keygate_server::http::RequestLog::default(),
    };
    let otel_endpoint = raw.otel_endpoint.filter(|url| !url.is_empty());
    // An http(s) URL without a user or password in it: the URL may be logged, a credential
    // must not be.
    let well_formed = |url: &str| {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        rest.is_some_and(|rest| {
            let authority = rest.split('/').next().unwrap_or_default();
            !authority.is_empty() && !authority.contains('@')
        })
    };
    if otel_endpoint
        .as_deref()
        .is_some_and(|url| !well_formed(url))
    {
        return Err(ConfigError::BadOtelEndpoint);
    }
    Ok(Settings {
        listen,
        metrics_listen,
        otel_endpoint,
        kek: raw.kek,
        pkcs11: Pkcs11Settings {
            module: raw
                .pkcs11_module
                .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")),
            token: raw.pkcs11_token,
            key_label: raw
                .pkcs11_key_label
                .unwrap_or_else(|| "keygate-kek".to_owned()),
        },
        data_dir,
        database_url,
        key_cache: Duration::from_secs(key_cache),
        outage_grace: Duration::from_secs(outage_grace),
        master_key_file,
        log_format: raw.log_format.unwrap_or_default(),
        server: ServerSettings {
            body_limit,
            request_timeout: Duration::from_secs(timeout),
            trusted_proxies,
            request_log,
            metrics_on_api: metrics_listen.is_none(),
            audit_checkpoints,
            usage_retention,
            alerts,
            leaks,
            anomalies,
            key_expiry_notice: Duration::from_secs(notice_days * 86_400),
            weekly_review: raw.weekly_review.unwrap_or(false),
            console,
            responses: response_store,
            identity,
            tls,
            ..ServerSettings::default()
        },
        limits: LimitsSettings {
            redis_url,
            on_redis_failure: raw.limits_on_redis_failure.unwrap_or_default(),
        },
        gateway: GatewayFile {
            gateway: raw.gateway,
            providers: raw.providers,
            model_groups: raw.model_groups,
            prices: raw.prices,
        },
        routes: raw.routes,
    })
}

/// Refuses a gateway configuration that cannot be served. Only `serve` needs this: commands
/// that work on the store must not need the providers' credentials in their environment.
pub fn check_gateway(settings: &Settings, sources: &Sources) -> Result<(), ConfigError> {
    GatewayConfig::resolve(&settings.gateway, &|name| sources.env.get(name).cloned())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(toml: &str) -> Sources {
        Sources {
            figment: Figment::new().merge(Toml::string(toml)),
            env: BTreeMap::from([("GROQ_KEY".to_owned(), "gsk-test".to_owned())]),
        }
    }

    #[test]
    fn trusted_proxies_from_a_list_or_text() {
        let store = StoreArgs::default();
        let listed = resolve(
            &sources("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]"),
            &store,
            None,
        )
        .unwrap();
        assert_eq!(listed.server.trusted_proxies.len(), 2);
        let text = resolve(
            &sources("trusted_proxies = \"10.0.0.0/8, 192.168.1.1\""),
            &store,
            None,
        )
        .unwrap();
        assert_eq!(text.server.trusted_proxies.len(), 2);
        assert!(matches!(
            resolve(&sources("trusted_proxies = [\"nope\"]"), &store, None),
            Err(ConfigError::BadTrustedProxies)
        ));
        assert!(matches!(
            resolve(&sources("request_log = \"sometimes\""), &store, None),
            Err(ConfigError::BadRequestLog(_))
        ));
        let sampled = resolve(&sources("request_log = \"1/50\""), &store, None).unwrap();
        assert_eq!(
            sampled.server.request_log,
            "1/50".parse::<keygate_server::http::RequestLog>().unwrap()
        );
    }

    #[test]
    fn model_groups_come_from_the_file() {
        let file = sources(
            r#"
            listen = "127.0.0.1:9000"

            [providers.openai]
            kind = "openai"
            credential = "secret::openai"

            [providers.groq]
            kind = "groq"
            credential = "env::GROQ_KEY"

            [model_groups.chat]
            deployments = [{ provider = "openai", model = "gpt-4o-mini" }]
            fallbacks = ["fast"]

            [model_groups.fast]
            deployments = [{ provider = "groq", model = "llama-3.1-8b-instant" }]
            "#,
        );
        let settings = resolve(&file, &StoreArgs::default(), None).unwrap();
        assert_eq!(settings.gateway.model_groups.len(), 2);
        check_gateway(&settings, &file).unwrap();
        let missing = sources(
            "[providers.x]\nkind = \"groq\"\ncredential = \"env::NOPE\"\n[model_groups.m]\ndeployments = [{ provider = \"x\", model = \"m\" }]\n",
        );
        let settings = resolve(&missing, &StoreArgs::default(), None).unwrap();
        let err = check_gateway(&settings, &missing).unwrap_err();
        assert!(err.to_string().contains("NOPE"), "{err}");
        let typo = sources("[model_group.chat]\n");
        assert!(resolve(&typo, &StoreArgs::default(), None).is_err());
    }

    #[test]
    fn observability_settings_are_checked() {
        let good = sources(
            "otel_endpoint = \"http://127.0.0.1:4318\"\nmetrics_listen = \"127.0.0.1:9090\"\n\
             usage_retention_days = 7\naudit_checkpoint_events = 10\n",
        );
        let settings = resolve(&good, &StoreArgs::default(), None).unwrap();
        assert_eq!(
            settings.otel_endpoint.as_deref(),
            Some("http://127.0.0.1:4318")
        );
        assert!(!settings.server.metrics_on_api);
        assert_eq!(settings.server.usage_retention.as_secs(), 7 * 86_400);
        assert_eq!(settings.server.audit_checkpoints.events, 10);
        assert!(!settings.server.alerts.allow_private);
        assert_eq!(settings.server.alerts.retries.attempts(), 8);
        let alerts = sources("webhooks_allow_private = true\nwebhook_retries = [\"1s\", \"2m\"]\n");
        let settings = resolve(&alerts, &StoreArgs::default(), None).unwrap();
        assert!(settings.server.alerts.allow_private);
        assert_eq!(settings.server.alerts.retries.attempts(), 3);
        for bad in [
            "otel_endpoint = \"collector:4318\"",
            "otel_endpoint = \"https://user:secret@collector:4318\"",
            "metrics_listen = \"nowhere\"",
            "usage_retention_days = 0",
            "webhook_retries = [\"0s\"]",
            "webhook_retries = [\"soon\"]",
            "audit_checkpoint_minutes = 0",
        ] {
            let err = resolve(&sources(bad), &StoreArgs::default(), None).unwrap_err();
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn defaults_need_no_configuration() {
        let settings = resolve(&sources(""), &StoreArgs::default(), None).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.database_url, "sqlite://keygate-data/keygate.db");
        assert_eq!(
            settings.master_key_file,
            PathBuf::from("keygate-data/master.key")
        );
        assert_eq!(settings.server.body_limit, 65_536);
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = sources("listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/kg\"\n");
        let from_file = resolve(&file, &StoreArgs::default(), None).unwrap();
        assert_eq!(from_file.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(
            from_file.master_key_file,
            PathBuf::from("/srv/kg/master.key")
        );
        let flags = StoreArgs {
            database_url: Some("postgres://db/keygate".into()),
            ..StoreArgs::default()
        };
        let from_flags = resolve(&file, &flags, Some("127.0.0.1:1")).unwrap();
        assert_eq!(from_flags.listen.to_string(), "127.0.0.1:1");
        assert_eq!(from_flags.database_url, "postgres://db/keygate");
    }

    #[test]
    fn fuzz_seeds_keep_the_invariants() {
        // The variables the seeds' `env::NAME` credentials read.
        let env = BTreeMap::from(
            [
                ("GROQ_API_KEY", "gsk-seed-7d41"),
                ("ANTHROPIC_API_KEY", "seed-2c9e"),
                ("SSO_SECRET", "sso-seed-e03f"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/config");
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let sources = Sources {
                figment: Figment::new().merge(Toml::string(&text)),
                env: env.clone(),
            };
            let checked = resolve(&sources, &StoreArgs::default(), None)
                .and_then(|settings| check_gateway(&settings, &sources));
            if let Err(err) = checked {
                let shown = format!("{err} {err:?}");
                assert!(env.values().all(|value| !shown.contains(value)), "{shown}");
            }
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let err = resolve(&sources("lisen = \"x\""), &StoreArgs::default(), None).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        assert!(matches!(
            resolve(
                &sources("listen = \"nowhere\""),
                &StoreArgs::default(),
                None
            ),
            Err(ConfigError::BadListen(_))
        ));
        assert!(matches!(
            resolve(
                &sources("body_limit_bytes = 10"),
                &StoreArgs::default(),
                None
            ),
            Err(ConfigError::BadBodyLimit)
        ));
    }
}
