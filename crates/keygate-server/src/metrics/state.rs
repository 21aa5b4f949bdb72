//! States read when `/metrics` is scraped: each deployment's breaker and requests in flight,
//! and the depth of the queues that run off the request path.

use keygate_llm::DeploymentStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The states, as the server read them for one scrape.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub deployments: Vec<DeploymentStatus>,
    /// Usage records waiting to be written.
    pub usage_pending: u64,
    /// Usage records dropped since start (the store could not keep up).
    pub usage_dropped: u64,
    /// Keys whose last use waits to be written.
    pub last_used_pending: u64,
    /// Key changes waiting to be published to other nodes (with `redis_url`).
    pub invalidation_pending: u64,
    /// Where limits are counted: `local`, `redis` or `redis_unreachable`.
    pub limits_mode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub gen_ai_request_model: String,
    pub deployment: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// `usage`, `last_used` or `invalidation`.
    pub queue: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub task: &'static str,
}

#[derive(Debug, Clone)]
pub(super) struct StateMetrics {
    pub(super) task_failures: Family<TaskLabels, Counter>,
    limits_mode: Family<ModeLabels, Gauge>,
    breaker_open: Family<DeploymentLabels, Gauge>,
    in_flight: Family<DeploymentLabels, Gauge>,
    queued: Family<QueueLabels, Gauge>,
    dropped: Counter,
}

impl StateMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let task_failures = Family::<TaskLabels, Counter>::default();
        registry.register(
            "keygate_task_failures",
            "Background tasks (usage writes, last-use writes, key-change sharing, checkpoints, pruning, …) that failed, by task",
            task_failures.clone(),
        );
        let limits_mode = Family::<ModeLabels, Gauge>::default();
        registry.register(
            "keygate_limits_backend",
            "1 for where limits are counted now: local (this node), redis, or redis_unreachable (Redis is down; the node follows limits_on_redis_failure)",
            limits_mode.clone(),
        );
        let breaker_open = Family::<DeploymentLabels, Gauge>::default();
        registry.register(
            "keygate_gateway_deployment_breaker_open",
            "1 while a deployment's circuit breaker keeps requests away (open, or waiting on its probe)",
            breaker_open.clone(),
        );
        let in_flight = Family::<DeploymentLabels, Gauge>::default();
        registry.register(
            "keygate_gateway_deployment_in_flight",
            "Requests a deployment is serving now (on this node)",
            in_flight.clone(),
        );
        let queued = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "keygate_queue_depth",
            "Items waiting to be written to the store off the request path, by queue",
            queued.clone(),
        );
        let dropped = Counter::default();
        registry.register(
            "keygate_usage_records_dropped",
            "Usage records dropped because the store could not keep up",
            dropped.clone(),
        );
        Self {
            task_failures,
            limits_mode,
            breaker_open,
            in_flight,
            queued,
            dropped,
        }
    }

    pub(super) fn update(&self, snapshot: &Snapshot) {
        for mode in ["local", "redis", "redis_unreachable"] {
            self.limits_mode
                .get_or_create(&ModeLabels { mode })
                .set(i64::from(mode == snapshot.limits_mode));
        }
        // Deployments come and go with the configuration: only the current ones are shown.
        self.breaker_open.clear();
        self.in_flight.clear();
        for status in &snapshot.deployments {
            let labels = DeploymentLabels {
                gen_ai_request_model: status.alias.clone(),
                deployment: status.deployment.clone(),
            };
            self.breaker_open
                .get_or_create(&labels)
                .set(i64::from(status.breaker_open));
            self.in_flight
                .get_or_create(&labels)
                .set(i64::from(status.in_flight));
        }
        for (queue, depth) in [
            ("usage", snapshot.usage_pending),
            ("last_used", snapshot.last_used_pending),
            ("invalidation", snapshot.invalidation_pending),
        ] {
            self.queued
                .get_or_create(&QueueLabels { queue })
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        let seen = self.dropped.get();
        self.dropped
            .inc_by(snapshot.usage_dropped.saturating_sub(seen));
    }
}
