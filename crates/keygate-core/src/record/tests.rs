//! Key records: the rules they are made from, and their lifecycle at the instants that decide it.

use super::*;

fn record(now: Timestamp) -> KeyRecord {
    let spec = KeySpec::api(
        OrgId::generate(),
        ProjectId::generate(),
        "test".into(),
        KeyEnv::Live,
    );
    KeyRecord::issue(spec, KeyHint::from_stored("kg_live_abcd…wxyz".into()), now)
}

#[test]
fn admin_spec_follows_its_binding() {
    let org = OrgId::generate();
    let org_wide = KeySpec::admin(&crate::Binding::Org(org.clone()), Role::Auditor, "a".into());
    assert_eq!((org_wide.kind, org_wide.project_id), (KeyKind::Admin, None));
    let project = ProjectId::generate();
    let bound = crate::Binding::Project {
        org,
        project: project.clone(),
    };
    let spec = KeySpec::admin(&bound, Role::Viewer, "v".into());
    assert_eq!(spec.project_id, Some(project));
    assert_eq!(spec.role, Some(Role::Viewer));
}

fn secret(key: &KeyRecord, grace_until: Option<Timestamp>) -> KeySecret {
    KeySecret {
        digest: vec![0; 32],
        key_id: key.id.clone(),
        generation: 0,
        created_at: key.created_at,
        grace_until,
    }
}

#[test]
fn lifecycle_rejections_in_priority_order() {
    let now = Timestamp::from_millis(1_000_000);
    let mut key = record(now);
    let current = secret(&key, None);
    assert_eq!(key.check(&current, now), Ok(()));

    key.expires_at = Some(now);
    assert_eq!(key.check(&current, now), Err(KeyRejection::Expired));
    key.suspended_at = Some(now);
    assert_eq!(key.check(&current, now), Err(KeyRejection::Suspended));
    key.revoked_at = Some(now);
    assert_eq!(key.check(&current, now), Err(KeyRejection::Revoked));
    key.deleted_at = Some(now);
    assert_eq!(key.check(&current, now), Err(KeyRejection::Invalid));
}

#[test]
fn suspension_is_reversible_and_only_on_live_keys() {
    let now = Timestamp::from_millis(1_000_000);
    let later = Timestamp::from_millis(2_000_000);
    let mut key = record(now);
    let current = secret(&key, None);
    key.suspend("spike", now).unwrap();
    assert_eq!(key.status(now), KeyStatus::Suspended);
    assert_eq!(key.check(&current, now), Err(KeyRejection::Suspended));
    // A second suspension keeps the first reason.
    assert_eq!(key.suspend("again", later), Err(KeyStatus::Suspended));
    assert_eq!(key.suspended_reason.as_deref(), Some("spike"));
    key.resume(later).unwrap();
    assert_eq!(key.check(&current, later), Ok(()));
    assert_eq!(key.updated_at, later);
    assert_eq!(key.resume(later), Err(KeyStatus::Active));
    // Resumed past its expiry, a key is expired, not active.
    key.expires_at = Some(later);
    key.suspend("spike", now).unwrap();
    key.resume(later).unwrap();
    assert_eq!(key.status(later), KeyStatus::Expired);
    key.revoked_at = Some(later);
    assert_eq!(key.suspend("spike", later), Err(KeyStatus::Revoked));
}

#[test]
fn grace_period_is_half_open() {
    let now = Timestamp::from_millis(1_000_000);
    let key = record(now);
    let old = secret(&key, Some(Timestamp::from_millis(1_000_500)));
    assert_eq!(key.check(&old, Timestamp::from_millis(1_000_499)), Ok(()));
    assert_eq!(
        key.check(&old, Timestamp::from_millis(1_000_500)),
        Err(KeyRejection::Rotated)
    );
}

#[test]
fn foreign_secret_is_invalid() {
    let now = Timestamp::from_millis(0);
    let key = record(now);
    let other = record(now);
    assert_eq!(
        key.check(&secret(&other, None), now),
        Err(KeyRejection::Invalid)
    );
}

#[test]
fn ip_allow_list_matches_prefixes() {
    let mut key = record(Timestamp::from_millis(0));
    assert!(key.allows_ip(None));
    key.ip_allow = parse_ip_allow(&["10.1.0.0/16".into(), "2001:db8::/32".into()]).unwrap();
    assert!(key.allows_ip(Some("10.1.255.255".parse().unwrap())));
    assert!(!key.allows_ip(Some("10.2.0.0".parse().unwrap())));
    assert!(key.allows_ip(Some("::ffff:10.1.0.1".parse().unwrap())));
    assert!(key.allows_ip(Some("2001:db8:ffff::1".parse().unwrap())));
    assert!(!key.allows_ip(Some("2001:db9::1".parse().unwrap())));
    assert!(!key.allows_ip(None));
}

#[test]
fn ip_allow_rules_in_mapped_form_mean_ipv4() {
    let mut key = record(Timestamp::from_millis(0));
    key.ip_allow = parse_ip_allow(&["::ffff:10.1.0.0/112".into(), "::ffff:0:0/95".into()]).unwrap();
    assert_eq!(key.ip_allow[0].to_string(), "10.1.0.0/16");
    assert!(key.ip_allow[1].to_string().starts_with("::"));
    assert!(key.allows_ip(Some("10.1.2.3".parse().unwrap())));
    assert!(key.allows_ip(Some("::ffff:10.1.2.3".parse().unwrap())));
    assert!(!key.allows_ip(Some("10.2.0.1".parse().unwrap())));
}

#[test]
fn ip_allow_rejects_garbage() {
    assert!(parse_ip_allow(&["10.0.0.0/33".into()]).is_err());
    assert!(parse_ip_allow(&["example.com".into()]).is_err());
    assert_eq!(
        parse_ip_allow(&["10.1.2.3/8".into()]).unwrap()[0].to_string(),
        "10.0.0.0/8"
    );
}

#[test]
fn fuzz_seeds_keep_the_invariants() {
    // Each line of a seed is an entry.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/cidr");
    for entry in std::fs::read_dir(dir).unwrap() {
        let seed = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let items: Vec<String> = seed.lines().map(str::to_owned).collect();
        if let Ok(nets) = parse_ip_allow(&items) {
            let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
            assert_eq!(parse_ip_allow(&shown), Ok(nets), "{items:?}");
        }
    }
}

#[test]
fn metadata_is_bounded() {
    assert!(Metadata::parse(serde_json::json!({"team": "billing"})).is_ok());
    assert!(Metadata::parse(serde_json::json!([1, 2])).is_err());
    let deep = serde_json::json!({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{}}}}}}}}});
    assert!(Metadata::parse(deep).is_err());
    let big = serde_json::json!({"blob": "x".repeat(9000)});
    assert!(Metadata::parse(big).is_err());
}

#[test]
fn rotation_due_from_last_rotation() {
    let mut key = record(Timestamp::from_millis(0));
    assert_eq!(key.rotation_due_at(), None);
    key.rotate_every = Some(Duration::from_secs(10));
    assert_eq!(key.rotation_due_at(), Some(Timestamp::from_millis(10_000)));
    key.rotated_at = Some(Timestamp::from_millis(5_000));
    assert_eq!(key.rotation_due_at(), Some(Timestamp::from_millis(15_000)));
}

#[test]
fn only_publishable_keys_change_origins_and_stay_read_only() {
    let now = Timestamp::from_millis(0);
    let mut secret = record(now);
    let origins = AllowedOrigins::parse(&["https://app.example.com".to_owned()]).unwrap();
    let patch = KeyPatch {
        origins: Some(origins.clone()),
        ..KeyPatch::default()
    };
    assert!(secret.check_patch(&patch).is_err());
    secret.apply(&patch, now);
    assert_eq!(
        secret.publishable, None,
        "a secret key never becomes publishable"
    );

    let mut public = record(now);
    public.publishable =
        Some(AllowedOrigins::parse(&["https://old.example.com".to_owned()]).unwrap());
    assert!(public.check_patch(&patch).is_ok());
    public.apply(&patch, now);
    assert_eq!(public.publishable, Some(origins));
    let writes = KeyPatch {
        scopes: Some(vec![Scope::parse("POST /proxy/x/*").unwrap()]),
        ..KeyPatch::default()
    };
    assert!(public.check_patch(&writes).is_err());
    assert!(secret.check_patch(&writes).is_ok());
    let reads = KeyPatch {
        scopes: Some(vec![Scope::parse("GET /proxy/x/*").unwrap()]),
        ..KeyPatch::default()
    };
    assert!(public.check_patch(&reads).is_ok());
}

#[test]
fn text_checks() {
    assert!(check_text("name", "prod backend", MAX_NAME_CHARS).is_ok());
    assert!(check_text("name", "  ", MAX_NAME_CHARS).is_err());
    assert!(check_text("name", "a\nb", MAX_NAME_CHARS).is_err());
    assert!(check_text("name", &"x".repeat(129), MAX_NAME_CHARS).is_err());
}
