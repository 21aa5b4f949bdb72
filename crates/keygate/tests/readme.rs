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
    let fence = block.find("```").expect("a fence");
    let body_start = fence + block[fence..].find('\n').expect("fence line") + 1;
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

/// The gateway section: its `keygate.toml` as written, with the providers' base URLs pointed at
/// mock upstreams, and its shell block run as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_gateway_runs_as_written() {
    let openai = keygate_testkit::MockOpenAi::start("openai", "sk-your-openai-key")
        .await
        .unwrap();
    let groq = keygate_testkit::MockOpenAi::start("groq", "gsk-readme-test")
        .await
        .unwrap();
    let anthropic = keygate_testkit::MockAnthropic::start("anthropic", "sk-ant-readme-test")
        .await
        .unwrap();
    let config = block("gateway-config")
        .replace(
            "kind = \"openai\"\n",
            &format!("kind = \"openai\"\nbase_url = \"{}/v1\"\n", openai.origin()),
        )
        .replace(
            "kind = \"groq\"\n",
            &format!("kind = \"groq\"\nbase_url = \"{}/v1\"\n", groq.origin()),
        )
        .replace(
            "kind = \"anthropic\"\n",
            &format!(
                "kind = \"anthropic\"\nbase_url = \"{}/v1\"\n",
                anthropic.origin()
            ),
        );
    assert_eq!(config.matches("base_url").count(), 3, "{config}");
    let (stdout, stderr, ok, log) = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keygate.toml");
        std::fs::write(&path, config).unwrap();
        let mut server = ServerProcess::start(
            dir.path(),
            &[
                ("KEYGATE_CONFIG", path.to_str().unwrap()),
                ("GROQ_API_KEY", "gsk-readme-test"),
                ("ANTHROPIC_API_KEY", "sk-ant-readme-test"),
            ],
        );
        let bin_dir = binary().parent().unwrap().to_owned();
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block("gateway")])
            .current_dir(dir.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin_dir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("KEYGATE_URL", &server.url)
            .env("KEYGATE_CONFIG", &path)
            .env_remove("KEYGATE_TOKEN")
            .output()
            .unwrap();
        let log = server.log();
        assert!(server.stop().success(), "graceful shutdown");
        (
            text(&output.stdout),
            text(&output.stderr),
            output.status.success(),
            log,
        )
    })
    .await
    .unwrap();
    assert!(
        ok,
        "gateway walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{log}"
    );
    assert_eq!(
        stdout.matches("Hello from openai: Hello!").count(),
        2,
        "once for the OpenAI client, once for the Anthropic one: {stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.trim() == "chat"),
        "the key lists only `chat`: {stdout}"
    );
    assert!(!stdout.lines().any(|l| l.trim() == "fast"), "{stdout}");
    assert!(
        stdout.contains("REQUESTS") && stdout.contains("COST (USD)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("200 200 429"),
        "the capped key's third request is refused: {stdout}"
    );
    for line in [
        "key tokens per minute: 100000 left",
        "key budget per day: 2.000000 left",
        "project budget per month: 50.000000 left",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line}: {stdout}");
    }
    let seen = openai.requests();
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer sk-your-openai-key"),
        "the vault's key went upstream"
    );
    assert_eq!(groq.request_count(), 0);
    assert_eq!(
        seen[1].json()["messages"][0]["content"],
        "Hello!",
        "the Anthropic request reached OpenAI translated"
    );
    assert_eq!(anthropic.request_count(), 0);
}
