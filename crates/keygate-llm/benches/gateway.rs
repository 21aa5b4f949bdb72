//! keygate's own work per proxied request and per streamed chunk, without the network: reading
//! the request, splicing the model, reading the response's usage, splitting and reading a
//! stream's events, and translating requests, answers and stream events between formats.
//! Run with `cargo bench -p keygate-llm --bench gateway`; results go in docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use keygate_llm::sse::EventSplitter;
use keygate_llm::translate::{self, Format, StreamDecoder, StreamEncoder, TargetOptions};
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

const ANTHROPIC_RESPONSE: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"Hello! How can I help you today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":9}}"#;

const ANTHROPIC_DELTA: &str =
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" world"}}"#;

fn translation(c: &mut Criterion) {
    let body = Bytes::from_static(REQUEST.as_bytes());
    let options = TargetOptions::default();
    c.bench_function("translate/request_openai_to_anthropic", |b| {
        b.iter(|| {
            let inbound =
                Inbound::parse(Endpoint::ChatCompletions, black_box(body.clone())).unwrap();
            black_box(
                inbound
                    .upstream_body(Format::Anthropic, "claude-haiku-4-5", &options)
                    .unwrap(),
            )
        });
    });
    c.bench_function("translate/response_anthropic_to_openai", |b| {
        b.iter(|| {
            let answer = translate::decode_response(
                Format::Anthropic,
                black_box(ANTHROPIC_RESPONSE.as_bytes()),
            )
            .unwrap();
            black_box(translate::encode_response(Format::OpenAi, &answer))
        });
    });
    c.bench_function("translate/stream_event_anthropic_to_openai", |b| {
        let mut decoder = StreamDecoder::new(Format::Anthropic);
        let mut encoder = StreamEncoder::new(Format::OpenAi, false);
        let mut events = Vec::new();
        let mut out = String::new();
        let start = r#"{"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":1,"output_tokens":1}}}"#;
        let block = r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        for data in [start, block] {
            decoder.push(data.as_bytes(), &mut events).unwrap();
        }
        b.iter(|| {
            events.clear();
            out.clear();
            decoder
                .push(black_box(ANTHROPIC_DELTA.as_bytes()), &mut events)
                .unwrap();
            for event in &events {
                encoder.encode(event, &mut out);
            }
            black_box(out.len())
        });
    });
}

criterion_group!(benches, request, stream, translation);
criterion_main!(benches);
