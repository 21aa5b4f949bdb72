//! The audit log through the API: every admin action leaves an event with its actor, target,
//! request id and client address; the chain verifies; and a database edited behind keygate's
//! back (a changed, removed, truncated or reordered entry, a forged head) is caught, on
//! SQLite and PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use keygate_core::AuditEvent;
use keygate_testkit::{Call, Db, TestServer};
use serde_json::{Value, json};

fn by_request<'a>(events: &'a [Value], request_id: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["request_id"] == request_id)
        .collect();
    assert_eq!(found.len(), 1, "{request_id}: {found:?}");
    found[0]
}

/// Sends with `x-request-id: rid`, expects `status` and the id echoed back.
async fn send(call: Call<'_>, rid: &str, status: u16) -> Value {
    let reply = call.request_id(rid).send().await.expect(status);
    assert_eq!(reply.header("x-request-id"), Some(rid));
    reply.body
}

async fn every_admin_action_is_attributed(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    let before = api.audit_events(owner).await;
    assert_eq!(before.len(), 1);
    let boot = &before[0];
    assert_eq!(boot["action"], "owner.bootstrap");
    let owner_id = boot["target"].as_str().unwrap().to_owned();
    let o = owner_id.as_str();
    let org = boot["org_id"].clone();
    assert!(org.as_str().unwrap().starts_with("org_"));

    let project = send(
        api.post("/admin/v1/projects")
            .token(owner)
            .json(&json!({"name": "audited"})),
        "r-project",
        201,
    )
    .await;
    let pid = project["id"].as_str().unwrap();
    let key = send(
        api.post("/admin/v1/keys")
            .token(owner)
            .json(&json!({"project": "audited", "name": "k", "scopes": ["s:*"]})),
        "r-create",
        201,
    )
    .await;
    let kid = key["key"]["id"].as_str().unwrap();
    let kpath = format!("/admin/v1/keys/{kid}");
    send(
        api.patch(&kpath).token(owner).json(&json!({"name": "k2"})),
        "r-update",
        200,
    )
    .await;
    let rotated = send(
        api.post(&format!("{kpath}/rotate"))
            .token(owner)
            .json(&json!({"grace_period_seconds": 30})),
        "r-rotate",
        200,
    )
    .await;
    send(
        api.post(&format!("{kpath}/revoke"))
            .token(owner)
            .json(&json!({"reason": "done"})),
        "r-revoke",
        200,
    )
    .await;
    send(api.delete(&kpath).token(owner), "r-delete", 204).await;
    let token = send(
        api.post("/admin/v1/tokens")
            .token(owner)
            .json(&json!({"role": "viewer", "project": "audited", "name": "ro"})),
        "r-token",
        201,
    )
    .await;
    let viewer = token["secret"].as_str().unwrap();
    let vid = token["token"]["id"].as_str().unwrap();
    send(
        api.post("/admin/v1/keys")
            .token(viewer)
            .json(&json!({"project": "audited", "name": "no"})),
        "r-denied",
        403,
    )
    .await;
    send(
        api.get("/admin/v1/keys").token("kg_live_nope"),
        "r-authfail",
        401,
    )
    .await;

    let events = api.audit_events(owner).await;
    // (request id, action, actor, target, project, details that must be included)
    let expected = [
        (
            "r-project",
            "project.create",
            o,
            Some(pid),
            Some(pid),
            json!({"name": "audited"}),
        ),
        (
            "r-create",
            "key.create",
            o,
            Some(kid),
            Some(pid),
            json!({"name": "k", "env": "live", "hint": key["key"]["hint"], "scopes": ["s:*"]}),
        ),
        (
            "r-update",
            "key.update",
            o,
            Some(kid),
            Some(pid),
            json!({"fields": ["name"]}),
        ),
        (
            "r-rotate",
            "key.rotate",
            o,
            Some(kid),
            Some(pid),
            json!({"grace_period_seconds": 30, "hint": rotated["key"]["hint"]}),
        ),
        (
            "r-revoke",
            "key.revoke",
            o,
            Some(kid),
            Some(pid),
            json!({"reason": "done"}),
        ),
        (
            "r-delete",
            "key.delete",
            o,
            Some(kid),
            Some(pid),
            json!({"name": "k2"}),
        ),
        (
            "r-token",
            "token.create",
            o,
            Some(vid),
            Some(pid),
            json!({"role": "viewer", "name": "ro"}),
        ),
        (
            "r-denied",
            "access.denied",
            vid,
            None,
            Some(pid),
            json!({"permission": "KeysWrite"}),
        ),
        (
            "r-authfail",
            "admin.auth_failed",
            "anonymous",
            None,
            None,
            json!({"code": "key_malformed"}),
        ),
    ];
    let recorded = 1 + expected.len();
    for (rid, action, actor, target, project, details) in expected {
        let event = by_request(&events, rid);
        assert_eq!(event["action"], action, "{rid}");
        assert_eq!(event["actor"], actor, "{rid}");
        assert_eq!(event["target"].as_str(), target, "{rid}");
        assert_eq!(event["project_id"].as_str(), project, "{rid}");
        assert_eq!(event["client_ip"], "127.0.0.1", "{rid}");
        let denied = matches!(action, "access.denied" | "admin.auth_failed");
        assert_eq!(
            event["outcome"],
            if denied { "denied" } else { "success" },
            "{rid}"
        );
        if action != "admin.auth_failed" {
            assert_eq!(event["org_id"], org, "{rid}");
        }
        for (field, value) in details.as_object().unwrap() {
            assert_eq!(&event["details"][field], value, "{rid}: {field}");
        }
    }
    assert_eq!(events.len(), recorded);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_i64(),
            pair[0]["seq"].as_i64().map(|s| s + 1)
        );
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }

    // Without an x-request-id the server makes one, answers with it and records it.
    let reply = api
        .post("/admin/v1/projects")
        .token(owner)
        .json(&json!({"name": "anonymous-request"}))
        .send()
        .await
        .expect(201);
    let generated = reply.header("x-request-id").unwrap().to_owned();
    assert_eq!(generated.len(), 36, "{generated}");
    let events = api.audit_events(owner).await;
    assert_eq!(by_request(&events, &generated)["action"], "project.create");

    let report = api.audit_verify(owner).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["entries"], events.len());
    assert_eq!(report["head_seq"], events.len());
    assert_eq!(report["head_hash"], events.last().unwrap()["hash"]);
    assert_eq!(report["error"], Value::Null);
}

async fn audit_list_filters_and_pages(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    for name in ["a", "b", "c"] {
        api.create_key(owner, json!({"project": "default", "name": name}))
            .await;
    }
    let creates = api
        .get("/admin/v1/audit?action=key.create")
        .token(owner)
        .send()
        .await
        .expect(200);
    let names: Vec<&str> = creates.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c", "b", "a"], "newest first");

    let mut seqs = Vec::new();
    let mut path = "/admin/v1/audit?limit=2".to_owned();
    loop {
        let page = api.get(&path).token(owner).send().await.expect(200).body;
        seqs.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_i64() {
            Some(cursor) => path = format!("/admin/v1/audit?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seqs, vec![4, 3, 2, 1]);
}

/// The events of an NDJSON export, and its `x-audit-head`.
async fn export(server: &TestServer, token: &str, query: &str) -> (Vec<Value>, i64) {
    let reply = server
        .api()
        .get(&format!("/admin/v1/audit/export{query}"))
        .token(token)
        .send()
        .await
        .expect(200);
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    let head = reply.header("x-audit-head").unwrap().parse().unwrap();
    let events = reply
        .text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (events, head)
}

/// The export for a SIEM: chain order, refusals included, resumed from a cursor with nothing
/// missed or repeated, and ending at the head it began with.
async fn audit_export_resumes_from_its_cursor(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let owner = server.owner_token.as_str();
    for name in ["a", "b", "c", "d"] {
        api.create_key(owner, json!({"project": "default", "name": name}))
            .await;
    }
    // A refused action is in the log, and so in the export.
    let viewer = api.create_token(owner, "viewer", None).await.secret;
    api.post("/admin/v1/keys")
        .token(&viewer)
        .json(&json!({"project": "default", "name": "nope"}))
        .send()
        .await
        .expect(403);

    let (all, head) = export(&server, owner, "").await;
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=head).collect::<Vec<_>>(),
        "every event, in chain order"
    );
    assert!(all.iter().any(|e| e["outcome"] == "denied"), "{all:?}");

    // Pages of two, each from the last sequence number the reader got.
    let mut resumed = Vec::new();
    let mut after = 0;
    loop {
        let (page, _) = export(&server, owner, &format!("?after={after}&limit=2")).await;
        let Some(last) = page.last() else { break };
        after = last["seq"].as_i64().unwrap();
        resumed.extend(page);
    }
    assert_eq!(resumed, all, "nothing missed, nothing repeated");

    // New events wait for the next export from the cursor.
    api.create_key(owner, json!({"project": "default", "name": "e"}))
        .await;
    let (newer, newer_head) = export(&server, owner, &format!("?after={head}")).await;
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0]["seq"].as_i64(), Some(head + 1));
    assert_eq!(newer_head, head + 1);
    api.get("/admin/v1/audit/export?after=-1")
        .token(owner)
        .send()
        .await
        .expect(400);
}

/// A SQL literal for a text column.
fn lit(value: Option<&str>) -> String {
    value.map_or("NULL".to_owned(), |v| {
        format!("'{}'", v.replace('\'', "''"))
    })
}

/// An UPDATE that gives row `seq` the contents of `e` (everything but its number).
fn overwrite(seq: i64, e: &AuditEvent) -> String {
    format!(
        "UPDATE audit_events SET ts = {}, actor = {}, action = {}, outcome = {}, org_id = {}, \
         project_id = {}, target = {}, details = {}, client_ip = {}, request_id = {}, \
         prev_hash = {}, hash = {} WHERE seq = {seq}",
        e.ts.as_millis(),
        lit(Some(&e.actor)),
        lit(Some(&e.action)),
        lit(Some(&e.outcome)),
        lit(e.org_id.as_deref()),
        lit(e.project_id.as_deref()),
        lit(e.target.as_deref()),
        lit(Some(&e.details)),
        lit(e.client_ip.as_deref()),
        lit(e.request_id.as_deref()),
        lit(Some(&e.prev_hash)),
        lit(Some(&e.hash)),
    )
}

/// How an attacker with write access to the database edits the log, given its entries.
type Tamper = fn(&[AuditEvent]) -> Vec<String>;

/// (what was done, how, where verification must find the break, entries verified before it)
fn tamper_cases() -> Vec<(&'static str, Tamper, Value, u64)> {
    vec![
        (
            "changed details",
            |_| {
                vec![
                    "UPDATE audit_events SET details = '{\"name\":\"forged\"}' WHERE seq = 3"
                        .into(),
                ]
            },
            json!({"reason": "altered", "seq": 3}),
            2,
        ),
        (
            "changed actor",
            |_| vec!["UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2".into()],
            json!({"reason": "altered", "seq": 2}),
            1,
        ),
        (
            "changed time",
            |_| vec!["UPDATE audit_events SET ts = ts + 1 WHERE seq = 4".into()],
            json!({"reason": "altered", "seq": 4}),
            3,
        ),
        (
            "erased client address",
            |_| vec!["UPDATE audit_events SET client_ip = NULL WHERE seq = 5".into()],
            json!({"reason": "altered", "seq": 5}),
            4,
        ),
        (
            "deleted middle entry",
            |_| vec!["DELETE FROM audit_events WHERE seq = 3".into()],
            json!({"reason": "gap", "after": 2, "found": 4}),
            2,
        ),
        (
            "deleted last entry",
            |events| {
                vec![format!(
                    "DELETE FROM audit_events WHERE seq = {}",
                    events.len()
                )]
            },
            json!({"reason": "truncated", "last": 5, "head": 6}),
            5,
        ),
        (
            "swapped entries",
            |events| vec![overwrite(2, &events[2]), overwrite(3, &events[1])],
            json!({"reason": "unlinked", "seq": 2}),
            1,
        ),
        (
            "changed entry with its hash recomputed",
            |events| {
                let mut forged = events[2].clone();
                forged.details = "{\"name\":\"forged\"}".into();
                forged.hash = hex(forged.compute_hash());
                vec![overwrite(3, &forged)]
            },
            json!({"reason": "unlinked", "seq": 4}),
            3,
        ),
        (
            "forged head hash",
            |_| {
                vec![format!(
                    "UPDATE audit_head SET hash = '{}' WHERE id = 1",
                    "0".repeat(64)
                )]
            },
            json!({"reason": "altered", "seq": 6}),
            6,
        ),
        (
            "head beyond the log",
            |_| vec!["UPDATE audit_head SET seq = seq + 1 WHERE id = 1".into()],
            json!({"reason": "truncated", "last": 6, "head": 7}),
            6,
        ),
    ]
}

fn hex(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Six entries: the bootstrap, a project, two keys, an update and a rotation.
async fn six_entries(server: &TestServer) {
    let api = server.api();
    let owner = server.owner_token.as_str();
    api.create_project(owner, "p").await;
    let key = api
        .create_key(owner, json!({"project": "p", "name": "a"}))
        .await;
    api.create_key(owner, json!({"project": "p", "name": "b"}))
        .await;
    let path = format!("/admin/v1/keys/{}", key.id);
    api.patch(&path)
        .token(owner)
        .json(&json!({"name": "c"}))
        .send()
        .await
        .expect(200);
    api.post(&format!("{path}/rotate"))
        .token(owner)
        .send()
        .await
        .expect(200);
}

async fn tampering_is_detected(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    six_entries(&server).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let events = server
        .store
        .store
        .audit_chain_page(0, i64::MAX, 100)
        .await
        .unwrap();
    let head = server.store.store.audit_head().await.unwrap();
    assert_eq!(events.len(), 6);
    // Puts the log back as it was written, so each case starts from an intact chain.
    let mut restore = vec!["DELETE FROM audit_events".to_owned()];
    restore.extend(events.iter().map(|e| {
        format!(
            "INSERT INTO audit_events (seq, ts, actor, action, outcome, org_id, project_id, \
             target, details, client_ip, request_id, prev_hash, hash) \
             VALUES ({}, 0, '', '', '', NULL, NULL, NULL, '', NULL, NULL, '', '')",
            e.seq
        )
    }));
    restore.extend(events.iter().map(|e| overwrite(e.seq, e)));
    restore.push(format!(
        "UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1",
        head.seq, head.hash
    ));

    for (name, tamper, expected, entries) in tamper_cases() {
        for sql in &restore {
            server.store.tamper(sql).await.unwrap();
        }
        let intact = api.audit_verify(owner).await;
        assert_eq!(
            (intact["ok"].clone(), intact["entries"].clone()),
            (json!(true), json!(6)),
            "before {name}: {intact}"
        );

        for sql in tamper(&events) {
            assert_eq!(server.store.tamper(&sql).await.unwrap(), 1, "{name}: {sql}");
        }
        let report = api.audit_verify(owner).await;
        assert_eq!(report["ok"], false, "{name}: {report}");
        assert_eq!(report["break_at"], expected, "{name}: {report}");
        assert!(!report["error"].as_str().unwrap().is_empty(), "{name}");
        assert_eq!(report["entries"], entries, "{name}: {report}");
        let head_seq = if name == "head beyond the log" { 7 } else { 6 };
        assert_eq!(report["head_seq"], head_seq, "{name}");
    }
}

keygate_testkit::on_both_databases!(
    every_admin_action_is_attributed,
    audit_list_filters_and_pages,
    audit_export_resumes_from_its_cursor,
    tampering_is_detected,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_an_anchor_saved_earlier() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = server.api();
    let owner = &server.owner_token;
    let first = api.audit_verify(owner).await;
    let anchor = format!(
        "{}:{}",
        first["head_seq"],
        first["head_hash"].as_str().unwrap()
    );
    api.create_project(owner, "later").await;

    let held = api
        .get(&format!("/admin/v1/audit/verify?anchor={anchor}"))
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(held.body["ok"], true, "{}", held.text);

    let forged = format!("1:{}", "ab".repeat(32));
    let broken = api
        .get(&format!("/admin/v1/audit/verify?anchor={forged}"))
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(broken.body["ok"], false);
    assert_eq!(broken.body["break_at"]["reason"], "anchor_mismatch");

    api.get("/admin/v1/audit/verify?anchor=yesterday")
        .token(owner)
        .send()
        .await
        .expect_error(400, "validation_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_while_events_are_appended_is_not_a_false_alarm() {
    let server = TestServer::start(Db::Postgres).await.unwrap();
    let store = server.store.store.clone();
    let writer = tokio::spawn({
        let store = store.clone();
        async move {
            for i in 0..300 {
                let draft = keygate_testkit::audit(keygate_core::AuditAction::AccessDenied);
                store
                    .append_audit(&draft, keygate_core::Timestamp::from_millis(i))
                    .await
                    .unwrap();
            }
        }
    });
    let mut checks = 0;
    while !writer.is_finished() {
        let report = keygate_server::service::verify_audit_chain(store.as_ref(), None)
            .await
            .unwrap();
        assert!(report.ok, "{:?}", report.error);
        checks += 1;
    }
    writer.await.unwrap();
    assert!(checks > 1, "the check ran while the log grew");
}
