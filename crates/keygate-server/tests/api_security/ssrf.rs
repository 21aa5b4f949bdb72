//! API7 Server-side request forgery: a webhook URL is where keygate will send requests on its
//! own, so every spelling of a private, loopback, link-local or metadata address is refused
//! when the webhook is made (a DNS name is checked again at each connection, by the egress
//! resolver: `keygate-llm`'s `egress/addresses.rs`), and so are URLs with credentials or
//! other schemes. Nothing is stored.

use keygate_testkit::{Db, TestServer};
use serde_json::json;

use super::assert_healthy;

async fn webhook_urls_cannot_reach_inside(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let inside = [
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://127.0.0.1:9/hook",
        "http://127.1/hook",
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://10.0.0.1/hook",
        "http://192.168.1.1/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://user:password@example.com/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://example.com/",
    ];
    for url in inside {
        let reply = api
            .post("/admin/v1/webhooks")
            .token(owner)
            .json(&json!({"url": url, "events": ["key.created"]}))
            .send()
            .await;
        assert_eq!(reply.status, 400, "{url} was accepted: {}", reply.text);
        assert_eq!(reply.body["error"]["code"], "validation_failed", "{url}");
    }
    let listed = api
        .get("/admin/v1/webhooks")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(
        listed.body["data"].as_array().map(Vec::len),
        Some(0),
        "{}",
        listed.text
    );
    assert_healthy(&server).await;
}

keygate_testkit::on_both_databases!(webhook_urls_cannot_reach_inside);
