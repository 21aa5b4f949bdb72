#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! The mock Anthropic and Gemini upstreams answer in their providers' wire formats, over a
//! real socket.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use keygate_testkit::{MockAnthropic, MockGemini, MockReply};
use serde_json::{Value, json};
use tokio::sync::Notify;

const KEY: &str = "mock-provider-key";

/// A mock with one HTTP client for the whole test (building a client loads the TLS roots).
struct Upstream<M> {
    mock: M,
    client: reqwest::Client,
}

impl<M> std::ops::Deref for Upstream<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.mock
    }
}

impl<M> Upstream<M> {
    fn new(mock: M) -> Self {
        Self {
            mock,
            client: reqwest::Client::new(),
        }
    }
}

/// Reads a body to its end; `Err` carries what arrived before it failed.
async fn read_all(mut response: reqwest::Response) -> Result<String, String> {
    let mut text = String::new();
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
            Ok(None) => return Ok(text),
            Err(_) => return Err(text),
        }
    }
}

mod anthropic {
    use super::*;

    async fn mock() -> Upstream<MockAnthropic> {
        Upstream::new(MockAnthropic::start("alpha", KEY).await.unwrap())
    }

    fn body(model: &str, stream: bool) -> Value {
        json!({
            "model": model,
            "max_tokens": 256,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}],
            "stream": stream
        })
    }

    async fn post(mock: &Upstream<MockAnthropic>, body: &Value) -> reqwest::Response {
        mock.client
            .post(format!("{}/v1/messages", mock.origin()))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `(event name, data)` of every event; checks that the data's `type` is the name.
    fn parse_events(text: &str) -> Vec<(String, Value)> {
        text.split("\n\n")
            .filter(|event| !event.is_empty())
            .map(|event| {
                let (name, data) = event.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str(), "{event}");
                (name, data)
            })
            .collect()
    }

    fn names(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(name, _)| name.as_str()).collect()
    }

    fn text_of(events: &[(String, Value)]) -> String {
        events
            .iter()
            .filter(|(_, data)| data["delta"]["type"] == "text_delta")
            .map(|(_, data)| data["delta"]["text"].as_str().unwrap())
            .collect()
    }

    async fn refused(response: reqwest::Response) -> (u16, String, String) {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error");
        let kind = body["error"]["type"].as_str().unwrap().to_owned();
        let message = body["error"]["message"].as_str().unwrap().to_owned();
        (status, kind, message)
    }

    #[tokio::test]
    async fn json_message_has_the_text_stop_reason_and_usage() {
        let mock = mock().await;
        let response = post(&mock, &body("claude-test", false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let message: Value = response.json().await.unwrap();
        assert!(message["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(message["type"], "message");
        assert_eq!(message["role"], "assistant");
        assert_eq!(message["model"], "claude-test");
        assert_eq!(
            message["content"],
            json!([{"type": "text", "text": "Hello from alpha via claude-test"}])
        );
        assert_eq!(message["stop_reason"], "end_turn");
        assert_eq!(message["stop_sequence"], Value::Null);
        // Two words of system prompt and two of message; five in the answer.
        assert_eq!(message["usage"]["input_tokens"], 4);
        assert_eq!(message["usage"]["output_tokens"], 5);

        let seen = mock.requests();
        assert_eq!(mock.request_count(), 1);
        assert_eq!(seen[0].path, "/v1/messages");
        assert_eq!(seen[0].header("X-Api-Key"), Some(KEY));
        assert_eq!(seen[0].json()["model"], "claude-test");
        assert!(!format!("{:?}", mock.mock).contains(KEY));
    }

    #[tokio::test]
    async fn stream_sends_the_events_in_order() {
        let mock = mock().await;
        let response = post(&mock, &body("claude-test", true)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let events = parse_events(&read_all(response).await.unwrap());
        let mut expected = vec!["message_start", "ping", "content_block_start"];
        expected.extend(["content_block_delta"; 5]);
        expected.extend(["content_block_stop", "message_delta", "message_stop"]);
        assert_eq!(names(&events), expected);

        let start = &events[0].1["message"];
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["model"], "claude-test");
        assert_eq!(start["stop_reason"], Value::Null);
        assert_eq!(start["usage"]["input_tokens"], 4);
        assert_eq!(start["usage"]["output_tokens"], 1);
        assert_eq!(
            events[2].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(text_of(&events), "Hello from alpha via claude-test");
        let delta = &events[events.len() - 2].1;
        assert_eq!(
            delta["delta"],
            json!({"stop_reason": "end_turn", "stop_sequence": null})
        );
        assert_eq!(delta["usage"]["output_tokens"], 5);
        assert_eq!(mock.abandoned_streams(), 0);
    }

    #[tokio::test]
    async fn tool_calls_come_as_tool_use_blocks() {
        let mock = mock().await;
        let message: Value = post(&mock, &body("claude-tools", false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(message["stop_reason"], "tool_use");
        let blocks = message["content"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0]["type"], "tool_use");
        assert!(blocks[0]["id"].as_str().unwrap().starts_with("toolu_"));
        assert_ne!(blocks[0]["id"], blocks[1]["id"]);
        assert_eq!(blocks[0]["name"], "get_weather");
        assert_eq!(blocks[0]["input"], json!({"city": "Paris"}));
        assert_eq!(blocks[1]["name"], "get_time");
        assert_eq!(blocks[1]["input"], json!({"timezone": "Europe/Paris"}));
    }

    #[tokio::test]
    async fn streamed_tool_input_reassembles_to_the_arguments() {
        let mock = mock().await;
        let calls = vec![
            (
                "lookup".to_owned(),
                r#"{"query": "rust sse", "limit": 3}"#.to_owned(),
            ),
            ("noop".to_owned(), "{}".to_owned()),
        ];
        mock.push(MockReply::ToolCalls(calls.clone()));
        let events = parse_events(
            &read_all(post(&mock, &body("claude-test", true)).await)
                .await
                .unwrap(),
        );
        let mut blocks: BTreeMap<u64, (Value, String, usize)> = BTreeMap::new();
        for (name, data) in &events {
            let index = data["index"].as_u64();
            match name.as_str() {
                "content_block_start" => {
                    let block = &data["content_block"];
                    assert_eq!(block["type"], "tool_use");
                    assert_eq!(block["input"], json!({}));
                    blocks.insert(index.unwrap(), (block.clone(), String::new(), 0));
                }
                "content_block_delta" => {
                    assert_eq!(data["delta"]["type"], "input_json_delta");
                    let entry = blocks.get_mut(&index.unwrap()).unwrap();
                    entry
                        .1
                        .push_str(data["delta"]["partial_json"].as_str().unwrap());
                    entry.2 += 1;
                }
                _ => {}
            }
        }
        assert_eq!(blocks.len(), 2);
        for (index, (name, arguments)) in calls.iter().enumerate() {
            let (block, json_text, pieces) = &blocks[&(index as u64)];
            assert_eq!(block["name"], name.as_str());
            assert!(*pieces >= 2, "{pieces} pieces for {name}");
            let input: Value = serde_json::from_str(json_text).unwrap();
            assert_eq!(input, serde_json::from_str::<Value>(arguments).unwrap());
        }
        let delta = &events[events.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(events.last().unwrap().0, "message_stop");
    }

    #[tokio::test]
    async fn credentials_and_version_are_required() {
        let mock = mock().await;
        let client = &mock.client;
        let url = format!("{}/v1/messages", mock.origin());
        let send = |key: Option<&str>, version: Option<&str>| {
            let mut request = client.post(&url).json(&body("claude-test", false));
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            if let Some(version) = version {
                request = request.header("anthropic-version", version);
            }
            request.send()
        };
        let (status, kind, _) = refused(send(None, Some("2023-06-01")).await.unwrap()).await;
        assert_eq!((status, kind.as_str()), (401, "authentication_error"));
        // A bearer token is not how Anthropic takes its key.
        let bearer = client
            .post(&url)
            .bearer_auth(KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&body("claude-test", false))
            .send()
            .await
            .unwrap();
        assert_eq!(refused(bearer).await.0, 401);
        let (status, kind, _) =
            refused(send(Some("wrong"), Some("2023-06-01")).await.unwrap()).await;
        assert_eq!((status, kind.as_str()), (401, "authentication_error"));
        let (status, kind, message) = refused(send(Some(KEY), None).await.unwrap()).await;
        assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
        assert!(message.contains("anthropic-version"), "{message}");
        assert_eq!(mock.request_count(), 4);
    }

    #[tokio::test]
    async fn invalid_requests_are_refused_naming_the_field() {
        let mock = mock().await;
        let user = |text: &str| json!({"role": "user", "content": text});
        let ask_weather = json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
        ]});
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"model": "claude-test", "messages": [user("hi")]}),
                "max_tokens: Field required",
            ),
            (
                json!({"max_tokens": 5, "messages": [user("hi")]}),
                "model: Field required",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 0, "messages": [user("hi")]}),
                "max_tokens",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": []}),
                "messages",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [user("hi")], "n": 2}),
                "n: Extra inputs are not permitted",
            ),
            (
                // A system turn holds instructions: text only.
                json!({"model": "claude-test", "max_tokens": 5, "messages": [
                    user("hi"), {"role": "system", "content": [{"type": "image"}]}
                ]}),
                "messages.1.content.0.type",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [
                    {"role": "user", "content": [{"type": "input_text", "text": "hi"}]}
                ]}),
                "messages.0.content.0.type",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "AA=="}}]}
                ]}),
                "messages.0.content.0.source.media_type",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [
                    {"role": "user", "content": "hi", "name": "bob"}
                ]}),
                "messages.0.name: Extra inputs are not permitted",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [
                    {"role": "assistant", "content": "hello"}, user("hi")
                ]}),
                "first message",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [
                    user("weather?"), ask_weather.clone(),
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "sunny"}]}
                ]}),
                "messages.2.content.0: unexpected `tool_use_id`",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [
                    user("weather?"), ask_weather.clone(), user("well?")
                ]}),
                "messages.1: `tool_use` ids were found without `tool_result` blocks",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [
                    user("weather?"),
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": "{}"}]}
                ]}),
                "messages.1.content.0.input",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [user("hi")], "system": [{"type": "image"}]}),
                "system.0.type",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [user("hi")],
                    "tools": [{"name": "get_weather", "parameters": {"type": "object"}}]}),
                "tools.0.parameters: Extra inputs are not permitted",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [user("hi")],
                    "tools": [{"name": "get_weather"}]}),
                "tools.0.input_schema: Field required",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [user("hi")], "temperature": 1.5}),
                "temperature",
            ),
            (
                json!({"model": "claude-test", "max_tokens": 5, "messages": [user("")]}),
                "messages.0: all messages must have non-empty content",
            ),
        ];
        for (body, expected) in &cases {
            let (status, kind, message) = refused(post(&mock, body).await).await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(kind, "invalid_request_error");
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }

        // A full tool round trip, with a prefilled final assistant turn, passes.
        let valid = json!({
            "model": "claude-test",
            "max_tokens": 64,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                user("weather?"),
                ask_weather,
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
                ]},
                {"role": "assistant", "content": ""}
            ],
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}}}],
            "tool_choice": {"type": "auto"},
            "temperature": 0.5,
            "metadata": {"user_id": "u-1"},
            "stop_sequences": ["END"]
        });
        assert_eq!(post(&mock, &valid).await.status(), 200);
    }

    #[tokio::test]
    async fn error_replies_carry_the_type_and_retry_after() {
        let mock = mock().await;
        mock.push(MockReply::Error {
            status: 429,
            code: "rate_limit_error".to_owned(),
            message: "Slow down".to_owned(),
            retry_after: Some(3),
        });
        let response = post(&mock, &body("claude-test", true)).await;
        assert_eq!(response.headers()["retry-after"], "3");
        assert_eq!(
            refused(response).await,
            (429, "rate_limit_error".to_owned(), "Slow down".to_owned())
        );

        let response = post(&mock, &body("claude-ratelimit", false)).await;
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(refused(response).await.1, "rate_limit_error");
        let (status, kind, _) = refused(post(&mock, &body("claude-overloaded", false)).await).await;
        assert_eq!((status, kind.as_str()), (529, "overloaded_error"));
        let (status, kind, _) = refused(post(&mock, &body("claude-error500", true)).await).await;
        assert_eq!((status, kind.as_str()), (500, "api_error"));
    }

    #[tokio::test]
    async fn cut_stream_ends_without_message_stop() {
        let mock = mock().await;
        let response = post(&mock, &body("claude-cut", true)).await;
        assert_eq!(response.status(), 200);
        let text = read_all(response).await.unwrap_err();
        let events = parse_events(&text);
        assert_eq!(
            names(&events),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta"
            ]
        );
        assert_eq!(text_of(&events), "Hello from");

        // Not streamed: a body shorter than its Content-Length.
        let response = post(&mock, &body("claude-cut", false)).await;
        assert!(response.json::<Value>().await.is_err());
    }

    #[tokio::test]
    async fn model_names_choose_the_stop_reason_and_failures() {
        let mock = mock().await;
        let message: Value = post(&mock, &body("claude-maxtokens", false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(message["stop_reason"], "max_tokens");
        assert_eq!(message["content"][0]["text"], "Hello from alpha");
        assert_eq!(message["usage"]["output_tokens"], 3);

        let events = parse_events(
            &read_all(post(&mock, &body("claude-refusal", true)).await)
                .await
                .unwrap(),
        );
        assert_eq!(
            events[events.len() - 2].1["delta"]["stop_reason"],
            "refusal"
        );

        let text = read_all(post(&mock, &body("claude-streamerror", true)).await)
            .await
            .unwrap();
        let events = parse_events(&text);
        let (name, error) = events.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(error["error"]["type"], "overloaded_error");
        assert!(!names(&events).contains(&"message_stop"));

        let garbage = read_all(post(&mock, &body("claude-garbage", true)).await)
            .await
            .unwrap();
        assert_eq!(garbage, "event: content_block_delta\ndata: {not json\n\n");

        let models: Value = mock
            .client
            .get(format!("{}/v1/models", mock.origin()))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(models["data"][0]["type"], "model");
        assert_eq!(models["has_more"], false);
    }

    #[tokio::test]
    async fn scripted_waits_still_end_in_a_full_stream() {
        let mock = mock().await;
        let release = Arc::new(Notify::new());
        release.notify_one();
        mock.push(MockReply::Slow {
            delay: Duration::from_millis(20),
            then: Box::new(MockReply::Gated {
                first: "one".to_owned(),
                release,
                rest: " two three".to_owned(),
            }),
        });
        mock.push(MockReply::Paced {
            text: "a b c".to_owned(),
            gap: Duration::from_millis(5),
        });
        let gated = parse_events(
            &read_all(post(&mock, &body("claude-test", true)).await)
                .await
                .unwrap(),
        );
        assert_eq!(text_of(&gated), "one two three");
        assert_eq!(gated.last().unwrap().0, "message_stop");
        let paced: Value = post(&mock, &body("claude-test", false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(paced["content"][0]["text"], "a b c");
    }
    #[tokio::test]
    async fn a_stream_left_by_its_client_counts_as_abandoned() {
        let mock = mock().await;
        mock.push(MockReply::Gated {
            first: "wait".to_owned(),
            release: Arc::new(Notify::new()),
            rest: " for it".to_owned(),
        });
        let mut response = post(&mock, &body("claude-test", true)).await;
        let mut text = String::new();
        while !text.contains("text_delta") {
            let chunk = response.chunk().await.unwrap().unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        drop(response);
        for _ in 0..100 {
            if mock.abandoned_streams() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the stream was not counted as abandoned");
    }
}

mod gemini {
    use super::*;

    async fn mock() -> Upstream<MockGemini> {
        Upstream::new(MockGemini::start("beta", KEY).await.unwrap())
    }

    fn body() -> Value {
        json!({
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": [{"role": "user", "parts": [{"text": "Say hi"}]}],
            "generationConfig": {"temperature": 0.2, "maxOutputTokens": 64}
        })
    }

    async fn post(
        mock: &Upstream<MockGemini>,
        model: &str,
        method: &str,
        body: &Value,
    ) -> reqwest::Response {
        mock.client
            .post(format!("{}/v1beta/models/{model}:{method}", mock.origin()))
            .header("x-goog-api-key", KEY)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn generate(mock: &Upstream<MockGemini>, model: &str, body: &Value) -> reqwest::Response {
        post(mock, model, "generateContent", body).await
    }

    async fn stream(mock: &Upstream<MockGemini>, model: &str, body: &Value) -> reqwest::Response {
        post(mock, model, "streamGenerateContent?alt=sse", body).await
    }

    /// The `data:` payloads of an event stream with CRLF line endings.
    fn parse_events(text: &str) -> Vec<Value> {
        text.split("\r\n\r\n")
            .filter(|event| !event.is_empty())
            .map(|event| serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap())
            .collect()
    }

    fn text_of(events: &[Value]) -> String {
        events
            .iter()
            .flat_map(|e| {
                e["candidates"][0]["content"]["parts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|part| part["text"].as_str().map(str::to_owned))
            .collect()
    }

    async fn refused(response: reqwest::Response) -> (u16, String, String) {
        let code = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
        let status = body["error"]["status"].as_str().unwrap().to_owned();
        let message = body["error"]["message"].as_str().unwrap().to_owned();
        (code, status, message)
    }

    #[tokio::test]
    async fn json_response_has_the_candidate_and_usage() {
        let mock = mock().await;
        let response = generate(&mock, "gemini-test", &body()).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        let candidate = &answer["candidates"][0];
        assert_eq!(
            candidate["content"],
            json!({"parts": [{"text": "Hello from beta via gemini-test"}], "role": "model"})
        );
        assert_eq!(candidate["finishReason"], "STOP");
        assert_eq!(candidate["index"], 0);
        let usage = &answer["usageMetadata"];
        assert_eq!(usage["promptTokenCount"], 4);
        assert_eq!(usage["candidatesTokenCount"], 5);
        assert_eq!(usage["totalTokenCount"], 9);
        assert_eq!(answer["modelVersion"], "gemini-test");
        assert!(
            answer["responseId"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );

        let seen = mock.requests();
        assert_eq!(seen[0].path, "/v1beta/models/gemini-test:generateContent");
        assert_eq!(seen[0].header("x-goog-api-key"), Some(KEY));
        assert!(!format!("{:?}", mock.mock).contains(KEY));
    }

    #[tokio::test]
    async fn sse_stream_sends_one_response_per_word_and_no_done() {
        let mock = mock().await;
        let response = stream(&mock, "gemini-test", &body()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let text = read_all(response).await.unwrap();
        assert!(!text.contains("[DONE]"));
        assert!(text.ends_with("}\r\n\r\n"));
        let events = parse_events(&text);
        assert_eq!(events.len(), 5);
        assert_eq!(text_of(&events), "Hello from beta via gemini-test");
        for middle in &events[..4] {
            assert_eq!(middle["candidates"][0]["content"]["role"], "model");
            assert!(middle["candidates"][0].get("finishReason").is_none());
            assert_eq!(middle["usageMetadata"]["promptTokenCount"], 4);
            assert!(
                middle["usageMetadata"]
                    .get("candidatesTokenCount")
                    .is_none()
            );
            assert_eq!(middle["modelVersion"], "gemini-test");
        }
        let last = &events[4];
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            last["candidates"][0]["content"]["parts"][0]["text"],
            " gemini-test"
        );
        assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 5);
        assert_eq!(last["usageMetadata"]["totalTokenCount"], 9);

        // Without alt=sse the real API streams a JSON array; the mock refuses.
        let response = post(&mock, "gemini-test", "streamGenerateContent", &body()).await;
        let (code, status, message) = refused(response).await;
        assert_eq!((code, status.as_str()), (400, "INVALID_ARGUMENT"));
        assert!(message.contains("alt=sse"), "{message}");
    }

    #[tokio::test]
    async fn function_calls_come_whole() {
        let mock = mock().await;
        let answer: Value = generate(&mock, "gemini-tools", &body())
            .await
            .json()
            .await
            .unwrap();
        let candidate = &answer["candidates"][0];
        assert_eq!(candidate["finishReason"], "STOP");
        assert_eq!(
            candidate["content"]["parts"],
            json!([
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {"timezone": "Europe/Paris"}}}
            ])
        );

        let arguments = r#"{"query": "rust sse", "filters": {"lang": "en"}}"#;
        mock.push(MockReply::ToolCalls(vec![(
            "search".to_owned(),
            arguments.to_owned(),
        )]));
        let events = parse_events(
            &read_all(stream(&mock, "gemini-test", &body()).await)
                .await
                .unwrap(),
        );
        assert_eq!(events.len(), 1);
        let candidate = &events[0]["candidates"][0];
        assert_eq!(candidate["finishReason"], "STOP");
        let call = &candidate["content"]["parts"][0]["functionCall"];
        assert_eq!(call["name"], "search");
        assert_eq!(
            call["args"],
            serde_json::from_str::<Value>(arguments).unwrap()
        );
    }

    #[tokio::test]
    async fn the_api_key_header_is_required() {
        let mock = mock().await;
        let client = &mock.client;
        let url = format!(
            "{}/v1beta/models/gemini-test:generateContent",
            mock.origin()
        );
        let missing = client.post(&url).json(&body()).send().await.unwrap();
        let (code, status, _) = refused(missing).await;
        assert_eq!((code, status.as_str()), (403, "PERMISSION_DENIED"));
        let wrong = client
            .post(&url)
            .header("x-goog-api-key", "wrong")
            .json(&body())
            .send()
            .await
            .unwrap();
        let (code, status, message) = refused(wrong).await;
        assert_eq!((code, status.as_str()), (400, "INVALID_ARGUMENT"));
        assert!(message.contains("API key not valid"), "{message}");
        let listed: Value = client
            .get(format!("{}/v1beta/models", mock.origin()))
            .header("x-goog-api-key", KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            listed["models"][0]["name"]
                .as_str()
                .unwrap()
                .starts_with("models/")
        );
    }

    #[tokio::test]
    async fn invalid_requests_are_refused_naming_the_field() {
        let mock = mock().await;
        let user = |text: &str| json!({"role": "user", "parts": [{"text": text}]});
        let call = json!({"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {}}}
        ]});
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"contents": [user("hi")], "model": "gemini-test"}),
                "Unknown name \"model\": Cannot find field.",
            ),
            (
                json!({"contents": [user("hi")], "messages": []}),
                "Unknown name \"messages\"",
            ),
            (
                json!({"generationConfig": {}}),
                "contents: contents is not specified",
            ),
            (
                json!({"contents": []}),
                "contents: contents is not specified",
            ),
            (
                json!({"contents": [user("hi"), {"role": "assistant", "parts": [{"text": "yo"}]}]}),
                "contents[1].role",
            ),
            (
                json!({"contents": [user("hi"), {"parts": [{"text": "yo"}]}]}),
                "contents[1].role",
            ),
            (
                json!({"contents": [{"role": "user", "parts": []}]}),
                "contents[0].parts",
            ),
            (
                json!({"contents": [{"role": "user", "parts": [{}]}]}),
                "contents[0].parts[0].data",
            ),
            (
                json!({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {"mimeType": "image/png", "data": "AA=="}}]}]}),
                "oneof field 'data' is already set",
            ),
            (
                json!({"contents": [{"role": "user", "parts": [{"text": "a", "role": "user"}]}]}),
                "Unknown name \"role\" at 'contents[0].parts[0]'",
            ),
            (
                json!({"contents": [user("hi"), call.clone(), {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"t": 20}}}
                ]}]}),
                "number of function response parts",
            ),
            (
                json!({"contents": [user("hi"), call.clone(), {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": "sunny"}},
                    {"functionResponse": {"name": "get_time", "response": {}}}
                ]}]}),
                "contents[2].parts[0].function_response.response",
            ),
            (
                json!({"contents": [user("hi")], "systemInstruction": "Be brief."}),
                "system_instruction",
            ),
            (
                json!({"contents": [user("hi")], "tools": [{"functionDeclarations": [{"name": "f", "parameters":
                    {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": false}}]}]}),
                "Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters'",
            ),
            (
                json!({"contents": [user("hi")], "tools": [{"functionDeclarations": [{"description": "no name"}]}]}),
                "tools[0].function_declarations[0].name",
            ),
            (
                json!({"contents": [user("hi")], "generationConfig": {"max_tokens": 5}}),
                "Unknown name \"max_tokens\" at 'generation_config'",
            ),
            (
                json!({"contents": [user("hi")], "toolConfig": {"functionCallingConfig": {"mode": "auto"}}}),
                "tool_config.function_calling_config.mode",
            ),
        ];
        for (body, expected) in &cases {
            let (code, status, message) = refused(generate(&mock, "gemini-test", body).await).await;
            assert_eq!((code, status.as_str()), (400, "INVALID_ARGUMENT"), "{body}");
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }

        // snake_case names, a single turn without a role and a full function round trip pass.
        let single = json!({"contents": [{"parts": [{"text": "hi"}]}], "generation_config": {"max_output_tokens": 8}});
        assert_eq!(generate(&mock, "gemini-test", &single).await.status(), 200);
        let round_trip = json!({
            "contents": [user("hi"), call, {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"t": 20}}},
                {"function_response": {"name": "get_time", "response": {"now": "noon"}}}
            ]}],
            "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters":
                {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
        });
        assert_eq!(
            generate(&mock, "gemini-test", &round_trip).await.status(),
            200
        );
    }

    #[tokio::test]
    async fn error_replies_use_google_statuses_and_retry_after() {
        let mock = mock().await;
        mock.push(MockReply::Error {
            status: 429,
            code: "rate_limit_exceeded".to_owned(),
            message: "Quota exceeded".to_owned(),
            retry_after: Some(2),
        });
        let response = stream(&mock, "gemini-test", &body()).await;
        assert_eq!(response.headers()["retry-after"], "2");
        assert_eq!(
            refused(response).await,
            (
                429,
                "RESOURCE_EXHAUSTED".to_owned(),
                "Quota exceeded".to_owned()
            )
        );
        let response = generate(&mock, "gemini-ratelimit", &body()).await;
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(refused(response).await.1, "RESOURCE_EXHAUSTED");
        let (code, status, _) = refused(generate(&mock, "gemini-error500", &body()).await).await;
        assert_eq!((code, status.as_str()), (500, "INTERNAL"));
        mock.push(MockReply::Error {
            status: 503,
            code: String::new(),
            message: "The model is overloaded.".to_owned(),
            retry_after: None,
        });
        let (code, status, _) = refused(generate(&mock, "gemini-test", &body()).await).await;
        assert_eq!((code, status.as_str()), (503, "UNAVAILABLE"));
    }

    #[tokio::test]
    async fn cut_stream_ends_without_a_finish_reason() {
        let mock = mock().await;
        let response = stream(&mock, "gemini-cut", &body()).await;
        assert_eq!(response.status(), 200);
        let text = read_all(response).await.unwrap_err();
        let events = parse_events(&text);
        assert_eq!(events.len(), 2);
        assert_eq!(text_of(&events), "Hello from");
        assert!(
            events
                .iter()
                .all(|e| e["candidates"][0].get("finishReason").is_none())
        );

        let response = generate(&mock, "gemini-cut", &body()).await;
        assert!(response.json::<Value>().await.is_err());
        let garbage = read_all(stream(&mock, "gemini-garbage", &body()).await)
            .await
            .unwrap();
        assert_eq!(garbage, "data: {not json\r\n\r\n");
    }

    #[tokio::test]
    async fn model_names_choose_the_finish_reason() {
        let mock = mock().await;
        let answer: Value = generate(&mock, "gemini-maxtokens", &body())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["candidates"][0]["finishReason"], "MAX_TOKENS");
        assert_eq!(
            answer["candidates"][0]["content"]["parts"][0]["text"],
            "Hello from beta"
        );

        let answer: Value = generate(&mock, "gemini-safety", &body())
            .await
            .json()
            .await
            .unwrap();
        let candidate = &answer["candidates"][0];
        assert_eq!(candidate["finishReason"], "SAFETY");
        assert!(candidate.get("content").is_none());
        assert!(candidate["safetyRatings"].as_array().is_some());

        let events = parse_events(
            &read_all(stream(&mock, "gemini-safety", &body()).await)
                .await
                .unwrap(),
        );
        let last = events.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "SAFETY");
        assert!(last["candidates"][0].get("content").is_none());
        assert_eq!(text_of(&events), "Hello from beta");
    }

    #[tokio::test]
    async fn scripted_waits_still_end_in_a_full_stream() {
        let mock = mock().await;
        let release = Arc::new(Notify::new());
        release.notify_one();
        mock.push(MockReply::Gated {
            first: "one".to_owned(),
            release,
            rest: String::new(),
        });
        let events = parse_events(
            &read_all(stream(&mock, "gemini-test", &body()).await)
                .await
                .unwrap(),
        );
        assert_eq!(text_of(&events), "one");
        // Nothing followed the gate: the finish comes in a chunk of its own.
        assert_eq!(events.len(), 2);
        assert_eq!(events[1]["candidates"][0]["finishReason"], "STOP");
        mock.push(MockReply::Paced {
            text: "a b c".to_owned(),
            gap: Duration::from_millis(5),
        });
        let events = parse_events(
            &read_all(stream(&mock, "gemini-test", &body()).await)
                .await
                .unwrap(),
        );
        assert_eq!(text_of(&events), "a b c");
        assert_eq!(events.len(), 3);
    }
}
