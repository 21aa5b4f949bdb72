//! Errors of the LLM endpoints, in the shape of the API the client called so the official SDKs
//! raise their own error classes: OpenAI's (`{"error": {"message", "type", "param", "code"}}`)
//! or Anthropic's (`{"type": "error", "error": {"type", "message"}}`). `code` is keygate's
//! stable code, as on every other endpoint.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keygate_llm::beta::BetaError;
use keygate_llm::translate::TranslateError;
use keygate_llm::translate::ir::ErrorKind;
use keygate_llm::{AttemptError, GatewayError, RequestError};
use keygate_llm::{ClientError, ClientFormat};

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
}

impl From<RequestError> for LlmError {
    fn from(err: RequestError) -> Self {
        let code = match err {
            RequestError::InvalidJson => "invalid_json",
            RequestError::Field { .. } => "invalid_request",
        };
        Self {
            param: err.param().map(str::to_owned),
            ..Self::new(StatusCode::BAD_REQUEST, code, err.to_string())
        }
    }
}

impl From<GatewayError> for LlmError {
    fn from(err: GatewayError) -> Self {
        use StatusCode as S;
        let message = err.to_string();
        match &err {
            GatewayError::ModelNotFound(_) => Self {
                param: Some("model".to_owned()),
                ..Self::new(S::NOT_FOUND, "model_not_found", message)
            },
            GatewayError::AnthropicBeta(err) => {
                let code = match err {
                    BetaError::NotAllowed(_) => "unsupported_feature",
                    BetaError::Malformed | BetaError::TooLong | BetaError::TooMany => {
                        "invalid_request"
                    }
                };
                Self {
                    param: Some("anthropic-beta".to_owned()),
                    ..Self::new(S::BAD_REQUEST, code, message)
                }
            }
            GatewayError::NoDeployment(_) => {
                Self::new(S::SERVICE_UNAVAILABLE, "no_healthy_deployment", message)
            }
            GatewayError::Exhausted { last, .. } => match last {
                AttemptError::Status {
                    status: 429,
                    retry_after,
                    ..
                } => Self {
                    retry_after: *retry_after,
                    ..Self::new(S::TOO_MANY_REQUESTS, "upstream_rate_limited", message)
                },
                AttemptError::Untranslatable(err) => {
                    let code = match err {
                        TranslateError::Unsupported { .. } => "unsupported_feature",
                        TranslateError::Invalid { .. } => "invalid_request",
                    };
                    Self {
                        param: Some(err.field().to_owned()),
                        ..Self::new(S::BAD_REQUEST, code, err.to_string())
                    }
                }
                AttemptError::InvalidResponse | AttemptError::StreamError => {
                    Self::new(S::BAD_GATEWAY, "upstream_invalid_response", message)
                }
                AttemptError::FirstByteTimeout(_)
                | AttemptError::TotalTimeout(_)
                | AttemptError::ChunkGap(_) => {
                    Self::new(S::GATEWAY_TIMEOUT, "upstream_timeout", message)
                }
                _ => Self::new(S::SERVICE_UNAVAILABLE, "all_deployments_failed", message),
            },
        }
    }
}

impl LlmError {
    /// The error in the shape of the API the client called (the status is the only part
    /// chosen here; keygate-llm writes the body).
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
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                headers.insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl IntoResponse for LlmError {
    fn into_response(self) -> Response {
        self.respond(ClientFormat::OpenAi)
    }
}
