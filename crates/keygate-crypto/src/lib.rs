//! keygate's cryptography: the local master key (the key-encryption key, KEK), AES-256-GCM
//! key wrapping, and the digest key that turns API keys into their stored lookup index.
//!
//! Architecture invariant: key material lives only in zeroizing types and never appears in
//! `Debug` output or error messages.

mod digest;
mod error;
mod master_key;
mod wrap;

pub use digest::{DigestKey, KeyDigest};
pub use error::CryptoError;
pub use master_key::{KekId, MasterKey};
pub use wrap::WrappedKey;
