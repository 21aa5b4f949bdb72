//! A KEK with companions: one KEK wraps, several unwrap. This is how a store moves between
//! providers (e.g. from the local key file into an HSM): the new KEK is current while data
//! keys wrapped by the old one stay readable until `keygate kek rotate` has moved them.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::{CryptoError, Kek, KekId, WrappedKey};

#[derive(Debug)]
pub struct KekRing {
    current: Arc<dyn Kek>,
    others: Vec<Arc<dyn Kek>>,
}

impl KekRing {
    pub fn new(current: Arc<dyn Kek>, others: Vec<Arc<dyn Kek>>) -> Self {
        Self { current, others }
    }
}

impl Kek for KekRing {
    fn id(&self) -> KekId {
        self.current.id()
    }

    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<WrappedKey, CryptoError> {
        self.current.wrap(plaintext, aad)
    }

    fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        for kek in std::iter::once(&self.current).chain(self.others.iter()) {
            match kek.unwrap(wrapped, aad) {
                Err(CryptoError::KekMismatch { .. }) => continue,
                other => return other,
            }
        }
        Err(CryptoError::KekMismatch {
            expected: wrapped.kek_id.to_string(),
            actual: self.current.id().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::MasterKey;

    #[test]
    fn wraps_with_the_current_and_unwraps_with_any() {
        let old: Arc<dyn Kek> = Arc::new(MasterKey::generate().unwrap());
        let new: Arc<dyn Kek> = Arc::new(MasterKey::generate().unwrap());
        let by_old = old.wrap(b"old dek", b"aad").unwrap();
        let ring = KekRing::new(new.clone(), vec![old]);
        assert_eq!(ring.id(), new.id());
        assert_eq!(ring.wrap(b"x", b"aad").unwrap().kek_id, new.id());
        assert_eq!(ring.unwrap(&by_old, b"aad").unwrap().as_slice(), b"old dek");
        let stranger = Kek::wrap(&MasterKey::generate().unwrap(), b"x", b"aad").unwrap();
        assert!(matches!(
            ring.unwrap(&stranger, b"aad"),
            Err(CryptoError::KekMismatch { .. })
        ));
        // A tampered value is reported as altered, not as belonging to another key.
        let mut bytes = STANDARD.decode(&by_old.sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = WrappedKey {
            kek_id: by_old.kek_id.clone(),
            sealed: STANDARD.encode(bytes),
        };
        assert!(matches!(
            ring.unwrap(&tampered, b"aad"),
            Err(CryptoError::UnwrapFailed)
        ));
    }
}
