//! The gateway, following the OpenTelemetry GenAI semantic conventions where they name the
//! figure (`gen_ai.client.token.usage`, `gen_ai.server.request.duration`,
//! `gen_ai.server.time_to_first_token`, written with Prometheus' naming rules), and keygate's
//! own: requests, spend and attempts per model group and deployment, and the proxy routes.
//! Everything here is read from the usage record of each request, as the usage log takes it
//! to be written: off the request's path, once per request.

use keygate_core::UsageRecord;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::status_class;

/// A request to a model group. `gen_ai_request_model` is the alias the client named when a
/// deployment was chosen, else `none` (the alias may be anything a client typed).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub gen_ai_operation_name: &'static str,
    pub gen_ai_request_model: String,
    /// The provider's name in the configuration, or `none`.
    pub gen_ai_provider_name: String,
    /// `provider/model`, or `none`.
    pub deployment: String,
    pub status_class: &'static str,
    /// keygate's stable error code, or empty for a success.
    pub error_type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub gen_ai_operation_name: &'static str,
    pub gen_ai_request_model: String,
    pub gen_ai_provider_name: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub gen_ai_operation_name: &'static str,
    pub gen_ai_request_model: String,
    pub gen_ai_provider_name: String,
    /// `input` or `output`.
    pub gen_ai_token_type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub gen_ai_request_model: String,
    pub deployment: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    pub gen_ai_request_model: String,
    /// The model group that served instead.
    pub fallback: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status_class: &'static str,
}

/// The conventions' advised buckets.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const FIRST_TOKEN_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    requests: Family<RequestLabels, Counter>,
    tokens: Histograms<TokenLabels>,
    duration: Histograms<ModelLabels>,
    first_token: Histograms<ModelLabels>,
    spend: Family<DeploymentLabels, Counter<f64>>,
    attempts: Family<DeploymentLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    routes: Family<RouteLabels, Counter>,
}

impl GatewayMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "keygate_gateway_requests",
            "LLM requests by operation, model group, provider, deployment, status class and error code",
            requests.clone(),
        );
        let tokens: Histograms<TokenLabels> =
            Family::new_with_constructor(|| Histogram::new(TOKEN_BUCKETS));
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens used per request, input and output (as the provider reported them, or counted)",
            tokens.clone(),
        );
        let duration: Histograms<ModelLabels> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        registry.register(
            "gen_ai_server_request_duration_seconds",
            "Time from a request's arrival to the end of its answer (of its stream)",
            duration.clone(),
        );
        let first_token: Histograms<ModelLabels> =
            Family::new_with_constructor(|| Histogram::new(FIRST_TOKEN_BUCKETS));
        registry.register(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from a streamed request's arrival to its first token",
            first_token.clone(),
        );
        let spend = Family::<DeploymentLabels, Counter<f64>>::default();
        registry.register(
            "keygate_gateway_spend_dollars",
            "What answered requests cost, at the price table's prices, by model group and deployment",
            spend.clone(),
        );
        let attempts = Family::<DeploymentLabels, Counter>::default();
        registry.register(
            "keygate_gateway_attempts",
            "Upstream attempts (first tries, retries and fallbacks) by model group and the deployment that answered last",
            attempts.clone(),
        );
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        registry.register(
            "keygate_gateway_fallbacks",
            "Requests served by a fallback group, by the group asked for and the one that served",
            fallbacks.clone(),
        );
        let routes = Family::<RouteLabels, Counter>::default();
        registry.register(
            "keygate_proxy_requests",
            "Requests through the generic routes (/proxy/<route>/…) by route and status class",
            routes.clone(),
        );
        Self {
            requests,
            tokens,
            duration,
            first_token,
            spend,
            attempts,
            fallbacks,
            routes,
        }
    }

    /// A request for `asked` was served by the fallback group `served`.
    pub fn fell_back(&self, asked: &str, served: &str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                gen_ai_request_model: asked.to_owned(),
                fallback: served.to_owned(),
            })
            .inc();
    }

    /// Records what one request's usage record says.
    pub fn observe(&self, record: &UsageRecord) {
        let class = status_class(record.status);
        if record.endpoint == "proxy" {
            let labels = RouteLabels {
                route: record.model.clone(),
                status_class: class,
            };
            self.routes.get_or_create(&labels).inc();
            return;
        }
        let operation = operation(&record.endpoint);
        let none = || "none".to_owned();
        let model = match record.deployment {
            Some(_) => record.model.clone(),
            None => none(),
        };
        let provider = record.provider.clone().unwrap_or_else(none);
        let deployment = record.deployment.clone().unwrap_or_else(none);
        self.requests
            .get_or_create(&RequestLabels {
                gen_ai_operation_name: operation,
                gen_ai_request_model: model.clone(),
                gen_ai_provider_name: provider.clone(),
                deployment: deployment.clone(),
                status_class: class,
                error_type: record.error_code.clone().unwrap_or_default(),
            })
            .inc();
        if record.deployment.is_none() {
            return;
        }
        let by_deployment = DeploymentLabels {
            gen_ai_request_model: model.clone(),
            deployment,
        };
        self.attempts
            .get_or_create(&by_deployment)
            .inc_by(u64::from(record.attempts));
        if let Some(cost) = record.cost {
            // Micro-dollars, exactly, into dollars.
            self.spend
                .get_or_create(&by_deployment)
                .inc_by(cost.0 as f64 / 1_000_000.0);
        }
        let by_model = ModelLabels {
            gen_ai_operation_name: operation,
            gen_ai_request_model: model.clone(),
            gen_ai_provider_name: provider.clone(),
        };
        self.duration
            .get_or_create(&by_model)
            .observe(record.latency_ms as f64 / 1000.0);
        if record.streamed
            && let Some(ttft) = record.ttft_ms
        {
            self.first_token
                .get_or_create(&by_model)
                .observe(ttft as f64 / 1000.0);
        }
        if record.status < 400 {
            for (kind, count) in [
                ("input", record.tokens.prompt),
                ("output", record.tokens.completion),
            ] {
                let labels = TokenLabels {
                    gen_ai_operation_name: operation,
                    gen_ai_request_model: model.clone(),
                    gen_ai_provider_name: provider.clone(),
                    gen_ai_token_type: kind,
                };
                self.tokens.get_or_create(&labels).observe(count as f64);
            }
        }
    }
}

/// The GenAI operation of an endpoint.
fn operation(endpoint: &str) -> &'static str {
    match endpoint {
        "embeddings" => "embeddings",
        "messages.count_tokens" => "count_tokens",
        _ => "chat",
    }
}
