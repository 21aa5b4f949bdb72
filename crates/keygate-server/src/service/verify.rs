//! Verification: the hot path. A cache hit costs a parse, an HMAC and two map lookups.

use std::net::IpAddr;
use std::sync::Arc;

use keygate_core::KeyId;
use keygate_core::scope::any_grants;
use keygate_core::{
    ApiKey, AuditAction, AuditDraft, KeyKind, KeyLimits, KeyRejection, KeyStatus, Outcome,
    Principal,
};
use keygate_crypto::KeyDigest;

use super::Keygate;
use crate::ServiceError;
use crate::cache::CachedKey;

/// A verification request from a service that is not behind the gateway. `key` is a keygate
/// key or a keygate access token.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyQuery<'a> {
    pub key: &'a str,
    /// A permission the key must grant through one of its scopes.
    pub permission: Option<&'a str>,
    /// The address of the end client, checked against the key's allow-list.
    pub ip: Option<IpAddr>,
    /// The audience a token must name; keygate's own when `None`.
    pub audience: Option<&'a str>,
    /// The SHA-256 thumbprint (`x5t#S256`) of the client certificate of the connection, which
    /// a certificate-bound token must match.
    pub certificate: Option<&'a str>,
}

/// Something told when a key's replaced secret is still used (the anomaly detectors).
pub trait KeyUseWatcher: Send + Sync + std::fmt::Debug {
    fn old_secret_used(
        &self,
        key: &keygate_core::KeyRecord,
        secret: &keygate_core::KeySecret,
        now: keygate_core::Timestamp,
        ip: Option<IpAddr>,
    );
}

/// The verdict, with the key when it is known (even if refused, to help debugging).
#[derive(Debug, Clone)]
pub enum VerifyOutcome {
    Valid(Arc<CachedKey>),
    Invalid(KeyRejection, Option<Arc<CachedKey>>),
}

impl Keygate {
    /// Verifies an API key. Storage trouble on a cache miss is an error, never a pass.
    pub async fn verify(&self, query: VerifyQuery<'_>) -> Result<VerifyOutcome, ServiceError> {
        let outcome = self.check(query).await?;
        self.metrics.keys.verified(match &outcome {
            VerifyOutcome::Valid(_) => "valid",
            VerifyOutcome::Invalid(rejection, _) => rejection.code(),
        });
        Ok(outcome)
    }

    /// The verification, uncounted: [`Keygate::verify`] and the verify API count their own
    /// verdicts.
    pub(super) async fn check(
        &self,
        query: VerifyQuery<'_>,
    ) -> Result<VerifyOutcome, ServiceError> {
        let authenticated = if keygate_identity::looks_like_jwt(query.key) {
            self.accept_token(query.key, query.audience, query.certificate)
                .await?
        } else {
            self.authenticate(query.key, KeyKind::Api, query.ip).await?
        };
        let cached = match authenticated {
            Ok(cached) => cached,
            Err((rejection, cached)) => return Ok(VerifyOutcome::Invalid(rejection, cached)),
        };
        if !cached.record.allows_ip(query.ip) {
            return Ok(VerifyOutcome::Invalid(
                KeyRejection::IpNotAllowed,
                Some(cached),
            ));
        }
        if let Some(permission) = query.permission
            && !any_grants(&cached.record.scopes, permission)
        {
            return Ok(VerifyOutcome::Invalid(
                KeyRejection::PermissionDenied,
                Some(cached),
            ));
        }
        // A principal made by a rule has no stored key whose last use could be written.
        if cached.is_stored() {
            let now = self.clock.now();
            self.last_used.record(&cached.record.id, now);
            if query.permission.is_some_and(keygate_core::is_write) {
                self.last_used.record_write(&cached.record.id, now);
            }
        }
        Ok(VerifyOutcome::Valid(cached))
    }

    /// Authenticates an admin token and returns its principal.
    pub async fn authenticate_admin(
        &self,
        token: &str,
    ) -> Result<Result<Principal, (KeyRejection, Option<Arc<CachedKey>>)>, ServiceError> {
        let cached = match self.authenticate(token, KeyKind::Admin, None).await? {
            Ok(cached) => cached,
            Err(failure) => return Ok(Err(failure)),
        };
        let record = &cached.record;
        let Some(role) = record.role else {
            return Ok(Err((KeyRejection::Invalid, None)));
        };
        self.last_used.record(&record.id, self.clock.now());
        Ok(Ok(Principal {
            actor: record.id.to_string(),
            role,
            binding: record.binding(),
        }))
    }

    /// Parses, digests and checks a key of the given kind. A key of the other kind is
    /// simply invalid here, so that API keys and admin tokens never stand in for each other.
    async fn authenticate(
        &self,
        text: &str,
        kind: KeyKind,
        ip: Option<IpAddr>,
    ) -> Result<Result<Arc<CachedKey>, (KeyRejection, Option<Arc<CachedKey>>)>, ServiceError> {
        let Ok(key) = ApiKey::parse(text) else {
            return Ok(Err((KeyRejection::Malformed, None)));
        };
        let digest = self.digest_key.digest(key.expose());
        let found = match kind {
            // Admin tokens are read from the store on every request: the admin API is not the
            // hot path, and a revoked token must stop at once on every node.
            KeyKind::Admin => self.fresh_key(&digest).await?,
            KeyKind::Api => self.cached_key(&digest).await?,
        };
        let Some(cached) = found else {
            return Ok(Err((KeyRejection::Invalid, None)));
        };
        if cached.record.kind != kind {
            return Ok(Err((KeyRejection::Invalid, None)));
        }
        let now = self.clock.now();
        let rejection = match cached.record.status(now) {
            KeyStatus::Deleted => Some(KeyRejection::Invalid),
            KeyStatus::Revoked => Some(KeyRejection::Revoked),
            KeyStatus::Suspended => Some(KeyRejection::Suspended),
            KeyStatus::Expired => Some(KeyRejection::Expired),
            KeyStatus::Active => match cached.secret(&digest) {
                None => Some(KeyRejection::Rotated),
                Some(secret) => {
                    let refused = cached.record.check(secret, now).err();
                    // A replaced secret still accepted: worth a look late in its grace.
                    if refused.is_none()
                        && secret.grace_until.is_some()
                        && let Some(watcher) = self.key_use.get()
                    {
                        watcher.old_secret_used(&cached.record, secret, now, ip);
                    }
                    refused
                }
            },
        };
        Ok(match rejection {
            None => Ok(cached),
            Some(KeyRejection::Invalid) => Err((KeyRejection::Invalid, None)),
            Some(rejection) => Err((rejection, Some(cached))),
        })
    }

    /// The id of the key a digest belongs to, from memory when possible.
    async fn digest_owner(&self, digest: &KeyDigest) -> Result<Option<KeyId>, ServiceError> {
        let bytes = *digest.as_bytes();
        if let Some(known) = self.cache.key_id(&bytes) {
            return Ok(known);
        }
        let owner = self
            .guarded(async { Ok(self.store.key_by_digest(&bytes).await?) })
            .await?
            .map(|(record, _)| record.id);
        // A digest's owner never changes, and an unknown digest is remembered for a minute.
        self.cache.remember_digest(bytes, owner.clone());
        Ok(owner)
    }

    /// The key and its live secrets, read from the store, with its project's limits. An
    /// admin token is never limited, so its project (if it has one) is not read.
    async fn load_key(&self, id: &KeyId) -> Result<Option<CachedKey>, ServiceError> {
        let Some(record) = self.store.key(id).await? else {
            return Ok(None);
        };
        let secrets = self.store.live_secrets(id, self.clock.now()).await?;
        let project_limits = match (&record.kind, &record.project_id) {
            (KeyKind::Api, Some(project)) => self
                .store
                .project(project)
                .await?
                .map(|p| p.limits)
                .unwrap_or_default(),
            _ => KeyLimits::default(),
        };
        Ok(Some(
            CachedKey::new(record, secrets).with_project_limits(project_limits),
        ))
    }

    /// A key by its id, from memory when possible (a token names its parent by id).
    pub(super) async fn key_by_id(
        &self,
        id: &KeyId,
    ) -> Result<Option<Arc<CachedKey>>, ServiceError> {
        if let Some(cached) = self.cache.key(id) {
            self.metrics.keys.looked_up(true);
            return Ok(Some(cached));
        }
        self.metrics.keys.looked_up(false);
        let epoch = self.cache.epoch();
        self.load_or_keep(id, epoch).await
    }

    /// The key from the store, cached; while the store cannot be reached, as this node last
    /// loaded it within the outage grace — not cached again, so the grace runs from the last
    /// load — else the store's error.
    async fn load_or_keep(
        &self,
        id: &KeyId,
        epoch: u64,
    ) -> Result<Option<Arc<CachedKey>>, ServiceError> {
        match self.guarded(self.load_key(id)).await {
            Ok(Some(loaded)) => {
                let loaded = Arc::new(loaded);
                self.cache.remember_key(loaded.clone(), epoch);
                Ok(Some(loaded))
            }
            Ok(None) => Ok(None),
            Err(ServiceError::StoreUnavailable) => match self.cache.kept_key(id) {
                Some(kept) => {
                    self.metrics.keys.kept_in_outage();
                    Ok(Some(kept))
                }
                None => Err(ServiceError::StoreUnavailable),
            },
            Err(err) => Err(err),
        }
    }

    /// A store call on a request's path: refused at once while the store was just found
    /// unreachable, and telling the breaker how it went.
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        if self.store_breaker.refuses() {
            return Err(ServiceError::StoreUnavailable);
        }
        let outcome = call.await;
        match &outcome {
            Err(ServiceError::StoreUnavailable) => self.store_breaker.failed(),
            _ => self.store_breaker.succeeded(),
        }
        outcome
    }

    /// The key behind a digest, straight from the store.
    async fn fresh_key(&self, digest: &KeyDigest) -> Result<Option<Arc<CachedKey>>, ServiceError> {
        self.guarded(async {
            let Some((record, _)) = self.store.key_by_digest(digest.as_bytes()).await? else {
                return Ok(None);
            };
            Ok(self.load_key(&record.id).await?.map(Arc::new))
        })
        .await
    }

    /// The key behind a digest, from memory when possible. A cached key that does not know
    /// the digest may predate a rotation made on another node: it is reloaded, at most once
    /// a second, so that a rotated-out secret cannot turn every request into a store read.
    async fn cached_key(&self, digest: &KeyDigest) -> Result<Option<Arc<CachedKey>>, ServiceError> {
        let Some(id) = self.digest_owner(digest).await? else {
            return Ok(None);
        };
        if let Some(cached) = self.cache.key(&id)
            && (cached.secret(digest).is_some() || !cached.may_reload())
        {
            self.metrics.keys.looked_up(true);
            return Ok(Some(cached));
        }
        self.metrics.keys.looked_up(false);
        let epoch = self.cache.epoch();
        self.load_or_keep(&id, epoch).await
    }

    /// Records a keygate key seen in a URL query string: a likely leak into logs and
    /// browser history. Names the key (by id) when it is one of ours.
    pub async fn record_key_in_query(
        &self,
        candidate: &str,
        path: &str,
        client_ip: Option<String>,
        request_id: Option<String>,
    ) -> Result<(), ServiceError> {
        let known = match ApiKey::parse(candidate) {
            Ok(key) => {
                self.cached_key(&self.digest_key.digest(key.expose()))
                    .await?
            }
            Err(_) => None,
        };
        let mut draft = AuditDraft::new("anonymous", AuditAction::KeyInQuery);
        draft.outcome = Outcome::Denied;
        draft.client_ip = client_ip;
        draft.request_id = request_id;
        if let Some(known) = &known {
            draft.org_id = Some(known.record.org_id.to_string());
            draft.project_id = known.record.project_id.as_ref().map(ToString::to_string);
            draft.target = Some(known.record.id.to_string());
        }
        draft.details = serde_json::json!({ "path": path, "known_key": known.is_some() });
        self.store.append_audit(&draft, self.clock.now()).await?;
        Ok(())
    }
}
