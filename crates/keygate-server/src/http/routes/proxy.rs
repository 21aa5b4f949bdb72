//! `/proxy/<route>/…`: a keygate key in, the route's upstream credential out. The method and
//! path must be granted by a scope (`GET /proxy/payments/v1/customers/*`); a refused attempt
//! is answered 403 `scope_denied` and recorded. Bodies stream both ways.
//!
//! A publishable key gets further only on a public route, with `GET` or `HEAD`, from one of
//! its origins (403 `publishable_key_forbidden` or `origin_not_allowed` otherwise, recorded
//! too); its answer carries CORS headers for that origin. Preflights are answered from the
//! route alone (see [`cors`]).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use percent_encoding::percent_decode_str;

use crate::gateway::{ProxyCall, Refused, UsageDraft};
use crate::http::extract::{RequestMeta, any_api_key};
use crate::http::limit_headers::{self, Names};
use crate::http::{ApiError, AppState, cors};

/// Splits `/proxy/<route>/<rest>`; refuses `.` and `..` segments (also percent-encoded), which
/// would let a path leave the route's upstream base or the scope that granted it.
fn split_path(path: &str) -> Result<(&str, &str), ApiError> {
    let rest = path.strip_prefix("/proxy/").unwrap_or_default();
    let (route, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let dotted = tail.split('/').any(|segment| {
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        decoded == "." || decoded == ".." || decoded.contains('/') || decoded.contains('\\')
    });
    if dotted {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "the path may not hold `.` or `..` segments or encoded slashes",
        ));
    }
    Ok((route, tail))
}

/// Forwards a request through the route it names.
#[utoipa::path(get, path = "/proxy/{route}/{path}", tag = "gateway",
    params(("route" = String, Path), ("path" = String, Path)),
    responses((status = 200, description = "the upstream's answer, streamed (any method is forwarded the same way)"),
        (status = 204, description = "a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) to a public route"),
        (status = 400, description = "`invalid_path`: the path holds `.` or `..` segments or encoded slashes"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`: no scope grants `METHOD /proxy/<route>/<path>`; `publishable_key_forbidden`: a publishable key on a route that is not public, or with a method other than GET or HEAD; `origin_not_allowed`: a publishable key from an origin it does not allow (or naming none); `cors_not_allowed`: a preflight to a route that is not public, or for a method other than GET or HEAD"),
        (status = 404, description = "`not_found`: no such route"),
        (status = 413, description = "`payload_too_large`"),
        (status = 429, description = "`rate_limited` or `concurrency_limited`"),
        (status = 502, description = "`upstream_unavailable`"),
        (status = 504, description = "`upstream_timeout`")),
    security(("api_key" = [])))]
pub async fn forward(
    State(state): State<AppState>,
    meta: RequestMeta,
    request: Request,
) -> Response {
    if cors::is_preflight(request.method(), request.headers()) {
        return match split_path(request.uri().path()) {
            Ok((route, _)) => cors::preflight(state.routes.get(route), request.headers()),
            Err(err) => err.into_response(),
        };
    }
    match serve(&state, &meta, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// Forwards a request to the root of the route it names (the upstream's base URL itself).
#[utoipa::path(get, path = "/proxy/{route}", tag = "gateway",
    params(("route" = String, Path)),
    responses((status = 200, description = "the upstream's answer, streamed (any method is forwarded the same way)"),
        (status = 204, description = "a CORS preflight to a public route"),
        (status = 400, description = "`invalid_path`"),
        (status = 401, description = "a missing or refused keygate key"),
        (status = 403, description = "`scope_denied`, `publishable_key_forbidden`, `origin_not_allowed` or `cors_not_allowed`, as for a path below the route"),
        (status = 404, description = "`not_found`: no such route"),
        (status = 413, description = "`payload_too_large`"),
        (status = 429, description = "`rate_limited` or `concurrency_limited`"),
        (status = 502, description = "`upstream_unavailable`"),
        (status = 504, description = "`upstream_timeout`")),
    security(("api_key" = [])))]
pub async fn forward_root(state: State<AppState>, meta: RequestMeta, request: Request) -> Response {
    forward(state, meta, request).await
}

/// Extracts the call, has the gateway forward it, and writes its answer.
async fn serve(
    state: &AppState,
    meta: &RequestMeta,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (route, tail) = split_path(parts.uri.path())?;
    let key = any_api_key(state, &parts.headers, meta)
        .await
        .map_err(|refusal| {
            ApiError::new(refusal.status, refusal.code, refusal.message)
                .with_retry_after(refusal.retry_after)
        })?;
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let call = ProxyCall {
        key,
        route: route.to_owned(),
        tail: tail.to_owned(),
        method: parts.method.clone(),
        query: parts.uri.query().map(str::to_owned),
        origin: cors::claimed_origin(&parts.headers),
        user_agent: UsageDraft::user_agent(user_agent),
        headers: parts.headers,
        body: body
            .into_data_stream()
            .map_err(std::io::Error::other)
            .boxed(),
        client_ip: meta.ip_text(),
        started,
    };
    let outcome = state.gateway_service().forward(&state.routes, call).await;
    let mut response = match outcome.answer {
        Ok(answer) => {
            let mut response = Response::new(axum::body::Body::from_stream(answer.body));
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            response
        }
        Err(refused) => refused_response(&refused),
    };
    // Set once a publishable key's origin passed, so that its refusals from then on (scope,
    // limits, upstream trouble) are readable by the page too.
    if let Some(origin) = &outcome.allowed_origin {
        cors::allow(response.headers_mut(), origin);
    }
    Ok(response)
}

/// A refusal in the API's error shape, with the limit's headers when a limit refused it.
fn refused_response(refused: &Refused) -> Response {
    let status = StatusCode::from_u16(refused.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = ApiError::new(status, refused.code(), refused.message()).into_response();
    if let Refused::Limit(refusal) = refused {
        limit_headers::refused(response.headers_mut(), refusal, Names::Plain);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_encoded_slashes_are_refused() {
        assert_eq!(
            split_path("/proxy/pay/v1/charges").unwrap(),
            ("pay", "v1/charges")
        );
        assert_eq!(split_path("/proxy/pay").unwrap(), ("pay", ""));
        for bad in [
            "/proxy/pay/v1/../admin",
            "/proxy/pay/%2e%2e/admin",
            "/proxy/pay/./x",
            "/proxy/pay/a%2fb",
            "/proxy/pay/a%5Cb",
        ] {
            assert!(split_path(bad).is_err(), "{bad}");
        }
    }
}
