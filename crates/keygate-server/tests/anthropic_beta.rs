//! The client's `anthropic-beta` header over real sockets: passed to an Anthropic upstream as
//! sent without `[gateway] anthropic_beta`; with it, only listed betas go on and a request
//! naming another is refused with 400 `unsupported_feature`, naming the beta, before anything
//! is sent upstream. Oversized headers are refused either way.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_testkit::{Db, MockAnthropic, Reply, TestServer};
use serde_json::{Value, json};

const ANTHROPIC_KEY: &str = "sk-ant-upstream-0123456789";

struct Setup {
    server: TestServer,
    anthropic: MockAnthropic,
    key: String,
}

/// A gateway with one Anthropic group, `claude`, and `[gateway]` holding `gateway`.
async fn setup(gateway: &str) -> Setup {
    let anthropic = MockAnthropic::start("anthropic", ANTHROPIC_KEY)
        .await
        .unwrap();
    let config = format!(
        r#"
        [gateway]
        {gateway}

        [providers.anthropic]
        kind = "anthropic"
        base_url = "{anthropic}/v1"
        credential = "env::ANTHROPIC_KEY"

        [model_groups.claude]
        deployments = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
        "#,
        anthropic = anthropic.origin(),
    );
    let server =
        TestServer::start_gateway(Db::Sqlite, &config, &[("ANTHROPIC_KEY", ANTHROPIC_KEY)])
            .await
            .unwrap();
    let key = server
        .api()
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "app", "scopes": ["models:*"]}),
        )
        .await
        .secret;
    Setup {
        server,
        anthropic,
        key,
    }
}

fn body() -> Value {
    json!({
        "model": "claude",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    })
}

async fn messages(s: &Setup, beta: Option<&str>) -> Reply {
    let api = s.server.api();
    let mut call = api
        .post("/v1/messages")
        .header("x-api-key", &s.key)
        .header("anthropic-version", "2023-06-01")
        .json(&body());
    if let Some(beta) = beta {
        call = call.header("anthropic-beta", beta);
    }
    call.send().await
}

/// The `anthropic-beta` header of the upstream's latest request.
fn sent_beta(s: &Setup) -> Option<String> {
    s.anthropic
        .requests()
        .last()
        .unwrap()
        .header("anthropic-beta")
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_list_the_header_goes_upstream_as_sent() {
    let s = setup("").await;
    messages(&s, Some("prompt-caching-2024-07-31, anything-2099-01-01"))
        .await
        .expect(200);
    assert_eq!(
        sent_beta(&s).as_deref(),
        Some("prompt-caching-2024-07-31, anything-2099-01-01")
    );
    messages(&s, None).await.expect(200);
    assert_eq!(sent_beta(&s), None);

    let long = format!("b-{}", "x".repeat(keygate_llm::beta::MAX_HEADER_BYTES));
    messages(&s, Some(&long))
        .await
        .expect_error(400, "invalid_request");
    assert_eq!(
        s.anthropic.request_count(),
        2,
        "the refused one was not sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_passes_its_betas_and_refuses_the_others_by_name() {
    let s = setup(
        r#"anthropic_beta = ["prompt-caching-2024-07-31", "token-efficient-tools-2025-02-19"]"#,
    )
    .await;
    messages(
        &s,
        Some(
            "prompt-caching-2024-07-31,token-efficient-tools-2025-02-19, prompt-caching-2024-07-31",
        ),
    )
    .await
    .expect(200);
    assert_eq!(
        sent_beta(&s).as_deref(),
        Some("prompt-caching-2024-07-31,token-efficient-tools-2025-02-19")
    );

    let refused = messages(&s, Some("prompt-caching-2024-07-31,context-1m-2025-08-07"))
        .await
        .expect_error(400, "unsupported_feature");
    assert_eq!(refused.body["type"], "error", "Anthropic's error shape");
    assert_eq!(refused.body["error"]["type"], "invalid_request_error");
    assert!(
        refused.message().contains("context-1m-2025-08-07"),
        "{}",
        refused.text
    );
    let malformed = messages(&s, Some("prompt-caching-2024-07-31;q=<b>"))
        .await
        .expect_error(400, "invalid_request");
    assert!(!malformed.text.contains("<b>"), "{}", malformed.text);
    let many = vec!["prompt-caching-2024-07-31"; keygate_llm::beta::MAX_BETAS + 1].join(",");
    messages(&s, Some(&many))
        .await
        .expect_error(400, "invalid_request");
    assert_eq!(
        s.anthropic.request_count(),
        1,
        "refused requests were not sent"
    );

    // OpenAI clients' betas were never passed on; a list does not refuse them either.
    s.server
        .api()
        .post("/v1/chat/completions")
        .token(&s.key)
        .header("anthropic-beta", "context-1m-2025-08-07")
        .json(&json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect(200);
    assert_eq!(sent_beta(&s), None);
}

#[test]
fn the_list_must_hold_beta_names() {
    let file = keygate_llm::GatewayFile::from_toml(
        r#"
        [gateway]
        anthropic_beta = ["prompt caching"]
        "#,
    )
    .unwrap();
    let err = keygate_llm::GatewayConfig::resolve(&file, &|_| None).unwrap_err();
    assert!(
        err.to_string().starts_with("gateway.anthropic_beta:"),
        "{err}"
    );
}
