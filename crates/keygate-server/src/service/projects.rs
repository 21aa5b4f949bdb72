//! Projects: the unit that keys belong to, that roles can be bound to, and that carries
//! limits counted for all its keys together.

use keygate_core::record::check_text;
use keygate_core::{AuditAction, KeyLimits, Permission, ProjectId};
use keygate_store::{Project, ProjectChange};

use super::{Caller, Keygate};
use crate::ServiceError;
use crate::cache::Invalidation;

const MAX_PROJECT_NAME: usize = 64;

/// Has every node forget every cached key when dropped: after the store call, and also when
/// the request is cancelled mid-way, after the change may already have committed. Each cached
/// key holds its project's limits, and clearing the whole cache is simpler (and as cheap, for
/// a change this rare) than finding the project's keys in it.
pub(super) struct ForgetKeysOnDrop<'a>(pub(super) &'a dyn Invalidation);

impl Drop for ForgetKeysOnDrop<'_> {
    fn drop(&mut self) {
        self.0.everything_changed();
    }
}

impl Keygate {
    /// Creates a project in the caller's organisation, with `limits` (checked here; empty for
    /// none).
    pub async fn create_project(
        &self,
        caller: &Caller,
        name: &str,
        limits: KeyLimits,
    ) -> Result<Project, ServiceError> {
        self.authorize(caller, Permission::ProjectsWrite, None, None)
            .await?;
        check_text("name", name, MAX_PROJECT_NAME)?;
        if name.starts_with(ProjectId::PREFIX) {
            return Err(keygate_core::ValidationError::new(
                "name",
                "a name that does not start with `proj_` (that prefix marks ids)",
            )
            .into());
        }
        let limits = limits.validate()?;
        let project = Project {
            id: ProjectId::generate(),
            org_id: caller.org().clone(),
            name: name.to_owned(),
            created_at: self.clock.now(),
            limits,
            anomaly_actions: Default::default(),
        };
        let mut audit = caller.audit(AuditAction::ProjectCreate, Some(&project.id));
        audit.target = Some(project.id.to_string());
        audit.details = if project.limits.is_empty() {
            serde_json::json!({ "name": name })
        } else {
            serde_json::json!({ "name": name, "limits": project.limits })
        };
        self.store.create_project(&project, &audit).await?;
        Ok(project)
    }

    /// The projects the caller can see: all of its organisation's, or its own one.
    pub async fn list_projects(&self, caller: &Caller) -> Result<Vec<Project>, ServiceError> {
        let bound = caller.bound_project().cloned();
        self.authorize(caller, Permission::ProjectsRead, bound.as_ref(), None)
            .await?;
        let mut projects = self.store.list_projects(caller.org()).await?;
        if let Some(own) = bound {
            projects.retain(|p| p.id == own);
        }
        Ok(projects)
    }

    /// One project, by id or name. A project outside the caller's reach is "not found", so
    /// that its existence is not revealed; the attempt is audited.
    pub async fn get_project(
        &self,
        caller: &Caller,
        project: &str,
    ) -> Result<Project, ServiceError> {
        let project = self.resolve_project(caller, project).await?;
        self.project_access(
            caller,
            &project,
            Permission::ProjectsRead,
            Some(&project.id),
        )
        .await?;
        Ok(project)
    }

    /// Changes a project's limits (empty removes them) and its anomaly actions (each
    /// detector's action over the server's; empty removes them). Only an organisation-wide
    /// principal may: the project's limits are the ceiling for all its keys, and its actions
    /// the response to their misuse, which a token bound to the project must not be able to
    /// lift. Cached keys are dropped so the new limits apply at
    /// once: on this node, and through Redis (when configured) on every other; without it,
    /// other nodes load them when their cached keys expire.
    pub async fn update_project(
        &self,
        caller: &Caller,
        project: &str,
        change: ProjectChange,
    ) -> Result<Project, ServiceError> {
        let project = self.resolve_project(caller, project).await?;
        self.project_access(caller, &project, Permission::ProjectsWrite, None)
            .await?;
        let change = ProjectChange {
            limits: change.limits.map(KeyLimits::validate).transpose()?,
            anomaly_actions: change
                .anomaly_actions
                .map(crate::anomalies::check_actions)
                .transpose()?,
        };
        let mut audit = caller.audit(AuditAction::ProjectUpdate, Some(&project.id));
        audit.target = Some(project.id.to_string());
        let mut fields = Vec::new();
        let mut details = serde_json::Map::new();
        if let Some(limits) = &change.limits {
            fields.push("limits");
            details.insert("limits".into(), serde_json::json!(limits));
        }
        if let Some(actions) = &change.anomaly_actions {
            fields.push("anomaly_actions");
            details.insert("anomaly_actions".into(), serde_json::json!(actions));
        }
        details.insert("fields".into(), serde_json::json!(fields));
        audit.details = serde_json::Value::Object(details);
        let _forget = ForgetKeysOnDrop(self.invalidation.as_ref());
        Ok(self
            .store
            .update_project(&project.id, &change, self.clock.now(), &audit)
            .await?)
    }

    /// Checks `permission` on `scope` (the project, or `None` for the whole organisation);
    /// a refusal to a caller who may not even read the project becomes "not found".
    pub(super) async fn project_access(
        &self,
        caller: &Caller,
        project: &Project,
        permission: Permission,
        scope: Option<&ProjectId>,
    ) -> Result<(), ServiceError> {
        match self
            .authorize(caller, permission, scope, Some(project.id.as_str()))
            .await
        {
            Err(ServiceError::Forbidden { .. })
                if !caller.may(Permission::ProjectsRead, Some(&project.id)) =>
            {
                Err(ServiceError::NotFound { entity: "project" })
            }
            other => other,
        }
    }
}
