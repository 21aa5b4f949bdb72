//! The formats a client speaks — OpenAI's and Anthropic's; Gemini is only ever an upstream's —
//! and the one place that writes errors to clients in them: whole bodies, and the events that
//! end a stream. The official SDKs raise their own error classes on both: OpenAI's read
//! `{"error": {"message", "type", "param", "code"}}` (in a stream, a `data:` event holding it),
//! Anthropic's `{"type": "error", "error": {"type", "message"}}` (an `error` event). `code` is
//! keygate's stable code, beside the type in Anthropic's shape.

use serde_json::{Value, json};

use crate::translate::Format;
use crate::translate::ir::{ErrorKind, UpstreamError};

/// A format a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientFormat {
    OpenAi,
    /// OpenAI's Responses API: OpenAI's error shape; in a stream, an `error` event.
    Responses,
    Anthropic,
}

impl ClientFormat {
    /// The wire format, for translation.
    pub fn wire(self) -> Format {
        match self {
            Self::OpenAi => Format::OpenAi,
            Self::Responses => Format::Responses,
            Self::Anthropic => Format::Anthropic,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.wire().as_str()
    }

    /// An error body in this format.
    pub fn error_body(self, error: &ClientError<'_>) -> Value {
        match self {
            Self::OpenAi | Self::Responses => json!({
                "error": {
                    "message": error.message,
                    "type": openai_type(error.kind),
                    "param": error.param,
                    "code": error.code,
                }
            }),
            Self::Anthropic => json!({
                "type": "error",
                "error": {
                    "type": anthropic_type(error.kind),
                    "message": error.message,
                    "code": error.code,
                },
            }),
        }
    }

    /// The same error as the server-sent event that ends a stream.
    pub fn error_event(self, error: &ClientError<'_>) -> String {
        let body = self.error_body(error);
        match self {
            Self::OpenAi => format!("data: {body}\n\n"),
            // The Responses API's `error` event: the error's fields at the top.
            Self::Responses => {
                let event = json!({
                    "type": "error",
                    "code": error.code,
                    "message": error.message,
                    "param": error.param,
                });
                format!("event: error\ndata: {event}\n\n")
            }
            Self::Anthropic => format!("event: error\ndata: {body}\n\n"),
        }
    }
}

impl std::fmt::Display for ClientFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as a client is told it.
#[derive(Debug, Clone, Copy)]
pub struct ClientError<'a> {
    pub kind: ErrorKind,
    /// keygate's stable code.
    pub code: &'a str,
    pub message: &'a str,
    /// The request field at fault, when one is.
    pub param: Option<&'a str>,
}

impl<'a> ClientError<'a> {
    /// An upstream's error passed on, under keygate's `code`.
    pub fn upstream(error: &'a UpstreamError, code: &'a str) -> Self {
        Self {
            kind: error.kind,
            code,
            message: &error.message,
            param: None,
        }
    }
}

/// OpenAI's `type` for an error kind.
fn openai_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::TooLarge => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Overloaded | ErrorKind::Api => "api_error",
    }
}

/// Anthropic's `type` for an error kind.
pub(crate) fn anthropic_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::TooLarge => "request_too_large",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Api => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_writes_its_own_shape_with_keygate_code() {
        let error = ClientError {
            kind: ErrorKind::RateLimited,
            code: "budget_exceeded",
            message: "spent",
            param: Some("model"),
        };
        let openai = ClientFormat::OpenAi.error_body(&error);
        assert_eq!(openai["error"]["type"], "rate_limit_error");
        assert_eq!(openai["error"]["code"], "budget_exceeded");
        assert_eq!(openai["error"]["param"], "model");
        let anthropic = ClientFormat::Anthropic.error_body(&error);
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "rate_limit_error");
        assert_eq!(anthropic["error"]["code"], "budget_exceeded");
        let event = ClientFormat::Anthropic.error_event(&error);
        assert!(event.starts_with("event: error\ndata: {"), "{event}");
        assert!(event.ends_with("}\n\n"));
        let event = ClientFormat::OpenAi.error_event(&error);
        assert!(event.starts_with("data: {\"error\""), "{event}");
    }

    #[test]
    fn kinds_map_to_each_formats_types() {
        assert_eq!(
            ClientFormat::Anthropic.error_body(&ClientError {
                kind: ErrorKind::Overloaded,
                code: "c",
                message: "m",
                param: None
            })["error"]["type"],
            "overloaded_error"
        );
        assert_eq!(openai_type(ErrorKind::Overloaded), "api_error");
        assert_eq!(openai_type(ErrorKind::TooLarge), "invalid_request_error");
        assert_eq!(anthropic_type(ErrorKind::TooLarge), "request_too_large");
    }
}
