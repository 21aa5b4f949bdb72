//! One suite over every KEK provider: the local key file, the `KEYGATE_MASTER_KEY`
//! environment value, and a key inside a PKCS#11 token (SoftHSM2, prepared by
//! `scripts/softhsm`, which `scripts/test` runs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keygate_crypto::envelope::{open, rewrap, seal};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use keygate_crypto::{
    CryptoError, DigestKey, Envelope, Kek, KekRing, KeyPresence, LocalKeyring, MasterKey,
    Pkcs11Config, Pkcs11Kek, SecretRow,
};
use proptest::prelude::*;
use secrecy::SecretString;

/// The token's settings, from `scripts/softhsm`. Missing settings fail the test: the PKCS#11
/// provider is part of the suite, not an option.
fn pkcs11_setting(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test (it prepares SoftHSM2)")
    })
}

/// The PKCS#11 KEK, opened once per process (a module is initialised once).
fn pkcs11() -> Arc<Pkcs11Kek> {
    static KEK: OnceLock<Arc<Pkcs11Kek>> = OnceLock::new();
    KEK.get_or_init(|| {
        let module = PathBuf::from(pkcs11_setting("KEYGATE_TEST_PKCS11_MODULE"));
        let token = pkcs11_setting("KEYGATE_TEST_PKCS11_TOKEN");
        let pin = SecretString::from(pkcs11_setting("KEYGATE_TEST_PKCS11_PIN"));
        let label = format!("keygate-kek-{}", std::process::id());
        let config = Pkcs11Config {
            module: &module,
            token_label: &token,
            pin: &pin,
            key_label: &label,
        };
        Arc::new(Pkcs11Kek::open(&config, KeyPresence::GenerateIfMissing).unwrap())
    })
    .clone()
}

/// A fresh instance of each provider (the token's key is shared by the process).
fn providers() -> Vec<(&'static str, Arc<dyn Kek>)> {
    let dir = tempfile::tempdir().unwrap();
    let local = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
    let value = STANDARD.encode([9u8; 32]);
    let env = MasterKey::from_env_value(&value).unwrap();
    let keyring = LocalKeyring::open(&dir.path().join("ring.key"), true).unwrap();
    let ring = KekRing::new(
        Arc::new(MasterKey::generate().unwrap()),
        vec![Arc::new(MasterKey::generate().unwrap())],
    );
    vec![
        ("local", Arc::new(local)),
        ("env", Arc::new(env)),
        ("pkcs11", pkcs11()),
        ("local keyring", Arc::new(keyring)),
        ("ring", Arc::new(ring)),
    ]
}

#[test]
fn the_token_key_stays_in_the_token() {
    let kek = pkcs11();
    assert!(kek.id().as_str().starts_with("pkcs11:keygate-kek-"));
    // Opening the same token again finds the same key, and "must exist" does not create one.
    let module = PathBuf::from(pkcs11_setting("KEYGATE_TEST_PKCS11_MODULE"));
    let token = pkcs11_setting("KEYGATE_TEST_PKCS11_TOKEN");
    let wrong_pin = SecretString::from("not-the-pin".to_owned());
    let config = Pkcs11Config {
        module: &module,
        token_label: &token,
        pin: &wrong_pin,
        key_label: "absent",
    };
    // A second initialisation of the module in this process is refused by PKCS#11 itself;
    // either way the call fails without revealing the PIN.
    let err = Pkcs11Kek::open(&config, KeyPresence::MustExist).unwrap_err();
    assert!(!err.to_string().contains("not-the-pin"));
}

const ROW: SecretRow<'static> = SecretRow {
    org: "org_1",
    project: "proj_1",
    secret: "sec_1",
    version: 3,
};

fn flip(text: &str, bit: usize) -> String {
    let mut bytes = STANDARD.decode(text).unwrap();
    let at = bit % (bytes.len() * 8);
    bytes[at / 8] ^= 1 << (at % 8);
    STANDARD.encode(bytes)
}

#[test]
fn wrap_round_trip_and_purpose_binding() {
    for (name, kek) in providers() {
        let wrapped = kek.wrap(b"data key", b"purpose a").unwrap();
        assert_eq!(wrapped.kek_id, kek.id(), "{name}");
        assert_eq!(
            kek.unwrap(&wrapped, b"purpose a").unwrap().as_slice(),
            b"data key"
        );
        let refused = kek.unwrap(&wrapped, b"purpose b");
        assert!(
            matches!(refused, Err(CryptoError::UnwrapFailed)),
            "{name}: {refused:?}"
        );
    }
}

#[test]
fn a_foreign_kek_is_named() {
    let all = providers();
    let other = MasterKey::generate().unwrap();
    for (name, kek) in &all {
        let wrapped = kek.wrap(b"x", b"aad").unwrap();
        match Kek::unwrap(&other, &wrapped, b"aad") {
            Err(CryptoError::KekMismatch { expected, actual }) => {
                assert_eq!(expected, kek.id().to_string(), "{name}");
                assert_eq!(actual, other.id().to_string());
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn envelopes_bind_their_row() {
    for (name, kek) in providers() {
        let envelope = seal(kek.as_ref(), &ROW, b"sk-live-upstream").unwrap();
        assert_eq!(
            open(kek.as_ref(), &ROW, &envelope).unwrap().as_slice(),
            b"sk-live-upstream"
        );
        for moved in [
            SecretRow {
                org: "org_2",
                ..ROW
            },
            SecretRow {
                project: "proj_2",
                ..ROW
            },
            SecretRow {
                secret: "sec_2",
                ..ROW
            },
            SecretRow { version: 4, ..ROW },
        ] {
            assert!(
                open(kek.as_ref(), &moved, &envelope).is_err(),
                "{name}: {moved:?}"
            );
        }
        // Swapping the data keys (or the sealed values) of two rows fails too.
        let other = seal(kek.as_ref(), &ROW, b"another value").unwrap();
        let swapped = Envelope {
            dek: other.dek.clone(),
            sealed: envelope.sealed.clone(),
        };
        assert!(open(kek.as_ref(), &ROW, &swapped).is_err(), "{name}");
        // The other envelope's nonce with this ciphertext fails too.
        let mut bytes = STANDARD.decode(&envelope.sealed).unwrap();
        let other_bytes = STANDARD.decode(&other.sealed).unwrap();
        bytes[1..13].copy_from_slice(&other_bytes[1..13]);
        let renonced = Envelope {
            sealed: STANDARD.encode(bytes),
            ..envelope.clone()
        };
        assert!(open(kek.as_ref(), &ROW, &renonced).is_err(), "{name}");
        // Each seal uses a fresh data key and nonce.
        let again = seal(kek.as_ref(), &ROW, b"sk-live-upstream").unwrap();
        assert_ne!(again.sealed, envelope.sealed);
        assert_ne!(again.dek.sealed, envelope.dek.sealed);
    }
}

#[test]
fn rewrapping_moves_the_data_key_and_keeps_the_value() {
    let from = MasterKey::generate().unwrap();
    for (name, to) in providers() {
        let envelope = seal(&from, &ROW, b"value").unwrap();
        let moved = rewrap(&from, to.as_ref(), &ROW, &envelope).unwrap();
        assert_eq!(moved.sealed, envelope.sealed, "{name}");
        assert_eq!(moved.dek.kek_id, to.id());
        assert_eq!(
            open(to.as_ref(), &ROW, &moved).unwrap().as_slice(),
            b"value"
        );
        assert!(matches!(
            open(&from, &ROW, &moved),
            Err(CryptoError::KekMismatch { .. })
        ));
    }
}

#[test]
fn the_digest_key_survives_every_provider() {
    for (name, kek) in providers() {
        let key = DigestKey::generate().unwrap();
        let reopened = DigestKey::unwrap(kek.as_ref(), &key.wrap(kek.as_ref()).unwrap()).unwrap();
        assert_eq!(
            key.digest("kg_live_x"),
            reopened.digest("kg_live_x"),
            "{name}"
        );
    }
}

proptest! {
    #[test]
    fn any_flipped_bit_fails(bit in 0usize..2000, in_dek in any::<bool>()) {
        for (_, kek) in providers() {
            let envelope = seal(kek.as_ref(), &ROW, b"upstream credential").unwrap();
            let mut tampered = envelope.clone();
            if in_dek {
                tampered.dek.sealed = flip(&envelope.dek.sealed, bit);
            } else {
                tampered.sealed = flip(&envelope.sealed, bit);
            }
            prop_assert!(open(kek.as_ref(), &ROW, &tampered).is_err());
        }
    }

    #[test]
    fn truncation_fails(cut in 1usize..40) {
        for (_, kek) in providers() {
            let envelope = seal(kek.as_ref(), &ROW, b"upstream credential").unwrap();
            let mut bytes = STANDARD.decode(&envelope.sealed).unwrap();
            bytes.truncate(bytes.len().saturating_sub(cut));
            let tampered = Envelope { sealed: STANDARD.encode(bytes), ..envelope };
            prop_assert!(open(kek.as_ref(), &ROW, &tampered).is_err());
        }
    }

    #[test]
    fn round_trip(value in proptest::collection::vec(any::<u8>(), 0..512)) {
        for (_, kek) in providers() {
            let envelope = seal(kek.as_ref(), &ROW, &value).unwrap();
            let opened = open(kek.as_ref(), &ROW, &envelope).unwrap();
            prop_assert_eq!(opened.as_slice(), value.as_slice());
        }
    }
}
