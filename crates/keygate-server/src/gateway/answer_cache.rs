//! Answers reused for the same request, where a model group keeps them
//! (`[model_groups.ALIAS.cache]`). An entry is named by the SHA-256 of its owner — the
//! project (or the key) that asked — the endpoint, the alias and the request in a canonical
//! form (keys sorted; fields that change no answer left out), so it is never served across
//! projects, and the key's scope for the alias is checked before any lookup. A streamed answer
//! is kept as the bytes its client got and replayed as they were; a whole one likewise. Entries
//! live in this node's memory, bounded in bytes, each for its group's TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use bytes::Bytes;
use keygate_core::{MicroUsd, TokenCounts};
use keygate_llm::cache_policy::{CachePer, CachePolicy, CacheWhen};
use keygate_llm::{Endpoint, Inbound};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cache::CachedKey;

/// Bytes of answers kept on a node at most.
const CAPACITY_BYTES: u64 = 256 * 1024 * 1024;

/// Top-level request fields that change no answer: who asks, labels, storage and delivery
/// options.
const IGNORED: [&str; 9] = [
    "user",
    "safety_identifier",
    "metadata",
    "client_metadata",
    "store",
    "stream_options",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
];

/// A kept answer, as its client got it, with what it cost when it was made.
#[derive(Debug)]
pub struct CachedAnswer {
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
    pub tokens: Option<TokenCounts>,
    pub cost: Option<MicroUsd>,
    /// The deployment that made it, `provider/model`.
    pub deployment: String,
    pub provider: String,
    ttl: Duration,
}

impl CachedAnswer {
    pub fn new(
        content_type: Option<HeaderValue>,
        body: Bytes,
        tokens: Option<TokenCounts>,
        cost: Option<MicroUsd>,
        served: &keygate_llm::Served,
        ttl: Duration,
    ) -> Self {
        Self {
            content_type,
            body,
            tokens,
            cost,
            deployment: served.deployment.clone(),
            provider: served.provider.clone(),
            ttl,
        }
    }
}

struct PerEntry;

impl moka::Expiry<[u8; 32], Arc<CachedAnswer>> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<CachedAnswer>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// This node's kept answers.
pub struct AnswerCache {
    entries: moka::sync::Cache<[u8; 32], Arc<CachedAnswer>>,
}

impl std::fmt::Debug for AnswerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl Default for AnswerCache {
    fn default() -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(CAPACITY_BYTES)
                .weigher(|_, answer: &Arc<CachedAnswer>| {
                    u32::try_from(answer.body.len()).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntry)
                .build(),
        }
    }
}

/// Where a request's answer is looked up and kept.
#[derive(Debug, Clone, Copy)]
pub struct CacheSlot {
    pub name: [u8; 32],
    pub policy: CachePolicy,
}

impl AnswerCache {
    pub fn get(&self, slot: &CacheSlot) -> Option<Arc<CachedAnswer>> {
        self.entries.get(&slot.name)
    }

    /// Keeps an answer within the group's bound (a larger one is not kept).
    pub fn put(&self, slot: &CacheSlot, answer: CachedAnswer) {
        if answer.body.len() <= slot.policy.max_entry_bytes {
            self.entries.insert(slot.name, Arc::new(answer));
        }
    }
}

/// Whether a request may be answered from its group's cache (`None` when not), and where.
pub fn slot(policy: Option<CachePolicy>, key: &CachedKey, inbound: &Inbound) -> Option<CacheSlot> {
    let policy = policy?;
    let endpoint = inbound.endpoint;
    if endpoint == Endpoint::CountTokens {
        return None;
    }
    let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(&inbound.body) else {
        return None;
    };
    let deterministic = endpoint == Endpoint::Embeddings
        || request
            .get("temperature")
            .and_then(Value::as_f64)
            .is_some_and(|t| t == 0.0);
    if policy.when == CacheWhen::Deterministic && !deterministic {
        return None;
    }
    for field in IGNORED {
        request.remove(field);
    }
    let owner = match (policy.per, &key.record.project_id) {
        (CachePer::Project, Some(project)) => format!("project:{project}"),
        _ => format!("key:{}", key.record.id),
    };
    let mut hash = Sha256::new();
    for part in [
        "keygate-answer-cache-1",
        &owner,
        endpoint.as_str(),
        &inbound.model,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    canonical(&Value::Object(request), &mut hash);
    Some(CacheSlot {
        name: hash.finalize().into(),
        policy,
    })
}

/// Feeds `value` to `hash` with object keys sorted, so the same request hashes alike however
/// its client ordered it.
fn canonical(value: &Value, hash: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hash.update(b"{");
            for key in keys {
                hash.update(Value::String(key.clone()).to_string().as_bytes());
                hash.update(b":");
                canonical(&map[key], hash);
                hash.update(b",");
            }
            hash.update(b"}");
        }
        Value::Array(items) => {
            hash.update(b"[");
            for item in items {
                canonical(item, hash);
                hash.update(b",");
            }
            hash.update(b"]");
        }
        other => hash.update(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> [u8; 32] {
        let value: Value = serde_json::from_str(text).unwrap();
        let mut hash = Sha256::new();
        canonical(&value, &mut hash);
        hash.finalize().into()
    }

    #[test]
    fn the_canonical_form_ignores_key_order_only() {
        assert_eq!(
            name(r#"{"a":1,"b":{"c":[1,2],"d":"x"}}"#),
            name(r#"{"b":{"d":"x","c":[1,2]},"a":1}"#)
        );
        assert_ne!(name(r#"{"b":[1,2]}"#), name(r#"{"b":[2,1]}"#));
        assert_ne!(name(r#"{"a":"1"}"#), name(r#"{"a":1}"#));
        assert_ne!(name(r#"{"a":{"b":1}}"#), name(r#"{"a":{"b":1,"c":null}}"#));
    }
}
