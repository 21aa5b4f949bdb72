//! The console in headless Chromium, driven through WebDriver (Debian's ChromeDriver, with the
//! `fantoccini` client): a new operator signs in with a token, creates a key and sees its
//! secret once (the copy button proves the console's script runs under its CSP), suspends the
//! key, and signs out. axe-core (`KEYGATE_TEST_AXE`, installed by `scripts/browser`) is injected
//! into every page and must find no serious or critical violation. Each page's screenshot is
//! kept in `target/console-screenshots/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use keygate_testkit::{Db, TestServer};
use serde_json::{Value, json};

fn env_path(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run ./scripts/test, or eval \"$(scripts/browser)\" first")
    })
}

/// ChromeDriver on a free port, and a headless Chromium session through it.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
    axe: String,
    shots: PathBuf,
}

impl Browser {
    async fn start() -> Self {
        let driver_path = env_path("KEYGATE_TEST_CHROMEDRIVER");
        let axe = std::fs::read_to_string(env_path("KEYGATE_TEST_AXE")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("{driver_path} runs: {err}"));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "ChromeDriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let chromium =
            std::env::var("KEYGATE_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let binary = which(&chromium);
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a Chromium session through ChromeDriver");
        let shots =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            _driver: driver,
            axe,
            shots,
        }
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Waits (a click's navigation finishing) until the page's path starts with `prefix`.
    async fn arrives(&self, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let path = self.path().await;
            if path.starts_with(prefix) {
                return;
            }
            assert!(Instant::now() < deadline, "at {path}, not {prefix}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// The secret a page shows once, when it has loaded.
    async fn shown_secret(&self) -> String {
        self.eventually(
            "#secret-label strong",
            "Copy this key now: it is shown once, here, and never again.",
        )
        .await;
        self.client
            .find(Locator::Id("secret"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap()
    }

    /// Submits the form whose action ends with `action`.
    async fn submit_form(&self, action: &str) {
        self.client
            .find(Locator::XPath(&format!(
                "//form[substring(@action, string-length(@action) - {}) = '{action}']//button[@type='submit']",
                action.len() - 1
            )))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Waits (the form's answer loading) until the element at `css` reads `text`.
    async fn eventually(&self, css: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.ok(),
                Err(_) => None,
            };
            if found.as_deref() == Some(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} reads {found:?}, not {text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs axe-core on the page; fails on any serious or critical violation. Saves a
    /// screenshot as `name`.png.
    async fn check(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        self.client.execute(&self.axe, vec![]).await.unwrap();
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document).then(
                   (r) => done(r.violations
                     .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                     .map((v) => v.id + ': ' + v.help + ' (' + v.nodes.length + ')')),
                   (e) => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(found, json!([]), "{name}: accessibility violations");
    }
}

fn which(program: &str) -> String {
    if program.contains('/') {
        return program.to_owned();
    }
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|path| path.is_file())
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| panic!("`{program}` is not on PATH (install the chromium package)"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_operator_runs_a_key_through_the_console_in_a_real_browser() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let browser = Browser::start().await;
    let client = &browser.client;

    // Not signed in: the console sends the browser to sign in.
    client.goto(&server.url("/ui/keys")).await.unwrap();
    assert_eq!(browser.path().await, "/ui/sign-in");
    browser.check("sign-in").await;
    // The keyboard first reaches the link past the header, which takes focus to the content.
    client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    let focused = client.active_element().await.unwrap();
    assert_eq!(
        focused.attr("class").await.unwrap().as_deref(),
        Some("skip")
    );
    focused.send_keys("\u{E007}").await.unwrap();
    let on_main = client
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(on_main, json!("main"));
    browser.fill("#token", &server.owner_token).await;
    browser.click("form.card button[type=submit]").await;
    browser.arrives("/ui/keys").await;
    browser.check("keys-empty").await;

    // A key named like a script: created, its secret shown once, the name never run.
    browser.click("a.button[href='/ui/keys/new']").await;
    browser.arrives("/ui/keys/new").await;
    browser.check("key-new").await;
    browser
        .fill("#name", "<img src=x onerror=\"window.pwned=1\">")
        .await;
    browser.fill("#scopes", "models:chat").await;
    browser.click("form.card button[type=submit]").await;
    let secret = browser.shown_secret().await;
    assert!(secret.starts_with("kg_live_"), "{secret}");
    // The console's script ran (it shows the copy button), and the name's did not.
    let copy = client.find(Locator::Css("button.copy")).await.unwrap();
    assert!(copy.is_displayed().await.unwrap(), "the script did not run");
    let pwned = client
        .execute("return window.pwned === undefined", vec![])
        .await;
    assert_eq!(pwned.unwrap(), json!(true));
    browser.check("key-secret").await;
    let verdict = server
        .api()
        .verify(&secret, Some("models:chat"), None)
        .await;
    assert_eq!(verdict["valid"], true);

    // On to the key's page: the secret is not there; suspend it with a reason.
    client
        .find(Locator::LinkText("Done: go to the key"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.arrives("/ui/keys/key_").await;
    assert!(!client.source().await.unwrap().contains(&secret[8..]));
    browser.check("key").await;
    browser
        .fill("#suspend-reason", "rotating the team's keys")
        .await;
    browser.submit_form("/suspend").await;
    browser.eventually(".facts .status", "suspended").await;
    assert_eq!(
        server.api().verify(&secret, None, None).await["code"],
        "key_suspended"
    );
    browser.check("key-suspended").await;
    let key_page = client.current_url().await.unwrap();
    // Resumed, then rotated without grace: the new secret once, the old one refused.
    browser.fill("#resume-reason", "back in use").await;
    browser.submit_form("/resume").await;
    browser.eventually(".facts .status", "active").await;
    browser.fill("#grace", "0").await;
    browser.submit_form("/rotate").await;
    let rotated = browser.shown_secret().await;
    assert_ne!(rotated, secret);
    let api = server.api();
    assert_eq!(api.verify(&rotated, None, None).await["valid"], true);
    assert_eq!(api.verify(&secret, None, None).await["code"], "key_rotated");
    // Revoked with a reason: refused, and no action is left but the facts.
    client.goto(key_page.as_str()).await.unwrap();
    browser.fill("#revoke-reason", "the project ended").await;
    browser.submit_form("/revoke").await;
    browser.eventually(".facts .status", "revoked").await;
    assert_eq!(
        api.verify(&rotated, None, None).await["code"],
        "key_revoked"
    );
    assert!(!client.source().await.unwrap().contains("/revoke\""));

    // A secret put through the write-only field: its page shows versions, never the value.
    client.goto(&server.url("/ui/secrets")).await.unwrap();
    browser.check("secrets-empty").await;
    let value = "sk-browser-secret-0123456789";
    browser.fill("#name", "openai").await;
    browser.fill("#value", value).await;
    browser.click("form.card button[type=submit]").await;
    browser.arrives("/ui/secrets/sec_").await;
    browser.eventually("h1", "openai").await;
    assert!(!client.source().await.unwrap().contains(value));
    browser.check("secret").await;
    // Rotated: version 2 is current, and no page holds either value.
    let second = "sk-browser-secret-second-9876543210";
    browser.fill("#new-value", second).await;
    browser.fill("#grace", "60").await;
    browser.submit_form("/rotate").await;
    browser.eventually(".notice", "Version 2 is current.").await;
    let html = client.source().await.unwrap();
    assert!(!html.contains(value) && !html.contains(second));
    client.goto(&server.url("/ui/audit")).await.unwrap();
    browser.check("audit").await;
    assert!(client.source().await.unwrap().contains("secret.put"));
    for (path, name) in [
        ("/ui", "overview"),
        ("/ui/usage", "usage"),
        ("/ui/anomalies", "anomalies"),
        ("/ui/projects", "projects"),
        ("/ui/tokens", "tokens"),
        ("/ui/model-groups", "model-groups"),
    ] {
        client.goto(&server.url(path)).await.unwrap();
        browser.check(name).await;
    }

    // Signing out ends the session: the keys page sends the browser to sign in again.
    client
        .find(Locator::Css("form.who button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.arrives("/ui/sign-in").await;
    client.goto(&server.url("/ui/keys")).await.unwrap();
    assert_eq!(browser.path().await, "/ui/sign-in");
    client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_in_a_real_browser() {
    let provider =
        keygate_testkit::OidcProvider::start("keygate-console", "client-secret-0123456789")
            .await
            .unwrap();
    let server = super::sso::sso_server(Db::Sqlite, &provider).await;
    provider.sign_in_as(Some(super::sso::user("ada", &["keygate-admins"])));
    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/ui/sign-in")).await.unwrap();
    client
        .find(Locator::LinkText("Sign in with single sign-on"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // To the provider and back, through real redirects and the flow cookie.
    browser.arrives("/ui/keys").await;
    browser
        .eventually(".who span", "ada@example.com (admin)")
        .await;
    browser.check("keys-sso").await;
    assert_eq!(provider.issued(), 1);
    client.clone().close().await.unwrap();
}
