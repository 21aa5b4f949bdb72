//! Exporting the audit log for a SIEM: the caller's events in chain order after a cursor, up
//! to the head as it stood when the export began, a page at a time as the reader takes them.
//! A reader resumes from the last sequence number it got; nothing is missed or repeated.

use std::sync::Arc;

use keygate_core::{AuditEvent, OrgId, Permission, ProjectId, ValidationError};
use keygate_store::{AuditSince, Store, StoreError};

use super::{Caller, Keygate};
use crate::ServiceError;

const PAGE: u32 = 1000;

/// An export under way.
#[derive(Debug)]
pub struct AuditExport {
    store: Arc<dyn Store>,
    org_id: OrgId,
    project_id: Option<ProjectId>,
    after: i64,
    /// The head when the export began: it ends there, and a follower asks again from it.
    pub head: i64,
    /// Events left to send, when the reader set a limit.
    left: Option<u64>,
}

impl AuditExport {
    /// The next events, or `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<AuditEvent>>, StoreError> {
        if self.after >= self.head || self.left == Some(0) {
            return Ok(None);
        }
        let limit = self
            .left
            .map_or(PAGE, |left| PAGE.min(u32::try_from(left).unwrap_or(PAGE)));
        let mut page = self
            .store
            .audit_since(&AuditSince {
                org_id: self.org_id.clone(),
                project_id: self.project_id.clone(),
                after: self.after,
                limit,
            })
            .await?;
        page.retain(|event| event.seq <= self.head);
        let Some(last) = page.last() else {
            self.after = self.head;
            return Ok(None);
        };
        self.after = last.seq;
        if let Some(left) = &mut self.left {
            *left = left.saturating_sub(page.len() as u64);
        }
        Ok(Some(page))
    }
}

impl Keygate {
    /// Starts an export of the events `caller` may read (an organisation's, or one project's
    /// for a project-bound auditor), after sequence number `after`, at most `limit` of them.
    pub async fn export_audit(
        &self,
        caller: &Caller,
        after: i64,
        limit: Option<u64>,
    ) -> Result<AuditExport, ServiceError> {
        let project = caller.bound_project().cloned();
        self.authorize(caller, Permission::AuditRead, project.as_ref(), None)
            .await?;
        if after < 0 {
            return Err(ServiceError::BadCursor);
        }
        if limit == Some(0) {
            return Err(ValidationError::new("limit", "at least 1").into());
        }
        let head = self.store.audit_head().await?.seq;
        Ok(AuditExport {
            store: self.store.clone(),
            org_id: caller.org().clone(),
            project_id: project,
            after,
            head,
            left: limit,
        })
    }
}
