//! Delivery attempts: claim what is due, sign, send, record the outcome. A 2xx answer
//! delivers; anything else (another status, no answer, a timeout) is retried on the schedule
//! until the attempts are used up, then the delivery is dead. The same `webhook-id` goes with
//! every attempt, so a receiver that got an attempt whose answer was lost can drop the repeat.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use keygate_llm::egress::{Body, Request, SendError};
use keygate_store::{AttemptOutcome, DueDelivery};

use super::{Alerts, sealing};
use crate::ServiceError;

/// How many deliveries one node claims (and sends at once) per round.
const BATCH: u32 = 16;
/// How much of a receiver's answer is read (and dropped): enough to keep the connection.
const ANSWER_LIMIT: usize = 64 * 1024;

impl Alerts {
    /// Sends every delivery that is due, a batch at a time.
    pub(super) async fn deliver_due(&self) -> Result<(), ServiceError> {
        loop {
            let now = self.keygate.clock().now();
            // The claim outlives the longest attempt, so no other node takes it meanwhile.
            let lease = self.settings.attempt_timeout * 2 + Duration::from_secs(5);
            let until = now.saturating_add(lease);
            let due = self
                .keygate
                .store()
                .claim_deliveries(now, until, BATCH)
                .await?;
            let claimed = due.len();
            let attempts = due.into_iter().map(|d| self.attempt(d));
            for result in futures_util::future::join_all(attempts).await {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "a webhook delivery's outcome was not recorded");
                }
            }
            if claimed < BATCH as usize {
                return Ok(());
            }
        }
    }

    async fn attempt(&self, due: DueDelivery) -> Result<(), ServiceError> {
        let outcome = match self.send(&due).await {
            Ok(status) if (200..300).contains(&status) => AttemptOutcome::Delivered { status },
            Ok(status) => self.failed(
                &due,
                Some(status),
                format!("the endpoint answered {status}"),
            ),
            Err(reason) => self.failed(&due, None, reason),
        };
        self.keygate.metrics().watch.attempt(match &outcome {
            AttemptOutcome::Delivered { .. } => "delivered",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Dead { .. } => "dead",
        });
        if let AttemptOutcome::Dead { error, .. } = &outcome {
            tracing::warn!(
                delivery = %due.delivery.id,
                endpoint = %due.delivery.endpoint_id,
                error = %error,
                "a webhook delivery is dead after its last attempt"
            );
        }
        let recorded = self
            .keygate
            .store()
            .finish_attempt(&due, &outcome, self.keygate.clock().now())
            .await?;
        if !recorded {
            tracing::info!(
                delivery = %due.delivery.id,
                "a delivery's claim ended before its attempt did (its endpoint was deleted, or                  another node took it over): this outcome is not recorded"
            );
        }
        Ok(())
    }

    fn failed(&self, due: &DueDelivery, status: Option<u16>, error: String) -> AttemptOutcome {
        let failed = due.delivery.attempts.saturating_add(1);
        match self.settings.retries.after(failed) {
            Some(wait) => AttemptOutcome::Retry {
                at: self.keygate.clock().now().saturating_add(wait),
                status,
                error,
            },
            None => AttemptOutcome::Dead { status, error },
        }
    }

    /// One attempt: the answer's status, or why there was none (in keygate's words).
    async fn send(&self, due: &DueDelivery) -> Result<u16, String> {
        let url = url::Url::parse(&due.url).map_err(|_| "the URL is not valid".to_owned())?;
        if !self.settings.allow_private && !super::admin::host_may_be_public(&url) {
            return Err("the URL names a private or local address".to_owned());
        }
        let secret = sealing::open_parts(
            self.keygate.kek().as_ref(),
            &due.delivery.endpoint_id,
            &due.kek_id,
            &due.secret_sealed,
        )
        .map_err(|_| "the endpoint's secret cannot be unsealed".to_owned())?;
        let id = due.delivery.event_id.as_str();
        let timestamp = self.keygate.clock().now().as_millis().div_euclid(1000);
        let signature = keygate_watch::sign(&secret, id, timestamp, due.payload.as_bytes());
        let uri = keygate_llm::egress::uri(&url).map_err(|_| "the URL is not valid".to_owned())?;
        let mut request = Request::new(
            Method::POST,
            uri,
            Body::whole(bytes::Bytes::from(due.payload.clone())),
        );
        let text = |value: &str| HeaderValue::from_str(value).map_err(|_| "bad header".to_owned());
        request
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
            .header(HeaderName::from_static("webhook-id"), text(id)?)
            .header(
                HeaderName::from_static("webhook-timestamp"),
                text(&timestamp.to_string())?,
            )
            .header(
                HeaderName::from_static("webhook-signature"),
                text(&signature)?,
            );
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| "keygate's HTTP client could not be set up".to_owned())?;
        let answer = client.send(request).await.map_err(|err| match err {
            SendError::Connect => "the endpoint could not be reached".to_owned(),
            SendError::Timeout => "the endpoint did not answer in time".to_owned(),
            SendError::Failed => "the connection to the endpoint failed".to_owned(),
        })?;
        let status = answer.status.as_u16();
        // The body is read (bounded, in time too) only to keep the connection for reuse.
        let _ =
            tokio::time::timeout(self.settings.attempt_timeout, answer.read(ANSWER_LIMIT)).await;
        Ok(status)
    }
}

const USER_AGENT: &str = concat!("keygate-webhooks/", env!("CARGO_PKG_VERSION"));
