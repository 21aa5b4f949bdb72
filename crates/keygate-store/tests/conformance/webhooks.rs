//! Webhooks: endpoints, the outbox's fan-out by type and project, claims that one node holds
//! at a time, retries, the dead-letter list and replay, and the cursor kept with the events.

use keygate_core::{AuditAction, EventId, OrgId, ProjectId, WebhookId};
use keygate_store::{
    AttemptOutcome, Conflict, CursorMove, DeliveryFilter, DeliveryState, OutboxEvent, StoreError,
    WebhookEndpoint, WebhookPatch,
};
use keygate_testkit::{Db, World, audit};

use super::{at, world};

fn endpoint(w: &World, types: &[&str], project: Option<ProjectId>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: WebhookId::generate(),
        org_id: w.org.id.clone(),
        project_id: project,
        url: "https://alerts.example.com/hook".into(),
        description: "on call".into(),
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        kek_id: "kek-a".into(),
        secret_sealed: "sealed".into(),
        disabled_at: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn event(org: Option<&OrgId>, project: Option<&ProjectId>, kind: &str) -> OutboxEvent {
    OutboxEvent {
        id: EventId::generate(),
        org_id: org.cloned(),
        project_id: project.cloned(),
        event_type: kind.into(),
        payload: format!(r#"{{"type":"{kind}"}}"#),
        at: at(1),
    }
}

async fn outbox_fans_out_by_type_and_project(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let all = endpoint(&w, &[], None);
    let revokes = endpoint(&w, &["key.revoked"], None);
    let scoped = endpoint(&w, &[], Some(w.project.id.clone()));
    for e in [&all, &revokes, &scoped] {
        store
            .create_webhook(e, &audit(AuditAction::WebhookCreate))
            .await
            .unwrap();
    }
    let org = Some(&w.org.id);
    let other_project = ProjectId::generate();
    let events = [
        event(org, Some(&w.project.id), "key.revoked"), // all three
        event(org, Some(&other_project), "key.suspended"), // `all` only
        event(None, None, "kek.rotated"),               // `all` only (no project)
        event(Some(&OrgId::generate()), None, "key.revoked"), // another org's: none
    ];
    let first = CursorMove {
        name: "audit",
        from: None,
        to: 17,
    };
    let queued = store
        .enqueue_events(&events, None, Some(&first), at(1))
        .await
        .unwrap();
    assert_eq!(queued, 5);
    assert_eq!(store.cursor("audit").await.unwrap(), Some(17));
    // Another node's move from a stale position writes nothing, events included.
    let stale = CursorMove {
        name: "audit",
        from: Some(3),
        to: 20,
    };
    let late = [event(org, Some(&w.project.id), "key.revoked")];
    let refused = store
        .enqueue_events(&late, None, Some(&stale), at(1))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        StoreError::Conflict(Conflict::VersionTaken { .. })
    ));
    let fresh = [event(org, Some(&w.project.id), "key.revoked")];
    let again = store
        .enqueue_events(&fresh, None, Some(&first), at(1))
        .await;
    assert!(again.is_err(), "a cursor is created once");
    assert_eq!(store.cursor("audit").await.unwrap(), Some(17));
    assert_eq!(store.cursor("never").await.unwrap(), None);
    let count = |id: &WebhookId| {
        let filter = DeliveryFilter {
            endpoint_id: id.clone(),
            state: None,
            before: None,
            limit: 50,
        };
        let store = store.clone();
        async move { store.deliveries(&filter).await.unwrap().len() }
    };
    assert_eq!(count(&all.id).await, 3);
    assert_eq!(count(&revokes.id).await, 1);
    assert_eq!(count(&scoped.id).await, 1);

    // A test event goes to the endpoint named, whatever it subscribes to.
    let test = event(org, None, "webhook.test");
    let queued = store
        .enqueue_events(&[test], Some(&revokes.id), None, at(2))
        .await
        .unwrap();
    assert_eq!(queued, 1);
    assert_eq!(count(&revokes.id).await, 2);

    // Disabled, an endpoint's deliveries wait.
    let patch = WebhookPatch {
        disabled: Some(true),
        event_types: Some(vec!["key.resumed".into()]),
        ..WebhookPatch::default()
    };
    let updated = store
        .update_webhook(&all.id, &patch, at(3), &audit(AuditAction::WebhookUpdate))
        .await
        .unwrap();
    assert_eq!(updated.disabled_at, Some(at(3)));
    assert_eq!(updated.event_types, ["key.resumed"]);
    assert_eq!(store.webhook(&all.id).await.unwrap(), Some(updated));
    let claimed = store.claim_deliveries(at(4), at(64), 100).await.unwrap();
    assert!(claimed.iter().all(|d| d.delivery.endpoint_id != all.id));
    assert_eq!(claimed.len(), 3);
}

async fn a_delivery_is_claimed_once_retried_then_dead_and_replayed(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let hook = endpoint(&w, &[], None);
    store
        .create_webhook(&hook, &audit(AuditAction::WebhookCreate))
        .await
        .unwrap();
    store
        .enqueue_events(
            &[event(Some(&w.org.id), None, "key.revoked")],
            None,
            None,
            at(1),
        )
        .await
        .unwrap();

    let first = store.claim_deliveries(at(1), at(31), 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].payload, r#"{"type":"key.revoked"}"#);
    assert_eq!(first[0].url, hook.url);
    assert_eq!(first[0].secret_sealed, "sealed");
    // Held by the first claim, it is nobody else's until the lease ends.
    assert!(
        store
            .claim_deliveries(at(2), at(32), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let id = first[0].delivery.id.clone();
    assert_eq!(first[0].claimed_until, at(31));
    let recorded = store
        .finish_attempt(
            &first[0],
            &AttemptOutcome::Retry {
                at: at(10),
                status: Some(503),
                error: "the endpoint answered 503".into(),
            },
            at(2),
        )
        .await
        .unwrap();
    assert!(recorded);
    // The same claim cannot record twice.
    assert!(
        !store
            .finish_attempt(&first[0], &AttemptOutcome::Delivered { status: 200 }, at(3))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_deliveries(at(9), at(39), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_deliveries(at(10), at(40), 10).await.unwrap();
    assert_eq!(again[0].delivery.attempts, 1);
    assert_eq!(again[0].delivery.last_status, Some(503));
    // A claim that lapsed and was taken by another node records nothing.
    let lapsed = again[0].clone();
    let taken = store.claim_deliveries(at(41), at(71), 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        !store
            .finish_attempt(&lapsed, &AttemptOutcome::Delivered { status: 200 }, at(42))
            .await
            .unwrap()
    );
    store
        .finish_attempt(
            &taken[0],
            &AttemptOutcome::Dead {
                status: None,
                error: "connection refused".into(),
            },
            at(11),
        )
        .await
        .unwrap();
    let dead = DeliveryFilter {
        endpoint_id: hook.id.clone(),
        state: Some(DeliveryState::Dead),
        before: None,
        limit: 10,
    };
    let listed = store.deliveries(&dead).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].attempts, 2);
    assert_eq!(listed[0].last_error.as_deref(), Some("connection refused"));
    assert!(
        store
            .claim_deliveries(at(100), at(130), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let replayed = store
        .replay_delivery(&hook.id, &id, at(12), &audit(AuditAction::WebhookReplay))
        .await
        .unwrap();
    assert_eq!(
        (replayed.state, replayed.attempts),
        (DeliveryState::Pending, 0)
    );
    let pending = store
        .replay_delivery(&hook.id, &id, at(12), &audit(AuditAction::WebhookReplay))
        .await
        .unwrap_err();
    assert!(matches!(
        pending,
        StoreError::Conflict(Conflict::DeliveryPending)
    ));
    let claimed = store.claim_deliveries(at(12), at(42), 10).await.unwrap();
    store
        .finish_attempt(
            &claimed[0],
            &AttemptOutcome::Delivered { status: 204 },
            at(13),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let done = store
        .deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Delivered),
            ..dead.clone()
        })
        .await
        .unwrap();
    assert_eq!(done[0].delivered_at, Some(at(13)));
    assert_eq!(done[0].last_status, Some(204));

    // Deleted, an endpoint's pending deliveries are dead and it is gone from listings; its
    // secret is still found by a KEK rotation.
    store
        .enqueue_events(
            &[event(Some(&w.org.id), None, "key.revoked")],
            None,
            None,
            at(14),
        )
        .await
        .unwrap();
    store
        .delete_webhook(&hook.id, at(15), &audit(AuditAction::WebhookDelete))
        .await
        .unwrap();
    assert_eq!(store.deliveries(&dead).await.unwrap().len(), 1);
    assert!(store.webhook(&hook.id).await.unwrap().is_none());
    assert!(store.webhooks(&w.org.id).await.unwrap().is_empty());
    let stale = store.webhooks_not_wrapped_by("kek-b", 10).await.unwrap();
    assert_eq!(stale.len(), 1);
    assert!(
        store
            .rewrap_webhook_secret(&hook.id, "kek-a", "kek-b", "resealed")
            .await
            .unwrap()
    );
    assert!(
        !store
            .rewrap_webhook_secret(&hook.id, "kek-a", "kek-b", "resealed")
            .await
            .unwrap()
    );
    assert!(
        store
            .webhooks_not_wrapped_by("kek-b", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

keygate_testkit::on_both_databases!(
    outbox_fans_out_by_type_and_project,
    a_delivery_is_claimed_once_retried_then_dead_and_replayed,
);
