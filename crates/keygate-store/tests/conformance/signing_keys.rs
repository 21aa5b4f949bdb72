//! Token signing keys: added once per kid, listed in signing order, re-sealed only from the
//! KEK they were sealed by, deleted once.

use keygate_store::StoredSigningKey;
use keygate_testkit::Db;

use super::{at, world};

fn key(kid: &str, signs_from: u64) -> StoredSigningKey {
    StoredSigningKey {
        kid: kid.to_owned(),
        kek_id: "kek-a".to_owned(),
        sealed: format!("sealed-{kid}"),
        created_at: at(0),
        signs_from: at(signs_from),
    }
}

async fn signing_keys_are_added_listed_rewrapped_and_deleted(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    assert!(store.signing_keys().await.unwrap().is_empty());
    store.add_signing_key(&key("later", 50)).await.unwrap();
    store.add_signing_key(&key("first", 0)).await.unwrap();
    // A second node making the same key changes nothing.
    let mut same = key("first", 0);
    same.sealed = "other".to_owned();
    store.add_signing_key(&same).await.unwrap();
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys, [key("first", 0), key("later", 50)]);

    // Re-sealed only when still sealed by the KEK the rotation read.
    assert!(
        !store
            .rewrap_signing_key("first", "kek-x", "kek-b", "new")
            .await
            .unwrap()
    );
    assert!(
        store
            .rewrap_signing_key("first", "kek-a", "kek-b", "new")
            .await
            .unwrap()
    );
    let first = &store.signing_keys().await.unwrap()[0];
    assert_eq!(
        (first.kek_id.as_str(), first.sealed.as_str()),
        ("kek-b", "new")
    );
    assert!(!format!("{first:?}").contains("new"));

    assert!(store.delete_signing_key("first").await.unwrap());
    assert!(!store.delete_signing_key("first").await.unwrap());
    assert_eq!(store.signing_keys().await.unwrap(), [key("later", 50)]);
}

keygate_testkit::on_both_databases!(signing_keys_are_added_listed_rewrapped_and_deleted);
