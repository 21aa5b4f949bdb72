//! The token endpoint's operation (RFC 6749 §4.4 client credentials, RFC 8693 token
//! exchange): a keygate key, or a token, becomes a short-lived access token whose scopes are a
//! subset of what it holds, never more.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keygate_core::{KeyRejection, Timestamp};
use keygate_identity::{AccessClaims, Audience, Confirmation, scopes};
use secrecy::{ExposeSecret, SecretString};

use crate::ServiceError;
use crate::cache::CachedKey;
use crate::service::{ClientCertificate, Keygate, VerifyOutcome, VerifyQuery};

pub(crate) const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const CLIENT_CREDENTIALS: &str = "client_credentials";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// Longest audience, and most bytes of a form field.
const MAX_AUDIENCE: usize = 256;
const MAX_FIELD: usize = keygate_identity::MAX_TOKEN_BYTES;

/// How the client authenticated (RFC 6749 §2.3.1): HTTP Basic with the key's id and the key,
/// the key as a bearer credential, or `client_id` and `client_secret` in the form.
pub enum ClientAuth {
    None,
    Basic { id: String, secret: SecretString },
    Bearer(SecretString),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Basic { .. } => "Basic",
            Self::Bearer(_) => "Bearer",
        })
    }
}

impl ClientAuth {
    /// Reads an `Authorization` header's value.
    pub fn from_header(value: Option<&str>) -> Result<Self, OAuthError> {
        let Some(value) = value else {
            return Ok(Self::None);
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            return Ok(Self::Bearer(SecretString::from(rest)));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let bad =
                || OAuthError::InvalidClient("the Basic credentials are not well-formed".into());
            let decoded = zeroize::Zeroizing::new(STANDARD.decode(rest).map_err(|_| bad())?);
            let text = std::str::from_utf8(&decoded).map_err(|_| bad())?;
            let (id, secret) = text.split_once(':').ok_or_else(bad)?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded first.
            let decode = |part: &str| {
                url::form_urlencoded::parse(format!("x={part}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            return Ok(Self::Basic {
                id: decode(id),
                secret: SecretString::from(decode(secret)),
            });
        }
        Err(OAuthError::InvalidClient(
            "authenticate with HTTP Basic (key id and key) or a bearer key".into(),
        ))
    }
}

/// A token request, read from its form (RFC 6749 §3.2: each parameter at most once).
#[derive(Debug)]
pub struct TokenRequest {
    pub grant_type: String,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub subject_token: Option<SecretString>,
    pub subject_token_type: Option<String>,
    pub requested_token_type: Option<String>,
    pub client: ClientAuth,
    /// The client's address, checked against a key's allow-list.
    pub ip: Option<IpAddr>,
    /// The connection's verified client certificate: the token is bound to it, and it may
    /// authenticate the client on its own (RFC 8705 §2).
    pub certificate: Option<ClientCertificate>,
}

impl TokenRequest {
    /// Reads the form body and the `Authorization` header.
    pub fn read(
        body: &[u8],
        authorization: Option<&str>,
        ip: Option<IpAddr>,
        certificate: Option<ClientCertificate>,
    ) -> Result<Self, OAuthError> {
        let mut client = ClientAuth::from_header(authorization)?;
        let mut fields: std::collections::BTreeMap<String, zeroize::Zeroizing<String>> =
            std::collections::BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if value.len() > MAX_FIELD {
                return Err(OAuthError::InvalidRequest(format!("`{name}` is too long")));
            }
            let name = name.into_owned();
            if fields.contains_key(&name) {
                return Err(OAuthError::InvalidRequest(format!(
                    "`{name}` is given twice"
                )));
            }
            fields.insert(name, zeroize::Zeroizing::new(value.into_owned()));
        }
        let mut take = |name: &str| fields.remove(name).map(|v| v.to_string());
        let grant_type = take("grant_type")
            .ok_or_else(|| OAuthError::InvalidRequest("`grant_type` is required".into()))?;
        let (client_id, client_secret) = (take("client_id"), take("client_secret"));
        if let Some(secret) = client_secret {
            if !matches!(client, ClientAuth::None) {
                return Err(OAuthError::InvalidRequest(
                    "authenticate one way only: a header or the form".into(),
                ));
            }
            client = ClientAuth::Basic {
                id: client_id.unwrap_or_default(),
                secret: SecretString::from(secret),
            };
        }
        if take("actor_token").is_some() {
            return Err(OAuthError::InvalidRequest(
                "`actor_token` (delegation) is not supported".into(),
            ));
        }
        let audience = match (take("audience"), take("resource")) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::InvalidRequest(
                    "give `audience` or `resource`, not both".into(),
                ));
            }
            (one, other) => one.or(other),
        };
        Ok(Self {
            grant_type,
            scope: take("scope"),
            audience,
            subject_token: take("subject_token").map(SecretString::from),
            subject_token_type: take("subject_token_type"),
            requested_token_type: take("requested_token_type"),
            client,
            ip,
            certificate,
        })
    }
}

/// An issued token (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: SecretString,
    pub expires_in: u64,
    pub scope: String,
    /// Set for a token exchange.
    pub issued_token_type: Option<&'static str>,
}

/// A refused token request, in RFC 6749 §5.2's terms.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidClient(String),
    /// The subject token (or key) is not valid; the rejection says why. RFC 8693 §2.2.2
    /// answers it as `invalid_request`.
    #[error("{1}")]
    InvalidSubject(Option<KeyRejection>, String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("the grant type is not supported: use client_credentials or token exchange")]
    UnsupportedGrantType,
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    InvalidTarget(String),
    #[error("tokens cannot be issued right now; retry shortly")]
    Unavailable,
}

impl OAuthError {
    /// RFC 6749's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient(_) => "invalid_client",
            Self::InvalidSubject(..) => "invalid_request",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::Unavailable => "temporarily_unavailable",
        }
    }

    /// Whether a credential was presented and refused (counted against the source).
    pub fn failed_authentication(&self) -> bool {
        matches!(self, Self::InvalidClient(_) | Self::InvalidSubject(..))
    }
}

impl From<ServiceError> for OAuthError {
    fn from(err: ServiceError) -> Self {
        tracing::error!(error = %err, "a token could not be issued");
        Self::Unavailable
    }
}

/// The credential a token is made from, with what it holds.
struct Subject {
    key: Arc<CachedKey>,
    /// A token's own expiry, which the new token may not outlive.
    expires_at: Option<Timestamp>,
}

impl Keygate {
    /// Serves a token request.
    pub async fn issue_token(&self, request: TokenRequest) -> Result<IssuedToken, OAuthError> {
        let (subject, exchange) = match request.grant_type.as_str() {
            CLIENT_CREDENTIALS => (self.client_credentials(&request).await?, false),
            TOKEN_EXCHANGE => (self.subject_token(&request).await?, true),
            _ => return Err(OAuthError::UnsupportedGrantType),
        };
        if let Some(wanted) = &request.requested_token_type
            && !matches!(wanted.as_str(), ACCESS_TOKEN_TYPE | JWT_TYPE)
        {
            return Err(OAuthError::InvalidRequest(
                "keygate issues access tokens (JWTs) only".into(),
            ));
        }
        let asked = request
            .scope
            .as_deref()
            .map(scopes::decode)
            .transpose()
            .map_err(|err| OAuthError::InvalidScope(err.to_string()))?;
        let granted = scopes::narrow(&subject.key.record.scopes, asked.as_deref())
            .map_err(|err| OAuthError::InvalidScope(err.to_string()))?;
        let scope =
            scopes::encode(&granted).map_err(|err| OAuthError::InvalidScope(err.to_string()))?;
        let names = self.identity.names();
        let audience = match request.audience.as_deref() {
            None => names.audience.to_string(),
            Some(aud)
                if aud.is_empty()
                    || aud.len() > MAX_AUDIENCE
                    || aud.chars().any(char::is_control) =>
            {
                return Err(OAuthError::InvalidTarget(
                    "the audience is 1 to 256 printable characters".into(),
                ));
            }
            Some(aud) => aud.to_owned(),
        };
        let now = self.clock.now();
        let settings = self.identity.settings();
        let mut expires_at = now.saturating_add(settings.lifetime);
        for limit in [subject.expires_at, subject.key.record.expires_at]
            .into_iter()
            .flatten()
        {
            expires_at = expires_at.min(limit);
        }
        let exp = expires_at.as_millis().div_euclid(1000);
        let iat = now.as_millis().div_euclid(1000);
        if exp <= iat {
            return Err(OAuthError::InvalidSubject(
                None,
                "the credential expires too soon to be exchanged".into(),
            ));
        }
        let key_id = subject.key.record.id.to_string();
        let claims = AccessClaims {
            iss: names.issuer.to_string(),
            sub: key_id.clone(),
            aud: Audience::One(audience),
            exp,
            iat,
            nbf: Some(iat),
            jti: uuid::Uuid::now_v7().to_string(),
            scope: scope.clone(),
            client_id: Some(key_id),
            federated: subject.key.made_by.clone(),
            cnf: request.certificate.as_ref().map(|c| Confirmation {
                x5t_s256: c.thumbprint.clone(),
            }),
        };
        let ring = self.identity.ring();
        let signer = ring.signer(now).ok_or(OAuthError::Unavailable)?;
        let token = signer.sign(&claims).map_err(|_| OAuthError::Unavailable)?;
        if subject.key.is_stored() {
            self.last_used.record(&subject.key.record.id, now);
        }
        Ok(IssuedToken {
            access_token: SecretString::from(token),
            expires_in: u64::try_from(exp - iat).unwrap_or(0),
            scope,
            issued_token_type: exchange.then_some(ACCESS_TOKEN_TYPE),
        })
    }

    /// RFC 6749 §4.4: the client is a keygate key.
    async fn client_credentials(&self, request: &TokenRequest) -> Result<Subject, OAuthError> {
        let (claimed_id, key) = match (&request.client, &request.certificate) {
            (ClientAuth::None, Some(certificate)) => {
                return self.certificate_subject(certificate).await;
            }
            (ClientAuth::None, None) => {
                return Err(OAuthError::InvalidClient(
                    "authenticate with HTTP Basic (key id and key), a bearer key or a client \
                     certificate"
                        .into(),
                ));
            }
            (ClientAuth::Basic { id, secret }, _) => (Some(id.as_str()), secret),
            (ClientAuth::Bearer(secret), _) => (None, secret),
        };
        if keygate_identity::looks_like_jwt(key.expose_secret()) {
            return Err(OAuthError::InvalidClient(
                "a client authenticates with a keygate key; exchange a token with grant_type \
                 token-exchange"
                    .into(),
            ));
        }
        let subject = self
            .credential(key.expose_secret(), request)
            .await
            .map_err(|refused| match refused {
                OAuthError::InvalidSubject(_, message) => OAuthError::InvalidClient(message),
                other => other,
            })?;
        if claimed_id.is_some_and(|id| !id.is_empty() && id != subject.key.record.id.as_str()) {
            return Err(OAuthError::InvalidClient(
                "the client id is not the key's id".into(),
            ));
        }
        Ok(subject)
    }

    /// RFC 8705 §2: the client is its certificate's principal.
    async fn certificate_subject(
        &self,
        certificate: &ClientCertificate,
    ) -> Result<Subject, OAuthError> {
        match self.verify_certificate(certificate).await? {
            VerifyOutcome::Valid(key) => Ok(Subject {
                key,
                expires_at: None,
            }),
            VerifyOutcome::Invalid(rejection, _) => {
                Err(OAuthError::InvalidClient(rejection.to_string()))
            }
        }
    }

    /// RFC 8693: the subject token is a keygate key, a keygate token or a trusted issuer's.
    async fn subject_token(&self, request: &TokenRequest) -> Result<Subject, OAuthError> {
        // A client that authenticates anyway must be a valid one (RFC 8693 §2.1).
        if !matches!(request.client, ClientAuth::None) {
            self.client_credentials(request).await?;
        }
        let token = request.subject_token.as_ref().ok_or_else(|| {
            OAuthError::InvalidRequest("`subject_token` is required for a token exchange".into())
        })?;
        match request.subject_token_type.as_deref() {
            Some(ACCESS_TOKEN_TYPE | JWT_TYPE | ID_TOKEN_TYPE) => {}
            Some(_) => {
                return Err(OAuthError::InvalidRequest(
                    "`subject_token_type` is an access token, a JWT or an ID token".into(),
                ));
            }
            None => {
                return Err(OAuthError::InvalidRequest(
                    "`subject_token_type` is required for a token exchange".into(),
                ));
            }
        }
        self.credential(token.expose_secret(), request).await
    }

    /// Verifies a key or token as the gateway would (from the client's address, with the
    /// connection's certificate).
    async fn credential(&self, text: &str, request: &TokenRequest) -> Result<Subject, OAuthError> {
        let outcome = self
            .verify(VerifyQuery {
                key: text,
                ip: request.ip,
                certificate: request.certificate.as_ref().map(|c| c.thumbprint.as_str()),
                ..VerifyQuery::default()
            })
            .await?;
        let key = match outcome {
            VerifyOutcome::Valid(key) => key,
            VerifyOutcome::Invalid(rejection, _) => {
                return Err(OAuthError::InvalidSubject(
                    Some(rejection),
                    rejection.to_string(),
                ));
            }
        };
        if key.record.is_publishable() {
            return Err(OAuthError::UnauthorizedClient(
                "a publishable key cannot have tokens: it is public".into(),
            ));
        }
        Ok(Subject {
            expires_at: key.token.as_ref().map(|t| t.expires_at),
            key,
        })
    }
}
