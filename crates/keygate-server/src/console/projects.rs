//! The projects page: each project with the limits its keys share, changed in place; a new
//! project.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use keygate_core::Permission;
use keygate_store::ProjectChange;
use serde::Deserialize;

use super::pages::{self, Chrome, ProjectLine};
use super::session::Signed;
use crate::http::dto::{LimitsParam, parse_limits};
use crate::http::{ApiError, AppState};

fn limits_of(text: &str) -> Result<keygate_core::KeyLimits, ApiError> {
    let value = match text.trim() {
        "" => serde_json::json!({}),
        text => serde_json::from_str(text)
            .map_err(|_| ApiError::validation("limits: JSON, as the admin API takes them"))?,
    };
    parse_limits(value)
}

async fn page(
    state: &AppState,
    signed: &Signed,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let caller = &signed.user.caller;
    let projects = match state.keygate.list_projects(caller).await {
        Ok(projects) => projects,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui"),
    };
    let page = pages::Projects {
        chrome: Chrome::new("Projects", "projects", Some(signed.who())),
        projects: projects
            .iter()
            .map(|p| ProjectLine {
                id: p.id.to_string(),
                name: p.name.clone(),
                limits: serde_json::to_string(&LimitsParam::from(&p.limits))
                    .unwrap_or_else(|_| "{}".to_owned()),
            })
            .collect(),
        can_write: caller.may(Permission::ProjectsWrite, None),
        csrf: signed.user.session.csrf.clone(),
        problem,
    };
    pages::render(status, &page)
}

pub(super) async fn list(State(state): State<AppState>, signed: Signed) -> Response {
    page(&state, &signed, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(super) struct ProjectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    limits: String,
}

/// Creates a project.
pub(super) async fn create(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<ProjectForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let created = match limits_of(&form.limits) {
        Ok(limits) => state
            .keygate
            .create_project(&signed.user.caller, form.name.trim(), limits)
            .await
            .map_err(ApiError::from),
        Err(err) => Err(err),
    };
    match created {
        Ok(_) => Redirect::to("/ui/projects").into_response(),
        Err(err) => page(&state, &signed, Some(err.message), err.status).await,
    }
}

/// Replaces a project's limits.
pub(super) async fn set_limits(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(project): Path<String>,
    Form(form): Form<ProjectForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let changed = match limits_of(&form.limits) {
        Ok(limits) => state
            .keygate
            .update_project(
                &signed.user.caller,
                &project,
                ProjectChange {
                    limits: Some(limits),
                    ..ProjectChange::default()
                },
            )
            .await
            .map_err(ApiError::from),
        Err(err) => Err(err),
    };
    match changed {
        Ok(_) => Redirect::to("/ui/projects").into_response(),
        Err(err) => page(&state, &signed, Some(err.message), err.status).await,
    }
}
