//! What every mock upstream shares: a server on `127.0.0.1:0` with a queue of scripted
//! replies, a record of the requests it saw, and counters of abandoned answers. Each mock
//! (OpenAI, Anthropic, Gemini) adds its routes.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::mock_openai::{MockReply, SeenRequest, serve};

pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) key: String,
    pub(crate) replies: Mutex<VecDeque<MockReply>>,
    pub(crate) seen: Mutex<Vec<SeenRequest>>,
    pub(crate) completions: AtomicU64,
    pub(crate) abandoned: Arc<AtomicUsize>,
    /// `Hang` replies whose client went away.
    pub(crate) hangs_dropped: Arc<AtomicUsize>,
    /// Ids of the Responses API answers kept (`store` not false), for `previous_response_id`.
    pub(crate) stored: Mutex<std::collections::HashSet<String>>,
    /// Bytes of uploaded files received so far, counted as they arrive.
    pub(crate) uploaded: AtomicUsize,
    /// The multipart forms received, part by part.
    pub(crate) forms: Mutex<Vec<Vec<crate::mock_openai::FormPart>>>,
}

impl Shared {
    pub(crate) fn next_reply(&self) -> Option<MockReply> {
        self.replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

/// A running mock upstream; dropping it (or [`MockServer::stop`]) aborts the server and every
/// connection it holds.
pub struct MockServer {
    pub addr: SocketAddr,
    pub(crate) shared: Arc<Shared>,
    handle: JoinHandle<()>,
    label: &'static str,
}

impl fmt::Debug for MockServer {
    /// Leaves the accepted key out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.label)
            .field("addr", &self.addr)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// Starts on `127.0.0.1:0` with the routes `router` makes. `name` appears in every default
    /// reply so tests can tell mocks apart; `key` is the only accepted credential.
    pub(crate) async fn start(
        label: &'static str,
        name: &str,
        key: &str,
        router: fn(Arc<Shared>) -> Router,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            key: key.to_owned(),
            replies: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Vec::new()),
            stored: Mutex::default(),
            uploaded: AtomicUsize::new(0),
            forms: Mutex::default(),
            completions: AtomicU64::new(0),
            abandoned: Arc::new(AtomicUsize::new(0)),
            hangs_dropped: Arc::new(AtomicUsize::new(0)),
        });
        let handle = tokio::spawn(serve(listener, router(shared.clone())));
        Ok(Self {
            addr,
            shared,
            handle,
            label,
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash or an API version.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a reply for the next answerable request (first in, first out).
    pub fn push(&self, reply: MockReply) {
        self.shared
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(reply);
    }

    /// Every request seen, refused ones included, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Bytes of uploaded files received so far, counted as they arrive.
    pub fn uploaded_bytes(&self) -> usize {
        self.shared.uploaded.load(Ordering::SeqCst)
    }

    /// The multipart forms received (uploads), each part by part.
    pub fn forms(&self) -> Vec<Vec<crate::mock_openai::FormPart>> {
        self.shared
            .forms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many streamed responses were dropped before their end because the client went away.
    pub fn abandoned_streams(&self) -> usize {
        self.shared.abandoned.load(Ordering::SeqCst)
    }

    /// How many `Hang` replies ended because the client went away.
    pub fn dropped_hangs(&self) -> usize {
        self.shared.hangs_dropped.load(Ordering::SeqCst)
    }

    /// Aborts the server and its connections.
    pub fn stop(self) {
        self.handle.abort();
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Declares a mock type over [`MockServer`]: its methods are the server's.
macro_rules! mock_type {
    ($(#[$doc:meta])* $name:ident, $router:path) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(crate::mock_server::MockServer);

        impl std::ops::Deref for $name {
            type Target = crate::mock_server::MockServer;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl $name {
            /// Starts on `127.0.0.1:0`. `name` appears in every default reply so tests can
            /// tell mocks apart; `key` is the only accepted credential.
            pub async fn start(name: &str, key: &str) -> anyhow::Result<Self> {
                crate::mock_server::MockServer::start(stringify!($name), name, key, $router)
                    .await
                    .map(Self)
            }

            /// Aborts the server and its connections.
            pub fn stop(self) {
                self.0.stop();
            }
        }
    };
}
pub(crate) use mock_type;
