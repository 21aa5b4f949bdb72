//! Replies kept for idempotent rotations: the new key, sealed by the KEK, for the day in which
//! a retry with the same `Idempotency-Key` may ask for it again.

use keygate_crypto::{CryptoError, Kek, KekId, WrappedKey};
use keygate_store::IdempotencyEntry;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ServiceError;

#[derive(Serialize, Deserialize)]
struct SealedReply {
    kek_id: String,
    sealed: String,
}

fn aad(scope: &str, idem: &str) -> String {
    format!("keygate:idempotency:{scope}:{idem}")
}

fn malformed() -> ServiceError {
    CryptoError::WrappedMalformed.into()
}

fn parse(response: &str) -> Result<WrappedKey, ServiceError> {
    let reply: SealedReply = serde_json::from_str(response).map_err(|_| malformed())?;
    Ok(WrappedKey {
        kek_id: KekId::from_stored(reply.kek_id),
        sealed: reply.sealed,
    })
}

fn render(wrapped: WrappedKey) -> Result<String, ServiceError> {
    serde_json::to_string(&SealedReply {
        kek_id: wrapped.kek_id.to_string(),
        sealed: wrapped.sealed,
    })
    .map_err(|_| malformed())
}

/// Seals `secret` as the stored reply for `scope` and `idem`.
pub(crate) fn seal(
    kek: &dyn Kek,
    scope: &str,
    idem: &str,
    secret: &str,
) -> Result<String, ServiceError> {
    render(kek.wrap(secret.as_bytes(), aad(scope, idem).as_bytes())?)
}

/// Opens a stored reply.
pub(crate) fn open(
    kek: &dyn Kek,
    entry: &IdempotencyEntry,
) -> Result<Zeroizing<String>, ServiceError> {
    let plain = kek.unwrap(
        &parse(&entry.response)?,
        aad(&entry.scope, &entry.key).as_bytes(),
    )?;
    String::from_utf8(plain.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| malformed())
}

/// The reply re-wrapped under `to`, or `None` when it is there already.
pub(crate) fn rewrap(
    from: &dyn Kek,
    to: &dyn Kek,
    entry: &IdempotencyEntry,
) -> Result<Option<String>, ServiceError> {
    let wrapped = parse(&entry.response)?;
    if wrapped.kek_id == to.id() {
        return Ok(None);
    }
    let aad = aad(&entry.scope, &entry.key);
    let plain = from.unwrap(&wrapped, aad.as_bytes())?;
    Ok(Some(render(to.wrap(&plain, aad.as_bytes())?)?))
}
