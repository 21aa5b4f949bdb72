//! Egress: every request that carries an upstream credential leaves through here — the LLM
//! deployments, the proxy routes and the secret-rotation check. One client ([`Client`]:
//! hyper's pool, no redirects, so a credential never follows one to another host; no proxies
//! from the environment; TCP_NODELAY; idle connections closed before the upstreams' load
//! balancers close them), one way to put a credential in a header ([`secret_header`]), the
//! rule that keeps credentials away from link-local and cloud metadata addresses, and one
//! streaming, zeroizing scrubber for answers that echo a credential.

mod addresses;
mod client;
mod scrub;

use std::time::Duration;

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

pub use addresses::{NoPublicAddress, is_metadata, is_public};
pub use client::{Body, BodyError, Client, ReadError, Request, Response, SendError, uri};
pub use scrub::{Scrubber, scrub_body, scrub_stream};

/// How a client connects and how long it keeps connections.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Idle connections are closed after this (below the upstreams' keep-alive, about 30 s).
    pub idle: Duration,
    /// A deadline for a whole request, for callers without deadlines of their own.
    pub total: Option<Duration>,
    /// Connect to public addresses only (see `addresses.rs`): for URLs typed by admins.
    pub public_only: bool,
}

/// The TLS stack or the resolver could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream HTTP client could not be set up")]
pub struct ClientSetupError;

/// A header value that carries a credential: `prefix` and the secret, marked sensitive so
/// that it is never logged nor compressed into HTTP/2's header table. `None` when the secret
/// cannot travel in a header.
pub fn secret_header(prefix: &str, secret: &SecretString) -> Option<HeaderValue> {
    let text = zeroize::Zeroizing::new(format!("{prefix}{}", secret.expose_secret()));
    let mut value = HeaderValue::from_str(&text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The W3C `traceparent` of a request sent within the current span: keygate's own trace when
/// traces are exported (the attempt's span), else the client's as it came (`client`).
pub fn traceparent(client: Option<&str>) -> Option<HeaderValue> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let span = context.span();
    let own = span.span_context();
    if own.is_valid() {
        let text = format!(
            "00-{}-{}-{:02x}",
            own.trace_id(),
            own.span_id(),
            own.trace_flags().to_u8()
        );
        return HeaderValue::from_str(&text).ok();
    }
    client.and_then(|text| HeaderValue::from_str(text).ok())
}

/// Whether the URL names a link-local address (where cloud metadata services answer) or a
/// metadata host name. Private and loopback addresses stay allowed: self-hosted upstreams
/// (vLLM, Ollama) live there.
pub fn reaches_metadata(url: &url::Url) -> bool {
    let Some(host) = url.host_str() else {
        return true;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => addresses::is_metadata(ip),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name == "metadata.google.internal" || name == "metadata"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_addresses_are_told_apart_from_self_hosted_ones() {
        let reaches = |url: &str| reaches_metadata(&url::Url::parse(url).unwrap());
        assert!(reaches("http://169.254.169.254/latest/meta-data"));
        assert!(reaches("http://[fe80::1]/"));
        assert!(reaches("http://metadata.google.internal./computeMetadata"));
        assert!(!reaches("http://127.0.0.1:11434/v1"));
        assert!(!reaches("http://10.0.0.5/v1"));
        assert!(!reaches("https://api.openai.com/v1"));
    }
}
