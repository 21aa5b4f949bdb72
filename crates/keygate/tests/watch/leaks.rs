//! Leak reports: GitHub's secret-scanning partner format, signed by a P-256 key made and used
//! by `openssl` (as GitHub signs), and the plain form. A key found is refused on its next
//! request, the answer labels every token, a bad signature changes nothing, and the report
//! reaches a webhook receiver as `key.leaked`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::process::{ServerProcess, text, verify};
use crate::receiver::Receiver;

/// `openssl` in `dir`: a P-256 key pair; returns the public key's PEM.
fn signing_key(dir: &Path) -> String {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "github.pem",
    ]);
    run(&[
        "ec",
        "-in",
        "github.pem",
        "-pubout",
        "-out",
        "github.pub.pem",
    ]);
    std::fs::read_to_string(dir.join("github.pub.pem")).unwrap()
}

/// The base64 DER ECDSA-SHA256 signature of `body`, as GitHub sends it.
fn sign(dir: &Path, body: &[u8]) -> String {
    std::fs::write(dir.join("report.json"), body).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", "github.pem", "report.json"])
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", text(&out.stderr));
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

fn sha256(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

async fn report(
    http: &reqwest::Client,
    server: &ServerProcess,
    body: &[u8],
    signature: Option<&str>,
) -> (u16, Value) {
    let mut request = http
        .post(format!("{}/v1/leaks", server.url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request
            .header("Github-Public-Key-Identifier", "test-key-1")
            .header("Github-Public-Key-Signature", signature);
    }
    let reply = request.send().await.unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap())
}

fn new_key(server: &ServerProcess, owner: &str) -> String {
    let out = server.cli(
        &["keys", "create", "--name", "exposed", "--quiet"],
        Some(owner),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_key_is_quarantined_at_once_and_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let public_pem = signing_key(dir.path());
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "webhooks_allow_private = true\nwebhook_retries = [\"200ms\"]\n\
             [[leak_report_keys]]\nid = \"test-key-1\"\nkey = \"\"\"\n{public_pem}\"\"\"\n"
        ),
    )
    .unwrap();
    let server = ServerProcess::start(dir.path(), &[("KEYGATE_CONFIG", config.to_str().unwrap())]);
    let owner = server.owner_token();
    let receiver = Receiver::start(dir.path(), 0, None);
    let created = server.cli(
        &[
            "webhooks",
            "create",
            "--endpoint",
            &receiver.url,
            "--event",
            "key.leaked",
            "--quiet",
        ],
        Some(&owner),
        None,
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    receiver.trust(text(&created.stdout).trim());
    let http = reqwest::Client::new();
    let leaked = new_key(&server, &owner);
    let spared = new_key(&server, &owner);
    assert_eq!(verify(&http, &server.url, &leaked).await["code"], "valid");

    // A forged report (signed, but not by the configured key's holder) changes nothing.
    let forged =
        json!([{"token": spared, "type": "keygate_api_key", "url": "", "source": "content"}]);
    let forged = forged.to_string();
    let (status, body) = report(
        &http,
        &server,
        forged.as_bytes(),
        Some(&sign(dir.path(), b"other")),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("signature_invalid"))
    );
    assert_eq!(verify(&http, &server.url, &spared).await["code"], "valid");

    // GitHub's format, signed: one keygate key, one well-formed stranger, one look-alike.
    let stranger = keygate_core::ApiKey::generate(keygate_core::KeyEnv::Live).unwrap();
    let stranger = stranger.expose();
    let url = "https://github.com/octo/app/blob/3f2a/config.env";
    let github = json!([
        {"token": leaked, "type": "keygate_api_key", "url": url, "source": "content"},
        {"token": stranger, "type": "keygate_api_key", "url": url, "source": "content"},
        {"token": "kg_live_short", "type": "keygate_api_key", "url": url, "source": "commit"},
    ])
    .to_string();
    let signature = sign(dir.path(), github.as_bytes());
    let (status, verdicts) = report(&http, &server, github.as_bytes(), Some(&signature)).await;
    assert_eq!(status, 200, "{verdicts}");
    assert_eq!(
        verdicts,
        json!([
            {"token_hash": sha256(&leaked), "token_type": "keygate_api_key", "label": "true_positive"},
            {"token_hash": sha256(stranger), "token_type": "keygate_api_key", "label": "false_positive"},
            {"token_hash": sha256("kg_live_short"), "token_type": "keygate_api_key", "label": "false_positive"},
        ])
    );
    // Refused on its very next request.
    assert_eq!(
        verify(&http, &server.url, &leaked).await["code"],
        "key_suspended"
    );
    assert_eq!(verify(&http, &server.url, &spared).await["code"], "valid");
    let alert = receiver
        .wait_for("key.leaked", 1, Duration::from_secs(20))
        .await;
    assert_eq!(alert[0]["data"]["url"], url);
    assert_eq!(alert[0]["data"]["reporter"], "github");
    assert_eq!(alert[0]["data"]["action"], "suspended");
    assert_eq!(alert[0]["data"]["actor"], "leak-report:github");

    // The plain form, unsigned: the token is its own proof.
    let plain = json!({"tokens": [spared], "source": "pastebin"}).to_string();
    let (status, verdicts) = report(&http, &server, plain.as_bytes(), None).await;
    assert_eq!(
        (status, verdicts[0]["label"].as_str()),
        (200, Some("true_positive"))
    );
    assert_eq!(
        verify(&http, &server.url, &spared).await["code"],
        "key_suspended"
    );
    let (status, refused) = report(&http, &server, b"{\"tokens\": []}", None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("validation_failed"))
    );

    // Reported again (twice in one report, even), a quarantined key is no new event.
    let again = json!({"tokens": [leaked, leaked], "source": "pastebin"}).to_string();
    let (status, verdicts) = report(&http, &server, again.as_bytes(), None).await;
    assert_eq!(status, 200);
    assert_eq!(verdicts[1]["label"], "true_positive");
    let audited = server.cli(
        &["audit", "list", "--action", "key.leak_reported", "--json"],
        Some(&owner),
        None,
    );
    let audited: Value = serde_json::from_slice(&audited.stdout).unwrap();
    assert_eq!(audited["data"].as_array().unwrap().len(), 2, "{audited}");

    // A secret rotated out, and a publishable key (public by design): real tokens, but
    // reporting them stops nothing.
    let rotated = new_key(&server, &owner);
    let id = verify(&http, &server.url, &rotated).await["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = server.cli(&["keys", "rotate", &id, "--quiet"], Some(&owner), None);
    let current = text(&out.stdout).trim().to_owned();
    let made = server.cli(
        &[
            "keys",
            "create",
            "--name",
            "web",
            "--publishable",
            "--origin",
            "https://app.example.com",
            "--scope",
            "GET /proxy/maps/*",
            "--quiet",
        ],
        Some(&owner),
        None,
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let public = text(&made.stdout).trim().to_owned();
    let harmless = json!({"tokens": [rotated, public]}).to_string();
    let (status, verdicts) = report(&http, &server, harmless.as_bytes(), None).await;
    assert_eq!(status, 200);
    assert_eq!(verdicts[0]["label"], "true_positive");
    assert_eq!(verdicts[1]["label"], "true_positive");
    assert_eq!(verify(&http, &server.url, &current).await["code"], "valid");
    let public_id = server.cli(&["keys", "list", "--json"], Some(&owner), None);
    let listed: Value = serde_json::from_slice(&public_id.stdout).unwrap();
    let web = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "web")
        .unwrap();
    assert_eq!(web["status"], "active");

    // Neither the reported keys nor the webhook secret are in the log.
    let log = server.log();
    for secret in [&leaked, &spared] {
        assert!(
            !log.contains(secret.as_str()),
            "a reported key is in the log"
        );
    }
}
