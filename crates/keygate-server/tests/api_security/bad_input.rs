//! Bad input: malformed and unknown keys, bodies that are too large, not JSON or not valid,
//! bad query parameters, and a second bootstrap. Every refusal has its stable code, and none
//! of them changes what is stored. (Failed admin authentication: `broken_authentication.rs`.)

use std::time::Duration;

use keygate_core::{ApiKey, KeyEnv, KeyId, ManualClock, Timestamp};
use keygate_server::service::{bootstrap, ensure_owner};
use keygate_server::{ServiceError, http::ApiError};
use keygate_store::Conflict;
use keygate_testkit::{Api, Call, Db, TestServer};
use serde_json::{Value, json};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

async fn start() -> (TestServer, ManualClock) {
    TestServer::start_frozen(Db::Sqlite, T0).await.unwrap()
}

/// Changes the character at `pos` to another letter or digit: a typo.
fn flip(key: &str, pos: usize) -> String {
    let mut bytes = key.as_bytes().to_vec();
    bytes[pos] = if bytes[pos] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

/// A request with a raw body and the given content type, if any.
fn raw<'a>(call: Call<'a>, mime: Option<&str>, body: &str) -> Call<'a> {
    let call = call.body(body.to_owned());
    match mime {
        Some(mime) => call.header("content-type", mime),
        None => call,
    }
}

/// What a refused request must leave untouched.
#[derive(Debug, PartialEq)]
struct Snapshot {
    key: Value,
    keys: Value,
    projects: Value,
    audit_head: (i64, String),
}

async fn snapshot(server: &TestServer, api: &Api, id: &str) -> Snapshot {
    let owner = server.owner_token.as_str();
    let head = server.store.store.audit_head().await.unwrap();
    Snapshot {
        key: api.get_key(owner, id).await,
        keys: api.get("/admin/v1/keys").token(owner).send().await.body,
        projects: api.get("/admin/v1/projects").token(owner).send().await.body,
        audit_head: (head.seq, head.hash),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_keys_do_not_verify() {
    let (server, _clock) = start().await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let key = api
        .create_key(owner, json!({"project": "default", "name": "real"}))
        .await;
    let before = snapshot(&server, &api, &key.id).await;
    let real = key.secret.as_str();

    let swapped_env = real.replacen("kg_live_", "kg_test_", 1);
    let long = "k".repeat(10_000);
    let mut malformed: Vec<String> = [8, 9, 30, 50, 51, 56]
        .into_iter()
        .map(|pos| flip(real, pos))
        .collect();
    malformed.extend([
        String::new(),
        "kg_live_".to_owned(),
        real[..56].to_owned(),
        format!("{real}x"),
        format!(" {real}"),
        real.to_uppercase(),
        swapped_env,
        real.replacen("kg_live_", "kg_prod_", 1),
        "sk-proj-abcdef".to_owned(),
        long,
    ]);
    for text in &malformed {
        let verdict = api.verify(text, None, None).await;
        assert_eq!(
            (
                verdict["valid"].clone(),
                verdict["code"].clone(),
                verdict["key_id"].clone()
            ),
            (json!(false), json!("key_malformed"), Value::Null),
            "{text}"
        );
    }
    for unknown in [
        ApiKey::generate(KeyEnv::Live).unwrap(),
        ApiKey::generate(KeyEnv::Test).unwrap(),
    ] {
        let verdict = api.verify(unknown.expose(), None, None).await;
        assert_eq!(
            (verdict["code"].clone(), verdict["key_id"].clone()),
            (json!("key_invalid"), Value::Null)
        );
    }
    // An admin token is not an API key.
    assert_eq!(api.verify_code(owner).await, "key_invalid");

    for body in [
        json!({}),
        json!({"key": 5}),
        json!({"key": real, "extra": 1}),
    ] {
        api.post("/v1/keys/verify")
            .json(&body)
            .send()
            .await
            .expect_error(400, "validation_failed");
    }
    assert_eq!(api.verify_code(real).await, "valid");
    assert_eq!(snapshot(&server, &api, &key.id).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_change_nothing() {
    let (server, _clock) = start().await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let key = api
        .create_key(
            owner,
            json!({"project": "default", "name": "stable", "scopes": ["a"]}),
        )
        .await;
    let before = snapshot(&server, &api, &key.id).await;
    let path = format!("/admin/v1/keys/{}", key.id);
    let rotate = format!("{path}/rotate");
    let revoke = format!("{path}/revoke");
    let huge = json!({"name": "x", "metadata": {"blob": "x".repeat(70 * 1024)}});
    let json_patch = |body: Value| api.patch(&path).json(&body);
    let past = T0.saturating_add(Duration::from_secs(0)).to_rfc3339();
    let deep = json!({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{}}}}}}}}});
    let many: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();

    // (request, status, code, a word the message must contain)
    let cases: Vec<(Call<'_>, u16, &str, &str)> = vec![
        (
            api.post("/admin/v1/keys").json(&huge),
            413,
            "payload_too_large",
            "",
        ),
        (api.patch(&path).json(&huge), 413, "payload_too_large", ""),
        (api.post(&rotate).json(&huge), 413, "payload_too_large", ""),
        (
            api.post("/v1/keys/verify").json(&huge),
            413,
            "payload_too_large",
            "",
        ),
        (
            raw(api.patch(&path), Some("application/json"), r#"{"name":"#),
            400,
            "invalid_json",
            "",
        ),
        (
            raw(
                api.post("/admin/v1/keys"),
                Some("application/json"),
                "not json",
            ),
            400,
            "invalid_json",
            "",
        ),
        (
            raw(api.post(&rotate), Some("application/json"), "{,}"),
            400,
            "invalid_json",
            "",
        ),
        (
            json_patch(json!({"name": "x", "colour": key.secret})),
            400,
            "validation_failed",
            "colour",
        ),
        (
            api.post("/admin/v1/keys")
                .json(&json!({"project": "default", "name": "n", "scope": ["a"]})),
            400,
            "validation_failed",
            "scope",
        ),
        (
            api.post(&revoke)
                .json(&json!({"reason": "r", "force": true})),
            400,
            "validation_failed",
            "force",
        ),
        (
            raw(api.patch(&path), None, r#"{"name":"x"}"#),
            415,
            "unsupported_media_type",
            "",
        ),
        (
            raw(api.patch(&path), Some("text/plain"), r#"{"name":"x"}"#),
            415,
            "unsupported_media_type",
            "",
        ),
        (
            raw(api.post(&revoke), None, r#"{"reason":"x"}"#),
            415,
            "unsupported_media_type",
            "",
        ),
        (
            raw(api.post(&rotate), Some("text/plain"), "{}"),
            415,
            "unsupported_media_type",
            "",
        ),
        (
            raw(api.post("/v1/keys/verify"), None, r#"{"key":"x"}"#),
            415,
            "unsupported_media_type",
            "",
        ),
        (json_patch(json!({})), 400, "validation_failed", "body"),
        (
            json_patch(json!({"name": ""})),
            400,
            "validation_failed",
            "name",
        ),
        (
            json_patch(json!({"name": "a\nb"})),
            400,
            "validation_failed",
            "name",
        ),
        (
            json_patch(json!({"name": "x".repeat(129)})),
            400,
            "validation_failed",
            "name",
        ),
        (json_patch(json!({"name": 5})), 400, "validation_failed", ""),
        (
            json_patch(json!({"scopes": [""]})),
            400,
            "validation_failed",
            "scopes",
        ),
        (
            json_patch(json!({"scopes": many})),
            400,
            "validation_failed",
            "scopes",
        ),
        (
            json_patch(json!({"expires_at": "yesterday"})),
            400,
            "validation_failed",
            "expires_at",
        ),
        (
            json_patch(json!({"expires_at": past})),
            400,
            "validation_failed",
            "expires_at",
        ),
        (
            json_patch(json!({"metadata": [1]})),
            400,
            "validation_failed",
            "metadata",
        ),
        (
            json_patch(json!({"metadata": deep})),
            400,
            "validation_failed",
            "metadata",
        ),
        (
            json_patch(json!({"ip_allow": ["10.0.0.0/33"]})),
            400,
            "validation_failed",
            "ip_allow",
        ),
        (
            json_patch(json!({"rotate_every_seconds": 59})),
            400,
            "validation_failed",
            "rotate_every_seconds",
        ),
        (
            json_patch(json!({"rotate_every_seconds": -1})),
            400,
            "validation_failed",
            "",
        ),
        (
            api.post(&rotate)
                .json(&json!({"grace_period_seconds": 30 * 86_400 + 1})),
            400,
            "validation_failed",
            "grace_period_seconds",
        ),
        (
            api.post(&rotate)
                .json(&json!({}))
                .header("idempotency-key", &"x".repeat(256)),
            400,
            "validation_failed",
            "Idempotency-Key",
        ),
        (
            api.post(&rotate)
                .json(&json!({}))
                .header("idempotency-key", "two words"),
            400,
            "validation_failed",
            "Idempotency-Key",
        ),
        (
            api.post(&rotate)
                .json(&json!({}))
                .header("idempotency-key", "clé"),
            400,
            "validation_failed",
            "Idempotency-Key",
        ),
        (
            api.post(&revoke).json(&json!({})),
            400,
            "validation_failed",
            "reason",
        ),
        (
            api.post(&revoke).json(&json!({"reason": " "})),
            400,
            "validation_failed",
            "reason",
        ),
        (
            api.post(&revoke).json(&json!({"reason": "r".repeat(501)})),
            400,
            "validation_failed",
            "reason",
        ),
        (
            api.post("/admin/v1/keys")
                .json(&json!({"project": "nope", "name": "n"})),
            404,
            "not_found",
            "project",
        ),
        (
            api.post("/admin/v1/keys")
                .json(&json!({"project": "default", "name": "n", "env": "prod"})),
            400,
            "validation_failed",
            "",
        ),
        (
            api.post("/admin/v1/keys")
                .json(&json!({"project": "default", "name": "n", "expires_at": past})),
            400,
            "validation_failed",
            "expires_at",
        ),
        (
            api.post("/admin/v1/projects")
                .json(&json!({"name": "default"})),
            409,
            "duplicate_name",
            "",
        ),
        (
            api.post("/admin/v1/projects")
                .json(&json!({"name": "proj_lookalike"})),
            400,
            "validation_failed",
            "name",
        ),
        (
            api.post("/admin/v1/tokens").json(&json!({"role": "root"})),
            400,
            "validation_failed",
            "",
        ),
        (api.get("/admin/v1/keys?cursor=!!!"), 400, "bad_cursor", ""),
        (
            api.get("/admin/v1/keys?cursor=cHJval94"),
            400,
            "bad_cursor",
            "",
        ),
        (
            api.get("/admin/v1/keys?limit=0"),
            400,
            "validation_failed",
            "limit",
        ),
        (
            api.get("/admin/v1/keys?limit=201"),
            400,
            "validation_failed",
            "limit",
        ),
        (
            api.get("/admin/v1/keys?limit=many"),
            400,
            "validation_failed",
            "",
        ),
        (
            api.get("/admin/v1/keys?status=gone"),
            400,
            "validation_failed",
            "",
        ),
        (
            api.get("/admin/v1/keys?colour=red"),
            400,
            "validation_failed",
            "colour",
        ),
        (
            api.get("/admin/v1/keys/due?within_seconds=-1"),
            400,
            "validation_failed",
            "",
        ),
        (api.get("/admin/v1/audit?cursor=0"), 400, "bad_cursor", ""),
        (api.get("/admin/v1/audit?cursor=-5"), 400, "bad_cursor", ""),
        (
            api.get("/admin/v1/audit?limit=0"),
            400,
            "validation_failed",
            "limit",
        ),
        (
            api.get("/admin/v1/audit?limit=501"),
            400,
            "validation_failed",
            "limit",
        ),
        (api.get("/admin/v1/keys/not-a-key-id"), 404, "not_found", ""),
        (
            api.get(&format!("/admin/v1/keys/{}", KeyId::generate())),
            404,
            "not_found",
            "",
        ),
        (
            api.post("/v1/keys/verify")
                .json(&json!({"key": key.secret, "ip": "nope"})),
            400,
            "validation_failed",
            "ip",
        ),
    ];
    for (i, (call, status, code, word)) in cases.into_iter().enumerate() {
        let reply = call.token(owner).send().await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "case {i}: {}",
            reply.text
        );
        assert!(reply.message().contains(word), "case {i}: {}", reply.text);
        assert!(
            !reply.text.contains(&key.secret[8..]),
            "case {i} echoes the key"
        );
    }
    assert_eq!(snapshot(&server, &api, &key.id).await, before);
    assert_eq!(
        api.verify(&key.secret, Some("a"), None).await["code"],
        "valid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_bootstrap_is_refused() {
    let (server, _clock) = start().await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let head = server.store.store.audit_head().await.unwrap();

    assert!(ensure_owner(&server.keygate).await.unwrap().is_none());
    let err = bootstrap(&server.keygate).await.unwrap_err();
    assert!(
        matches!(err, ServiceError::Conflict(Conflict::AlreadyBootstrapped)),
        "{err:?}"
    );
    let api_err = ApiError::from(err);
    assert_eq!(
        (api_err.status.as_u16(), api_err.code),
        (409, "already_bootstrapped")
    );

    assert_eq!(server.store.store.audit_head().await.unwrap(), head);
    let projects = api
        .get("/admin/v1/projects")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(projects.body["data"].as_array().unwrap().len(), 1);
    let rows = server.store.dump_rows().await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.starts_with("orgs: ")).count(), 1);
    assert_eq!(
        rows.iter()
            .filter(|r| r.starts_with("api_keys: ") && r.contains("'admin'"))
            .count(),
        1,
        "exactly one admin token: the first owner's"
    );
}
