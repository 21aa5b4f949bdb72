//! The one error body of the API: `{"error": {"code": "...", "message": "..."}}`, with a
//! stable code per failure. The conversion from service errors is pure; the only side effect
//! is a log line for server faults.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keygate_store::Conflict;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ServiceError;

/// An API error: status, stable code, and a message that helps the caller fix the request.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<std::time::Duration>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `key_revoked` or `validation_failed`.
    pub code: String,
    /// A human explanation; never contains a secret.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(self, wait: Option<std::time::Duration>) -> Self {
        Self {
            retry_after: wait,
            ..self
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        use StatusCode as S;
        match &err {
            ServiceError::Validation(v) => Self::validation(v.to_string()),
            ServiceError::Forbidden { .. } => Self::new(
                S::FORBIDDEN,
                "forbidden",
                "your admin token's role or binding does not allow this",
            ),
            ServiceError::NotFound { entity } => Self::not_found(entity),
            ServiceError::Conflict(conflict) => {
                let (status, code) = match conflict {
                    Conflict::AlreadyBootstrapped => (S::CONFLICT, "already_bootstrapped"),
                    Conflict::DuplicateName { .. } => (S::CONFLICT, "duplicate_name"),
                    Conflict::KeyNotMutable(_) => (S::CONFLICT, "key_not_mutable"),
                    Conflict::AlreadySuspended => (S::CONFLICT, "key_already_suspended"),
                    Conflict::DeliveryPending => (S::CONFLICT, "delivery_pending"),
                    Conflict::AlreadyAcknowledged => (S::CONFLICT, "already_acknowledged"),
                    Conflict::NotSuspended(_) => (S::CONFLICT, "key_not_suspended"),
                    Conflict::IdempotencyKeyReused => {
                        (S::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
                    }
                    Conflict::VersionTaken { .. } => (S::CONFLICT, "concurrent_update"),
                    Conflict::NotPending { .. } => (S::CONFLICT, "not_pending"),
                    Conflict::Superseded { .. } => (S::CONFLICT, "superseded"),
                    Conflict::CreditsTooHigh => (S::CONFLICT, "credits_too_high"),
                };
                Self::new(status, code, conflict.to_string())
            }
            ServiceError::DefinedInConfig { .. } => {
                Self::new(S::CONFLICT, "defined_in_config", err.to_string())
            }
            ServiceError::ModelGroup(_) => {
                Self::new(S::BAD_REQUEST, "invalid_model_group", err.to_string())
            }
            ServiceError::BadCursor => Self::new(S::BAD_REQUEST, "bad_cursor", err.to_string()),
            ServiceError::ScopeDenied { .. } => {
                Self::new(S::FORBIDDEN, "scope_denied", err.to_string())
            }
            ServiceError::Unauthenticated(rejection) => {
                Self::new(S::UNAUTHORIZED, rejection.code(), rejection.to_string())
            }
            ServiceError::MissingCredentials => {
                Self::new(S::UNAUTHORIZED, "unauthenticated", err.to_string())
            }
            ServiceError::KeyInQuery => Self::new(
                S::BAD_REQUEST,
                "key_in_query",
                "never put a keygate key in a URL: URLs end up in logs and browser history. \
                 Send it in the `Authorization: Bearer` or `x-api-key` header, and rotate \
                 this key",
            ),
            ServiceError::StoreUnavailable => Self::new(
                S::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store is unreachable; retry shortly",
            ),
            ServiceError::Store(keygate_store::StoreError::Database(_)) => {
                tracing::error!(error = %err, "store unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store is unavailable; retry shortly",
                )
            }
            ServiceError::SingleSignOn(_) => {
                tracing::warn!(error = %err, "single sign-on failed");
                Self::new(S::BAD_GATEWAY, "sso_unavailable", err.to_string())
            }
            ServiceError::SecretUnreadable => {
                tracing::error!(error = %err, "a secret could not be decrypted");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "secret_unreadable",
                    err.to_string(),
                )
            }
            ServiceError::Random
            | ServiceError::HttpClientSetup
            | ServiceError::Crypto(_)
            | ServiceError::Store(_) => {
                tracing::error!(error = %err, "internal error");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
