//! keygate's identity beyond static keys, as pure logic.
//!
//! - [`AccessClaims`]: the claims of keygate's access tokens (RFC 9068's profile: `iss`,
//!   `sub` — the parent key's id —, `aud`, `exp`, `iat`, `jti`, `scope`, and `cnf` for a token
//!   bound to a client certificate, RFC 8705).
//! - [`SigningKey`] signs them as EdDSA (Ed25519) JWTs with a `kid`; [`KeySet`] holds the
//!   published public keys, renders the JWKS document and verifies keygate's own tokens.
//! - [`schedule`]: when a signing key is made, starts signing and is no longer published.
//! - [`scopes`]: a token's scopes, narrowed from its parent's and written in the `scope` claim.
//! - [`federation`]: tokens of trusted external issuers (CI systems, Kubernetes, any OpenID
//!   Connect provider) checked against their JWKS and mapped by rules to what they may do.
//!
//! - [`certificates`]: what a verified client certificate may do, by the names it presents.
//!
//! No I/O: the server keeps the signing keys (sealed by the KEK) and fetches issuers' JWKS.

pub mod certificates;
mod claims;
mod error;
pub mod federation;
mod keys;
pub mod schedule;
pub mod scopes;

pub use claims::{AccessClaims, Audience, Confirmation, FederatedSubject, certificate_thumbprint};
pub use error::{IdentityError, TokenError};
pub use keys::{Expected, KeySet, PublicKey, SigningKey, looks_like_jwt};

/// The most bytes a token may have before it is looked at.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
