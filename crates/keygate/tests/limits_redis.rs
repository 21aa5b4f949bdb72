//! Limits exact across nodes: two `keygate serve` processes sharing PostgreSQL and Redis,
//! hammered concurrently against one key's limit, admit exactly that many; when Redis dies,
//! each node follows its policy (count locally, or refuse) and goes back to sharing once Redis
//! answers again. The shared tests use the machine's Redis (`KEYGATE_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`); the outage test runs a Redis of its own (`redis-server`) so it can
//! kill it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use std::time::Duration;

use keygate_testkit::{Api, Db, MockOpenAi, MockReply, OwnRedis, TestStore};
use process::{ServerProcess, priced_gateway_config, text, verify};
use serde_json::Value;

fn redis_url() -> String {
    std::env::var("KEYGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn create_key(node: &ServerProcess, owner: &str, rate: &str) -> String {
    let out = node.cli(
        &[
            "keys", "create", "--name", "limited", "--rate", rate, "--quiet",
        ],
        Some(owner),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// Verifies `key` from `tasks` concurrent tasks spread over `nodes`, `each` times per task;
/// every refusal must be `refused`. Returns how many were admitted.
async fn hammer(nodes: &[&str], key: &str, tasks: usize, each: usize, refused: &str) -> u64 {
    let http = reqwest::Client::new();
    let mut running = Vec::new();
    for task in 0..tasks {
        let node = nodes[task % nodes.len()].to_owned();
        let (http, key, refused) = (http.clone(), key.to_owned(), refused.to_owned());
        running.push(tokio::spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..each {
                let reply = verify(&http, &node, &key).await;
                match reply["code"].as_str().unwrap() {
                    "valid" => admitted += 1,
                    code if code == refused => {}
                    other => panic!("unexpected {other}: {reply}"),
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for task in running {
        admitted += task.await.unwrap();
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_admit_exactly_the_limit() {
    let store = TestStore::new(Db::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let redis = redis_url();
    let env = [
        ("KEYGATE_DATABASE_URL", store.url.as_str()),
        ("KEYGATE_REDIS_URL", redis.as_str()),
    ];
    let a = ServerProcess::start(dir.path(), &env);
    let b = ServerProcess::start(dir.path(), &env);
    let owner = a.owner_token();
    let limit = 40;
    let key = create_key(&a, &owner, &format!("{limit}/hour"));

    let admitted = hammer(&[&a.url, &b.url], &key, 8, 20, "rate_limited").await;
    assert_eq!(
        admitted, limit,
        "160 verifications on two nodes against 40 an hour"
    );
    for node in [&a, &b] {
        assert!(
            node.log()
                .contains("limits are shared across nodes through Redis")
        );
    }
}

const UPSTREAM_KEY: &str = "sk-upstream-two-nodes-0123456789";

/// Two nodes serving the gateway (an OpenAI mock upstream, a thousand micro-dollars a token)
/// on one PostgreSQL and the machine's Redis.
struct Gateway {
    _store: TestStore,
    _dir: tempfile::TempDir,
    upstream: MockOpenAi,
    a: ServerProcess,
    b: ServerProcess,
    owner: String,
}

async fn gateway() -> Gateway {
    let store = TestStore::new(Db::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
    let config = priced_gateway_config(dir.path(), &upstream.origin());
    let redis = redis_url();
    let env = [
        ("KEYGATE_DATABASE_URL", store.url.as_str()),
        ("KEYGATE_REDIS_URL", redis.as_str()),
        ("KEYGATE_CONFIG", config.to_str().unwrap()),
        ("UPSTREAM_KEY", UPSTREAM_KEY),
    ];
    let a = ServerProcess::start(dir.path(), &env);
    let b = ServerProcess::start(dir.path(), &env);
    let owner = a.owner_token();
    Gateway {
        _store: store,
        _dir: dir,
        upstream,
        a,
        b,
        owner,
    }
}

impl Gateway {
    async fn key(&self, limits: Value) -> String {
        Api::new(&self.a.url)
            .create_key(
                &self.owner,
                serde_json::json!({"project": "default", "name": "two-nodes",
                    "scopes": ["models:*"], "limits": limits}),
            )
            .await
            .secret
    }

    fn node(&self, n: usize) -> String {
        if n.is_multiple_of(2) {
            self.a.url.clone()
        } else {
            self.b.url.clone()
        }
    }
}

async fn chat(http: &reqwest::Client, node: &str, key: &str, stream: bool) -> (u16, String) {
    let reply = http
        .post(format!("{node}/v1/chat/completions"))
        .bearer_auth(key)
        .json(
            &serde_json::json!({"model": "chat", "max_tokens": 40, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

/// The state of the key's limit of `kind` as the verify API shows it, once a verification
/// (which uses a request of the key's quota, if any) went through.
async fn limit_of(http: &reqwest::Client, node: &str, key: &str, kind: &str) -> Value {
    let reply = verify(http, node, key).await;
    reply["limits"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"))
        .iter()
        .find(|l| l["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {reply}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_tokens_budgets_and_slots_are_exact_across_two_nodes() {
    let g = gateway().await;
    let http = reqwest::Client::new();

    // A quota: 80 verifications on both nodes, 30 uses a day.
    let quota = g
        .key(serde_json::json!({"quota": {"amount": 30, "per": "day"}}))
        .await;
    let admitted = hammer(&[&g.a.url, &g.b.url], &quota, 8, 10, "quota_exhausted").await;
    assert_eq!(
        admitted, 30,
        "80 verifications on two nodes against 30 a day"
    );

    // Requests in flight: two streams held open, one on each node, fill a cap of two.
    let capped = g.key(serde_json::json!({"concurrency": 2})).await;
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    for _ in 0..2 {
        g.upstream.push(MockReply::Gated {
            first: "first".into(),
            release: release.clone(),
            rest: "and the rest".into(),
        });
    }
    let before = g.upstream.request_count();
    let held: Vec<_> = (0..2)
        .map(|n| {
            let (http, node, key) = (http.clone(), g.node(n), capped.clone());
            tokio::spawn(async move { chat(&http, &node, &key, true).await })
        })
        .collect();
    for _ in 0..200 {
        if g.upstream.request_count() == before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in [&g.a.url, &g.b.url] {
        let (status, body) = chat(&http, node, &capped, false).await;
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("concurrency_limited"), "{body}");
    }
    release.notify_waiters();
    release.notify_one();
    release.notify_one();
    for stream in held {
        let (status, body) = stream.await.unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("[DONE]"), "{body}");
    }
    // Both slots came back (released in Redis just after the streams ended).
    let mut status = 0;
    for _ in 0..100 {
        status = chat(&http, &g.b.url, &capped, false).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);

    // Tokens and money: each request reserves its prompt and 40 tokens of output (about
    // 48 000 micro-dollars) and settles at the 7 tokens the upstream reports (4 of prompt,
    // 3 of answer).
    let metered = g
        .key(
            serde_json::json!({"tokens": [{"limit": 1000, "per": "day"}],
            "budgets": [{"usd": "0.50", "per": "day"}]}),
        )
        .await;
    for _ in 0..90 {
        g.upstream.push(MockReply::Text("one two three".into()));
    }
    let mut tasks = Vec::new();
    for task in 0..6 {
        let (http, node, key) = (http.clone(), g.node(task), metered.clone());
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..15 {
                match chat(&http, &node, &key, false).await {
                    (200, _) => admitted += 1,
                    (429, body) => assert!(
                        body.contains("budget_exceeded") || body.contains("rate_limited"),
                        "{body}"
                    ),
                    (status, body) => panic!("unexpected {status}: {body}"),
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    assert!(admitted >= 10, "at least what fits unsettled: {admitted}");
    assert!(
        admitted * 7_000 <= 500_000,
        "never over the budget: {admitted}"
    );
    // Settlements reach Redis just after each answer: wait until both nodes agree.
    let (mut tokens, mut budget) = (Value::Null, Value::Null);
    for _ in 0..100 {
        tokens = limit_of(&http, &g.a.url, &metered, "tokens").await;
        budget = limit_of(&http, &g.b.url, &metered, "budget").await;
        if budget["remaining"] == 500_000 - 7_000 * admitted
            && tokens["remaining"] == 1_000 - 7 * admitted
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        budget["remaining"],
        500_000 - 7_000 * admitted,
        "every node charged one shared budget: {budget}"
    );
    assert_eq!(tokens["remaining"], 1_000 - 7 * admitted, "{tokens}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_follows_the_policy_then_recovers() {
    let mut redis = OwnRedis::start(None);
    let store = TestStore::new(Db::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let shared = [
        ("KEYGATE_DATABASE_URL", store.url.as_str()),
        ("KEYGATE_REDIS_URL", url.as_str()),
    ];
    let local = ServerProcess::start(dir.path(), &shared);
    let mut closed_env = shared.to_vec();
    closed_env.push(("KEYGATE_LIMITS_ON_REDIS_FAILURE", "closed"));
    let closed = ServerProcess::start(dir.path(), &closed_env);
    let owner = local.owner_token();
    let key = create_key(&local, &owner, "1000/hour");
    let http = reqwest::Client::new();
    for node in [&local, &closed] {
        assert_eq!(verify(&http, &node.url, &key).await["code"], "valid");
    }

    assert_eq!(readiness(&http, &local).await, "redis");

    redis.kill();
    // The default policy counts on the node and says so in its log and its readiness.
    assert_eq!(verify(&http, &local.url, &key).await["code"], "valid");
    local.logged("Redis is unreachable").await;
    assert_eq!(readiness(&http, &local).await, "redis_unreachable");
    // The closed policy refuses until Redis is back.
    let refused = verify(&http, &closed.url, &key).await;
    assert_eq!(refused["valid"], false, "{refused}");
    assert_eq!(refused["code"], "limits_unavailable");

    redis.restart();
    // Both go back to Redis by themselves (after at most a two-second rest).
    let mut recovered = false;
    for _ in 0..80 {
        if verify(&http, &closed.url, &key).await["code"] == "valid" {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the closed node admits again:\n{}", closed.log());
    verify(&http, &local.url, &key).await;
    local.logged("Redis answers again").await;
    assert_eq!(readiness(&http, &local).await, "redis");
}

/// Where `node` says its limits are counted (`GET /readyz`, which answers 200 either way).
async fn readiness(http: &reqwest::Client, node: &ServerProcess) -> String {
    let reply = http
        .get(format!("{}/readyz", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: serde_json::Value = reply.json().await.unwrap();
    body["limits"].as_str().unwrap().to_owned()
}

/// A group's kept answers hold across nodes with Redis: an answer made through one node is
/// served by the other, byte for byte, without going upstream again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_answers_are_shared_across_two_nodes() {
    let g = gateway().await;
    let key = g.key(serde_json::json!({})).await;
    let http = reqwest::Client::new();
    let ask = |node: String| {
        let http = http.clone();
        let key = key.clone();
        async move {
            let reply = http
                .post(format!("{node}/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&serde_json::json!({"model": "kept",
                    "messages": [{"role": "user", "content": "What is kept?"}]}))
                .send()
                .await
                .unwrap();
            let cache = reply
                .headers()
                .get("x-keygate-cache")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (cache, reply.text().await.unwrap())
        }
    };
    let (first, made) = ask(g.node(0)).await;
    assert_eq!(first.as_deref(), Some("miss"));
    // Kept in Redis off the request's path: a moment later the other node has it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (second, served) = ask(g.node(1)).await;
    assert_eq!(second.as_deref(), Some("hit"));
    assert_eq!(served, made, "the other node's answer, byte for byte");
    assert_eq!(g.upstream.request_count(), 1);
}
