//! The keys pages: the list (filtered, a page at a time), a key's page with its actions
//! (rotate with a grace period, suspend, resume, revoke with a reason), and creation — the
//! secret shown once. Each handler calls one service operation, as the admin API's do.

use std::time::Duration;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use keygate_core::{KeyId, KeyRecord, KeyStatus, Permission, Timestamp};
use serde::Deserialize;

use super::pages::{self, Chrome, KeyFilter, KeyForm, KeyLine, StatusOption};
use super::session::Signed;
use crate::http::AppState;
use crate::http::dto::CreateKeyBody;
use crate::http::{ApiError, dto::StatusParam};
use crate::service::KeyQuery;

const PAGE: u32 = 50;
const STATUSES: [(&str, &str); 6] = [
    ("", "Any but deleted"),
    ("active", "Active"),
    ("suspended", "Suspended"),
    ("revoked", "Revoked"),
    ("expired", "Expired"),
    ("deleted", "Deleted"),
];

fn when(at: Option<Timestamp>, none: &str) -> String {
    at.map_or_else(|| none.to_owned(), |at| at.to_rfc3339())
}

fn line(key: &KeyRecord, now: Timestamp) -> KeyLine {
    let status = key.status(now);
    let reason = match status {
        KeyStatus::Revoked => key.revoked_reason.clone(),
        KeyStatus::Suspended => key.suspended_reason.clone(),
        _ => None,
    };
    let list = |items: Vec<String>, none: &str| {
        if items.is_empty() {
            none.to_owned()
        } else {
            items.join(", ")
        }
    };
    KeyLine {
        id: key.id.to_string(),
        name: key.name.clone(),
        hint: key.hint.as_str().to_owned(),
        status: status.as_str().to_owned(),
        reason,
        project: key
            .project_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        env: key.env.as_str().to_owned(),
        scopes: list(key.scopes.iter().map(ToString::to_string).collect(), "none"),
        ip_allow: list(
            key.ip_allow.iter().map(ToString::to_string).collect(),
            "anywhere",
        ),
        expires: when(key.expires_at, "never"),
        created: key.created_at.to_rfc3339(),
        last_used: when(key.last_used_at, "never"),
        generation: key.generation,
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    project: String,
    cursor: Option<String>,
}

/// The keys the user may read, filtered, a page at a time.
pub(super) async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(params): Query<ListParams>,
) -> Response {
    let status: Option<StatusParam> = match params.status.as_str() {
        "" => None,
        text => match serde_json::from_value(serde_json::Value::String(text.to_owned())) {
            Ok(status) => Some(status),
            Err(_) => {
                return pages::error(
                    ApiError::validation("status: active, suspended, revoked, expired or deleted"),
                    Some(signed.who()),
                    "/ui/keys",
                );
            }
        },
    };
    let project = Some(params.project.trim().to_owned()).filter(|p| !p.is_empty());
    let name = Some(params.q.trim().to_owned()).filter(|q| !q.is_empty());
    let query = KeyQuery {
        project: project.clone(),
        name,
        env: None,
        status: status.map(Into::into),
        cursor: params.cursor.clone(),
        limit: Some(PAGE),
    };
    let caller = &signed.user.caller;
    let page = match state.keygate.list_keys(caller, query).await {
        Ok(page) => page,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui/keys"),
    };
    let now = state.keygate.clock().now();
    let keys = page.keys.iter().map(|key| line(key, now)).collect();
    let next = page.next_cursor.map(|cursor| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &params.q)
            .append_pair("status", &params.status)
            .append_pair("project", &params.project)
            .append_pair("cursor", &cursor)
            .finish();
        format!("/ui/keys?{query}")
    });
    let page = pages::Keys {
        chrome: Chrome::new("Keys", "keys", Some(signed.who())),
        filter: KeyFilter {
            q: params.q.clone(),
            project: params.project.clone(),
        },
        statuses: STATUSES
            .iter()
            .map(|(value, label)| StatusOption {
                value,
                label,
                selected: *value == params.status,
            })
            .collect(),
        keys,
        next,
        can_write: caller.may(Permission::KeysWrite, caller.bound_project()),
    };
    pages::render(StatusCode::OK, &page)
}

/// The form for a new key.
pub(super) async fn new_form(signed: Signed) -> Response {
    let form = KeyForm {
        project: "default".to_owned(),
        env: "live".to_owned(),
        ..KeyForm::default()
    };
    new_page(&signed, form, None, StatusCode::OK)
}

fn new_page(
    signed: &Signed,
    form: KeyForm,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let page = pages::KeyNew {
        chrome: Chrome::new("Create a key", "keys", Some(signed.who())),
        csrf: signed.user.session.csrf.clone(),
        form,
        problem,
    };
    pages::render(status, &page)
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    key: KeyForm,
}

pub(super) fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A `datetime-local` value (`2027-01-31T12:00`, UTC as the forms say) as RFC 3339; `None`
/// when empty.
pub(super) fn expiry(text: &str) -> Option<String> {
    match text.trim() {
        "" => None,
        // With or without seconds, as browsers send it.
        local if local.len() == 16 => Some(format!("{local}:00Z")),
        local if local.len() == 19 && !local.ends_with('Z') => Some(format!("{local}Z")),
        other => Some(other.to_owned()),
    }
}

/// The form's key as the admin API's body, so the same checks apply.
fn body_of(form: &KeyForm) -> Result<CreateKeyBody, ApiError> {
    let body = serde_json::json!({
        "project": form.project.trim(),
        "name": form.name.trim(),
        "env": if form.env == "test" { "test" } else { "live" },
        "scopes": lines(&form.scopes),
        "expires_at": expiry(&form.expires_at),
        "ip_allow": lines(&form.ip_allow),
    });
    serde_json::from_value(body).map_err(|_| ApiError::validation("the form is not complete"))
}

/// Creates a key and shows its secret, once.
pub(super) async fn create(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let input = match body_of(&form.key).and_then(CreateKeyBody::into_input) {
        Ok(input) => input,
        Err(err) => return new_page(&signed, form.key, Some(err.message), err.status),
    };
    match state.keygate.create_key(&signed.user.caller, input).await {
        Ok((secret, record)) => secret_page(&signed, &record, secret.expose(), "Key created"),
        Err(err) => {
            let err = ApiError::from(err);
            new_page(&signed, form.key, Some(err.message), err.status)
        }
    }
}

fn secret_page(signed: &Signed, record: &KeyRecord, secret: &str, title: &str) -> Response {
    let page = pages::KeySecret {
        chrome: Chrome::new(title, "keys", Some(signed.who())),
        what: "key",
        name: record.name.clone(),
        secret: secret.to_owned(),
        back: format!("/ui/keys/{}", record.id),
        back_label: "Done: go to the key",
    };
    pages::render(StatusCode::OK, &page)
}

fn key_id(text: &str) -> Result<KeyId, ApiError> {
    KeyId::parse(text).map_err(|_| ApiError::not_found("key"))
}

/// One key, with the actions the user may take.
pub(super) async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let caller = &signed.user.caller;
    let key = match key_id(&id) {
        Ok(id) => state
            .keygate
            .get_key(caller, &id)
            .await
            .map_err(ApiError::from),
        Err(err) => Err(err),
    };
    let key = match key {
        Ok(key) => key,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui/keys"),
    };
    let now = state.keygate.clock().now();
    let (chart, usage) = match super::usage::key_usage(&state, caller, &key.id).await {
        Ok(found) => found,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui/keys"),
    };
    let refusals = match state.keygate.key_refusals(caller, &key.id, 7).await {
        Ok(found) => found
            .into_iter()
            .map(|r| pages::RefusalLine {
                at: r.at.to_rfc3339(),
                endpoint: r.endpoint,
                model: r.model,
                status: r.status,
                code: r.error_code.unwrap_or_default(),
                client_ip: r.client_ip.unwrap_or_default(),
            })
            .collect(),
        Err(err) => return pages::error(err, Some(signed.who()), "/ui/keys"),
    };
    let page = pages::Key {
        chrome: Chrome::new(key.name.clone(), "keys", Some(signed.who())),
        can_write: caller.may(Permission::KeysWrite, key.project_id.as_ref()),
        key: line(&key, now),
        edit: edit_of(&key),
        csrf: signed.user.session.csrf.clone(),
        chart,
        usage,
        refusals,
    };
    pages::render(StatusCode::OK, &page)
}

/// The edit form, filled with the key as it is.
fn edit_of(key: &KeyRecord) -> pages::KeyEdit {
    let joined = |items: Vec<String>| items.join("\n");
    pages::KeyEdit {
        name: key.name.clone(),
        scopes: joined(key.scopes.iter().map(ToString::to_string).collect()),
        // `datetime-local` wants `2027-01-31T12:00`.
        expires_at: key
            .expires_at
            .map(|at| at.to_rfc3339().chars().take(16).collect())
            .unwrap_or_default(),
        ip_allow: joined(key.ip_allow.iter().map(ToString::to_string).collect()),
        publishable: key.publishable.is_some(),
        origins: key
            .publishable
            .as_ref()
            .map(|origins| origins.to_strings().join("\n"))
            .unwrap_or_default(),
        limits: serde_json::to_string_pretty(&crate::http::dto::LimitsParam::from(&key.limits))
            .unwrap_or_else(|_| "{}".to_owned()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    expires_at: String,
    #[serde(default)]
    ip_allow: String,
    origins: Option<String>,
    #[serde(default)]
    limits: String,
}

/// The form as the admin API's patch, so the same checks apply.
fn patch_of(form: &EditForm) -> Result<crate::http::dto::UpdateKeyBody, ApiError> {
    let limits: serde_json::Value = match form.limits.trim() {
        "" => serde_json::json!({}),
        text => serde_json::from_str(text)
            .map_err(|_| ApiError::validation("limits: JSON, as the admin API takes them"))?,
    };
    let mut body = serde_json::json!({
        "name": form.name.trim(),
        "scopes": lines(&form.scopes),
        "expires_at": expiry(&form.expires_at),
        "ip_allow": lines(&form.ip_allow),
        "limits": limits,
    });
    if let (Some(origins), Some(fields)) = (&form.origins, body.as_object_mut()) {
        fields.insert("origins".into(), lines(origins).into());
    }
    serde_json::from_value(body).map_err(|err| ApiError::validation(err.to_string()))
}

/// Changes a key's name, scopes, expiry, addresses, origins and limits.
pub(super) async fn edit(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<EditForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let back = format!("/ui/keys/{id}");
    let patch = key_id(&id).and_then(|id| {
        patch_of(&form)
            .and_then(crate::http::dto::UpdateKeyBody::into_patch)
            .map(|patch| (id, patch))
    });
    let (id, patch) = match patch {
        Ok(found) => found,
        Err(err) => return pages::error(err, Some(signed.who()), &back),
    };
    match state
        .keygate
        .update_key(&signed.user.caller, &id, patch)
        .await
    {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(err) => pages::error(err, Some(signed.who()), &back),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    grace_period_seconds: Option<u64>,
}

/// Rotates, suspends, resumes or revokes a key.
pub(super) async fn act(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let back = format!("/ui/keys/{id}");
    let id = match key_id(&id) {
        Ok(id) => id,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui/keys"),
    };
    let keygate = &state.keygate;
    let caller = &signed.user.caller;
    let reason = form.reason.trim();
    let done = match action.as_str() {
        "rotate" => {
            let grace = Duration::from_secs(form.grace_period_seconds.unwrap_or(3600));
            return match keygate.rotate_key(caller, &id, grace, None).await {
                Ok(rotated) => secret_page(
                    &signed,
                    &rotated.record,
                    rotated.key.expose(),
                    "Key rotated",
                ),
                Err(err) => pages::error(err, Some(signed.who()), &back),
            };
        }
        "suspend" => keygate.suspend_key(caller, &id, reason).await,
        "resume" => keygate.resume_key(caller, &id, reason).await,
        "revoke" => keygate.revoke_key(caller, &id, reason).await,
        _ => return pages::error(ApiError::not_found("action"), Some(signed.who()), &back),
    };
    match done {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(err) => pages::error(err, Some(signed.who()), &back),
    }
}
