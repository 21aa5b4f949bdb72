//! The API against its own OpenAPI document, as an attacker's tools would drive it:
//! schemathesis (`tests/python/requirements.txt`, installed by `scripts/pyenv`) generates
//! requests for every operation — examples, boundary and invalid values, random data, and
//! sequences that follow one answer's ids into the next request — and checks that no answer is
//! a server error and every answer (status, content type, headers, body) is one the document
//! declares. Once with an API key over the gateway's routes, once with an owner token over the
//! whole API, on a bounded number of examples and a fixed seed.
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

use keygate_testkit::MockOpenAi;
use process::ServerProcess;
use python::{assert_passed, create_key, run_python};

const UPSTREAM_KEY: &str = "sk-upstream-fuzz-0123456789";

/// keygate with a model group and a proxy route on a mock upstream, and failed
/// authentications never blocking the source (the tools send many on purpose).
fn config(upstream: &MockOpenAi) -> String {
    format!(
        r#"
[anomalies]
auth_failures_per_minute = 1000000
key_failures_per_minute = 1000000

[providers.up]
kind = "openai"
base_url = "{origin}/v1"
credential = "env::UPSTREAM_KEY"

[model_groups.chat]
deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]

[routes.echo]
upstream = "{origin}"
credential = "env::UPSTREAM_KEY"
"#,
        origin = upstream.origin()
    )
}

/// Runs schemathesis against the server's document with `token`, over the operations whose
/// path matches `paths`.
fn schemathesis(server: &ServerProcess, token: &str, paths: &str) -> python::SuiteRun {
    let python = python::python();
    let schema = format!("{}/openapi.json", server.url);
    let header = format!("Authorization: Bearer {token}");
    let args = [
        "-m",
        "schemathesis.cli",
        "run",
        &schema,
        "--header",
        &header,
        "--include-path-regex",
        paths,
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "15",
        "--seed",
        "20261207",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        // OAuth's form bodies filter most generated data: that is the schema's strictness.
        "--suppress-health-check",
        "filter_too_much",
        "--no-color",
    ];
    run_python(&python, &args, &server.dir, &server.dir, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_documented_answers_and_no_server_error() {
    let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("keygate.toml");
    std::fs::write(&config_path, config(&upstream)).unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &[
            ("KEYGATE_CONFIG", config_path.to_str().unwrap()),
            ("UPSTREAM_KEY", UPSTREAM_KEY),
        ],
    );
    let owner = server.owner_token();
    let key = create_key(&server, &owner, "fuzz", "models:*");
    // The gateway first: the admin run's sequences may revoke or delete the key.
    let run = tokio::task::block_in_place(|| schemathesis(&server, &key, "^/(v1|proxy)/"));
    assert_passed(&run, &server);
    let run = tokio::task::block_in_place(|| schemathesis(&server, &owner, "^/"));
    assert_passed(&run, &server);
    assert!(server.log().lines().all(|line| !line.contains("panicked")));
}
