//! `/admin/v1/secrets`: the vault. Values go in; they come out only through `reveal`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use keygate_core::SecretId;
use secrecy::{ExposeSecret, SecretString};

use crate::ServiceError;
use crate::http::dto::{
    DueParams, DueSecretList, DueSecretView, ListSecretsParams, PromoteBody, PutSecretBody,
    RevealBody, RevealedValue, RotateSecretBody, RotationView, SecretList, SecretView,
};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiJson, ApiQuery, OptionalJson, RequestMeta, bearer};
use crate::http::{ApiError, AppState};
use crate::service::{PutSecret, RotateSecret, SecretRotation, UpstreamCheck};

fn secret_id(text: &str) -> Result<SecretId, ApiError> {
    SecretId::parse(text).map_err(|_| ApiError::not_found("secret"))
}

/// Store a value as a secret's new current version (the secret is created if new). The
/// version that was current stays usable for `grace_period_seconds`.
#[utoipa::path(post, path = "/admin/v1/secrets", tag = "secrets",
    request_body = PutSecretBody,
    responses((status = 200, body = SecretView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn put(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(body): ApiJson<PutSecretBody>,
) -> Result<Json<SecretView>, ApiError> {
    let (secret, _) = state
        .keygate
        .put_secret(
            &caller,
            PutSecret {
                project: body.project,
                name: body.name,
                value: SecretString::from(body.value),
                description: body.description,
                grace: Duration::from_secs(body.grace_period_seconds),
                rotate_every: body.rotate_every_seconds.map(Duration::from_secs),
            },
        )
        .await?;
    let (_, versions) = state.keygate.get_secret(&caller, &secret.id).await?;
    Ok(Json(SecretView::new(&secret, &versions)))
}

/// List secrets (metadata only).
#[utoipa::path(get, path = "/admin/v1/secrets", tag = "secrets", params(ListSecretsParams),
    responses((status = 200, body = SecretList), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<ListSecretsParams>,
) -> Result<Json<SecretList>, ApiError> {
    let secrets = state.keygate.list_secrets(&caller, params.project).await?;
    Ok(Json(SecretList {
        data: secrets.iter().map(|s| SecretView::new(s, &[])).collect(),
    }))
}

/// A secret with its versions' numbers, stages and times; never a value.
#[utoipa::path(get, path = "/admin/v1/secrets/{id}", tag = "secrets",
    params(("id" = String, Path, description = "Secret id")),
    responses((status = 200, body = SecretView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<SecretView>, ApiError> {
    let (secret, versions) = state.keygate.get_secret(&caller, &secret_id(&id)?).await?;
    Ok(Json(SecretView::new(&secret, &versions)))
}

/// Delete a secret: every sealed version is erased.
#[utoipa::path(delete, path = "/admin/v1/secrets/{id}", tag = "secrets",
    params(("id" = String, Path, description = "Secret id")),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .keygate
        .delete_secret(&caller, &secret_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Decrypt a secret's value (the current version unless `version` is given). Owners only;
/// every call is audited.
#[utoipa::path(post, path = "/admin/v1/secrets/{id}/reveal", tag = "secrets",
    params(("id" = String, Path, description = "Secret id")),
    request_body = RevealBody,
    responses((status = 200, body = RevealedValue), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 500, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn reveal(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RevealBody>,
) -> Result<impl IntoResponse, ApiError> {
    let revealed = state
        .keygate
        .reveal_secret(&caller, &secret_id(&id)?, body.version)
        .await?;
    let mut response = Json(RevealedValue {
        value: revealed.value.expose_secret().to_owned(),
        version: revealed.version,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A secret's current value for a process holding an API key of the secret's project with a
/// `secrets:read` (or `secrets:read:<name>`) scope. This is what `keygate run` calls.
#[utoipa::path(get, path = "/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Secret name in the key's project")),
    responses((status = 200, body = RevealedValue), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn read_with_key(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let key = bearer(&headers).ok_or(ServiceError::MissingCredentials)?;
    let read = state
        .keygate
        .read_secret_with_key(key, &name, meta.client_ip, meta.request_id)
        .await?;
    let mut response = Json(RevealedValue {
        value: read.value.expose_secret().to_owned(),
        version: read.version,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Rotate a secret: the value becomes a pending version; if `check` is given, keygate calls
/// the upstream with it and promotes it only on a 2xx answer. The version it replaces keeps
/// working for the grace period.
#[utoipa::path(post, path = "/admin/v1/secrets/{id}/rotate", tag = "secrets",
    params(("id" = String, Path, description = "Secret id")),
    request_body = RotateSecretBody,
    responses((status = 200, body = RotationView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RotateSecretBody>,
) -> Result<Json<RotationView>, ApiError> {
    let check = body.check.map(|c| {
        let header = c.header.unwrap_or_else(|| "authorization".to_owned());
        let prefix = c.prefix.unwrap_or_else(|| {
            if header.eq_ignore_ascii_case("authorization") {
                "Bearer ".to_owned()
            } else {
                String::new()
            }
        });
        UpstreamCheck {
            url: c.url,
            header,
            prefix,
        }
    });
    let outcome = state
        .keygate
        .rotate_secret(
            &caller,
            &secret_id(&id)?,
            RotateSecret {
                value: SecretString::from(body.value),
                grace: Duration::from_secs(body.grace_period_seconds),
                check,
            },
        )
        .await?;
    Ok(Json(match outcome {
        SecretRotation::Promoted { version } => RotationView {
            version,
            stage: "current".to_owned(),
            check_failed: None,
        },
        SecretRotation::CheckFailed { version, reason } => RotationView {
            version,
            stage: "pending".to_owned(),
            check_failed: Some(reason),
        },
    }))
}

/// Promote a pending version to current.
#[utoipa::path(post, path = "/admin/v1/secrets/{id}/promote", tag = "secrets",
    params(("id" = String, Path, description = "Secret id")),
    request_body = PromoteBody,
    responses((status = 200, body = SecretView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn promote(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PromoteBody>,
) -> Result<Json<SecretView>, ApiError> {
    let id = secret_id(&id)?;
    state
        .keygate
        .promote_secret(
            &caller,
            &id,
            body.version,
            Duration::from_secs(body.grace_period_seconds),
        )
        .await?;
    let (secret, versions) = state.keygate.get_secret(&caller, &id).await?;
    Ok(Json(SecretView::new(&secret, &versions)))
}

/// Secrets whose rotation policy says they are due (or due within `within_seconds`).
#[utoipa::path(get, path = "/admin/v1/secrets/due", tag = "secrets", params(DueParams),
    responses((status = 200, body = DueSecretList), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn due(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<DueParams>,
) -> Result<Json<DueSecretList>, ApiError> {
    let due = state
        .keygate
        .secrets_due(
            &caller,
            params.project,
            Duration::from_secs(params.within_seconds),
        )
        .await?;
    Ok(Json(DueSecretList {
        data: due.iter().map(DueSecretView::from).collect(),
    }))
}
