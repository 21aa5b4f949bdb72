//! Admin tokens: listing and revocation, within the caller's role and binding.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_testkit::{Db, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_locks_it_out_at_once() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let admin = api.create_token(owner, "admin", None).await;
    // The token works, and is now in this node's verification cache.
    api.get("/admin/v1/keys")
        .token(&admin.secret)
        .send()
        .await
        .expect(200);

    let revoked = api
        .post(&format!("/admin/v1/tokens/{}/revoke", admin.id))
        .token(owner)
        .json(&json!({"reason": "left the team"}))
        .send()
        .await
        .expect(200);
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(revoked.body["revoked_reason"], "left the team");
    assert!(!revoked.text.contains(&admin.secret));

    api.get("/admin/v1/keys")
        .token(&admin.secret)
        .send()
        .await
        .expect_error(401, "key_revoked");
    api.post(&format!("/admin/v1/tokens/{}/revoke", admin.id))
        .token(owner)
        .json(&json!({"reason": "again"}))
        .send()
        .await
        .expect_error(409, "key_not_mutable");

    let events = api.audit_events(owner).await;
    let event = events
        .iter()
        .find(|e| e["action"] == "token.revoke")
        .expect("a token.revoke event");
    assert_eq!(event["target"], admin.id.as_str());
    assert_eq!(event["details"]["reason"], "left the team");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_shows_tokens_without_secrets_within_the_binding() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let other = api.create_project(owner, "other").await;
    let org_viewer = api.create_token(owner, "viewer", None).await;
    let project_admin = api.create_token(owner, "admin", Some("default")).await;
    let other_admin = api.create_token(owner, "admin", Some(&other)).await;

    let all = api
        .get("/admin/v1/tokens")
        .token(owner)
        .send()
        .await
        .expect(200);
    let ids: Vec<&str> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    for token in [&org_viewer, &project_admin, &other_admin] {
        assert!(ids.contains(&token.id.as_str()));
        assert!(!all.text.contains(&token.secret), "a secret in a listing");
    }
    assert_eq!(ids.len(), 4, "the bootstrap owner and three more");

    // A project-bound admin sees and manages only its own project's tokens.
    let own = api
        .get("/admin/v1/tokens")
        .token(&project_admin.secret)
        .send()
        .await
        .expect(200);
    let own_ids: Vec<&str> = own.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(own_ids, vec![project_admin.id.as_str()]);
    for target in [&other_admin, &org_viewer] {
        api.post(&format!("/admin/v1/tokens/{}/revoke", target.id))
            .token(&project_admin.secret)
            .json(&json!({"reason": "reach"}))
            .send()
            .await
            .expect_error(404, "not_found");
    }
    api.get("/admin/v1/keys")
        .token(&other_admin.secret)
        .send()
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_revokes_above_their_role() {
    let server = TestServer::start(Db::Postgres).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let admin = api.create_token(owner, "admin", None).await;
    let second_owner = api.create_token(owner, "owner", None).await;
    let viewer = api.create_token(owner, "viewer", None).await;

    api.post(&format!("/admin/v1/tokens/{}/revoke", second_owner.id))
        .token(&admin.secret)
        .json(&json!({"reason": "coup"}))
        .send()
        .await
        .expect_error(403, "forbidden");
    api.get("/admin/v1/keys")
        .token(&second_owner.secret)
        .send()
        .await
        .expect(200);
    api.post(&format!("/admin/v1/tokens/{}/revoke", admin.id))
        .token(&viewer.secret)
        .json(&json!({"reason": "no"}))
        .send()
        .await
        .expect_error(403, "forbidden");
    // An admin may revoke a viewer; an owner may revoke another owner.
    api.post(&format!("/admin/v1/tokens/{}/revoke", viewer.id))
        .token(&admin.secret)
        .json(&json!({"reason": "rotation of staff"}))
        .send()
        .await
        .expect(200);
    api.post(&format!("/admin/v1/tokens/{}/revoke", second_owner.id))
        .token(owner)
        .json(&json!({"reason": "handover"}))
        .send()
        .await
        .expect(200);
    // API keys are not tokens.
    let key = api
        .create_key(owner, json!({"project": "default", "name": "k"}))
        .await;
    api.post(&format!("/admin/v1/tokens/{}/revoke", key.id))
        .token(owner)
        .json(&json!({"reason": "wrong kind"}))
        .send()
        .await
        .expect_error(404, "not_found");
    assert_eq!(api.verify_code(&key.secret).await, "valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_organisation_wide_auditors_walk_the_whole_chain() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let org_auditor = api.create_token(owner, "auditor", None).await;
    let project_auditor = api.create_token(owner, "auditor", Some("default")).await;
    let report = api.audit_verify(&org_auditor.secret).await;
    assert_eq!(report["ok"], true);
    api.get("/admin/v1/audit/verify")
        .token(&project_auditor.secret)
        .send()
        .await
        .expect_error(403, "forbidden");
    // The project's own events stay readable to it.
    api.get("/admin/v1/audit")
        .token(&project_auditor.secret)
        .send()
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_reveals_only_its_id() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let key = api
        .create_key(
            owner,
            json!({"project": "default", "name": "internal", "scopes": ["db:*"],
                   "metadata": {"host": "db7.corp"}}),
        )
        .await;
    let valid = api.verify(&key.secret, None, None).await;
    assert_eq!(valid["metadata"]["host"], "db7.corp");
    api.post(&format!("/admin/v1/keys/{}/revoke", key.id))
        .token(owner)
        .json(&json!({"reason": "done"}))
        .send()
        .await
        .expect(200);
    let refused = api.verify(&key.secret, None, None).await;
    assert_eq!(refused["code"], "key_revoked");
    assert_eq!(refused["key_id"], key.id.as_str());
    for field in ["name", "project", "scopes", "metadata", "env", "expires_at"] {
        assert!(refused[field].is_null(), "{field} leaked: {refused}");
    }
}
