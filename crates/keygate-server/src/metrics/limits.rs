//! Limits: refusals by the kind of limit and whose limit it was, and the round trip of the
//! checks that go through Redis.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `requests`, `tokens`, `quota`, `budget`, `concurrency` or `unavailable` (Redis down,
    /// refusing).
    pub kind: &'static str,
    /// `key`, `project`, or `none` for `unavailable`.
    pub owner: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RedisLabels {
    /// `ok`, or `error` (unreachable, timed out).
    pub outcome: &'static str,
}

#[derive(Debug, Clone)]
pub struct LimitMetrics {
    refusals: Family<RefusalLabels, Counter>,
    redis: Family<RedisLabels, Histogram, fn() -> Histogram>,
}

/// Seconds, from a tenth of a millisecond to the check's timeout.
const REDIS_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

impl LimitMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "keygate_limit_refusals",
            "Requests refused by a limit, by kind of limit and owner (key or project)",
            refusals.clone(),
        );
        let redis: Family<RedisLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(REDIS_BUCKETS));
        registry.register(
            "keygate_limits_redis_duration_seconds",
            "Round trip of a limit check through Redis (the check script), by outcome",
            redis.clone(),
        );
        Self { refusals, redis }
    }

    pub fn redis_answered(&self, took: std::time::Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.redis
            .get_or_create(&RedisLabels { outcome })
            .observe(took.as_secs_f64());
    }

    pub fn refused(&self, kind: &'static str, owner: &'static str) {
        self.refusals
            .get_or_create(&RefusalLabels { kind, owner })
            .inc();
    }
}
