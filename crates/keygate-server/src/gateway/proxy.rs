//! One request through a generic route, `/proxy/<route>/…`: a publishable key's public-route
//! rules, the scope `METHOD /proxy/<route>/<path>`, the key's limits, the route's credential
//! injected in place of the client's, both bodies streamed (the answer scrubbed of an echoed
//! credential), and the usage record.

use std::sync::Arc;
use std::time::Instant;

use axum::http::header::{self, HeaderMap};
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use keygate_core::Origin;
use keygate_core::scope::any_grants;
use keygate_llm::egress::{self, Scrubber, scrub_stream};
use secrecy::{ExposeSecret, SecretString};

use super::{Refused, Service, UsageDraft};
use crate::cache::CachedKey;
use crate::limits::Demand;
use crate::proxy::{Inject, ProxyRoutes, Route, RouteAccess, RouteCredential};
use crate::service::ProjectSecrets;

/// A body, streamed.
pub type BodyStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A request for a route, as the client made it.
pub struct ProxyCall {
    pub key: Arc<CachedKey>,
    pub route: String,
    /// The path after the route's name, without its leading slash.
    pub tail: String,
    pub method: Method,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The origin the request names (`Origin`, else `Referer`).
    pub origin: Option<Origin>,
    pub body: BodyStream,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub started: Instant,
}

impl std::fmt::Debug for ProxyCall {
    /// Leaves the headers (which may hold credentials) and the body out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyCall")
            .field("route", &self.route)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// The upstream's answer, on its way to the client.
pub struct ProxyAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: BodyStream,
}

impl std::fmt::Debug for ProxyAnswer {
    /// Leaves the headers and the body out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyAnswer")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// An answer or a refusal, and the origin of a publishable key that passed its checks: the
/// response, refusals after that point included, is readable from that origin.
#[derive(Debug)]
pub struct ProxyOutcome {
    pub answer: Result<ProxyAnswer, Refused>,
    pub allowed_origin: Option<Origin>,
}

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

fn forwardable(name: &header::HeaderName) -> bool {
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

/// CORS headers an upstream sends are dropped: keygate answers CORS for the key's origins.
fn is_cors_header(name: &header::HeaderName) -> bool {
    name.as_str().starts_with("access-control-")
}

impl Service<'_> {
    /// Serves one request through the route it names.
    pub async fn forward(&self, routes: &ProxyRoutes, call: ProxyCall) -> ProxyOutcome {
        let mut allowed_origin = None;
        let answer = self.forward_to(routes, call, &mut allowed_origin).await;
        ProxyOutcome {
            answer,
            allowed_origin,
        }
    }

    async fn forward_to(
        &self,
        routes: &ProxyRoutes,
        call: ProxyCall,
        allowed_origin: &mut Option<Origin>,
    ) -> Result<ProxyAnswer, Refused> {
        let Some(route) = routes.get(&call.route) else {
            return Err(Refused::RouteNotFound);
        };
        let draft = UsageDraft {
            started: call.started,
            key: call.key.clone(),
            endpoint: "proxy",
            model: route.name.clone(),
            streamed: false,
            client_ip: call.client_ip.clone(),
            user_agent: call.user_agent.clone(),
            span: tracing::Span::none(),
        };
        let clock = self.keygate.clock().clone();
        let refuse = |refused: Refused| {
            let record = draft.record(clock.as_ref(), refused.status(), Some(refused.code()));
            self.keygate.usage().record(record);
            Err(refused)
        };
        let key = &call.key;
        let publishable = key.record.publishable.as_ref();
        if let Some(origins) = publishable {
            match admit_publishable(route, &call.method, call.origin.as_ref(), origins) {
                Ok(origin) => *allowed_origin = Some(origin),
                Err(refused) => return refuse(refused),
            }
        }
        // The scope names the method and the path as the client sent them.
        let permission = format!("{} /proxy/{}/{}", call.method, route.name, call.tail);
        if !any_grants(&key.record.scopes, &permission) {
            return refuse(Refused::RouteScope {
                method: call.method.to_string(),
                route: route.name.clone(),
            });
        }
        if keygate_core::is_write(&permission) {
            self.keygate
                .last_used()
                .record_write(&key.record.id, clock.now());
        }
        let hold = Demand {
            hold: true,
            ..Demand::default()
        };
        let permit = match self.limiter.admit(key, self.keygate.clock(), hold).await {
            Ok(admission) => admission.hold,
            Err(refusal) => return refuse(Refused::Limit(refusal)),
        };
        if let Some(length) = call
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            && length > route.body_limit
        {
            return Err(Refused::BodyTooLarge {
                limit: route.body_limit,
            });
        }
        let credential = self.credential(route, key).await?;
        let url = upstream_url(
            route,
            &call.tail,
            call.query.as_deref(),
            credential.as_ref(),
        );
        let client = routes.client().ok_or(Refused::RouteNotFound)?;
        let Ok(uri) = egress::uri(&url) else {
            return refuse(Refused::UpstreamUnreachable);
        };
        // A GET or HEAD body has no defined meaning (RFC 9110 §9.3.1); a publishable key's is
        // not passed on, so that nothing but a read reaches the upstream.
        let body = match publishable {
            None => egress::Body::streamed(bounded(call.body, route.body_limit)),
            Some(_) => egress::Body::empty(),
        };
        let mut upstream = egress::Request::new(call.method.clone(), uri, body);
        // An answer that may echo the credential is read in the clear, so that it can be
        // scrubbed.
        let scrubber = credential
            .as_ref()
            .and_then(|secret| Scrubber::new(secret.expose_secret()));
        for (name, value) in &call.headers {
            let injected =
                matches!(&route.inject, Inject::Header { name: injected, .. } if injected == name);
            let withheld = publishable.is_some()
                && NOT_FORWARDED_FOR_PUBLISHABLE.contains(&name.as_str())
                || scrubber.is_some() && name == header::ACCEPT_ENCODING;
            if forwardable(name) && !injected && !withheld {
                upstream.header(name.clone(), value.clone());
            }
        }
        if scrubber.is_some() {
            upstream.header(
                header::ACCEPT_ENCODING,
                header::HeaderValue::from_static("identity"),
            );
        }
        if let (Inject::Header { name, prefix }, Some(secret)) = (&route.inject, &credential) {
            let Some(value) = egress::secret_header(prefix, secret) else {
                return Err(Refused::CredentialNotAHeader);
            };
            upstream.header(name.clone(), value);
        }
        let answer = match tokio::time::timeout(route.timeout, client.send(upstream)).await {
            Err(_) => return refuse(Refused::UpstreamTimeout(route.timeout)),
            Ok(Err(_)) => return refuse(Refused::UpstreamUnreachable),
            Ok(Ok(answer)) => answer,
        };
        let status = answer.status;
        self.keygate
            .usage()
            .record(draft.record(clock.as_ref(), status.as_u16(), None));
        let mut headers = HeaderMap::new();
        for (name, value) in &answer.headers {
            if forwardable(name) && name != header::CONTENT_LENGTH && !is_cors_header(name) {
                // A header that echoes the credential (a redirect to a URL holding it) is
                // dropped.
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
        let stream = answer.into_stream().map(move |chunk| {
            let _held = &permit;
            chunk.map_err(std::io::Error::other)
        });
        let body = match scrubber {
            Some(scrubber) => scrub_stream(stream, scrubber).boxed(),
            None => stream.boxed(),
        };
        Ok(ProxyAnswer {
            status,
            headers,
            body,
        })
    }

    /// The route's credential: its own, none, or the project's secret from the vault.
    async fn credential(
        &self,
        route: &Route,
        key: &CachedKey,
    ) -> Result<Option<SecretString>, Refused> {
        match &route.credential {
            RouteCredential::Value(value) => Ok(Some(value.clone())),
            RouteCredential::None => Ok(None),
            RouteCredential::Vault(reference) => {
                let secrets = ProjectSecrets {
                    keygate: self.keygate,
                    project: key.record.project_id.as_ref(),
                };
                use keygate_llm::SecretSource as _;
                secrets
                    .secret(reference)
                    .await
                    .map(Some)
                    .map_err(|_| Refused::CredentialUnreadable)
            }
        }
    }
}

/// A request body cut off, with an error, past `limit` bytes.
fn bounded(body: BodyStream, limit: usize) -> BodyStream {
    let mut seen = 0usize;
    body.map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len();
        if seen > limit {
            return Err(std::io::Error::other(
                "the body is larger than the route allows",
            ));
        }
        Ok(chunk)
    })
    .boxed()
}

/// Whether a publishable key may make this request: a public route, a read, from one of its
/// origins. Returns the origin, for the answer's CORS headers.
fn admit_publishable(
    route: &Route,
    method: &Method,
    origin: Option<&Origin>,
    origins: &keygate_core::AllowedOrigins,
) -> Result<Origin, Refused> {
    if route.access != RouteAccess::Public {
        return Err(Refused::RouteNotPublic {
            route: route.name.clone(),
        });
    }
    if !crate::proxy::is_read(method) {
        return Err(Refused::PublishableWrite);
    }
    let Some(origin) = origin else {
        return Err(Refused::NoOrigin);
    };
    if !origins.allows(origin) {
        return Err(Refused::OriginNotAllowed);
    }
    Ok(origin.clone())
}

/// The upstream URL: the route's base, the client's path after the route name, and its query,
/// with the credential added when it travels in the query (replacing any the client sent).
fn upstream_url(
    route: &Route,
    tail: &str,
    query: Option<&str>,
    credential: Option<&SecretString>,
) -> url::Url {
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
    url
}
