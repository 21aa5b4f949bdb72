//! Single sign-on's two steps in the browser: off to the identity provider with a fresh
//! state, nonce and PKCE challenge (kept in a short-lived cookie of this browser), and back
//! with a code, which becomes a session (`service/single_sign_on.rs`).

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::pages::{self, Chrome};
use super::session::{cookie, cookie_header, over_https, request, sign_in_form};
use crate::http::AppState;
use crate::service::SSO_FLOW_LIFETIME;

/// The flow's cookie: sent back on the provider's redirect (a top-level navigation from
/// another site, hence `SameSite=Lax`), only to the callback.
const FLOW_COOKIE: &str = "keygate_sso";
const MAX_FLOW_COOKIE: usize = 512;

fn flow_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, FLOW_COOKIE, MAX_FLOW_COOKIE)
}

fn not_offered(state: &AppState) -> Response {
    sign_in_form(
        state,
        StatusCode::NOT_FOUND,
        Some("Single sign-on is not set up on this server.".to_owned()),
    )
}

/// Sends the browser to the identity provider.
pub(super) async fn start(State(state): State<AppState>, parts: Parts) -> Response {
    let Some(sso) = state.settings.console.sso.clone() else {
        return not_offered(&state);
    };
    match state.keygate.sso_start(&sso).await {
        Ok(start) => {
            let secure = if over_https(&parts, &state) {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{FLOW_COOKIE}={}; Path=/ui/sso; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                start.cookie,
                SSO_FLOW_LIFETIME.as_secs()
            );
            let mut response = Redirect::to(&start.url).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(err) => {
            let err = crate::http::ApiError::from(err);
            sign_in_form(&state, err.status, Some(err.message))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The provider's answer: a session, or the sign-in page saying why not.
pub(super) async fn callback(
    State(state): State<AppState>,
    parts: Parts,
    Query(answer): Query<Callback>,
) -> Response {
    let Some(sso) = state.settings.console.sso.clone() else {
        return not_offered(&state);
    };
    let refused = |problem: String| {
        let mut response = sign_in_form(&state, StatusCode::UNAUTHORIZED, Some(problem));
        forget_flow(&mut response);
        response
    };
    if let Some(error) = answer.error {
        // Only the error's code, and only if it looks like one: anyone can write this URL.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return refused(format!("The identity provider refused ({code})."));
    }
    let (Some(code), Some(returned), Some(flow)) =
        (answer.code, answer.state, flow_cookie(&parts.headers))
    else {
        return refused(crate::service::SsoRefusal::State.to_string());
    };
    let policy = state.settings.console.sessions;
    match state
        .keygate
        .sso_finish(&sso, &code, &returned, flow, policy, request(&parts))
        .await
    {
        Ok(Ok(signed)) => {
            // A page of the console's own, not a redirect: the provider sent the browser here
            // across sites, and a SameSite=Strict cookie set now is only sent on a navigation
            // that starts on this site.
            let mut response = pages::render(
                StatusCode::OK,
                &pages::SignedInPage {
                    chrome: Chrome::new("Signed in", "", None),
                },
            );
            response.headers_mut().insert(
                header::SET_COOKIE,
                cookie_header(
                    &signed.cookie,
                    policy.absolute.as_secs(),
                    over_https(&parts, &state),
                ),
            );
            forget_flow(&mut response);
            response
        }
        Ok(Err(refusal)) => refused(format!("Single sign-on failed: {refusal}.")),
        Err(err) => {
            let err = crate::http::ApiError::from(err);
            refused(err.message)
        }
    }
}

fn forget_flow(response: &mut Response) {
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("keygate_sso=; Path=/ui/sso; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
}
