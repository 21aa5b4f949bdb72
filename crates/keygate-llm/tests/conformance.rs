//! The translation conformance suite: every fixture under `tests/conformance/` is translated in
//! every direction keygate serves, and the result is compared with its reviewed snapshot in
//! `tests/conformance/snapshots/`.
//!
//! - `requests/<client>/*.json`: a client's request → the request each other provider gets;
//! - `responses/<upstream>/*.json`: an upstream's whole answer → each other client's answer;
//! - `streams/<upstream>/*.sse`: an upstream's event stream → each other client's stream,
//!   event by event, with whether the stream was complete;
//! - `errors/*.json`: an upstream error body → each client's error body.
//!
//! A changed translation fails here until its snapshot is reviewed (`cargo insta review`);
//! with `CI=true`, a missing snapshot fails too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::path::{Path, PathBuf};

use keygate_llm::ClientFormat;
use keygate_llm::sse::EventSplitter;
use keygate_llm::translate::{
    self, Format, StreamDecoder, StreamEncoder, TargetOptions, ir::StreamEvent,
};
use serde_json::{Value, json};

const CLIENTS: [ClientFormat; 3] = [
    ClientFormat::OpenAi,
    ClientFormat::Responses,
    ClientFormat::Anthropic,
];
const UPSTREAMS: [Format; 4] = [
    Format::OpenAi,
    Format::Responses,
    Format::Anthropic,
    Format::Gemini,
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// The fixtures of one folder, sorted, as `(stem, text)`.
fn fixtures(folder: &str) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(root().join(folder))
        .unwrap_or_else(|err| panic!("{folder}: {err}"))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{folder} has no fixtures");
    files
        .into_iter()
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

fn check(name: &str, value: &Value) {
    insta::with_settings!({
        snapshot_path => root().join("snapshots"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
        sort_maps => true,
    }, {
        insta::assert_json_snapshot!(name, redact_created(value.clone()));
    });
}

/// `created` (`created_at` in the Responses API) is the time of translation: the one field
/// that differs from run to run.
fn redact_created(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    if key == "created" || key == "created_at" {
                        (key, json!("[created]"))
                    } else {
                        (key, redact_created(value))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_created).collect()),
        Value::String(text) => Value::String(redact_ids(&text)),
        other => other,
    }
}

/// keygate's own Responses ids (`kg` and a UUID's 32 hex digits) are made fresh each time.
fn redact_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("kg") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let hex = from
            .get(2..34)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        match hex {
            Some(_) => {
                out.push_str("kg[id]");
                rest = &from[34..];
            }
            None => {
                out.push_str("kg");
                rest = &from[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[test]
fn requests_translate_to_every_other_provider() {
    for client in CLIENTS {
        for (case, text) in fixtures(&format!("requests/{client}")) {
            for target in UPSTREAMS.into_iter().filter(|t| *t != client.wire()) {
                let translated = translate::decode_request(client, text.as_bytes(), target)
                    .and_then(|request| {
                        translate::encode_request(
                            target,
                            &request,
                            "upstream-model",
                            &TargetOptions::default(),
                        )
                    });
                let value = match translated {
                    Ok(body) => parse(&body),
                    Err(err) => json!({"refused": err.to_string(), "field": err.field()}),
                };
                check(&format!("request__{client}__{case}__to_{target}"), &value);
            }
        }
    }
}

#[test]
fn responses_translate_for_every_other_client() {
    for upstream in UPSTREAMS {
        for (case, text) in fixtures(&format!("responses/{upstream}")) {
            let answer = translate::decode_response(upstream, text.as_bytes())
                .unwrap_or_else(|err| panic!("{upstream}/{case}: {err}"));
            for client in CLIENTS.into_iter().filter(|c| c.wire() != upstream) {
                let body = translate::encode_response(client.wire(), &answer);
                check(
                    &format!("response__{upstream}__{case}__to_{client}"),
                    &parse(&body),
                );
            }
        }
    }
}

/// Translates a stream as the relay does, event by event; returns the client's events and
/// whether the upstream's stream was complete, or where it was refused as malformed.
fn translate_stream(upstream: Format, client: Format, text: &str) -> Value {
    let mut splitter = EventSplitter::new();
    splitter.push(text.as_bytes()).unwrap();
    let mut decoder = StreamDecoder::new(upstream);
    let mut encoder = StreamEncoder::new(client, true);
    let mut events: Vec<StreamEvent> = Vec::new();
    let mut out = String::new();
    let mut malformed = None;
    let mut index = 0;
    while let Some(event) = splitter.next_event().unwrap() {
        let Some(data) = event.data() else { continue };
        events.clear();
        if decoder.push(&data, &mut events).is_err() {
            malformed = Some(index);
            break;
        }
        index += 1;
        for event in &events {
            encoder.encode(event, &mut out);
        }
    }
    events.clear();
    let complete = malformed.is_none() && decoder.end(&mut events);
    for event in &events {
        encoder.encode(event, &mut out);
    }
    json!({
        "events": client_events(&out),
        "complete": complete,
        "malformed_upstream_event": malformed,
    })
}

/// The client's stream as `[{event, data}]`.
fn client_events(text: &str) -> Vec<Value> {
    let mut splitter = EventSplitter::new();
    splitter.push(text.as_bytes()).unwrap();
    let mut out = Vec::new();
    while let Some(event) = splitter.next_event().unwrap() {
        let raw = String::from_utf8_lossy(&event.raw).into_owned();
        let name = raw
            .lines()
            .find_map(|line| line.strip_prefix("event: "))
            .map(str::to_owned);
        let data = event.data().map(|d| parse(&d)).unwrap_or(Value::Null);
        out.push(match name {
            Some(name) => json!({"event": name, "data": data}),
            None => json!({"data": data}),
        });
    }
    out
}

#[test]
fn streams_translate_for_every_other_client() {
    for upstream in UPSTREAMS {
        for (case, text) in fixtures(&format!("streams/{upstream}")) {
            for client in CLIENTS.into_iter().filter(|c| c.wire() != upstream) {
                let value = translate_stream(upstream, client.wire(), &text);
                check(&format!("stream__{upstream}__{case}__to_{client}"), &value);
            }
        }
    }
}

#[test]
fn errors_translate_for_every_client() {
    for (case, text) in fixtures("errors") {
        let fixture: Value = serde_json::from_str(&text).unwrap();
        let status = u16::try_from(fixture["status"].as_u64().unwrap()).unwrap();
        let upstream = match fixture["format"].as_str().unwrap() {
            "openai" => Format::OpenAi,
            "anthropic" => Format::Anthropic,
            _ => Format::Gemini,
        };
        let body = match &fixture["body"] {
            Value::String(text) => text.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        };
        let error = translate::decode_error(upstream, status, &body);
        for client in CLIENTS {
            let body = translate::encode_error(client, &error, "upstream_error");
            check(&format!("error__{case}__to_{client}"), &parse(&body));
        }
    }
}

/// A coding agent's request (Claude Code's fields): thinking and effort become the target's
/// reasoning settings where the model reasons; hints are left out, or refused by a strict
/// group, naming the first.
#[test]
fn coding_agent_requests_keep_their_reasoning_and_lose_only_hints() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/conformance/requests/anthropic/coding_agent.json"),
    )
    .unwrap();
    let encode = |target, model: &str, options: TargetOptions| {
        translate::decode_request(ClientFormat::Anthropic, text.as_bytes(), target)
            .and_then(|request| translate::encode_request(target, &request, model, &options))
            .map(|body| parse(&body))
    };
    let reasoning = TargetOptions {
        reasoning: true,
        ..TargetOptions::default()
    };
    let openai = encode(Format::OpenAi, "o4-mini", reasoning).unwrap();
    assert_eq!(openai["reasoning_effort"], "medium");
    let plain = encode(Format::OpenAi, "gpt-4.1", TargetOptions::default()).unwrap();
    assert!(plain.get("reasoning_effort").is_none(), "{plain}");
    assert_eq!(plain["max_tokens"], 32000);
    let capped = TargetOptions {
        max_output: Some(16384),
        ..TargetOptions::default()
    };
    let gpt4o = encode(Format::OpenAi, "gpt-4o", capped).unwrap();
    assert_eq!(
        gpt4o["max_tokens"], 16384,
        "asked for what the model can give"
    );
    let gemini = encode(Format::Gemini, "gemini-3-pro", reasoning).unwrap();
    assert_eq!(
        gemini["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "high"})
    );
    let strict = TargetOptions {
        refuse_hints: true,
        reasoning: true,
        ..TargetOptions::default()
    };
    for target in [Format::OpenAi, Format::Gemini] {
        let err = encode(target, "m", strict).unwrap_err();
        assert_eq!(err.field(), "context_management", "{err}");
        assert!(
            err.to_string().contains(&format!("the {target} API")),
            "{err}"
        );
    }
    // Without hints, a strict group refuses thinking only for a model that does not reason.
    let thinking = br#"{"model":"m","max_tokens":10,"thinking":{"type":"adaptive"},
        "messages":[{"role":"user","content":"hi"}]}"#;
    let request =
        translate::decode_request(ClientFormat::Anthropic, thinking, Format::OpenAi).unwrap();
    let err = translate::encode_request(
        Format::OpenAi,
        &request,
        "gpt-4.1",
        &TargetOptions {
            refuse_hints: true,
            ..TargetOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.field(), "thinking");
    assert!(translate::encode_request(Format::OpenAi, &request, "o3", &strict).is_ok());
    let unknown = text.replace(r#""context_management""#, r#""context_editing""#);
    let err =
        translate::decode_request(ClientFormat::Anthropic, unknown.as_bytes(), Format::OpenAi)
            .unwrap_err();
    assert_eq!(
        err.field(),
        "context_editing",
        "a field never decided on is refused"
    );
}
