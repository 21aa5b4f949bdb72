//! The gateway's errors: configuration that cannot be used, and why a request could not be
//! served. Neither ever carries a credential or a payload.

use std::time::Duration;

/// A configuration the gateway refuses, naming the field to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{field}: {reason}")]
    Credential { field: String, reason: String },
    #[error("{field}: the environment variable `{name}` is not set")]
    MissingEnv { field: String, name: String },
    #[error("{field}: unknown provider `{name}`")]
    UnknownProvider { field: String, name: String },
    #[error("{field}: unknown model group `{name}`")]
    UnknownGroup { field: String, name: String },
    #[error("the upstream HTTP client could not be set up")]
    HttpClient,
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Why one attempt at one deployment failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// No connection could be made (refused, DNS, TLS, connect timeout).
    Connect,
    /// No response head (or, for a stream, no first event) within the first-byte timeout.
    FirstByteTimeout(Duration),
    /// The whole answer took longer than the total timeout.
    TotalTimeout(Duration),
    /// The upstream answered with an error status that another deployment may not repeat.
    Status {
        status: u16,
        /// The provider's error code or type, when its body had one.
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    /// A stream went quiet for longer than the gap allowed between chunks.
    ChunkGap(Duration),
    /// The upstream sent an error object inside its event stream.
    StreamError,
    /// The upstream answered 2xx with a body that is not the API's format.
    InvalidResponse,
    /// The connection broke while the answer was being read.
    Interrupted,
    /// The deployment's credential could not be read.
    Credential(crate::CredentialError),
    /// The request cannot be said in the deployment's format; it was not sent.
    Untranslatable(crate::translate::TranslateError),
    /// The client's upload broke off while it streamed upstream: the client's doing.
    Upload(crate::upload::UploadFault),
}

impl AttemptError {
    /// The class of the failure, for traces (`error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::FirstByteTimeout(_) => "first_byte_timeout",
            Self::TotalTimeout(_) => "total_timeout",
            Self::Status { .. } => "status",
            Self::ChunkGap(_) => "chunk_gap",
            Self::StreamError => "stream_error",
            Self::InvalidResponse => "invalid_response",
            Self::Interrupted => "interrupted",
            Self::Credential(_) => "credential",
            Self::Untranslatable(_) => "untranslatable",
            Self::Upload(_) => "upload",
        }
    }

    /// A short summary for the client and the logs: never a credential or a payload.
    pub fn summary(&self) -> String {
        match self {
            Self::Connect => "could not connect".to_owned(),
            Self::FirstByteTimeout(d) => format!("no response within {} ms", d.as_millis()),
            Self::TotalTimeout(d) => format!("not finished within {} ms", d.as_millis()),
            Self::Status {
                status,
                code: Some(code),
                ..
            } => format!("upstream returned {status} ({code})"),
            Self::Status { status, .. } => format!("upstream returned {status}"),
            Self::ChunkGap(d) => format!("the stream paused for more than {} ms", d.as_millis()),
            Self::StreamError => "upstream reported an error in its stream".to_owned(),
            Self::InvalidResponse => "upstream answered in an unknown format".to_owned(),
            Self::Interrupted => "the upstream connection broke".to_owned(),
            Self::Credential(err) => err.to_string(),
            Self::Untranslatable(err) => err.to_string(),
            Self::Upload(fault) => fault.to_string(),
        }
    }

    /// Whether the deployment itself is unwell (counts towards its circuit breaker). A rate
    /// limit is not a fault: the deployment cools down instead.
    pub fn is_fault(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status != 429,
            // An error the upstream reports inside its stream may be the request's own
            // (a content filter, a context too long): not held against the deployment.
            Self::Credential(_) | Self::StreamError | Self::Untranslatable(_) | Self::Upload(_) => {
                false
            }
            _ => true,
        }
    }
}

/// Why a request could not be served by any deployment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("model `{0}` does not exist")]
    ModelNotFound(String),
    /// Every deployment is open-circuited, cooling down or at its rate limit.
    #[error("no deployment of `{0}` is available right now")]
    NoDeployment(String),
    /// Every attempt failed; the last failure, summarised.
    #[error("every deployment failed; last: {deployment}: {}", last.summary())]
    Exhausted {
        deployment: String,
        last: AttemptError,
        attempts: u32,
    },
    /// The client's `anthropic-beta` header is refused; nothing was sent.
    #[error(transparent)]
    AnthropicBeta(#[from] crate::beta::BetaError),
}
