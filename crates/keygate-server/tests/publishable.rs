//! Publishable keys over real sockets: they read public proxy routes (`GET`/`HEAD`) from their
//! origins, with CORS, and are refused everywhere else — private routes that inject a
//! credential, writes, the LLM gateway, the vault, the admin API — with the attempts recorded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse;
use keygate_testkit::upstream::{Recorded, RecordingUpstream};
use keygate_testkit::{Db, Method, MockOpenAi, Reply, TestServer};
use serde_json::{Value, json};

const PAY_KEY: &str = "sk_live_payments_0123456789abcdef";
const OPENAI_KEY: &str = "sk-upstream-openai-0123456789abcdef";
const APP: &str = "https://app.example.com";

/// An upstream that records each request and answers with its path, adding a CORS policy of
/// its own that keygate must not pass on.
async fn upstream() -> RecordingUpstream {
    RecordingUpstream::start(|seen: Recorded| async move {
        (
            [
                ("access-control-allow-origin", "*"),
                ("access-control-allow-credentials", "true"),
            ],
            axum::Json(json!({"path": seen.path})),
        )
            .into_response()
    })
    .await
    .unwrap()
}

struct Setup {
    server: TestServer,
    log: Arc<Mutex<Vec<Recorded>>>,
    _upstream: RecordingUpstream,
    openai: MockOpenAi,
}

async fn setup(db: Db) -> Setup {
    let upstream = upstream().await;
    let (addr, log) = (upstream.addr, upstream.log.clone());
    let openai = MockOpenAi::start("openai", OPENAI_KEY).await.unwrap();
    let config = format!(
        r#"
        [providers.openai]
        kind = "openai"
        base_url = "{openai}/v1"
        credential = "env::OPENAI_KEY"

        [model_groups.chat]
        deployments = [{{ provider = "openai", model = "gpt-4o-mini" }}]

        [routes.catalog]
        upstream = "http://{addr}/catalog"
        credential = "none"
        public = true

        [routes.pay]
        upstream = "http://{addr}/pay"
        credential = "secret::payments"
        inject = {{ header = "authorization", prefix = "Bearer " }}
        "#,
        openai = openai.origin(),
    );
    let server = TestServer::start_gateway(db, &config, &[("OPENAI_KEY", OPENAI_KEY)])
        .await
        .unwrap();
    server
        .api()
        .post("/admin/v1/secrets")
        .token(&server.owner_token)
        .json(&json!({"project": "default", "name": "payments", "value": PAY_KEY}))
        .send()
        .await
        .expect(200);
    Setup {
        server,
        log,
        _upstream: upstream,
        openai,
    }
}

/// A publishable key with `scopes`, usable from `https://app.example.com` and the subdomains
/// of `example.org`. Returns its secret and its id.
async fn publishable(s: &Setup, scopes: &[&str]) -> (String, String) {
    let key = s
        .server
        .api()
        .create_key(
            &s.server.owner_token,
            json!({"project": "default", "name": "web", "scopes": scopes,
                   "publishable": true, "origins": [APP, "https://*.example.org"]}),
        )
        .await;
    (key.secret, key.id)
}

async fn get_from(s: &Setup, path: &str, key: &str, origin: Option<&str>) -> Reply {
    let api = s.server.api();
    let call = api.get(path).token(key);
    match origin {
        Some(origin) => call.header("origin", origin),
        None => call,
    }
    .send()
    .await
}

/// The usage report's error counts, by model (route), once `want` errors are recorded.
async fn errors_by_model(s: &Setup, want: u64) -> Vec<(String, u64)> {
    let mut rows = Vec::new();
    for _ in 0..100 {
        let report = s
            .server
            .api()
            .get("/admin/v1/usage?group_by=model")
            .token(&s.server.owner_token)
            .send()
            .await
            .expect(200)
            .body;
        rows = report["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["group"].as_str().unwrap().to_owned(),
                    r["errors"].as_u64().unwrap(),
                )
            })
            .filter(|(_, errors)| *errors > 0)
            .collect::<Vec<_>>();
        rows.sort();
        if rows.iter().map(|(_, n)| n).sum::<u64>() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rows
}

async fn reads_a_public_route_from_its_origins_with_cors(db: Db) {
    let s = setup(db).await;
    let (key, _) = publishable(&s, &["GET /proxy/catalog/*", "HEAD /proxy/catalog/*"]).await;

    let reply = get_from(&s, "/proxy/catalog/items", &key, Some(APP))
        .await
        .expect(200);
    assert_eq!(reply.body["path"], "/catalog/items");
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    let vary: Vec<&str> = reply
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(vary.iter().any(|v| v.contains("origin")), "{vary:?}");
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        None,
        "the upstream's own CORS policy is not passed on"
    );
    let seen = s.log.lock().unwrap()[0].clone();
    assert!(
        seen.headers
            .iter()
            .all(|(n, v)| n != "authorization" && n != "x-api-key" && !v.contains(&key)),
        "neither the key nor any credential went upstream: {:?}",
        seen.headers
    );

    // The wildcard covers subdomains of example.org, and a Referer speaks for a request that
    // has no Origin (browsers leave it out of some same-origin reads).
    let sub = get_from(
        &s,
        "/proxy/catalog/items",
        &key,
        Some("https://shop.example.org"),
    )
    .await
    .expect(200);
    assert_eq!(
        sub.header("access-control-allow-origin"),
        Some("https://shop.example.org")
    );
    s.server
        .api()
        .get("/proxy/catalog/items")
        .token(&key)
        .header("referer", "https://app.example.com/products?page=2")
        .send()
        .await
        .expect(200);
    s.server
        .api()
        .request(Method::HEAD, "/proxy/catalog/items")
        .token(&key)
        .header("origin", APP)
        .send()
        .await
        .expect(200);
    let allowed = s.log.lock().unwrap().len();
    assert_eq!(allowed, 4);

    // Other origins, look-alikes of the wildcard, `null` and no origin at all are refused, and
    // the refusal lets no page read it.
    for origin in [
        Some("https://evil.example.com"),
        Some("http://app.example.com"),
        Some("https://example.org"),
        Some("https://evil-example.org"),
        Some("https://example.org.evil.com"),
        Some("null"),
        None,
    ] {
        let reply = get_from(&s, "/proxy/catalog/items", &key, origin).await;
        assert_eq!(
            (reply.status, reply.code()),
            (403, "origin_not_allowed"),
            "{origin:?}"
        );
        assert_eq!(reply.header("access-control-allow-origin"), None);
    }
    let refused = s
        .server
        .api()
        .get("/proxy/catalog/items")
        .token(&key)
        .header("referer", "https://evil.example.com/")
        .send()
        .await;
    assert_eq!(refused.code(), "origin_not_allowed");
    assert_eq!(
        s.log.lock().unwrap().len(),
        allowed,
        "nothing refused went upstream"
    );
    assert_eq!(
        errors_by_model(&s, 8).await,
        [("catalog".to_owned(), 8)],
        "each refusal is a usage record"
    );
}

/// The issue's invariant: a publishable key never reaches a route that injects a private
/// credential, nor writes, nor the LLM gateway, the vault or the admin API.
async fn is_refused_everywhere_else(db: Db) {
    let s = setup(db).await;
    // `GET /proxy/*` would grant the private route's reads to a secret key.
    let (key, _) = publishable(&s, &["GET /proxy/*"]).await;
    let api = s.server.api();

    let private = get_from(&s, "/proxy/pay/v1/customers", &key, Some(APP)).await;
    assert_eq!(
        (private.status, private.code()),
        (403, "publishable_key_forbidden"),
        "{}",
        private.text
    );
    assert_eq!(private.header("access-control-allow-origin"), None);
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let reply = api
            .request(method.clone(), "/proxy/catalog/items")
            .token(&key)
            .header("origin", APP)
            .body("{}")
            .send()
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (403, "publishable_key_forbidden"),
            "{method}"
        );
    }
    // A read may not smuggle a write in a method-override header or a body.
    get_from(&s, "/proxy/catalog/items", &key, Some(APP))
        .await
        .expect(200);
    api.get("/proxy/catalog/items")
        .token(&key)
        .header("origin", APP)
        .header("x-http-method-override", "DELETE")
        .body("{\"delete\": true}")
        .send()
        .await
        .expect(200);
    {
        let log = s.log.lock().unwrap();
        assert_eq!(log.len(), 2, "only the two reads went upstream: {log:?}");
        assert!(log.iter().all(|seen| seen.path.starts_with("/catalog/")));
        assert!(
            log.iter()
                .all(|seen| seen.method == "GET" && seen.body.is_empty())
        );
        assert!(
            log[1]
                .headers
                .iter()
                .all(|(n, _)| n != "x-http-method-override")
        );
    }

    // The LLM gateway, the vault and the admin API.
    let chat = api
        .post("/v1/chat/completions")
        .token(&key)
        .header("origin", APP)
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await;
    assert_eq!(chat.status, 403, "{}", chat.text);
    assert_eq!(chat.body["error"]["code"], "publishable_key_forbidden");
    let models = api.get("/v1/models").token(&key).send().await;
    assert_eq!(models.status, 403);
    assert_eq!(models.body["error"]["code"], "publishable_key_forbidden");
    assert_eq!(s.openai.request_count(), 0, "nothing reached the provider");
    let secret = api.get("/v1/secrets/payments").token(&key).send().await;
    assert_eq!(secret.status, 403, "{}", secret.text);
    assert!(!secret.text.contains(PAY_KEY));
    api.get("/admin/v1/keys")
        .token(&key)
        .send()
        .await
        .expect_error(401, "key_invalid");

    // The same private route works for a secret key with the same scope: the route, not the
    // scope, kept the publishable key out.
    let secret_key = api
        .create_key(
            &s.server.owner_token,
            json!({"project": "default", "name": "backend", "scopes": ["GET /proxy/*", "models:*"]}),
        )
        .await
        .secret;
    api.get("/proxy/pay/v1/customers")
        .token(&secret_key)
        .send()
        .await
        .expect(200);
    let log = s.log.lock().unwrap().clone();
    assert_eq!(log.len(), 3);
    assert!(
        log[2]
            .headers
            .contains(&("authorization".to_owned(), format!("Bearer {PAY_KEY}")))
    );
    assert_eq!(
        errors_by_model(&s, 7).await,
        [
            (String::new(), 2),
            ("catalog".to_owned(), 4),
            ("pay".to_owned(), 1)
        ],
        "the private route, the writes and the LLM attempts are usage records"
    );
}

async fn preflights_are_answered_from_the_route(db: Db) {
    let s = setup(db).await;
    let api = s.server.api();
    let preflight = |path: &str, method: &str| {
        api.request(Method::OPTIONS, path)
            .header("origin", "https://anywhere.example.net")
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization")
    };
    let reply = preflight("/proxy/catalog/items", "GET").send().await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    // The preflight has no key, so it cannot know the key's origins: it echoes the origin,
    // and the request that follows is checked.
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://anywhere.example.net")
    );
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("GET, HEAD")
    );
    assert!(
        reply
            .header("access-control-allow-headers")
            .unwrap()
            .split(", ")
            .any(|h| h == "authorization")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert!(reply.header("vary").unwrap().contains("origin"));
    assert_eq!(reply.header("access-control-allow-credentials"), None);

    let private = preflight("/proxy/pay/v1/customers", "GET").send().await;
    assert_eq!((private.status, private.code()), (403, "cors_not_allowed"));
    assert_eq!(private.header("access-control-allow-origin"), None);
    let write = preflight("/proxy/catalog/items", "POST").send().await;
    assert_eq!((write.status, write.code()), (403, "cors_not_allowed"));
    assert_eq!(write.header("access-control-allow-origin"), None);
    // A route that does not exist answers as a private one does: preflights, which need no
    // key, do not tell which routes exist.
    let unknown = preflight("/proxy/nope/x", "GET").send().await;
    assert_eq!((unknown.status, unknown.code()), (403, "cors_not_allowed"));
    assert_eq!(unknown.body, private.body);
    assert!(
        s.log.lock().unwrap().is_empty(),
        "preflights never go upstream"
    );

    // An OPTIONS that is not a preflight is an ordinary request, and needs a key.
    let plain = api
        .request(Method::OPTIONS, "/proxy/catalog/items")
        .send()
        .await;
    assert_eq!(plain.status, 401);
}

async fn keys_are_made_publishable_with_checked_origins_and_scopes(db: Db) {
    let s = setup(db).await;
    let api = s.server.api();
    let owner = &s.server.owner_token;
    let create = |body: Value| {
        let api = &api;
        async move {
            api.post("/admin/v1/keys")
                .token(owner)
                .json(&body)
                .send()
                .await
        }
    };
    let base = |extra: Value| {
        let mut body = json!({"project": "default", "name": "web"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (extra, field) in [
        (json!({"publishable": true}), "origins"),
        (json!({"origins": [APP]}), "origins"),
        (json!({"publishable": true, "origins": []}), "origins"),
        (
            json!({"publishable": true, "origins": ["https://app.example.com/"]}),
            "origins",
        ),
        (
            json!({"publishable": true, "origins": ["*.example.com"]}),
            "origins",
        ),
        (
            json!({"publishable": true, "origins": ["https://*.com"]}),
            "origins",
        ),
        (
            json!({"publishable": true, "origins": [APP], "scopes": ["*"]}),
            "scopes",
        ),
        (
            json!({"publishable": true, "origins": [APP], "scopes": ["models:*"]}),
            "scopes",
        ),
        (
            json!({"publishable": true, "origins": [APP], "scopes": ["secrets:read"]}),
            "scopes",
        ),
        (
            json!({"publishable": true, "origins": [APP], "scopes": ["POST /proxy/catalog/*"]}),
            "scopes",
        ),
    ] {
        let reply = create(base(extra.clone())).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "validation_failed"),
            "{extra}: {}",
            reply.text
        );
        assert!(
            reply.message().starts_with(field),
            "{extra}: {}",
            reply.message()
        );
    }

    let (key, id) = publishable(&s, &["GET /proxy/catalog/*"]).await;
    let shown = api.get_key(owner, &id).await;
    assert_eq!(shown["publishable"], true);
    assert_eq!(shown["origins"], json!([APP, "https://*.example.org"]));
    let plain = api
        .create_key(owner, json!({"project": "default", "name": "backend"}))
        .await;
    let plain_shown = api.get_key(owner, &plain.id).await;
    assert_eq!(plain_shown["publishable"], false);
    assert_eq!(plain_shown["origins"], json!([]));
    let created = api
        .audit_events(owner)
        .await
        .into_iter()
        .find(|e| e["action"] == "key.create" && e["target"] == id.as_str())
        .unwrap();
    assert_eq!(created["details"]["publishable"], true);
    assert_eq!(created["details"]["origins"][0], APP);

    // The verify API refuses a publishable key unless the caller expects one (holding it
    // proves nothing: it is public), and then says what it is.
    let refused = api.verify(&key, None, None).await;
    assert_eq!(refused["valid"], false);
    assert_eq!(refused["code"], "publishable_key_forbidden");
    assert_eq!(refused["key_id"], id.as_str());
    assert!(refused["origins"].is_null() && refused["scopes"].is_null());
    let verified = api
        .post("/v1/keys/verify")
        .json(&json!({"key": key, "allow_publishable": true}))
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["publishable"], true);
    assert_eq!(verified["origins"][0], APP);

    // Origins change in place and apply at once; a secret key has none to change, and a
    // publishable key's scopes stay read-only.
    api.patch(&format!("/admin/v1/keys/{id}"))
        .token(owner)
        .json(&json!({"origins": ["https://new.example.com"]}))
        .send()
        .await
        .expect(200);
    get_from(
        &s,
        "/proxy/catalog/items",
        &key,
        Some("https://new.example.com"),
    )
    .await
    .expect(200);
    get_from(&s, "/proxy/catalog/items", &key, Some(APP))
        .await
        .expect_error(403, "origin_not_allowed");
    api.patch(&format!("/admin/v1/keys/{}", plain.id))
        .token(owner)
        .json(&json!({"origins": [APP]}))
        .send()
        .await
        .expect_error(400, "validation_failed");
    api.patch(&format!("/admin/v1/keys/{id}"))
        .token(owner)
        .json(&json!({"scopes": ["DELETE /proxy/catalog/*"]}))
        .send()
        .await
        .expect_error(400, "validation_failed");
    api.patch(&format!("/admin/v1/keys/{id}"))
        .token(owner)
        .json(&json!({"origins": []}))
        .send()
        .await
        .expect_error(400, "validation_failed");
    assert_eq!(api.get_key(owner, &plain.id).await["publishable"], false);

    // A route that would hand a private credential to publishable keys does not start.
    let refused = TestServer::start_gateway(
        Db::Sqlite,
        r#"
        [routes.leaky]
        upstream = "https://api.example.com"
        credential = "secret::payments"
        public = true
        "#,
        &[],
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("routes.leaky.credential"),
        "{refused}"
    );
}

/// A publishable key copied onto another site: a burst of requests from origins it does not
/// list is an anomaly of the key (`foreign_origin`), listed with its figures.
async fn use_from_a_foreign_origin_in_volume_is_an_anomaly(db: Db) {
    let s = setup(db).await;
    let (key, id) = publishable(&s, &["GET /proxy/catalog/*"]).await;
    // The burst is counted per minute of the clock: twenty requests that straddle a minute's
    // end are two smaller bursts. Start early in a minute.
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - second)).await;
    }
    // The default burst is 20 a minute.
    for _ in 0..20 {
        get_from(
            &s,
            "/proxy/catalog/items",
            &key,
            Some("https://copycat.example.net"),
        )
        .await
        .expect_error(403, "origin_not_allowed");
    }
    let api = s.server.api();
    let owner = &s.server.owner_token;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let found = loop {
        let listed = api
            .get("/admin/v1/anomalies")
            .token(owner)
            .send()
            .await
            .expect(200)
            .body;
        if let Some(found) = listed["data"].as_array().and_then(|a| a.first()) {
            break found.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no anomaly: {listed}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(found["detector"], "foreign_origin", "{found}");
    assert_eq!(found["key_id"], id.as_str());
    assert_eq!(found["evidence"]["origin_not_allowed_this_minute"], 20);
    // Its own origins stay served.
    get_from(&s, "/proxy/catalog/items", &key, Some(APP))
        .await
        .expect(200);
}

keygate_testkit::on_both_databases!(
    use_from_a_foreign_origin_in_volume_is_an_anomaly,
    reads_a_public_route_from_its_origins_with_cors,
    is_refused_everywhere_else,
    preflights_are_answered_from_the_route,
    keys_are_made_publishable_with_checked_origins_and_scopes,
);
