//! API8 Security misconfiguration: every API answer carries the security headers (no MIME
//! sniffing, no framing, no active content), answers holding admin data or secrets are never
//! cached, and no error body shows a stack trace, a source path or a panic.

use keygate_testkit::{Db, TestServer};
use serde_json::json;

use super::assert_healthy;

fn assert_hardened(reply: &keygate_testkit::Reply, what: &str) {
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
    assert!(
        reply
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("frame-ancestors 'none'")),
        "{what}"
    );
}

fn assert_no_internals(reply: &keygate_testkit::Reply, what: &str) {
    for tell in [
        "panicked",
        "backtrace",
        "src/",
        ".rs:",
        "RUST_BACKTRACE",
        "thread '",
    ] {
        assert!(
            !reply.text.contains(tell),
            "{what} shows internals ({tell}): {}",
            reply.text
        );
    }
    assert!(reply.status < 500, "{what}: {}", reply.status);
}

#[tokio::test]
async fn answers_carry_the_security_headers() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let listed = api
        .get("/admin/v1/keys")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_hardened(&listed, "an admin answer");
    assert_eq!(
        listed.header("cache-control"),
        Some("no-store"),
        "admin data is never cached"
    );
    let created = api
        .create_key(
            owner,
            json!({"project": "default", "name": "h", "scopes": ["models:*"]}),
        )
        .await;
    let verified = api
        .post("/v1/keys/verify")
        .json(&json!({"key": created.secret}))
        .send()
        .await;
    assert_hardened(&verified, "a verification");
    assert_eq!(verified.header("cache-control"), Some("no-store"));
    for (path, what) in [
        ("/v1/models", "a gateway refusal"),
        ("/nowhere", "an unknown route"),
        ("/healthz", "the health check"),
    ] {
        let reply = api.get(path).send().await;
        assert_hardened(&reply, what);
    }
    // The console keeps its own, stricter policy.
    let console = api.get("/ui/sign-in").send().await;
    assert!(
        console
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("script-src 'self'")),
        "{:?}",
        console.header("content-security-policy")
    );
    assert_healthy(&server).await;
}

async fn errors_show_no_internals(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let cases = [
        (
            api.post("/admin/v1/keys")
                .token(owner)
                .header("content-type", "application/json")
                .body("{\"name\": [[[["),
            "malformed JSON",
        ),
        (
            api.post("/admin/v1/keys")
                .token(owner)
                .header("content-type", "application/json")
                .body("{\"project\": \"default\", \"name\": \"x\", \"scopes\": [\"\\u0000\"]}"),
            "a scope with a NUL",
        ),
        (
            api.delete("/admin/v1/keys").token(owner),
            "a method the route does not take",
        ),
        (
            api.get("/admin/v1/keys/key_%00%ff").token(owner),
            "an id that is not one",
        ),
        (
            api.get("/admin/v1/usage?from=yesterday&group_by=%F0%9F")
                .token(owner),
            "a bad query string",
        ),
        (
            api.post("/v1/chat/completions")
                .token("kg_live_nope")
                .body(vec![0xffu8, 0xfe, 0x00]),
            "a gateway call with a binary body",
        ),
    ];
    for (call, what) in cases {
        let reply = call.send().await;
        assert_no_internals(&reply, what);
        assert!(reply.status >= 400, "{what} was accepted: {}", reply.text);
        assert!(
            serde_json::from_str::<serde_json::Value>(&reply.text).is_ok(),
            "{what}: the error is not the API's JSON: {}",
            reply.text
        );
    }
    assert_healthy(&server).await;
}

keygate_testkit::on_both_databases!(errors_show_no_internals);
