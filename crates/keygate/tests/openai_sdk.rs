//! The official OpenAI Python SDK, unchanged, against `keygate serve`: chat (JSON and
//! streamed), parallel tool calls, embeddings, the model list and the SDK's error classes,
//! through a mock OpenAI upstream, and chat and tools through mock Anthropic and Gemini
//! upstreams, translated; and the Responses API (`tests/python/responses_sdk_test.py`) served
//! by OpenAI's own, by a chat-only server, by Anthropic and by Gemini; and the SDK's helpers
//! for the legacy completions, moderations, images, speech, transcriptions and Gemini embeddings
//! (`tests/python/endpoints_sdk_test.py`). The first suite is
//! `tests/python/openai_sdk_test.py`;
//! `scripts/pyenv` installs the pinned SDK and names its interpreter in `KEYGATE_TEST_PYTHON`.
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

use std::time::Duration;

use keygate_testkit::{MockAnthropic, MockGemini, MockOpenAi, SeenRequest};
use process::{ServerProcess, text, verify};
use python::{
    assert_credential, assert_no_keygate_key, assert_passed, create_key, put_secret, run_suite,
};
use serde_json::Value;

/// The OpenAI credential lives in keygate's vault; the other two come from keygate's
/// environment.
const UPSTREAM_KEY: &str = "sk-upstream-test-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-upstream-test-0123456789";
const GEMINI_KEY: &str = "AIza-upstream-gemini-test-0123456789";

fn config(upstream: &MockOpenAi, anthropic: &MockAnthropic, gemini: &MockGemini) -> String {
    format!(
        r#"
[providers.up]
kind = "openai"
base_url = "{origin}/v1"
credential = "secret::upstream"

[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic}/v1"
credential = "env::UPSTREAM_ANTHROPIC_KEY"

[providers.gemini]
kind = "gemini"
base_url = "{gemini}/v1beta"
credential = "env::UPSTREAM_GEMINI_KEY"

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

[model_groups.claude]
deployments = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]

[model_groups.claude-tools]
deployments = [{{ provider = "anthropic", model = "claude-tools" }}]

[model_groups.claude-broken]
deployments = [{{ provider = "anthropic", model = "claude-streamerror" }}]
retries = 0

[model_groups.gemini]
deployments = [{{ provider = "gemini", model = "gemini-2.5-flash" }}]

[model_groups.gemini-tools]
deployments = [{{ provider = "gemini", model = "gemini-tools" }}]

[model_groups.gemini-broken]
deployments = [{{ provider = "gemini", model = "gemini-cut" }}]
retries = 0
"#,
        origin = upstream.origin(),
        anthropic = anthropic.origin(),
        gemini = gemini.origin(),
    )
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

/// Runs the Python suite `suite` against `server` with `env`, and fails with its output unless
/// it passed.
async fn passes(
    suite: &'static str,
    dir: &std::path::Path,
    env: Vec<(&'static str, String)>,
    server: &ServerProcess,
) {
    let python = python::python();
    let work = dir.to_owned();
    let run = tokio::task::spawn_blocking(move || run_suite(&python, suite, &work, &env))
        .await
        .unwrap();
    assert_passed(&run, server);
}

/// keygate serving the mocks' model groups (and `extra` tables, where `{origin}` is the
/// OpenAI mock's), the OpenAI credential in the vault, and its owner's token.
struct Gateway {
    upstream: MockOpenAi,
    anthropic: MockAnthropic,
    gemini: MockGemini,
    dir: tempfile::TempDir,
    server: ServerProcess,
    owner: String,
}

impl Gateway {
    async fn start(extra: &str) -> Self {
        let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
        let anthropic = MockAnthropic::start("anthropic", ANTHROPIC_KEY)
            .await
            .unwrap();
        let gemini = MockGemini::start("gemini", GEMINI_KEY).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("keygate.toml");
        let config =
            config(&upstream, &anthropic, &gemini) + &extra.replace("{origin}", &upstream.origin());
        std::fs::write(&config_path, config).unwrap();
        let server = ServerProcess::start(
            dir.path(),
            &[
                ("KEYGATE_CONFIG", config_path.to_str().unwrap()),
                ("UPSTREAM_ANTHROPIC_KEY", ANTHROPIC_KEY),
                ("UPSTREAM_GEMINI_KEY", GEMINI_KEY),
            ],
        );
        let owner = server.owner_token();
        put_secret(&server, &owner, "upstream", UPSTREAM_KEY);
        Self {
            upstream,
            anthropic,
            gemini,
            dir,
            server,
            owner,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_through_the_gateway() {
    let Gateway {
        upstream,
        anthropic,
        gemini,
        dir,
        server,
        owner,
    } = Gateway::start("").await;
    let key = create_key(&server, &owner, "sdk", "models:*");
    let narrow = create_key(&server, &owner, "sdk-narrow", "models:embed");
    // A key whose quota of one use a day is spent (a verification is a use).
    let spent = server.cli(
        &[
            "keys",
            "create",
            "--name",
            "sdk-spent",
            "--scope",
            "models:*",
            "--quota",
            "1/day",
            "--quiet",
        ],
        Some(&owner),
        None,
    );
    assert!(spent.status.success(), "{}", text(&spent.stderr));
    let spent = text(&spent.stdout).trim().to_owned();
    let used = verify(&reqwest::Client::new(), &server.url, &spent).await;
    assert_eq!(used["code"], "valid", "{used}");

    let env = vec![
        ("KEYGATE_BASE_URL", format!("{}/v1", server.url)),
        ("KEYGATE_KEY", key.clone()),
        ("KEYGATE_NARROW_KEY", narrow.clone()),
        ("KEYGATE_SPENT_KEY", spent.clone()),
    ];
    passes("openai_sdk_test.py", dir.path(), env, &server).await;

    // Each upstream saw its own credential, the way its API takes it (the OpenAI one from the
    // vault), and never a keygate key.
    let seen = upstream.requests();
    let seen_anthropic = anthropic.requests();
    let seen_gemini = gemini.requests();
    assert_credential(&seen, "authorization", &format!("Bearer {UPSTREAM_KEY}"));
    assert_credential(&seen_anthropic, "x-api-key", ANTHROPIC_KEY);
    assert_credential(&seen_gemini, "x-goog-api-key", GEMINI_KEY);
    for requests in [&seen, &seen_anthropic, &seen_gemini] {
        assert_no_keygate_key(requests, &[&key, &narrow]);
    }

    // The translated requests carried the tools, and the tool results went back in each
    // provider's own shape.
    let anthropic_bodies: Vec<Value> = seen_anthropic.iter().map(SeenRequest::json).collect();
    assert!(anthropic_bodies.iter().any(|b| {
        b["model"] == "claude-tools" && b["tools"].as_array().map(Vec::len) == Some(2)
    }));
    assert!(anthropic_bodies.iter().any(|b| {
        b["messages"][2]["content"]
            .as_array()
            .is_some_and(|c| c.len() == 2 && c.iter().all(|r| r["type"] == "tool_result"))
    }));
    assert!(anthropic_bodies.iter().any(|b| b["max_tokens"] == 48));
    let gemini_bodies: Vec<Value> = seen_gemini.iter().map(SeenRequest::json).collect();
    assert!(
        gemini_bodies
            .iter()
            .any(|b| b["generationConfig"]["maxOutputTokens"] == 48)
    );
    assert!(
        gemini_bodies
            .iter()
            .any(|b| b.to_string().contains("functionDeclarations"))
    );
    assert!(
        gemini_bodies
            .iter()
            .any(|b| b.to_string().contains("functionResponse"))
    );

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
    // are the two refused attempts at `chat`: the narrow key's (`scope_denied`) and the spent
    // key's (`quota_exhausted`) — once, as `x-should-retry: false` kept the SDK from retrying.
    let expected = chats.len() as u64 + 2;
    let row = usage_row(&server, &owner, "chat", expected);
    assert_eq!(row["requests"].as_u64(), Some(expected), "{row}");
    assert_eq!(row["errors"].as_u64(), Some(2), "{row}");
    assert!(row["prompt_tokens"].as_u64().unwrap() > 0, "{row}");
    assert!(row["completion_tokens"].as_u64().unwrap() > 0, "{row}");
}

/// The OpenAI deployments again, as a chat-only OpenAI-compatible server would serve them.
const CHAT_ONLY: &str = r#"
[providers.compat]
kind = "openai-compatible"
base_url = "{origin}/v1"
credential = "secret::upstream"

[model_groups.compat]
deployments = [{ provider = "compat", model = "gpt-4o-mini" }]

[model_groups.compat-tools]
deployments = [{ provider = "compat", model = "gpt-tools" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_responses_api_works_on_every_provider() {
    let Gateway {
        upstream,
        anthropic,
        gemini,
        dir,
        server,
        owner,
    } = Gateway::start(CHAT_ONLY).await;
    let key = create_key(&server, &owner, "responses", "models:*");
    let narrow = create_key(&server, &owner, "responses-narrow", "models:embed");
    let project = server.cli(&["projects", "create", "elsewhere"], Some(&owner), None);
    assert!(project.status.success(), "{}", text(&project.stderr));
    let other = server.cli(
        &[
            "keys",
            "create",
            "--name",
            "other",
            "--scope",
            "models:*",
            "--project",
            "elsewhere",
            "--quiet",
        ],
        Some(&owner),
        None,
    );
    assert!(other.status.success(), "{}", text(&other.stderr));
    let other = text(&other.stdout).trim().to_owned();
    let env = vec![
        ("KEYGATE_OTHER_KEY", other.clone()),
        ("KEYGATE_BASE_URL", format!("{}/v1", server.url)),
        ("KEYGATE_KEY", key.clone()),
        ("KEYGATE_NARROW_KEY", narrow.clone()),
    ];
    passes("responses_sdk_test.py", dir.path(), env, &server).await;

    let seen = upstream.requests();
    assert_credential(&seen, "authorization", &format!("Bearer {UPSTREAM_KEY}"));
    for requests in [&seen, &anthropic.requests(), &gemini.requests()] {
        assert_no_keygate_key(requests, &[&key, &narrow]);
    }
    // OpenAI's own Responses API got the requests as sent, the model renamed and a reasoning
    // item of an earlier turn kept; the chat-only server got chat completions.
    let native = requests_for(&seen, "/v1/responses", "gpt-4o-mini");
    assert!(!native.is_empty());
    assert!(native.iter().any(|r| {
        r.json()["input"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["type"] == "reasoning"))
    }));
    let tools = requests_for(&seen, "/v1/responses", "gpt-tools");
    assert!(
        tools
            .iter()
            .all(|r| r.json()["tools"][0]["name"] == "get_weather")
    );
    let chat_only = requests_for(&seen, "/v1/chat/completions", "gpt-tools");
    assert!(!chat_only.is_empty());
    assert!(
        chat_only
            .iter()
            .all(|r| { r.json()["tools"][0]["function"]["name"] == "get_weather" })
    );
    // A conversation kept by keygate went on at Gemini after Anthropic answered its first
    // turn: Gemini got the whole of it, and OpenAI's own API never an id it did not keep.
    assert!(gemini.requests().iter().any(|r| {
        let text = r.json()["contents"].to_string();
        text.contains("Hi, I am Ada.") && text.contains("What is my name?")
    }));
    assert!(
        requests_for(&seen, "/v1/responses", "gpt-4o-mini")
            .iter()
            .all(|r| r.json().get("previous_response_id").is_none())
    );
    // Multi-turn input reached each translated upstream as its turns.
    assert!(anthropic.requests().iter().any(|r| {
        let body = r.json();
        body["messages"].as_array().map(Vec::len) == Some(3)
            && body["messages"][1]["role"] == "assistant"
    }));
    assert!(
        gemini
            .requests()
            .iter()
            .any(|r| { r.json()["contents"].as_array().map(Vec::len) == Some(3) })
    );
    assert!(chat_only_text(&seen));
    // A function call's output went to Anthropic as a tool result.
    assert!(anthropic.requests().iter().any(|r| {
        r.json()["messages"]
            .to_string()
            .contains("\"type\":\"tool_result\"")
    }));
    // Every answered call is in the usage report, with tokens.
    let row = usage_row(&server, &owner, "claude", 1);
    assert!(row["prompt_tokens"].as_u64().unwrap() > 0, "{row}");
    assert!(row["completion_tokens"].as_u64().unwrap() > 0, "{row}");
    let row = usage_row(&server, &owner, "chat", native.len() as u64);
    assert!(row["completion_tokens"].as_u64().unwrap() > 0, "{row}");

    // The kept conversations are in the database; no credential and no keygate key is.
    let mut server = server;
    assert!(server.stop().success());
    let db = std::fs::read(dir.path().join("keygate-data/keygate.db")).unwrap();
    let wal = std::fs::read(dir.path().join("keygate-data/keygate.db-wal")).unwrap_or_default();
    let holds = |needle: &str| {
        [&db, &wal]
            .iter()
            .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    };
    assert!(holds("Hi, I am Ada."), "the response store was searched");
    for secret in [
        UPSTREAM_KEY,
        ANTHROPIC_KEY,
        GEMINI_KEY,
        &key,
        &narrow,
        &other,
    ] {
        assert!(!holds(secret), "a secret is stored in the database");
    }
}

/// Whether the chat-only server got the three turns of a conversation, and the instructions as
/// a system message.
fn chat_only_text(seen: &[SeenRequest]) -> bool {
    let chats = requests_for(seen, "/v1/chat/completions", "gpt-4o-mini");
    let turns = chats.iter().any(|r| {
        let messages = r.json()["messages"].clone();
        messages.as_array().map(Vec::len) == Some(3) && messages[1]["role"] == "assistant"
    });
    let instructions = chats.iter().any(|r| {
        let body = r.json();
        body["messages"][0]["role"] == "system" && body["messages"][0]["content"] == "Be brief."
    });
    turns && instructions
}

/// Deployments of OpenAI's endpoints beyond chat, and Gemini embeddings.
const ENDPOINTS: &str = r#"
[model_groups.instruct]
deployments = [{ provider = "up", model = "gpt-3.5-turbo-instruct" }]

[model_groups.moderation]
deployments = [{ provider = "up", model = "omni-moderation-latest" }]

[model_groups.image]
deployments = [{ provider = "up", model = "gpt-image-1" }]

[model_groups.dalle]
deployments = [{ provider = "up", model = "dall-e-3" }]

[model_groups.speech]
deployments = [{ provider = "up", model = "tts-1" }]

[model_groups.voice]
deployments = [{ provider = "up", model = "gpt-4o-mini-tts" }]

[model_groups.whisper]
deployments = [{ provider = "up", model = "whisper-1" }]

[model_groups.transcribe]
deployments = [{ provider = "up", model = "gpt-4o-mini-transcribe" }]

[model_groups.gemini-embed]
deployments = [{ provider = "gemini", model = "gemini-embedding-001" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_other_endpoints_work_through_the_gateway() {
    let Gateway {
        upstream,
        anthropic,
        gemini,
        dir,
        server,
        owner,
    } = Gateway::start(ENDPOINTS).await;
    let key = create_key(&server, &owner, "endpoints", "models:*");
    let narrow = create_key(&server, &owner, "endpoints-narrow", "models:embed");
    let env = vec![
        ("KEYGATE_BASE_URL", format!("{}/v1", server.url)),
        ("KEYGATE_KEY", key.clone()),
        ("KEYGATE_NARROW_KEY", narrow.clone()),
    ];
    passes("endpoints_sdk_test.py", dir.path(), env, &server).await;

    let seen = upstream.requests();
    assert_credential(&seen, "authorization", &format!("Bearer {UPSTREAM_KEY}"));
    assert_credential(&gemini.requests(), "x-goog-api-key", GEMINI_KEY);
    for requests in [&seen, &anthropic.requests(), &gemini.requests()] {
        assert_no_keygate_key(requests, &[&key, &narrow]);
    }
    assert!(
        anthropic.requests().is_empty(),
        "no deployment of it serves these"
    );
    // Each JSON endpoint got the body as sent, the model renamed.
    for (path, model) in [
        ("/v1/completions", "gpt-3.5-turbo-instruct"),
        ("/v1/moderations", "omni-moderation-latest"),
        ("/v1/images/generations", "gpt-image-1"),
        ("/v1/audio/speech", "tts-1"),
    ] {
        assert!(!requests_for(&seen, path, model).is_empty(), "{path}");
    }
    // Asked for usage only where the client did not.
    let streamed: Vec<Value> = requests_for(&seen, "/v1/completions", "gpt-3.5-turbo-instruct")
        .iter()
        .map(|r| r.json())
        .filter(|b| b["stream"] == true)
        .collect();
    assert!(
        streamed
            .iter()
            .all(|b| b["stream_options"]["include_usage"] == true),
        "{streamed:?}"
    );
    // Every upload arrived whole, its model part renamed and the rest as the SDK sent it.
    let forms = upstream.forms();
    assert!(forms.len() >= 5, "{}", forms.len());
    for form in &forms {
        let model = form.iter().find(|p| p.name == "model").unwrap();
        assert!(
            [&b"whisper-1"[..], b"gpt-4o-mini-transcribe"].contains(&&model.data[..]),
            "{model:?}"
        );
        let file = form.iter().find(|p| p.name == "file").unwrap();
        if file.file_name.as_deref() != Some("notes.txt") {
            assert_eq!(file.data.len(), 256 * 300, "{:?}", file.file_name);
        }
        for part in form {
            let text = String::from_utf8_lossy(&part.data);
            assert!(!text.contains(&key) && !text.contains("kg_live_"));
        }
    }
    assert!(
        forms
            .iter()
            .any(|form| form.iter().any(|p| p.name == "language" && p.data == "en"))
    );
    assert!(forms.iter().any(|form| {
        form.iter()
            .any(|p| p.file_name.as_deref() == Some("hello.wav"))
    }));
    // Gemini got one batch per embeddings call, each input its own request.
    let batches: Vec<Value> = gemini
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("gemini-embedding-001:batchEmbedContents"))
        .map(SeenRequest::json)
        .collect();
    assert!(
        batches
            .iter()
            .any(|b| b["requests"].as_array().map(Vec::len) == Some(2))
    );
    // Usage: tokens as the upstreams reported them (images and transcriptions by tokens),
    // and Gemini's embeddings counted.
    for alias in ["image", "transcribe", "instruct", "gemini-embed"] {
        let row = usage_row(&server, &owner, alias, 1);
        assert!(row["prompt_tokens"].as_u64().unwrap() > 0, "{alias}: {row}");
    }
    let row = usage_row(&server, &owner, "speech", 4);
    assert_eq!(row["errors"].as_u64(), Some(2), "{row}");
    // Models priced by the unit: two images at $0.04 (the refused request cost nothing), 50
    // characters spoken at $15 a million, 76 seconds heard at $0.006 a minute (as the verbose
    // transcript says) and twice 5 more (the text and subtitles, which say no length: their
    // 76 800-byte file taken at 16 000 bytes a second).
    assert_eq!(row["cost_usd"], "0.000750", "{row}");
    let row = usage_row(&server, &owner, "dalle", 2);
    assert_eq!(row["cost_usd"], "0.080000", "{row}");
    let row = usage_row(&server, &owner, "whisper", 4);
    assert_eq!(row["cost_usd"], "0.008600", "{row}");
}
