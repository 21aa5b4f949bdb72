//! `POST /oauth/token` (RFC 6749 form and errors), `/.well-known/jwks.json` and the discovery
//! documents, so stock JWT and OpenID Connect libraries verify keygate's tokens.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use crate::http::AppState;
use crate::http::extract::{RawBody, RequestMeta};
use crate::service::{IssuedToken, OAuthError, TokenRequest};

/// Issue an access token: `client_credentials` with a keygate key (HTTP Basic: key id and key,
/// or the key as a bearer credential), or a token exchange (RFC 8693) of a key or a token for
/// a narrower one. Form-encoded, answered in RFC 6749's shapes.
#[utoipa::path(post, path = "/oauth/token", tag = "tokens",
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "the token"), (status = 400, description = "RFC 6749 error"),
        (status = 401, description = "invalid_client")))]
pub async fn token(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    if let Some(wait) = state.anomalies.source_blocked(meta.client_ip) {
        let mut response = refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many failed authentications from this address; retry later",
        );
        crate::http::limit_headers::retry_after(response.headers_mut(), wait);
        return response;
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return error(&OAuthError::InvalidRequest(
            "send the request as application/x-www-form-urlencoded".into(),
        ));
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let issued = match TokenRequest::read(
        &body,
        authorization,
        meta.client_ip,
        meta.certificate.as_deref().cloned(),
    ) {
        Ok(request) => state.keygate.issue_token(request).await,
        Err(err) => Err(err),
    };
    match issued {
        Ok(token) => issued_response(&token),
        Err(err) => {
            if err.failed_authentication() {
                let rejection = match &err {
                    OAuthError::InvalidSubject(Some(rejection), _) => *rejection,
                    _ => keygate_core::KeyRejection::Invalid,
                };
                state
                    .anomalies
                    .authentication_failed(meta.client_ip, "", rejection, None);
            }
            error(&err)
        }
    }
}

/// The published signing keys (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "the JWKS document")))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        state.keygate.jwks(),
    )
        .into_response();
    // Short enough that a new key is fetched well within its hour of being published ahead.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// OpenID Connect discovery (and RFC 8414 authorization server metadata).
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "tokens",
    responses((status = 200, description = "the discovery document")))]
pub async fn openid_configuration(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.keygate.openid_configuration())
}

fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn issued_response(token: &IssuedToken) -> Response {
    let mut body = serde_json::json!({
        "access_token": token.access_token.expose_secret(),
        "token_type": "Bearer",
        "expires_in": token.expires_in,
        "scope": token.scope,
    });
    if let Some(kind) = token.issued_token_type {
        body["issued_token_type"] = kind.into();
    }
    let mut response = Json(body).into_response();
    no_store(&mut response);
    response
}

fn refusal(status: StatusCode, code: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(serde_json::json!({"error": code, "error_description": description})),
    )
        .into_response();
    no_store(&mut response);
    response
}

fn error(err: &OAuthError) -> Response {
    let status = match err {
        OAuthError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
        OAuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = refusal(status, err.code(), &err.to_string());
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"keygate\""),
        );
    }
    response
}
