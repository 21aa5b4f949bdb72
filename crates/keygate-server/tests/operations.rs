//! Operations endpoints and the shape of the HTTP surface: health and readiness, the OpenAPI
//! document against the route table, unknown routes and wrong methods.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::collections::BTreeSet;

use keygate_core::KeyId;
use keygate_testkit::{Db, Method, TestServer};
use serde_json::{Value, json};

/// The route table as written in `routes.rs`: (full path, lower-case method).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/http/routes.rs");
    let start = source.find("pub fn router").unwrap();
    let body = &source[start..];
    let admin_end = body.find("let timeout").unwrap();
    let mut routes = BTreeSet::new();
    for (prefix, block) in [("/admin/v1", &body[..admin_end]), ("", &body[admin_end..])] {
        for chunk in block.split(".route(").skip(1) {
            // A catch-all segment (`{*model}`) is documented as a plain parameter.
            let path = chunk.split('"').nth(1).unwrap().replace("{*", "{");
            let handlers = &chunk[..chunk.find("\n        .").unwrap_or(chunk.len())];
            let called = |name: &str| {
                handlers.match_indices(&format!("{name}(")).any(|(i, _)| {
                    !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == ':' || c == '_')
                })
            };
            for method in ["get", "post", "patch", "delete", "put"] {
                // `any(…)` (the proxy routes) takes every method; it is documented as GET.
                if called(method) || (method == "get" && called("any")) {
                    routes.insert((format!("{prefix}{path}"), method.to_owned()));
                }
            }
        }
    }
    routes
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                ops.insert((path.clone(), method.clone()));
            }
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_admin_route() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let reply = api.get("/openapi.json").send().await.expect(200);
    let doc = reply.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );

    let source = routes_in_source();
    let admin = |set: &BTreeSet<(String, String)>| -> BTreeSet<(String, String)> {
        set.iter()
            .filter(|(p, _)| p.starts_with("/admin/"))
            .cloned()
            .collect()
    };
    assert_eq!(
        admin(&source).len(),
        49,
        "the route table parser lost routes: {source:?}"
    );
    let ops = documented(&doc);
    assert_eq!(
        admin(&ops),
        admin(&source),
        "documented admin routes differ from routes.rs"
    );
    // Everything documented outside the admin API exists too.
    let others: BTreeSet<_> = ops.difference(&source).collect();
    assert!(others.is_empty(), "documented but not routed: {others:?}");
    for route in ["/v1/keys/verify", "/healthz", "/readyz"] {
        assert!(
            ops.iter().any(|(p, _)| p == route),
            "{route} is not documented"
        );
    }

    // Every admin operation says how to authenticate and what a refusal looks like.
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    for (path, method) in admin(&ops) {
        let op = &doc["paths"][&path][&method];
        assert_eq!(
            op["security"],
            json!([{"admin_token": []}]),
            "{method} {path}"
        );
        assert!(op["responses"]["401"].is_object(), "{method} {path}");
    }

    // The document matches what the server answers: documented operations exist (an anonymous
    // call is refused, never "no such route"), and other methods on those paths are 405.
    let id = KeyId::generate();
    let paths: BTreeSet<&String> = ops.iter().map(|(p, _)| p).collect();
    for path in paths {
        let concrete = path.replace("{id}", id.as_str());
        for method in [
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::PUT,
        ] {
            let reply = api.request(method.clone(), &concrete).send().await;
            let name = method.as_str().to_lowercase();
            if ops.contains(&(path.clone(), name)) {
                assert!(
                    ![404, 405].contains(&reply.status),
                    "{method} {path}: {}",
                    reply.text
                );
                if path.starts_with("/admin/") {
                    reply.expect_error(401, "unauthenticated");
                }
            } else if path.starts_with("/proxy/") {
                // A proxy route forwards every method: the key decides which it may use.
                reply.expect_error(401, "unauthenticated");
            } else {
                reply.expect_error(405, "method_not_allowed");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_errors() {
    for db in [Db::Sqlite, Db::Postgres] {
        let server = TestServer::start(db).await.unwrap();
        let api = server.api();
        let health = api.get("/healthz").send().await.expect(200);
        assert_eq!(health.body, json!({"status": "ok"}));
        let generated = health.header("x-request-id").unwrap();
        assert_eq!(
            generated.len(),
            36,
            "a request id is made when none is sent"
        );
        let ready = api.get("/readyz").send().await.expect(200);
        assert_eq!(ready.body, json!({"status": "ready", "limits": "local"}));
    }
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();

    for path in [
        "/nope",
        "/admin/v1/nope",
        "/admin/v2/keys",
        "/v1/keys",
        "/healthz/extra",
    ] {
        for token in [None, Some(owner)] {
            let mut call = api.get(path);
            if let Some(token) = token {
                call = call.token(token);
            }
            let reply = call.send().await;
            assert_eq!(
                reply.body,
                json!({"error": {"code": "not_found", "message": "route not found"}}),
                "{path}"
            );
            assert_eq!(reply.status, 404, "{path}");
            assert_eq!(reply.header("content-type"), Some("application/json"));
        }
    }
    for (method, path) in [
        (Method::DELETE, "/healthz"),
        (Method::POST, "/readyz"),
        (Method::GET, "/v1/keys/verify"),
        (Method::PUT, "/admin/v1/keys"),
        (Method::DELETE, "/admin/v1/projects"),
        (Method::DELETE, "/admin/v1/tokens"),
        (Method::POST, "/admin/v1/audit"),
        (Method::PATCH, "/admin/v1/keys/due"),
    ] {
        let reply = api.request(method.clone(), path).token(owner).send().await;
        assert_eq!(
            (reply.status, reply.code()),
            (405, "method_not_allowed"),
            "{method} {path}"
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }

    let refused = api.get("/admin/v1/keys").send().await;
    refused.clone().expect_error(401, "unauthenticated");
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    let echoed = api.get("/healthz").request_id("trace-me-42").send().await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-me-42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_request_ids_are_replaced_everywhere() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let long = "r".repeat(200);
    for sent in [long.as_str(), "has space", ""] {
        let reply = api
            .post("/admin/v1/projects")
            .token(owner)
            .header("x-request-id", sent)
            .json(&serde_json::json!({"name": format!("p{}", sent.len())}))
            .send()
            .await
            .expect(201);
        let echoed = reply.header("x-request-id").unwrap().to_owned();
        assert_ne!(echoed, sent);
        assert_eq!(echoed.len(), 36, "a generated UUID: {echoed}");
        let events = api.audit_events(owner).await;
        let event = events
            .iter()
            .find(|e| e["action"] == "project.create" && e["request_id"] == echoed.as_str());
        assert!(event.is_some(), "the audit event carries the generated id");
    }
    let kept = api
        .get("/healthz")
        .header("x-request-id", "trace-123")
        .send()
        .await
        .expect(200);
    assert_eq!(kept.header("x-request-id"), Some("trace-123"));
}

/// The value of each series in an exposition, by its name and labels as written.
fn series(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(server: &TestServer) -> std::collections::BTreeMap<String, f64> {
    let reply = server.api().get("/metrics").send().await.expect(200);
    series(&reply.text)
}

/// Counters move by exactly the traffic sent: verifications by result, the HTTP layer by
/// route template, the gateway (once its usage records are written) by model group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_the_traffic() {
    const UP: &str = "sk-upstream-0123456789abcdef";
    let mock = keygate_testkit::MockOpenAi::start("up", UP).await.unwrap();
    let config = format!(
        r#"
        [providers.up]
        kind = "openai-compatible"
        base_url = "{}/v1"
        credential = "env::UP_KEY"

        [model_groups.chat]
        deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]
        "#,
        mock.origin()
    );
    let server = TestServer::start_gateway(Db::Sqlite, &config, &[("UP_KEY", UP)])
        .await
        .unwrap();
    let api = server.api();
    let key = api
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "m", "scopes": ["models:*"]}),
        )
        .await
        .secret;
    let before = scrape(&server).await;
    let at = |after: &std::collections::BTreeMap<String, f64>, name: &str| {
        after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
    };
    for _ in 0..3 {
        api.post("/v1/keys/verify")
            .json(&json!({"key": key}))
            .send()
            .await
            .expect(200);
    }
    for _ in 0..2 {
        api.post("/v1/keys/verify")
            .json(&json!({"key": "not-a-key"}))
            .send()
            .await;
    }
    for _ in 0..2 {
        api.post("/v1/chat/completions")
            .token(&key)
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect(200);
    }
    let served = r#"keygate_gateway_requests_total{gen_ai_operation_name="chat",gen_ai_request_model="chat",gen_ai_provider_name="up",deployment="up/gpt-4o-mini",status_class="2xx",error_type=""}"#;
    let mut after = scrape(&server).await;
    for _ in 0..100 {
        if at(&after, served) >= 2.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = scrape(&server).await;
    }
    assert_eq!(at(&after, served), 2.0, "{after:#?}");
    assert_eq!(
        at(&after, r#"keygate_key_verifications_total{result="valid"}"#),
        5.0,
        "three through the verify API, two through the gateway"
    );
    assert_eq!(
        at(
            &after,
            r#"keygate_key_verifications_total{result="key_malformed"}"#
        ),
        2.0
    );
    assert_eq!(
        at(
            &after,
            r#"http_server_request_duration_seconds_count{http_route="/v1/keys/verify",http_request_method="POST",status_class="2xx"}"#
        ),
        5.0,
        "the verify API answers 200 with its verdict, valid or not"
    );
    let input = r#"gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_request_model="chat",gen_ai_provider_name="up",gen_ai_token_type="input"}"#;
    assert_eq!(at(&after, input), 2.0);
    assert!(
        after
            .keys()
            .all(|name| !name.contains(&key) && !name.contains("not-a-key")),
        "no key nor client input in a label"
    );
    assert!(
        after
            .keys()
            .any(|name| name.starts_with("keygate_gateway_deployment_breaker_open{")),
        "deployments' breakers are shown"
    );
}

/// A server's state holds its `Keygate`, never the other way round: dropped, the state frees
/// it, and with it the store's connections (a cycle would keep a pool open per server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_state_frees_its_keygate() {
    use std::sync::Arc;
    let store = keygate_testkit::TestStore::new(Db::Sqlite).await.unwrap();
    let master =
        keygate_crypto::MasterKey::load_or_create(&store.dir.path().join("master.key")).unwrap();
    let keygate = Arc::new(
        keygate_server::Keygate::open(
            store.store.clone(),
            Arc::new(master),
            Arc::new(keygate_core::SystemClock),
        )
        .await
        .unwrap(),
    );
    let state =
        keygate_server::AppState::new(keygate.clone(), keygate_server::ServerSettings::default());
    assert!(Arc::strong_count(&keygate) > 1);
    drop(state);
    assert_eq!(Arc::strong_count(&keygate), 1);
}
