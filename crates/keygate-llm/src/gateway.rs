//! The gateway at run time: providers with their HTTP clients, model groups with their
//! choosers, and the health of every deployment. Built once from a [`GatewayConfig`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate_core::{MicroUsd, TokenCounts};

use http::Uri;

use crate::ConfigError;
use crate::breaker::Breaker;
use crate::config::{DeploymentSpec, GatewayConfig, ProviderSpec, Tuning};
use crate::egress::Client;
use crate::health::Health;
use crate::price::{PriceTable, Units};
use crate::provider::{Call, Endpoint, Preset, endpoint_url};
use crate::strategy::{Candidate, Chooser};

/// How long an idle upstream connection is kept: below the usual 30 s keep-alive of
/// providers' load balancers, so we never send on a connection they are closing.
const POOL_IDLE: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub(crate) struct Provider {
    pub spec: ProviderSpec,
    pub preset: Preset,
}

/// The client of a provider's deployments (see [`crate::egress`]).
fn upstream_client(connect_timeout: Duration) -> Result<Client, ConfigError> {
    Client::new(crate::egress::ClientOptions {
        connect_timeout,
        idle: POOL_IDLE,
        total: None,
        public_only: false,
    })
    .map_err(|_| ConfigError::HttpClient)
}

#[derive(Debug)]
pub(crate) struct Deployment {
    pub spec: DeploymentSpec,
    pub provider: Arc<Provider>,
    pub health: Arc<Health>,
    /// Upstream URLs, parsed once: chat (Gemini streams at another URL) and embeddings,
    /// which not every provider has.
    pub chat_url: Uri,
    pub stream_url: Uri,
    pub embeddings_url: Option<Uri>,
    pub count_tokens_url: Option<Uri>,
    /// OpenAI's Responses API, where the provider serves it.
    pub responses_url: Option<Uri>,
    /// The OpenAI endpoints passed through that the provider serves.
    pub passthrough_urls: Vec<(Endpoint, Uri)>,
    /// The provider's client, or one of its own when the deployment sets its connect timeout.
    pub client: Client,
    /// Whether the model reasons (takes an effort): see [`crate::translate::reasons`].
    pub reasoning: bool,
    /// Whether its group refuses requests that would lose a hint in translation.
    pub refuse_hints: bool,
}

impl Deployment {
    pub fn url(&self, call: Call) -> Option<&Uri> {
        match call {
            Call::Chat { stream: false } => Some(&self.chat_url),
            Call::Chat { stream: true } => Some(&self.stream_url),
            Call::Embeddings => self.embeddings_url.as_ref(),
            Call::CountTokens => self.count_tokens_url.as_ref(),
            Call::Responses { .. } => self.responses_url.as_ref(),
            Call::Passthrough(endpoint) => self
                .passthrough_urls
                .iter()
                .find(|(served, _)| *served == endpoint)
                .map(|(_, url)| url),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Group {
    pub alias: String,
    pub members: Vec<Arc<Deployment>>,
    pub fallbacks: Vec<String>,
    pub retries: u32,
    /// Whether its trace spans carry prompts and answers.
    pub trace_content: bool,
    pub cache: Option<crate::cache_policy::CachePolicy>,
    chooser: Chooser,
}

/// What `pick` chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// A deployment not yet tried for this request.
    Fresh(usize),
    /// Every available deployment was tried: this one again, after a backoff.
    Again(usize),
}

impl Group {
    /// Chooses a deployment for the next attempt of a request that already tried `tried`:
    /// one not tried yet if any is available, else one tried already that `may_retry` allows
    /// and whose breaker lets it through.
    pub fn pick(
        &self,
        now: Instant,
        tried: &[usize],
        may_retry: &dyn Fn(usize) -> bool,
    ) -> Option<Pick> {
        let candidates = |retry: bool| -> Vec<Candidate<'_>> {
            self.members
                .iter()
                .enumerate()
                .filter(|(index, member)| {
                    if retry {
                        tried.contains(index)
                            && may_retry(*index)
                            && member.health.breaker_allows(now)
                    } else {
                        !tried.contains(index) && member.health.is_available(now)
                    }
                })
                .map(|(index, member)| Candidate {
                    index,
                    weight: member.spec.weight,
                    health: &member.health,
                })
                .collect()
        };
        if let Some(index) = self.chooser.choose(&candidates(false)) {
            return Some(Pick::Fresh(index));
        }
        self.chooser.choose(&candidates(true)).map(Pick::Again)
    }
}

/// The LLM gateway: route a request for an alias to a deployment, with retries, fallbacks and
/// breakers. Cheap to share (`Arc`); its state is all in memory.
#[derive(Debug)]
pub struct Gateway {
    pub(crate) groups: HashMap<String, Group>,
    aliases: Vec<String>,
    pub(crate) prices: PriceTable,
    pub(crate) tuning: Tuning,
    /// Kept for the next rebuild: health by deployment id, clients by provider and connect
    /// timeout.
    health: HashMap<String, Arc<Health>>,
    clients: HashMap<(String, Duration), Client>,
}

/// A deployment's state, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatus {
    pub alias: String,
    pub deployment: String,
    pub in_flight: u32,
    pub latency_micros: u64,
    pub breaker_open: bool,
}

impl Gateway {
    /// A gateway without model groups: every model is unknown.
    pub fn empty() -> Self {
        Self {
            groups: HashMap::new(),
            aliases: Vec::new(),
            prices: PriceTable::with_defaults(),
            tuning: Tuning::default(),
            health: HashMap::new(),
            clients: HashMap::new(),
        }
    }

    pub fn new(config: &GatewayConfig) -> Result<Self, ConfigError> {
        Self::build(config, &Self::empty())
    }

    /// A gateway for a changed configuration that keeps what `previous` learnt: the health
    /// of deployments that are still there with the same limits (breakers, cooldowns, load,
    /// latency) and the connection pools of their providers.
    pub fn rebuild(config: &GatewayConfig, previous: &Gateway) -> Result<Self, ConfigError> {
        Self::build(config, previous)
    }

    fn build(config: &GatewayConfig, previous: &Gateway) -> Result<Self, ConfigError> {
        let mut providers = HashMap::new();
        // One client (one connection pool) per provider and connect timeout.
        let mut clients: HashMap<(String, Duration), Client> = HashMap::new();
        let mut client_for = |name: &str, connect: Duration| -> Result<Client, ConfigError> {
            let key = (name.to_owned(), connect);
            if let Some(client) = clients.get(&key) {
                return Ok(client.clone());
            }
            let client = match previous.clients.get(&key) {
                Some(client) => client.clone(),
                None => upstream_client(connect)?,
            };
            clients.insert(key, client.clone());
            Ok(client)
        };
        for spec in &config.providers {
            providers.insert(
                spec.name.clone(),
                Arc::new(Provider {
                    preset: spec.kind.preset(),
                    spec: spec.clone(),
                }),
            );
        }
        // One health per deployment id: a deployment in two groups is one upstream.
        let mut health: HashMap<String, Arc<Health>> = HashMap::new();
        let mut groups = HashMap::new();
        for group in &config.groups {
            let mut members = Vec::with_capacity(group.deployments.len());
            for spec in &group.deployments {
                let provider = providers.get(&spec.provider).cloned().ok_or_else(|| {
                    ConfigError::UnknownProvider {
                        field: format!("model_groups.{}", group.alias),
                        name: spec.provider.clone(),
                    }
                })?;
                let shared = health
                    .entry(spec.id.clone())
                    .or_insert_with(|| match previous.health.get(&spec.id) {
                        Some(known) if known.limits() == (spec.rpm, spec.tpm) => known.clone(),
                        _ => Arc::new(Health::new(
                            Breaker::new(
                                config.tuning.breaker_failures,
                                config.tuning.breaker_open,
                            ),
                            spec.rpm,
                            spec.tpm,
                        )),
                    })
                    .clone();
                let url = |call| {
                    let Some(text) = endpoint_url(
                        provider.spec.kind,
                        &provider.spec.base_url,
                        provider.spec.api_version.as_deref(),
                        &spec.model,
                        call,
                    ) else {
                        return Ok(None);
                    };
                    text.parse::<Uri>().map(Some).map_err(|_| {
                        ConfigError::invalid(
                            format!("model_groups.{}", group.alias),
                            format!("`{}` does not make a valid URL", spec.id),
                        )
                    })
                };
                let connect = spec
                    .timeouts
                    .connect
                    .unwrap_or(provider.spec.connect_timeout);
                let client = client_for(&spec.provider, connect)?;
                let mut passthrough_urls = Vec::new();
                for endpoint in Endpoint::PASSTHROUGH {
                    if let Some(served) = url(Call::Passthrough(endpoint))? {
                        passthrough_urls.push((endpoint, served));
                    }
                }
                members.push(Arc::new(Deployment {
                    client,
                    reasoning: crate::translate::reasons(provider.preset.format, &spec.model),
                    refuse_hints: group.hints == crate::config::Hints::Refuse,
                    chat_url: url(Call::Chat { stream: false })?.ok_or(ConfigError::HttpClient)?,
                    stream_url: url(Call::Chat { stream: true })?.ok_or(ConfigError::HttpClient)?,
                    embeddings_url: url(Call::Embeddings)?,
                    count_tokens_url: url(Call::CountTokens)?,
                    responses_url: url(Call::Responses { stream: false })?,
                    passthrough_urls,
                    spec: spec.clone(),
                    provider,
                    health: shared,
                }));
            }
            groups.insert(
                group.alias.clone(),
                Group {
                    alias: group.alias.clone(),
                    chooser: Chooser::new(group.strategy, members.len()),
                    members,
                    fallbacks: group.fallbacks.clone(),
                    retries: group.retries,
                    trace_content: group.trace_content,
                    cache: group.cache,
                },
            );
        }
        let mut aliases: Vec<String> = groups.keys().cloned().collect();
        aliases.sort();
        Ok(Self {
            groups,
            aliases,
            prices: config.prices.clone(),
            tuning: config.tuning.clone(),
            health,
            clients,
        })
    }

    /// Every alias, sorted.
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// Whether the group `alias` records prompts and answers on its trace spans.
    pub fn traces_content(&self, alias: &str) -> bool {
        self.groups
            .get(alias)
            .is_some_and(|group| group.trace_content)
    }

    /// The answer cache of the group `alias`, when it has one.
    pub fn cache_policy(&self, alias: &str) -> Option<crate::cache_policy::CachePolicy> {
        self.groups.get(alias).and_then(|group| group.cache)
    }

    pub fn has_alias(&self, alias: &str) -> bool {
        self.groups.contains_key(alias)
    }

    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// The cost of `tokens` on the upstream `model`; `None` when its price is unknown.
    pub fn cost(&self, model: &str, tokens: TokenCounts, units: Units) -> Option<MicroUsd> {
        self.prices.cost(model, tokens, units)
    }

    /// What an answer cost: by the usage the provider reported, or, without a report, by
    /// the units the model is priced by (an image, a minute, a character); `None` when
    /// neither says.
    pub fn answer_cost(
        &self,
        model: &str,
        reported: Option<TokenCounts>,
        units: Units,
    ) -> Option<MicroUsd> {
        match reported {
            Some(tokens) => self.prices.cost(model, tokens, Units::default()),
            None if self.prices.prices_units(model, units) => {
                self.prices.cost(model, TokenCounts::default(), units)
            }
            None => None,
        }
    }

    /// The highest cost `tokens` may have on any deployment that may serve `alias`, its
    /// fallbacks' included: what a budget must hold before the request is sent. `None` when
    /// any of them has no known price (or the alias is unknown).
    pub fn highest_cost(&self, alias: &str, tokens: TokenCounts, units: Units) -> Option<MicroUsd> {
        let mut seen = vec![alias];
        let mut highest = MicroUsd::ZERO;
        let mut next = 0;
        while let Some(&alias) = seen.get(next) {
            next += 1;
            let group = self.groups.get(alias)?;
            for member in &group.members {
                highest = highest.max(self.prices.cost(&member.spec.model, tokens, units)?);
            }
            for fallback in &group.fallbacks {
                if !seen.contains(&fallback.as_str()) {
                    seen.push(fallback);
                }
            }
        }
        Some(highest)
    }

    pub fn status(&self) -> Vec<DeploymentStatus> {
        let mut out = Vec::new();
        for alias in &self.aliases {
            let Some(group) = self.groups.get(alias) else {
                continue;
            };
            for member in &group.members {
                out.push(DeploymentStatus {
                    alias: alias.clone(),
                    deployment: member.spec.id.clone(),
                    in_flight: member.health.in_flight(),
                    latency_micros: member.health.latency_micros(),
                    breaker_open: member.health.breaker_open(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GatewayFile;

    fn gateway(rpm: u32, previous: Option<&Gateway>) -> Gateway {
        let file = GatewayFile::from_toml(&format!(
            r#"
            [providers.local]
            kind = "vllm"

            [model_groups.chat]
            deployments = [{{ provider = "local", model = "m", rpm = {rpm} }}]
            "#
        ))
        .unwrap();
        let config = GatewayConfig::resolve(&file, &|_| None).unwrap();
        match previous {
            Some(previous) => Gateway::rebuild(&config, previous).unwrap(),
            None => Gateway::new(&config).unwrap(),
        }
    }

    fn health(gateway: &Gateway) -> Arc<Health> {
        gateway.groups["chat"].members[0].health.clone()
    }

    #[test]
    fn a_rebuild_keeps_what_deployments_learnt() {
        let first = gateway(10, None);
        let kept = gateway(10, Some(&first));
        assert!(
            Arc::ptr_eq(&health(&first), &health(&kept)),
            "same deployment, same limits"
        );
        let changed = gateway(20, Some(&kept));
        assert!(
            !Arc::ptr_eq(&health(&kept), &health(&changed)),
            "new limits, new counters"
        );
        assert_eq!(health(&changed).limits(), (Some(20), None));
    }

    #[test]
    fn the_highest_cost_spans_members_and_fallbacks() {
        let file = GatewayFile::from_toml(
            r#"
            [providers.local]
            kind = "vllm"

            [prices.cheap]
            input = "1"
            output = "2"

            [prices.dear]
            input = "10"
            output = "20"

            [model_groups.chat]
            deployments = [{ provider = "local", model = "cheap" }]
            fallbacks = ["big"]

            [model_groups.big]
            deployments = [{ provider = "local", model = "dear" }]
            fallbacks = ["chat"]

            [model_groups.unpriced]
            deployments = [{ provider = "local", model = "mystery-model" }]
            "#,
        )
        .unwrap();
        let config = GatewayConfig::resolve(&file, &|_| None).unwrap();
        let gateway = Gateway::new(&config).unwrap();
        let tokens = TokenCounts {
            prompt: 1_000_000,
            completion: 1_000_000,
            cached: 0,
        };
        assert_eq!(
            gateway.cost("cheap", tokens, Units::default()),
            Some(MicroUsd(3_000_000)),
            "the member alone"
        );
        assert_eq!(
            gateway.highest_cost("chat", tokens, Units::default()),
            Some(MicroUsd(30_000_000)),
            "a fallback may serve it"
        );
        assert_eq!(
            gateway.highest_cost("unpriced", tokens, Units::default()),
            None
        );
        assert_eq!(
            gateway.highest_cost("nothing", tokens, Units::default()),
            None
        );
    }
}
