//! The API key parser on arbitrary text. Nothing may panic; an accepted key is exactly its
//! text and its `Debug` form hides it; a refusal never shows the text it refused, since a
//! mistyped key is still mostly a secret.
//!
//! Input: the text. It is parsed as it is and without its first character: the seeds put a
//! `_` before each key of the right shape, so that the key scanners' rule (`keygate scan`,
//! `deploy/scanners/gitleaks.toml`) does not report them.

#![no_main]

use keygate_core::key::{ApiKey, KeyFormatError, MAX_KEY_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut rest = text.chars();
    rest.next();
    check(text);
    check(rest.as_str());
});

fn check(text: &str) {
    match ApiKey::parse(text) {
        Ok(key) => {
            assert_eq!(key.expose(), text);
            assert!(!format!("{key:?}").contains(text));
            let _ = key.hint();
        }
        // Shorter text can be found in any message by chance.
        Err(err) if text.chars().count() >= 8 => {
            let shown = format!("{err} {err:?}");
            // The errors carry nothing of the input: their wording is fixed, and text found
            // in it must be part of that wording.
            assert!(
                !shown.contains(text) || fixed_wording().contains(text),
                "{shown:?} shows the refused text"
            );
        }
        Err(_) => {}
    }
}

fn fixed_wording() -> String {
    let expected = MAX_KEY_LEN - "kg_live_".len();
    [
        KeyFormatError::BadPrefix,
        KeyFormatError::UnknownEnv,
        KeyFormatError::BadLength { expected },
        KeyFormatError::BadCharacter,
        KeyFormatError::ChecksumMismatch,
    ]
    .iter()
    .map(|err| format!("{err} {err:?}\n"))
    .collect()
}
