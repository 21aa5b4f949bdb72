//! The key-encryption key (KEK) seam: whatever holds the root key wraps and unwraps data keys.
//! The local file and the environment variable keep an AES key in memory; an HSM keeps it
//! inside the token and only ever sees data keys.

use zeroize::Zeroizing;

use crate::{CryptoError, KekId, WrappedKey};

/// A key-encryption key. Implementations never expose their key material.
pub trait Kek: Send + Sync + std::fmt::Debug {
    /// The public name of the key that `wrap` uses now: stored beside everything it wraps.
    fn id(&self) -> KekId;

    /// Seals `plaintext` (a data key or the digest key) for the purpose named by `aad`.
    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<WrappedKey, CryptoError>;

    /// Opens what `wrap` sealed. Fails with [`CryptoError::KekMismatch`] when another KEK
    /// sealed it, and with [`CryptoError::UnwrapFailed`] when it was altered or moved.
    fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
}
