//! The vault over HTTP: values go in, come out only through an audited reveal, and are bound
//! to their row.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_testkit::{Api, Db, TestServer};
use serde_json::{Value, json};

const VALUE: &str = "sk-upstream-0123456789abcdefghijklmnopqrstuvwxyz";

async fn put(api: &Api, token: &str, name: &str, value: &str) -> Value {
    api.post("/admin/v1/secrets")
        .token(token)
        .json(&json!({"project": "default", "name": name, "value": value,
                       "grace_period_seconds": 3600}))
        .send()
        .await
        .expect(200)
        .body
}

async fn reveal(api: &Api, token: &str, id: &str, version: Option<i64>) -> keygate_testkit::Reply {
    api.post(&format!("/admin/v1/secrets/{id}/reveal"))
        .token(token)
        .json(&json!({"version": version}))
        .send()
        .await
}

async fn values_go_in_and_come_out_only_by_reveal(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let first = put(&api, owner, "openai-prod", VALUE).await;
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(first["versions"][0]["stage"], "current");
    let second = put(&api, owner, "openai-prod", "sk-second-value").await;
    assert_eq!(second["id"], id.as_str(), "same name, same secret");
    assert_eq!(second["versions"][0]["version"], 2);
    assert_eq!(second["versions"][1]["stage"], "previous");
    assert!(second["versions"][1]["previous_until"].is_string());

    let shown = api
        .get(&format!("/admin/v1/secrets/{id}"))
        .token(owner)
        .send()
        .await
        .expect(200);
    let listed = api
        .get("/admin/v1/secrets")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(listed.body["data"][0]["name"], "openai-prod");

    let current = reveal(&api, owner, &id, None).await.expect(200);
    assert_eq!(current.body["value"], "sk-second-value");
    assert_eq!(current.header("cache-control"), Some("no-store"));
    let older = reveal(&api, owner, &id, Some(1)).await.expect(200);
    assert_eq!(older.body["value"], VALUE);
    reveal(&api, owner, &id, Some(9))
        .await
        .expect_error(404, "not_found");

    // Nothing but the reveal responses carries the value.
    for exchange in api.transcript() {
        if exchange.path.ends_with("/reveal") {
            continue;
        }
        assert!(
            !exchange.body.contains(VALUE),
            "{} {}",
            exchange.method,
            exchange.path
        );
    }
    assert!(!shown.text.contains("sk-second"));
    let rows = server.store.dump_rows().await.unwrap();
    assert!(
        rows.iter().any(|r| r.contains("openai-prod")),
        "the dump sees the vault"
    );
    assert!(
        rows.iter()
            .all(|r| !r.contains(VALUE) && !r.contains("sk-second")),
        "a value stored in plain text"
    );
    let events = api.audit_events(owner).await;
    let reveals: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "secret.reveal")
        .collect();
    assert_eq!(reveals.len(), 2, "each reveal is on the record");
    assert!(!serde_json::to_string(&events).unwrap().contains(VALUE));
}

async fn reveal_is_for_owners_and_reach_is_bounded(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let admin = api.create_token(owner, "admin", None).await;
    let operator = api.create_token(owner, "operator", None).await;
    let viewer = api.create_token(owner, "viewer", None).await;
    let created = put(&api, &operator.secret, "stripe", VALUE).await;
    let id = created["id"].as_str().unwrap();

    for token in [&admin, &operator, &viewer] {
        reveal(&api, &token.secret, id, None)
            .await
            .expect_error(403, "forbidden");
    }
    api.post("/admin/v1/secrets")
        .token(&viewer.secret)
        .json(&json!({"project": "default", "name": "x", "value": "y"}))
        .send()
        .await
        .expect_error(403, "forbidden");
    api.get(&format!("/admin/v1/secrets/{id}"))
        .token(&viewer.secret)
        .send()
        .await
        .expect(200);

    // A token bound to another project cannot even see that the secret exists.
    let other = api.create_project(owner, "other").await;
    let outsider = api.create_token(owner, "owner", Some(&other)).await;
    for reply in [
        api.get(&format!("/admin/v1/secrets/{id}"))
            .token(&outsider.secret)
            .send()
            .await,
        reveal(&api, &outsider.secret, id, None).await,
        api.delete(&format!("/admin/v1/secrets/{id}"))
            .token(&outsider.secret)
            .send()
            .await,
    ] {
        reply.expect_error(404, "not_found");
    }
    let denied = api
        .audit_events(owner)
        .await
        .into_iter()
        .filter(|e| e["action"] == "access.denied")
        .count();
    assert!(denied >= 3, "refused reveals are audited");
}

async fn bad_input_changes_nothing(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    put(&api, owner, "kept", VALUE).await;
    let head = api.audit_verify(owner).await["head_seq"].clone();
    for body in [
        json!({"project": "default", "name": "bad name", "value": "v"}),
        json!({"project": "default", "name": "empty", "value": ""}),
        json!({"project": "default", "name": "big", "value": "x".repeat(33 * 1024)}),
        json!({"project": "nope", "name": "n", "value": "v"}),
        json!({"project": "default", "name": "n", "value": "v", "grace_period_seconds": 99_999_999}),
        json!({"project": "default", "name": "n", "value": 42}),
    ] {
        let reply = api
            .post("/admin/v1/secrets")
            .token(owner)
            .json(&body)
            .send()
            .await;
        assert!(
            [400, 404, 413].contains(&reply.status),
            "{body}: {}",
            reply.text
        );
        assert!(!reply.text.contains("xxxxxxxx"), "the value is not echoed");
    }
    assert_eq!(api.audit_verify(owner).await["head_seq"], head);
    let listed = api
        .get("/admin/v1/secrets")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
}

async fn a_damaged_or_moved_ciphertext_fails_alone(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let a = put(&api, owner, "a", "value-a").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = put(&api, owner, "b", "value-b").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = put(&api, owner, "c", "value-c").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Move b's sealed value and data key onto a's row: the associated data no longer matches.
    server
        .store
        .tamper(&format!(
            "UPDATE secret_versions SET sealed = (SELECT sealed FROM secret_versions \
             WHERE secret_id = '{b}'), wrapped_dek = (SELECT wrapped_dek FROM secret_versions \
             WHERE secret_id = '{b}') WHERE secret_id = '{a}'"
        ))
        .await
        .unwrap();
    reveal(&api, owner, &a, None)
        .await
        .expect_error(500, "secret_unreadable");
    // Damage c's ciphertext.
    server
        .store
        .tamper(&format!(
            "UPDATE secret_versions SET sealed = 'AQ' || sealed WHERE secret_id = '{c}'"
        ))
        .await
        .unwrap();
    reveal(&api, owner, &c, None)
        .await
        .expect_error(500, "secret_unreadable");
    // Everything else keeps working.
    let fine = reveal(&api, owner, &b, None).await.expect(200);
    assert_eq!(fine.body["value"], "value-b");
    let unreadable = api
        .audit_events(owner)
        .await
        .into_iter()
        .filter(|e| e["action"] == "secret.unreadable")
        .count();
    assert_eq!(unreadable, 2);
}

async fn deletion_erases_the_values(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let id = put(&api, owner, "gone", VALUE).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.delete(&format!("/admin/v1/secrets/{id}"))
        .token(owner)
        .send()
        .await
        .expect(204);
    api.get(&format!("/admin/v1/secrets/{id}"))
        .token(owner)
        .send()
        .await
        .expect_error(404, "not_found");
    reveal(&api, owner, &id, None)
        .await
        .expect_error(404, "not_found");
    // The name is free again, as a new secret.
    let again = put(&api, owner, "gone", "new").await;
    assert_ne!(again["id"], id.as_str());
}

async fn api_keys_read_with_a_scope(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    put(&api, owner, "openai-prod", VALUE).await;
    let key_with = |scopes: Value| {
        let api = api.clone();
        async move {
            api.create_key(
                owner,
                json!({"project": "default", "name": "runner", "scopes": scopes}),
            )
            .await
        }
    };
    let broad = key_with(json!(["secrets:read"])).await;
    let narrow = key_with(json!(["secrets:read:openai-prod"])).await;
    let other_secret = key_with(json!(["secrets:read:stripe"])).await;
    let none = key_with(json!(["chat:write"])).await;
    let read = |key: String, name: &'static str| {
        let api = api.clone();
        async move {
            api.get(&format!("/v1/secrets/{name}"))
                .header("authorization", &format!("Bearer {key}"))
                .send()
                .await
        }
    };
    for key in [&broad, &narrow] {
        let reply = read(key.secret.clone(), "openai-prod").await.expect(200);
        assert_eq!(reply.body["value"], VALUE);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    for key in [&other_secret, &none] {
        read(key.secret.clone(), "openai-prod")
            .await
            .expect_error(403, "scope_denied");
    }
    read(broad.secret.clone(), "missing")
        .await
        .expect_error(404, "not_found");
    // A new value is served at once: the remembered one is dropped with the change.
    put(&api, owner, "openai-prod", "sk-changed").await;
    let changed = read(narrow.secret.clone(), "openai-prod").await.expect(200);
    assert_eq!(changed.body["value"], "sk-changed");
    assert_eq!(changed.body["version"], 2);
    api.get("/v1/secrets/openai-prod")
        .send()
        .await
        .expect_error(401, "unauthenticated");
    // An admin token is not an API key, and a revoked key reads nothing.
    read(owner.clone(), "openai-prod")
        .await
        .expect_error(401, "key_invalid");
    api.post(&format!("/admin/v1/keys/{}/revoke", broad.id))
        .token(owner)
        .json(&json!({"reason": "done"}))
        .send()
        .await
        .expect(200);
    read(broad.secret.clone(), "openai-prod")
        .await
        .expect_error(401, "key_revoked");
    // A key of another project cannot reach this project's secrets.
    api.create_project(owner, "other").await;
    let outsider = api
        .create_key(
            owner,
            json!({"project": "other", "name": "o", "scopes": ["secrets:read"]}),
        )
        .await;
    read(outsider.secret.clone(), "openai-prod")
        .await
        .expect_error(404, "not_found");

    let events = api.audit_events(owner).await;
    let reads: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "secret.read")
        .collect();
    assert_eq!(
        reads.len(),
        3,
        "every read is on the record, remembered or not"
    );
    assert!(reads.iter().any(|e| e["actor"] == narrow.id.as_str()));
}

async fn only_owners_issue_keys_that_read_secrets(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    put(&api, owner, "openai-prod", VALUE).await;
    let admin = api.create_token(owner, "admin", None).await;
    let operator = api.create_token(owner, "operator", None).await;
    for token in [&admin, &operator] {
        api.post("/admin/v1/keys")
            .token(&token.secret)
            .json(&json!({"project": "default", "name": "x", "scopes": ["secrets:read"]}))
            .send()
            .await
            .expect_error(403, "forbidden");
    }
    // A key they may create cannot widen into secrets: `*` does not read them.
    let star = api
        .create_key(
            &admin.secret,
            json!({"project": "default", "name": "s", "scopes": ["*"]}),
        )
        .await;
    api.get("/v1/secrets/openai-prod")
        .header("authorization", &format!("Bearer {}", star.secret))
        .send()
        .await
        .expect_error(403, "scope_denied");
    api.patch(&format!("/admin/v1/keys/{}", star.id))
        .token(&admin.secret)
        .json(&json!({"scopes": ["secrets:read:openai-prod"]}))
        .send()
        .await
        .expect_error(403, "forbidden");
    let granted = api
        .patch(&format!("/admin/v1/keys/{}", star.id))
        .token(owner)
        .json(&json!({"scopes": ["secrets:read:openai-prod"]}))
        .send()
        .await
        .expect(200);
    assert_eq!(granted.body["scopes"][0], "secrets:read:openai-prod");
    let read = api
        .get("/v1/secrets/openai-prod")
        .header("authorization", &format!("Bearer {}", star.secret))
        .send()
        .await
        .expect(200);
    assert_eq!(read.body["value"], VALUE);
}

keygate_testkit::on_both_databases!(
    only_owners_issue_keys_that_read_secrets,
    api_keys_read_with_a_scope,
    values_go_in_and_come_out_only_by_reveal,
    reveal_is_for_owners_and_reach_is_bounded,
    bad_input_changes_nothing,
    a_damaged_or_moved_ciphertext_fails_alone,
    deletion_erases_the_values,
);
