//! Role-based access on every admin route for every role, the confinement of a
//! project-bound principal, and token issuance that never escalates; on SQLite and PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::collections::HashMap;

use keygate_testkit::{Api, Db, IssuedToken, Method, TestServer};
use serde_json::{Value, json};

const ROLES: [&str; 5] = ["owner", "admin", "operator", "auditor", "viewer"];
const ALL: &[&str] = &ROLES;
const WRITERS: &[&str] = &["owner", "admin", "operator"];
const MANAGERS: &[&str] = &["owner", "admin"];
const AUDITORS: &[&str] = &["owner", "admin", "auditor"];

/// A route of the admin API and the roles that may call it. The table is the specification,
/// written out rather than derived from `Role::allows`, so a change to the role rules must
/// change it too.
struct Case {
    method: Method,
    /// `{id}` stands for a fresh API key made for each call.
    path: &'static str,
    body: Option<Value>,
    allowed: &'static [&'static str],
    success: u16,
}

fn case(method: Method, path: &'static str, allowed: &'static [&'static str]) -> Case {
    let success = match method {
        Method::DELETE => 204,
        Method::POST if !path.contains("{id}") => 201,
        _ => 200,
    };
    Case {
        method,
        path,
        body: None,
        allowed,
        success,
    }
}

fn cases() -> Vec<Case> {
    let with = |mut c: Case, body: Value| {
        c.body = Some(body);
        c
    };
    vec![
        case(Method::GET, "/admin/v1/projects", ALL),
        with(
            case(Method::POST, "/admin/v1/projects", MANAGERS),
            json!({"name": "NAME"}),
        ),
        case(Method::GET, "/admin/v1/keys", ALL),
        with(
            case(Method::POST, "/admin/v1/keys", WRITERS),
            json!({"project": "default", "name": "made by a role"}),
        ),
        case(Method::GET, "/admin/v1/keys/due", ALL),
        case(Method::GET, "/admin/v1/keys/{id}", ALL),
        with(
            case(Method::PATCH, "/admin/v1/keys/{id}", WRITERS),
            json!({"name": "renamed"}),
        ),
        case(Method::DELETE, "/admin/v1/keys/{id}", MANAGERS),
        with(
            case(Method::POST, "/admin/v1/keys/{id}/rotate", WRITERS),
            json!({"grace_period_seconds": 0}),
        ),
        with(
            case(Method::POST, "/admin/v1/keys/{id}/revoke", WRITERS),
            json!({"reason": "rbac test"}),
        ),
        with(
            case(Method::POST, "/admin/v1/tokens", MANAGERS),
            json!({"role": "viewer"}),
        ),
        case(Method::GET, "/admin/v1/tokens", MANAGERS),
        case(Method::GET, "/admin/v1/audit", AUDITORS),
        case(Method::GET, "/admin/v1/audit/verify", AUDITORS),
    ]
}

/// The events carrying `request_id`.
fn events_of<'a>(events: &'a [Value], request_id: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["request_id"] == request_id)
        .collect()
}

async fn target_key(api: &Api, owner: &str) -> (String, Value) {
    let key = api
        .create_key(owner, json!({"project": "default", "name": "target"}))
        .await;
    let view = api.get_key(owner, &key.id).await;
    (key.id, view)
}

async fn every_role_on_every_route(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let mut tokens: HashMap<&str, IssuedToken> = HashMap::new();
    for role in ROLES {
        tokens.insert(role, api.create_token(owner, role, None).await);
    }

    let mut denials = Vec::new();
    let mut n = 0;
    for case in cases() {
        for role in ROLES {
            n += 1;
            let token = &tokens[role];
            let target = match case.path.contains("{id}") {
                true => Some(target_key(&api, owner).await),
                false => None,
            };
            let path = match &target {
                Some((id, _)) => case.path.replace("{id}", id),
                None => case.path.to_owned(),
            };
            let request_id = format!("rbac-{n}-{role}");
            let mut call = api
                .request(case.method.clone(), &path)
                .token(&token.secret)
                .request_id(&request_id);
            if let Some(body) = &case.body {
                let text = body.to_string().replace("NAME", &format!("project-{n}"));
                call = call.json(&serde_json::from_str(&text).unwrap());
            }
            let reply = call.send().await;
            let what = format!("{role} {} {}", case.method, case.path);
            if case.allowed.contains(&role) {
                assert_eq!(reply.status, case.success, "{what}: {}", reply.text);
                continue;
            }
            assert_eq!(
                (reply.status, reply.code()),
                (403, "forbidden"),
                "{what}: {}",
                reply.text
            );
            if let Some((id, before)) = &target {
                assert_eq!(
                    &api.get_key(owner, id).await,
                    before,
                    "{what} changed the key"
                );
            }
            denials.push((request_id, token.id.clone(), target.map(|(id, _)| id), what));
        }
    }
    // projects POST 3, keys POST 2, PATCH 2, DELETE 3, rotate 2, revoke 2, tokens POST 3 and
    // GET 3, audit 2 + 2.
    assert_eq!(denials.len(), 24, "denied calls");

    let events = api.audit_events(owner).await;
    for (request_id, actor, target, what) in denials {
        // Exactly one event: the refusal, and no trace of the action having happened.
        let found = events_of(&events, &request_id);
        assert_eq!(found.len(), 1, "{what}: {found:?}");
        let event = found[0];
        assert_eq!(event["action"], "access.denied", "{what}");
        assert_eq!(event["outcome"], "denied", "{what}");
        assert_eq!(event["actor"], actor.as_str(), "{what}");
        assert_eq!(event["target"].as_str(), target.as_deref(), "{what}");
        assert_eq!(event["client_ip"], "127.0.0.1", "{what}");
    }
}

async fn project_bound_principal_is_confined(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let alpha = api.create_project(owner, "alpha").await;
    let beta = api.create_project(owner, "beta").await;
    let policy =
        |project: &str| json!({"project": project, "name": "k", "rotate_every_seconds": 60});
    let ka = api.create_key(owner, policy("alpha")).await;
    let kb = api.create_key(owner, policy("beta")).await;
    let bound = api.create_token(owner, "admin", Some("alpha")).await;
    let t = bound.secret.as_str();
    let kb_before = api.get_key(owner, &kb.id).await;

    // Every key route treats B's key as absent: its existence is not revealed.
    let key_path = format!("/admin/v1/keys/{}", kb.id);
    let attempts = [
        (Method::GET, key_path.clone(), None),
        (
            Method::PATCH,
            key_path.clone(),
            Some(json!({"name": "taken"})),
        ),
        (Method::POST, format!("{key_path}/rotate"), Some(json!({}))),
        (
            Method::POST,
            format!("{key_path}/revoke"),
            Some(json!({"reason": "x"})),
        ),
        (Method::DELETE, key_path.clone(), None),
    ];
    for (i, (method, path, body)) in attempts.into_iter().enumerate() {
        let mut call = api
            .request(method.clone(), &path)
            .token(t)
            .request_id(&format!("cross-{i}"));
        if let Some(body) = body {
            call = call.json(&body);
        }
        let reply = call.send().await;
        assert_eq!(
            (reply.status, reply.code()),
            (404, "not_found"),
            "{method} {path}"
        );
    }
    assert_eq!(api.get_key(owner, &kb.id).await, kb_before);
    assert_eq!(api.verify_code(&kb.secret).await, "valid");
    // The probes are on record, under the project they aimed at.
    let events = api.audit_events(owner).await;
    for i in 0..5 {
        let found = events_of(&events, &format!("cross-{i}"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["action"], "access.denied");
        assert_eq!(found[0]["target"], kb.id.as_str());
        assert_eq!(found[0]["actor"], bound.id.as_str());
    }

    // Its own project works.
    api.get(&format!("/admin/v1/keys/{}", ka.id))
        .token(t)
        .send()
        .await
        .expect(200);
    // Listing another project is refused outright, by name or by id.
    for query in ["project=beta", &format!("project={beta}")] {
        for route in ["/admin/v1/keys", "/admin/v1/keys/due"] {
            api.get(&format!("{route}?{query}"))
                .token(t)
                .send()
                .await
                .expect_error(403, "forbidden");
        }
    }
    // Listing without a project shows only its own project's keys.
    let ids = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let listed = api.get("/admin/v1/keys").token(t).send().await.expect(200);
    assert_eq!(ids(&listed.body), vec![ka.id.clone()]);
    let due = api
        .get("/admin/v1/keys/due?within_seconds=3600")
        .token(t)
        .send()
        .await
        .expect(200);
    assert_eq!(ids(&due.body), vec![ka.id.clone()]);
    let everything = api
        .get("/admin/v1/keys")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(ids(&everything.body).len(), 2, "the owner sees both");
    let projects = api
        .get("/admin/v1/projects")
        .token(t)
        .send()
        .await
        .expect(200);
    let names: Vec<&str> = projects.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![alpha.as_str()]);

    // Nothing can be created outside its project.
    let create = |project: &str| json!({"project": project, "name": "new"});
    api.post("/admin/v1/keys")
        .token(t)
        .json(&create("beta"))
        .send()
        .await
        .expect_error(403, "forbidden");
    api.post("/admin/v1/keys")
        .token(t)
        .json(&create("alpha"))
        .send()
        .await
        .expect(201);
    api.post("/admin/v1/projects")
        .token(t)
        .json(&json!({"name": "gamma"}))
        .send()
        .await
        .expect_error(403, "forbidden");

    // Its audit view is its own project's.
    let seen = api.audit_events(t).await;
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|e| e["project_id"] == alpha.as_str()),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| e["target"] == ka.id.as_str()));
}

async fn tokens_never_escalate(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    api.create_project(owner, "other").await;
    let admin = api.create_token(owner, "admin", None).await;
    let operator = api.create_token(owner, "operator", None).await;
    let auditor = api.create_token(owner, "auditor", None).await;
    let bound = api.create_token(owner, "admin", Some("default")).await;

    let refused = [
        (&admin, json!({"role": "owner"})),
        (&admin, json!({"role": "owner", "project": "default"})),
        (&bound, json!({"role": "admin"})),
        (&bound, json!({"role": "viewer"})),
        (&bound, json!({"role": "viewer", "project": "other"})),
        (&bound, json!({"role": "owner", "project": "default"})),
        (&operator, json!({"role": "viewer"})),
        (&auditor, json!({"role": "viewer", "project": "default"})),
    ];
    for (i, (issuer, body)) in refused.iter().enumerate() {
        api.post("/admin/v1/tokens")
            .token(&issuer.secret)
            .request_id(&format!("escalate-{i}"))
            .json(body)
            .send()
            .await
            .expect_error(403, "forbidden");
    }
    let events = api.audit_events(owner).await;
    for (i, (issuer, body)) in refused.iter().enumerate() {
        let found = events_of(&events, &format!("escalate-{i}"));
        assert_eq!(found.len(), 1, "{body}: {found:?}");
        assert_eq!(found[0]["action"], "access.denied", "{body}");
        assert_eq!(found[0]["actor"], issuer.id.as_str(), "{body}");
    }
    assert!(
        !events.iter().any(|e| e["action"] == "token.create"
            && e["request_id"]
                .as_str()
                .is_some_and(|r| r.starts_with("escalate-"))),
        "a refused token was issued"
    );

    // At or below one's own role and binding is fine, and the binding sticks.
    let peer = api.create_token(&admin.secret, "admin", None).await;
    api.get("/admin/v1/keys?project=other")
        .token(&peer.secret)
        .send()
        .await
        .expect(200);
    let viewer = api
        .create_token(&bound.secret, "viewer", Some("default"))
        .await;
    api.get("/admin/v1/keys?project=other")
        .token(&viewer.secret)
        .send()
        .await
        .expect_error(403, "forbidden");
    api.post("/admin/v1/keys")
        .token(&viewer.secret)
        .json(&json!({"project": "default", "name": "x"}))
        .send()
        .await
        .expect_error(403, "forbidden");
}

/// Admin tokens are not API keys: the key routes cannot see, revoke, rotate or delete them.
async fn key_routes_cannot_reach_admin_tokens(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let admin = api.create_token(owner, "admin", None).await;
    let events = api.audit_events(owner).await;
    let owner_id = events
        .iter()
        .find(|e| e["action"] == "owner.bootstrap")
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .unwrap();
    for id in [&owner_id, &admin.id] {
        let path = format!("/admin/v1/keys/{id}");
        let calls = [
            api.get(&path),
            api.patch(&path).json(&json!({"name": "x"})),
            api.post(&format!("{path}/rotate")).json(&json!({})),
            api.post(&format!("{path}/revoke"))
                .json(&json!({"reason": "x"})),
            api.delete(&path),
        ];
        for call in calls {
            call.token(&admin.secret)
                .send()
                .await
                .expect_error(404, "not_found");
        }
    }
    let listed = api
        .get("/admin/v1/keys")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(listed.body["data"], json!([]));
    for token in [owner, admin.secret.as_str()] {
        api.get("/admin/v1/projects")
            .token(token)
            .send()
            .await
            .expect(200);
    }
}

keygate_testkit::on_both_databases!(
    every_role_on_every_route,
    project_bound_principal_is_confined,
    tokens_never_escalate,
    key_routes_cannot_reach_admin_tokens,
);
