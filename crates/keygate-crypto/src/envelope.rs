//! Envelope encryption for stored secrets: each value gets a fresh random data key (DEK), the
//! value is sealed with it (AES-256-GCM), and the DEK is wrapped by the KEK. The associated
//! data names the row (organisation, project, secret, version) for both layers, so a
//! ciphertext or a wrapped DEK copied to another row fails to open.
//!
//! `sealed` is `format version ‖ nonce ‖ ciphertext ‖ tag` in base64; the wrapped DEK carries
//! the KEK id. Rotating the KEK re-wraps DEKs and never touches `sealed`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::{CryptoError, Kek, WrappedKey};

use crate::sealed::{self, NONCE_LEN};

/// Where a sealed value belongs. Its canonical encoding is the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretRow<'a> {
    pub org: &'a str,
    pub project: &'a str,
    pub secret: &'a str,
    pub version: i64,
}

impl SecretRow<'_> {
    fn aad(&self, layer: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(96);
        aad.extend_from_slice(b"keygate:secret:v1:");
        aad.extend_from_slice(layer.as_bytes());
        for part in [self.org, self.project, self.secret] {
            // Length prefixes keep `a|bc` and `ab|c` apart.
            aad.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad
    }
}

/// A sealed value and its wrapped data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub dek: WrappedKey,
    pub sealed: String,
}

/// Seals `plaintext` for `row` under a fresh data key wrapped by `kek`.
pub fn seal(kek: &dyn Kek, row: &SecretRow<'_>, plaintext: &[u8]) -> Result<Envelope, CryptoError> {
    let mut dek = Zeroizing::new([0u8; 32]);
    getrandom::fill(dek.as_mut()).map_err(|_| CryptoError::Random)?;
    let nonce = sealed::fresh_nonce()?;
    Ok(Envelope {
        dek: kek.wrap(dek.as_ref(), &row.aad("dek"))?,
        sealed: seal_value(&dek, nonce, row, plaintext)?,
    })
}

/// The value layer: AES-256-GCM under `dek`, in the versioned, base64 form.
fn seal_value(
    dek: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    row: &SecretRow<'_>,
    plaintext: &[u8],
) -> Result<String, CryptoError> {
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*dek));
    let aad = row.aad("value");
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::Random)?;
    Ok(sealed::encode(&nonce, &ciphertext))
}

/// Opens an envelope sealed for `row`.
pub fn open(
    kek: &dyn Kek,
    row: &SecretRow<'_>,
    envelope: &Envelope,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let dek = kek.unwrap(&envelope.dek, &row.aad("dek"))?;
    let dek: [u8; 32] = dek
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::WrappedMalformed)?;
    let dek = Zeroizing::new(dek);
    let (nonce, ciphertext) = sealed::decode(&envelope.sealed)?;
    let nonce = Nonce::from(nonce);
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*dek));
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &ciphertext,
                aad: &row.aad("value"),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::UnwrapFailed)
}

/// Re-wraps an envelope's data key under `to`; the sealed value is left as it is.
pub fn rewrap(
    from: &dyn Kek,
    to: &dyn Kek,
    row: &SecretRow<'_>,
    envelope: &Envelope,
) -> Result<Envelope, CryptoError> {
    let aad = row.aad("dek");
    let dek = from.unwrap(&envelope.dek, &aad)?;
    Ok(Envelope {
        dek: to.wrap(&dek, &aad)?,
        sealed: envelope.sealed.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_for_the_value_layer() {
        // Computed independently with Python's `cryptography` AESGCM over the same associated
        // data encoding.
        let row = SecretRow {
            org: "org_a",
            project: "proj_b",
            secret: "sec_c",
            version: 1,
        };
        let sealed = seal_value(&[1; 32], [2; NONCE_LEN], &row, b"sk-test").unwrap();
        assert_eq!(sealed, "AQICAgICAgICAgICAnS95D0vJLUkDcA/2UUBEfFO5x90LSH4");
    }

    #[test]
    fn row_parts_cannot_be_shifted() {
        let a = SecretRow {
            org: "o",
            project: "ab",
            secret: "c",
            version: 1,
        };
        let b = SecretRow {
            project: "a",
            secret: "bc",
            ..a
        };
        assert_ne!(a.aad("value"), b.aad("value"));
    }
}
