//! AES-256-GCM key wrapping under the master key. The associated data names what the wrapped
//! key is for, so a wrapped key copied to another purpose fails to unwrap.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::{CryptoError, Kek, KekId, MasterKey, sealed};

/// A key sealed by a KEK: `version ‖ nonce ‖ ciphertext ‖ tag`, base64 for storage, with the
/// id of the KEK that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: KekId,
    pub sealed: String,
}

impl Kek for MasterKey {
    fn id(&self) -> KekId {
        MasterKey::id(self).clone()
    }

    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<WrappedKey, CryptoError> {
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.expose()));
        let nonce = sealed::fresh_nonce()?;
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Random)?;
        Ok(WrappedKey {
            kek_id: MasterKey::id(self).clone(),
            sealed: sealed::encode(&nonce, &ciphertext),
        })
    }

    fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if &wrapped.kek_id != MasterKey::id(self) {
            return Err(CryptoError::KekMismatch {
                expected: wrapped.kek_id.to_string(),
                actual: MasterKey::id(self).to_string(),
            });
        }
        let (nonce, ciphertext) = sealed::decode(&wrapped.sealed)?;
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.expose()));
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::UnwrapFailed)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wrong_kek_is_named_not_guessed() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        let wrapped = a.wrap(b"secret", b"purpose").unwrap();
        let err = b.unwrap(&wrapped, b"purpose").unwrap_err();
        assert!(matches!(err, CryptoError::KekMismatch { .. }));
        assert!(err.to_string().contains(a.id().as_str()));
    }

    #[test]
    fn other_purpose_fails() {
        let kek = MasterKey::generate().unwrap();
        let wrapped = kek.wrap(b"secret", b"digest-key").unwrap();
        assert!(matches!(
            kek.unwrap(&wrapped, b"other"),
            Err(CryptoError::UnwrapFailed)
        ));
    }

    proptest! {
        #[test]
        fn round_trip(plain in proptest::collection::vec(any::<u8>(), 0..256)) {
            let kek = MasterKey::generate().unwrap();
            let wrapped = kek.wrap(&plain, b"aad").unwrap();
            let opened = kek.unwrap(&wrapped, b"aad").unwrap();
            prop_assert_eq!(opened.as_slice(), plain.as_slice());
        }

        #[test]
        fn any_flipped_bit_fails(bit in 0usize..(8 * (1 + 12 + 32 + 16))) {
            let kek = MasterKey::generate().unwrap();
            let wrapped = Kek::wrap(&kek, &[7u8; 32], b"aad").unwrap();
            let mut blob = STANDARD.decode(&wrapped.sealed).unwrap();
            blob[bit / 8] ^= 1 << (bit % 8);
            let tampered = WrappedKey { kek_id: wrapped.kek_id.clone(), sealed: STANDARD.encode(blob) };
            prop_assert!(kek.unwrap(&tampered, b"aad").is_err());
        }

        #[test]
        fn truncation_fails(cut in 1usize..61) {
            let kek = MasterKey::generate().unwrap();
            let wrapped = Kek::wrap(&kek, &[7u8; 32], b"aad").unwrap();
            let mut blob = STANDARD.decode(&wrapped.sealed).unwrap();
            blob.truncate(blob.len() - cut);
            let tampered = WrappedKey { kek_id: wrapped.kek_id.clone(), sealed: STANDARD.encode(blob) };
            prop_assert!(kek.unwrap(&tampered, b"aad").is_err());
        }
    }
}
