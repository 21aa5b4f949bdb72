//! Mock upstreams on `127.0.0.1:0` that answer in the providers' own wire formats.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// OpenAI's `GET /v1/models`: a model list for the one accepted key, and OpenAI's 401 error
/// body (`invalid_api_key`) for any other.
#[derive(Debug)]
pub struct OpenAiModels {
    pub addr: SocketAddr,
    accepted: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<String>>>,
    handle: JoinHandle<()>,
}

#[derive(Clone)]
struct ModelsState {
    accepted: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn models(State(state): State<ModelsState>, headers: HeaderMap) -> impl IntoResponse {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    state
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(presented.clone());
    let accepted = state
        .accepted
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if presented == accepted {
        (
            StatusCode::OK,
            Json(json!({
                "object": "list",
                "data": [
                    {"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741,
                     "owned_by": "system"}
                ]
            })),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({
                "error": {
                    "message": "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": null,
                    "code": "invalid_api_key"
                }
            })),
        )
    }
}

impl OpenAiModels {
    /// Starts the mock; it accepts `key` only.
    pub async fn start(key: &str) -> anyhow::Result<Self> {
        let accepted = Arc::new(Mutex::new(key.to_owned()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/models", get(models))
            .with_state(ModelsState {
                accepted: accepted.clone(),
                seen: seen.clone(),
            });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            accepted,
            seen,
            handle,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/models", self.addr)
    }

    /// Accept another key from now on.
    pub fn accept(&self, key: &str) {
        *self.accepted.lock().unwrap_or_else(PoisonError::into_inner) = key.to_owned();
    }

    /// Every key presented so far, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for OpenAiModels {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A request as a [`RecordingUpstream`] received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

impl Recorded {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP upstream, for proxy routes: it records every request (bodies up to 64 MiB)
/// and answers with what `answer` makes of it.
#[derive(Debug)]
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    /// Every request so far, oldest first.
    pub log: Arc<Mutex<Vec<Recorded>>>,
    handle: JoinHandle<()>,
}

impl RecordingUpstream {
    pub async fn start<F, Fut>(answer: F) -> anyhow::Result<Self>
    where
        F: Fn(Recorded) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = axum::response::Response> + Send + 'static,
    {
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let seen = log.clone();
        let app = Router::new().fallback(move |request: axum::extract::Request| {
            let (seen, answer) = (seen.clone(), answer.clone());
            async move {
                let (parts, body) = request.into_parts();
                let Ok(body) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
                    return StatusCode::PAYLOAD_TOO_LARGE.into_response();
                };
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().map(str::to_owned),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                    body,
                };
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(recorded.clone());
                answer(recorded).await
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, log, handle })
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
