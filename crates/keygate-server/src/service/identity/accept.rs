//! A token presented where a key is expected: verified once (its signature checked against
//! the published keys, then remembered by its digest until it expires), then checked on every
//! use against its parent key as it stands — a revoked, suspended, expired or deleted parent
//! stops its tokens at once, as its change reaches this node's cache.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keygate_core::{KeyId, KeyKind, KeyRejection, KeyStatus, Scope, Timestamp};
use keygate_identity::{AccessClaims, Expected, TokenError};
use moka::Expiry;
use sha2::{Digest, Sha256};

use crate::ServiceError;
use crate::cache::{CachedKey, TokenFacts};
use crate::service::Keygate;

/// A token whose signature and issuer were checked.
pub(crate) struct Verified {
    claims: AccessClaims,
    scopes: Vec<Scope>,
    parent: Option<KeyId>,
    /// The parent as last seen and the token's view of it, rebuilt when the parent changes.
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
        let left = u64::try_from(value.claims.exp)
            .unwrap_or(0)
            .saturating_sub(now);
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
    /// Verifies a keygate access token for `audience` (keygate's own when `None`), presented
    /// over a connection with the client certificate whose thumbprint is `certificate`.
    pub(crate) async fn accept_token(
        &self,
        token: &str,
        audience: Option<&str>,
        certificate: Option<&str>,
    ) -> Result<Accepted, ServiceError> {
        let verified = match self.verified_token(token, audience) {
            Ok(verified) => verified,
            Err(err) => return Ok(Err((rejection(err), None))),
        };
        let now = self.clock.now();
        let names = self.identity.names();
        let audience = audience.unwrap_or(&names.audience);
        if !verified.claims.aud.contains(audience) {
            return Ok(Err((KeyRejection::TokenAudience, None)));
        }
        if verified.claims.exp.saturating_mul(1000) <= now.as_millis() {
            return Ok(Err((KeyRejection::TokenExpired, None)));
        }
        let Some(parent_id) = &verified.parent else {
            return Ok(Err((KeyRejection::TokenInvalid, None)));
        };
        let Some(parent) = self.key_by_id(parent_id).await? else {
            return Ok(Err((KeyRejection::Invalid, None)));
        };
        let refused = match parent.record.status(now) {
            KeyStatus::Deleted => Some(KeyRejection::Invalid),
            KeyStatus::Revoked => Some(KeyRejection::Revoked),
            KeyStatus::Suspended => Some(KeyRejection::Suspended),
            KeyStatus::Expired => Some(KeyRejection::Expired),
            KeyStatus::Active => None,
        };
        if let Some(refused) = refused {
            return Ok(Err((refused, Some(parent))));
        }
        if parent.record.kind != KeyKind::Api || parent.record.is_publishable() {
            return Ok(Err((KeyRejection::TokenInvalid, None)));
        }
        // A certificate-bound token (RFC 8705) only from a connection with that certificate.
        if let Some(cnf) = &verified.claims.cnf
            && certificate != Some(cnf.x5t_s256.as_str())
        {
            return Ok(Err((KeyRejection::TokenUnbound, Some(parent))));
        }
        Ok(Ok(verified.view_of(&parent)))
    }

    /// The token's claims, from memory when it was verified before.
    fn verified_token(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<Arc<Verified>, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.identity.verified.get(&digest) {
            return Ok(known);
        }
        let names = self.identity.names();
        let ring = self.identity.ring();
        let claims = ring.keys.verify(
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
        let verified = Arc::new(Verified {
            parent: KeyId::parse(&claims.sub).ok(),
            claims,
            scopes,
            view: Mutex::new(None),
        });
        self.identity.verified.insert(digest, verified.clone());
        Ok(verified)
    }
}

impl Verified {
    fn view_of(&self, parent: &Arc<CachedKey>) -> Arc<CachedKey> {
        let mut slot = self
            .view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, view)) = slot.as_ref()
            && Arc::ptr_eq(seen, parent)
        {
            return view.clone();
        }
        let view = Arc::new(CachedKey::token_view(
            parent,
            self.scopes.clone(),
            TokenFacts {
                jti: self.claims.jti.clone(),
                expires_at: Timestamp::from_millis(self.claims.exp.saturating_mul(1000)),
            },
        ));
        *slot = Some((parent.clone(), view.clone()));
        view
    }
}
