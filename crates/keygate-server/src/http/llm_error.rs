//! Errors of the LLM endpoints, in the shape of the API the client called so the official SDKs
//! raise their own error classes; keygate-llm's [`ClientFormat`] writes the body, and this
//! module only picks the status. `code` is keygate's stable code, as on every other endpoint.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keygate_llm::translate::ir::ErrorKind;
use keygate_llm::{ClientError, ClientFormat};

use crate::gateway::Refused;
use crate::http::limit_headers::{self, Names};

#[derive(Debug, Clone)]
pub struct LlmError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub retry_after: Option<Duration>,
}

impl LlmError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// The error in the shape of the API the client called.
    pub fn respond(self, format: ClientFormat) -> Response {
        let body = format.error_body(&ClientError {
            kind: ErrorKind::from_status(self.status.as_u16()),
            code: self.code,
            message: &self.message,
            param: self.param.as_deref(),
        });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(after) = self.retry_after {
            limit_headers::retry_after(headers, after);
        }
        response
    }
}

impl From<&Refused> for LlmError {
    fn from(refused: &Refused) -> Self {
        Self {
            param: refused.param(),
            retry_after: refused.retry_after(),
            ..Self::new(
                StatusCode::from_u16(refused.status()).unwrap_or(StatusCode::BAD_GATEWAY),
                refused.code(),
                refused.message(),
            )
        }
    }
}

impl Refused {
    /// The refusal in the client's format, with the limit's headers when a limit refused it.
    pub fn respond(&self, format: ClientFormat) -> Response {
        let mut response = LlmError::from(self).respond(format);
        if let Self::Limit(refusal) = self {
            limit_headers::refused(response.headers_mut(), refusal, Names::OpenAi);
        }
        response
    }
}

impl IntoResponse for LlmError {
    fn into_response(self) -> Response {
        self.respond(ClientFormat::OpenAi)
    }
}
