//! The claims of keygate's access tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An access token's claims (RFC 9068's JWT profile for access tokens, in seconds since the
/// epoch). `sub` is the id of the keygate key the token stands for: its limits, usage and
/// state (a revoked or suspended key stops its tokens) are the key's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    /// The token's scopes, space-delimited (see [`crate::scopes::encode`]).
    pub scope: String,
    /// The key the token was issued to (RFC 9068), the same as `sub` for keygate keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The client certificate the token is bound to (RFC 8705).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// For a federated identity (no keygate key behind it): who vouched for it and the rule
    /// that says what it may do. `sub` is then the identity's keygate id.
    #[serde(default, rename = "kg_fed", skip_serializing_if = "Option::is_none")]
    pub federated: Option<FederatedSubject>,
}

/// A federated identity, as a token keygate issued for it names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedSubject {
    /// keygate's name for the trusted issuer.
    pub issuer: String,
    /// The rule's name.
    pub rule: String,
    /// The subject the issuer vouched for.
    pub sub: String,
}

/// `aud`: one audience (written as a string) or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }

    /// The first audience, which is the one keygate issues.
    pub fn first(&self) -> Option<&str> {
        match self {
            Self::One(one) => Some(one),
            Self::Many(many) => many.first().map(String::as_str),
        }
    }
}

/// `cnf` (RFC 8705 §3.1): the SHA-256 thumbprint of the client certificate a token is bound
/// to, base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// The `x5t#S256` thumbprint of a DER certificate.
pub fn certificate_thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_audience_is_a_string_and_several_a_list() {
        let one = serde_json::to_value(Audience::One("a".into())).unwrap();
        assert_eq!(one, serde_json::json!("a"));
        let many: Audience = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert!(many.contains("b") && !many.contains("c"));
        assert_eq!(many.first(), Some("a"));
    }

    #[test]
    fn confirmation_uses_the_rfc_8705_member_name() {
        let cnf = Confirmation {
            x5t_s256: certificate_thumbprint(b"der"),
        };
        let json = serde_json::to_value(&cnf).unwrap();
        assert!(json.get("x5t#S256").is_some());
    }
}
