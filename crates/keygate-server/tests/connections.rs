//! Connection hygiene: slow request heads are cut off, and shutdown does not wait forever.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate_core::SystemClock;
use keygate_server::ServerSettings;
use keygate_testkit::{Db, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn settings() -> ServerSettings {
    ServerSettings {
        header_read_timeout: Duration::from_millis(300),
        drain_timeout: Duration::from_millis(300),
        ..ServerSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_head_is_cut_off() {
    let server = TestServer::start_with(Db::Sqlite, Arc::new(SystemClock), settings())
        .await
        .unwrap();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buffer))
        .await
        .expect("the server closes the connection");
    assert!(read.is_ok() || buffer.is_empty());
    assert!(started.elapsed() < Duration::from_secs(3));
    // A complete request on a fresh connection is still served.
    let reply = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(reply.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_by_the_drain_deadline_and_flushes() {
    let mut server = TestServer::start_with(Db::Sqlite, Arc::new(SystemClock), settings())
        .await
        .unwrap();
    let api = server.api();
    let key = api
        .create_key(
            &server.owner_token,
            serde_json::json!({"project": "default", "name": "used"}),
        )
        .await;
    assert_eq!(api.verify_code(&key.secret).await, "valid");
    // A kept-alive connection that sits in the middle of a request.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"POST /v1/keys/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let started = Instant::now();
    server.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown waited {:?}",
        started.elapsed()
    );
    // The last use recorded by the verify above reached the store during shutdown.
    let id = keygate_core::KeyId::parse(&key.id).unwrap();
    let stored = server.store.store.key(&id).await.unwrap().unwrap();
    assert!(stored.last_used_at.is_some());
}

/// A rolling restart loses nothing in flight: a request whose body is still arriving when
/// shutdown begins is read to its end and answered before the server exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_a_request_in_flight() {
    let settings = ServerSettings {
        drain_timeout: Duration::from_secs(5),
        ..settings()
    };
    let mut server = TestServer::start_with(Db::Sqlite, Arc::new(SystemClock), settings)
        .await
        .unwrap();
    let api = server.api();
    let key = api
        .create_key(
            &server.owner_token,
            serde_json::json!({"project": "default", "name": "in-flight"}),
        )
        .await;
    let body = serde_json::json!({ "key": key.secret }).to_string();
    let (first, rest) = body.split_at(1);
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(
            format!(
                "POST /v1/keys/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{first}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Shutdown begins while the body is half sent.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(async move {
        server.stop().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "the server exited with a request in flight"
    );
    client.write_all(rest.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut reply))
        .await
        .expect("the answer, then the connection closed")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"valid\""), "{reply}");
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the server exits once the request is answered")
        .unwrap();
}
