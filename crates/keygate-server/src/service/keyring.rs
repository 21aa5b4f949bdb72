//! The digest key, stored once per store and sealed by the master key.

use keygate_core::Timestamp;
use keygate_crypto::{DigestKey, Kek, KekId, WrappedKey};
use keygate_store::Store;
use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// The setting that holds the wrapped digest key.
pub(crate) const SETTING: &str = "digest_key";

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredDigestKey {
    pub(crate) kek_id: String,
    pub(crate) sealed: String,
}

/// Loads the digest key, creating it on a new store. Racing nodes all end up with the one
/// that was written first.
pub(crate) async fn open_digest_key(
    store: &dyn Store,
    kek: &dyn Kek,
    now: Timestamp,
) -> Result<DigestKey, ServiceError> {
    let stored = match store.setting(SETTING).await? {
        Some(text) => text,
        None => {
            let fresh = DigestKey::generate()?.wrap(kek)?;
            let text = serde_json::to_string(&StoredDigestKey {
                kek_id: fresh.kek_id.to_string(),
                sealed: fresh.sealed,
            })
            .map_err(|_| keygate_crypto::CryptoError::WrappedMalformed)?;
            store.init_setting(SETTING, &text, now).await?
        }
    };
    let parsed: StoredDigestKey =
        serde_json::from_str(&stored).map_err(|_| keygate_crypto::CryptoError::WrappedMalformed)?;
    let wrapped = WrappedKey {
        kek_id: KekId::from_stored(parsed.kek_id),
        sealed: parsed.sealed,
    };
    Ok(DigestKey::unwrap(kek, &wrapped)?)
}
