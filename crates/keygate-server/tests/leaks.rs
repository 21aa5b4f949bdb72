//! Leak search: after a full scenario (create, verify, rotate, revoke, failed logins, a key in
//! a URL, bad requests), no secret keygate issued or was shown appears in the logs (captured at
//! TRACE from every crate), in any response but the one that issued it (the metrics and the
//! audit export included), in the audit log, or anywhere in the database, rows or raw SQLite
//! files.
//!
//! A binary of its own: it installs the process-wide tracing subscriber.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::sync::{Mutex, OnceLock, PoisonError};

use keygate_core::{ApiKey, KeyEnv};
use keygate_testkit::{Api, Db, MockAnthropic, MockOpenAi, MockReply, Reply, TestServer};
use serde_json::{Value, json};

/// Everything logged by this process.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(Mutex::default)
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init()
            .unwrap();
    });
}

/// The secrets of a scenario, each with the responses allowed to show it.
#[derive(Default)]
struct Secrets {
    allowed: HashMap<String, BTreeSet<usize>>,
}

impl Secrets {
    /// A secret that no response may show.
    fn never_shown(&mut self, secret: &str) {
        self.allowed.entry(secret.to_owned()).or_default();
    }

    /// `reply` issued a secret in its `secret` field: the newest exchange of `api` is its one
    /// allowed place.
    fn issued(&mut self, api: &Api, reply: &Reply) -> String {
        let secret = reply.body["secret"].as_str().unwrap().to_owned();
        let index = api.transcript().len() - 1;
        self.allowed
            .entry(secret.clone())
            .or_default()
            .insert(index);
        secret
    }

    /// Where `haystack` contains a 12-character run of any secret's random part: enough to
    /// catch a secret, or a typo of one, without matching a display hint.
    fn found_in(&self, haystack: &[u8]) -> Vec<&String> {
        let mut runs: HashMap<&[u8], &String> = HashMap::new();
        for secret in self.allowed.keys() {
            for run in secret.as_bytes()[8..].windows(12) {
                runs.insert(run, secret);
            }
        }
        let found: BTreeSet<&String> = haystack
            .windows(12)
            .filter_map(|w| runs.get(w).copied())
            .collect();
        found.into_iter().collect()
    }

    /// Names found secrets by their first characters only, so a failure message is no leak.
    fn hints(found: &[&String]) -> Vec<String> {
        found.iter().map(|s| format!("{}…", &s[..12])).collect()
    }
}

/// Flips one character: a typo of a real secret.
fn typo(key: &str) -> String {
    let mut bytes = key.as_bytes().to_vec();
    bytes[30] = if bytes[30] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

async fn scenario(server: &TestServer, api: &Api, secrets: &mut Secrets) {
    let owner = server.owner_token.as_str();
    secrets.never_shown(owner);
    let rid = "leak-scenario";

    api.create_project(owner, "leaky").await;
    let reply = api
        .post("/admin/v1/keys")
        .token(owner)
        .request_id(rid)
        .json(&json!({
            "project": "leaky", "name": "one", "scopes": ["chat:*"], "ip_allow": ["127.0.0.1"],
        }))
        .send()
        .await
        .expect(201);
    let first = secrets.issued(api, &reply);
    let id = reply.body["key"]["id"].as_str().unwrap().to_owned();
    let reply = api
        .post("/admin/v1/keys")
        .token(owner)
        .json(&json!({"project": "leaky", "name": "two", "env": "test"}))
        .send()
        .await
        .expect(201);
    let second = secrets.issued(api, &reply);
    let second_id = reply.body["key"]["id"].as_str().unwrap().to_owned();

    assert_eq!(
        api.verify(&first, Some("chat:write"), Some("127.0.0.1"))
            .await["code"],
        "valid"
    );
    assert_eq!(
        api.verify(&first, Some("admin"), Some("127.0.0.1")).await["code"],
        "permission_denied"
    );
    assert_eq!(
        api.verify(&first, None, Some("10.0.0.1")).await["code"],
        "ip_not_allowed"
    );
    assert_eq!(
        api.verify(&typo(&first), None, None).await["code"],
        "key_malformed"
    );
    assert_eq!(api.verify_code(&second).await, "valid");

    let rotate = format!("/admin/v1/keys/{id}/rotate");
    let reply = api
        .post(&rotate)
        .token(owner)
        .json(&json!({"grace_period_seconds": 60}))
        .send()
        .await;
    let rotated = secrets.issued(api, &reply.expect(200));
    let idem = || {
        api.post(&rotate)
            .token(owner)
            .header("idempotency-key", "once")
            .json(&json!({}))
    };
    let reply = idem().send().await.expect(200);
    let replayed = secrets.issued(api, &reply);
    let reply = idem().send().await.expect(200);
    assert_eq!(secrets.issued(api, &reply), replayed);
    assert_eq!(api.verify_code(&rotated).await, "key_rotated");

    let reply = api
        .post("/admin/v1/tokens")
        .token(owner)
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .expect(201);
    let admin = secrets.issued(api, &reply);
    let reply = api
        .post("/admin/v1/tokens")
        .token(&admin)
        .json(&json!({"role": "viewer", "project": "leaky"}))
        .send()
        .await
        .expect(201);
    let viewer = secrets.issued(api, &reply);
    api.get("/admin/v1/keys")
        .token(&viewer)
        .send()
        .await
        .expect(200);
    api.post(&format!("/admin/v1/keys/{second_id}/revoke"))
        .token(&admin)
        .json(&json!({"reason": "scenario"}))
        .send()
        .await
        .expect(200);
    assert_eq!(api.verify_code(&second).await, "key_revoked");

    // Failed logins, a key in a URL, bad requests that carry secrets.
    let stranger = ApiKey::generate(KeyEnv::Live).unwrap();
    secrets.never_shown(stranger.expose());
    for bad in [typo(&admin), stranger.expose().to_owned(), replayed.clone()] {
        api.get("/admin/v1/projects")
            .token(&bad)
            .send()
            .await
            .expect(401);
    }
    api.post("/admin/v1/keys")
        .token(&viewer)
        .json(&json!({"project": "leaky", "name": "x"}))
        .send()
        .await
        .expect_error(403, "forbidden");
    api.get(&format!("/healthz?key={replayed}"))
        .send()
        .await
        .expect_error(400, "key_in_query");
    let encoded = admin.replace('_', "%5F");
    api.get(&format!("/admin/v1/keys?cursor={encoded}"))
        .token(&admin)
        .send()
        .await
        .expect_error(400, "key_in_query");
    api.patch(&format!("/admin/v1/keys/{id}"))
        .token(owner)
        .json(&json!({"name": "x", "note": replayed}))
        .send()
        .await
        .expect_error(400, "validation_failed");
    api.patch(&format!("/admin/v1/keys/{id}"))
        .token(owner)
        .json(&json!({"name": replayed, "scopes": replayed}))
        .send()
        .await
        .expect_error(400, "validation_failed");
    api.post("/admin/v1/keys")
        .token(owner)
        .json(&json!({
            "project": "leaky", "name": "big",
            "metadata": {"k": admin, "pad": "x".repeat(70_000)},
        }))
        .send()
        .await
        .expect_error(413, "payload_too_large");
    api.post("/v1/keys/verify")
        .header("content-type", "application/json")
        .body(format!("{{\"key\": \"{replayed}\""))
        .send()
        .await
        .expect_error(400, "invalid_json");
    api.get(&format!("/admin/v1/keys?cursor=x{}", &replayed[8..20]))
        .token(owner)
        .send()
        .await
        .expect_error(400, "bad_cursor");

    // A secret pasted where a key id belongs, plainly and percent-encoded.
    api.get(&format!("/admin/v1/keys/{replayed}"))
        .token(owner)
        .send()
        .await
        .expect_error(404, "not_found");
    api.get(&format!("/admin/v1/keys/{encoded}/rotate"))
        .token(owner)
        .send()
        .await
        .expect_error(405, "method_not_allowed");
    api.get(&format!("/no/such/{viewer}"))
        .send()
        .await
        .expect_error(404, "not_found");

    // Read everything back through the API: none of it may show a secret.
    api.get(&format!("/admin/v1/keys/{id}"))
        .token(owner)
        .send()
        .await
        .expect(200);
    api.get("/admin/v1/keys?status=revoked")
        .token(owner)
        .send()
        .await
        .expect(200);
    api.delete(&format!("/admin/v1/keys/{id}"))
        .token(owner)
        .send()
        .await
        .expect(204);
    assert_eq!(api.verify_code(&replayed).await, "key_invalid");
    api.get("/admin/v1/audit?limit=500")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(api.audit_verify(owner).await["ok"], true);
    api.get("/openapi.json").send().await.expect(200);
}

const VAULT_UPSTREAM: &str = "sk-upstream-vault-9f8e7d6c5b4a3f2e1d0c";
const ENV_UPSTREAM: &str = "sk-upstream-env-1a2b3c4d5e6f7a8b9c0d";
const ANTHROPIC_UPSTREAM: &str = "sk-ant-upstream-7f6e5d4c3b2a19080a1b";

/// Gateway traffic: upstream credentials from the vault and the environment go upstream and
/// nowhere else, even when an upstream echoes them in an error, translated or not.
async fn gateway_scenario(
    server: &TestServer,
    api: &Api,
    secrets: &mut Secrets,
    (a, c): (&MockOpenAi, &MockAnthropic),
) {
    let owner = server.owner_token.as_str();
    secrets.never_shown(VAULT_UPSTREAM);
    secrets.never_shown(ENV_UPSTREAM);
    secrets.never_shown(ANTHROPIC_UPSTREAM);
    api.post("/admin/v1/secrets")
        .token(owner)
        .json(&json!({"project": "default", "name": "upstream", "value": VAULT_UPSTREAM}))
        .send()
        .await
        .expect(200);
    let reply = api
        .post("/admin/v1/keys")
        .token(owner)
        .json(&json!({"project": "default", "name": "llm", "scopes": ["models:*"]}))
        .send()
        .await
        .expect(201);
    let key = secrets.issued(api, &reply);
    let chat = |model: &str, stream: bool| {
        api.post("/v1/chat/completions").token(&key).json(&json!({
            "model": model, "stream": stream,
            "messages": [{"role": "user", "content": "hello"}],
        }))
    };
    chat("vault", false).send().await.expect(200);
    chat("vault", true).send().await.expect(200);
    chat("env", false).send().await.expect(200);
    for (status, code) in [(401, "invalid_api_key"), (400, "bad_request")] {
        a.push(MockReply::Error {
            status,
            code: code.into(),
            message: format!("Incorrect API key provided: {VAULT_UPSTREAM}"),
            retry_after: None,
        });
        let reply = chat("vault", false).send().await;
        assert!(reply.status >= 400, "{}", reply.text);
    }
    assert!(
        a.requests()
            .iter()
            .any(|r| r.header("authorization") == Some(&format!("Bearer {VAULT_UPSTREAM}"))),
        "the vault's credential did go upstream"
    );

    // Across formats: an Anthropic client served by OpenAI, an OpenAI client by Anthropic,
    // streamed and not, and Anthropic echoing its key in errors an OpenAI client then sees.
    let messages = |model: &str, stream: bool| {
        api.post("/v1/messages")
            .header("x-api-key", &key)
            .json(&json!({
                "model": model, "stream": stream, "max_tokens": 20,
                "messages": [{"role": "user", "content": "hello"}],
            }))
    };
    messages("vault", false).send().await.expect(200);
    messages("vault", true).send().await.expect(200);
    messages("claude", true).send().await.expect(200);
    chat("claude", false).send().await.expect(200);
    chat("claude", true).send().await.expect(200);
    for status in [401, 400] {
        c.push(MockReply::Error {
            status,
            code: String::new(),
            message: format!("invalid x-api-key: {ANTHROPIC_UPSTREAM}"),
            retry_after: None,
        });
        let reply = chat("claude", false).send().await;
        assert!(reply.status >= 400, "{}", reply.text);
    }
    assert!(
        c.requests()
            .iter()
            .any(|r| r.header("x-api-key") == Some(ANTHROPIC_UPSTREAM)),
        "Anthropic's credential did go upstream"
    );
}

async fn nothing_leaks(db: Db) {
    capture_logs();
    let a = MockOpenAi::start("a", VAULT_UPSTREAM).await.unwrap();
    let b = MockOpenAi::start("b", ENV_UPSTREAM).await.unwrap();
    let c = MockAnthropic::start("c", ANTHROPIC_UPSTREAM).await.unwrap();
    let config = format!(
        r#"
        [providers.a]
        kind = "openai"
        base_url = "{}/v1"
        credential = "secret::upstream"

        [providers.b]
        kind = "openai-compatible"
        base_url = "{}/v1"
        credential = "env::UPSTREAM_B"

        [model_groups.vault]
        deployments = [{{ provider = "a", model = "gpt-4o-mini" }}]
        retries = 0

        [model_groups.env]
        deployments = [{{ provider = "b", model = "m" }}]

        [providers.c]
        kind = "anthropic"
        base_url = "{}/v1"
        credential = "env::UPSTREAM_C"

        [model_groups.claude]
        deployments = [{{ provider = "c", model = "claude-haiku-4-5" }}]
        retries = 0
        "#,
        a.origin(),
        b.origin(),
        c.origin()
    );
    let mut server = TestServer::start_gateway(
        db,
        &config,
        &[
            ("UPSTREAM_B", ENV_UPSTREAM),
            ("UPSTREAM_C", ANTHROPIC_UPSTREAM),
        ],
    )
    .await
    .unwrap();
    let api = server.api();
    let mut secrets = Secrets::default();
    scenario(&server, &api, &mut secrets).await;
    gateway_scenario(&server, &api, &mut secrets, (&a, &c)).await;
    assert_eq!(secrets.allowed.len(), 12, "the scenario's secrets");
    // What operators collect — metrics and the audit export — is in the transcript too, and
    // shows none of them.
    let metrics = api.get("/metrics").send().await.expect(200);
    assert!(metrics.text.contains("keygate_key_verifications_total"));
    let exported = api
        .get("/admin/v1/audit/export")
        .token(&server.owner_token)
        .send()
        .await
        .expect(200);
    assert!(exported.text.lines().count() > 10);
    // Shut down so that batched writes reach the database before it is read.
    server.stop().await.unwrap();

    let log_text = logs()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let log_str = String::from_utf8_lossy(&log_text);
    // The capture works: requests and database statements are both in it.
    assert!(
        log_str.contains("/admin/v1/keys"),
        "no request spans were captured"
    );
    assert!(
        log_str.contains("audit_events"),
        "no database statements were captured"
    );
    assert!(
        log_str.contains("leak-scenario"),
        "request ids were not captured"
    );
    let found = secrets.found_in(&log_text);
    assert!(
        found.is_empty(),
        "secrets in the logs: {:?}",
        Secrets::hints(&found)
    );

    let transcript = api.transcript();
    assert!(transcript.len() > 30);
    for (index, exchange) in transcript.iter().enumerate() {
        for secret in secrets.found_in(exchange.body.as_bytes()) {
            assert!(
                secrets.allowed[secret].contains(&index),
                "exchange {index} ({} …, status {}) shows {:?}",
                exchange.method,
                exchange.status,
                Secrets::hints(&[secret]),
            );
        }
    }

    let rows = server.store.dump_rows().await.unwrap();
    assert!(
        rows.iter().any(|r| r.starts_with("audit_events: ")),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r.starts_with("key_secrets: ")),
        "{rows:?}"
    );
    for row in &rows {
        let found = secrets.found_in(row.as_bytes());
        let table = row.split(':').next().unwrap();
        assert!(
            found.is_empty(),
            "a row of {table} holds {:?}",
            Secrets::hints(&found)
        );
    }
    if db == Db::Sqlite {
        let dir = server.store.dir.path();
        let mut files = 0;
        for name in ["keygate.db", "keygate.db-wal", "keygate.db-shm"] {
            let Ok(bytes) = std::fs::read(dir.join(name)) else {
                continue;
            };
            files += 1;
            let found = secrets.found_in(&bytes);
            assert!(
                found.is_empty(),
                "{name} holds a secret: {:?}",
                Secrets::hints(&found)
            );
        }
        assert!(files >= 1, "no database file was read");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaks_on_sqlite() {
    nothing_leaks(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaks_on_postgres() {
    nothing_leaks(Db::Postgres).await;
}

#[test]
fn the_search_finds_a_secret_and_its_typo_but_not_its_hint() {
    let key = ApiKey::generate(KeyEnv::Live).unwrap();
    let mut secrets = Secrets::default();
    secrets.never_shown(key.expose());
    let json = Value::String(key.expose().to_owned()).to_string();
    assert_eq!(secrets.found_in(json.as_bytes()).len(), 1);
    assert_eq!(secrets.found_in(typo(key.expose()).as_bytes()).len(), 1);
    assert!(secrets.found_in(key.hint().as_str().as_bytes()).is_empty());
}
