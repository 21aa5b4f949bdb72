//! The signing keys turn over: the next key is published ahead of signing, tokens of both keys
//! are valid in the overlap, and the old key is withdrawn once its tokens have expired.

use std::time::Duration;

use keygate_core::Timestamp;
use keygate_testkit::{Db, TestServer};
use serde_json::json;

use super::{access_token, client_credentials, header};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn kids(jwks: &serde_json::Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn on_both(db: Db) {
    let (server, clock) = TestServer::start_frozen(db, T0).await.unwrap();
    let api = server.api();
    let parent = api
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "ci", "scopes": ["docs:read"]}),
        )
        .await;
    let token = || async {
        access_token(
            &client_credentials(&api, &parent.id, &parent.secret, &[])
                .await
                .expect(200),
        )
    };
    let jwks = || async {
        api.get("/.well-known/jwks.json")
            .send()
            .await
            .expect(200)
            .body
    };
    let first_kids = kids(&jwks().await);
    assert_eq!(first_kids.len(), 1);

    // Nothing turns while the key is young.
    clock.advance(Duration::from_secs(22 * 3600));
    server.keygate.turn_signing_keys().await.unwrap();
    assert_eq!(kids(&jwks().await), first_kids);

    // An hour before its day is up, the next key is published but does not sign yet.
    clock.advance(Duration::from_secs(3600));
    server.keygate.turn_signing_keys().await.unwrap();
    let both = kids(&jwks().await);
    assert_eq!(both.len(), 2);
    clock.advance(Duration::from_secs(58 * 60));
    let old = token().await;
    assert_eq!(header(&old)["kid"], first_kids[0].as_str());

    // From the day's end the new key signs; the old key's token is still good.
    clock.advance(Duration::from_secs(3 * 60));
    server.keygate.turn_signing_keys().await.unwrap();
    let new = token().await;
    let new_kid = header(&new)["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, first_kids[0]);
    assert!(both.contains(&new_kid));
    assert_eq!(api.verify_code(&old).await, "valid");
    assert_eq!(api.verify_code(&new).await, "valid");

    // Once every token of the old key has expired, it is withdrawn.
    clock.advance(Duration::from_secs(16 * 60));
    server.keygate.turn_signing_keys().await.unwrap();
    assert_eq!(kids(&jwks().await), [new_kid]);
    assert_eq!(api.verify_code(&new).await, "token_expired");
}

/// A signing key that may have leaked is withdrawn at once, with every token it signed.
async fn replaced(db: Db) {
    let (server, _clock) = TestServer::start_frozen(db, T0).await.unwrap();
    let api = server.api();
    let parent = api
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "ci", "scopes": ["docs:read"]}),
        )
        .await;
    let before = access_token(
        &client_credentials(&api, &parent.id, &parent.secret, &[])
            .await
            .expect(200),
    );
    assert_eq!(api.verify_code(&before).await, "valid");
    let old = kids(
        &api.get("/.well-known/jwks.json")
            .send()
            .await
            .expect(200)
            .body,
    );

    let kid = server.keygate.replace_signing_keys().await.unwrap();
    let now = kids(
        &api.get("/.well-known/jwks.json")
            .send()
            .await
            .expect(200)
            .body,
    );
    assert_eq!(now, std::slice::from_ref(&kid));
    assert!(!old.contains(&kid));
    assert_eq!(api.verify_code(&before).await, "token_invalid");
    let after = access_token(
        &client_credentials(&api, &parent.id, &parent.secret, &[])
            .await
            .expect(200),
    );
    assert_eq!(header(&after)["kid"], kid.as_str());
    assert_eq!(api.verify_code(&after).await, "valid");
    let events = api.audit_events(&server.owner_token).await;
    let event = events
        .iter()
        .find(|e| e["action"] == "tokens.signing_keys_replace")
        .expect("the replacement is audited");
    assert_eq!(event["details"]["withdrawn"], json!(old));
}

keygate_testkit::on_both_databases!(on_both, replaced);
