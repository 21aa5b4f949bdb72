//! Signing in and out, the session cookie, and the checks every console write passes: the
//! session's CSRF token (compared in constant time) and a same-origin request.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::pages::{self, Chrome, Who};
use crate::http::AppState;
use crate::http::extract::RequestMeta;
use crate::service::{ConsoleRequest, ConsoleUser};

/// The session cookie. Its value is a random 256-bit token; the server keeps its digest.
const COOKIE: &str = "keygate_session";
/// Longest cookie value read (the real one is 43 characters).
const MAX_COOKIE: usize = 128;

pub(super) fn request(parts: &Parts) -> ConsoleRequest {
    let meta = RequestMeta::from_parts(parts);
    ConsoleRequest {
        client_ip: meta.ip_text(),
        request_id: meta.request_id,
    }
}

/// The value of the cookie `name`, if the request has one of at most `max` characters.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str, max: usize) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty() && value.len() <= max)
}

/// The session cookie's value, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, COOKIE, MAX_COOKIE)
}

/// Whether the request reached keygate over HTTPS, as far as it can tell: configured so, or
/// said by a trusted proxy.
pub(super) fn over_https(parts: &Parts, state: &AppState) -> bool {
    if state.settings.console.secure_cookies {
        return true;
    }
    let peer_trusted = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| {
            state
                .settings
                .trusted_proxies
                .iter()
                .any(|net| net.contains(&peer.ip()))
        });
    peer_trusted
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

pub(super) fn cookie_header(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("keygate_session=; Path=/ui; Max-Age=0"))
}

/// Whether a write comes from the console's own pages: a browser says so in
/// `Sec-Fetch-Site`, or its `Origin` names this host. A request with neither (not a
/// browser) still needs the session's CSRF token.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin" || site.as_bytes() == b"none";
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    origin_host.is_some() && origin_host == host
}

/// A signed-in user, from the session cookie; a request without an open session is sent to
/// the sign-in page.
pub(super) struct Signed {
    pub user: ConsoleUser,
}

impl Signed {
    pub fn who(&self) -> Who {
        let role = match &self.user.caller.actor {
            crate::service::Actor::Admin(principal) => principal.role.as_str(),
            crate::service::Actor::Local { .. } => "owner",
        };
        let caller = &self.user.caller;
        Who {
            name: self.user.session.name.clone(),
            role,
            csrf: self.user.session.csrf.clone(),
            manages_tokens: caller.may(
                keygate_core::Permission::TokensWrite,
                caller.bound_project(),
            ),
        }
    }

    /// Whether `token` is this session's CSRF token.
    pub fn csrf_ok(&self, token: &str) -> bool {
        let expected = self.user.session.csrf.as_bytes();
        expected.len() == token.len() && bool::from(expected.ct_eq(token.as_bytes()))
    }

    /// The check every write passes first: a same-origin request carrying the session's
    /// CSRF token. The refusal, if not.
    pub fn check_write(&self, headers: &HeaderMap, token: &str) -> Option<Response> {
        if same_origin(headers) && self.csrf_ok(token) {
            return None;
        }
        Some(pages::error(
            crate::http::ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "this form is stale or did not come from the console: reload the page and try again",
            ),
            Some(self.who()),
            "/ui/keys",
        ))
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(cookie) = session_cookie(&parts.headers) else {
            return Err(Redirect::to("/ui/sign-in").into_response());
        };
        match state
            .keygate
            .console_user(cookie, state.settings.console.sessions, request(parts))
            .await
        {
            Ok(Some(user)) => Ok(Self { user }),
            Ok(None) => Err(Redirect::to("/ui/sign-in").into_response()),
            Err(err) => Err(pages::error(err, None, "/ui/sign-in")),
        }
    }
}

/// The sign-in form; a signed-in user goes on to the keys.
pub(super) async fn sign_in_page(State(state): State<AppState>, parts: Parts) -> Response {
    let mut parts = parts;
    if Signed::from_request_parts(&mut parts, &state).await.is_ok() {
        return Redirect::to("/ui/keys").into_response();
    }
    sign_in_form(&state, StatusCode::OK, None)
}

/// The sign-in page, with `problem` when the last try failed.
pub(super) fn sign_in_form(
    state: &AppState,
    status: StatusCode,
    problem: Option<String>,
) -> Response {
    pages::render(
        status,
        &pages::SignIn {
            chrome: Chrome::new("Sign in", "", None),
            problem,
            sso: state.settings.console.sso.is_some(),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    token: String,
}

impl std::fmt::Debug for SignInForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInForm").finish_non_exhaustive()
    }
}

/// Signs in with an admin token: a session cookie and on to the keys; a refused token is
/// told so (and audited).
pub(super) async fn sign_in(
    State(state): State<AppState>,
    parts: Parts,
    Form(form): Form<SignInForm>,
) -> Response {
    let refused = |status, problem: &str| sign_in_form(&state, status, Some(problem.to_owned()));
    if !same_origin(&parts.headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "Sign in from the console's own page.",
        );
    }
    let policy = state.settings.console.sessions;
    match state
        .keygate
        .console_sign_in(form.token.trim(), policy, request(&parts))
        .await
    {
        Ok(Ok(signed)) => {
            let secure = over_https(&parts, &state);
            let mut response = Redirect::to("/ui/keys").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                cookie_header(&signed.cookie, policy.absolute.as_secs(), secure),
            );
            response
        }
        Ok(Err(rejection)) => refused(
            StatusCode::UNAUTHORIZED,
            &format!("That admin token was not accepted ({}).", rejection.code()),
        ),
        Err(err) => pages::error(err, None, "/ui/sign-in"),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// Ends the session and forgets its cookie.
pub(super) async fn sign_out(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = signed.check_write(&headers, &form.csrf) {
        return refused;
    }
    if let Err(err) = state.keygate.console_sign_out(&signed.user).await {
        return pages::error(err, Some(signed.who()), "/ui/keys");
    }
    let mut response = Redirect::to("/ui/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "keygate_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}
