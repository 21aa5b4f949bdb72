//! Prepaid credits topped up: added to what was granted, with the audit event, never past the
//! largest amount, and not on a revoked key.

use keygate_core::{AuditAction, KeyStatus, MicroUsd};
use keygate_store::{Conflict, StoreError};
use keygate_testkit::{Db, audit, new_key};

use super::{at, verify_chain, world};

async fn credits_add_up_for_keys_and_projects(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let fx = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    let id = fx.record.id.clone();
    store
        .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
        .await
        .unwrap();
    let add = |usd: i64, t: u64| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            store
                .add_key_credits(&id, MicroUsd(usd), at(t), &audit(AuditAction::CreditsAdd))
                .await
        }
    };
    assert_eq!(
        add(10_000_000, 1).await.unwrap().limits.credits,
        Some(MicroUsd(10_000_000))
    );
    let twice = add(2_500_000, 2).await.unwrap();
    assert_eq!(twice.limits.credits, Some(MicroUsd(12_500_000)));
    assert_eq!(twice.updated_at, at(2));
    assert_eq!(
        store.key(&id).await.unwrap().unwrap().limits.credits,
        twice.limits.credits
    );
    let too_much = add(keygate_core::limits::MAX_BUDGET.0, 3)
        .await
        .unwrap_err();
    assert!(matches!(
        too_much,
        StoreError::Conflict(Conflict::CreditsTooHigh)
    ));

    let project = store
        .add_project_credits(
            &w.project.id,
            MicroUsd(1_000_000),
            at(4),
            &audit(AuditAction::CreditsAdd),
        )
        .await
        .unwrap();
    assert_eq!(project.limits.credits, Some(MicroUsd(1_000_000)));
    let project = store
        .add_project_credits(
            &w.project.id,
            MicroUsd(500_000),
            at(5),
            &audit(AuditAction::CreditsAdd),
        )
        .await
        .unwrap();
    assert_eq!(project.limits.credits, Some(MicroUsd(1_500_000)));
    assert_eq!(store.project(&w.project.id).await.unwrap(), Some(project));

    store
        .revoke_key(&id, "gone", at(6), &audit(AuditAction::KeyRevoke))
        .await
        .unwrap();
    let revoked = add(1, 7).await.unwrap_err();
    assert!(matches!(
        revoked,
        StoreError::Conflict(Conflict::KeyNotMutable(KeyStatus::Revoked))
    ));
    // The bootstrap, the creation, two additions, two to the project and the revocation; the
    // refused ones wrote nothing.
    assert_eq!(verify_chain(&w).await, Ok(7));
}

keygate_testkit::on_both_databases!(credits_add_up_for_keys_and_projects);
