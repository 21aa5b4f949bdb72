//! The keys each stored once per store and sealed by the master key: the digest key (API keys
//! are stored as its HMACs) and the audit signing key (it signs checkpoints of the audit
//! chain). Each lives in a setting as `{kek_id, sealed}`, plus, for the signing key, its public
//! half in the clear so that a checkpoint can be checked without the master key.

use keygate_core::Timestamp;
use keygate_crypto::{AuditSigner, CryptoError, DigestKey, Kek, KekId, WrappedKey};
use keygate_store::Store;
use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// A key sealed in a setting of its own.
pub(crate) trait SealedKey: Sized {
    const SETTING: &'static str;
    fn generate() -> Result<Self, CryptoError>;
    fn wrap(&self, kek: &dyn Kek) -> Result<WrappedKey, CryptoError>;
    fn unwrap(kek: &dyn Kek, wrapped: &WrappedKey) -> Result<Self, CryptoError>;
    /// What is kept in the clear beside it.
    fn public(&self) -> Option<String> {
        None
    }
}

impl SealedKey for DigestKey {
    const SETTING: &'static str = "digest_key";

    fn generate() -> Result<Self, CryptoError> {
        DigestKey::generate()
    }

    fn wrap(&self, kek: &dyn Kek) -> Result<WrappedKey, CryptoError> {
        DigestKey::wrap(self, kek)
    }

    fn unwrap(kek: &dyn Kek, wrapped: &WrappedKey) -> Result<Self, CryptoError> {
        DigestKey::unwrap(kek, wrapped)
    }
}

impl SealedKey for AuditSigner {
    const SETTING: &'static str = "audit_signing_key";

    fn generate() -> Result<Self, CryptoError> {
        AuditSigner::generate()
    }

    fn wrap(&self, kek: &dyn Kek) -> Result<WrappedKey, CryptoError> {
        AuditSigner::wrap(self, kek)
    }

    fn unwrap(kek: &dyn Kek, wrapped: &WrappedKey) -> Result<Self, CryptoError> {
        AuditSigner::unwrap(kek, wrapped)
    }

    fn public(&self) -> Option<String> {
        Some(self.public_key().to_base64())
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredKey {
    pub(crate) kek_id: String,
    pub(crate) sealed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) public_key: Option<String>,
}

fn malformed() -> ServiceError {
    CryptoError::WrappedMalformed.into()
}

fn stored_text(key: &impl SealedKey, kek: &dyn Kek) -> Result<String, ServiceError> {
    let wrapped = key.wrap(kek)?;
    serde_json::to_string(&StoredKey {
        kek_id: wrapped.kek_id.to_string(),
        sealed: wrapped.sealed,
        public_key: key.public(),
    })
    .map_err(|_| malformed())
}

fn parse(text: &str) -> Result<(StoredKey, WrappedKey), ServiceError> {
    let stored: StoredKey = serde_json::from_str(text).map_err(|_| malformed())?;
    let wrapped = WrappedKey {
        kek_id: KekId::from_stored(stored.kek_id.clone()),
        sealed: stored.sealed.clone(),
    };
    Ok((stored, wrapped))
}

/// Loads the key, creating it on a store that has none. Racing nodes all end up with the one
/// that was written first.
pub(crate) async fn open<K: SealedKey>(
    store: &dyn Store,
    kek: &dyn Kek,
    now: Timestamp,
) -> Result<K, ServiceError> {
    let text = match store.setting(K::SETTING).await? {
        Some(text) => text,
        None => {
            let fresh = stored_text(&K::generate()?, kek)?;
            store.init_setting(K::SETTING, &fresh, now).await?
        }
    };
    let (_, wrapped) = parse(&text)?;
    Ok(K::unwrap(kek, &wrapped)?)
}

/// Moves the key to `to`, unless it is there already (or there is none).
pub(crate) async fn rewrap<K: SealedKey>(
    store: &dyn Store,
    from: &dyn Kek,
    to: &dyn Kek,
) -> Result<bool, ServiceError> {
    let Some(text) = store.setting(K::SETTING).await? else {
        return Ok(false);
    };
    let (stored, wrapped) = parse(&text)?;
    if stored.kek_id == to.id().as_str() {
        return Ok(false);
    }
    let moved = stored_text(&K::unwrap(from, &wrapped)?, to)?;
    store.replace_setting(K::SETTING, &text, &moved).await?;
    Ok(true)
}

/// Whether the key is sealed by a KEK other than `kek`.
pub(crate) async fn sealed_by_other<K: SealedKey>(
    store: &dyn Store,
    kek: &KekId,
) -> Result<bool, ServiceError> {
    Ok(match store.setting(K::SETTING).await? {
        Some(text) => parse(&text)?.0.kek_id != kek.as_str(),
        None => false,
    })
}

/// The audit signing key's public half, read without the master key (offline verification).
pub async fn audit_public_key(
    store: &dyn Store,
) -> Result<Option<keygate_crypto::AuditPublicKey>, ServiceError> {
    let Some(text) = store.setting(AuditSigner::SETTING).await? else {
        return Ok(None);
    };
    let (stored, _) = parse(&text)?;
    Ok(stored
        .public_key
        .as_deref()
        .and_then(keygate_crypto::AuditPublicKey::from_base64))
}
