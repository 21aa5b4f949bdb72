//! HTTP: every request's duration by route template, method and status class, recorded by one
//! middleware around the whole API.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{Metrics, status_class};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/admin/v1/keys/{id}`), or `unmatched`.
    pub http_route: String,
    pub http_request_method: &'static str,
    pub status_class: &'static str,
}

/// Seconds, from a millisecond to a minute: the API answers in microseconds, the gateway in
/// seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

#[derive(Debug, Clone)]
pub struct HttpMetrics {
    pub duration: Family<RequestLabels, Histogram>,
}

impl HttpMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "http_server_request_duration_seconds",
            "Time from a request's arrival to its response head, by route template, method and status class",
            duration.clone(),
        );
        Self { duration }
    }
}

/// A method as a bounded label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Records one request once its response head is ready.
pub(crate) async fn record(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    let labels = RequestLabels {
        http_route: route,
        http_request_method: method,
        status_class: status_class(response.status().as_u16()),
    };
    metrics
        .http
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}
