//! The admin operations on anomalies: list (newest first, open or acknowledged) and
//! acknowledge. A project-bound admin sees its project's only.

use keygate_core::{AnomalyId, AuditAction, KeyId, Permission, record::check_text};
use keygate_store::{Anomaly, AnomalyFilter};

use super::Anomalies;
use crate::ServiceError;
use crate::service::Caller;

/// Largest page.
const MAX_PAGE: u32 = 200;
const MAX_NOTE_CHARS: usize = 500;

/// Which anomalies to list.
#[derive(Debug, Clone, Default)]
pub struct AnomalyQuery {
    /// A project id or name.
    pub project: Option<String>,
    pub key: Option<KeyId>,
    /// `Some(false)`: open ones only; `Some(true)`: acknowledged ones only.
    pub acknowledged: Option<bool>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

impl Anomalies {
    /// A page of the anomalies the caller may see, and the cursor of the next.
    pub async fn list(
        &self,
        caller: &Caller,
        query: AnomalyQuery,
    ) -> Result<(Vec<Anomaly>, Option<String>), ServiceError> {
        let project = match (&query.project, caller.bound_project()) {
            (Some(name), _) => Some(self.keygate.resolve_project(caller, name).await?.id),
            (None, bound) => bound.cloned(),
        };
        self.keygate
            .authorize(caller, Permission::KeysRead, project.as_ref(), None)
            .await?;
        let before = query
            .cursor
            .as_deref()
            .map(|c| AnomalyId::parse(c).map_err(|_| ServiceError::BadCursor))
            .transpose()?;
        let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
        let page = self
            .keygate
            .store()
            .anomalies(&AnomalyFilter {
                org_id: caller.org().clone(),
                project_id: project,
                key_id: query.key,
                acknowledged: query.acknowledged,
                before,
                limit,
            })
            .await?;
        let next = (page.len() == limit as usize)
            .then(|| page.last().map(|a| a.id.to_string()))
            .flatten();
        Ok((page, next))
    }

    /// Marks an anomaly seen, with an optional note; audited.
    pub async fn acknowledge(
        &self,
        caller: &Caller,
        id: &AnomalyId,
        note: Option<&str>,
    ) -> Result<Anomaly, ServiceError> {
        let anomaly = self
            .keygate
            .store()
            .anomaly(id)
            .await?
            .filter(|a| &a.org_id == caller.org())
            .ok_or(ServiceError::NotFound { entity: "anomaly" })?;
        if !caller.may(Permission::KeysRead, anomaly.project_id.as_ref()) {
            return Err(ServiceError::NotFound { entity: "anomaly" });
        }
        self.keygate
            .authorize(
                caller,
                Permission::KeysWrite,
                anomaly.project_id.as_ref(),
                Some(id.as_str()),
            )
            .await?;
        if let Some(note) = note {
            check_text("note", note, MAX_NOTE_CHARS)?;
        }
        let mut audit = caller.audit(AuditAction::AnomalyAcknowledge, anomaly.project_id.as_ref());
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({ "detector": anomaly.detector, "note": note });
        Ok(self
            .keygate
            .store()
            .acknowledge_anomaly(
                id,
                &caller.actor_id(),
                note,
                self.keygate.clock().now(),
                &audit,
            )
            .await?)
    }
}
