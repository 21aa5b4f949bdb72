//! The API key format: `kg_<env>_<secret><check>`.
//!
//! `secret` is 32 bytes from the OS CSPRNG in base62 (43 characters); `check` is the CRC32 of
//! everything before it in base62 (6 characters). The checksum lets the CLI, the scanner and
//! the server reject a typo or a random string offline, before any lookup.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::base62;

const PREFIX: &str = "kg_";
const SECRET_LEN: usize = 43;
const CHECK_LEN: usize = 6;
/// Longest accepted key text; anything longer is rejected before it is inspected.
pub const MAX_KEY_LEN: usize = PREFIX.len() + 4 + 1 + SECRET_LEN + CHECK_LEN;

/// The environment a key belongs to. A test key never reaches a live upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyEnv {
    Live,
    Test,
}

impl KeyEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }
}

impl fmt::Display for KeyEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyEnv {
    type Err = KeyFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "live" => Ok(Self::Live),
            "test" => Ok(Self::Test),
            _ => Err(KeyFormatError::UnknownEnv),
        }
    }
}

/// Why a string is not a well-formed keygate key. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("a keygate key starts with `kg_live_` or `kg_test_`")]
    BadPrefix,
    #[error("the key environment must be `live` or `test`")]
    UnknownEnv,
    #[error("a keygate key has exactly {expected} characters after the environment")]
    BadLength { expected: usize },
    #[error("a keygate key contains only letters and digits after its prefix")]
    BadCharacter,
    #[error("the key checksum does not match: the key was mistyped or truncated")]
    ChecksumMismatch,
}

/// A complete API key. The text is secret: it is zeroized on drop and redacted in `Debug`.
pub struct ApiKey {
    text: SecretString,
    env: KeyEnv,
}

impl ApiKey {
    /// Generates a new key from 32 bytes of the OS CSPRNG.
    pub fn generate(env: KeyEnv) -> Result<Self, getrandom::Error> {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut())?;
        let mut text = String::with_capacity(MAX_KEY_LEN);
        text.push_str(PREFIX);
        text.push_str(env.as_str());
        text.push('_');
        text.push_str(&base62::encode_fixed(secret.as_ref(), SECRET_LEN));
        let check = crc32fast::hash(text.as_bytes());
        text.push_str(&base62::encode_fixed(&check.to_be_bytes(), CHECK_LEN));
        Ok(Self {
            text: SecretString::from(text),
            env,
        })
    }

    /// Parses and checksum-checks a key offline. The error never contains the input.
    pub fn parse(text: &str) -> Result<Self, KeyFormatError> {
        let env = check_format(text)?;
        Ok(Self {
            text: SecretString::from(text.to_owned()),
            env,
        })
    }

    pub fn env(&self) -> KeyEnv {
        self.env
    }

    /// The full key text. Call only to send it to its owner once, or to digest it.
    pub fn expose(&self) -> &str {
        self.text.expose_secret()
    }

    /// The display hint stored beside the digest: `kg_live_AbCd…wXyZ`.
    pub fn hint(&self) -> KeyHint {
        let text = self.expose();
        let head_end = PREFIX.len() + self.env.as_str().len() + 1 + 4;
        let tail_start = text.len() - 4;
        KeyHint(format!("{}…{}", &text[..head_end], &text[tail_start..]))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}, [REDACTED])", self.env)
    }
}

/// Checks the shape and checksum of a key and returns its environment.
fn check_format(text: &str) -> Result<KeyEnv, KeyFormatError> {
    if text.len() > MAX_KEY_LEN + 16 {
        return Err(KeyFormatError::BadLength {
            expected: SECRET_LEN + CHECK_LEN,
        });
    }
    let rest = text.strip_prefix(PREFIX).ok_or(KeyFormatError::BadPrefix)?;
    let (env, body) = rest.split_once('_').ok_or(KeyFormatError::BadPrefix)?;
    let env: KeyEnv = env.parse()?;
    if body.len() != SECRET_LEN + CHECK_LEN {
        return Err(KeyFormatError::BadLength {
            expected: SECRET_LEN + CHECK_LEN,
        });
    }
    if !body.bytes().all(|c| base62::digit_value(c).is_some()) {
        return Err(KeyFormatError::BadCharacter);
    }
    let (checked, check) = text.split_at(text.len() - CHECK_LEN);
    let expected = u64::from(crc32fast::hash(checked.as_bytes()));
    match base62::decode_u64(check.as_bytes()) {
        Some(actual) if actual == expected => Ok(env),
        _ => Err(KeyFormatError::ChecksumMismatch),
    }
}

/// A non-secret display form of a key, safe to log and to show in lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHint(String);

impl KeyHint {
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fresh(env: KeyEnv) -> ApiKey {
        ApiKey::generate(env).expect("OS randomness")
    }

    #[test]
    fn generated_key_has_the_documented_shape() {
        let key = fresh(KeyEnv::Live);
        let text = key.expose();
        assert!(text.starts_with("kg_live_"));
        assert_eq!(text.len(), 8 + 43 + 6);
        assert_eq!(text.len(), MAX_KEY_LEN);
        assert!(text[8..].bytes().all(|c| c.is_ascii_alphanumeric()));
        let test_key = fresh(KeyEnv::Test);
        assert!(test_key.expose().starts_with("kg_test_"));
        assert_eq!(
            ApiKey::parse(test_key.expose()).unwrap().env(),
            KeyEnv::Test
        );
    }

    #[test]
    fn two_keys_differ() {
        assert_ne!(fresh(KeyEnv::Live).expose(), fresh(KeyEnv::Live).expose());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = fresh(KeyEnv::Live);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose()[8..20]));
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn hint_shows_only_edges() {
        let key = fresh(KeyEnv::Live);
        let hint = key.hint();
        let text = key.expose();
        assert_eq!(
            hint.as_str(),
            format!("{}…{}", &text[..12], &text[text.len() - 4..])
        );
    }

    #[test]
    fn rejects_malformed_inputs_with_specific_errors() {
        let key = fresh(KeyEnv::Live);
        let text = key.expose();
        assert_eq!(ApiKey::parse("").unwrap_err(), KeyFormatError::BadPrefix);
        assert_eq!(
            ApiKey::parse("sk-abc").unwrap_err(),
            KeyFormatError::BadPrefix
        );
        assert_eq!(
            ApiKey::parse(&text.replace("kg_live_", "kg_prod_")).unwrap_err(),
            KeyFormatError::UnknownEnv
        );
        assert!(matches!(
            ApiKey::parse(&text[..text.len() - 1]).unwrap_err(),
            KeyFormatError::BadLength { .. }
        ));
        let mut bad_char = text.to_owned();
        bad_char.replace_range(20..21, "-");
        assert_eq!(
            ApiKey::parse(&bad_char).unwrap_err(),
            KeyFormatError::BadCharacter
        );
        assert!(ApiKey::parse(&"k".repeat(10_000)).is_err());
    }

    #[test]
    fn env_switch_breaks_checksum() {
        let key = fresh(KeyEnv::Live);
        let swapped = key.expose().replacen("kg_live_", "kg_test_", 1);
        assert_eq!(
            ApiKey::parse(&swapped).unwrap_err(),
            KeyFormatError::ChecksumMismatch
        );
    }

    #[test]
    fn fuzz_seeds_keep_the_invariants() {
        // The seeds put a `_` before keys of the right shape, out of the key scanners' reach.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/api_key");
        let mut accepted = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let seed = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for text in std::iter::once(seed.as_str()).chain(seed.strip_prefix('_')) {
                match ApiKey::parse(text) {
                    Ok(key) => {
                        assert_eq!(key.expose(), text);
                        accepted += 1;
                    }
                    Err(err) => assert!(!format!("{err} {err:?}").contains(text), "{text}"),
                }
            }
        }
        assert!(accepted > 0, "the seeds hold well-formed keys");
    }

    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    proptest! {
        #[test]
        fn generated_keys_round_trip(live in any::<bool>()) {
            let env = if live { KeyEnv::Live } else { KeyEnv::Test };
            let key = fresh(env);
            let parsed = ApiKey::parse(key.expose()).unwrap();
            prop_assert_eq!(parsed.expose(), key.expose());
            prop_assert_eq!(parsed.env(), env);
        }

        #[test]
        fn every_single_character_change_fails(pos in 0usize..MAX_KEY_LEN, pick in 0usize..62) {
            let key = fresh(KeyEnv::Live);
            let mut bytes = key.expose().as_bytes().to_vec();
            let replacement = if pos < 8 {
                // Inside the prefix any other character must also be refused.
                if bytes[pos] == b'x' { b'y' } else { b'x' }
            } else {
                let c = BASE62[pick];
                if c == bytes[pos] { BASE62[(pick + 1) % 62] } else { c }
            };
            bytes[pos] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(ApiKey::parse(&changed).is_err());
        }

        #[test]
        fn random_strings_are_rejected(body in "[0-9A-Za-z]{49}") {
            // A random body passes the checksum with probability 2^-32; proptest's
            // 256 cases make a false accept practically impossible.
            let text = format!("kg_live_{body}");
            prop_assert!(ApiKey::parse(&text).is_err());
        }
    }
}
