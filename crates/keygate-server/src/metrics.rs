//! Metrics in the Prometheus text format, for `/metrics`. One registry per server
//! (`prometheus-client`: typed label sets, no global state); each figure is recorded in one
//! place — the HTTP layer ([`http`]), the verification ([`keys`]), the usage log as it writes a
//! gateway request's record ([`gateway`]), the limiter ([`limits`]), alerts and anomalies
//! ([`watch`]) — and what is a state
//! rather than an event (deployments' breakers, queue depths) is read when scraped
//! ([`Metrics::render`]), as are the audit log's events (admin actions, refusals, reveals),
//! counted from the log itself ([`Metrics::read_audit`]). Label sets are bounded: route templates, codes, model aliases and
//! deployments of the configuration; never a key id, a raw path or other user input.
//! `docs/metrics.md` lists every metric, and a test checks it against the registry.

mod audit;
pub mod gateway;
pub mod http;
pub mod keys;
pub mod limits;
mod state;
pub mod watch;

use std::sync::{Mutex, PoisonError};

use prometheus_client::registry::Registry;

pub use self::state::Snapshot;

/// The text format's content type.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every metric of one server. Cheap to share: the families inside are handles.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    pub http: http::HttpMetrics,
    pub keys: keys::KeyMetrics,
    pub gateway: gateway::GatewayMetrics,
    pub limits: limits::LimitMetrics,
    pub watch: watch::WatchMetrics,
    state: state::StateMetrics,
    audit: audit::AuditMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http = http::HttpMetrics::register(&mut registry);
        let keys = keys::KeyMetrics::register(&mut registry);
        let gateway = gateway::GatewayMetrics::register(&mut registry);
        let limits = limits::LimitMetrics::register(&mut registry);
        let watch = watch::WatchMetrics::register(&mut registry);
        let state = state::StateMetrics::register(&mut registry);
        let audit = audit::AuditMetrics::register(&mut registry);
        Self {
            registry: Mutex::new(registry),
            http,
            keys,
            gateway,
            limits,
            watch,
            state,
            audit,
        }
    }

    /// Counts the audit events appended since the last scrape (see [`audit`]).
    pub async fn read_audit(&self, store: &dyn keygate_store::Store) {
        self.audit.catch_up(store).await;
    }

    /// Counts a background task that failed.
    pub fn task_failed(&self, task: &'static str) {
        self.state
            .task_failures
            .get_or_create(&state::TaskLabels { task })
            .inc();
    }

    /// Names the master key this node seals with.
    pub fn kek_in_use(&self, id: &str) {
        self.audit.kek_in_use(id);
    }

    /// The exposition, with the states in `snapshot` as they are now.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        self.state.update(snapshot);
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
        text
    }
}

/// `2xx`, `4xx`, …: a status as a bounded label.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use keygate_core::{KeyId, MicroUsd, OrgId, Timestamp, TokenCounts, TokenSource, UsageRecord};

    use super::*;

    /// A server's metrics with every family holding one sample.
    fn exercised() -> String {
        let metrics = Metrics::new();
        metrics.keys.verified("valid");
        metrics.kek_in_use("kek_test");
        metrics.task_failed("usage");
        metrics.audit.length.set(2);
        metrics
            .audit
            .events
            .get_or_create(&audit::EventLabels {
                action: "key.create".to_owned(),
                outcome: "success".to_owned(),
            })
            .inc();
        metrics.keys.looked_up(true);
        metrics.limits.refused("requests", "key");
        metrics.watch.attempt("delivered");
        metrics.watch.anomaly("request_spike", "alert");
        metrics
            .limits
            .redis_answered(std::time::Duration::from_micros(300), true);
        let record = UsageRecord {
            id: "u1".to_owned(),
            at: Timestamp::from_millis(0),
            org_id: OrgId::generate(),
            project_id: None,
            key_id: KeyId::generate(),
            endpoint: "chat.completions".to_owned(),
            model: "fast".to_owned(),
            deployment: Some("openai/gpt-4o-mini".to_owned()),
            provider: Some("openai".to_owned()),
            status: 200,
            error_code: None,
            streamed: true,
            attempts: 2,
            latency_ms: 1500,
            ttft_ms: Some(120),
            tokens: TokenCounts {
                prompt: 12,
                completion: 30,
                cached: 0,
            },
            token_source: TokenSource::Provider,
            cost: Some(MicroUsd(2_500)),
            saved: None,
            client_ip: None,
            user_agent: None,
        };
        metrics.gateway.observe(&record);
        metrics.gateway.fell_back("fast", "chat");
        metrics.gateway.observe(&UsageRecord {
            endpoint: "proxy".to_owned(),
            model: "catalog".to_owned(),
            ..record
        });
        metrics
            .http
            .duration
            .get_or_create(&http::RequestLabels {
                http_route: "/v1/keys/verify".to_owned(),
                http_request_method: "POST",
                status_class: "2xx",
            })
            .observe(0.001);
        metrics.render(&Snapshot {
            deployments: vec![keygate_llm::DeploymentStatus {
                alias: "fast".to_owned(),
                deployment: "openai/gpt-4o-mini".to_owned(),
                in_flight: 1,
                latency_micros: 0,
                breaker_open: false,
            }],
            usage_pending: 3,
            usage_dropped: 0,
            last_used_pending: 1,
            invalidation_pending: 0,
            limits_mode: "local",
        })
    }

    /// `name → (type, help, label names)` of every metric in an exposition.
    fn families(text: &str) -> BTreeMap<String, (String, String, BTreeSet<String>)> {
        let mut out: BTreeMap<String, (String, String, BTreeSet<String>)> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                out.entry(name.to_owned()).or_default().1 = help.to_owned();
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                out.entry(name.to_owned()).or_default().0 = kind.to_owned();
            } else if let Some((series, _)) = line.split_once(' ') {
                let (name, labels) = series.split_once('{').unwrap_or((series, ""));
                let family = out
                    .keys()
                    .filter(|family| name.starts_with(family.as_str()))
                    .max_by_key(|family| family.len())
                    .cloned()
                    .unwrap();
                for pair in labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|p| !p.is_empty())
                {
                    let label = pair.split_once('=').unwrap().0;
                    if label != "le" {
                        out.get_mut(&family).unwrap().2.insert(label.to_owned());
                    }
                }
            }
        }
        out
    }

    /// The table of docs/metrics.md, as the registry says it should read.
    fn table(text: &str) -> String {
        let mut table = "| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n".to_owned();
        for (name, (kind, help, labels)) in families(text) {
            let labels: Vec<String> = labels.iter().map(|l| format!("`{l}`")).collect();
            table.push_str(&format!(
                "| `{name}` | {kind} | {} | {help} |\n",
                labels.join(", ")
            ));
        }
        table
    }

    #[test]
    fn every_metric_is_documented_as_it_is() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let expected = table(&exercised());
        let (start, end) = ("<!-- metrics:start -->\n", "<!-- metrics:end -->");
        let written = doc
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(table, _)| table.to_owned())
            .unwrap_or_default();
        if written != expected && std::env::var_os("KEYGATE_BLESS").is_some() {
            let (head, rest) = doc.split_once(start).unwrap();
            let (_, tail) = rest.split_once(end).unwrap();
            std::fs::write(&path, format!("{head}{start}{expected}{end}{tail}")).unwrap();
            return;
        }
        assert_eq!(
            written, expected,
            "docs/metrics.md is out of date: run KEYGATE_BLESS=1 cargo test -p keygate-server --lib metrics"
        );
    }

    #[test]
    fn labels_are_bounded_and_secrets_never_appear() {
        let text = exercised();
        assert!(
            !text.contains("key_id") && !text.contains("kg_live_"),
            "{text}"
        );
        for (name, (_, _, labels)) in families(&text) {
            for label in labels {
                assert!(
                    !["key", "key_id", "path", "user", "client_ip"].contains(&label.as_str()),
                    "{name} has an unbounded label {label}"
                );
            }
        }
    }
}
