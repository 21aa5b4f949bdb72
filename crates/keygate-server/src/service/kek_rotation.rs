//! KEK rotation: every data key, the digest key and the audit signing key move from the KEKs that wrap them now to
//! a new one. Values are never decrypted or re-encrypted; API keys keep verifying throughout,
//! since the digest key itself does not change. Each step skips what is already done, so an
//! interrupted rotation resumes where it stopped.

use std::collections::HashMap;
use std::time::Duration;

use keygate_core::{AuditAction, AuditDraft, Clock, SecretId};
use keygate_crypto::envelope::rewrap;
use keygate_crypto::{AuditSigner, DigestKey, Envelope, Kek, KekId, WrappedKey};
use keygate_store::{SecretRecord, Store};
use serde::Serialize;

use super::keyring;
use super::secrets::row;
use crate::ServiceError;

/// What a rotation run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RewrapReport {
    pub digest_key_rewrapped: bool,
    /// The audit signing key moved too.
    pub audit_key_rewrapped: bool,
    pub versions_rewrapped: u64,
    /// Replies kept for idempotent rotations, moved with the rest.
    pub replies_rewrapped: u64,
    /// Webhook endpoints' signing secrets, moved with the rest.
    pub webhook_secrets_rewrapped: u64,
    /// Token signing keys re-wrapped.
    pub signing_keys_rewrapped: u64,
    /// Whether work is left (the run stopped at its batch limit).
    pub remaining: bool,
}

/// How a run is paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub batch_size: u32,
    /// Stop after this many batches (resume later); `None` runs to the end.
    pub max_batches: Option<u32>,
    /// Pause between batches, to spare a busy database.
    pub pause: Duration,
}

/// Re-wraps everything under `to`. `from` must unwrap whatever wraps things now (a keyring
/// that holds the old and the new KEK). `on_batch` hears how many versions each batch moved.
pub async fn rewrap_all(
    store: &dyn Store,
    from: &dyn Kek,
    to: &dyn Kek,
    clock: &dyn Clock,
    pace: Pace,
    mut on_batch: impl FnMut(u64),
) -> Result<RewrapReport, ServiceError> {
    let target = to.id();
    let mut report = RewrapReport {
        digest_key_rewrapped: keyring::rewrap::<DigestKey>(store, from, to).await?,
        audit_key_rewrapped: keyring::rewrap::<AuditSigner>(store, from, to).await?,
        ..RewrapReport::default()
    };
    let mut secrets: HashMap<SecretId, Option<SecretRecord>> = HashMap::new();
    let mut batches = 0u32;
    loop {
        if pace.max_batches.is_some_and(|max| batches >= max) {
            report.remaining = !store
                .versions_not_wrapped_by(target.as_str(), 1)
                .await?
                .is_empty();
            break;
        }
        let versions = store
            .versions_not_wrapped_by(target.as_str(), pace.batch_size)
            .await?;
        if versions.is_empty() {
            break;
        }
        let mut moved = 0u64;
        for version in &versions {
            if !secrets.contains_key(&version.secret_id) {
                let record = store.secret(&version.secret_id).await?;
                secrets.insert(version.secret_id.clone(), record);
            }
            // A version of a secret deleted meanwhile is gone with it.
            let Some(Some(secret)) = secrets.get(&version.secret_id) else {
                continue;
            };
            let envelope = Envelope {
                dek: WrappedKey {
                    kek_id: KekId::from_stored(version.kek_id.clone()),
                    sealed: version.wrapped_dek.clone(),
                },
                sealed: version.sealed.clone(),
            };
            let moved_envelope = rewrap(from, to, &row(secret, version.version), &envelope)?;
            if store
                .rewrap_secret_version(version, target.as_str(), &moved_envelope.dek.sealed)
                .await?
            {
                moved += 1;
            }
        }
        report.versions_rewrapped += moved;
        on_batch(moved);
        batches += 1;
        if moved == 0 {
            // Nothing in a full batch could move (their secrets went away meanwhile, or
            // another run moved them): stop rather than read the same rows forever.
            report.remaining = !store
                .versions_not_wrapped_by(target.as_str(), 1)
                .await?
                .is_empty();
            break;
        }
        if !pace.pause.is_zero() {
            tokio::time::sleep(pace.pause).await;
        }
    }
    if !report.remaining {
        report.webhook_secrets_rewrapped =
            crate::alerts::rewrap_webhook_secrets(store, from, to).await?;
        report.signing_keys_rewrapped =
            super::identity::rewrap_signing_keys(store, from, to).await?;
        // Replies kept for idempotent retries move too, so a retry still gets its key.
        for entry in store.idempotency_entries(clock.now()).await? {
            if let Some(moved) = super::replay::rewrap(from, to, &entry)? {
                store.replace_idempotency_response(&entry, &moved).await?;
                report.replies_rewrapped += 1;
            }
        }
        let mut audit = AuditDraft::new("local", AuditAction::KekRotate);
        audit.details = serde_json::json!({
            "to": target.as_str(),
            "versions_rewrapped": report.versions_rewrapped,
        });
        store.append_audit(&audit, clock.now()).await?;
    }
    Ok(report)
}

/// Whether anything in the store is still wrapped by a KEK other than `kek`.
pub async fn references_other_keks(store: &dyn Store, kek: &KekId) -> Result<bool, ServiceError> {
    Ok(keyring::sealed_by_other::<DigestKey>(store, kek).await?
        || keyring::sealed_by_other::<AuditSigner>(store, kek).await?
        || crate::alerts::webhooks_sealed_by_other(store, kek).await?
        || super::identity::signing_keys_sealed_by_other(store, kek).await?
        || !store
            .versions_not_wrapped_by(kek.as_str(), 1)
            .await?
            .is_empty())
}
