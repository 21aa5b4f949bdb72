//! `keygate serve` on PostgreSQL: two nodes sharing one database serve the same keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use keygate_testkit::{Db, TestStore};
use process::{ServerProcess, run_cli, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_postgres_store() {
    let store = TestStore::new(Db::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = store.url.clone();
    let env = [("KEYGATE_DATABASE_URL", url.as_str())];
    let a = ServerProcess::start(dir.path(), &env);
    // The second node shares the data directory for its master key, as nodes share a KEK.
    let b = ServerProcess::start(dir.path(), &env);
    let owner = a.owner_token();
    assert!(
        !b.log().contains("first start"),
        "only one node bootstraps the owner"
    );

    let key = a.cli(
        &["keys", "create", "--name", "shared", "--quiet"],
        Some(&owner),
        None,
    );
    assert!(key.status.success(), "{}", text(&key.stderr));
    let key = text(&key.stdout).trim().to_owned();
    let on_b = b.cli(&["keys", "verify"], None, Some(&key));
    assert!(on_b.status.success(), "{}", text(&on_b.stdout));

    // A rotation on node A: node B, which has the key cached, accepts the new secret at once.
    let listed = a.cli(&["keys", "list", "--json"], Some(&owner), None);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let rotated = a.cli(
        &["keys", "rotate", &id, "--grace", "1h", "--quiet"],
        Some(&owner),
        None,
    );
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    let new_key = text(&rotated.stdout).trim().to_owned();
    let new_on_b = b.cli(&["keys", "verify"], None, Some(&new_key));
    assert!(new_on_b.status.success(), "{}", text(&new_on_b.stdout));
    let old_on_b = b.cli(&["keys", "verify"], None, Some(&key));
    assert!(
        old_on_b.status.success(),
        "the old secret is in its grace period"
    );

    // Admin tokens are read fresh: one revoked through node A is refused by node B at once.
    let admin = run_cli(
        dir.path(),
        &["admin", "token", "create", "--role", "admin", "--json"],
        &env,
        None,
        None,
    );
    let admin: serde_json::Value = serde_json::from_slice(&admin.stdout).unwrap();
    let admin_secret = admin["secret"].as_str().unwrap();
    let admin_id = admin["token"]["id"].as_str().unwrap();
    assert!(
        b.cli(&["keys", "list"], Some(admin_secret), None)
            .status
            .success()
    );
    let http = reqwest::Client::new();
    let revoked = http
        .post(format!("{}/admin/v1/tokens/{admin_id}/revoke", a.url))
        .bearer_auth(&owner)
        .json(&serde_json::json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let refused = b.cli(&["keys", "list"], Some(admin_secret), None);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused.stderr));

    // Local commands work on PostgreSQL too.
    let token = run_cli(
        dir.path(),
        &["admin", "token", "create", "--role", "auditor"],
        &env,
        None,
        None,
    );
    assert!(token.status.success(), "{}", text(&token.stderr));
    let auditor = text(&token.stdout).trim().to_owned();
    let listed = b.cli(&["audit", "list", "--json"], Some(&auditor), None);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let verified = run_cli(dir.path(), &["audit", "verify"], &env, None, None);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(text(&verified.stdout).contains("audit log intact"));
}
