//! Anomaly detection with actions. Every usage record goes through the detectors
//! (keygate-watch's `detect`) as the usage log takes it to be written — off the request path,
//! within a second of the request. What they find is queued to this node's anomaly task, which
//! applies the policy for that detector: `record` (kept, listed at `/admin/v1/anomalies`),
//! `alert` (kept and sent to webhooks as `anomaly.detected`), `throttle` (the key's request
//! rates cut for a while on every node, audited, and `anomaly.acted` follows) or `suspend`
//! (the key is suspended at once on every node, audited, and `anomaly.acted` follows). The admin
//! operations (list, acknowledge) are in `admin.rs`. With Redis, the figures are the whole
//! cluster's and each finding is acted on once (`across_nodes.rs`, `cluster.rs`).

mod across_nodes;
mod admin;
mod cluster;
mod failures;
mod geo;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use keygate_core::{AnomalyId, UsageRecord};
use keygate_store::{Anomaly, OutboxEvent};
use keygate_watch::detect::{DetectorKind, Detectors, Finding, Observation, Thresholds};
use keygate_watch::sources::SourceGuard;
use keygate_watch::{Event, EventType};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ServiceError;
use crate::service::{Keygate, Quarantine};
use crate::usage_log::UsageWatcher;

pub use admin::AnomalyQuery;
pub use geo::{GeoIp, GeoIpError};

/// What a detector's finding leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyAction {
    /// Kept and listed.
    Record,
    /// Kept, listed and sent to webhooks.
    Alert,
    /// The key's request rates are cut for a while (`throttle_percent`, `throttle_for`);
    /// kept, listed and sent to webhooks.
    Throttle,
    /// The key is suspended; kept, listed and sent to webhooks.
    Suspend,
}

/// A project's anomaly actions, checked: each key a detector's name, each value an action.
pub fn check_actions(
    actions: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, keygate_core::ValidationError> {
    for (detector, action) in &actions {
        if DetectorKind::parse(detector).is_none() {
            return Err(keygate_core::ValidationError::new(
                "anomaly_actions",
                "keys are detectors: request_spike, token_spike, spend_spike, new_network, \
                 scope_probing, old_secret_late, foreign_origin or new_country",
            ));
        }
        if AnomalyAction::parse(action).is_none() {
            return Err(keygate_core::ValidationError::new(
                "anomaly_actions",
                "values are actions: record, alert, throttle or suspend",
            ));
        }
    }
    Ok(actions)
}

impl AnomalyAction {
    pub const ALL: [Self; 4] = [Self::Record, Self::Alert, Self::Throttle, Self::Suspend];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::Alert => "alert",
            Self::Throttle => "throttle",
            Self::Suspend => "suspend",
        }
    }
}

/// The detectors' thresholds and each one's action.
#[derive(Debug, Clone)]
pub struct AnomalySettings {
    pub thresholds: Thresholds,
    pub actions: BTreeMap<DetectorKind, AnomalyAction>,
    /// Failed authentications from one source in a minute that get it blocked.
    pub auth_failures_per_minute: u32,
    /// Failed authentications with one refused key in a minute that are announced.
    pub key_failures_per_minute: u32,
    /// How long a blocked source is refused (`source_blocked`).
    pub source_block: std::time::Duration,
    /// What a `throttle` action leaves of a key's request rates (percent)…
    pub throttle_percent: u8,
    /// …for how long…
    pub throttle_for: std::time::Duration,
    /// …and the rate of a key that has none.
    pub throttle_rate: keygate_core::RequestRate,
    /// Names client countries, for `new_country`; without it, that detector is off.
    pub geoip: Option<Arc<GeoIp>>,
    /// Redis, for detection across nodes: figures summed over every node, blocks shared,
    /// each finding announced once.
    pub redis_url: Option<String>,
}

impl Default for AnomalySettings {
    /// Spikes and probing alert; a new network is recorded (roaming clients make them common).
    fn default() -> Self {
        let actions = DetectorKind::ALL
            .into_iter()
            .map(|kind| {
                let action = match kind {
                    DetectorKind::NewNetwork => AnomalyAction::Record,
                    _ => AnomalyAction::Alert,
                };
                (kind, action)
            })
            .collect();
        Self {
            thresholds: Thresholds::default(),
            actions,
            auth_failures_per_minute: 20,
            key_failures_per_minute: 20,
            source_block: std::time::Duration::from_secs(300),
            throttle_percent: 10,
            throttle_for: std::time::Duration::from_secs(3600),
            throttle_rate: keygate_core::RequestRate {
                limit: 60,
                per: keygate_core::Per::Minute,
            },
            geoip: None,
            redis_url: None,
        }
    }
}

/// Findings waiting for the anomaly task; past it, new ones are dropped and counted.
const QUEUE: usize = 1024;

/// What the anomaly task acts on, off the request path.
#[derive(Debug)]
enum Work {
    Finding(Finding),
    /// A source just blocked, to audit.
    Blocked(keygate_watch::sources::Block),
    /// A refused key presented in a burst, to audit.
    DeadKey(Box<failures::DeadKeyBurst>),
    /// A usage batch's traffic, per key and minute, for the cluster's figures.
    Traffic(Vec<keygate_watch::detect::Traffic>),
}

/// This node's detectors and the task that acts on their findings.
#[derive(Debug)]
pub struct Anomalies {
    keygate: Arc<Keygate>,
    settings: AnomalySettings,
    sources: SourceGuard,
    dead_keys: keygate_watch::dead_keys::DeadKeys,
    /// What the usage log and the verification report to. It holds no `Keygate` (which holds
    /// it), so that a server's store and pools are freed with the server.
    watcher: Arc<Watcher>,
    queue: Mutex<Option<mpsc::Receiver<Work>>>,
    /// Redis, for detection across nodes.
    cluster: Option<cluster::Cluster>,
    /// Failed authentications waiting to be added to the cluster's counts.
    failures: across_nodes::PendingFailures,
}

/// The detectors and the queue to the anomaly task.
#[derive(Debug)]
struct Watcher {
    detectors: Detectors,
    found: mpsc::Sender<Work>,
    dropped: AtomicU64,
    metrics: Arc<crate::metrics::Metrics>,
    geoip: Option<Arc<GeoIp>>,
    /// Whether the figures are the cluster's: batches then go to the anomaly task.
    shared: bool,
}

impl Watcher {
    fn queue_work(&self, work: Work) {
        if self.found.try_send(work).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.watch.finding_dropped();
        }
    }
}

impl Anomalies {
    /// The detectors of `keygate`'s usage log.
    pub fn new(keygate: Arc<Keygate>, settings: AnomalySettings) -> Arc<Self> {
        let (found, queue) = mpsc::channel(QUEUE);
        let cluster = settings
            .redis_url
            .as_deref()
            .and_then(cluster::Cluster::new);
        let watcher = Arc::new(Watcher {
            detectors: Detectors::new(settings.thresholds.clone()),
            found,
            dropped: AtomicU64::new(0),
            metrics: keygate.metrics().clone(),
            geoip: settings.geoip.clone(),
            shared: cluster.is_some(),
        });
        keygate.usage().watched_by(watcher.clone());
        keygate.watch_key_use(watcher.clone());
        Arc::new(Self {
            sources: SourceGuard::new(settings.auth_failures_per_minute, settings.source_block),
            dead_keys: keygate_watch::dead_keys::DeadKeys::new(
                settings.key_failures_per_minute,
                settings.thresholds.cooldown,
            ),
            keygate,
            settings,
            watcher,
            queue: Mutex::new(Some(queue)),
            cluster,
            failures: across_nodes::PendingFailures::default(),
        })
    }

    /// Acts on findings until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let Some(mut queue) = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        if self.cluster.is_some() {
            tracing::info!("anomaly detection is shared across nodes through Redis");
        }
        // With Redis, failure counts go out and blocks come in twice a second.
        let mut exchange = tokio::time::interval(across_nodes::EXCHANGE_EVERY);
        exchange.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let work = tokio::select! {
                found = queue.recv() => match found {
                    Some(work) => work,
                    None => return,
                },
                _ = exchange.tick(), if self.cluster.is_some() => {
                    self.exchange().await;
                    continue;
                }
                () = stop.cancelled() => return,
            };
            match work {
                Work::Finding(finding) => self.act_once(finding, true).await,
                Work::Blocked(block) => self.audit_block(block).await,
                Work::DeadKey(burst) => self.audit_dead_key(burst).await,
                Work::Traffic(traffic) => self.judge_together(traffic).await,
            }
        }
    }

    /// Acts on a finding once for the cluster, logging what fails; `checked_here` when this
    /// node's cooldown let it through already.
    async fn act_once(&self, finding: Finding, checked_here: bool) {
        if !self.claimed_finding(&finding, checked_here).await {
            return;
        }
        if let Err(err) = self.act(finding).await {
            tracing::warn!(error = %err, "an anomaly could not be recorded or acted on");
        }
    }

    /// Findings dropped because the task fell behind.
    pub fn dropped(&self) -> u64 {
        self.watcher.dropped.load(Ordering::Relaxed)
    }

    /// The finding's project's action for its detector, else the server's.
    async fn action_for(&self, finding: &Finding) -> AnomalyAction {
        let detector = finding.kind.as_str();
        if let Some(project) = &finding.project_id {
            match self.keygate.store().project(project).await {
                Ok(Some(project)) => {
                    if let Some(action) = project
                        .anomaly_actions
                        .get(detector)
                        .and_then(|a| AnomalyAction::parse(a))
                    {
                        return action;
                    }
                }
                Ok(None) => {}
                // The finding is kept and acted on by the server's policy.
                Err(err) => tracing::warn!(
                    error = %err,
                    "a project's anomaly actions could not be read; the server's apply"
                ),
            }
        }
        self.settings
            .actions
            .get(&finding.kind)
            .copied()
            .unwrap_or(AnomalyAction::Alert)
    }

    async fn act(&self, finding: Finding) -> Result<(), ServiceError> {
        let action = self.action_for(&finding).await;
        let id = AnomalyId::generate();
        let detector = finding.kind.as_str();
        self.keygate
            .metrics()
            .watch
            .anomaly(detector, action.as_str());
        let mut outcome = "recorded";
        if matches!(action, AnomalyAction::Suspend | AnomalyAction::Throttle) {
            let key = self.keygate.store().key(&finding.key_id).await?;
            let reason = format!("anomaly {detector} ({id})");
            outcome = match key {
                Some(key) => {
                    let how = if action == AnomalyAction::Suspend {
                        Quarantine::Suspend
                    } else {
                        let s = &self.settings;
                        Quarantine::Throttle(keygate_core::KeyThrottle::cut(
                            &key.limits,
                            s.throttle_percent,
                            s.throttle_rate,
                            self.keygate.clock().now().saturating_add(s.throttle_for),
                            &reason,
                        ))
                    };
                    self.keygate
                        .quarantine_key(
                            &key,
                            how,
                            &format!("anomaly:{detector}"),
                            &reason,
                            serde_json::json!({ "anomaly_id": id.to_string() }),
                        )
                        .await?
                }
                None => "none",
            };
        }
        let data = serde_json::json!({
            "anomaly_id": id.to_string(),
            "detector": detector,
            "key_id": finding.key_id.to_string(),
            "project_id": finding.project_id.as_ref().map(ToString::to_string),
            "evidence": finding.evidence,
            "action": action.as_str(),
            "outcome": outcome,
        });
        let now = self.keygate.clock().now();
        let mut events = Vec::new();
        if action != AnomalyAction::Record {
            events.push(event(
                EventType::AnomalyDetected,
                &finding,
                data.clone(),
                now,
            ));
        }
        if matches!(action, AnomalyAction::Suspend | AnomalyAction::Throttle) && outcome != "none" {
            events.push(event(EventType::AnomalyActed, &finding, data, now));
        }
        let anomaly = Anomaly {
            id,
            org_id: finding.org_id,
            project_id: finding.project_id,
            key_id: Some(finding.key_id),
            detector: detector.to_owned(),
            evidence: finding.evidence.to_string(),
            action: action.as_str().to_owned(),
            outcome: outcome.to_owned(),
            detected_at: finding.at,
            acknowledged_at: None,
            acknowledged_by: None,
            note: None,
        };
        self.keygate.store().add_anomaly(&anomaly, &events).await?;
        Ok(())
    }
}

fn event(
    kind: EventType,
    finding: &Finding,
    data: serde_json::Value,
    now: keygate_core::Timestamp,
) -> OutboxEvent {
    let event = Event::new(
        kind,
        now,
        Some(finding.org_id.clone()),
        finding.project_id.clone(),
        data,
    );
    OutboxEvent {
        payload: event.payload(),
        id: event.id,
        org_id: event.org_id,
        project_id: event.project_id,
        event_type: kind.as_str().to_owned(),
        at: event.at,
    }
}

impl UsageWatcher for Watcher {
    fn observe(&self, records: &[UsageRecord]) {
        let places: Vec<(Option<IpAddr>, Option<String>)> = records
            .iter()
            .map(|record| {
                let client_ip = record
                    .client_ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<IpAddr>().ok());
                let country = self
                    .geoip
                    .as_ref()
                    .zip(client_ip)
                    .and_then(|(geoip, ip)| geoip.country(ip));
                (client_ip, country)
            })
            .collect();
        let seen: Vec<Observation<'_>> = records
            .iter()
            .zip(&places)
            .map(|(record, (client_ip, country))| Observation {
                at: record.at,
                org_id: &record.org_id,
                project_id: record.project_id.as_ref(),
                key_id: &record.key_id,
                tokens: record.tokens.prompt + record.tokens.completion,
                cost_micros: record.cost.map_or(0, |c| c.0),
                client_ip: *client_ip,
                country: country.as_deref(),
                error_code: record.error_code.as_deref(),
            })
            .collect();
        if self.shared {
            // The cluster's figures are in Redis: the anomaly task adds this batch to them.
            let traffic = keygate_watch::detect::gather(&seen);
            if !traffic.is_empty() {
                self.queue_work(Work::Traffic(traffic));
            }
            return;
        }
        for finding in self.detectors.observe_all(&seen) {
            self.queue_work(Work::Finding(finding));
        }
    }

    fn is_live(&self) -> bool {
        !self.found.is_closed()
    }
}

impl crate::service::KeyUseWatcher for Watcher {
    fn old_secret_used(
        &self,
        key: &keygate_core::KeyRecord,
        secret: &keygate_core::KeySecret,
        now: keygate_core::Timestamp,
        ip: Option<IpAddr>,
    ) {
        let (Some(rotated_at), Some(grace_until)) = (key.rotated_at, secret.grace_until) else {
            return;
        };
        let seen = Observation {
            at: now,
            org_id: &key.org_id,
            project_id: key.project_id.as_ref(),
            key_id: &key.id,
            tokens: 0,
            cost_micros: 0,
            client_ip: ip,
            country: None,
            error_code: None,
        };
        if let Some(finding) =
            self.detectors
                .old_secret_used(&seen, secret.generation, rotated_at, grace_until)
        {
            self.queue_work(Work::Finding(finding));
        }
    }
}
