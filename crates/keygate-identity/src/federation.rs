//! Workload identity federation: JWTs of trusted external issuers — GitHub Actions and GitLab
//! CI OIDC tokens, Kubernetes service-account tokens, any OpenID Connect provider's — checked
//! against the issuer's JWKS and mapped by rules to a project, scopes and limits.
//!
//! Only asymmetric algorithms are accepted, and only with a key of their own family, so
//! `alg: none` and HMAC keyed with a public key (the classic confusion) never verify. The
//! issuer, the audience and the times are checked on keygate's clock; then the claims every
//! token of the issuer must carry; then the rules, in order, the first that matches deciding.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use keygate_core::scope::pattern_matches;
use keygate_core::{KeyLimits, Scope};
use serde_json::{Map, Value};

use crate::keys::{check_times, decode_signed};
use crate::{IdentityError, MAX_TOKEN_BYTES, TokenError};

/// The algorithms a federated token may use: asymmetric ones only.
const ACCEPTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Clock skew allowed against an external issuer.
const LEEWAY_SECS: i64 = 60;

/// A claim that must match a pattern: a top-level claim by name, or any claim by JSON pointer
/// (`/kubernetes.io/serviceaccount/name`). A string, number or boolean matches when its text
/// matches the pattern (`*` for any run); a list when one of its items does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMatch {
    pub claim: String,
    pub pattern: String,
}

impl ClaimMatch {
    fn matches(&self, claims: &Map<String, Value>) -> bool {
        let value = if self.claim.starts_with('/') {
            Value::Object(claims.clone()).pointer(&self.claim).cloned()
        } else {
            claims.get(&self.claim).cloned()
        };
        let one = |v: &Value| match v {
            Value::String(text) => pattern_matches(&self.pattern, text),
            Value::Number(n) => pattern_matches(&self.pattern, &n.to_string()),
            Value::Bool(b) => pattern_matches(&self.pattern, &b.to_string()),
            _ => false,
        };
        match value {
            Some(Value::Array(items)) => items.iter().any(one),
            Some(other) => one(&other),
            None => false,
        }
    }
}

/// What a matching token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique within its issuer; named in the tokens keygate issues for such an identity.
    pub name: String,
    pub matches: Vec<ClaimMatch>,
    /// The project (name or id) the identity acts in.
    pub project: String,
    pub scopes: Vec<Scope>,
    /// Counted per identity (issuer and subject).
    pub limits: KeyLimits,
}

/// An external issuer keygate trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// keygate's name for it (`[federation.<name>]`).
    pub name: String,
    /// `iss`, exactly.
    pub issuer: String,
    /// The audience its tokens must name for keygate.
    pub audience: String,
    /// Claims every token of this issuer must carry.
    pub required: Vec<ClaimMatch>,
    pub rules: Vec<Rule>,
}

/// A federated token that passed: who it is, and the rule that decided.
#[derive(Debug, Clone)]
pub struct Federated {
    pub subject: String,
    /// The index of the rule in its issuer.
    pub rule: usize,
    /// `exp`, in seconds since the epoch.
    pub expires_at: i64,
    pub jti: Option<String>,
}

/// Why a federated token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FederationError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the token lacks the claim `{0}` its issuer's tokens must carry, or it does not match")]
    Required(String),
    #[error("no rule of the issuer matches the token's claims")]
    NoRule,
}

/// An issuer's published keys.
#[derive(Debug, Default)]
pub struct IssuerKeys {
    keys: Vec<(Option<String>, Option<Algorithm>, DecodingKey)>,
}

impl IssuerKeys {
    /// Reads a JWKS document; keys that cannot verify (encryption keys, symmetric keys,
    /// unknown types) are left out.
    pub fn from_jwks(json: &[u8]) -> Result<Self, IdentityError> {
        let set: JwkSet =
            serde_json::from_slice(json).map_err(|err| IdentityError::BadJwks(err.to_string()))?;
        let keys = set
            .keys
            .iter()
            .filter(|jwk| usable(jwk))
            .filter_map(|jwk| {
                let alg = jwk
                    .common
                    .key_algorithm
                    .and_then(|a| a.to_string().parse::<Algorithm>().ok());
                DecodingKey::from_jwk(jwk)
                    .ok()
                    .map(|key| (jwk.common.key_id.clone(), alg, key))
            })
            .collect::<Vec<_>>();
        if keys.is_empty() {
            return Err(IdentityError::BadJwks(
                "no key in it can verify signatures".into(),
            ));
        }
        Ok(Self { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this `kid` is known.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.iter().any(|(k, _, _)| k.as_deref() == Some(kid))
    }

    /// The key for a header: by `kid`, or the only key when the token names none.
    fn key_for(&self, kid: Option<&str>) -> Option<(Option<Algorithm>, &DecodingKey)> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(k, _, _)| k.as_deref() == Some(kid))
                .map(|(_, alg, key)| (*alg, key)),
            None if self.keys.len() == 1 => self.keys.first().map(|(_, alg, key)| (*alg, key)),
            None => None,
        }
    }
}

/// A public signature key (not one for encryption, not a shared secret).
fn usable(jwk: &Jwk) -> bool {
    use jsonwebtoken::jwk::{AlgorithmParameters, PublicKeyUse};
    let for_signing = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
    let asymmetric = matches!(
        jwk.algorithm,
        AlgorithmParameters::RSA(_)
            | AlgorithmParameters::EllipticCurve(_)
            | AlgorithmParameters::OctetKeyPair(_)
    );
    for_signing && asymmetric
}

/// The `iss` of a token, read without checking anything, to choose who checks it.
pub fn peek_issuer(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let claims: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode_claims(token).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// The `kid` of a token's header, read without checking anything.
pub fn peek_kid(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

impl TrustedIssuer {
    /// Checks `token` against this issuer's keys at `now` (seconds since the epoch) and finds
    /// the rule that decides what it may do.
    pub fn verify(
        &self,
        token: &str,
        keys: &IssuerKeys,
        now: i64,
    ) -> Result<Federated, FederationError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed.into());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(TokenError::Algorithm.into());
        }
        let (pinned, key) = keys
            .key_for(header.kid.as_deref())
            .ok_or(TokenError::UnknownKey)?;
        // A key published for one algorithm verifies that one only.
        if pinned.is_some_and(|alg| alg != header.alg) {
            return Err(TokenError::Algorithm.into());
        }
        let claims: Map<String, Value> = decode_signed(token, key, header.alg)?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(TokenError::Issuer.into());
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(one)) => *one == self.audience,
            Some(Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(&self.audience)),
            _ => false,
        };
        if !audience_ok {
            return Err(TokenError::Audience.into());
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(TokenError::Claims)?;
        let number = |name: &str| claims.get(name).and_then(Value::as_i64);
        check_times(
            exp,
            number("nbf"),
            number("iat"),
            now,
            LEEWAY_SECS,
            LEEWAY_SECS,
        )?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::Claims)?
            .to_owned();
        if let Some(missing) = self.required.iter().find(|m| !m.matches(&claims)) {
            return Err(FederationError::Required(missing.claim.clone()));
        }
        let rule = self
            .rules
            .iter()
            .position(|rule| rule.matches.iter().all(|m| m.matches(&claims)))
            .ok_or(FederationError::NoRule)?;
        Ok(Federated {
            subject,
            rule,
            expires_at: exp,
            jti: claims.get("jti").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::SigningKey;

    const NOW: i64 = 1_800_000_000;

    fn issuer() -> TrustedIssuer {
        let m = |claim: &str, pattern: &str| ClaimMatch {
            claim: claim.into(),
            pattern: pattern.into(),
        };
        TrustedIssuer {
            name: "ci".into(),
            issuer: "https://ci.example".into(),
            audience: "https://keygate.example".into(),
            required: vec![m("repository_owner", "acme")],
            rules: vec![
                Rule {
                    name: "deploy".into(),
                    matches: vec![m("repository", "acme/pay*"), m("ref", "refs/heads/main")],
                    project: "payments".into(),
                    scopes: vec![Scope::parse("secrets:read:stripe").unwrap()],
                    limits: KeyLimits::default(),
                },
                Rule {
                    name: "pods".into(),
                    matches: vec![m("/kubernetes.io/namespace", "prod"), m("groups", "ops")],
                    project: "ops".into(),
                    scopes: vec![Scope::parse("models:*").unwrap()],
                    limits: KeyLimits::default(),
                },
            ],
        }
    }

    fn claims() -> Value {
        serde_json::json!({
            "iss": "https://ci.example",
            "aud": "https://keygate.example",
            "sub": "repo:acme/payments:ref:refs/heads/main",
            "exp": NOW + 300,
            "iat": NOW,
            "repository_owner": "acme",
            "repository": "acme/payments",
            "ref": "refs/heads/main",
            "jti": "run-1",
        })
    }

    /// An Ed25519 key of the issuer and its JWKS.
    fn issuer_key() -> (SigningKey, IssuerKeys) {
        let key = SigningKey::generate().unwrap();
        let jwks = serde_json::json!({"keys": [key.public_key().jwk()]});
        let keys = IssuerKeys::from_jwks(jwks.to_string().as_bytes()).unwrap();
        (key, keys)
    }

    fn sign(key: &SigningKey, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(key.pkcs8())).unwrap()
    }

    #[test]
    fn a_matching_token_finds_its_rule() {
        let (key, keys) = issuer_key();
        let federated = issuer().verify(&sign(&key, &claims()), &keys, NOW).unwrap();
        assert_eq!(federated.rule, 0);
        assert_eq!(federated.subject, "repo:acme/payments:ref:refs/heads/main");
        assert_eq!(federated.jti.as_deref(), Some("run-1"));
        assert_eq!(
            peek_issuer(&sign(&key, &claims())).as_deref(),
            Some("https://ci.example")
        );
        // A nested claim by pointer, and a list holding the value.
        let mut pod = claims();
        pod["repository"] = "acme/web".into();
        pod["kubernetes.io"] = serde_json::json!({"namespace": "prod"});
        pod["groups"] = serde_json::json!(["dev", "ops"]);
        assert_eq!(
            issuer().verify(&sign(&key, &pod), &keys, NOW).unwrap().rule,
            1
        );
    }

    #[test]
    fn claims_and_rules_that_do_not_match_refuse() {
        let (key, keys) = issuer_key();
        let mut other_branch = claims();
        other_branch["ref"] = "refs/heads/feature".into();
        assert_eq!(
            issuer()
                .verify(&sign(&key, &other_branch), &keys, NOW)
                .unwrap_err(),
            FederationError::NoRule
        );
        let mut other_owner = claims();
        other_owner["repository_owner"] = "evil".into();
        assert_eq!(
            issuer()
                .verify(&sign(&key, &other_owner), &keys, NOW)
                .unwrap_err(),
            FederationError::Required("repository_owner".into())
        );
    }

    #[test]
    fn issuer_audience_and_times_are_checked() {
        let (key, keys) = issuer_key();
        let check = |change: &dyn Fn(&mut Value), now: i64| {
            let mut c = claims();
            change(&mut c);
            issuer().verify(&sign(&key, &c), &keys, now).unwrap_err()
        };
        let token = |e: TokenError| FederationError::Token(e);
        assert_eq!(
            check(&|c| c["iss"] = "https://evil".into(), NOW),
            token(TokenError::Issuer)
        );
        assert_eq!(
            check(&|c| c["aud"] = "https://other".into(), NOW),
            token(TokenError::Audience)
        );
        assert_eq!(check(&|_| {}, NOW + 361), token(TokenError::Expired));
        assert_eq!(
            check(&|c| c["nbf"] = (NOW + 120).into(), NOW),
            token(TokenError::NotYetValid)
        );
        assert_eq!(
            check(
                &|c| {
                    c.as_object_mut().unwrap().remove("exp");
                },
                NOW
            ),
            token(TokenError::Claims)
        );
    }

    #[test]
    fn none_hmac_and_foreign_keys_never_verify() {
        let (key, keys) = issuer_key();
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        let none = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert!(issuer().verify(&none, &keys, NOW).is_err());
        // HS256 keyed with the public key's bytes.
        let public = key.public_key().jwk()["x"].as_str().unwrap().to_owned();
        let raw = URL_SAFE_NO_PAD.decode(public).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid().to_owned());
        let hs = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&raw)).unwrap();
        assert_eq!(
            issuer().verify(&hs, &keys, NOW).unwrap_err(),
            FederationError::Token(TokenError::Algorithm)
        );
        // Signed by a key the issuer does not publish, under a published kid.
        let stranger = SigningKey::generate().unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        let forged = jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_ed_der(stranger.pkcs8()),
        )
        .unwrap();
        assert_eq!(
            issuer().verify(&forged, &keys, NOW).unwrap_err(),
            FederationError::Token(TokenError::Signature)
        );
        // A JWKS holding only a shared secret is no key set at all.
        let secret = serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]});
        assert!(IssuerKeys::from_jwks(secret.to_string().as_bytes()).is_err());
    }
}
