//! keygate as its operators watch it: a real Prometheus (Debian's `prometheus` package, which
//! `.ci/run` installs; `KEYGATE_TEST_PROMETHEUS` and `KEYGATE_TEST_PROMTOOL` name other
//! binaries) scrapes a running `keygate serve` during a gateway and verify load, `promtool`
//! passes the exposition, and the figures Prometheus stored are exactly the traffic sent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;
#[path = "support/python.rs"]
mod python;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keygate_testkit::MockOpenAi;
use process::{ServerProcess, free_port, text};
use python::create_key;
use serde_json::{Value, json};

const UPSTREAM_KEY: &str = "sk-upstream-observability-0123456789";

/// A tool the test needs: from its variable, else from `PATH`. Missing, the test fails: a
/// skipped check would look like a passing one.
fn tool(variable: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    found.unwrap_or_else(|| {
        panic!("`{name}` is needed (Debian's prometheus package; .ci/run installs it), or set {variable}")
    })
}

/// A Prometheus scraping `target` every second, with its data in `dir`; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: keygate\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new(tool("KEYGATE_TEST_PROMETHEUS", "prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus starts");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// The result of an instant query, once Prometheus answers it with data (within 30 s).
    async fn query(
        &self,
        http: &reqwest::Client,
        expr: &str,
        ready: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = http
                .get(format!("{}/api/v1/query", self.url))
                .query(&[("query", expr)])
                .send()
                .await;
            if let Ok(answer) = answer
                && let Ok(body) = answer.json::<Value>().await
                && let Some(result) = body["data"]["result"].as_array()
                && ready(result)
            {
                return result.clone();
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never answered `{expr}` as expected; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `keygate.toml` with the group `chat` served by `mock`, and `logged`, the same model in a
/// group whose traces carry content.
fn write_config(dir: &Path, mock: &MockOpenAi) -> PathBuf {
    let path = dir.join("keygate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[providers.up]
kind = "openai"
base_url = "{}/v1"
credential = "env::UPSTREAM_KEY"

[model_groups.chat]
deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]

# An operator who wants prompts and answers in this group's traces says so.
[model_groups.logged]
deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]
trace_content = true
"#,
            mock.origin()
        ),
    )
    .unwrap();
    path
}

/// The single value of a query's result.
fn value(result: &[Value]) -> f64 {
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_exactly_the_traffic() {
    let mock = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &mock);
    let server = ServerProcess::start(
        dir.path(),
        &[
            ("KEYGATE_CONFIG", config_path.to_str().unwrap()),
            ("UPSTREAM_KEY", UPSTREAM_KEY),
        ],
    );
    let owner = server.owner_token();
    let key = create_key(&server, &owner, "watched", "models:*");
    let http = reqwest::Client::new();

    const VERIFIED: usize = 7;
    const REFUSED: usize = 3;
    const CHATS: usize = 4;
    for _ in 0..VERIFIED {
        let reply = http
            .post(format!("{}/v1/keys/verify", server.url))
            .json(&json!({"key": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
    for _ in 0..REFUSED {
        http.post(format!("{}/v1/keys/verify", server.url))
            .json(&json!({"key": "kg_live_not_a_real_key"}))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..CHATS {
        let reply = http
            .post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth(&key)
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
    // The gateway's figures come with the usage records, written within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // promtool accepts the exposition as it is served.
    let exposition = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut promtool = Command::new(tool("KEYGATE_TEST_PROMTOOL", "promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    {
        use std::io::Write as _;
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(exposition.as_bytes())
            .unwrap();
    }
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}\n{exposition}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
    assert!(!exposition.contains(&key) && !exposition.contains(UPSTREAM_KEY));

    // A real Prometheus scrapes it and stores exactly what was sent.
    let prometheus = Prometheus::start(dir.path(), &format!("127.0.0.1:{}", server.port));
    let up = prometheus
        .query(&http, r#"up{job="keygate"}"#, |r| {
            !r.is_empty() && value(r) == 1.0
        })
        .await;
    assert_eq!(value(&up), 1.0);
    let exactly = |n: usize| move |r: &[Value]| !r.is_empty() && value(r) == n as f64;
    prometheus
        .query(
            &http,
            r#"keygate_key_verifications_total{result="valid"}"#,
            exactly(VERIFIED + CHATS),
        )
        .await;
    prometheus
        .query(
            &http,
            r#"keygate_key_verifications_total{result="key_malformed"}"#,
            exactly(REFUSED),
        )
        .await;
    prometheus
        .query(
            &http,
            r#"sum(keygate_gateway_requests_total{gen_ai_request_model="chat",status_class="2xx"})"#,
            exactly(CHATS),
        )
        .await;
    prometheus
        .query(
            &http,
            r#"sum(http_server_request_duration_seconds_count{http_route="/v1/chat/completions"})"#,
            exactly(CHATS),
        )
        .await;
    prometheus
        .query(
            &http,
            r#"sum(gen_ai_client_token_usage_count{gen_ai_token_type="output"})"#,
            exactly(CHATS),
        )
        .await;
    prometheus
        .query(
            &http,
            r#"keygate_gateway_deployment_breaker_open{deployment="up/gpt-4o-mini"}"#,
            exactly(0),
        )
        .await;
    // Admin actions come from the audit log: the key created above, and the owner's first start.
    prometheus
        .query(
            &http,
            r#"keygate_audit_events_total{action="key.create",outcome="success"}"#,
            exactly(1),
        )
        .await;
    let length = prometheus
        .query(&http, "keygate_audit_chain_length", |r| {
            !r.is_empty() && value(r) >= 2.0
        })
        .await;
    assert!(value(&length) >= 2.0);
    prometheus
        .query(&http, "count(keygate_kek_info == 1)", exactly(1))
        .await;
    prometheus
        .query(&http, "keygate_audit_chain_valid", exactly(1))
        .await;

    // Every expression of the shipped dashboard returns data from this Prometheus.
    let dashboard: Value =
        serde_json::from_str(include_str!("../../../deploy/grafana/keygate.json")).unwrap();
    let expressions: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(expressions.len() >= 15, "{expressions:?}");
    for expr in &expressions {
        prometheus.query(&http, expr, |r| !r.is_empty()).await;
    }
}

/// The shipped alerting rules load in Prometheus.
#[test]
fn the_alerting_rules_pass_promtool() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/alerts.yml");
    let checked = Command::new(tool("KEYGATE_TEST_PROMTOOL", "promtool"))
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .expect("promtool runs");
    assert!(
        checked.status.success(),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
    assert!(text(&checked.stdout).contains("SUCCESS: 8 rules found"));
}

/// `keygate audit export` prints the log as NDJSON in chain order; with `--follow` it keeps
/// printing events as they are appended, from where it left off.
#[test]
fn a_siem_tails_the_audit_log() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    create_key(&server, &owner, "first", "models:*");
    let exported = server.cli(&["audit", "export"], Some(&owner), None);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let events: Vec<Value> = text(&exported.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(events.iter().any(|e| e["action"] == "key.create"));
    let last = *seqs.last().unwrap();

    let mut follow = Command::new(process::binary())
        .args(["audit", "export", "--follow", "--interval", "1"])
        .arg("--after")
        .arg(last.to_string())
        .env("KEYGATE_URL", &server.url)
        .env("KEYGATE_TOKEN", &owner)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    create_key(&server, &owner, "second", "models:*");
    create_key(&server, &owner, "third", "models:*");
    let mut tailed = Vec::new();
    while tailed.len() < 2 {
        let line = received
            .recv_timeout(Duration::from_secs(10))
            .expect("the follower printed the new events");
        tailed.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let names: Vec<&str> = tailed
        .iter()
        .map(|e| e["details"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["second", "third"],
        "only what came after, once each"
    );
    assert_eq!(tailed[0]["seq"].as_i64(), Some(last + 1));
}

/// Sets the audit rows from `seq` on to `rewrite(event)`, recomputing every hash after it and
/// the head: the rewrite of someone who holds the database (and could re-sign with the master
/// key). Returns the new head.
async fn rewrite_tail(
    db: &Path,
    seq: i64,
    rewrite: impl Fn(&mut keygate_core::AuditEvent),
) -> keygate_core::ChainHead {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows = sqlx::query("SELECT * FROM audit_events WHERE seq >= ?1 ORDER BY seq")
        .bind(seq - 1)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let event = |row: &sqlx::sqlite::SqliteRow| keygate_core::AuditEvent {
        seq: row.get("seq"),
        ts: keygate_core::Timestamp::from_millis(row.get("ts")),
        actor: row.get("actor"),
        action: row.get("action"),
        outcome: row.get("outcome"),
        org_id: row.get("org_id"),
        project_id: row.get("project_id"),
        target: row.get("target"),
        details: row.get("details"),
        client_ip: row.get("client_ip"),
        request_id: row.get("request_id"),
        prev_hash: row.get("prev_hash"),
        hash: row.get("hash"),
    };
    let mut prev = event(&rows[0]).hash;
    let mut head = keygate_core::ChainHead::genesis();
    for row in &rows[1..] {
        let mut e = event(row);
        if e.seq == seq {
            rewrite(&mut e);
        }
        e.prev_hash = prev;
        e.hash = hex::encode(e.compute_hash());
        sqlx::query(
            "UPDATE audit_events SET details = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
        )
        .bind(&e.details)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .bind(e.seq)
        .execute(&mut conn)
        .await
        .unwrap();
        prev = e.hash.clone();
        head = keygate_core::ChainHead {
            seq: e.seq,
            hash: e.hash,
        };
    }
    sqlx::query("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")
        .bind(head.seq)
        .bind(&head.hash)
        .execute(&mut conn)
        .await
        .unwrap();
    head
}

/// Checkpoints signed by keygate and kept outside the database prove the log was not
/// rewritten after they were taken — even by someone who rewrote the whole tail, hashes,
/// head and the database's own checkpoints included — and a checkpoint signed by another
/// key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_checkpoints_catch_a_rewritten_log() {
    use base64::Engine as _;

    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    for name in ["a", "b", "c"] {
        create_key(&server, &owner, name, "models:*");
    }
    let signed = server.cli(&["audit", "checkpoint"], Some(&owner), None);
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    assert!(
        text(&signed.stdout).contains("checkpoint signed at entry 4"),
        "{}",
        text(&signed.stdout)
    );
    let again = server.cli(&["audit", "checkpoint"], Some(&owner), None);
    assert!(text(&again.stdout).contains("signed already"));
    let key = server.cli(&["audit", "public-key", "--json"], Some(&owner), None);
    let key: Value = serde_json::from_slice(&key.stdout).unwrap();
    let exported = server.cli(&["audit", "checkpoints"], Some(&owner), None);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let file: Value = serde_json::from_slice(&exported.stdout).unwrap();
    assert_eq!(file["public_key"], key["public_key"]);
    let seqs: Vec<i64> = file["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs.last(),
        Some(&4),
        "the server signs its head as it starts, and again when asked: {seqs:?}"
    );
    let copy = dir.path().join("checkpoints.json");
    std::fs::write(&copy, &exported.stdout).unwrap();
    create_key(&server, &owner, "d", "models:*");
    assert!(server.stop().success());

    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify"];
        args.extend_from_slice(extra);
        process::run_cli(dir.path(), &args, &[], None, None)
    };
    let intact = verify(&["--checkpoints", copy.to_str().unwrap()]);
    assert!(intact.status.success(), "{}", text(&intact.stderr));
    assert!(
        text(&intact.stdout).contains(&format!("{} signed checkpoints hold", seqs.len())),
        "{}",
        text(&intact.stdout)
    );

    // A rewrite from entry 3 on, every hash recomputed, and the database's checkpoints signed
    // again by a key of the forger's: the database alone now looks consistent.
    let db = dir.path().join("keygate-data/keygate.db");
    let head = rewrite_tail(&db, 3, |event| {
        event.details = r#"{"name":"forged"}"#.to_owned()
    })
    .await;
    let forger = keygate_crypto::AuditSigner::generate().unwrap();
    let message = format!("keygate-audit-checkpoint:v1:{}:{}", head.seq, head.hash);
    let forged_signature =
        base64::engine::general_purpose::STANDARD.encode(forger.sign(message.as_bytes()));
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("DELETE FROM audit_checkpoints")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature) VALUES (?1, ?2, 0, ?3, ?4)")
            .bind(head.seq)
            .bind(&head.hash)
            .bind(forger.public_key().id())
            .bind(&forged_signature)
            .execute(&mut conn)
            .await
            .unwrap();
        let setting: String =
            sqlx::query_scalar("SELECT value FROM settings WHERE name = 'audit_signing_key'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let mut setting: Value = serde_json::from_str(&setting).unwrap();
        setting["public_key"] = forger.public_key().to_base64().into();
        sqlx::query("UPDATE settings SET value = ?1 WHERE name = 'audit_signing_key'")
            .bind(setting.to_string())
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let fooled = verify(&[]);
    assert!(
        fooled.status.success(),
        "the database alone is consistent after such a rewrite: {}",
        text(&fooled.stderr)
    );
    let caught = verify(&["--checkpoints", copy.to_str().unwrap()]);
    assert_eq!(caught.status.code(), Some(7), "{}", text(&caught.stdout));
    assert!(
        text(&caught.stderr).contains("entry 4 differs from its signed checkpoint"),
        "{}",
        text(&caught.stderr)
    );

    // A checkpoint in the file signed by another key than the file's is refused.
    let mut tampered: Value = serde_json::from_slice(&exported.stdout).unwrap();
    let last = seqs.len() - 1;
    tampered["checkpoints"][last]["signature"] = forged_signature.into();
    let bad = dir.path().join("forged.json");
    std::fs::write(&bad, tampered.to_string()).unwrap();
    let refused = verify(&["--checkpoints", bad.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(7));
    assert!(
        text(&refused.stderr).contains("is not signed by the audit key"),
        "{}",
        text(&refused.stderr)
    );
}

/// With `otel_endpoint`, each gateway request is one trace span with the GenAI attributes, a
/// child of the client's `traceparent`, with a child span per upstream attempt whose context
/// goes upstream; prompts never appear. Without it, nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_receiver() {
    use keygate_testkit::OtlpReceiver;

    const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CLIENT_SPAN: &str = "00f067aa0ba902b7";
    const PROMPT: &str = "the secret recipe for lemonade";
    let receiver = OtlpReceiver::start().await.unwrap();
    let mock = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &mock);
    let env = [
        ("KEYGATE_CONFIG", config_path.to_str().unwrap()),
        ("UPSTREAM_KEY", UPSTREAM_KEY),
        // The batch leaves within 100 ms rather than the default 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let mut traced = ServerProcess::start(
        dir.path(),
        &[
            &env[..],
            &[("KEYGATE_OTEL_ENDPOINT", receiver.url.as_str())],
        ]
        .concat(),
    );
    let owner = traced.owner_token();
    let key = create_key(&traced, &owner, "traced", "models:*");
    let http = reqwest::Client::new();
    let chat = |url: &str| {
        http.post(format!("{url}/v1/chat/completions"))
            .bearer_auth(&key)
            .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": PROMPT}]}))
            .send()
    };
    assert_eq!(chat(&traced.url).await.unwrap().status(), 200);

    let deadline = Instant::now() + Duration::from_secs(20);
    let (server, client) = loop {
        let spans = receiver.spans();
        let server = spans.iter().find(|s| s.name == "chat chat").cloned();
        let client = spans.iter().find(|s| s.name == "chat gpt-4o-mini").cloned();
        if let (Some(server), Some(client)) = (server, client) {
            break (server, client);
        }
        assert!(
            Instant::now() < deadline,
            "no trace arrived: {spans:#?}\n{}",
            traced.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(server.service, "keygate");
    assert_eq!(server.kind, 2, "a server span");
    assert_eq!(server.trace_id, CLIENT_TRACE, "the client's trace");
    assert_eq!(
        server.parent_span_id, CLIENT_SPAN,
        "under the client's span"
    );
    for (key, value) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.request.model", "chat"),
        ("gen_ai.provider.name", "up"),
        ("gen_ai.response.model", "gpt-4o-mini"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(server.attribute(key), Some(value), "{key}: {server:#?}");
    }
    let input: u64 = server
        .attribute("gen_ai.usage.input_tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert!(input > 0);
    assert_eq!(client.kind, 3, "a client span");
    assert_eq!(client.trace_id, CLIENT_TRACE);
    assert_eq!(
        client.parent_span_id, server.span_id,
        "the attempt under the request"
    );
    assert_eq!(
        client.attribute("keygate.deployment"),
        Some("up/gpt-4o-mini")
    );
    let upstream = mock.requests();
    let sent = upstream
        .last()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert_eq!(
        sent,
        format!("00-{CLIENT_TRACE}-{}-01", client.span_id),
        "the attempt's context went upstream"
    );
    for span in receiver.spans() {
        for (_, value) in &span.attributes {
            assert!(
                !value.contains(PROMPT) && !value.contains(&key) && !value.contains(UPSTREAM_KEY),
                "no content, no key: {span:#?}"
            );
        }
    }
    // The group that asks for content gets the prompt and the answer, and still no key.
    let logged = http
        .post(format!("{}/v1/chat/completions", traced.url))
        .bearer_auth(&key)
        .json(&json!({"model": "logged", "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(logged.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let content = loop {
        if let Some(span) = receiver
            .spans()
            .into_iter()
            .find(|s| s.name == "chat logged")
        {
            break span;
        }
        assert!(Instant::now() < deadline, "no trace of the logged group");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        content
            .attribute("gen_ai.input.messages")
            .is_some_and(|m| m.contains(PROMPT)),
        "{content:#?}"
    );
    assert!(
        content
            .attribute("gen_ai.output.messages")
            .is_some_and(|m| m.contains("Hello from up")),
        "{content:#?}"
    );
    assert!(
        content
            .attributes
            .iter()
            .all(|(_, v)| !v.contains(&key) && !v.contains(UPSTREAM_KEY))
    );
    assert!(traced.stop().success());

    // Without an endpoint, nothing is sent; the client's traceparent still goes upstream.
    let before = receiver.requests();
    let plain = ServerProcess::start(dir.path(), &env);
    assert_eq!(chat(&plain.url).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.requests(),
        before,
        "nothing exported with traces off"
    );
    let sent = mock
        .requests()
        .last()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert_eq!(sent, format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"));
}
