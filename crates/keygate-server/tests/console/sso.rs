//! Single sign-on through the OpenID Connect provider of `keygate-testkit`, step by step as a
//! browser makes them (each redirect followed by hand): the role and project the rules map
//! the user's claims to, the session that follows, and each way a sign-in is refused — a
//! state that does not match, a user no rule names, the provider saying no, a code replayed.

use std::sync::Arc;

use keygate_core::Role;
use keygate_server::http::{ConsoleSettings, ServerSettings};
use keygate_server::service::{SsoRule, SsoSettings};
use keygate_testkit::{Db, OidcProvider, OidcUser, TestServer};
use serde_json::json;

const CLIENT_ID: &str = "keygate-console";
const CLIENT_SECRET: &str = "client-secret-0123456789";

pub(crate) async fn sso_server(db: Db, provider: &OidcProvider) -> TestServer {
    let issuer = provider.issuer.clone();
    let rule = |value: &str, role, project: Option<&str>| SsoRule {
        claim: "groups".to_owned(),
        value: value.to_owned(),
        role,
        project: project.map(str::to_owned),
    };
    let rules = vec![
        rule("keygate-admins", Role::Admin, None),
        rule("default-readers", Role::Viewer, Some("default")),
    ];
    TestServer::start_at_address(db, move |addr| ServerSettings {
        console: ConsoleSettings {
            sso: Some(Arc::new(SsoSettings {
                issuer,
                client_id: CLIENT_ID.to_owned(),
                client_secret: Some(CLIENT_SECRET.to_owned().into()),
                redirect_url: format!("http://{addr}/ui/sso/callback"),
                scopes: vec!["email".to_owned()],
                rules,
                org: None,
            })),
            ..ConsoleSettings::default()
        },
        ..ServerSettings::default()
    })
    .await
    .unwrap()
}

pub(crate) fn user(subject: &str, groups: &[&str]) -> OidcUser {
    OidcUser {
        subject: subject.to_owned(),
        email: format!("{subject}@example.com"),
        claims: json!({ "groups": groups }),
    }
}

/// One sign-in's steps: keygate's redirect to the provider, the provider's back.
struct Flow {
    http: reqwest::Client,
    /// The flow cookie keygate set.
    flow: String,
    /// Where the provider sent the browser back.
    callback: String,
}

fn cookie(reply: &reqwest::Response, name: &str) -> Option<String> {
    reply
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(str::to_owned))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

fn location(reply: &reqwest::Response) -> String {
    reply.headers()["location"].to_str().unwrap().to_owned()
}

async fn begin(server: &TestServer) -> Flow {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = http.get(server.url("/ui/sso/start")).send().await.unwrap();
    assert_eq!(start.status(), 303);
    let set = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let flow = cookie(&start, "keygate_sso").unwrap();
    let at_provider = http.get(location(&start)).send().await.unwrap();
    assert_eq!(at_provider.status(), 303);
    Flow {
        http,
        flow,
        callback: location(&at_provider),
    }
}

impl Flow {
    /// Comes back to keygate with the flow cookie: the session cookie, if one began, and the
    /// page (for a refusal).
    async fn finish(&self, callback: &str) -> (Option<String>, String) {
        let reply = self
            .http
            .get(callback)
            .header("cookie", format!("keygate_sso={}", self.flow))
            .send()
            .await
            .unwrap();
        let session = cookie(&reply, "keygate_session").filter(|v| !v.is_empty());
        let status = reply.status();
        let page = reply.text().await.unwrap();
        if session.is_some() {
            // A page of keygate's own moves on, so that the Strict cookie goes with it.
            assert_eq!(status, 200);
            assert!(page.contains("url=/ui/keys"), "{page}");
        }
        (session, page)
    }
}

async fn page(server: &TestServer, session: &str, path: &str) -> String {
    reqwest::Client::new()
        .get(server.url(path))
        .header("cookie", format!("keygate_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn a_user_signs_in_through_the_provider_with_the_role_their_claims_give(db: Db) {
    let provider = OidcProvider::start(CLIENT_ID, CLIENT_SECRET).await.unwrap();
    let server = sso_server(db, &provider).await;
    let sign_in = reqwest::get(server.url("/ui/sign-in")).await.unwrap();
    assert!(
        sign_in
            .text()
            .await
            .unwrap()
            .contains("Sign in with single sign-on")
    );

    provider.sign_in_as(Some(user("ada", &["engineering", "keygate-admins"])));
    let flow = begin(&server).await;
    assert!(flow.callback.contains("code=") && flow.callback.contains("state="));
    let (session, _) = flow.finish(&flow.callback).await;
    let session = session.expect("a session");
    assert_eq!(provider.issued(), 1);
    let keys = page(&server, &session, "/ui/keys").await;
    assert!(
        keys.contains("ada@example.com") && keys.contains("(admin)"),
        "{keys}"
    );
    assert!(keys.contains("Create a key"));
    // The same code again: the provider refuses it, and no session begins.
    let (again, refused) = flow.finish(&flow.callback).await;
    assert!(again.is_none());
    assert!(refused.contains("Single sign-on failed"), "{refused}");

    let audit = server
        .api()
        .get("/admin/v1/audit?action=console.sign_in")
        .token(&server.owner_token)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(
        audit["data"][0]["actor"],
        format!("oidc:{}#ada", provider.issuer)
    );

    // A reader of one project: a viewer there, with no control.
    provider.sign_in_as(Some(user("bob", &["default-readers"])));
    let flow = begin(&server).await;
    let (session, _) = flow.finish(&flow.callback).await;
    let keys = page(&server, &session.unwrap(), "/ui/keys").await;
    assert!(keys.contains("(viewer)") && !keys.contains("Create a key"));
}

async fn sign_ins_the_rules_or_the_flow_do_not_allow_are_refused(db: Db) {
    let provider = OidcProvider::start(CLIENT_ID, CLIENT_SECRET).await.unwrap();
    let server = sso_server(db, &provider).await;

    // Nobody's rule: refused, whatever the provider says of them.
    provider.sign_in_as(Some(user("eve", &["marketing"])));
    let flow = begin(&server).await;
    let (session, page) = flow.finish(&flow.callback).await;
    assert!(session.is_none());
    assert!(page.contains("no role in keygate"), "{page}");

    // A state that is not the one this browser started with.
    provider.sign_in_as(Some(user("ada", &["keygate-admins"])));
    let flow = begin(&server).await;
    let forged = flow.callback.replace("state=", "state=x");
    let (session, page) = flow.finish(&forged).await;
    assert!(session.is_none());
    assert!(page.contains("started in another browser"), "{page}");
    // No flow cookie at all (a link sent to someone else).
    let reply = reqwest::get(&flow.callback).await.unwrap();
    assert_eq!(reply.status(), 401);

    // The provider says no.
    provider.sign_in_as(None);
    let flow = begin(&server).await;
    assert!(flow.callback.contains("error=access_denied"));
    let (session, page) = flow.finish(&flow.callback).await;
    assert!(session.is_none());
    assert!(page.contains("access_denied"), "{page}");
    assert_eq!(
        provider.issued(),
        1,
        "only eve's code was exchanged: a forged state never reaches the provider"
    );
}

keygate_testkit::on_both_databases!(
    a_user_signs_in_through_the_provider_with_the_role_their_claims_give,
    sign_ins_the_rules_or_the_flow_do_not_allow_are_refused,
);
