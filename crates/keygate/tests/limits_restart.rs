//! Quotas and budgets across restarts of a node without Redis: `keygate serve` saves its
//! counts to the database every two seconds and at shutdown, and restores them at start, so a
//! restart (graceful, or a kill after the last save) does not make them whole again. On the
//! default SQLite store in the data directory, and on PostgreSQL.
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
