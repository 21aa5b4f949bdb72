//! Valid domain values for tests.

use keygate_core::{
    ApiKey, AuditAction, AuditDraft, KeyEnv, KeyRecord, KeySecret, KeySpec, OrgId, ProjectId,
    Timestamp,
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
    let spec = KeySpec::api(org.clone(), project.clone(), "fixture".into(), KeyEnv::Live);
    let record = KeyRecord::issue(spec, key.hint(), now);
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
