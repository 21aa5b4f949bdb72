//! Who called: what handlers read, and why a request was refused.

use axum::extract::FromRequestParts;
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use keygate_core::Scope;
use keygate_core::scope::any_grants;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The keygate key the caller holds, or the key its token stands for.
    pub key_id: String,
    pub project: Option<String>,
    /// What the caller may do: the key's scopes, or the token's.
    pub scopes: Vec<Scope>,
    pub credential: Credential,
}

/// What the caller presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Key,
    /// An access token: its id and expiry (seconds since the epoch).
    Token {
        id: String,
        expires_at: i64,
    },
}

impl Caller {
    /// Whether one of the caller's scopes grants `permission` (`reports:read`,
    /// `GET /reports/*`, …).
    pub fn allows(&self, permission: &str) -> bool {
        any_grants(&self.scopes, permission)
    }
}

/// Why a request was refused, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("send a keygate key or token as `Authorization: Bearer <credential>`")]
    Missing,
    /// keygate's code: `key_revoked`, `token_expired`, `token_wrong_audience`, …
    #[error("the credential was refused: {code}")]
    Refused { code: String },
    /// keygate could not be asked; the request is refused rather than let through.
    #[error("credentials cannot be checked right now; retry shortly")]
    Unavailable,
}

impl Refusal {
    pub fn code(&self) -> &str {
        match self {
            Self::Missing => "unauthenticated",
            Self::Refused { code } => code,
            Self::Unavailable => "unavailable",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        let body = serde_json::json!({
            "error": {"code": self.code(), "message": self.to_string()},
        });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Refusal;

    /// The caller the layer authenticated; a route outside the layer has none.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Refusal> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(Refusal::Missing)
    }
}
