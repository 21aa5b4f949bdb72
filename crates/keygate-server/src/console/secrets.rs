//! The secrets pages: metadata and versions only — a value goes in through a write-only field
//! and is never rendered, here or anywhere — put, rotate (optionally checked upstream first,
//! staying pending if the upstream refuses it) and promote.

use std::time::Duration;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use keygate_core::{Permission, SecretId};
use keygate_store::{SecretRecord, SecretVersion};
use secrecy::SecretString;
use serde::Deserialize;

use super::pages::{self, Chrome, SecretForm, SecretLine, VersionLine};
use super::session::Signed;
use crate::http::{ApiError, AppState};
use crate::service::{PutSecret, RotateSecret, SecretRotation, UpstreamCheck};

const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

fn line(secret: &SecretRecord) -> SecretLine {
    SecretLine {
        id: secret.id.to_string(),
        name: secret.name.clone(),
        project: secret.project_id.to_string(),
        description: secret.description.clone().unwrap_or_default(),
        rotation: secret.rotate_every.map_or_else(
            || "no policy".to_owned(),
            |every| format!("every {}", humanize(every)),
        ),
        created: secret.created_at.to_rfc3339(),
        updated: secret.updated_at.to_rfc3339(),
    }
}

fn humanize(span: Duration) -> String {
    let secs = span.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}

fn version_line(version: &SecretVersion) -> VersionLine {
    VersionLine {
        number: version.version,
        stage: version.stage.as_str(),
        created: version.created_at.to_rfc3339(),
        until: version
            .previous_until
            .map_or_else(String::new, |at| at.to_rfc3339()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListParams {
    #[serde(default)]
    project: String,
}

/// The secrets the user may read, and the form to put one.
pub(super) async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(params): Query<ListParams>,
) -> Response {
    let form = SecretForm {
        project: "default".to_owned(),
        ..SecretForm::default()
    };
    list_page(&state, &signed, &params.project, form, None, StatusCode::OK).await
}

async fn list_page(
    state: &AppState,
    signed: &Signed,
    project: &str,
    form: SecretForm,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let caller = &signed.user.caller;
    let filter = Some(project.trim().to_owned()).filter(|p| !p.is_empty());
    let secrets = match state.keygate.list_secrets(caller, filter).await {
        Ok(secrets) => secrets,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui/keys"),
    };
    let page = pages::Secrets {
        chrome: Chrome::new("Secrets", "secrets", Some(signed.who())),
        project: project.to_owned(),
        secrets: secrets.iter().map(line).collect(),
        can_write: caller.may(Permission::SecretsWrite, caller.bound_project()),
        csrf: signed.user.session.csrf.clone(),
        form,
        problem,
    };
    pages::render(status, &page)
}

#[derive(Deserialize)]
pub(super) struct PutForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    project: String,
    /// Moved into a `SecretString` at once.
    value: String,
    #[serde(default)]
    description: String,
}

impl std::fmt::Debug for PutForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutForm")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Puts a secret's new current value; on to its page.
pub(super) async fn put(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<PutForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let description = Some(form.description.trim().to_owned()).filter(|d| !d.is_empty());
    let kept = SecretForm {
        name: form.name.clone(),
        project: form.project.clone(),
        description: form.description.clone(),
    };
    let input = PutSecret {
        project: form.project.trim().to_owned(),
        name: form.name.trim().to_owned(),
        value: SecretString::from(form.value),
        description,
        grace: DEFAULT_GRACE,
        rotate_every: None,
    };
    match state.keygate.put_secret(&signed.user.caller, input).await {
        Ok((secret, _)) => Redirect::to(&format!("/ui/secrets/{}", secret.id)).into_response(),
        Err(err) => {
            let err = ApiError::from(err);
            list_page(&state, &signed, "", kept, Some(err.message), err.status).await
        }
    }
}

fn secret_id(text: &str) -> Result<SecretId, ApiError> {
    SecretId::parse(text).map_err(|_| ApiError::not_found("secret"))
}

/// A secret's metadata and versions, with rotation and promotion.
pub(super) async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    show_page(&state, &signed, &id, None).await
}

async fn show_page(
    state: &AppState,
    signed: &Signed,
    id: &str,
    notice: Option<String>,
) -> Response {
    let caller = &signed.user.caller;
    let found = match secret_id(id) {
        Ok(id) => state
            .keygate
            .get_secret(caller, &id)
            .await
            .map_err(ApiError::from),
        Err(err) => Err(err),
    };
    let (secret, mut versions) = match found {
        Ok(found) => found,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui/secrets"),
    };
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let mut chrome = Chrome::new(secret.name.clone(), "secrets", Some(signed.who()));
    chrome.notice = notice;
    let page = pages::Secret {
        chrome,
        can_write: caller.may(Permission::SecretsWrite, Some(&secret.project_id)),
        secret: line(&secret),
        versions: versions.iter().map(version_line).collect(),
        csrf: signed.user.session.csrf.clone(),
    };
    pages::render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub(super) struct RotateForm {
    #[serde(default)]
    csrf: String,
    /// Moved into a `SecretString` at once.
    value: String,
    #[serde(default)]
    grace_period_seconds: Option<u64>,
    #[serde(default)]
    check_url: String,
    #[serde(default)]
    check_header: String,
    #[serde(default)]
    check_prefix: String,
}

impl std::fmt::Debug for RotateForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateForm").finish_non_exhaustive()
    }
}

/// Rotates a secret: promoted at once, or left pending when its upstream check fails.
pub(super) async fn rotate(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RotateForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let back = format!("/ui/secrets/{id}");
    let secret = match secret_id(&id) {
        Ok(secret) => secret,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui/secrets"),
    };
    let check = Some(form.check_url.trim().to_owned())
        .filter(|url| !url.is_empty())
        .map(|url| UpstreamCheck {
            url,
            header: Some(form.check_header.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "authorization".to_owned()),
            prefix: form.check_prefix,
        });
    let input = RotateSecret {
        value: SecretString::from(form.value),
        grace: form
            .grace_period_seconds
            .map_or(DEFAULT_GRACE, Duration::from_secs),
        check,
    };
    let notice = match state
        .keygate
        .rotate_secret(&signed.user.caller, &secret, input)
        .await
    {
        Ok(SecretRotation::Promoted { version }) => format!("Version {version} is current."),
        Ok(SecretRotation::CheckFailed { version, reason }) => format!(
            "The upstream refused version {version} ({reason}): it waits, pending; the current \
             value is unchanged."
        ),
        Err(err) => return pages::error(err, Some(signed.who()), &back),
    };
    show_page(&state, &signed, &id, Some(notice)).await
}

#[derive(Debug, Deserialize)]
pub(super) struct PromoteForm {
    #[serde(default)]
    csrf: String,
    version: i64,
    #[serde(default)]
    grace_period_seconds: Option<u64>,
}

/// Makes a pending version current.
pub(super) async fn promote(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<PromoteForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let back = format!("/ui/secrets/{id}");
    let secret = match secret_id(&id) {
        Ok(secret) => secret,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui/secrets"),
    };
    let grace = form
        .grace_period_seconds
        .map_or(DEFAULT_GRACE, Duration::from_secs);
    match state
        .keygate
        .promote_secret(&signed.user.caller, &secret, form.version, grace)
        .await
    {
        Ok(()) => {
            show_page(
                &state,
                &signed,
                &id,
                Some(format!("Version {} is current.", form.version)),
            )
            .await
        }
        Err(err) => pages::error(err, Some(signed.who()), &back),
    }
}
