//! One attempt on the wire: the request with its headers and credential, the head within the
//! first-byte timeout, and the answer read whole (translated, its usage read) or handed to
//! the relay; an error status read for whether another deployment may do better.

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Uri};
use keygate_core::TokenCounts;
use secrecy::{ExposeSecret, SecretString};

use super::{Attempt, Reply, Served};
use crate::backoff;
use crate::client::ClientFormat;
use crate::egress::{self, Scrubber, SendError};
use crate::error::AttemptError;
use crate::gateway::{Deployment, Gateway};
use crate::price::Units;
use crate::provider::AuthStyle;
use crate::relay::{Codec, Decoded, InFlight, Relay, RelayParts};
use crate::request::Inbound;
use crate::translate::gemini::embeddings::Embedding;
use crate::translate::{self, Format, StreamDecoder, StreamEncoder};
use crate::usage;

/// Largest upstream answer read into memory (a non-streamed response or an error body).
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// Largest image generation read into memory.
const MAX_IMAGES_BYTES: usize = 96 * 1024 * 1024;

/// A request ready to send.
pub(super) struct Outbound<'a> {
    pub(super) url: Uri,
    pub(super) body: egress::Body,
    pub(super) credential: Option<&'a SecretString>,
    /// The `anthropic-beta` header the policy lets through, for an Anthropic client.
    pub(super) beta: Option<&'a str>,
    /// An embeddings request translated for Gemini.
    pub(super) embedding: Option<Embedding>,
}

impl Gateway {
    pub(super) async fn send(
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
        // An upload's answer comes once the whole file is in: only the total timeout applies.
        let waits_for_first_byte = relayed && inbound.uploaded().is_none();
        let head = if waits_for_first_byte {
            first_byte
        } else {
            timeouts.total
        };
        let response = match tokio::time::timeout(head, deployment.client.send(request)).await {
            Err(_) if waits_for_first_byte => {
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
        let is_event_stream = content_type
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        // An endpoint passed through may answer a stream request whole (`whisper-1` ignores
        // `stream`, as OpenAI documents): read as the whole answer it is.
        let whole = !relayed
            || (passthrough
                && inbound.endpoint != crate::Endpoint::Speech
                && inbound.endpoint != crate::Endpoint::Completions
                && !is_event_stream);
        if whole {
            let mut units = if status < 300 {
                inbound.units
            } else {
                Units::default()
            };
            // Images come back whole in base64, up to ten of them.
            let limit = match inbound.endpoint {
                crate::Endpoint::ImageGenerations => MAX_IMAGES_BYTES,
                _ => MAX_RESPONSE_BYTES,
            };
            let body = match read_limited(response, deadline, limit).await {
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
                // A transcript that does not say its length (text, subtitles) is taken to be
                // as long as its file would play at a common rate.
                units.audio_seconds = usage::audio_seconds(&body)
                    .or_else(|| {
                        let upload = inbound.uploaded()?;
                        Some(crate::upload::estimated_seconds(upload.file_bytes()))
                    })
                    .unwrap_or(0);
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
                units,
                served,
            }));
        }
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
        units: Units::default(),
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
