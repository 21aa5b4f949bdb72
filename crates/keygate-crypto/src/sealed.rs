//! The stored form of everything keygate seals with AES-GCM (wrapped keys, secret values):
//! `format version ‖ nonce ‖ ciphertext ‖ tag`, in base64.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::CryptoError;

const FORMAT_VERSION: u8 = 1;
pub(crate) const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A random nonce: a fresh one for every seal, so none is ever used twice with a key.
pub(crate) fn fresh_nonce() -> Result<[u8; NONCE_LEN], CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
    Ok(nonce)
}

pub(crate) fn encode(nonce: &[u8; NONCE_LEN], ciphertext: &[u8]) -> String {
    let mut blob = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    blob.push(FORMAT_VERSION);
    blob.extend_from_slice(nonce);
    blob.extend_from_slice(ciphertext);
    STANDARD.encode(blob)
}

/// The nonce and the ciphertext (with its tag); refuses another version or a short blob.
pub(crate) fn decode(text: &str) -> Result<([u8; NONCE_LEN], Vec<u8>), CryptoError> {
    let blob = STANDARD
        .decode(text)
        .map_err(|_| CryptoError::WrappedMalformed)?;
    let (version, rest) = blob.split_first().ok_or(CryptoError::WrappedMalformed)?;
    if *version != FORMAT_VERSION || rest.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::WrappedMalformed);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| CryptoError::WrappedMalformed)?;
    Ok((nonce, ciphertext.to_vec()))
}
