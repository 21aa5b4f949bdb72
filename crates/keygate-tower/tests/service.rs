//! The example service behind keygate-tower, against a real keygate: keys through the verify
//! API (answers cached, a revocation seen once the cached answer lapses), tokens offline for
//! the service's audience, and refusals with keygate's codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "../examples/reports.rs"]
mod reports;

use std::time::Duration;

use keygate_testkit::{Db, TestServer};
use keygate_tower::Keygate;
use serde_json::{Value, json};

const AUDIENCE: &str = "https://reports.internal";

async fn serve(keygate: Keygate) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, reports::app(keygate)).await.unwrap();
    });
    url
}

async fn get(url: &str, credential: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{url}/reports"));
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// A token for `key` (id and secret) with `fields` added.
async fn token(keygate: &TestServer, id: &str, key: &str, fields: &[(&str, &str)]) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(fields);
    let reply = keygate
        .api()
        .post("/oauth/token")
        .basic(id, key)
        .form(&form)
        .send()
        .await
        .expect(200);
    reply.body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_service_accepts_keys_and_tokens() {
    let keygate = TestServer::start(Db::Sqlite).await.unwrap();
    let api = keygate.api();
    let owner = &keygate.owner_token;
    let reader = api
        .create_key(
            owner,
            json!({"project": "default", "name": "reader", "scopes": ["reports:read"]}),
        )
        .await;
    let other = api
        .create_key(
            owner,
            json!({"project": "default", "name": "other", "scopes": ["docs:read"]}),
        )
        .await;
    let client = Keygate::builder(&keygate.base_url)
        .audience(AUDIENCE)
        .cache_accepted_for(Duration::from_secs(2))
        .cache_refused_for(Duration::from_secs(2))
        .build()
        .unwrap();
    let url = serve(client).await;

    let (status, body) = get(&url, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, body) = get(&url, Some(&reader.secret)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["caller"],
        json!({"key_id": reader.id, "credential": "key"})
    );
    let (status, body) = get(&url, Some(&other.secret)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("scope_denied"))
    );
    let (status, body) = get(&url, Some("kg_live_notakeyatall")).await;
    assert_eq!(status, 401, "{body}");

    // A token for this service, checked offline; one for keygate itself is not this
    // service's; a changed one does not verify.
    let ours = token(
        &keygate,
        &reader.id,
        &reader.secret,
        &[("audience", AUDIENCE)],
    )
    .await;
    let (status, body) = get(&url, Some(&ours)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["caller"],
        json!({"key_id": reader.id, "credential": "token"})
    );
    let keygates = token(&keygate, &reader.id, &reader.secret, &[]).await;
    let (status, body) = get(&url, Some(&keygates)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("token_wrong_audience"))
    );
    let mut forged = ours.clone();
    forged.truncate(forged.len() - 3);
    forged.push_str("AAA");
    let (status, body) = get(&url, Some(&forged)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("token_invalid"))
    );
    // A narrowed token holds only its scopes.
    let narrow = token(
        &keygate,
        &other.id,
        &other.secret,
        &[("audience", AUDIENCE), ("scope", "docs:read")],
    )
    .await;
    let (status, _) = get(&url, Some(&narrow)).await;
    assert_eq!(status, 403);

    // The accepted key's answer is cached: a revocation shows once it lapses. A fresh answer
    // first, so that the revocation lands well within its two seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get(&url, Some(&reader.secret)).await.0, 200);
    api.post(&format!("/admin/v1/keys/{}/revoke", reader.id))
        .token(owner)
        .json(&json!({"reason": "rotating the service's keys"}))
        .send()
        .await
        .expect(200);
    let (cached, _) = get(&url, Some(&reader.secret)).await;
    assert_eq!(cached, 200, "the answer cached a moment ago");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = get(&url, Some(&reader.secret)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("key_revoked"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_keygate_refuses_rather_than_lets_through() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let url = serve(
        Keygate::builder(nowhere)
            .audience(AUDIENCE)
            .build()
            .unwrap(),
    )
    .await;
    let (status, body) = get(&url, Some("kg_live_whatever")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    let jwt_shaped = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln";
    let (status, _) = get(&url, Some(jwt_shaped)).await;
    assert_eq!(status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_need_an_audience_and_may_be_checked_online() {
    let keygate = TestServer::start(Db::Sqlite).await.unwrap();
    let api = keygate.api();
    let reader = api
        .create_key(
            &keygate.owner_token,
            json!({"project": "default", "name": "reader", "scopes": ["reports:read"]}),
        )
        .await;
    let ours = token(
        &keygate,
        &reader.id,
        &reader.secret,
        &[("audience", AUDIENCE)],
    )
    .await;

    // A service that names no audience takes no token: it would take anyone's.
    let blind = serve(Keygate::builder(&keygate.base_url).build().unwrap()).await;
    let (status, body) = get(&blind, Some(&ours)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("token_wrong_audience"))
    );
    assert_eq!(get(&blind, Some(&reader.secret)).await.0, 200);

    // Online: keygate checks the audience and the key behind the token on each cache miss.
    let online = serve(
        Keygate::builder(&keygate.base_url)
            .audience(AUDIENCE)
            .tokens_online()
            .cache_accepted_for(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .await;
    let (status, body) = get(&online, Some(&ours)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["caller"]["credential"], "token");
    api.post(&format!("/admin/v1/keys/{}/suspend", reader.id))
        .token(&keygate.owner_token)
        .json(&json!({"reason": "looking into it"}))
        .send()
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = get(&online, Some(&ours)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("key_suspended"))
    );
}
