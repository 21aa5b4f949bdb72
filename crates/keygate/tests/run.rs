//! `keygate run`: secrets reach the child's environment only, signals reach the child, and
//! the child's exit code comes back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use process::{ServerProcess, binary, text};

const VALUE: &str = "sk-upstream-run-test-0123456789";

fn code(output: &std::process::Output) -> i32 {
    output.status.code().expect("exit code")
}

/// A server with the secret `openai-prod` and an API key holding `scope`.
fn setup(dir: &std::path::Path, scope: &str) -> (ServerProcess, String) {
    let server = ServerProcess::start(dir, &[]);
    let owner = server.owner_token();
    let put = server.cli(
        &["secrets", "put", "openai-prod"],
        Some(&owner),
        Some(VALUE),
    );
    assert_eq!(code(&put), 0, "{}", text(&put.stderr));
    let key = server.cli(
        &[
            "keys", "create", "--name", "runner", "--scope", scope, "--quiet",
        ],
        Some(&owner),
        None,
    );
    assert_eq!(code(&key), 0, "{}", text(&key.stderr));
    (server, text(&key.stdout).trim().to_owned())
}

fn run(server: &ServerProcess, key: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("run")
        .args(args)
        .current_dir(&server.dir)
        .env("KEYGATE_URL", &server.url)
        .env("KEYGATE_API_KEY", key)
        .env_remove("KEYGATE_TOKEN");
    command
}

#[test]
fn the_child_gets_the_secret_and_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = setup(dir.path(), "secrets:read");
    let script = format!(
        "test \"$OPENAI_API_KEY\" = '{VALUE}' || exit 10; \
         test -z \"$KEYGATE_API_KEY\" || exit 11; exit 42"
    );
    let out = run(
        &server,
        &key,
        &[
            "--secret",
            "openai-prod=OPENAI_API_KEY",
            "--",
            "sh",
            "-c",
            &script,
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&out), 42, "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(VALUE) && !text(&out.stderr).contains(VALUE));
    assert!(!server.log().contains(VALUE));
}

#[test]
fn refusals_stop_before_the_child_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = setup(dir.path(), "chat:write");
    let marker = dir.path().join("started");
    let touch = format!("touch {}", marker.display());
    let denied = run(
        &server,
        &key,
        &[
            "--secret",
            "openai-prod=OPENAI_API_KEY",
            "--",
            "sh",
            "-c",
            &touch,
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&denied), 4, "{}", text(&denied.stderr));
    assert!(text(&denied.stderr).contains("scope_denied"));
    let missing = run(
        &server,
        &key,
        &["--secret", "nope=X", "--", "sh", "-c", &touch],
    )
    .output()
    .unwrap();
    assert_ne!(code(&missing), 0);
    let malformed = run(&server, &key, &["--secret", "nope", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(code(&malformed), 2);
    assert!(!marker.exists(), "the command never ran");
}

#[test]
fn signals_are_passed_on_and_the_exit_code_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = setup(dir.path(), "secrets:read:openai-prod");
    let mut child = run(
        &server,
        &key,
        &[
            "--secret",
            "openai-prod=TOKEN",
            "--",
            "sh",
            "-c",
            "trap 'exit 7' TERM; echo ready; while true; do sleep 0.05; done",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    std::thread::sleep(Duration::from_millis(100));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(7),
        "the child's trap ran and its code came back"
    );
}
