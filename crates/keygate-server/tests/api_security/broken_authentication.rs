//! Failed admin authentication: every way of presenting a wrong, missing, unknown, revoked or
//! expired credential is refused with its stable code and recorded as `admin.auth_failed`,
//! without the presented text, and the request has no effect. A flood from one source costs
//! one audit row a minute, with the failures in between counted, not lost.

use std::sync::Arc;
use std::time::Duration;

use keygate_core::{ApiKey, AuditAction, KeyEnv, KeyId, ManualClock, Timestamp};
use keygate_server::ServerSettings;
use keygate_testkit::{Db, TestServer, audit};
use serde_json::json;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

/// Changes the character at `pos` to another letter: a typo.
fn flip(key: &str, pos: usize) -> String {
    let mut bytes = key.as_bytes().to_vec();
    bytes[pos] = if bytes[pos] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_admin_authentication_is_refused_and_recorded() {
    let clock = ManualClock::starting_at(T0);
    let server = TestServer::start_with(
        Db::Sqlite,
        Arc::new(clock.clone()),
        ServerSettings::default(),
    )
    .await
    .unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let api_key = api
        .create_key(owner, json!({"project": "default", "name": "not an admin"}))
        .await;
    let revoked = api.create_token(owner, "admin", None).await;
    let revoke_draft = audit(AuditAction::KeyRevoke);
    server
        .store
        .store
        .revoke_key(
            &KeyId::parse(&revoked.id).unwrap(),
            "test",
            T0,
            &revoke_draft,
        )
        .await
        .unwrap();
    let expiring = api
        .post("/admin/v1/tokens")
        .token(owner)
        .json(&json!({
            "role": "admin",
            "expires_at": T0.saturating_add(Duration::from_secs(60)).to_rfc3339(),
        }))
        .send()
        .await
        .expect(201);
    let expiring_id = expiring.body["token"]["id"].as_str().unwrap().to_owned();
    let expiring = expiring.body["secret"].as_str().unwrap().to_owned();
    api.get("/admin/v1/projects")
        .token(&expiring)
        .send()
        .await
        .expect(200);
    clock.advance(Duration::from_secs(60));
    let unknown = ApiKey::generate(KeyEnv::Live).unwrap();

    // (header, value, code, the token id the failure names)
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        ("", String::new(), "unauthenticated", None),
        (
            "authorization",
            "Basic b3duZXI6cGFzcw==".into(),
            "unauthenticated",
            None,
        ),
        ("authorization", "Bearer".into(), "unauthenticated", None),
        (
            "authorization",
            "Bearer garbage".into(),
            "key_malformed",
            None,
        ),
        (
            "authorization",
            format!("Bearer {}", flip(owner, 30)),
            "key_malformed",
            None,
        ),
        ("x-api-key", flip(owner, 30), "key_malformed", None),
        (
            "authorization",
            format!("Bearer {}", unknown.expose()),
            "key_invalid",
            None,
        ),
        (
            "authorization",
            format!("Bearer {}", api_key.secret),
            "key_invalid",
            None,
        ),
        ("x-api-key", api_key.secret.clone(), "key_invalid", None),
        (
            "authorization",
            format!("Bearer {}", revoked.secret),
            "key_revoked",
            Some(&revoked.id),
        ),
        (
            "authorization",
            format!("Bearer {expiring}"),
            "key_expired",
            Some(&expiring_id),
        ),
    ];
    let head_before = server.store.store.audit_head().await.unwrap().seq;
    for (i, (header, value, code, _)) in cases.iter().enumerate() {
        // A source's failures are recorded one a minute (see the flood test below).
        clock.advance(Duration::from_secs(61));
        let mut call = api
            .post("/admin/v1/projects")
            .request_id(&format!("auth-{i}"))
            .json(&json!({"name": format!("p{i}")}));
        if !header.is_empty() {
            call = call.header(header, value);
        }
        let reply = call.send().await;
        assert_eq!(
            (reply.status, reply.code()),
            (401, *code),
            "case {i}: {}",
            reply.text
        );
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "case {i}");
    }
    // One event per failure and nothing else: no project was created.
    let head_after = server.store.store.audit_head().await.unwrap().seq;
    assert_eq!(
        head_after - head_before,
        i64::try_from(cases.len()).unwrap()
    );
    let projects = api.get("/admin/v1/projects").token(owner).send().await;
    assert_eq!(projects.body["data"].as_array().unwrap().len(), 1);

    let events = api.audit_events(owner).await;
    for (i, (_, value, code, target)) in cases.iter().enumerate() {
        let event = events
            .iter()
            .find(|e| e["request_id"] == format!("auth-{i}"))
            .unwrap_or_else(|| panic!("case {i} was not recorded"));
        assert_eq!(event["action"], "admin.auth_failed", "case {i}");
        assert_eq!(
            (event["actor"].clone(), event["outcome"].clone()),
            (json!("anonymous"), json!("denied"))
        );
        assert_eq!(event["client_ip"], "127.0.0.1");
        let recorded = if *code == "unauthenticated" {
            "missing_credentials"
        } else {
            code
        };
        assert_eq!(event["details"]["code"], recorded, "case {i}");
        assert_eq!(event["target"].as_str(), *target, "case {i}");
        let credential = value
            .trim_start_matches("Bearer ")
            .trim_start_matches("Basic ");
        if credential.len() > 8 {
            assert!(!event.to_string().contains(credential), "case {i}: {event}");
        }
    }

    // The same header names work with a good token.
    api.get("/admin/v1/projects")
        .header("x-api-key", owner)
        .send()
        .await
        .expect(200);
    api.get("/admin/v1/projects")
        .header("authorization", &format!("bearer {owner}"))
        .send()
        .await
        .expect(200);
}

/// The events recorded since `after`, from the store (the server may be stopped).
async fn auth_failures_since(server: &TestServer, after: i64) -> Vec<keygate_core::AuditEvent> {
    let store = &server.store.store;
    let head = store.audit_head().await.unwrap().seq;
    store
        .audit_chain_page(after, head, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "admin.auth_failed")
        .collect()
}

fn details(event: &keygate_core::AuditEvent) -> serde_json::Value {
    serde_json::from_str(&event.details).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_costs_one_row_a_minute_per_source() {
    let clock = ManualClock::starting_at(T0);
    let settings = ServerSettings {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..ServerSettings::default()
    };
    let mut server = TestServer::start_with(Db::Sqlite, Arc::new(clock.clone()), settings)
        .await
        .unwrap();
    let api = server.api();
    let unknown = ApiKey::generate(KeyEnv::Live).unwrap();
    let bad = format!("Bearer {}", unknown.expose());
    let fail = |from: &'static str| {
        let api = api.clone();
        let bad = bad.clone();
        async move {
            api.get("/admin/v1/projects")
                .header("authorization", &bad)
                .header("x-forwarded-for", from)
                .send()
                .await
                .expect_error(401, "key_invalid");
        }
    };
    let start = server.store.store.audit_head().await.unwrap().seq;

    for _ in 0..50 {
        fail("203.0.113.7").await;
    }
    fail("198.51.100.9").await;
    let rows = auth_failures_since(&server, start).await;
    let sources: Vec<_> = rows.iter().map(|e| e.client_ip.as_deref()).collect();
    assert_eq!(
        sources,
        [Some("203.0.113.7"), Some("198.51.100.9")],
        "one row for the flood, one for the other address"
    );
    assert_eq!(details(&rows[0]), json!({"code": "key_invalid"}));

    // A minute on, the next failure is recorded with the count of those in between.
    clock.advance(Duration::from_secs(60));
    fail("203.0.113.7").await;
    let rows = auth_failures_since(&server, start).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(
        details(&rows[2]),
        json!({"code": "key_invalid", "suppressed": 49, "source": "203.0.113.7"})
    );

    // Failures still counted when the server stops are written as a summary.
    for _ in 0..5 {
        fail("203.0.113.7").await;
    }
    server.stop().await.unwrap();
    let rows = auth_failures_since(&server, start).await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[3].client_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(
        details(&rows[3]),
        json!({"suppressed": 5, "source": "203.0.113.7"})
    );
}

/// A revoked key presented over and over to the gateway (a deployment left with it) is
/// announced once as `auth.failure_burst`, by its hint — never the key — with the key it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_key_presented_in_a_burst_is_announced_by_its_hint() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let made = api
        .create_key(owner, json!({"project": "default", "name": "old-deploy"}))
        .await;
    api.post(&format!("/admin/v1/keys/{}/revoke", made.id))
        .token(owner)
        .json(&json!({"reason": "rotated out"}))
        .send()
        .await
        .expect(200);
    // The default burst is 20 a minute: the source is blocked at the same count.
    for _ in 0..20 {
        let reply = api.get("/v1/models").token(&made.secret).send().await;
        assert_eq!(reply.status, 401, "{}", reply.text);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let burst = loop {
        let found: Vec<serde_json::Value> = api
            .audit_events(owner)
            .await
            .into_iter()
            .filter(|e| e["action"] == "auth.failure_burst")
            .collect();
        if let Some(first) = found.first() {
            assert_eq!(found.len(), 1);
            break first.clone();
        }
        assert!(std::time::Instant::now() < deadline, "not announced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let hint = ApiKey::parse(&made.secret).unwrap().hint();
    assert_eq!(burst["target"], hint.as_str());
    assert_eq!(burst["details"]["key_id"], made.id.as_str());
    assert_eq!(burst["details"]["code"], "key_revoked");
    assert_eq!(burst["details"]["failures_this_minute"], 20);
    assert!(
        !burst.to_string().contains(&made.secret[12..]),
        "the key itself is never recorded: {burst}"
    );
}
