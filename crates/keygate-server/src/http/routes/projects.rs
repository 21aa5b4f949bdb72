//! `/admin/v1/projects`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::http::dto::{CreateProjectBody, ProjectList, ProjectView};
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

/// Create a project in the caller's organisation.
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
    let project = state.keygate.create_project(&caller, &body.name).await?;
    Ok((StatusCode::CREATED, Json(ProjectView::from(&project))))
}
