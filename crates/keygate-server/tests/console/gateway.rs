//! The model groups page over a gateway with a group from `keygate.toml`: shown with its
//! deployments and health but not editable; a stored group added, changed and deleted from the
//! page, checked as the admin API checks it.

use keygate_testkit::{Db, MockOpenAi, TestServer};

use super::{Browser, input};

const KEY: &str = "sk-upstream-console-0123456789";

async fn model_groups_are_shown_added_changed_and_deleted(db: Db) {
    let mock = MockOpenAi::start("up", KEY).await.unwrap();
    let config = format!(
        r#"
        [providers.up]
        kind = "openai-compatible"
        base_url = "{}/v1"
        credential = "env::UP_KEY"

        [model_groups.chat]
        deployments = [{{ provider = "up", model = "from-file" }}]
        "#,
        mock.origin()
    );
    let server = TestServer::start_gateway(db, &config, &[("UP_KEY", KEY)])
        .await
        .unwrap();
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.owner_token).await;
    let page = browser.get("/ui/model-groups").await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("chat") && page.html.contains("keygate.toml"));
    assert!(page.html.contains("up/from-file") && page.html.contains("serving"));
    assert!(
        !page.html.contains("/ui/model-groups/chat\""),
        "a group of the file is not edited here"
    );
    let csrf = input(&page.html, "csrf");
    let added = browser
        .post(
            "/ui/model-groups",
            &[
                ("csrf", &csrf),
                ("alias", "team/fast"),
                (
                    "group",
                    r#"{"deployments": [{"provider": "up", "model": "mini", "weight": 3}]}"#,
                ),
            ],
        )
        .await;
    assert_eq!(
        added.location.as_deref(),
        Some("/ui/model-groups"),
        "{}",
        added.html
    );
    let page = browser.get("/ui/model-groups").await;
    assert!(page.html.contains("up/mini") && page.html.contains("the admin API (stored)"));
    assert!(
        page.html.contains("<td>3</td>"),
        "the weight: {}",
        page.html
    );
    // Changed: checked as the admin API checks it.
    let unknown = browser
        .post(
            "/ui/model-groups/team%2Ffast",
            &[
                ("csrf", &csrf),
                (
                    "group",
                    r#"{"deployments": [{"provider": "nowhere", "model": "x"}]}"#,
                ),
            ],
        )
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.html);
    let not_json = browser
        .post(
            "/ui/model-groups/team%2Ffast",
            &[("csrf", &csrf), ("group", "{")],
        )
        .await;
    assert_eq!(not_json.status, 400);
    browser
        .post(
            "/ui/model-groups/team%2Ffast",
            &[
                ("csrf", &csrf),
                (
                    "group",
                    r#"{"deployments": [{"provider": "up", "model": "mini", "weight": 5}]}"#,
                ),
            ],
        )
        .await;
    assert!(
        browser
            .get("/ui/model-groups")
            .await
            .html
            .contains("<td>5</td>")
    );
    let deleted = browser
        .post("/ui/model-groups/team%2Ffast/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(deleted.status, 303);
    assert!(
        !browser
            .get("/ui/model-groups")
            .await
            .html
            .contains("up/mini")
    );
}

keygate_testkit::on_both_databases!(model_groups_are_shown_added_changed_and_deleted);
