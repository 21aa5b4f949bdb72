//! A mock OpenAI upstream for benchmarks: it answers every chat completion at once with a
//! fixed body (or a short SSE stream), so that what a load test measures is keygate.
//!
//! Usage: `keygate-mock-upstream 127.0.0.1:9100`

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0}},"system_fingerprint":"fp_bench"}"#;

fn stream_body() -> String {
    let mut out = String::new();
    for (i, word) in ["Hello!", " How", " can", " I", " help?"]
        .iter()
        .enumerate()
    {
        let role = if i == 0 { r#""role":"assistant","# } else { "" };
        out.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{{role}\"content\":\"{word}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
    }
    out.push_str("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n");
    out.push_str("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17}}\n\n");
    out.push_str("data: [DONE]\n\n");
    out
}

async fn completions(body: Bytes) -> Response {
    let streamed = body.windows(13).any(|w| w == b"\"stream\":true");
    let (content_type, text) = if streamed {
        ("text/event-stream", stream_body())
    } else {
        ("application/json", COMPLETION.to_owned())
    };
    let mut response = Response::new(Body::from(text));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".to_owned())
        .parse()?;
    let app = Router::new().route("/v1/chat/completions", post(completions));
    // Without TCP_NODELAY a response written in two parts waits for a delayed ACK.
    let listener = tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
