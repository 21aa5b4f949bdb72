//! The keys that sign keygate's access tokens, each sealed by the KEK. A handful of rows:
//! every node reads them all.

use async_trait::async_trait;
use keygate_core::Timestamp;

use crate::StoreError;

/// One stored signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    /// The RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The KEK that seals it.
    pub kek_id: String,
    /// The PKCS#8 document, sealed.
    pub sealed: String,
    pub created_at: Timestamp,
    /// When it starts signing (before that it is only published).
    pub signs_from: Timestamp,
}

impl std::fmt::Debug for StoredSigningKey {
    /// Leaves the sealed key out: sealed or not, key material stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("kek_id", &self.kek_id)
            .field("signs_from", &self.signs_from)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait SigningKeyStore {
    /// Every stored key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;
    /// Adds a key; a key with the same kid already stored is left as it is.
    async fn add_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError>;
    /// Deletes a key; whether it was there.
    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError>;
    /// Replaces a key's sealed form if it is still sealed by `old_kek`; whether it was.
    async fn rewrap_signing_key(
        &self,
        kid: &str,
        old_kek: &str,
        new_kek: &str,
        sealed: &str,
    ) -> Result<bool, StoreError>;
}
