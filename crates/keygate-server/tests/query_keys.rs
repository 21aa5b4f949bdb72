//! A keygate key in a URL query string is refused on every route, before anything else
//! happens, and recorded as a likely leak, naming the key by id and never by its text.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_core::{ApiKey, KeyEnv};
use keygate_testkit::{Db, Method, TestServer};
use serde_json::{Value, json};

/// Every character percent-encoded.
fn encode_all(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_query_strings_are_refused_and_recorded() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let key = api
        .create_key(owner, json!({"project": "default", "name": "leaky"}))
        .await;
    let project = key.view["project_id"].as_str().unwrap().to_owned();
    let events = api.audit_events(owner).await;
    let owner_id = events[0]["target"].as_str().unwrap().to_owned();
    let secret = key.secret.as_str();
    let unknown = ApiKey::generate(KeyEnv::Test).unwrap();
    let unknown = unknown.expose();

    // (method, path and query, the id the event must name, the project it must name)
    let known = Some(key.id.as_str());
    let in_project = Some(project.as_str());
    let cases: Vec<(Method, String, Option<&str>, Option<&str>)> = vec![
        (
            Method::GET,
            format!("/healthz?key={secret}"),
            known,
            in_project,
        ),
        (
            Method::GET,
            format!("/healthz?a=1&key={secret}&b=2"),
            known,
            in_project,
        ),
        (
            Method::GET,
            format!("/readyz?k={}", secret.replace('_', "%5F")),
            known,
            in_project,
        ),
        (
            Method::GET,
            format!("/healthz?k={}", encode_all(secret)),
            known,
            in_project,
        ),
        (
            Method::GET,
            format!("/openapi.json?{secret}"),
            known,
            in_project,
        ),
        (
            Method::GET,
            format!("/admin/v1/keys?cursor={secret}"),
            known,
            in_project,
        ),
        (
            Method::GET,
            format!("/admin/v1/keys/{}?x={secret}", key.id),
            known,
            in_project,
        ),
        (
            Method::POST,
            format!("/v1/keys/verify?key={secret}"),
            known,
            in_project,
        ),
        (
            Method::POST,
            format!("/admin/v1/projects?token={secret}"),
            known,
            in_project,
        ),
        (
            Method::DELETE,
            format!("/admin/v1/keys/{}?key={secret}", key.id),
            known,
            in_project,
        ),
        (
            Method::GET,
            format!("/no/such/route?key={secret}"),
            known,
            in_project,
        ),
        (
            Method::GET,
            format!("/healthz?token={owner}"),
            Some(owner_id.as_str()),
            None,
        ),
        (Method::GET, format!("/healthz?key={unknown}"), None, None),
        (
            Method::GET,
            "/healthz?key=kg_live_short".to_owned(),
            None,
            None,
        ),
    ];
    for (i, (method, path, _, _)) in cases.iter().enumerate() {
        let reply = api
            .request(method.clone(), path)
            .token(owner)
            .request_id(&format!("query-{i}"))
            .json(&json!({"name": "from a leaky url", "key": secret}))
            .send()
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "key_in_query"),
            "{path}: {}",
            reply.text
        );
        for text in [secret, owner, unknown] {
            assert!(
                !reply.text.contains(&text[8..]),
                "{path}: the response echoes a key"
            );
        }
    }

    // Refused before anything ran: the key is still there and no project was created.
    assert_eq!(api.get_key(owner, &key.id).await["status"], "active");
    let projects = api.get("/admin/v1/projects").token(owner).send().await;
    assert_eq!(projects.body["data"].as_array().unwrap().len(), 1);

    let events = api.audit_events(owner).await;
    for (i, (_, path, target, project)) in cases.iter().enumerate() {
        let found: Vec<&Value> = events
            .iter()
            .filter(|e| e["request_id"] == format!("query-{i}"))
            .collect();
        assert_eq!(found.len(), 1, "{path}: {found:?}");
        let event = found[0];
        assert_eq!(event["action"], "key.in_query", "{path}");
        assert_eq!(event["outcome"], "denied", "{path}");
        assert_eq!(event["target"].as_str(), *target, "{path}");
        assert_eq!(event["project_id"].as_str(), *project, "{path}");
        assert_eq!(event["details"]["known_key"], target.is_some(), "{path}");
        assert_eq!(
            event["details"]["path"],
            path.split('?').next().unwrap(),
            "{path}"
        );
        assert_eq!(event["client_ip"], "127.0.0.1");
        for text in [secret, owner, unknown] {
            assert!(!event.to_string().contains(&text[8..]), "{path}: {event}");
        }
    }

    // A key in the path as well as the query: the recorded path withholds it.
    api.get(&format!("/admin/v1/keys/{secret}?key={secret}"))
        .request_id("query-and-path")
        .send()
        .await
        .expect_error(400, "key_in_query");
    let events = api.audit_events(owner).await;
    let event = events
        .iter()
        .find(|e| e["request_id"] == "query-and-path")
        .unwrap();
    assert_eq!(event["target"], key.id.as_str());
    assert!(!event.to_string().contains(&secret[8..]), "{event}");
    assert!(
        event["details"]["path"]
            .as_str()
            .unwrap()
            .contains("withheld")
    );

    // A query without a key passes through untouched.
    api.get("/admin/v1/keys?limit=5&env=live")
        .token(owner)
        .send()
        .await
        .expect(200);
    api.get("/healthz?probe=kg_other_value")
        .send()
        .await
        .expect(200);
}
