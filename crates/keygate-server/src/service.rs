//! The domain operations of keygate, free of HTTP: the admin API's handlers and the CLI's
//! local commands both call these.

mod audit;
mod audit_checkpoints;
mod audit_export;
mod auth_failures;
mod bootstrap;
mod caller;
mod console_sessions;
mod credentials;
mod credits;
mod identity;
mod kek_rotation;
mod kept_responses;
mod key_policy;
mod keyring;
mod keys;
mod leaks;
mod projects;
mod quarantine;
mod replay;
mod review;
mod review_ready;
mod secret_policy;
mod secret_rotation;
mod secrets;
mod single_sign_on;
mod store_breaker;
mod tokens;
mod usage;
mod verify;
mod verify_use;

use std::sync::Arc;

use keygate_core::Clock;
use keygate_crypto::{DigestKey, Kek};
use keygate_store::Store;

use crate::ServiceError;
use crate::cache::{Invalidation, LocalInvalidation, VerifyCache};
use crate::invalidation::{InvalidationError, SharedInvalidation};
use crate::last_used::LastUsed;
use crate::usage_log::UsageLog;

pub use audit::{AuditQuery, AuditReport, verify_audit_chain};
pub use audit_checkpoints::{
    CheckpointBreak, CheckpointFile, CheckpointPolicy, CheckpointReport, checkpoint_message,
    verify_checkpoints,
};
pub use audit_export::AuditExport;
pub use bootstrap::{bootstrap, ensure_owner};
pub use caller::{Actor, Caller};
pub use console_sessions::{ConsoleRequest, ConsoleUser, SessionPolicy, SignedIn};
pub use credentials::ProjectSecrets;
pub use identity::{
    ClientAuth, ClientCertificate, FederatedIssuer, IdentitySettings, IssuedToken, JwksSource,
    OAuthError, TokenRequest,
};
pub use kek_rotation::{Pace, RewrapReport, references_other_keks, rewrap_all};
pub use kept_responses::KeptResponses;
pub use keyring::audit_public_key;
pub use keys::{CreateKey, KeyPage, KeyQuery, Rotated};
pub use leaks::{
    LeakAction, LeakLabel, LeakSettings, LeakVerdict, MAX_REPORTED_TOKENS, ReportError,
    ReportSignature,
};
pub use quarantine::Quarantine;
pub use review::{DEFAULT_UNUSED_DAYS, Finding, ProjectReview, Review};
pub use secret_rotation::{RotateSecret, SecretRotation, UpstreamCheck};
pub use secrets::{MAX_SECRET_BYTES, PutSecret, Revealed};
pub use single_sign_on::{SSO_FLOW_LIFETIME, SsoRefusal, SsoRule, SsoSettings, SsoStart};
pub use tokens::CreateToken;
pub use usage::UsageReportQuery;
pub use verify::{KeyUseWatcher, VerifyOutcome, VerifyQuery};
pub use verify_use::{Publishable, Verdict};

/// How many keys the verification cache holds.
const CACHE_CAPACITY: u64 = 100_000;
/// How long a decrypted secret value stays in memory after it was read.
const VALUE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Everything the operations need: the store, the keys that protect it, the clock and the
/// caches of the hot path.
#[derive(Debug)]
pub struct Keygate {
    store: Arc<dyn Store>,
    digest_key: DigestKey,
    kek: Arc<dyn Kek>,
    clock: Arc<dyn Clock>,
    cache: Arc<VerifyCache>,
    invalidation: Arc<dyn Invalidation>,
    /// Set when key changes are shared through Redis: its tasks run with the server.
    shared_invalidation: Option<Arc<SharedInvalidation>>,
    last_used: Arc<LastUsed>,
    usage: Arc<UsageLog>,
    /// Responses API answers of streams, waiting to be kept.
    kept_responses: Arc<KeptResponses>,
    /// Failed admin authentications per source, so a flood costs one audit row a minute.
    auth_failures: auth_failures::AuthFailureThrottle,
    /// Gateway credentials by project and secret name, decrypted (see `credentials.rs`).
    credentials: moka::sync::Cache<(keygate_core::ProjectId, String), Arc<secrecy::SecretString>>,
    /// Decrypted current values read by API keys, kept briefly (see `secrets.rs`).
    values: moka::sync::Cache<keygate_core::SecretId, Arc<(i64, secrecy::SecretString)>>,
    /// For checks of a pending secret against its upstream. Never follows redirects: a
    /// credential must not travel to a host the check did not name.
    upstream: keygate_llm::egress::Client,
    metrics: Arc<crate::metrics::Metrics>,
    /// Signs checkpoints of the audit chain (see `audit_checkpoints.rs`).
    audit_signer: Arc<keygate_crypto::AuditSigner>,
    /// Told when a replaced secret is still used (see `verify.rs`).
    key_use: std::sync::OnceLock<Arc<dyn verify::KeyUseWatcher>>,
    /// Access tokens: the signing keys and the tokens verified (see `identity.rs`).
    identity: identity::Identity,
    /// Whether the store was just found unreachable (see `store_breaker.rs`).
    store_breaker: store_breaker::StoreBreaker,
}

impl Keygate {
    /// Opens keygate on a migrated store: loads (or, on a new store, creates) the digest key
    /// sealed by `master_key`. A master key other than the one the store was sealed with is
    /// refused, naming both key ids, and nothing is overwritten.
    pub async fn open(
        store: Arc<dyn Store>,
        kek: Arc<dyn Kek>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServiceError> {
        let digest_key =
            keyring::open::<keygate_crypto::DigestKey>(store.as_ref(), kek.as_ref(), clock.now())
                .await?;
        let audit_signer = Arc::new(
            keyring::open::<keygate_crypto::AuditSigner>(store.as_ref(), kek.as_ref(), clock.now())
                .await?,
        );
        let cache = Arc::new(VerifyCache::new(CACHE_CAPACITY));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        metrics.kek_in_use(&kek.id().to_string());
        Ok(Self {
            store,
            digest_key,
            kek,
            clock,
            invalidation: Arc::new(LocalInvalidation(cache.clone())),
            shared_invalidation: None,
            cache,
            last_used: Arc::new(LastUsed::default()),
            usage: Arc::new(UsageLog::new(metrics.gateway.clone())),
            kept_responses: Arc::default(),
            metrics,
            audit_signer,
            key_use: std::sync::OnceLock::new(),
            identity: identity::Identity::default(),
            store_breaker: store_breaker::StoreBreaker::default(),
            auth_failures: auth_failures::AuthFailureThrottle::default(),
            credentials: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(VALUE_TTL)
                .build(),
            values: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(VALUE_TTL)
                .build(),
            upstream: keygate_llm::egress::Client::new(keygate_llm::egress::ClientOptions {
                connect_timeout: std::time::Duration::from_secs(5),
                idle: std::time::Duration::from_secs(20),
                total: Some(std::time::Duration::from_secs(10)),
                public_only: false,
            })
            .map_err(|_| ServiceError::HttpClientSetup)?,
        })
    }

    /// The same, with key changes shared with every node that uses the Redis at `url`; the
    /// tasks that publish and receive them run with the server ([`crate::run`]).
    /// Sets how long a key stays cached without a change notice (30 s unless set), and how
    /// long a key this node loaded keeps verifying while the store cannot be reached (10
    /// minutes unless set; zero refuses at once). Call before
    /// [`Keygate::with_shared_invalidation`], on a fresh instance.
    #[must_use]
    pub fn with_key_cache(
        mut self,
        key_ttl: std::time::Duration,
        outage_grace: std::time::Duration,
    ) -> Self {
        let cache = Arc::new(VerifyCache::with_ttls(
            CACHE_CAPACITY,
            key_ttl,
            outage_grace,
        ));
        self.invalidation = Arc::new(LocalInvalidation(cache.clone()));
        self.cache = cache;
        self
    }

    /// Whether the store answers a ping within a second (a readiness probe's usual wait),
    /// telling the store breaker: a node whose store came back closes it here too, even
    /// before a request needs it.
    pub async fn probe_store(&self) -> bool {
        let ping = tokio::time::timeout(std::time::Duration::from_secs(1), self.store.ping());
        let answered = matches!(ping.await, Ok(Ok(())));
        if answered {
            self.store_breaker.succeeded();
        } else {
            self.store_breaker.failed();
        }
        answered
    }

    pub fn with_shared_invalidation(self, url: &str) -> Result<Self, InvalidationError> {
        let shared = Arc::new(SharedInvalidation::new(url, self.cache.clone())?);
        Ok(Self {
            invalidation: shared.clone(),
            shared_invalidation: Some(shared),
            ..self
        })
    }

    /// Publishes and receives key changes until `stop`, when they are shared; else returns.
    pub async fn share_key_changes(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        if let Some(shared) = &self.shared_invalidation {
            shared.clone().run(stop).await;
        }
    }

    /// Tells `watcher` from now on when a key's replaced secret is still used; the first
    /// watcher set stays.
    pub fn watch_key_use(&self, watcher: Arc<dyn verify::KeyUseWatcher>) {
        let _ = self.key_use.set(watcher);
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The keys of the hot path, as verified last.
    pub(crate) fn cache(&self) -> &Arc<VerifyCache> {
        &self.cache
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The key-encryption key that seals what the store keeps.
    pub(crate) fn kek(&self) -> &Arc<dyn Kek> {
        &self.kek
    }

    pub fn last_used(&self) -> &Arc<LastUsed> {
        &self.last_used
    }

    pub fn usage(&self) -> &Arc<UsageLog> {
        &self.usage
    }

    /// Responses API answers waiting to be kept.
    pub fn kept_responses(&self) -> &Arc<KeptResponses> {
        &self.kept_responses
    }

    /// This server's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The states `/metrics` shows as they are now, besides the deployments' and the limits'.
    pub fn metrics_snapshot(
        &self,
        deployments: Vec<keygate_llm::DeploymentStatus>,
        limits_mode: &'static str,
    ) -> crate::metrics::Snapshot {
        crate::metrics::Snapshot {
            deployments,
            limits_mode,
            usage_pending: self.usage.pending() as u64,
            usage_dropped: self.usage.dropped_total(),
            last_used_pending: self.last_used.pending() as u64,
            invalidation_pending: self
                .shared_invalidation
                .as_ref()
                .map_or(0, |shared| shared.pending() as u64),
        }
    }
}

impl Keygate {
    /// Checks a permission; a refusal is written to the audit log before it is returned.
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        permission: keygate_core::Permission,
        project: Option<&keygate_core::ProjectId>,
        target: Option<&str>,
    ) -> Result<(), ServiceError> {
        match caller::require(caller, permission, project) {
            Ok(()) => Ok(()),
            Err(_) => Err(self.deny(caller, permission, project, target).await),
        }
    }

    /// Writes a refusal to the audit log and returns the error to report: `Forbidden`, or
    /// the store's error if the refusal could not be recorded.
    pub(crate) async fn deny(
        &self,
        caller: &Caller,
        permission: keygate_core::Permission,
        project: Option<&keygate_core::ProjectId>,
        target: Option<&str>,
    ) -> ServiceError {
        let mut draft = caller.audit(keygate_core::AuditAction::AccessDenied, project);
        draft.outcome = keygate_core::Outcome::Denied;
        draft.target = target.map(str::to_owned);
        draft.details = serde_json::json!({ "permission": format!("{permission:?}") });
        match self.store.append_audit(&draft, self.clock.now()).await {
            Ok(()) => ServiceError::Forbidden { permission },
            Err(err) => err.into(),
        }
    }
}
