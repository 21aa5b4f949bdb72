//! Signing keys (Ed25519, PKCS#8, sealed by the server), the published key set and the check
//! of keygate's own tokens.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{AccessClaims, IdentityError, MAX_TOKEN_BYTES, TokenError};

/// The `typ` of keygate's access tokens (RFC 9068).
const TOKEN_TYPE: &str = "at+jwt";

/// A signing key. The private half leaves this type only to be sealed.
pub struct SigningKey {
    pkcs8: Zeroizing<Vec<u8>>,
    public: PublicKey,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate() -> Result<Self, IdentityError> {
        let pair = Ed25519KeyPair::generate().map_err(|_| IdentityError::Random)?;
        let document = pair.to_pkcs8().map_err(|_| IdentityError::Random)?;
        Self::from_pkcs8(document.as_ref())
    }

    /// Reads a key from its PKCS#8 document (as sealed by the server).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, IdentityError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| IdentityError::BadSigningKey)?;
        let mut x = [0u8; 32];
        x.copy_from_slice(pair.public_key().as_ref());
        Ok(Self {
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
            public: PublicKey::new(x),
            encoding: EncodingKey::from_ed_der(pkcs8),
        })
    }

    /// The PKCS#8 document, to be sealed and stored.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `claims` as an EdDSA JWT naming this key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, IdentityError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(self.public.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| IdentityError::Signing)
    }
}

/// A public Ed25519 key with its `kid`: the RFC 7638 thumbprint of its JWK, so every node
/// names a key the same way without being told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    x: [u8; 32],
}

impl PublicKey {
    fn new(x: [u8; 32]) -> Self {
        let x_text = URL_SAFE_NO_PAD.encode(x);
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x_text}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self { kid, x }
    }

    /// The key as a JWK (RFC 8037), for the JWKS document.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.x),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        })
    }
}

/// What a token must say to be accepted.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Now, in seconds since the epoch.
    pub now: i64,
    /// Clock skew allowed for `nbf` and `iat` between nodes.
    pub leeway: i64,
}

/// The published keys: the next one, the one that signs and those whose tokens may still be
/// live. keygate verifies its own tokens against them and serves them as its JWKS.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<(PublicKey, DecodingKey)>,
    jwks: String,
}

impl KeySet {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        let keys: Vec<(PublicKey, DecodingKey)> = keys
            .into_iter()
            .map(|key| {
                let decoding = DecodingKey::from_ed_der(&key.x);
                (key, decoding)
            })
            .collect();
        let jwks = serde_json::json!({
            "keys": keys.iter().map(|(key, _)| key.jwk()).collect::<Vec<_>>(),
        })
        .to_string();
        Self { keys, jwks }
    }

    /// Reads keygate's JWKS document, as a service that verifies its tokens offline holds it:
    /// its Ed25519 keys, each under the kid its key material gives (a key published under
    /// another kid is left out).
    pub fn from_jwks(json: &[u8]) -> Result<Self, IdentityError> {
        let document: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| IdentityError::BadJwks(e.to_string()))?;
        let keys = document["keys"]
            .as_array()
            .ok_or_else(|| IdentityError::BadJwks("no `keys` list".into()))?;
        let publics: Vec<PublicKey> = keys
            .iter()
            .filter(|k| k["kty"] == "OKP" && k["crv"] == "Ed25519")
            .filter_map(|k| {
                let x = URL_SAFE_NO_PAD.decode(k["x"].as_str()?).ok()?;
                let key = PublicKey::new(x.try_into().ok()?);
                (k["kid"].as_str() == Some(key.kid.as_str())).then_some(key)
            })
            .collect();
        if publics.is_empty() {
            return Err(IdentityError::BadJwks("no Ed25519 key in it".into()));
        }
        Ok(Self::new(publics))
    }

    /// The JWKS document (RFC 7517 §5).
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(key, _)| key.kid.as_str())
    }

    /// Verifies one of keygate's tokens: EdDSA only, a published `kid`, the signature, then
    /// the issuer, the audience and the times.
    pub fn verify(&self, token: &str, expected: Expected<'_>) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        // RFC 9068 §4: an access token says so, so that no other JWT of the issuer passes.
        if header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let (_, decoding) = self
            .keys
            .iter()
            .find(|(key, _)| key.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let claims: AccessClaims = decode_signed(token, decoding, Algorithm::EdDSA)?;
        if claims.iss != expected.issuer {
            return Err(TokenError::Issuer);
        }
        if !claims.aud.contains(expected.audience) {
            return Err(TokenError::Audience);
        }
        check_times(
            claims.exp,
            claims.nbf,
            Some(claims.iat),
            expected.now,
            0,
            expected.leeway,
        )?;
        Ok(claims)
    }
}

/// Checks a signature with `key` for `alg` alone and reads the claims; every claim is checked
/// by the caller, on keygate's clock rather than the library's.
pub(crate) fn decode_signed<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<T, TokenError> {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<T>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Signature,
            jsonwebtoken::errors::ErrorKind::Json(_)
            | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => TokenError::Claims,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
            | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => TokenError::Algorithm,
            _ => TokenError::Malformed,
        })
}

/// `exp` must be after now (less `exp_leeway`), `nbf` and `iat` not after now (plus
/// `leeway`).
pub(crate) fn check_times(
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    now: i64,
    exp_leeway: i64,
    leeway: i64,
) -> Result<(), TokenError> {
    if exp.saturating_add(exp_leeway) <= now {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway))
        || iat.is_some_and(|iat| iat > now.saturating_add(leeway))
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// Whether `text` has a JWT's shape (three base64url parts, the first a JSON object), so a
/// credential is told from a keygate key without parsing either.
pub fn looks_like_jwt(text: &str) -> bool {
    text.starts_with("eyJ")
        && text.len() <= MAX_TOKEN_BYTES
        && text.bytes().filter(|&b| b == b'.').count() == 2
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Audience;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://keygate.test".into(),
            sub: "key_1".into(),
            aud: Audience::One("https://keygate.test".into()),
            exp: now + 900,
            iat: now,
            nbf: Some(now),
            jti: "tok_1".into(),
            scope: "models:*".into(),
            client_id: Some("key_1".into()),
            cnf: None,
            federated: None,
        }
    }

    fn expected(now: i64) -> Expected<'static> {
        Expected {
            issuer: "https://keygate.test",
            audience: "https://keygate.test",
            now,
            leeway: 30,
        }
    }

    fn segment(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[test]
    fn a_signed_token_verifies_with_the_published_key() {
        let key = SigningKey::generate().unwrap();
        let set = KeySet::new([key.public_key().clone()]);
        let token = key.sign(&claims(1000)).unwrap();
        assert!(looks_like_jwt(&token));
        assert_eq!(set.verify(&token, expected(1000)).unwrap(), claims(1000));
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        // The key read back from its PKCS#8 document is the same key.
        let again = SigningKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert!(!format!("{key:?}").contains(&URL_SAFE_NO_PAD.encode(key.pkcs8())));
    }

    #[test]
    fn refuses_what_it_must() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let set = KeySet::new([key.public_key().clone()]);
        let token = key.sign(&claims(1000)).unwrap();
        assert_eq!(set.verify(&token, expected(1900)), Err(TokenError::Expired));
        assert_eq!(
            set.verify(&token, expected(900)),
            Err(TokenError::NotYetValid)
        );
        let mut wrong = expected(1000);
        wrong.audience = "https://elsewhere";
        assert_eq!(set.verify(&token, wrong), Err(TokenError::Audience));
        let mut wrong = expected(1000);
        wrong.issuer = "https://elsewhere";
        assert_eq!(set.verify(&token, wrong), Err(TokenError::Issuer));
        // Signed by a key keygate does not publish.
        let foreign = other.sign(&claims(1000)).unwrap();
        assert_eq!(
            set.verify(&foreign, expected(1000)),
            Err(TokenError::UnknownKey)
        );
        // A changed payload under the original signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut changed = claims(1000);
        changed.scope = "*".into();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            segment(&serde_json::to_value(&changed).unwrap()),
            parts[2]
        );
        assert_eq!(
            set.verify(&tampered, expected(1000)),
            Err(TokenError::Signature)
        );
        // Another key's signature under this key's kid.
        let foreign_parts: Vec<&str> = foreign.split('.').collect();
        let swapped = format!("{}.{}.{}", parts[0], parts[1], foreign_parts[2]);
        assert_eq!(
            set.verify(&swapped, expected(1000)),
            Err(TokenError::Signature)
        );
        assert_eq!(
            set.verify("not a token", expected(1000)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn refuses_none_and_hmac_with_the_public_key() {
        let key = SigningKey::generate().unwrap();
        let set = KeySet::new([key.public_key().clone()]);
        let body = segment(&serde_json::to_value(claims(1000)).unwrap());
        let none = format!(
            "{}.{body}.",
            segment(&serde_json::json!({"alg": "none", "kid": key.kid()}))
        );
        assert!(set.verify(&none, expected(1000)).is_err());
        // HS256 keyed with the public key's bytes, as a confused verifier would check it.
        let header = serde_json::json!({"alg": "HS256", "kid": key.kid(), "typ": "JWT"});
        let hs = jsonwebtoken::encode(
            &serde_json::from_value::<Header>(header).unwrap(),
            &claims(1000),
            &EncodingKey::from_secret(&key.public_key().x),
        )
        .unwrap();
        assert_eq!(set.verify(&hs, expected(1000)), Err(TokenError::Algorithm));
    }

    #[test]
    fn the_jwks_lists_every_key_with_its_kid() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        let set = KeySet::new([a.public_key().clone(), b.public_key().clone()]);
        let jwks: serde_json::Value = serde_json::from_str(set.jwks()).unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [a.kid(), b.kid()]);
        // Read back as a service holds it, it verifies the same tokens.
        let held = KeySet::from_jwks(set.jwks().as_bytes()).unwrap();
        assert_eq!(held.kids().collect::<Vec<_>>(), [a.kid(), b.kid()]);
        let token = a.sign(&claims(1000)).unwrap();
        assert!(held.verify(&token, expected(1000)).is_ok());
        assert!(KeySet::from_jwks(br#"{"keys": []}"#).is_err());
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
        assert_ne!(a.kid(), b.kid());
        // The JWK reads back through the library as a key that verifies.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let token = a.sign(&claims(1000)).unwrap();
        assert!(decode_signed::<AccessClaims>(&token, &decoding, Algorithm::EdDSA).is_ok());
    }
}
