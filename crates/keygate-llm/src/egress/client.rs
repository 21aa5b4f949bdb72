//! The upstream HTTP client: hyper's pooled client, without the per-request layers of a
//! general-purpose one. HTTP/1.1 or HTTP/2 as the server's ALPN says, TCP_NODELAY, the
//! platform's certificate verifier, no redirects followed (a credential never follows one to
//! another host) and no proxy taken from the environment.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyDataStream, BodyExt, Full, StreamBody};
use hyper::body::{Body as _, Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::addresses::Resolver;
use super::{ClientOptions, ClientSetupError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body: whole, or streamed from the client.
#[derive(Debug)]
pub struct Body(UnsyncBoxBody<Bytes, BoxError>);

impl Body {
    pub fn empty() -> Self {
        Self::whole(Bytes::new())
    }

    /// A body sent with its length.
    pub fn whole(bytes: Bytes) -> Self {
        Self(
            Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }

    /// A body sent as it arrives (chunked); an error ends the request.
    pub fn streamed<S, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let frames = stream.map_ok(Frame::data).map_err(Into::into);
        Self(BodyExt::boxed_unsync(StreamBody::new(frames)))
    }

    /// The whole body, as a server would read it.
    #[cfg(test)]
    pub(crate) async fn read_all(self) -> Result<Bytes, BoxError> {
        Ok(self.0.collect().await?.to_bytes())
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the upstream could not be reached")]
    Connect,
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream connection failed")]
    Failed,
}

/// The upstream's body broke off before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream body broke off")]
pub struct BodyError;

/// Why a body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the upstream body broke off")]
    Broken,
    #[error("the upstream body is larger than allowed")]
    TooLarge,
}

/// An upstream's answer; its body is read as it arrives.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
}

impl Response {
    /// The body as a stream of chunks.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
        BodyDataStream::new(self.body).map_err(|_| BodyError)
    }

    /// The whole body, refused past `limit` bytes.
    pub async fn read(self, limit: usize) -> Result<Bytes, ReadError> {
        let mut body = self.body;
        let mut out = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ReadError::Broken)?;
            if let Ok(chunk) = frame.into_data() {
                if out.len() + chunk.len() > limit {
                    return Err(ReadError::TooLarge);
                }
                if out.is_empty() && body.is_end_stream() {
                    // One chunk, the whole body: kept as it came, without a copy.
                    return Ok(chunk);
                }
                out.extend_from_slice(&chunk);
            }
        }
        Ok(out.freeze())
    }
}

/// A request to send.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Request {
    pub fn new(method: Method, uri: Uri, body: Body) -> Self {
        Self {
            method,
            uri,
            headers: HeaderMap::new(),
            body,
        }
    }

    pub fn header(&mut self, name: HeaderName, value: HeaderValue) -> &mut Self {
        self.headers.append(name, value);
        self
    }
}

/// A pooled client for requests that carry a credential. Cheap to clone: clones share the
/// pool.
#[derive(Clone)]
pub struct Client {
    pool: Pool<HttpsConnector<HttpConnector<Resolver>>, UnsyncBoxBody<Bytes, BoxError>>,
    total: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(options: ClientOptions) -> Result<Self, ClientSetupError> {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        let tls = rustls::ClientConfig::builder()
            .with_platform_verifier()
            .map_err(|_| ClientSetupError)?
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(Resolver::new(options.public_only));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let pool = Pool::builder(TokioExecutor::new())
            .pool_idle_timeout(options.idle)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Self {
            pool,
            total: options.total,
        })
    }

    /// Sends a request and waits for the head of its answer (within the client's deadline,
    /// when it has one).
    pub async fn send(&self, request: Request) -> Result<Response, SendError> {
        let mut builder = http::Request::builder()
            .method(request.method)
            .uri(request.uri);
        if let Some(headers) = builder.headers_mut() {
            *headers = request.headers;
        }
        let request = builder
            .body(request.body.0)
            .map_err(|_| SendError::Failed)?;
        let sent = self.pool.request(request);
        let answer = match self.total {
            Some(total) => tokio::time::timeout(total, sent)
                .await
                .map_err(|_| SendError::Timeout)?,
            None => sent.await,
        };
        let answer = answer.map_err(|err| {
            if err.is_connect() {
                SendError::Connect
            } else {
                SendError::Failed
            }
        })?;
        let (head, body) = answer.into_parts();
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body,
        })
    }
}

/// A URL in the form the client sends to.
pub fn uri(url: &url::Url) -> Result<Uri, SendError> {
    url.as_str().parse().map_err(|_| SendError::Failed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn client(total: Option<Duration>) -> Client {
        Client::new(ClientOptions {
            connect_timeout: Duration::from_secs(2),
            idle: Duration::from_secs(20),
            total,
            public_only: false,
        })
        .unwrap()
    }

    /// An HTTP/1.1 server that gives every request on a connection `answer`, and counts
    /// the connections it accepted.
    async fn server(answer: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    while let Ok(read) = socket.read(&mut buffer).await {
                        if read == 0 {
                            break;
                        }
                        seen.extend_from_slice(&buffer[..read]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            if socket.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (base, accepted)
    }

    fn get(base: &str, path: &str) -> Request {
        Request::new(
            Method::GET,
            format!("{base}{path}").parse().unwrap(),
            Body::empty(),
        )
    }

    #[tokio::test]
    async fn connections_are_reused_and_redirects_are_not_followed() {
        let (base, accepted) = server(
            "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 2\r\n\r\nno",
        )
        .await;
        let client = client(None);
        for _ in 0..3 {
            let answer = client.send(get(&base, "/v1/models")).await.unwrap();
            assert_eq!(
                answer.status,
                StatusCode::FOUND,
                "handed back, not followed"
            );
            assert_eq!(answer.read(1024).await.unwrap(), "no");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one pooled connection");
    }

    #[tokio::test]
    async fn a_body_is_read_whole_only_within_its_limit() {
        let (base, _) = server("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789").await;
        let client = client(None);
        let answer = client.send(get(&base, "/")).await.unwrap();
        assert_eq!(answer.read(9).await, Err(ReadError::TooLarge));
        let answer = client.send(get(&base, "/")).await.unwrap();
        assert_eq!(answer.read(10).await.unwrap(), "0123456789");
    }

    #[tokio::test]
    async fn failures_are_told_apart() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = client(None).send(get(&closed, "/")).await.unwrap_err();
        assert_eq!(err, SendError::Connect);

        // Accepts, reads, never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let err = client(Some(Duration::from_millis(200)))
            .send(get(&silent, "/"))
            .await
            .unwrap_err();
        assert_eq!(err, SendError::Timeout);
    }
}
