//! Caps on requests in flight: a permit per running request, returned when it is dropped
//! (however the request ends: answered, failed, or abandoned by its client).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Requests in flight, by key.
#[derive(Debug, Default, Clone)]
pub struct Concurrency {
    running: Arc<Mutex<HashMap<String, u64>>>,
}

/// One running request; dropping it frees its slot.
#[derive(Debug)]
pub struct Permit {
    running: Arc<Mutex<HashMap<String, u64>>>,
    key: String,
}

impl Concurrency {
    pub fn new() -> Self {
        Self::default()
    }

    /// A permit for `key` when fewer than `max` of its requests are running.
    pub fn acquire(&self, key: &str, max: u64) -> Option<Permit> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let count = running.entry(key.to_owned()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Permit {
            running: self.running.clone(),
            key: key.to_owned(),
        })
    }

    /// Requests of `key` running now.
    pub fn running(&self, key: &str) -> u64 {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_frees_when_its_permit_drops() {
        let caps = Concurrency::new();
        let first = caps.acquire("k", 2).unwrap();
        let _second = caps.acquire("k", 2).unwrap();
        assert!(caps.acquire("k", 2).is_none());
        assert!(caps.acquire("other", 2).is_some(), "keys are apart");
        drop(first);
        assert_eq!(caps.running("k"), 1);
        assert!(caps.acquire("k", 2).is_some());
    }
}
