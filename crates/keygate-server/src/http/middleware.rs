//! Middleware of our own: refusing keys in query strings, and the security headers of the
//! API's answers.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use super::AppState;
use super::extract::RequestMeta;
use crate::ServiceError;

const KEY_PREFIXES: [&str; 2] = ["kg_live_", "kg_test_"];

/// Finds something shaped like a keygate key in a (percent-decoded) query string.
pub(crate) fn key_in_query(query: &str) -> Option<String> {
    let decoded = percent_decode_str(&query.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned();
    KEY_PREFIXES.iter().find_map(|prefix| {
        let start = decoded.find(prefix)?;
        let candidate: String = decoded[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(keygate_core::key::MAX_KEY_LEN)
            .collect();
        Some(candidate)
    })
}

/// The request path as it may be logged or recorded: withheld when it holds something shaped
/// like a keygate key (a secret pasted where a key id belongs). Cheap for ordinary paths.
pub(crate) fn loggable_path(path: &str) -> &str {
    let suspicious = path.contains("kg_") || path.contains('%');
    if suspicious && key_in_query(path).is_some() {
        "[withheld: the path holds a keygate key]"
    } else {
        path
    }
}

/// Refuses any request that carries a keygate key in its query string, and records the
/// likely leak in the audit log. The key is never logged.
pub(crate) async fn reject_key_in_query(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(candidate) = request.uri().query().and_then(key_in_query) else {
        return next.run(request).await;
    };
    let (parts, _body) = request.into_parts();
    let meta = RequestMeta::from_parts(&parts);
    let path = loggable_path(parts.uri.path()).to_owned();
    if let Err(err) = state
        .keygate
        .record_key_in_query(&candidate, &path, meta.ip_text(), meta.request_id)
        .await
    {
        return err.into_response();
    }
    ServiceError::KeyInQuery.into_response()
}

/// Longest request id accepted from a client.
const MAX_REQUEST_ID: usize = 128;

/// Removes a client's `x-request-id` that is empty, too long or not visible ASCII, so that a
/// fresh one is generated: request ids end up in logs and the audit log.
pub(crate) fn drop_unusable_request_id<B>(
    mut request: axum::http::Request<B>,
) -> axum::http::Request<B> {
    let usable = request
        .headers()
        .get("x-request-id")
        .map(|v| v.as_bytes())
        .is_none_or(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.iter().all(u8::is_ascii_graphic)
        });
    if !usable {
        request.headers_mut().remove("x-request-id");
    }
    request
}

/// The headers every API answer carries (the console sets stricter ones of its own, and a
/// proxy route's answer is the upstream's): no MIME sniffing, no framing, no content of its
/// own to run; answers that hold secrets or admin data are never stored by a cache; and with
/// TLS, browsers keep to HTTPS.
pub(crate) async fn security_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    use axum::http::{HeaderValue, header};
    let path = request.uri().path();
    let proxied = path.starts_with("/proxy/");
    let sensitive = path.starts_with("/admin/")
        || path == "/oauth/token"
        || path == "/v1/keys/verify"
        || path.starts_with("/v1/secrets/");
    let mut response = next.run(request).await;
    if proxied {
        return response;
    }
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    if sensitive {
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    if state.settings.tls.is_some() {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static("max-age=31536000"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plain_and_encoded_keys() {
        assert_eq!(
            key_in_query("a=1&key=kg_live_abc123&b=2").as_deref(),
            Some("kg_live_abc123")
        );
        assert_eq!(
            key_in_query("k=kg%5Ftest%5Fxyz").as_deref(),
            Some("kg_test_xyz")
        );
        assert_eq!(key_in_query("limit=10&cursor=abc"), None);
    }

    #[test]
    fn paths_with_keys_are_withheld() {
        assert_eq!(
            loggable_path("/admin/v1/keys/key_0123"),
            "/admin/v1/keys/key_0123"
        );
        assert!(!loggable_path("/admin/v1/keys/kg_live_abc123").contains("abc123"));
        assert!(!loggable_path("/x/kg%5Ftest%5Fabc123").contains("abc123"));
        assert!(!loggable_path("/x/%6Bg_live_abc123").contains("abc123"));
    }
}
