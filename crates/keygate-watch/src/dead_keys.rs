//! Bursts of failed authentications per key: the same refused key — revoked, expired,
//! suspended, or unknown — presented over and over, from one source or many (a deployment left
//! with a dead key, or a leaked one being tried). Keys are told apart by their hint
//! (`kg_live_AbCd…wXyZ`, safe to log), so nothing secret is kept. A burst is reported once per
//! cooldown.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use keygate_core::Timestamp;

const SHARDS: usize = 16;
/// Hints tracked per shard; past it, the one seen longest ago is forgotten.
const SHARD_HINTS: usize = 2048;
const WINDOW_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, Default)]
struct HintState {
    window: i64,
    failures: u32,
    /// When a burst was last reported; 0 for never.
    spoke: i64,
    last_seen: i64,
}

/// Failed authentications per presented key, in memory.
#[derive(Debug)]
pub struct DeadKeys {
    threshold: u32,
    cooldown: Duration,
    shards: Vec<Mutex<HashMap<String, HintState>>>,
}

impl DeadKeys {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, hint: &str) -> &Mutex<HashMap<String, HintState>> {
        let hash = hint.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        &self.shards[hash % SHARDS]
    }

    /// Counts a failed authentication with the key of `hint`; returns the failures of the
    /// minute when they make a burst not yet reported in the cooldown.
    pub fn failed(&self, hint: &str, now: Timestamp) -> Option<u32> {
        let at = now.as_millis();
        let cooldown = i64::try_from(self.cooldown.as_millis()).unwrap_or(i64::MAX);
        let mut shard = self
            .shard(hint)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= SHARD_HINTS && !shard.contains_key(hint) {
            let stalest = shard
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(hint, _)| hint.clone());
            if let Some(stalest) = stalest {
                shard.remove(&stalest);
            }
        }
        let state = shard.entry(hint.to_owned()).or_default();
        state.last_seen = at;
        let window = at.div_euclid(WINDOW_MS);
        if state.window != window {
            state.window = window;
            state.failures = 0;
        }
        state.failures += 1;
        let quiet = state.spoke == 0 || at - state.spoke >= cooldown;
        if state.failures < self.threshold || !quiet {
            return None;
        }
        state.spoke = at;
        Some(state.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(T0 + ms)
    }

    #[test]
    fn a_key_presented_in_a_burst_is_reported_once_per_cooldown() {
        let keys = DeadKeys::new(5, Duration::from_secs(900));
        let dead = "kg_live_AbCd…wXyZ";
        for i in 0..4 {
            assert_eq!(keys.failed(dead, at(i)), None);
        }
        assert_eq!(
            keys.failed("kg_live_Other…0000", at(4)),
            None,
            "another key counts apart"
        );
        assert_eq!(keys.failed(dead, at(5)), Some(5));
        assert_eq!(keys.failed(dead, at(6)), None, "reported already");
        // Ten minutes on, a new burst is within the cooldown; twenty minutes on, it is news.
        for i in 0..5 {
            assert_eq!(keys.failed(dead, at(600_000 + i)), None);
        }
        let later: Vec<Option<u32>> = (0..5)
            .map(|i| keys.failed(dead, at(1_200_000 + i)))
            .collect();
        assert_eq!(later.last(), Some(&Some(5)));
    }

    #[test]
    fn failures_spread_over_minutes_are_no_burst() {
        let keys = DeadKeys::new(3, Duration::from_secs(900));
        for minute in 0..10 {
            assert_eq!(keys.failed("kg_test_AbCd…wXyZ", at(minute * 60_000)), None);
            assert_eq!(
                keys.failed("kg_test_AbCd…wXyZ", at(minute * 60_000 + 1)),
                None
            );
        }
    }
}
