//! The vault's store suite, on SQLite and on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::time::Duration;

use keygate_core::{AuditAction, ProjectId, SecretId, Timestamp};
use keygate_store::{
    Conflict, DueFilter, Project, SecretPut, SecretRecord, SecretStage, SecretVersion, StoreError,
};
use keygate_testkit::{Db, World, audit};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0.saturating_add(Duration::from_secs(secs))
}

fn record(w: &World, id: &SecretId, name: &str) -> SecretRecord {
    SecretRecord {
        id: id.clone(),
        org_id: w.org.id.clone(),
        project_id: w.project.id.clone(),
        name: name.into(),
        description: Some("upstream".into()),
        created_at: T0,
        updated_at: T0,
        rotate_every: None,
    }
}

fn put(w: &World, id: &SecretId, name: &str, version: i64, now: Timestamp) -> SecretPut {
    SecretPut {
        secret: record(w, id, name),
        version: SecretVersion {
            secret_id: id.clone(),
            version,
            stage: SecretStage::Current,
            kek_id: "aes256:test".into(),
            wrapped_dek: format!("dek-{version}"),
            sealed: format!("sealed-{version}"),
            created_at: now,
            previous_until: None,
        },
        previous_until: now.saturating_add(Duration::from_secs(60)),
    }
}

async fn versions_move_through_stages(db: Db) {
    let w = World::bootstrapped(db, T0).await;
    let store = &w.db.store;
    let id = SecretId::generate();
    for version in 1..=3 {
        store
            .put_secret(
                &put(&w, &id, "openai-prod", version, at(version as u64)),
                &audit(AuditAction::SecretPut),
            )
            .await
            .unwrap();
    }
    let versions = store.secret_versions(&id).await.unwrap();
    let stages: Vec<(i64, SecretStage)> = versions.iter().map(|v| (v.version, v.stage)).collect();
    assert_eq!(
        stages,
        vec![
            (3, SecretStage::Current),
            (2, SecretStage::Previous),
            (1, SecretStage::Retired)
        ]
    );
    assert_eq!(versions[1].previous_until, Some(at(63)));
    // The grace period ends: the previous version retires, the current one stays.
    assert_eq!(store.retire_expired_previous(at(62)).await.unwrap(), 0);
    assert_eq!(store.retire_expired_previous(at(63)).await.unwrap(), 1);
    let after = store.secret_versions(&id).await.unwrap();
    assert_eq!(after[0].stage, SecretStage::Current);
    assert_eq!(after[1].stage, SecretStage::Retired);
    assert_eq!(versions[0].sealed, "sealed-3");
    assert_eq!(versions[0].wrapped_dek, "dek-3");

    let found = store
        .secret_by_name(&w.project.id, "openai-prod")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, id);
    assert_eq!(found.updated_at, at(3));
    assert_eq!(store.secret(&id).await.unwrap(), Some(found));
    let listed = store
        .list_secrets(&w.org.id, Some(&w.project.id))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        store
            .list_secrets(&w.org.id, Some(&ProjectId::generate()))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn racing_writers_get_a_conflict(db: Db) {
    let w = World::bootstrapped(db, T0).await;
    let store = &w.db.store;
    let id = SecretId::generate();
    store
        .put_secret(
            &put(&w, &id, "stripe", 1, at(1)),
            &audit(AuditAction::SecretPut),
        )
        .await
        .unwrap();
    let head = store.audit_head().await.unwrap();
    let same_version = store
        .put_secret(
            &put(&w, &id, "stripe", 1, at(2)),
            &audit(AuditAction::SecretPut),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        same_version,
        StoreError::Conflict(Conflict::VersionTaken { .. })
    ));
    // The failed write changed nothing: the stages and the audit log are as before.
    let versions = store.secret_versions(&id).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].stage, SecretStage::Current);
    assert_eq!(store.audit_head().await.unwrap(), head);

    let same_name = store
        .put_secret(
            &put(&w, &SecretId::generate(), "stripe", 1, at(3)),
            &audit(AuditAction::SecretPut),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        same_name,
        StoreError::Conflict(Conflict::VersionTaken { .. })
    ));
    // Another project may use the name.
    let other = Project {
        id: ProjectId::generate(),
        org_id: w.org.id.clone(),
        name: "other".into(),
        created_at: T0,
        limits: keygate_core::KeyLimits::default(),
        anomaly_actions: Default::default(),
    };
    store
        .create_project(&other, &audit(AuditAction::ProjectCreate))
        .await
        .unwrap();
    let mut elsewhere = put(&w, &SecretId::generate(), "stripe", 1, at(4));
    elsewhere.secret.project_id = other.id.clone();
    store
        .put_secret(&elsewhere, &audit(AuditAction::SecretPut))
        .await
        .unwrap();
}

async fn deletion_erases_values_and_frees_the_name(db: Db) {
    let w = World::bootstrapped(db, T0).await;
    let store = &w.db.store;
    let id = SecretId::generate();
    for version in 1..=2 {
        store
            .put_secret(
                &put(&w, &id, "db-password", version, at(version as u64)),
                &audit(AuditAction::SecretPut),
            )
            .await
            .unwrap();
    }
    store
        .delete_secret(&id, at(5), &audit(AuditAction::SecretDelete))
        .await
        .unwrap();
    assert_eq!(store.secret(&id).await.unwrap(), None);
    assert!(store.secret_versions(&id).await.unwrap().is_empty());
    assert_eq!(
        w.db.tamper("DELETE FROM secret_versions WHERE sealed LIKE 'sealed-%'")
            .await
            .unwrap(),
        0,
        "no sealed value is left"
    );
    let again = store
        .delete_secret(&id, at(6), &audit(AuditAction::SecretDelete))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::NotFound { .. }));
    let revive = store
        .put_secret(
            &put(&w, &id, "db-password", 3, at(7)),
            &audit(AuditAction::SecretPut),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(revive, StoreError::NotFound { .. }),
        "a deleted secret stays deleted"
    );
    let fresh = SecretId::generate();
    store
        .put_secret(
            &put(&w, &fresh, "db-password", 1, at(8)),
            &audit(AuditAction::SecretPut),
        )
        .await
        .unwrap();
}

async fn pending_versions_wait_for_promotion(db: Db) {
    let w = World::bootstrapped(db, T0).await;
    let store = &w.db.store;
    let id = SecretId::generate();
    store
        .put_secret(
            &put(&w, &id, "rotating", 1, at(1)),
            &audit(AuditAction::SecretPut),
        )
        .await
        .unwrap();
    let mut pending = put(&w, &id, "rotating", 2, at(2)).version;
    pending.stage = SecretStage::Pending;
    store
        .add_pending_version(&pending, &audit(AuditAction::SecretRotate))
        .await
        .unwrap();
    let stages = |versions: Vec<SecretVersion>| {
        versions
            .iter()
            .map(|v| (v.version, v.stage))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        stages(store.secret_versions(&id).await.unwrap()),
        vec![(2, SecretStage::Pending), (1, SecretStage::Current)],
        "a pending version changes nothing yet"
    );
    let refused = store
        .promote_secret_version(&id, 1, at(99), at(3), &audit(AuditAction::SecretPromote))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        StoreError::Conflict(Conflict::NotPending { version: 1 })
    ));
    store
        .promote_secret_version(&id, 2, at(60), at(3), &audit(AuditAction::SecretPromote))
        .await
        .unwrap();
    let versions = store.secret_versions(&id).await.unwrap();
    assert_eq!(
        stages(versions.clone()),
        vec![(2, SecretStage::Current), (1, SecretStage::Previous)]
    );
    assert_eq!(versions[1].previous_until, Some(at(60)));
    let missing = store
        .promote_secret_version(&id, 7, at(60), at(4), &audit(AuditAction::SecretPromote))
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }));
}

async fn due_secrets_are_announced_once(db: Db) {
    let w = World::bootstrapped(db, T0).await;
    let store = &w.db.store;
    let id = SecretId::generate();
    let mut first = put(&w, &id, "policy", 1, at(0));
    first.secret.rotate_every = Some(Duration::from_secs(100));
    store
        .put_secret(&first, &audit(AuditAction::SecretPut))
        .await
        .unwrap();
    let none = SecretId::generate();
    store
        .put_secret(
            &put(&w, &none, "no-policy", 1, at(0)),
            &audit(AuditAction::SecretPut),
        )
        .await
        .unwrap();
    assert!(
        store
            .secrets_due(None, None, at(99), DueFilter::All)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store
        .secrets_due(Some(&w.org.id), None, at(100), DueFilter::All)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].secret.id.clone(), due[0].version, due[0].due_at),
        (id.clone(), 1, at(100))
    );
    assert_eq!(due[0].secret.rotate_every, Some(Duration::from_secs(100)));

    let head = store.audit_head().await.unwrap();
    let announce = audit(AuditAction::SecretRotationDue);
    assert!(
        store
            .announce_due(&id, 1, &announce, at(100))
            .await
            .unwrap()
    );
    assert!(
        !store
            .announce_due(&id, 1, &announce, at(101))
            .await
            .unwrap()
    );
    assert_eq!(
        store.audit_head().await.unwrap().seq,
        head.seq + 1,
        "one event"
    );

    // A new version without a policy change keeps the policy and restarts the clock.
    store
        .put_secret(
            &put(&w, &id, "policy", 2, at(150)),
            &audit(AuditAction::SecretPut),
        )
        .await
        .unwrap();
    assert!(
        store
            .secrets_due(None, None, at(200), DueFilter::All)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .secrets_due(None, None, at(250), DueFilter::All)
            .await
            .unwrap()[0]
            .version,
        2
    );
    assert!(
        store
            .announce_due(&id, 2, &announce, at(250))
            .await
            .unwrap()
    );
}

keygate_testkit::on_both_databases!(
    due_secrets_are_announced_once,
    pending_versions_wait_for_promotion,
    versions_move_through_stages,
    racing_writers_get_a_conflict,
    deletion_erases_values_and_frees_the_name,
);
