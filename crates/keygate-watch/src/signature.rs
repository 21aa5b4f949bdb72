//! The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256, keyed by the endpoint's
//! secret, of `{webhook-id}.{webhook-timestamp}.{body}`. Secrets are `whsec_` and the base64
//! of 32 random bytes, the form receivers' libraries (`standardwebhooks`, Svix) take.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// The scheme's version tag in `webhook-signature`.
pub const SIGNATURE_VERSION: &str = "v1";
const PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret. Its bytes are zeroized on drop and never printed.
#[derive(Clone)]
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

/// A secret that is not `whsec_` and base64 of 24 to 64 bytes, or no randomness to make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("a webhook secret is whsec_ and the base64 of 24 to 64 bytes")]
    Malformed,
    #[error("the system's random number generator failed")]
    Random,
}

impl WebhookSecret {
    pub fn generate() -> Result<Self, WebhookSecretError> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| WebhookSecretError::Random)?;
        Ok(Self(bytes))
    }

    /// Reads the `whsec_…` text form.
    pub fn parse(text: &str) -> Result<Self, WebhookSecretError> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or(WebhookSecretError::Malformed)?;
        let bytes = Zeroizing::new(
            STANDARD
                .decode(encoded)
                .map_err(|_| WebhookSecretError::Malformed)?,
        );
        if !(24..=64).contains(&bytes.len()) {
            return Err(WebhookSecretError::Malformed);
        }
        Ok(Self(bytes))
    }

    /// The `whsec_…` text form: handed over once, when the endpoint is created.
    pub fn expose_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{PREFIX}{}", STANDARD.encode(self.0.as_slice())))
    }

    /// The raw bytes, for sealing.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// From unsealed bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WebhookSecretError> {
        if !(24..=64).contains(&bytes.len()) {
            return Err(WebhookSecretError::Malformed);
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

/// The `webhook-signature` header's value for one delivery attempt: `v1,<base64>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "{SIGNATURE_VERSION},{}",
        STANDARD.encode(secret.mac(id, timestamp, body))
    )
}

/// Whether any of the space-separated signatures in `header` is a `v1` signature of this
/// message, compared in constant time. (What a receiver does; keygate's tests use it.)
pub fn verify(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let expected = secret.mac(id, timestamp, body);
    header.split(' ').any(|candidate| {
        candidate
            .strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .is_some_and(|given| given.ct_eq(&expected).into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference libraries' own test vector.
    #[test]
    fn signs_the_reference_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_changed_byte_fails_and_any_listed_signature_may_match() {
        let secret = WebhookSecret::generate().unwrap();
        let other = WebhookSecret::generate().unwrap();
        let good = sign(&secret, "msg_1", 10, b"{}");
        assert!(verify(&secret, "msg_1", 10, b"{}", &good));
        assert!(!verify(&secret, "msg_1", 11, b"{}", &good));
        assert!(!verify(&secret, "msg_2", 10, b"{}", &good));
        assert!(!verify(&secret, "msg_1", 10, b"{ }", &good));
        assert!(!verify(&other, "msg_1", 10, b"{}", &good));
        let both = format!("{} {good}", sign(&other, "msg_1", 10, b"{}"));
        assert!(verify(&secret, "msg_1", 10, b"{}", &both));
    }

    #[test]
    fn text_form_round_trips_and_is_never_printed() {
        let secret = WebhookSecret::generate().unwrap();
        let text = secret.expose_text();
        assert!(text.starts_with("whsec_"));
        let back = WebhookSecret::parse(&text).unwrap();
        assert_eq!(back.expose_bytes(), secret.expose_bytes());
        assert!(!format!("{secret:?}").contains(&text[6..]));
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!", "whsec_AAAA"] {
            assert_eq!(
                WebhookSecret::parse(bad).unwrap_err(),
                WebhookSecretError::Malformed
            );
        }
    }
}
