//! The digest key: a random 32-byte HMAC-SHA256 key, generated once per store and kept
//! wrapped by the master key. The store indexes API keys only by `HMAC(digest_key, key)`, so
//! a database dump reveals no usable key, and rotating the master key changes no digest.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{CryptoError, Kek, WrappedKey};

const AAD: &[u8] = b"keygate:digest-key:v1";

/// The HMAC key for API-key digests. Redacted in `Debug`, zeroized on drop.
pub struct DigestKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey([REDACTED])")
    }
}

/// `HMAC-SHA256(digest_key, api_key)`: the only form in which an API key is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyDigest({}…)", hex::encode(&self.0[..4]))
    }
}

impl KeyDigest {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Constant-time comparison, for any place that compares digests outside an index.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl DigestKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Self(SecretBox::new(Box::new(*bytes))))
    }

    pub fn wrap(&self, kek: &dyn Kek) -> Result<WrappedKey, CryptoError> {
        kek.wrap(self.0.expose_secret(), AAD)
    }

    pub fn unwrap(kek: &dyn Kek, wrapped: &WrappedKey) -> Result<Self, CryptoError> {
        let plain = kek.unwrap(wrapped, AAD)?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::WrappedMalformed)?;
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    pub fn digest(&self, api_key: &str) -> KeyDigest {
        #[expect(
            clippy::expect_used,
            reason = "HMAC accepts keys of any length, so a 32-byte key cannot be refused"
        )]
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes any key length");
        mac.update(api_key.as_bytes());
        KeyDigest(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;

    #[test]
    fn digest_is_keyed_and_stable() {
        let a = DigestKey::generate().unwrap();
        let b = DigestKey::generate().unwrap();
        assert_eq!(a.digest("kg_live_x"), a.digest("kg_live_x"));
        assert_ne!(a.digest("kg_live_x"), a.digest("kg_live_y"));
        assert_ne!(a.digest("kg_live_x"), b.digest("kg_live_x"));
    }

    #[test]
    fn known_answer_hmac_sha256() {
        // Expected value computed independently with Python's `hmac` module.
        let key = DigestKey(SecretBox::new(Box::new([0x0b; 32])));
        let digest = key.digest("Hi There");
        assert_eq!(
            hex::encode(digest.as_bytes()),
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }

    #[test]
    fn survives_wrap_and_master_key_change() {
        let old_kek = MasterKey::generate().unwrap();
        let new_kek = MasterKey::generate().unwrap();
        let key = DigestKey::generate().unwrap();
        let before = key.digest("kg_live_abc");
        let rewrapped = DigestKey::unwrap(&old_kek, &key.wrap(&old_kek).unwrap())
            .unwrap()
            .wrap(&new_kek)
            .unwrap();
        let after = DigestKey::unwrap(&new_kek, &rewrapped)
            .unwrap()
            .digest("kg_live_abc");
        assert!(before.ct_eq(&after));
    }
}
