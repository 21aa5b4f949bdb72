//! keygate's LLM gateway: the OpenAI-compatible provider family with its presets, model groups
//! with load balancing, retries with backoff, fallbacks and circuit breakers, a streaming relay
//! that forwards events as they arrive, and usage and cost.
//!
//! Architecture invariants: no HTTP status is chosen here for the client (only
//! `keygate-server` knows the API's statuses); upstream credentials exist in plaintext only
//! between their lookup and the outbound request, and never appear in an error.

mod backoff;
pub mod beta;
mod breaker;
pub mod cache_policy;
mod client;
pub mod config;
mod credential;
mod dispatch;
pub mod egress;
mod error;
mod gateway;
mod health;
pub mod price;
mod provider;
mod relay;
mod request;
pub mod sse;
mod strategy;
pub mod tokens;
pub mod translate;
mod upload;
pub mod usage;

pub use client::{ClientError, ClientFormat};
pub use config::{GatewayConfig, GatewayFile};
pub use credential::{CredentialError, CredentialRef, SecretRef, SecretSource};
pub use dispatch::{Failure, Reply, Served};
pub use error::{AttemptError, ConfigError, GatewayError};
pub use gateway::{DeploymentStatus, Gateway};
pub use provider::{AuthStyle, Endpoint, Preset, ProviderKind};
pub use relay::{Relay, StreamEnd, StreamOutcome};
pub use request::{Inbound, RequestError};
pub use strategy::Strategy;
pub use upload::{FORM_SLACK, Upload, UploadError, UploadFault, UploadLimits};
