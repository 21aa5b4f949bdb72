//! The key lifecycle through the admin API, part one: create (the secret shown once), show,
//! list with filters and pagination, update with its effect visible at once in verification,
//! IP allow-lists, and limits; on SQLite and PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use std::time::Duration;

use keygate_core::{KeyId, KeyLimits, ManualClock, Per, RequestRate, Timestamp};
use keygate_testkit::{Api, Db, TestServer};
use serde_json::{Value, json};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn at(secs: u64) -> String {
    T0.saturating_add(Duration::from_secs(secs)).to_rfc3339()
}

async fn start(db: Db) -> (TestServer, ManualClock) {
    TestServer::start_frozen(db, T0).await.unwrap()
}

async fn project_id(api: &Api, token: &str, name: &str) -> String {
    let projects = api.get("/admin/v1/projects").token(token).send().await;
    projects.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn create_shows_the_secret_once(db: Db) {
    let (mut server, _clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let reply = api
        .post("/admin/v1/keys")
        .token(owner)
        .json(&json!({
            "project": "default", "name": "billing", "env": "test",
            "scopes": ["chat:*", "models:gpt-4o*"], "expires_at": at(86_400),
            "ip_allow": ["10.0.0.0/8"], "metadata": {"team": "billing", "tier": 2},
            "rotate_every_seconds": 3600,
        }))
        .send()
        .await
        .expect(201);
    let secret = reply.body["secret"].as_str().unwrap().to_owned();
    let view = reply.body["key"].clone();
    assert!(
        secret.starts_with("kg_test_") && secret.len() == 57,
        "{secret}"
    );
    assert_eq!(
        reply.text.matches(&secret[8..]).count(),
        1,
        "{}",
        reply.text
    );
    let expected = json!({
        "id": view["id"], "project_id": project_id(&api, owner, "default").await,
        "name": "billing", "env": "test", "status": "active",
        "hint": format!("{}…{}", &secret[..12], &secret[53..]),
        "scopes": ["chat:*", "models:gpt-4o*"], "expires_at": at(86_400),
        "ip_allow": ["10.0.0.0/8"], "publishable": false, "origins": [], "limits": {},
        "metadata": {"team": "billing", "tier": 2},
        "created_at": at(0), "updated_at": at(0), "last_used_at": null, "last_write_at": null,
        "revoked_at": null, "revoked_reason": null, "suspended_at": null,
        "suspended_reason": null, "throttle": null, "rotate_every_seconds": 3600,
        "rotated_at": null, "rotation_due_at": at(3600), "generation": 0,
    });
    assert_eq!(view, expected);
    let id = view["id"].as_str().unwrap();

    // Never again: not in the key, not in a list, not in any filter of it.
    let shown = api
        .get(&format!("/admin/v1/keys/{id}"))
        .token(owner)
        .send()
        .await;
    assert_eq!(shown.expect(200).body, expected);
    for path in [
        "/admin/v1/keys",
        "/admin/v1/keys?env=test",
        "/admin/v1/keys/due?within_seconds=7200",
    ] {
        let listed = api.get(path).token(owner).send().await.expect(200);
        assert_eq!(ids(&listed.body), vec![id.to_owned()], "{path}");
        assert!(
            !listed.text.contains(&secret[8..]),
            "{path}: {}",
            listed.text
        );
    }

    let verdict = api
        .verify(&secret, Some("chat:write"), Some("10.9.8.7"))
        .await;
    assert_eq!(
        verdict,
        json!({
            "valid": true, "code": "valid", "key_id": id, "project": expected["project_id"],
            "name": "billing", "env": "test", "scopes": ["chat:*", "models:gpt-4o*"],
            "expires_at": at(86_400), "metadata": {"team": "billing", "tier": 2},
            "publishable": false, "origins": null, "ratelimit": null, "limits": [],
        })
    );
    assert_eq!(
        api.verify(&secret, Some("models:gpt-3.5"), Some("10.9.8.7"))
            .await["code"],
        "permission_denied"
    );

    // Use is recorded off the request path and reaches the store by shutdown at the latest.
    server.stop().await.unwrap();
    let stored = server.store.store.key(&KeyId::parse(id).unwrap()).await;
    let stored = stored.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(T0));
    // `chat:write` was granted: the key made a change, for access reviews.
    assert_eq!(stored.last_write_at, Some(T0));
}

async fn list_filters_and_pages(db: Db) {
    let (server, clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    api.create_project(owner, "other").await;
    let make = |project: &str, env: &str, extra: Value| {
        let mut body = json!({"project": project, "name": "k", "env": env});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        api.create_key(owner, body)
    };
    let k1 = make("default", "live", json!({})).await.id;
    let k2 = make("default", "live", json!({})).await.id;
    let k3 = make("default", "test", json!({})).await.id;
    let k4 = make("other", "live", json!({})).await.id;
    let k5 = make("default", "live", json!({})).await.id;
    let k6 = make("default", "live", json!({"expires_at": at(3600)}))
        .await
        .id;
    let k7 = make("other", "test", json!({})).await.id;
    api.post(&format!("/admin/v1/keys/{k5}/revoke"))
        .token(owner)
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .expect(200);
    api.delete(&format!("/admin/v1/keys/{k7}"))
        .token(owner)
        .send()
        .await
        .expect(204);
    clock.advance(Duration::from_secs(7200));

    let default_id = project_id(&api, owner, "default").await;
    let list = |query: String| {
        let api = api.clone();
        async move {
            let reply = api
                .get(&format!("/admin/v1/keys?{query}"))
                .token(owner)
                .send()
                .await
                .expect(200);
            assert_eq!(reply.body["next_cursor"], Value::Null, "{query}");
            ids(&reply.body)
        }
    };
    let sorted = |keys: &[&String]| {
        let mut keys: Vec<String> = keys.iter().map(|k| (*k).clone()).collect();
        keys.sort();
        keys
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        (String::new(), sorted(&[&k1, &k2, &k3, &k4, &k5, &k6])),
        ("project=other".into(), sorted(&[&k4])),
        (
            format!("project={default_id}"),
            sorted(&[&k1, &k2, &k3, &k5, &k6]),
        ),
        ("env=test".into(), sorted(&[&k3])),
        ("env=live".into(), sorted(&[&k1, &k2, &k4, &k5, &k6])),
        ("status=active".into(), sorted(&[&k1, &k2, &k3, &k4])),
        ("status=revoked".into(), sorted(&[&k5])),
        ("status=expired".into(), sorted(&[&k6])),
        ("status=deleted".into(), sorted(&[&k7])),
        (
            "project=default&env=live&status=active".into(),
            sorted(&[&k1, &k2]),
        ),
        (
            "project=other&status=deleted&env=test".into(),
            sorted(&[&k7]),
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(list(query.clone()).await, expected, "{query}");
    }
    let expired = api
        .get(&format!("/admin/v1/keys/{k6}"))
        .token(owner)
        .send()
        .await;
    assert_eq!(expired.body["status"], "expired");

    // Pages: every key exactly once, in id order, and no cursor after the last page.
    let all = sorted(&[&k1, &k2, &k3, &k4, &k5, &k6]);
    for (filter, limit, expected, sizes) in [
        ("", 2, all.clone(), vec![2, 2, 2]),
        ("", 4, all.clone(), vec![4, 2]),
        ("", 6, all.clone(), vec![6]),
        ("", 200, all.clone(), vec![6]),
        (
            "status=active&",
            3,
            sorted(&[&k1, &k2, &k3, &k4]),
            vec![3, 1],
        ),
        ("env=test&", 1, sorted(&[&k3]), vec![1]),
    ] {
        let mut seen = Vec::new();
        let mut page_sizes = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let after = cursor
                .as_ref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            let reply = api
                .get(&format!("/admin/v1/keys?{filter}limit={limit}{after}"))
                .token(owner)
                .send()
                .await
                .expect(200);
            let page = ids(&reply.body);
            page_sizes.push(page.len());
            seen.extend(page);
            match reply.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
            assert!(page_sizes.len() < 10, "pagination does not end");
        }
        assert_eq!(seen, expected, "{filter}limit={limit}");
        assert_eq!(page_sizes, sizes, "{filter}limit={limit}");
    }
}

async fn updates_take_effect_at_once(db: Db) {
    let (server, clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let key = api
        .create_key(
            owner,
            json!({"project": "default", "name": "svc", "scopes": ["chat:write", "embeddings:read"],
                   "metadata": {"a": 1}}),
        )
        .await;
    let path = format!("/admin/v1/keys/{}", key.id);
    let patch = |body: Value| {
        let api = api.clone();
        let path = path.clone();
        async move {
            api.patch(&path)
                .token(owner)
                .json(&body)
                .send()
                .await
                .expect(200)
                .body
        }
    };
    // Warm the verification cache, so that staleness would show.
    assert_eq!(
        api.verify(&key.secret, Some("embeddings:read"), None).await["valid"],
        true
    );

    clock.advance(Duration::from_secs(10));
    let view = patch(json!({"scopes": ["chat:write"]})).await;
    assert_eq!(view["scopes"], json!(["chat:write"]));
    assert_eq!(view["updated_at"], at(10));
    let denied = api.verify(&key.secret, Some("embeddings:read"), None).await;
    assert_eq!(denied["code"], "permission_denied", "{denied}");
    assert_eq!(
        api.verify(&key.secret, Some("chat:write"), None).await["valid"],
        true
    );

    let view = patch(json!({"name": "svc-2", "metadata": {"team": "x"}})).await;
    assert_eq!(
        (view["name"].clone(), view["scopes"].clone()),
        (json!("svc-2"), json!(["chat:write"]))
    );
    let verdict = api.verify(&key.secret, None, None).await;
    assert_eq!(verdict["name"], "svc-2");
    assert_eq!(verdict["metadata"], json!({"team": "x"}));

    let view = patch(json!({"expires_at": at(3600)})).await;
    assert_eq!(view["expires_at"], at(3600));
    assert_eq!(
        api.verify(&key.secret, None, None).await["expires_at"],
        at(3600)
    );
    clock.advance(Duration::from_secs(3590));
    assert_eq!(api.verify_code(&key.secret).await, "key_expired");
    let view = patch(json!({"expires_at": null})).await;
    assert_eq!(
        (view["expires_at"].clone(), view["status"].clone()),
        (Value::Null, json!("active"))
    );
    assert_eq!(api.verify_code(&key.secret).await, "valid");

    patch(json!({"ip_allow": ["192.0.2.0/24"]})).await;
    assert_eq!(
        api.verify(&key.secret, None, Some("192.0.2.5")).await["code"],
        "valid"
    );
    assert_eq!(
        api.verify(&key.secret, None, Some("198.51.100.1")).await["code"],
        "ip_not_allowed"
    );
    assert_eq!(
        api.verify(&key.secret, None, None).await["code"],
        "ip_not_allowed"
    );
    let view = patch(json!({"ip_allow": []})).await;
    assert_eq!(view["ip_allow"], json!([]));
    assert_eq!(api.verify(&key.secret, None, None).await["code"], "valid");

    let created = clock_secs(&view["created_at"]);
    let view = patch(json!({"rotate_every_seconds": 600})).await;
    assert_eq!(view["rotate_every_seconds"], 600);
    assert_eq!(clock_secs(&view["rotation_due_at"]), created + 600);
    let view = patch(json!({"rotate_every_seconds": null})).await;
    assert_eq!(
        (
            view["rotate_every_seconds"].clone(),
            view["rotation_due_at"].clone()
        ),
        (Value::Null, Value::Null)
    );
    // Fields that a patch leaves out stay as they were.
    assert_eq!(view["name"], "svc-2");
    assert_eq!(view["metadata"], json!({"team": "x"}));
    assert_eq!(view["scopes"], json!(["chat:write"]));
    assert_eq!(api.get_key(owner, &key.id).await, view);

    let events = api.audit_events(owner).await;
    let fields: Vec<Value> = events
        .iter()
        .filter(|e| e["action"] == "key.update" && e["target"] == key.id.as_str())
        .map(|e| e["details"]["fields"].clone())
        .collect();
    assert_eq!(fields.len(), 8, "{fields:?}");
    assert_eq!(fields[1], json!(["name", "metadata"]));
}

fn clock_secs(value: &Value) -> i64 {
    Timestamp::parse_rfc3339(value.as_str().unwrap())
        .unwrap()
        .as_millis()
        / 1000
}

async fn ip_allow_list_edges(db: Db) {
    let (server, _clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let key = api
        .create_key(
            owner,
            json!({"project": "default", "name": "ips",
                   "ip_allow": ["10.1.0.0/16", "2001:db8::/32", "192.0.2.7", "::1",
                                "172.16.9.9/12"]}),
        )
        .await;
    assert_eq!(
        key.view["ip_allow"],
        json!([
            "10.1.0.0/16",
            "2001:db8::/32",
            "192.0.2.7/32",
            "::1/128",
            "172.16.0.0/12"
        ])
    );
    let allowed = [
        "10.1.0.0",
        "10.1.255.255",
        "::ffff:10.1.0.1",
        "2001:db8::",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "192.0.2.7",
        "::ffff:192.0.2.7",
        "::1",
        "172.31.255.255",
        "172.16.0.0",
    ];
    let refused = [
        "10.0.255.255",
        "10.2.0.0",
        "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db9::",
        "192.0.2.6",
        "192.0.2.8",
        "::2",
        "::",
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "172.32.0.0",
        "172.15.255.255",
        "::ffff:10.2.0.1",
        "64:ff9b::a01:1",
    ];
    for ip in allowed {
        assert_eq!(
            api.verify(&key.secret, None, Some(ip)).await["code"],
            "valid",
            "{ip}"
        );
    }
    for ip in refused {
        let verdict = api.verify(&key.secret, None, Some(ip)).await;
        assert_eq!(verdict["code"], "ip_not_allowed", "{ip}");
        assert_eq!(verdict["valid"], false, "{ip}");
    }
    assert_eq!(
        api.verify(&key.secret, None, None).await["code"],
        "ip_not_allowed"
    );
    for bad in ["not-an-ip", "10.1.0.1/32", "10.1.0", "fe80::1%eth0", ""] {
        api.post("/v1/keys/verify")
            .json(&json!({"key": key.secret, "ip": bad}))
            .send()
            .await
            .expect_error(400, "validation_failed");
    }

    // A rule written in IPv4-mapped IPv6 form means the IPv4 addresses it maps.
    let mapped = api
        .create_key(
            owner,
            json!({"project": "default", "name": "mapped",
                                   "ip_allow": ["::ffff:198.51.100.0/120"]}),
        )
        .await;
    assert_eq!(mapped.view["ip_allow"], json!(["198.51.100.0/24"]));
    for ip in ["198.51.100.9", "::ffff:198.51.100.9"] {
        assert_eq!(
            api.verify(&mapped.secret, None, Some(ip)).await["code"],
            "valid",
            "{ip}"
        );
    }
    for ip in ["198.51.101.1", "::ffff:198.51.101.1", "::c633:6409"] {
        assert_eq!(
            api.verify(&mapped.secret, None, Some(ip)).await["code"],
            "ip_not_allowed",
            "{ip}"
        );
    }

    // An allow-list of everything still needs an address to check.
    let open = api
        .create_key(
            owner,
            json!({"project": "default", "name": "open",
                                   "ip_allow": ["0.0.0.0/0", "::/0"]}),
        )
        .await;
    for ip in ["1.2.3.4", "2001:db8::1", "::ffff:1.2.3.4"] {
        assert_eq!(
            api.verify(&open.secret, None, Some(ip)).await["code"],
            "valid",
            "{ip}"
        );
    }
    assert_eq!(
        api.verify(&open.secret, None, None).await["code"],
        "ip_not_allowed"
    );
}

async fn limits_are_set_shown_and_cleared(db: Db) {
    let (server, clock) = start(db).await;
    let api = server.api();
    let owner = server.owner_token.as_str();
    let limits = json!({
        "requests": [{"limit": 100, "per": "minute"}, {"limit": 5000, "per": "day"}],
        "concurrency": 5,
    });
    let key = api
        .create_key(
            owner,
            json!({"project": "default", "name": "limited", "limits": limits}),
        )
        .await;
    assert_eq!(key.view["limits"], limits);
    assert_eq!(api.get_key(owner, &key.id).await["limits"], limits);
    let listed = api
        .get("/admin/v1/keys")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(listed.body["data"][0]["limits"], limits);
    let id = KeyId::parse(&key.id).unwrap();
    let stored = server.store.store.key(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.limits,
        KeyLimits {
            requests: vec![
                RequestRate {
                    limit: 100,
                    per: Per::Minute
                },
                RequestRate {
                    limit: 5000,
                    per: Per::Day
                },
            ],
            concurrency: Some(5),
            ..KeyLimits::default()
        }
    );
    let plain = api
        .create_key(owner, json!({"project": "default", "name": "plain"}))
        .await;
    assert_eq!(plain.view["limits"], json!({}));

    let path = format!("/admin/v1/keys/{}", key.id);
    let patch = |body: Value| {
        let api = api.clone();
        let path = path.clone();
        async move {
            api.patch(&path)
                .token(owner)
                .json(&body)
                .send()
                .await
                .expect(200)
                .body
        }
    };
    // A patch replaces every limit at once: the cap it leaves out is gone.
    clock.advance(Duration::from_secs(10));
    let per_second = json!({"requests": [{"limit": 10, "per": "second"}]});
    let view = patch(json!({ "limits": per_second })).await;
    assert_eq!(view["limits"], per_second);
    assert_eq!(view["updated_at"], at(10));
    // A patch without `limits` keeps them.
    let view = patch(json!({"name": "still-limited"})).await;
    assert_eq!(view["limits"], per_second);

    // Refused limits name the part that is wrong, on create and on update, and change nothing.
    let before = api.get_key(owner, &key.id).await;
    let head = server.store.store.audit_head().await.unwrap();
    let rate = |limit: u64, per: &str| json!({"limit": limit, "per": per});
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!({"requests": [rate(0, "minute")]}),
            &["limits.requests"],
        ),
        (
            json!({"requests": [rate(1_000_000_001, "day")]}),
            &["limits.requests"],
        ),
        (
            json!({"requests": [rate(1, "minute"), rate(2, "minute")]}),
            &["limits.requests", "one rate per period"],
        ),
        // The API takes the periods' full names only; the CLI's `100/min` is its own shorthand.
        (
            json!({"requests": [rate(60, "min")]}),
            &["limits.requests", "minute"],
        ),
        (
            json!({"requests": [rate(1, "second"), rate(2, "minute"), rate(3, "hour"),
                                rate(4, "day"), rate(5, "day")]}),
            &["limits.requests"],
        ),
        (
            json!({"requests": [rate(1, "fortnight")]}),
            &["limits.requests", "fortnight"],
        ),
        (
            json!({"requests": [{"limit": 1, "per": "minute", "burst": 5}]}),
            &["limits.requests", "burst"],
        ),
        (
            json!({"requests": [{"limit": "100", "per": "minute"}]}),
            &["limits.requests"],
        ),
        (json!({"requests": "100/minute"}), &["limits.requests"]),
        (json!({"concurrency": 0}), &["limits.concurrency"]),
        (json!({"concurrency": 100_001}), &["limits.concurrency"]),
        (json!({"concurrency": -1}), &["limits.concurrency"]),
        (json!({"tokens": [rate(0, "minute")]}), &["limits.tokens"]),
        (
            json!({"quota": {"amount": 10, "per": "fortnight"}}),
            &["limits.quota"],
        ),
        (
            json!({"budgets": [{"usd": "5", "per": "minute"}]}),
            &["limits.budgets"],
        ),
        (
            json!({"seats": [rate(1000, "minute")]}),
            &["limits", "`seats`", "requests", "tokens", "budgets"],
        ),
        (
            json!({"requests": [rate(10, "second")], "budget": 5}),
            &["limits", "`budget`"],
        ),
        (json!("100/minute"), &["limits"]),
        (json!([]), &["limits"]),
    ];
    for (limits, words) in &cases {
        let create = api
            .post("/admin/v1/keys")
            .token(owner)
            .json(&json!({"project": "default", "name": "refused", "limits": limits}))
            .send()
            .await
            .expect_error(400, "validation_failed");
        let update = api
            .patch(&path)
            .token(owner)
            .json(&json!({ "limits": limits }))
            .send()
            .await
            .expect_error(400, "validation_failed");
        for reply in [create, update] {
            for word in *words {
                assert!(reply.message().contains(word), "{limits}: {}", reply.text);
            }
        }
    }
    assert_eq!(api.get_key(owner, &key.id).await, before);
    let listed = api
        .get("/admin/v1/keys")
        .token(owner)
        .send()
        .await
        .expect(200);
    assert_eq!(ids(&listed.body).len(), 2, "no refused key was created");
    let after = server.store.store.audit_head().await.unwrap();
    assert_eq!((after.seq, after.hash), (head.seq, head.hash));

    // `{}` clears every limit, and so does `null`.
    let view = patch(json!({"limits": {}})).await;
    assert_eq!(view["limits"], json!({}));
    let stored = server.store.store.key(&id).await.unwrap().unwrap();
    assert!(stored.limits.is_empty());
    let view = patch(json!({"limits": {"concurrency": 2}})).await;
    assert_eq!(view["limits"], json!({"concurrency": 2}));
    let view = patch(json!({"limits": null})).await;
    assert_eq!(view["limits"], json!({}));
    assert_eq!(api.get_key(owner, &key.id).await, view);
    // Token rates, a quota and budgets are a key's too.
    let metered = json!({
        "tokens": [{"limit": 100000, "per": "minute"}],
        "quota": {"amount": 1000, "per": "month"},
        "budgets": [{"usd": "25.000000", "per": "month"}],
    });
    let view = patch(json!({ "limits": metered })).await;
    assert_eq!(view["limits"], metered);
    assert_eq!(
        server
            .store
            .store
            .key(&id)
            .await
            .unwrap()
            .unwrap()
            .limits
            .budgets[0]
            .usd,
        keygate_core::MicroUsd(25_000_000)
    );

    let fields: Vec<Value> = api
        .audit_events(owner)
        .await
        .iter()
        .filter(|e| e["action"] == "key.update" && e["target"] == key.id.as_str())
        .map(|e| e["details"]["fields"].clone())
        .collect();
    let limits_only = json!(["limits"]);
    let mut expected = vec![limits_only.clone(); 6];
    expected[1] = json!(["name"]);
    assert_eq!(fields, expected);
}

keygate_testkit::on_both_databases!(
    create_shows_the_secret_once,
    list_filters_and_pages,
    updates_take_effect_at_once,
    ip_allow_list_edges,
    limits_are_set_shown_and_cleared,
);
