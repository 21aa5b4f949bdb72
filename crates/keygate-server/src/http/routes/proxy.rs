//! `/proxy/<route>/…`: a keygate key in, the route's upstream credential out. The method and
//! path must be granted by a scope (`GET /proxy/payments/v1/customers/*`); a refused attempt
//! is answered 403 `scope_denied` and recorded. Bodies stream both ways.
//!
//! A publishable key gets further only on a public route, with `GET` or `HEAD`, from one of
//! its origins (403 `publishable_key_forbidden` or `origin_not_allowed` otherwise, recorded
//! too); its answer carries CORS headers for that origin. Preflights are answered from the
//! route alone (see [`cors`]).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use keygate_core::scope::any_grants;
use keygate_core::{TokenCounts, TokenSource, UsageRecord};
use percent_encoding::percent_decode_str;
use secrecy::ExposeSecret;

use crate::http::cors;
use crate::http::extract::{PUBLISHABLE_FORBIDDEN, RequestMeta, any_api_key};
use crate::http::{ApiError, AppState};
use crate::limits::Refusal;
use crate::proxy::scrub::{Scrubber, scrub_stream};
use crate::proxy::{Inject, Route, RouteAccess, RouteCredential};
use crate::service::ProjectSecrets;

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1), and the ones
/// that carry the keygate key.
const NOT_FORWARDED: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "x-api-key",
];

fn forwardable(name: &HeaderName) -> bool {
    !NOT_FORWARDED.contains(&name.as_str())
}

/// Headers of a publishable key's request that are not forwarded either: ones that could turn
/// its `GET` into a write at an upstream that honours them, cookies (a publishable key's
/// requests carry no ambient credentials), and the body's length, as its body is not sent.
const NOT_FORWARDED_FOR_PUBLISHABLE: [&str; 5] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "cookie",
    "content-length",
];

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
    let mut allowed_origin = None;
    let mut response = match serve(&state, &meta, request, &mut allowed_origin).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    // Set once a publishable key's origin passed, so that its refusals from then on (scope,
    // limits, upstream trouble) are readable by the page too.
    if let Some(origin) = &allowed_origin {
        cors::allow(response.headers_mut(), origin);
    }
    response
}

/// Whether a publishable key may make this request: a public route, a read, from one of its
/// origins. Returns the origin, for the answer's CORS headers.
fn admit_publishable(
    route: &Route,
    method: &axum::http::Method,
    headers: &HeaderMap,
    origins: &keygate_core::AllowedOrigins,
) -> Result<keygate_core::Origin, ApiError> {
    if route.access != RouteAccess::Public {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            PUBLISHABLE_FORBIDDEN,
            format!(
                "route `{}` is not public: a publishable key may only read public routes",
                route.name
            ),
        ));
    }
    if !cors::is_read(method) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            PUBLISHABLE_FORBIDDEN,
            "a publishable key is read-only: it may send only GET and HEAD",
        ));
    }
    let Some(origin) = cors::claimed_origin(headers) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "a publishable key is accepted only from its origins, and this request names none \
             (send `Origin`, or a `Referer` from one of the key's origins)",
        ));
    };
    if !origins.allows(&origin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "the request's origin is not one of this key's origins",
        ));
    }
    Ok(origin)
}

async fn serve(
    state: &AppState,
    meta: &RequestMeta,
    request: Request,
    allowed_origin: &mut Option<keygate_core::Origin>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (route_name, tail) = split_path(parts.uri.path())?;
    let key = any_api_key(state, &parts.headers, meta)
        .await
        .map_err(|refusal| ApiError::new(refusal.status, refusal.code, refusal.message))?;
    let routes = state.routes.clone();
    let Some(route) = routes.get(route_name) else {
        return Err(ApiError::not_found("route"));
    };
    let record = |status: u16, code: Option<&str>| UsageRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: state.keygate.clock().now(),
        org_id: key.record.org_id.clone(),
        project_id: key.record.project_id.clone(),
        key_id: key.record.id.clone(),
        endpoint: "proxy".to_owned(),
        model: route.name.clone(),
        deployment: None,
        provider: None,
        status,
        error_code: code.map(str::to_owned),
        streamed: false,
        attempts: 0,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        ttft_ms: None,
        tokens: TokenCounts::default(),
        token_source: TokenSource::None,
        cost: None,
        client_ip: meta.ip_text(),
        user_agent: None,
    };
    let publishable = key.record.publishable.as_ref();
    if let Some(origins) = publishable {
        match admit_publishable(route, &parts.method, &parts.headers, origins) {
            Ok(origin) => *allowed_origin = Some(origin),
            Err(err) => {
                state.keygate.usage().record(record(403, Some(err.code)));
                return Err(err);
            }
        }
    }
    // The scope names the method and the path as the client sent them.
    let permission = format!("{} /proxy/{}/{}", parts.method, route.name, tail);
    if !any_grants(&key.record.scopes, &permission) {
        state
            .keygate
            .usage()
            .record(record(403, Some("scope_denied")));
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "scope_denied",
            format!(
                "this key has no scope that grants `{} /proxy/{}/…`",
                parts.method, route.name
            ),
        ));
    }
    let admission = state
        .limiter
        .admit(
            &key,
            state.keygate.clock(),
            crate::limits::Demand {
                hold: true,
                ..crate::limits::Demand::default()
            },
        )
        .await;
    let permit = match admission {
        Ok(admission) => admission.hold,
        Err(refusal) => {
            let status = match refusal {
                Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::TOO_MANY_REQUESTS,
            };
            state
                .keygate
                .usage()
                .record(record(status.as_u16(), Some(refusal.code())));
            let mut response =
                ApiError::new(status, refusal.code(), refusal.message()).into_response();
            crate::limits::refusal_headers(response.headers_mut(), &refusal);
            return Ok(response);
        }
    };
    if let Some(length) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && length > route.body_limit
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {} bytes", route.body_limit),
        ));
    }
    let credential = match &route.credential {
        RouteCredential::Value(value) => Some(value.clone()),
        RouteCredential::None => None,
        RouteCredential::Vault(reference) => {
            let secrets = ProjectSecrets {
                keygate: &state.keygate,
                project: key.record.project_id.as_ref(),
            };
            use keygate_llm::SecretSource as _;
            Some(secrets.secret(reference).await.map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream_credential_unavailable",
                    "the route's upstream credential cannot be read",
                )
            })?)
        }
    };
    let url = upstream_url(route, tail, parts.uri.query(), credential.as_ref())?;
    let client = routes
        .client()
        .ok_or_else(|| ApiError::not_found("route"))?;
    let mut upstream = client.request(parts.method.clone(), url);
    // An answer that may echo the credential is read in the clear, so that it can be scrubbed.
    let scrubber = credential
        .as_ref()
        .and_then(|secret| Scrubber::new(secret.expose_secret()));
    for (name, value) in &parts.headers {
        let injected =
            matches!(&route.inject, Inject::Header { name: injected, .. } if injected == name);
        let withheld = publishable.is_some()
            && NOT_FORWARDED_FOR_PUBLISHABLE.contains(&name.as_str())
            || scrubber.is_some() && name == header::ACCEPT_ENCODING;
        if forwardable(name) && !injected && !withheld {
            upstream = upstream.header(name, value);
        }
    }
    if scrubber.is_some() {
        upstream = upstream.header(header::ACCEPT_ENCODING, "identity");
    }
    if let (Inject::Header { name, prefix }, Some(secret)) = (&route.inject, &credential) {
        let Ok(mut value) = HeaderValue::from_str(&format!("{prefix}{}", secret.expose_secret()))
        else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_credential_unavailable",
                "the route's upstream credential cannot be sent in a header",
            ));
        };
        value.set_sensitive(true);
        upstream = upstream.header(name.clone(), value);
    }
    let limit = route.body_limit;
    let mut seen = 0usize;
    let body = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len();
        if seen > limit {
            return Err(std::io::Error::other(
                "the body is larger than the route allows",
            ));
        }
        Ok(chunk)
    });
    // A GET or HEAD body has no defined meaning (RFC 9110 §9.3.1); a publishable key's is
    // not passed on, so that nothing but a read reaches the upstream.
    let upstream = if publishable.is_some() {
        upstream
    } else {
        upstream.body(reqwest::Body::wrap_stream(body))
    };
    let answer = match tokio::time::timeout(route.timeout, upstream.send()).await {
        Err(_) => {
            state
                .keygate
                .usage()
                .record(record(504, Some("upstream_timeout")));
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "the upstream did not answer within {} ms",
                    route.timeout.as_millis()
                ),
            ));
        }
        Ok(Err(_)) => {
            state
                .keygate
                .usage()
                .record(record(502, Some("upstream_unavailable")));
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "the upstream could not be reached, or the request body was refused",
            ));
        }
        Ok(Ok(answer)) => answer,
    };
    let status = answer.status();
    state.keygate.usage().record(record(status.as_u16(), None));
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if forwardable(name) && name != header::CONTENT_LENGTH && !cors::is_cors_header(name) {
            // A header that echoes the credential (a redirect to a URL holding it) is dropped.
            if scrubber
                .as_ref()
                .is_some_and(|s| s.found_in(value.as_bytes()))
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
    }
    // The key's concurrency slot stays taken until the answer has streamed out.
    let stream = answer.bytes_stream().map(move |chunk| {
        let _held = &permit;
        chunk.map_err(std::io::Error::other)
    });
    let body = match scrubber {
        Some(scrubber) => Body::from_stream(scrub_stream(stream, scrubber)),
        None => Body::from_stream(stream),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// The upstream URL: the route's base, the client's path after the route name, and its query,
/// with the credential added when it travels in the query (replacing any the client sent).
fn upstream_url(
    route: &Route,
    tail: &str,
    query: Option<&str>,
    credential: Option<&secrecy::SecretString>,
) -> Result<reqwest::Url, ApiError> {
    let mut url = route.upstream.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/{tail}"));
    url.set_query(query);
    if let (Inject::Query(name), Some(secret)) = (&route.inject, credential) {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, _)| key != name)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        let mut pairs = url.query_pairs_mut();
        for (k, v) in &kept {
            pairs.append_pair(k, v);
        }
        pairs.append_pair(name, secret.expose_secret());
    }
    Ok(url)
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
