//! The anomalies page: what the detectors found, open or acknowledged, with the evidence;
//! acknowledge one (with a note) or suspend its key.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use keygate_core::{AnomalyId, Permission};
use serde::Deserialize;

use super::pages::{self, AnomalyLine, Chrome, StatusOption};
use super::session::Signed;
use crate::anomalies::AnomalyQuery;
use crate::http::{ApiError, AppState};

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListParams {
    #[serde(default)]
    state: String,
    cursor: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(params): Query<ListParams>,
) -> Response {
    let acknowledged = match params.state.as_str() {
        "acknowledged" => Some(true),
        "all" => None,
        _ => Some(false),
    };
    let caller = &signed.user.caller;
    let query = AnomalyQuery {
        acknowledged,
        cursor: params.cursor.clone(),
        limit: Some(50),
        ..AnomalyQuery::default()
    };
    let (found, next) = match state.anomalies.list(caller, query).await {
        Ok(found) => found,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui"),
    };
    let chosen = match acknowledged {
        Some(false) => "open",
        Some(true) => "acknowledged",
        None => "all",
    };
    let next = next.map(|cursor| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("state", chosen)
            .append_pair("cursor", &cursor)
            .finish();
        format!("/ui/anomalies?{query}")
    });
    let page = pages::Anomalies {
        chrome: Chrome::new("Anomalies", "anomalies", Some(signed.who())),
        states: [
            ("open", "Open"),
            ("acknowledged", "Acknowledged"),
            ("all", "All"),
        ]
        .iter()
        .map(|(value, label)| StatusOption {
            value,
            label,
            selected: *value == chosen,
        })
        .collect(),
        anomalies: found.iter().map(AnomalyLine::from).collect(),
        next,
        can_write: caller.may(Permission::KeysWrite, caller.bound_project()),
        csrf: signed.user.session.csrf.clone(),
    };
    pages::render(StatusCode::OK, &page)
}

#[derive(Debug, Deserialize)]
pub(super) struct AckForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// Acknowledges an anomaly; back to the list.
pub(super) async fn ack(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<AckForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let Ok(id) = AnomalyId::parse(&id) else {
        return pages::error(
            ApiError::not_found("anomaly"),
            Some(signed.who()),
            "/ui/anomalies",
        );
    };
    let note = Some(form.note.trim()).filter(|n| !n.is_empty());
    match state
        .anomalies
        .acknowledge(&signed.user.caller, &id, note)
        .await
    {
        Ok(_) => Redirect::to("/ui/anomalies").into_response(),
        Err(err) => pages::error(err, Some(signed.who()), "/ui/anomalies"),
    }
}
