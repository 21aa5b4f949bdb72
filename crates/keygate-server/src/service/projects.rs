//! Projects: the unit that keys belong to and that roles can be bound to.

use keygate_core::record::check_text;
use keygate_core::{AuditAction, Permission, ProjectId};
use keygate_store::Project;

use super::{Caller, Keygate};
use crate::ServiceError;

const MAX_PROJECT_NAME: usize = 64;

impl Keygate {
    pub async fn create_project(
        &self,
        caller: &Caller,
        name: &str,
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
        let project = Project {
            id: ProjectId::generate(),
            org_id: caller.org().clone(),
            name: name.to_owned(),
            created_at: self.clock.now(),
        };
        let mut audit = caller.audit(AuditAction::ProjectCreate, Some(&project.id));
        audit.target = Some(project.id.to_string());
        audit.details = serde_json::json!({ "name": name });
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
}
