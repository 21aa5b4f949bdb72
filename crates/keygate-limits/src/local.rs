//! The limiter of one node: every state in memory, no I/O. Checks of one request lock the
//! shards they touch in a fixed order, decide together, and write only when all pass.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::budget::{self, BudgetState};
use crate::gcra::{self, Rate};
use crate::quota::{self, QuotaState};
use crate::{Check, Decision, Limit, Refusal, State};

const SHARDS: usize = 32;

#[derive(Debug, Clone, Copy)]
enum Entry {
    Tat(u64),
    Quota(QuotaState),
    Budget(BudgetState),
}

/// In-memory limits for one node.
#[derive(Debug)]
pub struct LocalLimiter {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    hasher: RandomState,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self::new()
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// One check's verdict, with the entry to write if the request is admitted.
struct Verdict {
    state: State,
    write: Option<Entry>,
    refused: Option<Option<Duration>>,
}

fn evaluate(check: &Check, entry: Option<Entry>, now: u64) -> Verdict {
    let kind = check.limit.kind();
    let state = |remaining, reset_after| State {
        kind,
        limit: check.limit.maximum(),
        remaining,
        reset_after: Duration::from_micros(reset_after),
    };
    match check.limit {
        Limit::Rate { limit, period } => {
            let Some(rate) = Rate::new(limit, period) else {
                return Verdict {
                    state: state(0, 0),
                    write: None,
                    refused: Some(None),
                };
            };
            let tat = match entry {
                Some(Entry::Tat(tat)) => tat,
                _ => 0,
            };
            let checked = gcra::check(rate, tat, now, check.cost);
            Verdict {
                state: state(checked.remaining, checked.reset_after),
                write: checked.allowed.then_some(Entry::Tat(checked.tat)),
                refused: (!checked.allowed).then(|| checked.retry_after.map(Duration::from_micros)),
            }
        }
        Limit::Quota { amount, interval } => {
            let stored = match entry {
                Some(Entry::Quota(state)) => Some(state),
                _ => None,
            };
            let checked = quota::check(amount, micros(interval), stored, now, check.cost);
            Verdict {
                state: state(checked.state.remaining, checked.reset_after),
                write: checked.allowed.then_some(Entry::Quota(checked.state)),
                refused: (!checked.allowed).then(|| checked.retry_after.map(Duration::from_micros)),
            }
        }
        Limit::Budget { limit, window } => {
            let stored = match entry {
                Some(Entry::Budget(state)) => Some(state),
                _ => None,
            };
            let checked = budget::reserve(limit, window, stored, now, check.cost);
            Verdict {
                state: state(checked.remaining, checked.reset_after),
                write: checked.allowed.then_some(Entry::Budget(checked.state)),
                refused: (!checked.allowed).then(|| checked.retry_after.map(Duration::from_micros)),
            }
        }
    }
}

impl LocalLimiter {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0)
    }

    /// Locks the shards of `checks`, in index order so that two requests never wait on each
    /// other in a cycle.
    fn lock(&self, checks: &[Check]) -> HashMap<usize, MutexGuard<'_, HashMap<String, Entry>>> {
        let mut wanted: Vec<usize> = checks.iter().map(|c| self.shard_of(&c.key)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
            .into_iter()
            .map(|index| {
                let guard = self.shards[index]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                (index, guard)
            })
            .collect()
    }

    /// Checks a request against every limit in `checks` at `now` (µs since the epoch): it is
    /// admitted when all pass, and then consumes all of them; refused, it consumes none.
    pub fn check(&self, now: u64, checks: &[Check]) -> Decision {
        let mut guards = self.lock(checks);
        let mut states = Vec::with_capacity(checks.len());
        let mut writes = Vec::with_capacity(checks.len());
        let mut refused = None;
        for (index, check) in checks.iter().enumerate() {
            let shard = self.shard_of(&check.key);
            let entry = guards
                .get(&shard)
                .and_then(|map| map.get(&check.key))
                .copied();
            let verdict = evaluate(check, entry, now);
            states.push(verdict.state);
            if let Some(retry_after) = verdict.refused {
                refused.get_or_insert(Refusal {
                    index,
                    kind: check.limit.kind(),
                    retry_after,
                });
            }
            if let Some(entry) = verdict.write {
                writes.push((shard, check.key.as_str(), entry));
            }
        }
        if refused.is_none() {
            for (shard, key, entry) in writes {
                if let Some(map) = guards.get_mut(&shard) {
                    // A key seen before is updated in place, without a new allocation.
                    match map.get_mut(key) {
                        Some(slot) => *slot = entry,
                        None => {
                            map.insert(key.to_owned(), entry);
                        }
                    }
                }
            }
        }
        Decision { states, refused }
    }

    /// Settles a request whose real cost is known: `reserved` was taken from the limit at
    /// `key` when it was admitted, `actual` was used. Tokens and money are settled so.
    pub fn settle(&self, now: u64, key: &str, limit: Limit, reserved: u64, actual: u64) {
        let shard = self.shard_of(key);
        let mut map = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = map.get(key).copied();
        let updated = match (limit, entry) {
            (Limit::Rate { limit, period }, Some(Entry::Tat(tat))) => Rate::new(limit, period)
                .map(|rate| Entry::Tat(gcra::settle(rate, tat, now, reserved, actual))),
            (Limit::Budget { window, .. }, entry) => {
                let stored = match entry {
                    Some(Entry::Budget(state)) => Some(state),
                    _ => None,
                };
                let made_in = stored.map_or(budget::bounds(window, now).0, |s| s.window);
                Some(Entry::Budget(budget::settle(
                    window, stored, now, made_in, reserved, actual,
                )))
            }
            _ => None,
        };
        if let Some(entry) = updated {
            map.insert(key.to_owned(), entry);
        }
    }

    /// The states of `checks` without consuming anything (for the verify API).
    pub fn peek(&self, now: u64, checks: &[Check]) -> Vec<State> {
        let guards = self.lock(checks);
        checks
            .iter()
            .map(|check| {
                let entry = guards
                    .get(&self.shard_of(&check.key))
                    .and_then(|map| map.get(&check.key))
                    .copied();
                let free = Check {
                    cost: 0,
                    ..check.clone()
                };
                evaluate(&free, entry, now).state
            })
            .collect()
    }

    /// Drops states that say nothing any more: rates whose bucket is full again, quotas and
    /// budgets of past windows. Call it now and then to bound memory.
    pub fn prune(&self, now: u64) {
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
            map.retain(|_, entry| match entry {
                Entry::Tat(tat) => *tat > now,
                Entry::Quota(_) => true,
                Entry::Budget(state) => {
                    state.reserved > 0 || state.window + 32 * 86_400_000_000 > now
                }
            });
        }
    }

    /// How many states are kept (for metrics and tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::Kind;
    use crate::budget::Window;

    const NOW: u64 = 1_771_063_200 * 1_000_000;

    fn rate(key: &str, limit: u64, cost: u64) -> Check {
        Check {
            key: key.to_owned(),
            limit: Limit::Rate {
                limit,
                period: Duration::from_secs(60),
            },
            cost,
        }
    }

    #[test]
    fn a_refused_request_consumes_none_of_its_limits() {
        let limiter = LocalLimiter::new();
        let checks = [
            rate("key:a:rpm", 100, 1),
            rate("project:p:rpm", 2, 1),
            Check {
                key: "key:a:quota".into(),
                limit: Limit::Quota {
                    amount: 10,
                    interval: Duration::from_secs(3600),
                },
                cost: 1,
            },
        ];
        assert!(limiter.check(NOW, &checks).admitted());
        assert!(limiter.check(NOW, &checks).admitted());
        let third = limiter.check(NOW, &checks);
        let refusal = third.refused.unwrap();
        assert_eq!((refusal.index, refusal.kind), (1, Kind::Rate));
        let states = limiter.peek(NOW, &checks);
        assert_eq!(
            states[0].remaining, 98,
            "the key's own rate was not charged"
        );
        assert_eq!(states[2].remaining, 8, "nor its quota");
    }

    #[test]
    fn budgets_reserve_then_settle() {
        let limiter = LocalLimiter::new();
        let budget = Limit::Budget {
            limit: 1_000,
            window: Window::Day,
        };
        let check = |cost| Check {
            key: "key:a:budget".into(),
            limit: budget,
            cost,
        };
        assert!(limiter.check(NOW, &[check(800)]).admitted());
        assert!(!limiter.check(NOW, &[check(800)]).admitted());
        limiter.settle(NOW, "key:a:budget", budget, 800, 50);
        assert_eq!(limiter.peek(NOW, &[check(0)])[0].remaining, 950);
        assert!(limiter.check(NOW, &[check(800)]).admitted());
    }

    #[test]
    fn threads_hammering_one_limit_get_exactly_the_limit() {
        let limiter = Arc::new(LocalLimiter::new());
        let admitted: u64 = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .filter(|_| limiter.check(NOW, &[rate("key:hot", 1000, 1)]).admitted())
                        .count() as u64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(admitted, 1000);
    }

    #[test]
    fn pruning_forgets_full_buckets_only() {
        let limiter = LocalLimiter::new();
        limiter.check(NOW, &[rate("a", 10, 1)]);
        limiter.prune(NOW);
        assert_eq!(limiter.len(), 1, "still recovering");
        limiter.prune(NOW + 60_000_000);
        assert!(limiter.is_empty());
    }

    proptest! {
        /// Whatever the mix, a refused request leaves every state as it was.
        #[test]
        fn refusals_change_nothing(
            requests in proptest::collection::vec((1u64..5, 1u64..5, 0u64..1_000_000), 1..60),
        ) {
            let limiter = LocalLimiter::new();
            let mut now = NOW;
            for (a, b, gap) in requests {
                now += gap;
                let checks = [rate("x", 5, a), rate("y", 7, b)];
                let before = limiter.peek(now, &checks);
                let decision = limiter.check(now, &checks);
                if !decision.admitted() {
                    prop_assert_eq!(limiter.peek(now, &checks), before);
                }
            }
        }
    }
}
