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
