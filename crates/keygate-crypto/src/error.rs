//! Errors of the crypto crate. None carries key material.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the OS random number generator failed")]
    Random,
    #[error("cannot read or create the master key file {path}: {source}")]
    MasterKeyIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the master key file {path} is readable by group or others (mode {mode:o}); \
         run `chmod 600 {path}` and start again"
    )]
    MasterKeyPermissions { path: PathBuf, mode: u32 },
    #[error("the master key file {path} is not 32 bytes of base64")]
    MasterKeyMalformed { path: PathBuf },
    #[error(
        "KEYGATE_MASTER_KEY is not 32 bytes of standard base64 (e.g. `openssl rand -base64 32`)"
    )]
    EnvKeyMalformed,
    #[error(
        "the store was sealed with master key {expected}, but the configured master key is \
         {actual}; start keygate with the master key the store was created with"
    )]
    KekMismatch { expected: String, actual: String },
    #[error("the PKCS#11 token refused to {what}: {reason}")]
    Pkcs11 { what: &'static str, reason: String },
    #[error("no PKCS#11 token is labelled `{label}`")]
    Pkcs11TokenMissing { label: String },
    #[error("the PKCS#11 token holds no key labelled `{label}`")]
    Pkcs11KeyMissing { label: String },
    #[error("the PKCS#11 key labelled `{label}` has no CKA_ID; give it a unique id")]
    Pkcs11KeyWithoutId { label: String },
    #[error("the PKCS#11 token holds several keys labelled `{label}`; keep one")]
    Pkcs11KeyAmbiguous { label: String },
    #[error("a wrapped key is malformed")]
    WrappedMalformed,
    #[error("a wrapped key failed authentication: it was altered or belongs elsewhere")]
    UnwrapFailed,
}
