//! Identity beyond static keys: keygate's short-lived access tokens.
//!
//! A keygate key (or a token) is exchanged at `POST /oauth/token` for an EdDSA JWT whose
//! scopes are a subset of its parent's (`issue.rs`); the keys that sign them are kept sealed in
//! the store and turned over on a schedule, published ahead and kept past their last token
//! (`signing_keys.rs`); and a token is accepted wherever a key is, standing for its parent key
//! with the token's scopes (`accept.rs`). The HTTP side is `http/routes/oauth.rs`.

mod accept;
mod certificates;
mod federation;
mod issue;
mod principals;
mod signing_keys;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use keygate_identity::schedule::Schedule;
use keygate_identity::{KeySet, SigningKey};

pub use certificates::ClientCertificate;
pub use federation::{FederatedIssuer, JwksSource};
pub use issue::{ClientAuth, IssuedToken, OAuthError, TokenRequest};
pub(crate) use signing_keys::{rewrap_signing_keys, signing_keys_sealed_by_other};

/// Identity beyond static keys: `[tokens]` (how keygate's access tokens are issued),
/// `[federation.*]` (the external issuers it trusts) and `[[tls.clients]]` (what client
/// certificates may do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    /// `iss` of every token and the base of the discovery document; by default
    /// `http://<listen address>`. Set it to the URL clients reach keygate at.
    pub issuer: Option<String>,
    /// The audience keygate's own routes accept; by default the issuer.
    pub audience: Option<String>,
    /// The longest (and default) lifetime of a token.
    pub lifetime: Duration,
    /// How long one signing key signs.
    pub rotate_every: Duration,
    /// How long before it signs a new key is published.
    pub publish_ahead: Duration,
    /// How often each node reads the signing keys (and one of them turns them over).
    pub refresh: Duration,
    /// Trusted external issuers (`[federation.*]`).
    pub federation: Vec<FederatedIssuer>,
    /// What verified client certificates may do (`[[tls.clients]]`), the first matching rule
    /// deciding.
    pub certificates: Vec<keygate_identity::certificates::CertificateRule>,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            lifetime: Duration::from_secs(15 * 60),
            rotate_every: Duration::from_secs(24 * 3600),
            publish_ahead: Duration::from_secs(3600),
            refresh: Duration::from_secs(30),
            federation: Vec::new(),
            certificates: Vec::new(),
        }
    }
}

impl IdentitySettings {
    fn schedule(&self) -> Schedule {
        Schedule {
            rotate_every: self.rotate_every,
            publish_ahead: self.publish_ahead,
            max_lifetime: self.lifetime,
        }
    }
}

/// The issuer and audience in force, fixed once the server knows its address.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub issuer: Arc<str>,
    pub audience: Arc<str>,
}

/// What a node holds: the signing keys with when each starts signing, and every published
/// key.
#[derive(Debug)]
struct Ring {
    signers: Vec<(keygate_identity::schedule::KeyTimes, Arc<SigningKey>)>,
    keys: KeySet,
}

impl Ring {
    /// The key that signs at `now`, chosen when signing (not when the keys were read), so
    /// the next key takes over at its time on every node alike.
    fn signer(&self, now: keygate_core::Timestamp) -> Option<&Arc<SigningKey>> {
        let times: Vec<_> = self.signers.iter().map(|(t, _)| t.clone()).collect();
        let kid = keygate_identity::schedule::signer(&times, now).or_else(|| times.first())?;
        self.signers
            .iter()
            .find(|(t, _)| t.kid == kid.kid)
            .map(|(_, key)| key)
    }
}

/// The identity state of one node.
pub(crate) struct Identity {
    settings: RwLock<Arc<IdentitySettings>>,
    names: RwLock<Names>,
    ring: RwLock<Arc<Ring>>,
    /// Verified tokens by the SHA-256 of their text, so a token's signature is checked once.
    verified: moka::sync::Cache<[u8; 32], Arc<accept::Verified>>,
    /// The trusted external issuers and their keys.
    federation: RwLock<Arc<Vec<federation::IssuerState>>>,
    /// Federated identities' principals, kept like cached keys.
    principals: moka::sync::Cache<keygate_core::KeyId, Arc<crate::cache::CachedKey>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("names", &self.names())
            .field("verified", &self.verified.entry_count())
            .finish_non_exhaustive()
    }
}

/// How long a federated identity's principal (its project's limits with it) is kept.
const PRINCIPAL_TTL: Duration = Duration::from_secs(30);
/// How many verified tokens a node remembers.
const VERIFIED_CAPACITY: u64 = 100_000;
/// The issuer and audience before the server has an address (tests of the service layer).
const UNBOUND_ISSUER: &str = "http://keygate.invalid";

impl Default for Identity {
    fn default() -> Self {
        Self {
            settings: RwLock::new(Arc::new(IdentitySettings::default())),
            names: RwLock::new(Names {
                issuer: UNBOUND_ISSUER.into(),
                audience: UNBOUND_ISSUER.into(),
            }),
            ring: RwLock::new(Arc::new(Ring {
                signers: Vec::new(),
                keys: KeySet::default(),
            })),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .expire_after(accept::UntilExpiry)
                .build(),
            federation: RwLock::new(Arc::new(Vec::new())),
            principals: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(PRINCIPAL_TTL)
                .build(),
        }
    }
}

impl Identity {
    /// Applies `settings`, naming the issuer after `listening` (the server's own URL) when
    /// they do not.
    pub(crate) fn configure(&self, settings: IdentitySettings, listening: Option<String>) {
        let issuer: Arc<str> = match (&settings.issuer, listening) {
            (Some(issuer), _) => issuer.trim_end_matches('/').into(),
            (None, Some(url)) => url.into(),
            (None, None) => UNBOUND_ISSUER.into(),
        };
        let audience = settings
            .audience
            .as_deref()
            .map_or_else(|| issuer.clone(), Into::into);
        if let Ok(mut names) = self.names.write() {
            *names = Names { issuer, audience };
        }
        let issuers = settings
            .federation
            .iter()
            .cloned()
            .map(federation::IssuerState::new)
            .collect();
        if let Ok(mut federation) = self.federation.write() {
            *federation = Arc::new(issuers);
        }
        if let Ok(mut current) = self.settings.write() {
            *current = Arc::new(settings);
        }
        self.verified.invalidate_all();
        self.principals.invalidate_all();
    }

    pub(crate) fn names(&self) -> Names {
        self.names
            .read()
            .map(|n| n.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn settings(&self) -> Arc<IdentitySettings> {
        self.settings
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn federation(&self) -> Arc<Vec<federation::IssuerState>> {
        self.federation
            .read()
            .map(|f| f.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn ring(&self) -> Arc<Ring> {
        self.ring
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn set_ring(&self, ring: Ring) {
        match self.ring.write() {
            Ok(mut current) => *current = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
    }
}

impl super::Keygate {
    /// The JWKS document: every published signing key.
    pub fn jwks(&self) -> String {
        self.identity.ring().keys.jwks().to_owned()
    }

    /// The OpenID Connect discovery document (also RFC 8414's authorization server metadata):
    /// what keygate's token endpoint does, and where its keys are.
    pub fn openid_configuration(&self) -> serde_json::Value {
        let issuer = self.identity.names().issuer;
        let mut methods = vec!["client_secret_basic", "client_secret_post"];
        if !self.identity.settings().certificates.is_empty() {
            methods.push("tls_client_auth");
        }
        serde_json::json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/oauth/token"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "grant_types_supported": ["client_credentials", issue::TOKEN_EXCHANGE],
            "token_endpoint_auth_methods_supported": methods,
            // No authorization endpoint: no response type is served.
            "response_types_supported": ["none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "tls_client_certificate_bound_access_tokens": true,
        })
    }

    /// The issuer and audience of this node's tokens.
    pub fn token_issuer(&self) -> String {
        self.identity.names().issuer.to_string()
    }

    /// Applies the identity settings; `listening` (the server's own URL) names the issuer
    /// when they do not.
    pub fn configure_tokens(&self, settings: IdentitySettings, listening: Option<String>) {
        self.identity.configure(settings, listening);
    }
}
