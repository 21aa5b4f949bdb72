//! Generic HTTP routes, `/proxy/<route>/…`: the backend-proxy pattern. A client holds only a
//! keygate key; keygate checks it (scope `METHOD /proxy/<route>/<path>`, limits), strips it,
//! injects the route's upstream credential (a header or a query parameter) and streams the
//! request and the answer through.
//!
//! A route declared `public = true` also serves publishable keys, for `GET` and `HEAD` only.
//! Such a key is public by nature, so a public route may inject no credential unless the
//! operator marks that credential public too (`credential_public = true`, for an upstream's
//! own browser-safe key): a publishable key can never reach a private upstream credential.

use std::collections::BTreeMap;
use std::time::Duration;

use keygate_llm::{CredentialRef, SecretRef};
use secrecy::SecretString;
use serde::Deserialize;

/// One `[routes.<name>]` table of `keygate.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// The upstream base URL; the path after `/proxy/<name>` is appended to it.
    pub upstream: String,
    /// `secret::NAME`, `secret::PROJECT/NAME`, `env::NAME` or `none`.
    pub credential: String,
    /// Where the credential goes: a header (with an optional prefix) or a query parameter.
    #[serde(default)]
    pub inject: InjectFile,
    /// How long the upstream may take to answer (its head); the body then streams.
    pub timeout_ms: Option<u64>,
    /// Largest request body passed on.
    pub body_limit_bytes: Option<usize>,
    /// Serves publishable keys too (`GET` and `HEAD` from their origins), with CORS.
    #[serde(default)]
    pub public: bool,
    /// Says the credential of a public route is itself meant to be public (an upstream's
    /// browser key); without it a public route must have `credential = "none"`.
    #[serde(default)]
    pub credential_public: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectFile {
    pub header: Option<String>,
    pub prefix: Option<String>,
    pub query: Option<String>,
}

/// Where a route puts its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inject {
    Header {
        name: axum::http::HeaderName,
        prefix: String,
    },
    Query(String),
}

/// The credential of a route.
#[derive(Clone)]
pub enum RouteCredential {
    Value(SecretString),
    Vault(SecretRef),
    None,
}

impl std::fmt::Debug for RouteCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value([redacted])"),
            Self::Vault(reference) => write!(f, "Vault({reference:?})"),
            Self::None => f.write_str("None"),
        }
    }
}

/// Which keys a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAccess {
    /// Secret keys only: the default.
    Private,
    /// Publishable keys as well, for `GET` and `HEAD`. The route's credential, if it has one,
    /// was declared public.
    Public,
}

/// A checked route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub upstream: url::Url,
    pub credential: RouteCredential,
    pub inject: Inject,
    pub timeout: Duration,
    pub body_limit: usize,
    pub access: RouteAccess,
}

/// Why a route table was refused.
#[derive(Debug, thiserror::Error)]
#[error("routes.{route}.{field}: {reason}")]
pub struct RouteError {
    pub route: String,
    pub field: &'static str,
    pub reason: String,
}

/// The routes of this server, by name.
#[derive(Debug, Default)]
pub struct ProxyRoutes {
    routes: BTreeMap<String, Route>,
    client: Option<keygate_llm::egress::Client>,
}

/// Whether a route is public, and whether it may be: a public route injects no credential
/// unless the file declares that credential public.
fn route_access(
    file: &RouteFile,
    credential: &RouteCredential,
) -> Result<RouteAccess, (&'static str, &'static str)> {
    match (file.public, file.credential_public, credential) {
        (false, false, _) => Ok(RouteAccess::Private),
        (false, true, _) => Err((
            "credential_public",
            "only a public route (`public = true`) declares its credential public",
        )),
        (true, _, RouteCredential::None) | (true, true, _) => Ok(RouteAccess::Public),
        (true, false, _) => Err((
            "credential",
            "a public route serves publishable keys, which anyone can read, so it may not \
             inject a private credential: use `credential = \"none\"`, or set \
             `credential_public = true` if this credential is itself meant to be public",
        )),
    }
}

impl ProxyRoutes {
    /// Checks every route; `env::` credentials are read from `env` now, once.
    pub fn new(
        files: &BTreeMap<String, RouteFile>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, RouteError> {
        let mut routes = BTreeMap::new();
        for (name, file) in files {
            let error = |field, reason: &str| RouteError {
                route: name.clone(),
                field,
                reason: reason.to_owned(),
            };
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
            if !valid_name {
                return Err(error("name", "1-64 letters, digits, `-` or `_`"));
            }
            let upstream = url::Url::parse(&file.upstream)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .filter(|u| u.username().is_empty() && u.password().is_none())
                .filter(|u| u.query().is_none() && u.fragment().is_none())
                .ok_or_else(|| {
                    error("upstream", "an http(s) URL without credentials or a query")
                })?;
            let credential =
                match CredentialRef::parse(&format!("routes.{name}.credential"), &file.credential)
                    .map_err(|err| error("credential", &err.to_string()))?
                {
                    CredentialRef::Env(var) => match env(&var) {
                        Some(value) if !value.is_empty() => {
                            RouteCredential::Value(SecretString::from(value))
                        }
                        _ => {
                            return Err(error(
                                "credential",
                                &format!("the environment variable `{var}` is not set"),
                            ));
                        }
                    },
                    CredentialRef::Secret(reference) => RouteCredential::Vault(reference),
                    CredentialRef::None => RouteCredential::None,
                };
            let inject = match (&file.inject.header, &file.inject.query) {
                (Some(header), None) => Inject::Header {
                    name: axum::http::HeaderName::try_from(header.as_str())
                        .map_err(|_| error("inject.header", "a header name"))?,
                    prefix: file.inject.prefix.clone().unwrap_or_default(),
                },
                (None, Some(query)) if file.inject.prefix.is_none() && !query.is_empty() => {
                    Inject::Query(query.clone())
                }
                (None, None) if matches!(credential, RouteCredential::None) => Inject::Header {
                    name: axum::http::header::AUTHORIZATION,
                    prefix: String::new(),
                },
                (None, None) => Inject::Header {
                    name: axum::http::header::AUTHORIZATION,
                    prefix: "Bearer ".to_owned(),
                },
                _ => {
                    return Err(error(
                        "inject",
                        "either `header` (with `prefix`) or `query`",
                    ));
                }
            };
            let timeout = Duration::from_millis(file.timeout_ms.unwrap_or(30_000));
            if timeout.is_zero() || timeout > Duration::from_secs(3_600) {
                return Err(error("timeout_ms", "1 ms to one hour"));
            }
            let body_limit = file.body_limit_bytes.unwrap_or(16 * 1024 * 1024);
            if body_limit == 0 || body_limit > 1024 * 1024 * 1024 {
                return Err(error("body_limit_bytes", "1 byte to 1 GiB"));
            }
            let access = route_access(file, &credential).map_err(|(field, reason)| RouteError {
                route: name.clone(),
                field,
                reason: reason.to_owned(),
            })?;
            routes.insert(
                name.clone(),
                Route {
                    name: name.clone(),
                    upstream,
                    credential,
                    inject,
                    timeout,
                    body_limit,
                    access,
                },
            );
        }
        let client = if routes.is_empty() {
            None
        } else {
            Some(
                keygate_llm::egress::Client::new(keygate_llm::egress::ClientOptions {
                    connect_timeout: Duration::from_secs(10),
                    idle: Duration::from_secs(20),
                    total: None,
                    public_only: false,
                })
                .map_err(|_| RouteError {
                    route: String::new(),
                    field: "client",
                    reason: "the HTTP client could not be set up".to_owned(),
                })?,
            )
        };
        Ok(Self { routes, client })
    }

    pub fn get(&self, name: &str) -> Option<&Route> {
        self.routes.get(name)
    }

    pub(crate) fn client(&self) -> Option<&keygate_llm::egress::Client> {
        self.client.as_ref()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }
}

/// Whether a publishable key may use `method`: public routes are read-only.
pub(crate) fn is_read(method: &axum::http::Method) -> bool {
    method == axum::http::Method::GET || method == axum::http::Method::HEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(credential: &str, public: bool, credential_public: bool) -> RouteFile {
        RouteFile {
            upstream: "https://api.example.com".to_owned(),
            credential: credential.to_owned(),
            inject: InjectFile::default(),
            timeout_ms: None,
            body_limit_bytes: None,
            public,
            credential_public,
        }
    }

    fn load(files: &[(&str, RouteFile)]) -> Result<ProxyRoutes, RouteError> {
        let files: BTreeMap<String, RouteFile> = files
            .iter()
            .map(|(name, file)| ((*name).to_owned(), file.clone()))
            .collect();
        ProxyRoutes::new(&files, &|name| {
            (name == "MAPS_KEY").then(|| "browser-key".to_owned())
        })
    }

    #[test]
    fn a_public_route_refuses_a_private_credential() {
        for credential in ["secret::stripe", "secret::shop/stripe", "env::MAPS_KEY"] {
            let err = load(&[("catalog", route(credential, true, false))]).unwrap_err();
            assert_eq!(
                (err.route.as_str(), err.field),
                ("catalog", "credential"),
                "{credential}"
            );
            assert!(err.to_string().contains("credential_public"), "{err}");
        }
    }

    #[test]
    fn public_routes_without_credential_or_with_a_public_one() {
        let loaded = load(&[
            ("catalog", route("none", true, false)),
            ("maps", route("env::MAPS_KEY", true, true)),
            ("payments", route("secret::stripe", false, false)),
        ])
        .unwrap();
        let access = |name: &str| loaded.get(name).unwrap().access;
        assert_eq!(access("catalog"), RouteAccess::Public);
        assert_eq!(access("maps"), RouteAccess::Public);
        assert_eq!(access("payments"), RouteAccess::Private);
    }

    #[test]
    fn credential_public_needs_a_public_route() {
        let err = load(&[("pay", route("secret::stripe", false, true))]).unwrap_err();
        assert_eq!(err.field, "credential_public");
    }
}
