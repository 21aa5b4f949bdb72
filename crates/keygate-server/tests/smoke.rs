//! A first pass over the key lifecycle through a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use keygate_testkit::{Db, TestServer};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_verify_rotate_revoke() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let http = reqwest::Client::new();
    let created: Value = http
        .post(server.url("/admin/v1/keys"))
        .bearer_auth(&server.owner_token)
        .json(&json!({"project": "default", "name": "demo", "scopes": ["chat:*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();

    let verify = |key: String, permission: Option<&'static str>| {
        let http = http.clone();
        let url = server.url("/v1/keys/verify");
        async move {
            http.post(url)
                .json(&json!({"key": key, "permission": permission}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let ok = verify(secret.clone(), Some("chat:write")).await;
    assert_eq!(ok["valid"], true, "{ok}");
    assert_eq!(ok["key_id"], id.as_str());
    let denied = verify(secret.clone(), Some("admin:all")).await;
    assert_eq!(denied["code"], "permission_denied");

    let rotated: Value = http
        .post(server.url(&format!("/admin/v1/keys/{id}/rotate")))
        .bearer_auth(&server.owner_token)
        .json(&json!({"grace_period_seconds": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_eq!(verify(secret.clone(), None).await["code"], "key_rotated");
    assert_eq!(verify(new_secret.clone(), None).await["valid"], true);

    let revoked = http
        .post(server.url(&format!("/admin/v1/keys/{id}/revoke")))
        .bearer_auth(&server.owner_token)
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(verify(new_secret, None).await["code"], "key_revoked");

    let audit: Value = http
        .get(server.url("/admin/v1/audit/verify"))
        .bearer_auth(&server.owner_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["ok"], true, "{audit}");
}
