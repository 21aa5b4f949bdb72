//! `/admin/v1/projects`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::http::dto::{
    AddCreditsBody, CreateProjectBody, ProjectList, ProjectView, UpdateProjectBody,
};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiJson};
use crate::http::{ApiError, AppState};

/// List the projects the caller can see.
#[utoipa::path(get, path = "/admin/v1/projects", tag = "projects",
    responses((status = 200, body = ProjectList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<ProjectList>, ApiError> {
    let projects = state.keygate.list_projects(&caller).await?;
    Ok(Json(ProjectList {
        data: projects.iter().map(ProjectView::from).collect(),
    }))
}

/// Create a project in the caller's organisation, optionally with limits.
#[utoipa::path(post, path = "/admin/v1/projects", tag = "projects",
    request_body = CreateProjectBody,
    responses((status = 201, body = ProjectView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(body): ApiJson<CreateProjectBody>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let limits = body.limits()?;
    let project = state
        .keygate
        .create_project(&caller, &body.name, limits)
        .await?;
    Ok((StatusCode::CREATED, Json(ProjectView::from(&project))))
}

/// Show one project, with its limits.
#[utoipa::path(get, path = "/admin/v1/projects/{project}", tag = "projects",
    params(("project" = String, Path, description = "Project id (`proj_…`) or name")),
    responses((status = 200, body = ProjectView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(project): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let project = state.keygate.get_project(&caller, &project).await?;
    Ok(Json(ProjectView::from(&project)))
}

/// Change a project's limits, counted for all its keys together, and its anomaly actions.
/// Needs an organisation-wide owner or admin token.
#[utoipa::path(patch, path = "/admin/v1/projects/{project}", tag = "projects",
    params(("project" = String, Path, description = "Project id (`proj_…`) or name")),
    request_body = UpdateProjectBody,
    responses((status = 200, body = ProjectView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn update(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<UpdateProjectBody>,
) -> Result<Json<ProjectView>, ApiError> {
    let change = body.into_change()?;
    let project = state
        .keygate
        .update_project(&caller, &project, change)
        .await?;
    Ok(Json(ProjectView::from(&project)))
}

/// Add to a project's prepaid credits, shared by all its keys: dollars that never reset,
/// drawn down by their LLM spend. Needs an organisation-wide owner or admin token.
#[utoipa::path(post, path = "/admin/v1/projects/{project}/credits", tag = "projects",
    params(("project" = String, Path, description = "Project id (`proj_…`) or name")),
    request_body = AddCreditsBody,
    responses((status = 200, body = ProjectView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn add_credits(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<AddCreditsBody>,
) -> Result<Json<ProjectView>, ApiError> {
    let project = state
        .keygate
        .add_project_credits(&caller, &project, body.usd)
        .await?;
    Ok(Json(ProjectView::from(&project)))
}
