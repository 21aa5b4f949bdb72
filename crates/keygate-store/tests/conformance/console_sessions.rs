//! The console's sessions: stored by digest, touched forward only, ended once (audited), and
//! ended together for one subject.

use keygate_core::{AuditAction, KeyId, Role};
use keygate_store::ConsoleSession;
use keygate_testkit::{Db, audit};

use super::{at, verify_chain, world};

fn session(w: &keygate_testkit::World, id: &str, subject: &str) -> ConsoleSession {
    ConsoleSession {
        id: id.to_owned(),
        org_id: w.org.id.clone(),
        subject: subject.to_owned(),
        token_id: Some(KeyId::generate()),
        role: Role::Viewer,
        project_id: Some(w.project.id.clone()),
        name: "ops <bot>".to_owned(),
        csrf: "csrf-token".to_owned(),
        created_at: at(0),
        last_seen_at: at(0),
        expires_at: at(100),
        ended_at: None,
    }
}

async fn console_sessions_are_kept_touched_and_ended(db: Db) {
    let w = world(db).await;
    let store = &w.db.store;
    let (a, b, c) = (
        session(&w, "digest-a", "token:one"),
        session(&w, "digest-b", "token:one"),
        session(&w, "digest-c", "token:two"),
    );
    for s in [&a, &b, &c] {
        store
            .create_console_session(s, &audit(AuditAction::ConsoleSignIn))
            .await
            .unwrap();
    }
    assert_eq!(
        store.console_session("digest-a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.console_session("unknown").await.unwrap(), None);
    // Activity moves forward only.
    store
        .touch_console_session("digest-a", at(10))
        .await
        .unwrap();
    store
        .touch_console_session("digest-a", at(5))
        .await
        .unwrap();
    let touched = store.console_session("digest-a").await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, at(10));
    // Ended once, audited once.
    let out = audit(AuditAction::ConsoleSignOut);
    assert!(
        store
            .end_console_session("digest-a", at(11), &out)
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_console_session("digest-a", at(12), &out)
            .await
            .unwrap()
    );
    let ended = store.console_session("digest-a").await.unwrap().unwrap();
    assert_eq!(ended.ended_at, Some(at(11)));
    // Open ones are listed, newest first; an ended one is not.
    let open = store
        .open_console_sessions(&w.org.id, at(15), 10)
        .await
        .unwrap();
    let ids: Vec<&str> = open.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&"digest-a"));
    assert!(
        store
            .open_console_sessions(&w.org.id, at(100), 10)
            .await
            .unwrap()
            .is_empty(),
        "past their end"
    );
    // One subject's sessions end together; another's stay.
    assert_eq!(
        store
            .end_console_sessions_of("token:one", at(20))
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .console_session("digest-b")
            .await
            .unwrap()
            .unwrap()
            .ended_at
            .is_some()
    );
    assert_eq!(
        store
            .console_session("digest-c")
            .await
            .unwrap()
            .unwrap()
            .ended_at,
        None
    );
    // Three sign-ins and one sign-out, on the chain after the bootstrap.
    assert_eq!(verify_chain(&w).await, Ok(5));
}

keygate_testkit::on_both_databases!(console_sessions_are_kept_touched_and_ended);
