//! Alerts as webhooks: a key suspended and resumed reaches a receiver that checks each
//! delivery with `standardwebhooks` (and refuses it tampered or replayed); a receiver that fails
//! three times gets exactly one accepted delivery; deliveries pending when keygate is killed
//! are made after it restarts; dead deliveries are listed and replayed.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::process::{ServerProcess, free_port, text};
use crate::receiver::Receiver;

/// Starts keygate in `dir` with receivers on loopback allowed and `retries` as the waits.
fn start(dir: &Path, retries: &[&str]) -> ServerProcess {
    let config = dir.join("keygate.toml");
    let waits: Vec<String> = retries.iter().map(|w| format!("\"{w}\"")).collect();
    std::fs::write(
        &config,
        format!(
            "webhooks_allow_private = true\nwebhook_retries = [{}]\n",
            waits.join(", ")
        ),
    )
    .unwrap();
    ServerProcess::start(dir, &[("KEYGATE_CONFIG", config.to_str().unwrap())])
}

fn cli_json(server: &ServerProcess, owner: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = server.cli(&args, Some(owner), None);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Adds an endpoint for `events`; returns its id after the receiver learnt its secret.
fn subscribe(server: &ServerProcess, owner: &str, receiver: &Receiver, events: &[&str]) -> String {
    let mut args = vec!["webhooks", "create", "--endpoint", receiver.url.as_str()];
    for event in events {
        args.extend(["--event", event]);
    }
    let created = cli_json(server, owner, &args);
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{created}");
    receiver.trust(secret);
    created["webhook"]["id"].as_str().unwrap().to_owned()
}

fn new_key(server: &ServerProcess, owner: &str) -> String {
    let created = cli_json(server, owner, &["keys", "create", "--name", "watched"]);
    created["key"]["id"].as_str().unwrap().to_owned()
}

fn deliveries(server: &ServerProcess, owner: &str, webhook: &str, state: &str) -> Vec<Value> {
    let page = cli_json(
        server,
        owner,
        &["webhooks", "deliveries", webhook, "--state", state],
    );
    page["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_signed_retried_and_accepted_once() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), 3, None);
    let server = start(dir.path(), &["200ms", "200ms", "200ms", "200ms", "200ms"]);
    let owner = server.owner_token();
    let webhook = subscribe(
        &server,
        &owner,
        &receiver,
        &["key.suspended", "key.resumed"],
    );
    let key = new_key(&server, &owner);
    cli_json(
        &server,
        &owner,
        &["keys", "suspend", &key, "--reason", "spend spike"],
    );
    let suspended = receiver
        .wait_for("key.suspended", 1, Duration::from_secs(20))
        .await;
    cli_json(
        &server,
        &owner,
        &["keys", "resume", &key, "--reason", "fixed"],
    );
    let resumed = receiver
        .wait_for("key.resumed", 1, Duration::from_secs(20))
        .await;

    let event = &suspended[0];
    assert_eq!(event["data"]["key_id"], key.as_str());
    assert_eq!(event["data"]["reason"], "spend spike");
    assert_eq!(resumed[0]["data"]["reason"], "fixed");
    // The three failed attempts carried the same webhook-id as the accepted one.
    let requests = receiver.requests();
    let first_three: Vec<&Value> = requests.iter().take(3).collect();
    assert!(
        first_three
            .iter()
            .all(|r| r["status"] == 500 && r["id"] == event["id"]),
        "{requests:#?}"
    );
    for accepted in receiver.accepted() {
        assert_eq!(accepted["duplicate"], false, "{accepted}");
        assert_eq!(accepted["tampered_refused"], true, "{accepted}");
        assert_eq!(accepted["replay_refused"], true, "{accepted}");
    }
    // Exactly one accepted delivery each, and nothing the endpoint did not subscribe to.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let kinds: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|a| a["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["key.suspended", "key.resumed"]);
    let delivered = deliveries(&server, &owner, &webhook, "delivered");
    let attempts: Vec<u64> = delivered
        .iter()
        .map(|d| d["attempts"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 4], "newest first: {delivered:#?}");
    assert!(
        !server
            .log()
            .contains(&std::fs::read_to_string(&receiver.secret_file).unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_pending_at_a_crash_are_made_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Nothing listens yet: every attempt before the crash is refused.
    let retries = [
        "300ms", "300ms", "1s", "1s", "2s", "2s", "3s", "3s", "5s", "5s",
    ];
    let mut server = start(dir.path(), &retries);
    let owner = server.owner_token();
    let url = format!("http://127.0.0.1:{port}/hooks/keygate");
    let created = cli_json(
        &server,
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
    let key = new_key(&server, &owner);
    cli_json(
        &server,
        &owner,
        &["keys", "revoke", &key, "--reason", "leaked"],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pending = deliveries(&server, &owner, &webhook, "pending");
        if pending
            .first()
            .is_some_and(|d| d["attempts"].as_u64() >= Some(1))
        {
            assert!(
                pending[0]["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("could not be reached"),
                "{pending:#?}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no failed attempt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.crash();

    let receiver = Receiver::start(dir.path(), 0, Some(port));
    receiver.trust(created["secret"].as_str().unwrap());
    let server = start(dir.path(), &retries);
    let revoked = receiver
        .wait_for("key.revoked", 1, Duration::from_secs(30))
        .await;
    assert_eq!(revoked[0]["data"]["key_id"], key.as_str());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.accepted().len(), 1, "{:#?}", receiver.requests());
    assert_eq!(deliveries(&server, &owner, &webhook, "delivered").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_deliveries_are_listed_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    // Two attempts in all, both refused: the delivery is dead.
    let receiver = Receiver::start(dir.path(), 2, None);
    let server = start(dir.path(), &["100ms"]);
    let owner = server.owner_token();
    let webhook = subscribe(&server, &owner, &receiver, &["admin_token.created"]);
    let sent = cli_json(&server, &owner, &["webhooks", "test", &webhook]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let dead = deliveries(&server, &owner, &webhook, "dead");
        if !dead.is_empty() {
            break dead;
        }
        assert!(std::time::Instant::now() < deadline, "never dead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead[0]["event_id"], sent["event_id"]);
    assert_eq!(dead[0]["event_type"], "webhook.test");
    assert_eq!(dead[0]["attempts"], 2);
    assert_eq!(dead[0]["last_status"], 500);
    assert_eq!(dead[0]["last_error"], "the endpoint answered 500");

    let delivery = dead[0]["id"].as_str().unwrap();
    cli_json(&server, &owner, &["webhooks", "replay", &webhook, delivery]);
    let accepted = receiver
        .wait_for("webhook.test", 1, Duration::from_secs(20))
        .await;
    assert_eq!(accepted[0]["id"], sent["event_id"], "the same webhook-id");
    assert_eq!(accepted[0]["data"]["webhook_id"], webhook.as_str());
    assert!(deliveries(&server, &owner, &webhook, "dead").is_empty());

    // Paused, an endpoint receives nothing; its deliveries wait and go out once it is resumed.
    cli_json(
        &server,
        &owner,
        &["webhooks", "update", &webhook, "--disable"],
    );
    let token = cli_json(
        &server,
        &owner,
        &[
            "admin", "token", "create", "--role", "viewer", "--name", "ci",
        ],
    );
    assert!(token.is_object());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        receiver
            .accepted()
            .iter()
            .all(|a| a["type"] != "admin_token.created")
    );
    cli_json(
        &server,
        &owner,
        &["webhooks", "update", &webhook, "--enable"],
    );
    let created = receiver
        .wait_for("admin_token.created", 1, Duration::from_secs(20))
        .await;
    assert_eq!(created[0]["data"]["role"], "viewer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_entry_changed_after_it_was_written_is_announced() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), 0, None);
    let mut server = start(dir.path(), &["200ms"]);
    let owner = server.owner_token();
    subscribe(
        &server,
        &owner,
        &receiver,
        &["audit.verification_failed", "admin_token.created"],
    );
    // While keygate is down, an admin token is issued on the store, and someone edits the
    // audit entry that records it before keygate read it.
    server.stop();
    let token = cli_json(
        &server,
        &owner,
        &[
            "admin", "token", "create", "--role", "viewer", "--name", "ci",
        ],
    );
    assert!(token.is_object());
    let db = format!(
        "sqlite://{}",
        dir.path().join("keygate-data/keygate.db").display()
    );
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    let changed = sqlx::query(
        "UPDATE audit_events SET details = '{\"role\":\"owner\"}' \
         WHERE seq = (SELECT MAX(seq) FROM audit_events)",
    )
    .execute(&mut conn)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(changed, 1);
    conn.close().await.unwrap();
    let server = start(dir.path(), &["200ms"]);
    let broken = receiver
        .wait_for("audit.verification_failed", 1, Duration::from_secs(20))
        .await;
    assert!(
        broken[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("was changed after it was written"),
        "{broken:#?}"
    );
    // The edited entry is still announced for what it says, and nothing else broke.
    let created = receiver
        .wait_for("admin_token.created", 1, Duration::from_secs(20))
        .await;
    assert_eq!(created[0]["data"]["role"], "owner");
    drop(server);
}
