//! The LLM gateway over real sockets: keygate keys in, provider credentials injected, the
//! body passed through, failover, retries, breakers, timeouts and usage, against mock
//! upstreams that speak OpenAI's wire format.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use keygate_testkit::{Api, Db, MockOpenAi, MockReply, TestServer};
use serde_json::{Value, json};

#[path = "gateway/answer_cache.rs"]
mod answer_cache;
#[path = "gateway/uploads.rs"]
mod uploads;

const KEY_A: &str = "sk-upstream-a-0123456789abcdef";
const KEY_B: &str = "sk-upstream-b-0123456789abcdef";

/// Two upstreams: `chat` on A (from the vault) falls back to `chat-backup` on B (from the
/// environment).
struct Setup {
    server: TestServer,
    a: MockOpenAi,
    b: MockOpenAi,
    /// A key that may use every model.
    key: String,
}

fn config(a: &MockOpenAi, b: &MockOpenAi, extra: &str) -> String {
    format!(
        r#"
        [gateway]
        retry_base_ms = 10
        retry_max_ms = 40
        breaker_failures = 3
        breaker_open_seconds = 60

        [providers.a]
        kind = "openai"
        base_url = "{a}/v1"
        credential = "secret::upstream-a"

        [providers.b]
        kind = "openai-compatible"
        base_url = "{b}/v1"
        credential = "env::BACKUP_KEY"

        [model_groups.chat]
        deployments = [{{ provider = "a", model = "gpt-4o-mini", timeouts = {{ first_byte_ms = 400 }} }}]
        fallbacks = ["chat-backup"]
        retries = 1

        [model_groups.chat-backup]
        deployments = [{{ provider = "b", model = "backup-model" }}]

        [model_groups.embed]
        deployments = [{{ provider = "a", model = "text-embedding-3-small" }}]

        {extra}
        "#,
        a = a.origin(),
        b = b.origin(),
        // Extra tables may point at mock A by this placeholder.
        extra = extra.replace("MOCK_A_ORIGIN", &a.origin()),
    )
}

async fn setup_with(db: Db, extra: &str) -> Setup {
    let a = MockOpenAi::start("a", KEY_A).await.unwrap();
    let b = MockOpenAi::start("b", KEY_B).await.unwrap();
    let config = config(&a, &b, extra);
    setup_from(db, a, b, &config).await
}

/// The same, with the whole configuration given.
async fn setup_from(db: Db, a: MockOpenAi, b: MockOpenAi, config: &str) -> Setup {
    let server = TestServer::start_gateway(db, config, &[("BACKUP_KEY", KEY_B)])
        .await
        .unwrap();
    let api = server.api();
    api.post("/admin/v1/secrets")
        .token(&server.owner_token)
        .json(&json!({"project": "default", "name": "upstream-a", "value": KEY_A}))
        .send()
        .await
        .expect(200);
    let key = api
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "app", "scopes": ["models:*"]}),
        )
        .await
        .secret;
    Setup { server, a, b, key }
}

async fn setup(db: Db) -> Setup {
    setup_with(db, "").await
}

async fn chat(api: &Api, key: &str, body: Value) -> keygate_testkit::Reply {
    api.post("/v1/chat/completions")
        .token(key)
        .json(&body)
        .send()
        .await
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

/// Waits (up to 2.5 s) until `done` holds; the caller asserts afterwards.
async fn eventually(done: impl Fn() -> bool) {
    for _ in 0..50 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the usage log has written at least `n` records, and returns the report.
async fn usage(s: &Setup, group_by: &str, n: u64) -> Value {
    let api = s.server.api();
    for _ in 0..100 {
        let report = api
            .get(&format!("/admin/v1/usage?group_by={group_by}"))
            .token(&s.server.owner_token)
            .send()
            .await
            .expect(200)
            .body;
        let total: u64 = report["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["requests"].as_u64().unwrap())
            .sum();
        if total >= n {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("usage records did not arrive");
}

async fn injects_the_credential_and_passes_the_body_through(db: Db) {
    let s = setup(db).await;
    let api = s.server.api();
    let body = json!({
        "model": "chat",
        "messages": [{"role": "user", "content": "hello there"}],
        "temperature": 0.25,
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "x_vendor_field": {"kept": [1, 2, 3]}
    });
    let reply = chat(&api, &s.key, body.clone()).await.expect(200);
    assert_eq!(reply.body["object"], "chat.completion");
    assert!(
        reply.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello from a"),
        "{}",
        reply.text
    );
    let seen = &s.a.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY_A}").as_str()),
        "the vault's credential goes upstream"
    );
    assert!(
        !seen.headers.iter().any(|(_, v)| v.contains(&s.key)),
        "the keygate key never goes upstream"
    );
    let mut expected = body;
    expected["model"] = json!("gpt-4o-mini");
    assert_eq!(seen.json(), expected, "only the model changes on the way");

    let report = usage(&s, "model", 1).await;
    assert_eq!(report["truncated"], false);
    let row = &report["data"][0];
    assert_eq!(row["group"], "chat");
    assert_eq!(row["requests"], 1);
    assert!(row["prompt_tokens"].as_u64().unwrap() > 0);
    // gpt-4o-mini has a shipped price, so the request has a cost.
    assert_eq!(row["unpriced_requests"], 0);
    assert!(row["cost_micros"].as_i64().unwrap() > 0, "{report}");
}

async fn refuses_bad_requests_in_openai_shape(db: Db) {
    let s = setup(db).await;
    let api = s.server.api();
    let unknown = chat(&api, &s.key, hello("nope")).await;
    unknown.clone().expect_error(404, "model_not_found");
    assert_eq!(unknown.body["error"]["type"], "not_found_error");
    assert_eq!(unknown.body["error"]["param"], "model");

    let narrow = api
        .create_key(
            &s.server.owner_token,
            json!({"project": "default", "name": "narrow", "scopes": ["models:embed"]}),
        )
        .await
        .secret;
    chat(&api, &narrow, hello("chat"))
        .await
        .expect_error(403, "scope_denied");
    // The attempt outside the key's scopes is in the usage records (beside the unknown model).
    let report = usage(&s, "model", 2).await;
    assert_eq!(report["data"][0]["group"], "chat");
    assert_eq!(report["data"][0]["errors"], 1);
    // A key without the scope cannot probe which models exist.
    chat(&api, &narrow, hello("nope"))
        .await
        .expect_error(403, "scope_denied");

    // A suspended key is refused with its own code, and works again once resumed.
    let paused = api
        .create_key(
            &s.server.owner_token,
            json!({"project": "default", "name": "paused", "scopes": ["models:*"]}),
        )
        .await;
    api.post(&format!("/admin/v1/keys/{}/suspend", paused.id))
        .token(&s.server.owner_token)
        .json(&json!({"reason": "spike"}))
        .send()
        .await
        .expect(200);
    let refused = chat(&api, &paused.secret, hello("chat")).await;
    refused.clone().expect_error(401, "key_suspended");
    assert_eq!(refused.body["error"]["type"], "authentication_error");

    let no_key = api
        .post("/v1/chat/completions")
        .json(&hello("chat"))
        .send()
        .await;
    no_key.expect_error(401, "unauthenticated");
    chat(&api, "kg_live_notakey", hello("chat"))
        .await
        .expect_error(401, "key_malformed");

    let missing = chat(&api, &s.key, json!({"model": "chat"})).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["error"]["param"], "messages");
    let not_json = api
        .post("/v1/chat/completions")
        .token(&s.key)
        .body("{nope")
        .send()
        .await;
    not_json.expect_error(400, "invalid_json");
    assert_eq!(s.a.request_count(), 0, "nothing reached the upstream");
}

async fn falls_back_when_the_primary_fails(db: Db) {
    let s = setup(db).await;
    let api = s.server.api();
    // First try and the one retry both fail: the fallback group answers.
    for _ in 0..2 {
        s.a.push(MockReply::Error {
            status: 500,
            code: String::new(),
            message: "boom".into(),
            retry_after: None,
        });
    }
    let reply = chat(&api, &s.key, hello("chat")).await.expect(200);
    assert!(
        reply.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello from b")
    );
    assert_eq!(
        s.a.request_count(),
        2,
        "one try and one retry on the primary"
    );
    let seen = &s.b.requests()[0];
    assert_eq!(seen.json()["model"], "backup-model");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY_B}").as_str())
    );

    // A third fault opens the primary's breaker: the next request skips it entirely.
    s.a.push(MockReply::Error {
        status: 503,
        code: String::new(),
        message: "down".into(),
        retry_after: None,
    });
    s.a.push(MockReply::Error {
        status: 503,
        code: String::new(),
        message: "down".into(),
        retry_after: None,
    });
    chat(&api, &s.key, hello("chat")).await.expect(200);
    let before = s.a.request_count();
    chat(&api, &s.key, hello("chat")).await.expect(200);
    assert_eq!(
        s.a.request_count(),
        before,
        "the open breaker keeps requests away"
    );
}

async fn a_fallback_needs_its_own_scope(db: Db) {
    let s = setup(db).await;
    let api = s.server.api();
    let only_chat = api
        .create_key(
            &s.server.owner_token,
            json!({"project": "default", "name": "chat only", "scopes": ["models:chat"]}),
        )
        .await
        .secret;
    for _ in 0..2 {
        s.a.push(MockReply::Error {
            status: 500,
            code: String::new(),
            message: "boom".into(),
            retry_after: None,
        });
    }
    chat(&api, &only_chat, hello("chat"))
        .await
        .expect_error(503, "all_deployments_failed");
    assert_eq!(
        s.b.request_count(),
        0,
        "`chat-backup` is a model this key may not use"
    );
    // A key that may use it is served by it, and the metrics count the fallback.
    for _ in 0..2 {
        s.a.push(MockReply::Error {
            status: 500,
            code: String::new(),
            message: "boom".into(),
            retry_after: None,
        });
    }
    chat(&api, &s.key, hello("chat")).await.expect(200);
    assert_eq!(s.b.request_count(), 1);
    let metrics = api.get("/metrics").send().await.expect(200).text;
    assert!(
        metrics.contains(
            "keygate_gateway_fallbacks_total{gen_ai_request_model=\"chat\",fallback=\"chat-backup\"} 1"
        ),
        "{metrics}"
    );
}

async fn retries_after_a_rate_limit(db: Db) {
    let s = setup(db).await;
    let api = s.server.api();
    s.a.push(MockReply::Error {
        status: 429,
        code: "rate_limit_exceeded".into(),
        message: "slow down".into(),
        retry_after: Some(1),
    });
    let started = std::time::Instant::now();
    let reply = chat(&api, &s.key, hello("chat")).await.expect(200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert!(
        reply.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello from a"),
        "the same deployment answered after waiting"
    );
    assert_eq!(s.a.request_count(), 2);
    assert_eq!(s.b.request_count(), 0);
}

async fn a_hanging_upstream_times_out_then_falls_back(db: Db) {
    let s = setup_with(
        db,
        r#"
        [model_groups.brief]
        deployments = [{ provider = "a", model = "gpt-4o-mini", timeouts = { total_ms = 300 } }]
        fallbacks = ["chat-backup"]
        retries = 0
        "#,
    )
    .await;
    let api = s.server.api();
    // A stream's first event must come within `first_byte_ms` (400 ms for `chat`): two
    // attempts time out, then the fallback answers.
    s.a.push(MockReply::Hang);
    s.a.push(MockReply::Hang);
    let started = std::time::Instant::now();
    let mut body = hello("chat");
    body["stream"] = json!(true);
    let events = Events::open(&s, body).await.all().await;
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "two 400 ms timeouts"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"model\":\"backup-model\"")),
        "the fallback answered: {events:?}"
    );

    // A non-streamed answer is bounded by `total_ms`.
    s.a.push(MockReply::Hang);
    let started = std::time::Instant::now();
    let reply = chat(&api, &s.key, hello("brief")).await.expect(200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        reply.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello from b")
    );
}

async fn garbage_and_outages_have_stable_codes(db: Db) {
    let s = setup_with(
        db,
        r#"
        [model_groups.solo]
        deployments = [{ provider = "a", model = "gpt-4o-mini" }]
        retries = 0

        [model_groups.solo-b]
        deployments = [{ provider = "b", model = "backup-model" }]
        retries = 0
        "#,
    )
    .await;
    let api = s.server.api();
    // A client error upstream (400) is passed through as the provider wrote it.
    s.a.push(MockReply::Error {
        status: 400,
        code: "context_length_exceeded".into(),
        message: "too long".into(),
        retry_after: None,
    });
    chat(&api, &s.key, hello("solo"))
        .await
        .expect_error(400, "context_length_exceeded");

    s.a.push(MockReply::Garbage);
    chat(&api, &s.key, hello("solo"))
        .await
        .expect_error(502, "upstream_invalid_response");

    s.a.push(MockReply::Error {
        status: 500,
        code: "server_error".into(),
        message: "internal".into(),
        retry_after: None,
    });
    let down = chat(&api, &s.key, hello("solo")).await;
    down.clone().expect_error(503, "all_deployments_failed");
    assert!(down.message().contains("a/gpt-4o-mini"), "{}", down.text);
    assert!(down.message().contains("500"), "{}", down.text);
    assert!(!down.text.contains(KEY_A), "no credential in the error");

    // An upstream 401 is the deployment's problem, not the client's: never passed on.
    s.a.push(MockReply::Error {
        status: 401,
        code: "invalid_api_key".into(),
        message: format!("Incorrect API key provided: {KEY_A}"),
        retry_after: None,
    });
    let auth = chat(&api, &s.key, hello("solo")).await;
    assert_eq!(auth.status, 503, "{}", auth.text);
    assert!(!auth.text.contains(KEY_A));
    // That was the third fault in a row: the breaker is open.
    chat(&api, &s.key, hello("solo"))
        .await
        .expect_error(503, "no_healthy_deployment");

    // A rate limit longer than keygate waits goes back to the client with its Retry-After.
    s.b.push(MockReply::Error {
        status: 429,
        code: "rate_limit_exceeded".into(),
        message: "slow".into(),
        retry_after: Some(30),
    });
    let limited = chat(&api, &s.key, hello("solo-b")).await;
    limited.clone().expect_error(429, "upstream_rate_limited");
    assert_eq!(limited.header("retry-after"), Some("30"));
}

/// Reads a streamed response as it arrives, event by event.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(s: &Setup, body: Value) -> Self {
        let response = reqwest::Client::new()
            .post(s.server.url("/v1/chat/completions"))
            .bearer_auth(&s.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's data, or `None` at the end of the stream.
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                return Some(event.trim_end().trim_start_matches("data: ").to_owned());
            }
            let chunk = self.response.chunk().await.ok()??;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn all(mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(event) = self.next().await {
            out.push(event);
        }
        out
    }
}

async fn streams_with_usage_only_when_asked(db: Db) {
    let s = setup(db).await;
    let mut plain = hello("chat");
    plain["stream"] = json!(true);
    let events = Events::open(&s, plain.clone()).await.all().await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(events.len() > 3, "{events:?}");
    assert!(
        !events.iter().any(|e| e.contains("\"choices\":[]")),
        "keygate asked for usage for itself; the client did not get it: {events:?}"
    );
    let upstream = s.a.requests()[0].json();
    assert_eq!(upstream["stream_options"]["include_usage"], true);

    let mut asked = plain;
    asked["stream_options"] = json!({"include_usage": true});
    let events = Events::open(&s, asked).await.all().await;
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let report = usage_wait(&s, 2).await;
    assert_eq!(report["data"][0]["unpriced_requests"], 0);
    assert!(report["data"][0]["completion_tokens"].as_u64().unwrap() > 0);
}

async fn usage_wait(s: &Setup, n: u64) -> Value {
    usage(s, "model", n).await
}

async fn streams_are_not_buffered(db: Db) {
    let s = setup(db).await;
    let release = Arc::new(tokio::sync::Notify::new());
    s.a.push(MockReply::Gated {
        first: "first".into(),
        release: release.clone(),
        rest: "and the rest".into(),
    });
    let mut body = hello("chat");
    body["stream"] = json!(true);
    let mut events = Events::open(&s, body).await;
    let first = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("the first chunk arrives while the upstream still holds the next one")
        .unwrap();
    assert!(first.contains("first"), "{first}");
    release.notify_one();
    let rest = events.all().await;
    assert_eq!(rest.last().unwrap(), "[DONE]");
}

async fn a_broken_stream_ends_with_an_error_and_is_not_retried(db: Db) {
    let s = setup(db).await;
    s.a.push(MockReply::Cut { chunks: 2 });
    let mut body = hello("chat");
    body["stream"] = json!(true);
    let events = Events::open(&s, body).await.all().await;
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_interrupted");
    assert_eq!(s.a.request_count(), 1, "bytes reached the client: no retry");
    assert_eq!(s.b.request_count(), 0);
}

async fn a_client_that_leaves_cancels_the_upstream(db: Db) {
    let s = setup(db).await;
    s.a.push(MockReply::Paced {
        text: "one two three four five six seven eight nine ten".into(),
        gap: Duration::from_millis(200),
    });
    let mut body = hello("chat");
    body["stream"] = json!(true);
    let mut events = Events::open(&s, body).await;
    events.next().await.unwrap();
    drop(events);
    eventually(|| s.a.abandoned_streams() == 1).await;
    assert_eq!(
        s.a.abandoned_streams(),
        1,
        "the upstream stream was dropped too"
    );
    let report = usage(&s, "model", 1).await;
    assert_eq!(
        report["data"][0]["errors"], 1,
        "recorded as closed by the client"
    );
}

async fn a_client_that_gives_up_cancels_a_pending_upstream_request(db: Db) {
    let s = setup_with(
        db,
        r#"
        [model_groups.patient]
        deployments = [{ provider = "a", model = "gpt-4o-mini", timeouts = { total_ms = 30000 } }]
        "#,
    )
    .await;
    s.a.push(MockReply::Hang);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gave_up = client
        .post(s.server.url("/v1/chat/completions"))
        .bearer_auth(&s.key)
        .json(&hello("patient"))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client timed out");
    eventually(|| s.a.dropped_hangs() == 1).await;
    assert_eq!(
        s.a.dropped_hangs(),
        1,
        "the upstream request went away with the client, long before its 30 s timeout"
    );
}

async fn a_refused_connection_fails_over(db: Db) {
    let s = setup_with(
        db,
        r#"
        [providers.dead]
        kind = "openai-compatible"
        base_url = "http://127.0.0.1:1/v1"

        [model_groups.resilient]
        deployments = [
          { provider = "dead", model = "m", weight = 100, timeouts = { connect_ms = 200 } },
          { provider = "b", model = "backup-model" },
        ]
        "#,
    )
    .await;
    let api = s.server.api();
    let reply = chat(&api, &s.key, hello("resilient")).await.expect(200);
    assert!(
        reply.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello from b")
    );
}

async fn embeddings_and_models(db: Db) {
    let s = setup(db).await;
    let api = s.server.api();
    let reply = api
        .post("/v1/embeddings")
        .token(&s.key)
        .json(&json!({"model": "embed", "input": ["a", "b"], "encoding_format": "float"}))
        .send()
        .await
        .expect(200);
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(s.a.requests()[0].path, "/v1/embeddings");

    let models = api.get("/v1/models").token(&s.key).send().await.expect(200);
    let ids: Vec<&str> = models.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["chat", "chat-backup", "embed"]);
    let narrow = api
        .create_key(
            &s.server.owner_token,
            json!({"project": "default", "name": "narrow", "scopes": ["models:embed"]}),
        )
        .await
        .secret;
    let models = api
        .get("/v1/models")
        .token(&narrow)
        .send()
        .await
        .expect(200);
    assert_eq!(models.body["data"].as_array().unwrap().len(), 1);
    api.get("/v1/models/embed")
        .token(&narrow)
        .send()
        .await
        .expect(200);
    api.get("/v1/models/chat")
        .token(&narrow)
        .send()
        .await
        .expect_error(404, "model_not_found");
}

async fn weighted_round_robin_spreads_by_weight(db: Db) {
    let s = setup_with(
        db,
        r#"
        [model_groups.spread]
        deployments = [
          { provider = "a", model = "gpt-4o-mini", weight = 3 },
          { provider = "b", model = "backup-model", weight = 1 },
        ]
        "#,
    )
    .await;
    let api = s.server.api();
    for _ in 0..8 {
        chat(&api, &s.key, hello("spread")).await.expect(200);
    }
    assert_eq!((s.a.request_count(), s.b.request_count()), (6, 2));
}

async fn azure_takes_its_deployment_url_and_api_key_header(db: Db) {
    let s = setup_with(
        db,
        r#"
        [providers.azure]
        kind = "azure"
        base_url = "MOCK_A_ORIGIN"
        api_version = "2024-10-21"
        credential = "secret::upstream-a"

        [model_groups.az]
        deployments = [{ provider = "azure", model = "prod-4o" }]
        "#,
    )
    .await;
    chat(&s.server.api(), &s.key, hello("az")).await.expect(200);
    let seen = &s.a.requests()[0];
    assert_eq!(seen.path, "/openai/deployments/prod-4o/chat/completions");
    assert_eq!(seen.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(seen.header("api-key"), Some(KEY_A));
    assert_eq!(seen.header("authorization"), None);
}

async fn a_stream_that_goes_quiet_is_cut_off(db: Db) {
    let s = setup_with(
        db,
        r#"
        [model_groups.quiet]
        deployments = [{ provider = "b", model = "backup-model", timeouts = { chunk_gap_ms = 150 } }]
        "#,
    )
    .await;
    s.b.push(MockReply::Paced {
        text: "one two three".into(),
        gap: std::time::Duration::from_millis(600),
    });
    let mut body = hello("quiet");
    body["stream"] = json!(true);
    let events = Events::open(&s, body).await.all().await;
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_interrupted");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("150 ms"),
        "{last}"
    );
}

async fn streams_without_reported_usage_are_counted(db: Db) {
    let s = setup(db).await;
    // Provider b is a generic OpenAI-compatible server: keygate does not ask it for usage,
    // and this one sends none.
    let mut body = hello("chat-backup");
    body["stream"] = json!(true);
    let events = Events::open(&s, body).await.all().await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(s.b.requests()[0].json().get("stream_options").is_none());
    let report = usage(&s, "model", 1).await;
    let row = &report["data"][0];
    assert_eq!(row["group"], "chat-backup");
    assert!(row["prompt_tokens"].as_u64().unwrap() >= 3, "{report}");
    assert!(row["completion_tokens"].as_u64().unwrap() > 0, "{report}");
}

async fn bodies_are_bounded(db: Db) {
    let s = setup_with(db, "").await;
    let api = s.server.api();
    let huge = "x".repeat(9 * 1024 * 1024);
    let reply = chat(
        &api,
        &s.key,
        json!({"model": "chat", "messages": [{"role": "user", "content": huge}]}),
    )
    .await;
    reply.expect_error(413, "payload_too_large");
    assert_eq!(s.a.request_count(), 0);
}

keygate_testkit::on_both_databases!(
    azure_takes_its_deployment_url_and_api_key_header,
    a_stream_that_goes_quiet_is_cut_off,
    streams_without_reported_usage_are_counted,
    bodies_are_bounded,
    injects_the_credential_and_passes_the_body_through,
    refuses_bad_requests_in_openai_shape,
    falls_back_when_the_primary_fails,
    a_fallback_needs_its_own_scope,
    retries_after_a_rate_limit,
    a_hanging_upstream_times_out_then_falls_back,
    garbage_and_outages_have_stable_codes,
    streams_with_usage_only_when_asked,
    streams_are_not_buffered,
    a_broken_stream_ends_with_an_error_and_is_not_retried,
    a_client_that_leaves_cancels_the_upstream,
    a_client_that_gives_up_cancels_a_pending_upstream_request,
    a_refused_connection_fails_over,
    embeddings_and_models,
    weighted_round_robin_spreads_by_weight,
);
