//! Limits: refusals by the kind of limit and whose limit it was.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `requests`, `tokens`, `quota`, `budget`, `concurrency` or `unavailable` (Redis down,
    /// refusing).
    pub kind: &'static str,
    /// `key`, `project`, or `none` for `unavailable`.
    pub owner: &'static str,
}

#[derive(Debug, Clone)]
pub struct LimitMetrics {
    refusals: Family<RefusalLabels, Counter>,
}

impl LimitMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "keygate_limit_refusals",
            "Requests refused by a limit, by kind of limit and owner (key or project)",
            refusals.clone(),
        );
        Self { refusals }
    }

    pub fn refused(&self, kind: &'static str, owner: &'static str) {
        self.refusals
            .get_or_create(&RefusalLabels { kind, owner })
            .inc();
    }
}
