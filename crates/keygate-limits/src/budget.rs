//! Budgets: money (micro-dollars) per UTC day or month. A request reserves its highest cost
//! before it reaches the upstream and settles the real cost after; one that would go over is
//! refused before it is sent.

pub use crate::window::Window;

/// A budget's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetState {
    /// The start of the window the amounts belong to.
    pub window: u64,
    /// Settled costs.
    pub spent: u64,
    /// Costs reserved by requests still running.
    pub reserved: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub allowed: bool,
    pub state: BudgetState,
    pub remaining: u64,
    pub reset_after: u64,
    pub retry_after: Option<u64>,
}

fn current(window: Window, state: Option<BudgetState>, now: u64) -> (BudgetState, u64) {
    let (start, end) = window.bounds(now);
    let state = match state {
        Some(state) if state.window == start => state,
        _ => BudgetState {
            window: start,
            spent: 0,
            reserved: 0,
        },
    };
    (state, end)
}

/// Reserves `cost` micro-dollars of a budget of `limit` per `window` at `now`.
pub fn reserve(
    limit: u64,
    window: Window,
    state: Option<BudgetState>,
    now: u64,
    cost: u64,
) -> Checked {
    let (state, end) = current(window, state, now);
    let committed = state.spent.saturating_add(state.reserved);
    let remaining = limit.saturating_sub(committed);
    let reset_after = end.saturating_sub(now);
    if cost > remaining {
        return Checked {
            allowed: false,
            state,
            remaining,
            reset_after,
            retry_after: (cost <= limit).then_some(reset_after),
        };
    }
    let state = BudgetState {
        reserved: state.reserved + cost,
        ..state
    };
    Checked {
        allowed: true,
        state,
        remaining: remaining - cost,
        reset_after,
        retry_after: None,
    }
}

/// Settles a reservation of `reserved` made in the window starting at `made_in`: the real
/// `actual` cost is spent. When the window has turned since, the cost counts in the new one.
pub fn settle(
    window: Window,
    state: Option<BudgetState>,
    now: u64,
    made_in: u64,
    reserved: u64,
    actual: u64,
) -> BudgetState {
    let (mut state, _) = current(window, state, now);
    if state.window == made_in {
        state.reserved = state.reserved.saturating_sub(reserved);
    }
    state.spent = state.spent.saturating_add(actual);
    state
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_request_that_would_go_over_is_refused_before_it_runs() {
        let now = 1_771_063_200 * 1_000_000;
        let first = reserve(1_000, Window::Day, None, now, 600);
        assert!(first.allowed);
        assert_eq!(first.remaining, 400);
        let second = reserve(1_000, Window::Day, Some(first.state), now, 600);
        assert!(!second.allowed, "600 reserved, 600 more would exceed");
        let settled = settle(
            Window::Day,
            Some(first.state),
            now,
            first.state.window,
            600,
            100,
        );
        assert_eq!(settled.spent, 100);
        assert_eq!(settled.reserved, 0);
        assert!(reserve(1_000, Window::Day, Some(settled), now, 600).allowed);
    }

    proptest! {
        /// Reservations never commit more than the limit, and settling keeps the amounts
        /// consistent: reserved returns to zero once every request has settled.
        #[test]
        fn reservations_never_go_over(
            limit in 0u64..10_000,
            requests in proptest::collection::vec((1u64..3_000, 0u64..3_000), 1..50),
        ) {
            let now = 1_771_063_200 * 1_000_000;
            let mut state = None;
            let mut open = Vec::new();
            for (max, actual) in &requests {
                let checked = reserve(limit, Window::Month, state, now, *max);
                let committed = checked.state.spent + checked.state.reserved;
                if checked.allowed {
                    prop_assert!(committed <= limit);
                    open.push((*max, (*actual).min(*max)));
                    state = Some(checked.state);
                }
            }
            for (max, actual) in open {
                let s = state.unwrap();
                state = Some(settle(Window::Month, state, now, s.window, max, actual));
            }
            if let Some(s) = state {
                prop_assert_eq!(s.reserved, 0);
                prop_assert!(s.spent <= limit);
            }
        }
    }
}
