//! Claude Code, the real CLI, unchanged, through `keygate serve`: print mode with
//! `ANTHROPIC_BASE_URL` at keygate and a keygate key as `ANTHROPIC_API_KEY`, its model served
//! by a mock Anthropic, OpenAI or Gemini upstream. For each provider: a plain answer, and a
//! tool loop — the agent reads a file, edits it and reports — that must end with the file
//! changed (the mocks' scripted agent model, `keygate_testkit`'s `mock_agent`). Claude Code's
//! requests carry everything it really sends (adaptive thinking, effort, context editing,
//! cache markers, deferred tools, system turns, its beta list): translated for OpenAI and
//! Gemini, passed on as they are to Anthropic. `scripts/agents` installs the pinned CLI and
//! names it in `KEYGATE_TEST_CLAUDE`.
//!
//! The Codex CLI likewise (`codex exec`, keygate configured as a model provider speaking the
//! Responses API): its requests go as they are to OpenAI's own Responses API and translated to
//! Anthropic and Gemini; a plain answer, and the same edit through its shell tool.
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

use std::path::{Path, PathBuf};
use std::time::Duration;

use keygate_testkit::{MockAnthropic, MockGemini, MockOpenAi, SeenRequest};
use process::ServerProcess;
use python::{assert_credential, assert_no_keygate_key, create_key, tail};
use serde_json::Value;

const ANTHROPIC_KEY: &str = "sk-ant-upstream-agent-0123456789";
const OPENAI_KEY: &str = "sk-upstream-openai-agent-0123456789";
const GEMINI_KEY: &str = "AIza-upstream-gemini-agent-0123456789";

/// Each run of the CLI; a tool loop takes three model calls.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

/// The Claude Code binary of `scripts/agents`. The test fails without it: a skipped
/// compatibility test would look like a passing one.
fn claude() -> PathBuf {
    let Some(path) = std::env::var_os("KEYGATE_TEST_CLAUDE") else {
        panic!(
            "KEYGATE_TEST_CLAUDE is not set: run ./scripts/test, or eval \"$(scripts/agents)\" \
             before cargo test"
        );
    };
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "KEYGATE_TEST_CLAUDE={} does not exist",
        path.display()
    );
    path
}

fn config(anthropic: &MockAnthropic, openai: &MockOpenAi, gemini: &MockGemini) -> String {
    format!(
        r#"
[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic}/v1"
credential = "env::UPSTREAM_ANTHROPIC_KEY"

[providers.openai]
kind = "openai"
base_url = "{openai}/v1"
credential = "env::UPSTREAM_OPENAI_KEY"

[providers.gemini]
kind = "gemini"
base_url = "{gemini}/v1beta"
credential = "env::UPSTREAM_GEMINI_KEY"

[model_groups.plain-anthropic]
deployments = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]

[model_groups.plain-openai]
deployments = [{{ provider = "openai", model = "gpt-4.1" }}]

[model_groups.plain-gemini]
deployments = [{{ provider = "gemini", model = "gemini-2.5-pro" }}]

[model_groups.agent-anthropic]
deployments = [{{ provider = "anthropic", model = "claude-agent" }}]

[model_groups.agent-openai]
deployments = [{{ provider = "openai", model = "gpt-5-agent" }}]

[model_groups.agent-gemini]
deployments = [{{ provider = "gemini", model = "gemini-3-agent" }}]
"#,
        anthropic = anthropic.origin(),
        openai = openai.origin(),
        gemini = gemini.origin(),
    )
}

/// What one print-mode run printed: its JSON result, and its stderr for failures.
struct Run {
    result: Value,
    stderr: String,
}

/// Runs `claude -p PROMPT --output-format json` in `work`, against keygate, with
/// `ANTHROPIC_MODEL=MODEL`.
async fn run_claude(
    server: &ServerProcess,
    key: &str,
    home: &Path,
    work: &Path,
    model: &str,
    prompt: &str,
) -> Run {
    let mut command = tokio::process::Command::new(claude());
    command
        .args(["-p", prompt, "--output-format", "json"])
        .args([
            "--allowedTools",
            "Read,Edit",
            "--permission-mode",
            "acceptEdits",
        ])
        .current_dir(work)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", &server.url)
        .env("ANTHROPIC_API_KEY", key)
        // As the README says: the model group in ANTHROPIC_MODEL.
        .env("ANTHROPIC_MODEL", model)
        // Side tasks (titles, summaries) go to the "small, fast" model: the same group.
        .env("ANTHROPIC_SMALL_FAST_MODEL", model)
        .env("ANTHROPIC_DEFAULT_HAIKU_MODEL", model)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("claude ({model}) finished within {RUN_DEADLINE:?}"))
        .expect("claude runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let result = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "claude ({model}) printed no JSON result (status {}):\n{stdout}\n{stderr}\nkeygate:\n{}",
            output.status,
            tail(&server.log(), 30)
        )
    });
    Run { result, stderr }
}

fn assert_succeeded(run: &Run, model: &str, server: &ServerProcess) {
    assert!(
        run.result["is_error"] == false && run.result["subtype"] == "success",
        "claude ({model}) failed: {}\n{}\nkeygate:\n{}",
        run.result,
        run.stderr,
        tail(&server.log(), 30)
    );
}

/// The models the requests in `seen` asked for.
fn models(seen: &[SeenRequest]) -> Vec<String> {
    seen.iter()
        .filter_map(|r| {
            r.json()["model"].as_str().map(str::to_owned).or_else(|| {
                // Gemini names the model in the path.
                r.path
                    .rsplit('/')
                    .next()
                    .and_then(|m| m.split(':').next())
                    .map(str::to_owned)
            })
        })
        .collect()
}

/// keygate with a mock upstream of each provider, a key that may use every group, and the
/// agent's home.
struct Agents {
    anthropic: MockAnthropic,
    openai: MockOpenAi,
    gemini: MockGemini,
    dir: tempfile::TempDir,
    server: ServerProcess,
    key: String,
    home: PathBuf,
}

impl Agents {
    async fn start(agent: &str) -> Self {
        let anthropic = MockAnthropic::start("anthropic", ANTHROPIC_KEY)
            .await
            .unwrap();
        let openai = MockOpenAi::start("openai", OPENAI_KEY).await.unwrap();
        let gemini = MockGemini::start("gemini", GEMINI_KEY).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("keygate.toml");
        std::fs::write(&config_path, config(&anthropic, &openai, &gemini)).unwrap();
        let server = ServerProcess::start(
            dir.path(),
            &[
                ("KEYGATE_CONFIG", config_path.to_str().unwrap()),
                ("UPSTREAM_ANTHROPIC_KEY", ANTHROPIC_KEY),
                ("UPSTREAM_OPENAI_KEY", OPENAI_KEY),
                ("UPSTREAM_GEMINI_KEY", GEMINI_KEY),
            ],
        );
        let owner = server.owner_token();
        let key = create_key(&server, &owner, agent, "models:*");
        let home = dir.path().join(format!("{agent}-home"));
        std::fs::create_dir_all(&home).unwrap();
        Self {
            anthropic,
            openai,
            gemini,
            dir,
            server,
            key,
            home,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_works_through_keygate_on_every_provider() {
    let Agents {
        anthropic,
        openai,
        gemini,
        dir,
        server,
        key,
        home,
    } = Agents::start("claude-code").await;

    for provider in ["anthropic", "openai", "gemini"] {
        let work = dir.path().join(provider);
        std::fs::create_dir_all(&work).unwrap();

        let plain = format!("plain-{provider}");
        let run = run_claude(&server, &key, &home, &work, &plain, "Say hello").await;
        assert_succeeded(&run, &plain, &server);
        let answer = run.result["result"].as_str().unwrap_or_default();
        assert!(
            answer.starts_with(&format!("Hello from {provider}")),
            "{plain}: {answer}"
        );

        let notes = work.join("notes.txt");
        std::fs::write(&notes, "a draft note\n").unwrap();
        let agent = format!("agent-{provider}");
        let prompt = format!("Make this edit: [[edit {} draft final]]", notes.display());
        let run = run_claude(&server, &key, &home, &work, &agent, &prompt).await;
        assert_succeeded(&run, &agent, &server);
        assert_eq!(
            std::fs::read_to_string(&notes).unwrap(),
            "a final note\n",
            "{agent}: the agent's edit went through ({})",
            run.result
        );
        let answer = run.result["result"].as_str().unwrap_or_default();
        assert!(
            answer.starts_with("Done: replaced draft with final"),
            "{agent}: {answer}"
        );
        assert!(
            run.result["num_turns"].as_u64().unwrap_or_default() >= 3,
            "{}",
            run.result
        );
    }

    // Each upstream served its own groups, with its own credential and never a keygate key.
    let seen_anthropic = anthropic.requests();
    let seen_openai = openai.requests();
    let seen_gemini = gemini.requests();
    for (seen, plain, agent) in [
        (&seen_anthropic, "claude-sonnet-4-5", "claude-agent"),
        (&seen_openai, "gpt-4.1", "gpt-5-agent"),
        (&seen_gemini, "gemini-2.5-pro", "gemini-3-agent"),
    ] {
        let models = models(seen);
        assert!(models.iter().any(|m| m == plain), "{models:?}");
        assert!(
            models.iter().filter(|m| *m == agent).count() >= 3,
            "{models:?}"
        );
        assert_no_keygate_key(seen, &[&key]);
    }
    assert_credential(&seen_anthropic, "x-api-key", ANTHROPIC_KEY);
    assert_credential(
        &seen_openai,
        "authorization",
        &format!("Bearer {OPENAI_KEY}"),
    );
    assert_credential(&seen_gemini, "x-goog-api-key", GEMINI_KEY);

    // Anthropic got Claude Code's request as it was sent, its beta list included; the others
    // got it translated, with the reasoning their models take and without Anthropic's hints.
    let claude_request = seen_anthropic
        .iter()
        .find(|r| r.path.ends_with("/v1/messages"))
        .unwrap();
    assert!(
        claude_request
            .header("anthropic-beta")
            .is_some_and(|b| b.contains("claude-code"))
    );
    assert!(claude_request.json().get("context_management").is_some());
    let gpt = seen_openai
        .iter()
        .map(SeenRequest::json)
        .find(|b| b["model"] == "gpt-5-agent")
        .unwrap();
    assert!(gpt.get("reasoning_effort").is_some(), "{gpt}");
    assert!(!gpt.to_string().contains("cache_control"));
    let plain_gpt = seen_openai
        .iter()
        .map(SeenRequest::json)
        .find(|b| b["model"] == "gpt-4.1")
        .unwrap();
    assert!(
        plain_gpt.get("reasoning_effort").is_none(),
        "gpt-4.1 does not reason"
    );
    for request in seen_openai.iter().chain(&seen_gemini) {
        assert!(request.header("anthropic-beta").is_none());
    }
}

/// The Codex CLI of `scripts/agents`; the test fails without it.
fn codex() -> PathBuf {
    let Some(path) = std::env::var_os("KEYGATE_TEST_CODEX") else {
        panic!(
            "KEYGATE_TEST_CODEX is not set: run ./scripts/test, or eval \"$(scripts/agents)\" \
             before cargo test"
        );
    };
    PathBuf::from(path)
}

/// Runs `codex exec PROMPT` in `work` against keygate as a provider of its own (the Responses
/// API at keygate's `/v1`, a keygate key in `KEYGATE_API_KEY`), with `MODEL` as its model;
/// returns the agent's last message.
async fn run_codex(
    server: &ServerProcess,
    key: &str,
    home: &Path,
    work: &Path,
    model: &str,
    prompt: &str,
) -> String {
    // As the README says: keygate as a model provider in Codex's config.
    let config = format!(
        "model_provider = \"keygate\"\n\
         [model_providers.keygate]\n\
         name = \"keygate\"\n\
         base_url = \"{}/v1\"\n\
         env_key = \"KEYGATE_API_KEY\"\n\
         wire_api = \"responses\"\n",
        server.url
    );
    std::fs::write(home.join("config.toml"), config).unwrap();
    let last = work.join("last-message.txt");
    let mut command = tokio::process::Command::new(codex());
    command
        .args([
            "exec",
            "--skip-git-repo-check",
            "--ephemeral",
            "--color",
            "never",
        ])
        .args(["--model", model, "--sandbox", "workspace-write"])
        .arg("--output-last-message")
        .arg(&last)
        .arg(prompt)
        .current_dir(work)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CODEX_HOME", home)
        .env("KEYGATE_API_KEY", key)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("codex ({model}) finished within {RUN_DEADLINE:?}"))
        .expect("codex runs");
    let message = std::fs::read_to_string(&last).unwrap_or_default();
    assert!(
        output.status.success() && !message.is_empty(),
        "codex ({model}) failed (status {}):\n{}\n{}\nkeygate:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        tail(&server.log(), 30)
    );
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_works_through_keygate_on_every_provider() {
    let Agents {
        anthropic,
        openai,
        gemini,
        dir,
        server,
        key,
        home,
    } = Agents::start("codex").await;

    for provider in ["openai", "anthropic", "gemini"] {
        let work = dir.path().join(format!("codex-{provider}"));
        std::fs::create_dir_all(&work).unwrap();
        let plain = format!("plain-{provider}");
        let answer = run_codex(&server, &key, &home, &work, &plain, "Say hello").await;
        assert!(
            answer.starts_with(&format!("Hello from {provider}")),
            "{plain}: {answer}"
        );

        // A tool loop through Codex's shell: read the file, edit it, report.
        let notes = work.join("notes.txt");
        std::fs::write(&notes, "a draft note\n").unwrap();
        let agent = format!("agent-{provider}");
        let prompt = format!("Make this edit: [[edit {} draft final]]", notes.display());
        let answer = run_codex(&server, &key, &home, &work, &agent, &prompt).await;
        assert_eq!(
            std::fs::read_to_string(&notes).unwrap(),
            "a final note\n",
            "{agent}: the agent's edit went through ({answer})"
        );
        assert!(
            answer.starts_with("Done: replaced draft with final"),
            "{agent}: {answer}"
        );
    }

    // OpenAI's own Responses API got Codex's requests as sent; the others, translated.
    let seen_openai = openai.requests();
    let responses: Vec<Value> = seen_openai
        .iter()
        .filter(|r| r.path == "/v1/responses")
        .map(SeenRequest::json)
        .collect();
    assert!(!responses.is_empty());
    let models: Vec<&Value> = responses.iter().map(|b| &b["model"]).collect();
    assert!(models.contains(&&Value::from("gpt-4.1")), "{models:?}");
    assert!(
        models.iter().filter(|m| **m == "gpt-5-agent").count() >= 3,
        "{models:?}"
    );
    // Its tool calls came back as function calls with their outputs, in each format.
    assert!(responses.iter().any(|b| {
        b["input"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["type"] == "function_call_output"))
    }));
    assert!(
        anthropic
            .requests()
            .iter()
            .any(|r| r.path == "/v1/messages")
    );
    assert!(gemini.request_count() > 0);
    for seen in [&seen_openai, &anthropic.requests(), &gemini.requests()] {
        assert_no_keygate_key(seen, &[&key]);
    }
}
