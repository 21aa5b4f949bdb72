//! The web console's sessions, kept server side: a browser holds only a random value whose
//! digest names its session here, so a session is ended (signed out, its token revoked) for
//! every node at once.

use async_trait::async_trait;
use keygate_core::{AuditDraft, KeyId, OrgId, ProjectId, Role, Timestamp};

use crate::StoreError;

/// One console session.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 (hex) of the cookie's value; the value itself is never stored.
    pub id: String,
    pub org_id: OrgId,
    /// Who signed in: `token:<key id>` for an admin token, `oidc:<issuer>#<subject>` for
    /// single sign-on.
    pub subject: String,
    /// The admin token signed in with, whose current role and binding apply.
    pub token_id: Option<KeyId>,
    /// The role given at sign-in (single sign-on); a token's own role applies instead.
    pub role: Role,
    /// The project the session is bound to, if any.
    pub project_id: Option<ProjectId>,
    /// What the console shows as the signed-in name.
    pub name: String,
    /// The token every write of the session carries (against cross-site requests).
    pub csrf: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// The absolute end, whatever the activity.
    pub expires_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

impl std::fmt::Debug for ConsoleSession {
    /// Leaves the CSRF token out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("subject", &self.subject)
            .field("role", &self.role)
            .field("project_id", &self.project_id)
            .field("expires_at", &self.expires_at)
            .field("ended_at", &self.ended_at)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait ConsoleSessionStore {
    /// Stores a new session, with its audit event (a sign-in).
    async fn create_console_session(
        &self,
        session: &ConsoleSession,
        audit: &AuditDraft,
    ) -> Result<(), StoreError>;
    /// The session named `id` (the digest), ended or not.
    async fn console_session(&self, id: &str) -> Result<Option<ConsoleSession>, StoreError>;
    /// Records activity at `at` (never going backwards).
    async fn touch_console_session(&self, id: &str, at: Timestamp) -> Result<(), StoreError>;
    /// Ends a session, with its audit event (a sign-out); whether it was still open.
    async fn end_console_session(
        &self,
        id: &str,
        at: Timestamp,
        audit: &AuditDraft,
    ) -> Result<bool, StoreError>;
    /// The open sessions of `org` at `now` (not ended, not past their end), newest first, at
    /// most `limit`.
    async fn open_console_sessions(
        &self,
        org: &OrgId,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ConsoleSession>, StoreError>;
    /// Ends every open session of `subject` (its token revoked, its access taken away); how
    /// many there were.
    async fn end_console_sessions_of(
        &self,
        subject: &str,
        at: Timestamp,
    ) -> Result<u64, StoreError>;
}
