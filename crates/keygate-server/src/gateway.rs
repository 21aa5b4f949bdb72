//! The gateway service: one request from an authenticated key to its settled usage. An LLM
//! call ([`Service::complete`]) or a proxy route's ([`Service::forward`]) passes its scope,
//! the limits of its key and project, the upstream call and its usage record here, in that
//! order, and comes back as an answer for the HTTP layer to send or a [`Refused`] that says,
//! in one place, which status and code the client gets. Handlers only extract and respond.

mod answer_cache;
mod conversations;
mod draft;
mod input_items;
mod llm;
mod proxy;
mod refused;
mod trace;

use std::sync::Arc;

pub use answer_cache::AnswerCache;
pub use conversations::{ConversationRefusal, ResponseStoreSettings};
pub use draft::UsageDraft;
pub use input_items::InputItemsQuery;
pub use llm::{
    CacheControl, CacheStatus, LlmAnswer, LlmCall, LlmOutcome, Payload, model_permission,
};
pub use proxy::{BodyStream, ProxyAnswer, ProxyCall, ProxyOutcome};
pub use refused::Refused;

use crate::GatewayState;
use crate::limits::Limiter;
use crate::service::Keygate;

/// The code of a publishable key's attempt at something only secret keys may do.
pub const PUBLISHABLE_FORBIDDEN: &str = "publishable_key_forbidden";

/// What the gateway works with: this node's services.
#[derive(Debug, Clone, Copy)]
pub struct Service<'a> {
    pub keygate: &'a Arc<Keygate>,
    pub limiter: &'a Arc<Limiter>,
    /// The model groups this node serves.
    pub models: &'a GatewayState,
    /// How the Responses API's answers are kept.
    pub responses: &'a ResponseStoreSettings,
}
