//! Key verification: results by code, and whether the key came from the cache.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `valid`, or the refusal's code (`revoked`, `expired`, `invalid_key`, …).
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub outcome: &'static str,
}

#[derive(Debug, Clone)]
pub struct KeyMetrics {
    verifications: Family<ResultLabels, Counter>,
    cache: Family<CacheLabels, Counter>,
}

impl KeyMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let verifications = Family::<ResultLabels, Counter>::default();
        registry.register(
            "keygate_key_verifications",
            "API key verifications (the verify API, the gateway and the proxy routes) by result",
            verifications.clone(),
        );
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "keygate_key_cache_lookups",
            "Lookups of an API key's digest in the key cache, by outcome: hit, miss, or kept (the store unreachable, the key accepted as last loaded within the outage grace)",
            cache.clone(),
        );
        Self {
            verifications,
            cache,
        }
    }

    pub fn verified(&self, result: &'static str) {
        self.verifications
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn looked_up(&self, hit: bool) {
        let outcome = if hit { "hit" } else { "miss" };
        self.cache.get_or_create(&CacheLabels { outcome }).inc();
    }

    /// A key accepted as last loaded because the store could not be reached.
    pub fn kept_in_outage(&self) {
        self.cache
            .get_or_create(&CacheLabels { outcome: "kept" })
            .inc();
    }
}
