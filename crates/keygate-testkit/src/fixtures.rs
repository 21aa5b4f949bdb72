//! Valid domain values for tests.

use keygate_core::{
    ApiKey, AuditAction, AuditDraft, KeyEnv, KeyHint, KeyId, KeyKind, KeyRecord, KeySecret,
    Metadata, OrgId, ProjectId, Timestamp,
};
use keygate_crypto::DigestKey;

/// A generated key with its record and first secret, ready to store.
#[derive(Debug)]
pub struct KeyFixture {
    pub key: ApiKey,
    pub record: KeyRecord,
    pub secret: KeySecret,
}

/// A new API key in `project` of `org`, created at `now`.
pub fn new_key(
    digest_key: &DigestKey,
    org: &OrgId,
    project: &ProjectId,
    now: Timestamp,
) -> KeyFixture {
    let key = ApiKey::generate(KeyEnv::Live).expect("OS randomness");
    let record = KeyRecord {
        id: KeyId::generate(),
        kind: KeyKind::Api,
        org_id: org.clone(),
        project_id: Some(project.clone()),
        name: "fixture".into(),
        env: KeyEnv::Live,
        role: None,
        scopes: vec![],
        expires_at: None,
        ip_allow: vec![],
        metadata: Metadata::default(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
        revoked_at: None,
        revoked_reason: None,
        deleted_at: None,
        rotate_every: None,
        rotated_at: None,
        generation: 0,
        hint: KeyHint::from_stored(key.hint().to_string()),
    };
    let secret = KeySecret {
        digest: digest_key.digest(key.expose()).as_bytes().to_vec(),
        key_id: record.id.clone(),
        generation: 0,
        created_at: now,
        grace_until: None,
    };
    KeyFixture {
        key,
        record,
        secret,
    }
}

/// An audit draft for `action` by a test actor.
pub fn audit(action: AuditAction) -> AuditDraft {
    AuditDraft::new("test", action)
}
