//! The audit page: the log newest first, filtered by action, a page at a time; the chain's
//! verification (for organisation-wide auditors, who may check it); and its export.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keygate_core::Permission;
use serde::Deserialize;

use super::pages::{self, AuditLine, ChainStatus, Chrome};
use super::session::Signed;
use crate::http::AppState;
use crate::service::AuditQuery;

const PAGE: u32 = 100;

#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditParams {
    #[serde(default)]
    action: String,
    before: Option<i64>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(params): Query<AuditParams>,
) -> Response {
    let caller = &signed.user.caller;
    let action = Some(params.action.trim().to_owned()).filter(|a| !a.is_empty());
    let query = AuditQuery {
        action,
        before: params.before,
        limit: Some(PAGE),
    };
    let (events, next) = match state.keygate.list_audit(caller, query).await {
        Ok(found) => found,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui/keys"),
    };
    // The chain spans every project: only an organisation-wide auditor checks it.
    let chain = if caller.may(Permission::AuditRead, None) {
        match state.keygate.verify_audit(caller, None).await {
            Ok(report) if report.ok => Some(ChainStatus {
                ok: true,
                text: format!(
                    "The chain verifies: {} entries, head {}.",
                    report.entries, report.head.seq
                ),
            }),
            Ok(report) => Some(ChainStatus {
                ok: false,
                text: format!(
                    "The chain is broken: {}",
                    report
                        .error
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "unknown break".to_owned())
                ),
            }),
            Err(err) => Some(ChainStatus {
                ok: false,
                text: format!("The chain could not be checked: {err}"),
            }),
        }
    } else {
        None
    };
    let next = next.map(|before| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("action", &params.action)
            .append_pair("before", &before.to_string())
            .finish();
        format!("/ui/audit?{query}")
    });
    let page = pages::Audit {
        chrome: Chrome::new("Audit log", "audit", Some(signed.who())),
        action: params.action.clone(),
        chain,
        events: events
            .into_iter()
            .map(|event| AuditLine {
                seq: event.seq,
                ts: event.ts.to_rfc3339(),
                actor: event.actor,
                action: event.action,
                outcome: event.outcome,
                target: event.target.unwrap_or_default(),
                details: event.details,
            })
            .collect(),
        next,
    };
    pages::render(StatusCode::OK, &page)
}

/// The whole log as NDJSON, as the admin API's export gives it.
pub(super) async fn export(State(state): State<AppState>, signed: Signed) -> Response {
    match state
        .keygate
        .export_audit(&signed.user.caller, 0, None)
        .await
    {
        Ok(export) => {
            let mut response = crate::http::routes::audit::export_body(export);
            response.headers_mut().insert(
                axum::http::header::CONTENT_DISPOSITION,
                axum::http::HeaderValue::from_static(
                    "attachment; filename=\"keygate-audit.ndjson\"",
                ),
            );
            response
        }
        Err(err) => pages::error(err, Some(signed.who()), "/ui/audit"),
    }
}
