//! CORS for public proxy routes, which browsers call with publishable keys.
//!
//! A preflight carries no key, so it cannot know which origins the key will allow: it is
//! answered from the route alone (a public route allows `GET` and `HEAD`) and echoes the
//! origin, which grants nothing by itself. The request that follows must come from one of its
//! key's origins, and only then does the answer carry `Access-Control-Allow-Origin`. Never
//! `Access-Control-Allow-Credentials`: the key travels in a header, not in a cookie.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keygate_core::Origin;

use super::ApiError;
use crate::proxy::{Route, RouteAccess};

/// Request headers a browser may send to a public route: the key's two headers, a request id
/// and conditional requests. Others are refused by the browser after the preflight.
const ALLOWED_HEADERS: &str =
    "authorization, x-api-key, content-type, x-request-id, if-none-match, if-modified-since";
/// Response headers a page may read besides the CORS-safelisted ones.
const EXPOSED_HEADERS: &str = "x-request-id, retry-after, etag";
/// How long a browser may reuse a preflight's answer, in seconds.
const MAX_AGE_SECONDS: &str = "600";

/// The origin a request claims: its `Origin` header, or, when it has none, the origin of its
/// `Referer` (browsers leave `Origin` out of some same-origin `GET`s). An `Origin` that is
/// present but not an origin (`null`, from sandboxed frames and `file:` pages) claims nothing,
/// without falling back to `Referer`. Only browsers are bound by what they claim: the check
/// stops other sites from using a key through their visitors' browsers; it authenticates
/// nobody.
pub(crate) fn claimed_origin(headers: &HeaderMap) -> Option<Origin> {
    match headers.get(header::ORIGIN) {
        Some(value) => Origin::parse(value.to_str().ok()?),
        None => Origin::from_referer(headers.get(header::REFERER)?.to_str().ok()?),
    }
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`. Any other `OPTIONS` is an ordinary request.
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

pub(crate) use crate::proxy::is_read;

/// Answers a preflight for `route` (`None`: no such route). A preflight carries no key, so a
/// route that does not exist and one that is not public get the same answer: nobody learns
/// the private routes by asking.
pub(crate) fn preflight(route: Option<&Route>, headers: &HeaderMap) -> Response {
    if !route.is_some_and(|route| route.access == RouteAccess::Public) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cors_not_allowed",
            "browsers (and publishable keys) may call only the routes declared public",
        )
        .into_response();
    }
    let method = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| Method::from_bytes(v.as_bytes()).ok());
    if !method.as_ref().is_some_and(is_read) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cors_not_allowed",
            "public routes are read-only: browsers may send only GET and HEAD",
        )
        .into_response();
    }
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(Origin::parse)
    else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "the request's `Origin` is not an origin (scheme://host[:port])",
        )
        .into_response();
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&origin.to_string()) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD"),
    );
    out.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECONDS),
    );
    out.insert(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    response
}

/// Lets a page from `origin` read an answer; the origin was checked against the key's.
pub(crate) fn allow(headers: &mut HeaderMap, origin: &Origin) {
    if let Ok(value) = HeaderValue::from_str(&origin.to_string()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn origin_first_then_referer_never_after_null() {
        let origin = |pairs| claimed_origin(&headers(pairs)).map(|o| o.to_string());
        assert_eq!(
            origin(&[("origin", "https://app.example.com")]).as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            origin(&[("referer", "https://app.example.com:443/a/b?c")]).as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            origin(&[
                ("origin", "https://a.example.com"),
                ("referer", "https://b.example.com/")
            ])
            .as_deref(),
            Some("https://a.example.com")
        );
        assert_eq!(
            origin(&[("origin", "null"), ("referer", "https://app.example.com/")]),
            None
        );
        assert_eq!(origin(&[]), None);
    }

    #[test]
    fn preflights_need_origin_and_requested_method() {
        let preflight = headers(&[
            ("origin", "https://a.example.com"),
            ("access-control-request-method", "GET"),
        ]);
        assert!(is_preflight(&Method::OPTIONS, &preflight));
        assert!(!is_preflight(&Method::GET, &preflight));
        assert!(!is_preflight(
            &Method::OPTIONS,
            &headers(&[("origin", "https://a.example.com")])
        ));
    }
}
