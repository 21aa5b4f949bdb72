#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! The mock OpenAI upstream answers in OpenAI's wire format, over a real socket.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use keygate_testkit::{MockOpenAi, MockReply};
use serde_json::{Value, json};
use tokio::sync::Notify;

const KEY: &str = "sk-mock-key";

async fn mock() -> MockOpenAi {
    MockOpenAi::start("alpha", KEY).await.unwrap()
}

fn chat_body(model: &str, stream: bool) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Say hi"}]}
        ]
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

async fn post(mock: &MockOpenAi, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", mock.origin()))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The `data:` payloads of an event stream, in order.
fn events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| event.strip_prefix("data: ").unwrap().to_owned())
        .collect()
}

/// Reads a stream to its end; `Err` carries what arrived before the body failed.
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

fn content_of(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn json_chat_answers_with_the_mock_name_and_usage() {
    let mock = mock().await;
    let response = post(
        &mock,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], "chatcmpl-1");
    assert_eq!(body["model"], "gpt-4o-mini");
    let message = &body["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"], "Hello from alpha: Say hi");
    assert_eq!(message["refusal"], Value::Null);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // Four words in the messages plus 3; five words in the answer.
    assert_eq!(body["usage"]["prompt_tokens"], 7);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 12);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);

    let seen = mock.requests();
    assert_eq!(mock.request_count(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].header("Authorization"), Some("Bearer sk-mock-key"));
    assert_eq!(seen[0].json()["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn sse_chat_sends_word_chunks_a_usage_chunk_and_done() {
    let mock = mock().await;
    let response = post(
        &mock,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", true),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = events(&read_all(response).await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks.len() > 4, "one chunk per word: {events:?}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(content_of(&events), "Hello from alpha: Say hi");
    for chunk in &chunks[..chunks.len() - 1] {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["usage"], Value::Null);
    }
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 12);

    // Without include_usage there is no usage chunk.
    let mut body = chat_body("gpt-4o-mini", true);
    body["stream_options"] = json!({"include_usage": false});
    let text = read_all(post(&mock, "/v1/chat/completions", &body).await)
        .await
        .unwrap();
    assert!(!text.contains("\"choices\":[]"));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn tool_call_deltas_reassemble_to_the_full_arguments() {
    let mock = mock().await;
    let response = post(
        &mock,
        "/v1/chat/completions",
        &chat_body("gpt-4o-tools", true),
    )
    .await;
    let events = events(&read_all(response).await.unwrap());
    let mut calls: BTreeMap<u64, (String, String, String, usize)> = BTreeMap::new();
    let mut finish = None;
    for event in events.iter().filter(|e| *e != "[DONE]") {
        let chunk: Value = serde_json::from_str(event).unwrap();
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(reason.to_owned());
        }
        for delta in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let entry = calls.entry(delta["index"].as_u64().unwrap()).or_default();
            if let Some(id) = delta["id"].as_str() {
                assert_eq!(delta["type"], "function");
                entry.0 = id.to_owned();
                entry.1 = delta["function"]["name"].as_str().unwrap().to_owned();
            }
            if let Some(piece) = delta["function"]["arguments"]
                .as_str()
                .filter(|p| !p.is_empty())
            {
                entry.2.push_str(piece);
                entry.3 += 1;
            }
        }
    }
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let calls: Vec<_> = calls.into_values().collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].1.as_str(), calls[0].2.as_str()),
        ("get_weather", "{\"city\": \"Paris\"}")
    );
    assert_eq!(
        (calls[1].1.as_str(), calls[1].2.as_str()),
        ("get_time", "{\"timezone\": \"Europe/Paris\"}")
    );
    assert!(calls.iter().all(|c| c.3 >= 2 && !c.0.is_empty()));

    let body: Value = post(
        &mock,
        "/v1/chat/completions",
        &chat_body("gpt-4o-tools", false),
    )
    .await
    .json()
    .await
    .unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][1]["function"]["name"], "get_time");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["usage"]["completion_tokens"], 10);
}

#[tokio::test]
async fn a_wrong_key_is_refused_without_echo_and_recorded() {
    let mock = mock().await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", mock.origin()))
        .bearer_auth("sk-wrong-secret")
        .json(&chat_body("gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let text = response.text().await.unwrap();
    assert!(!text.contains("sk-wrong-secret"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], Value::Null);
    assert_eq!(mock.request_count(), 1);

    let accepted = reqwest::Client::new()
        .get(format!("{}/v1/models", mock.origin()))
        .header("api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let models: Value = accepted.json().await.unwrap();
    assert_eq!(models["object"], "list");
}

#[tokio::test]
async fn bad_bodies_get_openai_400s() {
    let mock = mock().await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", mock.origin()))
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let response = post(&mock, "/v1/chat/completions", &json!({"messages": []})).await;
    assert_eq!(response.status(), 400);
    let response = post(&mock, "/v1/nothing", &json!({})).await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let mock = mock().await;
    let response = post(
        &mock,
        "/v1/chat/completions",
        &chat_body("gpt-ratelimit", false),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");

    mock.push(MockReply::Error {
        status: 503,
        code: "overloaded".to_owned(),
        message: "busy".to_owned(),
        retry_after: Some(7),
    });
    let response = post(
        &mock,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", true),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
}

#[tokio::test]
async fn gated_streams_hold_the_rest_until_released() {
    let mock = mock().await;
    let release = Arc::new(Notify::new());
    mock.push(MockReply::Gated {
        first: "Hold".to_owned(),
        release: release.clone(),
        rest: " on tight".to_owned(),
    });
    let mut response = post(
        &mock,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", true),
    )
    .await;
    let mut text = String::new();
    while !text.contains("\"Hold\"") {
        let bytes = response.chunk().await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&bytes).unwrap());
    }
    let early = tokio::time::timeout(Duration::from_millis(300), response.chunk()).await;
    assert!(early.is_err(), "nothing more before the release");
    release.notify_one();
    text.push_str(&read_all(response).await.unwrap());
    let events = events(&text);
    assert_eq!(content_of(&events), "Hold on tight");
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(mock.abandoned_streams(), 0);
}

#[tokio::test]
async fn cut_streams_end_with_an_error() {
    let mock = mock().await;
    let response = post(&mock, "/v1/chat/completions", &chat_body("gpt-cut", true)).await;
    assert_eq!(response.status(), 200);
    let partial = read_all(response).await.expect_err("the body must fail");
    let events = events(&partial);
    assert_eq!(events.len(), 2);
    assert_eq!(content_of(&events), "Hello from");

    let response = post(&mock, "/v1/chat/completions", &chat_body("gpt-cut", false)).await;
    assert_eq!(response.status(), 200);
    let announced = response.content_length().unwrap();
    let sent = read_all(response).await.expect_err("the body must fail");
    assert!((sent.len() as u64) < announced);
    assert!(sent.starts_with("{\""));
    assert!(serde_json::from_str::<Value>(&sent).is_err());
    assert_eq!(mock.abandoned_streams(), 0);
}

#[tokio::test]
async fn garbage_and_slow_replies() {
    let mock = mock().await;
    let response = post(
        &mock,
        "/v1/chat/completions",
        &chat_body("gpt-garbage", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "<html>oops</html>");

    mock.push(MockReply::Slow {
        delay: Duration::from_millis(200),
        then: Box::new(MockReply::Text("late".to_owned())),
    });
    let started = std::time::Instant::now();
    let body: Value = post(
        &mock,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(body["choices"][0]["message"]["content"], "late");

    let hung = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap()
        .post(format!("{}/v1/chat/completions", mock.origin()))
        .bearer_auth(KEY)
        .json(&chat_body("gpt-hang", false))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
}

#[tokio::test]
async fn a_client_that_goes_away_counts_as_an_abandoned_stream() {
    let mock = mock().await;
    let words = vec!["word"; 100].join(" ");
    mock.push(MockReply::Paced {
        text: words,
        gap: Duration::from_millis(20),
    });
    let mut response = post(
        &mock,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", true),
    )
    .await;
    response.chunk().await.unwrap().unwrap();
    drop(response);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while mock.abandoned_streams() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped stream was not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.abandoned_streams(), 1);
}

#[tokio::test]
async fn azure_paths_need_an_api_version_and_answer_as_the_deployment() {
    let mock = mock().await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/openai/deployments/prod-4o/chat/completions",
        mock.origin()
    );
    let body = json!({"messages": [{"role": "user", "content": "Hi there"}]});
    let response = client
        .post(format!("{url}?api-version=2024-10-21"))
        .header("api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["model"], "prod-4o");
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Hello from alpha: Hi there"
    );

    let missing = client
        .post(&url)
        .header("api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(
        error,
        json!({"error": {"code": "404", "message": "Resource not found"}})
    );
    assert_eq!(mock.requests()[1].query, None);
    assert_eq!(
        mock.requests()[0].query.as_deref(),
        Some("api-version=2024-10-21")
    );
}

#[tokio::test]
async fn embeddings_as_floats_and_base64_agree() {
    let mock = mock().await;
    let request = |format: &str| {
        json!({
            "model": "text-embedding-3-small",
            "input": ["first text", "second"],
            "dimensions": 4,
            "encoding_format": format
        })
    };
    let floats: Value = post(&mock, "/v1/embeddings", &request("float"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["model"], "text-embedding-3-small");
    assert_eq!(
        floats["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let data = floats["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["object"], "embedding");
    assert_eq!(data[1]["index"], 1);
    let vector: Vec<f32> = data[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(vector.len(), 4);

    let encoded: Value = post(&mock, "/v1/embeddings", &request("base64"))
        .await
        .json()
        .await
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(decoded, vector);

    let default: Value = post(
        &mock,
        "/v1/embeddings",
        &json!({"model": "m", "input": "x"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(default["data"][0]["embedding"].as_array().unwrap().len(), 8);
}
