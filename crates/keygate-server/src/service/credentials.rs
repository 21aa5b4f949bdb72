//! Upstream credentials for the gateway, from the vault: the current value of a secret of
//! the calling key's project (or of a project the configuration names), decrypted on first use
//! and then kept in memory for a minute, or until the secret changes on this node.

use std::sync::Arc;

use async_trait::async_trait;
use keygate_core::ProjectId;
use keygate_llm::{CredentialError, SecretRef, SecretSource};
use keygate_store::SecretStage;
use secrecy::SecretString;

use super::Keygate;

/// The vault as the gateway sees it for one request.
#[derive(Debug)]
pub struct ProjectSecrets<'a> {
    pub keygate: &'a Keygate,
    /// The calling key's project.
    pub project: Option<&'a ProjectId>,
}

#[async_trait]
impl SecretSource for ProjectSecrets<'_> {
    async fn secret(&self, reference: &SecretRef) -> Result<SecretString, CredentialError> {
        let project = match &reference.project {
            Some(text) => ProjectId::parse(text)
                .map_err(|_| CredentialError::SecretNotFound(reference.name.clone()))?,
            None => self
                .project
                .cloned()
                .ok_or_else(|| CredentialError::SecretNotFound(reference.name.clone()))?,
        };
        self.keygate
            .gateway_credential(&project, &reference.name)
            .await
    }
}

impl Keygate {
    async fn gateway_credential(
        &self,
        project: &ProjectId,
        name: &str,
    ) -> Result<SecretString, CredentialError> {
        let cache_key = (project.clone(), name.to_owned());
        if let Some(value) = self.credentials.get(&cache_key) {
            return Ok((*value).clone());
        }
        let missing = || CredentialError::SecretNotFound(name.to_owned());
        let secret = self
            .store
            .secret_by_name(project, name)
            .await
            .map_err(|_| CredentialError::Unavailable)?
            .ok_or_else(missing)?;
        let versions = self
            .store
            .secret_versions(&secret.id)
            .await
            .map_err(|_| CredentialError::Unavailable)?;
        let current = versions
            .iter()
            .find(|v| v.stage == SecretStage::Current)
            .ok_or_else(missing)?;
        let value = self.decrypt_version(&secret, current).map_err(|reason| {
            tracing::error!(secret = %secret.id, %reason, "a gateway credential cannot be decrypted");
            CredentialError::Unavailable
        })?;
        self.credentials.insert(cache_key, Arc::new(value.clone()));
        Ok(value)
    }
}
