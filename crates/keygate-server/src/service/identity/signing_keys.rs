//! The keys that sign tokens: sealed by the KEK in the store (the kid in the associated data,
//! so a sealed key copied to another row does not open), read by every node, and turned over
//! by one node at a time under a lease.

use std::sync::Arc;
use std::time::Duration;

use keygate_core::Timestamp;
use keygate_crypto::{Kek, KekId, WrappedKey};
use keygate_identity::schedule::{self, KeyTimes, Step};
use keygate_identity::{KeySet, SigningKey};
use keygate_store::{Store, StoredSigningKey};
use zeroize::Zeroizing;

use super::Ring;
use crate::ServiceError;
use crate::service::Keygate;

const LEASE: &str = "tokens.signing_keys";

fn aad(kid: &str) -> String {
    format!("keygate:signing-key:v1:{kid}")
}

fn seal(
    kek: &dyn Kek,
    key: &SigningKey,
    now: Timestamp,
    signs_from: Timestamp,
) -> Result<StoredSigningKey, ServiceError> {
    let wrapped = kek.wrap(key.pkcs8(), aad(key.kid()).as_bytes())?;
    Ok(StoredSigningKey {
        kid: key.kid().to_owned(),
        kek_id: wrapped.kek_id.to_string(),
        sealed: wrapped.sealed,
        created_at: now,
        signs_from,
    })
}

fn open(kek: &dyn Kek, stored: &StoredSigningKey) -> Result<SigningKey, ServiceError> {
    let wrapped = WrappedKey {
        kek_id: KekId::from_stored(stored.kek_id.clone()),
        sealed: stored.sealed.clone(),
    };
    let pkcs8 = Zeroizing::new(kek.unwrap(&wrapped, aad(&stored.kid).as_bytes())?);
    let key = SigningKey::from_pkcs8(&pkcs8).map_err(|_| ServiceError::SecretUnreadable)?;
    // The kid names the key material: a row whose key is another one is damaged.
    if key.kid() != stored.kid {
        return Err(ServiceError::SecretUnreadable);
    }
    Ok(key)
}

impl Keygate {
    /// Reads the stored signing keys into this node's ring; on a store without any, makes the
    /// first (two nodes starting together may each make one: both are published, and the
    /// newer signs everywhere from the next read).
    pub async fn load_signing_keys(&self) -> Result<(), ServiceError> {
        let mut stored = self.store.signing_keys().await?;
        if stored.is_empty() {
            let now = self.clock.now();
            let key = SigningKey::generate().map_err(|_| ServiceError::Random)?;
            self.store
                .add_signing_key(&seal(self.kek.as_ref(), &key, now, now)?)
                .await?;
            tracing::info!(kid = key.kid(), "made the first token signing key");
            stored = self.store.signing_keys().await?;
        }
        let mut publics = Vec::with_capacity(stored.len());
        let mut signers = Vec::with_capacity(stored.len());
        for row in &stored {
            match open(self.kek.as_ref(), row) {
                Ok(key) => {
                    publics.push(key.public_key().clone());
                    signers.push((times(row), Arc::new(key)));
                }
                Err(err) => {
                    tracing::error!(kid = %row.kid, error = %err, "a token signing key cannot be opened");
                }
            }
        }
        self.identity.set_ring(Ring {
            signers,
            keys: KeySet::new(publics),
        });
        Ok(())
    }

    /// Applies the schedule once: makes the next key when it is due, deletes keys whose tokens
    /// have all expired, then reads the keys again. Call it under the lease (or alone).
    pub async fn turn_signing_keys(&self) -> Result<(), ServiceError> {
        let stored = self.store.signing_keys().await?;
        let now = self.clock.now();
        let times: Vec<KeyTimes> = stored.iter().map(times).collect();
        for step in schedule::plan(&times, now, self.identity.settings().schedule()) {
            match step {
                Step::Create { signs_from } => {
                    let key = SigningKey::generate().map_err(|_| ServiceError::Random)?;
                    self.store
                        .add_signing_key(&seal(self.kek.as_ref(), &key, now, signs_from)?)
                        .await?;
                    tracing::info!(kid = key.kid(), signs_from = %signs_from, "published the next token signing key");
                }
                Step::Delete { kid } => {
                    self.store.delete_signing_key(&kid).await?;
                    tracing::info!(%kid, "withdrew a token signing key: its tokens have expired");
                }
            }
        }
        self.load_signing_keys().await
    }

    /// Withdraws every signing key at once and makes a new one that signs from now, for a key
    /// that may have leaked: every token issued so far stops verifying — on this node at
    /// once, on the others when they next read the keys (within `refresh`). The new key is
    /// stored before the old ones go, so there is never none. Audited as the local operator.
    pub async fn replace_signing_keys(&self) -> Result<String, ServiceError> {
        let now = self.clock.now();
        let withdrawn: Vec<String> = self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .map(|row| row.kid)
            .collect();
        let key = SigningKey::generate().map_err(|_| ServiceError::Random)?;
        self.store
            .add_signing_key(&seal(self.kek.as_ref(), &key, now, now)?)
            .await?;
        for kid in &withdrawn {
            self.store.delete_signing_key(kid).await?;
        }
        let mut audit =
            keygate_core::AuditDraft::new("local", keygate_core::AuditAction::SigningKeysReplace);
        audit.target = Some(key.kid().to_owned());
        audit.details = serde_json::json!({ "withdrawn": withdrawn });
        self.store.append_audit(&audit, now).await?;
        self.load_signing_keys().await?;
        self.identity.verified.invalidate_all();
        tracing::warn!(
            kid = key.kid(),
            withdrawn = withdrawn.len(),
            "every token signing key was replaced"
        );
        Ok(key.kid().to_owned())
    }

    /// Keeps the signing keys current until `stop`: reads them every `refresh`, and turns them
    /// over when this node holds the lease.
    pub async fn run_signing_keys(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let holder = uuid::Uuid::now_v7().to_string();
        let refresh = self
            .identity
            .settings()
            .refresh
            .max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval(refresh);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.cancelled() => return,
            }
            let now = self.clock.now();
            let until = now.saturating_add(refresh.saturating_mul(3));
            let outcome = match self.store.take_lease(LEASE, &holder, now, until).await {
                Ok(true) => self.turn_signing_keys().await,
                Ok(false) => self.load_signing_keys().await,
                Err(err) => Err(err.into()),
            };
            if let Err(err) = outcome {
                tracing::warn!(error = %err, "token signing keys could not be refreshed");
            }
        }
    }
}

fn times(row: &StoredSigningKey) -> KeyTimes {
    KeyTimes {
        kid: row.kid.clone(),
        signs_from: row.signs_from,
    }
}

/// Re-wraps every signing key not yet under `to`; returns how many moved.
pub async fn rewrap_signing_keys(
    store: &dyn Store,
    from: &dyn Kek,
    to: &dyn Kek,
) -> Result<u64, ServiceError> {
    let target = to.id().to_string();
    let mut moved = 0;
    for row in store.signing_keys().await? {
        if row.kek_id == target {
            continue;
        }
        let key = open(from, &row)?;
        let resealed = seal(to, &key, row.created_at, row.signs_from)?;
        if store
            .rewrap_signing_key(&row.kid, &row.kek_id, &resealed.kek_id, &resealed.sealed)
            .await?
        {
            moved += 1;
        }
    }
    Ok(moved)
}

/// Whether any signing key is still sealed by a KEK other than `kek`.
pub async fn signing_keys_sealed_by_other(
    store: &dyn Store,
    kek: &KekId,
) -> Result<bool, ServiceError> {
    let kek = kek.to_string();
    Ok(store
        .signing_keys()
        .await?
        .iter()
        .any(|row| row.kek_id != kek))
}
