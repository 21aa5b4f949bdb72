//! Quotas: a number of uses, set back to `amount` at the start of every `interval` (counted
//! from the Unix epoch, so every node agrees where an interval starts).

/// A quota's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaState {
    /// The interval the count belongs to (`now / interval`).
    pub period: u64,
    pub remaining: u64,
}

/// The outcome of a check against a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub allowed: bool,
    /// The state to store when admitted (as it stands when refused).
    pub state: QuotaState,
    pub reset_after: u64,
    pub retry_after: Option<u64>,
}

/// Checks a request of `cost` uses at `now` (µs) against `amount` per `interval` (µs, at least
/// 1), with the stored `state` (`None` when there is none yet).
pub fn check(
    amount: u64,
    interval: u64,
    state: Option<QuotaState>,
    now: u64,
    cost: u64,
) -> Checked {
    let interval = interval.max(1);
    let period = now / interval;
    let current = match state {
        Some(state) if state.period == period => state,
        // A new interval (or none yet): the quota is whole again.
        _ => QuotaState {
            period,
            remaining: amount,
        },
    };
    let reset_after = (period + 1).saturating_mul(interval).saturating_sub(now);
    if cost > current.remaining {
        return Checked {
            allowed: false,
            state: current,
            reset_after,
            retry_after: (cost <= amount).then_some(reset_after),
        };
    }
    Checked {
        allowed: true,
        state: QuotaState {
            period,
            remaining: current.remaining - cost,
        },
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
            let checked = check(3, hour, state, now, 1);
            assert!(checked.allowed);
            assert_eq!(checked.state.remaining, left);
            state = Some(checked.state);
        }
        let refused = check(3, hour, state, now, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Some(hour - 5));
        assert!(check(3, hour, state, 11 * hour, 1).allowed);
    }

    proptest! {
        /// Within one interval, no more than `amount` uses pass, whatever the costs.
        #[test]
        fn never_more_than_the_amount_per_interval(
            amount in 0u64..100,
            costs in proptest::collection::vec(0u64..10, 1..100),
        ) {
            let interval = 1_000_000;
            let mut state = None;
            let mut used = 0;
            for cost in costs {
                let checked = check(amount, interval, state, 5 * interval + 7, cost);
                if checked.allowed {
                    used += cost;
                    state = Some(checked.state);
                }
                prop_assert!(checked.state.remaining <= amount);
                prop_assert_eq!(checked.state.remaining + used, amount);
            }
        }
    }
}
