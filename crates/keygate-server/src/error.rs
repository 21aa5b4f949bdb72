//! The service layer's error: what went wrong, as data. `http::error` turns it into a response.

use keygate_core::{KeyRejection, Permission, ValidationError};
use keygate_crypto::CryptoError;
use keygate_store::{Conflict, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("the caller may not {permission:?} here")]
    Forbidden { permission: Permission },
    #[error("{entity} not found")]
    NotFound { entity: &'static str },
    #[error(transparent)]
    Conflict(Conflict),
    #[error("the pagination cursor is not one this server issued")]
    BadCursor,
    #[error("authentication failed: {0}")]
    Unauthenticated(KeyRejection),
    #[error("no credentials: send an admin token as `Authorization: Bearer <token>`")]
    MissingCredentials,
    #[error("a keygate key was sent in the query string")]
    KeyInQuery,
    #[error("the key's scopes do not grant `{permission}`")]
    ScopeDenied { permission: String },
    #[error("the secret cannot be decrypted: its stored form is damaged or sealed by another key")]
    SecretUnreadable,
    #[error("the OS random number generator failed")]
    Random,
    #[error("the HTTP client for upstream checks could not be set up")]
    HttpClientSetup,
    #[error("single sign-on is not available: {0}")]
    SingleSignOn(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("storage error: {0}")]
    Store(StoreError),
    /// The store cannot be reached: nothing was read or written.
    #[error("the store is unreachable")]
    StoreUnavailable,
    #[error("model group `{alias}` is defined in keygate.toml: change it there")]
    DefinedInConfig { alias: String },
    #[error("the model group cannot be served: {0}")]
    ModelGroup(keygate_llm::ConfigError),
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { entity } => Self::NotFound { entity },
            StoreError::Conflict(conflict) => Self::Conflict(conflict),
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "the store is unreachable");
                Self::StoreUnavailable
            }
            other => Self::Store(other),
        }
    }
}

impl From<getrandom::Error> for ServiceError {
    fn from(_: getrandom::Error) -> Self {
        Self::Random
    }
}
