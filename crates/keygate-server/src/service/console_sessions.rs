//! The web console's sessions. Signing in with an admin token starts one: the browser gets a
//! random value (in an HttpOnly cookie) and the store keeps only its SHA-256, with the token's
//! id, a CSRF token and the session's times. A session ends when its user signs out, when its
//! token is no longer active (revoked, expired, deleted: checked on every request, so at once
//! on every node), after `idle` without activity, or `absolute` after it began. The token's
//! current role and binding apply on every request, so a changed role takes effect at once.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keygate_core::{
    AuditAction, Binding, KeyId, KeyKind, KeyRejection, KeyStatus, Permission, Principal, Timestamp,
};
use keygate_store::ConsoleSession;
use sha2::{Digest, Sha256};

use super::{Actor, Caller, Keygate};
use crate::ServiceError;

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Without a request for this long, a session ends.
    pub idle: Duration,
    /// Whatever the activity, a session ends this long after it began.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
        }
    }
}

/// Activity is written at most this often per session.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A session just begun: the cookie's value (given to the browser once, never stored) and
/// the session.
pub struct SignedIn {
    pub cookie: String,
    pub session: ConsoleSession,
}

impl std::fmt::Debug for SignedIn {
    /// Leaves the cookie's value out: it opens the session.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// A signed-in console user: the caller its operations run as, and its session.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub caller: Caller,
    pub session: ConsoleSession,
}

/// Where a console request comes from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct ConsoleRequest {
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
}

/// A random value for a cookie or a CSRF token: 256 bits, URL-safe base64.
fn random_token() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| ServiceError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored name of a session: the SHA-256 of its cookie's value.
fn session_id(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

/// A new session for `principal`, named `subject`: its cookie's value and its record.
pub(super) fn new_session(
    principal: &Principal,
    subject: String,
    token_id: Option<KeyId>,
    name: String,
    policy: SessionPolicy,
    now: Timestamp,
) -> Result<SignedIn, ServiceError> {
    let cookie = random_token()?;
    let session = ConsoleSession {
        id: session_id(&cookie),
        org_id: principal.binding.org().clone(),
        subject,
        token_id,
        role: principal.role,
        project_id: principal.binding.project().cloned(),
        name,
        csrf: random_token()?,
        created_at: now,
        last_seen_at: now,
        expires_at: now.saturating_add(policy.absolute),
        ended_at: None,
    };
    Ok(SignedIn { cookie, session })
}

impl Keygate {
    /// Signs in with an admin token: a new session, audited (`console.sign_in`). A refused
    /// token is audited as a failed admin authentication and answered with why.
    pub async fn console_sign_in(
        &self,
        token: &str,
        policy: SessionPolicy,
        request: ConsoleRequest,
    ) -> Result<Result<SignedIn, KeyRejection>, ServiceError> {
        let principal = match self.authenticate_admin(token).await? {
            Ok(principal) => principal,
            Err((rejection, known)) => {
                self.record_auth_failure(
                    Some(rejection),
                    known.as_deref(),
                    request.client_ip,
                    request.request_id,
                )
                .await?;
                return Ok(Err(rejection));
            }
        };
        // An admin token's principal is named by its key id.
        let token_id = KeyId::parse(&principal.actor)
            .map_err(|_| ServiceError::Unauthenticated(KeyRejection::Invalid))?;
        let name = match self.store.key(&token_id).await? {
            Some(record) => record.name,
            None => principal.actor.clone(),
        };
        let signed = new_session(
            &principal,
            format!("token:{token_id}"),
            Some(token_id),
            name,
            policy,
            self.clock.now(),
        )?;
        let session = &signed.session;
        let caller = Caller {
            actor: Actor::Admin(principal),
            client_ip: request.client_ip,
            request_id: request.request_id,
        };
        let mut audit = caller.audit(AuditAction::ConsoleSignIn, session.project_id.as_ref());
        audit.details = serde_json::json!({
            "session": &session.id[..16],
            "expires_at": session.expires_at.to_rfc3339(),
        });
        self.store.create_console_session(session, &audit).await?;
        Ok(Ok(signed))
    }

    /// The user of the session whose cookie holds `cookie`, if it is open: not ended, not
    /// past its absolute end nor idle too long, its token still active.
    pub async fn console_user(
        &self,
        cookie: &str,
        policy: SessionPolicy,
        request: ConsoleRequest,
    ) -> Result<Option<ConsoleUser>, ServiceError> {
        let Some(session) = self.store.console_session(&session_id(cookie)).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        let idle_until = session.last_seen_at.saturating_add(policy.idle);
        if session.ended_at.is_some() || now >= session.expires_at || now >= idle_until {
            return Ok(None);
        }
        let Some(principal) = self.session_principal(&session, now).await? else {
            // Its token is gone: every session it began ends with it.
            self.store
                .end_console_sessions_of(&session.subject, now)
                .await?;
            return Ok(None);
        };
        if now.as_millis() - session.last_seen_at.as_millis()
            >= i64::try_from(TOUCH_EVERY.as_millis()).unwrap_or(i64::MAX)
        {
            self.store.touch_console_session(&session.id, now).await?;
        }
        Ok(Some(ConsoleUser {
            caller: Caller {
                actor: Actor::Admin(principal),
                client_ip: request.client_ip,
                request_id: request.request_id,
            },
            session,
        }))
    }

    /// The principal a session acts as: its token's, as the token is now; or, signed in
    /// through single sign-on, the role and project its rules gave at sign-in.
    async fn session_principal(
        &self,
        session: &ConsoleSession,
        now: Timestamp,
    ) -> Result<Option<Principal>, ServiceError> {
        let Some(token_id) = &session.token_id else {
            let binding = match &session.project_id {
                None => Binding::Org(session.org_id.clone()),
                Some(project) => Binding::Project {
                    org: session.org_id.clone(),
                    project: project.clone(),
                },
            };
            return Ok(Some(Principal {
                actor: session.subject.clone(),
                role: session.role,
                binding,
            }));
        };
        let Some(record) = self.store.key(token_id).await? else {
            return Ok(None);
        };
        if record.kind != KeyKind::Admin || record.status(now) != KeyStatus::Active {
            return Ok(None);
        }
        Ok(record.role.map(|role| Principal {
            actor: record.id.to_string(),
            role,
            binding: record.binding(),
        }))
    }

    /// The organisation's open console sessions, for those who may manage admin tokens.
    pub async fn list_console_sessions(
        &self,
        caller: &Caller,
    ) -> Result<Vec<ConsoleSession>, ServiceError> {
        self.authorize(
            caller,
            Permission::TokensWrite,
            caller.bound_project(),
            None,
        )
        .await?;
        let sessions = self
            .store
            .open_console_sessions(caller.org(), self.clock.now(), 500)
            .await?;
        Ok(sessions
            .into_iter()
            .filter(|s| caller.may(Permission::TokensWrite, s.project_id.as_ref()))
            .collect())
    }

    /// Ends another user's session (someone who left, a stolen laptop), audited
    /// (`console.sign_out`, with who ended it).
    pub async fn end_console_session(&self, caller: &Caller, id: &str) -> Result<(), ServiceError> {
        let session = self
            .store
            .console_session(id)
            .await?
            .filter(|s| &s.org_id == caller.org() && s.ended_at.is_none())
            .ok_or(ServiceError::NotFound { entity: "session" })?;
        self.authorize(
            caller,
            Permission::TokensWrite,
            session.project_id.as_ref(),
            Some(&session.subject),
        )
        .await?;
        // As for revoking a token: never a session above the caller's own role or binding,
        // judged by what the session acts as now.
        let principal = self.session_principal(&session, self.clock.now()).await?;
        let within = principal.is_none_or(|p| super::tokens::reaches(caller, p.role, &p.binding));
        if !within {
            return Err(self
                .deny(
                    caller,
                    Permission::TokensWrite,
                    session.project_id.as_ref(),
                    Some(&session.subject),
                )
                .await);
        }
        let mut audit = caller.audit(AuditAction::ConsoleSignOut, session.project_id.as_ref());
        audit.target = Some(session.subject.clone());
        audit.details = serde_json::json!({ "session": &session.id[..16], "ended_by_admin": true });
        self.store
            .end_console_session(&session.id, self.clock.now(), &audit)
            .await?;
        Ok(())
    }

    /// Ends the user's session, audited (`console.sign_out`).
    pub async fn console_sign_out(&self, user: &ConsoleUser) -> Result<(), ServiceError> {
        let mut audit = user.caller.audit(
            AuditAction::ConsoleSignOut,
            user.session.project_id.as_ref(),
        );
        audit.details = serde_json::json!({ "session": &user.session.id[..16] });
        self.store
            .end_console_session(&user.session.id, self.clock.now(), &audit)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_named_by_its_cookies_digest_only() {
        let cookie = random_token().unwrap();
        let principal = Principal {
            actor: "key_x".to_owned(),
            role: keygate_core::Role::Viewer,
            binding: Binding::Org(keygate_core::OrgId::generate()),
        };
        let signed = new_session(
            &principal,
            "token:key_x".to_owned(),
            None,
            "ops".to_owned(),
            SessionPolicy::default(),
            Timestamp::from_millis(0),
        )
        .unwrap();
        let shown = format!("{signed:?}");
        assert!(!shown.contains(&signed.cookie) && !shown.contains(&signed.session.csrf));
        assert_eq!(cookie.len(), 43);
        let id = session_id(&cookie);
        assert_eq!(id.len(), 64);
        assert!(!id.contains(&cookie));
        assert_ne!(random_token().unwrap(), cookie);
    }
}
