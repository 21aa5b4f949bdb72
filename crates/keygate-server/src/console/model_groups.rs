//! The model groups page: each group with its deployments, their weights and health on this
//! node (in flight, latency, breaker); the stored ones edited (as the admin API's JSON) and
//! deleted, and new ones added.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use keygate_core::Permission;
use keygate_llm::config::GroupFile;
use serde::Deserialize;

use super::pages::{self, Chrome, GroupDeployment, GroupLine};
use super::session::Signed;
use crate::gateway_state::GroupSource;
use crate::http::{ApiError, AppState};

async fn page(
    state: &AppState,
    signed: &Signed,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let caller = &signed.user.caller;
    let views = match state.gateway.list(&state.keygate, caller).await {
        Ok(views) => views,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui"),
    };
    let health = state.gateway.current().status();
    let groups = views
        .into_iter()
        .map(|view| {
            let json = serde_json::to_value(&view.group).unwrap_or_default();
            let deployments = json["deployments"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|d| {
                    let name = format!(
                        "{}/{}",
                        d["provider"].as_str().unwrap_or_default(),
                        d["model"].as_str().unwrap_or_default()
                    );
                    let now = health
                        .iter()
                        .find(|s| s.alias == view.alias && s.deployment == name);
                    GroupDeployment {
                        weight: d["weight"].as_u64().unwrap_or(1),
                        in_flight: now.map_or(0, |s| s.in_flight),
                        latency_ms: now.map_or_else(
                            || "—".to_owned(),
                            |s| format!("{:.1}", s.latency_micros as f64 / 1000.0),
                        ),
                        health: match now {
                            Some(s) if s.breaker_open => "breaker open",
                            Some(_) => "serving",
                            None => "not served",
                        },
                        name,
                    }
                })
                .collect();
            GroupLine {
                stored: view.source == GroupSource::Api,
                source: match view.source {
                    GroupSource::Config => "keygate.toml",
                    GroupSource::Api => "the admin API (stored)",
                },
                strategy: json["strategy"].as_str().unwrap_or("weighted").to_owned(),
                fallbacks: view.group.fallbacks.join(", "),
                json: serde_json::to_string_pretty(&view.group).unwrap_or_default(),
                alias: view.alias,
                deployments,
            }
        })
        .collect();
    let page = pages::ModelGroups {
        chrome: Chrome::new("Model groups", "model-groups", Some(signed.who())),
        groups,
        can_write: caller.may(Permission::ModelsWrite, None),
        csrf: signed.user.session.csrf.clone(),
        problem,
    };
    pages::render(status, &page)
}

pub(super) async fn list(State(state): State<AppState>, signed: Signed) -> Response {
    page(&state, &signed, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(super) struct GroupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    alias: String,
    #[serde(default)]
    group: String,
}

async fn put(state: &AppState, signed: &Signed, alias: &str, text: &str) -> Response {
    let group: Result<GroupFile, ApiError> = serde_json::from_str(text)
        .map_err(|err| ApiError::validation(format!("the group is not valid: {err}")));
    let saved = match group {
        Ok(group) => state
            .gateway
            .put(&state.keygate, &signed.user.caller, alias, group)
            .await
            .map_err(ApiError::from),
        Err(err) => Err(err),
    };
    match saved {
        Ok(_) => Redirect::to("/ui/model-groups").into_response(),
        Err(err) => page(state, signed, Some(err.message), err.status).await,
    }
}

/// Adds a stored group.
pub(super) async fn create(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<GroupForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    put(&state, &signed, form.alias.trim(), &form.group).await
}

/// Replaces a stored group.
pub(super) async fn replace(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(alias): Path<String>,
    Form(form): Form<GroupForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    put(&state, &signed, &alias, &form.group).await
}

/// Deletes a stored group.
pub(super) async fn delete(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(alias): Path<String>,
    Form(form): Form<GroupForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    match state
        .gateway
        .delete(&state.keygate, &signed.user.caller, &alias)
        .await
    {
        Ok(()) => Redirect::to("/ui/model-groups").into_response(),
        Err(err) => {
            let err = ApiError::from(err);
            page(&state, &signed, Some(err.message), err.status).await
        }
    }
}
