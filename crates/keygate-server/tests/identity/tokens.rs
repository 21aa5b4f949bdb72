//! The token endpoint and tokens in use: round trips, narrowing, audiences, tampering, expiry,
//! the parent's state, and RFC 6749's error shapes.

use std::time::Duration;

use keygate_core::Timestamp;
use keygate_testkit::{Db, TestServer};
use serde_json::json;

use super::{ACCESS_TOKEN, access_token, claims, client_credentials, exchange, header};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

async fn key(server: &TestServer, scopes: serde_json::Value) -> keygate_testkit::CreatedKey {
    server
        .api()
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "ci", "scopes": scopes}),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_gets_a_token_that_stands_for_it_with_its_own_scopes() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let parent = key(
        &server,
        json!(["models:*", "docs:read", "GET /proxy/pay/*"]),
    )
    .await;

    let reply = client_credentials(
        &api,
        &parent.id,
        &parent.secret,
        &[("scope", "docs:read GET /proxy/pay/*")],
    )
    .await
    .expect(200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    assert_eq!(reply.body["scope"], "docs:read GET /proxy/pay/*");
    let token = access_token(&reply);
    assert!(!reply.text.contains(&parent.secret));
    let head = header(&token);
    assert_eq!(head["alg"], "EdDSA");
    assert_eq!(head["typ"], "at+jwt");
    let body = claims(&token);
    assert_eq!(body["sub"], parent.id.as_str());
    assert_eq!(body["iss"], server.base_url.as_str());
    assert_eq!(body["aud"], server.base_url.as_str());
    assert_eq!(
        body["exp"].as_i64().unwrap() - body["iat"].as_i64().unwrap(),
        900
    );
    assert!(body["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // The verify API takes the token as it takes a key: the parent's id, the token's scopes.
    let verdict = api.verify(&token, Some("docs:read"), None).await;
    assert_eq!(verdict["code"], "valid", "{verdict}");
    assert_eq!(verdict["key_id"], parent.id.as_str());
    assert_eq!(verdict["scopes"], json!(["docs:read", "GET /proxy/pay/*"]));
    assert_eq!(verdict["token"]["id"], body["jti"]);
    // The parent holds `models:*`; the token does not.
    let verdict = api.verify(&token, Some("models:gpt-4o"), None).await;
    assert_eq!(verdict["code"], "permission_denied");

    // The key as a bearer credential works too, and without `scope` the token holds all.
    let reply = api
        .post("/oauth/token")
        .token(&parent.secret)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect(200);
    assert_eq!(reply.body["scope"], "models:* docs:read GET /proxy/pay/*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_only_narrow() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let parent = key(&server, json!(["models:gpt-*", "docs:read"])).await;

    // Wider than the key: refused whatever the grant.
    for wider in ["models:*", "docs:*", "secrets:read", "*"] {
        client_credentials(&api, &parent.id, &parent.secret, &[("scope", wider)])
            .await
            .expect_error_oauth(400, "invalid_scope");
        exchange(&api, &parent.secret, &[("scope", wider)])
            .await
            .expect_error_oauth(400, "invalid_scope");
    }
    // A key exchanged for a narrower token, and that token for a narrower one still.
    let first = access_token(
        &exchange(
            &api,
            &parent.secret,
            &[("scope", "models:gpt-4o* docs:read")],
        )
        .await
        .expect(200),
    );
    let reply = exchange(&api, &first, &[("scope", "models:gpt-4o-mini")])
        .await
        .expect(200);
    assert_eq!(reply.body["issued_token_type"], ACCESS_TOKEN);
    let second = access_token(&reply);
    assert_eq!(claims(&second)["scope"], "models:gpt-4o-mini");
    // The narrower token cannot win back what its own subject gave up.
    exchange(&api, &first, &[("scope", "models:gpt-*")])
        .await
        .expect_error_oauth(400, "invalid_scope");
    exchange(&api, &second, &[("scope", "docs:read")])
        .await
        .expect_error_oauth(400, "invalid_scope");
    // An exchanged token never outlives its subject.
    assert!(claims(&second)["exp"].as_i64() <= claims(&first)["exp"].as_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_tampering_and_expiry_are_refused() {
    let (server, clock) = TestServer::start_frozen(Db::Sqlite, T0).await.unwrap();
    let api = server.api();
    let parent = key(&server, json!(["docs:read"])).await;

    // A token for another service is not keygate's to accept, but that service can check it.
    let theirs = access_token(
        &client_credentials(
            &api,
            &parent.id,
            &parent.secret,
            &[("audience", "https://docs.internal")],
        )
        .await
        .expect(200),
    );
    assert_eq!(claims(&theirs)["aud"], "https://docs.internal");
    assert_eq!(api.verify_code(&theirs).await, "token_wrong_audience");
    let verdict = api
        .post("/v1/keys/verify")
        .json(&json!({"key": theirs, "audience": "https://docs.internal"}))
        .send()
        .await
        .expect(200);
    assert_eq!(verdict.body["code"], "valid");
    // Nor can it be exchanged at keygate.
    exchange(&api, &theirs, &[])
        .await
        .expect_error_oauth(400, "invalid_request");

    let token = access_token(
        &client_credentials(&api, &parent.id, &parent.secret, &[])
            .await
            .expect(200),
    );
    assert_eq!(api.verify_code(&token).await, "valid");
    // A changed claim under the original signature, and a signature cut short.
    let parts: Vec<&str> = token.split('.').collect();
    let mut body = claims(&token);
    body["scope"] = json!("*");
    use base64::Engine as _;
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string()),
        parts[2]
    );
    assert_eq!(api.verify_code(&forged).await, "token_invalid");
    let cut = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        &parts[2][..parts[2].len() - 4]
    );
    assert_eq!(api.verify_code(&cut).await, "token_invalid");
    // `alg: none` with the same claims.
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    assert_eq!(api.verify_code(&none).await, "token_invalid");

    clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(api.verify_code(&token).await, "token_expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parents_state_stops_its_tokens_at_once() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let parent = key(&server, json!(["docs:read"])).await;
    let token = access_token(
        &client_credentials(&api, &parent.id, &parent.secret, &[])
            .await
            .expect(200),
    );
    assert_eq!(api.verify_code(&token).await, "valid");

    api.post(&format!("/admin/v1/keys/{}/suspend", parent.id))
        .token(owner)
        .json(&json!({"reason": "looking into it"}))
        .send()
        .await
        .expect(200);
    assert_eq!(api.verify_code(&token).await, "key_suspended");
    api.post(&format!("/admin/v1/keys/{}/resume", parent.id))
        .token(owner)
        .json(&json!({"reason": "false alarm"}))
        .send()
        .await
        .expect(200);
    assert_eq!(api.verify_code(&token).await, "valid");
    api.post(&format!("/admin/v1/keys/{}/revoke", parent.id))
        .token(owner)
        .json(&json!({"reason": "leaked"}))
        .send()
        .await
        .expect(200);
    assert_eq!(api.verify_code(&token).await, "key_revoked");
    // Nor does a revoked key get new tokens, or its tokens narrower ones.
    client_credentials(&api, &parent.id, &parent.secret, &[])
        .await
        .expect_error_oauth(401, "invalid_client");
    exchange(&api, &token, &[])
        .await
        .expect_error_oauth(400, "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_take_rfc_6749_shapes() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let parent = key(&server, json!(["docs:read"])).await;
    let other = key(&server, json!(["docs:read"])).await;

    let reply = client_credentials(&api, &parent.id, "kg_live_notakey", &[])
        .await
        .expect_error_oauth(401, "invalid_client");
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic"))
    );
    // Another key's id with this key.
    client_credentials(&api, &other.id, &parent.secret, &[])
        .await
        .expect_error_oauth(401, "invalid_client");
    api.post("/oauth/token")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect_error_oauth(401, "invalid_client");
    api.post("/oauth/token")
        .form(&[
            ("grant_type", "password"),
            ("username", "u"),
            ("password", "p"),
        ])
        .send()
        .await
        .expect_error_oauth(400, "unsupported_grant_type");
    api.post("/oauth/token")
        .form(&[("scope", "docs:read")])
        .send()
        .await
        .expect_error_oauth(400, "invalid_request");
    client_credentials(
        &api,
        &parent.id,
        &parent.secret,
        &[("scope", "docs:read"), ("scope", "x")],
    )
    .await
    .expect_error_oauth(400, "invalid_request");
    exchange(
        &api,
        &parent.secret,
        &[(
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:refresh_token",
        )],
    )
    .await
    .expect_error_oauth(400, "invalid_request");
    api.post("/oauth/token")
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect_error_oauth(400, "invalid_request");
    // The key in the form (client_secret_post) works as well as in a header.
    api.post("/oauth/token")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &parent.id),
            ("client_secret", &parent.secret),
        ])
        .send()
        .await
        .expect(200);
    for exchange in api.transcript() {
        assert!(!exchange.body.contains(&parent.secret), "{}", exchange.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_jwks_describe_the_issuer() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let config = api
        .get("/.well-known/openid-configuration")
        .send()
        .await
        .expect(200);
    assert_eq!(config.body["issuer"], server.base_url.as_str());
    assert_eq!(
        config.body["jwks_uri"],
        format!("{}/.well-known/jwks.json", server.base_url)
    );
    assert_eq!(
        config.body["token_endpoint"],
        format!("{}/oauth/token", server.base_url)
    );
    let jwks = api.get("/.well-known/jwks.json").send().await.expect(200);
    assert_eq!(
        jwks.header("content-type"),
        Some("application/jwk-set+json")
    );
    let keys = jwks.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert!(
        keys[0].get("d").is_none(),
        "the private half is never published"
    );
}
