//! Workload identity federation against a test issuer serving its discovery document and
//! JWKS over HTTP: its tokens act directly as identities with their rule's scopes and limits
//! (counted per identity), are exchanged for keygate tokens, and are refused when a claim, the
//! audience, the time or the issuer is wrong.

use std::sync::Arc;

use keygate_core::{KeyLimits, Quota, Scope, SystemClock};
use keygate_identity::federation::{ClaimMatch, Rule, TrustedIssuer};
use keygate_server::ServerSettings;
use keygate_server::service::{FederatedIssuer, IdentitySettings, JwksSource};
use keygate_testkit::{Db, OidcProvider, TestServer};
use serde_json::{Value, json};

use super::{access_token, claims, exchange};

const AUDIENCE: &str = "https://keygate.example";

fn matching(claim: &str, pattern: &str) -> ClaimMatch {
    ClaimMatch {
        claim: claim.into(),
        pattern: pattern.into(),
    }
}

async fn server_trusting(ci: &OidcProvider) -> TestServer {
    let issuer = FederatedIssuer {
        trusted: TrustedIssuer {
            name: "ci".into(),
            issuer: ci.issuer.clone(),
            audience: AUDIENCE.into(),
            required: vec![matching("repository_owner", "acme")],
            rules: vec![Rule {
                name: "main".into(),
                matches: vec![matching("ref", "refs/heads/main")],
                project: "default".into(),
                scopes: vec![
                    Scope::parse("secrets:read:deploy-*").unwrap(),
                    Scope::parse("docs:read").unwrap(),
                ],
                limits: KeyLimits {
                    quota: Some(Quota::parse("2/day").unwrap()),
                    ..KeyLimits::default()
                },
            }],
        },
        jwks: JwksSource::Discovery,
    };
    let settings = ServerSettings {
        identity: IdentitySettings {
            federation: vec![issuer],
            ..IdentitySettings::default()
        },
        ..ServerSettings::default()
    };
    TestServer::start_with(Db::Sqlite, Arc::new(SystemClock), settings)
        .await
        .unwrap()
}

/// A GitHub Actions-like token for `repository` at `git_ref`, with `change` applied.
fn ci_token(
    ci: &OidcProvider,
    repository: &str,
    git_ref: &str,
    change: impl Fn(&mut Value),
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({
        "aud": AUDIENCE,
        "sub": format!("repo:{repository}:ref:{git_ref}"),
        "repository": repository,
        "repository_owner": repository.split('/').next().unwrap(),
        "ref": git_ref,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": format!("{repository}-{git_ref}"),
    });
    change(&mut claims);
    ci.mint(&claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_issuers_token_is_an_identity_with_its_rules_scopes_and_limits() {
    let ci = OidcProvider::start("unused", "unused").await.unwrap();
    let server = server_trusting(&ci).await;
    let api = server.api();
    let payments = ci_token(&ci, "acme/payments", "refs/heads/main", |_| {});

    let verdict = api.verify(&payments, Some("docs:read"), None).await;
    assert_eq!(verdict["code"], "valid", "{verdict}");
    let id = verdict["key_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("key_fed-"), "{id}");
    assert_eq!(
        verdict["scopes"],
        json!(["secrets:read:deploy-*", "docs:read"])
    );
    assert_eq!(
        api.verify(&payments, Some("models:gpt-4o"), None).await["code"],
        "permission_denied"
    );
    // The same subject is the same identity in another token; another subject is another.
    let again = ci_token(&ci, "acme/payments", "refs/heads/main", |c| {
        c["jti"] = "run-2".into()
    });
    assert_eq!(api.verify(&again, None, None).await["key_id"], id.as_str());
    let web = ci_token(&ci, "acme/web", "refs/heads/main", |_| {});
    assert_ne!(api.verify(&web, None, None).await["key_id"], id.as_str());

    // The rule's quota (2 a day) is each identity's: spent for payments, not for web.
    assert_eq!(
        api.verify(&payments, None, None).await["code"],
        "quota_exhausted"
    );
    assert_eq!(api.verify(&web, None, None).await["code"], "valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_token_is_exchanged_for_a_narrower_keygate_token() {
    let ci = OidcProvider::start("unused", "unused").await.unwrap();
    let server = server_trusting(&ci).await;
    let api = server.api();
    let payments = ci_token(&ci, "acme/payments", "refs/heads/main", |_| {});

    let reply = exchange(&api, &payments, &[("scope", "secrets:read:deploy-prod")])
        .await
        .expect(200);
    let token = access_token(&reply);
    let body = claims(&token);
    assert_eq!(body["kg_fed"]["issuer"], "ci");
    assert_eq!(body["kg_fed"]["rule"], "main");
    assert_eq!(
        body["kg_fed"]["sub"],
        "repo:acme/payments:ref:refs/heads/main"
    );
    assert!(body["exp"].as_i64() <= claims(&payments)["exp"].as_i64());
    let verdict = api
        .verify(&token, Some("secrets:read:deploy-prod"), None)
        .await;
    assert_eq!(verdict["code"], "valid", "{verdict}");
    assert!(verdict["key_id"].as_str().unwrap().starts_with("key_fed-"));
    // Never wider than the rule.
    exchange(&api, &payments, &[("scope", "secrets:read")])
        .await
        .expect_error_oauth(400, "invalid_scope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_the_rules_or_checks_refuse() {
    let ci = OidcProvider::start("unused", "unused").await.unwrap();
    let stranger = OidcProvider::start("unused", "unused").await.unwrap();
    let server = server_trusting(&ci).await;
    let api = server.api();
    let cases = [
        // No rule for a feature branch.
        (
            ci_token(&ci, "acme/payments", "refs/heads/feature", |_| {}),
            "token_invalid",
        ),
        // Another owner than every token must have.
        (
            ci_token(&ci, "evil/payments", "refs/heads/main", |_| {}),
            "token_invalid",
        ),
        (
            ci_token(&ci, "acme/payments", "refs/heads/main", |c| {
                c["aud"] = "https://other".into()
            }),
            "token_wrong_audience",
        ),
        (
            ci_token(&ci, "acme/payments", "refs/heads/main", |c| {
                c["exp"] = (c["iat"].as_u64().unwrap() - 120).into();
                c["iat"] = (c["iat"].as_u64().unwrap() - 600).into();
                c["nbf"] = c["iat"].clone();
            }),
            "token_expired",
        ),
        // An issuer keygate does not trust, and one posing as the trusted one with its own key.
        (
            ci_token(&stranger, "acme/payments", "refs/heads/main", |_| {}),
            "token_invalid",
        ),
        (
            {
                let forged = ci_token(&stranger, "acme/payments", "refs/heads/main", |_| {});
                let mut parts: Vec<String> = forged.split('.').map(str::to_owned).collect();
                let mut body = claims(&forged);
                body["iss"] = ci.issuer.clone().into();
                use base64::Engine as _;
                parts[1] =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string());
                parts.join(".")
            },
            "token_invalid",
        ),
    ];
    for (token, code) in cases {
        let verdict = api.verify(&token, None, None).await;
        assert_eq!(verdict["code"], code, "{}: {verdict}", claims(&token));
        exchange(&api, &token, &[])
            .await
            .expect_error_oauth(400, "invalid_request");
    }
}
