//! Publishable keys in a real browser: headless Chromium loads a page from one origin whose
//! script calls keygate with the key, as a storefront would. The browser, not a hand-written
//! client, decides from keygate's CORS answers whether the script may read the answer: it may
//! from the key's origin, and the browser blocks the call from another origin, to a private
//! route, or with a write method.
//!
//! Chromium comes from `KEYGATE_TEST_CHROMIUM` (default `chromium`, which `.ci/run` installs);
//! a test that needs it fails, never skips, when it is missing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::response::{Html, IntoResponse};
use keygate_testkit::upstream::RecordingUpstream;
use keygate_testkit::{Db, TestServer};
use serde_json::json;

const PRIVATE_KEY: &str = "sk_live_private_0123456789abcdef";

/// An upstream that answers every request with an empty catalog.
async fn upstream() -> RecordingUpstream {
    RecordingUpstream::start(|_| async { axum::Json(json!({"items": []})).into_response() })
        .await
        .unwrap()
}

/// The storefront: `/call/{method}/{route}` is a page whose script calls `route` on keygate
/// with the key in `key` (set once the key exists: it names the storefront's origin) and
/// writes what happened into the page.
async fn storefront(keygate: SocketAddr, key: Arc<Mutex<String>>) -> SocketAddr {
    let page = move |Path((method, route)): Path<(String, String)>| {
        let key = key.lock().unwrap().clone();
        async move {
            Html(format!(
                r#"<html><body>pending<script>
fetch("http://{keygate}/proxy/{route}/items", {{
  method: "{method}",
  headers: {{"Authorization": "Bearer {key}"}},
}})
  .then(r => r.text().then(t => {{ document.body.textContent = "status " + r.status + " " + t; }}))
  .catch(e => {{ document.body.textContent = "blocked " + e; }});
</script></body></html>"#
            ))
            .into_response()
        }
    };
    let app = Router::new().route("/call/{method}/{route}", axum::routing::get(page));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// What the page shows once its script has run in headless Chromium.
async fn open(url: String) -> String {
    let chromium = std::env::var("KEYGATE_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--virtual-time-budget=10000",
                "--dump-dom",
                &url,
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("Chromium finished within a minute")
    .unwrap_or_else(|err| panic!("`{chromium}` runs (install the chromium package): {err}"));
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        dom.contains("<body>"),
        "Chromium printed no page: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

async fn a_browser_reads_only_what_cors_allows(db: Db) {
    let catalog = upstream().await;
    let upstream = catalog.addr;
    let config = format!(
        r#"
        [routes.catalog]
        upstream = "http://{upstream}/v1"
        credential = "none"
        public = true

        [routes.private]
        upstream = "http://{upstream}/v1"
        credential = "env::PRIVATE_KEY"
        inject = {{ header = "authorization", prefix = "Bearer " }}
        "#
    );
    let server = TestServer::start_gateway(db, &config, &[("PRIVATE_KEY", PRIVATE_KEY)])
        .await
        .unwrap();
    let shown_key = Arc::new(Mutex::new(String::new()));
    let page = storefront(server.addr, shown_key.clone()).await;
    let origin = format!("http://127.0.0.1:{}", page.port());
    let key = server
        .api()
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "storefront", "publishable": true,
                   "origins": [origin], "scopes": ["GET /proxy/catalog/*", "GET /proxy/private/*"]}),
        )
        .await;
    *shown_key.lock().unwrap() = key.secret;

    // From the key's origin, the script reads the public route's answer.
    let dom = open(format!("{origin}/call/GET/catalog")).await;
    assert!(dom.contains(r#"status 200 {"items":[]}"#), "{dom}");
    assert_eq!(catalog.count(), 1);

    // The same page from another origin (localhost is not 127.0.0.1 to a browser): blocked.
    let other = format!("http://localhost:{}", page.port());
    let dom = open(format!("{other}/call/GET/catalog")).await;
    assert!(dom.contains("blocked TypeError"), "{dom}");

    // A private route, even with a scope that names it, and a write: the browser's preflight
    // is refused and the call never leaves it.
    for path in ["GET/private", "POST/catalog"] {
        let dom = open(format!("{origin}/call/{path}")).await;
        assert!(dom.contains("blocked TypeError"), "{path}: {dom}");
    }
    assert_eq!(
        catalog.count(),
        1,
        "only the allowed read reached the upstream"
    );
}

keygate_testkit::on_both_databases!(a_browser_reads_only_what_cors_allows);
