//! The README's walkthroughs, run exactly as written against a fresh `keygate serve`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use std::process::Command;

use process::{ServerProcess, binary, text};

const README: &str = include_str!("../../../README.md");

/// The shell block between the `name` markers.
fn block(name: &str) -> String {
    let start = README
        .find(&format!("<!-- {name}:start -->"))
        .expect("start marker");
    let end = README
        .find(&format!("<!-- {name}:end -->"))
        .expect("end marker");
    let block = &README[start..end];
    let body_start = block.find("```sh\n").expect("sh fence") + "```sh\n".len();
    let body_end = block.rfind("```").expect("closing fence");
    block[body_start..body_end].to_owned()
}

#[test]
fn readme_walkthrough_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let bin_dir = binary().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args([
            "-euo",
            "pipefail",
            "-c",
            &format!("{}\n{}", block("walkthrough"), block("secrets")),
        ])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("KEYGATE_URL", &server.url)
        .env_remove("KEYGATE_TOKEN")
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
        server.log()
    );
    for expected in [
        "valid: key_",
        "\"valid\":true",
        "billing-backend",
        "refused: key_revoked",
        "refused, as expected",
        "key.revoke",
        "audit log intact",
        "the child has the key",
        "sk-example-upstream-key",
        "secret.reveal",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    // Both secrets were valid during the grace period: two "valid" lines after the rotation.
    assert_eq!(stdout.matches("valid: key_").count(), 3, "{stdout}");
    assert!(server.stop().success(), "graceful shutdown");
}
