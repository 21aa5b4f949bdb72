//! The request log: one short line per request, written when its response head is ready —
//! method, path (never a query string, never a path that holds a key), status, milliseconds
//! and the request id. It can be kept to errors, sampled, or turned off; `off` adds nothing to
//! a request's path.

use std::num::NonZeroU64;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::middleware::loggable_path;

/// Which requests the log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestLog {
    /// Every request.
    #[default]
    All,
    /// Answers with a 4xx or 5xx status only.
    Errors,
    /// Every error, and one request in `n` of the rest.
    Sample(NonZeroU64),
    /// None.
    Off,
}

/// A request-log setting that is none of `all`, `errors`, `off` or `1/N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request log is `all`, `errors`, `off`, or `1/N` (one request in N, and every error)")]
pub struct BadRequestLog;

impl FromStr for RequestLog {
    type Err = BadRequestLog;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "all" => Ok(Self::All),
            "errors" => Ok(Self::Errors),
            "off" => Ok(Self::Off),
            other => {
                let n = other.strip_prefix("1/").ok_or(BadRequestLog)?;
                let n: NonZeroU64 = n.trim().parse().map_err(|_| BadRequestLog)?;
                Ok(if n.get() == 1 {
                    Self::All
                } else {
                    Self::Sample(n)
                })
            }
        }
    }
}

impl RequestLog {
    /// Whether the log is on at all (off, the layer is left out).
    pub fn is_on(self) -> bool {
        self != Self::Off
    }

    /// Whether to write the line of a request answered with `status`; `seen` counts the
    /// requests that were not errors, for sampling.
    fn writes(self, status: u16, seen: &AtomicU64) -> bool {
        let error = status >= 400;
        match self {
            Self::All => true,
            Self::Errors => error,
            Self::Sample(n) => {
                error || seen.fetch_add(1, Ordering::Relaxed).is_multiple_of(n.get())
            }
            Self::Off => false,
        }
    }
}

/// Successful requests seen by a sampling log.
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Writes the request's line once its response head is ready.
pub(crate) async fn log_request(
    State(mode): State<RequestLog>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // Kept as they are (a method and a URI clone without copying), and read only for a line
    // that is written.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if mode.writes(status, &SEEN) {
        let path = loggable_path(uri.path());
        let id = response
            .headers()
            .get(super::routes::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ms = started.elapsed().as_millis();
        tracing::info!(target: "keygate::request", %method, %path, status, ms, %id, "request");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_as_documented() {
        assert_eq!("all".parse(), Ok(RequestLog::All));
        assert_eq!("errors".parse(), Ok(RequestLog::Errors));
        assert_eq!("off".parse(), Ok(RequestLog::Off));
        assert_eq!(
            "1/100".parse(),
            Ok(RequestLog::Sample(NonZeroU64::new(100).unwrap()))
        );
        assert_eq!("1/1".parse(), Ok(RequestLog::All));
        for bad in ["", "1/0", "2/10", "some", "1/x"] {
            assert_eq!(bad.parse::<RequestLog>(), Err(BadRequestLog), "{bad}");
        }
    }

    #[test]
    fn errors_always_pass_and_the_rest_are_sampled() {
        let seen = AtomicU64::new(0);
        let tenth = RequestLog::Sample(NonZeroU64::new(10).unwrap());
        let written = (0..100).filter(|_| tenth.writes(200, &seen)).count();
        assert_eq!(written, 10);
        assert!(tenth.writes(500, &seen) && tenth.writes(404, &seen));
        assert!(!RequestLog::Errors.writes(200, &seen));
        assert!(RequestLog::Errors.writes(429, &seen));
        assert!(!RequestLog::Off.writes(500, &seen));
    }
}
