//! Generic routes, `/proxy/<route>/…`, over real sockets: the keygate key is checked (scope
//! `METHOD /proxy/<route>/<path>`, limits) and stripped, the route's credential is injected in
//! a header or the query, and bodies stream both ways (a credential the upstream echoes is
//! scrubbed); refusals have stable codes and out-of-scope attempts are recorded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::IntoResponse;
use keygate_core::KeyId;
use keygate_testkit::upstream::{Recorded, RecordingUpstream};
use keygate_testkit::{Db, TestServer};
use serde_json::{Value, json};

const PAY_KEY: &str = "sk_live_payments_0123456789abcdef";
const MAPS_KEY: &str = "maps-key-0123456789abcdef";

/// An upstream that records each request and answers with what it saw (the body echoed
/// for `/echo`, a pause for `/slow`, the credential quoted back for `/leaky`).
async fn echo_upstream() -> RecordingUpstream {
    RecordingUpstream::start(|seen: Recorded| async move {
        if seen.path.ends_with("/slow") {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        if seen.path.ends_with("/echo") {
            return ([("x-upstream", "echo")], Body::from(seen.body)).into_response();
        }
        if seen.path.ends_with("/leaky") {
            // An upstream that quotes what it was given: the credential, in the body (split
            // over many small chunks) and in a redirect.
            let query = seen.query.clone().unwrap_or_default();
            let told = format!(
                "you sent {} and {query}",
                seen.header("authorization").unwrap_or("-")
            );
            let chunks: Vec<Result<Bytes, std::io::Error>> = told
                .into_bytes()
                .chunks(3)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            return (
                [("location", format!("https://elsewhere.example/?{query}"))],
                Body::from_stream(futures_util::stream::iter(chunks)),
            )
                .into_response();
        }
        if seen.path.ends_with("/missing") {
            return (axum::http::StatusCode::NOT_FOUND, "no such thing").into_response();
        }
        axum::Json(json!({"ok": true, "path": seen.path})).into_response()
    })
    .await
    .unwrap()
}

/// A request sent byte for byte; returns the whole answer.
async fn raw(server: &TestServer, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A GET with the path as written (no client resolves its dot segments).
async fn raw_get(server: &TestServer, path: &str, key: &str) -> String {
    raw(
        server,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await
}

struct Setup {
    server: TestServer,
    log: Arc<Mutex<Vec<Recorded>>>,
    _upstream: RecordingUpstream,
}

async fn setup(db: Db) -> Setup {
    let upstream = echo_upstream().await;
    let (addr, log) = (upstream.addr, upstream.log.clone());
    let config = format!(
        r#"
        [routes.pay]
        upstream = "http://{addr}/base"
        credential = "secret::payments"
        inject = {{ header = "authorization", prefix = "Bearer " }}
        timeout_ms = 500
        body_limit_bytes = 4194304

        [routes.maps]
        upstream = "http://{addr}"
        credential = "env::MAPS_KEY"
        inject = {{ query = "key" }}

        [routes.down]
        upstream = "http://127.0.0.1:9"
        credential = "none"
        "#
    );
    let server = TestServer::start_gateway(db, &config, &[("MAPS_KEY", MAPS_KEY)])
        .await
        .unwrap();
    server
        .api()
        .post("/admin/v1/secrets")
        .token(&server.owner_token)
        .json(&json!({"project": "default", "name": "payments", "value": PAY_KEY}))
        .send()
        .await
        .expect(200);
    Setup {
        server,
        log,
        _upstream: upstream,
    }
}

async fn key(s: &Setup, scopes: &[&str], limits: Value) -> String {
    s.server
        .api()
        .create_key(
            &s.server.owner_token,
            json!({"project": "default", "name": "mobile", "scopes": scopes, "limits": limits}),
        )
        .await
        .secret
}

async fn the_credential_goes_upstream_and_the_key_does_not(db: Db) {
    let mut s = setup(db).await;
    let key = key(
        &s,
        &[
            "GET /proxy/pay/*",
            "POST /proxy/pay/v1/echo",
            "* /proxy/maps/*",
        ],
        json!({}),
    )
    .await;
    let api = s.server.api();
    let reply = api
        .get("/proxy/pay/v1/customers?limit=3")
        .token(&key)
        .header("x-custom", "kept")
        .send()
        .await
        .expect(200);
    assert_eq!(reply.body["path"], "/base/v1/customers");
    let seen = s.log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/base/v1/customers");
    assert_eq!(seen.query.as_deref(), Some("limit=3"));
    let header = |name: &str| {
        seen.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("authorization").as_deref(),
        Some(format!("Bearer {PAY_KEY}").as_str())
    );
    assert_eq!(header("x-custom").as_deref(), Some("kept"));
    for (name, value) in &seen.headers {
        assert!(
            !value.contains(&key),
            "the keygate key went upstream in {name}"
        );
    }

    // In the query: the client's own `key` parameter gives way to the route's.
    let reply = api
        .get("/proxy/maps/geocode?q=Paris&key=mine")
        .header("x-api-key", &key)
        .send()
        .await
        .expect(200);
    assert_eq!(reply.body["path"], "/geocode");
    let seen = s.log.lock().unwrap()[1].clone();
    assert_eq!(
        seen.query.as_deref(),
        Some(format!("q=Paris&key={MAPS_KEY}").as_str())
    );
    assert!(
        seen.headers
            .iter()
            .all(|(n, _)| n != "x-api-key" && n != "authorization")
    );

    // Bodies stream both ways, byte for byte.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let reply = api
        .post("/proxy/pay/v1/echo")
        .token(&key)
        .body(big.clone())
        .send()
        .await
        .expect(200);
    assert_eq!(reply.header("x-upstream"), Some("echo"));
    assert_eq!(s.log.lock().unwrap()[2].body.len(), big.len());
    assert_eq!(reply.text.as_bytes(), &big[..]);

    // The upstream's own statuses pass through.
    let reply = api.get("/proxy/pay/v1/missing").token(&key).send().await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text, "no such thing");

    // An upstream that echoes the credential: the client never sees it, in the body (even
    // split across chunks) or in a header.
    for path in ["/proxy/pay/v1/leaky", "/proxy/maps/leaky?q=x"] {
        let reply = api
            .get(path)
            .token(&key)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect(200);
        assert!(reply.text.contains("[redacted]"), "{path}: {}", reply.text);
        for secret in [PAY_KEY, MAPS_KEY] {
            assert!(!reply.text.contains(secret), "{path}: {}", reply.text);
        }
        let location = reply.header("location");
        if path.contains("maps") {
            assert_eq!(location, None, "a redirect holding the key is dropped");
        } else {
            assert_eq!(location, Some("https://elsewhere.example/?"), "others stay");
        }
        let seen = s.log.lock().unwrap().last().unwrap().clone();
        assert!(
            seen.headers
                .iter()
                .any(|(n, v)| n == "accept-encoding" && v == "identity"),
            "asked in the clear, to be scrubbed: {:?}",
            seen.headers
        );
    }

    // The POST was a change, for access reviews; a key that only read made none.
    let reads = self::key(&s, &["* /proxy/maps/*"], json!({})).await;
    api.get("/proxy/maps/v1/tiles")
        .token(&reads)
        .send()
        .await
        .expect(200);
    let id_of = |verdict: Value| KeyId::parse(verdict["key_id"].as_str().unwrap()).unwrap();
    let (writer, reader) = (
        id_of(api.verify(&key, None, None).await),
        id_of(api.verify(&reads, None, None).await),
    );
    s.server.stop().await.unwrap();
    let store = &s.server.store.store;
    let writer = store.key(&writer).await.unwrap().unwrap();
    assert!(writer.last_write_at.is_some());
    let reader = store.key(&reader).await.unwrap().unwrap();
    assert!(reader.last_used_at.is_some());
    assert_eq!(reader.last_write_at, None);
}

async fn what_no_scope_grants_is_refused_and_recorded(db: Db) {
    let s = setup(db).await;
    let key = key(&s, &["GET /proxy/pay/v1/customers/*"], json!({})).await;
    let api = s.server.api();
    api.get("/proxy/pay/v1/customers/cus_1")
        .token(&key)
        .send()
        .await
        .expect(200);
    for (method, path) in [
        (
            keygate_testkit::Method::DELETE,
            "/proxy/pay/v1/customers/cus_1",
        ),
        (keygate_testkit::Method::GET, "/proxy/pay/v1/charges"),
        (keygate_testkit::Method::GET, "/proxy/maps/geocode"),
    ] {
        let reply = api.request(method, path).token(&key).send().await;
        assert_eq!(reply.status, 403, "{path}");
        assert_eq!(reply.code(), "scope_denied");
    }
    assert_eq!(
        s.log.lock().unwrap().len(),
        1,
        "nothing refused went upstream"
    );
    let mut denied = 0;
    for _ in 0..100 {
        let report = api
            .get("/admin/v1/usage?group_by=model")
            .token(&s.server.owner_token)
            .send()
            .await
            .expect(200)
            .body;
        denied = report["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["errors"].as_u64().unwrap())
            .sum();
        if denied >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(denied, 3, "each refused attempt is a usage record");

    // A suspended key is refused before its scopes are read, with its own code.
    let paused = api
        .create_key(
            &s.server.owner_token,
            json!({"project": "default", "name": "paused", "scopes": ["GET /proxy/pay/*"]}),
        )
        .await;
    api.post(&format!("/admin/v1/keys/{}/suspend", paused.id))
        .token(&s.server.owner_token)
        .json(&json!({"reason": "probing"}))
        .send()
        .await
        .expect(200);
    api.get("/proxy/pay/v1/customers/cus_1")
        .token(&paused.secret)
        .send()
        .await
        .expect_error(401, "key_suspended");
    assert_eq!(s.log.lock().unwrap().len(), 1);
}

async fn bad_requests_and_upstream_failures_have_stable_codes(db: Db) {
    let s = setup(db).await;
    let key = key(
        &s,
        &["* /proxy/*"],
        json!({"requests": [{"limit": 8, "per": "minute"}]}),
    )
    .await;
    let api = s.server.api();
    // HTTP clients resolve dot segments (even encoded) before sending; a raw request does not.
    for path in [
        "/proxy/pay/v1/../../admin",
        "/proxy/pay/v1/%2e%2e/admin",
        "/proxy/pay/v1/%2E/admin",
        "/proxy/pay/v1/a%2Fb",
    ] {
        let reply = raw_get(&s.server, path, &key).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{path}: {reply}");
        assert!(reply.contains("invalid_path"), "{path}: {reply}");
    }
    assert_eq!(s.log.lock().unwrap().len(), 0, "nothing went upstream");
    let cases = [
        ("/proxy/nope/x", 404, "not_found"),
        ("/proxy/down/x", 502, "upstream_unavailable"),
        ("/proxy/pay/v1/slow", 504, "upstream_timeout"),
    ];
    for (path, status, code) in cases {
        let reply = api.get(path).token(&key).send().await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{path}: {}",
            reply.text
        );
    }
    // A body announced larger than the route allows is refused before it is read.
    let reply = raw(
        &s.server,
        &format!(
            "POST /proxy/pay/v1/echo HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer {key}\r\n\
             Content-Length: 5242880\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("payload_too_large"), "{reply}");
    let unauthenticated = api.get("/proxy/pay/v1/customers").send().await;
    assert_eq!(unauthenticated.status, 401);
    // The key's limits apply here too.
    let mut limited = None;
    for _ in 0..10 {
        let reply = api.get("/proxy/pay/v1/customers").token(&key).send().await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.expect("the rate ran out");
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.header("retry-after").is_some());
}

keygate_testkit::on_both_databases!(
    the_credential_goes_upstream_and_the_key_does_not,
    what_no_scope_grants_is_refused_and_recorded,
    bad_requests_and_upstream_failures_have_stable_codes,
);
