//! Serving one request: choose a deployment, send, and on a failure that another deployment
//! may not repeat, retry (with backoff when it is the same one) and then fall back to other
//! groups. Nothing is retried once bytes reached the client.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderValue;
use keygate_core::TokenCounts;
use tracing::Instrument as _;

mod prepare;
mod send;

use self::prepare::{Prepared, prepare};
use self::send::Outbound;
use crate::backoff;
use crate::client::ClientFormat;
use crate::config::Credential;
use crate::credential::SecretSource;
use crate::egress;
use crate::error::{AttemptError, GatewayError};
use crate::gateway::{Deployment, Gateway, Pick};
use crate::price::Units;
use crate::relay::{InFlight, Relay};
use crate::request::Inbound;
use crate::upload::Upload;

/// The deployment that served a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// `provider/model`.
    pub deployment: String,
    pub provider: String,
    /// The model name upstream.
    pub model: String,
    pub attempts: u32,
    /// Time to the response head (for a stream, to its first event).
    pub first_byte: Duration,
    /// The model group it belongs to: another than the one asked for when a fallback served.
    pub group: String,
}

/// What goes back to the client.
#[derive(Debug)]
pub enum Reply {
    /// A whole answer: a success, or an upstream error that is the client's to fix (a
    /// 400-class status other than authentication and rate limits), passed through.
    Complete {
        status: u16,
        content_type: Option<HeaderValue>,
        body: Bytes,
        tokens: Option<TokenCounts>,
        /// What was used that is priced by the unit (images, audio, characters).
        units: Units,
        served: Served,
    },
    Stream {
        content_type: Option<HeaderValue>,
        relay: Box<Relay>,
        served: Served,
    },
}

/// A request that failed, with what is known of how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: GatewayError,
    pub attempts: u32,
    /// The deployment tried last.
    pub deployment: Option<String>,
}

enum Attempt {
    Done(Box<Reply>),
    Failed(AttemptError),
    /// Not sent: the deployment's breaker refused it.
    Skipped,
}

impl Gateway {
    /// Serves `inbound` from the group named by its model, then from that group's fallbacks
    /// that `allowed` grants (the caller's scopes: a fallback is a model of its own).
    ///
    /// Within a group every available deployment is tried once, in the strategy's order;
    /// then, up to the group's `retries`, deployments already tried are tried again after a
    /// backoff of at least the `Retry-After` each asked for (one that asked for longer than
    /// `max_retry_after` is not waited for).
    pub async fn dispatch(
        &self,
        inbound: &Inbound,
        secrets: &dyn SecretSource,
        allowed: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Reply, Failure> {
        let Some(primary) = self.groups.get(&inbound.model) else {
            return Err(Failure {
                error: GatewayError::ModelNotFound(inbound.model.clone()),
                attempts: 0,
                deployment: None,
            });
        };
        // Checked once, before any attempt: a refused beta is the client's to fix.
        let beta = match inbound.format {
            ClientFormat::Anthropic => self
                .tuning
                .anthropic_beta
                .pass_on(inbound.anthropic_beta.as_deref())
                .map_err(|err| Failure {
                    error: err.into(),
                    attempts: 0,
                    deployment: None,
                })?,
            ClientFormat::OpenAi | ClientFormat::Responses => None,
        };
        let chain = std::iter::once(primary).chain(
            primary
                .fallbacks
                .iter()
                .filter(|alias| allowed(alias))
                .filter_map(|alias| self.groups.get(alias)),
        );
        let mut attempts = 0u32;
        let mut last: Option<(String, AttemptError)> = None;
        for group in chain {
            // The deployments tried in this group, with the `Retry-After` each asked for.
            let mut tried: Vec<(usize, Option<Duration>)> = Vec::new();
            let mut retries = 0u32;
            loop {
                // An upload streams once: after an attempt sent it, nothing is tried again.
                if inbound.uploaded().is_some_and(Upload::taken) {
                    break;
                }
                let indices: Vec<usize> = tried.iter().map(|(index, _)| *index).collect();
                let max_wait = self.tuning.max_retry_after;
                let may_retry = |index: usize| {
                    tried
                        .iter()
                        .any(|(i, asked)| *i == index && asked.is_none_or(|d| d <= max_wait))
                };
                let Some(pick) = group.pick(Instant::now(), &indices, &may_retry) else {
                    break;
                };
                let index = match pick {
                    Pick::Fresh(index) => index,
                    Pick::Again(index) => {
                        if retries >= group.retries {
                            break;
                        }
                        retries += 1;
                        let asked = tried
                            .iter()
                            .find(|(i, _)| *i == index)
                            .and_then(|(_, asked)| *asked);
                        let wait = backoff::delay(
                            retries,
                            self.tuning.retry_base,
                            self.tuning.retry_max,
                            asked,
                        );
                        tokio::time::sleep(wait).await;
                        index
                    }
                };
                let Some(deployment) = group.members.get(index) else {
                    break;
                };
                let outcome = self
                    .attempt(deployment, inbound, beta.as_deref(), secrets, attempts + 1)
                    .await;
                let asked = match outcome {
                    Attempt::Done(mut reply) => {
                        let (Reply::Complete { served, .. } | Reply::Stream { served, .. }) =
                            &mut *reply;
                        served.group.clone_from(&group.alias);
                        return Ok(*reply);
                    }
                    // The breaker closed the door between the choice and the request.
                    Attempt::Skipped => None,
                    // Not sent, and never worth sending again.
                    Attempt::Failed(err @ AttemptError::Untranslatable(_)) => {
                        last = Some((deployment.spec.id.clone(), err));
                        Some(Duration::MAX)
                    }
                    Attempt::Failed(err) => {
                        attempts += 1;
                        tracing::info!(
                            alias = %group.alias,
                            deployment = %deployment.spec.id,
                            error = %err.summary(),
                            "upstream attempt failed"
                        );
                        let asked = match &err {
                            AttemptError::Status { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        last = Some((deployment.spec.id.clone(), err));
                        asked
                    }
                };
                tried.retain(|(i, _)| *i != index);
                tried.push((index, asked));
            }
        }
        Err(match last {
            Some((deployment, last)) => Failure {
                error: GatewayError::Exhausted {
                    deployment: deployment.clone(),
                    last,
                    attempts,
                },
                attempts,
                deployment: Some(deployment),
            },
            None => Failure {
                error: GatewayError::NoDeployment(inbound.model.clone()),
                attempts,
                deployment: None,
            },
        })
    }

    async fn attempt(
        &self,
        deployment: &Deployment,
        inbound: &Inbound,
        beta: Option<&str>,
        secrets: &dyn SecretSource,
        attempts: u32,
    ) -> Attempt {
        let Prepared {
            url,
            body,
            embedding,
        } = match prepare(deployment, inbound, &self.tuning) {
            Ok(prepared) => prepared,
            Err(err) => return Attempt::Failed(AttemptError::Untranslatable(err)),
        };
        let credential = match &deployment.spec.credential {
            Credential::Value(value) => Some(value.clone()),
            Credential::Vault(reference) => match secrets.secret(reference).await {
                Ok(value) => Some(value),
                Err(err) => return Attempt::Failed(AttemptError::Credential(err)),
            },
            Credential::None => None,
        };
        let started = Instant::now();
        let Some(admission) = deployment.health.begin(started) else {
            return Attempt::Skipped;
        };
        let in_flight = InFlight(deployment.health.clone());
        // An upload is taken only now, when it is sure to be sent.
        let body = match (body, inbound.uploaded()) {
            (Some(body), _) => egress::Body::whole(body),
            (None, Some(upload)) => match upload.take_body(&deployment.spec.model) {
                Some(body) => body,
                None => return Attempt::Failed(AttemptError::Interrupted),
            },
            (None, None) => egress::Body::empty(),
        };
        let span = attempt_span(deployment);
        let outcome = self
            .send(
                deployment,
                inbound,
                Outbound {
                    url,
                    body,
                    credential: credential.as_ref(),
                    beta,
                    embedding,
                },
                started,
                in_flight,
                attempts,
            )
            .instrument(span.clone())
            .await;
        // A failure while the client's upload broke off is the client's, not the deployment's.
        let outcome = match (outcome, inbound.uploaded().and_then(Upload::fault)) {
            (Attempt::Failed(_), Some(fault)) => Attempt::Failed(AttemptError::Upload(fault)),
            (outcome, _) => outcome,
        };
        record_attempt(&span, &outcome);
        let now = Instant::now();
        match &outcome {
            Attempt::Done(reply) => match &**reply {
                Reply::Complete { status, served, .. } if *status < 300 => {
                    deployment.health.succeeded(served.first_byte);
                }
                Reply::Stream { served, .. } => deployment.health.succeeded(served.first_byte),
                Reply::Complete { .. } => deployment.health.neutral(admission, now),
            },
            Attempt::Failed(AttemptError::Status {
                status: 429,
                retry_after,
                ..
            }) => deployment.health.rate_limited(admission, now, *retry_after),
            Attempt::Failed(err) if err.is_fault() => deployment.health.faulted(now),
            Attempt::Failed(_) | Attempt::Skipped => deployment.health.neutral(admission, now),
        }
        outcome
    }
}

/// The span of one upstream attempt, a child of the request's (see keygate-server's
/// `gateway/trace.rs`): disabled, and free, unless traces are exported.
fn attempt_span(deployment: &Deployment) -> tracing::Span {
    tracing::info_span!(
        target: "keygate::otel",
        "attempt",
        otel.name = format!("chat {}", deployment.spec.model),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.provider.name = deployment.provider.spec.name.as_str(),
        gen_ai.request.model = deployment.spec.model.as_str(),
        keygate.deployment = deployment.spec.id.as_str(),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

fn record_attempt(span: &tracing::Span, outcome: &Attempt) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Attempt::Done(reply) => {
            if let Reply::Complete { status, .. } = &**reply {
                span.record("http.response.status_code", *status);
            } else {
                span.record("http.response.status_code", 200);
            }
        }
        Attempt::Failed(err) => {
            if let AttemptError::Status { status, .. } = err {
                span.record("http.response.status_code", *status);
            }
            span.record("error.type", err.kind());
            span.record("otel.status_code", "ERROR");
        }
        Attempt::Skipped => {
            span.record("error.type", "breaker_open");
        }
    }
}
