//! The key lifecycle through the admin API, part two: rotation with a grace period and with
//! an `Idempotency-Key`, revocation, suspension, deletion, expiry and the rotation policy, with time moved
//! by a manual clock; on SQLite and PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::time::Duration;

use keygate_core::{ManualClock, Timestamp};
use keygate_testkit::{Api, Db, Reply, TestServer};
use serde_json::{Value, json};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn at(secs: u64) -> String {
    T0.saturating_add(Duration::from_secs(secs)).to_rfc3339()
}

async fn start(db: Db) -> (TestServer, ManualClock) {
    TestServer::start_frozen(db, T0).await.unwrap()
}

async fn new_key(api: &Api, owner: &str, extra: Value) -> (String, String) {
    let mut body = json!({"project": "default", "name": "k"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let key = api.create_key(owner, body).await;
    (key.id, key.secret)
}

async fn rotate(api: &Api, token: &str, id: &str, body: Value, idempotency: Option<&str>) -> Reply {
    let mut call = api
        .post(&format!("/admin/v1/keys/{id}/rotate"))
        .token(token)
        .json(&body);
    if let Some(idem) = idempotency {
        call = call.header("idempotency-key", idem);
    }
    call.send().await
}

fn secret_of(reply: &Reply) -> String {
    reply.body["secret"].as_str().unwrap().to_owned()
}

async fn rotation_keeps_the_old_secret_for_the_grace_period(db: Db) {
    let (server, clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let (id, first) = new_key(&api, owner, json!({})).await;
    assert_eq!(api.verify_code(&first).await, "valid");

    clock.advance(Duration::from_secs(100));
    let reply = rotate(
        &api,
        owner,
        &id,
        json!({"grace_period_seconds": 3600}),
        None,
    )
    .await
    .expect(200);
    assert_eq!(reply.header("idempotent-replayed"), None);
    let second = secret_of(&reply);
    assert_ne!(second, first);
    let view = &reply.body["key"];
    assert_eq!(view["id"], id.as_str());
    assert_eq!(view["generation"], 1);
    assert_eq!(view["rotated_at"], at(100));
    assert_eq!(view["hint"], format!("{}…{}", &second[..12], &second[53..]));
    assert_eq!(&api.get_key(owner, &id).await, view);

    for (secs, old_code) in [
        (0, "valid"),
        (3599, "valid"),
        (1, "key_rotated"),
        (86_400, "key_rotated"),
    ] {
        clock.advance(Duration::from_secs(secs));
        let old = api.verify(&first, None, None).await;
        assert_eq!(old["code"], old_code, "{secs}");
        assert_eq!(
            old["key_id"],
            id.as_str(),
            "a rotated secret is still recognised"
        );
        let new = api.verify(&second, None, None).await;
        assert_eq!(
            (new["code"].clone(), new["key_id"].clone()),
            (json!("valid"), json!(id))
        );
    }

    // A rotation without grace retires the current secret at once, and shortens (never
    // lengthens) the grace of secrets rotated out before.
    let third = secret_of(
        &rotate(
            &api,
            owner,
            &id,
            json!({"grace_period_seconds": 3600}),
            None,
        )
        .await
        .expect(200),
    );
    assert_eq!(api.verify_code(&second).await, "valid");
    let fourth = secret_of(
        &rotate(&api, owner, &id, json!({"grace_period_seconds": 0}), None)
            .await
            .expect(200),
    );
    for old in [&first, &second, &third] {
        assert_eq!(api.verify_code(old).await, "key_rotated");
    }
    assert_eq!(api.verify_code(&fourth).await, "valid");
    // No body at all means no grace.
    let fifth = api
        .post(&format!("/admin/v1/keys/{id}/rotate"))
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(fifth.body["key"]["generation"], 4);
    assert_eq!(api.verify_code(&fourth).await, "key_rotated");
    assert_eq!(api.verify_code(&secret_of(&fifth)).await, "valid");

    let events = api.audit_events(owner).await;
    let graces: Vec<Value> = events
        .iter()
        .filter(|e| e["action"] == "key.rotate" && e["target"] == id.as_str())
        .map(|e| e["details"]["grace_period_seconds"].clone())
        .collect();
    assert_eq!(graces, vec![json!(3600), json!(3600), json!(0), json!(0)]);
}

async fn idempotent_rotation_rotates_once(db: Db) {
    let (server, _clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let (id, original) = new_key(&api, owner, json!({})).await;
    let body = json!({"grace_period_seconds": 60});

    let first = rotate(&api, owner, &id, body.clone(), Some("retry-me-1"))
        .await
        .expect(200);
    assert_eq!(first.header("idempotent-replayed"), None);
    let secret = secret_of(&first);
    for _ in 0..2 {
        let again = rotate(&api, owner, &id, body.clone(), Some("retry-me-1"))
            .await
            .expect(200);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(secret_of(&again), secret);
        assert_eq!(again.body["key"]["generation"], 1);
    }
    assert_eq!(api.get_key(owner, &id).await["generation"], 1);
    assert_eq!(api.verify_code(&secret).await, "valid");
    assert_eq!(
        api.verify_code(&original).await,
        "valid",
        "still in its grace period"
    );

    // The same idempotency key for a different request is refused and changes nothing.
    let reused = rotate(
        &api,
        owner,
        &id,
        json!({"grace_period_seconds": 120}),
        Some("retry-me-1"),
    )
    .await;
    reused.expect_error(422, "idempotency_key_reused");
    assert_eq!(api.get_key(owner, &id).await["generation"], 1);

    // Another idempotency key is another rotation; so is the same key from another principal.
    let next = rotate(&api, owner, &id, body.clone(), Some("retry-me-2"))
        .await
        .expect(200);
    assert_eq!(next.body["key"]["generation"], 2);
    assert_ne!(secret_of(&next), secret);
    let admin = api.create_token(owner, "admin", None).await;
    let theirs = rotate(&api, &admin.secret, &id, body.clone(), Some("retry-me-1"))
        .await
        .expect(200);
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_eq!(theirs.body["key"]["generation"], 3);

    let events = api.audit_events(owner).await;
    let rotations = events
        .iter()
        .filter(|e| e["action"] == "key.rotate" && e["target"] == id.as_str())
        .count();
    assert_eq!(rotations, 3);
}

/// Retries that race each other (a client that times out and retries at once) still rotate
/// the key once and all get the same secret.
async fn concurrent_retries_rotate_once(db: Db) {
    let (server, _clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.clone();
    // A few rounds: one lucky interleaving must not hide the race.
    for round in 0..4 {
        retry_race(&api, &owner, round).await;
    }
    let events = api.audit_events(&owner).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "key.rotate")
            .count(),
        4
    );
}

async fn retry_race(api: &Api, owner: &str, round: u32) {
    let (id, _) = new_key(api, owner, json!({})).await;
    let idem = format!("race-{round}");
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (api, owner, id, idem) = (api.clone(), owner.to_owned(), id.clone(), idem.clone());
        retries.spawn(async move {
            rotate(
                &api,
                &owner,
                &id,
                json!({"grace_period_seconds": 60}),
                Some(&idem),
            )
            .await
        });
    }
    let replies: Vec<Reply> = retries.join_all().await;
    let secrets: std::collections::BTreeSet<String> = replies
        .iter()
        .map(|r| secret_of(&r.clone().expect(200)))
        .collect();
    assert_eq!(
        secrets.len(),
        1,
        "each retry got its own rotation: {secrets:?}"
    );
    let fresh = replies
        .iter()
        .filter(|r| r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1);
    assert_eq!(api.get_key(owner, &id).await["generation"], 1);
}

async fn revocation_is_immediate_and_final(db: Db) {
    let (server, clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let (id, secret) = new_key(&api, owner, json!({})).await;
    assert_eq!(api.verify_code(&secret).await, "valid");

    clock.advance(Duration::from_secs(5));
    let revoked = api
        .post(&format!("/admin/v1/keys/{id}/revoke"))
        .token(owner)
        .json(&json!({"reason": "leaked in CI logs"}))
        .send()
        .await
        .expect(200);
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(revoked.body["revoked_at"], at(5));
    assert_eq!(revoked.body["revoked_reason"], "leaked in CI logs");
    let verdict = api.verify(&secret, None, None).await;
    assert_eq!(
        (verdict["valid"].clone(), verdict["code"].clone()),
        (json!(false), json!("key_revoked"))
    );

    let path = format!("/admin/v1/keys/{id}");
    let again = [
        api.post(&format!("{path}/revoke"))
            .json(&json!({"reason": "again"})),
        api.post(&format!("{path}/rotate")).json(&json!({})),
        api.patch(&path).json(&json!({"name": "revived"})),
    ];
    for call in again {
        call.token(owner)
            .send()
            .await
            .expect_error(409, "key_not_mutable");
    }
    let after = api.get_key(owner, &id).await;
    assert_eq!(after["revoked_reason"], "leaked in CI logs");
    assert_eq!(
        (after["generation"].clone(), after["name"].clone()),
        (json!(0), json!("k"))
    );
    assert_eq!(api.verify_code(&secret).await, "key_revoked");

    let events = api.audit_events(owner).await;
    let revokes: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "key.revoke")
        .collect();
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0]["details"]["reason"], "leaked in CI logs");

    // A revoked key can still be deleted.
    api.delete(&path).token(owner).send().await.expect(204);
    assert_eq!(api.verify_code(&secret).await, "key_invalid");
}

/// The replaced secret used late in its grace period (a consumer that was not updated) is an
/// anomaly, listed once per cooldown; early in the grace period it is expected and quiet.
async fn an_old_secret_used_late_in_its_grace_is_an_anomaly(db: Db) {
    let (server, clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let (id, old) = new_key(&api, owner, json!({})).await;
    rotate(
        &api,
        owner,
        &id,
        json!({"grace_period_seconds": 3600}),
        None,
    )
    .await
    .expect(200);
    let anomalies = || async {
        api.get("/admin/v1/anomalies")
            .token(owner)
            .send()
            .await
            .expect(200)
            .body["data"]
            .as_array()
            .unwrap()
            .clone()
    };
    clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(api.verify_code(&old).await, "valid");
    clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(api.verify_code(&old).await, "valid");
    assert_eq!(api.verify_code(&old).await, "valid");
    let mut found = Vec::new();
    for _ in 0..100 {
        found = anomalies().await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["detector"], "old_secret_late");
    assert_eq!(found[0]["key_id"], id.as_str());
    assert_eq!(found[0]["evidence"]["seconds_left"], 600);
    assert_eq!(found[0]["evidence"]["generation"], 0);
}

async fn suspension_is_immediate_and_reversible(db: Db) {
    let (server, clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let (id, secret) = new_key(&api, owner, json!({})).await;
    assert_eq!(api.verify_code(&secret).await, "valid");
    let path = format!("/admin/v1/keys/{id}");

    clock.advance(Duration::from_secs(5));
    let suspended = api
        .post(&format!("{path}/suspend"))
        .token(owner)
        .json(&json!({"reason": "spend spike"}))
        .send()
        .await
        .expect(200);
    assert_eq!(suspended.body["status"], "suspended");
    assert_eq!(suspended.body["suspended_at"], at(5));
    assert_eq!(suspended.body["suspended_reason"], "spend spike");
    assert_eq!(api.verify_code(&secret).await, "key_suspended");
    let listed = api
        .get("/admin/v1/keys?status=suspended")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(listed.body["data"][0]["id"], id.as_str());
    api.post(&format!("{path}/suspend"))
        .token(owner)
        .json(&json!({"reason": "again"}))
        .send()
        .await
        .expect_error(409, "key_already_suspended");
    // A suspended key can be rotated (a leak's usual fix), and its new secret is refused too.
    let rotated = secret_of(&rotate(&api, owner, &id, json!({}), None).await.expect(200));
    assert_eq!(api.verify_code(&rotated).await, "key_suspended");

    clock.advance(Duration::from_secs(5));
    let resumed = api
        .post(&format!("{path}/resume"))
        .token(owner)
        .json(&json!({"reason": "rotated after the spike"}))
        .send()
        .await
        .expect(200);
    assert_eq!(resumed.body["status"], "active");
    assert_eq!(resumed.body["suspended_at"], Value::Null);
    assert_eq!(api.verify_code(&rotated).await, "valid");
    api.post(&format!("{path}/resume"))
        .token(owner)
        .json(&json!({"reason": "again"}))
        .send()
        .await
        .expect_error(409, "key_not_suspended");
    api.post(&format!("{path}/suspend"))
        .token(owner)
        .json(&json!({"reason": ""}))
        .send()
        .await
        .expect_error(400, "validation_failed");

    let events = api.audit_events(owner).await;
    let changes: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["action"] == "key.suspend" || e["action"] == "key.resume")
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["details"]["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("key.suspend", "spend spike"),
            ("key.resume", "rotated after the spike")
        ]
    );

    // Revoked, a key is neither suspended nor resumed again.
    api.post(&format!("{path}/revoke"))
        .token(owner)
        .json(&json!({"reason": "done"}))
        .send()
        .await
        .expect(200);
    api.post(&format!("{path}/suspend"))
        .token(owner)
        .json(&json!({"reason": "late"}))
        .send()
        .await
        .expect_error(409, "key_not_mutable");
}

async fn deletion_is_forever(db: Db) {
    let (server, clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let (id, secret) = new_key(
        &api,
        owner,
        json!({"scopes": ["chat:*"], "metadata": {"a": 1}}),
    )
    .await;
    let rotated_out = secret;
    let new_secret = secret_of(
        &rotate(
            &api,
            owner,
            &id,
            json!({"grace_period_seconds": 86_400}),
            None,
        )
        .await
        .expect(200),
    );
    assert_eq!(api.verify_code(&rotated_out).await, "valid");
    assert_eq!(api.verify_code(&new_secret).await, "valid");

    let path = format!("/admin/v1/keys/{id}");
    let deleted = api.delete(&path).token(owner).send().await.expect(204);
    assert_eq!(deleted.text, "");
    for key in [&new_secret, &rotated_out] {
        let verdict = api.verify(key, None, None).await;
        assert_eq!(verdict["code"], "key_invalid", "{verdict}");
        assert_eq!(
            verdict["key_id"],
            Value::Null,
            "a deleted key reveals nothing"
        );
    }
    api.get(&path)
        .token(owner)
        .send()
        .await
        .expect_error(404, "not_found");
    api.delete(&path)
        .token(owner)
        .send()
        .await
        .expect_error(404, "not_found");
    api.post(&format!("{path}/rotate"))
        .token(owner)
        .json(&json!({}))
        .send()
        .await
        .expect_error(404, "not_found");

    clock.advance(Duration::from_secs(400 * 86_400));
    assert_eq!(api.verify_code(&new_secret).await, "key_invalid");
    let tombstones = api
        .get("/admin/v1/keys?status=deleted")
        .token(owner)
        .send()
        .await
        .expect(200);
    let tomb = &tombstones.body["data"][0];
    assert_eq!(tomb["id"], id.as_str());
    assert_eq!(
        (tomb["status"].clone(), tomb["name"].clone()),
        (json!("deleted"), json!(""))
    );
    assert_eq!(
        (tomb["scopes"].clone(), tomb["metadata"].clone()),
        (json!([]), json!({}))
    );
    let live = api
        .get("/admin/v1/keys")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(live.body["data"], json!([]));
}

async fn expiry_follows_the_clock(db: Db) {
    let (server, clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let (id, secret) = new_key(&api, owner, json!({"expires_at": at(3600)})).await;
    assert_eq!(api.verify_code(&secret).await, "valid");
    clock.advance(Duration::from_millis(3_599_999));
    assert_eq!(api.verify_code(&secret).await, "valid");
    clock.advance(Duration::from_millis(1));
    let verdict = api.verify(&secret, None, None).await;
    assert_eq!(
        (verdict["code"].clone(), verdict["key_id"].clone()),
        (json!("key_expired"), json!(id))
    );
    assert_eq!(api.get_key(owner, &id).await["status"], "expired");
    let expired = api
        .get("/admin/v1/keys?status=expired")
        .token(owner)
        .send()
        .await;
    assert_eq!(expired.body["data"][0]["id"], id.as_str());
    // A key cannot be made to expire in the past.
    let (other, _) = new_key(&api, owner, json!({})).await;
    api.patch(&format!("/admin/v1/keys/{other}"))
        .token(owner)
        .json(&json!({"expires_at": at(60)}))
        .send()
        .await
        .expect_error(400, "validation_failed");
}

async fn rotation_policy_lists_due_keys(db: Db) {
    let (server, clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let (hourly, _) = new_key(&api, owner, json!({"rotate_every_seconds": 3600})).await;
    let (two_hourly, _) = new_key(&api, owner, json!({"rotate_every_seconds": 7200})).await;
    new_key(&api, owner, json!({})).await;
    let due = |within: u64| {
        let api = api.clone();
        async move {
            let reply = api
                .get(&format!("/admin/v1/keys/due?within_seconds={within}"))
                .token(owner)
                .send()
                .await
                .expect(200);
            let mut ids: Vec<String> = reply.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let both = {
        let mut v = vec![hourly.clone(), two_hourly.clone()];
        v.sort();
        v
    };
    assert_eq!(due(0).await, Vec::<String>::new());
    assert_eq!(due(3599).await, Vec::<String>::new());
    assert_eq!(due(3600).await, vec![hourly.clone()]);
    assert_eq!(due(7200).await, both);

    clock.advance(Duration::from_secs(3600));
    assert_eq!(due(0).await, vec![hourly.clone()]);
    assert_eq!(
        api.get_key(owner, &hourly).await["rotation_due_at"],
        at(3600)
    );
    rotate(&api, owner, &hourly, json!({}), None)
        .await
        .expect(200);
    assert_eq!(due(0).await, Vec::<String>::new());
    assert_eq!(
        api.get_key(owner, &hourly).await["rotation_due_at"],
        at(7200)
    );

    clock.advance(Duration::from_secs(3600));
    assert_eq!(due(0).await, both);
    api.post(&format!("/admin/v1/keys/{two_hourly}/revoke"))
        .token(owner)
        .json(&json!({"reason": "retired"}))
        .send()
        .await
        .expect(200);
    assert_eq!(due(0).await, vec![hourly.clone()]);
    api.patch(&format!("/admin/v1/keys/{hourly}"))
        .token(owner)
        .json(&json!({"rotate_every_seconds": null}))
        .send()
        .await
        .expect(200);
    assert_eq!(due(86_400).await, Vec::<String>::new());
}

keygate_testkit::on_both_databases!(
    rotation_keeps_the_old_secret_for_the_grace_period,
    idempotent_rotation_rotates_once,
    concurrent_retries_rotate_once,
    revocation_is_immediate_and_final,
    suspension_is_immediate_and_reversible,
    an_old_secret_used_late_in_its_grace_is_an_anomaly,
    deletion_is_forever,
    expiry_follows_the_clock,
    rotation_policy_lists_due_keys,
);
