//! A circuit breaker per deployment: it opens after N consecutive faults, lets one probe
//! through once it has been open long enough, and closes on the probe's success.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out since `since`; everything else waits for its verdict. A probe whose
    /// verdict never comes (its request was cancelled) frees the slot after another open
    /// period, so a deployment is never shut out for good.
    HalfOpen {
        since: Instant,
    },
}

/// What the breaker says about sending a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The request is the half-open probe: its outcome decides.
    Probe,
    Refused,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a request may go now, without taking the probe slot.
    pub fn is_available(&self, now: Instant) -> bool {
        match *self.lock() {
            State::Closed { .. } => true,
            State::Open { until } => now >= until,
            State::HalfOpen { since } => now >= since + self.open_for,
        }
    }

    /// Admits a request, taking the probe slot when the open period has passed.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { since: now };
                Admission::Probe
            }
            State::HalfOpen { since } if now >= since + self.open_for => {
                *state = State::HalfOpen { since: now };
                Admission::Probe
            }
            State::Open { .. } | State::HalfOpen { .. } => Admission::Refused,
        }
    }

    pub fn on_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    pub fn on_fault(&self, now: Instant) {
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: now + self.open_for,
            },
        };
    }

    /// An outcome that says nothing about health (a rate limit, a client error): a probe
    /// that ends so gives the slot back.
    pub fn on_neutral(&self, admission: Admission, now: Instant) {
        if admission == Admission::Probe {
            let mut state = self.lock();
            if matches!(*state, State::HalfOpen { .. }) {
                *state = State::Open { until: now };
            }
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_probes_and_closes() {
        let breaker = Breaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        breaker.on_fault(t0);
        breaker.on_fault(t0);
        assert_eq!(breaker.admit(t0), Admission::Allowed);
        breaker.on_fault(t0);
        assert!(breaker.is_open());
        assert_eq!(
            breaker.admit(t0 + Duration::from_secs(9)),
            Admission::Refused
        );
        let later = t0 + Duration::from_secs(10);
        assert!(breaker.is_available(later));
        assert_eq!(breaker.admit(later), Admission::Probe);
        // Only one probe at a time.
        assert_eq!(breaker.admit(later), Admission::Refused);
        breaker.on_success();
        assert_eq!(breaker.admit(later), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_opens_again_and_a_success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(5));
        let t0 = Instant::now();
        breaker.on_fault(t0);
        breaker.on_success();
        breaker.on_fault(t0);
        assert!(!breaker.is_open(), "the count restarts after a success");
        breaker.on_fault(t0);
        let probe_at = t0 + Duration::from_secs(5);
        assert_eq!(breaker.admit(probe_at), Admission::Probe);
        breaker.on_fault(probe_at);
        assert_eq!(
            breaker.admit(probe_at + Duration::from_secs(4)),
            Admission::Refused
        );
        assert_eq!(
            breaker.admit(probe_at + Duration::from_secs(5)),
            Admission::Probe
        );
        breaker.on_neutral(Admission::Probe, probe_at + Duration::from_secs(5));
        assert_eq!(
            breaker.admit(probe_at + Duration::from_secs(5)),
            Admission::Probe
        );
    }

    #[test]
    fn a_probe_that_never_reports_frees_its_slot() {
        let breaker = Breaker::new(1, Duration::from_secs(5));
        let t0 = Instant::now();
        breaker.on_fault(t0);
        let probe_at = t0 + Duration::from_secs(5);
        assert_eq!(breaker.admit(probe_at), Admission::Probe);
        // The probe's request is dropped: no verdict.
        assert_eq!(
            breaker.admit(probe_at + Duration::from_secs(4)),
            Admission::Refused
        );
        assert!(breaker.is_available(probe_at + Duration::from_secs(5)));
        assert_eq!(
            breaker.admit(probe_at + Duration::from_secs(5)),
            Admission::Probe
        );
    }
}
