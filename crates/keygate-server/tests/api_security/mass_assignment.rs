//! API3 Broken object property level authorisation: a body that names a property the caller
//! may not set — a key's role, project, id or state, an organisation, a publishable key with a
//! write scope — is refused whole (400), and nothing about the object changes. What an answer
//! shows is the object's view: never its stored digest.

use keygate_testkit::{Db, TestServer};
use serde_json::json;

use super::assert_healthy;

async fn properties_the_caller_may_not_set_are_refused(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    for body in [
        json!({"project": "default", "name": "m", "scopes": ["models:*"], "role": "owner"}),
        json!({"project": "default", "name": "m", "scopes": ["models:*"], "org": "other"}),
        json!({"project": "default", "name": "m", "scopes": ["models:*"], "id": "key_mine"}),
        json!({"project": "default", "name": "m", "scopes": ["models:*"], "digest": "00"}),
        json!({"project": "default", "name": "m", "scopes": ["POST /proxy/pay/*"], "publishable": true, "origins": ["https://shop.example"]}),
    ] {
        let reply = api
            .post("/admin/v1/keys")
            .token(owner)
            .json(&body)
            .send()
            .await;
        assert_eq!(reply.status, 400, "{body} was accepted: {}", reply.text);
    }
    let listed = api
        .get("/admin/v1/keys")
        .token(owner)
        .send()
        .await
        .expect(200);
    let before = listed.body["data"].as_array().map(Vec::len);
    let key = api
        .create_key(
            owner,
            json!({"project": "default", "name": "target", "scopes": ["models:*"]}),
        )
        .await;
    let path = format!("/admin/v1/keys/{}", key.id);
    let shown = api.get(&path).token(owner).send().await.expect(200);
    for body in [
        json!({"project": "other"}),
        json!({"role": "owner"}),
        json!({"publishable": true}),
        json!({"id": "key_other"}),
        json!({"status": "active"}),
        json!({"created_at": "2020-01-01T00:00:00Z"}),
    ] {
        let reply = api.patch(&path).token(owner).json(&body).send().await;
        assert_eq!(reply.status, 400, "{body} was accepted: {}", reply.text);
    }
    let after = api.get(&path).token(owner).send().await.expect(200);
    assert_eq!(after.body, shown.body, "a refused update changed the key");
    assert!(
        !after.text.contains("digest"),
        "a key's view shows its digest: {}",
        after.text
    );
    let reply = api
        .post("/admin/v1/projects")
        .token(owner)
        .json(&json!({"name": "p2", "org": "other"}))
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let listed = api
        .get("/admin/v1/keys")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(
        listed.body["data"].as_array().map(Vec::len),
        before.map(|n| n + 1),
        "only the one key was made"
    );
    assert_healthy(&server).await;
}

keygate_testkit::on_both_databases!(properties_the_caller_may_not_set_are_refused);
