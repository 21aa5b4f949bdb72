//! Being watched: webhook delivery attempts by outcome, anomalies by detector and action,
//! sources blocked, and findings dropped because the anomaly task fell behind.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// `delivered`, `retry` (failed, tried again later) or `dead` (failed, the last attempt).
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnomalyLabels {
    /// The detector: `request_spike`, `token_spike`, `spend_spike`, `new_network`,
    /// `scope_probing` or `old_secret_late`.
    pub detector: &'static str,
    /// The policy's action: `record`, `alert` or `suspend`.
    pub action: &'static str,
}

#[derive(Debug, Clone)]
pub struct WatchMetrics {
    attempts: Family<AttemptLabels, Counter>,
    anomalies: Family<AnomalyLabels, Counter>,
    sources_blocked: Counter,
    findings_dropped: Counter,
}

impl WatchMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "keygate_webhook_attempts",
            "Webhook delivery attempts, by outcome",
            attempts.clone(),
        );
        let anomalies = Family::<AnomalyLabels, Counter>::default();
        registry.register(
            "keygate_anomalies",
            "Anomalies found in keys' traffic, by detector and the policy's action",
            anomalies.clone(),
        );
        let sources_blocked = Counter::default();
        registry.register(
            "keygate_sources_blocked",
            "Client sources blocked after a burst of failed authentications",
            sources_blocked.clone(),
        );
        let findings_dropped = Counter::default();
        registry.register(
            "keygate_anomaly_findings_dropped",
            "Anomaly findings dropped because the anomaly task fell behind",
            findings_dropped.clone(),
        );
        Self {
            attempts,
            anomalies,
            sources_blocked,
            findings_dropped,
        }
    }

    pub fn attempt(&self, outcome: &'static str) {
        self.attempts
            .get_or_create(&AttemptLabels { outcome })
            .inc();
    }

    pub fn anomaly(&self, detector: &'static str, action: &'static str) {
        self.anomalies
            .get_or_create(&AnomalyLabels { detector, action })
            .inc();
    }

    pub fn source_blocked(&self) {
        self.sources_blocked.inc();
    }

    pub fn finding_dropped(&self) {
        self.findings_dropped.inc();
    }
}
