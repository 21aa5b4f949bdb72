//! Anomalies as an operator meets them: a key's requests spike through the LLM gateway, the
//! policy suspends it within moments, its next request is refused, webhooks hear
//! `anomaly.detected`, `anomaly.acted` and `key.suspended`, and the anomaly is listed and
//! acknowledged with the CLI.

use std::time::{Duration, Instant};

use keygate_testkit::MockOpenAi;
use serde_json::{Value, json};

use crate::process::{ServerProcess, text, verify};
use crate::receiver::Receiver;

const UPSTREAM_KEY: &str = "sk-upstream-anomaly-0123456789";

fn cli_json(server: &ServerProcess, owner: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = server.cli(&args, Some(owner), None);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A server whose anomaly detectors judge at once: no learning period and a floor of five
/// requests a minute, so the fifth request of a new key is far above its (empty) baseline.
/// `top` goes before the tables, `anomalies` at the end of `[anomalies]`.
pub(crate) struct Spiking {
    pub(crate) server: ServerProcess,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) _upstream: MockOpenAi,
}

impl Spiking {
    pub(crate) async fn start(top: &str, anomalies: &str) -> Self {
        let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("keygate.toml");
        std::fs::write(
            &config,
            format!(
                r#"
{top}

[providers.up]
kind = "openai"
base_url = "{}/v1"
credential = "env::UPSTREAM_KEY"

[model_groups.chat]
deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]

[anomalies]
learning = "0s"
min_requests_per_minute = 5
cooldown = "1h"
{anomalies}
"#,
                upstream.origin()
            ),
        )
        .unwrap();
        let server = ServerProcess::start(
            dir.path(),
            &[
                ("KEYGATE_CONFIG", config.to_str().unwrap()),
                ("UPSTREAM_KEY", UPSTREAM_KEY),
            ],
        );
        Self {
            server,
            dir,
            _upstream: upstream,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_spike_suspends_the_key_and_is_announced() {
    // Bound in this order so that the server stops first, then its upstream and directory go.
    let Spiking {
        dir,
        _upstream,
        server,
    } = Spiking::start(
        "webhooks_allow_private = true\nwebhook_retries = [\"200ms\"]",
        "[anomalies.actions]\nrequest_spike = \"suspend\"",
    )
    .await;
    let owner = server.owner_token();
    let receiver = Receiver::start(dir.path(), 0, None);
    let created = cli_json(
        &server,
        &owner,
        &[
            "webhooks",
            "create",
            "--endpoint",
            &receiver.url,
            "--event",
            "anomaly.detected",
            "--event",
            "anomaly.acted",
            "--event",
            "key.suspended",
        ],
    );
    receiver.trust(created["secret"].as_str().unwrap());
    let made = server.cli(
        &[
            "keys",
            "create",
            "--name",
            "busy",
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
    let chat = || {
        http.post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth(&key)
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(chat().await.unwrap().status(), 200);
    }
    // Within moments (the usage log's next write), the key is suspended.
    let deadline = Instant::now() + Duration::from_secs(10);
    while verify(&http, &server.url, &key).await["code"] != "key_suspended" {
        assert!(
            Instant::now() < deadline,
            "not suspended; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = chat().await.unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "key_suspended");

    let detected = receiver
        .wait_for("anomaly.detected", 1, Duration::from_secs(20))
        .await;
    let data = &detected[0]["data"];
    assert_eq!(data["detector"], "request_spike");
    assert_eq!(data["action"], "suspend");
    assert_eq!(data["outcome"], "suspended");
    assert_eq!(data["evidence"]["this_minute"], 5.0);
    let acted = receiver
        .wait_for("anomaly.acted", 1, Duration::from_secs(20))
        .await;
    assert_eq!(acted[0]["data"]["anomaly_id"], data["anomaly_id"]);
    let suspended = receiver
        .wait_for("key.suspended", 1, Duration::from_secs(20))
        .await;
    assert_eq!(suspended[0]["data"]["actor"], "anomaly:request_spike");
    assert_eq!(suspended[0]["data"]["anomaly_id"], data["anomaly_id"]);

    let open = cli_json(&server, &owner, &["anomalies", "list", "--open"]);
    let listed = &open["data"][0];
    assert_eq!(listed["id"], data["anomaly_id"]);
    assert_eq!(listed["detector"], "request_spike");
    assert_eq!(listed["outcome"], "suspended");
    let id = listed["id"].as_str().unwrap();
    let acked = cli_json(
        &server,
        &owner,
        &[
            "anomalies",
            "ack",
            id,
            "--note",
            "a runaway retry loop; key rotated",
        ],
    );
    assert_eq!(acked["note"], "a runaway retry loop; key rotated");
    let open = cli_json(&server, &owner, &["anomalies", "list", "--open"]);
    assert_eq!(open["data"], json!([]));
    let again = server.cli(&["anomalies", "ack", id], Some(&owner), None);
    assert!(
        text(&again.stderr).contains("already_acknowledged"),
        "{}",
        text(&again.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_bad_keys_blocks_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        "webhooks_allow_private = true\nwebhook_retries = [\"200ms\"]\n\
         [anomalies]\nauth_failures_per_minute = 5\nsource_block = \"2m\"\n",
    )
    .unwrap();
    let server = ServerProcess::start(dir.path(), &[("KEYGATE_CONFIG", config.to_str().unwrap())]);
    let owner = server.owner_token();
    let receiver = Receiver::start(dir.path(), 0, None);
    let created = cli_json(
        &server,
        &owner,
        &[
            "webhooks",
            "create",
            "--endpoint",
            &receiver.url,
            "--event",
            "source.blocked",
        ],
    );
    receiver.trust(created["secret"].as_str().unwrap());
    let made = server.cli(
        &["keys", "create", "--name", "good", "--quiet"],
        Some(&owner),
        None,
    );
    let good = text(&made.stdout).trim().to_owned();
    let http = reqwest::Client::new();
    let chat = |key: String| {
        http.post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth(key)
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    // A guesser: five keys that are not keygate's.
    for i in 0..5 {
        let reply = chat(format!("kg_live_guess{i}")).await.unwrap();
        assert_eq!(reply.status(), 401);
    }
    // From now on the source is refused, a good key included, and told when to come back.
    let refused = chat(good.clone()).await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((100..=120).contains(&wait), "{wait}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "source_blocked");
    // The verify API, which services call for their own clients, is not blocked.
    assert_eq!(verify(&http, &server.url, &good).await["code"], "valid");

    let blocked = receiver
        .wait_for("source.blocked", 1, Duration::from_secs(20))
        .await;
    assert_eq!(blocked[0]["data"]["source"], "127.0.0.1");
    assert_eq!(blocked[0]["data"]["failures_this_minute"], 5);
    let audit = cli_json(
        &server,
        &owner,
        &["audit", "list", "--action", "source.blocked"],
    );
    assert_eq!(audit["data"][0]["target"], "127.0.0.1");
    assert!(!server.log().contains(&good), "a key is in the log");
}

/// A project's own policy over the server's: its spiking key is throttled — cut to the
/// configured rate for a while, on the next request — rather than only alerted on, and a
/// resume lifts the throttle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_policy_throttles_a_spiking_key() {
    let Spiking {
        dir: _dir,
        _upstream,
        server,
    } = Spiking::start(
        "",
        "throttle_for = \"1h\"\nthrottle_rate = \"2/minute\"\n\n\
         [anomalies.actions]\nrequest_spike = \"alert\"",
    )
    .await;
    let owner = server.owner_token();
    let project = cli_json(
        &server,
        &owner,
        &[
            "projects",
            "update",
            "default",
            "--anomaly-action",
            "request_spike=throttle",
        ],
    );
    assert_eq!(
        project["anomaly_actions"],
        json!({"request_spike": "throttle"})
    );
    let refused = server.cli(
        &[
            "projects",
            "update",
            "default",
            "--anomaly-action",
            "request_spike=shout",
        ],
        Some(&owner),
        None,
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("record, alert, throttle or suspend"),
        "{}",
        text(&refused.stderr)
    );
    let made = server.cli(
        &[
            "keys",
            "create",
            "--name",
            "busy",
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
    let key_id = verify(&http, &server.url, &key).await["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let chat = || {
        http.post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth(&key)
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(chat().await.unwrap().status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let throttle = loop {
        let shown = cli_json(&server, &owner, &["keys", "show", &key_id]);
        if !shown["throttle"].is_null() {
            break shown["throttle"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "not throttled; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(throttle["requests"], json!([{"limit": 2, "per": "minute"}]));
    assert!(
        throttle["reason"]
            .as_str()
            .unwrap()
            .starts_with("anomaly request_spike"),
        "{throttle}"
    );
    // Two a minute: the third is refused, and told when to come back.
    let statuses = [
        chat().await.unwrap().status(),
        chat().await.unwrap().status(),
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [200, 200]);
    let slowed = chat().await.unwrap();
    assert_eq!(slowed.status(), 429);
    assert!(slowed.headers().contains_key("retry-after"));
    let body: Value = slowed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let audit = cli_json(
        &server,
        &owner,
        &["audit", "list", "--action", "key.throttle"],
    );
    assert_eq!(audit["data"][0]["target"], key_id.as_str());
    assert_eq!(audit["data"][0]["actor"], "anomaly:request_spike");

    // A resume lifts it at once.
    let resumed = cli_json(
        &server,
        &owner,
        &[
            "keys",
            "resume",
            &key_id,
            "--reason",
            "a load test, announced",
        ],
    );
    assert!(resumed["throttle"].is_null(), "{resumed}");
    assert_eq!(chat().await.unwrap().status(), 200);
}
