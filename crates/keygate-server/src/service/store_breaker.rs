//! Whether the store was just found unreachable. While it is, the paths that would wait for it
//! on a request (a key's reload, an admin token's check) answer at once instead of waiting out
//! the pool's timeout each, and one call a second tries the store again; the first success
//! closes the breaker, so recovery needs nothing from the operator.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long calls skip the store after it failed, before one tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct StoreBreaker {
    /// When the next call may try the store; `None` while it answers.
    retry_at: Mutex<Option<Instant>>,
}

impl StoreBreaker {
    /// Whether a call should not try the store now. When the wait is over, this call is let
    /// through (and the next ones wait another second unless it succeeds).
    pub(crate) fn refuses(&self) -> bool {
        let mut retry_at = self.retry_at.lock().unwrap_or_else(PoisonError::into_inner);
        match *retry_at {
            None => false,
            Some(at) if Instant::now() < at => true,
            Some(_) => {
                *retry_at = Some(Instant::now() + RETRY_AFTER);
                false
            }
        }
    }

    pub(crate) fn failed(&self) {
        *self.retry_at.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Instant::now() + RETRY_AFTER);
    }

    pub(crate) fn succeeded(&self) {
        let mut retry_at = self.retry_at.lock().unwrap_or_else(PoisonError::into_inner);
        if retry_at.is_some() {
            tracing::info!("the store answers again");
            *retry_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_a_failure_then_lets_one_call_try() {
        let breaker = StoreBreaker::default();
        assert!(!breaker.refuses());
        breaker.failed();
        assert!(breaker.refuses());
        *breaker.retry_at.lock().unwrap() = Some(Instant::now());
        assert!(!breaker.refuses(), "the wait is over: one call tries");
        assert!(breaker.refuses(), "the others wait for it");
        breaker.succeeded();
        assert!(!breaker.refuses());
    }
}
