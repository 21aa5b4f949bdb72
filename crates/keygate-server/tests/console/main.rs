//! The web console over a real socket, as a browser talks to it (forms, cookies, redirects):
//! signing in with an admin token, the key lifecycle with its secret shown once, escaping,
//! the CSRF token and same-origin checks on every write, a viewer who can change nothing,
//! sessions that end (signing out, idle, a revoked token), and the security headers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

mod browser;
mod gateway;
mod pages;
mod sso;
mod watch;

use std::time::Duration;

use keygate_testkit::{Db, TestServer};
use serde_json::json;

/// A browser: no redirects followed, one cookie kept.
struct Browser<'a> {
    server: &'a TestServer,
    http: reqwest::Client,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
    html: String,
}

impl<'a> Browser<'a> {
    fn new(server: &'a TestServer) -> Self {
        Self {
            server,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", format!("keygate_session={cookie}")),
            None => request,
        };
        let reply = request.send().await.unwrap();
        let headers = reply.headers().clone();
        if let Some(set) = headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            let value = set
                .strip_prefix("keygate_session=")
                .and_then(|rest| rest.split(';').next())
                .unwrap();
            self.cookie = Some(value.to_owned()).filter(|v| !v.is_empty());
        }
        Page {
            status: reply.status().as_u16(),
            location: headers
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned()),
            headers,
            html: reply.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(self.server.url(path));
        self.send(request).await
    }

    /// Posts a form from the console's own page (as a browser says in `Sec-Fetch-Site`).
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_from(path, fields, "same-origin").await
    }

    async fn post_from(&mut self, path: &str, fields: &[(&str, &str)], site: &str) -> Page {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = self
            .http
            .post(self.server.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", site)
            .body(body);
        self.send(request).await
    }

    async fn sign_in(&mut self, token: &str) -> Page {
        self.post("/ui/sign-in", &[("token", token)]).await
    }
}

/// The value of the first input named (or with the id) `name` in `html`.
fn input(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .or_else(|| html.find(&format!("id=\"{name}\"")))
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at..];
    let value = rest.find("value=\"").unwrap() + 7;
    rest[value..][..rest[value..].find('"').unwrap()].to_owned()
}

async fn a_token_signs_in_and_runs_the_key_lifecycle(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let mut browser = Browser::new(&server);

    // Not signed in: sent to sign in, from every page.
    let page = browser.get("/ui/keys").await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/ui/sign-in"))
    );
    let sign_in = browser.get("/ui/sign-in").await;
    assert_eq!(sign_in.status, 200);
    let csp = sign_in.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!sign_in.html.contains("<script>"), "no inline script");
    assert_eq!(sign_in.headers["x-frame-options"], "DENY");
    assert_eq!(sign_in.headers["cache-control"], "no-store");

    // A wrong token is refused and audited; the right one starts a session.
    let refused = browser.sign_in("kg_admin_not-a-real-token").await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.html.contains("was not accepted"),
        "{}",
        refused.html
    );
    assert!(browser.cookie.is_none());
    let signed = browser.sign_in(&server.owner_token).await;
    assert_eq!(
        (signed.status, signed.location.as_deref()),
        (303, Some("/ui/keys"))
    );
    let set_cookie = signed.headers["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains(&server.owner_token[10..]));

    // Create a key named like a script: shown escaped, its secret once.
    let form = browser.get("/ui/keys/new").await;
    assert_eq!(form.status, 200);
    let csrf = input(&form.html, "csrf");
    let created = browser
        .post(
            "/ui/keys",
            &[
                ("csrf", &csrf),
                ("name", "<script>alert(1)</script>"),
                ("project", "default"),
                ("env", "live"),
                ("scopes", "models:chat\nGET /proxy/maps/*\n"),
                ("expires_at", "2099-01-31T12:00"),
                ("ip_allow", ""),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.html);
    assert!(!created.html.contains("<script>alert(1)</script>"));
    assert!(
        created
            .html
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        created.html
    );
    let secret = input(&created.html, "secret");
    assert!(secret.starts_with("kg_live_"), "{secret}");
    assert!(created.html.contains("shown once"));
    let verdict = server
        .api()
        .verify(&secret, Some("models:chat"), None)
        .await;
    assert_eq!(verdict["valid"], true, "{verdict}");
    let id = verdict["key_id"].as_str().unwrap().to_owned();

    // The list and the key's page show the key, never its secret.
    let list = browser.get("/ui/keys").await;
    assert!(list.html.contains(&id));
    // Searched by name (in the store, ignoring case), filtered by status.
    assert!(browser.get("/ui/keys?q=SCRIPT").await.html.contains(&id));
    assert!(!browser.get("/ui/keys?q=nothing").await.html.contains(&id));
    assert!(
        !browser
            .get("/ui/keys?status=revoked")
            .await
            .html
            .contains(&id)
    );
    let key_page = browser.get(&format!("/ui/keys/{id}")).await;
    assert_eq!(key_page.status, 200);
    for page in [&list, &key_page] {
        assert!(
            !page.html.contains(&secret[8..]),
            "the secret is shown again"
        );
    }
    assert!(key_page.html.contains("2099-01-31T12:00:00"));

    // Suspend, resume, rotate (the new secret once), revoke; each audited.
    let csrf = input(&key_page.html, "csrf");
    let path = |action: &str| format!("/ui/keys/{id}/{action}");
    let done = browser
        .post(&path("suspend"), &[("csrf", &csrf), ("reason", "on leave")])
        .await;
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/ui/keys/{id}").as_str())
    );
    assert!(
        browser
            .get(&format!("/ui/keys/{id}"))
            .await
            .html
            .contains("suspended")
    );
    browser
        .post(&path("resume"), &[("csrf", &csrf), ("reason", "back")])
        .await;
    let rotated = browser
        .post(
            &path("rotate"),
            &[("csrf", &csrf), ("grace_period_seconds", "0")],
        )
        .await;
    assert_eq!(rotated.status, 200);
    let new_secret = input(&rotated.html, "secret");
    assert_ne!(new_secret, secret);
    let revoked = browser
        .post(
            &path("revoke"),
            &[("csrf", &csrf), ("reason", "done with it")],
        )
        .await;
    assert_eq!(revoked.status, 303);
    let shown = browser.get(&format!("/ui/keys/{id}")).await;
    assert!(shown.html.contains("revoked") && shown.html.contains("done with it"));
    assert!(
        !shown.html.contains("/revoke\""),
        "no revoke form for a revoked key"
    );
    let audit = server
        .api()
        .get("/admin/v1/audit?limit=50")
        .token(&server.owner_token)
        .send()
        .await
        .expect(200)
        .body;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "console.sign_in",
        "key.create",
        "key.suspend",
        "key.resume",
        "key.rotate",
        "key.revoke",
        "admin.auth_failed",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }

    // Signing out ends the session on the server: the old cookie opens nothing.
    let old = browser.cookie.clone();
    let out = browser.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.location.as_deref(), Some("/ui/sign-in"));
    browser.cookie = old;
    assert_eq!(browser.get("/ui/keys").await.status, 303);
}

async fn writes_need_the_csrf_token_and_the_consoles_origin(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.owner_token).await;
    let form = browser.get("/ui/keys/new").await;
    let csrf = input(&form.html, "csrf");
    let fields = |csrf: &'static str| {
        vec![
            ("csrf", csrf),
            ("name", "forged"),
            ("project", "default"),
            ("env", "live"),
        ]
    };
    let csrf: &'static str = Box::leak(csrf.into_boxed_str());
    for (fields, site) in [
        (fields(""), "same-origin"),
        (fields("not-the-token"), "same-origin"),
        (fields(csrf), "cross-site"),
    ] {
        let page = browser.post_from("/ui/keys", &fields, site).await;
        assert_eq!(page.status, 403, "{site}: {}", page.html);
        assert!(page.html.contains("csrf_failed"));
    }
    // A sign-in posted from another site is refused too (login CSRF).
    let mut other = Browser::new(&server);
    let page = other
        .post_from(
            "/ui/sign-in",
            &[("token", &server.owner_token)],
            "cross-site",
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(other.cookie.is_none());
    let keys = server
        .api()
        .get("/admin/v1/keys")
        .token(&server.owner_token)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(keys["data"], json!([]), "nothing was created");
}

async fn a_viewer_sees_no_control_and_can_change_nothing(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let key = api
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "prod", "scopes": ["models:chat"]}),
        )
        .await;
    let viewer = api
        .post("/admin/v1/tokens")
        .token(&server.owner_token)
        .json(&json!({"name": "auditor-bot", "role": "viewer"}))
        .send()
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut browser = Browser::new(&server);
    assert_eq!(browser.sign_in(&viewer).await.status, 303);
    let list = browser.get("/ui/keys").await;
    assert!(list.html.contains("prod"));
    assert!(list.html.contains("(viewer)"));
    assert!(!list.html.contains("Create a key"));
    assert!(
        !list.html.contains("/ui/tokens"),
        "no way to a page it cannot use"
    );
    let page = browser.get(&format!("/ui/keys/{}", key.id)).await;
    for control in ["/rotate", "/suspend", "/revoke"] {
        assert!(!page.html.contains(control), "{control} shown to a viewer");
    }
    // Posted anyway, with a valid CSRF token: refused by the service, and nothing changed.
    let csrf = input(&page.html, "csrf");
    let refused = browser
        .post(
            &format!("/ui/keys/{}/revoke", key.id),
            &[("csrf", &csrf), ("reason", "x")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(refused.html.contains("forbidden"), "{}", refused.html);
    let shown = api
        .get(&format!("/admin/v1/keys/{}", key.id))
        .token(&server.owner_token)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(shown["status"], "active");
}

async fn sessions_end_when_idle_and_when_their_token_is_revoked(db: Db) {
    let t0 = keygate_core::Timestamp::from_millis(1_800_000_000_000);
    let (server, clock) = TestServer::start_frozen(db, t0).await.unwrap();
    let api = server.api();
    let made = api
        .post("/admin/v1/tokens")
        .token(&server.owner_token)
        .json(&json!({"name": "ops", "role": "admin"}))
        .send()
        .await
        .expect(201)
        .body;
    let token = made["secret"].as_str().unwrap().to_owned();
    let token_id = made["token"]["id"].as_str().unwrap().to_owned();

    let mut idle = Browser::new(&server);
    idle.sign_in(&server.owner_token).await;
    let mut revoked = Browser::new(&server);
    revoked.sign_in(&token).await;
    assert_eq!(idle.get("/ui/keys").await.status, 200);
    assert_eq!(revoked.get("/ui/keys").await.status, 200);

    // Activity keeps a session open…
    clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(idle.get("/ui/keys").await.status, 200);
    // …and its token's revocation ends it at once.
    api.post(&format!("/admin/v1/tokens/{token_id}/revoke"))
        .token(&server.owner_token)
        .json(&json!({"reason": "left the team"}))
        .send()
        .await
        .expect(200);
    assert_eq!(revoked.get("/ui/keys").await.status, 303);
    // Thirty minutes without a request end a session.
    clock.advance(Duration::from_secs(31 * 60));
    let page = idle.get("/ui/keys").await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/ui/sign-in"))
    );
}

#[tokio::test]
async fn assets_are_served_from_the_binary_with_the_same_headers() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let http = reqwest::Client::new();
    for (path, kind) in [
        ("/ui/assets/console.css", "text/css"),
        ("/ui/assets/console.js", "text/javascript"),
    ] {
        let reply = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(reply.status(), 200);
        let headers = reply.headers();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        assert!(headers.contains_key("content-security-policy"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
}

keygate_testkit::on_both_databases!(
    a_token_signs_in_and_runs_the_key_lifecycle,
    writes_need_the_csrf_token_and_the_consoles_origin,
    a_viewer_sees_no_control_and_can_change_nothing,
    sessions_end_when_idle_and_when_their_token_is_revoked,
);
