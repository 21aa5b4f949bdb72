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

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keygate_testkit::{Db, TestStore};
use process::{ServerProcess, text};
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

async fn verify(http: &reqwest::Client, node: &str, key: &str) -> Value {
    http.post(format!("{node}/v1/keys/verify"))
        .json(&serde_json::json!({"key": key}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
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

    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let node = if task % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        let (http, key) = (http.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..20 {
                let reply = verify(&http, &node, &key).await;
                match reply["code"].as_str().unwrap() {
                    "valid" => admitted += 1,
                    "rate_limited" => {}
                    other => panic!("unexpected {other}: {reply}"),
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
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

/// A Redis of this test's own, which it can kill and start again on the same port.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (Debian package redis-server)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            port,
            child: Some(child),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `node`'s log holds `line`.
async fn logged(node: &ServerProcess, line: &str) {
    for _ in 0..100 {
        if node.log().contains(line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{line}` never logged:\n{}", node.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_follows_the_policy_then_recovers() {
    let mut redis = OwnRedis::start(free_port());
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

    redis.kill();
    // The default policy counts on the node and says so in its log.
    assert_eq!(verify(&http, &local.url, &key).await["code"], "valid");
    logged(&local, "Redis is unreachable").await;
    // The closed policy refuses until Redis is back.
    let refused = verify(&http, &closed.url, &key).await;
    assert_eq!(refused["valid"], false, "{refused}");
    assert_eq!(refused["code"], "limits_unavailable");

    let _redis = OwnRedis::start(redis.port);
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
    logged(&local, "Redis answers again").await;
}
