//! Extractors that turn requests into typed inputs, with errors in the API's own shape.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use keygate_core::KeyId;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::ServiceError;
use crate::service::{Actor, Caller};

/// A JSON body, parsed with errors that name the offending field and never echo its value.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Parses a JSON body; an empty body parses as `{}` when `empty_ok`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], empty_ok: bool) -> Result<T, ApiError> {
    let bytes: &[u8] = if empty_ok && bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => ApiError::validation(redact_serde(&err.to_string())),
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body is not valid JSON",
        ),
    })
}

/// Removes quoted input values from serde messages (`invalid type: string "…"`), which could
/// hold a secret, while keeping field names (`unknown field `x``).
pub(crate) fn redact_serde(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..start]);
        match rest[start + 1..].find('"') {
            Some(end) => {
                out.push_str("(value hidden)");
                rest = &rest[start + 1 + end + 1..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_json(parts_headers: &axum::http::HeaderMap) -> bool {
    parts_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.settings.body_limit;
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {limit} bytes"),
            )
        })?;
    Ok(body)
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let body = read_body(req, state).await?;
        parse_json(&body, false).map(ApiJson)
    }
}

/// A body as its bytes, within the body limit: for a handler that checks a signature over it
/// before reading it.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        read_body(req, state).await.map(RawBody)
    }
}

/// A JSON body that may be empty (then it parses as `{}`).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        if has_type && !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let body = read_body(req, state).await?;
        parse_json(&body, true).map(OptionalJson)
    }
}

/// Query parameters with errors in the API's shape.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::validation(redact_serde(&rejection.body_text())))
    }
}

/// A key id from the path. An id of the wrong shape cannot exist, so it is "not found".
#[derive(Debug)]
pub struct KeyIdPath(pub KeyId);

impl<S: Send + Sync> FromRequestParts<S> for KeyIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("key"))?;
        KeyId::parse(&id)
            .map(KeyIdPath)
            .map_err(|_| ApiError::not_found("key"))
    }
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
    /// The client certificate the TLS handshake verified, if any.
    pub certificate: Option<std::sync::Arc<crate::service::ClientCertificate>>,
}

impl RequestMeta {
    pub fn from_parts(parts: &Parts) -> Self {
        // Resolved past trusted proxies by the client-IP layer; the peer otherwise.
        let client_ip = parts
            .extensions
            .get::<super::client_ip::ClientIp>()
            .map(|super::client_ip::ClientIp(ip)| *ip)
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(addr)| addr.ip())
            });
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 128 && v.bytes().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned);
        Self {
            client_ip,
            request_id,
            certificate: parts
                .extensions
                .get::<std::sync::Arc<crate::service::ClientCertificate>>()
                .cloned(),
        }
    }

    /// The thumbprint of the client certificate, for certificate-bound tokens.
    pub fn thumbprint(&self) -> Option<&str> {
        self.certificate.as_deref().map(|c| c.thumbprint.as_str())
    }

    pub fn ip_text(&self) -> Option<String> {
        self.client_ip.map(|ip| ip.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

/// The bearer credential of a request, if any (`Authorization: Bearer` or `x-api-key`).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// An authenticated admin. Every failure is written to the audit log.
#[derive(Debug)]
pub struct AdminCaller(pub Caller);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let meta = RequestMeta::from_parts(parts);
        let keygate = &state.keygate;
        let Some(token) = bearer(&parts.headers) else {
            keygate
                .record_auth_failure(None, None, meta.ip_text(), meta.request_id.clone())
                .await?;
            return Err(ServiceError::MissingCredentials.into());
        };
        match keygate.authenticate_admin(token).await? {
            Ok(principal) => Ok(AdminCaller(Caller {
                actor: Actor::Admin(principal),
                client_ip: meta.ip_text(),
                request_id: meta.request_id,
            })),
            Err((rejection, known)) => {
                keygate
                    .record_auth_failure(
                        Some(rejection),
                        known.as_deref(),
                        meta.ip_text(),
                        meta.request_id,
                    )
                    .await?;
                Err(ServiceError::Unauthenticated(rejection).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_their_values() {
        let message = r#"invalid type: string "kg_live_secret", expected u64 at line 1"#;
        let redacted = redact_serde(message);
        assert!(!redacted.contains("kg_live_secret"));
        assert!(redacted.contains("expected u64"));
    }

    #[test]
    fn unknown_fields_are_named() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code, reason = "only parsed")]
        struct Body {
            name: String,
        }
        let err = parse_json::<Body>(br#"{"name":"a","colour":"red"}"#, false).unwrap_err();
        assert_eq!(err.code, "validation_failed");
        assert!(err.message.contains("colour"), "{}", err.message);
        let err = parse_json::<Body>(b"{not json", false).unwrap_err();
        assert_eq!(err.code, "invalid_json");
    }
}

/// Why the keygate key of a gateway or proxy request was refused: a status, a stable code and
/// a message, for each API to put in its own error shape.
#[derive(Debug, Clone)]
pub(crate) struct KeyRefusal {
    pub status: axum::http::StatusCode,
    pub code: &'static str,
    pub message: String,
    /// When the client may try again (a blocked source).
    pub retry_after: Option<std::time::Duration>,
}

/// Verifies the keygate key of a gateway request (bearer or `x-api-key`), from the client's
/// address, for an endpoint that serves secret keys only — every one but the public proxy
/// routes. A publishable key is refused with 403 `publishable_key_forbidden` and the attempt
/// is recorded: refusing here, by default, means a new endpoint cannot forget to.
pub(crate) async fn api_key(
    state: &super::AppState,
    headers: &axum::http::HeaderMap,
    meta: &RequestMeta,
) -> Result<std::sync::Arc<crate::cache::CachedKey>, KeyRefusal> {
    let key = any_api_key(state, headers, meta).await?;
    if key.record.is_publishable() {
        state
            .keygate
            .usage()
            .record(publishable_refused(state, &key.record, meta));
        return Err(KeyRefusal {
            status: axum::http::StatusCode::FORBIDDEN,
            code: PUBLISHABLE_FORBIDDEN,
            message: "a publishable key may only read public proxy routes \
                      (GET or HEAD /proxy/<public route>/…)"
                .to_owned(),
            retry_after: None,
        });
    }
    Ok(key)
}

pub(crate) use crate::gateway::PUBLISHABLE_FORBIDDEN;

/// The usage record of a publishable key refused by a secret-only endpoint. The endpoint is not
/// known here: `gateway` (with no model) tells these attempts from the proxy's own refusals.
fn publishable_refused(
    state: &super::AppState,
    key: &keygate_core::KeyRecord,
    meta: &RequestMeta,
) -> keygate_core::UsageRecord {
    keygate_core::UsageRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: state.keygate.clock().now(),
        org_id: key.org_id.clone(),
        project_id: key.project_id.clone(),
        key_id: key.id.clone(),
        endpoint: "gateway".to_owned(),
        model: String::new(),
        deployment: None,
        provider: None,
        status: 403,
        error_code: Some(PUBLISHABLE_FORBIDDEN.to_owned()),
        streamed: false,
        attempts: 0,
        latency_ms: 0,
        ttft_ms: None,
        tokens: keygate_core::TokenCounts::default(),
        token_source: keygate_core::TokenSource::None,
        cost: None,
        saved: None,
        client_ip: meta.ip_text(),
        user_agent: None,
    }
}

/// The principal of a request authenticated by its client certificate alone.
async fn by_certificate(
    state: &super::AppState,
    certificate: &crate::service::ClientCertificate,
) -> Result<std::sync::Arc<crate::cache::CachedKey>, KeyRefusal> {
    use axum::http::StatusCode;
    match state.keygate.verify_certificate(certificate).await {
        Ok(crate::service::VerifyOutcome::Valid(principal)) => Ok(principal),
        Ok(crate::service::VerifyOutcome::Invalid(rejection, _)) => Err(KeyRefusal {
            status: StatusCode::FORBIDDEN,
            code: rejection.code(),
            message: rejection.to_string(),
            retry_after: None,
        }),
        Err(err) => {
            tracing::error!(error = %err, "a client certificate could not be checked");
            Err(KeyRefusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "unavailable",
                message: "keys cannot be verified right now; retry shortly".to_owned(),
                retry_after: None,
            })
        }
    }
}

/// Verifies the keygate key of a request that publishable keys may make too (a public proxy
/// route); the caller applies the public-route rules to a publishable key.
pub(crate) async fn any_api_key(
    state: &super::AppState,
    headers: &axum::http::HeaderMap,
    meta: &RequestMeta,
) -> Result<std::sync::Arc<crate::cache::CachedKey>, KeyRefusal> {
    use axum::http::StatusCode;
    let presented = bearer(headers);
    // A source refused for its failed authentications gets nothing more looked at.
    if (presented.is_some() || meta.certificate.is_some())
        && let Some(wait) = state.anomalies.source_blocked(meta.client_ip)
    {
        return Err(KeyRefusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "source_blocked",
            message: "too many failed authentications from this address; retry later".to_owned(),
            retry_after: Some(wait),
        });
    }
    let Some(key) = presented else {
        // Mutual TLS: a verified client certificate stands in for a key.
        if let Some(certificate) = &meta.certificate {
            return by_certificate(state, certificate).await;
        }
        return Err(KeyRefusal {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: "send your keygate key as `Authorization: Bearer <key>` or `x-api-key: <key>`"
                .to_owned(),
            retry_after: None,
        });
    };
    let outcome = state
        .keygate
        .verify(crate::service::VerifyQuery {
            key,
            permission: None,
            ip: meta.client_ip,
            certificate: meta.thumbprint(),
            ..Default::default()
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "key verification failed");
            let code = match err {
                // A key this node does not hold, or has held longer than an outage is
                // allowed to last: refused until the store answers again.
                crate::ServiceError::StoreUnavailable => "store_unavailable",
                _ => "unavailable",
            };
            KeyRefusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code,
                message: "keys cannot be verified right now; retry shortly".to_owned(),
                retry_after: Some(std::time::Duration::from_secs(5)),
            }
        })?;
    match outcome {
        crate::service::VerifyOutcome::Valid(cached) => Ok(cached),
        crate::service::VerifyOutcome::Invalid(rejection, cached) => {
            let forbidden = matches!(
                rejection,
                keygate_core::KeyRejection::IpNotAllowed
                    | keygate_core::KeyRejection::PermissionDenied
            );
            if !forbidden {
                state.anomalies.authentication_failed(
                    meta.client_ip,
                    key,
                    rejection,
                    cached.as_deref().map(|c| &c.record),
                );
            }
            Err(KeyRefusal {
                status: if rejection == keygate_core::KeyRejection::IpNotAllowed {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNAUTHORIZED
                },
                code: rejection.code(),
                message: rejection.to_string(),
                retry_after: None,
            })
        }
    }
}
