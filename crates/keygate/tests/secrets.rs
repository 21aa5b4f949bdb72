//! `keygate secrets …` end to end, and a search for the stored value in everything written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use process::{ServerProcess, text};

const VALUE: &str = "sk-proj-UPSTREAM-7c1e9f0a2b3d4c5e6f708192a3b4c5d6";

fn code(output: &std::process::Output) -> i32 {
    output.status.code().expect("exit code")
}

#[test]
fn secrets_put_show_reveal_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    let mut outputs = Vec::new();

    let refused = server.cli(
        &["secrets", "put", "openai-prod", "--value", VALUE],
        Some(&owner),
        None,
    );
    assert_eq!(code(&refused), 2);
    assert!(text(&refused.stderr).contains("never pass a secret value as an argument"));
    assert!(!text(&refused.stderr).contains(VALUE));

    let put = server.cli(
        &[
            "secrets",
            "put",
            "openai-prod",
            "--description",
            "OpenAI, production",
            "--rotate-every",
            "90d",
        ],
        Some(&owner),
        Some(&format!("{VALUE}\n")),
    );
    assert_eq!(code(&put), 0, "{}", text(&put.stderr));
    outputs.push(text(&put.stdout) + &text(&put.stderr));

    let file = dir.path().join("rotated.txt");
    std::fs::write(&file, "sk-proj-SECOND").unwrap();
    let second = server.cli(
        &[
            "secrets",
            "put",
            "openai-prod",
            "--from-file",
            file.to_str().unwrap(),
            "--grace",
            "1h",
        ],
        Some(&owner),
        None,
    );
    assert_eq!(code(&second), 0, "{}", text(&second.stderr));
    std::fs::remove_file(&file).unwrap();

    let shown = server.cli(
        &["secrets", "show", "openai-prod", "--json"],
        Some(&owner),
        None,
    );
    assert_eq!(code(&shown), 0);
    let shown_json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown_json["versions"][0]["stage"], "current");
    assert_eq!(shown_json["versions"][1]["stage"], "previous");
    outputs.push(text(&shown.stdout));
    assert_eq!(shown_json["rotate_every_seconds"], 90 * 86_400);
    let due_now = server.cli(&["secrets", "due", "--json"], Some(&owner), None);
    assert_eq!(code(&due_now), 0, "{}", text(&due_now.stderr));
    let due_now: serde_json::Value = serde_json::from_slice(&due_now.stdout).unwrap();
    assert!(due_now["data"].as_array().unwrap().is_empty());
    let due_soon = server.cli(&["secrets", "due", "--within", "91d"], Some(&owner), None);
    assert!(text(&due_soon.stdout).contains("openai-prod"));
    let versions = server.cli(&["secrets", "versions", "openai-prod"], Some(&owner), None);
    assert!(
        text(&versions.stdout).contains("previous"),
        "{}",
        text(&versions.stdout)
    );
    let listed = server.cli(&["secrets", "list"], Some(&owner), None);
    assert!(text(&listed.stdout).contains("openai-prod"));
    outputs.push(text(&listed.stdout));

    let current = server.cli(&["secrets", "reveal", "openai-prod"], Some(&owner), None);
    assert_eq!(
        text(&current.stdout).trim(),
        "sk-proj-SECOND",
        "{}",
        text(&current.stderr)
    );
    let first = server.cli(
        &["secrets", "reveal", "openai-prod", "--version", "1"],
        Some(&owner),
        None,
    );
    assert_eq!(
        text(&first.stdout).trim(),
        VALUE,
        "the trailing newline was dropped"
    );

    let admin = process::run_cli(
        dir.path(),
        &["admin", "token", "create", "--role", "admin"],
        &[],
        None,
        None,
    );
    let admin = text(&admin.stdout).trim().to_owned();
    let denied = server.cli(&["secrets", "reveal", "openai-prod"], Some(&admin), None);
    assert_eq!(code(&denied), 4);
    outputs.push(text(&denied.stdout) + &text(&denied.stderr));

    let deleted = server.cli(&["secrets", "delete", "openai-prod"], Some(&owner), None);
    assert_eq!(code(&deleted), 0, "{}", text(&deleted.stderr));
    let gone = server.cli(&["secrets", "reveal", "openai-prod"], Some(&owner), None);
    assert_eq!(code(&gone), 3);

    assert!(server.stop().success());
    let log = server.log();
    assert!(
        !log.contains(VALUE) && !log.contains("sk-proj-SECOND"),
        "a value in the log"
    );
    for output in &outputs {
        assert!(
            !output.contains(VALUE),
            "a value in CLI output other than reveal"
        );
    }
    let db = std::fs::read(dir.path().join("keygate-data/keygate.db")).unwrap();
    for value in [VALUE, "sk-proj-SECOND"] {
        assert!(
            !db.windows(value.len()).any(|w| w == value.as_bytes()),
            "a value stored in plain text"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_with_an_upstream_check() {
    let upstream = keygate_testkit::upstream::OpenAiModels::start("sk-good")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    let put = server.cli(
        &["secrets", "put", "openai-prod"],
        Some(&owner),
        Some("sk-first"),
    );
    assert_eq!(code(&put), 0, "{}", text(&put.stderr));

    let url = upstream.url();
    let failed = server.cli(
        &[
            "secrets",
            "rotate",
            "openai-prod",
            "--check-url",
            &url,
            "--grace",
            "10m",
        ],
        Some(&owner),
        Some("sk-bad"),
    );
    assert_eq!(code(&failed), 5, "{}", text(&failed.stderr));
    assert!(text(&failed.stderr).contains("version 2 stays pending: the upstream answered 401"));
    let current = server.cli(&["secrets", "reveal", "openai-prod"], Some(&owner), None);
    assert_eq!(text(&current.stdout).trim(), "sk-first");

    // Once the upstream accepts it, the pending version is promoted by hand.
    upstream.accept("sk-bad");
    let promoted = server.cli(
        &[
            "secrets",
            "promote",
            "openai-prod",
            "--version",
            "2",
            "--json",
        ],
        Some(&owner),
        None,
    );
    assert_eq!(code(&promoted), 0, "{}", text(&promoted.stderr));
    let current = server.cli(&["secrets", "reveal", "openai-prod"], Some(&owner), None);
    assert_eq!(text(&current.stdout).trim(), "sk-bad");

    upstream.accept("sk-good");
    let passed = server.cli(
        &["secrets", "rotate", "openai-prod", "--check-url", &url],
        Some(&owner),
        Some("sk-good"),
    );
    assert_eq!(code(&passed), 0, "{}", text(&passed.stderr));
    assert!(text(&passed.stdout).contains("version 3 is current"));
    let current = server.cli(&["secrets", "reveal", "openai-prod"], Some(&owner), None);
    assert_eq!(text(&current.stdout).trim(), "sk-good");
    let rollback = server.cli(
        &["secrets", "promote", "openai-prod", "--version", "2"],
        Some(&owner),
        None,
    );
    assert_eq!(code(&rollback), 5, "{}", text(&rollback.stderr));
    assert!(!server.log().contains("sk-good"));
}
