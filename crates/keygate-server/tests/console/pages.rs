//! The pages past the keys list: a key edited from its page; secrets put and rotated
//! without their value ever in a page; the audit log listed, verified and exported.

use keygate_testkit::{Db, TestServer};
use serde_json::json;

use super::{Browser, input};

async fn secrets_are_put_and_rotated_without_their_value_in_any_page(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.owner_token).await;
    let list = browser.get("/ui/secrets").await;
    assert_eq!(list.status, 200);
    let csrf = input(&list.html, "csrf");
    let first = "sk-first-value-0123456789abcdef";
    let put = browser
        .post(
            "/ui/secrets",
            &[
                ("csrf", &csrf),
                ("name", "openai"),
                ("project", "default"),
                ("value", first),
                ("description", "the team's <b>OpenAI</b> key"),
            ],
        )
        .await;
    assert_eq!(put.status, 303, "{}", put.html);
    let page_path = put.location.unwrap();
    let page = browser.get(&page_path).await;
    assert!(page.html.contains("current"));
    assert!(page.html.contains("&#60;b&#62;OpenAI&#60;/b&#62;"));
    let second = "sk-second-value-fedcba9876543210";
    let rotated = browser
        .post(
            &format!("{page_path}/rotate"),
            &[
                ("csrf", &csrf),
                ("value", second),
                ("grace_period_seconds", "60"),
            ],
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.html);
    assert!(
        rotated.html.contains("Version 2 is current."),
        "{}",
        rotated.html
    );
    assert!(rotated.html.contains("previous"));
    // No page ever holds a value: not the list, the secret's page or the answers to writes.
    let list = browser.get("/ui/secrets").await;
    for html in [&list.html, &page.html, &rotated.html, &put.html] {
        for value in [first, second] {
            assert!(!html.contains(value), "a secret's value is in a page");
        }
    }
    // The vault holds the new value.
    let id = page_path.rsplit('/').next().unwrap();
    let revealed = server
        .api()
        .post(&format!("/admin/v1/secrets/{id}/reveal"))
        .token(&server.owner_token)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(revealed["value"], second);
}

async fn the_audit_page_lists_verifies_and_exports(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.owner_token).await;
    server
        .api()
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "audited", "scopes": ["models:chat"]}),
        )
        .await;
    let page = browser.get("/ui/audit").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("The chain verifies"), "{}", page.html);
    assert!(page.html.contains("key.create") && page.html.contains("console.sign_in"));
    let filtered = browser.get("/ui/audit?action=key.create").await;
    assert!(filtered.html.contains("key.create"));
    assert!(!filtered.html.contains("console.sign_in"));
    let export = browser.get("/ui/audit/export").await;
    assert_eq!(export.status, 200);
    assert!(
        export.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let lines: Vec<serde_json::Value> = export
        .html
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(lines.iter().any(|e| e["action"] == "key.create"));
    assert_eq!(lines[0]["seq"], 1, "from the start of the chain");
}

async fn a_key_is_edited_from_its_page(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let key = server
        .api()
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "before", "scopes": ["models:chat"]}),
        )
        .await;
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.owner_token).await;
    let path = format!("/ui/keys/{}", key.id);
    let page = browser.get(&path).await;
    assert!(page.html.contains("Not used in the last 30 days"));
    let csrf = input(&page.html, "csrf");
    let limits = r#"{"requests": [{"limit": 60, "per": "minute"}]}"#;
    let saved = browser
        .post(
            &format!("{path}/edit"),
            &[
                ("csrf", &csrf),
                ("name", "after"),
                ("scopes", "models:chat\nmodels:embed"),
                ("expires_at", "2098-05-01T08:30"),
                ("ip_allow", "10.0.0.0/8"),
                ("limits", limits),
            ],
        )
        .await;
    assert_eq!(
        saved.location.as_deref(),
        Some(path.as_str()),
        "{}",
        saved.html
    );
    let shown = server
        .api()
        .get(&format!("/admin/v1/keys/{}", key.id))
        .token(&server.owner_token)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(shown["name"], "after");
    assert_eq!(shown["scopes"], json!(["models:chat", "models:embed"]));
    assert_eq!(shown["expires_at"], "2098-05-01T08:30:00Z");
    assert_eq!(shown["ip_allow"], json!(["10.0.0.0/8"]));
    assert_eq!(shown["limits"]["requests"][0]["limit"], 60);
    // The form shows the key as it now is.
    let page = browser.get(&path).await;
    assert!(page.html.contains("2098-05-01T08:30") && page.html.contains("&#34;limit&#34;: 60"));
    // Limits that are not JSON are refused, and nothing changes.
    let refused = browser
        .post(
            &format!("{path}/edit"),
            &[("csrf", &csrf), ("name", "broken"), ("limits", "{oops")],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.html.contains("validation_failed"),
        "{}",
        refused.html
    );
    let after = server
        .api()
        .get(&format!("/admin/v1/keys/{}", key.id))
        .token(&server.owner_token)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(after["name"], "after");
}

async fn projects_and_admin_tokens_are_managed_from_the_console(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.owner_token).await;
    let page = browser.get("/ui/projects").await;
    assert!(page.html.contains("default"));
    let csrf = input(&page.html, "csrf");
    let limits = r#"{"requests": [{"limit": 100, "per": "minute"}]}"#;
    let made = browser
        .post(
            "/ui/projects",
            &[("csrf", &csrf), ("name", "payments"), ("limits", limits)],
        )
        .await;
    assert_eq!(
        made.location.as_deref(),
        Some("/ui/projects"),
        "{}",
        made.html
    );
    let api = server.api();
    let shown = api
        .get("/admin/v1/projects/payments")
        .token(&server.owner_token)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(shown["limits"]["requests"][0]["limit"], 100);
    let id = shown["id"].as_str().unwrap().to_owned();
    browser
        .post(
            &format!("/ui/projects/{id}/limits"),
            &[("csrf", &csrf), ("limits", r#"{"concurrency": 5}"#)],
        )
        .await;
    let shown = api
        .get("/admin/v1/projects/payments")
        .token(&server.owner_token)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(shown["limits"], json!({"concurrency": 5}));
    let bad = browser
        .post(
            &format!("/ui/projects/{id}/limits"),
            &[("csrf", &csrf), ("limits", r#"{"requests": "lots"}"#)],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.html);

    // An admin token: made (its secret once), listed, revoked; then it opens nothing.
    let made = browser
        .post(
            "/ui/tokens",
            &[
                ("csrf", &csrf),
                ("name", "ops-bot"),
                ("role", "viewer"),
                ("project", ""),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.html);
    let token = input(&made.html, "secret");
    assert!(
        token.starts_with("kg_admin_") || token.starts_with("kg_"),
        "{token}"
    );
    let list = browser.get("/ui/tokens").await;
    assert!(list.html.contains("ops-bot") && !list.html.contains(&token[12..]));
    let mut viewer = Browser::new(&server);
    assert_eq!(viewer.sign_in(&token).await.status, 303);
    // A viewer may not manage tokens: the page says so.
    assert_eq!(viewer.get("/ui/tokens").await.status, 403);
    // Its session is listed for the owner, and ended from the page; it signs in again.
    let sessions = browser.get("/ui/tokens").await;
    assert!(sessions.html.contains("this session") && sessions.html.contains("End ops-bot"));
    let at = sessions.html.find("/ui/sessions/").unwrap();
    let end = sessions.html[at..].split('"').next().unwrap().to_owned();
    let ended = browser.post(&end, &[("csrf", &csrf)]).await;
    assert_eq!(ended.location.as_deref(), Some("/ui/tokens"));
    assert_eq!(
        viewer.get("/ui/keys").await.status,
        303,
        "its session was ended"
    );
    assert_eq!(viewer.sign_in(&token).await.status, 303);
    // An admin may not end the owner's session: never above its own role.
    let made = browser
        .post(
            "/ui/tokens",
            &[
                ("csrf", &csrf),
                ("name", "deputy"),
                ("role", "admin"),
                ("project", ""),
            ],
        )
        .await;
    let mut deputy = Browser::new(&server);
    assert_eq!(
        deputy.sign_in(&input(&made.html, "secret")).await.status,
        303
    );
    let listed = deputy.get("/ui/tokens").await;
    let deputy_csrf = input(&listed.html, "csrf");
    let owner_row = listed
        .html
        .split("<tr>")
        .find(|row| row.contains("bootstrap owner") && row.contains("/ui/sessions/"))
        .unwrap()
        .to_owned();
    let at = owner_row.find("/ui/sessions/").unwrap();
    let owners = owner_row[at..].split('"').next().unwrap().to_owned();
    let refused = deputy.post(&owners, &[("csrf", &deputy_csrf)]).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert_eq!(
        browser.get("/ui/keys").await.status,
        200,
        "the owner is still in"
    );
    let tokens = api
        .get("/admin/v1/tokens")
        .token(&server.owner_token)
        .send()
        .await
        .expect(200)
        .body;
    let id = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ops-bot")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = browser
        .post(
            &format!("/ui/tokens/{id}/revoke"),
            &[("csrf", &csrf), ("reason", "no longer needed")],
        )
        .await;
    assert_eq!(revoked.location.as_deref(), Some("/ui/tokens"));
    assert!(browser.get("/ui/tokens").await.html.contains("revoked"));
    assert_eq!(
        viewer.get("/ui/keys").await.status,
        303,
        "its session ended with it"
    );
}

keygate_testkit::on_both_databases!(
    projects_and_admin_tokens_are_managed_from_the_console,
    a_key_is_edited_from_its_page,
    secrets_are_put_and_rotated_without_their_value_in_any_page,
    the_audit_page_lists_verifies_and_exports,
);
