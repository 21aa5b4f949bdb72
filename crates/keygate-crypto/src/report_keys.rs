//! The public keys that sign leak reports. GitHub's secret scanning signs each report it sends
//! to a partner with ECDSA over P-256 and SHA-256: `Github-Public-Key-Signature` is the base64
//! of the DER signature of the raw body, and `Github-Public-Key-Identifier` names the key (its
//! public keys, in PEM, are listed at api.github.com/meta/public_keys/secret_scanning).

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A key that is not a PEM `PUBLIC KEY` on P-256.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("report key `{id}` is not a PEM P-256 public key (-----BEGIN PUBLIC KEY-----)")]
pub struct ReportKeyError {
    pub id: String,
}

/// Trusted report signers' public keys, by identifier.
#[derive(Debug, Clone, Default)]
pub struct ReportKeys(Vec<(String, Vec<u8>)>);

/// The DER inside a PEM block labelled `PUBLIC KEY`.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let text: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(text).ok()
}

/// The P-256 identifiers (id-ecPublicKey, prime256v1) an SPKI of the right curve carries.
const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

impl ReportKeys {
    /// Reads `(identifier, PEM)` pairs; a key that is not P-256 is refused by name.
    pub fn parse<'a>(
        keys: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ReportKeyError> {
        keys.into_iter()
            .map(|(id, pem)| {
                let der = pem_der(pem)
                    .filter(|der| der.len() == 91 && der.starts_with(&P256_SPKI_PREFIX))
                    .ok_or_else(|| ReportKeyError { id: id.to_owned() })?;
                // The uncompressed point: what the verifier takes.
                Ok((id.to_owned(), der[26..].to_vec()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `signature` (base64 of a DER ECDSA signature) is the key `id`'s over `body`.
    pub fn verify(&self, id: &str, signature: &str, body: &[u8]) -> bool {
        let Some((_, point)) = self.0.iter().find(|(known, _)| known == id) else {
            return false;
        };
        let Ok(signature) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(body, &signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};

    use super::*;

    fn pem(der: &[u8]) -> String {
        let lines: Vec<String> = STANDARD
            .encode(der)
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn a_report_signed_by_a_listed_key_verifies_and_nothing_else_does() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let keys = ReportKeys::parse([("github-1", pem(spki.as_ref()).as_str())]).unwrap();
        let body = br#"[{"token":"kg_live_x","type":"keygate_key","url":"","source":"content"}]"#;
        let signature = STANDARD.encode(pair.sign(&rng, body).unwrap().as_ref());
        assert!(keys.verify("github-1", &signature, body));
        assert!(!keys.verify("github-2", &signature, body));
        assert!(!keys.verify("github-1", &signature, b"[]"));
        assert!(!keys.verify("github-1", "not base64!", body));
    }

    #[test]
    fn keys_that_are_not_p256_pem_are_refused_by_name() {
        for bad in [
            "",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        ] {
            assert_eq!(
                ReportKeys::parse([("k1", bad)]).unwrap_err(),
                ReportKeyError { id: "k1".into() }
            );
        }
    }
}
