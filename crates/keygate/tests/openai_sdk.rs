//! The official OpenAI Python SDK, unchanged, against `keygate serve`: chat (JSON and
//! streamed), parallel tool calls, embeddings, the model list and the SDK's error classes,
//! through a mock OpenAI upstream. The suite itself is `tests/python/openai_sdk_test.py`;
//! `scripts/pyenv` installs the pinned SDK and names its interpreter in `KEYGATE_TEST_PYTHON`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use keygate_testkit::{MockOpenAi, SeenRequest};
use process::{ServerProcess, text};
use serde_json::Value;

const UPSTREAM_KEY: &str = "sk-upstream-test-0123456789";
/// Long enough for the suite on a slow machine; each SDK call also times out after 30 s.
const SUITE_DEADLINE: Duration = Duration::from_secs(300);

fn config(upstream: &MockOpenAi) -> String {
    format!(
        r#"
[providers.up]
kind = "openai"
base_url = "{origin}/v1"
credential = "secret::upstream"

[model_groups.chat]
deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]

[model_groups.tools]
deployments = [{{ provider = "up", model = "gpt-tools" }}]

[model_groups.embed]
deployments = [{{ provider = "up", model = "text-embedding-3-small" }}]

[model_groups.limited]
deployments = [{{ provider = "up", model = "gpt-ratelimit" }}]
retries = 0

[model_groups.broken]
deployments = [{{ provider = "up", model = "gpt-cut" }}]
"#,
        origin = upstream.origin()
    )
}

/// The interpreter of `scripts/pyenv`'s virtual environment. The test fails without it: a
/// skipped compatibility test would look like a passing one.
fn python() -> PathBuf {
    let Some(python) = std::env::var_os("KEYGATE_TEST_PYTHON") else {
        panic!(
            "KEYGATE_TEST_PYTHON is not set: run ./scripts/test, or eval \"$(scripts/pyenv)\" \
             before cargo test"
        );
    };
    let python = PathBuf::from(python);
    assert!(
        python.exists(),
        "KEYGATE_TEST_PYTHON={} does not exist: run eval \"$(scripts/pyenv)\" again",
        python.display()
    );
    python
}

fn create_key(server: &ServerProcess, owner: &str, name: &str, scope: &str) -> String {
    let created = server.cli(
        &[
            "keys", "create", "--name", name, "--scope", scope, "--quiet",
        ],
        Some(owner),
        None,
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    assert!(key.starts_with("kg_live_"), "{key}");
    key
}

/// What the Python suite left: its exit status (`None` when it overran the deadline), its
/// output and how long it took.
struct SuiteRun {
    status: Option<ExitStatus>,
    output: String,
    elapsed: Duration,
}

/// Runs the suite with `env`, its output in a file (no pipe to fill up), killed at the
/// deadline.
fn run_suite(python: &Path, dir: &Path, env: &[(&str, String)]) -> SuiteRun {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_sdk_test.py");
    let log_path = dir.join("python.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(python);
    command
        .arg("-m")
        .arg("unittest")
        .arg("-v")
        .arg(&suite)
        .current_dir(suite.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // The SDK reads OPENAI_* variables (organisation, project, base URL) and proxies from the
    // environment; the suite sees only what this test sets.
    for (name, _) in std::env::vars() {
        if name.starts_with("OPENAI_") || name.starts_with("KEYGATE_") {
            command.env_remove(name);
        }
    }
    command.env("NO_PROXY", "127.0.0.1,localhost");
    // No `__pycache__` beside the suite in the source tree.
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("start the Python suite");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SUITE_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    SuiteRun {
        status,
        output: std::fs::read_to_string(&log_path).unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The upstream requests to `path` whose body has `model`.
fn requests_for<'a>(seen: &'a [SeenRequest], path: &str, model: &str) -> Vec<&'a SeenRequest> {
    seen.iter()
        .filter(|r| r.path == path && r.json()["model"] == model)
        .collect()
}

/// The usage report once it counts `n` requests for `alias` (usage is written in batches).
fn usage_row(server: &ServerProcess, owner: &str, alias: &str, n: u64) -> Value {
    let mut report = Value::Null;
    for _ in 0..100 {
        let out = server.cli(&["usage", "--json"], Some(owner), None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        report = serde_json::from_slice(&out.stdout).unwrap();
        let row = report["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["group"] == alias)
            .cloned();
        if let Some(row) = row.filter(|row| row["requests"].as_u64() >= Some(n)) {
            return row;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("usage never reported {n} requests for `{alias}`: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_through_the_gateway() {
    let python = python();
    let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("keygate.toml");
    std::fs::write(&config_path, config(&upstream)).unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &[("KEYGATE_CONFIG", config_path.to_str().unwrap())],
    );
    let owner = server.owner_token();

    let put = server.cli(
        &["secrets", "put", "upstream", "--project", "default"],
        Some(&owner),
        Some(UPSTREAM_KEY),
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
    let key = create_key(&server, &owner, "sdk", "models:*");
    let narrow = create_key(&server, &owner, "sdk-narrow", "models:embed");

    let env = vec![
        ("KEYGATE_BASE_URL", format!("{}/v1", server.url)),
        ("KEYGATE_KEY", key.clone()),
        ("KEYGATE_NARROW_KEY", narrow.clone()),
    ];
    let work = dir.path().to_owned();
    let run = tokio::task::spawn_blocking(move || run_suite(&python, &work, &env))
        .await
        .unwrap();
    let report = format!(
        "--- Python suite ({:.1} s) ---\n{}\n--- keygate log (last 200 lines) ---\n{}",
        run.elapsed.as_secs_f64(),
        run.output,
        tail(&server.log(), 200)
    );
    match run.status {
        None => panic!("the Python suite overran {SUITE_DEADLINE:?}\n{report}"),
        Some(status) => assert!(status.success(), "the Python suite failed\n{report}"),
    }
    println!(
        "--- Python suite ({:.1} s) ---\n{}",
        run.elapsed.as_secs_f64(),
        run.output
    );

    // The upstream saw the vault's credential, never a keygate key.
    let seen = upstream.requests();
    assert!(!seen.is_empty());
    let bearer = format!("Bearer {UPSTREAM_KEY}");
    for request in &seen {
        assert_eq!(
            request.header("authorization"),
            Some(bearer.as_str()),
            "{} {}",
            request.method,
            request.path
        );
        let body = String::from_utf8_lossy(&request.body);
        for secret in [key.as_str(), narrow.as_str(), "kg_live_"] {
            assert!(
                !request.headers.iter().any(|(_, v)| v.contains(secret)) && !body.contains(secret),
                "a keygate key went upstream: {request:?}"
            );
        }
    }

    // What the SDK sent arrived as it was sent, with only the model renamed.
    let embeddings = requests_for(&seen, "/v1/embeddings", "text-embedding-3-small");
    // The SDK asks for base64 unless told otherwise, and decodes it itself.
    let formats: Vec<Value> = embeddings
        .iter()
        .map(|r| r.json()["encoding_format"].clone())
        .collect();
    assert!(formats.iter().any(|f| f == "base64"), "{formats:?}");
    assert!(formats.iter().any(|f| f == "float"), "{formats:?}");
    let chats = requests_for(&seen, "/v1/chat/completions", "gpt-4o-mini");
    assert!(
        chats
            .iter()
            .any(|r| r.json()["response_format"]["type"] == "json_object"),
        "response_format did not reach the upstream"
    );
    let tools = requests_for(&seen, "/v1/chat/completions", "gpt-tools");
    assert!(
        tools.iter().all(|r| {
            let body = r.json();
            body["tools"].as_array().map(Vec::len) == Some(2) && body["parallel_tool_calls"] == true
        }),
        "tools did not reach the upstream"
    );

    // Every chat request the upstream answered is in the usage report, with tokens, and so
    // is the narrow key's one refused attempt at `chat` (`model_not_allowed`).
    let expected = chats.len() as u64 + 1;
    let row = usage_row(&server, &owner, "chat", expected);
    assert_eq!(row["requests"].as_u64(), Some(expected), "{row}");
    assert_eq!(row["errors"].as_u64(), Some(1), "{row}");
    assert!(row["prompt_tokens"].as_u64().unwrap() > 0, "{row}");
    assert!(row["completion_tokens"].as_u64().unwrap() > 0, "{row}");
}
