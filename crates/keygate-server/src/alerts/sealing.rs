//! Endpoints' signing secrets at rest: wrapped by the KEK like every other key, with the
//! endpoint's id as associated data (a sealed secret copied to another endpoint fails to
//! open), and moved by a KEK rotation with everything else.

use keygate_core::WebhookId;
use keygate_crypto::{Kek, KekId, WrappedKey};
use keygate_store::{Store, WebhookEndpoint};
use keygate_watch::WebhookSecret;

use crate::ServiceError;

fn aad(id: &WebhookId) -> String {
    format!("keygate:webhook:v1:{id}")
}

/// `(kek_id, sealed)` for the store.
pub(super) fn seal(
    kek: &dyn Kek,
    id: &WebhookId,
    secret: &WebhookSecret,
) -> Result<(String, String), ServiceError> {
    let wrapped = kek.wrap(secret.expose_bytes(), aad(id).as_bytes())?;
    Ok((wrapped.kek_id.to_string(), wrapped.sealed))
}

pub(super) fn open(
    kek: &dyn Kek,
    endpoint: &WebhookEndpoint,
) -> Result<WebhookSecret, ServiceError> {
    open_parts(kek, &endpoint.id, &endpoint.kek_id, &endpoint.secret_sealed)
}

pub(super) fn open_parts(
    kek: &dyn Kek,
    id: &WebhookId,
    kek_id: &str,
    sealed: &str,
) -> Result<WebhookSecret, ServiceError> {
    let wrapped = WrappedKey {
        kek_id: KekId::from_stored(kek_id.to_owned()),
        sealed: sealed.to_owned(),
    };
    let bytes = kek.unwrap(&wrapped, aad(id).as_bytes())?;
    WebhookSecret::from_bytes(&bytes).map_err(|_| ServiceError::SecretUnreadable)
}

/// Re-wraps every endpoint secret not yet under `to`; returns how many moved.
pub async fn rewrap_webhook_secrets(
    store: &dyn Store,
    from: &dyn Kek,
    to: &dyn Kek,
) -> Result<u64, ServiceError> {
    let target = to.id().to_string();
    let mut moved = 0;
    loop {
        let batch = store.webhooks_not_wrapped_by(&target, 100).await?;
        let mut moved_now = 0;
        for endpoint in &batch {
            let secret = open(from, endpoint)?;
            let (kek_id, sealed) = seal(to, &endpoint.id, &secret)?;
            if store
                .rewrap_webhook_secret(&endpoint.id, &endpoint.kek_id, &kek_id, &sealed)
                .await?
            {
                moved_now += 1;
            }
        }
        moved += moved_now;
        // A batch in which nothing moved was moved by another run meanwhile: stop.
        if batch.len() < 100 || moved_now == 0 {
            return Ok(moved);
        }
    }
}

/// Whether any endpoint secret is still wrapped by a KEK other than `kek`.
pub async fn webhooks_sealed_by_other(
    store: &dyn Store,
    kek: &KekId,
) -> Result<bool, ServiceError> {
    Ok(!store
        .webhooks_not_wrapped_by(kek.as_str(), 1)
        .await?
        .is_empty())
}
