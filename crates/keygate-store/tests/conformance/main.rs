//! The store conformance suite: every case runs against SQLite and against PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::time::Duration;

use keygate_core::audit::ChainVerifier;
use keygate_core::{
    AuditAction, Budget, ChainBreak, KeyEnv, KeyHint, KeyId, KeyKind, KeyLimits, KeyPatch,
    KeyStatus, Metadata, MicroUsd, OrgId, Per, ProjectId, Quota, RequestRate, Scope, Timestamp,
    Window,
};
use keygate_store::{
    AuditFilter, AuditSince, Bootstrap, Conflict, IdempotencyEntry, KeyFilter, Org, Project,
    ProjectChange, RotateOutcome, Rotation, StoreError,
};
use keygate_testkit::{Db, audit, new_key};

mod anomalies;
mod console_sessions;
mod credits;
mod responses;
mod signing_keys;
mod suspension;
mod webhooks;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0.saturating_add(Duration::from_secs(secs))
}

use keygate_testkit::World;

async fn world(db: Db) -> World {
    World::bootstrapped(db, T0).await
}

fn filter(w: &World) -> KeyFilter {
    KeyFilter {
        org_id: w.org.id.clone(),
        project_id: None,
        kind: KeyKind::Api,
        env: None,
        status: None,
        now: at(0),
        after: None,
        limit: 100,
        name_contains: None,
    }
}

async fn verify_chain(w: &World) -> Result<u64, ChainBreak> {
    let mut verifier = ChainVerifier::default();
    let mut after = 0;
    loop {
        let page =
            w.db.store
                .audit_chain_page(after, i64::MAX, 3)
                .await
                .unwrap();
        if page.is_empty() {
            break;
        }
        for event in &page {
            verifier.push(event)?;
            after = event.seq;
        }
    }
    let head = w.db.store.audit_head().await.unwrap();
    verifier.finish(&head).map(|(n, _)| n)
}

async fn bootstrap_happens_once(db: Db) {
    let w = world(db).await;
    assert!(w.db.store.is_bootstrapped().await.unwrap());
    let head = w.db.store.audit_head().await.unwrap();
    let mut again = new_key(&w.digest_key, &w.org.id, &w.project.id, at(1));
    again.record.kind = KeyKind::Admin;
    let second = Bootstrap {
        org: Org {
            id: OrgId::generate(),
            name: "other".into(),
            created_at: at(1),
        },
        project: w.project.clone(),
        owner: again.record.clone(),
        owner_secret: again.secret,
    };
    let err =
        w.db.store
            .bootstrap(&second, &audit(AuditAction::OwnerBootstrap))
            .await
            .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict(Conflict::AlreadyBootstrapped)
    ));
    assert!(w.db.store.org_by_name("other").await.unwrap().is_none());
    assert!(w.db.store.key(&again.record.id).await.unwrap().is_none());
    assert_eq!(w.db.store.audit_head().await.unwrap(), head);
}

async fn settings_keep_the_first_value(db: Db) {
    let w = world(db).await;
    let first =
        w.db.store
            .init_setting("digest_key", "a", T0)
            .await
            .unwrap();
    let second =
        w.db.store
            .init_setting("digest_key", "b", T0)
            .await
            .unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("a", "a"));
    assert_eq!(
        w.db.store.setting("digest_key").await.unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(w.db.store.setting("missing").await.unwrap(), None);
}

async fn migrations_apply_once(db: Db) {
    let w = world(db).await;
    // Opening the same database again re-runs the migrator, which must be a no-op.
    let again = keygate_store::connect(&w.db.url).await.unwrap();
    assert!(again.is_bootstrapped().await.unwrap());
}

/// Limits with every kind and period set.
fn limits() -> KeyLimits {
    let rate = |limit, per| RequestRate { limit, per };
    KeyLimits {
        requests: vec![
            rate(10, Per::Second),
            rate(100, Per::Minute),
            rate(1_000, Per::Hour),
            rate(1_000_000_000, Per::Day),
        ],
        tokens: vec![
            rate(100_000, Per::Minute),
            rate(1_000_000_000_000, Per::Day),
        ],
        concurrency: Some(100_000),
        quota: Some(Quota {
            amount: 1_000,
            per: Window::Month,
        }),
        budgets: vec![
            Budget::new(MicroUsd(2_500_000), Window::Day),
            Budget::parse("25.000001/month;alert=75;throttle=90:10/minute").unwrap(),
        ],
        credits: Some(MicroUsd(50_000_000)),
    }
}

async fn keys_round_trip_every_field(db: Db) {
    let w = world(db).await;
    let mut fx = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    fx.record.name = "billing backend ✓".into();
    fx.record.env = KeyEnv::Test;
    fx.record.scopes = vec![
        Scope::parse("chat:*").unwrap(),
        Scope::parse("GET /x/*").unwrap(),
    ];
    fx.record.expires_at = Some(at(3600));
    fx.record.ip_allow = keygate_core::record::parse_ip_allow(&["10.0.0.0/8".into()]).unwrap();
    fx.record.metadata = Metadata::parse(serde_json::json!({"team": "billing", "n": 3})).unwrap();
    fx.record.limits = limits();
    fx.record.rotate_every = Some(Duration::from_secs(86_400));
    w.db.store
        .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
        .await
        .unwrap();
    assert_eq!(
        w.db.store.key(&fx.record.id).await.unwrap(),
        Some(fx.record.clone())
    );
    let (record, secret) =
        w.db.store
            .key_by_digest(&fx.secret.digest)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(record, fx.record);
    assert_eq!(secret, fx.secret);
    assert!(
        w.db.store
            .key_by_digest(&[0u8; 32])
            .await
            .unwrap()
            .is_none()
    );
}

/// A publishable key keeps its origins through create, read, patch and listing; a secret key
/// reads back without any.
async fn publishable_keys_round_trip(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let origins = |items: &[&str]| {
        keygate_core::AllowedOrigins::parse(
            &items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let mut fx = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    fx.record.scopes = vec![Scope::parse("GET /proxy/catalog/*").unwrap()];
    fx.record.publishable = Some(origins(&[
        "https://app.example.com",
        "https://*.example.org",
    ]));
    store
        .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
        .await
        .unwrap();
    let secret_key = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    store
        .create_key(
            &secret_key.record,
            &secret_key.secret,
            &audit(AuditAction::KeyCreate),
        )
        .await
        .unwrap();
    assert_eq!(
        store.key(&fx.record.id).await.unwrap(),
        Some(fx.record.clone())
    );
    let (by_digest, _) = store
        .key_by_digest(&fx.secret.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_digest.publishable, fx.record.publishable);
    assert_eq!(
        store
            .key(&secret_key.record.id)
            .await
            .unwrap()
            .unwrap()
            .publishable,
        None
    );

    let patch = KeyPatch {
        origins: Some(origins(&["capacitor://localhost"])),
        ..KeyPatch::default()
    };
    let updated = store
        .update_key(&fx.record.id, &patch, at(5), &audit(AuditAction::KeyUpdate))
        .await
        .unwrap();
    assert_eq!(
        updated.publishable,
        Some(origins(&["capacitor://localhost"]))
    );
    let listed = store.list_keys(&filter(&w)).await.unwrap();
    let found = listed.iter().find(|k| k.id == fx.record.id).unwrap();
    assert_eq!(found, &updated);
}

async fn listing_filters_and_paginates(db: Db) {
    let w = world(db).await;
    let other = Project {
        id: ProjectId::generate(),
        org_id: w.org.id.clone(),
        name: "other".into(),
        created_at: T0,
        limits: KeyLimits::default(),
        anomaly_actions: Default::default(),
    };
    w.db.store
        .create_project(&other, &audit(AuditAction::ProjectCreate))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let project = if i < 5 { &w.project } else { &other };
        let mut fx = new_key(&w.digest_key, &w.org.id, &project.id, at(0));
        if i == 1 {
            fx.record.env = KeyEnv::Test;
        }
        if i == 2 {
            fx.record.expires_at = Some(at(0));
        }
        // Names for the search: `%` and `_` are text in it, not wildcards.
        fx.record.name = [
            "Billing-API",
            "billing_batch",
            "reports",
            "100% cache",
            "b",
            "x",
            "y",
        ][i]
            .to_owned();
        w.db.store
            .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
            .await
            .unwrap();
        ids.push(fx.record.id);
    }
    w.db.store
        .revoke_key(&ids[3], "leaked", at(0), &audit(AuditAction::KeyRevoke))
        .await
        .unwrap();
    w.db.store
        .delete_key(&ids[4], at(0), &audit(AuditAction::KeyDelete))
        .await
        .unwrap();

    let list = |f: KeyFilter| {
        let store = w.db.store.clone();
        async move {
            store
                .list_keys(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|k| k.id)
                .collect::<Vec<KeyId>>()
        }
    };
    assert_eq!(
        list(filter(&w)).await.len(),
        6,
        "deleted keys are hidden by default"
    );
    let in_project = KeyFilter {
        project_id: Some(other.id.clone()),
        ..filter(&w)
    };
    assert_eq!(list(in_project).await, ids[5..].to_vec());
    let test_env = KeyFilter {
        env: Some(KeyEnv::Test),
        ..filter(&w)
    };
    assert_eq!(list(test_env).await, vec![ids[1].clone()]);
    for (status, expected) in [
        (KeyStatus::Expired, vec![ids[2].clone()]),
        (KeyStatus::Revoked, vec![ids[3].clone()]),
        (KeyStatus::Deleted, vec![ids[4].clone()]),
    ] {
        let by_status = KeyFilter {
            status: Some(status),
            ..filter(&w)
        };
        assert_eq!(list(by_status).await, expected, "{status:?}");
    }
    let active = KeyFilter {
        status: Some(KeyStatus::Active),
        ..filter(&w)
    };
    assert_eq!(list(active).await.len(), 4);

    // Pages of two walk every key exactly once, in id order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(KeyFilter {
            after: after.clone(),
            limit: 2,
            ..filter(&w)
        })
        .await;
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        seen.extend(page);
    }
    let mut expected: Vec<KeyId> = ids.iter().filter(|id| **id != ids[4]).cloned().collect();
    expected.sort();
    assert_eq!(seen, expected);
    // Admin tokens never show up among API keys.
    assert!(seen.iter().all(|id| ids.contains(id)));

    let named = |text: &str| KeyFilter {
        name_contains: Some(text.to_owned()),
        ..filter(&w)
    };
    assert_eq!(list(named("BILLING")).await.len(), 2, "case is ignored");
    assert_eq!(
        list(named("g_b")).await,
        vec![ids[1].clone()],
        "_ is a character"
    );
    assert_eq!(
        list(named("0% c")).await,
        vec![ids[3].clone()],
        "% is a character"
    );
    assert!(list(named("%")).await.len() == 1);
    assert!(list(named("nothing like it")).await.is_empty());
}

async fn update_applies_patch_and_refuses_revoked(db: Db) {
    let w = world(db).await;
    let fx = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    let store = &w.db.store;
    store
        .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
        .await
        .unwrap();
    let patch = KeyPatch {
        name: Some("renamed".into()),
        scopes: Some(vec![Scope::parse("a:b").unwrap()]),
        expires_at: Some(Some(at(99))),
        limits: Some(limits()),
        ..KeyPatch::default()
    };
    let updated = store
        .update_key(&fx.record.id, &patch, at(5), &audit(AuditAction::KeyUpdate))
        .await
        .unwrap();
    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.limits, limits());
    assert_eq!(updated.updated_at, at(5));
    assert_eq!(store.key(&fx.record.id).await.unwrap(), Some(updated));
    let clear = KeyPatch {
        expires_at: Some(None),
        limits: Some(KeyLimits::default()),
        ..KeyPatch::default()
    };
    let cleared = store
        .update_key(&fx.record.id, &clear, at(6), &audit(AuditAction::KeyUpdate))
        .await
        .unwrap();
    assert_eq!(cleared.expires_at, None);
    assert!(cleared.limits.is_empty());
    assert_eq!(cleared.name, "renamed");
    assert_eq!(store.key(&fx.record.id).await.unwrap(), Some(cleared));

    store
        .revoke_key(&fx.record.id, "done", at(7), &audit(AuditAction::KeyRevoke))
        .await
        .unwrap();
    let err = store
        .update_key(&fx.record.id, &patch, at(8), &audit(AuditAction::KeyUpdate))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict(Conflict::KeyNotMutable(KeyStatus::Revoked))
    ));
    let err = store
        .revoke_key(
            &fx.record.id,
            "again",
            at(8),
            &audit(AuditAction::KeyRevoke),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict(Conflict::KeyNotMutable(_))
    ));
    let missing = store
        .update_key(
            &KeyId::generate(),
            &patch,
            at(8),
            &audit(AuditAction::KeyUpdate),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { entity: "key" }));
}

fn rotation(key: &KeyId, digest: Vec<u8>, grace_until: Timestamp, now: Timestamp) -> Rotation {
    Rotation {
        key_id: key.clone(),
        new_digest: digest,
        new_hint: KeyHint::from_stored("kg_live_new…hint".into()),
        grace_until,
        now,
        idempotency: None,
    }
}

async fn rotation_keeps_old_secret_for_grace(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let fx = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    store
        .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
        .await
        .unwrap();
    let outcome = store
        .rotate_key(
            &rotation(&fx.record.id, vec![1; 32], at(60), at(10)),
            &audit(AuditAction::KeyRotate),
        )
        .await
        .unwrap();
    let RotateOutcome::Rotated(rotated) = outcome else {
        panic!("expected a rotation");
    };
    assert_eq!(
        rotated.id, fx.record.id,
        "the key id is stable across rotation"
    );
    assert_eq!(rotated.generation, 1);
    assert_eq!(rotated.rotated_at, Some(at(10)));
    let (_, old) = store
        .key_by_digest(&fx.secret.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.grace_until, Some(at(60)));
    let (_, new) = store.key_by_digest(&[1; 32]).await.unwrap().unwrap();
    assert_eq!((new.generation, new.grace_until), (1, None));
    let live = store.live_secrets(&fx.record.id, at(59)).await.unwrap();
    assert_eq!(
        live.iter().map(|s| s.generation).collect::<Vec<_>>(),
        vec![1, 0]
    );
    let live = store.live_secrets(&fx.record.id, at(60)).await.unwrap();
    assert_eq!(
        live.iter().map(|s| s.generation).collect::<Vec<_>>(),
        vec![1]
    );

    // A second rotation with no grace cuts every earlier secret off at once.
    store
        .rotate_key(
            &rotation(&fx.record.id, vec![2; 32], at(20), at(20)),
            &audit(AuditAction::KeyRotate),
        )
        .await
        .unwrap();
    let (_, first) = store
        .key_by_digest(&fx.secret.digest)
        .await
        .unwrap()
        .unwrap();
    let (_, second) = store.key_by_digest(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(first.grace_until, Some(at(20)));
    assert_eq!(second.grace_until, Some(at(20)));
}

async fn rotation_is_idempotent(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let fx = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    store
        .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
        .await
        .unwrap();
    let entry = IdempotencyEntry {
        scope: format!("rotate:{}", fx.record.id),
        key: "retry-1".into(),
        fingerprint: "body-a".into(),
        response: "sealed-response".into(),
        created_at: at(10),
    };
    let mut first = rotation(&fx.record.id, vec![3; 32], at(10), at(10));
    first.idempotency = Some(entry.clone());
    assert!(matches!(
        store
            .rotate_key(&first, &audit(AuditAction::KeyRotate))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    let head = store.audit_head().await.unwrap();
    let mut retry = rotation(&fx.record.id, vec![4; 32], at(11), at(11));
    retry.idempotency = Some(IdempotencyEntry {
        response: "another".into(),
        created_at: at(11),
        ..entry.clone()
    });
    match store
        .rotate_key(&retry, &audit(AuditAction::KeyRotate))
        .await
        .unwrap()
    {
        RotateOutcome::Replayed(stored) => assert_eq!(stored.response, "sealed-response"),
        RotateOutcome::Rotated(_) => panic!("a retry must not rotate again"),
    }
    assert!(store.key_by_digest(&[4; 32]).await.unwrap().is_none());
    assert_eq!(
        store.key(&fx.record.id).await.unwrap().unwrap().generation,
        1
    );
    assert_eq!(store.audit_head().await.unwrap(), head);

    let mut reused = retry.clone();
    reused.idempotency = Some(IdempotencyEntry {
        fingerprint: "body-b".into(),
        ..entry.clone()
    });
    let err = store
        .rotate_key(&reused, &audit(AuditAction::KeyRotate))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict(Conflict::IdempotencyKeyReused)
    ));

    // Another request's entry, which nothing will ever ask for again.
    let mut other = rotation(&fx.record.id, vec![6; 32], at(20), at(20));
    other.idempotency = Some(IdempotencyEntry {
        key: "retry-2".into(),
        created_at: at(20),
        ..entry.clone()
    });
    store
        .rotate_key(&other, &audit(AuditAction::KeyRotate))
        .await
        .unwrap();

    // After a day the idempotency key may be used again.
    let mut later = rotation(&fx.record.id, vec![5; 32], at(90_000), at(90_000));
    later.idempotency = Some(IdempotencyEntry {
        created_at: at(90_000),
        ..entry
    });
    assert!(matches!(
        store
            .rotate_key(&later, &audit(AuditAction::KeyRotate))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    // And every expired entry, with the sealed secret it held, is gone.
    let stale = format!(
        "DELETE FROM idempotency WHERE created_at < {}",
        at(90_000).as_millis()
    );
    assert_eq!(w.db.tamper(&stale).await.unwrap(), 0);
}

async fn delete_leaves_a_tombstone(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let mut fx = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    fx.record.metadata = Metadata::parse(serde_json::json!({"owner": "x"})).unwrap();
    fx.record.limits = limits();
    store
        .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
        .await
        .unwrap();
    let deleted = store
        .delete_key(&fx.record.id, at(1), &audit(AuditAction::KeyDelete))
        .await
        .unwrap();
    assert_eq!(deleted.deleted_at, Some(at(1)));
    let (tomb, _) = store
        .key_by_digest(&fx.secret.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tomb.status(at(2)), KeyStatus::Deleted);
    assert!(tomb.metadata.as_map().is_empty() && tomb.name.is_empty());
    assert!(tomb.limits.is_empty());
    let again = store
        .delete_key(&fx.record.id, at(2), &audit(AuditAction::KeyDelete))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::NotFound { .. }));
}

async fn last_use_never_goes_back(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let fx = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    store
        .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
        .await
        .unwrap();
    let id = fx.record.id.clone();
    store
        .touch_keys(&[(id.clone(), at(50))], &[])
        .await
        .unwrap();
    store
        .touch_keys(&[(id.clone(), at(40))], &[(id.clone(), at(45))])
        .await
        .unwrap();
    store
        .touch_keys(&[], &[(id.clone(), at(30))])
        .await
        .unwrap();
    store.touch_keys(&[], &[]).await.unwrap();
    let key = store.key(&id).await.unwrap().unwrap();
    assert_eq!(key.last_used_at, Some(at(50)));
    assert_eq!(
        key.last_write_at,
        Some(at(45)),
        "a write never goes backwards"
    );
}

async fn rotation_policy_lists_due_keys(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let mut due = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    due.record.rotate_every = Some(Duration::from_secs(100));
    let mut later = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    later.record.rotate_every = Some(Duration::from_secs(1000));
    let none = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    let mut expired = new_key(&w.digest_key, &w.org.id, &w.project.id, at(0));
    expired.record.rotate_every = Some(Duration::from_secs(100));
    expired.record.expires_at = Some(at(0));
    for fx in [&due, &later, &none, &expired] {
        store
            .create_key(&fx.record, &fx.secret, &audit(AuditAction::KeyCreate))
            .await
            .unwrap();
    }
    let ids =
        |keys: Vec<keygate_core::KeyRecord>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    let listed = store
        .keys_due_for_rotation(&filter(&w), at(100))
        .await
        .unwrap();
    assert_eq!(ids(listed), vec![due.record.id.clone()]);
    store
        .rotate_key(
            &rotation(&due.record.id, vec![9; 32], at(150), at(150)),
            &audit(AuditAction::KeyRotate),
        )
        .await
        .unwrap();
    let listed = store
        .keys_due_for_rotation(&filter(&w), at(200))
        .await
        .unwrap();
    assert!(listed.is_empty(), "a rotation restarts the clock");
    let listed = store
        .keys_due_for_rotation(&filter(&w), at(1000))
        .await
        .unwrap();
    assert_eq!(
        listed.len(),
        2,
        "rotated at 150 every 100 s, and the 1000 s key"
    );
}

async fn projects_are_unique_per_org(db: Db) {
    let w = world(db).await;
    let duplicate = Project {
        id: ProjectId::generate(),
        ..w.project.clone()
    };
    let err =
        w.db.store
            .create_project(&duplicate, &audit(AuditAction::ProjectCreate))
            .await
            .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict(Conflict::DuplicateName { entity: "project" })
    ));
    let found =
        w.db.store
            .project_by_name(&w.org.id, "default")
            .await
            .unwrap();
    assert_eq!(found, Some(w.project.clone()));
    assert_eq!(
        w.db.store.list_projects(&w.org.id).await.unwrap(),
        vec![w.project.clone()]
    );
    assert_eq!(
        w.db.store.project(&w.project.id).await.unwrap(),
        Some(w.project.clone())
    );
}

/// A project's limits are written with their audit event, read back by every project query,
/// and can be removed again; an unknown project is "not found" and writes no event.
async fn project_limits_round_trip(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    assert!(w.project.limits.is_empty(), "a new project has none");
    let head = store.audit_head().await.unwrap();

    let set = store
        .set_project_limits(
            &w.project.id,
            &limits(),
            at(5),
            &audit(AuditAction::ProjectUpdate),
        )
        .await
        .unwrap();
    let expected = Project {
        limits: limits(),
        ..w.project.clone()
    };
    assert_eq!(set, expected);
    assert_eq!(
        store.project(&w.project.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.project_by_name(&w.org.id, "default").await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.list_projects(&w.org.id).await.unwrap(),
        vec![expected]
    );
    assert_eq!(store.audit_head().await.unwrap().seq, head.seq + 1);
    let events = store
        .list_audit(&AuditFilter {
            org_id: w.org.id.clone(),
            project_id: None,
            action: Some("project.update".into()),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "the change and its event commit together");

    // Limits given at creation are stored too.
    let limited = Project {
        id: ProjectId::generate(),
        org_id: w.org.id.clone(),
        name: "limited".into(),
        created_at: at(6),
        limits: limits(),
        anomaly_actions: [("spend_spike".to_owned(), "suspend".to_owned())].into(),
    };
    store
        .create_project(&limited, &audit(AuditAction::ProjectCreate))
        .await
        .unwrap();
    let limited_id = limited.id.clone();
    assert_eq!(store.project(&limited.id).await.unwrap(), Some(limited));

    let cleared = store
        .set_project_limits(
            &w.project.id,
            &KeyLimits::default(),
            at(7),
            &audit(AuditAction::ProjectUpdate),
        )
        .await
        .unwrap();
    assert!(cleared.limits.is_empty());
    assert_eq!(store.project(&w.project.id).await.unwrap(), Some(cleared));

    // Anomaly actions change alone: the limits stay; an empty map clears them.
    let actions = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let change = |limits: Option<KeyLimits>, pairs: Option<&[(&str, &str)]>| ProjectChange {
        limits,
        anomaly_actions: pairs.map(actions),
    };
    store
        .update_project(
            &limited_id,
            &change(None, Some(&[("request_spike", "throttle")])),
            at(8),
            &audit(AuditAction::ProjectUpdate),
        )
        .await
        .unwrap();
    let stored = store.project(&limited_id).await.unwrap().unwrap();
    assert_eq!(stored.limits, limits());
    assert_eq!(
        stored.anomaly_actions,
        actions(&[("request_spike", "throttle")])
    );
    let kept = store
        .update_project(
            &limited_id,
            &change(Some(KeyLimits::default()), None),
            at(9),
            &audit(AuditAction::ProjectUpdate),
        )
        .await
        .unwrap();
    assert_eq!(kept.anomaly_actions, stored.anomaly_actions);
    let none = store
        .update_project(
            &limited_id,
            &change(None, Some(&[])),
            at(10),
            &audit(AuditAction::ProjectUpdate),
        )
        .await
        .unwrap();
    assert!(none.anomaly_actions.is_empty());
    assert_eq!(store.project(&limited_id).await.unwrap(), Some(none));

    let head = store.audit_head().await.unwrap();
    let err = store
        .set_project_limits(
            &ProjectId::generate(),
            &limits(),
            at(8),
            &audit(AuditAction::ProjectUpdate),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { entity: "project" }),
        "{err:?}"
    );
    assert_eq!(
        store.audit_head().await.unwrap(),
        head,
        "nothing was written"
    );
}

async fn checkpoints_are_kept_once_each(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    assert_eq!(store.last_checkpoint().await.unwrap(), None);
    let checkpoint = |seq: i64| keygate_store::Checkpoint {
        seq,
        hash: format!("hash-{seq}"),
        signed_at: at(seq as u64),
        key_id: "k1".into(),
        signature: "c2ln".into(),
    };
    assert!(store.add_checkpoint(&checkpoint(5)).await.unwrap());
    assert!(store.add_checkpoint(&checkpoint(2)).await.unwrap());
    let other = keygate_store::Checkpoint {
        hash: "another".into(),
        ..checkpoint(5)
    };
    assert!(
        !store.add_checkpoint(&other).await.unwrap(),
        "the first one at a sequence number stays"
    );
    assert_eq!(store.last_checkpoint().await.unwrap(), Some(checkpoint(5)));
    assert_eq!(
        store.checkpoints(0, 10).await.unwrap(),
        vec![checkpoint(2), checkpoint(5)]
    );
    assert_eq!(store.checkpoints(2, 10).await.unwrap(), vec![checkpoint(5)]);
}

async fn audit_chain_detects_tampering(db: Db) {
    let w = world(db).await;
    for i in 0..5 {
        let mut draft = audit(AuditAction::KeyUpdate);
        draft.org_id = Some(w.org.id.to_string());
        draft.target = Some(format!("key_{i}"));
        w.db.store.append_audit(&draft, at(i)).await.unwrap();
    }
    assert_eq!(verify_chain(&w).await, Ok(6));
    let listed =
        w.db.store
            .list_audit(&AuditFilter {
                org_id: w.org.id.clone(),
                project_id: None,
                action: Some("key.update".into()),
                before: None,
                limit: 2,
            })
            .await
            .unwrap();
    assert_eq!(listed.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![6, 5]);
    // Export: chain order, after a cursor, the org's events only.
    let since = |after, limit| AuditSince {
        org_id: w.org.id.clone(),
        project_id: None,
        after,
        limit,
    };
    let page = w.db.store.audit_since(&since(2, 2)).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    let rest = w.db.store.audit_since(&since(4, 10)).await.unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5, 6]);
    let other = AuditSince {
        org_id: keygate_core::OrgId::generate(),
        ..since(0, 10)
    };
    let seen = w.db.store.audit_since(&other).await.unwrap();
    assert!(
        seen.iter().all(|e| e.org_id.is_none()),
        "another org sees none of this org's events (only those of no org, as in the list)"
    );

    w.db.tamper("UPDATE audit_events SET target = 'key_x' WHERE seq = 3")
        .await
        .unwrap();
    assert_eq!(verify_chain(&w).await, Err(ChainBreak::Altered { seq: 3 }));
    w.db.tamper("UPDATE audit_events SET target = 'key_1' WHERE seq = 3")
        .await
        .unwrap();
    assert_eq!(verify_chain(&w).await, Ok(6));
    w.db.tamper("DELETE FROM audit_events WHERE seq = 6")
        .await
        .unwrap();
    assert_eq!(
        verify_chain(&w).await,
        Err(ChainBreak::Truncated { last: 5, head: 6 })
    );
    w.db.tamper("DELETE FROM audit_events WHERE seq = 2")
        .await
        .unwrap();
    assert_eq!(
        verify_chain(&w).await,
        Err(ChainBreak::Gap { after: 1, found: 3 })
    );
}

async fn concurrent_appends_keep_one_chain(db: Db) {
    let w = world(db).await;
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let store = w.db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append_audit(&audit(AuditAction::AccessDenied), at(i))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(verify_chain(&w).await, Ok(17));
}

keygate_testkit::on_both_databases!(
    bootstrap_happens_once,
    settings_keep_the_first_value,
    migrations_apply_once,
    keys_round_trip_every_field,
    publishable_keys_round_trip,
    listing_filters_and_paginates,
    update_applies_patch_and_refuses_revoked,
    rotation_keeps_old_secret_for_grace,
    rotation_is_idempotent,
    delete_leaves_a_tombstone,
    last_use_never_goes_back,
    rotation_policy_lists_due_keys,
    projects_are_unique_per_org,
    project_limits_round_trip,
    audit_chain_detects_tampering,
    checkpoints_are_kept_once_each,
    concurrent_appends_keep_one_chain,
);
