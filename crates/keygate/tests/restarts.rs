//! Restarts of a node, on the default SQLite store in the data directory and on PostgreSQL.
//!
//! - Quotas and budgets without Redis: `keygate serve` saves its counts to the database every
//!   two seconds and at shutdown, and restores them at start, so a restart (graceful, or a
//!   kill after the last save) does not make them whole again.
//! - A crash (SIGKILL) under mixed admin and gateway load leaves a consistent store: the
//!   audit chain verifies, every acknowledged admin action is there with its audit event, no
//!   key is half-rotated, and usage loses at most what its last flush had not written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use std::path::Path;
use std::time::Duration;

use keygate_testkit::{Api, Db, MockOpenAi, MockReply, TestStore};
use process::{ServerProcess, priced_gateway_config, text, verify};
use serde_json::Value;

/// How the first server ends.
#[derive(Clone, Copy)]
enum Ending {
    /// SIGTERM: drain, save the counts once more, exit.
    Graceful,
    /// SIGKILL, a few seconds after the last request: only the periodic save has run.
    Killed,
}

/// A key with 3 uses a day, used twice; the server ends as `ending` says and starts again on
/// the same database: one use is left, then none.
async fn a_quota_survives(dir: &Path, env: &[(&str, &str)], ending: Ending) {
    let http = reqwest::Client::new();
    let mut first = ServerProcess::start(dir, env);
    let owner = first.owner_token();
    let out = first.cli(
        &[
            "keys", "create", "--name", "daily", "--quota", "3/day", "--quiet",
        ],
        Some(&owner),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&out.stdout).trim().to_owned();
    for _ in 0..2 {
        let reply = verify(&http, &first.url, &key).await;
        assert_eq!(reply["code"], "valid", "{reply}");
    }
    match ending {
        Ending::Graceful => assert!(first.stop().success(), "{}", first.log()),
        Ending::Killed => {
            // Longer than one save period.
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(first);
        }
    }

    let second = ServerProcess::start(dir, env);
    let reply = verify(&http, &second.url, &key).await;
    assert_eq!(reply["code"], "valid", "the third use of the day: {reply}");
    let reply = verify(&http, &second.url, &key).await;
    assert_eq!(
        reply["code"],
        "quota_exhausted",
        "the restart did not make the quota whole again: {reply}\n{}",
        second.log()
    );
    assert!(
        second
            .log()
            .contains("quota and budget counts restored from the store"),
        "{}",
        second.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_survives_a_graceful_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    // No database URL: the default SQLite file in the data directory.
    a_quota_survives(dir.path(), &[], Ending::Graceful).await;
    assert!(dir.path().join("keygate-data/keygate.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_survives_a_kill_after_the_last_save_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_quota_survives(dir.path(), &[], Ending::Killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_survives_a_graceful_restart_on_postgres() {
    let store = TestStore::new(Db::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = [("KEYGATE_DATABASE_URL", store.url.as_str())];
    a_quota_survives(dir.path(), &env, Ending::Graceful).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_survives_a_kill_after_the_last_save_on_postgres() {
    let store = TestStore::new(Db::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = [("KEYGATE_DATABASE_URL", store.url.as_str())];
    a_quota_survives(dir.path(), &env, Ending::Killed).await;
}

const UPSTREAM_KEY: &str = "sk-upstream-restart-0123456789";

/// A budget spent through the gateway (an OpenAI mock upstream at a thousand micro-dollars a
/// token, reporting 7 tokens an answer) is as spent after a graceful restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_survives_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
    let config = priced_gateway_config(dir.path(), &upstream.origin());
    let env = [
        ("KEYGATE_CONFIG", config.to_str().unwrap()),
        ("UPSTREAM_KEY", UPSTREAM_KEY),
    ];
    let http = reqwest::Client::new();
    let mut first = ServerProcess::start(dir.path(), &env);
    let owner = first.owner_token();
    let key = Api::new(&first.url)
        .create_key(
            &owner,
            serde_json::json!({"project": "default", "name": "metered",
                "scopes": ["models:*"], "limits": {"budgets": [{"usd": "0.50", "per": "month"}]}}),
        )
        .await
        .secret;
    for _ in 0..2 {
        upstream.push(MockReply::Text("one two three".into()));
        let reply = http
            .post(format!("{}/v1/chat/completions", first.url))
            .bearer_auth(&key)
            .json(&serde_json::json!({"model": "chat", "max_tokens": 40,
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200, "{}", reply.text().await.unwrap());
    }
    let budget = |reply: Value| {
        reply["limits"]
            .as_array()
            .unwrap_or_else(|| panic!("{reply}"))
            .iter()
            .find(|l| l["kind"] == "budget")
            .unwrap_or_else(|| panic!("no budget in {reply}"))["remaining"]
            .clone()
    };
    let spent = 500_000 - 2 * 7_000;
    // Each answer settles just after it is sent.
    let mut before = Value::Null;
    for _ in 0..100 {
        before = budget(verify(&http, &first.url, &key).await);
        if before == spent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(before, spent);
    assert!(first.stop().success(), "{}", first.log());

    let second = ServerProcess::start(dir.path(), &env);
    assert_eq!(
        budget(verify(&http, &second.url, &key).await),
        spent,
        "the restart did not give the budget back:\n{}",
        second.log()
    );
}

/// One admin action the server acknowledged before the crash.
#[derive(Debug)]
enum Acknowledged {
    Created {
        id: String,
        secret: String,
    },
    Rotated {
        id: String,
        old: String,
        new: String,
    },
    Revoked {
        id: String,
        secret: String,
    },
}

/// Admin calls (create, rotate, revoke) and gateway calls at once, SIGKILL in the middle of
/// them, and a restart on the same store.
async fn a_crash_under_load_leaves_a_consistent_store(dir: &Path, env: &[(&str, &str)]) {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
    let config = priced_gateway_config(dir, &upstream.origin());
    let mut env: Vec<(&str, &str)> = env.to_vec();
    let config = config.to_str().unwrap().to_owned();
    env.push(("KEYGATE_CONFIG", &config));
    env.push(("UPSTREAM_KEY", UPSTREAM_KEY));
    let mut first = ServerProcess::start(dir, &env);
    let owner = first.owner_token();
    let http = reqwest::Client::new();
    let url = first.url.clone();
    let out = first.cli(
        &[
            "keys", "create", "--name", "gateway", "--scope", "models:*", "--quiet",
        ],
        Some(&owner),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let gateway_key = text(&out.stdout).trim().to_owned();

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    // Gateway answers acknowledged, with when.
    let answered = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let admin = {
        let (http, url, owner, acknowledged, stop) = (
            http.clone(),
            url.clone(),
            owner.clone(),
            acknowledged.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let created = http
                    .post(format!("{url}/admin/v1/keys"))
                    .bearer_auth(&owner)
                    .json(&serde_json::json!({"project": "default", "name": format!("k{n}"), "scopes": ["models:*"]}))
                    .send()
                    .await;
                let Ok(created) = created else { break };
                if created.status() != 201 {
                    break;
                }
                let Ok(body) = created.json::<Value>().await else {
                    break;
                };
                let id = body["key"]["id"].as_str().unwrap().to_owned();
                let secret = body["secret"].as_str().unwrap().to_owned();
                acknowledged.lock().unwrap().push(Acknowledged::Created {
                    id: id.clone(),
                    secret: secret.clone(),
                });
                let next = if n.is_multiple_of(2) {
                    http.post(format!("{url}/admin/v1/keys/{id}/rotate"))
                        .bearer_auth(&owner)
                        .json(&serde_json::json!({"grace_period_seconds": 3600}))
                        .send()
                        .await
                } else {
                    http.post(format!("{url}/admin/v1/keys/{id}/revoke"))
                        .bearer_auth(&owner)
                        .json(&serde_json::json!({"reason": "crash test"}))
                        .send()
                        .await
                };
                let Ok(reply) = next else { break };
                if !reply.status().is_success() {
                    break;
                }
                let Ok(body) = reply.json::<Value>().await else {
                    break;
                };
                acknowledged.lock().unwrap().push(if n.is_multiple_of(2) {
                    Acknowledged::Rotated {
                        id,
                        old: secret,
                        new: body["secret"].as_str().unwrap().to_owned(),
                    }
                } else {
                    Acknowledged::Revoked { id, secret }
                });
            }
        })
    };
    let gateway = {
        let (http, url, key, answered, stop) = (
            http.clone(),
            url.clone(),
            gateway_key.clone(),
            answered.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = http
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&serde_json::json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await;
                let Ok(reply) = reply else { break };
                if reply.status() != 200 || reply.bytes().await.is_err() {
                    break;
                }
                answered.lock().unwrap().push(Instant::now());
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed_at = Instant::now();
    first.crash();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = admin.await;
    let _ = gateway.await;

    let second = ServerProcess::start(dir, &env);
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    assert!(acknowledged.len() >= 4, "too little load: {acknowledged:?}");
    assert!(
        answered.lock().unwrap().len() >= 4,
        "too little gateway load"
    );
    let chain: Value = http
        .get(format!("{}/admin/v1/audit/verify", second.url))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(chain["ok"], true, "the audit chain broke: {chain}");
    let mut events: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = http
            .get(format!("{}/admin/v1/audit", second.url))
            .bearer_auth(&owner)
            .query(&[("limit", "500")]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor.as_str())]);
        }
        let page: Value = request.send().await.unwrap().json().await.unwrap();
        events.extend(
            page["data"]
                .as_array()
                .unwrap_or_else(|| panic!("{page}"))
                .clone(),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let audited = |action: &str, id: &str| {
        events
            .iter()
            .any(|e| e["action"] == action && e["target"] == id)
    };
    for action in &acknowledged {
        match action {
            Acknowledged::Created { id, secret } => {
                assert!(audited("key.create", id), "{id}: no key.create");
                let code = verify(&http, &second.url, secret).await["code"].clone();
                assert!(
                    ["valid", "key_revoked", "key_rotated"]
                        .contains(&code.as_str().unwrap_or_default()),
                    "{id}: {code}"
                );
            }
            Acknowledged::Rotated { id, old, new } => {
                assert!(audited("key.rotate", id), "{id}: no key.rotate");
                // Whole: the new secret works, and the old one within its grace.
                assert_eq!(
                    verify(&http, &second.url, new).await["code"],
                    "valid",
                    "{id}"
                );
                assert_eq!(
                    verify(&http, &second.url, old).await["code"],
                    "valid",
                    "{id}"
                );
            }
            Acknowledged::Revoked { id, secret } => {
                assert!(audited("key.revoke", id), "{id}: no key.revoke");
                assert_eq!(
                    verify(&http, &second.url, secret).await["code"],
                    "key_revoked",
                    "{id}"
                );
            }
        }
    }
    // Usage: every answer acknowledged a full flush (one second) and a margin before the
    // crash was written.
    let flushed = answered
        .lock()
        .unwrap()
        .iter()
        .filter(|at| killed_at.duration_since(**at) > Duration::from_secs(2))
        .count() as u64;
    let out = second.cli(&["usage", "--json"], Some(&owner), None);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let recorded: u64 = report["data"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["requests"].as_u64()).sum())
        .unwrap_or(0);
    assert!(
        recorded >= flushed,
        "usage lost more than its last flush: {recorded} recorded, {flushed} answered over 2 s before the crash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_under_load_leaves_a_consistent_store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_crash_under_load_leaves_a_consistent_store(dir.path(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_under_load_leaves_a_consistent_store_on_postgres() {
    let store = TestStore::new(Db::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = store.url.clone();
    a_crash_under_load_leaves_a_consistent_store(dir.path(), &[("KEYGATE_DATABASE_URL", &url)])
        .await;
}
