//! Why the gateway refused a request, and the one mapping of each refusal to the status and
//! stable code its client gets (and its usage record says). The HTTP layer writes the body
//! in the client's format from these.

use std::time::Duration;

use keygate_llm::beta::BetaError;
use keygate_llm::translate::TranslateError;
use keygate_llm::{AttemptError, GatewayError, RequestError, UploadFault};

use crate::limits::Refusal;

/// A request the gateway did not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The body is not a request of the endpoint.
    Request(RequestError),
    /// The key has no `models:<model>` scope.
    Scope { model: String },
    /// A budget applies to the key and no price is known for a model that may serve it.
    PriceUnknown { model: String },
    /// A limit of the key or its project.
    Limit(Refusal),
    /// A Messages request the token count could not read.
    Untranslatable(TranslateError),
    /// The model, its deployments or the upstream.
    Gateway(GatewayError),
    /// No proxy route has the name.
    RouteNotFound,
    /// A publishable key on a route that is not public.
    RouteNotPublic { route: String },
    /// A publishable key with a method other than `GET` or `HEAD`.
    PublishableWrite,
    /// A publishable key from no origin.
    NoOrigin,
    /// A publishable key from an origin it does not allow.
    OriginNotAllowed,
    /// No scope grants `METHOD /proxy/<route>/…`.
    RouteScope { method: String, route: String },
    /// The body is larger than the route allows.
    BodyTooLarge { limit: usize },
    /// The route's credential cannot be read from the vault.
    CredentialUnreadable,
    /// The route's credential cannot travel in a header.
    CredentialNotAHeader,
    /// The route's upstream did not answer in time.
    UpstreamTimeout(Duration),
    /// The route's upstream could not be reached (or refused the request body).
    UpstreamUnreachable,
    /// A Responses API conversation that cannot go on.
    Conversation(super::ConversationRefusal),
}

impl Refused {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Request(_) | Self::Untranslatable(_) => 400,
            Self::Scope { .. } | Self::PriceUnknown { .. } => 403,
            Self::RouteNotFound => 404,
            Self::RouteNotPublic { .. }
            | Self::PublishableWrite
            | Self::NoOrigin
            | Self::OriginNotAllowed
            | Self::RouteScope { .. } => 403,
            Self::BodyTooLarge { .. } => 413,
            Self::CredentialUnreadable | Self::CredentialNotAHeader => 503,
            Self::UpstreamTimeout(_) => 504,
            Self::UpstreamUnreachable => 502,
            Self::Conversation(refusal) => refusal.status(),
            Self::Limit(Refusal::Unavailable) => 503,
            Self::Limit(_) => 429,
            Self::Gateway(err) => match err {
                GatewayError::ModelNotFound(_) => 404,
                GatewayError::AnthropicBeta(_) => 400,
                GatewayError::NoDeployment(_) => 503,
                GatewayError::Exhausted { last, .. } => match last {
                    AttemptError::Status { status: 429, .. } => 429,
                    AttemptError::Untranslatable(_) => 400,
                    AttemptError::Upload(fault) => match fault {
                        UploadFault::TooLarge { .. } => 413,
                        UploadFault::Idle => 408,
                        UploadFault::Malformed(_) | UploadFault::Broken => 400,
                    },
                    AttemptError::InvalidResponse | AttemptError::StreamError => 502,
                    AttemptError::FirstByteTimeout(_)
                    | AttemptError::TotalTimeout(_)
                    | AttemptError::ChunkGap(_) => 504,
                    _ => 503,
                },
            },
        }
    }

    /// keygate's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Request(RequestError::InvalidJson) => "invalid_json",
            Self::Request(RequestError::Field { .. }) => "invalid_request",
            Self::Scope { .. } | Self::RouteScope { .. } => "scope_denied",
            Self::RouteNotFound => "not_found",
            Self::RouteNotPublic { .. } | Self::PublishableWrite => super::PUBLISHABLE_FORBIDDEN,
            Self::NoOrigin | Self::OriginNotAllowed => "origin_not_allowed",
            Self::BodyTooLarge { .. } => "payload_too_large",
            Self::CredentialUnreadable | Self::CredentialNotAHeader => {
                "upstream_credential_unavailable"
            }
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::UpstreamUnreachable => "upstream_unavailable",
            Self::PriceUnknown { .. } => "price_unknown",
            Self::Conversation(refusal) => refusal.code(),
            Self::Limit(refusal) => refusal.code(),
            Self::Untranslatable(err) => translate_code(err),
            Self::Gateway(err) => match err {
                GatewayError::ModelNotFound(_) => "model_not_found",
                GatewayError::AnthropicBeta(BetaError::NotAllowed(_)) => "unsupported_feature",
                GatewayError::AnthropicBeta(_) => "invalid_request",
                GatewayError::NoDeployment(_) => "no_healthy_deployment",
                GatewayError::Exhausted { last, .. } => match last {
                    AttemptError::Status { status: 429, .. } => "upstream_rate_limited",
                    AttemptError::Untranslatable(err) => translate_code(err),
                    AttemptError::Upload(fault) => match fault {
                        UploadFault::TooLarge { .. } => "payload_too_large",
                        UploadFault::Idle => "request_timeout",
                        UploadFault::Malformed(_) | UploadFault::Broken => "invalid_request",
                    },
                    AttemptError::InvalidResponse | AttemptError::StreamError => {
                        "upstream_invalid_response"
                    }
                    AttemptError::FirstByteTimeout(_)
                    | AttemptError::TotalTimeout(_)
                    | AttemptError::ChunkGap(_) => "upstream_timeout",
                    _ => "all_deployments_failed",
                },
            },
        }
    }

    /// What the client is told: never a credential or a payload.
    pub fn message(&self) -> String {
        match self {
            Self::Request(err) => err.to_string(),
            Self::Scope { model } => {
                format!(
                    "this key may not use model `{model}` (it needs the scope `models:{model}`)"
                )
            }
            Self::PriceUnknown { model } => format!(
                "a budget applies to this key, and keygate knows no price for a model that may serve `{model}`; set one under [prices]"
            ),
            Self::Limit(refusal) => refusal.message(),
            Self::Untranslatable(err) => err.to_string(),
            Self::Gateway(GatewayError::Exhausted {
                last: AttemptError::Untranslatable(err),
                ..
            }) => err.to_string(),
            Self::Gateway(GatewayError::Exhausted {
                last: AttemptError::Upload(fault),
                ..
            }) => fault.to_string(),
            Self::Gateway(err) => err.to_string(),
            Self::RouteNotFound => "route not found".to_owned(),
            Self::RouteNotPublic { route } => format!(
                "route `{route}` is not public: a publishable key may only read public routes"
            ),
            Self::PublishableWrite => {
                "a publishable key is read-only: it may send only GET and HEAD".to_owned()
            }
            Self::NoOrigin => {
                "a publishable key is accepted only from its origins, and this request names none \
                 (send `Origin`, or a `Referer` from one of the key's origins)"
                    .to_owned()
            }
            Self::OriginNotAllowed => {
                "the request's origin is not one of this key's origins".to_owned()
            }
            Self::RouteScope { method, route } => {
                format!("this key has no scope that grants `{method} /proxy/{route}/…`")
            }
            Self::BodyTooLarge { limit } => format!("the body is larger than {limit} bytes"),
            Self::CredentialUnreadable => {
                "the route's upstream credential cannot be read".to_owned()
            }
            Self::CredentialNotAHeader => {
                "the route's upstream credential cannot be sent in a header".to_owned()
            }
            Self::UpstreamTimeout(timeout) => format!(
                "the upstream did not answer within {} ms",
                timeout.as_millis()
            ),
            Self::UpstreamUnreachable => {
                "the upstream could not be reached, or the request body was refused".to_owned()
            }
            Self::Conversation(refusal) => refusal.message(),
        }
    }

    /// The request field at fault, when one is.
    pub fn param(&self) -> Option<String> {
        match self {
            Self::Request(err) => err.param().map(str::to_owned),
            Self::Scope { .. } | Self::PriceUnknown { .. } => Some("model".to_owned()),
            Self::Untranslatable(err) => Some(err.field().to_owned()),
            Self::Conversation(super::ConversationRefusal::NotFound(_))
            | Self::Conversation(super::ConversationRefusal::NotStored) => {
                Some("previous_response_id".to_owned())
            }
            Self::Gateway(err) => match err {
                GatewayError::ModelNotFound(_) => Some("model".to_owned()),
                GatewayError::AnthropicBeta(_) => Some("anthropic-beta".to_owned()),
                GatewayError::Exhausted {
                    last: AttemptError::Untranslatable(err),
                    ..
                } => Some(err.field().to_owned()),
                GatewayError::Exhausted {
                    last: AttemptError::Upload(UploadFault::Malformed(_)),
                    ..
                } => Some("body".to_owned()),
                _ => None,
            },
            _ => None,
        }
    }

    /// When to retry, for `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Limit(refusal) => refusal.retry_after(),
            Self::Gateway(GatewayError::Exhausted {
                last:
                    AttemptError::Status {
                        status: 429,
                        retry_after,
                        ..
                    },
                ..
            }) => *retry_after,
            _ => None,
        }
    }
}

fn translate_code(err: &TranslateError) -> &'static str {
    match err {
        TranslateError::Unsupported { .. } => "unsupported_feature",
        TranslateError::Invalid { .. } => "invalid_request",
        TranslateError::NotServed { .. } => "unsupported_endpoint",
    }
}
