//! A model group's answer cache (`[model_groups.ALIAS.cache]`): which requests may be
//! answered from it, for how long, how large an answer it keeps, and whose it is — a
//! project's or one key's, never shared beyond. The cache itself is the server's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Which requests are answered from the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheWhen {
    /// Those that ask for the same answer every time (`temperature: 0`), and embeddings.
    #[default]
    Deterministic,
    /// Every request: the group's answers are taken to be worth reusing.
    Always,
}

/// Whose answers an entry serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CachePer {
    /// Any key of the project that asked first (with the scope for the alias).
    #[default]
    Project,
    /// The key that asked first only.
    Key,
}

/// The table as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    #[serde(default)]
    pub when: CacheWhen,
    pub ttl_seconds: Option<u64>,
    pub max_entry_bytes: Option<usize>,
    #[serde(default)]
    pub per: CachePer,
}

/// A group's cache, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub when: CacheWhen,
    pub ttl: Duration,
    /// The largest answer kept (bytes as the client gets them).
    pub max_entry_bytes: usize,
    pub per: CachePer,
}

impl CachePolicy {
    pub fn resolve(field: &str, file: &CacheFile) -> Result<Self, ConfigError> {
        let ttl = file.ttl_seconds.unwrap_or(3_600);
        if !(1..=30 * 86_400).contains(&ttl) {
            return Err(ConfigError::invalid(
                format!("{field}.ttl_seconds"),
                "1 to 2592000 (30 days)",
            ));
        }
        let max_entry_bytes = file.max_entry_bytes.unwrap_or(1024 * 1024);
        if !(1..=16 * 1024 * 1024).contains(&max_entry_bytes) {
            return Err(ConfigError::invalid(
                format!("{field}.max_entry_bytes"),
                "1 to 16777216 (16 MiB)",
            ));
        }
        Ok(Self {
            when: file.when,
            ttl: Duration::from_secs(ttl),
            max_entry_bytes,
            per: file.per,
        })
    }
}
