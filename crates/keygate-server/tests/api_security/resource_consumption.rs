//! API4 Unrestricted resource consumption: huge and deeply nested bodies, header floods, slow
//! clients and many idle connections are each refused or cut off within their bounds, and the
//! server goes on serving.

use std::sync::Arc;
use std::time::Duration;

use keygate_core::SystemClock;
use keygate_server::ServerSettings;
use keygate_testkit::{Db, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::assert_healthy;

/// A server whose clients get 400 ms to send a request head and a second for a body.
async fn start() -> TestServer {
    let settings = ServerSettings {
        header_read_timeout: Duration::from_millis(400),
        request_timeout: Duration::from_secs(1),
        ..ServerSettings::default()
    };
    TestServer::start_with(Db::Sqlite, Arc::new(SystemClock), settings)
        .await
        .unwrap()
}

/// What the server answers on a raw connection, read until it closes (or 5 s pass).
async fn raw_exchange(server: &TestServer, request: &[u8]) -> String {
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let _ = socket.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn huge_and_deep_bodies_are_refused() {
    let server = start().await;
    let api = server.api();
    let owner = &server.owner_token;
    // Past the admin API's 64 KiB.
    let huge = format!(
        r#"{{"project":"default","name":"{}","scopes":["models:*"]}}"#,
        "x".repeat(100_000)
    );
    api.post("/admin/v1/keys")
        .token(owner)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect_error(413, "payload_too_large");
    // Nested far deeper than any request needs.
    let deep = format!(
        r#"{{"project":"default","name":"d","scopes":["models:*"],"metadata":{}{}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let reply = api
        .post("/admin/v1/keys")
        .token(owner)
        .header("content-type", "application/json")
        .body(deep.clone())
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let created = api
        .create_key(
            owner,
            serde_json::json!({"project": "default", "name": "g", "scopes": ["models:*"]}),
        )
        .await;
    let gateway = format!(
        r#"{{"model":"m","messages":[],"x":{}{}}}"#,
        "{\"a\":".repeat(5_000),
        "}".repeat(5_000)
    );
    let reply = api
        .post("/v1/chat/completions")
        .token(&created.secret)
        .body(gateway)
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_healthy(&server).await;
}

#[tokio::test]
async fn header_floods_are_refused() {
    let server = start().await;
    // One header far larger than any credential.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: k\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let answer = raw_exchange(&server, big.as_bytes()).await;
    let status = status_of(&answer);
    assert!(
        answer.is_empty() || (400..500).contains(&status),
        "a 200 kB header: {answer:.200}"
    );
    // Thousands of small ones.
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: k\r\n");
    for i in 0..5_000 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw_exchange(&server, many.as_bytes()).await;
    let status = status_of(&answer);
    assert!(
        answer.is_empty() || (400..500).contains(&status),
        "5000 headers: {answer:.200}"
    );
    assert_healthy(&server).await;
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let server = start().await;
    // A head that never ends is dropped once its time is up.
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: k\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "a dribbled head held its connection past 5 s");
    // A body that never comes gets `request_timeout`.
    let answer = raw_exchange(
        &server,
        b"POST /admin/v1/keys HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await;
    assert!(
        answer.is_empty() || matches!(status_of(&answer), 401 | 408),
        "{answer:.300}"
    );
    assert_healthy(&server).await;
}

#[tokio::test]
async fn many_idle_connections_do_not_starve_the_others() {
    let server = start().await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        if let Ok(socket) = TcpStream::connect(server.addr).await {
            idle.push(socket);
        }
    }
    assert!(idle.len() >= 100, "only {} connections opened", idle.len());
    let answered =
        tokio::time::timeout(Duration::from_secs(5), server.api().get("/healthz").send())
            .await
            .expect("the server answers while hundreds of connections sit idle");
    assert_eq!(answered.status, 200);
    drop(idle);
    assert_healthy(&server).await;
}
