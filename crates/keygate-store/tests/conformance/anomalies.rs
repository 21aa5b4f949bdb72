//! Anomalies: kept with the events they announce in one transaction, listed newest first by
//! project, key and state, acknowledged once.

use keygate_core::{AnomalyId, AuditAction, EventId, KeyId, ProjectId, WebhookId};
use keygate_store::{
    Anomaly, AnomalyFilter, Conflict, DeliveryFilter, OutboxEvent, StoreError, WebhookEndpoint,
};
use keygate_testkit::{Db, World, audit};

use super::{at, verify_chain, world};

fn anomaly(w: &World, key: &KeyId, project: Option<&ProjectId>, secs: u64) -> Anomaly {
    Anomaly {
        id: AnomalyId::generate(),
        org_id: w.org.id.clone(),
        project_id: project.cloned(),
        key_id: Some(key.clone()),
        detector: "request_spike".into(),
        evidence: r#"{"this_minute":300}"#.into(),
        action: "alert".into(),
        outcome: "recorded".into(),
        detected_at: at(secs),
        acknowledged_at: None,
        acknowledged_by: None,
        note: None,
    }
}

async fn anomalies_are_kept_listed_and_acknowledged(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let hook = WebhookEndpoint {
        id: WebhookId::generate(),
        org_id: w.org.id.clone(),
        project_id: None,
        url: "https://alerts.example.com/".into(),
        description: String::new(),
        event_types: vec!["anomaly.detected".into()],
        kek_id: "k".into(),
        secret_sealed: "s".into(),
        disabled_at: None,
        created_at: at(0),
        updated_at: at(0),
    };
    store
        .create_webhook(&hook, &audit(AuditAction::WebhookCreate))
        .await
        .unwrap();
    let (a, b) = (KeyId::generate(), KeyId::generate());
    let other = ProjectId::generate();
    let first = anomaly(&w, &a, Some(&w.project.id), 1);
    let event = OutboxEvent {
        id: EventId::generate(),
        org_id: Some(w.org.id.clone()),
        project_id: Some(w.project.id.clone()),
        event_type: "anomaly.detected".into(),
        payload: "{}".into(),
        at: at(1),
    };
    store.add_anomaly(&first, &[event]).await.unwrap();
    store
        .add_anomaly(&anomaly(&w, &b, Some(&other), 2), &[])
        .await
        .unwrap();
    store
        .add_anomaly(&anomaly(&w, &a, Some(&w.project.id), 3), &[])
        .await
        .unwrap();
    let queued = store
        .deliveries(&DeliveryFilter {
            endpoint_id: hook.id.clone(),
            state: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "the anomaly's event was queued with it");

    let filter = AnomalyFilter {
        org_id: w.org.id.clone(),
        project_id: None,
        key_id: None,
        acknowledged: None,
        before: None,
        limit: 10,
    };
    let list = |f: AnomalyFilter| {
        let store = store.clone();
        async move { store.anomalies(&f).await.unwrap() }
    };
    let all = list(filter.clone()).await;
    assert_eq!(all.len(), 3);
    assert!(all[0].id > all[1].id, "newest first");
    assert_eq!(
        list(AnomalyFilter {
            key_id: Some(b.clone()),
            ..filter.clone()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        list(AnomalyFilter {
            project_id: Some(w.project.id.clone()),
            ..filter.clone()
        })
        .await
        .len(),
        2
    );
    let page = list(AnomalyFilter {
        limit: 2,
        ..filter.clone()
    })
    .await;
    let rest = list(AnomalyFilter {
        before: Some(page[1].id.clone()),
        ..filter.clone()
    })
    .await;
    assert_eq!(rest.len(), 1);

    let acked = store
        .acknowledge_anomaly(
            &first.id,
            "key_admin",
            Some("expected: a load test"),
            at(10),
            &audit(AuditAction::AnomalyAcknowledge),
        )
        .await
        .unwrap();
    assert_eq!(acked.acknowledged_at, Some(at(10)));
    assert_eq!(store.anomaly(&first.id).await.unwrap(), Some(acked));
    let again = store
        .acknowledge_anomaly(
            &first.id,
            "key_admin",
            None,
            at(11),
            &audit(AuditAction::AnomalyAcknowledge),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        again,
        StoreError::Conflict(Conflict::AlreadyAcknowledged)
    ));
    let open = list(AnomalyFilter {
        acknowledged: Some(false),
        ..filter.clone()
    })
    .await;
    assert_eq!(open.len(), 2);
    let seen = list(AnomalyFilter {
        acknowledged: Some(true),
        ..filter
    })
    .await;
    assert_eq!(seen[0].note.as_deref(), Some("expected: a load test"));
    // Bootstrap, the endpoint and the one acknowledgement.
    assert_eq!(verify_chain(&w).await, Ok(3));
}

keygate_testkit::on_both_databases!(anomalies_are_kept_listed_and_acknowledged);
