//! Reading and verifying the audit log.

use keygate_core::audit::ChainVerifier;
use keygate_core::{AuditEvent, ChainBreak, ChainHead, Permission, ValidationError};
use keygate_store::{AuditFilter, Store, StoreError};
use serde::Serialize;

use super::{Caller, Keygate};
use crate::ServiceError;

const PAGE: u32 = 1000;

/// Which events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<String>,
    /// Only events older than this sequence number (the previous page's cursor).
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub ok: bool,
    pub entries: u64,
    pub head: ChainHead,
    pub error: Option<ChainBreak>,
}

/// Walks the chain from the first entry to the stored head, and checks it still holds
/// `anchor` (a head saved earlier, outside the database). Works on the store directly, so the
/// CLI can verify a database offline.
pub async fn verify_audit_chain(
    store: &dyn Store,
    anchor: Option<ChainHead>,
) -> Result<AuditReport, StoreError> {
    let head = store.audit_head().await?;
    let mut verifier = anchor.map_or_else(ChainVerifier::default, ChainVerifier::with_anchor);
    let mut after = 0;
    let mut checked = 0u64;
    loop {
        let page = store.audit_chain_page(after, head.seq, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for event in &page {
            if let Err(err) = verifier.push(event) {
                return Ok(AuditReport {
                    ok: false,
                    entries: checked,
                    head,
                    error: Some(err),
                });
            }
            checked += 1;
        }
    }
    Ok(match verifier.finish(&head) {
        Ok((entries, _)) => AuditReport {
            ok: true,
            entries,
            head,
            error: None,
        },
        Err(err) => AuditReport {
            ok: false,
            entries: checked,
            head,
            error: Some(err),
        },
    })
}

impl Keygate {
    pub async fn list_audit(
        &self,
        caller: &Caller,
        query: AuditQuery,
    ) -> Result<(Vec<AuditEvent>, Option<i64>), ServiceError> {
        let project = caller.bound_project().cloned();
        self.authorize(caller, Permission::AuditRead, project.as_ref(), None)
            .await?;
        let limit = query.limit.unwrap_or(50);
        if limit == 0 || limit > 500 {
            return Err(ValidationError::new("limit", "between 1 and 500").into());
        }
        if query.before.is_some_and(|b| b < 1) {
            return Err(ServiceError::BadCursor);
        }
        let events = self
            .store
            .list_audit(&AuditFilter {
                org_id: caller.org().clone(),
                project_id: project,
                action: query.action,
                before: query.before,
                limit,
            })
            .await?;
        let next = if events.len() == limit as usize {
            events.last().map(|e| e.seq)
        } else {
            None
        };
        Ok((events, next))
    }

    pub async fn verify_audit(
        &self,
        caller: &Caller,
        anchor: Option<ChainHead>,
    ) -> Result<AuditReport, ServiceError> {
        // The chain spans every project, so checking it takes an organisation-wide auditor.
        self.authorize(caller, Permission::AuditRead, None, None)
            .await?;
        Ok(verify_audit_chain(self.store.as_ref(), anchor).await?)
    }
}
