//! `keygate scan` end to end: the binary on repositories made by the real `git` — the tree,
//! the staged changes and the whole history —, its SARIF checked against the SARIF 2.1.0
//! schema, the pre-commit hook refusing a real commit, and keygate keys found verified and
//! reported to a running server, which then refuses them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;
#[path = "support/python.rs"]
mod python;

#[path = "scan/hook.rs"]
mod hook;
#[path = "scan/repository.rs"]
mod repository;
#[path = "scan/server.rs"]
mod server;

use std::path::Path;
use std::process::{Command, Output};

use process::{run_cli, text};
use serde_json::Value;

/// Runs `git ARGS` in `dir`, with an identity and no user configuration; fails the test if
/// git does.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_output(dir, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub fn git_output(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git is installed")
}

/// `keygate scan ARGS` in `dir`.
pub fn scan(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["scan"];
    all.extend_from_slice(args);
    run_cli(dir, &all, &[], None, None)
}

/// `keygate scan ARGS --format json` in `dir`: the exit code and the report.
pub fn scan_json(dir: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--format", "json"]);
    let out = scan(dir, &all);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON:\n{}\n{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code().expect("an exit code"), report)
}

/// The (rule, path) of each finding, in the report's order.
pub fn found(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule_id"].as_str().unwrap().to_owned(),
                f["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A fresh keygate key of the real format (prefix, secret, checksum).
pub fn keygate_key() -> String {
    keygate_core::ApiKey::generate(keygate_core::KeyEnv::Live)
        .unwrap()
        .expose()
        .to_owned()
}

/// keygate's own repository holds no secret outside the fixtures its `.gitleaks.toml` names:
/// a test key pasted into the code fails this test before it is pushed.
#[test]
fn this_repository_scans_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = scan(&root, &["--no-progress"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}
