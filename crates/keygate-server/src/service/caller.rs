//! Who is calling: an authenticated admin principal, or the local operator of the store.

use keygate_core::{AuditAction, AuditDraft, Binding, OrgId, Permission, Principal, ProjectId};

use crate::ServiceError;

/// The identity behind an operation.
#[derive(Debug, Clone)]
pub enum Actor {
    /// An admin token presented to the API.
    Admin(Principal),
    /// Someone with direct access to the store and master key (the CLI on the server
    /// machine). Local access is trust: it acts as owner of `org`.
    Local { org: OrgId },
}

/// An actor plus what the audit log records about the request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
}

impl Caller {
    pub fn local(org: OrgId) -> Self {
        Self {
            actor: Actor::Local { org },
            client_ip: None,
            request_id: None,
        }
    }

    /// The organisation the caller acts in.
    pub fn org(&self) -> &OrgId {
        match &self.actor {
            Actor::Admin(principal) => principal.binding.org(),
            Actor::Local { org } => org,
        }
    }

    /// The binding the caller is limited to.
    pub fn binding(&self) -> Binding {
        match &self.actor {
            Actor::Admin(principal) => principal.binding.clone(),
            Actor::Local { org } => Binding::Org(org.clone()),
        }
    }

    /// The project the caller is limited to, if any.
    pub fn bound_project(&self) -> Option<&ProjectId> {
        match &self.actor {
            Actor::Admin(principal) => principal.binding.project(),
            Actor::Local { .. } => None,
        }
    }

    pub fn actor_id(&self) -> String {
        match &self.actor {
            Actor::Admin(principal) => principal.actor.clone(),
            Actor::Local { .. } => "local".to_owned(),
        }
    }

    pub fn may(&self, permission: Permission, project: Option<&ProjectId>) -> bool {
        match &self.actor {
            Actor::Admin(principal) => principal.may(permission, self.org(), project),
            Actor::Local { .. } => true,
        }
    }

    /// An audit draft for `action` by this caller.
    pub fn audit(&self, action: AuditAction, project: Option<&ProjectId>) -> AuditDraft {
        let mut draft = AuditDraft::new(self.actor_id(), action);
        draft.org_id = Some(self.org().to_string());
        draft.project_id = project.map(ToString::to_string);
        draft.client_ip.clone_from(&self.client_ip);
        draft.request_id.clone_from(&self.request_id);
        draft
    }
}

/// Fails with `Forbidden` unless `caller` may do `permission` on `project`.
pub(crate) fn require(
    caller: &Caller,
    permission: Permission,
    project: Option<&ProjectId>,
) -> Result<(), ServiceError> {
    if caller.may(permission, project) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden { permission })
    }
}
