//! A tower layer for Rust services that accept keygate keys and keygate access tokens.
//!
//! Keys are checked through keygate's verify API, with a cache of answers (accepted keys for
//! a while, refused ones for a shorter while, both bounded). Tokens are accepted only when
//! issued for the audience this service names, checked offline against keygate's published
//! keys (its JWKS, fetched through its discovery document and refreshed) — or through the
//! verify API with [`KeygateBuilder::tokens_online`]. Handlers read the caller — its key id,
//! project and scopes — as the [`Caller`] extractor or request extension.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use keygate_tower::{Caller, Keygate, KeygateLayer};
//!
//! async fn report(caller: Caller) -> Result<String, axum::http::StatusCode> {
//!     if !caller.allows("reports:read") {
//!         return Err(axum::http::StatusCode::FORBIDDEN);
//!     }
//!     Ok(format!("hello, {}", caller.key_id))
//! }
//!
//! # fn app() -> Result<Router, keygate_tower::SetupError> {
//! let keygate = Keygate::builder("https://keygate.example.com")
//!     .audience("https://reports.example.com")
//!     .build()?;
//! Ok(Router::new()
//!     .route("/report", get(report))
//!     .layer(KeygateLayer::new(keygate)))
//! # }
//! ```
//!
//! A token checked offline is accepted until it expires (at most keygate's token lifetime, 15
//! minutes by default), even if its key is revoked meanwhile; keygate itself refuses it at
//! once. A service that must see a revocation sooner checks tokens online.

mod caller;
mod client;
mod layer;

pub use caller::{Caller, Credential, Refusal};
pub use client::{Keygate, KeygateBuilder, SetupError};
pub use layer::{KeygateLayer, KeygateService};
