//! keygate's own work per proxied request and per streamed chunk, without the network: reading
//! the request, splicing the model, reading the response's usage, splitting and reading a
//! stream's events, and choosing a deployment.
//! Run with `cargo bench -p keygate-llm --bench gateway`; results go in docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use keygate_llm::sse::EventSplitter;
use keygate_llm::{Endpoint, Inbound};

const REQUEST: &str = r#"{"model":"chat","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello there, how are you today? Tell me about the weather in Paris."}],"temperature":0.7,"max_tokens":256,"stream":true}"#;

const RESPONSE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0}},"system_fingerprint":"fp_1"}"#;

const CHUNK: &str = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"finish_reason\":null}],\"usage\":null}\n\n";

fn request(c: &mut Criterion) {
    let body = Bytes::from_static(REQUEST.as_bytes());
    c.bench_function("request/parse_and_splice", |b| {
        b.iter(|| {
            let inbound =
                Inbound::parse(Endpoint::ChatCompletions, black_box(body.clone())).unwrap();
            black_box(inbound.body_for("gpt-4o-mini", true))
        });
    });
    c.bench_function("response/usage", |b| {
        b.iter(|| {
            black_box(keygate_llm::usage::from_body(black_box(RESPONSE.as_bytes())).unwrap())
        });
    });
}

fn stream(c: &mut Criterion) {
    c.bench_function("stream/chunk", |b| {
        let mut splitter = EventSplitter::new();
        let mut text = String::new();
        b.iter(|| {
            splitter.push(black_box(CHUNK.as_bytes())).unwrap();
            let event = splitter.next_event().unwrap().unwrap();
            let data = event.data().unwrap();
            let chunk = keygate_llm::usage::read_chunk(&data, &mut text, 0).unwrap();
            black_box((chunk, event.raw.len()))
        });
    });
}

criterion_group!(benches, request, stream);
criterion_main!(benches);
