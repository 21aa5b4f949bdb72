//! Stored keys and the rules that decide whether a presented secret is accepted.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{
    AllowedOrigins, KeyEnv, KeyHint, KeyId, OrgId, ProjectId, Role, Scope, Timestamp,
    ValidationError,
};

/// What a key is for: calling APIs, or administering keygate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Api,
    Admin,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "api" => Some(Self::Api),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// The lifecycle state of a key at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Expired,
    /// Refused until resumed: a reversible stop, set by an operator, an anomaly policy or a
    /// leak report.
    Suspended,
    Revoked,
    Deleted,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "active" => Ok(Self::Active),
            "expired" => Ok(Self::Expired),
            "suspended" => Ok(Self::Suspended),
            "revoked" => Ok(Self::Revoked),
            "deleted" => Ok(Self::Deleted),
            _ => Err(ValidationError::new(
                "status",
                "one of active, expired, suspended, revoked, deleted",
            )),
        }
    }
}

/// Free-form metadata: a JSON object of bounded size and depth.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(serde_json::Map<String, serde_json::Value>);

const MAX_METADATA_BYTES: usize = 8 * 1024;
const MAX_METADATA_DEPTH: usize = 8;

impl Metadata {
    pub fn parse(value: serde_json::Value) -> Result<Self, ValidationError> {
        const EXPECTED: &str = "a JSON object of at most 8 KiB and 8 levels";
        let serde_json::Value::Object(map) = value else {
            return Err(ValidationError::new("metadata", EXPECTED));
        };
        let size = serde_json::to_vec(&map)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        let depth = map.values().map(depth_of).max().unwrap_or(0) + 1;
        if size > MAX_METADATA_BYTES || depth > MAX_METADATA_DEPTH {
            return Err(ValidationError::new("metadata", EXPECTED));
        }
        Ok(Self(map))
    }

    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }

    pub fn to_json_text(&self) -> String {
        serde_json::Value::Object(self.0.clone()).to_string()
    }
}

fn depth_of(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks a human-chosen name or reason: non-empty, bounded, no control characters.
pub fn check_text(
    field: &'static str,
    text: &str,
    max_chars: usize,
) -> Result<(), ValidationError> {
    let ok = !text.trim().is_empty()
        && text.chars().count() <= max_chars
        && !text.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "non-empty text without control characters, within the length limit",
        ))
    }
}

/// Longest key name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest revocation reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Most entries in an IP allow-list.
pub const MAX_IP_RULES: usize = 100;

/// Validates an IP allow-list: CIDR blocks or single addresses, IPv4 or IPv6.
pub fn parse_ip_allow(items: &[String]) -> Result<Vec<IpNet>, ValidationError> {
    const EXPECTED: &str = "at most 100 CIDR blocks or IP addresses, e.g. 10.0.0.0/8 or ::1";
    if items.len() > MAX_IP_RULES {
        return Err(ValidationError::new("ip_allow", EXPECTED));
    }
    items
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map(|net| unmap_ipv4(net.trunc()))
                .map_err(|_| ValidationError::new("ip_allow", EXPECTED))
        })
        .collect()
}

/// Turns a rule in IPv4-mapped IPv6 form (`::ffff:10.0.0.0/104`) into the IPv4 block it
/// means. [`KeyRecord::allows_ip`] checks a mapped client address as IPv4, so a rule left in
/// mapped form could never match anything.
fn unmap_ipv4(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else { return net };
    match (v6.addr().to_ipv4_mapped(), v6.prefix_len().checked_sub(96)) {
        (Some(v4), Some(prefix)) => ipnet::Ipv4Net::new(v4, prefix).map_or(net, IpNet::V4),
        _ => net,
    }
}

/// A key as stored: everything but its secret, which exists only as digests.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub kind: KeyKind,
    pub org_id: OrgId,
    /// Always set for API keys; `None` for an organisation-wide admin token.
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub env: KeyEnv,
    /// Set for admin tokens only.
    pub role: Option<Role>,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<Timestamp>,
    pub ip_allow: Vec<IpNet>,
    /// Set for a publishable key (an API key meant to be embedded in a web page or an app):
    /// the origins it may be used from. Fixed at creation: a key whose text was public cannot
    /// become secret, nor a secret key publishable.
    pub publishable: Option<AllowedOrigins>,
    pub limits: crate::KeyLimits,
    pub metadata: Metadata,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    /// When the key last made a change (see [`crate::is_write`]), batched like `last_used_at`.
    pub last_write_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub revoked_reason: Option<String>,
    /// Set while the key is suspended: refused, but resumable (unlike a revocation).
    pub suspended_at: Option<Timestamp>,
    pub suspended_reason: Option<String>,
    /// Set by an anomaly's `throttle` action: the key's request rates cut for a while.
    pub throttle: Option<crate::KeyThrottle>,
    pub deleted_at: Option<Timestamp>,
    pub rotate_every: Option<Duration>,
    pub rotated_at: Option<Timestamp>,
    /// How many times the key was rotated; the secret of generation `n` replaced `n - 1`.
    pub generation: i64,
    pub hint: KeyHint,
}

/// One secret of a key, stored as its digest. After a rotation the old secret keeps working
/// until `grace_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySecret {
    pub digest: Vec<u8>,
    pub key_id: KeyId,
    pub generation: i64,
    pub created_at: Timestamp,
    /// Set once the secret is superseded: it is accepted strictly before this instant.
    pub grace_until: Option<Timestamp>,
}

/// Why a presented key is refused. Each maps to a stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error("the key is not well-formed")]
    Malformed,
    #[error("the key is not valid")]
    Invalid,
    #[error("the key has expired")]
    Expired,
    #[error("the key was revoked")]
    Revoked,
    #[error("the key is suspended")]
    Suspended,
    #[error("the key was rotated and its grace period is over")]
    Rotated,
    #[error("the request comes from an address the key does not allow")]
    IpNotAllowed,
    #[error("the key lacks the requested permission")]
    PermissionDenied,
    /// A keygate access token that is not one: bad shape or signature, another issuer, an
    /// algorithm other than EdDSA, a signing key keygate does not publish.
    #[error("the token is not valid")]
    TokenInvalid,
    #[error("the token has expired")]
    TokenExpired,
    #[error("the token was issued for another audience")]
    TokenAudience,
    /// A token bound to a client certificate, presented without that certificate.
    #[error("the token is bound to a client certificate this connection did not present")]
    TokenUnbound,
    /// A verified client certificate no `[[tls.clients]]` rule takes.
    #[error("the client certificate is not allowed to act here")]
    CertificateNotAllowed,
}

impl KeyRejection {
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "key_malformed",
            Self::Invalid => "key_invalid",
            Self::Expired => "key_expired",
            Self::Revoked => "key_revoked",
            Self::Suspended => "key_suspended",
            Self::Rotated => "key_rotated",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::PermissionDenied => "permission_denied",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenAudience => "token_wrong_audience",
            Self::TokenUnbound => "token_unbound",
            Self::CertificateNotAllowed => "certificate_not_allowed",
        }
    }
}

impl KeyRecord {
    pub fn status(&self, now: Timestamp) -> KeyStatus {
        if self.deleted_at.is_some() {
            KeyStatus::Deleted
        } else if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.suspended_at.is_some() {
            KeyStatus::Suspended
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    /// Decides whether `secret` (a secret of this key) is accepted at `now`.
    pub fn check(&self, secret: &KeySecret, now: Timestamp) -> Result<(), KeyRejection> {
        if secret.key_id != self.id {
            return Err(KeyRejection::Invalid);
        }
        match self.status(now) {
            KeyStatus::Deleted => return Err(KeyRejection::Invalid),
            KeyStatus::Revoked => return Err(KeyRejection::Revoked),
            KeyStatus::Suspended => return Err(KeyRejection::Suspended),
            KeyStatus::Expired => return Err(KeyRejection::Expired),
            KeyStatus::Active => {}
        }
        match secret.grace_until {
            Some(until) if now >= until => Err(KeyRejection::Rotated),
            _ => Ok(()),
        }
    }

    /// Whether a request from `ip` is allowed. An empty allow-list allows any address; a
    /// non-empty one refuses a request whose address is unknown.
    pub fn allows_ip(&self, ip: Option<IpAddr>) -> bool {
        if self.ip_allow.is_empty() {
            return true;
        }
        let Some(ip) = ip else { return false };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        self.ip_allow.iter().any(|net| net.contains(&ip))
    }

    /// When the rotation policy next asks for a rotation, if the key has one.
    pub fn rotation_due_at(&self) -> Option<Timestamp> {
        let every = self.rotate_every?;
        Some(
            self.rotated_at
                .unwrap_or(self.created_at)
                .saturating_add(every),
        )
    }

    /// Where an admin token's role applies: its project, or its whole organisation.
    pub fn binding(&self) -> crate::Binding {
        match &self.project_id {
            Some(project) => crate::Binding::Project {
                org: self.org_id.clone(),
                project: project.clone(),
            },
            None => crate::Binding::Org(self.org_id.clone()),
        }
    }

    /// Whether the key can still change state (rotate, update, revoke).
    pub fn is_mutable(&self) -> bool {
        self.deleted_at.is_none() && self.revoked_at.is_none()
    }

    /// Suspends the key: refused from `now` until resumed. A revoked or deleted key cannot be
    /// suspended, and a suspended one keeps its first reason (the error is its status).
    pub fn suspend(&mut self, reason: &str, now: Timestamp) -> Result<(), KeyStatus> {
        match self.status(now) {
            KeyStatus::Active | KeyStatus::Expired => {
                self.suspended_at = Some(now);
                self.suspended_reason = Some(reason.to_owned());
                self.updated_at = now;
                Ok(())
            }
            other => Err(other),
        }
    }

    /// Ends a suspension, and a throttle: the key is what it would have been without them
    /// (active or expired). The error is the key's status when it is neither suspended nor
    /// throttled.
    pub fn resume(&mut self, now: Timestamp) -> Result<(), KeyStatus> {
        let throttled = self.throttle.as_ref().is_some_and(|t| t.active(now));
        match self.status(now) {
            KeyStatus::Suspended => {
                self.suspended_at = None;
                self.suspended_reason = None;
            }
            KeyStatus::Active if throttled => {}
            other => return Err(other),
        }
        self.throttle = None;
        self.updated_at = now;
        Ok(())
    }

    /// Holds an active key to `throttle`'s rates until it lapses (the later of two
    /// throttles' ends). The error is the key's status when it is not active.
    pub fn throttle(
        &mut self,
        throttle: crate::KeyThrottle,
        now: Timestamp,
    ) -> Result<(), KeyStatus> {
        match self.status(now) {
            KeyStatus::Active => {
                let until = match &self.throttle {
                    Some(current) => current.until.max(throttle.until),
                    None => throttle.until,
                };
                self.throttle = Some(crate::KeyThrottle { until, ..throttle });
                self.updated_at = now;
                Ok(())
            }
            other => Err(other),
        }
    }

    /// The throttle holding the key at `now`, if any.
    pub fn throttled(&self, now: Timestamp) -> Option<&crate::KeyThrottle> {
        self.throttle.as_ref().filter(|t| t.active(now))
    }
}

/// The chosen settings of a new key; [`KeyRecord::issue`] adds the lifecycle fields.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    pub kind: KeyKind,
    pub org_id: OrgId,
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub env: KeyEnv,
    pub role: Option<Role>,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<Timestamp>,
    pub ip_allow: Vec<IpNet>,
    /// Makes the key publishable, usable from these origins only.
    pub publishable: Option<AllowedOrigins>,
    pub limits: crate::KeyLimits,
    pub metadata: Metadata,
    pub rotate_every: Option<Duration>,
}

impl KeySpec {
    /// An API key of `project` with no scopes, expiry or restrictions yet.
    pub fn api(org_id: OrgId, project_id: ProjectId, name: String, env: KeyEnv) -> Self {
        Self {
            kind: KeyKind::Api,
            org_id,
            project_id: Some(project_id),
            name,
            env,
            role: None,
            scopes: Vec::new(),
            expires_at: None,
            ip_allow: Vec::new(),
            publishable: None,
            limits: crate::KeyLimits::default(),
            metadata: Metadata::default(),
            rotate_every: None,
        }
    }

    /// An admin token with `role` on `binding`.
    pub fn admin(binding: &crate::Binding, role: Role, name: String) -> Self {
        Self {
            kind: KeyKind::Admin,
            org_id: binding.org().clone(),
            project_id: binding.project().cloned(),
            name,
            env: KeyEnv::Live,
            role: Some(role),
            scopes: Vec::new(),
            expires_at: None,
            ip_allow: Vec::new(),
            publishable: None,
            limits: crate::KeyLimits::default(),
            metadata: Metadata::default(),
            rotate_every: None,
        }
    }
}

impl KeyRecord {
    /// A new key with a fresh id, created at `now`, whose first secret has `hint`.
    pub fn issue(spec: KeySpec, hint: KeyHint, now: Timestamp) -> Self {
        Self {
            id: KeyId::generate(),
            kind: spec.kind,
            org_id: spec.org_id,
            project_id: spec.project_id,
            name: spec.name,
            env: spec.env,
            role: spec.role,
            scopes: spec.scopes,
            expires_at: spec.expires_at,
            ip_allow: spec.ip_allow,
            publishable: spec.publishable,
            limits: spec.limits,
            metadata: spec.metadata,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            last_write_at: None,
            revoked_at: None,
            revoked_reason: None,
            suspended_at: None,
            suspended_reason: None,
            throttle: None,
            deleted_at: None,
            rotate_every: spec.rotate_every,
            rotated_at: None,
            generation: 0,
            hint,
        }
    }
}

/// A change to a key's settings. `None` leaves a field as it is; for optional fields,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub scopes: Option<Vec<Scope>>,
    pub expires_at: Option<Option<Timestamp>>,
    pub metadata: Option<Metadata>,
    pub ip_allow: Option<Vec<IpNet>>,
    /// New origins for a publishable key; refused for any other key.
    pub origins: Option<AllowedOrigins>,
    pub limits: Option<crate::KeyLimits>,
    pub rotate_every: Option<Option<Duration>>,
}

impl KeyPatch {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl KeyRecord {
    /// Checks the rules a patch must keep for this key: only a publishable key has origins to
    /// change, and its scopes stay read-only.
    pub fn check_patch(&self, patch: &KeyPatch) -> Result<(), ValidationError> {
        match (&self.publishable, &patch.origins) {
            (None, Some(_)) => Err(ValidationError::new(
                "origins",
                "only a publishable key has origins, and a key cannot become publishable \
                 after it is created",
            )),
            (Some(_), _) => patch
                .scopes
                .as_deref()
                .map_or(Ok(()), crate::publishable::check_scopes),
            (None, None) => Ok(()),
        }
    }

    pub fn is_publishable(&self) -> bool {
        self.publishable.is_some()
    }

    /// Applies a validated patch.
    pub fn apply(&mut self, patch: &KeyPatch, now: Timestamp) {
        if let Some(name) = &patch.name {
            self.name.clone_from(name);
        }
        if let Some(scopes) = &patch.scopes {
            self.scopes.clone_from(scopes);
        }
        if let Some(expires_at) = patch.expires_at {
            self.expires_at = expires_at;
        }
        if let Some(metadata) = &patch.metadata {
            self.metadata = metadata.clone();
        }
        if let Some(limits) = &patch.limits {
            self.limits = limits.clone();
        }
        if let Some(ip_allow) = &patch.ip_allow {
            self.ip_allow.clone_from(ip_allow);
        }
        // Only a publishable key's origins change; [`KeyRecord::check_patch`] refuses the rest.
        if let (Some(origins), Some(current)) = (&patch.origins, &mut self.publishable) {
            current.clone_from(origins);
        }
        if let Some(rotate_every) = patch.rotate_every {
            self.rotate_every = rotate_every;
        }
        self.updated_at = now;
    }

    /// Turns the record into a tombstone: the id and digests stay so the key can never verify
    /// again, everything descriptive goes.
    pub fn tombstone(&mut self, now: Timestamp) {
        self.name = String::new();
        self.scopes.clear();
        self.ip_allow.clear();
        self.limits = crate::KeyLimits::default();
        self.metadata = Metadata::default();
        self.rotate_every = None;
        self.deleted_at = Some(now);
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests;
