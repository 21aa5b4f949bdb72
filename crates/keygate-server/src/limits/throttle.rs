//! Budgets past their throttle point. The thresholds task (see `thresholds.rs`) marks a budget
//! once it sees its owner's spending pass `throttle_at`; until the budget's window ends (or
//! the task sees it below the point again, after a raise), the owner's LLM requests are held
//! to the budget's `throttle` rate — a rate counted like any other, across nodes with Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

/// The budgets throttled on this node: each budget's limit name, until when (µs).
#[derive(Debug, Default)]
pub struct Throttles {
    until: RwLock<HashMap<String, u64>>,
    /// Whether any budget is throttled: most requests never take the lock.
    any: AtomicBool,
}

impl Throttles {
    /// Throttles the budget `name` until `until` (µs), or lifts its throttle; marks whose
    /// window ended by `now` (µs) are dropped.
    pub fn set(&self, name: &str, until: Option<u64>, now: u64) {
        let mut map = self.until.write().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, end| *end > now);
        match until {
            Some(until) => {
                map.insert(name.to_owned(), until);
            }
            None => {
                map.remove(name);
            }
        }
        self.any.store(!map.is_empty(), Ordering::Release);
    }

    /// Whether the budget `name` is throttled at `now` (µs).
    pub fn active(&self, name: &str, now: u64) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let map = self.until.read().unwrap_or_else(PoisonError::into_inner);
        map.get(name).is_some_and(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lasts_until_its_window_ends_or_is_lifted() {
        let throttles = Throttles::default();
        assert!(!throttles.active("b", 10));
        throttles.set("b", Some(100), 0);
        assert!(throttles.active("b", 10));
        assert!(!throttles.active("other", 10));
        assert!(!throttles.active("b", 100), "the window ended");
        throttles.set("c", Some(300), 200);
        assert!(!throttles.active("b", 10), "and its mark is gone");
        throttles.set("c", None, 200);
        assert!(!throttles.active("c", 250), "lifted");
    }
}
