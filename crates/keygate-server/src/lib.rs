//! keygate's server: the domain operations ([`service`]) and the HTTP layer that exposes
//! them ([`http`]): the admin API, the verify API and the operations endpoints.
//!
//! Architecture invariant: only the `http` module knows HTTP status codes; the service layer
//! returns typed errors.

pub mod alerts;
pub mod anomalies;
mod cache;
mod console;
mod error;
pub mod gateway;
pub mod gateway_state;
pub mod http;
pub mod invalidation;
mod last_used;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod service;
pub mod thresholds;
pub mod usage_log;

pub use error::ServiceError;
pub use gateway_state::GatewayState;
pub use http::{AppState, ServerSettings, router, run};
pub use service::Keygate;
