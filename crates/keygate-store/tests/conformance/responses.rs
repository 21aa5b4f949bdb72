//! The Responses API's kept answers: per project, replaced by id, hidden once expired and
//! pruned, and at most so many per project (the oldest go first).

use keygate_store::StoredResponse;
use keygate_testkit::Db;

use super::{at, world};

fn answer(project: &str, id: &str, created: u64) -> StoredResponse {
    StoredResponse {
        project_id: project.to_owned(),
        id: id.to_owned(),
        key_id: "key_1".to_owned(),
        model: "chat".to_owned(),
        created_at: at(created),
        expires_at: at(created + 100),
        response: format!(r#"{{"id":"{id}","secret":"conversation text"}}"#),
        conversation: "[]".to_owned(),
    }
}

async fn responses_are_kept_per_project_and_bounded(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    store
        .put_response(&answer("p1", "resp_a", 0), 10)
        .await
        .unwrap();
    assert_eq!(
        store.response("p1", "resp_a", at(1)).await.unwrap(),
        Some(answer("p1", "resp_a", 0))
    );
    assert!(!format!("{:?}", answer("p1", "resp_a", 0)).contains("conversation text"));
    // Another project does not see it; an expired one is not read.
    assert_eq!(store.response("p2", "resp_a", at(1)).await.unwrap(), None);
    assert_eq!(store.response("p1", "resp_a", at(100)).await.unwrap(), None);

    // Replaced by id; at most two per project, the oldest going first.
    let mut newer = answer("p1", "resp_a", 5);
    newer.conversation = r#"[{"role":"user","content":"hi"}]"#.to_owned();
    store.put_response(&newer, 10).await.unwrap();
    assert_eq!(
        store.response("p1", "resp_a", at(6)).await.unwrap(),
        Some(newer)
    );
    store
        .put_response(&answer("p2", "resp_x", 1), 2)
        .await
        .unwrap();
    store
        .put_response(&answer("p1", "resp_b", 6), 2)
        .await
        .unwrap();
    store
        .put_response(&answer("p1", "resp_c", 7), 2)
        .await
        .unwrap();
    assert_eq!(store.response("p1", "resp_a", at(8)).await.unwrap(), None);
    assert!(
        store
            .response("p1", "resp_b", at(8))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .response("p1", "resp_c", at(8))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .response("p2", "resp_x", at(8))
            .await
            .unwrap()
            .is_some()
    );

    // Another key's answer of the same id is not replaced.
    let mut other = answer("p1", "resp_c", 9);
    other.key_id = "key_2".to_owned();
    other.response = "{}".to_owned();
    store.put_response(&other, 2).await.unwrap();
    assert_eq!(
        store.response("p1", "resp_c", at(10)).await.unwrap(),
        Some(answer("p1", "resp_c", 7))
    );
    // Kept in the same millisecond: exactly `keep` stay.
    store.put_response(&answer("p3", "x1", 1), 2).await.unwrap();
    store.put_response(&answer("p3", "x2", 1), 2).await.unwrap();
    store.put_response(&answer("p3", "x3", 1), 2).await.unwrap();
    let left = [
        store.response("p3", "x1", at(2)).await.unwrap().is_some(),
        store.response("p3", "x2", at(2)).await.unwrap().is_some(),
        store.response("p3", "x3", at(2)).await.unwrap().is_some(),
    ];
    assert_eq!(left, [false, true, true], "the newest two by id");

    assert!(store.delete_response("p1", "resp_b").await.unwrap());
    assert!(!store.delete_response("p1", "resp_b").await.unwrap());
    assert!(!store.delete_response("p2", "resp_c").await.unwrap());
    // resp_x expires at 101, x2 and x3 at 101, resp_c at 107.
    assert_eq!(store.prune_responses(at(102)).await.unwrap(), 3);
    assert!(
        store
            .response("p1", "resp_c", at(102))
            .await
            .unwrap()
            .is_some()
    );
}

keygate_testkit::on_both_databases!(responses_are_kept_per_project_and_bounded);
