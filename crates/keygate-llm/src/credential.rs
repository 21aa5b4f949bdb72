//! Upstream credentials are named, never pasted: `env::NAME` reads the process environment
//! once at start, `secret::NAME` reads the vault secret of the calling key's project, and
//! `secret::proj_…/NAME` the secret of one fixed project.

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::ConfigError;

/// Where a deployment's credential comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialRef {
    /// Read from the environment when the configuration is loaded.
    Env(String),
    /// A vault secret, in the calling key's project or in a fixed one.
    Secret(SecretRef),
    /// No credential (a local server).
    None,
}

/// A vault secret by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    /// A project id; `None` means the project of the key that makes the request.
    pub project: Option<String>,
    pub name: String,
}

impl fmt::Debug for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env::{name}"),
            Self::Secret(SecretRef {
                project: Some(project),
                name,
            }) => write!(f, "secret::{project}/{name}"),
            Self::Secret(SecretRef {
                project: None,
                name,
            }) => write!(f, "secret::{name}"),
            Self::None => f.write_str("none"),
        }
    }
}

impl CredentialRef {
    /// Parses a reference. A string that looks like a pasted key is refused with advice.
    pub fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::Credential {
            field: field.to_owned(),
            reason: why.to_owned(),
        };
        let name_ok = |name: &str| {
            !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        };
        if text == "none" {
            return Ok(Self::None);
        }
        if let Some(name) = text.strip_prefix("env::") {
            return if name_ok(name) {
                Ok(Self::Env(name.to_owned()))
            } else {
                Err(bad("`env::NAME` needs a variable name"))
            };
        }
        if let Some(rest) = text.strip_prefix("secret::") {
            let (project, name) = match rest.split_once('/') {
                Some((project, name)) => (Some(project.to_owned()), name),
                None => (None, rest),
            };
            if !name_ok(name) || project.as_deref().is_some_and(|p| !name_ok(p)) {
                return Err(bad("`secret::NAME` or `secret::PROJECT_ID/NAME`"));
            }
            return Ok(Self::Secret(SecretRef {
                project,
                name: name.to_owned(),
            }));
        }
        Err(bad(
            "name the credential (`secret::NAME` for the vault, `env::NAME` for a variable, or `none`); never paste a key into the configuration",
        ))
    }
}

/// Why a credential could not be had. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the vault has no secret `{0}` for this project")]
    SecretNotFound(String),
    #[error("the credential store is unavailable")]
    Unavailable,
}

/// Reads vault secrets for the gateway, bound to the project of the calling key. The
/// server implements it over the vault; values are cached there, so this is memory on the
/// hot path except on the first use of a secret.
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn secret(&self, reference: &SecretRef) -> Result<SecretString, CredentialError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            CredentialRef::parse("c", "env::OPENAI_API_KEY").unwrap(),
            CredentialRef::Env("OPENAI_API_KEY".into())
        );
        assert_eq!(
            CredentialRef::parse("c", "secret::openai").unwrap(),
            CredentialRef::Secret(SecretRef {
                project: None,
                name: "openai".into()
            })
        );
        assert_eq!(
            CredentialRef::parse("c", "secret::proj_1/openai")
                .unwrap()
                .to_string(),
            "secret::proj_1/openai"
        );
        let pasted = CredentialRef::parse("c", "sk-proj-abcdef").unwrap_err();
        assert!(!pasted.to_string().contains("sk-proj"), "{pasted}");
        assert!(CredentialRef::parse("c", "env::").is_err());
        assert!(CredentialRef::parse("c", "secret::a/b/c").is_err());
    }
}
