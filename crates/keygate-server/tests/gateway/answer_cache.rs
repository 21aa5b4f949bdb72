//! Groups that keep their answers: a repeated request is answered from the cache, byte for
//! byte, streams replayed with their events; never for another project, never past the
//! key's scopes, the group's TTL or a client's `no-cache`; a hit is in usage with its tokens
//! and no cost.

use std::time::Duration;

use keygate_testkit::{Db, MockReply};
use serde_json::{Value, json};

use super::{Setup, chat, setup_with, usage};

const GROUPS: &str = r#"
    [prices."gpt-4o-mini"]
    input = "1000"
    output = "1000"

    [model_groups.kept]
    deployments = [{ provider = "a", model = "gpt-4o-mini" }]
    cache = { when = "always", ttl_seconds = 60 }

    [model_groups.steady]
    deployments = [{ provider = "a", model = "gpt-4o-mini" }]
    cache = {}

    [model_groups.brief]
    deployments = [{ provider = "a", model = "gpt-4o-mini" }]
    cache = { when = "always", ttl_seconds = 1 }
"#;

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

async fn key_of(s: &Setup, project: &str, scopes: &[&str]) -> String {
    s.server
        .api()
        .create_key(
            &s.server.owner_token,
            json!({"project": project, "name": "cache", "scopes": scopes}),
        )
        .await
        .secret
}

async fn repeated_requests_are_answered_from_the_cache(db: Db) {
    let s = setup_with(db, GROUPS).await;
    let api = s.server.api();
    let first = chat(&api, &s.key, ask("kept", "What is 2+2?"))
        .await
        .expect(200);
    assert_eq!(first.header("x-keygate-cache"), Some("miss"));
    // The same request, its fields in another order and with labels that change no answer.
    let again = json!({"messages": [{"content": "What is 2+2?", "role": "user"}],
                       "user": "someone", "model": "kept"});
    let second = chat(&api, &s.key, again).await.expect(200);
    assert_eq!(second.header("x-keygate-cache"), Some("hit"));
    assert_eq!(second.text, first.text, "byte for byte");
    assert_eq!(s.a.request_count(), 1, "the hit never went upstream");
    // Another question is another entry.
    let other = chat(&api, &s.key, ask("kept", "What is 3+3?"))
        .await
        .expect(200);
    assert_eq!(other.header("x-keygate-cache"), Some("miss"));
    assert_eq!(s.a.request_count(), 2);

    // The client's no-cache goes upstream (and keeps the fresh answer).
    let fresh = api
        .post("/v1/chat/completions")
        .token(&s.key)
        .header("cache-control", "no-cache")
        .json(&ask("kept", "What is 2+2?"))
        .send()
        .await
        .expect(200);
    assert_eq!(fresh.header("x-keygate-cache"), Some("miss"));
    assert_eq!(s.a.request_count(), 3);
    // no-store neither reads nor keeps (directives in any case).
    let unkept = api
        .post("/v1/chat/completions")
        .token(&s.key)
        .header("cache-control", "max-age=0, No-Store")
        .json(&ask("kept", "What is 4+4?"))
        .send()
        .await
        .expect(200);
    assert_eq!(unkept.header("x-keygate-cache"), None);
    let later = chat(&api, &s.key, ask("kept", "What is 4+4?"))
        .await
        .expect(200);
    assert_eq!(later.header("x-keygate-cache"), Some("miss"));
    assert_eq!(s.a.request_count(), 5);

    // In usage: six requests, the hit with its tokens and no cost.
    let report = usage(&s, "model", 6).await;
    let row = &report["data"][0];
    assert_eq!(row["requests"], 6, "{report}");
    let one = first.body["usage"]["prompt_tokens"].as_u64().unwrap()
        + first.body["usage"]["completion_tokens"].as_u64().unwrap();
    let two = other.body["usage"]["prompt_tokens"].as_u64().unwrap()
        + other.body["usage"]["completion_tokens"].as_u64().unwrap();
    let three = later.body["usage"]["prompt_tokens"].as_u64().unwrap()
        + later.body["usage"]["completion_tokens"].as_u64().unwrap();
    let tokens =
        row["prompt_tokens"].as_u64().unwrap() + row["completion_tokens"].as_u64().unwrap();
    assert_eq!(tokens, 3 * one + two + 2 * three, "{row}");
    let cost: f64 = row["cost_usd"].as_str().unwrap().parse().unwrap();
    let paid = (2 * one + two + 2 * three) as f64 * 0.001;
    assert!((cost - paid).abs() < 1e-9, "the hit cost nothing: {row}");
    assert_eq!(row["cache_hits"], 1, "{row}");
    let saved: f64 = row["saved_usd"].as_str().unwrap().parse().unwrap();
    assert!(
        (saved - one as f64 * 0.001).abs() < 1e-9,
        "it saved what the answer cost: {row}"
    );
}

async fn entries_stay_within_their_project_scope_and_time(db: Db) {
    let s = setup_with(db, GROUPS).await;
    let api = s.server.api();
    chat(&api, &s.key, ask("kept", "Hello")).await.expect(200);
    // Another key of the project shares the entry; a key of another project does not.
    let sibling = key_of(&s, "default", &["models:kept"]).await;
    let hit = chat(&api, &sibling, ask("kept", "Hello")).await.expect(200);
    assert_eq!(hit.header("x-keygate-cache"), Some("hit"));
    api.post("/admin/v1/projects")
        .token(&s.server.owner_token)
        .json(&json!({"name": "elsewhere"}))
        .send()
        .await
        .expect(201);
    api.post("/admin/v1/secrets")
        .token(&s.server.owner_token)
        .json(&json!({"project": "elsewhere", "name": "upstream-a", "value": super::KEY_A}))
        .send()
        .await
        .expect(200);
    let stranger = key_of(&s, "elsewhere", &["models:*"]).await;
    let miss = chat(&api, &stranger, ask("kept", "Hello"))
        .await
        .expect(200);
    assert_eq!(miss.header("x-keygate-cache"), Some("miss"));
    assert_eq!(s.a.request_count(), 2);
    // A key without the alias's scope is refused before any lookup.
    let narrow = key_of(&s, "default", &["models:steady"]).await;
    let denied = chat(&api, &narrow, ask("kept", "Hello")).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("x-keygate-cache"), None);

    // Deterministic requests only, where the group says so.
    let warm = json!({"model": "steady", "temperature": 0.7, "messages": [{"role": "user", "content": "Hi"}]});
    let not_kept = chat(&api, &s.key, warm).await.expect(200);
    assert_eq!(not_kept.header("x-keygate-cache"), None);
    let cold = json!({"model": "steady", "temperature": 0, "messages": [{"role": "user", "content": "Hi"}]});
    chat(&api, &s.key, cold.clone()).await.expect(200);
    let kept = chat(&api, &s.key, cold).await.expect(200);
    assert_eq!(kept.header("x-keygate-cache"), Some("hit"));

    // Past the group's TTL the answer is made again.
    chat(&api, &s.key, ask("brief", "Hello")).await.expect(200);
    assert_eq!(
        chat(&api, &s.key, ask("brief", "Hello"))
            .await
            .header("x-keygate-cache"),
        Some("hit")
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let expired = chat(&api, &s.key, ask("brief", "Hello")).await.expect(200);
    assert_eq!(expired.header("x-keygate-cache"), Some("miss"));
}

async fn streams_are_replayed_with_their_events(db: Db) {
    let s = setup_with(db, GROUPS).await;
    let api = s.server.api();
    s.a.push(MockReply::Text("one two three four".into()));
    let body = json!({"model": "kept", "stream": true,
                      "messages": [{"role": "user", "content": "Count"}]});
    let first = chat(&api, &s.key, body.clone()).await.expect(200);
    assert_eq!(first.header("x-keygate-cache"), Some("miss"));
    let replay = chat(&api, &s.key, body).await.expect(200);
    assert_eq!(replay.header("x-keygate-cache"), Some("hit"));
    assert!(
        replay
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
    );
    assert_eq!(replay.text, first.text, "the same events, byte for byte");
    assert!(replay.text.contains("data: [DONE]"));
    assert_eq!(s.a.request_count(), 1);
}

keygate_testkit::on_both_databases!(
    repeated_requests_are_answered_from_the_cache,
    entries_stay_within_their_project_scope_and_time,
    streams_are_replayed_with_their_events,
);
