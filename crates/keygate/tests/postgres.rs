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

/// The database goes away under a running node (a proxy in front of PostgreSQL is cut) and
/// comes back: keys the node loaded keep verifying within the outage grace and are refused
/// after it, keys it does not hold and admin calls get `503 store_unavailable` at once, the
/// readiness check says `degraded`, and on recovery everything works again with nothing done
/// by the operator — the uses made during the outage are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_survived() {
    use std::time::{Duration, Instant};

    let store = TestStore::new(Db::Postgres).await.unwrap();
    let target: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    assert!(
        store.url.contains("127.0.0.1:5432"),
        "the test puts a proxy in front of {}",
        store.url
    );
    let proxy = keygate_testkit::CutProxy::start(target).await.unwrap();
    let url = store.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("KEYGATE_DATABASE_URL", url.as_str()),
        ("KEYGATE_KEY_CACHE_SECONDS", "1"),
        ("KEYGATE_STORE_OUTAGE_GRACE_SECONDS", "20"),
    ];
    let node = ServerProcess::start(dir.path(), &env);
    let owner = node.owner_token();
    let create = |name: &str| {
        let made = node.cli(
            &["keys", "create", "--name", name, "--quiet"],
            Some(&owner),
            None,
        );
        assert!(made.status.success(), "{}", text(&made.stderr));
        text(&made.stdout).trim().to_owned()
    };
    let held = create("held");
    let unheld = create("unheld");
    let http = reqwest::Client::new();
    let verify = |key: String| {
        let http = http.clone();
        let url = format!("{}/v1/keys/verify", node.url);
        async move {
            let reply = http
                .post(url)
                .json(&serde_json::json!({ "key": key }))
                .send()
                .await
                .unwrap();
            let status = reply.status().as_u16();
            (status, reply.json::<serde_json::Value>().await.unwrap())
        }
    };
    let ready = |http: reqwest::Client, url: String| async move {
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let last_used = |name: &str| {
        let listed = node.cli(&["keys", "list", "--json"], Some(&owner), None);
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .and_then(|k| k["last_used_at"].as_str().map(str::to_owned))
    };
    let (status, body) = verify(held.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (200, Some("valid")),
        "{body}"
    );
    // Waits (ten seconds at most) until the held key's last use is later than `than`.
    let written_after = |than: Option<String>| {
        let last_used = &last_used;
        async move {
            let mut seen = None;
            for _ in 0..50 {
                seen = last_used("held");
                if seen.is_some() && seen > than {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            seen
        }
    };
    let first = written_after(None).await.expect("the first use is written");
    // Used again a moment later (a later timestamp), and that use written too: the grace
    // runs from this load, and any later use can only be the one made during the outage.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let warm = Instant::now();
    let (status, _) = verify(held.clone()).await;
    assert_eq!(status, 200);
    let before = written_after(Some(first.clone()))
        .await
        .filter(|seen| *seen > first)
        .expect("the second use is written");

    proxy.cut();
    // Past the key cache's second: the node would read the key again, and cannot.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = verify(held.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (200, Some("valid")),
        "a key the node loaded verifies within the grace: {body}"
    );
    let (status, body) = verify(unheld.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    let started = Instant::now();
    let listed = http
        .get(format!("{}/admin/v1/keys", node.url))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an admin call waited {:?} on the unreachable store",
        started.elapsed()
    );
    let body: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let health = ready(http.clone(), node.url.clone()).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store"], "unreachable", "{health}");

    // Past the grace (twenty seconds from the last load): refused too.
    tokio::time::sleep((warm + Duration::from_secs(21)).saturating_duration_since(Instant::now()))
        .await;
    let (status, body) = verify(held.clone()).await;
    let store_lines = || -> String {
        node.log()
            .lines()
            .filter(|line| line.contains("store"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{body}\n{}",
        store_lines()
    );

    proxy.restore();
    let mut health = serde_json::Value::Null;
    for _ in 0..50 {
        health = ready(http.clone(), node.url.clone()).await;
        if health["status"] == "ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(health["status"], "ready", "{health}");
    let (status, body) = verify(unheld).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (200, Some("valid")),
        "{body}"
    );
    // The use made during the outage was held and written once the store came back (the
    // held key was not used since).
    let mut after = None;
    for _ in 0..50 {
        after = last_used("held");
        if after.as_deref() > Some(before.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        after.as_deref() > Some(before.as_str()),
        "the use during the outage was lost: {after:?} after {before}"
    );
}
