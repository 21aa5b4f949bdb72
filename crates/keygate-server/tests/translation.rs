//! The gateway across wire formats, over real sockets: OpenAI and Anthropic clients served by
//! OpenAI, Anthropic and Gemini upstreams (mocks that speak each provider's format and refuse
//! what the real API refuses), streams and tools included, with errors in the caller's format.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_testkit::{Db, MockAnthropic, MockGemini, MockOpenAi, MockReply, TestServer};
use serde_json::{Value, json};

const OPENAI_KEY: &str = "sk-upstream-openai-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-upstream-0123456789";
const GEMINI_KEY: &str = "AIza-upstream-gemini-0123456789";

struct Setup {
    server: TestServer,
    openai: MockOpenAi,
    anthropic: MockAnthropic,
    gemini: MockGemini,
    key: String,
}

async fn setup(db: Db) -> Setup {
    let openai = MockOpenAi::start("openai", OPENAI_KEY).await.unwrap();
    let anthropic = MockAnthropic::start("anthropic", ANTHROPIC_KEY)
        .await
        .unwrap();
    let gemini = MockGemini::start("gemini", GEMINI_KEY).await.unwrap();
    let config = format!(
        r#"
        [gateway]
        retry_base_ms = 10
        retry_max_ms = 40

        [providers.openai]
        kind = "openai"
        base_url = "{openai}/v1"
        credential = "env::OPENAI_KEY"

        [providers.anthropic]
        kind = "anthropic"
        base_url = "{anthropic}/v1"
        credential = "secret::anthropic"

        [providers.gemini]
        kind = "gemini"
        base_url = "{gemini}/v1beta"
        credential = "env::GEMINI_KEY"

        [providers.gemini-badkey]
        kind = "gemini"
        base_url = "{gemini}/v1beta"
        credential = "env::WRONG_KEY"

        [model_groups.gpt]
        deployments = [{{ provider = "openai", model = "gpt-4o-mini" }}]

        [model_groups.claude]
        deployments = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]

        [model_groups.gemini]
        deployments = [{{ provider = "gemini", model = "gemini-2.5-flash" }}]

        [model_groups.claude-tools]
        deployments = [{{ provider = "anthropic", model = "claude-tools" }}]

        [model_groups.gemini-tools]
        deployments = [{{ provider = "gemini", model = "gemini-tools" }}]

        [model_groups.claude-streamerror]
        deployments = [{{ provider = "anthropic", model = "claude-streamerror" }}]

        [model_groups.gemini-garbage]
        deployments = [{{ provider = "gemini", model = "gemini-garbage" }}]
        retries = 0

        [model_groups.gpt-tools]
        deployments = [{{ provider = "openai", model = "gpt-tools" }}]

        # Anthropic is rate limited; the group fails over to Gemini, then OpenAI.
        [model_groups.mixed]
        deployments = [{{ provider = "anthropic", model = "claude-ratelimit" }}]
        fallbacks = ["mixed-gemini"]
        retries = 0

        [model_groups.mixed-gemini]
        deployments = [
          {{ provider = "gemini-badkey", model = "gemini-2.5-flash" }},
          {{ provider = "gemini", model = "gemini-2.5-flash" }},
        ]
        strategy = "least-in-flight"
        retries = 0
        "#,
        openai = openai.origin(),
        anthropic = anthropic.origin(),
        gemini = gemini.origin(),
    );
    let server = TestServer::start_gateway(
        db,
        &config,
        &[
            ("OPENAI_KEY", OPENAI_KEY),
            ("GEMINI_KEY", GEMINI_KEY),
            ("WRONG_KEY", "AIza-not-the-right-key-000"),
        ],
    )
    .await
    .unwrap();
    let api = server.api();
    api.post("/admin/v1/secrets")
        .token(&server.owner_token)
        .json(&json!({"project": "default", "name": "anthropic", "value": ANTHROPIC_KEY}))
        .send()
        .await
        .expect(200);
    let key = api
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "app", "scopes": ["models:*"]}),
        )
        .await
        .secret;
    Setup {
        server,
        openai,
        anthropic,
        gemini,
        key,
    }
}

/// An Anthropic client's call to `/v1/messages`, authenticated the Anthropic way.
async fn messages(s: &Setup, body: &Value) -> keygate_testkit::Reply {
    s.server
        .api()
        .post("/v1/messages")
        .header("x-api-key", &s.key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
}

async fn chat(s: &Setup, body: &Value) -> keygate_testkit::Reply {
    s.server
        .api()
        .post("/v1/chat/completions")
        .token(&s.key)
        .json(body)
        .send()
        .await
}

/// The events of an SSE body: `(event name, data as JSON or text)`.
fn events(text: &str) -> Vec<(Option<String>, Value)> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_owned);
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if data.is_empty() {
                return None;
            }
            let data = data.join("\n");
            Some((
                name,
                serde_json::from_str(&data).unwrap_or(Value::String(data)),
            ))
        })
        .collect()
}

/// An OpenAI stream put back together: `(text, [(id, name, arguments)], finish_reason)`.
fn openai_stream(text: &str) -> (String, Vec<(String, String, String)>, String) {
    let mut content = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = String::new();
    let all = events(text);
    assert_eq!(all.last().unwrap().1, "[DONE]", "{text}");
    for (_, chunk) in &all {
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        if let Some(piece) = choice["delta"]["content"].as_str() {
            content.push_str(piece);
        }
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = usize::try_from(call["index"].as_u64().unwrap()).unwrap();
            if index == calls.len() {
                calls.push((
                    call["id"].as_str().unwrap().to_owned(),
                    call["function"]["name"].as_str().unwrap().to_owned(),
                    String::new(),
                ));
            }
            calls[index]
                .2
                .push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = reason.to_owned();
        }
    }
    (content, calls, finish)
}

/// An Anthropic stream put back together: the blocks (`text`, or `tool_use` with its input
/// parsed from the joined `partial_json`), the stop reason and the output tokens.
fn anthropic_stream(text: &str) -> (Vec<Value>, String, u64) {
    let all = events(text);
    assert_eq!(
        all.first().unwrap().0.as_deref(),
        Some("message_start"),
        "{text}"
    );
    assert_eq!(
        all.last().unwrap().0.as_deref(),
        Some("message_stop"),
        "{text}"
    );
    let mut blocks: Vec<Value> = Vec::new();
    let mut json_text: Vec<String> = Vec::new();
    let mut stop = String::new();
    let mut output = 0;
    for (name, data) in &all {
        assert_eq!(
            name.as_deref(),
            data["type"].as_str(),
            "event name = data type"
        );
        match data["type"].as_str().unwrap() {
            "content_block_start" => {
                assert_eq!(data["index"].as_u64().unwrap() as usize, blocks.len());
                blocks.push(data["content_block"].clone());
                json_text.push(String::new());
            }
            "content_block_delta" => {
                let i = data["index"].as_u64().unwrap() as usize;
                match data["delta"]["type"].as_str().unwrap() {
                    "text_delta" => {
                        let so_far = blocks[i]["text"].as_str().unwrap().to_owned();
                        blocks[i]["text"] = json!(so_far + data["delta"]["text"].as_str().unwrap());
                    }
                    "input_json_delta" => {
                        json_text[i].push_str(data["delta"]["partial_json"].as_str().unwrap());
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let i = data["index"].as_u64().unwrap() as usize;
                if blocks[i]["type"] == "tool_use" && !json_text[i].is_empty() {
                    blocks[i]["input"] = serde_json::from_str(&json_text[i]).unwrap();
                }
            }
            "message_delta" => {
                stop = data["delta"]["stop_reason"].as_str().unwrap().to_owned();
                output = data["usage"]["output_tokens"].as_u64().unwrap();
            }
            _ => {}
        }
    }
    (blocks, stop, output)
}

fn weather_tool_openai() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }}])
}

fn weather_tool_anthropic() -> Value {
    json!([{"name": "get_weather", "description": "Current weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

async fn messages_pass_through_to_anthropic(db: Db) {
    let s = setup(db).await;
    let body = json!({"model": "claude", "max_tokens": 100, "system": "Be brief.",
        "messages": [{"role": "user", "content": "hello there"}]});
    let reply = messages(&s, &body).await.expect(200);
    assert_eq!(reply.body["type"], "message");
    assert_eq!(reply.body["role"], "assistant");
    assert_eq!(
        reply.header("request-id"),
        reply.header("x-request-id"),
        "Anthropic's SDKs read the request id from `request-id`"
    );
    assert!(reply.header("request-id").is_some());
    assert!(
        reply.body["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("anthropic")
    );
    assert_eq!(reply.body["stop_reason"], "end_turn");
    let seen = &s.anthropic.requests()[0];
    assert_eq!(seen.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert!(seen.header("authorization").is_none());
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(seen.json(), expected, "only the model changes");
    assert!(
        !String::from_utf8_lossy(&seen.body).contains(&s.key),
        "the keygate key stays at keygate"
    );

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let reply = messages(&s, &streamed).await.expect(200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (blocks, stop, output) = anthropic_stream(&reply.text);
    assert!(
        blocks[0]["text"]
            .as_str()
            .unwrap()
            .contains("Hello from anthropic")
    );
    assert_eq!(stop, "end_turn");
    assert!(output > 0);
}

async fn an_openai_client_is_served_by_anthropic(db: Db) {
    let s = setup(db).await;
    let reply = chat(
        &s,
        &json!({"model": "claude", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"}
        ], "max_tokens": 50}),
    )
    .await
    .expect(200);
    assert_eq!(reply.body["object"], "chat.completion");
    assert!(
        reply.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("Hello from anthropic")
    );
    assert_eq!(reply.body["choices"][0]["finish_reason"], "stop");
    assert!(reply.body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let sent = s.anthropic.requests()[0].json();
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 50);

    // Tools, streamed: the arguments arrive in pieces and put back together exactly.
    let reply = chat(
        &s,
        &json!({"model": "claude-tools", "stream": true, "tools": weather_tool_openai(),
            "messages": [{"role": "user", "content": "weather in Paris?"}]}),
    )
    .await
    .expect(200);
    let (_, calls, finish) = openai_stream(&reply.text);
    assert_eq!(finish, "tool_calls");
    let names: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(names, ["get_weather", "get_time"], "{}", reply.text);
    assert!(calls.iter().all(|c| c.0.starts_with("toolu_")));
    let args: Value = serde_json::from_str(&calls[0].2).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    let sent = s.anthropic.requests()[1].json();
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(sent["stream"], true);

    // The tools' answers go back as tool_result blocks, which the mock checks against the
    // calls of the turn before.
    let assistant_calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    let mut conversation = vec![
        json!({"role": "user", "content": "weather in Paris?"}),
        json!({"role": "assistant", "content": null, "tool_calls": assistant_calls}),
    ];
    for (id, _, _) in &calls {
        conversation.push(json!({"role": "tool", "tool_call_id": id, "content": "18C"}));
    }
    let reply = chat(
        &s,
        &json!({"model": "claude", "tools": weather_tool_openai(), "messages": conversation}),
    )
    .await
    .expect(200);
    assert_eq!(reply.body["choices"][0]["finish_reason"], "stop");
    let sent = s.anthropic.requests()[2].json();
    let results = sent["messages"][2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 2, "both results in one user turn: {sent}");
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(results[0]["tool_use_id"], json!(calls[0].0));
}

async fn an_openai_client_is_served_by_gemini(db: Db) {
    let s = setup(db).await;
    let reply = chat(
        &s,
        &json!({"model": "gemini", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    assert!(
        reply.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("Hello from gemini")
    );
    let seen = &s.gemini.requests()[0];
    assert_eq!(seen.header("x-goog-api-key"), Some(GEMINI_KEY));
    assert!(
        seen.path
            .ends_with("/models/gemini-2.5-flash:generateContent"),
        "{}",
        seen.path
    );

    let reply = chat(
        &s,
        &json!({"model": "gemini", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    let (content, _, finish) = openai_stream(&reply.text);
    assert!(content.contains("Hello from gemini"), "{content}");
    assert_eq!(finish, "stop");
    let usage = events(&reply.text).iter().rev().nth(1).unwrap().1.clone();
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{usage}"
    );
    let seen = &s.gemini.requests()[1];
    assert!(
        seen.path.ends_with(":streamGenerateContent"),
        "{}",
        seen.path
    );
    assert_eq!(seen.query.as_deref(), Some("alt=sse"));

    let reply = chat(
        &s,
        &json!({"model": "gemini-tools", "stream": true, "tools": weather_tool_openai(),
            "messages": [{"role": "user", "content": "weather in Paris?"}]}),
    )
    .await
    .expect(200);
    let (_, calls, finish) = openai_stream(&reply.text);
    assert_eq!(finish, "tool_calls");
    assert_eq!(calls[0].1, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].2).unwrap(),
        json!({"city": "Paris"})
    );
}

async fn an_anthropic_client_is_served_by_openai_and_gemini(db: Db) {
    let s = setup(db).await;
    for (model, upstream) in [("gpt", "openai"), ("gemini", "gemini")] {
        let reply = messages(
            &s,
            &json!({"model": model, "max_tokens": 64,
                "messages": [{"role": "user", "content": "hello"}]}),
        )
        .await
        .expect(200);
        assert_eq!(reply.body["type"], "message", "{}", reply.text);
        assert!(
            reply.body["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains(&format!("Hello from {upstream}")),
            "{}",
            reply.text
        );
        assert_eq!(reply.body["stop_reason"], "end_turn");
        assert!(reply.body["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
    for model in ["gpt-tools", "gemini-tools"] {
        let reply = messages(
            &s,
            &json!({"model": model, "max_tokens": 64, "stream": true, "tools": weather_tool_anthropic(),
                "messages": [{"role": "user", "content": "weather in Paris?"}]}),
        )
        .await
        .expect(200);
        let (blocks, stop, _) = anthropic_stream(&reply.text);
        assert_eq!(stop, "tool_use", "{model}: {}", reply.text);
        let call = blocks.iter().find(|b| b["type"] == "tool_use").unwrap();
        assert_eq!(call["name"], "get_weather");
        assert_eq!(call["input"], json!({"city": "Paris"}), "{model}");
    }
    let sent = s.openai.requests()[1].json();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

async fn a_group_fails_over_across_providers_in_the_callers_format(db: Db) {
    let s = setup(db).await;
    let reply = messages(
        &s,
        &json!({"model": "mixed", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    assert_eq!(reply.body["type"], "message");
    assert!(
        reply.body["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("gemini")
    );
    assert!(
        s.anthropic.request_count() >= 1,
        "the rate-limited primary was tried"
    );
    let keys: Vec<String> = s
        .gemini
        .requests()
        .iter()
        .filter_map(|r| r.header("x-goog-api-key").map(str::to_owned))
        .collect();
    assert!(keys.contains(&GEMINI_KEY.to_owned()));

    let reply = chat(
        &s,
        &json!({"model": "mixed", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    assert_eq!(reply.body["object"], "chat.completion");
}

async fn content_a_provider_cannot_express_is_refused_by_name(db: Db) {
    let s = setup(db).await;
    let reply = chat(
        &s,
        &json!({"model": "claude", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect_error(400, "unsupported_feature");
    assert_eq!(reply.body["error"]["param"], "n");
    assert!(reply.message().contains("anthropic"), "{}", reply.message());
    assert_eq!(s.anthropic.request_count(), 0, "nothing was sent");

    let reply = messages(
        &s,
        &json!({"model": "gemini", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]}]}),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["type"], "error", "Anthropic's error shape");
    assert_eq!(reply.body["error"]["type"], "invalid_request_error");
    assert_eq!(reply.body["error"]["code"], "unsupported_feature");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("document")
    );
    assert_eq!(s.gemini.request_count(), 0);
}

async fn errors_come_in_the_callers_format(db: Db) {
    let s = setup(db).await;
    // No key: Anthropic's shape on /v1/messages.
    let reply = s
        .server
        .api()
        .post("/v1/messages")
        .json(&json!({"model": "claude", "max_tokens": 5, "messages": []}))
        .send()
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["type"], "error");
    assert_eq!(reply.body["error"]["type"], "authentication_error");

    // An upstream 400 from OpenAI reaches an Anthropic client in Anthropic's shape.
    s.openai.push(MockReply::Error {
        status: 400,
        code: "context_length_exceeded".into(),
        message: "This model's maximum context length is 128000 tokens.".into(),
        retry_after: None,
    });
    let reply = messages(
        &s,
        &json!({"model": "gpt", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["type"], "error");
    assert_eq!(reply.body["error"]["type"], "invalid_request_error");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("context length")
    );

    // And an Anthropic 400 reaches an OpenAI client in OpenAI's shape.
    s.anthropic.push(MockReply::Error {
        status: 400,
        code: "invalid_request_error".into(),
        message: "prompt is too long".into(),
        retry_after: None,
    });
    let reply = chat(
        &s,
        &json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["error"]["type"], "invalid_request_error");
    assert_eq!(reply.body["error"]["message"], "prompt is too long");

    // Garbage before the first byte (on every attempt): 502 in the caller's shape.
    let reply = messages(
        &s,
        &json!({"model": "gemini-garbage", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], "upstream_invalid_response");
    assert_eq!(reply.body["type"], "error");

    // A stream cut mid-way ends with an error event in the caller's format.
    s.openai.push(MockReply::Cut { chunks: 2 });
    let reply = messages(
        &s,
        &json!({"model": "gpt", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    let all = events(&reply.text);
    let (name, last) = all.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"), "{}", reply.text);
    assert_eq!(last["type"], "error");
    assert_eq!(last["error"]["code"], "upstream_stream_interrupted");
    s.anthropic.push(MockReply::Cut { chunks: 2 });
    let reply = chat(
        &s,
        &json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    let last = events(&reply.text).last().unwrap().1.clone();
    assert_eq!(
        last["error"]["code"], "upstream_stream_interrupted",
        "{}",
        reply.text
    );
}

/// An upstream's own error event reaches the client once, in the client's format, and is the
/// stream's last event: no second "broken connection" error follows it.
async fn an_upstream_error_event_is_passed_on_once(db: Db) {
    let s = setup(db).await;
    let body = json!({"model": "claude-streamerror", "max_tokens": 20, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let reply = messages(&s, &body).await.expect(200);
    let all = events(&reply.text);
    let errors: Vec<_> = all
        .iter()
        .filter(|(name, _)| name.as_deref() == Some("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", reply.text);
    assert_eq!(errors[0].1["error"]["type"], "overloaded_error");
    assert_eq!(all.last().unwrap().0.as_deref(), Some("error"));

    let reply = chat(&s, &body).await.expect(200);
    let all = events(&reply.text);
    let errors: Vec<_> = all
        .iter()
        .filter(|(_, data)| data.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 1, "{}", reply.text);
    assert_eq!(errors[0].1["error"]["message"], "Overloaded");
    assert!(
        all.last().unwrap().1.get("error").is_some(),
        "{}",
        reply.text
    );
}

/// `count_tokens` asks Anthropic when the group has an Anthropic deployment, and estimates
/// otherwise.
async fn tokens_are_counted_by_anthropic_or_estimated(db: Db) {
    let setup = setup(db).await;
    let s = &setup;
    let count = |model: &str| {
        let body = json!({"model": model, "system": "Be brief.",
            "messages": [{"role": "user", "content": "one two three four"}]});
        async move {
            s.server
                .api()
                .post("/v1/messages/count_tokens")
                .header("x-api-key", &s.key)
                .header("anthropic-version", "2023-06-01")
                .json(&body)
                .send()
                .await
        }
    };
    let exact = count("claude").await.expect(200);
    let seen = s.anthropic.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].path.ends_with("/v1/messages/count_tokens"));
    assert_eq!(seen[0].json()["model"], "claude-sonnet-4-5");
    assert_eq!(seen[0].header("x-api-key"), Some(ANTHROPIC_KEY));
    // The mock counts words: "Be brief." and the four words.
    assert_eq!(exact.body, json!({"input_tokens": 6}));

    let estimated = count("gpt").await.expect(200);
    let tokens = estimated.body["input_tokens"].as_u64().unwrap();
    assert!((6..40).contains(&tokens), "{}", estimated.text);
    assert_eq!(s.openai.request_count(), 0, "nothing to ask OpenAI");

    let missing = count("nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["type"], "error");
}

async fn translated_calls_are_recorded_with_provider_usage(db: Db) {
    let s = setup(db).await;
    chat(
        &s,
        &json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    messages(
        &s,
        &json!({"model": "gemini", "max_tokens": 20, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    let api = s.server.api();
    let mut report = Value::Null;
    for _ in 0..100 {
        report = api
            .get("/admin/v1/usage?group_by=model")
            .token(&s.server.owner_token)
            .send()
            .await
            .expect(200)
            .body;
        let total: u64 = report["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["requests"].as_u64().unwrap())
            .sum();
        if total >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for row in report["data"].as_array().unwrap() {
        assert!(row["prompt_tokens"].as_u64().unwrap() > 0, "{report}");
        assert!(row["completion_tokens"].as_u64().unwrap() > 0, "{report}");
    }
    assert_eq!(report["data"].as_array().unwrap().len(), 2, "{report}");
}

async fn the_model_list_answers_in_the_callers_shape(db: Db) {
    let s = setup(db).await;
    let api = s.server.api();
    let openai = api.get("/v1/models").token(&s.key).send().await.expect(200);
    assert_eq!(openai.body["object"], "list");
    assert!(
        openai.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "claude")
    );
    let anthropic = api
        .get("/v1/models")
        .header("x-api-key", &s.key)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .expect(200);
    assert_eq!(anthropic.body["has_more"], false);
    let first = &anthropic.body["data"][0];
    assert_eq!(first["type"], "model");
    assert_eq!(anthropic.body["first_id"], first["id"]);
    assert!(
        first["created_at"].as_str().unwrap().ends_with('Z'),
        "{first}"
    );
    let one = api
        .get("/v1/models/claude")
        .header("x-api-key", &s.key)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .expect(200);
    assert_eq!(one.body["id"], "claude");
    let missing = api
        .get("/v1/models/nope")
        .header("x-api-key", &s.key)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["type"], "not_found_error");
}

keygate_testkit::on_both_databases!(
    the_model_list_answers_in_the_callers_shape,
    tokens_are_counted_by_anthropic_or_estimated,
    an_upstream_error_event_is_passed_on_once,
    messages_pass_through_to_anthropic,
    an_openai_client_is_served_by_anthropic,
    an_openai_client_is_served_by_gemini,
    an_anthropic_client_is_served_by_openai_and_gemini,
    a_group_fails_over_across_providers_in_the_callers_format,
    content_a_provider_cannot_express_is_refused_by_name,
    errors_come_in_the_callers_format,
    translated_calls_are_recorded_with_provider_usage,
);
