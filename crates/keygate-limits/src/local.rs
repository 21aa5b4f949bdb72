//! The limiter of one node: every state in memory, no I/O. Checks of one request lock the
//! shards they touch in a fixed order, decide together, and write only when all pass.
//!
//! Quota and budget counts can outlive the process: every write marks its entry changed,
//! [`LocalLimiter::changed_counts`] takes the changed counts (for the caller to save) and
//! [`LocalLimiter::restore`] puts saved counts back at start.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::budget::{self, BudgetState};
use crate::gcra::{self, Rate};
use crate::quota::{self, QuotaState};
use crate::{Check, Decision, Limit, Refusal, Settlement, State};

const SHARDS: usize = 32;
/// Longer than any window.
const MONTH: u64 = 32 * 86_400_000_000;

#[derive(Debug, Clone, Copy)]
enum Entry {
    Tat(u64),
    Quota(QuotaState),
    Budget(BudgetState),
}

/// A stored state, and whether it changed since the last snapshot. A flag in the entry rather
/// than a set of changed names beside the map: marking costs a store, not an allocation.
#[derive(Debug, Clone, Copy)]
struct Slot {
    entry: Entry,
    changed: bool,
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<String, Slot>,
    /// Whether any entry may have changed since the last snapshot, so that a snapshot skips
    /// the shards nobody wrote to.
    changed: bool,
}

impl Shard {
    /// Writes `entry` at `key`; a key seen before is updated in place, without an allocation.
    fn write(&mut self, key: &str, entry: Entry) {
        // Only counts are saved: a rate's write leaves the shard unmarked, so that a snapshot
        // does not walk shards that hold nothing to save.
        let counted = !matches!(entry, Entry::Tat(_));
        let slot = Slot {
            entry,
            changed: counted,
        };
        match self.entries.get_mut(key) {
            Some(stored) => *stored = slot,
            None => {
                self.entries.insert(key.to_owned(), slot);
            }
        }
        self.changed |= counted;
    }

    fn get(&self, key: &str) -> Option<Entry> {
        self.entries.get(key).map(|slot| slot.entry)
    }
}

/// What a saved count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountKind {
    Quota,
    Budget,
}

/// A quota's or a budget's count, as saved so that a restart does not make it whole again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCount {
    /// The limit's [`Check::key`].
    pub key: String,
    pub kind: CountKind,
    /// The start of the window counted (µs since the epoch).
    pub window_start: u64,
    /// Uses of a quota; micro-dollars of a budget, spent or reserved (a reservation still
    /// running when the process dies is never settled, so it counts as spent).
    pub used: u64,
}

impl SavedCount {
    /// The count an entry holds, or `None` for a rate (a rate refills within its period, and
    /// forgetting it on restart gives at most one more burst).
    fn of(key: &str, entry: Entry) -> Option<Self> {
        let (kind, window_start, used) = match entry {
            Entry::Tat(_) => return None,
            Entry::Quota(state) => (CountKind::Quota, state.period, state.used),
            Entry::Budget(state) => (
                CountKind::Budget,
                state.window,
                state.spent.saturating_add(state.reserved),
            ),
        };
        Some(Self {
            key: key.to_owned(),
            kind,
            window_start,
            used,
        })
    }

    fn entry(&self) -> Entry {
        match self.kind {
            CountKind::Quota => Entry::Quota(QuotaState {
                period: self.window_start,
                used: self.used,
            }),
            CountKind::Budget => Entry::Budget(BudgetState {
                window: self.window_start,
                spent: self.used,
                reserved: 0,
            }),
        }
    }
}

/// In-memory limits for one node.
#[derive(Debug)]
pub struct LocalLimiter {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self::new()
    }
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
        Limit::Quota { amount, window } => {
            let stored = match entry {
                Some(Entry::Quota(state)) => Some(state),
                _ => None,
            };
            let checked = quota::check(amount, window, stored, now, check.cost);
            Verdict {
                state: state(checked.remaining, checked.reset_after),
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
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0)
    }

    /// Locks the shards of `checks`, in index order so that two requests never wait on each
    /// other in a cycle.
    fn lock(&self, checks: &[Check]) -> HashMap<usize, MutexGuard<'_, Shard>> {
        let mut wanted: Vec<usize> = checks.iter().map(|c| self.shard_of(&c.key)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
            .into_iter()
            .map(|index| (index, self.lock_shard(index)))
            .collect()
    }

    fn lock_shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
            let entry = guards.get(&shard).and_then(|s| s.get(&check.key));
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
                if let Some(shard) = guards.get_mut(&shard) {
                    shard.write(key, entry);
                }
            }
        }
        Decision { states, refused }
    }

    /// Settles a request whose real cost is known: `reserved` was taken from the limit at
    /// `key` when it was admitted, `actual` was used. Tokens and money are settled so.
    pub fn settle(&self, now: u64, settlement: &Settlement) {
        let Settlement { check, at, actual } = settlement;
        let (key, limit, reserved, actual) = (check.key.as_str(), check.limit, check.cost, *actual);
        let mut shard = self.lock_shard(self.shard_of(key));
        let entry = shard.get(key);
        let updated = match (limit, entry) {
            (Limit::Rate { limit, period }, Some(Entry::Tat(tat))) => Rate::new(limit, period)
                .map(|rate| Entry::Tat(gcra::settle(rate, tat, now, reserved, actual))),
            (Limit::Budget { window, .. }, entry) => {
                let stored = match entry {
                    Some(Entry::Budget(state)) => Some(state),
                    _ => None,
                };
                // The reservation belongs to the window it was made in, whatever is stored.
                let made_in = window.bounds(*at).0;
                Some(Entry::Budget(budget::settle(
                    window, stored, now, made_in, reserved, actual,
                )))
            }
            _ => None,
        };
        if let Some(entry) = updated {
            shard.write(key, entry);
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
                    .and_then(|s| s.get(&check.key));
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
        for index in 0..SHARDS {
            self.lock_shard(index)
                .entries
                .retain(|_, slot| match slot.entry {
                    Entry::Tat(tat) => tat > now,
                    Entry::Quota(state) => may_be_current(state.period, now),
                    Entry::Budget(state) => state.reserved > 0 || may_be_current(state.window, now),
                });
        }
    }

    /// The quota and budget counts written since the last call, which are then no longer
    /// marked changed: to save them. Hand those that could not be saved to
    /// [`mark_unsaved`](Self::mark_unsaved).
    pub fn changed_counts(&self) -> Vec<SavedCount> {
        let mut counts = Vec::new();
        for index in 0..SHARDS {
            let mut shard = self.lock_shard(index);
            if !std::mem::take(&mut shard.changed) {
                continue;
            }
            for (key, slot) in &mut shard.entries {
                if std::mem::take(&mut slot.changed) {
                    counts.extend(SavedCount::of(key, slot.entry));
                }
            }
        }
        counts
    }

    /// Marks the entries of `counts` changed again (their save failed), so that the next
    /// [`changed_counts`](Self::changed_counts) returns them as they stand then. Entries
    /// pruned meanwhile belonged to past windows and have nothing left to save.
    pub fn mark_unsaved(&self, counts: &[SavedCount]) {
        for count in counts {
            let mut shard = self.lock_shard(self.shard_of(&count.key));
            if let Some(slot) = shard.entries.get_mut(&count.key) {
                slot.changed = true;
                shard.changed = true;
            }
        }
    }

    /// Puts back counts saved by an earlier process, at `now` (µs), and returns how many were
    /// taken. A count whose window started over a month ago (or is yet to start) is passed
    /// over: no window it could belong to is current. One of a window that ended more
    /// recently is kept, and ignored by checks as any count of a past window is. A state
    /// this limiter already holds is kept too: it is newer than anything saved.
    pub fn restore(&self, counts: &[SavedCount], now: u64) -> usize {
        let mut restored = 0;
        for count in counts {
            if count.window_start > now || !may_be_current(count.window_start, now) {
                continue;
            }
            let mut shard = self.lock_shard(self.shard_of(&count.key));
            if !shard.entries.contains_key(&count.key) {
                let slot = Slot {
                    entry: count.entry(),
                    changed: false,
                };
                shard.entries.insert(count.key.clone(), slot);
                restored += 1;
            }
        }
        restored
    }

    /// How many states are kept (for metrics and tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a count of the window starting at `start` may still be counting at `now`: no
/// window is longer than a month.
/// Whether a count of the window starting at `start` may still be current: one of the last
/// month, or of the window that never turns (which starts at 0).
fn may_be_current(start: u64, now: u64) -> bool {
    start == 0 || start.saturating_add(MONTH) > now
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::Kind;
    use crate::budget::Window;

    const NOW: u64 = 1_771_063_200 * 1_000_000;

    /// `reserved` of `limit` at `key`, taken at `NOW`, of which `actual` was used.
    fn settlement(key: &str, limit: Limit, reserved: u64, actual: u64) -> Settlement {
        Settlement {
            check: Check {
                key: key.to_owned(),
                limit,
                cost: reserved,
            },
            at: NOW,
            actual,
        }
    }

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
                    window: Window::Hour,
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
        limiter.settle(NOW, &settlement("key:a:budget", budget, 800, 50));
        assert_eq!(limiter.peek(NOW, &[check(0)])[0].remaining, 950);
        assert!(limiter.check(NOW, &[check(800)]).admitted());
    }

    #[test]
    fn a_reservation_settles_into_its_own_window() {
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
        // 400 reserved ten seconds before midnight; after it, 800 of the new day's budget.
        let midnight = Window::Day.bounds(NOW).1;
        let before = midnight - 10_000_000;
        assert!(limiter.check(before, &[check(400)]).admitted());
        assert!(limiter.check(midnight + 1, &[check(800)]).admitted());
        // Yesterday's request settles today: it takes nothing off today's reservations.
        let late = Settlement {
            at: before,
            ..settlement("key:a:budget", budget, 400, 10)
        };
        limiter.settle(midnight + 2, &late);
        assert_eq!(
            limiter.peek(midnight + 3, &[check(0)])[0].remaining,
            190,
            "800 still reserved, and the 10 spent count today"
        );
        assert!(!limiter.check(midnight + 4, &[check(200)]).admitted());
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

    /// Prepaid credits: a budget whose window never turns, kept and restored however old.
    #[test]
    fn credits_never_reset_nor_are_pruned() {
        let credits = |cost| Check {
            key: "c".to_owned(),
            limit: Limit::Budget {
                limit: 1_000,
                window: Window::Forever,
            },
            cost,
        };
        let limiter = LocalLimiter::new();
        assert!(limiter.check(NOW, &[credits(600)]).admitted());
        let years_later = NOW + 400 * 86_400 * 1_000_000;
        limiter.prune(years_later);
        assert!(
            !limiter.check(years_later, &[credits(600)]).admitted(),
            "what was spent stays spent"
        );
        let saved = limiter.changed_counts();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].window_start, 0);
        let restarted = LocalLimiter::new();
        assert_eq!(restarted.restore(&saved, years_later), 1);
        let refused = restarted.check(years_later, &[credits(600)]);
        assert!(!refused.admitted());
        assert_eq!(refused.states[0].remaining, 400);
    }

    fn quota(key: &str, amount: u64) -> Check {
        Check {
            key: key.to_owned(),
            limit: Limit::Quota {
                amount,
                window: Window::Day,
            },
            cost: 1,
        }
    }

    fn budget(key: &str, cost: u64) -> Check {
        Check {
            key: key.to_owned(),
            limit: Limit::Budget {
                limit: 1_000,
                window: Window::Month,
            },
            cost,
        }
    }

    #[test]
    fn saved_counts_restore_the_same_remaining() {
        let limiter = LocalLimiter::new();
        for _ in 0..2 {
            assert!(
                limiter
                    .check(NOW, &[quota("q", 3), rate("r", 5, 1)])
                    .admitted()
            );
        }
        assert!(limiter.check(NOW, &[budget("b", 300)]).admitted());
        let budget_limit = budget("b", 0).limit;
        limiter.settle(NOW, &settlement("b", budget_limit, 300, 100));
        // Still running when the snapshot is taken: it counts as spent after a restart.
        assert!(limiter.check(NOW, &[budget("b", 200)]).admitted());

        let mut saved = limiter.changed_counts();
        saved.sort_by(|a, b| a.key.cmp(&b.key));
        let day = Window::Day.bounds(NOW).0;
        let month = Window::Month.bounds(NOW).0;
        assert_eq!(
            saved,
            [
                SavedCount {
                    key: "b".into(),
                    kind: CountKind::Budget,
                    window_start: month,
                    used: 300,
                },
                SavedCount {
                    key: "q".into(),
                    kind: CountKind::Quota,
                    window_start: day,
                    used: 2,
                },
            ],
            "rates are not saved"
        );
        assert!(limiter.changed_counts().is_empty(), "taken once");

        let restarted = LocalLimiter::new();
        assert_eq!(restarted.restore(&saved, NOW + 1), 2);
        let checks = [quota("q", 3), budget("b", 0)];
        let remaining = |l: &LocalLimiter| {
            l.peek(NOW + 1, &checks)
                .iter()
                .map(|s| s.remaining)
                .collect::<Vec<_>>()
        };
        assert_eq!(remaining(&restarted), [1, 700]);
        assert_eq!(remaining(&restarted), remaining(&limiter));
        assert!(
            restarted.changed_counts().is_empty(),
            "restored counts are already saved"
        );
        assert!(restarted.check(NOW + 1, &[quota("q", 3)]).admitted());
        assert_eq!(
            restarted
                .check(NOW + 1, &[quota("q", 3)])
                .refused
                .unwrap()
                .kind,
            Kind::Quota
        );
    }

    #[test]
    fn counts_of_past_windows_do_not_come_back() {
        const DAY: u64 = 86_400_000_000;
        let today = Window::Day.bounds(NOW).0;
        let count = |key: &str, window_start| SavedCount {
            key: key.into(),
            kind: CountKind::Quota,
            window_start,
            used: 3,
        };
        let limiter = LocalLimiter::new();
        let restored = limiter.restore(
            &[
                count("two months ago", today - 60 * DAY),
                count("tomorrow", today + DAY),
                count("yesterday", today - DAY),
            ],
            NOW,
        );
        assert_eq!(
            restored, 1,
            "only a window that ended within a month is kept"
        );
        // Yesterday's count is kept (a monthly window could still be counting), but a daily
        // quota's check sees that its window has passed.
        assert_eq!(limiter.peek(NOW, &[quota("yesterday", 3)])[0].remaining, 3);
        assert_eq!(
            limiter.peek(NOW, &[quota("two months ago", 3)])[0].remaining,
            3
        );
    }

    #[test]
    fn a_restore_keeps_newer_states_and_failed_saves_come_back() {
        let limiter = LocalLimiter::new();
        assert!(limiter.check(NOW, &[quota("q", 3)]).admitted());
        let saved = limiter.changed_counts();
        let stale = SavedCount {
            used: 0,
            ..saved[0].clone()
        };
        assert_eq!(limiter.restore(&[stale], NOW), 0);
        assert_eq!(limiter.peek(NOW, &[quota("q", 3)])[0].remaining, 2);

        limiter.mark_unsaved(&saved);
        assert!(limiter.check(NOW, &[quota("q", 3)]).admitted());
        let again = limiter.changed_counts();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].used, 2, "the count as it stands, not as it failed");
    }

    proptest! {
        /// Checks, settlements and snapshots in any order; the latest count of each key kept
        /// (as the store keeps them) restores every quota and budget as it stands.
        #[test]
        fn snapshots_restore_what_stands(
            steps in proptest::collection::vec((0usize..4, 1u64..400, 0u8..3), 1..80),
        ) {
            let limiter = LocalLimiter::new();
            let keys = ["q1", "q2", "b1", "b2"];
            let check = |i: usize, cost| match i {
                0 | 1 => quota(keys[i], 20),
                _ => budget(keys[i], cost),
            };
            let mut open = Vec::new();
            let mut saved = HashMap::new();
            let snapshot = |saved: &mut HashMap<String, SavedCount>| {
                saved.extend(limiter.changed_counts().into_iter().map(|c| (c.key.clone(), c)));
            };
            for (i, cost, action) in steps {
                match action {
                    0 => {
                        if limiter.check(NOW, &[check(i, cost)]).admitted() && i >= 2 {
                            open.push((i, cost));
                        }
                    }
                    1 => {
                        if let Some((i, cost)) = open.pop() {
                            limiter.settle(NOW, &settlement(keys[i], check(i, 0).limit, cost, cost / 2));
                        }
                    }
                    _ => snapshot(&mut saved),
                }
            }
            snapshot(&mut saved);
            let restarted = LocalLimiter::new();
            restarted.restore(&saved.into_values().collect::<Vec<_>>(), NOW);
            let all: Vec<Check> = (0..4).map(|i| check(i, 0)).collect();
            prop_assert_eq!(restarted.peek(NOW, &all), limiter.peek(NOW, &all));
        }

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
