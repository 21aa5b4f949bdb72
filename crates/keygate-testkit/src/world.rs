//! A bootstrapped store: one organisation, one project and an owner token, for store tests.

use keygate_core::{AuditAction, KeyKind, OrgId, ProjectId, Role, Timestamp};
use keygate_crypto::DigestKey;
use keygate_store::{Bootstrap, Org, Project};

use crate::{Db, TestStore, audit, new_key};

/// A store after its first start, and the values it was started with.
#[derive(Debug)]
pub struct World {
    pub db: TestStore,
    pub digest_key: DigestKey,
    pub org: Org,
    pub project: Project,
}

impl World {
    /// A fresh store of kind `db`, bootstrapped at `now` with an organisation and a project
    /// both named `default`.
    pub async fn bootstrapped(db: Db, now: Timestamp) -> Self {
        let db = TestStore::new(db).await.expect("store");
        let digest_key = DigestKey::generate().expect("OS randomness");
        let org = Org {
            id: OrgId::generate(),
            name: "default".into(),
            created_at: now,
        };
        let project = Project {
            id: ProjectId::generate(),
            org_id: org.id.clone(),
            name: "default".into(),
            created_at: now,
            limits: keygate_core::KeyLimits::default(),
            anomaly_actions: Default::default(),
        };
        let mut owner = new_key(&digest_key, &org.id, &project.id, now);
        owner.record.kind = KeyKind::Admin;
        owner.record.role = Some(Role::Owner);
        owner.record.project_id = None;
        let bootstrap = Bootstrap {
            org: org.clone(),
            project: project.clone(),
            owner: owner.record,
            owner_secret: owner.secret,
        };
        db.store
            .bootstrap(&bootstrap, &audit(AuditAction::OwnerBootstrap))
            .await
            .expect("bootstrap");
        Self {
            db,
            digest_key,
            org,
            project,
        }
    }
}
