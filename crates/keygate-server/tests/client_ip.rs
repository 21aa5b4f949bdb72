//! A key's IP allow-list checks the client's address: the peer's, or, behind a configured
//! trusted proxy, the one `X-Forwarded-For` names. From any other peer the header is ignored,
//! so a client cannot pick an allowed address by sending it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::sync::Arc;

use keygate_core::SystemClock;
use keygate_server::ServerSettings;
use keygate_testkit::{Db, TestServer};
use serde_json::json;

async fn server(db: Db, trusted: &[&str]) -> TestServer {
    let settings = ServerSettings {
        trusted_proxies: trusted.iter().map(|n| n.parse().unwrap()).collect(),
        ..ServerSettings::default()
    };
    TestServer::start_with(db, Arc::new(SystemClock), settings)
        .await
        .unwrap()
}

async fn key(server: &TestServer) -> String {
    server
        .api()
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "office", "ip_allow": ["203.0.113.0/24", "2001:db8::/48"]}),
        )
        .await
        .secret
}

async fn models(server: &TestServer, key: &str, forwarded: Option<&str>) -> u16 {
    let api = server.api();
    let mut call = api.get("/v1/models").token(key);
    if let Some(forwarded) = forwarded {
        call = call.header("x-forwarded-for", forwarded);
    }
    call.send().await.status
}

async fn behind_a_trusted_proxy_the_forwarded_address_counts(db: Db) {
    let server = server(db, &["127.0.0.1/32"]).await;
    let key = key(&server).await;
    assert_eq!(models(&server, &key, Some("203.0.113.7")).await, 200);
    assert_eq!(
        models(&server, &key, Some("2001:db8:0:ffff::1")).await,
        200,
        "inside the /48"
    );
    assert_eq!(
        models(&server, &key, Some("2001:db8:1::1")).await,
        403,
        "just outside the /48"
    );
    assert_eq!(
        models(&server, &key, Some("203.0.114.0")).await,
        403,
        "just past the /24"
    );
    assert_eq!(
        models(&server, &key, Some("203.0.113.7, 198.51.100.1")).await,
        403,
        "the rightmost untrusted hop is the client"
    );
    assert_eq!(
        models(&server, &key, None).await,
        403,
        "the proxy itself is not allowed"
    );
}

async fn from_an_untrusted_peer_the_header_is_ignored(db: Db) {
    let server = server(db, &[]).await;
    let key = key(&server).await;
    assert_eq!(models(&server, &key, Some("203.0.113.7")).await, 403);
    let trusting_others = self::server(Db::Sqlite, &["10.0.0.0/8"]).await;
    let key = self::key(&trusting_others).await;
    assert_eq!(
        models(&trusting_others, &key, Some("203.0.113.7")).await,
        403
    );
}

keygate_testkit::on_both_databases!(
    behind_a_trusted_proxy_the_forwarded_address_counts,
    from_an_untrusted_peer_the_header_is_ignored,
);
