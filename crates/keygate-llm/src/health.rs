//! What the router knows about each deployment, kept in memory: requests in flight, a latency
//! average, the circuit breaker, a rate-limit cooldown and this node's per-minute counters.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::breaker::{Admission, Breaker};

/// Per-minute request and token counts on this node.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    minute: u64,
    requests: u32,
    tokens: u64,
}

#[derive(Debug)]
pub struct Health {
    started: Instant,
    in_flight: AtomicU32,
    /// Exponentially weighted moving average of the time to first byte, in microseconds;
    /// 0 until the first sample.
    ewma_micros: AtomicU64,
    breaker: Breaker,
    cooldown_until: Mutex<Option<Instant>>,
    window: Mutex<Window>,
    rpm: Option<u32>,
    tpm: Option<u64>,
}

impl Health {
    pub fn new(breaker: Breaker, rpm: Option<u32>, tpm: Option<u64>) -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicU32::new(0),
            ewma_micros: AtomicU64::new(0),
            breaker,
            cooldown_until: Mutex::new(None),
            window: Mutex::new(Window::default()),
            rpm,
            tpm,
        }
    }

    /// The per-minute limits this health counts against.
    pub fn limits(&self) -> (Option<u32>, Option<u64>) {
        (self.rpm, self.tpm)
    }

    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs() / 60
    }

    /// Whether the router may choose this deployment now: breaker not open, not cooling down
    /// after a rate limit, and under its per-minute limits.
    pub fn is_available(&self, now: Instant) -> bool {
        if !self.breaker.is_available(now) {
            return false;
        }
        if self
            .cooldown_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| now < until)
        {
            return false;
        }
        let window = *self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if window.minute != self.minute(now) {
            return true;
        }
        self.rpm.is_none_or(|rpm| window.requests < rpm)
            && self.tpm.is_none_or(|tpm| window.tokens < tpm)
    }

    /// Whether the breaker would let a request through (ignoring cooldowns and per-minute
    /// limits): a request already waiting on this deployment may try it again.
    pub fn breaker_allows(&self, now: Instant) -> bool {
        self.breaker.is_available(now)
    }

    /// Takes a slot for one request: breaker admission, the request counted in its minute,
    /// one more in flight. `None` when the breaker refuses.
    pub fn begin(&self, now: Instant) -> Option<Admission> {
        let admission = self.breaker.admit(now);
        if admission == Admission::Refused {
            return None;
        }
        let minute = self.minute(now);
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if window.minute != minute {
            *window = Window {
                minute,
                ..Window::default()
            };
        }
        window.requests = window.requests.saturating_add(1);
        drop(window);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(admission)
    }

    /// Ends a request that `begin` admitted.
    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn succeeded(&self, first_byte: Duration) {
        self.breaker.on_success();
        let sample = u64::try_from(first_byte.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // Weight 1/4 on the new sample; a lost race only drops one sample.
        let old = self.ewma_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 4 + sample / 4
        };
        self.ewma_micros.store(new.max(1), Ordering::Relaxed);
    }

    pub fn faulted(&self, now: Instant) {
        self.breaker.on_fault(now);
    }

    /// A rate limit from the upstream: rest until `Retry-After` (at least a second).
    pub fn rate_limited(&self, admission: Admission, now: Instant, retry_after: Option<Duration>) {
        self.breaker.on_neutral(admission, now);
        let rest = retry_after
            .unwrap_or(Duration::from_secs(1))
            .clamp(Duration::from_secs(1), Duration::from_secs(300));
        *self
            .cooldown_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(now + rest);
    }

    pub fn neutral(&self, admission: Admission, now: Instant) {
        self.breaker.on_neutral(admission, now);
    }

    /// Counts tokens against the per-minute token limit.
    pub fn add_tokens(&self, now: Instant, tokens: u64) {
        let minute = self.minute(now);
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if window.minute == minute {
            window.tokens = window.tokens.saturating_add(tokens);
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn latency_micros(&self) -> u64 {
        self.ewma_micros.load(Ordering::Relaxed)
    }

    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_minute_limits_and_cooldowns() {
        let health = Health::new(Breaker::new(5, Duration::from_secs(30)), Some(2), Some(100));
        let now = health.started;
        assert!(health.is_available(now));
        health.begin(now).unwrap();
        health.begin(now).unwrap();
        assert!(
            !health.is_available(now),
            "two requests used the minute's rpm"
        );
        assert!(health.is_available(now + Duration::from_secs(60)));
        health.begin(now + Duration::from_secs(60)).unwrap();
        health.add_tokens(now + Duration::from_secs(60), 100);
        assert!(
            !health.is_available(now + Duration::from_secs(61)),
            "tpm used up"
        );

        let fresh = Health::new(Breaker::new(5, Duration::from_secs(30)), None, None);
        let t = fresh.started;
        fresh.rate_limited(Admission::Allowed, t, Some(Duration::from_secs(3)));
        assert!(!fresh.is_available(t + Duration::from_secs(2)));
        assert!(fresh.is_available(t + Duration::from_secs(3)));
    }

    #[test]
    fn latency_average_moves_towards_samples() {
        let health = Health::new(Breaker::new(5, Duration::from_secs(30)), None, None);
        health.succeeded(Duration::from_millis(100));
        assert_eq!(health.latency_micros(), 100_000);
        health.succeeded(Duration::from_millis(20));
        assert_eq!(health.latency_micros(), 80_000);
    }
}
