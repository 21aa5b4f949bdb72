//! Key changes across nodes: two `keygate serve` processes share PostgreSQL and a Redis of this
//! test's own (`redis-server` on a free port, so parallel tests never hear each other's
//! notices). A key cached by node B and suspended, resumed or revoked through node A changes
//! on B at once, not when B's cached copy expires (30 s); a key revoked while Redis is down is refused by B once
//! B subscribes again, because a node that may have missed notices clears its cache. An access
//! token issued by A for the key stops on B with it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use std::time::{Duration, Instant};

use keygate_testkit::{Db, OwnRedis, TestStore};
use process::{ServerProcess, text, verify};

/// What the test-owned Redis requires, and what must never show in a log.
const PASSWORD: &str = "fan-out-secret-0123";

fn create_key(node: &ServerProcess, owner: &str) -> String {
    let out = node.cli(
        &["keys", "create", "--name", "shared", "--quiet"],
        Some(owner),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// `keygate keys revoke|suspend|resume ID` through `node`.
fn change(node: &ServerProcess, owner: &str, action: &str, id: &str) {
    let out = node.cli(
        &["keys", action, id, "--reason", "leaked"],
        Some(owner),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn revoke(node: &ServerProcess, owner: &str, id: &str) {
    change(node, owner, "revoke", id);
}

/// Verifies on `node` until the verdict's code is `code` (from `valid` before it), for at most
/// `within`; returns how long that took.
async fn answers_within(
    http: &reqwest::Client,
    node: &ServerProcess,
    key: &str,
    code: &str,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let reply = verify(http, &node.url, key).await;
        match reply["code"].as_str() {
            Some(seen) if seen == code => return start.elapsed(),
            Some(_) if start.elapsed() < within => {}
            _ => panic!(
                "still {reply} after {:?}; node log:\n{}",
                start.elapsed(),
                node.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn refused_within(
    http: &reqwest::Client,
    node: &ServerProcess,
    key: &str,
    within: Duration,
) -> Duration {
    answers_within(http, node, key, "key_revoked", within).await
}

const SUBSCRIBED: &str = "key changes are shared across nodes through Redis";

/// Two nodes on one fresh PostgreSQL schema and `redis`; both listening for key changes.
async fn two_nodes(
    store: &TestStore,
    dir: &std::path::Path,
    redis: &OwnRedis,
) -> (ServerProcess, ServerProcess) {
    let url = redis.url();
    // One issuer for the cluster, so that a token issued by one node is taken by the other.
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        "[tokens]\nissuer = \"http://keygate.cluster.test\"\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let env = [
        ("KEYGATE_DATABASE_URL", store.url.as_str()),
        ("KEYGATE_REDIS_URL", url.as_str()),
        ("KEYGATE_CONFIG", config.as_str()),
    ];
    let a = ServerProcess::start(dir, &env);
    let b = ServerProcess::start(dir, &env);
    for node in [&a, &b] {
        node.logged(SUBSCRIBED).await;
    }
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_is_honoured_by_the_other_at_once() {
    let redis = OwnRedis::start(Some(PASSWORD));
    let store = TestStore::new(Db::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&store, dir.path(), &redis).await;
    let owner = a.owner_token();
    let key = create_key(&a, &owner);
    let http = reqwest::Client::new();
    // B loads the key and caches it for 30 seconds.
    let first = verify(&http, &b.url, &key).await;
    assert_eq!(first["code"], "valid", "{first}");
    let id = first["key_id"].as_str().unwrap().to_owned();
    // A token issued by A, verified (and its parent cached) by B.
    let issued: serde_json::Value = http
        .post(format!("{}/oauth/token", a.url))
        .basic_auth(&id, Some(&key))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["access_token"].as_str().unwrap().to_owned();
    assert_eq!(verify(&http, &b.url, &token).await["code"], "valid");

    // A suspension and its end reach B within a second each, for the key and its token.
    change(&a, &owner, "suspend", &id);
    answers_within(&http, &b, &key, "key_suspended", Duration::from_secs(1)).await;
    answers_within(&http, &b, &token, "key_suspended", Duration::from_secs(1)).await;
    change(&a, &owner, "resume", &id);
    answers_within(&http, &b, &key, "valid", Duration::from_secs(1)).await;
    answers_within(&http, &b, &token, "valid", Duration::from_secs(1)).await;

    revoke(&a, &owner, &id);

    let took = refused_within(&http, &b, &key, Duration::from_secs(3)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    refused_within(&http, &b, &token, Duration::from_secs(1)).await;
    for node in [&a, &b] {
        assert!(!node.log().contains(PASSWORD), "the Redis password leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_while_redis_is_down_is_honoured_once_it_is_back() {
    let mut redis = OwnRedis::start(Some(PASSWORD));
    let store = TestStore::new(Db::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&store, dir.path(), &redis).await;
    let owner = a.owner_token();
    let key = create_key(&a, &owner);
    let http = reqwest::Client::new();
    let first = verify(&http, &b.url, &key).await;
    assert_eq!(first["code"], "valid", "{first}");
    let id = first["key_id"].as_str().unwrap().to_owned();

    redis.kill();
    b.logged("Redis is unreachable: key changes made on other nodes")
        .await;
    // The admin request does not wait for Redis nor fail with it.
    revoke(&a, &owner, &id);
    assert_eq!(verify(&http, &a.url, &key).await["code"], "key_revoked");
    // B could not hear of it and still serves its cached copy.
    assert_eq!(verify(&http, &b.url, &key).await["code"], "valid");

    redis.restart();
    b.logged("Redis answers again: key changes are shared across nodes")
        .await;
    refused_within(&http, &b, &key, Duration::from_secs(3)).await;
    for node in [&a, &b] {
        assert!(!node.log().contains(PASSWORD), "the Redis password leaked");
    }
}
