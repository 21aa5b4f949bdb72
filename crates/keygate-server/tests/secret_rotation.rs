//! Staged secret rotation: pending, checked against a mock of OpenAI's `GET /v1/models`,
//! promoted only when the upstream accepts the new value.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_testkit::upstream::OpenAiModels;
use keygate_testkit::{Api, Db, TestServer};
use serde_json::{Value, json};

async fn stages(api: &Api, token: &str, id: &str) -> Vec<(i64, String)> {
    let shown = api
        .get(&format!("/admin/v1/secrets/{id}"))
        .token(token)
        .send()
        .await
        .expect(200);
    shown.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["stage"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn revealed(api: &Api, token: &str, id: &str) -> Value {
    api.post(&format!("/admin/v1/secrets/{id}/reveal"))
        .token(token)
        .send()
        .await
        .expect(200)
        .body["value"]
        .clone()
}

async fn a_checked_rotation_promotes_only_what_works(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let upstream = OpenAiModels::start("sk-new-good").await.unwrap();
    let created = api
        .post("/admin/v1/secrets")
        .token(owner)
        .json(&json!({"project": "default", "name": "openai-prod", "value": "sk-old"}))
        .send()
        .await
        .expect(200);
    let id = created.body["id"].as_str().unwrap().to_owned();

    // A value the upstream refuses stays pending; the current one is untouched.
    let refused = api
        .post(&format!("/admin/v1/secrets/{id}/rotate"))
        .token(owner)
        .json(&json!({"value": "sk-new-bad", "grace_period_seconds": 600,
                      "check": {"url": upstream.url()}}))
        .send()
        .await
        .expect(200);
    assert_eq!(refused.body["stage"], "pending");
    assert_eq!(refused.body["check_failed"], "the upstream answered 401");
    assert!(!refused.text.contains("sk-new-bad") && !refused.text.contains("Incorrect API key"));
    assert_eq!(
        stages(&api, owner, &id).await,
        vec![(2, "pending".to_owned()), (1, "current".to_owned())]
    );
    assert_eq!(revealed(&api, owner, &id).await, "sk-old");

    // A value it accepts is promoted; the old one becomes previous for the grace period.
    let promoted = api
        .post(&format!("/admin/v1/secrets/{id}/rotate"))
        .token(owner)
        .json(&json!({"value": "sk-new-good", "grace_period_seconds": 600,
                      "check": {"url": upstream.url()}}))
        .send()
        .await
        .expect(200);
    assert_eq!(promoted.body["stage"], "current");
    assert_eq!(promoted.body["version"], 3);
    assert_eq!(
        stages(&api, owner, &id).await,
        vec![
            (3, "current".to_owned()),
            (2, "pending".to_owned()),
            (1, "previous".to_owned())
        ]
    );
    assert_eq!(revealed(&api, owner, &id).await, "sk-new-good");
    assert_eq!(
        upstream.seen(),
        vec!["sk-new-bad", "sk-new-good"],
        "the check carried the value"
    );

    // Only a pending version can be promoted, and never one older than the current one.
    api.post(&format!("/admin/v1/secrets/{id}/promote"))
        .token(owner)
        .json(&json!({"version": 3}))
        .send()
        .await
        .expect_error(409, "not_pending");
    api.post(&format!("/admin/v1/secrets/{id}/promote"))
        .token(owner)
        .json(&json!({"version": 2, "grace_period_seconds": 60}))
        .send()
        .await
        .expect_error(409, "superseded");
    assert_eq!(revealed(&api, owner, &id).await, "sk-new-good");

    let events = api.audit_events(owner).await;
    let actions: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["target"] == id.as_str())
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("secret.rotate", "success"),
        ("secret.promote", "denied"),
        ("secret.promote", "success"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("sk-new-good") && !all.contains("sk-old"));
}

async fn unreachable_upstreams_and_bad_checks(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let created = api
        .post("/admin/v1/secrets")
        .token(owner)
        .json(&json!({"project": "default", "name": "stripe", "value": "sk_live_old"}))
        .send()
        .await
        .expect(200);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let closed = api
        .post(&format!("/admin/v1/secrets/{id}/rotate"))
        .token(owner)
        .json(&json!({"value": "sk_live_new", "check": {"url": "http://127.0.0.1:9/v1/models"}}))
        .send()
        .await
        .expect(200);
    assert_eq!(
        closed.body["check_failed"],
        "the upstream could not be reached"
    );
    for check in [
        json!({"url": "file:///etc/passwd"}),
        json!({"url": "https://x/", "header": "bad header"}),
    ] {
        api.post(&format!("/admin/v1/secrets/{id}/rotate"))
            .token(owner)
            .json(&json!({"value": "v", "check": check}))
            .send()
            .await
            .expect_error(400, "validation_failed");
    }
    // Without a check the value is promoted at once.
    let direct = api
        .post(&format!("/admin/v1/secrets/{id}/rotate"))
        .token(owner)
        .json(&json!({"value": "sk_live_direct"}))
        .send()
        .await
        .expect(200);
    assert_eq!(direct.body["stage"], "current");
    assert_eq!(revealed(&api, owner, &id).await, "sk_live_direct");
}

keygate_testkit::on_both_databases!(
    a_checked_rotation_promotes_only_what_works,
    unreachable_upstreams_and_bad_checks,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotation_policy_lists_and_announces_due_secrets() {
    use std::sync::Arc;
    use std::time::Duration;

    use keygate_core::{Clock, ManualClock, SystemClock};

    let clock = ManualClock::starting_at(SystemClock.now());
    let server = TestServer::start_with(
        Db::Postgres,
        Arc::new(clock.clone()),
        keygate_server::ServerSettings::default(),
    )
    .await
    .unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let put = |value: &'static str| {
        let api = api.clone();
        async move {
            api.post("/admin/v1/secrets")
                .token(owner)
                .json(
                    &json!({"project": "default", "name": "stripe", "value": value,
                              "rotate_every_seconds": 3600}),
                )
                .send()
                .await
                .expect(200)
        }
    };
    let created = put("sk_live_1").await;
    assert_eq!(created.body["rotate_every_seconds"], 3600);
    let due = |within: u64| {
        let api = api.clone();
        async move {
            api.get(&format!("/admin/v1/secrets/due?within_seconds={within}"))
                .token(owner)
                .send()
                .await
                .expect(200)
                .body["data"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(due(0).await, 0);
    assert_eq!(due(3600).await, 1, "due within the hour");
    assert_eq!(server.keygate.announce_due_secrets().await.unwrap(), 0);

    clock.advance(Duration::from_secs(3600));
    assert_eq!(due(0).await, 1);
    assert_eq!(server.keygate.announce_due_secrets().await.unwrap(), 1);
    assert_eq!(
        server.keygate.announce_due_secrets().await.unwrap(),
        0,
        "announced once per version"
    );

    // A new version restarts the clock, and is announced in its turn.
    put("sk_live_2").await;
    assert_eq!(due(0).await, 0);
    clock.advance(Duration::from_secs(3601));
    assert_eq!(server.keygate.announce_due_secrets().await.unwrap(), 1);
    let events = api.audit_events(owner).await;
    let announced: Vec<i64> = events
        .iter()
        .filter(|e| e["action"] == "secret.rotation_due")
        .map(|e| e["details"]["version"].as_i64().unwrap())
        .collect();
    assert_eq!(announced, vec![1, 2], "each version announced once");
}
