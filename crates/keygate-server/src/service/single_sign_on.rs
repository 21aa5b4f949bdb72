//! Single sign-on to the console through any OpenID Connect provider (`openidconnect`): the
//! authorization code flow with PKCE, a state and a nonce. The provider's ID token is checked
//! (signature against its published keys, issuer, audience, expiry, nonce); its claims are
//! mapped to a role — and perhaps a project — by the configured rules, the first that matches;
//! a user no rule matches is refused. The session that follows is a console session like a
//! token's, named `oidc:<issuer>#<subject>`.
//!
//! What the flow must remember between the redirect to the provider and the way back (state,
//! nonce, PKCE verifier) travels in a short-lived HttpOnly cookie of the browser that started
//! it, so any node can finish it.

use std::time::Duration;

use keygate_core::{AuditAction, Binding, OrgId, Principal, Role};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::console_sessions::{ConsoleRequest, SessionPolicy, SignedIn, new_session};
use super::{Actor, Caller, Keygate};
use crate::ServiceError;

/// A rule mapping a claim to a role: a user whose `claim` is `value` (or, for a list, holds it)
/// gets `role`, over `project` when one is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoRule {
    pub claim: String,
    pub value: String,
    pub role: Role,
    /// A project's name or id; `None` for the whole organisation.
    pub project: Option<String>,
}

/// The provider and what its users become.
#[derive(Clone)]
pub struct SsoSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// Where the provider sends the browser back: keygate's public URL + `/ui/sso/callback`.
    pub redirect_url: String,
    /// Asked for besides `openid`.
    pub scopes: Vec<String>,
    /// Checked in order; the first that matches decides.
    pub rules: Vec<SsoRule>,
    /// The organisation users sign in to; `None` for the only one there is.
    pub org: Option<OrgId>,
}

impl std::fmt::Debug for SsoSettings {
    /// Leaves the client secret out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// Every claim of the ID token besides the standard ones, for the rules.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

type SsoTokenResponse = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type SsoClient = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    SsoTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How long a sign-in may take at the provider.
pub const SSO_FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// Largest answer read from the provider.
const MAX_ANSWER: usize = 256 * 1024;

/// The start of a sign-in: where to send the browser, and what it must bring back.
pub struct SsoStart {
    pub url: String,
    /// The flow cookie's value: state, nonce and PKCE verifier.
    pub cookie: String,
}

impl std::fmt::Debug for SsoStart {
    /// Leaves the flow's state, nonce and PKCE verifier out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoStart").finish_non_exhaustive()
    }
}

/// Why a sign-in through the provider did not end in a session (shown to the user).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsoRefusal {
    #[error("the sign-in expired or was started in another browser: start again")]
    State,
    #[error("the identity provider refused: {0}")]
    Provider(String),
    #[error("the identity provider's answer could not be checked: {0}")]
    Token(String),
    #[error("your account has no role in keygate: ask an administrator")]
    NoRole,
}

/// The provider could not be reached or understood.
#[derive(Debug, thiserror::Error)]
#[error("the identity provider could not be used: {0}")]
pub struct SsoUnavailable(String);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpFailure(String);

/// The HTTP client the OpenID Connect library calls: keygate's egress client (no redirects
/// followed, bounded answers, a deadline).
struct SsoHttp(keygate_llm::egress::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for SsoHttp {
    type Error = HttpFailure;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<openidconnect::HttpResponse, HttpFailure>> + Send + 'c>,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        use keygate_llm::egress::{Body, Request};
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut out = Request::new(parts.method, parts.uri, Body::whole(body.into()));
            for (name, value) in &parts.headers {
                out.header(name.clone(), value.clone());
            }
            let answer = client
                .send(out)
                .await
                .map_err(|e| HttpFailure(e.to_string()))?;
            let status = answer.status;
            let headers = answer.headers.clone();
            let body = answer
                .read(MAX_ANSWER)
                .await
                .map_err(|_| HttpFailure("the answer was too large or broke off".to_owned()))?;
            let mut response = openidconnect::HttpResponse::new(body.to_vec());
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            Ok(response)
        })
    }
}

impl Keygate {
    fn sso_http(&self) -> SsoHttp {
        SsoHttp(self.upstream.clone())
    }

    async fn sso_client(&self, sso: &SsoSettings) -> Result<SsoClient, SsoUnavailable> {
        let issuer =
            IssuerUrl::new(sso.issuer.clone()).map_err(|e| SsoUnavailable(e.to_string()))?;
        let http = self.sso_http();
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| SsoUnavailable(e.to_string()))?;
        let redirect = RedirectUrl::new(sso.redirect_url.clone())
            .map_err(|e| SsoUnavailable(e.to_string()))?;
        Ok(SsoClient::from_provider_metadata(
            metadata,
            ClientId::new(sso.client_id.clone()),
            sso.client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose_secret().to_owned())),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: the provider's authorization URL, with a fresh state, nonce and
    /// PKCE challenge.
    pub async fn sso_start(&self, sso: &SsoSettings) -> Result<SsoStart, ServiceError> {
        let client = self.sso_client(sso).await.map_err(unavailable)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &sso.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(SsoStart {
            url: url.to_string(),
            cookie: format!(
                "{}.{}.{}",
                state.secret(),
                nonce.secret(),
                verifier.secret()
            ),
        })
    }

    /// Finishes a sign-in: checks the state against the flow cookie, exchanges the code (with
    /// the PKCE verifier), checks the ID token, maps its claims to a role and starts a
    /// session.
    pub async fn sso_finish(
        &self,
        sso: &SsoSettings,
        code: &str,
        state: &str,
        flow_cookie: &str,
        policy: SessionPolicy,
        request: ConsoleRequest,
    ) -> Result<Result<SignedIn, SsoRefusal>, ServiceError> {
        let mut parts = flow_cookie.splitn(3, '.');
        let (Some(expected), Some(nonce), Some(verifier)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Ok(Err(SsoRefusal::State));
        };
        if !constant_time_eq(expected, state) {
            return Ok(Err(SsoRefusal::State));
        }
        let client = self.sso_client(sso).await.map_err(unavailable)?;
        let http = self.sso_http();
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| unavailable(SsoUnavailable(e.to_string())))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        let answer = match exchange.request_async(&http).await {
            Ok(answer) => answer,
            Err(err) => return Ok(Err(SsoRefusal::Provider(err.to_string()))),
        };
        let Some(id_token) = answer.id_token() else {
            return Ok(Err(SsoRefusal::Token("no ID token".to_owned())));
        };
        let claims =
            match id_token.claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned())) {
                Ok(claims) => claims,
                Err(err) => return Ok(Err(SsoRefusal::Token(err.to_string()))),
            };
        let subject = format!(
            "oidc:{}#{}",
            claims.issuer().as_str(),
            claims.subject().as_str()
        );
        let name = claims
            .email()
            .map(|e| e.as_str().to_owned())
            .or_else(|| claims.preferred_username().map(|u| u.as_str().to_owned()))
            .unwrap_or_else(|| claims.subject().as_str().to_owned());
        let Some(rule) = sso
            .rules
            .iter()
            .find(|rule| holds(&claims.additional_claims().claims, &rule.claim, &rule.value))
        else {
            return Ok(Err(SsoRefusal::NoRole));
        };
        let org = match &sso.org {
            Some(org) => org.clone(),
            None => match self.store.org_ids().await?.as_slice() {
                [only] => only.clone(),
                _ => return Ok(Err(SsoRefusal::NoRole)),
            },
        };
        let binding = match &rule.project {
            None => Binding::Org(org),
            Some(project) => {
                let found = self
                    .resolve_project(&Caller::local(org.clone()), project)
                    .await?;
                Binding::Project {
                    org,
                    project: found.id,
                }
            }
        };
        let principal = Principal {
            actor: subject.clone(),
            role: rule.role,
            binding,
        };
        let caller = Caller {
            actor: Actor::Admin(principal.clone()),
            client_ip: request.client_ip.clone(),
            request_id: request.request_id.clone(),
        };
        let signed = new_session(&principal, subject, None, name, policy, self.clock.now())?;
        let mut audit = caller.audit(
            AuditAction::ConsoleSignIn,
            signed.session.project_id.as_ref(),
        );
        audit.details = serde_json::json!({
            "session": &signed.session.id[..16],
            "expires_at": signed.session.expires_at.to_rfc3339(),
            "single_sign_on": claims.issuer().as_str(),
        });
        self.store
            .create_console_session(&signed.session, &audit)
            .await?;
        Ok(Ok(signed))
    }
}

fn unavailable(err: SsoUnavailable) -> ServiceError {
    ServiceError::SingleSignOn(err.to_string())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether the claim `name` is `value`, or is a list that holds it.
fn holds(claims: &serde_json::Map<String, serde_json::Value>, name: &str, value: &str) -> bool {
    match claims.get(name) {
        Some(serde_json::Value::String(text)) => text == value,
        Some(serde_json::Value::Array(items)) => items.iter().any(|item| item == value),
        Some(serde_json::Value::Bool(flag)) => flag.to_string() == value,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_holds_a_value_as_text_or_in_a_list() {
        let claims = serde_json::json!({
            "groups": ["payments", "keygate-admins"], "dept": "ops", "admin": true,
        });
        let claims = claims.as_object().unwrap();
        assert!(holds(claims, "groups", "keygate-admins"));
        assert!(!holds(claims, "groups", "keygate"));
        assert!(holds(claims, "dept", "ops"));
        assert!(holds(claims, "admin", "true"));
        assert!(!holds(claims, "missing", "ops"));
    }
}
