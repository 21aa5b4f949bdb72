//! A secret found, and how it is shown: masked everywhere it leaves the process. The secret
//! itself stays in memory only, for `--verify` and `--report`, and is wiped when dropped.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Characters of a secret that its masked form shows.
const SHOWN: usize = 4;

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule_id: String,
    pub description: String,
    /// Relative to the scanned root, with `/` separators.
    pub path: String,
    /// The commit that brought the secret, when scanning history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// 1-based.
    pub line: u32,
    /// 1-based, in bytes.
    pub column: u32,
    pub end_column: u32,
    /// The secret, masked: its first four characters at most, then `…`.
    pub masked: String,
    /// Shannon entropy of the secret, in bits per character.
    pub entropy: f64,
    /// Stable across moves within the file: the baseline keys on it.
    pub fingerprint: String,
    /// For a keygate key checked against its server (`--verify`): `valid`, `unknown`,
    /// `revoked`, `expired`, `suspended`, `rotated`, or the server's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    #[serde(skip)]
    pub secret: SecretString,
}

impl Finding {
    /// The secret's text, for verifying or reporting it. Never print it.
    pub fn expose_secret(&self) -> &str {
        self.secret.expose_secret()
    }
}

/// `ghp_…` from `ghp_abcdef…`: short secrets show nothing at all.
pub fn mask(secret: &str) -> String {
    let count = secret.chars().count();
    if count < 16 {
        return "…".to_owned();
    }
    let shown: String = secret.chars().take(SHOWN).collect();
    format!("{shown}…")
}

/// The fingerprint of a secret under a rule in a file: the first 128 bits of a SHA-256, so a
/// baseline holds no secret.
pub fn fingerprint(rule: &str, path: &str, secret: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [rule, path, secret] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..16])
}

/// Shannon entropy in bits per byte.
pub fn entropy(text: &[u8]) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 256];
    for byte in text {
        counts[usize::from(*byte)] += 1;
    }
    #[expect(clippy::cast_precision_loss, reason = "lengths far below 2^52")]
    let total = text.len() as f64;
    counts
        .iter()
        .filter(|count| **count > 0)
        .map(|count| {
            #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
            let p = *count as f64 / total;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_show_little_and_fingerprints_hide_the_secret() {
        assert_eq!(mask("ghp_0123456789abcdefghijklmnopqrstuvwxyz"), "ghp_…");
        assert_eq!(mask("short"), "…");
        let print = fingerprint("r", "a.txt", "ghp_0123456789abcdefghijklmnopqrstuvwxyz");
        assert_eq!(print.len(), 32);
        assert!(!print.contains("ghp_"));
        assert_ne!(
            print,
            fingerprint("r", "b.txt", "ghp_0123456789abcdefghijklmnopqrstuvwxyz")
        );
    }

    #[test]
    fn entropy_rises_with_variety() {
        assert!(entropy(b"aaaaaaaa") < 0.01);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert!(entropy(b"q8Zk2LmP0xVt7RwY") > 3.5);
    }
}
