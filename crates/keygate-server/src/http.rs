//! The HTTP layer: routes, extractors, the error body, OpenAPI, and the server loop.
//!
//! Handlers are thin: they extract, call one [`Keygate`](crate::Keygate) operation, and map
//! the result. Logging happens in middleware, which never records a query string or a
//! credential header.

pub mod client_ip;
mod cors;
pub(crate) mod dto;
mod error;
pub(crate) mod extract;
mod limit_headers;
mod llm_error;
mod middleware;
mod openapi;
mod request_log;
pub(crate) mod routes;
mod serve;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use crate::{GatewayState, Keygate};

pub use crate::console::ConsoleSettings;
pub use error::ApiError;
pub use openapi::openapi;
pub use request_log::{BadRequestLog, RequestLog};
pub use routes::router;
pub use serve::{run, run_metrics};
pub use tls::{TlsError, TlsSettings};

/// Limits and timings of the HTTP server, resolved from configuration.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Longest a request may take before it is answered with 408.
    pub request_timeout: Duration,
    /// How often last-use times are written to the store.
    pub last_used_flush: Duration,
    /// How long a client may take to send a request head before its connection is closed.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests before closing their connections.
    pub drain_timeout: Duration,
    /// How often secrets are checked against their rotation policy.
    pub rotation_check: Duration,
    /// How often gateway usage records are written to the store.
    pub usage_flush: Duration,
    /// How often the stored model groups are checked for changes made on other nodes.
    pub model_groups_reload: Duration,
    /// Proxies whose `X-Forwarded-For` is believed; empty, the peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Which requests get a line in the log.
    pub request_log: RequestLog,
    /// Whether `/metrics` is served by this API's listener (else only by a listener of its
    /// own, `metrics_listen`).
    pub metrics_on_api: bool,
    /// When the audit chain's head is signed.
    pub audit_checkpoints: crate::service::CheckpointPolicy,
    /// How long usage records are kept (their day sums stay).
    pub usage_retention: Duration,
    /// How webhook deliveries are made.
    pub alerts: crate::alerts::AlertSettings,
    /// How leak reports are received and what they do to the keys they name.
    pub leaks: crate::service::LeakSettings,
    /// The anomaly detectors' thresholds and actions.
    pub anomalies: crate::anomalies::AnomalySettings,
    /// How long before a key expires `key.expiring` is announced.
    pub key_expiry_notice: Duration,
    /// Whether each organisation's access review is announced every week (`review.ready`).
    pub weekly_review: bool,
    /// The web console's sessions and cookies.
    pub console: crate::console::ConsoleSettings,
    /// Access tokens (`[tokens]`), trusted issuers (`[federation.*]`) and client
    /// certificates' principals (`[[tls.clients]]`).
    pub identity: crate::service::IdentitySettings,
    /// Serve HTTPS (and authenticate clients by certificate) rather than plain HTTP.
    pub tls: Option<TlsSettings>,
    /// How the Responses API's answers are kept (`[response_store]`).
    pub responses: crate::gateway::ResponseStoreSettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            last_used_flush: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            rotation_check: Duration::from_secs(60),
            usage_flush: Duration::from_secs(1),
            model_groups_reload: Duration::from_secs(5),
            trusted_proxies: Vec::new(),
            request_log: RequestLog::default(),
            metrics_on_api: true,
            audit_checkpoints: crate::service::CheckpointPolicy::default(),
            usage_retention: Duration::from_secs(30 * 86_400),
            alerts: crate::alerts::AlertSettings::default(),
            leaks: crate::service::LeakSettings::default(),
            anomalies: crate::anomalies::AnomalySettings::default(),
            key_expiry_notice: Duration::from_secs(7 * 86_400),
            weekly_review: false,
            console: crate::console::ConsoleSettings::default(),
            identity: crate::service::IdentitySettings::default(),
            tls: None,
            responses: crate::gateway::ResponseStoreSettings::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub keygate: Arc<Keygate>,
    pub settings: Arc<ServerSettings>,
    /// The LLM gateway; without model groups it knows no models.
    pub gateway: Arc<GatewayState>,
    /// When the server started (milliseconds since the epoch), shown as models' `created`.
    pub started_at: i64,
    /// Keys' request rates and concurrency caps on this node.
    pub limiter: Arc<crate::limits::Limiter>,
    /// The generic routes, `/proxy/<route>/…`.
    pub routes: Arc<crate::proxy::ProxyRoutes>,
    /// Webhook endpoints and the delivery of alerts.
    pub alerts: Arc<crate::alerts::Alerts>,
    /// The anomaly detectors and their actions.
    pub anomalies: Arc<crate::anomalies::Anomalies>,
}

impl AppState {
    /// A server without LLM model groups.
    pub fn new(keygate: Arc<Keygate>, settings: ServerSettings) -> Self {
        Self::with_gateway(keygate, settings, Arc::new(GatewayState::empty()))
    }

    pub fn with_gateway(
        keygate: Arc<Keygate>,
        settings: ServerSettings,
        gateway: Arc<GatewayState>,
    ) -> Self {
        let started_at = keygate.clock().now().as_millis();
        let limiter = crate::limits::Limiter::new().observed_by(keygate.metrics().limits.clone());
        let alerts = crate::alerts::Alerts::new(keygate.clone(), settings.alerts.clone());
        let anomalies =
            crate::anomalies::Anomalies::new(keygate.clone(), settings.anomalies.clone());
        Self {
            alerts: Arc::new(alerts),
            anomalies,
            keygate,
            settings: Arc::new(settings),
            gateway,
            started_at,
            limiter: Arc::new(limiter),
            routes: Arc::new(crate::proxy::ProxyRoutes::default()),
        }
    }

    /// The gateway service over this node's services.
    pub fn gateway_service(&self) -> crate::gateway::Service<'_> {
        crate::gateway::Service {
            keygate: &self.keygate,
            limiter: &self.limiter,
            models: &self.gateway,
            responses: &self.settings.responses,
        }
    }

    /// The same, with the generic `/proxy/<route>/…` routes.
    pub fn with_routes(self, routes: crate::proxy::ProxyRoutes) -> Self {
        Self {
            routes: Arc::new(routes),
            ..self
        }
    }

    /// The same, with `limiter` (for rates shared through Redis).
    pub fn with_limiter(self, limiter: crate::limits::Limiter) -> Self {
        let limiter = limiter.observed_by(self.keygate.metrics().limits.clone());
        Self {
            limiter: Arc::new(limiter),
            ..self
        }
    }

    /// The exposition of `/metrics`, with the states and the audit log as they are now.
    pub async fn metrics_text(&self) -> String {
        let metrics = self.keygate.metrics();
        metrics.read_audit(self.keygate.store().as_ref()).await;
        let snapshot = self
            .keygate
            .metrics_snapshot(self.gateway.current().status(), self.limiter.mode());
        metrics.render(&snapshot)
    }
}
