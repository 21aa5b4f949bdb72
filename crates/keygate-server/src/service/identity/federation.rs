//! Trusted external issuers at run time: their keys fetched (from the JWKS URL, the issuer's
//! discovery document, or a file) and refreshed, and each federated identity turned into the
//! principal its rule describes (see `principals.rs`), counted per identity under an id
//! derived from the issuer, the rule and the subject.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use keygate_identity::federation::{IssuerKeys, TrustedIssuer};

use super::principals::{Grant, principal_id};
use crate::ServiceError;
use crate::cache::CachedKey;
use crate::service::Keygate;

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// The `jwks_uri` of the issuer's OpenID Connect discovery document.
    Discovery,
    Url(url::Url),
    /// A JWKS document on disk (a Kubernetes cluster's, say), read again when it changes.
    File(PathBuf),
}

/// One `[federation.<name>]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIssuer {
    pub trusted: TrustedIssuer,
    pub jwks: JwksSource,
}

/// An issuer and its keys as this node holds them.
#[derive(Debug)]
pub(crate) struct IssuerState {
    pub config: FederatedIssuer,
    keys: RwLock<Arc<IssuerKeys>>,
    /// When the keys were last fetched (or the file last read), and the file's modification
    /// time then.
    fetched: Mutex<Option<(Instant, Option<SystemTime>)>>,
    /// When a fetch was last tried, successful or not: an issuer that is down is not asked
    /// again on every request.
    attempted: Mutex<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

/// How often keys are fetched again, and how soon after a fetch an unknown `kid` may cause
/// another.
const REFRESH_EVERY: Duration = Duration::from_secs(300);
const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// How soon an issuer whose keys could not be fetched at all is asked again by a request.
const RETRY_EMPTY: Duration = Duration::from_secs(5);
/// The most bytes of a JWKS or discovery document.
const MAX_DOCUMENT: usize = 256 * 1024;

impl IssuerState {
    pub(crate) fn new(config: FederatedIssuer) -> Self {
        Self {
            config,
            keys: RwLock::new(Arc::new(IssuerKeys::default())),
            fetched: Mutex::new(None),
            attempted: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn keys(&self) -> Arc<IssuerKeys> {
        self.keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn last_attempt(&self) -> Option<Instant> {
        *self
            .attempted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn last_fetch(&self) -> Option<(Instant, Option<SystemTime>)> {
        *self
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Keygate {
    /// Fetches every issuer's keys that are due (or whose file changed); a failure keeps the
    /// keys held and is logged.
    pub async fn refresh_federation_keys(&self) {
        for state in self.identity.federation().iter() {
            let due = match state.last_fetch() {
                None => true,
                Some((at, modified)) => {
                    at.elapsed() >= REFRESH_EVERY
                        || matches!(&state.config.jwks, JwksSource::File(path)
                            if file_modified(path) != modified)
                }
            };
            if due {
                let _one_at_a_time = state.fetching.lock().await;
                if let Err(err) = self.fetch_issuer_keys(state).await {
                    tracing::warn!(issuer = %state.config.trusted.name, error = %err, "the keys of a trusted issuer could not be fetched");
                }
            }
        }
    }

    /// Keeps the trusted issuers' keys fresh until `stop`.
    pub async fn run_federation_keys(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        if self.identity.federation().is_empty() {
            return;
        }
        let mut ticker = tokio::time::interval(Duration::from_secs(10));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.cancelled() => return,
            }
            self.refresh_federation_keys().await;
        }
    }

    /// The issuer's keys, fetched first when none are held, or when `kid` is unknown and the
    /// last attempt is old enough (the issuer may have turned its keys over). One fetch runs
    /// at a time; a request that waited for one looks at its keys before fetching again.
    pub(super) async fn issuer_keys(
        &self,
        state: &IssuerState,
        kid: Option<&str>,
    ) -> Arc<IssuerKeys> {
        let wanted = |keys: &IssuerKeys| !keys.is_empty() && kid.is_none_or(|kid| keys.knows(kid));
        let keys = state.keys();
        if wanted(&keys) {
            return keys;
        }
        let _one_at_a_time = state.fetching.lock().await;
        let keys = state.keys();
        if wanted(&keys) {
            return keys;
        }
        let wait = if keys.is_empty() {
            RETRY_EMPTY
        } else {
            REFETCH_AFTER
        };
        if state.last_attempt().is_none_or(|at| at.elapsed() >= wait)
            && let Err(err) = self.fetch_issuer_keys(state).await
        {
            tracing::warn!(issuer = %state.config.trusted.name, error = %err, "the keys of a trusted issuer could not be fetched");
        }
        state.keys()
    }

    /// Fetches the keys; the caller holds `state.fetching`.
    async fn fetch_issuer_keys(&self, state: &IssuerState) -> Result<(), String> {
        *state
            .attempted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        let (document, modified) = match &state.config.jwks {
            JwksSource::File(path) => {
                let modified = file_modified(path);
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|err| format!("{}: {err}", path.display()))?;
                (bytes, modified)
            }
            JwksSource::Url(url) => (self.fetch_document(url).await?, None),
            JwksSource::Discovery => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    state.config.trusted.issuer.trim_end_matches('/')
                );
                let url = url::Url::parse(&discovery).map_err(|e| e.to_string())?;
                let document: serde_json::Value =
                    serde_json::from_slice(&self.fetch_document(&url).await?)
                        .map_err(|_| "the discovery document is not JSON".to_owned())?;
                // OpenID Connect Discovery §4.3: the document is the issuer's own.
                if document["issuer"].as_str() != Some(state.config.trusted.issuer.as_str()) {
                    return Err("the discovery document names another issuer".to_owned());
                }
                let jwks = document["jwks_uri"]
                    .as_str()
                    .and_then(|u| url::Url::parse(u).ok())
                    .ok_or("the discovery document names no jwks_uri")?;
                (self.fetch_document(&jwks).await?, None)
            }
        };
        *state
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), modified));
        let keys = IssuerKeys::from_jwks(&document).map_err(|err| err.to_string())?;
        tracing::debug!(issuer = %state.config.trusted.name, keys = keys.len(), "fetched a trusted issuer's keys");
        match state.keys.write() {
            Ok(mut held) => *held = Arc::new(keys),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(keys),
        }
        Ok(())
    }

    /// A `GET` through the egress client (no redirects, bounded), as JSON bytes.
    async fn fetch_document(&self, url: &url::Url) -> Result<Vec<u8>, String> {
        use keygate_llm::egress::{Body, Request, uri};
        let mut request = Request::new(
            axum::http::Method::GET,
            uri(url).map_err(|_| format!("{url} cannot be reached"))?,
            Body::empty(),
        );
        request.header(
            axum::http::header::ACCEPT,
            axum::http::HeaderValue::from_static("application/json"),
        );
        let response = self
            .upstream
            .send(request)
            .await
            .map_err(|_| format!("{url} could not be reached"))?;
        if !response.status.is_success() {
            return Err(format!("{url} answered {}", response.status.as_u16()));
        }
        response
            .read(MAX_DOCUMENT)
            .await
            .map(|bytes| bytes.to_vec())
            .map_err(|_| format!("{url} sent a body that could not be read (or over 256 KiB)"))
    }

    /// The principal of a federated identity: its rule's project, scopes and limits.
    pub(super) async fn federated_principal(
        &self,
        issuer: usize,
        rule: usize,
        subject: &str,
    ) -> Result<Option<Arc<CachedKey>>, ServiceError> {
        let federation = self.identity.federation();
        let Some(state) = federation.get(issuer) else {
            return Ok(None);
        };
        let trusted = &state.config.trusted;
        let Some(rule) = trusted.rules.get(rule) else {
            return Ok(None);
        };
        // One principal per rule: a subject two rules take (two workflows of one repository)
        // gets each rule's project and limits, never the other's.
        let id = principal_id("fed", &[&trusted.name, &rule.name, subject]);
        let grant = Grant {
            project: &rule.project,
            scopes: &rule.scopes,
            limits: &rule.limits,
        };
        let made_by = keygate_identity::FederatedSubject {
            issuer: trusted.name.clone(),
            rule: rule.name.clone(),
            sub: subject.to_owned(),
        };
        self.rule_principal(id, made_by, grant).await
    }
}

fn file_modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
