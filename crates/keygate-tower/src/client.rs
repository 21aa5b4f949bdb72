//! keygate as a service asks it: the verify API for keys (answers cached: accepted ones for a
//! while, refused ones for a shorter while, both bounded), and for tokens the discovery
//! document and JWKS (held, refreshed every few minutes and when a token names a key not yet
//! held, at most twice a minute).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keygate_core::Scope;
use keygate_identity::{Expected, KeySet, TokenError, looks_like_jwt};
use moka::Expiry;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::{Caller, Credential, Refusal};

/// The most bytes of a credential looked at; longer ones are refused unread.
const MAX_CREDENTIAL: usize = 8 * 1024;
/// How long the published keys are held before they are fetched again.
const KEYS_REFRESH: Duration = Duration::from_secs(300);
/// How soon after a fetch an unknown `kid` may cause another.
const KEYS_REFETCH: Duration = Duration::from_secs(30);
/// How soon a fetch is tried again after an attempt.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Clock skew allowed between keygate and this service.
const LEEWAY_SECS: i64 = 30;

/// A client that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("keygate's URL must be http(s)://host[:port]: {0}")]
    BadUrl(String),
    #[error("the HTTP client could not be built: {0}")]
    Http(String),
}

/// How to reach keygate and what to accept.
#[derive(Debug)]
pub struct KeygateBuilder {
    base: String,
    audience: Option<String>,
    tokens_online: bool,
    accepted_for: Duration,
    refused_for: Duration,
    capacity: u64,
    http: Option<reqwest::Client>,
}

impl KeygateBuilder {
    /// Accept tokens issued for `audience` (this service's name), checked offline against
    /// keygate's JWKS. Without an audience, no token is accepted: one issued for keygate
    /// itself, or for another service, must not be replayed here.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Check tokens through the verify API (for the audience), like keys, rather than offline:
    /// a revoked key's tokens are then refused as soon as a cached answer lapses.
    pub fn tokens_online(mut self) -> Self {
        self.tokens_online = true;
        self
    }

    /// How long an accepted key is taken without asking again (30 seconds by default): a
    /// revocation reaches this service within that while.
    pub fn cache_accepted_for(mut self, ttl: Duration) -> Self {
        self.accepted_for = ttl;
        self
    }

    /// How long a refused key is refused without asking again (10 seconds by default).
    pub fn cache_refused_for(mut self, ttl: Duration) -> Self {
        self.refused_for = ttl;
        self
    }

    /// How many answers are cached (10,000 by default).
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// The HTTP client to reach keygate with (one trusting a private CA, say).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    pub fn build(self) -> Result<Keygate, SetupError> {
        let url =
            reqwest::Url::parse(&self.base).map_err(|_| SetupError::BadUrl(self.base.clone()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(SetupError::BadUrl(self.base));
        }
        let http = match self.http {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| SetupError::Http(e.to_string()))?,
        };
        Ok(Keygate {
            inner: Arc::new(Inner {
                http,
                base: self.base.trim_end_matches('/').to_owned(),
                audience: self.audience,
                tokens_online: self.tokens_online,
                answers: moka::future::Cache::builder()
                    .max_capacity(self.capacity)
                    .expire_after(ForItsTtl)
                    .build(),
                accepted_for: self.accepted_for,
                refused_for: self.refused_for,
                published: RwLock::new(None),
                fetched_at: Mutex::new(None),
                attempted_at: Mutex::new(None),
            }),
        })
    }
}

/// keygate, as this service asks it. Cheap to clone.
#[derive(Clone)]
pub struct Keygate {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Keygate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keygate")
            .field("base", &self.inner.base)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    base: String,
    audience: Option<String>,
    tokens_online: bool,
    /// Answers of the verify API by the SHA-256 of the credential (never the credential).
    answers: moka::future::Cache<[u8; 32], Answer>,
    accepted_for: Duration,
    refused_for: Duration,
    published: RwLock<Option<Arc<Published>>>,
    fetched_at: Mutex<Option<Instant>>,
    attempted_at: Mutex<Option<Instant>>,
}

/// keygate's issuer and published keys, as last fetched.
struct Published {
    issuer: String,
    keys: KeySet,
    fetched: Instant,
}

#[derive(Clone)]
struct Answer {
    verdict: Result<Arc<Caller>, Refusal>,
    ttl: Duration,
}

struct ForItsTtl;

impl Expiry<[u8; 32], Answer> for ForItsTtl {
    fn expire_after_create(&self, _: &[u8; 32], value: &Answer, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Keygate {
    /// A client of the keygate at `base_url` (`https://keygate.example.com`).
    pub fn builder(base_url: impl Into<String>) -> KeygateBuilder {
        KeygateBuilder {
            base: base_url.into(),
            audience: None,
            tokens_online: false,
            accepted_for: Duration::from_secs(30),
            refused_for: Duration::from_secs(10),
            capacity: 10_000,
            http: None,
        }
    }

    /// Checks a key or token.
    pub async fn authenticate(&self, credential: &str) -> Result<Caller, Refusal> {
        if credential.len() > MAX_CREDENTIAL {
            return Err(Refusal::Refused {
                code: "key_malformed".to_owned(),
            });
        }
        if !looks_like_jwt(credential) {
            return self.key(credential, None).await;
        }
        match &self.inner.audience {
            None => Err(Refusal::Refused {
                code: "token_wrong_audience".to_owned(),
            }),
            Some(audience) if self.inner.tokens_online => {
                self.key(credential, Some(audience)).await
            }
            Some(audience) => self.token(credential, audience).await,
        }
    }

    /// A key (or a token, for `audience`) through the verify API, answers cached — a
    /// token's never past its expiry.
    async fn key(&self, credential: &str, audience: Option<&str>) -> Result<Caller, Refusal> {
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        if let Some(answer) = self.inner.answers.get(&digest).await {
            return answer.verdict.map(|caller| (*caller).clone());
        }
        let verdict = self.ask(credential, audience).await?;
        let ttl = match &verdict {
            Ok(caller) => match caller.credential {
                Credential::Token { expires_at, .. } => {
                    let left = u64::try_from(expires_at.saturating_sub(now_secs())).unwrap_or(0);
                    self.inner.accepted_for.min(Duration::from_secs(left))
                }
                Credential::Key => self.inner.accepted_for,
            },
            Err(_) => self.inner.refused_for,
        };
        self.inner
            .answers
            .insert(
                digest,
                Answer {
                    verdict: verdict.clone(),
                    ttl,
                },
            )
            .await;
        verdict.map(|caller| (*caller).clone())
    }

    /// One call of the verify API. `Err` when keygate could not answer (never cached); the
    /// verdict otherwise.
    async fn ask(
        &self,
        credential: &str,
        audience: Option<&str>,
    ) -> Result<Result<Arc<Caller>, Refusal>, Refusal> {
        let response = self
            .inner
            .http
            .post(format!("{}/v1/keys/verify", self.inner.base))
            .json(&serde_json::json!({"key": credential, "audience": audience}))
            .send()
            .await
            .map_err(|err| {
                tracing::warn!(error = %err.without_url(), "keygate could not be reached");
                Refusal::Unavailable
            })?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|_| Refusal::Unavailable)?;
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(Refusal::Unavailable);
        }
        if !status.is_success() {
            let code = body["error"]["code"].as_str().unwrap_or("key_invalid");
            return Ok(Err(Refusal::Refused {
                code: code.to_owned(),
            }));
        }
        if body["valid"] != true {
            let code = body["code"].as_str().unwrap_or("key_invalid");
            return Ok(Err(Refusal::Refused {
                code: code.to_owned(),
            }));
        }
        let scopes = body["scopes"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|s| s.as_str().and_then(|s| Scope::parse(s).ok()))
                    .collect()
            })
            .unwrap_or_default();
        let credential = match body.get("token") {
            Some(token) if token.is_object() => Credential::Token {
                id: token["id"].as_str().unwrap_or_default().to_owned(),
                expires_at: token["expires_at"]
                    .as_str()
                    .and_then(keygate_core::Timestamp::parse_rfc3339)
                    .map_or(0, |at| at.as_millis().div_euclid(1000)),
            },
            _ => Credential::Key,
        };
        Ok(Ok(Arc::new(Caller {
            key_id: body["key_id"].as_str().unwrap_or_default().to_owned(),
            project: body["project"].as_str().map(str::to_owned),
            scopes,
            credential,
        })))
    }

    /// A token, offline, against keygate's published keys.
    async fn token(&self, token: &str, audience: &str) -> Result<Caller, Refusal> {
        let check = |published: &Published| {
            published.keys.verify(
                token,
                Expected {
                    issuer: &published.issuer,
                    audience,
                    now: now_secs(),
                    leeway: LEEWAY_SECS,
                },
            )
        };
        let mut verified = check(&*self.published(false).await?);
        if verified == Err(TokenError::UnknownKey) {
            // keygate may have published a key since: fetch again (rate-limited) and retry.
            verified = check(&*self.published(true).await?);
        }
        let claims = verified.map_err(|err| Refusal::Refused {
            code: match err {
                TokenError::Expired => "token_expired",
                TokenError::Audience => "token_wrong_audience",
                _ => "token_invalid",
            }
            .to_owned(),
        })?;
        // A token bound to a client certificate is for keygate's own routes, which see the
        // certificate; this layer does not.
        if claims.cnf.is_some() {
            return Err(Refusal::Refused {
                code: "token_unbound".to_owned(),
            });
        }
        let scopes =
            keygate_identity::scopes::decode(&claims.scope).map_err(|_| Refusal::Refused {
                code: "token_invalid".to_owned(),
            })?;
        Ok(Caller {
            key_id: claims.sub,
            project: None,
            scopes,
            credential: Credential::Token {
                id: claims.jti,
                expires_at: claims.exp,
            },
        })
    }

    /// keygate's issuer and keys: held ones while fresh, else fetched (`again` asks for a new
    /// fetch, granted at most twice a minute).
    async fn published(&self, again: bool) -> Result<Arc<Published>, Refusal> {
        if let Some(held) = self.inner.published.read().await.as_ref()
            && held.fetched.elapsed() < KEYS_REFRESH
            && !(again && self.may_refetch())
        {
            return Ok(held.clone());
        }
        let mut slot = self.inner.published.write().await;
        // Another request may have fetched while this one waited.
        if let Some(held) = slot.as_ref()
            && held.fetched.elapsed() < KEYS_REFETCH
        {
            return Ok(held.clone());
        }
        // A fetch that failed a moment ago is not tried again by every request.
        if !self.may_fetch_after_failure() {
            return slot.clone().ok_or(Refusal::Unavailable);
        }
        match self.fetch().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *slot = Some(fresh.clone());
                Ok(fresh)
            }
            // Keys held still verify while keygate cannot be reached.
            Err(err) => slot.clone().ok_or(err),
        }
    }

    /// Records an attempt; `false` when one was made in the last few seconds.
    fn may_fetch_after_failure(&self) -> bool {
        let mut at = self
            .inner
            .attempted_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if at.is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE) {
            return false;
        }
        *at = Some(Instant::now());
        true
    }

    fn may_refetch(&self) -> bool {
        let mut at = self
            .inner
            .fetched_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if at.is_some_and(|at| at.elapsed() < KEYS_REFETCH) {
            return false;
        }
        *at = Some(Instant::now());
        true
    }

    async fn fetch(&self) -> Result<Published, Refusal> {
        let get = |url: String| async move {
            let response = self.inner.http.get(url).send().await.map_err(|err| {
                tracing::warn!(error = %err.without_url(), "keygate's keys could not be fetched");
                Refusal::Unavailable
            })?;
            if !response.status().is_success() {
                return Err(Refusal::Unavailable);
            }
            response.bytes().await.map_err(|_| Refusal::Unavailable)
        };
        let discovery = get(format!(
            "{}/.well-known/openid-configuration",
            self.inner.base
        ))
        .await?;
        let discovery: serde_json::Value =
            serde_json::from_slice(&discovery).map_err(|_| Refusal::Unavailable)?;
        let issuer = discovery["issuer"].as_str().ok_or(Refusal::Unavailable)?;
        let jwks_uri = discovery["jwks_uri"].as_str().ok_or(Refusal::Unavailable)?;
        let keys = KeySet::from_jwks(&get(jwks_uri.to_owned()).await?).map_err(|err| {
            tracing::warn!(error = %err, "keygate's JWKS could not be read");
            Refusal::Unavailable
        })?;
        if let Ok(mut at) = self.inner.fetched_at.lock() {
            *at = Some(Instant::now());
        }
        Ok(Published {
            issuer: issuer.to_owned(),
            keys,
            fetched: Instant::now(),
        })
    }
}
