//! The admin tokens page, for those who may manage them: each token with its role and state;
//! a new one (its secret shown once); a revocation with a reason.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use keygate_core::{KeyId, Role, Timestamp};
use serde::Deserialize;

use super::keys::expiry;
use super::pages::{self, Chrome, TokenLine};
use super::session::Signed;
use crate::http::{ApiError, AppState};
use crate::service::CreateToken;

async fn page(
    state: &AppState,
    signed: &Signed,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let caller = &signed.user.caller;
    let tokens = match state.keygate.list_tokens(caller).await {
        Ok(tokens) => tokens,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui"),
    };
    let sessions = match state.keygate.list_console_sessions(caller).await {
        Ok(sessions) => sessions,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui"),
    };
    let now = state.keygate.clock().now();
    let page = pages::Tokens {
        sessions: sessions
            .iter()
            .map(|s| pages::SessionLine {
                id: s.id.clone(),
                name: s.name.clone(),
                subject: s.subject.clone(),
                role: s.role.as_str(),
                started: s.created_at.to_rfc3339(),
                last_seen: s.last_seen_at.to_rfc3339(),
                own: s.id == signed.user.session.id,
            })
            .collect(),
        chrome: Chrome::new("Admin tokens", "tokens", Some(signed.who())),
        tokens: tokens
            .iter()
            .map(|t| TokenLine {
                id: t.id.to_string(),
                name: t.name.clone(),
                hint: t.hint.as_str().to_owned(),
                role: t.role.map_or("", Role::as_str),
                project: t
                    .project_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                status: t.status(now).as_str(),
                expires: t
                    .expires_at
                    .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339()),
                last_used: t
                    .last_used_at
                    .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339()),
            })
            .collect(),
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        csrf: signed.user.session.csrf.clone(),
        problem,
    };
    pages::render(status, &page)
}

pub(super) async fn list(State(state): State<AppState>, signed: Signed) -> Response {
    page(&state, &signed, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    expires_at: String,
}

fn input_of(form: &TokenForm) -> Result<CreateToken, ApiError> {
    let role = form
        .role
        .parse::<Role>()
        .map_err(|_| ApiError::validation("role: owner, admin, operator, auditor or viewer"))?;
    let expires_at = expiry(&form.expires_at)
        .map(|text| {
            Timestamp::parse_rfc3339(&text)
                .ok_or_else(|| ApiError::validation("expires_at: a date and time"))
        })
        .transpose()?;
    Ok(CreateToken {
        role,
        project: Some(form.project.trim().to_owned()).filter(|p| !p.is_empty()),
        name: form.name.trim().to_owned(),
        expires_at,
    })
}

/// Creates a token and shows its secret, once.
pub(super) async fn create(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let created = match input_of(&form) {
        Ok(input) => state
            .keygate
            .create_token(&signed.user.caller, input)
            .await
            .map_err(ApiError::from),
        Err(err) => Err(err),
    };
    match created {
        Ok((secret, record)) => pages::render(
            StatusCode::OK,
            &pages::KeySecret {
                chrome: Chrome::new("Admin token created", "tokens", Some(signed.who())),
                what: "admin token",
                name: record.name.clone(),
                secret: secret.expose().to_owned(),
                back: "/ui/tokens".to_owned(),
                back_label: "Done: back to the tokens",
            },
        ),
        Err(err) => page(&state, &signed, Some(err.message), err.status).await,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// Revokes a token at once, with a reason; its console sessions end with it.
pub(super) async fn revoke(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    let revoked = match KeyId::parse(&id) {
        Ok(id) => state
            .keygate
            .revoke_token(&signed.user.caller, &id, form.reason.trim())
            .await
            .map_err(ApiError::from),
        Err(_) => Err(ApiError::not_found("token")),
    };
    match revoked {
        Ok(_) => Redirect::to("/ui/tokens").into_response(),
        Err(err) => page(&state, &signed, Some(err.message), err.status).await,
    }
}

/// Ends another user's console session.
pub(super) async fn end_session(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    match state
        .keygate
        .end_console_session(&signed.user.caller, &id)
        .await
    {
        Ok(()) => Redirect::to("/ui/tokens").into_response(),
        Err(err) => {
            let err = ApiError::from(err);
            page(&state, &signed, Some(err.message), err.status).await
        }
    }
}
