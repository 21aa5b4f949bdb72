//! Tokens as users meet them, against `keygate serve`: a downstream service verifies them
//! offline with PyJWT and keygate's JWKS, the official OpenAI SDK uses one as its API key, and
//! `keygate run` fetches a secret with one; and a CI job holding only its OIDC token gets a
//! secret through `keygate run --id-token-file`; and `keygate serve` with TLS from its
//! configuration knows clients by their certificates. The Python side is
//! `tests/python/tokens_test.py`.
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

use std::process::Command;

use keygate_testkit::{MockOpenAi, OidcProvider, TestCa};
use process::{ServerProcess, binary, text};
use python::{assert_no_keygate_key, assert_passed, put_secret, run_suite};

const UPSTREAM_KEY: &str = "sk-upstream-tokens-0123456789";
const SECRET: &str = "sk-run-with-a-token-0123456789";

/// A token for `key` (id and secret in HTTP Basic) with `fields` added to the form.
async fn token(server: &ServerProcess, id: &str, key: &str, fields: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    form.extend_pairs(fields);
    let reply: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/oauth/token", server.url))
        .basic_auth(id, Some(key))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.finish())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {reply}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_verify_tokens_and_clients_use_them_as_keys() {
    let python = python::python();
    let upstream = MockOpenAi::start("up", UPSTREAM_KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[providers.up]\nkind = \"openai\"\nbase_url = \"{}/v1\"\ncredential = \"secret::upstream\"\n\n\
             [model_groups.chat]\ndeployments = [{{ provider = \"up\", model = \"gpt-4o-mini\" }}]\n\n\
             [model_groups.other]\ndeployments = [{{ provider = \"up\", model = \"gpt-4o\" }}]\n",
            upstream.origin()
        ),
    )
    .unwrap();
    let server = ServerProcess::start(dir.path(), &[("KEYGATE_CONFIG", config.to_str().unwrap())]);
    let owner = server.owner_token();
    put_secret(&server, &owner, "upstream", UPSTREAM_KEY);
    put_secret(&server, &owner, "openai-prod", SECRET);
    let created = server.cli(
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--scope",
            "models:*",
            "--scope",
            "docs:read",
            "--scope",
            "GET /reports/*",
            "--scope",
            "secrets:read:openai-prod",
            "--json",
        ],
        Some(&owner),
        None,
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    let key = created["secret"].as_str().unwrap().to_owned();

    let service = token(
        &server,
        &id,
        &key,
        &[
            ("scope", "docs:read GET /reports/*"),
            ("audience", "https://reports.internal"),
        ],
    )
    .await;
    let gateway = token(&server, &id, &key, &[("scope", "models:chat")]).await;
    let env = vec![
        ("KEYGATE_URL", server.url.clone()),
        ("KEYGATE_SERVICE_TOKEN", service.clone()),
        ("KEYGATE_GATEWAY_TOKEN", gateway.clone()),
    ];
    let work = dir.path().to_owned();
    let run =
        tokio::task::spawn_blocking(move || run_suite(&python, "tokens_test.py", &work, &env))
            .await
            .unwrap();
    assert_passed(&run, &server);
    assert_no_keygate_key(&upstream.requests(), &[&key, &gateway]);

    // `keygate run` with a token narrowed to one secret: the child gets it, not the token.
    let narrow = token(&server, &id, &key, &[("scope", "secrets:read:openai-prod")]).await;
    let script = format!(
        "test \"$OPENAI_API_KEY\" = '{SECRET}' || exit 10; test -z \"$KEYGATE_API_KEY\" || exit 11; exit 7"
    );
    let out = Command::new(binary())
        .args([
            "run",
            "--secret",
            "openai-prod=OPENAI_API_KEY",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .current_dir(dir.path())
        .env("KEYGATE_URL", &server.url)
        .env("KEYGATE_API_KEY", &narrow)
        .env_remove("KEYGATE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    // A token without the secret's scope is refused before the child starts.
    let out = Command::new(binary())
        .args([
            "run",
            "--secret",
            "openai-prod=OPENAI_API_KEY",
            "--",
            "true",
        ])
        .current_dir(dir.path())
        .env("KEYGATE_URL", &server.url)
        .env("KEYGATE_API_KEY", &gateway)
        .env_remove("KEYGATE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));

    let log = server.log();
    for secret in [&key, &service, &gateway, &narrow] {
        assert!(
            !log.contains(secret.as_str()),
            "a credential reached the log"
        );
    }
}

/// A GitHub Actions-like OIDC token of `ci` for `acme/deploy` at `git_ref`.
fn ci_token(ci: &OidcProvider, git_ref: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ci.mint(&serde_json::json!({
        "aud": "https://keygate.example",
        "sub": format!("repo:acme/deploy:ref:{git_ref}"),
        "repository": "acme/deploy",
        "repository_owner": "acme",
        "ref": git_ref,
        "iat": now,
        "exp": now + 300,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_job_with_only_its_oidc_token_gets_a_secret() {
    let ci = OidcProvider::start("unused", "unused").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[federation.ci]
issuer = "{issuer}"
audience = "https://keygate.example"
required = {{ repository_owner = "acme" }}

[[federation.ci.rules]]
name = "deploy"
match = {{ ref = "refs/heads/main" }}
project = "default"
scopes = ["secrets:read:deploy-*"]
quota = "100/day"
"#,
            issuer = ci.issuer
        ),
    )
    .unwrap();
    let server = ServerProcess::start(dir.path(), &[("KEYGATE_CONFIG", config.to_str().unwrap())]);
    let owner = server.owner_token();
    put_secret(&server, &owner, "deploy-token", SECRET);
    let token_file = dir.path().join("oidc-token");
    let run = async |token: String| {
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        let script = format!("test \"$DEPLOY_TOKEN\" = '{SECRET}' || exit 10; exit 7");
        tokio::process::Command::new(binary())
            .args([
                "run",
                "--secret",
                "deploy-token=DEPLOY_TOKEN",
                "--",
                "sh",
                "-c",
                &script,
            ])
            .current_dir(dir.path())
            .env("KEYGATE_URL", &server.url)
            .env("KEYGATE_ID_TOKEN_FILE", &token_file)
            .env_remove("KEYGATE_API_KEY")
            .env_remove("KEYGATE_TOKEN")
            .output()
            .await
            .unwrap()
    };

    let out = run(ci_token(&ci, "refs/heads/main")).await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));

    // A branch no rule covers gets nothing, and the command never starts.
    let out = run(ci_token(&ci, "refs/heads/feature")).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("invalid_request"),
        "{}",
        text(&out.stderr)
    );
    assert!(!server.log().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygate_serves_tls_and_knows_clients_by_their_certificates() {
    const BILLING: &str = "spiffe://acme.internal/ns/prod/sa/billing";
    let ca = TestCa::new("keygate test CA").unwrap();
    let server_cert = ca.server().unwrap();
    let billing = ca.client(&[], &[BILLING], time::Duration::days(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (cert, key, clients) = (
        write("tls.crt", &server_cert.cert_pem),
        write("tls.key", &server_cert.key_pem),
        write("clients-ca.pem", &ca.cert_pem),
    );
    let config = |key: &str| {
        format!(
            "tls_cert = \"{cert}\"\ntls_key = \"{key}\"\ntls_client_ca = \"{clients}\"\n\n\
             [[tls_clients]]\nname = \"billing\"\nsan = \"{BILLING}\"\nproject = \"default\"\n\
             scopes = [\"models:*\"]\nrates = [\"100/minute\"]\n"
        )
    };

    // A key file that is no key is refused at start, naming the file.
    let broken = write("broken.toml", &config(&clients));
    let out = Command::new(binary())
        .arg("serve")
        .current_dir(dir.path())
        .env("KEYGATE_CONFIG", &broken)
        .env("KEYGATE_LISTEN", "127.0.0.1:0")
        .env_remove("KEYGATE_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("clients-ca.pem"),
        "{}",
        text(&out.stderr)
    );

    let good = write("keygate.toml", &config(&key));
    let server = ServerProcess::start(dir.path(), &[("KEYGATE_CONFIG", good.as_str())]);
    let https = |identity: bool| {
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap()]);
        if identity {
            builder = builder
                .identity(reqwest::Identity::from_pem(billing.identity_pem().as_bytes()).unwrap());
        }
        builder.build().unwrap()
    };
    let models = format!("https://localhost:{}/v1/models", server.port);
    let with_cert = https(true).get(&models).send().await.unwrap();
    assert_eq!(with_cert.status(), 200);
    let without = https(false).get(&models).send().await.unwrap();
    assert_eq!(without.status(), 401);
    assert!(server.log().contains("mutual_tls=true"), "{}", server.log());
}
