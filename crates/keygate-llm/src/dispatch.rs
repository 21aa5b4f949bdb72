//! Serving one request: choose a deployment, send, and on a failure that another deployment
//! may not repeat, retry (with backoff when it is the same one) and then fall back to other
//! groups. Nothing is retried once bytes reached the client.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Uri};
use keygate_core::TokenCounts;
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument as _;

use crate::backoff;
use crate::client::ClientFormat;
use crate::config::Credential;
use crate::credential::SecretSource;
use crate::egress::{self, Scrubber, SendError};
use crate::error::{AttemptError, GatewayError};
use crate::gateway::{Deployment, Gateway, Pick};
use crate::provider::{AuthStyle, Call};
use crate::relay::{Codec, Decoded, InFlight, Relay, RelayParts};
use crate::request::Inbound;
use crate::translate::gemini::embeddings::Embedding;
use crate::translate::{self, Format, StreamDecoder, StreamEncoder, TargetOptions, TranslateError};
use crate::usage;

/// Largest upstream answer read into memory (a non-streamed response or an error body).
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
const MAX_ERROR_BYTES: usize = 64 * 1024;

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
                if attempts > 0 && inbound.uploaded().is_some() {
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

    async fn send(
        &self,
        deployment: &Deployment,
        inbound: &Inbound,
        outbound: Outbound<'_>,
        started: Instant,
        in_flight: InFlight,
        attempts: u32,
    ) -> Attempt {
        let Outbound {
            url,
            body,
            credential,
            beta,
            embedding,
        } = outbound;
        let provider = &deployment.provider;
        let spec = &deployment.spec;
        let timeouts = spec.timeouts;
        let deadline = started + timeouts.total;
        let client_format = inbound.format;
        let target = provider.preset.format_for(client_format);
        // Whether the deployment speaks the client's format: then nothing is translated.
        let same = target == client_format.wire();
        let ask_usage = provider.preset.stream_usage_option && target == Format::OpenAi;
        let passthrough = inbound.endpoint.passthrough_path().is_some();
        // Audio comes back as it is made, whether or not the client asked for events.
        let relayed = inbound.stream || inbound.endpoint == crate::Endpoint::Speech;
        let mut request = egress::Request::new(Method::POST, url, body);
        request.header(header::CONTENT_TYPE, inbound.content_type());
        if inbound.stream {
            request.header(
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        if target == Format::Anthropic {
            request.header(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(translate::anthropic::API_VERSION),
            );
            if client_format == ClientFormat::Anthropic
                && let Some(beta) = beta.and_then(|beta| HeaderValue::from_str(beta).ok())
            {
                request.header(HeaderName::from_static("anthropic-beta"), beta);
            }
        }
        if let Some(traceparent) = egress::traceparent(inbound.traceparent.as_deref()) {
            request.header(HeaderName::from_static("traceparent"), traceparent);
        }
        if let Some(credential) = credential {
            let prefix = match provider.preset.auth {
                AuthStyle::Bearer => "Bearer ",
                _ => "",
            };
            let Some(value) = egress::secret_header(prefix, credential) else {
                return Attempt::Failed(AttemptError::Credential(
                    crate::CredentialError::Unavailable,
                ));
            };
            request.header(
                HeaderName::from_static(provider.preset.auth.header()),
                value,
            );
        }
        let first_byte = timeouts.first_byte.min(timeouts.total);
        // A non-streamed answer's head comes when the whole answer is ready: only the total
        // timeout applies to it.
        let head = if relayed { first_byte } else { timeouts.total };
        let response = match tokio::time::timeout(head, deployment.client.send(request)).await {
            Err(_) if relayed => {
                return Attempt::Failed(AttemptError::FirstByteTimeout(first_byte));
            }
            Err(_) => return Attempt::Failed(AttemptError::TotalTimeout(head)),
            Ok(Err(SendError::Connect | SendError::Timeout)) => {
                return Attempt::Failed(AttemptError::Connect);
            }
            Ok(Err(SendError::Failed)) => return Attempt::Failed(AttemptError::Interrupted),
            Ok(Ok(response)) => response,
        };
        let status = response.status.as_u16();
        let content_type = response.headers.get(header::CONTENT_TYPE).cloned();
        let mut served = Served {
            deployment: spec.id.clone(),
            provider: provider.spec.name.clone(),
            model: spec.model.clone(),
            attempts,
            first_byte: started.elapsed(),
            group: String::new(),
        };
        if !response.status.is_success() {
            let formats = (target, client_format);
            return failed_status(response, deadline, credential, served, formats).await;
        }
        if !relayed {
            let body = match read_limited(response, deadline, MAX_RESPONSE_BYTES).await {
                Ok(body) => body,
                Err(err) => return Attempt::Failed(err),
            };
            let (body, tokens, content_type) = if inbound.endpoint == crate::Endpoint::CountTokens {
                // A count, not an answer: nothing was generated.
                (body, None, content_type)
            } else if let Some(embedding) = &embedding {
                let Some(body) =
                    translate::gemini::embeddings::decode_response(&body, &spec.model, embedding)
                else {
                    return Attempt::Failed(AttemptError::InvalidResponse);
                };
                let tokens = TokenCounts {
                    prompt: embedding.tokens,
                    completion: 0,
                    cached: 0,
                };
                (
                    body,
                    Some(tokens),
                    Some(HeaderValue::from_static("application/json")),
                )
            } else if passthrough {
                // JSON with usage (images, transcriptions by tokens), JSON without (a
                // moderation), or a transcript as text, subtitles or a verbose document.
                let tokens = usage::from_body(&body).ok().flatten();
                (body, tokens, content_type)
            } else if same {
                let tokens = match target {
                    Format::OpenAi => usage::from_body(&body).ok(),
                    // Passed through, an answer keygate cannot read for usage is still the
                    // client's to read, as long as it is a JSON object.
                    _ => {
                        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
                            .ok()
                            .map(|_| {
                                translate::decode_response(target, &body)
                                    .ok()
                                    .and_then(|answer| answer.usage.map(TokenCounts::from))
                            })
                    }
                };
                let Some(tokens) = tokens else {
                    return Attempt::Failed(AttemptError::InvalidResponse);
                };
                (body, tokens, content_type)
            } else {
                let Ok(answer) = translate::decode_response(target, &body) else {
                    return Attempt::Failed(AttemptError::InvalidResponse);
                };
                let tokens = answer.usage.map(TokenCounts::from);
                let body = translate::encode_response(client_format.wire(), &answer);
                (
                    body,
                    tokens,
                    Some(HeaderValue::from_static("application/json")),
                )
            };
            let body = crate::egress::scrub_body(body, credential);
            if let Some(tokens) = tokens {
                deployment.health.add_tokens(
                    Instant::now(),
                    tokens.prompt.saturating_add(tokens.completion),
                );
            }
            drop(in_flight);
            return Attempt::Done(Box::new(Reply::Complete {
                status,
                content_type,
                body,
                tokens,
                served,
            }));
        }
        let is_event_stream = content_type
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !is_event_stream && inbound.stream {
            return Attempt::Failed(AttemptError::InvalidResponse);
        }
        let codec = if passthrough && inbound.endpoint != crate::Endpoint::Completions {
            Codec::Raw {
                events: is_event_stream,
            }
        } else if same && client_format == ClientFormat::OpenAi {
            Codec::OpenAiPassthrough {
                drop_usage_only: ask_usage && !inbound.client_wants_usage,
            }
        } else {
            Codec::Decoded(Box::new(Decoded {
                decoder: StreamDecoder::new(target),
                encoder: (!same)
                    .then(|| StreamEncoder::new(client_format.wire(), inbound.client_wants_usage)),
                events: Vec::new(),
            }))
        };
        let content_type = if same {
            content_type
        } else {
            Some(HeaderValue::from_static("text/event-stream"))
        };
        let upstream = response.into_stream();
        let upstream = match (&codec, credential) {
            // Audio and image events are not read for errors: scrubbed as they pass.
            (Codec::Raw { .. }, Some(secret)) => match Scrubber::new(secret.expose_secret()) {
                Some(scrubber) => egress::scrub_stream(upstream.boxed(), scrubber).boxed(),
                None => upstream.boxed(),
            },
            _ => upstream.boxed(),
        };
        let mut relay = Relay::new(RelayParts {
            upstream,
            gap: timeouts.chunk_gap,
            deadline,
            codec,
            client: client_format,
            credential: credential.cloned(),
            started,
            in_flight,
        });
        let remaining = first_byte.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, relay.prime()).await {
            Err(_) => return Attempt::Failed(AttemptError::FirstByteTimeout(first_byte)),
            Ok(Err(err)) => return Attempt::Failed(err),
            Ok(Ok(())) => {}
        }
        served.first_byte = started.elapsed();
        Attempt::Done(Box::new(Reply::Stream {
            content_type,
            relay: Box::new(relay),
            served,
        }))
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

/// A request ready to send.
struct Outbound<'a> {
    url: Uri,
    body: egress::Body,
    credential: Option<&'a SecretString>,
    /// The `anthropic-beta` header the policy lets through, for an Anthropic client.
    beta: Option<&'a str>,
    /// An embeddings request translated for Gemini.
    embedding: Option<Embedding>,
}

/// What [`prepare`] makes of a request for one deployment.
struct Prepared {
    url: Uri,
    /// `None` for an upload, which is taken when it is sent.
    body: Option<Bytes>,
    embedding: Option<Embedding>,
}

/// The URL and body for `deployment`: the client's request as it is when the deployment
/// speaks the client's format, translated otherwise.
fn prepare(
    deployment: &Deployment,
    inbound: &Inbound,
    tuning: &crate::config::Tuning,
) -> Result<Prepared, TranslateError> {
    let preset = &deployment.provider.preset;
    let target = preset.format_for(inbound.format);
    let call = match inbound.endpoint {
        endpoint if endpoint.passthrough_path().is_some() => Call::Passthrough(endpoint),
        crate::Endpoint::Embeddings => Call::Embeddings,
        crate::Endpoint::CountTokens => Call::CountTokens,
        _ if target == Format::Responses => Call::Responses {
            stream: inbound.stream,
        },
        _ => Call::Chat {
            stream: inbound.stream,
        },
    };
    let Some(url) = deployment.url(call).cloned() else {
        return Err(match call {
            Call::Passthrough(endpoint) => {
                TranslateError::not_served(endpoint, deployment.provider.spec.kind)
            }
            _ => TranslateError::unsupported(inbound.endpoint.as_str(), target),
        });
    };
    let model = &deployment.spec.model;
    let whole = |body| Prepared {
        url: url.clone(),
        body: Some(body),
        embedding: None,
    };
    if inbound.uploaded().is_some() {
        return Ok(Prepared {
            url,
            body: None,
            embedding: None,
        });
    }
    if let Call::Passthrough(endpoint) = call {
        // Only the legacy completions stream OpenAI's chunks, and take `stream_options`.
        let ask_usage = endpoint == crate::Endpoint::Completions && preset.stream_usage_option;
        return Ok(whole(inbound.body_for(model, ask_usage)));
    }
    if inbound.endpoint == crate::Endpoint::Embeddings {
        if target == Format::Gemini {
            let embedding = translate::gemini::embeddings::encode_request(&inbound.body, model)?;
            return Ok(Prepared {
                body: Some(embedding.body.clone()),
                url,
                embedding: Some(embedding),
            });
        }
        return Ok(whole(inbound.body_for(model, false)));
    }
    let options = TargetOptions {
        max_tokens: tuning.default_max_tokens,
        stream_usage: preset.stream_usage_option,
        max_completion_tokens: preset.max_completion_tokens,
        reasoning: deployment.reasoning,
        refuse_hints: deployment.refuse_hints,
        max_output: deployment.spec.max_output_tokens,
    };
    let body = inbound.upstream_body(target, model, &options)?;
    Ok(whole(body))
}

/// Reads a body up to `limit` bytes before `deadline`.
async fn read_limited(
    response: egress::Response,
    deadline: Instant,
    limit: usize,
) -> Result<Bytes, AttemptError> {
    let total = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(total, response.read(limit)).await {
        Err(_) => Err(AttemptError::TotalTimeout(total)),
        Ok(Err(egress::ReadError::Broken)) => Err(AttemptError::Interrupted),
        Ok(Err(egress::ReadError::TooLarge)) => Err(AttemptError::InvalidResponse),
        Ok(Ok(body)) => Ok(body),
    }
}

/// An upstream error status: retried elsewhere when another deployment may do better
/// (rate limits, server errors, and authentication or missing models, which are faults of
/// the deployment's configuration, not of the client); passed through otherwise.
async fn failed_status(
    response: egress::Response,
    deadline: Instant,
    credential: Option<&SecretString>,
    served: Served,
    (upstream, client): (Format, ClientFormat),
) -> Attempt {
    let mut status = response.status.as_u16();
    let retry_after = backoff::parse_retry_after(&response.headers);
    let content_type = response.headers.get(header::CONTENT_TYPE).cloned();
    let body = read_limited(response, deadline, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    // Gemini refuses a bad key with 400; it is the deployment's fault, not the client's.
    if upstream == Format::Gemini
        && status == 400
        && body.windows(15).any(|w| w == b"API_KEY_INVALID")
    {
        status = 401;
    }
    let retryable = matches!(status, 401 | 403 | 404 | 408 | 409 | 429) || status >= 500;
    if retryable {
        // The code is shown to clients: never one that holds the credential.
        let code = error_code(&body).filter(|code| {
            credential.is_none_or(|secret| {
                let secret = secret.expose_secret();
                secret.len() < 8 || !code.contains(secret)
            })
        });
        return Attempt::Failed(AttemptError::Status {
            status,
            code,
            retry_after,
        });
    }
    let (body, content_type) = if upstream == client.wire() {
        (body, content_type)
    } else {
        let error = translate::decode_error(upstream, status, &body);
        (
            translate::encode_error(client, &error, "upstream_error"),
            Some(HeaderValue::from_static("application/json")),
        )
    };
    let body = crate::egress::scrub_body(body, credential);
    Attempt::Done(Box::new(Reply::Complete {
        status,
        content_type,
        body,
        tokens: None,
        served,
    }))
}

/// The provider's error code (or type) from an OpenAI-shaped error body; only a short token
/// of safe characters, since it is shown to clients.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Error,
    }
    #[derive(serde::Deserialize)]
    struct Error {
        #[serde(default)]
        code: Option<serde_json::Value>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    let code = match body.error.code {
        Some(serde_json::Value::String(code)) => Some(code),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
    .or(body.error.kind)?;
    let safe = code.len() <= 64
        && code
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    safe.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_short_and_safe() {
        assert_eq!(
            error_code(
                br#"{"error":{"message":"m","type":"requests","code":"rate_limit_exceeded"}}"#
            ),
            Some("rate_limit_exceeded".to_owned())
        );
        assert_eq!(
            error_code(br#"{"error":{"message":"m","type":"server_error","code":null}}"#),
            Some("server_error".to_owned())
        );
        assert_eq!(error_code(br#"{"error":{"code":"<script>"}}"#), None);
        assert_eq!(error_code(b"<html>"), None);
    }
}
