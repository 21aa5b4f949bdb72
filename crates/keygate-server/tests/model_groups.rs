//! Model groups through the admin API: stored, checked against the rest of the gateway,
//! served at once on this node and picked up by others from the store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_llm::GatewayFile;
use keygate_server::GatewayState;
use keygate_testkit::{Db, MockOpenAi, TestServer};
use serde_json::json;

const KEY: &str = "sk-upstream-0123456789abcdef";

fn config(mock: &MockOpenAi) -> String {
    format!(
        r#"
        [providers.up]
        kind = "openai-compatible"
        base_url = "{}/v1"
        credential = "env::UP_KEY"

        [model_groups.chat]
        deployments = [{{ provider = "up", model = "from-file" }}]
        "#,
        mock.origin()
    )
}

async fn groups_are_stored_checked_and_served(db: Db) {
    let mock = MockOpenAi::start("up", KEY).await.unwrap();
    let text = config(&mock);
    let server = TestServer::start_gateway(db, &text, &[("UP_KEY", KEY)])
        .await
        .unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let key = api
        .create_key(
            owner,
            json!({"project": "default", "name": "app", "scopes": ["models:*"]}),
        )
        .await
        .secret;
    let chat = |model: &str| {
        api.post("/v1/chat/completions").token(&key).json(&json!({
            "model": model, "messages": [{"role": "user", "content": "hi"}]
        }))
    };
    chat("fast")
        .send()
        .await
        .expect_error(404, "model_not_found");

    let group = json!({
        "strategy": "least-in-flight",
        "deployments": [{"provider": "up", "model": "stored-model", "weight": 2}],
        "fallbacks": ["chat"],
        "retries": 1,
        "hints": "refuse"
    });
    let put = api
        .request(reqwest::Method::PUT, "/admin/v1/model-groups/fast")
        .token(owner)
        .json(&group)
        .send()
        .await
        .expect(200);
    assert_eq!(put.body["source"], "api");
    assert_eq!(put.body["health"][0]["deployment"], "up/stored-model");
    assert_eq!(put.body["health"][0]["breaker_open"], false);
    assert_eq!(put.body["strategy"], "least-in-flight");
    assert_eq!(put.body["hints"], "refuse");
    chat("fast").send().await.expect(200);
    assert_eq!(
        mock.requests().last().unwrap().json()["model"],
        "stored-model",
        "served at once on this node"
    );

    let listed = api
        .get("/admin/v1/model-groups")
        .token(owner)
        .send()
        .await
        .expect(200);
    let sources: Vec<(String, String)> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["alias"].as_str().unwrap().to_owned(),
                g["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("chat".to_owned(), "config".to_owned()),
            ("fast".to_owned(), "api".to_owned())
        ]
    );

    // Another node on the same store picks the group up from there.
    let other = GatewayState::new(
        GatewayFile::from_toml(&text).unwrap(),
        [("UP_KEY".to_owned(), KEY.to_owned())].into(),
    )
    .unwrap();
    assert!(!other.current().has_alias("fast"));
    other.reload(server.keygate.store().as_ref()).await.unwrap();
    assert!(other.current().has_alias("fast"));

    // What cannot be served is refused, and nothing is stored.
    let put_as = |token: &str, alias: &str, body: serde_json::Value| {
        api.request(
            reqwest::Method::PUT,
            &format!("/admin/v1/model-groups/{alias}"),
        )
        .token(token)
        .json(&body)
    };
    let put_group = |alias: &str, body: serde_json::Value| put_as(owner, alias, body);
    let unknown = put_group(
        "broken",
        json!({"deployments": [{"provider": "nowhere", "model": "m"}]}),
    )
    .send()
    .await;
    unknown.clone().expect_error(400, "invalid_model_group");
    assert!(unknown.message().contains("nowhere"), "{}", unknown.text);
    put_group(
        "broken",
        json!({"deployments": [{"provider": "up", "model": "m"}], "colour": 1}),
    )
    .send()
    .await
    .expect_error(400, "validation_failed");
    put_group(
        "pasted",
        json!({"deployments": [{"provider": "up", "model": "m", "credential": "sk-live-abc"}]}),
    )
    .send()
    .await
    .expect_error(400, "invalid_model_group");
    put_group(
        "chat",
        json!({"deployments": [{"provider": "up", "model": "m"}]}),
    )
    .send()
    .await
    .expect_error(409, "defined_in_config");
    api.get("/admin/v1/model-groups/broken")
        .token(owner)
        .send()
        .await
        .expect_error(404, "not_found");

    // A write checked against a revision that has moved on is refused, and nothing changes.
    let store = server.keygate.store();
    let conflict = store
        .put_model_group(
            "raced",
            r#"{"deployments":[]}"#,
            Some("a revision long gone"),
            "next",
            keygate_core::Timestamp::from_millis(0),
            &keygate_testkit::audit(keygate_core::AuditAction::ModelGroupPut),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, keygate_store::StoreError::Conflict(_)),
        "{conflict:?}"
    );
    assert!(
        store
            .model_groups()
            .await
            .unwrap()
            .iter()
            .all(|g| g.alias != "raced")
    );

    // Only owners and admins change groups; everyone reads them, project-bound tokens too.
    let project = api.get("/admin/v1/projects").token(owner).send().await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bound = api.create_token(owner, "viewer", Some(&project)).await;
    api.get("/admin/v1/model-groups")
        .token(&bound.secret)
        .send()
        .await
        .expect(200);
    let viewer = api.create_token(owner, "viewer", None).await;
    api.get("/admin/v1/model-groups")
        .token(&viewer.secret)
        .send()
        .await
        .expect(200);
    put_as(
        &viewer.secret,
        "fast",
        json!({"deployments": [{"provider": "up", "model": "m"}]}),
    )
    .send()
    .await
    .expect_error(403, "forbidden");

    // A group another one falls back to cannot go.
    put_group(
        "slow",
        json!({"deployments": [{"provider": "up", "model": "m"}], "fallbacks": ["fast"]}),
    )
    .send()
    .await
    .expect(200);
    api.delete("/admin/v1/model-groups/fast")
        .token(owner)
        .send()
        .await
        .expect_error(400, "invalid_model_group");
    api.delete("/admin/v1/model-groups/slow")
        .token(owner)
        .send()
        .await
        .expect(204);
    api.delete("/admin/v1/model-groups/fast")
        .token(owner)
        .send()
        .await
        .expect(204);
    chat("fast")
        .send()
        .await
        .expect_error(404, "model_not_found");
    api.delete("/admin/v1/model-groups/fast")
        .token(owner)
        .send()
        .await
        .expect_error(404, "not_found");

    let actions: Vec<String> = api
        .audit_events(owner)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.starts_with("model_group."))
            .count(),
        4,
        "{actions:?}"
    );
}

keygate_testkit::on_both_databases!(groups_are_stored_checked_and_served);
