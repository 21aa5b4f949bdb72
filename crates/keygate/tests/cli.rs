//! The binary end to end: exit codes, JSON output, start-up refusals, and a search for leaked
//! secrets in everything the processes wrote.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use std::os::unix::fs::PermissionsExt;

use process::{ServerProcess, run_cli, text};
use serde_json::{Value, json};
use sqlx::Connection;

fn json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON:\n{}\nstderr:\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

fn code(output: &std::process::Output) -> i32 {
    output.status.code().expect("exit code")
}

#[test]
fn exit_codes_tell_failures_apart() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();

    let no_token = server.cli(&["keys", "list"], None, None);
    assert_eq!(code(&no_token), 2, "{}", text(&no_token.stderr));
    assert!(text(&no_token.stderr).contains("KEYGATE_TOKEN"));

    let bad = server.cli(&["keys", "list"], Some("kg_live_nope"), None);
    assert_eq!(code(&bad), 4);
    assert!(text(&bad.stderr).contains("key_malformed"));

    let missing = server.cli(&["keys", "show", "key_0000"], Some(&owner), None);
    assert_eq!(code(&missing), 3, "{}", text(&missing.stderr));

    let created = server.cli(
        &["keys", "create", "--name", "ci", "--scope", "a:b", "--json"],
        Some(&owner),
        None,
    );
    assert_eq!(code(&created), 0, "{}", text(&created.stderr));
    let created = json(&created);
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().unwrap().starts_with("kg_live_"));
    assert_eq!(created["key"]["scopes"][0], "a:b");

    let first = server.cli(
        &["keys", "revoke", &id, "--reason", "x"],
        Some(&owner),
        None,
    );
    assert_eq!(code(&first), 0);
    let again = server.cli(
        &["keys", "revoke", &id, "--reason", "x"],
        Some(&owner),
        None,
    );
    assert_eq!(code(&again), 5);
    assert!(text(&again.stderr).contains("key_not_mutable"));

    let bad_metadata = server.cli(
        &["keys", "create", "--name", "m", "--metadata", "[1]"],
        Some(&owner),
        None,
    );
    assert_eq!(code(&bad_metadata), 2);

    let refused = server.cli(&["keys", "verify"], None, Some("kg_live_garbage\n"));
    assert_eq!(code(&refused), 4);
    assert!(text(&refused.stdout).contains("refused: key_malformed"));

    let down = run_cli(
        dir.path(),
        &["keys", "list"],
        &[("KEYGATE_URL", "http://127.0.0.1:9")],
        Some(&owner),
        None,
    );
    assert_eq!(code(&down), 6, "{}", text(&down.stderr));
}

#[test]
fn keys_take_limits_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    let cli = |args: &[&str]| server.cli(args, Some(&owner), None);
    let ok_json = |args: &[&str]| {
        let out = cli(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out.stderr));
        json(&out)
    };

    let created = ok_json(&[
        "keys",
        "create",
        "--name",
        "limited",
        "--rate",
        "100/minute",
        "--rate",
        "5000/d",
        "--concurrency",
        "5",
        "--json",
    ]);
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    let both = json!({
        "requests": [{"limit": 100, "per": "minute"}, {"limit": 5000, "per": "day"}],
        "concurrency": 5,
    });
    assert_eq!(created["key"]["limits"], both);
    assert_eq!(ok_json(&["keys", "show", &id, "--json"])["limits"], both);
    let shown = cli(&["keys", "show", &id]);
    assert_eq!(code(&shown), 0);
    assert!(
        text(&shown.stdout).contains("100/minute, 5000/day; 5 in flight"),
        "{}",
        text(&shown.stdout)
    );

    // Each flag replaces its own kind of limit and keeps the other.
    let capped = ok_json(&["keys", "update", &id, "--concurrency", "2", "--json"]);
    assert_eq!(
        capped["limits"],
        json!({"requests": both["requests"], "concurrency": 2})
    );
    let rated = ok_json(&["keys", "update", &id, "--rate", "10/s", "--json"]);
    assert_eq!(
        rated["limits"],
        json!({"requests": [{"limit": 10, "per": "second"}], "concurrency": 2})
    );
    let metered = ok_json(&[
        "keys",
        "update",
        &id,
        "--tokens",
        "100000/minute",
        "--quota",
        "1000/day",
        "--budget",
        "25/month",
        "--budget",
        "$2.50/day",
        "--json",
    ]);
    assert_eq!(
        metered["limits"],
        json!({
            "requests": [{"limit": 10, "per": "second"}],
            "tokens": [{"limit": 100000, "per": "minute"}],
            "concurrency": 2,
            "quota": {"amount": 1000, "per": "day"},
            "budgets": [{"usd": "25.000000", "per": "month"}, {"usd": "2.500000", "per": "day"}],
        })
    );
    let shown = text(&cli(&["keys", "show", &id]).stdout);
    for part in [
        "10/second",
        "100000 tokens/minute",
        "2 in flight",
        "1000 per day",
        "$25.00 per month, $2.50 per day",
    ] {
        assert!(shown.contains(part), "{part}: {shown}");
    }
    let rebudgeted = ok_json(&["keys", "update", &id, "--budget", "5/day", "--json"]);
    assert_eq!(
        rebudgeted["limits"]["budgets"],
        json!([{"usd": "5.000000", "per": "day"}])
    );
    assert_eq!(rebudgeted["limits"]["tokens"], metered["limits"]["tokens"]);
    assert_eq!(rebudgeted["limits"]["quota"], metered["limits"]["quota"]);
    let created = ok_json(&[
        "keys", "create", "--name", "metered", "--tokens", "1000/min", "--quota", "50/h",
        "--budget", "1/day", "--json",
    ]);
    assert_eq!(
        created["key"]["limits"],
        json!({
            "tokens": [{"limit": 1000, "per": "minute"}],
            "quota": {"amount": 50, "per": "hour"},
            "budgets": [{"usd": "1.000000", "per": "day"}],
        })
    );
    // Graded budgets and prepaid credits, set and shown; credits added to.
    let graded = ok_json(&[
        "keys",
        "update",
        &id,
        "--budget",
        "100/month;alert=50,90;throttle=80:10/minute",
        "--credits",
        "20",
        "--json",
    ]);
    assert_eq!(
        graded["limits"]["budgets"],
        json!([{"usd": "100.000000", "per": "month", "alert_at": [50, 90], "throttle_at": 80,
                "throttle": {"limit": 10, "per": "minute"}}])
    );
    let topped = ok_json(&["keys", "add-credits", &id, "--usd", "2.50", "--json"]);
    assert_eq!(topped["limits"]["credits"], "22.500000");
    let shown = text(&cli(&["keys", "show", &id]).stdout);
    for part in [
        "$100.00 per month (alerts at 50% 90%) (past 80%, 10/minute)",
        "$22.50 prepaid credits",
    ] {
        assert!(shown.contains(part), "{part}: {shown}");
    }
    let nothing = cli(&["keys", "add-credits", &id, "--usd", "0"]);
    assert_eq!(code(&nothing), 5, "{}", text(&nothing.stderr));
    let cleared = ok_json(&["keys", "update", &id, "--no-limits", "--json"]);
    assert_eq!(cleared["limits"], json!({}));
    let shown = cli(&["keys", "show", &id]);
    assert!(
        !text(&shown.stdout).contains("in flight"),
        "{}",
        text(&shown.stdout)
    );

    // Text that is not a rate is a usage error (2), before any request; limits out of
    // bounds are refused by the server (5), naming the field.
    for (args, exit, word) in [
        (
            vec!["create", "--name", "x", "--rate", "100"],
            2,
            "100/minute",
        ),
        (
            vec!["create", "--name", "x", "--rate", "5/fortnight"],
            2,
            "100/minute",
        ),
        (
            vec!["create", "--name", "x", "--rate", "many/day"],
            2,
            "100/minute",
        ),
        (
            vec!["create", "--name", "x", "--concurrency=-1"],
            2,
            "concurrency",
        ),
        (
            vec!["update", &id, "--no-limits", "--rate", "1/s"],
            2,
            "--no-limits",
        ),
        (
            vec!["update", &id, "--no-limits", "--concurrency", "1"],
            2,
            "--no-limits",
        ),
        (
            vec!["update", &id, "--no-limits", "--budget", "1/day"],
            2,
            "--no-limits",
        ),
        (
            vec!["create", "--name", "x", "--tokens", "lots/minute"],
            2,
            "100/minute",
        ),
        (
            vec!["create", "--name", "x", "--quota", "1000"],
            2,
            "1000/day",
        ),
        (
            vec!["create", "--name", "x", "--budget", "25"],
            2,
            "25/month",
        ),
        (
            vec!["create", "--name", "x", "--tokens", "0/minute"],
            5,
            "limits.tokens",
        ),
        (
            vec!["create", "--name", "x", "--budget", "25/hour"],
            5,
            "limits.budgets",
        ),
        (vec!["update", &id, "--quota", "0/day"], 5, "limits.quota"),
        (
            vec!["create", "--name", "x", "--rate", "0/minute"],
            5,
            "limits.requests",
        ),
        (
            vec![
                "create", "--name", "x", "--rate", "1/minute", "--rate", "2/min",
            ],
            5,
            "limits.requests",
        ),
        (
            vec!["create", "--name", "x", "--concurrency", "0"],
            5,
            "limits.concurrency",
        ),
        (vec!["update", &id, "--rate", "0/h"], 5, "limits.requests"),
    ] {
        let args: Vec<&str> = ["keys"].into_iter().chain(args).collect();
        let out = cli(&args);
        assert_eq!(code(&out), exit, "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(word),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let listed = ok_json(&["keys", "list", "--json"]);
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        2,
        "no refused key was created"
    );
    assert_eq!(
        ok_json(&["keys", "show", &id, "--json"])["limits"],
        json!({})
    );
}

#[test]
fn projects_take_limits_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    let cli = |args: &[&str]| server.cli(args, Some(&owner), None);
    let ok_json = |args: &[&str]| {
        let out = cli(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out.stderr));
        json(&out)
    };

    assert_eq!(
        ok_json(&["projects", "show", "default", "--json"])["limits"],
        json!({})
    );
    let every = json!({
        "requests": [{"limit": 100, "per": "minute"}],
        "tokens": [{"limit": 100000, "per": "minute"}],
        "concurrency": 10,
        "quota": {"amount": 1000, "per": "day"},
        "budgets": [{"usd": "25.000000", "per": "month"}],
    });
    let updated = ok_json(&[
        "projects",
        "update",
        "default",
        "--rate",
        "100/minute",
        "--tokens",
        "100000/minute",
        "--concurrency",
        "10",
        "--quota",
        "1000/day",
        "--budget",
        "25/month",
        "--json",
    ]);
    assert_eq!(updated["limits"], every);
    let id = updated["id"].as_str().unwrap().to_owned();
    assert_eq!(ok_json(&["projects", "show", &id, "--json"]), updated);

    // Each flag replaces its own kind of limit and keeps the others.
    let capped = ok_json(&["projects", "update", &id, "--concurrency", "3", "--json"]);
    let mut expected = every.clone();
    expected["concurrency"] = json!(3);
    assert_eq!(capped["limits"], expected);
    let shown = text(&cli(&["projects", "show", "default"]).stdout);
    for part in [
        "100/minute",
        "100000 tokens/minute",
        "3 in flight",
        "1000 per day",
        "$25.00 per month",
    ] {
        assert!(shown.contains(part), "{part}: {shown}");
    }
    let listed = text(&cli(&["projects", "list"]).stdout);
    assert!(listed.contains("3 in flight"), "{listed}");

    let created = ok_json(&[
        "projects", "create", "metered", "--budget", "2.50/day", "--json",
    ]);
    assert_eq!(
        created["limits"],
        json!({"budgets": [{"usd": "2.500000", "per": "day"}]})
    );

    for (args, exit, word) in [
        (vec!["update", "default"], 2, "nothing to change"),
        (
            vec!["update", "default", "--no-limits", "--rate", "1/s"],
            2,
            "--no-limits",
        ),
        (vec!["update", "default", "--quota", "1000"], 2, "1000/day"),
        (
            vec!["update", "default", "--budget", "1/hour"],
            5,
            "limits.budgets",
        ),
        (
            vec!["update", "default", "--tokens", "0/day"],
            5,
            "limits.tokens",
        ),
        (
            vec!["update", "nowhere", "--concurrency", "1"],
            3,
            "not found",
        ),
        (vec!["show", "nowhere"], 3, "not found"),
    ] {
        let args: Vec<&str> = ["projects"].into_iter().chain(args).collect();
        let out = cli(&args);
        assert_eq!(code(&out), exit, "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(word),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(
        ok_json(&["projects", "show", "default", "--json"])["limits"],
        expected,
        "refused changes changed nothing"
    );

    // A token bound to the project may read its limits but not lift them.
    let bound = run_cli(
        dir.path(),
        &[
            "admin",
            "token",
            "create",
            "--role",
            "admin",
            "--project",
            "default",
        ],
        &[],
        None,
        None,
    );
    assert_eq!(code(&bound), 0, "{}", text(&bound.stderr));
    let bound = text(&bound.stdout).trim().to_owned();
    let read = server.cli(&["projects", "show", "default"], Some(&bound), None);
    assert_eq!(code(&read), 0, "{}", text(&read.stderr));
    let lift = server.cli(
        &["projects", "update", "default", "--no-limits"],
        Some(&bound),
        None,
    );
    assert_eq!(code(&lift), 4, "{}", text(&lift.stderr));
    assert!(text(&lift.stderr).contains("forbidden"));

    let cleared = ok_json(&["projects", "update", "default", "--no-limits", "--json"]);
    assert_eq!(cleared["limits"], json!({}));
}

#[test]
fn project_bound_viewer_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let viewer = run_cli(
        dir.path(),
        &[
            "admin",
            "token",
            "create",
            "--role",
            "viewer",
            "--project",
            "default",
        ],
        &[],
        None,
        None,
    );
    assert_eq!(code(&viewer), 0, "{}", text(&viewer.stderr));
    let viewer = text(&viewer.stdout).trim().to_owned();
    let listed = server.cli(&["keys", "list", "--json"], Some(&viewer), None);
    assert_eq!(code(&listed), 0);
    let create = server.cli(&["keys", "create", "--name", "x"], Some(&viewer), None);
    assert_eq!(code(&create), 4);
    assert!(text(&create.stderr).contains("forbidden"));
    let unknown_project = run_cli(
        dir.path(),
        &[
            "admin",
            "token",
            "create",
            "--role",
            "viewer",
            "--project",
            "nope",
        ],
        &[],
        None,
        None,
    );
    assert_eq!(code(&unknown_project), 3);
}

#[test]
fn start_up_refuses_unsafe_or_foreign_master_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    assert!(server.stop().success());
    let key_file = dir.path().join("keygate-data/master.key");
    let db_file = dir.path().join("keygate-data/keygate.db");

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = run_cli(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[],
        None,
        None,
    );
    assert_eq!(code(&open), 2);
    assert!(
        text(&open.stderr).contains("chmod 600"),
        "{}",
        text(&open.stderr)
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Another master key: refused, naming both key ids, and nothing is re-sealed.
    let original = std::fs::read(&key_file).unwrap();
    let before = std::fs::read(&db_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let foreign = run_cli(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[],
        None,
        None,
    );
    assert_eq!(code(&foreign), 2, "{}", text(&foreign.stderr));
    assert!(text(&foreign.stderr).contains("sealed with master key aes256:"));
    std::fs::write(&key_file, original).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut again = ServerProcess::start(dir.path(), &[]);
    let still_works = again.cli(&["keys", "list"], Some(&owner), None);
    assert_eq!(
        code(&still_works),
        0,
        "the original key still opens the store"
    );
    assert!(again.stop().success());
    assert!(!before.is_empty());
}

#[test]
fn config_file_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(&config, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = run_cli(
        dir.path(),
        &["--config", config.to_str().unwrap(), "serve"],
        &[],
        None,
        None,
    );
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("lisen"), "{}", text(&out.stderr));
    let missing = run_cli(
        dir.path(),
        &["--config", "nope.toml", "serve"],
        &[],
        None,
        None,
    );
    assert_eq!(code(&missing), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_audit_verify_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    for name in ["a", "b", "c"] {
        let out = server.cli(&["keys", "create", "--name", name], Some(&owner), None);
        assert_eq!(code(&out), 0);
    }
    assert!(server.stop().success());
    let ok = run_cli(dir.path(), &["audit", "verify", "--json"], &[], None, None);
    assert_eq!(code(&ok), 0, "{}", text(&ok.stderr));
    let report = json(&ok);
    assert_eq!(report["entries"], 4);
    let anchor = format!(
        "{}:{}",
        report["head"]["seq"],
        report["head"]["hash"].as_str().unwrap()
    );
    let human = run_cli(dir.path(), &["audit", "verify"], &[], None, None);
    assert!(
        text(&human.stdout).contains(&anchor),
        "the anchor is printed to keep"
    );
    let anchored = run_cli(
        dir.path(),
        &["audit", "verify", "--anchor", &anchor],
        &[],
        None,
        None,
    );
    assert_eq!(code(&anchored), 0, "{}", text(&anchored.stderr));
    let forged = format!("3:{}", "0".repeat(64));
    let mismatch = run_cli(
        dir.path(),
        &["audit", "verify", "--anchor", &forged],
        &[],
        None,
        None,
    );
    assert_eq!(code(&mismatch), 7);
    assert!(text(&mismatch.stderr).contains("differs from the anchor"));
    let beyond = format!("9:{}", "0".repeat(64));
    let missing = run_cli(
        dir.path(),
        &["audit", "verify", "--anchor", &beyond],
        &[],
        None,
        None,
    );
    assert_eq!(code(&missing), 7);
    let garbage = run_cli(
        dir.path(),
        &["audit", "verify", "--anchor", "soon"],
        &[],
        None,
        None,
    );
    assert_eq!(code(&garbage), 2);

    let url = format!(
        "sqlite://{}",
        dir.path().join("keygate-data/keygate.db").display()
    );
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE audit_events SET actor = 'someone else' WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let broken = run_cli(dir.path(), &["audit", "verify"], &[], None, None);
    assert_eq!(code(&broken), 7, "{}", text(&broken.stderr));
    assert!(text(&broken.stderr).contains("entry 2 was changed"));

    let nowhere = tempfile::tempdir().unwrap();
    let none = run_cli(nowhere.path(), &["audit", "verify"], &[], None, None);
    assert_eq!(code(&none), 2);
    assert!(text(&none.stderr).contains("no keygate store"));
}

/// Runs a full scenario, then searches every log line, CLI output and database byte for every
/// secret that was issued.
#[test]
fn secrets_never_leak_into_logs_or_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    let mut outputs = Vec::new();
    let mut issued = vec![owner.clone()];

    let token = run_cli(
        dir.path(),
        &["admin", "token", "create", "--role", "admin"],
        &[],
        None,
        None,
    );
    let admin = text(&token.stdout).trim().to_owned();
    issued.push(admin.clone());
    outputs.push(text(&token.stderr));

    let created = server.cli(
        &["keys", "create", "--name", "leak-check", "--json"],
        Some(&admin),
        None,
    );
    let created = json(&created);
    let key = created["secret"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    issued.push(key.clone());

    let verified = server.cli(&["keys", "verify"], None, Some(&key));
    outputs.push(text(&verified.stdout) + &text(&verified.stderr));
    let rotated = server.cli(
        &[
            "keys",
            "rotate",
            &id,
            "--grace",
            "1m",
            "--idempotency-key",
            "r1",
            "--quiet",
        ],
        Some(&admin),
        None,
    );
    let new_key = text(&rotated.stdout).trim().to_owned();
    assert!(new_key.starts_with("kg_live_"), "{}", text(&rotated.stderr));
    issued.push(new_key.clone());
    let replay = server.cli(
        &[
            "keys",
            "rotate",
            &id,
            "--grace",
            "1m",
            "--idempotency-key",
            "r1",
            "--quiet",
        ],
        Some(&admin),
        None,
    );
    assert_eq!(text(&replay.stdout).trim(), new_key, "an idempotent retry");

    for args in [
        vec!["keys", "show", id.as_str()],
        vec!["keys", "list", "--json"],
        vec!["keys", "update", id.as_str(), "--name", "renamed"],
        vec!["keys", "revoke", id.as_str(), "--reason", "leak test"],
        vec!["audit", "list", "--json"],
    ] {
        let out = server.cli(&args, Some(&admin), None);
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out.stderr));
        outputs.push(text(&out.stdout) + &text(&out.stderr));
    }
    // Failed authentication and a key in a URL must not echo the key either.
    let wrong = server.cli(&["keys", "list"], Some(&key), None);
    outputs.push(text(&wrong.stdout) + &text(&wrong.stderr));
    let leak_url = format!("{}/healthz?api_key={}", server.url, new_key);
    let in_query = std::process::Command::new("curl")
        .args(["-s", &leak_url])
        .output()
        .unwrap();
    assert!(text(&in_query.stdout).contains("key_in_query"));
    outputs.push(text(&in_query.stdout));

    assert!(server.stop().success());
    let log = server.log();
    assert!(log.contains("DEBUG"), "the log ran at debug level");
    for secret in &issued {
        let in_log = log.matches(secret.as_str()).count();
        let allowed = usize::from(*secret == owner);
        assert_eq!(in_log, allowed, "a secret appears in the server log");
        for output in &outputs {
            assert!(
                !output.contains(secret.as_str()),
                "a secret leaked into CLI output"
            );
        }
        let db = std::fs::read(dir.path().join("keygate-data/keygate.db")).expect("the database");
        assert!(
            db.len() > 4096,
            "a clean shutdown folds the log into the database"
        );
        let wal = std::fs::read(dir.path().join("keygate-data/keygate.db-wal")).unwrap_or_default();
        for (file, bytes) in [("keygate.db", &db), ("keygate.db-wal", &wal)] {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "a secret is stored in {file}");
        }
    }
}

#[test]
fn local_token_list_and_revoke_recover_from_a_leaked_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let created = run_cli(
        dir.path(),
        &["admin", "token", "create", "--role", "owner", "--json"],
        &[],
        None,
        None,
    );
    assert_eq!(code(&created), 0, "{}", text(&created.stderr));
    let created = json(&created);
    let leaked = created["secret"].as_str().unwrap().to_owned();
    let id = created["token"]["id"].as_str().unwrap().to_owned();

    let listed = run_cli(
        dir.path(),
        &["admin", "token", "list", "--json"],
        &[],
        None,
        None,
    );
    assert_eq!(code(&listed), 0);
    let listed_text = text(&listed.stdout);
    assert!(listed_text.contains(&id));
    assert!(
        !listed_text.contains(&leaked),
        "a listing never shows secrets"
    );
    assert_eq!(json(&listed)["data"].as_array().unwrap().len(), 2);

    let revoked = run_cli(
        dir.path(),
        &[
            "admin",
            "token",
            "revoke",
            &id,
            "--reason",
            "leaked in a chat",
        ],
        &[],
        None,
        None,
    );
    assert_eq!(code(&revoked), 0, "{}", text(&revoked.stderr));
    let refused = server.cli(&["keys", "list"], Some(&leaked), None);
    assert_eq!(code(&refused), 4);
    assert!(text(&refused.stderr).contains("key_revoked"));

    let again = run_cli(
        dir.path(),
        &["admin", "token", "revoke", &id, "--reason", "twice"],
        &[],
        None,
        None,
    );
    assert_eq!(code(&again), 5, "{}", text(&again.stderr));
    let unknown = run_cli(
        dir.path(),
        &["admin", "token", "revoke", "key_nope", "--reason", "x"],
        &[],
        None,
        None,
    );
    assert_eq!(code(&unknown), 3);
}

#[test]
fn the_master_key_can_move_from_its_file_to_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    assert!(server.stop().success());
    let key_file = dir.path().join("keygate-data/master.key");
    let value = std::fs::read_to_string(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();

    let env = [("KEYGATE_MASTER_KEY", value.trim())];
    let mut moved = ServerProcess::start(dir.path(), &env);
    let listed = moved.cli(&["keys", "list"], Some(&owner), None);
    assert_eq!(code(&listed), 0, "the same key opens the store");
    assert!(moved.stop().success());
    assert!(
        !key_file.exists(),
        "no key file is created for the env provider"
    );
    let local = run_cli(
        dir.path(),
        &["admin", "token", "create", "--role", "viewer"],
        &env,
        None,
        None,
    );
    assert_eq!(code(&local), 0, "{}", text(&local.stderr));

    let garbage = run_cli(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("KEYGATE_MASTER_KEY", "not-a-key")],
        None,
        None,
    );
    assert_eq!(code(&garbage), 2);
    assert!(text(&garbage.stderr).contains("KEYGATE_MASTER_KEY is not 32 bytes"));
    assert!(!text(&garbage.stderr).contains("not-a-key"));
    let missing = run_cli(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("KEYGATE_KEK", "env")],
        None,
        None,
    );
    assert_eq!(code(&missing), 2);
    assert!(text(&missing.stderr).contains("needs KEYGATE_MASTER_KEY"));
}

/// The request log as an operator reads it from a file: no terminal colour codes, one short
/// line per request, kept to errors when asked, and nothing when off.
#[tokio::test]
async fn the_request_log_is_plain_and_can_be_kept_to_errors_or_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut errors_only = ServerProcess::start(dir.path(), &[("KEYGATE_REQUEST_LOG", "errors")]);
    let get = |path: &str| http.get(format!("{}{path}", errors_only.url)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/no/such/route").await.unwrap().status(), 404);
    errors_only.logged("path=/no/such/route").await;
    let log = errors_only.log();
    assert!(!log.contains('\u{1b}'), "no colour codes in a file:\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("path=/no/such/route"))
        .unwrap();
    assert!(
        line.contains("status=404") && line.contains("id="),
        "{line}"
    );
    assert!(line.len() < 250, "a short line: {line}");
    assert!(
        !log.contains("path=/healthz"),
        "a success is not logged:\n{log}"
    );
    assert!(errors_only.stop().success());

    let mut off = ServerProcess::start(dir.path(), &[("KEYGATE_REQUEST_LOG", "off")]);
    let missing = http.get(format!("{}/no/such/route", off.url)).send();
    assert_eq!(missing.await.unwrap().status(), 404);
    assert!(off.stop().success());
    assert!(!off.log().contains("keygate::request"), "{}", off.log());

    let bad = run_cli(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("KEYGATE_REQUEST_LOG", "sometimes")],
        None,
        None,
    );
    assert_eq!(code(&bad), 2);
    assert!(
        text(&bad.stderr).contains("request_log"),
        "{}",
        text(&bad.stderr)
    );
}

/// `/metrics` is on the API's listener by default; with `metrics_listen` it is served there
/// only, and both listeners stop together.
#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut shared = ServerProcess::start(dir.path(), &[]);
    let exposition = http
        .get(format!("{}/metrics", shared.url))
        .send()
        .await
        .unwrap();
    assert_eq!(exposition.status(), 200);
    let text = exposition.text().await.unwrap();
    assert!(text.contains("# TYPE keygate_queue_depth gauge"), "{text}");
    assert!(shared.stop().success());

    let port = process::free_port();
    let metrics_listen = format!("127.0.0.1:{port}");
    let mut apart =
        ServerProcess::start(dir.path(), &[("KEYGATE_METRICS_LISTEN", &metrics_listen)]);
    let on_api = http
        .get(format!("{}/metrics", apart.url))
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status(), 404, "not on the API's listener");
    let own = http
        .get(format!("http://{metrics_listen}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(
        own.text()
            .await
            .unwrap()
            .contains("http_server_request_duration_seconds")
    );
    assert!(apart.stop().success());
    assert!(
        http.get(format!("http://{metrics_listen}/metrics"))
            .send()
            .await
            .is_err(),
        "the metrics listener stops with the server"
    );
}
