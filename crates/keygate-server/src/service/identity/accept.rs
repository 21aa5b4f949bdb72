//! A token presented where a key is expected: one of keygate's, or a trusted issuer's.
//! Verified once (its signature checked against the published keys, then remembered by its
//! digest until it expires), then checked on every use against what stands behind it as it
//! stands — a revoked, suspended, expired or deleted parent key stops its tokens at once, as its
//! change reaches this node's cache.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keygate_core::{KeyId, KeyKind, KeyRejection, KeyStatus, Scope, Timestamp};
use keygate_identity::federation::{FederationError, peek_issuer, peek_kid};
use keygate_identity::{Audience, Expected, FederatedSubject, TokenError};
use moka::Expiry;
use sha2::{Digest, Sha256};

use crate::ServiceError;
use crate::cache::{CachedKey, TokenFacts};
use crate::service::Keygate;

/// Who a verified token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A keygate key, by id.
    Key(KeyId),
    /// A federated identity: an issuer and a rule (by position in the configuration) and the
    /// subject the issuer vouched for.
    Federated {
        issuer: usize,
        rule: usize,
        subject: String,
    },
    /// A client certificate's principal: its rule (by position) and the name it matched.
    Certificate { rule: usize, name: String },
}

/// A token whose signature, issuer and times were checked.
pub(crate) struct Verified {
    holder: Holder,
    scopes: Vec<Scope>,
    audience: Audience,
    /// `exp`, in seconds since the epoch.
    exp: i64,
    jti: String,
    /// The certificate thumbprint the token is bound to.
    bound_to: Option<String>,
    /// What stands behind the token as last seen, and the token's view of it, rebuilt when
    /// that changes.
    view: Mutex<Option<(Arc<CachedKey>, Arc<CachedKey>)>>,
}

/// Nodes' clocks may differ by this much for `nbf` and `iat`.
const LEEWAY_SECS: i64 = 30;
/// The longest a verified token is remembered, whatever its `exp` says.
const LONGEST_KEPT: Duration = Duration::from_secs(24 * 3600);

/// Forgets a verified token when it expires (by the system clock; every use checks `exp`
/// against keygate's clock as well).
pub(crate) struct UntilExpiry;

impl Expiry<[u8; 32], Arc<Verified>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Verified>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let left = u64::try_from(value.exp).unwrap_or(0).saturating_sub(now);
        Some(Duration::from_secs(left).clamp(Duration::from_secs(1), LONGEST_KEPT))
    }
}

type Accepted = Result<Arc<CachedKey>, (KeyRejection, Option<Arc<CachedKey>>)>;

fn rejection(err: TokenError) -> KeyRejection {
    match err {
        TokenError::Expired => KeyRejection::TokenExpired,
        TokenError::Audience => KeyRejection::TokenAudience,
        _ => KeyRejection::TokenInvalid,
    }
}

impl Keygate {
    /// Verifies an access token for `audience` (keygate's own when `None`), presented over a
    /// connection with the client certificate whose thumbprint is `certificate`.
    pub(crate) async fn accept_token(
        &self,
        token: &str,
        audience: Option<&str>,
        certificate: Option<&str>,
    ) -> Result<Accepted, ServiceError> {
        let verified = match self.verified_token(token, audience).await {
            Ok(verified) => verified,
            Err(err) => return Ok(Err((rejection(err), None))),
        };
        let now = self.clock.now();
        let names = self.identity.names();
        let audience = audience.unwrap_or(&names.audience);
        if !verified.audience.contains(audience) {
            return Ok(Err((KeyRejection::TokenAudience, None)));
        }
        if verified.exp.saturating_mul(1000) <= now.as_millis() {
            return Ok(Err((KeyRejection::TokenExpired, None)));
        }
        let behind = match &verified.holder {
            Holder::Key(id) => self.key_by_id(id).await?,
            Holder::Federated {
                issuer,
                rule,
                subject,
            } => self.federated_principal(*issuer, *rule, subject).await?,
            Holder::Certificate { rule, name } => self.certificate_principal(*rule, name).await?,
        };
        let Some(behind) = behind else {
            return Ok(Err((KeyRejection::Invalid, None)));
        };
        let refused = match behind.record.status(now) {
            KeyStatus::Deleted => Some(KeyRejection::Invalid),
            KeyStatus::Revoked => Some(KeyRejection::Revoked),
            KeyStatus::Suspended => Some(KeyRejection::Suspended),
            KeyStatus::Expired => Some(KeyRejection::Expired),
            KeyStatus::Active => None,
        };
        if let Some(refused) = refused {
            return Ok(Err((refused, Some(behind))));
        }
        if behind.record.kind != KeyKind::Api || behind.record.is_publishable() {
            return Ok(Err((KeyRejection::TokenInvalid, None)));
        }
        // A certificate-bound token (RFC 8705) only from a connection with that certificate.
        if let Some(bound) = &verified.bound_to
            && certificate != Some(bound.as_str())
        {
            return Ok(Err((KeyRejection::TokenUnbound, Some(behind))));
        }
        Ok(Ok(verified.view_of(&behind)))
    }

    /// The token's verified claims, from memory when it was verified before.
    async fn verified_token(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<Arc<Verified>, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.identity.verified.get(&digest) {
            return Ok(known);
        }
        let names = self.identity.names();
        let issuer = peek_issuer(token).ok_or(TokenError::Malformed)?;
        let verified = if issuer == *names.issuer {
            self.verify_own(token, audience)?
        } else {
            self.verify_federated(token, &issuer).await?
        };
        let verified = Arc::new(verified);
        self.identity.verified.insert(digest, verified.clone());
        Ok(verified)
    }

    /// One of keygate's tokens.
    fn verify_own(&self, token: &str, audience: Option<&str>) -> Result<Verified, TokenError> {
        let names = self.identity.names();
        let claims = self.identity.ring().keys.verify(
            token,
            Expected {
                issuer: &names.issuer,
                audience: audience.unwrap_or(&names.audience),
                now: self.clock.now().as_millis().div_euclid(1000),
                leeway: LEEWAY_SECS,
            },
        )?;
        let scopes =
            keygate_identity::scopes::decode(&claims.scope).map_err(|_| TokenError::Claims)?;
        let holder = match &claims.federated {
            None => Holder::Key(KeyId::parse(&claims.sub).map_err(|_| TokenError::Claims)?),
            Some(FederatedSubject { issuer, rule, sub })
                if issuer == super::certificates::CERTIFICATE_ISSUER =>
            {
                let rule = self
                    .identity
                    .settings()
                    .certificates
                    .iter()
                    .position(|r| r.name == *rule)
                    .ok_or(TokenError::Claims)?;
                Holder::Certificate {
                    rule,
                    name: sub.clone(),
                }
            }
            Some(FederatedSubject { issuer, rule, sub }) => {
                let federation = self.identity.federation();
                let at = federation
                    .iter()
                    .position(|s| s.config.trusted.name == *issuer)
                    .ok_or(TokenError::Claims)?;
                let rule = federation[at]
                    .config
                    .trusted
                    .rules
                    .iter()
                    .position(|r| r.name == *rule)
                    .ok_or(TokenError::Claims)?;
                Holder::Federated {
                    issuer: at,
                    rule,
                    subject: sub.clone(),
                }
            }
        };
        Ok(Verified {
            holder,
            scopes,
            audience: claims.aud,
            exp: claims.exp,
            jti: claims.jti,
            bound_to: claims.cnf.map(|cnf| cnf.x5t_s256),
            view: Mutex::new(None),
        })
    }

    /// A trusted issuer's token: checked against its keys, its rule deciding the scopes.
    async fn verify_federated(&self, token: &str, issuer: &str) -> Result<Verified, TokenError> {
        let federation = self.identity.federation();
        let (at, state) = federation
            .iter()
            .enumerate()
            .find(|(_, s)| s.config.trusted.issuer == issuer)
            .ok_or(TokenError::Issuer)?;
        let kid = peek_kid(token);
        let keys = self.issuer_keys(state, kid.as_deref()).await;
        let now = self.clock.now().as_millis().div_euclid(1000);
        let trusted = &state.config.trusted;
        let federated = trusted.verify(token, &keys, now).map_err(|err| {
            tracing::debug!(issuer = %trusted.name, error = %err, "a federated token was refused");
            match err {
                FederationError::Token(err) => err,
                FederationError::Required(_) | FederationError::NoRule => TokenError::Claims,
            }
        })?;
        let rule = &trusted.rules[federated.rule];
        let jti = federated
            .jti
            .unwrap_or_else(|| hex::encode(&Sha256::digest(token.as_bytes())[..16]));
        Ok(Verified {
            scopes: rule.scopes.clone(),
            audience: Audience::One(self.identity.names().audience.to_string()),
            exp: federated.expires_at,
            jti,
            bound_to: None,
            holder: Holder::Federated {
                issuer: at,
                rule: federated.rule,
                subject: federated.subject,
            },
            view: Mutex::new(None),
        })
    }
}

impl Verified {
    fn view_of(&self, behind: &Arc<CachedKey>) -> Arc<CachedKey> {
        let mut slot = self
            .view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, view)) = slot.as_ref()
            && Arc::ptr_eq(seen, behind)
        {
            return view.clone();
        }
        let view = Arc::new(CachedKey::token_view(
            behind,
            self.scopes.clone(),
            TokenFacts {
                jti: self.jti.clone(),
                expires_at: Timestamp::from_millis(self.exp.saturating_mul(1000)),
            },
        ));
        *slot = Some((behind.clone(), view.clone()));
        view
    }
}
