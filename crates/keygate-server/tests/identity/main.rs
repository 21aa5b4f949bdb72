//! Identity beyond static keys, over real sockets: access tokens from the token endpoint,
//! accepted wherever keys are, checked against the published keys; the signing keys' turnover.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

mod federation;
mod tls;
mod tokens;
mod turnover;

use keygate_testkit::{Api, Reply};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// `client_credentials` with the key's id and the key in HTTP Basic, and more fields.
async fn client_credentials(api: &Api, id: &str, key: &str, fields: &[(&str, &str)]) -> Reply {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(fields);
    api.post("/oauth/token")
        .basic(id, key)
        .form(&form)
        .send()
        .await
}

/// A token exchange of `subject` (a key or a token).
async fn exchange(api: &Api, subject: &str, fields: &[(&str, &str)]) -> Reply {
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS_TOKEN),
    ];
    form.extend_from_slice(fields);
    api.post("/oauth/token").form(&form).send().await
}

fn access_token(reply: &Reply) -> String {
    reply.body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {}", reply.text))
        .to_owned()
}

/// The claims of a token, read without checking it (the tests check it elsewhere).
fn claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn header(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
