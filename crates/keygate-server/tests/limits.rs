//! A key's limits over real sockets: request rates refuse the request past the limit with
//! 429 `rate_limited`, `Retry-After` and OpenAI's `x-ratelimit-*` headers; a concurrency cap
//! refuses a request beyond it with `concurrency_limited` until one ends; the verify API
//! counts and reports; refused requests are recorded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use keygate_server::limits::{Limiter, OnRedisFailure};
use keygate_testkit::{Db, MockOpenAi, MockReply, TestServer};
use serde_json::{Value, json};

const UPSTREAM_KEY: &str = "sk-upstream-limits-0123456789";

struct Setup {
    server: TestServer,
    upstream: MockOpenAi,
}

async fn setup(db: Db) -> Setup {
    setup_with(db, "").await
}

/// With `extra` tables in the configuration (prices, more groups).
async fn setup_with(db: Db, extra: &str) -> Setup {
    setup_limited(db, extra, Limiter::new()).await
}

fn redis_url() -> String {
    std::env::var("KEYGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Counting limits with `limiter`.
async fn setup_limited(db: Db, extra: &str, limiter: Limiter) -> Setup {
    setup_at(db, extra, limiter, Arc::new(keygate_core::SystemClock)).await
}

/// On `clock`.
async fn setup_at(
    db: Db,
    extra: &str,
    limiter: Limiter,
    clock: Arc<dyn keygate_core::Clock>,
) -> Setup {
    let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
    let config = format!(
        r#"
        [providers.up]
        kind = "openai"
        base_url = "{}/v1"
        credential = "env::UPSTREAM_KEY"

        [model_groups.chat]
        deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]

        [model_groups.mystery]
        deployments = [{{ provider = "up", model = "mystery-model" }}]
        {extra}
        "#,
        upstream.origin()
    );
    let server = TestServer::start_gateway_at(
        db,
        &config,
        &[("UPSTREAM_KEY", UPSTREAM_KEY)],
        limiter,
        clock,
    )
    .await
    .unwrap();
    Setup { server, upstream }
}

async fn key_with(s: &Setup, limits: Value) -> String {
    s.server
        .api()
        .create_key(
            &s.server.owner_token,
            json!({"project": "default", "name": "limited", "scopes": ["models:*"], "limits": limits}),
        )
        .await
        .secret
}

fn hello(stream: bool) -> Value {
    json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

async fn chat(s: &Setup, key: &str, stream: bool) -> keygate_testkit::Reply {
    s.server
        .api()
        .post("/v1/chat/completions")
        .token(key)
        .json(&hello(stream))
        .send()
        .await
}

async fn request_rates_refuse_past_the_limit(db: Db) {
    let s = setup(db).await;
    let key = key_with(
        &s,
        json!({"requests": [{"limit": 3, "per": "minute"}, {"limit": 100, "per": "day"}]}),
    )
    .await;
    for remaining in ["2", "1", "0"] {
        let reply = chat(&s, &key, false).await.expect(200);
        assert_eq!(reply.header("x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(
            reply.header("x-ratelimit-remaining-requests"),
            Some(remaining)
        );
        assert!(reply.header("x-ratelimit-reset-requests").is_some());
    }
    let refused = chat(&s, &key, false).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    assert_eq!(refused.body["error"]["type"], "rate_limit_error");
    assert_eq!(
        refused.header("retry-after"),
        Some("20"),
        "one request every 20 s"
    );
    assert_eq!(
        refused.header("x-should-retry"),
        None,
        "worth retrying soon"
    );
    assert_eq!(refused.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(
        s.upstream.request_count(),
        3,
        "the refused request never went upstream"
    );

    // Anthropic's clients get Anthropic's shape.
    let refused = s
        .server
        .api()
        .post("/v1/messages")
        .header("x-api-key", &key)
        .json(&json!({"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["error"]["type"], "rate_limit_error");
    assert_eq!(refused.body["error"]["code"], "rate_limited");

    // Another key is not limited by this one's use.
    let other = key_with(&s, json!({"requests": [{"limit": 3, "per": "minute"}]})).await;
    chat(&s, &other, false).await.expect(200);

    // Refusals are in the usage records.
    let api = s.server.api();
    let mut errors = 0;
    for _ in 0..100 {
        let report = api
            .get("/admin/v1/usage?group_by=key")
            .token(&s.server.owner_token)
            .send()
            .await
            .expect(200)
            .body;
        errors = report["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["errors"].as_u64().unwrap())
            .sum();
        if errors >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(errors, 2, "both refusals were recorded");
}

async fn a_concurrency_cap_holds_until_a_request_ends(db: Db) {
    let s = setup(db).await;
    let key = key_with(&s, json!({"concurrency": 1})).await;
    let release = Arc::new(tokio::sync::Notify::new());
    s.upstream.push(MockReply::Gated {
        first: "first".into(),
        release: release.clone(),
        rest: " and the rest".into(),
    });
    let api = s.server.api();
    let held = {
        let api = api.clone();
        let key = key.clone();
        tokio::spawn(async move {
            api.post("/v1/chat/completions")
                .token(&key)
                .json(&hello(true))
                .send()
                .await
        })
    };
    // Wait until the first stream is running upstream.
    for _ in 0..100 {
        if s.upstream.request_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = chat(&s, &key, false).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], "concurrency_limited");
    assert!(refused.header("retry-after").is_some());
    release.notify_one();
    let first = held.await.unwrap().expect(200);
    assert!(first.text.contains("[DONE]"));
    chat(&s, &key, false).await.expect(200);
}

async fn verify_counts_and_reports_the_rate(db: Db) {
    let s = setup(db).await;
    let key = key_with(&s, json!({"requests": [{"limit": 2, "per": "hour"}]})).await;
    let api = s.server.api();
    let first = api.verify(&key, None, None).await;
    assert_eq!(first["valid"], true);
    assert_eq!(first["ratelimit"]["limit"], 2);
    assert_eq!(first["ratelimit"]["remaining"], 1);
    let second = api.verify(&key, None, None).await;
    assert_eq!(second["ratelimit"]["remaining"], 0);
    let third = api.verify(&key, None, None).await;
    assert_eq!(third["valid"], false);
    assert_eq!(third["code"], "rate_limited");
    assert_eq!(third["ratelimit"]["remaining"], 0);
    assert!(third["ratelimit"]["reset_ms"].as_u64().unwrap() > 0);

    let unlimited = key_with(&s, json!({})).await;
    let reply = api.verify(&unlimited, None, None).await;
    assert_eq!(reply["valid"], true);
    assert!(reply["ratelimit"].is_null());
}

async fn chat_with(s: &Setup, key: &str, body: Value) -> keygate_testkit::Reply {
    s.server
        .api()
        .post("/v1/chat/completions")
        .token(key)
        .json(&body)
        .send()
        .await
}

/// The key's budget as the verify API shows it.
async fn budget_of(s: &Setup, key: &str) -> Value {
    let state = s.server.api().verify(key, None, None).await;
    state["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "budget")
        .unwrap()
        .clone()
}

fn header_number(reply: &keygate_testkit::Reply, name: &str) -> u64 {
    reply
        .header(name)
        .unwrap_or_else(|| panic!("{name} is missing"))
        .parse()
        .unwrap()
}

async fn token_rates_reserve_then_settle(db: Db) {
    let s = setup(db).await;
    let key = key_with(&s, json!({"tokens": [{"limit": 1000, "per": "minute"}]})).await;
    let ask = |max: u64| json!({"model": "chat", "max_tokens": max, "messages": [{"role": "user", "content": "hi"}]});
    s.upstream.push(MockReply::Text("one two three".into()));
    let first = chat_with(&s, &key, ask(50)).await.expect(200);
    assert_eq!(header_number(&first, "x-ratelimit-limit-tokens"), 1000);
    assert!(first.header("x-ratelimit-reset-tokens").is_some());
    // The prompt's estimate and the 50 allowed are reserved.
    let reserved = 1000 - header_number(&first, "x-ratelimit-remaining-tokens");
    assert!(reserved > 50 && reserved < 80, "{reserved}");
    // Settled at the reported 4 + 3 tokens before the answer left.
    s.upstream.push(MockReply::Text("one two three".into()));
    let second = chat_with(&s, &key, ask(50)).await.expect(200);
    // A thousand a minute refills a token every 60 ms: one or two may come back between the
    // two requests on a busy machine.
    let remaining = header_number(&second, "x-ratelimit-remaining-tokens");
    assert!(
        (1000 - 7 - reserved..=1000 - 5 - reserved).contains(&remaining),
        "{remaining} remaining after {reserved} reserved and 7 settled"
    );
    let too_big = chat_with(&s, &key, ask(5_000)).await;
    assert_eq!(too_big.status, 429, "{}", too_big.text);
    assert_eq!(too_big.body["error"]["code"], "rate_limited");
    assert!(
        too_big.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens per minute")
    );
    assert_eq!(
        too_big.header("retry-after"),
        None,
        "waiting would not help"
    );
    assert_eq!(
        too_big.header("x-should-retry"),
        Some("false"),
        "the SDKs do not retry"
    );
    assert_eq!(s.upstream.request_count(), 2, "refused before the upstream");
}

/// Prices of a thousand dollars a million tokens: a thousand micro-dollars a token.
const DEAR: &str = r#"
    [prices."gpt-4o-mini"]
    input = "1000"
    output = "1000"
"#;

async fn budgets_refuse_before_the_upstream_and_end_streams(db: Db) {
    let s = setup_with(db, DEAR).await;
    // 200 000 micro-dollars: two hundred tokens.
    let key = key_with(&s, json!({"budgets": [{"usd": "0.20", "per": "day"}]})).await;
    let ask = |max: u64| json!({"model": "chat", "max_tokens": max, "messages": [{"role": "user", "content": "hi"}]});
    s.upstream.push(MockReply::Text("one two three".into()));
    chat_with(&s, &key, ask(100)).await.expect(200);
    // 7 000 spent: 190 more tokens of output could not be paid for.
    let refused = chat_with(&s, &key, ask(190)).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], "budget_exceeded");
    assert!(
        refused.header("retry-after").is_some(),
        "the next day may pass it"
    );
    assert_eq!(s.upstream.request_count(), 1, "refused before the upstream");

    // A stream that names no most output starts on what is left, and ends when it runs out.
    let mut words: Vec<String> = (0..400).map(|n| format!("w{n}")).collect();
    words.push("FINALWORD".into());
    s.upstream.push(MockReply::Text(words.join(" ")));
    let stream = chat_with(
        &s,
        &key,
        json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    assert!(stream.text.contains("\" w1\""), "{}", stream.text);
    assert!(
        stream.text.contains("\"code\":\"budget_exceeded\""),
        "{}",
        stream.text
    );
    assert!(!stream.text.contains("FINALWORD"), "{}", stream.text);
    assert!(!stream.text.contains("[DONE]"));
    let budget = budget_of(&s, &key).await;
    assert_eq!(budget["limit"], 200_000);
    assert_eq!(budget["limit_usd"], "0.200000");
    let remaining = budget["remaining"].as_u64().unwrap();
    assert!(
        remaining < 193_000 - 50_000,
        "the stream was charged: {budget}"
    );

    // With a budget, a model without a known price is refused rather than let through.
    let unpriced = chat_with(
        &s,
        &key,
        json!({"model": "mystery", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(unpriced.status, 403, "{}", unpriced.text);
    assert_eq!(unpriced.body["error"]["code"], "price_unknown");
    assert_eq!(s.upstream.request_count(), 2);
}

/// A stream that costs a few cents under a budget of up to a dollar runs to its end, on this
/// node and through Redis: the first step asked for (1 024 tokens, a dollar at this price)
/// is more than the budget holds, and a refusal of it shrinks the step instead of ending
/// the stream.
async fn streams_well_within_their_budget_run_to_their_end(db: Db) {
    for shared in [false, true] {
        let limiter = if shared {
            Limiter::shared(&redis_url(), OnRedisFailure::Closed)
        } else {
            Limiter::new()
        };
        let s = setup_limited(db, DEAR, limiter).await;
        for (usd, left) in [("1", 1_000_000u64), ("0.03", 30_000)] {
            let key = key_with(&s, json!({"budgets": [{"usd": usd, "per": "day"}]})).await;
            s.upstream.push(MockReply::Text(
                "Hello from the other side, FINALWORD".into(),
            ));
            let stream = chat_with(
                &s,
                &key,
                json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await
            .expect(200);
            let mode = if shared { "redis" } else { "local" };
            assert!(
                !stream.text.contains("budget_exceeded"),
                "{mode}, ${usd}: {}",
                stream.text
            );
            assert!(
                stream.text.contains("FINALWORD") && stream.text.contains("[DONE]"),
                "{mode}, ${usd}: {}",
                stream.text
            );
            // Charged what the upstream reported, once the settlement has landed.
            let mut remaining = 0;
            for _ in 0..100 {
                remaining = budget_of(&s, &key).await["remaining"].as_u64().unwrap();
                if remaining + 30_000 > left && remaining < left - 5_000 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(
                remaining + 30_000 > left && remaining < left - 5_000,
                "{mode}, ${usd}: a few cents charged, {remaining} left"
            );
        }
        // The metrics say where limits were counted, and time the checks through Redis.
        let metrics = s.server.api().get("/metrics").send().await.expect(200).text;
        let mode = if shared { "redis" } else { "local" };
        assert!(
            metrics.contains(&format!("keygate_limits_backend{{mode=\"{mode}\"}} 1")),
            "{metrics}"
        );
        assert_eq!(
            metrics.contains("keygate_limits_redis_duration_seconds_count{outcome=\"ok\"}"),
            shared,
            "{metrics}"
        );
    }
}

async fn quotas_count_uses_and_verify_shows_every_limit(db: Db) {
    let s = setup(db).await;
    let key = key_with(
        &s,
        json!({"quota": {"amount": 2, "per": "day"}, "budgets": [{"usd": "1.50", "per": "month"}],
               "tokens": [{"limit": 500, "per": "minute"}]}),
    )
    .await;
    let api = s.server.api();
    let first = api.verify(&key, None, None).await;
    assert_eq!(first["valid"], true, "{first}");
    let limits = first["limits"].as_array().unwrap();
    let find = |kind: &str| limits.iter().find(|l| l["kind"] == kind).unwrap().clone();
    assert_eq!(find("quota")["remaining"], 1);
    assert_eq!(find("quota")["per"], "day");
    assert_eq!(find("quota")["owner"], "key");
    assert_eq!(find("budget")["remaining_usd"], "1.500000");
    assert_eq!(find("budget")["per"], "month");
    assert_eq!(
        find("tokens")["remaining"],
        500,
        "a verification uses no tokens"
    );
    chat(&s, &key, false).await.expect(200);
    let spent = api.verify(&key, None, None).await;
    assert_eq!(spent["valid"], false);
    assert_eq!(spent["code"], "quota_exhausted");
    let refused = chat(&s, &key, false).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["error"]["code"], "quota_exhausted");
    let wait = header_number(&refused, "retry-after");
    assert!(wait > 0 && wait <= 86_400, "until the next UTC day: {wait}");
    assert_eq!(refused.header("x-should-retry"), Some("false"));
    // The quota's end is announced once, however many requests it refuses.
    let exhausted = announced(&s, "quota.exhausted", 1).await;
    assert_eq!(exhausted[0]["details"]["amount"], 2);
    assert_eq!(exhausted[0]["details"]["window"], "day");
    chat(&s, &key, false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(announced(&s, "quota.exhausted", 1).await.len(), 1);
}

/// The audit events `action` once there are `count` of them (or more: then the test fails
/// on the count it checks).
async fn announced(s: &Setup, action: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> = s
            .server
            .api()
            .audit_events(&s.server.owner_token)
            .await
            .into_iter()
            .filter(|e| e["action"] == action)
            .collect();
        if found.len() >= count || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A graded budget: its thresholds are announced once per window; past its throttle point
/// the key is slowed to the throttle's rate instead of stopped; the next window starts whole.
async fn budget_thresholds_alert_once_per_window_and_throttle(db: Db) {
    // 2026-02-14T10:00:00Z
    let clock = keygate_core::ManualClock::starting_at(keygate_core::Timestamp::from_millis(
        1_771_063_200_000,
    ));
    let s = setup_at(db, DEAR, Limiter::new(), Arc::new(clock.clone())).await;
    // 100 000 micro-dollars; each call costs 7 000 (4 + 3 tokens).
    let key = key_with(
        &s,
        json!({"budgets": [{"usd": "0.10", "per": "day", "alert_at": [20, 50],
                            "throttle_at": 50, "throttle": {"limit": 2, "per": "minute"}}]}),
    )
    .await;
    let ask =
        json!({"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let call = || async {
        s.upstream.push(MockReply::Text("one two three".into()));
        chat_with(&s, &key, ask.clone()).await
    };
    for _ in 0..3 {
        call().await.expect(200);
    }
    let twenty = announced(&s, "budget.threshold", 1).await;
    assert_eq!(twenty.len(), 1, "{twenty:?}");
    let details = &twenty[0]["details"];
    assert_eq!(details["percent"], 20, "{details}");
    // Limits are read as they stand, requests in flight included: three calls spent, or
    // (when the second's record is looked at while the third runs) two spent and the third's
    // 12 000 (7 + 5 tokens) reserved.
    assert!(
        ["0.021000", "0.026000"].contains(&details["used_usd"].as_str().unwrap_or_default()),
        "{details}"
    );
    assert_eq!(details["limit_usd"], "0.100000");
    assert_eq!(details["owner"], "key");
    assert_eq!(details["window"], "day");
    assert_eq!(details["window_start"], "2026-02-14T00:00:00Z");
    for _ in 3..8 {
        call().await.expect(200);
    }
    // 56 000 spent: past 50 %, announced, and the key is slowed to two calls a minute — from
    // the eighth call on when the seventh's record was looked at while the eighth ran.
    let throttled = announced(&s, "budget.throttled", 1).await;
    assert_eq!(throttled.len(), 1);
    assert_eq!(throttled[0]["details"]["throttle"], "2/minute");
    let mut served = 0;
    let slowed = loop {
        let answer = call().await;
        if answer.status != 200 || served == 2 {
            break answer;
        }
        served += 1;
    };
    assert!((1..=2).contains(&served), "two a minute: {served} more");
    assert_eq!(slowed.status, 429, "{}", slowed.text);
    assert_eq!(slowed.body["error"]["code"], "budget_throttled");
    let wait = header_number(&slowed, "retry-after");
    assert!((1..=30).contains(&wait), "the next of two a minute: {wait}");
    let state = s.server.api().verify(&key, None, None).await;
    let limits = state["limits"].as_array().unwrap();
    assert!(
        limits
            .iter()
            .any(|l| l["kind"] == "budget_throttle" && l["limit"] == 2),
        "{state}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let thresholds = announced(&s, "budget.threshold", 2).await;
    let percents: Vec<&Value> = thresholds
        .iter()
        .map(|e| &e["details"]["percent"])
        .collect();
    assert_eq!(percents, [20, 50], "each once in the window");
    assert_eq!(announced(&s, "budget.throttled", 1).await.len(), 1);

    // The next day: the budget is whole, the throttle gone, and the thresholds count again.
    clock.advance(Duration::from_secs(86_400));
    for _ in 0..3 {
        call().await.expect(200);
    }
    let thresholds = announced(&s, "budget.threshold", 3).await;
    assert_eq!(thresholds.len(), 3);
    assert_eq!(thresholds[2]["details"]["percent"], 20);
    assert_eq!(
        thresholds[2]["details"]["window_start"],
        "2026-02-15T00:00:00Z"
    );
}

/// Prepaid credits: drawn down by spend, never reset, refused when too little is left (no
/// point waiting), and topped up through the admin API, for keys and projects.
async fn prepaid_credits_draw_down_and_are_topped_up(db: Db) {
    let s = setup_with(db, DEAR).await;
    // 20 000 micro-dollars; a call reserves 12 000 (7 + 5 tokens: the prompt is estimated
    // with the tokenizer) and spends 7 000.
    let key = key_with(&s, json!({"credits": "0.02"})).await;
    let ask =
        json!({"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let call = || async {
        s.upstream.push(MockReply::Text("one two three".into()));
        chat_with(&s, &key, ask.clone()).await
    };
    call().await.expect(200);
    call().await.expect(200);
    let refused = call().await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], "credits_exhausted");
    assert_eq!(refused.header("retry-after"), None, "waiting never helps");
    assert_eq!(refused.header("x-should-retry"), Some("false"));
    assert_eq!(s.upstream.request_count(), 2, "refused before the upstream");
    let state = s.server.api().verify(&key, None, None).await;
    let credits = state["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "credits")
        .unwrap()
        .clone();
    assert_eq!(credits["remaining_usd"], "0.006000", "{credits}");
    assert_eq!(credits["per"], "total");

    let api = s.server.api();
    let owner = &s.server.owner_token;
    let key_id = state["key_id"].as_str().unwrap();
    let topped = api
        .post(&format!("/admin/v1/keys/{key_id}/credits"))
        .token(owner)
        .json(&json!({"usd": "0.01"}))
        .send()
        .await
        .expect(200);
    assert_eq!(topped.body["limits"]["credits"], "0.030000");
    // The refused call's answer is still queued at the upstream: this call gets it. 21 000,
    // then (asking for less, to fit what is left) 28 000 of 30 000 spent: a tenth or less
    // is left. Limits are read as they stand: when the first call's record is looked at while
    // the second runs, 21 000 spent and its 8 000 (7 + 1) reserved leave 1 000.
    chat_with(&s, &key, ask.clone()).await.expect(200);
    s.upstream.push(MockReply::Text("one two three".into()));
    chat_with(
        &s,
        &key,
        json!({"model": "chat", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let low = loop {
        let low = announced(&s, "credits.low", 1).await;
        let of_top_up = low
            .iter()
            .any(|e| e["details"]["granted_usd"] == "0.030000");
        if of_top_up || tokio::time::Instant::now() > deadline {
            break low;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Once per amount granted: for the top-up, and for the first grant only when the first
    // call's record was looked at while the second ran (7 000 spent, 12 000 reserved).
    let (after, before): (Vec<&Value>, Vec<&Value>) = low
        .iter()
        .partition(|e| e["details"]["granted_usd"] == "0.030000");
    assert_eq!(after.len(), 1, "{low:?}");
    assert!(
        before.len() <= 1
            && before
                .iter()
                .all(|e| e["details"]["granted_usd"] == "0.020000"),
        "{low:?}"
    );
    let remaining = after[0]["details"]["remaining_usd"]
        .as_str()
        .unwrap_or_default();
    assert!(["0.002000", "0.001000"].contains(&remaining), "{remaining}");
    call().await.expect_error(429, "credits_exhausted");
    // Spent once per amount granted: before the top-up, and after it.
    let exhausted = announced(&s, "credits.exhausted", 2).await;
    let granted: Vec<&Value> = exhausted
        .iter()
        .map(|e| &e["details"]["granted_usd"])
        .collect();
    assert_eq!(granted, ["0.020000", "0.030000"]);
    for bad in [json!({"usd": "0"}), json!({"usd": "-1"}), json!({"usd": 5})] {
        let reply = api
            .post(&format!("/admin/v1/keys/{key_id}/credits"))
            .token(owner)
            .json(&bad)
            .send()
            .await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
    }
    let project = api
        .post("/admin/v1/projects/default/credits")
        .token(owner)
        .json(&json!({"usd": "1.50"}))
        .send()
        .await
        .expect(200);
    assert_eq!(project.body["limits"]["credits"], "1.500000");
    let audit = api.audit_events(owner).await;
    let added: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "credits.add")
        .collect();
    assert_eq!(added.len(), 2);
    assert_eq!(added[0]["details"]["added_usd"], "0.010000");
    assert_eq!(added[0]["details"]["credits_before_usd"], "0.020000");
}

keygate_testkit::on_both_databases!(
    request_rates_refuse_past_the_limit,
    a_concurrency_cap_holds_until_a_request_ends,
    verify_counts_and_reports_the_rate,
    token_rates_reserve_then_settle,
    budgets_refuse_before_the_upstream_and_end_streams,
    streams_well_within_their_budget_run_to_their_end,
    quotas_count_uses_and_verify_shows_every_limit,
    budget_thresholds_alert_once_per_window_and_throttle,
    prepaid_credits_draw_down_and_are_topped_up,
);
