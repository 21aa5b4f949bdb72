//! Answers reused for the same request, where a model group keeps them
//! (`[model_groups.ALIAS.cache]`). An entry is named by the SHA-256 of its owner — the
//! project (or the key) that asked — the endpoint, the alias and the request in a canonical
//! form (keys sorted; fields that change no answer left out), so it is never served across
//! projects, and the key's scope for the alias is checked before any lookup. A streamed answer
//! is kept as the bytes its client got and replayed as they were; a whole one likewise. Entries
//! live in this node's memory, bounded in bytes, each for its group's TTL — and, where limits
//! are shared through Redis, in Redis too (`keygate:answers:<name>`, expiring with the same
//! TTL), so every node answers from them. Redis is best effort here: when it does not answer,
//! the node's own memory does.

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

/// Top-level fields of a chat or embeddings request that change no byte of its answer: who
/// asks, labels, storage and caching hints. (`stream_options` does: it adds the usage chunk.
/// A Responses answer echoes most of these, so its requests are named whole.)
const IGNORED: [&str; 8] = [
    "user",
    "safety_identifier",
    "metadata",
    "client_metadata",
    "store",
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

/// How long a lookup or a write waits for Redis.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

fn redis_key(slot: &CacheSlot) -> String {
    format!("keygate:answers:{}", hex::encode(slot.name))
}

impl AnswerCache {
    /// The answer kept for `slot`: this node's, else (with `redis`) the cluster's, which this
    /// node then keeps for what is left of its time.
    pub async fn get(
        &self,
        slot: &CacheSlot,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> Option<Arc<CachedAnswer>> {
        if let Some(answer) = self.entries.get(&slot.name) {
            return Some(answer);
        }
        let mut redis = redis?;
        let key = redis_key(slot);
        let mut pipe = redis::pipe();
        pipe.get(&key).pttl(&key);
        let read = pipe.query_async::<(Option<Vec<u8>>, i64)>(&mut redis);
        let (bytes, left) = match tokio::time::timeout(REDIS_TIMEOUT, read).await {
            Ok(Ok((Some(bytes), left))) if left > 0 => (bytes, left),
            _ => return None,
        };
        let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
        let answer = Arc::new(CachedAnswer::decode(&bytes, left)?);
        self.entries.insert(slot.name, answer.clone());
        Some(answer)
    }

    /// Keeps an answer within the group's bound (a larger one is not kept): in this node's
    /// memory, and (with `redis`) in Redis by a task of `limiter`'s, off the request's path.
    pub fn put(
        &self,
        slot: &CacheSlot,
        answer: CachedAnswer,
        limiter: &Arc<crate::limits::Limiter>,
    ) {
        if answer.body.len() > slot.policy.max_entry_bytes {
            return;
        }
        let answer = Arc::new(answer);
        self.entries.insert(slot.name, answer.clone());
        if !limiter.shares_limits() {
            return;
        }
        let key = redis_key(slot);
        let ttl = u64::try_from(slot.policy.ttl.as_millis()).unwrap_or(u64::MAX);
        let shared = Arc::clone(limiter);
        limiter.spawn(async move {
            let Some(mut redis) = shared.redis().await else {
                return;
            };
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(answer.encode()).arg("PX").arg(ttl);
            let write = set.query_async::<()>(&mut redis);
            if !matches!(tokio::time::timeout(REDIS_TIMEOUT, write).await, Ok(Ok(()))) {
                tracing::debug!("an answer could not be kept in Redis");
            }
        });
    }
}

/// How an answer travels through Redis: a line of JSON (what it is and cost), then the body.
#[derive(serde::Serialize, serde::Deserialize)]
struct Head {
    content_type: Option<String>,
    tokens: Option<[u64; 3]>,
    cost: Option<i64>,
    deployment: String,
    provider: String,
}

impl CachedAnswer {
    fn encode(&self) -> Vec<u8> {
        let head = Head {
            content_type: self
                .content_type
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            tokens: self.tokens.map(|t| [t.prompt, t.completion, t.cached]),
            cost: self.cost.map(|c| c.0),
            deployment: self.deployment.clone(),
            provider: self.provider.clone(),
        };
        let mut bytes = serde_json::to_vec(&head).unwrap_or_default();
        bytes.push(b'\n');
        bytes.extend_from_slice(&self.body);
        bytes
    }

    fn decode(bytes: &[u8], ttl: Duration) -> Option<Self> {
        let split = bytes.iter().position(|b| *b == b'\n')?;
        let head: Head = serde_json::from_slice(&bytes[..split]).ok()?;
        Some(Self {
            content_type: head
                .content_type
                .and_then(|t| HeaderValue::from_str(&t).ok()),
            body: Bytes::copy_from_slice(&bytes[split + 1..]),
            tokens: head.tokens.map(|[prompt, completion, cached]| TokenCounts {
                prompt,
                completion,
                cached,
            }),
            cost: head.cost.map(MicroUsd),
            deployment: head.deployment,
            provider: head.provider,
            ttl,
        })
    }
}

/// Whether a request may be answered from its group's cache (`None` when not), and where. A
/// Responses request whose answer keygate keeps (`store` not false) is not: each such answer
/// is kept under an id of its own, which a replay would not have.
pub fn slot(
    policy: Option<CachePolicy>,
    key: &CachedKey,
    inbound: &Inbound,
    kept: bool,
) -> Option<CacheSlot> {
    let policy = policy?;
    let endpoint = inbound.endpoint;
    if endpoint == Endpoint::CountTokens || (endpoint == Endpoint::Responses && kept) {
        return None;
    }
    let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(&inbound.body) else {
        return None;
    };
    let deterministic = matches!(endpoint, Endpoint::Embeddings | Endpoint::Moderations)
        || request
            .get("temperature")
            .and_then(Value::as_f64)
            .is_some_and(|t| t == 0.0);
    if policy.when == CacheWhen::Deterministic && !deterministic {
        return None;
    }
    if endpoint != Endpoint::Responses {
        for field in IGNORED {
            request.remove(field);
        }
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
