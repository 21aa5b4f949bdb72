//! Role-based access for the admin API: roles, what each may do, and where.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{OrgId, ProjectId, ValidationError};

/// An admin role, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Operator,
    Auditor,
    Viewer,
}

/// An action on the admin API that a role may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read keys and their metadata (never their secrets).
    KeysRead,
    /// Create, update, rotate and revoke keys.
    KeysWrite,
    /// Delete keys.
    KeysDelete,
    ProjectsRead,
    ProjectsWrite,
    /// Read and verify the audit log.
    AuditRead,
    /// Issue admin tokens (never above the issuer's own role).
    TokensWrite,
    /// See upstream secrets' names, versions and stages (never their values).
    SecretsRead,
    /// Store, rotate and delete upstream secrets (values go in, never out).
    SecretsWrite,
    /// Read an upstream secret's value. Owners only; every use is audited.
    SecretsReveal,
    /// Read gateway usage and cost reports.
    UsageRead,
    /// See the gateway's model groups.
    ModelsRead,
    /// Create, change and delete model groups.
    ModelsWrite,
    /// See webhook endpoints and their deliveries.
    WebhooksRead,
    /// Add, change, delete, test and replay webhook endpoints (where alerts go).
    WebhooksWrite,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Operator,
        Role::Auditor,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
            Self::Viewer => "viewer",
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Self::Owner => true,
            Self::Admin => permission != SecretsReveal,
            Self::Operator => matches!(
                permission,
                KeysRead
                    | KeysWrite
                    | ProjectsRead
                    | SecretsRead
                    | SecretsWrite
                    | UsageRead
                    | ModelsRead
                    | WebhooksRead
            ),
            Self::Auditor => matches!(
                permission,
                KeysRead
                    | ProjectsRead
                    | AuditRead
                    | SecretsRead
                    | UsageRead
                    | ModelsRead
                    | WebhooksRead
            ),
            Self::Viewer => matches!(
                permission,
                KeysRead | ProjectsRead | SecretsRead | UsageRead | ModelsRead
            ),
        }
    }

    /// Rank for "may grant": a principal issues tokens only at or below its own rank.
    fn rank(self) -> u8 {
        match self {
            Self::Owner => 4,
            Self::Admin => 3,
            Self::Operator => 2,
            Self::Auditor | Self::Viewer => 1,
        }
    }

    pub fn can_grant(self, other: Role) -> bool {
        self.allows(Permission::TokensWrite) && self.rank() >= other.rank()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or(ValidationError::new(
                "role",
                "one of owner, admin, operator, auditor, viewer",
            ))
    }
}

/// Where a role applies: a whole organisation, or one project in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    Org(OrgId),
    Project { org: OrgId, project: ProjectId },
}

impl Binding {
    pub fn org(&self) -> &OrgId {
        match self {
            Self::Org(org) | Self::Project { org, .. } => org,
        }
    }

    pub fn project(&self) -> Option<&ProjectId> {
        match self {
            Self::Org(_) => None,
            Self::Project { project, .. } => Some(project),
        }
    }

    /// Whether this binding covers `project` of `org`.
    pub fn covers(&self, org: &OrgId, project: Option<&ProjectId>) -> bool {
        match self {
            Self::Org(own) => own == org,
            Self::Project {
                org: own,
                project: own_project,
            } => own == org && project == Some(own_project),
        }
    }

    /// Whether everything `other` reaches is also reached by `self`.
    pub fn contains(&self, other: &Binding) -> bool {
        self.covers(other.org(), other.project())
    }
}

/// An authenticated admin: who it is, its role and its binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// As the audit log names it: an admin token's key id, or `oidc:<issuer>#<subject>` for a
    /// console user signed in through single sign-on.
    pub actor: String,
    pub role: Role,
    pub binding: Binding,
}

impl Principal {
    /// Whether the principal may do `permission` on `project` of `org`.
    pub fn may(&self, permission: Permission, org: &OrgId, project: Option<&ProjectId>) -> bool {
        self.role.allows(permission) && self.binding.covers(org, project)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_matrix() {
        assert!(Role::Owner.allows(Permission::TokensWrite));
        assert!(Role::Admin.allows(Permission::KeysDelete));
        assert!(Role::Operator.allows(Permission::KeysWrite));
        assert!(!Role::Operator.allows(Permission::KeysDelete));
        assert!(!Role::Operator.allows(Permission::AuditRead));
        assert!(Role::Auditor.allows(Permission::AuditRead));
        assert!(!Role::Auditor.allows(Permission::KeysWrite));
        assert!(!Role::Viewer.allows(Permission::AuditRead));
        assert!(Role::Owner.allows(Permission::SecretsReveal));
        for role in [Role::Admin, Role::Operator, Role::Auditor, Role::Viewer] {
            assert!(!role.allows(Permission::SecretsReveal), "{role}");
            assert!(role.allows(Permission::SecretsRead), "{role}");
        }
        assert!(Role::Operator.allows(Permission::SecretsWrite));
        assert!(!Role::Auditor.allows(Permission::SecretsWrite));
        assert!(Role::Viewer.allows(Permission::KeysRead));
        assert!(Role::Admin.allows(Permission::WebhooksWrite));
        assert!(!Role::Operator.allows(Permission::WebhooksWrite));
        assert!(Role::Auditor.allows(Permission::WebhooksRead));
        assert!(!Role::Viewer.allows(Permission::WebhooksRead));
    }

    #[test]
    fn grants_never_escalate() {
        assert!(Role::Owner.can_grant(Role::Owner));
        assert!(!Role::Admin.can_grant(Role::Owner));
        assert!(Role::Admin.can_grant(Role::Viewer));
        assert!(!Role::Operator.can_grant(Role::Viewer));
    }

    #[test]
    fn project_binding_covers_only_its_project() {
        let org = OrgId::generate();
        let a = ProjectId::generate();
        let b = ProjectId::generate();
        let bound = Binding::Project {
            org: org.clone(),
            project: a.clone(),
        };
        assert!(bound.covers(&org, Some(&a)));
        assert!(!bound.covers(&org, Some(&b)));
        assert!(!bound.covers(&org, None));
        assert!(Binding::Org(org.clone()).covers(&org, Some(&b)));
        assert!(!Binding::Org(OrgId::generate()).covers(&org, Some(&a)));
        assert!(Binding::Org(org.clone()).contains(&bound));
        assert!(!bound.contains(&Binding::Org(org)));
    }

    #[test]
    fn roles_parse() {
        assert_eq!("auditor".parse::<Role>().unwrap(), Role::Auditor);
        assert!("root".parse::<Role>().is_err());
    }
}
