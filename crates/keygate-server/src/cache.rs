//! The verification cache: the hot path of every authenticated request reads only memory.
//!
//! Two maps: digest → key id (immutable once known; `None` caches an unknown digest for a
//! minute), and key id → the key with its live secrets. A change to a key invalidates its
//! entry by id, so revoke, rotate, update and delete take effect at once on this node; with
//! Redis, [`crate::invalidation`] carries the change to the other nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keygate_core::{KeyId, KeyLimits, KeyRecord, KeySecret};
use keygate_crypto::KeyDigest;
use moka::Expiry;
use moka::sync::Cache;

/// A key and its secrets that are current or in their grace period.
#[derive(Debug)]
pub struct CachedKey {
    pub record: KeyRecord,
    pub secrets: Vec<KeySecret>,
    /// The limits of the key's project, counted for all its keys together.
    pub project_limits: KeyLimits,
    /// Set when an access token stands for the key: `record` is then the key's with the
    /// token's scopes, and `secrets` is empty.
    pub token: Option<TokenFacts>,
    /// Set for a principal made by a rule rather than stored — a federated identity, a client
    /// certificate's principal: it exists only in memory (no last use is written for it), and a
    /// token issued to it names the rule.
    pub made_by: Option<keygate_identity::FederatedSubject>,
    loaded_at: Instant,
}

/// The token a verification accepted in its parent key's stead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    pub jti: String,
    pub expires_at: keygate_core::Timestamp,
}

/// How soon a cached key may be reloaded because it did not know a presented digest.
const RELOAD_AFTER: Duration = Duration::from_secs(1);

impl CachedKey {
    pub fn new(record: KeyRecord, secrets: Vec<KeySecret>) -> Self {
        Self {
            record,
            secrets,
            project_limits: KeyLimits::default(),
            token: None,
            made_by: None,
            loaded_at: Instant::now(),
        }
    }

    /// A principal that exists only in memory, made by `rule`.
    pub fn made_by(mut self, rule: keygate_identity::FederatedSubject) -> Self {
        self.made_by = Some(rule);
        self
    }

    /// Whether a stored key stands behind this one (its last use can be written).
    pub fn is_stored(&self) -> bool {
        self.made_by.is_none()
    }

    /// The key as a token presents it: the same key (its limits, usage and state) with the
    /// token's scopes that the key still covers — a scope taken from the key since the token
    /// was issued is gone from its tokens too.
    pub fn token_view(
        parent: &CachedKey,
        scopes: Vec<keygate_core::Scope>,
        token: TokenFacts,
    ) -> Self {
        let mut record = parent.record.clone();
        record.scopes = scopes
            .into_iter()
            .filter(|scope| parent.record.scopes.iter().any(|held| held.covers(scope)))
            .collect();
        Self {
            record,
            secrets: Vec::new(),
            project_limits: parent.project_limits.clone(),
            token: Some(token),
            made_by: parent.made_by.clone(),
            loaded_at: parent.loaded_at,
        }
    }

    pub fn with_project_limits(mut self, limits: KeyLimits) -> Self {
        self.project_limits = limits;
        self
    }

    /// The live secret with this digest, compared in constant time.
    pub fn secret(&self, digest: &KeyDigest) -> Option<&KeySecret> {
        self.secrets
            .iter()
            .find(|s| KeyDigest::from_slice(&s.digest).is_some_and(|d| d.ct_eq(digest)))
    }

    pub fn may_reload(&self) -> bool {
        self.loaded_at.elapsed() >= RELOAD_AFTER
    }
}

/// How long a known key stays cached without a change notice, unless configured. It bounds
/// staleness when a change made on another node does not reach this one (no Redis, or Redis
/// unreachable).
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(30);
const KNOWN_DIGEST_TTL: Duration = Duration::from_secs(3600);
const UNKNOWN_DIGEST_TTL: Duration = Duration::from_secs(60);

struct DigestExpiry;

impl Expiry<[u8; 32], Option<KeyId>> for DigestExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Option<KeyId>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if value.is_some() {
            KNOWN_DIGEST_TTL
        } else {
            UNKNOWN_DIGEST_TTL
        })
    }
}

pub struct VerifyCache {
    digests: Cache<[u8; 32], Option<KeyId>>,
    keys: Cache<KeyId, Arc<CachedKey>>,
    /// Each key as last loaded, kept for the outage grace: what this node may go on accepting
    /// while the store cannot be reached (see [`VerifyCache::kept_key`]).
    kept: Cache<KeyId, Arc<CachedKey>>,
    /// Bumped by every invalidation, so a load that raced one is not cached.
    epoch: AtomicU64,
}

impl std::fmt::Debug for VerifyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyCache")
            .field("digests", &self.digests.entry_count())
            .field("keys", &self.keys.entry_count())
            .finish()
    }
}

/// How long a key this node loaded keeps verifying while the store is unreachable.
pub const DEFAULT_OUTAGE_GRACE: Duration = Duration::from_secs(600);

impl VerifyCache {
    pub fn new(capacity: u64) -> Self {
        Self::with_ttls(capacity, DEFAULT_KEY_TTL, DEFAULT_OUTAGE_GRACE)
    }

    /// A cache that keeps a key `key_ttl` without a change notice, and whose keys go on
    /// verifying for `grace` after they were last loaded while the store cannot be reached
    /// (none at all with a grace of zero).
    pub fn with_ttls(capacity: u64, key_ttl: Duration, grace: Duration) -> Self {
        Self {
            kept: Cache::builder()
                .max_capacity(if grace.is_zero() { 0 } else { capacity })
                .time_to_live(grace.max(Duration::from_millis(1)))
                .build(),
            digests: Cache::builder()
                .max_capacity(capacity * 2)
                .expire_after(DigestExpiry)
                .build(),
            keys: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(key_ttl)
                .build(),
            epoch: AtomicU64::new(0),
        }
    }

    /// `Some(None)` for a digest known to be unknown.
    pub fn key_id(&self, digest: &[u8; 32]) -> Option<Option<KeyId>> {
        self.digests.get(digest)
    }

    pub fn key(&self, id: &KeyId) -> Option<Arc<CachedKey>> {
        self.keys.get(id)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn remember_digest(&self, digest: [u8; 32], id: Option<KeyId>) {
        self.digests.insert(digest, id);
    }

    /// Caches a key loaded when the epoch was `loaded_at`. If an invalidation happened since
    /// (even between this check and the insert), the entry is dropped again.
    pub fn remember_key(&self, key: Arc<CachedKey>, loaded_at: u64) {
        let id = key.record.id.clone();
        self.keys.insert(id.clone(), key.clone());
        self.kept.insert(id.clone(), key);
        if self.epoch() != loaded_at {
            self.keys.invalidate(&id);
            self.kept.invalidate(&id);
        }
    }

    /// The key as this node last loaded it, if that was within the outage grace: accepted
    /// while the store is unreachable. A key changed since (a change notice reached this
    /// node) is not kept.
    pub fn kept_key(&self, id: &KeyId) -> Option<Arc<CachedKey>> {
        self.kept.get(id)
    }

    pub fn invalidate(&self, id: &KeyId) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.keys.invalidate(id);
        self.kept.invalidate(id);
    }

    /// Forgets every cached key, for when change notices may have been missed. Digest → key
    /// id entries stay: a digest names one key for good, and an unknown digest only refuses.
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.keys.invalidate_all();
        self.kept.invalidate_all();
    }
}

/// Tells caches that a key changed: [`LocalInvalidation`] on one node, and
/// [`crate::invalidation::SharedInvalidation`] on every node that shares a Redis.
pub trait Invalidation: Send + Sync + std::fmt::Debug {
    fn key_changed(&self, id: &KeyId);
    /// Something any cached key may carry changed (a project's limits): every cache forgets
    /// every key.
    fn everything_changed(&self);
}

/// Announces a key change when dropped: after the store call that made it, and also when the
/// request is cancelled mid-way, after the change may already have committed.
pub(crate) struct InvalidateOnDrop<'a> {
    invalidation: &'a dyn Invalidation,
    id: &'a KeyId,
}

impl<'a> InvalidateOnDrop<'a> {
    pub(crate) fn new(invalidation: &'a dyn Invalidation, id: &'a KeyId) -> Self {
        Self { invalidation, id }
    }
}

impl Drop for InvalidateOnDrop<'_> {
    fn drop(&mut self) {
        self.invalidation.key_changed(self.id);
    }
}

/// Invalidation on this node only.
#[derive(Debug, Clone)]
pub struct LocalInvalidation(pub Arc<VerifyCache>);

impl Invalidation for LocalInvalidation {
    fn key_changed(&self, id: &KeyId) {
        self.0.invalidate(id);
    }

    fn everything_changed(&self) {
        self.0.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use keygate_core::{KeyEnv, KeyHint, KeySpec, OrgId, ProjectId, Timestamp};

    use super::*;

    fn cached() -> Arc<CachedKey> {
        let spec = KeySpec::api(
            OrgId::generate(),
            ProjectId::generate(),
            "k".into(),
            KeyEnv::Live,
        );
        let record = KeyRecord::issue(
            spec,
            KeyHint::from_stored("kg_live_abcd…wxyz".into()),
            Timestamp::from_millis(0),
        );
        Arc::new(CachedKey::new(record, Vec::new()))
    }

    #[test]
    fn keys_are_kept_for_an_outage_until_they_change() {
        let cache = VerifyCache::with_ttls(10, Duration::from_millis(1), Duration::from_secs(60));
        let key = cached();
        let id = key.record.id.clone();
        cache.remember_key(key, cache.epoch());
        std::thread::sleep(Duration::from_millis(20));
        assert!(cache.key(&id).is_none(), "past the key cache's time");
        assert!(cache.kept_key(&id).is_some(), "kept for an outage");
        cache.invalidate(&id);
        assert!(cache.kept_key(&id).is_none(), "a changed key is not kept");
        let none = VerifyCache::with_ttls(10, Duration::from_secs(30), Duration::ZERO);
        let key = cached();
        let id = key.record.id.clone();
        none.remember_key(key, none.epoch());
        none.kept.run_pending_tasks();
        assert!(none.kept_key(&id).is_none(), "no grace, nothing kept");
    }

    #[test]
    fn invalidate_all_forgets_every_key_and_refuses_loads_begun_before() {
        let cache = VerifyCache::new(100);
        let (a, b) = (cached(), cached());
        cache.remember_key(a.clone(), cache.epoch());
        cache.remember_key(b.clone(), cache.epoch());
        let digest = [7; 32];
        cache.remember_digest(digest, Some(a.record.id.clone()));
        // A load that read the store before the clear must not land after it.
        let loading_since = cache.epoch();

        cache.invalidate_all();

        assert!(cache.key(&a.record.id).is_none());
        assert!(cache.key(&b.record.id).is_none());
        cache.remember_key(cached(), loading_since);
        assert_eq!(cache.keys.iter().count(), 0, "a racing load is dropped");
        assert_eq!(
            cache.key_id(&digest),
            Some(Some(a.record.id.clone())),
            "digest → id mappings never go stale and stay"
        );
        cache.remember_key(a.clone(), cache.epoch());
        assert!(cache.key(&a.record.id).is_some(), "later loads are cached");
    }
}
