//! Heap allocations per gateway request, counted by a counting allocator: the same requests
//! are sent straight to a mock upstream and through keygate (auth, limits with a request and
//! a token rate, usage records on), all in this process, and keygate's share is the
//! difference. Run with `cargo bench -p keygate-server --bench allocations`; results go in
//! docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]
#![allow(clippy::print_stdout, reason = "a benchmark prints its table")]

use std::alloc::System;

use keygate_testkit::{Db, MockOpenAi, TestServer};
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const UPSTREAM_KEY: &str = "sk-upstream-allocations-0123456789";
const REQUESTS: u64 = 2_000;

/// Allocations and bytes per request of `REQUESTS` calls of `send`.
async fn per_request<F, Fut>(send: F) -> (f64, f64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..200 {
        send().await;
    }
    // Let batched writes of the warm-up land before counting.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let region = Region::new(GLOBAL);
    for _ in 0..REQUESTS {
        send().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let change = region.change();
    let n = REQUESTS as f64;
    (
        (change.allocations + change.reallocations) as f64 / n,
        change.bytes_allocated as f64 / n,
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
        let config = format!(
            r#"
            [providers.up]
            kind = "openai"
            base_url = "{}/v1"
            credential = "env::UPSTREAM_KEY"

            [model_groups.chat]
            deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]
            "#,
            upstream.origin()
        );
        let server =
            TestServer::start_gateway(Db::Sqlite, &config, &[("UPSTREAM_KEY", UPSTREAM_KEY)])
                .await
                .unwrap();
        let key = server
            .api()
            .create_key(
                &server.owner_token,
                json!({"project": "default", "name": "bench", "scopes": ["models:*"],
                       "limits": {"requests": [{"limit": 1_000_000, "per": "minute"}],
                                  "tokens": [{"limit": 1_000_000_000, "per": "minute"}]}}),
            )
            .await
            .secret;
        let http = reqwest::Client::new();
        let body = |stream: bool| {
            json!({"model": "chat", "stream": stream, "max_tokens": 16,
                   "messages": [{"role": "user", "content": "hi"}]})
            .to_string()
        };
        let call = |url: String, token: String, body: String| {
            let http = http.clone();
            async move {
                let reply = http
                    .post(url)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert!(reply.status().is_success(), "{}", reply.status());
                reply.bytes().await.unwrap();
            }
        };
        println!(
            "| request | direct allocs | through keygate | keygate's allocs | keygate's bytes |"
        );
        println!("|---|---|---|---|---|");
        for stream in [false, true] {
            let direct_url = format!("{}/v1/chat/completions", upstream.origin());
            let direct =
                per_request(|| call(direct_url.clone(), UPSTREAM_KEY.to_owned(), body(stream)))
                    .await;
            let gateway_url = server.url("/v1/chat/completions");
            let through =
                per_request(|| call(gateway_url.clone(), key.clone(), body(stream))).await;
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                if stream {
                    "streamed (5 events)"
                } else {
                    "not streamed"
                },
                direct.0,
                through.0,
                through.0 - direct.0,
                through.1 - direct.1,
            );
        }
    });
}
