//! The pieces of SQL the implementations share: column lists in row order, the key listing
//! filter, and the values computed for them.

/// The columns of `api_keys`, in [`crate::rows::KeyRow`] order.
macro_rules! key_columns {
    () => {
        "id, kind, org_id, project_id, name, env, role, scopes, expires_at, ip_allow, metadata, \
         created_at, updated_at, last_used_at, revoked_at, revoked_reason, deleted_at, \
         rotate_every_ms, rotated_at, generation, hint, limits, publishable_origins, suspended_at, \
         suspended_reason, throttle, last_write_at"
    };
}

/// The same columns qualified by the alias `k`, for joins.
macro_rules! key_columns_k {
    () => {
        "k.id, k.kind, k.org_id, k.project_id, k.name, k.env, k.role, k.scopes, k.expires_at, \
         k.ip_allow, k.metadata, k.created_at, k.updated_at, k.last_used_at, k.revoked_at, \
         k.revoked_reason, k.deleted_at, k.rotate_every_ms, k.rotated_at, k.generation, k.hint, \
         k.limits, k.publishable_origins, k.suspended_at, k.suspended_reason, k.throttle, \
         k.last_write_at"
    };
}

/// A `LIKE … ESCAPE '\'` pattern matching names that contain `text`, ignoring ASCII case.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_ascii_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Credits of `current` (none counting as zero) plus `usd`, within the largest amount.
pub(crate) fn credits_plus(
    current: Option<keygate_core::MicroUsd>,
    usd: keygate_core::MicroUsd,
) -> Result<keygate_core::MicroUsd, crate::StoreError> {
    let total = current.unwrap_or_default().saturating_add(usd);
    if total > keygate_core::limits::MAX_BUDGET {
        return Err(crate::Conflict::CreditsTooHigh.into());
    }
    Ok(total)
}

/// The columns of `projects`, in [`crate::rows::ProjectRow`] order.
macro_rules! project_columns {
    () => {
        "id, org_id, name, created_at, limits, anomaly_actions"
    };
}

/// The filter shared by key listings: `$1` org, `$2` kind, `$3` project, `$4` env,
/// `$5` cursor, `$6` status, `$7` now, `$9` a name pattern (`$8` is the statement's limit).
macro_rules! key_filter {
    () => {
        " WHERE org_id = $1 AND kind = $2 AND ($3 IS NULL OR project_id = $3) \
          AND ($4 IS NULL OR env = $4) AND ($5 IS NULL OR id > $5) AND ( \
             ($6 IS NULL AND deleted_at IS NULL) \
          OR ($6 = 'active' AND deleted_at IS NULL AND revoked_at IS NULL \
              AND suspended_at IS NULL AND (expires_at IS NULL OR expires_at > $7)) \
          OR ($6 = 'revoked' AND deleted_at IS NULL AND revoked_at IS NOT NULL) \
          OR ($6 = 'suspended' AND deleted_at IS NULL AND revoked_at IS NULL \
              AND suspended_at IS NOT NULL) \
          OR ($6 = 'expired' AND deleted_at IS NULL AND revoked_at IS NULL \
              AND suspended_at IS NULL AND expires_at <= $7) \
          OR ($6 = 'deleted' AND deleted_at IS NOT NULL)) \
          AND ($9 IS NULL OR LOWER(name) LIKE $9 ESCAPE '\\') "
    };
}

pub(crate) use {key_columns, key_columns_k, key_filter, project_columns};
