//! keygate's cryptography: key-encryption keys (KEKs) behind the [`Kek`] trait, envelope
//! encryption of stored secrets, and the digest key that turns API keys into their stored
//! lookup index.
//!
//! Architecture invariant: key material lives only in zeroizing types and never appears in
//! `Debug` output or error messages.

mod audit_signer;
mod digest;
pub mod envelope;
mod error;
mod kek;
mod keyring;
mod master_key;
mod pkcs11;
mod report_keys;
mod ring;
mod sealed;
mod wrap;

pub use audit_signer::{AuditPublicKey, AuditSigner};
pub use digest::{DigestKey, KeyDigest};
pub use envelope::{Envelope, SecretRow};
pub use error::CryptoError;
pub use kek::Kek;
pub use keyring::{KeyringPaths, LocalKeyring};
pub use master_key::{KekId, MasterKey};
pub use pkcs11::{KeyPresence, Pkcs11Config, Pkcs11Kek};
pub use report_keys::{ReportKeyError, ReportKeys};
pub use ring::KekRing;
pub use wrap::WrappedKey;
