//! Staged rotation of an upstream secret: the new value is stored as a pending version,
//! optionally proven against the upstream with an HTTP check, then promoted. The version it
//! replaces stays usable for a grace period.

use std::time::Duration;

use axum::http::header::{HeaderName, HeaderValue};
use keygate_core::{AuditAction, Outcome, Permission, SecretId, ValidationError};
use keygate_crypto::envelope::seal;
use keygate_store::{SecretStage, SecretVersion};
use secrecy::{ExposeSecret, SecretString};

use super::secrets::{MAX_SECRET_BYTES, row};
use super::{Caller, Keygate};
use crate::ServiceError;

/// An HTTP `GET` that must answer 2xx when it carries the pending value, e.g. an OpenAI
/// key against `https://api.openai.com/v1/models` with `Authorization: Bearer <value>`.
#[derive(Debug, Clone)]
pub struct UpstreamCheck {
    pub url: String,
    /// The header that carries the value (default `authorization`).
    pub header: String,
    /// Text before the value in that header (default `Bearer `).
    pub prefix: String,
}

/// A new value for an existing secret.
#[derive(Debug)]
pub struct RotateSecret {
    pub value: SecretString,
    /// How long the version that was current stays usable after promotion.
    pub grace: Duration,
    /// Checked before promotion; without it the new version is promoted at once.
    pub check: Option<UpstreamCheck>,
}

/// How a rotation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRotation {
    /// The new version is current.
    Promoted { version: i64 },
    /// The check failed: the new version waits, pending, and the current one is unchanged.
    CheckFailed { version: i64, reason: String },
}

fn check_request(
    check: &UpstreamCheck,
    value: &SecretString,
) -> Result<(url::Url, HeaderName, HeaderValue), ValidationError> {
    let url = url::Url::parse(&check.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .filter(|u| u.username().is_empty() && u.password().is_none())
        .ok_or(ValidationError::new(
            "check.url",
            "an http or https URL without user or password",
        ))?;
    if keygate_llm::egress::reaches_metadata(&url) {
        return Err(ValidationError::new(
            "check.url",
            "an upstream API, not a link-local or cloud metadata address",
        ));
    }
    let name = HeaderName::from_bytes(check.header.as_bytes())
        .map_err(|_| ValidationError::new("check.header", "an HTTP header name"))?;
    if check.prefix.len() > 64 || check.prefix.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "check.prefix",
            "at most 64 characters, no control characters",
        ));
    }
    let header = keygate_llm::egress::secret_header(&check.prefix, value).ok_or(
        ValidationError::new("value", "characters allowed in an HTTP header"),
    )?;
    Ok((url, name, header))
}

/// What the audit log keeps of a check URL: scheme, host, port and path; never a query, which
/// may carry a credential.
fn audit_url(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    Some(format!(
        "{}://{}{}{}",
        url.scheme(),
        url.host_str()?,
        url.port().map(|p| format!(":{p}")).unwrap_or_default(),
        url.path()
    ))
}

impl Keygate {
    /// Rotates a secret: stores `input.value` as a pending version, runs the check if there
    /// is one, and promotes the version if the check passes (or there is none).
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        id: &SecretId,
        input: RotateSecret,
    ) -> Result<SecretRotation, ServiceError> {
        let secret = self
            .visible_secret(caller, id, Permission::SecretsWrite)
            .await?;
        let size = input.value.expose_secret().len();
        if size == 0 || size > MAX_SECRET_BYTES {
            return Err(ValidationError::new("value", "1 byte to 32 KiB").into());
        }
        if input.grace > super::keys::MAX_GRACE {
            return Err(ValidationError::new("grace_period_seconds", "at most 30 days").into());
        }
        let request = input
            .check
            .as_ref()
            .map(|check| check_request(check, &input.value))
            .transpose()?;
        let now = self.clock.now();
        let versions = self.store.secret_versions(id).await?;
        let version = versions.first().map_or(1, |v| v.version + 1);
        let envelope = seal(
            self.kek.as_ref(),
            &row(&secret, version),
            input.value.expose_secret().as_bytes(),
        )?;
        let mut audit = caller.audit(AuditAction::SecretRotate, Some(&secret.project_id));
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({
            "name": secret.name,
            "version": version,
            "check_url": input.check.as_ref().and_then(|c| audit_url(&c.url)),
        });
        self.store
            .add_pending_version(
                &SecretVersion {
                    secret_id: id.clone(),
                    version,
                    stage: SecretStage::Pending,
                    kek_id: envelope.dek.kek_id.to_string(),
                    wrapped_dek: envelope.dek.sealed,
                    sealed: envelope.sealed,
                    created_at: now,
                    previous_until: None,
                },
                &audit,
            )
            .await?;
        if let Some((url, name, header)) = request
            && let Err(reason) = self.run_check(url, name, header).await
        {
            let mut refused = caller.audit(AuditAction::SecretPromote, Some(&secret.project_id));
            refused.target = Some(id.to_string());
            refused.outcome = Outcome::Denied;
            refused.details = serde_json::json!({
                "name": secret.name,
                "version": version,
                "check_failed": reason,
            });
            self.store.append_audit(&refused, self.clock.now()).await?;
            return Ok(SecretRotation::CheckFailed { version, reason });
        }
        self.promote_secret(caller, id, version, input.grace)
            .await?;
        Ok(SecretRotation::Promoted { version })
    }

    /// The check: a `GET` with the pending value; any 2xx passes. The reason for a failure
    /// never includes the value or the upstream's body.
    async fn run_check(
        &self,
        url: url::Url,
        name: HeaderName,
        value: HeaderValue,
    ) -> Result<(), String> {
        use keygate_llm::egress::{Body, Request, SendError, uri};
        let unreachable = |_| "the upstream could not be reached".to_owned();
        let mut request = Request::new(
            axum::http::Method::GET,
            uri(&url).map_err(unreachable)?,
            Body::empty(),
        );
        request.header(name, value);
        let response = self.upstream.send(request).await.map_err(|e| match e {
            SendError::Timeout => "the upstream did not answer in time".to_owned(),
            SendError::Connect | SendError::Failed => unreachable(e),
        })?;
        let status = response.status;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the upstream answered {}", status.as_u16()))
        }
    }

    /// Makes a pending version current; the current one stays usable for `grace`.
    pub async fn promote_secret(
        &self,
        caller: &Caller,
        id: &SecretId,
        version: i64,
        grace: Duration,
    ) -> Result<(), ServiceError> {
        let secret = self
            .visible_secret(caller, id, Permission::SecretsWrite)
            .await?;
        if grace > super::keys::MAX_GRACE {
            return Err(ValidationError::new("grace_period_seconds", "at most 30 days").into());
        }
        let now = self.clock.now();
        let mut audit = caller.audit(AuditAction::SecretPromote, Some(&secret.project_id));
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({
            "name": secret.name,
            "version": version,
            "grace_period_seconds": grace.as_secs(),
        });
        let promoted = self
            .store
            .promote_secret_version(id, version, now.saturating_add(grace), now, &audit)
            .await;
        self.forget_value(id);
        Ok(promoted?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, header: &str, prefix: &str) -> UpstreamCheck {
        UpstreamCheck {
            url: url.into(),
            header: header.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn metadata_addresses_and_credentials_in_urls_are_refused() {
        let value = SecretString::from("sk-x");
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "https://user:pass@api.example.com/v1/models",
        ] {
            assert!(
                check_request(&check(url, "authorization", ""), &value).is_err(),
                "{url}"
            );
        }
        for url in [
            "http://127.0.0.1:11434/api/tags",
            "https://10.0.0.5/v1/models",
        ] {
            assert!(
                check_request(&check(url, "authorization", ""), &value).is_ok(),
                "{url}"
            );
        }
        assert_eq!(
            audit_url("https://api.example.com:8443/v1/models?key=secret").as_deref(),
            Some("https://api.example.com:8443/v1/models")
        );
    }

    #[test]
    fn checks_are_validated() {
        let value = SecretString::from("sk-x");
        let (_, name, header) = check_request(
            &check(
                "https://api.example.com/v1/models",
                "authorization",
                "Bearer ",
            ),
            &value,
        )
        .unwrap();
        assert_eq!(name, "authorization");
        assert!(header.is_sensitive());
        assert!(check_request(&check("ftp://x/", "authorization", ""), &value).is_err());
        assert!(check_request(&check("not a url", "authorization", ""), &value).is_err());
        assert!(check_request(&check("https://x/", "bad header", ""), &value).is_err());
        let newline = SecretString::from("a\nb");
        assert!(check_request(&check("https://x/", "x-api-key", ""), &newline).is_err());
    }
}
