//! Budgets past their throttle point. The thresholds task (see `thresholds.rs`) marks a budget
//! once it sees its owner's spending pass `throttle_at`; until the budget's window ends (or
//! the task sees it below the point again, after a raise), the owner's LLM requests are held
//! to the budget's `throttle` rate — a rate counted like any other, across nodes with Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// The budgets throttled on this node: each budget's limit name, until when (µs).
#[derive(Debug, Default)]
pub struct Throttles {
    until: Mutex<HashMap<String, u64>>,
    /// Whether any budget is throttled: most requests never take the lock.
    any: AtomicBool,
}

impl Throttles {
    /// Throttles the budget `name` until `until` (µs), or lifts its throttle.
    pub fn set(&self, name: &str, until: Option<u64>) {
        let mut map = self.until.lock().unwrap_or_else(PoisonError::into_inner);
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
        let mut map = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(name) {
            Some(until) if *until > now => true,
            Some(_) => {
                map.remove(name);
                self.any.store(!map.is_empty(), Ordering::Release);
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lasts_until_its_window_ends_or_is_lifted() {
        let throttles = Throttles::default();
        assert!(!throttles.active("b", 10));
        throttles.set("b", Some(100));
        assert!(throttles.active("b", 10));
        assert!(!throttles.active("other", 10));
        assert!(!throttles.active("b", 100), "the window ended");
        assert!(!throttles.active("b", 10), "and the mark is gone");
        throttles.set("b", Some(100));
        throttles.set("b", None);
        assert!(!throttles.active("b", 10), "lifted");
    }
}
