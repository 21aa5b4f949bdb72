//! Signed checkpoints of the audit chain. Every so many events or minutes a node signs the
//! chain's head — its sequence number and hash — with the audit signing key (Ed25519, sealed
//! by the master key) and keeps the checkpoint in the store; the first node to sign a head
//! wins. An operator exports the checkpoints with the public key (`keygate audit checkpoints`)
//! to a place the database's holders cannot reach. Checked later against the database, that
//! copy proves the log was not rewritten after it was taken: a rewrite that recomputed every
//! hash, even with the master key and a re-signed set of checkpoints, still changes the hash at
//! the copied sequence numbers, and a checkpoint signed by any other key is refused.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keygate_core::Permission;
use keygate_crypto::AuditPublicKey;
use keygate_store::{Checkpoint, Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Caller, Keygate};
use crate::ServiceError;

/// What a checkpoint signs.
pub fn checkpoint_message(seq: i64, hash: &str) -> String {
    format!("keygate-audit-checkpoint:v1:{seq}:{hash}")
}

/// When a node signs a checkpoint: once the chain has grown by `events`, or has grown at all
/// and the last checkpoint is older than `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    pub events: i64,
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            events: 1_000,
            every: Duration::from_secs(600),
        }
    }
}

/// Checkpoints with the key that signed them: what `keygate audit checkpoints` writes and
/// `keygate audit verify --checkpoints FILE` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFile {
    pub algorithm: String,
    /// Base64 of the Ed25519 public key.
    pub public_key: String,
    pub key_id: String,
    pub checkpoints: Vec<Checkpoint>,
}

/// Why checkpoints do not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckpointBreak {
    #[error("the checkpoint at entry {seq} is not signed by the audit key {key_id}")]
    Forged { seq: i64, key_id: String },
    #[error("the log has no entry {seq}, which a checkpoint signed: entries were removed")]
    Missing { seq: i64 },
    #[error("entry {seq} differs from its signed checkpoint: the log was rewritten from there on")]
    Rewritten { seq: i64 },
}

/// The result of checking checkpoints against the log.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointReport {
    pub ok: bool,
    pub checked: u64,
    pub error: Option<CheckpointBreak>,
}

/// Checks each checkpoint's signature with `public`, and that the log still has, at its
/// sequence number, the hash it signed.
pub async fn verify_checkpoints(
    store: &dyn Store,
    public: &AuditPublicKey,
    checkpoints: &[Checkpoint],
) -> Result<CheckpointReport, StoreError> {
    let report = |checked, error: Option<CheckpointBreak>| CheckpointReport {
        ok: error.is_none(),
        checked,
        error,
    };
    let mut checked = 0u64;
    for checkpoint in checkpoints {
        let signed = STANDARD
            .decode(&checkpoint.signature)
            .is_ok_and(|signature| {
                public.verifies(
                    checkpoint_message(checkpoint.seq, &checkpoint.hash).as_bytes(),
                    &signature,
                )
            });
        if !signed || checkpoint.key_id != public.id() {
            let error = CheckpointBreak::Forged {
                seq: checkpoint.seq,
                key_id: public.id(),
            };
            return Ok(report(checked, Some(error)));
        }
        let event = store
            .audit_chain_page(checkpoint.seq - 1, checkpoint.seq, 1)
            .await?;
        let error = match event.first() {
            None => Some(CheckpointBreak::Missing {
                seq: checkpoint.seq,
            }),
            Some(event) if event.hash != checkpoint.hash => Some(CheckpointBreak::Rewritten {
                seq: checkpoint.seq,
            }),
            Some(_) => None,
        };
        if error.is_some() {
            return Ok(report(checked, error));
        }
        checked += 1;
    }
    Ok(report(checked, None))
}

impl Keygate {
    /// Signs the chain's head when `due` says so (given the last checkpoint and the head's
    /// sequence number), and keeps it; `None` when not due or another node signed it first.
    async fn sign_checkpoint(
        &self,
        due: impl Fn(Option<&Checkpoint>, i64) -> bool,
    ) -> Result<Option<Checkpoint>, ServiceError> {
        let head = self.store.audit_head().await?;
        let last = self.store.last_checkpoint().await?;
        if head.seq == 0 || last.as_ref().is_some_and(|l| l.seq >= head.seq) {
            return Ok(None);
        }
        if !due(last.as_ref(), head.seq) {
            return Ok(None);
        }
        let public = self.audit_signer.public_key();
        let signature = self
            .audit_signer
            .sign(checkpoint_message(head.seq, &head.hash).as_bytes());
        let checkpoint = Checkpoint {
            seq: head.seq,
            hash: head.hash,
            signed_at: self.clock.now(),
            key_id: public.id(),
            signature: STANDARD.encode(signature),
        };
        Ok(self
            .store
            .add_checkpoint(&checkpoint)
            .await?
            .then_some(checkpoint))
    }

    /// Signs a checkpoint of the head now (if the head moved since the last one).
    pub async fn checkpoint_audit(
        &self,
        caller: &Caller,
    ) -> Result<Option<Checkpoint>, ServiceError> {
        self.authorize(caller, Permission::AuditRead, None, None)
            .await?;
        self.sign_checkpoint(|_, _| true).await
    }

    /// Signs checkpoints as `policy` says until `stop`.
    pub async fn run_checkpoints(
        self: Arc<Self>,
        policy: CheckpointPolicy,
        stop: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(policy.every.min(Duration::from_secs(30)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.cancelled() => return,
            }
            let now = self.clock.now();
            let due = |last: Option<&Checkpoint>, head: i64| match last {
                None => true,
                Some(last) => {
                    head - last.seq >= policy.events
                        || now.as_millis() - last.signed_at.as_millis()
                            >= i64::try_from(policy.every.as_millis()).unwrap_or(i64::MAX)
                }
            };
            if let Err(err) = self.sign_checkpoint(due).await {
                tracing::warn!(error = %err, "could not sign an audit checkpoint");
            }
        }
    }

    /// The key that signs checkpoints.
    pub async fn audit_public_key(&self, caller: &Caller) -> Result<AuditPublicKey, ServiceError> {
        self.authorize(caller, Permission::AuditRead, None, None)
            .await?;
        Ok(self.audit_signer.public_key())
    }

    /// The checkpoints after `after` (at most 10,000), with the key that signed them.
    pub async fn audit_checkpoints(
        &self,
        caller: &Caller,
        after: i64,
    ) -> Result<CheckpointFile, ServiceError> {
        self.authorize(caller, Permission::AuditRead, None, None)
            .await?;
        let public = self.audit_signer.public_key();
        Ok(CheckpointFile {
            algorithm: "ed25519".to_owned(),
            public_key: public.to_base64(),
            key_id: public.id(),
            checkpoints: self.store.checkpoints(after, 10_000).await?,
        })
    }
}
