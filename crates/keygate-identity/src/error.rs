//! Why a token is refused, and what goes wrong with keys.

/// Why a token was refused. Each has a stable code; none carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with an algorithm that is not accepted")]
    Algorithm,
    #[error("the token names a signing key that is not published")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token comes from another issuer")]
    Issuer,
    #[error("the token was issued for another audience")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lacks a claim it must carry, or one has the wrong type")]
    Claims,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "token_malformed",
            Self::Algorithm => "token_algorithm",
            Self::UnknownKey => "token_unknown_key",
            Self::Signature => "token_signature",
            Self::Issuer => "token_issuer",
            Self::Audience => "token_wrong_audience",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::Claims => "token_claims",
        }
    }
}

/// A key that cannot be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no randomness available")]
    Random,
    #[error("the signing key is not a valid Ed25519 PKCS#8 document")]
    BadSigningKey,
    #[error("the token could not be signed")]
    Signing,
    #[error("a JWKS document is not valid: {0}")]
    BadJwks(String),
}
