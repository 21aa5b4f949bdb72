//! Quotas: a number of uses, set back to `amount` at the start of every window (a minute, an
//! hour, a UTC day or a calendar month; see [`Window`]).

use crate::window::Window;

/// A quota's stored state: the uses counted, not those left, so that a count stays right when
/// the amount changes within a window and can be saved and restored without knowing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaState {
    /// The start of the window the count belongs to.
    pub period: u64,
    pub used: u64,
}

/// The outcome of a check against a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub allowed: bool,
    /// The state to store when admitted (as it stands when refused).
    pub state: QuotaState,
    /// Uses left after the request (before it, when refused).
    pub remaining: u64,
    pub reset_after: u64,
    pub retry_after: Option<u64>,
}

/// Checks a request of `cost` uses at `now` (µs) against `amount` per `window`, with the
/// stored `state` (`None` when there is none yet).
pub fn check(
    amount: u64,
    window: Window,
    state: Option<QuotaState>,
    now: u64,
    cost: u64,
) -> Checked {
    let (period, end) = window.bounds(now);
    let current = match state {
        Some(state) if state.period == period => state,
        // A new window (or none yet): the quota is whole again.
        _ => QuotaState { period, used: 0 },
    };
    // More used than the amount when the amount was lowered within the window.
    let remaining = amount.saturating_sub(current.used);
    let reset_after = end.saturating_sub(now);
    if cost > remaining {
        return Checked {
            allowed: false,
            state: current,
            remaining,
            reset_after,
            retry_after: (cost <= amount).then_some(reset_after),
        };
    }
    Checked {
        allowed: true,
        state: QuotaState {
            period,
            used: current.used + cost,
        },
        remaining: remaining - cost,
        reset_after,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn uses_run_out_and_come_back_with_the_next_interval() {
        let hour = 3_600_000_000;
        let now = 10 * hour + 5;
        let mut state = None;
        for left in (0..3).rev() {
            let checked = check(3, Window::Hour, state, now, 1);
            assert!(checked.allowed);
            assert_eq!(checked.remaining, left);
            state = Some(checked.state);
        }
        let refused = check(3, Window::Hour, state, now, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Some(hour - 5));
        assert!(check(3, Window::Hour, state, 11 * hour, 1).allowed);
    }

    #[test]
    fn a_changed_amount_applies_to_the_uses_already_counted() {
        let now = 5 * 3_600_000_000;
        let mut state = None;
        for _ in 0..3 {
            state = Some(check(5, Window::Hour, state, now, 1).state);
        }
        let raised = check(10, Window::Hour, state, now, 1);
        assert_eq!((raised.allowed, raised.remaining), (true, 6));
        let lowered = check(2, Window::Hour, state, now, 1);
        assert_eq!((lowered.allowed, lowered.remaining), (false, 0));
    }

    proptest! {
        /// Within one interval, no more than `amount` uses pass, whatever the costs.
        #[test]
        fn never_more_than_the_amount_per_interval(
            amount in 0u64..100,
            costs in proptest::collection::vec(0u64..10, 1..100),
        ) {
            let minute = 60_000_000;
            let mut state = None;
            let mut used = 0;
            for cost in costs {
                let checked = check(amount, Window::Minute, state, 5 * minute + 7, cost);
                if checked.allowed {
                    used += cost;
                    state = Some(checked.state);
                }
                prop_assert!(checked.remaining <= amount);
                prop_assert_eq!(checked.remaining + used, amount);
                prop_assert_eq!(checked.state.used, used);
            }
        }
    }
}
