//! The cost of a verification on the hot path: parse, checksum, HMAC digest and a cache hit;
//! and for an access token, a remembered one and the signature check of a new one.
//! Run with `cargo bench -p keygate-server --bench verify`; results go in docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use keygate_core::{ApiKey, KeyEnv, SystemClock};
use keygate_crypto::{DigestKey, MasterKey};
use keygate_server::Keygate;
use keygate_server::service::{Caller, CreateKey, VerifyOutcome, VerifyQuery, ensure_owner};
use keygate_testkit::{Db, TestStore};

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (keygate, key, _store) = runtime.block_on(async {
        let store = TestStore::new(Db::Sqlite).await.unwrap();
        let master = MasterKey::load_or_create(&store.dir.path().join("master.key")).unwrap();
        let keygate = Keygate::open(store.store.clone(), Arc::new(master), Arc::new(SystemClock))
            .await
            .unwrap();
        ensure_owner(&keygate).await.unwrap();
        let org = keygate.default_org().await.unwrap();
        let (key, _) = keygate
            .create_key(
                &Caller::local(org),
                CreateKey {
                    project: "default".into(),
                    name: "bench".into(),
                    env: KeyEnv::Live,
                    scopes: vec!["chat:*".into()],
                    expires_at: None,
                    ip_allow: vec![],
                    limits: keygate_core::KeyLimits::default(),
                    metadata: None,
                    rotate_every: None,
                    publishable: None,
                },
            )
            .await
            .unwrap();
        (keygate, key.expose().to_owned(), store)
    });
    let query = VerifyQuery {
        key: &key,
        permission: Some("chat:write"),
        ip: None,
        ..VerifyQuery::default()
    };
    // Warm the cache: the benchmark measures the steady state of a busy key.
    let warm = runtime.block_on(keygate.verify(query)).unwrap();
    assert!(matches!(warm, VerifyOutcome::Valid(_)));

    c.bench_function("verify/cache_hit", |b| {
        b.iter(|| runtime.block_on(keygate.verify(black_box(query))).unwrap())
    });

    let digest_key = DigestKey::generate().unwrap();
    c.bench_function("verify/parse_and_digest", |b| {
        b.iter(|| {
            let parsed = ApiKey::parse(black_box(&key)).unwrap();
            digest_key.digest(parsed.expose())
        })
    });

    // An access token for the key: remembered after its first verification.
    let token = runtime.block_on(async {
        keygate.load_signing_keys().await.unwrap();
        let request = keygate_server::service::TokenRequest::read(
            b"grant_type=client_credentials",
            Some(&format!("Bearer {key}")),
            None,
            None,
        )
        .unwrap();
        let issued = keygate.issue_token(request).await.unwrap();
        secrecy::ExposeSecret::expose_secret(&issued.access_token).to_owned()
    });
    let token_query = VerifyQuery {
        key: &token,
        ..query
    };
    let warm = runtime.block_on(keygate.verify(token_query)).unwrap();
    assert!(matches!(warm, VerifyOutcome::Valid(_)));
    c.bench_function("verify/token_remembered", |b| {
        b.iter(|| {
            runtime
                .block_on(keygate.verify(black_box(token_query)))
                .unwrap()
        })
    });
    let keys = keygate_identity::KeySet::from_jwks(keygate.jwks().as_bytes()).unwrap();
    let issuer = keygate.token_issuer();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    c.bench_function("verify/token_signature", |b| {
        b.iter(|| {
            keys.verify(
                black_box(&token),
                keygate_identity::Expected {
                    issuer: &issuer,
                    audience: &issuer,
                    now,
                    leeway: 30,
                },
            )
            .unwrap()
        })
    });

    let garbage = "kg_live_".to_owned() + &"x".repeat(49);
    c.bench_function("verify/reject_bad_checksum", |b| {
        b.iter(|| ApiKey::parse(black_box(&garbage)).is_err())
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);
