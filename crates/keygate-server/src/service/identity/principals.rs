//! Principals made by rules rather than stored keys — a federated identity, a client
//! certificate — as keys that exist only in memory: of the rule's project, with the rule's
//! scopes and limits, counted per principal under an id derived from what it is, and kept
//! for a while like a cached key (so a project's limits reach them within that while).

use std::sync::Arc;

use keygate_core::{KeyEnv, KeyHint, KeyId, KeyLimits, KeyRecord, KeySpec, ProjectId, Scope};
use keygate_identity::FederatedSubject;
use sha2::{Digest, Sha256};

use crate::ServiceError;
use crate::cache::CachedKey;
use crate::service::Keygate;

/// The id of a principal of `kind` (`fed`, `mtls`) named by `parts`: the same on every node,
/// never a stored key's.
pub(crate) fn principal_id(kind: &str, parts: &[&str]) -> KeyId {
    let digest = Sha256::digest(parts.join("\n").as_bytes());
    let id = format!("key_{kind}-{}", hex::encode(&digest[..16]));
    KeyId::parse(&id).unwrap_or_else(|_| KeyId::generate())
}

/// What a rule gives its principals.
pub(crate) struct Grant<'a> {
    pub project: &'a str,
    pub scopes: &'a [Scope],
    pub limits: &'a KeyLimits,
}

impl Keygate {
    /// The principal `id` made by `rule`, with what `grant` gives; `None` when the rule's
    /// project does not exist.
    pub(super) async fn rule_principal(
        &self,
        id: KeyId,
        rule: FederatedSubject,
        grant: Grant<'_>,
    ) -> Result<Option<Arc<CachedKey>>, ServiceError> {
        if let Some(known) = self.identity.principals.get(&id) {
            return Ok(Some(known));
        }
        let project = match ProjectId::parse(grant.project) {
            Ok(project) => self.store.project(&project).await?,
            Err(_) => {
                let org = self.default_org().await?;
                self.store.project_by_name(&org, grant.project).await?
            }
        };
        let Some(project) = project else {
            tracing::warn!(project = %grant.project, "an identity rule names a project that does not exist");
            return Ok(None);
        };
        let name: String = format!("{} ({}/{})", rule.sub, rule.issuer, rule.rule)
            .chars()
            .take(200)
            .collect();
        let spec = KeySpec {
            scopes: grant.scopes.to_vec(),
            limits: grant.limits.clone(),
            ..KeySpec::api(
                project.org_id.clone(),
                project.id.clone(),
                name,
                KeyEnv::Live,
            )
        };
        let mut record = KeyRecord::issue(
            spec,
            KeyHint::from_stored("(no key)".to_owned()),
            self.clock.now(),
        );
        record.id = id.clone();
        let principal = Arc::new(
            CachedKey::new(record, Vec::new())
                .with_project_limits(project.limits)
                .made_by(rule),
        );
        self.identity.principals.insert(id, principal.clone());
        Ok(Some(principal))
    }
}
