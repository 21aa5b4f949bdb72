//! The official Anthropic Python SDK, unchanged, against `keygate serve`: messages (JSON and
//! streamed, system prompts, several turns, images), parallel tool use and tool results,
//! `max_tokens` stops, the model list and the SDK's error classes, with each model group
//! served by a mock Anthropic, OpenAI or Gemini upstream. The suite itself is
//! `tests/python/anthropic_sdk_test.py`; `scripts/pyenv` installs the pinned SDK and names its
//! interpreter in `KEYGATE_TEST_PYTHON`.
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

use keygate_testkit::{MockAnthropic, MockGemini, MockOpenAi, SeenRequest};
use process::ServerProcess;
use python::{
    assert_credential, assert_no_keygate_key, assert_passed, create_key, put_secret, run_suite,
};
use serde_json::{Value, json};

/// The Anthropic credential lives in keygate's vault; the other two come from keygate's
/// environment.
const ANTHROPIC_KEY: &str = "sk-ant-upstream-test-0123456789";
const OPENAI_KEY: &str = "sk-upstream-openai-test-0123456789";
const GEMINI_KEY: &str = "AIza-upstream-gemini-test-0123456789";

/// Text the suite puts only in requests keygate must refuse before any upstream sees them.
const REFUSED_MARKER: &str = "never-sent-upstream";

fn config(anthropic: &MockAnthropic, openai: &MockOpenAi, gemini: &MockGemini) -> String {
    format!(
        r#"
[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic}/v1"
credential = "secret::anthropic"

[providers.openai]
kind = "openai"
base_url = "{openai}/v1"
credential = "env::UPSTREAM_OPENAI_KEY"

[providers.gemini]
kind = "gemini"
base_url = "{gemini}/v1beta"
credential = "env::UPSTREAM_GEMINI_KEY"

[model_groups.claude]
deployments = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]

[model_groups.claude-tools]
deployments = [{{ provider = "anthropic", model = "claude-tools" }}]

[model_groups.claude-maxtokens]
deployments = [{{ provider = "anthropic", model = "claude-maxtokens" }}]

[model_groups.claude-limited]
deployments = [{{ provider = "anthropic", model = "claude-ratelimit" }}]
retries = 0

# The same refusal for a stream, on a deployment of its own: a 429 puts the deployment
# it came from in cooldown, and the next request would get keygate's 503 instead.
[model_groups.claude-limited-stream]
deployments = [{{ provider = "anthropic", model = "claude-ratelimit-stream" }}]
retries = 0

[model_groups.claude-broken]
deployments = [{{ provider = "anthropic", model = "claude-streamerror" }}]
retries = 0

[model_groups.claude-cut]
deployments = [{{ provider = "anthropic", model = "claude-cut" }}]
retries = 0

[model_groups.gpt]
deployments = [{{ provider = "openai", model = "gpt-4o-mini" }}]

[model_groups.gpt-tools]
deployments = [{{ provider = "openai", model = "gpt-tools" }}]

[model_groups.gpt-broken]
deployments = [{{ provider = "openai", model = "gpt-cut" }}]
retries = 0

[model_groups.gemini]
deployments = [{{ provider = "gemini", model = "gemini-2.5-flash" }}]

[model_groups.gemini-tools]
deployments = [{{ provider = "gemini", model = "gemini-tools" }}]

[model_groups.gemini-maxtokens]
deployments = [{{ provider = "gemini", model = "gemini-maxtokens" }}]

[model_groups.gemini-broken]
deployments = [{{ provider = "gemini", model = "gemini-cut" }}]
retries = 0
"#,
        anthropic = anthropic.origin(),
        openai = openai.origin(),
        gemini = gemini.origin(),
    )
}

/// The JSON bodies of the requests in `seen`.
fn bodies(seen: &[SeenRequest]) -> Vec<Value> {
    seen.iter().map(SeenRequest::json).collect()
}

/// Whether any body has `needle` somewhere in its text.
fn any_body_has(bodies: &[Value], needle: &str) -> bool {
    bodies.iter().any(|body| body.to_string().contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_anthropic_sdk_works_through_the_gateway() {
    let python = python::python();
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
            ("UPSTREAM_OPENAI_KEY", OPENAI_KEY),
            ("UPSTREAM_GEMINI_KEY", GEMINI_KEY),
        ],
    );
    let owner = server.owner_token();
    put_secret(&server, &owner, "anthropic", ANTHROPIC_KEY);
    let key = create_key(&server, &owner, "sdk", "models:*");
    let narrow = create_key(&server, &owner, "sdk-narrow", "models:gpt");

    // The SDK appends `/v1/messages` itself: the base URL is the bare origin.
    let env = vec![
        ("KEYGATE_ORIGIN", server.url.clone()),
        ("KEYGATE_KEY", key.clone()),
        ("KEYGATE_NARROW_KEY", narrow.clone()),
        ("KEYGATE_REFUSED_MARKER", REFUSED_MARKER.to_owned()),
    ];
    let work = dir.path().to_owned();
    let run = tokio::task::spawn_blocking(move || {
        run_suite(&python, "anthropic_sdk_test.py", &work, &env)
    })
    .await
    .unwrap();
    assert_passed(&run, &server);

    // Each upstream saw its own credential, the way its API takes it, and never a keygate key.
    let seen_anthropic = anthropic.requests();
    let seen_openai = openai.requests();
    let seen_gemini = gemini.requests();
    assert_credential(&seen_anthropic, "x-api-key", ANTHROPIC_KEY);
    assert_credential(
        &seen_openai,
        "authorization",
        &format!("Bearer {OPENAI_KEY}"),
    );
    assert_credential(&seen_gemini, "x-goog-api-key", GEMINI_KEY);
    for seen in [&seen_anthropic, &seen_openai, &seen_gemini] {
        assert_no_keygate_key(seen, &[&key, &narrow]);
    }

    // What keygate refused never left it.
    let anthropic_bodies = bodies(&seen_anthropic);
    let openai_bodies = bodies(&seen_openai);
    let gemini_bodies = bodies(&seen_gemini);
    for sent in [&anthropic_bodies, &openai_bodies, &gemini_bodies] {
        assert!(!any_body_has(sent, REFUSED_MARKER), "{sent:?}");
    }

    // Anthropic is spoken to as it was spoken to: system prompt, image and tool results as
    // sent, only the model renamed.
    assert!(
        anthropic_bodies
            .iter()
            .any(|b| b["system"] == "Answer in one short sentence."),
        "the system prompt did not reach Anthropic"
    );
    let upstream_models = [
        "claude-sonnet-4-5",
        "claude-tools",
        "claude-maxtokens",
        "claude-ratelimit",
        "claude-ratelimit-stream",
        "claude-streamerror",
        "claude-cut",
    ];
    for body in &anthropic_bodies {
        assert!(
            upstream_models.iter().any(|m| body["model"] == *m),
            "not a deployment's model: {body}"
        );
    }
    assert!(any_body_has(&anthropic_bodies, "\"tool_result\""));
    assert!(any_body_has(&anthropic_bodies, "\"is_error\":true"));
    assert!(any_body_has(
        &anthropic_bodies,
        "\"media_type\":\"image/png\""
    ));
    assert!(anthropic_bodies.iter().any(|b| {
        b["tools"].as_array().map(Vec::len) == Some(2) && b["model"] == "claude-tools"
    }));

    // OpenAI gets the system prompt as a message, images as data URLs and results as `tool`
    // messages.
    assert!(openai_bodies.iter().any(|b| {
        b["messages"][0] == json!({"role": "system", "content": "Answer in one short sentence."})
    }));
    assert!(any_body_has(&openai_bodies, "data:image/png;base64,"));
    assert!(openai_bodies.iter().any(|b| {
        b["messages"]
            .as_array()
            .is_some_and(|m| m.iter().filter(|m| m["role"] == "tool").count() == 2)
    }));
    // OpenAI has no error flag on a tool result: it goes in the text.
    assert!(any_body_has(&openai_bodies, "Error: no clock here"));

    // Gemini gets a system instruction, inline data and function responses.
    assert!(any_body_has(
        &gemini_bodies,
        "Answer in one short sentence."
    ));
    assert!(
        gemini_bodies
            .iter()
            .any(|b| b.get("systemInstruction").is_some() || b.get("system_instruction").is_some())
    );
    assert!(any_body_has(&gemini_bodies, "image/png"));
    assert!(gemini_bodies.iter().any(|b| {
        b["contents"].as_array().is_some_and(|turns| {
            turns
                .iter()
                .flat_map(|t| t["parts"].as_array().into_iter().flatten())
                .any(|p| p["functionResponse"]["response"] == json!({"error": "no clock here"}))
        })
    }));
}
