//! Alerts as webhooks. An event (a key suspended, a secret due for rotation, …) is written to
//! the store's outbox with one delivery per endpoint that wants it; one task per node
//! announces what the audit log holds (`announce.rs`) and sends due deliveries, signed per the
//! Standard Webhooks specification, retrying on the schedule until delivered or dead
//! (`deliver.rs`). Nodes share the work through the store: the announcer runs under a lease,
//! and each delivery is claimed by one node at a time. The admin operations (endpoints, their
//! deliveries, replays, tests) are in `admin.rs`; the endpoints' secrets are sealed by the
//! KEK (`sealing.rs`).

mod admin;
mod announce;
mod deliver;
mod sealing;

use std::sync::Arc;
use std::time::Duration;

use keygate_watch::RetrySchedule;
use tokio_util::sync::CancellationToken;

use crate::service::Keygate;

pub use admin::{CreateWebhook, NewWebhook, UpdateWebhook, WebhookPage};
pub use sealing::{rewrap_webhook_secrets, webhooks_sealed_by_other};

/// How alerts are delivered.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Let endpoints be on loopback, private or link-local addresses (a receiver on the same
    /// host or network). Off by default: an admin could otherwise aim deliveries at keygate's
    /// own network.
    pub allow_private: bool,
    /// The waits after failed attempts (their count + 1 is the attempts a delivery gets).
    pub retries: RetrySchedule,
    /// How often the outbox is looked at.
    pub poll: Duration,
    /// The longest an attempt may take, answer included.
    pub attempt_timeout: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            retries: RetrySchedule::default(),
            poll: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(15),
        }
    }
}

/// The alerts of one node: the admin operations and the delivery task.
#[derive(Debug)]
pub struct Alerts {
    keygate: Arc<Keygate>,
    settings: AlertSettings,
    /// `None` if the TLS stack could not be set up: every attempt then fails, saying so.
    client: Option<keygate_llm::egress::Client>,
}

impl Alerts {
    pub fn new(keygate: Arc<Keygate>, settings: AlertSettings) -> Self {
        let client = keygate_llm::egress::Client::new(keygate_llm::egress::ClientOptions {
            connect_timeout: Duration::from_secs(5),
            idle: Duration::from_secs(20),
            total: Some(settings.attempt_timeout),
            public_only: !settings.allow_private,
        });
        if client.is_err() {
            tracing::error!("the HTTP client for webhooks could not be set up: none will be sent");
        }
        Self {
            keygate,
            settings,
            client: client.ok(),
        }
    }

    /// Announces audited events and sends due deliveries every `poll`, until `stop` — in two
    /// loops, so that a slow receiver holds up neither the announcements nor other nodes.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let holder = uuid::Uuid::now_v7().to_string();
        let announcing = async {
            let mut ticker = tokio::time::interval(self.settings.poll);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = stop.cancelled() => return,
                }
                if let Err(err) = self.announce(&holder).await {
                    tracing::warn!(error = %err, "could not read the audit log for alerts");
                }
            }
        };
        let delivering = async {
            let mut ticker = tokio::time::interval(self.settings.poll);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = stop.cancelled() => return,
                }
                if let Err(err) = self.deliver_due().await {
                    tracing::warn!(error = %err, "could not send due webhook deliveries");
                }
            }
        };
        tokio::join!(announcing, delivering);
    }
}
