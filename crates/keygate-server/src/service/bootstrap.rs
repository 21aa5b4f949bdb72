//! The first start: an organisation, a project and a one-time owner token.

use keygate_core::{
    ApiKey, AuditAction, AuditDraft, Binding, KeyEnv, KeyRecord, KeySpec, OrgId, ProjectId, Role,
};
use keygate_store::{Bootstrap, Conflict, Org, Project};

use super::Keygate;
use crate::ServiceError;

/// Name of the organisation and project a new store starts with.
pub const DEFAULT_NAME: &str = "default";

/// On a store with no owner yet, creates the default organisation and project and an owner
/// token, and returns the token, to be shown once. Returns `None` when an owner exists
/// (including when another node won a race to create it).
pub async fn ensure_owner(keygate: &Keygate) -> Result<Option<ApiKey>, ServiceError> {
    if keygate.store.is_bootstrapped().await? {
        return Ok(None);
    }
    match bootstrap(keygate).await {
        Ok(key) => Ok(Some(key)),
        Err(ServiceError::Conflict(Conflict::AlreadyBootstrapped)) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Creates the first owner; fails with `AlreadyBootstrapped` if there is one.
pub async fn bootstrap(keygate: &Keygate) -> Result<ApiKey, ServiceError> {
    let now = keygate.clock.now();
    let org = Org {
        id: OrgId::generate(),
        name: DEFAULT_NAME.to_owned(),
        created_at: now,
    };
    let project = Project {
        id: ProjectId::generate(),
        org_id: org.id.clone(),
        name: DEFAULT_NAME.to_owned(),
        created_at: now,
        limits: keygate_core::KeyLimits::default(),
        anomaly_actions: Default::default(),
    };
    let key = ApiKey::generate(KeyEnv::Live)?;
    let spec = KeySpec::admin(
        &Binding::Org(org.id.clone()),
        Role::Owner,
        "bootstrap owner".to_owned(),
    );
    let owner = KeyRecord::issue(spec, key.hint(), now);
    let owner_secret = keygate.first_secret(&key, &owner);
    let mut audit = AuditDraft::new("system", AuditAction::OwnerBootstrap);
    audit.org_id = Some(org.id.to_string());
    audit.target = Some(owner.id.to_string());
    audit.details = serde_json::json!({ "hint": owner.hint });
    keygate
        .store
        .bootstrap(
            &Bootstrap {
                org,
                project,
                owner,
                owner_secret,
            },
            &audit,
        )
        .await?;
    Ok(key)
}

impl Keygate {
    /// The organisation local (CLI) operations act in: the one created at bootstrap.
    pub async fn default_org(&self) -> Result<OrgId, ServiceError> {
        self.store
            .org_by_name(DEFAULT_NAME)
            .await?
            .map(|org| org.id)
            .ok_or(ServiceError::NotFound {
                entity: "organisation (start `keygate serve` once to create it)",
            })
    }
}
