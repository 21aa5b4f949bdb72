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
