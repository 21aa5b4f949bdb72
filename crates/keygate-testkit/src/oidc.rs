//! An OpenID Connect provider for tests, on `127.0.0.1:0`, speaking the protocol as real
//! providers do: discovery (`/.well-known/openid-configuration`), a JWKS, the authorization
//! endpoint (which signs in the user the test chose, at once, or refuses when there is none)
//! and the token endpoint (client authentication, the code once, the redirect URI, the PKCE
//! S256 verifier), issuing RS256 ID tokens with the nonce and the user's extra claims. Its RSA
//! key is made by `openssl` for each provider.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRsaPrivateSigningKey,
};
use openidconnect::{
    AdditionalClaims, Audience, EndUserEmail, IdToken, IdTokenClaims, IssuerUrl, JsonWebKeyId,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, PrivateSigningKey, StandardClaims,
    SubjectIdentifier,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Who the provider signs in next, and the claims it gives them besides the standard ones.
#[derive(Debug, Clone)]
pub struct OidcUser {
    pub subject: String,
    pub email: String,
    /// Extra claims, such as `{"groups": ["keygate-admins"]}`.
    pub claims: Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Extra {
    #[serde(flatten)]
    claims: serde_json::Map<String, Value>,
}

impl AdditionalClaims for Extra {}

struct Pending {
    user: OidcUser,
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
}

struct Provider {
    issuer: String,
    client_id: String,
    client_secret: String,
    key: CoreRsaPrivateSigningKey,
    user: Mutex<Option<OidcUser>>,
    codes: Mutex<HashMap<String, Pending>>,
    issued: AtomicUsize,
}

/// A running provider; dropping it stops it.
pub struct OidcProvider {
    pub issuer: String,
    provider: Arc<Provider>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn rsa_pem() -> anyhow::Result<String> {
    let out = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .stderr(std::process::Stdio::null())
        .output()
        .context("openssl makes the provider's RSA key (install openssl)")?;
    anyhow::ensure!(out.status.success(), "openssl genrsa failed");
    Ok(String::from_utf8(out.stdout)?)
}

impl OidcProvider {
    /// Starts a provider that knows one client.
    pub async fn start(client_id: &str, client_secret: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let key = CoreRsaPrivateSigningKey::from_pem(
            &rsa_pem()?,
            Some(JsonWebKeyId::new("test-key-1".to_owned())),
        )
        .map_err(|e| anyhow::anyhow!("the RSA key: {e}"))?;
        let provider = Arc::new(Provider {
            issuer: issuer.clone(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            key,
            user: Mutex::new(None),
            codes: Mutex::new(HashMap::new()),
            issued: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(provider.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            issuer,
            provider,
            task,
        })
    }

    /// Signs `user` in at the next authorization request (and every one after); `None`
    /// refuses them (`access_denied`).
    pub fn sign_in_as(&self, user: Option<OidcUser>) {
        *self
            .provider
            .user
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = user;
    }

    /// A workload identity token (as GitHub Actions, GitLab CI or Kubernetes issue them): the
    /// provider's issuer as `iss`, then `claims` as given, signed RS256 with the key its JWKS
    /// publishes.
    pub fn mint(&self, claims: &Value) -> String {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims = claims.clone();
        claims["iss"] = Value::String(self.issuer.clone());
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "test-key-1"});
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .provider
            .key
            .sign(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                message.as_bytes(),
            )
            .unwrap_or_default();
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// ID tokens issued so far.
    pub fn issued(&self) -> usize {
        self.provider.issued.load(Ordering::Relaxed)
    }
}

async fn discovery(State(p): State<Arc<Provider>>) -> Json<Value> {
    let issuer = &p.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "email", "profile"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "email", "nonce"],
    }))
}

async fn jwks(State(p): State<Arc<Provider>>) -> Json<CoreJsonWebKeySet> {
    Json(CoreJsonWebKeySet::new(vec![p.key.as_verification_key()]))
}

async fn authorize(
    State(p): State<Arc<Provider>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| q.get(name).cloned().unwrap_or_default();
    let redirect_uri = field("redirect_uri");
    if field("client_id") != p.client_id || redirect_uri.is_empty() {
        return (StatusCode::BAD_REQUEST, "unknown client").into_response();
    }
    let state = field("state");
    let back = |query: String| Redirect::to(&format!("{redirect_uri}?{query}")).into_response();
    let encode = |pairs: &[(&str, &str)]| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    if field("response_type") != "code"
        || field("code_challenge_method") != "S256"
        || field("code_challenge").is_empty()
        || !field("scope").split(' ').any(|s| s == "openid")
    {
        return back(encode(&[("error", "invalid_request"), ("state", &state)]));
    }
    let user = p
        .user
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let Some(user) = user else {
        return back(encode(&[("error", "access_denied"), ("state", &state)]));
    };
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    p.codes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            code.clone(),
            Pending {
                user,
                nonce: q.get("nonce").cloned(),
                challenge: field("code_challenge"),
                redirect_uri: redirect_uri.clone(),
            },
        );
    back(encode(&[("code", &code), ("state", &state)]))
}

fn token_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

/// The client's credentials, from HTTP Basic (each part form-encoded) or the form.
fn client_credentials(headers: &HeaderMap, form: &HashMap<String, String>) -> (String, String) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let decode = |text: &str| {
        url::form_urlencoded::parse(format!("x={text}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    match basic.as_deref().and_then(|pair| pair.split_once(':')) {
        Some((id, secret)) => (decode(id), decode(secret)),
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    }
}

async fn token(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (id, secret) = client_credentials(&headers, &form);
    if id != p.client_id || secret != p.client_secret {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return token_error("unsupported_grant_type");
    }
    let code = form.get("code").cloned().unwrap_or_default();
    // A code is good once.
    let Some(pending) = p
        .codes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&code)
    else {
        return token_error("invalid_grant");
    };
    if form.get("redirect_uri") != Some(&pending.redirect_uri) {
        return token_error("invalid_grant");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let expected = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier));
    if expected.as_str() != pending.challenge {
        return token_error("invalid_grant");
    }
    let now = chrono::Utc::now();
    let extra = Extra {
        claims: pending.user.claims.as_object().cloned().unwrap_or_default(),
    };
    let Ok(issuer) = IssuerUrl::new(p.issuer.clone()) else {
        return token_error("server_error");
    };
    let claims = IdTokenClaims::<Extra, CoreGenderClaim>::new(
        issuer,
        vec![Audience::new(p.client_id.clone())],
        now + chrono::Duration::minutes(5),
        now,
        StandardClaims::new(SubjectIdentifier::new(pending.user.subject.clone()))
            .set_email(Some(EndUserEmail::new(pending.user.email.clone()))),
        extra,
    )
    .set_nonce(pending.nonce.map(Nonce::new));
    let signed = IdToken::<
        Extra,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >::new(
        claims,
        &p.key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    );
    let Ok(id_token) = signed else {
        return token_error("server_error");
    };
    p.issued.fetch_add(1, Ordering::Relaxed);
    Json(json!({
        "access_token": format!("at-{}", uuid::Uuid::new_v4().simple()),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token.to_string(),
    }))
    .into_response()
}
