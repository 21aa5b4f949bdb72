//! Request and response bodies of the API, with their OpenAPI schemas.

use std::time::Duration;

use keygate_core::{
    AllowedOrigins, AuditEvent, KeyEnv, KeyId, KeyPatch, KeyRecord, KeyStatus, Metadata, Role,
    Scope, Timestamp, ValidationError,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use crate::service::{AuditReport, CreateKey, CreateToken, KeyQuery};

mod limit_state;
mod limits;
mod projects;
mod secrets;
mod webhooks;

pub use limit_state::LimitStateView;
pub(crate) use limits::parse_limits;
pub use limits::{
    AddCreditsBody, BudgetParam, LimitsParam, PerParam, QuotaParam, RateParam, ThrottleView,
    TokenRateParam, WindowParam,
};
pub use projects::{CreateProjectBody, ProjectList, ProjectView, UpdateProjectBody};
pub use secrets::{
    CheckBody, DueSecretList, DueSecretView, ListSecretsParams, PromoteBody, PutSecretBody,
    RevealBody, RevealedValue, RotateSecretBody, RotationView, SecretList, SecretVersionView,
    SecretView,
};
pub use webhooks::{
    CreateWebhookBody, DeliveriesParams, DeliveryList, DeliveryStateParam, DeliveryView,
    TestEventSent, UpdateWebhookBody, WebhookList, WebhookView, WebhookWithSecret,
};

/// `null` clears a field; an absent field leaves it as it is.
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

fn parse_time(field: &'static str, text: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(text).ok_or_else(|| {
        ValidationError::new(field, "an RFC 3339 time, e.g. 2030-01-31T00:00:00Z").into()
    })
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        ApiError::validation(err.to_string())
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvParam {
    #[default]
    Live,
    Test,
}

impl From<EnvParam> for KeyEnv {
    fn from(env: EnvParam) -> Self {
        match env {
            EnvParam::Live => KeyEnv::Live,
            EnvParam::Test => KeyEnv::Test,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusParam {
    Active,
    Expired,
    Suspended,
    Revoked,
    Deleted,
}

impl From<StatusParam> for KeyStatus {
    fn from(status: StatusParam) -> Self {
        match status {
            StatusParam::Active => KeyStatus::Active,
            StatusParam::Expired => KeyStatus::Expired,
            StatusParam::Suspended => KeyStatus::Suspended,
            StatusParam::Revoked => KeyStatus::Revoked,
            StatusParam::Deleted => KeyStatus::Deleted,
        }
    }
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    /// Project id (`proj_…`) or name.
    pub project: String,
    pub name: String,
    #[serde(default)]
    pub env: EnvParam,
    /// Permission patterns, e.g. `chat:write`, `models:gpt-4o*`. `*` matches anything.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// RFC 3339; the key stops working at this instant.
    pub expires_at: Option<String>,
    /// CIDR blocks or addresses the key may be used from.
    #[serde(default)]
    pub ip_allow: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Rates, a concurrency cap, a quota and budgets; without it, none.
    #[schema(value_type = Option<LimitsParam>)]
    pub limits: Option<serde_json::Value>,
    /// Rotation policy: the key is listed as due this long after its last rotation.
    pub rotate_every_seconds: Option<u64>,
    /// A publishable key, meant to be embedded in a web page or a mobile app: it reaches only
    /// `GET`/`HEAD` on public proxy routes, from its `origins`, and its scopes must each be
    /// `GET /…` or `HEAD /…`. Fixed at creation.
    #[serde(default)]
    pub publishable: bool,
    /// Required for a publishable key, refused for any other: 1-50 origins
    /// (`scheme://host[:port]`), exact or `https://*.example.com` for subdomains.
    pub origins: Option<Vec<String>>,
}

/// A publishable key's origins from `publishable` and `origins`, which only make sense
/// together.
fn publishable_origins(
    publishable: bool,
    origins: Option<Vec<String>>,
) -> Result<Option<AllowedOrigins>, ApiError> {
    match (publishable, origins) {
        (true, Some(origins)) => Ok(Some(AllowedOrigins::parse(&origins)?)),
        (true, None) => Err(ValidationError::new(
            "origins",
            "a publishable key needs the origins it may be used from, \
             e.g. [\"https://app.example.com\"]",
        )
        .into()),
        (false, Some(_)) => Err(ValidationError::new(
            "origins",
            "only a publishable key has origins: add \"publishable\": true",
        )
        .into()),
        (false, None) => Ok(None),
    }
}

impl CreateKeyBody {
    pub fn into_input(self) -> Result<CreateKey, ApiError> {
        Ok(CreateKey {
            project: self.project,
            name: self.name,
            env: self.env.into(),
            scopes: self.scopes,
            expires_at: self
                .expires_at
                .as_deref()
                .map(|t| parse_time("expires_at", t))
                .transpose()?,
            ip_allow: self.ip_allow,
            metadata: self.metadata,
            limits: self
                .limits
                .map(parse_limits)
                .transpose()?
                .unwrap_or_default(),
            rotate_every: self.rotate_every_seconds.map(Duration::from_secs),
            publishable: publishable_origins(self.publishable, self.origins)?,
        })
    }
}

/// A change to a key: absent fields stay, `null` clears `expires_at` and
/// `rotate_every_seconds`; `limits` replaces every limit at once (`{}` or `null` clears them).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBody {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub ip_allow: Option<Vec<String>>,
    /// Replaces every limit at once; `{}` or `null` removes them.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<LimitsParam>)]
    pub limits: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub rotate_every_seconds: Option<Option<u64>>,
    /// Replaces a publishable key's origins (1-50); refused for any other key.
    pub origins: Option<Vec<String>>,
}

impl UpdateKeyBody {
    pub fn into_patch(self) -> Result<KeyPatch, ApiError> {
        Ok(KeyPatch {
            name: self.name,
            scopes: self.scopes.map(|s| Scope::parse_list(&s)).transpose()?,
            expires_at: self
                .expires_at
                .map(|v| v.map(|t| parse_time("expires_at", &t)).transpose())
                .transpose()?,
            metadata: self.metadata.map(Metadata::parse).transpose()?,
            ip_allow: self
                .ip_allow
                .map(|ips| keygate_core::record::parse_ip_allow(&ips))
                .transpose()?,
            limits: self
                .limits
                .map(|v| v.map(parse_limits).transpose())
                .transpose()?
                .map(Option::unwrap_or_default),
            rotate_every: self
                .rotate_every_seconds
                .map(|v| v.map(Duration::from_secs)),
            origins: self
                .origins
                .map(|o| AllowedOrigins::parse(&o))
                .transpose()?,
        })
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the current secret keeps working after the rotation (default 0, at most
    /// 30 days).
    #[serde(default)]
    pub grace_period_seconds: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// Why the key is revoked; kept in the key and the audit log.
    pub reason: String,
}

/// Why a key is suspended or resumed; kept in the audit log (and, for a suspension, in the
/// key until it is resumed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListKeysParams {
    /// Project id or name.
    pub project: Option<String>,
    /// Only keys whose name contains this text, ignoring ASCII case (at most 200 characters).
    pub name: Option<String>,
    pub env: Option<EnvParam>,
    /// Without it, every key that is not deleted.
    pub status: Option<StatusParam>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<u32>,
}

impl From<ListKeysParams> for KeyQuery {
    fn from(p: ListKeysParams) -> Self {
        KeyQuery {
            project: p.project,
            name: p.name.filter(|name| !name.is_empty()),
            env: p.env.map(Into::into),
            status: p.status.map(Into::into),
            cursor: p.cursor,
            limit: p.limit,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DueParams {
    pub project: Option<String>,
    /// Also list keys due within this many seconds (default 0: due now).
    #[serde(default)]
    pub within_seconds: u64,
}

/// A key as the API shows it. The secret is never part of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub project_id: Option<String>,
    pub name: String,
    pub env: EnvParam,
    pub status: StatusParam,
    /// Display form, e.g. `kg_live_AbCd…wXyZ`.
    pub hint: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
    pub ip_allow: Vec<String>,
    /// Whether the key is publishable (read-only, public routes, its `origins` only).
    pub publishable: bool,
    /// A publishable key's allowed origins; empty for any other key.
    pub origins: Vec<String>,
    /// The key's own limits; `{}` when it has none.
    pub limits: LimitsParam,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    pub last_used_at: Option<String>,
    /// When the key last made a change: a `POST`, `PUT`, `PATCH` or `DELETE` through a proxy
    /// route, or a `…:write` / `…:delete` permission granted by the verify API.
    pub last_write_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_reason: Option<String>,
    /// Set while the key is suspended (refused until resumed).
    pub suspended_at: Option<String>,
    pub suspended_reason: Option<String>,
    /// Set while an anomaly's throttle holds the key to cut request rates.
    pub throttle: Option<ThrottleView>,
    pub rotate_every_seconds: Option<u64>,
    pub rotated_at: Option<String>,
    pub rotation_due_at: Option<String>,
    /// Number of rotations so far.
    pub generation: i64,
}

fn status_param(status: KeyStatus) -> StatusParam {
    match status {
        KeyStatus::Active => StatusParam::Active,
        KeyStatus::Expired => StatusParam::Expired,
        KeyStatus::Suspended => StatusParam::Suspended,
        KeyStatus::Revoked => StatusParam::Revoked,
        KeyStatus::Deleted => StatusParam::Deleted,
    }
}

fn env_param(env: KeyEnv) -> EnvParam {
    match env {
        KeyEnv::Live => EnvParam::Live,
        KeyEnv::Test => EnvParam::Test,
    }
}

impl KeyView {
    pub fn new(key: &KeyRecord, now: Timestamp) -> Self {
        Self {
            id: key.id.to_string(),
            project_id: key.project_id.as_ref().map(ToString::to_string),
            name: key.name.clone(),
            env: env_param(key.env),
            status: status_param(key.status(now)),
            hint: key.hint.to_string(),
            scopes: key.scopes.iter().map(ToString::to_string).collect(),
            expires_at: key.expires_at.map(Timestamp::to_rfc3339),
            ip_allow: key.ip_allow.iter().map(ToString::to_string).collect(),
            publishable: key.is_publishable(),
            origins: key
                .publishable
                .as_ref()
                .map(AllowedOrigins::to_strings)
                .unwrap_or_default(),
            limits: LimitsParam::from(&key.limits),
            metadata: serde_json::Value::Object(key.metadata.as_map().clone()),
            created_at: key.created_at.to_rfc3339(),
            updated_at: key.updated_at.to_rfc3339(),
            last_used_at: key.last_used_at.map(Timestamp::to_rfc3339),
            last_write_at: key.last_write_at.map(Timestamp::to_rfc3339),
            revoked_at: key.revoked_at.map(Timestamp::to_rfc3339),
            revoked_reason: key.revoked_reason.clone(),
            suspended_at: key.suspended_at.map(Timestamp::to_rfc3339),
            suspended_reason: key.suspended_reason.clone(),
            throttle: key.throttled(now).map(ThrottleView::from),
            rotate_every_seconds: key.rotate_every.map(|d| d.as_secs()),
            rotated_at: key.rotated_at.map(Timestamp::to_rfc3339),
            rotation_due_at: key.rotation_due_at().map(Timestamp::to_rfc3339),
            generation: key.generation,
        }
    }
}

/// A key with its secret: returned once, by create and rotate.
#[derive(Serialize, ToSchema)]
pub struct KeyWithSecret {
    /// The full key. Store it now: keygate keeps only a digest and cannot show it again.
    pub secret: String,
    pub key: KeyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub data: Vec<KeyView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleParam {
    Owner,
    Admin,
    Operator,
    Auditor,
    Viewer,
}

impl From<RoleParam> for Role {
    fn from(role: RoleParam) -> Self {
        match role {
            RoleParam::Owner => Role::Owner,
            RoleParam::Admin => Role::Admin,
            RoleParam::Operator => Role::Operator,
            RoleParam::Auditor => Role::Auditor,
            RoleParam::Viewer => Role::Viewer,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    pub role: RoleParam,
    /// Bind the token to one project (id or name); without it, to the organisation.
    pub project: Option<String>,
    pub name: Option<String>,
    pub expires_at: Option<String>,
}

impl CreateTokenBody {
    pub fn into_input(self) -> Result<CreateToken, ApiError> {
        Ok(CreateToken {
            role: self.role.into(),
            project: self.project,
            name: self.name.unwrap_or_else(|| "admin token".to_owned()),
            expires_at: self
                .expires_at
                .as_deref()
                .map(|t| parse_time("expires_at", t))
                .transpose()?,
        })
    }
}

/// An admin token as the API shows it. The secret is never part of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub role: RoleParam,
    /// The project the token is bound to; absent for an organisation-wide token.
    pub project_id: Option<String>,
    pub name: String,
    pub status: StatusParam,
    pub hint: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub data: Vec<TokenView>,
}

impl TokenView {
    pub fn new(key: &KeyRecord, now: Timestamp) -> Self {
        let role = match key.role {
            Some(Role::Owner) => RoleParam::Owner,
            Some(Role::Admin) => RoleParam::Admin,
            Some(Role::Operator) => RoleParam::Operator,
            Some(Role::Auditor) => RoleParam::Auditor,
            Some(Role::Viewer) | None => RoleParam::Viewer,
        };
        Self {
            id: key.id.to_string(),
            role,
            project_id: key.project_id.as_ref().map(ToString::to_string),
            name: key.name.clone(),
            status: status_param(key.status(now)),
            hint: key.hint.to_string(),
            created_at: key.created_at.to_rfc3339(),
            expires_at: key.expires_at.map(Timestamp::to_rfc3339),
            last_used_at: key.last_used_at.map(Timestamp::to_rfc3339),
            revoked_at: key.revoked_at.map(Timestamp::to_rfc3339),
            revoked_reason: key.revoked_reason.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenWithSecret {
    /// The admin token. Store it now: it is shown only once.
    pub secret: String,
    pub token: TokenView,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only events with this action, e.g. `key.revoke`.
    pub action: Option<String>,
    /// `next_cursor` of the previous page: events older than this sequence number.
    pub cursor: Option<i64>,
    /// 1-500, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditExportParams {
    /// Events after this sequence number (the last one received); default 0, from the start.
    pub after: Option<i64>,
    /// At most this many events; default, every one up to the head.
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckpointParams {
    /// Checkpoints after this sequence number; default, all.
    pub after: Option<i64>,
}

/// The key that signs the audit chain's checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPublicKeyView {
    pub algorithm: String,
    /// The first 8 bytes of the key's SHA-256, in hex.
    pub key_id: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    pub seq: i64,
    pub ts: String,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub target: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            seq: e.seq,
            ts: e.ts.to_rfc3339(),
            actor: e.actor,
            action: e.action,
            outcome: e.outcome,
            org_id: e.org_id,
            project_id: e.project_id,
            target: e.target,
            details: serde_json::from_str(&e.details).unwrap_or(serde_json::Value::Null),
            client_ip: e.client_ip,
            request_id: e.request_id,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub data: Vec<AuditEventView>,
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditVerifyParams {
    /// An earlier head, `SEQ:HASH`, saved outside the database: the chain must still hold it.
    pub anchor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerifyView {
    /// Whether every entry is intact, in order, and the chain reaches the stored head.
    pub ok: bool,
    pub entries: u64,
    pub head_seq: i64,
    pub head_hash: String,
    /// Where the chain breaks, when it does.
    pub error: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub break_at: Option<serde_json::Value>,
}

impl From<AuditReport> for AuditVerifyView {
    fn from(r: AuditReport) -> Self {
        Self {
            ok: r.ok,
            entries: r.entries,
            head_seq: r.head.seq,
            head_hash: r.head.hash,
            error: r.error.as_ref().map(ToString::to_string),
            break_at: r.error.and_then(|e| serde_json::to_value(e).ok()),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The API key, or keygate access token, to check.
    pub key: String,
    /// A permission the key must grant, e.g. `chat:write`.
    pub permission: Option<String>,
    /// The end client's address, checked against the key's IP allow-list.
    pub ip: Option<String>,
    /// Accept a publishable key. Off by default: a publishable key is public (it ships in web
    /// pages), so holding one proves nothing, and a service that only reads `valid` must not
    /// let its holder in. A service that serves browsers sets it and checks `origins`.
    #[serde(default)]
    pub allow_publishable: bool,
    /// For an access token: the audience it must name (the calling service's); keygate's own
    /// when absent.
    pub audience: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    pub valid: bool,
    /// `valid`, or why not: `key_malformed`, `key_invalid`, `key_expired`, `key_revoked`,
    /// `key_rotated`, `ip_not_allowed`, `permission_denied`, `publishable_key_forbidden`
    /// (without `allow_publishable`), `rate_limited`, `quota_exhausted`; for a token also
    /// `token_invalid`, `token_expired`, `token_wrong_audience`, `token_unbound`.
    pub code: String,
    pub key_id: Option<String>,
    pub project: Option<String>,
    pub name: Option<String>,
    pub env: Option<EnvParam>,
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<String>,
    /// Whether the key is publishable: meant to be public, read-only, tied to `origins`.
    pub publishable: Option<bool>,
    /// For a publishable key, the origins it may be used from: a service that verifies one
    /// should check the caller's `Origin` against them, as the gateway does.
    pub origins: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// The key's tightest request rate (`limit`, `remaining`, `reset_ms`); `null` while it
    /// has none.
    #[schema(value_type = Option<Object>)]
    pub ratelimit: Option<serde_json::Value>,
    /// Every limit of the key and its project (request and token rates, quotas, budgets),
    /// as it stands after this verification; `null` for a refused key.
    pub limits: Option<Vec<LimitStateView>>,
    /// When an access token was verified: its id and expiry. The key fields are its parent
    /// key's, the scopes the token's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<AccessTokenView>,
}

/// An access token a verification accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessTokenView {
    /// The token's `jti`.
    pub id: String,
    pub expires_at: String,
}

impl VerifyResponse {
    pub fn valid(key: &KeyRecord) -> Self {
        Self {
            valid: true,
            code: "valid".to_owned(),
            key_id: Some(key.id.to_string()),
            project: key.project_id.as_ref().map(ToString::to_string),
            name: Some(key.name.clone()),
            env: Some(env_param(key.env)),
            scopes: Some(key.scopes.iter().map(ToString::to_string).collect()),
            expires_at: key.expires_at.map(Timestamp::to_rfc3339),
            publishable: Some(key.is_publishable()),
            origins: key.publishable.as_ref().map(AllowedOrigins::to_strings),
            metadata: Some(serde_json::Value::Object(key.metadata.as_map().clone())),
            ratelimit: None,
            limits: None,
            token: None,
        }
    }

    pub fn refused(code: &str, key_id: Option<&KeyId>) -> Self {
        Self {
            valid: false,
            code: code.to_owned(),
            key_id: key_id.map(ToString::to_string),
            project: None,
            name: None,
            env: None,
            scopes: None,
            expires_at: None,
            publishable: None,
            origins: None,
            metadata: None,
            ratelimit: None,
            limits: None,
            token: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    /// Where limits are counted (readiness only): `local` (no Redis configured), `redis`, or
    /// `redis_unreachable` — the node then follows `limits_on_redis_failure`, and a monitor
    /// should raise an alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<&'static str>,
    /// `unreachable` while the store cannot be reached (readiness only; `status` is then
    /// `degraded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'static str>,
}

// Bodies that carry a key are redacted in debug output: a stray `{:?}` must not leak one.
impl std::fmt::Debug for KeyWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyWithSecret")
            .field("secret", &"[REDACTED]")
            .field("key", &self.key)
            .finish()
    }
}

impl std::fmt::Debug for TokenWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenWithSecret")
            .field("secret", &"[REDACTED]")
            .field("token", &self.token)
            .finish()
    }
}

impl std::fmt::Debug for VerifyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyBody")
            .field("key", &"[REDACTED]")
            .field("permission", &self.permission)
            .field("ip", &self.ip)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_with_keys_are_redacted_in_debug() {
        let body: VerifyBody =
            serde_json::from_str(r#"{"key": "kg_live_visible_secret"}"#).unwrap();
        assert!(!format!("{body:?}").contains("visible_secret"));
    }
}
