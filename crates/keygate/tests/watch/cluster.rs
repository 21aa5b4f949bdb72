//! Detection across nodes: two `keygate serve` processes share PostgreSQL and a Redis of this
//! test's own. A key's requests spread over both nodes — each node's share under the spike's
//! floor — are judged together and the spike is recorded once, not once per node; failed
//! authentications from one source, split between the nodes, block it on both, audited once.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keygate_testkit::{Db, MockOpenAi, OwnRedis, TestStore};
use serde_json::{Value, json};

use crate::process::{ServerProcess, text};

const UPSTREAM_KEY: &str = "sk-upstream-cluster-0123456789";

/// Waits, if needed, so that the next few seconds fall in one wall-clock minute: the spike is
/// a minute's figure.
async fn within_one_minute() {
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second > 45 {
        tokio::time::sleep(Duration::from_secs(61 - second)).await;
    }
}

fn cli_json(node: &ServerProcess, owner: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = node.cli(&args, Some(owner), None);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_judge_traffic_together_and_announce_once() {
    let redis = OwnRedis::start(None);
    let store = TestStore::new(Db::Postgres).await.unwrap();
    let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[providers.up]
kind = "openai"
base_url = "{}/v1"
credential = "env::UPSTREAM_KEY"

[model_groups.chat]
deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]

[anomalies]
learning = "0s"
min_requests_per_minute = 6
cooldown = "1h"
auth_failures_per_minute = 6
source_block = "2m"
"#,
            upstream.origin()
        ),
    )
    .unwrap();
    let url = redis.url();
    let env = [
        ("KEYGATE_CONFIG", config.to_str().unwrap()),
        ("UPSTREAM_KEY", UPSTREAM_KEY),
        ("KEYGATE_DATABASE_URL", store.url.as_str()),
        ("KEYGATE_REDIS_URL", url.as_str()),
    ];
    let a = ServerProcess::start(dir.path(), &env);
    let b = ServerProcess::start(dir.path(), &env);
    for node in [&a, &b] {
        node.logged("anomaly detection is shared across nodes through Redis")
            .await;
    }
    let owner = a.owner_token();
    let made = a.cli(
        &[
            "keys",
            "create",
            "--name",
            "spread",
            "--scope",
            "models:chat",
            "--quiet",
        ],
        Some(&owner),
        None,
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let key = text(&made.stdout).trim().to_owned();

    let http = reqwest::Client::new();
    let chat = |node: &ServerProcess, key: &str| {
        http.post(format!("{}/v1/chat/completions", node.url))
            .bearer_auth(key)
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    // Three requests on each node: neither sees the floor of six, the cluster does.
    within_one_minute().await;
    for node in [&a, &b, &a, &b, &a, &b] {
        assert_eq!(chat(node, &key).await.unwrap().status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let listed = loop {
        let listed = cli_json(&b, &owner, &["anomalies", "list"]);
        if listed["data"].as_array().is_some_and(|l| !l.is_empty()) {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "no spike found; node A:\n{}\nnode B:\n{}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let spike = &listed["data"][0];
    assert_eq!(spike["detector"], "request_spike");
    assert_eq!(spike["evidence"]["this_minute"], 6.0);
    // More of the same spike, on both nodes, is the same anomaly: still one, once every node
    // has written its requests.
    for node in [&a, &b] {
        assert_eq!(chat(node, &key).await.unwrap().status(), 200);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listed = cli_json(&a, &owner, &["anomalies", "list"]);
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");

    // Three bad keys on each node, from one source: blocked on both.
    for node in [&a, &b, &a, &b, &a, &b] {
        let reply = chat(node, "kg_live_guessing").await.unwrap();
        assert_eq!(reply.status(), 401);
    }
    for node in [&b, &a] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let reply = chat(node, &key).await.unwrap();
            if reply.status() == 429 {
                let body: Value = reply.json().await.unwrap();
                assert_eq!(body["error"]["code"], "source_blocked");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} not blocked; log:\n{}",
                node.url,
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let audit = cli_json(&a, &owner, &["audit", "list", "--action", "source.blocked"]);
    let entries = audit["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["target"], "127.0.0.1");
    assert_eq!(entries[0]["details"]["failures_this_minute"], 6);
    for node in [&a, &b] {
        assert!(!node.log().contains(&key), "a key is in the log");
    }
}

/// Webhook deliveries and the announcing of audit events run on one node at a time and move
/// when that node dies: two nodes share PostgreSQL, the first holds the `alerts.announce`
/// lease, the receiver is down while both try, the lease holder is killed, a key is revoked on
/// the survivor (announced only by it, once the dead node's lease has lapsed), and the
/// survivor delivers every event — each exactly once — when the receiver comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_move_to_the_surviving_node_and_are_made_once() {
    use crate::process::free_port;
    use crate::receiver::Receiver;

    let store = TestStore::new(Db::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        "webhooks_allow_private = true\nwebhook_retries = [\"300ms\", \"300ms\", \"1s\", \"1s\", \"2s\", \"2s\", \"3s\", \"3s\", \"5s\"]\n",
    )
    .unwrap();
    let env = [
        ("KEYGATE_CONFIG", config.to_str().unwrap()),
        ("KEYGATE_DATABASE_URL", store.url.as_str()),
    ];
    let mut a = ServerProcess::start(dir.path(), &env);
    let owner = a.owner_token();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks/keygate");
    let created = cli_json(
        &a,
        &owner,
        &[
            "webhooks",
            "create",
            "--endpoint",
            &url,
            "--event",
            "key.revoked",
        ],
    );
    let webhook = created["webhook"]["id"].as_str().unwrap().to_owned();
    let revoke = |node: &ServerProcess, name: &str| {
        let key = cli_json(node, &owner, &["keys", "create", "--name", name]);
        let id = key["key"]["id"].as_str().unwrap().to_owned();
        cli_json(node, &owner, &["keys", "revoke", &id, "--reason", "test"]);
        id
    };
    let tried_all = |node: &ServerProcess, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pending = cli_json(
                node,
                &owner,
                &["webhooks", "deliveries", &webhook, "--state", "pending"],
            );
            let tried = pending["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["attempts"].as_u64() >= Some(1))
                .count();
            if tried == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not every delivery was tried: {pending}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // A alone announces the first event, so it holds the announcing lease, renewed every
    // second, before B starts.
    let mut revoked = vec![revoke(&a, "k0")];
    tried_all(&a, 1);
    let b = ServerProcess::start(dir.path(), &env);
    for (n, node) in [&b, &a, &b, &a].into_iter().enumerate() {
        revoked.push(revoke(node, &format!("k{}", n + 1)));
    }
    // Every delivery was tried (and refused) before the crash.
    tried_all(&b, revoked.len());
    a.crash();
    // Announced by B alone, once A's lease (10 s) has lapsed.
    revoked.push(revoke(&b, "after-the-crash"));
    let receiver = Receiver::start(dir.path(), 0, Some(port));
    receiver.trust(created["secret"].as_str().unwrap());
    let delivered = receiver
        .wait_for("key.revoked", revoked.len(), Duration::from_secs(60))
        .await;
    let mut ids: Vec<String> = delivered
        .iter()
        .map(|d| d["data"]["key_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    revoked.sort();
    assert_eq!(ids, revoked);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.accepted().len(),
        revoked.len(),
        "an event was delivered twice: {:#?}",
        receiver.requests()
    );
}
