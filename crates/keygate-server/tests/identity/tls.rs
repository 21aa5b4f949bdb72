//! TLS and mutual TLS, with certificates made by rcgen: HTTPS with a redirect from plain HTTP,
//! a renewed certificate picked up without a restart, client certificates standing for the
//! principal their names map to (and refused when they come from another CA or have
//! expired), and tokens bound to the certificate they were issued over.

use std::sync::Arc;
use std::time::Duration;

use keygate_core::{KeyLimits, Scope, SystemClock};
use keygate_identity::certificates::CertificateRule;
use keygate_server::ServerSettings;
use keygate_server::http::TlsSettings;
use keygate_server::service::IdentitySettings;
use keygate_testkit::{Db, Issued, TestCa, TestServer};
use serde_json::json;

use super::claims;

const BILLING: &str = "spiffe://acme.internal/ns/prod/sa/billing";

struct Tls {
    server: TestServer,
    ca: TestCa,
    url: String,
    dir: tempfile::TempDir,
}

async fn start(redirect_from: Option<std::net::SocketAddr>) -> Tls {
    let ca = TestCa::new("keygate test CA").unwrap();
    let issued = ca.server().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let settings = ServerSettings {
        tls: Some(TlsSettings {
            cert: write("server.pem", &issued.cert_pem),
            key: write("server.key", &issued.key_pem),
            client_ca: Some(write("clients.pem", &ca.cert_pem)),
            redirect_from,
        }),
        identity: IdentitySettings {
            certificates: vec![CertificateRule {
                name: "billing".into(),
                san: BILLING.into(),
                project: "default".into(),
                scopes: vec![Scope::parse("docs:read").unwrap()],
                limits: KeyLimits::default(),
            }],
            ..IdentitySettings::default()
        },
        ..ServerSettings::default()
    };
    let server = TestServer::start_with(Db::Sqlite, Arc::new(SystemClock), settings)
        .await
        .unwrap();
    let url = format!("https://localhost:{}", server.addr.port());
    Tls {
        server,
        ca,
        url,
        dir,
    }
}

/// A client trusting `ca_pem`, presenting `identity` when given.
fn client(ca_pem: &str, identity: Option<&Issued>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none());
    if let Some(identity) = identity {
        builder = builder
            .identity(reqwest::Identity::from_pem(identity.identity_pem().as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn status_and_code(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_redirects_plain_http_and_reloads_a_renewed_certificate() {
    let redirect = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let from = redirect.local_addr().unwrap();
    drop(redirect);
    let tls = start(Some(from)).await;
    let https = client(&tls.ca.cert_pem, None);
    let health = https
        .get(format!("{}/healthz", tls.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // The discovery document names the issuer by its https URL.
    let config: serde_json::Value = https
        .get(format!("{}/.well-known/openid-configuration", tls.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(config["issuer"].as_str().unwrap().starts_with("https://"));
    // Plain HTTP on the TLS port gets no answer; the redirect listener sends it over.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let port = tls.server.addr.port();
    assert!(
        plain
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
    let moved = plain
        .get(format!("http://127.0.0.1:{}/v1/models?x=1", from.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 308);
    assert_eq!(
        moved.headers()["location"],
        format!("https://127.0.0.1:{port}/v1/models?x=1").as_str()
    );

    // A renewed certificate (from another CA, to tell them apart) is served without a restart.
    let renewed_ca = TestCa::new("renewed CA").unwrap();
    let renewed = renewed_ca.server().unwrap();
    std::fs::write(tls.dir.path().join("server.key"), &renewed.key_pem).unwrap();
    std::fs::write(tls.dir.path().join("server.pem"), &renewed.cert_pem).unwrap();
    let trusting_renewed = client(&renewed_ca.cert_pem, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        // A new client each time: a kept-alive connection would keep the old certificate.
        let fresh = client(&renewed_ca.cert_pem, None);
        if fresh
            .get(format!("{}/healthz", tls.url))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        trusting_renewed
            .get(format!("{}/healthz", tls.url))
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_stand_for_the_principal_their_names_map_to() {
    let tls = start(None).await;
    let billing = tls
        .ca
        .client(&[], &[BILLING], time::Duration::days(1))
        .unwrap();
    let unmapped = tls
        .ca
        .client(
            &["intruder.local"],
            &["spiffe://acme.internal/ns/dev/sa/x"],
            time::Duration::days(1),
        )
        .unwrap();
    let expired = tls
        .ca
        .client(&[], &[BILLING], -time::Duration::days(1))
        .unwrap();
    let stranger_ca = TestCa::new("another CA").unwrap();
    let foreign = stranger_ca
        .client(&[], &[BILLING], time::Duration::days(1))
        .unwrap();
    let models = format!("{}/v1/models", tls.url);

    let (status, _) = status_and_code(client(&tls.ca.cert_pem, Some(&billing)).get(&models)).await;
    assert_eq!(status, 200);
    let (status, code) =
        status_and_code(client(&tls.ca.cert_pem, Some(&unmapped)).get(&models)).await;
    assert_eq!((status, code.as_str()), (403, "certificate_not_allowed"));
    let (status, code) = status_and_code(client(&tls.ca.cert_pem, None).get(&models)).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    // Another CA's certificate and an expired one end at the handshake.
    for refused in [&foreign, &expired] {
        assert!(
            client(&tls.ca.cert_pem, Some(refused))
                .get(&models)
                .send()
                .await
                .is_err()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_issued_over_mutual_tls_are_bound_to_the_certificate() {
    let tls = start(None).await;
    let billing = tls
        .ca
        .client(&[], &[BILLING], time::Duration::days(1))
        .unwrap();
    let other = tls
        .ca
        .client(
            &[],
            &["spiffe://acme.internal/ns/prod/sa/billing"],
            time::Duration::days(1),
        )
        .unwrap();
    let with_cert = client(&tls.ca.cert_pem, Some(&billing));
    let token_url = format!("{}/oauth/token", tls.url);
    let models = format!("{}/v1/models", tls.url);

    // The certificate alone authenticates the client (RFC 8705 §2).
    let reply = with_cert
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: serde_json::Value = reply.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let cnf = claims(&token)["cnf"]["x5t#S256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(claims(&token)["kg_fed"]["issuer"], "tls");
    assert_eq!(claims(&token)["scope"], "docs:read");

    let (status, _) = status_and_code(with_cert.get(&models).bearer_auth(&token)).await;
    assert_eq!(status, 200);
    // Without the certificate, or with another one (the same name, another key), refused.
    let (status, code) = status_and_code(
        client(&tls.ca.cert_pem, None)
            .get(&models)
            .bearer_auth(&token),
    )
    .await;
    assert_eq!((status, code.as_str()), (401, "token_unbound"));
    let (status, code) = status_and_code(
        client(&tls.ca.cert_pem, Some(&other))
            .get(&models)
            .bearer_auth(&token),
    )
    .await;
    assert_eq!((status, code.as_str()), (401, "token_unbound"));

    // A key's token asked for over the connection is bound to the certificate as well.
    let created: serde_json::Value = client(&tls.ca.cert_pem, None)
        .post(format!("{}/admin/v1/keys", tls.url))
        .bearer_auth(&tls.server.owner_token)
        .json(&json!({"project": "default", "name": "svc", "scopes": ["docs:read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (key_id, key) = (
        created["key"]["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let reply = with_cert
        .post(&token_url)
        .basic_auth(key_id, Some(key))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = reply.json().await.unwrap();
    let keyed = body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(claims(keyed)["cnf"]["x5t#S256"], cnf.as_str());
    assert_eq!(claims(keyed)["sub"], key_id);
}
