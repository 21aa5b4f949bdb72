//! Projects through the admin API: show, create with limits, and limits set, validated,
//! audited and confined to organisation-wide owners and admins; the verification cache picks
//! new limits up at once; the access review of what they hold. On SQLite and PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_core::{KeyLimits, MicroUsd, ProjectId};
use keygate_server::service::{VerifyOutcome, VerifyQuery};
use keygate_testkit::{Api, Db, TestServer};
use serde_json::{Value, json};

/// Every kind of limit, as a client writes it.
fn every_kind() -> Value {
    json!({
        "requests": [{"limit": 100, "per": "minute"}],
        "tokens": [{"limit": 100000, "per": "minute"}, {"limit": 5000000, "per": "day"}],
        "concurrency": 10,
        "quota": {"amount": 1000, "per": "day"},
        "budgets": [{"usd": "25.00", "per": "month"}, {"usd": "2.5", "per": "day"}],
    })
}

/// The same limits as the API shows them: dollars with six decimals.
fn every_kind_shown() -> Value {
    let mut shown = every_kind();
    shown["budgets"] = json!([
        {"usd": "25.000000", "per": "month"},
        {"usd": "2.500000", "per": "day"},
    ]);
    shown
}

async fn patch_limits(api: &Api, token: &str, project: &str, limits: Value) -> Value {
    api.patch(&format!("/admin/v1/projects/{project}"))
        .token(token)
        .json(&json!({ "limits": limits }))
        .send()
        .await
        .expect(200)
        .body
}

async fn show(api: &Api, token: &str, project: &str) -> Value {
    api.get(&format!("/admin/v1/projects/{project}"))
        .token(token)
        .send()
        .await
        .expect(200)
        .body
}

async fn project_limits_are_set_shown_and_audited(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let shown = show(&api, owner, "default").await;
    assert_eq!(shown["limits"], json!({}));
    let id = shown["id"].as_str().unwrap().to_owned();
    assert_eq!(show(&api, owner, &id).await, shown, "by id or by name");

    let view = patch_limits(&api, owner, "default", every_kind()).await;
    assert_eq!(view["id"], id.as_str());
    assert_eq!(view["limits"], every_kind_shown());
    assert_eq!(show(&api, owner, &id).await, view);
    let listed = api
        .get("/admin/v1/projects")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(listed.body["data"][0]["limits"], every_kind_shown());
    let stored = server
        .store
        .store
        .project(&ProjectId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.limits.budgets[0].usd, MicroUsd(25_000_000));
    assert_eq!(stored.limits.tokens.len(), 2);

    let events: Vec<Value> = api
        .audit_events(owner)
        .await
        .into_iter()
        .filter(|e| e["action"] == "project.update")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["target"], id.as_str());
    assert_eq!(events[0]["project_id"], id.as_str());
    assert_eq!(events[0]["details"]["limits"], every_kind_shown());

    // Refused limits name the part that is wrong and change nothing, not even the audit log.
    let head = server.store.store.audit_head().await.unwrap();
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!({"limits": {"tokens": [{"limit": 0, "per": "minute"}]}}),
            &["limits.tokens"],
        ),
        (
            json!({"limits": {"tokens": [{"limit": 1, "per": "week"}]}}),
            &["limits.tokens"],
        ),
        (
            json!({"limits": {"quota": {"amount": 0, "per": "day"}}}),
            &["limits.quota"],
        ),
        (
            json!({"limits": {"quota": {"amount": 5, "per": "second"}}}),
            &["limits.quota"],
        ),
        (
            json!({"limits": {"budgets": [{"usd": "5", "per": "hour"}]}}),
            &["limits.budgets", "day or per month"],
        ),
        (
            json!({"limits": {"budgets": [{"usd": 5, "per": "day"}]}}),
            &["limits.budgets"],
        ),
        (
            json!({"limits": {"budgets": [{"usd": "1.0000001", "per": "day"}]}}),
            &["limits.budgets"],
        ),
        (
            json!({"limits": {"budgets": [{"usd": "0", "per": "day"}]}}),
            &["limits.budgets"],
        ),
        (
            json!({"limits": {"budgets": [{"usd": "1", "per": "day"},
                                          {"usd": "2", "per": "day"}]}}),
            &["limits.budgets", "one budget per window"],
        ),
        (
            json!({"limits": {"concurrency": 0}}),
            &["limits.concurrency"],
        ),
        (json!({"limits": {"seats": 3}}), &["`seats`", "budgets"]),
        (json!({"limits": "100/minute"}), &["limits"]),
        (json!({}), &["limits"]),
        (json!({"name": "renamed"}), &["name"]),
    ];
    for (body, words) in &cases {
        let reply = api
            .patch(&format!("/admin/v1/projects/{id}"))
            .token(owner)
            .json(body)
            .send()
            .await
            .expect_error(400, "validation_failed");
        for word in *words {
            assert!(reply.message().contains(word), "{body}: {}", reply.text);
        }
    }
    assert_eq!(show(&api, owner, &id).await, view);
    assert_eq!(server.store.store.audit_head().await.unwrap(), head);

    // `{}` and `null` remove every limit.
    let cleared = patch_limits(&api, owner, &id, json!({})).await;
    assert_eq!(cleared["limits"], json!({}));
    patch_limits(&api, owner, &id, json!({"concurrency": 2})).await;
    let cleared = patch_limits(&api, owner, &id, Value::Null).await;
    assert_eq!(cleared["limits"], json!({}));
    assert_eq!(show(&api, owner, &id).await, cleared);

    // An unknown project is not found, by id or by name.
    for missing in [ProjectId::generate().to_string(), "nowhere".to_owned()] {
        api.get(&format!("/admin/v1/projects/{missing}"))
            .token(owner)
            .send()
            .await
            .expect_error(404, "not_found");
        api.patch(&format!("/admin/v1/projects/{missing}"))
            .token(owner)
            .json(&json!({"limits": {}}))
            .send()
            .await
            .expect_error(404, "not_found");
    }
}

async fn projects_are_created_with_limits(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let created = api
        .post("/admin/v1/projects")
        .token(owner)
        .json(&json!({"name": "metered", "limits": every_kind()}))
        .send()
        .await
        .expect(201)
        .body;
    assert_eq!(created["limits"], every_kind_shown());
    assert_eq!(show(&api, owner, "metered").await, created);
    let event = api
        .audit_events(owner)
        .await
        .into_iter()
        .find(|e| e["action"] == "project.create" && e["target"] == created["id"])
        .unwrap();
    assert_eq!(event["details"]["limits"], every_kind_shown());

    let plain = api
        .post("/admin/v1/projects")
        .token(owner)
        .json(&json!({"name": "plain"}))
        .send()
        .await
        .expect(201)
        .body;
    assert_eq!(plain["limits"], json!({}));

    let refused = api
        .post("/admin/v1/projects")
        .token(owner)
        .json(&json!({"name": "refused", "limits": {"tokens": [{"limit": 0, "per": "day"}]}}))
        .send()
        .await
        .expect_error(400, "validation_failed");
    assert!(
        refused.message().contains("limits.tokens"),
        "{}",
        refused.text
    );
    api.get("/admin/v1/projects/refused")
        .token(owner)
        .send()
        .await
        .expect_error(404, "not_found");
}

/// Reading a project follows `projects:read` and the token's binding; changing its limits
/// needs an organisation-wide owner or admin, since they are the ceiling of every key in it.
async fn only_org_wide_admins_change_project_limits(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let alpha = api.create_project(owner, "alpha").await;
    let beta = api.create_project(owner, "beta").await;
    let limits = json!({"concurrency": 3});
    let patch = |token: &str, project: &str| {
        api.patch(&format!("/admin/v1/projects/{project}"))
            .token(token)
            .json(&json!({ "limits": limits }))
            .send()
    };

    for role in ["operator", "auditor", "viewer"] {
        let token = api.create_token(owner, role, None).await;
        assert_eq!(show(&api, &token.secret, &alpha).await["limits"], json!({}));
        patch(&token.secret, &alpha)
            .await
            .expect_error(403, "forbidden");
    }
    let bound = api.create_token(owner, "admin", Some("alpha")).await;
    assert_eq!(
        show(&api, &bound.secret, &alpha).await["id"],
        alpha.as_str()
    );
    patch(&bound.secret, &alpha)
        .await
        .expect_error(403, "forbidden");
    // Another project is absent to a token bound elsewhere.
    api.get(&format!("/admin/v1/projects/{beta}"))
        .token(&bound.secret)
        .send()
        .await
        .expect_error(404, "not_found");
    patch(&bound.secret, &beta)
        .await
        .expect_error(404, "not_found");
    assert_eq!(show(&api, owner, &alpha).await["limits"], json!({}));
    let denied = api
        .audit_events(owner)
        .await
        .into_iter()
        .filter(|e| e["action"] == "access.denied" && e["details"]["permission"] == "ProjectsWrite")
        .count();
    assert_eq!(denied, 5, "every refused change is on record");

    let admin = api.create_token(owner, "admin", None).await;
    let view = patch(&admin.secret, &alpha).await.expect(200).body;
    assert_eq!(view["limits"], limits);
}

/// A key's verification carries its project's limits, and a change to them reaches this
/// node's cache at once rather than when the cached key expires.
async fn verification_sees_new_project_limits_at_once(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let key = api
        .create_key(owner, json!({"project": "default", "name": "k"}))
        .await;
    let project_limits = || async {
        let query = VerifyQuery {
            key: &key.secret,
            permission: None,
            ip: None,
            ..VerifyQuery::default()
        };
        match server.keygate.verify(query).await.unwrap() {
            VerifyOutcome::Valid(cached) => cached.project_limits.clone(),
            VerifyOutcome::Invalid(rejection, _) => panic!("refused: {rejection:?}"),
        }
    };
    assert_eq!(project_limits().await, KeyLimits::default());
    // Cached now; the change below must not wait for it to expire.
    assert_eq!(project_limits().await, KeyLimits::default());

    patch_limits(&api, owner, "default", every_kind()).await;
    let limits = project_limits().await;
    assert_eq!(serde_json::to_value(&limits).unwrap(), every_kind_shown());

    patch_limits(&api, owner, "default", json!({})).await;
    assert!(project_limits().await.is_empty());
}

/// The OpenAPI document describes every kind of limit, money as a decimal string, and the
/// project routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_kind_of_limit() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let doc = server
        .api()
        .get("/openapi.json")
        .send()
        .await
        .expect(200)
        .body;
    let schemas = &doc["components"]["schemas"];
    let mut kinds: Vec<&str> = schemas["LimitsParam"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "budgets",
            "concurrency",
            "credits",
            "quota",
            "requests",
            "tokens"
        ]
    );
    let credits = &schemas["LimitsParam"]["properties"]["credits"];
    assert_eq!(credits["example"], "50.00", "{credits}");
    let usd = &schemas["BudgetParam"]["properties"]["usd"];
    assert_eq!(usd["type"], "string", "{usd}");
    assert_eq!(usd["example"], "25.00", "{usd}");
    assert_eq!(
        schemas["TokenRateParam"]["properties"]["limit"]["maximum"],
        json!(1_000_000_000_000_u64)
    );
    assert!(schemas["ProjectView"]["properties"]["limits"].is_object());
    assert!(schemas["UpdateProjectBody"]["properties"]["limits"].is_object());
    let project = &doc["paths"]["/admin/v1/projects/{project}"];
    assert!(
        project["get"].is_object() && project["patch"].is_object(),
        "{project}"
    );
}

/// The access review's findings, as `(kind, target)` pairs.
async fn findings(api: &Api, token: &str) -> Vec<(String, String)> {
    let review = api
        .get("/admin/v1/review")
        .token(token)
        .send()
        .await
        .expect(200)
        .body;
    let mut found: Vec<(String, String)> = review["projects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["findings"].as_array().unwrap().clone())
        .map(|f| {
            assert!(f["fix"].as_str().unwrap().starts_with("keygate "), "{f}");
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

fn has(found: &[(String, String)], kind: &str, target: &str) -> bool {
    found.iter().any(|(k, t)| k == kind && t == target)
}

/// Each review finding appears for a key made to match it and disappears once it is fixed.
async fn the_access_review_finds_and_forgets(db: Db) {
    let t0 = keygate_core::Timestamp::from_millis(1_800_000_000_000);
    let (server, clock) = TestServer::start_frozen(db, t0).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let expiring = |extra: Value| {
        let mut body = json!({"project": "default", "name": "k", "scopes": ["models:chat"],
                              "expires_at": "2099-01-01T00:00:00Z"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let tidy = api.create_key(owner, expiring(json!({}))).await.id;
    let forever = api
        .create_key(
            owner,
            json!({"project": "default", "name": "forever", "scopes": ["models:chat"]}),
        )
        .await
        .id;
    let wide = api
        .create_key(
            owner,
            expiring(json!({"name": "wide", "scopes": ["models:*"]})),
        )
        .await
        .id;
    let public = api
        .create_key(
            owner,
            expiring(
                json!({"name": "web", "scopes": ["GET /proxy/maps/*"], "publishable": true,
                            "origins": ["https://app.example.com"]}),
            ),
        )
        .await
        .id;
    let writer = api
        .create_key(
            owner,
            expiring(json!({"name": "writer", "scopes": ["docs:write"]})),
        )
        .await
        .id;
    let reader = api
        .create_key(
            owner,
            expiring(json!({"name": "reader", "scopes": ["* /proxy/maps/*", "docs:*"]})),
        )
        .await
        .id;
    let rotating = api
        .create_key(
            owner,
            expiring(json!({"name": "rot", "rotate_every_seconds": 3600})),
        )
        .await
        .id;
    let secret = api
        .post("/admin/v1/secrets")
        .token(owner)
        .json(
            &json!({"project": "default", "name": "openai", "value": "sk-x-1",
                      "rotate_every_seconds": 3600}),
        )
        .send()
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let found = findings(&api, owner).await;
    assert!(has(&found, "key_without_expiry", &forever), "{found:?}");
    assert!(has(&found, "scope_wider_than_use", &wide), "{found:?}");
    assert!(
        has(&found, "publishable_without_limits", &public),
        "{found:?}"
    );
    assert!(found.iter().all(|(_, t)| t != &tidy), "{found:?}");
    assert!(
        found.iter().all(|(k, _)| k != "write_scope_unused"),
        "a key younger than the span is not judged: {found:?}"
    );
    assert!(
        found
            .iter()
            .all(|(k, _)| k != "rotation_overdue" && k != "key_unused")
    );

    clock.advance(std::time::Duration::from_secs(2 * 3600));
    let found = findings(&api, owner).await;
    assert!(has(&found, "rotation_overdue", &rotating), "{found:?}");
    assert!(has(&found, "secret_rotation_overdue", &secret), "{found:?}");

    // Fixed, each finding goes.
    let patch = |id: &str, body: Value| {
        api.patch(&format!("/admin/v1/keys/{id}"))
            .token(owner)
            .json(&body)
            .send()
    };
    patch(&forever, json!({"expires_at": "2099-01-01T00:00:00Z"}))
        .await
        .expect(200);
    patch(&wide, json!({"scopes": ["models:chat"]}))
        .await
        .expect(200);
    patch(
        &public,
        json!({"limits": {"requests": [{"limit": 60, "per": "minute"}]}}),
    )
    .await
    .expect(200);
    api.post(&format!("/admin/v1/keys/{rotating}/rotate"))
        .token(owner)
        .json(&json!({}))
        .send()
        .await
        .expect(200);
    api.post(&format!("/admin/v1/secrets/{secret}/rotate"))
        .token(owner)
        .json(&json!({"value": "sk-x-2"}))
        .send()
        .await
        .expect(200);
    let found = findings(&api, owner).await;
    assert!(
        !has(&found, "secret_rotation_overdue", &secret),
        "{found:?}"
    );
    for (kind, target) in [
        ("key_without_expiry", &forever),
        ("scope_wider_than_use", &wide),
        ("publishable_without_limits", &public),
        ("rotation_overdue", &rotating),
    ] {
        assert!(!has(&found, kind, target), "{kind} {target}: {found:?}");
    }

    // Ninety-one days later every key (and the owner's token) is unused; a suspension ends it.
    clock.advance(std::time::Duration::from_secs(91 * 86_400));
    let found = findings(&api, owner).await;
    assert!(has(&found, "key_unused", &tidy), "{found:?}");
    assert!(
        found.iter().any(|(k, _)| k == "admin_token_unused"),
        "{found:?}"
    );
    api.post(&format!("/admin/v1/keys/{tidy}/suspend"))
        .token(owner)
        .json(&json!({"reason": "unused for 90 days"}))
        .send()
        .await
        .expect(200);
    assert!(!has(&findings(&api, owner).await, "key_unused", &tidy));

    // Write scopes on a key that only ever read: found; a key that made a change lately is
    // not; made read-only, the finding goes.
    assert!(has(&found, "write_scope_unused", &writer), "{found:?}");
    assert!(has(&found, "write_scope_unused", &reader), "{found:?}");
    let now = t0.saturating_add(std::time::Duration::from_secs(91 * 86_400 + 2 * 3600));
    server
        .store
        .store
        .touch_keys(&[], &[(keygate_core::KeyId::parse(&writer).unwrap(), now)])
        .await
        .unwrap();
    let review = api
        .get("/admin/v1/review")
        .token(owner)
        .send()
        .await
        .expect(200)
        .body;
    let fix = review["projects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["findings"].as_array().unwrap())
        .find(|f| f["kind"] == "write_scope_unused" && f["target"] == reader.as_str())
        .unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        fix,
        format!("keygate keys update {reader} --scope \"GET /proxy/maps/*\" --scope \"docs:read\"")
    );
    let found = findings(&api, owner).await;
    assert!(!has(&found, "write_scope_unused", &writer), "{found:?}");
    patch(
        &reader,
        json!({"scopes": ["GET /proxy/maps/*", "docs:read"]}),
    )
    .await
    .expect(200);
    assert!(!has(
        &findings(&api, owner).await,
        "write_scope_unused",
        &reader
    ));
    // A longer span asked for, the others are no finding either.
    let longer = api
        .get("/admin/v1/review?unused_days=365")
        .token(owner)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(longer["unused_days"], 365);
    assert!(!longer.to_string().contains("key_unused"), "{longer}");
}

/// Keys' deadlines are announced once each in the audit log (and through it to webhooks): an
/// expiry within the notice period, and a due rotation — again when the expiry moves.
async fn key_deadlines_are_announced_once(db: Db) {
    let t0 = keygate_core::Timestamp::from_millis(1_800_000_000_000);
    let (server, clock) = TestServer::start_frozen(db, t0).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let week = std::time::Duration::from_secs(7 * 86_400);
    let at = |secs: u64| {
        t0.saturating_add(std::time::Duration::from_secs(secs))
            .to_rfc3339()
    };
    let soon = api
        .create_key(
            owner,
            json!({"project": "default", "name": "soon", "expires_at": at(10 * 86_400)}),
        )
        .await
        .id;
    let rotating = api
        .create_key(
            owner,
            json!({"project": "default", "name": "rot", "rotate_every_seconds": 3600}),
        )
        .await
        .id;
    let keygate = &server.keygate;
    assert_eq!(keygate.announce_key_deadlines(week).await.unwrap(), 0);
    clock.advance(std::time::Duration::from_secs(4 * 86_400));
    // Six days from its expiry, and past its rotation: one each, then nothing more. The
    // server's own check runs beside this one and may announce some first: the audit log
    // says what was announced.
    assert!(keygate.announce_key_deadlines(week).await.unwrap() <= 2);
    assert_eq!(keygate.announce_key_deadlines(week).await.unwrap(), 0);
    let events = api.audit_events(owner).await;
    let mut announced: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["action"] == "key.expiring" || e["action"] == "key.rotation_due")
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    announced.sort();
    assert_eq!(
        announced,
        [
            ("key.expiring".to_owned(), soon.clone()),
            ("key.rotation_due".to_owned(), rotating.clone())
        ]
    );
    let expiring = events
        .iter()
        .find(|e| e["action"] == "key.expiring")
        .unwrap();
    assert_eq!(expiring["details"]["expires_at"], at(10 * 86_400));
    assert_eq!(expiring["actor"], "system");
    // A new expiry is a new occurrence.
    api.patch(&format!("/admin/v1/keys/{soon}"))
        .token(owner)
        .json(&json!({"expires_at": at(5 * 86_400)}))
        .send()
        .await
        .expect(200);
    assert!(keygate.announce_key_deadlines(week).await.unwrap() <= 1);
    assert_eq!(keygate.announce_key_deadlines(week).await.unwrap(), 0);
    let expirings = api
        .audit_events(owner)
        .await
        .into_iter()
        .filter(|e| e["action"] == "key.expiring")
        .count();
    assert_eq!(expirings, 2, "the new expiry is announced once");
}

/// The weekly access review: announced once a week per organisation, with its findings
/// summed up, and again the next week.
async fn the_weekly_review_is_announced_once_a_week(db: Db) {
    // Wednesday 9 December 2026, noon UTC.
    let t0 = keygate_core::Timestamp::parse_rfc3339("2026-12-09T12:00:00Z").unwrap();
    let (server, clock) = TestServer::start_frozen(db, t0).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let forever = api
        .create_key(owner, json!({"project": "default", "name": "forever"}))
        .await
        .id;
    let keygate = &server.keygate;
    assert_eq!(keygate.announce_weekly_review().await.unwrap(), 1);
    assert_eq!(keygate.announce_weekly_review().await.unwrap(), 0);
    clock.advance(std::time::Duration::from_secs(3 * 86_400));
    assert_eq!(
        keygate.announce_weekly_review().await.unwrap(),
        0,
        "still the same week on Saturday"
    );
    let ready: Vec<Value> = api
        .audit_events(owner)
        .await
        .into_iter()
        .filter(|e| e["action"] == "review.ready")
        .collect();
    assert_eq!(ready.len(), 1);
    let details = &ready[0]["details"];
    assert_eq!(details["week_start"], "2026-12-07T00:00:00Z", "{details}");
    assert!(
        details["by_kind"]["key_without_expiry"].as_u64().unwrap() >= 1,
        "{details}"
    );
    assert!(details["findings"].as_u64().unwrap() >= 1);
    assert!(
        !details.to_string().contains(&forever),
        "counts, not keys: {details}"
    );
    // Monday: a new week.
    clock.advance(std::time::Duration::from_secs(2 * 86_400));
    assert_eq!(keygate.announce_weekly_review().await.unwrap(), 1);
}

keygate_testkit::on_both_databases!(
    the_weekly_review_is_announced_once_a_week,
    key_deadlines_are_announced_once,
    the_access_review_finds_and_forgets,
    project_limits_are_set_shown_and_audited,
    projects_are_created_with_limits,
    only_org_wide_admins_change_project_limits,
    verification_sees_new_project_limits_at_once,
);
