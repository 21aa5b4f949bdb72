//! A key's suspension: stored, listed by status, resumable, and never over a revocation.

use keygate_core::{AuditAction, KeyStatus, KeyThrottle, RequestRate};
use keygate_store::{Conflict, KeyFilter, StoreError};
use keygate_testkit::{Db, audit, new_key};

use super::{at, filter, verify_chain, world};

async fn suspension_is_stored_listed_and_undone(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let fx = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    let id = fx.record.id.clone();
    store
        .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
        .await
        .unwrap();

    let suspended = store
        .suspend_key(&id, "spend spike", at(1), &audit(AuditAction::KeySuspend))
        .await
        .unwrap();
    assert_eq!(suspended.suspended_at, Some(at(1)));
    assert_eq!(suspended.suspended_reason.as_deref(), Some("spend spike"));
    assert_eq!(suspended.updated_at, at(1));
    assert_eq!(store.key(&id).await.unwrap(), Some(suspended.clone()));
    let listed = |status| {
        let f = KeyFilter {
            status: Some(status),
            now: at(2),
            ..filter(&w)
        };
        let store = store.clone();
        async move { store.list_keys(&f).await.unwrap().len() }
    };
    assert_eq!(listed(KeyStatus::Suspended).await, 1);
    assert_eq!(listed(KeyStatus::Active).await, 0);

    // A second suspension keeps the first reason; a resume of an active key is refused.
    let again = store
        .suspend_key(&id, "other", at(2), &audit(AuditAction::KeySuspend))
        .await
        .unwrap_err();
    assert!(matches!(
        again,
        StoreError::Conflict(Conflict::AlreadySuspended)
    ));
    let resumed = store
        .resume_key(&id, at(3), &audit(AuditAction::KeyResume))
        .await
        .unwrap();
    assert_eq!(resumed.suspended_at, None);
    assert_eq!(resumed.suspended_reason, None);
    assert_eq!(resumed.status(at(3)), KeyStatus::Active);
    assert_eq!(listed(KeyStatus::Suspended).await, 0);
    assert_eq!(listed(KeyStatus::Active).await, 1);
    let not_suspended = store
        .resume_key(&id, at(4), &audit(AuditAction::KeyResume))
        .await
        .unwrap_err();
    assert!(matches!(
        not_suspended,
        StoreError::Conflict(Conflict::NotSuspended(KeyStatus::Active))
    ));

    // A suspended key can still be revoked, and a revoked one neither suspended nor resumed.
    store
        .suspend_key(&id, "leak", at(5), &audit(AuditAction::KeySuspend))
        .await
        .unwrap();
    store
        .revoke_key(&id, "leaked", at(6), &audit(AuditAction::KeyRevoke))
        .await
        .unwrap();
    let revoked = store
        .suspend_key(&id, "x", at(7), &audit(AuditAction::KeySuspend))
        .await
        .unwrap_err();
    assert!(matches!(
        revoked,
        StoreError::Conflict(Conflict::KeyNotMutable(KeyStatus::Revoked))
    ));
    let revoked = store
        .resume_key(&id, at(7), &audit(AuditAction::KeyResume))
        .await
        .unwrap_err();
    assert!(matches!(
        revoked,
        StoreError::Conflict(Conflict::NotSuspended(KeyStatus::Revoked))
    ));
    // Each accepted change wrote its event (create, suspend, resume, suspend, revoke, and the
    // bootstrap's), and the refused ones none.
    assert_eq!(verify_chain(&w).await, Ok(6));
}

/// An anomaly's throttle: stored with the key, kept to the later end, lifted by a resume, and
/// refused on a key that is not active.
async fn a_throttle_is_stored_and_lifted_by_a_resume(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let fx = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    let id = fx.record.id.clone();
    store
        .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
        .await
        .unwrap();
    let throttle = |until: u64| KeyThrottle {
        until: at(until),
        requests: vec![RequestRate::parse("6/minute").unwrap()],
        reason: "anomaly request_spike".into(),
    };
    let throttled = store
        .throttle_key(&id, &throttle(100), at(1), &audit(AuditAction::KeyThrottle))
        .await
        .unwrap();
    assert_eq!(throttled.throttle, Some(throttle(100)));
    assert_eq!(store.key(&id).await.unwrap(), Some(throttled.clone()));
    let shorter = store
        .throttle_key(&id, &throttle(50), at(2), &audit(AuditAction::KeyThrottle))
        .await
        .unwrap();
    assert_eq!(
        shorter.throttle.unwrap().until,
        at(100),
        "the later end holds"
    );
    let resumed = store
        .resume_key(&id, at(3), &audit(AuditAction::KeyResume))
        .await
        .unwrap();
    assert_eq!(resumed.throttle, None);
    assert_eq!(store.key(&id).await.unwrap().unwrap().throttle, None);
    store
        .suspend_key(&id, "leak", at(4), &audit(AuditAction::KeySuspend))
        .await
        .unwrap();
    let refused = store
        .throttle_key(&id, &throttle(200), at(5), &audit(AuditAction::KeyThrottle))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        StoreError::Conflict(Conflict::KeyNotMutable(KeyStatus::Suspended))
    ));
    assert_eq!(verify_chain(&w).await, Ok(6));
}

keygate_testkit::on_both_databases!(
    suspension_is_stored_listed_and_undone,
    a_throttle_is_stored_and_lifted_by_a_resume
);
