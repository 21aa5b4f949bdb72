//! The audit log's signing key: Ed25519 (aws-lc-rs), generated once per store and sealed by the
//! master key like the digest key. It signs checkpoints of the hash chain — a sequence number
//! and the hash there — so that a copy of them kept outside the database proves the log was
//! not rewritten after it was taken, even by someone who holds the database and the master key.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{CryptoError, Kek, WrappedKey};

const AAD: &[u8] = b"keygate/audit-signing-key/v1";

/// The signing key. Its seed never leaves this type but sealed.
pub struct AuditSigner {
    seed: SecretBox<[u8; 32]>,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigner")
            .field("public_key", &self.public_key().id())
            .finish_non_exhaustive()
    }
}

impl AuditSigner {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| CryptoError::Random)?;
        Self::from_seed(&seed)
    }

    fn from_seed(seed: &[u8; 32]) -> Result<Self, CryptoError> {
        let pair =
            Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| CryptoError::WrappedMalformed)?;
        Ok(Self {
            seed: SecretBox::new(Box::new(*seed)),
            pair,
        })
    }

    pub fn wrap(&self, kek: &dyn Kek) -> Result<WrappedKey, CryptoError> {
        kek.wrap(self.seed.expose_secret(), AAD)
    }

    pub fn unwrap(kek: &dyn Kek, wrapped: &WrappedKey) -> Result<Self, CryptoError> {
        let plain = Zeroizing::new(kek.unwrap(wrapped, AAD)?);
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            plain
                .as_slice()
                .try_into()
                .map_err(|_| CryptoError::WrappedMalformed)?,
        );
        Self::from_seed(&seed)
    }

    pub fn public_key(&self) -> AuditPublicKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        AuditPublicKey(bytes)
    }

    /// Signs `message`: 64 bytes.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// The public half, for anyone who checks checkpoints.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AuditPublicKey([u8; 32]);

impl std::fmt::Debug for AuditPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditPublicKey({})", self.id())
    }
}

impl AuditPublicKey {
    /// A short name: the first 8 bytes of the key's SHA-256, in hex.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0)[..8])
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(message, signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;

    #[test]
    fn signs_seals_and_verifies() {
        let kek = MasterKey::generate().unwrap();
        let signer = AuditSigner::generate().unwrap();
        let signature = signer.sign(b"keygate-audit-checkpoint:v1:3:abc");
        assert_eq!(signature.len(), 64);
        let public = signer.public_key();
        assert!(public.verifies(b"keygate-audit-checkpoint:v1:3:abc", &signature));
        assert!(!public.verifies(b"keygate-audit-checkpoint:v1:3:abd", &signature));

        let wrapped = signer.wrap(&kek).unwrap();
        let opened = AuditSigner::unwrap(&kek, &wrapped).unwrap();
        assert_eq!(opened.public_key(), public, "the same key after sealing");
        let other = AuditSigner::generate().unwrap().public_key();
        assert!(!other.verifies(b"keygate-audit-checkpoint:v1:3:abc", &signature));
        assert_eq!(
            AuditPublicKey::from_base64(&public.to_base64()),
            Some(public)
        );
        assert!(!format!("{signer:?}").contains(&public.to_base64()));
    }
}
