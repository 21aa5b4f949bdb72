//! The layer: every request must carry a keygate key or token, checked before the inner
//! service sees it; the caller rides in the request's extensions.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::{Keygate, Refusal};

/// Adds keygate authentication to a service.
#[derive(Debug, Clone)]
pub struct KeygateLayer {
    keygate: Keygate,
}

impl KeygateLayer {
    pub fn new(keygate: Keygate) -> Self {
        Self { keygate }
    }
}

impl<S> tower_layer::Layer<S> for KeygateLayer {
    type Service = KeygateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeygateService {
            inner,
            keygate: self.keygate.clone(),
        }
    }
}

/// The service the layer makes.
#[derive(Debug, Clone)]
pub struct KeygateService<S> {
    inner: S,
    keygate: Keygate,
}

/// The credential of a request: `Authorization: Bearer`, or `x-api-key`.
fn credential(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let (scheme, rest) = value.to_str().ok()?.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_owned())
            .filter(|c| !c.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|c| !c.is_empty())
}

impl<S> tower_service::Service<Request> for KeygateService<S>
where
    S: tower_service::Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone that was polled ready serves this request; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let keygate = self.keygate.clone();
        Box::pin(async move {
            let Some(presented) = credential(&request) else {
                return Ok(Refusal::Missing.into_response());
            };
            match keygate.authenticate(&presented).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}
